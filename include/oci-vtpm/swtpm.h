/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Driving swtpm: spawn it directly (explicit argv, explicit fds, clean env),
 * wait for readiness on its control channel, stop it in order.
 */
#ifndef OCI_VTPM_SWTPM_H
#define OCI_VTPM_SWTPM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"
#include "oci-vtpm/limits.h"

/* Control channel commands (swtpm's tpm_ioctl.h). */
#define OV_SWTPM_CMD_GET_CAPABILITY 1
#define OV_SWTPM_CMD_INIT	    2
#define OV_SWTPM_CMD_SHUTDOWN	    3
#define OV_SWTPM_CMD_GET_STATEBLOB  12
#define OV_SWTPM_CMD_SET_STATEBLOB  13
#define OV_SWTPM_CMD_STOP	    14
/* State blob types (PTM_BLOB_TYPE_*). */
#define OV_SWTPM_BLOB_PERMANENT 1
#define OV_SWTPM_BLOB_VOLATILE	2
#define OV_SWTPM_BLOB_SAVESTATE 3

/* RLIMIT_FSIZE of swtpm: caps its log in the run dir (libtpms' whole
 * state is well under 1 MiB). */
#define OV_SWTPM_FSIZE_MAX (4ULL << 20)

struct ov_swtpm_opts {
	const char *binary;
	bool chardev; /* `swtpm chardev --fd` (vtpm proxy) instead of `swtpm socket` */
	bool tpm2;
	int server_fd;		       /* a listening unix socket, or the vtpm proxy fd */
	int ctrl_fd;		       /* a listening unix socket */
	int log_fd;		       /* -1: no log */
	int key_fd;		       /* -1: state not encrypted; else a pipe holding the key */
	const char *state_dir;	       /* --tpmstate dir=, relative to dir_fd if set */
	int dir_fd;		       /* > 0: swtpm runs in this directory; else in "/" */
	const char *runas;	       /* NULL, "" or "root": stay root */
	const struct ov_limits_cg *cg; /* joined before exec; NULL none */
};

struct ov_swtpm {
	pid_t pid;
	int pidfd;
	unsigned long long starttime;
	char ctrl_path[128]; /* set by ov_swtpm_start: its control socket */
};

struct ov_key;
/* A pipe holding key (its read end, O_CLOEXEC, returned), for swtpm's
 * --key fd=: the key never touches argv, the environment or a file. */
int ov_swtpm_key_pipe(const struct ov_key *key, ov_error *err);

/* Start swtpm with the given fds as its only ones besides /dev/null on
 * 0-2. On return the process runs (not yet ready); out->pidfd is owned by
 * the caller. A failed exec is reported here with its errno. */
int ov_swtpm_spawn(const struct ov_swtpm_opts *o, struct ov_swtpm *out, ov_error *err);

/* Kill a swtpm that ov_swtpm_spawn started (still our unreaped child, so
 * its pid is its own) and reap it; t->pid becomes 0. For a start that
 * failed: there is no state to keep and no reason to wait for it. */
void ov_swtpm_kill(struct ov_swtpm *t);

/* Wait until swtpm answers on its control channel. If it exits first, reap
 * it and report its exit status and the last line of its log (log_fd, may
 * be -1). */
int ov_swtpm_wait_ready(struct ov_swtpm *t, const char *ctrl_path, int log_fd, int timeout_ms,
			ov_error *err);

/* The control channel (lib/swtpm_ctrl.c). */

/* Send one control command and read a response of exactly rsp_len bytes
 * whose first 4 bytes (the result code) must be 0. pidfd (may be -1) aborts
 * the wait when the process exits. */
int ov_swtpm_ctrl(const char *ctrl_path, uint32_t cmd, void *rsp, size_t rsp_len, int pidfd,
		  int timeout_ms, ov_error *err);

/* The same with a request body (req_len bytes after the command). */
int ov_swtpm_ctrl_req(const char *ctrl_path, uint32_t cmd, const void *req, size_t req_len,
		      void *rsp, size_t rsp_len, int pidfd, int timeout_ms, ov_error *err);

/* Several commands on one connection, each answered before the next is
 * sent (swtpm serves a control client until it closes it): open it, then
 * the *_on calls with one deadline (ov_util_mono_ms() based), then close. */
int ov_swtpm_ctrl_open(const char *ctrl_path, ov_error *err);
int ov_swtpm_ctrl_req_on(int fd, uint32_t cmd, const void *req, size_t req_len, void *rsp,
			 size_t rsp_len, int pidfd, int64_t deadline, ov_error *err);

/*
 * CMD_SET_STATEBLOB: give a stopped TPM (CMD_STOP; the state is used at
 * the next CMD_INIT) the state blob of type in swtpm's migration format
 * (swtpm_blob.h), sent whole in one stream (swtpm reads it in chunks), on
 * the connection fd (ov_swtpm_ctrl_open).
 * CMD_GET_STATEBLOB: the blob of type, decrypted (its migration format,
 * whole: swtpm's control socket sends it in one answer); *blob is the
 * caller's. A TPM that has none answers an error.
 */
int ov_swtpm_ctrl_set_state_on(int fd, uint32_t type, const uint8_t *blob, size_t len, int pidfd,
			       int64_t deadline, ov_error *err);
int ov_swtpm_ctrl_get_state(const char *ctrl_path, uint32_t type, uint8_t **blob, size_t *len,
			    int pidfd, int timeout_ms, ov_error *err);

/*
 * One swtpm instance as both the container path (lib/launch.c) and
 * manufacture (lib/manufacture.c) run it, after swtpm_setup's struct swtpm:
 * its log (log_name, appended to) and control socket (ctrl_name, made with
 * ctrl_mode) live in the directory dir_fd; it serves the TPM on a channel
 * the caller made (a listening socket or a vtpm proxy fd: the backend's
 * open_channel); its state is encrypted with key, which reaches it on a
 * pipe only.
 */
struct ov_swtpm_instance {
	const char *binary;
	bool chardev;
	bool tpm2;
	int dir_fd;	       /* borrowed */
	bool run_in_dir;       /* swtpm's cwd is dir_fd (state_dir relative to it); else "/" */
	const char *state_dir; /* --tpmstate dir= */
	const char *log_name;
	const char *ctrl_name;
	mode_t ctrl_mode;
	const struct ov_key *key; /* NULL: state not encrypted */
	const char *runas;	  /* NULL, "" or "root": stay root */
	int timeout_ms;		  /* bounds the wait for readiness */
	/* Optional: called once swtpm runs, before the wait (to record its
	 * pid: a caller killed during the wait then leaves what stops it).
	 * A failure ends the start (the swtpm is left to the caller). */
	int (*spawned)(const struct ov_swtpm *t, void *arg, ov_error *err);
	void *arg;
	const struct ov_limits_cg *cg; /* cgroups swtpm joins; NULL none */
};

/*
 * Open the log and the control socket, spawn swtpm on *channel (taken:
 * closed once swtpm has its copy, so a dead swtpm's proxy chip goes with
 * it), call spawned, wait until it answers. On return, failure included,
 * out->pid is the swtpm still running (0: none; one that exited was
 * reaped) and out->pidfd (or -1) is the caller's to close; stop it with
 * ov_swtpm_stop(out->pid, out->starttime, out->ctrl_path, ...).
 */
int ov_swtpm_start(const struct ov_swtpm_instance *in, int *channel, struct ov_swtpm *out,
		   ov_error *err);

/*
 * Stop the swtpm that was pid with that start time: CMD_SHUTDOWN on the
 * control channel and a bounded wait, then SIGTERM, then SIGKILL, each
 * bounded. Returns 0 when it stopped in order (or was already gone), 1 when
 * it had to be killed, -1 on error.
 */
int ov_swtpm_stop(pid_t pid, unsigned long long starttime, const char *ctrl_path, int timeout_ms,
		  ov_error *err);

/*
 * Kill the swtpm that was pid with that start time, whose state nobody
 * keeps (an ephemeral vTPM's): SIGKILL and a bounded wait for its exit,
 * no orderly shutdown that would write a state only to be removed.
 * Returns 0 (also when it was gone), -1 on error.
 */
int ov_swtpm_discard(pid_t pid, unsigned long long starttime, int timeout_ms, ov_error *err);

#endif
