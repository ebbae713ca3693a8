#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2030,SC2031,SC2046,SC2001
# (sh programs in single quotes; bats `run` sets output in the test)
# What a container, or a crafted OCI state, must never do to a vTPM or the
# host (issue #11). Socket backend, runc; each test failed before its fix.

load helpers

setup_file() { ov_setup_file; }
setup() { ov_setup; }
teardown() { ov_teardown; }

requires_stack() { requires root jq busybox swtpm tpm2-tools hook runc; }

# ----------------------------------------------------------------------------
# 1. The state never leaves the TPM: the container's control channel answers
#    only what a TSS needs.

@test "socket: swtpm_ioctl in the container cannot save, load, stop or re-init the TPM; tpm2-tools work" {
	requires_stack
	command -v swtpm_ioctl >/dev/null || fail "swtpm_ioctl not installed (swtpm-tools)"
	local b id T2=$OV_TCTI
	b=$(ov_bundle ioctl io.oci-vtpm.enable=true)
	ov_sh "$b" "
		cd /tmp
		C=/run/tpm/tpm0.sock.ctrl
		ls /run/tpm
		for what in permanent volatile savestate; do
			if swtpm_ioctl --unix \$C --save \$what /tmp/\$what.bin 2>/dev/null; then echo SAVED_\$what; fi
			[ -s /tmp/\$what.bin ] && echo DATA_\$what
		done
		head -c 64 /dev/zero >/tmp/junk.bin
		swtpm_ioctl --unix \$C --load permanent /tmp/junk.bin 2>/dev/null && echo LOADED
		swtpm_ioctl --unix \$C --stop 2>/dev/null && echo STOPPED
		swtpm_ioctl --unix \$C -i 2>/dev/null && echo REINIT
		swtpm_ioctl --unix \$C --info 1 2>/dev/null && echo INFO
		swtpm_ioctl --unix \$C -l 3 2>/dev/null && echo LOCALITY3
		swtpm_ioctl --unix \$C -s 2>/dev/null && echo SHUTDOWN
		echo RANDOM=\$(tpm2_getrandom -T $T2 --hex 8)
		tpm2_createek -T $T2 -c ek.ctx -G rsa -u ek.pub >/dev/null && echo EK_OK
		tpm2_flushcontext -T $T2 -t
		tpm2_createak -T $T2 -C ek.ctx -c ak.ctx -u ak.pub -n ak.name >/dev/null && echo AK_OK
		tpm2_flushcontext -T $T2 -t
		tpm2_pcrread -T $T2 sha256:0,16 >/dev/null && echo PCRREAD_OK
		tpm2_quote -T $T2 -c ak.ctx -l sha256:16 -q abcd -m q.msg -s q.sig -o q.pcrs >/dev/null && echo QUOTE_OK
		tpm2_nvdefine -T $T2 0x1500016 -C o -s 8 -a 'ownerread|ownerwrite' >/dev/null &&
			printf 12345678 | tpm2_nvwrite -T $T2 0x1500016 -C o -i - >/dev/null &&
			tpm2_nvread -T $T2 0x1500016 -C o -s 8 >/dev/null && echo NV_OK
		echo AFTER=\$(tpm2_getrandom -T $T2 --hex 4)"
	id=$(ov_new_id ioctl)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line tpm0.sock.ctrl
	for x in SAVED_permanent SAVED_volatile SAVED_savestate DATA_permanent DATA_volatile \
		DATA_savestate LOADED STOPPED REINIT INFO LOCALITY3 SHUTDOWN; do
		refute_line "$x"
	done
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	for x in EK_OK AK_OK PCRREAD_OK QUOTE_OK NV_OK; do assert_line "$x"; done
	assert_line --regexp '^AFTER=[0-9a-f]{8}$'
}

@test "socket: swtpm's own control socket is root-only, outside the directory the container gets" {
	requires_stack
	local b id s
	b=$(ov_bundle ctrl io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id ctrl)
	ov_run_detached runc "$id" "$b"
	s=$(ov_slot "$id")/ctrl-0.sock
	[ -S "$s" ] || fail "no $s: $(ls -la "$(ov_slot "$id")")"
	[ "$(stat -c '%a %u' "$s")" = "600 0" ] || fail "$s is $(stat -c '%a %u' "$s")"
	# It is swtpm's: the hook's stop answers there.
	run swtpm_ioctl --unix "$s" -c
	assert_success
	# What the container sees is not it.
	run ov_exec runc "$id" sh -c 'swtpm_ioctl --unix /run/tpm/tpm0.sock.ctrl --save permanent /tmp/p.bin; echo rc=$?'
	assert_line --regexp '^rc=[1-9]'
	# That is the relay's: unprivileged, gone with its swtpm.
	local relay
	relay=$(ov_relay_pids "$(ov_slot "$id")")
	[ -n "$relay" ] || fail "no control relay for $id"
	[ "$(stat -c %u "/proc/$relay")" != 0 ] || fail "the control relay runs as root"
	ov_delete runc "$id" -f
	ov_wait_for 5 _ov_gone "$relay"
}
_ov_gone() { ! kill -0 "$1" 2>/dev/null; }

# ----------------------------------------------------------------------------
# 2. Poststop talks to swtpm only through what the container cannot touch.

@test "socket: a container's symlink to another container's control socket does not make its poststop stop that swtpm" {
	requires_stack
	local a b ida idb target before after
	a=$(ov_bundle attacker io.oci-vtpm.enable=true)
	b=$(ov_bundle victim io.oci-vtpm.enable=true)
	ov_args "$a" sleep 600
	ov_args "$b" sleep 600
	ida=$(ov_new_id attacker)
	idb=$(ov_new_id victim)
	ov_run_detached runc "$ida" "$a"
	ov_run_detached runc "$idb" "$b"
	# The victim's control channel, wherever this version keeps it.
	target=$(ov_slot "$idb")/ctrl-0.sock
	[ -S "$target" ] || target=$(ov_slot "$idb")/private/tpm/tpm0.sock.ctrl
	[ -S "$target" ] || fail "no control socket of $idb found"
	before=$(ov_swtpm_pids "$idb")
	[ -n "$before" ] || fail "no swtpm for $idb"
	# Whatever the container manages to do to its own /run/tpm.
	ov_exec runc "$ida" sh -c "
		for f in /run/tpm/tpm0.sock.ctrl /run/tpm/tpm0.sock; do
			rm -f \$f; ln -s '$target' \$f
		done; ls -l /run/tpm" || true
	run ov_delete runc "$ida" -f
	after=$(ov_swtpm_pids "$idb")
	[ "$before" = "$after" ] || fail "the victim's swtpm changed: '$before' -> '$after'"
	run ov_exec runc "$idb" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	assert_output --regexp '^[0-9a-f]{16}$'
	ov_delete runc "$idb" -f
}

# ----------------------------------------------------------------------------
# 3. Nothing the container writes reaches the host's run dir; swtpm's log is
#    capped.

@test "socket: /run/tpm is read-only, nosuid, nodev, noexec; swtpm's files are capped (RLIMIT_FSIZE)" {
	requires_stack
	local b id pid
	b=$(ov_bundle ro io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id ro)
	ov_run_detached runc "$id" "$b"
	run ov_exec runc "$id" sh -c 'dd if=/dev/zero of=/run/tpm/big bs=1k count=64 2>&1; echo rc=$?'
	assert_output --partial "Read-only file system"
	assert_line --regexp '^rc=[1-9]'
	run ov_exec runc "$id" sh -c 'mkdir /run/tpm/d 2>&1; rm -f /run/tpm/tpm0.sock 2>&1; ls /run/tpm'
	assert_output --partial "Read-only file system"
	assert_line tpm0.sock
	[ ! -e "$(ov_slot "$id")/private/tpm/big" ] || fail "the container wrote into the host's run dir"
	run ov_exec runc "$id" sh -c 'grep " /run/tpm " /proc/self/mountinfo'
	assert_success
	[[ $output =~ \ ro, ]] && [[ $output == *nosuid* ]] && [[ $output == *nodev* ]] &&
		[[ $output == *noexec* ]] || fail "/run/tpm mount options: $output"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	pid=$(ov_swtpm_pids "$id")
	[ -n "$pid" ] || fail "no swtpm"
	run grep '^Max file size' "/proc/$pid/limits"
	assert_output --regexp 'Max file size +4194304 +4194304'
	ov_delete runc "$id" -f
}

# ----------------------------------------------------------------------------
# 4. The container id is checked before any file system operation, on the
#    warm path too.

@test "hook: a state with id ../x neither takes a warm vTPM nor moves it out of the run dir" {
	requires root jq busybox swtpm tpm2-tools hook nsenter
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built"
	local b bad warm stage
	ov_write_config '.warm_size = 1 | .pool_size = 0'
	run ovadm pool fill 0
	assert_success
	warm=$(ov_warm_slots | ov_slot_name)
	[ -n "$warm" ] || fail "no warm vTPM: $(ov_run_entries)"
	b=$(ov_bundle badid io.oci-vtpm.enable=true)
	for bad in '../x' '../../x' 'a/b' '..' ''; do
		for stage in createRuntime prestart poststop; do
			ov_state "$bad" "$b" "$(ov_dummy_pid)" >"$T/state.json"
			run --separate-stderr ov_hook "$stage" "$T/state.json"
			ov_assert_hook_error 'invalid container id'
			[ -d "$(ov_slot "$warm")" ] || fail "$stage with id '$bad' moved the warm vTPM $warm"
			# (A slot is <run_dir>/<kind>/<id>: ../x is $RUN_DIR/x, ../../x
			# $T/x; not /tmp/x, which is anybody's.)
			[ ! -e "$T/x" ] && [ ! -e "$RUN_DIR/x" ] && [ ! -e "$RUN_DIR/a" ] && [ ! -e "$(ov_slot a)" ] ||
				fail "$stage with id '$bad' made something outside the run dir"
		done
	done
	run ovadm pool drain
	assert_success
	[ ! -e "$(ov_slot "$warm")" ] || fail "drain left $warm"
}

# Container ids and the run dir's own entries never share a namespace: a
# container named like a warm or precreated vTPM, or like one of the run
# dir's directories, is a container like any other. (Failed before: `pool
# drain` stopped the vTPM of a running container named warm-<32 hex>.)

@test "run dir: a container whose id is warm-<32 hex> keeps its vTPM across pool drain and gc; containers named like the run dir's entries work" {
	requires_stack
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built"
	local b hex id pid ids=() pids=()
	hex=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	[[ $hex =~ ^[0-9a-f]{32}$ ]] || fail "hex: $hex"
	ov_write_config '.warm_size = 1 | .pool_size = 0'
	run ovadm pool fill 0
	assert_success
	[ "$(ov_warm_slots | wc -l)" = 1 ] || fail "no warm vTPM: $(ov_run_entries)"
	b=$(ov_bundle internal io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	for id in "warm-$hex" "pre-$hex" containers warm precreated names pool; do
		echo "$id" >>"$T/ids" # for the leak check
		ov_run_detached runc "$id" "$b" || fail "runc run $id"
		ids+=("$id")
		pids+=("$(ov_swtpm_pids "$id")")
		[ -n "${pids[-1]}" ] && [ -f "$(ov_slot "$id")/record.json" ] || fail "no vTPM for $id: $(ov_run_entries)"
	done
	# The first took the warm vTPM (any container may); make another.
	grep -q "warm-$hex: started 1 TPM 2.0 vTPM (socket backend), warm" "$OV_HOOK_LOG" ||
		fail "warm-$hex did not take the warm vTPM: $(grep -F "warm-$hex" "$OV_HOOK_LOG")"
	run ovadm pool fill 0
	assert_success
	[ "$(ov_warm_slots | wc -l)" = 1 ] || fail "warm vTPMs: $(ov_warm_slots)"

	run ovadm pool drain
	assert_success
	assert_output --partial "1 warm vTPMs stopped"
	[ -z "$(ov_warm_slots)" ] || fail "warm vTPMs left after drain: $(ov_warm_slots)"
	run ovadm gc
	assert_success
	assert_output "gc: 0 collected, 0 stray swtpm stopped, 0 failed"
	for i in "${!ids[@]}"; do
		id=${ids[$i]}
		[ "$(ov_swtpm_pids "$id")" = "${pids[$i]}" ] || fail "swtpm of $id: $(ov_swtpm_pids "$id"), was ${pids[$i]}"
		run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
		assert_success
		assert_output --regexp '^[0-9a-f]{16}$'
	done
	for id in "${ids[@]}"; do
		run ov_delete runc "$id" -f
		assert_success
		[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") left after delete"
	done
	ov_leak_check
}

# ----------------------------------------------------------------------------
# 5. What a message quotes cannot forge a log line.

@test "hook: a name with a newline and an escape sequence stays on one escaped line (stderr and log file)" {
	requires root jq busybox hook nsenter
	local b id forged
	forged=$'x\n2026-01-01T00:00:00.000Z oci-vtpm-hook[1] error FORGED line\e[2J\\'
	b=$(ov_bundle forge io.oci-vtpm.enable=true)
	ov_cfg "$b" --arg v "$forged" '.annotations["io.oci-vtpm.name"] = $v'
	id=$(ov_new_id forge)
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
	run --separate-stderr ov_hook createRuntime "$T/state.json"
	ov_assert_hook_error 'io\.oci-vtpm\.name'
	[[ $stderr == *'x\x0a2026-01-01T00:00:00.000Z oci-vtpm-hook[1] error FORGED line\x1b[2J\x5c'* ]] ||
		fail "not escaped on stderr: $stderr"
	run grep -c FORGED "$OV_HOOK_LOG"
	assert_output 1
	run grep '^2026-01-01' "$OV_HOOK_LOG"
	assert_failure
	run grep -c $'\e' "$OV_HOOK_LOG"
	assert_output 0
	# Every line of the log is one of ours: timestamp, program, level.
	run grep -vcE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z oci-vtpm-hook\[[0-9]+\] (error|warning|info|debug) ' "$OV_HOOK_LOG"
	assert_output 0
}

# ----------------------------------------------------------------------------
# Also found by reading: the settings name programs run as root.

@test "hook: a settings file (or its directory) writable by anyone but root is refused in one line" {
	requires root jq busybox hook nsenter
	local b id
	b=$(ov_bundle cfg io.oci-vtpm.enable=true)
	id=$(ov_new_id cfg)
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
	chmod 0666 "$CFG"
	run --separate-stderr ov_hook createRuntime "$T/state.json"
	ov_assert_hook_error "settings .*mode 0666: only root may write it"
	chmod 0644 "$CFG"
	chown nobody "$CFG"
	run --separate-stderr ov_hook createRuntime "$T/state.json"
	ov_assert_hook_error "settings .*owned by uid 65534"
	chown root "$CFG"
	mkdir "$T/cfgdir"
	cp -p "$CFG" "$T/cfgdir/config.json"
	chmod 0777 "$T/cfgdir"
	run --separate-stderr timeout 30 env -i "OCI_VTPM_CONFIG=$T/cfgdir/config.json" "$OV_HOOK" createRuntime <"$T/state.json"
	ov_assert_hook_error "its directory .*cfgdir .*mode 0777"
	[ ! -e "$(ov_slot "$id")" ] || fail "a refused start left $(ov_slot "$id")"
	ov_no_swtpm || fail "swtpm started with untrusted settings"
}

# ----------------------------------------------------------------------------
# Also found by reading: a directory made is durable in its parent.

# _fsync_follows FILE [PATTERN]: in strace output FILE (one process), the
# next call after every successful mkdirat (matching PATTERN) is an fsync.
_fsync_follows() {
	awk -v pat="${2:-}" '
		want && $0 !~ /^fsync\(.* = 0$/ { print "no fsync after: " prev; bad = 1 }
		{ want = $0 ~ /^mkdirat\(.* = 0$/ && index($0, pat); prev = $0 }
		END { if (want) { print "no fsync after: " prev; bad = 1 } exit bad }' "$1"
}

@test "init and createRuntime fsync the parent of every directory they make" {
	requires root jq busybox swtpm hook nsenter
	command -v strace >/dev/null || fail "strace not installed"
	local b id
	ov_write_config ".master_key = \"$T/keys/sub/master.key\" | .ca_key = \"$T/ca/sub/ca.key\" | .ca_cert = \"$T/ca/sub/ca.pem\""
	run strace -qq -e trace=mkdirat,fsync -o "$T/init.st" "$OV_CLI" --config "$CFG" init
	assert_success
	grep -q 'mkdirat(.*"sub", 0700) *= 0' "$T/init.st" || fail "init made no directory: $(cat "$T/init.st")"
	run _fsync_follows "$T/init.st"
	assert_success
	b=$(ov_bundle fs io.oci-vtpm.enable=true)
	id=$(ov_new_id fs)
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/state.json"
	run strace -qq -e trace=mkdirat,fsync -o "$T/hook.st" env -i "OCI_VTPM_CONFIG=$CFG" "$OV_HOOK" createRuntime <"$T/state.json"
	assert_success
	# (its slot, and the run dir's directory of containers' slots)
	grep -q "mkdirat(.*/$id\", 0711) *= 0" "$T/hook.st" || fail "no mkdirat of $id: $(cat "$T/hook.st")"
	run _fsync_follows "$T/hook.st" "/$id\""
	assert_success
	grep -q 'mkdirat(.*"containers", 0711) *= 0' "$T/hook.st" || fail "no mkdirat of containers: $(cat "$T/hook.st")"
	run _fsync_follows "$T/hook.st" '"containers"'
	assert_success
	run ov_hook poststop "$T/state.json"
	assert_success
}

# ----------------------------------------------------------------------------
# Records are keyed by container id: two runtime roots may each run a
# container with the same id. Neither may stop or adopt the other's vTPM.

@test "runc: a second runtime root's container with the same id neither stops nor adopts the first one's vTPM" {
	requires_stack
	local a b c id before after root2=$T/rt/runc-b
	a=$(ov_bundle owner io.oci-vtpm.enable=true)
	b=$(ov_bundle plain)
	c=$(ov_bundle asks io.oci-vtpm.enable=true)
	ov_args "$a" sleep 600
	ov_args "$b" true
	ov_args "$c" true
	id=$(ov_new_id same)
	ov_run_detached runc "$id" "$a"
	before=$(ov_swtpm_pids "$id")
	[ -n "$before" ] || fail "no swtpm for $id"
	# The same id under another root, asking for nothing: its poststop
	# runs the hook, which finds the first container's record.
	run _ov_rt_root "$root2" runc run --bundle "$b" "$id" </dev/null
	assert_success
	after=$(ov_swtpm_pids "$id")
	[ "$before" = "$after" ] || fail "the first container's swtpm changed: '$before' -> '$after'"
	grep -q "belongs to another container (bundle $a, not $b)" "$OV_HOOK_LOG" ||
		fail "no line naming the owner in the log: $(tail -n 5 "$OV_HOOK_LOG")"
	# The same id under another root, asking for a vTPM: refused in one
	# line, the first container's vTPM untouched.
	run _ov_rt_root "$root2" runc run --bundle "$c" "$id" </dev/null
	assert_failure
	assert_output --partial "start refused: the vTPM recorded for container id $id belongs to another container (bundle $a, not $c)"
	_ov_rt_root "$root2" runc delete -f "$id" >/dev/null 2>&1 || true
	after=$(ov_swtpm_pids "$id")
	[ "$before" = "$after" ] || fail "the first container's swtpm changed: '$before' -> '$after'"
	jq -e --arg a "$a" '.bundle == $a' "$(ov_slot "$id")/record.json" >/dev/null ||
		fail "the record changed: $(cat "$(ov_slot "$id")/record.json")"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	assert_output --regexp '^[0-9a-f]{16}$'
	ov_delete runc "$id" -f
	ov_no_swtpm "$id" || fail "the owner's delete did not stop its swtpm"
}

# ----------------------------------------------------------------------------
# The rootfs walk does not cross into a bind mount (RESOLVE_NO_XDEV): a
# volume is shared with the host or other containers.

@test "socket: /run bind-mounted from a host dir is not walked into (RESOLVE_NO_XDEV); a tmpfs /run of the runtime's is" {
	requires_stack
	local b id vol=$T/vol
	mkdir -p "$vol/sub"
	# The trick: a directory where the hook would make /run/tpm, and a
	# symlink next to it.
	ln -s /etc "$vol/tpm-link"
	b=$(ov_bundle vol io.oci-vtpm.enable=true)
	ov_cfg "$b" --arg v "$vol" '.mounts += [{destination: "/run", type: "bind", source: $v, options: ["rbind", "rw"]}]'
	ov_sh "$b" 'ls /run/tpm'
	id=$(ov_new_id vol)
	run ov_run runc "$id" "$b"
	assert_failure
	assert_output --partial "refusing /run/tpm: /run is a mount point that is not a filesystem of the container's own (a bind mount or volume); not crossed"
	[ ! -e "$vol/tpm" ] || fail "the hook made $vol/tpm in the host's directory"
	ov_no_swtpm "$id" || fail "swtpm left running"
	# The runtime's own tmpfs at /run (podman's, systemd containers') is
	# crossed: the container gets its TPM.
	b=$(ov_bundle tmpfs io.oci-vtpm.enable=true)
	ov_cfg "$b" '.mounts += [{destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "size=1m"]}]'
	ov_sh "$b" "tpm2_getrandom -T $OV_TCTI --hex 8"
	id=$(ov_new_id tmpfs)
	run ov_run runc "$id" "$b"
	assert_success
	assert_output --regexp '^[0-9a-f]{16}$'
}

# ----------------------------------------------------------------------------
# One uid per vTPM (swtpm_uid_range): a swtpm compromised through a libtpms
# bug reaches neither another vTPM's swtpm nor its state.

ov_uid_of() { awk '/^Uid:/ {print $2}' "/proc/$1/status"; }

@test "swtpm_uid_range: each container's swtpm has a uid of its own; it cannot open another's state or signal its swtpm" {
	requires_stack
	command -v setpriv >/dev/null || fail "setpriv not installed (util-linux)"
	local a b c u ida idb pa pb ua ub n
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built"
	ov_write_config ".swtpm_uid_range = {first: 231000, count: 2}
		| .master_key = \"$T/keys/master.key\" | .ca_key = \"$T/keys/ca.key\"
		| .ca_cert = \"$T/keys/ca.pem\""
	run ovadm init
	assert_success
	a=$(ov_bundle a io.oci-vtpm.enable=true io.oci-vtpm.name=uid-a)
	b=$(ov_bundle b io.oci-vtpm.enable=true)
	ov_args "$a" sleep 600
	ov_args "$b" sleep 600
	ida=$(ov_new_id a)
	idb=$(ov_new_id b)
	ov_run_detached runc "$ida" "$a"
	ov_run_detached runc "$idb" "$b"
	pa=$(ov_swtpm_pids "$ida")
	pb=$(ov_swtpm_pids "$idb")
	[ -n "$pa" ] && [ -n "$pb" ] || fail "swtpm pids: '$pa' '$pb'"
	ua=$(ov_uid_of "$pa")
	ub=$(ov_uid_of "$pb")
	[ "$ua" != "$ub" ] || fail "both swtpm run as uid $ua"
	for u in "$ua" "$ub"; do
		((u >= 231000 && u <= 231001)) || fail "uid $u is not in the range"
	done
	[ "$(stat -c '%u:%g %a' "$(ov_slot "$ida")/state-0")" = "$ua:$ua 700" ] ||
		fail "state of $ida: $(stat -c '%u:%g %a' "$(ov_slot "$ida")/state-0")"
	[ "$(stat -c '%u:%g %a' "$(ov_slot "$idb")/state-0")" = "$ub:$ub 700" ] ||
		fail "state of $idb: $(stat -c '%u:%g %a' "$(ov_slot "$idb")/state-0")"
	# As A's swtpm: B's state cannot be listed or written, B's swtpm not
	# signalled; its own state can.
	run setpriv --reuid="$ua" --regid="$ua" --clear-groups ls "$(ov_slot "$idb")/state-0"
	assert_failure
	assert_output --partial "Permission denied"
	run setpriv --reuid="$ua" --regid="$ua" --clear-groups touch "$(ov_slot "$idb")/state-0/x"
	assert_failure
	run setpriv --reuid="$ua" --regid="$ua" --clear-groups kill -0 "$pb"
	assert_failure
	run setpriv --reuid="$ua" --regid="$ua" --clear-groups ls "$(ov_slot "$ida")/state-0"
	assert_success
	# A third vTPM: the range (2) is used up, one line says so.
	c=$(ov_bundle c io.oci-vtpm.enable=true)
	run ov_run runc "$(ov_new_id c)" "$c"
	assert_failure
	# (runc quotes the hook's stderr: \" for ")
	assert_output --regexp 'no free uid for swtpm: all 2 of settings \\?"swtpm_uid_range\\?" are in use'
	run ov_exec runc "$ida" tpm2_nvdefine -T "$OV_TCTI" 0x1500017 -C o -s 8 -a 'ownerread|ownerwrite'
	assert_success
	ov_delete runc "$ida" -f
	# Freed: the named vTPM comes back (archive restored to the uid it
	# gets now), and the range has room again.
	n=$(find "$(ov_uids_dir)" -type f | wc -l)
	[ "$n" -eq 1 ] || fail "uid claims after one stop: $(ls "$(ov_uids_dir)")"
	ida=$(ov_new_id a2)
	ov_run_detached runc "$ida" "$a"
	run ov_exec runc "$ida" tpm2_nvreadpublic -T "$OV_TCTI" 0x1500017
	assert_success
	ua=$(ov_uid_of "$(ov_swtpm_pids "$ida")")
	[ "$ua" != "$ub" ] || fail "the restarted vTPM runs as B's uid $ub"
	[ "$(stat -c '%u' "$(ov_slot "$ida")/state-0"/tpm2-00.permall)" = "$ua" ] ||
		fail "restored state owned by $(stat -c '%u' "$(ov_slot "$ida")/state-0"/tpm2-00.permall), swtpm is $ua"
	ov_delete runc "$ida" -f
	ov_delete runc "$idb" -f
	[ -z "$(ls -A "$(ov_uids_dir)")" ] || fail "uid claims left: $(ls "$(ov_uids_dir)")"
}

@test "swtpm_uid_range: a warm vTPM keeps its uid when a container takes it; its claim follows and goes with the stop" {
	requires_stack
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built"
	local b id warm uid
	ov_write_config '.swtpm_uid_range = {first: 231100, count: 4} | .warm_size = 1 | .pool_size = 0'
	run ovadm pool fill 0
	assert_success
	warm=$(ov_warm_slots)
	[ -n "$warm" ] || fail "no warm vTPM"
	uid=$(stat -c %u "$warm/state-0")
	[ "$(cat "$(ov_uids_dir)/$uid")" = "$(ov_slot_name "$warm")" ] || fail "claim of $uid: $(cat "$(ov_uids_dir)/$uid")"
	b=$(ov_bundle warm io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id warm)
	ov_run_detached runc "$id" "$b"
	[ ! -e "$warm" ] || fail "the warm vTPM was not taken"
	[ "$(stat -c %u "$(ov_slot "$id")/state-0")" = "$uid" ] || fail "the taken vTPM changed uid"
	[ "$(cat "$(ov_uids_dir)/$uid")" = "$id" ] || fail "claim of $uid: $(cat "$(ov_uids_dir)/$uid")"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	ov_delete runc "$id" -f
	[ ! -e "$(ov_uids_dir)/$uid" ] || fail "the claim of $uid is left"
	run ovadm pool drain
	assert_success
}

# swtpm runs unprivileged whatever the hook's credentials: no root uid or
# gid, none of the hook's supplementary groups (a numeric --runas, as
# swtpm_uid_range gives, kept them: root's group 0 here), no_new_privs.
_ov_run_in_groups() {
	local OV_CMD
	_ov_register runc "$1"
	_ov_rt_cmd "$T/rt/runc" runc
	setpriv --groups 0,4 -- timeout -k 5 "$OV_TIMEOUT" "${OV_CMD[@]}" run -d --bundle "$2" "$1" \
		</dev/null >"$T/$1.out" 2>&1 3>&- || { cat "$T/$1.out"; return 1; }
}
_ov_assert_unprivileged() {
	local st
	st=$(grep -E '^(Uid|Gid|Groups|NoNewPrivs):' "/proc/$1/status")
	grep -qE '^Uid:\s+[1-9][0-9]*\s+[1-9][0-9]*\s+[1-9][0-9]*\s+[1-9][0-9]*$' <<<"$st" || fail "swtpm $1: $st"
	grep -qE '^Gid:\s+[1-9][0-9]*\s+[1-9][0-9]*\s+[1-9][0-9]*\s+[1-9][0-9]*$' <<<"$st" || fail "swtpm $1: $st"
	! grep -qE '^Groups:.*\b(0|4)\b' <<<"$st" || fail "swtpm $1 kept the hook's groups: $st"
	grep -qE '^NoNewPrivs:\s+1$' <<<"$st" || fail "swtpm $1: $st"
}

@test "swtpm keeps none of the hook's supplementary groups and cannot regain root (swtpm_uid_range and swtpm_user)" {
	requires_stack
	command -v setpriv >/dev/null || fail "setpriv not installed (util-linux)"
	local b id p
	b=$(ov_bundle grp io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	# By number (swtpm_uid_range): no groups at all.
	ov_write_config '.swtpm_uid_range = {first: 231300, count: 2}'
	id=$(ov_new_id grp)
	_ov_run_in_groups "$id" "$b"
	p=$(ov_swtpm_pids "$id")
	[ -n "$p" ] || fail "no swtpm for $id"
	_ov_assert_unprivileged "$p"
	grep -qE '^Groups:\s*$' "/proc/$p/status" || fail "swtpm $p: $(grep Groups "/proc/$p/status")"
	ov_delete runc "$id" -f
	# By name (swtpm_user, "tss"): the user's own groups only.
	ov_write_config
	id=$(ov_new_id grp2)
	_ov_run_in_groups "$id" "$b"
	p=$(ov_swtpm_pids "$id")
	[ -n "$p" ] || fail "no swtpm for $id"
	_ov_assert_unprivileged "$p"
	ov_delete runc "$id" -f
}
