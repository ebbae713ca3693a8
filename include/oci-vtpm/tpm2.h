/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raw TPM 2.0 commands over a socket, as manufacture.c speaks them to a
 * private swtpm: big-endian marshalling into a bounded buffer, one
 * transaction at a time, every wait bounded by a deadline and ended by the
 * swtpm's exit (its pidfd).
 */
#ifndef OCI_VTPM_TPM2_H
#define OCI_VTPM_TPM2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci-vtpm/error.h"

#define TPM_ST_NO_SESSIONS	  0x8001
#define TPM_ST_SESSIONS		  0x8002
#define TPM_CC_NV_DEFINESPACE	  0x0000012a
#define TPM_CC_CREATEPRIMARY	  0x00000131
#define TPM_CC_NV_WRITE		  0x00000137
#define TPM_CC_NV_WRITELOCK	  0x00000138
#define TPM_CC_STARTUP		  0x00000144
#define TPM_CC_SHUTDOWN		  0x00000145
#define TPM_CC_FLUSHCONTEXT	  0x00000165
#define TPM_CC_GETCAPABILITY	  0x0000017a
#define TPM_RS_PW		  0x40000009
#define TPM_RH_ENDORSEMENT	  0x4000000b
#define TPM_RH_PLATFORM		  0x4000000c
#define TPM_SU_CLEAR		  0x0000
#define TPM_CAP_TPM_PROPERTIES	  0x00000006
#define TPM_PT_FIXED		  0x00000100
#define TPM_PT_FAMILY_INDICATOR	  (TPM_PT_FIXED + 0)
#define TPM_PT_LEVEL		  (TPM_PT_FIXED + 1)
#define TPM_PT_REVISION		  (TPM_PT_FIXED + 2)
#define TPM_PT_MANUFACTURER	  (TPM_PT_FIXED + 5)
#define TPM_PT_VENDOR_STRING_1	  (TPM_PT_FIXED + 6)
#define TPM_PT_FIRMWARE_VERSION_1 (TPM_PT_FIXED + 11)
#define TPM_PT_NV_BUFFER_MAX	  (TPM_PT_FIXED + 44)
#define TPM_ALG_RSA		  0x0001
#define TPM_ALG_AES		  0x0006
#define TPM_ALG_SHA256		  0x000b
#define TPM_ALG_NULL		  0x0010
#define TPM_ALG_ECC		  0x0023
#define TPM_ALG_CFB		  0x0043
#define TPM_ECC_NIST_P256	  0x0003
/* fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt */
#define TPM_HEADER_LEN 10
#define TPM_BUF_MAX    4096

/* A command being marshalled; overflow: it did not fit (refused when sent). */
struct ov_tpm2_cmd {
	uint8_t b[TPM_BUF_MAX];
	size_t n;
	bool overflow;
};

/* A response being read; bad: it was shorter than what was taken. */
struct ov_tpm2_rsp {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

/* The connection to a TPM 2.0 (a running swtpm's server socket). */
struct ov_tpm2 {
	int fd;	      /* connected to swtpm's server socket */
	int pidfd;    /* swtpm: its exit ends every wait (-1: none) */
	bool chardev; /* fd is a TPM character device: one write, one read */
	int64_t deadline;
	uint8_t rsp[TPM_BUF_MAX];
	size_t rsp_len;
};

void ov_tpm2_put(struct ov_tpm2_cmd *o, const void *p, size_t len);
void ov_tpm2_put8(struct ov_tpm2_cmd *o, uint8_t v);
void ov_tpm2_put16(struct ov_tpm2_cmd *o, uint16_t v);
void ov_tpm2_put32(struct ov_tpm2_cmd *o, uint32_t v);
/* A TPM2B: 16-bit size, then the bytes (NULL: that many zeros). */
void ov_tpm2_put2b(struct ov_tpm2_cmd *o, const void *p, size_t len);
/* Command header (tag, size, code); ov_tpm2_end sets the size. */
void ov_tpm2_begin(struct ov_tpm2_cmd *o, uint16_t tag, uint32_t cc);
void ov_tpm2_end(struct ov_tpm2_cmd *o);
/* The authorization area: one password session with the empty password
 * (platform and endorsement auth are empty on a TPM just started). */
void ov_tpm2_put_pw_session(struct ov_tpm2_cmd *o);
/* The same with n such sessions, one per handle that needs authorization. */
void ov_tpm2_put_pw_sessions(struct ov_tpm2_cmd *o, unsigned n);

/* len bytes of the response (NULL, and bad set, when it has fewer). */
const uint8_t *ov_tpm2_take(struct ov_tpm2_rsp *i, size_t len);
uint16_t ov_tpm2_get16(struct ov_tpm2_rsp *i);
uint32_t ov_tpm2_get32(struct ov_tpm2_rsp *i);
const uint8_t *ov_tpm2_get2b(struct ov_tpm2_rsp *i, size_t *len);

/* Send one command, read its whole response into t->rsp; returns the TPM's
 * response code (0 success), or -1 on a transport error. */
int64_t ov_tpm2_transact(struct ov_tpm2 *t, const struct ov_tpm2_cmd *cmd, const char *what,
			 ov_error *err);
/* ov_tpm2_transact, and a non-zero response code is an error naming what. */
int ov_tpm2_run(struct ov_tpm2 *t, const struct ov_tpm2_cmd *cmd, const char *what, ov_error *err);
/* The parameters of the response in t->rsp, after its handles. */
struct ov_tpm2_rsp ov_tpm2_params(const struct ov_tpm2 *t, size_t handles);

#endif
