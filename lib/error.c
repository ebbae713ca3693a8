/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "oci-vtpm/error.h"

static void set_msg(ov_error *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void set_msg(ov_error *err, int code, const char *fmt, va_list ap)
{
	if (vsnprintf(err->msg, sizeof(err->msg), fmt, ap) < 0)
		err->msg[0] = '\0';
	err->code = code;
}

int ov_error_set(ov_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_msg(err, errnum, fmt, ap);
	va_end(ap);
	if (errnum) {
		size_t len = strlen(err->msg);
		snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(errnum));
	}
	return -1;
}

int ov_error_code(ov_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_msg(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int ov_error_wrap(ov_error *err, const char *fmt, ...)
{
	char old[OV_ERROR_MAX];
	va_list ap;
	int n;

	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	/* Room for ": ", at least nothing of old, and the NUL. */
	if ((size_t)n + 3 <= sizeof(err->msg)) {
		size_t len = (size_t)n;

		err->msg[len++] = ':';
		err->msg[len++] = ' ';
		err->msg[len] = '\0';
		strncat(err->msg, old, sizeof(err->msg) - len - 1);
	}
	return -1;
}

void ov_error_clear(ov_error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}
