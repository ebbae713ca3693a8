#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2030,SC2031
# swtpm escapes no limit (issue #11, finding 6): each slot's swtpms and
# control relays run in a cgroup of their own, <swtpm_cgroup>/<token> (the
# token in the slot's record, which a slot rename leaves as it is), with the
# memory, pids and CPU limits of the settings (times the vTPM count), under
# cgroup v1 or v2; `oci-vtpm top` accounts them; stop and gc remove it.
# Limits by default are best effort; named in the settings, required.
# Socket backend, runc.

load helpers
load helpers-cgroup

setup_file() { ov_setup_file; }
setup() {
	ov_setup
	PARENT=ovtest-limits/$(basename "$T")
	export PARENT
}
teardown() {
	ov_teardown
	ov_cg_cleanup "$PARENT"
}

requires_stack() { requires root jq busybox swtpm tpm2-tools hook runc; }
cg_of() { ov_cg_of "$PARENT" "$1"; }
cg_children() { ov_cg_children "$PARENT"; }

@test "socket: swtpm and its relay run in <swtpm_cgroup>/<token> with the configured limits; top shows them; delete removes it" {
	requires_stack
	ov_requires_cg_controllers
	ov_write_config ".swtpm_cgroup = \"$PARENT\" | .swtpm_memory_max = 33554432 | .swtpm_pids_max = 5 | .swtpm_cpu_max = 30"
	local b id pid relay c m dir cg
	b=$(ov_bundle lim io.oci-vtpm.enable=true io.oci-vtpm.count=2)
	ov_args "$b" sleep 600
	id=$(ov_new_id lim)
	ov_run_detached runc "$id" "$b"
	cg=$(cg_of "$id")
	relay=$(ov_relay_pids "$(ov_slot "$id")")
	[ "$(ov_swtpm_count "$id")" -eq 2 ] || fail "not two swtpm: $(ov_swtpm_pids "$id")"
	[ "$(echo "$relay" | wc -w)" -eq 2 ] || fail "not two relays: $relay"
	for pid in $(ov_swtpm_pids "$id") $relay; do
		for c in memory pids cpu; do
			[ "$(ov_cg_path "$pid" $c)" = "/$cg" ] ||
				fail "$pid ($(cat "/proc/$pid/comm")) is in $c cgroup $(ov_cg_path "$pid" $c), not /$cg"
		done
	done
	# The limits, twice the per-TPM ones (count=2).
	m=$(ov_cg_mount memory)
	dir=$m/$cg
	if ov_cg_v2 "$m"; then
		[ "$(cat "$dir/memory.max")" = 67108864 ] || fail "memory.max $(cat "$dir/memory.max")"
	else
		[ "$(cat "$dir/memory.limit_in_bytes")" = 67108864 ] || fail "memory.limit_in_bytes $(cat "$dir/memory.limit_in_bytes")"
	fi
	m=$(ov_cg_mount pids)
	[ "$(cat "$m/$cg/pids.max")" = 10 ] || fail "pids.max $(cat "$m/$cg/pids.max")"
	[ "$(cat "$m/$cg/pids.current")" -eq 4 ] || fail "pids.current $(cat "$m/$cg/pids.current")"
	m=$(ov_cg_mount cpu)
	if ov_cg_v2 "$m"; then
		[ "$(cat "$m/$cg/cpu.max")" = "60000 100000" ] || fail "cpu.max $(cat "$m/$cg/cpu.max")"
	else
		[ "$(cat "$m/$cg/cpu.cfs_quota_us")" = 60000 ] || fail "cpu.cfs_quota_us $(cat "$m/$cg/cpu.cfs_quota_us")"
		[ "$(cat "$m/$cg/cpu.cfs_period_us")" = 100000 ] || fail "cpu.cfs_period_us"
	fi
	# The container's TPM still works under them.
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	# Accounted: oci-vtpm top.
	run --separate-stderr ovadm top --json
	assert_success
	echo "$output" | jq -e --arg id "$id" --arg cg "$cg" '.[] | select(.id == $id)
		| .limited and .cgroup == $cg and .count == 2 and .pids == 4 and .pids_max == 10
		and .memory > 0 and .memory_max == 67108864 and .cpu_max == 60 and .cpu_us >= 0' >/dev/null ||
		fail "top --json: $output"
	run ovadm top
	assert_success
	assert_line --regexp "^$id +- +2 +[0-9]+ +67108864 +4 +10 +[0-9]+ +60\$"
	# Deleted: the cgroups go with the swtpms.
	ov_delete runc "$id" -f
	ov_wait_for 10 ov_no_swtpm "$id"
	[ -z "$(cg_children)" ] || fail "left after delete: $(cg_children)"
}

@test "socket: pids.max holds: nothing forks past swtpm_pids_max in a vTPM's cgroup" {
	requires_stack
	ov_requires_cg_controllers
	# swtpm and its relay, and the relay's start (it forks once more).
	ov_write_config ".swtpm_cgroup = \"$PARENT\" | .swtpm_pids_max = 3"
	local b id m cg
	b=$(ov_bundle pids io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id pids)
	ov_run_detached runc "$id" "$b"
	cg=$(cg_of "$id")
	m=$(ov_cg_mount pids)
	[ "$(cat "$m/$cg/pids.current")" -eq 2 ] || fail "pids.current $(cat "$m/$cg/pids.current")"
	# A third process joins; its fork is a fourth: refused.
	run sh -c "echo 0 >'$m/$cg/cgroup.procs' && echo JOINED; /bin/true && echo FORKED"
	assert_line JOINED
	refute_line FORKED
	[ "$(cat "$m/$cg/pids.max")" = 3 ]
	ov_delete runc "$id" -f
}

@test "socket: a vTPM's start fails with a clear error when its cgroup cannot hold swtpm and its relay" {
	requires_stack
	ov_requires_cg_controllers
	ov_write_config ".swtpm_cgroup = \"$PARENT\" | .swtpm_pids_max = 1"
	local b id
	b=$(ov_bundle pids1 io.oci-vtpm.enable=true)
	id=$(ov_new_id pids1)
	run ov_run runc "$id" "$b"
	assert_failure
	grep -q "control relay" "$OV_HOOK_LOG" || fail "no relay error in the log: $(tail -5 "$OV_HOOK_LOG")"
	ov_wait_for 10 ov_no_swtpm "$id"
	[ -z "$(cg_children)" ] || fail "left after the failed start: $(cg_children)"
}

# cg_block: make every cgroup under PARENT fail: its CPU quota above
# PARENT's (cgroup v1 refuses it, once swtpm answers), or no descendant
# allowed (cgroup2, at once).
cg_block() {
	local m
	m=$(ov_cg_mount cpu)
	mkdir -p "$m/$PARENT"
	if ov_cg_v2 "$m"; then
		echo 0 >"$m/$PARENT/cgroup.max.descendants"
	else
		echo 1000 >"$m/$PARENT/cpu.cfs_quota_us"
	fi
}

@test "a cgroup that cannot be made: one warning and the start goes on by default; an error when the settings name a limit" {
	requires_stack
	ov_requires_cg_controllers
	local b id n
	cg_block
	# Only where: limits by default, best effort.
	ov_write_config ".swtpm_cgroup = \"$PARENT\""
	b=$(ov_bundle soft io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id soft)
	ov_run_detached runc "$id" "$b"
	[ "$(ov_swtpm_count "$id")" = 1 ] || fail "no swtpm"
	n=$(grep -c "swtpm's cgroup: .*; swtpm runs without" "$OV_HOOK_LOG")
	[ "$n" -eq 1 ] || fail "not one warning ($n): $(cat "$OV_HOOK_LOG")"
	grep "swtpm runs without" "$OV_HOOK_LOG" | grep -q " warning " || fail "not a warning"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	ov_delete runc "$id" -f
	ov_wait_for 10 ov_no_swtpm "$id"
	[ -z "$(cg_children)" ] || fail "left: $(cg_children)"
	# A limit named: the admin asked for them; the start fails, one line.
	ov_write_config ".swtpm_cgroup = \"$PARENT\" | .swtpm_cpu_max = 50"
	: >"$OV_HOOK_LOG"
	b=$(ov_bundle hard io.oci-vtpm.enable=true)
	id=$(ov_new_id hard)
	run ov_run runc "$id" "$b"
	assert_failure
	n=$(grep -c "swtpm's cgroup: " "$OV_HOOK_LOG")
	[ "$n" -eq 1 ] || fail "not one error line ($n): $(cat "$OV_HOOK_LOG")"
	grep "swtpm's cgroup: " "$OV_HOOK_LOG" | grep -q " error .*$PARENT/[0-9a-f]\{32\}" ||
		fail "the error does not name the cgroup: $(cat "$OV_HOOK_LOG")"
	ov_wait_for 10 ov_no_swtpm "$id"
	[ -z "$(cg_children)" ] || fail "left after the failed start: $(cg_children)"
}

@test "gc removes an empty cgroup no record names, and keeps a running one's" {
	requires_stack
	ov_requires_cg_controllers
	ov_write_config ".swtpm_cgroup = \"$PARENT\""
	local b id m cg
	b=$(ov_bundle gc io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id gc)
	ov_run_detached runc "$id" "$b"
	cg=$(cg_of "$id")
	for m in $(ov_cg_mounts); do
		mkdir -p "$m/$PARENT/ov-stray-$RANDOM" "$m/$PARENT/0123456789abcdef0123456789abcdef"
	done
	run ovadm gc
	assert_success
	assert_line --regexp "^removed [0-9]+ cgroups? of swtpms that are gone\$"
	for m in $(ov_cg_mounts); do
		[ -z "$(find "$m/$PARENT" -mindepth 1 -maxdepth 1 -type d \( -name 'ov-stray-*' -o -name 0123456789abcdef0123456789abcdef \))" ] ||
			fail "a stray cgroup is left in $m/$PARENT"
		[ -d "$m/$cg" ] || fail "gc removed the running $m/$cg"
	done
	ov_delete runc "$id" -f
}

@test "swtpm_cgroup \"\" leaves swtpm in the hook's cgroups; bad values are refused" {
	requires_stack
	ov_requires_cg_controllers
	ov_write_config '.swtpm_cgroup = ""'
	local b id pid
	b=$(ov_bundle off io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id off)
	ov_run_detached runc "$id" "$b"
	pid=$(ov_swtpm_pids "$id")
	[ "$(ov_cg_path "$pid" pids)" = "$(ov_cg_path $$ pids)" ] || fail "swtpm moved to $(ov_cg_path "$pid" pids)"
	ov_delete runc "$id" -f
	for v in '"/abs"' '"a/../b"' '"a//b"'; do
		ov_write_config ".swtpm_cgroup = $v"
		b=$(ov_bundle bad io.oci-vtpm.enable=true)
		id=$(ov_new_id bad)
		run ov_run runc "$id" "$b"
		assert_failure
		assert_output --partial 'is not a relative cgroup path'
		run ovadm gc
		assert_failure
		assert_output --partial "is not a relative cgroup path"
	done
}

@test "a warm vTPM keeps its cgroup when a container takes it (a slot rename renames no cgroup)" {
	requires_stack
	ov_requires_cg_controllers
	ov_write_config ".swtpm_cgroup = \"$PARENT\" | .warm_size = 1 | .master_key = \"$T/keys/master.key\"
		| .ca_key = \"$T/ca/ca.key\" | .ca_cert = \"$T/ca/ca.pem\""
	ov_requires_init
	local warm pid b id cg c
	run ovadm pool fill 0
	assert_success
	warm=$(ov_warm_slots)
	[ -n "$warm" ] || fail "no warm vTPM: $output"
	warm=$(ov_slot_name "$warm")
	cg=$(cg_of "$warm")
	pid=$(ov_swtpm_pids "$warm")
	[ "$(ov_cg_path "$pid" pids)" = "/$cg" ] || fail "warm swtpm in $(ov_cg_path "$pid" pids), not /$cg"
	b=$(ov_bundle warm io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id warm)
	ov_run_detached runc "$id" "$b"
	[ "$(ov_swtpm_pids "$id")" = "$pid" ] || fail "not the warm swtpm: $(ov_swtpm_pids "$id") (warm: $pid)"
	[ "$(cg_of "$id")" = "$cg" ] || fail "the container's record names $(cg_of "$id"), the warm one's $cg"
	for c in memory pids cpu; do
		[ "$(ov_cg_path "$pid" $c)" = "/$cg" ] || fail "taken swtpm in $c cgroup $(ov_cg_path "$pid" $c)"
	done
	[ "$(cg_children | xargs -n1 basename | sort -u)" = "$(basename "$cg")" ] || fail "other cgroups: $(cg_children)"
	ov_delete runc "$id" -f
	ov_wait_for 10 ov_no_swtpm "$id"
	[ -z "$(cg_children)" ] || fail "left after delete: $(cg_children)"
}
