/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/runtime.h"
#include "oci-vtpm/spec.h"
#include "oci-vtpm/store.h"

/* ------------------------------------------------------------ argv parsing */

enum opt_id {
	O_OTHER,
	O_ROOT,
	O_LOG,
	O_LOG_FORMAT,
	O_DEBUG,
	O_BUNDLE,
	O_CONFIG,
	O_DETACH,
	O_HELP,
	O_PID_FILE,
	O_KEEP,
};

struct opt {
	const char *name;
	bool value; /* takes a value */
	enum opt_id id;
};

/* runc 1.1 and crun 1.8 global options. */
static const struct opt global_opts[] = {
    {"root", true, O_ROOT},
    {"log", true, O_LOG},
    {"log-format", true, O_LOG_FORMAT},
    {"criu", true, O_OTHER},
    {"rootless", true, O_OTHER}, /* runc: --rootless true|false|auto */
    {"cgroup-manager", true, O_OTHER},
    {"log-level", true, O_OTHER},
    {"debug", false, O_DEBUG},
    {"systemd-cgroup", false, O_OTHER},
    {"help", false, O_OTHER},
    {"h", false, O_OTHER},
    {"?", false, O_OTHER},
    {"usage", false, O_OTHER},
    {"version", false, O_OTHER},
    {"v", false, O_OTHER},
    {"V", false, O_OTHER},
};

/* Options of runc's and crun's create and run. */
static const struct opt create_opts[] = {
    {"bundle", true, O_BUNDLE},
    {"b", true, O_BUNDLE},
    {"config", true, O_CONFIG},
    {"f", true, O_CONFIG},
    {"console-socket", true, O_OTHER},
    {"pid-file", true, O_PID_FILE},
    {"preserve-fds", true, O_OTHER},
    {"no-pivot", false, O_OTHER},
    {"no-new-keyring", false, O_OTHER},
    {"no-subreaper", false, O_OTHER},
    {"keep", false, O_KEEP},
    {"detach", false, O_DETACH},
    {"d", false, O_DETACH},
    {"help", false, O_HELP},
    {"h", false, O_HELP},
    {"?", false, O_HELP},
    {"usage", false, O_HELP},
};

static const char *const subcommands[] = {
    "checkpoint", "create", "delete", "events", "exec",	  "features", "help",
    "h",	  "init",   "kill",   "list",	"mounts", "pause",    "ps",
    "restore",	  "resume", "run",    "spec",	"start",  "state",    "update",
};

bool ov_rt_known_subcommand(const char *name)
{
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (strcmp(name, subcommands[i]) == 0)
			return true;
	return false;
}

/* A token that is an option: "-x", "--x", "--x=v". "-" and "--" are not. */
static bool is_option(const char *t)
{
	return t[0] == '-' && t[1] != '\0' && strcmp(t, "--") != 0;
}

/*
 * Look tok up in table: "--name", "-name" (Go's flag package, which runc
 * uses, takes both), with "=value" or without. *eq points at the value
 * after '=' or is NULL.
 */
static const struct opt *lookup(const struct opt *table, size_t n, const char *tok, const char **eq)
{
	const char *name = tok + (tok[1] == '-' ? 2 : 1);
	const char *e = strchr(name, '=');
	size_t len = e ? (size_t)(e - name) : strlen(name);

	*eq = e ? e + 1 : NULL;
	for (size_t i = 0; i < n; i++)
		if (strlen(table[i].name) == len && strncmp(table[i].name, name, len) == 0)
			return &table[i];
	return NULL;
}

/* crun (argp) also takes a short option's value glued on: -bDIR, -fFILE. */
static const struct opt *lookup_glued(const char *tok, const char **val)
{
	if (tok[1] == '-' || tok[1] == '\0' || tok[2] == '\0')
		return NULL;
	for (size_t i = 0; i < sizeof(create_opts) / sizeof(create_opts[0]); i++) {
		const struct opt *o = &create_opts[i];

		if (o->value && o->name[1] == '\0' && o->name[0] == tok[1]) {
			*val = tok + 2;
			return o;
		}
	}
	return NULL;
}

static void set_global(struct ov_rt_args *a, enum opt_id id, const char *v)
{
	if (id == O_ROOT)
		a->root = v;
	else if (id == O_LOG)
		a->log = v;
	else if (id == O_LOG_FORMAT)
		a->log_format = v;
}

static void set_create(struct ov_rt_args *a, const struct opt *o, const char *v)
{
	switch (o->id) {
	case O_BUNDLE:
		a->bundle = v && *v ? v : NULL; /* runc: an empty bundle is the cwd */
		break;
	case O_CONFIG:
		a->config = v;
		break;
	case O_DETACH:
		a->detach = true;
		break;
	case O_HELP:
		a->help = true;
		break;
	case O_PID_FILE:
		a->pid_file = v;
		break;
	case O_KEEP:
		a->keep = true;
		break;
	default:
		break;
	}
}

/* Parse the options of create/run from argv[i]; stops at the id. */
static int parse_create(int argc, char *const argv[], int i, struct ov_rt_args *a, ov_error *err)
{
	for (; i < argc; i++) {
		const char *t = argv[i], *v = NULL;
		const struct opt *o;

		if (strcmp(t, "--") == 0) {
			if (i + 1 < argc)
				a->id = argv[i + 1];
			return 0;
		}
		if (!is_option(t)) {
			a->id = t;
			return 0;
		}
		o = lookup(create_opts, sizeof(create_opts) / sizeof(create_opts[0]), t, &v);
		if (!o && (o = lookup_glued(t, &v)) == NULL) {
			/* Unknown: taken as a flag without a value, and remembered. */
			if (!a->unknown)
				a->unknown = t;
			continue;
		}
		if (o->value && !v) {
			if (i + 1 >= argc)
				return ov_error_set(err, 0, "option %s needs a value", t);
			v = argv[++i];
		}
		set_create(a, o, v);
	}
	return 0;
}

int ov_rt_parse(int argc, char *const argv[], struct ov_rt_args *a, ov_error *err)
{
	int i;

	memset(a, 0, sizeof(*a));
	for (i = 1; i < argc; i++) {
		const char *t = argv[i], *v = NULL;
		const struct opt *o;

		if (strcmp(t, "--") == 0) {
			i++;
			break;
		}
		if (!is_option(t))
			break;
		o = lookup(global_opts, sizeof(global_opts) / sizeof(global_opts[0]), t, &v);
		if (!o) {
			/*
			 * Unknown global option: without "=value", the next
			 * argument is its value unless it names a subcommand
			 * (or is an option itself).
			 */
			if (!v && i + 1 < argc && !is_option(argv[i + 1]) &&
			    !ov_rt_known_subcommand(argv[i + 1]) &&
			    strcmp(argv[i + 1], "precreate"))
				i++;
			continue;
		}
		if (o->value && !v) {
			if (i + 1 >= argc)
				return ov_error_set(err, 0, "option %s needs a value", t);
			v = argv[++i];
		}
		set_global(a, o->id, v);
	}
	if (i >= argc)
		return 0; /* no subcommand: --version, --help, nothing */
	a->sub = i;
	if (strcmp(argv[i], "create") == 0)
		a->action = OV_RT_CREATE;
	else if (strcmp(argv[i], "run") == 0)
		a->action = OV_RT_RUN;
	else if (strcmp(argv[i], "precreate") == 0)
		a->action = OV_RT_PRECREATE;
	else if (strcmp(argv[i], "delete") == 0)
		a->action = OV_RT_DELETE;
	if (a->action == OV_RT_DELETE) {
		/* runc delete [--force|-f] ID; crun's options are the same. */
		for (int j = i + 1; j < argc; j++)
			if (!is_option(argv[j]) && strcmp(argv[j], "--") != 0)
				a->id = argv[j];
		return 0;
	}
	if (a->action == OV_RT_CREATE || a->action == OV_RT_RUN)
		return parse_create(argc, argv, i + 1, a, err);
	return 0;
}

/* -------------------------------------------------------- the real runtime */

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* 1: path is an executable regular file other than self; 0: it is self; -1 not usable. */
static int usable(const char *path, const struct stat *self)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
		return -1;
	if (self && same_file(&st, self))
		return 0;
	return 1;
}

/* Look name up in the PATH-style list search; skip self. */
static int search_for(const char *name, const char *search, const struct stat *self, char *out,
		      size_t size)
{
	const char *p = search;

	while (*p) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int n;

		if (len > 0) {
			n = snprintf(out, size, "%.*s/%s", (int)len, p, name);
			if (n > 0 && (size_t)n < size && out[0] == '/' && usable(out, self) == 1)
				return 0;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return -1;
}

static int named(const char *what, const char *path, const struct stat *self, char *out,
		 size_t size, ov_error *err)
{
	int u;

	if (path[0] != '/')
		return ov_error_set(err, 0, "%s \"%s\" is not an absolute path", what, path);
	u = usable(path, self);
	if (u < 0)
		return ov_error_set(err, errno ? errno : EACCES, "%s %s", what, path);
	if (u == 0)
		return ov_error_set(err, 0, "%s %s is oci-vtpm-runtime itself", what, path);
	if (snprintf(out, size, "%s", path) >= (int)size)
		return ov_error_set(err, ENAMETOOLONG, "%s", what);
	return 0;
}

int ov_rt_resolve(const char *configured, const char *env, const char *search, const char *self,
		  char *out, size_t size, ov_error *err)
{
	struct stat selfst;
	const struct stat *sp = NULL;

	if (self && stat(self, &selfst) == 0)
		sp = &selfst;
	errno = 0;
	if (configured && *configured)
		return named("runtime (settings)", configured, sp, out, size, err);
	if (env && *env) {
		if (strchr(env, '/'))
			return named("$" OV_RT_ENV, env, sp, out, size, err);
		if (search_for(env, search, sp, out, size) == 0)
			return 0;
		return ov_error_set(err, ENOENT, "$" OV_RT_ENV ": %s not found in %s", env, search);
	}
	if (search_for("runc", search, sp, out, size) == 0 ||
	    search_for("crun", search, sp, out, size) == 0)
		return 0;
	return ov_error_set(
	    err, 0,
	    "no OCI runtime: neither runc nor crun in %s (name one with \"runtime\" "
	    "in the settings or $" OV_RT_ENV ")",
	    search);
}

int ov_rt_config_location(const struct ov_rt_args *a, char **dir, char **name, ov_error *err)
{
	const char *c = a->config, *slash;

	*dir = *name = NULL;
	if (!c || strcmp(c, "config.json") == 0) {
		*dir = strdup(a->bundle ? a->bundle : ".");
		*name = strdup("config.json");
	} else if (!*c || c[strlen(c) - 1] == '/') {
		return ov_error_set(err, 0, "--config \"%s\" does not name a file", c);
	} else if ((slash = strrchr(c, '/')) == NULL) {
		*dir = strdup(".");
		*name = strdup(c);
	} else {
		*dir = slash == c ? strdup("/") : strndup(c, (size_t)(slash - c));
		*name = strdup(slash + 1);
	}
	if (!*dir || !*name) {
		free(*dir);
		free(*name);
		*dir = *name = NULL;
		return ov_error_set(err, ENOMEM, "config.json");
	}
	return 0;
}

char **ov_rt_state_argv(const char *path, char *const argv[], int sub, const char *id)
{
	size_t n = 0;
	char **out = calloc((size_t)(sub > 0 ? sub : 1) + 3, sizeof(*out));

	if (!out)
		return NULL;
	out[n++] = (char *)path;
	for (int i = 1; i < sub; i++) {
		const char *v = NULL;
		const struct opt *o =
		    is_option(argv[i])
			? lookup(global_opts, sizeof(global_opts) / sizeof(global_opts[0]), argv[i],
				 &v)
			: NULL;

		if (o && (o->id == O_LOG || o->id == O_LOG_FORMAT || o->id == O_DEBUG)) {
			if (o->value && !v)
				i++; /* and its value */
			continue;
		}
		out[n++] = argv[i];
	}
	out[n++] = (char *)"state";
	out[n++] = (char *)id;
	out[n] = NULL;
	return out;
}

int ov_rt_hook_path(const char *configured, char *out, size_t size, ov_error *err)
{
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (configured) {
		if (snprintf(out, size, "%s", configured) >= (int)size)
			return ov_error_set(err, ENAMETOOLONG, "hook");
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return ov_error_set(err, errno, "readlink /proc/self/exe");
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (!slash)
			return ov_error_set(err, 0, "/proc/self/exe: %s", self);
		*slash = '\0';
		if (snprintf(out, size, "%s/" OV_HOOK_NAME, self) >= (int)size)
			return ov_error_set(err, ENAMETOOLONG, "hook");
	}
	if (access(out, X_OK) < 0)
		return ov_error_set(
		    err, errno, "the hook %s (set \"hook\" in the settings to where it is)", out);
	return 0;
}

int ov_rt_root(const struct ov_rt_args *a, char *out, size_t size)
{
	char buf[PATH_MAX];

	if (!a->root || !*a->root || !realpath(a->root, buf) || strlen(buf) >= size)
		return -1;
	memcpy(out, buf, strlen(buf) + 1);
	return 0;
}

bool ov_rt_recorded(const struct ov_record *rec, const char *runtime, const char *root)
{
	return rec->runtime && rec->runtime_root && runtime && root &&
	       strcmp(rec->runtime, runtime) == 0 && strcmp(rec->runtime_root, root) == 0;
}
