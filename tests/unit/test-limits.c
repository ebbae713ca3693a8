/* SPDX-License-Identifier: Apache-2.0 */
/* swtpm's cgroups (lib/limits.c): the parent setting's checks, the text of
 * each limit file; as root, a real slot cgroup made, joined by a child,
 * accounted, removed, gc's removal of the empty ones no record names, and
 * a failure that is an error only when the settings ask for limits. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cgroup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/limits.h"
#include "unit.h"

static void test_parent(void)
{
	CHECK(ov_limits_parent_valid(""));
	CHECK(ov_limits_parent_valid("oci-vtpm"));
	CHECK(ov_limits_parent_valid("a/b.c/d-e"));
	CHECK(!ov_limits_parent_valid("/oci-vtpm"));
	CHECK(!ov_limits_parent_valid("a/../b"));
	CHECK(!ov_limits_parent_valid(".."));
	CHECK(!ov_limits_parent_valid("./a"));
	CHECK(!ov_limits_parent_valid("a//b"));
	CHECK(!ov_limits_parent_valid("a/"));
	CHECK(!ov_limits_parent_valid("a b"));
	CHECK(!ov_limits_parent_valid("a\nb"));
}

static void test_text(void)
{
	char b[64];

	ov_limits_text("memory.max", true, 67108864, b, sizeof(b));
	CHECK(strcmp(b, "67108864") == 0);
	ov_limits_text("memory.max", true, 0, b, sizeof(b));
	CHECK(strcmp(b, "max") == 0);
	ov_limits_text("memory.limit_in_bytes", false, 0, b, sizeof(b));
	CHECK(strcmp(b, "-1") == 0);
	ov_limits_text("pids.max", false, 0, b, sizeof(b));
	CHECK(strcmp(b, "max") == 0);
	ov_limits_text("cpu.max", true, 50000, b, sizeof(b));
	CHECK(strcmp(b, "50000 100000") == 0);
	ov_limits_text("cpu.max", true, 0, b, sizeof(b));
	CHECK(strcmp(b, "max 100000") == 0);
	ov_limits_text("cpu.cfs_quota_us", false, 0, b, sizeof(b));
	CHECK(strcmp(b, "-1") == 0);
}

#define TOK_A "0123456789abcdef0123456789abcd0a"
#define TOK_C "0123456789abcdef0123456789abcd0c"
#define TOK_D "0123456789abcdef0123456789abcd0d"

/* gc's question: is name one of the tokens in arg (a NULL-ended list)? */
static bool known(const char *name, void *arg)
{
	for (const char *const *t = arg; *t; t++)
		if (strcmp(*t, name) == 0)
			return true;
	return false;
}

/* As root on a host with a pids controller: the whole life of a slot's
 * cgroup. */
static void test_real(void)
{
	struct ov_settings s;
	struct ov_limits_cg cg = OV_LIMITS_CG_INIT;
	struct ov_limits_usage u;
	ov_error err = {0};
	char parent[64];
	const char *none[] = {NULL}, *c_known[] = {TOK_C, NULL};
	int status, fd, p[2];
	char joined = 0;
	pid_t c;

	fd = ov_cgroup_open_dir("pids", "/", &err);
	if (fd < 0) {
		ov_error_clear(&err);
		fd = ov_cgroup_open_dir(NULL, "/", &err);
	}
	if (getuid() != 0 || fd < 0) {
		printf("# test-limits: not root or no cgroup: real cgroup part not run\n");
		return;
	}
	ov_settings_defaults(&s);
	snprintf(parent, sizeof(parent), "ovunit-limits-%d", (int)getpid());
	s.swtpm_cgroup = parent;
	s.swtpm_pids_max = 4;
	s.swtpm_limits_required = true;
	CHECK(ov_limits_create(&s, TOK_A, 2, &cg, &err) == 0);
	CHECK(cg.n > 0 && cg.required);
	CHECK(ov_limits_usage(&s, TOK_A, &u, &err) == 1);
	CHECK(u.pids == 0 && u.pids_max == 8);
	CHECK(u.memory_max == -1 || u.memory_max == 2 * 64 * 1024 * 1024);
	/* CPU: only once the TPMs answer (their start is CPU-bound). */
	CHECK(u.cpu_max == -1 || u.cpu_max == 0);
	CHECK(ov_limits_started(&s, &cg, TOK_A, 2, &err) == 0);
	CHECK(ov_limits_usage(&s, TOK_A, &u, &err) == 1);
	CHECK(u.cpu_max == -1 || u.cpu_max == 100);
	CHECK(ov_limits_usage(&s, "", &u, &err) == 0 && u.pids == -1);
	CHECK(pipe(p) == 0);
	c = fork();
	if (c == 0) {
		char ok = ov_limits_join(&cg) == 0 ? 'y' : 'n';

		close(p[0]);
		if (write(p[1], &ok, 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(p[1]);
	ov_limits_close(&cg);
	CHECK(read(p[0], &joined, 1) == 1 && joined == 'y');
	close(p[0]);
	ov_limits_usage(&s, TOK_A, &u, &err);
	CHECK(u.pids == 1);
	/* Busy: gc leaves it even when no record names it. */
	CHECK(ov_limits_gc(&s, known, none) == 0);
	CHECK(ov_limits_usage(&s, TOK_A, &u, &err) == 1 && u.pids == 1);
	kill(c, SIGKILL);
	CHECK(waitpid(c, &status, 0) == c && WIFSIGNALED(status));
	ov_limits_remove(&s, TOK_A);
	CHECK(ov_limits_usage(&s, TOK_A, &u, &err) == 0);
	/* gc: an empty one no record names goes, an empty recorded one (a
	 * start between its record and its first swtpm) stays. */
	CHECK(ov_limits_create(&s, TOK_C, 1, &cg, &err) == 0);
	ov_limits_close(&cg);
	CHECK(ov_limits_create(&s, TOK_D, 1, &cg, &err) == 0);
	ov_limits_close(&cg);
	CHECK(ov_limits_gc(&s, known, c_known) >= 1);
	CHECK(ov_limits_usage(&s, TOK_C, &u, &err) == 1);
	CHECK(ov_limits_usage(&s, TOK_D, &u, &err) == 0);
	ov_limits_remove(&s, TOK_C);
	/* A cgroup that cannot be made: an error when the settings ask for
	 * limits, else none and the start goes on (a warning). */
	s.swtpm_cgroup = "/abs";
	CHECK(ov_limits_create(&s, TOK_D, 1, &cg, &err) < 0);
	CHECK_ERR(&err, "swtpm_cgroup");
	s.swtpm_limits_required = false;
	CHECK(ov_limits_create(&s, TOK_D, 1, &cg, &err) == 0 && cg.n == 0 && err.code == 0);
	CHECK(ov_limits_join(&cg) == 0);
	close(fd);
	/* The scratch parent in every hierarchy. */
	for (size_t i = 0; i < 5; i++) {
		const char *ctl[] = {"memory", "pids", "cpu", "cpuacct", NULL};
		ov_error ignored = {0};
		int root = ov_cgroup_open_dir(ctl[i], "/", &ignored);

		if (root >= 0) {
			unlinkat(root, parent, AT_REMOVEDIR);
			close(root);
		}
	}
}

int main(void)
{
	test_parent();
	test_text();
	test_real();
	return unit_done("limits");
}
