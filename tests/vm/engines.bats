#!/usr/bin/env bats
# The device backend (vtpm_proxy) through Docker (Debian's docker.io 20.10)
# and containerd (Debian's 1.6, `ctr run --runc-binary`), with the shim as
# their runtime. Runs only inside the VM, in either cgroup mode:
#
#   tests/vm/run.sh --cgroup v2 -- tests/bats/run.sh tests/vm/engines.bats
#   tests/vm/run.sh --cgroup v1 -- tests/bats/run.sh tests/vm/engines.bats
#
# setup_file starts a dockerd and a containerd of this file's own
# (tests/bats/engines.bash: own roots, sockets, pid files; vfs / native
# snapshots, no iptables, no bridge; containers with --network none) and
# loads the busybox image into each (the host's /usr and /lib bound
# read-only give the containers tpm2-tools); teardown_file stops both by
# pid. The settings keep the socket backend: each container asks for the
# device backend itself (docker: OCI_VTPM_BACKEND=device in its
# environment; ctr: the annotation io.oci-vtpm.backend=device), so a
# request that were not honoured shows as a missing /dev/tpm0. The engines
# build the container's device cgroup (v1) or eBPF device filter (v2) from
# config.json, where the shim put the vTPM's nodes and allow rules.
# Checked per engine: /dev/tpm0 and /dev/tpmrm0 are the host's new chip and
# answer; a named vTPM keeps its EK across the engine's stop/start and
# remove/run; after remove nothing is left (no swtpm, no record, no chip in
# /dev or /sys/class/tpm, no mount); a bad request fails with our one line
# shown by the engine. Every test ends with the leak check of ov_teardown.

# shellcheck disable=SC2016,SC2046 # $(...) run in the container; ov_ps pids
load ../bats/helpers
load helpers-vm
load ../bats/engines

# The container's TPM: its nodes ("major:minor" in hex, as stat prints)
# and random bytes through the resource manager.
TPM_SCRIPT='for d in /dev/tpm0 /dev/tpmrm0; do [ -c $d ] && echo $d=$(stat -c %t:%T $d); done
	echo RANDOM=$(tpm2_getrandom -T device:/dev/tpmrm0 --hex 8)'
# The endorsement key's hash (ECC: an RSA key takes long under TCG).
EK_SCRIPT='cd /tmp && tpm2_createek -T device:/dev/tpmrm0 -c ek.ctx -G ecc -u ek.pub >/dev/null &&
	echo EK=$(sha256sum ek.pub | cut -d" " -f1)'

setup_file() {
	ov_setup_file
	ov_dockerd_start
	ov_containerd_start
}

teardown_file() {
	ov_dockerd_stop || true
	ov_containerd_stop
}

setup() {
	ov_vm_setup
	ov_engines_setup
}

teardown() {
	# A failed test: what the kernel said about its TPM chips.
	[ -n "${BATS_TEST_COMPLETED:-}" ] ||
		ov_log "kernel log, last TPM lines: $(dmesg | grep -iE 'tpm|vtpm' | tail -n 5 | tr '\n' '|')"
	ov_dockerd_rm_all
	ct_remove_all
	ov_teardown
}

# named_settings: the socket backend (the containers ask for the device),
# a master key (a named vTPM is archived), and the environment allowed to
# name one.
named_settings() {
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".backend = \"socket\" | .master_key = \"$T/master.key\"
		| .env_request = [\"enable\", \"name\", \"backend\", \"count\"]"
}

# assert_tpm ID: after `run ENGINE-EXEC sh -c "$TPM_SCRIPT"` in container
# ID: the device backend, and the container's nodes are the host's chip of
# its record; sets TPM_N to that chip's N.
assert_tpm() {
	local n
	TPM_N=
	assert_success
	[ "$(ov_record "$1" .backend)" = device ] || fail "record: backend $(ov_record "$1" .backend)"
	n=$(ov_devnums "$1")
	[ -c "/dev/tpm$n" ] && [ -c "/dev/tpmrm$n" ] && [ -e "/sys/class/tpm/tpm$n" ] ||
		fail "no /dev/tpm$n, /dev/tpmrm$n or /sys/class/tpm/tpm$n on the host"
	assert_line "/dev/tpm0=$(stat -c %t:%T "/dev/tpm$n")"
	assert_line "/dev/tpmrm0=$(stat -c %t:%T "/dev/tpmrm$n")"
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	grep -q "$1: started 1 TPM 2.0 vTPM (device backend)" "$OV_HOOK_LOG" ||
		fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
	TPM_N=$n
}

# assert_gone ID DEVNUM...: container ID left nothing: no swtpm, no record,
# its chips gone from /dev and /sys/class/tpm (and no chip at all: each
# test runs one vTPM at a time), no mount naming it.
assert_gone() {
	local id=$1 n
	shift
	ov_no_swtpm "$id" || fail "swtpm of $id still runs: $(ov_ps $(ov_swtpm_pids "$id"))"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") still exists: $(ls -A "$(ov_slot "$id")")"
	for n in "$@"; do
		ov_wait_for "$(ov_slow 10)" ov_chip_gone "$n" || fail "/dev/tpm$n or /dev/tpmrm$n still exists"
	done
	ov_wait_for "$(ov_slow 10)" no_chips || fail "TPM chips left: $(ls /dev/tpm* /sys/class/tpm 2>&1)"
	! grep -qF -- "$id" /proc/self/mountinfo || fail "mounts of $id left: $(grep -F -- "$id" /proc/self/mountinfo)"
	ov_leak_check || fail "leaks after $id (above)"
}
no_chips() { [ -z "$(ls -A /sys/class/tpm 2>/dev/null)" ] && ! compgen -G '/dev/tpm*[0-9]' >/dev/null; }

# ek_of OUTPUT: the EK= line's hash, or fail (also in a $(...), where
# errexit is off).
ek_of() {
	local ek
	ek=$(sed -n 's/^EK=//p' <<<"$1")
	[[ $ek =~ ^[0-9a-f]{64}$ ]] || fail "no EK: $1" || return 1
	echo "$ek"
}

# ----------------------------------------------------------------------------
# Docker: requests by environment (docker 20.10 has no --annotation).

DK_DEV=(-e OCI_VTPM_ENABLE=true -e OCI_VTPM_BACKEND=device)

# dk_bad_request: OCI_VTPM_COUNT=99 fails docker run with our one line;
# nothing started, nothing left after docker rm.
dk_bad_request() {
	local id
	run --separate-stderr dk run --name ovdk-bad "${OV_DK_RUN_OPTS[@]}" "${DK_DEV[@]}" -e OCI_VTPM_COUNT=99 \
		"$OV_DK_IMAGE" true
	assert_failure
	dk_error_lines # (docker's own race line aside)
	[ "${#DK_ERR[@]}" -eq 1 ] || fail "expected one line on stderr: $stderr"
	[[ ${DK_ERR[0]} == *'oci-vtpm-runtime: '*'environment OCI_VTPM_COUNT: bad value "99"'* ]] ||
		fail "docker run does not show our error: $stderr"
	id=$(dk_register ovdk-bad)
	[ "$(ov_swtpm_count)" -eq 0 ] || fail "swtpm started for a refused request"
	run dk rm ovdk-bad
	assert_success
	assert_gone "$id"
}

@test "docker (device backend by OCI_VTPM_BACKEND=device): a bad request fails with our one line; /dev/tpm0 and /dev/tpmrm0 are the vTPM's chip and answer; a named vTPM keeps its EK across docker stop/start and docker rm + docker run; docker rm leaves no swtpm, record, chip or mount" {
	requires_docker
	local id id2 ek1 ek2
	named_settings
	dk_bad_request
	run dk run -d --name ovdk-named "${OV_DK_RUN_OPTS[@]}" "${DK_DEV[@]}" -e OCI_VTPM_NAME=dockerdb \
		"$OV_DK_IMAGE" sleep 600
	assert_success
	id=$(dk_register ovdk-named)
	run dk exec ovdk-named sh -c "$TPM_SCRIPT; $EK_SCRIPT"
	assert_tpm "$id"
	ek1=$(ek_of "$output")

	run dk stop -t 0 ovdk-named
	assert_success
	assert_gone "$id" "$TPM_N"
	grep -q "$id: vTPM dockerdb archived as generation 1" "$OV_HOOK_LOG" ||
		fail "docker stop archived nothing: $(tail -n 5 "$OV_HOOK_LOG")"
	run dk start ovdk-named
	assert_success
	run dk exec ovdk-named sh -c "$TPM_SCRIPT; $EK_SCRIPT"
	assert_tpm "$id"
	ek2=$(ek_of "$output")
	[ "$ek1" = "$ek2" ] || fail "the EK changed across docker stop/start: $ek1 vs $ek2"

	run dk rm -f ovdk-named
	assert_success
	assert_gone "$id" "$TPM_N"
	run dk run --name ovdk-named2 "${OV_DK_RUN_OPTS[@]}" "${DK_DEV[@]}" -e OCI_VTPM_NAME=dockerdb \
		"$OV_DK_IMAGE" sh -c "$TPM_SCRIPT; $EK_SCRIPT"
	assert_success
	id2=$(dk_register ovdk-named2)
	assert_line --regexp '^/dev/tpmrm0=[0-9a-f]+:[0-9a-f]+$'
	ek2=$(ek_of "$output")
	[ "$ek1" = "$ek2" ] || fail "the EK changed across docker rm + docker run: $ek1 vs $ek2"
	grep -q "$id2: vTPM dockerdb restored from generation 2" "$OV_HOOK_LOG" ||
		fail "not restored: $(tail -n 5 "$OV_HOOK_LOG")"
	run dk rm ovdk-named2
	assert_success
	assert_gone "$id2"
}

# ----------------------------------------------------------------------------
# containerd: ctr run --runc-binary, requests by annotation (and env).

CT_DEV=(--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.backend=device)

# ct_stop ID: kill the task and delete it (runc delete runs poststop).
ct_stop() {
	run ct tasks kill -s KILL "$1"
	assert_success
	ov_wait_for "$(ov_slow 30)" ct_task_not_running "$1" || fail "the task of $1 still runs"
	run ct tasks delete "$1"
	assert_success
}

# ct_bad_request: io.oci-vtpm.count=99 fails ctr run with our one line;
# nothing started, nothing left.
ct_bad_request() {
	ct_id ovct-bad
	run --separate-stderr ct_run --rm "${CT_DEV[@]}" --annotation io.oci-vtpm.count=99 "$OV_CT_IMAGE" ovct-bad true
	assert_failure
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "expected one line on stderr: $stderr"
	[[ ${stderr_lines[0]} == *'oci-vtpm-runtime: '*'annotation io.oci-vtpm.count: bad value "99"'* ]] ||
		fail "ctr does not show our error: $stderr"
	run ct containers ls -q
	refute_output --partial ovct-bad
	[ "$(ov_swtpm_count)" -eq 0 ] || fail "swtpm started for a refused request"
	assert_gone ovct-bad
}

@test "containerd (device backend by annotation, then by environment): a bad request fails with our one line; /dev/tpm0 and /dev/tpmrm0 are the vTPM's chip and answer; a named vTPM keeps its EK across task kill/delete/start and ctr container rm + ctr run; removal leaves no swtpm, record, chip or mount" {
	requires_containerd
	local ek1 ek2
	named_settings
	ct_bad_request
	ct_id ovct-named
	run ct_run -d "${CT_DEV[@]}" --annotation io.oci-vtpm.name=ctrdb "$OV_CT_IMAGE" ovct-named sleep 600
	assert_success
	run ct tasks exec --exec-id ek1 ovct-named sh -c "$TPM_SCRIPT; $EK_SCRIPT"
	assert_tpm ovct-named
	ek1=$(ek_of "$output")

	ct_stop ovct-named
	assert_gone ovct-named "$TPM_N"
	grep -q "ovct-named: vTPM ctrdb archived as generation 1" "$OV_HOOK_LOG" ||
		fail "the task's delete archived nothing: $(tail -n 5 "$OV_HOOK_LOG")"
	run ct tasks start -d ovct-named
	assert_success
	run ct tasks exec --exec-id ek2 ovct-named sh -c "$TPM_SCRIPT; $EK_SCRIPT"
	assert_tpm ovct-named
	ek2=$(ek_of "$output")
	[ "$ek1" = "$ek2" ] || fail "the EK changed across task delete/start: $ek1 vs $ek2"

	ct_stop ovct-named
	run ct containers rm ovct-named
	assert_success
	assert_gone ovct-named "$TPM_N"
	# The same request by environment.
	run ct_run --rm --env OCI_VTPM_ENABLE=true --env OCI_VTPM_BACKEND=device --env OCI_VTPM_NAME=ctrdb \
		"$OV_CT_IMAGE" ovct-named sh -c "$TPM_SCRIPT; $EK_SCRIPT"
	assert_success
	assert_line --regexp '^/dev/tpmrm0=[0-9a-f]+:[0-9a-f]+$'
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	grep -q "ovct-named: started 1 TPM 2.0 vTPM (device backend), name ctrdb" "$OV_HOOK_LOG" ||
		fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
	ek2=$(ek_of "$output")
	[ "$ek1" = "$ek2" ] || fail "the EK changed across ctr container rm + ctr run: $ek1 vs $ek2"
	grep -q "ovct-named: vTPM ctrdb restored from generation 2" "$OV_HOOK_LOG" ||
		fail "not restored: $(tail -n 5 "$OV_HOOK_LOG")"
	assert_gone ovct-named
}
