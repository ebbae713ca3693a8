/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCI runtime state a hook gets on stdin, and the bundle's config.json.
 */
#ifndef OCI_VTPM_OCI_H
#define OCI_VTPM_OCI_H

#include <json-c/json.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"
#include "oci-vtpm/json.h"

#define OV_STATE_MAX  (1u << 20) /* the state is small; refuse more */
#define OV_CONFIG_MAX (16u << 20)

struct ov_state {
	char *id;
	char *bundle;
	char *status;
	pid_t pid;		  /* 0 when absent (poststop) */
	json_object *annotations; /* borrowed from root, may be NULL */
	json_object *root;
};

struct ov_spec {
	json_object *root;
	json_object *annotations; /* borrowed from root, may be NULL */
	json_object *env;	  /* process.env (strings), borrowed, may be NULL */
	char *rootfs;		  /* absolute path of root.path */
};

/* Parse the state JSON in buf. */
int ov_oci_state_parse(const char *buf, size_t len, struct ov_state *st, ov_error *err);
/* Read at most OV_STATE_MAX bytes from fd and parse them. */
int ov_oci_state_read(int fd, struct ov_state *st, ov_error *err);
void ov_oci_state_free(struct ov_state *st);

/* Parse a config.json already in memory; bundle resolves a relative root.path. */
int ov_oci_spec_parse(const char *buf, size_t len, const char *bundle, struct ov_spec *sp,
		      ov_error *err);
/* Load <bundle>/config.json. */
int ov_oci_spec_load(const char *bundle, struct ov_spec *sp, ov_error *err);
void ov_oci_spec_free(struct ov_spec *sp);

/*
 * The destinations (relative to the rootfs, "dev", "run") where config.json
 * has the runtime mount a filesystem of its own for this container (tmpfs,
 * devpts, ...): not a bind mount, which may be a volume or a host
 * directory. The last mount at a destination decides, as the runtime
 * stacks them. A NULL-terminated list in *out; free it with ov_strv_free.
 */
int ov_spec_fresh_mounts(const struct ov_spec *sp, char ***out, ov_error *err);
void ov_strv_free(char **v);
static inline void ov_strv_freep(char ***v)
{
	ov_strv_free(*v);
}

#endif
