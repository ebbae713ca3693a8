/* SPDX-License-Identifier: Apache-2.0 */
/* Against the real swtpm: spawn, readiness, ctrl, orderly stop, failures. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/socket.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/swtpm.h"
#include "unit.h"

static char dir[] = "/tmp/ov-unit-swtpm.XXXXXX";
static int dfd;

struct fixture {
	int server, ctrl, log;
	char ctrl_path[128];
	char state[256];
};

static void fixture(struct fixture *f, const char *tag)
{
	ov_error err = {0};
	char name[64];

	snprintf(f->state, sizeof(f->state), "%s/state-%s", dir, tag);
	mkdir(f->state, 0700);
	snprintf(name, sizeof(name), "%s.sock", tag);
	f->server = ov_socket_listen(dfd, name, 0600, &err);
	snprintf(name, sizeof(name), "%s.ctrl", tag);
	f->ctrl = ov_socket_listen(dfd, name, 0600, &err);
	ov_socket_path(dfd, name, f->ctrl_path, sizeof(f->ctrl_path));
	snprintf(name, sizeof(name), "%s.log", tag);
	f->log = openat(dfd, name, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	CHECK(f->server >= 0 && f->ctrl >= 0 && f->log >= 0);
}

static void fixture_close(struct fixture *f)
{
	close(f->server);
	close(f->ctrl);
	close(f->log);
}

static struct ov_swtpm_opts opts(const struct fixture *f, const char *binary)
{
	return (struct ov_swtpm_opts){
	    .binary = binary,
	    .tpm2 = true,
	    .server_fd = f->server,
	    .ctrl_fd = f->ctrl,
	    .log_fd = f->log,
	    .key_fd = -1,
	    .state_dir = f->state,
	};
}

static void test_lifecycle(void)
{
	struct fixture f;
	struct ov_swtpm t;
	ov_error err = {0};
	unsigned char rsp[8];
	int status;

	fixture(&f, "ok");
	struct ov_swtpm_opts o = opts(&f, "/usr/bin/swtpm");
	/* An fd this process leaks without O_CLOEXEC must not reach swtpm. */
	int sentinel = openat(dfd, "sentinel", O_RDWR | O_CREAT, 0600);
	CHECK(ov_swtpm_spawn(&o, &t, &err) == 0);
	close(sentinel);
	CHECK(t.pid > 0 && t.pidfd >= 0 && t.starttime > 0);
	CHECK(ov_swtpm_wait_ready(&t, f.ctrl_path, f.log, 10000, &err) == 0);
	CHECK(ov_swtpm_ctrl(f.ctrl_path, OV_SWTPM_CMD_GET_CAPABILITY, rsp, sizeof(rsp), t.pidfd,
			    1000, &err) == 0);
	char fdpath[64], target[512];
	bool leaked = false;
	for (int i = 0; i < 64; i++) {
		ssize_t n;

		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", (int)t.pid, i);
		n = readlink(fdpath, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			leaked |= strstr(target, "sentinel") != NULL;
		}
	}
	CHECK(!leaked);
	/* Our seccomp filter under swtpm's own: two filters. */
	char proc_status[256], *buf = NULL;
	ov_error serr;
	snprintf(proc_status, sizeof(proc_status), "/proc/%d/status", (int)t.pid);
	CHECK(ov_read_file_at(AT_FDCWD, proc_status, 1 << 16, &buf, NULL, &serr) == 0);
	CHECK(buf && strstr(buf, "Seccomp:\t2") != NULL);
	CHECK(buf && strstr(buf, "Seccomp_filters:\t2") != NULL);
	free(buf);
	snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/0", (int)t.pid);
	CHECK(readlink(fdpath, target, sizeof(target)) == 9 && memcmp(target, "/dev/null", 9) == 0);
	/* A wrong start time is not this process: left alone. */
	CHECK(ov_swtpm_stop(t.pid, t.starttime + 1, f.ctrl_path, 1000, &err) == 0);
	CHECK(kill(t.pid, 0) == 0);
	/* Orderly: CMD_SHUTDOWN, exit 0. */
	CHECK(ov_swtpm_stop(t.pid, t.starttime, f.ctrl_path, 5000, &err) == 0);
	CHECK(waitpid(t.pid, &status, 0) == t.pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Gone already: nothing to do. */
	CHECK(ov_swtpm_stop(t.pid, t.starttime, f.ctrl_path, 1000, &err) == 0);
	close(t.pidfd);
	fixture_close(&f);
}

static void test_failures(void)
{
	struct fixture f;
	struct ov_swtpm t;
	ov_error err = {0};

	fixture(&f, "bad");
	struct ov_swtpm_opts o = opts(&f, "/nonexistent/swtpm");
	CHECK(ov_swtpm_spawn(&o, &t, &err) < 0);
	CHECK_ERR(&err, "starting swtpm /nonexistent/swtpm: No such file or directory");

	/* Dies at start: exit status and the last log line. */
	o.binary = "/usr/bin/swtpm";
	o.state_dir = "/nonexistent/state";
	CHECK(ov_swtpm_spawn(&o, &t, &err) == 0);
	CHECK(ov_swtpm_wait_ready(&t, f.ctrl_path, f.log, 10000, &err) < 0);
	CHECK_ERR(&err, "swtpm exited with status 1 during start-up");
	CHECK(t.pid == 0);
	close(t.pidfd);

	o.binary = "/bin/false";
	CHECK(ov_swtpm_spawn(&o, &t, &err) == 0);
	CHECK(ov_swtpm_wait_ready(&t, f.ctrl_path, f.log, 10000, &err) < 0);
	CHECK_ERR(&err, "exited with status 1");
	close(t.pidfd);
	fixture_close(&f);
}

static void test_stop_escalates(void)
{
	ov_error err = {0};
	unsigned long long st;
	int status, p[2];
	char c;
	pid_t pid;

	CHECK(pipe(p) == 0);
	pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_IGN);
		close(p[0]);
		close(p[1]); /* SIGTERM is ignored from here on */
		pause();
		_exit(0);
	}
	close(p[1]);
	CHECK(read(p[0], &c, 1) == 0);
	close(p[0]);
	CHECK(ov_proc_starttime(pid, &st, &err) == 0);
	/* No control channel to answer and SIGTERM ignored: SIGKILL. */
	CHECK(ov_swtpm_stop(pid, st, "/nonexistent/ctrl", 200, &err) == 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) &&
	      WTERMSIG(status) == SIGKILL);
}

int main(void)
{
	ov_error err = {0};

	CHECK(mkdtemp(dir) != NULL);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	test_lifecycle();
	test_failures();
	test_stop_escalates();
	close(dfd);
	ov_remove_tree_at(AT_FDCWD, dir, &err);
	return unit_done("swtpm");
}
