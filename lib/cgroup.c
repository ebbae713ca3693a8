/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "oci-vtpm/cgroup.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/proc.h"

#define PROC_CGROUP_MAX	 (64u << 10)
#define MOUNTINFO_MAX	 (16u << 20)
#define DEVICES_LIST_MAX (1u << 20)

/* --- rules ------------------------------------------------------------------ */

static int parse_num(const char **p, long *out)
{
	long v = 0;

	if (**p == '*') {
		(*p)++;
		*out = -1;
		return 0;
	}
	if (**p < '0' || **p > '9')
		return -1;
	while (**p >= '0' && **p <= '9') {
		v = v * 10 + (**p - '0');
		if (v > 0xfffff)
			return -1;
		(*p)++;
	}
	*out = v;
	return 0;
}

int ov_devrule_parse(const char *s, struct ov_devrule *out)
{
	const char *p = s;

	if (*p != 'a' && *p != 'b' && *p != 'c')
		return -1;
	out->type = *p++;
	if (*p++ != ' ')
		return -1;
	if (parse_num(&p, &out->major) < 0 || *p++ != ':' || parse_num(&p, &out->minor) < 0)
		return -1;
	if (*p++ != ' ')
		return -1;
	out->access = 0;
	for (; *p && *p != '\n'; p++) {
		unsigned bit = *p == 'r'   ? OV_DEV_READ
			       : *p == 'w' ? OV_DEV_WRITE
			       : *p == 'm' ? OV_DEV_MKNOD
					   : 0;

		if (!bit || (out->access & bit))
			return -1;
		out->access |= bit;
	}
	if (!out->access || (*p == '\n' && p[1]))
		return -1;
	return 0;
}

bool ov_devrule_covers(const struct ov_devrule *r, unsigned maj, unsigned min, unsigned access)
{
	return (r->type == 'a' || r->type == 'c') &&
	       (r->major < 0 || (unsigned long)r->major == maj) &&
	       (r->minor < 0 || (unsigned long)r->minor == min) && (r->access & access) == access;
}

bool ov_devices_list_allows(const char *list, unsigned maj, unsigned min, unsigned access)
{
	const char *line = list;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[64];
		struct ov_devrule r;

		if (len < sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len] = '\0';
			if (ov_devrule_parse(buf, &r) == 0 &&
			    ov_devrule_covers(&r, maj, min, access))
				return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

/* --- /proc/<pid>/cgroup ------------------------------------------------------ */

static bool list_has(const char *list, size_t len, const char *word)
{
	size_t wl = strlen(word);
	const char *p = list, *end = list + len;

	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		size_t l = c ? (size_t)(c - p) : (size_t)(end - p);

		if (l == wl && memcmp(p, word, wl) == 0)
			return true;
		if (!c)
			break;
		p = c + 1;
	}
	return false;
}

int ov_proc_cgroup_path(const char *text, const char *controller, char **out, ov_error *err)
{
	const char *line = text;

	*out = NULL;
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		const char *end = nl ? nl : line + strlen(line);
		const char *c1 = memchr(line, ':', (size_t)(end - line)), *c2, *path;
		size_t plen;
		bool match;

		if (!c1 || !(c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1))))
			return ov_error_set(err, 0, "malformed cgroup line \"%.*s\"",
					    (int)(end - line > 80 ? 80 : end - line), line);
		path = c2 + 1;
		plen = (size_t)(end - path);
		if (controller)
			match = list_has(c1 + 1, (size_t)(c2 - c1 - 1), controller);
		else
			match = c1 - line == 1 && line[0] == '0' && c2 == c1 + 1;
		if (match) {
			static const char deleted[] = " (deleted)";

			if (plen == 0 || path[0] != '/')
				return ov_error_set(err, 0, "malformed cgroup path \"%.*s\"",
						    (int)(plen > 80 ? 80 : plen), path);
			if (plen >= sizeof(deleted) - 1 &&
			    memcmp(path + plen - (sizeof(deleted) - 1), deleted,
				   sizeof(deleted) - 1) == 0)
				return ov_error_set(err, 0, "the cgroup %.*s is deleted", (int)plen,
						    path);
			*out = strndup(path, plen);
			if (!*out)
				return ov_error_set(err, ENOMEM, "cgroup path");
			return 1;
		}
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* --- /proc/self/mountinfo ---------------------------------------------------- */

static bool is_octal(char c)
{
	return c >= '0' && c <= '7';
}

/* Copy a mountinfo field (octal escapes like \040 decoded). */
static char *unescape(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 3 < len && is_octal(s[i + 1]) && s[i + 1] <= '3' &&
		    is_octal(s[i + 2]) && is_octal(s[i + 3])) {
			*o++ =
			    (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

/* Split a line into space-separated fields, at most max. */
static size_t split_fields(const char *line, size_t len, const char **f, size_t *fl, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len && n < max) {
		size_t start;

		while (i < len && line[i] == ' ')
			i++;
		if (i >= len)
			break;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		f[n] = line + start;
		fl[n] = i - start;
		n++;
	}
	return n;
}

/* If root is a prefix of path at a component boundary, the rest (no leading '/'). */
static const char *below(const char *root, const char *path)
{
	size_t rl = strlen(root);

	if (strcmp(root, "/") == 0)
		return path + 1;
	if (strncmp(root, path, rl) != 0)
		return NULL;
	if (path[rl] == '\0')
		return path + rl;
	if (path[rl] == '/')
		return path + rl + 1;
	return NULL;
}

int ov_mountinfo_find_cgroup(const char *text, const char *controller, const char *cgpath,
			     char **mnt, char **sub, ov_error *err)
{
	const char *line = text;
	size_t best_len = 0;
	bool found = false;

	*mnt = NULL;
	*sub = NULL;
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *f[64];
		size_t fl[64], n, dash;

		n = split_fields(line, len, f, fl, 64);
		for (dash = 6; dash < n; dash++)
			if (fl[dash] == 1 && f[dash][0] == '-')
				break;
		if (dash + 3 >= n) {
			line = nl ? nl + 1 : NULL;
			continue; /* malformed or truncated: not ours */
		}
		{
			const char *fstype = f[dash + 1], *sopts = f[dash + 3];
			size_t ftl = fl[dash + 1], sol = fl[dash + 3];
			bool match;

			if (controller)
				match = ftl == 6 && memcmp(fstype, "cgroup", 6) == 0 &&
					list_has(sopts, sol, controller);
			else
				match = ftl == 7 && memcmp(fstype, "cgroup2", 7) == 0;
			if (match) {
				cleanup_free char *root = unescape(f[3], fl[3]);
				cleanup_free char *mp = unescape(f[4], fl[4]);
				const char *rest;

				if (!root || !mp)
					return ov_error_set(err, ENOMEM, "mountinfo");
				rest = below(root, cgpath);
				if (rest && (!found || strlen(root) > best_len)) {
					char *s = strdup(rest);

					if (!s)
						return ov_error_set(err, ENOMEM, "mountinfo");
					free(*mnt);
					free(*sub);
					*mnt = take_ptr(mp);
					*sub = s;
					best_len = strlen(root);
					found = true;
				}
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return found ? 1 : 0;
}

/* --- config.json ---------------------------------------------------------- */

static unsigned access_bits(const char *s)
{
	unsigned a = 0;

	for (; s && *s; s++)
		a |= *s == 'r'	 ? OV_DEV_READ
		     : *s == 'w' ? OV_DEV_WRITE
		     : *s == 'm' ? OV_DEV_MKNOD
				 : 0;
	return a;
}

bool ov_spec_devices_allow(json_object *spec, unsigned maj, unsigned min, unsigned access)
{
	json_object *linux_, *res, *devs;
	unsigned allowed = 0;
	size_t n;

	if (!spec || !json_object_object_get_ex(spec, "linux", &linux_) ||
	    !json_object_object_get_ex(linux_, "resources", &res) ||
	    !json_object_object_get_ex(res, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array))
		return false;
	n = json_object_array_length(devs);
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(devs, i), *v;
		struct ov_devrule r = {.type = 'a', .major = -1, .minor = -1};
		bool allow;

		if (!json_object_is_type(d, json_type_object) ||
		    !json_object_object_get_ex(d, "allow", &v) ||
		    !json_object_is_type(v, json_type_boolean))
			continue;
		allow = json_object_get_boolean(v);
		if (json_object_object_get_ex(d, "type", &v) &&
		    json_object_is_type(v, json_type_string)) {
			const char *t = json_object_get_string(v);

			if (strlen(t) != 1 || (t[0] != 'a' && t[0] != 'b' && t[0] != 'c'))
				continue;
			r.type = t[0];
		}
		if (json_object_object_get_ex(d, "major", &v) &&
		    json_object_is_type(v, json_type_int))
			r.major = (long)json_object_get_int64(v);
		if (json_object_object_get_ex(d, "minor", &v) &&
		    json_object_is_type(v, json_type_int))
			r.minor = (long)json_object_get_int64(v);
		r.access = OV_DEV_READ | OV_DEV_WRITE | OV_DEV_MKNOD;
		if (json_object_object_get_ex(d, "access", &v) &&
		    json_object_is_type(v, json_type_string))
			r.access = access_bits(json_object_get_string(v));
		/* Does the rule concern this device at all? */
		if (!ov_devrule_covers(&(struct ov_devrule){r.type, r.major, r.minor, 0}, maj, min,
				       0))
			continue;
		if (allow)
			allowed |= r.access;
		else
			allowed &= ~r.access;
	}
	return (allowed & access) == access;
}

/* --- the hook's step --------------------------------------------------------- */

static int read_proc_cgroup(pid_t pid, char **out, ov_error *err)
{
	char path[64];
	cleanup_close int fd = -1;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/cgroup");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ov_error_set(err, errno, "opening %s", path);
	if (ov_read_fd(fd, PROC_CGROUP_MAX, out, NULL, err) < 0)
		return ov_error_wrap(err, "%s", path);
	return 0;
}

/* The cgroup path of pid (0: ourselves) for controller (NULL: v2). */
static int cgroup_path_of(pid_t pid, const char *controller, char **out, ov_error *err)
{
	cleanup_free char *text = NULL;
	int r;

	if (read_proc_cgroup(pid, &text, err) < 0)
		return -1;
	r = ov_proc_cgroup_path(text, controller, out, err);
	if (r < 0)
		return ov_error_wrap(err, "/proc/%d/cgroup", pid > 0 ? (int)pid : (int)getpid());
	return r;
}

/* Open the cgroup directory cgpath of the hierarchy with controller (NULL:
 * cgroup2) through the mount that holds it; never follows a symlink. */
int ov_cgroup_mountinfo(char **out, ov_error *err)
{
	cleanup_close int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return ov_error_set(err, errno, "opening /proc/self/mountinfo");
	if (ov_read_fd(fd, MOUNTINFO_MAX, out, NULL, err) < 0)
		return ov_error_wrap(err, "/proc/self/mountinfo");
	return 0;
}

int ov_cgroup_open_dir(const char *controller, const char *cgpath, ov_error *err)
{
	cleanup_free char *mi = NULL;

	if (ov_cgroup_mountinfo(&mi, err) < 0)
		return -1;
	return ov_cgroup_open_dir_mi(mi, controller, cgpath, err);
}

int ov_cgroup_open_dir_mi(const char *mi, const char *controller, const char *cgpath, ov_error *err)
{
	cleanup_free char *mnt = NULL, *sub = NULL;
	cleanup_close int mfd = -1, fd = -1;
	struct statfs sfs;
	int r;

	r = ov_mountinfo_find_cgroup(mi, controller, cgpath, &mnt, &sub, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return ov_error_set(err, ENOENT, "no mount of the %s%s hierarchy holds %s",
				    controller ? controller : "cgroup2",
				    controller ? " cgroup" : "", cgpath);
	mfd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return ov_error_set(err, errno, "opening %s", mnt);
	if (*sub) {
		struct open_how how = {
		    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			       RESOLVE_NO_XDEV,
		};

		fd = (int)syscall(SYS_openat2, mfd, sub, &how, sizeof(how));
	} else {
		fd = openat(mfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return ov_error_set(err, errno, "opening the cgroup %s/%s", mnt, sub);
	if (fstatfs(fd, &sfs) < 0)
		return ov_error_set(err, errno, "statfs %s/%s", mnt, sub);
	if (sfs.f_type != (controller ? CGROUP_SUPER_MAGIC : CGROUP2_SUPER_MAGIC))
		return ov_error_set(err, 0, "%s/%s is not a cgroup%s file system", mnt, sub,
				    controller ? "" : "2");
	return take_fd(&fd);
}

static int read_devices_list(int cgfd, char **out, ov_error *err)
{
	if (ov_read_file_at(cgfd, "devices.list", DEVICES_LIST_MAX, out, NULL, err) < 0)
		return -1;
	return 0;
}

/* cgroup v1: allow each device not yet allowed, then check devices.list. */
static int allow_v1(const char *cgpath, const dev_t *devs, const char *const *names, size_t n,
		    ov_error *err)
{
	cleanup_free char *list = NULL, *own = NULL;
	cleanup_close int cg = ov_cgroup_open_dir("devices", cgpath, err);
	bool todo = false;

	if (cg < 0)
		return ov_error_wrap(err, "the container's devices cgroup");
	if (read_devices_list(cg, &list, err) < 0)
		return ov_error_wrap(err, "the devices cgroup %s", cgpath);
	for (size_t i = 0; i < n; i++)
		if (!ov_devices_list_allows(list, major(devs[i]), minor(devs[i]),
					    OV_DEV_READ | OV_DEV_WRITE))
			todo = true;
	if (!todo) {
		ov_debug("devices cgroup %s already allows the vTPM devices", cgpath);
		return 0;
	}
	/* A container without a devices cgroup of its own (a runtime run with
	 * its cgroup manager disabled) shares ours: widening it would widen
	 * the runtime's and its caller's too. */
	if (cgroup_path_of(0, "devices", &own, err) < 0)
		return -1;
	if (own && strcmp(own, cgpath) == 0)
		return ov_error_set(
		    err, 0,
		    "cgroup v1: the container has no devices cgroup of its own (it shares "
		    "%s with its runtime), which does not allow %s; refusing to widen a "
		    "shared cgroup",
		    cgpath, names[0]);

	for (size_t i = 0; i < n; i++) {
		cleanup_close int fd = -1;
		char rule[64];
		int len;

		if (ov_devices_list_allows(list, major(devs[i]), minor(devs[i]),
					   OV_DEV_READ | OV_DEV_WRITE))
			continue;
		len = snprintf(rule, sizeof(rule), "c %u:%u rw", major(devs[i]), minor(devs[i]));
		fd = openat(cg, "devices.allow", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return ov_error_set(err, errno, "opening devices.allow of %s", cgpath);
		if (write(fd, rule, (size_t)len) != len)
			return ov_error_set(err, errno, "cgroup v1: allowing %s (%s) in %s",
					    names[i], rule, cgpath);
		ov_debug("devices cgroup %s: allowed %s for %s", cgpath, rule, names[i]);
	}
	free(take_ptr(list));
	if (read_devices_list(cg, &list, err) < 0)
		return ov_error_wrap(err, "the devices cgroup %s", cgpath);
	for (size_t i = 0; i < n; i++)
		if (!ov_devices_list_allows(list, major(devs[i]), minor(devs[i]),
					    OV_DEV_READ | OV_DEV_WRITE))
			return ov_error_set(
			    err, 0,
			    "cgroup v1: c %u:%u rw was written to devices.allow of %s but "
			    "devices.list does not allow %s",
			    major(devs[i]), minor(devs[i]), cgpath, names[i]);
	return 0;
}

/* Number of device programs in effect for the cgroup, or -1. */
static int bpf_device_progs(int cgfd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = (__u32)cgfd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	attr.query.query_flags = BPF_F_QUERY_EFFECTIVE;
	if (syscall(SYS_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)) < 0)
		return -1;
	return (int)attr.query.prog_cnt;
}

/* Does the container's v2 cgroup restrict devices at all? Only a container
 * that shares its runtime's cgroup (no cgroup manager, so nothing will
 * attach a program later) with no device program in effect is known not
 * to. */
static bool v2_unrestricted(pid_t pid)
{
	cleanup_free char *path = NULL, *own = NULL;
	cleanup_close int cg = -1;
	ov_error ignored = {0};
	int progs;

	if (cgroup_path_of(pid, NULL, &path, &ignored) != 1 ||
	    cgroup_path_of(0, NULL, &own, &ignored) != 1 || strcmp(path, own) != 0)
		return false;
	cg = ov_cgroup_open_dir(NULL, path, &ignored);
	if (cg < 0)
		return false;
	progs = bpf_device_progs(cg);
	if (progs != 0)
		return false;
	ov_debug("cgroup v2: the container shares %s, where no device program is in effect", path);
	return true;
}

int ov_cgroup_allow_devices(pid_t pid, json_object *spec, const dev_t *devs,
			    const char *const *names, size_t n, ov_error *err)
{
	cleanup_free char *v1 = NULL;
	int r;

	if (pid <= 0)
		return ov_error_set(err, EINVAL, "the OCI state has no container pid");
	if (n == 0)
		return 0;
	r = cgroup_path_of(pid, "devices", &v1, err);
	if (r < 0)
		return -1;
	if (r > 0)
		return allow_v1(v1, devs, names, n, err);

	/* No v1 devices hierarchy: device access is cgroup v2's eBPF filter. */
	for (size_t i = 0; i < n; i++) {
		if (ov_spec_devices_allow(spec, major(devs[i]), minor(devs[i]),
					  OV_DEV_READ | OV_DEV_WRITE))
			continue;
		if (v2_unrestricted(pid))
			return 0;
		return ov_error_set(
		    err, 0,
		    "cgroup v2: a hook cannot allow %s (c %u:%u rw) in the container's "
		    "device filter; run the container through oci-vtpm-runtime (see "
		    "README), which allows it in config.json",
		    names[i], major(devs[i]), minor(devs[i]));
	}
	return 0;
}
