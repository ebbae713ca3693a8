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
#   6. The launch event log oci-vtpm wrote (/run/tpm/tpm0.cel.json) replays
#      to the quoted PCR 11, and its args and mounts satisfy a policy.
#
# Host and container exchange files through a shared directory (/attest/xfer
# in the container); a real verifier talks over the network. Uses the device
# backend where /dev/vtpmx exists (TCTI device:/dev/tpmrm0), else the socket
# backend (TCTI swtpm:path=/run/tpm/tpm0.sock; see docs/guide.md on what that
# backend's quotes are worth). Needs root, runc, swtpm, tpm2-tools, busybox,
# jq, openssl, and `make` run first (OCI_VTPM_BUILD names another build dir).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/examples/lib.sh"
build=${OCI_VTPM_BUILD:-$repo/build}
hook=${OCI_VTPM_HOOK:-$build/oci-vtpm-hook}
cli=${OCI_VTPM_CLI:-$build/oci-vtpm}
need_root
need_built "$hook" "$cli"
need_commands runc swtpm tpm2_createak busybox jq openssl

work=$(example_workdir attest)
id=oci-vtpm-attest-$$
rt() { runc --root "$work/runc" "$@"; }
cleanup() {
	rt delete -f "$id" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

pick_backend "== this kernel has no vtpm_proxy: socket backend (see docs/guide.md, \"Backends\")"

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
busybox_rootfs "$bundle/rootfs" all run attest/bin attest/xfer
mkdir -p "$work/xfer"
# shellcheck disable=SC2016 # a jq program
runc_bundle "$bundle" "$hook" "$work/config.json" --arg here "$here" --arg xfer "$work/xfer" '
	.process.args = ["sleep", "600"]
	| .process.env += ["PATH=/bin:/usr/bin"]
	| .annotations["io.oci-vtpm.ek-cert"] = "true"
	| .mounts += [ro("/attest/bin"; $here),
		{destination: "/attest/xfer", type: "bind", source: $xfer, options: ["rbind", "rw"]}]'
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
echo "== 6. host: the launch event log against the quoted PCR 11, and a policy"
# The policy: what this verifier expects the container to run.
jq '{args: .process.args, mounts: [.mounts[].destination]}' "$bundle/config.json" >"$priv/policy.json"
verifier check-launch "$work/xfer" "$priv" "$priv/policy.json" | sed 's/^/   /'
echo "== and what fails:"
if verifier check-quote "$work/xfer" "$priv" "$(verifier nonce)" 2>&1 | sed 's/^/   /'; then
	echo "   a quote checked with another nonce verified" >&2
	exit 1
fi
echo "== attestation succeeded"
