/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/fsutil.h"

void ov_key_wipe(struct ov_key *k)
{
	OPENSSL_cleanse(k->b, sizeof(k->b));
}

int ov_random(void *buf, size_t len, ov_error *err)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ov_error_set(err, errno, "getrandom");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ov_master_key_load(const char *path, struct ov_key *k, ov_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	uint8_t extra;
	struct stat st;
	ssize_t n;

	if (fd < 0) {
		if (errno == ENOENT)
			return ov_error_set(
			    err, errno, "master key %s (create one with `oci-vtpm init`)", path);
		return ov_error_set(err, errno, "master key %s", path);
	}
	if (fstat(fd, &st) < 0)
		return ov_error_set(err, errno, "master key %s", path);
	/* Root's, or a rootless user's own (lib/rootless.h). */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return ov_error_set(err, EPERM,
				    "master key %s must be a regular file owned by uid %u (%s), "
				    "mode 0600",
				    path, (unsigned)geteuid(), geteuid() ? "us" : "root");
	n = read(fd, k->b, sizeof(k->b));
	if (n != (ssize_t)sizeof(k->b) || read(fd, &extra, 1) != 0) {
		ov_key_wipe(k);
		return ov_error_set(err, 0, "master key %s: not %d bytes", path, OV_KEY_LEN);
	}
	return 0;
}

int ov_master_key_write(const char *path, const struct ov_key *k, ov_error *err)
{
	char tmp[4200];
	cleanup_close int fd = -1;

	/* Written whole under a temporary name, then linked into place without
	 * replacing anything: a crash never leaves a short key at path. */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return ov_error_set(err, ENAMETOOLONG, "master key %s", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return ov_error_set(err, errno, "creating master key %s", path);
	if (ov_write_all(fd, k->b, sizeof(k->b)) < 0 || fsync(fd) < 0 ||
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		int e = errno;
		unlink(tmp);
		return ov_error_set(err, e, "writing master key %s", path);
	}
	return 0;
}

int ov_master_key_create(const char *path, struct ov_key *k, ov_error *err)
{
	cleanup_free char *dir = strdup(path);
	char *slash;

	if (!dir)
		return ov_error_set(err, ENOMEM, "master key");
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int dfd = ov_mkdir_p(dir, 0700, err);
		if (dfd < 0)
			return -1;
		close(dfd);
	}
	if (access(path, F_OK) == 0)
		return ov_error_set(err, EEXIST, "master key %s exists; refusing to overwrite it",
				    path);
	if (ov_random(k->b, sizeof(k->b), err) < 0)
		return -1;
	return ov_master_key_write(path, k, err);
}

void ov_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int ov_unhex(const char *in, uint8_t *out, size_t len)
{
	if (strlen(in) != 2 * len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int hi = nibble(in[2 * i]), lo = nibble(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int ov_hkdf(const struct ov_key *ikm, const uint8_t *salt, size_t salt_len, const char *label,
	    const char *name, struct ov_key *out, ov_error *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	char info[512];
	int n = snprintf(info, sizeof(info), "oci-vtpm/v1/%s/%s", label, name ? name : "");
	int ret = -1;

	EVP_KDF_free(kdf);
	if (!ctx)
		return ov_error_set(err, ENOMEM, "HKDF");
	if (n < 0 || (size_t)n >= sizeof(info)) {
		EVP_KDF_CTX_free(ctx);
		return ov_error_set(err, ENAMETOOLONG, "HKDF info");
	}
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm->b, sizeof(ikm->b)),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, (size_t)n),
	    OSSL_PARAM_construct_end(),
	};
	if (EVP_KDF_derive(ctx, out->b, sizeof(out->b), params) == 1)
		ret = 0;
	else
		ov_error_set(err, 0, "HKDF-SHA256 failed");
	EVP_KDF_CTX_free(ctx);
	return ret;
}

void ov_key_id(const struct ov_key *master, char out[OV_KEY_ID_LEN + 1])
{
	struct ov_key id;
	ov_error ignored = {0};
	static const uint8_t salt[] = "oci-vtpm key id";

	if (ov_hkdf(master, salt, sizeof(salt) - 1, "key-id", NULL, &id, &ignored) < 0)
		memset(&id, 0, sizeof(id));
	ov_hex(id.b, OV_KEY_ID_LEN / 2, out);
	ov_key_wipe(&id);
}

static int gcm(bool enc, const struct ov_key *kek, const uint8_t iv[12], const void *aad,
	       size_t aad_len, const uint8_t *in, uint8_t *out, uint8_t tag[16])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len, ok;

	if (!c)
		return -1;
	ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, kek->b, iv, enc) == 1 &&
	     (aad_len == 0 || EVP_CipherUpdate(c, NULL, &len, aad, (int)aad_len) == 1) &&
	     EVP_CipherUpdate(c, out, &len, in, OV_KEY_LEN) == 1 &&
	     (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1) &&
	     EVP_CipherFinal_ex(c, out + len, &len) == 1 &&
	     (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int ov_key_wrap(const struct ov_key *kek, const void *aad, size_t aad_len, const struct ov_key *k,
		uint8_t out[OV_WRAPPED_LEN], ov_error *err)
{
	if (ov_random(out, 12, err) < 0)
		return -1;
	if (gcm(true, kek, out, aad, aad_len, k->b, out + 12, out + 12 + OV_KEY_LEN) < 0)
		return ov_error_set(err, 0, "AES-256-GCM failed");
	return 0;
}

int ov_key_unwrap(const struct ov_key *kek, const void *aad, size_t aad_len,
		  const uint8_t in[OV_WRAPPED_LEN], struct ov_key *k, ov_error *err)
{
	uint8_t tag[16];

	memcpy(tag, in + 12 + OV_KEY_LEN, sizeof(tag));
	if (gcm(false, kek, in, aad, aad_len, in + 12, k->b, tag) < 0) {
		ov_key_wipe(k);
		return ov_error_set(err, EBADMSG, "unwrapping the key");
	}
	return 0;
}

struct ov_mac {
	EVP_MAC_CTX *ctx;
};

struct ov_mac *ov_mac_new(const struct ov_key *k, ov_error *err)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	struct ov_mac *m = calloc(1, sizeof(*m));
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};

	if (m && mac)
		m->ctx = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);
	if (!m || !m->ctx || EVP_MAC_init(m->ctx, k->b, sizeof(k->b), params) != 1) {
		ov_mac_free(m);
		ov_error_set(err, ENOMEM, "HMAC-SHA256");
		return NULL;
	}
	return m;
}

void ov_mac_update(struct ov_mac *m, const void *data, size_t len)
{
	EVP_MAC_update(m->ctx, data, len);
}

int ov_mac_final(struct ov_mac *m, uint8_t out[OV_MAC_LEN], ov_error *err)
{
	size_t len = 0;

	if (EVP_MAC_final(m->ctx, out, &len, OV_MAC_LEN) != 1 || len != OV_MAC_LEN)
		return ov_error_set(err, 0, "HMAC-SHA256 failed");
	return 0;
}

void ov_mac_free(struct ov_mac *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->ctx);
	free(m);
}

int ov_mac_equal(const uint8_t a[OV_MAC_LEN], const uint8_t b[OV_MAC_LEN])
{
	return CRYPTO_memcmp(a, b, OV_MAC_LEN) == 0;
}
