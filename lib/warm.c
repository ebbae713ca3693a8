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
#include "oci-vtpm/util.h"
#include "oci-vtpm/vtpm.h"
#include "oci-vtpm/warm.h"

/* Warm vTPMs are of two kinds: TPM 2.0 (warm_size; EK-certified when the
 * settings' ek_cert says so) and TPM 1.2 (warm_size_tpm12; never
 * certified: EK certificates are made for TPM 2.0 only). One TPM each, on
 * the settings' backend. */
unsigned ov_warm_target(const struct ov_settings *s, enum ov_tpm_version v)
{
	return v == OV_TPM_2_0 ? s->warm_size : s->warm_size_tpm12;
}

/* The EK certificates of a warm vTPM of version v. */
static bool warm_ek_cert(const struct ov_settings *s, enum ov_tpm_version v)
{
	return v == OV_TPM_2_0 && s->ek_cert;
}

/* An ephemeral request takes a warm vTPM as it is; a named one gets its
 * state handed over (ov_provision_warm), through the backend's connection
 * to the TPM (Startup: the socket, or the host's /dev/tpmN). */
bool ov_warm_eligible(const struct ov_settings *s, const char *id, const struct ov_request *r)
{
	return ov_warm_target(s, r->version) > 0 && r->count == 1 &&
	       r->ek_cert == warm_ek_cert(s, r->version) && !r->precreated && !ov_warm_valid(id);
}

/* Is rec a warm vTPM of version v of the kind this host's settings make
 * now? (Its backend is compared where it is taken: after a change of the
 * settings' backend, `pool drain` replaces the old ones.) */
static bool warm_kind(const struct ov_settings *s, const struct ov_record *rec,
		      enum ov_tpm_version v)
{
	return rec->count == 1 && rec->version == v && rec->ek_cert == warm_ek_cert(s, v) &&
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
		 pid_t holder, enum ov_backend backend, enum ov_tpm_version version, ov_error *err)
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
		if (strcmp(rec.id, name) == 0 && rec.backend == backend &&
		    warm_kind(s, &rec, version) && rec.container_pid == 0 &&
		    ov_instance_alive(&rec))
			ret = take_one(s, run, cdir, name, to, bundle, holder, &rec, &e);
		ov_record_free(&rec);
		if (ret == 0) {
			ov_debug("took the warm vTPM %s", name);
			return take_fd(&cdir);
		}
		if (e.code != 0 && e.code != ENOENT)
			ov_warn("warm vTPM %s: %s", name, e.msg);
	}
	return ov_error_set(err, ENOENT, "no warm TPM %s vTPM ready", ov_util_tpm_version(version));
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

/* Is the warm vTPM name alive and of version v of the kind the settings
 * make (by its record)? */
static bool warm_ready(const struct ov_settings *s, const char *name, const char *boot_id,
		       enum ov_tpm_version v)
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
		return false;
	ready = rec.boot_id && strcmp(rec.boot_id, boot_id) == 0 && rec.container_pid == 0 &&
		warm_kind(s, &rec, v) && ov_instance_alive(&rec);
	ov_record_free(&rec);
	return ready;
}

static int warm_ready_2(const struct ov_settings *s, const char *name, const char *boot_id)
{
	return warm_ready(s, name, boot_id, OV_TPM_2_0);
}

static int warm_ready_12(const struct ov_settings *s, const char *name, const char *boot_id)
{
	return warm_ready(s, name, boot_id, OV_TPM_1_2);
}

unsigned ov_warm_count(const struct ov_settings *s, enum ov_tpm_version v)
{
	return ov_instance_each(s, ov_warm_valid, v == OV_TPM_2_0 ? warm_ready_2 : warm_ready_12);
}

int ov_warm_fill(const struct ov_settings *s, enum ov_tpm_version v, unsigned *ready,
		 unsigned *made, ov_error *err)
{
	unsigned target = ov_warm_target(s, v);

	*made = 0;
	ov_instance_each(s, ov_warm_valid, warm_collect);
	*ready = ov_warm_count(s, v);
	while (*ready < target) {
		char name[64];
		struct ov_request r = {.enable = true,
				       .count = 1,
				       .version = v,
				       .ek_cert = warm_ek_cert(s, v),
				       .backend = s->backend};

		/* No container and no process creating one: in use while it
		 * runs, by its slot name. */
		if (ov_instance_new_name(OV_WARM_PREFIX, name, sizeof(name), err) < 0 ||
		    ov_vtpm_start(s, name, NULL, &r, 0, err) < 0)
			return ov_error_wrap(err, "starting a warm TPM %s vTPM",
					     ov_util_tpm_version(v));
		(*ready)++;
		(*made)++;
	}
	return 0;
}

unsigned ov_warm_drain(const struct ov_settings *s)
{
	return ov_instance_each(s, ov_warm_valid, warm_stop);
}
