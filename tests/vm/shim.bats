#!/usr/bin/env bats
# oci-vtpm-runtime and podman with the device backend (vtpm_proxy). Runs only
# inside the VM, in either cgroup mode:
#
#   tests/vm/run.sh --cgroup v2 -- tests/bats/run.sh tests/vm/shim.bats
#   tests/vm/run.sh --cgroup v1 -- tests/bats/run.sh tests/vm/shim.bats
#
# Under cgroup v2 the container's device filter is an eBPF program that runc,
# or crun with a cgroup manager, builds from config.json at create; a hook
# cannot widen it later. oci-vtpm-runtime starts the vTPM before create and
# puts its devices and their allow rules into config.json. Here: the vTPM
# works under that filter (v1: the devices cgroup), and a container without
# the annotation, under the same runtime and filter, cannot open a TPM node
# it is handed. Then podman: `--runtime oci-vtpm-runtime` (runc or crun as
# the real runtime), named vTPMs across podman rm and run; podman's
# precreate stage with plain runc (the vTPM started before the container
# has an id, adopted by the hook), which works under v2 too; and the
# oci-hooks file alone, which cannot serve the device backend under v2 and
# says so.
#
# Runtimes (helpers-vm.bash): "shim-runc" is the shim in front of runc,
# "shim-crun-cg" in front of crun --cgroup-manager=cgroupfs (crun's global
# option, which the shim passes through). Every test ends with the leak
# check of ov_teardown; podman's containers are removed first.

# shellcheck disable=SC2015,SC2016,SC2046 # A && B || fail; jq programs; ov_ps pids
load ../bats/helpers
load helpers-vm

IMAGE=localhost/ov-busybox:test

setup_file() {
	ov_setup_file
	ov_busybox_image "$BATS_FILE_TMPDIR/image.tar"
}

setup() {
	ov_vm_setup
	PM=$T/pm
	mkdir -p "$PM/tmp" "$T/no-hooks"
	cat >"$T/containers.conf" <<EOF
[engine]
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"CONTAINERS_CONF=$T/containers.conf"]
lock_type = "file"
EOF
}

teardown() {
	if [ -n "${T:-}" ] && [ -d "$PM/root" ]; then
		pm rm -a -f -t 0 >/dev/null 2>&1 || true
		pm rmi -a -f >/dev/null 2>&1 || true
	fi
	if [ "${OCI_VTPM_VM:-}" = 1 ] && [ -n "${T:-}" ] && [ -f "$T/etc-settings" ]; then
		if [ -f "$T/etc-settings.orig" ]; then
			cp "$T/etc-settings.orig" "$OV_DEFAULT_SETTINGS"
		else
			rm -f "$OV_DEFAULT_SETTINGS"
		fi
	fi
	ov_teardown
}

requires_stack() {
	requires root jq busybox swtpm tpm2-tools hook "$(_ov_rt_feature "$1")"
	[ -x "$OV_SHIM" ] || fail "$OV_SHIM not built (run make)"
}

# After the container is gone: no swtpm, no record, the host's chip gone.
assert_cleaned_up() { # ID DEVNUM...
	local id=$1 n
	shift
	ov_no_swtpm "$id" || fail "swtpm of $id still runs: $(ov_ps $(ov_swtpm_pids "$id"))"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") still exists: $(ls -A "$(ov_slot "$id")")"
	for n in "$@"; do
		ov_wait_for "$(ov_slow 10)" ov_chip_gone "$n" || fail "/dev/tpm$n or /dev/tpmrm$n still exists"
	done
}

# has_rules CONFIG MAJ:MIN...: config.json's linux.resources.devices allows
# each of the devices (c, rwm), as the shim writes them.
has_rules() {
	local cfg=$1 d
	shift
	for d in "$@"; do
		jq -e --argjson ma "${d%:*}" --argjson mi "${d#*:}" \
			'any(.linux.resources.devices[]; . == {allow: true, type: "c", major: $ma, minor: $mi, access: "rwm"})' \
			"$cfg" >/dev/null || fail "no allow rule for c $d in $cfg: $(jq -c .linux.resources.devices "$cfg")"
	done
}

# ----------------------------------------------------------------------------
# The device filter, both ways, through the shim.

device_filter() {
	local rt=$1 b id n pid cg tpm rm b2 id2 list
	requires_stack "$rt"
	b=$(ov_bundle vtpm io.oci-vtpm.enable=true)
	ov_cfg "$b" 'del(.hooks)'
	ov_args "$b" sleep 600
	id=$(ov_new_id vtpm)
	ov_run_detached "$rt" "$id" "$b"
	n=$(ov_devnums "$id")
	tpm=$(ov_hostdev "/dev/tpm$n")
	rm=$(ov_hostdev "/dev/tpmrm$n")
	[ -n "$tpm" ] && [ -n "$rm" ] || fail "no /dev/tpm$n, /dev/tpmrm$n on the host"
	# The shim started it before create, and no hook runs: config.json
	# names none (runc and crun run only those), the log has none.
	grep -q "oci-vtpm-runtime\[[0-9]*\] info $id: started 1 TPM 2.0 vTPM (device backend)" "$OV_HOOK_LOG" ||
		fail "the shim did not start the vTPM before create: $(cat "$OV_HOOK_LOG")"
	[ "$(jq '[.hooks // {} | .[] | .[] | select(.path | endswith("/oci-vtpm-hook"))] | length' "$b/config.json")" = 0 ] ||
		fail "oci-vtpm hooks in config.json: $(jq -c .hooks "$b/config.json")"
	[ "$(jq -r '.annotations["io.oci-vtpm.provided-by"]' "$b/config.json")" = oci-vtpm-runtime ] ||
		fail "no provided-by marker"
	! grep -q "oci-vtpm-hook\[[0-9]*\] .* $id: " "$OV_HOOK_LOG" || fail "a hook ran for $id"
	[ "$(jq .container_pid "$(ov_slot "$id")/record.json")" = "$(ov_rt "$rt" state "$id" | jq .pid)" ] ||
		fail "the container is not recorded as the vTPM's user"
	# The shim put the nodes and exactly their allow rules into config.json.
	run jq -c '[.linux.devices[] | select(.path | startswith("/dev/tpm")) | [.path, .type, .major, .minor]]' \
		"$b/config.json"
	assert_output "[[\"/dev/tpm0\",\"c\",${tpm%:*},${tpm#*:}],[\"/dev/tpmrm0\",\"c\",${rm%:*},${rm#*:}]]"
	has_rules "$b/config.json" "$tpm" "$rm"

	# The container runs in a cgroup of its own, under the runtime's device
	# filter: v2 an eBPF program on that cgroup, v1 its devices cgroup.
	pid=$(ov_rt "$rt" state "$id" | jq .pid)
	if [ "$(ov_cgroup_mode)" = v2 ]; then
		cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
		[ -n "$cg" ] && [ "$cg" != / ] && [ -d "/sys/fs/cgroup$cg" ] ||
			fail "the container is in no cgroup of its own: $(cat "/proc/$pid/cgroup")"
	else
		cg=$(sed -n 's/^[0-9]*:devices:\(.*\)$/\1/p' "/proc/$pid/cgroup")
		list=$(cat "/sys/fs/cgroup/devices$cg/devices.list")
		grep -qx "c $tpm rwm" <<<"$list" && grep -qx "c $rm rwm" <<<"$list" ||
			fail "devices.list of $cg lacks the vTPM: $list"
		! grep -q '^a ' <<<"$list" || fail "devices.list allows everything: $list"
	fi

	ov_assert_dev_tpm "$rt" "$id" "$n"

	# Same runtime, no annotation: the shim passes the bundle through
	# untouched. config.json hands the container the other one's TPM: a
	# /dev/tpmrm0 node with its numbers (linux.devices, made by the runtime)
	# and the host's /dev/tpmN bound at /dev/tpm0, but no allow rule.
	b2=$(ov_bundle intruder)
	ov_cfg "$b2" --argjson ma "${rm%:*}" --argjson mi "${rm#*:}" --arg src "/dev/tpm$n" '
		del(.hooks)
		| .linux.devices += [{path: "/dev/tpmrm0", type: "c", major: $ma, minor: $mi,
			fileMode: 438, uid: 0, gid: 0}]
		| .mounts += [{destination: "/dev/tpm0", type: "bind", source: $src, options: ["bind"]}]'
	# (All on stdout, from the shell itself: a subshell's error message on
	# stderr can land in the middle of the shell's output.)
	ov_sh "$b2" "
		for d in /dev/tpmrm0 /dev/tpm0; do
			[ -c \$d ] && echo \$d=\$(stat -c %t:%T \$d)
			if (exec 3<\$d) 2>/tmp/open.err; then echo \$d: OPENED; else echo \$d: \$(cat /tmp/open.err); fi
		done
		tpm2_getrandom -T $OV_DEV_TCTI --hex 8 >/dev/null 2>&1 && echo GETRANDOM_OK
		echo END"
	cp "$b2/config.json" "$T/intruder.before"
	id2=$(ov_new_id intruder)
	run ov_run "$rt" "$id2" "$b2"
	assert_success
	assert_line "/dev/tpmrm0=$(stat -c %t:%T "/dev/tpmrm$n")"
	assert_line "/dev/tpm0=$(stat -c %t:%T "/dev/tpm$n")"
	assert_line --regexp "^/dev/tpmrm0: .*can't open /dev/tpmrm0: Operation not permitted\$"
	assert_line --regexp "^/dev/tpm0: .*can't open /dev/tpm0: Operation not permitted\$"
	refute_output --partial OPENED
	refute_line GETRANDOM_OK
	assert_line END
	cmp -s "$T/intruder.before" "$b2/config.json" || fail "the shim edited a config.json that asks for no vTPM"
	[ ! -e "$(ov_slot "$id2")" ] || fail "a vTPM was made for $id2"

	# The owner's TPM still works; delete cleans up.
	run ov_exec "$rt" "$id" tpm2_getrandom -T "$OV_DEV_TCTI" --hex 8
	assert_success
	run ov_delete "$rt" "$id" -f
	assert_success
	grep -q "oci-vtpm-runtime\[[0-9]*\] info $id: vTPM stopped" "$OV_HOOK_LOG" ||
		fail "the shim did not stop the vTPM after delete"
	! grep -q "oci-vtpm-hook\[[0-9]*\] .* $id: " "$OV_HOOK_LOG" || fail "a hook ran for $id"
	assert_cleaned_up "$id" "$n"
}

@test "oci-vtpm-runtime + runc: /dev/tpmrm0 works under the device filter; a container without the annotation gets EPERM on a TPM node it is handed" {
	device_filter shim-runc
}

@test "oci-vtpm-runtime + crun (cgroupfs manager): /dev/tpmrm0 works under the device filter; a container without the annotation gets EPERM on a TPM node it is handed" {
	device_filter shim-crun-cg
}

# ----------------------------------------------------------------------------
# podman

# pm ARGS...: this test's private podman.
pm() {
	timeout -k 5 "$OV_TIMEOUT" env CONTAINERS_CONF="$T/containers.conf" \
		podman --root "$PM/root" --runroot "$PM/runroot" \
		--tmpdir "$PM/tmp" --cgroup-manager=cgroupfs --storage-driver=vfs \
		--events-backend=none "$@" 3>&-
}

# pm_settings [JQ-FILTER]: the test's settings (ov_write_config), also as
# the default settings file, which the shim reads whenever podman runs it.
# conmon hands the runtime (create) only containers.conf's conmon_env_vars,
# and podman runs start, kill and delete itself with only PATH and
# XDG_RUNTIME_DIR: $OCI_VTPM_CONFIG would reach the create alone, and the
# settings' "runtime" (crun here) would be used for create but runc for
# the rest. Only in the VM, whose / is a throwaway overlay (a file that was
# there is put back at teardown all the same).
OV_DEFAULT_SETTINGS=/etc/oci-vtpm/config.json
pm_settings() {
	[ "${OCI_VTPM_VM:-}" = 1 ] || fail "pm_settings writes $OV_DEFAULT_SETTINGS: VM only"
	ov_write_config "$@"
	if [ ! -f "$T/etc-settings" ]; then
		[ ! -f "$OV_DEFAULT_SETTINGS" ] || cp "$OV_DEFAULT_SETTINGS" "$T/etc-settings.orig"
		: >"$T/etc-settings"
	fi
	mkdir -p "${OV_DEFAULT_SETTINGS%/*}"
	cp "$CFG" "$OV_DEFAULT_SETTINGS"
}

RUN_OPTS=(--network none --ulimit nofile=20000:20000 --ulimit nproc=4096:4096
	-v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro)

requires_podman() {
	requires_stack "$@"
	command -v podman >/dev/null || fail "podman not installed"
	command -v conmon >/dev/null || fail "conmon not installed"
	run pm import "$BATS_FILE_TMPDIR/image.tar" "$IMAGE"
	assert_success
}

pm_name() { echo "ovpm-$1-$RANDOM"; }

# pm_register NAME: the container's full id, joined to the leak check.
pm_register() {
	local id
	id=$(pm inspect --format '{{.Id}}' "$1" 2>/dev/null) || fail "podman inspect $1"
	echo "$id" >>"$T/ids"
	echo "$id"
}

pm_config() { echo "$PM/root/vfs-containers/$1/userdata/config.json"; }

# pm_rm_clean NAME ID RUNTIME DEVNUM...: podman rm; then nothing is left:
# no vTPM, no chip, no container in the real runtime, no cgroup.
pm_rm_clean() {
	local name=$1 id=$2 real=$3
	shift 3
	run pm rm "$name"
	assert_success
	assert_cleaned_up "$id" "$@"
	! "$real" list -q 2>/dev/null | grep -qx -- "$id" || fail "$real still has container $id after podman rm"
	[ -z "$(find /sys/fs/cgroup -maxdepth 4 -name "*$id*" 2>/dev/null)" ] ||
		fail "cgroups of $id left after podman rm: $(find /sys/fs/cgroup -maxdepth 4 -name "*$id*")"
	ov_leak_check
}

# pm_script: the container's TPM: the nodes, getrandom, the RSA EK's hash.
pm_script() {
	echo "echo TPM0=\$(stat -c %t:%T /dev/tpm0) RM0=\$(stat -c %t:%T /dev/tpmrm0)
	echo RANDOM=\$(tpm2_getrandom -T $OV_DEV_TCTI --hex 8)
	cd /tmp && tpm2_createek -T $OV_DEV_TCTI -c ek.ctx -G rsa -u ek.pub >/dev/null &&
		echo EK=\$(sha256sum ek.pub | cut -d' ' -f1)"
}

# pm_assert_tpm ID: after `run ... sh -c "$(pm_script)"` of container ID:
# its config.json has the TPM nodes and their allow rules, and the output
# shows those very nodes (stat prints hex), random bytes and an EK. Sets
# PM_TPM ("major:minor" of /dev/tpm0) and PM_EK.
pm_assert_tpm() {
	local cfg tpm rm
	cfg=$(pm_config "$1")
	tpm=$(node_of "$cfg" /dev/tpm0)
	rm=$(node_of "$cfg" /dev/tpmrm0)
	[ -n "$tpm" ] && [ -n "$rm" ] || fail "no TPM nodes in podman's config.json: $(jq -c .linux.devices "$cfg")"
	has_rules "$cfg" "$tpm" "$rm"
	assert_line "TPM0=$(printf '%x:%x' "${tpm%:*}" "${tpm#*:}") RM0=$(printf '%x:%x' "${rm%:*}" "${rm#*:}")"
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	assert_line --regexp '^EK=[0-9a-f]{64}$'
	PM_TPM=$tpm
	PM_EK=$(sed -n 's/^EK=//p' <<<"$output")
}

# pm_named REAL-RUNTIME: podman --runtime oci-vtpm-runtime run with a named
# vTPM, twice, podman rm in between: a working /dev/tpmrm0, the same EK.
pm_named() {
	local rt=$1 real name id ek1 ek2 i cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm}
	real=$(command -v "$rt")
	[ -x "$cli" ] || fail "$cli not built (run make)"
	pm_settings ".backend = \"device\" | .master_key = \"$T/keys/master.key\" | .runtime = \"$real\""
	run timeout "$(ov_slow 30)" "$cli" --config "$CFG" init
	assert_success
	for i in 1 2; do
		name=$(pm_name "$rt$i")
		run pm --hooks-dir "$T/no-hooks" --runtime "$OV_SHIM" run --name "$name" \
			--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name="pm$rt" \
			"${RUN_OPTS[@]}" "$IMAGE" sh -c "$(pm_script)"
		assert_success
		id=$(pm_register "$name")
		pm_assert_tpm "$id"
		eval "ek$i=\$PM_EK"
		grep -q "$id: started 1 TPM 2.0 vTPM (device backend), name pm$rt" "$OV_HOOK_LOG" ||
			fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
		pm_rm_clean "$name" "$id" "$real" "$(chip_of "$PM_TPM")"
		grep -q "$id: vTPM pm$rt archived as generation $i" "$OV_HOOK_LOG" ||
			fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"
	done
	[ "$ek1" = "$ek2" ] || fail "the EK changed across podman rm/run: $ek1 vs $ek2"
	grep -q "vTPM pm$rt restored from generation 1" "$OV_HOOK_LOG" || fail "not restored"
}

# node_of CONFIG PATH: "major:minor" (decimal) of PATH in linux.devices.
node_of() { jq -r --arg p "$2" '.linux.devices[] | select(.path == $p) | "\(.major):\(.minor)"' "$1"; }

# chip_of MAJ:MIN: the N of the host's /dev/tpmN with those numbers (the
# first chip is the misc device 10:224, the others tpm-major:N).
chip_of() { if [ "$1" = 10:224 ]; then echo 0; else echo "${1#*:}"; fi; }

@test "podman --runtime oci-vtpm-runtime (device backend, runc): working /dev/tpmrm0; a named vTPM keeps its EK across podman rm and run; nothing left" {
	requires_podman runc
	pm_named runc
}

@test "podman --runtime oci-vtpm-runtime (device backend, crun): working /dev/tpmrm0; a named vTPM keeps its EK across podman rm and run; nothing left" {
	requires_podman crun
	pm_named crun
}

# podman's oci-hooks file alone (createRuntime + podman's poststop): the
# vTPM is made by the hook at createRuntime. cgroup v1: the hook allows it
# in the devices cgroup and it works; cgroup v2: the hook cannot widen the
# device filter and fails in one line naming the ways that can, which runc
# passes on to podman.
@test "podman oci-hooks file alone with the device backend: v1 works; v2 fails in one line naming oci-vtpm-runtime, nothing left" {
	requires_podman runc
	local d name id
	d=$(pm_hooks_dir oci-vtpm.json)
	name=$(pm_name hooks)
	run pm --hooks-dir "$d" --runtime runc run --name "$name" --annotation io.oci-vtpm.enable=true \
		"${RUN_OPTS[@]}" "$IMAGE" sh -c "tpm2_getrandom -T $OV_DEV_TCTI --hex 8 && echo; echo DONE"
	id=$(pm_register "$name")
	if [ "$(ov_cgroup_mode)" = v2 ]; then
		assert_failure
		assert_output --partial "oci-vtpm-hook: $id: cgroup v2: a hook cannot allow /dev/tpm0 ("
		assert_output --partial "in the container's device filter; run the container through oci-vtpm-runtime"
		refute_output --partial DONE
	else
		assert_success
		assert_line --regexp '^[0-9a-f]{16}$'
		assert_line DONE
		grep -q "$id: started 1 TPM 2.0 vTPM (device backend)" "$OV_HOOK_LOG" ||
			fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
	fi
	run pm rm -f "$name"
	assert_success
	assert_cleaned_up "$id"
	ov_wait_for "$(ov_slow 10)" eval "! compgen -G '/dev/tpm*[0-9]' >/dev/null" || fail "TPM chips left: $(ls /dev/tpm*)"
	ov_leak_check
}

# pm_hooks_dir FILE...: a hooks dir with our oci-hooks FILEs, settings in
# their env.
pm_hooks_dir() {
	local d=$T/hooks.d/$1 f
	mkdir -p "$d"
	for f in "$@"; do
		sed "s|@BINDIR@|$OCI_VTPM_BUILD|g" "$OV_REPO/config/hooks.d/$f.in" |
			jq --arg e "OCI_VTPM_CONFIG=$CFG" '.hook.env = [$e]' >"$d/$f"
	done
	echo "$d"
}

# pm_precreated ID: the name podman's precreate stage started the vTPM of
# container ID under, from its config.json, checked and printed.
pm_precreated() {
	local pre
	pre=$(jq -r '.annotations["io.oci-vtpm.precreated"] // ""' "$(pm_config "$1")")
	[[ $pre =~ ^precreated/[0-9a-f]{32}$ ]] || fail "no io.oci-vtpm.precreated annotation in config.json of $1: '$pre'"
	grep -q "$1: adopted the vTPM started by the precreate stage as $pre" "$OV_HOOK_LOG" ||
		fail "the hook did not adopt $pre: $(tail -n 5 "$OV_HOOK_LOG")"
	[ ! -e "$(ov_slot "$pre")" ] || fail "$(ov_slot "$pre") still exists after the adoption"
	echo "$pre"
}

# podman's precreate stage (oci-vtpm-runtime precreate) with plain runc: it
# starts the vTPM before the container has an id, under a name of its own,
# and puts its devices and their allow rules into config.json; the hook
# adopts it at createRuntime. So it works under cgroup v2's device filter
# too, without the shim as the runtime.
@test "podman precreate stage + runc (device backend): working /dev/tpmrm0 under the device filter; the same EK across podman rm/run and stop/start; no TPM without the annotation; nothing left" {
	requires_podman runc
	local d name name2 id id2 ek1 ek2 ek3 tpm real i n pre cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm}
	real=$(command -v runc)
	pm_settings ".backend = \"device\" | .master_key = \"$T/keys/master.key\""
	run timeout "$(ov_slow 30)" "$cli" --config "$CFG" init
	assert_success
	d=$(pm_hooks_dir oci-vtpm-precreate.json)
	for i in 1 2; do
		name=$(pm_name pre$i)
		run pm --hooks-dir "$d" --runtime runc run --name "$name" \
			--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=pmpre \
			"${RUN_OPTS[@]}" "$IMAGE" sh -c "$(pm_script)"
		assert_success
		id=$(pm_register "$name")
		pre=$(pm_precreated "$id")
		pm_assert_tpm "$id"
		eval "ek$i=\$PM_EK"
		grep -q "$pre: started 1 TPM 2.0 vTPM (device backend), name pmpre" "$OV_HOOK_LOG" ||
			fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
		pm_rm_clean "$name" "$id" "$real" "$(chip_of "$PM_TPM")"
		grep -q "$id: vTPM pmpre archived as generation $i" "$OV_HOOK_LOG" ||
			fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"
	done
	[ "$ek1" = "$ek2" ] || fail "the EK changed across podman rm/run: $ek1 vs $ek2"

	# podman stop and start: a new precreate stage, the same vTPM.
	name=$(pm_name prestart)
	run pm --hooks-dir "$d" --runtime runc run -d --name "$name" \
		--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=pmpre \
		"${RUN_OPTS[@]}" "$IMAGE" sleep 600
	assert_success
	id=$(pm_register "$name")
	run pm stop -t 0 "$name"
	assert_success
	assert_cleaned_up "$id"
	run pm --hooks-dir "$d" start "$name"
	assert_success
	pm_precreated "$id" >/dev/null
	run pm exec "$name" sh -c "$(pm_script)"
	assert_success
	ek3=$(sed -n 's/^EK=//p' <<<"$output")
	[ "$ek3" = "$ek1" ] || fail "the EK changed across podman stop/start: $ek1 vs $ek3"
	tpm=$(node_of "$(pm_config "$id")" /dev/tpm0)
	n=$(chip_of "$tpm")

	# Same hooks dir, no annotation, handed that container's TPM nodes:
	# the device filter keeps it out.
	name2=$(pm_name intruder)
	run pm --hooks-dir "$d" --runtime runc run --name "$name2" \
		-v "/dev/tpm$n:/dev/tpm0" -v "/dev/tpmrm$n:/dev/tpmrm0" "${RUN_OPTS[@]}" "$IMAGE" sh -c '
		for d in /dev/tpm0 /dev/tpmrm0; do
			[ -c $d ] && echo $d is a node
			if (exec 3<>$d) 2>/tmp/open.err; then echo $d: OPENED; else echo $d: $(cat /tmp/open.err); fi
		done; echo END'
	assert_success
	assert_line "/dev/tpm0 is a node"
	assert_line "/dev/tpmrm0 is a node"
	assert_line --regexp "^/dev/tpm0: .* /dev/tpm0: Operation not permitted\$"
	assert_line --regexp "^/dev/tpmrm0: .* /dev/tpmrm0: Operation not permitted\$"
	refute_output --partial OPENED
	assert_line END
	id2=$(pm_register "$name2")
	run pm rm "$name2"
	assert_success
	assert_cleaned_up "$id2"
	run pm exec "$name" tpm2_getrandom -T "$OV_DEV_TCTI" --hex 8
	assert_success
	run pm stop -t 0 "$name"
	assert_success
	pm_rm_clean "$name" "$id" "$real" "$n"

	# Same hooks dir, no annotation: the stage is not even run; no TPM.
	name=$(pm_name none)
	run pm --hooks-dir "$d" --runtime runc run --name "$name" "${RUN_OPTS[@]}" "$IMAGE" \
		sh -c 'for d in /dev/tpm0 /dev/tpmrm0; do [ ! -e $d ] || echo HAS $d; done; echo END'
	assert_success
	refute_output --partial HAS
	assert_line END
	id=$(pm_register "$name")
	[ -z "$(ov_pre_slots)" ] || fail "a vTPM was started: $(ov_pre_slots)"
	pm_rm_clean "$name" "$id" "$real"
}

# precreate_orphan: podman's precreate stage run by a process that then
# exits without creating the container; prints the name the vTPM got.
precreate_input() {
	jq -n '{ociVersion: "1.0.2", root: {path: "rootfs"}, process: {args: ["true"]},
		annotations: {"io.oci-vtpm.enable": "true"}}' >"$T/pre.in.json"
}
precreate_orphan() {
	local out=$T/pre.$RANDOM.json
	precreate_input
	# (`; true`: bash forks for the stage instead of exec'ing it, so the
	# stage's parent, the process creating the container, is this bash.)
	OCI_VTPM_CONFIG=$CFG bash -c '"$1" precreate <"$2" >"$3"; true' - "$OV_SHIM" "$T/pre.in.json" "$out" ||
		return 1
	jq -r '.annotations["io.oci-vtpm.precreated"]' "$out"
}

@test "podman precreate stage: a vTPM started for a container that never came is kept while its creator lives, then collected by the next precreate stage and by gc" {
	requires_stack runc
	local pre1 pre2 pid1 pid2 n1 n2 holder cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm}
	ov_write_config '.backend = "device"'
	# The stage's parent, the process creating the container, lives on.
	precreate_input
	OCI_VTPM_CONFIG=$CFG bash -c '"$1" precreate <"$2" >"$3" && touch "$3.done"; exec sleep 300' \
		- "$OV_SHIM" "$T/pre.in.json" "$T/held.json" 3>&- &
	holder=$!
	echo "$holder" >>"$T/bgpids"
	ov_wait_for "$(ov_slow 60)" test -e "$T/held.json.done" || fail "the precreate stage did not finish"
	pre1=$(jq -r '.annotations["io.oci-vtpm.precreated"]' "$T/held.json")
	[[ $pre1 =~ ^precreated/[0-9a-f]{32}$ ]] || fail "precreate: no vTPM name in its output: $pre1"
	pid1=$(ov_swtpm_pids "$pre1")
	[ -n "$pid1" ] || fail "no swtpm runs for $pre1"
	n1=$(ov_devnums "$pre1")
	[ -c "/dev/tpm$n1" ] || fail "no /dev/tpm$n1"
	jq -e --argjson h "$holder" '.holder_pid == $h and .container_pid == 0' "$(ov_slot "$pre1")/record.json" >/dev/null ||
		fail "record: $(cat "$(ov_slot "$pre1")/record.json")"
	run "$cli" --config "$CFG" gc
	assert_success
	refute_output --partial "$pre1"
	[ -d "$(ov_slot "$pre1")" ] && [ -e "/proc/$pid1" ] || fail "gc took $pre1 while its creator lives"

	# The creator is gone: the next precreate stage collects it.
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	pre2=$(precreate_orphan)
	[[ $pre2 =~ ^precreated/[0-9a-f]{32}$ ]] && [ "$pre2" != "$pre1" ] || fail "second precreate: $pre2"
	grep -q "collected $pre1, started by a precreate stage for a container that never came" "$OV_HOOK_LOG" ||
		fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
	# (Its chip number may already be the new one's.)
	ov_wait_for "$(ov_slow 10)" test ! -e "/proc/$pid1" || fail "swtpm $pid1 of $pre1 still runs"
	[ ! -e "$(ov_slot "$pre1")" ] || fail "$(ov_slot "$pre1") still exists"
	pid2=$(ov_swtpm_pids "$pre2")
	n2=$(ov_devnums "$pre2")
	[ -n "$pid2" ] && [ -c "/dev/tpm$n2" ] || fail "no vTPM for $pre2"

	# And gc.
	run "$cli" --config "$CFG" gc
	assert_success
	assert_output --partial "collected container $pre2"
	assert_cleaned_up "$pre2" "$n2"

	# A stage whose config cannot be written (a full disk) fails in one
	# line and stops the vTPM it started.
	run env OCI_VTPM_CONFIG="$CFG" bash -c '"$1" precreate <"$2" >/dev/full' - "$OV_SHIM" "$T/pre.in.json"
	assert_failure
	assert_output --regexp 'oci-vtpm-runtime: .*writing the config to stdout: No space left on device'
	[ -z "$(ov_pre_slots)" ] || fail "left: $(ov_pre_slots)"
	ov_no_swtpm || fail "swtpm left: $(ov_ps $(ov_swtpm_pids))"
	ov_leak_check
}
