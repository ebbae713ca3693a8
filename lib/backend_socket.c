/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/ctrl_relay.h"
#include "oci-vtpm/mount.h"

/*
 * The directory the container gets is world-searchable (any user inside may
 * use its TPM) but sits under a root-only directory, so on the host only
 * root reaches it.
 */
#define PRIVATE_DIR "private"
#define SOCK_DIR    PRIVATE_DIR "/tpm"

int ov_fd_path(int dirfd, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "/proc/self/fd/%d/%s", dirfd, name);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int ov_unix_listen(int dirfd, const char *name, mode_t mode, ov_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cleanup_close int fd = -1;

	if (ov_fd_path(dirfd, name, sa.sun_path, sizeof(sa.sun_path)) < 0)
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

/* swtpm's own control channel: in the container's run directory, 0600
 * root, never in the directory the container gets (it returns and replaces
 * state blobs, and poststop talks to it as root). */
static void socket_ctrl_name(unsigned idx, char *buf, size_t size)
{
	snprintf(buf, size, "ctrl-%u.sock", idx);
}

/* What the container's TSS finds at tpmN.sock.ctrl: the relay of
 * lib/ctrl_relay.c, answering only what tpm2-tss' swtpm TCTI needs. */
static int socket_wait(int cdirfd, const struct ov_settings *s, const struct ov_request *r,
		       unsigned idx, struct ov_record_tpm *t, int timeout_ms, ov_error *err)
{
	cleanup_close int sdir =
	    openat(cdirfd, SOCK_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	cleanup_close int lfd = -1;
	char name[64];

	(void)r;
	(void)timeout_ms;
	if (sdir < 0)
		return ov_error_set(err, errno, "opening the socket directory");
	snprintf(name, sizeof(name), "tpm%u.sock.ctrl", idx);
	lfd = ov_unix_listen(sdir, name, 0666, err);
	if (lfd < 0)
		return -1;
	if (ov_ctrl_relay_spawn(lfd, t->pid, t->starttime, s->swtpm_user, err) < 0)
		return ov_error_wrap(err, "vTPM %u", idx);
	return 0;
}

static int socket_open_channel(int cdirfd, unsigned idx, const struct ov_request *r, int *server_fd,
			       struct ov_record_tpm *t, ov_error *err)
{
	cleanup_close int sdir = -1;
	char name[64];

	(void)r;
	t->devnum = -1;
	if (mkdirat(cdirfd, PRIVATE_DIR, 0700) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the socket directory");
	if (mkdirat(cdirfd, SOCK_DIR, 0755) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the socket directory");
	sdir = openat(cdirfd, SOCK_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sdir < 0)
		return ov_error_set(err, errno, "opening the socket directory");
	if (fchmod(sdir, 0755) < 0)
		return ov_error_set(err, errno, "chmod of the socket directory");
	snprintf(name, sizeof(name), "tpm%u.sock", idx);
	*server_fd = ov_unix_listen(sdir, name, 0666, err);
	return *server_fd < 0 ? -1 : 0;
}

static int socket_expose(int cdirfd, const struct ov_settings *s, const struct ov_state *st,
			 const struct ov_spec *sp, const struct ov_record *rec, ov_error *err)
{
	cleanup_close int src =
	    openat(cdirfd, SOCK_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct ov_bind b = {.src_fd = src, .is_dir = true, .target = s->socket_dir + 1};

	(void)rec;
	if (st->pid <= 0)
		return 0; /* no container yet (a warm vTPM): placed when one takes it */
	if (src < 0)
		return ov_error_set(err, errno, "opening the socket directory");
	if (!sp->rootfs)
		return ov_error_set(err, 0, "config.json has no root.path");
	if (ov_mount_into(st->pid, sp->rootfs, &b, 1, err) < 0)
		return ov_error_wrap(err, "placing %s in the container", s->socket_dir);
	return 0;
}

const struct ov_backend_ops ov_backend_socket = {
    .kind = OV_BACKEND_SOCKET,
    .chardev = false,
    .open_channel = socket_open_channel,
    .wait = socket_wait,
    .expose = socket_expose,
    .ctrl_name = socket_ctrl_name,
};
