#!/usr/bin/env bats
# The programs' own command lines and documentation: --version and --help
# of oci-vtpm-hook, oci-vtpm-runtime and oci-vtpm, every verb's --help and
# usage errors, the man pages as `make install` installs them, and every
# settings key and annotation the code knows documented in them.

load helpers

SHIM=${OCI_VTPM_RUNTIME_SHIM:-$OCI_VTPM_BUILD/oci-vtpm-runtime}
PROGS=("$OV_HOOK" "$SHIM" "$OV_CLI")

setup() {
	ov_setup
	local p
	for p in "${PROGS[@]}"; do [ -x "$p" ] || fail "$p not built (run make)"; done
	VERSION=$(sed -n 's/^VERSION *:\?= *//p' "$OV_REPO/Makefile")
	[ -n "$VERSION" ] || fail "no VERSION in the Makefile"
}

teardown() { ov_teardown; }

# The verbs `oci-vtpm --help` lists, one per line.
cli_verbs() { "$OV_CLI" --help | sed -n '/^Verbs:/,/^$/p' | awk 'NR > 1 && NF {print $1}' | sort -u; }

@test "every program prints NAME VERSION for --version, VERSION as the Makefile defines it" {
	run --separate-stderr "$OV_HOOK" --version
	assert_success
	assert_output "oci-vtpm-hook $VERSION"
	[ -z "$stderr" ] || fail "stderr: $stderr"
	run --separate-stderr "$OV_CLI" --version
	assert_success
	assert_output "oci-vtpm $VERSION"
	[ -z "$stderr" ] || fail "stderr: $stderr"
}

@test "oci-vtpm-runtime --version: its own line, then the real runtime's, unchanged, for engines that parse it" {
	local rt real
	for rt in runc crun; do
		real=$(command -v "$rt") || ov_missing "$rt" "not installed"
		run --separate-stderr env OCI_VTPM_CONFIG="$CFG" OCI_VTPM_RUNTIME="$real" "$SHIM" --version
		assert_success
		[ "${lines[0]}" = "oci-vtpm-runtime $VERSION" ] || fail "first line: ${lines[0]}"
		[ "$(printf '%s\n' "${lines[@]:1}")" = "$("$real" --version)" ] ||
			fail "not $rt's own --version after ours: $output"
	done
	# No real runtime: our line, then a one-line error, exit 1.
	run --separate-stderr env OCI_VTPM_CONFIG="$CFG" OCI_VTPM_RUNTIME=/nonexistent/runc "$SHIM" --version
	assert_failure 1
	assert_output "oci-vtpm-runtime $VERSION"
	[[ $stderr == "oci-vtpm-runtime: "*"/nonexistent/runc"* ]] || fail "stderr: $stderr"
	# Not alone on the command line: the real runtime's (runc's own --version here).
	run env OCI_VTPM_CONFIG="$CFG" OCI_VTPM_RUNTIME="$(command -v runc)" "$SHIM" --debug --version
	assert_success
	refute_output --partial "oci-vtpm-runtime"
	assert_line --regexp '^runc version '
}

@test "every program prints its usage on stdout for --help and -h, exit 0, nothing on stderr" {
	local p opt name
	for p in "${PROGS[@]}"; do
		name=${p##*/}
		for opt in --help -h; do
			run --separate-stderr "$p" "$opt"
			assert_success
			[ -z "$stderr" ] || fail "$name $opt wrote to stderr: $stderr"
			[[ ${lines[0]} == "usage: $name "* ]] || fail "$name $opt: ${lines[0]}"
			assert_output --partial "--version"
		done
	done
	# The shim's --help is its own, whatever the real runtime.
	run env OCI_VTPM_RUNTIME=/nonexistent "$SHIM" --help
	assert_success
	assert_output --partial "oci-vtpm-runtime(8)"
}

@test "oci-vtpm: the verb table lists every verb; VERB --help and help VERB print that verb's usage" {
	local want verb
	want=$(printf '%s\n' cdi gc import init inspect export list log pool restore rm rotate-key top | sort)
	[ "$(cli_verbs)" = "$want" ] || fail "verbs listed: $(cli_verbs | tr '\n' ' ')"
	for verb in $(cli_verbs); do
		run --separate-stderr "$OV_CLI" "$verb" --help
		assert_success
		[ -z "$stderr" ] || fail "$verb --help wrote to stderr: $stderr"
		[[ ${lines[0]} == "usage: oci-vtpm [--config FILE] $verb"* ]] || fail "$verb --help: ${lines[0]}"
		assert_line --regexp "^  $verb( |\$)"
		# Also with --config first, and as `help VERB`.
		run "$OV_CLI" --config "$CFG" "$verb" --help
		assert_success
		[[ ${lines[0]} == "usage: oci-vtpm [--config FILE] $verb"* ]] || fail "--config $verb --help: ${lines[0]}"
		run "$OV_CLI" help "$verb"
		assert_success
		[[ ${lines[0]} == "usage: oci-vtpm [--config FILE] $verb"* ]] || fail "help $verb: ${lines[0]}"
	done
	run "$OV_CLI" pool --help
	assert_line --regexp '^  pool fill \[N\] '
	assert_line --regexp '^  pool status \[--json\] '
	assert_line --regexp '^  pool drain '
}

@test "oci-vtpm: bad usage exits 2 with the usage on stderr; bad values exit 1 in one line; nothing is made" {
	local args
	run --separate-stderr "$OV_CLI"
	assert_failure 2
	[[ $stderr == "usage: oci-vtpm "* ]] || fail "stderr: $stderr"
	run --separate-stderr "$OV_CLI" --config "$CFG" no-such-verb
	assert_failure 2
	[ -z "$output" ] || fail "stdout: $output"
	[[ $stderr == "usage: oci-vtpm "* ]] || fail "stderr: $stderr"
	for args in "list extra" "list --yaml" "init now" "inspect" "export X" "rm" "restore X 3" \
		"restore X --gen 3" "gc now" "pool" "pool empty" "pool status --yaml" "pool drain now" \
		"pool fill 1 2" "rotate-key now" "log" "log ID 9" "log ID x" "log ID 0 0"; do
		# shellcheck disable=SC2086 # split on purpose
		run --separate-stderr ovadm $args
		assert_failure 2
		[ -z "$output" ] || fail "$args: stdout: $output"
		[[ $stderr == "usage: oci-vtpm [--config FILE] ${args%% *}"* ]] || fail "$args: stderr: $stderr"
	done
	run --separate-stderr ovadm pool fill -1
	assert_failure 1
	[ "$stderr" = 'oci-vtpm: pool fill: bad count "-1" (0 to 4096)' ] || fail "stderr: $stderr"
	run --separate-stderr ovadm pool fill 4097
	assert_failure 1
	run --separate-stderr ovadm restore X --generation 0
	assert_failure 1
	[ "$stderr" = 'oci-vtpm: restore: bad generation "0"' ] || fail "stderr: $stderr"
	[ ! -e "$STATE_DIR" ] || fail "bad usage made $(ls -A "$STATE_DIR")"
	[ ! -e "$RUN_DIR" ] || fail "bad usage made $(ls -A "$RUN_DIR")"
}

@test "oci-vtpm list, pool status and gc on an empty host: their formats, JSON that parses" {
	requires jq
	run --separate-stderr ovadm list
	assert_success
	assert_output --regexp '^NAME +GENS +SIZE +LAST ARCHIVED +IN USE BY$'
	run --separate-stderr ovadm list --json
	assert_success
	[ "$(jq -c . <<<"$output")" = "[]" ] || fail "list --json: $output"
	run --separate-stderr ovadm pool status --json
	assert_success
	jq -e --arg dir "$STATE_DIR/pool" '.dir == $dir and .count == 0 and .master_key == false
		and .pool_size == 8 and .warm == 0 and .warm_size == 0 and (.kinds | length) == 0' <<<"$output" >/dev/null ||
		fail "pool status --json: $output"
	run --separate-stderr ovadm pool status
	assert_success
	assert_line "pool $STATE_DIR/pool: 0 ready (target 8)"
	assert_line "  no master key: the pool cannot be used (\`oci-vtpm init\`)"
	run --separate-stderr ovadm gc
	assert_success
	assert_output "gc: nothing to do ($RUN_DIR does not exist)"
	run --separate-stderr ovadm inspect nothing-here
	assert_failure 1
	[[ $stderr == "oci-vtpm: no vTPM named nothing-here"* ]] || fail "stderr: $stderr"
}

@test "the hook: --help and --version need no stdin and no settings; a bad stage is still usage (exit 2)" {
	run --separate-stderr env OCI_VTPM_CONFIG=/nonexistent "$OV_HOOK" --version </dev/null
	assert_success
	run --separate-stderr "$OV_HOOK" bogus </dev/null
	assert_failure 2
	[[ $stderr == "oci-vtpm-hook: usage: "* ]] || fail "stderr: $stderr"
	run --separate-stderr "$OV_HOOK" poststop extra </dev/null
	assert_failure 2
}

@test "make install puts the man pages under DATADIR/man; each renders and man finds it by name" {
	command -v go-md2man >/dev/null || ov_missing go-md2man "not installed (scripts/deps.sh build)"
	command -v man >/dev/null || ov_missing man "not installed"
	local dest=$T/dest page sec name f
	run make -s -C "$OV_REPO" BUILD="$OCI_VTPM_BUILD" DESTDIR="$dest" PREFIX=/usr/local install
	assert_success
	for page in oci-vtpm-hook.1 oci-vtpm-runtime.8 oci-vtpm.8 oci-vtpm.json.5; do
		sec=${page##*.}
		name=${page%.*}
		f=$dest/usr/local/share/man/man$sec/$page
		[ -f "$f" ] || fail "not installed: $f ($(find "$dest" -path '*man*' -type f))"
		run env MANPATH="$dest/usr/local/share/man" man -w "$sec" "$name"
		assert_success
		assert_output "$f"
		run --separate-stderr env MANWIDTH=80 man --warnings -l "$f"
		assert_success
		[ -z "$stderr" ] || fail "$page: groff warnings: $stderr"
		assert_line --regexp '^NAME$'
		assert_line --regexp "^ +$name +- "
		for f in SYNOPSIS DESCRIPTION 'SEE ALSO'; do assert_line "$f"; done
	done
	run env MANPATH="$dest/usr/local/share/man" man -w oci-vtpm
	assert_success
	assert_output "$dest/usr/local/share/man/man8/oci-vtpm.8"
}

@test "every settings key in lib/config.c's table is documented in oci-vtpm.json(5), every annotation (lib/request.c) in oci-vtpm-hook(1)" {
	local keys key ann missing=""
	keys=$(sed -n '/^static const struct key keys\[\] = {/,/^};/p' "$OV_REPO/lib/config.c" |
		grep -o '{"[a-z_]*"' | tr -d '{"')
	[ "$(wc -l <<<"$keys")" -ge 19 ] || fail "could not read the key table: $keys"
	for key in $keys; do
		grep -q -- "\*\*$key\*\*" "$OV_REPO/man/oci-vtpm.json.5.md" || missing="$missing $key"
		grep -q -- "\`$key\`" "$OV_REPO/docs/guide.md" || missing="$missing guide:$key"
	done
	[ -z "$missing" ] || fail "settings keys not documented:$missing"
	ann=$(sed -n '/^static const struct req_key req_keys\[\] = {/,/^};/p' "$OV_REPO/lib/request.c" |
		grep -o '{"[a-z-]*"' | tr -d '{"')
	[ "$(wc -l <<<"$ann")" -ge 7 ] || fail "could not read the annotations: $ann"
	for key in $ann; do
		grep -q -- "\*\*io.oci-vtpm.$key\*\*" "$OV_REPO/man/oci-vtpm-hook.1.md" || missing="$missing $key"
	done
	[ -z "$missing" ] || fail "annotations not documented:$missing"
}

@test "README is a front door under 12 KB that names make demo and make check and links docs/" {
	local f
	[ "$(wc -c <"$OV_REPO/README.md")" -lt 12288 ] || fail "README.md is $(wc -c <"$OV_REPO/README.md") bytes"
	grep -q 'make demo' "$OV_REPO/README.md" || fail "no make demo"
	grep -q 'make check' "$OV_REPO/README.md" || fail "no make check"
	for f in $(grep -o '](\(docs\|man\)/[^)#]*' "$OV_REPO/README.md" | sed 's/^](//' | sort -u); do
		[ -e "$OV_REPO/$f" ] || fail "README links to a missing $f"
	done
}
