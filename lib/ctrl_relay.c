/* SPDX-License-Identifier: Apache-2.0 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/ctrl_relay.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/proc.h"

#define OVERFLOW_ID	   65534
#define CMD_GET_CAPABILITY 1

/* Read exactly len bytes, or fail on EOF, error or timeout_ms of silence. */
static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		int r = poll(&p, 1, timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int reply(int conn, uint32_t result, const void *payload, size_t len)
{
	unsigned char buf[16];
	uint32_t be = htobe32(result);

	memcpy(buf, &be, sizeof(be));
	if (len)
		memcpy(buf + sizeof(be), payload, len);
	return ov_write_all(conn, buf, sizeof(be) + len);
}

void ov_ctrl_relay_serve(int conn, int timeout_ms)
{
	for (;;) {
		uint32_t cmd;
		uint8_t loc;

		if (read_full(conn, &cmd, sizeof(cmd), timeout_ms) < 0)
			return;
		switch (be32toh(cmd)) {
		case CMD_GET_CAPABILITY: {
			uint64_t caps = htobe64(OV_CTRL_CAP_SET_LOCAL);

			if (reply(conn, 0, &caps, sizeof(caps)) < 0)
				return;
			continue;
		}
		case OV_CTRL_SET_LOCALITY:
			if (read_full(conn, &loc, sizeof(loc), timeout_ms) < 0)
				return;
			if (loc == 0) {
				if (reply(conn, 0, NULL, 0) < 0)
					return;
				continue;
			}
			break;
		default:
			break;
		}
		/* Not allowed: refuse, and drop whatever payload followed. */
		reply(conn, OV_CTRL_RESULT_FAIL, NULL, 0);
		return;
	}
}

/* The relay's only system calls; anything else kills it. */
static int relay_seccomp(void)
{
	static const char *const allowed[] = {
	    "poll",
	    "ppoll",
	    "accept",
	    "accept4",
	    "read",
	    "write",
	    "close",
	    "exit",
	    "exit_group",
	    "rt_sigreturn",
	    "restart_syscall",
	    "clock_gettime",
	    "clock_nanosleep",
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int rc = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);

		if (nr != __NR_SCMP_ERROR)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	}
	if (rc == 0)
		rc = seccomp_load(ctx);
	if (ctx)
		seccomp_release(ctx);
	return rc < 0 ? -rc : 0;
}

static int drop_privileges(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return errno;
	return 0;
}

/* The relay itself: fd 3 listens, fd 4 is swtpm's pidfd. */
static __attribute__((noreturn)) void relay_loop(void)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = 4, .events = POLLIN}, {.fd = 3, .events = POLLIN}};
		int conn;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (p[0].revents) /* swtpm exited */
			_exit(0);
		if (!p[1].revents)
			continue;
		conn = accept4(3, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0)
			continue;
		ov_ctrl_relay_serve(conn, OV_CTRL_CONN_TIMEOUT_MS);
		close(conn);
	}
}

static __attribute__((noreturn)) void relay_child(int listen_fd, int pidfd, uid_t uid, gid_t gid,
						  const struct ov_limits_cg *cg, int report)
{
	sigset_t none;
	int e = 0, devnull;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	/* In its swtpm's cgroups (lib/limits.c), before the relay forks. */
	e = ov_limits_join(cg);
	if (e) {
		if (write(report, &e, sizeof(e)) < 0) {
			/* the parent reports that the relay did not start */
		}
		_exit(127);
	}
	if (fork() != 0) /* the intermediate child: gone at once, reaped */
		_exit(0);
	if (setsid() < 0 || chdir("/") < 0 || prctl(PR_SET_NAME, "ov-ctrl-relay", 0, 0, 0) < 0)
		e = errno;
	/* Nothing of the caller's: /dev/null on 0-2 (runc waits for a hook's
	 * stdout and stderr to close), the two fds at 3 and 4, the report pipe
	 * at 5 until the sandbox is in place. */
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (!e &&
	    (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0))
		e = errno;
	if (!e && ((listen_fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 16)) < 0 ||
		   (pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 16)) < 0 ||
		   (report = fcntl(report, F_DUPFD_CLOEXEC, 16)) < 0 || dup2(listen_fd, 3) < 0 ||
		   dup2(pidfd, 4) < 0 || dup2(report, 5) < 0))
		e = errno;
	if (!e && syscall(SYS_close_range, 6, ~0U, 0) < 0)
		e = errno;
	if (!e)
		e = drop_privileges(uid, gid);
	if (!e)
		e = relay_seccomp();
	if (write(e ? report : 5, &e, sizeof(e)) < 0 || e)
		_exit(127);
	close(5);
	relay_loop();
}

static void relay_ids(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	*uid = OVERFLOW_ID;
	*gid = OVERFLOW_ID;
	if (!user || !*user || strcmp(user, "root") == 0)
		return;
	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_uid != 0) {
		*uid = res->pw_uid;
		*gid = res->pw_gid;
	}
}

int ov_ctrl_relay_spawn(int listen_fd, pid_t swtpm_pid, unsigned long long starttime,
			const char *user, const struct ov_limits_cg *cg, ov_error *err)
{
	cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, swtpm_pid, 0);
	cleanup_close int rd = -1, wr = -1;
	unsigned long long st = 0;
	int pipefd[2], child_errno = -1;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	ssize_t n;

	if (pidfd < 0)
		return ov_error_set(err, errno, "control relay: pidfd_open of swtpm %d",
				    (int)swtpm_pid);
	/* Taken after pidfd_open: if it matches, pidfd is that swtpm. */
	if (ov_proc_starttime(swtpm_pid, &st, err) < 0 || st != starttime)
		return ov_error_set(err, ESRCH, "control relay: swtpm %d is gone", (int)swtpm_pid);
	relay_ids(user, &uid, &gid);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return ov_error_set(err, errno, "control relay: pipe");
	rd = pipefd[0];
	wr = pipefd[1];
	pid = fork();
	if (pid < 0)
		return ov_error_set(err, errno, "control relay: fork");
	if (pid == 0)
		relay_child(listen_fd, pidfd, uid, gid, cg, wr);
	close(take_fd(&wr));
	waitpid(pid, NULL, 0);
	do
		n = read(rd, &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(child_errno))
		return ov_error_set(err, 0, "control relay: did not start");
	if (child_errno)
		return ov_error_set(err, child_errno, "control relay: setting up");
	return 0;
}
