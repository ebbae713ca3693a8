# shellcheck shell=bash
# shellcheck disable=SC2016,SC2034,SC2119,SC2120,SC2154,SC2001,SC2012,SC2086
# (jq programs in single quotes; bats sets output/stderr/stderr_lines)
# Shared harness for the oci-vtpm bats integration tests.
#
# A test file does:
#
#   load helpers
#   setup_file()    { ov_setup_file; }
#   setup()         { ov_setup; }
#   teardown()      { ov_teardown; }
#
# Per test, ov_setup makes a private temp root $T (mode 0755, so swtpm can
# run as the unprivileged "tss" user below it) holding:
#   $CFG        the hook's settings file (run_dir, state_dir, backend socket)
#   $RUN_DIR    the hook's run_dir
#   $STATE_DIR  the hook's state_dir
#   $T/rt/...   private runtime state roots (runc/crun --root)
# ov_teardown deletes every container the test made and then runs the leak
# check (no process mentioning $RUN_DIR, no slot of an id, no mount under $T);
# a leak fails the test.
#
# Runtimes: ov_rt RUNTIME ARGS... runs runc/crun on the test's private
# --root under `timeout`. crun always gets --cgroup-manager=disabled and, on
# a hybrid cgroup host (crun 1.8 refuses those outright), runs in a private
# mount namespace with /sys/fs/cgroup/unified unmounted. ov_run uses
# `crun run -d` under the ov-reap subreaper (ov-reap.c, built per file):
# a foreground `crun run` never returns while the hook's swtpm lives.
#
# Environment knobs:
#   OCI_VTPM_BUILD   build dir (default <repo>/build)
#   OCI_VTPM_HOOK    hook binary (default $OCI_VTPM_BUILD/oci-vtpm-hook)
#   OV_TIMEOUT       seconds allowed for each runtime/hook command (default 60)
#   OV_STRICT=1      a missing feature FAILS the test instead of skipping it
#   OV_KEEP_TMP=1    keep $T after the test (path is printed on failure)

bats_require_minimum_version 1.5.0
load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

OV_REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
OCI_VTPM_BUILD=${OCI_VTPM_BUILD:-$OV_REPO/build}
OV_HOOK=${OCI_VTPM_HOOK:-$OCI_VTPM_BUILD/oci-vtpm-hook}
OV_CLI=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm}
OV_TIMEOUT=${OV_TIMEOUT:-60}
OV_HOOK_TIMEOUT=30 # the timeout written into config.json hook entries
# A jq filter applied to every settings file ov_write_config writes, before
# the test's own (tests/vm sets start and stop timeouts with it).
OV_CONFIG_EXTRA=.
OV_TCTI=swtpm:path=/run/tpm/tpm0.sock
# A container script printing EK=<sha256 of its TPM's RSA EK public key>.
OV_EK_SCRIPT="tpm2_createek -T $OV_TCTI -c /tmp/ek.ctx -G rsa -u /tmp/ek.pub >/dev/null && echo EK=\$(sha256sum /tmp/ek.pub | cut -d' ' -f1)"
OV_PATH=/bin:/sbin:/usr/bin:/usr/sbin

# ---------------------------------------------------------------- utilities

# ov_log MSG...: diagnostic shown only when the test fails.
ov_log() { printf '# %s\n' "$*" >&2; }

# ov_wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds or the
# deadline passes (returns 1 then). The only sanctioned way to wait.
ov_wait_for() {
	local secs=$1 deadline
	shift
	deadline=$((SECONDS + secs))
	while ! "$@"; do
		if ((SECONDS >= deadline)); then
			ov_log "timed out after ${secs}s waiting for: $*"
			return 1
		fi
		sleep 0.1
	done
}

# shim_runc: "runc" on PATH is oci-vtpm-runtime in front of the real runc,
# with this test's settings ($SHIM: the shim binary).
shim_runc() {
	mkdir -p "$T/shimbin"
	printf '#!/bin/sh\nOCI_VTPM_CONFIG=%s OCI_VTPM_RUNTIME=%s exec %s "$@"\n' \
		"$CFG" "$(command -v runc)" "$SHIM" >"$T/shimbin/runc"
	chmod 0755 "$T/shimbin/runc"
	PATH=$T/shimbin:$PATH
}

# ov_stop_daemon PID MATCH DIR...: stop a daemon a test file started: TERM,
# KILL after 30 s; then KILL whatever still runs with MATCH in its command
# line (shims it left) and lazily unmount what is mounted under each DIR.
ov_stop_daemon() {
	local pid=$1 match=$2 d m
	shift 2
	kill -TERM "$pid" 2>/dev/null || true
	ov_wait_for 30 _ov_pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for m in $(pgrep -f -- "$(ov_ere_quote "$match")"); do kill -KILL "$m" 2>/dev/null || true; done
	for d in "$@"; do
		grep -F " $d" /proc/self/mountinfo | awk '{print $5}'
	done | sort -ru | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
_ov_pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# Escape a string for use as a literal inside an extended regex (pgrep -f).
ov_ere_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

# ov_pids_matching DIR: pids of processes whose command line contains DIR
# (pgrep -f excludes itself) or that run in DIR or below (a container's
# swtpm runs in its directory with a relative state dir).
ov_pids_matching() {
	local pid cwd
	{
		pgrep -f -- "$(ov_ere_quote "$1")" || true
		for pid in $(pgrep -x swtpm); do
			cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
			[[ $cwd != "$1" && $cwd != "$1"/* ]] || echo "$pid"
		done
		ov_relay_pids "$1"
	} | sort -un
}

# ov_relay_pids DIR: control relays (lib/ctrl_relay.c) of the swtpm
# processes running in DIR, and any whose swtpm is gone (a relay exits with
# its swtpm: one that outlives it is a leak). Its fd 4 is swtpm's exit fd:
# its pidfd, or, without pidfds (lib/proc.h), a pipe swtpm holds the other
# end of.
ov_relay_pids() {
	local pid sw cwd
	for pid in $(pgrep -x ov-ctrl-relay); do
		# A zombie has exited: reaping it is pid 1's job (the relay is
		# double-forked), and pid 1 here can be slow at it.
		[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] || continue
		sw=$(awk '$1 == "Pid:" { print $2 }' "/proc/$pid/fdinfo/4" 2>/dev/null) || continue
		[ -n "$sw" ] || sw=$(ov_exit_pipe_holder "$pid")
		if [ -z "$sw" ] || [ "$sw" -le 0 ] || ! cwd=$(readlink "/proc/$sw/cwd" 2>/dev/null); then
			echo "$pid"
		elif [[ $cwd == "$1" || $cwd == "$1"/* ]]; then
			echo "$pid"
		fi
	done
}

# ov_exit_pipe_holder PID: the swtpm holding the other end of the pipe at
# PID's fd 4 (a relay's exit pipe, where there are no pidfds); nothing when
# fd 4 is no pipe or no swtpm holds it.
ov_exit_pipe_holder() {
	local l s f
	l=$(readlink "/proc/$1/fd/4" 2>/dev/null) || return 0
	[[ $l == pipe:* ]] || return 0
	for s in $(pgrep -x swtpm); do
		for f in /proc/"$s"/fd/*; do
			[ "$(readlink "$f" 2>/dev/null)" != "$l" ] || {
				echo "$s"
				return 0
			}
		done
	done
}

# Where things live in the run dir (include/oci-vtpm/instance.h): one
# directory per kind. Tests name a container's slot, the name claims, warm
# and precreated vTPMs and the pool's work dir only through these, so that
# the run-dir layout is written down once.
OV_RUN_KINDS="containers warm precreated names pool uids"
# ov_slot SLOT: the directory of a slot: a container id, or the slot name
# of a warm or precreated vTPM ("warm/<hex>", "precreated/<hex>": a '/' no
# container id has; what `oci-vtpm gc` prints, ov_slot_name gives).
ov_slot() {
	case $1 in
	warm/* | precreated/*) printf '%s/%s' "$RUN_DIR" "$1" ;;
	*) printf '%s/containers/%s' "$RUN_DIR" "$1" ;;
	esac
}
# ov_slot_name PATH...: the slot names of slot directories (stdin without
# arguments), one a line.
ov_slot_name() {
	if [ $# -eq 0 ]; then sed -e "s|^$RUN_DIR/containers/||" -e "s|^$RUN_DIR/||"; else printf '%s\n' "$@" | ov_slot_name; fi
}
ov_names_dir() { printf '%s/names' "$RUN_DIR"; }
ov_uids_dir() { printf '%s/uids' "$RUN_DIR"; } # swtpm_uid_range claims
ov_pool_work_dir() { printf '%s/pool' "$RUN_DIR"; }
# ov_warm_slots / ov_pre_slots: full paths of warm / precreated slots, one
# per line (none: no output).
ov_warm_slots() { find "$RUN_DIR/warm" -mindepth 1 -maxdepth 1 2>/dev/null | sort; }
ov_pre_slots() { find "$RUN_DIR/precreated" -mindepth 1 -maxdepth 1 2>/dev/null | sort; }
# ov_run_entries: what the run dir holds, one path a line: every slot,
# claim and pool work dir, and anything else in it but its (possibly
# empty) kind directories. No output: as good as empty.
ov_run_entries() {
	local k
	[ -d "$RUN_DIR" ] || return 0
	for k in $OV_RUN_KINDS; do
		find "$RUN_DIR/$k" -mindepth 1 -maxdepth 1 2>/dev/null
	done
	find "$RUN_DIR" -mindepth 1 -maxdepth 1 $(printf -- "! -name %s " $OV_RUN_KINDS)
}

# ov_swtpm_pids [ID]: pids of swtpm processes belonging to container ID
# (all of this test's run_dir without ID).
ov_swtpm_pids() {
	local pat=$RUN_DIR pid comm
	[ $# -eq 0 ] || pat=$(ov_slot "$1")
	for pid in $(ov_pids_matching "$pat"); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		[ "$comm" = swtpm ] && echo "$pid"
	done
	return 0
}

_ov_no_relays() { [ -z "$(ov_relay_pids "$RUN_DIR")" ]; }

ov_swtpm_count() { ov_swtpm_pids "$@" | wc -l; }
ov_no_swtpm() { [ "$(ov_swtpm_count "$@")" -eq 0 ]; }

ov_ps() { [ $# -eq 0 ] || ps -o pid=,user=,args= -p "$(echo "$@" | tr ' \n' ',,' | sed 's/,*$//')" 2>/dev/null || true; }

# ----------------------------------------------------------------- features

# requires FEATURE...: skip (or fail with OV_STRICT=1) naming the first
# missing feature. Runtime probes run a real busybox container once per file.
requires() {
	local f why
	for f in "$@"; do
		why=$(_ov_probe "$f") && continue
		ov_missing "$f" "$why"
	done
}

# ov_missing FEATURE WHY: skip the test naming what is missing; with
# OV_STRICT=1 (CI) fail it instead.
ov_missing() {
	if [ "${OV_STRICT:-0}" = 1 ]; then
		fail "missing feature '$1': $2 (OV_STRICT=1)"
	fi
	skip "missing feature '$1': $2"
}

# ovadm ARGS...: the admin tool with the test's settings.
ovadm() { timeout -k 5 "$OV_TIMEOUT" "$OV_CLI" --config "$CFG" "$@" 3>&-; }

# ov_requires_init: what the admin tool's tests need, then `oci-vtpm init`
# (master key and host CA, as the settings name them).
ov_requires_init() {
	requires root jq busybox swtpm tpm2-tools hook runc
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built (run make)"
	command -v openssl >/dev/null || fail "openssl not installed"
	run ovadm init
	assert_success
	assert_output --partial "host CA"
}

# ov_busybox_links DIR: a symlink DIR/APPLET -> busybox for each applet of
# DIR/busybox that DIR lacks. One perl process, not one ln per applet
# (about 400): in the VM each fork costs up to a second on a busy host.
ov_busybox_links() {
	local a
	if command -v perl >/dev/null; then
		"$1/busybox" --list | perl -e 'chdir $ARGV[0] or die "$ARGV[0]: $!\n";
			while (<STDIN>) { chomp; -e || -l || symlink("busybox", $_) or die "$_: $!\n" }' "$1"
		return
	fi
	for a in $("$1/busybox" --list); do
		[ -e "$1/$a" ] || ln -s busybox "$1/$a"
	done
}

# ov_busybox_image TAR: a container image as a tar: busybox and its
# applets, root in passwd and group, empty mount points for the host's
# /usr, /lib and /lib64 (podman import). Nothing without busybox.
ov_busybox_image() {
	local img=${1%.tar} bb a
	bb=$(_ov_busybox)
	[ -n "$bb" ] || return 0
	mkdir -p "$img"/{bin,dev,etc,proc,sys,tmp,run,root,usr,lib,lib64,var/tmp}
	chmod 1777 "$img/tmp" "$img/var/tmp"
	cp "$bb" "$img/bin/busybox"
	ov_busybox_links "$img/bin"
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' >"$img/etc/passwd"
	printf '%s\n' 'root:x:0:' >"$img/etc/group"
	tar -C "$img" -cf "$1" .
}

# ov_pm ARGS...: podman on the test's private storage under $PM (--root,
# --runroot, --tmpdir; vfs, cgroupfs, no events), under timeout.
ov_pm() {
	local rc=0
	timeout -k 5 "$OV_TIMEOUT" podman --root "$PM/root" --runroot "$PM/runroot" \
		--tmpdir "$PM/tmp" --cgroup-manager=cgroupfs --storage-driver=vfs \
		--events-backend=none "$@" 3>&- || rc=$?
	ov_wait_stops # what a stop left, once its worker is done
	return $rc
}

# ov_pm_teardown: remove the test's podman containers and images.
ov_pm_teardown() {
	if [ -n "${T:-}" ] && [ -d "${PM:-/nonexistent}" ]; then
		ov_pm rm -a -f -t 0 >/dev/null 2>&1 || true
		ov_pm rmi -a -f >/dev/null 2>&1 || true
	fi
}

# Prints the reason and returns 1 when FEATURE is unavailable. Cached per file.
_ov_probe() {
	local f=$1 cache="$BATS_FILE_TMPDIR/probe.$1" why=""
	if [ -f "$cache" ]; then
		why=$(cat "$cache")
		[ -z "$why" ] && return 0
		echo "$why"
		return 1
	fi
	case $f in
	root) [ "$(id -u)" -eq 0 ] || why="must run as root" ;;
	hook)
		[ -x "$OV_HOOK" ] || why="$OV_HOOK not built (run make, or set OCI_VTPM_BUILD/OCI_VTPM_HOOK)"
		;;
	swtpm)
		if ! [ -x /usr/bin/swtpm ]; then
			why="/usr/bin/swtpm not installed (apt-get install swtpm)"
		elif ! timeout 10 /usr/bin/swtpm socket --tpm2 --print-capabilities >/dev/null 2>&1; then
			why="/usr/bin/swtpm socket --tpm2 --print-capabilities fails"
		elif ! getent passwd tss >/dev/null; then
			why="user 'tss' (default swtpm_user) does not exist"
		fi
		;;
	tpm2-tools)
		local t
		for t in tpm2_getrandom tpm2_pcrread tpm2_pcrextend tpm2_createek; do
			command -v "$t" >/dev/null || why="$t not installed (apt-get install tpm2-tools)"
		done
		[ -n "$why" ] || [ -e /usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0 ] ||
			ls /usr/lib/*/libtss2-tcti-swtpm.so.0 >/dev/null 2>&1 ||
			why="libtss2-tcti-swtpm.so.0 (swtpm TCTI) not found"
		;;
	busybox) [ -n "$(_ov_busybox)" ] || why="busybox not installed (apt-get install busybox-static)" ;;
	jq) command -v jq >/dev/null || why="jq not installed" ;;
	nsenter) command -v unshare >/dev/null && command -v nsenter >/dev/null ||
		why="unshare/nsenter (util-linux) not installed" ;;
	runc | crun) why=$(_ov_probe_runtime "$f") ;;
	podman)
		command -v podman >/dev/null || why="podman not installed"
		[ -n "$why" ] || timeout 30 podman info >/dev/null 2>&1 || why="podman info fails"
		;;
	*) why="unknown feature name '$f' (harness bug)" ;;
	esac
	printf '%s' "$why" >"$cache"
	[ -z "$why" ] && return 0
	echo "$why"
	return 1
}

_ov_busybox() {
	local b
	for b in /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null)"; do
		[ -n "$b" ] && [ -x "$b" ] && {
			echo "$b"
			return
		}
	done
}

# Run a trivial container with the runtime; prints why it cannot be used.
# For crun on a hybrid cgroup host it retries inside a private mount
# namespace with /sys/fs/cgroup/unified unmounted (crun 1.8 refuses hybrid
# mode even with --cgroup-manager=disabled) and records that in crun.mode.
_ov_probe_runtime() {
	local rt=$1 out b
	command -v "$rt" >/dev/null || {
		echo "$rt not installed"
		return
	}
	[ "$(id -u)" -eq 0 ] || {
		echo "$rt tests need root"
		return
	}
	b=$BATS_FILE_TMPDIR/probe-bundle
	[ -d "$b" ] || {
		mkdir -p "$b"
		jq --arg root "$OV_BASE_ROOTFS" '.root.path=$root | .process.args=["true"]' \
			"$OV_BASE_CONFIG" >"$b/config.json"
		jq 'del(.hooks)' "$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json"
	}
	if [ "$rt" = crun ]; then
		echo plain >"$BATS_FILE_TMPDIR/crun.mode"
		out=$(_ov_rt_root "$BATS_FILE_TMPDIR/probe-rt" crun run --bundle "$b" "ovprobe$$" 2>&1 </dev/null) && return
		if [[ $out == *"hybrid mode not supported"* ]] && command -v unshare >/dev/null; then
			echo unshare >"$BATS_FILE_TMPDIR/crun.mode"
			out=$(_ov_rt_root "$BATS_FILE_TMPDIR/probe-rt" crun run --bundle "$b" "ovprobe$$" 2>&1 </dev/null) && return
		fi
	else
		out=$(_ov_rt_root "$BATS_FILE_TMPDIR/probe-rt" "$rt" run --bundle "$b" "ovprobe$$" 2>&1 </dev/null) && return
	fi
	_ov_rt_root "$BATS_FILE_TMPDIR/probe-rt" "$rt" delete -f "ovprobe$$" >/dev/null 2>&1
	echo "$rt cannot run a busybox container: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
}

# ------------------------------------------------------------------ rootfs

# ov_setup_file: build the busybox base rootfs and base config.json once per
# test file. Call from setup_file.
ov_setup_file() {
	export OV_BASE_ROOTFS=$BATS_FILE_TMPDIR/rootfs
	export OV_BASE_CONFIG=$BATS_FILE_TMPDIR/config.base.json
	export OV_HOST_RO_MOUNTS=$BATS_FILE_TMPDIR/mounts.json
	local bb r=$OV_BASE_ROOTFS a d
	bb=$(_ov_busybox)
	[ -n "$bb" ] || return 0 # tests will skip via `requires busybox`
	command -v jq >/dev/null || return 0

	rm -rf "$r"
	mkdir -p "$r"/{bin,dev,etc,proc,sys,tmp,run,root,usr,var/tmp,mnt}
	chmod 1777 "$r/tmp" "$r/var/tmp"
	# /bin is a real directory holding busybox and its applets, so that the
	# host's /usr (bind-mounted read-only) does not shadow the shell.
	cp "$bb" "$r/bin/busybox"
	ov_busybox_links "$r/bin"
	ln -s bin "$r/sbin"

	# Host /usr read-only; /lib* follow the host layout (symlinks into usr
	# on merged-/usr systems like Debian 12, extra ro bind mounts otherwise).
	local mounts='[{"destination":"/usr","type":"bind","source":"/usr","options":["rbind","ro","nosuid","nodev"]}]'
	for d in lib lib32 lib64 libx32; do
		if [ -L "/$d" ]; then
			ln -s "$(readlink "/$d")" "$r/$d"
		elif [ -d "/$d" ]; then
			mkdir -p "$r/$d"
			mounts=$(jq -c --arg d "/$d" '. + [{destination:$d,type:"bind",source:$d,options:["rbind","ro","nosuid","nodev"]}]' <<<"$mounts")
		fi
	done
	# The dynamic loader cache and alternatives symlink targets.
	if [ -f /etc/ld.so.cache ]; then
		: >"$r/etc/ld.so.cache"
		mounts=$(jq -c '. + [{destination:"/etc/ld.so.cache",type:"bind",source:"/etc/ld.so.cache",options:["bind","ro"]}]' <<<"$mounts")
	fi
	if [ -d /etc/alternatives ]; then
		mkdir -p "$r/etc/alternatives"
		mounts=$(jq -c '. + [{destination:"/etc/alternatives",type:"bind",source:"/etc/alternatives",options:["rbind","ro"]}]' <<<"$mounts")
	fi
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/:/bin/false' >"$r/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$r/etc/group"
	echo ovtest >"$r/etc/hostname"
	printf '%s\n' "$mounts" >"$OV_HOST_RO_MOUNTS"

	# The subreaper helper behind `ov_run crun` (see ov_run).
	export OV_REAP=$BATS_FILE_TMPDIR/ov-reap
	if ! command -v cc >/dev/null ||
		! cc -O1 -Wall -o "$OV_REAP" "$BATS_TEST_DIRNAME/ov-reap.c" 2>"$BATS_FILE_TMPDIR/ov-reap.log"; then
		OV_REAP=""
	fi

	# Base config.json from `runc spec` when available (falls back to crun).
	local spec=$BATS_FILE_TMPDIR/spec
	mkdir -p "$spec"
	if command -v runc >/dev/null; then
		(cd "$spec" && runc spec) || return 1
	elif command -v crun >/dev/null; then
		(cd "$spec" && crun spec) || return 1
	else
		return 0
	fi
	jq --argjson m "$mounts" --arg path "PATH=$OV_PATH" '
		.process.terminal = false
		| .process.args = ["sh", "-c", "true"]
		| .process.env = [$path, "HOME=/root", "TERM=dumb"]
		| .root = {path: "rootfs", readonly: false}
		| .hostname = "ovtest"
		| .mounts += $m
		| .annotations = {}' "$spec/config.json" >"$OV_BASE_CONFIG"
}

# ---------------------------------------------------------------- per test

# ov_setup: per-test temp root, settings file, runtime roots. Call from setup.
ov_setup() {
	T=$(mktemp -d /tmp/ovt.XXXXXX)
	chmod 0755 "$T"
	RUN_DIR=$T/run
	STATE_DIR=$T/state
	CFG=$T/config.json
	OV_HOOK_LOG=$T/hook.log
	OV_HOOKS_STDERR=$T/hooks.stderr # crun writes hook stderr here
	: >"$T/ids"
	: >"$T/containers"
	: >"$T/bgpids"
	export T RUN_DIR STATE_DIR CFG OV_HOOK_LOG OV_HOOKS_STDERR
	ov_write_config
}

# ov_write_config [JQ-FILTER]: (re)write $CFG from the test defaults with an
# optional jq filter applied, e.g. ov_write_config '.swtpm = "/nonexistent"'.
ov_write_config() {
	local filter=${1:-.}
	jq -n --arg run "$RUN_DIR" --arg state "$STATE_DIR" --arg log "$OV_HOOK_LOG" '{
		run_dir: $run, state_dir: $state, backend: "socket",
		log_file: $log, log_level: "debug" }' | jq "$OV_CONFIG_EXTRA | $filter" >"$CFG"
}

# ov_new_id LABEL: a unique, short container id, registered for the leak
# check (<run_dir>/<id> must not survive the test).
ov_new_id() {
	local id="ov${BATS_SUITE_TEST_NUMBER:-0}${1:+-$1}-$RANDOM"
	echo "$id" >>"$T/ids"
	echo "$id"
}

# ov_hook_entry STAGE: a hooks[] entry calling the hook with stage STAGE.
ov_hook_entry() {
	jq -nc --arg p "$OV_HOOK" --arg s "$1" --arg e "OCI_VTPM_CONFIG=$CFG" --argjson t "$OV_HOOK_TIMEOUT" \
		'{path: $p, args: ["oci-vtpm-hook", $s], env: [$e], timeout: $t}'
}

# ov_bundle NAME [KEY=VALUE]...: make bundle $T/b/NAME (fresh rootfs copy,
# config.json with the hook at createRuntime and poststop) and print its path.
# KEY=VALUE pairs become annotations.
ov_bundle() {
	local base=$T/b/$1 b=$T/b/$1 n=1 kv
	shift
	while [ -e "$b" ]; do
		n=$((n + 1))
		b=$base.$n
	done
	mkdir -p "$b"
	cp -a "$OV_BASE_ROOTFS" "$b/rootfs"
	jq --argjson cr "$(ov_hook_entry createRuntime)" --argjson ps "$(ov_hook_entry poststop)" \
		'.hooks = {createRuntime: [$cr], poststop: [$ps]}' "$OV_BASE_CONFIG" >"$b/config.json"
	# crun drops hook stderr unless told where to put it; runc ignores this.
	ov_cfg "$b" --arg f "$OV_HOOKS_STDERR" '.annotations["run.oci.hooks.stderr"] = $f'
	for kv in "$@"; do
		ov_cfg "$b" --arg k "${kv%%=*}" --arg v "${kv#*=}" '.annotations[$k] = $v'
	done
	echo "$b"
}

# ov_cfg BUNDLE [JQ-ARGS...] FILTER: edit BUNDLE/config.json in place.
ov_cfg() {
	local b=$1
	shift
	jq "$@" "$b/config.json" >"$b/config.json.tmp" && mv "$b/config.json.tmp" "$b/config.json"
}

# ov_args BUNDLE CMD...: set the container's process args.
ov_args() {
	local b=$1
	shift
	local a='[]' x
	# (not `jq --args`: jq would parse a "-c" among the args as its option)
	for x in "$@"; do a=$(jq -c --arg x "$x" '. + [$x]' <<<"$a"); done
	ov_cfg "$b" --argjson a "$a" '.process.args = $a'
}

# ov_sh BUNDLE SCRIPT: the container runs `sh -c SCRIPT`.
ov_sh() { ov_args "$1" sh -c "$2"; }

# ---------------------------------------------------------------- runtimes

# _ov_rt_cmd ROOT RUNTIME: set array OV_CMD to the command line running
# RUNTIME with the given state root.
_ov_rt_cmd() {
	local root=$1 rt=$2 mode
	case $rt in
	runc) OV_CMD=(runc --root "$root") ;;
	crun)
		mode=$(cat "$BATS_FILE_TMPDIR/crun.mode" 2>/dev/null || echo plain)
		if [ "$mode" = unshare ]; then
			# crun 1.8 rejects hybrid cgroup hosts whatever the cgroup
			# manager: hide the v2 hierarchy in a private mount ns.
			OV_CMD=(unshare -m --propagation private sh -c
				'umount /sys/fs/cgroup/unified 2>/dev/null || umount -l /sys/fs/cgroup/unified; exec "$@"'
				sh crun --root "$root" --cgroup-manager=disabled)
		else
			OV_CMD=(crun --root "$root" --cgroup-manager=disabled)
		fi
		;;
	*)
		echo "unknown runtime $rt" >&2
		return 2
		;;
	esac
}

# _ov_rt_root ROOT RUNTIME ARGS...: run a runtime command under timeout with
# the given state root. fd 3 (bats' output channel) is closed so that
# daemonised children cannot hold the test open.
_ov_rt_root() {
	local OV_CMD rc=0
	_ov_rt_cmd "$1" "$2" || return
	shift 2
	timeout -k 5 "$OV_TIMEOUT" "${OV_CMD[@]}" "$@" 3>&- || rc=$?
	# A delete (or a foreground run, which ends with one) stops its vTPMs:
	# what the test checks next is what the stop worker leaves.
	case " $* " in *" delete "* | *" run "*) ov_wait_stops ;; esac
	return $rc
}

# ov_rt RUNTIME ARGS...: runtime command on this test's private state root.
ov_rt() {
	local rt=$1
	shift
	_ov_rt_root "$T/rt/$rt" "$rt" "$@"
}

_ov_register() { echo "$1 $2" >>"$T/containers"; }

# ov_run RUNTIME ID BUNDLE: run to completion (create, start, wait, delete)
# and return the container's exit status; the container's stdout/stderr
# are this command's.
#
# runc: `runc run` in the foreground. crun: `crun run` in the foreground
# waits (as child subreaper) until it has no child left at all, and the
# swtpm daemons a createRuntime hook starts become its children: it would
# never return, nor run poststop. So crun runs detached (`run -d`, as
# podman/conmon drive it) under ov-reap, a subreaper that waits for the
# container process and returns its status; then `delete`. Without gcc
# (no ov-reap) it polls until stopped and the status is the runtime's.
ov_run() {
	local rt=$1 id=$2 b=$3 rc=0 OV_CMD
	_ov_register "$rt" "$id"
	if [ "$rt" != crun ]; then
		ov_rt "$rt" run --bundle "$b" "$id" </dev/null
		return
	fi
	if [ -x "${OV_REAP:-}" ]; then
		_ov_rt_cmd "$T/rt/crun" crun
		timeout -k 5 "$OV_TIMEOUT" "$OV_REAP" "$T/$id.pid" \
			"${OV_CMD[@]}" run -d --pid-file "$T/$id.pid" --bundle "$b" "$id" </dev/null 3>&- || rc=$?
		# Not created at all: nothing to delete.
		[ -e "$T/$id.pid" ] || return $rc
	else
		ov_rt crun run -d --bundle "$b" "$id" </dev/null 3>&- || return
		ov_wait_for "$OV_TIMEOUT" _ov_is_stopped crun "$id" || return 124
	fi
	ov_rt crun delete -f "$id" || { ((rc != 0)) || rc=1; }
	return $rc
}

_ov_is_stopped() { [ "$(ov_status "$1" "$2")" = stopped ]; }

# ov_run_detached RUNTIME ID BUNDLE: `run -d`; returns once the container
# is running. Container stdio goes to $T/ID.out (runtime errors too; they
# are echoed on failure).
ov_run_detached() {
	local rc=0
	_ov_register "$1" "$2"
	ov_rt "$1" run -d --bundle "$3" "$2" </dev/null >"$T/$2.out" 2>&1 || rc=$?
	((rc == 0)) || cat "$T/$2.out"
	return $rc
}

# ov_create RUNTIME ID BUNDLE: `create` (runs createRuntime hooks, not start).
ov_create() {
	local rc=0
	_ov_register "$1" "$2"
	ov_rt "$1" create --bundle "$3" "$2" </dev/null >"$T/$2.out" 2>&1 || rc=$?
	((rc == 0)) || cat "$T/$2.out"
	return $rc
}

# ov_exec RUNTIME ID CMD...
ov_exec() {
	local rt=$1 id=$2
	shift 2
	ov_rt "$rt" exec "$id" "$@" </dev/null
}

ov_delete() { ov_rt "$1" delete "${@:3}" "$2"; }

ov_status() { ov_rt "$1" state "$2" 2>/dev/null | jq -r .status; }

runc_run() { ov_run runc "$@"; }
crun_run() { ov_run crun "$@"; }
runc_run_detached() { ov_run_detached runc "$@"; }
crun_run_detached() { ov_run_detached crun "$@"; }
runc_exec() { ov_exec runc "$@"; }
crun_exec() { ov_exec crun "$@"; }

# -------------------------------------------------------- calling the hook

# ov_state ID BUNDLE [PID] [STATUS]: OCI state JSON as a runtime would pass
# it, with the bundle's annotations when it has a config.json.
ov_state() {
	local id=$1 b=$2 pid=${3:-0} status=${4:-creating} ann='{}'
	[ -f "$b/config.json" ] && ann=$(jq -c '.annotations // {}' "$b/config.json")
	jq -nc --arg id "$id" --arg b "$b" --argjson pid "$pid" --arg s "$status" --argjson a "$ann" \
		'{ociVersion: "1.0.2", id: $id, status: $s, pid: $pid, bundle: $b, annotations: $a}'
}

# ov_hook STAGE STATE-FILE: run the hook like runc does: only the env from
# the hook entry, state on stdin, under timeout.
ov_hook() {
	local rc=0
	timeout -k 5 "$OV_TIMEOUT" env -i "OCI_VTPM_CONFIG=$CFG" "$OV_HOOK" "$1" <"$2" 3>&- || rc=$?
	[ "$1" != poststop ] || ov_wait_stops
	return $rc
}

# ov_htpm ID CMD ARGS...: host tpm2-tools against container ID's TPM
# (socket backend).
ov_htpm() {
	local id=$1
	shift
	TPM2TOOLS_TCTI="swtpm:path=$(ov_slot "$id")/private/tpm/tpm0.sock" timeout -k 5 30 "$@"
}
# ov_host_ek ID: EK digest of container ID's TPM, from the host.
ov_host_ek() {
	ov_htpm "$1" tpm2_createek -c "$T/ek.ctx" -G rsa -u "$T/ek.pub" >/dev/null || return 1
	ov_htpm "$1" tpm2_flushcontext -t >/dev/null || return 1
	sha256sum "$T/ek.pub" | cut -d' ' -f1
}
# ov_host_nvwrite ID VALUE: define (if needed) NV index $NV and write VALUE.
ov_host_nvwrite() {
	printf '%s' "$2" >"$T/nv.in"
	ov_htpm "$1" tpm2_nvreadpublic "$NV" >/dev/null 2>&1 ||
		ov_htpm "$1" tpm2_nvdefine "$NV" -C o -s "${#2}" -a 'ownerread|ownerwrite' >/dev/null || return 1
	ov_htpm "$1" tpm2_nvwrite "$NV" -C o -i "$T/nv.in"
}
# ov_host_nvread ID LEN: NV index $NV of container ID's TPM.
ov_host_nvread() { ov_htpm "$1" tpm2_nvread "$NV" -C o -s "$2"; }

# ov_dummy_pid: a sleeping process in its own mount namespace, standing in
# for a container init pid when the hook is called directly.
ov_dummy_pid() {
	local pid
	unshare -m --propagation private sleep 300 </dev/null >/dev/null 2>&1 3>&- &
	pid=$!
	echo "$pid" >>"$T/bgpids"
	# $! is unshare's pid before it has made its namespace: a fast hook
	# would join ours. Wait until the namespace is its own.
	ov_wait_for 10 _ov_own_mntns "$pid" >&2 || return 1
	echo "$pid"
}
_ov_own_mntns() { [ "$(readlink "/proc/$1/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]; }

# ov_assert_hook_error REGEX: after `run --separate-stderr ov_hook ...`:
# failed cleanly (1..123: not a signal, not the timeout), exactly one stderr
# line, starting with "oci-vtpm-hook:", matching REGEX (case-insensitive).
ov_assert_hook_error() {
	local re=$1
	if ((status == 0 || status > 123)); then
		fail "expected a clean non-zero exit (1..123), got $status; stderr: $stderr"
	fi
	if [ "${#stderr_lines[@]}" -ne 1 ]; then
		fail "expected exactly one line on stderr, got ${#stderr_lines[@]}:
$stderr"
	fi
	local line=${stderr_lines[0]}
	[[ $line == oci-vtpm-hook:* ]] || fail "stderr does not start with 'oci-vtpm-hook:': $line"
	local lc_line lc_re
	lc_line=$(tr '[:upper:]' '[:lower:]' <<<"$line")
	lc_re=$(tr '[:upper:]' '[:lower:]' <<<"$re")
	[[ $lc_line =~ $lc_re ]] || fail "stderr does not name the cause /$re/: $line"
}

# ov_ek_sh BUNDLE: the container prints EK=<sha256 of its TPM's RSA EK
# public key>, or NO_TPM when it has no TPM.
ov_ek_sh() { ov_sh "$1" "if [ -e /run/tpm/tpm0.sock ]; then $OV_EK_SCRIPT; else echo NO_TPM; fi"; }
# ov_run_ek LABEL BUNDLE: `run` a new container (LABEL) of BUNDLE, through
# `runc`, printing its EK as ov_ek_sh.
ov_run_ek() {
	ov_ek_sh "$2"
	run ov_run runc "$(ov_new_id "$1")" "$2"
}

# ov_replay_pcr11 <LOG: the sha256 PCR 11 (hex) that replaying the launch
# event log on stdin (`oci-vtpm log`) gives, from zero.
ov_replay_pcr11() {
	local want d
	want=$(printf '%064d' 0)
	for d in $(jq -r '.[].digests[] | select(.hashAlg == "sha256") | .digest'); do
		want=$(printf '%s%s' "$want" "$d" | tr a-f A-F | basenc --base16 -d | sha256sum | cut -d' ' -f1)
	done
	echo "$want"
}

# ov_hook_refused REGEX BUNDLE: the hook, called as runc would for a new
# container of BUNDLE, refuses it (ov_assert_hook_error REGEX) and makes
# nothing.
ov_hook_refused() {
	ov_state "$(ov_new_id refused)" "$2" "$(ov_dummy_pid)" >"$T/state.json"
	ov_snapshot
	run --separate-stderr ov_hook createRuntime "$T/state.json"
	ov_assert_hook_error "$1"
	ov_assert_no_new_files
}

# ------------------------------------------------------------- leak check

# ov_snapshot: remember every path under $T (but the hook log).
# ov_assert_no_new_files: fail listing paths created since ov_snapshot; the
# (empty) run_dir and state_dir directories themselves, and the run dir's
# (empty) kind directories, are allowed.
_ov_tree() { find "$T" \( -path "$OV_HOOK_LOG" -o -path "$OV_HOOKS_STDERR" \) -prune -o -print | sort; }
ov_snapshot() { _ov_tree >"$T/.snapshot"; }
ov_assert_no_new_files() {
	local new
	new=$(_ov_tree | comm -13 "$T/.snapshot" - |
		grep -vxF -e "$RUN_DIR" -e "$STATE_DIR" -e "$T/.snapshot" $(printf -- "-e $RUN_DIR/%s " $OV_RUN_KINDS) || true)
	[ -z "$new" ] || fail "files created where none should be:
$new"
}

# ov_wait_stops: wait (up to $OV_TIMEOUT s each) for the detached workers
# of pending stops (settings stop_async): a slot whose record says
# "stopping" is locked by its worker until it is archived and removed (or
# the worker died); taking the slot's lock waits for that. Returns 1 if one
# still holds it after the timeout.
ov_wait_stops() {
	local r d st rec rc=0
	# Read by the shell, no grep: this runs after every delete, and a
	# fork costs about 0.4 s in the VM (qemu TCG).
	for r in "$RUN_DIR"/containers/*/record.json; do
		rec=
		{ read -r -d '' rec <"$r"; } 2>/dev/null || true
		[[ $rec == *'"stopping":true'* ]] || continue
		d=${r%/record.json}
		# The directory opened here (fd 9), not by flock(1), which would
		# create a file where the worker just removed it. Gone: done.
		st=0
		{ timeout "$OV_TIMEOUT" flock -s 9; } 2>/dev/null 9<"$d" || st=$?
		if [ "$st" -eq 124 ]; then
			ov_log "a stop worker still holds $d"
			rc=1
		fi
	done
	return $rc
}

# ov_leak_check: prints every leak, returns 1 if any. Safe to call mid-test.
ov_leak_check() {
	local leaks=0 pids id m s
	ov_wait_stops || leaks=1
	# A control relay exits when it sees its swtpm gone: give it a moment
	# (a loaded machine schedules it late).
	ov_wait_for 10 _ov_no_relays >/dev/null 2>&1 || true
	pids=$(ov_pids_matching "$RUN_DIR")
	if [ -n "$pids" ]; then
		ov_log "LEAK: processes whose command line contains $RUN_DIR:"
		ov_ps $pids | sed 's/^/#   /' >&2
		leaks=1
	fi
	while read -r id; do
		[ -n "$id" ] || continue
		s=$(ov_slot "$id")
		if [ -e "$s" ] || [ -L "$s" ]; then
			ov_log "LEAK: $s still exists: $(ls -A "$s" 2>&1 | tr '\n' ' ')"
			leaks=1
		fi
	done <"$T/ids"
	# vTPMs a precreate stage started for a container that never came.
	m=$(ov_pre_slots)
	if [ -n "$m" ]; then
		ov_log "LEAK: vTPMs started before their container, never adopted: $m"
		leaks=1
	fi
	# Nothing in the run dir but its kinds' directories (an entry of the
	# flat layout, or of an unknown kind, is nobody's).
	m=$(find "$RUN_DIR" -mindepth 1 -maxdepth 1 $(printf -- "! -name %s " $OV_RUN_KINDS) 2>/dev/null || true)
	if [ -n "$m" ]; then
		ov_log "LEAK: entries of no kind in the run dir: $m"
		leaks=1
	fi
	m=$(grep -F -- "$T" /proc/self/mountinfo || true)
	if [ -n "$m" ]; then
		ov_log "LEAK: mounts under $T:"
		sed 's/^/#   /' <<<"$m" >&2
		leaks=1
	fi
	return $leaks
}

# ov_teardown: delete the test's containers, leak-check, clean up. Call from
# teardown; its failure fails the test.
ov_teardown() {
	[ -n "${T:-}" ] && [ -d "$T" ] || return 0
	local rc=0 rt id pid root
	while read -r rt id; do
		[ -n "$id" ] || continue
		ov_rt "$rt" delete -f "$id" >/dev/null 2>&1 || true
	done <"$T/containers"
	# Anything else still known to this test's runtime roots ($T/rt/RUNTIME,
	# and second roots $T/rt/RUNTIME-WHAT).
	for root in "$T"/rt/*; do
		[ -d "$root" ] || continue
		rt=${root##*/}
		rt=${rt%%-*}
		for id in $(_ov_rt_root "$root" "$rt" list -q 2>/dev/null); do
			ov_log "runtime $rt ($root) still had container $id after the test"
			_ov_rt_root "$root" "$rt" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
	while read -r pid; do
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done <"$T/bgpids"

	ov_leak_check || rc=1

	# Clean up leaks so one test cannot poison the next.
	if ((rc != 0)); then
		for pid in $(ov_pids_matching "$RUN_DIR"); do kill -9 "$pid" 2>/dev/null || true; done
		grep -F -- "$T" /proc/self/mountinfo | awk '{print $5}' | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
	if ((rc != 0)) && [ -s "$OV_HOOK_LOG" ]; then
		ov_log "hook log ($OV_HOOK_LOG), last lines:"
		tail -n 20 "$OV_HOOK_LOG" | sed 's/^/#   /' >&2
	fi
	if [ "${OV_KEEP_TMP:-0}" = 1 ]; then
		ov_log "kept $T"
	elif ! grep -qF -- "$T" /proc/self/mountinfo; then
		rm -rf "$T"
	fi
	return $rc
}
