#!/usr/bin/env bash
# make check-valgrind / make check-asan-hook: bats files (default: core.bats
# harden.bats) with every run of the hook (runc's hook entries and the
# tests' direct calls) under a memory checker, each run reporting to a log
# of its own. Any invalid access, use of uninitialised memory or leak
# reported there fails this run, whatever the test expected of the hook's
# exit status.
#   OV_MEMCHECK=valgrind (default): valgrind --leak-check=full on the normal
#     build. Debian 12's valgrind (3.19) does not know pidfd_open (Linux 5.3)
#     and fails it with ENOSYS: every start fails there, so only what runs
#     before a swtpm starts (requests, errors, stops) is checked.
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
[ ${#files[@]} -gt 0 ] || files=("$repo/tests/bats/core.bats" "$repo/tests/bats/harden.bats")

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
OCI_VTPM_HOOK=$out/oci-vtpm-hook OV_TIMEOUT=${OV_TIMEOUT:-180} \
	"$repo/tests/bats/run.sh" "${opts[@]}" "${files[@]}" || rc=1
runs=$(wc -l <"$logs/runs" 2>/dev/null || echo 0)
bad=$(find "$logs" -name 'hook.*' -size +0c)
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
