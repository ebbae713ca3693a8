/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error convention for all of libocivtpm.
 *
 * A function that can fail returns a negative value and fills the caller's
 * ov_error. Callers that add context wrap it on the way up:
 *
 *	if (ov_swtpm_spawn(&opts, &tpm, err) < 0)
 *		return ov_error_wrap(err, "vTPM %u", idx);
 *
 * giving "vTPM 0: spawning /usr/bin/swtpm: No such file or directory".
 * Only the main logs it, once. Messages are one line.
 */
#ifndef OCI_VTPM_ERROR_H
#define OCI_VTPM_ERROR_H

#include <stddef.h>

#define OV_ERROR_MAX 1024

typedef struct ov_error {
	int code; /* an errno value, or 0 */
	char msg[OV_ERROR_MAX];
} ov_error;

/* Set err to the formatted message; with errnum != 0 ": strerror(errnum)"
 * is appended and errnum kept in err->code. Always returns -1. */
int ov_error_set(ov_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already in err with "context: ". Returns -1. */
int ov_error_wrap(ov_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear err. */
void ov_error_clear(ov_error *err);

#endif
