/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/ca.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"

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
/* tcg-at-tpmSpecification 2.23.133.2.16, DER */
static const unsigned char oid_tpm_specification[] = {0x06, 0x05, 0x67, 0x81, 0x05, 0x02, 0x10};

struct ov_ca {
	EVP_PKEY *key;
	X509 *cert;
};

/* Set err with the reason OpenSSL gives (its error queue is emptied). */
static int ssl_error(ov_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ssl_error(ov_error *err, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	if (e && ERR_reason_error_string(e))
		return ov_error_set(err, 0, "%s: %s", what, ERR_reason_error_string(e));
	return ov_error_set(err, 0, "%s", what);
}

static void wipe_free(char **p)
{
	if (*p) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
	}
}
#define cleanup_secret __attribute__((cleanup(wipe_free)))

static void bio_freep(BIO **b)
{
	BIO_free(*b);
}
#define cleanup_bio __attribute__((cleanup(bio_freep)))

static void x509_freep(X509 **x)
{
	X509_free(*x);
}
#define cleanup_x509 __attribute__((cleanup(x509_freep)))

static void pkey_freep(EVP_PKEY **k)
{
	EVP_PKEY_free(*k);
}
#define cleanup_pkey __attribute__((cleanup(pkey_freep)))

/* Read a CA file: a regular file (no symlink), bounded; the key must be
 * root's and not accessible by group or others. */
static int read_ca_file(const char *path, bool secret, char **out, size_t *len, ov_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd < 0) {
		if (errno == ELOOP)
			return ov_error_set(err, 0, "%s is a symlink; refusing it", path);
		return ov_error_set(err, errno, "%s", path);
	}
	if (fstat(fd, &st) < 0)
		return ov_error_set(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return ov_error_set(err, 0, "%s is not a regular file", path);
	if (secret && (st.st_uid != 0 || (st.st_mode & 077)))
		return ov_error_set(err, EPERM,
				    "CA key %s must be owned by root and not accessible by group "
				    "or others (mode 0600)",
				    path);
	if (ov_read_fd(fd, OV_CA_FILE_MAX, out, len, err) < 0)
		return ov_error_wrap(err, "%s", path);
	return 0;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *parse_key(const char *path, const char *pem, size_t len, ov_error *err)
{
	cleanup_bio BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k;

	if (!bio) {
		ov_error_set(err, ENOMEM, "CA key %s", path);
		return NULL;
	}
	if (strstr(pem, "ENCRYPTED")) {
		ov_error_set(err, 0,
			     "CA key %s is encrypted; the hook cannot ask for a passphrase: "
			     "store it unencrypted, mode 0600, owned by root",
			     path);
		return NULL;
	}
	k = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	if (!k)
		ssl_error(err, "CA key %s: not a PEM private key", path);
	return k;
}

static X509 *parse_cert(const char *path, const char *buf, size_t len, ov_error *err)
{
	cleanup_bio BIO *bio = BIO_new_mem_buf(buf, (int)len);
	X509 *x;

	if (!bio) {
		ov_error_set(err, ENOMEM, "CA certificate %s", path);
		return NULL;
	}
	x = PEM_read_bio_X509(bio, NULL, no_password, NULL);
	if (!x) {
		const unsigned char *p = (const unsigned char *)buf;

		ERR_clear_error();
		x = d2i_X509(NULL, &p, (long)len); /* DER is accepted too */
	}
	if (!x)
		ssl_error(err, "CA certificate %s: not a PEM or DER certificate", path);
	return x;
}

static int check_cert(const char *path, X509 *x, EVP_PKEY *k, ov_error *err)
{
	uint32_t flags = X509_get_extension_flags(x);

	if (!(flags & EXFLAG_CA))
		return ov_error_set(err, 0,
				    "CA certificate %s is not a CA certificate (basicConstraints "
				    "CA:TRUE is missing)",
				    path);
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
		return ov_error_set(err, 0,
				    "CA certificate %s may not sign certificates (keyUsage lacks "
				    "keyCertSign)",
				    path);
	if (X509_check_ca(x) != 1)
		return ov_error_set(err, 0, "CA certificate %s is not a CA certificate", path);
	if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0)
		return ov_error_set(err, 0, "CA certificate %s is not valid yet", path);
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
		return ov_error_set(err, 0, "CA certificate %s has expired", path);
	if (k && X509_check_private_key(x, k) != 1) {
		ERR_clear_error();
		return ov_error_set(err, 0,
				    "CA certificate %s is not the certificate of the CA key", path);
	}
	return 0;
}

struct ov_ca *ov_ca_load(const char *key_path, const char *cert_path, ov_error *err)
{
	cleanup_secret char *kbuf = NULL;
	cleanup_free char *cbuf = NULL;
	cleanup_pkey EVP_PKEY *k = NULL;
	cleanup_x509 X509 *x = NULL;
	struct ov_ca *ca;
	size_t klen, clen;

	if (read_ca_file(key_path, true, &kbuf, &klen, err) < 0 ||
	    read_ca_file(cert_path, false, &cbuf, &clen, err) < 0)
		return NULL;
	k = parse_key(key_path, kbuf, klen, err);
	if (!k)
		return NULL;
	x = parse_cert(cert_path, cbuf, clen, err);
	if (!x || check_cert(cert_path, x, k, err) < 0)
		return NULL;
	ca = calloc(1, sizeof(*ca));
	if (!ca) {
		ov_error_set(err, ENOMEM, "CA");
		return NULL;
	}
	ca->key = take_ptr(k);
	ca->cert = take_ptr(x);
	return ca;
}

void ov_ca_free(struct ov_ca *ca)
{
	if (!ca)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca);
}

void ov_ca_describe(const struct ov_ca *ca, char *buf, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char subject[256], hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned n = 0;

	X509_NAME_oneline(X509_get_subject_name(ca->cert), subject, sizeof(subject));
	if (X509_digest(ca->cert, EVP_sha256(), md, &n) != 1)
		n = 0;
	ov_hex(md, n, hex);
	snprintf(buf, size, "%s (sha256 %s)", subject, hex);
}

/* A random positive serial of SERIAL_LEN octets. */
static int set_serial(X509 *x, ov_error *err)
{
	unsigned char b[SERIAL_LEN];
	BIGNUM *bn;
	int ok;

	if (ov_random(b, sizeof(b), err) < 0)
		return -1;
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40); /* positive, full length, non-zero */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : ssl_error(err, "certificate serial");
}

static int add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int add_key_usage(X509 *x, int bit)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	int ok = ku && ASN1_BIT_STRING_set_bit(ku, bit, 1) &&
		 X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;

	ASN1_BIT_STRING_free(ku);
	return ok ? 0 : -1;
}

static const EVP_MD *sign_md(EVP_PKEY *k)
{
	/* EdDSA signs the message itself; everything else SHA-256. */
	if (EVP_PKEY_is_a(k, "ED25519") || EVP_PKEY_is_a(k, "ED448"))
		return NULL;
	return EVP_sha256();
}

/* The self-signed CA certificate for k. */
static X509 *make_ca_cert(EVP_PKEY *k, const char *cn, ov_error *err)
{
	cleanup_x509 X509 *x = X509_new();
	X509_NAME *name;

	if (!x || X509_set_version(x, X509_VERSION_3) != 1) {
		ssl_error(err, "CA certificate");
		return NULL;
	}
	if (set_serial(x, err) < 0)
		return NULL;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"oci-vtpm",
				       -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -CA_BACKDATE) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), CA_DAYS, 0, NULL) ||
	    X509_set_pubkey(x, k) != 1 ||
	    add_conf_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_conf_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_conf_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
	    add_conf_ext(x, x, NID_authority_key_identifier, "keyid:always") < 0 ||
	    X509_sign(x, k, sign_md(k)) <= 0) {
		ssl_error(err, "making the CA certificate");
		return NULL;
	}
	return take_ptr(x);
}

/* Write buf to path, which must not exist: a temp file in the same directory,
 * fsync, then renameat2(RENAME_NOREPLACE), then fsync of the directory. */
static int write_new_file(const char *path, const void *buf, size_t len, mode_t mode, ov_error *err)
{
	cleanup_free char *dir = strdup(path);
	cleanup_close int dfd = -1, fd = -1;
	char tmp[4200];
	char *slash;

	if (!dir)
		return ov_error_set(err, ENOMEM, "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		dfd = ov_mkdir_p(dir, 0700, err);
		if (dfd < 0)
			return ov_error_wrap(err, "directory of %s", path);
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return ov_error_set(err, ENAMETOOLONG, "%s", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return ov_error_set(err, errno, "creating %s", path);
	if (fchmod(fd, mode) < 0 || ov_write_all(fd, buf, len) < 0 || fsync(fd) < 0 ||
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		int e = errno;
		unlink(tmp);
		return ov_error_set(err, e, "writing %s", path);
	}
	if (dfd >= 0)
		fsync(dfd);
	return 0;
}

/* PEM of a private key or a certificate, in memory (the caller frees and, for
 * a key, wipes). */
static char *to_pem(EVP_PKEY *k, X509 *x, size_t *len, ov_error *err)
{
	cleanup_bio BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long n;

	if (!bio || (k && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1) ||
	    (x && PEM_write_bio_X509(bio, x) != 1)) {
		ssl_error(err, "PEM encoding");
		return NULL;
	}
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	if (!out) {
		ov_error_set(err, ENOMEM, "PEM encoding");
		return NULL;
	}
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	OPENSSL_cleanse(data, (size_t)n);
	*len = (size_t)n;
	return out;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int ov_ca_create(const char *key_path, const char *cert_path, enum ov_ca_alg alg, const char *cn,
		 ov_error *err)
{
	cleanup_pkey EVP_PKEY *k = NULL;
	cleanup_x509 X509 *x = NULL;
	cleanup_secret char *kpem = NULL;
	cleanup_free char *cpem = NULL;
	char host[256], defcn[300];
	size_t klen, clen;

	if (exists(key_path))
		return ov_error_set(err, EEXIST, "CA key %s exists; refusing to overwrite it",
				    key_path);
	if (exists(cert_path))
		return ov_error_set(
		    err, EEXIST, "CA certificate %s exists; refusing to overwrite it", cert_path);
	if (!cn) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(defcn, sizeof(defcn), "oci-vtpm EK CA %.60s", host);
		cn = defcn;
	}
	k = alg == OV_CA_RSA_3072 ? EVP_RSA_gen(3072) : EVP_EC_gen("P-256");
	if (!k)
		return ssl_error(err, "generating the CA key");
	x = make_ca_cert(k, cn, err);
	if (!x)
		return -1;
	kpem = to_pem(k, NULL, &klen, err);
	if (!kpem)
		return -1;
	cpem = to_pem(NULL, x, &clen, err);
	if (!cpem)
		return -1;
	if (write_new_file(key_path, kpem, klen, 0600, err) < 0)
		return ov_error_wrap(err, "CA key");
	if (write_new_file(cert_path, cpem, clen, 0644, err) < 0) {
		unlink(key_path); /* a key without its certificate is of no use */
		return ov_error_wrap(err, "CA certificate");
	}
	return 0;
}

int ov_ca_init(const char *key_path, const char *cert_path, bool *created, ov_error *err)
{
	bool have_key = exists(key_path), have_cert = exists(cert_path);
	struct ov_ca *ca;

	*created = false;
	if (have_key != have_cert)
		return ov_error_set(
		    err, 0,
		    "CA %s %s exists but its %s %s does not: put both in place "
		    "(an operator's CA) or remove it (a new CA is made)",
		    have_key ? "key" : "certificate", have_key ? key_path : cert_path,
		    have_key ? "certificate" : "key", have_key ? cert_path : key_path);
	if (have_key) {
		ca = ov_ca_load(key_path, cert_path, err);
		if (!ca)
			return -1;
		ov_ca_free(ca);
		return 0;
	}
	if (ov_ca_create(key_path, cert_path, OV_CA_EC_P256, NULL, err) < 0)
		return -1;
	*created = true;
	return 0;
}

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
	ok = ok && add_conf_ext(x, ca->cert, NID_authority_key_identifier, "keyid,issuer") == 0;
	/* RSA EK: keyEncipherment (bit 2); ECC EK: keyAgreement (bit 4) */
	ok = ok && add_key_usage(x, EVP_PKEY_is_a(ek, "EC") ? 4 : 2) == 0;
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
		return ssl_error(err, "%s", what);
	if (set_serial(x, err) < 0)
		return ov_error_wrap(err, "%s", what);
	/* Empty subject (TCG): the subjectAltName, critical, names the TPM. */
	if (X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -CERT_BACKDATE) ||
	    ASN1_TIME_set_string_X509(X509_getm_notAfter(x), NO_EXPIRY) != 1 ||
	    X509_set_pubkey(x, ek) != 1 || add_extensions(ca, x, kind, ek, tpm, platform) < 0 ||
	    X509_sign(x, ca->key, sign_md(ca->key)) <= 0)
		return ssl_error(err, "issuing the %s", what);
	n = i2d_X509(x, &out);
	if (n <= 0)
		return ssl_error(err, "encoding the %s", what);
	*der = out;
	*der_len = (size_t)n;
	return 0;
}
