#!/usr/bin/env bash
# Runs the C unit tests given as arguments; prints "N passed, N failed",
# counting each test program once (its checks are counted in its ok line).
set -u
passed=0 failed=0
for t in "$@"; do
	if out=$(timeout 60 "$t" 2>&1); then rc=0; else rc=$?; fi
	line=$(printf '%s\n' "$out" | tail -n 1)
	p=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$line")
	f=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$line")
	if [ -z "$p" ]; then
		echo "not ok - unit $(basename "$t") crashed (exit $rc)"
		printf '%s\n' "$out" | sed 's/^/# /'
		failed=$((failed + 1))
		continue
	fi
	[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
	if [ "$f" -eq 0 ]; then
		echo "ok - unit $(basename "$t") ($p checks)"
		passed=$((passed + 1))
	else
		echo "not ok - unit $(basename "$t") ($f of $((p + f)) checks failed)"
		printf '%s\n' "$out" | sed 's/^/# /'
		failed=$((failed + 1))
	fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
