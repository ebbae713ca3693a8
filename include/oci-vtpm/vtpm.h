/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The life of a container's vTPMs, composed of its stages:
 *   start   a slot (instance.h) + where the state comes from (provision.h)
 *           + the swtpm processes (launch.h): running, recorded, in no
 *           container yet;
 *   attach  the backend places the TPMs in a container (backend.h);
 *   adopt   a container takes over vTPMs placed already (by config.json);
 *   stop    swtpm stopped, a named vTPM archived, the slot removed.
 * The hook calls start, then attach (or adopt); podman's precreate stage,
 * the shim and warm vTPMs call start alone. No OCI state travels here.
 */
#ifndef OCI_VTPM_VTPM_H
#define OCI_VTPM_VTPM_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/oci.h"

struct ov_record;

/*
 * Start the vTPMs request r asks for in slot id (bundle: recorded for the
 * operator, may be NULL). holder (> 0) is the process whose life keeps
 * them in use until a container is recorded: the container's init (the
 * hook), the process creating it (the shim, podman's precreate stage); 0:
 * none (a warm vTPM: in use while it runs). A warm vTPM or podman's
 * precreated ones (r->precreated) are taken over where they serve.
 * Returns 0 when they were started (or a warm one taken): ov_vtpm_attach
 * places them; 1 when id's vTPMs run already (nothing done: ov_vtpm_adopt);
 * -1 with err->code EBUSY when they run for another container with the
 * same id (bundle or holder differ: ov_instance_owner_check);
 * -1 on error, with everything made undone.
 */
int ov_vtpm_start(const struct ov_settings *s, const char *id, const char *bundle,
		  const struct ov_request *r, pid_t holder, ov_error *err);

/* Place the vTPMs of slot id in the container whose init is pid (of
 * config sp) and record it; with r->measure, measure its launch first
 * (lib/measure.c). On failure they are stopped and discarded (the archive
 * is untouched). */
int ov_vtpm_attach(const struct ov_settings *s, const char *id, pid_t pid, const struct ov_spec *sp,
		   const struct ov_request *r, ov_error *err);

/* Record the container whose init is pid as the user of slot id's running
 * vTPMs (placed in it already: through config.json), and with r->measure
 * measure its launch unless that was done already (r NULL: only record;
 * the shim measured in ov_prepare_text). */
int ov_vtpm_adopt(const struct ov_settings *s, const char *id, pid_t pid, const struct ov_spec *sp,
		  const struct ov_request *r, ov_error *err);

/*
 * The shim (oci-vtpm-runtime): as ov_vtpm_adopt without r, and rt, the
 * runtime that runs the container (path and --root), recorded with it
 * (struct ov_record's runtime): a delete through the same runtime and root
 * is this container's, known without asking the runtime.
 */
struct ov_vtpm_runtime {
	const char *path;
	const char *root; /* absolute, symlinks resolved; NULL: none recorded */
};
int ov_vtpm_adopt_runtime(const struct ov_settings *s, const char *id, pid_t pid,
			  const struct ov_vtpm_runtime *rt, ov_error *err);

/* Stop the vTPMs of slot id and remove its live state. Tolerates partial
 * state; nothing recorded is not an error. */
int ov_vtpm_stop(const struct ov_settings *s, const char *id, ov_error *err);
/* The same for the container of bundle whose init was pid (either NULL/0:
 * not known): a record that is another container's (another runtime root
 * with the same id, ov_instance_owner_check) is left alone, and the call
 * returns -1 with err->code EBUSY. With detach (settings stop_async), a
 * named vTPM is marked stopping and a detached worker, holding the slot's
 * and the archive's locks, stops and archives it after this returns (a
 * start of the same id or name waits for it); its failures go to the log
 * only, and leave the live state to gc. */
int ov_vtpm_stop_owned(const struct ov_settings *s, const char *id, const char *bundle, pid_t pid,
		       bool detach, ov_error *err);

/* gc of one slot: when its container is gone (or the record is from
 * another boot), stop what is left, archive a named vTPM, remove the live
 * state. Returns 1 when collected, 0 when still in use, -1 on error. */
int ov_vtpm_collect(const struct ov_settings *s, const char *id, const char *boot_id,
		    ov_error *err);

/* gc of the vTPMs precreate stages started for containers that never
 * came (ov_precreated_valid names whose creator is gone); warns only. */
void ov_vtpm_collect_precreated(const struct ov_settings *s);

#endif
