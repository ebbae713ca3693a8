/* SPDX-License-Identifier: Apache-2.0 */
#include "oci-vtpm/backend.h"
#include "oci-vtpm/rootless.h"
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
	/* vtpm_proxy's ioctl wants CAP_SYS_ADMIN in the initial user
	 * namespace, and the devices cgroup is root's. */
	if (ov_rootless()) {
		if (r->backend == OV_BACKEND_DEVICE)
			return ov_error_set(err, 0,
					    "the device backend needs root (CAP_SYS_ADMIN in the "
					    "initial user namespace); rootless, use the socket "
					    "backend (" OV_ANNOTATION_PREFIX "backend=socket)");
		*out = OV_BACKEND_SOCKET;
		return 0;
	}
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
