/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci-vtpm-runtime, the runc-compatible shim: reading its command line the
 * way runc and crun do, finding the real runtime, and running it as a
 * supervised child.
 *
 * The command line is runc's: global options, the subcommand, the
 * subcommand's options, then its arguments:
 *
 *	oci-vtpm-runtime [--root R] [--log F] ... create [--bundle B] ... ID
 *
 * Options take their value as the next argument or after '=' (--root R,
 * --root=R; runc also accepts one dash: -root R). Like runc and crun,
 * option parsing of the subcommand stops at its first argument (the
 * container id) or at "--".
 */
#ifndef OCI_VTPM_RUNTIME_H
#define OCI_VTPM_RUNTIME_H

#include <stdbool.h>
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

/* Where the real runtime is looked for when none is configured. */
#define OV_RT_SEARCH_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define OV_RT_ENV	  "OCI_VTPM_RUNTIME"

enum ov_rt_action {
	OV_RT_PASS,	 /* anything but create/run: exec the real runtime as it is */
	OV_RT_CREATE,	 /* create: edit config.json first */
	OV_RT_RUN,	 /* run: edit config.json first */
	OV_RT_PRECREATE, /* our own mode: podman's precreate hook stage */
	OV_RT_DELETE,	 /* delete: afterwards stop the vTPMs the shim started */
};

struct ov_rt_args {
	enum ov_rt_action action;
	int sub;		/* argv index of the subcommand; 0: there is none */
	const char *root;	/* global --root, NULL: the runtime's default */
	const char *log;	/* global --log */
	const char *log_format; /* global --log-format */
	/* create/run only; all borrowed from argv */
	const char *bundle;   /* --bundle/-b; NULL: the current directory */
	const char *config;   /* crun's --config/-f; NULL: config.json */
	const char *id;	      /* the container id (create/run/delete); NULL when missing */
	bool detach;	      /* run --detach/-d */
	bool keep;	      /* runc's run --keep: the container stays after it exits */
	bool help;	      /* --help/-h: the runtime prints help, creates nothing */
	const char *unknown;  /* the first option of create/run we do not know */
	const char *pid_file; /* --pid-file; NULL: none */
};

/*
 * Parse argv as runc would. Never fails on a subcommand or option it does
 * not know (the real runtime judges those); fails only when an option that
 * takes a value has none, which the real runtime refuses too.
 */
int ov_rt_parse(int argc, char *const argv[], struct ov_rt_args *a, ov_error *err);

/* Does name name a subcommand of runc or crun? */
bool ov_rt_known_subcommand(const char *name);

/*
 * The real runtime: configured (the settings' "runtime", an absolute path)
 * if set, else env ($OCI_VTPM_RUNTIME: an absolute path, or a name looked
 * up in search), else runc, else crun, looked up in search (a PATH-style
 * list). A candidate that is the file self (this program, e.g.
 * /proc/self/exe) is refused when named and skipped when searched, so the
 * shim never runs itself. The path is written to out.
 */
int ov_rt_resolve(const char *configured, const char *env, const char *search, const char *self,
		  char *out, size_t size, ov_error *err);

/*
 * Run path with argv as a child and wait for it; *wstatus is its wait
 * status. While it runs, signals sent to this process alone (kill(2):
 * SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2, SIGWINCH, SIGALRM, SIGCONT and
 * the real-time ones) are passed on to it. Signals the kernel sends to the
 * whole foreground process group (a terminal's ^C, hangup, resize) reached
 * the child too and are not sent twice. The child gets this process's
 * signal mask, environment (with LISTEN_PID moved to it when it named this
 * process) and fds. A failed exec is an error here, with its errno.
 *
 * It returns with the forwarded signals still blocked: one that arrives
 * after the child ended stays pending until the caller has cleaned up (and
 * is gone when the caller exits).
 */
int ov_rt_supervise(const char *path, char *const argv[], int *wstatus, ov_error *err);

/*
 * ov_rt_supervise in two steps, for work done while the runtime runs:
 * ov_rt_start runs path with the signals above (and SIGCHLD) blocked, and
 * ov_rt_wait passes those that came meanwhile on, then the others as
 * ov_rt_supervise does, until the child ends. ov_rt_wait must follow a
 * successful ov_rt_start.
 */
struct ov_rt_child {
	pid_t pid;
	const char *path;
	sigset_t set; /* blocked while the child runs */
	sigset_t old; /* the mask before */
};
int ov_rt_start(const char *path, char *const argv[], struct ov_rt_child *c, ov_error *err);
int ov_rt_wait(struct ov_rt_child *c, int *wstatus, ov_error *err);

/* Run path with argv, stdio on /dev/null, the signals above unblocked, and
 * wait; *wstatus as above. */
int ov_rt_run_quiet(const char *path, char *const argv[], int *wstatus, ov_error *err);

/*
 * Where create/run read config.json: *dir is the bundle (or "."), *name
 * "config.json"; with crun's --config FILE (other than "config.json"), FILE
 * relative to the current directory, as crun does. Both malloc'd.
 */
int ov_rt_config_location(const struct ov_rt_args *a, char **dir, char **name, ov_error *err);

/* Run path with argv quietly (as ov_rt_run_quiet) and read its stdout, at
 * most max bytes, into *out (malloc'd, NUL-terminated); an exit status
 * other than 0 is an error. */
int ov_rt_output(const char *path, char *const argv[], size_t max, char **out, ov_error *err);

/*
 * The argv of `<runtime> <global options> state <id>`: argv[0] is path,
 * then the global options of the original command line (argv[1..sub))
 * without --log, --log-format and --debug, so that asking does not write
 * into the engine's log. Returns a malloc'd, NULL-terminated array of
 * borrowed strings (free the array only), or NULL (ENOMEM).
 */
char **ov_rt_state_argv(const char *path, char *const argv[], int sub, const char *id);

/* The runtime's state root named by --root, absolute and with symlinks
 * resolved (two spellings of one directory are one root), into out;
 * -1 without --root or when it does not resolve. */
int ov_rt_root(const struct ov_rt_args *a, char *out, size_t size);

/* Did the shim record runtime with root (ov_rt_root) as the one that runs
 * rec's container? A container id names one container per root: then a
 * command for that id under them is about rec's container. */
struct ov_record;
bool ov_rt_recorded(const struct ov_record *rec, const char *runtime, const char *root);

/* The oci-vtpm-hook a config.json or a CDI spec will name: configured (the
 * settings' "hook") when set, else oci-vtpm-hook next to this program; it
 * must be executable. */
int ov_rt_hook_path(const char *configured, char *out, size_t size, ov_error *err);

#endif
