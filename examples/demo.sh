#!/usr/bin/env bash
# make demo: a busybox container started by runc with oci-vtpm-hook, asking
# for a vTPM through its annotation, and what its TPM answers from inside.
# The host's /usr and /lib are bind-mounted read-only so tpm2-tools runs in
# the container. Uses the device backend where /dev/vtpmx exists, else the
# socket backend.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
hook=${OCI_VTPM_HOOK:-$repo/build/oci-vtpm-hook}
[ "$(id -u)" -eq 0 ] || { echo "demo: must run as root (runc and swtpm need it)" >&2; exit 1; }
[ -x "$hook" ] || { echo "demo: $hook not built: run make" >&2; exit 1; }

work=$(mktemp -d /tmp/oci-vtpm-demo.XXXXXX)
chmod 0755 "$work"
id=oci-vtpm-demo-$$
cleanup() {
	runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

if [ -e /dev/vtpmx ] || modprobe tpm_vtpm_proxy 2>/dev/null; then
	backend=device tcti=device:/dev/tpmrm0
else
	backend=socket tcti=swtpm:path=/run/tpm/tpm0.sock
	echo "demo: this kernel has no vtpm_proxy; using the socket backend (see README)"
fi
cat >"$work/settings.json" <<JSON
{"run_dir": "$work/run", "state_dir": "$work/state", "backend": "$backend",
 "log_file": "$work/hook.log"}
JSON

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/dev" "$bundle/rootfs/proc" "$bundle/rootfs/sys" \
	"$bundle/rootfs/usr" "$bundle/rootfs/lib" "$bundle/rootfs/lib64" "$bundle/rootfs/tmp"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in sh echo cat ls; do ln -s busybox "$bundle/rootfs/bin/$applet"; done
(cd "$bundle" && runc spec)

script='set -e
echo "TPM devices in the container:"; ls -l /dev/tpm* /run/tpm 2>/dev/null | sed "s/^/  /"
echo "random bytes:   $(tpm2_getrandom --hex 16)"
echo "PCR 16 before:  $(tpm2_pcrread sha256:16 | sed -n "s/.*16: //p")"
tpm2_pcrextend 16:sha256=$(echo -n oci-vtpm | sha256sum 2>/dev/null | cut -d" " -f1 || echo 0000000000000000000000000000000000000000000000000000000000000001)
echo "PCR 16 after:   $(tpm2_pcrread sha256:16 | sed -n "s/.*16: //p")"'
hook_entry() {
	jq -n --arg h "$hook" --arg s "$1" --arg c "$work/settings.json" \
		'{path: $h, args: ["oci-vtpm-hook", $s], env: ["OCI_VTPM_CONFIG=" + $c], timeout: 30}'
}
jq --arg script "$script" --arg tcti "$tcti" \
	--argjson cr "$(hook_entry createRuntime)" --argjson ps "$(hook_entry poststop)" '
	.process.terminal = false
	| .process.args = ["/bin/sh", "-c", $script]
	| .process.env += ["TPM2TOOLS_TCTI=" + $tcti, "PATH=/bin:/usr/bin"]
	| .root.readonly = false
	| .annotations = {"io.oci-vtpm.enable": "true"}
	| .mounts += [{destination: "/usr", type: "bind", source: "/usr", options: ["rbind", "ro"]},
		      {destination: "/lib", type: "bind", source: "/lib", options: ["rbind", "ro"]},
		      {destination: "/lib64", type: "bind", source: "/lib64", options: ["rbind", "ro"]}]
	| .hooks = {createRuntime: [$cr], poststop: [$ps]}' \
	"$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"

echo "demo: runc run $id (annotation io.oci-vtpm.enable=true, $backend backend)"
runc --root "$work/runc" run --bundle "$bundle" "$id" </dev/null
echo "demo: container gone; left in the run dir: $(ls -A "$work/run" 2>/dev/null | wc -l) entries;" \
	"swtpm processes: $(for p in $(pgrep -x swtpm); do readlink "/proc/$p/cwd"; done | grep -c "^$work/run/" || true)"
echo "demo: hook log:"
sed 's/^/  /' "$work/hook.log"
