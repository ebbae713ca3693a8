/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/socket.h"

int ov_socket_path(int dirfd, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "/proc/self/fd/%d/%s", dirfd, name);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int ov_socket_listen(int dirfd, const char *name, mode_t mode, ov_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cleanup_close int fd = -1;

	if (ov_socket_path(dirfd, name, sa.sun_path, sizeof(sa.sun_path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "socket %s", name);
	unlinkat(dirfd, name, 0);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ov_error_set(err, errno, "socket %s", name);
	/* Made with its mode: never reachable by anyone else, even briefly.
	 * (umask is per process; the hook, shim and CLI bind from one thread.) */
	mode_t old = umask(~mode & 0777);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;

	umask(old);
	if (r < 0)
		return ov_error_set(err, e, "binding %s", name);
	if (listen(fd, 16) < 0)
		return ov_error_set(err, errno, "listening on %s", name);
	return take_fd(&fd);
}

int ov_socket_connect(int dirfd, const char *name, ov_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cleanup_close int fd = -1;

	if (ov_socket_path(dirfd, name, sa.sun_path, sizeof(sa.sun_path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "socket %s", name);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ov_error_set(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return ov_error_set(err, errno, "connecting to swtpm");
	return take_fd(&fd);
}
