/* SPDX-License-Identifier: Apache-2.0 */
/* Filling and draining the provisioning pool (pool.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/manufacture.h"
#include "oci-vtpm/pool.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/util.h"
#include "pool_internal.h"

/* Open (making it) and lock the pool: one fill or drain at a time. */
static int pool_lock(const struct ov_settings *s, ov_error *err)
{
	cleanup_close int fd = -1;
	char path[4200];

	if (ov_pool_path(s, path, sizeof(path), err) < 0)
		return -1;
	fd = ov_mkdir_p(path, 0700, err);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "locking %s", path);
	return take_fd(&fd);
}

/* Claims whose start is over: the container's run directory is gone or no
 * longer locked (a start holds that lock for as long as it claims). */
static unsigned sweep_claims(const struct ov_settings *s, int pool)
{
	cleanup_dir DIR *d = ov_opendir_at(pool, CLAIMS_DIR);
	cleanup_close int run = open(s->run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	unsigned n = 0;

	while (d && (de = readdir(d))) {
		char id[OV_INSTANCE_PATH_MAX], path[OV_INSTANCE_PATH_MAX], *dot;
		cleanup_close int cfd = -1;
		ov_error ignored = {0};

		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(id))
			continue;
		snprintf(id, sizeof(id), "%s", de->d_name);
		dot = strrchr(id, '.');
		if (dot)
			*dot = '\0';
		ov_instance_unflat(id);
		if (run >= 0 &&
		    ov_instance_path(run, id, false, path, sizeof(path), &ignored) == 0) {
			cfd = ov_open_dir_at(run, path);
			if (cfd >= 0 && flock(cfd, LOCK_EX | LOCK_NB) < 0)
				continue; /* that start is still under way */
		}
		if (ov_remove_tree_at(dirfd(d), de->d_name, &ignored) == 0)
			n++;
	}
	return n;
}

/* Work directories of fills that died: <run_dir>/pool/<pid>.XXXXXX. */
static void sweep_work(int work)
{
	cleanup_dir DIR *d = ov_opendir_at(work, ".");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		ov_error ignored = {0};
		int pid = atoi(de->d_name);

		if (de->d_name[0] == '.' || pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		ov_remove_tree_at(dirfd(d), de->d_name, &ignored);
	}
}

/* Manufacture one entry in the work directory wpath (fd wdir), make it
 * durable in .new, then move it into the pool. */
static int make_entry(const struct ov_settings *s, int pool, int newdir, int wdir,
		      const char *wpath, const char *prefix, const struct ov_key *master, uid_t uid,
		      gid_t gid, ov_error *err)
{
	cleanup_close int sfd = -1, efd = -1;
	uint8_t rnd[ID_HEX / 2];
	char name[128], hex[ID_HEX + 1], state[4300];
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	struct ov_pool_copied copied;
	ov_error ignored = {0};
	int ret = -1;

	if (ov_random(rnd, sizeof(rnd), err) < 0)
		return -1;
	ov_hex(rnd, sizeof(rnd), hex);
	snprintf(name, sizeof(name), "%s-%s", prefix, hex);
	if (snprintf(state, sizeof(state), "%s/state", wpath) >= (int)sizeof(state))
		return ov_error_set(err, ENAMETOOLONG, "work directory");
	ov_remove_tree_at(wdir, "state", &ignored);
	if (mkdirat(wdir, "state", 0700) < 0)
		return ov_error_set(err, errno, "creating %s", state);
	sfd = ov_open_dir_at(wdir, "state");
	if (sfd < 0 || fchown(sfd, uid, gid) < 0)
		return ov_error_set(err, errno, "%s", state);
	if (ov_meta_new(name, master, &m, &keys, err) < 0)
		return -1;
	m.version = OV_TPM_2_0;
	m.count = 1;
	if (ov_manufacture(s, OV_TPM_2_0, state, &keys.state, true, uid, gid, err) < 0)
		goto out;
	if (mkdirat(newdir, name, 0700) < 0) {
		ov_error_set(err, errno, "creating %s", name);
		goto out;
	}
	efd = ov_open_dir_at(newdir, name);
	if (efd < 0) {
		ov_error_set(err, errno, "opening %s", name);
		goto out;
	}
	/* Durable before it is visible: a crash never leaves a torn entry. */
	if (ov_pool_copy_files(sfd, efd, 0, 0, true, &copied, err) < 0 ||
	    ov_meta_write(efd, &m, &keys, err) < 0)
		goto out;
	if (renameat(newdir, name, pool, name) < 0) {
		ov_error_set(err, errno, "moving %s into the pool", name);
		goto out;
	}
	if (fsync(pool) < 0) {
		ov_error_set(err, errno, "syncing the pool");
		goto out;
	}
	ret = 0;
out:
	if (ret < 0)
		ov_remove_tree_at(newdir, name, &ignored);
	ov_remove_tree_at(wdir, "state", &ignored);
	ov_vtpm_keys_wipe(&keys);
	return ret;
}

/* Remove entries: stale ones (another master key or CA), or all. */
static unsigned remove_entries(int pool, const char *keep_prefix)
{
	cleanup_dir DIR *d = ov_opendir_at(pool, ".");
	struct dirent *de;
	unsigned n = 0;

	while (d && (de = readdir(d))) {
		ov_error ignored = {0};

		if (!ov_pool_entry_name_ok(de->d_name) ||
		    (keep_prefix && strncmp(de->d_name, keep_prefix, strlen(keep_prefix)) == 0))
			continue;
		if (ov_remove_tree_at(pool, de->d_name, &ignored) == 0)
			n++;
	}
	return n;
}

static unsigned count_ready(int pool, const char *prefix)
{
	cleanup_dir DIR *d = ov_opendir_at(pool, ".");
	struct dirent *de;
	unsigned n = 0;

	while (d && (de = readdir(d)))
		if (ov_pool_entry_name_ok(de->d_name) &&
		    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

/* A private directory for one fill's swtpm under <run_dir>/WORK_DIR (its
 * fd; its path in wpath, "" when none was made). WORK_DIR is shared with
 * the fills of other state_dirs on this run_dir, which remove it when
 * they leave it empty: made again if that happens. */
static int make_work_dir(const struct ov_settings *s, int run, int *work, char *wpath, size_t size,
			 ov_error *err)
{
	int wdir;

	wpath[0] = '\0';
	for (int attempt = 0;; attempt++) {
		if (mkdirat(run, WORK_DIR, 0711) < 0 && errno != EEXIST)
			return ov_error_set(err, errno, "creating %s/" WORK_DIR, s->run_dir);
		if (*work < 0)
			*work = ov_open_dir_at(run, WORK_DIR);
		if (*work < 0)
			return ov_error_set(err, errno, "opening %s/" WORK_DIR, s->run_dir);
		if (attempt == 0)
			sweep_work(*work);
		if (snprintf(wpath, size, "%s/" WORK_DIR "/%d.XXXXXX", s->run_dir, (int)getpid()) >=
		    (int)size) {
			wpath[0] = '\0';
			return ov_error_set(err, ENAMETOOLONG, "run_dir");
		}
		if (mkdtemp(wpath))
			break;
		if (errno != ENOENT || attempt == 3) {
			ov_error_set(err, errno, "creating %s", wpath);
			wpath[0] = '\0';
			return -1;
		}
		close(*work);
		*work = -1;
	}
	wdir = open(wpath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (wdir < 0 || fchmod(wdir, 0711) < 0) {
		ov_error_set(err, errno, "opening %s", wpath);
		if (wdir >= 0)
			close(wdir);
		return -1;
	}
	return wdir;
}

int ov_pool_fill(const struct ov_settings *s, unsigned target, unsigned *made, unsigned *removed,
		 ov_error *err)
{
	cleanup_key struct ov_key master = {0};
	cleanup_close int pool = -1, newdir = -1, run = -1, work = -1, wdir = -1;
	char prefix[80], wpath[4300];
	unsigned ready, n_made = 0, n_removed = 0;
	ov_error ignored = {0};
	struct ov_user u;
	int ret = -1;

	if (made)
		*made = 0;
	if (removed)
		*removed = 0;
	if (ov_util_user(s->swtpm_user, &u, err) < 0)
		return -1;
	if (ov_master_key_current(s, &master, err) < 0)
		return ov_error_wrap(err, "pool fill");
	if (ov_pool_kind_prefix(s, &master, prefix, sizeof(prefix), err) < 0)
		return ov_error_wrap(err, "pool fill (create the host CA with `oci-vtpm init`)");
	pool = pool_lock(s, err);
	if (pool < 0)
		return -1;
	/* What an interrupted fill, a crashed start or a new key or CA left. */
	ov_remove_tree_at(pool, NEW_DIR, &ignored);
	n_removed = remove_entries(pool, prefix) + sweep_claims(s, pool);
	ready = count_ready(pool, prefix);
	if (ready >= target) {
		ret = 0;
		goto out;
	}
	if (mkdirat(pool, NEW_DIR, 0700) < 0) {
		ov_error_set(err, errno, "creating the pool's " NEW_DIR);
		goto out;
	}
	newdir = ov_open_dir_at(pool, NEW_DIR);
	if (newdir < 0) {
		ov_error_set(err, errno, "opening the pool's " NEW_DIR);
		goto out;
	}
	/* swtpm runs as swtpm_user and reaches its state by path: it works
	 * under run_dir (0711), like a container's vTPM, not in the pool. */
	run = ov_run_dir_open(s->run_dir, true, err);
	if (run < 0)
		goto out;
	wdir = make_work_dir(s, run, &work, wpath, sizeof(wpath), err);
	if (wdir < 0) {
		if (wpath[0])
			goto cleanup_work;
		goto out;
	}
	while (ready + n_made < target) {
		if (make_entry(s, pool, newdir, wdir, wpath, prefix, &master, u.uid, u.gid, err) <
		    0) {
			ov_error_wrap(err, "pool entry %u of %u", ready + n_made + 1, target);
			goto cleanup_work;
		}
		n_made++;
	}
	ret = 0;
cleanup_work:
	ov_remove_tree_at(work, strrchr(wpath, '/') + 1, &ignored);
	unlinkat(run, WORK_DIR, AT_REMOVEDIR); /* unless another fill works there */
out:
	if (newdir >= 0)
		unlinkat(pool, NEW_DIR, AT_REMOVEDIR);
	if (made)
		*made = n_made;
	if (removed)
		*removed = n_removed;
	return ret;
}

int ov_pool_drain(const struct ov_settings *s, unsigned *removed, ov_error *err)
{
	cleanup_close int pool = pool_lock(s, err);
	ov_error ignored = {0};

	if (removed)
		*removed = 0;
	if (pool < 0)
		return -1;
	ov_remove_tree_at(pool, NEW_DIR, &ignored);
	sweep_claims(s, pool);
	if (removed)
		*removed = remove_entries(pool, NULL);
	else
		remove_entries(pool, NULL);
	return 0;
}
