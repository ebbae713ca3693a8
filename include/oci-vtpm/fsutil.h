/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File helpers that never follow a final symlink, bound what they read, and
 * write atomically (temp file, fsync, rename, fsync of the directory).
 */
#ifndef OCI_VTPM_FSUTIL_H
#define OCI_VTPM_FSUTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

/* Read all of fd, at most max bytes, into a NUL-terminated buffer (*out,
 * caller frees). More than max bytes is an error (EFBIG). */
int ov_read_fd(int fd, size_t max, char **out, size_t *len, ov_error *err);

/* Read dirfd/name (no symlink as the last component) as ov_read_fd. */
int ov_read_file_at(int dirfd, const char *name, size_t max, char **out, size_t *len,
		    ov_error *err);

/* ov_read_file_at for a directory another user writes (swtpm's state):
 * the file must also be owned by the directory's owner and have one link. */
int ov_read_owned_file_at(int dirfd, const char *name, size_t max, char **out, size_t *len,
			  ov_error *err);

int ov_write_all(int fd, const void *buf, size_t len);

/* Replace dirfd/name by buf atomically and durably, with the given mode. */
int ov_write_file_atomic(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
			 ov_error *err);

/* Replace dirfd/name by buf atomically, not durably (no fsync): for what
 * is read at once and worth nothing after a crash (a bundle's config.json
 * the runtime reads next). */
int ov_write_file_replace(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
			  ov_error *err);

/* Create dirfd/name with buf, durably, never replacing an existing file
 * (EEXIST): temp file, fsync, link, fsync of the directory. */
int ov_write_file_new(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
		      ov_error *err);

/* fsync the directory dirfd/name ("." for dirfd itself, even an O_PATH
 * fd); -1 with errno set. */
int ov_fsync_dir_at(int dirfd, const char *name);

/* Create path and its parents (mode for the ones it makes, each made
 * durable in its parent); returns an O_DIRECTORY fd of path. Refuses symlinks in the chain it
 * walks. */
int ov_mkdir_p(const char *path, mode_t mode, ov_error *err);

/* An O_RDONLY|O_DIRECTORY|O_CLOEXEC fd of dirfd/name, never through a
 * symlink as the last component; -1 with errno set. */
int ov_open_dir_at(int dirfd, const char *name);

/* A DIR of dirfd/name (no symlink as the last component), or NULL with
 * errno set. */
DIR *ov_opendir_at(int dirfd, const char *name);

/* Remove dirfd/name and everything below it, following no symlink;
 * ENOENT is not an error. */
int ov_remove_tree_at(int dirfd, const char *name, ov_error *err);

#endif
