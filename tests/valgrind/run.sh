#!/usr/bin/env bash
# make check-valgrind / make check-asan-hook: bats files (default: core.bats
# harden.bats) with every run of the hook (runc's hook entries and the
# tests' direct calls) under a memory checker, each run reporting to a log
# of its own. Any invalid access, use of uninitialised memory or leak
# reported there fails this run, whatever the test expected of the hook's
# exit status.
#   OV_MEMCHECK=valgrind (default): valgrind --leak-check=full on the normal
#     build. Debian 12's valgrind (3.19) fails the system calls it does not
#     know with ENOSYS: pidfd_open (the hook then tracks swtpm by pid and
#     start time, lib/proc.h), but also openat2, open_tree and move_mount,
#     which placing a TPM in a container needs. So under it a start runs up
#     to the placement, fails there and undoes itself; stops, requests and
#     errors run whole. Tests that need a placed TPM fail under valgrind
#     3.19: only valgrind's own reports (its "==PID==" lines; "--PID--"
#     lines are its notes, such as an unhandled system call) count here.
#   OV_MEMCHECK=asan: the hook built with -fsanitize=address,undefined
#     (build/asan, make check-asan-hook; LeakSanitizer at exit): every path.
#   tests/valgrind/run.sh [BATS-FILE...] [-- BATS-OPTIONS...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${OCI_VTPM_BUILD:-$repo/build}
mode=${OV_MEMCHECK:-valgrind}
case $mode in
valgrind)
	command -v valgrind >/dev/null || { echo "check-valgrind: valgrind not installed" >&2; exit 1; }
	hook=$build/oci-vtpm-hook
	;;
asan) hook=$build/asan/oci-vtpm-hook ;;
*)
	echo "OV_MEMCHECK: valgrind or asan, not $mode" >&2
	exit 2
	;;
esac
[ -x "$hook" ] || { echo "$mode: $hook not built" >&2; exit 1; }

files=() opts=()
while [ $# -gt 0 ]; do
	[ "$1" = -- ] && { shift; opts=("$@"); break; }
	files+=("$1")
	shift
done
[ ${#files[@]} -gt 0 ] || files=("$repo/tests/bats/core.bats" "$repo/tests/bats/harden.bats" "$repo/tests/bats/persist.bats")

out=$build/memcheck-$mode
logs=$out/logs
rm -rf "$logs"
mkdir -p "$logs"
chmod 0755 "$out" "$logs"
# runc runs hooks with the hook entry's environment only: the paths and
# options are written into the wrapper. $logs/runs counts the runs.
if [ "$mode" = valgrind ]; then
	cat >"$out/oci-vtpm-hook" <<WRAP
#!/bin/sh
echo \$\$ >>"$logs/runs"
exec valgrind --quiet --error-exitcode=99 --leak-check=full \\
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \\
	--child-silent-after-fork=yes --log-file="$logs/hook.%p.log" \\
	"$hook" "\$@"
WRAP
else
	# LeakSanitizer cannot run under ptrace (a test's strace): leaks are
	# not checked in a run that is traced.
	cat >"$out/oci-vtpm-hook" <<WRAP
#!/bin/sh
echo \$\$ >>"$logs/runs"
leaks=1
grep -q '^TracerPid:[[:space:]]*0\$' /proc/\$\$/status || leaks=0
ASAN_OPTIONS=detect_leaks=\$leaks:log_path=$logs/hook UBSAN_OPTIONS=print_stacktrace=1:log_path=$logs/hook \\
	exec "$hook" "\$@"
WRAP
fi
chmod 0755 "$out/oci-vtpm-hook"

rc=0
bats_rc=0
OCI_VTPM_HOOK=$out/oci-vtpm-hook OV_TIMEOUT=${OV_TIMEOUT:-180} \
	"$repo/tests/bats/run.sh" "${opts[@]}" "${files[@]}" || bats_rc=1
runs=$(wc -l <"$logs/runs" 2>/dev/null || echo 0)
if [ "$mode" = valgrind ]; then
	# Its error reports, not its notes (see above).
	bad=$(grep -l '^==[0-9]*==' "$logs"/hook.* 2>/dev/null)
	[ "$bats_rc" = 0 ] || echo "$mode: some tests failed under valgrind (expected with valgrind 3.19: see the top of $0)" >&2
else
	bad=$(find "$logs" -name 'hook.*' -size +0c)
	rc=$bats_rc
fi
if [ -n "$bad" ]; then
	for f in $bad; do
		echo "# $mode: $f" >&2
		sed 's/^/#   /' "$f" >&2
	done
	echo "$mode: $(wc -w <<<"$bad") of $runs hook runs with errors" >&2
	rc=1
else
	echo "$mode: $runs hook runs, no invalid access, no leak"
fi
[ "$runs" -gt 0 ] || { echo "$mode: the hook never ran" >&2; rc=1; }
exit $rc
