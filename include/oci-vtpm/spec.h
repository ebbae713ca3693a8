/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The edit oci-vtpm-runtime makes to a bundle's config.json, and podman's
 * precreate hook stage makes to the config on its stdin.
 *
 * The json-c tree is edited in place, so fields we do not know survive. The
 * edit is idempotent: our hook (any hooks[] entry whose path has the
 * basename oci-vtpm-hook, also one an oci-hooks(5) file put there) and our
 * devices and device rules are never added twice. A config.json that does
 * not ask for a vTPM is not touched at all. Files are replaced atomically.
 *
 * Device backend: the vTPMs are started before the runtime's create, with
 * ov_vtpm_start() and a state whose pid is 0 ("pre-created by the shim":
 * start swtpm and record it, place nothing), and their character devices
 * go into linux.devices and linux.resources.devices, so the runtime makes
 * the nodes and the device cgroup rules itself (cgroup v1 and v2 alike).
 * The hook, at createRuntime, finds the live record of that container id
 * and adopts it instead of starting another vTPM.
 */
#ifndef OCI_VTPM_SPEC_H
#define OCI_VTPM_SPEC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/store.h"

#define OV_HOOK_NAME	    "oci-vtpm-hook"
#define OV_DEV_FILE_MODE    0660
#define OV_HOOK_TIMEOUT_PAD 10 /* seconds on top of the hook's own bounds */

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
 * linux.devices ({path, type c, major, minor, fileMode 0660, uid 0, gid 0};
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

struct ov_spec_edit {
	const struct ov_settings *s;
	const char *hook;   /* absolute path of oci-vtpm-hook */
	const char *config; /* settings file named in the hooks' env; NULL: none */
	const char *id;	    /* container id; NULL: podman's precreate stage */
	const char *bundle; /* absolute bundle directory; NULL with id NULL */
	pid_t holder;	    /* the process that creates the container */
};

struct ov_spec_edit_result {
	bool enabled; /* the config asks for a vTPM */
	/* vTPMs were started before the container: for id (ov_vtpm_stop()
	 * undoes them), or without one, under a name of their own that the
	 * edit puts in the annotation io.oci-vtpm.precreated. */
	bool precreated;
	char run_name[64]; /* with precreated and no id: the name they got */
};

/*
 * Edit config.json text. *out is the new text (malloc'd, caller frees), or
 * NULL when nothing changes (no vTPM asked for, or everything already
 * there). Bad io.oci-vtpm.* annotations are errors. On error nothing is
 * left running.
 */
int ov_spec_edit_text(const char *buf, size_t len, const struct ov_spec_edit *e, char **out,
		      size_t *out_len, struct ov_spec_edit_result *res, ov_error *err);

/*
 * Edit dirfd/name (a config.json) in place: read it (a regular file,
 * bounded), edit as above, and only when something changed replace it
 * atomically with the same mode and owner. A config.json that is a symlink
 * is read but never rewritten. On error nothing is left running.
 */
int ov_spec_edit_file(int dirfd, const char *name, const struct ov_spec_edit *e,
		      struct ov_spec_edit_result *res, ov_error *err);

/* Does dirfd/name ask for a vTPM? 1 yes, 0 no, -1 error (bad annotations). */
int ov_spec_file_wants_vtpm(int dirfd, const char *name, const struct ov_settings *s,
			    ov_error *err);

#endif
