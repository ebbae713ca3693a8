#!/usr/bin/env bats
# Rootless podman with the socket backend, no root anywhere: two real
# unprivileged users (useradd, with subuid/subgid ranges), each running
# podman 4 itself (runuser) with the repo's oci-hooks file and no settings
# file at all: every default is the user's own (lib/rootless.h). The hook
# runs inside podman's user namespace as its uid 0, with no environment.
#
# Each user gets /run/user/UID (0700, made here: no logind) as
# XDG_RUNTIME_DIR, a busybox image imported as that user, and podman with
# runc, cgroupfs, vfs and no events. The binaries are copied into a
# directory the users can read. The container gets tpm2-tools from the
# host's /usr, /lib and /lib64, read-only. teardown_file removes the users,
# their homes, their subordinate ids and every process they still have.

load helpers

IMAGE=localhost/ov-busybox:test
RL_SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}
RL_RUN=(--network none -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro)
TPM_SCRIPT="ls /run/tpm && echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8)"
EK_SCRIPT="cd /tmp && tpm2_createek -T $OV_TCTI -c ek.ctx -G rsa -u ek.pub >/dev/null && echo EK=\$(sha256sum ek.pub | cut -d' ' -f1)"

# rl_subids FILE USER: give USER 65536 subordinate ids in FILE after every
# range already there, unless useradd gave it some.
rl_subids() {
	local f=$1 u=$2 start
	grep -q "^$u:" "$f" && return 0
	start=$(awk -F: 'BEGIN { m = 100000 } { e = $2 + $3; if (e > m) m = e } END { print m }' "$f")
	echo "$u:$start:65536" >>"$f"
}

# rl_user_add USER: a real unprivileged user with subordinate ids, a home
# and /run/user/UID.
rl_user_add() {
	local u=$1 uid
	useradd -m -s /bin/sh "$u" || fail "useradd $u"
	rl_subids /etc/subuid "$u"
	rl_subids /etc/subgid "$u"
	uid=$(id -u "$u")
	install -d -m 0700 -o "$u" -g "$u" "/run/user/$uid"
}

# rl_user_del USER: remove USER, every process it has (by pid), its home,
# runtime dir and subordinate ids.
rl_user_del() {
	local u=$1 uid p
	uid=$(id -u "$u" 2>/dev/null) || return 0
	rl_pm "$u" rm -a -f -t 0 >/dev/null 2>&1 || true
	for p in $(pgrep -u "$uid"); do kill -KILL "$p" 2>/dev/null || true; done
	ov_wait_for 10 _rl_no_procs "$uid" || true
	userdel -r "$u" >/dev/null 2>&1 || userdel -f -r "$u" >/dev/null 2>&1 || true
	sed -i "/^$u:/d" /etc/subuid /etc/subgid
	rm -rf "/run/user/$uid" "/home/$u"
}
_rl_no_procs() { [ -z "$(pgrep -u "$1")" ]; }

# rl_as USER CMD...: CMD as USER, with a login's environment (HOME,
# XDG_RUNTIME_DIR) and nothing else, from /, under timeout.
rl_as() {
	local u=$1 uid
	shift
	uid=$(id -u "$u") || return 1
	(cd / && timeout -k 5 "$OV_TIMEOUT" runuser -u "$u" -- env -i PATH="$OV_PATH" \
		HOME="/home/$u" USER="$u" XDG_RUNTIME_DIR="/run/user/$uid" "$@" 3>&-)
}

# rl_pm USER ARGS...: USER's own rootless podman (its default storage in
# its home) with runc; ARGS may add --hooks-dir, or --runtime again.
rl_pm() {
	local u=$1 rc=0
	shift
	rl_as "$u" podman --cgroup-manager=cgroupfs --storage-driver=vfs --events-backend=none \
		--runtime runc "$@" || rc=$?
	RUN_DIR=$(rl_run_dir "$u") ov_wait_stops # the stop workers of what it stopped
	return $rc
}

# rl_run_dir USER / rl_data_dir USER: the defaults the hook must pick.
rl_run_dir() { echo "/run/user/$(id -u "$1")/oci-vtpm"; }
rl_data_dir() { echo "/home/$1/.local/share/oci-vtpm"; }

# rl_hooks_dir DIR [ENV]: an oci-hooks dir from the repo's template, the
# hook copied where users can run it; ENV (KEY=VALUE) its hook env.
rl_hooks_dir() {
	local d=$1
	mkdir -p "$d"
	chmod 0755 "$d"
	sed "s|@BINDIR@|$RL_DIR|g" "$OV_REPO/config/hooks.d/oci-vtpm.json.in" >"$d/oci-vtpm.json"
	if [ $# -gt 1 ]; then
		jq --arg e "$2" '.hook.env = [$e]' "$d/oci-vtpm.json" >"$d/j" && mv "$d/j" "$d/oci-vtpm.json"
	fi
	chmod 0644 "$d/oci-vtpm.json"
}

setup_file() {
	ov_setup_file
	local bin
	for bin in "$OV_HOOK" "$OV_CLI" "$RL_SHIM"; do
		[ -x "$bin" ] || fail "$bin not built (run make)"
	done
	for bin in podman runc runuser useradd newuidmap newgidmap swtpm tpm2_getrandom jq; do
		command -v "$bin" >/dev/null || fail "$bin not installed (scripts/deps.sh test)"
	done
	[ "$(id -u)" -eq 0 ] || fail "rootless.bats makes users: run it as root"
	# Where the users find the binaries, the image and the hooks dir.
	RL_DIR=$(mktemp -d /tmp/ovrl.XXXXXX)
	chmod 0755 "$RL_DIR"
	cp "$OV_HOOK" "$RL_DIR/oci-vtpm-hook"
	cp "$OV_CLI" "$RL_DIR/oci-vtpm"
	cp "$RL_SHIM" "$RL_DIR/oci-vtpm-runtime"
	chmod 0755 "$RL_DIR/oci-vtpm-hook" "$RL_DIR/oci-vtpm" "$RL_DIR/oci-vtpm-runtime"
	rl_hooks_dir "$RL_DIR/hooks.d"
	mkdir -m 0755 "$RL_DIR/no-hooks"
	ov_busybox_image "$RL_DIR/image.tar"
	chmod -R a+rX "$RL_DIR"
	RL_A=ovrla$$
	RL_B=ovrlb$$
	export RL_DIR RL_A RL_B
	rl_user_add "$RL_A"
	rl_user_add "$RL_B"
	local u
	for u in "$RL_A" "$RL_B"; do
		run rl_pm "$u" import "$RL_DIR/image.tar" "$IMAGE"
		[ "$status" -eq 0 ] || fail "podman import as $u: $output"
	done
}

teardown_file() {
	[ -n "${RL_A:-}" ] && rl_user_del "$RL_A"
	[ -n "${RL_B:-}" ] && rl_user_del "$RL_B"
	[ -n "${RL_DIR:-}" ] && rm -rf "$RL_DIR"
	return 0
}

setup() {
	ov_setup
	: >"$T/rl-ids"
}

teardown() {
	local rc=0 u
	for u in "$RL_A" "$RL_B"; do
		rm -rf "/home/$u/.config/oci-vtpm" "/home/$u/ov.log"
		rl_pm "$u" rm -a -f -t 0 >/dev/null 2>&1 || true
		rl_leak_check "$u" || rc=1
	done
	ov_teardown || rc=1
	return $rc
}

# rl_id USER NAME: the container's full id, registered for the leak check.
rl_id() {
	local id
	id=$(rl_pm "$1" inspect --format '{{.Id}}' "$2") || fail "podman inspect $2 as $1"
	echo "$1 $id" >>"$T/rl-ids"
	echo "$id"
}

# rl_leak_check USER: nothing of USER's vTPMs left: no swtpm or control
# relay of USER (its processes are told by uid, not by the harness' run-dir
# match, which also sees other suites' relays on a shared host), no slot
# of a container this test made, no precreated vTPM, no mount of its run
# dir in any mount namespace (podman's own included).
rl_leak_check() {
	local u=$1 uid leaks=0 RUN_DIR m id p
	uid=$(id -u "$u")
	RUN_DIR=$(rl_run_dir "$u")
	ov_wait_stops || leaks=1
	for p in $(pgrep -u "$uid" -x swtpm) $(pgrep -u "$uid" -x ov-ctrl-relay); do
		# (a zombie relay has exited: reaping it is pid 1's job)
		[ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] || continue
		ov_log "LEAK: $u still runs: $(ov_ps "$p")"
		leaks=1
	done
	for id in $(awk -v u="$u" '$1 == u { print $2 }' "$T/rl-ids"); do
		if [ -e "$(ov_slot "$id")" ]; then
			ov_log "LEAK: $(ov_slot "$id") left"
			leaks=1
		fi
	done
	m=$(ov_pre_slots)
	if [ -n "$m" ]; then
		ov_log "LEAK: precreated vTPMs of $u: $m"
		leaks=1
	fi
	# (a bind mount's root is relative to its filesystem: /run's tmpfs)
	m=$(grep -lE -- "/user/$uid/oci-vtpm/" /proc/[0-9]*/mountinfo 2>/dev/null || true)
	if [ -n "$m" ]; then
		ov_log "LEAK: mounts of $RUN_DIR in: $m"
		leaks=1
	fi
	return $leaks
}

# rl_swtpm USER ID: pids of USER's swtpm processes serving container ID
# (they run in its slot).
rl_swtpm() {
	local RUN_DIR p cwd slot
	RUN_DIR=$(rl_run_dir "$1")
	slot=$(ov_slot "$2")
	for p in $(pgrep -u "$(id -u "$1")" -x swtpm); do
		cwd=$(readlink "/proc/$p/cwd" 2>/dev/null) || continue
		[[ $cwd != "$slot" && $cwd != "$slot"/* ]] || echo "$p"
	done
}

# rl_clean USER ID: after podman rm: nothing of container ID left.
rl_clean() {
	local RUN_DIR
	RUN_DIR=$(rl_run_dir "$1")
	[ ! -e "$(ov_slot "$2")" ] || fail "$(ov_slot "$2") left after podman rm: $(ls -A "$(ov_slot "$2")")"
	[ -z "$(rl_swtpm "$1" "$2")" ] || fail "swtpm left after podman rm: $(ov_ps $(rl_swtpm "$1" "$2"))"
	rl_leak_check "$1" || fail "leaks after podman rm (above)"
}

# rl_tpm_once USER PODMAN-GLOBAL-ARGS...: podman run (foreground) an
# annotated container whose TPM answers, podman rm, nothing left.
rl_tpm_once() {
	local u=$1 name=rl$RANDOM id
	shift
	run rl_pm "$u" "$@" run --name "$name" "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" sh -c "$TPM_SCRIPT"
	assert_success
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	id=$(rl_id "$u" "$name")
	run rl_pm "$u" rm "$name"
	assert_success
	rl_clean "$u" "$id"
}

# rl_sock USER ID: the host path of container ID's first TPM socket.
rl_sock() {
	local RUN_DIR s
	RUN_DIR=$(rl_run_dir "$1")
	s=$(find "$(ov_slot "$2")" -name tpm0.sock -type s)
	[ -n "$s" ] || fail "no tpm0.sock under $(ov_slot "$2")"
	echo "$s"
}

@test "rootless podman (--hooks-dir; the shim as runtime): an ephemeral vTPM in \$XDG_RUNTIME_DIR/oci-vtpm, swtpm as the user; nothing left after podman rm" {
	local name=rleph$RANDOM id uid pid RUN_DIR
	uid=$(id -u "$RL_A")
	run rl_pm "$RL_A" --hooks-dir "$RL_DIR/hooks.d" run -d --name "$name" "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" sleep 600
	assert_success
	id=$(rl_id "$RL_A" "$name")
	RUN_DIR=$(rl_run_dir "$RL_A")
	[ -d "$(ov_slot "$id")" ] || fail "no slot $(ov_slot "$id"): $(ls -la "$RUN_DIR" 2>&1)"
	run stat -c '%u %a' "$RUN_DIR"
	assert_output "$uid 700"
	# Nothing of it in root's default places.
	[ ! -e "/run/oci-vtpm/$id" ] || fail "the user's vTPM is under /run/oci-vtpm"
	pid=$(rl_swtpm "$RL_A" "$id")
	[ "$(wc -w <<<"$pid")" -eq 1 ] || fail "expected one swtpm for $id: $pid"
	run stat -c %u "/proc/$pid"
	assert_output "$uid"
	run rl_pm "$RL_A" exec "$name" sh -c "$TPM_SCRIPT"
	assert_success
	assert_line tpm0.sock
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	run rl_pm "$RL_A" rm -f -t 0 "$name"
	assert_success
	rl_clean "$RL_A" "$id"

	# podman run in the foreground, then podman rm: the TPM answers.
	rl_tpm_once "$RL_A" --hooks-dir "$RL_DIR/hooks.d"
	# The shim as podman's runtime, no hooks dir: the same defaults.
	rl_tpm_once "$RL_A" --hooks-dir "$RL_DIR/no-hooks" --runtime "$RL_DIR/oci-vtpm-runtime"
}

@test "rootless podman: a named vTPM keeps its identity across podman rm/run and stop/start; the archive and the key are the user's" {
	local data name id ek1 ek2 ek3 ek4 i uid RUN_DIR
	uid=$(id -u "$RL_A")
	data=$(rl_data_dir "$RL_A")
	run rl_as "$RL_A" "$RL_DIR/oci-vtpm" init
	assert_success
	assert_output --partial "$data/master.key"
	run stat -c '%u %a' "$data/master.key"
	assert_output "$uid 600"
	for i in 1 2; do
		name=rlnamed$i$RANDOM
		run rl_pm "$RL_A" --hooks-dir "$RL_DIR/hooks.d" run --name "$name" "${RL_RUN[@]}" \
			--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=rltest \
			"$IMAGE" sh -c "$EK_SCRIPT"
		assert_success
		assert_line --regexp '^EK=[0-9a-f]{64}$'
		eval "ek$i=\$(sed -n 's/^EK=//p' <<<\"\$output\")"
		id=$(rl_id "$RL_A" "$name")
		run rl_pm "$RL_A" rm "$name"
		assert_success
		rl_clean "$RL_A" "$id"
	done
	[ "$ek1" = "$ek2" ] || fail "the EK changed across podman rm/run: $ek1 vs $ek2"
	[ -f "$data/vtpms/rltest/meta.json" ] || fail "no archive in $data: $(ls -R "$data" | head)"
	[ -z "$(find "$data" ! -user "$uid")" ] || fail "not the user's: $(find "$data" ! -user "$uid")"
	run rl_as "$RL_A" "$RL_DIR/oci-vtpm" list
	assert_success
	assert_line --regexp '^rltest +2 '

	# stop archives, start restores: the same EK in the same container.
	name=rlstop$RANDOM
	run rl_pm "$RL_A" --hooks-dir "$RL_DIR/hooks.d" run -d --name "$name" "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=rltest \
		"$IMAGE" sleep 600
	assert_success
	id=$(rl_id "$RL_A" "$name")
	run rl_pm "$RL_A" exec "$name" sh -c "$EK_SCRIPT"
	assert_success
	ek3=$(sed -n 's/^EK=//p' <<<"$output")
	[ "$ek3" = "$ek1" ] || fail "the EK changed across podman rm/run -d: $ek1 vs $ek3"
	run rl_pm "$RL_A" stop -t 0 "$name"
	assert_success
	RUN_DIR=$(rl_run_dir "$RL_A")
	[ -z "$(rl_swtpm "$RL_A" "$id")" ] || fail "swtpm still runs after podman stop"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") left after podman stop"
	run rl_as "$RL_A" "$RL_DIR/oci-vtpm" list
	assert_line --regexp '^rltest +3 .* -$'
	run rl_pm "$RL_A" --hooks-dir "$RL_DIR/hooks.d" start "$name"
	assert_success
	[ "$(rl_swtpm "$RL_A" "$id" | wc -l)" -eq 1 ] || fail "no swtpm for $id after podman start"
	run rl_pm "$RL_A" exec "$name" sh -c "$EK_SCRIPT"
	assert_success
	ek4=$(sed -n 's/^EK=//p' <<<"$output")
	[ "$ek4" = "$ek1" ] || fail "the EK changed across podman stop/start: $ek1 vs $ek4"
	run rl_pm "$RL_A" rm -f -t 0 "$name"
	assert_success
	rl_clean "$RL_A" "$id"
	[ -f "$data/vtpms/rltest/meta.json" ] || fail "podman rm removed the archive"
}

@test "rootless: a user reaches neither another user's vTPM nor root's, from the host or from its containers" {
	local rid b bname bid bsock rsock out bin rin
	requires root jq busybox swtpm tpm2-tools hook runc
	# root's vTPM: a runc container with the hook, root's run dir.
	b=$(ov_bundle root io.oci-vtpm.enable=true)
	ov_sh "$b" 'sleep 600'
	rid=$(ov_new_id root)
	runc_run_detached "$rid" "$b"
	rsock=$(find "$(ov_slot "$rid")" -name tpm0.sock -type s)
	[ -n "$rsock" ] || fail "no socket for root's $rid"
	# User B's.
	bname=rlb$RANDOM
	run rl_pm "$RL_B" --hooks-dir "$RL_DIR/hooks.d" run -d --name "$bname" "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" sleep 600
	assert_success
	bid=$(rl_id "$RL_B" "$bname")
	bsock=$(rl_sock "$RL_B" "$bid")
	run stat -c '%U %a' "$(rl_run_dir "$RL_B")"
	assert_output "$RL_B 700"

	# (Through short symlinks: a socket path is at most 107 bytes, and
	# connect() resolves the link with the caller's permissions.)
	ln -s "${bsock%/*}" "$T/lb"
	ln -s "${rsock%/*}" "$T/lr"
	# Each owner reaches its own socket from the host (the checks below
	# can fail).
	run rl_as "$RL_B" tpm2_getrandom -T "swtpm:path=$T/lb/tpm0.sock" --hex 8
	assert_success
	run timeout 30 tpm2_getrandom -T "swtpm:path=$T/lr/tpm0.sock" --hex 8
	assert_success

	# User A on the host.
	run rl_as "$RL_A" tpm2_getrandom -T "swtpm:path=$T/lb/tpm0.sock" --hex 8
	assert_failure
	run rl_as "$RL_A" stat "$T/lb/tpm0.sock"
	assert_failure
	assert_output --partial "Permission denied"
	run rl_as "$RL_A" ls "$(rl_run_dir "$RL_B")"
	assert_failure
	assert_output --partial "Permission denied"
	run rl_as "$RL_A" tpm2_getrandom -T "swtpm:path=$T/lr/tpm0.sock" --hex 8
	assert_failure
	run rl_as "$RL_A" stat "$T/lr/tpm0.sock"
	assert_failure
	assert_output --partial "Permission denied"

	# User A's container, given all of /run/user and root's run dir, with
	# a vTPM of its own that answers.
	bin=/users/${bsock#/run/user/}
	bin=${bin%/*}
	rin=/hostrun/${rsock#"$T"/}
	rin=${rin%/*}
	out=$(
		cat <<EOF
ln -s $bin /tmp/b
ln -s $rin /tmp/r
stat /tmp/b/tpm0.sock 2>&1
tpm2_getrandom -T swtpm:path=/tmp/b/tpm0.sock --hex 8 2>&1 && echo REACHED_B
ls /users/$(id -u "$RL_B")/oci-vtpm >/dev/null 2>&1 && echo LISTED_B
stat /tmp/r/tpm0.sock 2>&1
tpm2_getrandom -T swtpm:path=/tmp/r/tpm0.sock --hex 8 2>&1 && echo REACHED_ROOT
$TPM_SCRIPT
EOF
	)
	run rl_pm "$RL_A" --hooks-dir "$RL_DIR/hooks.d" run --rm "${RL_RUN[@]}" \
		-v /run/user:/users:ro -v "$T:/hostrun:ro" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" sh -c "$out"
	assert_success
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	refute_line REACHED_B
	refute_line LISTED_B
	refute_line REACHED_ROOT
	# Denied, not missing: the paths were right.
	[ "$(grep -c 'Permission denied' <<<"$output")" -ge 2 ] || fail "not denied: $output"

	run rl_pm "$RL_B" rm -f -t 0 "$bname"
	assert_success
	rl_clean "$RL_B" "$bid"
}

@test "rootless: the hook refuses settings and a run dir another user owns or can write" {
	local a=$RL_A bdir adir uid_b name
	uid_b=$(id -u "$RL_B")
	# B's settings file, in B's directory, readable by all.
	bdir=$T/b-owned
	install -d -m 0755 -o "$RL_B" -g "$RL_B" "$bdir" "$bdir/run"
	printf '{"backend": "socket"}\n' >"$bdir/oci-vtpm.json"
	chown "$RL_B:" "$bdir/oci-vtpm.json"
	chmod 0644 "$bdir/oci-vtpm.json"
	# The admin tool as A (outside any namespace) names B's uid.
	run rl_as "$a" "$RL_DIR/oci-vtpm" --config "$bdir/oci-vtpm.json" list
	assert_failure
	assert_output --partial "owned by uid $uid_b"
	# The hook in A's podman (B's uid is not mapped there).
	rl_hooks_dir "$T/hooks-b" "OCI_VTPM_CONFIG=$bdir/oci-vtpm.json"
	run rl_pm "$a" --hooks-dir "$T/hooks-b" run --rm "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" true
	assert_failure
	assert_output --regexp "oci-vtpm-hook: [0-9a-f]+: settings $bdir/oci-vtpm.json is owned by uid [0-9]+ with mode 0644"

	# A's own settings, naming a run dir B owns, then one A owns that
	# others may write.
	adir=$T/a-owned
	install -d -m 0755 -o "$a" -g "$a" "$adir" "$adir/run-open"
	chmod 0777 "$adir/run-open"
	jq -n --arg r "$bdir/run" '{run_dir: $r}' >"$adir/b-run.json"
	jq -n --arg r "$adir/run-open" '{run_dir: $r}' >"$adir/open-run.json"
	chown "$a:" "$adir"/*.json
	chmod 0600 "$adir"/*.json
	rl_hooks_dir "$T/hooks-brun" "OCI_VTPM_CONFIG=$adir/b-run.json"
	name=rlbrun$RANDOM
	run rl_pm "$a" --hooks-dir "$T/hooks-brun" run --name "$name" "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" true
	assert_failure
	assert_output --regexp "oci-vtpm-hook: [0-9a-f]+: .*run directory $bdir/run is owned by uid [0-9]+"
	rl_hooks_dir "$T/hooks-open" "OCI_VTPM_CONFIG=$adir/open-run.json"
	run rl_pm "$a" --hooks-dir "$T/hooks-open" run --rm "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" true
	assert_failure
	assert_output --regexp "oci-vtpm-hook: [0-9a-f]+: .*run directory $adir/run-open is owned by uid 0 with mode 0777"
	[ -z "$(find "$bdir/run" "$adir/run-open" -mindepth 1)" ] || fail "the hook wrote into a refused run dir"
	run rl_pm "$a" rm -f "$name"

	# A's own default settings file (no OCI_VTPM_CONFIG) is read: its
	# log_file gets the start; once others may write it, it is refused.
	local cfgdir=/home/$a/.config/oci-vtpm
	install -d -m 0700 -o "$a" -g "$a" "/home/$a/.config" "$cfgdir"
	jq -n --arg l "/home/$a/ov.log" '{log_file: $l, log_level: "debug"}' >"$cfgdir/oci-vtpm.json"
	chown "$a:" "$cfgdir/oci-vtpm.json"
	chmod 0600 "$cfgdir/oci-vtpm.json"
	rl_tpm_once "$a" --hooks-dir "$RL_DIR/hooks.d"
	grep -q ": started 1 TPM 2.0 vTPM" "/home/$a/ov.log" ||
		fail "the user's settings were not read: $(cat "/home/$a/ov.log" 2>&1)"
	chmod 0666 "$cfgdir/oci-vtpm.json"
	run rl_pm "$a" --hooks-dir "$RL_DIR/hooks.d" run --rm "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true "$IMAGE" true
	assert_failure
	assert_output --regexp "oci-vtpm-hook: [0-9a-f]+: settings $cfgdir/oci-vtpm.json is owned by uid 0 with mode 0666"
}

@test "rootless: the device backend fails with one line naming why" {
	local name=rldev$RANDOM n id
	run rl_pm "$RL_A" --hooks-dir "$RL_DIR/hooks.d" run --name "$name" "${RL_RUN[@]}" \
		--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.backend=device "$IMAGE" true
	assert_failure
	assert_output --regexp "oci-vtpm-hook: [0-9a-f]+: the device backend needs root \(CAP_SYS_ADMIN in the initial user namespace\); rootless, use the socket backend"
	refute_output --partial "Operation not permitted"
	n=$(grep -o 'oci-vtpm-hook:' <<<"$output" | wc -l)
	[ "$n" -eq 1 ] || fail "expected one line of ours, got $n: $output"
	id=$(rl_id "$RL_A" "$name")
	run rl_pm "$RL_A" rm -f "$name"
	rl_clean "$RL_A" "$id"
}
