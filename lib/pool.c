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
#include "pool_internal.h"

void ov_pool_entry_wipe(struct ov_pool_entry *e)
{
	ov_key_wipe(&e->master);
	ov_vtpm_keys_wipe(&e->keys);
}

int ov_pool_path(const struct ov_settings *s, char *buf, size_t size, ov_error *err)
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
int ov_pool_kind_prefix(const struct ov_settings *s, const struct ov_key *master, char *buf,
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
bool ov_pool_entry_name_ok(const char *n)
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

void ov_pool_uncopy(int to, const struct ov_pool_copied *c)
{
	for (unsigned i = 0; i < c->n; i++)
		unlinkat(to, c->names[i], 0);
}

/* Copy the state files of from into to (new files, 0600, uid:gid), with
 * fsync when durable. */
int ov_pool_copy_files(int from, int to, uid_t uid, gid_t gid, bool durable,
		       struct ov_pool_copied *c, ov_error *err)
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
		if (!ov_pool_entry_name_ok(de->d_name))
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
	struct ov_pool_copied copied = {.n = 0};
	ov_error ignored = {0};
	int ret = -1;

	if (cd < 0)
		ov_error_set(err, errno, "opening the claimed entry");
	else if (ov_meta_load(cd, got, &e->master, &e->meta, &e->keys, err) == 0) {
		if (e->meta.version != OV_TPM_2_0 || e->meta.count != 1)
			ov_error_set(err, 0, "not one TPM 2.0 state");
		else
			ret = ov_pool_copy_files(cd, dstdir, uid, gid, false, &copied, err);
	}
	if (ret == 0) {
		close(take_fd(&cd));
		if (ov_remove_tree_at(claims, cname, err) < 0)
			ov_warn("pool: removing the claimed entry %s: %s", got, err->msg);
		ov_debug("pool: took entry %s", got);
		return 0;
	}
	ov_error_wrap(err, "pool entry %s (discarded)", got);
	ov_pool_uncopy(dstdir, &copied);
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
	char path[4200], prefix[80], flat[OV_INSTANCE_PATH_MAX], cname[OV_INSTANCE_PATH_MAX + 16];
	unsigned n, others;
	ov_error ignored = {0}, kerr = {0};
	int got;

	memset(e, 0, sizeof(*e));
	if (!ov_instance_slot_valid(id))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", id);
	if (!ov_tpm_state_fresh(dstdir))
		return ov_error_set(err, EEXIST, "the state directory already holds a TPM");
	/* Entries are wrapped and certified: no key or no CA, no pool. */
	if (ov_master_key_current(s, &e->master, &kerr) < 0)
		return ov_error_code(err, ENOKEY, "%s", kerr.msg);
	if (ov_pool_kind_prefix(s, &e->master, prefix, sizeof(prefix), &kerr) < 0) {
		ov_key_wipe(&e->master);
		return ov_error_code(err, ENOKEY, "%s", kerr.msg);
	}
	if (ov_pool_path(s, path, sizeof(path), err) < 0)
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
	ov_instance_flat(id, flat, sizeof(flat));
	snprintf(cname, sizeof(cname), "%s.%u", flat, idx);
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
		st->have_ca =
		    ov_pool_kind_prefix(s, &master, st->kind, sizeof(st->kind), &ignored) == 0;
	if (!st->have_ca)
		st->kind[0] = '\0';
	if (ov_pool_path(s, path, sizeof(path), err) < 0)
		return -1;
	pool = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pool < 0)
		return errno == ENOENT ? 0 : ov_error_set(err, errno, "opening %s", path);
	d = ov_opendir_at(pool, ".");
	if (!d)
		return ov_error_set(err, errno, "listing %s", path);
	while ((de = readdir(d))) {
		if (!ov_pool_entry_name_ok(de->d_name))
			continue;
		if (st->kind[0] && strncmp(de->d_name, st->kind, strlen(st->kind)) == 0)
			st->ready++;
		else
			st->stale++;
	}
	st->claims = count_dir(pool, CLAIMS_DIR);
	return 0;
}
