/* SPDX-License-Identifier: Apache-2.0 */
/* The stop of a slot's vTPMs (include/oci-vtpm/vtpm.h): swtpm stopped, a
 * named vTPM archived, the slot removed; in the caller, or after it
 * returns in a detached worker (settings stop_async); and gc's collect. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fault.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/launch.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/provision.h"
#include "oci-vtpm/swtpm_blob.h"
#include "oci-vtpm/util.h"
#include "oci-vtpm/vtpm.h"

#include "vtpm_internal.h"

/* The live state of slot id stays for gc: err says so, after what
 * failed. */
static int left_for_gc(const struct ov_settings *s, int run, const char *id, const char *what,
		       ov_error *err)
{
	char path[OV_INSTANCE_PATH_MAX] = "";
	ov_error ignored = {0};

	ov_instance_path(run, id, false, path, sizeof(path), &ignored);
	return ov_error_wrap(err,
			     "%s; the previous generations are intact and the live state stays "
			     "in %s/%s until `oci-vtpm gc` archives it",
			     what, s->run_dir, path);
}

/* Stop, archive and remove the vTPMs of a record; cdir's lock is held,
 * and of a named vTPM the archive's (vdir), from before its swtpm stops. */
static int stop_archive_locked(const struct ov_settings *s, int run, int cdir, int vdir,
			       const char *id, struct ov_record *rec, ov_error *err)
{
	double t0 = ov_util_mono_ms(), t_stop, t_archive, t_end;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	ov_error ignored = {0};
	int ret = 0;

	ov_fault("stop-locked");
	/* Handed to a warm swtpm: its live state is under that swtpm's own
	 * key; take it back while it runs, and after the stop put it where a
	 * cold start's swtpm would have left it. */
	if (rec->state_in_swtpm && rec->name &&
	    (!rec->tpms[0].pid ? ov_error_set(err, ESRCH, "its swtpm is gone (a reboot?)")
			       : ov_provision_take_back(s, cdir, rec, &plain, &plain_len, err)) < 0)
		ret = -1;
	if (ov_launch_stop(cdir, s, rec, ret < 0 ? &ignored : err) < 0)
		ret = -1;
	if (ret == 0 && plain)
		ret = ov_provision_put_back(s, vdir, cdir, rec, plain, plain_len, err);
	ov_swtpm_blob_free(plain, plain_len);
	if (ret < 0 && rec->state_in_swtpm && rec->name) {
		/* Under a key that died with its swtpm: nothing left to archive. */
		ov_error_wrap(
		    err, "the live state of vTPM %s is lost; its previous generations are intact",
		    rec->name);
		ov_instance_release_name(s, rec->name, id);
		if (ov_instance_remove_at(run, id, &ignored) < 0)
			ov_warn("removing the live state of %s failed", id);
		return -1;
	}

	t_stop = ov_util_mono_ms();
	if (ret == 0 && rec->name && rec->count == 0) {
		/* Recorded before its first swtpm ran (its cgroup's name,
		 * ov_launch_start): nothing changed what the archive holds. */
		ov_instance_release_name(s, rec->name, id);
	} else if (ret == 0 && rec->name) {
		/* Stopped: the record says so, whatever comes next. */
		ov_error werr = {0};

		for (unsigned i = 0; i < rec->count; i++)
			rec->tpms[i].pid = 0;
		rec->state_in_swtpm = false; /* put back under the name's key */
		if (ov_record_write(cdir, rec, &werr) < 0)
			ov_warn("%s", werr.msg);
		ov_fault("stop-stopped");
		ret = ov_provision_archive(s, vdir, cdir, rec, err);
		if (ret < 0)
			left_for_gc(s, run, id, "archiving failed", err);
		else
			ov_instance_release_name(s, rec->name, id);
	}
	if (ret < 0)
		return -1; /* keep the record and the state: gc retries */
	ov_fault("stop-archived");
	t_archive = ov_util_mono_ms();
	if (ov_instance_remove_at(run, id, err) < 0)
		return ov_error_wrap(err, "removing the live state");
	t_end = ov_util_mono_ms();
	ov_debug("timing: swtpm stop %.1f ms, archive %.1f ms, remove %.1f ms, stop total %.1f ms",
		 t_stop - t0, t_archive - t_stop, t_end - t_archive, t_end - t0);
	return 0;
}

int ov_vtpm_stop_locked(const struct ov_settings *s, int run, int cdir, const char *id,
			struct ov_record *rec, ov_error *err)
{
	cleanup_close int vdir = -1;

	if (rec->name && rec->count > 0 && (vdir = ov_archive_dir(s, rec->name, true, err)) < 0)
		return left_for_gc(s, run, id, "locking its archive failed", err);
	return stop_archive_locked(s, run, cdir, vdir, id, rec, err);
}

/* The detached worker of a stop (settings stop_async): nothing of its
 * caller's (/dev/null on 0-2: runc and podman wait for a hook's stdout and
 * stderr to close; no fd but the locks it holds and the log), a session of
 * its own; it stops, archives and removes, says a failure in one line of
 * the log, and exits. */
static void __attribute__((noreturn)) stop_worker(const struct ov_settings *s, int run, int cdir,
						  int vdir, const char *id, struct ov_record *rec)
{
	int keep[4] = {run, cdir, vdir, ov_log_detach()};
	ov_error err = {0};
	sigset_t none;
	int devnull;

	/* Nothing of the caller's signal handling (the shim forwards
	 * signals to its runtime). */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	signal(SIGPIPE, SIG_IGN); /* a write to a gone swtpm fails, not kills */
	if (setsid() < 0 || chdir("/") < 0)
		ov_warn("stop worker: %s", strerror(errno));
	prctl(PR_SET_NAME, "ov-stop", 0, 0, 0);
	/* Behind the runtime whose delete is still running: its caller
	 * waits for that, nobody for this but a start of the same name. */
	if (setpriority(PRIO_PROCESS, 0, 10) < 0)
		ov_debug("stop worker: setpriority: %s", strerror(errno));
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
		ov_warn("stop worker: /dev/null: %s", strerror(errno));
	if (ov_proc_close_except(keep, 4, &err) < 0)
		ov_warn("stop worker: %s", err.msg);
	/* A test build's slow disk: a start of the name must wait for us. */
	if (ov_fault_on("stop-slow"))
		sleep(8);
	if (stop_archive_locked(s, run, cdir, vdir, id, rec, &err) < 0) {
		ov_error_log(&err);
		_exit(1);
	}
	ov_info("vTPM stopped and its live state removed");
	_exit(0);
}

/*
 * Stop a named vTPM after the caller returns: under the slot's lock (cdir)
 * and the archive's, taken here and kept by a detached worker until the
 * generation is durable and the slot gone, the record says stopping; the
 * worker does the rest. A start of the same id or name waits for those
 * locks, so it gets the new generation. Where no worker can be made, the
 * stop happens here.
 */
static int stop_detached(const struct ov_settings *s, int run, int cdir, const char *id,
			 struct ov_record *rec, ov_error *err)
{
	double t0 = ov_util_mono_ms();
	cleanup_close int vdir = ov_archive_dir(s, rec->name, true, err);
	pid_t child;
	int status;

	if (vdir < 0)
		return left_for_gc(s, run, id, "locking its archive failed", err);
	rec->stopping = true;
	if (ov_record_write(cdir, rec, err) < 0)
		return left_for_gc(s, run, id, "marking it stopping failed", err);
	child = fork();
	if (child == 0) {
		pid_t worker = fork();

		if (worker > 0)
			_exit(0);
		if (worker < 0) { /* no worker: this child stops it, waited for */
			if (stop_archive_locked(s, run, cdir, vdir, id, rec, err) < 0) {
				ov_error_log(err);
				_exit(1);
			}
			_exit(0);
		}
		stop_worker(s, run, cdir, vdir, id, rec);
	}
	if (child < 0) {
		ov_warn("stopping in the foreground: fork: %s", strerror(errno));
		return stop_archive_locked(s, run, cdir, vdir, id, rec, err);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			break;
	ov_debug("timing: vTPM %s marked stopping, its worker forked in %.1f ms", rec->name,
		 ov_util_mono_ms() - t0);
	return 0;
}

int ov_vtpm_stop(const struct ov_settings *s, const char *id, ov_error *err)
{
	return ov_vtpm_stop_owned(s, id, NULL, 0, false, err);
}

int ov_vtpm_stop_owned(const struct ov_settings *s, const char *id, const char *bundle, pid_t pid,
		       bool detach, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	struct ov_record rec;
	int ret;

	if (!ov_instance_slot_valid(id))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", id);
	run = ov_run_dir_open(s->run_dir, false, err);
	if (run < 0)
		return err->code == ENOENT ? 0 : -1;
	cdir = ov_container_dir_lock(run, id, false, err);
	if (cdir < 0)
		return err->code == ENOENT ? 0 : -1;
	if (ov_record_read(cdir, &rec, err) < 0) {
		if (err->code != ENOENT)
			ov_warn("%s; removing what is left", err->msg);
		if (ov_instance_remove_at(run, id, err) < 0)
			return ov_error_wrap(err, "removing the live state");
		return 0;
	}
	if (ov_instance_owner_check(&rec, bundle, pid, err) < 0) {
		ov_record_free(&rec);
		return ov_error_wrap(err, "left alone");
	}
	if (detach && rec.name && rec.count > 0 && !rec.stopping) {
		ret = stop_detached(s, run, cdir, id, &rec, err);
		ov_record_free(&rec);
		return ret;
	}
	ret = ov_vtpm_stop_locked(s, run, cdir, id, &rec, err);
	ov_record_free(&rec);
	if (ret == 0)
		ov_info("vTPM stopped and its live state removed");
	return ret;
}

int ov_vtpm_collect(const struct ov_settings *s, const char *id, const char *boot_id, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	struct ov_record rec;
	int ret;

	run = ov_run_dir_open(s->run_dir, false, err);
	if (run < 0)
		return -1;
	cdir = ov_container_dir_lock(run, id, false, err);
	if (cdir < 0)
		return err->code == ENOENT ? 0 : -1;
	if (ov_record_read(cdir, &rec, err) < 0) {
		if (err->code != ENOENT)
			return -1; /* unreadable: leave it to an operator */
		/* A start that died before its first record. */
		if (ov_instance_remove_at(run, id, err) < 0)
			return -1;
		return 1;
	}
	if (!rec.boot_id || strcmp(rec.boot_id, boot_id) != 0) {
		/* From before a reboot: its pids name other processes now. */
		for (unsigned i = 0; i < rec.count; i++)
			rec.tpms[i].pid = 0;
	} else if (ov_instance_in_use(&rec)) {
		ov_record_free(&rec);
		return 0;
	}
	ret = ov_vtpm_stop_locked(s, run, cdir, id, &rec, err);
	ov_record_free(&rec);
	return ret < 0 ? -1 : 1;
}

static int collect_precreated(const struct ov_settings *s, const char *name, const char *boot_id)
{
	ov_error err = {0};
	int r = ov_vtpm_collect(s, name, boot_id, &err);

	if (r > 0)
		ov_info("collected %s, started by a precreate stage for a container that never "
			"came",
			name);
	else if (r < 0)
		ov_warn("collecting %s: %s", name, err.msg);
	return r;
}

void ov_vtpm_collect_precreated(const struct ov_settings *s)
{
	ov_instance_each(s, ov_precreated_valid, collect_precreated);
}
