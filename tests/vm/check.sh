#!/usr/bin/env bash
# make check-vm: the device backend on Debian's kernel under qemu.
#   cgroup v1: smoke.sh, then all of tests/vm/device.bats
#   cgroup v2: smoke.sh, then the tests whose behaviour differs under v2
#              (device filter, cgroup managers, the shim) and the basics
# One VM boot per step. Ends with "N passed, N failed"; with OV_RESULTS set,
# appends its counts there (see tests/run-all.sh).
set -u
cd "$(dirname "$0")/../.."
timeout=${OCI_VTPM_VM_SUITE_TIMEOUT:-1500}
v2_filter=${OCI_VTPM_VM_V2_FILTER:-'device rule|oci-vtpm-runtime|/dev/tpm0 and /dev/tpmrm0 are|cgroupfs manager'}
total_p=0 total_f=0 total_s=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

step() { # name cgroup-mode cmd...
	local name=$1 mode=$2 line p f s rc
	shift 2
	echo "== check-vm: $name (cgroup $mode)"
	tests/vm/run.sh --cgroup "$mode" --timeout "$timeout" -- "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	p=$(sed -nE 's/.*\b([0-9]+) passed.*/\1/p' <<<"$line")
	f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
	if [ -z "$p" ]; then p=0 f=1; echo "check-vm: $name: no result line (exit $rc)"; fi
	[ "$rc" -eq 0 ] || [ "${f:-0}" -gt 0 ] || f=1
	total_p=$((total_p + p)) total_f=$((total_f + ${f:-0})) total_s=$((total_s + ${s:-0}))
	[ -z "${OV_RESULTS:-}" ] || echo "vm-$name-$mode $p ${f:-0} ${s:-0}" >>"$OV_RESULTS"
}

tests/vm/prepare.sh || { echo "check-vm: preparing the VM failed"; echo "0 passed, 1 failed"; exit 1; }
step smoke v1 tests/vm/smoke.sh
step device v1 tests/bats/run.sh tests/vm/device.bats
step smoke v2 tests/vm/smoke.sh
step device v2 tests/bats/run.sh -f "$v2_filter" tests/vm/device.bats
echo "check-vm: $total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]
