/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/admin.h"
#include "oci-vtpm/archive.h"
#include "oci-vtpm/ca.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/pool.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/vtpm.h"
#include "oci-vtpm/warm.h"

#define EXPORT_MAGIC	 "OVTPMEX1"
#define EXPORT_MAGIC_LEN 8
#define GENS_MAX	 1024

/* The host CA that signs EK certificates: made unless both files exist
 * (an operator's CA is used as it is). */
static int init_ca(const struct ov_settings *s, FILE *out, ov_error *err)
{
	struct ov_ca *ca;
	char desc[512];
	bool created;

	if (ov_ca_init(s->ca_key, s->ca_cert, &created, err) < 0)
		return ov_error_wrap(err, "host CA");
	ca = ov_ca_load(s->ca_key, s->ca_cert, err);
	if (!ca)
		return ov_error_wrap(err, "host CA");
	ov_ca_describe(ca, desc, sizeof(desc));
	ov_ca_free(ca);
	fprintf(out, "%s host CA %s: %s\n", created ? "created" : "using the", s->ca_cert, desc);
	return 0;
}

int ov_admin_init(const struct ov_settings *s, FILE *out, ov_error *err)
{
	cleanup_key struct ov_key k = {0};
	char path[4200], id[OV_KEY_ID_LEN + 1];
	struct stat st;

	if (ov_master_key_path(s, path, sizeof(path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "master key path");
	if (strcmp(path, s->master_key) != 0) {
		/* systemd hands us the key as a credential: use it, make nothing. */
		if (ov_master_key_load(path, &k, err) < 0)
			return -1;
		ov_key_id(&k, id);
		fprintf(out, "using the master key from the credential %s (key id %s)\n", path, id);
	} else if (lstat(path, &st) == 0) {
		/* Never overwritten; a second init only adds what is missing. */
		if (ov_master_key_load(path, &k, err) < 0)
			return -1;
		ov_key_id(&k, id);
		fprintf(out, "kept the existing master key %s (key id %s)\n", path, id);
	} else {
		if (ov_master_key_create(path, &k, err) < 0)
			return -1;
		ov_key_id(&k, id);
		fprintf(out, "created master key %s (key id %s)\n", path, id);
	}
	return init_ca(s, out, err);
}

struct gen_info {
	unsigned long long gen;
	off_t size;
	time_t mtime;
};

static int cmp_gen(const void *a, const void *b)
{
	const struct gen_info *x = a, *y = b;

	return x->gen < y->gen ? -1 : x->gen > y->gen;
}

/* The generation files of a vTPM, oldest first. */
static int list_gens(int vdir, struct gen_info *gens, size_t max, size_t *n)
{
	cleanup_dir DIR *d = ov_opendir_at(vdir, ".");
	struct dirent *de;

	*n = 0;
	if (!d)
		return -1;
	while ((de = readdir(d)) && *n < max) {
		unsigned long long g;
		char name[64];
		struct stat st;

		if (sscanf(de->d_name, "gen-%llu.ovtpm", &g) != 1)
			continue;
		ov_archive_gen_name(g, name, sizeof(name));
		if (strcmp(name, de->d_name) != 0 ||
		    fstatat(vdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		gens[(*n)++] = (struct gen_info){g, st.st_size, st.st_mtime};
	}
	qsort(gens, *n, sizeof(*gens), cmp_gen);
	return 0;
}

static json_object *describe(const struct ov_settings *s, int root, const char *name)
{
	cleanup_close int vdir = ov_open_dir_at(root, name);
	static struct gen_info gens[GENS_MAX];
	json_object *o, *arr;
	struct ov_meta m;
	ov_error err = {0};
	char holder[OV_ID_MAX + 1];
	off_t total = 0;
	size_t n;

	if (vdir < 0 || list_gens(vdir, gens, GENS_MAX, &n) < 0)
		return NULL;
	o = json_object_new_object();
	arr = json_object_new_array();
	json_object_object_add(o, "name", json_object_new_string(name));
	if (ov_meta_load(vdir, name, NULL, &m, NULL, &err) == 0) {
		json_object_object_add(o, "newest", json_object_new_int64((int64_t)m.newest));
		json_object_object_add(
		    o, "version", json_object_new_string(m.version == OV_TPM_1_2 ? "1.2" : "2.0"));
		json_object_object_add(o, "count", json_object_new_int((int)m.count));
		json_object_object_add(o, "key_id", json_object_new_string(m.key_id));
	} else {
		json_object_object_add(o, "error", json_object_new_string(err.msg));
	}
	for (size_t i = 0; i < n; i++) {
		json_object *g = json_object_new_object();

		json_object_object_add(g, "generation",
				       json_object_new_int64((int64_t)gens[i].gen));
		json_object_object_add(g, "size", json_object_new_int64(gens[i].size));
		json_object_object_add(g, "archived", json_object_new_int64(gens[i].mtime));
		json_object_array_add(arr, g);
		total += gens[i].size;
	}
	json_object_object_add(o, "generations", arr);
	json_object_object_add(o, "size", json_object_new_int64(total));
	json_object_object_add(o, "last_archived",
			       n ? json_object_new_int64(gens[n - 1].mtime) : NULL);
	json_object_object_add(o, "in_use_by",
			       ov_instance_name_holder(s, name, holder, sizeof(holder))
				   ? json_object_new_string(holder)
				   : NULL);
	return o;
}

static void fmt_time(json_object *t, char *buf, size_t size)
{
	time_t v;
	struct tm tm;

	if (!t) {
		snprintf(buf, size, "-");
		return;
	}
	v = (time_t)json_object_get_int64(t);
	gmtime_r(&v, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ov_admin_list(const struct ov_settings *s, bool json, FILE *out, ov_error *err)
{
	cleanup_close int root = ov_archive_root(s, false, err);
	cleanup_json json_object *all = json_object_new_array();
	cleanup_dir DIR *d = NULL;
	struct dirent *de;

	if (root < 0) {
		if (err->code != ENOENT)
			return -1;
	} else {
		d = ov_opendir_at(root, ".");
		if (!d)
			return ov_error_set(err, errno, "listing %s/vtpms", s->state_dir);
		while ((de = readdir(d))) {
			json_object *o;

			if (!ov_name_valid(de->d_name))
				continue;
			o = describe(s, root, de->d_name);
			if (o)
				json_object_array_add(all, o);
		}
	}
	json_object_array_sort(all, NULL);
	if (json) {
		fprintf(out, "%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY));
		return 0;
	}
	fprintf(out, "%-24s %5s %10s %-20s %s\n", "NAME", "GENS", "SIZE", "LAST ARCHIVED",
		"IN USE BY");
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *o = json_object_array_get_idx(all, i), *v;
		char when[32];

		json_object_object_get_ex(o, "last_archived", &v);
		fmt_time(v, when, sizeof(when));
		json_object_object_get_ex(o, "generations", &v);
		size_t gens = json_object_array_length(v);
		json_object_object_get_ex(o, "size", &v);
		int64_t size = json_object_get_int64(v);
		json_object_object_get_ex(o, "in_use_by", &v);
		json_object *name;
		json_object_object_get_ex(o, "name", &name);
		fprintf(out, "%-24s %5zu %10lld %-20s %s\n", json_object_get_string(name), gens,
			(long long)size, when, v ? json_object_get_string(v) : "-");
	}
	return 0;
}

int ov_admin_inspect(const struct ov_settings *s, const char *name, FILE *out, ov_error *err)
{
	cleanup_close int vdir = ov_archive_dir(s, name, false, err);
	cleanup_close int root = -1;
	cleanup_json json_object *o = NULL;
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	json_object *gens;
	unsigned bad = 0;
	bool verify_failed = false;

	if (vdir < 0)
		return err->code == ENOENT ? ov_error_set(err, ENOENT, "no vTPM named %s", name)
					   : -1;
	root = ov_archive_root(s, false, err);
	if (root < 0 || !(o = describe(s, root, name)))
		return ov_error_set(err, errno, "vTPM %s", name);
	/* Verify every generation with this host's master key. */
	if (ov_meta_load_keys(s, vdir, name, &m, &keys, err) == 0) {
		json_object_object_get_ex(o, "generations", &gens);
		for (size_t i = 0; i < json_object_array_length(gens); i++) {
			json_object *g = json_object_array_get_idx(gens, i), *gen;
			ov_error verr = {0};

			json_object_object_get_ex(g, "generation", &gen);
			bool ok = ov_archive_verify(vdir, &m, &keys,
						    (unsigned long long)json_object_get_int64(gen),
						    &verr) == 0;
			json_object_object_add(g, "verified", json_object_new_boolean(ok));
			if (!ok) {
				json_object_object_add(g, "error",
						       json_object_new_string(verr.msg));
				bad++;
			}
		}
		ov_vtpm_keys_wipe(&keys);
	} else {
		json_object_object_add(o, "verify_error", json_object_new_string(err->msg));
		verify_failed = true;
	}
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	if (verify_failed)
		return ov_error_set(err, 0, "vTPM %s: %s", name, err->msg);
	if (bad)
		return ov_error_set(err, 0, "vTPM %s: %u generation%s did not verify", name, bad,
				    bad > 1 ? "s" : "");
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

int ov_admin_import(const struct ov_settings *s, const char *path, FILE *out, ov_error *err)
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
	fprintf(out, "imported vTPM %s (generation %llu)\n", name, m.newest);
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
		     FILE *out, ov_error *err)
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
	fprintf(out, "vTPM %s: generation %llu restored as generation %llu\n", name, gen, m.newest);
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

int ov_admin_rotate_key(const struct ov_settings *s, FILE *out, ov_error *err)
{
	cleanup_key struct ov_key old = {0}, next = {0};
	cleanup_close int root = -1, pdir = -1;
	cleanup_dir DIR *d = NULL;
	char path[4200], next_path[4210], old_id[OV_KEY_ID_LEN + 1], new_id[OV_KEY_ID_LEN + 1];
	struct dirent *de;
	unsigned done = 0;

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
		fprintf(out, "resuming an interrupted rotation\n");
	} else {
		if (ov_random(next.b, sizeof(next.b), err) < 0 ||
		    ov_master_key_write(next_path, &next, err) < 0)
			return -1;
	}
	ov_key_id(&old, old_id);
	ov_key_id(&next, new_id);
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
		if (strcmp(m.key_id, new_id) == 0)
			continue; /* done before an interruption */
		if (ov_meta_rewrap(vdir, &m, &old, &next, err) < 0)
			return ov_error_wrap(err, "rewrapping vTPM %s", de->d_name);
		done++;
	}
	if (rename(next_path, path) < 0 || fsync(pdir) < 0)
		return ov_error_set(err, errno, "installing the new master key");
	fprintf(out, "master key rotated: %s -> %s (%u vTPMs rewrapped)\n", old_id, new_id, done);
	return 0;
}

/* The entry of run_dir that path names ("<run_dir>/<id>[/...]"), in id. */
static bool run_dir_entry(const char *path, const char *run_dir, char *id, size_t size)
{
	size_t plen = strlen(run_dir), n;

	if (strncmp(path, run_dir, plen) != 0 || path[plen] != '/')
		return false;
	path += plen + 1;
	n = strcspn(path, "/");
	if (n >= size)
		return false;
	memcpy(id, path, n);
	id[n] = '\0';
	return ov_container_id_valid(id);
}

/*
 * The container an swtpm of run_dir belongs to, in id, and whether its
 * directory is still there (*alive). A container's swtpm runs in its
 * directory (lib/vtpm.c): alive when <run_dir>/<id> is that directory.
 * Started by an older oci-vtpm, it has "dir=<run_dir>/<id>/state-N" in its
 * arguments instead. Returns -1 when pid is no swtpm of run_dir.
 */
static int swtpm_container(pid_t pid, const char *run_dir, int run, char *id, size_t size,
			   bool *alive)
{
	cleanup_free char *cmd = NULL;
	char path[64], cwd[PATH_MAX];
	struct stat here, there;
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
			*alive = fstatat(run, id, &there, AT_SYMLINK_NOFOLLOW) == 0 &&
				 there.st_dev == here.st_dev && there.st_ino == here.st_ino;
			return 0;
		}
	}
	for (size_t off = 0; off < len; off += strlen(cmd + off) + 1)
		if (strncmp(cmd + off, "dir=", 4) == 0 &&
		    run_dir_entry(cmd + off + 4, run_dir, id, size)) {
			*alive = fstatat(run, id, &there, AT_SYMLINK_NOFOLLOW) == 0;
			return 0;
		}
	return -1;
}

/* swtpm processes of our run_dir whose container has no run directory. */
static unsigned kill_strays(const struct ov_settings *s, int run, FILE *out)
{
	cleanup_dir DIR *proc = opendir("/proc");
	cleanup_free char *run_dir = realpath(s->run_dir, NULL);
	struct dirent *de;
	unsigned n = 0;

	while (run_dir && proc && (de = readdir(proc))) {
		char id[OV_ID_MAX + 1];
		unsigned long long st;
		ov_error ignored = {0};
		pid_t pid = (pid_t)atoi(de->d_name);
		bool alive;

		if (pid <= 0 || swtpm_container(pid, run_dir, run, id, sizeof(id), &alive) < 0 ||
		    alive)
			continue;
		if (ov_proc_starttime(pid, &st, &ignored) == 0 &&
		    ov_swtpm_stop(pid, st, NULL, 2000, &ignored) >= 0) {
			fprintf(out, "stopped swtpm %d of container %s, which has no record\n",
				(int)pid, id);
			n++;
		}
	}
	return n;
}

int ov_admin_gc(const struct ov_settings *s, FILE *out, ov_error *err)
{
	cleanup_close int run = ov_run_dir_open(s->run_dir, false, err);
	cleanup_dir DIR *d = NULL;
	char boot_id[64];
	struct dirent *de;
	unsigned collected = 0, failed = 0, strays;

	if (run < 0) {
		if (err->code != ENOENT)
			return -1;
		fprintf(out, "gc: nothing to do (%s does not exist)\n", s->run_dir);
		return 0;
	}
	if (ov_proc_boot_id(boot_id, sizeof(boot_id), err) < 0)
		return -1;
	d = ov_opendir_at(run, ".");
	if (!d)
		return ov_error_set(err, errno, "listing %s", s->run_dir);
	while ((de = readdir(d))) {
		ov_error e = {0};
		int r;

		if (!ov_container_id_valid(de->d_name))
			continue;
		r = ov_vtpm_collect(s, de->d_name, boot_id, &e);
		if (r > 0) {
			fprintf(out, "collected container %s\n", de->d_name);
			collected++;
		} else if (r < 0) {
			fprintf(out, "container %s: %s\n", de->d_name, e.msg);
			failed++;
		}
	}
	strays = kill_strays(s, run, out);
	ov_instance_gc_names(s); /* claims of names whose container is gone */
	fprintf(out, "gc: %u collected, %u stray swtpm stopped, %u failed\n", collected, strays,
		failed);
	if (failed)
		return ov_error_set(err, 0, "gc: %u containers could not be collected", failed);
	return 0;
}

/* ---------------------------------------------------- provisioning pool */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int pool_status_print(const struct ov_settings *s, bool json, FILE *out, ov_error *err)
{
	struct ov_pool_status st;

	if (ov_pool_status(s, &st, err) < 0)
		return -1;
	if (json) {
		cleanup_json json_object *o = json_object_new_object();
		json_object *kinds = json_object_new_object();
		char dir[4200];

		if (!o || !kinds || json_object_object_add(o, "kinds", kinds) < 0) {
			json_object_put(kinds);
			return ov_error_set(err, ENOMEM, "pool status");
		}
		snprintf(dir, sizeof(dir), "%s/pool", s->state_dir);
		json_object_object_add(o, "dir", json_object_new_string(dir));
		json_object_object_add(o, "count", json_object_new_int((int)st.ready));
		if (st.kind[0])
			json_object_object_add(kinds, OV_POOL_KIND_EK2,
					       json_object_new_int((int)st.ready));
		json_object_object_add(o, "kind", json_object_new_string(st.kind));
		json_object_object_add(o, "stale", json_object_new_int((int)st.stale));
		json_object_object_add(o, "claims", json_object_new_int((int)st.claims));
		json_object_object_add(o, "master_key", json_object_new_boolean(st.have_key));
		json_object_object_add(o, "host_ca", json_object_new_boolean(st.have_ca));
		json_object_object_add(o, "pool_size", json_object_new_int((int)s->pool_size));
		json_object_object_add(o, "warm", json_object_new_int((int)ov_warm_count(s)));
		json_object_object_add(o, "warm_size", json_object_new_int((int)s->warm_size));
		fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		return 0;
	}
	fprintf(out, "pool %s/pool: %u ready (target %u)\n", s->state_dir, st.ready, s->pool_size);
	if (st.kind[0])
		fprintf(out, "  %s: %u (TPM 2.0 with EK and platform certificates; %s)\n",
			OV_POOL_KIND_EK2, st.ready, st.kind);
	if (st.stale)
		fprintf(out,
			"  stale: %u (another master key or host CA; `pool fill` replaces "
			"them)\n",
			st.stale);
	if (st.claims)
		fprintf(out, "  claims: %u (being taken by starting containers)\n", st.claims);
	if (s->warm_size || ov_warm_count(s))
		fprintf(out, "warm vTPMs: %u running (target %u)\n", ov_warm_count(s),
			s->warm_size);
	if (!st.have_key)
		fprintf(out, "  no master key: the pool cannot be used (`oci-vtpm init`)\n");
	else if (!st.have_ca)
		fprintf(out, "  no host CA: the pool cannot be used (`oci-vtpm init`)\n");
	return 0;
}

static int pool_fill_print(const struct ov_settings *s, unsigned target, FILE *out, ov_error *err)
{
	unsigned made = 0, removed = 0;
	double t0 = now_s();
	int ret = ov_pool_fill(s, target, &made, &removed, err);

	if (removed)
		fprintf(out, "pool: removed %u stale entries or claims\n", removed);
	if (made)
		fprintf(out, "pool: made %u EK-certified TPM 2.0 states in %.1f s\n", made,
			now_s() - t0);
	return ret;
}

static int warm_fill_print(const struct ov_settings *s, unsigned *made, FILE *out, ov_error *err)
{
	double t0 = now_s();
	unsigned ready;
	int ret = ov_warm_fill(s, s->warm_size, &ready, made, err);

	if (*made)
		fprintf(out, "pool: started %u warm vTPMs in %.1f s\n", *made, now_s() - t0);
	return ret;
}

int ov_admin_pool(const struct ov_settings *s, const char *cmd, long count, bool json, FILE *out,
		  ov_error *err)
{
	unsigned made = 0, removed = 0;

	if (strcmp(cmd, "status") == 0)
		return pool_status_print(s, json, out, err);
	if (strcmp(cmd, "drain") == 0) {
		unsigned warm = ov_warm_drain(s);

		if (ov_pool_drain(s, &removed, err) < 0)
			return -1;
		fprintf(out, "pool: %u entries removed, %u warm vTPMs stopped\n", removed, warm);
		return 0;
	}
	if (strcmp(cmd, "fill") == 0) {
		unsigned target = count < 0 ? s->pool_size : (unsigned)count;
		/* Plain warm vTPMs need no keys: first. EK-certified ones take
		 * their state from the pool: it is filled before them and after. */
		bool warm_first = s->warm_size && !s->ek_cert;

		if (warm_first && warm_fill_print(s, &made, out, err) < 0)
			return -1;
		if ((target > 0 || !s->warm_size) && pool_fill_print(s, target, out, err) < 0)
			return -1;
		if (s->warm_size && !warm_first) {
			if (warm_fill_print(s, &made, out, err) < 0)
				return -1;
			if (made && target > 0 && pool_fill_print(s, target, out, err) < 0)
				return -1;
		}
		return pool_status_print(s, json, out, err);
	}
	return ov_error_set(err, EINVAL, "pool: unknown command \"%s\"", cmd);
}
