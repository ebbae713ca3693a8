#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2030,SC2031,SC2046,SC2001
# (jq/sh programs in single quotes; bats `run` sets output in the test)
# Core integration tests for oci-vtpm-hook, socket backend, runc and crun.
# See helpers.bash for the harness; every test ends with a leak check.

load helpers

setup_file() { ov_setup_file; }
setup() { ov_setup; }
teardown() { ov_teardown; }

# A non-zero sha256 digest to extend PCR 16 with.
DIGEST=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

# The PCR value after one extend of a zero PCR: sha256(0^32 || digest).
expected_pcr() {
	{
		head -c 32 /dev/zero
		# shellcheck disable=SC2059 # the format is the \x-escaped digest
		printf "$(sed 's/../\\x&/g' <<<"$1")"
	} | sha256sum | cut -d' ' -f1 | tr '[:lower:]' '[:upper:]'
}

requires_runtime_stack() {
	requires root jq busybox swtpm tpm2-tools hook "$1"
}

# ----------------------------------------------------------------------------
# The container reaches its own TPM.

tpm_from_inside() {
	local rt=$1 b id
	requires_runtime_stack "$rt"
	b=$(ov_bundle tpm io.oci-vtpm.enable=true)
	ov_sh "$b" "
		ls /run/tpm
		echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8)
		echo BEFORE=\$(tpm2_pcrread -T $OV_TCTI sha256:16 | grep -o '0x[0-9A-Fa-f]*')
		tpm2_pcrextend -T $OV_TCTI 16:sha256=$DIGEST || echo EXTEND_FAILED
		echo AFTER=\$(tpm2_pcrread -T $OV_TCTI sha256:16 | grep -o '0x[0-9A-Fa-f]*')
		echo ENV_RANDOM=\$(TPM2TOOLS_TCTI=$OV_TCTI tpm2_getrandom --hex 4)"
	id=$(ov_new_id tpm)

	run ov_run "$rt" "$id" "$b"
	assert_success
	assert_line tpm0.sock
	assert_line tpm0.sock.ctrl
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	assert_line "BEFORE=0x$(printf '0%.0s' {1..64})"
	refute_line EXTEND_FAILED
	assert_line "AFTER=0x$(expected_pcr "$DIGEST")"
	assert_line --regexp '^ENV_RANDOM=[0-9a-f]{8}$'

	# `run` deleted the container: poststop has cleaned up.
	ov_leak_check
}

@test "runc: annotated container gets a TPM (getrandom, pcrextend/pcrread)" {
	tpm_from_inside runc
}

@test "crun: annotated container gets a TPM (getrandom, pcrextend/pcrread)" {
	tpm_from_inside crun
}

# ----------------------------------------------------------------------------
# Containers that do not ask get nothing.

no_tpm_unless_enabled() {
	local rt=$1 b id ann
	requires_runtime_stack "$rt"
	for ann in "" io.oci-vtpm.enable=false; do
		b=$(ov_bundle "plain${ann:+-false}" ${ann:+"$ann"})
		ov_sh "$b" 'if [ -e /run/tpm ]; then echo HAS_TPM; ls -la /run/tpm; else echo NO_TPM; fi'
		id=$(ov_new_id plain)
		run ov_run "$rt" "$id" "$b"
		assert_success # so the hook exited 0 at createRuntime and poststop
		assert_output NO_TPM
		[ ! -e "$b/rootfs/run/tpm" ] || fail "hook created $b/rootfs/run/tpm (annotation: '${ann:-none}')"
		if [ -n "$(ov_run_entries)" ]; then
			fail "run_dir not empty for a container without a TPM (annotation: '${ann:-none}'): $(ov_run_entries)"
		fi
		[ "$(ov_swtpm_count)" -eq 0 ] || fail "swtpm started for a container without a TPM"
	done
}

@test "runc: container without io.oci-vtpm.enable=true gets no TPM and nothing on the host" {
	no_tpm_unless_enabled runc
}

@test "crun: container without io.oci-vtpm.enable=true gets no TPM and nothing on the host" {
	no_tpm_unless_enabled crun
}

@test "hook: createRuntime and poststop on a bundle without the annotation exit 0 and do nothing" {
	requires root jq busybox hook nsenter
	local b id ann stage
	for ann in "" io.oci-vtpm.enable=false; do
		b=$(ov_bundle "plain${ann:+-false}" ${ann:+"$ann"})
		id=$(ov_new_id plain)
		ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
		ov_snapshot
		for stage in createRuntime poststop; do
			run --separate-stderr ov_hook "$stage" "$T/state.json"
			assert_success
			[ -z "$stderr" ] || fail "$stage wrote to stderr: $stderr"
		done
		ov_assert_no_new_files
	done
}

# ----------------------------------------------------------------------------
# Two containers at once have two different TPMs.

two_containers() {
	local rt=$1 b1 b2 id1 id2 ek1 ek2
	requires_runtime_stack "$rt"
	b1=$(ov_bundle one io.oci-vtpm.enable=true)
	b2=$(ov_bundle two io.oci-vtpm.enable=true)
	ov_args "$b1" sleep 600
	ov_args "$b2" sleep 600
	id1=$(ov_new_id one)
	id2=$(ov_new_id two)
	ov_run_detached "$rt" "$id1" "$b1"
	ov_run_detached "$rt" "$id2" "$b2"

	# Host side while they live.
	[ -f "$(ov_slot "$id1")/record.json" ] || fail "no $(ov_slot "$id1")/record.json while $id1 runs"
	[ -f "$(ov_slot "$id2")/record.json" ] || fail "no $(ov_slot "$id2")/record.json while $id2 runs"
	[ "$(ov_swtpm_count "$id1")" -eq 1 ] || fail "expected 1 swtpm for $id1: $(ov_ps $(ov_swtpm_pids "$id1"))"
	[ "$(ov_swtpm_count "$id2")" -eq 1 ] || fail "expected 1 swtpm for $id2: $(ov_ps $(ov_swtpm_pids "$id2"))"

	local ek='cd /tmp && tpm2_createek -T '$OV_TCTI' -c ek.ctx -G rsa -u ek.pub >/dev/null && sha256sum ek.pub'
	run ov_exec "$rt" "$id1" sh -c "$ek"
	assert_success
	ek1=${output%% *}
	run ov_exec "$rt" "$id2" sh -c "$ek"
	assert_success
	ek2=${output%% *}
	[[ $ek1 =~ ^[0-9a-f]{64}$ ]] || fail "bad EK digest from $id1: $ek1"
	[[ $ek2 =~ ^[0-9a-f]{64}$ ]] || fail "bad EK digest from $id2: $ek2"
	[ "$ek1" != "$ek2" ] || fail "both containers have the same EK ($ek1): same TPM?"

	run ov_delete "$rt" "$id1" -f
	assert_success
	run ov_delete "$rt" "$id2" -f
	assert_success
	ov_leak_check
}

@test "runc: two containers at once get different TPMs (EK public differs)" {
	two_containers runc
}

@test "crun: two containers at once get different TPMs (EK public differs)" {
	two_containers crun
}

@test "runc: io.oci-vtpm.count=2 gives tpm0.sock and tpm1.sock, two distinct TPMs" {
	requires_runtime_stack runc
	local b id
	b=$(ov_bundle two io.oci-vtpm.enable=true io.oci-vtpm.count=2)
	ov_sh "$b" '
		ls /run/tpm
		for i in 0 1; do
			cd /tmp && tpm2_createek -T swtpm:path=/run/tpm/tpm$i.sock -c ek$i.ctx -G rsa -u ek$i.pub >/dev/null &&
				echo EK$i=$(sha256sum ek$i.pub | cut -d" " -f1)
		done'
	id=$(ov_new_id two)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line tpm0.sock
	assert_line tpm0.sock.ctrl
	assert_line tpm1.sock
	assert_line tpm1.sock.ctrl
	refute_line tpm2.sock
	assert_line --regexp '^EK0=[0-9a-f]{64}$'
	assert_line --regexp '^EK1=[0-9a-f]{64}$'
	local ek0 ek1
	ek0=$(sed -n 's/^EK0=//p' <<<"$output")
	ek1=$(sed -n 's/^EK1=//p' <<<"$output")
	[ "$ek0" != "$ek1" ] || fail "tpm0 and tpm1 have the same EK: same TPM?"
	ov_leak_check
}

# ----------------------------------------------------------------------------
# Stop + delete leaves nothing.

delete_cleans_up() {
	local rt=$1 b id
	requires_runtime_stack "$rt"
	b=$(ov_bundle del io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id del)
	ov_run_detached "$rt" "$id" "$b"
	[ -f "$(ov_slot "$id")/record.json" ] || fail "no record.json while running"
	[ "$(ov_swtpm_count "$id")" -ge 1 ] || fail "no swtpm process with $(ov_slot "$id") in its arguments"

	run ov_rt "$rt" kill "$id" KILL
	assert_success
	ov_wait_for 20 _ov_is_stopped "$rt" "$id"
	run ov_delete "$rt" "$id"
	assert_success

	[ "$(ov_swtpm_count "$id")" -eq 0 ] || fail "swtpm survived delete: $(ov_ps $(ov_swtpm_pids "$id"))"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") survived delete: $(ls -A "$(ov_slot "$id")")"
	ov_leak_check
}

@test "runc: after kill + delete no swtpm, no record, no state is left" {
	delete_cleans_up runc
}

@test "crun: after kill + delete no swtpm, no record, no state is left" {
	delete_cleans_up crun
}

# ----------------------------------------------------------------------------
# Bad input, hook called directly. Each: non-zero, one stderr line
# "oci-vtpm-hook: ..." naming the cause, nothing created, nothing running.

# bad_input REGEX STATE-FILE: run createRuntime on STATE-FILE and check.
bad_input() {
	local re=$1 state=$2
	ov_snapshot
	run --separate-stderr ov_hook createRuntime "$state"
	ov_assert_hook_error "$re"
	ov_assert_no_new_files
	ov_leak_check
}

# bad_bundle REGEX [ANNOTATION...]: bundle with the annotations, valid state.
bad_bundle() {
	local re=$1 b id
	shift
	b=$(ov_bundle bad "$@")
	id=$(ov_new_id bad)
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
	bad_input "$re" "$T/state.json"
}

requires_hook_direct() { requires root jq busybox hook nsenter; }

@test "hook: malformed state JSON is rejected" {
	requires_hook_direct
	printf '{"ociVersion": "1.0.2", "id": "x", "status": "creat' >"$T/state.json"
	bad_input 'state|json|parse' "$T/state.json"
}

@test "hook: oversized state (> 1 MiB) is rejected" {
	requires_hook_direct
	local b id
	b=$(ov_bundle big io.oci-vtpm.enable=true)
	id=$(ov_new_id big)
	head -c $((1024 * 1024 + 4096)) /dev/zero | tr '\0' a >"$T/pad"
	ov_state "$id" "$b" "$(ov_dummy_pid)" | jq -c --rawfile p "$T/pad" '.annotations.pad = $p' >"$T/state.json"
	rm -f "$T/pad"
	[ "$(stat -c %s "$T/state.json")" -gt $((1024 * 1024)) ]
	bad_input 'large|size|big|limit|exceed|long|mib|bytes|too' "$T/state.json"
}

@test "hook: bundle without config.json is rejected" {
	requires_hook_direct
	local b id
	b=$T/b/noconfig
	mkdir -p "$b/rootfs"
	id=$(ov_new_id nocfg)
	ov_state "$id" "$b" "$(ov_dummy_pid)" |
		jq -c '.annotations = {"io.oci-vtpm.enable": "true"}' >"$T/state.json"
	bad_input 'config\.json' "$T/state.json"
}

@test "hook: unknown annotation io.oci-vtpm.foo is rejected" {
	requires_hook_direct
	bad_bundle 'io\.oci-vtpm\.foo' io.oci-vtpm.enable=true io.oci-vtpm.foo=bar
}

@test "hook: io.oci-vtpm.count=abc is rejected" {
	requires_hook_direct
	bad_bundle 'count' io.oci-vtpm.enable=true io.oci-vtpm.count=abc
}

@test "hook: io.oci-vtpm.version=3 is rejected" {
	requires_hook_direct
	bad_bundle 'version' io.oci-vtpm.enable=true io.oci-vtpm.version=3
}

@test "hook: other out-of-range annotation values are rejected (count 0/9, backend, enable)" {
	requires_hook_direct
	local kv
	for kv in io.oci-vtpm.count=0 io.oci-vtpm.count=9 io.oci-vtpm.count=-1 \
		io.oci-vtpm.backend=floppy io.oci-vtpm.enable=yes; do
		local key=${kv%%=*}
		bad_bundle "${key#io.oci-vtpm.}" io.oci-vtpm.enable=true "$kv"
	done
}

@test "hook: swtpm binary not found is reported" {
	requires_hook_direct
	ov_write_config ".swtpm = \"$T/no-such-dir/swtpm\""
	bad_bundle 'swtpm' io.oci-vtpm.enable=true
}

@test "hook: swtpm that exits at start (/bin/false) is reported" {
	requires_hook_direct
	ov_write_config '.swtpm = "/bin/false"'
	bad_bundle 'swtpm' io.oci-vtpm.enable=true
}

@test "hook: swtpm that prints to stderr and exits 1 is reported in one line" {
	requires_hook_direct
	printf '#!/bin/sh\necho "fake swtpm: exploding" >&2\necho "second line" >&2\nexit 1\n' >"$T/swtpm-dies"
	chmod 0755 "$T/swtpm-dies"
	ov_write_config ".swtpm = \"$T/swtpm-dies\""
	bad_bundle 'swtpm' io.oci-vtpm.enable=true
}

# A start that runs out of start_timeout_ms says whether swtpm was still
# working (a slow host: raise the timeout) or hung. Fake swtpm binaries that
# never answer: one spins, one sleeps.
@test "hook: swtpm still busy at start_timeout_ms is reported as busy, with the setting to raise" {
	requires_hook_direct
	printf '#!/bin/sh\nwhile :; do :; done\n' >"$T/swtpm-spins"
	chmod 0755 "$T/swtpm-spins"
	ov_write_config ".swtpm = \"$T/swtpm-spins\" | .start_timeout_ms = 1500"
	bad_bundle 'swtpm did not answer in [0-9]+ ms: swtpm \(pid [0-9]+\) is busy \([0-9]+ ms of CPU\), still starting.*raise start_timeout_ms \(1500\)' \
		io.oci-vtpm.enable=true
}

@test "hook: swtpm that hangs at start is reported as hung" {
	requires_hook_direct
	printf '#!/bin/sh\nexec sleep 600\n' >"$T/swtpm-hangs"
	chmod 0755 "$T/swtpm-hangs"
	ov_write_config ".swtpm = \"$T/swtpm-hangs\" | .start_timeout_ms = 1000"
	bad_bundle 'swtpm did not answer in [0-9]+ ms: swtpm \(pid [0-9]+\) hangs \([0-9]+ ms of CPU\)' io.oci-vtpm.enable=true
}

@test "hook: io.oci-vtpm.backend=device without /dev/vtpmx is reported" {
	requires_hook_direct
	[ ! -e /dev/vtpmx ] || skip "this host has /dev/vtpmx (device backend available)"
	bad_bundle 'vtpmx|vtpm_proxy|device' io.oci-vtpm.enable=true io.oci-vtpm.backend=device
}

@test "hook: malformed settings file (OCI_VTPM_CONFIG) is reported" {
	requires_hook_direct
	printf '{"run_dir": ' >"$CFG"
	bad_bundle 'config|settings' io.oci-vtpm.enable=true
}

@test "hook: a container that does not ask is not failed by a malformed settings file; its createRuntime reads config.json (the request may be in process.env)" {
	requires_hook_direct
	local b id
	printf '{"run_dir": ' >"$CFG"
	b=$(ov_bundle quiet other.annotation=1)
	id=$(ov_new_id quiet)
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
	jq -c 'del(.annotations)' "$T/state.json" >"$T/state2.json"
	ov_snapshot
	run --separate-stderr ov_hook createRuntime "$T/state.json"
	assert_success
	assert_equal "$stderr" ""
	# With or without annotations in the state it reads config.json (a
	# request can be in process.env), and says so when it cannot.
	rm "$b/config.json"
	run --separate-stderr ov_hook createRuntime "$T/state.json"
	assert_failure
	[[ $stderr == *config.json* ]] || fail "stderr: $stderr"
	run --separate-stderr ov_hook createRuntime "$T/state2.json"
	assert_failure
	[[ $stderr == *config.json* ]] || fail "stderr: $stderr"
	ov_assert_no_new_files
	ov_leak_check
}

@test "hook: unknown stage is rejected" {
	requires_hook_direct
	local b id
	b=$(ov_bundle stage io.oci-vtpm.enable=true)
	id=$(ov_new_id stage)
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
	ov_snapshot
	run --separate-stderr timeout -k 5 "$OV_TIMEOUT" env -i "OCI_VTPM_CONFIG=$CFG" \
		"$OV_HOOK" bogusStage <"$T/state.json" 3>&-
	ov_assert_hook_error 'stage|bogusstage|createruntime'
	ov_assert_no_new_files
}

@test "hook: container id with '/' or '..' is rejected" {
	requires_hook_direct
	local b bad
	b=$(ov_bundle badid io.oci-vtpm.enable=true)
	for bad in 'a/b' '..' '../x' '.' '../../etc' ''; do
		ov_state "$bad" "$b" "$(ov_dummy_pid)" >"$T/state.json"
		bad_input '(^|[^a-z0-9_])id([^a-z0-9_]|$)' "$T/state.json"
		[ "$(ov_swtpm_count)" -eq 0 ] || fail "swtpm started for id '$bad'"
	done
}

# ----------------------------------------------------------------------------
# Errors surface through the runtime.

runtime_rejects_unknown_annotation() {
	local rt=$1 b id
	requires_runtime_stack "$rt"
	b=$(ov_bundle unk io.oci-vtpm.enable=true io.oci-vtpm.foo=bar)
	ov_sh "$b" 'echo CONTAINER_RAN'
	id=$(ov_new_id unk)
	run ov_run "$rt" "$id" "$b"
	assert_failure
	refute_output --partial CONTAINER_RAN
	if [ "$rt" = crun ]; then
		# crun reports only "error executing hook ... (exit code: 1)"; the
		# hook's stderr goes to the run.oci.hooks.stderr file.
		assert_output --partial 'hook'
		run cat "$OV_HOOKS_STDERR"
	fi
	assert_output --partial 'oci-vtpm-hook:'
	assert_output --partial 'io.oci-vtpm.foo'
	ov_leak_check
}

@test "runc: unknown annotation makes 'runc run' fail with the hook's message, nothing left" {
	runtime_rejects_unknown_annotation runc
}

@test "crun: unknown annotation makes 'crun run' fail with the hook's message, nothing left" {
	runtime_rejects_unknown_annotation crun
}

# ----------------------------------------------------------------------------
# poststop is robust.

@test "hook: poststop after swtpm was SIGKILLed succeeds and leaves nothing" {
	requires_runtime_stack runc
	local b id pids
	b=$(ov_bundle partial io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id partial)
	ov_create runc "$id" "$b" # createRuntime ran
	pids=$(ov_swtpm_pids "$id")
	[ -n "$pids" ] || fail "no swtpm after createRuntime"
	# shellcheck disable=SC2086
	kill -KILL $pids
	ov_wait_for 10 ov_no_swtpm "$id"

	ov_state "$id" "$b" 0 stopped >"$T/state.json"
	run --separate-stderr ov_hook poststop "$T/state.json"
	assert_success
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") left after poststop: $(ls -A "$(ov_slot "$id")")"

	# The runtime's own poststop (a second one) must be fine too.
	run ov_delete runc "$id" -f
	assert_success
	ov_leak_check
}

@test "hook: poststop with no record at all exits 0 and creates nothing" {
	requires_hook_direct
	local b id
	b=$(ov_bundle norec io.oci-vtpm.enable=true)
	id=$(ov_new_id norec)
	ov_state "$id" "$b" 0 stopped >"$T/state.json"
	ov_snapshot
	run --separate-stderr ov_hook poststop "$T/state.json"
	assert_success
	ov_assert_no_new_files
}

# ----------------------------------------------------------------------------
# createRuntime twice is idempotent.

idempotent() {
	local rt=$1 variant=$2 b id
	requires_runtime_stack "$rt"
	b=$(ov_bundle idem io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	case $variant in
	prestart) ov_cfg "$b" --argjson h "$(ov_hook_entry prestart)" '.hooks.prestart = [$h]' ;;
	twice) ov_cfg "$b" --argjson h "$(ov_hook_entry createRuntime)" '.hooks.createRuntime += [$h]' ;;
	esac
	id=$(ov_new_id idem)
	ov_run_detached "$rt" "$id" "$b"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] ||
		fail "expected exactly 1 swtpm for $id, got: $(ov_ps $(ov_swtpm_pids "$id"))"
	run ov_exec "$rt" "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	assert_output --regexp '^[0-9a-f]{16}$'
	run ov_delete "$rt" "$id" -f
	assert_success
	ov_leak_check
}

@test "runc: hook at createRuntime and prestart starts one swtpm" {
	idempotent runc prestart
}

@test "runc: hook listed twice at createRuntime starts one swtpm" {
	idempotent runc twice
}

@test "crun: hook at createRuntime and prestart starts one swtpm" {
	idempotent crun prestart
}
