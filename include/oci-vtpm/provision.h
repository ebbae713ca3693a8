/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the state of a slot's TPMs comes from, and where it goes: all the
 * policy in one place.
 *
 * At start, for each TPM of a new slot, in this order:
 *   restore      a named vTPM with an archived generation: its newest one
 *                (the name is claimed first: one container per name);
 *   pool         a new EK-certified TPM 2.0: a state manufactured ahead
 *                (lib/pool.c), where one is ready;
 *   manufacture  a new EK-certified TPM that the pool did not serve:
 *                manufactured inline (lib/manufacture.c);
 *   fresh        otherwise: an empty state directory, which swtpm fills
 *                with a new TPM at its first start.
 * Every state is encrypted with a state key: a named vTPM's (derived from
 * the master key, archive.h), a pool entry's, or a random one.
 * At stop, a named vTPM's state is archived as a new generation.
 */
#ifndef OCI_VTPM_PROVISION_H
#define OCI_VTPM_PROVISION_H

#include <stddef.h>
#include <stdint.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/util.h"

struct ov_provision {
	struct ov_key keys[OV_MAX_TPMS]; /* TPM i's state key */
	/* For the debug-level "timing:" line (ms). */
	double restore_ms, pool_ms, manufacture_ms;
};
void ov_provision_wipe(struct ov_provision *p);

/*
 * Fill the empty state directories statefds[0..r->count-1] of slot id
 * (state-<i> of slot id, files owned by u) with the states r asks
 * for and fill p with their keys. On failure nothing of a named vTPM
 * changed (a first start leaves no empty vTPM behind) and its claim is
 * released; the state directories may hold files (the slot is removed).
 */
int ov_provision_start(const struct ov_settings *s, int run, const char *id,
		       const struct ov_request *r, const struct ov_user *u, const int *statefds,
		       struct ov_provision *p, ov_error *err);

/* A start that failed after ov_provision_start: nothing of it is kept (the
 * archive is untouched); the claim of r->name by id is released. */
void ov_provision_undo(const struct ov_settings *s, const char *id, const struct ov_request *r);

/*
 * A named vTPM r (TPM 2.0, one TPM) in the warm swtpm now in slot cdirfd
 * (of id; its record rec): claim the name, load or create its keys, verify
 * and decrypt its newest generation here and hand it to the swtpm over
 * its control channel (a new name keeps the warm TPM's fresh state).
 * rec gets the name and state_in_swtpm and is written. On failure the
 * claim is released and a first start leaves no name behind; the swtpm
 * may hold a stopped TPM: discard the slot.
 */
int ov_provision_warm(const struct ov_settings *s, int run, const char *id,
		      const struct ov_request *r, int cdirfd, struct ov_record *rec, ov_error *err);

/* A vTPM with state_in_swtpm, before its swtpm stops: take its permanent
 * state back, plain (ov_swtpm_blob_free). After the stop: put it in the
 * state directory encrypted with the name's state key, as a cold start's
 * swtpm would have written it, for ov_provision_archive (vdir: the name's
 * archive, locked by the caller: ov_archive_dir). */
int ov_provision_take_back(const struct ov_settings *s, int cdirfd, const struct ov_record *rec,
			   uint8_t **plain, size_t *len, ov_error *err);
int ov_provision_put_back(const struct ov_settings *s, int vdir, int cdirfd,
			  const struct ov_record *rec, const uint8_t *plain, size_t len,
			  ov_error *err);

/* Stop of a named vTPM (rec->name; its swtpms stopped): archive the state
 * of slot cdirfd as a new generation into vdir (the name's archive, locked
 * by the caller from before the stop: a start of the name waits for the
 * generation). The claim is kept (released by the caller once the slot is
 * gone). */
int ov_provision_archive(const struct ov_settings *s, int vdir, int cdirfd,
			 const struct ov_record *rec, ov_error *err);

#endif
