/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/backend.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/manufacture.h"
#include "oci-vtpm/pool.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/swtpm.h"
#include "oci-vtpm/vtpm.h"
#include "oci-vtpm/vtpmx.h"

#define NAMES_DIR "@names" /* not a valid container id */
/* How long vTPMs started before their container wait for it at most, even
 * while the process creating it lives (a long-running podman service whose
 * create failed after its precreate stage). */
#define ADOPT_WINDOW_S 600

/* For the debug-level "timing:" lines of start and stop (make bench). */
static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

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
	/* device wherever /dev/vtpmx exists or modprobe tpm_vtpm_proxy makes it */
	if (ov_vtpmx_available(err) == 0) {
		*out = OV_BACKEND_DEVICE;
		return 0;
	}
	return ov_error_wrap(
	    err,
	    "this kernel has no vtpm_proxy; "
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

static int stop_locked(const struct ov_settings *s, int run, int cdir, const char *id,
		       struct ov_record *rec, ov_error *err);

/* Is the vTPM of this record still running? */
static bool record_alive(const struct ov_record *rec)
{
	return rec->count > 0 && ov_proc_alive(rec->tpms[0].pid, rec->tpms[0].starttime);
}

/* Is it used: its container lives or, started before the container,
 * the process creating the container still does (within ADOPT_WINDOW_S)? */
static bool record_in_use(const struct ov_record *rec)
{
	if (rec->count > 0 && !record_alive(rec))
		return false;
	if (ov_warm_valid(rec->id)) /* waiting for any container */
		return rec->count > 0;
	if (rec->container_pid > 0)
		return ov_proc_alive(rec->container_pid, rec->container_starttime);
	return rec->holder_pid > 0 && ov_proc_alive(rec->holder_pid, rec->holder_starttime) &&
	       time(NULL) - rec->started_at < ADOPT_WINDOW_S;
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
	int64_t waited = (int64_t)mono_ms() - t0;

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
		     const struct runas *ra, const struct ov_key *key, struct ov_record *rec,
		     ov_error *err)
{
	struct ov_record_tpm *t = &rec->tpms[idx];
	cleanup_close int server = -1, ctrl = -1, log = -1, keyfd = -1;
	char name[64], ctrl_path[128], state_dir[64];
	struct ov_swtpm tpm;
	const char *stage = "swtpm did not answer";
	int64_t t0, left;
	int ret;

	/* Relative to the container's directory, swtpm's cwd: the directory
	 * may be renamed under a running swtpm (adopt_token). */
	state_name(idx, state_dir, sizeof(state_dir));
	snprintf(name, sizeof(name), "swtpm-%u.log", idx);
	log = openat(cdirfd, name, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (log < 0)
		return ov_error_set(err, errno, "creating %s", name);

	if (ops->open_channel(cdirfd, idx, r, &server, t, err) < 0)
		return -1;
	ops->ctrl_name(idx, name, sizeof(name));
	ctrl = ov_unix_listen(cdirfd, name, 0600, err);
	if (ctrl < 0)
		return -1;
	keyfd = ov_swtpm_key_pipe(key, err);
	if (keyfd < 0)
		return -1;

	struct ov_swtpm_opts o = {
	    .binary = s->swtpm,
	    .chardev = ops->chardev,
	    .tpm2 = r->version == OV_TPM_2_0,
	    .server_fd = server,
	    .ctrl_fd = ctrl,
	    .log_fd = log,
	    .key_fd = keyfd,
	    .state_dir = state_dir,
	    .dir_fd = cdirfd,
	    .runas = ra->name,
	};
	/* One deadline for all of this TPM's start: swtpm answering, then
	 * what the backend waits for (the hook's own timeout in config.json
	 * counts start_timeout_ms once per TPM). */
	t0 = (int64_t)mono_ms();
	if (ov_swtpm_spawn(&o, &tpm, err) < 0)
		return -1;
	/* swtpm has its copy; ours would keep a dead swtpm's proxy chip alive. */
	close(take_fd(&server));
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
	/* The device backend: the kernel registers the chip only now that
	 * swtpm answers; record the device numbers it gets. */
	left = (int64_t)s->start_timeout_ms - ((int64_t)mono_ms() - t0);
	if (ret == 0 && ops->wait) {
		stage = "the kernel did not register its chip";
		ret = ops->wait(cdirfd, s, r, idx, t, left > 0 ? (int)left : 0, err);
		if (ret == 0)
			ret = ov_record_write(cdirfd, rec, err);
	}
	if (ret < 0) {
		explain_timeout(&tpm, stage, t0, s, r->version == OV_TPM_2_0, err);
		/* Nothing of a failed start is kept: no orderly stop to wait for. */
		ov_swtpm_kill(&tpm);
		t->pid = 0;
	}
	close(tpm.pidfd);
	return ret;
}

/* Make state-0..count-1, owned by the user swtpm runs as; return their fds. */
static int make_state_dirs(int cdirfd, unsigned count, const struct runas *ra, int *fds,
			   ov_error *err)
{
	for (unsigned i = 0; i < count; i++) {
		char name[64];

		state_name(i, name, sizeof(name));
		if (mkdirat(cdirfd, name, 0700) < 0)
			return ov_error_set(err, errno, "creating %s", name);
		if (fchownat(cdirfd, name, ra->uid, ra->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return ov_error_set(err, errno, "chown of %s", name);
		fds[i] = openat(cdirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fds[i] < 0)
			return ov_error_set(err, errno, "opening %s", name);
	}
	return 0;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static int open_state_dirs(int cdirfd, unsigned count, int *fds, ov_error *err)
{
	for (unsigned i = 0; i < count; i++) {
		char name[64];

		state_name(i, name, sizeof(name));
		fds[i] = openat(cdirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fds[i] < 0)
			return ov_error_set(err, errno, "opening %s", name);
	}
	return 0;
}

/*
 * Names: one container per vTPM name at a time. <run_dir>/@names/<name>
 * holds the id of the container using it, written under the archive's lock;
 * it lives on tmpfs, so a reboot frees every name. A claim whose container
 * has no run directory any more is stale and taken over.
 */
static int claim_name(int run, const char *name, const char *id, ov_error *err)
{
	cleanup_close int names = -1;
	cleanup_free char *holder = NULL;

	if (mkdirat(run, NAMES_DIR, 0700) < 0 && errno != EEXIST)
		return ov_error_set(err, errno, "creating the name claims");
	names = openat(run, NAMES_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (names < 0)
		return ov_error_set(err, errno, "opening the name claims");
	if (ov_read_file_at(names, name, OV_ID_MAX + 1, &holder, NULL, err) == 0) {
		struct stat st;

		if (strcmp(holder, id) != 0 && ov_container_id_valid(holder) &&
		    fstatat(run, holder, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return ov_error_set(err, EBUSY, "vTPM %s is in use by container %s", name,
					    holder);
	} else if (err->code != ENOENT) {
		return ov_error_wrap(err, "claim of vTPM %s", name);
	}
	if (ov_write_file_atomic(names, name, id, strlen(id), 0600, err) < 0)
		return ov_error_wrap(err, "claiming vTPM %s", name);
	return 0;
}

static void release_name(const struct ov_settings *s, const char *name, const char *id)
{
	cleanup_close int run = -1, names = -1;
	cleanup_free char *holder = NULL;
	ov_error ignored = {0};

	run = ov_run_dir_open(s->run_dir, false, &ignored);
	if (run < 0)
		return;
	names = openat(run, NAMES_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (names >= 0 &&
	    ov_read_file_at(names, name, OV_ID_MAX + 1, &holder, NULL, &ignored) == 0 &&
	    strcmp(holder, id) == 0)
		unlinkat(names, name, 0);
}

/* ------------------------------------------------ provisioning pool
 * A new EK-certified TPM 2.0 state is taken from the pool (lib/pool.c)
 * where one is ready, else manufactured inline as before. */

/* Why a TPM was not taken from the pool. Without a master key or CA the
 * pool cannot serve (quietly); an empty pool is worth an info line. */
static void pool_fallback(unsigned idx, int r, const ov_error *perr)
{
	if (r < 0)
		ov_warn("vTPM %u: %s; manufacturing it inline", idx, perr->msg);
	else if (perr->code == ENOKEY)
		ov_debug("vTPM %u: not from the pool: %s", idx, perr->msg);
	else
		ov_info("vTPM %u: %s; manufacturing it inline", idx, perr->msg);
}

/* A new named vTPM: its TPM 0 from the pool. The entry's data key becomes
 * the vTPM's (same salt and data key, so the same state key; rewrapped for
 * the name); further TPMs are manufactured inline with that state key.
 * Returns 1 when taken, 0 when not (m, keys untouched), -1 on error. */
static int pool_named(const struct ov_settings *s, const struct ov_request *r, const char *id,
		      const struct runas *ra, int statefd, const struct ov_key *master,
		      struct ov_meta *m, struct ov_vtpm_keys *keys, double *ms, ov_error *err)
{
	struct ov_pool_entry e;
	double t0 = mono_ms();
	ov_error perr = {0};
	int got, ret;

	if (!r->ek_cert || r->version != OV_TPM_2_0)
		return 0;
	got = ov_pool_claim(s, id, 0, statefd, ra->uid, ra->gid, &e, &perr);
	if (got <= 0) {
		pool_fallback(0, got, &perr);
		*ms += mono_ms() - t0;
		return 0;
	}
	ret = ov_meta_rename(&e.meta, &e.master, r->name, master, m, keys, err);
	if (ret == 0)
		ov_info("vTPM %s is new: TPM 0 from the pool (entry %s)", r->name, e.meta.name);
	ov_pool_entry_wipe(&e);
	*ms += mono_ms() - t0;
	return ret < 0 ? -1 : 1;
}

/* Per-TPM state keys of an ephemeral request: taken[i] when TPM i came
 * from the pool with its own key[i]; the others use the random key. */
struct pool_keys {
	bool taken[OV_MAX_TPMS];
	struct ov_key key[OV_MAX_TPMS];
};
static void pool_keys_wipe(struct pool_keys *p)
{
	explicit_bzero(p, sizeof(*p));
}

static void pool_ephemeral(const struct ov_settings *s, const struct ov_request *r, const char *id,
			   const struct runas *ra, const int *statefds, struct pool_keys *pk,
			   double *ms)
{
	double t0 = mono_ms();

	if (!r->ek_cert || r->version != OV_TPM_2_0)
		return;
	for (unsigned i = 0; i < r->count; i++) {
		struct ov_pool_entry e;
		ov_error perr = {0};
		int got = ov_pool_claim(s, id, i, statefds[i], ra->uid, ra->gid, &e, &perr);

		if (got <= 0) {
			pool_fallback(i, got, &perr);
			if (got == 0)
				break; /* no more to be had */
			continue;
		}
		pk->taken[i] = true;
		pk->key[i] = e.keys.state;
		ov_info("vTPM %u from the pool (entry %s)", i, e.meta.name);
		ov_pool_entry_wipe(&e);
	}
	*ms += mono_ms() - t0;
}
/* ------------------------------------------------ end of provisioning pool */

/* Named vTPM at start: claim it, load or create its keys, restore the
 * newest generation into the state directories. */
static int prepare_named(const struct ov_settings *s, int run, const struct ov_request *r,
			 const char *id, const struct runas *ra, const int *statefds,
			 struct ov_key *state_key, double *pool_ms, ov_error *err)
{
	cleanup_close int vdir = -1;
	cleanup_key struct ov_key master = {0};
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	ov_error ignored = {0};
	bool fresh = false;
	int ret = -1;

	vdir = ov_archive_dir(s, r->name, true, err);
	if (vdir < 0)
		return -1;
	if (claim_name(run, r->name, id, err) < 0)
		return -1;
	fresh = faccessat(vdir, "meta.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0;
	if (ov_meta_load(vdir, r->name, NULL, &m, NULL, err) == 0) {
		if (ov_master_key_for(s, m.key_id, &master, err) < 0 ||
		    ov_meta_load(vdir, r->name, &master, &m, &keys, err) < 0)
			goto release;
	} else {
		int pooled;

		if (err->code != ENOENT || ov_master_key_current(s, &master, err) < 0)
			goto release;
		pooled = pool_named(s, r, id, ra, statefds[0], &master, &m, &keys, pool_ms, err);
		if (pooled < 0 || (!pooled && ov_meta_new(r->name, &master, &m, &keys, err) < 0))
			goto release;
		m.version = r->version;
		m.count = r->count;
		if (ov_meta_write(vdir, &m, &keys, err) < 0)
			goto wipe;
	}
	if (m.newest > 0) {
		if (m.version != r->version || m.count > r->count) {
			ov_error_set(
			    err, 0,
			    "vTPM %s was archived as %u TPM %s, the container asks for %u TPM %s",
			    r->name, m.count, m.version == OV_TPM_1_2 ? "1.2" : "2.0", r->count,
			    r->version == OV_TPM_1_2 ? "1.2" : "2.0");
			goto wipe;
		}
		if (ov_archive_load(vdir, &m, &keys, m.newest, statefds, r->count, ra->uid, ra->gid,
				    err) < 0)
			goto wipe;
		ov_info("vTPM %s restored from generation %llu", r->name, m.newest);
	}
	*state_key = keys.state;
	ret = 0;
wipe:
	ov_vtpm_keys_wipe(&keys);
release:
	if (ret < 0) {
		release_name(s, r->name, id);
		/* A first start that failed leaves no empty vTPM behind. */
		if (fresh) {
			cleanup_close int root = ov_archive_root(s, false, &ignored);

			unlinkat(vdir, "meta.json", 0);
			if (root >= 0)
				unlinkat(root, r->name, AT_REMOVEDIR);
		}
	}
	return ret;
}

/* Named vTPM at stop: archive its state as a new generation. */
static int archive_named(const struct ov_settings *s, int cdirfd, const struct ov_record *rec,
			 ov_error *err)
{
	cleanup_close int vdir = -1;
	cleanup_key struct ov_key master = {0};
	int fds[OV_MAX_TPMS];
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	int ret = -1;

	for (unsigned i = 0; i < OV_MAX_TPMS; i++)
		fds[i] = -1;
	vdir = ov_archive_dir(s, rec->name, true, err);
	if (vdir < 0)
		return -1;
	if (ov_meta_load(vdir, rec->name, NULL, &m, NULL, err) < 0 ||
	    ov_master_key_for(s, m.key_id, &master, err) < 0 ||
	    ov_meta_load(vdir, rec->name, &master, &m, &keys, err) < 0)
		return -1;
	if (open_state_dirs(cdirfd, rec->count, fds, err) == 0 &&
	    ov_archive_save(vdir, &m, &keys, fds, rec->count, rec->version, s->keep_generations,
			    err) == 0) {
		ov_info("vTPM %s archived as generation %llu", rec->name, m.newest);
		ret = 0;
	}
	close_fds(fds, rec->count);
	ov_vtpm_keys_wipe(&keys);
	return ret;
}

static int adopt(int cdir, const struct ov_state *st, struct ov_record *rec, ov_error *err)
{
	unsigned long long starttime;

	if (st->pid <= 0 || rec->container_pid == st->pid)
		return 0;
	if (ov_proc_starttime(st->pid, &starttime, err) < 0)
		return ov_error_wrap(err, "container process %d", (int)st->pid);
	rec->container_pid = st->pid;
	rec->container_starttime = starttime;
	return ov_record_write(cdir, rec, err);
}

/*
 * Give the vTPMs started under the run-dir name from (locked: cdir; its
 * record: rec) to container st->id: rename the directory under the running
 * swtpm, whose cwd it is (start_one), pass the name's claim on, rewrite the
 * record. Returns 0; -1 with err->code ENOENT when from was taken by
 * another start first (nothing changed); or -1 (the vTPMs are stopped).
 */
static int move_started(const struct ov_settings *s, int run, int cdir, const char *from,
			const struct ov_state *st, struct ov_record *rec, ov_error *err)
{
	struct ov_record moved = *rec;
	ov_error ignored = {0};
	struct stat held, named;

	/* The lock was waited for: is cdir still <run_dir>/<from>? */
	if (fstat(cdir, &held) < 0 || fstatat(run, from, &named, AT_SYMLINK_NOFOLLOW) < 0 ||
	    held.st_dev != named.st_dev || held.st_ino != named.st_ino)
		return ov_error_set(err, ENOENT, "%s was taken by another start", from);
	/* Whose it is now: the container, or the process creating it. */
	if (st->pid > 0 && ov_proc_starttime(st->pid, &moved.container_starttime, err) < 0)
		return ov_error_wrap(err, "container process %d", (int)st->pid);
	if (st->pid <= 0 && st->holder > 0 &&
	    ov_proc_starttime(st->holder, &moved.holder_starttime, err) < 0)
		return ov_error_wrap(err, "the process creating the container (%d)",
				     (int)st->holder);
	if (renameat2(run, from, run, st->id, RENAME_NOREPLACE) < 0)
		return ov_error_set(err, errno, "giving the vTPM %s to the container", from);
	moved.id = st->id;
	moved.bundle = st->bundle;
	if (st->pid > 0) {
		moved.container_pid = st->pid;
	} else if (st->holder > 0) {
		moved.holder_pid = st->holder;
		moved.started_at = time(NULL);
	}
	if ((rec->name && claim_name(run, rec->name, st->id, err) < 0) ||
	    ov_record_write(cdir, &moved, err) < 0) {
		/* Half moved: stop it rather than leave a vTPM nobody owns. */
		if (stop_locked(s, run, cdir, st->id, rec, &ignored) < 0)
			ov_warn("undoing the adoption of %s: %s", from, ignored.msg);
		return ov_error_wrap(err, "adopting the vTPM %s", from);
	}
	return 0;
}

/*
 * podman's precreate stage started the vTPMs under a name of their own
 * (pre, r->precreated) before the container had an id: give them the
 * container's. Returns the locked directory, or -1. Adopted already
 * (createRuntime, then prestart): the container's own directory.
 */
static int adopt_precreated(const struct ov_settings *s, int run, const char *pre,
			    const struct ov_state *st, ov_error *err)
{
	cleanup_close int cdir = -1;
	struct ov_record rec;
	struct stat sb;
	int ret;

	if (fstatat(run, st->id, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return ov_container_dir_lock(run, st->id, false, err);
	cdir = ov_container_dir_lock(run, pre, false, err);
	if (cdir < 0)
		return err->code == ENOENT
			   ? ov_error_set(err, ENOENT,
					  "the vTPM podman's precreate stage started for this "
					  "container (%s) is gone",
					  pre)
			   : -1;
	if (ov_record_read(cdir, &rec, err) < 0)
		return ov_error_wrap(err, "the vTPM started by the precreate stage (%s)", pre);
	if (strcmp(rec.id, pre) != 0 || rec.container_pid != 0 || !record_alive(&rec)) {
		ov_record_free(&rec);
		return ov_error_set(
		    err, 0, "the vTPM started by the precreate stage (%s) is not running", pre);
	}
	ret = move_started(s, run, cdir, pre, st, &rec, err);
	ov_record_free(&rec);
	if (ret < 0)
		return -1;
	ov_debug("adopted the vTPM started by the precreate stage as %s", pre);
	return take_fd(&cdir);
}

/* Can a warm vTPM serve this start? Warm vTPMs are of the host's default
 * kind: one ephemeral TPM 2.0, EK-certified when the settings' ek_cert
 * says so. For a container (not for a warm vTPM being made), with warm
 * ones configured. */
static bool warm_eligible(const struct ov_settings *s, const struct ov_state *st,
			  const struct ov_request *r)
{
	return s->warm_size > 0 && !r->name && r->count == 1 && r->version == OV_TPM_2_0 &&
	       r->ek_cert == s->ek_cert && !r->precreated && !ov_warm_valid(st->id);
}

/* Is rec a warm vTPM of the kind this host's settings make now? (Its
 * backend is compared where it is taken: after a change of the settings'
 * backend, `pool drain` replaces the old ones.) */
static bool warm_kind(const struct ov_settings *s, const struct ov_record *rec)
{
	return rec->count == 1 && rec->version == OV_TPM_2_0 && rec->ek_cert == s->ek_cert &&
	       !rec->name;
}

/*
 * Take a warm vTPM (`oci-vtpm pool fill`, warm_size: started ahead, idle,
 * never used) for container st->id: the first live one of the backend
 * asked for, moved to the id. Returns its locked directory, or -1 with
 * err->code ENOENT when none is ready (nothing changed).
 */
static int claim_warm(const struct ov_settings *s, int run, const struct ov_state *st,
		      enum ov_backend backend, ov_error *err)
{
	cleanup_dir DIR *d = ov_opendir_at(run, ".");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		cleanup_close int cdir = -1;
		struct ov_record rec;
		ov_error e = {0};
		int ret = -1;

		if (!ov_warm_valid(de->d_name))
			continue;
		cdir = ov_container_dir_lock(run, de->d_name, false, &e);
		if (cdir < 0 || ov_record_read(cdir, &rec, &e) < 0)
			continue;
		if (strcmp(rec.id, de->d_name) == 0 && rec.backend == backend &&
		    warm_kind(s, &rec) && rec.container_pid == 0 && record_alive(&rec))
			ret = move_started(s, run, cdir, de->d_name, st, &rec, &e);
		ov_record_free(&rec);
		if (ret == 0) {
			ov_debug("took the warm vTPM %s", de->d_name);
			return take_fd(&cdir);
		}
		if (e.code != 0 && e.code != ENOENT)
			ov_warn("warm vTPM %s: %s", de->d_name, e.msg);
	}
	return ov_error_set(err, ENOENT, "no warm vTPM ready");
}

/* A warm vTPM now in cdir: record the container and place it in it. */
static int start_warm(const struct ov_settings *s, int run, int cdir, const struct ov_state *st,
		      const struct ov_spec *sp, const struct ov_backend_ops *ops, double t0,
		      ov_error *err)
{
	struct ov_record rec;
	ov_error ignored = {0};
	double t_claim = mono_ms(), t_end;

	if (ov_record_read(cdir, &rec, err) < 0)
		return ov_error_wrap(err, "the warm vTPM");
	if (adopt(cdir, st, &rec, err) < 0 || ops->expose(cdir, s, st, sp, &rec, err) < 0) {
		if (stop_locked(s, run, cdir, st->id, &rec, &ignored) < 0)
			ov_warn("cleaning up: %s", ignored.msg);
		ov_record_free(&rec);
		return -1;
	}
	t_end = mono_ms();
	ov_debug("timing: setup %.1f ms, restore 0.0 ms, pool 0.0 ms, manufacture 0.0 ms, swtpm "
		 "ready 0.0 ms, expose %.1f ms, start total %.1f ms",
		 t_claim - t0, t_end - t_claim, t_end - t0);
	ov_info("started 1 TPM 2.0 vTPM (%s backend), warm%s", ov_backend_name(rec.backend),
		rec.ek_cert ? ", EK-certified" : "");
	ov_record_free(&rec);
	return 0;
}

/* EK certificates: manufacture every TPM whose state is fresh (nothing was
 * restored into it) before its swtpm starts. */
static int manufacture_fresh(const struct ov_settings *s, const char *id,
			     const struct ov_request *r, const struct runas *ra,
			     const int *statefds, const struct ov_key *key, ov_error *err)
{
	for (unsigned i = 0; i < r->count; i++) {
		char dir[4200];

		if (!ov_tpm_state_fresh(statefds[i]))
			continue;
		if (snprintf(dir, sizeof(dir), "%s/%s/state-%u", s->run_dir, id, i) >=
		    (int)sizeof(dir))
			return ov_error_set(err, ENAMETOOLONG, "state directory");
		if (ov_manufacture(s, r->version, dir, key, true, ra->uid, ra->gid, err) < 0)
			return ov_error_wrap(err, "vTPM %u", i);
	}
	return 0;
}

int ov_vtpm_start(const struct ov_settings *s, const struct ov_state *st, const struct ov_spec *sp,
		  const struct ov_request *r, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	cleanup_key struct ov_key key = {0};
	__attribute__((cleanup(pool_keys_wipe))) struct pool_keys pk = {0};
	double t0 = mono_ms(), t_dirs = 0, t_keys = 0, t_pool = 0, t_mfg = 0, t_swtpm = 0;
	const struct ov_backend_ops *ops;
	struct ov_record rec = {0}, old;
	int statefds[OV_MAX_TPMS];
	char boot_id[64];
	struct runas ra;
	ov_error cleanup_err = {0};
	int ret = -1;

	for (unsigned i = 0; i < OV_MAX_TPMS; i++)
		statefds[i] = -1;
	if (!ov_container_id_valid(st->id))
		return ov_error_set(err, EINVAL, "invalid container id \"%.64s\"", st->id);
	if (ov_vtpm_resolve_backend(r, &rec.backend, err) < 0 ||
	    lookup_user(s->swtpm_user, &ra, err) < 0 ||
	    ov_boot_id(boot_id, sizeof(boot_id), err) < 0)
		return -1;
	ops = ov_backend_ops(rec.backend);
	run = ov_run_dir_open(s->run_dir, true, err);
	if (run < 0)
		return ov_error_wrap(err, "run directory");
	if (r->precreated && st->pid > 0) {
		cdir = adopt_precreated(s, run, r->precreated, st, err);
	} else {
		if (warm_eligible(s, st, r) &&
		    faccessat(run, st->id, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			cdir = claim_warm(s, run, st, rec.backend, err);
			if (cdir >= 0)
				return start_warm(s, run, cdir, st, sp, ops, t0, err);
			ov_debug("%s; starting one", err->msg);
		}
		cdir = ov_container_dir_lock(run, st->id, true, err);
	}
	if (cdir < 0)
		return -1;

	if (ov_record_read(cdir, &old, err) == 0) {
		bool alive = record_alive(&old);

		if (alive) {
			/* Made before the container existed (the shim's create, or
			 * createRuntime before prestart): adopt it, and record the
			 * container so gc knows it is in use. */
			int adopted = adopt(cdir, st, &old, err);

			ov_record_free(&old);
			if (adopted == 0)
				ov_info("vTPM already running, nothing to do");
			return adopted;
		}
		/* An earlier container with this id (runtimes reuse ids)
		 * whose stop did not finish: a named vTPM's live state is
		 * archived first, like gc does, or the start is refused. */
		if (stop_locked(s, run, cdir, st->id, &old, err) < 0) {
			if (old.name)
				ov_error_wrap(err,
					      "vTPM %s of an earlier container with this id "
					      "could not be archived; start refused",
					      old.name);
			ov_record_free(&old);
			return -1;
		}
		ov_record_free(&old);
		ov_warn("replaced a stale record of a vTPM that is gone");
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
	rec.ek_cert = r->ek_cert;
	if (st->pid > 0 && ov_proc_starttime(st->pid, &rec.container_starttime, err) == 0)
		rec.container_pid = st->pid;
	if (st->pid <= 0 && st->holder > 0) {
		if (ov_proc_starttime(st->holder, &rec.holder_starttime, err) < 0) {
			ov_error_wrap(err, "the process creating the container (%d)",
				      (int)st->holder);
			goto undo;
		}
		rec.holder_pid = st->holder;
		rec.started_at = time(NULL);
	}
	if (make_state_dirs(cdir, r->count, &ra, statefds, err) < 0)
		goto undo;
	t_dirs = mono_ms();
	if (r->name) {
		if (prepare_named(s, run, r, st->id, &ra, statefds, &key, &t_pool, err) < 0)
			goto undo;
	} else if (ov_random(key.b, sizeof(key.b), err) < 0) {
		goto undo;
	} else {
		pool_ephemeral(s, r, st->id, &ra, statefds, &pk, &t_pool);
	}
	t_keys = mono_ms();
	if (r->ek_cert && manufacture_fresh(s, st->id, r, &ra, statefds, &key, err) < 0)
		goto undo_named;
	t_mfg = mono_ms();
	for (unsigned i = 0; i < r->count; i++) {
		rec.tpms[i].devnum = -1;
		rec.count = i + 1;
		if (start_one(cdir, i, s, r, ops, &ra, pk.taken[i] ? &pk.key[i] : &key, &rec, err) <
		    0) {
			ov_error_wrap(err, "vTPM %u", i);
			goto undo_named;
		}
	}
	t_swtpm = mono_ms();
	if (ops->expose(cdir, s, st, sp, &rec, err) < 0)
		goto undo_named;
	{
		double t_end = mono_ms();

		ov_debug("timing: setup %.1f ms, restore %.1f ms, pool %.1f ms, manufacture %.1f "
			 "ms, swtpm ready %.1f ms, expose %.1f ms, start total %.1f ms",
			 t_dirs - t0, t_keys - t_dirs - t_pool, t_pool, t_mfg - t_keys,
			 t_swtpm - t_mfg, t_end - t_swtpm, t_end - t0);
	}
	ov_info("started %u %s vTPM%s (%s backend)%s%s", rec.count,
		r->version == OV_TPM_2_0 ? "TPM 2.0" : "TPM 1.2", rec.count > 1 ? "s" : "",
		ov_backend_name(rec.backend), r->name ? ", name " : "", r->name ? r->name : "");
	close_fds(statefds, r->count);
	return 0;
undo_named:
	/* The archive is untouched: nothing of this start is kept. */
	if (r->name)
		release_name(s, r->name, st->id);
undo:
	close_fds(statefds, r->count);
	stop_all(cdir, s, &rec, &cleanup_err);
	if (remove_dir(s, st->id, &cleanup_err) < 0)
		ov_warn("cleaning up: %s", cleanup_err.msg);
	return ret;
}

/* Stop, archive and remove the vTPMs of a record; cdir's lock is held. */
static int stop_locked(const struct ov_settings *s, int run, int cdir, const char *id,
		       struct ov_record *rec, ov_error *err)
{
	double t0 = mono_ms(), t_stop, t_archive;
	int ret = stop_all(cdir, s, rec, err);

	t_stop = mono_ms();

	if (ret == 0 && rec->name) {
		/* Stopped: the record says so, whatever comes next. */
		ov_error werr = {0};

		for (unsigned i = 0; i < rec->count; i++)
			rec->tpms[i].pid = 0;
		if (ov_record_write(cdir, rec, &werr) < 0)
			ov_warn("%s", werr.msg);
		ret = archive_named(s, cdir, rec, err);
		if (ret < 0)
			ov_error_wrap(err,
				      "archiving failed; the previous generations are intact "
				      "and the live state stays in %s/%s until `oci-vtpm gc` "
				      "archives it",
				      s->run_dir, id);
		else
			release_name(s, rec->name, id);
	}
	if (ret < 0)
		return -1; /* keep the record and the state: gc retries */
	t_archive = mono_ms();
	if (ov_remove_tree_at(run, id, err) < 0)
		return ov_error_wrap(err, "removing the live state");
	{
		double t_end = mono_ms();

		ov_debug("timing: swtpm stop %.1f ms, archive %.1f ms, remove %.1f ms, stop total "
			 "%.1f ms",
			 t_stop - t0, t_archive - t_stop, t_end - t_archive, t_end - t0);
	}
	return 0;
}

int ov_vtpm_stop(const struct ov_settings *s, const char *id, ov_error *err)
{
	cleanup_close int run = -1, cdir = -1;
	struct ov_record rec;
	int ret;

	if (!ov_container_id_valid(id))
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
		if (ov_remove_tree_at(run, id, err) < 0)
			return ov_error_wrap(err, "removing the live state");
		return 0;
	}
	ret = stop_locked(s, run, cdir, id, &rec, err);
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
		if (ov_remove_tree_at(run, id, err) < 0)
			return -1;
		return 1;
	}
	if (!rec.boot_id || strcmp(rec.boot_id, boot_id) != 0) {
		/* From before a reboot: its pids name other processes now. */
		for (unsigned i = 0; i < rec.count; i++)
			rec.tpms[i].pid = 0;
	} else if (record_in_use(&rec)) {
		ov_record_free(&rec);
		return 0;
	}
	ret = stop_locked(s, run, cdir, id, &rec, err);
	ov_record_free(&rec);
	return ret < 0 ? -1 : 1;
}

int ov_vtpm_new_name(const char *prefix, char *buf, size_t size, ov_error *err)
{
	unsigned char rnd[16];
	size_t n = strlen(prefix);

	if (size < n + 2 * sizeof(rnd) + 1)
		return ov_error_set(err, ENAMETOOLONG, "vTPM name");
	if (ov_random(rnd, sizeof(rnd), err) < 0)
		return -1;
	memcpy(buf, prefix, n);
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(buf + n + 2 * i, 3, "%02x", rnd[i]);
	return 0;
}

/* Calls fn for every run-dir entry whose name passes valid; returns how
 * many it returned > 0 for. */
static unsigned each_entry(const struct ov_settings *s, bool (*valid)(const char *),
			   int (*fn)(const struct ov_settings *, const char *, const char *))
{
	cleanup_close int run = -1;
	cleanup_dir DIR *d = NULL;
	ov_error err = {0};
	char boot_id[64];
	struct dirent *de;
	unsigned n = 0;

	run = ov_run_dir_open(s->run_dir, false, &err);
	if (run < 0 || ov_boot_id(boot_id, sizeof(boot_id), &err) < 0 ||
	    !(d = ov_opendir_at(run, ".")))
		return 0;
	while ((de = readdir(d)))
		if (valid(de->d_name) && fn(s, de->d_name, boot_id) > 0)
			n++;
	return n;
}

static unsigned each_warm(const struct ov_settings *s,
			  int (*fn)(const struct ov_settings *, const char *, const char *))
{
	return each_entry(s, ov_warm_valid, fn);
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
	each_entry(s, ov_precreated_valid, collect_precreated);
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
	bool ready;

	cdir = run < 0 ? -1 : openat(run, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cdir < 0 || ov_record_read(cdir, &rec, &err) < 0)
		return 0;
	ready = rec.boot_id && strcmp(rec.boot_id, boot_id) == 0 && rec.container_pid == 0 &&
		warm_kind(s, &rec) && record_alive(&rec);
	ov_record_free(&rec);
	return ready;
}

unsigned ov_vtpm_warm_count(const struct ov_settings *s)
{
	return each_warm(s, warm_ready);
}

int ov_vtpm_warm_fill(const struct ov_settings *s, unsigned target, unsigned *ready, unsigned *made,
		      ov_error *err)
{
	*made = 0;
	each_warm(s, warm_collect);
	*ready = each_warm(s, warm_ready);
	while (*ready < target) {
		char name[64];
		struct ov_spec sp = {0};
		struct ov_request r = {.enable = true,
				       .count = 1,
				       .version = OV_TPM_2_0,
				       .ek_cert = s->ek_cert,
				       .backend = s->backend};
		struct ov_state st = {
		    .id = name, .bundle = (char *)"/", .status = (char *)"created"};

		if (ov_vtpm_new_name(OV_WARM_PREFIX, name, sizeof(name), err) < 0 ||
		    ov_vtpm_start(s, &st, &sp, &r, err) < 0)
			return ov_error_wrap(err, "starting a warm vTPM");
		(*ready)++;
		(*made)++;
	}
	return 0;
}

unsigned ov_vtpm_warm_drain(const struct ov_settings *s)
{
	return each_warm(s, warm_stop);
}
