# shellcheck shell=bash disable=SC2034 # its variables are for the scripts that source it
# What tests/bench/bench.sh, scale.sh and warm.sh share, sourced after
# `set -euo pipefail` and `me=NAME` (the prefix of their messages):
#   paths       repo, build (OCI_VTPM_BUILD), hook, cli, shim
#   checks      die, log, bench_positive, bench_requires
#   work dir    bench_workdir: work, R (runc on its own root), the run dir
#               on a tmpfs, bench_cleanup on EXIT
#   settings    bench_settings: settings.json, OCI_VTPM_CONFIG, `init`
#   bundles     bench_rootfs (busybox, base.json, bare.json), hooks,
#               mkbundle, sleeper, $on
#   figures     now_us, per_second, stats, median, ratio, mean_max,
#               private_kib, count_fds, swtpm_pids, verdict, ge, le
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${OCI_VTPM_BUILD:-$repo/build}
hook=$build/oci-vtpm-hook
cli=$build/oci-vtpm
shim=$build/oci-vtpm-runtime
me=${me:-bench}
die() {
	echo "$me: $*" >&2
	exit 1
}
log() { echo "$me: $*" >&2; }

# bench_positive VAR VALUE: VALUE is a positive number, or die naming VAR.
bench_positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive number, not '$2'"; }

# bench_requires FILE... [-- TOOL...]: root, each FILE built, runc, jq,
# busybox and each TOOL installed.
bench_requires() {
	local t
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		[ -x "$1" ] || die "$1 not built (make; or set OCI_VTPM_BUILD)"
		shift
	done
	[ $# -eq 0 ] || shift
	for t in runc jq busybox "$@"; do
		command -v "$t" >/dev/null || die "$t not installed (scripts/deps.sh test)"
	done
}

# bench_workdir SIZE: work=/tmp/oci-vtpm-$me.XXXXXX (0755), R (runc with
# its root in it), $work/run on a tmpfs of SIZE, as /run is (unless
# run_tmpfs=0: on the disk of /tmp); bench_cleanup on EXIT.
bench_workdir() {
	work=$(mktemp -d "/tmp/oci-vtpm-$me.XXXXXX")
	chmod 0755 "$work"
	R=(runc --root "$work/runc")
	run_tmpfs=${run_tmpfs:-1}
	mkdir -p "$work/run"
	[ "$run_tmpfs" = 0 ] || mount -t tmpfs -o "mode=0711,size=$1" "oci-vtpm-$me" "$work/run"
	trap bench_cleanup EXIT
}
# bench_cleanup: every container deleted, the swtpm no delete stops (warm
# vTPMs, an aborted run's) killed, the work dir removed.
bench_cleanup() {
	local id
	for id in $("${R[@]}" list -q 2>/dev/null); do "${R[@]}" delete -f "$id" >/dev/null 2>&1 || true; done
	for id in $(swtpm_pids "$work/run/"); do kill "$id" 2>/dev/null || true; done
	[ "$run_tmpfs" = 0 ] || umount -l "$work/run" 2>/dev/null || true
	rm -rf "$work"
}

# bench_settings [JQ-FILTER]: $work/settings.json (socket backend unless
# $backend says otherwise; a host CA; debug log; the filter may use $w, the
# work dir), made OCI_VTPM_CONFIG, and `oci-vtpm init` under it.
# shellcheck disable=SC2120 # the filter is optional
bench_settings() {
	jq -n --arg w "$work" --arg b "${backend:-socket}" '{
		run_dir: ($w + "/run"), state_dir: ($w + "/state"), backend: $b,
		master_key: ($w + "/keys/master.key"), ca_key: ($w + "/ca/ca.key"),
		ca_cert: ($w + "/ca/ca.pem"), log_file: ($w + "/hook.log"), log_level: "debug"}'" | ${1:-.}" \
		>"$work/settings.json"
	export OCI_VTPM_CONFIG=$work/settings.json
	"$cli" init >/dev/null
}

# bench_rootfs: busybox (true, sleep) in $work/rootfs; `runc spec` as
# $work/base.json; $work/bare.json runs /bin/true in that rootfs.
bench_rootfs() {
	mkdir -p "$work/rootfs/bin" "$work/b"
	cp "$(command -v busybox)" "$work/rootfs/bin/"
	ln -s busybox "$work/rootfs/bin/true"
	ln -s busybox "$work/rootfs/bin/sleep"
	(cd "$work" && runc spec && mv config.json base.json)
	jq --arg r "$work/rootfs" '.root.path = $r | .process.terminal = false | .process.args = ["/bin/true"]' \
		"$work/base.json" >"$work/bare.json"
}
hooks() { # SETTINGS: the hooks of config.json, the hook run with SETTINGS
	jq -n --arg h "$hook" --arg c "$1" '{
		createRuntime: [{path: $h, args: ["oci-vtpm-hook", "createRuntime"], env: ["OCI_VTPM_CONFIG=" + $c]}],
		poststop: [{path: $h, args: ["oci-vtpm-hook", "poststop"], env: ["OCI_VTPM_CONFIG=" + $c]}]}'
}
mkbundle() { # NAME ANNOTATIONS-JSON [SETTINGS]: $work/b/NAME, bare.json with the hooks
	mkdir -p "$work/b/$1"
	jq --argjson h "$(hooks "${3:-$work/settings.json}")" --argjson a "$2" '.hooks = $h | .annotations = $a' \
		"$work/bare.json" >"$work/b/$1/config.json"
}
sleeper() { # NAME [SECONDS]: the bundle's process sleeps (600 s) instead
	jq --arg s "${2:-600}" '.process.args = ["/bin/sleep", $s]' "$work/b/$1/config.json" >"$work/b/$1/c" &&
		mv "$work/b/$1/c" "$work/b/$1/config.json"
}
on='"io.oci-vtpm.enable": "true"'

now_us() { echo "${EPOCHREALTIME/./}"; }
per_second() { awk -v n="$1" -v us=$(($(now_us) - $2)) 'BEGIN {printf "%.1f", n / (us / 1e6)}'; } # N T0
stats() { # file of microseconds -> "p50 p95 max p99" in ms
	sort -n "$1" | awk '{a[NR]=$1} END {
		if (NR == 0) { print "- - - -"; exit }
		p50=a[int((NR+1)*0.50) > 0 ? int((NR+1)*0.50) : 1]; p95=a[int(NR*0.95) > 0 ? int(NR*0.95) : 1];
		i99=int(NR*0.99+0.999); if (i99 < 1) i99=1; if (i99 > NR) i99=NR;
		printf "%.1f %.1f %.1f %.1f\n", p50/1000, p95/1000, a[NR]/1000, a[i99]/1000}'
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR) printf "%.1f", a[int((NR+1)/2)]; else printf "-"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else printf "-"}'; }
mean_max() { awk '{s+=$1; if ($1>m) m=$1} END {if (NR) printf "%.0f %d\n", s/NR, m; else print "0 0"}'; } # numbers on stdin
private_kib() { awk '/^Private_(Clean|Dirty):/ {s+=$2} END {print s+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; } # PID
count_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; } # PID
# swtpm_pids PREFIX: swtpm processes running in a directory whose path
# starts with PREFIX (a container's swtpm runs in its run directory).
swtpm_pids() {
	local p cwd
	for p in $(pgrep -x swtpm); do
		cwd=$(readlink "/proc/$p/cwd" 2>/dev/null) || continue
		[[ $cwd != "$1"* ]] || echo "$p"
	done
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
verdict() { if "$@"; then echo yes; else echo "**no**"; fi; }
# bench_runc_errors: the last lines runc wrote to $work/runc.err, if any.
bench_runc_errors() {
	if [ -s "$work/runc.err" ]; then
		log "runc stderr (last lines):"
		tail -n 5 "$work/runc.err" >&2
	fi
}
