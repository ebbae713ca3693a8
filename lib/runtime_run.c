/* SPDX-License-Identifier: Apache-2.0 */
/* Running the real OCI runtime for the shim (include/oci-vtpm/runtime.h):
 * supervised with signals passed on, or quiet with its output kept. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/runtime.h"

/* The signals passed on to the runtime. */
static void forward_set(sigset_t *set)
{
	static const int sigs[] = {SIGHUP,  SIGINT,   SIGQUIT, SIGTERM, SIGUSR1,
				   SIGUSR2, SIGWINCH, SIGALRM, SIGCONT};

	sigemptyset(set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(set, sigs[i]);
	for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
		sigaddset(set, s);
}

/* systemd socket activation names the process that owns the fds. */
static void move_listen_pid(pid_t from)
{
	const char *lp = getenv("LISTEN_PID");
	char buf[32];

	if (!lp || strtol(lp, NULL, 10) != (long)from)
		return;
	snprintf(buf, sizeof(buf), "%d", (int)getpid());
	setenv("LISTEN_PID", buf, 1);
}

/* Fork and exec; a failed exec comes back as an error with its errno.
 * The child runs with mask (NULL: the current one). */
static pid_t spawn(const char *path, char *const argv[], const sigset_t *mask, bool quiet,
		   int out_fd, ov_error *err)
{
	pid_t parent = getpid(), pid;
	int p[2], e = 0;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return ov_error_set(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(p[0]);
		close(p[1]);
		return ov_error_set(err, e, "fork");
	}
	if (pid == 0) {
		close(p[0]);
		if (quiet) {
			int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

			if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
				_exit(127);
		}
		if (out_fd >= 0 && dup2(out_fd, 1) < 0)
			_exit(127);
		move_listen_pid(parent);
		if (mask)
			sigprocmask(SIG_SETMASK, mask, NULL);
		execv(path, argv);
		e = errno;
		if (write(p[1], &e, sizeof(e)) < 0) {
			/* the parent sees EOF and a child that exited 127 */
		}
		_exit(127);
	}
	close(p[1]);
	do
		n = read(p[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return ov_error_set(err, e, "executing %s", path);
	}
	return pid;
}

int ov_rt_start(const char *path, char *const argv[], struct ov_rt_child *c, ov_error *err)
{
	c->path = path;
	forward_set(&c->set);
	sigaddset(&c->set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &c->set, &c->old) < 0)
		return ov_error_set(err, errno, "blocking signals");
	c->pid = spawn(path, argv, &c->old, false, -1, err);
	if (c->pid < 0) {
		sigprocmask(SIG_SETMASK, &c->old, NULL);
		return -1;
	}
	return 0;
}

int ov_rt_wait(struct ov_rt_child *c, int *wstatus, ov_error *err)
{
	int ret = 0;

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&c->set, &si);

		if (sig < 0) {
			if (errno == EINTR)
				continue;
			ret = ov_error_set(err, errno, "waiting for %s", c->path);
			kill(c->pid, SIGKILL);
			while (waitpid(c->pid, wstatus, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (sig == SIGCHLD) {
			pid_t r = waitpid(c->pid, wstatus, WNOHANG);

			if (r == c->pid)
				break;
			if (r < 0 && errno != EINTR) {
				ret = ov_error_set(err, errno, "waiting for %s", c->path);
				break;
			}
			continue;
		}
		/* The kernel signals a whole process group (terminal ^C,
		 * hangup, resize): the runtime has its own copy. */
		if (si.si_code == SI_KERNEL)
			continue;
		kill(c->pid, sig);
	}
	/* Signals that come from now on stay blocked and pending: the caller
	 * finishes its cleanup first. */
	sigdelset(&c->set, SIGCHLD);
	sigorset(&c->old, &c->old, &c->set);
	sigprocmask(SIG_SETMASK, &c->old, NULL);
	return ret;
}

int ov_rt_supervise(const char *path, char *const argv[], int *wstatus, ov_error *err)
{
	struct ov_rt_child c;

	if (ov_rt_start(path, argv, &c, err) < 0)
		return -1;
	return ov_rt_wait(&c, wstatus, err);
}

/* Run path quietly (stdout to out_fd when >= 0), not with the signals
 * ov_rt_supervise left blocked. */
static pid_t spawn_quiet(const char *path, char *const argv[], int out_fd, ov_error *err)
{
	sigset_t mask, set;

	sigprocmask(SIG_BLOCK, NULL, &mask);
	forward_set(&set);
	sigaddset(&set, SIGCHLD);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&set, s) == 1)
			sigdelset(&mask, s);
	return spawn(path, argv, &mask, true, out_fd, err);
}

static int wait_for(const char *path, pid_t pid, int *wstatus, ov_error *err)
{
	while (waitpid(pid, wstatus, 0) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "waiting for %s", path);
	return 0;
}

int ov_rt_run_quiet(const char *path, char *const argv[], int *wstatus, ov_error *err)
{
	pid_t pid = spawn_quiet(path, argv, -1, err);

	if (pid < 0)
		return -1;
	return wait_for(path, pid, wstatus, err);
}

int ov_rt_output(const char *path, char *const argv[], size_t max, char **out, ov_error *err)
{
	cleanup_close int rd = -1, wr = -1;
	int p[2], wstatus;
	pid_t pid;
	int ret;

	*out = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return ov_error_set(err, errno, "pipe");
	rd = p[0];
	wr = p[1];
	pid = spawn_quiet(path, argv, wr, err);
	if (pid < 0)
		return -1;
	close(take_fd(&wr));
	ret = ov_read_fd(rd, max, out, NULL, err);
	if (wait_for(path, pid, &wstatus, err) < 0 || ret < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
		free(*out);
		*out = NULL;
		return ov_error_set(err, 0, "%s failed (status 0x%x)", path, wstatus);
	}
	return 0;
}
