/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/rootless.h"

#define SETTINGS_MAX (1u << 20)

const char *ov_settings_path(void)
{
	static char *user; /* rootless: the user's file, until the next call */
	const char *p = getenv(OV_CONFIG_ENV);
	ov_error ignored = {0};
	char *dir = NULL;

	if (p && *p)
		return p;
	if (!ov_rootless())
		return OV_CONFIG_PATH_DEFAULT;
	free(user);
	user = NULL;
	if (ov_user_dir(OV_DIR_CONFIG, &dir, &ignored) == 0 &&
	    asprintf(&user, "%s/" OV_USER_CONFIG_NAME, dir) < 0)
		user = NULL;
	free(dir);
	return user ? user : OV_CONFIG_PATH_DEFAULT;
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

void ov_settings_defaults(struct ov_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->log_level = OV_LOG_INFO;
	s->backend = OV_BACKEND_AUTO;
	s->ek_cert = false;
	s->measure = true;
	s->stop_async = true;
	s->keep_generations = 3;
	s->pool_size = 8;
	s->start_timeout_ms = 10000;
	s->stop_timeout_ms = 5000;
	s->swtpm_memory_max = 64u << 20;
	s->swtpm_pids_max = 8;
	s->swtpm_cpu_max = 50;
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

/* *field, when unset, is dir/name. */
static int default_in(char **field, const char *dir, const char *name)
{
	if (*field)
		return 0;
	if (asprintf(field, "%s/%s", dir, name) < 0) {
		*field = NULL;
		return -1;
	}
	return 0;
}

/* Rootless (lib/rootless.h): the user's own directories and keys, and
 * swtpm runs as the user. */
static int fill_user_defaults(struct ov_settings *s, ov_error *err)
{
	cleanup_free char *run = NULL, *data = NULL;

	if (ov_user_dir(OV_DIR_RUNTIME, &run, err) < 0 || ov_user_dir(OV_DIR_DATA, &data, err) < 0)
		return ov_error_wrap(err, "settings");
	if (dup_default(&s->run_dir, run) < 0 || dup_default(&s->state_dir, data) < 0 ||
	    default_in(&s->master_key, data, "master.key") < 0 ||
	    default_in(&s->ca_key, data, "ca/ca.key") < 0 ||
	    default_in(&s->ca_cert, data, "ca/ca.pem") < 0 || dup_default(&s->swtpm_user, "") < 0)
		return ov_error_set(err, ENOMEM, "settings");
	return 0;
}

static int fill_defaults(struct ov_settings *s, ov_error *err)
{
	if (ov_rootless() && fill_user_defaults(s, err) < 0)
		return -1;
	if (dup_default(&s->run_dir, "/run/oci-vtpm") < 0 ||
	    dup_default(&s->state_dir, "/var/lib/oci-vtpm") < 0 ||
	    dup_default(&s->swtpm, "/usr/bin/swtpm") < 0 ||
	    dup_default(&s->swtpm_user, "tss") < 0 || dup_default(&s->socket_dir, "/run/tpm") < 0 ||
	    dup_default(&s->master_key, "/etc/oci-vtpm/master.key") < 0 ||
	    dup_default(&s->ca_key, "/etc/oci-vtpm/ca/ca.key") < 0 ||
	    dup_default(&s->ca_cert, "/etc/oci-vtpm/ca/ca.pem") < 0 ||
	    dup_default(&s->swtpm_cgroup, "oci-vtpm") < 0 ||
	    dup_default(&s->name_scope, OV_NAME_SCOPE_AUTO) < 0)
		return ov_error_set(err, ENOMEM, "settings");
	return 0;
}

/* One settings key: its name, type, and where it goes. */
enum key_type { K_PATH, K_STRING, K_BOOL, K_UINT, K_LEVEL, K_BACKEND, K_REQ_KEYS, K_UID_RANGE };
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
    {"swtpm_uid_range", K_UID_RANGE, F(swtpm_uid_first), 0, 0},
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
    {"stop_async", K_BOOL, F(stop_async), 0, 0},
    {"env_request", K_REQ_KEYS, F(env_keys), 0, 0},
    /* who may ask for what */
    {"annotation_request", K_REQ_KEYS, F(annotation_keys), 0, 0},
    {"name_scope", K_STRING, F(name_scope), 0, 0},
    {"max_vtpms", K_UINT, F(max_vtpms), 0, 1000000},
    {"max_names", K_UINT, F(max_names), 0, 1000000},
    {"keep_generations", K_UINT, F(keep_generations), 1, 1000},
    {"pool_size", K_UINT, F(pool_size), 0, 4096},
    {"warm_size", K_UINT, F(warm_size), 0, 1024},
    {"warm_size_tpm12", K_UINT, F(warm_size_tpm12), 0, 1024},
    {"start_timeout_ms", K_UINT, F(start_timeout_ms), 10, 600000},
    {"stop_timeout_ms", K_UINT, F(stop_timeout_ms), 10, 600000},
    {"swtpm_cgroup", K_STRING, F(swtpm_cgroup), 0, 0},
    {"swtpm_memory_max", K_UINT, F(swtpm_memory_max), 0, UINT_MAX},
    {"swtpm_pids_max", K_UINT, F(swtpm_pids_max), 0, 4096},
    {"swtpm_cpu_max", K_UINT, F(swtpm_cpu_max), 0, 100000},
};
#undef F

/* {"first": UID, "count": N}: uids first .. first+N-1, none of them root,
 * below the overflow and "-1" ids. */
static int set_uid_range(struct ov_settings *s, const char *name, json_object *v, ov_error *err)
{
	json_object *first, *count;
	int64_t f, n;

	if (!json_object_is_type(v, json_type_object) ||
	    !json_object_object_get_ex(v, "first", &first) ||
	    !json_object_object_get_ex(v, "count", &count) ||
	    !json_object_is_type(first, json_type_int) ||
	    !json_object_is_type(count, json_type_int) || json_object_object_length(v) != 2)
		return ov_error_set(err, 0, "\"%s\" must be {\"first\": UID, \"count\": N}", name);
	f = json_object_get_int64(first);
	n = json_object_get_int64(count);
	if (f < 1 || n < 1 || n > 1000000 || f + n - 1 >= 0xfffffffeLL)
		return ov_error_set(err, 0,
				    "\"%s\": first must be 1 or more, count 1 to 1000000, and "
				    "first + count - 1 below 4294967294",
				    name);
	s->swtpm_uid_first = (unsigned)f;
	s->swtpm_uid_count = (unsigned)n;
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
		return ov_request_keys_parse(k->name, v, (unsigned *)(base + k->off), err);
	case K_UID_RANGE:
		return set_uid_range(s, k->name, v, err);
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
		/* Naming a limit asks for limits: a cgroup that cannot be
		 * made then fails the start. */
		if (strncmp(name, "swtpm_", 6) == 0 && strstr(name, "_max"))
			s->swtpm_limits_required = true;
	}
	if (s->swtpm_cgroup && !ov_limits_parent_valid(s->swtpm_cgroup)) {
		ov_error_set(err, 0,
			     "\"swtpm_cgroup\": \"%s\" is not a relative cgroup path (no \".\", "
			     "\"..\" or empty component)",
			     s->swtpm_cgroup);
		goto fail;
	}
	if (fill_defaults(s, err) < 0)
		goto fail;
	return 0;
fail:
	ov_settings_free(s);
	return -1;
}

/* May uid own what we run: root, or we ourselves (a rootless user's own
 * settings; in rootless podman's user namespace the user is uid 0). */
static bool trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* Only whoever the settings run as may change them: they name binaries
 * and directories. The file and its directory must be root's or ours and
 * writable by no one else (a sticky directory keeps others from
 * replacing it). */
static int settings_trusted(const char *path, int fd, ov_error *err)
{
	cleanup_free char *dir = strdup(path);
	cleanup_close int dfd = -1;
	const char *who = ov_rootless() ? "root or you" : "root";
	struct stat st;
	char *slash;

	if (!dir)
		return ov_error_set(err, ENOMEM, "settings");
	if (fstat(fd, &st) < 0)
		return ov_error_set(err, errno, "settings %s", path);
	if (!S_ISREG(st.st_mode))
		return ov_error_set(err, 0, "settings %s is not a regular file", path);
	if (!trusted_owner(st.st_uid) || (st.st_mode & 022))
		return ov_error_set(err, EPERM,
				    "settings %s is owned by uid %u with mode %04o: only %s may "
				    "write it (it names programs we run)",
				    path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), who);
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
	if (!trusted_owner(st.st_uid) || ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)))
		return ov_error_set(err, EPERM,
				    "settings %s: its directory %s is owned by uid %u with mode "
				    "%04o: only %s may write it",
				    path, dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
				    who);
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
	free(s->swtpm_cgroup);
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
