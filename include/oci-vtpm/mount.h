/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Placing host objects (a socket directory, TPM character devices) inside a
 * container's rootfs. Everything under the rootfs is hostile: it is walked
 * through fds with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_XDEV but into the runtime's own fresh mounts), never as
 * a string, and the mount is made with open_tree/move_mount from a
 * short-lived child that joined the container's mount namespace.
 */
#ifndef OCI_VTPM_MOUNT_H
#define OCI_VTPM_MOUNT_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

struct ov_bind {
	int src_fd;	    /* O_PATH fd of the host source */
	bool is_dir;	    /* a directory, else a character device */
	dev_t rdev;	    /* character device: the number src_fd must be */
	const char *target; /* under the rootfs, relative: "run/tpm", "dev/tpm0" */
	bool optional;	    /* left out, not an error, where the container's root
			     * may not make its target (EACCES, EPERM, EROFS) */
};

/* Bind every source onto its target in the mount namespace of pid, under
 * rootfs (the root.path of the bundle, as seen in that namespace before
 * pivot_root). Missing directories on the way are made (0755), a missing
 * device target is made as an empty file; a symlink anywhere is refused,
 * and so is a mount point other than those in fresh (NULL-terminated,
 * relative: ov_spec_fresh_mounts; NULL: none), RESOLVE_NO_XDEV. */
int ov_mount_into(pid_t pid, const char *rootfs, const char *const *fresh,
		  const struct ov_bind *binds, size_t n, ov_error *err);

/* ov_mount_into in two halves, for work done while the mount helper runs
 * (the measured launch): begin starts it (nothing left to end on
 * failure), end waits for it and says how it went; end of a job never
 * begun, or ended already, is 0. */
#define OV_MOUNT_MAX_BINDS 32
struct ov_mount_job {
	pid_t child; /* the helper; 0: none */
	int rd;	     /* its error pipe */
	int trees[OV_MOUNT_MAX_BINDS];
	size_t made;
};
#define OV_MOUNT_JOB_INIT                                                                          \
	{                                                                                          \
		.child = 0, .rd = -1, .made = 0                                                    \
	}
int ov_mount_begin(pid_t pid, const char *rootfs, const char *const *fresh,
		   const struct ov_bind *binds, size_t n, struct ov_mount_job *job, ov_error *err);
int ov_mount_end(struct ov_mount_job *job, ov_error *err);

/* The uid and gid, in our own user namespace, that root in pid's user
 * namespace is; 0 and 0 when pid shares our namespace (rootful: the
 * host's; rootless podman: its own, where we are root too). */
int ov_userns_root_ids(pid_t pid, uid_t *uid, gid_t *gid, ov_error *err);

/* Walk rel under rootfd through fds, crossing only the mount points in
 * fresh, making missing directories when mkdirs; return an O_PATH fd of the final component, which
 * is made as a directory (want_dir) or an empty regular file when missing. Exposed for the unit
 * tests. */
int ov_open_beneath(int rootfd, const char *rel, const char *const *fresh, bool want_dir,
		    bool mkdirs, ov_error *err);

#endif
