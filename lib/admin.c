/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/admin.h"
#include "oci-vtpm/archive.h"
#include "oci-vtpm/ca.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/oci.h"

#define EXPORT_MAGIC	 "OVTPMEX1"
#define EXPORT_MAGIC_LEN 8

/* The host CA that signs EK certificates: made unless both files exist
 * (an operator's CA is used as it is). */
static int init_ca(const struct ov_settings *s, struct ov_admin_init *r, ov_error *err)
{
	struct ov_ca *ca;

	if (ov_ca_init(s->ca_key, s->ca_cert, &r->ca_created, err) < 0)
		return ov_error_wrap(err, "host CA");
	ca = ov_ca_load(s->ca_key, s->ca_cert, err);
	if (!ca)
		return ov_error_wrap(err, "host CA");
	ov_ca_describe(ca, r->ca_desc, sizeof(r->ca_desc));
	ov_ca_free(ca);
	r->have_ca = true;
	return 0;
}

int ov_admin_init(const struct ov_settings *s, struct ov_admin_init *r, ov_error *err)
{
	cleanup_key struct ov_key k = {0};
	struct stat st;
	int ret;

	*r = (struct ov_admin_init){0};
	if (ov_master_key_path(s, r->key_path, sizeof(r->key_path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "master key path");
	if (strcmp(r->key_path, s->master_key) != 0) {
		/* systemd hands us the key as a credential: use it, make nothing. */
		r->key_origin = OV_ADMIN_KEY_CREDENTIAL;
		ret = ov_master_key_load(r->key_path, &k, err);
	} else if (lstat(r->key_path, &st) == 0) {
		/* Never overwritten; a second init only adds what is missing. */
		r->key_origin = OV_ADMIN_KEY_KEPT;
		ret = ov_master_key_load(r->key_path, &k, err);
	} else {
		r->key_origin = OV_ADMIN_KEY_CREATED;
		ret = ov_master_key_create(r->key_path, &k, err);
	}
	if (ret < 0)
		return -1;
	ov_key_id(&k, r->key_id);
	r->have_key = true;
	return init_ca(s, r, err);
}

void ov_admin_vtpm_clear(struct ov_admin_vtpm *v)
{
	for (size_t i = 0; i < v->n_gens; i++)
		free(v->gens[i].error);
	free(v->gens);
	free(v->meta_error);
	free(v->verify_error);
	*v = (struct ov_admin_vtpm){0};
}

void ov_admin_vtpms_free(struct ov_admin_vtpm *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ov_admin_vtpm_clear(&v[i]);
	free(v);
}

static int cmp_gen(const void *a, const void *b)
{
	const struct ov_admin_gen *x = a, *y = b;

	return x->gen < y->gen ? -1 : x->gen > y->gen;
}

/* The generation files of a vTPM, oldest first, into v. */
static int list_gens(int vdir, struct ov_admin_vtpm *v, ov_error *err)
{
	cleanup_dir DIR *d = ov_opendir_at(vdir, ".");
	size_t cap = 0;
	struct dirent *de;

	if (!d)
		return ov_error_set(err, errno, "vTPM %s", v->name);
	while ((de = readdir(d))) {
		unsigned long long g;
		char name[64];
		struct stat st;

		if (sscanf(de->d_name, "gen-%llu.ovtpm", &g) != 1)
			continue;
		ov_archive_gen_name(g, name, sizeof(name));
		if (strcmp(name, de->d_name) != 0 ||
		    fstatat(vdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (v->n_gens == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			struct ov_admin_gen *n = reallocarray(v->gens, ncap, sizeof(*n));

			if (!n)
				return ov_error_set(err, ENOMEM, "vTPM %s", v->name);
			v->gens = n;
			cap = ncap;
		}
		v->gens[v->n_gens++] = (struct ov_admin_gen){g, st.st_size, st.st_mtime, -1, NULL};
		v->size += st.st_size;
	}
	if (v->n_gens)
		qsort(v->gens, v->n_gens, sizeof(*v->gens), cmp_gen);
	return 0;
}

/* What the archive says of one vTPM, without its key. */
static int describe(const struct ov_settings *s, int root, const char *name, bool wait,
		    struct ov_admin_vtpm *v, ov_error *err)
{
	cleanup_close int vdir = ov_open_dir_at(root, name);
	struct ov_meta m;
	ov_error merr = {0};

	*v = (struct ov_admin_vtpm){0};
	snprintf(v->name, sizeof(v->name), "%s", name);
	if (vdir < 0)
		return ov_error_set(err, errno, "vTPM %s", name);
	/* With wait (the caller holds no lock of it): a stop's worker
	 * (settings stop_async) holds the lock until its generation is
	 * written and the name free; show what it leaves. */
	while (wait && flock(vdir, LOCK_SH) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "locking vTPM %s", name);
	if (list_gens(vdir, v, err) < 0)
		return -1;
	if (ov_meta_load(vdir, name, NULL, &m, NULL, &merr) == 0) {
		v->newest = m.newest;
		v->version = m.version;
		v->count = m.count;
		snprintf(v->key_id, sizeof(v->key_id), "%s", m.key_id);
	} else if (!(v->meta_error = strdup(merr.msg))) {
		return ov_error_set(err, ENOMEM, "vTPM %s", name);
	}
	if (!ov_instance_name_holder(s, name, v->in_use_by, sizeof(v->in_use_by)))
		v->in_use_by[0] = '\0';
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct ov_admin_vtpm *)a)->name,
		      ((const struct ov_admin_vtpm *)b)->name);
}

int ov_admin_list(const struct ov_settings *s, struct ov_admin_vtpm **list, size_t *n,
		  ov_error *err)
{
	cleanup_close int root = ov_archive_root(s, false, err);
	cleanup_dir DIR *d = NULL;
	struct ov_admin_vtpm *all = NULL;
	size_t cap = 0, len = 0;
	struct dirent *de;

	*list = NULL;
	*n = 0;
	if (root < 0)
		return err->code == ENOENT ? 0 : -1;
	d = ov_opendir_at(root, ".");
	if (!d)
		return ov_error_set(err, errno, "listing %s/vtpms", s->state_dir);
	while ((de = readdir(d))) {
		ov_error ignored = {0};

		if (!ov_name_valid(de->d_name))
			continue;
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			struct ov_admin_vtpm *next = reallocarray(all, ncap, sizeof(*next));

			if (!next) {
				ov_admin_vtpms_free(all, len);
				return ov_error_set(err, ENOMEM, "listing %s/vtpms", s->state_dir);
			}
			all = next;
			cap = ncap;
		}
		/* One that vanished or cannot be read meanwhile is left out. */
		if (describe(s, root, de->d_name, true, &all[len], &ignored) == 0)
			len++;
		else
			ov_admin_vtpm_clear(&all[len]);
	}
	if (len)
		qsort(all, len, sizeof(*all), cmp_name);
	*list = all;
	*n = len;
	return 0;
}

int ov_admin_inspect(const struct ov_settings *s, const char *name, struct ov_admin_vtpm *v,
		     ov_error *err)
{
	cleanup_close int vdir = ov_archive_dir(s, name, false, err);
	cleanup_close int root = -1;
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	ov_error verr = {0};

	*v = (struct ov_admin_vtpm){0};
	if (vdir < 0)
		return err->code == ENOENT ? ov_error_set(err, ENOENT, "no vTPM named %s", name)
					   : -1;
	root = ov_archive_root(s, false, err);
	if (root < 0 || describe(s, root, name, false, v, err) < 0)
		return ov_error_wrap(err, "vTPM %s", name);
	/* Verify every generation with this host's master key. */
	if (ov_meta_load_keys(s, vdir, name, &m, &keys, &verr) < 0) {
		if (!(v->verify_error = strdup(verr.msg)))
			return ov_error_set(err, ENOMEM, "vTPM %s", name);
		return 0;
	}
	for (size_t i = 0; i < v->n_gens; i++) {
		struct ov_admin_gen *g = &v->gens[i];

		ov_error_clear(&verr);
		g->verified = ov_archive_verify(vdir, &m, &keys, g->gen, &verr) == 0;
		if (!g->verified) {
			v->bad++;
			if (!(g->error = strdup(verr.msg)))
				break;
		}
	}
	ov_vtpm_keys_wipe(&keys);
	return 0;
}

static int put_u32(FILE *f, uint32_t v)
{
	v = htonl(v);
	return fwrite(&v, sizeof(v), 1, f) == 1 ? 0 : -1;
}

int ov_admin_export(const struct ov_settings *s, const char *name, const char *path, ov_error *err)
{
	cleanup_close int vdir = ov_archive_dir(s, name, false, err);
	cleanup_free char *meta = NULL, *gen = NULL, *buf = NULL;
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	size_t meta_len, gen_len, len;
	char gname[64];
	FILE *f;

	if (vdir < 0)
		return err->code == ENOENT ? ov_error_set(err, ENOENT, "no vTPM named %s", name)
					   : -1;
	if (ov_meta_load_keys(s, vdir, name, &m, &keys, err) < 0)
		return -1;
	int verified = m.newest == 0 ? ov_error_set(err, ENOENT,
						    "vTPM %s has no archived generation yet", name)
				     : ov_archive_verify(vdir, &m, &keys, m.newest, err);
	ov_vtpm_keys_wipe(&keys);
	if (verified < 0)
		return -1;
	ov_archive_gen_name(m.newest, gname, sizeof(gname));
	if (ov_read_file_at(vdir, "meta.json", 1u << 16, &meta, &meta_len, err) < 0 ||
	    ov_read_file_at(vdir, gname, OV_ARCHIVE_MAX, &gen, &gen_len, err) < 0)
		return ov_error_wrap(err, "vTPM %s", name);
	f = open_memstream(&buf, &len);
	if (!f)
		return ov_error_set(err, ENOMEM, "export");
	fwrite(EXPORT_MAGIC, 1, EXPORT_MAGIC_LEN, f);
	put_u32(f, (uint32_t)meta_len);
	fwrite(meta, 1, meta_len, f);
	put_u32(f, (uint32_t)gen_len);
	fwrite(gen, 1, gen_len, f);
	if (fclose(f) != 0)
		return ov_error_set(err, ENOMEM, "export");
	/* Written next to its final name, then renamed: never half a file. */
	cleanup_free char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	const char *base = slash ? slash + 1 : path;
	cleanup_close int dfd = -1;

	if (!dir)
		return ov_error_set(err, ENOMEM, "export");
	if (slash == dir)
		dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else if (slash) {
		*slash = '\0';
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dfd < 0)
		return ov_error_set(err, errno, "export to %s", path);
	if (ov_write_file_atomic(dfd, base, buf, len, 0600, err) < 0)
		return ov_error_wrap(err, "export to %s", path);
	return 0;
}

static int get_u32(const char *buf, size_t len, size_t *off, uint32_t *v)
{
	if (len - *off < sizeof(*v))
		return -1;
	memcpy(v, buf + *off, sizeof(*v));
	*v = ntohl(*v);
	*off += sizeof(*v);
	return 0;
}

int ov_admin_import(const struct ov_settings *s, const char *path,
		    char name_out[OV_ADMIN_NAME_MAX + 1], unsigned long long *gen_out,
		    ov_error *err)
{
	cleanup_free char *buf = NULL;
	cleanup_json json_object *meta_obj = NULL;
	cleanup_close int root = -1, tmp = -1;
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	uint32_t meta_len, gen_len;
	size_t len, off = EXPORT_MAGIC_LEN;
	char tmpname[64], gname[64];
	json_object *jname;
	const char *name;
	int ret = -1;

	if (ov_read_file_at(AT_FDCWD, path, OV_ARCHIVE_MAX + (1u << 17), &buf, &len, err) < 0)
		return ov_error_wrap(err, "import");
	if (len < EXPORT_MAGIC_LEN || memcmp(buf, EXPORT_MAGIC, EXPORT_MAGIC_LEN) != 0 ||
	    get_u32(buf, len, &off, &meta_len) < 0 || meta_len > len - off)
		return ov_error_set(err, EBADMSG, "%s is not an oci-vtpm export", path);
	const char *meta = buf + off;
	off += meta_len;
	if (get_u32(buf, len, &off, &gen_len) < 0 || gen_len != len - off)
		return ov_error_set(err, EBADMSG, "%s is not an oci-vtpm export (truncated?)",
				    path);
	const char *gen = buf + off;
	if (ov_json_parse(meta, meta_len, "export", &meta_obj, err) < 0 ||
	    !json_object_object_get_ex(meta_obj, "name", &jname) ||
	    !json_object_is_type(jname, json_type_string) ||
	    !ov_name_valid(name = json_object_get_string(jname)))
		return ov_error_set(err, EBADMSG, "%s: bad vTPM metadata", path);

	root = ov_archive_root(s, true, err);
	if (root < 0)
		return -1;
	snprintf(tmpname, sizeof(tmpname), ".import-%d", (int)getpid());
	ov_remove_tree_at(root, tmpname, err);
	if (mkdirat(root, tmpname, 0700) < 0)
		return ov_error_set(err, errno, "import");
	tmp = ov_open_dir_at(root, tmpname);
	if (tmp < 0) {
		ov_error_set(err, errno, "import");
		goto out;
	}
	/* Unpack into a private directory and verify there before it is
	 * visible under its name. */
	if (ov_write_file_atomic(tmp, "meta.json", meta, meta_len, 0600, err) < 0 ||
	    ov_meta_load_keys(s, tmp, name, &m, &keys, err) < 0)
		goto out;
	ov_archive_gen_name(m.newest, gname, sizeof(gname));
	ret = ov_write_file_atomic(tmp, gname, gen, gen_len, 0600, err);
	if (ret == 0)
		ret = ov_archive_verify(tmp, &m, &keys, m.newest, err);
	ov_vtpm_keys_wipe(&keys);
	if (ret < 0)
		goto out;
	ret = -1;
	if (renameat2(root, tmpname, root, name, RENAME_NOREPLACE) < 0) {
		ov_error_set(err, errno == EEXIST ? 0 : errno, "vTPM %s %s", name,
			     errno == EEXIST ? "already exists here; `oci-vtpm rm` it first"
					     : "import");
		goto out;
	}
	snprintf(name_out, OV_ADMIN_NAME_MAX + 1, "%s", name);
	*gen_out = m.newest;
	return 0;
out : {
	ov_error ignored = {0};
	ov_remove_tree_at(root, tmpname, &ignored);
}
	if (ret < 0 && err->msg[0] && !strstr(err->msg, path))
		ov_error_wrap(err, "import %s", path);
	return ret;
}

int ov_admin_rm(const struct ov_settings *s, const char *name, ov_error *err)
{
	cleanup_close int vdir = ov_archive_dir(s, name, false, err);
	cleanup_close int root = -1;
	char holder[OV_ID_MAX + 1];

	if (vdir < 0)
		return err->code == ENOENT ? ov_error_set(err, ENOENT, "no vTPM named %s", name)
					   : -1;
	if (ov_instance_name_holder(s, name, holder, sizeof(holder)))
		return ov_error_set(err, EBUSY, "vTPM %s is in use by container %s", name, holder);
	root = ov_archive_root(s, false, err);
	if (root < 0)
		return -1;
	/* Still holding its lock: no start can restore it meanwhile. */
	return ov_remove_tree_at(root, name, err);
}

int ov_admin_restore(const struct ov_settings *s, const char *name, unsigned long long gen,
		     unsigned long long *newest, ov_error *err)
{
	cleanup_close int vdir = ov_archive_dir(s, name, false, err);
	char holder[OV_ID_MAX + 1], tmpname[64];
	int dirs[OV_MAX_TPMS];
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	ov_error ignored = {0};
	int ret = -1;

	if (vdir < 0)
		return err->code == ENOENT ? ov_error_set(err, ENOENT, "no vTPM named %s", name)
					   : -1;
	if (ov_instance_name_holder(s, name, holder, sizeof(holder)))
		return ov_error_set(err, EBUSY, "vTPM %s is in use by container %s", name, holder);
	if (ov_meta_load_keys(s, vdir, name, &m, &keys, err) < 0)
		return -1;
	for (unsigned i = 0; i < OV_MAX_TPMS; i++)
		dirs[i] = -1;
	snprintf(tmpname, sizeof(tmpname), ".restore-%d", (int)getpid());
	ov_remove_tree_at(vdir, tmpname, &ignored);
	if (mkdirat(vdir, tmpname, 0700) < 0) {
		ov_error_set(err, errno, "restore");
		goto out;
	}
	for (unsigned i = 0; i < m.count; i++) {
		char sub[96];

		snprintf(sub, sizeof(sub), "%s/%u", tmpname, i);
		if (mkdirat(vdir, sub, 0700) < 0 ||
		    (dirs[i] = openat(vdir, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			ov_error_set(err, errno, "restore");
			goto out;
		}
	}
	/* The chosen generation becomes the newest, as a new generation: the
	 * history stays, and nothing is rewritten in place. */
	if (ov_archive_load(vdir, &m, &keys, gen, dirs, m.count, 0, 0, err) < 0 ||
	    ov_archive_save(vdir, &m, &keys, dirs, m.count, m.version, s->keep_generations, err) <
		0)
		goto out;
	*newest = m.newest;
	ret = 0;
out:
	for (unsigned i = 0; i < OV_MAX_TPMS; i++)
		if (dirs[i] >= 0)
			close(dirs[i]);
	ov_vtpm_keys_wipe(&keys);
	ov_remove_tree_at(vdir, tmpname, &ignored);
	return ret;
}

/* Temporary files of a key write that was interrupted: <key>*.tmp.<pid>. */
static void remove_key_temps(const char *path)
{
	cleanup_free char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	cleanup_dir DIR *d = NULL;
	struct dirent *de;
	size_t blen;

	if (!slash)
		return;
	*slash = '\0';
	d = opendir(*dir ? dir : "/");
	blen = strlen(slash + 1);
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, slash + 1, blen) == 0 && strstr(de->d_name + blen, ".tmp."))
			unlinkat(dirfd(d), de->d_name, 0);
}

int ov_admin_rotate_key(const struct ov_settings *s, struct ov_admin_rotation *r, ov_error *err)
{
	cleanup_key struct ov_key old = {0}, next = {0};
	cleanup_close int root = -1, pdir = -1;
	cleanup_dir DIR *d = NULL;
	char path[4200], next_path[4210];
	struct dirent *de;

	*r = (struct ov_admin_rotation){0};

	if (ov_master_key_path(s, path, sizeof(path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "master key path");
	if (strcmp(path, s->master_key) != 0)
		return ov_error_set(err, EPERM,
				    "the master key comes from a systemd credential (%s); rotate "
				    "it there",
				    path);
	snprintf(next_path, sizeof(next_path), "%s.new", path);
	if (ov_master_key_load(path, &old, err) < 0)
		return -1;
	/*
	 * 1. The new key is made durable beside the old one (a rerun after a
	 *    crash resumes with it). 2. Each vTPM's data key is rewrapped under
	 *    it, one atomic meta.json rename each: at every moment each vTPM is
	 *    readable with one of the two keys, and starts find either. 3. The
	 *    new key replaces the old one.
	 */
	remove_key_temps(path);
	if (access(next_path, F_OK) == 0) {
		if (ov_master_key_load(next_path, &next, err) < 0)
			return -1;
		r->resumed = true;
	} else {
		if (ov_random(next.b, sizeof(next.b), err) < 0 ||
		    ov_master_key_write(next_path, &next, err) < 0)
			return -1;
	}
	ov_key_id(&old, r->old_id);
	ov_key_id(&next, r->new_id);
	{
		cleanup_free char *dir = strdup(path);
		char *slash = dir ? strrchr(dir, '/') : NULL;

		if (slash)
			*slash = '\0';
		pdir = open(slash && slash != dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pdir < 0 || fsync(pdir) < 0)
			return ov_error_set(err, errno, "syncing the key directory");
	}
	root = ov_archive_root(s, false, err);
	if (root >= 0)
		d = ov_opendir_at(root, ".");
	else if (err->code != ENOENT)
		return -1;
	while (d && (de = readdir(d))) {
		cleanup_close int vdir = -1;
		struct ov_meta m;

		if (!ov_name_valid(de->d_name))
			continue;
		vdir = ov_archive_dir(s, de->d_name, false, err);
		if (vdir < 0)
			return -1;
		if (ov_meta_load(vdir, de->d_name, NULL, &m, NULL, err) < 0) {
			if (err->code == ENOENT)
				continue;
			return -1;
		}
		if (strcmp(m.key_id, r->new_id) == 0)
			continue; /* done before an interruption */
		if (ov_meta_rewrap(vdir, &m, &old, &next, err) < 0)
			return ov_error_wrap(err, "rewrapping vTPM %s", de->d_name);
		r->rewrapped++;
	}
	if (rename(next_path, path) < 0 || fsync(pdir) < 0)
		return ov_error_set(err, errno, "installing the new master key");
	return 0;
}
