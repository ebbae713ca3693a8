#!/usr/bin/env bash
# One line describing this machine for the bench tables: CPUs, memory, OS,
# kernel, runc, swtpm. Used by tests/bench/bench.sh and, on the host side,
# by tests/vm/bench.sh (the guest cannot see the host's CPU).
set -euo pipefail
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
# shellcheck source=/dev/null
os=$(. /etc/os-release && echo "$PRETTY_NAME")
echo "$(nproc) x $cpu, $mem, $os, kernel $(uname -r), $(runc --version | head -1), $(swtpm --version 2>&1 | head -1 | sed 's/,.*//')"
