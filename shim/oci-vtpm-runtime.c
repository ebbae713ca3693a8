/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci-vtpm-runtime: a runc-compatible OCI runtime shim. On `create` and
 * `run` of a bundle whose config.json asks for a vTPM (io.oci-vtpm.enable),
 * it starts the vTPMs and edits config.json (lib/prepare.c: devices or a
 * read-only socket mount, no hook) and then runs the real runtime with the
 * same argv, argv[0] aside; after a successful `delete` of such a
 * container it stops them. Everything else goes straight to the real
 * runtime with exec.
 *
 * create/run with a vTPM run the real runtime as a supervised child rather
 * than exec'ing it: when the runtime fails, or `run` returns in the
 * foreground, and the runtime does not know the container any more (so no
 * `delete` will ever come), the shim stops the vTPMs. Signals sent to the shim are passed on; its
 * exit status is the runtime's.
 *
 * `oci-vtpm-runtime precreate` is podman's precreate hook stage: config on
 * stdin, the same edit, the config on stdout (unchanged, byte for byte,
 * when it does not ask for a vTPM).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/runtime.h"
#include "oci-vtpm/prepare.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/spec.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/vtpm.h"

static const char prog[] = "oci-vtpm-runtime";

static const char help_text[] =
    "usage: oci-vtpm-runtime [RUNTIME OPTIONS] COMMAND [ARGS]   (as runc)\n"
    "       oci-vtpm-runtime precreate < config.json > config.json\n"
    "       oci-vtpm-runtime --help | --version\n"
    "\n"
    "An OCI runtime shim: on create and run of a bundle whose config.json asks\n"
    "for a vTPM (io.oci-vtpm.enable), it starts the vTPM, puts its devices or\n"
    "socket mount into config.json, then runs the real runtime (the settings'\n"
    "\"runtime\", $OCI_VTPM_RUNTIME, else runc or crun on PATH) with the same\n"
    "arguments; after the runtime's delete it stops the vTPM. Every other\n"
    "command goes to the real runtime unchanged. --version prints\n"
    "this line's version, then the real runtime's --version output.\n"
    "See oci-vtpm-runtime(8) and oci-vtpm.json(5).\n";

/* An error of ours also goes to the runtime log the engine reads (--log),
 * in its format, as runc would write it. */
static void runtime_log(const struct ov_rt_args *a, const char *msg)
{
	cleanup_close int fd = -1;
	cleanup_free char *line = NULL;
	char when[64];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	if (!a->log || !*a->log)
		return;
	fd = open(a->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (a->log_format && strcmp(a->log_format, "json") == 0) {
		cleanup_json json_object *o = json_object_new_object();

		if (!o)
			return;
		json_object_object_add(o, "level", json_object_new_string("error"));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		json_object_object_add(o, "time", json_object_new_string(when));
		n = asprintf(&line, "%s\n",
			     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	} else {
		n = asprintf(&line, "time=\"%s\" level=error msg=\"%s\"\n", when, msg);
	}
	if (n > 0 && ov_write_all(fd, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

static int fail(const struct ov_rt_args *a, const ov_error *err)
{
	char msg[OV_ERROR_MAX + 64];

	ov_error_log(err);
	snprintf(msg, sizeof(msg), "%s: %s", prog, err->msg);
	runtime_log(a, msg);
	return 1;
}

/* $OCI_VTPM_CONFIG as an absolute path, for the hooks' env; NULL if unset. */
static int settings_env(char **out, ov_error *err)
{
	const char *p = getenv(OV_CONFIG_ENV);

	*out = NULL;
	if (!p || !*p)
		return 0;
	*out = realpath(p, NULL);
	if (!*out)
		return ov_error_set(err, errno, "$" OV_CONFIG_ENV " %s", p);
	return 0;
}

static int load_settings(struct ov_settings *s, ov_error *err)
{
	if (ov_settings_load(NULL, s, err) < 0)
		return -1;
	ov_log_set_level(s->log_level);
	if (s->log_file && ov_log_open_file(s->log_file, err) < 0)
		return -1;
	return 0;
}

/* podman's precreate stage: config on stdin, edited config on stdout. */
static int precreate_main(const struct ov_rt_args *a)
{
	struct ov_settings s = {0};
	cleanup_free char *buf = NULL, *out = NULL, *cfg = NULL;
	char hook[PATH_MAX];
	struct ov_prepare_result res;
	ov_error err = {0};
	size_t len, out_len;
	int ret = 1;

	if (ov_read_fd(STDIN_FILENO, OV_CONFIG_MAX, &buf, &len, &err) < 0) {
		ov_error_wrap(&err, "reading the config from stdin");
		goto out;
	}
	if (load_settings(&s, &err) < 0 || settings_env(&cfg, &err) < 0 ||
	    ov_rt_hook_path(s.hook, hook, sizeof(hook), &err) < 0)
		goto out;
	/* podman runs this stage, then the runtime's create: while it lives,
	 * the vTPMs this may start wait for their container. */
	struct ov_prepare e = {.s = &s, .hook = hook, .config = cfg, .holder = getppid()};
	if (ov_prepare_text(buf, len, &e, &out, &out_len, &res, &err) < 0)
		goto out;
	if (!out) {
		out = take_ptr(buf);
		out_len = len;
	}
	if (ov_write_all(STDOUT_FILENO, out, out_len) < 0) {
		ov_error ignored = {0};

		ov_error_set(&err, errno, "writing the config to stdout");
		if (res.precreated && ov_vtpm_stop(&s, res.run_name, &ignored) < 0)
			ov_warn("undoing the vTPM started before the container: %s", ignored.msg);
		goto out;
	}
	ret = 0;
out:
	if (ret)
		fail(a, &err);
	ov_settings_free(&s);
	return ret;
}

/* Edit the bundle's config.json for create/run. Returns 1 when it asks for
 * a vTPM, 0 when not (nothing touched), -1 on error. *fresh: this process
 * started the vTPMs (not a retried create's, running already). */
static int edit_bundle(const struct ov_rt_args *a, const struct ov_settings *s, bool *fresh,
		       ov_error *err)
{
	cleanup_free char *dir = NULL, *name = NULL, *bundle = NULL, *cfg = NULL;
	cleanup_close int dfd = -1;
	struct ov_prepare_result res;
	char hook[PATH_MAX];
	int wants;

	*fresh = false;
	if (ov_rt_config_location(a, &dir, &name, err) < 0)
		return -1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ov_error_set(err, errno, "opening %s", dir);
	wants = ov_spec_file_wants_vtpm(dfd, name, s, err);
	if (wants <= 0)
		return wants;
	if (a->unknown)
		return ov_error_set(
		    err, 0,
		    "option %s is unknown to %s, which cannot tell where the "
		    "container id is; not starting a container that asks for a vTPM",
		    a->unknown, prog);
	if (!ov_container_id_valid(a->id))
		return ov_error_set(err, 0, "invalid container id \"%.64s\"", a->id);
	bundle = realpath(a->bundle ? a->bundle : ".", NULL);
	if (!bundle)
		return ov_error_set(err, errno, "bundle %s", a->bundle ? a->bundle : ".");
	if (settings_env(&cfg, err) < 0 || ov_rt_hook_path(s->hook, hook, sizeof(hook), err) < 0)
		return -1;
	struct ov_prepare e = {
	    .s = s, .hook = hook, .config = cfg, .id = a->id, .bundle = bundle, .holder = getpid()};
	if (ov_prepare_file(dfd, name, &e, &res, err) < 0)
		return -1;
	ov_debug("config.json of %s edited%s", bundle,
		 res.precreated ? "; vTPM started before the container" : "");
	*fresh = res.precreated;
	return res.enabled ? 1 : 0;
}

static bool has_run_dir(const struct ov_settings *s, const char *id)
{
	cleanup_close int run = open(s->run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	return run >= 0 && ov_instance_exists(run, id);
}

/* Did the runtime, by how it ended, leave no container of this create or
 * run behind? runc and crun remove what a failed create or run made, and
 * a foreground run's container once it exited (unless --keep). A runtime
 * killed by a signal may leave one: not known. */
static bool left_none(const struct ov_rt_args *a, int wstatus)
{
	if (!WIFEXITED(wstatus))
		return false;
	if (WEXITSTATUS(wstatus) != 0)
		return true;
	return a->action == OV_RT_RUN && !a->detach && !a->keep;
}

/*
 * After the runtime: when it failed, or a foreground `run` is over, and it
 * does not know the container (any more), nobody will run the poststop
 * hook: do its work. A container it still knows is left alone (it may be
 * another one with the same id); its delete runs poststop.
 *
 * Vtpms this process started (fresh) are this container's alone: when the
 * runtime's way of ending says it left no container, they are stopped
 * without asking it (a failure such as "the id exists" is about another
 * container, which never had them). Otherwise `<runtime> state` tells.
 */
static void clean_up_after(const struct ov_rt_args *a, const struct ov_settings *s,
			   const char *runtime, char *const argv[], int wstatus, bool fresh)
{
	bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
	cleanup_free char **state = NULL;
	cleanup_free char *bundle = NULL;
	ov_error err = {0};
	int st;

	if (ok && !(a->action == OV_RT_RUN && !a->detach))
		return;
	if (!has_run_dir(s, a->id))
		return;
	if (!(fresh && left_none(a, wstatus))) {
		state = ov_rt_state_argv(runtime, argv, a->sub, a->id);
		if (state && ov_rt_run_quiet(runtime, state, &st, &err) == 0 && WIFEXITED(st) &&
		    WEXITSTATUS(st) == 0) {
			ov_debug("%s still knows the container: its delete stops the vTPM",
				 runtime);
			return;
		}
	}
	/* Another runtime root may run a container with this id: only this
	 * bundle's vTPM is stopped. */
	bundle = realpath(a->bundle ? a->bundle : ".", NULL);
	if (ov_vtpm_stop_owned(s, a->id, bundle, 0, false, &err) < 0)
		ov_warn("cleaning up after %s: %s", runtime, err.msg);
	else if (!ok)
		ov_info("%s failed; the vTPM it was to get is stopped", runtime);
}

/* Leave the way the runtime did: its exit code, or its signal. */
static int exit_like(int wstatus)
{
	if (WIFSIGNALED(wstatus)) {
		int sig = WTERMSIG(wstatus);
		struct rlimit none = {0, 0};
		sigset_t one;

		setrlimit(RLIMIT_CORE, &none);
		signal(sig, SIG_DFL);
		sigemptyset(&one);
		sigaddset(&one, sig);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		raise(sig);
		return 128 + sig;
	}
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 1;
}

/* What `<runtime> state` says of the container (its OCI state), or NULL
 * when the runtime does not know it. */
static json_object *runtime_state(const struct ov_rt_args *a, const char *runtime,
				  char *const argv[])
{
	cleanup_free char **state = ov_rt_state_argv(runtime, argv, a->sub, a->id);
	cleanup_free char *text = NULL;
	ov_error err = {0};

	if (!state || ov_rt_output(runtime, state, OV_STATE_MAX, &text, &err) < 0)
		return NULL;
	return json_tokener_parse(text);
}

/* The pid a successful create (or run -d) recorded: from --pid-file when
 * the engine asked for one, else from `<runtime> state`. 0: none (a run -d
 * whose container is gone already), -1: unknown. */
static pid_t container_pid(const struct ov_rt_args *a, const char *runtime, char *const argv[])
{
	cleanup_free char *text = NULL;
	cleanup_json json_object *o = NULL;
	json_object *v;
	ov_error err = {0};
	long pid = 0;

	if (a->pid_file) {
		if (ov_read_file_at(AT_FDCWD, a->pid_file, 64, &text, NULL, &err) < 0)
			return -1;
		pid = strtol(text, NULL, 10);
		return pid > 0 && pid <= INT32_MAX ? (pid_t)pid : -1;
	}
	o = runtime_state(a, runtime, argv);
	if (!o || !json_object_object_get_ex(o, "pid", &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	pid = json_object_get_int64(v);
	return pid >= 0 && pid <= INT32_MAX ? (pid_t)pid : -1;
}

/*
 * The container is created: its init, from now on, keeps the vTPMs in use
 * (gc). A foreground `run` returns only when the container is gone: this
 * process stands for it meanwhile. The runtime and its root are recorded
 * with it: its delete knows it by them (delete_main).
 */
static void record_container(const struct ov_rt_args *a, const struct ov_settings *s,
			     const char *runtime, char *const argv[])
{
	pid_t pid =
	    a->action == OV_RT_RUN && !a->detach ? getpid() : container_pid(a, runtime, argv);
	char root[PATH_MAX];
	struct ov_vtpm_runtime rt = {.path = runtime,
				     .root = ov_rt_root(a, root, sizeof(root)) == 0 ? root : NULL};
	ov_error err = {0};

	if (pid == 0)
		ov_debug("the container is gone already: its delete stops the vTPM");
	else if (pid < 0)
		ov_warn("%s did not say the container's pid: the vTPM is in use only while this "
			"program runs",
			runtime);
	else if (ov_vtpm_adopt_runtime(s, a->id, pid, &rt, &err) < 0)
		ov_warn("recording the container: %s", err.msg);
}

/* Whose container `delete` names, before the runtime forgets it: another
 * runtime root may run one with the same id, and its vTPM is not this
 * delete's to stop (ov_vtpm_stop_owned). The runtime and root the shim
 * recorded at create tell (*bundle: the record's); else `<runtime>
 * state`'s bundle (a runtime that names none, not runc or crun: NULL, the
 * id's vTPM is stopped, as before). *idle: the container's init is gone
 * (stopped): its vTPMs serve nobody, whatever the delete does. */
static void delete_owner(const struct ov_rt_args *a, const struct ov_settings *s,
			 const char *runtime, char **argv, char **bundle, bool *idle)
{
	cleanup_json json_object *state = NULL;
	struct ov_record rec;
	char root[PATH_MAX];
	ov_error err = {0};
	json_object *v;

	*bundle = NULL;
	*idle = false;
	if (ov_instance_read(s->run_dir, a->id, &rec, &err) < 0)
		return; /* nothing recorded: nothing to stop */
	if (ov_rt_root(a, root, sizeof(root)) == 0 && ov_rt_recorded(&rec, runtime, root)) {
		*bundle = take_ptr(rec.bundle);
		/* Its init, not this shim standing for a foreground run. */
		*idle = rec.container_pid > 0 && rec.container_pid != rec.holder_pid &&
			!ov_proc_alive(rec.container_pid, rec.container_starttime);
		ov_record_free(&rec);
		return;
	}
	ov_record_free(&rec);
	if ((state = runtime_state(a, runtime, argv)) &&
	    json_object_object_get_ex(state, "bundle", &v) &&
	    json_object_is_type(v, json_type_string))
		*bundle = strdup(json_object_get_string(v));
}

/* `delete` of a container whose vTPMs the shim started: the runtime
 * first; when it deleted the container, stop them (a named one archived),
 * as its poststop hook would have. Without stop_async, those of a stopped
 * container are stopped while the runtime deletes it. */
static int delete_main(const struct ov_rt_args *a, struct ov_settings *s, const char *runtime,
		       char **argv)
{
	cleanup_free char *bundle = NULL;
	struct ov_rt_child child;
	ov_error err = {0}, stop_err = {0};
	int wstatus, stopped = 1;
	bool idle;

	delete_owner(a, s, runtime, argv, &bundle, &idle);
	/* A detached stop (stop_async) is forked only after the runtime's
	 * delete: its worker would take the CPU the delete waits for. */
	idle = idle && !s->stop_async;
	if (ov_rt_start(runtime, argv, &child, &err) < 0)
		return fail(a, &err);
	if (idle)
		stopped = ov_vtpm_stop_owned(s, a->id, bundle, 0, s->stop_async, &stop_err);
	if (ov_rt_wait(&child, &wstatus, &err) < 0)
		return fail(a, &err);
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 && !idle)
		stopped = ov_vtpm_stop_owned(s, a->id, bundle, 0, s->stop_async, &stop_err);
	if (stopped < 0 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
		if (stop_err.code != EBUSY) {
			ov_settings_free(s);
			return fail(a, &stop_err);
		}
		ov_warn("%s", stop_err.msg); /* the runtime's delete succeeded */
	} else if (stopped < 0) {
		ov_warn("%s", stop_err.msg);
	}
	ov_settings_free(s);
	return exit_like(wstatus);
}

/* --version and --help, when they are the only argument: ours, then for
 * --version the real runtime's, so an engine that parses `RUNTIME
 * --version` (podman info, docker info) still finds runc's or crun's
 * lines. Returns -1 when argv is anything else. */
static int own_option(char **argv, int argc, ov_error *err)
{
	struct ov_settings s = {0};
	char runtime[PATH_MAX];
	char *args[] = {runtime, (char *)"--version", NULL};

	if (argc != 2)
		return -1;
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(help_text, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") != 0)
		return -1;
	printf("%s %s\n", prog, OV_VERSION);
	fflush(stdout);
	if (load_settings(&s, err) < 0 ||
	    ov_rt_resolve(s.runtime, getenv(OV_RT_ENV), OV_RT_SEARCH_PATH, "/proc/self/exe",
			  runtime, sizeof(runtime), err) < 0) {
		ov_settings_free(&s);
		return 0;
	}
	ov_settings_free(&s);
	execv(runtime, args);
	ov_error_set(err, errno, "executing %s", runtime);
	return 0;
}

int main(int argc, char **argv)
{
	struct ov_rt_args a;
	struct ov_settings s = {0};
	char runtime[PATH_MAX];
	ov_error err = {0};
	int wstatus, wants = 0;
	bool parsed, fresh = false;

	ov_log_init(prog);
	if (own_option(argv, argc, &err) >= 0) {
		memset(&a, 0, sizeof(a));
		return err.msg[0] ? fail(&a, &err) : 0;
	}
	/* A command line we cannot read goes to the runtime as it is: it
	 * says what is wrong with it. */
	parsed = ov_rt_parse(argc, argv, &a, &err) == 0;
	if (!parsed)
		memset(&a, 0, sizeof(a));
	if (a.action == OV_RT_PRECREATE)
		return precreate_main(&a);
	if (load_settings(&s, &err) < 0 ||
	    ov_rt_resolve(s.runtime, getenv(OV_RT_ENV), OV_RT_SEARCH_PATH, "/proc/self/exe",
			  runtime, sizeof(runtime), &err) < 0)
		return fail(&a, &err);

	if ((a.action == OV_RT_CREATE || a.action == OV_RT_RUN) && !a.help && a.id) {
		ov_log_set_id(a.id);
		wants = edit_bundle(&a, &s, &fresh, &err);
		if (wants < 0)
			return fail(&a, &err);
	}
	argv[0] = runtime;
	if (a.action == OV_RT_DELETE && a.id && ov_container_id_valid(a.id) &&
	    has_run_dir(&s, a.id)) {
		ov_log_set_id(a.id);
		return delete_main(&a, &s, runtime, argv);
	}
	if (wants) {
		if (a.action == OV_RT_RUN && !a.detach)
			record_container(&a, &s, runtime, argv);
		if (ov_rt_supervise(runtime, argv, &wstatus, &err) < 0) {
			clean_up_after(&a, &s, runtime, argv, 1 << 8, fresh);
			return fail(&a, &err);
		}
		if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 &&
		    (a.action == OV_RT_CREATE || a.detach))
			record_container(&a, &s, runtime, argv);
		clean_up_after(&a, &s, runtime, argv, wstatus, fresh);
		ov_settings_free(&s);
		return exit_like(wstatus);
	}
	ov_settings_free(&s);
	execv(runtime, argv);
	ov_error_set(&err, errno, "executing %s", runtime);
	return fail(&a, &err);
}
