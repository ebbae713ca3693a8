/* SPDX-License-Identifier: Apache-2.0 */
/* EK and platform certificates issued by the host CA (ca.h). */
#include <errno.h>
#include <openssl/asn1.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "oci-vtpm/ca.h"
#include "ca_internal.h"

/* tcg-at-tpmSpecification 2.23.133.2.16, DER */
static const unsigned char oid_tpm_specification[] = {0x06, 0x05, 0x67, 0x81, 0x05, 0x02, 0x10};

/* A directoryName of (oid, UTF8String) RDNs, as a critical subjectAltName. */
static int add_dirname_san(X509 *x, const char *const oids[3], const char *const values[3])
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	X509_NAME *dn = X509_NAME_new();
	int ok = gens && gn && dn;

	for (int i = 0; ok && i < 3; i++) {
		ASN1_OBJECT *o = OBJ_txt2obj(oids[i], 1);

		ok = o &&
		     X509_NAME_add_entry_by_OBJ(dn, o, V_ASN1_UTF8STRING,
						(const unsigned char *)values[i], -1, -1, 0) == 1;
		ASN1_OBJECT_free(o);
	}
	if (ok) {
		GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dn);
		dn = NULL;
		ok = sk_GENERAL_NAME_push(gens, gn) > 0;
		if (ok)
			gn = NULL;
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) == 1;
	X509_NAME_free(dn);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

static int add_eku(X509 *x, const char *oid)
{
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
	int ok = eku && o && sk_ASN1_OBJECT_push(eku, o) > 0;

	if (ok)
		o = NULL;
	ok = ok && X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
	ASN1_OBJECT_free(o);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	return ok ? 0 : -1;
}

/* DER of a non-negative INTEGER. */
static size_t der_uint(uint32_t v, unsigned char *out)
{
	unsigned char b[5];
	size_t n = 0;

	b[n++] = 0;
	for (int shift = 24; shift >= 0; shift -= 8)
		b[n++] = (unsigned char)(v >> shift);
	/* minimal: drop leading zeros while the next octet's top bit is clear */
	size_t start = 0;
	while (start < n - 1 && b[start] == 0 && !(b[start + 1] & 0x80))
		start++;
	out[0] = 0x02;
	out[1] = (unsigned char)(n - start);
	memcpy(out + 2, b + start, n - start);
	return 2 + n - start;
}

/*
 * subjectDirectoryAttributes with one tcg-at-tpmSpecification:
 * SEQUENCE { SEQUENCE { OID, SET { SEQUENCE { UTF8String family,
 * INTEGER level, INTEGER revision } } } }. Every length is < 128.
 */
static int add_tpm_spec(X509 *x, const struct ov_tpm_info *tpm)
{
	unsigned char spec[64], attr[96], der[128];
	size_t flen = strnlen(tpm->family, sizeof(tpm->family) - 1), n = 0, a = 0;
	ASN1_OCTET_STRING *os;
	X509_EXTENSION *ext;
	int ok;

	spec[n++] = 0x30;
	spec[n++] = 0; /* filled below */
	spec[n++] = 0x0c;
	spec[n++] = (unsigned char)flen;
	memcpy(spec + n, tpm->family, flen);
	n += flen;
	n += der_uint(tpm->level, spec + n);
	n += der_uint(tpm->revision, spec + n);
	spec[1] = (unsigned char)(n - 2);

	attr[a++] = 0x30;
	attr[a++] = (unsigned char)(sizeof(oid_tpm_specification) + 2 + n);
	memcpy(attr + a, oid_tpm_specification, sizeof(oid_tpm_specification));
	a += sizeof(oid_tpm_specification);
	attr[a++] = 0x31;
	attr[a++] = (unsigned char)n;
	memcpy(attr + a, spec, n);
	a += n;

	der[0] = 0x30;
	der[1] = (unsigned char)a;
	memcpy(der + 2, attr, a);

	os = ASN1_OCTET_STRING_new();
	ok = os && ASN1_OCTET_STRING_set(os, der, (int)(a + 2)) == 1;
	ext =
	    ok ? X509_EXTENSION_create_by_NID(NULL, NID_subject_directory_attributes, 0, os) : NULL;
	ok = ext && X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	return ok ? 0 : -1;
}

static int add_extensions(const struct ov_ca *ca, X509 *x, enum ov_cert_kind kind, EVP_PKEY *ek,
			  const struct ov_tpm_info *tpm, const struct ov_platform_info *platform)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	int ok;

	if (kind == OV_CERT_EK) {
		char manufacturer[16], version[16];
		const char *const oids[3] = {OID_TPM_MANUFACTURER, OID_TPM_MODEL, OID_TPM_VERSION};
		const char *const values[3] = {manufacturer, tpm->model, version};

		snprintf(manufacturer, sizeof(manufacturer), "id:%08X", tpm->manufacturer);
		snprintf(version, sizeof(version), "id:%08X", tpm->firmware1);
		ok = add_dirname_san(x, oids, values) == 0;
	} else {
		const char *const oids[3] = {OID_PLATFORM_MANUFACTURER, OID_PLATFORM_MODEL,
					     OID_PLATFORM_VERSION};
		const char *const values[3] = {platform->manufacturer, platform->model,
					       platform->version};

		ok = add_dirname_san(x, oids, values) == 0;
	}
	/* CA:FALSE (the DER default, so an empty SEQUENCE), critical */
	ok =
	    ok && bc && X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1;
	BASIC_CONSTRAINTS_free(bc);
	if (ok && kind == OV_CERT_EK)
		ok = add_tpm_spec(x, tpm) == 0;
	/* keyid when the CA has a subjectKeyIdentifier, else issuer and serial */
	ok = ok &&
	     ov_ca_add_conf_ext(x, ca->cert, NID_authority_key_identifier, "keyid,issuer") == 0;
	/* RSA EK: keyEncipherment (bit 2); ECC EK: keyAgreement (bit 4) */
	ok = ok && ov_ca_add_key_usage(x, EVP_PKEY_is_a(ek, "EC") ? 4 : 2) == 0;
	ok = ok && add_eku(x, kind == OV_CERT_EK ? OID_KP_EK_CERTIFICATE : OID_KP_PLATFORM) == 0;
	return ok ? 0 : -1;
}

int ov_ca_issue(const struct ov_ca *ca, enum ov_cert_kind kind, EVP_PKEY *ek,
		const struct ov_tpm_info *tpm, const struct ov_platform_info *platform,
		unsigned char **der, size_t *der_len, ov_error *err)
{
	const char *what = kind == OV_CERT_EK ? "EK certificate" : "platform certificate";
	cleanup_x509 X509 *x = X509_new();
	unsigned char *out = NULL;
	int n;

	*der = NULL;
	*der_len = 0;
	if ((kind == OV_CERT_EK && !tpm) || (kind == OV_CERT_PLATFORM && !platform))
		return ov_error_set(err, EINVAL, "%s: nothing to certify", what);
	if (!x || X509_set_version(x, X509_VERSION_3) != 1)
		return ov_ca_ssl_error(err, "%s", what);
	if (ov_ca_set_serial(x, err) < 0)
		return ov_error_wrap(err, "%s", what);
	/* Empty subject (TCG): the subjectAltName, critical, names the TPM. */
	if (X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -CERT_BACKDATE) ||
	    ASN1_TIME_set_string_X509(X509_getm_notAfter(x), NO_EXPIRY) != 1 ||
	    X509_set_pubkey(x, ek) != 1 || add_extensions(ca, x, kind, ek, tpm, platform) < 0 ||
	    X509_sign(x, ca->key, ov_ca_sign_md(ca->key)) <= 0)
		return ov_ca_ssl_error(err, "issuing the %s", what);
	n = i2d_X509(x, &out);
	if (n <= 0)
		return ov_ca_ssl_error(err, "encoding the %s", what);
	*der = out;
	*der_len = (size_t)n;
	return 0;
}
