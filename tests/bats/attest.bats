#!/usr/bin/env bats
# shellcheck disable=SC2016 # jq programs in single quotes
# EK certificates and remote attestation, with runc and the hook (socket
# backend): the flow of examples/attestation (its tpm-side.sh runs in the
# container, its verifier.sh on the host), and what must fail. See
# helpers.bash for the harness; every test ends with its leak check.

load helpers

EXAMPLE=$OV_REPO/examples/attestation

setup_file() { ov_setup_file; }
setup() {
	ov_setup
	at_config "$T/ca"
}
teardown() { ov_teardown; }

# at_config CA_DIR [JQ-FILTER]: the test settings, a master key under $T and
# the host CA in CA_DIR.
at_config() {
	ov_write_config ".master_key = \"$T/keys/master.key\" | .ca_key = \"$1/ca.key\"
		| .ca_cert = \"$1/ca.pem\" | ${2:-.}"
}

# at_bundle LABEL [KEY=VALUE]...: an enabled bundle whose container sleeps,
# with the example's scripts at /attest/bin (ro) and $T/xfer-LABEL at
# /attest/xfer (rw); prints the bundle path.
at_bundle() {
	local label=$1 b
	shift
	mkdir -p "$T/xfer-$label"
	b=$(ov_bundle "$label" io.oci-vtpm.enable=true "$@")
	ov_cfg "$b" --arg e "$EXAMPLE" --arg x "$T/xfer-$label" '.mounts += [
		{destination: "/attest/bin", type: "bind", source: $e, options: ["rbind", "ro"]},
		{destination: "/attest/xfer", type: "bind", source: $x, options: ["rbind", "rw"]}]'
	ov_args "$b" sleep 600
	echo "$b"
}

# tpm_side ID STEP [ARGS]: the example's attesting side in container ID.
tpm_side() {
	local id=$1
	shift
	ov_exec runc "$id" env "TPM2TOOLS_TCTI=$OV_TCTI" /attest/bin/tpm-side.sh "$1" /attest/xfer "${@:2}"
}

verifier() { timeout -k 5 "$OV_TIMEOUT" "$EXAMPLE/verifier.sh" "$@"; }

# at_evidence LABEL ID: run container ID from a fresh ek-cert bundle and
# collect its evidence into $T/xfer-LABEL.
at_evidence() {
	local b
	b=$(at_bundle "$1" io.oci-vtpm.ek-cert=true)
	ov_run_detached runc "$2" "$b"
	run tpm_side "$2" evidence
	if [ "$status" -ne 0 ] || [ ! -s "$T/xfer-$1/ek-rsa.der" ]; then
		fail "no EK certificate from the vTPM (is ov_manufacture wired into lib/vtpm.c?): $output"
	fi
}

@test "runc: EK-certified vTPM: certificates chain to the host CA, AK bound by credential, quote verifies; a wrong nonce fails" {
	ov_requires_init
	local id x=$T/xfer-a priv=$T/verifier nonce
	id=$(ov_new_id a)
	at_evidence a "$id"

	# The certificates: RSA and ECC EK, platform; chained to the host CA.
	run verifier check-ek "$x" "$T/ca/ca.pem"
	assert_success
	assert_output --partial "id:49424D00"
	[ -s "$x/ek-ecc.der" ] && [ -s "$x/platform.der" ] || fail "no ECC EK or platform certificate"
	run openssl x509 -inform der -in "$x/platform.der" -noout -ext subjectAltName
	assert_output --partial "2.23.133.5.1.1=oci-vtpm"

	# The credential: only the TPM of the certified EK recovers it.
	run verifier challenge "$x" "$priv"
	assert_success
	run tpm_side "$id" activate
	assert_success
	run verifier check-secret "$x" "$priv"
	assert_success

	# The quote, over the verifier's nonce, by the bound AK.
	nonce=$(verifier nonce)
	run tpm_side "$id" quote "$nonce"
	assert_success
	run verifier check-quote "$x" "$priv" "$nonce"
	assert_success
	assert_output --partial "quote verified"

	# Negative: the same quote against another nonce.
	run verifier check-quote "$x" "$priv" "$(verifier nonce)"
	assert_failure
	assert_output --partial "nonce"
	# Negative: tpm2_checkquote itself, with a wrong nonce.
	run tpm2_checkquote -u "$priv/ak.pub" -m "$x/quote.msg" -s "$x/quote.sig" -f "$x/quote.pcrs" \
		-g sha256 -q "00$nonce"
	assert_failure
	# Negative: an edited quote message.
	cp "$x/quote.msg" "$T/quote.msg"
	# Flip a byte (writing a constant would change nothing when the byte
	# already had that value).
	local byte
	byte=$(od -An -tu1 -j40 -N1 "$T/quote.msg" | tr -d " ")
	# shellcheck disable=SC2059 # the format is the octal escape we build
	printf "\\$(printf %o $((byte ^ 0xff)))" | dd of="$T/quote.msg" bs=1 seek=40 conv=notrunc 2>/dev/null
	! cmp -s "$T/quote.msg" "$x/quote.msg" || fail "the quote message did not change"
	run tpm2_checkquote -u "$priv/ak.pub" -m "$T/quote.msg" -s "$x/quote.sig" -g sha256 -q "$nonce"
	assert_failure

	# Negative: a credential made for another EK (not this TPM's) cannot be
	# activated, so check-secret fails.
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/other.key" 2>/dev/null
	openssl pkey -in "$T/other.key" -pubout -out "$T/other.pem"
	head -c 32 /dev/urandom >"$priv/secret"
	rm -f "$x/secret.out"
	run tpm2_makecredential -T none -u "$T/other.pem" -G rsa -s "$priv/secret" \
		-n "$(od -An -tx1 -v "$x/ak.name" | tr -d ' \n')" -o "$x/cred.blob"
	assert_success
	run tpm_side "$id" activate
	assert_failure
	run verifier check-secret "$x" "$priv"
	assert_failure

	run ov_delete runc "$id" -f
	assert_success
}

@test "runc: an EK certificate from a vTPM manufactured under another CA fails openssl verify" {
	ov_requires_init
	local id1 id2
	id1=$(ov_new_id ca1)
	at_evidence ca1 "$id1"

	# A second CA, and a vTPM manufactured under it.
	at_config "$T/ca2"
	run ovadm init
	assert_success
	assert_output --partial "created host CA $T/ca2/ca.pem"
	id2=$(ov_new_id ca2)
	at_evidence ca2 "$id2"

	# Each chains to its own CA only.
	run verifier check-ek "$T/xfer-ca1" "$T/ca/ca.pem"
	assert_success
	run verifier check-ek "$T/xfer-ca2" "$T/ca2/ca.pem"
	assert_success
	run verifier check-ek "$T/xfer-ca2" "$T/ca/ca.pem"
	assert_failure
	assert_output --partial "does not chain"
	run openssl verify -CAfile "$T/ca/ca.pem" "$T/xfer-ca2/ek-rsa.pem"
	assert_failure
	run openssl verify -CAfile "$T/ca/ca.pem" "$T/xfer-ca2/ek-ecc.pem"
	assert_failure
	run openssl verify -CAfile "$T/ca2/ca.pem" "$T/xfer-ca1/ek-rsa.pem"
	assert_failure

	run ov_delete runc "$id1" -f
	assert_success
	run ov_delete runc "$id2" -f
	assert_success
}

# at_nv_probe: a container script printing NV=<rc of tpm2_nvread 0x01c00002>
# and EK=<rc of tpm2_createek>.
AT_NV_PROBE="cd /tmp; tpm2_nvread -T $OV_TCTI 0x01c00002 -o c.der >/dev/null 2>&1; echo NV=\$?;
	tpm2_createek -T $OV_TCTI -c ek.ctx -G rsa -u ek.pub >/dev/null 2>&1; echo EK=\$?"

@test "runc: a container without ek-cert has no EK certificate in NV; settings ek_cert=true gives one" {
	ov_requires_init
	local b id
	b=$(ov_bundle plain io.oci-vtpm.enable=true)
	ov_sh "$b" "$AT_NV_PROBE"
	id=$(ov_new_id plain)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line EK=0 # a working TPM...
	refute_line NV=0 # ...without a certificate at 0x01c00002
	assert_line --regexp '^NV=[1-9]'

	# The settings' default, and the annotation overriding it.
	at_config "$T/ca" '.ek_cert = true'
	b=$(ov_bundle bysettings io.oci-vtpm.enable=true)
	ov_sh "$b" "$AT_NV_PROBE"
	id=$(ov_new_id bysettings)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line NV=0
	b=$(ov_bundle optout io.oci-vtpm.enable=true io.oci-vtpm.ek-cert=false)
	ov_sh "$b" "$AT_NV_PROBE"
	id=$(ov_new_id optout)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line EK=0
	refute_line NV=0
}

@test "runc: a named EK-certified vTPM keeps its certificate across containers (restored, not remanufactured)" {
	ov_requires_init
	local b id c1 c2
	b=$(ov_bundle n1 io.oci-vtpm.enable=true io.oci-vtpm.ek-cert=true io.oci-vtpm.name=certified)
	ov_sh "$b" "tpm2_nvread -T $OV_TCTI 0x01c00002 2>/dev/null | sha256sum | sed 's/^/CERT=/'"
	id=$(ov_new_id n1)
	run ov_run runc "$id" "$b"
	assert_success
	c1=$(sed -n 's/^CERT=\([0-9a-f]\{64\}\).*/\1/p' <<<"$output")
	id=$(ov_new_id n2)
	run ov_run runc "$id" "$b"
	assert_success
	c2=$(sed -n 's/^CERT=\([0-9a-f]\{64\}\).*/\1/p' <<<"$output")
	[ -n "$c1" ] && [ "$c1" = "$c2" ] || fail "certificate changed across restarts: '$c1' -> '$c2'"
	# The empty input's digest would mean no certificate at all.
	[ "$c1" != e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ] ||
		fail "no certificate in NV"
}

@test "hook: ek-cert without a host CA fails in one line naming \`oci-vtpm init\`, nothing left" {
	requires root jq busybox swtpm hook nsenter
	local b id
	# No init: neither master key nor CA.
	b=$(ov_bundle noca io.oci-vtpm.enable=true io.oci-vtpm.ek-cert=true)
	id=$(ov_new_id noca)
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
	ov_snapshot
	run --separate-stderr ov_hook createRuntime "$T/state.json"
	ov_assert_hook_error 'host CA.*oci-vtpm init'
	ov_assert_no_new_files
	ov_leak_check
}
