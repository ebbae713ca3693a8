# shellcheck shell=bash
# Counts of the host side of vtpm_proxy chips (the device backend),
# system-wide, for the leak checks of tests/bench/bench.sh (soak) and
# tests/bench/scale.sh. Sourced; defines functions only.

# count_entries DIR [FIND-TESTS...]: entries directly in DIR, 0 without DIR.
count_entries() {
	local d=$1
	shift
	if [ -d "$d" ]; then find "$d" -mindepth 1 -maxdepth 1 "$@" | wc -l; else echo 0; fi
}
# Open proxy fds (anon inode "[vtpms]", held by swtpm) in any process.
count_proxy_fds() {
	find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -lname 'anon_inode:\[vtpms\]' 2>/dev/null | wc -l
}
# Cgroups below the root of the v1 devices hierarchy (0 without it).
count_devcgroups() {
	if [ -d /sys/fs/cgroup/devices ]; then find /sys/fs/cgroup/devices -mindepth 1 -type d | wc -l; else echo 0; fi
}
# chip_count_names: the rows chip_counts prints, in order, one a line.
chip_count_names() {
	printf '%s\n' "/dev/tpmN nodes" "/dev/tpmrmN nodes" "/sys/class/tpm entries (vtpm_proxy chips)" \
		"open vtpm_proxy fds, any process" "tpm_vtpm_proxy module references" "device cgroups (v1 devices hierarchy)"
}
# chip_counts: one count for each of chip_count_names, on one line.
chip_counts() {
	echo "$(count_entries /dev -name 'tpm[0-9]*')" \
		"$(count_entries /dev -name 'tpmrm[0-9]*')" \
		"$(count_entries /sys/class/tpm)" \
		"$(count_proxy_fds)" \
		"$(cat /sys/module/tpm_vtpm_proxy/refcnt 2>/dev/null || echo 0)" \
		"$(count_devcgroups)"
}
