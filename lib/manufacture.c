/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/ca.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/manufacture.h"
#include "oci-vtpm/socket.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/tpm2.h"
#include "oci-vtpm/util.h"

/* TPM 2.0 constants (TPM 2.0 Library, Part 2). */
#define EK_OBJECT_ATTRIBUTES 0x000300b2u
/* TPMA_NV: PPWRITE | WRITEDEFINE | PPREAD | OWNERREAD | AUTHREAD | NO_DA | PLATFORMCREATE */
#define EK_CERT_NV_ATTRIBUTES 0x42072001u

#define NV_CHUNK_MAX  1024
#define WORK_DIR_NAME ".manufacture-XXXXXX"

/* TPM2_PolicySecret(TPM_RH_ENDORSEMENT), SHA-256: the EK templates' authPolicy. */
static const uint8_t ek_auth_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

/* ------------------------------------------------------------ commands */

static int get_properties(struct ov_tpm2 *t, struct ov_tpm_info *info, uint32_t *nv_max,
			  ov_error *err)
{
	uint32_t vendor[4] = {0}, family = 0;
	struct ov_tpm2_cmd o;
	struct ov_tpm2_rsp i;
	uint32_t count;
	size_t m = 0;

	ov_tpm2_begin(&o, TPM_ST_NO_SESSIONS, TPM_CC_GETCAPABILITY);
	ov_tpm2_put32(&o, TPM_CAP_TPM_PROPERTIES);
	ov_tpm2_put32(&o, TPM_PT_FIXED);
	ov_tpm2_put32(&o, 64);
	ov_tpm2_end(&o);
	if (ov_tpm2_run(t, &o, "TPM2_GetCapability", err) < 0)
		return -1;
	i = ov_tpm2_params(t, 0);
	ov_tpm2_take(&i, 1); /* moreData */
	if (ov_tpm2_get32(&i) != TPM_CAP_TPM_PROPERTIES)
		i.bad = true;
	count = ov_tpm2_get32(&i);
	*nv_max = 0;
	for (uint32_t k = 0; k < count && !i.bad; k++) {
		uint32_t prop = ov_tpm2_get32(&i), val = ov_tpm2_get32(&i);

		if (prop == TPM_PT_FAMILY_INDICATOR)
			family = val;
		else if (prop == TPM_PT_LEVEL)
			info->level = val;
		else if (prop == TPM_PT_REVISION)
			info->revision = val;
		else if (prop == TPM_PT_MANUFACTURER)
			info->manufacturer = val;
		else if (prop >= TPM_PT_VENDOR_STRING_1 && prop < TPM_PT_VENDOR_STRING_1 + 4)
			vendor[prop - TPM_PT_VENDOR_STRING_1] = val;
		else if (prop == TPM_PT_FIRMWARE_VERSION_1)
			info->firmware1 = val;
		else if (prop == TPM_PT_NV_BUFFER_MAX)
			*nv_max = val;
	}
	if (i.bad)
		return ov_error_set(err, EPROTO, "TPM2_GetCapability: malformed response");
	/* The vendor string: up to 16 characters, NULs dropped, trimmed. */
	for (int k = 0; k < 4; k++)
		for (int sh = 24; sh >= 0; sh -= 8) {
			char c = (char)(vendor[k] >> sh);

			if (c >= 0x20 && c < 0x7f)
				info->model[m++] = c;
		}
	while (m > 0 && info->model[m - 1] == ' ')
		m--;
	info->model[m] = '\0';
	if (!m)
		snprintf(info->model, sizeof(info->model), "unknown");
	for (int k = 0, f = 0; k < 4; k++) {
		char c = (char)(family >> (24 - 8 * k));

		if (c)
			info->family[f++] = c;
		info->family[f] = '\0';
	}
	return 0;
}

/* The TCG default EK template: L-1 (RSA 2048) or L-2 (ECC NIST P-256). */
static void put_ek_template(struct ov_tpm2_cmd *o, bool rsa)
{
	size_t at = o->n;

	ov_tpm2_put16(o, 0); /* TPM2B_PUBLIC size, patched below */
	ov_tpm2_put16(o, rsa ? TPM_ALG_RSA : TPM_ALG_ECC);
	ov_tpm2_put16(o, TPM_ALG_SHA256);
	ov_tpm2_put32(o, EK_OBJECT_ATTRIBUTES);
	ov_tpm2_put2b(o, ek_auth_policy, sizeof(ek_auth_policy));
	ov_tpm2_put16(o, TPM_ALG_AES); /* symmetric: AES-128-CFB */
	ov_tpm2_put16(o, 128);
	ov_tpm2_put16(o, TPM_ALG_CFB);
	ov_tpm2_put16(o, TPM_ALG_NULL); /* scheme */
	if (rsa) {
		ov_tpm2_put16(o, 2048); /* keyBits */
		ov_tpm2_put32(o, 0);	/* exponent: the default, 65537 */
		ov_tpm2_put2b(o, NULL, 256);
	} else {
		ov_tpm2_put16(o, TPM_ECC_NIST_P256);
		ov_tpm2_put16(o, TPM_ALG_NULL); /* kdf */
		ov_tpm2_put2b(o, NULL, 32);
		ov_tpm2_put2b(o, NULL, 32);
	}
	if (!o->overflow) {
		uint16_t size = (uint16_t)(o->n - at - 2);

		o->b[at] = (uint8_t)(size >> 8);
		o->b[at + 1] = (uint8_t)size;
	}
}

static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld, ov_error *err)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *k = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		ERR_clear_error();
		ov_error_set(err, EPROTO, "the TPM's %s EK is not a valid public key", type);
		k = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return k;
}

/* The public key of the TPMT_PUBLIC in i, checked to be what was asked for. */
static EVP_PKEY *parse_ek(struct ov_tpm2_rsp *i, bool rsa, ov_error *err)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	uint16_t type = ov_tpm2_get16(i), sym, scheme, bits_or_curve;
	BIGNUM *n = NULL, *e = NULL;
	EVP_PKEY *k = NULL;
	size_t len, xlen, ylen;
	const uint8_t *u, *x, *y;
	uint32_t exponent = 0;

	ov_tpm2_get16(i);	/* nameAlg */
	ov_tpm2_get32(i);	/* objectAttributes */
	ov_tpm2_get2b(i, &len); /* authPolicy */
	sym = ov_tpm2_get16(i);
	if (sym != TPM_ALG_NULL) {
		ov_tpm2_get16(i); /* keyBits */
		ov_tpm2_get16(i); /* mode */
	}
	scheme = ov_tpm2_get16(i);
	if (scheme != TPM_ALG_NULL)
		ov_tpm2_get16(i);
	bits_or_curve = ov_tpm2_get16(i);
	if (!bld || i->bad || type != (rsa ? TPM_ALG_RSA : TPM_ALG_ECC)) {
		ov_error_set(err, EPROTO, "TPM2_CreatePrimary: unexpected public area");
		goto out;
	}
	if (rsa) {
		exponent = ov_tpm2_get32(i);
		u = ov_tpm2_get2b(i, &len);
		if (i->bad || bits_or_curve != 2048 || len != 256) {
			ov_error_set(err, EPROTO, "TPM2_CreatePrimary: not an RSA 2048 key");
			goto out;
		}
		n = BN_bin2bn(u, (int)len, NULL);
		e = BN_new();
		if (!n || !e || !BN_set_word(e, exponent ? exponent : 65537) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
			ov_error_set(err, ENOMEM, "the RSA EK");
			goto out;
		}
		k = pkey_from("RSA", bld, err);
	} else {
		uint8_t point[65];

		ov_tpm2_get16(i); /* kdf */
		x = ov_tpm2_get2b(i, &xlen);
		y = ov_tpm2_get2b(i, &ylen);
		if (i->bad || bits_or_curve != TPM_ECC_NIST_P256 || xlen != 32 || ylen != 32) {
			ov_error_set(err, EPROTO, "TPM2_CreatePrimary: not a NIST P-256 key");
			goto out;
		}
		point[0] = 0x04; /* uncompressed */
		memcpy(point + 1, x, 32);
		memcpy(point + 33, y, 32);
		if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
						     0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
						      sizeof(point))) {
			ov_error_set(err, ENOMEM, "the ECC EK");
			goto out;
		}
		k = pkey_from("EC", bld, err);
	}
out:
	BN_free(n);
	BN_free(e);
	OSSL_PARAM_BLD_free(bld);
	return k;
}

static int flush(struct ov_tpm2 *t, uint32_t handle, ov_error *err)
{
	struct ov_tpm2_cmd o;

	ov_tpm2_begin(&o, TPM_ST_NO_SESSIONS, TPM_CC_FLUSHCONTEXT);
	ov_tpm2_put32(&o, handle);
	ov_tpm2_end(&o);
	return ov_tpm2_run(t, &o, "TPM2_FlushContext", err);
}

/* TPM2_CreatePrimary of an EK; its public key, the object flushed again. */
static EVP_PKEY *create_ek(struct ov_tpm2 *t, bool rsa, ov_error *err)
{
	const char *what = rsa ? "TPM2_CreatePrimary (RSA EK)" : "TPM2_CreatePrimary (ECC EK)";
	struct ov_tpm2_cmd o;
	struct ov_tpm2_rsp i;
	uint32_t handle;
	EVP_PKEY *k;

	ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_CREATEPRIMARY);
	ov_tpm2_put32(&o, TPM_RH_ENDORSEMENT);
	ov_tpm2_put_pw_session(&o);
	ov_tpm2_put16(&o, 4); /* inSensitive: empty userAuth and data */
	ov_tpm2_put2b(&o, NULL, 0);
	ov_tpm2_put2b(&o, NULL, 0);
	put_ek_template(&o, rsa);
	ov_tpm2_put2b(&o, NULL, 0); /* outsideInfo */
	ov_tpm2_put32(&o, 0);	    /* creationPCR: none */
	ov_tpm2_end(&o);
	if (ov_tpm2_run(t, &o, what, err) < 0)
		return NULL;
	i = (struct ov_tpm2_rsp){.p = t->rsp, .n = t->rsp_len, .off = TPM_HEADER_LEN};
	handle = ov_tpm2_get32(&i);
	i = ov_tpm2_params(t, 1);
	ov_tpm2_get16(&i); /* TPM2B_PUBLIC size */
	k = parse_ek(&i, rsa, err);
	if (flush(t, handle, k ? err : &(ov_error){0}) < 0) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

static int nv_store(struct ov_tpm2 *t, uint32_t index, const uint8_t *data, size_t len,
		    uint32_t chunk, ov_error *err)
{
	struct ov_tpm2_cmd o;

	if (len > 0xffff)
		return ov_error_set(err, EFBIG, "NV index 0x%08x: %zu bytes", index, len);
	ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_NV_DEFINESPACE);
	ov_tpm2_put32(&o, TPM_RH_PLATFORM);
	ov_tpm2_put_pw_session(&o);
	ov_tpm2_put2b(&o, NULL, 0); /* auth: empty */
	ov_tpm2_put16(&o, 4 + 2 + 4 + 2 + 2);
	ov_tpm2_put32(&o, index);
	ov_tpm2_put16(&o, TPM_ALG_SHA256);
	ov_tpm2_put32(&o, EK_CERT_NV_ATTRIBUTES);
	ov_tpm2_put2b(&o, NULL, 0); /* authPolicy */
	ov_tpm2_put16(&o, (uint16_t)len);
	ov_tpm2_end(&o);
	if (ov_tpm2_run(t, &o, "TPM2_NV_DefineSpace", err) < 0)
		return ov_error_wrap(err, "NV index 0x%08x", index);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_NV_WRITE);
		ov_tpm2_put32(&o, TPM_RH_PLATFORM);
		ov_tpm2_put32(&o, index);
		ov_tpm2_put_pw_session(&o);
		ov_tpm2_put2b(&o, data + off, n);
		ov_tpm2_put16(&o, (uint16_t)off);
		ov_tpm2_end(&o);
		if (ov_tpm2_run(t, &o, "TPM2_NV_Write", err) < 0)
			return ov_error_wrap(err, "NV index 0x%08x", index);
	}
	/* TPMA_NV_WRITEDEFINE: locked until the index is undefined. */
	ov_tpm2_begin(&o, TPM_ST_SESSIONS, TPM_CC_NV_WRITELOCK);
	ov_tpm2_put32(&o, TPM_RH_PLATFORM);
	ov_tpm2_put32(&o, index);
	ov_tpm2_put_pw_session(&o);
	ov_tpm2_end(&o);
	if (ov_tpm2_run(t, &o, "TPM2_NV_WriteLock", err) < 0)
		return ov_error_wrap(err, "NV index 0x%08x", index);
	return 0;
}

static int certify(struct ov_tpm2 *t, const struct ov_ca *ca, const struct ov_tpm_info *info,
		   uint32_t chunk, ov_error *err)
{
	static const struct ov_platform_info platform = {OV_PLATFORM_MANUFACTURER,
							 OV_PLATFORM_MODEL, OV_PLATFORM_VERSION};
	EVP_PKEY *rsa = NULL, *ecc = NULL;
	unsigned char *der[3] = {NULL, NULL, NULL};
	size_t len[3];
	int ret = -1;

	rsa = create_ek(t, true, err);
	if (!rsa)
		goto out;
	ecc = create_ek(t, false, err);
	if (!ecc)
		goto out;
	if (ov_ca_issue(ca, OV_CERT_EK, rsa, info, NULL, &der[0], &len[0], err) < 0 ||
	    ov_ca_issue(ca, OV_CERT_EK, ecc, info, NULL, &der[1], &len[1], err) < 0 ||
	    ov_ca_issue(ca, OV_CERT_PLATFORM, rsa, NULL, &platform, &der[2], &len[2], err) < 0)
		goto out;
	if (nv_store(t, OV_NV_EK_CERT_RSA, der[0], len[0], chunk, err) < 0 ||
	    nv_store(t, OV_NV_EK_CERT_ECC, der[1], len[1], chunk, err) < 0 ||
	    nv_store(t, OV_NV_PLATFORM_CERT, der[2], len[2], chunk, err) < 0)
		goto out;
	ret = 0;
out:
	for (int k = 0; k < 3; k++)
		OPENSSL_free(der[k]);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ecc);
	return ret;
}

static int tpm2_shutdown(struct ov_tpm2 *t, ov_error *err)
{
	struct ov_tpm2_cmd o;

	ov_tpm2_begin(&o, TPM_ST_NO_SESSIONS, TPM_CC_SHUTDOWN);
	ov_tpm2_put16(&o, TPM_SU_CLEAR);
	ov_tpm2_end(&o);
	return ov_tpm2_run(t, &o, "TPM2_Shutdown", err);
}

/* Everything said to the TPM 2.0 of a running manufacturing swtpm. */
static int talk(int wdir, const struct ov_swtpm *sw, const struct ov_ca *ca, int timeout_ms,
		ov_error *err)
{
	struct ov_tpm_info info = {0};
	struct ov_tpm2 t = {.fd = -1};
	uint32_t nv_max;
	int ret = -1;

	t.fd = ov_socket_connect(wdir, "tpm.sock", err);
	if (t.fd < 0)
		return -1;
	t.pidfd = sw->pidfd;
	t.deadline = (int64_t)ov_util_mono_ms() + timeout_ms;
	if (ca) {
		if (get_properties(&t, &info, &nv_max, err) < 0)
			goto out;
		if (nv_max == 0 || nv_max > NV_CHUNK_MAX)
			nv_max = nv_max ? NV_CHUNK_MAX : 512;
		if (certify(&t, ca, &info, nv_max, err) < 0)
			goto out;
	}
	ret = tpm2_shutdown(&t, err);
out:
	close(t.fd);
	return ret;
}

/* ---------------------------------------------------------------- files */

static const char *const state_files[] = {"tpm2-00.permall", "tpm-00.permall"};

bool ov_tpm_state_fresh(int statefd)
{
	for (size_t i = 0; i < sizeof(state_files) / sizeof(state_files[0]); i++)
		if (faccessat(statefd, state_files[i], F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		    errno != ENOENT)
			return false;
	return true;
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* chown every entry of the directory statefd and the directory itself, or,
 * with remove, unlink swtpm's files in it. */
static int each_entry(int statefd, bool remove, uid_t uid, gid_t gid, ov_error *err)
{
	int fd = openat(statefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	__attribute__((cleanup(closedirp))) DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return ov_error_set(err, errno, "reading the state directory");
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (remove) {
			if (strncmp(de->d_name, "tpm2-00.", 8) != 0 &&
			    strncmp(de->d_name, "tpm-00.", 7) != 0 &&
			    strcmp(de->d_name, ".lock") != 0)
				continue; /* not swtpm's */
			if (unlinkat(statefd, de->d_name, 0) < 0 && errno != ENOENT)
				return ov_error_set(err, errno, "removing %s", de->d_name);
		} else if (fchownat(statefd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			return ov_error_set(err, errno, "chown of %s", de->d_name);
		}
	}
	if (!remove && fchown(statefd, uid, gid) < 0)
		return ov_error_set(err, errno, "chown of the state directory");
	return 0;
}

/* The private work directory next to state_dir: its parent's fd and name. */
static int make_work_dir(const char *state_dir, int *parent, char *name, size_t size, ov_error *err)
{
	const char *slash = strrchr(state_dir, '/');
	char dir[4200], tmpl[4300];
	int n;

	if (!slash)
		n = snprintf(dir, sizeof(dir), ".");
	else if (slash == state_dir)
		n = snprintf(dir, sizeof(dir), "/");
	else
		n = snprintf(dir, sizeof(dir), "%.*s", (int)(slash - state_dir), state_dir);
	if (n < 0 || (size_t)n >= sizeof(dir) ||
	    snprintf(tmpl, sizeof(tmpl), "%s/" WORK_DIR_NAME, dir) >= (int)sizeof(tmpl))
		return ov_error_set(err, ENAMETOOLONG, "work directory");
	if (!mkdtemp(tmpl)) /* 0700 */
		return ov_error_set(err, errno, "creating a work directory next to %s", state_dir);
	*parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(name, size, "%s", strrchr(tmpl, '/') + 1);
	if (*parent < 0) {
		int e = errno;
		rmdir(tmpl);
		name[0] = '\0';
		return ov_error_set(err, e, "opening the parent of %s", state_dir);
	}
	n = ov_open_dir_at(*parent, name);
	if (n < 0)
		return ov_error_set(err, errno, "opening the work directory");
	return n;
}

static void stop_swtpm(struct ov_swtpm *sw, int timeout_ms, bool *orderly, ov_error *err)
{
	int r = 1;

	if (sw->pid <= 0)
		return;
	if (sw->ctrl_path[0])
		r = ov_swtpm_stop(sw->pid, sw->starttime, sw->ctrl_path, timeout_ms, err);
	if (r != 0)
		kill(sw->pid, SIGKILL);
	waitpid(sw->pid, NULL, 0);
	sw->pid = 0;
	if (orderly)
		*orderly = r == 0;
}

/* Before anything runs: an empty state directory (its fd), a request that
 * can be met, and with ek_cert the host CA (a missing or bad CA fails
 * fast). */
static int check_request(const struct ov_settings *s, enum ov_tpm_version v, const char *state_dir,
			 bool ek_cert, struct ov_ca **ca, ov_error *err)
{
	cleanup_close int sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (sfd < 0)
		return ov_error_set(err, errno, "state directory %s", state_dir);
	if (!ov_tpm_state_fresh(sfd))
		return ov_error_set(err, EEXIST, "%s already holds a TPM state; not replacing it",
				    state_dir);
	if (ek_cert && v != OV_TPM_2_0)
		return ov_error_set(err, ENOTSUP, "EK certificates are made for TPM 2.0 only");
	if (ek_cert) {
		*ca = ov_ca_load(s->ca_key, s->ca_cert, err);
		if (!*ca)
			return ov_error_wrap(err, "host CA (create it with `oci-vtpm init`)");
	}
	return take_fd(&sfd);
}

int ov_manufacture(const struct ov_settings *s, enum ov_tpm_version v, const char *state_dir,
		   const struct ov_key *state_key, bool ek_cert, uid_t uid, gid_t gid,
		   ov_error *err)
{
	cleanup_close int sfd = -1, parent = -1, wdir = -1, server = -1;
	cleanup_ca struct ov_ca *ca = NULL;
	struct ov_swtpm sw = {.pid = 0, .pidfd = -1};
	char work[64] = "";
	int64_t t0 = (int64_t)ov_util_mono_ms();
	int ret = -1;
	ov_error ignored = {0};

	sfd = check_request(s, v, state_dir, ek_cert, &ca, err);
	if (sfd < 0)
		return -1;

	wdir = make_work_dir(state_dir, &parent, work, sizeof(work), err);
	if (wdir < 0)
		goto out;
	server = ov_socket_listen(wdir, "tpm.sock", 0600, err);
	if (server < 0)
		goto out;
	/* swtpm runs as the user who owns the state, in a directory it owns. */
	char runas[32] = "";
	if (uid != 0)
		snprintf(runas, sizeof(runas), "%u", (unsigned)uid);
	if (fchown(sfd, uid, gid) < 0) {
		ov_error_set(err, errno, "chown of %s", state_dir);
		goto out;
	}
	struct ov_swtpm_instance in = {
	    .binary = s->swtpm,
	    .tpm2 = v == OV_TPM_2_0,
	    .dir_fd = wdir,
	    .state_dir = state_dir,
	    .log_name = "swtpm.log",
	    .ctrl_name = "tpm.sock.ctrl",
	    .ctrl_mode = 0600,
	    .key = state_key,
	    .runas = runas[0] ? runas : NULL,
	    .timeout_ms = (int)s->start_timeout_ms,
	};
	if (ov_swtpm_start(&in, &server, &sw, err) < 0)
		goto out;
	if (v == OV_TPM_2_0 && talk(wdir, &sw, ca, (int)s->start_timeout_ms, err) < 0)
		goto out;
	bool orderly = false;
	stop_swtpm(&sw, (int)s->stop_timeout_ms, &orderly, err);
	if (!orderly) {
		ov_error_set(err, 0, "swtpm did not shut down in order");
		goto out;
	}
	if (ov_tpm_state_fresh(sfd)) {
		ov_error_set(err, 0, "swtpm wrote no state into %s", state_dir);
		goto out;
	}
	if (each_entry(sfd, false, uid, gid, err) < 0)
		goto out;
	ov_debug("manufactured a TPM %s vTPM%s in %lld ms", ov_util_tpm_version(v),
		 ek_cert ? " with EK certificates" : "",
		 (long long)((int64_t)ov_util_mono_ms() - t0));
	ret = 0;
out:
	stop_swtpm(&sw, 1000, NULL, &ignored);
	if (sw.pidfd >= 0)
		close(sw.pidfd);
	if (ret < 0)
		each_entry(sfd, true, 0, 0, &ignored); /* nothing half-made stays */
	if (parent >= 0 && work[0])
		ov_remove_tree_at(parent, work, &ignored);
	return ret < 0 ? ov_error_wrap(err, "manufacturing the vTPM") : 0;
}
