#!/usr/bin/env bash
# examples/podman/run.sh [hooks|runtime|precreate|all]: podman 4 gives a
# container a vTPM, each of the ways docs/guide.md's "podman" section shows,
# and the container reads random bytes from it.
#
#   hooks      podman --hooks-dir DIR run --annotation io.oci-vtpm.enable=true ...
#   runtime    podman --runtime oci-vtpm-runtime run --annotation io.oci-vtpm.enable=true ...
#   precreate  podman --hooks-dir DIR (precreate stage: oci-vtpm-runtime precreate) run ...
#
# Everything lives in a temp dir that is removed at the end: a private
# podman storage (--root, --runroot, --tmpdir, CONTAINERS_CONF), a busybox
# image imported from a tar (no network), the settings and the run dir.
# tpm2-tools comes from the host's /usr, /lib and /lib64, mounted
# read-only. Uses the device backend where /dev/vtpmx exists, else the
# socket backend. Needs root, podman, runc, swtpm, tpm2-tools, busybox,
# jq, and `make` run first (OCI_VTPM_BUILD names another build dir).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
. "$repo/examples/lib.sh"
build=${OCI_VTPM_BUILD:-$repo/build}
what=${1:-all}
case $what in hooks | runtime | precreate | all) ;; *)
	echo "usage: $0 [hooks|runtime|precreate|all]" >&2
	exit 2
	;;
esac
need_root
need_built "$build/oci-vtpm-hook" "$build/oci-vtpm-runtime"
need_commands podman runc swtpm tpm2_getrandom busybox jq

work=$(example_workdir podman)
pm() {
	podman --root "$work/root" --runroot "$work/runroot" --tmpdir "$work/tmp" \
		--cgroup-manager=cgroupfs --storage-driver=vfs --events-backend=none "$@"
}
cleanup() {
	pm rm -a -f -t 0 >/dev/null 2>&1 || true
	pm rmi -a -f >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

pick_backend "== this kernel has no vtpm_proxy: socket backend (see docs/guide.md, \"Backends\")"

# Settings: everything under $work.
cat >"$work/config.json" <<JSON
{"run_dir": "$work/run", "state_dir": "$work/state", "backend": "$backend",
 "log_file": "$work/oci-vtpm.log"}
JSON
# conmon hands the runtime only these variables: the shim finds the
# settings through OCI_VTPM_CONFIG (without it: /etc/oci-vtpm/config.json).
mkdir -p "$work/tmp"
cat >"$work/containers.conf" <<CONF
[engine]
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "OCI_VTPM_CONFIG=$work/config.json", "CONTAINERS_CONF=$work/containers.conf"]
lock_type = "file"
CONF
export CONTAINERS_CONF=$work/containers.conf

# A busybox image.
img=$work/image
busybox_rootfs "$img" all etc run root
echo 'root:x:0:0:root:/root:/bin/sh' >"$img/etc/passwd"
tar -C "$img" -cf "$work/image.tar" .
pm import -q "$work/image.tar" localhost/ov-busybox >/dev/null

# An oci-hooks directory made from the repo's templates, the settings named
# in the hook's environment.
hooks_dir() {
	local d=$work/$1 f
	shift
	mkdir -p "$d"
	for f in "$@"; do
		sed "s|@BINDIR@|$build|g" "$repo/config/hooks.d/$f.in" |
			jq --arg e "OCI_VTPM_CONFIG=$work/config.json" '.hook.env = [$e]' >"$d/$f"
	done
	echo "$d"
}

run_opts=(--network none --ulimit nofile=20000:20000 --ulimit nproc=4096:4096
	-v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro
	--annotation io.oci-vtpm.enable=true --annotation "io.oci-vtpm.backend=$backend")
script="tpm2_getrandom -T $tcti --hex 16 && echo"

if [ "$what" = hooks ] || [ "$what" = all ]; then
	d=$(hooks_dir hooks.d oci-vtpm.json)
	echo "== podman --hooks-dir $d run --annotation io.oci-vtpm.enable=true ..."
	pm --hooks-dir "$d" --runtime runc run --rm "${run_opts[@]}" localhost/ov-busybox sh -c "$script"
fi
if [ "$what" = runtime ] || [ "$what" = all ]; then
	echo "== podman --runtime $build/oci-vtpm-runtime run --annotation io.oci-vtpm.enable=true ..."
	mkdir -p "$work/no-hooks"
	pm --hooks-dir "$work/no-hooks" --runtime "$build/oci-vtpm-runtime" run --rm "${run_opts[@]}" \
		localhost/ov-busybox sh -c "$script"
fi
if [ "$what" = precreate ] || [ "$what" = all ]; then
	d=$(hooks_dir precreate.d oci-vtpm-precreate.json)
	echo "== podman --hooks-dir $d (precreate stage) run --annotation io.oci-vtpm.enable=true ..."
	pm --hooks-dir "$d" --runtime runc run --rm "${run_opts[@]}" localhost/ov-busybox sh -c "$script"
fi

left=$(find "$work/run" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
echo "== done; vTPMs left running: $left"
[ "$left" -eq 0 ]
