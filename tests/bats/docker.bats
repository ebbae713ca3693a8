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

SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}
DOCKER=/usr/bin/docker # not a docker CLI of another origin earlier on PATH
IMAGE=ovbusybox:latest
TCTI_SCRIPT_EK="tpm2_createek -T $OV_TCTI -c /tmp/ek.ctx -G rsa -u /tmp/ek.pub >/dev/null && echo EK=\$(sha256sum /tmp/ek.pub | cut -d' ' -f1)"

setup_file() {
	ov_setup_file
	export DK=$BATS_FILE_TMPDIR/docker
	# Socket paths under the exec root must stay short (sun_path).
	export DK_EXEC=/run/ovdk-$$ DK_SOCK=/run/ovdk-$$.sock DK_PID=/run/ovdk-$$.pid
	export DOCKER_HOST=unix://$DK_SOCK DOCKER_CONFIG=$DK/cli
	[ -x /usr/sbin/dockerd ] && [ -x "$DOCKER" ] && [ -x "$SHIM" ] || return 0
	mkdir -p "$DK/cli"
	# The shim runs with the settings file the current test names here
	# (not a symlink: the settings are opened without following one).
	printf '#!/bin/sh\nOCI_VTPM_CONFIG=$(cat %s) exec %s "$@"\n' "$DK/settings.path" "$SHIM" >"$DK/oci-vtpm"
	chmod 0755 "$DK/oci-vtpm"
	jq --arg p "$DK/oci-vtpm" '.runtimes["oci-vtpm"].path = $p' \
		"$OV_REPO/config/docker/daemon.json" >"$DK/daemon.json"
	/usr/sbin/dockerd --config-file "$DK/daemon.json" --data-root "$DK/data" \
		--exec-root "$DK_EXEC" -H "$DOCKER_HOST" --pidfile "$DK_PID" \
		--iptables=false --ip-masq=false --bridge=none --storage-driver=vfs \
		</dev/null >"$DK/dockerd.log" 2>&1 3>&- &
	echo $! >"$DK/dockerd.pid"
	ov_wait_for 60 dk version >/dev/null 2>&1 || return 0 # the tests say what is wrong
	ov_busybox_image "$DK/image.tar"
	dk import "$DK/image.tar" "$IMAGE" >/dev/null
}

teardown_file() {
	local pid
	[ -f "${DK:-/nonexistent}/dockerd.pid" ] || return 0
	pid=$(cat "$DK/dockerd.pid")
	dk ps -aq 2>/dev/null | xargs -r "$DOCKER" rm -f >/dev/null 2>&1 || true
	# dockerd stops the containerd it started, then exits.
	ov_stop_daemon "$pid" "$DK_EXEC" "$DK_EXEC" "$DK/"
	rm -rf --one-file-system "$DK_EXEC" "$DK_SOCK" "$DK_PID" "$DK/data"
}

setup() {
	ov_setup
	[ -z "${DK:-}" ] || echo "$CFG" >"$DK/settings.path"
}

teardown() {
	local id
	if [ -n "${DK:-}" ]; then
		for id in $(dk ps -aq 2>/dev/null); do dk rm -f "$id" >/dev/null 2>&1 || true; done
	fi
	ov_teardown
}

# dk ARGS...: the docker CLI on this file's daemon, under timeout.
dk() { timeout -k 5 "$OV_TIMEOUT" "$DOCKER" "$@" 3>&-; }

requires_docker() {
	requires root jq busybox swtpm tpm2-tools hook runc
	[ -x "$SHIM" ] || fail "$SHIM not built (run make)"
	local why=""
	if ! [ -x /usr/sbin/dockerd ] || ! [ -x "$DOCKER" ]; then
		why="docker.io not installed (scripts/deps.sh test)"
	elif ! dk version >/dev/null 2>&1; then
		why="dockerd did not start: $(tail -n 3 "$DK/dockerd.log" | tr '\n' ' ')"
	elif ! dk image inspect "$IMAGE" >/dev/null 2>&1; then
		why="docker import of the busybox image failed"
	fi
	[ -z "$why" ] || ov_missing docker "$why"
}

# What docker run needs here, and the host's tools read-only.
RUN_OPTS=(--runtime oci-vtpm --network none -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro)

# dk_register NAME: the container's full id joins the leak check.
dk_register() {
	local id
	id=$(dk inspect --format '{{.Id}}' "$1") || fail "docker inspect $1"
	echo "$id" >>"$T/ids"
	echo "$id"
}

# The master key a named vTPM needs, and the environment allowed to name.
named_settings() {
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".master_key = \"$T/master.key\" | .env_request = [\"enable\", \"name\"] | ${1:-.}"
}

# nothing_left: no swtpm, no run-dir entry, no record of any container.
nothing_left() {
	ov_leak_check || return 1
	local left
	left=$(ov_run_entries | grep -v "^$(ov_names_dir)/" || true)
	[ -z "$left" ] || fail "left in run_dir: $left"
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
		"$IMAGE" sh -c "$TCTI_SCRIPT_EK; trap 'exit 0' TERM; sleep 600 & wait"
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
		sh -c "$TCTI_SCRIPT_EK"
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
	# Our error is one line. docker 20.10's CLI may add one of its own
	# after it: with --rm, "error waiting for container: context canceled"
	# when the failed container is removed before its wait returns.
	local line ours=()
	for line in "${stderr_lines[@]}"; do
		[ "$line" = "error waiting for container: context canceled" ] || ours+=("$line")
	done
	[ "${#ours[@]}" -eq 1 ] || fail "expected one line on stderr: $stderr"
	[[ ${ours[0]} == *'oci-vtpm-runtime: '*'environment OCI_VTPM_COUNT: bad value "99"'* ]] ||
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
