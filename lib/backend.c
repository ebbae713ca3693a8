/* SPDX-License-Identifier: Apache-2.0 */
#include "oci-vtpm/backend.h"
#include "oci-vtpm/vtpmx.h"

const struct ov_backend_ops *ov_backend_ops(enum ov_backend kind)
{
	switch (kind) {
	case OV_BACKEND_SOCKET:
		return &ov_backend_socket;
	case OV_BACKEND_DEVICE:
		return &ov_backend_device;
	case OV_BACKEND_AUTO:
		break;
	}
	return NULL;
}

int ov_backend_resolve(const struct ov_request *r, enum ov_backend *out, ov_error *err)
{
	if (r->backend != OV_BACKEND_AUTO) {
		*out = r->backend;
		return 0;
	}
	/* device wherever /dev/vtpmx exists or modprobe tpm_vtpm_proxy makes it */
	if (ov_vtpmx_available(err) == 0) {
		*out = OV_BACKEND_DEVICE;
		return 0;
	}
	return ov_error_wrap(
	    err,
	    "this kernel has no vtpm_proxy; "
	    "set \"backend\": \"socket\" in the settings or the annotation " OV_ANNOTATION_PREFIX
	    "backend=socket to use a unix socket instead");
}
