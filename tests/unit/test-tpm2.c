/* SPDX-License-Identifier: Apache-2.0 */
/* One command and its response over a socket (lib/tpm2.c), against a peer
 * that answers as swtpm would, in pieces, or with bytes past the response. */
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/tpm2.h"
#include "oci-vtpm/util.h"
#include "unit.h"

/* TPM2_GetRandom's answer with 8 bytes: header, TPM2B of 8. */
static const uint8_t answer[] = {0x80, 0x01, 0, 0, 0, 20, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};

/* The peer: reads the command, then writes answer[] in the pieces given
 * (sizes, 0-terminated; a piece past answer[] is zeros), and exits. */
static pid_t peer(int fd, const size_t *pieces)
{
	pid_t pid = fork();

	if (pid == 0) {
		uint8_t cmd[64], out[64] = {0};
		size_t off = 0;

		memcpy(out, answer, sizeof(answer));
		if (read(fd, cmd, sizeof(cmd)) <= 0)
			_exit(1);
		for (; *pieces; pieces++) {
			if (write(fd, out + off, *pieces) != (ssize_t)*pieces)
				_exit(1);
			off += *pieces;
			usleep(20000); /* each piece its own read */
		}
		_exit(0);
	}
	return pid;
}

static int64_t run(const size_t *pieces, struct ov_tpm2 *t, ov_error *err)
{
	struct ov_tpm2_cmd cmd = {0};
	int sv[2];
	int64_t rc;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -2;
	pid = peer(sv[1], pieces);
	close(sv[1]);
	*t = (struct ov_tpm2){.fd = sv[0], .pidfd = -1};
	t->deadline = (int64_t)ov_util_mono_ms() + 5000;
	ov_tpm2_begin(&cmd, TPM_ST_NO_SESSIONS, 0x17b);
	ov_tpm2_put16(&cmd, 8);
	ov_tpm2_end(&cmd);
	rc = ov_tpm2_transact(t, &cmd, "TPM2_GetRandom", err);
	close(sv[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return rc;
}

int main(void)
{
	static const size_t whole[] = {sizeof(answer), 0}, split[] = {3, 9, 8, 0},
			    extra[] = {sizeof(answer) + 4, 0}, short_[] = {12, 0};
	struct ov_tpm2 t;
	ov_error err = {0};

	signal(SIGPIPE, SIG_IGN);
	/* In one write, as swtpm answers. */
	CHECK(run(whole, &t, &err) == 0);
	CHECK(t.rsp_len == sizeof(answer) && memcmp(t.rsp, answer, sizeof(answer)) == 0);
	/* In pieces, the header itself split: read until its size. */
	CHECK(run(split, &t, &err) == 0);
	CHECK(t.rsp_len == sizeof(answer) && memcmp(t.rsp, answer, sizeof(answer)) == 0);
	/* Bytes past the response's size: refused, not left for the next one. */
	CHECK(run(extra, &t, &err) == -1);
	CHECK(err.code == EPROTO);
	CHECK_ERR(&err, "24 bytes for a response of 20");
	/* The peer leaves mid-response. */
	err = (ov_error){0};
	CHECK(run(short_, &t, &err) == -1);
	CHECK(err.code == ECONNRESET);
	return unit_done("tpm2");
}
