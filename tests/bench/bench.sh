#!/usr/bin/env bash
# make bench: what a vTPM costs, against bare runc measured in the same run.
#
# 1. Latency: N runs each (BENCH_N, default 30, at least 30 for the table
#    in docs/performance.md), interleaved so drift on the machine hits every variant
#    alike, of `runc run` of a busybox `true` (create, start, wait,
#    poststop, delete); wall p50/p95/p99 and CPU time (user+sys of every
#    process outside the container: runc, hooks, shim, swtpm, relays; the
#    bench's own cpuacct cgroup, cgroup v1) per start, each as a ratio to
#    bare runc in the same run, the figure of merit. Each kind of vTPM
#    through the hooks in config.json and through oci-vtpm-runtime (shim-*:
#    a bundle without hooks, `oci-vtpm-runtime run`, no hook runs):
#      bare            no hook
#      disabled        the hook configured, no annotation (the cost to everyone)
#      ephemeral       a fresh vTPM, destroyed at poststop
#      warm            a warm vTPM taken (warm_size; N+5 started before,
#                      outside the timed region)
#      named           restored from its archive, archived again at poststop
#      pool-ek         EK-certified, from the provisioning pool (filled to
#                      N+5 before, outside the timed region)
#      warm-ek         a warm EK-certified vTPM taken (warm_size, ek_cert)
#      warm-named      a named vTPM's archived state handed to a warm one
#                      (warm_size), archived again at poststop
#      warm-12         a warm TPM 1.2 vTPM taken (warm_size_tpm12; hooks only)
#      inline-ek       EK-certified, manufactured inline (an empty pool)
#      shim-none ... shim-warm-named  the same kinds through the shim
#    Then the stop alone: `runc delete` of a stopped container, bare vs a
#    named vTPM archived (the poststop hook; the shim's own stop).
#    The run_dir is a tmpfs, as /run is (BENCH_RUN_TMPFS=0: the disk).
#    and, for comparison, `swtpm_setup --tpm2 --create-ek-cert
#    --create-platform-cert` alone into a temp dir (N runs): what creating
#    an EK-certified TPM per container the usual way costs.
#    p50/p95/max, the p50 ratio to bare, and the target next to each.
# 2. Where the time goes: the hook's own "timing:" lines (debug level, in
#    lib/vtpm.c) per step of start and stop, medians per variant.
# 3. Scale: BENCH_SCALE (default 100) vTPM containers alive at once
#    (`runc run -d`, sleeping; hooks, then the shim): starts per second
#    against bare runc's, every TPM answers
#    (tpm2_getrandom from the host through its socket or device), private
#    memory and fds per idle swtpm, then all stopped.
# 4. Soak: BENCH_SOAK (default 1000) start/stop cycles (ephemeral, named,
#    EK-certified from the pool, warm, in turn, through the hooks and
#    through the shim alternately; the warm vTPMs drained at the end),
#    then leak counts: swtpm
#    processes, run-dir entries, name claims, pool claims, mounts, our fds,
#    zombies, runc state, archive generations, warnings in the hook log;
#    with the device backend also the host side of every chip: /dev/tpmN and
#    /dev/tpmrmN nodes, /sys/class/tpm entries, open vtpm_proxy fds in any
#    process, references to the tpm_vtpm_proxy module, device cgroups (v1).
#    Any growth, a generation over keep_generations or a new warning in the
#    hook log is a leak: the script exits non-zero.
# Prints markdown. Root only. Other load on the machine makes the numbers
# noisy: the header says what else was running.
#
# Environment:
#   BENCH_N, BENCH_SCALE, BENCH_SOAK   see above
#   BENCH_ONLY      all (default), soak: section 4 only, or stop: the stop
#                   alone only (also with stop_async false: *-sync)
#   BENCH_VARIANTS  the variants of section 1 to time (names as above, e.g.
#                   "ephemeral unmeasured shim-ephemeral"); bare is always
#                   timed; default all. BENCH_SOAK=0 leaves section 4 out.
#   BENCH_BACKEND   socket or device (default: device where /dev/vtpmx can
#                   be had, else socket)
#   OCI_VTPM_BUILD  build dir (default <repo>/build)
# `make bench-vm` (tests/vm/bench.sh) runs BENCH_ONLY=soak BENCH_BACKEND=device
# inside the VM of tests/vm/run.sh, the only place here with vtpm_proxy.
set -euo pipefail
me=bench
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
n=${BENCH_N:-30}
soak=${BENCH_SOAK:-1000}
scale=${BENCH_SCALE:-100}
only=${BENCH_ONLY:-all}
case $only in all | soak | stop) ;; *) die "BENCH_ONLY must be all, soak or stop, not '$only'" ;; esac
[ "$soak" = 0 ] || bench_positive BENCH_SOAK "$soak"
bench_requires "$hook" "$cli" "$shim" -- tpm2_getrandom swtpm_setup

# The run directory on a tmpfs, as /run/oci-vtpm is on any systemd host
# (BENCH_RUN_TMPFS=0: on the disk of /tmp, as it is); the state_dir stays
# on disk.
run_tmpfs=${BENCH_RUN_TMPFS:-1}
bench_workdir 256m
# Through the shim: the same runc and root; OCI_VTPM_CONFIG per variant.
OCI_VTPM_RUNTIME=$(command -v runc)
export OCI_VTPM_RUNTIME
S=("$shim" --root "$work/runc")
# CPU time: this shell and all it starts (swtpm and the relays too, which
# no wait(2) would account) in a cpuacct cgroup of its own; the
# containers go to runc's cgroups, alike in every variant.
cpu_cg=
if [ -d /sys/fs/cgroup/cpuacct ] && mkdir "/sys/fs/cgroup/cpuacct/oci-vtpm-bench-$$" 2>/dev/null; then
	cpu_cg=/sys/fs/cgroup/cpuacct/oci-vtpm-bench-$$
	echo $$ >"$cpu_cg/cgroup.procs"
fi
cpu_ns() { if [ -n "$cpu_cg" ]; then echo "$(<"$cpu_cg/cpuacct.usage")"; else echo 0; fi; }
cleanup() {
	bench_cleanup
	if [ -n "$cpu_cg" ]; then
		echo $$ >/sys/fs/cgroup/cpuacct/cgroup.procs 2>/dev/null || true
		rmdir "$cpu_cg" 2>/dev/null || true
	fi
}
trap cleanup EXIT

have_vtpmx() { [ -e /dev/vtpmx ] || modprobe tpm_vtpm_proxy 2>/dev/null; }
backend=${BENCH_BACKEND:-}
case $backend in
"") if have_vtpmx; then backend=device; else backend=socket; fi ;;
device) have_vtpmx || die "BENCH_BACKEND=device: no /dev/vtpmx (run it in the VM: make bench-vm)" ;;
socket) ;;
*) die "BENCH_BACKEND must be socket or device, not '$backend'" ;;
esac
bench_settings
jq --arg st "$work/state-inline" '.state_dir = $st' "$work/settings.json" >"$work/settings-inline.json" # its pool stays empty
# Warm vTPMs: the same run_dir; only starts under these settings take them.
jq --argjson n $((n + 5)) '.warm_size = $n' "$work/settings.json" >"$work/settings-warm.json"
jq '.ek_cert = true' "$work/settings-warm.json" >"$work/settings-warm-ek.json"
jq --argjson n $((n + 5)) '.warm_size_tpm12 = $n' "$work/settings.json" >"$work/settings-warm-12.json"
# The stop in the hook (or the shim) itself, not in a detached worker.
jq '.stop_async = false' "$work/settings.json" >"$work/settings-sync.json"

bench_rootfs
mkdir -p "$work/b/bare"
cp "$work/bare.json" "$work/b/bare/config.json"
mkbundle disabled '{}'
mkbundle ephemeral "{$on}"
mkbundle named "{$on, \"io.oci-vtpm.name\": \"bench\"}"
mkbundle pool-ek "{$on, \"io.oci-vtpm.ek-cert\": \"true\"}"
mkbundle inline-ek "{$on, \"io.oci-vtpm.ek-cert\": \"true\"}" "$work/settings-inline.json"
mkbundle warm "{$on}" "$work/settings-warm.json"
mkbundle warm-ek "{$on}" "$work/settings-warm-ek.json"
mkbundle warm-named "{$on, \"io.oci-vtpm.name\": \"bench-warm\"}" "$work/settings-warm.json"
mkbundle warm-12 "{$on, \"io.oci-vtpm.version\": \"1.2\"}" "$work/settings-warm-12.json"
mkbundle named-sync "{$on, \"io.oci-vtpm.name\": \"bench-sync\"}" "$work/settings-sync.json"
# The shim's bundles: no hooks; the settings the shim reads (cfg).
declare -A cfg
mkshim() { # NAME ANNOTATIONS-JSON [SETTINGS]
	mkdir -p "$work/b/shim-$1"
	jq --argjson a "$2" '.annotations = $a' "$work/bare.json" >"$work/b/shim-$1/config.json"
	cfg[shim-$1]=${3:-$work/settings.json}
}
mkshim none '{}'
mkshim ephemeral "{$on}"
mkshim named "{$on, \"io.oci-vtpm.name\": \"bench-shim\"}"
mkshim pool-ek "{$on, \"io.oci-vtpm.ek-cert\": \"true\"}"
mkshim warm "{$on}" "$work/settings-warm.json"
mkshim warm-ek "{$on}" "$work/settings-warm-ek.json"
mkshim warm-named "{$on, \"io.oci-vtpm.name\": \"bench-shim-warm\"}" "$work/settings-warm.json"
mkshim named-sync "{$on, \"io.oci-vtpm.name\": \"bench-shim-sync\"}" "$work/settings-sync.json"
variants=(bare disabled ephemeral warm named pool-ek warm-ek inline-ek warm-named warm-12
	shim-none shim-ephemeral shim-warm shim-named shim-pool-ek shim-warm-ek shim-warm-named)
# The measured launch is on in every variant above; this one opts out.
mkbundle unmeasured "{$on, \"io.oci-vtpm.measure\": \"false\"}"
variants+=(unmeasured)
if [ -n "${BENCH_VARIANTS:-}" ]; then
	chosen=(bare)
	for b in $BENCH_VARIANTS; do
		[[ " ${variants[*]} " == *" $b "* ]] || die "BENCH_VARIANTS: no variant '$b' (${variants[*]})"
		[ "$b" = bare ] || chosen+=("$b")
	done
	variants=("${chosen[@]}")
fi

# rt VARIANT ARGS...: runc, or for a shim-* variant the shim with its settings.
rt() {
	local b=$1
	shift
	case $b in
	shim-*) OCI_VTPM_CONFIG=${cfg[$b]} "${S[@]}" "$@" ;;
	*) "${R[@]}" "$@" ;;
	esac
}
# timed ID VARIANT ARGS...: "microseconds CPU-nanoseconds" of `rt VARIANT
# ARGS...`, or FAIL (and container ID deleted).
timed() {
	local id=$1 t0 t1 c0 c1
	shift
	c0=$(cpu_ns)
	t0=$(now_us)
	if ! rt "$@" </dev/null >/dev/null 2>>"$work/runc.err"; then
		"${R[@]}" delete -f "$id" >/dev/null 2>&1 || true
		echo FAIL
		return
	fi
	t1=$(now_us)
	c1=$(cpu_ns)
	echo "$((t1 - t0)) $((c1 - c0))"
}
# One timed `runc run`.
run_once() { timed "bench-$1-$2" "$1" run --bundle "$work/b/$1" "bench-$1-$2"; }
# keep VARIANT RESULT: the wall time to VARIANT.us, the CPU time to .cpu.
keep() {
	if [ "$2" = FAIL ]; then
		fails=$((fails + 1))
	else
		echo "${2% *}" >>"$work/$1.us"
		echo $((${2#* } / 1000)) >>"$work/$1.cpu"
	fi
}

# ---------------------------------------------------------------- machine
others=$(pgrep -c qemu-system 2>/dev/null || true)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
machine=$("$repo/tests/bench/machine.sh")

declare -A label target check
label=([bare]="bare runc" [disabled]="no vTPM asked (hook configured, not enabled)"
	[ephemeral]="ephemeral vTPM" [warm]="ephemeral vTPM, warm (\`warm_size\`: a running one taken)" [named]="named vTPM, restored from its archive, archived at poststop"
	[pool-ek]="EK-certified vTPM from the pool" [warm-ek]="EK-certified vTPM, warm (\`warm_size\` with \`ek_cert\`)" [inline-ek]="EK-certified vTPM manufactured inline (empty pool)"
	[unmeasured]="ephemeral vTPM, launch not measured (\`io.oci-vtpm.measure: false\`)"
	[warm-named]="named vTPM, warm (\`warm_size\`: its archive handed to a running one), archived at poststop"
	[warm-12]="ephemeral TPM 1.2 vTPM, warm (\`warm_size_tpm12\`)")
for b in none ephemeral warm named pool-ek warm-ek warm-named; do
	case $b in none) label[shim-$b]="no vTPM asked" ;; *) label[shim-$b]=${label[$b]} ;; esac
done
# #12's targets, p50 ratios to bare runc: through the hooks a warm vTPM
# 1.20x, a cold ephemeral one 1.30x; through the shim a warm one of any
# kind 1.08x (cold named and pool vTPMs: no target).
target=([ephemeral]="≤ 1.30x" [warm]="≤ 1.20x" [warm-ek]="≤ 1.20x" [warm-named]="≤ 1.20x" [warm-12]="≤ 1.20x"
	[shim-warm]="≤ 1.08x" [shim-warm-ek]="≤ 1.08x" [shim-warm-named]="≤ 1.08x")
check=([ephemeral]=1.30 [warm]=1.20 [warm-ek]=1.20 [warm-named]=1.20 [warm-12]=1.20
	[shim-warm]=1.08 [shim-warm-ek]=1.08 [shim-warm-named]=1.08)

where=
[ "${OCI_VTPM_VM:-}" != 1 ] || where=" in the VM ($backend backend)"
echo "## oci-vtpm bench$where"
echo
if [ -n "$where" ]; then
	# Inside tests/vm/run.sh: tests/vm/bench.sh describes the host.
	echo "Machine: a qemu TCG guest (tests/vm/run.sh, cgroup ${OCI_VTPM_VM_CGROUP:-v1}; emulated: rates are not comparable to the host's): $machine. $backend backend."
	echo "Host: ${OCI_VTPM_BENCH_HOST:-not described (run it through tests/vm/bench.sh)}."
else
	echo "Machine: $machine. $backend backend; run_dir on $([ "$run_tmpfs" = 0 ] && echo "the disk of /tmp" || echo "a tmpfs (as /run)"), state_dir on the disk of /tmp."
	echo "Load average $load_before at the start; $others other qemu VMs were running on the same cores$(if [ "$others" -gt 0 ]; then echo ", so the numbers are noisy"; fi)."
fi

# The stop alone: `runc delete` (through the shim for shim-*) of a
# container that ran /bin/true and is stopped: bare, a named vTPM archived.
stop_once() { # VARIANT I
	local b=$1 id=bench-stop-$1-$2
	rt "$b" run -d --bundle "$work/b/$b" "$id" </dev/null >/dev/null 2>>"$work/runc.err" || {
		echo FAIL
		return
	}
	while [ "$("${R[@]}" state "$id" 2>/dev/null | jq -r .status)" != stopped ]; do sleep 0.01; done
	timed "$id" "$b" delete "$id"
}
stop_variants=(bare named shim-named named-sync shim-named-sync)
bench_stop() {
	local i b
	log "stop alone: $n runs each of ${stop_variants[*]}"
	for b in "${stop_variants[@]}"; do : >"$work/stop-$b.us" && : >"$work/stop-$b.cpu"; done
	for i in $(seq 1 "$n"); do
		mapfile -t order < <(printf '%s\n' "${stop_variants[@]}" | shuf)
		for b in "${order[@]}"; do keep "stop-$b" "$(stop_once "$b" "$i")"; done
	done
}

bench_stop_report() {
	read -r bd _ _ bd99 < <(stats "$work/stop-bare.us")
	read -r bdc _ _ _ < <(stats "$work/stop-bare.cpu")
	echo "### Stop alone: \`runc delete\` of a stopped container, $n runs each, interleaved"
	echo
	echo "| | path | wall p50 ms | p99 | p50 vs bare delete | CPU p50 ms | CPU vs bare | target | met |"
	echo "|---|---|---:|---:|---:|---:|---:|---|---|"
	echo "| bare \`runc delete\` | - | $bd | $bd99 | 1.00x | $bdc | 1.00x | | |"
	for b in named shim-named named-sync shim-named-sync; do
		read -r p50 _ _ p99 < <(stats "$work/stop-$b.us")
		read -r c50 _ _ _ < <(stats "$work/stop-$b.cpu")
		r=$(ratio "$p50" "$bd")
		printf "| named vTPM, stopped and archived%s | %s | %s | %s | %sx | %s | %sx | ≤ 1.15x | %s |\n" \
			"$(case $b in *-sync) echo " in the stop itself (\`stop_async: false\`)" ;; *) echo " by a detached worker (\`stop_async\`, the default)" ;; esac)" \
			"$(case $b in shim-*) echo shim ;; *) echo "poststop hook" ;; esac)" "$p50" "$p99" "$r" "$c50" \
			"$(ratio "$c50" "$bdc")" "$(verdict le "$r" 1.15)"
	done
	# What the stop does before it returns (mark stopping, fork the
	# worker), and what its worker does after, medians in ms.
	local fk wk
	fk=$(grep -E " bench-stop-(shim-)?named-[0-9]+: timing: vTPM .* marked stopping" "$work/hook.log" |
		sed -nE 's/.*worker forked in ([0-9.]+) ms.*/\1/p' | median)
	wk=$(grep -E " bench-stop-(shim-)?named-[0-9]+: timing: swtpm stop" "$work/hook.log" |
		sed -nE 's/.*stop total ([0-9.]+) ms.*/\1/p' | median)
	echo
	echo "With \`stop_async\`, the stop before it returns (archive locked, record marked stopping, worker forked): ${fk:-?} ms; its worker's stop, archive and remove after it returned: ${wk:-?} ms (medians of the hook and shim variants)."
}

# ------------------------------------------------------------- 1. latency
bench_latency() {
	log "warming up; filling the pool to $((n + 5))"
	run_once named warmup >/dev/null # creates vTPM "bench" and its first generation
	run_once shim-named warmup >/dev/null # and "bench-shim"
	run_once warm-named warmup >/dev/null # "bench-warm" (cold: none warm yet)
	run_once shim-warm-named warmup >/dev/null # and "bench-shim-warm"
	run_once bare warmup >/dev/null
	t0=$(now_us)
	"$cli" pool fill $((n + 5)) >/dev/null
	fill_us=$(($(now_us) - t0))
	t0=$(now_us)
	OCI_VTPM_CONFIG=$work/settings-warm.json "$cli" pool fill 0 >/dev/null
	warm_fill_us=$(($(now_us) - t0))
	OCI_VTPM_CONFIG=$work/settings-warm-12.json "$cli" pool fill 0 >/dev/null
	# (These take their states from the pool, which is then refilled.)
	OCI_VTPM_CONFIG=$work/settings-warm-ek.json "$cli" pool fill $((n + 5)) >/dev/null
	# The shim's warm and EK runs take from the same pool and warm vTPMs.
	"$cli" pool fill $((2 * n + 5)) >/dev/null
	OCI_VTPM_CONFIG=$work/settings-warm.json "$cli" pool fill 0 >/dev/null
	OCI_VTPM_CONFIG=$work/settings-warm-ek.json "$cli" pool fill $((2 * n + 5)) >/dev/null
	: >"$work/hook.log"
	for b in "${variants[@]}"; do : >"$work/$b.us" && : >"$work/$b.cpu"; done
	log "latency: $n runs each of ${variants[*]}"
	for i in $(seq 1 "$n"); do
		# A new order each round: no variant always follows the heavy one.
		mapfile -t order < <(printf '%s\n' "${variants[@]}" | shuf)
		for b in "${order[@]}"; do
			keep "$b" "$(run_once "$b" "$i")"
		done
		# Topped up between rounds (untimed): the hook and the shim
		# variants each take one warm vTPM of each kind a round.
		OCI_VTPM_CONFIG=$work/settings-warm.json "$cli" pool fill 0 >/dev/null
		OCI_VTPM_CONFIG=$work/settings-warm-ek.json "$cli" pool fill $((2 * n + 5)) >/dev/null
		OCI_VTPM_CONFIG=$work/settings-warm-12.json "$cli" pool fill 0 >/dev/null
	done
	bench_stop
	# The hook process alone, with nothing to do: exec, settings, log, state.
	hook_once() { # STAGE STATE-FILE
		local t0 t1
		t0=$(now_us)
		"$hook" "$1" <"$2" >/dev/null 2>&1 || return 0
		t1=$(now_us)
		echo $((t1 - t0))
	}
	jq -n --arg b "$work/b/disabled" '{ociVersion: "1.0.2", id: "bench-nothing", status: "creating", pid: 0, bundle: $b}' >"$work/nothing.json"
	: >"$work/hook-disabled.us"
	: >"$work/hook-nothing.us"
	for i in $(seq 1 "$n"); do
		hook_once createRuntime "$work/nothing.json" >>"$work/hook-disabled.us"
		hook_once poststop "$work/nothing.json" >>"$work/hook-nothing.us"
	done
	pooled=$(grep -cE " bench-pool-ek-[0-9]+: vTPM 0 from the pool" "$work/hook.log" || true)
	warmed=$(grep -cE " bench-warm-[0-9]+: started 1 TPM 2.0 vTPM \([a-z]+ backend\), warm$" "$work/hook.log" || true)
	warmed_ek=$(grep -cE " bench-warm-ek-[0-9]+: started 1 TPM 2.0 vTPM \([a-z]+ backend\), warm, EK-certified$" "$work/hook.log" || true)
	inlined=$(grep -cE " bench-inline-ek-[0-9]+: vTPM 0: the pool is empty" "$work/hook.log" || true)
	pooled_shim=$(grep -cE " bench-shim-pool-ek-[0-9]+: vTPM 0 from the pool" "$work/hook.log" || true)
	warmed_shim=$(grep -cE " bench-shim-warm-[0-9]+: started 1 TPM 2.0 vTPM \([a-z]+ backend\), warm$" "$work/hook.log" || true)
	warmed_ek_shim=$(grep -cE " bench-shim-warm-ek-[0-9]+: started 1 TPM 2.0 vTPM \([a-z]+ backend\), warm, EK-certified$" "$work/hook.log" || true)
	warmed_named=$(grep -cE " bench-warm-named-[0-9]+: started 1 TPM 2.0 vTPM \([a-z]+ backend\), warm, name bench-warm$" "$work/hook.log" || true)
	warmed_named_shim=$(grep -cE " bench-shim-warm-named-[0-9]+: started 1 TPM 2.0 vTPM \([a-z]+ backend\), warm, name bench-shim-warm$" "$work/hook.log" || true)
	warmed_12=$(grep -cE " bench-warm-12-[0-9]+: started 1 TPM 1.2 vTPM \([a-z]+ backend\), warm$" "$work/hook.log" || true)
	shim_hook_lines=$(grep -cE "oci-vtpm-hook\[[0-9]+\] [a-z]+ bench-shim-" "$work/hook.log" || true)
	# The warm vTPMs left over would count as running swtpm in what follows.
	OCI_VTPM_CONFIG=$work/settings-warm.json "$cli" pool drain >/dev/null

	log "swtpm_setup: $n runs"
	mkdir -p "$work/localca"
	cat >"$work/swtpm-localca.conf" <<-EOF
	statedir = $work/localca
	signingkey = $work/localca/signkey.pem
	issuercert = $work/localca/issuercert.pem
	certserial = $work/localca/certserial
	EOF
	cat >"$work/swtpm_setup.conf" <<-EOF
	create_certs_tool = /usr/bin/swtpm_localca
	create_certs_tool_config = $work/swtpm-localca.conf
	create_certs_tool_options = /etc/swtpm-localca.options
	active_pcr_banks = sha256
	EOF
	setup_once() { # I: microseconds of one swtpm_setup, or FAIL
		local d=$work/sst/$1 t0 t1
		mkdir -p "$d"
		t0=$(now_us)
		if ! swtpm_setup --config "$work/swtpm_setup.conf" --tpm2 --tpmstate "$d" \
			--create-ek-cert --create-platform-cert >"$work/swtpm_setup.log" 2>&1; then
			echo FAIL
			return
		fi
		t1=$(now_us)
		rm -rf "$d"
		echo $((t1 - t0))
	}
	setup_once warmup >/dev/null # makes the local CA
	: >"$work/swtpm_setup.us"
	for i in $(seq 1 "$n"); do
		us=$(setup_once "$i")
		if [ "$us" = FAIL ]; then fails=$((fails + 1)); else echo "$us" >>"$work/swtpm_setup.us"; fi
	done

	read -r bare_p50 _ _ _ < <(stats "$work/bare.us")
	read -r bare_cpu _ _ _ < <(stats "$work/bare.cpu")

	echo
	echo "### Start + stop: \`runc run\` of busybox \`true\`, $n runs each, interleaved"
	echo
	echo "Wall time, and CPU time (user + sys of every process outside the container: runc, hooks, shim, swtpm, relays; $([ -n "$cpu_cg" ] && echo "the bench's cpuacct cgroup" || echo "**not measured**: no cgroup v1 cpuacct")) per start. The ratio to bare runc, measured in the same run, is the figure of merit. p99 of $n runs is their maximum or next to it."
	echo
	echo "| variant | path | wall p50 ms | p95 | p99 | p50 vs bare | CPU p50 ms | CPU vs bare | target (p50 vs bare) | met |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---|---|"
	for b in "${variants[@]}"; do
		read -r p50 p95 _ p99 < <(stats "$work/$b.us")
		read -r c50 _ _ _ < <(stats "$work/$b.cpu")
		r=$(ratio "$p50" "$bare_p50")
		met=""
		[ -z "${check[$b]:-}" ] || met=$(verdict le "$r" "${check[$b]}")
		path=hooks
		case $b in bare) path="-" ;; shim-*) path=shim ;; esac
		printf "| %s | %s | %s | %s | %s | %sx | %s | %sx | %s | %s |\n" "${label[$b]}" "$path" "$p50" "$p95" "$p99" \
			"$r" "$c50" "$(ratio "$c50" "$bare_cpu")" "${target[$b]:-}" "$met"
	done
	read -r p50 p95 _ p99 < <(stats "$work/swtpm_setup.us")
	printf "| \`swtpm_setup --tpm2 --create-ek-cert --create-platform-cert\` alone (no container) | - | %s | %s | %s | %sx | | | | |\n" \
		"$p50" "$p95" "$p99" "$(ratio "$p50" "$bare_p50")"
	echo
	echo "Pool runs that took their state from the pool: $pooled of $n (shim: $pooled_shim of $n); inline runs that found the pool empty: $inlined of $n; warm runs that took a warm vTPM: $warmed of $n (shim: $warmed_shim), EK-certified: $warmed_ek of $n (shim: $warmed_ek_shim), named: $warmed_named of $n (shim: $warmed_named_shim), TPM 1.2: $warmed_12 of $n. Hook processes run by the shim variants (lines of oci-vtpm-hook for their ids in the log): $shim_hook_lines."
	echo
	bench_stop_report
}

# ------------------------------------------------------- 2. the breakdown
bench_breakdown() {
	read -r hook_ms _ _ < <(stats "$work/hook-nothing.us")
	read -r hook_dis_ms _ _ < <(stats "$work/hook-disabled.us")
	start_re='.*timing: setup ([0-9.]+) ms, restore ([0-9.]+) ms, pool ([0-9.]+) ms, manufacture ([0-9.]+) ms, swtpm ready ([0-9.]+) ms, expose ([0-9.]+) ms, start total ([0-9.]+) ms.*'
	stop_re='.*timing: swtpm stop ([0-9.]+) ms, archive ([0-9.]+) ms, remove ([0-9.]+) ms, stop total ([0-9.]+) ms.*'
	cols() { # VARIANT REGEX NCOLS -> medians of each captured column
		local b=$1 re=$2 k=$3 c rows
		rows=$(grep -E " bench-$b-[0-9]+: timing: " "$work/hook.log" | sed -nE "s/$re/$(seq -s' ' 1 "$k" | sed 's/\([0-9]\)/\\\1/g')/p")
		for c in $(seq 1 "$k"); do
			printf '%s ' "$(cut -d' ' -f"$c" <<<"$rows" | grep . | median)"
		done
		echo
	}
	echo
	echo "### Where the time goes: the hook's and the shim's own timing lines (medians, ms)"
	echo
	echo "| variant | setup | restore | pool claim | manufacture | swtpm ready | expose | **start** | swtpm stop | archive | remove | **stop** |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for b in ephemeral warm named pool-ek warm-ek inline-ek warm-named warm-12 shim-ephemeral shim-warm shim-named shim-pool-ek shim-warm-ek shim-warm-named; do
		[[ " ${variants[*]} " == *" $b "* ]] || continue # not timed (BENCH_VARIANTS)
		read -r a1 a2 a3 a4 a5 a6 a7 < <(cols "$b" "$start_re" 7)
		read -r s1 s2 s3 s4 < <(cols "$b" "$stop_re" 4)
		echo "| ${label[$b]}$(case $b in shim-*) echo " (shim)" ;; esac) | $a1 | $a2 | $a3 | $a4 | $a5 | $a6 | **$a7** | $s1 | $s2 | $s3 | **$s4** |"
		[ "$b" != named ] || named_stop=$s4
	done
	echo
	echo "setup: lock, record, state dirs. restore: keys, and the archive unpacked (named). pool claim: rename out of the pool, unwrap, copy. swtpm ready: spawn until it answers on its control channel. expose: the socket dir or device bind-mounted into the container."
	echo "Outside these: the hook process itself, twice per container. Run alone with nothing to do (p50 of $n, fork and exec included): $hook_ms ms for a poststop of an unknown container (exec, dynamic linking, settings, log, state), $hook_dis_ms ms for a createRuntime of a bundle that does not ask (also config.json). And runc's own cost of running two hooks (state on a pipe, wait)."
	echo "Pool fill (outside the timed runs): $((n + 5)) EK-certified states in $(awk -v us="$fill_us" 'BEGIN {printf "%.1f s", us/1e6}') ($(awk -v n=$((n + 5)) -v us="$fill_us" 'BEGIN {printf "%.0f", n/(us/1e6)}') per second)."
	echo "Warm vTPMs started by \`pool fill\` (outside the timed runs): $((n + 5)) in $(awk -v us="$warm_fill_us" 'BEGIN {printf "%.2f s", us/1e6}'). A warm start's \"setup\" is the claim: the run directory listed, a warm vTPM's directory locked, its record read and the directory renamed to the container's id."
	measure_lines=$(grep -E ' bench-[a-z-]+-[0-9]+: timing: measure ' "$work/hook.log" || true)
	measure_ms=$(sed -nE 's/.*timing: measure ([0-9.]+) ms.*/\1/p' <<<"$measure_lines" | median)
	measure_cpu=$(sed -nE 's/.*timing: measure [0-9.]+ ms, ([0-9.]+) ms CPU.*/\1/p' <<<"$measure_lines" | median)
	echo "Measured launch (PCR 11 extended once per item, the event log written; every variant but the unmeasured one): median **$measure_ms ms** per start, $measure_cpu ms of it the hook's own CPU (target < 1 ms for on by default: $(verdict le "${measure_ms/-/99}" 1))."
	pst=$(awk -v a="${named_stop:-0}" -v b="$hook_ms" 'BEGIN {printf "%.1f", a+b}')
	echo "Poststop with archive: ${named_stop:--} ms in the hook's stop + $hook_ms ms hook process = **$pst ms** (the stop alone, against a bare \`runc delete\`: the table above)."
	echo "Through the shim, expose is 0: runc makes the mount or the device nodes from config.json; the shim's start line is logged when it records the container, after create."
}

# ------------------------------------------------------------- 3. scale
# start_all BUNDLE PREFIX: `runc run -d` of $scale containers PREFIX-1...,
# one after another; stop_all PREFIX [VARIANT]: `runc delete -f` of them
# (through the shim for a shim-* VARIANT). Both set
# rate (per second) and count failures in scale_fail.
start_all() {
	local t0 i
	t0=$(now_us)
	for i in $(seq 1 "$scale"); do
		# --pid-file, as every engine passes it (the shim then asks the
		# runtime nothing); bare runc writes it too.
		rt "$1" run -d --pid-file "$work/pid" --bundle "$work/b/$1" "$2-$i" </dev/null >/dev/null \
			2>>"$work/runc.err" || scale_fail=$((scale_fail + 1))
	done
	rate=$(per_second "$scale" "$t0")
}
stop_all() {
	local t0 i
	t0=$(now_us)
	for i in $(seq 1 "$scale"); do
		rt "${2:-runc}" delete -f "$1-$i" >/dev/null 2>>"$work/runc.err" || scale_fail=$((scale_fail + 1))
	done
	rate=$(per_second "$scale" "$t0")
}
# answering PREFIX: how many of the TPMs of PREFIX-1... answer from the host.
answering() {
	local i tcti k=0
	for i in $(seq 1 "$scale"); do
		if [ "$backend" = socket ]; then
			tcti="swtpm:path=$work/run/containers/$1-$i/private/tpm/tpm0.sock"
		else
			tcti="device:/dev/tpmrm$(jq -r '.tpms[0].devnum' "$work/run/containers/$1-$i/record.json" 2>/dev/null)"
		fi
		TPM2TOOLS_TCTI=$tcti timeout 10 tpm2_getrandom 8 >/dev/null 2>&1 && k=$((k + 1))
	done
	echo "$k"
}
bench_scale() {
	log "scale: $scale vTPM containers alive at once"
	mkbundle scale "{$on}"
	sleeper scale
	mkdir -p "$work/b/scale-bare"
	cp "$work/bare.json" "$work/b/scale-bare/config.json"
	sleeper scale-bare
	scale_fail=0
	# The same with bare containers, for comparison.
	start_all scale-bare bare
	bare_start_rate=$rate
	bare_fds=$(count_fds "$("${R[@]}" state bare-1 | jq -r .pid)")
	stop_all bare
	bare_stop_rate=$rate
	start_all scale scale
	start_rate=$rate
	answered=$(answering scale)
	swtpms=$(swtpm_pids "$work/run/containers/scale-")
	nswtpm=$(wc -w <<<"$swtpms")
	read -r mem_avg mem_max < <(for p in $swtpms; do private_kib "$p"; done | mean_max)
	fds=$(for p in $swtpms; do count_fds "$p"; done | sort -n | uniq | tr '\n' ' ')
	cfds=$(for i in $(seq 1 $((scale < 3 ? scale : 3))); do count_fds "$("${R[@]}" state "scale-$i" | jq -r .pid)"; done | sort -u | tr '\n' ' ')
	stop_all scale
	stop_rate=$rate
	# Through the shim: no hook runs.
	mkshim scale "{$on}"
	sleeper shim-scale
	start_all shim-scale sscale
	shim_start_rate=$rate
	shim_answered=$(answering sscale)
	stop_all sscale shim-scale
	shim_stop_rate=$rate
	left=$(swtpm_pids "$work/run/" | wc -l)

	echo
	echo "### Scale: $scale ephemeral vTPM containers alive at once"
	echo
	echo "| | measured | target | met |"
	echo "|---|---:|---|---|"
	echo "| starts per second (\`runc run -d\`, one after another), hooks; bare runc | $start_rate ($bare_start_rate): $(ratio "$start_rate" "$bare_start_rate")x | ≥ 0.85x bare | $(verdict ge "$(ratio "$start_rate" "$bare_start_rate")" 0.85) |"
	echo "| starts per second through the shim | $shim_start_rate: $(ratio "$shim_start_rate" "$bare_start_rate")x | ≥ 0.85x bare | $(verdict ge "$(ratio "$shim_start_rate" "$bare_start_rate")" 0.85) |"
	echo "| TPMs answering \`tpm2_getrandom\` from the host (hooks; shim) | $answered; $shim_answered of $scale | all | $(verdict [ "$((answered + shim_answered))" -eq $((2 * scale)) ]) |"
	echo "| swtpm processes while up | $nswtpm | $scale | $(verdict [ "$nswtpm" -eq "$scale" ]) |"
	echo "| private memory per idle swtpm (mean, max) | $((mem_avg)) KiB, $((mem_max)) KiB | ≤ 1.5 MB (1536 KiB) | $(verdict le "$mem_avg" 1536) |"
	echo "| open fds per swtpm (distinct values) | $fds | all equal | $(verdict [ "$(wc -w <<<"$fds")" -eq 1 ]) |"
	echo "| open fds of a container's init (vTPM; bare) | ${cfds}; $bare_fds | equal: nothing leaks in | $(verdict [ "${cfds% }" = "$bare_fds" ]) |"
	echo "| stops per second (\`runc delete -f\`: hooks, shim; bare runc) | $stop_rate, $shim_stop_rate ($bare_stop_rate) | | |"
	echo "| failed starts or stops; swtpm left after | $scale_fail; $left | 0; 0 | $(verdict [ $((scale_fail + left)) -eq 0 ]) |"
}

# -------------------------------------------------------------- 4. soak
count_mounts() { grep -cF -- "$work" /proc/self/mountinfo || true; }
# Zombies of what we run that stay zombies. The count is system-wide (an
# orphan's parent is pid 1) and this builder's pid 1 reaps orphans lazily
# (within about a second), so with other work on the machine there are
# always a few fresh ones: only those still there 2 s later count.
zombies() { ps -eo pid=,stat=,comm= | awk '$2 ~ /^Z/ && $3 ~ /^(swtpm|runc|oci-vtpm|busybox|true|sleep)/ {print $1}'; }
settled_zombies() {
	local z
	z=$(zombies)
	[ -z "$z" ] || {
		sleep 2
		z=$(sort <<<"$z" | comm -12 - <(zombies | sort))
	}
	grep -c . <<<"$z" || true
}
count_warnings() { if [ -f "$work/hook.log" ]; then grep -cE ' (warning|error) ' "$work/hook.log" || true; else echo 0; fi; }
leak_names=(swtpm "run dir entries (records)" "name claims" "pool claims" "mounts under the bench dir"
	"open fds of the bench shell" "zombie processes" "runc containers")
if [ "$backend" = device ]; then
	mapfile -t -O ${#leak_names[@]} leak_names < <(chip_count_names)
fi
snapshot() { # -> one count for each of leak_names
	local v=(
		"$(swtpm_pids "$work/run/" | wc -l)"
		"$(($(count_entries "$work/run/containers") + $(count_entries "$work/run/warm") +
			$(count_entries "$work/run/precreated")))"
		"$(count_entries "$work/run/names")"
		"$(count_entries "$work/state/pool/.claims")"
		"$(count_mounts)"
		"$(count_fds $$)"
		"$(settled_zombies)"
		"$(count_entries "$work/runc")"
	)
	if [ "$backend" = device ]; then
		local chips
		read -r -a chips < <(chip_counts)
		v+=("${chips[@]}")
	fi
	echo "${v[*]}"
}
bench_soak() {
	local i b t0 t1 r0 refill_us=0 k d gens keep=3 warn_before warn_after before after
	log "soak: $soak cycles, $backend backend"
	mkbundle soak-named "{$on, \"io.oci-vtpm.name\": \"soak\"}"
	mkshim soak-named "{$on, \"io.oci-vtpm.name\": \"soak-shim\"}"
	"$cli" pool fill 25 >/dev/null
	# Before the warm vTPMs start: at the end they are drained, and every
	# count must be back where it was.
	read -r -a before < <(snapshot)
	warn_before=$(count_warnings)
	# (settings-warm: the EK pool to 25 and the warm vTPMs to BENCH_N + 5)
	refill() { OCI_VTPM_CONFIG=$work/settings-warm.json "$cli" pool fill 25 >/dev/null; }
	refill
	t0=$(now_us)
	for i in $(seq 1 "$soak"); do
		case $((i % 8)) in
		0) b=ephemeral ;;
		1) b="soak-named" ;;
		2) b="pool-ek" ;;
		3) b=warm ;;
		4) b=shim-ephemeral ;;
		5) b=shim-soak-named ;;
		6) b=shim-pool-ek ;;
		7) b=shim-warm ;;
		esac
		if [ $((i % 30)) -eq 0 ]; then
			r0=$(now_us)
			refill || soak_fail=$((soak_fail + 1))
			refill_us=$((refill_us + $(now_us) - r0))
		fi
		rt "$b" run --bundle "$work/b/$b" "soak-$i" </dev/null >/dev/null 2>>"$work/runc.err" || {
			soak_fail=$((soak_fail + 1))
			"${R[@]}" delete -f "soak-$i" >/dev/null 2>&1 || true
		}
		[ $((i % 100)) -ne 0 ] || log "soak: $i of $soak cycles, $soak_fail failed"
	done
	t1=$(now_us)
	OCI_VTPM_CONFIG=$work/settings-warm.json "$cli" pool drain >/dev/null || soak_fail=$((soak_fail + 1))
	read -r -a after < <(snapshot)
	warn_after=$(count_warnings)
	gens=$(for v in soak soak-shim; do find "$work/state/vtpms/$v" -name 'gen-*.ovtpm' 2>/dev/null | wc -l || true; done | sort -n | tail -1)
	echo
	echo "### Soak$where: $soak start/stop cycles (ephemeral, named, EK-certified from the pool, warm, in turn; hooks and shim alternately)"
	echo
	echo "$(awk -v n="$soak" -v us=$((t1 - t0 - refill_us)) 'BEGIN {printf "%.1f", n / (us / 1e6)}') cycles per second (refills of the pool and the warm vTPMs every 30 cycles excluded; all warm vTPMs drained before the counts after), $soak_fail failed; $(awk -v us=$((t1 - t0)) -v r="$refill_us" 'BEGIN {printf "%.1f s in all, %.1f s of it refilling the pool", us / 1e6, r / 1e6}')."
	echo
	echo "| leak count | before | after | target | met |"
	echo "|---|---:|---:|---|---|"
	for k in "${!leak_names[@]}"; do
		d=$((after[k] - before[k]))
		[ "$d" -le 0 ] || leaks=$((leaks + d))
		echo "| ${leak_names[$k]} | ${before[$k]} | ${after[$k]} | no growth | $(verdict [ "$d" -le 0 ]) |"
	done
	[ "$gens" -le "$keep" ] || leaks=$((leaks + gens - keep))
	echo "| archive generations of the named vTPMs (hooks, shim; the larger) | | $gens | ≤ keep_generations ($keep) | $(verdict [ "$gens" -le "$keep" ]) |"
	[ "$warn_after" -le "$warn_before" ] || leaks=$((leaks + warn_after - warn_before))
	echo "| warnings and errors in the hook log | $warn_before | $warn_after | no growth | $(verdict [ "$warn_after" -le "$warn_before" ]) |"
}

fails=0 scale_fail=0 soak_fail=0 leaks=0 timed=0
if [ "$only" = stop ]; then
	for b in named shim-named named-sync shim-named-sync; do run_once "$b" warmup >/dev/null; done
	bench_stop
	bench_stop_report
	echo
	echo "bench: $((${#stop_variants[@]} * n)) timed stops; $fails failed"
	bench_runc_errors
	[ "$fails" -eq 0 ]
	exit
fi
if [ "$only" = all ]; then
	bench_latency
	bench_breakdown
	bench_scale
	timed=$((${#variants[@]} * n + (${#stop_variants[@]} + 3) * n))
else
	scale=0
fi
[ "$soak" = 0 ] || bench_soak
echo
echo "bench: $timed timed runs, $scale scale containers, $soak soak cycles; $((fails + scale_fail + soak_fail)) failed, $leaks leaked"
bench_runc_errors
[ $((fails + scale_fail + soak_fail + leaks)) -eq 0 ]
