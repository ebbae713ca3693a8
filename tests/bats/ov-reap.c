/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ov-reap PIDFILE CMD...: test helper for the bats harness.
 *
 * Runs CMD, which is expected to start a detached process and write its pid
 * to PIDFILE (`crun run -d --pid-file PIDFILE ...`), as a child subreaper.
 * When CMD fails, exits with CMD's status. Otherwise the detached process
 * becomes our child once CMD exits; we wait for it and exit with its status
 * (128 + signal when killed), like a foreground `run` would.
 *
 * Why: `crun run` in the foreground waits until it has no child left at all,
 * and the swtpm daemons a createRuntime hook starts are its children, so it
 * never returns (and never runs poststop). `run -d` under this helper gives
 * the container's exit status back without that wait.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REAPED 256

static int exit_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return (pid_t)v;
}

int main(int argc, char **argv)
{
	pid_t reaped[MAX_REAPED];
	int statuses[MAX_REAPED];
	int n = 0, st, i;
	pid_t cmd, target = -1, r;

	if (argc < 3) {
		fprintf(stderr, "usage: ov-reap PIDFILE CMD...\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		perror("ov-reap: prctl(PR_SET_CHILD_SUBREAPER)");
		return 2;
	}
	cmd = fork();
	if (cmd < 0) {
		perror("ov-reap: fork");
		return 2;
	}
	if (cmd == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	for (;;) {
		r = waitpid(-1, &st, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "ov-reap: lost track of pid %d\n", (int)target);
			return 2;
		}
		if (r == cmd) {
			if (exit_code(st) != 0)
				return exit_code(st);
			target = read_pid(argv[1]);
			if (target <= 0) {
				fprintf(stderr, "ov-reap: no pid in %s\n", argv[1]);
				return 2;
			}
			for (i = 0; i < n; i++)
				if (reaped[i] == target)
					return exit_code(statuses[i]);
			continue;
		}
		if (target > 0 && r == target)
			return exit_code(st);
		if (target <= 0 && n < MAX_REAPED) {
			reaped[n] = r;
			statuses[n] = st;
			n++;
		}
	}
}
