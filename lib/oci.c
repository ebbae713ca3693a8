/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/json.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/store.h"

static int get_string(json_object *obj, const char *key, bool required, const char *what,
		      char **out, ov_error *err)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return ov_error_set(err, 0, "%s: missing \"%s\"", what, key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return ov_error_set(err, 0, "%s: \"%s\" is not a string", what, key);
	*out = strdup(json_object_get_string(v));
	if (!*out)
		return ov_error_set(err, ENOMEM, "%s", what);
	return 0;
}

static int get_annotations(json_object *root, const char *what, json_object **out, ov_error *err)
{
	json_object *a;

	*out = NULL;
	if (!json_object_object_get_ex(root, "annotations", &a) ||
	    json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_object))
		return ov_error_set(err, 0, "%s: \"annotations\" is not an object", what);
	json_object_object_foreach(a, k, v)
	{
		if (!json_object_is_type(v, json_type_string))
			return ov_error_set(err, 0, "%s: annotation %s is not a string", what, k);
	}
	*out = a;
	return 0;
}

/* process.env: an array of strings, or absent. */
static int get_env(json_object *root, const char *what, json_object **out, ov_error *err)
{
	json_object *proc, *env;
	size_t n;

	*out = NULL;
	if (!json_object_object_get_ex(root, "process", &proc) ||
	    !json_object_is_type(proc, json_type_object) ||
	    !json_object_object_get_ex(proc, "env", &env) ||
	    json_object_is_type(env, json_type_null))
		return 0;
	if (!json_object_is_type(env, json_type_array))
		return ov_error_set(err, 0, "%s: \"process.env\" is not an array", what);
	n = json_object_array_length(env);
	for (size_t i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(env, i), json_type_string))
			return ov_error_set(err, 0, "%s: process.env[%zu] is not a string", what,
					    i);
	*out = env;
	return 0;
}

int ov_oci_state_parse(const char *buf, size_t len, struct ov_state *st, ov_error *err)
{
	static const char what[] = "OCI state";
	json_object *v;

	memset(st, 0, sizeof(*st));
	if (ov_json_parse(buf, len, what, &st->root, err) < 0)
		return -1;
	if (get_string(st->root, "id", true, what, &st->id, err) < 0 ||
	    get_string(st->root, "bundle", true, what, &st->bundle, err) < 0 ||
	    get_string(st->root, "status", false, what, &st->status, err) < 0 ||
	    get_annotations(st->root, what, &st->annotations, err) < 0)
		goto fail;
	if (json_object_object_get_ex(st->root, "pid", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		int64_t pid;

		if (!json_object_is_type(v, json_type_int))
			goto bad_pid;
		pid = json_object_get_int64(v);
		if (pid < 0 || pid > INT_MAX)
			goto bad_pid;
		st->pid = (pid_t)pid;
	}
	/* Before anything makes a path of it, on every path (warm and
	 * precreated vTPMs are renamed to it). */
	if (!ov_container_id_valid(st->id)) {
		ov_error_set(err, 0, "%s: invalid container id \"%.64s\"", what, st->id);
		goto fail;
	}
	if (st->bundle[0] != '/') {
		ov_error_set(err, 0, "%s: bundle \"%s\" is not an absolute path", what, st->bundle);
		goto fail;
	}
	return 0;
bad_pid:
	ov_error_set(err, 0, "%s: \"pid\" is not a valid process id", what);
fail:
	ov_oci_state_free(st);
	return -1;
}

int ov_oci_state_read(int fd, struct ov_state *st, ov_error *err)
{
	cleanup_free char *buf = NULL;
	size_t len;

	if (ov_read_fd(fd, OV_STATE_MAX, &buf, &len, err) < 0)
		return ov_error_wrap(err, "reading the OCI state from stdin");
	return ov_oci_state_parse(buf, len, st, err);
}

void ov_oci_state_free(struct ov_state *st)
{
	free(st->id);
	free(st->bundle);
	free(st->status);
	if (st->root)
		json_object_put(st->root);
	memset(st, 0, sizeof(*st));
}

int ov_oci_spec_parse(const char *buf, size_t len, const char *bundle, struct ov_spec *sp,
		      ov_error *err)
{
	static const char what[] = "config.json";
	json_object *root, *path;

	memset(sp, 0, sizeof(*sp));
	if (ov_json_parse(buf, len, what, &sp->root, err) < 0)
		return -1;
	if (get_annotations(sp->root, what, &sp->annotations, err) < 0 ||
	    get_env(sp->root, what, &sp->env, err) < 0)
		goto fail;
	if (json_object_object_get_ex(sp->root, "root", &root) &&
	    json_object_object_get_ex(root, "path", &path) &&
	    json_object_is_type(path, json_type_string)) {
		const char *p = json_object_get_string(path);
		int n;

		if (p[0] == '/')
			n = asprintf(&sp->rootfs, "%s", p);
		else
			n = asprintf(&sp->rootfs, "%s/%s", bundle, p);
		if (n < 0) {
			sp->rootfs = NULL;
			ov_error_set(err, ENOMEM, "%s", what);
			goto fail;
		}
	}
	return 0;
fail:
	ov_oci_spec_free(sp);
	return -1;
}

int ov_oci_spec_load(const char *bundle, struct ov_spec *sp, ov_error *err)
{
	cleanup_close int dfd = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cleanup_free char *buf = NULL;
	size_t len;

	if (dfd < 0)
		return ov_error_set(err, errno, "opening bundle %s", bundle);
	if (ov_read_file_at(dfd, "config.json", OV_CONFIG_MAX, &buf, &len, err) < 0)
		return ov_error_wrap(err, "bundle %s", bundle);
	return ov_oci_spec_parse(buf, len, bundle, sp, err);
}

void ov_oci_spec_free(struct ov_spec *sp)
{
	if (sp->root)
		json_object_put(sp->root);
	free(sp->rootfs);
	memset(sp, 0, sizeof(*sp));
}

void ov_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* "/run//tpm/" -> "run/tpm" (malloc'd); NULL for "/", "." or ".." parts. */
static char *rel_destination(const char *d)
{
	char *out = malloc(strlen(d) + 1), *o = out;

	if (!out)
		return NULL;
	while (*d) {
		size_t len;

		while (*d == '/')
			d++;
		len = strcspn(d, "/");
		if (len == 0)
			break;
		if ((len == 1 && d[0] == '.') || (len == 2 && d[0] == '.' && d[1] == '.')) {
			free(out);
			return NULL;
		}
		if (o != out)
			*o++ = '/';
		memcpy(o, d, len);
		o += len;
		d += len;
	}
	*o = '\0';
	if (o == out) {
		free(out);
		return NULL;
	}
	return out;
}

/* A bind mount: type "bind", or "bind"/"rbind" among its options. */
static bool is_bind(json_object *m)
{
	const char *type = ov_json_str(m, "type");
	json_object *opts;

	if (type && strcmp(type, "bind") == 0)
		return true;
	if (!json_object_object_get_ex(m, "options", &opts) ||
	    !json_object_is_type(opts, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));

		if (o && (strcmp(o, "bind") == 0 || strcmp(o, "rbind") == 0))
			return true;
	}
	return false;
}

int ov_spec_fresh_mounts(const struct ov_spec *sp, char ***out, ov_error *err)
{
	json_object *mounts = NULL;
	size_t n = 0, len = 0;
	char **v;

	if (sp->root && json_object_object_get_ex(sp->root, "mounts", &mounts) &&
	    json_object_is_type(mounts, json_type_array))
		len = json_object_array_length(mounts);
	v = calloc(len + 1, sizeof(*v));
	if (!v)
		return ov_error_set(err, ENOMEM, "config.json mounts");
	for (size_t i = 0; i < len; i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		const char *dest = ov_json_str(m, "destination");
		char *rel = dest ? rel_destination(dest) : NULL;
		size_t k;

		if (!rel)
			continue;
		for (k = 0; k < n && strcmp(v[k], rel) != 0; k++)
			;
		if (k < n) { /* mounted over: the last one decides */
			free(v[k]);
			v[k] = v[--n];
			v[n] = NULL;
		}
		if (is_bind(m))
			free(rel);
		else
			v[n++] = rel;
	}
	*out = v;
	return 0;
}
