#!/bin/sh
# The attesting side: runs inside the container, against its vTPM.
#
#   tpm-side.sh evidence XFER        EK certificates (from NV), a new AK, and
#                                    the workload's measurement into PCR 16
#   tpm-side.sh activate XFER        decrypt the verifier's credential (EK + AK)
#   tpm-side.sh quote XFER NONCE     quote PCRs sha256:0-7,11,16 with NONCE, and
#                                    hand over the launch event log (PCR 11)
#
# XFER is where the verifier's and the TPM's files meet (a directory shared
# with the host in this example; a network protocol in real life). Only
# public data goes there; the TPM's saved contexts stay in $ATTEST_STATE
# (default /tmp/attest), private to the container.
#
# The TCTI comes from $TPM2TOOLS_TCTI: device:/dev/tpmrm0 where the vTPM is
# a kernel device (vtpm_proxy), swtpm:path=/run/tpm/tpm0.sock on the socket
# backend. POSIX sh: runs under busybox.
set -eu

usage() {
	echo "usage: $0 evidence XFER | activate XFER | quote XFER NONCE" >&2
	exit 2
}
[ $# -ge 2 ] || usage
: "${TPM2TOOLS_TCTI:?set TPM2TOOLS_TCTI (device:/dev/tpmrm0 or swtpm:path=/run/tpm/tpm0.sock)}"
export TPM2TOOLS_TCTI
cmd=$1 xfer=$2
st=${ATTEST_STATE:-/tmp/attest}
mkdir -p "$st"
# The measurement this example's workload makes into PCR 16 (the verifier
# knows the same string).
MEASUREMENT="oci-vtpm attestation example workload"
# Where oci-vtpm puts the launch event log of vTPM 0 (read-only).
LAUNCH_LOG=${ATTEST_LAUNCH_LOG:-/run/tpm/tpm0.cel.json}

# Transient objects left loaded by a tool (a raw TCTI has no resource
# manager, and swtpm has three object slots).
flush() { tpm2_flushcontext -t >/dev/null 2>&1 || true; }

case $cmd in
evidence)
	# The certificates the host CA made when this vTPM was manufactured.
	tpm2_getekcertificate -o "$xfer/ek-rsa.der" -o "$xfer/ek-ecc.der" >/dev/null
	tpm2_nvread 0x01c08000 -o "$xfer/platform.der" >/dev/null 2>&1 || true
	# The RSA EK from the TCG default template (the key in ek-rsa.der), and
	# an attestation key under it: restricted, signing, fixedTPM.
	tpm2_createek -c "$st/ek.ctx" -G rsa -u "$st/ek.pub" >/dev/null
	flush
	tpm2_createak -C "$st/ek.ctx" -c "$st/ak.ctx" -G ecc -g sha256 -s ecdsa \
		-u "$xfer/ak.pub" -n "$xfer/ak.name" >/dev/null
	flush
	# What a workload does at start: measure itself into a PCR. PCRs are
	# volatile, so this is once per start of the container (once per "boot").
	printf '%s' "$MEASUREMENT" >"$st/measurement"
	tpm2_pcrextend "16:sha256=$(sha256sum "$st/measurement" | cut -d' ' -f1)"
	echo "evidence: EK certificates, AK public and name in $xfer; PCR 16 extended"
	;;
activate)
	# Only the TPM holding the certified EK, with this AK loaded, can
	# recover the verifier's secret. The EK's policy: PolicySecret(endorsement).
	tpm2_startauthsession --policy-session -S "$st/session.ctx"
	tpm2_policysecret -S "$st/session.ctx" -c e >/dev/null
	tpm2_activatecredential -c "$st/ak.ctx" -C "$st/ek.ctx" -i "$xfer/cred.blob" \
		-o "$xfer/secret.out" -P "session:$st/session.ctx" >/dev/null
	tpm2_flushcontext -s >/dev/null 2>&1 || true
	flush
	echo "activate: credential decrypted into $xfer/secret.out"
	;;
quote)
	[ $# -eq 3 ] || usage
	nonce=$3
	tpm2_quote -c "$st/ak.ctx" -l sha256:0,1,2,3,4,5,6,7,11,16 -q "$nonce" -g sha256 \
		-m "$xfer/quote.msg" -s "$xfer/quote.sig" -o "$xfer/quote.pcrs" >/dev/null
	flush
	# The launch measurements oci-vtpm made into PCR 11 before this
	# container's first process ran: the verifier replays them.
	if [ -r "$LAUNCH_LOG" ]; then
		rm -f "$xfer/launch.cel.json"
		cat "$LAUNCH_LOG" >"$xfer/launch.cel.json"
	fi
	echo "quote: PCRs sha256:0-7,11,16 quoted with the nonce into $xfer"
	;;
*) usage ;;
esac
