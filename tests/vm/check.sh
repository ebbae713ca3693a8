#!/usr/bin/env bash
# make check-vm: the device backend on Debian's kernel under qemu, in two
# chains that run at once (each VM takes one host thread; this machine has
# two cores):
#   chain 1: cgroup v1: smoke.sh, then all of tests/vm/device.bats, then
#            tests/vm/engines.bats (docker and containerd)
#   chain 2: cgroup v2: smoke.sh, the tests of device.bats whose behaviour
#            differs under v2 (device filter, cgroup managers, the shim,
#            swtpm's own cgroup) and
#            the basics, all of tests/vm/shim.bats (the eBPF device filter
#            through the shim with runc and crun, podman), engines.bats;
#            then shim.bats under cgroup v1
# One VM boot per step; each step's output is printed whole when it ends,
# with a line "time: vm-STEP-MODE N s" (boot included).
# Ends with "N passed, N failed"; with OV_RESULTS set, appends its counts
# there (see tests/run-all.sh).
set -u
cd "$(dirname "$0")/../.."
timeout=${OCI_VTPM_VM_SUITE_TIMEOUT:-1500}
v2_filter=${OCI_VTPM_VM_V2_FILTER:-'device rule|oci-vtpm-runtime|/dev/tpm0 and /dev/tpmrm0 are|cgroupfs manager|warm vTPMs|its own cgroup'}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { # chain name cgroup-mode cmd...
	local chain=$1 name=$2 mode=$3 log line p f s rc t0=$SECONDS
	shift 3
	log=$work/$chain.$name.$mode.log
	tests/vm/run.sh --cgroup "$mode" --timeout "$timeout" -- "$@" >"$log" 2>&1
	rc=$?
	echo "time: vm-$name-$mode $((SECONDS - t0)) s (boot included)" >>"$log"
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	p=$(sed -nE 's/.*\b([0-9]+) passed.*/\1/p' <<<"$line")
	f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
	if [ -z "$p" ]; then p=0 f=1; echo "check-vm: $name: no result line (exit $rc)" >>"$log"; fi
	[ "$rc" -eq 0 ] || [ "${f:-0}" -gt 0 ] || f=1
	{
		echo "== check-vm: $name (cgroup $mode)"
		cat "$log"
	} >>"$work/$chain.out"
	echo "vm-$name-$mode $p ${f:-0} ${s:-0}" >>"$work/counts"
}

start=$SECONDS
tests/vm/prepare.sh || { echo "check-vm: preparing the VM failed"; echo "0 passed, 1 failed"; exit 1; }
(
	step 1 smoke v1 tests/vm/smoke.sh
	step 1 device v1 tests/bats/run.sh tests/vm/device.bats
	step 1 engines v1 tests/bats/run.sh tests/vm/engines.bats
) &
(
	step 2 smoke v2 tests/vm/smoke.sh
	step 2 device v2 tests/bats/run.sh -f "$v2_filter" tests/vm/device.bats
	step 2 shim v2 tests/bats/run.sh tests/vm/shim.bats
	step 2 engines v2 tests/bats/run.sh tests/vm/engines.bats
	step 2 shim v1 tests/bats/run.sh tests/vm/shim.bats
) &
wait
cat "$work/1.out" "$work/2.out"
echo "time: check-vm $((SECONDS - start)) s"
[ -z "${OV_RESULTS:-}" ] || cat "$work/counts" >>"$OV_RESULTS"
read -r p f s < <(awk '{p+=$2; f+=$3; s+=$4} END {print p+0, f+0, s+0}' "$work/counts")
echo "check-vm: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
