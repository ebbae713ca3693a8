/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/json.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/tpm2.h"
#include "oci-vtpm/util.h"

#ifndef OV_VERSION /* set by the Makefile; not by tests/fuzz/run.sh */
#define OV_VERSION "unknown"
#endif

#define TPM_CC_PCR_EXTEND 0x00000182
#define TPM_ALG_SHA1	  0x0004
#define TPM_ALG_SHA384	  0x000c
#define TPM_ALG_SHA512	  0x000d

/* Every bank a TPM 2.0 may have allocated (swtpm: all four). A digest for
 * a bank that is not allocated is ignored by TPM2_PCR_Extend; the log
 * carries all four, a verifier replays the bank it quotes. */
static const struct bank {
	uint16_t alg;
	const char *name;
	const EVP_MD *(*md)(void);
} banks[] = {
    {TPM_ALG_SHA1, "sha1", EVP_sha1},
    {TPM_ALG_SHA256, "sha256", EVP_sha256},
    {TPM_ALG_SHA384, "sha384", EVP_sha384},
    {TPM_ALG_SHA512, "sha512", EVP_sha512},
};
#define N_BANKS (sizeof(banks) / sizeof(banks[0]))

/* Annotations that name the image a container's rootfs comes from, as the
 * engines set them: containerd's CRI plugin and CRI-O. podman (4.3) and
 * Docker set none; the image event is then {}. */
static const char *const image_keys[] = {
    "io.kubernetes.cri.image-name",  "io.kubernetes.cri.image-ref",  "io.kubernetes.cri-o.Image",
    "io.kubernetes.cri-o.ImageName", "io.kubernetes.cri-o.ImageRef",
};

/* ------------------------------------------------------- canonical JSON */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A deep copy of v with every object's keys sorted (NULL for null). */
static json_object *canonical(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_object: {
		size_t n = (size_t)json_object_object_length(v), i = 0;
		cleanup_free const char **keys = calloc(n ? n : 1, sizeof(*keys));
		json_object *o = json_object_new_object();

		if (!keys || !o) {
			json_object_put(o);
			return NULL;
		}
		json_object_object_foreach(v, k, val)
		{
			(void)val;
			keys[i++] = k;
		}
		qsort(keys, n, sizeof(*keys), cmp_str);
		for (i = 0; i < n; i++) {
			json_object *c = json_object_object_get(v, keys[i]);
			json_object *cc = c ? canonical(c) : NULL;

			if ((c && !cc) || json_object_object_add(o, keys[i], cc) < 0) {
				json_object_put(cc);
				json_object_put(o);
				return NULL;
			}
		}
		return o;
	}
	case json_type_array: {
		size_t n = json_object_array_length(v);
		json_object *a = json_object_new_array();

		for (size_t i = 0; a && i < n; i++) {
			json_object *c = json_object_array_get_idx(v, i);
			json_object *cc = c ? canonical(c) : NULL;

			if ((c && !cc) || json_object_array_add(a, cc) < 0) {
				json_object_put(cc);
				json_object_put(a);
				return NULL;
			}
		}
		return a;
	}
	case json_type_null:
		return NULL;
	default:
		return json_object_get(v); /* scalars are immutable: share */
	}
}

static const char *text_of(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Append the event {"name": value} (value owned, may be NULL: null),
 * canonical: keys sorted at every level. */
static int add_event(json_object *events, const char *name, json_object *value)
{
	cleanup_json json_object *o = json_object_new_object();
	json_object *c = value ? canonical(value) : NULL, *s;

	json_object_put(value);
	if (!o || (value && !c) || json_object_object_add(o, name, c) < 0) {
		json_object_put(c);
		return -1;
	}
	s = json_object_new_string(text_of(o));
	if (!s || json_object_array_add(events, s) < 0) {
		json_object_put(s);
		return -1;
	}
	return 0;
}

static json_object *get_path(json_object *root, const char *a, const char *b)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(root, a, &v))
		return NULL;
	if (b &&
	    (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, b, &v)))
		return NULL;
	return v;
}

static const char *annotation(const struct ov_spec *sp, const char *key)
{
	json_object *v;

	if (!sp->annotations || !json_object_object_get_ex(sp->annotations, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static bool has_prefix(const struct ov_spec *sp, const char *prefix)
{
	if (!sp->annotations)
		return false;
	json_object_object_foreach(sp->annotations, k, v)
	{
		(void)v;
		if (strncmp(k, prefix, strlen(prefix)) == 0)
			return true;
	}
	return false;
}

/* Which engine made the config, as its annotations say. */
static const char *engine(const struct ov_spec *sp)
{
	const char *m = annotation(sp, "io.container.manager");

	if (m && strcmp(m, "libpod") == 0)
		return "podman";
	if (has_prefix(sp, "io.kubernetes.cri-o."))
		return "cri-o";
	if (has_prefix(sp, "io.kubernetes.cri."))
		return "containerd-cri";
	if (has_prefix(sp, "com.docker.") || has_prefix(sp, "org.mobyproject."))
		return "docker";
	return "none";
}

static json_object *image(const struct ov_spec *sp)
{
	json_object *o = json_object_new_object();

	for (size_t i = 0; o && i < sizeof(image_keys) / sizeof(image_keys[0]); i++) {
		const char *v = annotation(sp, image_keys[i]);

		if (v && json_object_object_add(o, image_keys[i], json_object_new_string(v)) < 0) {
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* process.env names, sorted; never a value. */
static json_object *env_names(const struct ov_spec *sp)
{
	size_t n = sp->env ? json_object_array_length(sp->env) : 0, k = 0;
	cleanup_free char **names = calloc(n ? n : 1, sizeof(*names));
	json_object *a = json_object_new_array();

	if (!names || !a)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(sp->env, i));
		const char *eq = strchr(e, '=');

		names[k] = strndup(e, eq ? (size_t)(eq - e) : strlen(e));
		if (!names[k])
			goto fail;
		k++;
	}
	qsort(names, k, sizeof(*names), cmp_str);
	for (size_t i = 0; i < k; i++)
		if (json_object_array_add(a, json_object_new_string(names[i])) < 0)
			goto fail;
	for (size_t i = 0; i < k; i++)
		free(names[i]);
	return a;
fail:
	for (size_t i = 0; i < k; i++)
		free(names[i]);
	json_object_put(a);
	return NULL;
}

/* Each mount: destination, type, source, options (what the spec has). */
static json_object *mounts(json_object *root)
{
	static const char *const keys[] = {"destination", "options", "source", "type"};
	json_object *m = get_path(root, "mounts", NULL), *a = json_object_new_array();
	size_t n = m && json_object_is_type(m, json_type_array) ? json_object_array_length(m) : 0;

	for (size_t i = 0; a && i < n; i++) {
		json_object *e = json_object_array_get_idx(m, i), *o = json_object_new_object(), *v;

		for (size_t k = 0; o && k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (!json_object_object_get_ex(e, keys[k], &v))
				continue;
			if (json_object_object_add(o, keys[k], json_object_get(v)) < 0) {
				json_object_put(o);
				o = NULL;
			}
		}
		if (!o || json_object_array_add(a, o) < 0) {
			json_object_put(o);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

/* The seccomp profile as a sha256 of its canonical JSON, null if none. */
static json_object *seccomp(json_object *root, ov_error *err, int *ret)
{
	cleanup_json json_object *c = NULL;
	json_object *p = get_path(root, "linux", "seccomp");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 8] = "sha256:";
	const char *t;

	*ret = 0;
	if (!p || json_object_is_type(p, json_type_null))
		return NULL;
	c = canonical(p);
	t = c ? text_of(c) : NULL;
	if (!t || !EVP_Digest(t, strlen(t), md, &mdlen, EVP_sha256(), NULL)) {
		*ret = ov_error_set(err, ENOMEM, "digest of linux.seccomp");
		return NULL;
	}
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
	return json_object_new_string(hex);
}

/* process.user: uid and gid, NULL when the spec has none. */
static json_object *user_ids(json_object *root, bool *oom)
{
	json_object *u = get_path(root, "process", "user"), *o, *v;

	if (!u || !json_object_is_type(u, json_type_object))
		return NULL;
	o = json_object_new_object();
	if (o && json_object_object_get_ex(u, "uid", &v) &&
	    json_object_object_add(o, "uid", json_object_get(v)) < 0)
		*oom = true;
	if (o && json_object_object_get_ex(u, "gid", &v) &&
	    json_object_object_add(o, "gid", json_object_get(v)) < 0)
		*oom = true;
	*oom = *oom || !o;
	return o;
}

static json_object *meta(void)
{
	json_object *o = json_object_new_object();

	if (o && (json_object_object_add(o, "version", json_object_new_string(OV_VERSION)) < 0 ||
		  json_object_object_add(o, "pcr", json_object_new_int(OV_MEASURE_PCR)) < 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int ov_measure_events(const char *id, const struct ov_spec *sp, json_object **out, ov_error *err)
{
	cleanup_json json_object *ev = json_object_new_array();
	json_object *root = sp->root;
	bool oom = !ev;
	int ret = 0;
	/* required: never NULL (NULL is out of memory); else NULL is null. */
#define GET(a, b) json_object_get(get_path(root, a, b)), false
	struct {
		const char *name;
		json_object *v;
		bool required;
	} items[] = {
	    {"oci-vtpm", meta(), true},
	    {"container.id", json_object_new_string(id), true},
	    {"engine", json_object_new_string(engine(sp)), true},
	    {"image", image(sp), true},
	    {"root.readonly", GET("root", "readonly")},
	    {"process.args", GET("process", "args")},
	    {"process.cwd", GET("process", "cwd")},
	    {"process.user", user_ids(root, &oom), false},
	    {"process.env.names", env_names(sp), true},
	    {"process.capabilities", GET("process", "capabilities")},
	    {"mounts", mounts(root), true},
	    {"linux.namespaces", GET("linux", "namespaces")},
	    {"linux.seccomp", seccomp(root, err, &ret), false},
	};
#undef GET
	const size_t n = sizeof(items) / sizeof(items[0]);

	*out = NULL;
	for (size_t i = 0; i < n; i++)
		oom = oom || (items[i].required && !items[i].v);
	for (size_t i = 0; i < n; i++) {
		if (ret == 0 && !oom && add_event(ev, items[i].name, items[i].v) < 0)
			oom = true;
		else if (ret < 0 || oom)
			json_object_put(items[i].v);
	}
	if (ret < 0)
		return -1;
	if (oom)
		return ov_error_set(err, ENOMEM, "launch events");
	*out = take_ptr(ev);
	return 0;
}

/* ------------------------------------------------------------ extending */

static int extend(struct ov_tpm2 *t, const char *s, json_object *digests, ov_error *err)
{
	struct ov_tpm2_cmd o;

	ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND);
	ov_tpm2_put32(&o, OV_MEASURE_PCR);
	ov_tpm2_put_pw_session(&o);
	ov_tpm2_put32(&o, N_BANKS);
	for (size_t b = 0; b < N_BANKS; b++) {
		const EVP_MD *md = banks[b].md();
		unsigned char d[EVP_MAX_MD_SIZE];
		char hex[2 * EVP_MAX_MD_SIZE + 1];
		unsigned len = 0;
		json_object *e;

		if (!md || !EVP_Digest(s, strlen(s), d, &len, md, NULL))
			return ov_error_set(err, 0, "%s digest", banks[b].name);
		ov_tpm2_put16(&o, banks[b].alg);
		ov_tpm2_put(&o, d, len);
		for (unsigned i = 0; i < len; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
		e = json_object_new_object();
		if (!e || json_object_array_add(digests, e) < 0) {
			json_object_put(e);
			return ov_error_set(err, ENOMEM, "event log");
		}
		json_object_object_add(e, "hashAlg", json_object_new_string(banks[b].name));
		json_object_object_add(e, "digest", json_object_new_string(hex));
	}
	ov_tpm2_end(&o);
	return ov_tpm2_run(t, &o, "TPM2_PCR_Extend", err);
}

void ov_measure_log_name(unsigned idx, char *buf, size_t size)
{
	snprintf(buf, size, "tpm%u.cel.json", idx);
}

/* Extend TPM idx with every event; its CEL-JSON records into *log. */
static int measure_one(int cdirfd, const struct ov_record *rec, unsigned idx, json_object *events,
		       json_object **log, ov_error *err)
{
	const struct ov_backend_ops *ops = ov_backend_ops(rec->backend);
	struct ov_tpm2 t = {.pidfd = -1, .chardev = ops->chardev};
	size_t n = json_object_array_length(events);
	cleanup_json json_object *cel = json_object_new_array();
	int ret = 0;

	if (!cel)
		return ov_error_set(err, ENOMEM, "event log");
	t.fd = ops->connect(cdirfd, idx, &rec->tpms[idx], err);
	if (t.fd < 0)
		return ov_error_wrap(err, "connecting to vTPM %u", idx);
	t.deadline = (int64_t)ov_util_mono_ms() + 10000;
	for (size_t i = 0; i < n && ret == 0; i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(events, i));
		json_object *r = json_object_new_object(), *digests = json_object_new_array(),
			    *content = json_object_new_object();

		if (!r || !digests || !content || json_object_array_add(cel, r) < 0) {
			json_object_put(r);
			json_object_put(digests);
			json_object_put(content);
			ret = ov_error_set(err, ENOMEM, "event log");
			break;
		}
		json_object_object_add(r, "recnum", json_object_new_int((int)i));
		json_object_object_add(r, "pcr", json_object_new_int(OV_MEASURE_PCR));
		json_object_object_add(r, "digests", digests);
		json_object_object_add(r, "content_type",
				       json_object_new_string(OV_MEASURE_CONTENT_TYPE));
		json_object_object_add(content, "string", json_object_new_string(s));
		json_object_object_add(r, "content", content);
		ret = extend(&t, s, digests, err);
	}
	close(t.fd);
	if (ret < 0)
		return ov_error_wrap(err, "vTPM %u", idx);
	*log = take_ptr(cel);
	return 0;
}

/* dir/name replaced atomically (a reader sees all of it or none), not
 * durably: like the PCRs it describes, it is gone at the next boot (in
 * run_dir, a tmpfs), so no fsync, which costs more than the measuring. */
static int write_log(int dir, const char *name, const char *text, ov_error *err)
{
	cleanup_close int fd = -1;
	char tmp[80];

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	if (unlinkat(dir, tmp, 0) < 0 && errno != ENOENT)
		return ov_error_set(err, errno, "removing %s", tmp);
	fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0)
		return ov_error_set(err, errno, "creating %s", tmp);
	if (ov_write_all(fd, text, strlen(text)) < 0 || close(take_fd(&fd)) < 0) {
		int e = errno;

		unlinkat(dir, tmp, 0);
		return ov_error_set(err, e, "writing %s", tmp);
	}
	if (renameat(dir, tmp, dir, name) < 0) {
		int e = errno;

		unlinkat(dir, tmp, 0);
		return ov_error_set(err, e, "renaming %s", tmp);
	}
	return 0;
}

int ov_measure_launch(int cdirfd, const struct ov_record *rec, const char *id,
		      const struct ov_spec *sp, ov_error *err)
{
	cleanup_json json_object *events = NULL;
	cleanup_close int dir = -1;
	char name[64];

	if (rec->version != OV_TPM_2_0 || rec->count == 0)
		return 0;
	if (mkdirat(cdirfd, "private", 0700) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the event log directory");
	if (mkdirat(cdirfd, OV_MEASURE_LOG_DIR, 0755) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the event log directory");
	dir = ov_open_dir_at(cdirfd, OV_MEASURE_LOG_DIR);
	if (dir < 0)
		return ov_error_set(err, errno, "opening the event log directory");
	ov_measure_log_name(0, name, sizeof(name));
	if (faccessat(dir, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0; /* measured by an earlier stage */
	if (ov_measure_events(id, sp, &events, err) < 0)
		return -1;
	/* Logs are written after every TPM is extended, the first one last:
	 * its presence says the launch is measured. */
	for (unsigned i = rec->count; i-- > 0;) {
		cleanup_json json_object *log = NULL;
		const char *text;

		if (measure_one(cdirfd, rec, i, events, &log, err) < 0)
			return -1;
		text = json_object_to_json_string_ext(log, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE);
		ov_measure_log_name(i, name, sizeof(name));
		if (write_log(dir, name, text, err) < 0)
			return ov_error_wrap(err, "the event log of vTPM %u", i);
	}
	return 1;
}

int ov_measure_log_read(const char *run_dir, const char *id, unsigned idx, char **out, size_t *len,
			ov_error *err)
{
	cleanup_close int run = -1, cdir = -1, dir = -1;
	char name[64];

	if (!ov_container_id_valid(id))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", id);
	run = ov_run_dir_open(run_dir, false, err);
	if (run < 0)
		return -1;
	cdir = ov_container_dir_lock(run, id, false, err);
	if (cdir < 0)
		return err->code == ENOENT
			   ? ov_error_set(err, ENOENT, "no vTPM of container %s", id)
			   : -1;
	dir = ov_open_dir_at(cdir, OV_MEASURE_LOG_DIR);
	ov_measure_log_name(idx, name, sizeof(name));
	if (dir < 0 || ov_read_file_at(dir, name, 16u << 20, out, len, err) < 0)
		return ov_error_set(
		    err, ENOENT, "container %s: no event log for vTPM %u (not measured)", id, idx);
	return 0;
}
