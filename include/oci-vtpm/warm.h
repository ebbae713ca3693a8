/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Warm vTPMs: ephemeral vTPMs of one TPM on the settings' backend, started
 * ahead in slots named OV_WARM_PREFIX..., idle until a container that asks
 * for that kind takes one (one rename: ov_warm_take, from ov_vtpm_start).
 * Two kinds: TPM 2.0 (warm_size; EK-certified when the settings' ek_cert
 * says so) and TPM 1.2 (warm_size_tpm12). A named vTPM of a kind takes one
 * too: its archived state is handed to the running swtpm over its control
 * channel (ov_provision_warm). Best effort: what fails is a warning.
 */
#ifndef OCI_VTPM_WARM_H
#define OCI_VTPM_WARM_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

/* Can a warm vTPM serve request r of slot id? With warm ones of its kind
 * configured, for a container (not for a warm vTPM being made); the
 * backend is matched where one is taken. */
bool ov_warm_eligible(const struct ov_settings *s, const char *id, const struct ov_request *r);

/*
 * Take a warm TPM version vTPM of backend for slot to (of bundle, held by holder): the
 * first live one, moved to to. Returns its locked slot directory, or -1
 * with err->code ENOENT when none is ready (nothing changed).
 */
int ov_warm_take(const struct ov_settings *s, int run, const char *to, const char *bundle,
		 pid_t holder, enum ov_backend backend, enum ov_tpm_version version, ov_error *err);

/* How many warm vTPMs of TPM version v the settings keep running. */
unsigned ov_warm_target(const struct ov_settings *s, enum ov_tpm_version v);

/* Fill: collect dead ones and start new ones of TPM version v until its
 * target are ready. Drain: stop them all (both kinds); returns how many.
 * Count: the ready ones of TPM version v. */
int ov_warm_fill(const struct ov_settings *s, enum ov_tpm_version v, unsigned *ready,
		 unsigned *made, ov_error *err);
unsigned ov_warm_drain(const struct ov_settings *s);
unsigned ov_warm_count(const struct ov_settings *s, enum ov_tpm_version v);

#endif
