/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/log.h"

static struct {
	const char *prog;
	char id[128];
	enum ov_log_level level;
	int fd;
	int syslog_open;
} sink = {"oci-vtpm", "", OV_LOG_INFO, -1, 0};

int ov_log_detach(void)
{
	if (sink.syslog_open) {
		closelog();
		sink.syslog_open = 0;
	}
	return sink.fd;
}

static const char *const level_names[] = {"error", "warning", "info", "debug"};

/* Copy src to dst (size bytes) with every control character, DEL and
 * backslash written as \xNN: whatever a message quotes (a name, an id, a
 * path from a container) stays on its one line and cannot forge another. */
static void escape(char *dst, size_t size, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p && o + 1 < size; p++) {
		if (*p >= 0x20 && *p != 0x7f && *p != '\\') {
			dst[o++] = (char)*p;
			continue;
		}
		if (o + 5 >= size)
			break;
		dst[o++] = '\\';
		dst[o++] = 'x';
		dst[o++] = hex[*p >> 4];
		dst[o++] = hex[*p & 0xf];
	}
	dst[o] = '\0';
}

void ov_log_init(const char *prog)
{
	sink.prog = prog;
}

void ov_log_set_id(const char *id)
{
	escape(sink.id, sizeof(sink.id), id ? id : "");
}

void ov_log_set_level(enum ov_log_level level)
{
	sink.level = level;
}

int ov_log_parse_level(const char *s, enum ov_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum ov_log_level)i;
			return 0;
		}
	}
	return -1;
}

int ov_log_open_file(const char *path, ov_error *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return ov_error_set(err, errno, "opening log file %s", path);
	if (sink.fd >= 0)
		close(sink.fd);
	sink.fd = fd;
	return 0;
}

void ov_log(enum ov_log_level level, const char *fmt, ...)
{
	char raw[OV_ERROR_MAX + 256];
	char msg[sizeof(raw) * 2];
	char line[sizeof(msg) + 512];
	const char *sep = sink.id[0] ? ": " : "";
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape(msg, sizeof(msg), raw);

	if (level <= OV_LOG_WARNING) {
		n = snprintf(line, sizeof(line), "%s: %s%s%s%s\n", sink.prog, sink.id, sep,
			     level == OV_LOG_WARNING ? "warning: " : "", msg);
		if (n > 0 && write(STDERR_FILENO, line, strnlen(line, sizeof(line))) < 0) {
			/* nowhere left to report it */
		}
	}
	if (level > sink.level)
		return;
	if (sink.fd >= 0) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s %s%s%s\n", stamp,
			     ts.tv_nsec / 1000000, sink.prog, (int)getpid(), level_names[level],
			     sink.id, sep, msg);
		if (n > 0 && write(sink.fd, line, strnlen(line, sizeof(line))) < 0) {
			/* nowhere left to report it */
		}
		return;
	}
	if (!sink.syslog_open) {
		openlog(sink.prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		sink.syslog_open = 1;
	}
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	syslog(prio[level], "%s%s%s", sink.id, sep, msg);
}
