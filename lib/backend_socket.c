/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/ctrl_relay.h"
#include "oci-vtpm/mount.h"
#include "oci-vtpm/socket.h"
#include "oci-vtpm/spec.h"

/*
 * The directory the container gets is world-searchable (any user inside may
 * use its TPM) but sits under a root-only directory, so on the host only
 * root reaches it.
 */
#define PRIVATE_DIR "private"
#define SOCK_DIR    OV_MEASURE_LOG_DIR /* "private/tpm" */

/* swtpm's own control channel: in the container's run directory, 0600
 * root, never in the directory the container gets (it returns and replaces
 * state blobs, and poststop talks to it as root). */
static void socket_ctrl_name(unsigned idx, char *buf, size_t size)
{
	snprintf(buf, size, "ctrl-%u.sock", idx);
}

/* What the container's TSS finds at tpmN.sock.ctrl: the relay of
 * lib/ctrl_relay.c, answering only what tpm2-tss' swtpm TCTI needs.
 * Started while swtpm starts: its own start (fork, exec, sandbox) then
 * costs a start no time on a host with a second core. */
static int socket_spawned(int cdirfd, const struct ov_settings *s, unsigned idx,
			  const struct ov_record_tpm *t, const struct ov_limits_cg *cg,
			  ov_error *err)
{
	cleanup_close int sdir = ov_open_dir_at(cdirfd, SOCK_DIR);
	cleanup_close int lfd = -1;
	char name[64];

	if (sdir < 0)
		return ov_error_set(err, errno, "opening the socket directory");
	snprintf(name, sizeof(name), "tpm%u.sock.ctrl", idx);
	lfd = ov_socket_listen(sdir, name, 0666, err);
	if (lfd < 0)
		return -1;
	if (ov_ctrl_relay_spawn(lfd, t->pid, t->starttime, s->swtpm_user, cg, err) < 0)
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
	sdir = ov_open_dir_at(cdirfd, SOCK_DIR);
	if (sdir < 0)
		return ov_error_set(err, errno, "opening the socket directory");
	if (fchmod(sdir, 0755) < 0)
		return ov_error_set(err, errno, "chmod of the socket directory");
	snprintf(name, sizeof(name), "tpm%u.sock", idx);
	*server_fd = ov_socket_listen(sdir, name, 0666, err);
	return *server_fd < 0 ? -1 : 0;
}

static int socket_attach_begin(int cdirfd, const struct ov_settings *s, pid_t pid,
			       const struct ov_spec *sp, const struct ov_record *rec,
			       struct ov_mount_job *job, ov_error *err)
{
	cleanup_close int src =
	    openat(cdirfd, SOCK_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct ov_bind b = {.src_fd = src, .is_dir = true, .target = s->socket_dir + 1};
	__attribute__((cleanup(ov_strv_freep))) char **fresh = NULL;

	(void)rec;
	if (src < 0)
		return ov_error_set(err, errno, "opening the socket directory");
	if (!sp->rootfs)
		return ov_error_set(err, 0, "config.json has no root.path");
	if (ov_spec_fresh_mounts(sp, &fresh, err) < 0 ||
	    ov_mount_begin(pid, sp->rootfs, (const char *const *)fresh, &b, 1, job, err) < 0)
		return ov_error_wrap(err, "placing %s in the container", s->socket_dir);
	return 0;
}

/* The shim: the runtime itself mounts the slot's socket directory,
 * read-only, where the container finds its TPMs. */
static int socket_precreate(json_object *spec, const struct ov_settings *s,
			    const struct ov_record *rec, ov_error *err)
{
	char slot[PATH_MAX], src[PATH_MAX + sizeof(SOCK_DIR) + 1];

	if (ov_slot_path(s->run_dir, rec->id, slot, sizeof(slot), err) < 0)
		return -1;
	snprintf(src, sizeof(src), "%s/%s", slot, SOCK_DIR);
	return ov_spec_add_ro_bind(spec, src, s->socket_dir, err);
}

/* Before the container runs (createRuntime), nothing of it has seen the
 * socket directory: the socket there is swtpm's. */
static int socket_connect(int cdirfd, unsigned idx, const struct ov_record_tpm *t, ov_error *err)
{
	cleanup_close int sdir = ov_open_dir_at(cdirfd, SOCK_DIR);
	char name[64];

	(void)t;
	if (sdir < 0)
		return ov_error_set(err, errno, "opening the socket directory");
	snprintf(name, sizeof(name), "tpm%u.sock", idx);
	return ov_socket_connect(sdir, name, err);
}

const struct ov_backend_ops ov_backend_socket = {
    .kind = OV_BACKEND_SOCKET,
    .chardev = false,
    .open_channel = socket_open_channel,
    .spawned = socket_spawned,
    .precreate = socket_precreate,
    .attach_begin = socket_attach_begin,
    .connect = socket_connect,
    .places_log_dir = true,
    .ctrl_name = socket_ctrl_name,
};
