/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/mount.h"
#include "oci-vtpm/proc.h"

#define MAX_BINDS OV_MOUNT_MAX_BINDS

static int sys_openat2(int dirfd, const char *path, int flags, bool cross)
{
	struct open_how how = {
	    .flags = (unsigned long long)flags | O_CLOEXEC,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
		       (cross ? 0 : RESOLVE_NO_XDEV),
	};

	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/*
 * One component of the walk: comp under cur, whose path from the rootfs is
 * prefix. Mount points: runc's and crun's own path resolution (securejoin,
 * libpathrs, crun's safe_openat) use RESOLVE_IN_ROOT without NO_XDEV, as
 * they must cross the mounts they made themselves. The hook walks with
 * RESOLVE_NO_XDEV and crosses a mount point only where config.json has the
 * runtime mount a filesystem of its own for this container (fresh: tmpfs
 * at /dev, where the device backend's nodes go, a tmpfs /run): that
 * filesystem is new and the container's alone. A bind mount (a volume, a
 * host directory, a host /dev) is not crossed: what is made in it would
 * land in a directory that is shared with the host or other containers and
 * that others may change under the walk. Such a start fails in one line.
 */
static int open_step(int cur, const char *comp, int flags, const char *prefix,
		     const char *const *fresh)
{
	int fd = sys_openat2(cur, comp, flags, false);

	if (fd >= 0 || errno != EXDEV)
		return fd;
	for (size_t i = 0; fresh && fresh[i]; i++)
		if (strcmp(fresh[i], prefix) == 0)
			return sys_openat2(cur, comp, flags, true);
	errno = EXDEV;
	return -1;
}

static int sys_open_tree(int dirfd, const char *path, unsigned flags)
{
	return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

static int sys_move_mount(int from, int to)
{
	return (int)syscall(SYS_move_mount, from, "", to, "",
			    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static int sys_mount_setattr(int fd, unsigned long long set)
{
	struct mount_attr attr = {.attr_set = set};

	return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr));
}

static int refuse(ov_error *err, int e, const char *rel, const char *comp, const char *prefix)
{
	if (e == ELOOP)
		return ov_error_set(
		    err, 0, "refusing /%s: \"%s\" is a symlink or leaves the rootfs", rel, comp);
	if (e == EXDEV)
		return ov_error_set(err, 0,
				    "refusing /%s: /%s is a mount point that is not a filesystem "
				    "of the container's own (a bind mount or volume); not crossed",
				    rel, prefix);
	if (e == ENOTDIR)
		return ov_error_set(err, 0, "refusing /%s: \"%s\" is not a directory", rel, comp);
	return ov_error_set(err, e, "opening /%s in the rootfs", rel);
}

int ov_open_beneath(int rootfd, const char *rel, const char *const *fresh, bool want_dir,
		    bool mkdirs, ov_error *err)
{
	cleanup_free char *copy = strdup(rel), *prefix = calloc(1, strlen(rel) + 1);
	cleanup_close int cur = -1;
	char *save = NULL, *comp, *next;

	if (!copy || !prefix)
		return ov_error_set(err, ENOMEM, "%s", rel);
	cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return ov_error_set(err, errno, "rootfs");
	comp = strtok_r(copy, "/", &save);
	if (!comp)
		return ov_error_set(err, EINVAL, "empty target path");
	for (; comp; comp = next) {
		bool last;
		int fd;

		next = strtok_r(NULL, "/", &save);
		last = next == NULL;
		if (strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0)
			return ov_error_set(err, EINVAL, "target /%s has a '%s' component", rel,
					    comp);
		if (*prefix)
			strcat(prefix, "/");
		strcat(prefix, comp);
		if (!last || want_dir) {
			fd = open_step(cur, comp, O_PATH | O_DIRECTORY, prefix, fresh);
			if (fd < 0 && errno == ENOENT && mkdirs) {
				if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
					return ov_error_set(err, errno,
							    "creating /%s in the rootfs", rel);
				fd = open_step(cur, comp, O_PATH | O_DIRECTORY, prefix, fresh);
			}
		} else {
			fd = open_step(cur, comp, O_PATH, prefix, fresh);
			if (fd < 0 && errno == ENOENT) {
				/* O_EXCL with O_CREAT never follows a symlink. */
				int c = openat(cur, comp,
					       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					       0600);
				if (c < 0 && errno != EEXIST)
					return ov_error_set(err, errno,
							    "creating /%s in the rootfs", rel);
				if (c >= 0)
					close(c);
				fd = open_step(cur, comp, O_PATH, prefix, fresh);
			}
			if (fd >= 0) {
				struct stat st;

				if (fstat(fd, &st) < 0 ||
				    !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
					close(fd);
					return ov_error_set(
					    err, 0, "refusing /%s: not a regular file or device",
					    rel);
				}
			}
		}
		if (fd < 0)
			return refuse(err, errno, rel, comp, prefix);
		close(cur);
		cur = fd;
	}
	return take_fd(&cur);
}

/* In the child, inside the container's mount namespace. */
static int place_all(const char *rootfs, const char *const *fresh, const struct ov_bind *binds,
		     const int *trees, size_t n, ov_error *err)
{
	cleanup_close int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (rootfd < 0)
		return ov_error_set(
		    err, errno, "opening the rootfs %s in the container's mount namespace", rootfs);
	for (size_t i = 0; i < n; i++) {
		cleanup_close int target =
		    ov_open_beneath(rootfd, binds[i].target, fresh, binds[i].is_dir, true, err);

		if (target < 0 && binds[i].optional &&
		    (err->code == EACCES || err->code == EPERM || err->code == EROFS)) {
			ov_error_clear(err);
			continue;
		}
		if (target < 0)
			return -1;
		if (sys_move_mount(trees[i], target) < 0)
			return ov_error_set(err, errno, "mounting onto /%s", binds[i].target);
	}
	return 0;
}

static int check_source(const struct ov_bind *b, ov_error *err)
{
	struct stat st;

	if (fstat(b->src_fd, &st) < 0)
		return ov_error_set(err, errno, "source of /%s", b->target);
	if (b->is_dir ? !S_ISDIR(st.st_mode) : !(S_ISCHR(st.st_mode) && st.st_rdev == b->rdev))
		return ov_error_set(err, 0, "source of /%s is not the %s expected (%u:%u)",
				    b->target, b->is_dir ? "directory" : "character device",
				    major(b->rdev), minor(b->rdev));
	return 0;
}

/* Detached copies of the sources (trees[0..*made-1], the caller closes
 * them), made here in the host's namespace: nosuid, noexec, and nodev for
 * a directory. */
static int clone_sources(const struct ov_bind *binds, size_t n, int *trees, size_t *made,
			 ov_error *err)
{
	for (*made = 0; *made < n; (*made)++) {
		const struct ov_bind *b = &binds[*made];
		unsigned long long attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;

		if (check_source(b, err) < 0)
			return -1;
		trees[*made] = sys_open_tree(b->src_fd, "",
					     AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (trees[*made] < 0)
			return ov_error_set(err, errno, "open_tree for /%s", b->target);
		/* A directory is read-only: the container uses the sockets in
		 * it and must not fill or change the host's run dir. */
		if (b->is_dir)
			attr |= MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY;
		if (sys_mount_setattr(trees[*made], attr) < 0) {
			(*made)++;
			return ov_error_set(err, errno, "mount_setattr for /%s", b->target);
		}
	}
	return 0;
}

/* In a child: join the mount namespace of pid (pidfd), act as the
 * container's root and place the trees; its error comes back on wr. */
static __attribute__((noreturn)) void helper(int pidfd, pid_t pid, uid_t root_uid, gid_t root_gid,
					     const char *rootfs, const char *const *fresh,
					     const struct ov_bind *binds, const int *trees,
					     size_t n, int wr)
{
	ov_error cerr = {0};

	if (setns(pidfd, CLONE_NEWNS) < 0)
		ov_error_set(&cerr, errno, "joining the mount namespace of process %d", (int)pid);
	/* What we create under the rootfs belongs to the container's root; in
	 * a user namespace, our own uid 0 is not even mapped on its
	 * filesystems (EOVERFLOW). */
	else if ((root_gid && (setfsgid(root_gid), setfsgid((gid_t)-1) != (int)root_gid)) ||
		 (root_uid && (setfsuid(root_uid), setfsuid((uid_t)-1) != (int)root_uid)))
		ov_error_set(&cerr, EPERM, "switching to the container's root %u:%u",
			     (unsigned)root_uid, (unsigned)root_gid);
	else if (place_all(rootfs, fresh, binds, trees, n, &cerr) == 0)
		_exit(0);
	if (ov_write_all(wr, cerr.msg, strlen(cerr.msg)) < 0)
		_exit(2);
	_exit(1);
}

/* Wait for the helper; its message (read from rd) is the error. */
static int wait_helper(pid_t child, int rd, ov_error *err)
{
	cleanup_free char *msg = NULL;
	ov_error rerr = {0};
	int status;

	if (ov_read_fd(rd, OV_ERROR_MAX, &msg, NULL, &rerr) < 0)
		msg = NULL;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "waiting for the mount helper");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (msg && *msg)
		return ov_error_set(err, 0, "%s", msg);
	return ov_error_set(err, 0, "the mount helper failed (status 0x%x)", status);
}

static void job_close(struct ov_mount_job *job)
{
	for (size_t i = 0; i < job->made; i++)
		close(job->trees[i]);
	job->made = 0;
	if (job->rd >= 0)
		close(job->rd);
	job->rd = -1;
	job->child = 0;
}

int ov_mount_begin(pid_t pid, const char *rootfs, const char *const *fresh,
		   const struct ov_bind *binds, size_t n, struct ov_mount_job *job, ov_error *err)
{
	cleanup_close int pidfd = -1;
	int wr = -1;
	uid_t root_uid = 0;
	gid_t root_gid = 0;
	pid_t child;

	*job = (struct ov_mount_job)OV_MOUNT_JOB_INIT;
	if (n > MAX_BINDS)
		return ov_error_set(err, E2BIG, "too many mounts");
	if (pid <= 0)
		return ov_error_set(err, EINVAL, "the OCI state has no container pid");
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return ov_error_set(err, errno, "opening container process %d", (int)pid);
	if (ov_userns_root_ids(pid, &root_uid, &root_gid, err) < 0)
		return -1;
	if (clone_sources(binds, n, job->trees, &job->made, err) < 0) {
		job_close(job);
		return -1;
	}
	child = ov_proc_fork_piped(&job->rd, &wr, "the mount helper", err);
	if (child < 0) {
		job_close(job);
		return -1;
	}
	if (child == 0)
		helper(pidfd, pid, root_uid, root_gid, rootfs, fresh, binds, job->trees, n, wr);
	job->child = child;
	return 0;
}

int ov_mount_end(struct ov_mount_job *job, ov_error *err)
{
	int ret = 0;

	if (job->child > 0)
		ret = wait_helper(job->child, job->rd, err);
	job_close(job);
	return ret;
}

int ov_mount_into(pid_t pid, const char *rootfs, const char *const *fresh,
		  const struct ov_bind *binds, size_t n, ov_error *err)
{
	struct ov_mount_job job;

	if (ov_mount_begin(pid, rootfs, fresh, binds, n, &job, err) < 0)
		return -1;
	return ov_mount_end(&job, err);
}

/* The host id that id 0 maps to in /proc/<pid>/{uid,gid}_map. */
static int map_root(pid_t pid, const char *which, unsigned long *out, ov_error *err)
{
	cleanup_free char *text = NULL;
	char path[64], *line, *save = NULL;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which);
	if (ov_read_file_at(AT_FDCWD, path, 1 << 16, &text, NULL, err) < 0)
		return -1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long inside, outside, count;

		if (sscanf(line, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 &&
		    count > 0) {
			*out = outside;
			return 0;
		}
	}
	return ov_error_set(err, 0, "%s: root is not mapped", path);
}

/* Is pid in our own user namespace? Its uid_map then shows our parent's
 * ids (rootless podman: its user), not ours. */
static bool same_userns(pid_t pid)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	return stat(path, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

int ov_userns_root_ids(pid_t pid, uid_t *uid, gid_t *gid, ov_error *err)
{
	unsigned long u, g;

	if (same_userns(pid)) {
		*uid = 0;
		*gid = 0;
		return 0;
	}

	if (map_root(pid, "uid_map", &u, err) < 0 || map_root(pid, "gid_map", &g, err) < 0)
		return ov_error_wrap(err, "user namespace of process %d", (int)pid);
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
}
