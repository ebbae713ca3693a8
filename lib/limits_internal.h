/* SPDX-License-Identifier: Apache-2.0 */
/* What limits.c (make, join, remove a slot's cgroups) and limits_usage.c
 * (what they account, gc) share. */
#ifndef OCI_VTPM_LIMITS_INTERNAL_H
#define OCI_VTPM_LIMITS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

#define C_MEMORY      1u
#define C_PIDS	      2u
#define C_CPU	      4u
#define C_CPUACCT     8u
#define CPU_PERIOD_US 100000ull
#define SMALL_FILE    4096

/* A hierarchy holding some of the controllers: its root, opened. */
struct ov_limits_hier {
	int fd;
	bool v2;
	unsigned ctrls;
};

/* The hierarchies that hold memory, pids and cpu; each a debug line when
 * missing. Returns how many (closed by ov_limits_close_hiers). */
size_t ov_limits_find_hiers(struct ov_limits_hier *h);
void ov_limits_close_hiers(struct ov_limits_hier *h, size_t n);
/* openat2 beneath dfd: no symlinks, no other mount. */
int ov_limits_open_beneath(int dfd, const char *path, int flags);
/* Open the parent cgroup (swtpm_cgroup) of h, made first with create. */
int ov_limits_open_parent(const struct ov_settings *s, const struct ov_limits_hier *h, bool create,
			  ov_error *err);
/* Open the existing cgroup <swtpm_cgroup>/name of h, or -1. */
int ov_limits_open_cg(const struct ov_settings *s, const struct ov_limits_hier *h,
		      const char *name);
/* rmdir slot in parent, waiting up to wait_ms for its processes to go;
 * 0 or -errno. */
int ov_limits_rmdir(int parent, const char *slot, int wait_ms);

#endif
