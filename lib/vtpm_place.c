/* SPDX-License-Identifier: Apache-2.0 */
/* The measured launch and the placing of a slot's TPMs in its container
 * (vtpm.c's attach and adopt). */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/mount.h"
#include "oci-vtpm/util.h"

#include "vtpm_internal.h"

/* The event logs in the container, read-only at socket_dir, for vTPMs
 * placed through config.json (the device backend's precreate): the
 * backends' attach places them with the TPMs. */
int ov_vtpm_expose_logs(int cdir, const struct ov_settings *s, pid_t pid, const struct ov_spec *sp,
			ov_error *err)
{
	cleanup_close int src =
	    openat(cdir, OV_MEASURE_LOG_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct ov_bind b = {.src_fd = src, .is_dir = true, .target = s->socket_dir + 1};
	__attribute__((cleanup(ov_strv_freep))) char **fresh = NULL;

	if (src < 0)
		return ov_error_set(err, errno, "opening the event log directory");
	if (!sp->rootfs)
		return ov_error_set(err, 0, "config.json has no root.path");
	if (ov_spec_fresh_mounts(sp, &fresh, err) < 0 ||
	    ov_mount_into(pid, sp->rootfs, (const char *const *)fresh, &b, 1, err) < 0)
		return ov_error_wrap(err, "placing the event log at %s in the container",
				     s->socket_dir);
	return 0;
}

/* This thread's CPU time (user and system), ms. */
static double cpu_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * The measured launch (lib/measure.c), once per slot, before the
 * container's first process: it runs at createRuntime (or prestart), or
 * in the shim before the runtime's create. Returns 1 when it measured now,
 * 0 when not asked, measured already or TPM 1.2, -1.
 */
int ov_vtpm_measure(int cdir, const struct ov_record *rec, const char *id, const struct ov_spec *sp,
		    const struct ov_request *r, ov_error *err)
{
	double t0 = ov_util_mono_ms(), c0 = cpu_ms();
	int ret;

	if (!r->measure)
		return 0;
	ret = ov_measure_launch(cdir, rec, id, sp, err);
	if (ret < 0)
		return ov_error_wrap(err, "measuring the launch into PCR %d", OV_MEASURE_PCR);
	/* Wall time, and the hook's own CPU time: on a loaded host the wall
	 * time is mostly waiting to be scheduled (ours and swtpm's). */
	if (ret > 0)
		ov_debug("timing: measure %.2f ms, %.2f ms CPU (PCR %d of %u vTPM%s)",
			 ov_util_mono_ms() - t0, cpu_ms() - c0, OV_MEASURE_PCR, rec->count,
			 rec->count > 1 ? "s" : "");
	return ret;
}

/* Measure the launch and place the TPMs in the container: with a
 * backend that can, both at once (the mount helper in its own process
 * while the TPM extends: 0.4 to 0.6 ms off a start). */
int ov_vtpm_place(int cdir, const struct ov_settings *s, const char *id, pid_t pid,
		  const struct ov_spec *sp, const struct ov_record *rec, const struct ov_request *r,
		  const struct ov_backend_ops *ops, ov_error *err)
{
	struct ov_mount_job job = OV_MOUNT_JOB_INIT;
	ov_error ignored = {0};
	int ret;

	if (!ops->attach_begin)
		return ov_vtpm_measure(cdir, rec, id, sp, r, err) < 0 ||
			       ops->attach(cdir, s, pid, sp, rec, err) < 0
			   ? -1
			   : 0;
	if (ops->attach_begin(cdir, s, pid, sp, rec, &job, err) < 0)
		return -1;
	ret = ov_vtpm_measure(cdir, rec, id, sp, r, err) < 0 ? -1 : 0;
	if (ov_mount_end(&job, ret < 0 ? &ignored : err) < 0) {
		if (ret == 0)
			ov_error_wrap(err, "placing the vTPMs in the container");
		ret = -1;
	}
	return ret;
}
