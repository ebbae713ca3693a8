/* SPDX-License-Identifier: Apache-2.0 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "oci-vtpm/swtpm_blob.h"

#define HDR_LEN	    10 /* version, min_version, hdrsize, flags, totlen */
#define TLV_HDR	    6  /* tag (be16), length (be32) */
#define HDR_VERSION 2
#define F_ENCRYPTED 0x01
#define F_MIG_ENC   0x02
#define F_MIG_DATA  0x04
#define F_KEY256    0x08
#define T_DATA	    1
#define T_ENC_DATA  2
#define T_HMAC	    3
#define T_MIG_DATA  4
#define T_IVEC	    6
#define BLOCK	    OV_KEY_LEN /* swtpm pads, and sizes its IV, to the key length */
#define STATE_MAX   (4u << 20)

void ov_swtpm_blob_free(uint8_t *p, size_t len)
{
	if (p)
		OPENSSL_cleanse(p, len);
	free(p);
}

static uint8_t *put_hdr(uint8_t *p, uint16_t flags, size_t total)
{
	uint16_t hs = htobe16(HDR_LEN), fl = htobe16(flags);
	uint32_t tl = htobe32((uint32_t)total);

	p[0] = HDR_VERSION;
	p[1] = 1;
	memcpy(p + 2, &hs, 2);
	memcpy(p + 4, &fl, 2);
	memcpy(p + 6, &tl, 4);
	return p + HDR_LEN;
}

static uint8_t *put_tlv(uint8_t *p, uint16_t tag, const void *data, size_t len)
{
	uint16_t t = htobe16(tag);
	uint32_t l = htobe32((uint32_t)len);

	memcpy(p, &t, 2);
	memcpy(p + 2, &l, 4);
	if (data)
		memcpy(p + TLV_HDR, data, len);
	return p + TLV_HDR + len;
}

/* The body after a valid version-2 header of buf; its flags. */
static int get_hdr(const uint8_t *buf, size_t len, uint16_t *flags, const uint8_t **body,
		   size_t *body_len, ov_error *err)
{
	uint16_t hs, fl;
	uint32_t tl;

	if (len < HDR_LEN || len > STATE_MAX)
		return ov_error_set(err, EBADMSG, "TPM state: no swtpm header");
	memcpy(&hs, buf + 2, 2);
	memcpy(&fl, buf + 4, 2);
	memcpy(&tl, buf + 6, 4);
	if (buf[1] > HDR_VERSION || be16toh(hs) != HDR_LEN || be32toh(tl) != len)
		return ov_error_set(err, EBADMSG, "TPM state: bad swtpm header");
	*flags = be16toh(fl);
	*body = buf + HDR_LEN;
	*body_len = len - HDR_LEN;
	return 0;
}

static const uint8_t *find_tlv(const uint8_t *buf, size_t len, uint16_t tag, size_t *out_len)
{
	size_t off = 0;

	while (off + TLV_HDR <= len) {
		uint16_t t;
		uint32_t l;

		memcpy(&t, buf + off, 2);
		memcpy(&l, buf + off + 2, 4);
		off += TLV_HDR;
		if (be32toh(l) > len - off)
			return NULL;
		if (be16toh(t) == tag) {
			*out_len = be32toh(l);
			return buf + off;
		}
		off += be32toh(l);
	}
	return NULL;
}

/* HMAC-SHA256 under key of data then iv, as swtpm's SWTPM_HMAC. */
static int hmac(const struct ov_key *key, const uint8_t *data, size_t len, const uint8_t *iv,
		uint8_t out[OV_MAC_LEN], ov_error *err)
{
	struct ov_mac *m = ov_mac_new(key, err);
	int r;

	if (!m)
		return -1;
	ov_mac_update(m, data, len);
	ov_mac_update(m, iv, BLOCK);
	r = ov_mac_final(m, out, err);
	ov_mac_free(m);
	return r;
}

static int cbc(bool enc, const struct ov_key *key, const uint8_t *iv, const uint8_t *in, size_t len,
	       uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0, ok;

	ok = c && EVP_CipherInit_ex(c, EVP_aes_256_cbc(), NULL, key->b, iv, enc) == 1 &&
	     EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
	     EVP_CipherUpdate(c, out, &l1, in, (int)len) == 1 &&
	     EVP_CipherFinal_ex(c, out + l1, &l2) == 1 && (size_t)(l1 + l2) == len;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int ov_swtpm_blob_decrypt(const struct ov_key *key, const uint8_t *file, size_t len,
			  uint8_t **plain, size_t *plain_len, ov_error *err)
{
	const uint8_t *body, *ct, *mac, *iv;
	size_t blen, ctlen = 0, maclen = 0, ivlen = 0;
	uint8_t want[OV_MAC_LEN];
	uint8_t *out;
	uint16_t flags;
	unsigned pad;

	if (get_hdr(file, len, &flags, &body, &blen, err) < 0)
		return -1;
	if (!(flags & F_ENCRYPTED) || !(flags & F_KEY256))
		return ov_error_set(err, EBADMSG, "TPM state: not encrypted with a 256-bit key");
	ct = find_tlv(body, blen, T_ENC_DATA, &ctlen);
	mac = find_tlv(body, blen, T_HMAC, &maclen);
	iv = find_tlv(body, blen, T_IVEC, &ivlen);
	if (!ct || !mac || !iv || maclen != OV_MAC_LEN || ivlen != BLOCK || ctlen == 0 ||
	    ctlen % BLOCK)
		return ov_error_set(err, EBADMSG, "TPM state: bad encrypted swtpm state");
	if (hmac(key, ct, ctlen, iv, want, err) < 0)
		return -1;
	if (!ov_mac_equal(want, mac))
		return ov_error_set(err, EBADMSG,
				    "TPM state does not verify under the vTPM's state key");
	out = malloc(ctlen);
	if (!out)
		return ov_error_set(err, ENOMEM, "TPM state");
	pad = 0;
	if (cbc(false, key, iv, ct, ctlen, out) < 0 || (pad = out[ctlen - 1]) == 0 || pad > BLOCK) {
		ov_swtpm_blob_free(out, ctlen);
		return ov_error_set(err, EBADMSG, "TPM state: bad padding");
	}
	for (unsigned i = 0; i < pad; i++)
		if (out[ctlen - 1 - i] != pad) {
			ov_swtpm_blob_free(out, ctlen);
			return ov_error_set(err, EBADMSG, "TPM state: bad padding");
		}
	*plain = out;
	*plain_len = ctlen - pad;
	return 0;
}

int ov_swtpm_blob_encrypt(const struct ov_key *key, const uint8_t *plain, size_t len,
			  uint8_t **file, size_t *file_len, ov_error *err)
{
	size_t pad = BLOCK - len % BLOCK, ctlen = len + pad;
	size_t total = HDR_LEN + 3 * TLV_HDR + ctlen + OV_MAC_LEN + BLOCK;
	uint8_t iv[BLOCK], mac[OV_MAC_LEN], *in = NULL, *out, *ct, *p;

	if (len > STATE_MAX)
		return ov_error_set(err, EFBIG, "TPM state too large");
	out = calloc(1, total);
	in = malloc(ctlen);
	if (!out || !in) {
		free(out);
		free(in);
		return ov_error_set(err, ENOMEM, "TPM state");
	}
	memcpy(in, plain, len);
	memset(in + len, (int)pad, pad);
	p = put_hdr(out, F_ENCRYPTED | F_KEY256, total);
	ct = p + TLV_HDR;
	p = put_tlv(p, T_ENC_DATA, NULL, ctlen);
	if (ov_random(iv, sizeof(iv), err) < 0 || cbc(true, key, iv, in, ctlen, ct) < 0 ||
	    hmac(key, ct, ctlen, iv, mac, err) < 0) {
		ov_swtpm_blob_free(in, ctlen);
		free(out);
		return err->code ? -1 : ov_error_set(err, EIO, "encrypting the TPM state");
	}
	ov_swtpm_blob_free(in, ctlen);
	p = put_tlv(p, T_HMAC, mac, sizeof(mac));
	put_tlv(p, T_IVEC, iv, sizeof(iv));
	*file = out;
	*file_len = total;
	return 0;
}

int ov_swtpm_blob_wrap(const uint8_t *plain, size_t len, uint8_t **blob, size_t *blob_len,
		       ov_error *err)
{
	size_t total = HDR_LEN + 2 * TLV_HDR + len;
	uint8_t *out, *p;

	if (len > STATE_MAX)
		return ov_error_set(err, EFBIG, "TPM state too large");
	out = malloc(total);
	if (!out)
		return ov_error_set(err, ENOMEM, "TPM state");
	p = put_hdr(out, F_MIG_DATA, total);
	put_tlv(p, T_MIG_DATA, NULL, TLV_HDR + len); /* its value: the TLV below */
	put_tlv(p + TLV_HDR, T_DATA, plain, len);
	*blob = out;
	*blob_len = total;
	return 0;
}

int ov_swtpm_blob_unwrap(const uint8_t *blob, size_t len, uint8_t **plain, size_t *plain_len,
			 ov_error *err)
{
	const uint8_t *body, *mig, *data;
	size_t blen, miglen = 0, dlen = 0;
	uint16_t flags;

	if (get_hdr(blob, len, &flags, &body, &blen, err) < 0)
		return -1;
	if (flags & (F_ENCRYPTED | F_MIG_ENC))
		return ov_error_set(err, EBADMSG, "TPM state blob: encrypted, asked for plain");
	if (!(mig = find_tlv(body, blen, T_MIG_DATA, &miglen)) ||
	    !(data = find_tlv(mig, miglen, T_DATA, &dlen)))
		return ov_error_set(err, EBADMSG, "TPM state blob: no state in it");
	*plain = malloc(dlen ? dlen : 1);
	if (!*plain)
		return ov_error_set(err, ENOMEM, "TPM state");
	memcpy(*plain, data, dlen);
	*plain_len = dlen;
	return 0;
}
