/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fault.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/json.h"
#include "oci-vtpm/util.h"

#define MAGIC	   "OVTPMAR1"
#define MAGIC_LEN  8
#define HEADER_MAX (64u << 10)
#define FILES_MAX  64

int ov_archive_root(const struct ov_settings *s, bool create, ov_error *err)
{
	char path[4200];
	int fd;

	if (snprintf(path, sizeof(path), "%s/vtpms", s->state_dir) >= (int)sizeof(path))
		return ov_error_set(err, ENAMETOOLONG, "state_dir");
	if (create)
		return ov_mkdir_p(path, 0700, err);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ov_error_set(err, errno, "opening %s", path);
	return fd;
}

int ov_archive_dir(const struct ov_settings *s, const char *name, bool create, ov_error *err)
{
	cleanup_close int root = -1, fd = -1;

	if (!ov_name_valid(name))
		return ov_error_set(err, EINVAL, "invalid vTPM name \"%.64s\"", name);
	root = ov_archive_root(s, create, err);
	if (root < 0)
		return -1;
	if (create && mkdirat(root, name, 0700) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the archive of vTPM %s", name);
	fd = ov_open_dir_at(root, name);
	if (fd < 0)
		return ov_error_set(err, errno, "vTPM %s", name);
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "locking vTPM %s", name);
	return take_fd(&fd);
}

/* The additional data a wrapped key is bound to. */

void ov_archive_gen_name(unsigned long long gen, char *buf, size_t size)
{
	snprintf(buf, size, "gen-%010llu.ovtpm", gen);
}

bool ov_archive_state_file_ok(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > 64 || n[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
		      (n[i] >= '0' && n[i] <= '9') || strchr("_.-", n[i])))
			return false;
	return true;
}

struct blob {
	char *data;
	size_t len, cap;
};

static int blob_add(struct blob *b, const void *p, size_t n)
{
	if (b->len + n > OV_ARCHIVE_MAX)
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		char *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static void blob_free(struct blob *b)
{
	if (b->data)
		explicit_bzero(b->data, b->len);
	free(b->data);
}

/* Read every state file of srcdirs into files[] (names) and data. */
static int collect(const int *srcdirs, unsigned count, json_object *files, struct blob *data,
		   ov_error *err)
{
	for (unsigned i = 0; i < count; i++) {
		int dfd = fcntl(srcdirs[i], F_DUPFD_CLOEXEC, 3);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		struct dirent *de;

		if (!d) {
			if (dfd >= 0)
				close(dfd);
			return ov_error_set(err, errno, "reading state of vTPM %u", i);
		}
		rewinddir(d);
		while ((de = readdir(d))) {
			cleanup_free char *buf = NULL;
			json_object *f;
			size_t len;

			if (!ov_archive_state_file_ok(de->d_name))
				continue; /* ".", "..", swtpm's .lock */
			if (ov_read_owned_file_at(srcdirs[i], de->d_name, OV_ARCHIVE_MAX, &buf,
						  &len, err) < 0) {
				closedir(d);
				return ov_error_wrap(err, "vTPM %u state", i);
			}
			f = json_object_new_object();
			if (!f || json_object_array_add(files, f) < 0 ||
			    json_object_object_add(f, "tpm", json_object_new_int((int)i)) < 0 ||
			    json_object_object_add(f, "name", json_object_new_string(de->d_name)) <
				0 ||
			    json_object_object_add(f, "size", json_object_new_int64((int64_t)len)) <
				0 ||
			    blob_add(data, buf, len) < 0) {
				closedir(d);
				return ov_error_set(err, ENOMEM, "archiving");
			}
			explicit_bzero(buf, len);
		}
		closedir(d);
	}
	return 0;
}

/* Call fn for every generation file in vdir, with its number. */
static int each_gen(int vdir,
		    void (*fn)(int vdir, const char *file, unsigned long long g, void *ctx),
		    void *ctx)
{
	DIR *d;
	struct dirent *de;
	int dfd = fcntl(vdir, F_DUPFD_CLOEXEC, 3);

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	rewinddir(d); /* the dup shares vdir's offset */
	while ((de = readdir(d))) {
		unsigned long long g;
		char tail;

		if (sscanf(de->d_name, "gen-%llu.ovtp%c", &g, &tail) == 2 && tail == 'm')
			fn(vdir, de->d_name, g, ctx);
	}
	closedir(d);
	return 0;
}

struct prune_ctx {
	unsigned long long newest;
	unsigned keep;
};

static void prune_one(int vdir, const char *file, unsigned long long g, void *ctx)
{
	const struct prune_ctx *p = ctx;

	if (g + p->keep <= p->newest)
		unlinkat(vdir, file, 0);
}

static int prune(int vdir, unsigned long long newest, unsigned keep)
{
	struct prune_ctx p = {newest, keep};

	return each_gen(vdir, prune_one, &p);
}

static void highest_one(int vdir, const char *file, unsigned long long g, void *ctx)
{
	unsigned long long *max = ctx;

	(void)vdir;
	(void)file;
	if (g > *max)
		*max = g;
}

int ov_archive_save(int vdir, struct ov_meta *m, const struct ov_vtpm_keys *k, const int *srcdirs,
		    unsigned count, enum ov_tpm_version version, unsigned keep, ov_error *err)
{
	cleanup_json json_object *header = json_object_new_object();
	json_object *files = json_object_new_array();
	struct blob data = {0}, out = {0};
	unsigned long long gen = m->newest;
	uint8_t mac[OV_MAC_LEN];
	const char *htext;
	size_t hlen;
	uint32_t hlen_be;
	char name[64];
	struct ov_mac *h = NULL;
	int ret = -1;

	if (!header || !files || json_object_object_add(header, "files", files) < 0) {
		json_object_put(files);
		return ov_error_set(err, ENOMEM, "archiving");
	}
	/* Above every generation on disk, never in place of one: one newer
	 * than meta.json says is authentic history (an older meta.json put
	 * back, or a stop killed between the two writes). */
	if (each_gen(vdir, highest_one, &gen) < 0) {
		ov_error_set(err, errno, "vTPM %s: listing its generations", m->name);
		goto out;
	}
	gen++;
	if (collect(srcdirs, count, files, &data, err) < 0)
		goto out;
	if (json_object_object_add(header, "format", json_object_new_int(1)) < 0 ||
	    json_object_object_add(header, "name", json_object_new_string(m->name)) < 0 ||
	    json_object_object_add(header, "generation", json_object_new_int64((int64_t)gen)) < 0 ||
	    json_object_object_add(header, "version",
				   json_object_new_string(ov_util_tpm_version(version))) < 0 ||
	    json_object_object_add(header, "count", json_object_new_int((int)count)) < 0 ||
	    json_object_object_add(header, "created", json_object_new_int64(time(NULL))) < 0) {
		ov_error_set(err, ENOMEM, "archiving");
		goto out;
	}
	htext = json_object_to_json_string_length(header, JSON_C_TO_STRING_PLAIN, &hlen);
	hlen_be = htonl((uint32_t)hlen);
	if (!htext || hlen > HEADER_MAX || blob_add(&out, MAGIC, MAGIC_LEN) < 0 ||
	    blob_add(&out, &hlen_be, sizeof(hlen_be)) < 0 || blob_add(&out, htext, hlen) < 0 ||
	    (data.len && blob_add(&out, data.data, data.len) < 0)) {
		ov_error_set(err, ENOMEM, "archiving");
		goto out;
	}
	h = ov_mac_new(&k->mac, err);
	if (!h)
		goto out;
	ov_mac_update(h, out.data, out.len);
	if (ov_mac_final(h, mac, err) < 0)
		goto out;
	if (blob_add(&out, mac, sizeof(mac)) < 0) {
		ov_error_set(err, ENOMEM, "archiving");
		goto out;
	}
	ov_archive_gen_name(gen, name, sizeof(name));
	if (ov_write_file_new(vdir, name, out.data, out.len, 0600, err) < 0) {
		ov_error_wrap(err, "vTPM %s generation %llu", m->name, gen);
		goto out;
	}
	/* The generation is durable; now point the metadata at it. */
	ov_fault("archive-written");
	struct ov_meta next = *m;
	next.newest = gen;
	next.version = version;
	next.count = count;
	if (ov_meta_write(vdir, &next, k, err) < 0) {
		unlinkat(vdir, name, 0);
		goto out;
	}
	*m = next;
	prune(vdir, gen, keep);
	ret = 0;
out:
	ov_mac_free(h);
	blob_free(&data);
	blob_free(&out);
	return ret;
}

/* Read, authenticate and check generation gen; on success *header is its
 * header and *payload points into *buf. */
static int open_gen(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		    unsigned long long gen, char **buf, json_object **header, size_t *payload,
		    size_t *payload_len, ov_error *err)
{
	uint8_t mac[OV_MAC_LEN];
	unsigned long long hgen;
	const char *hname;
	struct ov_mac *h;
	uint32_t hlen;
	char name[64];
	size_t len;

	ov_archive_gen_name(gen, name, sizeof(name));
	if (ov_read_file_at(vdir, name, OV_ARCHIVE_MAX, buf, &len, err) < 0)
		return ov_error_wrap(err, "vTPM %s generation %llu", m->name, gen);
	if (len < MAGIC_LEN + 4 + OV_MAC_LEN || memcmp(*buf, MAGIC, MAGIC_LEN) != 0)
		return ov_error_set(err, 0, "vTPM %s generation %llu: not an oci-vtpm archive",
				    m->name, gen);
	h = ov_mac_new(&k->mac, err);
	if (!h)
		return -1;
	ov_mac_update(h, *buf, len - OV_MAC_LEN);
	if (ov_mac_final(h, mac, err) < 0) {
		ov_mac_free(h);
		return -1;
	}
	ov_mac_free(h);
	if (!ov_mac_equal(mac, (uint8_t *)*buf + len - OV_MAC_LEN))
		return ov_error_set(err, 0,
				    "vTPM %s generation %llu does not verify: edited, or not this "
				    "vTPM's archive",
				    m->name, gen);
	memcpy(&hlen, *buf + MAGIC_LEN, sizeof(hlen));
	hlen = ntohl(hlen);
	char *htext = hlen <= HEADER_MAX && MAGIC_LEN + 4 + (size_t)hlen <= len - OV_MAC_LEN
			  ? strndup(*buf + MAGIC_LEN + 4, hlen)
			  : NULL;
	int bad = !htext || ov_json_parse(htext, hlen, "archive header", header, err) < 0;
	free(htext);
	if (bad) {
		return ov_error_set(err, 0, "vTPM %s generation %llu: bad header", m->name, gen);
	}
	hname = ov_json_str(*header, "name");
	if (!hname || strcmp(hname, m->name) != 0)
		return ov_error_set(err, 0, "vTPM %s generation %llu belongs to vTPM %s", m->name,
				    gen, hname ? hname : "?");
	if (ov_json_u64(*header, "generation", &hgen) < 0 || hgen != gen)
		return ov_error_set(err, 0,
				    "vTPM %s generation %llu holds generation %llu: an older "
				    "archive put in place of the newest?",
				    m->name, gen, hgen);
	*payload = MAGIC_LEN + 4 + hlen;
	*payload_len = len - OV_MAC_LEN - *payload;
	return 0;
}

struct newer_ctx {
	const struct ov_meta *m;
	const struct ov_vtpm_keys *k;
	unsigned long long found; /* the newest that verifies; 0: none */
};

static int open_gen(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		    unsigned long long gen, char **buf, json_object **header, size_t *payload,
		    size_t *payload_len, ov_error *err);

static void newer_one(int vdir, const char *file, unsigned long long g, void *ctx)
{
	struct newer_ctx *c = ctx;
	cleanup_free char *buf = NULL;
	cleanup_json json_object *header = NULL;
	ov_error ignored = {0};
	size_t off, len;

	(void)file;
	if (g > c->m->newest && g > c->found &&
	    open_gen(vdir, c->m, c->k, g, &buf, &header, &off, &len, &ignored) == 0)
		c->found = g;
}

/* meta.json names the newest generation; one newer that verifies means an
 * older meta.json was put back (a rollback): refused, naming it. */
static int check_newest(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
			ov_error *err)
{
	struct newer_ctx c = {m, k, 0};

	if (each_gen(vdir, newer_one, &c) < 0)
		return ov_error_set(err, errno, "vTPM %s: listing its generations", m->name);
	if (c.found)
		return ov_error_set(
		    err, 0,
		    "vTPM %s: generation %llu verifies but meta.json names "
		    "generation %llu as the newest: an older meta.json put back "
		    "(a rollback)? Refused; `oci-vtpm restore %s --generation %llu` "
		    "makes it the newest",
		    m->name, c.found, m->newest, m->name, c.found);
	return 0;
}

/* Call fn for every file of the payload data (checked against header). */
static int each_file(const char *data, size_t len, json_object *header, unsigned count,
		     ov_archive_file_fn fn, void *arg, ov_error *err)
{
	json_object *files;
	size_t off = 0;

	if (!json_object_object_get_ex(header, "files", &files) ||
	    !json_object_is_type(files, json_type_array) ||
	    json_object_array_length(files) > FILES_MAX)
		return ov_error_set(err, 0, "archive: bad file list");
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		json_object *f = json_object_array_get_idx(files, i);
		unsigned long long tpm, size;
		const char *name = ov_json_str(f, "name");

		if (!name || !ov_archive_state_file_ok(name) || ov_json_u64(f, "tpm", &tpm) < 0 ||
		    ov_json_u64(f, "size", &size) < 0 || size > len - off)
			return ov_error_set(err, 0, "archive: bad file entry");
		if (tpm >= count)
			return ov_error_set(err, 0,
					    "archive holds %llu+ TPMs, the container asks for %u",
					    tpm + 1, count);
		if (fn((unsigned)tpm, name, data + off, size, arg, err) < 0)
			return -1;
		off += size;
	}
	if (off != len)
		return ov_error_set(err, 0, "archive: trailing data");
	return 0;
}

struct unpack_ctx {
	const int *dstdirs;
	uid_t uid;
	gid_t gid;
};

static int unpack_one(unsigned tpm, const char *name, const void *data, size_t size, void *arg,
		      ov_error *err)
{
	const struct unpack_ctx *u = arg;
	cleanup_close int fd = openat(u->dstdirs[tpm], name,
				      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return ov_error_set(err, errno, "restoring %s", name);
	if (ov_write_all(fd, data, size) < 0 || fchown(fd, u->uid, u->gid) < 0)
		return ov_error_set(err, errno, "restoring %s", name);
	return 0;
}

int ov_archive_each(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		    unsigned long long gen, unsigned count, ov_archive_file_fn fn, void *arg,
		    ov_error *err)
{
	cleanup_free char *buf = NULL;
	cleanup_json json_object *header = NULL;
	size_t off, len;
	int ret;

	if (open_gen(vdir, m, k, gen, &buf, &header, &off, &len, err) < 0)
		return -1;
	if (gen == m->newest && check_newest(vdir, m, k, err) < 0)
		return -1;
	ret = each_file(buf + off, len, header, count, fn, arg, err);
	explicit_bzero(buf + off, len);
	if (ret < 0)
		return ov_error_wrap(err, "vTPM %s generation %llu", m->name, gen);
	return 0;
}

int ov_archive_load(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		    unsigned long long gen, const int *dstdirs, unsigned count, uid_t uid,
		    gid_t gid, ov_error *err)
{
	struct unpack_ctx u = {dstdirs, uid, gid};

	return ov_archive_each(vdir, m, k, gen, count, unpack_one, &u, err);
}

int ov_archive_verify(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		      unsigned long long gen, ov_error *err)
{
	cleanup_free char *buf = NULL;
	cleanup_json json_object *header = NULL;
	size_t off, len;

	if (open_gen(vdir, m, k, gen, &buf, &header, &off, &len, err) < 0)
		return -1;
	return gen == m->newest ? check_newest(vdir, m, k, err) : 0;
}
