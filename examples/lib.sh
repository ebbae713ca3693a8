# shellcheck shell=bash
# examples/lib.sh: what the examples share (demo.sh, podman/run.sh,
# attestation/run.sh source it; it does nothing on its own): their temp
# dir, the backend this kernel allows, a busybox root filesystem, and a
# runc bundle whose container asks oci-vtpm-hook for a vTPM.

# need_root; need_built FILE...; need_commands COMMAND...: root, each FILE
# an executable (else: run make), each COMMAND installed; else the script
# stops, saying which.
need_root() {
	[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
}
need_built() {
	local f
	for f in "$@"; do
		[ -x "$f" ] || { echo "$0: $f not built: run make" >&2; exit 1; }
	done
}
need_commands() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || { echo "$0: $c not installed" >&2; exit 1; }
	done
}

# example_workdir NAME: a new temp dir /tmp/oci-vtpm-NAME.XXXXXX, its path;
# readable by all, for swtpm runs as tss below it.
example_workdir() {
	local d
	d=$(mktemp -d "/tmp/oci-vtpm-$1.XXXXXX") && chmod 0755 "$d" && echo "$d"
}

# pick_backend MESSAGE: sets backend, and tcti for tpm2-tools in the
# container: the device backend where the kernel has vtpm_proxy, else the
# socket backend, and MESSAGE on stdout.
pick_backend() {
	# shellcheck disable=SC2034 # for the caller
	if [ -e /dev/vtpmx ] || modprobe tpm_vtpm_proxy 2>/dev/null; then
		backend=device tcti=device:/dev/tpmrm0
	else
		backend=socket tcti=swtpm:path=/run/tpm/tpm0.sock
		echo "$1"
	fi
}

# busybox_rootfs DIR APPLETS [SUBDIR...]: a root filesystem in DIR: the
# host's busybox in /bin with a link for each of APPLETS ("all": every
# applet it has), the directories a container and the host's /usr, /lib
# and /lib64 mount on, and the SUBDIRs.
busybox_rootfs() {
	local root=$1 applets=$2 a
	shift 2
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,usr,lib,lib64}
	for a in "$@"; do mkdir -p "$root/$a"; done
	cp "$(command -v busybox)" "$root/bin/busybox"
	[ "$applets" != all ] || applets=$("$root/bin/busybox" --list)
	for a in $applets; do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
}

# runc_bundle BUNDLE HOOK SETTINGS [JQ-OPTION...] FILTER: BUNDLE/config.json
# made by `runc spec` (the root filesystem is BUNDLE/rootfs), then edited
# for a container that asks for a vTPM: no terminal, a writable root, the
# host's /usr, /lib and /lib64 read-only (tpm2-tools), the annotation
# io.oci-vtpm.enable=true, HOOK at createRuntime and poststop with the
# settings file SETTINGS; then the jq FILTER, given the JQ-OPTIONs, does the
# rest (process.args, process.env, ...). FILTER may use ro($dest; $source),
# a read-only bind mount.
runc_bundle() {
	local bundle=$1 hook=$2 settings=$3 filter=${!#}
	set -- "${@:4:$#-4}"
	(cd "$bundle" && runc spec)
	jq --arg hook "$hook" --arg settings "$settings" "$@" '
		def ro($d; $s): {destination: $d, type: "bind", source: $s, options: ["rbind", "ro"]};
		def hook($stage): {path: $hook, args: ["oci-vtpm-hook", $stage],
			env: ["OCI_VTPM_CONFIG=" + $settings], timeout: 30};
		.process.terminal = false
		| .root.readonly = false
		| .annotations = {"io.oci-vtpm.enable": "true"}
		| .mounts += [ro("/usr"; "/usr"), ro("/lib"; "/lib"), ro("/lib64"; "/lib64")]
		| .hooks = {createRuntime: [hook("createRuntime")], poststop: [hook("poststop")]}
		| '"$filter" "$bundle/config.json" >"$bundle/config.json.new"
	mv "$bundle/config.json.new" "$bundle/config.json"
}
