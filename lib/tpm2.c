/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "oci-vtpm/tpm2.h"
#include "oci-vtpm/util.h"

void ov_tpm2_put(struct ov_tpm2_cmd *o, const void *p, size_t len)
{
	if (o->overflow || len > sizeof(o->b) - o->n) {
		o->overflow = true;
		return;
	}
	memcpy(o->b + o->n, p, len);
	o->n += len;
}

void ov_tpm2_put8(struct ov_tpm2_cmd *o, uint8_t v)
{
	ov_tpm2_put(o, &v, 1);
}

void ov_tpm2_put16(struct ov_tpm2_cmd *o, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	ov_tpm2_put(o, b, 2);
}

void ov_tpm2_put32(struct ov_tpm2_cmd *o, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	ov_tpm2_put(o, b, 4);
}

/* A TPM2B: 16-bit size, then the bytes (NULL: that many zeros). */
void ov_tpm2_put2b(struct ov_tpm2_cmd *o, const void *p, size_t len)
{
	ov_tpm2_put16(o, (uint16_t)len);
	if (p) {
		ov_tpm2_put(o, p, len);
		return;
	}
	for (size_t i = 0; i < len; i++)
		ov_tpm2_put8(o, 0);
}

static void patch32(struct ov_tpm2_cmd *o, size_t at, uint32_t v)
{
	if (o->overflow || at + 4 > o->n)
		return;
	o->b[at] = (uint8_t)(v >> 24);
	o->b[at + 1] = (uint8_t)(v >> 16);
	o->b[at + 2] = (uint8_t)(v >> 8);
	o->b[at + 3] = (uint8_t)v;
}

/* Command header; the size is set by cmd_end. */
void ov_tpm2_begin(struct ov_tpm2_cmd *o, uint16_t tag, uint32_t cc)
{
	o->n = 0;
	o->overflow = false;
	ov_tpm2_put16(o, tag);
	ov_tpm2_put32(o, 0);
	ov_tpm2_put32(o, cc);
}

void ov_tpm2_end(struct ov_tpm2_cmd *o)
{
	patch32(o, 2, (uint32_t)o->n);
}

/* The authorization area: one password session with the empty password
 * (platform and endorsement auth are empty on a TPM just started). */
void ov_tpm2_put_pw_sessions(struct ov_tpm2_cmd *o, unsigned n)
{
	ov_tpm2_put32(o, 9 * n); /* authorizationSize */
	for (unsigned k = 0; k < n; k++) {
		ov_tpm2_put32(o, TPM_RS_PW);
		ov_tpm2_put2b(o, NULL, 0); /* nonceCaller */
		ov_tpm2_put8(o, 0);	   /* sessionAttributes */
		ov_tpm2_put2b(o, NULL, 0); /* hmac: the password */
	}
}

void ov_tpm2_put_pw_session(struct ov_tpm2_cmd *o)
{
	ov_tpm2_put_pw_sessions(o, 1);
}

const uint8_t *ov_tpm2_take(struct ov_tpm2_rsp *i, size_t len)
{
	const uint8_t *p;

	if (i->bad || len > i->n - i->off) {
		i->bad = true;
		return NULL;
	}
	p = i->p + i->off;
	i->off += len;
	return p;
}

uint16_t ov_tpm2_get16(struct ov_tpm2_rsp *i)
{
	const uint8_t *p = ov_tpm2_take(i, 2);

	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t ov_tpm2_get32(struct ov_tpm2_rsp *i)
{
	const uint8_t *p = ov_tpm2_take(i, 4);

	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

const uint8_t *ov_tpm2_get2b(struct ov_tpm2_rsp *i, size_t *len)
{
	*len = ov_tpm2_get16(i);
	return ov_tpm2_take(i, *len);
}

/* --------------------------------------------------------- the connection */

static int wait_fd(struct ov_tpm2 *t, short events, ov_error *err)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = t->fd, .events = events},
				      {.fd = t->pidfd, .events = POLLIN}};
		int64_t left = t->deadline - (int64_t)ov_util_mono_ms();
		int r;

		if (left <= 0)
			return ov_error_set(err, ETIMEDOUT, "waiting for the TPM");
		r = poll(p, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ov_error_set(err, errno, "poll");
		if (p[0].revents)
			return 0;
		if (p[1].revents)
			return ov_error_set(err, ESRCH, "swtpm exited");
	}
}

/* A TPM character device: the whole command in one write. Returns what
 * was written: cmd->n, or 0 with err set. */
static size_t write_all(struct ov_tpm2 *t, const struct ov_tpm2_cmd *cmd, const char *what,
			ov_error *err)
{
	for (;;) {
		ssize_t n;

		if (wait_fd(t, POLLOUT, err) < 0) {
			ov_error_wrap(err, "%s", what);
			return 0;
		}
		n = write(t->fd, cmd->b, cmd->n);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 || (size_t)n != cmd->n) {
			ov_error_set(err, n < 0 ? errno : EIO, "%s: writing to the TPM", what);
			return 0;
		}
		return cmd->n;
	}
}

/* The response's size from its header in t->rsp (got bytes so far): 0
 * while the header is incomplete, -1 (err set) when out of range. */
static int64_t rsp_size(const struct ov_tpm2 *t, size_t got, const char *what, ov_error *err)
{
	uint32_t size;

	if (got < TPM_HEADER_LEN)
		return 0;
	size = (uint32_t)t->rsp[2] << 24 | (uint32_t)t->rsp[3] << 16 | (uint32_t)t->rsp[4] << 8 |
	       t->rsp[5];
	if (size < TPM_HEADER_LEN || size > sizeof(t->rsp))
		return ov_error_set(err, EPROTO, "%s: response of %u bytes", what, size);
	return size;
}

/* Send one command, read its whole response into t->rsp; returns the TPM's
 * response code (0 success), or -1 on a transport error. On a socket the
 * command is sent at once (a wait only when the socket is full) and the
 * response read as it comes, not header first: swtpm writes it in one
 * write and sends nothing unasked, so any byte past its size is an error.
 * Three system calls a command (send, poll, recv) instead of six: a
 * measured launch makes 13 of them (docs/performance.md). */
int64_t ov_tpm2_transact(struct ov_tpm2 *t, const struct ov_tpm2_cmd *cmd, const char *what,
			 ov_error *err)
{
	size_t sent = 0, got = 0;
	int64_t want = 0;

	if (cmd->overflow)
		return ov_error_set(err, E2BIG, "%s: command too large", what);
	if (t->chardev) /* a TPM device takes a command in one write */
		sent = write_all(t, cmd, what, err);
	if (t->chardev && sent != cmd->n)
		return -1;
	while (sent < cmd->n) {
		ssize_t n = send(t->fd, cmd->b + sent, cmd->n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN && wait_fd(t, POLLOUT, err) < 0)
			return ov_error_wrap(err, "%s", what);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return ov_error_set(err, errno, "%s: sending to swtpm", what);
		sent += (size_t)n;
	}
	while (want == 0 || got < (size_t)want) {
		ssize_t n;

		if (wait_fd(t, POLLIN, err) < 0)
			return ov_error_wrap(err, "%s", what);
		n = t->chardev ? read(t->fd, t->rsp + got, sizeof(t->rsp) - got)
			       : recv(t->fd, t->rsp + got, sizeof(t->rsp) - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return ov_error_set(err, errno, "%s: reading from swtpm", what);
		if (n == 0)
			return ov_error_set(err, ECONNRESET, "%s: swtpm closed the connection",
					    what);
		got += (size_t)n;
		want = rsp_size(t, got, what, err);
		if (want < 0)
			return -1;
		if (want > 0 && got > (size_t)want)
			return ov_error_set(err, EPROTO, "%s: %zu bytes for a response of %lld",
					    what, got, (long long)want);
	}
	t->rsp_len = got;
	return (int64_t)((uint32_t)t->rsp[6] << 24 | (uint32_t)t->rsp[7] << 16 |
			 (uint32_t)t->rsp[8] << 8 | t->rsp[9]);
}

/* transact, and a non-zero response code is an error naming the command. */
int ov_tpm2_run(struct ov_tpm2 *t, const struct ov_tpm2_cmd *cmd, const char *what, ov_error *err)
{
	int64_t rc = ov_tpm2_transact(t, cmd, what, err);

	if (rc < 0)
		return -1;
	if (rc != 0)
		return ov_error_set(err, 0, "%s failed: TPM response code 0x%03x", what,
				    (unsigned)rc);
	return 0;
}

/* The parameters of the response in t->rsp, after the handles. */
struct ov_tpm2_rsp ov_tpm2_params(const struct ov_tpm2 *t, size_t handles)
{
	struct ov_tpm2_rsp i = {.p = t->rsp, .n = t->rsp_len, .off = TPM_HEADER_LEN};
	uint16_t tag = (uint16_t)(t->rsp[0] << 8 | t->rsp[1]);

	ov_tpm2_take(&i, 4 * handles);
	if (tag == TPM_ST_SESSIONS) {
		uint32_t psize = ov_tpm2_get32(&i);

		if (!i.bad && psize <= i.n - i.off)
			i.n = i.off + psize;
		else
			i.bad = true;
	}
	return i;
}
