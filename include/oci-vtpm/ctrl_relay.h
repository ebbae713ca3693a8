/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control channel a container sees (socket backend).
 *
 * tpm2-tss' swtpm TCTI connects to "<path>.ctrl" when it initialises and
 * sends CMD_SET_LOCALITY 0; it fails without an answer. swtpm's own control
 * channel also returns and replaces state blobs (the decrypted seeds), stops,
 * re-inits and reconfigures the TPM, so the container never gets it: it
 * stays in the container's run directory, root-only, for the hook.
 *
 * What the container gets instead is answered by a small process of its
 * own, never by swtpm: CMD_GET_CAPABILITY (it names only SET_LOCALITY) and
 * CMD_SET_LOCALITY 0 succeed (swtpm's locality is 0 and nothing changes
 * it). Everything else, another locality included, gets TPM_FAIL and the
 * connection is closed. The relay runs as an unprivileged user, with /dev/null
 * on stdio, in "/", under a seccomp allowlist (poll, accept, read, write,
 * close, exit), and exits when its swtpm does.
 */
#ifndef OCI_VTPM_CTRL_RELAY_H
#define OCI_VTPM_CTRL_RELAY_H

#include <sys/types.h>

#include "oci-vtpm/error.h"
#include "oci-vtpm/limits.h"

/* Control channel codes the relay knows (swtpm's tpm_ioctl.h). */
#define OV_CTRL_SET_LOCALITY	5
#define OV_CTRL_CAP_SET_LOCAL	(1u << 3) /* PTM_CAP_SET_LOCALITY */
#define OV_CTRL_RESULT_FAIL	9	  /* TPM_FAIL */
#define OV_CTRL_CONN_TIMEOUT_MS 2000
/* The relay's own program, installed next to the others. */
#define OV_RELAY_EXE "oci-vtpm-relay"

/*
 * Start the relay serving listen_fd (a listening unix socket; the caller
 * keeps and closes its copy) until the swtpm pid (start time starttime)
 * exits. It runs as user (NULL, "" or "root": the overflow uid 65534), in
 * the cgroups cg (NULL: ours).
 * Returns once the relay runs its loop, or -1 naming why it could not.
 */
int ov_ctrl_relay_spawn(int listen_fd, pid_t swtpm_pid, unsigned long long starttime,
			const char *user, const struct ov_limits_cg *cg, ov_error *err);

/* The relay process itself (OV_RELAY_EXE's main, or the forked child when
 * that program is not there): fd 3 listens, fd 4 is swtpm's pidfd, fd 5
 * the report pipe (0 once the seccomp allowlist is in place, or an errno);
 * privileges already dropped. Serves until swtpm exits. */
__attribute__((noreturn)) void ov_ctrl_relay_run(void);

/* Answer the control commands on one connection (the relay's loop, exposed
 * for the unit tests). Returns when the peer closes, sends something not
 * allowed (answered with TPM_FAIL), is silent for timeout_ms, or as soon
 * as gone_fd (swtpm's pidfd; -1: none) is readable: swtpm exited. */
void ov_ctrl_relay_serve(int conn, int gone_fd, int timeout_ms);

/* Put the calling process under the relay's seccomp allowlist (and
 * no_new_privs): 0, or an errno. Exposed for the unit tests. */
int ov_ctrl_relay_seccomp(void);

#endif
