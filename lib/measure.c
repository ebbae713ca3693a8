/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/json.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/tpm2.h"
#include "oci-vtpm/util.h"

#ifndef OV_VERSION /* set by the Makefile; not by tests/fuzz/run.sh */
#define OV_VERSION "unknown"
#endif

#define TPM_ALG_SHA1	0x0004
#define TPM_ALG_SHA384	0x000c
#define TPM_ALG_SHA512	0x000d
#define TPM_ALG_SM3_256 0x0012

#define TPM_CC_PCR_EVENT	       0x0000013c
#define TPM_CC_SEQUENCE_UPDATE	       0x0000015c
#define TPM_CC_EVENT_SEQUENCE_COMPLETE 0x00000185
#define TPM_CC_HASH_SEQUENCE_START     0x00000186
/* TPM2B_EVENT's and a sequence buffer's (MAX_DIGEST_BUFFER) largest size */
#define EVENT_MAX 1024

/* The hash algorithms a TPM 2.0 answers digests in (libtpms 0.9: the SHAs),
 * with their names in the CEL log. The TPM hashes every event itself
 * (TPM2_PCR_Event, an event sequence): a digest for each algorithm it
 * implements, extended into each bank it has allocated; the log carries
 * them all, a verifier replays the bank it quotes. No hashing in the hook,
 * so no crypto library to start (about 1 ms, more than the extends). */
static const struct bank {
	uint16_t alg;
	const char *name;
	uint16_t size;
} banks[] = {
    {TPM_ALG_SHA1, "sha1", 20},	      {TPM_ALG_SHA256, "sha256", 32},
    {TPM_ALG_SHA384, "sha384", 48},   {TPM_ALG_SHA512, "sha512", 64},
    {TPM_ALG_SM3_256, "sm3_256", 32}, /* a libtpms built with it */
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
	    {"linux.seccomp", GET("linux", "seccomp")},
	};
#undef GET
	const size_t n = sizeof(items) / sizeof(items[0]);

	*out = NULL;
	for (size_t i = 0; i < n; i++)
		oom = oom || (items[i].required && !items[i].v);
	for (size_t i = 0; i < n; i++) {
		if (!oom && add_event(ev, items[i].name, items[i].v) < 0)
			oom = true;
		else if (oom)
			json_object_put(items[i].v);
	}
	if (oom)
		return ov_error_set(err, ENOMEM, "launch events");
	*out = take_ptr(ev);
	return 0;
}

/* ------------------------------------------------------------ extending */

/* The TPML_DIGEST_VALUES that TPM2_PCR_Event and
 * TPM2_EventSequenceComplete answer, as the record's CEL digests. */
static int read_digests(const struct ov_tpm2 *t, json_object *digests, ov_error *err)
{
	struct ov_tpm2_rsp i = ov_tpm2_params(t, 0);
	uint32_t count = ov_tpm2_get32(&i);

	if (i.bad || count == 0 || count > N_BANKS)
		return ov_error_set(err, EPROTO, "the TPM answered %u digests", (unsigned)count);
	for (uint32_t k = 0; k < count; k++) {
		uint16_t alg = ov_tpm2_get16(&i);
		const struct bank *b = NULL;
		const uint8_t *d;
		char hex[2 * 64 + 1];
		json_object *e;

		for (size_t j = 0; j < N_BANKS; j++)
			if (banks[j].alg == alg)
				b = &banks[j];
		if (i.bad || !b)
			return ov_error_set(err, EPROTO, "a digest of algorithm 0x%04x", alg);
		d = ov_tpm2_take(&i, b->size);
		if (!d)
			return ov_error_set(err, EPROTO, "a short %s digest", b->name);
		ov_hex(d, b->size, hex); /* not snprintf a byte: 13 events, 164 bytes each */
		e = json_object_new_object();
		if (!e || json_object_array_add(digests, e) < 0) {
			json_object_put(e);
			return ov_error_set(err, ENOMEM, "event log");
		}
		json_object_object_add(e, "hashAlg", json_object_new_string(b->name));
		json_object_object_add(e, "digest", json_object_new_string(hex));
	}
	return 0;
}

/* An event over EVENT_MAX bytes: an event sequence (TPM2_HashSequenceStart
 * with TPM_ALG_NULL), fed EVENT_MAX bytes at a time, completed into the
 * PCR. A sequence left by a failure is flushed. */
static int extend_sequence(struct ov_tpm2 *t, const char *s, size_t len, json_object *digests,
			   ov_error *err)
{
	struct ov_tpm2_cmd o;
	struct ov_tpm2_rsp i;
	uint32_t seq;
	ov_error ignored = {0};

	ov_tpm2_begin(&o, TPM_ST_NO_SESSIONS, TPM_CC_HASH_SEQUENCE_START);
	ov_tpm2_put2b(&o, NULL, 0); /* its auth: empty */
	ov_tpm2_put16(&o, TPM_ALG_NULL);
	ov_tpm2_end(&o);
	if (ov_tpm2_run(t, &o, "TPM2_HashSequenceStart", err) < 0)
		return -1;
	i = (struct ov_tpm2_rsp){.p = t->rsp, .n = t->rsp_len, .off = TPM_HEADER_LEN};
	seq = ov_tpm2_get32(&i);
	if (i.bad)
		return ov_error_set(err, EPROTO, "TPM2_HashSequenceStart: no sequence handle");
	for (; len > EVENT_MAX; s += EVENT_MAX, len -= EVENT_MAX) {
		ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_SEQUENCE_UPDATE);
		ov_tpm2_put32(&o, seq);
		ov_tpm2_put_pw_session(&o);
		ov_tpm2_put2b(&o, s, EVENT_MAX);
		ov_tpm2_end(&o);
		if (ov_tpm2_run(t, &o, "TPM2_SequenceUpdate", err) < 0)
			goto flush;
	}
	ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_EVENT_SEQUENCE_COMPLETE);
	ov_tpm2_put32(&o, OV_MEASURE_PCR);
	ov_tpm2_put32(&o, seq);
	ov_tpm2_put_pw_sessions(&o, 2); /* the PCR and the sequence */
	ov_tpm2_put2b(&o, s, len);
	ov_tpm2_end(&o);
	if (ov_tpm2_run(t, &o, "TPM2_EventSequenceComplete", err) < 0)
		goto flush;
	return read_digests(t, digests, err);
flush:
	ov_tpm2_begin(&o, TPM_ST_NO_SESSIONS, TPM_CC_FLUSHCONTEXT);
	ov_tpm2_put32(&o, seq);
	ov_tpm2_end(&o);
	ov_tpm2_run(t, &o, "TPM2_FlushContext", &ignored);
	return -1;
}

/* Extend the PCR with the event s, hashed by the TPM in every algorithm it
 * has; its digests into digests. */
static int extend(struct ov_tpm2 *t, const char *s, json_object *digests, ov_error *err)
{
	size_t len = strlen(s);
	struct ov_tpm2_cmd o;

	if (len > EVENT_MAX)
		return extend_sequence(t, s, len, digests, err);
	ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_PCR_EVENT);
	ov_tpm2_put32(&o, OV_MEASURE_PCR);
	ov_tpm2_put_pw_session(&o);
	ov_tpm2_put2b(&o, s, len);
	ov_tpm2_end(&o);
	if (ov_tpm2_run(t, &o, "TPM2_PCR_Event", err) < 0)
		return -1;
	return read_digests(t, digests, err);
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
