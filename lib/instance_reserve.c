/* SPDX-License-Identifier: Apache-2.0 */
/* Settings max_vtpms (include/oci-vtpm/instance.h): the vTPMs of the run
 * dir's slots counted, and a start's claim written, under one lock. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/proc.h"

/* A start's claim on max_vtpms until its record names a live swtpm: "PID
 * STARTTIME COUNT" of the starting process, in its slot. */
#define RESERVED_FILE "vtpms.reserved"

/* The vTPMs slot counts for: its record's while its swtpm lives (not once
 * it is stopping: its container is gone, a worker ends it), else its
 * start's claim while that start runs. */
static unsigned slot_tpms(int run, const char *slot)
{
	char path[OV_INSTANCE_PATH_MAX];
	cleanup_close int cdir = -1;
	cleanup_free char *text = NULL;
	ov_error ignored = {0};
	struct ov_record rec;
	unsigned long long st;
	unsigned count;
	int pid;

	if (ov_instance_path(run, slot, false, path, sizeof(path), &ignored) < 0 ||
	    (cdir = ov_open_dir_at(run, path)) < 0)
		return 0;
	if (ov_record_read(cdir, &rec, &ignored) == 0) {
		bool stopping = rec.stopping, alive = !stopping && ov_instance_alive(&rec);

		count = rec.count;
		ov_record_free(&rec);
		if (alive)
			return count;
		if (stopping)
			return 0;
	}
	if (ov_read_file_at(cdir, RESERVED_FILE, 128, &text, NULL, &ignored) == 0 &&
	    sscanf(text, "%d %llu %u", &pid, &st, &count) == 3 && ov_proc_alive(pid, st))
		return count;
	return 0;
}

/*
 * At least the vTPMs slot counts for, from one stat: every vTPM i of a
 * slot has its state dir state-i there from before its start's claim
 * (lib/vtpm.c start_new) until the slot goes, so the slot's
 * subdirectories (its link count less 2) bound them. A file system that
 * does not count a directory's links (btrfs says 1): the most a slot holds.
 */
static unsigned slot_bound(int run, const char *slot)
{
	char path[OV_INSTANCE_PATH_MAX];
	ov_error ignored = {0};
	struct stat st;

	if (ov_instance_path(run, slot, false, path, sizeof(path), &ignored) < 0 ||
	    fstatat(run, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* gone: none, as slot_tpms says */
	if (!S_ISDIR(st.st_mode) || st.st_nlink < 2 || st.st_nlink - 2 > OV_MAX_TPMS)
		return OV_MAX_TPMS;
	return (unsigned)(st.st_nlink - 2);
}

/* The vTPMs of every slot but id's, each counted by tpms. */
static unsigned count_tpms(int run, const char *id, unsigned (*tpms)(int, const char *))
{
	cleanup_instance_iter struct ov_instance_iter it = {0};
	const char *slot;
	unsigned n = 0;

	while ((slot = ov_instance_next(run, &it)))
		if (strcmp(slot, id) != 0)
			n += tpms(run, slot);
	return n;
}

int ov_instance_reserve_tpms(int run, int cdir, const char *id, unsigned count, unsigned max,
			     ov_error *err)
{
	cleanup_close int lock = -1;
	unsigned long long st;
	char buf[96];

	if (!max)
		return 0;
	/* The run dir itself: a warm vTPM starts before any container slot. */
	lock = ov_open_dir_at(run, ".");
	if (lock < 0)
		return ov_error_set(err, errno, "opening the run dir");
	while (flock(lock, LOCK_EX) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "locking the run dir");
	/* Reading every slot's record is 25 us a slot, under this lock:
	 * only when the bound says the limit may be near. */
	if (count_tpms(run, id, slot_bound) + count > max &&
	    count_tpms(run, id, slot_tpms) + count > max)
		return ov_error_set(
		    err, 0,
		    "%u more vTPM%s would be beyond the %u this host runs (settings "
		    "\"max_vtpms\")",
		    count, count > 1 ? "s" : "", max);
	if (ov_proc_starttime(getpid(), &st, err) < 0)
		return ov_error_wrap(err, "claiming vTPMs");
	snprintf(buf, sizeof(buf), "%d %llu %u\n", (int)getpid(), st, count);
	return ov_write_file_replace(cdir, RESERVED_FILE, buf, strlen(buf), 0600, err);
}
