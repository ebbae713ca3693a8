/* SPDX-License-Identifier: Apache-2.0 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/sandbox.h"
#include "oci-vtpm/socket.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/util.h"

#define ARGV_MAX 32
#define ARG_LEN	 4200

static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* argv with its strings in one fixed buffer: nothing to free, no malloc after fork. */
struct argv_buf {
	char *argv[ARGV_MAX + 1];
	char text[ARGV_MAX * 128 + ARG_LEN];
	size_t used;
	int argc;
	bool overflow;
};

static void arg_add(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg_add(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (a->argc >= ARGV_MAX || a->used >= sizeof(a->text)) {
		a->overflow = true;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(a->text + a->used, sizeof(a->text) - a->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(a->text) - a->used) {
		a->overflow = true;
		return;
	}
	a->argv[a->argc++] = a->text + a->used;
	a->argv[a->argc] = NULL;
	a->used += (size_t)n + 1;
}

/* The fds swtpm gets, in order, from fd 3 on. */
enum { FD_SERVER, FD_CTRL, FD_LOG, FD_KEY, FD_COUNT };

static bool runs_as_user(const struct ov_swtpm_opts *o)
{
	return o->runas && *o->runas && strcmp(o->runas, "root") != 0;
}

static void build_argv(const struct ov_swtpm_opts *o, const int fdnum[FD_COUNT], struct argv_buf *a)
{
	arg_add(a, "%s", o->binary);
	arg_add(a, "%s", o->chardev ? "chardev" : "socket");
	if (o->tpm2)
		arg_add(a, "--tpm2");
	if (o->chardev) {
		arg_add(a, "--fd");
		arg_add(a, "%d", fdnum[FD_SERVER]);
	} else {
		arg_add(a, "--server");
		arg_add(a, "type=unixio,fd=%d", fdnum[FD_SERVER]);
	}
	if (o->chardev) {
		/* The vtpm proxy driver sends its vendor SetLocality command
		 * (0x20001000) before every use of the chip; `swtpm chardev
		 * --vtpm-proxy` allows it by itself, `--fd` must be told. */
		arg_add(a, "--locality");
		arg_add(a, "allow-set-locality");
	}
	arg_add(a, "--ctrl");
	arg_add(a, "type=unixio,fd=%d", fdnum[FD_CTRL]);
	arg_add(a, "--tpmstate");
	arg_add(a, "dir=%s,mode=0600", o->state_dir);
	if (fdnum[FD_LOG] >= 0) {
		arg_add(a, "--log");
		arg_add(a, "fd=%d,level=1", fdnum[FD_LOG]);
	}
	if (fdnum[FD_KEY] >= 0) {
		arg_add(a, "--key");
		arg_add(a, "fd=%d,mode=aes-256-cbc,format=binary", fdnum[FD_KEY]);
	}
	arg_add(a, "--flags");
	arg_add(a, "not-need-init,startup-clear");
	if (runs_as_user(o)) {
		arg_add(a, "--runas");
		arg_add(a, "%s", o->runas);
	}
	arg_add(a, "--seccomp");
	arg_add(a, "action=kill");
}

/* In the child: report errno on the exec-error pipe and die. */
static __attribute__((noreturn)) void child_fail(int errpipe, int e)
{
	if (write(errpipe, &e, sizeof(e)) < 0) {
		/* the parent sees EOF without data and reports an unknown failure */
	}
	_exit(127);
}

static __attribute__((noreturn)) void child_exec(const struct argv_buf *a, const int src[FD_COUNT],
						 int dir_fd, const struct ov_limits_cg *cg,
						 bool drop_groups, int devnull, int errpipe)
{
	/* glibc's malloc told to give back what swtpm frees: no per-thread
	 * cache (tcache) holding freed chunks, and the heap's top returned
	 * as soon as it is free (no trim threshold, no padding). An idle
	 * swtpm then holds only what libtpms and OpenSSL keep: 136 KiB less
	 * private memory per vTPM, no measurable CPU cost per TPM command
	 * (docs/performance.md, "swtpm's heap"). */
	static char *const envp[] = {
	    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	    "GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.trim_threshold=0:"
	    "glibc.malloc.top_pad=0",
	    NULL,
	};
	int tmp[FD_COUNT];
	int next = 3;
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	/* No file of swtpm's grows past OV_SWTPM_FSIZE_MAX: its log (swtpm
	 * has no cap of its own) sits in the host's run dir, and what a
	 * container makes it log must not fill that. Its state files are far
	 * smaller. A write past the cap fails with EFBIG instead of killing. */
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &(struct rlimit){OV_SWTPM_FSIZE_MAX, OV_SWTPM_FSIZE_MAX}) < 0)
		child_fail(errpipe, errno);
	/* Its cgroups (lib/limits.c) before anything of swtpm's runs. */
	{
		int e = ov_limits_join(cg);

		if (e)
			child_fail(errpipe, e);
	}
	if (setsid() < 0)
		child_fail(errpipe, errno);
	/* None of the caller's supplementary groups (root's 0, often): a
	 * numeric --runas (swtpm_uid_range) changes only uid and gid and kept
	 * them; by name swtpm sets the user's own (initgroups). */
	if (drop_groups && setgroups(0, NULL) < 0)
		child_fail(errpipe, errno);
	/* Never the hook's cwd (the bundle). A state dir relative to dir_fd
	 * keeps working when the directory above it is renamed (a vTPM started
	 * before its container id was known, lib/vtpm.c). */
	if ((dir_fd > 0 ? fchdir(dir_fd) : chdir("/")) < 0)
		child_fail(errpipe, errno);
	/* Park every fd above the target range first so no dup2 clobbers one. */
	for (int i = 0; i < FD_COUNT; i++) {
		tmp[i] = -1;
		if (src[i] >= 0 && (tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 64)) < 0)
			child_fail(errpipe, errno);
	}
	if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
		child_fail(errpipe, errno);
	for (int i = 0; i < FD_COUNT; i++) {
		if (tmp[i] < 0)
			continue;
		if (dup2(tmp[i], next++) < 0) /* dup2 clears FD_CLOEXEC on the copy */
			child_fail(errpipe, errno);
	}
	/* Any fd inherited without O_CLOEXEC must not reach swtpm either; mark
	 * rather than close, so the error pipe stays open until exec. */
	if (syscall(SYS_close_range, next, ~0U, CLOSE_RANGE_CLOEXEC) < 0 && errno != ENOSYS &&
	    errno != EINVAL)
		child_fail(errpipe, errno);
	{
		ov_error serr = {0};

		if (ov_sandbox_apply(&serr) < 0)
			child_fail(errpipe, serr.code ? serr.code : EPERM);
	}
	execve(a->argv[0], a->argv, envp);
	child_fail(errpipe, errno);
}

int ov_swtpm_spawn(const struct ov_swtpm_opts *o, struct ov_swtpm *out, ov_error *err)
{
	const int src[FD_COUNT] = {o->server_fd, o->ctrl_fd, o->log_fd, o->key_fd};
	int fdnum[FD_COUNT];
	struct argv_buf *a = NULL;
	cleanup_free struct argv_buf *abuf = calloc(1, sizeof(*abuf));
	cleanup_close int devnull = -1, rd = -1;
	int wr = -1, child_errno = 0, next = 3;
	pid_t pid;

	out->pid = 0;
	out->pidfd = -1;
	out->starttime = 0;
	out->ctrl_path[0] = '\0';
	if (!abuf)
		return ov_error_set(err, ENOMEM, "starting swtpm");
	a = abuf;
	for (int i = 0; i < FD_COUNT; i++)
		fdnum[i] = src[i] >= 0 ? next++ : -1;
	build_argv(o, fdnum, a);
	if (a->overflow)
		return ov_error_set(err, E2BIG, "starting swtpm: arguments too long");

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return ov_error_set(err, errno, "opening /dev/null");
	pid = ov_proc_fork_piped(&rd, &wr, "starting swtpm", err);
	if (pid < 0)
		return -1;
	if (pid == 0)
		child_exec(a, src, o->dir_fd, o->cg, runs_as_user(o), devnull, wr);
	if (ov_proc_read_report(rd, &child_errno) > 0) {
		waitpid(pid, NULL, 0);
		return ov_error_set(err, child_errno, "starting swtpm %s", o->binary);
	}
	out->pid = pid;
	out->pidfd = sys_pidfd_open(pid);
	if (out->pidfd < 0) {
		int e = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		out->pid = 0;
		return ov_error_set(err, e, "pidfd_open of swtpm");
	}
	/* Still our unreaped child: the pid cannot have been reused. */
	if (ov_proc_starttime(pid, &out->starttime, err) < 0) {
		ov_swtpm_kill(out);
		close(out->pidfd);
		out->pidfd = -1;
		return ov_error_wrap(err, "swtpm start time");
	}
	return 0;
}

/* The last non-empty line of the log, for an error message. */
static void log_tail(int fd, char *buf, size_t size)
{
	char tmp[1024];
	off_t end;
	ssize_t n;
	char *line, *p;

	buf[0] = '\0';
	if (fd < 0 || (end = lseek(fd, 0, SEEK_END)) <= 0)
		return;
	n = pread(fd, tmp, sizeof(tmp) - 1,
		  end > (off_t)sizeof(tmp) - 1 ? end - (off_t)sizeof(tmp) + 1 : 0);
	if (n <= 0)
		return;
	tmp[n] = '\0';
	while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == ' '))
		tmp[--n] = '\0';
	line = strrchr(tmp, '\n');
	line = line ? line + 1 : tmp;
	for (p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	size_t len = strlen(line);
	if (len >= size)
		len = size - 1;
	memcpy(buf, line, len);
	buf[len] = '\0';
}

void ov_swtpm_kill(struct ov_swtpm *t)
{
	if (t->pid <= 0)
		return;
	sys_pidfd_send_signal(t->pidfd, SIGKILL);
	waitpid(t->pid, NULL, 0);
	t->pid = 0;
}

int ov_swtpm_wait_ready(struct ov_swtpm *t, const char *ctrl_path, int log_fd, int timeout_ms,
			ov_error *err)
{
	unsigned char rsp[8];
	char tail[512];
	int status;

	if (ov_swtpm_ctrl(ctrl_path, OV_SWTPM_CMD_GET_CAPABILITY, rsp, sizeof(rsp), t->pidfd,
			  timeout_ms, err) == 0)
		return 0;
	if (err->code != ESRCH && err->code != ECONNRESET)
		return ov_error_wrap(err, "swtpm (pid %d) did not become ready", (int)t->pid);
	/* It exited: reap it for the status. */
	if (waitpid(t->pid, &status, 0) != t->pid)
		return ov_error_set(err, errno, "swtpm (pid %d) exited during start-up",
				    (int)t->pid);
	t->pid = 0;
	log_tail(log_fd, tail, sizeof(tail));
	if (WIFSIGNALED(status))
		return ov_error_set(err, 0, "swtpm was killed by signal %d during start-up%s%s",
				    WTERMSIG(status), tail[0] ? ": " : "", tail);
	return ov_error_set(err, 0, "swtpm exited with status %d during start-up%s%s",
			    WEXITSTATUS(status), tail[0] ? ": " : "", tail);
}

static int wait_exit(int pidfd, int timeout_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int64_t deadline = (int64_t)ov_util_mono_ms() + timeout_ms;
	int r;

	do
		r = poll(&p, 1, ov_util_ms_left(deadline));
	while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : -1;
}

/* SIGKILL to swtpm pid (pidfd) and a bounded wait for its exit. */
static int kill_wait(int pidfd, pid_t pid, int timeout_ms, ov_error *err)
{
	if (sys_pidfd_send_signal(pidfd, SIGKILL) < 0 && errno != ESRCH)
		return ov_error_set(err, errno, "killing swtpm %d", (int)pid);
	if (wait_exit(pidfd, timeout_ms) < 0)
		return ov_error_set(err, ETIMEDOUT, "swtpm %d did not exit after SIGKILL",
				    (int)pid);
	return 0;
}

/* A pidfd of the swtpm that was pid with that start time: 1 (*pidfd), 0
 * when it is gone, -1. */
static int open_recorded(pid_t pid, unsigned long long starttime, int *pidfd, ov_error *err)
{
	unsigned long long st = 0;
	ov_error ignored = {0};

	if (pid <= 0)
		return 0;
	*pidfd = sys_pidfd_open(pid);
	if (*pidfd < 0)
		return errno == ESRCH
			   ? 0
			   : ov_error_set(err, errno, "pidfd_open of swtpm %d", (int)pid);
	/* Taken after pidfd_open: if it matches, pidfd is that process. */
	if (ov_proc_starttime(pid, &st, &ignored) < 0 || st != starttime) {
		close(*pidfd);
		*pidfd = -1;
		return 0;
	}
	return 1;
}

int ov_swtpm_stop(pid_t pid, unsigned long long starttime, const char *ctrl_path, int timeout_ms,
		  ov_error *err)
{
	cleanup_close int pidfd = -1;
	unsigned char rsp[4];
	ov_error ignored = {0};
	int r = open_recorded(pid, starttime, &pidfd, err);

	if (r <= 0)
		return r;
	if (ctrl_path &&
	    ov_swtpm_ctrl(ctrl_path, OV_SWTPM_CMD_SHUTDOWN, rsp, sizeof(rsp), pidfd, timeout_ms,
			  &ignored) == 0 &&
	    wait_exit(pidfd, timeout_ms) == 0)
		return 0;
	if (wait_exit(pidfd, 0) == 0)
		return 0; /* it went away by itself */
	if (sys_pidfd_send_signal(pidfd, SIGTERM) == 0 && wait_exit(pidfd, timeout_ms) == 0)
		return 1;
	return kill_wait(pidfd, pid, timeout_ms, err) < 0 ? -1 : 1;
}

int ov_swtpm_discard(pid_t pid, unsigned long long starttime, int timeout_ms, ov_error *err)
{
	cleanup_close int pidfd = -1;
	int r = open_recorded(pid, starttime, &pidfd, err);

	if (r <= 0)
		return r;
	return kill_wait(pidfd, pid, timeout_ms, err);
}

int ov_swtpm_key_pipe(const struct ov_key *key, ov_error *err)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return ov_error_set(err, errno, "key pipe");
	if (ov_write_all(p[1], key->b, sizeof(key->b)) < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return ov_error_set(err, e, "key pipe");
	}
	close(p[1]);
	return p[0];
}

int ov_swtpm_start(const struct ov_swtpm_instance *in, int *channel, struct ov_swtpm *out,
		   ov_error *err)
{
	cleanup_close int ctrl = -1, log = -1, keyfd = -1;
	char ctrl_path[sizeof(out->ctrl_path)];

	out->pid = 0;
	out->pidfd = -1;
	out->ctrl_path[0] = '\0';
	log = openat(in->dir_fd, in->log_name, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		     0600);
	if (log < 0)
		return ov_error_set(err, errno, "creating %s", in->log_name);
	ctrl = ov_socket_listen(in->dir_fd, in->ctrl_name, in->ctrl_mode, err);
	if (ctrl < 0)
		return -1;
	if (ov_socket_path(in->dir_fd, in->ctrl_name, ctrl_path, sizeof(ctrl_path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "socket %s", in->ctrl_name);
	if (in->key) {
		keyfd = ov_swtpm_key_pipe(in->key, err);
		if (keyfd < 0)
			return -1;
	}

	struct ov_swtpm_opts o = {
	    .binary = in->binary,
	    .chardev = in->chardev,
	    .tpm2 = in->tpm2,
	    .server_fd = *channel,
	    .ctrl_fd = ctrl,
	    .log_fd = log,
	    .key_fd = keyfd,
	    .state_dir = in->state_dir,
	    .dir_fd = in->run_in_dir ? in->dir_fd : -1,
	    .runas = in->runas,
	    .cg = in->cg,
	};
	if (ov_swtpm_spawn(&o, out, err) < 0)
		return -1;
	memcpy(out->ctrl_path, ctrl_path, sizeof(ctrl_path));
	close(*channel);
	*channel = -1;
	if (in->spawned && in->spawned(out, in->arg, err) < 0)
		return -1;
	/* Our copy of the control socket stays open until swtpm answers: a
	 * swtpm that dies at once is then seen on its pidfd, with its status. */
	return ov_swtpm_wait_ready(out, ctrl_path, log, in->timeout_ms, err);
}
