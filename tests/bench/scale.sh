#!/usr/bin/env bash
# make bench (after bench.sh): SCALE_N (default 1000) vTPM containers alive
# at once: host, socket backend, runc containers running `sleep`.
#   - starts per second (`runc run -d`, one after another);
#   - every TPM answers: tpm2_getrandom through each container's socket,
#     from the host;
#   - per vTPM: processes (swtpm and its control relay), their open fds
#     (distinct values) and their idle private memory
#     (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup: what one
#     more vTPM costs, shared library pages aside), mean and max;
#   - then all deleted: swtpm processes, relays, run-dir slots and runc
#     containers left (0 each, or it exits non-zero).
# SCALE_UIDS=1: swtpm_uid_range, a uid of its own for each swtpm.
# Prints markdown. Root only. Standalone: its own work dir, run dir on a
# tmpfs, settings and busybox rootfs. SCALE_N=100 for a quick run.
set -euo pipefail
me=scale
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
n=${SCALE_N:-1000}
bench_positive SCALE_N "$n"
bench_requires "$hook" "$cli" -- tpm2_getrandom

bench_workdir 1g
# scale_relays: control relays whose swtpm (the pidfd at its fd 4) is one
# of ours, or gone.
scale_relays() {
	local p sw cwd
	for p in $(pgrep -x ov-ctrl-relay); do
		[ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] || continue
		sw=$(awk '$1 == "Pid:" { print $2 }' "/proc/$p/fdinfo/4" 2>/dev/null) || continue
		if [ -z "$sw" ] || [ "$sw" -le 0 ] || ! cwd=$(readlink "/proc/$sw/cwd" 2>/dev/null); then
			echo "$p"
		elif [[ $cwd == "$work/run/"* ]]; then
			echo "$p"
		fi
	done
}
# Above the 1024 default of a login shell where the hard limit allows:
# runc and the hook hold a few fds per container while they run, none after.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# SCALE_UIDS=1: one uid per vTPM (swtpm_uid_range), as harden.bats does.
uids=
[ "${SCALE_UIDS:-0}" != 1 ] || uids=" | .swtpm_uid_range = {first: 300000, count: $n}"
bench_settings ".log_level = \"info\" | .max_vtpms = 0$uids"
bench_rootfs
mkbundle s "{$on}"
sleeper s 3600

# The slot of container ID (the run dir's layout: a slot per container,
# directly under it or under containers/).
slot() { if [ -d "$work/run/containers/$1" ]; then echo "$work/run/containers/$1"; else echo "$work/run/$1"; fi; }
fail=0
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_all=$(now_us)
log "starting $n containers"
t0=$(now_us)
for i in $(seq 1 "$n"); do
	"${R[@]}" run -d --bundle "$work/b/s" "s-$i" </dev/null >/dev/null 2>>"$work/runc.err" || fail=$((fail + 1))
	[ $((i % 100)) -ne 0 ] || log "$i started, $fail failed"
done
start_rate=$(per_second "$n" "$t0")
log "asking every TPM"
answered=0
for i in $(seq 1 "$n"); do
	TPM2TOOLS_TCTI="swtpm:path=$(slot "s-$i")/private/tpm/tpm0.sock" timeout 20 tpm2_getrandom 8 >/dev/null 2>&1 &&
		answered=$((answered + 1))
done
swtpms=$(swtpm_pids "$work/run/")
relays=$(scale_relays)
nswtpm=$(wc -w <<<"$swtpms")
nrelay=$(wc -w <<<"$relays")
read -r sw_avg sw_max < <(for p in $swtpms; do private_kib "$p"; done | mean_max)
read -r rl_avg rl_max < <(for p in $relays; do private_kib "$p"; done | mean_max)
sw_fds=$(for p in $swtpms; do count_fds "$p"; done | sort -n | uniq | tr '\n' ' ')
rl_fds=$(for p in $relays; do count_fds "$p"; done | sort -n | uniq | tr '\n' ' ')
sw_thr=$(for p in $swtpms; do ls "/proc/$p/task" | wc -l; done | sort -n | uniq | tr '\n' ' ')
per_vtpm=$((sw_avg + rl_avg))
# SCALE_SMAPS=1: where one swtpm's and one relay's private memory is, per
# mapping (stderr).
if [ "${SCALE_SMAPS:-0}" = 1 ]; then
	for p in $(head -n1 <<<"$swtpms") $(head -n1 <<<"$relays"); do
		log "private KiB by mapping of $(cat "/proc/$p/comm") ($p):"
		awk '/^[0-9a-f]+-[0-9a-f]+ / {m=$6 ? $6 : "[anon]"} /^Private_(Clean|Dirty):/ {s[m]+=$2}
			END {for (k in s) if (s[k]) printf "  %6d %s\n", s[k], k}' "/proc/$p/smaps" | sort -rn >&2
	done
fi
mem_total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
mem_avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
log "deleting $n containers"
t0=$(now_us)
for i in $(seq 1 "$n"); do
	"${R[@]}" delete -f "s-$i" >/dev/null 2>>"$work/runc.err" || fail=$((fail + 1))
	[ $((i % 100)) -ne 0 ] || log "$i deleted, $fail failed"
done
stop_rate=$(per_second "$n" "$t0")
sleep 1
left_sw=$(swtpm_pids "$work/run/" | wc -l)
left_rl=$(scale_relays | wc -l)
left_slots=$(find "$work/run" -mindepth 1 -maxdepth 2 -name 's-*' | wc -l)
left_runc=$("${R[@]}" list -q | wc -l)
warnings=$(grep -cE ' (warning|error) ' "$work/hook.log" || true)
leaks=$((left_sw + left_rl + left_slots + left_runc))
wall=$(awk -v us=$(($(now_us) - t_all)) 'BEGIN {printf "%.0f", us / 1e6}')

echo "### Scale: $n vTPM containers alive at once (host, socket backend)"
echo
echo "Machine: $("$repo/tests/bench/machine.sh"); load average before: $load_before. $wall s in all."
echo
echo "| | measured | target | met |"
echo "|---|---:|---|---|"
echo "| containers started (\`runc run -d\`, one after another) | $((n - fail)) of $n, $start_rate per second | all | $(verdict [ "$fail" -eq 0 ]) |"
echo "| TPMs answering \`tpm2_getrandom\` from the host | $answered of $n | all | $(verdict [ "$answered" -eq "$n" ]) |"
echo "| processes per vTPM: swtpm; control relay | $nswtpm; $nrelay for $n | 1; 1 | $(verdict [ "$nswtpm" -eq "$n" ] && [ "$nrelay" -eq "$n" ]) |"
echo "| threads per swtpm (distinct values) | $sw_thr | 1 | $(verdict [ "${sw_thr% }" = 1 ]) |"
echo "| open fds per swtpm; per relay (distinct values) | ${sw_fds}; $rl_fds | bounded, all equal | $(verdict [ "$(wc -w <<<"$sw_fds")" -eq 1 ] && [ "$(wc -w <<<"$rl_fds")" -eq 1 ]) |"
echo "| idle private memory per swtpm (mean, max) | $sw_avg KiB, $sw_max KiB | | |"
echo "| idle private memory per relay (mean, max) | $rl_avg KiB, $rl_max KiB | | |"
echo "| **idle private memory per vTPM** (swtpm + relay, mean) | **$per_vtpm KiB** | ≤ 1220 KiB (1.25 MB); ≤ 1280 KiB (1.25 MiB) | $(verdict [ "$per_vtpm" -le 1220 ]); $(verdict [ "$per_vtpm" -le 1280 ]) |"
echo "| memory available while up (of $((mem_total / 1024)) MiB) | $((mem_avail / 1024)) MiB | | |"
echo "| deletes per second (\`runc delete -f\`) | $stop_rate | | |"
echo "| left after: swtpm, relays, run-dir slots, runc containers | $left_sw, $left_rl, $left_slots, $left_runc | 0 | $(verdict [ "$leaks" -eq 0 ]) |"
echo "| warnings and errors in the hook log | $warnings | 0 | $(verdict [ "$warnings" -eq 0 ]) |"
echo
echo "scale: $n containers, $fail failed, $((n - answered)) did not answer, $leaks left"
bench_runc_errors
[ $((fail + n - answered + leaks + warnings)) -eq 0 ]
