/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until lib/vtpmx.c lands: refuses clearly. */
#include <errno.h>
#include <stdio.h>

#include "oci-vtpm/backend.h"

static int device_open_channel(int cdirfd, unsigned idx, const struct ov_request *r, int *server_fd,
			       struct ov_record_tpm *t, ov_error *err)
{
	return ov_error_set(err, ENOSYS, "device backend");
}

static int device_expose(int cdirfd, const struct ov_settings *s, const struct ov_state *st,
			 const struct ov_spec *sp, const struct ov_record *rec, ov_error *err)
{
	return ov_error_set(err, ENOSYS, "device backend");
}

static void device_ctrl_name(unsigned idx, char *buf, size_t size)
{
	snprintf(buf, size, "ctrl-%u.sock", idx);
}

const struct ov_backend_ops ov_backend_device = {
    .kind = OV_BACKEND_DEVICE,
    .chardev = true,
    .open_channel = device_open_channel,
    .expose = device_expose,
    .ctrl_name = device_ctrl_name,
};
