/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers more than one module needs: the monotonic clock, the user
 * swtpm runs as, the name of a TPM version.
 */
#ifndef OCI_VTPM_UTIL_H
#define OCI_VTPM_UTIL_H

#include <stdint.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

/* CLOCK_MONOTONIC in milliseconds (fractions kept): for deadlines and the
 * debug-level "timing:" lines. */
double ov_util_mono_ms(void);

/* Milliseconds from now to deadline (of ov_util_mono_ms), 0 once past. */
int ov_util_ms_left(int64_t deadline);

/* The user swtpm runs as (the settings' swtpm_user). */
struct ov_user {
	uid_t uid;
	gid_t gid;
	const char *name; /* NULL: root */
};
/* Look name up; NULL, "" and "root" are root (0:0, name NULL). */
int ov_util_user(const char *name, struct ov_user *u, ov_error *err);

/* "2.0" or "1.2". */
const char *ov_util_tpm_version(enum ov_tpm_version v);

#endif
