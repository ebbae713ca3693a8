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
/* Read a child's report (sizeof(int) bytes, EINTR retried) from rd:
 * the bytes read (0: the pipe closed at exec, nothing to report), or -1. */
ssize_t ov_proc_read_report(int rd, int *value);

#endif
