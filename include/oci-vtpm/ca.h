/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host CA, on OpenSSL libcrypto: it signs the EK and platform
 * certificates of the vTPMs this host manufactures.
 *
 * Two files (settings "ca_key", "ca_cert"): an unencrypted PEM private key,
 * a regular file owned by root and readable by nobody else, and the CA's PEM
 * certificate (basicConstraints CA:TRUE; keyUsage, when present, with
 * keyCertSign). `oci-vtpm init` makes a self-signed one (EC P-256) unless
 * both files exist; an operator's own CA (a root or an intermediate) is used
 * simply by putting its key and certificate there.
 *
 * Certificates follow the TCG EK Credential Profile for TPM 2.0 the way
 * swtpm_cert makes them: empty subject, a critical subjectAltName naming the
 * TPM's manufacturer, model and firmware version, the TPM specification in
 * subjectDirectoryAttributes, basicConstraints CA:FALSE, keyUsage
 * keyEncipherment (RSA EK) or keyAgreement (ECC EK), extendedKeyUsage
 * tcg-kp-EKCertificate, a random 127-bit serial and no expiry
 * (99991231235959Z). The platform certificate is swtpm_cert's X.509 form (the
 * EK's key, the platform's manufacturer, model and version in the
 * subjectAltName, extendedKeyUsage tcg-kp-PlatformAttributeCertificate), not a
 * TCG platform attribute certificate.
 */
#ifndef OCI_VTPM_CA_H
#define OCI_VTPM_CA_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "oci-vtpm/error.h"

#define OV_CA_FILE_MAX (256u << 10) /* key and certificate files are bounded */

enum ov_ca_alg {
	OV_CA_EC_P256,
	OV_CA_RSA_3072,
};

/* A loaded CA: its key and certificate. */
struct ov_ca;

/*
 * Make a new CA: key (0600, written whole and linked into place without
 * replacing anything) and self-signed certificate (0644), each directory
 * made 0700 when missing. Refuses (EEXIST) when either file exists. cn: the
 * certificate's common name (NULL: "oci-vtpm EK CA <hostname>").
 */
int ov_ca_create(const char *key_path, const char *cert_path, enum ov_ca_alg alg, const char *cn,
		 ov_error *err);

/*
 * For `oci-vtpm init`: both files exist -> load and check them (the
 * operator's CA or an earlier init), *created = false; neither -> create an
 * EC P-256 CA, *created = true; only one -> an error naming the missing one.
 */
int ov_ca_init(const char *key_path, const char *cert_path, bool *created, ov_error *err);

/*
 * Load and check a CA. Refused, each with an error naming the file: a
 * symlink or non-regular file, a key owned by another user than root or
 * accessible by group or others, an encrypted or unparsable key, a
 * certificate that is not a CA (basicConstraints CA:TRUE; keyUsage without
 * keyCertSign), not valid now, or whose key is not the private key.
 */
struct ov_ca *ov_ca_load(const char *key_path, const char *cert_path, ov_error *err);
void ov_ca_free(struct ov_ca *ca);
static inline void ov_ca_freep(struct ov_ca **ca)
{
	ov_ca_free(*ca);
}
#define cleanup_ca __attribute__((cleanup(ov_ca_freep)))

/* A one-line description of the CA: subject and SHA-256 fingerprint. */
void ov_ca_describe(const struct ov_ca *ca, char *buf, size_t size);

/* What a TPM 2.0 says about itself (TPM2_GetCapability, TPM_PT_FIXED). */
struct ov_tpm_info {
	uint32_t manufacturer; /* TPM_PT_MANUFACTURER, e.g. 0x49424D00 "IBM" */
	char model[17];	       /* TPM_PT_VENDOR_STRING_1..4, trimmed */
	uint32_t firmware1;    /* TPM_PT_FIRMWARE_VERSION_1 */
	char family[5];	       /* TPM_PT_FAMILY_INDICATOR, e.g. "2.0" */
	uint32_t level;	       /* TPM_PT_LEVEL */
	uint32_t revision;     /* TPM_PT_REVISION, e.g. 164 */
};

struct ov_platform_info {
	const char *manufacturer;
	const char *model;
	const char *version;
};

enum ov_cert_kind {
	OV_CERT_EK,	  /* needs tpm */
	OV_CERT_PLATFORM, /* needs platform */
};

/*
 * Issue a DER certificate for the EK public key ek (RSA or EC), signed by
 * ca. *der is the caller's to free (OPENSSL_free).
 */
int ov_ca_issue(const struct ov_ca *ca, enum ov_cert_kind kind, EVP_PKEY *ek,
		const struct ov_tpm_info *tpm, const struct ov_platform_info *platform,
		unsigned char **der, size_t *der_len, ov_error *err);

#endif
