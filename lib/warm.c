/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/launch.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/vtpm.h"
#include "oci-vtpm/warm.h"

/* Warm vTPMs are of the host's default kind: one TPM 2.0, EK-certified
 * when the settings' ek_cert says so. An ephemeral request takes one as it
 * is; a named one gets its state handed over (ov_provision_warm), which
 * needs a backend whose command socket we reach (TPM2_Startup). */
bool ov_warm_eligible(const struct ov_settings *s, const char *id, const struct ov_request *r,
		      enum ov_backend backend)
{
	return s->warm_size > 0 && r->count == 1 && r->version == OV_TPM_2_0 &&
	       r->ek_cert == s->ek_cert && !r->precreated && !ov_warm_valid(id) &&
	       (!r->name || ov_backend_ops(backend)->data_name);
}

/* Is rec a warm vTPM of the kind this host's settings make now? (Its
 * backend is compared where it is taken: after a change of the settings'
 * backend, `pool drain` replaces the old ones.) */
static bool warm_kind(const struct ov_settings *s, const struct ov_record *rec)
{
	return rec->count == 1 && rec->version == OV_TPM_2_0 && rec->ek_cert == s->ek_cert &&
	       !rec->name;
}

/* Move the warm vTPM name (locked: cdir, its record rec) to slot to. */
static int take_one(const struct ov_settings *s, int run, int cdir, const char *name,
		    const char *to, const char *bundle, pid_t holder, const struct ov_record *rec,
		    ov_error *err)
{
	ov_error ignored = {0};
	bool moved;

	if (ov_instance_move(run, cdir, name, to, bundle, holder, rec, &moved, err) == 0)
		return 0;
	if (moved) {
		/* Half moved: stop it rather than leave a vTPM nobody owns (a
		 * warm vTPM has no name: nothing to archive). */
		ov_launch_stop(cdir, s, rec, &ignored);
		if (ov_instance_remove(s, to, &ignored) < 0)
			ov_warn("undoing the adoption of %s: %s", name, ignored.msg);
	}
	return -1;
}

int ov_warm_take(const struct ov_settings *s, int run, const char *to, const char *bundle,
		 pid_t holder, enum ov_backend backend, ov_error *err)
{
	cleanup_instance_iter struct ov_instance_iter it = {.only = OV_INSTANCE_WARM_DIR};
	const char *name;

	while ((name = ov_instance_next(run, &it))) {
		cleanup_close int cdir = -1;
		struct ov_record rec;
		ov_error e = {0};
		int ret = -1;

		if (!ov_warm_valid(name))
			continue;
		cdir = ov_container_dir_lock(run, name, false, &e);
		if (cdir < 0 || ov_record_read(cdir, &rec, &e) < 0)
			continue;
		if (strcmp(rec.id, name) == 0 && rec.backend == backend && warm_kind(s, &rec) &&
		    rec.container_pid == 0 && ov_instance_alive(&rec))
			ret = take_one(s, run, cdir, name, to, bundle, holder, &rec, &e);
		ov_record_free(&rec);
		if (ret == 0) {
			ov_debug("took the warm vTPM %s", name);
			return take_fd(&cdir);
		}
		if (e.code != 0 && e.code != ENOENT)
			ov_warn("warm vTPM %s: %s", name, e.msg);
	}
	return ov_error_set(err, ENOENT, "no warm vTPM ready");
}

/* 1 when a warm vTPM is not collected: it is alive (gc's view). */
static int warm_collect(const struct ov_settings *s, const char *name, const char *boot_id)
{
	ov_error err = {0};
	int r = ov_vtpm_collect(s, name, boot_id, &err);

	if (r < 0)
		ov_warn("warm vTPM %s: %s", name, err.msg);
	return r == 0;
}

static int warm_stop(const struct ov_settings *s, const char *name, const char *boot_id)
{
	ov_error err = {0};

	(void)boot_id;
	if (ov_vtpm_stop(s, name, &err) < 0) {
		ov_warn("warm vTPM %s: %s", name, err.msg);
		return 0;
	}
	return 1;
}

/* 1 when it is alive and of the kind the settings make (by its record). */
static int warm_ready(const struct ov_settings *s, const char *name, const char *boot_id)
{
	ov_error err = {0};
	cleanup_close int run = ov_run_dir_open(s->run_dir, false, &err);
	cleanup_close int cdir = -1;
	struct ov_record rec;
	char path[OV_INSTANCE_PATH_MAX];
	bool ready;

	if (run >= 0 && ov_instance_path(run, name, false, path, sizeof(path), &err) == 0)
		cdir = ov_open_dir_at(run, path);
	if (cdir < 0 || ov_record_read(cdir, &rec, &err) < 0)
		return 0;
	ready = rec.boot_id && strcmp(rec.boot_id, boot_id) == 0 && rec.container_pid == 0 &&
		warm_kind(s, &rec) && ov_instance_alive(&rec);
	ov_record_free(&rec);
	return ready;
}

unsigned ov_warm_count(const struct ov_settings *s)
{
	return ov_instance_each(s, ov_warm_valid, warm_ready);
}

int ov_warm_fill(const struct ov_settings *s, unsigned target, unsigned *ready, unsigned *made,
		 ov_error *err)
{
	*made = 0;
	ov_instance_each(s, ov_warm_valid, warm_collect);
	*ready = ov_instance_each(s, ov_warm_valid, warm_ready);
	while (*ready < target) {
		char name[64];
		struct ov_request r = {.enable = true,
				       .count = 1,
				       .version = OV_TPM_2_0,
				       .ek_cert = s->ek_cert,
				       .backend = s->backend};

		/* No container and no process creating one: in use while it
		 * runs, by its slot name. */
		if (ov_instance_new_name(OV_WARM_PREFIX, name, sizeof(name), err) < 0 ||
		    ov_vtpm_start(s, name, NULL, &r, 0, err) < 0)
			return ov_error_wrap(err, "starting a warm vTPM");
		(*ready)++;
		(*made)++;
	}
	return 0;
}

unsigned ov_warm_drain(const struct ov_settings *s)
{
	return ov_instance_each(s, ov_warm_valid, warm_stop);
}
