/* SPDX-License-Identifier: Apache-2.0 */
/* swtpm's control channel (include/oci-vtpm/swtpm.h): one request and its
 * answer per connection, every wait bounded by a deadline and by swtpm's
 * pidfd (a swtpm that dies answers nothing); and the state blobs a warm
 * swtpm is given and gives back over it. */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/socket.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/util.h"

static int connect_ctrl(const char *path, ov_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cleanup_close int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return ov_error_set(err, ENAMETOOLONG, "control socket %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ov_error_set(err, errno, "control socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		return ov_error_set(err, errno, "connecting to %s", path);
	return take_fd(&fd);
}

/* Wait for fd to be ready for events, or pidfd to signal an exit.
 * Returns 1 ready, 0 process exited, -1 timeout or error. */
static int wait_io(int fd, short events, int pidfd, int64_t deadline, ov_error *err)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = events},
				      {.fd = pidfd, .events = POLLIN}};
		int r = poll(p, pidfd >= 0 ? 2 : 1, ov_util_ms_left(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ov_error_set(err, errno, "poll");
		if (r == 0)
			return ov_error_set(err, ETIMEDOUT, "waiting for swtpm");
		if (p[0].revents)
			return 1;
		return 0;
	}
}

/* Send all of buf on the non-blocking fd. */
static int send_all(int fd, const void *buf, size_t len, int pidfd, int64_t deadline, uint32_t cmd,
		    ov_error *err)
{
	size_t sent = 0;

	while (sent < len) {
		ssize_t n;
		int r = wait_io(fd, POLLOUT, pidfd, deadline, err);

		if (r <= 0)
			return r == 0 ? ov_error_set(err, ESRCH, "swtpm exited") : -1;
		n = send(fd, (const char *)buf + sent, len - sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return ov_error_set(err, errno, "sending control command %u", cmd);
		sent += (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes from the non-blocking fd. */
static int recv_all(int fd, void *buf, size_t len, int pidfd, int64_t deadline, uint32_t cmd,
		    ov_error *err)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		int r = wait_io(fd, POLLIN, pidfd, deadline, err);

		if (r <= 0)
			return r == 0 ? ov_error_set(err, ESRCH, "swtpm exited") : -1;
		n = recv(fd, (char *)buf + got, len - got, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return ov_error_set(err, errno, "control command %u", cmd);
		if (n == 0)
			return ov_error_set(err, ECONNRESET, "control command %u", cmd);
		got += (size_t)n;
	}
	return 0;
}

/* Send cmd with its request (req_len bytes, may be 0) in one stream on the
 * connection fd: swtpm reads the command and the start of its request at
 * once. */
static int send_cmd(int fd, uint32_t cmd, const void *req, size_t req_len, int pidfd,
		    int64_t deadline, ov_error *err)
{
	cleanup_free char *buf = NULL;
	uint32_t be = htobe32(cmd);

	buf = malloc(sizeof(be) + req_len);
	if (!buf)
		return ov_error_set(err, ENOMEM, "control command %u", cmd);
	memcpy(buf, &be, sizeof(be));
	if (req_len)
		memcpy(buf + sizeof(be), req, req_len);
	return send_all(fd, buf, sizeof(be) + req_len, pidfd, deadline, cmd, err);
}

/* Connect and send cmd with its request. */
static int ctrl_send(const char *ctrl_path, uint32_t cmd, const void *req, size_t req_len,
		     int pidfd, int64_t deadline, ov_error *err)
{
	cleanup_close int fd = connect_ctrl(ctrl_path, err);

	if (fd < 0 || send_cmd(fd, cmd, req, req_len, pidfd, deadline, err) < 0)
		return -1;
	return take_fd(&fd);
}

static int ctrl_result(const void *rsp, uint32_t cmd, ov_error *err)
{
	uint32_t res;

	memcpy(&res, rsp, sizeof(res));
	if (be32toh(res) != 0)
		return ov_error_set(err, 0, "control command %u failed with TPM result 0x%x", cmd,
				    be32toh(res));
	return 0;
}

int ov_swtpm_ctrl_open(const char *ctrl_path, ov_error *err)
{
	return connect_ctrl(ctrl_path, err);
}

int ov_swtpm_ctrl_req_on(int fd, uint32_t cmd, const void *req, size_t req_len, void *rsp,
			 size_t rsp_len, int pidfd, int64_t deadline, ov_error *err)
{
	if (rsp_len < 4)
		return ov_error_set(err, EINVAL, "control response too short");
	if (send_cmd(fd, cmd, req, req_len, pidfd, deadline, err) < 0 ||
	    recv_all(fd, rsp, rsp_len, pidfd, deadline, cmd, err) < 0)
		return -1;
	return ctrl_result(rsp, cmd, err);
}

int ov_swtpm_ctrl_req(const char *ctrl_path, uint32_t cmd, const void *req, size_t req_len,
		      void *rsp, size_t rsp_len, int pidfd, int timeout_ms, ov_error *err)
{
	int64_t deadline = (int64_t)ov_util_mono_ms() + timeout_ms;
	cleanup_close int fd = connect_ctrl(ctrl_path, err);

	if (fd < 0)
		return -1;
	return ov_swtpm_ctrl_req_on(fd, cmd, req, req_len, rsp, rsp_len, pidfd, deadline, err);
}

int ov_swtpm_ctrl(const char *ctrl_path, uint32_t cmd, void *rsp, size_t rsp_len, int pidfd,
		  int timeout_ms, ov_error *err)
{
	return ov_swtpm_ctrl_req(ctrl_path, cmd, NULL, 0, rsp, rsp_len, pidfd, timeout_ms, err);
}

int ov_swtpm_ctrl_set_state_on(int fd, uint32_t type, const uint8_t *blob, size_t len, int pidfd,
			       int64_t deadline, ov_error *err)
{
	cleanup_free uint8_t *req = malloc(12 + len);
	uint32_t hdr[3] = {0, htobe32(type), htobe32((uint32_t)len)};
	unsigned char rsp[4];
	int r;

	if (!req)
		return ov_error_set(err, ENOMEM, "setting a state blob");
	memcpy(req, hdr, sizeof(hdr));
	memcpy(req + 12, blob, len);
	r = ov_swtpm_ctrl_req_on(fd, OV_SWTPM_CMD_SET_STATEBLOB, req, 12 + len, rsp, sizeof(rsp),
				 pidfd, deadline, err);
	explicit_bzero(req, 12 + len);
	return r;
}

int ov_swtpm_ctrl_get_state(const char *ctrl_path, uint32_t type, uint8_t **blob, size_t *len,
			    int pidfd, int timeout_ms, ov_error *err)
{
	int64_t deadline = (int64_t)ov_util_mono_ms() + timeout_ms;
	/* state_flags PTM_STATE_FLAG_DECRYPTED, type, offset 0 */
	uint32_t req[3] = {htobe32(1), htobe32(type), 0}, rsp[4];
	cleanup_close int fd = -1;
	uint8_t *buf;
	uint32_t total;

	*blob = NULL;
	*len = 0;
	fd = ctrl_send(ctrl_path, OV_SWTPM_CMD_GET_STATEBLOB, req, sizeof(req), pidfd, deadline,
		       err);
	if (fd < 0 ||
	    recv_all(fd, rsp, sizeof(rsp), pidfd, deadline, OV_SWTPM_CMD_GET_STATEBLOB, err) < 0 ||
	    ctrl_result(rsp, OV_SWTPM_CMD_GET_STATEBLOB, err) < 0)
		return -1;
	/* rsp: result, state_flags, totlength, length; then the blob, whole */
	total = be32toh(rsp[2]);
	if (be32toh(rsp[1]) != 0 || total != be32toh(rsp[3]) || total > (4u << 20))
		return ov_error_set(err, EPROTO, "state blob %u: unexpected answer", type);
	buf = malloc(total ? total : 1);
	if (!buf)
		return ov_error_set(err, ENOMEM, "state blob %u", type);
	if (recv_all(fd, buf, total, pidfd, deadline, OV_SWTPM_CMD_GET_STATEBLOB, err) < 0) {
		explicit_bzero(buf, total);
		free(buf);
		return -1;
	}
	*blob = buf;
	*len = total;
	return 0;
}
