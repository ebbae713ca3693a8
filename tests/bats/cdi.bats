#!/usr/bin/env bats
# CDI: `oci-vtpm cdi` writes a spec of kind oci-vtpm.io/tpm; podman 4.3
# reads it: `podman run --device oci-vtpm.io/tpm=ephemeral` (or =NAME)
# gets a working TPM (socket backend). The request travels in the hooks'
# own environment, which the CDI spec sets, not in the container's.
#
# podman 4.3 reads CDI specs only from /etc/cdi and /var/run/cdi (no
# option to point it elsewhere): each test writes its spec into
# /var/run/cdi under a name of its own and removes it in teardown. Each
# test has its own podman storage under $T; no hooks dir.

load helpers

IMAGE=localhost/ov-busybox:cdi
CDI_SYS=/var/run/cdi

setup_file() {
	ov_setup_file
	ov_busybox_image "$BATS_FILE_TMPDIR/image.tar"
}

setup() {
	ov_setup
	PM=$T/pm
	mkdir -p "$PM/tmp" "$T/no-hooks"
	printf '[engine]\nlock_type = "file"\n' >"$T/containers.conf"
	export CONTAINERS_CONF=$T/containers.conf
	CDI_FILE=$CDI_SYS/oci-vtpm-test-$$-$BATS_TEST_NUMBER.json
}

teardown() {
	rm -f "${CDI_FILE:-/nonexistent}"
	ov_pm_teardown
	ov_teardown
}

# pm ARGS...: this test's podman, with no hooks dir (only CDI's hooks).
pm() { ov_pm --hooks-dir "$T/no-hooks" "$@"; }

RUN_OPTS=(--runtime runc --network none --ulimit nofile=20000:20000 --ulimit nproc=4096:4096
	-v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro)

# requires_cdi [NAME...]: podman, the image, and this test's CDI spec
# (written by oci-vtpm cdi with the test's settings, devices ephemeral and
# NAME...) installed where podman reads it.
requires_cdi() {
	requires root jq busybox swtpm tpm2-tools hook runc podman
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built (run make)"
	local other
	other=$(grep -lsF '"oci-vtpm.io/tpm"' "$CDI_SYS"/*.json 2>/dev/null || true)
	[ -z "$other" ] || fail "a CDI spec of kind oci-vtpm.io/tpm is installed already: $other"
	pm import "$BATS_FILE_TMPDIR/image.tar" "$IMAGE" >/dev/null || fail "podman import"
	run ovadm cdi --dir "$T/cdi" "$@"
	assert_success
	assert_output "wrote $T/cdi/oci-vtpm.json: kind oci-vtpm.io/tpm, devices ephemeral${*:+, }$(echo "$*" | sed 's/ /, /g')"
	mkdir -p "$CDI_SYS"
	cp "$T/cdi/oci-vtpm.json" "$CDI_FILE"
}

# pm_register NAME: the container's id joins the leak check.
pm_register() {
	local id
	id=$(pm inspect --format '{{.Id}}' "$1") || fail "podman inspect $1"
	echo "$id" >>"$T/ids"
}

@test "cdi: podman run --device oci-vtpm.io/tpm=ephemeral gets a TPM, no OCI_VTPM_* in the container's env; podman rm leaves nothing" {
	requires_cdi
	run pm run --name ovcdi-eph "${RUN_OPTS[@]}" --device oci-vtpm.io/tpm=ephemeral "$IMAGE" \
		sh -c "ls /run/tpm; echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8); env | grep -c '^OCI_VTPM_' || true"
	assert_success
	assert_line tpm0.sock
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	assert_line 0
	pm_register ovcdi-eph
	run pm rm ovcdi-eph
	assert_success
	[ "$(ov_swtpm_count)" -eq 0 ] || fail "swtpm left after podman rm"
	ov_leak_check
	# Without the device: nothing.
	run pm run --rm "${RUN_OPTS[@]}" "$IMAGE" sh -c 'if [ -e /run/tpm ]; then echo HAS_TPM; else echo NO_TPM; fi'
	assert_success
	assert_output NO_TPM
}

@test "cdi: --device oci-vtpm.io/tpm=NAME keeps its EK across podman rm + run; the container's env cannot change the name" {
	requires_cdi cdidb
	local ek
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".master_key = \"$T/master.key\""
	run pm run --name ovcdi-n1 "${RUN_OPTS[@]}" --device oci-vtpm.io/tpm=cdidb "$IMAGE" sh -c "$OV_EK_SCRIPT"
	assert_success
	ek=$(grep '^EK=' <<<"$output") || fail "no EK: $output"
	pm_register ovcdi-n1
	run pm rm ovcdi-n1
	assert_success
	[ -d "$STATE_DIR/vtpms/cdidb" ] || fail "nothing archived under cdidb"
	# The device's name wins over the container's OCI_VTPM_NAME (which on
	# its own env_request would refuse).
	run pm run --name ovcdi-n2 "${RUN_OPTS[@]}" -e OCI_VTPM_NAME=other --device oci-vtpm.io/tpm=cdidb \
		"$IMAGE" sh -c "$OV_EK_SCRIPT"
	assert_success
	assert_line "$ek"
	pm_register ovcdi-n2
	[ ! -e "$STATE_DIR/vtpms/other" ] || fail "the container's env named a vTPM"
	run pm rm ovcdi-n2
	assert_success
	ov_leak_check
}

@test "cdi: oci-vtpm cdi refuses a bad vTPM name and the reserved one in one line, writing nothing" {
	requires root jq
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built (run make)"
	run --separate-stderr ovadm cdi --dir "$T/cdi" ../x
	assert_failure
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "stderr: $stderr"
	[[ $stderr == *'"../x" is not a valid vTPM name'* ]] || fail "stderr: $stderr"
	run --separate-stderr ovadm cdi --dir "$T/cdi" ephemeral
	assert_failure
	[[ $stderr == *'CDI device of ephemeral vTPMs'* ]] || fail "stderr: $stderr"
	[ ! -e "$T/cdi" ] || fail "something written: $(ls -la "$T/cdi")"
}
