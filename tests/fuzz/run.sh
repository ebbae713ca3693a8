#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 20). Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-20}
out=build/fuzz
mkdir -p "$out"
# The relay's and swtpm's seccomp filters are headers the build generates
# (Makefile, relay/gen-bpf.c): `make all` or `make fuzz` makes them first.
gen=${OCI_VTPM_BUILD:-build}/gen
for h in ctrl_relay_bpf.h sandbox_bpf.h; do
	[ -f "$gen/$h" ] || { echo "fuzz: $gen/$h is missing: run make first" >&2; exit 2; }
done
flags="-std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -I$gen $(pkg-config --cflags json-c)"
libs="$(pkg-config --libs json-c libcrypto libseccomp)"
passed=0 failed=0
# The library once for all targets, on every core (OV_JOBS, default nproc):
# the same flags, coverage instrumentation included (fuzzer-no-link; the
# targets' link adds libFuzzer's main).
mkdir -p "$out/lib"
rm -f "$out"/lib/*.o
# shellcheck disable=SC2016 # $1 and $2 are the inner sh's
if ! printf '%s\n' lib/*.c | xargs -P "${OV_JOBS:-$(nproc)}" -I{} sh -c \
	'clang '"${flags/fuzzer,/fuzzer-no-link,}"' -c -o "$1/lib/$(basename "$2" .c).o" "$2"' sh "$out" {} \
	2>"$out/lib.build.log"; then
	echo "not ok - the library does not build for fuzzing"; sed 's/^/# /' "$out/lib.build.log" | tail -20
	echo "fuzz: 0 passed, 1 failed"
	exit 1
fi
for src in tests/fuzz/fuzz-*.c; do
	name=$(basename "$src" .c)
	corpus=tests/fuzz/corpus/${name#fuzz-}
	# shellcheck disable=SC2086
	if ! clang $flags -o "$out/$name" "$src" "$out"/lib/*.o $libs 2>"$out/$name.build.log"; then
		echo "not ok - $name does not build"; sed 's/^/# /' "$out/$name.build.log" | tail -20
		failed=$((failed + 1)); continue
	fi
	work=$(mktemp -d)
	cp -r "$corpus"/. "$work"/ 2>/dev/null
	if "$out/$name" -max_total_time="$secs" -max_len=65536 -timeout=10 "$work" >"$out/$name.log" 2>&1; then
		echo "ok - $name ($(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$out/$name.log") runs in ${secs}s)"
		passed=$((passed + 1))
	else
		echo "not ok - $name"; tail -30 "$out/$name.log" | sed 's/^/# /'
		failed=$((failed + 1))
	fi
	rm -rf "$work"
done
rm -rf /tmp/ov-fuzz-archive.*
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
