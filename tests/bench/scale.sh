#!/usr/bin/env bash
# make bench (after bench.sh): SCALE_N (default 1000) vTPM containers alive
# at once, runc containers running `sleep`; SCALE_BACKEND socket (default,
# the host) or device (vtpm_proxy chips: `make bench-vm-scale` runs it in
# the VM of tests/vm, the only place here with /dev/vtpmx).
#   - starts per second (`runc run -d`, one after another);
#   - every TPM answers tpm2_getrandom from the host (through its socket,
#     or its chip's /dev/tpmrmN); with the device backend also from inside
#     its container (`runc exec` of tpm2_getrandom on /dev/tpmrm0; the
#     host's /usr bind-mounted read-only into the busybox rootfs);
#   - per vTPM: processes (swtpm and, socket backend, its control relay),
#     their open fds (distinct values) and their idle private memory
#     (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup: what one
#     more vTPM costs, shared library pages aside), mean and max;
#   - per container, system-wide deltas from before the starts to all up:
#     MemFree (page cache dropped before each reading), MemAvailable,
#     kernel memory (SUnreclaim + KernelStack + PageTables), tasks
#     and open files; with these, how many containers the memory, pid_max,
#     threads-max and file-max would allow, and which runs out first
#     (device backend: also the kernel's TPM device numbers);
#   - then all deleted: swtpm processes, relays, run-dir slots and runc
#     containers left (0 each, or it exits non-zero); device backend: the
#     chips' nodes, sysfs entries, proxy fds, module references and device
#     cgroups back to their counts before.
# SCALE_FILL=1: start until the first start fails (the machine's real
# limit, e.g. a small VM's memory), then go on with the containers up: N
# becomes the number started, the failed start and the kernel's OOM lines
# are shown.
# SCALE_UIDS=1: swtpm_uid_range, a uid of its own for each swtpm.
# Prints markdown. Root only. Standalone: its own work dir, run dir on a
# tmpfs, settings and busybox rootfs. SCALE_N=100 for a quick run.
set -euo pipefail
me=scale
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
n=${SCALE_N:-1000}
backend=${SCALE_BACKEND:-socket}
bench_positive SCALE_N "$n"
bench_requires "$hook" "$cli" -- tpm2_getrandom
case $backend in
socket) ;;
device) [ -e /dev/vtpmx ] || modprobe tpm_vtpm_proxy 2>/dev/null ||
	die "SCALE_BACKEND=device: no /dev/vtpmx (make bench-vm-scale runs it in the VM)" ;;
*) die "SCALE_BACKEND must be socket or device, not '$backend'" ;;
esac

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
# Device backend: tpm2-tools in the container, from the host's /usr
# (read-only; /lib* are symlinks into it on merged-/usr Debian).
if [ "$backend" = device ]; then
	mkdir -p "$work/rootfs/usr" "$work/rootfs/etc"
	for d in lib lib32 lib64 libx32; do [ ! -L "/$d" ] || ln -s "$(readlink "/$d")" "$work/rootfs/$d"; done
	: >"$work/rootfs/etc/ld.so.cache"
	jq '.mounts += [{destination: "/usr", type: "bind", source: "/usr", options: ["rbind", "ro", "nosuid", "nodev"]},
		{destination: "/etc/ld.so.cache", type: "bind", source: "/etc/ld.so.cache", options: ["bind", "ro"]}]' \
		"$work/b/s/config.json" >"$work/b/s/c" && mv "$work/b/s/c" "$work/b/s/config.json"
fi

# The slot of container ID (the run dir's layout: a slot per container,
# directly under it or under containers/).
slot() { if [ -d "$work/run/containers/$1" ]; then echo "$work/run/containers/$1"; else echo "$work/run/$1"; fi; }
# host_tcti ID: how the host reaches container ID's TPM.
host_tcti() {
	if [ "$backend" = socket ]; then
		echo "swtpm:path=$(slot "$1")/private/tpm/tpm0.sock"
	else
		echo "device:/dev/tpmrm$(jq -r '.tpms[0].devnum' "$(slot "$1")/record.json" 2>/dev/null)"
	fi
}
# System-wide deltas per container (memory, tasks, files) mean something
# only on a machine doing nothing else: in the VM (OCI_VTPM_VM=1), or with
# SCALE_SYSTEM=1. There the page cache is dropped before each reading.
system=${SCALE_SYSTEM:-${OCI_VTPM_VM:-0}}
drop_caches() { [ "$system" != 1 ] || { sync && echo 3 >/proc/sys/vm/drop_caches; }; }
meminfo() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; } # KEY -> KiB
kernel_kib() { echo $(($(meminfo SUnreclaim) + $(meminfo KernelStack) + $(meminfo PageTables))); }
tasks() { cut -d' ' -f4 /proc/loadavg | cut -d/ -f2; } # threads, system-wide
open_files() { cut -f1 /proc/sys/fs/file-nr; }

fail=0
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_all=$(now_us)
every=$((n >= 1000 ? 100 : 50))
elapsed() { echo "$((($(now_us) - t_all) / 1000000)) s"; }
drop_caches
free0=$(meminfo MemFree) avail0=$(meminfo MemAvailable) kernel0=$(kernel_kib) tasks0=$(tasks) files0=$(open_files)
[ "$backend" = socket ] || read -r -a chips0 < <(chip_counts)
log "starting $n containers ($backend backend)"
t0=$(now_us)
fill=${SCALE_FILL:-0}
filled='' failed_id=''
for i in $(seq 1 "$n"); do
	"${R[@]}" run -d --bundle "$work/b/s" "s-$i" </dev/null >/dev/null 2>>"$work/runc.err" || fail=$((fail + 1))
	if [ "$fail" -gt 0 ] && [ "$fill" = 1 ]; then
		filled="start $i failed after $((i - 1)) up, $(elapsed): $(tail -n 1 "$work/runc.err")"
		failed_id=s-$i
		log "$filled"
		"${R[@]}" delete -f "s-$i" >/dev/null 2>&1 || true
		n=$((i - 1)) fail=0
		[ "$n" -gt 0 ] || die "not even one container started"
		break
	fi
	[ $((i % every)) -ne 0 ] || log "$i started, $fail failed, $(elapsed)"
done
start_rate=$(per_second "$n" "$t0")
log "asking every TPM from the host, $(elapsed)"
answered=0
for i in $(seq 1 "$n"); do
	TPM2TOOLS_TCTI=$(host_tcti "s-$i") timeout 20 tpm2_getrandom 8 >/dev/null 2>&1 &&
		answered=$((answered + 1))
done
# From inside each container, through its own /dev/tpmrm0.
inside=0
if [ "$backend" = device ]; then
	log "asking every TPM from inside its container, $(elapsed)"
	for i in $(seq 1 "$n"); do
		timeout 60 "${R[@]}" exec "s-$i" tpm2_getrandom -T device:/dev/tpmrm0 8 </dev/null >/dev/null 2>>"$work/exec.err" &&
			inside=$((inside + 1))
		[ $((i % every)) -ne 0 ] || log "$i asked inside, $((i - inside)) did not answer, $(elapsed)"
	done
fi
drop_caches
free1=$(meminfo MemFree) avail1=$(meminfo MemAvailable) kernel1=$(kernel_kib) tasks1=$(tasks) files1=$(open_files)
[ "$backend" = socket ] || read -r -a chips_up < <(chip_counts)
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
mem_total=$(meminfo MemTotal)
mem_avail=$avail1
# The container's own process (busybox sleep), a few of them.
init_kib=$(for i in 1 2 3; do
	p=$("${R[@]}" state "s-$i" 2>/dev/null | jq -r .pid) && [ "${p:-0}" -gt 0 ] && private_kib "$p" || true
done | mean_max | cut -d' ' -f1)
if [ "$backend" = device ]; then
	maxdev=$(for i in $(seq 1 "$n"); do jq -r '.tpms[0].devnum' "$(slot "s-$i")/record.json" 2>/dev/null || true; done | sort -n | tail -1)
fi
per_c() { awk -v d="$1" -v n="$n" 'BEGIN {printf "%.1f", d / n}'; } # DELTA -> per container
mem_pc=$(per_c $((free0 - free1)))
avail_pc=$(per_c $((avail0 - avail1)))
kern_pc=$(per_c $((kernel1 - kernel0)))
tasks_pc=$(per_c $((tasks1 - tasks0)))
files_pc=$(per_c $((files1 - files0)))
# How many containers each limit would allow: those up, plus what is left
# divided by what one more takes.
allow() { awk -v n="$n" -v left="$1" -v per="$2" 'BEGIN {if (per > 0) printf "%d", n + left / per; else print "-"}'; }
pid_max=$(cat /proc/sys/kernel/pid_max)
threads_max=$(cat /proc/sys/kernel/threads-max)
file_max=$(cut -f3 /proc/sys/fs/file-nr)
by_mem=$(allow "$avail1" "$mem_pc")
by_pid=$(allow $((pid_max < threads_max ? pid_max - tasks1 : threads_max - tasks1)) "$tasks_pc")
by_file=$(allow $((file_max - files1)) "$files_pc")
first=$(printf '%s memory\n%s pids\n%s files\n' "$by_mem" "$by_pid" "$by_file" | grep -v '^-' | sort -n | head -1 || true)
[ "$backend" = socket ] || first=$(printf '%s\n65536 TPM device numbers\n' "$first" | sort -n | head -1)
log "deleting $n containers, $(elapsed)"
t0=$(now_us)
for i in $(seq 1 "$n"); do
	"${R[@]}" delete -f "s-$i" >/dev/null 2>>"$work/runc.err" || fail=$((fail + 1))
	[ $((i % every)) -ne 0 ] || log "$i deleted, $fail failed, $(elapsed)"
done
stop_rate=$(per_second "$n" "$t0")
sleep 1
left_sw=$(swtpm_pids "$work/run/" | wc -l)
left_rl=$(scale_relays | wc -l)
left_slots=$(find "$work/run" -mindepth 1 -maxdepth 2 -name 's-*' | wc -l)
left_runc=$("${R[@]}" list -q | wc -l)
# (SCALE_FILL: but those of the start that failed)
warnings=$(grep -E ' (warning|error) ' "$work/hook.log" | grep -cvF "${failed_id:-/}: " || true)
leaks=$((left_sw + left_rl + left_slots + left_runc))
chip_rows=
if [ "$backend" = device ]; then
	read -r -a chips2 < <(chip_counts)
	mapfile -t names < <(chip_count_names)
	for k in "${!names[@]}"; do
		d=$((chips2[k] - chips0[k]))
		[ "$d" -le 0 ] || leaks=$((leaks + d))
		chip_rows+="| ${names[$k]}: before, all up, after | ${chips0[$k]}, ${chips_up[$k]}, ${chips2[$k]} | back to before | $(verdict [ "$d" -le 0 ]) |"$'\n'
	done
fi
wall=$(awk -v us=$(($(now_us) - t_all)) 'BEGIN {printf "%.0f", us / 1e6}')

if [ "$backend" = socket ]; then
	echo "### Scale: $n vTPM containers alive at once (host, socket backend)"
	echo
	echo "Machine: $("$repo/tests/bench/machine.sh"); load average before: $load_before. $wall s in all."
	relay_target="1; 1" nrelay_want=$n
else
	echo "### Scale$([ "${OCI_VTPM_VM:-}" != 1 ] || echo " in the VM"): $n vTPM containers alive at once (device backend, vtpm_proxy chips)"
	echo
	[ "${OCI_VTPM_VM:-}" != 1 ] || echo "Host: ${OCI_VTPM_BENCH_HOST:-not described (run it through tests/vm/bench.sh --scale)}."
	echo "Machine: $("$repo/tests/bench/machine.sh"); load average before: $load_before. $wall s in all."
	relay_target="1; 0" nrelay_want=0
fi
if [ -n "$filled" ]; then
	echo
	echo "Started until one failed (SCALE_FILL=1): $filled"
	oom=$(dmesg 2>/dev/null | grep -E 'invoked oom-killer|Out of memory|oom-kill:' | tail -n 3 || true)
	[ -z "$oom" ] || printf '\nThe kernel (last OOM lines):\n\n%s\n' "$(sed 's/^/    /' <<<"$oom")"
fi
echo
echo "| | measured | target | met |"
echo "|---|---:|---|---|"
echo "| containers started (\`runc run -d\`, one after another) | $((n - fail)) of $n, $start_rate per second | all | $(verdict [ "$fail" -eq 0 ]) |"
echo "| TPMs answering \`tpm2_getrandom\` from the host | $answered of $n | all | $(verdict [ "$answered" -eq "$n" ]) |"
[ "$backend" = socket ] ||
	echo "| TPMs answering \`tpm2_getrandom\` inside their container (\`runc exec\`, /dev/tpmrm0) | $inside of $n | all | $(verdict [ "$inside" -eq "$n" ]) |"
echo "| processes per vTPM: swtpm; control relay | $nswtpm; $nrelay for $n | $relay_target | $(verdict [ "$nswtpm" -eq "$n" ] && [ "$nrelay" -eq "$nrelay_want" ]) |"
echo "| threads per swtpm (distinct values) | $sw_thr | 1 | $(verdict [ "${sw_thr% }" = 1 ]) |"
if [ "$backend" = socket ]; then
	echo "| open fds per swtpm; per relay (distinct values) | ${sw_fds}; $rl_fds | bounded, all equal | $(verdict [ "$(wc -w <<<"$sw_fds")" -eq 1 ] && [ "$(wc -w <<<"$rl_fds")" -eq 1 ]) |"
	echo "| idle private memory per swtpm (mean, max) | $sw_avg KiB, $sw_max KiB | | |"
	echo "| idle private memory per relay (mean, max) | $rl_avg KiB, $rl_max KiB | | |"
	echo "| **idle private memory per vTPM** (swtpm + relay, mean) | **$per_vtpm KiB** | ≤ 1220 KiB (1.25 MB); ≤ 1280 KiB (1.25 MiB) | $(verdict [ "$per_vtpm" -le 1220 ]); $(verdict [ "$per_vtpm" -le 1280 ]) |"
else
	echo "| open fds per swtpm (distinct values) | $sw_fds | bounded, all equal | $(verdict [ "$(wc -w <<<"$sw_fds")" -eq 1 ]) |"
	echo "| **idle private memory per vTPM** (swtpm, mean, max) | **$sw_avg KiB**, $sw_max KiB | ≤ 1220 KiB (1.25 MB); ≤ 1280 KiB (1.25 MiB) | $(verdict [ "$sw_avg" -le 1220 ]); $(verdict [ "$sw_avg" -le 1280 ]) |"
	echo "| highest chip number (/dev/tpmN) | $maxdev | < 65536 | $(verdict [ "${maxdev:-0}" -lt 65536 ]) |"
fi
echo "| idle private memory of a container's own process (busybox sleep) | $init_kib KiB | | |"
if [ "$system" = 1 ]; then
	[ "$n" -ge 50 ] || echo "| (with fewer than 50 containers the system-wide rows below are noise) | | | |"
	echo "| per container, system-wide (all up minus before, / $n): MemFree; MemAvailable | $mem_pc KiB; $avail_pc KiB | | |"
	echo "| of it kernel memory (SUnreclaim + KernelStack + PageTables) | $kern_pc KiB | | |"
	echo "| tasks (threads); open files (file-nr) per container | $tasks_pc; $files_pc | | |"
	echo "| containers the memory would allow (those up + MemAvailable / MemFree per container) | $by_mem | | |"
	echo "| ... pid_max $pid_max, threads-max $threads_max would allow | $by_pid | | |"
	echo "| ... file-max $file_max would allow | $by_file | | |"
	[ "$backend" = socket ] || echo "| ... the kernel's TPM device numbers would allow (TPM_NUM_DEVICES) | 65536 | | |"
	echo "| **first limit** | **${first#* } (about ${first%% *})** | | |"
fi
echo "| memory available while up (of $((mem_total / 1024)) MiB) | $((mem_avail / 1024)) MiB | | |"
echo "| deletes per second (\`runc delete -f\`) | $stop_rate | | |"
echo "| left after: swtpm, relays, run-dir slots, runc containers | $left_sw, $left_rl, $left_slots, $left_runc | 0 | $(verdict [ $((left_sw + left_rl + left_slots + left_runc)) -eq 0 ]) |"
printf '%s' "$chip_rows"
echo "| warnings and errors in the hook log | $warnings | 0 | $(verdict [ "$warnings" -eq 0 ]) |"
echo
echo "scale: $n containers, $fail failed, $((n - answered)) did not answer$([ "$backend" = socket ] || echo ", $((n - inside)) not from inside"), $leaks left"
for f in runc.err exec.err; do
	if [ -s "$work/$f" ]; then
		log "$f (last lines):"
		tail -n 5 "$work/$f" >&2
	fi
done
bad_inside=0
[ "$backend" = socket ] || bad_inside=$((n - inside))
[ $((fail + n - answered + bad_inside + leaks + warnings)) -eq 0 ]
