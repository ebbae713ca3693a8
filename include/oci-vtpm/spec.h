/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Edits of a container's config.json (a json-c tree): our hooks, our
 * devices, our annotation. Nothing here starts anything (prepare.h does).
 *
 * The json-c tree is edited in place, so fields we do not know survive. The
 * edits are idempotent: our hook (any hooks[] entry whose path has the
 * basename oci-vtpm-hook, also one an oci-hooks(5) file put there) and our
 * devices and device rules are never added twice.
 */
#ifndef OCI_VTPM_SPEC_H
#define OCI_VTPM_SPEC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/store.h"

#define OV_HOOK_NAME	    "oci-vtpm-hook"
#define OV_DEV_FILE_MODE    0600 /* root-only, as the host's nodes (udev rule) */
#define OV_HOOK_TIMEOUT_PAD 10	 /* seconds on top of the hook's own bounds */

/* Our entries in hooks.createRuntime and hooks.poststop. */
struct ov_hook_opts {
	const char *path;	/* absolute path of oci-vtpm-hook */
	const char *config;	/* settings file, for env OCI_VTPM_CONFIG=; NULL: empty env */
	unsigned start_timeout; /* seconds, the createRuntime entry */
	unsigned stop_timeout;	/* seconds, the poststop entry */
	const char *const *env; /* more env entries, NULL-terminated; may be NULL */
};

/* One hooks[] entry: {path, args [oci-vtpm-hook, STAGE], env
 * [OCI_VTPM_CONFIG=config if set, o->env...], timeout}; NULL: no memory. */
json_object *ov_spec_hook_entry(const struct ov_hook_opts *o, const char *stage, unsigned timeout);

/* Is this hooks[] entry oci-vtpm-hook (by the basename of its path)? */
bool ov_spec_hook_is_ours(json_object *entry);

/* Timeouts for count TPMs from the settings' start and stop bounds. */
void ov_spec_hook_timeouts(const struct ov_settings *s, unsigned count, struct ov_hook_opts *o);

/*
 * Add our createRuntime hook (unless createRuntime or prestart already has
 * ours) and our poststop hook (unless poststop has ours), each with args
 * [oci-vtpm-hook, STAGE], an explicit env and a timeout. Returns 1 when
 * spec changed, 0 when it already had both, -1 on error.
 */
int ov_spec_add_hooks(json_object *spec, const struct ov_hook_opts *o, ov_error *err);

/*
 * Give the container the character device major:minor at path: an entry in
 * linux.devices ({path, type c, major, minor, fileMode 0600, uid 0, gid 0};
 * an entry for the same path with other numbers is replaced, and the allow
 * rule made for those numbers dropped) and an allow rule at the end of
 * linux.resources.devices ({allow, type c, major, minor, access rwm}).
 * Returns 1 when spec changed, 0 when it had both already, -1 on error.
 */
int ov_spec_add_device(json_object *spec, const char *path, unsigned major, unsigned minor,
		       ov_error *err);

/* ov_spec_add_device for each TPM of a record: tpms[i].dev as /dev/tpm<i>,
 * tpms[i].rmdev (when not 0) as /dev/tpmrm<i>. Returns 1, 0 or -1 as above. */
int ov_spec_add_record_devices(json_object *spec, const struct ov_record *rec, ov_error *err);

/*
 * Bind-mount the host directory source at destination in the container,
 * read-only (options bind, ro, nosuid, nodev, noexec), as the last entry of
 * mounts; an earlier such entry of ours at destination is replaced.
 * Returns 1 when spec changed, 0 when it had it, -1 on error.
 */
int ov_spec_add_ro_bind(json_object *spec, const char *source, const char *destination,
			ov_error *err);

/* Is the annotation key "true"? (annotations may be NULL) */
bool ov_spec_annotated_true(json_object *annotations, const char *key);
/* Set the annotation key to value in spec (made when absent). */
int ov_spec_annotate(json_object *spec, const char *key, const char *value, ov_error *err);

/* Read dirfd/name: a regular file (a symlink to one is followed), at most
 * OV_CONFIG_MAX bytes; st is what was read. */
int ov_spec_read(int dirfd, const char *name, struct stat *st, char **buf, size_t *len,
		 ov_error *err);

/* Parse config.json text (bundle resolves a relative root.path) and the
 * request it makes. On failure nothing is left to free. */
int ov_spec_request(const char *buf, size_t len, const struct ov_settings *s, const char *bundle,
		    struct ov_spec *sp, struct ov_request *r, ov_error *err);

/* Does dirfd/name ask for a vTPM? 1 yes, 0 no, -1 error (bad annotations). */
int ov_spec_file_wants_vtpm(int dirfd, const char *name, const struct ov_settings *s,
			    ov_error *err);

#endif
