#!/usr/bin/env bash
# make bench (after bench.sh): warm vTPMs of every kind against their cold
# start and bare runc, in the same run. WARM_N (default 30) runs each of
# `runc run` of a busybox `true`, interleaved in a new random order every
# round:
#   bare         no hook
#   named        a named vTPM, restored from its archive, archived at poststop
#   warm-named   the same name, its state handed to a warm swtpm
#                (warm_size: 2 WARM_N+5 started before, outside the timed runs)
#   warm         an ephemeral vTPM taken warm, for comparison
# p50/p95/max, the p50 ratio to bare, and the hook's own timing lines
# (start, stop) per variant. Host, socket backend; the run dir on a tmpfs,
# the state dir on the disk. Prints markdown; exits non-zero when a run
# failed or a warm-named run did not take a warm vTPM.
set -euo pipefail
me=warm
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
n=${WARM_N:-30}
bench_positive WARM_N "$n"
bench_requires "$hook" "$cli"

bench_workdir 256m
bench_settings
jq --argjson n $((2 * n + 5)) '.warm_size = $n' "$work/settings.json" >"$work/settings-warm.json"
bench_rootfs
mkdir -p "$work/b/bare"
cp "$work/bare.json" "$work/b/bare/config.json"
mkbundle named "{$on, \"io.oci-vtpm.name\": \"bench\"}" "$work/settings.json"
mkbundle warm-named "{$on, \"io.oci-vtpm.name\": \"bench\"}" "$work/settings-warm.json"
mkbundle warm "{$on}" "$work/settings-warm.json"
variants=(bare named warm-named warm)
declare -A label=([bare]="bare runc" [named]="named vTPM, cold (restored, swtpm started)"
	[warm-named]="named vTPM, warm (its state handed to a running swtpm)" [warm]="ephemeral vTPM, warm")

# The name's first generation, and the warm vTPMs, outside the timed runs.
"${R[@]}" run --bundle "$work/b/named" first </dev/null >/dev/null
OCI_VTPM_CONFIG=$work/settings-warm.json "$cli" pool fill 0 >/dev/null
machine=$("$repo/tests/bench/machine.sh")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
fails=0
for r in $(seq 1 "$n"); do
	for v in $(printf '%s\n' "${variants[@]}" | shuf); do
		id=w-$v-$r
		t0=$(now_us)
		if "${R[@]}" run --bundle "$work/b/$v" "$id" </dev/null >/dev/null 2>>"$work/runc.err"; then
			echo $(($(now_us) - t0)) >>"$work/$v.us"
		else
			fails=$((fails + 1))
			"${R[@]}" delete -f "$id" >/dev/null 2>&1 || true
		fi
	done
done
took=$(grep -c 'w-warm-named-[0-9]*: started 1 TPM 2.0 vTPM (socket backend), warm, name bench' "$work/hook.log" || true)
gens=$(grep -c 'w-warm-named-[0-9]*: vTPM bench archived as generation' "$work/hook.log" || true)

echo "### Warm named vTPMs: \`runc run\` of busybox \`true\`, $n runs each, interleaved"
echo
echo "Machine: $machine; load average before: $load_before; host, socket backend."
echo
echo "| variant | p50 ms | p95 ms | max ms | p50 vs bare | hook start (median) | hook stop (median) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
read -r b50 _ < <(stats "$work/bare.us")
for v in "${variants[@]}"; do
	read -r p50 p95 max _ < <(stats "$work/$v.us")
	start=$({ grep -E "w-$v-[0-9]+: timing: setup" "$work/hook.log" || true; } | sed -E 's/.*start total ([0-9.]+) ms.*/\1/' | median)
	stop=$({ grep -E "w-$v-[0-9]+: timing: swtpm stop" "$work/hook.log" || true; } | sed -E 's/.*stop total ([0-9.]+) ms.*/\1/' | median)
	ratio=$(awk -v a="$p50" -v b="$b50" 'BEGIN {printf "%.2fx (%+.1f ms)", a / b, a - b}')
	[ "$v" != bare ] || start=- stop=-
	echo "| ${label[$v]} | $p50 | $p95 | $max | $ratio | $start | $stop |"
done
echo
echo "Warm-named runs that took a warm vTPM: $took of $n; archived at poststop: $gens of $n. Failed runs: $fails."
[ "$fails" -eq 0 ] && [ "$took" -eq "$n" ] && [ "$gens" -eq "$n" ]
