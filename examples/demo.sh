#!/usr/bin/env bash
# make demo: a busybox container started by runc with oci-vtpm-hook, asking
# for a vTPM through its annotation, and what its TPM answers from inside.
# The host's /usr and /lib are bind-mounted read-only so tpm2-tools runs in
# the container. Uses the device backend where /dev/vtpmx exists, else the
# socket backend.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/examples/lib.sh"
hook=${OCI_VTPM_HOOK:-$repo/build/oci-vtpm-hook}
[ "$(id -u)" -eq 0 ] || { echo "demo: must run as root (runc and swtpm need it)" >&2; exit 1; }
[ -x "$hook" ] || { echo "demo: $hook not built: run make" >&2; exit 1; }

work=$(example_workdir demo)
id=oci-vtpm-demo-$$
cleanup() {
	runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

pick_backend "demo: this kernel has no vtpm_proxy; using the socket backend (see docs/guide.md, \"Backends\")"
cat >"$work/settings.json" <<JSON
{"run_dir": "$work/run", "state_dir": "$work/state", "backend": "$backend",
 "log_file": "$work/hook.log"}
JSON

script='set -e
echo "TPM devices in the container:"; ls -l /dev/tpm* /run/tpm 2>/dev/null | sed "s/^/  /"
echo "random bytes:   $(tpm2_getrandom --hex 16)"
echo "PCR 16 before:  $(tpm2_pcrread sha256:16 | sed -n "s/.*16: //p")"
tpm2_pcrextend 16:sha256=$(echo -n oci-vtpm | sha256sum 2>/dev/null | cut -d" " -f1 || echo 0000000000000000000000000000000000000000000000000000000000000001)
echo "PCR 16 after:   $(tpm2_pcrread sha256:16 | sed -n "s/.*16: //p")"'
bundle=$work/bundle
busybox_rootfs "$bundle/rootfs" "sh echo cat ls"
# shellcheck disable=SC2016 # a jq program
runc_bundle "$bundle" "$hook" "$work/settings.json" --arg script "$script" --arg tcti "$tcti" '
	.process.args = ["/bin/sh", "-c", $script]
	| .process.env += ["TPM2TOOLS_TCTI=" + $tcti, "PATH=/bin:/usr/bin"]'

echo "demo: runc run $id (annotation io.oci-vtpm.enable=true, $backend backend)"
runc --root "$work/runc" run --bundle "$bundle" "$id" </dev/null
echo "demo: container gone; left in the run dir: $(ls -A "$work/run" 2>/dev/null | wc -l) entries;" \
	"swtpm processes: $(for p in $(pgrep -x swtpm); do readlink "/proc/$p/cwd"; done | grep -c "^$work/run/" || true)"
echo "demo: hook log:"
sed 's/^/  /' "$work/hook.log"
