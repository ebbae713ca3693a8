#!/usr/bin/env bash
# Run the bats integration tests and end with "N passed, N failed, N skipped".
#
#   tests/bats/run.sh                      all tests/bats/*.bats
#   tests/bats/run.sh tests/bats/core.bats chosen files
#   tests/bats/run.sh -f 'crun' core.bats  options go to bats (e.g. --filter)
#
# Environment: see tests/bats/helpers.bash (OCI_VTPM_BUILD, OV_STRICT, ...).
# Exits non-zero when a test failed or bats itself failed.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

opts=()
files=()
while [ $# -gt 0 ]; do
	case $1 in
	-f | --filter | -j | --jobs | -F | --formatter | -o | --output)
		opts+=("$1" "$2")
		shift 2
		;;
	-*)
		opts+=("$1")
		shift
		;;
	*)
		if [ -e "$1" ]; then
			files+=("$1")
		elif [ -e "$here/$1" ]; then
			files+=("$here/$1")
		else
			echo "run.sh: no such test file: $1" >&2
			exit 2
		fi
		shift
		;;
	esac
done
if [ ${#files[@]} -eq 0 ]; then
	shopt -s nullglob
	files=("$here"/*.bats)
fi
if [ ${#files[@]} -eq 0 ]; then
	echo "run.sh: no .bats files in $here" >&2
	exit 2
fi
command -v bats >/dev/null || {
	echo "run.sh: bats not installed (scripts/deps.sh test)" >&2
	exit 2
}

tap=$(mktemp "${TMPDIR:-/tmp}/ov-bats.XXXXXX")
trap 'rm -f "$tap"' EXIT

bats --jobs 1 --tap --timing "${opts[@]}" "${files[@]}" | tee "$tap"
rc=${PIPESTATUS[0]}

skipped=$(grep -cE '^ok [0-9]+ .*# [Ss][Kk][Ii][Pp]' "$tap")
oks=$(grep -cE '^ok [0-9]+' "$tap")
failed=$(grep -cE '^not ok [0-9]+' "$tap")
passed=$((oks - skipped))

echo "$passed passed, $failed failed, $skipped skipped"
if [ "$failed" -gt 0 ]; then
	exit 1
fi
if [ "$rc" -ne 0 ]; then
	echo "run.sh: bats exited $rc" >&2
	exit "$rc"
fi
exit 0
