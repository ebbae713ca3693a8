/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/proc.h"

/* The kinds of slot, each in its directory of the run dir; prefix: of
 * their slot names (none: a container's id). */
static const struct {
	const char *dir, *prefix;
} kinds[] = {
    {OV_INSTANCE_CONTAINERS_DIR, ""},
    {OV_INSTANCE_WARM_DIR, OV_WARM_PREFIX},
    {OV_INSTANCE_PRECREATED_DIR, OV_PRECREATED_PREFIX},
};

/* prefix followed by 32 lowercase hex digits */
static bool tagged_name(const char *slot, const char *prefix)
{
	size_t plen = strlen(prefix);

	if (strncmp(slot, prefix, plen) != 0 || strlen(slot) != plen + 32)
		return false;
	for (const char *p = slot + plen; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

bool ov_precreated_valid(const char *slot)
{
	return tagged_name(slot, OV_PRECREATED_PREFIX);
}

bool ov_warm_valid(const char *slot)
{
	return tagged_name(slot, OV_WARM_PREFIX);
}

bool ov_instance_slot_valid(const char *slot)
{
	return ov_container_id_valid(slot) || ov_warm_valid(slot) || ov_precreated_valid(slot);
}

int ov_instance_path(int run, const char *slot, bool create, char *buf, size_t size, ov_error *err)
{
	bool id = ov_container_id_valid(slot);
	size_t dlen;
	int n, made, ret = 0;

	if (!id && !ov_warm_valid(slot) && !ov_precreated_valid(slot))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", slot);
	n = snprintf(buf, size, "%s%s", id ? OV_INSTANCE_CONTAINERS_DIR "/" : "", slot);
	if (n < 0 || (size_t)n >= size)
		return ov_error_set(err, ENAMETOOLONG, "run directory of %.64s", slot);
	if (!create)
		return 0;
	/* The kind's directory, made durable in the run dir like a slot. */
	dlen = strcspn(buf, "/");
	buf[dlen] = '\0';
	made = mkdirat(run, buf, 0711);
	if ((made == 0 && ov_fsync_dir_at(run, ".") < 0) || (made < 0 && errno != EEXIST))
		ret = ov_error_set(err, errno, "creating the run directory's %s", buf);
	buf[dlen] = '/';
	return ret;
}

bool ov_instance_slot_of(char *path)
{
	const size_t clen = strlen(OV_INSTANCE_CONTAINERS_DIR "/");

	if (strncmp(path, OV_INSTANCE_CONTAINERS_DIR "/", clen) == 0) {
		memmove(path, path + clen, strlen(path + clen) + 1);
		return ov_container_id_valid(path);
	}
	return ov_warm_valid(path) || ov_precreated_valid(path);
}

void ov_instance_flat(const char *slot, char *buf, size_t size)
{
	snprintf(buf, size, "%s", slot);
	for (char *p = buf; (p = strchr(p, '/'));)
		*p = ':';
}

void ov_instance_unflat(char *name)
{
	for (char *p = name; (p = strchr(p, ':'));)
		*p = '/';
}

const char *ov_instance_next(int run, struct ov_instance_iter *it)
{
	struct dirent *de;

	for (; it->kind < sizeof(kinds) / sizeof(kinds[0]); it->kind++) {
		if (it->only && strcmp(it->only, kinds[it->kind].dir) != 0)
			continue;
		if (!it->d)
			it->d = ov_opendir_at(run, kinds[it->kind].dir);
		while (it->d && (de = readdir(it->d))) {
			int n = snprintf(it->slot, sizeof(it->slot), "%s%s", kinds[it->kind].prefix,
					 de->d_name);

			/* Of this kind: "warm/<name>" may be valid and no warm one. */
			if (n > 0 && (size_t)n < sizeof(it->slot) &&
			    (it->kind == 0 ? ov_container_id_valid(it->slot)
					   : tagged_name(it->slot, kinds[it->kind].prefix)))
				return it->slot;
		}
		if (it->d)
			closedir(it->d);
		it->d = NULL;
	}
	return NULL;
}

void ov_instance_iter_end(struct ov_instance_iter *it)
{
	if (it->d)
		closedir(it->d);
	it->d = NULL;
}

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

/* ------------------------------------------------- one uid per slot */

/* The uid claims' directory, locked (LOCK_EX) until closed; with create,
 * made first. Without: -1 and errno ENOENT when no range was ever used. */
static int uids_lock(int run, bool create, ov_error *err)
{
	int fd;

	if (create && mkdirat(run, OV_INSTANCE_UIDS_DIR, 0700) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the uid claims");
	fd = ov_open_dir_at(run, OV_INSTANCE_UIDS_DIR);
	if (fd < 0)
		return ov_error_set(err, errno, "opening the uid claims");
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			ov_error_set(err, errno, "locking the uid claims");
			close(fd);
			return -1;
		}
	return fd;
}

/* The slot that claims uid (malloc'd), or NULL. */
static char *uid_holder(int uids, uid_t uid)
{
	char name[16];
	char *id = NULL;
	ov_error ignored = {0};

	snprintf(name, sizeof(name), "%u", (unsigned)uid);
	if (ov_read_file_at(uids, name, OV_INSTANCE_PATH_MAX, &id, NULL, &ignored) < 0)
		return NULL;
	return id;
}

/* The uid slot cdirfd's swtpm runs as: the owner of its first state. */
static bool slot_uid(int cdirfd, uid_t *uid)
{
	char name[64];
	struct stat st;

	ov_instance_state_name(0, name, sizeof(name));
	if (fstatat(cdirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return false;
	*uid = st.st_uid;
	return true;
}

/* Pass slot from's uid claim to to, or drop it (to NULL); uids locked. */
static void uid_pass(int uids, int cdirfd, const char *from, const char *to)
{
	cleanup_free char *holder = NULL;
	ov_error ignored = {0};
	char name[16];
	uid_t uid;

	if (!slot_uid(cdirfd, &uid) || !(holder = uid_holder(uids, uid)) ||
	    strcmp(holder, from) != 0)
		return;
	snprintf(name, sizeof(name), "%u", (unsigned)uid);
	if (to)
		ov_write_file_atomic(uids, name, to, strlen(to), 0600, &ignored);
	else
		unlinkat(uids, name, 0);
}

int ov_instance_user(const struct ov_settings *s, int run, const char *id, struct ov_user *u,
		     ov_error *err)
{
	cleanup_close int uids = -1;

	if (!s->swtpm_uid_count)
		return ov_util_user(s->swtpm_user, u, err);
	uids = uids_lock(run, true, err);
	if (uids < 0)
		return -1;
	for (unsigned i = 0; i < s->swtpm_uid_count; i++) {
		uid_t uid = (uid_t)(s->swtpm_uid_first + i);
		cleanup_free char *holder = uid_holder(uids, uid);
		char name[16];

		/* Free: never claimed, or by a slot that is gone. */
		if (holder && strcmp(holder, id) != 0 && ov_instance_exists(run, holder))
			continue;
		snprintf(name, sizeof(name), "%u", (unsigned)uid);
		if (ov_write_file_atomic(uids, name, id, strlen(id), 0600, err) < 0)
			return ov_error_wrap(err, "claiming uid %u", (unsigned)uid);
		*u = (struct ov_user){.uid = uid, .gid = (gid_t)uid, .name = NULL};
		return 0;
	}
	return ov_error_code(
	    err, EAGAIN, "no free uid for swtpm: all %u of settings \"swtpm_uid_range\" are in use",
	    s->swtpm_uid_count);
}

int ov_instance_move(int run, int cdirfd, const char *from, const char *to, const char *bundle,
		     pid_t holder, const struct ov_record *rec, bool *moved, ov_error *err)
{
	struct ov_record next = *rec;
	struct stat held, named;
	char fpath[OV_INSTANCE_PATH_MAX], tpath[OV_INSTANCE_PATH_MAX];
	cleanup_close int uids = -1;
	ov_error ignored = {0};

	*moved = false;
	if (ov_instance_path(run, from, false, fpath, sizeof(fpath), err) < 0 ||
	    ov_instance_path(run, to, true, tpath, sizeof(tpath), err) < 0)
		return -1;
	/* The lock was waited for: is cdirfd still the slot from? */
	if (fstat(cdirfd, &held) < 0 || fstatat(run, fpath, &named, AT_SYMLINK_NOFOLLOW) < 0 ||
	    held.st_dev != named.st_dev || held.st_ino != named.st_ino)
		return ov_error_set(err, ENOENT, "%s was taken by another start", from);
	/* Whose it is now: the process creating the container (or the
	 * container itself, until it is recorded). */
	if (ov_instance_hold(&next, holder, err) < 0)
		return -1;
	/* Its swtpms' cgroup is named by the record's token (limits.h): it
	 * stays as it is. */
	/* Its uid's claim follows it: under the claims' lock, so no start
	 * sees the claim of a slot that is neither from nor to. */
	uids = uids_lock(run, false, &ignored);
	if (renameat2(run, fpath, run, tpath, RENAME_NOREPLACE) < 0)
		return ov_error_set(err, errno, "giving the vTPM %s to the container", from);
	*moved = true;
	if (uids >= 0)
		uid_pass(uids, cdirfd, from, to);
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
	if (ov_read_file_at(names, name, OV_INSTANCE_PATH_MAX, &holder, NULL, err) == 0) {
		if (strcmp(holder, id) != 0 && ov_instance_exists(run, holder))
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
	if (*names < 0 ||
	    ov_read_file_at(*names, name, OV_INSTANCE_PATH_MAX, &id, NULL, &ignored) < 0)
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

	if (!id || !ov_instance_exists(run, id))
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
		char holder[OV_INSTANCE_PATH_MAX];

		if (ov_name_valid(de->d_name) &&
		    !ov_instance_name_holder(s, de->d_name, holder, sizeof(holder)))
			unlinkat(dirfd(names), de->d_name, 0);
	}
}

int ov_instance_remove_at(int run, const char *id, ov_error *err)
{
	char path[OV_INSTANCE_PATH_MAX];
	cleanup_close int cdir = -1;
	ov_error ignored = {0};

	if (ov_instance_path(run, id, false, path, sizeof(path), err) < 0)
		return -1;
	cdir = ov_open_dir_at(run, path);
	if (cdir >= 0) {
		cleanup_close int uids = uids_lock(run, false, &ignored);

		if (uids >= 0)
			uid_pass(uids, cdir, id, NULL);
	}
	return ov_remove_tree_at(run, path, err);
}

void ov_instance_gc_uids(const struct ov_settings *s)
{
	cleanup_close int run = -1, uids = -1;
	cleanup_dir DIR *d = NULL;
	ov_error ignored = {0};
	struct dirent *de;

	run = ov_run_dir_open(s->run_dir, false, &ignored);
	if (run < 0 || (uids = uids_lock(run, false, &ignored)) < 0 ||
	    !(d = ov_opendir_at(uids, ".")))
		return;
	while ((de = readdir(d))) {
		cleanup_free char *holder = NULL;

		if (de->d_name[0] == '.' || ov_read_file_at(uids, de->d_name, OV_INSTANCE_PATH_MAX,
							    &holder, NULL, &ignored) < 0)
			continue;
		if (!ov_instance_exists(run, holder))
			unlinkat(uids, de->d_name, 0);
	}
}

int ov_instance_remove(const struct ov_settings *s, const char *id, ov_error *err)
{
	cleanup_close int run = ov_run_dir_open(s->run_dir, false, err);

	if (run < 0)
		return -1;
	return ov_instance_remove_at(run, id, err);
}

bool ov_instance_exists(int run, const char *id)
{
	char path[OV_INSTANCE_PATH_MAX];
	ov_error ignored = {0};
	struct stat st;

	return ov_instance_path(run, id, false, path, sizeof(path), &ignored) == 0 &&
	       fstatat(run, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

unsigned ov_instance_each(const struct ov_settings *s, bool (*valid)(const char *),
			  int (*fn)(const struct ov_settings *, const char *, const char *))
{
	cleanup_close int run = -1;
	cleanup_instance_iter struct ov_instance_iter it = {0};
	ov_error err = {0};
	char boot_id[64];
	const char *slot;
	unsigned n = 0;

	run = ov_run_dir_open(s->run_dir, false, &err);
	if (run < 0 || ov_proc_boot_id(boot_id, sizeof(boot_id), &err) < 0)
		return 0;
	while ((slot = ov_instance_next(run, &it)))
		if (valid(slot) && fn(s, slot, boot_id) > 0)
			n++;
	return n;
}

const char *ov_instance_next_record(int run, struct ov_instance_iter *it, struct ov_record *rec)
{
	const char *slot;

	while ((slot = ov_instance_next(run, it))) {
		cleanup_close int cdir = -1;
		ov_error ignored = {0};
		char path[OV_INSTANCE_PATH_MAX];

		if (ov_instance_path(run, slot, false, path, sizeof(path), &ignored) < 0)
			continue;
		cdir = ov_open_dir_at(run, path);
		if (cdir >= 0 && ov_record_read(cdir, rec, &ignored) == 0)
			return slot;
	}
	return NULL;
}

bool ov_instance_cgroup_recorded(int run, const char *name)
{
	cleanup_instance_iter struct ov_instance_iter it = {0};
	struct ov_record rec;
	bool found = false;

	while (!found && ov_instance_next_record(run, &it, &rec)) {
		found = strcmp(rec.cgroup, name) == 0;
		ov_record_free(&rec);
	}
	return found;
}
