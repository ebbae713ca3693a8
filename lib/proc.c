/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/proc.h"

int ov_proc_boot_id(char *buf, size_t size, ov_error *err)
{
	cleanup_free char *text = NULL;
	size_t len;

	if (ov_read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 128, &text, &len, err) < 0)
		return -1;
	while (len && (text[len - 1] == '\n'))
		text[--len] = '\0';
	if (snprintf(buf, size, "%s", text) >= (int)size)
		return ov_error_set(err, ENAMETOOLONG, "boot id");
	return 0;
}

int ov_proc_starttime(pid_t pid, unsigned long long *out, ov_error *err)
{
	char state;

	return ov_proc_stat(pid, out, &state, err);
}

int ov_proc_stat(pid_t pid, unsigned long long *starttime, char *state, ov_error *err)
{
	cleanup_free char *text = NULL;
	char path[64];
	char *p;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (ov_read_file_at(AT_FDCWD, path, 4096, &text, &len, err) < 0)
		return -1;
	/* comm may hold spaces and ')': fields resume after the last ')'. */
	p = strrchr(text, ')');
	if (!p)
		return ov_error_set(err, 0, "%s: malformed", path);
	p++;
	/* field 3 (state) is the first after ')'; starttime is field 22 */
	*state = p[0] == ' ' ? p[1] : '?';
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return ov_error_set(err, 0, "%s: malformed", path);
	}
	*starttime = strtoull(p + 1, NULL, 10);
	return 0;
}

bool ov_proc_alive(pid_t pid, unsigned long long starttime)
{
	unsigned long long st;
	char state;
	ov_error ignored = {0};

	/* A zombie has exited: only its parent has not reaped it yet. */
	return pid > 0 && ov_proc_stat(pid, &st, &state, &ignored) == 0 && st == starttime &&
	       state != 'Z' && state != 'X';
}
