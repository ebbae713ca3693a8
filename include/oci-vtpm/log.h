/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One levelled log sink. Every line carries the program name and, once
 * known, the container id. Errors and warnings go to stderr; every line at
 * or above the configured level goes to the log file when one is set, and to
 * syslog otherwise (a hook's stderr is often lost).
 */
#ifndef OCI_VTPM_LOG_H
#define OCI_VTPM_LOG_H

#include "oci-vtpm/error.h"

enum ov_log_level {
	OV_LOG_ERROR,
	OV_LOG_WARNING,
	OV_LOG_INFO,
	OV_LOG_DEBUG,
};

void ov_log_init(const char *prog);
void ov_log_set_id(const char *id);
void ov_log_set_level(enum ov_log_level level);
/* Append to path (O_APPEND, 0600) from now on instead of syslog. */
int ov_log_open_file(const char *path, ov_error *err);
int ov_log_parse_level(const char *s, enum ov_log_level *out);
/* In a detached process (no stderr of its caller's): closes the syslog
 * connection (reopened at the next line) and returns the log file's fd,
 * which it must keep open (-1: none, lines go to syslog). */
int ov_log_detach(void);

void ov_log(enum ov_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ov_error_log(e) ov_log(OV_LOG_ERROR, "%s", (e)->msg)
#define ov_warn(...)	ov_log(OV_LOG_WARNING, __VA_ARGS__)
#define ov_info(...)	ov_log(OV_LOG_INFO, __VA_ARGS__)
#define ov_debug(...)	ov_log(OV_LOG_DEBUG, __VA_ARGS__)

#endif
