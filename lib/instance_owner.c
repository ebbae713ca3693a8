/* SPDX-License-Identifier: Apache-2.0 */
/* Whose a slot is (include/oci-vtpm/instance.h): in use or not, the
 * container and the process creating it, the shim's runtime. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/store.h"

bool ov_instance_alive(const struct ov_record *rec)
{
	return rec->count > 0 && ov_proc_alive(rec->tpms[0].pid, rec->tpms[0].starttime);
}

bool ov_instance_in_use(const struct ov_record *rec)
{
	if (rec->stopping || (rec->count > 0 && !ov_instance_alive(rec)))
		return false;
	if (ov_warm_valid(rec->id)) /* waiting for any container */
		return rec->count > 0;
	if (rec->container_pid > 0)
		return ov_proc_alive(rec->container_pid, rec->container_starttime);
	return rec->holder_pid > 0 && ov_proc_alive(rec->holder_pid, rec->holder_starttime) &&
	       time(NULL) - rec->started_at < OV_INSTANCE_ADOPT_WINDOW_S;
}

/* The same bundle: the same path, or (one of them named through a symlink)
 * the same directory. */
static bool same_bundle(const char *a, const char *b)
{
	struct stat sa, sb;

	if (strcmp(a, b) == 0)
		return true;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && S_ISDIR(sa.st_mode) &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int ov_instance_owner_check(const struct ov_record *rec, const char *bundle, pid_t pid,
			    ov_error *err)
{
	if (bundle && *bundle && rec->bundle && !same_bundle(rec->bundle, bundle))
		return ov_error_code(err, EBUSY,
				     "the vTPM recorded for container id %s belongs to another "
				     "container (bundle %s, not %s)",
				     rec->id, rec->bundle, bundle);
	if (pid > 0 && rec->container_pid > 0 && rec->container_pid != pid &&
	    ov_proc_alive(rec->container_pid, rec->container_starttime))
		return ov_error_code(err, EBUSY,
				     "the vTPM recorded for container id %s belongs to another "
				     "container (process %d, not %d)",
				     rec->id, (int)rec->container_pid, (int)pid);
	return 0;
}

int ov_instance_hold(struct ov_record *rec, pid_t holder, ov_error *err)
{
	if (holder <= 0)
		return 0;
	if (ov_proc_starttime(holder, &rec->holder_starttime, err) < 0)
		return ov_error_wrap(err, "the process creating the container (%d)", (int)holder);
	rec->holder_pid = holder;
	rec->started_at = time(NULL);
	return 0;
}

int ov_instance_adopt(int cdirfd, pid_t container, struct ov_record *rec, ov_error *err)
{
	return ov_instance_adopt_runtime(cdirfd, container, NULL, NULL, rec, err);
}

/* Set *field to v; true when it changed (or on ENOMEM: *field NULL). */
static bool set_str(char **field, const char *v, bool *nomem)
{
	if (*field && strcmp(*field, v) == 0)
		return false;
	free(*field);
	*field = strdup(v);
	*nomem |= !*field;
	return true;
}

int ov_instance_adopt_runtime(int cdirfd, pid_t container, const char *runtime, const char *root,
			      struct ov_record *rec, ov_error *err)
{
	unsigned long long starttime;
	bool changed = false, nomem = false;

	if (container > 0 && rec->container_pid != container) {
		if (ov_proc_starttime(container, &starttime, err) < 0)
			return ov_error_wrap(err, "container process %d", (int)container);
		rec->container_pid = container;
		rec->container_starttime = starttime;
		changed = true;
	}
	if (runtime && root) {
		changed |= set_str(&rec->runtime, runtime, &nomem);
		changed |= set_str(&rec->runtime_root, root, &nomem);
		if (nomem)
			return ov_error_set(err, ENOMEM, "the record of %s", rec->id);
	}
	return changed ? ov_record_write(cdirfd, rec, err) : 0;
}

int ov_instance_read(const char *run_dir, const char *id, struct ov_record *rec, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;

	memset(rec, 0, sizeof(*rec));
	run = ov_run_dir_open(run_dir, false, err);
	if (run < 0)
		return -1;
	cdir = ov_container_dir_lock(run, id, false, err);
	if (cdir < 0)
		return -1;
	return ov_record_read(cdir, rec, err);
}
