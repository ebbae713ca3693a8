/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A CDI (Container Device Interface) spec of kind oci-vtpm.io/tpm, for
 * engines that read /etc/cdi (podman >= 4.1, Docker >= 25, containerd >=
 * 1.7, CRI-O): `podman run --device oci-vtpm.io/tpm=ephemeral IMAGE`.
 *
 * Each device adds our createRuntime and poststop hooks to the container,
 * with the request in the hooks' own environment (OCI_VTPM_ENABLE=true,
 * OCI_VTPM_NAME=<name> for a named one): the hook reads it from there as
 * it reads an annotation (config.h, ov_request_hook_env), so the image's
 * ENV plays no part and the settings' env_request does not apply. Devices:
 * "ephemeral", and one per vTPM name given.
 */
#ifndef OCI_VTPM_CDI_H
#define OCI_VTPM_CDI_H

#include <stdio.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

#define OV_CDI_KIND	   "oci-vtpm.io/tpm"
#define OV_CDI_VERSION	   "0.5.0"
#define OV_CDI_FILE	   "oci-vtpm.json"
#define OV_CDI_DIR_DEFAULT "/etc/cdi"
#define OV_CDI_EPHEMERAL   "ephemeral"

struct ov_cdi_opts {
	const char *hook;	  /* absolute path of oci-vtpm-hook */
	const char *config;	  /* absolute settings path for the hooks' env; NULL: none */
	const char *const *names; /* named devices (vTPM names); may be NULL */
	size_t n_names;
};

/* The spec as JSON text (*out malloc'd, caller frees). A name that is not
 * a valid vTPM name, "ephemeral", or given twice is an error. */
int ov_cdi_spec(const struct ov_settings *s, const struct ov_cdi_opts *o, char **out,
		ov_error *err);

/* Write the spec to dir/oci-vtpm.json atomically (mode 0644; dir made,
 * 0755, when missing) and say so on out. The hooks: the settings' "hook",
 * else oci-vtpm-hook next to this program; their env names the settings
 * file s was loaded from (s->path) as an absolute path, when there is one. */
int ov_cdi_write(const struct ov_settings *s, const char *dir, const char *const *names,
		 size_t n_names, FILE *out, ov_error *err);

#endif
