/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/launch.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/socket.h"
#include "oci-vtpm/swtpm.h"

struct recorder {
	int cdirfd;
	struct ov_record *rec;
	unsigned idx;
};

/* Recorded before waiting: a hook killed from here on leaves poststop
 * what it needs to stop this swtpm. */
static int record_spawned(const struct ov_swtpm *t, void *arg, ov_error *err)
{
	struct recorder *w = arg;

	w->rec->tpms[w->idx].pid = t->pid;
	w->rec->tpms[w->idx].starttime = t->starttime;
	return ov_record_write(w->cdirfd, w->rec, err);
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
	char log[64], ctrl[64], state_dir[64];
	struct recorder w = {.cdirfd = cdirfd, .rec = rec, .idx = idx};
	struct ov_swtpm tpm;
	const char *stage = "swtpm did not answer";
	int64_t t0, left;
	int ret;

	/* Relative to the slot's directory, swtpm's cwd: the directory may be
	 * renamed under a running swtpm (ov_instance_move). */
	ov_instance_state_name(idx, state_dir, sizeof(state_dir));
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
	    .runas = u->name,
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
		ret = ops->wait(cdirfd, s, r, idx, t, cg, left > 0 ? (int)left : 0, err);
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
		ret = ov_limits_started(s, rec->cgroup, r->count, err);
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
