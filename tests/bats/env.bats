#!/usr/bin/env bats
# shellcheck disable=SC2016
# Requests without annotations: OCI_VTPM_* in the container's process.env,
# the settings' env_request policy and default_enable; through the hook
# (runc runs it from config.json) and through the shim. Socket backend.
# See helpers.bash; every test ends with its leak check.

load helpers

SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}

setup_file() { ov_setup_file; }
setup() { ov_setup; }
teardown() { ov_teardown; }

requires_stack() { requires root jq busybox swtpm tpm2-tools hook runc; }

# env_bundle NAME [VAR=VALUE]...: a bundle (hook in config.json) whose
# process.env gets the variables; no annotation of ours.
env_bundle() {
	local b kv
	b=$(ov_bundle "$1")
	shift
	for kv in "$@"; do
		ov_cfg "$b" --arg e "$kv" '.process.env += [$e]'
	done
	echo "$b"
}

@test "hook: OCI_VTPM_ENABLE=true in process.env, no annotation: the container gets a TPM" {
	requires_stack
	local b
	b=$(env_bundle envtpm OCI_VTPM_ENABLE=true OCI_VTPM_VERSION=2.0 OCI_VTPM_COUNT=1)
	ov_run_ek envtpm "$b"
	assert_success
	assert_line --regexp '^EK=[0-9a-f]{64}$'
	ov_leak_check
}

@test "hook: a named vTPM from the environment only where env_request allows names; then it keeps its EK" {
	requires_stack
	local b id ek1
	b=$(env_bundle named OCI_VTPM_ENABLE=true OCI_VTPM_NAME=envdb)
	ov_ek_sh "$b"
	id=$(ov_new_id named)
	# The default: an image's ENV may not pick a vTPM identity.
	run --separate-stderr ov_run runc "$id" "$b"
	assert_failure
	assert_output ""
	# (runc quotes the hook's stderr in its own message)
	[[ $stderr == *'oci-vtpm-hook: '*'environment OCI_VTPM_NAME: not honoured on this host'* ]] ||
		fail "stderr: $stderr"
	[ ! -e "$STATE_DIR/vtpms/envdb" ] || fail "an archive was made for a refused name"
	ov_leak_check

	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".env_request = [\"enable\", \"name\"] | .master_key = \"$T/master.key\""
	run ov_run runc "$id" "$b"
	assert_success
	ek1=$(grep '^EK=' <<<"$output")
	[ -n "$ek1" ] || fail "no EK: $output"
	[ -d "$STATE_DIR/vtpms/envdb" ] || fail "no archive for envdb"
	id=$(ov_new_id named2)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line "$ek1"
	ov_leak_check
}

@test "hook: bad OCI_VTPM_* values fail with one line naming the variable, nothing made" {
	requires root jq busybox hook nsenter
	local b kv
	for kv in OCI_VTPM_COUNT=99 OCI_VTPM_ENABLE=yes OCI_VTPM_VERSION=3 OCI_VTPM_BACKEND=floppy \
		OCI_VTPM_EK_CERT=maybe; do
		if [ "${kv%%=*}" = OCI_VTPM_ENABLE ]; then
			b=$(env_bundle bad "$kv")
		else
			b=$(env_bundle bad OCI_VTPM_ENABLE=true "$kv")
		fi
		ov_hook_refused "environment ${kv%%=*}: bad value \"${kv#*=}\"" "$b"
	done
	ov_leak_check
}

@test "hook: an annotation wins over the environment; env_request [] ignores the environment" {
	requires_stack
	local b
	b=$(env_bundle off OCI_VTPM_ENABLE=true OCI_VTPM_COUNT=99)
	ov_cfg "$b" '.annotations["io.oci-vtpm.enable"] = "false" | .annotations["io.oci-vtpm.count"] = "1"'
	ov_run_ek off "$b"
	assert_success
	assert_output NO_TPM

	b=$(env_bundle envoff OCI_VTPM_ENABLE=true OCI_VTPM_COUNT=99)
	ov_write_config '.env_request = []'
	ov_run_ek envoff "$b"
	assert_success
	assert_output NO_TPM
	[ -z "$(ov_run_entries)" ] || fail "run_dir: $(ov_run_entries)"
	ov_leak_check
}

@test "shim: OCI_VTPM_ENABLE=true in process.env gets a TPM; config.json gets the annotation; a bad value fails before runc" {
	requires_stack
	[ -x "$SHIM" ] || fail "$SHIM not built"
	local b id
	shim_runc
	b=$(env_bundle shimenv OCI_VTPM_ENABLE=true)
	ov_cfg "$b" 'del(.hooks)'
	ov_run_ek shimenv "$b"
	assert_success
	assert_line --regexp '^EK=[0-9a-f]{64}$'
	run jq -r '.annotations["io.oci-vtpm.enable"]' "$b/config.json"
	assert_output true

	b=$(env_bundle shimbad OCI_VTPM_ENABLE=true OCI_VTPM_COUNT=99)
	ov_cfg "$b" 'del(.hooks)'
	cp "$b/config.json" "$T/config.before"
	id=$(ov_new_id shimbad)
	run --separate-stderr ov_run runc "$id" "$b"
	assert_failure 1
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "expected one line: $stderr"
	[[ ${stderr_lines[0]} == "oci-vtpm-runtime: $id: "*'environment OCI_VTPM_COUNT: bad value "99"' ]] ||
		fail "stderr: $stderr"
	cmp "$T/config.before" "$b/config.json"
	ov_leak_check
}

@test "shim: default_enable gives every container a TPM unless it opts out (env or annotation)" {
	requires_stack
	[ -x "$SHIM" ] || fail "$SHIM not built"
	local b
	shim_runc
	ov_write_config '.default_enable = true'
	b=$(env_bundle dflt)
	ov_cfg "$b" 'del(.hooks)'
	ov_run_ek dflt "$b"
	assert_success
	assert_line --regexp '^EK=[0-9a-f]{64}$'

	b=$(env_bundle optout OCI_VTPM_ENABLE=false)
	ov_cfg "$b" 'del(.hooks)'
	ov_run_ek optout "$b"
	assert_success
	assert_output NO_TPM
	run jq -r '.hooks // {} | length' "$b/config.json"
	assert_output 0

	b=$(env_bundle optout2)
	ov_cfg "$b" 'del(.hooks) | .annotations["io.oci-vtpm.enable"] = "false"'
	ov_run_ek optout2 "$b"
	assert_success
	assert_output NO_TPM
	ov_leak_check
}
