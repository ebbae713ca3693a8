#!/usr/bin/env bash
# make bench-vm: the soak of tests/bench/bench.sh (section 4: start/stop
# cycles, then leak counts) with the DEVICE backend, inside the VM of
# tests/vm/run.sh (cgroup v1: the hook allows the chip in the container's
# devices cgroup). This host's kernel has no vtpm_proxy; Debian's kernel
# under qemu TCG has. Besides the socket soak's counts it counts the host
# side of every chip: /dev/tpmN and /dev/tpmrmN, /sys/class/tpm, open proxy
# fds, tpm_vtpm_proxy module references, device cgroups.
#
# With --scale (make bench-vm-scale) it runs tests/bench/scale.sh instead
# with SCALE_BACKEND=device: BENCH_VM_SCALE containers with a chip each
# alive at once, every chip answering from the host and from inside its
# container, memory, tasks and files per container and the limit each
# would set, then all stopped and the chips' counts back to before.
#
#   tests/vm/bench.sh [--if-available] [--scale]
#
# --if-available  when qemu or the cached kernel is missing, say so in one
#                 markdown line and exit 0 instead of failing (make bench)
# Env: BENCH_VM_SOAK  cycles (default BENCH_SOAK, else 1000)
#      BENCH_VM_SCALE  containers alive at once with --scale (default 200:
#                      about 15 minutes under TCG here)
#      BENCH_VM_TIMEOUT  seconds for the whole VM (default 300 + 3 per
#                      cycle; --scale: 600 + 6 per container)
#      SCALE_FILL=1  with --scale: start until a start fails (scale.sh)
#      OCI_VTPM_VM_MEM  the guest's memory in MiB (run.sh; default 2048)
#      OCI_VTPM_BUILD  build dir (default <repo>/build)
#      OCI_VTPM_VM_CACHE  as tests/vm/prepare.sh
# Exit: bench.sh's status (non-zero on a failed cycle or any leak); 124 on
# timeout, 125 when the VM itself failed (see run.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
soak=${BENCH_VM_SOAK:-${BENCH_SOAK:-1000}}
[[ $soak =~ ^[1-9][0-9]*$ ]] || {
	echo "bench-vm: BENCH_VM_SOAK must be a positive number, not '$soak'" >&2
	exit 2
}
scale=${BENCH_VM_SCALE:-200}
[[ $scale =~ ^[1-9][0-9]*$ ]] || {
	echo "bench-vm: BENCH_VM_SCALE must be a positive number, not '$scale'" >&2
	exit 2
}
if_available=0 mode=soak
for a in "$@"; do
	case $a in
	--if-available) if_available=1 ;;
	--scale) mode=scale ;;
	*)
		echo "usage: tests/vm/bench.sh [--if-available] [--scale]" >&2
		exit 2
		;;
	esac
done
if [ "$mode" = soak ]; then
	tmo=${BENCH_VM_TIMEOUT:-$((300 + 3 * soak))}
	what="Soak in the VM (device backend)" target=bench-vm
	job=(env BENCH_ONLY=soak BENCH_BACKEND=device BENCH_SOAK="$soak" tests/bench/bench.sh)
	say="$soak soak cycles"
else
	tmo=${BENCH_VM_TIMEOUT:-$((600 + 6 * scale))}
	what="Scale in the VM (device backend)" target=bench-vm-scale
	job=(env SCALE_BACKEND=device SCALE_N="$scale" SCALE_FILL="${SCALE_FILL:-0}" tests/bench/scale.sh)
	say="$scale containers alive at once"
fi

if [ "$if_available" = 1 ]; then
	cache=${OCI_VTPM_VM_CACHE:-/var/cache/oci-vtpm/vm}
	why=
	command -v qemu-system-x86_64 >/dev/null || why="qemu-system-x86_64 is not installed (scripts/deps.sh vm)"
	compgen -G "$cache/kernel/*/boot/vmlinuz-*" >/dev/null ||
		why=${why:-"no VM kernel cached in $cache (make vm-prepare fetches it)"}
	if [ -n "$why" ]; then
		echo
		echo "### $what: not run: $why. Run \`make $target\` where it can."
		exit 0
	fi
fi

# The guest sees / read-only, at the same paths; run.sh passes OCI_VTPM_*.
OCI_VTPM_BUILD=$(cd "${OCI_VTPM_BUILD:-$repo/build}" && pwd -P)
others=$(pgrep -c qemu-system 2>/dev/null || true)
OCI_VTPM_BENCH_HOST="$("$repo/tests/bench/machine.sh"), $(qemu-system-x86_64 --version | head -1 | sed 's/ (.*//'), TCG (thread=${OCI_VTPM_VM_TCG_THREAD:-single}, ${OCI_VTPM_VM_SMP:-2} vCPUs, ${OCI_VTPM_VM_MEM:-2048} MiB); load average $(cut -d' ' -f1-3 /proc/loadavg) at the start, $others other qemu VMs running"
export OCI_VTPM_BUILD OCI_VTPM_BENCH_HOST
echo "bench-vm: $say in the VM, device backend, timeout $tmo s" >&2
exec "$here/run.sh" --cgroup v1 --timeout "$tmo" -- "${job[@]}"
