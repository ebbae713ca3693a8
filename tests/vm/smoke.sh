#!/bin/bash
# Smoke test of the VM test environment. Runs INSIDE the guest:
#   tests/vm/run.sh [--cgroup v1|v2] -- tests/vm/smoke.sh
# Checks the vTPM proxy driver + swtpm + tpm2-tools, and that runc and crun
# run a busybox container (exit status, cgroup placement, device cgroup
# allow/deny of /dev/tpmrm0) in the cgroup mode the VM booted with.
# `cond && ok ... || not_ok ...` is fine here: ok always succeeds.
# shellcheck disable=SC2015
set -euo pipefail

if [ "${OCI_VTPM_VM:-}" != 1 ]; then
    echo "smoke.sh: runs inside the VM: tests/vm/run.sh -- tests/vm/smoke.sh" >&2
    exit 2
fi

pass=0 fail=0 n=0
ok() { n=$((n + 1)) pass=$((pass + 1)); echo "ok $n - $1"; }
not_ok() { # desc [detail...]
    n=$((n + 1)) fail=$((fail + 1))
    echo "not ok $n - $1"
    shift
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
}
# check DESC CMD...: passes when CMD exits 0; its output is shown on failure.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "exit $?: $out"; fi
}

work=$(mktemp -d /tmp/smoke.XXXXXX)
swtpm_pid=
cleanup() { [ -z "$swtpm_pid" ] || kill "$swtpm_pid" 2>/dev/null || true; }
trap cleanup EXIT

case "$(stat -fc %T /sys/fs/cgroup)" in
cgroup2fs) mode=v2 ;;
tmpfs) mode=v1 ;;
*) mode=unknown ;;
esac
echo "# kernel $(uname -r), cgroup $mode (requested ${OCI_VTPM_VM_CGROUP:-?}), $(runc --version | head -n1), $(crun --version | head -n1)"

# --- vTPM proxy + swtpm ----------------------------------------------------
[ "$mode" = "${OCI_VTPM_VM_CGROUP:-}" ] && ok "cgroup mode is $mode" ||
    not_ok "cgroup mode: got $mode, wanted ${OCI_VTPM_VM_CGROUP:-?}"
[ -c /dev/vtpmx ] && ok "/dev/vtpmx exists" || not_ok "/dev/vtpmx exists" "$(ls -l /dev/vtpmx 2>&1)"
check "modprobe tpm_vtpm_proxy (kmod, guest module tree)" modprobe tpm_vtpm_proxy

mkdir -p "$work/tpmstate"
swtpm chardev --vtpm-proxy --tpm2 --tpmstate dir="$work/tpmstate" \
    --flags not-need-init,startup-clear >"$work/swtpm.log" 2>&1 &
swtpm_pid=$!
# swtpm prints "New TPM device: /dev/tpmN (major/minor = 10/224)"; devtmpfs
# then creates /dev/tpmN and /dev/tpmrmN.
tpm='' tpmrm=''
for _ in $(seq 100); do
    tpm=$(sed -n 's|^New TPM device: \(/dev/tpm[0-9]*\).*|\1|p' "$work/swtpm.log")
    if [ -n "$tpm" ]; then
        tpmrm=/dev/tpmrm${tpm#/dev/tpm}
        [ -c "$tpm" ] && [ -c "$tpmrm" ] && break
    fi
    kill -0 "$swtpm_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -n "$tpm" ] && [ -c "$tpmrm" ]; then
    ok "swtpm --vtpm-proxy gives $tpm ($(stat -c '%t:%T' "$tpm" | awk -F: '{printf "%d:%d", "0x"$1, "0x"$2}')) and $tpmrm"
else
    not_ok "swtpm --vtpm-proxy gives /dev/tpmN and /dev/tpmrmN" "$(cat "$work/swtpm.log")" "$(ls -l /dev/tpm* 2>&1)"
    tpmrm=/dev/tpmrm0
fi
[ "$tpm" != /dev/tpm0 ] || [ "$(stat -c '%t:%T' /dev/tpm0 2>/dev/null)" = "a:e0" ] &&
    ok "/dev/tpm0 is 10:224" || not_ok "/dev/tpm0 is 10:224" "$(ls -l /dev/tpm0 2>&1)"

T=(-T "device:$tpmrm")
check "tpm2_getrandom via $tpmrm" tpm2_getrandom "${T[@]}" --hex 8

digest=$(printf oci-vtpm | sha256sum | cut -d' ' -f1)
# PCR16 starts as zeros: expect sha256(0^32 || digest).
# shellcheck disable=SC2001
expect=$({ head -c 32 /dev/zero; printf '%b' "$(echo "$digest" | sed 's/../\\x&/g')"; } | sha256sum | cut -d' ' -f1)
if out=$(tpm2_pcrextend "${T[@]}" "16:sha256=$digest" 2>&1 && tpm2_pcrread "${T[@]}" sha256:16 2>&1); then
    got=$(printf '%s\n' "$out" | sed -n 's/.*16 *: *0x\([0-9A-Fa-f]*\).*/\1/p' | tr A-F a-f)
    [ "$got" = "$expect" ] && ok "tpm2_pcrextend + tpm2_pcrread PCR16" ||
        not_ok "tpm2_pcrextend + tpm2_pcrread PCR16" "expected $expect" "$out"
else
    not_ok "tpm2_pcrextend + tpm2_pcrread PCR16" "$out"
fi

# --- OCI runtimes ------------------------------------------------------------
dev_major=$(( 0x$(stat -c %t "$tpmrm" 2>/dev/null || echo 0) ))
dev_minor=$(( 0x$(stat -c %T "$tpmrm" 2>/dev/null || echo 0) ))

# One read-only busybox rootfs shared by all bundles (root.path is absolute).
# Only the applets used: every exec costs ~20 ms under TCG.
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/dev" "$rootfs/sys"
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true dd od tr printf; do ln -s busybox "$rootfs/bin/$a"; done
# TPM2_GetRandom(8) as raw bytes, one write(); a good response starts
# 8001 00000014 00000000 (tag, size 20, TPM_RC_SUCCESS).
cat >"$rootfs/getrandom.sh" <<'EOF2'
exec 3<>/dev/tpmrm0
printf '\200\001\000\000\000\014\000\000\001\173\000\010' >&3
dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 | tr -d ' \n'
EOF2

# make_bundle NAME ARGS_JSON [none|node|allow]: `runc spec` with terminal
# off, the shared rootfs and the given args; "node" adds /dev/tpmrm0 (the
# host's tpmrm major:minor) to linux.devices, "allow" also adds a device
# cgroup rule for it after the default deny-all.
spec=$work/spec.json
(cd "$work" && runc spec && mv config.json "$spec")
make_bundle() {
    local d=$work/$1 args=$2 dev=${3:-none}
    mkdir -p "$d"
    sed -e 's/"terminal": true/"terminal": false/' \
        -e "s|\"path\": \"rootfs\"|\"path\": \"$rootfs\"|" \
        -e "s|^\t\t\t\"sh\"\$|\t\t\t$args|" "$spec" |
        awk -v maj="$dev_major" -v min="$dev_minor" -v dev="$dev" '
            dev != "none" && /^\t"linux": \{$/ {
                print
                printf "\t\t\"devices\": [{\"path\": \"/dev/tpmrm0\", \"type\": \"c\", \"major\": %d, \"minor\": %d, \"fileMode\": 438, \"uid\": 0, \"gid\": 0}],\n", maj, min
                next
            }
            /^\t\t\t"devices": \[$/ { indev = 1 }
            indev && /^\t\t\t\]/ {
                if (dev == "allow") printf "\t\t\t\t,{\"allow\": true, \"type\": \"c\", \"major\": %d, \"minor\": %d, \"access\": \"rw\"}\n", maj, min
                indev = 0
            }
            { print }' >"$d/config.json"
}

make_bundle b-true '"/bin/true"'
make_bundle b-exit '"/bin/sh", "-c", "exit 7"'
make_bundle b-dev-allow '"/bin/sh", "/getrandom.sh"' allow
make_bundle b-dev-deny '"/bin/sh", "-c", "exec 3<>/dev/tpmrm0"' node

# runtime_tests NAME CMD...: CMD is the runtime with its global options.
runtime_tests() {
    local name=$1 id out rc
    shift
    local rt=("$@")
    id=smoke-$name

    out=$(timeout 60 "${rt[@]}" run --bundle "$work/b-true" "$id-true" </dev/null 2>&1) && rc=0 || rc=$?
    [ $rc -eq 0 ] && ok "$name: busybox container runs /bin/true" ||
        not_ok "$name: busybox container runs /bin/true" "exit $rc: $out"

    out=$(timeout 60 "${rt[@]}" run --bundle "$work/b-exit" "$id-exit" </dev/null 2>&1) && rc=0 || rc=$?
    [ $rc -eq 7 ] && ok "$name: container exit status 7 is returned" ||
        not_ok "$name: container exit status 7 is returned" "exit $rc: $out"

    # Cgroup placement, seen from outside: on v2 both runtimes give the
    # container its own cgroup namespace, so its /proc/self/cgroup says "/".
    # `create` leaves the container's init waiting in its cgroup; no start.
    local cid=$id-cg want=/$id-cg line pid
    case "${rt[*]}" in *cgroup-manager=disabled*) want=/ ;; esac # stays in ours
    # (the container inherits create's stdio: a pipe here would never close)
    timeout 60 "${rt[@]}" create --bundle "$work/b-true" "$cid" </dev/null >"$work/create.log" 2>&1 && rc=0 || rc=$?
    out=$(cat "$work/create.log")
    pid=$(timeout 60 "${rt[@]}" state "$cid" 2>/dev/null | sed -n 's/^ *"pid": *\([0-9]*\).*/\1/p' || true)
    if [ "$mode" = v2 ]; then line=$(grep '^0::' "/proc/$pid/cgroup" 2>/dev/null || true)
    else line=$(grep -E '^[0-9]+:devices:' "/proc/$pid/cgroup" 2>/dev/null || true); fi
    timeout 60 "${rt[@]}" delete -f "$cid" >/dev/null 2>&1 || true
    if [ $rc -eq 0 ] && [ -n "$pid" ] && [ "${line#*:*:}" = "$want" ]; then
        ok "$name: create puts the container in cgroup ${line#*:*:}"
    else
        not_ok "$name: create puts the container in cgroup $want" "exit $rc, pid ${pid:-?}, cgroup '${line:-?}': $out"
    fi

    case "${rt[*]}" in *cgroup-manager=disabled*) return 0 ;; esac

    out=$(timeout 60 "${rt[@]}" run --bundle "$work/b-dev-allow" "$id-dev-allow" </dev/null 2>&1) && rc=0 || rc=$?
    [ $rc -eq 0 ] && [[ "$out" == 80010000001400000000* ]] &&
        ok "$name: device rule allows /dev/tpmrm0 (raw TPM2_GetRandom in container)" ||
        not_ok "$name: device rule allows $tpmrm (TPM2_GetRandom in container)" "exit $rc: $out"

    out=$(timeout 60 "${rt[@]}" run --bundle "$work/b-dev-deny" "$id-dev-deny" </dev/null 2>&1) && rc=0 || rc=$?
    [ $rc -ne 0 ] && [[ "$out" == *"ermitted"* ]] &&
        ok "$name: device cgroup denies /dev/tpmrm0 without a rule" ||
        not_ok "$name: device cgroup denies /dev/tpmrm0 without a rule" "exit $rc: $out"
}

runtime_tests runc runc
runtime_tests crun-cgroupfs crun --cgroup-manager=cgroupfs
runtime_tests crun-disabled crun --cgroup-manager=disabled

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
