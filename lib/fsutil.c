/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"

int ov_read_fd(int fd, size_t max, char **out, size_t *len, ov_error *err)
{
	cleanup_free char *buf = NULL;
	size_t cap = 0, used = 0;

	for (;;) {
		if (used + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *n;

			if (ncap > max + 2)
				ncap = max + 2;
			n = realloc(buf, ncap);
			if (!n)
				return ov_error_set(err, ENOMEM, "reading");
			buf = n;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + used, cap - used - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return ov_error_set(err, errno, "reading");
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > max)
			return ov_error_set(err, 0, "input larger than %zu bytes", max);
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = take_ptr(buf);
	return 0;
}

static int read_file_at(int dirfd, const char *name, size_t max, const struct stat *owner,
			char **out, size_t *len, ov_error *err)
{
	/* O_NONBLOCK: a FIFO put there must not hang us in open(2). */
	cleanup_close int fd =
	    openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	struct stat st;

	if (fd < 0)
		return ov_error_set(err, errno, "opening %s", name);
	if (fstat(fd, &st) < 0)
		return ov_error_set(err, errno, "stat %s", name);
	if (!S_ISREG(st.st_mode))
		return ov_error_set(err, 0, "%s is not a regular file", name);
	if (owner && st.st_uid != owner->st_uid)
		return ov_error_set(err, 0, "%s is owned by uid %u, not %u", name,
				    (unsigned)st.st_uid, (unsigned)owner->st_uid);
	if (owner && st.st_nlink != 1)
		return ov_error_set(err, 0, "%s has %lu links", name, (unsigned long)st.st_nlink);
	if (ov_read_fd(fd, max, out, len, err) < 0)
		return ov_error_wrap(err, "%s", name);
	return 0;
}

int ov_read_file_at(int dirfd, const char *name, size_t max, char **out, size_t *len, ov_error *err)
{
	return read_file_at(dirfd, name, max, NULL, out, len, err);
}

int ov_read_owned_file_at(int dirfd, const char *name, size_t max, char **out, size_t *len,
			  ov_error *err)
{
	struct stat dir;

	if (fstat(dirfd, &dir) < 0)
		return ov_error_set(err, errno, "stat of the directory of %s", name);
	return read_file_at(dirfd, name, max, &dir, out, len, err);
}

int ov_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Write buf to a new temp file next to name, fsynced when sync; its name
 * in tmp. */
static int write_temp(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
		      bool sync, char *tmp, size_t size, ov_error *err)
{
	cleanup_close int fd = -1;

	if (snprintf(tmp, size, ".%s.tmp.%d", name, (int)getpid()) >= (int)size)
		return ov_error_set(err, ENAMETOOLONG, "writing %s", name);
	unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return ov_error_set(err, errno, "creating %s", tmp);
	if (ov_write_all(fd, buf, len) < 0 || (sync && fsync(fd) < 0)) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return ov_error_set(err, e, "writing %s", name);
	}
	return 0;
}

static int replace(int dirfd, const char *name, const void *buf, size_t len, mode_t mode, bool sync,
		   ov_error *err)
{
	char tmp[256];

	if (write_temp(dirfd, name, buf, len, mode, sync, tmp, sizeof(tmp), err) < 0)
		return -1;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return ov_error_set(err, e, "renaming %s", name);
	}
	if (sync && fsync(dirfd) < 0 && errno != EINVAL && errno != EBADF)
		return ov_error_set(err, errno, "syncing the directory of %s", name);
	return 0;
}

int ov_write_file_atomic(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
			 ov_error *err)
{
	return replace(dirfd, name, buf, len, mode, true, err);
}

int ov_write_file_replace(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
			  ov_error *err)
{
	return replace(dirfd, name, buf, len, mode, false, err);
}

int ov_write_file_new(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
		      ov_error *err)
{
	char tmp[256];
	int e;

	if (write_temp(dirfd, name, buf, len, mode, true, tmp, sizeof(tmp), err) < 0)
		return -1;
	/* link(2), unlike rename(2), never replaces what is there. */
	e = linkat(dirfd, tmp, dirfd, name, 0) < 0 ? errno : 0;
	unlinkat(dirfd, tmp, 0);
	if (e == EEXIST)
		return ov_error_set(err, e, "%s exists already; not replaced", name);
	if (e)
		return ov_error_set(err, e, "linking %s", name);
	if (fsync(dirfd) < 0 && errno != EINVAL && errno != EBADF)
		return ov_error_set(err, errno, "syncing the directory of %s", name);
	return 0;
}

int ov_fsync_dir_at(int dirfd, const char *name)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	return fsync(fd) < 0 && errno != EINVAL ? -1 : 0;
}

int ov_mkdir_p(const char *path, mode_t mode, ov_error *err)
{
	cleanup_free char *copy = strdup(path);
	cleanup_close int cur = -1;
	char *save = NULL;

	if (!copy)
		return ov_error_set(err, ENOMEM, "creating %s", path);
	if (path[0] != '/')
		return ov_error_set(err, 0, "%s is not an absolute path", path);
	cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return ov_error_set(err, errno, "opening /");
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next;

		if (strcmp(c, "..") == 0)
			return ov_error_set(err, 0, "%s contains '..'", path);
		if (mkdirat(cur, c, mode) == 0) {
			/* Durable: the new entry is in its parent. */
			if (ov_fsync_dir_at(cur, ".") < 0)
				return ov_error_set(err, errno, "syncing the parent of %s", c);
		} else if (errno != EEXIST) {
			return ov_error_set(err, errno, "creating %s", path);
		}
		next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return ov_error_set(err, errno, "opening %s (component %s)", path, c);
		close(cur);
		cur = next;
	}
	/* Reopen as a real directory fd so callers can use it for I/O too. */
	int fd = openat(cur, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ov_error_set(err, errno, "opening %s", path);
	return fd;
}

static int remove_children(int dfd, ov_error *err)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int ret = 0;

	if (!d) {
		int e = errno;
		close(dfd);
		return ov_error_set(err, e, "listing");
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (ov_remove_tree_at(dirfd(d), de->d_name, err) < 0) {
			ret = -1;
			break;
		}
	}
	closedir(d);
	return ret;
}

int ov_remove_tree_at(int dirfd, const char *name, ov_error *err)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return ov_error_set(err, errno, "removing %s", name);
	int dfd = ov_open_dir_at(dirfd, name);
	if (dfd < 0) {
		if (errno == ENOENT)
			return 0;
		return ov_error_set(err, errno, "opening %s", name);
	}
	if (remove_children(dfd, err) < 0)
		return ov_error_wrap(err, "removing %s", name);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return ov_error_set(err, errno, "removing %s", name);
	return 0;
}

int ov_open_dir_at(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

DIR *ov_opendir_at(int dirfd, const char *name)
{
	int fd = ov_open_dir_at(dirfd, name);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d && fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}
