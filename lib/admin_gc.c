/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm gc (admin.h): collect the slots of the run dir whose container
 * is gone, swtpm processes of the run dir without a slot, stale claims. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/admin.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/vtpm.h"

/* The slot of run_dir that path names ("<run_dir>/<kind>/<name>[/...]"),
 * by slot name in id. */
static bool run_dir_entry(const char *path, const char *run_dir, char *id, size_t size)
{
	size_t plen = strlen(run_dir), n;

	if (strncmp(path, run_dir, plen) != 0 || path[plen] != '/')
		return false;
	path += plen + 1;
	n = strcspn(path, "/");
	if (path[n] != '/')
		return false;
	n += 1 + strcspn(path + n + 1, "/");
	if (n >= size)
		return false;
	memcpy(id, path, n);
	id[n] = '\0';
	return ov_instance_slot_of(id);
}

/* Is the slot id of run the directory st is? */
static bool slot_is(int run, const char *id, const struct stat *st)
{
	char path[OV_INSTANCE_PATH_MAX];
	ov_error ignored = {0};
	struct stat there;

	return ov_instance_path(run, id, false, path, sizeof(path), &ignored) == 0 &&
	       fstatat(run, path, &there, AT_SYMLINK_NOFOLLOW) == 0 && there.st_dev == st->st_dev &&
	       there.st_ino == st->st_ino;
}

/*
 * The container an swtpm of run_dir belongs to, in id, and whether its
 * directory is still there (*alive). A container's swtpm runs in its
 * directory (lib/vtpm.c): alive when its slot is that directory. One
 * started by hand or by an older oci-vtpm has "dir=<slot path>/state-N" in
 * its arguments instead. Returns -1 when pid is no swtpm of run_dir.
 */
static int swtpm_container(pid_t pid, const char *run_dir, int run, char *id, size_t size,
			   bool *alive)
{
	cleanup_free char *cmd = NULL;
	char path[64], cwd[PATH_MAX];
	struct stat here;
	ov_error ignored = {0};
	const char *base;
	size_t len;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (ov_read_file_at(AT_FDCWD, path, 1u << 16, &cmd, &len, &ignored) < 0)
		return -1;
	base = strrchr(cmd, '/');
	if (strcmp(base ? base + 1 : cmd, "swtpm") != 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	n = readlink(path, cwd, sizeof(cwd) - 1);
	if (n > 0 && stat(path, &here) == 0) {
		cwd[n] = '\0';
		if (n > 10 && strcmp(cwd + n - 10, " (deleted)") == 0)
			cwd[n - 10] = '\0';
		if (run_dir_entry(cwd, run_dir, id, size)) {
			*alive = slot_is(run, id, &here);
			return 0;
		}
	}
	for (size_t off = 0; off < len; off += strlen(cmd + off) + 1)
		if (strncmp(cmd + off, "dir=", 4) == 0 &&
		    run_dir_entry(cmd + off + 4, run_dir, id, size)) {
			*alive = ov_instance_exists(run, id);
			return 0;
		}
	return -1;
}

void ov_admin_gc_free(struct ov_admin_gc *r)
{
	for (size_t i = 0; i < r->n_events; i++)
		free(r->events[i].msg);
	free(r->events);
	*r = (struct ov_admin_gc){0};
}

static int gc_event(struct ov_admin_gc *r, enum ov_admin_gc_kind kind, const char *id, pid_t pid,
		    const char *msg, ov_error *err)
{
	struct ov_admin_gc_event *ev = reallocarray(r->events, r->n_events + 1, sizeof(*ev));

	if (!ev)
		return ov_error_set(err, ENOMEM, "gc");
	r->events = ev;
	ev += r->n_events;
	*ev = (struct ov_admin_gc_event){.kind = kind, .pid = pid};
	snprintf(ev->id, sizeof(ev->id), "%s", id);
	if (msg && !(ev->msg = strdup(msg)))
		return ov_error_set(err, ENOMEM, "gc");
	r->n_events++;
	return 0;
}

/* swtpm processes of our run_dir whose container has no run directory. */
static int kill_strays(const struct ov_settings *s, int run, struct ov_admin_gc *r, ov_error *err)
{
	cleanup_dir DIR *proc = opendir("/proc");
	cleanup_free char *run_dir = realpath(s->run_dir, NULL);
	struct dirent *de;

	while (run_dir && proc && (de = readdir(proc))) {
		char id[OV_INSTANCE_PATH_MAX];
		unsigned long long st;
		ov_error ignored = {0};
		pid_t pid = (pid_t)atoi(de->d_name);
		bool alive;

		if (pid <= 0 || swtpm_container(pid, run_dir, run, id, sizeof(id), &alive) < 0 ||
		    alive)
			continue;
		if (ov_proc_starttime(pid, &st, &ignored) == 0 &&
		    ov_swtpm_stop(pid, st, NULL, 2000, &ignored) >= 0) {
			r->strays++;
			if (gc_event(r, OV_ADMIN_GC_STRAY, id, pid, NULL, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* gc's question to lib/limits.c: does a slot's record name this cgroup? */
static bool cgroup_recorded(const char *name, void *arg)
{
	return ov_instance_cgroup_recorded(*(int *)arg, name);
}

int ov_admin_gc(const struct ov_settings *s, struct ov_admin_gc *r, ov_error *err)
{
	cleanup_close int run = ov_run_dir_open(s->run_dir, false, err);
	cleanup_instance_iter struct ov_instance_iter it = {0};
	char boot_id[64];
	const char *slot;

	*r = (struct ov_admin_gc){0};
	if (run < 0) {
		if (err->code != ENOENT)
			return -1;
		ov_error_clear(err);
		r->no_run_dir = true;
		return 0;
	}
	if (ov_proc_boot_id(boot_id, sizeof(boot_id), err) < 0)
		return -1;
	while ((slot = ov_instance_next(run, &it))) {
		ov_error e = {0};
		int n = ov_vtpm_collect(s, slot, boot_id, &e);

		if (n > 0) {
			r->collected++;
			if (gc_event(r, OV_ADMIN_GC_COLLECTED, slot, 0, NULL, err) < 0)
				return -1;
		} else if (n < 0) {
			r->failed++;
			if (gc_event(r, OV_ADMIN_GC_FAILED, slot, 0, e.msg, err) < 0)
				return -1;
		}
	}
	if (kill_strays(s, run, r, err) < 0)
		return -1;
	ov_instance_gc_names(s); /* claims of names whose container is gone */
	ov_instance_gc_uids(s);	 /* swtpm_uid_range claims of slots that are gone */
	r->cgroups = ov_limits_gc(s, cgroup_recorded, &run);
	if (r->failed)
		return ov_error_set(err, 0, "gc: %u containers could not be collected", r->failed);
	return 0;
}
