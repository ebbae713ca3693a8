#!/usr/bin/env bash
# make check: the C unit tests and the bats suite on this kernel. Each suite
# prints "N passed, N failed[, N skipped]" last; this adds them up. When
# OV_RESULTS names a file, each suite's counts are appended to it (.ci/run
# sums make check and make check-vm that way). Each stage ends with a line
# "time: STAGE N s" (and the whole with "time: check N s"), so a CI log says
# where the time went.
set -u
cd "$(dirname "$0")/.."
build=${OCI_VTPM_BUILD:-build}
# The ASan build runs on every core (OV_JOBS, default nproc). A `make -jN
# check` above does not hand its jobserver to this script: its traces in
# MAKEFLAGS go, so the sub-makes neither fall back to -j1 nor warn.
jobs=${OV_JOBS:-$(nproc)}
MAKEFLAGS=$(sed -E 's/(^| )(-j[0-9]*|--jobserver-(auth|fds)=[^ ]*)//g' <<<"${MAKEFLAGS:-}")
export MAKEFLAGS
total_p=0 total_f=0 total_s=0

count() { # suite-name output-file exit-code
	local line p f s
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1)
	p=$(sed -nE 's/.*\b([0-9]+) passed.*/\1/p' <<<"$line")
	f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
	if [ -z "$p" ]; then p=0 f=1; echo "$1: no result line (exit $3)"; fi
	[ "$3" -eq 0 ] || [ "${f:-0}" -gt 0 ] || f=1
	total_p=$((total_p + p)) total_f=$((total_f + ${f:-0})) total_s=$((total_s + ${s:-0}))
	[ -z "${OV_RESULTS:-}" ] || echo "$1 $p ${f:-0} ${s:-0}" >>"$OV_RESULTS"
}

# stage NAME: the wall time since the last stage (or the start), in seconds.
start=$SECONDS last=$SECONDS
stage() {
	echo "time: $1 $((SECONDS - last)) s"
	last=$SECONDS
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
make -s lint 2>&1 | tee "$out"
count lint "$out" "${PIPESTATUS[0]}"
stage lint
tests/unit/run.sh "$build"/tests/test-* 2>&1 | tee "$out"
count unit "$out" "${PIPESTATUS[0]}"
stage unit
make -s -j"$jobs" check-asan 2>&1 | sed 's/^unit:/asan:/' | tee "$out"
count asan "$out" "${PIPESTATUS[0]}"
stage asan
FUZZ_SECONDS=${FUZZ_SECONDS:-10} OCI_VTPM_BUILD=$build tests/fuzz/run.sh 2>&1 | tee "$out"
count fuzz "$out" "${PIPESTATUS[0]}"
stage fuzz
tests/bats/run.sh 2>&1 | tee "$out"
count bats "$out" "${PIPESTATUS[0]}"
stage bats

echo "time: check $((SECONDS - start)) s"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]
