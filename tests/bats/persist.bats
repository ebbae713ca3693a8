#!/usr/bin/env bats
# Persistent vTPM identity: encrypted archives, restore at start, archive at
# poststop, the oci-vtpm admin tool. Socket backend, runc (and crun once).
# See helpers.bash for the harness; every test ends with its leak check.

load helpers

NV=0x1500016
PERSIST=0x81000001
DIGEST=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ZERO_PCR=0x$(printf '0%.0s' {1..64})

setup_file() { ov_setup_file; }
setup() {
	ov_setup
	MASTER_KEY=$T/keys/master.key
	export MASTER_KEY
	pv_config .
}
teardown() {
	# Mounts this file made under $T go first: the leak check counts them.
	[ -z "${T:-}" ] || pv_umount_all
	ov_teardown
}

# pv_umount_all: unmount what pv_mount_tmpfs mounted, newest first.
pv_umount_all() {
	local m
	[ -f "$T/pv-mounts" ] || return 0
	while read -r m; do
		[ -n "$m" ] || continue
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done < <(tac "$T/pv-mounts")
	rm -f "$T/pv-mounts"
}

# pv_config [JQ-FILTER]: the test settings plus master_key under $T.
pv_config() { ov_write_config ".master_key = \"$MASTER_KEY\" | ${1:-.}"; }

# ovadm ARGS...: the admin tool on this test's settings.

requires_cli() {
	requires root jq busybox swtpm tpm2-tools hook nsenter
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built (run make)"
}

# pv_requires [RUNTIME]: features, then a fresh master key.
pv_requires() {
	requires_cli
	[ $# -eq 0 ] || requires "$1"
	run ovadm init
	assert_success
	assert_output --partial "$MASTER_KEY"
	[ "$(stat -c %a "$MASTER_KEY")" = 600 ] || fail "master key mode $(stat -c %a "$MASTER_KEY")"
}

# pv_bundle LABEL [NAME]: an enabled bundle, with vTPM name NAME if given.
pv_bundle() { ov_bundle "$1" io.oci-vtpm.enable=true ${2:+"io.oci-vtpm.name=$2"}; }

# Shell snippets run inside a container (TCTI: the socket backend).
TC="-T $OV_TCTI"
# EK=<sha256 of the RSA EK public>
SH_EK="cd /tmp && tpm2_createek $TC -c ek.ctx -G rsa -u ek.pub >/dev/null && echo EK=\$(sha256sum ek.pub | cut -d' ' -f1) && tpm2_flushcontext $TC -t >/dev/null"
# sh_nvwrite VALUE: define (if needed) and write NV index $NV
sh_nvwrite() {
	printf '%s' "cd /tmp && printf %s '$1' >nv.in && { tpm2_nvreadpublic $TC $NV >/dev/null 2>&1 || tpm2_nvdefine $TC $NV -C o -s ${#1} -a 'ownerread|ownerwrite' >/dev/null; } && tpm2_nvwrite $TC $NV -C o -i nv.in && echo NVWRITE_OK"
}
# sh_nvread LEN: NV=<value>
sh_nvread() { printf '%s' "echo NV=\$(tpm2_nvread $TC $NV -C o -s $1 2>&1)"; }

# pv_ek_of OUTPUT: the EK digest from an EK= line.
pv_ek_of() { sed -n 's/^EK=\([0-9a-f]\{64\}\)$/\1/p' <<<"$1" | head -n1; }

# pv_hash_tree DIR: sha256 of every file below DIR plus the list of all
# entries, for "byte-identical" comparisons.
pv_hash_tree() {
	(cd "$1" && find . -print | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# pv_gens NAME: generation numbers of NAME on disk, oldest first.
pv_gens() {
	local f
	for f in "$STATE_DIR/vtpms/$1"/gen-*.ovtpm; do
		[ -e "$f" ] || continue
		f=${f##*/gen-}
		echo $((10#${f%.ovtpm}))
	done | sort -n
}
pv_newest() { pv_gens "$1" | tail -n1; }
pv_gen_file() { printf '%s/vtpms/%s/gen-%010d.ovtpm' "$STATE_DIR" "$1" "$2"; }

# pv_answers: the TPM named by $TPM2TOOLS_TCTI answers.
pv_answers() { timeout 5 tpm2_getrandom 1 >/dev/null 2>&1; }

# ------------------------------------------------------ the hook, directly

# pv_hook_up ID [NAME]: createRuntime for a fake container ID (a dummy pid in
# its own mount namespace) with vTPM NAME; the state file is $T/ID.state.
# (A bare bundle: config.json and an empty rootfs, made much faster than
# ov_bundle; the socket backend makes rootfs/run/tpm itself.)
pv_hook_up() {
	local id=$1 b=$T/hb/$1
	mkdir -p "$b/rootfs"
	jq -n --arg n "${2:-}" '{ociVersion: "1.0.2", root: {path: "rootfs"},
		annotations: ({"io.oci-vtpm.enable": "true"} + (if $n == "" then {} else {"io.oci-vtpm.name": $n} end))}' \
		>"$b/config.json"
	ov_state "$id" "$b" "$(ov_dummy_pid)" >"$T/$id.state"
	ov_hook createRuntime "$T/$id.state"
}

# pv_hook_down ID: poststop for it.
pv_hook_down() { ov_hook poststop "$T/$1.state"; }

# htpm, pv_host_ek, pv_host_nvwrite: helpers.bash (ov_htpm, ov_host_*).
htpm() { ov_htpm "$@"; }
pv_host_ek() { ov_host_ek "$@"; }
pv_host_nvwrite() { ov_host_nvwrite "$@"; }
pv_host_nvread() { ov_host_nvread "$@"; }

# ============================================================================
# 1. The identity survives the container.

identity_survives() {
	local rt=$1 b id ek1 ek2 eky eka ekb value
	pv_requires "$rt"
	value="persist-$RANDOM$RANDOM"

	b=$(pv_bundle x1 X)
	ov_sh "$b" "set -e
		$SH_EK
		$(sh_nvwrite "$value")
		cd /tmp && tpm2_createprimary $TC -C o -c prim.ctx >/dev/null
		tpm2_evictcontrol $TC -C o -c prim.ctx $PERSIST >/dev/null
		tpm2_flushcontext $TC -t >/dev/null
		tpm2_getcap $TC handles-persistent | sed 's/^/PERSISTENT=/'
		tpm2_pcrextend $TC 16:sha256=$DIGEST
		echo PCR16=\$(tpm2_pcrread $TC sha256:16 | grep -o '0x[0-9A-Fa-f]*')"
	id=$(ov_new_id x1)
	run ov_run "$rt" "$id" "$b"
	assert_success
	assert_line NVWRITE_OK
	assert_line --partial "PERSISTENT=- $PERSIST"
	refute_line "PCR16=$ZERO_PCR"
	ek1=$(pv_ek_of "$output")
	[ -n "$ek1" ] || fail "no EK from the first container: $output"
	[ "$(pv_newest X)" -ge 1 ] || fail "no generation archived for X: $(ls -la "$STATE_DIR/vtpms/X" 2>&1)"

	b=$(pv_bundle x2 X)
	ov_sh "$b" "$SH_EK
		$(sh_nvread ${#value})
		tpm2_getcap $TC handles-persistent | sed 's/^/PERSISTENT=/'
		echo PCR16=\$(tpm2_pcrread $TC sha256:16 | grep -o '0x[0-9A-Fa-f]*')"
	id=$(ov_new_id x2)
	run ov_run "$rt" "$id" "$b"
	assert_success
	ek2=$(pv_ek_of "$output")
	[ "$ek2" = "$ek1" ] || fail "vTPM X has another EK in the second container ($ek1 -> $ek2)"
	assert_line "NV=$value"
	assert_line --partial "PERSISTENT=- $PERSIST"
	assert_line "PCR16=$ZERO_PCR" # PCRs are volatile: a new boot of the same TPM

	# Another name: another TPM.
	b=$(pv_bundle y Y)
	ov_sh "$b" "$SH_EK"
	id=$(ov_new_id y)
	run ov_run "$rt" "$id" "$b"
	assert_success
	eky=$(pv_ek_of "$output")
	if [ -z "$eky" ] || [ "$eky" = "$ek1" ]; then fail "vTPM Y has X's EK (or none): '$eky'"; fi

	# No name: a new TPM every time, nothing archived.
	b=$(pv_bundle anon)
	ov_sh "$b" "$SH_EK"
	id=$(ov_new_id anon)
	run ov_run "$rt" "$id" "$b"
	assert_success
	eka=$(pv_ek_of "$output")
	id=$(ov_new_id anon)
	run ov_run "$rt" "$id" "$b"
	assert_success
	ekb=$(pv_ek_of "$output")
	if [ -z "$eka" ] || [ -z "$ekb" ]; then fail "no EK from the unnamed containers"; fi
	[ "$eka" != "$ekb" ] || fail "two unnamed containers had the same EK $eka"
	if [ "$eka" = "$ek1" ] || [ "$ekb" = "$ek1" ]; then fail "an unnamed container had X's EK"; fi
	[ "$(find "$STATE_DIR/vtpms" -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort | tr '\n' ' ')" = "X Y " ] ||
		fail "archives besides X and Y: $(ls -A "$STATE_DIR/vtpms")"
	ov_leak_check
}

@test "runc: named vTPM keeps EK, NV index, persistent handle across containers; PCRs reset; other/no name differ" {
	identity_survives runc
}

@test "crun: named vTPM keeps EK, NV index, persistent handle across containers; PCRs reset; other/no name differ" {
	identity_survives crun
}

# ============================================================================
# 2. At rest, the TPM's secrets are encrypted.

@test "at rest: an NV secret is in no file under run_dir (while running) nor state_dir (after); control without --key finds it" {
	pv_requires runc
	local secret b id ctl pid
	secret="OVSECRET-$RANDOM$RANDOM$RANDOM-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"

	# Control: the same NV write into a plain swtpm (no --key) is visible
	# to the same grep, so the grep below can find it.
	ctl=$T/control
	mkdir -p "$ctl/state"
	swtpm socket --tpm2 --server "type=unixio,path=$ctl/s.sock" --ctrl "type=unixio,path=$ctl/s.sock.ctrl" \
		--tpmstate "dir=$ctl/state" --flags not-need-init,startup-clear </dev/null >/dev/null 2>&1 3>&- &
	pid=$!
	echo "$pid" >>"$T/bgpids"
	export TPM2TOOLS_TCTI="swtpm:path=$ctl/s.sock"
	ov_wait_for 10 pv_answers
	printf '%s' "$secret" >"$T/secret.in"
	run tpm2_nvdefine "$NV" -C o -s "${#secret}" -a 'ownerread|ownerwrite'
	assert_success
	run tpm2_nvwrite "$NV" -C o -i "$T/secret.in"
	assert_success
	unset TPM2TOOLS_TCTI
	rm -f "$T/secret.in"
	run grep -r -a -l -F -s -D skip -- "$secret" "$ctl/state"
	assert_success # the control: plaintext NV data is greppable in swtpm's state
	kill "$pid"
	ov_wait_for 10 eval "! kill -0 $pid 2>/dev/null"

	b=$(pv_bundle secret X)
	ov_args "$b" sleep 600
	id=$(ov_new_id secret)
	ov_run_detached runc "$id" "$b"
	run ov_exec runc "$id" sh -c "$(sh_nvwrite "$secret") && $(sh_nvread ${#secret})"
	assert_success
	assert_line "NV=$secret"
	ls "$(ov_slot "$id")"/state-0/* >/dev/null || fail "no swtpm state under $(ov_slot "$id")/state-0"
	run grep -r -a -l -F -s -D skip -- "$secret" "$RUN_DIR"
	assert_failure 1 # not found, and no read error
	[ -z "$output" ] || fail "NV secret in plaintext under run_dir: $output"

	run ov_delete runc "$id" -f
	assert_success
	[ "$(pv_newest X)" -ge 1 ] || fail "nothing archived"
	run grep -r -a -l -F -s -D skip -- "$secret" "$STATE_DIR"
	assert_failure 1
	[ -z "$output" ] || fail "NV secret in plaintext under state_dir: $output"

	# The container's bundle had it in /tmp; nowhere else on our side.
	b=$(pv_bundle secret2 X)
	ov_sh "$b" "$(sh_nvread ${#secret})"
	id=$(ov_new_id secret2)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line "NV=$secret" # and it was archived (encrypted), not lost
	ov_leak_check
}

# ============================================================================
# 3. Another master key: refused, archive untouched.

# pv_archive NAME ROUNDS: ROUNDS start/stop cycles of vTPM NAME through the
# hook (one generation each); the first writes NV value "<NAME>-1", and so on.
pv_archive() {
	local name=$1 n id
	for n in $(seq "$2"); do
		id=$(ov_new_id "$name$n")
		pv_hook_up "$id" "$name" || return 1
		pv_host_nvwrite "$id" "$name-$n" >/dev/null || return 1
		pv_hook_down "$id" || return 1
	done
}

# pv_start_refused NAME REGEX: createRuntime for a new container with vTPM
# NAME fails with one line matching REGEX; nothing is left behind, and the
# archive tree is byte-identical.
pv_start_refused() {
	local name=$1 re=$2 id before
	before=$(pv_hash_tree "$STATE_DIR")
	id=$(ov_new_id refused)
	run --separate-stderr pv_hook_up "$id" "$name"
	ov_assert_hook_error "$re"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") left after a refused start: $(ls -A "$(ov_slot "$id")")"
	[ ! -e "$(ov_names_dir)/$name" ] || fail "claim of $name left: $(cat "$(ov_names_dir)/$name")"
	ov_no_swtpm || fail "swtpm running after a refused start: $(ov_ps "$(ov_swtpm_pids)")"
	[ "$(pv_hash_tree "$STATE_DIR")" = "$before" ] || fail "the archive changed:
$(diff <(echo "$before") <(pv_hash_tree "$STATE_DIR"))"
}

# pv_runc_refused NAME REGEX: the same through runc: the container never runs.
pv_runc_refused() {
	local name=$1 re=$2 b id before
	before=$(pv_hash_tree "$STATE_DIR")
	b=$(pv_bundle refused "$name")
	ov_sh "$b" 'echo CONTAINER_RAN'
	id=$(ov_new_id refused)
	run ov_run runc "$id" "$b"
	assert_failure
	refute_output --partial CONTAINER_RAN
	assert_output --regexp "oci-vtpm-hook: $id: .*$re"
	[ -z "$(ov_rt runc list -q)" ] || fail "runc still knows: $(ov_rt runc list)"
	[ ! -e "$(ov_slot "$id")" ] || fail "$(ov_slot "$id") left after a refused start"
	[ "$(pv_hash_tree "$STATE_DIR")" = "$before" ] || fail "the archive changed"
}

@test "wrong master key: start refused naming vTPM X and the master key; archive byte-identical" {
	pv_requires runc
	pv_archive X 1
	[ "$(pv_newest X)" = 1 ] || fail "expected generation 1 of X: $(ls -A "$STATE_DIR/vtpms/X")"
	# 32 other random bytes, 0600 root: a valid key, just not X's.
	head -c 32 /dev/urandom >"$T/other.key"
	chmod 0600 "$T/other.key"
	mv -f "$T/other.key" "$MASTER_KEY"

	pv_start_refused X 'vTPM X\b.*master key'
	pv_runc_refused X 'vTPM X\b.*master key'

	# A key file others may read is refused too, naming the file.
	chmod 0644 "$MASTER_KEY"
	pv_start_refused X "master key $MASTER_KEY"
	ov_leak_check
}

# ============================================================================
# 4. Tampered archives are refused.

# pv_flip FILE: invert one byte in the middle of FILE.
pv_flip() {
	local f=$1 off b
	off=$(($(stat -c %s "$f") / 2))
	b=$(od -An -tu1 -j "$off" -N 1 "$f" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "\\$(printf %03o $((b ^ 0xff)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

@test "tamper: flipped byte, another vTPM's generation, older generation as newest, edited meta.json: each refused" {
	pv_requires runc
	local vx fx1 fx2 fy
	pv_archive X 2
	pv_archive Y 1
	[ "$(pv_gens X | tr '\n' ' ')" = "1 2 " ] || fail "X generations: $(pv_gens X)"
	[ "$(pv_newest Y)" = 1 ] || fail "Y generations: $(pv_gens Y)"
	fx1=$(pv_gen_file X 1)
	fx2=$(pv_gen_file X 2)
	fy=$(pv_gen_file Y 1)
	vx=$T/x2.orig
	cp -p "$fx2" "$vx"

	# One flipped byte in the newest generation.
	pv_flip "$fx2"
	! cmp -s "$fx2" "$vx" || fail "the flip did not change $fx2"
	run --separate-stderr ovadm inspect X
	assert_failure
	# shellcheck disable=SC2154 # $stderr: set by run --separate-stderr
	[[ $stderr == *"vTPM X: 1 generation did not verify"* ]] || fail "inspect's error: $stderr"
	jq -e '[.generations[] | {(.generation | tostring): .verified}] | add == {"1": true, "2": false}' \
		<<<"$output" >/dev/null || fail "inspect does not single out generation 2: $output"
	pv_start_refused X 'vTPM X generation 2\b'
	pv_runc_refused X 'vTPM X generation 2\b'
	cp -p "$vx" "$fx2"

	# X's newest generation under Y's newest generation's name.
	cp -p "$fy" "$T/y1.orig"
	cp -p "$fx2" "$fy"
	pv_start_refused Y 'vTPM Y generation 1\b'
	cp -p "$T/y1.orig" "$fy"

	# An older generation of X put in place of the newest (a rollback).
	cp -p "$fx1" "$fx2"
	pv_start_refused X 'vTPM X generation 2\b'
	cp -p "$vx" "$fx2"

	# The rollback through meta.json instead: newest 2 -> 1.
	local meta=$STATE_DIR/vtpms/X/meta.json
	cp -p "$meta" "$T/meta.orig"
	sed -i 's/"newest":2,/"newest":1,/' "$meta"
	! cmp -s "$meta" "$T/meta.orig" || fail "could not edit $meta: $(cat "$meta")"
	pv_start_refused X 'vTPM X\b.*meta\.json'
	cp -p "$T/meta.orig" "$meta"

	# Put back, both start again with their data.
	local id
	id=$(ov_new_id ok)
	pv_hook_up "$id" X
	run pv_host_nvread "$id" 3
	assert_success
	assert_output X-2
	pv_hook_down "$id"
	id=$(ov_new_id ok)
	pv_hook_up "$id" Y
	run pv_host_nvread "$id" 3
	assert_output Y-1
	pv_hook_down "$id"
	ov_leak_check
}

# ============================================================================
# 5. Archiving fails on a full disk: nothing lost, gc finishes the job.

# pv_mount_tmpfs DIR SIZE: a tmpfs on DIR, unmounted in teardown.
pv_mount_tmpfs() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2,mode=0700" ovtest-tmpfs "$1" || return 1
	echo "$1" >>"$T/pv-mounts"
}

@test "disk full: the stop worker logs one line, old generations and live state kept; gc archives it later" {
	pv_requires runc
	local vt=$STATE_DIR/vtpms b id old
	pv_mount_tmpfs "$vt" 256k
	pv_archive X 1 # generation 1 (NV "X-1"), on the tmpfs
	[ "$(pv_newest X)" = 1 ] || fail "no generation 1: $(ls -A "$vt/X")"
	old=$(pv_hash_tree "$vt/X")

	b=$(pv_bundle full X)
	ov_args "$b" sleep 600
	id=$(ov_new_id full)
	ov_run_detached runc "$id" "$b"
	run ov_exec runc "$id" sh -c "$(sh_nvwrite X-2) && $(sh_nvread 3)"
	assert_success
	assert_line NV=X-2

	# Fill the tmpfs (".filler" is no valid vTPM name: it starts with a dot).
	run dd if=/dev/zero of="$vt/.filler" bs=4k
	assert_failure
	assert_output --partial 'No space left on device'

	run ov_rt runc kill "$id" KILL
	assert_success
	ov_wait_for 20 _ov_is_stopped runc "$id"
	# The archive is written after poststop returns, by its detached
	# worker (settings stop_async): the delete succeeds and says nothing;
	# the failure is one line of the hook log.
	run ov_delete runc "$id"
	assert_success
	refute_output --partial "archiving failed"
	run grep -c "error $id: " "$OV_HOOK_LOG"
	assert_output 1
	run grep "error $id: " "$OV_HOOK_LOG"
	assert_output --regexp "vTPM X generation 2.*No space left on device"
	assert_output --partial "archiving failed"
	assert_output --partial 'oci-vtpm gc'

	# Nothing lost: the old generation as it was, the live state kept (swtpm
	# stopped), the name still held by the dead container.
	[ "$(pv_hash_tree "$vt/X")" = "$old" ] ||
		fail "generation 1 or meta.json changed, or a partial file left: $(ls -la "$vt/X")"
	ov_no_swtpm || fail "swtpm still running: $(ov_ps "$(ov_swtpm_pids)")"
	[ -f "$(ov_slot "$id")/record.json" ] || fail "record gone after a failed archive"
	ls "$(ov_slot "$id")"/state-0/*permall* >/dev/null || fail "live state gone: $(ls -laR "$(ov_slot "$id")")"
	[ "$(cat "$(ov_names_dir)/X" 2>&1)" = "$id" ] || fail "claim of X: $(cat "$(ov_names_dir)/X" 2>&1)"
	# Until the live state is archived, X is not handed out again: a start
	# would restore generation 1 and fork the identity.
	local id2
	id2=$(ov_new_id full-again)
	run --separate-stderr pv_hook_up "$id2" X
	ov_assert_hook_error "vTPM X is in use by container $id"
	[ ! -e "$(ov_slot "$id2")" ] || fail "$(ov_slot "$id2") left by a refused start"

	# gc with the disk still full fails, says so, and keeps everything.
	run ovadm gc
	assert_failure
	assert_output --partial "$id"
	[ -f "$(ov_slot "$id")/record.json" ] || fail "gc dropped the record although archiving failed"

	rm -f "$vt/.filler"
	run ovadm gc
	assert_success
	assert_output --partial "collected container $id"
	[ "$(pv_newest X)" = 2 ] || fail "gc did not archive generation 2: $(ls -A "$vt/X")"
	[ ! -e "$(ov_slot "$id")" ] || fail "gc left $(ov_slot "$id")"
	[ ! -e "$(ov_names_dir)/X" ] || fail "gc left the claim of X"

	b=$(pv_bundle full2 X)
	ov_sh "$b" "$(sh_nvread 3)"
	id=$(ov_new_id full2)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line NV=X-2
	pv_umount_all
	ov_leak_check
}

@test "stop_async false: poststop fails on a full disk; the same id again: the stale live state is archived first, or the start refused; never dropped" {
	pv_requires
	pv_config '.stop_async = false' # the hook reports the archive's failure
	local vt=$STATE_DIR/vtpms id before
	pv_mount_tmpfs "$vt" 256k
	pv_archive X 1
	id=$(ov_new_id again)
	pv_hook_up "$id" X
	pv_host_nvwrite "$id" X-2
	run dd if=/dev/zero of="$vt/.filler" bs=4k
	assert_failure
	run pv_hook_down "$id"
	assert_failure
	assert_output --partial "archiving failed"
	[ -f "$(ov_slot "$id")/record.json" ] || fail "record gone after a failed archive"

	# The runtime reuses the id (podman stop/start): refused while the
	# stale state cannot be archived; it is kept as it was.
	before=$(pv_hash_tree "$(ov_slot "$id")")
	run --separate-stderr pv_hook_up "$id" X
	ov_assert_hook_error "vTPM X .*could not be archived.*No space left on device"
	[ "$(pv_hash_tree "$(ov_slot "$id")")" = "$before" ] || fail "the stale live state changed"
	ov_no_swtpm || fail "swtpm running after a refused start"

	# With space again, the same id starts with generation 2's data.
	rm -f "$vt/.filler"
	run --separate-stderr pv_hook_up "$id" X
	assert_success
	[ "$(pv_newest X)" = 2 ] || fail "the stale state was not archived first: $(ls -A "$vt/X")"
	run pv_host_nvread "$id" 3
	assert_success
	assert_output X-2
	pv_hook_down "$id"
	pv_umount_all
	ov_leak_check
}

@test "rollback: an older meta.json put back is refused naming the newer generation; no generation is ever replaced" {
	pv_requires
	local meta=$STATE_DIR/vtpms/X/meta.json g2 id
	pv_archive X 1
	cp -p "$meta" "$T/meta.1"
	id=$(ov_new_id rb0)
	pv_hook_up "$id" X
	pv_host_nvwrite "$id" X-2
	pv_hook_down "$id"
	[ "$(pv_newest X)" = 2 ] || fail "no generation 2"
	g2=$(sha256sum "$(pv_gen_file X 2)")
	cp -p "$meta" "$T/meta.2"
	cp -p "$T/meta.1" "$meta" # authentic, but older

	pv_start_refused X 'vTPM X: generation 2 verifies but meta\.json names generation 1'
	run ovadm inspect X
	assert_failure
	assert_output --partial 'generation 2 verifies but meta.json names generation 1'
	[ "$(sha256sum "$(pv_gen_file X 2)")" = "$g2" ] || fail "generation 2 was replaced"

	# A running vTPM archived under the old meta.json writes above every
	# generation on disk, never over one.
	cp -p "$T/meta.1" "$T/meta.keep"
	cp -p "$T/meta.2" "$meta"
	id=$(ov_new_id rb)
	run ovadm restore X --generation 2
	assert_success
	[ "$(pv_newest X)" = 3 ] || fail "restore did not make generation 3: $(ls -A "$STATE_DIR/vtpms/X")"
	[ "$(sha256sum "$(pv_gen_file X 2)")" = "$g2" ] || fail "generation 2 was replaced"
	pv_hook_up "$id" X
	run pv_host_nvread "$id" 3
	assert_output X-2
	cp -p "$T/meta.keep" "$meta" # rolled back under a running vTPM
	pv_hook_down "$id"
	[ "$(pv_newest X)" = 4 ] || fail "poststop did not write generation 4: $(ls -A "$STATE_DIR/vtpms/X")"
	[ "$(sha256sum "$(pv_gen_file X 2)")" = "$g2" ] || fail "generation 2 was replaced"
	id=$(ov_new_id rb2)
	pv_hook_up "$id" X
	run pv_host_nvread "$id" 3
	assert_output X-2
	pv_hook_down "$id"
	ov_leak_check
}

@test "poststop reads swtpm's state dir as hostile: a FIFO does not hang it, a hard link or another owner is refused; nothing lost" {
	pv_requires
	# The archive's refusals, as the poststop's own errors (a stop worker,
	# the default, runs the same code and logs them).
	pv_config '.stop_async = false'
	local id sd
	id=$(ov_new_id fifo)
	pv_hook_up "$id" X
	pv_host_nvwrite "$id" X-1
	sd=$(ov_slot "$id")/state-0
	mkfifo "$sd/fifo"
	chown tss: "$sd/fifo"
	OV_TIMEOUT=20 run pv_hook_down "$id"
	((status != 124 && status != 137)) || fail "poststop hung on a FIFO in swtpm's state dir"
	assert_failure
	assert_output --partial "fifo is not a regular file"
	assert_output --partial "archiving failed"
	rm "$sd/fifo"
	ln "$sd/tpm2-00.permall" "$sd/extra"
	run pv_hook_down "$id"
	assert_failure
	assert_output --partial "has 2 links"
	rm "$sd/extra"
	: >"$sd/rootfile"
	run pv_hook_down "$id"
	assert_failure
	assert_output --regexp "rootfile is owned by uid 0, not [1-9]"
	rm "$sd/rootfile"
	[ -z "$(pv_gens X)" ] || fail "a generation was written: $(pv_gens X)"
	run pv_hook_down "$id"
	assert_success
	[ "$(pv_newest X)" = 1 ] || fail "no generation 1"
	id=$(ov_new_id fifo2)
	pv_hook_up "$id" X
	run pv_host_nvread "$id" 3
	assert_output X-1
	pv_hook_down "$id"
	ov_leak_check
}

# ============================================================================
# 6. One container per name at a time.

@test "same name twice: the second container is refused while the first runs, starts after it is gone" {
	pv_requires runc
	local ba bb ida idb ek
	ba=$(pv_bundle a X)
	ov_args "$ba" sleep 600
	ida=$(ov_new_id a)
	ov_run_detached runc "$ida" "$ba"
	run ov_exec runc "$ida" sh -c "$SH_EK"
	assert_success
	ek=$(pv_ek_of "$output")
	[ -n "$ek" ] || fail "no EK in A: $output"

	bb=$(pv_bundle b X)
	ov_sh "$bb" "echo CONTAINER_RAN; $SH_EK"
	idb=$(ov_new_id b)
	run ov_run runc "$idb" "$bb"
	assert_failure
	refute_output --partial CONTAINER_RAN
	assert_output --partial "oci-vtpm-hook: $idb: vTPM X is in use by container $ida"
	[ ! -e "$(ov_slot "$idb")" ] || fail "$(ov_slot "$idb") left by the refused start"
	[ "$(cat "$(ov_names_dir)/X")" = "$ida" ] || fail "claim of X lost: $(cat "$(ov_names_dir)/X" 2>&1)"

	# The refusal did not touch A's TPM.
	[ "$(ov_swtpm_count "$ida")" -eq 1 ] || fail "A's swtpm: $(ov_ps "$(ov_swtpm_pids "$ida")")"
	run ov_exec runc "$ida" sh -c "$SH_EK"
	assert_success
	[ "$(pv_ek_of "$output")" = "$ek" ] || fail "A's TPM changed or does not answer: $output"

	run ov_delete runc "$ida" -f
	assert_success
	[ ! -e "$(ov_names_dir)/X" ] || fail "claim of X left after A was deleted"
	run ov_run runc "$idb" "$bb"
	assert_success
	assert_line CONTAINER_RAN
	[ "$(pv_ek_of "$output")" = "$ek" ] || fail "B did not get vTPM X: $output"
	ov_leak_check
}

# ============================================================================
# 7. rotate-key survives a SIGKILL at every rename.

pv_key_id() { ovadm inspect "$1" | jq -r .key_id; }

# pv_all_verify NAME...: inspect shows each with every generation verified.
pv_all_verify() {
	local name out
	for name in "$@"; do
		out=$(ovadm inspect "$name") || {
			echo "inspect $name failed: $out"
			return 1
		}
		jq -e '(.verify_error == null) and (.error == null) and (.generations | length > 0)
			and all(.generations[]; .verified == true)' <<<"$out" >/dev/null || {
			echo "$name does not verify: $out"
			return 1
		}
	done
}

@test "rotate-key: SIGKILL at the Nth rename (N=1..5) never loses a vTPM; a rerun completes; EK kept" {
	pv_requires runc
	command -v strace >/dev/null || skip "strace not installed"
	local name id ek0 key0 n killed=0 b had_new
	for name in K1 K2 K3; do
		id=$(ov_new_id "$name")
		pv_hook_up "$id" "$name"
		if [ "$name" = K1 ]; then
			ek0=$(pv_host_ek "$id")
			[ -n "$ek0" ] || fail "no EK for K1"
		fi
		pv_hook_down "$id"
	done
	run pv_all_verify K1 K2 K3
	assert_success
	key0=$(pv_key_id K1)

	# strace counts `when=` per syscall, not across rename/renameat/
	# renameat2: learn the order of the rename-family calls of one full
	# rotation, then aim each SIGKILL at the Nth of them overall.
	local -a seq
	run strace -f -qq -o "$T/strace.dry" -e trace=rename,renameat,renameat2 "$OV_CLI" --config "$CFG" rotate-key
	assert_success
	mapfile -t seq < <(sed -n 's/^[0-9]* *\(rename[a-z0-9]*\)(.*/\1/p' "$T/strace.dry")
	[ "${#seq[@]}" -ge 4 ] || fail "expected >= 4 renames (3 meta.json + the key): $(cat "$T/strace.dry")"
	run pv_all_verify K1 K2 K3
	assert_success

	for n in 1 2 3 4 5; do
		local before sc k i inject=()
		before=$(sha256sum <"$MASTER_KEY")
		if ((n <= ${#seq[@]})); then
			sc=${seq[n - 1]}
			k=0
			for ((i = 0; i < n; i++)); do [ "${seq[i]}" = "$sc" ] && k=$((k + 1)); done
			inject=(-e "inject=$sc:signal=KILL:when=$k")
		fi
		run strace -f -qq -o "$T/strace.$n" -e trace=rename,renameat,renameat2 "${inject[@]}" \
			"$OV_CLI" --config "$CFG" rotate-key
		if ((n <= ${#seq[@]})); then
			[ "$status" -eq 137 ] || fail "rotate-key not killed at rename $n ($sc #$k): status $status: $output"
			killed=$((killed + 1))
		else
			[ "$status" -eq 0 ] || fail "rotate-key with no rename killed: status $status: $output"
		fi
		run pv_all_verify K1 K2 K3
		[ "$status" -eq 0 ] || fail "after a SIGKILL at rename $n: $output"
		[ -f "$MASTER_KEY" ] || fail "master key gone after a SIGKILL at rename $n"
		# A start finds the right key too.
		id=$(ov_new_id "k$n")
		run --separate-stderr pv_hook_up "$id" K2
		# shellcheck disable=SC2154 # $stderr: set by run --separate-stderr
		[ "$status" -eq 0 ] || fail "start of K2 after a SIGKILL at rename $n: $stderr"
		pv_hook_down "$id"

		# A kill after master.key.new became durable is resumed with that
		# key, not a fresh one (that would strand the rewrapped vTPMs).
		had_new=0
		[ ! -e "$MASTER_KEY.new" ] || had_new=1
		run ovadm rotate-key
		assert_success
		assert_output --partial 'master key rotated'
		((had_new == 0)) || assert_output --partial 'resuming'
		[ ! -e "$MASTER_KEY.new" ] || fail "$MASTER_KEY.new left after a completed rotation"
		[ "$(sha256sum <"$MASTER_KEY")" != "$before" ] || fail "the key did not change (round $n)"
		run pv_all_verify K1 K2 K3
		[ "$status" -eq 0 ] || fail "after the rerun (round $n): $output"
	done
	((killed == (${#seq[@]} < 5 ? ${#seq[@]} : 5))) || fail "$killed runs killed"

	[ ! -e "$MASTER_KEY.new" ] || fail "$MASTER_KEY.new left"
	[ "$(ls -A "$(dirname "$MASTER_KEY")")" = master.key ] ||
		fail "key directory holds more than the key: $(ls -A "$(dirname "$MASTER_KEY")")"
	[ "$(pv_key_id K1)" != "$key0" ] || fail "key id unchanged"
	[ "$(pv_key_id K1)" = "$(pv_key_id K3)" ] || fail "K1 and K3 under different keys"

	b=$(pv_bundle k1 K1)
	ov_sh "$b" "$SH_EK"
	id=$(ov_new_id k1)
	run ov_run runc "$id" "$b"
	assert_success
	[ "$(pv_ek_of "$output")" = "$ek0" ] || fail "K1's EK changed across key rotations: $output"
	ov_leak_check
}

# A SIGKILL (or power loss) while the new key is being written. The key is
# written whole under a temporary name and only then linked to
# master.key.new, so no short key is ever visible: a rerun recovers, and
# starts of new vTPMs keep working. (rotate-key's first write is the key.)
@test "rotate-key: SIGKILL while writing master.key.new: a rerun recovers, new vTPMs still start" {
	pv_requires
	command -v strace >/dev/null || skip "strace not installed"
	local id
	pv_archive K1 1
	run strace -f -qq -o /dev/null -e trace=write \
		-e inject=write:signal=KILL:when=1 "$OV_CLI" --config "$CFG" rotate-key
	[ "$status" -eq 137 ] || fail "rotate-key was not killed at its key write: $status $output"
	[ ! -e "$MASTER_KEY.new" ] || fail "a half-written $MASTER_KEY.new is visible"
	run pv_all_verify K1
	assert_success
	id=$(ov_new_id new)
	run --separate-stderr pv_hook_up "$id" NEW
	# shellcheck disable=SC2154 # $stderr: set by run --separate-stderr
	[ "$status" -eq 0 ] || fail "a new named vTPM cannot start after the crash: $stderr"
	pv_hook_down "$id"
	run ovadm rotate-key
	assert_success
	[ ! -e "$MASTER_KEY.new" ] || fail "$MASTER_KEY.new left"
	run compgen -G "$MASTER_KEY*.tmp.*"
	[ "$status" -ne 0 ] || fail "temporary key files left: $output"
	run pv_all_verify K1 NEW
	assert_success
	ov_leak_check
}

# ============================================================================
# 8. gc collects what a crash or a reboot left.

# pv_gone PID...: no such processes, not even zombies. (An orphan's zombie
# lives until pid 1 reaps it; the product counts a zombie with the recorded
# start time as alive, so the tests wait for the reaping.)
pv_gone() {
	local p
	for p in "$@"; do [ ! -e "/proc/$p" ] || return 1; done
}
pv_starttime() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $20}'; }

@test "gc: a named container killed without poststop is archived; record and claim removed; data kept" {
	pv_requires runc
	local b id spid ipid cg
	pv_archive X 1
	b=$(pv_bundle crash X)
	ov_args "$b" sleep 600
	id=$(ov_new_id crash)
	ov_run_detached runc "$id" "$b"
	run ov_exec runc "$id" sh -c "$(sh_nvwrite X-c)"
	assert_success
	assert_line NVWRITE_OK

	# The crash: swtpm and the container's init die, and the runtime
	# forgets the container, so no poststop ever runs.
	spid=$(ov_swtpm_pids "$id")
	ipid=$(ov_rt runc state "$id" | jq -r .pid)
	[ -n "$spid" ] && [ "$ipid" -gt 1 ] || fail "swtpm '$spid', init '$ipid'"
	cg=$(jq -r '.cgroup_paths // {} | .[]' "$T/rt/runc/$id/state.json" | sort -u)
	kill -KILL "$spid" "$ipid"
	ov_wait_for 30 pv_gone "$spid" "$ipid"
	rm -rf "${T:?}/rt/runc/$id"
	for b in $cg; do rmdir "$b" 2>/dev/null || true; done
	[ -f "$(ov_slot "$id")/record.json" ] && [ "$(cat "$(ov_names_dir)/X")" = "$id" ] ||
		fail "expected the dead container's record and claim"

	run ovadm gc
	assert_success
	assert_output --partial "collected container $id"
	[ "$(pv_newest X)" = 2 ] || fail "X not archived by gc: $(pv_gens X)"
	[ ! -e "$(ov_slot "$id")" ] || fail "gc left $(ov_slot "$id"): $(ls -A "$(ov_slot "$id")")"
	[ ! -e "$(ov_names_dir)/X" ] || fail "gc left the claim of X"
	run pv_all_verify X
	assert_success

	b=$(pv_bundle after X)
	ov_sh "$b" "$(sh_nvread 3)"
	id=$(ov_new_id after)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line NV=X-c
	ov_leak_check
}

@test "gc: a record from before a reboot is collected without killing the live process its pids now name" {
	pv_requires
	local id spid sleeper st
	id=$(ov_new_id boot)
	pv_hook_up "$id" R
	pv_host_nvwrite "$id" R-1
	spid=$(ov_swtpm_pids "$id")
	kill -KILL "$spid" # "the reboot"
	ov_wait_for 10 ov_no_swtpm "$id"

	# After the "reboot" the recorded pids belong to somebody else.
	sleep 600 >/dev/null 2>&1 3>&- &
	sleeper=$!
	echo "$sleeper" >>"$T/bgpids"
	st=$(pv_starttime "$sleeper")
	jq -c --argjson p "$sleeper" --argjson s "$st" '.boot_id = "00000000-0000-4000-8000-000000000000"
		| .tpms[0].pid = $p | .tpms[0].starttime = $s
		| .container_pid = $p | .container_starttime = $s' \
		"$(ov_slot "$id")/record.json" >"$T/record.json"
	install -m 0600 "$T/record.json" "$(ov_slot "$id")/record.json"

	run ovadm gc
	assert_success
	assert_output --partial "collected container $id"
	kill -0 "$sleeper" && [ "$(pv_starttime "$sleeper")" = "$st" ] ||
		fail "gc killed pid $sleeper, which the stale record named"
	[ ! -e "$(ov_slot "$id")" ] || fail "gc left $(ov_slot "$id")"
	[ ! -e "$(ov_names_dir)/R" ] || fail "gc left the claim of R"

	# R's state, as it was at the "reboot", is R's newest generation.
	id=$(ov_new_id boot2)
	pv_hook_up "$id" R
	run pv_host_nvread "$id" 3
	assert_success
	assert_output R-1
	pv_hook_down "$id"
	ov_leak_check
}

@test "gc: an swtpm in run_dir without a record is stopped; a live vTPM is left alone" {
	pv_requires
	local pid live lost lpid
	live=$(ov_new_id live)
	pv_hook_up "$live" L
	pv_host_nvwrite "$live" L-1
	echo ghost >>"$T/ids" # for the leak check
	mkdir -p "$(ov_slot ghost)/state-0"
	swtpm socket --tpm2 --server "type=unixio,path=$T/x.sock" --ctrl "type=unixio,path=$T/x.ctrl" \
		--tpmstate "dir=$(ov_slot ghost)/state-0" --flags not-need-init </dev/null >/dev/null 2>&1 3>&- &
	pid=$!
	echo "$pid" >>"$T/bgpids"
	ov_wait_for 10 test -S "$T/x.ctrl"
	ov_swtpm_pids | grep -qx "$pid" || fail "expected swtpm $pid: $(ov_swtpm_pids)"

	# One of ours whose directory was removed under it (it runs there,
	# with a relative state dir: its cwd tells whose it is).
	lost=$(ov_new_id lost)
	pv_hook_up "$lost"
	lpid=$(ov_swtpm_pids "$lost")
	[ -n "$lpid" ] || fail "no swtpm for $lost"
	[ "$(readlink "/proc/$lpid/cwd")" = "$(ov_slot "$lost")" ] || fail "swtpm $lpid runs in $(readlink "/proc/$lpid/cwd")"
	rm -rf "$(ov_slot "$lost")"

	run ovadm gc
	assert_success
	assert_output --partial "stopped swtpm $pid of container ghost"
	assert_output --partial "stopped swtpm $lpid of container $lost"
	ov_wait_for 10 pv_gone "$pid" "$lpid" || fail "swtpm $pid or $lpid still runs after gc"
	[ ! -e "$(ov_slot ghost)" ] || fail "gc left $(ov_slot ghost)"

	# The live one: untouched, still answering, still holding its name.
	refute_output --partial "$live"
	[ "$(cat "$(ov_names_dir)/L")" = "$live" ] || fail "gc dropped the claim of a live vTPM"
	run pv_host_nvread "$live" 3
	assert_success
	assert_output L-1
	pv_hook_down "$live"
	ov_leak_check
}

# ============================================================================
# 9. The admin tool.

@test "admin: list, export/rm/import (same EK), corrupted import refused, restore of an older generation" {
	pv_requires runc
	local b id ek exp
	# Generation 1: EK and NV "X-1" (container), generation 2: NV "X-2" (hook).
	b=$(pv_bundle g1 X)
	ov_sh "$b" "$SH_EK && $(sh_nvwrite X-1)"
	id=$(ov_new_id g1)
	run ov_run runc "$id" "$b"
	assert_success
	assert_line NVWRITE_OK
	ek=$(pv_ek_of "$output")
	[ -n "$ek" ] || fail "no EK: $output"
	id=$(ov_new_id g2)
	pv_hook_up "$id" X
	pv_host_nvwrite "$id" X-2
	pv_hook_down "$id"
	[ "$(pv_gens X | tr '\n' ' ')" = "1 2 " ] || fail "X generations: $(pv_gens X)"

	# list while a container uses X.
	id=$(ov_new_id user)
	pv_hook_up "$id" X
	run ovadm list --json
	assert_success
	jq -e --arg id "$id" 'map(select(.name == "X")) | length == 1 and (.[0]
		| .newest == 2 and ([.generations[].generation] == [1, 2])
		and (.generations | all(.size > 0)) and .size == ([.generations[].size] | add)
		and .in_use_by == $id and (.last_archived | type) == "number")' <<<"$output" >/dev/null ||
		fail "list --json: $output"
	run ovadm list
	assert_success
	assert_line --regexp "^X +2 +[0-9]+ +[0-9T:-]+Z +$id\$"

	# export, then rm: refused while in use, allowed after.
	exp=$T/x.export
	run ovadm export X "$exp"
	assert_success
	[ -s "$exp" ] || fail "no export file"
	[ "$(stat -c %a "$exp")" = 600 ] || fail "export file mode $(stat -c %a "$exp")"
	run ovadm rm X
	assert_failure
	assert_output --partial "vTPM X is in use by container $id"
	[ -f "$STATE_DIR/vtpms/X/meta.json" ] || fail "rm removed X while in use"
	pv_hook_down "$id"
	run ovadm list --json
	jq -e 'map(select(.name == "X"))[0].in_use_by == null' <<<"$output" >/dev/null ||
		fail "X still in use after its container stopped: $output"
	[ "$(pv_newest X)" = 3 ] || fail "expected generation 3 of X: $(pv_gens X)"
	run ovadm rm X
	assert_success
	[ ! -e "$STATE_DIR/vtpms/X" ] || fail "rm left $(ls -A "$STATE_DIR/vtpms/X")"
	run ovadm inspect X
	assert_failure
	assert_output --partial 'no vTPM named X'

	# A corrupted export is refused and leaves nothing.
	cp "$exp" "$T/bad.export"
	pv_flip "$T/bad.export"
	run ovadm import "$T/bad.export"
	assert_failure
	assert_output --partial "$T/bad.export"
	assert_output --regexp 'vTPM X generation [0-9]+ does not verify'
	[ "${#lines[@]}" -eq 1 ] || fail "expected one error line: $output"
	[ -z "$(ls -A "$STATE_DIR/vtpms")" ] || fail "a refused import left: $(ls -A "$STATE_DIR/vtpms")"
	head -c 100 "$exp" >"$T/short.export"
	run ovadm import "$T/short.export"
	assert_failure
	assert_output --partial 'short.export'
	[ -z "$(ls -A "$STATE_DIR/vtpms")" ] || fail "a refused import left: $(ls -A "$STATE_DIR/vtpms")"

	run ovadm import "$exp"
	assert_success
	assert_output --partial 'imported vTPM X'
	run ovadm import "$exp"
	assert_failure
	assert_output --partial 'already exists'
	run pv_all_verify X
	assert_success
	b=$(pv_bundle imported X)
	ov_sh "$b" "$SH_EK && $(sh_nvread 3)"
	id=$(ov_new_id imported)
	run ov_run runc "$id" "$b"
	assert_success
	[ "$(pv_ek_of "$output")" = "$ek" ] || fail "imported X has another EK: $output"
	assert_line NV=X-2

	# restore: the generation before "X-3" was written becomes the newest.
	id=$(ov_new_id h1)
	pv_hook_up "$id" X
	pv_host_nvwrite "$id" X-3
	pv_hook_down "$id"
	local old new
	old=$(pv_gens X | tail -n 2 | head -n 1) # holds X-2
	new=$(pv_newest X)                       # holds X-3
	run ovadm restore X --generation "$old"
	assert_success
	assert_output --partial "generation $old restored as generation $((new + 1))"
	[ "$(pv_newest X)" = $((new + 1)) ] || fail "restore made no new generation: $(pv_gens X)"
	run pv_all_verify X
	assert_success
	id=$(ov_new_id restored)
	pv_hook_up "$id" X
	run pv_host_nvread "$id" 3
	assert_success
	assert_output X-2 # X-3, written after generation $old, is gone
	run ovadm restore X --generation 1
	assert_failure # in use
	assert_output --partial "in use by container $id"
	pv_hook_down "$id"
	run ovadm restore X --generation 999
	assert_failure
	assert_output --partial 'generation 999'
	ov_leak_check
}
