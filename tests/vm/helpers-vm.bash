# shellcheck shell=bash
# VM-only additions to tests/bats/helpers.bash for the device backend
# (vtpm_proxy). Loaded by tests/vm/*.bats after ../bats/helpers:
#
#   load ../bats/helpers
#   load helpers-vm
#
# Run inside the VM only:
#   tests/vm/run.sh [--cgroup v1|v2] -- tests/bats/run.sh tests/vm/device.bats
#
# Device tests are never skipped (DESIGN.md): a missing feature fails.
export OV_STRICT=1

# ov_vm_slowdown: how many times slower than a real host this guest is now,
# qemu's TCG and the host's load together (1 at least). Measured as RSA-2048
# private-key operations per second of wall time, against 1000/s for a
# modest real core (this builder does about 3000 idle): that is the work
# that makes a TPM start slow (a TPM 1.2 makes an RSA-2048 key in libtpms's
# self-test at every start; an EK is an RSA key too), and its cost moves
# with the emulator and the load alike. Seen here: 75 to 120/s in a guest
# beside a busy host, so a factor of 9 to 14. Measured at most every two
# minutes (2 s each), cached in the guest's /run.
ov_vm_slowdown() {
	local cache=/run/oci-vtpm-vm-slowdown rate
	if [ -z "$(find "$cache" -newermt '-120 seconds' 2>/dev/null)" ]; then
		rate=$(openssl speed -elapsed -mr -seconds 1 rsa2048 2>/dev/null |
			awk -F: '/^\+F2:/ { print int($4) }')
		[ "${rate:-0}" -gt 0 ] || rate=1
		echo $(((1000 + rate - 1) / rate)) >"$cache"
	fi
	cat "$cache"
}

ov_min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

# Every timeout of the VM suites follows the guest's speed, never a number
# tuned on a quiet day: the settings' start and stop timeouts (the product's
# defaults are for a real host), the hook entries' timeout, the runtime
# commands' and the fixed waits' (ov_slow SECS).
if [ "${OCI_VTPM_VM:-}" = 1 ]; then
	OV_SLOW=$(ov_vm_slowdown)
	# The settings take at most 600000 ms (10 minutes): a guest so slow
	# that it needs more gets the most the settings allow.
	OV_CONFIG_EXTRA=".start_timeout_ms = $(ov_min 600000 $((10000 * OV_SLOW))) | .stop_timeout_ms = $(ov_min 600000 $((5000 * OV_SLOW)))"
	OV_HOOK_TIMEOUT=$((30 * OV_SLOW))
	OV_TIMEOUT=$((OV_TIMEOUT * OV_SLOW))
fi
ov_slow() { echo $(($1 * ${OV_SLOW:-1})); }

# v1 (a devices hierarchy) or v2 (cgroup2 only), as this guest was booted.
ov_cgroup_mode() {
	if grep -qE '^[0-9]+:([^:]*,)?devices(,[^:]*)?:' /proc/self/cgroup; then echo v1; else echo v2; fi
}

# ov_vm_setup: per-test setup for device tests: the VM, /dev/vtpmx, settings
# with the device backend.
ov_vm_setup() {
	[ "${OCI_VTPM_VM:-}" = 1 ] ||
		fail "device tests run inside the VM: tests/vm/run.sh -- tests/bats/run.sh tests/vm/device.bats"
	[ -c /dev/vtpmx ] || modprobe tpm_vtpm_proxy || fail "no /dev/vtpmx in the VM"
	# setns(CLONE_NEWNS), as the hook does to reach a container's rootfs,
	# starts at the namespace's root mount and what is mounted on its "/".
	# Under a plain chroot that is not our "/", and every placement fails
	# with "opening the rootfs ...: No such file or directory".
	[ "$(nsenter --mount=/proc/self/ns/mnt stat -c %d:%i / 2>&1)" = "$(stat -c %d:%i /)" ] ||
		fail "the guest runs this in a chroot whose root is not mounted on the namespace's /: tests/vm/init must 'mount --move' the new root onto / before chroot (as switch_root does)"
	ov_setup
	ov_write_config '.backend = "device"'
	OV_DEV_TCTI=device:/dev/tpmrm0
}

# More runtimes for helpers' plumbing (ov_rt, ov_run, ov_teardown):
# "crun-cg", crun with a real cgroup manager (helpers' "crun" runs with
# --cgroup-manager=disabled), "shim-runc", oci-vtpm-runtime in front of
# runc, and "shim-crun-cg", oci-vtpm-runtime in front of crun with its
# cgroupfs manager.
eval "$(declare -f _ov_rt_root | sed '1s/^_ov_rt_root/_ov_rt_root_base/')"
_ov_rt_root() {
	local rc=0
	_ov_rt_root_vm "$@" || rc=$?
	# A delete (or a foreground run) stops its vTPMs: wait for the stop
	# workers, as helpers' own _ov_rt_root does.
	case " ${*:3} " in *" delete "* | *" run "*) ov_wait_stops ;; esac
	return $rc
}
_ov_rt_root_vm() {
	local root=$1
	case $2 in
	crun-cg)
		shift 2
		timeout -k 5 "$OV_TIMEOUT" crun --root "$root" --cgroup-manager=cgroupfs "$@" 3>&-
		;;
	shim-runc)
		shift 2
		timeout -k 5 "$OV_TIMEOUT" env OCI_VTPM_CONFIG="$CFG" OCI_VTPM_RUNTIME="$(command -v runc)" \
			"$OV_SHIM" --root "$root" "$@" 3>&-
		;;
	shim-crun-cg)
		# crun's own global option, passed through by the shim to crun
		# (and to the `crun state` it runs after a failed create).
		shift 2
		timeout -k 5 "$OV_TIMEOUT" env OCI_VTPM_CONFIG="$CFG" OCI_VTPM_RUNTIME="$(command -v crun)" \
			"$OV_SHIM" --root "$root" --cgroup-manager=cgroupfs "$@" 3>&-
		;;
	*) _ov_rt_root_base "$@" ;;
	esac
}
eval "$(declare -f ov_run | sed '1s/^ov_run/_ov_run_base/')"
ov_run() {
	local rt=$1 id=$2 b=$3 rc=0
	if [ "$rt" != crun-cg ] && [ "$rt" != shim-crun-cg ]; then
		_ov_run_base "$@"
		return
	fi
	# As helpers' crun: `run` in the foreground would wait for swtpm.
	_ov_register "$rt" "$id"
	ov_rt "$rt" run -d --bundle "$b" "$id" </dev/null >"$T/$id.out" 2>&1 || rc=$?
	if ((rc == 0)); then
		ov_wait_for "$OV_TIMEOUT" _ov_is_stopped "$rt" "$id" || rc=124
	fi
	cat "$T/$id.out"
	((rc == 0)) || return $rc
	ov_rt "$rt" delete "$id"
}

# The runtime that the probe in helpers knows this one as.
_ov_rt_feature() {
	case $1 in
	crun-cg | shim-crun-cg) echo crun ;;
	shim-runc) echo runc ;;
	*) echo "$1" ;;
	esac
}

# oci-vtpm-runtime in front of runc, as "shim-runc".
OV_SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}

# ov_dev_bundle NAME [KEY=VALUE]...: ov_bundle with io.oci-vtpm.enable=true.
# Under cgroup v2 it also allows the TPM devices in linux.resources.devices,
# as oci-vtpm-runtime does (the hook cannot widen a v2 device filter):
# c 10:224 (the first chip's /dev/tpm0) and the tpm major, any minor (the
# other /dev/tpmN and every /dev/tpmrmN), read and write.
ov_dev_bundle() {
	local b name=$1
	shift
	b=$(ov_bundle "$name" io.oci-vtpm.enable=true "$@")
	if [ "$(ov_cgroup_mode)" = v2 ]; then
		ov_allow_tpm_devices "$b"
	fi
	echo "$b"
}

ov_allow_tpm_devices() {
	local maj
	maj=$(awk '$2 == "tpm" { print $1 }' /proc/devices)
	ov_cfg "$1" --argjson maj "${maj:-253}" '.linux.resources.devices += [
		{allow: true, type: "c", major: 10, minor: 224, access: "rw"},
		{allow: true, type: "c", major: $maj, access: "rw"}]'
}

# ov_record ID JQ-FILTER: read the hook's live record of container ID.
ov_record() { jq -r "$2" "$(ov_slot "$1")/record.json"; }

# ov_devnums ID: the N of /dev/tpmN for each of ID's vTPMs, one a line.
ov_devnums() { ov_record "$1" '.tpms[].devnum'; }

# ov_hostdev PATH: "major:minor" in decimal, or nothing when PATH is no
# character device.
ov_hostdev() {
	[ -c "$1" ] || return 0
	printf '%d:%d\n' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")"
}

# ov_gone N: /dev/tpmN, /dev/tpmrmN and their sysfs entries are gone.
ov_chip_gone() {
	[ ! -e "/dev/tpm$1" ] && [ ! -e "/dev/tpmrm$1" ] && [ ! -e "/sys/class/tpm/tpm$1" ] &&
		[ ! -e "/sys/class/tpmrm/tpmrm$1" ]
}

# ov_expected_pcr DIGEST: PCR value after one extend of a zero PCR.
ov_expected_pcr() {
	{
		head -c 32 /dev/zero
		# shellcheck disable=SC2059 # the format is the \x-escaped digest
		printf "$(sed 's/../\\x&/g' <<<"$1")"
	} | sha256sum | cut -d' ' -f1 | tr '[:lower:]' '[:upper:]'
}

# ov_assert_dev_tpm RT ID N: container ID (runtime RT) has the host's
# /dev/tpmN and /dev/tpmrmN as its /dev/tpm0 and /dev/tpmrm0, and its
# TPM answers.
ov_assert_dev_tpm() {
	run ov_exec "$1" "$2" sh -c "
		echo TPM0=\$(stat -c %t:%T /dev/tpm0) RM0=\$(stat -c %t:%T /dev/tpmrm0)
		echo MODES=\$(stat -c '%a:%u:%g' /dev/tpm0 /dev/tpmrm0)
		echo RANDOM=\$(tpm2_getrandom -T $OV_DEV_TCTI --hex 8)"
	assert_success
	assert_line "TPM0=$(stat -c %t:%T "/dev/tpm$3") RM0=$(stat -c %t:%T "/dev/tpmrm$3")"
	# Root-only in the container (docs/guide.md), as on the host.
	assert_line "MODES=600:0:0 600:0:0"
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
}
