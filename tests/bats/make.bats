#!/usr/bin/env bats
# shellcheck disable=SC2016
# make demo / make check on a fresh machine: the Debian packages
# (scripts/deps.sh) come before the first compile, also under make -j, and
# pkg-config is asked only after them.

bats_require_minimum_version 1.5.0
load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

# line number of the first line matching ERE in $output (0: none)
first_line() { grep -nE -m1 -- "$1" <<<"$output" | cut -d: -f1 || true; }

# make -n -B GOAL: deps.sh SET is printed, and before the first cc.
dry_run_orders() { # goal set
	run make -C "$REPO" -n -B -j2 "$1"
	assert_success
	local d c
	d=$(first_line "^scripts/deps\.sh $2\$")
	c=$(first_line '^(cc|gcc|clang) .* -c ')
	[ -n "$d" ] || fail "make -n $1 never runs scripts/deps.sh $2"
	[ -n "$c" ] || fail "make -n $1 compiles nothing"
	[ "$d" -lt "$c" ] || fail "make $1: cc (line $c) before deps.sh (line $d)"
}

@test "make -n -B demo runs scripts/deps.sh test before the first cc" {
	dry_run_orders demo test
}

@test "make -n -B check runs scripts/deps.sh test before the first cc" {
	dry_run_orders check test
}

@test "make -n -B check-unit installs the build set first; plain make installs nothing" {
	dry_run_orders check-unit build
	run make -C "$REPO" -n -B all
	assert_success
	refute_output --partial deps.sh
}

# STATIC_LIBS picks which of json-c, libcrypto and libseccomp come from
# their .a files (Makefile; docs/performance.md "exec cost"): the hook's
# link line, as make -n prints it.
hook_link() { # STATIC_LIBS value: the line that links build/oci-vtpm-hook
	run make -C "$REPO" -n -B build/oci-vtpm-hook STATIC_LIBS="$1"
	assert_success
	output=$(grep -E -- '-o build/oci-vtpm-hook ' <<<"$output")
	[ -n "$output" ] || fail "STATIC_LIBS=$1: no link line"
}
@test "STATIC_LIBS: all three static by default, a list of some, 0 none, anything else an error" {
	hook_link 1
	assert_output --regexp ' -l:libjson-c\.a .*-l:libcrypto\.a .*-l:libseccomp\.a'
	refute_output --regexp ' -l(json-c|crypto|seccomp)( |$)'
	hook_link "json-c seccomp"
	assert_output --regexp ' -l:libjson-c\.a .*-l:libseccomp\.a'
	assert_output --regexp ' -lcrypto( |$)'
	refute_output --partial 'libcrypto.a'
	hook_link 0
	refute_output --partial ' -l:lib'
	assert_output --regexp ' -ljson-c -lcrypto -lseccomp'
	run make -C "$REPO" -n build/oci-vtpm-hook STATIC_LIBS="json-c openssl"
	assert_failure
	assert_output --partial 'STATIC_LIBS is 1, 0 or a list of json-c crypto seccomp, not "json-c openssl"'
}

# A fresh machine, for real, under make -j2: a copy of the tree whose
# deps.sh takes a while and then "installs" (a marker file), a cc and a
# pkg-config that fail without the marker, and a demo that only says so.
@test "make -j2 demo and make -j2 check on a machine missing packages install before building" {
	local t=$BATS_TEST_TMPDIR goal
	for goal in demo check; do
		rm -rf "$t/src" "$t/bin" "$t/installed"
		mkdir -p "$t/src" "$t/bin"
		git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$t/src")
		cat >"$t/src/scripts/deps.sh" <<-SH
			#!/bin/sh
			sleep 1; echo "\$1" >"$t/installed"
		SH
		printf '#!/bin/sh\necho demo ran\n' >"$t/src/examples/demo.sh"
		printf '#!/bin/sh\necho tests ran\n' >"$t/src/tests/run-all.sh"
		cat >"$t/bin/cc" <<-SH
			#!/bin/sh
			[ -e "$t/installed" ] || { echo "cc before the packages: \$*" >&2; exit 99; }
			case " \$* " in *" -c "*) case " \$* " in *" -DPKG_CONFIG_ASKED "*) ;;
				*) echo "cc without pkg-config's flags (asked before the packages)" >&2; exit 98 ;;
			esac ;; esac
			# Its outputs are empty; executable, as the build runs one (gen-bpf).
			while [ \$# -gt 0 ]; do [ "\$1" = -o ] && : >"\$2" && chmod +x "\$2"; shift; done
		SH
		cat >"$t/bin/pkg-config" <<-SH
			#!/bin/sh
			[ -e "$t/installed" ] || exit 99
			case "\$*" in *--cflags*) echo -DPKG_CONFIG_ASKED ;; *) echo -ljson-c ;; esac
		SH
		chmod +x "$t/src/scripts/deps.sh" "$t/src/examples/demo.sh" \
			"$t/src/tests/run-all.sh" "$t/bin/cc" "$t/bin/pkg-config"
		run env PATH="$t/bin:$PATH" make -C "$t/src" -j2 CC="$t/bin/cc" AR=true "$goal"
		assert_success
		refute_output --partial 'before the packages'
		refute_output --partial "pkg-config's flags"
		run cat "$t/installed"
		assert_output test
	done
}
