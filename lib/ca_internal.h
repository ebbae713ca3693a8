/* SPDX-License-Identifier: Apache-2.0 */
/* What ca.c (the CA itself) and ca_issue.c (the certificates it issues)
 * share. */
#ifndef OCI_VTPM_CA_INTERNAL_H
#define OCI_VTPM_CA_INTERNAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "oci-vtpm/error.h"

#define CA_DAYS (20 * 365 + 5) /* the CA certificate: twenty years */
/* notBefore a little in the past: a verifier whose clock is behind the host's
 * must not find a certificate made a moment ago "not yet valid". */
#define CA_BACKDATE   (60 * 60)
#define CERT_BACKDATE (5 * 60)
#define NO_EXPIRY     "99991231235959Z"
#define SERIAL_LEN    16

/* TCG OIDs (TCG EK Credential Profile for TPM Family 2.0). */
#define OID_TPM_MANUFACTURER	  "2.23.133.2.1"
#define OID_TPM_MODEL		  "2.23.133.2.2"
#define OID_TPM_VERSION		  "2.23.133.2.3"
#define OID_PLATFORM_MANUFACTURER "2.23.133.5.1.1"
#define OID_PLATFORM_MODEL	  "2.23.133.5.1.4"
#define OID_PLATFORM_VERSION	  "2.23.133.5.1.5"
#define OID_KP_EK_CERTIFICATE	  "2.23.133.8.1"
#define OID_KP_PLATFORM		  "2.23.133.8.2"
struct ov_ca {
	EVP_PKEY *key;
	X509 *cert;
};

static inline void ov_ca_x509_freep(X509 **x)
{
	X509_free(*x);
}
#define cleanup_x509 __attribute__((cleanup(ov_ca_x509_freep)))

/* Set err with the reason OpenSSL gives (its error queue is emptied). */
int ov_ca_ssl_error(ov_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A random positive serial of SERIAL_LEN octets. */
int ov_ca_set_serial(X509 *x, ov_error *err);
/* Add the extension nid given as OpenSSL's config text (issuer: for the
 * authority key identifier). */
int ov_ca_add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value);
/* A critical keyUsage with bit set. */
int ov_ca_add_key_usage(X509 *x, int bit);
/* The digest to sign with k (NULL for EdDSA). */
const EVP_MD *ov_ca_sign_md(EVP_PKEY *k);

#endif
