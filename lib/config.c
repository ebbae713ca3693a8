/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/oci.h"

#define SETTINGS_MAX (1u << 20)

const char *ov_settings_path(void)
{
	const char *p = getenv(OV_CONFIG_ENV);

	return p && *p ? p : OV_CONFIG_PATH_DEFAULT;
}

const char *ov_backend_name(enum ov_backend b)
{
	switch (b) {
	case OV_BACKEND_DEVICE:
		return "device";
	case OV_BACKEND_SOCKET:
		return "socket";
	case OV_BACKEND_AUTO:
		break;
	}
	return "auto";
}

int ov_backend_parse(const char *s, bool allow_auto, enum ov_backend *out)
{
	if (strcmp(s, "device") == 0)
		*out = OV_BACKEND_DEVICE;
	else if (strcmp(s, "socket") == 0)
		*out = OV_BACKEND_SOCKET;
	else if (allow_auto && strcmp(s, "auto") == 0)
		*out = OV_BACKEND_AUTO;
	else
		return -1;
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

void ov_settings_defaults(struct ov_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->log_level = OV_LOG_INFO;
	s->backend = OV_BACKEND_AUTO;
	s->ek_cert = false;
	s->measure = true;
	s->keep_generations = 3;
	s->pool_size = 8;
	s->start_timeout_ms = 10000;
	s->stop_timeout_ms = 5000;
	s->env_keys = OV_ENV_KEYS_DEFAULT;
	s->annotation_keys = OV_REQ_ALL;
	s->max_vtpms = 1024;
	s->max_names = 4096;
}

static int dup_default(char **field, const char *def)
{
	if (*field)
		return 0;
	*field = strdup(def);
	return *field ? 0 : -1;
}

static int fill_defaults(struct ov_settings *s, ov_error *err)
{
	if (dup_default(&s->run_dir, "/run/oci-vtpm") < 0 ||
	    dup_default(&s->state_dir, "/var/lib/oci-vtpm") < 0 ||
	    dup_default(&s->swtpm, "/usr/bin/swtpm") < 0 ||
	    dup_default(&s->swtpm_user, "tss") < 0 || dup_default(&s->socket_dir, "/run/tpm") < 0 ||
	    dup_default(&s->master_key, "/etc/oci-vtpm/master.key") < 0 ||
	    dup_default(&s->ca_key, "/etc/oci-vtpm/ca/ca.key") < 0 ||
	    dup_default(&s->ca_cert, "/etc/oci-vtpm/ca/ca.pem") < 0 ||
	    dup_default(&s->name_scope, OV_NAME_SCOPE_AUTO) < 0)
		return ov_error_set(err, ENOMEM, "settings");
	return 0;
}

/* One settings key: its name, type, and where it goes. */
enum key_type { K_PATH, K_STRING, K_BOOL, K_UINT, K_LEVEL, K_BACKEND, K_REQ_KEYS };
struct key {
	const char *name;
	enum key_type type;
	size_t off;
	unsigned min, max;
};
#define F(field) offsetof(struct ov_settings, field)
static const struct key keys[] = {
    {"run_dir", K_PATH, F(run_dir), 0, 0},
    {"state_dir", K_PATH, F(state_dir), 0, 0},
    {"swtpm", K_PATH, F(swtpm), 0, 0},
    {"swtpm_user", K_STRING, F(swtpm_user), 0, 0},
    {"log_file", K_PATH, F(log_file), 0, 0},
    {"socket_dir", K_PATH, F(socket_dir), 0, 0},
    {"master_key", K_PATH, F(master_key), 0, 0},
    {"ca_key", K_PATH, F(ca_key), 0, 0},
    {"ca_cert", K_PATH, F(ca_cert), 0, 0},
    {"runtime", K_PATH, F(runtime), 0, 0},
    {"hook", K_PATH, F(hook), 0, 0},
    {"log_level", K_LEVEL, F(log_level), 0, 0},
    {"backend", K_BACKEND, F(backend), 0, 0},
    {"ek_cert", K_BOOL, F(ek_cert), 0, 0},
    {"measure", K_BOOL, F(measure), 0, 0},
    {"default_enable", K_BOOL, F(default_enable), 0, 0},
    {"env_request", K_REQ_KEYS, F(env_keys), 0, 0},
    /* who may ask for what */
    {"annotation_request", K_REQ_KEYS, F(annotation_keys), 0, 0},
    {"name_scope", K_STRING, F(name_scope), 0, 0},
    {"max_vtpms", K_UINT, F(max_vtpms), 0, 1000000},
    {"max_names", K_UINT, F(max_names), 0, 1000000},
    {"keep_generations", K_UINT, F(keep_generations), 1, 1000},
    {"pool_size", K_UINT, F(pool_size), 0, 4096},
    {"warm_size", K_UINT, F(warm_size), 0, 1024},
    {"start_timeout_ms", K_UINT, F(start_timeout_ms), 10, 600000},
    {"stop_timeout_ms", K_UINT, F(stop_timeout_ms), 10, 600000},
};
#undef F

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

/* A list of request keys ("enable", "name", ...), as OV_REQ_* bits. */
static int set_req_keys(const char *name, json_object *v, unsigned *out, ov_error *err)
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

static int set_key(struct ov_settings *s, const struct key *k, json_object *v, ov_error *err)
{
	char *base = (char *)s;
	const char *str;

	switch (k->type) {
	case K_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return ov_error_set(err, 0, "\"%s\" must be true or false", k->name);
		*(bool *)(base + k->off) = json_object_get_boolean(v);
		return 0;
	case K_UINT: {
		int64_t n;

		if (!json_object_is_type(v, json_type_int))
			return ov_error_set(err, 0, "\"%s\" must be a number", k->name);
		n = json_object_get_int64(v);
		if (n < k->min || n > k->max)
			return ov_error_set(err, 0, "\"%s\" must be between %u and %u", k->name,
					    k->min, k->max);
		*(unsigned *)(base + k->off) = (unsigned)n;
		return 0;
	}
	case K_REQ_KEYS:
		return set_req_keys(k->name, v, (unsigned *)(base + k->off), err);
	default:
		break;
	}
	if (!json_object_is_type(v, json_type_string))
		return ov_error_set(err, 0, "\"%s\" must be a string", k->name);
	str = json_object_get_string(v);
	switch (k->type) {
	case K_LEVEL:
		if (ov_log_parse_level(str, (enum ov_log_level *)(base + k->off)) < 0)
			return ov_error_set(err, 0,
					    "\"%s\": \"%s\" is not error, warning, info or debug",
					    k->name, str);
		return 0;
	case K_BACKEND:
		if (ov_backend_parse(str, true, (enum ov_backend *)(base + k->off)) < 0)
			return ov_error_set(err, 0, "\"%s\": \"%s\" is not auto, device or socket",
					    k->name, str);
		return 0;
	case K_PATH:
		if (str[0] != '/')
			return ov_error_set(err, 0, "\"%s\": \"%s\" is not an absolute path",
					    k->name, str);
		break;
	default:
		break;
	}
	char **field = (char **)(base + k->off);
	free(*field);
	*field = strdup(str);
	if (!*field)
		return ov_error_set(err, ENOMEM, "\"%s\"", k->name);
	return 0;
}

int ov_settings_parse(const char *buf, size_t len, struct ov_settings *s, ov_error *err)
{
	cleanup_json json_object *root = NULL;

	ov_settings_defaults(s);
	if (ov_json_parse(buf, len, "settings", &root, err) < 0)
		return -1;
	json_object_object_foreach(root, name, v)
	{
		const struct key *k = NULL;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcmp(keys[i].name, name) == 0)
				k = &keys[i];
		if (!k) {
			ov_error_set(err, 0, "unknown key \"%s\"", name);
			goto fail;
		}
		if (set_key(s, k, v, err) < 0)
			goto fail;
	}
	if (fill_defaults(s, err) < 0)
		goto fail;
	return 0;
fail:
	ov_settings_free(s);
	return -1;
}

/* Only root may change what root runs: the settings name binaries and
 * directories. The file and its directory must be root's and writable by
 * no one else (a sticky directory keeps others from replacing it). */
static int settings_trusted(const char *path, int fd, ov_error *err)
{
	cleanup_free char *dir = strdup(path);
	cleanup_close int dfd = -1;
	struct stat st;
	char *slash;

	if (!dir)
		return ov_error_set(err, ENOMEM, "settings");
	if (fstat(fd, &st) < 0)
		return ov_error_set(err, errno, "settings %s", path);
	if (!S_ISREG(st.st_mode))
		return ov_error_set(err, 0, "settings %s is not a regular file", path);
	if (geteuid() != 0)
		return 0; /* only root's trust is at stake */
	if (st.st_uid != 0 || (st.st_mode & 022))
		return ov_error_set(err, EPERM,
				    "settings %s is owned by uid %u with mode %04o: only root may "
				    "write it (it names programs run as root)",
				    path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0)
		return ov_error_set(err, errno, "settings directory %s", dir);
	if (st.st_uid != 0 || ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)))
		return ov_error_set(err, EPERM,
				    "settings %s: its directory %s is owned by uid %u with mode "
				    "%04o: only root may write it",
				    path, dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

int ov_settings_load(const char *path, struct ov_settings *s, ov_error *err)
{
	cleanup_free char *buf = NULL;
	cleanup_close int fd = -1;
	bool explicit = path != NULL || getenv(OV_CONFIG_ENV);
	size_t len;

	if (!path)
		path = ov_settings_path();
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT && !explicit) {
			ov_settings_defaults(s);
			return fill_defaults(s, err);
		}
		return ov_error_set(err, errno, "settings: opening %s", path);
	}
	if (settings_trusted(path, fd, err) < 0)
		return -1;
	if (ov_read_fd(fd, SETTINGS_MAX, &buf, &len, err) < 0)
		return ov_error_wrap(err, "settings %s", path);
	if (ov_settings_parse(buf, len, s, err) < 0)
		return ov_error_wrap(err, "settings %s", path);
	s->path = strdup(path);
	if (!s->path) {
		ov_settings_free(s);
		return ov_error_set(err, ENOMEM, "settings");
	}
	return 0;
}

void ov_settings_free(struct ov_settings *s)
{
	free(s->path);
	free(s->run_dir);
	free(s->state_dir);
	free(s->swtpm);
	free(s->swtpm_user);
	free(s->log_file);
	free(s->socket_dir);
	free(s->runtime);
	free(s->hook);
	free(s->master_key);
	free(s->ca_key);
	free(s->ca_cert);
	free(s->name_scope);
	memset(s, 0, sizeof(*s));
}

bool ov_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || !strchr("_.-", c)))
			return false;
	}
	return true;
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
