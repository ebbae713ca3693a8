/* SPDX-License-Identifier: Apache-2.0 */
/* What vtpm.c (start, attach, adopt), vtpm_stop.c (stop, collect) and
 * vtpm_place.c (the measured launch and the placing of the TPMs in the
 * container) share. */
#ifndef OCI_VTPM_VTPM_INTERNAL_H
#define OCI_VTPM_VTPM_INTERNAL_H

#include <sys/types.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/spec.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/vtpm.h"

/* The event logs of slot cdir, read-only at socket_dir in the container
 * whose init is pid. */
int ov_vtpm_expose_logs(int cdir, const struct ov_settings *s, pid_t pid, const struct ov_spec *sp,
			ov_error *err);
/* The measured launch: 1 when it measured now, 0 when not asked, measured
 * already or TPM 1.2, -1. */
int ov_vtpm_measure(int cdir, const struct ov_record *rec, const char *id, const struct ov_spec *sp,
		    const struct ov_request *r, ov_error *err);
/* Measure the launch and place rec's TPMs in the container (ops: rec's
 * backend). */
int ov_vtpm_place(int cdir, const struct ov_settings *s, const char *id, pid_t pid,
		  const struct ov_spec *sp, const struct ov_record *rec, const struct ov_request *r,
		  const struct ov_backend_ops *ops, ov_error *err);

/* Stop, archive (a named vTPM, under its archive's lock, taken here) and
 * remove the vTPMs of record rec of slot id (locked: cdir) in run dir run.
 * On a failure to archive, the record and the live state stay for gc. */
int ov_vtpm_stop_locked(const struct ov_settings *s, int run, int cdir, const char *id,
			struct ov_record *rec, ov_error *err);

#endif
