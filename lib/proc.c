/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fault.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/util.h"

/* How often the fallback looks at /proc for an exit. */
#define EXIT_POLL_MS 10

int ov_proc_boot_id(char *buf, size_t size, ov_error *err)
{
	cleanup_free char *text = NULL;
	size_t len;

	if (ov_read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 128, &text, &len, err) < 0)
		return -1;
	while (len && (text[len - 1] == '\n'))
		text[--len] = '\0';
	if (snprintf(buf, size, "%s", text) >= (int)size)
		return ov_error_set(err, ENAMETOOLONG, "boot id");
	return 0;
}

int ov_proc_starttime(pid_t pid, unsigned long long *out, ov_error *err)
{
	char state;

	return ov_proc_stat(pid, out, &state, err);
}

/* Read /proc/<pid>/stat into *text and return the fields after comm: comm
 * may hold spaces and ')', so they resume after the last ')'. field(p, n)
 * then finds field n (3 is the state, the first after comm). */
static char *proc_stat_read(pid_t pid, char **text, ov_error *err)
{
	char path[64];
	char *p;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (ov_read_file_at(AT_FDCWD, path, 4096, text, &len, err) < 0)
		return NULL;
	p = strrchr(*text, ')');
	if (!p || p[1] != ' ') {
		ov_error_set(err, 0, "%s: malformed", path);
		return NULL;
	}
	return p + 2;
}

static const char *proc_stat_field(const char *p, int field, pid_t pid, ov_error *err)
{
	for (int f = 3; f < field; f++) {
		p = strchr(p, ' ');
		if (!p) {
			ov_error_set(err, 0, "/proc/%d/stat: malformed", (int)pid);
			return NULL;
		}
		p++;
	}
	return p;
}

int ov_proc_stat(pid_t pid, unsigned long long *starttime, char *state, ov_error *err)
{
	cleanup_free char *text = NULL;
	const char *p = proc_stat_read(pid, &text, err), *f;

	if (!p || !(f = proc_stat_field(p, 22, pid, err)))
		return -1;
	*state = p[0];
	*starttime = strtoull(f, NULL, 10);
	return 0;
}

int ov_proc_cpu_ms(pid_t pid, uint64_t *ms, ov_error *err)
{
	cleanup_free char *text = NULL;
	const char *p = proc_stat_read(pid, &text, err), *f;
	unsigned long long utime, stime;
	long tick = sysconf(_SC_CLK_TCK);

	/* Fields 14 and 15: user and system time, in clock ticks. */
	if (!p || !(f = proc_stat_field(p, 14, pid, err)))
		return -1;
	if (sscanf(f, "%llu %llu", &utime, &stime) != 2)
		return ov_error_set(err, 0, "/proc/%d/stat: malformed", (int)pid);
	*ms = (utime + stime) * 1000ULL / (unsigned long long)(tick > 0 ? tick : 100);
	return 0;
}

bool ov_proc_alive(pid_t pid, unsigned long long starttime)
{
	unsigned long long st;
	char state;
	ov_error ignored = {0};

	/* A zombie has exited: only its parent has not reaped it yet. */
	return pid > 0 && ov_proc_stat(pid, &st, &state, &ignored) == 0 && st == starttime &&
	       state != 'Z' && state != 'X';
}

pid_t ov_proc_fork_piped(int *rd, int *wr, const char *what, ov_error *err)
{
	int pipefd[2];
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return ov_error_set(err, errno, "%s: pipe", what);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(pipefd[0]);
		close(pipefd[1]);
		return ov_error_set(err, e, "%s: fork", what);
	}
	if (pid == 0) {
		*wr = pipefd[1];
		return 0;
	}
	close(pipefd[1]);
	*rd = pipefd[0];
	return pid;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Close lo..hi (hi ~0U: to the end). */
static int close_span(unsigned lo, unsigned hi)
{
	if (lo > hi)
		return 0;
	if (syscall(SYS_close_range, lo, hi, 0) == 0)
		return 0;
	if (errno != ENOSYS)
		return -1;
	for (long fd = lo, max = sysconf(_SC_OPEN_MAX); fd <= (long)hi && fd < max; fd++)
		close((int)fd);
	return 0;
}

int ov_proc_close_except(const int *keep, unsigned n, ov_error *err)
{
	int k[16] = {0};
	unsigned m = 0, next = 3;

	for (unsigned i = 0; i < n && m < sizeof(k) / sizeof(k[0]); i++)
		if (keep[i] >= 3)
			k[m++] = keep[i];
	qsort(k, m, sizeof(k[0]), cmp_int);
	for (unsigned i = 0; i < m; i++) {
		if ((unsigned)k[i] > next && close_span(next, (unsigned)k[i] - 1) < 0)
			return ov_error_set(err, errno, "closing inherited fds");
		next = (unsigned)k[i] + 1;
	}
	if (close_span(next, ~0U) < 0)
		return ov_error_set(err, errno, "closing inherited fds");
	return 0;
}

ssize_t ov_proc_read_report(int rd, int *value)
{
	ssize_t n;

	do
		n = read(rd, value, sizeof(*value));
	while (n < 0 && errno == EINTR);
	return n;
}

int ov_pidfd_open(pid_t pid)
{
	if (ov_fault_on("no-pidfd")) {
		errno = ENOSYS;
		return -1;
	}
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int ov_proc_ref_open(struct ov_proc_ref *p, pid_t pid, unsigned long long starttime, ov_error *err)
{
	unsigned long long st = 0;
	ov_error ignored = {0};
	char state;

	p->pid = 0;
	p->starttime = 0;
	p->pidfd = -1;
	if (pid <= 0)
		return 1;
	p->pidfd = ov_pidfd_open(pid);
	if (p->pidfd < 0) {
		if (errno == ESRCH)
			return 1;
		if (errno != ENOSYS)
			return ov_error_set(err, errno, "pidfd_open of process %d", (int)pid);
	}
	/* Taken after pidfd_open: if it matches, the pidfd is that process. */
	if (ov_proc_stat(pid, &st, &state, &ignored) < 0 || (starttime && st != starttime) ||
	    state == 'Z' || state == 'X') {
		ov_proc_ref_close(p);
		return 1;
	}
	p->pid = pid;
	p->starttime = st;
	return 0;
}

void ov_proc_ref_close(struct ov_proc_ref *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	p->pid = 0;
}

int ov_proc_ref_signal(const struct ov_proc_ref *p, int sig)
{
	if (p->pidfd >= 0)
		return (int)syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
	/* The window between this check and kill(2) is the one runc lives
	 * with too: the pid would have to exit, be reaped and be reused in
	 * it. */
	if (!ov_proc_alive(p->pid, p->starttime)) {
		errno = ESRCH;
		return -1;
	}
	return kill(p->pid, sig);
}

int ov_proc_ref_wait(const struct ov_proc_ref *p, int timeout_ms)
{
	int64_t deadline = (int64_t)ov_util_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	if (p->pidfd >= 0) {
		struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
		int r;

		do
			r = poll(&pfd, 1, ov_util_ms_left(deadline));
		while (r < 0 && errno == EINTR);
		return r > 0 ? 0 : -1;
	}
	for (;;) {
		int left;

		if (!ov_proc_alive(p->pid, p->starttime))
			return 0;
		left = ov_util_ms_left(deadline);
		if (left <= 0)
			return -1;
		nanosleep(
		    &(struct timespec){0, (left < EXIT_POLL_MS ? left : EXIT_POLL_MS) * 1000000L},
		    NULL);
	}
}

int ov_proc_exit_pipe(int *rd, int *wr, ov_error *err)
{
	int fd = ov_pidfd_open(getpid()), p[2];

	*rd = -1;
	*wr = -1;
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != ENOSYS)
		return ov_error_set(err, errno, "pidfd_open");
	if (pipe2(p, O_CLOEXEC) < 0)
		return ov_error_set(err, errno, "exit pipe");
	*rd = p[0];
	*wr = p[1];
	return 0;
}

int ov_proc_exit_fd(pid_t child, int *rd, ov_error *err)
{
	int fd;

	if (*rd >= 0)
		return take_fd(rd);
	fd = ov_pidfd_open(child);
	if (fd < 0)
		return ov_error_set(err, errno, "pidfd_open of process %d", (int)child);
	return fd;
}

int ov_proc_mntns_fd(pid_t pid, ov_error *err)
{
	unsigned long long before, after;
	char path[64];
	int fd = ov_pidfd_open(pid);

	if (fd >= 0)
		return fd;
	if (errno != ENOSYS)
		return ov_error_set(err, errno, "opening process %d", (int)pid);
	if (ov_proc_starttime(pid, &before, err) < 0)
		return ov_error_wrap(err, "opening process %d", (int)pid);
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ov_error_set(err, errno, "opening %s", path);
	if (ov_proc_starttime(pid, &after, err) < 0 || after != before) {
		close(fd);
		return ov_error_set(err, ESRCH, "process %d exited", (int)pid);
	}
	return fd;
}
