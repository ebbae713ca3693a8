/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/proc.h"

int ov_instance_new_name(const char *prefix, char *buf, size_t size, ov_error *err)
{
	unsigned char rnd[16];
	size_t n = strlen(prefix);

	if (size < n + 2 * sizeof(rnd) + 1)
		return ov_error_set(err, ENAMETOOLONG, "vTPM name");
	if (ov_random(rnd, sizeof(rnd), err) < 0)
		return -1;
	memcpy(buf, prefix, n);
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(buf + n + 2 * i, 3, "%02x", rnd[i]);
	return 0;
}

void ov_instance_state_name(unsigned idx, char *buf, size_t size)
{
	snprintf(buf, size, "state-%u", idx);
}

int ov_instance_state_dirs(int cdirfd, unsigned count, const struct ov_user *u, bool create,
			   int *fds, ov_error *err)
{
	for (unsigned i = 0; i < count; i++)
		fds[i] = -1;
	for (unsigned i = 0; i < count; i++) {
		char name[64];

		ov_instance_state_name(i, name, sizeof(name));
		if (create && mkdirat(cdirfd, name, 0700) < 0)
			return ov_error_set(err, errno, "creating %s", name);
		if (create && fchownat(cdirfd, name, u->uid, u->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return ov_error_set(err, errno, "chown of %s", name);
		fds[i] = ov_open_dir_at(cdirfd, name);
		if (fds[i] < 0)
			return ov_error_set(err, errno, "opening %s", name);
	}
	return 0;
}

void ov_instance_close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

bool ov_instance_alive(const struct ov_record *rec)
{
	return rec->count > 0 && ov_proc_alive(rec->tpms[0].pid, rec->tpms[0].starttime);
}

bool ov_instance_in_use(const struct ov_record *rec)
{
	if (rec->count > 0 && !ov_instance_alive(rec))
		return false;
	if (ov_warm_valid(rec->id)) /* waiting for any container */
		return rec->count > 0;
	if (rec->container_pid > 0)
		return ov_proc_alive(rec->container_pid, rec->container_starttime);
	return rec->holder_pid > 0 && ov_proc_alive(rec->holder_pid, rec->holder_starttime) &&
	       time(NULL) - rec->started_at < OV_INSTANCE_ADOPT_WINDOW_S;
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
	unsigned long long starttime;

	if (container <= 0 || rec->container_pid == container)
		return 0;
	if (ov_proc_starttime(container, &starttime, err) < 0)
		return ov_error_wrap(err, "container process %d", (int)container);
	rec->container_pid = container;
	rec->container_starttime = starttime;
	return ov_record_write(cdirfd, rec, err);
}

int ov_instance_move(int run, int cdirfd, const char *from, const char *to, const char *bundle,
		     pid_t holder, const struct ov_record *rec, bool *moved, ov_error *err)
{
	struct ov_record next = *rec;
	struct stat held, named;

	*moved = false;
	/* The lock was waited for: is cdirfd still <run_dir>/<from>? */
	if (fstat(cdirfd, &held) < 0 || fstatat(run, from, &named, AT_SYMLINK_NOFOLLOW) < 0 ||
	    held.st_dev != named.st_dev || held.st_ino != named.st_ino)
		return ov_error_set(err, ENOENT, "%s was taken by another start", from);
	/* Whose it is now: the process creating the container (or the
	 * container itself, until it is recorded). */
	if (ov_instance_hold(&next, holder, err) < 0)
		return -1;
	/* Its swtpms' cgroup is named by the record's token (limits.h): it
	 * stays as it is. */
	if (renameat2(run, from, run, to, RENAME_NOREPLACE) < 0)
		return ov_error_set(err, errno, "giving the vTPM %s to the container", from);
	*moved = true;
	next.id = (char *)to;
	next.bundle = (char *)bundle;
	if ((rec->name && ov_instance_claim_name(run, rec->name, to, err) < 0) ||
	    ov_record_write(cdirfd, &next, err) < 0)
		return ov_error_wrap(err, "adopting the vTPM %s", from);
	return 0;
}

int ov_instance_claim_name(int run, const char *name, const char *id, ov_error *err)
{
	cleanup_close int names = -1;
	cleanup_free char *holder = NULL;

	if (mkdirat(run, OV_INSTANCE_NAMES_DIR, 0700) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the name claims");
	names = ov_open_dir_at(run, OV_INSTANCE_NAMES_DIR);
	if (names < 0)
		return ov_error_set(err, errno, "opening the name claims");
	if (ov_read_file_at(names, name, OV_ID_MAX + 1, &holder, NULL, err) == 0) {
		struct stat st;

		if (strcmp(holder, id) != 0 && ov_container_id_valid(holder) &&
		    fstatat(run, holder, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return ov_error_set(err, EBUSY, "vTPM %s is in use by container %s", name,
					    holder);
	} else if (err->code != ENOENT) {
		return ov_error_wrap(err, "claim of vTPM %s", name);
	}
	if (ov_write_file_atomic(names, name, id, strlen(id), 0600, err) < 0)
		return ov_error_wrap(err, "claiming vTPM %s", name);
	return 0;
}

/* The claim of name (its slot id, malloc'd) and the claims' directory. */
static char *read_claim(const struct ov_settings *s, const char *name, int *run, int *names)
{
	char *id = NULL;
	ov_error ignored = {0};

	*run = ov_run_dir_open(s->run_dir, false, &ignored);
	if (*run < 0)
		return NULL;
	*names = ov_open_dir_at(*run, OV_INSTANCE_NAMES_DIR);
	if (*names < 0 || ov_read_file_at(*names, name, OV_ID_MAX + 1, &id, NULL, &ignored) < 0)
		return NULL;
	return id;
}

void ov_instance_release_name(const struct ov_settings *s, const char *name, const char *id)
{
	cleanup_close int run = -1, names = -1;
	cleanup_free char *holder = read_claim(s, name, &run, &names);

	if (holder && strcmp(holder, id) == 0)
		unlinkat(names, name, 0);
}

bool ov_instance_name_holder(const struct ov_settings *s, const char *name, char *holder,
			     size_t size)
{
	cleanup_close int run = -1, names = -1;
	cleanup_free char *id = read_claim(s, name, &run, &names);
	struct stat st;

	if (!id || !ov_container_id_valid(id) || fstatat(run, id, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	snprintf(holder, size, "%s", id);
	return true;
}

void ov_instance_gc_names(const struct ov_settings *s)
{
	cleanup_close int run = -1;
	cleanup_dir DIR *names = NULL;
	ov_error ignored = {0};
	struct dirent *de;

	run = ov_run_dir_open(s->run_dir, false, &ignored);
	if (run >= 0)
		names = ov_opendir_at(run, OV_INSTANCE_NAMES_DIR);
	while (names && (de = readdir(names))) {
		char holder[OV_ID_MAX + 1];

		if (ov_name_valid(de->d_name) &&
		    !ov_instance_name_holder(s, de->d_name, holder, sizeof(holder)))
			unlinkat(dirfd(names), de->d_name, 0);
	}
}

int ov_instance_remove(const struct ov_settings *s, const char *id, ov_error *err)
{
	cleanup_close int run = ov_run_dir_open(s->run_dir, false, err);

	if (run < 0)
		return -1;
	return ov_remove_tree_at(run, id, err);
}

unsigned ov_instance_each(const struct ov_settings *s, bool (*valid)(const char *),
			  int (*fn)(const struct ov_settings *, const char *, const char *))
{
	cleanup_close int run = -1;
	cleanup_dir DIR *d = NULL;
	ov_error err = {0};
	char boot_id[64];
	struct dirent *de;
	unsigned n = 0;

	run = ov_run_dir_open(s->run_dir, false, &err);
	if (run < 0 || ov_proc_boot_id(boot_id, sizeof(boot_id), &err) < 0 ||
	    !(d = ov_opendir_at(run, ".")))
		return 0;
	while ((de = readdir(d)))
		if (valid(de->d_name) && fn(s, de->d_name, boot_id) > 0)
			n++;
	return n;
}

bool ov_instance_cgroup_recorded(int run, const char *name)
{
	cleanup_dir DIR *d = ov_opendir_at(run, ".");
	struct dirent *de;
	bool found = false;

	while (!found && d && (de = readdir(d))) {
		cleanup_close int cdir = -1;
		struct ov_record rec;
		ov_error ignored = {0};

		if (!ov_container_id_valid(de->d_name))
			continue;
		cdir = ov_open_dir_at(run, de->d_name);
		if (cdir < 0 || ov_record_read(cdir, &rec, &ignored) < 0)
			continue;
		found = strcmp(rec.cgroup, name) == 0;
		ov_record_free(&rec);
	}
	return found;
}

unsigned ov_instance_count_tpms(int run, const char *except)
{
	cleanup_dir DIR *d = ov_opendir_at(run, ".");
	struct dirent *de;
	unsigned n = 0;

	while (d && (de = readdir(d))) {
		cleanup_close int cdir = -1;
		struct ov_record rec;
		ov_error ignored = {0};

		if (!ov_container_id_valid(de->d_name) || strcmp(de->d_name, except) == 0)
			continue;
		cdir = ov_open_dir_at(run, de->d_name);
		if (cdir < 0 || ov_record_read(cdir, &rec, &ignored) < 0)
			continue;
		if (ov_instance_alive(&rec))
			n += rec.count;
		ov_record_free(&rec);
	}
	return n;
}
