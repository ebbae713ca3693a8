/* SPDX-License-Identifier: Apache-2.0 */
/* The provisioning pool; see include/oci-vtpm/pool.h for the layout. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pwd.h>
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

#define POOL_DIR   "pool"
#define NEW_DIR	   ".new"
#define CLAIMS_DIR ".claims"
#define WORK_DIR   "@pool" /* in run_dir; not a valid container id */
#define META	   "meta.json"
#define ID_HEX	   16
#define CANDIDATES 64
#define FILE_MAX   (16u << 20)
#define FILES_MAX  16

void ov_pool_entry_wipe(struct ov_pool_entry *e)
{
	ov_key_wipe(&e->master);
	ov_vtpm_keys_wipe(&e->keys);
}

static int pool_path(const struct ov_settings *s, char *buf, size_t size, ov_error *err)
{
	if (snprintf(buf, size, "%s/" POOL_DIR, s->state_dir) >= (int)size)
		return ov_error_set(err, ENAMETOOLONG, "state_dir");
	return 0;
}

/* The host CA's id: the first 16 hex digits of the SHA-256 of ca_cert. */
static int ca_id(const struct ov_settings *s, char out[ID_HEX + 1], ov_error *err)
{
	cleanup_free char *buf = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	size_t len;

	if (ov_read_file_at(AT_FDCWD, s->ca_cert, 1u << 20, &buf, &len, err) < 0)
		return ov_error_wrap(err, "host CA certificate");
	if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < ID_HEX / 2)
		return ov_error_set(err, 0, "hashing the host CA certificate");
	ov_hex(md, ID_HEX / 2, out);
	return 0;
}

/* "ek2-<master key id>-<CA id>": what entries for this host are called. */
static int kind_prefix(const struct ov_settings *s, const struct ov_key *master, char *buf,
		       size_t size, ov_error *err)
{
	char kid[OV_KEY_ID_LEN + 1], cid[ID_HEX + 1];

	if (ca_id(s, cid, err) < 0)
		return -1;
	ov_key_id(master, kid);
	snprintf(buf, size, OV_POOL_KIND_EK2 "-%s-%s", kid, cid);
	return 0;
}

static bool is_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* ek2-<16 hex>-<16 hex>-<16 hex> */
static bool entry_name_ok(const char *n)
{
	size_t k = sizeof(OV_POOL_KIND_EK2) - 1;

	if (strlen(n) != k + 3 * (ID_HEX + 1) || strncmp(n, OV_POOL_KIND_EK2 "-", k + 1) != 0)
		return false;
	for (int i = 0; i < 3; i++) {
		const char *p = n + k + 1 + (size_t)i * (ID_HEX + 1);

		if (!is_hex(p, ID_HEX) || (i < 2 && p[ID_HEX] != '-'))
			return false;
	}
	return true;
}

/* A state file swtpm writes: no path, nothing hidden, not our metadata. */
static bool state_file_ok(const char *n)
{
	return ov_archive_state_file_ok(n) && strcmp(n, META) != 0;
}

struct copied {
	char names[FILES_MAX][65];
	unsigned n;
};

static void uncopy(int to, const struct copied *c)
{
	for (unsigned i = 0; i < c->n; i++)
		unlinkat(to, c->names[i], 0);
}

/* Copy the state files of from into to (new files, 0600, uid:gid), with
 * fsync when durable. */
static int copy_files(int from, int to, uid_t uid, gid_t gid, bool durable, struct copied *c,
		      ov_error *err)
{
	cleanup_dir DIR *d = ov_opendir_at(from, ".");
	struct dirent *de;

	c->n = 0;
	if (!d)
		return ov_error_set(err, errno, "reading the state");
	while ((de = readdir(d))) {
		cleanup_free char *buf = NULL;
		cleanup_close int fd = -1;
		struct stat st;
		size_t len;

		if (!state_file_ok(de->d_name))
			continue;
		if (fstatat(from, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return ov_error_set(err, errno, "%s", de->d_name);
		if (!S_ISREG(st.st_mode))
			continue;
		if (c->n == FILES_MAX)
			return ov_error_set(err, EFBIG, "too many state files");
		if (ov_read_file_at(from, de->d_name, FILE_MAX, &buf, &len, err) < 0)
			return -1;
		fd = openat(to, de->d_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd < 0)
			return ov_error_set(err, errno, "creating %s", de->d_name);
		snprintf(c->names[c->n++], sizeof(c->names[0]), "%.64s", de->d_name);
		if (ov_write_all(fd, buf, len) < 0 || fchown(fd, uid, gid) < 0 ||
		    (durable && fsync(fd) < 0))
			return ov_error_set(err, errno, "writing %s", de->d_name);
		explicit_bzero(buf, len);
	}
	if (c->n == 0)
		return ov_error_set(err, ENOENT, "no TPM state");
	if (durable && fsync(to) < 0)
		return ov_error_set(err, errno, "syncing the state");
	return 0;
}

/* ------------------------------------------------------------------ claim */

/* The names of up to CANDIDATES entries of this host's kind (prefix) in
 * the pool (d may be NULL: none); *others: entries of another kind. */
static unsigned list_candidates(DIR *d, const char *prefix, char (*names)[80], unsigned *others)
{
	struct dirent *de;
	unsigned n = 0;

	*others = 0;
	while (d && (de = readdir(d)) && n < CANDIDATES) {
		if (!entry_name_ok(de->d_name))
			continue;
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			snprintf(names[n++], sizeof(names[0]), "%.79s", de->d_name);
		else
			(*others)++;
	}
	return n;
}

/* Rename one of the n candidates to claims/cname; concurrent starts begin
 * at different entries. Returns its index, or -1 (ENOENT: other starts
 * took them all). */
static int claim_one(int pool, int claims, const char *cname, char (*names)[80], unsigned n,
		     ov_error *err)
{
	unsigned start = 0;

	if (ov_random(&start, sizeof(start), err) < 0)
		return -1;
	for (unsigned k = 0; k < n; k++) {
		unsigned i = (start + k) % n;

		if (renameat2(pool, names[i], claims, cname, RENAME_NOREPLACE) == 0)
			return (int)i;
		if (errno != ENOENT) /* ENOENT: another start took it */
			return ov_error_set(err, errno, "claiming a pool entry");
	}
	return ov_error_code(err, ENOENT, "the pool is empty (concurrent starts took every entry)");
}

/* The claimed entry claims/cname (named got): its keys unwrapped with
 * e->master, its state copied into dstdir. On failure the claim is
 * discarded (it may be half copied) and dstdir left empty again. */
static int take_claimed(int claims, const char *cname, const char *got, int dstdir, uid_t uid,
			gid_t gid, struct ov_pool_entry *e, ov_error *err)
{
	cleanup_close int cd = ov_open_dir_at(claims, cname);
	struct copied copied = {.n = 0};
	ov_error ignored = {0};
	int ret = -1;

	if (cd < 0)
		ov_error_set(err, errno, "opening the claimed entry");
	else if (ov_meta_load(cd, got, &e->master, &e->meta, &e->keys, err) == 0) {
		if (e->meta.version != OV_TPM_2_0 || e->meta.count != 1)
			ov_error_set(err, 0, "not one TPM 2.0 state");
		else
			ret = copy_files(cd, dstdir, uid, gid, false, &copied, err);
	}
	if (ret == 0) {
		close(take_fd(&cd));
		if (ov_remove_tree_at(claims, cname, err) < 0)
			ov_warn("pool: removing the claimed entry %s: %s", got, err->msg);
		ov_debug("pool: took entry %s", got);
		return 0;
	}
	ov_error_wrap(err, "pool entry %s (discarded)", got);
	uncopy(dstdir, &copied);
	ov_remove_tree_at(claims, cname, &ignored);
	return -1;
}

/* Open (making it) the pool's claims directory. */
static int open_claims(int pool, const char *path, ov_error *err)
{
	int claims;

	if (mkdirat(pool, CLAIMS_DIR, 0700) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating %s/" CLAIMS_DIR, path);
	claims = ov_open_dir_at(pool, CLAIMS_DIR);
	if (claims < 0)
		return ov_error_set(err, errno, "opening %s/" CLAIMS_DIR, path);
	return claims;
}

int ov_pool_claim(const struct ov_settings *s, const char *id, unsigned idx, int dstdir, uid_t uid,
		  gid_t gid, struct ov_pool_entry *e, ov_error *err)
{
	cleanup_close int pool = -1, claims = -1;
	cleanup_dir DIR *d = NULL;
	cleanup_free char(*names)[80] = NULL;
	char path[4200], prefix[80], cname[OV_ID_MAX + 16];
	unsigned n, others;
	ov_error ignored = {0}, kerr = {0};
	int got;

	memset(e, 0, sizeof(*e));
	if (!ov_container_id_valid(id))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", id);
	if (!ov_tpm_state_fresh(dstdir))
		return ov_error_set(err, EEXIST, "the state directory already holds a TPM");
	/* Entries are wrapped and certified: no key or no CA, no pool. */
	if (ov_master_key_current(s, &e->master, &kerr) < 0)
		return ov_error_code(err, ENOKEY, "%s", kerr.msg);
	if (kind_prefix(s, &e->master, prefix, sizeof(prefix), &kerr) < 0) {
		ov_key_wipe(&e->master);
		return ov_error_code(err, ENOKEY, "%s", kerr.msg);
	}
	if (pool_path(s, path, sizeof(path), err) < 0)
		goto fail;
	pool = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pool < 0 && errno != ENOENT) {
		ov_error_set(err, errno, "opening %s", path);
		goto fail;
	}
	d = pool >= 0 ? ov_opendir_at(pool, ".") : NULL;
	names = calloc(CANDIDATES, sizeof(*names));
	if (!names) {
		ov_error_set(err, ENOMEM, "pool");
		goto fail;
	}
	n = list_candidates(d, prefix, names, &others);
	if (n == 0 && others)
		ov_error_code(err, ENOENT,
			      "the pool has no entry for this master key and host CA (%u stale; "
			      "`oci-vtpm pool fill` replaces them)",
			      others);
	else if (n == 0)
		ov_error_code(err, ENOENT, "the pool is empty");
	if (n == 0 || (claims = open_claims(pool, path, err)) < 0)
		goto fail;
	/* Ours alone (the container's run directory is locked): a leftover of
	 * a start that died is in the way. */
	snprintf(cname, sizeof(cname), "%s.%u", id, idx);
	ov_remove_tree_at(claims, cname, &ignored);
	got = claim_one(pool, claims, cname, names, n, err);
	if (got < 0 || take_claimed(claims, cname, names[got], dstdir, uid, gid, e, err) < 0)
		goto fail;
	return 0;
fail:
	ov_pool_entry_wipe(e);
	return -1;
}

/* ----------------------------------------------------------------- status */

static unsigned count_dir(int dirfd, const char *name)
{
	cleanup_dir DIR *d = ov_opendir_at(dirfd, name);
	struct dirent *de;
	unsigned n = 0;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	return n;
}

int ov_pool_status(const struct ov_settings *s, struct ov_pool_status *st, ov_error *err)
{
	cleanup_key struct ov_key master = {0};
	cleanup_close int pool = -1;
	cleanup_dir DIR *d = NULL;
	char path[4200];
	struct dirent *de;
	ov_error ignored = {0};

	memset(st, 0, sizeof(*st));
	st->have_key = ov_master_key_current(s, &master, &ignored) == 0;
	if (st->have_key)
		st->have_ca = kind_prefix(s, &master, st->kind, sizeof(st->kind), &ignored) == 0;
	if (!st->have_ca)
		st->kind[0] = '\0';
	if (pool_path(s, path, sizeof(path), err) < 0)
		return -1;
	pool = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pool < 0)
		return errno == ENOENT ? 0 : ov_error_set(err, errno, "opening %s", path);
	d = ov_opendir_at(pool, ".");
	if (!d)
		return ov_error_set(err, errno, "listing %s", path);
	while ((de = readdir(d))) {
		if (!entry_name_ok(de->d_name))
			continue;
		if (st->kind[0] && strncmp(de->d_name, st->kind, strlen(st->kind)) == 0)
			st->ready++;
		else
			st->stale++;
	}
	st->claims = count_dir(pool, CLAIMS_DIR);
	return 0;
}

/* ------------------------------------------------------------ fill, drain */

/* Open (making it) and lock the pool: one fill or drain at a time. */
static int pool_lock(const struct ov_settings *s, ov_error *err)
{
	cleanup_close int fd = -1;
	char path[4200];

	if (pool_path(s, path, sizeof(path), err) < 0)
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
		char id[OV_ID_MAX + 1], *dot;
		cleanup_close int cfd = -1;
		ov_error ignored = {0};

		if (de->d_name[0] == '.' || strlen(de->d_name) > OV_ID_MAX)
			continue;
		snprintf(id, sizeof(id), "%s", de->d_name);
		dot = strrchr(id, '.');
		if (dot)
			*dot = '\0';
		if (run >= 0 && ov_container_id_valid(id)) {
			cfd = ov_open_dir_at(run, id);
			if (cfd >= 0 && flock(cfd, LOCK_EX | LOCK_NB) < 0)
				continue; /* that start is still under way */
		}
		if (ov_remove_tree_at(dirfd(d), de->d_name, &ignored) == 0)
			n++;
	}
	return n;
}

/* Work directories of fills that died: <run_dir>/@pool/<pid>.XXXXXX. */
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
	struct copied copied;
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
	if (copy_files(sfd, efd, 0, 0, true, &copied, err) < 0 ||
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

		if (!entry_name_ok(de->d_name) ||
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
		if (entry_name_ok(de->d_name) && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
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
	if (kind_prefix(s, &master, prefix, sizeof(prefix), err) < 0)
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
