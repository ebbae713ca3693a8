/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The swtpm processes of a slot (instance.h): one swtpm instance
 * (swtpm.h's ov_swtpm_start) per TPM, on the channel its backend opens, in
 * the slot's directory, recorded in the slot's record as soon as it runs.
 */
#ifndef OCI_VTPM_LAUNCH_H
#define OCI_VTPM_LAUNCH_H

#include "oci-vtpm/backend.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/util.h"

/*
 * Start r->count swtpms in slot cdirfd (their states in state-<i>, made
 * and provisioned, encrypted with keys[i]), running as u, and wait until
 * every one answers (and its backend's device is there). rec (its id,
 * backend, ... filled) gets each swtpm and is written as it grows. On
 * failure the swtpms started so far are in rec: stop them with
 * ov_launch_stop.
 */
int ov_launch_start(int cdirfd, const struct ov_settings *s, const struct ov_request *r,
		    const struct ov_user *u, const struct ov_key *keys, struct ov_record *rec,
		    ov_error *err);

/* Stop every swtpm rec records: a named vTPM's in order where it answers
 * (a warning when one had to be killed), an ephemeral one's (no name: its
 * state is thrown away) killed at once. -1 if one could not be stopped
 * (the others are). */
int ov_launch_stop(int cdirfd, const struct ov_settings *s, const struct ov_record *rec,
		   ov_error *err);

/* A state blob for ov_launch_hand_over: type (OV_SWTPM_BLOB_*) and its
 * plain state. */
struct ov_launch_blob {
	uint32_t type;
	uint8_t *plain;
	size_t len;
};

/*
 * Give the running swtpm of TPM 0 of slot cdirfd (rec) the states blobs
 * [0..n): stop its TPM, set each blob, initialise it again and send it
 * Startup(CLEAR) (what --flags startup-clear did at its start; TPM 2.0 or
 * 1.2) through the backend's connection to it (ops->connect: the socket,
 * or the host's /dev/tpmN of a vtpm_proxy chip). Its own state key
 * encrypts what it writes.
 * On failure the swtpm holds no usable TPM: stop it.
 */
int ov_launch_hand_over(int cdirfd, const struct ov_settings *s, const struct ov_record *rec,
			const struct ov_launch_blob *blobs, unsigned n, ov_error *err);

/* The other way, before the stop: shut TPM 0 down in order (a TPM 2.0:
 * TPM2_Shutdown through ops->connect: its state written) and take its permanent state
 * back, plain (*plain is the
 * caller's: ov_swtpm_blob_free). */
int ov_launch_take_back(int cdirfd, const struct ov_settings *s, const struct ov_record *rec,
			uint8_t **plain, size_t *len, ov_error *err);

#endif
