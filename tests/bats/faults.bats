#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
# Faults: the hook killed (SIGKILL) at every step of a start and of a stop,
# then what comes next (the runtime's poststop, `oci-vtpm gc`, the next
# start of the same name): no archive generation lost, no swtpm, slot or
# claim leaked, the same TPM identity (EK) and data come back. And 100
# starts of one name at once: exactly one wins.
#
# The fault points are live only in build/faults/oci-vtpm-hook (lib/fault.c
# built with -DOV_FAULTS; include/oci-vtpm/fault.h names the steps): with
# OCI_VTPM_FAULT=STEP it kills itself there. The installed hook has none.
# A full disk while archiving and a reboot are in persist.bats.

load helpers

NV=0x1500016
FAULT_HOOK=${OCI_VTPM_FAULT_HOOK:-$OCI_VTPM_BUILD/faults/oci-vtpm-hook}

setup_file() { ov_setup_file; }
setup() {
	ov_setup
	ov_write_config ".master_key = \"$T/keys/master.key\" | .ca_key = \"$T/keys/ca.key\"
		| .ca_cert = \"$T/keys/ca.pem\""
}
teardown() { ov_teardown; }

fl_requires() {
	requires root jq swtpm tpm2-tools hook nsenter
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built (run make)"
	[ -x "$FAULT_HOOK" ] || fail "$FAULT_HOOK not built (run make)"
	run ovadm init
	assert_success
}

# fl_state ID NAME [PID]: a bare bundle asking for vTPM NAME and the OCI
# state of a fake container ID (a dummy pid in its own mount namespace) in
# $T/ID.state.
fl_state() {
	local id=$1 b=$T/hb/$1
	mkdir -p "$b/rootfs"
	jq -n --arg n "$2" '{ociVersion: "1.0.2", root: {path: "rootfs"},
		annotations: {"io.oci-vtpm.enable": "true", "io.oci-vtpm.name": $n}}' >"$b/config.json"
	ov_state "$id" "$b" "${3:-$(ov_dummy_pid)}" >"$T/$id.state"
}
fl_up() { ov_hook createRuntime "$T/$1.state"; }
fl_down() { ov_hook poststop "$T/$1.state"; }
# fl_fault STEP STAGE ID: the fault hook, killed at STEP.
fl_fault() {
	timeout -k 5 "$OV_TIMEOUT" env -i "OCI_VTPM_CONFIG=$CFG" "OCI_VTPM_FAULT=$1" \
		"$FAULT_HOOK" "$2" <"$T/$3.state" 3>&-
}
# fl_container_gone ID: the fake container's init exits.
fl_container_gone() {
	local pid
	pid=$(jq -r .pid "$T/$1.state")
	kill -KILL "$pid" 2>/dev/null || true
	ov_wait_for 10 _ov_pid_gone "$pid"
}

# fl_config FILTER: edit the settings in place.
fl_config() { jq "$1" "$CFG" >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"; }

fl_gens() { find "$STATE_DIR/vtpms/$1" -name 'gen-*.ovtpm' -printf '%f\n' 2>/dev/null | sort; }

# fl_baseline NAME: vTPM NAME archived once with NV "<NAME>-1"; sets EK0 and
# GENS0 (its generation files).
fl_baseline() {
	local id
	id=$(ov_new_id base)
	fl_state "$id" "$1"
	run fl_up "$id"
	assert_success
	EK0=$(ov_host_ek "$id") || fail "no EK"
	ov_host_nvwrite "$id" "$1-1" || fail "NV write"
	run fl_down "$id"
	assert_success
	fl_container_gone "$id"
	GENS0=$(fl_gens "$1")
	[ -n "$GENS0" ] || fail "no generation archived"
}

# fl_up_nv ID NAME VALUE: container ID started with vTPM NAME, VALUE
# written to its NV index.
fl_up_nv() {
	fl_state "$1" "$2"
	run fl_up "$1"
	assert_success
	ov_host_nvwrite "$1" "$3" || fail "NV write"
}

# fl_check_after NAME VALUE: nothing leaked, no generation lost, and the next
# start of NAME has EK0 and VALUE in NV.
fl_check_after() {
	local name=$1 value=$2 id g
	run ovadm gc
	assert_success
	ov_no_swtpm || fail "swtpm left running: $(ov_ps $(ov_swtpm_pids))"
	for g in $GENS0; do
		[ -e "$STATE_DIR/vtpms/$name/$g" ] || fail "generation $g lost: $(fl_gens "$name")"
	done
	[ ! -e "$(ov_names_dir)/$name" ] || fail "the claim of $name is left"
	id=$(ov_new_id next)
	fl_state "$id" "$name"
	run fl_up "$id"
	assert_success
	[ "$(ov_host_ek "$id")" = "$EK0" ] || fail "another TPM identity came back"
	run ov_host_nvread "$id" "${#value}"
	assert_success
	assert_output "$value"
	run fl_down "$id"
	assert_success
	fl_container_gone "$id"
	run ovadm gc
	assert_success
	# A stopped swtpm's relay exits on its own: on a loaded machine,
	# give it time before the leak check counts it.
	ov_wait_for 15 _fl_no_procs || true
	ov_leak_check
}
_fl_no_procs() { [ -z "$(ov_pids_matching "$RUN_DIR")" ]; }

# fault_start STEP: the hook killed at STEP of a start; the runtime then
# runs poststop (runc does when a createRuntime hook fails).
fault_start() {
	fl_requires
	local id
	fl_baseline F
	id=$(ov_new_id fault)
	fl_state "$id" F
	run fl_fault "$1" createRuntime "$id"
	[ "$status" -eq 137 ] || fail "the hook was not killed at $1 (status $status): $output"
	run fl_down "$id"
	assert_success
	fl_container_gone "$id"
	[ ! -e "$(ov_slot "$id")" ] || fail "poststop left the slot: $(ls -A "$(ov_slot "$id")")"
	fl_check_after F F-1
}

# fault_stop STEP [sync]: a running vTPM with new data, its stop killed at
# STEP: in the detached worker of the poststop (settings stop_async, the
# default: the hook itself succeeds), or with sync (stop_async false) in
# the hook; the container is gone; gc archives what is left.
fault_stop() {
	fl_requires
	local id
	[ "${2:-}" != sync ] || fl_config '.stop_async = false'
	fl_baseline F
	id=$(ov_new_id fault)
	fl_up_nv "$id" F F-2
	run fl_fault "$1" poststop "$id"
	if [ "${2:-}" = sync ]; then
		[ "$status" -eq 137 ] || fail "the hook was not killed at $1 (status $status): $output"
	else
		assert_success
		ov_wait_stops || fail "the stop worker did not end"
		[ -e "$(ov_slot "$id")" ] || fail "the worker was not killed at $1: the slot is gone"
		jq -e '.stopping == true' "$(ov_slot "$id")/record.json" >/dev/null ||
			fail "the slot is not marked stopping: $(cat "$(ov_slot "$id")/record.json")"
	fi
	fl_container_gone "$id"
	run ovadm gc
	assert_success
	[ ! -e "$(ov_slot "$id")" ] || fail "gc left the slot: $(ls -A "$(ov_slot "$id")")"
	fl_check_after F F-2
}

@test "SIGKILL at start-slot: poststop, gc and the next start lose nothing" { fault_start start-slot; }
@test "SIGKILL at start-dirs: poststop, gc and the next start lose nothing" { fault_start start-dirs; }
@test "SIGKILL at start-provisioned: poststop, gc and the next start lose nothing" { fault_start start-provisioned; }
@test "SIGKILL at start-launched: poststop, gc and the next start lose nothing" { fault_start start-launched; }
@test "SIGKILL at start-attached: poststop, gc and the next start lose nothing" { fault_start start-attached; }
@test "SIGKILL at stop-locked: gc archives the live state; nothing lost" { fault_stop stop-locked; }
@test "SIGKILL at stop-stopped: gc archives the live state; nothing lost" { fault_stop stop-stopped; }
@test "SIGKILL at archive-written: gc archives again; nothing lost" { fault_stop archive-written; }
@test "SIGKILL at stop-archived: gc removes the slot; nothing lost" { fault_stop stop-archived; }
@test "stop_async false: SIGKILL of the poststop hook at stop-stopped: gc archives; nothing lost" { fault_stop stop-stopped sync; }

# A named vTPM's stop runs after its poststop returns, in a detached worker
# (settings stop_async) holding the slot's and the archive's locks; the
# fault hook's stop-slow makes it sleep 8 s before it stops swtpm. A start
# right after the poststop, of the same name under another container id
# (same-name) or of the same id (same-id), waits for it and gets the
# generation it writes: without the wait, the name is still claimed (the
# start fails) or an older generation comes back.
fl_stop_then_start() {
	fl_requires
	local id next sw
	fl_baseline W
	id=$(ov_new_id slow)
	fl_up_nv "$id" W W-2
	fl_container_gone "$id" # a runtime runs poststop once it is gone
	run fl_fault stop-slow poststop "$id"
	assert_success
	# Returned before the worker's archive: the slot is there, stopping,
	# its swtpm still running (cheap checks: the worker waits 8 s only).
	jq -e '.stopping == true' "$(ov_slot "$id")/record.json" >/dev/null ||
		fail "not marked stopping: $(cat "$(ov_slot "$id")/record.json" 2>&1)"
	sw=$(jq -r '.tpms[0].pid' "$(ov_slot "$id")/record.json")
	kill -0 "$sw" 2>/dev/null || fail "swtpm $sw stopped before the poststop returned"
	[ "$1" = same-id ] && next=$id || next=$(ov_new_id next)
	fl_state "$next" W
	run fl_up "$next"
	assert_success
	[ "$(fl_gens W | wc -l)" -eq $(($(wc -w <<<"$GENS0") + 1)) ] ||
		fail "the stop's generation is not there: $(fl_gens W)"
	[ "$(ov_host_ek "$next")" = "$EK0" ] || fail "another TPM identity came back"
	run ov_host_nvread "$next" 3
	assert_success
	assert_output W-2
	grep -q "$id: vTPM W archived as generation" "$OV_HOOK_LOG" ||
		fail "the worker did not log its archive: $(tail -n 5 "$OV_HOOK_LOG")"
	run fl_down "$next"
	assert_success
	fl_container_gone "$next"
	run ovadm gc
	assert_success
	ov_wait_for 15 _fl_no_procs || true
	ov_leak_check
}

@test "stop worker: a start of the same name right after poststop waits and gets the new generation" {
	fl_stop_then_start same-name
}
@test "stop worker: a start of the same id right after poststop waits and gets the new generation" {
	fl_stop_then_start same-id
}

@test "the installed hook has no fault points: OCI_VTPM_FAULT is ignored" {
	fl_requires
	local id
	! grep -q OCI_VTPM_FAULT "$OV_HOOK" || fail "$OV_HOOK reads OCI_VTPM_FAULT"
	id=$(ov_new_id nofault)
	fl_state "$id" N
	run timeout -k 5 "$OV_TIMEOUT" env -i "OCI_VTPM_CONFIG=$CFG" OCI_VTPM_FAULT=start-slot \
		"$OV_HOOK" createRuntime <"$T/$id.state"
	assert_success
	run fl_down "$id"
	assert_success
	fl_container_gone "$id"
	ov_leak_check
}

# fl_hook_race PREFIX N NAME PID: N createRuntime hooks at once, for the
# containers PREFIX<i>-$$ (init PID, listed in $T/ids) of the vTPM name
# NAME, or PREFIX<i> each when NAME is empty; each hook's exit code in
# $T/PREFIX<i>.rc, its stderr in $T/PREFIX<i>.err.
fl_hook_race() {
	local i
	for i in $(seq 1 "$2"); do
		fl_state "$1$i-$$" "${3:-$1$i}" "$4"
		echo "$1$i-$$" >>"$T/ids"
	done
	for i in $(seq 1 "$2"); do
		(ov_hook createRuntime "$T/$1$i-$$.state" >/dev/null 2>"$T/$1$i.err"
			echo $? >"$T/$1$i.rc") &
	done
	wait
}

@test "100 starts of one name at once: exactly one wins, the others fail in one line" {
	fl_requires
	local i pid wins=0 busy=0 winner="" e
	fl_baseline C
	pid=$(ov_dummy_pid)
	fl_hook_race c 100 C "$pid"
	for i in $(seq 1 100); do
		if [ "$(cat "$T/c$i.rc")" = 0 ]; then
			wins=$((wins + 1))
			winner=c$i-$$
		else
			e=$(cat "$T/c$i.err")
			[ "$(wc -l <"$T/c$i.err")" -eq 1 ] || fail "start $i: not one line: $e"
			[[ $e == *"vTPM C is in use by container"* ]] || fail "start $i: $e"
			busy=$((busy + 1))
		fi
	done
	[ "$wins" -eq 1 ] && [ "$busy" -eq 99 ] || fail "$wins won, $busy refused"
	[ "$(ov_swtpm_count)" -eq 1 ] || fail "$(ov_swtpm_count) swtpm running"
	[ "$(ov_host_ek "$winner")" = "$EK0" ] || fail "the winner has another TPM"
	run ov_hook poststop "$T/$winner.state"
	assert_success
	for i in $(seq 1 100); do
		[ "c$i-$$" = "$winner" ] || ov_hook poststop "$T/c$i-$$.state" >/dev/null 2>&1 || true
	done
	kill -KILL "$pid"
	run ovadm gc
	assert_success
	run fl_gens C
	[ "${#lines[@]}" -ge 2 ] || fail "generations: $output"
	ov_leak_check
}

# fl_many_bundles N: bundles $T/mb/1..N for `runc create`, each asking for
# vTPM "m<i>" (a new name each), rootfs hard-linked from the base one.
fl_many_bundles() {
	local i b base
	base=$(ov_bundle many io.oci-vtpm.enable=true)
	for i in $(seq 1 "$1"); do
		b=$T/mb/$i
		mkdir -p "$b"
		cp -al "$base/rootfs" "$b/rootfs"
		jq --arg n "m$i" '.annotations["io.oci-vtpm.name"] = $n' "$base/config.json" >"$b/config.json"
	done
}

# fl_many_create N: `runc create` of the N bundles at once, ids mc<i>-$$;
# $T/mc<i>.rc and .err hold each one's status and stderr.
fl_many_create() {
	local i
	for i in $(seq 1 "$1"); do
		_ov_register runc "mc$i-$$"
		echo "mc$i-$$" >>"$T/ids"
		(ov_rt runc create --bundle "$T/mb/$i" "mc$i-$$" </dev/null >/dev/null 2>"$T/mc$i.err"
			echo $? >"$T/mc$i.rc") &
	done
	wait
}

# fl_many_ek ID: the ECC EK's public key digest of container ID's TPM from
# the host (a P-256 primary: quick, derived from the TPM's own seed).
fl_many_ek() {
	ov_htpm "$1" tpm2_createek -c "$T/$1.ctx" -G ecc -u "$T/$1.pub" >/dev/null || return 1
	ov_htpm "$1" tpm2_flushcontext -t >/dev/null || return 1
	sha256sum "$T/$1.pub" | cut -d' ' -f1
}

# 100 containers under real runc start at once, each with a new name: no
# name claim, pool, uid or record race loses one. A new name without
# ek_cert costs no manufacture (swtpm makes its seeds at its first start;
# no EK until asked for), so this fits the default timeouts; the hook
# entries get 120 s anyway, for a loaded machine.
@test "100 starts of different new names at once: all start, distinct TPMs, one generation each, nothing left" {
	fl_requires
	requires runc busybox
	local i id ek n=100
	OV_HOOK_TIMEOUT=120 OV_TIMEOUT=300
	ov_write_config ".master_key = \"$T/keys/master.key\" | .start_timeout_ms = 60000
		| .stop_timeout_ms = 30000"
	fl_many_bundles $n
	fl_many_create $n
	for i in $(seq 1 $n); do
		[ "$(cat "$T/mc$i.rc")" = 0 ] || fail "start $i failed: $(cat "$T/mc$i.err")"
	done
	[ "$(ov_swtpm_count)" -eq $n ] || fail "$(ov_swtpm_count) swtpm running, not $n"
	[ "$(ls "$(ov_names_dir)" | wc -l)" -eq $n ] || fail "claims: $(ls "$(ov_names_dir)")"
	for i in $(seq 1 $n); do
		id=mc$i-$$
		ek=$(fl_many_ek "$id") || fail "the vTPM of $id does not answer"
		echo "$ek" >>"$T/eks"
	done
	[ "$(sort -u "$T/eks" | wc -l)" -eq $n ] || fail "EKs: $(sort "$T/eks" | uniq -d)"
	for i in $(seq 1 $n); do
		(ov_rt runc delete -f "mc$i-$$" >/dev/null 2>"$T/md$i.err"
			echo $? >"$T/md$i.rc") &
	done
	wait
	for i in $(seq 1 $n); do
		[ "$(cat "$T/md$i.rc")" = 0 ] || fail "stop $i failed: $(cat "$T/md$i.err")"
		run fl_gens "m$i"
		[ "${#lines[@]}" -eq 1 ] || fail "m$i: generations: $output"
	done
	ov_wait_for 30 _fl_no_procs || fail "left running: $(ov_ps $(ov_pids_matching "$RUN_DIR"))"
	[ -z "$(ls -A "$(ov_names_dir)")" ] || fail "claims left: $(ls "$(ov_names_dir)")"
	run ovadm gc
	assert_success
	assert_output "gc: 0 collected, 0 stray swtpm stopped, 0 failed"
	ov_leak_check
}

# fl_limit_race SETTING MESSAGE: 30 starts of new names at once on a host
# whose SETTING is 10: exactly 10 start, the other 20 fail in one line
# containing MESSAGE; then every poststop, gc finds nothing, no leak.
fl_limit_race() {
	local i pid wins=0 refused=0 e
	ov_write_config ".master_key = \"$T/keys/master.key\" | .$1 = 10"
	pid=$(ov_dummy_pid)
	fl_hook_race n 30 "" "$pid"
	for i in $(seq 1 30); do
		if [ "$(cat "$T/n$i.rc")" = 0 ]; then
			wins=$((wins + 1))
		else
			e=$(cat "$T/n$i.err")
			[ "$(wc -l <"$T/n$i.err")" -eq 1 ] || fail "start $i: not one line: $e"
			[[ $e == *"$2"* ]] || fail "start $i: $e"
			refused=$((refused + 1))
		fi
	done
	[ "$wins" -eq 10 ] && [ "$refused" -eq 20 ] || fail "$wins started, $refused refused"
	[ "$(ov_swtpm_count)" -eq 10 ] || fail "$(ov_swtpm_count) swtpm running"
	for i in $(seq 1 30); do
		run ov_hook poststop "$T/n$i-$$.state"
		assert_success
	done
	kill -KILL "$pid"
	run ovadm gc
	assert_success
	assert_output "gc: 0 collected, 0 stray swtpm stopped, 0 failed"
	ov_leak_check
}

# The settings' limits under contention. max_names: lib/provision.c counts
# the names under the archive root's lock until the new meta.json is
# written; only the 10 are archived.
@test "30 starts of new names at once with max_names 10: exactly 10 start, 20 fail in one line" {
	fl_requires
	fl_limit_race max_names "would be a new name beyond the 10 this host keeps"
	[ "$(find "$STATE_DIR/vtpms" -name meta.json | wc -l)" -eq 10 ] ||
		fail "archived: $(ls "$STATE_DIR/vtpms")"
}

# max_vtpms: the count and this start's claim are one step under a lock
# (lib/instance_reserve.c). Before, every start counted only recorded
# swtpms, none was recorded yet, and all 30 started.
@test "30 starts at once with max_vtpms 10: exactly 10 start, 20 fail in one line" {
	fl_requires
	fl_limit_race max_vtpms 'beyond the 10 this host runs (settings "max_vtpms")'
}

# max_vtpms counts a slot by its state dirs first and reads the records
# only near the limit (lib/instance_reserve.c): a start that holds its
# claim must already have its state dirs. The first start is held (SIGSTOP)
# right after its claim; the second, with room for one vTPM, is refused;
# the first, let go, starts.
@test "max_vtpms: a start held right after its claim is counted; the next is refused" {
	fl_requires
	local pid a st
	ov_write_config ".master_key = \"$T/keys/master.key\" | .max_vtpms = 1"
	pid=$(ov_dummy_pid)
	fl_state held-$$ H1 "$pid"
	fl_state next-$$ H2 "$pid"
	fl_fault stop:start-claimed createRuntime held-$$ >"$T/held.out" 2>&1 &
	a=$!
	held() { st=$(pgrep -f "^$FAULT_HOOK createRuntime\$") && [[ $(ps -o stat= -p "$st") == T* ]]; }
	ov_wait_for 20 held
	run fl_up next-$$
	assert_failure
	assert_output --partial '1 more vTPM would be beyond the 1 this host runs (settings "max_vtpms")'
	kill -CONT "$st"
	wait "$a" || fail "the held start failed: $(cat "$T/held.out")"
	[ "$(ov_swtpm_count)" -eq 1 ] || fail "$(ov_swtpm_count) swtpm running"
	run fl_down held-$$
	assert_success
	kill -KILL "$pid"
	ov_leak_check
}

# fl_exit_pipe_relay SWTPM-PID: the control relay whose fd 4 is a pipe
# SWTPM-PID holds the other end of.
fl_exit_pipe_relay() {
	local r
	for r in $(pgrep -x ov-ctrl-relay); do
		[ "$(ov_exit_pipe_holder "$r")" != "$1" ] || echo "$r"
	done
}

# A kernel without pidfd_open (Linux before 5.3; valgrind 3.19 fails it
# with ENOSYS too): the fault hook with OCI_VTPM_FAULT=no-pidfd gets ENOSYS
# from every pidfd_open (lib/proc.c). swtpm and its relay are tracked by
# pid and start time, and by swtpm's exit pipe: a named vTPM starts under
# real runc, answers from inside, its relay watches the exit pipe, its stop
# archives a generation and ends swtpm and relay; gc finds nothing.
@test "without pidfd_open (ENOSYS): start, use, stop and archive by pid and start time" {
	fl_requires
	requires runc busybox
	local b id relay r sw ek1 ek2 round
	b=$(ov_bundle nopidfd io.oci-vtpm.enable=true io.oci-vtpm.name=NP)
	ov_cfg "$b" --arg h "$FAULT_HOOK" '.hooks[][].path = $h
		| .hooks[][].env += ["OCI_VTPM_FAULT=no-pidfd"]'
	ov_args "$b" sleep 600
	local ek='cd /tmp && tpm2_createek -T '$OV_TCTI' -c ek.ctx -G rsa -u ek.pub >/dev/null && sha256sum ek.pub'
	for round in 1 2; do
		id=$(ov_new_id nopidfd)
		ov_run_detached runc "$id" "$b"
		# Its relay watches a pipe whose other end swtpm holds, not a
		# pidfd: the fallback ran.
		sw=$(ov_swtpm_pids "$id")
		[ "$(wc -w <<<"$sw")" -eq 1 ] || fail "swtpm: $(ov_ps $sw)"
		relay=$(fl_exit_pipe_relay "$sw")
		[ -n "$relay" ] || fail "no relay watches an exit pipe of swtpm $sw"
		run ov_exec runc "$id" sh -c "$ek"
		assert_success
		[ "$round" = 1 ] && ek1=${output%% *} || ek2=${output%% *}
		[ "$(fl_exit_pipe_relay "$sw")" = "$relay" ] || fail "relay $relay is gone after serving"
		run ov_delete runc "$id" -f
		assert_success
		ov_wait_for 15 _fl_no_procs || fail "left running: $(ov_ps $(ov_pids_matching "$RUN_DIR"))"
		[ ! -e "$(ov_slot "$id")" ] || fail "poststop left the slot"
		run fl_gens NP
		[ "${#lines[@]}" -eq "$round" ] || fail "generations after stop $round: $output"
	done
	[ "$ek1" = "$ek2" ] || fail "another TPM identity came back: $ek1 $ek2"
	run ovadm gc
	assert_success
	ov_leak_check
}
