/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a TPM reaches the container. `socket`: swtpm serves a unix socket
 * that is bind-mounted into the container (for kernels without vtpm_proxy).
 * `device`: the kernel's vtpm_proxy gives /dev/tpmN and /dev/tpmrmN.
 *
 * A backend is its ops; no caller tests which backend it is.
 */
#ifndef OCI_VTPM_BACKEND_H
#define OCI_VTPM_BACKEND_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/mount.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/store.h"

struct ov_backend_ops {
	enum ov_backend kind;
	bool chardev; /* swtpm runs as `swtpm chardev` */
	/* Make the channel TPM idx is served on: *server_fd goes to swtpm;
	 * the device backend also fills t's device numbers. */
	int (*open_channel)(int cdirfd, unsigned idx, const struct ov_request *r, int *server_fd,
			    struct ov_record_tpm *t, ov_error *err);
	/* Optional: once TPM idx's swtpm answers, wait for what the backend
	 * needs from it (the device backend: the kernel registering the chip;
	 * it fills the rest of t), for at most timeout_ms: what is left of
	 * this TPM's start_timeout_ms. The caller records t again afterwards. */
	int (*wait)(int cdirfd, const struct ov_settings *s, const struct ov_request *r,
		    unsigned idx, struct ov_record_tpm *t, const struct ov_limits_cg *cg,
		    int timeout_ms, ov_error *err);
	/* Optional: once TPM idx's swtpm is spawned and recorded in t, while
	 * it starts (the socket backend: the container's control relay, which
	 * needs only swtpm's pid). A failure kills that swtpm. */
	int (*spawned)(int cdirfd, const struct ov_settings *s, unsigned idx,
		       const struct ov_record_tpm *t, const struct ov_limits_cg *cg, ov_error *err);
	/* Optional: vTPMs started before their container (the shim, podman's
	 * precreate stage) reach it through its config.json: add to spec what
	 * the runtime needs to place the TPMs of rec itself. Returns 1 when
	 * spec changed, 0 when it had it all, -1 on error. NULL: this backend
	 * cannot start before the container (attach places the TPMs). */
	int (*precreate)(json_object *spec, const struct ov_settings *s,
			 const struct ov_record *rec, ov_error *err);
	/* precreate's additions do not name the slot, so they also serve
	 * vTPMs started before the container has an id (podman's precreate
	 * stage), whose slot is renamed when the container adopts them. */
	bool precreate_unnamed;
	/* Place the started TPMs of rec (slot cdirfd) in the container whose
	 * init is pid, of config sp. */
	int (*attach)(int cdirfd, const struct ov_settings *s, pid_t pid, const struct ov_spec *sp,
		      const struct ov_record *rec, ov_error *err);
	/* Optional, in place of attach: begin placing them, a mount helper
	 * left running in *job (the caller measures the launch meanwhile and
	 * finishes with ov_mount_end). */
	int (*attach_begin)(int cdirfd, const struct ov_settings *s, pid_t pid,
			    const struct ov_spec *sp, const struct ov_record *rec,
			    struct ov_mount_job *job, ov_error *err);
	/* A connection to TPM idx's command channel for the host (the
	 * measured launch): never through a path the container controls.
	 * Returns the fd; ops->chardev: a TPM character device. */
	int (*connect)(int cdirfd, unsigned idx, const struct ov_record_tpm *t, ov_error *err);
	/* The slot's OV_MEASURE_LOG_DIR (the launch's event logs) reaches the
	 * container at socket_dir without attach: it is the directory the
	 * socket backend places. (The device backend's attach places it with
	 * the devices; vTPMs it placed through config.json need a bind.) */
	bool places_log_dir;
	/* Name, under the slot's directory, of TPM idx's control socket:
	 * never in what the container sees or can write. */
	void (*ctrl_name)(unsigned idx, char *buf, size_t size);
};

extern const struct ov_backend_ops ov_backend_socket;
extern const struct ov_backend_ops ov_backend_device;

/* The ops of a resolved backend (not OV_BACKEND_AUTO). */
const struct ov_backend_ops *ov_backend_ops(enum ov_backend kind);

/* Which backend a request gets on this host: the request's, or with
 * OV_BACKEND_AUTO the device backend where vtpm_proxy can be had. */
int ov_backend_resolve(const struct ov_request *r, enum ov_backend *out, ov_error *err);

#endif
