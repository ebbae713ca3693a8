#!/usr/bin/env bats
# shellcheck disable=SC2016 # jq programs in single quotes
# The provisioning pool (`oci-vtpm pool`, lib/pool.c) with runc and the hook,
# socket backend: EK-certified TPM 2.0 states manufactured ahead of time and
# claimed by new vTPMs. See helpers.bash for the harness; every test ends
# with its leak check.

load helpers


setup_file() { ov_setup_file; }
setup() {
	ov_setup
	ov_write_config ".master_key = \"$T/keys/master.key\" | .ca_key = \"$T/ca/ca.key\"
		| .ca_cert = \"$T/ca/ca.pem\""
}
teardown() { ov_teardown; }

# pl_count: ready entries in the pool.
pl_count() { ovadm pool status --json | jq -r .count; }

# pl_fill N: fill the pool up to N and check it has N.
pl_fill() {
	run ovadm pool fill "$1"
	assert_success
	assert_output --partial "$1 ready"
	[ "$(pl_count)" = "$1" ] || fail "pool has $(pl_count) entries after fill $1"
}

# pl_bundle LABEL [KEY=VALUE]...: an enabled ek-cert bundle whose container
# sleeps; prints its path.
pl_bundle() {
	local label=$1 b
	shift
	b=$(ov_bundle "$label" io.oci-vtpm.enable=true io.oci-vtpm.ek-cert=true "$@")
	ov_args "$b" sleep 600
	echo "$b"
}

# htpm ID [N] CMD ARGS...: host tpm2-tools against TPM N (default 0) of
# container ID, through its socket.
htpm() {
	local id=$1 n=0
	shift
	if [[ $1 =~ ^[0-9]$ ]]; then
		n=$1
		shift
	fi
	TPM2TOOLS_TCTI="swtpm:path=$(ov_slot "$id")/private/tpm/tpm$n.sock" timeout -k 5 30 "$@"
}

# pl_identity ID [N]: "<sha256 of the RSA EK public key> <sha256 of the EK
# certificate>" of TPM N of container ID, after checking that the
# certificate chains to the host CA and certifies exactly that EK.
pl_identity() {
	local id=$1 n=${2:-0} d=$T/ident-$1-${2:-0} ekpub certpub
	mkdir -p "$d"
	htpm "$id" "$n" tpm2_nvread 0x01c00002 -o "$d/ek.der" >/dev/null 2>&1 || return 1
	htpm "$id" "$n" tpm2_createek -c "$d/ek.ctx" -G rsa -u "$d/ek.pem" -f pem >/dev/null || return 1
	htpm "$id" "$n" tpm2_flushcontext -t >/dev/null || return 1
	openssl x509 -inform der -in "$d/ek.der" -out "$d/ek-cert.pem" || return 1
	openssl verify -CAfile "$T/ca/ca.pem" "$d/ek-cert.pem" >/dev/null || {
		ov_log "EK certificate of $id/tpm$n does not chain to the host CA"
		return 1
	}
	ekpub=$(openssl pkey -pubin -in "$d/ek.pem" -outform der | sha256sum | cut -d' ' -f1)
	certpub=$(openssl x509 -in "$d/ek-cert.pem" -noout -pubkey | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
	[ "$ekpub" = "$certpub" ] || {
		ov_log "the EK certificate of $id/tpm$n certifies another key ($certpub, EK $ekpub)"
		return 1
	}
	echo "$ekpub $(sha256sum <"$d/ek.der" | cut -d' ' -f1)"
}

# pl_log_count REGEX: lines of the hook log matching REGEX.
pl_log_count() { grep -cE -- "$1" "$OV_HOOK_LOG" || true; }

@test "pool fill 3: an ek-cert container gets its EK certificate from the pool, which shrinks by one" {
	ov_requires_init
	local b id ident
	pl_fill 3
	[ "$(stat -c %a "$STATE_DIR/pool")" = 700 ] || fail "pool dir mode $(stat -c %a "$STATE_DIR/pool")"
	# At rest: a pooled state is encrypted (no certificate DER in the clear).
	run grep -r -a -l -F -s -- "oci-vtpm" "$STATE_DIR/pool"
	assert_failure 1

	b=$(pl_bundle p1)
	id=$(ov_new_id p1)
	ov_run_detached runc "$id" "$b"
	ident=$(pl_identity "$id") || fail "no valid EK certificate: $ident"
	[ "$(pl_count)" = 2 ] || fail "pool has $(pl_count) entries, expected 2"
	[ "$(pl_log_count "$id: vTPM 0 from the pool \(entry ek2-")" = 1 ] ||
		fail "the hook log does not say vTPM 0 came from the pool: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_log_count "$id: .*(manufactured a|manufacturing)")" = 0 ] || fail "manufactured inline despite the pool"
	# The container itself reads the certificate.
	run ov_exec runc "$id" tpm2_nvread -T "$OV_TCTI" 0x01c00002 -o /tmp/c.der
	assert_success
	run ov_delete runc "$id" -f
	assert_success
	[ -z "$(ls -A "$STATE_DIR/pool/.claims" 2>/dev/null)" ] || fail "a claim is left: $(ls -A "$STATE_DIR/pool/.claims")"
	[ ! -e "$STATE_DIR/vtpms" ] || [ -z "$(ls -A "$STATE_DIR/vtpms")" ] || fail "an ephemeral vTPM was archived"
	[ "$(pl_count)" = 2 ]
}

@test "a named container from the pool keeps its identity on restart (restored from its archive, not the pool)" {
	ov_requires_init
	local b id ident1 ident2
	pl_fill 3
	b=$(pl_bundle n1 io.oci-vtpm.name=pooled)
	id=$(ov_new_id n1)
	ov_run_detached runc "$id" "$b"
	ident1=$(pl_identity "$id") || fail "no valid EK certificate: $ident1"
	[ "$(pl_count)" = 2 ] || fail "pool has $(pl_count) entries, expected 2"
	[ "$(pl_log_count "$id: vTPM pooled is new: TPM 0 from the pool")" = 1 ] ||
		fail "not from the pool: $(tail -n 5 "$OV_HOOK_LOG")"
	run ov_delete runc "$id" -f
	assert_success
	[ -f "$STATE_DIR/vtpms/pooled/meta.json" ] || fail "vTPM pooled was not archived"
	jq -e '.name == "pooled" and .newest == 1' "$STATE_DIR/vtpms/pooled/meta.json" >/dev/null ||
		fail "meta.json: $(cat "$STATE_DIR/vtpms/pooled/meta.json")"

	id=$(ov_new_id n2)
	ov_run_detached runc "$id" "$b"
	ident2=$(pl_identity "$id") || fail "no valid EK certificate after the restart: $ident2"
	[ "$ident1" = "$ident2" ] || fail "identity changed across restarts: $ident1 -> $ident2"
	[ "$(pl_count)" = 2 ] || fail "the restart took a pool entry: $(pl_count) left"
	[ "$(pl_log_count "$id: vTPM pooled restored from generation 1")" = 1 ] ||
		fail "not restored from the archive: $(tail -n 5 "$OV_HOOK_LOG")"
	run ov_delete runc "$id" -f
	assert_success
	run ovadm inspect pooled
	assert_success
}

@test "empty pool: falls back to inline manufacture and the hook log says so; no master key: quietly" {
	ov_requires_init
	local b id ident
	b=$(pl_bundle e1)
	id=$(ov_new_id e1)
	ov_run_detached runc "$id" "$b"
	ident=$(pl_identity "$id") || fail "no valid EK certificate: $ident"
	[ "$(pl_log_count "$id: vTPM 0: the pool is empty; manufacturing it inline")" = 1 ] ||
		fail "the hook log does not say so: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_log_count "$id: .*warning")" = 0 ] || fail "a warning: $(grep warning "$OV_HOOK_LOG")"
	run ov_delete runc "$id" -f
	assert_success

	# Entries of another master key are stale: not used, replaced by fill.
	pl_fill 2
	run ovadm rotate-key
	assert_success
	run ovadm pool status --json
	assert_success
	[ "$(jq -r .count <<<"$output")" = 0 ] && [ "$(jq -r .stale <<<"$output")" = 2 ] || fail "status: $output"
	id=$(ov_new_id e2)
	ov_run_detached runc "$id" "$(pl_bundle e2)"
	pl_identity "$id" >/dev/null || fail "no valid EK certificate"
	[ "$(pl_log_count "$id: vTPM 0: the pool has no entry for this master key and host CA \(2 stale")" = 1 ] ||
		fail "stale entries not named: $(tail -n 5 "$OV_HOOK_LOG")"
	run ov_delete runc "$id" -f
	assert_success
	run ovadm pool fill 1
	assert_success
	assert_output --partial "removed 2 stale"
	[ "$(pl_count)" = 1 ]

	# Without a master key an ephemeral vTPM cannot unwrap a pooled state:
	# it is manufactured inline, with nothing on stderr and no warning.
	mv "$T/keys/master.key" "$T/keys/away.key"
	b=$(pl_bundle e3)
	ov_sh "$b" "tpm2_nvread -T $OV_TCTI 0x01c00002 -o /tmp/c.der 2>/dev/null && echo CERT_OK"
	id=$(ov_new_id e3)
	run --separate-stderr ov_run runc "$id" "$b"
	mv "$T/keys/away.key" "$T/keys/master.key"
	assert_success
	assert_line CERT_OK
	[ -z "$stderr" ] || fail "stderr: $stderr"
	[ "$(pl_log_count "$id: vTPM 0: not from the pool: .*master key")" = 1 ] ||
		fail "no debug line: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_log_count "$id: .*(warning|error)")" = 0 ] || fail "$(grep -E 'warning|error' "$OV_HOOK_LOG")"
	[ "$(pl_count)" = 1 ] || fail "an entry was used without a master key"
}

@test "4 containers started in parallel against a pool of 2 all get distinct, valid EKs" {
	ov_requires_init
	local b i id ids=() pids=() idents
	pl_fill 2
	b=$(pl_bundle par)
	for i in 1 2 3 4; do
		id=$(ov_new_id "par$i")
		ids+=("$id")
		ov_run_detached runc "$id" "$b" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || fail "a parallel start failed: $(cat "$T"/*.out)"; done
	idents=$(for id in "${ids[@]}"; do pl_identity "$id" || echo "BAD $id"; done)
	[[ $idents != *BAD* ]] || fail "invalid identities: $idents"
	[ "$(cut -d' ' -f1 <<<"$idents" | sort -u | wc -l)" = 4 ] || fail "EKs not distinct: $idents"
	[ "$(cut -d' ' -f2 <<<"$idents" | sort -u | wc -l)" = 4 ] || fail "certificates not distinct: $idents"
	[ "$(pl_count)" = 0 ] || fail "pool has $(pl_count) entries left"
	[ "$(pl_log_count ": vTPM 0 from the pool \(entry ek2-")" = 2 ] ||
		fail "expected 2 from the pool: $(grep -E 'pool|manufactur' "$OV_HOOK_LOG")"
	[ "$(pl_log_count ": vTPM 0: the pool is empty.*; manufacturing it inline")" = 2 ] ||
		fail "expected 2 inline: $(grep -E 'pool|manufactur' "$OV_HOOK_LOG")"
	for id in "${ids[@]}"; do
		run ov_delete runc "$id" -f
		assert_success
	done
	[ -z "$(ls -A "$STATE_DIR/pool/.claims" 2>/dev/null)" ] || fail "claims left: $(ls -A "$STATE_DIR/pool/.claims")"
}

@test "count=2 against a pool of 1: TPM 0 from the pool, TPM 1 inline, both certified and distinct" {
	ov_requires_init
	local b id a c
	pl_fill 1
	b=$(pl_bundle two io.oci-vtpm.count=2)
	id=$(ov_new_id two)
	ov_run_detached runc "$id" "$b"
	a=$(pl_identity "$id" 0) || fail "TPM 0: $a"
	c=$(pl_identity "$id" 1) || fail "TPM 1: $c"
	[ "${a%% *}" != "${c%% *}" ] || fail "both TPMs have the EK ${a%% *}"
	[ "$(pl_log_count "$id: vTPM 0 from the pool")" = 1 ] || fail "$(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_log_count "$id: vTPM 1: the pool is empty; manufacturing it inline")" = 1 ] ||
		fail "$(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_count)" = 0 ]
	run ov_delete runc "$id" -f
	assert_success
}

@test "admin: pool fill without a host CA fails in one line; drain empties; a fill is never visible half made" {
	requires root jq swtpm
	[ -x "$OV_CLI" ] || fail "$OV_CLI not built (run make)"
	run ovadm pool fill 1
	assert_failure
	assert_output --partial "oci-vtpm init"
	[ "${#lines[@]}" = 1 ] || fail "more than one line: $output"
	run ovadm init
	assert_success
	run ovadm pool status
	assert_success
	assert_output --partial "0 ready"

	# A fill killed half way leaves nothing that a start could take.
	ovadm pool fill 50 >/dev/null &
	local pid=$!
	ov_wait_for 20 eval "[ \"\$(pl_count)\" -ge 1 ]"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	# Its swtpm, if one was manufacturing, by pid.
	local p
	for p in $(ov_pids_matching "$(ov_pool_work_dir)"); do kill -9 "$p" 2>/dev/null || true; done
	local d
	for d in "$STATE_DIR"/pool/ek2-*; do
		[ -f "$d/meta.json" ] && [ -f "$d/tpm2-00.permall" ] || fail "a half-made entry is visible: $d"
	done
	run ovadm pool fill 2
	assert_success
	run ovadm pool drain
	assert_success
	[ "$(pl_count)" = 0 ]
	[ -z "$(ls -A "$STATE_DIR/pool")" ] || fail "left in the pool: $(ls -A "$STATE_DIR/pool")"
	[ ! -e "$(ov_pool_work_dir)" ] || [ -z "$(ls -A "$(ov_pool_work_dir)")" ] || fail "work dirs left: $(ls -A "$(ov_pool_work_dir)")"
}

# pl_warm: the run-dir names of the warm vTPMs.
pl_warm() { ov_warm_slots | ov_slot_name; }
# pl_run LABEL ANNOTATION...: a new container (runc, detached) whose
# process sleeps; prints its id.
pl_run() {
	local b id
	b=$(ov_bundle "$@")
	ov_args "$b" sleep 600
	id=$(ov_new_id "$1")
	ov_run_detached runc "$id" "$b" >&2
	echo "$id"
}

# pl_tpm_pid ID: the swtpm pid in container ID's record.
pl_tpm_pid() { jq -r '.tpms[0].pid' "$(ov_slot "$1")/record.json"; }

@test "warm vTPMs (warm_size): pool fill starts them; a plain ephemeral container takes one (the running swtpm, renamed to its id); other requests start their own; gc keeps live ones; a dead one is not handed out; drain stops them" {
	ov_requires_init
	local warm pids b id id2 named dead i ids=() bg=() pid
	ov_write_config ".warm_size = 2 | .master_key = \"$T/keys/master.key\" | .ca_key = \"$T/ca/ca.key\"
		| .ca_cert = \"$T/ca/ca.pem\""
	run ovadm pool fill 0
	assert_success
	assert_output --partial "started 2 warm vTPMs"
	assert_output --partial "warm vTPMs: 2 running (target 2)"
	warm=$(pl_warm)
	[ "$(wc -l <<<"$warm")" = 2 ] || fail "warm vTPMs: $warm"
	pids=$(for w in $warm; do ov_swtpm_pids "$w"; done)
	[ "$(wc -w <<<"$pids")" = 2 ] || fail "swtpm of the warm vTPMs: $pids"
	# Idle: they answer (from the host, through their socket).
	for w in $warm; do
		TPM2TOOLS_TCTI="swtpm:path=$(ov_slot "$w")/private/tpm/tpm0.sock" timeout 30 tpm2_getrandom 8 --hex >/dev/null ||
			fail "warm vTPM $w does not answer"
	done

	# A plain ephemeral container takes one: no new swtpm.
	id=$(pl_run plain io.oci-vtpm.enable=true)
	grep -q "$id: started 1 TPM 2.0 vTPM (socket backend), warm" "$OV_HOOK_LOG" ||
		fail "not from a warm vTPM: $(tail -n 5 "$OV_HOOK_LOG")"
	grep -qw -- "$(pl_tpm_pid "$id")" <<<"$pids" || fail "swtpm $(pl_tpm_pid "$id") is none of the warm ones ($pids)"
	[ "$(pl_warm | wc -l)" = 1 ] || fail "warm vTPMs left: $(pl_warm)"
	jq -e --arg id "$id" '.id == $id and .container_pid > 0' "$(ov_slot "$id")/record.json" >/dev/null ||
		fail "record: $(cat "$(ov_slot "$id")/record.json")"
	run ov_exec runc "$id" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success
	assert_output --regexp '^[0-9a-f]{16}$'

	# Requests a warm vTPM cannot serve start their own.
	named=$(ov_new_id named)
	b=$(ov_bundle named io.oci-vtpm.enable=true io.oci-vtpm.name=w1 io.oci-vtpm.count=2)
	ov_args "$b" sleep 600
	ov_run_detached runc "$named" "$b"
	grep -q "$named: started 2 TPM 2.0 vTPMs (socket backend), name w1$" "$OV_HOOK_LOG" ||
		fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_warm | wc -l)" = 1 ] || fail "a two-TPM named vTPM took a warm one: $(pl_warm)"

	# gc keeps the live warm one.
	run ovadm gc
	assert_success
	[ "$(pl_warm | wc -l)" = 1 ] || fail "gc took a warm vTPM: $(pl_warm)"

	# One whose swtpm died is not handed out: the next start makes its own.
	dead=$(pl_warm)
	kill -9 "$(ov_swtpm_pids "$dead")"
	ov_wait_for 10 ov_no_swtpm "$dead"
	id2=$(ov_new_id after)
	b=$(ov_bundle after io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	ov_run_detached runc "$id2" "$b"
	grep -q "$id2: started 1 TPM 2.0 vTPM (socket backend)$" "$OV_HOOK_LOG" ||
		fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
	run ov_exec runc "$id2" tpm2_getrandom -T "$OV_TCTI" --hex 8
	assert_success

	# Concurrent starts against 2 warm ones (the dead one is replaced):
	# 4 containers, 4 distinct swtpm, exactly 2 of them warm.
	run ovadm pool fill 0
	assert_success
	assert_output --partial "started 2 warm vTPMs"
	[ ! -e "$(ov_slot "$dead")" ] || fail "pool fill left the dead warm vTPM $dead"
	b=$(ov_bundle par io.oci-vtpm.enable=true)
	ov_args "$b" sleep 600
	for i in 1 2 3 4; do
		ids+=("$(ov_new_id "par$i")")
		ov_run_detached runc "${ids[-1]}" "$b" &
		bg+=($!)
	done
	for pid in "${bg[@]}"; do wait "$pid" || fail "a parallel start failed: $(cat "$T"/*.out)"; done
	[ "$(for i in "${ids[@]}"; do pl_tpm_pid "$i"; done | sort -u | wc -l)" = 4 ] || fail "swtpm shared between containers"
	[ "$(grep -cE "(par[1-4][^:]*): started 1 TPM 2.0 vTPM \(socket backend\), warm" "$OV_HOOK_LOG")" = 2 ] ||
		fail "expected 2 warm starts: $(grep -E 'par[1-4]' "$OV_HOOK_LOG" | grep started)"
	for i in "${ids[@]}" "$id" "$id2" "$named"; do
		run ov_delete runc "$i" -f
		assert_success
	done
	[ -z "$(pl_warm)" ] || fail "warm vTPMs left after their containers: $(pl_warm)"

	# drain stops the warm ones.
	run ovadm pool fill 0
	assert_success
	run ovadm pool drain
	assert_success
	assert_output --partial "2 warm vTPMs stopped"
	[ -z "$(pl_warm)" ] || fail "warm vTPMs left after drain: $(pl_warm)"
	ov_no_swtpm || fail "swtpm left: $(ov_ps $(ov_swtpm_pids))"

	# Plain warm vTPMs need no master key; the EK pool does, and says so.
	ov_write_config ".warm_size = 1 | .master_key = \"$T/keys/none.key\""
	run --separate-stderr ovadm pool fill
	assert_failure
	assert_output --partial "started 1 warm vTPMs"
	[[ $stderr == "oci-vtpm: pool fill: master key $T/keys/none.key"*"No such file or directory" ]] ||
		fail "stderr: $stderr"
	[ "$(pl_warm | wc -l)" = 1 ] || fail "warm vTPMs: $(pl_warm)"
	run ovadm pool drain
	assert_success
	assert_output --partial "1 warm vTPMs stopped"
}

@test "warm vTPMs with ek_cert in the settings are EK-certified (from the pool); a container that asks for no EK certificate starts its own" {
	ov_requires_init
	local id id2 b
	ov_write_config ".warm_size = 1 | .ek_cert = true | .master_key = \"$T/keys/master.key\"
		| .ca_key = \"$T/ca/ca.key\" | .ca_cert = \"$T/ca/ca.pem\""
	run ovadm pool fill 2
	assert_success
	assert_output --partial "started 1 warm vTPMs"
	assert_output --partial "2 ready"
	assert_output --partial "warm vTPMs: 1 running (target 1)"
	# Filled to 2, one taken by the warm vTPM, refilled.
	assert_output --regexp $'pool: made 2 EK-certified[^\n]*\npool: started 1 warm vTPMs[^\n]*\npool: made 1 EK-certified'
	[ "$(pl_count)" = 2 ] || fail "pool has $(pl_count) entries after the refill"

	id=$(pl_run ekw io.oci-vtpm.enable=true)
	grep -q "$id: started 1 TPM 2.0 vTPM (socket backend), warm, EK-certified" "$OV_HOOK_LOG" ||
		fail "not a warm EK-certified vTPM: $(tail -n 5 "$OV_HOOK_LOG")"
	pl_identity "$id" >/dev/null || fail "no valid EK certificate in the warm vTPM"

	run ovadm pool fill 2
	assert_success
	id2=$(pl_run noek io.oci-vtpm.enable=true io.oci-vtpm.ek-cert=false)
	grep -q "$id2: started 1 TPM 2.0 vTPM (socket backend)$" "$OV_HOOK_LOG" ||
		fail "hook log: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_warm | wc -l)" = 1 ] || fail "warm vTPMs: $(pl_warm)"
	for b in "$id" "$id2"; do
		run ov_delete runc "$b" -f
		assert_success
	done
	run ovadm pool drain
	assert_success
	assert_output --partial "1 warm vTPMs stopped"
}

# wn_tpm ID CMD...: a tpm2-tools command on container ID's TPM, from the
# host, through its socket.
wn_tpm() {
	local id=$1
	shift
	TPM2TOOLS_TCTI="swtpm:path=$(ov_slot "$id")/private/tpm/tpm0.sock" timeout 30 "$@"
}
# wn_ek ID: digest of the EK's public part: the TPM's identity.
wn_ek() {
	wn_tpm "$1" tpm2_createek -c "$T/ek.ctx" -G rsa -u "$T/ek.pub" >/dev/null || return 1
	wn_tpm "$1" tpm2_flushcontext -t >/dev/null || return 1
	sha256sum "$T/ek.pub" | cut -d' ' -f1
}
wn_nv() { wn_tpm "$1" tpm2_nvread 0x1500016 -C o -s 8; }
wn_nv_write() {
	printf '%s' "$2" >"$T/nv.in"
	wn_tpm "$1" tpm2_nvwrite 0x1500016 -C o -i "$T/nv.in"
}

@test "warm named vTPM: a warm swtpm takes the name's archived state over its control channel (same EK, same NV), archives the next generation at poststop; a corrupt archive or another master key fails in one line, the taken swtpm stopped, the other warm vTPMs usable" {
	ov_requires_init
	local id ek1 ek2 warm pids st
	local base=".master_key = \"$T/keys/master.key\" | .ca_key = \"$T/ca/ca.key\" | .ca_cert = \"$T/ca/ca.pem\""
	ov_write_config "$base"
	# Cold: the name's first TPM, an NV index written.
	id=$(pl_run cold io.oci-vtpm.enable=true io.oci-vtpm.name=wn)
	ek1=$(wn_ek "$id")
	[ -n "$ek1" ] || fail "no EK name"
	wn_tpm "$id" tpm2_nvdefine 0x1500016 -C o -s 8 -a "ownerread|ownerwrite"
	wn_nv_write "$id" coldcold
	ov_delete runc "$id" -f
	[ -f "$STATE_DIR/vtpms/wn/gen-0000000001.ovtpm" ] || fail "no generation 1"

	# Warm: the name's state handed to a running swtpm.
	ov_write_config "$base | .warm_size = 2"
	run ovadm pool fill 0
	assert_success
	warm=$(pl_warm)
	pids=$(for w in $warm; do ov_swtpm_pids "$w"; done)
	id=$(pl_run warm io.oci-vtpm.enable=true io.oci-vtpm.name=wn)
	grep -q "$id: started 1 TPM 2.0 vTPM (socket backend), warm, name wn$" "$OV_HOOK_LOG" ||
		fail "not warm: $(tail -n 5 "$OV_HOOK_LOG")"
	grep -qw -- "$(pl_tpm_pid "$id")" <<<"$pids" || fail "swtpm $(pl_tpm_pid "$id") is none of the warm ones ($pids)"
	ek2=$(wn_ek "$id")
	[ "$ek1" = "$ek2" ] || fail "EK differs: cold $ek1, warm $ek2"
	run wn_nv "$id"
	assert_success
	assert_output coldcold
	# The live state is under the warm swtpm's own key, not the name's:
	# nothing of it is readable without the swtpm.
	jq -e '.state_in_swtpm == true and .name == "wn"' "$(ov_slot "$id")/record.json" >/dev/null ||
		fail "record: $(cat "$(ov_slot "$id")/record.json")"
	wn_nv_write "$id" warmwarm
	ov_delete runc "$id" -f
	grep -q "$id: vTPM wn archived as generation 2" "$OV_HOOK_LOG" || fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"
	run ovadm pool drain
	assert_success

	# Cold again: the generation the warm one archived.
	ov_write_config "$base"
	id=$(pl_run cold2 io.oci-vtpm.enable=true io.oci-vtpm.name=wn)
	[ "$(wn_ek "$id")" = "$ek1" ] || fail "EK differs after the warm run"
	run wn_nv "$id"
	assert_success
	assert_output warmwarm
	ov_delete runc "$id" -f

	# A corrupt newest generation: one line, no slot, no name claim; the
	# taken warm swtpm is stopped, the other still answers.
	ov_write_config "$base | .warm_size = 2"
	run ovadm pool fill 0
	assert_success
	printf 'X' | dd of="$STATE_DIR/vtpms/wn/gen-0000000003.ovtpm" bs=1 seek=200 conv=notrunc 2>/dev/null
	id=$(ov_new_id bad)
	st=$T/bad.state
	ov_state "$id" "$(ov_bundle bad io.oci-vtpm.enable=true io.oci-vtpm.name=wn)" "$(ov_dummy_pid)" >"$st"
	run --separate-stderr ov_hook createRuntime "$st"
	ov_assert_hook_error "vTPM wn generation 3 does not verify"
	[ ! -e "$(ov_slot "$id")" ] || fail "slot left: $(ls -la "$(ov_slot "$id")")"
	[ ! -e "$(ov_names_dir)/wn" ] || fail "name claim left"
	[ "$(ov_warm_slots | wc -l)" = 1 ] || fail "warm vTPMs left: $(ov_warm_slots)"
	for w in $(ov_warm_slots); do
		TPM2TOOLS_TCTI="swtpm:path=$w/private/tpm/tpm0.sock" timeout 30 tpm2_getrandom 8 --hex >/dev/null ||
			fail "warm vTPM $w does not answer"
	done

	# Another host's master key: one line; the warm swtpm taken is
	# stopped cleanly (no swtpm left at all, no slot, no claim).
	mv "$T/keys/master.key" "$T/keys/master.key.good"
	(umask 077 && head -c 32 /dev/urandom >"$T/keys/master.key")
	id=$(ov_new_id wrongkey)
	st=$T/wrongkey.state
	ov_state "$id" "$(ov_bundle wrongkey io.oci-vtpm.enable=true io.oci-vtpm.name=wn)" "$(ov_dummy_pid)" >"$st"
	run --separate-stderr ov_hook createRuntime "$st"
	ov_assert_hook_error "vTPM wn is protected by master key [0-9a-f]+, not by this host's master key"
	mv "$T/keys/master.key.good" "$T/keys/master.key"
	[ ! -e "$(ov_slot "$id")" ] || fail "slot left: $(ls -la "$(ov_slot "$id")")"
	[ ! -e "$(ov_names_dir)/wn" ] || fail "name claim left"
	[ -z "$(ov_warm_slots)" ] || fail "warm vTPMs left: $(ov_warm_slots)"
	ov_no_swtpm || fail "swtpm left: $(ov_ps "$(ov_swtpm_pids)")"
}

@test "warm named EK-certified vTPM: a new name takes a warm EK-certified vTPM (its certificate chains to the host CA); the cold start after has the same EK and certificate" {
	ov_requires_init
	local id ident
	local base=".master_key = \"$T/keys/master.key\" | .ca_key = \"$T/ca/ca.key\" | .ca_cert = \"$T/ca/ca.pem\" | .ek_cert = true"
	ov_write_config "$base | .warm_size = 1"
	run ovadm pool fill 1
	assert_success
	id=$(pl_run wek io.oci-vtpm.enable=true io.oci-vtpm.name=wek)
	grep -q "$id: started 1 TPM 2.0 vTPM (socket backend), warm, EK-certified, name wek$" "$OV_HOOK_LOG" ||
		fail "not warm: $(tail -n 5 "$OV_HOOK_LOG")"
	ident=$(pl_identity "$id") || fail "no valid EK certificate"
	ov_delete runc "$id" -f
	grep -q "$id: vTPM wek archived as generation 1" "$OV_HOOK_LOG" || fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"
	run ovadm pool drain
	assert_success
	ov_write_config "$base"
	id=$(pl_run wek2 io.oci-vtpm.enable=true io.oci-vtpm.name=wek)
	grep -q "$id: vTPM wek restored from generation 1$" "$OV_HOOK_LOG" || fail "not restored: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_identity "$id")" = "$ident" ] || fail "identity differs after the warm run"
	ov_delete runc "$id" -f
}

# pl_tpm12 ID [create]: TPM 1.2 commands on container ID's TPM 0, from the
# host through its socket: with create, TPM_CreateEndorsementKeyPair (RSA
# 2048) first; then TPM_ReadPubek. Prints the sha256 of the EK's public
# key (its identity); fails on any other answer than TPM_SUCCESS.
pl_tpm12() {
	python3 - "$(ov_slot "$1")/private/tpm/tpm0.sock" "${2:-}" <<-'PY'
		import hashlib, os, socket, struct, sys
		def cmd(ordinal, body):
		    s = socket.socket(socket.AF_UNIX)
		    s.settimeout(60)
		    s.connect(sys.argv[1])
		    s.sendall(struct.pack(">HII", 0xC1, 10 + len(body), ordinal) + body)
		    r = b""
		    while len(r) < 10 or len(r) < struct.unpack(">I", r[2:6])[0]:
		        d = s.recv(4096)
		        if not d:
		            sys.exit("TPM closed the connection")
		        r += d
		    rc = struct.unpack(">I", r[6:10])[0]
		    if rc:
		        sys.exit("ordinal 0x%x: TPM result 0x%x" % (ordinal, rc))
		    return r[10:]
		nonce = os.urandom(20)
		if sys.argv[2] == "create":
		    # TPM_KEY_PARMS: RSA, OAEP, no signing; RSA 2048, 2 primes, default exponent
		    parms = struct.pack(">IHHI", 1, 3, 1, 12) + struct.pack(">III", 2048, 2, 0)
		    cmd(0x78, nonce + parms)
		pub = cmd(0x7C, nonce)
		print(hashlib.sha256(pub[:-20]).hexdigest())
	PY
}

@test "warm TPM 1.2 vTPMs (warm_size_tpm12): pool fill starts them; an ephemeral TPM 1.2 container takes one, a TPM 2.0 one does not; a named TPM 1.2 vTPM takes one (its state handed over), its EK the same through warm, warm and cold starts" {
	ov_requires_init
	local id warm pids ek1 ek
	local base=".master_key = \"$T/keys/master.key\" | .ca_key = \"$T/ca/ca.key\" | .ca_cert = \"$T/ca/ca.pem\""
	ov_write_config "$base | .warm_size_tpm12 = 1 | .start_timeout_ms = 60000"
	run ovadm pool fill 0
	assert_success
	assert_output --partial "started 1 warm TPM 1.2 vTPMs"
	assert_output --partial "warm TPM 1.2 vTPMs: 1 running (target 1)"
	refute_output --partial "started 1 warm vTPMs"
	run ovadm pool status --json
	assert_success
	jq -e '.warm_tpm12 == 1 and .warm_size_tpm12 == 1 and .warm == 0' <<<"$output" >/dev/null ||
		fail "status: $output"

	# A TPM 2.0 container starts its own; a TPM 1.2 one takes the warm one.
	warm=$(pl_warm)
	pids=$(ov_swtpm_pids "$warm")
	id=$(pl_run v2 io.oci-vtpm.enable=true)
	[ "$(pl_warm)" = "$warm" ] || fail "a TPM 2.0 container took the warm TPM 1.2: $(pl_warm)"
	ov_delete runc "$id" -f
	id=$(pl_run v12 io.oci-vtpm.enable=true io.oci-vtpm.version=1.2)
	grep -q "$id: started 1 TPM 1.2 vTPM (socket backend), warm$" "$OV_HOOK_LOG" ||
		fail "not warm: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_tpm_pid "$id")" = "$pids" ] || fail "swtpm $(pl_tpm_pid "$id") is not the warm one ($pids)"
	[ -z "$(pl_warm)" ] || fail "warm vTPMs left: $(pl_warm)"
	pl_tpm12 "$id" create >/dev/null || fail "the warm TPM 1.2 does not answer"
	ov_delete runc "$id" -f

	# A new name takes a warm one: its EK made there is archived.
	run ovadm pool fill 0
	assert_success
	id=$(pl_run n1 io.oci-vtpm.enable=true io.oci-vtpm.version=1.2 io.oci-vtpm.name=w12)
	grep -q "$id: started 1 TPM 1.2 vTPM (socket backend), warm, name w12$" "$OV_HOOK_LOG" ||
		fail "not warm: $(tail -n 5 "$OV_HOOK_LOG")"
	ek1=$(pl_tpm12 "$id" create) || fail "no EK"
	ov_delete runc "$id" -f
	grep -q "$id: vTPM w12 archived as generation 1" "$OV_HOOK_LOG" || fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"

	# Warm again: the archived state handed to a running swtpm.
	run ovadm pool fill 0
	assert_success
	id=$(pl_run n2 io.oci-vtpm.enable=true io.oci-vtpm.version=1.2 io.oci-vtpm.name=w12)
	grep -q "$id: vTPM w12 restored from generation 1 into a warm swtpm" "$OV_HOOK_LOG" ||
		fail "not handed over: $(tail -n 5 "$OV_HOOK_LOG")"
	ek=$(pl_tpm12 "$id") || fail "no EK after the hand-over"
	[ "$ek" = "$ek1" ] || fail "EK differs: first $ek1, warm $ek"
	ov_delete runc "$id" -f
	grep -q "$id: vTPM w12 archived as generation 2" "$OV_HOOK_LOG" || fail "not archived: $(tail -n 5 "$OV_HOOK_LOG")"
	run ovadm pool drain
	assert_success

	# Cold: the generation the warm one archived.
	ov_write_config "$base | .start_timeout_ms = 60000"
	id=$(pl_run n3 io.oci-vtpm.enable=true io.oci-vtpm.version=1.2 io.oci-vtpm.name=w12)
	grep -q "$id: vTPM w12 restored from generation 2$" "$OV_HOOK_LOG" || fail "not restored: $(tail -n 5 "$OV_HOOK_LOG")"
	[ "$(pl_tpm12 "$id")" = "$ek1" ] || fail "EK differs after the warm runs"
	ov_delete runc "$id" -f
	ov_no_swtpm || fail "swtpm left: $(ov_ps "$(ov_swtpm_pids)")"
}
