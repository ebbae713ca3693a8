/* SPDX-License-Identifier: Apache-2.0 */
/* Starting the control relay (include/oci-vtpm/ctrl_relay.h): the child
 * that drops privileges, joins the slot's cgroup and execs
 * oci-vtpm-relay. Apart from lib/ctrl_relay.c, which is all the relay
 * program links: this side needs the library (limits, /proc), the relay
 * only libc (its seccomp filter is made at build time). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/ctrl_relay.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/proc.h"

#define OVERFLOW_ID 65534

static int drop_privileges(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return errno;
	return 0;
}

static __attribute__((noreturn)) void relay_child(int listen_fd, int pidfd, uid_t uid, gid_t gid,
						  const struct ov_limits_cg *cg, int report,
						  const char *relay_exe)
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
	/* A process of its own (oci-vtpm-relay next to this program): what
	 * this one dirtied (its relocated libcrypto tables, heap) is not
	 * carried for the vTPM's life; about 0.4 MiB a vTPM. It reports on
	 * fd 5 itself. Without it, this process serves. */
	if (!e && relay_exe[0]) {
		static char *const argv[] = {"ov-ctrl-relay", NULL};
		static char *const envp[] = {NULL};

		execve(relay_exe, argv, envp);
	}
	if (e) {
		/* At 5 once moved there (the copy above was closed with the rest). */
		if (write(fcntl(5, F_GETFD) >= 0 ? 5 : report, &e, sizeof(e)) < 0) {
			/* the parent sees EOF and says the relay did not start */
		}
		_exit(127);
	}
	ov_ctrl_relay_run();
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

/* OV_RELAY_EXE in the directory of this program, or the one above it
 * (the unit tests' programs sit below the build dir); "" when there is
 * none (this process serves, forked). */
static void find_relay_exe(char *buf, size_t size)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	buf[0] = '\0';
	if (n <= 0)
		return;
	self[n] = '\0';
	for (int up = 0; up < 2 && (slash = strrchr(self, '/')); up++) {
		*slash = '\0';
		if (snprintf(buf, size, "%s/" OV_RELAY_EXE, self) < (int)size &&
		    access(buf, X_OK) == 0)
			return;
	}
	buf[0] = '\0';
}

int ov_ctrl_relay_spawn(int listen_fd, pid_t swtpm_pid, unsigned long long starttime,
			const char *user, const struct ov_limits_cg *cg, ov_error *err)
{
	cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, swtpm_pid, 0);
	cleanup_close int rd = -1;
	unsigned long long st = 0;
	int wr = -1, child_errno = -1;
	char relay_exe[4096];
	uid_t uid;
	gid_t gid;
	pid_t pid;

	if (pidfd < 0)
		return ov_error_set(err, errno, "control relay: pidfd_open of swtpm %d",
				    (int)swtpm_pid);
	/* Taken after pidfd_open: if it matches, pidfd is that swtpm. */
	if (ov_proc_starttime(swtpm_pid, &st, err) < 0 || st != starttime)
		return ov_error_set(err, ESRCH, "control relay: swtpm %d is gone", (int)swtpm_pid);
	relay_ids(user, &uid, &gid);
	find_relay_exe(relay_exe, sizeof(relay_exe));
	pid = ov_proc_fork_piped(&rd, &wr, "control relay", err);
	if (pid < 0)
		return -1;
	if (pid == 0)
		relay_child(listen_fd, pidfd, uid, gid, cg, wr, relay_exe);
	waitpid(pid, NULL, 0);
	if (ov_proc_read_report(rd, &child_errno) != sizeof(child_errno))
		return ov_error_set(err, 0, "control relay: did not start");
	if (child_errno)
		return ov_error_set(err, child_errno, "control relay: setting up");
	return 0;
}
