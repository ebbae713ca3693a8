/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manufacturing against the real swtpm: a new state with certified EKs,
 * read back by tpm2-tools from a swtpm started on that state with the same
 * key, the certificates verified against the CA; the state encrypted; every
 * refusal leaves an empty state directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/ca.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/manufacture.h"
#include "oci-vtpm/swtpm.h"
#include "swtpm-fixture.h"
#include "unit.h"

static struct ov_settings s;

/* Entries in dir (besides . and ..), and whether one starts with prefix. */
static int count_entries(const char *d, const char *prefix, bool *found)
{
	DIR *dd = opendir(d);
	struct dirent *de;
	int n = 0;

	if (found)
		*found = false;
	if (!dd)
		return -1;
	while ((de = readdir(dd))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (found && prefix && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			*found = true;
	}
	closedir(dd);
	return n;
}

static bool file_contains(const char *p, const void *needle, size_t len)
{
	cleanup_free char *buf = NULL;
	size_t n = 0;
	ov_error err;

	if (ov_read_file_at(AT_FDCWD, p, 1u << 20, &buf, &n, &err) < 0 || n < len)
		return false;
	return memmem(buf, n, needle, len) != NULL;
}

static X509 *load_der(const char *p)
{
	FILE *f = fopen(p, "r");
	X509 *x = f ? d2i_X509_fp(f, NULL) : NULL;

	if (f)
		fclose(f);
	return x;
}

static EVP_PKEY *load_pub(const char *p)
{
	FILE *f = fopen(p, "r");
	EVP_PKEY *k = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	return k;
}

static int verify(X509 *leaf)
{
	FILE *f = fopen(s.ca_cert, "r");
	X509 *ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	if (f)
		fclose(f);
	X509_STORE_add_cert(store, ca);
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(ca);
	ERR_clear_error();
	return ok;
}

/* ------------------------------------------------------------- the tests */

static void test_certified(void)
{
	const char *st = new_state("st-certified");
	struct ov_key key;
	ov_error err = {0};
	struct tpm t = {0};
	struct stat sb;
	bool left;
	double t0;

	CHECK(ov_random(key.b, sizeof(key.b), &err) == 0);
	t0 = ov_util_mono_ms();
	CHECK(ov_manufacture(&s, OV_TPM_2_0, st, &key, true, tss_uid, tss_gid, &err) == 0);
	printf("# manufacture with EK certificates: %.1f ms\n", ov_util_mono_ms() - t0);
	if (err.msg[0])
		fprintf(stderr, "manufacture: %s\n", err.msg);
	/* The state, owned by the user swtpm runs as; nothing else left. */
	char permall[300];
	snprintf(permall, sizeof(permall), "%s/tpm2-00.permall", st);
	CHECK(stat(permall, &sb) == 0 && sb.st_uid == tss_uid && sb.st_gid == tss_gid &&
	      (sb.st_mode & 077) == 0);
	CHECK(stat(st, &sb) == 0 && sb.st_uid == tss_uid);
	count_entries(dir, ".manufacture-", &left);
	CHECK(!left);
	{
		cleanup_close int sfd = open(st, O_RDONLY | O_DIRECTORY);
		CHECK(!ov_tpm_state_fresh(sfd));
	}

	/* A swtpm on it with the same key: tpm2-tools find the certificates. */
	CHECK(start_tpm(&t, st, &key, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "start: %s\n", err.msg);
	const char *rsa_der = path("ek-rsa.der"), *ecc_der = path("ek-ecc.der"),
		   *plat_der = path("platform.der"), *rsa_pub = path("ek-rsa.pem"),
		   *ecc_pub = path("ek-ecc.pem"), *nvpub = path("nvpublic.txt");
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_getekcertificate", "-o", rsa_der, "-o",
					 ecc_der, NULL}) == 0);
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_nvread", "0x01c08000", "-o", plat_der,
					 NULL}) == 0);
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_createek", "-c", path("ek.ctx"), "-G",
					 "rsa", "-u", rsa_pub, "-f", "pem", NULL}) == 0);
	CHECK(tool(&t, NULL, (const char *const[]){"/usr/bin/tpm2_flushcontext", "-t", NULL}) == 0);
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_createek", "-c", path("ek.ctx"), "-G",
					 "ecc", "-u", ecc_pub, "-f", "pem", NULL}) == 0);
	CHECK(tool(&t, NULL, (const char *const[]){"/usr/bin/tpm2_flushcontext", "-t", NULL}) == 0);
	/* The indices: TCG attributes, written and locked. */
	CHECK(tool(&t, nvpub,
		   (const char *const[]){"/usr/bin/tpm2_nvreadpublic", "0x01c00002", NULL}) == 0);
	CHECK(file_contains(nvpub, "0x62072801", 10));
	/* Locked: not even the platform may write it again. */
	int fd = open(path("junk"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "junk", 4) == 4);
	close(fd);
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_nvwrite", "0x01c00002", "-C", "p", "-i",
					 path("junk"), NULL}) != 0);
	stop_tpm(&t);

	X509 *rsa = load_der(rsa_der), *ecc = load_der(ecc_der), *plat = load_der(plat_der);
	EVP_PKEY *ekr = load_pub(rsa_pub), *eke = load_pub(ecc_pub);
	CHECK(rsa && ecc && plat && ekr && eke);
	if (rsa && ecc && plat && ekr && eke) {
		/* Chained to the CA; the keys are the TPM's own EKs (the TCG
		 * default templates, as tpm2_createek makes them). */
		CHECK(verify(rsa) == 1 && verify(ecc) == 1 && verify(plat) == 1);
		CHECK(EVP_PKEY_eq(X509_get0_pubkey(rsa), ekr) == 1);
		CHECK(EVP_PKEY_eq(X509_get0_pubkey(ecc), eke) == 1);
		CHECK(EVP_PKEY_eq(X509_get0_pubkey(plat), ekr) == 1);
		CHECK(EVP_PKEY_is_a(eke, "EC") && EVP_PKEY_get_bits(eke) == 256);
		CHECK(EVP_PKEY_is_a(ekr, "RSA") && EVP_PKEY_get_bits(ekr) == 2048);

		/* At rest: neither a certificate nor its strings in the state. */
		unsigned char *der = NULL;
		int n = i2d_X509(rsa, &der);
		CHECK(n > 64 && !file_contains(permall, der + n - 64, 64));
		OPENSSL_free(der);
		CHECK(!file_contains(permall, "oci-vtpm", 8));
		CHECK(!file_contains(permall, "id:49424D00", 11));
	}
	X509_free(rsa);
	X509_free(ecc);
	X509_free(plat);
	EVP_PKEY_free(ekr);
	EVP_PKEY_free(eke);

	/* Another key does not open it. */
	struct ov_key other;
	ov_error serr = {0};
	CHECK(ov_random(other.b, sizeof(other.b), &err) == 0);
	if (start_tpm(&t, st, &other, &serr) == 0) {
		CHECK(!"swtpm started on the state with another key");
		stop_tpm(&t);
	} else {
		CHECK_ERR(&serr, "Could not initialize libtpms");
	}

	/* Never manufactured twice. */
	CHECK(ov_manufacture(&s, OV_TPM_2_0, st, &key, true, tss_uid, tss_gid, &err) < 0);
	CHECK(err.code == EEXIST);
	CHECK_ERR(&err, "already holds a TPM state");
}

static void test_control_plaintext(void)
{
	const char *st = new_state("st-plain");
	ov_error err = {0};
	char permall[300];

	/* The control for the at-rest checks: without a key, the platform
	 * certificate's strings are in the state file. */
	CHECK(ov_manufacture(&s, OV_TPM_2_0, st, NULL, true, tss_uid, tss_gid, &err) == 0);
	snprintf(permall, sizeof(permall), "%s/tpm2-00.permall", st);
	CHECK(file_contains(permall, "oci-vtpm", 8));
}

static void test_no_cert(void)
{
	const char *st = new_state("st-nocert");
	struct ov_key key;
	ov_error err = {0};
	struct tpm t = {0};
	double t0;

	CHECK(ov_random(key.b, sizeof(key.b), &err) == 0);
	t0 = ov_util_mono_ms();
	CHECK(ov_manufacture(&s, OV_TPM_2_0, st, &key, false, tss_uid, tss_gid, &err) == 0);
	printf("# manufacture without certificates: %.1f ms\n", ov_util_mono_ms() - t0);
	CHECK(start_tpm(&t, st, &key, &err) == 0);
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_nvreadpublic", "0x01c00002", NULL}) != 0);
	CHECK(tool(&t, NULL, (const char *const[]){"/usr/bin/tpm2_getrandom", "8", NULL}) == 0);
	stop_tpm(&t);

	/* TPM 1.2: a state, but no certificates. */
	st = new_state("st-12");
	CHECK(ov_manufacture(&s, OV_TPM_1_2, st, &key, false, tss_uid, tss_gid, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "1.2: %s\n", err.msg);
	CHECK(count_entries(st, NULL, NULL) > 0);
	st = new_state("st-12-cert");
	CHECK(ov_manufacture(&s, OV_TPM_1_2, st, &key, true, tss_uid, tss_gid, &err) < 0);
	CHECK(err.code == ENOTSUP);
	CHECK(count_entries(st, NULL, NULL) == 0);
}

static void test_failures(void)
{
	struct ov_settings bad = s;
	struct ov_key key = {{0}};
	ov_error err = {0};
	const char *st;
	bool left;

	/* No CA: nothing is started, nothing made. */
	st = new_state("st-noca");
	bad.ca_key = (char *)path("none/ca.key");
	CHECK(ov_manufacture(&bad, OV_TPM_2_0, st, &key, true, 0, 0, &err) < 0);
	CHECK_ERR(&err, "oci-vtpm init");
	CHECK(count_entries(st, NULL, NULL) == 0);

	/* swtpm missing. */
	bad = s;
	bad.swtpm = (char *)"/nonexistent/swtpm";
	st = new_state("st-noswtpm");
	CHECK(ov_manufacture(&bad, OV_TPM_2_0, st, &key, true, 0, 0, &err) < 0);
	CHECK_ERR(&err, "/nonexistent/swtpm");
	CHECK(count_entries(st, NULL, NULL) == 0);

	/* swtpm that dies at once (not a TPM at all). */
	bad.swtpm = (char *)"/bin/false";
	st = new_state("st-false");
	CHECK(ov_manufacture(&bad, OV_TPM_2_0, st, &key, true, 0, 0, &err) < 0);
	CHECK_ERR(&err, "exited with status 1");
	CHECK(count_entries(st, NULL, NULL) == 0);

	/* No state directory. */
	CHECK(ov_manufacture(&s, OV_TPM_2_0, path("missing"), &key, true, 0, 0, &err) < 0);
	CHECK(err.code == ENOENT);

	count_entries(dir, ".manufacture-", &left);
	CHECK(!left);
}

int main(void)
{
	ov_error err = {0};

	fixture_setup("/tmp/ov-unit-mfg.XXXXXX");
	ov_settings_defaults(&s);
	s.swtpm = (char *)"/usr/bin/swtpm";
	s.ca_key = strdup(path("ca/ca.key"));
	s.ca_cert = strdup(path("ca/ca.pem"));
	s.start_timeout_ms = 10000;
	CHECK(ov_ca_create(s.ca_key, s.ca_cert, OV_CA_EC_P256, "unit test CA", &err) == 0);

	test_certified();
	test_control_plaintext();
	test_no_cert();
	test_failures();

	fixture_teardown();
	free(s.ca_key);
	free(s.ca_cert);
	return unit_done("manufacture");
}
