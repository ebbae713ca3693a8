/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"
#include "unit.h"

static void test_hkdf(void)
{
	/* RFC 5869 test case 1 checks the primitive; ours adds a label. */
	struct ov_key ikm, a, b, c;
	uint8_t salt[4] = {1, 2, 3, 4};
	ov_error err = {0};

	memset(ikm.b, 0x0b, sizeof(ikm.b));
	CHECK(ov_hkdf(&ikm, salt, sizeof(salt), "state", "X", &a, &err) == 0);
	CHECK(ov_hkdf(&ikm, salt, sizeof(salt), "state", "X", &b, &err) == 0);
	CHECK(memcmp(a.b, b.b, sizeof(a.b)) == 0);
	/* Bound to the name, the label and the salt. */
	CHECK(ov_hkdf(&ikm, salt, sizeof(salt), "state", "Y", &c, &err) == 0);
	CHECK(memcmp(a.b, c.b, sizeof(a.b)) != 0);
	CHECK(ov_hkdf(&ikm, salt, sizeof(salt), "mac", "X", &c, &err) == 0);
	CHECK(memcmp(a.b, c.b, sizeof(a.b)) != 0);
	salt[0] = 9;
	CHECK(ov_hkdf(&ikm, salt, sizeof(salt), "state", "X", &c, &err) == 0);
	CHECK(memcmp(a.b, c.b, sizeof(a.b)) != 0);

	/* Against OpenSSL's own HKDF with the same info string. */
	uint8_t ref[32];
	size_t outlen = sizeof(ref);
	const char *info = "oci-vtpm/v1/state/X";
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	salt[0] = 1;
	CHECK(EVP_PKEY_derive_init(pctx) == 1 &&
	      EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha256()) == 1 &&
	      EVP_PKEY_CTX_set1_hkdf_salt(pctx, salt, sizeof(salt)) == 1 &&
	      EVP_PKEY_CTX_set1_hkdf_key(pctx, ikm.b, sizeof(ikm.b)) == 1 &&
	      EVP_PKEY_CTX_add1_hkdf_info(pctx, (const unsigned char *)info, (int)strlen(info)) ==
		  1 &&
	      EVP_PKEY_derive(pctx, ref, &outlen) == 1);
	EVP_PKEY_CTX_free(pctx);
	CHECK(memcmp(ref, a.b, sizeof(ref)) == 0);
}

static void test_wrap(void)
{
	struct ov_key kek, other, k, got;
	uint8_t w[OV_WRAPPED_LEN], w2[OV_WRAPPED_LEN];
	ov_error err = {0};

	memset(kek.b, 1, sizeof(kek.b));
	memset(other.b, 2, sizeof(other.b));
	memset(k.b, 0x5a, sizeof(k.b));
	CHECK(ov_key_wrap(&kek, "aad", 3, &k, w, &err) == 0);
	CHECK(ov_key_unwrap(&kek, "aad", 3, w, &got, &err) == 0);
	CHECK(memcmp(got.b, k.b, sizeof(k.b)) == 0);
	/* Fresh IV each time. */
	CHECK(ov_key_wrap(&kek, "aad", 3, &k, w2, &err) == 0 && memcmp(w, w2, sizeof(w)) != 0);
	/* Wrong key, wrong aad, any flipped bit: refused, nothing returned. */
	CHECK(ov_key_unwrap(&other, "aad", 3, w, &got, &err) < 0);
	CHECK(ov_key_unwrap(&kek, "aaX", 3, w, &got, &err) < 0);
	for (size_t i = 0; i < sizeof(w); i += 7) {
		memcpy(w2, w, sizeof(w));
		w2[i] ^= 0x01;
		CHECK(ov_key_unwrap(&kek, "aad", 3, w2, &got, &err) < 0);
	}
	CHECK(memcmp(got.b, k.b, sizeof(k.b)) != 0);
}

static void test_mac_hex(void)
{
	struct ov_key k;
	uint8_t m1[OV_MAC_LEN], m2[OV_MAC_LEN], back[4];
	ov_error err = {0};
	char hex[9];

	memset(k.b, 3, sizeof(k.b));
	struct ov_mac *m = ov_mac_new(&k, &err);
	ov_mac_update(m, "ab", 2);
	ov_mac_update(m, "c", 1);
	CHECK(ov_mac_final(m, m1, &err) == 0);
	ov_mac_free(m);
	m = ov_mac_new(&k, &err);
	ov_mac_update(m, "abc", 3);
	CHECK(ov_mac_final(m, m2, &err) == 0);
	ov_mac_free(m);
	CHECK(ov_mac_equal(m1, m2));
	m2[31] ^= 1;
	CHECK(!ov_mac_equal(m1, m2));

	ov_hex((const uint8_t *)"\x00\x9f\xff\x10", 4, hex);
	CHECK(strcmp(hex, "009fff10") == 0);
	CHECK(ov_unhex(hex, back, 4) == 0 && memcmp(back, "\x00\x9f\xff\x10", 4) == 0);
	CHECK(ov_unhex("009fff1", back, 4) < 0);
	CHECK(ov_unhex("009FFF10", back, 4) < 0);
	CHECK(ov_unhex("zz9fff10", back, 4) < 0);
}

static void test_master_key(void)
{
	char dir[] = "/tmp/ov-unit-crypto.XXXXXX", path[256];
	struct ov_key k, again;
	ov_error err = {0};
	char id1[OV_KEY_ID_LEN + 1], id2[OV_KEY_ID_LEN + 1];
	struct stat st;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sub/master.key", dir);
	CHECK(ov_master_key_create(path, &k, &err) == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == OV_KEY_LEN);
	snprintf(path, sizeof(path), "%s/sub", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
	snprintf(path, sizeof(path), "%s/sub/master.key", dir);
	/* Never overwritten. */
	CHECK(ov_master_key_create(path, &again, &err) < 0);
	CHECK_ERR(&err, "refusing to overwrite");
	CHECK(ov_master_key_load(path, &again, &err) == 0 && memcmp(k.b, again.b, OV_KEY_LEN) == 0);
	ov_key_id(&k, id1);
	ov_key_id(&again, id2);
	CHECK(strlen(id1) == OV_KEY_ID_LEN && strcmp(id1, id2) == 0);
	/* Readable by others: refused. Wrong size: refused. */
	chmod(path, 0644);
	CHECK(ov_master_key_load(path, &again, &err) < 0);
	CHECK_ERR(&err, "mode 0600");
	chmod(path, 0600);
	CHECK(truncate(path, 31) == 0);
	CHECK(ov_master_key_load(path, &again, &err) < 0);
	CHECK_ERR(&err, "not 32 bytes");
	unlink(path);
	CHECK(ov_master_key_load(path, &again, &err) < 0);
	CHECK_ERR(&err, "oci-vtpm init");
	ov_key_wipe(&k);
	CHECK(k.b[0] == 0 && k.b[31] == 0);
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
}

int main(void)
{
	test_hkdf();
	test_wrap();
	test_mac_hex();
	test_master_key();
	return unit_done("crypto");
}
