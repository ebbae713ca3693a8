/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Measured launch: before the container's first process runs, PCR
 * OV_MEASURE_PCR of each of its TPM 2.0 vTPMs is extended with the
 * container's launch identity, one event per item (oci-vtpm's version, the
 * container id, the engine, the image, process args, cwd, user, env names,
 * capabilities, mounts, namespaces, seccomp), and a TCG Canonical Event Log
 * (CEL-JSON) of exactly those extends is written next to the vTPM's
 * socket: OV_MEASURE_LOG_DIR/tpmN.cel.json in the slot, <socket_dir>/
 * tpmN.cel.json in the container (read-only), `oci-vtpm log ID` on the host.
 *
 * Each record's content is {"string": S}, S a canonical JSON object of one
 * key (the item's name) and its value; every digest is the hash of S's
 * bytes. Never a secret: env values are not measured, not even hashed.
 */
#ifndef OCI_VTPM_MEASURE_H
#define OCI_VTPM_MEASURE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/store.h"

#define OV_MEASURE_PCR		11
#define OV_MEASURE_LOG_DIR	"private/tpm" /* under the slot: the socket backend's */
#define OV_MEASURE_CONTENT_TYPE "oci-vtpm"

/* The measured strings, in order (a json array of strings): what
 * ov_measure_launch extends. Exposed for the unit tests. */
int ov_measure_events(const char *id, const struct ov_spec *sp, json_object **out, ov_error *err);

/* Measure the launch of container id (config sp) into every TPM 2.0 of rec
 * (slot cdirfd, its lock held) and write their event logs. Done once per
 * slot: returns 1 when it measured, 0 when the logs are there already
 * (a second hook stage) or the vTPMs are TPM 1.2 (not measured), -1. */
int ov_measure_launch(int cdirfd, const struct ov_record *rec, const char *id,
		      const struct ov_spec *sp, ov_error *err);

/* The file name of TPM idx's event log in OV_MEASURE_LOG_DIR. */
void ov_measure_log_name(unsigned idx, char *buf, size_t size);

/* The event log of TPM idx of container id's running vTPMs (malloc'd
 * text); ENOENT when there is none (not measured, or no such container). */
int ov_measure_log_read(const char *run_dir, const char *id, unsigned idx, char **out, size_t *len,
			ov_error *err);

#endif
