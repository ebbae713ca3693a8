#!/usr/bin/env bash
# Run tests of a VM bats file N times in a row inside one VM boot, to show
# that they do not flake (issue: a TPM 1.2 start timed out under load). Stops
# at the first failing round. Ends with "N passed, N failed".
#
#   tests/vm/run.sh --cgroup v1 -- tests/vm/repeat.sh 50 'TPM 1.2' tests/vm/device.bats
set -u
[ $# -eq 3 ] || { echo "usage: tests/vm/repeat.sh N FILTER FILE.bats" >&2; exit 2; }
n=$1 filter=$2 file=$3
cd "$(dirname "$0")/../.."
p=0 f=0
for i in $(seq "$n"); do
	start=$SECONDS
	out=$(tests/bats/run.sh -f "$filter" "$file" 2>&1)
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n 1)
	rp=$(sed -nE 's/^([0-9]+) passed.*/\1/p' <<<"$line")
	rf=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	p=$((p + ${rp:-0})) f=$((f + ${rf:-1}))
	echo "round $i: ${line:-no result} in $((SECONDS - start)) s (slowdown $(cat /run/oci-vtpm-vm-slowdown 2>/dev/null))"
	if [ "${rf:-1}" -ne 0 ] || [ "${rp:-0}" -eq 0 ]; then
		echo "$out"
		break
	fi
done
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
