/* SPDX-License-Identifier: Apache-2.0 */
/* The control relay itself (include/oci-vtpm/ctrl_relay.h): its loop, the
 * commands it answers and its seccomp allowlist. All that the
 * oci-vtpm-relay program links (libc only: the allowlist's BPF is made at
 * build time, relay/gen-bpf.c); starting it is lib/ctrl_relay_spawn.c. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "oci-vtpm/ctrl_relay.h"
#include "oci-vtpm/fsutil.h"
#include "ctrl_relay_bpf.h" /* generated: $(BUILD)/gen */

#define CMD_GET_CAPABILITY 1

/* Read exactly len bytes, or fail on EOF, error, timeout_ms of silence or
 * gone_fd (swtpm's pidfd; -1: none) readable: a relay whose swtpm exited
 * has nothing to serve, and exits at once rather than at a client's
 * leisure. */
static int read_full(int fd, int gone_fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = gone_fd, .events = POLLIN}};
		ssize_t n;
		int r = poll(p, 2, timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || p[1].revents)
			return -1;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int reply(int conn, uint32_t result, const void *payload, size_t len)
{
	unsigned char buf[16];
	uint32_t be = htobe32(result);

	memcpy(buf, &be, sizeof(be));
	if (len)
		memcpy(buf + sizeof(be), payload, len);
	return ov_write_all(conn, buf, sizeof(be) + len);
}

void ov_ctrl_relay_serve(int conn, int gone_fd, int timeout_ms)
{
	for (;;) {
		uint32_t cmd;
		uint8_t loc;

		if (read_full(conn, gone_fd, &cmd, sizeof(cmd), timeout_ms) < 0)
			return;
		switch (be32toh(cmd)) {
		case CMD_GET_CAPABILITY: {
			uint64_t caps = htobe64(OV_CTRL_CAP_SET_LOCAL);

			if (reply(conn, 0, &caps, sizeof(caps)) < 0)
				return;
			continue;
		}
		case OV_CTRL_SET_LOCALITY:
			if (read_full(conn, gone_fd, &loc, sizeof(loc), timeout_ms) < 0)
				return;
			if (loc == 0) {
				if (reply(conn, 0, NULL, 0) < 0)
					return;
				continue;
			}
			break;
		default:
			break;
		}
		/* Not allowed: refuse, and drop whatever payload followed. */
		reply(conn, OV_CTRL_RESULT_FAIL, NULL, 0);
		return;
	}
}

/* The relay's seccomp allowlist (relay/gen-bpf.c: made by libseccomp at
 * build time), installed as it is. */
int ov_ctrl_relay_seccomp(void)
{
	struct sock_fprog prog = {
	    .len = (unsigned short)(sizeof(ov_ctrl_relay_bpf) / sizeof(ov_ctrl_relay_bpf[0])),
	    .filter = (struct sock_filter *)ov_ctrl_relay_bpf,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return errno;
	return 0;
}

/* The relay itself: fd 3 listens, fd 4 is swtpm's pidfd. */
static __attribute__((noreturn)) void relay_loop(void)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = 4, .events = POLLIN}, {.fd = 3, .events = POLLIN}};
		int conn;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (p[0].revents) /* swtpm exited */
			_exit(0);
		if (!p[1].revents)
			continue;
		conn = accept4(3, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0)
			continue;
		ov_ctrl_relay_serve(conn, 4, OV_CTRL_CONN_TIMEOUT_MS);
		close(conn);
	}
}

void ov_ctrl_relay_run(void)
{
	/* Again after an exec: its name, and not dumpable (exec made it so). */
	int e = prctl(PR_SET_NAME, "ov-ctrl-relay", 0, 0, 0) < 0 ||
			prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0
		    ? errno
		    : ov_ctrl_relay_seccomp();

	if (write(5, &e, sizeof(e)) < 0 || e)
		_exit(127);
	close(5);
	relay_loop();
}
