/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fixture of the unit tests that run the real swtpm on a state they made
 * (test-manufacture, test-pool): a temp directory, the tss user swtpm runs as
 * (root when there is none), new state directories below it, a swtpm started
 * on one under a key, and tpm2-tools run against that swtpm. Static, like
 * unit.h: a test program includes it once.
 */
#ifndef OCI_VTPM_SWTPM_FIXTURE_H
#define OCI_VTPM_SWTPM_FIXTURE_H

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/swtpm.h"
#include "unit.h"

static char dir[64]; /* the temp directory: fixture_setup */
static int dfd;
static uid_t tss_uid;
static gid_t tss_gid;
static const char *tss_name; /* NULL: no tss user, all as root */

static const char *path(const char *name)
{
	static char buf[64][256]; /* enough for every path one test holds */
	static int next;
	char *p = buf[next++ % 64];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The temp directory, made from template ("/tmp/name.XXXXXX"), and the tss
 * user. */
static void fixture_setup(const char *template)
{
	struct passwd *pw = getpwnam("tss");

	if (pw) {
		tss_uid = pw->pw_uid;
		tss_gid = pw->pw_gid;
		tss_name = "tss";
	}
	snprintf(dir, sizeof(dir), "%s", template);
	CHECK(mkdtemp(dir) != NULL);
	chmod(dir, 0755); /* swtpm as tss reaches its state below it */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void fixture_teardown(void)
{
	ov_error err = {0};

	close(dfd);
	ov_remove_tree_at(AT_FDCWD, dir, &err);
}

/* Settings whose every path is below the temp directory: run, state,
 * keys/master.key, ca/ca.key, ca/ca.pem; swtpm as tss. */
static inline void fixture_settings(struct ov_settings *s)
{
	ov_settings_defaults(s);
	s->swtpm = strdup("/usr/bin/swtpm");
	s->swtpm_user = strdup(tss_name ? tss_name : "root");
	s->run_dir = strdup(path("run"));
	s->state_dir = strdup(path("state"));
	s->master_key = strdup(path("keys/master.key"));
	s->ca_key = strdup(path("ca/ca.key"));
	s->ca_cert = strdup(path("ca/ca.pem"));
}

/* A new empty state directory owned by tss; its path. */
static const char *new_state(const char *name)
{
	const char *p = path(name);

	CHECK(mkdir(p, 0700) == 0);
	CHECK(chown(p, tss_uid, tss_gid) == 0);
	return p;
}

/* ----------------------------------------------------- a swtpm on a state */

struct tpm {
	struct ov_swtpm sw;
	char ctrl[256], tcti[300];
};

/* swtpm on state (TPM 2.0, as tss), its state encrypted with key (NULL: in
 * the clear), listening on dir/tpm.sock; ready when it returns 0. */
static int start_tpm(struct tpm *t, const char *state, const struct ov_key *key, ov_error *err)
{
	cleanup_close int server = -1, ctrl = -1, log = -1, keyfd = -1;
	int p[2];

	snprintf(t->ctrl, sizeof(t->ctrl), "%s/tpm.sock.ctrl", dir);
	snprintf(t->tcti, sizeof(t->tcti), "TPM2TOOLS_TCTI=swtpm:path=%s/tpm.sock", dir);
	server = ov_unix_listen(dfd, "tpm.sock", 0600, err);
	ctrl = ov_unix_listen(dfd, "tpm.sock.ctrl", 0600, err);
	log = openat(dfd, "swtpm.log", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (server < 0 || ctrl < 0 || log < 0)
		return -1;
	if (key) {
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		CHECK(write(p[1], key->b, sizeof(key->b)) == (ssize_t)sizeof(key->b));
		close(p[1]);
		keyfd = p[0];
	}
	struct ov_swtpm_opts o = {
	    .binary = "/usr/bin/swtpm",
	    .tpm2 = true,
	    .server_fd = server,
	    .ctrl_fd = ctrl,
	    .log_fd = log,
	    .key_fd = keyfd,
	    .state_dir = state,
	    .runas = tss_name,
	};
	if (ov_swtpm_spawn(&o, &t->sw, err) < 0)
		return -1;
	if (ov_swtpm_wait_ready(&t->sw, t->ctrl, log, 10000, err) < 0) {
		close(t->sw.pidfd);
		return -1;
	}
	return 0;
}

static void stop_tpm(struct tpm *t)
{
	ov_error err = {0};

	CHECK(ov_swtpm_stop(t->sw.pid, t->sw.starttime, t->ctrl, 5000, &err) == 0);
	waitpid(t->sw.pid, NULL, 0);
	close(t->sw.pidfd);
}

/* Run a tpm2-tools command against t; stdout to out (NULL: /dev/null).
 * Returns its exit status. */
static int tool(const struct tpm *t, const char *out, const char *const argv[])
{
	char *const envp[] = {(char *)t->tcti, "PATH=/usr/bin:/bin", "TSS2_LOG=all+NONE", NULL};
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		int fd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600) : null;

		dup2(null, 0);
		dup2(fd, 1);
		dup2(null, 2);
		execve(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif
