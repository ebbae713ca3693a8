/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/spec.h"

/* ------------------------------------------------------------ json helpers */

/* parent[key] as an object or array of type t, made when missing or null. */
static json_object *get_or_add(json_object *parent, const char *key, json_type t, const char *what,
			       ov_error *err)
{
	json_object *v;

	if (json_object_object_get_ex(parent, key, &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, t)) {
			ov_error_set(err, 0, "config.json: \"%s\" is not %s", what,
				     t == json_type_array ? "an array" : "an object");
			return NULL;
		}
		return v;
	}
	v = t == json_type_array ? json_object_new_array() : json_object_new_object();
	if (!v || json_object_object_add(parent, key, v) < 0) {
		json_object_put(v);
		ov_error_set(err, ENOMEM, "config.json");
		return NULL;
	}
	return v;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* o[key] as an integer; false when missing or not one. */
static bool get_int(json_object *o, const char *key, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

static bool get_bool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

static int add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ hooks */

bool ov_spec_hook_is_ours(json_object *entry)
{
	const char *path, *base;

	if (!json_object_is_type(entry, json_type_object))
		return false;
	path = get_str(entry, "path");
	if (!path)
		return false;
	base = strrchr(path, '/');
	return strcmp(base ? base + 1 : path, OV_HOOK_NAME) == 0;
}

/* Does hooks[stage] hold our hook? */
static bool stage_has_ours(json_object *hooks, const char *stage)
{
	json_object *arr;

	if (!json_object_object_get_ex(hooks, stage, &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		if (ov_spec_hook_is_ours(json_object_array_get_idx(arr, i)))
			return true;
	return false;
}

static unsigned ceil_s(unsigned ms)
{
	return (ms + 999) / 1000;
}

void ov_spec_hook_timeouts(const struct ov_settings *s, unsigned count, struct ov_hook_opts *o)
{
	if (count == 0)
		count = 1;
	/* Start: each TPM's readiness wait. Stop: per TPM a shutdown, a
	 * SIGTERM and a SIGKILL wait, each bounded by stop_timeout_ms. */
	o->start_timeout = count * ceil_s(s->start_timeout_ms) + OV_HOOK_TIMEOUT_PAD;
	o->stop_timeout = count * 3 * ceil_s(s->stop_timeout_ms) + OV_HOOK_TIMEOUT_PAD;
}

json_object *ov_spec_hook_entry(const struct ov_hook_opts *o, const char *stage, unsigned timeout)
{
	cleanup_json json_object *e = json_object_new_object();
	json_object *args = json_object_new_array(), *env = json_object_new_array();

	if (!e || add(e, "path", json_object_new_string(o->path)) < 0 || add(e, "args", args) < 0) {
		json_object_put(args);
		json_object_put(env);
		return NULL;
	}
	if (add(e, "env", env) < 0)
		return NULL;
	if (json_object_array_add(args, json_object_new_string(OV_HOOK_NAME)) < 0 ||
	    json_object_array_add(args, json_object_new_string(stage)) < 0)
		return NULL;
	if (o->config) {
		cleanup_free char *kv = NULL;

		if (asprintf(&kv, "%s=%s", OV_CONFIG_ENV, o->config) < 0) {
			kv = NULL;
			return NULL;
		}
		if (json_object_array_add(env, json_object_new_string(kv)) < 0)
			return NULL;
	}
	for (const char *const *x = o->env; x && *x; x++)
		if (json_object_array_add(env, json_object_new_string(*x)) < 0)
			return NULL;
	if (add(e, "timeout", json_object_new_int((int)timeout)) < 0)
		return NULL;
	return take_ptr(e);
}

static int append_hook(json_object *hooks, const char *stage, const struct ov_hook_opts *o,
		       unsigned timeout, ov_error *err)
{
	json_object *arr = get_or_add(hooks, stage, json_type_array, stage, err);
	json_object *e;

	if (!arr)
		return -1;
	e = ov_spec_hook_entry(o, stage, timeout);
	if (!e || json_object_array_add(arr, e) < 0) {
		json_object_put(e);
		return ov_error_set(err, ENOMEM, "config.json: adding the %s hook", stage);
	}
	return 0;
}

int ov_spec_add_hooks(json_object *spec, const struct ov_hook_opts *o, ov_error *err)
{
	json_object *hooks;
	int changed = 0;

	if (!o->path || o->path[0] != '/')
		return ov_error_set(err, 0, "the hook path \"%s\" is not absolute",
				    o->path ? o->path : "");
	hooks = get_or_add(spec, "hooks", json_type_object, "hooks", err);
	if (!hooks)
		return -1;
	if (!stage_has_ours(hooks, "createRuntime") && !stage_has_ours(hooks, "prestart")) {
		if (append_hook(hooks, "createRuntime", o, o->start_timeout, err) < 0)
			return -1;
		changed = 1;
	}
	if (!stage_has_ours(hooks, "poststop")) {
		if (append_hook(hooks, "poststop", o, o->stop_timeout, err) < 0)
			return -1;
		changed = 1;
	}
	return changed;
}

/* ---------------------------------------------------------------- devices */

static bool is_our_rule(json_object *r, int64_t major, int64_t minor)
{
	const char *type = get_str(r, "type"), *access = get_str(r, "access");
	int64_t ma, mi;

	return json_object_is_type(r, json_type_object) && get_bool(r, "allow") && type &&
	       strcmp(type, "c") == 0 && access && strcmp(access, "rwm") == 0 &&
	       get_int(r, "major", &ma) && ma == major && get_int(r, "minor", &mi) && mi == minor;
}

static int set_device(json_object *d, const char *path, unsigned major, unsigned minor)
{
	if (add(d, "path", json_object_new_string(path)) < 0 ||
	    add(d, "type", json_object_new_string("c")) < 0 ||
	    add(d, "major", json_object_new_int64(major)) < 0 ||
	    add(d, "minor", json_object_new_int64(minor)) < 0 ||
	    add(d, "fileMode", json_object_new_int(OV_DEV_FILE_MODE)) < 0 ||
	    add(d, "uid", json_object_new_int(0)) < 0 || add(d, "gid", json_object_new_int(0)) < 0)
		return -1;
	return 0;
}

static bool device_matches(json_object *d, unsigned major, unsigned minor)
{
	const char *type = get_str(d, "type");
	int64_t ma, mi, mode, uid, gid;

	return type && strcmp(type, "c") == 0 && get_int(d, "major", &ma) && ma == major &&
	       get_int(d, "minor", &mi) && mi == minor && get_int(d, "fileMode", &mode) &&
	       mode == OV_DEV_FILE_MODE && get_int(d, "uid", &uid) && uid == 0 &&
	       get_int(d, "gid", &gid) && gid == 0;
}

int ov_spec_add_device(json_object *spec, const char *path, unsigned major, unsigned minor,
		       ov_error *err)
{
	json_object *linux_, *devs, *res, *rules, *entry = NULL;
	int64_t old_major = -1, old_minor = -1;
	int changed = 0;
	size_t n;

	if (path[0] != '/')
		return ov_error_set(err, 0, "device path \"%s\" is not absolute", path);
	linux_ = get_or_add(spec, "linux", json_type_object, "linux", err);
	if (!linux_)
		return -1;
	devs = get_or_add(linux_, "devices", json_type_array, "linux.devices", err);
	if (!devs)
		return -1;
	n = json_object_array_length(devs);
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(devs, i);
		const char *p =
		    json_object_is_type(d, json_type_object) ? get_str(d, "path") : NULL;

		if (p && strcmp(p, path) == 0) {
			entry = d;
			break;
		}
	}
	if (!entry) {
		entry = json_object_new_object();
		if (!entry || json_object_array_add(devs, entry) < 0) {
			json_object_put(entry);
			return ov_error_set(err, ENOMEM, "config.json: adding %s", path);
		}
		changed = 1;
	} else if (!device_matches(entry, major, minor)) {
		const char *type = get_str(entry, "type");

		/* A stale entry (an earlier vTPM of this bundle): its rule goes too. */
		if (type && strcmp(type, "c") == 0) {
			get_int(entry, "major", &old_major);
			get_int(entry, "minor", &old_minor);
		}
		changed = 1;
	}
	if (changed && set_device(entry, path, major, minor) < 0)
		return ov_error_set(err, ENOMEM, "config.json: adding %s", path);

	res = get_or_add(linux_, "resources", json_type_object, "linux.resources", err);
	if (!res)
		return -1;
	rules = get_or_add(res, "devices", json_type_array, "linux.resources.devices", err);
	if (!rules)
		return -1;
	if (old_major >= 0 && old_minor >= 0 && (old_major != major || old_minor != minor)) {
		for (size_t i = json_object_array_length(rules); i-- > 0;) {
			if (is_our_rule(json_object_array_get_idx(rules, i), old_major,
					old_minor)) {
				json_object_array_del_idx(rules, i, 1);
				changed = 1;
			}
		}
	}
	for (size_t i = 0; i < json_object_array_length(rules); i++)
		if (is_our_rule(json_object_array_get_idx(rules, i), major, minor))
			return changed;

	json_object *rule = json_object_new_object();
	if (!rule || add(rule, "allow", json_object_new_boolean(1)) < 0 ||
	    add(rule, "type", json_object_new_string("c")) < 0 ||
	    add(rule, "major", json_object_new_int64(major)) < 0 ||
	    add(rule, "minor", json_object_new_int64(minor)) < 0 ||
	    add(rule, "access", json_object_new_string("rwm")) < 0 ||
	    json_object_array_add(rules, rule) < 0) {
		json_object_put(rule);
		return ov_error_set(err, ENOMEM, "config.json: allowing %s", path);
	}
	return 1;
}

int ov_spec_add_record_devices(json_object *spec, const struct ov_record *rec, ov_error *err)
{
	int changed = 0;

	for (unsigned i = 0; i < rec->count && i < OV_MAX_TPMS; i++) {
		const struct ov_record_tpm *t = &rec->tpms[i];
		char path[64];
		int r;

		if (t->dev == 0)
			return ov_error_set(err, 0, "vTPM %u has no device number in its record",
					    i);
		snprintf(path, sizeof(path), "/dev/tpm%u", i);
		r = ov_spec_add_device(spec, path, major(t->dev), minor(t->dev), err);
		if (r < 0)
			return -1;
		changed |= r;
		if (t->rmdev == 0)
			continue;
		snprintf(path, sizeof(path), "/dev/tpmrm%u", i);
		r = ov_spec_add_device(spec, path, major(t->rmdev), minor(t->rmdev), err);
		if (r < 0)
			return -1;
		changed |= r;
	}
	return changed;
}

/* ------------------------------------------------------------------ mounts */

static const char *const bind_ro_options[] = {"bind", "ro", "nosuid", "nodev", "noexec"};

static int set_bind(json_object *m, const char *source, const char *destination)
{
	json_object *opts = json_object_new_array();

	if (add(m, "destination", json_object_new_string(destination)) < 0 ||
	    add(m, "type", json_object_new_string("bind")) < 0 ||
	    add(m, "source", json_object_new_string(source)) < 0 || add(m, "options", opts) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(bind_ro_options) / sizeof(bind_ro_options[0]); i++)
		if (json_object_array_add(opts, json_object_new_string(bind_ro_options[i])) < 0)
			return -1;
	return 0;
}

/* A bind mount of ours: type bind, our options (any source). */
static bool is_our_bind(json_object *m, const char *destination)
{
	const char *type = get_str(m, "type"), *dst = get_str(m, "destination");
	json_object *opts;
	size_t n = sizeof(bind_ro_options) / sizeof(bind_ro_options[0]);

	if (!json_object_is_type(m, json_type_object) || !type || strcmp(type, "bind") != 0 ||
	    !dst || strcmp(dst, destination) != 0 ||
	    !json_object_object_get_ex(m, "options", &opts) ||
	    !json_object_is_type(opts, json_type_array) || json_object_array_length(opts) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));

		if (!o || strcmp(o, bind_ro_options[i]) != 0)
			return false;
	}
	return true;
}

int ov_spec_add_ro_bind(json_object *spec, const char *source, const char *destination,
			ov_error *err)
{
	json_object *mounts, *entry;
	size_t n;

	if (source[0] != '/' || destination[0] != '/')
		return ov_error_set(err, 0, "mount %s on %s: paths must be absolute", source,
				    destination);
	mounts = get_or_add(spec, "mounts", json_type_array, "mounts", err);
	if (!mounts)
		return -1;
	/* Ours is the last mount: nothing the config mounts later hides it.
	 * Already there (a retried create): nothing to do; an earlier one of
	 * ours with another source (a stale vTPM of this bundle) goes. */
	n = json_object_array_length(mounts);
	if (n > 0 && is_our_bind(json_object_array_get_idx(mounts, n - 1), destination) &&
	    strcmp(get_str(json_object_array_get_idx(mounts, n - 1), "source") ?: "", source) == 0)
		return 0;
	for (size_t i = n; i-- > 0;)
		if (is_our_bind(json_object_array_get_idx(mounts, i), destination))
			json_object_array_del_idx(mounts, i, 1);
	entry = json_object_new_object();
	if (!entry || json_object_array_add(mounts, entry) < 0) {
		json_object_put(entry);
		return ov_error_set(err, ENOMEM, "config.json: adding the mount of %s",
				    destination);
	}
	if (set_bind(entry, source, destination) < 0)
		return ov_error_set(err, ENOMEM, "config.json: adding the mount of %s",
				    destination);
	return 1;
}

/* ------------------------------------------------------ reading, requests */

bool ov_spec_annotated_true(json_object *annotations, const char *key)
{
	json_object *v;

	return annotations && json_object_object_get_ex(annotations, key, &v) &&
	       strcmp(json_object_get_string(v), "true") == 0;
}

int ov_spec_annotate(json_object *spec, const char *key, const char *value, ov_error *err)
{
	json_object *ann, *v = json_object_new_string(value);

	if (!json_object_object_get_ex(spec, "annotations", &ann)) {
		ann = json_object_new_object();
		if (!ann || json_object_object_add(spec, "annotations", ann) < 0) {
			json_object_put(ann);
			ann = NULL;
		}
	}
	if (!v || !ann || !json_object_is_type(ann, json_type_object) ||
	    json_object_object_add(ann, key, v) < 0) {
		json_object_put(v);
		return ov_error_set(err, ENOMEM, "config.json: annotations");
	}
	return 0;
}

/* Read dirfd/name: a regular file (a symlink to one is followed), bounded. */
int ov_spec_read(int dirfd, const char *name, struct stat *st, char **buf, size_t *len,
		 ov_error *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return ov_error_set(err, errno, "opening %s", name);
	if (fstat(fd, st) < 0)
		return ov_error_set(err, errno, "stat of %s", name);
	if (!S_ISREG(st->st_mode))
		return ov_error_set(err, 0, "%s is not a regular file", name);
	if (ov_read_fd(fd, OV_CONFIG_MAX, buf, len, err) < 0)
		return ov_error_wrap(err, "%s", name);
	return 0;
}

int ov_spec_request(const char *buf, size_t len, const struct ov_settings *s, const char *bundle,
		    struct ov_spec *sp, struct ov_request *r, ov_error *err)
{
	if (ov_oci_spec_parse(buf, len, bundle, sp, err) < 0)
		return -1;
	if (ov_request_parse(s, sp->annotations, sp->env, r, err) < 0) {
		ov_oci_spec_free(sp);
		return -1;
	}
	return 0;
}

int ov_spec_file_wants_vtpm(int dirfd, const char *name, const struct ov_settings *s, ov_error *err)
{
	cleanup_free char *buf = NULL;
	struct ov_spec sp;
	struct ov_request r;
	struct stat st;
	size_t len;
	bool enable;

	if (ov_spec_read(dirfd, name, &st, &buf, &len, err) < 0)
		return -1;
	if (ov_spec_request(buf, len, s, "/", &sp, &r, err) < 0)
		return ov_error_wrap(err, "%s", name);
	enable = r.enable;
	ov_request_free(&r);
	ov_oci_spec_free(&sp);
	return enable ? 1 : 0;
}
