/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/prepare.h"
#include "oci-vtpm/spec.h"
#include "oci-vtpm/vtpm.h"

/*
 * A backend's precreate op: start the vTPMs now, before the runtime creates
 * the container, and give the container them through config.json: under
 * the container's id (the shim, any backend), or in podman's precreate
 * stage, which has none, under a name of their own (OV_PRECREATED_PREFIX +
 * 32 random hex digits) recorded in the annotation io.oci-vtpm.precreated
 * (only a backend whose additions do not name the slot). The hook finds
 * them at createRuntime and adopts them (lib/vtpm.c).
 */
static void undo_precreate(const struct ov_prepare *e, const char *run_name)
{
	ov_error ignored = {0};

	if (ov_vtpm_stop(e->s, run_name, &ignored) < 0)
		ov_warn("undoing the vTPM started before the container: %s", ignored.msg);
}

/* The measured launch for the shim: the event log directory goes into
 * the spec first where the backend's additions do not place it (the
 * device backend), so that the mounts measured are the runtime's. Returns
 * 1 when the spec changed, 0, -1. */
static int measure_now(const struct ov_prepare *e, const struct ov_backend_ops *ops,
		       const struct ov_spec *sp, int cdir, const struct ov_record *rec,
		       ov_error *err)
{
	char slot[PATH_MAX], src[PATH_MAX + sizeof(OV_MEASURE_LOG_DIR) + 1];
	int changed = 0;

	if (rec->version != OV_TPM_2_0)
		return 0;
	if (!ops->places_log_dir) {
		if (ov_slot_path(e->s->run_dir, rec->id, slot, sizeof(slot), err) < 0)
			return -1;
		snprintf(src, sizeof(src), "%s/%s", slot, OV_MEASURE_LOG_DIR);
		changed = ov_spec_add_ro_bind(sp->root, src, e->s->socket_dir, err);
		if (changed < 0)
			return -1;
		changed = 1;
	}
	if (ov_measure_launch(cdir, rec, e->id, sp, err) < 0)
		return ov_error_wrap(err, "measuring the launch into PCR %d", OV_MEASURE_PCR);
	return changed;
}

/* Returns 1 when it started the vTPMs, 0 when they ran already (a
 * retried create: they are not ours to undo), -1 on error (nothing of ours
 * left running). *changed: the backend added to the spec. */
static int precreate(const struct ov_prepare *e, const char *run_name,
		     const struct ov_backend_ops *ops, const struct ov_spec *sp,
		     const struct ov_request *r, bool *changed, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	struct ov_record rec;
	int started, ret;

	/* No container yet: started and recorded, placed by the runtime. */
	started = ov_vtpm_start(e->s, run_name, e->bundle, r, e->holder, err);
	if (started < 0) /* undoes itself */
		return ov_error_wrap(err, "starting the vTPM before the container");
	run = ov_run_dir_open(e->s->run_dir, false, err);
	if (run >= 0)
		cdir = ov_container_dir_lock(run, run_name, false, err);
	if (cdir < 0 || ov_record_read(cdir, &rec, err) < 0) {
		ov_error_wrap(err, "the record of the vTPM started before the container");
		goto fail;
	}
	ret = ops->precreate(sp->root, e->s, &rec, err);
	/* The shim: the container's config is final now, and no hook of ours
	 * runs: measure its launch here (lib/measure.c). */
	if (ret >= 0 && e->id && r->measure) {
		int m = measure_now(e, ops, sp, cdir, &rec, err);

		ret = m < 0 ? -1 : (ret > 0 || m > 0);
	}
	ov_record_free(&rec);
	if (ret < 0)
		goto fail;
	*changed = ret > 0;
	if (!e->id) {
		if (ov_spec_annotate(sp->root, OV_ANNOTATION_PREFIX "precreated", run_name, err) <
		    0)
			goto fail;
		*changed = true;
	}
	return started == 0 ? 1 : 0;
fail:
	close(take_fd(&cdir)); /* ov_vtpm_stop takes the lock */
	if (started == 0)
		undo_precreate(e, run_name);
	return -1;
}

/* The edited config.json as text (malloc'd, a newline at its end). */
static int to_text(json_object *root, char **out, size_t *out_len, ov_error *err)
{
	size_t n;
	const char *text = json_object_to_json_string_length(
	    root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

	if (!text || !(*out = malloc(n + 2)))
		return ov_error_set(err, ENOMEM, "config.json");
	memcpy(*out, text, n);
	(*out)[n] = '\n';
	(*out)[n + 1] = '\0';
	*out_len = n + 1;
	return 0;
}

/* What config.json says of a request, for who runs next: the shim's
 * marker (it starts, places and stops the vTPMs itself; no hook of ours
 * runs, and one that runs all the same, from an oci-hooks(5) file or the
 * bundle, learns so here), or our hooks; and the enable annotation.
 * Returns 1 if it changed config.json, 0 if not, -1 on error. */
static int mark_request(const struct ov_prepare *e, struct ov_spec *sp, const struct ov_request *r,
			ov_error *err)
{
	struct ov_hook_opts ho = {.path = e->hook, .config = e->config};
	int changed;

	if (e->id) {
		changed = !r->provided;
		if (changed && ov_spec_annotate(sp->root, OV_ANNOTATION_PREFIX "provided-by",
						OV_PROVIDER_RUNTIME, err) < 0)
			return -1;
	} else {
		ov_spec_hook_timeouts(e->s, r->count, &ho);
		changed = ov_spec_add_hooks(sp->root, &ho, err);
		if (changed < 0)
			return -1;
	}
	/* Asked by process.env or the settings' default_enable: the
	 * annotation says so to the hook, which runs only for containers
	 * that ask, and finds the same request. */
	if (!ov_spec_annotated_true(sp->annotations, OV_ANNOTATION_PREFIX "enable")) {
		if (ov_spec_annotate(sp->root, OV_ANNOTATION_PREFIX "enable", "true", err) < 0)
			return -1;
		json_object_object_get_ex(sp->root, "annotations", &sp->annotations);
		changed = 1;
	}
	return changed;
}

int ov_prepare_text(const char *buf, size_t len, const struct ov_prepare *e, char **out,
		    size_t *out_len, struct ov_prepare_result *res, ov_error *err)
{
	struct ov_spec sp;
	struct ov_request r;
	enum ov_backend backend = OV_BACKEND_SOCKET;
	const struct ov_backend_ops *ops;
	char token[64] = "";
	const char *run_name = e->id ? e->id : token;
	int changed, ret = -1;

	*out = NULL;
	*out_len = 0;
	memset(res, 0, sizeof(*res));
	if (e->id && (!e->bundle || e->bundle[0] != '/'))
		return ov_error_set(err, 0, "the bundle path is not absolute");
	if (ov_spec_request(buf, len, e->s, e->bundle ? e->bundle : "/", &sp, &r, err) < 0)
		return -1;
	if (!r.enable) {
		ret = 0;
		goto out;
	}
	res->enabled = true;
	changed = mark_request(e, &sp, &r, err);
	if (changed < 0)
		goto out;
	/* Which backend decides whether there is anything to start now; a
	 * request this host cannot serve fails here, before the runtime.
	 * Started already by podman's precreate stage: the hook adopts them. */
	if (ov_backend_resolve(&r, &backend, err) < 0)
		goto out;
	ops = ov_backend_ops(backend);
	/* The shim always starts them now (taking over those podman's
	 * precreate stage started); that stage only where it can. */
	if (ops->precreate && (e->id || (!r.precreated && ops->precreate_unnamed))) {
		bool devs = false;
		int p;

		if (!e->id) {
			ov_vtpm_collect_precreated(e->s);
			if (ov_instance_new_name(OV_PRECREATED_PREFIX, token, sizeof(token), err) <
			    0)
				goto out;
			ov_log_set_id(token); /* what the hook's log says it adopted */
		}
		p = precreate(e, run_name, ops, &sp, &r, &devs, err);
		if (p < 0)
			goto out;
		res->precreated = p > 0;
		if (!e->id)
			snprintf(res->run_name, sizeof(res->run_name), "%s", token);
		changed |= devs;
	}
	if (changed && to_text(sp.root, out, out_len, err) < 0)
		goto undo;
	ret = 0;
	goto out;
undo:
	if (res->precreated) {
		undo_precreate(e, run_name);
		res->precreated = false;
	}
out:
	ov_request_free(&r);
	ov_oci_spec_free(&sp);
	return ret;
}

int ov_prepare_file(int dirfd, const char *name, const struct ov_prepare *e,
		    struct ov_prepare_result *res, ov_error *err)
{
	cleanup_free char *buf = NULL, *out = NULL;
	struct stat st, now;
	size_t len, out_len;

	memset(res, 0, sizeof(*res));
	if (ov_spec_read(dirfd, name, &st, &buf, &len, err) < 0)
		return -1;
	if (ov_prepare_text(buf, len, e, &out, &out_len, res, err) < 0)
		return ov_error_wrap(err, "%s", name);
	if (!out)
		return 0;
	/* Replace only the file we read, never through a symlink. */
	if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0) {
		ov_error_set(err, errno, "stat of %s", name);
		goto undo;
	}
	if (S_ISLNK(now.st_mode)) {
		ov_error_set(err, 0, "%s is a symlink: not rewriting it (make it a file)", name);
		goto undo;
	}
	if (now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
		ov_error_set(err, 0, "%s was replaced while being edited", name);
		goto undo;
	}
	/* Atomic, not durable: the runtime reads it next; after a crash
	 * there is no create to serve. */
	if (ov_write_file_replace(dirfd, name, out, out_len, st.st_mode & 07777, err) < 0)
		goto undo;
	if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
	    fchownat(dirfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
		ov_error_set(err, errno, "keeping the owner of %s", name);
		goto undo;
	}
	return 0;
undo:
	if (res->precreated) {
		undo_precreate(e, e->id);
		res->precreated = false;
	}
	return -1;
}
