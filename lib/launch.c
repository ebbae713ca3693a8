/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/launch.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/socket.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/swtpm_blob.h"
#include "oci-vtpm/tpm2.h"

struct recorder {
	int cdirfd;
	struct ov_record *rec;
	unsigned idx;
	const struct ov_settings *s;
	const struct ov_backend_ops *ops;
	const struct ov_limits_cg *cg;
};

/* Recorded before waiting: a hook killed from here on leaves poststop
 * what it needs to stop this swtpm. Then what the backend starts while
 * swtpm starts. */
static int record_spawned(const struct ov_swtpm *t, void *arg, ov_error *err)
{
	struct recorder *w = arg;

	w->rec->tpms[w->idx].pid = t->pid;
	w->rec->tpms[w->idx].starttime = t->starttime;
	if (ov_record_write(w->cdirfd, w->rec, err) < 0)
		return -1;
	if (w->ops->spawned && w->ops->spawned(w->cdirfd, w->s, w->idx, &w->rec->tpms[w->idx],
					       t->pidfd, w->cg, err) < 0)
		return ov_error_wrap(err, "vTPM %u", w->idx);
	return 0;
}

/*
 * A start that ran out of start_timeout_ms (while waiting for stage): say
 * whether swtpm was busy or hung. On a slow host a swtpm that keeps using
 * CPU is still starting: a TPM 1.2 runs libtpms's self-test, which makes an
 * RSA-2048 key, at every start before it answers anything, and that takes
 * seconds under emulation or load (heavy-tailed: most starts far less, a
 * few many times more). The message replaces the poll's "timed out".
 */
static void explain_timeout(const struct ov_swtpm *tpm, const char *stage, int64_t t0,
			    const struct ov_settings *s, bool tpm2, ov_error *err)
{
	uint64_t cpu = 0;
	ov_error ignored = {0};
	int64_t waited = (int64_t)ov_util_mono_ms() - t0;

	if (err->code != ETIMEDOUT || tpm->pid <= 0 || ov_proc_cpu_ms(tpm->pid, &cpu, &ignored) < 0)
		return;
	if (cpu * 10 >= (uint64_t)waited) /* a tenth of a CPU or more throughout */
		ov_error_set(err, ETIMEDOUT,
			     "%s in %lld ms: swtpm (pid %d) is busy (%llu ms of CPU), still "
			     "starting%s; raise start_timeout_ms (%u) for a host this slow",
			     stage, (long long)waited, (int)tpm->pid, (unsigned long long)cpu,
			     tpm2 ? "" : " (a TPM 1.2 makes an RSA key at every start)",
			     s->start_timeout_ms);
	else
		ov_error_set(err, ETIMEDOUT, "%s in %lld ms: swtpm (pid %d) hangs (%llu ms of CPU)",
			     stage, (long long)waited, (int)tpm->pid, (unsigned long long)cpu);
}

static int start_one(int cdirfd, unsigned idx, const struct ov_settings *s,
		     const struct ov_request *r, const struct ov_backend_ops *ops,
		     const struct ov_user *u, const struct ov_key *key, struct ov_record *rec,
		     const struct ov_limits_cg *cg, ov_error *err)
{
	struct ov_record_tpm *t = &rec->tpms[idx];
	cleanup_close int channel = -1;
	char log[64], ctrl[64], state_dir[64], uid[16];
	struct recorder w = {
	    .cdirfd = cdirfd, .rec = rec, .idx = idx, .s = s, .ops = ops, .cg = cg};
	struct ov_swtpm tpm;
	const char *stage = "swtpm did not answer";
	int64_t t0, left;
	int ret;

	/* Relative to the slot's directory, swtpm's cwd: the directory may be
	 * renamed under a running swtpm (ov_instance_move). */
	ov_instance_state_name(idx, state_dir, sizeof(state_dir));
	/* A uid of swtpm_uid_range has no name: swtpm takes the number. */
	snprintf(uid, sizeof(uid), "%u", (unsigned)u->uid);
	snprintf(log, sizeof(log), "swtpm-%u.log", idx);
	ops->ctrl_name(idx, ctrl, sizeof(ctrl));
	if (ops->open_channel(cdirfd, idx, r, &channel, t, err) < 0)
		return -1;

	struct ov_swtpm_instance in = {
	    .binary = s->swtpm,
	    .chardev = ops->chardev,
	    .tpm2 = r->version == OV_TPM_2_0,
	    .dir_fd = cdirfd,
	    .run_in_dir = true,
	    .state_dir = state_dir,
	    .log_name = log,
	    .ctrl_name = ctrl,
	    .ctrl_mode = 0600, /* never in what the container sees */
	    .key = key,
	    .runas = u->name  ? u->name
		     : u->uid ? uid
			      : NULL,
	    .timeout_ms = (int)s->start_timeout_ms,
	    .spawned = record_spawned,
	    .arg = &w,
	    .cg = cg,
	};
	/* One deadline for all of this TPM's start: swtpm answering, then
	 * what the backend waits for (the hook's own timeout in config.json
	 * counts start_timeout_ms once per TPM). */
	t0 = (int64_t)ov_util_mono_ms();
	ret = ov_swtpm_start(&in, &channel, &tpm, err);
	if (t->pid && !tpm.pid) /* reaped: it exited */
		t->pid = 0;
	/* The device backend: the kernel registers the chip only now that
	 * swtpm answers; record the device numbers it gets. */
	left = (int64_t)s->start_timeout_ms - ((int64_t)ov_util_mono_ms() - t0);
	if (ret == 0 && ops->wait) {
		stage = "the kernel did not register its chip";
		ret = ops->wait(cdirfd, s, r, idx, t, tpm.pidfd, cg, left > 0 ? (int)left : 0, err);
		if (ret == 0)
			ret = ov_record_write(cdirfd, rec, err);
	}
	if (ret < 0) {
		explain_timeout(&tpm, stage, t0, s, r->version == OV_TPM_2_0, err);
		/* Nothing of a failed start is kept: no orderly stop to wait for. */
		ov_swtpm_kill(&tpm);
		t->pid = 0;
	}
	if (tpm.pidfd >= 0)
		close(tpm.pidfd);
	return ret;
}

int ov_launch_start(int cdirfd, const struct ov_settings *s, const struct ov_request *r,
		    const struct ov_user *u, const struct ov_key *keys, struct ov_record *rec,
		    ov_error *err)
{
	const struct ov_backend_ops *ops = ov_backend_ops(rec->backend);
	struct ov_limits_cg cg = OV_LIMITS_CG_INIT;
	int ret = 0;

	/* One cgroup for the slot's swtpms and relays, named by a token of
	 * its own that a rename of the slot leaves alone, and recorded before
	 * it exists: gc removes an empty cgroup no record names. */
	if (s->swtpm_cgroup && *s->swtpm_cgroup && !rec->cgroup[0]) {
		if (ov_instance_new_name("", rec->cgroup, sizeof(rec->cgroup), err) < 0 ||
		    ov_record_write(cdirfd, rec, err) < 0)
			return ov_error_wrap(err, "swtpm's cgroup");
		if (ov_limits_create(s, rec->cgroup, r->count, &cg, err) < 0)
			return -1;
		if (cg.n == 0) /* none made (a warning said why) */
			rec->cgroup[0] = '\0';
	}
	for (unsigned i = 0; i < r->count && ret == 0; i++) {
		rec->tpms[i].devnum = -1;
		rec->count = i + 1;
		if (start_one(cdirfd, i, s, r, ops, u, &keys[i], rec, &cg, err) < 0)
			ret = ov_error_wrap(err, "vTPM %u", i);
	}
	if (ret == 0)
		ret = ov_limits_started(s, &cg, rec->cgroup, r->count, err);
	ov_limits_close(&cg);
	return ret;
}

int ov_launch_stop(int cdirfd, const struct ov_settings *s, const struct ov_record *rec,
		   ov_error *err)
{
	const struct ov_backend_ops *ops = ov_backend_ops(rec->backend);
	int ret = 0;

	for (unsigned i = 0; i < rec->count; i++) {
		char name[64], path[128];
		int r;

		if (!rec->tpms[i].pid)
			continue;
		if (!rec->name) {
			/* Ephemeral: its state is removed next, unread; an
			 * orderly shutdown would only write it first (about
			 * 1.5 ms of poststop, docs/performance.md). */
			if (ov_swtpm_discard(rec->tpms[i].pid, rec->tpms[i].starttime,
					     (int)s->stop_timeout_ms, err) < 0) {
				ov_error_wrap(err, "stopping vTPM %u", i);
				ret = -1;
			}
			continue;
		}
		ops->ctrl_name(i, name, sizeof(name));
		ov_socket_path(cdirfd, name, path, sizeof(path));
		r = ov_swtpm_stop(rec->tpms[i].pid, rec->tpms[i].starttime, path,
				  (int)s->stop_timeout_ms, err);
		if (r < 0) {
			ov_error_wrap(err, "stopping vTPM %u", i);
			ret = -1;
		} else if (r > 0) {
			ov_warn("vTPM %u (swtpm pid %d) did not shut down in order and was killed",
				i, (int)rec->tpms[i].pid);
		}
	}
	if (ret == 0 && rec->cgroup[0]) /* the swtpms are gone: their cgroup too */
		ov_limits_remove(s, rec->cgroup);
	return ret;
}

/* TPM 1.2: TPM_Startup(ST_CLEAR) (TPM_TAG_RQU_COMMAND, TPM_ORD_Startup). */
#define TPM12_TAG_RQU_COMMAND 0x00c1
#define TPM12_ORD_STARTUP     0x00000099
#define TPM12_ST_CLEAR	      0x0001

/* Startup(CLEAR) to TPM 0 of rec (TPM 2.0 or 1.2), or with !startup
 * TPM2_Shutdown(CLEAR), through the backend's connection to it (the
 * socket, or the host's /dev/tpmN); the answer must be success. */
static int tpm_cmd(int cdirfd, const struct ov_backend_ops *ops, const struct ov_record *rec,
		   bool startup, int timeout_ms, ov_error *err)
{
	bool tpm2 = rec->version == OV_TPM_2_0;
	const char *what = !tpm2 ? "TPM_Startup" : startup ? "TPM2_Startup" : "TPM2_Shutdown";
	struct ov_tpm2 t = {.pidfd = -1, .chardev = ops->chardev};
	struct ov_tpm2_cmd cmd = {0};
	int ret;

	if (tpm2)
		ov_tpm2_begin(&cmd, TPM_ST_NO_SESSIONS, startup ? TPM_CC_STARTUP : TPM_CC_SHUTDOWN);
	else
		ov_tpm2_begin(&cmd, TPM12_TAG_RQU_COMMAND, TPM12_ORD_STARTUP);
	ov_tpm2_put16(&cmd, tpm2 ? TPM_SU_CLEAR : TPM12_ST_CLEAR);
	ov_tpm2_end(&cmd);
	t.fd = ops->connect(cdirfd, 0, &rec->tpms[0], err);
	if (t.fd < 0)
		return ov_error_wrap(err, "%s", what);
	t.deadline = (int64_t)ov_util_mono_ms() + timeout_ms;
	ret = ov_tpm2_run(&t, &cmd, what, err);
	close(t.fd);
	return ret;
}

static void ctrl_path0(int cdirfd, const struct ov_backend_ops *ops, char *path, size_t size)
{
	char name[64];

	ops->ctrl_name(0, name, sizeof(name));
	ov_socket_path(cdirfd, name, path, size);
}

int ov_launch_hand_over(int cdirfd, const struct ov_settings *s, const struct ov_record *rec,
			const struct ov_launch_blob *blobs, unsigned n, ov_error *err)
{
	const struct ov_backend_ops *ops = ov_backend_ops(rec->backend);
	int64_t deadline = (int64_t)ov_util_mono_ms() + s->start_timeout_ms;
	uint32_t init_flags = 0; /* keep a volatile state set here */
	unsigned char rsp[4];
	cleanup_close int fd = -1;
	char path[128];

	/* STOP, the blobs and INIT on one connection. */
	ctrl_path0(cdirfd, ops, path, sizeof(path));
	fd = ov_swtpm_ctrl_open(path, err);
	if (fd < 0 || ov_swtpm_ctrl_req_on(fd, OV_SWTPM_CMD_STOP, NULL, 0, rsp, sizeof(rsp), -1,
					   deadline, err) < 0)
		return ov_error_wrap(err, "stopping the warm TPM");
	for (unsigned i = 0; i < n; i++) {
		uint8_t *blob = NULL;
		size_t len = 0;
		int r = ov_swtpm_blob_wrap(blobs[i].plain, blobs[i].len, &blob, &len, err);

		if (r == 0)
			r = ov_swtpm_ctrl_set_state_on(fd, blobs[i].type, blob, len, -1, deadline,
						       err);
		ov_swtpm_blob_free(blob, len);
		if (r < 0)
			return ov_error_wrap(err, "handing state blob %u to swtpm", blobs[i].type);
	}
	if (ov_swtpm_ctrl_req_on(fd, OV_SWTPM_CMD_INIT, &init_flags, sizeof(init_flags), rsp,
				 sizeof(rsp), -1, deadline, err) < 0)
		return ov_error_wrap(err, "initialising the handed-over TPM");
	return tpm_cmd(cdirfd, ops, rec, true, ov_util_ms_left(deadline), err);
}

int ov_launch_take_back(int cdirfd, const struct ov_settings *s, const struct ov_record *rec,
			uint8_t **plain, size_t *len, ov_error *err)
{
	const struct ov_backend_ops *ops = ov_backend_ops(rec->backend);
	int tmo = (int)s->stop_timeout_ms;
	ov_error ignored = {0};
	uint8_t *blob = NULL;
	size_t blen = 0;
	char path[128];
	int r;

	ctrl_path0(cdirfd, ops, path, sizeof(path));
	/* What swtpm's CMD_SHUTDOWN would do first: an orderly TPM2_Shutdown,
	 * which writes the permanent state (swtpm then sends none of its own).
	 * swtpm returns a state only while its TPM runs. A TPM the container
	 * left unstarted or shut down answers an error: its state is as good.
	 * (A TPM 1.2 writes its permanent state as it changes, and swtpm sends
	 * it nothing at a stop either.) */
	if (rec->version == OV_TPM_2_0 && tpm_cmd(cdirfd, ops, rec, false, tmo, &ignored) < 0)
		ov_debug("before taking the state back: %s", ignored.msg);
	if (ov_swtpm_ctrl_get_state(path, OV_SWTPM_BLOB_PERMANENT, &blob, &blen, -1, tmo, err) < 0)
		return ov_error_wrap(err, "taking the TPM state back from swtpm");
	r = ov_swtpm_blob_unwrap(blob, blen, plain, len, err);
	ov_swtpm_blob_free(blob, blen);
	return r;
}
