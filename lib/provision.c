/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/launch.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/manufacture.h"
#include "oci-vtpm/pool.h"
#include "oci-vtpm/provision.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/swtpm_blob.h"

void ov_provision_wipe(struct ov_provision *p)
{
	explicit_bzero(p->keys, sizeof(p->keys));
}

/* ------------------------------------------------------------------ pool */

/* Is this request one the pool serves (EK-certified TPM 2.0s)? */
static bool pool_serves(const struct ov_request *r)
{
	return r->ek_cert && r->version == OV_TPM_2_0;
}

/* Why a TPM was not taken from the pool. Without a master key or CA the
 * pool cannot serve (quietly); an empty pool is worth an info line. */
static void pool_fallback(unsigned idx, const ov_error *perr)
{
	if (perr->code == ENOKEY)
		ov_debug("vTPM %u: not from the pool: %s", idx, perr->msg);
	else if (perr->code == ENOENT)
		ov_info("vTPM %u: %s; manufacturing it inline", idx, perr->msg);
	else
		ov_warn("vTPM %u: %s; manufacturing it inline", idx, perr->msg);
}

/* A new named vTPM: its TPM 0 from the pool. The entry's data key becomes
 * the vTPM's (same salt and data key, so the same state key; rewrapped for
 * the name); further TPMs are manufactured inline with that state key.
 * Returns 1 when taken, 0 when not (m, keys untouched), -1 on error. */
static int pool_named(const struct ov_settings *s, const struct ov_request *r, const char *id,
		      const struct ov_user *u, int statefd, const struct ov_key *master,
		      struct ov_meta *m, struct ov_vtpm_keys *keys, double *ms, ov_error *err)
{
	struct ov_pool_entry e;
	double t0 = ov_util_mono_ms();
	ov_error perr = {0};
	int ret;

	if (!pool_serves(r))
		return 0;
	if (ov_pool_claim(s, id, 0, statefd, u->uid, u->gid, &e, &perr) < 0) {
		pool_fallback(0, &perr);
		*ms += ov_util_mono_ms() - t0;
		return 0;
	}
	ret = ov_meta_rename(&e.meta, &e.master, r->name, master, m, keys, err);
	if (ret == 0)
		ov_info("vTPM %s is new: TPM 0 from the pool (entry %s)", r->name, e.meta.name);
	ov_pool_entry_wipe(&e);
	*ms += ov_util_mono_ms() - t0;
	return ret < 0 ? -1 : 1;
}

/* An ephemeral request: each TPM from the pool with its own state key,
 * while it has entries; the others keep theirs. */
static void pool_ephemeral(const struct ov_settings *s, const struct ov_request *r, const char *id,
			   const struct ov_user *u, const int *statefds, struct ov_provision *p)
{
	double t0 = ov_util_mono_ms();

	if (!pool_serves(r))
		return;
	for (unsigned i = 0; i < r->count; i++) {
		struct ov_pool_entry e;
		ov_error perr = {0};

		if (ov_pool_claim(s, id, i, statefds[i], u->uid, u->gid, &e, &perr) < 0) {
			pool_fallback(i, &perr);
			if (perr.code == ENOENT || perr.code == ENOKEY)
				break; /* no more to be had */
			continue;
		}
		p->keys[i] = e.keys.state;
		ov_info("vTPM %u from the pool (entry %s)", i, e.meta.name);
		ov_pool_entry_wipe(&e);
	}
	p->pool_ms += ov_util_mono_ms() - t0;
}

/* ------------------------------------------------------- restore, archive */

/* A first start: the vTPM's keys, from the pool's entry or new, written. */
static int new_named(const struct ov_settings *s, int vdir, const char *id,
		     const struct ov_request *r, const struct ov_user *u, const int *statefds,
		     struct ov_meta *m, struct ov_vtpm_keys *keys, struct ov_provision *p,
		     ov_error *err)
{
	cleanup_key struct ov_key master = {0};
	int pooled;

	if (ov_master_key_current(s, &master, err) < 0)
		return -1;
	/* A warm vTPM's state (no statefds) is the new TPM, certified or not. */
	pooled =
	    statefds ? pool_named(s, r, id, u, statefds[0], &master, m, keys, &p->pool_ms, err) : 0;
	if (pooled < 0 || (!pooled && ov_meta_new(r->name, &master, m, keys, err) < 0))
		return -1;
	m->version = r->version;
	m->count = r->count;
	if (ov_meta_write(vdir, m, keys, err) < 0) {
		ov_vtpm_keys_wipe(keys);
		return -1;
	}
	return 0;
}

/* A running warm swtpm to hand a named vTPM's state to (lib/warm.c). */
struct warm_target {
	int cdir;
	const struct ov_settings *s;
	struct ov_record *rec;
};

/* A state file of the archive, decrypted: one blob for the swtpm. */
struct blobs {
	const struct ov_key *key;
	struct ov_launch_blob b[4];
	unsigned n;
};

static int blob_type(const char *name, uint32_t *type)
{
	const char *dot = strrchr(name, '.');

	if (dot && strcmp(dot, ".permall") == 0)
		*type = OV_SWTPM_BLOB_PERMANENT;
	else if (dot && strcmp(dot, ".volatilestate") == 0)
		*type = OV_SWTPM_BLOB_VOLATILE;
	else if (dot && strcmp(dot, ".savestate") == 0)
		*type = OV_SWTPM_BLOB_SAVESTATE;
	else
		return -1;
	return 0;
}

static int decrypt_one(unsigned tpm, const char *name, const void *data, size_t len, void *arg,
		       ov_error *err)
{
	struct blobs *c = arg;
	struct ov_launch_blob *b = &c->b[c->n];

	if (tpm != 0 || c->n >= sizeof(c->b) / sizeof(c->b[0]) || blob_type(name, &b->type) < 0)
		return ov_error_set(err, 0, "archive: %s is no state file a warm swtpm takes",
				    name);
	if (ov_swtpm_blob_decrypt(c->key, data, len, &b->plain, &b->len, err) < 0)
		return ov_error_wrap(err, "%s", name);
	c->n++;
	return 0;
}

static void blobs_free(struct blobs *c)
{
	for (unsigned i = 0; i < c->n; i++)
		ov_swtpm_blob_free(c->b[i].plain, c->b[i].len);
}

/* The newest generation, verified and decrypted here, handed to the
 * running swtpm of w (its own state key encrypts it from now on). */
static int hand_over(int vdir, const struct ov_request *r, const struct ov_meta *m,
		     const struct ov_vtpm_keys *keys, const struct warm_target *w, ov_error *err)
{
	__attribute__((cleanup(blobs_free))) struct blobs c = {.key = &keys->state};

	if (ov_archive_each(vdir, m, keys, m->newest, r->count, decrypt_one, &c, err) < 0)
		return -1;
	return ov_launch_hand_over(w->cdir, w->s, w->rec, c.b, c.n, err);
}

/* The newest generation of an archived vTPM into the state directories,
 * or into the running swtpm of w. */
static int restore_named(int vdir, const struct ov_request *r, const struct ov_user *u,
			 const int *statefds, const struct warm_target *w, struct ov_meta *m,
			 const struct ov_vtpm_keys *keys, ov_error *err)
{
	if (m->newest == 0)
		return 0;
	if (m->version != r->version || m->count > r->count)
		return ov_error_set(
		    err, 0, "vTPM %s was archived as %u TPM %s, the container asks for %u TPM %s",
		    r->name, m->count, ov_util_tpm_version(m->version), r->count,
		    ov_util_tpm_version(r->version));
	if (w ? hand_over(vdir, r, m, keys, w, err) < 0
	      : ov_archive_load(vdir, m, keys, m->newest, statefds, r->count, u->uid, u->gid, err) <
		    0)
		return -1;
	ov_info("vTPM %s restored from generation %llu%s", r->name, m->newest,
		w ? " into a warm swtpm" : "");
	return 0;
}

/* settings max_names: a name with no archive yet is one more name. On
 * success *lock holds the archive root locked (-1: no limit), so that no
 * other new name is counted in until this one's meta.json is written. */
static int names_limit(const struct ov_settings *s, const char *name, int *lock, ov_error *err)
{
	cleanup_close int root = -1;
	cleanup_dir DIR *d = NULL;
	struct dirent *de;
	unsigned n = 0;

	if (!s->max_names)
		return 0;
	root = ov_archive_root(s, false, err);
	if (root < 0)
		return -1;
	while (flock(root, LOCK_EX) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "locking the archived vTPMs");
	if (!(d = ov_opendir_at(root, ".")))
		return ov_error_set(err, errno, "counting the archived vTPMs");
	while ((de = readdir(d)))
		if (ov_name_valid(de->d_name) && strcmp(de->d_name, name) != 0) {
			char meta[300];

			snprintf(meta, sizeof(meta), "%s/meta.json", de->d_name);
			if (faccessat(root, meta, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
				n++;
		}
	if (n >= s->max_names)
		return ov_error_set(err, 0,
				    "vTPM %s would be a new name beyond the %u this host keeps "
				    "(settings \"max_names\")",
				    name, s->max_names);
	*lock = take_fd(&root);
	return 0;
}

/* Named vTPM at start: claim it, load or create its keys, restore the
 * newest generation into the state directories (or the swtpm of w). */
static int start_named(const struct ov_settings *s, int run, const char *id,
		       const struct ov_request *r, const struct ov_user *u, const int *statefds,
		       const struct warm_target *w, struct ov_provision *p, ov_error *err)
{
	cleanup_close int vdir = -1, names_lock = -1;
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	ov_error ignored = {0};
	bool fresh;
	int ret = -1;

	vdir = ov_archive_dir(s, r->name, true, err);
	if (vdir < 0)
		return -1;
	if (ov_instance_claim_name(run, r->name, id, err) < 0)
		return -1;
	fresh = faccessat(vdir, "meta.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0;
	if (fresh && names_limit(s, r->name, &names_lock, err) < 0)
		goto release;
	if (fresh ? new_named(s, vdir, id, r, u, statefds, &m, &keys, p, err) < 0
		  : ov_meta_load_keys(s, vdir, r->name, &m, &keys, err) < 0)
		goto release;
	ret = restore_named(vdir, r, u, statefds, w, &m, &keys, err);
	for (unsigned i = 0; p && i < r->count; i++)
		p->keys[i] = keys.state;
	ov_vtpm_keys_wipe(&keys);
release:
	if (ret < 0) {
		ov_instance_release_name(s, r->name, id);
		/* A first start that failed leaves no empty vTPM behind. */
		if (fresh) {
			cleanup_close int root = ov_archive_root(s, false, &ignored);

			unlinkat(vdir, "meta.json", 0);
			if (root >= 0)
				unlinkat(root, r->name, AT_REMOVEDIR);
		}
	}
	return ret;
}

int ov_provision_warm(const struct ov_settings *s, int run, const char *id,
		      const struct ov_request *r, int cdirfd, struct ov_record *rec, ov_error *err)
{
	struct warm_target w = {.cdir = cdirfd, .s = s, .rec = rec};
	struct ov_user u = {0}; /* no state directory is written */

	if (start_named(s, run, id, r, &u, NULL, &w, NULL, err) < 0)
		return -1;
	rec->name = r->name;
	rec->state_in_swtpm = true;
	if (ov_record_write(cdirfd, rec, err) < 0) {
		ov_instance_release_name(s, r->name, id);
		return -1;
	}
	return 0;
}

int ov_provision_take_back(const struct ov_settings *s, int cdirfd, const struct ov_record *rec,
			   uint8_t **plain, size_t *len, ov_error *err)
{
	return ov_launch_take_back(cdirfd, s, rec, plain, len, err);
}

int ov_provision_put_back(const struct ov_settings *s, int vdir, int cdirfd,
			  const struct ov_record *rec, const uint8_t *plain, size_t len,
			  ov_error *err)
{
	cleanup_close int sdir = -1;
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	uint8_t *file = NULL;
	size_t flen = 0;
	char dir[64];
	int ret;

	if (ov_meta_load_keys(s, vdir, rec->name, &m, &keys, err) < 0)
		return -1;
	ov_instance_state_name(0, dir, sizeof(dir));
	sdir = ov_open_dir_at(cdirfd, dir);
	ret = sdir < 0 ? ov_error_set(err, errno, "vTPM state directory")
		       : ov_swtpm_blob_encrypt(&keys.state, plain, len, &file, &flen, err);
	ov_vtpm_keys_wipe(&keys);
	if (ret == 0) {
		const char *name =
		    rec->version == OV_TPM_2_0 ? "tpm2-00.permall" : "tpm-00.permall";
		struct stat st;

		/* Owned like the directory, as swtpm (its user) writes it. */
		ret = ov_write_file_atomic(sdir, name, file, flen, 0600, err);
		if (ret == 0 && (fstat(sdir, &st) < 0 || fchownat(sdir, name, st.st_uid, st.st_gid,
								  AT_SYMLINK_NOFOLLOW) < 0))
			ret = ov_error_set(err, errno, "vTPM state %s", name);
	}
	free(file);
	return ret;
}

int ov_provision_archive(const struct ov_settings *s, int vdir, int cdirfd,
			 const struct ov_record *rec, ov_error *err)
{
	int fds[OV_MAX_TPMS];
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	int ret = -1;

	if (ov_meta_load_keys(s, vdir, rec->name, &m, &keys, err) < 0)
		return -1;
	if (ov_instance_state_dirs(cdirfd, rec->count, NULL, false, fds, err) == 0 &&
	    ov_archive_save(vdir, &m, &keys, fds, rec->count, rec->version, s->keep_generations,
			    err) == 0) {
		ov_info("vTPM %s archived as generation %llu", rec->name, m.newest);
		ret = 0;
	}
	ov_instance_close_fds(fds, rec->count);
	ov_vtpm_keys_wipe(&keys);
	return ret;
}

/* ------------------------------------------------------------ manufacture */

/* EK certificates: manufacture every TPM whose state is fresh (nothing was
 * restored into it, nothing came from the pool) before its swtpm starts. */
static int manufacture_fresh(const struct ov_settings *s, int run, const char *id,
			     const struct ov_request *r, const struct ov_user *u,
			     const int *statefds, const struct ov_provision *p, ov_error *err)
{
	char slot[OV_INSTANCE_PATH_MAX];

	if (ov_instance_path(run, id, false, slot, sizeof(slot), err) < 0)
		return -1;
	for (unsigned i = 0; i < r->count; i++) {
		char dir[4200 + OV_INSTANCE_PATH_MAX];

		if (!ov_tpm_state_fresh(statefds[i]))
			continue;
		if (snprintf(dir, sizeof(dir), "%s/%s/state-%u", s->run_dir, slot, i) >=
		    (int)sizeof(dir))
			return ov_error_set(err, ENAMETOOLONG, "state directory");
		if (ov_manufacture(s, r->version, dir, &p->keys[i], true, u->uid, u->gid, err) < 0)
			return ov_error_wrap(err, "vTPM %u", i);
	}
	return 0;
}

int ov_provision_start(const struct ov_settings *s, int run, const char *id,
		       const struct ov_request *r, const struct ov_user *u, const int *statefds,
		       struct ov_provision *p, ov_error *err)
{
	double t0 = ov_util_mono_ms(), t_keys;

	p->restore_ms = p->pool_ms = p->manufacture_ms = 0;
	if (r->name) {
		if (start_named(s, run, id, r, u, statefds, NULL, p, err) < 0)
			return -1;
	} else {
		if (ov_random(p->keys[0].b, sizeof(p->keys[0].b), err) < 0)
			return -1;
		for (unsigned i = 1; i < r->count; i++)
			p->keys[i] = p->keys[0];
		pool_ephemeral(s, r, id, u, statefds, p);
	}
	t_keys = ov_util_mono_ms();
	p->restore_ms = t_keys - t0 - p->pool_ms;
	if (r->ek_cert && manufacture_fresh(s, run, id, r, u, statefds, p, err) < 0) {
		ov_provision_undo(s, id, r);
		return -1;
	}
	p->manufacture_ms = ov_util_mono_ms() - t_keys;
	return 0;
}

void ov_provision_undo(const struct ov_settings *s, const char *id, const struct ov_request *r)
{
	if (r->name)
		ov_instance_release_name(s, r->name, id);
}
