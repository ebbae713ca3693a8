/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What /proc says about a process and the boot: enough to tell a pid from
 * its reuse (the start time) and a record from before a reboot.
 */
#ifndef OCI_VTPM_PROC_H
#define OCI_VTPM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

/* Is pid still the process that had this start time, and not a zombie? */
bool ov_proc_alive(pid_t pid, unsigned long long starttime);

/* The kernel's boot id, to tell a record from before a reboot. */
int ov_proc_boot_id(char *buf, size_t size, ov_error *err);
/* Fields 22 (start time) and 3 (state) of /proc/<pid>/stat. */
int ov_proc_stat(pid_t pid, unsigned long long *starttime, char *state, ov_error *err);
/* Field 22 of /proc/<pid>/stat. */
int ov_proc_starttime(pid_t pid, unsigned long long *out, ov_error *err);
/* The CPU time (user + system) pid has used so far, in ms. */
int ov_proc_cpu_ms(pid_t pid, uint64_t *ms, ov_error *err);

/* fork() with a close-on-exec pipe from the child to the parent, the way
 * a child reports why it could not exec or set up. Returns 0 in the child
 * (*wr: the write end), the pid in the parent (*rd: the read end; the
 * write end closed), or -1 naming what failed in what. */
pid_t ov_proc_fork_piped(int *rd, int *wr, const char *what, ov_error *err);
/* Close every fd from 3 up but the n fds of keep (each >= 0 or -1:
 * ignored), for a process that must hold nothing of its caller's. */
int ov_proc_close_except(const int *keep, unsigned n, ov_error *err);

/* Read a child's report (sizeof(int) bytes, EINTR retried) from rd:
 * the bytes read (0: the pipe closed at exec, nothing to report), or -1. */
ssize_t ov_proc_read_report(int rd, int *value);

/*
 * A process to signal and wait for, safe from pid reuse. Where the kernel
 * has pidfds, its pidfd. Where pidfd_open(2) fails with ENOSYS (Linux before
 * 5.3; valgrind 3.19 does not know it either), its pid and start time, as
 * runc tracks processes: the start time is checked before every signal,
 * and the exit is polled in /proc. Everything that opens a pidfd goes
 * through here, so the fallback is in this one place.
 */
struct ov_proc_ref {
	pid_t pid;
	unsigned long long starttime;
	int pidfd; /* -1: the fallback */
};

/* pidfd_open(pid), or -1 with errno ENOSYS where there is none (and, in a
 * test build, when $OCI_VTPM_FAULT is no-pidfd: lib/fault.c). */
int ov_pidfd_open(pid_t pid);
/* Take hold of pid if it is still the process started at starttime (0:
 * take it as it is: an unreaped child of ours, whose pid cannot be reused).
 * Returns 0 with *p set, 1 when it is gone (or the pid is another
 * process's now; *p then holds nothing), -1 on error. */
int ov_proc_ref_open(struct ov_proc_ref *p, pid_t pid, unsigned long long starttime, ov_error *err);
void ov_proc_ref_close(struct ov_proc_ref *p);
/* Send sig (its pidfd; else kill(2) once the start time still matches).
 * 0, or -1 with errno (ESRCH: it is gone). */
int ov_proc_ref_signal(const struct ov_proc_ref *p, int sig);
/* Wait up to timeout_ms (0: just look) for it to exit (a zombie counts):
 * 0 once it has, -1 when it still runs. */
int ov_proc_ref_wait(const struct ov_proc_ref *p, int timeout_ms);

/* An fd that becomes readable (POLLIN) when a child exits, for poll loops
 * (lib/swtpm_ctrl.c, lib/vtpmx.c, the control relay): its pidfd; where
 * there are no pidfds, the read end of a pipe whose write end the child
 * holds for its life. ov_proc_exit_pipe before the fork: with pidfds, both
 * ends -1; else a close-on-exec pipe, the write end (*wr) for the child to
 * keep (dup'd without O_CLOEXEC). After the fork, the parent closes *wr and
 * calls ov_proc_exit_fd: the pidfd of child, or *rd (taken). */
int ov_proc_exit_pipe(int *rd, int *wr, ov_error *err);
int ov_proc_exit_fd(pid_t child, int *rd, ov_error *err);

/* An fd for setns(2) into pid's mount namespace: its pidfd (Linux 5.8+
 * takes one), else /proc/<pid>/ns/mnt, opened between two reads of the
 * start time that must agree (not a process that took a reused pid). */
int ov_proc_mntns_fd(pid_t pid, ov_error *err);

#endif
