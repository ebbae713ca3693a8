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
#include "ca_internal.h"

/* Set err with the reason OpenSSL gives (its error queue is emptied). */
int ov_ca_ssl_error(ov_error *err, const char *fmt, ...)
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
	if (secret && (st.st_uid != geteuid() || (st.st_mode & 077)))
		return ov_error_set(err, EPERM,
				    "CA key %s must be owned by uid %u (%s) and not accessible by "
				    "group or others (mode 0600)",
				    path, (unsigned)geteuid(), geteuid() ? "us" : "root");
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
		ov_ca_ssl_error(err, "CA key %s: not a PEM private key", path);
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
		ov_ca_ssl_error(err, "CA certificate %s: not a PEM or DER certificate", path);
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
int ov_ca_set_serial(X509 *x, ov_error *err)
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
	return ok ? 0 : ov_ca_ssl_error(err, "certificate serial");
}

int ov_ca_add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
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

int ov_ca_add_key_usage(X509 *x, int bit)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	int ok = ku && ASN1_BIT_STRING_set_bit(ku, bit, 1) &&
		 X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;

	ASN1_BIT_STRING_free(ku);
	return ok ? 0 : -1;
}

const EVP_MD *ov_ca_sign_md(EVP_PKEY *k)
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
		ov_ca_ssl_error(err, "CA certificate");
		return NULL;
	}
	if (ov_ca_set_serial(x, err) < 0)
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
	    ov_ca_add_conf_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    ov_ca_add_conf_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    ov_ca_add_conf_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
	    ov_ca_add_conf_ext(x, x, NID_authority_key_identifier, "keyid:always") < 0 ||
	    X509_sign(x, k, ov_ca_sign_md(k)) <= 0) {
		ov_ca_ssl_error(err, "making the CA certificate");
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
		ov_ca_ssl_error(err, "PEM encoding");
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
		return ov_ca_ssl_error(err, "generating the CA key");
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
