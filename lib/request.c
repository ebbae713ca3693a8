/* SPDX-License-Identifier: Apache-2.0 */
/* What a container asks for (config.h): its annotations, its environment
 * and the hook's, under the settings' policy (which keys, name scoping). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/oci.h"

/* The request's keys: annotation io.oci-vtpm.<key>, environment
 * OCI_VTPM_<env> (none: the annotation only). */
struct req_key {
	const char *key;
	const char *env;
	unsigned bit;
};
static const struct req_key req_keys[] = {
    {"enable", "ENABLE", OV_REQ_ENABLE},
    {"name", "NAME", OV_REQ_NAME},
    {"version", "VERSION", OV_REQ_VERSION},
    {"count", "COUNT", OV_REQ_COUNT},
    {"ek-cert", "EK_CERT", OV_REQ_EK_CERT},
    {"backend", "BACKEND", OV_REQ_BACKEND},
    {"measure", "MEASURE", OV_REQ_MEASURE},
    {"precreated", NULL, 0},
    {"provided-by", NULL, 0},
};
#define N_REQ_KEYS (sizeof(req_keys) / sizeof(req_keys[0]))

static const struct req_key *req_key_find(const char *key)
{
	for (size_t i = 0; i < N_REQ_KEYS; i++)
		if (strcmp(req_keys[i].key, key) == 0)
			return &req_keys[i];
	return NULL;
}

int ov_request_keys_parse(const char *name, json_object *v, unsigned *out, ov_error *err)
{
	size_t n;

	if (!json_object_is_type(v, json_type_array))
		return ov_error_set(err, 0, "\"%s\" must be a list of request keys", name);
	*out = 0;
	n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		const char *str =
		    json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
		const struct req_key *rk = req_key_find(str);

		if (!rk || !rk->bit)
			return ov_error_set(err, 0,
					    "\"%s\": \"%s\" is not enable, name, version, count, "
					    "ek-cert, backend or measure",
					    name, str);
		*out |= rk->bit;
	}
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "true") == 0)
		*out = true;
	else if (strcmp(s, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* The request key an environment entry "OCI_VTPM_<ENV>=value" sets, with
 * *val at its value; NULL for any other entry. */
static const struct req_key *req_key_env(const char *entry, const char **val)
{
	const size_t plen = strlen(OV_ENV_PREFIX);
	const char *eq;

	if (strncmp(entry, OV_ENV_PREFIX, plen) != 0 || !(eq = strchr(entry + plen, '=')))
		return NULL;
	for (size_t i = 0; i < N_REQ_KEYS; i++) {
		const char *e = req_keys[i].env;

		if (e && strlen(e) == (size_t)(eq - entry - plen) &&
		    strncmp(entry + plen, e, strlen(e)) == 0) {
			*val = eq + 1;
			return &req_keys[i];
		}
	}
	return NULL;
}

/* Set one key of the request; src names where it came from, for errors
 * ("annotation io.oci-vtpm.count", "environment OCI_VTPM_COUNT"). */
static int request_key(const struct req_key *k, const char *val, const char *src,
		       struct ov_request *r, ov_error *err)
{
	char **str = NULL;

	switch (k->bit) {
	case OV_REQ_ENABLE:
		if (parse_bool(val, &r->enable) < 0)
			goto bad;
		return 0;
	case OV_REQ_NAME:
		if (!ov_name_valid(val))
			return ov_error_set(err, 0,
					    "%s: \"%s\" is not a valid vTPM name (letters, digits, "
					    "'_', '.', '-'; at most 128)",
					    src, val);
		str = &r->name;
		break;
	case OV_REQ_VERSION:
		if (strcmp(val, "2.0") == 0)
			r->version = OV_TPM_2_0;
		else if (strcmp(val, "1.2") == 0)
			r->version = OV_TPM_1_2;
		else
			goto bad;
		return 0;
	case OV_REQ_COUNT:
		if (parse_uint(val, 1, OV_MAX_TPMS, &r->count) < 0)
			goto bad;
		return 0;
	case OV_REQ_EK_CERT:
		if (parse_bool(val, &r->ek_cert) < 0)
			goto bad;
		return 0;
	case OV_REQ_MEASURE:
		if (parse_bool(val, &r->measure) < 0)
			goto bad;
		return 0;
	case OV_REQ_BACKEND:
		if (ov_backend_parse(val, false, &r->backend) < 0)
			goto bad;
		return 0;
	default: /* precreated, provided-by */
		if (strcmp(k->key, "provided-by") == 0) {
			if (strcmp(val, OV_PROVIDER_RUNTIME) != 0)
				goto bad;
			r->provided = true;
			return 0;
		}
		if (!ov_precreated_valid(val))
			goto bad;
		str = &r->precreated;
		break;
	}
	free(*str);
	*str = strdup(val);
	if (!*str)
		return ov_error_set(err, ENOMEM, "%s", src);
	return 0;
bad:
	return ov_error_set(err, 0, "%s: bad value \"%s\"", src, val);
}

int ov_request_hook_env(json_object *annotations, char *const *envp, json_object **out,
			ov_error *err)
{
	cleanup_json json_object *o = NULL;

	*out = NULL;
	for (; envp && *envp; envp++) {
		const struct req_key *k;
		const char *val;
		char key[64];

		if (!(k = req_key_env(*envp, &val)))
			continue;
		if (!o) {
			o = json_object_new_object();
			if (!o)
				return ov_error_set(err, ENOMEM, "the hook's environment");
			if (annotations) {
				json_object_object_foreach(annotations, ak, av)
				{
					if (json_object_object_add(o, ak, json_object_get(av)) < 0)
						return ov_error_set(err, ENOMEM, "annotations");
				}
			}
		}
		snprintf(key, sizeof(key), OV_ANNOTATION_PREFIX "%s", k->key);
		if (json_object_object_get_ex(o, key, NULL))
			continue; /* the annotation wins */
		if (json_object_object_add(o, key, json_object_new_string(val)) < 0)
			return ov_error_set(err, ENOMEM, "the hook's environment");
	}
	*out = take_ptr(o);
	return 0;
}

bool ov_request_in_env(json_object *env)
{
	size_t n = env ? json_object_array_length(env) : 0;
	const char *val;

	for (size_t i = 0; i < n; i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(env, i));

		if (e && req_key_env(e, &val))
			return true;
	}
	return false;
}

/* The environment's keys that no annotation set (annotations win). With
 * env_keys 0 the environment is not a request channel: nothing in it is
 * read. Otherwise a key the settings do not let it set is an error, not
 * silently dropped: a vTPM name ignored would archive nothing. */
static int request_env(const struct ov_settings *s, json_object *env, unsigned *set,
		       struct ov_request *r, ov_error *err)
{
	size_t n = env ? json_object_array_length(env) : 0;
	unsigned from_env = 0;

	if (!s->env_keys)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(env, i));
		const struct req_key *k;
		const char *val;
		char src[64];

		if (!e || !(k = req_key_env(e, &val)))
			continue;
		snprintf(src, sizeof(src), "environment " OV_ENV_PREFIX "%s", k->env);
		if (from_env & k->bit)
			return ov_error_set(err, 0, "%s: set twice", src);
		from_env |= k->bit;
		if (*set & k->bit)
			continue;
		if (!(s->env_keys & k->bit))
			return ov_error_set(err, 0,
					    "%s: not honoured on this host (settings "
					    "\"env_request\"; the annotation " OV_ANNOTATION_PREFIX
					    "%s is)",
					    src, k->key);
		if (request_key(k, val, src, r, err) < 0)
			return -1;
	}
	*set |= from_env;
	return 0;
}

/* A Kubernetes pod's sandbox ("pause") container, as containerd's and
 * CRI-O's CRI mark it: it gets the pod's annotations too (containerd's
 * pod_annotations), and runs under the pod's RuntimeClass handler, but the
 * vTPM is for the pod's containers. */
static bool cri_sandbox(json_object *annotations)
{
	static const char *const types[] = {"io.kubernetes.cri.container-type",
					    "io.kubernetes.cri-o.ContainerType"};
	json_object *v;

	for (size_t i = 0; annotations && i < sizeof(types) / sizeof(types[0]); i++)
		if (json_object_object_get_ex(annotations, types[i], &v) &&
		    json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), "sandbox") == 0)
			return true;
	return false;
}

/* The annotation that scopes names (settings name_scope) and its value;
 * false when there is none. "auto": the namespace Kubernetes' CRI writes
 * itself (containerd's key first: CRI-O's could be a pod annotation that
 * containerd passed through). */
static bool scope_value(const char *scope, json_object *annotations, const char **key,
			const char **val)
{
	static const char *const cri[] = {"io.kubernetes.cri.sandbox-namespace",
					  "io.kubernetes.pod.namespace"};
	bool is_auto = strcmp(scope, OV_NAME_SCOPE_AUTO) == 0;
	json_object *v;

	for (size_t i = 0; annotations && i < (is_auto ? 2 : 1); i++) {
		*key = is_auto ? cri[i] : scope;
		if (json_object_object_get_ex(annotations, *key, &v)) {
			*val = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
									: "";
			return true;
		}
	}
	*key = scope;
	return false;
}

/* A value that scopes names: [A-Za-z0-9_-], 1 to 63 (no '.': the first '.'
 * of a scoped name ends its scope, so no two scopes can meet). */
static bool scope_valid(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 63)
		return false;
	for (; *v; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		      (*v >= '0' && *v <= '9') || *v == '_' || *v == '-'))
			return false;
	return true;
}

/* settings name_scope: *name becomes "<scope>.<name>". */
static int scope_name(const struct ov_settings *s, json_object *annotations, char **name,
		      ov_error *err)
{
	const char *scope = s->name_scope ? s->name_scope : OV_NAME_SCOPE_AUTO;
	const char *key, *val;
	char *scoped;

	if (!*scope)
		return 0;
	if (!scope_value(scope, annotations, &key, &val)) {
		if (strcmp(scope, OV_NAME_SCOPE_AUTO) == 0)
			return 0; /* no Kubernetes: the engine's user names */
		return ov_error_set(err, 0,
				    "vTPM name \"%s\" needs the annotation %s (settings "
				    "\"name_scope\")",
				    *name, key);
	}
	if (!scope_valid(val))
		return ov_error_set(err, 0,
				    "annotation %s: \"%.64s\" cannot scope a vTPM name (letters, "
				    "digits, '_', '-'; at most 63; settings \"name_scope\")",
				    key, val);
	if (asprintf(&scoped, "%s.%s", val, *name) < 0)
		return ov_error_set(err, ENOMEM, "vTPM name");
	if (!ov_name_valid(scoped)) {
		ov_error_set(err, 0,
			     "vTPM name \"%s\" scoped by %s is longer than 128 (settings "
			     "\"name_scope\")",
			     *name, key);
		free(scoped);
		return -1;
	}
	free(*name);
	*name = scoped;
	return 0;
}

int ov_request_parse(const struct ov_settings *s, json_object *annotations, json_object *env,
		     struct ov_request *r, ov_error *err)
{
	const size_t plen = strlen(OV_ANNOTATION_PREFIX);
	unsigned set = 0, annotated;

	memset(r, 0, sizeof(*r));
	r->enable = s->default_enable;
	r->version = OV_TPM_2_0;
	r->count = 1;
	r->ek_cert = s->ek_cert;
	r->measure = s->measure;
	r->backend = s->backend;
	if (annotations) {
		json_object_object_foreach(annotations, key, v)
		{
			const struct req_key *k;
			char src[64];

			if (strncmp(key, OV_ANNOTATION_PREFIX, plen) != 0)
				continue;
			if (!json_object_is_type(v, json_type_string)) {
				ov_error_set(err, 0, "annotation %s is not a string", key);
				goto fail;
			}
			k = req_key_find(key + plen);
			if (!k) {
				ov_error_set(err, 0, "unknown annotation %s", key);
				goto fail;
			}
			snprintf(src, sizeof(src), "annotation %s", key);
			if (k->bit && !(s->annotation_keys & k->bit)) {
				ov_error_set(err, 0,
					     "%s: not allowed on this host (settings "
					     "\"annotation_request\")",
					     src);
				goto fail;
			}
			if (request_key(k, json_object_get_string(v), src, r, err) < 0)
				goto fail;
			set |= k->bit;
		}
	}
	annotated = set;
	if (request_env(s, env, &set, r, err) < 0)
		goto fail;
	if (r->name && scope_name(s, annotations, &r->name, err) < 0)
		goto fail;
	if (cri_sandbox(annotations))
		r->enable = false;
	/* EK certificates are made for TPM 2.0: asked for a 1.2 TPM it is an
	 * error; the host's default simply does not apply to 1.2. */
	if (r->version == OV_TPM_1_2 && r->ek_cert) {
		if (annotated & OV_REQ_EK_CERT) {
			ov_error_set(err, 0,
				     "annotation " OV_ANNOTATION_PREFIX
				     "ek-cert=true needs " OV_ANNOTATION_PREFIX "version=2.0");
			goto fail;
		}
		if (set & OV_REQ_EK_CERT) {
			ov_error_set(err, 0,
				     "environment " OV_ENV_PREFIX "EK_CERT=true needs TPM "
				     "version 2.0");
			goto fail;
		}
		r->ek_cert = false;
	}
	return 0;
fail:
	ov_request_free(r);
	return -1;
}

void ov_request_free(struct ov_request *r)
{
	free(r->name);
	r->name = NULL;
	free(r->precreated);
	r->precreated = NULL;
}
