/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fault.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/launch.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/mount.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/provision.h"
#include "oci-vtpm/spec.h"
#include "oci-vtpm/util.h"
#include "oci-vtpm/vtpm.h"
#include "oci-vtpm/warm.h"

#include "vtpm_internal.h"

/*
 * For the debug-level "timing:" line of a start (make bench): start keeps
 * its stages' times here and attach, in the same process (the hook), says
 * them with its own.
 */
static struct {
	char id[256];
	double setup, restore, pool, manufacture, swtpm, total;
} timing;

static void timing_keep(const char *id, double setup, const struct ov_provision *p, double swtpm,
			double total)
{
	snprintf(timing.id, sizeof(timing.id), "%s", id);
	timing.setup = setup;
	timing.restore = p ? p->restore_ms : 0;
	timing.pool = p ? p->pool_ms : 0;
	timing.manufacture = p ? p->manufacture_ms : 0;
	timing.swtpm = swtpm;
	timing.total = total;
}

static void timing_say(const char *id, double attach)
{
	if (strcmp(timing.id, id) != 0)
		memset(&timing, 0, sizeof(timing));
	ov_debug("timing: setup %.1f ms, restore %.1f ms, pool %.1f ms, manufacture %.1f ms, swtpm "
		 "ready %.1f ms, expose %.1f ms, start total %.1f ms",
		 timing.setup, timing.restore, timing.pool, timing.manufacture, timing.swtpm,
		 attach, timing.total + attach);
	timing.id[0] = '\0';
}

/* What one start works with. */
struct start {
	const struct ov_settings *s;
	const char *id, *bundle;
	const struct ov_request *r;
	pid_t holder;
	enum ov_backend backend;
	struct ov_user user;
	char boot_id[64];
	int run;
	double t0;
};

/* Nothing of a start is kept: stop its swtpms, release its name, remove
 * its slot (locked: cdir). The archive is untouched. */
static void discard_locked(const struct ov_settings *s, int run, int cdir, const char *id,
			   const struct ov_record *rec)
{
	ov_error e = {0};

	if (rec->name)
		ov_instance_release_name(s, rec->name, id);
	ov_launch_stop(cdir, s, rec, &e);
	if (ov_instance_remove_at(run, id, &e) < 0)
		ov_warn("cleaning up: %s", e.msg);
}

/*
 * podman's precreate stage started the vTPMs under a slot of their own
 * (pre, r->precreated) before the container had an id: give them the
 * container's. Returns the locked slot, or -1. Adopted already
 * (createRuntime, then prestart): the container's own slot.
 */
static int adopt_precreated(const struct start *c, const char *pre, ov_error *err)
{
	cleanup_close int cdir = -1;
	struct ov_record rec;
	ov_error ignored = {0};
	bool moved;
	int ret;

	if (ov_instance_exists(c->run, c->id))
		return ov_container_dir_lock(c->run, c->id, false, err);
	cdir = ov_container_dir_lock(c->run, pre, false, err);
	if (cdir < 0)
		return err->code == ENOENT
			   ? ov_error_set(err, ENOENT,
					  "the vTPM podman's precreate stage started for this "
					  "container (%s) is gone",
					  pre)
			   : -1;
	if (ov_record_read(cdir, &rec, err) < 0)
		return ov_error_wrap(err, "the vTPM started by the precreate stage (%s)", pre);
	if (strcmp(rec.id, pre) != 0 || rec.container_pid != 0 || !ov_instance_alive(&rec)) {
		ov_record_free(&rec);
		return ov_error_set(
		    err, 0, "the vTPM started by the precreate stage (%s) is not running", pre);
	}
	ret = ov_instance_move(c->run, cdir, pre, c->id, c->bundle, c->holder, &rec, &moved, err);
	/* Half moved: stop it rather than leave a vTPM nobody owns. */
	if (ret < 0 && moved && ov_vtpm_stop_locked(c->s, c->run, cdir, c->id, &rec, &ignored) < 0)
		ov_warn("undoing the adoption of %s: %s", pre, ignored.msg);
	ov_record_free(&rec);
	if (ret < 0)
		return -1;
	ov_debug("adopted the vTPM started by the precreate stage as %s", pre);
	return take_fd(&cdir);
}

/* A named vTPM into the warm vTPM just taken (slot cdir): its state
 * handed to the running swtpm. On failure nothing of it is kept: the
 * swtpm is stopped, the slot removed, the archive untouched. */
static int warm_named(const struct start *c, int cdir, ov_error *err)
{
	struct ov_record rec;
	int ret;

	if (ov_record_read(cdir, &rec, err) < 0) {
		ov_error ignored = {0};

		if (ov_instance_remove_at(c->run, c->id, &ignored) < 0)
			ov_warn("cleaning up: %s", ignored.msg);
		return -1;
	}
	ret = ov_provision_warm(c->s, c->run, c->id, c->r, cdir, &rec, err);
	rec.name = NULL; /* r's (a warm record has none); released on failure */
	if (ret < 0)
		discard_locked(c->s, c->run, cdir, c->id, &rec);
	ov_record_free(&rec);
	return ret;
}

/* The slot of the start, locked: podman's precreated vTPMs moved to it, a
 * warm vTPM moved to it (*warm; a named vTPM's state handed to it), or its
 * own. */
static int open_slot(const struct start *c, bool *warm, ov_error *err)
{
	const struct ov_request *r = c->r;
	int cdir;

	*warm = false;
	if (r->precreated)
		return adopt_precreated(c, r->precreated, err);
	if (ov_warm_eligible(c->s, c->id, r) && !ov_instance_exists(c->run, c->id)) {
		cdir = ov_warm_take(c->s, c->run, c->id, c->bundle, c->holder, c->backend,
				    r->version, err);
		if (cdir >= 0) {
			*warm = true;
			if (r->name && warm_named(c, cdir, err) < 0) {
				close(cdir);
				return -1;
			}
			return cdir;
		}
		ov_debug("%s; starting one", err->msg);
	}
	return ov_container_dir_lock(c->run, c->id, true, err);
}

/* A slot with a record: 1 when its vTPMs run (nothing to do), 0 when the
 * record was stale and the slot is empty again (*cdir relocked), -1. */
static int check_existing(const struct start *c, int *cdir, ov_error *err)
{
	struct ov_record old;

	if (ov_record_read(*cdir, &old, err) < 0)
		return err->code == ENOENT ? 0 : ov_error_wrap(err, "existing record");
	if (!old.stopping && ov_instance_alive(&old)) {
		/* Made before the container existed (the shim's create, or
		 * createRuntime before prestart); or another runtime root's
		 * container with the same id, whose vTPM is not this one's. */
		if (ov_instance_owner_check(&old, c->bundle, c->holder, err) < 0) {
			ov_record_free(&old);
			return ov_error_wrap(err, "start refused");
		}
		ov_record_free(&old);
		ov_info("vTPM already running, nothing to do");
		return 1;
	}
	/* An earlier container with this id (runtimes reuse ids) whose stop
	 * did not finish: a named vTPM's live state is archived first, like
	 * gc does, or the start is refused. */
	if (ov_vtpm_stop_locked(c->s, c->run, *cdir, c->id, &old, err) < 0) {
		if (old.name)
			ov_error_wrap(err,
				      "vTPM %s of an earlier container with this id could not be "
				      "archived; start refused",
				      old.name);
		ov_record_free(&old);
		return -1;
	}
	ov_record_free(&old);
	ov_warn("replaced a stale record of a vTPM that is gone");
	close(*cdir);
	*cdir = ov_container_dir_lock(c->run, c->id, true, err);
	return *cdir < 0 ? -1 : 0;
}

/* New vTPMs in the empty slot cdir: states provisioned, swtpms launched. */
static int start_new(const struct start *c, int cdir, ov_error *err)
{
	const struct ov_request *r = c->r;
	__attribute__((cleanup(ov_provision_wipe))) struct ov_provision p = {0};
	struct ov_record rec = {.id = (char *)c->id,
				.bundle = (char *)c->bundle,
				.name = r->name,
				.boot_id = (char *)c->boot_id,
				.backend = c->backend,
				.version = r->version,
				.ek_cert = r->ek_cert};
	int statefds[OV_MAX_TPMS];
	struct ov_user user = c->user;
	double t_dirs, t_prov;
	ov_error cleanup_err = {0};

	for (unsigned i = 0; i < OV_MAX_TPMS; i++)
		statefds[i] = -1;
	/* The state dirs before the claim: max_vtpms' count bounds a slot's
	 * vTPMs by its directories (lib/instance_reserve.c). */
	if (ov_instance_user(c->s, c->run, c->id, &user, err) < 0 ||
	    ov_instance_state_dirs(cdir, r->count, &user, true, statefds, err) < 0 ||
	    ov_instance_reserve_tpms(c->run, cdir, c->id, r->count, c->s->max_vtpms, err) < 0)
		goto undo;
	ov_fault("start-claimed");
	if (ov_instance_hold(&rec, c->holder, err) < 0)
		goto undo;
	ov_fault("start-dirs");
	t_dirs = ov_util_mono_ms();
	if (ov_provision_start(c->s, c->run, c->id, r, &user, statefds, &p, err) < 0)
		goto undo;
	ov_fault("start-provisioned");
	t_prov = ov_util_mono_ms();
	if (ov_launch_start(cdir, c->s, r, &user, p.keys, &rec, err) < 0) {
		ov_provision_undo(c->s, c->id, r);
		goto undo;
	}
	ov_fault("start-launched");
	timing_keep(c->id, t_dirs - c->t0, &p, ov_util_mono_ms() - t_prov,
		    ov_util_mono_ms() - c->t0);
	ov_info("started %u TPM %s vTPM%s (%s backend)%s%s", rec.count,
		ov_util_tpm_version(r->version), rec.count > 1 ? "s" : "",
		ov_backend_name(rec.backend), r->name ? ", name " : "", r->name ? r->name : "");
	ov_instance_close_fds(statefds, r->count);
	return 0;
undo:
	ov_instance_close_fds(statefds, r->count);
	ov_launch_stop(cdir, c->s, &rec, &cleanup_err);
	if (ov_instance_remove(c->s, c->id, &cleanup_err) < 0)
		ov_warn("cleaning up: %s", cleanup_err.msg);
	return -1;
}

int ov_vtpm_start(const struct ov_settings *s, const char *id, const char *bundle,
		  const struct ov_request *r, pid_t holder, ov_error *err)
{
	struct start c = {
	    .s = s, .id = id, .bundle = bundle, .r = r, .holder = holder, .t0 = ov_util_mono_ms()};
	cleanup_close int run = -1, cdir = -1;
	bool warm;
	int ret;

	if (!ov_instance_slot_valid(id))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", id);
	if (ov_backend_resolve(r, &c.backend, err) < 0 ||
	    ov_util_user(s->swtpm_user, &c.user, err) < 0 ||
	    ov_proc_boot_id(c.boot_id, sizeof(c.boot_id), err) < 0)
		return -1;
	run = ov_run_dir_open(s->run_dir, true, err);
	if (run < 0)
		return ov_error_wrap(err, "run directory");
	c.run = run;
	cdir = open_slot(&c, &warm, err);
	if (cdir < 0)
		return -1;
	if (warm) {
		timing_keep(id, ov_util_mono_ms() - c.t0, NULL, 0, ov_util_mono_ms() - c.t0);
		ov_info("started 1 TPM %s vTPM (%s backend), warm%s%s%s",
			ov_util_tpm_version(r->version), ov_backend_name(c.backend),
			r->ek_cert ? ", EK-certified" : "", r->name ? ", name " : "",
			r->name ? r->name : "");
		return 0;
	}
	ret = check_existing(&c, &cdir, err);
	if (ret != 0)
		return ret;
	ov_fault("start-slot");
	return start_new(&c, cdir, err);
}

/* Lock slot id and read its record. */
static int open_recorded(const struct ov_settings *s, const char *id, int *run, int *cdir,
			 struct ov_record *rec, ov_error *err)
{
	*run = ov_run_dir_open(s->run_dir, false, err);
	if (*run < 0)
		return -1;
	*cdir = ov_container_dir_lock(*run, id, false, err);
	if (*cdir < 0 || ov_record_read(*cdir, rec, err) < 0)
		return ov_error_wrap(err, "the vTPM of %s", id);
	return 0;
}

int ov_vtpm_attach(const struct ov_settings *s, const char *id, pid_t pid, const struct ov_spec *sp,
		   const struct ov_request *r, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	const struct ov_backend_ops *ops;
	struct ov_record rec;
	double t0 = ov_util_mono_ms();

	if (open_recorded(s, id, &run, &cdir, &rec, err) < 0)
		return -1;
	ops = ov_backend_ops(rec.backend);
	if (ov_instance_adopt(cdir, pid, &rec, err) < 0 ||
	    ov_vtpm_place(cdir, s, id, pid, sp, &rec, r, ops, err) < 0) {
		discard_locked(s, run, cdir, id, &rec);
		ov_record_free(&rec);
		return -1;
	}
	ov_fault("start-attached");
	ov_record_free(&rec);
	timing_say(id, ov_util_mono_ms() - t0);
	return 0;
}

/* ov_vtpm_adopt; with rt (the shim), the runtime recorded too. */
static int adopt(const struct ov_settings *s, const char *id, pid_t pid, const struct ov_spec *sp,
		 const struct ov_request *r, const struct ov_vtpm_runtime *rt, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	struct ov_record rec;
	int ret;

	if (open_recorded(s, id, &run, &cdir, &rec, err) < 0)
		return -1;
	if (!ov_instance_alive(&rec)) {
		ov_record_free(&rec);
		return ov_error_set(err, ESRCH, "the vTPM of %s is not running", id);
	}
	ret = ov_instance_adopt_runtime(cdir, pid, rt ? rt->path : NULL, rt ? rt->root : NULL, &rec,
					err);
	if (ret == 0 && r) {
		ret = ov_vtpm_measure(cdir, &rec, id, sp, r, err);
		if (ret > 0 && pid > 0 && !ov_backend_ops(rec.backend)->places_log_dir)
			ret = ov_vtpm_expose_logs(cdir, s, pid, sp, err);
		ret = ret < 0 ? -1 : 0;
	}
	ov_record_free(&rec);
	if (ret == 0 && strcmp(timing.id, id) == 0)
		timing_say(id, 0); /* started in this process: the shim */
	return ret;
}

int ov_vtpm_adopt(const struct ov_settings *s, const char *id, pid_t pid, const struct ov_spec *sp,
		  const struct ov_request *r, ov_error *err)
{
	return adopt(s, id, pid, sp, r, NULL, err);
}

int ov_vtpm_adopt_runtime(const struct ov_settings *s, const char *id, pid_t pid,
			  const struct ov_vtpm_runtime *rt, ov_error *err)
{
	return adopt(s, id, pid, NULL, NULL, rt, err);
}
