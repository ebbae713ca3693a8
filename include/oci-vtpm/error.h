/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The error contract of libocivtpm (the one convention; no exceptions).
 *
 * 1. A function that can fail returns a negative value (-1) and fills the
 *    caller's ov_error: a one-line message and, where there is one, an
 *    errno value in err->code. It never returns 0 or more with err set, and
 *    never prints or exits (only the mains do: lib/ returns data).
 * 2. Success is 0, or a count or a yes/no (>= 0) where the header says so
 *    (ov_vtpm_collect: 1 collected, 0 in use). "Nothing there" is not a
 *    success with a message: it is -1 with a code the header names, which
 *    callers may test: ENOENT (no such record, entry, archive: nothing was
 *    changed), ENOKEY (no master key or host CA), EBUSY (in use). Such a
 *    message is made with ov_error_code (its own words, no strerror).
 * 3. Callers that add context wrap on the way up:
 *
 *	if (ov_swtpm_start(&in, &chan, &tpm, err) < 0)
 *		return ov_error_wrap(err, "vTPM %u", idx);
 *
 *    giving "vTPM 0: spawning /usr/bin/swtpm: No such file or directory";
 *    wrapping keeps err->code.
 * 4. A failure undoes what the failing call made (each resource has one
 *    owner and one release: cleanup.h); what it cannot undo, its header
 *    says. Errors met while undoing go to a second ov_error and are logged
 *    as warnings (ov_warn), never over the first error.
 * 5. Best-effort work (gc of leftovers, warm vTPMs, stop of what is gone)
 *    logs its errors as warnings and goes on; its header says so.
 * 6. Only the main logs the error it gets, once.
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

/* Set err to the formatted message (no strerror appended) and keep code
 * in err->code: a condition callers test by its code (see 2. above).
 * Always returns -1. */
int ov_error_code(ov_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already in err with "context: ". Returns -1. */
int ov_error_wrap(ov_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear err. */
void ov_error_clear(ov_error *err);

#endif
