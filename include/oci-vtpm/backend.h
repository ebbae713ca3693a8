/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a TPM reaches the container. `socket`: swtpm serves a unix socket
 * that is bind-mounted into the container (for kernels without vtpm_proxy).
 * `device`: the kernel's vtpm_proxy gives /dev/tpmN and /dev/tpmrmN.
 */
#ifndef OCI_VTPM_BACKEND_H
#define OCI_VTPM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
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
	 * this TPM's start_timeout_ms. vtpm.c records t again afterwards.
	 * (The socket backend: the container's control relay.) */
	int (*wait)(int cdirfd, const struct ov_settings *s, const struct ov_request *r,
		    unsigned idx, struct ov_record_tpm *t, int timeout_ms, ov_error *err);
	/* Make the started TPMs visible inside the container. */
	int (*expose)(int cdirfd, const struct ov_settings *s, const struct ov_state *st,
		      const struct ov_spec *sp, const struct ov_record *rec, ov_error *err);
	/* Name, under the container's run dir, of TPM idx's control socket:
	 * never in what the container sees or can write. */
	void (*ctrl_name)(unsigned idx, char *buf, size_t size);
};

extern const struct ov_backend_ops ov_backend_socket;
extern const struct ov_backend_ops ov_backend_device;

const struct ov_backend_ops *ov_backend_ops(enum ov_backend kind);

/* Bind and listen on a unix socket dirfd/name (through /proc/self/fd, so
 * the length of the directory's path does not matter), with mode. */
int ov_unix_listen(int dirfd, const char *name, mode_t mode, ov_error *err);
/* The path that reaches dirfd/name from this process. */
int ov_fd_path(int dirfd, const char *name, char *buf, size_t size);

#endif
