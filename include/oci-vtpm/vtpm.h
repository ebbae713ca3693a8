/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The life of a container's vTPMs: start at createRuntime/prestart, stop at
 * poststop. This is all the hook does; the hook's main only parses.
 */
#ifndef OCI_VTPM_VTPM_H
#define OCI_VTPM_VTPM_H

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/oci.h"

/* Start the vTPMs the request asks for and make them visible in the
 * container. Idempotent: a container that already has running vTPMs is left
 * as it is. On failure everything made so far is undone. */
int ov_vtpm_start(const struct ov_settings *s, const struct ov_state *st, const struct ov_spec *sp,
		  const struct ov_request *r, ov_error *err);

/* Stop the vTPMs of container id and remove its live state. Tolerates
 * partial state; nothing recorded is not an error. */
int ov_vtpm_stop(const struct ov_settings *s, const char *id, ov_error *err);

/* gc of one container's run directory: when its container is gone (or
 * the record is from another boot), stop what is left, archive a named
 * vTPM, remove the live state. Returns 1 when collected, 0 when still in
 * use, -1 on error. */
int ov_vtpm_collect(const struct ov_settings *s, const char *id, const char *boot_id,
		    ov_error *err);

/* gc of the vTPMs precreate stages started for containers that never
 * came (ov_precreated_valid names whose creator is gone); warns only. */
void ov_vtpm_collect_precreated(const struct ov_settings *s);

/* A run-dir name for vTPMs started before their container: prefix
 * (OV_PRECREATED_PREFIX or OV_WARM_PREFIX) and 32 random hex digits. */
int ov_vtpm_new_name(const char *prefix, char *buf, size_t size, ov_error *err);

/*
 * Warm vTPMs: ephemeral TPM 2.0s of the host's default kind (the settings'
 * backend and ek_cert), started ahead (run-dir names OV_WARM_PREFIX...),
 * idle until a container that asks for just that takes one (one rename).
 * Fill: collect dead ones and start new ones until target are ready.
 * Drain: stop them all; returns how many. Count: the ready ones.
 */
int ov_vtpm_warm_fill(const struct ov_settings *s, unsigned target, unsigned *ready, unsigned *made,
		      ov_error *err);
unsigned ov_vtpm_warm_drain(const struct ov_settings *s);
unsigned ov_vtpm_warm_count(const struct ov_settings *s);

/* Which backend a request gets on this host. */
int ov_vtpm_resolve_backend(const struct ov_request *r, enum ov_backend *out, ov_error *err);

#endif
