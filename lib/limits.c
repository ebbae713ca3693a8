/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cgroup.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/log.h"

#include "limits_internal.h"

static const struct {
	const char *name;
	unsigned bit;
} controllers[] = {{"memory", C_MEMORY}, {"pids", C_PIDS}, {"cpu", C_CPU}, {"cpuacct", C_CPUACCT}};
#define N_CTRL (sizeof(controllers) / sizeof(controllers[0]))

bool ov_limits_parent_valid(const char *parent)
{
	const char *p = parent;

	if (!*p)
		return true;
	if (*p == '/' || strlen(p) > 200)
		return false;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && !strncmp(p, "..", 2)))
			return false;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)p[i] < 0x21 || p[i] == 0x7f)
				return false;
		if (!e)
			break;
		p = e + 1;
		if (!*p)
			return false;
	}
	return true;
}

void ov_limits_text(const char *file, bool v2, uint64_t value, char *buf, size_t size)
{
	if (strcmp(file, "cpu.max") == 0) {
		if (value)
			snprintf(buf, size, "%" PRIu64 " %llu", value, CPU_PERIOD_US);
		else
			snprintf(buf, size, "max %llu", CPU_PERIOD_US);
	} else if (value) {
		snprintf(buf, size, "%" PRIu64, value);
	} else {
		/* v1's memory.limit_in_bytes and cpu.cfs_quota_us take -1,
		 * pids.max (v1 and v2) and v2's files "max". */
		snprintf(buf, size, "%s", !v2 && strcmp(file, "pids.max") != 0 ? "-1" : "max");
	}
}

void ov_limits_close_hiers(struct ov_limits_hier *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (h[i].fd >= 0)
			close(h[i].fd);
}

static bool word_in(const char *list, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += wl)
		if ((p == list || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\n' || !p[wl]))
			return true;
	return false;
}

/* The hierarchies that hold memory, pids and cpu; each a debug line when
 * missing. Returns how many (closed by ov_limits_close_hiers). */
size_t ov_limits_find_hiers(struct ov_limits_hier *h)
{
	cleanup_free char *mi = NULL;
	unsigned found = 0;
	size_t n = 0;
	ov_error mi_err = {0};

	/* One read of mountinfo for every controller (about 0.1 ms each). */
	if (ov_cgroup_mountinfo(&mi, &mi_err) < 0) {
		ov_debug("%s: swtpm is not limited", mi_err.msg);
		return 0;
	}
	for (size_t c = 0; c < N_CTRL; c++) {
		ov_error ignored = {0};
		int fd = ov_cgroup_open_dir_mi(mi, controllers[c].name, "/", &ignored);
		struct stat a, b;
		size_t i;

		if (fd < 0)
			continue;
		if (fstat(fd, &a) < 0) {
			close(fd);
			continue;
		}
		for (i = 0; i < n; i++)
			if (fstat(h[i].fd, &b) == 0 && b.st_dev == a.st_dev)
				break;
		if (i < n) {
			close(fd);
		} else {
			h[n++] = (struct ov_limits_hier){.fd = fd, .v2 = false};
		}
		h[i].ctrls |= controllers[c].bit;
		if (controllers[c].bit == C_CPU &&
		    faccessat(h[i].fd, "cpuacct.usage", F_OK, 0) == 0)
			h[i].ctrls |= C_CPUACCT;
		found |= controllers[c].bit;
	}
	if ((found & (C_MEMORY | C_PIDS | C_CPU)) != (C_MEMORY | C_PIDS | C_CPU)) {
		ov_error ignored = {0};
		cleanup_free char *list = NULL;
		int fd = ov_cgroup_open_dir_mi(mi, NULL, "/", &ignored);
		unsigned v2 = 0;

		if (fd >= 0 && ov_read_file_at(fd, "cgroup.controllers", SMALL_FILE, &list, NULL,
					       &ignored) == 0)
			for (size_t c = 0; c < N_CTRL; c++)
				if (!(found & controllers[c].bit) &&
				    word_in(list, controllers[c].name))
					v2 |= controllers[c].bit;
		if (v2) {
			h[n++] =
			    (struct ov_limits_hier){.fd = fd, .v2 = true, .ctrls = v2 | C_CPUACCT};
			found |= v2;
		} else if (fd >= 0) {
			close(fd);
		}
	}
	for (size_t c = 0; c < N_CTRL; c++)
		if (!(found & controllers[c].bit) && controllers[c].bit != C_CPUACCT)
			ov_debug("no %s cgroup controller on this host: swtpm's %s is not limited",
				 controllers[c].name, controllers[c].name);
	return n;
}

int ov_limits_open_beneath(int dfd, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve =
		RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};

	return (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
}

/* Write text to file of cgroup dfd; a missing file is -ENOENT. */
static int write_text(int dfd, const char *file, const char *text)
{
	cleanup_close int fd = openat(dfd, file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t len = (ssize_t)strlen(text);

	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)len) != len)
		return -errno;
	return 0;
}

/* cgroup2: let dfd's children have the controllers of h. */
static void enable_v2(int dfd, const struct ov_limits_hier *h)
{
	for (size_t c = 0; c < N_CTRL; c++) {
		char buf[32];
		int r;

		if (!(h->ctrls & controllers[c].bit) || controllers[c].bit == C_CPUACCT)
			continue;
		snprintf(buf, sizeof(buf), "+%s", controllers[c].name);
		r = write_text(dfd, "cgroup.subtree_control", buf);
		if (r < 0)
			ov_debug("cgroup2: enabling %s for swtpm's cgroup: %s", controllers[c].name,
				 strerror(-r));
	}
}

/* Open the parent cgroup (swtpm_cgroup) of h, made first with create. */
int ov_limits_open_parent(const struct ov_settings *s, const struct ov_limits_hier *h, bool create,
			  ov_error *err)
{
	char path[256], *save = NULL;
	cleanup_close int dfd = -1;

	if (!ov_limits_parent_valid(s->swtpm_cgroup))
		return ov_error_set(err, EINVAL, "swtpm_cgroup \"%s\" is not a relative path",
				    s->swtpm_cgroup);
	if (!create) {
		dfd = ov_limits_open_beneath(h->fd, s->swtpm_cgroup, O_RDONLY | O_DIRECTORY);
		if (dfd < 0)
			return ov_error_set(err, errno, "opening the cgroup %s", s->swtpm_cgroup);
		return take_fd(&dfd);
	}
	snprintf(path, sizeof(path), "%s", s->swtpm_cgroup);
	dfd = fcntl(h->fd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return ov_error_set(err, errno, "cgroup");
	for (char *comp = strtok_r(path, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		int next;

		if (h->v2)
			enable_v2(dfd, h);
		if (mkdirat(dfd, comp, 0755) < 0 && errno != EEXIST)
			return ov_error_set(err, errno, "creating the cgroup %s", s->swtpm_cgroup);
		next = ov_limits_open_beneath(dfd, comp, O_RDONLY | O_DIRECTORY);
		if (next < 0)
			return ov_error_set(err, errno, "opening the cgroup %s", s->swtpm_cgroup);
		close(dfd);
		dfd = next;
	}
	if (h->v2)
		enable_v2(dfd, h);
	return take_fd(&dfd);
}

/* Open the existing cgroup <swtpm_cgroup>/name of h, or -1. */
int ov_limits_open_cg(const struct ov_settings *s, const struct ov_limits_hier *h, const char *name)
{
	ov_error ignored = {0};
	cleanup_close int parent = ov_limits_open_parent(s, h, false, &ignored);

	return parent < 0 ? -1 : ov_limits_open_beneath(parent, name, O_RDONLY | O_DIRECTORY);
}

/* Write one limit to the cgroup cg (<swtpm_cgroup>/name); a file the
 * hierarchy lacks is a debug line. */
static int set_limit(const struct ov_settings *s, int cg, const struct ov_limits_hier *h,
		     const char *name, const char *file, uint64_t value, ov_error *err)
{
	char text[64];
	int r;

	ov_limits_text(file, h->v2, value, text, sizeof(text));
	r = write_text(cg, file, text);
	if (r == -ENOENT) {
		ov_debug("cgroup %s/%s has no %s: not limited", s->swtpm_cgroup, name, file);
		return 0;
	}
	if (r < 0)
		return ov_error_set(err, -r, "writing %s to %s/%s/%s", text, s->swtpm_cgroup, name,
				    file);
	return 0;
}

/* Memory and pids: from the start. */
static int limit_slot(const struct ov_settings *s, int cg, const struct ov_limits_hier *h,
		      unsigned count, const char *name, ov_error *err)
{
	if ((h->ctrls & C_MEMORY) &&
	    set_limit(s, cg, h, name, h->v2 ? "memory.max" : "memory.limit_in_bytes",
		      (uint64_t)s->swtpm_memory_max * count, err) < 0)
		return -1;
	if ((h->ctrls & C_PIDS) &&
	    set_limit(s, cg, h, name, "pids.max", (uint64_t)s->swtpm_pids_max * count, err) < 0)
		return -1;
	return 0;
}

/* CPU: once the TPMs answer (ov_limits_started). */
static int limit_cpu(const struct ov_settings *s, int cg, const struct ov_limits_hier *h,
		     unsigned count, const char *name, ov_error *err)
{
	uint64_t cpu = (uint64_t)s->swtpm_cpu_max * count * CPU_PERIOD_US / 100;

	if (!(h->ctrls & C_CPU))
		return 0;
	if (h->v2)
		return set_limit(s, cg, h, name, "cpu.max", cpu, err);
	if (set_limit(s, cg, h, name, "cpu.cfs_period_us", CPU_PERIOD_US, err) < 0 ||
	    set_limit(s, cg, h, name, "cpu.cfs_quota_us", cpu < 1000 && cpu ? 1000 : cpu, err) < 0)
		return -1;
	return 0;
}

/* Make the cgroup name under parent (of hierarchy h) with the limits, and
 * open its cgroup.procs. Returns the fd, or -1. */
static int create_one(const struct ov_settings *s, int parent, const struct ov_limits_hier *h,
		      const char *name, unsigned count, ov_error *err)
{
	cleanup_close int cg = -1;
	int procs;

	if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the cgroup %s/%s", s->swtpm_cgroup, name);
	cg = ov_limits_open_beneath(parent, name, O_RDONLY | O_DIRECTORY);
	if (cg < 0)
		return ov_error_set(err, errno, "opening the cgroup %s/%s", s->swtpm_cgroup, name);
	if (limit_slot(s, cg, h, count, name, err) < 0)
		return -1;
	/* v1: the child joins through "tasks", as its one thread. Writing a
	 * process to cgroup.procs takes the kernel's global threadgroup
	 * rwsem for writing, which waits for an RCU grace period (4 to 17 ms
	 * on this 2-core host, measured: docs/performance.md); moving the
	 * calling thread alone does not need it, and a child between fork and
	 * exec has no other thread. cgroup2 has no such file for a domain
	 * cgroup: cgroup.procs. */
	procs = openat(cg, h->v2 ? "cgroup.procs" : "tasks", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (procs < 0)
		return ov_error_set(err, errno, "opening %s of %s/%s",
				    h->v2 ? "cgroup.procs" : "tasks", s->swtpm_cgroup, name);
	return procs;
}

int ov_limits_create(const struct ov_settings *s, const char *name, unsigned count,
		     struct ov_limits_cg *cg, ov_error *err)
{
	struct ov_limits_hier h[OV_LIMITS_MAX_HIER];
	size_t n;
	int ret = 0;

	ov_limits_close(cg);
	if (!s->swtpm_cgroup || !*s->swtpm_cgroup)
		return 0;
	cg->required = s->swtpm_limits_required;
	n = ov_limits_find_hiers(h);
	for (size_t i = 0; i < n && ret == 0; i++) {
		cleanup_close int parent = ov_limits_open_parent(s, &h[i], true, err);

		if (parent < 0 &&
		    (err->code == EROFS || err->code == EACCES || err->code == EPERM)) {
			/* A cgroup file system we may not write (a hook in a
			 * container): as if the controller were missing. */
			ov_debug("%s: swtpm is not limited there", err->msg);
			ov_error_clear(err);
			continue;
		}
		ret = parent < 0 ? -1 : create_one(s, parent, &h[i], name, count, err);
		if (ret >= 0) {
			cg->procs[cg->n++] = ret;
			ret = 0;
			/* For ov_limits_started: no second look for it. */
			if ((h[i].ctrls & C_CPU) && cg->cpu < 0) {
				cg->cpu =
				    ov_limits_open_beneath(parent, name, O_RDONLY | O_DIRECTORY);
				cg->cpu_v2 = h[i].v2;
			}
		}
	}
	ov_limits_close_hiers(h, n);
	if (ret == 0)
		return 0;
	ov_limits_close(cg);
	ov_limits_remove(s, name);
	ov_error_wrap(err, "swtpm's cgroup");
	if (s->swtpm_limits_required)
		return -1;
	/* Limits by default only: a start that works without them goes on. */
	ov_warn("%s; swtpm runs without limits (settings swtpm_cgroup)", err->msg);
	ov_error_clear(err);
	return 0;
}

int ov_limits_started(const struct ov_settings *s, const struct ov_limits_cg *cg, const char *name,
		      unsigned count, ov_error *err)
{
	const struct ov_limits_hier h = {.fd = -1, .v2 = cg->cpu_v2, .ctrls = C_CPU};

	/* No cpu, or not made there (a cgroup fs we may not write). */
	if (!s->swtpm_cgroup || !*s->swtpm_cgroup || !*name || cg->cpu < 0)
		return 0;
	if (limit_cpu(s, cg->cpu, &h, count, name, err) == 0)
		return 0;
	ov_error_wrap(err, "swtpm's cgroup");
	if (s->swtpm_limits_required)
		return -1;
	ov_warn("%s; swtpm runs without a CPU limit (settings swtpm_cgroup)", err->msg);
	ov_error_clear(err);
	return 0;
}

int ov_limits_join(const struct ov_limits_cg *cg)
{
	for (size_t i = 0; cg && i < cg->n; i++)
		if (write(cg->procs[i], "0", 1) != 1 && cg->required)
			return errno ? errno : EIO;
	return 0;
}

void ov_limits_close(struct ov_limits_cg *cg)
{
	for (size_t i = 0; i < OV_LIMITS_MAX_HIER; i++) {
		if (i < cg->n && cg->procs[i] >= 0)
			close(cg->procs[i]);
		cg->procs[i] = -1;
	}
	if (cg->cpu >= 0)
		close(cg->cpu);
	cg->cpu = -1;
	cg->cpu_v2 = false;
	cg->n = 0;
	cg->required = false;
}

void ov_limits_escape(const struct ov_settings *s)
{
	struct ov_limits_hier h[OV_LIMITS_MAX_HIER];
	size_t n;

	if (!s->swtpm_cgroup || !*s->swtpm_cgroup)
		return;
	n = ov_limits_find_hiers(h);
	for (size_t i = 0; i < n; i++) {
		ov_error err = {0};
		cleanup_close int parent = ov_limits_open_parent(s, &h[i], true, &err), cg = -1;
		int r = -ENOENT;

		/* gc may remove it empty between the mkdir and the write:
		 * once more then. */
		for (int tries = 0; parent >= 0 && r == -ENOENT && tries < 2; tries++) {
			if (mkdirat(parent, OV_LIMITS_STOPPING, 0755) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			if (cg >= 0)
				close(cg);
			cg = ov_limits_open_beneath(parent, OV_LIMITS_STOPPING,
						    O_RDONLY | O_DIRECTORY);
			r = cg < 0 ? -errno
				   : write_text(cg, h[i].v2 ? "cgroup.procs" : "tasks", "0");
		}
		if (parent < 0)
			ov_debug("stop worker: %s", err.msg);
		else if (r < 0)
			ov_debug("stop worker: joining the cgroup %s/%s: %s", s->swtpm_cgroup,
				 OV_LIMITS_STOPPING, strerror(-r));
	}
	ov_limits_close_hiers(h, n);
}

static void sleep_us(long us)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000L};

	nanosleep(&ts, NULL);
}

/* rmdir slot in parent, waiting up to wait_ms for its processes to go:
 * the control relay leaves once it sees its swtpm gone, typically within
 * a millisecond, so the waits start short (0.25 ms, doubling to 10 ms). */
int ov_limits_rmdir(int parent, const char *slot, int wait_ms)
{
	for (long waited = 0, step = 250;; waited += step, step = step < 5000 ? step * 2 : 10000) {
		if (unlinkat(parent, slot, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || waited >= (long)wait_ms * 1000)
			return -errno;
		sleep_us(step);
	}
}

void ov_limits_remove(const struct ov_settings *s, const char *name)
{
	struct ov_limits_hier h[OV_LIMITS_MAX_HIER];
	size_t n;

	if (!s->swtpm_cgroup || !*s->swtpm_cgroup)
		return;
	n = ov_limits_find_hiers(h);
	for (size_t i = 0; i < n; i++) {
		ov_error ignored = {0};
		cleanup_close int parent = ov_limits_open_parent(s, &h[i], false, &ignored);
		int r;

		if (parent < 0)
			continue;
		r = ov_limits_rmdir(parent, name, 2000);
		if (r < 0)
			ov_warn("removing the cgroup %s/%s: %s", s->swtpm_cgroup, name,
				strerror(-r));
	}
	ov_limits_close_hiers(h, n);
}
