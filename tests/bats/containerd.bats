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
load engines

IMAGE=$OV_CT_IMAGE

setup_file() {
	ov_setup_file
	ov_containerd_start
}

teardown_file() { ov_containerd_stop; }

setup() {
	ov_setup
	ov_engines_setup
}

teardown() {
	ct_remove_all
	ov_teardown
}

named_settings() {
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".master_key = \"$T/master.key\""
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
	run ct tasks exec --exec-id ek1 ovct-named sh -c "$OV_EK_SCRIPT"
	assert_success
	ek=$(grep '^EK=' <<<"$output") || fail "no EK: $output"
	[ "$(ov_swtpm_count ovct-named)" -eq 1 ] || fail "not one swtpm"

	# stop: kill and delete the task (runc delete runs poststop)
	run ct tasks kill -s KILL ovct-named
	assert_success
	ov_wait_for 30 ct_task_not_running ovct-named
	run ct tasks delete ovct-named
	assert_success
	ov_no_swtpm ovct-named || fail "swtpm left after the task's delete"
	[ -d "$STATE_DIR/vtpms/ctrdb" ] || fail "nothing archived"
	run ct tasks start -d ovct-named
	assert_success
	run ct tasks exec --exec-id ek2 ovct-named sh -c "$OV_EK_SCRIPT"
	assert_success
	assert_line "$ek"

	ct_remove_all
	nothing_left
	run ct_run --rm --annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=ctrdb \
		"$IMAGE" ovct-named sh -c "$OV_EK_SCRIPT"
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
		sh -c "$OV_EK_SCRIPT"
	assert_success
	assert_line --regexp '^EK=[0-9a-f]{64}$'
	[ -d "$STATE_DIR/vtpms/prod.db-primary" ] || fail "the pod's vTPM name was not archived under its namespace: $(ls "$STATE_DIR/vtpms")"
	nothing_left
}
