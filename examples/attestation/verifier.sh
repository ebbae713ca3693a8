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
#   verifier.sh check-launch XFER PRIV POLICY  the launch event log replays to
#                                          the quoted PCR 11, and what it logs
#                                          satisfies POLICY (a JSON file)
#   verifier.sh attest XFER PRIV POLICY NONCE  check-quote, then check-launch
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

# sha256 of stdin, hex.
sha256() { openssl dgst -sha256 -r | cut -d' ' -f1; }
unhex() { tr 'a-f' 'A-F' | basenc --base16 -d; }

# check_launch XFER PRIV POLICY: the launch event log (CEL-JSON, records
# whose content.string is one measured item) replays to the quoted PCR 11,
# and the items satisfy the policy: {"args": [...], "image": {annotation:
# value}, "mounts": [allowed destinations], "container_id": "..."}; every
# key optional.
check_launch() {
	local xfer=$1 priv=$2 policy=$3 log=$1/launch.cel.json pcr n i s d quoted items
	[ -s "$priv/pcr11" ] || die "no quoted PCR 11 (check-quote first, with PCR 11 in the quote)"
	quoted=$(cat "$priv/pcr11")
	[ -s "$log" ] || die "event log: no launch.cel.json from the attester"
	n=$(jq -e 'if type == "array" then length else error("not a list") end' "$log" 2>/dev/null) ||
		die "event log: launch.cel.json is not a CEL-JSON list of records"
	[ "$n" -gt 0 ] || die "event log: empty (the launch was not measured)"
	pcr=$(printf '%064d' 0)
	for ((i = 0; i < n; i++)); do
		jq -e --argjson i "$i" '.[$i] | .recnum == $i and .pcr == 11 and .content_type == "oci-vtpm"
			and (.content.string | type) == "string"' "$log" >/dev/null ||
			die "event log: record $i is not an oci-vtpm PCR 11 record numbered $i"
		d=$(jq -r --argjson i "$i" '.[$i].digests[] | select(.hashAlg == "sha256") | .digest' "$log")
		s=$(jq -j --argjson i "$i" '.[$i].content.string' "$log" | sha256)
		[ "$d" = "$s" ] ||
			die "event log: record $i: its sha256 digest is not the digest of its content (tampered)"
		pcr=$({
			printf '%s' "$pcr" | unhex
			printf '%s' "$d" | unhex
		} | sha256)
	done
	[ "$pcr" = "$quoted" ] ||
		die "event log: replay gives PCR 11 = $pcr, the quote says $quoted (log and TPM differ)"
	echo "verifier: event log replays to the quoted PCR 11 ($n records)"
	# One object of every measured item.
	items=$(jq -c '[.[].content.string | fromjson] | add' "$log")
	[ -s "$policy" ] || die "policy: no policy file $policy"
	for k in oci-vtpm container.id image process.args mounts; do
		jq -e --arg k "$k" 'has($k)' <<<"$items" >/dev/null || die "policy: $k was not measured"
	done
	jq -e '(.mounts | type) == "array" and (.image | type) == "object"' <<<"$items" >/dev/null ||
		die "policy: the logged mounts or image are not what oci-vtpm measures"
	[ "$(jq -c '."oci-vtpm".pcr' <<<"$items")" = 11 ] || die "policy: the log is not of PCR 11"

	if jq -e 'has("args")' "$policy" >/dev/null; then
		jq -e --argjson m "$items" '.args == $m["process.args"]' "$policy" >/dev/null ||
			die "policy: process.args is $(jq -c '."process.args"' <<<"$items"), the policy expects $(jq -c .args "$policy")"
	fi
	if jq -e 'has("container_id")' "$policy" >/dev/null; then
		jq -e --argjson m "$items" '.container_id == $m["container.id"]' "$policy" >/dev/null ||
			die "policy: container.id is $(jq -c '."container.id"' <<<"$items"), the policy expects $(jq -c .container_id "$policy")"
	fi
	if jq -e 'has("image")' "$policy" >/dev/null; then
		s=$(jq -r --argjson m "$items" '.image | to_entries[] | select($m.image[.key] != .value)
			| "\(.key) is \($m.image[.key] // "absent"), the policy expects \(.value)"' "$policy" | head -n 1)
		[ -z "$s" ] || die "policy: image $s"
	fi
	if jq -e 'has("mounts")' "$policy" >/dev/null; then
		s=$(jq -r --argjson m "$items" '.mounts as $ok | $m.mounts[] | .destination
			| select(. as $d | $ok | index([$d]) | not)' "$policy" | head -n 1)
		[ -z "$s" ] || die "policy: mount $s is not allowed"
	fi
	echo "verifier: launch satisfies the policy: $(jq -c '{engine, image, "process.args"}' <<<"$items")"
}

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
	# PCR 11, the launch measurements: replayed from the log by check-launch.
	echo "$out" | sed -n 's/^ *11 *: *0x\([0-9A-Fa-f]*\)$/\1/p' | tr 'A-F' 'a-f' >"$priv/pcr11"
	echo "verifier: quote verified (nonce $nonce); PCR 16 = the expected measurement"
	;;
check-launch)
	[ $# -eq 3 ] || usage
	check_launch "$@"
	;;
attest)
	[ $# -eq 4 ] || usage
	"$0" check-quote "$1" "$2" "$4"
	check_launch "$1" "$2" "$3"
	;;
*) usage ;;
esac
