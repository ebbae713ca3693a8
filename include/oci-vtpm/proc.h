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

#endif
