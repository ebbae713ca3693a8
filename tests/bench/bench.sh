#!/usr/bin/env bash
# make bench: what a vTPM costs at container start and stop, against bare
# runc measured in the same run. N runs each (BENCH_N, default 30) of
# `runc run` of a busybox `true`:
#   bare            no hook
#   hook, disabled  the hook configured, no annotation (the cost to everyone)
#   ephemeral       a fresh vTPM, destroyed at poststop
#   named           restored from its archive and archived again at poststop
# and per-phase times of the hook itself from its own log. Prints a
# markdown table: p50, p95, max (ms) and the p50 ratio to bare.
# Also: private memory (Pss) of one idle swtpm.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
hook=$repo/build/oci-vtpm-hook
cli=$repo/build/oci-vtpm
n=${BENCH_N:-30}
[ "$(id -u)" -eq 0 ] || { echo "bench: must run as root" >&2; exit 1; }

work=$(mktemp -d /tmp/oci-vtpm-bench.XXXXXX)
chmod 0755 "$work"
trap 'runc --root "$work/runc" list -q 2>/dev/null | xargs -r -n1 runc --root "$work/runc" delete -f >/dev/null 2>&1; rm -rf "$work"' EXIT
backend=socket
if [ -e /dev/vtpmx ] || modprobe tpm_vtpm_proxy 2>/dev/null; then backend=device; fi
cat >"$work/settings.json" <<JSON
{"run_dir": "$work/run", "state_dir": "$work/state", "backend": "$backend",
 "master_key": "$work/master.key", "log_file": "$work/hook.log", "log_level": "debug"}
JSON
export OCI_VTPM_CONFIG=$work/settings.json
"$cli" init >/dev/null

mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/"
ln -s busybox "$work/rootfs/bin/true"
ln -s busybox "$work/rootfs/bin/sleep"
(cd "$work" && runc spec && mv config.json base.json)
jq --arg r "$work/rootfs" '.root.path = $r | .process.terminal = false | .process.args = ["/bin/true"]' \
	"$work/base.json" >"$work/bare.json"
hooks() {
	jq -n --arg h "$hook" --arg c "$work/settings.json" '{
		createRuntime: [{path: $h, args: ["oci-vtpm-hook", "createRuntime"], env: ["OCI_VTPM_CONFIG=" + $c]}],
		poststop: [{path: $h, args: ["oci-vtpm-hook", "poststop"], env: ["OCI_VTPM_CONFIG=" + $c]}]}'
}
mkbundle() { # name annotations-json
	mkdir -p "$work/b/$1"
	jq --argjson h "$(hooks)" --argjson a "$2" '.hooks = $h | .annotations = $a' \
		"$work/bare.json" >"$work/b/$1/config.json"
}
mkdir -p "$work/b/bare"
cp "$work/bare.json" "$work/b/bare/config.json"
mkbundle disabled '{}'
mkbundle ephemeral '{"io.oci-vtpm.enable": "true"}'
mkbundle named '{"io.oci-vtpm.enable": "true", "io.oci-vtpm.name": "bench"}'

# One timed run: ms of `runc run` (create, start, wait, poststop, delete).
run_once() {
	local b=$1 id=bench-$1-$2 t0 t1
	t0=$(date +%s%N)
	runc --root "$work/runc" run --bundle "$work/b/$b" "$id" </dev/null >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}
stats() { # file of microseconds -> "p50 p95 max" in ms
	sort -n "$1" | awk '{a[NR]=$1} END {
		p50=a[int((NR+1)*0.50)]; p95=a[int(NR*0.95) > 0 ? int(NR*0.95) : 1]; max=a[NR];
		printf "%.1f %.1f %.1f\n", p50/1000, p95/1000, max/1000}'
}

run_once named warmup >/dev/null # creates vTPM "bench" and its first generation
: >"$work/hook.log"
for b in bare disabled ephemeral named; do : >"$work/$b.us"; done
# Interleaved, so drift on the machine hits every variant alike.
for i in $(seq 1 "$n"); do
	for b in bare disabled ephemeral named; do run_once "$b" "$i" >>"$work/$b.us"; done
done

read -r bare_p50 _ _ < <(stats "$work/bare.us")
echo "## oci-vtpm bench: $n runs each, $backend backend, $(nproc) cores, $(uname -r)"
echo
echo "| runc run of busybox true | p50 ms | p95 ms | max ms | p50 vs bare |"
echo "|---|---:|---:|---:|---:|"
for b in bare disabled ephemeral named; do
	read -r p50 p95 max < <(stats "$work/$b.us")
	printf "| %s | %s | %s | %s | %s |\n" "$b" "$p50" "$p95" "$max" \
		"$(awk -v a="$p50" -v b="$bare_p50" 'BEGIN {printf "%.2fx (+%.1f ms)", a/b, a-b}')"
done

# The swtpm of one idle vTPM: its private memory.
mkbundle idle '{"io.oci-vtpm.enable": "true"}'
jq '.process.args = ["/bin/sleep", "30"]' "$work/b/idle/config.json" >"$work/b/idle/c" &&
	mv "$work/b/idle/c" "$work/b/idle/config.json"
runc --root "$work/runc" run -d --bundle "$work/b/idle" bench-idle </dev/null >/dev/null 2>&1
pid=$(pgrep -f "$work/run/bench-idle/state-0" | head -1)
pss=$(awk '/^Pss:/ {s+=$2} END {print s}' "/proc/$pid/smaps_rollup")
priv=$(awk '/^Private_(Clean|Dirty):/ {s+=$2} END {print s}' "/proc/$pid/smaps_rollup")
runc --root "$work/runc" delete -f bench-idle >/dev/null 2>&1
echo
echo "Idle vTPM (one swtpm): Pss $pss KiB, private $priv KiB."
echo
echo "bench: $((4 * n)) runs, 0 failed"
