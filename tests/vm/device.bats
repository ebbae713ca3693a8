#!/usr/bin/env bats
# The device backend (vtpm_proxy), end to end with runc and crun. Runs only
# inside the VM (a kernel with tpm_vtpm_proxy), in either cgroup mode:
#
#   tests/vm/run.sh --cgroup v1 -- tests/bats/run.sh tests/vm/device.bats
#   tests/vm/run.sh --cgroup v2 -- tests/bats/run.sh tests/vm/device.bats
#
# "crun" is crun --cgroup-manager=disabled (helpers.bash); "crun-cg" is crun
# with its cgroupfs manager (helpers-vm.bash). Every test ends with the
# leak check of ov_teardown.

load ../bats/helpers
load ../bats/helpers-cgroup
load helpers-vm

setup_file() { ov_setup_file; }
setup() { ov_vm_setup; }
teardown() { ov_teardown; }

DIGEST=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

requires_stack() {
	requires root jq busybox swtpm tpm2-tools hook "$(_ov_rt_feature "$1")"
}

# After `delete`: no swtpm, no record, the host's chip gone.
assert_cleaned_up() { # ID DEVNUM...
	local id=$1 n
	shift
	ov_no_swtpm "$id" || fail "swtpm of $id still runs: $(ov_ps $(ov_swtpm_pids "$id"))"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") still exists"
	for n in "$@"; do
		# The kernel drops the chip when swtpm's proxy fd closes.
		ov_wait_for "$(ov_slow 10)" ov_chip_gone "$n" || fail "/dev/tpm$n or /dev/tpmrm$n still exists"
	done
}

# ----------------------------------------------------------------------------
# The container sees its TPM as character devices and uses it.

device_basic() {
	local rt=$1 b id n
	requires_stack "$rt"
	b=$(ov_dev_bundle basic)
	ov_args "$b" sleep 600
	id=$(ov_new_id basic)
	ov_run_detached "$rt" "$id" "$b"

	[ "$(ov_record "$id" .backend)" = device ] || fail "record: backend $(ov_record "$id" .backend)"
	n=$(ov_devnums "$id")
	[ -c "/dev/tpm$n" ] && [ -c "/dev/tpmrm$n" ] || fail "no /dev/tpm$n, /dev/tpmrm$n on the host"

	run ov_exec "$rt" "$id" sh -c "
		[ -c /dev/tpm0 ] && echo TPM0_CHR
		[ -c /dev/tpmrm0 ] && echo TPMRM0_CHR
		echo TPM0=\$(stat -c %t:%T /dev/tpm0) RM0=\$(stat -c %t:%T /dev/tpmrm0)
		echo MODES=\$(stat -c '%a:%u:%g' /dev/tpm0 /dev/tpmrm0)
		echo RANDOM=\$(tpm2_getrandom -T $OV_DEV_TCTI --hex 8)
		echo BEFORE=\$(tpm2_pcrread -T $OV_DEV_TCTI sha256:16 | grep -o '0x[0-9A-Fa-f]*')
		tpm2_pcrextend -T $OV_DEV_TCTI 16:sha256=$DIGEST || echo EXTEND_FAILED
		echo AFTER=\$(tpm2_pcrread -T $OV_DEV_TCTI sha256:16 | grep -o '0x[0-9A-Fa-f]*')"
	assert_success
	assert_line TPM0_CHR
	assert_line TPMRM0_CHR
	# The very devices the host got from vtpm_proxy.
	assert_line "TPM0=$(stat -c %t:%T "/dev/tpm$n") RM0=$(stat -c %t:%T "/dev/tpmrm$n")"
	# Root-only in the container, as on the host (docs/guide.md).
	assert_line "MODES=600:0:0 600:0:0"
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	assert_line "BEFORE=0x$(printf '0%.0s' {1..64})"
	refute_line EXTEND_FAILED
	assert_line "AFTER=0x$(ov_expected_pcr "$DIGEST")"

	# The host keeps the nodes root-only; the record has the numbers.
	[ "$(ov_record "$id" '.tpms[0].dev')" != 0 ] && [ "$(ov_record "$id" '.tpms[0].rmdev')" != 0 ] ||
		fail "record lacks device numbers: $(cat "$(ov_slot "$id")/record.json")"

	run ov_delete "$rt" "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
}

@test "runc: /dev/tpm0 and /dev/tpmrm0 are the vTPM's char devices; getrandom, PCR extend/read; delete cleans up" {
	device_basic runc
}

@test "crun: /dev/tpm0 and /dev/tpmrm0 are the vTPM's char devices; getrandom, PCR extend/read; delete cleans up" {
	device_basic crun
}

@test "crun (cgroupfs manager): the vTPM works through the container's device cgroup" {
	device_basic crun-cg
}

# A foreground run: createRuntime, the process, poststop, all in one.
device_run() {
	local rt=$1 b id
	requires_stack "$rt"
	b=$(ov_dev_bundle run)
	ov_sh "$b" "tpm2_getrandom -T $OV_DEV_TCTI --hex 8 && echo; echo DONE"
	id=$(ov_new_id run)
	run ov_run "$rt" "$id" "$b"
	assert_success
	assert_line --regexp '^[0-9a-f]{16}$'
	assert_line DONE
	assert_cleaned_up "$id"
}

@test "runc run: a container that uses its TPM and exits leaves nothing behind" {
	device_run runc
}

@test "crun run: a container that uses its TPM and exits leaves nothing behind" {
	device_run crun
}

# ----------------------------------------------------------------------------
# Sharing and isolation.

two_procs() {
	local rt=$1 b id
	requires_stack "$rt"
	b=$(ov_dev_bundle two)
	ov_args "$b" sleep 600
	id=$(ov_new_id two)
	ov_run_detached "$rt" "$id" "$b"
	# The shell holds /dev/tpmrm0 open (fd 3) while two other processes
	# use it in parallel, one of them through an auth session.
	run ov_exec "$rt" "$id" sh -c "
		exec 3<>/dev/tpmrm0 && echo HELD_OPEN
		(tpm2_startauthsession -T $OV_DEV_TCTI -S /tmp/s.ctx && echo SESSION_OK
		 for i in 1 2 3 4 5; do tpm2_getrandom -T $OV_DEV_TCTI 8 >/dev/null || echo FAIL_A; done
		 echo DONE_A) &
		(for i in 1 2 3 4 5; do tpm2_getrandom -T $OV_DEV_TCTI 8 >/dev/null || echo FAIL_B; done
		 echo DONE_B) &
		wait"
	assert_success
	assert_line SESSION_OK
	assert_line HELD_OPEN
	assert_line DONE_A
	assert_line DONE_B
	refute_output --partial FAIL
	run ov_delete "$rt" "$id" -f
	assert_success
}

@test "runc: two processes in the container use /dev/tpmrm0 at once" {
	two_procs runc
}

@test "crun: two processes in the container use /dev/tpmrm0 at once" {
	two_procs crun
}

ek_hash() { # RT ID
	ov_exec "$1" "$2" sh -c "tpm2_createek -T $OV_DEV_TCTI -G ecc -c /tmp/ek.ctx -u /tmp/ek.pub >/dev/null &&
		sha256sum /tmp/ek.pub | cut -d' ' -f1"
}

two_containers() {
	local rt=$1 b1 b2 id1 id2 n1 n2 ek1 ek2
	requires_stack "$rt"
	b1=$(ov_dev_bundle a)
	b2=$(ov_dev_bundle b)
	ov_args "$b1" sleep 600
	ov_args "$b2" sleep 600
	# mknod is allowed (runc's default rules allow it for every device):
	# only opening another container's TPM must be refused.
	ov_cfg "$b1" '.process.capabilities |= with_entries(.value += ["CAP_MKNOD"])'
	id1=$(ov_new_id a)
	id2=$(ov_new_id b)
	ov_run_detached "$rt" "$id1" "$b1"
	ov_run_detached "$rt" "$id2" "$b2"
	n1=$(ov_devnums "$id1")
	n2=$(ov_devnums "$id2")
	[ "$n1" != "$n2" ] || fail "both containers got /dev/tpm$n1"
	[ "$(ov_hostdev "/dev/tpmrm$n1")" != "$(ov_hostdev "/dev/tpmrm$n2")" ] || fail "same tpmrm device"
	[ "$(ov_swtpm_count "$id1")" -eq 1 ] && [ "$(ov_swtpm_count "$id2")" -eq 1 ] ||
		fail "expected one swtpm per container"

	ek1=$(ek_hash "$rt" "$id1") || fail "createek in $id1 failed: $ek1"
	ek2=$(ek_hash "$rt" "$id2") || fail "createek in $id2 failed: $ek2"
	[[ $ek1 =~ ^[0-9a-f]{64}$ ]] && [[ $ek2 =~ ^[0-9a-f]{64}$ ]] || fail "bad EK hashes: '$ek1' '$ek2'"
	[ "$ek1" != "$ek2" ] || fail "both containers have the same EK: they share a TPM"
	# The same EK again from the same TPM: it is a stable identity.
	[ "$(ek_hash "$rt" "$id1")" = "$ek1" ] || fail "the EK of $id1 changed"
	# Neither can open the other's TPM: a node made with the other's number
	# is refused by the container's device cgroup. (crun without a cgroup
	# manager applies no device filter at all: nothing to test there.)
	if [ "$rt" = runc ]; then
		# Made in the container's /dev (a tmpfs that allows device nodes).
		# The control: a node for its own TPM, made the same way, opens.
		run ov_exec "$rt" "$id1" sh -c "
			mknod /dev/own c $(stat -c '$((0x%t)) $((0x%T))' "/dev/tpmrm$n1") &&
			mknod /dev/other c $(stat -c '$((0x%t)) $((0x%T))' "/dev/tpmrm$n2") && echo MKNOD_OK
			(exec 3<>/dev/own) && echo OWN_OPENED
			(exec 3<>/dev/other) 2>&1 && echo OTHER_OPENED; true"
		assert_line MKNOD_OK
		assert_line OWN_OPENED
		refute_line OTHER_OPENED
		assert_output --partial 'Operation not permitted'
	fi

	run ov_delete "$rt" "$id1" -f
	assert_success
	assert_cleaned_up "$id1" "$n1"
	# The other container's TPM is untouched.
	[ -c "/dev/tpmrm$n2" ] || fail "deleting $id1 removed /dev/tpmrm$n2"
	[ "$(ek_hash "$rt" "$id2")" = "$ek2" ] || fail "the EK of $id2 changed"
	run ov_delete "$rt" "$id2" -f
	assert_success
	assert_cleaned_up "$id2" "$n2"
}

@test "runc: two containers at once get distinct devices and distinct TPMs (EK differs)" {
	two_containers runc
}

@test "crun: two containers at once get distinct devices and distinct TPMs (EK differs)" {
	two_containers crun
}

count_two() {
	local rt=$1 b id n0 n1
	requires_stack "$rt"
	b=$(ov_dev_bundle count io.oci-vtpm.count=2)
	ov_args "$b" sleep 600
	id=$(ov_new_id count)
	ov_run_detached "$rt" "$id" "$b"
	run ov_devnums "$id"
	[ "${#lines[@]}" -eq 2 ] || fail "record has ${#lines[@]} TPMs: $output"
	n0=${lines[0]}
	n1=${lines[1]}
	[ "$n0" != "$n1" ] || fail "both vTPMs are /dev/tpm$n0"

	run ov_exec "$rt" "$id" sh -c "
		for d in tpm0 tpmrm0 tpm1 tpmrm1; do [ -c /dev/\$d ] && echo \$d=\$(stat -c %t:%T /dev/\$d); done
		[ -e /dev/tpm2 ] || [ -e /dev/tpmrm2 ] && echo EXTRA
		tpm2_getrandom -T device:/dev/tpmrm0 8 >/dev/null && echo RM0_OK
		tpm2_getrandom -T device:/dev/tpmrm1 8 >/dev/null && echo RM1_OK"
	assert_success
	assert_line "tpm0=$(stat -c %t:%T "/dev/tpm$n0")"
	assert_line "tpmrm0=$(stat -c %t:%T "/dev/tpmrm$n0")"
	assert_line "tpm1=$(stat -c %t:%T "/dev/tpm$n1")"
	assert_line "tpmrm1=$(stat -c %t:%T "/dev/tpmrm$n1")"
	refute_line EXTRA
	assert_line RM0_OK
	assert_line RM1_OK
	[ "$(ov_swtpm_count "$id")" -eq 2 ] || fail "expected two swtpm"

	run ov_delete "$rt" "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n0" "$n1"
}

@test "runc: count=2 gives /dev/tpm0, /dev/tpmrm0, /dev/tpm1, /dev/tpmrm1" {
	count_two runc
}

@test "crun: count=2 gives /dev/tpm0, /dev/tpmrm0, /dev/tpm1, /dev/tpmrm1" {
	count_two crun
}

# TPM_GetRandom(8), TPM 1.2: tag 00c1, size 14, ordinal 0x46, 8 bytes. A good
# answer starts 00c4 00000016 00000000 00000008 (tag, size 22, TPM_SUCCESS).
TPM12_GETRANDOM='\000\301\000\000\000\016\000\000\000\106\000\000\000\010'

tpm12() {
	local rt=$1 b id n
	requires_stack "$rt"
	b=$(ov_dev_bundle tpm12 io.oci-vtpm.version=1.2)
	ov_args "$b" sleep 600
	id=$(ov_new_id tpm12)
	ov_run_detached "$rt" "$id" "$b"
	n=$(ov_devnums "$id")
	[ "$(cat "/sys/class/tpm/tpm$n/tpm_version_major")" = 1 ] ||
		fail "/sys/class/tpm/tpm$n is not a TPM 1.2"
	[ ! -e "/dev/tpmrm$n" ] || fail "a TPM 1.2 chip has /dev/tpmrm$n"

	run ov_exec "$rt" "$id" sh -c "
		[ -c /dev/tpm0 ] && echo TPM0_CHR
		[ -e /dev/tpmrm0 ] && echo HAS_TPMRM0
		exec 3<>/dev/tpm0
		printf '$TPM12_GETRANDOM' >&3
		dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 | tr -d ' \n'; echo"
	assert_success
	assert_line TPM0_CHR
	refute_line HAS_TPMRM0
	assert_line --regexp '^00c4000000160000000000000008[0-9a-f]{16}$'

	run ov_delete "$rt" "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
}

@test "runc: a TPM 1.2 container gets /dev/tpm0 only, and TPM_GetRandom works" {
	tpm12 runc
}

@test "crun: a TPM 1.2 container gets /dev/tpm0 only, and TPM_GetRandom works" {
	tpm12 crun
}

# ----------------------------------------------------------------------------
# A hostile rootfs. runc and crun mount a tmpfs on /dev when config.json
# asks (runc spec does); without that mount the image's own /dev is used.

hostile_bundle() { # NAME: a bundle whose /dev is the image's
	local b
	b=$(ov_dev_bundle "$1")
	ov_cfg "$b" 'del(.mounts[] | select(.destination == "/dev"))'
	echo "$b"
}

# Run, expect a refusal naming the path; nothing left behind.
assert_refused() { # RT ID BUNDLE REGEX
	run ov_run "$1" "$2" "$3"
	assert_failure
	# runc shows the hook's stderr; crun writes it to run.oci.hooks.stderr.
	{ echo "$output"; cat "$OV_HOOKS_STDERR" 2>/dev/null; } | tr -d '\\' | grep -E -- "$4" ||
		fail "no refusal matching /$4/ in: $output $(cat "$OV_HOOKS_STDERR" 2>/dev/null)"
	ov_no_swtpm "$2" || fail "swtpm left running"
	[ ! -e "$(ov_slot "$2")" ] || fail "$(ov_slot "$2") left behind"
	if grep -F -- "$T/" /proc/self/mountinfo; then fail "something was mounted under $T"; fi
}

hostile() {
	local rt=$1 b id
	requires_stack "$rt"
	mkdir -p "$T/outside"
	echo victim >"$T/victim"

	# /dev/tpm0 a symlink to a host file.
	b=$(hostile_bundle link)
	ln -s "$T/victim" "$b/rootfs/dev/tpm0"
	id=$(ov_new_id link)
	assert_refused "$rt" "$id" "$b" 'refusing /dev/tpm0: "tpm0" is a symlink'
	[ "$(cat "$T/victim")" = victim ] || fail "the host file was changed"
	[ -L "$b/rootfs/dev/tpm0" ] || fail "the symlink was replaced"

	# /dev itself a symlink to a host directory.
	b=$(hostile_bundle devlink)
	rm -rf "$b/rootfs/dev"
	ln -s "$T/outside" "$b/rootfs/dev"
	id=$(ov_new_id devlink)
	# (crun refuses a /dev symlink itself, before any hook runs)
	assert_refused "$rt" "$id" "$b" 'refusing /dev/tpm0: "dev" is a symlink|openat2 `dev`'
	# (runc 1.1 itself follows the /dev symlink for its /dev/fd, /dev/ptmx,
	# ... symlinks, before the hook runs; the hook adds nothing there.)
	if ls -A "$T/outside" | grep -q '^tpm'; then
		fail "a TPM node was made in the host directory: $(ls -lA "$T/outside")"
	fi

	# A dangling symlink.
	b=$(hostile_bundle dangling)
	ln -s "/ov-nonexistent-$$/tpm0" "$b/rootfs/dev/tpm0"
	id=$(ov_new_id dangling)
	assert_refused "$rt" "$id" "$b" 'refusing /dev/tpm0: "tpm0" is a symlink'
	[ ! -e "/ov-nonexistent-$$" ] || fail "/ov-nonexistent-$$ was created on the host"

	# /dev/tpmrm0 a symlink, /dev/tpm0 fine: refused as a whole.
	b=$(hostile_bundle rmlink)
	ln -s "$T/victim" "$b/rootfs/dev/tpmrm0"
	id=$(ov_new_id rmlink)
	assert_refused "$rt" "$id" "$b" 'refusing /dev/tpmrm0: "tpmrm0" is a symlink'
	[ "$(cat "$T/victim")" = victim ] || fail "the host file was changed"
}

@test "runc: hostile rootfs (/dev/tpm0 or /dev symlinks, dangling): refused, nothing outside touched" {
	hostile runc
}

@test "crun: hostile rootfs (/dev/tpm0 or /dev symlinks, dangling): refused, nothing outside touched" {
	hostile crun
}

# ----------------------------------------------------------------------------
# swtpm dies under a running container.

swtpm_killed() {
	local rt=$1 b id n pid b2 id2 n2
	requires_stack "$rt"
	b=$(ov_dev_bundle killed)
	ov_args "$b" sleep 600
	id=$(ov_new_id killed)
	ov_run_detached "$rt" "$id" "$b"
	n=$(ov_devnums "$id")
	run ov_exec "$rt" "$id" tpm2_getrandom -T "$OV_DEV_TCTI" --hex 8
	assert_success

	pid=$(ov_swtpm_pids "$id")
	[ -n "$pid" ] || fail "no swtpm for $id"
	kill -KILL "$pid"
	ov_wait_for "$(ov_slow 10)" ov_no_swtpm "$id"
	# Its proxy fd closed with it: the kernel dropped the chip.
	ov_wait_for "$(ov_slow 10)" ov_chip_gone "$n" || fail "/dev/tpm$n survived its swtpm"

	# Inside: a clean failure, not a hang.
	run ov_exec "$rt" "$id" sh -c "tpm2_getrandom -T $OV_DEV_TCTI --hex 8; echo rc=\$?"
	assert_line --regexp '^rc=[1-9][0-9]*$'
	[ "$status" -ne 124 ] || fail "tpm2_getrandom hung"

	# The container still has the dead chip's node bind-mounted and allowed
	# in its cgroup: a new container must not get a chip with that number.
	b2=$(ov_dev_bundle next)
	ov_args "$b2" sleep 600
	id2=$(ov_new_id next)
	ov_run_detached "$rt" "$id2" "$b2"
	n2=$(ov_devnums "$id2")
	[ "$n2" != "$n" ] || fail "$id2 got /dev/tpm$n, still reachable from $id"
	grep -q "not using /dev/tpm$n: another container's record still names it" "$OV_HOOK_LOG" ||
		fail "hook log: $(cat "$OV_HOOK_LOG")"
	run ov_exec "$rt" "$id" sh -c "tpm2_getrandom -T $OV_DEV_TCTI --hex 8; echo rc=\$?"
	assert_line --regexp '^rc=[1-9][0-9]*$'
	run ov_exec "$rt" "$id2" tpm2_getrandom -T "$OV_DEV_TCTI" --hex 8
	assert_success

	# poststop still cleans up.
	run ov_delete "$rt" "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
	run ov_delete "$rt" "$id2" -f
	assert_success
	assert_cleaned_up "$id2" "$n2"
}

@test "runc: swtpm killed with SIGKILL: TPM calls fail cleanly, its number is not reused while the container lives, poststop cleans up" {
	swtpm_killed runc
}

@test "crun: swtpm killed with SIGKILL: TPM calls fail cleanly, its number is not reused while the container lives, poststop cleans up" {
	swtpm_killed crun
}

# ----------------------------------------------------------------------------
# Device cgroups.

# Without a device rule in config.json (a bundle made without the shim):
# cgroup v1: the hook allows the devices in the container's devices cgroup;
# cgroup v2: the hook cannot, and says so in one line naming the shim.
no_rule() {
	local rt=$1 b id n cg list
	requires_stack "$rt"
	b=$(ov_bundle norule io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id norule)
	if [ "$(ov_cgroup_mode)" = v2 ]; then
		run ov_run_detached "$rt" "$id" "$b"
		assert_failure
		# runc passes the hook's stderr on; crun only to its log.
		grep -q "cgroup v2: a hook cannot allow /dev/tpm0 (c 10:224 rw) in the container's device filter; run the container through oci-vtpm-runtime" \
			"$OV_HOOK_LOG" || fail "hook log: $(cat "$OV_HOOK_LOG")"
		[ "$rt" != runc ] || assert_output --partial "cgroup v2: a hook cannot allow /dev/tpm0"
		ov_no_swtpm "$id" || fail "swtpm left running"
		[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") left behind"
		return
	fi
	ov_run_detached "$rt" "$id" "$b"
	n=$(ov_devnums "$id")
	cg=$(sed -n 's/^[0-9]*:devices:\(.*\)$/\1/p' "/proc/$(ov_rt "$rt" state "$id" | jq .pid)/cgroup")
	list=$(cat "/sys/fs/cgroup/devices$cg/devices.list")
	grep -qx "c $(ov_hostdev "/dev/tpm$n") rw" <<<"$list" || fail "devices.list lacks /dev/tpm$n: $list"
	grep -qx "c $(ov_hostdev "/dev/tpmrm$n") rw" <<<"$list" || fail "devices.list lacks /dev/tpmrm$n: $list"
	! grep -q '^a ' <<<"$list" || fail "devices.list allows everything: $list"
	run ov_exec "$rt" "$id" tpm2_getrandom -T "$OV_DEV_TCTI" --hex 8
	assert_success
	run ov_delete "$rt" "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
}

@test "runc, no device rule in config.json: v1 devices.allow gets exactly the vTPM's devices; v2 fails in one line naming oci-vtpm-runtime" {
	no_rule runc
}

@test "crun (cgroupfs manager), no device rule in config.json: v1 allowed by the hook; v2 fails clearly" {
	no_rule crun-cg
}

@test "crun (no cgroup manager), no device rule in config.json: no device filter applies, works in v1 and v2" {
	requires_stack crun
	local b id
	b=$(ov_bundle free io.oci-vtpm.enable=true)
	ov_sh "$b" "tpm2_getrandom -T $OV_DEV_TCTI --hex 8 && echo; echo DONE"
	id=$(ov_new_id free)
	run ov_run crun "$id" "$b"
	assert_success
	assert_line --regexp '^[0-9a-f]{16}$'
	if [ "$(ov_cgroup_mode)" = v2 ]; then
		grep -q "where no device program is in effect" "$OV_HOOK_LOG" || fail "hook log: $(cat "$OV_HOOK_LOG")"
	else
		grep -q "already allows the vTPM devices" "$OV_HOOK_LOG" || fail "hook log: $(cat "$OV_HOOK_LOG")"
	fi
	assert_cleaned_up "$id"
}

# ----------------------------------------------------------------------------
# Through oci-vtpm-runtime, the shim: config.json without hooks; the shim
# starts the vTPM before the container and puts its devices in linux.devices
# (with the device cgroup rules), so cgroup v2 works too.

@test "oci-vtpm-runtime + runc: the device backend end to end" {
	requires_stack shim-runc
	[ -x "$OV_SHIM" ] || fail "$OV_SHIM not built"
	local b id n
	b=$(ov_bundle shim io.oci-vtpm.enable=true)
	ov_cfg "$b" 'del(.hooks)'
	ov_args "$b" sleep 600
	id=$(ov_new_id shim)
	ov_run_detached shim-runc "$id" "$b"
	n=$(ov_devnums "$id")
	ov_assert_dev_tpm shim-runc "$id" "$n"
	run ov_delete shim-runc "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
}

# The measured launch on the device backend: the hook extends PCR 11 through
# the host's /dev/tpmN, the event log is bind-mounted read-only at
# /run/tpm/tpm0.cel.json; both when the hook starts the vTPM (runc) and when
# the shim started it before create (the hook adopts it: precreate path).
assert_measured() { # RT ID
	local rt=$1 id=$2 want d
	want=$(printf '0%.0s' {1..64})
	run ovadm_log "$id"
	assert_success
	for d in $(jq -r '.[].digests[] | select(.hashAlg == "sha256") | .digest' <<<"$output"); do
		want=$(printf '%s%s' "$want" "$d" | tr a-f A-F | basenc --base16 -d | sha256sum | cut -d' ' -f1)
	done
	jq -e '.[0].content.string | fromjson | ."oci-vtpm".pcr == 11' <<<"$output" >/dev/null ||
		fail "not an oci-vtpm launch log: $output"
	run ov_exec "$rt" "$id" sh -c "
		cat /run/tpm/tpm0.cel.json | grep -c content_type | sed 's/^/RECORDS=/'
		echo x >>/run/tpm/tpm0.cel.json 2>/dev/null && echo WRITABLE
		tpm2_pcrread -T $OV_DEV_TCTI sha256:11 | grep -o '0x[0-9A-Fa-f]*'"
	assert_success
	assert_line RECORDS=13
	refute_line WRITABLE
	assert_line "0x${want^^}"
}
ovadm_log() { timeout -k 5 "$OV_TIMEOUT" "${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm}" --config "$CFG" log "$1"; }

@test "measured launch (device backend): PCR 11 replays from the log, read-only at /run/tpm/tpm0.cel.json; hook and shim (precreate) paths" {
	requires_stack shim-runc
	local b id n
	b=$(ov_dev_bundle measured)
	ov_args "$b" sleep 600
	id=$(ov_new_id measured)
	ov_run_detached runc "$id" "$b"
	n=$(ov_devnums "$id")
	assert_measured runc "$id"
	run ov_delete runc "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"

	b=$(ov_bundle shim-measured io.oci-vtpm.enable=true)
	ov_cfg "$b" 'del(.hooks)'
	ov_args "$b" sleep 600
	id=$(ov_new_id shim-measured)
	ov_run_detached shim-runc "$id" "$b"
	n=$(ov_devnums "$id")
	assert_measured shim-runc "$id"
	run ov_delete shim-runc "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
}

# Warm vTPMs (warm_size, `oci-vtpm pool fill`): started ahead with their
# chips; the shim takes one before create (its chip goes into config.json),
# so does the hook at createRuntime (v1: the devices cgroup).
@test "warm vTPMs (device backend): the shim and the hook take a running one, whose chip is the container's /dev/tpm0; drain removes the chips" {
	requires_stack shim-runc
	local cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm} b id n rt warm w ids=() chips=()
	ov_write_config '.backend = "device" | .warm_size = 2'
	run "$cli" --config "$CFG" pool fill 0
	assert_success
	assert_output --partial "started 2 warm vTPMs"
	warm=$(ov_warm_slots | ov_slot_name)
	for w in $warm; do chips+=("$(ov_devnums "$w")"); done
	[ "${#chips[@]}" = 2 ] && [ -c "/dev/tpm${chips[0]}" ] && [ -c "/dev/tpm${chips[1]}" ] ||
		fail "warm vTPMs $warm, chips ${chips[*]}"
	for rt in shim-runc runc; do
		if [ "$rt" = runc ] && [ "$(ov_cgroup_mode)" = v2 ]; then
			# (v2: a hook cannot allow a device; the warm one goes to the shim only)
			continue
		fi
		b=$(ov_bundle "warm$rt" io.oci-vtpm.enable=true)
		[ "$rt" = runc ] || ov_cfg "$b" 'del(.hooks)'
		ov_args "$b" sleep 600
		id=$(ov_new_id "warm$rt")
		ids+=("$rt $id")
		ov_run_detached "$rt" "$id" "$b"
		grep -q "$id: started 1 TPM 2.0 vTPM (device backend), warm" "$OV_HOOK_LOG" ||
			fail "$rt: not a warm vTPM: $(tail -n 5 "$OV_HOOK_LOG")"
		n=$(ov_devnums "$id")
		[[ " ${chips[*]} " == *" $n "* ]] || fail "$rt: chip $n is none of the warm ones (${chips[*]})"
		ov_assert_dev_tpm "$rt" "$id" "$n"
	done
	for w in "${ids[@]}"; do
		read -r rt id <<<"$w"
		n=$(ov_devnums "$id")
		run ov_delete "$rt" "$id" -f
		assert_success
		assert_cleaned_up "$id" "$n"
	done
	run "$cli" --config "$CFG" pool drain
	assert_success
	assert_output --partial "$((2 - ${#ids[@]})) warm vTPMs stopped"
	for n in "${chips[@]}"; do
		ov_wait_for "$(ov_slow 10)" ov_chip_gone "$n" || fail "/dev/tpm$n is left after drain"
	done
	[ -z "$(ov_warm_slots)" ] || fail "warm vTPMs left after drain: $(ov_warm_slots)"
}

# A named vTPM takes a warm one on the device backend too: its archived
# state is handed to the running swtpm (CMD_STOP, CMD_SET_STATEBLOB,
# CMD_INIT), then TPM2_Startup through the host's /dev/tpmN of its chip (the
# kernel started the warm TPM when it registered the chip). Its identity
# (EK, NV) is the same through warm, warm and cold starts.
dev_nv() { # RT ID: the 8-byte NV index 0x1500018
	ov_exec "$1" "$2" sh -c "tpm2_nvread -T $OV_DEV_TCTI -C o 0x1500018 -s 8; echo"
}
dev_stop() { # ID GEN: delete shim-runc container ID; dev-w archived as generation GEN
	local n
	n=$(ov_devnums "$1")
	run ov_delete shim-runc "$1" -f
	assert_success
	assert_cleaned_up "$1" "$n"
	grep -q "$1: vTPM dev-w archived as generation $2" "$OV_HOOK_LOG" || fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"
}
dev_nv_write() { # RT ID VALUE (8 bytes)
	ov_exec "$1" "$2" sh -c "printf %s '$3' >/tmp/d && tpm2_nvwrite -T $OV_DEV_TCTI -C o 0x1500018 -i /tmp/d && echo NV_OK"
}

@test "warm named vTPM (device backend, the shim): a new name and an archived one take a running one; EK and NV survive warm, warm and cold starts" {
	requires_stack shim-runc
	local cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm} b id ek1 base
	base=".backend = \"device\" | .master_key = \"$T/master.key\""
	ov_write_config "$base | .warm_size = 1"
	run "$cli" --config "$CFG" init
	assert_success
	b=$(ov_dev_bundle wnamed io.oci-vtpm.name=dev-w)
	ov_cfg "$b" 'del(.hooks)'
	ov_args "$b" sleep 600

	# A new name: the warm TPM becomes it.
	run "$cli" --config "$CFG" pool fill 0
	assert_success
	id=$(ov_new_id wnamed1)
	ov_run_detached shim-runc "$id" "$b"
	grep -q "$id: started 1 TPM 2.0 vTPM (device backend), warm, name dev-w$" "$OV_HOOK_LOG" ||
		fail "not warm: $(tail -n 5 "$OV_HOOK_LOG")"
	ek1=$(ek_hash shim-runc "$id") || fail "createek failed: $ek1"
	run ov_exec shim-runc "$id" sh -c "tpm2_nvdefine -T $OV_DEV_TCTI 0x1500018 -C o -s 8 -a 'ownerread|ownerwrite' >/dev/null && echo DEF_OK"
	assert_line DEF_OK
	run dev_nv_write shim-runc "$id" warm-one
	assert_line NV_OK
	dev_stop "$id" 1

	# Archived: its state handed to a running swtpm, then Startup through
	# the chip.
	run "$cli" --config "$CFG" pool fill 0
	assert_success
	id=$(ov_new_id wnamed2)
	ov_run_detached shim-runc "$id" "$b"
	grep -q "$id: vTPM dev-w restored from generation 1 into a warm swtpm" "$OV_HOOK_LOG" ||
		fail "not handed over: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(ek_hash shim-runc "$id")" = "$ek1" ] || fail "a different EK after the warm start"
	run dev_nv shim-runc "$id"
	assert_success
	assert_line warm-one
	run dev_nv_write shim-runc "$id" warm-two
	assert_line NV_OK
	dev_stop "$id" 2

	# Cold: what the warm one archived.
	run "$cli" --config "$CFG" pool drain
	assert_success
	ov_write_config "$base"
	id=$(ov_new_id wnamed3)
	ov_run_detached shim-runc "$id" "$b"
	grep -q "$id: vTPM dev-w restored from generation 2$" "$OV_HOOK_LOG" ||
		fail "not restored cold: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(ek_hash shim-runc "$id")" = "$ek1" ] || fail "a different EK after the warm runs"
	run dev_nv shim-runc "$id"
	assert_success
	assert_line warm-two
	dev_stop "$id" 3
}

# TPM 1.2, fixed nonce (all zero), so the answers are the same for the same
# EK: TPM_CreateEndorsementKeyPair (RSA 2048; 54 bytes, ordinal 0x78) and
# TPM_ReadPubek (30 bytes, ordinal 0x7c).
TPM12_CREATEEK='\000\301\000\000\000\066\000\000\000\170\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\001\000\003\000\001\000\000\000\014\000\000\010\000\000\000\000\002\000\000\000\000'
TPM12_READPUBEK='\000\301\000\000\000\036\000\000\000\174\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000'
tpm12_ek() { # RT ID [create]: sha256 of TPM_ReadPubek's answer (TPM_SUCCESS only)
	local create=
	[ "${3:-}" != create ] || create="printf '$TPM12_CREATEEK' >&3
		dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 -N10 | tr -d ' \n' | grep -Eqx '00c4[0-9a-f]{8}00000000' || exit 1"
	ov_exec "$1" "$2" sh -c "exec 3<>/dev/tpm0
		$create
		printf '$TPM12_READPUBEK' >&3
		dd bs=4096 count=1 <&3 2>/dev/null >/tmp/pubek
		od -An -tx1 -N10 /tmp/pubek | tr -d ' \n' | grep -Eqx '00c4[0-9a-f]{8}00000000' || exit 1
		sha256sum /tmp/pubek | cut -d' ' -f1"
}

@test "warm named TPM 1.2 vTPM (device backend, the shim): a new name takes a warm TPM 1.2, the next start gets its state handed over; the EK survives warm, warm and cold starts" {
	requires_stack shim-runc
	local cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm} b id ek1 base n i
	base=".backend = \"device\" | .master_key = \"$T/master.key\""
	ov_write_config "$base | .warm_size_tpm12 = 1"
	run "$cli" --config "$CFG" init
	assert_success
	b=$(ov_dev_bundle w12 io.oci-vtpm.name=dev-12 io.oci-vtpm.version=1.2)
	ov_cfg "$b" 'del(.hooks)'
	ov_args "$b" sleep 600
	for i in 1 2 3; do
		if [ "$i" = 3 ]; then
			run "$cli" --config "$CFG" pool drain
			assert_success
			ov_write_config "$base"
		else
			run "$cli" --config "$CFG" pool fill 0
			assert_success
			assert_output --partial "warm TPM 1.2 vTPMs: 1 running (target 1)"
		fi
		id=$(ov_new_id "w12-$i")
		ov_run_detached shim-runc "$id" "$b"
		case $i in
		1) grep -q "$id: started 1 TPM 1.2 vTPM (device backend), warm, name dev-12$" "$OV_HOOK_LOG" ;;
		2) grep -q "$id: vTPM dev-12 restored from generation 1 into a warm swtpm" "$OV_HOOK_LOG" ;;
		3) grep -q "$id: vTPM dev-12 restored from generation 2$" "$OV_HOOK_LOG" ;;
		esac || fail "start $i: $(tail -n 5 "$OV_HOOK_LOG")"
		if [ "$i" = 1 ]; then
			ek1=$(tpm12_ek shim-runc "$id" create) || fail "TPM 1.2 EK: $ek1"
		else
			[ "$(tpm12_ek shim-runc "$id")" = "$ek1" ] || fail "start $i: a different EK"
		fi
		n=$(ov_devnums "$id")
		run ov_delete shim-runc "$id" -f
		assert_success
		assert_cleaned_up "$id" "$n"
		grep -q "$id: vTPM dev-12 archived as generation $i" "$OV_HOOK_LOG" || fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"
	done
}

# ----------------------------------------------------------------------------
# swtpm's own cgroup (settings swtpm_cgroup and limits, lib/limits.c).

@test "runc (device backend): the container's swtpm runs in its own cgroup with the configured pids.max and memory.max; delete removes it" {
	requires_stack runc
	ov_requires_cg_controllers
	local parent b id n pid tok m c
	parent=ovtest-vm/$(basename "$T")
	ov_write_config ".backend = \"device\" | .swtpm_cgroup = \"$parent\"
		| .swtpm_pids_max = 3 | .swtpm_memory_max = 50331648"
	b=$(ov_dev_bundle cg)
	ov_args "$b" sleep 600
	id=$(ov_new_id cg)
	ov_run_detached runc "$id" "$b"
	n=$(ov_devnums "$id")
	pid=$(ov_swtpm_pids "$id")
	tok=$(ov_cg_of "$parent" "$id")
	[ -n "$pid" ] || fail "no swtpm for $id"
	for c in memory pids cpu; do
		[ "$(ov_cg_path "$pid" $c)" = "/$tok" ] ||
			fail "swtpm ($pid) is in $c cgroup $(ov_cg_path "$pid" $c), not /$tok ($(ov_cgroup_mode))"
	done
	m=$(ov_cg_mount pids)
	[ "$(cat "$m/$tok/pids.max")" = 3 ] || fail "pids.max $(cat "$m/$tok/pids.max")"
	# The device backend has no control relay: swtpm alone.
	[ "$(cat "$m/$tok/pids.current")" = 1 ] || fail "pids.current $(cat "$m/$tok/pids.current")"
	m=$(ov_cg_mount memory)
	if ov_cg_v2 "$m"; then
		[ "$(cat "$m/$tok/memory.max")" = 50331648 ] || fail "memory.max $(cat "$m/$tok/memory.max")"
	else
		[ "$(cat "$m/$tok/memory.limit_in_bytes")" = 50331648 ] ||
			fail "memory.limit_in_bytes $(cat "$m/$tok/memory.limit_in_bytes")"
	fi
	ov_assert_dev_tpm runc "$id" "$n"
	run ov_delete runc "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
	[ -z "$(ov_cg_children "$parent")" ] || fail "left after delete: $(ov_cg_children "$parent")"
	ov_cg_cleanup "$parent"
}

# ----------------------------------------------------------------------------
# Backend selection.

@test "auto backend: device, loading tpm_vtpm_proxy with modprobe when /dev/vtpmx is missing" {
	requires_stack runc
	local b id
	ov_write_config 'del(.backend)'
	if [ -e /sys/module/tpm_vtpm_proxy ]; then
		rmmod tpm_vtpm_proxy || fail "cannot unload tpm_vtpm_proxy (a chip still exists?)"
	fi
	[ ! -e /dev/vtpmx ] || fail "/dev/vtpmx still there"
	b=$(ov_dev_bundle auto)
	ov_sh "$b" "tpm2_getrandom -T $OV_DEV_TCTI --hex 8 && echo; echo DONE"
	id=$(ov_new_id auto)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line --regexp '^[0-9a-f]{16}$'
	[ -c /dev/vtpmx ] || fail "the hook did not load tpm_vtpm_proxy"
	grep -q "loaded kernel module tpm_vtpm_proxy" "$OV_HOOK_LOG" || fail "hook log: $(cat "$OV_HOOK_LOG")"
	grep -q "(device backend)" "$OV_HOOK_LOG" || fail "hook log: $(cat "$OV_HOOK_LOG")"
}

# ----------------------------------------------------------------------------
# A named vTPM keeps its identity with the device backend too.

@test "runc: a named vTPM keeps its EK and NV data across containers (device backend)" {
	local b id1 id2 ek1 n
	requires_stack runc
	ov_write_config ".backend = \"device\" | .master_key = \"$T/master.key\""
	run "$OCI_VTPM_BUILD/oci-vtpm" --config "$CFG" init
	assert_success
	b=$(ov_dev_bundle named io.oci-vtpm.name=dev-x)
	ov_args "$b" sleep 600
	id1=$(ov_new_id named1)
	ov_run_detached runc "$id1" "$b"
	ek1=$(ek_hash runc "$id1") || fail "createek failed: $ek1"
	run ov_exec runc "$id1" sh -c "echo -n vm-secret >/tmp/d &&
		tpm2_nvdefine -T $OV_DEV_TCTI 0x1500017 -C o -s 9 -a 'ownerread|ownerwrite' >/dev/null &&
		tpm2_nvwrite -T $OV_DEV_TCTI -C o 0x1500017 -i /tmp/d && echo NV_OK"
	assert_success
	assert_line NV_OK
	n=$(ov_devnums "$id1")
	run ov_delete runc "$id1" -f
	assert_success
	assert_cleaned_up "$id1" "$n"
	[ -f "$STATE_DIR/vtpms/dev-x/gen-0000000001.ovtpm" ] || fail "no archive after delete"

	id2=$(ov_new_id named2)
	ov_run_detached runc "$id2" "$b"
	[ "$(ek_hash runc "$id2")" = "$ek1" ] || fail "a different EK after restore"
	run ov_exec runc "$id2" sh -c "tpm2_nvread -T $OV_DEV_TCTI -C o 0x1500017 -s 9; echo"
	assert_success
	assert_line vm-secret
	n=$(ov_devnums "$id2")
	run ov_delete runc "$id2" -f
	assert_success
	assert_cleaned_up "$id2" "$n"
}

# ----------------------------------------------------------------------------
# A container with its own user namespace: bound, not made with mknod, and
# its (unprivileged on the host) root can use the TPM.

@test "runc: a container in its own user namespace gets a working /dev/tpmrm0" {
	local b id n
	requires_stack runc
	b=$(ov_dev_bundle userns)
	ov_args "$b" sleep 600
	ov_cfg "$b" '.linux.namespaces += [{type: "user"}]
		| .linux.uidMappings = [{containerID: 0, hostID: 100000, size: 65536}]
		| .linux.gidMappings = [{containerID: 0, hostID: 100000, size: 65536}]'
	id=$(ov_new_id userns)
	ov_run_detached runc "$id" "$b"
	[ "$(awk '$1 == 0 {print $2}' "/proc/$(ov_rt runc state "$id" | jq -r .pid)/uid_map")" = 100000 ] ||
		fail "the container is not in a user namespace"
	n=$(ov_devnums "$id")
	run ov_exec runc "$id" sh -c "id -u; stat -c %u /dev/tpmrm0; tpm2_getrandom -T $OV_DEV_TCTI --hex 8 && echo; echo DONE"
	assert_success
	assert_line --index 0 0
	assert_line --index 1 0
	assert_line --regexp '^[0-9a-f]{16}$'
	[ "$(stat -c %u:%g "/dev/tpmrm$n")" = 100000:100000 ] || fail "host node owner $(stat -c %u:%g "/dev/tpmrm$n")"
	# Its root may not make /run/tpm in this rootfs (the host root's): the
	# launch is measured all the same, its log on the host only.
	run ovadm log "$id"
	assert_success
	assert_output --partial '"content_type":"oci-vtpm"'
	run ov_delete runc "$id" -f
	assert_success
	assert_cleaned_up "$id" "$n"
}
