/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys, on OpenSSL libcrypto.
 *
 * The master key (32 random bytes, 0600 root) never reaches swtpm. Each
 * vTPM has its own random data key, stored only wrapped (AES-256-GCM) under
 * a key-encryption key derived from the master key with HKDF-SHA256, salted
 * per vTPM and bound to its name. From the data key come, again by HKDF, the
 * state key handed to swtpm on a pipe and the key that authenticates its
 * archives. Rotating the master key rewraps one data key per vTPM; the
 * archives themselves do not change.
 */
#ifndef OCI_VTPM_CRYPTO_H
#define OCI_VTPM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "oci-vtpm/error.h"

#define OV_KEY_LEN     32
#define OV_SALT_LEN    32
#define OV_WRAPPED_LEN (12 + OV_KEY_LEN + 16) /* iv, ciphertext, tag */
#define OV_MAC_LEN     32
#define OV_KEY_ID_LEN  16 /* hex characters */

struct ov_key {
	uint8_t b[OV_KEY_LEN];
};

/* Wipe a key when its variable leaves scope. */
void ov_key_wipe(struct ov_key *k);
#define cleanup_key __attribute__((cleanup(ov_key_wipe)))

int ov_random(void *buf, size_t len, ov_error *err);

/* Read a master key file: exactly 32 bytes, a regular file not readable by
 * group or others, owned by root. */
int ov_master_key_load(const char *path, struct ov_key *k, ov_error *err);
/* Make a new master key file (O_EXCL: never overwrites), 0600; its directory
 * is created 0700 when missing. */
int ov_master_key_create(const char *path, struct ov_key *k, ov_error *err);
/* Write k to path (O_EXCL), durably. */
int ov_master_key_write(const char *path, const struct ov_key *k, ov_error *err);

/* A short public fingerprint of a master key (hex, NUL-terminated). */
void ov_key_id(const struct ov_key *master, char out[OV_KEY_ID_LEN + 1]);

int ov_hkdf(const struct ov_key *ikm, const uint8_t *salt, size_t salt_len, const char *label,
	    const char *name, struct ov_key *out, ov_error *err);

/* AES-256-GCM of one key under kek, with aad bound in. */
int ov_key_wrap(const struct ov_key *kek, const void *aad, size_t aad_len, const struct ov_key *k,
		uint8_t out[OV_WRAPPED_LEN], ov_error *err);
/* Fails (EBADMSG) when kek is not the one that wrapped, or anything changed. */
int ov_key_unwrap(const struct ov_key *kek, const void *aad, size_t aad_len,
		  const uint8_t in[OV_WRAPPED_LEN], struct ov_key *k, ov_error *err);

/* Incremental HMAC-SHA256. */
struct ov_mac;
struct ov_mac *ov_mac_new(const struct ov_key *k, ov_error *err);
void ov_mac_update(struct ov_mac *m, const void *data, size_t len);
int ov_mac_final(struct ov_mac *m, uint8_t out[OV_MAC_LEN], ov_error *err);
void ov_mac_free(struct ov_mac *m);
/* Constant time. */
int ov_mac_equal(const uint8_t a[OV_MAC_LEN], const uint8_t b[OV_MAC_LEN]);

void ov_hex(const uint8_t *in, size_t len, char *out);
int ov_unhex(const char *in, uint8_t *out, size_t len);

#endif
