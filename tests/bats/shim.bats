#!/usr/bin/env bats
# oci-vtpm-runtime, the runc-compatible shim, in front of real runc and crun
# (socket backend). See helpers.bash for the harness; every test ends with
# its leak check.
#
# In each test, $T/shimbin/runc and $T/shimbin/crun come first on PATH: they
# run the shim with the real runtime named in $OCI_VTPM_RUNTIME and this
# test's settings in $OCI_VTPM_CONFIG. So every helper (ov_run, ov_create,
# ov_rt, the teardown's delete) goes through the shim, crun's hybrid-cgroup
# workaround included. Bundles made by shim_bundle have no hooks, and the
# shim adds none: it starts, places and stops the vTPMs itself.

load helpers

SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}

setup_file() { ov_setup_file; }

setup() {
	ov_setup
	local rt real
	mkdir -p "$T/shimbin"
	for rt in runc crun; do
		real=$(command -v "$rt") || continue
		cat >"$T/shimbin/$rt" <<EOF
#!/bin/sh
OCI_VTPM_CONFIG='$CFG' OCI_VTPM_RUNTIME='$real' exec '$SHIM' "\$@"
EOF
		chmod 0755 "$T/shimbin/$rt"
		eval "REAL_${rt^^}=$real"
	done
	PATH=$T/shimbin:$PATH
}

teardown() { ov_teardown; }

requires_shim() {
	[ -x "$SHIM" ] || fail "$SHIM not built (run make)"
	requires root jq busybox hook "$@"
}

# shim_bundle NAME [KEY=VALUE]...: ov_bundle without hooks in config.json.
shim_bundle() {
	local b
	b=$(ov_bundle "$@")
	ov_cfg "$b" 'del(.hooks)'
	echo "$b"
}

# The runtimes log with a timestamp; compare without it.
untime() { sed -E 's/time="[^"]*" //'; }

# no_hook_ran BUNDLE: the config.json the runtime got names no oci-vtpm-hook
# (runc and crun run only the hooks config.json names) and no hook logged.
# no_hook_ran BUNDLE [LINE]: ... (in the log from line LINE on).
no_hook_ran() {
	[ "$(jq '[.hooks // {} | .[] | .[] | select(.path | endswith("/oci-vtpm-hook"))] | length' \
		"$1/config.json")" = 0 ] || fail "hooks in config.json: $(jq -c .hooks "$1/config.json")"
	! tail -n "+${2:-1}" "$OV_HOOK_LOG" | grep 'oci-vtpm-hook\[' || fail "a hook ran"
}

# our_hooks BUNDLE STAGE: how many entries of hooks.STAGE are oci-vtpm-hook.
our_hooks() {
	jq --arg s "$2" '[.hooks[$s] // [] | .[] | select(.path | endswith("/oci-vtpm-hook"))] | length' \
		"$1/config.json"
}

# ----------------------------------------------------------------------------
# Pass-through: the shim is invisible.

@test "shim: --version (its own line, then runc's), -v, state, list, delete, kill and unknown subcommands pass through to runc unchanged" {
	requires_shim runc
	local root=$T/rt/runc b id cmd
	b=$(shim_bundle plain)
	ov_args "$b" sleep 600
	id=$(ov_new_id plain)

	# "$@" through the shim and straight to runc: same stdout, stderr, status.
	same() {
		local s_status s_out s_err
		run --separate-stderr timeout 30 "$T/shimbin/runc" "$@"
		s_status=$status s_out=$output s_err=$(untime <<<"$stderr")
		run --separate-stderr timeout 30 "$REAL_RUNC" "$@"
		[ "$s_status" = "$status" ] || fail "runc $*: exit $s_status through the shim, $status without"
		[ "$s_out" = "$output" ] || fail "runc $*: stdout differs:
shim: $s_out
runc: $output"
		[ "$s_err" = "$(untime <<<"$stderr")" ] || fail "runc $*: stderr differs:
shim: $s_err
runc: $stderr"
	}
	# --version alone: the shim's own line first, then runc's, unchanged
	# (cli.bats); -v and --version among other options are runc's alone.
	run --separate-stderr timeout 30 "$T/shimbin/runc" --version
	assert_success
	[ "$(printf '%s\n' "${lines[@]:1}")" = "$("$REAL_RUNC" --version)" ] || fail "shim --version: $output"
	same -v
	same --debug --version
	same --root "$root" list
	same --root "$root" state nosuch
	same --root "$root" delete nosuch
	same --root "$root" kill nosuch KILL
	same --root "$root" frobnicate
	same --root "$root" state
	same --root=/nonexistent/x list

	# A container made through the shim (no vTPM asked for).
	cp "$b/config.json" "$T/config.before"
	run ov_create runc "$id" "$b"
	assert_success
	cmp "$T/config.before" "$b/config.json" || fail "the shim rewrote a config.json that asks for no vTPM"
	same --root "$root" state "$id"
	same --root "$root" list
	same --root "$root" list -q
	same --root "$root" ps "$id"
	same --root "$root" kill "$id" NOSUCHSIGNAL
	run timeout 30 "$T/shimbin/runc" --root "$root" delete "$id"
	assert_success
	assert_output ""
	run "$REAL_RUNC" --root "$root" list -q
	assert_output ""
	[ -z "$(ov_run_entries)" ] || fail "run_dir not empty: $(ov_run_entries)"
}

@test "shim: argv reaches the real runtime untouched, argv[0] replaced; the settings' runtime wins over \$OCI_VTPM_RUNTIME" {
	requires_shim
	local b id fake=$T/fake-runtime
	cat >"$fake" <<EOF
#!/bin/sh
printf '%s\n' "\$0" "\$@" >'$T/argv'
exit \${FAKE_EXIT:-0}
EOF
	chmod 0755 "$fake"
	ov_write_config ".runtime = \"$fake\""
	b=$(shim_bundle argv io.oci-vtpm.enable=true)

	# create of a bundle that asks for a vTPM: edited, then the same argv.
	run env OCI_VTPM_CONFIG="$CFG" OCI_VTPM_RUNTIME=/bin/false "$SHIM" --root "$T/r" --log=/l \
		--debug create --bundle "$b" --pid-file "$T/p" --console-socket "$T/s" ovid1
	assert_success
	printf '%s\n' "$fake" --root "$T/r" --log=/l --debug create --bundle "$b" --pid-file "$T/p" \
		--console-socket "$T/s" ovid1 >"$T/want"
	diff -u "$T/want" "$T/argv" || fail "argv changed on its way to the runtime"
	[ "$(our_hooks "$b" createRuntime)" = 0 ] || fail "a hook added"
	[ -f "$(ov_slot ovid1)/record.json" ] || fail "no vTPM started for ovid1"
	printf '%s\n' ovid1 ovid2 ovid3 >>"$T/ids"

	# The bundle is found by --bundle, not mistaken for the subcommand.
	(cd "$b" && mv config.json c.json)
	mkdir -p "$T/create"
	mv "$b/c.json" "$T/create/config.json"
	ov_cfg "$T/create" 'del(.hooks)'
	run env OCI_VTPM_CONFIG="$CFG" "$SHIM" create --bundle create ovid2 </dev/null
	assert_failure # cwd has no ./create
	(cd "$T" && OCI_VTPM_CONFIG="$CFG" "$SHIM" create --bundle create ovid2)
	[ "$(jq -r '.annotations["io.oci-vtpm.provided-by"]' "$T/create/config.json")" = oci-vtpm-runtime ] ||
		fail "bundle 'create' not edited"

	# Pass-through: exec, exit status kept.
	run env OCI_VTPM_CONFIG="$CFG" FAKE_EXIT=5 "$SHIM" --root "$T/r" state ovid1
	assert_failure 5
	printf '%s\n' "$fake" --root "$T/r" state ovid1 >"$T/want"
	diff -u "$T/want" "$T/argv"

	# The runtime failing: its status comes back (nothing was started:
	# socket backend, no hook ran).
	run env OCI_VTPM_CONFIG="$CFG" FAKE_EXIT=3 "$SHIM" create --bundle "$T/create" ovid3
	assert_failure 3

	# delete: the runtime's argv untouched; once it succeeded, the vTPMs
	# the shim started are stopped (a failed delete leaves them).
	run env OCI_VTPM_CONFIG="$CFG" FAKE_EXIT=1 "$SHIM" --root "$T/r" delete -f ovid1
	assert_failure 1
	printf '%s\n' "$fake" --root "$T/r" delete -f ovid1 >"$T/want"
	diff -u "$T/want" "$T/argv"
	[ -f "$(ov_slot ovid1)/record.json" ] || fail "a failed delete stopped the vTPM"
	for id in ovid1 ovid2; do
		run env OCI_VTPM_CONFIG="$CFG" "$SHIM" --root "$T/r" delete "$id"
		assert_success
	done
	ov_leak_check
}

@test "shim: a bundle with a bad io.oci-vtpm.* request is refused before the runtime runs, config.json untouched" {
	requires_shim runc
	local b id
	b=$(shim_bundle bad io.oci-vtpm.enable=true io.oci-vtpm.count=99)
	id=$(ov_new_id bad)
	cp "$b/config.json" "$T/config.before"
	run --separate-stderr ov_rt runc --log "$T/runc.log" --log-format json create --bundle "$b" "$id"
	assert_failure 1
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "expected one line on stderr: $stderr"
	[[ ${stderr_lines[0]} == "oci-vtpm-runtime: $id: "*"io.oci-vtpm.count"* ]] ||
		fail "error does not name the annotation: $stderr"
	# ... and in the log the engine reads, in its format.
	run jq -r 'select(.level == "error") | .msg' "$T/runc.log"
	assert_output --partial 'oci-vtpm-runtime: '
	assert_output --partial 'io.oci-vtpm.count: bad value "99"'
	cmp "$T/config.before" "$b/config.json"
	run "$REAL_RUNC" --root "$T/rt/runc" list -q
	assert_output ""

	# An option the shim does not know, on a bundle that asks for a vTPM.
	b=$(shim_bundle unk io.oci-vtpm.enable=true)
	run --separate-stderr ov_rt runc create --frobnicate --bundle "$b" "$id"
	assert_failure 1
	[[ $stderr == *"option --frobnicate is unknown"* ]] || fail "$stderr"
}

# ----------------------------------------------------------------------------
# The container's TPM works through the shim.

shim_tpm() {
	local rt=$1 b id
	requires_shim swtpm tpm2-tools "$rt"
	b=$(shim_bundle tpm io.oci-vtpm.enable=true)
	ov_sh "$b" "echo RANDOM=\$(tpm2_getrandom -T $OV_TCTI --hex 8); exit 3"
	id=$(ov_new_id tpm)

	# run in the foreground: the container's exit status comes back.
	run ov_run "$rt" "$id" "$b"
	assert_failure 3
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	grep -q "oci-vtpm-runtime\[[0-9]*\] .*$id: started 1 TPM 2.0 vTPM" "$OV_HOOK_LOG" ||
		fail "the shim did not start the vTPM"
	no_hook_ran "$b"
	# The shim's edit: no hook; the socket directory a read-only bind
	# mount, the last one; the marker a hook would honour.
	run jq -c '.mounts[-1] | [.destination, .type, .options]' "$b/config.json"
	assert_output '["/run/tpm","bind",["bind","ro","nosuid","nodev","noexec"]]'
	run jq -r '.annotations["io.oci-vtpm.provided-by"]' "$b/config.json"
	assert_output oci-vtpm-runtime
	ov_leak_check

	# Again, the same bundle: nothing added twice; the mount now names
	# the new container's slot.
	jq 'del(.mounts[-1].source)' "$b/config.json" >"$T/config.once"
	id=$(ov_new_id tpm)
	run ov_run "$rt" "$id" "$b"
	assert_failure 3
	assert_line --regexp '^RANDOM=[0-9a-f]{16}$'
	jq 'del(.mounts[-1].source)' "$b/config.json" | cmp "$T/config.once" - ||
		fail "second run changed config.json"
	[ "$(jq -r '.mounts[-1].source' "$b/config.json")" = "$(ov_slot "$id")/private/tpm" ] ||
		fail "mount: $(jq -c '.mounts[-1]' "$b/config.json")"

	# create returns at once; the vTPM lives until delete.
	b=$(shim_bundle created io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id created)
	ov_create "$rt" "$id" "$b"
	[ "$(ov_status "$rt" "$id")" = created ] || fail "status: $(ov_status "$rt" "$id")"
	# The container is recorded as the vTPM's user (gc): its init.
	[ "$(jq .container_pid "$(ov_slot "$id")/record.json")" = "$(ov_rt "$rt" state "$id" | jq .pid)" ] ||
		fail "record: $(cat "$(ov_slot "$id")/record.json")"
	run ov_rt "$rt" start "$id"
	assert_success
	run ov_exec "$rt" "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	assert_output --regexp '^[0-9a-f]{16}$'
	run ov_delete "$rt" "$id" -f
	assert_success
	ov_leak_check
}

@test "runc through the shim: a bundle without hooks gets a working TPM (run, create/start/exec/delete)" {
	shim_tpm runc
}

@test "crun through the shim: a bundle without hooks gets a working TPM (run, create/start/exec/delete)" {
	shim_tpm crun
}

# ----------------------------------------------------------------------------
# The real runtime failing leaves nothing behind.

runtime_fails() {
	local rt=$1 b id how
	requires_shim swtpm "$rt"
	for how in create run; do
		# The program is not in the rootfs: the runtime fails after the
		# shim started the vTPM.
		b=$(shim_bundle noexec io.oci-vtpm.enable=true)
		ov_args "$b" /nonexistent/program
		id=$(ov_new_id noexec)
		if [ "$how" = create ]; then
			run ov_create "$rt" "$id" "$b"
		else
			run ov_run "$rt" "$id" "$b"
		fi
		assert_failure
		assert_output --partial /nonexistent/program # the runtime's own error
		grep -q "$id: started 1 TPM" "$OV_HOOK_LOG" || fail "$how: the shim never started the vTPM"
		ov_leak_check || fail "$rt $how: left behind after the runtime failed"

		# No rootfs at all: the runtime fails before any hook.
		b=$(shim_bundle norootfs io.oci-vtpm.enable=true)
		rm -rf "$b/rootfs"
		id=$(ov_new_id norootfs)
		if [ "$how" = create ]; then
			run ov_create "$rt" "$id" "$b"
		else
			run ov_run "$rt" "$id" "$b"
		fi
		assert_failure
		ov_leak_check || fail "$rt $how: left behind after the runtime failed"
	done
	run ov_rt "$rt" list -q
	assert_output ""
	[ "$(ov_swtpm_count)" -eq 0 ]
}

@test "runc through the shim: the runtime failing (program missing from the rootfs, no rootfs) leaves no swtpm or record" {
	runtime_fails runc
}

@test "crun through the shim: the runtime failing (program missing from the rootfs, no rootfs) leaves no swtpm or record" {
	runtime_fails crun
}

@test "shim: a failed create of an id already in use leaves the other container's vTPM running" {
	requires_shim swtpm runc
	local b1 b2 id
	b1=$(shim_bundle first io.oci-vtpm.enable=true)
	b2=$(shim_bundle second io.oci-vtpm.enable=true)
	ov_args "$b1" sleep 600
	id=$(ov_new_id dup)
	ov_run_detached runc "$id" "$b1"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "no swtpm for $id"
	run ov_rt runc create --bundle "$b2" "$id"
	assert_failure
	# Refused by the shim before runc runs: the id's vTPM is another
	# bundle's (runc would have said the id exists).
	assert_output --partial "belongs to another container (bundle $b1, not $b2)"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "the failed create stopped the running container's vTPM"
	[ -f "$(ov_slot "$id")/record.json" ] || fail "the failed create removed the running container's record"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 4
	assert_success
}

@test "shim: delete under a second runtime root with the same id leaves the first container's vTPM running" {
	requires_shim swtpm runc
	local a b id before root2=$T/rt/runc-b
	a=$(shim_bundle owner io.oci-vtpm.enable=true)
	b=$(shim_bundle plain)
	ov_args "$a" sleep 600
	ov_args "$b" sleep 600
	id=$(ov_new_id same)
	ov_cfg "$b" --arg p "ov-b-$id" '.linux.cgroupsPath = $p'
	ov_run_detached runc "$id" "$a"
	before=$(ov_swtpm_pids "$id")
	[ -n "$before" ] || fail "no swtpm for $id"
	# The same id under another root, asking for nothing, then its
	# delete through the shim: that container is not the vTPM's.
	_ov_rt_root "$root2" runc create --bundle "$b" "$id" </dev/null >/dev/null 2>&1 3>&- ||
		fail "create under $root2 failed"
	run _ov_rt_root "$root2" runc delete -f "$id"
	assert_success
	assert_output --partial "belongs to another container (bundle $a, not $b)"
	[ "$(ov_swtpm_pids "$id")" = "$before" ] ||
		fail "the second root's delete stopped the first container's swtpm"
	jq -e --arg a "$a" '.bundle == $a' "$(ov_slot "$id")/record.json" >/dev/null ||
		fail "the record changed: $(cat "$(ov_slot "$id")/record.json" 2>&1)"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 4
	assert_success
	ov_delete runc "$id" -f
	ov_no_swtpm "$id" || fail "the owner's delete did not stop its swtpm"
}

# ----------------------------------------------------------------------------
# The common path asks the runtime nothing: one runtime process per command.

@test "shim: the runtime runs once per command (no \`runc state\`): run, run -d --pid-file, create/start, delete, a failed create; run --keep leaves the vTPM to delete" {
	requires_shim swtpm runc
	local b named id root=$T/rt/runc calls=$T/calls
	# Real runc, logging each command line it gets.
	cat >"$T/logged-runc" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>'$calls'
exec '$REAL_RUNC' "\$@"
EOF
	chmod 0755 "$T/logged-runc"
	lrun() {
		OCI_VTPM_CONFIG=$CFG OCI_VTPM_RUNTIME=$T/logged-runc timeout 60 \
			"$SHIM" --root "$root" "$@" </dev/null 3>&-
	}
	# calls_are LINE...: the command lines runc got since the last call.
	calls_are() {
		local got want
		got=$(cat "$calls" 2>/dev/null || true)
		want=$(printf '%s\n' "$@")
		: >"$calls"
		[ "$got" = "$want" ] || fail "runc ran:
$got
want:
$want"
	}
	(umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".master_key = \"$T/master.key\""
	b=$(shim_bundle once io.oci-vtpm.enable=true)
	named=$(shim_bundle named io.oci-vtpm.enable=true io.oci-vtpm.name="once-$RANDOM")
	ov_args "$b" true
	ov_args "$named" true

	# A foreground run: its container is gone when runc returns.
	id=$(ov_new_id fg)
	_ov_register runc "$id"
	lrun run --bundle "$b" "$id"
	calls_are "--root $root run --bundle $b $id"
	ov_leak_check || fail "the foreground run left its vTPM"

	# run -d --pid-file of a named vTPM; it stops; delete archives it.
	id=$(ov_new_id bg)
	_ov_register runc "$id"
	lrun run -d --pid-file "$T/$id.pid" --bundle "$named" "$id"
	calls_are "--root $root run -d --pid-file $T/$id.pid --bundle $named $id"
	[ "$(jq .container_pid "$(ov_slot "$id")/record.json")" = "$(cat "$T/$id.pid")" ] ||
		fail "the pid file's container is not the recorded one"
	ov_wait_for 20 _ov_is_stopped runc "$id"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "the vTPM went before delete"
	run lrun delete "$id"
	assert_success
	calls_are "--root $root delete $id"
	ov_wait_stops # the archive is its stop worker's
	grep -q "$id: vTPM once-[0-9]* archived as generation 1" "$OV_HOOK_LOG" ||
		fail "delete did not archive the named vTPM"
	ov_leak_check || fail "delete left the vTPM"

	# create, start, delete -f of the running container.
	ov_args "$b" sleep 600
	id=$(ov_new_id cs)
	_ov_register runc "$id"
	lrun create --pid-file "$T/$id.pid" --bundle "$b" "$id"
	lrun start "$id"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "no swtpm for $id"
	lrun delete -f "$id"
	calls_are "--root $root create --pid-file $T/$id.pid --bundle $b $id" "--root $root start $id" \
		"--root $root delete -f $id"
	ov_leak_check || fail "delete -f left the vTPM"

	# A failed create (no such program): runc once, nothing left.
	ov_args "$b" /nonexistent/program
	id=$(ov_new_id failed)
	run lrun create --pid-file "$T/$id.pid" --bundle "$b" "$id"
	assert_failure
	calls_are "--root $root create --pid-file $T/$id.pid --bundle $b $id"
	ov_leak_check || fail "the failed create left its vTPM"

	# run --keep: runc keeps the stopped container, which keeps its vTPM
	# (the shim asks runc here: a run that may leave its container).
	ov_args "$b" true
	id=$(ov_new_id keep)
	_ov_register runc "$id"
	lrun run --keep --bundle "$b" "$id"
	calls_are "--root $root run --keep --bundle $b $id" "--root $root state $id"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "run --keep: the kept container's vTPM went"
	lrun delete "$id"
	calls_are "--root $root delete $id"
	ov_leak_check || fail "the kept container's delete left its vTPM"
}

@test "shim: run in the foreground passes a SIGTERM sent to the shim on and exits like the container" {
	requires_shim swtpm runc
	local b id pid rc=0
	b=$(shim_bundle sig io.oci-vtpm.enable=true)
	ov_sh "$b" 'trap "exit 7" TERM; while :; do sleep 0.1; done'
	id=$(ov_new_id sig)
	_ov_register runc "$id"
	# The wrapper execs the shim: $! is the shim itself.
	"$T/shimbin/runc" --root "$T/rt/runc" run --bundle "$b" "$id" </dev/null >"$T/sig.out" 2>&1 3>&- &
	pid=$!
	echo "$pid" >>"$T/bgpids"
	ov_wait_for 20 eval '[ "$(ov_status runc '"$id"')" = running ]'
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "no swtpm while running"
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	[ "$rc" -eq 7 ] || fail "shim exited $rc, want the container's 7; output: $(cat "$T/sig.out")"
	ov_leak_check
}

# ----------------------------------------------------------------------------
# Hooks and shim: the same vTPM, the same way out; the shim with no hook.

# same_path RUNTIME hook|shim: TPM answers, a named identity comes back,
# kill + delete and a failed create leave nothing; on the shim path no
# oci-vtpm hook is in the config.json the runtime got, and none ran.
same_path() {
	local rt=$1 how=$2 b id pid name=same-$RANDOM PATH=$PATH bs=() log0
	log0=$(($(wc -l <"$OV_HOOK_LOG" 2>/dev/null || echo 0) + 1))
	[ -f "$T/master.key" ] || (umask 077 && head -c 32 /dev/urandom >"$T/master.key")
	ov_write_config ".master_key = \"$T/master.key\""
	if [ "$how" = hook ]; then
		PATH=${PATH#"$T/shimbin:"} # the real runtime, the bundle's hooks
		mk() { ov_bundle "$@"; }
	else
		mk() { shim_bundle "$@"; }
	fi
	mkb() { b=$(mk "$@"); bs+=("$b"); }
	# A named vTPM: an NV index written in the first container is read
	# back in the second one.
	mkb named io.oci-vtpm.enable=true io.oci-vtpm.name="$name"
	ov_sh "$b" "tpm2_nvdefine -T $OV_TCTI 0x1500016 -C o -s 8 -a 'ownerread|ownerwrite' >/dev/null &&
		printf 12345678 | tpm2_nvwrite -T $OV_TCTI 0x1500016 -C o -i - && echo WROTE"
	id=$(ov_new_id named)
	run ov_run "$rt" "$id" "$b"
	assert_success
	assert_output --partial WROTE
	ov_leak_check
	ov_sh "$b" "tpm2_nvread -T $OV_TCTI 0x1500016 -C o -s 8; echo"
	id=$(ov_new_id named)
	run ov_run "$rt" "$id" "$b"
	assert_success
	assert_output --partial 12345678

	# create, start, exec; runc kill, then delete.
	mkb killed io.oci-vtpm.enable=true
	ov_args "$b" sleep 600
	id=$(ov_new_id killed)
	ov_create "$rt" "$id" "$b"
	pid=$(ov_rt "$rt" state "$id" | jq .pid)
	[ "$(jq .container_pid "$(ov_slot "$id")/record.json")" = "$pid" ] ||
		fail "$how: the container is not the vTPM's recorded user"
	ov_rt "$rt" start "$id"
	run ov_exec "$rt" "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	assert_output --regexp '^[0-9a-f]{16}$'
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "$how: $(ov_swtpm_count "$id") swtpm for $id"
	ov_rt "$rt" kill "$id" KILL
	ov_wait_for 20 _ov_is_stopped "$rt" "$id"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "$how: the vTPM went before delete"
	run ov_delete "$rt" "$id"
	assert_success
	ov_leak_check || fail "$how: left behind after kill + delete"

	# A failed create.
	mkb failed io.oci-vtpm.enable=true
	ov_args "$b" /nonexistent/program
	id=$(ov_new_id failed)
	run ov_create "$rt" "$id" "$b"
	assert_failure
	# crun runs no poststop after a failed create: on its hook path the
	# vTPM waits for gc (its container is gone).
	if [ "$rt$how" = crunhook ]; then
		run ovadm gc
		assert_success
	fi
	ov_leak_check || fail "$how: left behind after a failed create"

	if [ "$how" = shim ]; then
		for b in "${bs[@]}"; do no_hook_ran "$b" "$log0"; done
	else
		grep -q "oci-vtpm-hook\[[0-9]*\] .*$id: started 1 TPM" "$OV_HOOK_LOG" ||
			fail "the hook path did not go through the hook"
	fi
}

@test "runc, hook and shim: the same TPM, named identity, kill + delete, failed create; no hook on the shim path" {
	requires_shim swtpm tpm2-tools runc
	same_path runc hook
	same_path runc shim
}

@test "crun, hook and shim: the same TPM, named identity, kill + delete, failed create; no hook on the shim path" {
	requires_shim swtpm tpm2-tools crun
	same_path crun shim
	same_path crun hook
}

@test "shim and a hook configured all the same: one vTPM, the hook only records the container" {
	requires_shim swtpm tpm2-tools runc
	local b id wrap=$T/hw
	# The bundle's hooks (as an oci-hooks(5) file would add them) run a
	# wrapper that counts its runs, then the real hook.
	mkdir -p "$wrap"
	printf '#!/bin/sh\necho "$1" >>%s/runs\nexec %s "$@"\n' "$T" "$OV_HOOK" >"$wrap/oci-vtpm-hook"
	chmod 0755 "$wrap/oci-vtpm-hook"
	b=$(ov_bundle both io.oci-vtpm.enable=true)
	ov_cfg "$b" --arg p "$wrap/oci-vtpm-hook" '.hooks[][].path = $p'
	ov_args "$b" sleep 600
	id=$(ov_new_id both)
	ov_create runc "$id" "$b"
	[ "$(our_hooks "$b" createRuntime)" = 1 ] && [ "$(our_hooks "$b" poststop)" = 1 ] ||
		fail "hooks: $(jq -c .hooks "$b/config.json")"
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "$(ov_swtpm_count "$id") swtpm for one container"
	[ "$(grep -c "started 1 TPM" "$OV_HOOK_LOG")" -eq 1 ] || fail "$(grep "started" "$OV_HOOK_LOG")"
	! grep -q 'oci-vtpm-hook\[[0-9]*\] .*started' "$OV_HOOK_LOG" || fail "the hook started one too"
	[ "$(jq .container_pid "$(ov_slot "$id")/record.json")" = "$(ov_rt runc state "$id" | jq .pid)" ] ||
		fail "container not recorded"
	ov_rt runc start "$id"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	run ov_delete runc "$id" -f
	assert_success
	[ "$(cat "$T/runs")" = "$(printf 'createRuntime\npoststop')" ] || fail "hook runs: $(cat "$T/runs")"
	ov_leak_check

	# The marker without the shim: the hook refuses (no vTPM of that id
	# runs), and nothing is left.
	PATH=${PATH#"$T/shimbin:"}
	b=$(ov_bundle fake io.oci-vtpm.enable=true io.oci-vtpm.provided-by=oci-vtpm-runtime)
	id=$(ov_new_id fake)
	run ov_create runc "$id" "$b"
	assert_failure
	ov_leak_check
}

@test "shim and gc: a vTPM whose container is being created is kept (the shim holds it), then its recorded container keeps it" {
	requires_shim swtpm tpm2-tools runc
	local b id gate=$T/gate pid
	# A runtime whose create waits at a gate, then is runc.
	cat >"$gate.sh" <<EOF
#!/bin/sh
for a in "\$@"; do [ "\$a" = create ] && { touch '$gate.in'; while [ ! -e '$gate.go' ]; do sleep 0.1; done; }; done
exec '$REAL_RUNC' "\$@"
EOF
	chmod 0755 "$gate.sh"
	b=$(shim_bundle gc io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	id=$(ov_new_id gc)
	_ov_register runc "$id"
	OCI_VTPM_CONFIG=$CFG OCI_VTPM_RUNTIME=$gate.sh "$SHIM" --root "$T/rt/runc" create --bundle "$b" "$id" \
		</dev/null >"$T/create.out" 2>&1 3>&- &
	pid=$!
	echo "$pid" >>"$T/bgpids"
	ov_wait_for 60 test -e "$gate.in"
	# Not created yet: the shim is the record's holder; gc keeps it.
	[ "$(jq .holder_pid "$(ov_slot "$id")/record.json")" = "$pid" ] || fail "$(cat "$(ov_slot "$id")/record.json")"
	run ovadm gc
	assert_success
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "gc stopped the vTPM of a container being created"
	touch "$gate.go"
	wait "$pid" || fail "create failed: $(cat "$T/create.out")"
	# Created: its init is the user; gc keeps it.
	[ "$(jq .container_pid "$(ov_slot "$id")/record.json")" = "$(ov_rt runc state "$id" | jq .pid)" ] ||
		fail "$(cat "$(ov_slot "$id")/record.json")"
	run ovadm gc
	assert_success
	[ "$(ov_swtpm_count "$id")" -eq 1 ] || fail "gc stopped the vTPM of a created container"
	ov_rt runc start "$id"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	run ov_delete runc "$id" -f
	assert_success
	ov_leak_check
}
