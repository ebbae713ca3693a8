/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/vtpm.h"

#define VTPMX "/dev/vtpmx"

const struct ov_backend_ops *ov_backend_ops(enum ov_backend kind)
{
	switch (kind) {
	case OV_BACKEND_SOCKET:
		return &ov_backend_socket;
	case OV_BACKEND_DEVICE:
		return &ov_backend_device;
	case OV_BACKEND_AUTO:
		break;
	}
	return NULL;
}

int ov_vtpm_resolve_backend(const struct ov_request *r, enum ov_backend *out, ov_error *err)
{
	if (r->backend != OV_BACKEND_AUTO) {
		*out = r->backend;
		return 0;
	}
	if (access(VTPMX, F_OK) == 0) {
		*out = OV_BACKEND_DEVICE;
		return 0;
	}
	return ov_error_set(
	    err, 0,
	    "this kernel has no " VTPMX " (modprobe tpm_vtpm_proxy); "
	    "set \"backend\": \"socket\" in the settings or the annotation " OV_ANNOTATION_PREFIX
	    "backend=socket to use a unix socket instead");
}

struct runas {
	uid_t uid;
	gid_t gid;
	const char *name; /* NULL: root */
};

static int lookup_user(const char *name, struct runas *ra, ov_error *err)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int e;

	ra->uid = 0;
	ra->gid = 0;
	ra->name = NULL;
	if (!name || !*name || strcmp(name, "root") == 0)
		return 0;
	e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (!res)
		return ov_error_set(err, e, "swtpm_user \"%s\": no such user", name);
	ra->uid = pw.pw_uid;
	ra->gid = pw.pw_gid;
	ra->name = name;
	return 0;
}

static void state_name(unsigned idx, char *buf, size_t size)
{
	snprintf(buf, size, "state-%u", idx);
}

/* Stop every recorded swtpm. Returns -1 if one could not be stopped. */
static int stop_all(int cdirfd, const struct ov_settings *s, const struct ov_record *rec,
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
		ov_fd_path(cdirfd, name, path, sizeof(path));
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
	return ret;
}

/* Remove the container's run directory; its lock (cdirfd) is held. */
static int remove_dir(const struct ov_settings *s, const char *id, ov_error *err)
{
	cleanup_close int run = ov_run_dir_open(s->run_dir, false, err);

	if (run < 0)
		return -1;
	return ov_remove_tree_at(run, id, err);
}

/* Is the vTPM of this record still running? */
static bool record_alive(const struct ov_record *rec)
{
	ov_error ignored;
	unsigned long long st;

	return rec->count > 0 && rec->tpms[0].pid > 0 &&
	       ov_proc_starttime(rec->tpms[0].pid, &st, &ignored) == 0 &&
	       st == rec->tpms[0].starttime;
}

static int start_one(int cdirfd, unsigned idx, const struct ov_settings *s,
		     const struct ov_request *r, const struct ov_backend_ops *ops,
		     const struct runas *ra, struct ov_record *rec, ov_error *err)
{
	struct ov_record_tpm *t = &rec->tpms[idx];
	cleanup_close int server = -1, ctrl = -1, log = -1;
	char name[64], ctrl_path[128], state_dir[4200];
	struct ov_swtpm tpm;
	int ret;

	state_name(idx, name, sizeof(name));
	if (mkdirat(cdirfd, name, 0700) < 0)
		return ov_error_set(err, errno, "creating %s", name);
	if (fchownat(cdirfd, name, ra->uid, ra->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return ov_error_set(err, errno, "chown of %s", name);
	if (snprintf(state_dir, sizeof(state_dir), "%s/%s/%s", s->run_dir, rec->id, name) >=
	    (int)sizeof(state_dir))
		return ov_error_set(err, ENAMETOOLONG, "state directory");

	snprintf(name, sizeof(name), "swtpm-%u.log", idx);
	log = openat(cdirfd, name, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (log < 0)
		return ov_error_set(err, errno, "creating %s", name);

	if (ops->open_channel(cdirfd, idx, r, &server, t, err) < 0)
		return -1;
	ops->ctrl_name(idx, name, sizeof(name));
	ctrl = ov_unix_listen(cdirfd, name, ops->chardev ? 0600 : 0666, err);
	if (ctrl < 0)
		return -1;

	struct ov_swtpm_opts o = {
	    .binary = s->swtpm,
	    .chardev = ops->chardev,
	    .tpm2 = r->version == OV_TPM_2_0,
	    .server_fd = server,
	    .ctrl_fd = ctrl,
	    .log_fd = log,
	    .key_fd = -1,
	    .state_dir = state_dir,
	    .runas = ra->name,
	};
	if (ov_swtpm_spawn(&o, &tpm, err) < 0)
		return -1;
	t->pid = tpm.pid;
	t->starttime = tpm.starttime;
	/* Recorded before waiting: a hook killed from here on leaves poststop
	 * what it needs to stop this swtpm. */
	ret = ov_record_write(cdirfd, rec, err);
	if (ret == 0) {
		ov_fd_path(cdirfd, name, ctrl_path, sizeof(ctrl_path));
		ret = ov_swtpm_wait_ready(&tpm, ctrl_path, log, (int)s->start_timeout_ms, err);
		if (!tpm.pid) /* reaped: it exited */
			t->pid = 0;
	}
	close(tpm.pidfd);
	return ret;
}

int ov_vtpm_start(const struct ov_settings *s, const struct ov_state *st, const struct ov_spec *sp,
		  const struct ov_request *r, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	const struct ov_backend_ops *ops;
	struct ov_record rec = {0}, old;
	char boot_id[64];
	struct runas ra;
	ov_error cleanup_err;
	int ret = -1;

	if (ov_vtpm_resolve_backend(r, &rec.backend, err) < 0 ||
	    lookup_user(s->swtpm_user, &ra, err) < 0 ||
	    ov_boot_id(boot_id, sizeof(boot_id), err) < 0)
		return -1;
	ops = ov_backend_ops(rec.backend);
	run = ov_run_dir_open(s->run_dir, true, err);
	if (run < 0)
		return ov_error_wrap(err, "run directory");
	cdir = ov_container_dir_lock(run, st->id, true, err);
	if (cdir < 0)
		return -1;

	if (ov_record_read(cdir, &old, err) == 0) {
		bool alive = record_alive(&old);

		if (!alive)
			stop_all(cdir, s, &old, &cleanup_err);
		ov_record_free(&old);
		if (alive) {
			ov_info("vTPM already running, nothing to do");
			return 0;
		}
		ov_warn("replacing a stale record of a vTPM that is gone");
		/* Empty the directory but keep it: we hold its lock. */
		if (ov_remove_tree_at(run, st->id, err) < 0)
			return -1;
		close(take_fd(&cdir));
		cdir = ov_container_dir_lock(run, st->id, true, err);
		if (cdir < 0)
			return -1;
	} else if (err->code != ENOENT) {
		return ov_error_wrap(err, "existing record");
	}

	rec.id = st->id;
	rec.bundle = st->bundle;
	rec.name = r->name;
	rec.boot_id = boot_id;
	rec.version = r->version;
	for (unsigned i = 0; i < r->count; i++) {
		rec.tpms[i].devnum = -1;
		rec.count = i + 1;
		if (start_one(cdir, i, s, r, ops, &ra, &rec, err) < 0) {
			ov_error_wrap(err, "vTPM %u", i);
			goto undo;
		}
	}
	if (ops->expose(cdir, s, st, sp, &rec, err) < 0)
		goto undo;
	ov_info("started %u %s vTPM%s (%s backend)", rec.count,
		r->version == OV_TPM_2_0 ? "TPM 2.0" : "TPM 1.2", rec.count > 1 ? "s" : "",
		ov_backend_name(rec.backend));
	return 0;
undo:
	stop_all(cdir, s, &rec, &cleanup_err);
	if (remove_dir(s, st->id, &cleanup_err) < 0)
		ov_warn("cleaning up: %s", cleanup_err.msg);
	return ret;
}

int ov_vtpm_stop(const struct ov_settings *s, const char *id, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	struct ov_record rec;
	int ret = 0;

	if (!ov_container_id_valid(id))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", id);
	run = ov_run_dir_open(s->run_dir, false, err);
	if (run < 0)
		return err->code == ENOENT ? 0 : -1;
	cdir = ov_container_dir_lock(run, id, false, err);
	if (cdir < 0)
		return err->code == ENOENT ? 0 : -1;
	if (ov_record_read(cdir, &rec, err) == 0) {
		ret = stop_all(cdir, s, &rec, err);
		ov_record_free(&rec);
		if (ret < 0)
			return -1; /* keep the record: gc can retry */
	} else if (err->code != ENOENT) {
		ov_warn("%s; removing what is left", err->msg);
	}
	if (ov_remove_tree_at(run, id, err) < 0)
		return ov_error_wrap(err, "removing the live state");
	ov_info("vTPM stopped and its live state removed");
	return 0;
}
