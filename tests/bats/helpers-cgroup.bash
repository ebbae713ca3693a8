# shellcheck shell=bash
# The cgroups of swtpm (settings swtpm_cgroup, lib/limits.c), for
# tests/bats/limits.bats and tests/vm/device.bats: where each controller is
# mounted, which cgroup a process is in, the cgroup a slot's record names.
#
#   load helpers            (or ../bats/helpers)
#   load helpers-cgroup     (or ../bats/helpers-cgroup)

# ov_cg_mount CONTROLLER: the cgroup v1 mount holding it, else the cgroup2
# mount if its root has it; nothing when the host has neither.
ov_cg_mount() {
	local m
	m=$(awk -v c="$1" '$9 == "cgroup" && $4 == "/" {
		n = split($NF, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) { print $5; exit } }' /proc/self/mountinfo)
	if [ -z "$m" ]; then
		m=$(awk '$9 == "cgroup2" && $4 == "/" { print $5; exit }' /proc/self/mountinfo)
		[ -n "$m" ] && grep -qw "$1" "$m/cgroup.controllers" 2>/dev/null || m=
	fi
	echo "$m"
}
# ov_cg_mounts: the mounts of the memory, pids, cpu and cpuacct hierarchies.
ov_cg_mounts() { for c in memory pids cpu cpuacct; do ov_cg_mount $c; done | sort -u; }
ov_cg_v2() { [ "$(stat -f -c %T "$1")" = cgroup2fs ]; }

# The host must have the three controllers: otherwise nothing is tested.
ov_requires_cg_controllers() {
	local c
	for c in memory pids cpu; do
		[ -n "$(ov_cg_mount $c)" ] || ov_missing "cgroup $c controller" "neither cgroup v1 nor cgroup2 has it"
	done
}

# ov_cg_path PID CONTROLLER: PID's cgroup in the hierarchy holding
# CONTROLLER.
ov_cg_path() {
	local m
	m=$(ov_cg_mount "$2")
	if ov_cg_v2 "$m"; then
		awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup"
	else
		awk -F: -v c="$2" '{ n = split($2, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) print $3 }' "/proc/$1/cgroup"
	fi
}

# ov_cg_of PARENT ID: the cgroup of slot ID's swtpms, PARENT/<the token its
# record names>.
ov_cg_of() {
	local tok
	tok=$(jq -r '.cgroup // empty' "$(ov_slot "$2")/record.json")
	[[ $tok =~ ^[0-9a-f]{32}$ ]] || fail "slot $2 records no cgroup token: '$tok'"
	echo "$1/$tok"
}

# ov_cg_children PARENT: the cgroups under PARENT, in every hierarchy.
ov_cg_children() {
	local m
	for m in $(ov_cg_mounts); do
		[ ! -d "$m/$1" ] || find "$m/$1" -mindepth 1 -maxdepth 1 -type d
	done
}

# ov_cg_cleanup PARENT: remove PARENT and its parent (empty, made by a test)
# from every hierarchy.
ov_cg_cleanup() {
	local m
	for m in $(ov_cg_mounts); do
		rmdir "$m/$1" "$m/${1%/*}" 2>/dev/null || true
	done
}
