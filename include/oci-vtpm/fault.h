/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault points for the test suites (tests/bats/faults.bats). ov_fault(STEP)
 * marks a step of a start or a stop; in a binary built with -DOV_FAULTS
 * (build/faults/oci-vtpm-hook, never installed) it kills the process with
 * SIGKILL there when $OCI_VTPM_FAULT is STEP, as a crash or an OOM kill
 * would, and stops it (SIGSTOP, until SIGCONT) when it is stop:STEP, as a
 * start slowed there. In every other build it does nothing and reads no
 * environment.
 *
 * Steps: start-slot (slot locked, empty), start-claimed (uid, state dirs,
 * then max_vtpms' claim), start-dirs (and the holder recorded),
 * start-provisioned (name claimed, state restored), start-launched
 * (swtpm running, recorded), start-attached (placed in the container);
 * stop-locked (record read), stop-stopped (swtpm stopped, not archived),
 * archive-written (new generation on disk, meta.json not updated),
 * stop-archived (archived, slot not removed).
 *
 * Conditions, not steps: ov_fault_on(WHAT) is true in that build when
 * $OCI_VTPM_FAULT is WHAT, false everywhere else. no-pidfd: pidfd_open(2)
 * fails with ENOSYS, as on Linux before 5.3 (lib/proc.c's fallback).
 * stop-slow: a stop's detached worker (lib/vtpm_stop.c) sleeps 8 s before
 * it stops swtpm, as a slow disk would delay its archive.
 */
#ifndef OCI_VTPM_FAULT_H
#define OCI_VTPM_FAULT_H

#include <stdbool.h>

#define OV_FAULT_ENV "OCI_VTPM_FAULT"

void ov_fault(const char *step);
bool ov_fault_on(const char *what);

#endif
