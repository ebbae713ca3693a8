/* SPDX-License-Identifier: Apache-2.0 */
/* The host CA: creation, refusing bad files, and what the certificates say. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/ca.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/fsutil.h"
#include "unit.h"

static char dir[] = "/tmp/ov-unit-ca.XXXXXX";

static const char *path(const char *name)
{
	static char buf[8][256];
	static int next;
	char *p = buf[next++ % 8];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static mode_t mode_of(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static X509 *read_cert(const char *p)
{
	FILE *f = fopen(p, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	return x;
}

static void write_pem_key(const char *p, EVP_PKEY *k, const EVP_CIPHER *enc, mode_t mode)
{
	FILE *f = fopen(p, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fchmod(fileno(f), mode);
	CHECK(PEM_write_PrivateKey(f, k, enc, enc ? (unsigned char *)"secret" : NULL, enc ? 6 : 0,
				   NULL, NULL) == 1);
	fclose(f);
}

static void write_pem_cert(const char *p, X509 *x)
{
	FILE *f = fopen(p, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(PEM_write_X509(f, x) == 1);
	fclose(f);
}

/* A self-signed certificate for k with the given extensions (NULL: none),
 * valid from `from` to `to` days from now. */
static X509 *self_signed(EVP_PKEY *k, const char *bc, const char *ku, long from, long to)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_NAME *n = X509_get_subject_name(x);

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"test", -1, -1,
				   0);
	X509_set_issuer_name(x, n);
	X509_time_adj_ex(X509_getm_notBefore(x), (int)from, 0, NULL);
	X509_time_adj_ex(X509_getm_notAfter(x), (int)to, 0, NULL);
	X509_set_pubkey(x, k);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (bc) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, bc);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	if (ku) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, ku);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	CHECK(X509_sign(x, k, EVP_sha256()) > 0);
	return x;
}

static void test_create(void)
{
	ov_error err = {0};
	struct ov_ca *ca;
	X509 *x;
	EVP_PKEY *pub;
	char desc[512];

	CHECK(ov_ca_create(path("ca/ca.key"), path("ca/ca.pem"), OV_CA_EC_P256, NULL, &err) == 0);
	CHECK(mode_of(path("ca")) == 0700);
	CHECK(mode_of(path("ca/ca.key")) == 0600);
	CHECK(mode_of(path("ca/ca.pem")) == 0644);

	ca = ov_ca_load(path("ca/ca.key"), path("ca/ca.pem"), &err);
	CHECK(ca != NULL);
	if (ca) {
		ov_ca_describe(ca, desc, sizeof(desc));
		CHECK(strstr(desc, "CN=oci-vtpm EK CA") != NULL);
		CHECK(strstr(desc, "sha256 ") != NULL);
	}
	ov_ca_free(ca);

	/* The certificate: a self-signed CA, EC P-256, that may sign certificates. */
	x = read_cert(path("ca/ca.pem"));
	CHECK(x != NULL);
	if (x) {
		int crit = -1;
		BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);

		CHECK(bc && bc->ca && crit == 1);
		BASIC_CONSTRAINTS_free(bc);
		ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
		CHECK(ku && crit == 1 && ASN1_BIT_STRING_get_bit(ku, 5) &&
		      ASN1_BIT_STRING_get_bit(ku, 6) && !ASN1_BIT_STRING_get_bit(ku, 0));
		ASN1_BIT_STRING_free(ku);
		CHECK(X509_get0_subject_key_id(x) != NULL);
		CHECK(X509_get_version(x) == X509_VERSION_3);
		CHECK(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0);
		pub = X509_get0_pubkey(x);
		CHECK(pub && EVP_PKEY_is_a(pub, "EC") && EVP_PKEY_get_bits(pub) == 256);
		CHECK(X509_verify(x, pub) == 1);
		CHECK(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);
		X509_free(x);
	}

	/* Never overwritten: both files, or either. */
	CHECK(ov_ca_create(path("ca/ca.key"), path("ca/ca.pem"), OV_CA_EC_P256, NULL, &err) < 0);
	CHECK(err.code == EEXIST);
	CHECK_ERR(&err, "refusing to overwrite");
	CHECK(ov_ca_create(path("ca/other.key"), path("ca/ca.pem"), OV_CA_EC_P256, NULL, &err) < 0);
	CHECK(access(path("ca/other.key"), F_OK) < 0);

	/* RSA 3072, with a name. */
	CHECK(ov_ca_create(path("rsa/ca.key"), path("rsa/ca.pem"), OV_CA_RSA_3072, "rsa test CA",
			   &err) == 0);
	x = read_cert(path("rsa/ca.pem"));
	CHECK(x && EVP_PKEY_is_a(X509_get0_pubkey(x), "RSA") &&
	      EVP_PKEY_get_bits(X509_get0_pubkey(x)) == 3072);
	if (x) {
		char cn[64] = "";
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
		CHECK(strcmp(cn, "rsa test CA") == 0);
	}
	X509_free(x);
	ca = ov_ca_load(path("rsa/ca.key"), path("rsa/ca.pem"), &err);
	CHECK(ca != NULL);
	ov_ca_free(ca);
}

static void test_init(void)
{
	ov_error err = {0};
	bool created = false;
	cleanup_free char *before = NULL, *after = NULL;

	/* Neither: made. */
	CHECK(ov_ca_init(path("init/ca.key"), path("init/ca.pem"), &created, &err) == 0);
	CHECK(created);
	CHECK(ov_read_file_at(AT_FDCWD, path("init/ca.pem"), 65536, &before, NULL, &err) == 0);
	/* Both: used as they are. */
	CHECK(ov_ca_init(path("init/ca.key"), path("init/ca.pem"), &created, &err) == 0);
	CHECK(!created);
	CHECK(ov_read_file_at(AT_FDCWD, path("init/ca.pem"), 65536, &after, NULL, &err) == 0);
	CHECK(before && after && strcmp(before, after) == 0);
	/* An operator's CA (RSA, another name) is used as it is. */
	CHECK(ov_ca_init(path("rsa/ca.key"), path("rsa/ca.pem"), &created, &err) == 0);
	CHECK(!created);
	/* Only one of the two: an error naming the other. */
	CHECK(ov_ca_init(path("init/ca.key"), path("init/none.pem"), &created, &err) < 0);
	CHECK_ERR(&err, "none.pem does not");
	CHECK(ov_ca_init(path("init/none.key"), path("init/ca.pem"), &created, &err) < 0);
	CHECK_ERR(&err, "none.key does not");
	CHECK(access(path("init/none.key"), F_OK) < 0 && access(path("init/none.pem"), F_OK) < 0);
	/* Both, but bad: refused. */
	CHECK(ov_ca_init(path("init/ca.key"), path("rsa/ca.pem"), &created, &err) < 0);
	CHECK_ERR(&err, "is not the certificate of the CA key");
}

static void expect_refused(const char *key, const char *cert, const char *needle)
{
	ov_error err = {0};
	struct ov_ca *ca = ov_ca_load(key, cert, &err);

	CHECK(ca == NULL);
	if (ca) {
		fprintf(stderr, "accepted %s %s\n", key, cert);
		ov_ca_free(ca);
		return;
	}
	CHECK_ERR(&err, needle);
}

static void test_refuse(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x;

	mkdir(path("bad"), 0700);
	/* The key: access, type, format. */
	write_pem_key(path("bad/open.key"), k, NULL, 0640);
	x = self_signed(k, "critical,CA:TRUE", "critical,keyCertSign", 0, 365);
	write_pem_cert(path("bad/good.pem"), x);
	X509_free(x);
	expect_refused(path("bad/open.key"), path("bad/good.pem"), "mode 0600");
	chmod(path("bad/open.key"), 0600);
	{
		ov_error err = {0};
		struct ov_ca *ca = ov_ca_load(path("bad/open.key"), path("bad/good.pem"), &err);
		CHECK(ca != NULL); /* the control: with 0600 it is fine */
		ov_ca_free(ca);
	}
	CHECK(symlink(path("bad/open.key"), path("bad/link.key")) == 0);
	expect_refused(path("bad/link.key"), path("bad/good.pem"), "symlink");
	CHECK(symlink(path("bad/good.pem"), path("bad/link.pem")) == 0);
	expect_refused(path("bad/open.key"), path("bad/link.pem"), "symlink");
	mkdir(path("bad/dir.key"), 0700);
	expect_refused(path("bad/dir.key"), path("bad/good.pem"), "not a regular file");
	expect_refused(path("bad/missing.key"), path("bad/good.pem"), "No such file");
	expect_refused(path("bad/open.key"), path("bad/missing.pem"), "No such file");
	int fd = open(path("bad/junk.key"), O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && write(fd, "not a key\n", 10) == 10);
	close(fd);
	expect_refused(path("bad/junk.key"), path("bad/good.pem"), "not a PEM private key");
	write_pem_key(path("bad/enc.key"), k, EVP_aes_256_cbc(), 0600);
	expect_refused(path("bad/enc.key"), path("bad/good.pem"), "is encrypted");
	fd = open(path("bad/junk.pem"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(fd >= 0 && write(fd, "junk\n", 5) == 5);
	close(fd);
	expect_refused(path("bad/open.key"), path("bad/junk.pem"), "not a PEM or DER certificate");

	/* The certificate: a CA, allowed to sign certificates, valid now. */
	x = self_signed(k, NULL, NULL, 0, 365);
	write_pem_cert(path("bad/noca.pem"), x);
	X509_free(x);
	expect_refused(path("bad/open.key"), path("bad/noca.pem"), "not a CA certificate");
	x = self_signed(k, "critical,CA:FALSE", NULL, 0, 365);
	write_pem_cert(path("bad/leaf.pem"), x);
	X509_free(x);
	expect_refused(path("bad/open.key"), path("bad/leaf.pem"), "not a CA certificate");
	x = self_signed(k, "critical,CA:TRUE", "critical,digitalSignature", 0, 365);
	write_pem_cert(path("bad/nosign.pem"), x);
	X509_free(x);
	expect_refused(path("bad/open.key"), path("bad/nosign.pem"), "keyCertSign");
	x = self_signed(k, "critical,CA:TRUE", NULL, -30, -1);
	write_pem_cert(path("bad/expired.pem"), x);
	X509_free(x);
	expect_refused(path("bad/open.key"), path("bad/expired.pem"), "has expired");
	x = self_signed(k, "critical,CA:TRUE", NULL, 10, 30);
	write_pem_cert(path("bad/future.pem"), x);
	X509_free(x);
	expect_refused(path("bad/open.key"), path("bad/future.pem"), "not valid yet");
	/* Another key's certificate. */
	expect_refused(path("bad/open.key"), path("ca/ca.pem"),
		       "not the certificate of the CA key");
	/* DER is accepted for the certificate. */
	x = self_signed(k, "critical,CA:TRUE", NULL, 0, 365);
	{
		FILE *f = fopen(path("bad/good.der"), "w");
		CHECK(f && i2d_X509_fp(f, x) == 1);
		if (f)
			fclose(f);
		ov_error err = {0};
		struct ov_ca *ca = ov_ca_load(path("bad/open.key"), path("bad/good.der"), &err);
		CHECK(ca != NULL);
		ov_ca_free(ca);
	}
	X509_free(x);
	EVP_PKEY_free(k);
}

/* Verify leaf against the CA certificate at ca_pem, strictly (RFC 5280 checks). */
static int verify(X509 *leaf, const char *ca_pem)
{
	X509 *cax = read_cert(ca_pem);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	X509_STORE_add_cert(store, cax);
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(cax);
	ERR_clear_error();
	return ok;
}

/* The value of the single attribute oid in the directoryName of x's SAN. */
static void san_value(X509 *x, const char *oid, char *out, size_t size)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);

	out[0] = '\0';
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		X509_NAME *dn;
		int at;

		if (g->type != GEN_DIRNAME)
			continue;
		dn = g->d.directoryName;
		at = X509_NAME_get_index_by_OBJ(dn, o, -1);
		if (at >= 0) {
			ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(dn, at));
			if (ASN1_STRING_type(s) == V_ASN1_UTF8STRING)
				snprintf(out, size, "%.*s", ASN1_STRING_length(s),
					 (const char *)ASN1_STRING_get0_data(s));
		}
	}
	ASN1_OBJECT_free(o);
	GENERAL_NAMES_free(gens);
}

static bool has_eku(X509 *x, const char *oid)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
	bool found = false;

	for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++)
		found |= OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), o) == 0;
	ASN1_OBJECT_free(o);
	EXTENDED_KEY_USAGE_free(eku);
	return found;
}

static X509 *issue(struct ov_ca *ca, enum ov_cert_kind kind, EVP_PKEY *ek,
		   const struct ov_tpm_info *tpm, const struct ov_platform_info *p)
{
	ov_error err = {0};
	unsigned char *der = NULL;
	const unsigned char *q;
	size_t len = 0;
	X509 *x;

	CHECK(ov_ca_issue(ca, kind, ek, tpm, p, &der, &len, &err) == 0);
	if (!der) {
		fprintf(stderr, "issue: %s\n", err.msg);
		return NULL;
	}
	q = der;
	x = d2i_X509(NULL, &q, (long)len);
	CHECK(x != NULL && q == der + len);
	OPENSSL_free(der);
	return x;
}

static void test_issue(void)
{
	static const unsigned char tpm_spec[] = {
	    0x30, 0x19, 0x30, 0x17, 0x06, 0x05, 0x67, 0x81, 0x05, 0x02, 0x10, 0x31, 0x0e, 0x30,
	    0x0c, 0x0c, 0x03, 0x32, 0x2e, 0x30, 0x02, 0x01, 0x00, 0x02, 0x02, 0x00, 0xa4};
	const struct ov_tpm_info tpm = {.manufacturer = 0x49424D00,
					.model = "SW   TPM",
					.firmware1 = 0x20191023,
					.family = "2.0",
					.level = 0,
					.revision = 164};
	const struct ov_platform_info plat = {"oci-vtpm", "container", "1.0"};
	ov_error err = {0};
	struct ov_ca *ca = ov_ca_load(path("ca/ca.key"), path("ca/ca.pem"), &err);
	struct ov_ca *rsa_ca = ov_ca_load(path("rsa/ca.key"), path("rsa/ca.pem"), &err);
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	X509 *x, *y, *cax = read_cert(path("ca/ca.pem"));
	char v[64];
	int crit;

	CHECK(ca && rsa_ca && rsa && ec && cax);
	if (!ca || !rsa_ca || !rsa || !ec || !cax)
		return;

	/* RSA EK. */
	x = issue(ca, OV_CERT_EK, rsa, &tpm, NULL);
	CHECK(x != NULL);
	if (x) {
		CHECK(verify(x, path("ca/ca.pem")) == 1);
		CHECK(verify(x, path("rsa/ca.pem")) != 1); /* another CA: no */
		CHECK(X509_get_version(x) == X509_VERSION_3);
		CHECK(X509_NAME_entry_count(X509_get_subject_name(x)) == 0);
		CHECK(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(cax)) == 0);
		CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), rsa) == 1);
		san_value(x, "2.23.133.2.1", v, sizeof(v));
		CHECK(strcmp(v, "id:49424D00") == 0);
		san_value(x, "2.23.133.2.2", v, sizeof(v));
		CHECK(strcmp(v, "SW   TPM") == 0);
		san_value(x, "2.23.133.2.3", v, sizeof(v));
		CHECK(strcmp(v, "id:20191023") == 0);
		CHECK(X509_EXTENSION_get_critical(
			  X509_get_ext(x, X509_get_ext_by_NID(x, NID_subject_alt_name, -1))) == 1);
		BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
		CHECK(bc && !bc->ca && crit == 1);
		BASIC_CONSTRAINTS_free(bc);
		ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
		CHECK(ku && crit == 1 && ASN1_BIT_STRING_get_bit(ku, 2) &&
		      !ASN1_BIT_STRING_get_bit(ku, 4) && !ASN1_BIT_STRING_get_bit(ku, 0));
		ASN1_BIT_STRING_free(ku);
		CHECK(has_eku(x, "2.23.133.8.1"));
		/* The TPM specification, exactly as swtpm_cert writes it. */
		X509_EXTENSION *sda =
		    X509_get_ext(x, X509_get_ext_by_NID(x, NID_subject_directory_attributes, -1));
		ASN1_OCTET_STRING *os = sda ? X509_EXTENSION_get_data(sda) : NULL;
		CHECK(os && ASN1_STRING_length(os) == (int)sizeof(tpm_spec) &&
		      memcmp(ASN1_STRING_get0_data(os), tpm_spec, sizeof(tpm_spec)) == 0);
		/* The authority key identifier is the CA's subject key identifier. */
		const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
		CHECK(akid && ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(cax)) == 0);
		/* No expiry, GeneralizedTime. */
		const ASN1_TIME *na = X509_get0_notAfter(x);
		CHECK(ASN1_STRING_type(na) == V_ASN1_GENERALIZEDTIME &&
		      strcmp((const char *)ASN1_STRING_get0_data(na), "99991231235959Z") == 0);
		/* A 16-octet positive serial. */
		BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		CHECK(sn && !BN_is_negative(sn) && BN_num_bytes(sn) == 16);
		BN_free(sn);
	}

	/* ECC EK: keyAgreement; another serial. */
	y = issue(ca, OV_CERT_EK, ec, &tpm, NULL);
	CHECK(y != NULL);
	if (x && y) {
		CHECK(verify(y, path("ca/ca.pem")) == 1);
		ASN1_BIT_STRING *ku = X509_get_ext_d2i(y, NID_key_usage, &crit, NULL);
		CHECK(ku && ASN1_BIT_STRING_get_bit(ku, 4) && !ASN1_BIT_STRING_get_bit(ku, 2));
		ASN1_BIT_STRING_free(ku);
		CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(x), X509_get0_serialNumber(y)) != 0);
	}
	X509_free(y);
	X509_free(x);

	/* Platform certificate. */
	x = issue(ca, OV_CERT_PLATFORM, rsa, NULL, &plat);
	CHECK(x != NULL);
	if (x) {
		CHECK(verify(x, path("ca/ca.pem")) == 1);
		san_value(x, "2.23.133.5.1.1", v, sizeof(v));
		CHECK(strcmp(v, "oci-vtpm") == 0);
		san_value(x, "2.23.133.5.1.4", v, sizeof(v));
		CHECK(strcmp(v, "container") == 0);
		san_value(x, "2.23.133.5.1.5", v, sizeof(v));
		CHECK(strcmp(v, "1.0") == 0);
		CHECK(has_eku(x, "2.23.133.8.2") && !has_eku(x, "2.23.133.8.1"));
		CHECK(X509_get_ext_by_NID(x, NID_subject_directory_attributes, -1) < 0);
	}
	X509_free(x);

	/* An RSA CA signs too. */
	x = issue(rsa_ca, OV_CERT_EK, ec, &tpm, NULL);
	CHECK(x && verify(x, path("rsa/ca.pem")) == 1 && verify(x, path("ca/ca.pem")) != 1);
	X509_free(x);

	/* Nothing to certify. */
	unsigned char *der = NULL;
	size_t len;
	CHECK(ov_ca_issue(ca, OV_CERT_EK, rsa, NULL, NULL, &der, &len, &err) < 0 && !der);

	X509_free(cax);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	ov_ca_free(ca);
	ov_ca_free(rsa_ca);
}

/* The settings that name the CA. */
static void test_settings(void)
{
	const char *json = "{\"ca_key\": \"/k/ca.key\", \"ca_cert\": \"/k/ca.pem\"}";
	struct ov_settings st;
	ov_error err = {0};
	cleanup_free char *file = NULL;
	size_t len = 0;

	CHECK(ov_settings_parse("{}", 2, &st, &err) == 0);
	CHECK(st.ca_key && strcmp(st.ca_key, "/etc/oci-vtpm/ca/ca.key") == 0);
	CHECK(st.ca_cert && strcmp(st.ca_cert, "/etc/oci-vtpm/ca/ca.pem") == 0);
	ov_settings_free(&st);
	CHECK(ov_settings_parse(json, strlen(json), &st, &err) == 0);
	CHECK(st.ca_key && strcmp(st.ca_key, "/k/ca.key") == 0);
	CHECK(st.ca_cert && strcmp(st.ca_cert, "/k/ca.pem") == 0);
	ov_settings_free(&st);
	const char *rel = "{\"ca_key\": \"ca.key\"}", *num = "{\"ca_cert\": 1}";
	CHECK(ov_settings_parse(rel, strlen(rel), &st, &err) < 0);
	CHECK_ERR(&err, "not an absolute path");
	CHECK(ov_settings_parse(num, strlen(num), &st, &err) < 0);
	CHECK_ERR(&err, "\"ca_cert\" must be a string");
	/* The shipped defaults file says the same. */
	CHECK(ov_read_file_at(AT_FDCWD, "config/oci-vtpm.json", 65536, &file, &len, &err) == 0 &&
	      ov_settings_parse(file, len, &st, &err) == 0);
	CHECK(st.ca_key && strcmp(st.ca_key, "/etc/oci-vtpm/ca/ca.key") == 0);
	ov_settings_free(&st);
}

int main(void)
{
	ov_error err = {0};

	CHECK(mkdtemp(dir) != NULL);
	test_settings();
	test_create();
	test_init();
	test_refuse();
	test_issue();
	ov_remove_tree_at(AT_FDCWD, dir, &err);
	return unit_done("ca");
}
