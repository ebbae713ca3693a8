#!/usr/bin/env bats
# shellcheck disable=SC2016
# containerd (Debian's 1.6) with `ctr run --runc-binary` pointing at the
# shim: requests by annotation and by environment; and the CRI side that
# Kubernetes uses: config/containerd/config.toml (a "vtpm" runtime
# handler), checked by `containerd config dump`, and the RuntimeClass and
# Pod manifests of config/kubernetes. setup_file starts one containerd of
# this file's own (root, state, socket; the CRI plugin off: ctr needs none
# of it) and imports a busybox OCI image made here; teardown_file stops it
# by pid and removes its directories.

load helpers

SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}
IMAGE=docker.io/library/ovbusybox:latest
EK_SCRIPT="tpm2_createek -T $OV_TCTI -c /tmp/ek.ctx -G rsa -u /tmp/ek.pub >/dev/null && echo EK=\$(sha256sum /tmp/ek.pub | cut -d' ' -f1)"
NS=ovtest

# oci_image ROOTFS-TAR OUT-TAR NAME: a one-layer OCI image layout as a tar
# (what `ctr images import` reads), named NAME.
oci_image() {
	local d=$BATS_FILE_TMPDIR/oci ld lsz cd csz md msz
	rm -rf "$d"
	mkdir -p "$d/blobs/sha256"
	ld=$(sha256sum "$1" | cut -d' ' -f1) lsz=$(stat -c %s "$1")
	cp "$1" "$d/blobs/sha256/$ld"
	jq -nc --arg l "sha256:$ld" '{architecture: "amd64", os: "linux",
		config: {Env: ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], Cmd: ["sh"]},
		rootfs: {type: "layers", diff_ids: [$l]}}' >"$d/c"
	cd=$(sha256sum "$d/c" | cut -d' ' -f1) csz=$(stat -c %s "$d/c")
	mv "$d/c" "$d/blobs/sha256/$cd"
	jq -nc --arg c "sha256:$cd" --argjson cs "$csz" --arg l "sha256:$ld" --argjson ls "$lsz" '{
		schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
		layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}' >"$d/m"
	md=$(sha256sum "$d/m" | cut -d' ' -f1) msz=$(stat -c %s "$d/m")
	mv "$d/m" "$d/blobs/sha256/$md"
	jq -nc --arg m "sha256:$md" --argjson ms "$msz" --arg n "$3" '{schemaVersion: 2,
		manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
		size: $ms, annotations: {"io.containerd.image.name": $n}}]}' >"$d/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
	tar -C "$d" -cf "$2" oci-layout index.json blobs
}

setup_file() {
	ov_setup_file
	export CT=$BATS_FILE_TMPDIR/containerd
	export CT_STATE=/run/ovct-$$ CT_SOCK=/run/ovct-$$.sock
	command -v containerd >/dev/null && command -v ctr >/dev/null && [ -x "$SHIM" ] || return 0
	mkdir -p "$CT"
	printf '#!/bin/sh\nOCI_VTPM_CONFIG=$(cat %s) exec %s "$@"\n' "$CT/settings.path" "$SHIM" >"$CT/oci-vtpm"
	chmod 0755 "$CT/oci-vtpm"
	printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$CT/config.toml"
	containerd --config "$CT/config.toml" --root "$CT/root" --state "$CT_STATE" \
		--address "$CT_SOCK" </dev/null >"$CT/containerd.log" 2>&1 3>&- &
	echo $! >"$CT/containerd.pid"
	ov_wait_for 60 ct version >/dev/null 2>&1 || return 0 # the tests say what is wrong
	ov_busybox_image "$CT/rootfs.tar"
	oci_image "$CT/rootfs.tar" "$CT/image.tar" "$IMAGE"
	ct images import --snapshotter native "$CT/image.tar" >/dev/null
}

teardown_file() {
	local pid
	[ -f "${CT:-/nonexistent}/containerd.pid" ] || return 0
	pid=$(cat "$CT/containerd.pid")
	ct_remove_all
	# shims of tasks that would not go have the socket in their argv
	ov_stop_daemon "$pid" "$CT_SOCK" "$CT_STATE" "$CT/"
	rm -rf --one-file-system "$CT_STATE" "$CT_SOCK" "$CT_SOCK.ttrpc" "$CT/root"
}

setup() {
	ov_setup
	[ -z "${CT:-}" ] || echo "$CFG" >"$CT/settings.path"
}

teardown() {
	[ -z "${CT:-}" ] || ct_remove_all
	ov_teardown
}

# ct ARGS...: ctr on this file's containerd, namespace $NS, under timeout.
ct() { timeout -k 5 "$OV_TIMEOUT" ctr -a "$CT_SOCK" -n "$NS" "$@" 3>&-; }

ct_remove_all() {
	local c
	for c in $(ct containers ls -q 2>/dev/null); do
		ct tasks kill -s KILL "$c" >/dev/null 2>&1 || true
		ov_wait_for 10 _ct_task_not_running "$c" >/dev/null 2>&1 || true
		ct tasks delete "$c" >/dev/null 2>&1 || true
		ct containers rm "$c" >/dev/null 2>&1 || true
	done
}
_ct_task_not_running() { ! ct tasks ls 2>/dev/null | awk -v c="$1" '$1 == c {print $3}' | grep -qx RUNNING; }

requires_containerd() {
	requires root jq busybox swtpm tpm2-tools hook runc
	[ -x "$SHIM" ] || fail "$SHIM not built (run make)"
	local why=""
	if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
		why="containerd not installed (scripts/deps.sh test)"
	elif ! ct version >/dev/null 2>&1; then
		why="containerd did not start: $(tail -n 3 "$CT/containerd.log" | tr '\n' ' ')"
	elif ! ct images ls -q | grep -qx "$IMAGE"; then
		why="ctr images import of the busybox image failed"
	fi
	[ -z "$why" ] || ov_missing containerd "$why"
}

# ct_run ARGS...: `ctr run` through the shim, with the host's tools read-only.
ct_run() {
	local args=() a
	for a in /usr /lib /lib64; do
		args+=(--mount "type=bind,src=$a,dst=$a,options=rbind:ro")
	done
	ct run --snapshotter native --runc-binary "$CT/oci-vtpm" "${args[@]}" "$@"
}

# ct_id ID: the container id joins the leak check.
ct_id() { echo "$1" >>"$T/ids"; }

named_settings() {
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".master_key = \"$T/master.key\""
}

nothing_left() {
	ov_leak_check || return 1
	local left
	left=$(ov_run_entries | grep -v "^$(ov_names_dir)/" || true)
	[ -z "$left" ] || fail "left in run_dir: $left"
}

@test "containerd: ctr run --runc-binary with io.oci-vtpm.enable=true, and with --env OCI_VTPM_ENABLE=true: the TPM answers; nothing left" {
	requires_containerd
	ct_id ovct-ann
	run ct_run --rm --annotation io.oci-vtpm.enable=true "$IMAGE" ovct-ann \
		sh -c "ls /run/tpm; echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8)"
	assert_success
	assert_line tpm0.sock
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	nothing_left
	ct_id ovct-env
	run ct_run --rm --env OCI_VTPM_ENABLE=true --env OCI_VTPM_COUNT=2 "$IMAGE" ovct-env \
		sh -c "ls /run/tpm; echo RANDOM=\$(tpm2_getrandom -T swtpm:path=/run/tpm/tpm1.sock --hex 8)"
	assert_success
	assert_line tpm1.sock
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	nothing_left
}

@test "containerd: a named vTPM keeps its EK across task stop/start and ctr container rm + ctr run" {
	requires_containerd
	local ek
	named_settings
	ct_id ovct-named
	run ct_run -d --annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=ctrdb \
		"$IMAGE" ovct-named sleep 600
	assert_success
	run ct tasks exec --exec-id ek1 ovct-named sh -c "$EK_SCRIPT"
	assert_success
	ek=$(grep '^EK=' <<<"$output") || fail "no EK: $output"
	[ "$(ov_swtpm_count ovct-named)" -eq 1 ] || fail "not one swtpm"

	# stop: kill and delete the task (runc delete runs poststop)
	run ct tasks kill -s KILL ovct-named
	assert_success
	ov_wait_for 30 _ct_task_not_running ovct-named
	run ct tasks delete ovct-named
	assert_success
	ov_no_swtpm ovct-named || fail "swtpm left after the task's delete"
	[ -d "$STATE_DIR/vtpms/ctrdb" ] || fail "nothing archived"
	run ct tasks start -d ovct-named
	assert_success
	run ct tasks exec --exec-id ek2 ovct-named sh -c "$EK_SCRIPT"
	assert_success
	assert_line "$ek"

	ct_remove_all
	nothing_left
	run ct_run --rm --annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=ctrdb \
		"$IMAGE" ovct-named sh -c "$EK_SCRIPT"
	assert_success
	assert_line "$ek"
	nothing_left
}

@test "containerd: a bad request (annotation or env count 99) fails ctr run with our one-line error; nothing started" {
	requires_containerd
	ct_id ovct-bad
	run --separate-stderr ct_run --rm --annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.count=99 \
		"$IMAGE" ovct-bad true
	assert_failure
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "expected one line on stderr: $stderr"
	[[ ${stderr_lines[0]} == *'oci-vtpm-runtime: '*'annotation io.oci-vtpm.count: bad value "99"'* ]] ||
		fail "ctr does not show our error: $stderr"
	run --separate-stderr ct_run --rm --env OCI_VTPM_ENABLE=true --env OCI_VTPM_COUNT=99 "$IMAGE" ovct-bad true
	assert_failure
	[[ ${stderr_lines[0]} == *'oci-vtpm-runtime: '*'environment OCI_VTPM_COUNT: bad value "99"'* ]] ||
		fail "ctr does not show our error: $stderr"
	run ct containers ls -q
	refute_output --partial ovct-bad
	[ "$(ov_swtpm_count)" -eq 0 ] || fail "swtpm started for a refused request"
	nothing_left
}

# The CRI config as `containerd config dump` parsed it: the vtpm runtime's
# table, its options and both allowlists (a misspelt key is not printed).
@test "containerd CRI: config/containerd/config.toml is accepted and sets the vtpm handler; the Kubernetes manifests match it" {
	requires_containerd
	local dump tbl='[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vtpm]'
	run containerd --config "$OV_REPO/config/containerd/config.toml" config dump
	assert_success
	dump=$output
	# The runtime's own table, up to its options' table.
	run awk -v t="$tbl" '$0 ~ /^ *\[/ {on = ($1 == t)} on' <<<"$dump"
	assert_line --regexp '^ *runtime_type = "io\.containerd\.runc\.v2"$'
	assert_line --regexp '^ *pod_annotations = \["io\.oci-vtpm\.\*"\]$'
	assert_line --regexp '^ *container_annotations = \["io\.oci-vtpm\.\*"\]$'
	run awk -v t="${tbl%]}.options]" '$0 ~ /^ *\[/ {on = ($1 == t)} on' <<<"$dump"
	assert_line --regexp '^ *BinaryName = "/usr/local/bin/oci-vtpm-runtime"$'
	# A misspelt allowlist is not in the dump: this check can fail.
	sed 's/^  pod_annotations/  pod_annotation/' "$OV_REPO/config/containerd/config.toml" >"$T/typo.toml"
	run containerd --config "$T/typo.toml" config dump
	refute_output --partial 'pod_annotations = ["io.oci-vtpm.*"]'

	# RuntimeClass handler = the runtime's name; the Pod uses the class and
	# asks only with keys the allowlist passes.
	run python3 - "$OV_REPO/config/kubernetes/runtimeclass.yaml" "$OV_REPO/config/kubernetes/pod.yaml" <<-'PY'
		import sys, yaml
		rc = yaml.safe_load(open(sys.argv[1]))
		pod = yaml.safe_load(open(sys.argv[2]))
		assert rc["kind"] == "RuntimeClass" and rc["handler"] == "vtpm", rc
		assert pod["spec"]["runtimeClassName"] == rc["metadata"]["name"], pod
		for k, v in pod["metadata"]["annotations"].items():
		    assert k.startswith("io.oci-vtpm.") and isinstance(v, str), (k, v)
		    print(f"{k}={v}")
	PY
	assert_success
	assert_line io.oci-vtpm.enable=true
	assert_line --regexp '^io\.oci-vtpm\.name='
}

@test "containerd CRI: the Pod manifest's annotations give a container its named vTPM; the pod sandbox gets none" {
	requires_containerd
	local ann=() kv
	named_settings
	while read -r kv; do ann+=(--annotation "$kv"); done < <(python3 -c '
import sys, yaml
for k, v in yaml.safe_load(open(sys.argv[1]))["metadata"]["annotations"].items(): print(f"{k}={v}")
' "$OV_REPO/config/kubernetes/pod.yaml")
	[ "${#ann[@]}" -ge 4 ] || fail "no annotations read from pod.yaml"
	# What containerd's CRI puts into the sandbox's and a container's spec.
	ct_id ovct-sandbox
	run ct_run --rm "${ann[@]}" --annotation io.kubernetes.cri.container-type=sandbox "$IMAGE" ovct-sandbox \
		sh -c 'if [ -e /run/tpm ]; then echo HAS_TPM; else echo NO_TPM; fi'
	assert_success
	assert_output NO_TPM
	ct_id ovct-app
	# The name is scoped by the pod's namespace (name_scope "auto").
	run ct_run --rm "${ann[@]}" --annotation io.kubernetes.cri.container-type=container \
		--annotation io.kubernetes.cri.sandbox-namespace=prod "$IMAGE" ovct-app \
		sh -c "$EK_SCRIPT"
	assert_success
	assert_line --regexp '^EK=[0-9a-f]{64}$'
	[ -d "$STATE_DIR/vtpms/prod.db-primary" ] || fail "the pod's vTPM name was not archived under its namespace: $(ls "$STATE_DIR/vtpms")"
	nothing_left
}
