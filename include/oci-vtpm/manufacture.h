/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manufacturing a vTPM: a new TPM state, and for TPM 2.0 its endorsement
 * keys certified by the host CA (ca.h), the way a TPM vendor's factory does.
 *
 * A private swtpm is started on the new state (encrypted with the state key,
 * which reaches it on a pipe only), and spoken to directly over its socket
 * with raw TPM 2.0 commands, in this order:
 *   TPM2_GetCapability(TPM_PT_FIXED)   manufacturer, model, firmware, spec
 *   TPM2_CreatePrimary(endorsement)    the TCG default EK templates:
 *                                        L-1 RSA 2048 and L-2 ECC NIST P-256
 *                                        (what tpm2_createek makes), then flushed
 *   certificates, signed by the host CA in this process (ca.c)
 *   TPM2_NV_DefineSpace(platform) + TPM2_NV_Write + TPM2_NV_WriteLock
 *       0x01c00002 RSA EK certificate      (DER)
 *       0x01c0000a ECC EK certificate      (DER)
 *       0x01c08000 platform certificate    (DER, for the RSA EK)
 *     with the attributes of the TCG EK Credential Profile (and swtpm_setup):
 *     PPWRITE|WRITEDEFINE|PPREAD|OWNERREAD|AUTHREAD|NO_DA|PLATFORMCREATE,
 *     then write-locked for good;
 *   TPM2_Shutdown(CLEAR), then CMD_SHUTDOWN on the control channel.
 * tpm2_getekcertificate and tpm2_nvread then find the certificates. The EKs
 * are not made persistent: like a real TPM's, they are re-created from the
 * endorsement seed by whoever needs them (tpm2_createek).
 */
#ifndef OCI_VTPM_MANUFACTURE_H
#define OCI_VTPM_MANUFACTURE_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"

#define OV_NV_EK_CERT_RSA   0x01c00002u
#define OV_NV_EK_CERT_ECC   0x01c0000au
#define OV_NV_PLATFORM_CERT 0x01c08000u

#define OV_PLATFORM_MANUFACTURER "oci-vtpm"
#define OV_PLATFORM_MODEL	 "container"
#define OV_PLATFORM_VERSION	 "1.0"

/*
 * Make a new TPM state in state_dir, which must exist and hold no TPM state
 * yet (EEXIST otherwise: an identity is never overwritten). The state is
 * encrypted with state_key exactly as `swtpm --key fd=N,mode=aes-256-cbc,
 * format=binary` then reads it (NULL: not encrypted, for tests). With
 * ek_cert (TPM 2.0 only; ENOTSUP for 1.2), the EKs are certified by the CA
 * of s->ca_key / s->ca_cert. swtpm (s->swtpm) runs as uid (root: 0); the
 * files made are owned by uid:gid, as is state_dir. s->start_timeout_ms
 * bounds swtpm's start and again the TPM's work, s->stop_timeout_ms its
 * orderly stop. A private 0700 directory next to state_dir holds swtpm's
 * sockets and log while it runs, and is removed. On failure, swtpm's files
 * are removed from state_dir again.
 */
int ov_manufacture(const struct ov_settings *s, enum ov_tpm_version v, const char *state_dir,
		   const struct ov_key *state_key, bool ek_cert, uid_t uid, gid_t gid,
		   ov_error *err);

/* Does the directory statefd hold no swtpm state (TPM 2.0 or 1.2)? That is,
 * was nothing restored into it. */
bool ov_tpm_state_fresh(int statefd);

#endif
