#!/usr/bin/env bats
# shellcheck disable=SC2016
# Who may ask for what (settings annotation_request, name_scope, max_vtpms,
# max_names): through the hook (runc runs it from config.json) and through
# the shim. Socket backend. Every refusal is one line naming the setting,
# and leaves nothing behind. See helpers.bash.

load helpers

SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}

setup_file() { ov_setup_file; }
setup() {
	ov_setup
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
}
teardown() { ov_teardown; }

requires_stack() { requires root jq busybox swtpm tpm2-tools hook runc; }

# policy_config JQ-FILTER: this test's settings, master key included.
policy_config() { ov_write_config ".master_key = \"$T/master.key\" | $1"; }

# ek_run LABEL [KEY=VALUE]...: a container of a new enabled bundle with
# these annotations runs (through `runc`) and prints its TPM's EK public
# key digest; EK is that line.
ek_run() {
	local label=$1
	shift
	ov_run_ek "$label" "$(ov_bundle "$label" io.oci-vtpm.enable=true "$@")"
	assert_success
	EK=$(grep -E '^EK=[0-9a-f]{64}$' <<<"$output") || fail "no EK: $output"
}

# shim_refused TEXT BUNDLE: runc through the shim fails with one line
# ending in TEXT; config.json untouched, nothing left.
shim_refused() {
	local id b=$2
	ov_cfg "$b" 'del(.hooks)'
	cp "$b/config.json" "$T/config.before"
	id=$(ov_new_id shimrefused)
	run --separate-stderr ov_run runc "$id" "$b"
	assert_failure
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "expected one line: $stderr"
	[[ ${stderr_lines[0]} == "oci-vtpm-runtime: $id: "*"$1" ]] || fail "stderr: $stderr"
	cmp "$T/config.before" "$b/config.json"
}

@test "annotation_request: a request key the admin did not allow is refused (hook and shim)" {
	requires_stack
	local b
	policy_config '.annotation_request = ["enable"]'
	b=$(ov_bundle cnt io.oci-vtpm.enable=true io.oci-vtpm.count=2)
	ov_hook_refused 'annotation io\.oci-vtpm\.count: not allowed on this host \(settings "annotation_request"\)' "$b"
	b=$(ov_bundle nm io.oci-vtpm.enable=true io.oci-vtpm.name=other-db)
	ov_hook_refused 'annotation io\.oci-vtpm\.name: not allowed .*"annotation_request"' "$b"
	[ ! -e "$STATE_DIR/vtpms/other-db" ] || fail "an archive was made for a refused name"

	shim_runc
	b=$(ov_bundle shimcnt io.oci-vtpm.enable=true io.oci-vtpm.count=2)
	shim_refused 'annotation io.oci-vtpm.count: not allowed on this host (settings "annotation_request")' "$b"

	# What is allowed still works.
	ek_run ok
	ov_leak_check
}

@test "name_scope: two namespaces asking for one name get two identities; each keeps its own" {
	requires_stack
	local ek_a
	policy_config '.'
	# The default ("auto"): the namespace Kubernetes' CRI writes scopes names.
	ek_run nsa io.oci-vtpm.name=db io.kubernetes.cri.sandbox-namespace=team-a
	ek_a=$EK
	[ -d "$STATE_DIR/vtpms/team-a.db" ] || fail "no archive team-a.db: $(ls "$STATE_DIR/vtpms")"

	ek_run nsb io.oci-vtpm.name=db io.kubernetes.cri.sandbox-namespace=team-b
	[ "$ek_a" != "$EK" ] || fail "team-b got team-a's TPM identity ($ek_a)"
	[ ! -e "$STATE_DIR/vtpms/db" ] || fail "an unscoped archive db was made"

	# team-a again: its own identity back.
	ek_run nsa2 io.oci-vtpm.name=db io.kubernetes.cri.sandbox-namespace=team-a
	assert_line "$ek_a"
	ov_leak_check
}

@test "name_scope: a name without the scope annotation, or with a bad scope, is refused (hook and shim)" {
	requires_stack
	local b
	policy_config '.name_scope = "io.kubernetes.pod.namespace"'
	b=$(ov_bundle noscope io.oci-vtpm.enable=true io.oci-vtpm.name=db)
	ov_hook_refused 'vTPM name "db" needs the annotation io\.kubernetes\.pod\.namespace \(settings "name_scope"\)' "$b"
	b=$(ov_bundle badscope io.oci-vtpm.enable=true io.oci-vtpm.name=db io.kubernetes.pod.namespace=a.b)
	ov_hook_refused 'annotation io\.kubernetes\.pod\.namespace: "a\.b" cannot scope a vTPM name' "$b"
	[ -z "$(ls -A "$STATE_DIR/vtpms" 2>/dev/null)" ] || fail "archives made: $(ls "$STATE_DIR/vtpms")"

	shim_runc
	b=$(ov_bundle shimnoscope io.oci-vtpm.enable=true io.oci-vtpm.name=db)
	shim_refused 'vTPM name "db" needs the annotation io.kubernetes.pod.namespace (settings "name_scope")' "$b"

	# "": the single-tenant shortcut, names as given.
	policy_config '.name_scope = ""'
	b=$(ov_bundle plain io.oci-vtpm.enable=true io.oci-vtpm.name=db \
		io.kubernetes.pod.namespace=ignored)
	ov_cfg "$b" 'del(.hooks)'
	ov_run_ek plain "$b"
	assert_success
	assert_line --regexp '^EK=[0-9a-f]{64}$'
	[ -d "$STATE_DIR/vtpms/db" ] || fail "no archive db: $(ls "$STATE_DIR/vtpms")"
	ov_leak_check
}

@test "max_vtpms: a start beyond the host's vTPMs is refused until one stops" {
	requires_stack
	local b1 id1
	policy_config '.max_vtpms = 2'
	b1=$(ov_bundle one io.oci-vtpm.enable=true io.oci-vtpm.count=2)
	ov_args "$b1" sleep 600
	id1=$(ov_new_id one)
	ov_run_detached runc "$id1" "$b1"
	[ "$(ov_swtpm_count "$id1")" -eq 2 ] || fail "expected 2 swtpm for $id1"

	ov_hook_refused '1 more vTPM would be beyond the 2 this host runs \(settings "max_vtpms"\)' \
		"$(ov_bundle two io.oci-vtpm.enable=true)"
	[ "$(ov_swtpm_count)" -eq 2 ] || fail "swtpm count changed: $(ov_ps $(ov_swtpm_pids))"

	run ov_rt runc kill "$id1" KILL
	assert_success
	ov_wait_for 20 _ov_is_stopped runc "$id1"
	run ov_delete runc "$id1"
	assert_success

	ek_run two
	ov_leak_check
}

@test "max_names: a start that would make a new name beyond the limit is refused; known names still start" {
	requires_stack
	local ek1
	policy_config '.max_names = 1'
	ek_run first io.oci-vtpm.name=first
	ek1=$EK

	ov_hook_refused 'vTPM second would be a new name beyond the 1 this host keeps \(settings "max_names"\)' \
		"$(ov_bundle second io.oci-vtpm.enable=true io.oci-vtpm.name=second)"
	[ ! -e "$STATE_DIR/vtpms/second" ] || fail "an archive dir was left for the refused name"

	ek_run again io.oci-vtpm.name=first
	assert_line "$ek1"
	ov_leak_check
}

@test "max_names: eight concurrent starts of new names under max_names=3 make exactly three" {
	requires root jq busybox swtpm hook nsenter
	local i b pids=() ok=0 refused=0
	policy_config '.max_names = 3'
	for i in 1 2 3 4 5 6 7 8; do
		b=$(ov_bundle "race$i" io.oci-vtpm.enable=true "io.oci-vtpm.name=race$i")
		ov_state "$(ov_new_id "race$i")" "$b" "$(ov_dummy_pid)" >"$T/state$i.json"
	done
	for i in 1 2 3 4 5 6 7 8; do
		ov_hook createRuntime "$T/state$i.json" 2>"$T/err$i" &
		pids+=($!)
	done
	for i in 1 2 3 4 5 6 7 8; do
		if wait "${pids[i - 1]}"; then
			ok=$((ok + 1))
		else
			grep -q '(settings "max_names")' "$T/err$i" || fail "start $i: $(cat "$T/err$i")"
			refused=$((refused + 1))
		fi
	done
	[ "$ok" -eq 3 ] && [ "$refused" -eq 5 ] || fail "$ok started, $refused refused"
	[ "$(find "$STATE_DIR/vtpms" -mindepth 1 -maxdepth 1 | wc -l)" -eq 3 ] ||
		fail "archives: $(ls "$STATE_DIR/vtpms")"
	for i in 1 2 3 4 5 6 7 8; do
		run ov_hook poststop "$T/state$i.json"
		assert_success
	done
	ov_leak_check
}
