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
#include <unistd.h>

#include "oci-vtpm/socket.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/util.h"
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
 * keys/master.key, ca/ca.key, ca/ca.pem (none of them made); swtpm as tss. */
__attribute__((unused)) static void fixture_settings(struct ov_settings *st)
{
	ov_settings_defaults(st);
	free(st->swtpm);
	free(st->swtpm_user);
	free(st->run_dir);
	free(st->state_dir);
	free(st->master_key);
	free(st->ca_key);
	free(st->ca_cert);
	st->swtpm = strdup("/usr/bin/swtpm");
	st->swtpm_user = strdup(tss_name ? tss_name : "root");
	st->run_dir = strdup(path("run"));
	st->state_dir = strdup(path("state"));
	st->master_key = strdup(path("keys/master.key"));
	st->ca_key = strdup(path("ca/ca.key"));
	st->ca_cert = strdup(path("ca/ca.pem"));
}

/* A child process that lives until killed (and runs when this returns). */
__attribute__((unused)) static pid_t fixture_child(void)
{
	int p[2];
	char c;
	pid_t pid;

	CHECK(pipe(p) == 0);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		close(p[1]);
		pause();
		_exit(0);
	}
	close(p[1]);
	CHECK(read(p[0], &c, 1) == 0); /* closed: the child runs */
	close(p[0]);
	return pid;
}

/* A new empty state directory owned by tss; its path. */
__attribute__((unused)) static const char *new_state(const char *name)
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
__attribute__((unused)) static int start_tpm(struct tpm *t, const char *state,
					     const struct ov_key *key, ov_error *err)
{
	cleanup_close int server = -1;

	snprintf(t->ctrl, sizeof(t->ctrl), "%s/tpm.sock.ctrl", dir);
	snprintf(t->tcti, sizeof(t->tcti), "TPM2TOOLS_TCTI=swtpm:path=%s/tpm.sock", dir);
	server = ov_socket_listen(dfd, "tpm.sock", 0600, err);
	if (server < 0)
		return -1;
	unlinkat(dfd, "swtpm.log", 0); /* this swtpm's lines only */
	struct ov_swtpm_instance in = {
	    .binary = "/usr/bin/swtpm",
	    .tpm2 = true,
	    .dir_fd = dfd,
	    .state_dir = state,
	    .log_name = "swtpm.log",
	    .ctrl_name = "tpm.sock.ctrl",
	    .ctrl_mode = 0600,
	    .key = key,
	    .runas = tss_name,
	    .timeout_ms = 10000,
	};
	if (ov_swtpm_start(&in, &server, &t->sw, err) < 0) {
		if (t->sw.pidfd >= 0)
			close(t->sw.pidfd);
		return -1;
	}
	return 0;
}

__attribute__((unused)) static void stop_tpm(struct tpm *t)
{
	ov_error err = {0};

	CHECK(ov_swtpm_stop(t->sw.pid, t->sw.starttime, t->ctrl, 5000, &err) == 0);
	waitpid(t->sw.pid, NULL, 0);
	close(t->sw.pidfd);
}

/* Run a tpm2-tools command against t; stdout to out (NULL: /dev/null).
 * Returns its exit status. */
__attribute__((unused)) static int tool(const struct tpm *t, const char *out,
					const char *const argv[])
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
