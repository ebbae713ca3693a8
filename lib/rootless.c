/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/rootless.h"

/* id as the parent user namespace sees it, from /proc/self/uid_map; id
 * itself when the map cannot be read (no /proc: the initial namespace). */
static uid_t outside(uid_t id)
{
	cleanup_free char *text = NULL;
	char *line, *save = NULL;
	ov_error ignored = {0};

	if (ov_read_file_at(AT_FDCWD, "/proc/self/uid_map", 1 << 16, &text, NULL, &ignored) < 0)
		return id;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long in, out, count;

		if (sscanf(line, "%lu %lu %lu", &in, &out, &count) == 3 && id >= in &&
		    id - in < count)
			return (uid_t)(out + (id - in));
	}
	return (uid_t)-1; /* not mapped: cannot be */
}

uid_t ov_outside_uid(void)
{
	/* (not cached: a child may drop root or enter a user namespace) */
	return outside(geteuid());
}

/* Does uid have a passwd entry? */
static bool known_user(uid_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	return getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res;
}

bool ov_rootless(void)
{
	uid_t out = ov_outside_uid();

	if (out == 0)
		return false;
	if (geteuid() != 0)
		return true;
	/* Root of a user namespace mapped to a user: rootless podman's (the
	 * user is in the passwd file it shares with the host), or a system
	 * container's root (LXD and the like: a subordinate id no passwd
	 * entry names), which keeps root's defaults in its own /etc. */
	return known_user(out);
}

/* $var when it is an absolute path, else the user's home (passwd entry
 * of the outside uid; $HOME only when that has none) and fallback. */
static int base_dir(const char *var, const char *fallback, char **out, ov_error *err)
{
	const char *v = getenv(var), *home = NULL;
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (v && v[0] == '/')
		return asprintf(out, "%s/oci-vtpm", v) < 0 ? ov_error_set(err, ENOMEM, "%s", var)
							   : 0;
	if (getpwuid_r(ov_outside_uid(), &pw, buf, sizeof(buf), &res) == 0 && res &&
	    pw.pw_dir[0] == '/')
		home = pw.pw_dir;
	else
		home = getenv("HOME");
	if (!home || home[0] != '/')
		return ov_error_set(err, 0,
				    "rootless: $%s is not set and uid %u has no home directory",
				    var, (unsigned)ov_outside_uid());
	return asprintf(out, "%s/%s/oci-vtpm", home, fallback) < 0
		   ? ov_error_set(err, ENOMEM, "%s", var)
		   : 0;
}

int ov_user_dir(enum ov_user_dir which, char **out, ov_error *err)
{
	const char *v;

	*out = NULL;
	switch (which) {
	case OV_DIR_CONFIG:
		return base_dir("XDG_CONFIG_HOME", ".config", out, err);
	case OV_DIR_DATA:
		return base_dir("XDG_DATA_HOME", ".local/share", out, err);
	case OV_DIR_RUNTIME:
		v = getenv("XDG_RUNTIME_DIR");
		if (v && v[0] == '/')
			return asprintf(out, "%s/oci-vtpm", v) < 0
				   ? ov_error_set(err, ENOMEM, "XDG_RUNTIME_DIR")
				   : 0;
		return asprintf(out, "/run/user/%u/oci-vtpm", (unsigned)ov_outside_uid()) < 0
			   ? ov_error_set(err, ENOMEM, "XDG_RUNTIME_DIR")
			   : 0;
	}
	return ov_error_set(err, EINVAL, "user directory");
}
