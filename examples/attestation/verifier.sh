#!/usr/bin/env bash
# The verifier: runs on the host (or anywhere that has the CA certificate).
# Needs openssl and tpm2-tools (-T none: no TPM is used here).
#
#   verifier.sh check-ek XFER CA_CERT      the EK (and platform) certificates
#                                          chain to the host CA
#   verifier.sh challenge XFER PRIV        check the AK, make a credential for it
#                                          bound to the certified EK
#   verifier.sh check-secret XFER PRIV     the TPM recovered the credential's secret
#   verifier.sh nonce                      a fresh nonce (hex) for a quote
#   verifier.sh check-quote XFER PRIV NONCE  the quote is signed by the AK bound
#                                          to the EK, over that nonce, and PCR 16
#                                          holds the expected measurement
#
# XFER: the files the TPM side wrote; PRIV: the verifier's private
# directory (the secret it must never show the attester). Each check prints
# one line and exits non-zero when it fails.
set -euo pipefail

# Must match tpm-side.sh: the workload's measurement, extended into PCR 16.
MEASUREMENT="oci-vtpm attestation example workload"

die() {
	echo "verifier: FAIL: $*" >&2
	exit 1
}
usage() {
	sed -n '2,/^set/p' "$0" | sed -n 's/^#//p' >&2
	exit 2
}
hex() { od -An -tx1 -v "$1" | tr -d ' \n'; }
# The EK public key from the certificate: what makecredential encrypts to.
# Never the EK the attester reports: only the certificate is vouched for.
ek_pem() { openssl x509 -inform der -in "$1/ek-rsa.der" -pubkey -noout; }

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
check-ek)
	[ $# -eq 2 ] || usage
	xfer=$1 ca=$2
	for c in ek-rsa ek-ecc platform; do
		[ -s "$xfer/$c.der" ] || {
			[ "$c" = platform ] && continue
			die "$c.der: no EK certificate"
		}
		openssl x509 -inform der -in "$xfer/$c.der" -out "$xfer/$c.pem" ||
			die "$c.der is not a certificate"
		out=$(openssl verify -x509_strict -CAfile "$ca" "$xfer/$c.pem" 2>&1) ||
			die "$c.der does not chain to $ca: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
	done
	# An EK certificate (tcg-kp-EKCertificate), not just any certificate.
	openssl x509 -in "$xfer/ek-rsa.pem" -noout -ext extendedKeyUsage 2>/dev/null |
		grep -q '2\.23\.133\.8\.1' || die "ek-rsa.der is not an EK certificate"
	echo "verifier: EK certificates chain to $ca:" \
		"$(openssl x509 -in "$xfer/ek-rsa.pem" -noout -ext subjectAltName | tail -n 1 | tr -s ' ')"
	;;
challenge)
	[ $# -eq 2 ] || usage
	xfer=$1 priv=$2
	mkdir -p "$priv"
	chmod 0700 "$priv"
	# The AK: restricted signing key that never leaves its TPM...
	attrs=$(tpm2_print -t TPM2B_PUBLIC "$xfer/ak.pub" | sed -n '/^attributes:/,/raw/s/^ *value: //p')
	for a in fixedtpm fixedparent sensitivedataorigin restricted sign; do
		[[ "|$attrs|" == *"|$a|"* ]] || die "the AK lacks $a ($attrs)"
	done
	# ...and ak.name is the name of that public area: sha256 of TPMT_PUBLIC.
	name=$(hex "$xfer/ak.name")
	calc=000b$(tail -c +3 "$xfer/ak.pub" | sha256sum | cut -d' ' -f1)
	[ "$name" = "$calc" ] || die "ak.name ($name) is not the name of ak.pub ($calc)"
	# A secret only the TPM with the certified EK and this AK can recover.
	head -c 32 /dev/urandom >"$priv/secret"
	ek_pem "$xfer" >"$priv/ek-rsa.pub.pem"
	rm -f "$xfer/cred.blob"
	tpm2_makecredential -T none -u "$priv/ek-rsa.pub.pem" -G rsa -s "$priv/secret" -n "$name" \
		-o "$xfer/cred.blob" >/dev/null 2>&1 || die "tpm2_makecredential"
	echo "verifier: AK $name checked; credential for it under the certified EK in $xfer/cred.blob"
	;;
check-secret)
	[ $# -eq 2 ] || usage
	xfer=$1 priv=$2
	[ -s "$xfer/secret.out" ] || die "no secret.out"
	cmp -s "$priv/secret" "$xfer/secret.out" ||
		die "the recovered secret is wrong: the AK is not in the TPM of the certified EK"
	cp "$xfer/ak.pub" "$priv/ak.pub" # from now on, this AK speaks for that TPM
	echo "verifier: credential activated: the AK is bound to the certified EK"
	;;
nonce)
	od -An -tx1 -N 20 /dev/urandom | tr -d ' \n'
	echo
	;;
check-quote)
	[ $# -eq 3 ] || usage
	xfer=$1 priv=$2 nonce=$3
	[ -s "$priv/ak.pub" ] || die "no AK bound to a certified EK yet (check-secret)"
	out=$(tpm2_checkquote -u "$priv/ak.pub" -m "$xfer/quote.msg" -s "$xfer/quote.sig" \
		-f "$xfer/quote.pcrs" -g sha256 -q "$nonce" 2>&1) ||
		die "tpm2_checkquote: the quote does not verify with this AK and nonce: $(echo "$out" | grep -m1 ERROR || true)"
	# PCR 16: one extension of the measurement from zero.
	want=$({
		head -c 32 /dev/zero
		printf '%s' "$MEASUREMENT" | openssl dgst -sha256 -binary
	} | openssl dgst -sha256 -r | cut -d' ' -f1)
	got=$(echo "$out" | sed -n 's/^ *16 *: *0x\([0-9A-Fa-f]*\)$/\1/p' | tr 'A-F' 'a-f')
	[ "$got" = "$want" ] || die "PCR 16 is ${got:-missing}, expected $want"
	echo "verifier: quote verified (nonce $nonce); PCR 16 = the expected measurement"
	;;
*) usage ;;
esac
