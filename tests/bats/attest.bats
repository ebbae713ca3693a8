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

# at_sh SCRIPT LABEL [KEY=VALUE]...: run SCRIPT in a container of a new
# enabled bundle with these annotations.
at_sh() {
	local b script=$1 label=$2
	shift 2
	b=$(ov_bundle "$label" io.oci-vtpm.enable=true "$@")
	ov_sh "$b" "$script"
	ov_run runc "$(ov_new_id "$label")" "$b"
}

@test "runc: a container without ek-cert has no EK certificate in NV; settings ek_cert=true gives one" {
	ov_requires_init
	run at_sh "$AT_NV_PROBE" plain
	assert_success
	assert_line EK=0 # a working TPM...
	refute_line NV=0 # ...without a certificate at 0x01c00002
	assert_line --regexp '^NV=[1-9]'

	# The settings' default, and the annotation overriding it.
	at_config "$T/ca" '.ek_cert = true'
	run at_sh "$AT_NV_PROBE" bysettings
	assert_success
	assert_line NV=0
	run at_sh "$AT_NV_PROBE" optout io.oci-vtpm.ek-cert=false
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
	# No init: neither master key nor CA.
	ov_hook_refused 'host CA.*oci-vtpm init' "$(ov_bundle noca io.oci-vtpm.enable=true io.oci-vtpm.ek-cert=true)"
	ov_leak_check
}

# at_attest LABEL ID POLICY: the whole flow against container ID (evidence
# collected into $T/xfer-LABEL): credential, nonce, quote, then the
# verifier's check-launch with POLICY; leaves the verifier's state in
# $T/verifier-LABEL and the nonce in $T/nonce-LABEL.
at_attest() {
	local x=$T/xfer-$1 priv=$T/verifier-$1 nonce
	verifier challenge "$x" "$priv" >/dev/null
	tpm_side "$2" activate >/dev/null
	verifier check-secret "$x" "$priv" >/dev/null
	nonce=$(verifier nonce)
	echo "$nonce" >"$T/nonce-$1"
	tpm_side "$2" quote "$nonce" >/dev/null
	verifier attest "$x" "$priv" "$3" "$nonce"
}

# at_launch_refused LABEL POLICY TEXT: the verifier's check-launch of the
# evidence in $T/xfer-LABEL fails, saying TEXT.
at_launch_refused() {
	run verifier check-launch "$T/xfer-$1" "$T/verifier-$1" "$2"
	assert_failure
	assert_output --partial "$3"
}

@test "runc: measured launch: the quote verifies and the log replays; a changed arg, an added mount, another image, a tampered log and an old quote are caught" {
	ov_requires_init
	local b id x=$T/xfer-m priv=$T/verifier-m img=example.com/app@sha256:1111 nonce
	b=$(at_bundle m io.oci-vtpm.ek-cert=true "io.kubernetes.cri.image-name=$img")
	ov_cfg "$b" '.process.env += ["SECRET_TOKEN=hunter2-do-not-log"]'
	# A seccomp profile of every syscall name (allowed, as by default): an
	# event of several KB, which the TPM hashes as an event sequence, not
	# in one TPM2_PCR_Event (1024 bytes at most).
	ov_cfg "$b" --argjson n "$(sed -nE 's/^#define __NR_([a-z0-9_]+) .*/\1/p' /usr/include/x86_64-linux-gnu/asm/unistd_64.h | jq -R . | jq -s .)" \
		'.linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64"], syscalls: [{names: $n, action: "SCMP_ACT_ALLOW"}]}'
	jq --arg img "$img" '{args: ["sleep", "600"], image: {"io.kubernetes.cri.image-name": $img},
		mounts: [.mounts[].destination]}' "$b/config.json" >"$T/policy.json"
	id=$(ov_new_id m)
	ov_run_detached runc "$id" "$b"
	run tpm_side "$id" evidence
	assert_success

	# The log: in the container (read-only) and from the host, the same.
	run ov_exec runc "$id" sh -c 'cat /run/tpm/tpm0.cel.json >/dev/null && echo x >>/run/tpm/tpm0.cel.json'
	assert_failure
	run ovadm log "$id"
	assert_success
	echo "$output" >"$T/host.cel.json"
	assert_output --partial '"content_type":"oci-vtpm"'
	assert_output --partial 'SECRET_TOKEN'
	refute_output --partial 'hunter2'
	jq -e '[.[] | select((.content.string | length) > 3000)] | length == 1' "$T/host.cel.json" >/dev/null ||
		fail "no event over 3000 bytes (the seccomp profile): $(jq -c '[.[].content.string | length]' "$T/host.cel.json")"

	run at_attest m "$id" "$T/policy.json"
	assert_success
	assert_output --partial "quote verified"
	assert_output --partial "event log replays to the quoted PCR 11"
	assert_output --partial "launch satisfies the policy"
	cmp <(jq -S . "$T/host.cel.json") <(jq -S . "$x/launch.cel.json")

	# Replay by hand: tpm2_pcrread in the container agrees with the log.
	local want
	want=$(ov_replay_pcr11 <"$x/launch.cel.json")
	run ov_exec runc "$id" tpm2_pcrread -T "$OV_TCTI" sha256:11
	assert_output --partial "0x${want^^}"

	# An old quote, replayed against a new nonce.
	run verifier attest "$x" "$priv" "$T/policy.json" "$(verifier nonce)"
	assert_failure
	assert_output --partial "nonce"

	# A tampered log entry: the content changed...
	jq '.[5].content.string |= sub("sleep"; "sheep")' "$x/launch.cel.json" >"$T/t.json"
	cp "$x/launch.cel.json" "$T/good.cel.json"
	cp "$T/t.json" "$x/launch.cel.json"
	at_launch_refused m "$T/policy.json" "record 5: its sha256 digest is not the digest of its content"
	# ...or changed with its digests made to match: the replay differs.
	jq '.[5].content.string |= sub("sleep"; "sheep")
		| .[5].digests |= map(if .hashAlg == "sha256" then .digest = "'"$(jq -j '.[5].content.string | sub("sleep"; "sheep")' "$T/good.cel.json" | sha256sum | cut -d' ' -f1)"'" else . end)' \
		"$T/good.cel.json" >"$x/launch.cel.json"
	at_launch_refused m "$T/policy.json" "replay gives PCR 11"
	# ...or a record dropped.
	jq 'del(.[12])' "$T/good.cel.json" >"$x/launch.cel.json"
	at_launch_refused m "$T/policy.json" "replay gives PCR 11"
	cp "$T/good.cel.json" "$x/launch.cel.json"

	# The container extends PCR 11 after its launch: it cannot reset it, so
	# a fresh quote no longer matches the log.
	run ov_exec runc "$id" tpm2_pcrextend -T "$OV_TCTI" "11:sha256=$(printf '%064d' 1)"
	assert_success
	nonce=$(verifier nonce)
	tpm_side "$id" quote "$nonce" >/dev/null
	run verifier attest "$x" "$priv" "$T/policy.json" "$nonce"
	assert_failure
	assert_output --partial "quote verified"
	assert_output --partial "replay gives PCR 11"

	# Another container: a changed arg, an added mount, another image.
	local b2 id2
	b2=$(at_bundle m2 io.oci-vtpm.ek-cert=true "io.kubernetes.cri.image-name=example.com/app@sha256:2222")
	ov_cfg "$b2" '.mounts += [{destination: "/extra", type: "bind", source: "/etc", options: ["rbind", "ro"]}]'
	ov_args "$b2" sleep 601
	id2=$(ov_new_id m2)
	ov_run_detached runc "$id2" "$b2"
	run tpm_side "$id2" evidence
	assert_success
	run at_attest m2 "$id2" "$T/policy.json"
	assert_failure
	assert_output --partial 'policy: process.args is ["sleep","601"]'
	jq '.args = ["sleep", "601"]' "$T/policy.json" >"$T/p2.json"
	at_launch_refused m2 "$T/p2.json" "policy: image io.kubernetes.cri.image-name is example.com/app@sha256:2222"
	jq '.image["io.kubernetes.cri.image-name"] = "example.com/app@sha256:2222"' "$T/p2.json" >"$T/p3.json"
	at_launch_refused m2 "$T/p3.json" "policy: mount /extra is not allowed"
	jq '.mounts += ["/extra"]' "$T/p3.json" >"$T/p4.json"
	run verifier check-launch "$T/xfer-m2" "$T/verifier-m2" "$T/p4.json"
	assert_success

	run ov_delete runc "$id" -f
	assert_success
	run ov_delete runc "$id2" -f
	assert_success
}

# What a container sees of the measured launch: PCR 11 and the log.
AT_MEASURE_PROBE="echo PCR11=\$(tpm2_pcrread -T $OV_TCTI sha256:11 | grep -o '0x[0-9A-F]*');
	[ -r /run/tpm/tpm0.cel.json ] && echo LOG=\$(grep -c '^ *\"recnum\"' /run/tpm/tpm0.cel.json) || echo NOLOG"
AT_ZERO=0x0000000000000000000000000000000000000000000000000000000000000000

# at_probe LABEL [KEY=VALUE]...: run the probe in a fresh container.
at_probe() { at_sh "$AT_MEASURE_PROBE" "$@"; }

@test "runc: measuring is on by default; annotation, env and settings turn it off (PCR 11 zero, no log); a bad value is refused" {
	requires root jq busybox swtpm tpm2-tools hook runc
	run at_probe default
	assert_success
	assert_line LOG=13
	refute_line "PCR11=$AT_ZERO"
	assert_line --regexp '^PCR11=0x[0-9A-F]{64}$'

	run at_probe annotated io.oci-vtpm.measure=false
	assert_success
	assert_line NOLOG
	assert_line "PCR11=$AT_ZERO"

	local b id
	b=$(ov_bundle env io.oci-vtpm.enable=true)
	ov_sh "$b" "$AT_MEASURE_PROBE"
	ov_cfg "$b" '.process.env += ["OCI_VTPM_MEASURE=false"]'
	id=$(ov_new_id env)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line NOLOG
	assert_line "PCR11=$AT_ZERO"

	ov_write_config '.measure = false'
	run at_probe settings
	assert_success
	assert_line NOLOG
	assert_line "PCR11=$AT_ZERO"
	# The annotation overrides the settings.
	run at_probe override io.oci-vtpm.measure=true
	assert_success
	assert_line LOG=13

	run at_probe bad io.oci-vtpm.measure=maybe
	assert_failure
	assert_output --regexp 'annotation io.oci-vtpm.measure: bad value .?"maybe'

	# A TPM 1.2 vTPM is not measured: no log, and `oci-vtpm log` says so.
	ov_write_config .
	b=$(ov_bundle v12 io.oci-vtpm.enable=true io.oci-vtpm.version=1.2)
	ov_args "$b" sleep 600
	id=$(ov_new_id v12)
	ov_run_detached runc "$id" "$b"
	run ovadm log "$id"
	assert_failure
	assert_output --partial "no event log for vTPM 0 (not measured)"
	run ov_delete runc "$id" -f
	assert_success
	run ovadm log "$id"
	assert_failure
	assert_output --partial "no vTPM of container $id"
}

@test "oci-vtpm-runtime (the shim, no hook): the launch is measured before create; PCR 11 replays from the log; opt-out works" {
	requires root jq busybox swtpm tpm2-tools hook runc
	SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}
	[ -x "$SHIM" ] || fail "$SHIM not built"
	shim_runc
	local b id want
	b=$(ov_bundle shimm io.oci-vtpm.enable=true)
	ov_cfg "$b" 'del(.hooks)'
	ov_args "$b" sleep 600
	id=$(ov_new_id shimm)
	ov_run_detached runc "$id" "$b"
	run ovadm log "$id"
	assert_success
	want=$(ov_replay_pcr11 <<<"$output")
	# The measured mounts are the runtime's: the shim's bind of /run/tpm too.
	jq -e '[.[].content.string | fromjson] | add | .mounts | map(.destination) | index("/run/tpm")' \
		<<<"$output" >/dev/null || fail "the shim's /run/tpm mount was not measured: $output"
	run ov_exec runc "$id" sh -c "grep -c '^ *\"recnum\"' /run/tpm/tpm0.cel.json; tpm2_pcrread -T $OV_TCTI sha256:11"
	assert_success
	assert_line 13
	assert_output --partial "0x${want^^}"
	run ov_delete runc "$id" -f
	assert_success

	run at_probe shimoff io.oci-vtpm.measure=false
	assert_success
	assert_line NOLOG
	assert_line "PCR11=$AT_ZERO"
}
