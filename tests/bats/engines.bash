# shellcheck shell=bash
# Private Docker and containerd daemons for the engine suites: the host's
# tests/bats/docker.bats and containerd.bats (socket backend) and the VM's
# tests/vm/engines.bats (device backend). Loaded after helpers:
#
#   load helpers            (tests/vm: load ../bats/helpers)
#   load engines            (tests/vm: load ../bats/engines)
#
# A test file starts each daemon it uses in setup_file (ov_dockerd_start,
# ov_containerd_start: own roots, state, socket, pid file; vfs or native
# snapshots, no iptables, no bridge) and stops it by pid in teardown_file
# (ov_dockerd_stop, ov_containerd_stop). Start failures are not fatal there:
# requires_docker / requires_containerd fail each test saying what is wrong.
# The engines run the shim through a wrapper that reads the path of the
# settings file the current test names (ov_engines_setup, from setup).
#
# Every wait is scaled by $OV_SLOW (helpers-vm.bash) when it is set.

OV_ENGINE_SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}
OV_DOCKER=/usr/bin/docker # not a docker CLI of another origin earlier on PATH
OV_DK_IMAGE=ovbusybox:latest
OV_CT_IMAGE=docker.io/library/ovbusybox:latest
OV_CT_NS=ovtest
# What docker run needs here, and the host's tools read-only.
OV_DK_RUN_OPTS=(--runtime oci-vtpm --network none -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro)

_ov_eng_slow() { echo $(($1 * ${OV_SLOW:-1})); }

# _ov_engine_wrapper DIR: DIR/oci-vtpm, the shim with the settings file that
# DIR/settings.path names (not a symlink: the settings are opened without
# following one).
_ov_engine_wrapper() {
	mkdir -p "$1"
	# shellcheck disable=SC2016 # $(cat ...) runs in the wrapper
	printf '#!/bin/sh\nOCI_VTPM_CONFIG=$(cat %s) exec %s "$@"\n' "$1/settings.path" "$OV_ENGINE_SHIM" >"$1/oci-vtpm"
	chmod 0755 "$1/oci-vtpm"
}

# ov_engines_setup: point the running daemons' shim at this test's settings
# ($CFG). Call from setup after ov_setup.
ov_engines_setup() {
	[ ! -d "${DK:-/nonexistent}" ] || echo "$CFG" >"$DK/settings.path"
	[ ! -d "${CT:-/nonexistent}" ] || echo "$CFG" >"$CT/settings.path"
}

# _ov_daemon_launch DIR NAME CLI CMD...: daemon NAME (CMD) in the
# background, its output in DIR/NAME.log, its pid in DIR/NAME.pid; then
# wait until `CLI version` answers.
_ov_daemon_launch() {
	local d=$1 name=$2 cli=$3
	shift 3
	"$@" </dev/null >"$d/$name.log" 2>&1 3>&- &
	echo $! >"$d/$name.pid"
	ov_wait_for "$(_ov_eng_slow 60)" "$cli" version >/dev/null 2>&1
}

# _ov_daemon_stop DIR NAME REMOVE-ALL MATCH RUN-DIR PATH...: unless daemon
# NAME was not started (no DIR/NAME.pid): REMOVE-ALL its containers, stop
# it by pid (ov_stop_daemon MATCH, unmounting under RUN-DIR and DIR),
# remove each PATH.
_ov_daemon_stop() {
	local d=$1 name=$2 rm_all=$3 match=$4 rundir=$5
	shift 5
	[ -n "$d" ] && [ -f "$d/$name.pid" ] || return 0
	"$rm_all"
	ov_stop_daemon "$(cat "$d/$name.pid")" "$match" "$rundir" "$d/"
	rm -rf --one-file-system "$@"
}

# _ov_requires_engine NAME WHY: what the engine tests need; NAME's daemon
# and image are checked once per file: WHY prints what is wrong, if any.
_ov_requires_engine() {
	local why
	requires root jq busybox swtpm tpm2-tools hook runc
	[ -x "$OV_ENGINE_SHIM" ] || fail "$OV_ENGINE_SHIM not built (run make)"
	[ ! -e "$BATS_FILE_TMPDIR/$1.ready" ] || return 0
	why=$("$2")
	[ -z "$why" ] || ov_missing "$1" "$why"
	: >"$BATS_FILE_TMPDIR/$1.ready"
}

# nothing_left: no leak (ov_leak_check), no run-dir entry but name claims.
nothing_left() {
	ov_leak_check || return 1
	local left
	left=$(ov_run_entries | grep -v "^$(ov_names_dir)/" || true)
	[ -z "$left" ] || fail "left in run_dir: $left"
}

# ------------------------------------------------------------------ docker

_ov_docker_installed() { [ -x /usr/sbin/dockerd ] && [ -x "$OV_DOCKER" ]; }

# ov_dockerd_start: this file's dockerd with the shim as runtime "oci-vtpm"
# (config/docker/daemon.json, its path set to the wrapper) and the busybox
# image imported as $OV_DK_IMAGE. dockerd 20.10 starts a containerd of its
# own under its exec root (unless /run/containerd/containerd.sock exists).
# Exports DK (its files), DK_EXEC, DK_SOCK, DK_PID, DOCKER_HOST and
# DOCKER_CONFIG.
ov_dockerd_start() {
	export DK=$BATS_FILE_TMPDIR/docker
	# Socket paths under the exec root must stay short (sun_path).
	export DK_EXEC=/run/ovdk-$$ DK_SOCK=/run/ovdk-$$.sock DK_PID=/run/ovdk-$$.pid
	export DOCKER_HOST=unix://$DK_SOCK DOCKER_CONFIG=$DK/cli
	_ov_docker_installed && [ -x "$OV_ENGINE_SHIM" ] || return 0
	mkdir -p "$DK/cli"
	_ov_engine_wrapper "$DK"
	jq --arg p "$DK/oci-vtpm" '.runtimes["oci-vtpm"].path = $p' \
		"$OV_REPO/config/docker/daemon.json" >"$DK/daemon.json"
	_ov_daemon_launch "$DK" dockerd dk \
		/usr/sbin/dockerd --config-file "$DK/daemon.json" --data-root "$DK/data" \
		--exec-root "$DK_EXEC" -H "$DOCKER_HOST" --pidfile "$DK_PID" \
		--iptables=false --ip-masq=false --bridge=none --storage-driver=vfs || return 0
	ov_busybox_image "$DK/image.tar"
	dk import "$DK/image.tar" "$OV_DK_IMAGE" >/dev/null || true
}

# ov_dockerd_stop: remove every container, stop dockerd by pid (it stops
# its containerd), kill what is left of it, remove its directories.
ov_dockerd_stop() {
	_ov_daemon_stop "${DK:-}" dockerd ov_dockerd_rm_all "${DK_EXEC:-}" "${DK_EXEC:-}" \
		"${DK_EXEC:-}" "${DK_SOCK:-}" "${DK_PID:-}" "${DK:-}/data"
}

# ov_dockerd_rm_all: docker rm -f every container.
ov_dockerd_rm_all() {
	local id
	[ -n "${DK:-}" ] || return 0
	for id in $(dk ps -aq 2>/dev/null); do dk rm -f "$id" >/dev/null 2>&1 || true; done
}

# dk ARGS...: the docker CLI on this file's daemon, under timeout.
# (Each engine call then waits for the stop workers of the vTPMs it stopped:
# ov_wait_stops.)
dk() {
	local rc=0
	timeout -k 5 "$OV_TIMEOUT" "$OV_DOCKER" "$@" 3>&- || rc=$?
	ov_wait_stops
	return $rc
}

# requires_docker: what the docker tests need; the daemon and its image
# are checked once per file.
requires_docker() { _ov_requires_engine docker _ov_docker_why; }
_ov_docker_why() {
	if ! _ov_docker_installed; then
		echo "docker.io not installed (scripts/deps.sh test)"
	elif ! dk version >/dev/null 2>&1; then
		echo "dockerd did not start: $(tail -n 3 "$DK/dockerd.log" | tr '\n' ' ')"
	elif ! dk image inspect "$OV_DK_IMAGE" >/dev/null 2>&1; then
		echo "docker import of the busybox image failed"
	fi
}

# dk_register NAME: the container's full id (the runtime's container id)
# joins the leak check.
dk_register() {
	local id
	id=$(dk inspect --format '{{.Id}}' "$1") || fail "docker inspect $1"
	echo "$id" >>"$T/ids"
	echo "$id"
}

# dk_error_lines: after `run --separate-stderr dk run ...`, docker's stderr
# without the line docker 20.10's CLI may add after the daemon's error
# ("error waiting for container: context canceled", when the failed
# container's wait is cut short), into the array DK_ERR.
dk_error_lines() {
	local line
	DK_ERR=()
	for line in "${stderr_lines[@]}"; do
		[[ $line == *"error waiting for container: context canceled"* ]] || DK_ERR+=("$line")
	done
}

# --------------------------------------------------------------- containerd

# ov_oci_image ROOTFS-TAR OUT-TAR NAME: a one-layer OCI image layout as a
# tar (what `ctr images import` reads), named NAME.
ov_oci_image() {
	local d=$BATS_FILE_TMPDIR/oci ld lsz cd csz md msz
	rm -rf "$d"
	mkdir -p "$d/blobs/sha256"
	ld=$(sha256sum "$1" | cut -d' ' -f1) lsz=$(stat -c %s "$1")
	cp "$1" "$d/blobs/sha256/$ld"
	jq -nc --arg l "sha256:$ld" '{architecture: "amd64", os: "linux",
		config: {Env: ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], Cmd: ["sh"]},
		rootfs: {type: "layers", diff_ids: [$l]}}' >"$d/c"
	cd=$(sha256sum "$d/c" | cut -d' ' -f1) csz=$(stat -c %s "$d/c")
	mv "$d/c" "$d/blobs/sha256/$cd"
	jq -nc --arg c "sha256:$cd" --argjson cs "$csz" --arg l "sha256:$ld" --argjson ls "$lsz" '{
		schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
		layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}' >"$d/m"
	md=$(sha256sum "$d/m" | cut -d' ' -f1) msz=$(stat -c %s "$d/m")
	mv "$d/m" "$d/blobs/sha256/$md"
	jq -nc --arg m "sha256:$md" --argjson ms "$msz" --arg n "$3" '{schemaVersion: 2,
		manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
		size: $ms, annotations: {"io.containerd.image.name": $n}}]}' >"$d/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
	tar -C "$d" -cf "$2" oci-layout index.json blobs
}

_ov_containerd_installed() { command -v containerd >/dev/null && command -v ctr >/dev/null; }

# ov_containerd_start: this file's containerd (the CRI plugin off: ctr
# needs none of it) with the busybox image imported as $OV_CT_IMAGE.
# Exports CT (its files), CT_STATE and CT_SOCK.
ov_containerd_start() {
	export CT=$BATS_FILE_TMPDIR/containerd
	export CT_STATE=/run/ovct-$$ CT_SOCK=/run/ovct-$$.sock
	_ov_containerd_installed && [ -x "$OV_ENGINE_SHIM" ] || return 0
	_ov_engine_wrapper "$CT"
	printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$CT/config.toml"
	_ov_daemon_launch "$CT" containerd ct \
		containerd --config "$CT/config.toml" --root "$CT/root" --state "$CT_STATE" --address "$CT_SOCK" ||
		return 0
	ov_busybox_image "$CT/rootfs.tar"
	ov_oci_image "$CT/rootfs.tar" "$CT/image.tar" "$OV_CT_IMAGE"
	ct images import --snapshotter native "$CT/image.tar" >/dev/null || true
}

# ov_containerd_stop: remove every container, stop containerd by pid, kill
# the task shims it left (they have its socket in their argv), remove its
# directories.
ov_containerd_stop() {
	_ov_daemon_stop "${CT:-}" containerd ct_remove_all "${CT_SOCK:-}" "${CT_STATE:-}" \
		"${CT_STATE:-}" "${CT_SOCK:-}" "${CT_SOCK:-}.ttrpc" "${CT:-}/root"
}

# ct ARGS...: ctr on this file's containerd, namespace $OV_CT_NS, under
# timeout.
ct() {
	local rc=0
	timeout -k 5 "$OV_TIMEOUT" ctr -a "$CT_SOCK" -n "$OV_CT_NS" "$@" 3>&- || rc=$?
	ov_wait_stops
	return $rc
}

# ct_remove_all: kill, delete and remove every container and its task.
ct_remove_all() {
	local c
	[ -n "${CT:-}" ] || return 0
	for c in $(ct containers ls -q 2>/dev/null); do
		ct tasks kill -s KILL "$c" >/dev/null 2>&1 || true
		ov_wait_for "$(_ov_eng_slow 10)" ct_task_not_running "$c" >/dev/null 2>&1 || true
		ct tasks delete "$c" >/dev/null 2>&1 || true
		ct containers rm "$c" >/dev/null 2>&1 || true
	done
}

# ct_task_not_running ID: container ID has no running task.
ct_task_not_running() { ! ct tasks ls 2>/dev/null | awk -v c="$1" '$1 == c {print $3}' | grep -qx RUNNING; }

# requires_containerd: what the containerd tests need; the daemon and its
# image are checked once per file.
requires_containerd() { _ov_requires_engine containerd _ov_containerd_why; }
_ov_containerd_why() {
	if ! _ov_containerd_installed; then
		echo "containerd not installed (scripts/deps.sh test)"
	elif ! ct version >/dev/null 2>&1; then
		echo "containerd did not start: $(tail -n 3 "$CT/containerd.log" | tr '\n' ' ')"
	elif ! ct images ls -q | grep -qx "$OV_CT_IMAGE"; then
		echo "ctr images import of the busybox image failed"
	fi
}

# ct_run ARGS...: `ctr run` through the shim, with the host's tools
# read-only.
ct_run() {
	local args=() a
	for a in /usr /lib /lib64; do
		args+=(--mount "type=bind,src=$a,dst=$a,options=rbind:ro")
	done
	ct run --snapshotter native --runc-binary "$CT/oci-vtpm" "${args[@]}" "$@"
}

# ct_id ID: the container id joins the leak check.
ct_id() { echo "$1" >>"$T/ids"; }
