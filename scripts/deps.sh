#!/bin/sh
# Install the Debian packages a given workflow needs, only if missing.
#
#   scripts/deps.sh build   compiler, headers and linters
#   scripts/deps.sh test    build + runtimes and engines (docker.io, containerd),
#                           swtpm, tpm2-tools, bats, busybox
#   scripts/deps.sh vm      test + qemu and initramfs tooling
#
# A no-op (one line, no apt call) when everything is already installed.
# Prints exactly one line saying what it installs; apt's own output is shown
# only when apt fails.
set -eu

BUILD_PKGS="gcc make pkg-config libjson-c-dev libseccomp-dev libssl-dev go-md2man
libtpms-dev libtss2-dev clang-format cppcheck"
TEST_PKGS="$BUILD_PKGS swtpm swtpm-tools tpm2-tools runc crun podman bats
bats-assert bats-support busybox-static jq uidmap strace docker.io containerd
python3-yaml valgrind"
VM_PKGS="$TEST_PKGS qemu-system-x86 cpio kmod"

usage() {
	echo "usage: $0 build|test|vm" >&2
	exit 2
}

[ $# -eq 1 ] || usage
case "$1" in
build) pkgs=$BUILD_PKGS ;;
test) pkgs=$TEST_PKGS ;;
vm) pkgs=$VM_PKGS ;;
*) usage ;;
esac
set_name=$1

missing=""
total=0
for p in $pkgs; do
	total=$((total + 1))
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
	echo "deps.sh: $set_name: all $total packages already installed"
	exit 0
fi

echo "deps.sh: $set_name: installing$missing"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps.sh: not root and no sudo; install manually:$missing" >&2
		exit 1
	fi
fi

log=$(mktemp "${TMPDIR:-/tmp}/deps.XXXXXX")
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # word splitting of $missing is intended
if ! { $SUDO apt-get update -q &&
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends $missing; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps.sh: apt-get failed installing:$missing" >&2
	exit 1
fi
