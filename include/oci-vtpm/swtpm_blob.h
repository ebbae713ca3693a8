/* SPDX-License-Identifier: Apache-2.0 */
/*
 * swtpm's state blob formats (swtpm 0.7's src/swtpm/swtpm_nvstore.c), for
 * handing a state to a running swtpm and taking it back (warm named vTPMs,
 * lib/warm.c):
 *
 *   file       what swtpm writes to its --tpmstate dir with --key
 *              mode=aes-256-cbc: a header (version 2, flags ENCRYPTED |
 *              256-bit key), then TLVs ENCRYPTED_DATA (AES-256-CBC, padded
 *              to 32 bytes with the pad length), HMAC (HMAC-SHA256 under
 *              the same key over the ciphertext then the IV) and IVEC (32
 *              random bytes, the first 16 the CBC IV);
 *   migration  what CMD_GET_STATEBLOB returns and CMD_SET_STATEBLOB takes:
 *              a header (flags MIGRATION_DATA), then TLV MIGRATION_DATA
 *              holding TLV DATA with the plain state (never encrypted here:
 *              it crosses only the 0600 control socket of a root-owned
 *              directory, and the swtpm taking it encrypts it with its own
 *              state key when it writes it).
 * Every buffer returned is the caller's (free it; plain states are wiped
 * by ov_swtpm_blob_free).
 */
#ifndef OCI_VTPM_SWTPM_BLOB_H
#define OCI_VTPM_SWTPM_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"

/* A state file swtpm wrote with key: its plain state. A file that does not
 * verify under key (another key, edited) fails with EBADMSG. */
int ov_swtpm_blob_decrypt(const struct ov_key *key, const uint8_t *file, size_t len,
			  uint8_t **plain, size_t *plain_len, ov_error *err);
/* The state file swtpm with key would write for plain. */
int ov_swtpm_blob_encrypt(const struct ov_key *key, const uint8_t *plain, size_t len,
			  uint8_t **file, size_t *file_len, ov_error *err);
/* Plain state -> migration blob, and back (a blob swtpm returned decrypted,
 * with no migration key). */
int ov_swtpm_blob_wrap(const uint8_t *plain, size_t len, uint8_t **blob, size_t *blob_len,
		       ov_error *err);
int ov_swtpm_blob_unwrap(const uint8_t *blob, size_t len, uint8_t **plain, size_t *plain_len,
			 ov_error *err);
/* Wipe and free a buffer of len bytes. */
void ov_swtpm_blob_free(uint8_t *p, size_t len);

#endif
