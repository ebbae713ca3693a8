/* SPDX-License-Identifier: Apache-2.0 */
#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/ctrl_relay.h"
#include "unit.h"

/* Send msg on one end, let the relay serve the other; return what came back. */
static ssize_t exchange(const void *msg, size_t len, unsigned char *rsp, size_t size)
{
	int sv[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (write(sv[0], msg, len) != (ssize_t)len)
		return -1;
	shutdown(sv[0], SHUT_WR);
	ov_ctrl_relay_serve(sv[1], -1, 200);
	close(sv[1]);
	n = read(sv[0], rsp, size);
	close(sv[0]);
	return n;
}

static uint32_t result(const unsigned char *rsp)
{
	uint32_t be;

	memcpy(&be, rsp, sizeof(be));
	return be32toh(be);
}

int main(void)
{
	unsigned char rsp[64], msg[16];
	uint32_t cmd;
	ssize_t n;

	/* What tpm2-tss' swtpm TCTI sends at init: SET_LOCALITY 0. */
	cmd = htobe32(OV_CTRL_SET_LOCALITY);
	memcpy(msg, &cmd, 4);
	msg[4] = 0;
	n = exchange(msg, 5, rsp, sizeof(rsp));
	CHECK(n == 4 && result(rsp) == 0);

	/* Another locality is refused. */
	msg[4] = 3;
	n = exchange(msg, 5, rsp, sizeof(rsp));
	CHECK(n == 4 && result(rsp) == OV_CTRL_RESULT_FAIL);

	/* GET_CAPABILITY names only SET_LOCALITY. */
	cmd = htobe32(1);
	n = exchange(&cmd, 4, rsp, sizeof(rsp));
	CHECK(n == 12 && result(rsp) == 0);
	if (n == 12) {
		uint64_t caps;

		memcpy(&caps, rsp + 4, 8);
		CHECK(be64toh(caps) == OV_CTRL_CAP_SET_LOCAL);
	}

	/* Everything that reads, writes, stops or re-inits the TPM: refused,
	 * the connection closed after the one answer. Two commands in a row
	 * get one answer. */
	static const uint32_t refused[] = {2,	 3,    4,    6,	   7,	 8,    9,    0x0a, 0x0b,
					   0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0xff};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		uint32_t two[2] = {htobe32(refused[i]), htobe32(refused[i])};

		n = exchange(two, sizeof(two), rsp, sizeof(rsp));
		CHECK(n == 4 && result(rsp) == OV_CTRL_RESULT_FAIL);
	}

	/* Half a command, then silence: no answer, no hang. */
	n = exchange("\0\0", 2, rsp, sizeof(rsp));
	CHECK(n == 0);

	/* A client that keeps the connection open and silent holds the relay
	 * no longer than its swtpm lives: gone_fd readable ends the serving
	 * at once, not after the (here: 60 s) silence timeout. */
	{
		int sv[2], gone[2];
		struct timespec t0, t1;

		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		CHECK(pipe2(gone, O_CLOEXEC) == 0);
		CHECK(write(gone[1], "x", 1) == 1);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ov_ctrl_relay_serve(sv[1], gone[0], 60000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		CHECK(t1.tv_sec - t0.tv_sec < 30);
		close(sv[0]);
		close(sv[1]);
		close(gone[0]);
		close(gone[1]);
	}
	/* The allowlist made at build time (relay/gen-bpf.c) is in force once
	 * installed: what the relay does (write, close, poll) passes, any
	 * other system call kills the process, and it keeps no way back to
	 * privileges (no_new_privs). */
	{
		int p[2], status = 0;
		char buf[8] = "";
		pid_t pid;

		CHECK(pipe2(p, O_CLOEXEC) == 0);
		pid = fork();
		if (pid == 0) {
			close(p[0]);
			if (ov_ctrl_relay_seccomp() != 0)
				_exit(2);
			if (write(p[1], "in", 2) != 2 || poll(NULL, 0, 1) < 0)
				_exit(3);
			close(p[1]);
			syscall(SYS_getpid); /* not on the list: SIGSYS */
			_exit(0);
		}
		close(p[1]);
		CHECK(pid > 0);
		CHECK(read(p[0], buf, sizeof(buf)) == 2 && memcmp(buf, "in", 2) == 0);
		close(p[0]);
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
	}
	return unit_done("ctrl-relay");
}
