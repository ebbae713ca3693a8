#!/usr/bin/env bats
# podman 4 with oci-vtpm, both ways (socket backend):
#   podman --hooks-dir DIR run --annotation io.oci-vtpm.enable=true ...
#   podman --runtime oci-vtpm-runtime run --annotation io.oci-vtpm.enable=true ...
# plus podman's precreate hook stage (oci-vtpm-runtime precreate), and a
# named vTPM across podman rm/run and across podman stop/start.
#
# Each test has its own podman (--root, --runroot, --tmpdir, file locks,
# no events, CONTAINERS_CONF) under $T, and imports a busybox image from a
# tar (no network). runc keeps its default state root: podman 4.3 does not
# hand --runtime-flag on to the commands it runs later (podman rm, the
# cleanup after exit). The container gets tpm2-tools from the host's /usr,
# /lib and /lib64, mounted read-only. Every test ends with the harness'
# leak check plus: no vTPM, no runc container left after podman rm.

load helpers

SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}
IMAGE=localhost/ov-busybox:test

setup_file() {
	ov_setup_file
	ov_busybox_image "$BATS_FILE_TMPDIR/image.tar"
}

setup() {
	ov_setup
	PM=$T/pm
	mkdir -p "$PM/tmp" "$T/no-hooks"
	# conmon passes the runtime (and the cleanup command it runs when the
	# container exits) only the env listed here: the shim finds this test's
	# settings through it.
	cat >"$T/containers.conf" <<EOF
[engine]
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"OCI_VTPM_CONFIG=$CFG", "CONTAINERS_CONF=$T/containers.conf"]
lock_type = "file"
EOF
	export CONTAINERS_CONF=$T/containers.conf
	: >"$T/pm-names"
	# podman runs the runtime's delete with no environment but
	# XDG_RUNTIME_DIR: the shim's settings must be at their default path,
	# or, as here, named by a wrapper podman runs as its runtime.
	printf '#!/bin/sh\nOCI_VTPM_CONFIG=%s exec %s "$@"\n' "$CFG" "$SHIM" >"$T/shim"
	chmod 0755 "$T/shim"
}

teardown() {
	ov_pm_teardown
	ov_teardown
}

# pm ARGS...: this test's private podman.
pm() { ov_pm "$@"; }

# What `podman run` needs here, and the host's tools read-only.
RUN_OPTS=(--network none --ulimit nofile=20000:20000 --ulimit nproc=4096:4096
	-v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro)

requires_podman() {
	requires root jq busybox swtpm tpm2-tools hook runc
	[ -x "$SHIM" ] || fail "$SHIM not built (run make)"
	local why=""
	if ! command -v podman >/dev/null; then
		why="podman not installed"
	elif ! pm import "$BATS_FILE_TMPDIR/image.tar" "$IMAGE" >"$T/import.log" 2>&1; then
		why="podman import fails: $(tail -n 3 "$T/import.log" | tr '\n' ' ')"
	fi
	[ -z "$why" ] || ov_missing podman "$why"
}

# pm_name LABEL: a container name; its id joins the leak check once known.
pm_name() { echo "ovpm-$1-$RANDOM"; }

# pm_register NAME: the container's full id (the vTPM's run dir name).
pm_register() {
	local id
	id=$(pm inspect --format '{{.Id}}' "$1") || fail "podman inspect $1"
	echo "$id" >>"$T/ids"
	echo "$id"
}

# pm_config NAME: the config.json the runtime got.
pm_config() { echo "$PM/root/vfs-containers/$(pm inspect --format '{{.Id}}' "$1")/userdata/config.json"; }

# our_hooks CONFIG STAGE: entries of hooks.STAGE that are oci-vtpm-hook.
our_hooks() {
	jq --arg s "$2" '[.hooks[$s] // [] | .[] | select(.path | endswith("/oci-vtpm-hook"))] | length' "$1"
}

# hooks_dir DIR FILE.in...: an oci-hooks directory from the repo's templates,
# pointing at the built binaries, with this test's settings in the env.
hooks_dir() {
	local d=$1 f
	shift
	mkdir -p "$d"
	for f in "$@"; do
		sed "s|@BINDIR@|$OCI_VTPM_BUILD|g" "$OV_REPO/config/hooks.d/$f.in" |
			jq --arg e "OCI_VTPM_CONFIG=$CFG" '.hook.env = [$e]' >"$d/$f"
	done
}

TPM_SCRIPT="ls /run/tpm && echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8)"

# pm_tpm NAME PODMAN-GLOBAL-ARGS...: run an annotated container that uses
# its TPM, and check that it did.
pm_tpm() {
	local name=$1
	shift
	run pm "$@" run --name "$name" --annotation io.oci-vtpm.enable=true "${RUN_OPTS[@]}" \
		"$IMAGE" sh -c "$TPM_SCRIPT"
	assert_success
	assert_line tpm0.sock
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
}

# pm_rm_clean NAME ID: podman rm, then nothing may be left.
pm_rm_clean() {
	run pm rm "$1"
	assert_success
	[ ! -e "$(ov_slot "$2")" ] || fail "$(ov_slot "$2") left after podman rm: $(ls -A "$(ov_slot "$2")")"
	[ "$(ov_swtpm_count "$2")" -eq 0 ] || fail "swtpm left after podman rm: $(ov_ps $(ov_swtpm_pids "$2"))"
	! runc list -q 2>/dev/null | grep -qx -- "$2" || fail "runc still has container $2 after podman rm"
	[ -z "$(find /sys/fs/cgroup -maxdepth 3 -name "libpod-$2*" 2>/dev/null)" ] ||
		fail "cgroups of $2 left after podman rm"
	ov_leak_check
}

@test "podman --hooks-dir (oci-hooks file): an annotated container gets a working TPM; nothing left after podman rm" {
	requires_podman
	local name id cfg
	hooks_dir "$T/hooks.d" oci-vtpm.json
	name=$(pm_name hooks)
	pm_tpm "$name" --hooks-dir "$T/hooks.d" --runtime runc
	id=$(pm_register "$name")
	grep -q "$id: started 1 TPM 2.0 vTPM" "$OV_HOOK_LOG" || fail "the hook did not start the vTPM"
	# podman put the hook at createRuntime; poststop is podman's own stage.
	cfg=$(pm_config "$name")
	[ "$(our_hooks "$cfg" createRuntime)" = 1 ] || fail "hooks: $(jq -c .hooks "$cfg")"
	pm_rm_clean "$name" "$id"

	# Without the annotation: no TPM, no hook, nothing on the host.
	name=$(pm_name plain)
	run pm --hooks-dir "$T/hooks.d" --runtime runc run \
		--name "$name" "${RUN_OPTS[@]}" "$IMAGE" sh -c '[ -e /run/tpm ] && echo HAS_TPM || echo NO_TPM'
	assert_success
	assert_line NO_TPM
	id=$(pm_register "$name")
	cfg=$(pm_config "$name")
	[ "$(our_hooks "$cfg" createRuntime)" = 0 ] || fail "hook added without the annotation"
	pm_rm_clean "$name" "$id"
}

@test "podman --runtime oci-vtpm-runtime: an annotated container gets a working TPM; nothing left after podman rm" {
	requires_podman
	local name id cfg
	name=$(pm_name shim)
	# No hooks directory at all: the shim starts the vTPM itself, and
	# runc runs no hook of ours (none in config.json, none in the log).
	pm_tpm "$name" --hooks-dir "$T/no-hooks" --runtime "$T/shim"
	id=$(pm_register "$name")
	grep -q "oci-vtpm-runtime\[[0-9]*\] info $id: started 1 TPM 2.0 vTPM" "$OV_HOOK_LOG" ||
		fail "the shim did not start the vTPM"
	cfg=$(pm_config "$name")
	[ "$(our_hooks "$cfg" createRuntime)" = 0 ] && [ "$(our_hooks "$cfg" poststop)" = 0 ] ||
		fail "hooks: $(jq -c .hooks "$cfg")"
	! grep -q "oci-vtpm-hook\[" "$OV_HOOK_LOG" || fail "a hook ran"
	run jq -r '.annotations["io.oci-vtpm.provided-by"]' "$cfg"
	assert_output oci-vtpm-runtime
	run pm inspect --format '{{.State.Status}}' "$name"
	assert_output exited
	pm_rm_clean "$name" "$id"

	# Without the annotation the shim only passes through: config.json
	# gets no hook, the container no TPM.
	name=$(pm_name shimplain)
	run pm --hooks-dir "$T/no-hooks" --runtime "$T/shim" run \
		--name "$name" "${RUN_OPTS[@]}" "$IMAGE" sh -c '[ -e /run/tpm ] && echo HAS_TPM || echo NO_TPM'
	assert_success
	assert_line NO_TPM
	id=$(pm_register "$name")
	[ "$(jq '.hooks // {} | length' "$(pm_config "$name")")" = 0 ] || fail "hooks added without the annotation"
	pm_rm_clean "$name" "$id"
}

@test "podman precreate stage (oci-vtpm-runtime precreate): same edit as the shim, no duplicate with the oci-hooks file" {
	requires_podman
	local name id cfg
	hooks_dir "$T/pre.d" oci-vtpm-precreate.json
	name=$(pm_name pre)
	pm_tpm "$name" --hooks-dir "$T/pre.d" --runtime runc
	id=$(pm_register "$name")
	cfg=$(pm_config "$name")
	[ "$(our_hooks "$cfg" createRuntime)" = 1 ] && [ "$(our_hooks "$cfg" poststop)" = 1 ] ||
		fail "hooks: $(jq -c .hooks "$cfg")"
	run jq -c '.hooks.createRuntime[0] | [.path, .args, .env]' "$cfg"
	assert_output "[\"$OCI_VTPM_BUILD/oci-vtpm-hook\",[\"oci-vtpm-hook\",\"createRuntime\"],[\"OCI_VTPM_CONFIG=$CFG\"]]"
	pm_rm_clean "$name" "$id"

	# Both files in one directory: podman adds the hook at createRuntime
	# first, the precreate edit recognises it and adds no second one.
	hooks_dir "$T/both.d" oci-vtpm.json oci-vtpm-precreate.json
	name=$(pm_name both)
	pm_tpm "$name" --hooks-dir "$T/both.d" --runtime runc
	id=$(pm_register "$name")
	cfg=$(pm_config "$name")
	[ "$(our_hooks "$cfg" createRuntime)" = 1 ] || fail "hooks: $(jq -c .hooks "$cfg")"
	[ "$(grep -c "$id: started" "$OV_HOOK_LOG")" = 1 ] || fail "started more than once"
	pm_rm_clean "$name" "$id"

	# A bad request fails the container before the runtime runs (podman
	# drops a precreate hook's stderr: the reason is in the log).
	name=$(pm_name bad)
	run pm --hooks-dir "$T/pre.d" --runtime runc run \
		--name "$name" --annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.count=99 \
		"${RUN_OPTS[@]}" "$IMAGE" true
	assert_failure
	assert_output --partial "precreate"
	grep -q 'oci-vtpm-runtime.*io.oci-vtpm.count: bad value "99"' "$OV_HOOK_LOG" ||
		fail "the log does not say why: $(tail -n 3 "$OV_HOOK_LOG")"
	[ "$(ov_swtpm_count)" -eq 0 ]
}

@test "podman --runtime oci-vtpm-runtime: io.oci-vtpm.name keeps the TPM's identity across podman rm and run" {
	requires_podman
	local cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm} name id ek1 ek2 i
	[ -x "$cli" ] || fail "$cli not built (run make)"
	ov_write_config ".master_key = \"$T/keys/master.key\""
	run timeout 30 "$cli" --config "$CFG" init
	assert_success
	for i in 1 2; do
		name=$(pm_name named$i)
		run pm --hooks-dir "$T/no-hooks" --runtime "$T/shim" run --name "$name" \
			--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name=pmtest \
			"${RUN_OPTS[@]}" "$IMAGE" sh -c \
			"cd /tmp && tpm2_createek -T $OV_TCTI -c ek.ctx -G rsa -u ek.pub >/dev/null && echo EK=\$(sha256sum ek.pub | cut -d' ' -f1)"
		assert_success
		assert_line --regexp '^EK=[0-9a-f]{64}$'
		eval "ek$i=\$(sed -n 's/^EK=//p' <<<\"\$output\")"
		id=$(pm_register "$name")
		pm_rm_clean "$name" "$id"
	done
	[ "$ek1" = "$ek2" ] || fail "the EK changed across podman rm/run: $ek1 vs $ek2"
	[ -d "$STATE_DIR/vtpms/pmtest" ] || fail "no archive of vTPM pmtest in $STATE_DIR: $(ls -R "$STATE_DIR" | head)"
}

# pm_ek NAME: the SHA-256 of the RSA EK's public part, read in the running
# container NAME with podman exec.
pm_ek() {
	pm exec "$1" sh -c "cd /tmp && tpm2_createek -T $OV_TCTI -c ek.ctx -G rsa -u ek.pub >/dev/null &&
		sha256sum ek.pub | cut -d' ' -f1"
}

# stop_start NAME-LABEL PODMAN-GLOBAL-ARGS...: a named vTPM survives podman
# stop and podman start of the same container: stop runs poststop (the vTPM
# is archived, its swtpm and live state gone), start runs createRuntime
# again (the archive is restored).
stop_start() {
	local label=$1 cli=${OCI_VTPM_CLI:-$OCI_VTPM_BUILD/oci-vtpm} name id ek1 ek2 vname
	shift
	[ -x "$cli" ] || fail "$cli not built (run make)"
	ov_write_config ".master_key = \"$T/keys/master.key\""
	run timeout 30 "$cli" --config "$CFG" init
	assert_success
	vname=pm$label
	name=$(pm_name "$label")
	run pm "$@" run -d --name "$name" \
		--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.name="$vname" \
		"${RUN_OPTS[@]}" "$IMAGE" sleep 600
	assert_success
	id=$(pm_register "$name")
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "no swtpm for $id"
	ek1=$(pm_ek "$name") || fail "createek: $ek1"
	[[ $ek1 =~ ^[0-9a-f]{64}$ ]] || fail "bad EK hash: $ek1"
	run timeout 30 "$cli" --config "$CFG" list --json
	assert_success
	jq -e --arg n "$vname" --arg id "$id" 'any(.[]; .name == $n and .in_use_by == $id)' <<<"$output" >/dev/null ||
		fail "vTPM $vname not in use by $id: $output"
	# A first start: no generation archived yet.
	! ls "$STATE_DIR/vtpms/$vname"/gen-* >/dev/null 2>&1 || fail "archived before the first stop"

	run pm "$@" stop -t 0 "$name"
	assert_success
	run pm inspect --format '{{.State.Status}}' "$name"
	assert_output exited
	# poststop ran: archived, swtpm stopped, live state removed, name free.
	grep -q "$id: vTPM $vname archived as generation 1" "$OV_HOOK_LOG" ||
		fail "podman stop did not archive the vTPM: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(ov_swtpm_count "$id")" -eq 0 ] || fail "swtpm still runs after podman stop"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") left after podman stop: $(ls -A "$(ov_slot "$id")")"
	run timeout 30 "$cli" --config "$CFG" list --json
	assert_success
	jq -e --arg n "$vname" 'any(.[]; .name == $n and .in_use_by == null)' <<<"$output" >/dev/null ||
		fail "vTPM $vname not listed, or still in use, after podman stop: $output"

	# (--hooks-dir is podman's setting, not the container's: start needs it
	# again, as it would find it in containers.conf.)
	run pm "$@" start "$name"
	assert_success
	grep -q "$id: vTPM $vname restored from generation 1" "$OV_HOOK_LOG" ||
		fail "podman start did not restore the vTPM: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "no swtpm for $id after podman start"
	ek2=$(pm_ek "$name") || fail "createek after start: $ek2"
	[ "$ek1" = "$ek2" ] || fail "the EK changed across podman stop/start: $ek1 vs $ek2"

	run pm "$@" stop -t 0 "$name"
	assert_success
	grep -q "$id: vTPM $vname archived as generation 2" "$OV_HOOK_LOG" ||
		fail "the second podman stop did not archive: $(tail -n 5 "$OV_HOOK_LOG")"
	pm_rm_clean "$name" "$id"
	[ -f "$STATE_DIR/vtpms/$vname/meta.json" ] || fail "podman rm removed the archive of $vname"
}

@test "podman --runtime oci-vtpm-runtime: podman stop archives a named vTPM, podman start restores it (same EK)" {
	requires_podman
	stop_start shim --hooks-dir "$T/no-hooks" --runtime "$T/shim"
}

@test "podman --hooks-dir (oci-hooks file): podman stop archives a named vTPM, podman start restores it (same EK)" {
	requires_podman
	hooks_dir "$T/hooks.d" oci-vtpm.json
	stop_start hooks --hooks-dir "$T/hooks.d" --runtime runc
}

@test "podman --hooks-dir: measured launch: the quote verifies and the log replays; the log names podman and the args; another arg is caught" {
	requires_podman
	ov_write_config ".master_key = \"$T/keys/master.key\" | .ca_key = \"$T/ca/ca.key\" | .ca_cert = \"$T/ca/ca.pem\""
	ov_requires_init
	local name id x=$T/xfer priv=$T/verifier ex=$OV_REPO/examples/attestation nonce cfg
	hooks_dir "$T/hooks.d" oci-vtpm.json
	mkdir -p "$x"
	name=$(pm_name measured)
	run pm --hooks-dir "$T/hooks.d" --runtime runc run -d --name "$name" \
		--annotation io.oci-vtpm.enable=true --annotation io.oci-vtpm.ek-cert=true \
		--env API_KEY=s3cr3t-value "${RUN_OPTS[@]}" -v "$ex:/attest/bin:ro" -v "$x:/attest/xfer" \
		"$IMAGE" sleep 600
	assert_success
	id=$(pm_register "$name")
	side() { pm exec -e "TPM2TOOLS_TCTI=$OV_TCTI" "$name" /attest/bin/tpm-side.sh "$1" /attest/xfer "${@:2}"; }
	run side evidence
	assert_success
	"$ex/verifier.sh" check-ek "$x" "$T/ca/ca.pem"
	"$ex/verifier.sh" challenge "$x" "$priv"
	side activate
	"$ex/verifier.sh" check-secret "$x" "$priv"
	nonce=$("$ex/verifier.sh" nonce)
	side quote "$nonce"

	# The policy from the config podman gave the runtime.
	cfg=$(pm_config "$name")
	jq '{args: .process.args, mounts: [.mounts[].destination]}' "$cfg" >"$T/policy.json"
	run "$ex/verifier.sh" attest "$x" "$priv" "$T/policy.json" "$nonce"
	assert_success
	assert_output --partial "event log replays to the quoted PCR 11"
	assert_output --partial '"engine":"podman"'
	run ovadm log "$id"
	assert_success
	assert_output --partial API_KEY
	refute_output --partial s3cr3t
	cmp <(jq -S . <<<"$output") <(jq -S . "$x/launch.cel.json")

	jq '.args = ["sleep", "601"]' "$T/policy.json" >"$T/p2.json"
	run "$ex/verifier.sh" check-launch "$x" "$priv" "$T/p2.json"
	assert_failure
	assert_output --partial 'policy: process.args is ["sleep","600"]'
	run pm rm -f "$name"
	assert_success
}
