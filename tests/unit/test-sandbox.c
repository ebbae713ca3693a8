/* SPDX-License-Identifier: Apache-2.0 */
/* The seccomp filter swtpm runs under: denied calls fail with EPERM, the
 * rest of a process's life goes on. Checked in a child, which keeps it. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/sandbox.h"
#include "unit.h"

int main(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		ov_error err;
		int bad = 0, fd;

		if (ov_sandbox_apply(&err) < 0)
			_exit(100);
		bad += !(unshare(CLONE_NEWNS) < 0 && errno == EPERM);
		bad += !(mount("none", "/tmp", "tmpfs", 0, NULL) < 0 && errno == EPERM);
		bad += !(ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 && errno == EPERM);
		bad += !(syscall(SYS_init_module, NULL, 0, "") < 0 && errno == EPERM);
		bad += !(syscall(SYS_keyctl, 0, 0, 0, 0, 0) < 0 && errno == EPERM);
		bad += !(setns(0, 0) < 0 && errno == EPERM);
		/* What swtpm does need still works. */
		fd = open("/dev/null", O_RDWR);
		bad += fd < 0;
		bad += write(fd, "x", 1) != 1;
		bad += getpid() <= 0;
		_exit(bad);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (WIFEXITED(status) && WEXITSTATUS(status))
		fprintf(stderr, "%d checks failed in the sandboxed child\n", WEXITSTATUS(status));
	return unit_done("sandbox");
}
