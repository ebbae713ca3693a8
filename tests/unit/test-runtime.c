/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm-runtime's command line, runtime lookup and supervision. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <limits.h>

#include "oci-vtpm/runtime.h"
#include "oci-vtpm/store.h"
#include "unit.h"

#define MAXARGS 32

/* Parse the NULL-terminated words as argv (argv[0] is the program). */
static int parse(struct ov_rt_args *a, ov_error *err, ...)
{
	static char *argv[MAXARGS];
	va_list ap;
	int argc = 0;

	argv[argc++] = (char *)"oci-vtpm-runtime";
	va_start(ap, err);
	for (char *w; (w = va_arg(ap, char *)) != NULL && argc < MAXARGS - 1;)
		argv[argc++] = w;
	va_end(ap);
	argv[argc] = NULL;
	return ov_rt_parse(argc, argv, a, err);
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void test_create_run(void)
{
	struct ov_rt_args a;
	ov_error err = {0};

	CHECK(parse(&a, &err, "run", "-b", "/b", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_RUN && a.sub == 1);
	CHECK(streq(a.bundle, "/b") && streq(a.id, "c1") && !a.detach && !a.unknown);

	CHECK(parse(&a, &err, "run", "--bundle=/b", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_RUN && streq(a.bundle, "/b") && streq(a.id, "c1"));

	CHECK(parse(&a, &err, "create", "--bundle", "/b", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && streq(a.bundle, "/b") && streq(a.id, "c1"));

	/* Go's flag package: one dash for long options, -b=DIR. */
	CHECK(parse(&a, &err, "create", "-bundle", "/b", "c1", NULL) == 0);
	CHECK(streq(a.bundle, "/b") && streq(a.id, "c1"));
	CHECK(parse(&a, &err, "create", "-b=/b", "c1", NULL) == 0);
	CHECK(streq(a.bundle, "/b") && streq(a.id, "c1"));
	/* argp (crun): a short option's value glued on. */
	CHECK(parse(&a, &err, "create", "-b/b", "c1", NULL) == 0);
	CHECK(streq(a.bundle, "/b") && streq(a.id, "c1"));

	/* The global --root's value is not the subcommand. */
	CHECK(parse(&a, &err, "--root", "R", "run", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_RUN && a.sub == 3 && streq(a.root, "R") && streq(a.id, "c1"));
	CHECK(!a.bundle);
	CHECK(parse(&a, &err, "--root", "run", "create", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && a.sub == 3 && streq(a.root, "run"));
	CHECK(parse(&a, &err, "--root=R", "run", "c1", NULL) == 0);
	CHECK(a.sub == 2 && streq(a.root, "R"));
	CHECK(parse(&a, &err, "-root", "R", "run", "c1", NULL) == 0);
	CHECK(a.sub == 3 && streq(a.root, "R") && streq(a.id, "c1"));

	/* A bundle named "create". */
	CHECK(parse(&a, &err, "create", "--bundle", "create", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && a.sub == 1);
	CHECK(streq(a.bundle, "create") && streq(a.id, "c1"));
	CHECK(parse(&a, &err, "run", "-b", "run", "run", NULL) == 0);
	CHECK(a.action == OV_RT_RUN && streq(a.bundle, "run") && streq(a.id, "run"));

	/* Boolean global options take no value. */
	CHECK(parse(&a, &err, "--log", "/x", "--debug", "create", "--pid-file", "p", "c1", NULL) ==
	      0);
	CHECK(a.action == OV_RT_CREATE && a.sub == 4);
	CHECK(streq(a.log, "/x") && streq(a.id, "c1") && !a.bundle);
	CHECK(parse(&a, &err, "--systemd-cgroup", "--debug=true", "--log-format", "json", "run",
		    "c1", NULL) == 0);
	CHECK(a.action == OV_RT_RUN && a.sub == 5 && streq(a.log_format, "json"));
	/* runc's --rootless and --criu take a value; crun's --cgroup-manager too. */
	CHECK(parse(&a, &err, "--rootless", "true", "--criu", "/c", "create", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && a.sub == 5);
	CHECK(parse(&a, &err, "--cgroup-manager", "disabled", "--root", "/r", "run", "-d", "c1",
		    NULL) == 0);
	CHECK(a.action == OV_RT_RUN && a.sub == 5 && a.detach && streq(a.id, "c1"));
	CHECK(parse(&a, &err, "--cgroup-manager=disabled", "run", "c1", NULL) == 0);
	CHECK(a.sub == 2 && a.action == OV_RT_RUN);

	/* Every option of create/run, with and without a value. */
	CHECK(parse(&a, &err, "run", "--console-socket", "/s", "--pid-file=/p", "--no-pivot",
		    "--no-new-keyring", "--preserve-fds", "2", "--no-subreaper", "--keep",
		    "--detach", "-f", "other.json", "c1", NULL) == 0);
	CHECK(a.detach && streq(a.config, "other.json") && streq(a.id, "c1") && !a.unknown);
	CHECK(!a.help && a.keep && streq(a.pid_file, "/p"));
	CHECK(parse(&a, &err, "run", "c1", NULL) == 0);
	CHECK(!a.keep && !a.detach && !a.pid_file);

	/* Parsing stops at the id, like runc and crun. */
	CHECK(parse(&a, &err, "create", "c1", "--bundle", "/b", NULL) == 0);
	CHECK(streq(a.id, "c1") && !a.bundle);
	CHECK(parse(&a, &err, "create", "--", "-weird", NULL) == 0);
	CHECK(streq(a.id, "-weird"));

	/* Unknown options are remembered (the shim refuses to guess for a vTPM). */
	CHECK(parse(&a, &err, "create", "--newflag", "c1", NULL) == 0);
	CHECK(streq(a.unknown, "--newflag") && streq(a.id, "c1"));
	CHECK(parse(&a, &err, "create", "--new=v", "-b", "/b", "c1", NULL) == 0);
	CHECK(streq(a.unknown, "--new=v") && streq(a.bundle, "/b") && streq(a.id, "c1"));

	/* --help creates nothing; a missing id is the runtime's to refuse. */
	CHECK(parse(&a, &err, "create", "--help", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && a.help && !a.id);
	CHECK(parse(&a, &err, "run", "-h", "c1", NULL) == 0);
	CHECK(a.help);
	CHECK(parse(&a, &err, "create", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && !a.id);
	CHECK(parse(&a, &err, "create", "--bundle=", "c1", NULL) == 0);
	CHECK(!a.bundle && streq(a.id, "c1"));

	/* An option without its value. */
	CHECK(parse(&a, &err, "create", "--bundle", NULL) < 0);
	CHECK_ERR(&err, "--bundle needs a value");
	CHECK(parse(&a, &err, "--root", NULL) < 0);
	CHECK_ERR(&err, "--root needs a value");
}

static void test_pass_through(void)
{
	static const char *const subs[] = {"state", "list",  "kill",	   "exec",	"features",
					   "ps",    "start", "checkpoint", "restore",	"events",
					   "spec",  "pause", "update",	   "frobnicate"};
	struct ov_rt_args a;
	ov_error err = {0};

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		CHECK(parse(&a, &err, "--root", "/r", subs[i], "-b", "x", "c1", NULL) == 0);
		CHECK(a.action == OV_RT_PASS && a.sub == 3);
		CHECK(!a.bundle && !a.id); /* not read for pass-through */
	}
	CHECK(parse(&a, &err, "kill", "c1", "KILL", NULL) == 0);
	CHECK(a.action == OV_RT_PASS && a.sub == 1);
	/* delete: only its id is read (the shim stops the vTPMs after it). */
	CHECK(parse(&a, &err, "delete", "--force", "create", NULL) == 0);
	CHECK(a.action == OV_RT_DELETE && streq(a.id, "create") && !a.bundle);
	CHECK(parse(&a, &err, "--root", "/r", "delete", "-f", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_DELETE && a.sub == 3 && streq(a.id, "c1"));

	/* No subcommand. */
	CHECK(parse(&a, &err, NULL) == 0);
	CHECK(a.action == OV_RT_PASS && a.sub == 0);
	CHECK(parse(&a, &err, "--version", NULL) == 0);
	CHECK(a.action == OV_RT_PASS && a.sub == 0);
	CHECK(parse(&a, &err, "-v", NULL) == 0);
	CHECK(a.sub == 0);
	CHECK(parse(&a, &err, "--root", "/r", "--debug", NULL) == 0);
	CHECK(a.sub == 0 && streq(a.root, "/r"));

	/* Unknown global options: a value unless the next word is a subcommand. */
	CHECK(parse(&a, &err, "--newglobal", "v", "create", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && a.sub == 3 && streq(a.id, "c1"));
	CHECK(parse(&a, &err, "--newbool", "create", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_CREATE && a.sub == 2);
	CHECK(parse(&a, &err, "--newglobal=v", "run", "c1", NULL) == 0);
	CHECK(a.action == OV_RT_RUN && a.sub == 2);

	CHECK(parse(&a, &err, "precreate", NULL) == 0);
	CHECK(a.action == OV_RT_PRECREATE && a.sub == 1);
	CHECK(ov_rt_known_subcommand("checkpoint") && !ov_rt_known_subcommand("frobnicate"));
}

static void check_location(const char *bundle, const char *config, const char *want_dir,
			   const char *want_name)
{
	struct ov_rt_args a = {.bundle = bundle, .config = config};
	char *dir = NULL, *name = NULL;
	ov_error err = {0};

	CHECK(ov_rt_config_location(&a, &dir, &name, &err) == 0);
	CHECK(streq(dir, want_dir) && streq(name, want_name));
	if (!streq(dir, want_dir) || !streq(name, want_name))
		fprintf(stderr, "  got %s / %s\n", dir, name);
	free(dir);
	free(name);
}

static void test_config_location(void)
{
	struct ov_rt_args a = {.config = "dir/"};
	char *dir, *name;
	ov_error err = {0};

	check_location(NULL, NULL, ".", "config.json");
	check_location("/b", NULL, "/b", "config.json");
	check_location("/b", "config.json", "/b", "config.json");
	/* crun: any other --config is relative to the current directory */
	check_location("/b", "other.json", ".", "other.json");
	check_location("/b", "sub/x.json", "sub", "x.json");
	check_location("/b", "/etc/x.json", "/etc", "x.json");
	check_location("/b", "/x.json", "/", "x.json");
	CHECK(ov_rt_config_location(&a, &dir, &name, &err) < 0);
	CHECK_ERR(&err, "does not name a file");
}

static void test_state_argv(void)
{
	char *argv[] = {"oci-vtpm-runtime",
			"--root",
			"/r",
			"--log",
			"/l.json",
			"--log-format",
			"json",
			"--debug",
			"--systemd-cgroup",
			"--log=/l2",
			"--cgroup-manager=disabled",
			"create",
			"--bundle",
			"/b",
			"c1",
			NULL};
	char **s = ov_rt_state_argv("/usr/bin/runc", argv, 11, "c1");
	const char *want[] = {
	    "/usr/bin/runc", "--root", "/r", "--systemd-cgroup", "--cgroup-manager=disabled",
	    "state",	     "c1",     NULL};
	size_t i;

	CHECK(s != NULL);
	if (!s)
		return;
	for (i = 0; want[i]; i++) {
		CHECK(streq(s[i], want[i]));
		if (!streq(s[i], want[i]))
			fprintf(stderr, "  state argv[%zu]: %s, want %s\n", i, s[i], want[i]);
	}
	CHECK(s[i] == NULL);
	free(s);

	s = ov_rt_state_argv("/usr/bin/runc", argv, 0, "c1");
	CHECK(s && streq(s[0], "/usr/bin/runc") && streq(s[1], "state") && streq(s[2], "c1") &&
	      !s[3]);
	free(s);
}

static void write_exe(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	CHECK(fd >= 0);
	CHECK(write(fd, "#!/bin/sh\nexit 0\n", 17) == 17);
	close(fd);
	chmod(path, mode);
}

static void test_resolve(void)
{
	char dir[] = "/tmp/ov-test-runtime.XXXXXX", d1[256], d2[256], d3[256], p[512], search[800];
	char out[512], want[512];
	ov_error err = {0};

	CHECK(mkdtemp(dir) != NULL);
	snprintf(d1, sizeof(d1), "%s/one", dir);
	snprintf(d2, sizeof(d2), "%s/two", dir);
	snprintf(d3, sizeof(d3), "%s/three", dir);
	CHECK(mkdir(d1, 0755) == 0 && mkdir(d2, 0755) == 0 && mkdir(d3, 0755) == 0);
	snprintf(search, sizeof(search), "%s::%s:relative:%s", d1, d2, d3);

	/* Nothing there. */
	CHECK(ov_rt_resolve(NULL, NULL, search, NULL, out, sizeof(out), &err) < 0);
	CHECK_ERR(&err, "neither runc nor crun");

	/* crun only; a runc that is not executable does not count. */
	snprintf(p, sizeof(p), "%s/crun", d2);
	write_exe(p, 0755);
	snprintf(p, sizeof(p), "%s/runc", d1);
	write_exe(p, 0644);
	CHECK(ov_rt_resolve(NULL, NULL, search, NULL, out, sizeof(out), &err) == 0);
	snprintf(want, sizeof(want), "%s/crun", d2);
	CHECK(streq(out, want));

	/* runc comes before crun. */
	snprintf(p, sizeof(p), "%s/runc", d3);
	write_exe(p, 0755);
	CHECK(ov_rt_resolve(NULL, NULL, search, NULL, out, sizeof(out), &err) == 0);
	CHECK(streq(out, p));

	/* ... unless runc is this program: then it is skipped. */
	CHECK(ov_rt_resolve(NULL, NULL, search, p, out, sizeof(out), &err) == 0);
	CHECK(streq(out, want));

	/* $OCI_VTPM_RUNTIME: a name looked up, or a path. */
	CHECK(ov_rt_resolve(NULL, "crun", search, NULL, out, sizeof(out), &err) == 0);
	CHECK(streq(out, want));
	CHECK(ov_rt_resolve(NULL, "nosuch", search, NULL, out, sizeof(out), &err) < 0);
	CHECK_ERR(&err, "nosuch not found");
	CHECK(ov_rt_resolve(NULL, want, search, NULL, out, sizeof(out), &err) == 0);
	CHECK(streq(out, want));
	CHECK(ov_rt_resolve(NULL, "rel/crun", search, NULL, out, sizeof(out), &err) < 0);
	CHECK_ERR(&err, "not an absolute path");
	CHECK(ov_rt_resolve(NULL, want, search, want, out, sizeof(out), &err) < 0);
	CHECK_ERR(&err, "is oci-vtpm-runtime itself");

	/* The settings come first, and must be usable. */
	CHECK(ov_rt_resolve(p, want, search, NULL, out, sizeof(out), &err) == 0);
	CHECK(streq(out, p));
	snprintf(p, sizeof(p), "%s/runc", d1); /* not executable */
	CHECK(ov_rt_resolve(p, NULL, search, NULL, out, sizeof(out), &err) < 0);
	CHECK_ERR(&err, "runtime (settings)");
	CHECK(ov_rt_resolve("/nonexistent/runc", NULL, search, NULL, out, sizeof(out), &err) < 0);
	CHECK_ERR(&err, "No such file");

	/* The real search path finds the real runc. */
	CHECK(ov_rt_resolve(NULL, NULL, OV_RT_SEARCH_PATH, NULL, out, sizeof(out), &err) == 0);
	CHECK(access(out, X_OK) == 0);

	snprintf(p, sizeof(p), "rm -rf '%s'", dir);
	CHECK(system(p) == 0);
}

static sigset_t blocked_now(void)
{
	sigset_t s;

	sigprocmask(SIG_BLOCK, NULL, &s);
	return s;
}

static void test_supervise(void)
{
	char *exit3[] = {"sh", "-c", "exit 3", NULL};
	char *missing[] = {"nope", NULL};
	/* The child asks its parent (this test, the supervisor) to pass a
	 * SIGTERM on, and traps it. */
	char *trap[] = {"sh", "-c",
			"trap 'exit 42' TERM; kill -TERM $PPID; i=0; "
			"while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; exit 1",
			NULL};
	char *die[] = {"sh", "-c",
		       "kill -USR1 $PPID; i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); "
		       "done; exit 1",
		       NULL};
	char *listen[] = {"sh", "-c", "[ \"$LISTEN_PID\" = \"$$\" ] && exit 7; exit 1", NULL};
	char *quiet[] = {"sh", "-c",
			 /* SIGINT, SIGTERM, SIGCHLD not blocked (bits 1, 14, 16) */
			 "b=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status); "
			 "[ $((0x$b & 0x14002)) -eq 0 ] || exit 1; echo should-not-show; exit 5",
			 NULL};
	sigset_t orig = blocked_now(), after;
	ov_error err = {0};
	char pid[32];
	int st;

	CHECK(ov_rt_supervise("/bin/sh", exit3, &st, &err) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);

	CHECK(ov_rt_supervise("/nonexistent/runc", missing, &st, &err) < 0);
	CHECK_ERR(&err, "executing /nonexistent/runc: No such file");

	CHECK(ov_rt_supervise("/bin/sh", trap, &st, &err) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);

	CHECK(ov_rt_supervise("/bin/sh", die, &st, &err) == 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1);

	/* It returns with the forwarded signals blocked, for the cleanup. */
	after = blocked_now();
	CHECK(sigismember(&after, SIGTERM) == 1 && sigismember(&after, SIGINT) == 1);
	CHECK(sigismember(&after, SIGCHLD) == sigismember(&orig, SIGCHLD));

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	CHECK(ov_rt_supervise("/bin/sh", listen, &st, &err) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
	unsetenv("LISTEN_PID");

	/* The quiet run gets the signals unblocked (and prints nowhere). */
	CHECK(ov_rt_run_quiet("/bin/sh", quiet, &st, &err) == 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
	CHECK(ov_rt_run_quiet("/nonexistent", missing, &st, &err) < 0);

	sigprocmask(SIG_SETMASK, &orig, NULL);
}

/* In two steps: a signal sent between them waits, then is passed on. */
static void test_start_wait(void)
{
	char *slow[] = {"sh", "-c",
			"trap 'exit 42' TERM; i=0; while [ $i -lt 100 ]; do sleep 0.1; "
			"i=$((i+1)); done; exit 1",
			NULL};
	char *missing[] = {"nope", NULL};
	sigset_t orig = blocked_now();
	struct ov_rt_child c;
	ov_error err = {0};
	int st = 0;

	CHECK(ov_rt_start("/bin/sh", slow, &c, &err) == 0);
	kill(getpid(), SIGTERM); /* blocked until ov_rt_wait */
	CHECK(ov_rt_wait(&c, &st, &err) == 0);
	CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 42) ||
	      (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM));
	CHECK(ov_rt_start("/nonexistent/runc", missing, &c, &err) < 0);
	CHECK_ERR(&err, "executing /nonexistent/runc");
	sigprocmask(SIG_SETMASK, &orig, NULL);
}

/* The runtime root a record names: one directory, however spelled. */
static void test_recorded(void)
{
	struct ov_rt_args a = {0};
	struct ov_record rec = {.runtime = "/usr/sbin/runc", .runtime_root = "/tmp"};
	char root[PATH_MAX];

	CHECK(ov_rt_root(&a, root, sizeof(root)) < 0); /* no --root */
	a.root = "/nonexistent/root";
	CHECK(ov_rt_root(&a, root, sizeof(root)) < 0);
	a.root = "/tmp/../tmp/.";
	CHECK(ov_rt_root(&a, root, sizeof(root)) == 0 && streq(root, "/tmp"));
	CHECK(ov_rt_root(&a, root, 4) < 0); /* no room */
	CHECK(ov_rt_recorded(&rec, "/usr/sbin/runc", "/tmp"));
	CHECK(!ov_rt_recorded(&rec, "/usr/bin/crun", "/tmp"));
	CHECK(!ov_rt_recorded(&rec, "/usr/sbin/runc", "/run/runc"));
	CHECK(!ov_rt_recorded(&rec, "/usr/sbin/runc", NULL));
	rec.runtime_root = NULL; /* the hooks' record */
	CHECK(!ov_rt_recorded(&rec, "/usr/sbin/runc", "/tmp"));
}

int main(void)
{
	test_create_run();
	test_pass_through();
	test_config_location();
	test_state_argv();
	test_resolve();
	test_supervise();
	test_start_wait();
	test_recorded();
	return unit_done("test-runtime");
}
