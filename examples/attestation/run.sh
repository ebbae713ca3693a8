#!/usr/bin/env bash
# examples/attestation/run.sh: remote attestation of a container's vTPM,
# end to end, with runc and oci-vtpm-hook.
#
#   1. `oci-vtpm init` makes the master key and the host CA (in a temp dir).
#   2. A busybox container asks for an EK-certified vTPM
#      (io.oci-vtpm.ek-cert=true): the hook manufactures it, the host CA
#      signs its EK certificates.
#   3. In the container (tpm-side.sh evidence): the EK certificates from NV,
#      a new AK under the EK, the workload's measurement into PCR 16.
#   4. On the host (verifier.sh): the EK certificates chain to the host CA;
#      a credential for the AK is made with the certified EK's public key
#      (tpm2_makecredential -T none); the container recovers it
#      (tpm2_activatecredential), which binds the AK to the certified EK.
#   5. The verifier sends a nonce; the container quotes PCRs with it
#      (tpm2_quote); the verifier checks the quote with the bound AK and the
#      nonce (tpm2_checkquote) and PCR 16 against the expected measurement.
#
# Host and container exchange files through a shared directory (/attest/xfer
# in the container); a real verifier talks over the network. Uses the device
# backend where /dev/vtpmx exists (TCTI device:/dev/tpmrm0), else the socket
# backend (TCTI swtpm:path=/run/tpm/tpm0.sock; see the README on what that
# backend's quotes are worth). Needs root, runc, swtpm, tpm2-tools, busybox,
# jq, openssl, and `make` run first (OCI_VTPM_BUILD names another build dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${OCI_VTPM_BUILD:-$repo/build}
hook=${OCI_VTPM_HOOK:-$build/oci-vtpm-hook}
cli=${OCI_VTPM_CLI:-$build/oci-vtpm}
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
for f in "$hook" "$cli"; do
	[ -x "$f" ] || { echo "$0: $f not built: run make" >&2; exit 1; }
done
for c in runc swtpm tpm2_createak busybox jq openssl; do
	command -v "$c" >/dev/null || { echo "$0: $c not installed" >&2; exit 1; }
done

work=$(mktemp -d /tmp/oci-vtpm-attest.XXXXXX)
chmod 0755 "$work" # swtpm runs as tss below it
id=oci-vtpm-attest-$$
rt() { runc --root "$work/runc" "$@"; }
cleanup() {
	rt delete -f "$id" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

if [ -e /dev/vtpmx ] || modprobe tpm_vtpm_proxy 2>/dev/null; then
	backend=device tcti=device:/dev/tpmrm0
else
	backend=socket tcti=swtpm:path=/run/tpm/tpm0.sock
	echo "== this kernel has no vtpm_proxy: socket backend (see the README)"
fi

# 1. Settings under $work; the host CA and master key made by init.
jq -n --arg w "$work" --arg b "$backend" '{run_dir: ($w + "/run"), state_dir: ($w + "/state"),
	backend: $b, log_file: ($w + "/hook.log"), master_key: ($w + "/etc/master.key"),
	ca_key: ($w + "/etc/ca/ca.key"), ca_cert: ($w + "/etc/ca/ca.pem")}' >"$work/config.json"
echo "== oci-vtpm init"
"$cli" --config "$work/config.json" init | sed 's/^/   /'
ca=$work/etc/ca/ca.pem

# 2. The container: busybox, tpm2-tools from the host's /usr, this
# directory read-only at /attest/bin, the exchange directory at /attest/xfer.
bundle=$work/bundle
mkdir -p "$bundle/rootfs"/{bin,dev,proc,sys,usr,lib,lib64,tmp,run,attest/bin,attest/xfer} "$work/xfer"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for a in $("$bundle/rootfs/bin/busybox" --list); do
	[ -e "$bundle/rootfs/bin/$a" ] || ln -s busybox "$bundle/rootfs/bin/$a"
done
(cd "$bundle" && runc spec)
hook_entry() {
	jq -n --arg h "$hook" --arg s "$1" --arg c "$work/config.json" \
		'{path: $h, args: ["oci-vtpm-hook", $s], env: ["OCI_VTPM_CONFIG=" + $c], timeout: 30}'
}
ro() { jq -n --arg d "$1" --arg s "$2" '{destination: $d, type: "bind", source: $s, options: ["rbind", "ro"]}'; }
jq --argjson cr "$(hook_entry createRuntime)" --argjson ps "$(hook_entry poststop)" \
	--argjson usr "$(ro /usr /usr)" --argjson lib "$(ro /lib /lib)" --argjson lib64 "$(ro /lib64 /lib64)" \
	--argjson bin "$(ro /attest/bin "$here")" --arg xfer "$work/xfer" '
	.process.terminal = false
	| .process.args = ["sleep", "600"]
	| .process.env += ["PATH=/bin:/usr/bin"]
	| .root.readonly = false
	| .annotations = {"io.oci-vtpm.enable": "true", "io.oci-vtpm.ek-cert": "true"}
	| .mounts += [$usr, $lib, $lib64, $bin,
		{destination: "/attest/xfer", type: "bind", source: $xfer, options: ["rbind", "rw"]}]
	| .hooks = {createRuntime: [$cr], poststop: [$ps]}' \
	"$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"
echo "== runc run -d $id (io.oci-vtpm.ek-cert=true, $backend backend)"
rt run -d --bundle "$bundle" "$id" </dev/null >"$work/run.out" 2>&1 || {
	cat "$work/run.out" "$work/hook.log" >&2
	exit 1
}
in_container() { rt exec --env "TPM2TOOLS_TCTI=$tcti" "$id" /attest/bin/tpm-side.sh "$@" </dev/null; }
verifier() { "$here/verifier.sh" "$@"; }
priv=$work/verifier # never shown to the container

echo "== 3. container: evidence"
in_container evidence /attest/xfer | sed 's/^/   /'
echo "== 4. host: EK certificates, then a credential for the AK"
verifier check-ek "$work/xfer" "$ca" | sed 's/^/   /'
verifier challenge "$work/xfer" "$priv" | sed 's/^/   /'
in_container activate /attest/xfer | sed 's/^/   /'
verifier check-secret "$work/xfer" "$priv" | sed 's/^/   /'
echo "== 5. host: nonce; container: quote; host: check"
nonce=$(verifier nonce)
in_container quote /attest/xfer "$nonce" | sed 's/^/   /'
verifier check-quote "$work/xfer" "$priv" "$nonce" | sed 's/^/   /'
echo "== and what fails:"
if verifier check-quote "$work/xfer" "$priv" "$(verifier nonce)" 2>&1 | sed 's/^/   /'; then
	echo "   a quote checked with another nonce verified" >&2
	exit 1
fi
echo "== attestation succeeded"
