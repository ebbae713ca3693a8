/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resource limits of a slot's swtpms (and their control relays): one cgroup
 * <swtpm_cgroup>/<name> in every hierarchy that has the memory, pids or
 * cpu controller (cgroup v1 hierarchies first, then cgroup2's), limited to
 * count times the per-TPM limits of the settings (memory and pids from
 * the start, CPU once the TPMs answer). name is the slot's
 * record's cgroup token (store.h), which never changes: a slot renamed
 * (a warm or precreated vTPM taken by its container) keeps its cgroup, and
 * nothing here depends on the run dir's layout (cgroup2 cannot rename a
 * cgroup at all). A controller the host lacks is a debug line, not an
 * error. swtpm_cgroup "" turns it all off.
 */
#ifndef OCI_VTPM_LIMITS_H
#define OCI_VTPM_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

#define OV_LIMITS_MAX_HIER 5 /* memory, pids, cpu, cpuacct, cgroup2 */

/* The files a child joins a slot's cgroups by (n of them: v1's "tasks",
 * cgroup2's cgroup.procs), open; required:
 * the settings ask for limits (a failed join fails the start). */
struct ov_limits_cg {
	int procs[OV_LIMITS_MAX_HIER];
	size_t n;
	bool required;
	int cpu;     /* the cgroup with the cpu controller, for ov_limits_started; or -1 */
	bool cpu_v2; /* ... on cgroup2 */
};
#define OV_LIMITS_CG_INIT                                                                          \
	{                                                                                          \
		.procs = {-1, -1, -1, -1, -1}, .n = 0, .required = false, .cpu = -1,               \
		.cpu_v2 = false                                                                    \
	}

/* What a slot's cgroups account; -1: not known (no such controller). */
struct ov_limits_usage {
	int64_t memory; /* bytes */
	int64_t pids;
	int64_t cpu_us;			       /* CPU time used, microseconds */
	int64_t memory_max, pids_max, cpu_max; /* the limits; 0: none */
};

/* Is swtpm_cgroup a usable parent: relative, no "." or ".." or empty
 * component? ("" is: it turns limits off.) */
bool ov_limits_parent_valid(const char *parent);

/* The text written to the limit file (v1 or v2) for value (0: no limit). */
void ov_limits_text(const char *file, bool v2, uint64_t value, char *buf, size_t size);

/* Make the cgroups name with the limits for count TPMs, open their
 * cgroup.procs into cg. A failure is an error only when the settings ask
 * for limits (swtpm_limits_required); otherwise one warning, and 0 with
 * no cgroup in cg (swtpm runs unlimited). */
int ov_limits_create(const struct ov_settings *s, const char *name, unsigned count,
		     struct ov_limits_cg *cg, ov_error *err);
/* The count TPMs in the cgroups name (made into cg) answer: now their CPU
 * limit (a TPM's start is CPU-bound, self-test, restore, a TPM 1.2's RSA
 * key, and the kernel's fixed timeouts for a vtpm proxy chip do not wait
 * for a throttled one). Failures as ov_limits_create's. */
int ov_limits_started(const struct ov_settings *s, const struct ov_limits_cg *cg, const char *name,
		      unsigned count, ov_error *err);
/* In a child between fork and exec, single-threaded as a fork leaves it:
 * join cg (async-signal-safe). 0 or an errno (only when cg->required). */
int ov_limits_join(const struct ov_limits_cg *cg);
void ov_limits_close(struct ov_limits_cg *cg);

/* The cgroup <swtpm_cgroup>/stopping, no limits, kept (gc leaves it): a
 * stop's detached worker (lib/vtpm_stop.c) moves into it first, out of the
 * cgroup of whoever ran the poststop hook or the shim. A systemd unit
 * (podman or the shim in a service) stopped once they return kills what is
 * left in its cgroup, and would kill the worker before the archive is
 * durable. Best effort: where it cannot move, it stays where it was (a
 * debug line). */
#define OV_LIMITS_STOPPING "stopping"
void ov_limits_escape(const struct ov_settings *s);

/* Remove the cgroups name once their processes are gone (waits a little
 * for them); a cgroup still busy is a warning. */
void ov_limits_remove(const struct ov_settings *s, const char *name);
/* Sum what the cgroups name account. Returns 1, or 0 when there are none
 * (name "": none). */
int ov_limits_usage(const struct ov_settings *s, const char *name, struct ov_limits_usage *u,
		    ov_error *err);
/* gc: remove every empty cgroup under swtpm_cgroup that known(name, arg)
 * says no record names (asked after the cgroup was listed). Returns how
 * many were removed. */
unsigned ov_limits_gc(const struct ov_settings *s, bool (*known)(const char *name, void *arg),
		      void *arg);

#endif
