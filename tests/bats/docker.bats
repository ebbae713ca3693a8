#!/usr/bin/env bats
# shellcheck disable=SC2016
# Docker (Debian's docker.io 20.10, API 1.41: no --annotation) with the
# shim as a runtime from config/docker/daemon.json, asking by environment.
# setup_file starts one dockerd of this file's own (data root, exec root,
# socket, pid file; vfs, no iptables, no bridge), which starts a containerd
# of its own under its exec root (dockerd 20.10 does unless the system's
# /run/containerd/containerd.sock exists, and this file checks which it
# got). Each test points the shim at its own settings; teardown_file stops
# the daemons by pid and removes their directories.

load helpers
load engines

IMAGE=$OV_DK_IMAGE
RUN_OPTS=("${OV_DK_RUN_OPTS[@]}")

setup_file() {
	ov_setup_file
	ov_dockerd_start
}

teardown_file() { ov_dockerd_stop; }

setup() {
	ov_setup
	ov_engines_setup
}

teardown() {
	ov_dockerd_rm_all
	ov_teardown
}

# The master key a named vTPM needs, and the environment allowed to name.
named_settings() {
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".master_key = \"$T/master.key\" | .env_request = [\"enable\", \"name\"] | ${1:-.}"
}

@test "docker: the daemon.json runtime; docker run --runtime oci-vtpm -e OCI_VTPM_ENABLE=true gets a TPM; --rm leaves nothing" {
	requires_docker
	# dockerd runs a containerd of its own, under its exec root.
	pgrep -f -- "containerd --config $(ov_ere_quote "$DK_EXEC")/containerd/containerd.toml" >/dev/null ||
		fail "dockerd is not running a containerd of its own: $(pgrep -a containerd)"
	run dk info --format '{{json .Runtimes}}'
	assert_success
	assert_output --partial "\"oci-vtpm\":{\"path\":\"$DK/oci-vtpm\"}"
	run dk run --rm --name ovdk-tpm "${RUN_OPTS[@]}" -e OCI_VTPM_ENABLE=true "$IMAGE" \
		sh -c "ls /run/tpm; echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8)"
	assert_success
	assert_line tpm0.sock
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	grep -q 'started 1 TPM 2.0 vTPM (socket backend)' "$OV_HOOK_LOG" || fail "hook log: $(cat "$OV_HOOK_LOG")"
	nothing_left
}

@test "docker: a named vTPM keeps its EK across docker stop/start and docker rm + docker run; docker rm leaves nothing" {
	requires_docker
	local id ek
	named_settings
	# sh as pid 1 ignores SIGTERM unless told; the EK on each start.
	run dk run -d --name ovdk-named "${RUN_OPTS[@]}" -e OCI_VTPM_ENABLE=true -e OCI_VTPM_NAME=dockerdb \
		"$IMAGE" sh -c "$OV_EK_SCRIPT; trap 'exit 0' TERM; sleep 600 & wait"
	assert_success
	id=$(dk_register ovdk-named)
	ov_wait_for 30 _dk_logged ovdk-named 1
	ek=$(dk logs ovdk-named | grep '^EK=')
	[ -n "$ek" ] || fail "no EK: $(dk logs ovdk-named 2>&1)"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "not one swtpm for $id"

	run dk stop -t 10 ovdk-named
	assert_success
	ov_no_swtpm "$id" || fail "swtpm left after docker stop"
	[ -d "$STATE_DIR/vtpms/dockerdb" ] || fail "docker stop archived nothing"
	run dk start ovdk-named
	assert_success
	ov_wait_for 30 _dk_logged ovdk-named 2
	run dk logs ovdk-named
	[ "$(grep -c '^EK=' <<<"$output")" -eq 2 ] || fail "logs: $output"
	[ "$(grep '^EK=' <<<"$output" | sort -u | wc -l)" -eq 1 ] || fail "EK changed across stop/start: $output"

	run dk rm -f ovdk-named
	assert_success
	nothing_left
	run dk run --rm "${RUN_OPTS[@]}" -e OCI_VTPM_ENABLE=true -e OCI_VTPM_NAME=dockerdb "$IMAGE" \
		sh -c "$OV_EK_SCRIPT"
	assert_success
	assert_line "$ek"
	nothing_left
}
_dk_logged() { [ "$(dk logs "$1" 2>/dev/null | grep -c '^EK=')" -ge "$2" ]; }

@test "docker: a bad request (OCI_VTPM_COUNT=99) fails docker run with our one-line error; nothing started" {
	requires_docker
	run --separate-stderr dk run --rm --name ovdk-bad "${RUN_OPTS[@]}" -e OCI_VTPM_ENABLE=true \
		-e OCI_VTPM_COUNT=99 "$IMAGE" true
	assert_failure
	# Our error is one line (docker's own race line aside).
	dk_error_lines
	[ "${#DK_ERR[@]}" -eq 1 ] || fail "expected one line on stderr: $stderr"
	[[ ${DK_ERR[0]} == *'oci-vtpm-runtime: '*'environment OCI_VTPM_COUNT: bad value "99"'* ]] ||
		fail "docker run does not show our error: $stderr"
	# The image may not name a vTPM (env_request's default).
	run --separate-stderr dk run --rm "${RUN_OPTS[@]}" -e OCI_VTPM_ENABLE=true -e OCI_VTPM_NAME=x "$IMAGE" true
	assert_failure
	[[ $stderr == *'environment OCI_VTPM_NAME: not honoured on this host'* ]] || fail "stderr: $stderr"
	[ "$(ov_swtpm_count)" -eq 0 ] || fail "swtpm started for a refused request"
	nothing_left
}

@test "docker: default_enable gives every container of the runtime a TPM; OCI_VTPM_ENABLE=false opts out" {
	requires_docker
	ov_write_config '.default_enable = true'
	run dk run --rm "${RUN_OPTS[@]}" "$IMAGE" sh -c "echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8)"
	assert_success
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	run dk run --rm "${RUN_OPTS[@]}" -e OCI_VTPM_ENABLE=false "$IMAGE" \
		sh -c 'if [ -e /run/tpm ]; then echo HAS_TPM; else echo NO_TPM; fi'
	assert_success
	assert_output NO_TPM
	# The default runtime (runc) is not ours: nothing there either.
	run dk run --rm --network none -e OCI_VTPM_ENABLE=true "$IMAGE" \
		sh -c 'if [ -e /run/tpm ]; then echo HAS_TPM; else echo NO_TPM; fi'
	assert_success
	assert_output NO_TPM
	nothing_left
}
