/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unix sockets named relative to a directory fd (through /proc/self/fd, so
 * the length of the directory's path does not matter).
 */
#ifndef OCI_VTPM_SOCKET_H
#define OCI_VTPM_SOCKET_H

#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

/* The path that reaches dirfd/name from this process; -1 if too long. */
int ov_socket_path(int dirfd, const char *name, char *buf, size_t size);
/* Bind and listen on the unix socket dirfd/name (replacing a stale one),
 * with mode. Returns the listening fd (O_CLOEXEC). */
int ov_socket_listen(int dirfd, const char *name, mode_t mode, ov_error *err);
/* Connect to the unix socket dirfd/name. Returns the fd (O_CLOEXEC). */
int ov_socket_connect(int dirfd, const char *name, ov_error *err);

#endif
