/* SPDX-License-Identifier: Apache-2.0 */
/* What a slot's cgroups account (oci-vtpm top), and gc of stray ones. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/log.h"

#include "limits_internal.h"

static int64_t read_num(int dfd, const char *file, const char *key)
{
	cleanup_free char *text = NULL;
	ov_error ignored = {0};
	const char *p;

	if (ov_read_file_at(dfd, file, SMALL_FILE, &text, NULL, &ignored) < 0)
		return -1;
	p = text;
	if (key) {
		size_t kl = strlen(key);

		for (p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
			if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
				break;
		if (!p)
			return -1;
		p += kl + 1;
	}
	if (strncmp(p, "max", 3) == 0)
		return 0;
	return strtoll(p, NULL, 10);
}

int ov_limits_usage(const struct ov_settings *s, const char *name, struct ov_limits_usage *u,
		    ov_error *err)
{
	struct ov_limits_hier h[OV_LIMITS_MAX_HIER];
	size_t n;
	int found = 0;

	(void)err;
	*u = (struct ov_limits_usage){-1, -1, -1, -1, -1, -1};
	if (!s->swtpm_cgroup || !*s->swtpm_cgroup || !*name)
		return 0;
	n = ov_limits_find_hiers(h);
	for (size_t i = 0; i < n; i++) {
		cleanup_close int cg = ov_limits_open_cg(s, &h[i], name);

		if (cg < 0)
			continue;
		found = 1;
		if (h[i].ctrls & C_MEMORY) {
			u->memory = read_num(
			    cg, h[i].v2 ? "memory.current" : "memory.usage_in_bytes", NULL);
			u->memory_max =
			    read_num(cg, h[i].v2 ? "memory.max" : "memory.limit_in_bytes", NULL);
		}
		if (h[i].ctrls & C_PIDS) {
			u->pids = read_num(cg, "pids.current", NULL);
			u->pids_max = read_num(cg, "pids.max", NULL);
		}
		if (h[i].v2) {
			u->cpu_us = read_num(cg, "cpu.stat", "usage_usec");
		} else if (h[i].ctrls & C_CPUACCT) {
			int64_t ns = read_num(cg, "cpuacct.usage", NULL);

			u->cpu_us = ns < 0 ? -1 : ns / 1000;
		}
		if ((h[i].ctrls & C_CPU) && h[i].v2) {
			int64_t q = read_num(cg, "cpu.max", NULL);

			u->cpu_max = q > 0 ? q * 100 / (int64_t)CPU_PERIOD_US : q;
		} else if (h[i].ctrls & C_CPU) {
			int64_t q = read_num(cg, "cpu.cfs_quota_us", NULL);
			int64_t per = read_num(cg, "cpu.cfs_period_us", NULL);

			u->cpu_max = q > 0 && per > 0 ? q * 100 / per : 0;
		}
	}
	ov_limits_close_hiers(h, n);
	return found;
}

/* Has the cgroup name under parent no process (cgroup.procs empty)? */
static bool cg_empty(int parent, const char *name)
{
	cleanup_close int cg = ov_limits_open_beneath(parent, name, O_RDONLY | O_DIRECTORY);
	cleanup_free char *procs = NULL;
	ov_error ignored = {0};

	return cg >= 0 &&
	       ov_read_file_at(cg, "cgroup.procs", 1u << 20, &procs, NULL, &ignored) == 0 &&
	       procs[strspn(procs, " \n")] == '\0';
}

unsigned ov_limits_gc(const struct ov_settings *s, bool (*known)(const char *name, void *arg),
		      void *arg)
{
	struct ov_limits_hier h[OV_LIMITS_MAX_HIER];
	unsigned removed = 0;
	size_t n;

	if (!s->swtpm_cgroup || !*s->swtpm_cgroup)
		return 0;
	n = ov_limits_find_hiers(h);
	for (size_t i = 0; i < n; i++) {
		ov_error ignored = {0};
		int parent = ov_limits_open_parent(s, &h[i], false, &ignored);
		cleanup_dir DIR *d = NULL;
		struct dirent *de;

		if (parent < 0)
			continue;
		d = fdopendir(parent);
		if (!d) {
			close(parent);
			continue;
		}
		while ((de = readdir(d))) {
			int r;

			/* One with processes is left alone (a swtpm without a
			 * record is gc's kill_strays'); an empty one is asked
			 * about only now that it is listed: a start records its
			 * cgroup's name before it makes it. */
			if (de->d_type != DT_DIR || de->d_name[0] == '.' ||
			    strcmp(de->d_name, OV_LIMITS_STOPPING) == 0 ||
			    !cg_empty(dirfd(d), de->d_name) || known(de->d_name, arg))
				continue;
			r = ov_limits_rmdir(dirfd(d), de->d_name, 0);
			if (r < 0)
				ov_debug("stray cgroup %s/%s: %s", s->swtpm_cgroup, de->d_name,
					 strerror(-r));
			else
				removed++;
		}
	}
	ov_limits_close_hiers(h, n);
	return removed;
}
