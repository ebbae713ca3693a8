/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The run dir, one subdirectory per kind of entry (all on one file system:
 * a slot changes kind by one rename, under its running swtpm):
 *
 *   containers/<id>/    a container's slot, named by its id
 *   warm/<hex>/         a warm vTPM waiting for any container (warm.h)
 *   precreated/<hex>/   vTPMs podman's precreate stage started before their
 *                       container had an id (io.oci-vtpm.precreated)
 *   names/<name>        name claims (below)
 *   pool/               work directories of `oci-vtpm pool fill` (pool.h)
 *
 * A slot holds the record, the state directories (state-<i>), the sockets
 * and the logs of the vTPMs of one container; the directory is their lock
 * (store.h). A slot is named by the container's id, or, for vTPMs started
 * before their container, by OV_WARM_PREFIX or OV_PRECREATED_PREFIX and 32
 * random hex digits ("warm/<hex>": a '/' no container id has) until a
 * container takes them over (one rename). Container ids and the run dir's
 * own entries never share a directory: any valid id is a container's.
 *
 * Name claims: one container per vTPM name at a time. names/<name> holds
 * the slot name using it, written under the archive's lock; it lives on
 * tmpfs, so a reboot frees every name. A claim whose slot is gone is stale
 * and taken over.
 */
#ifndef OCI_VTPM_INSTANCE_H
#define OCI_VTPM_INSTANCE_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/util.h"

#define OV_INSTANCE_CONTAINERS_DIR "containers"
#define OV_INSTANCE_WARM_DIR	   "warm"
#define OV_INSTANCE_PRECREATED_DIR "precreated"
#define OV_INSTANCE_NAMES_DIR	   "names"
#define OV_INSTANCE_POOL_DIR	   "pool"
#define OV_INSTANCE_UIDS_DIR	   "uids" /* swtpm_uid_range claims */
/* Slot names of vTPMs started before their container: the prefix and 32
 * random hex digits. Precreated ones wait for the container that asked
 * (io.oci-vtpm.precreated); warm ones for any that asks for a plain
 * ephemeral TPM 2.0 (`oci-vtpm pool fill`, warm_size). */
#define OV_PRECREATED_PREFIX OV_INSTANCE_PRECREATED_DIR "/"
#define OV_WARM_PREFIX	     OV_INSTANCE_WARM_DIR "/"
/* The longest slot path relative to the run dir, with its '\0'. */
#define OV_INSTANCE_PATH_MAX (sizeof(OV_INSTANCE_CONTAINERS_DIR "/") + OV_ID_MAX)

bool ov_precreated_valid(const char *slot);
bool ov_warm_valid(const char *slot);
/* A container id, a warm or a precreated slot name. */
bool ov_instance_slot_valid(const char *slot);
/* The path of slot relative to the run dir ("containers/<id>",
 * "warm/<hex>", ...) in buf (OV_INSTANCE_PATH_MAX); -1 (EINVAL) for an
 * invalid slot name. With create, its kind's directory is made first
 * (0711: swtpm reaches its state directory inside by name). */
int ov_instance_path(int run, const char *slot, bool create, char *buf, size_t size, ov_error *err);

/* The slot that path (relative to the run dir: "<kind>/<name>") is, in
 * place: false when it is none. */
bool ov_instance_slot_of(char *path);

/* slot as one file name ('/' as ':', which no container id has) for files
 * named by slot elsewhere (pool claims); ov_instance_unflat: back. */
void ov_instance_flat(const char *slot, char *buf, size_t size);
void ov_instance_unflat(char *name);

/* Every slot of the run dir (run), by slot name, kind after kind (only
 * set: the slots in that kind's directory, e.g. OV_INSTANCE_WARM_DIR):
 *   struct ov_instance_iter it = {0};
 *   while ((slot = ov_instance_next(run, &it))) ...
 *   ov_instance_iter_end(&it);   (or cleanup_instance_iter) */
struct ov_instance_iter {
	const char *only;
	unsigned kind;
	DIR *d;
	char slot[OV_INSTANCE_PATH_MAX];
};
const char *ov_instance_next(int run, struct ov_instance_iter *it);
void ov_instance_iter_end(struct ov_instance_iter *it);
#define cleanup_instance_iter __attribute__((cleanup(ov_instance_iter_end)))
/* As ov_instance_next, skipping the slots whose record does not read; the
 * record goes to rec (ov_record_free it). */
const char *ov_instance_next_record(int run, struct ov_instance_iter *it, struct ov_record *rec);

/* How long vTPMs started before their container wait for it at most, even
 * while the process creating it lives (a long-running podman service whose
 * create failed after its precreate stage). */
#define OV_INSTANCE_ADOPT_WINDOW_S 600

/* A new slot name: prefix and 32 random hex digits. */
int ov_instance_new_name(const char *prefix, char *buf, size_t size, ov_error *err);

/* "state-<idx>": TPM idx's state directory, relative to the slot. */
void ov_instance_state_name(unsigned idx, char *buf, size_t size);
/* Open state-0..count-1 into fds; with create, make them first (0700,
 * owned by u, the user swtpm runs as). On failure the fds opened so far
 * are in fds (-1 the others): close them with ov_instance_close_fds. */
int ov_instance_state_dirs(int cdirfd, unsigned count, const struct ov_user *u, bool create,
			   int *fds, ov_error *err);
void ov_instance_close_fds(int *fds, unsigned n);

/* Is TPM 0 of this record still running? */
bool ov_instance_alive(const struct ov_record *rec);
/* Is it used: a warm vTPM that runs, a container that lives or, for vTPMs
 * started before their container, the process creating it (within
 * OV_INSTANCE_ADOPT_WINDOW_S)? */
bool ov_instance_in_use(const struct ov_record *rec);

/*
 * Is rec the record of the container of bundle (NULL: not known) whose init
 * is pid (0: not known)? Records are keyed by container id alone, and two
 * runtime roots (runc --root A, --root B) may each run a container with the
 * same id: a record whose bundle is another directory, or whose container
 * is another live process, is not this container's. Returns 0, or -1 with
 * err->code EBUSY and a line naming the owner.
 */
int ov_instance_owner_check(const struct ov_record *rec, const char *bundle, pid_t pid,
			    ov_error *err);

/* The record of slot id in run_dir, read under its lock; err->code
 * ENOENT: none. */
int ov_instance_read(const char *run_dir, const char *id, struct ov_record *rec, ov_error *err);

/* Record holder (> 0) as the process whose life keeps the slot in use
 * until a container is recorded (rec is not written). */
int ov_instance_hold(struct ov_record *rec, pid_t holder, ov_error *err);
/* Record container (its init, > 0) as the slot's user and write rec to
 * cdirfd; nothing to do when it is recorded already. */
int ov_instance_adopt(int cdirfd, pid_t container, struct ov_record *rec, ov_error *err);
/* The same, and (both given) the runtime that runs it and its --root
 * (struct ov_record's runtime, runtime_root); written once. */
int ov_instance_adopt_runtime(int cdirfd, pid_t container, const char *runtime, const char *root,
			      struct ov_record *rec, ov_error *err);

/*
 * Give the running vTPMs of slot from (locked: cdirfd; its record: rec)
 * the slot name to (its record: bundle, held by holder, 0: none): rename
 * the directory under the running swtpm, whose cwd it is, pass the name's
 * claim on, rewrite the record (its cgroup, named by the record's token,
 * stays). Returns 0; or -1: with *moved false nothing changed (err->code
 * ENOENT: from was taken by another start first), with *moved true the
 * slot is half moved (now named to) and the caller must stop it.
 */
int ov_instance_move(int run, int cdirfd, const char *from, const char *to, const char *bundle,
		     pid_t holder, const struct ov_record *rec, bool *moved, ov_error *err);

/* Claim name for slot id; EBUSY when another live slot holds it. */
int ov_instance_claim_name(int run, const char *name, const char *id, ov_error *err);
/* Drop id's claim of name (another slot's claim is left alone). */
void ov_instance_release_name(const struct ov_settings *s, const char *name, const char *id);
/* Is name claimed by a slot that is still there? Its id goes to holder. */
bool ov_instance_name_holder(const struct ov_settings *s, const char *name, char *holder,
			     size_t size);
/* Remove the claims whose slot is gone (gc). */
void ov_instance_gc_names(const struct ov_settings *s);

/* Remove slot id (its lock may be held: the directory goes, the lock with
 * it), and free its uid (swtpm_uid_range). ov_instance_remove_at: in the
 * run dir run. */
int ov_instance_remove(const struct ov_settings *s, const char *id, ov_error *err);
int ov_instance_remove_at(int run, const char *id, ov_error *err);
/* Is there a slot id in the run dir run? */
bool ov_instance_exists(int run, const char *id);

/*
 * The user the swtpm processes of slot id run as. Without a
 * swtpm_uid_range: swtpm_user. With one: a uid of the range (gid the same
 * number) that no other slot holds, so that a swtpm compromised through a
 * libtpms bug cannot signal other vTPMs' swtpm or open their state. The
 * claim is <run_dir>/uids/<uid> holding id, made under a lock of that
 * directory; a claim whose slot is gone is free. It follows the slot
 * when it is renamed (ov_instance_move) and goes with ov_instance_remove.
 */
int ov_instance_user(const struct ov_settings *s, int run, const char *id, struct ov_user *u,
		     ov_error *err);
/* Remove the uid claims whose slot is gone (gc). */
void ov_instance_gc_uids(const struct ov_settings *s);

/* Call fn(s, name, boot_id) for every slot whose name passes valid;
 * returns how many calls returned > 0. Best effort: an unreadable run dir
 * is none. */
unsigned ov_instance_each(const struct ov_settings *s, bool (*valid)(const char *),
			  int (*fn)(const struct ov_settings *, const char *, const char *));

/* Does the record of a slot of run dir run name the cgroup name (gc)? */
bool ov_instance_cgroup_recorded(int run, const char *name);

/* Settings max_vtpms (0: no limit): claim count vTPMs for the start of id
 * (its slot cdir, locked), or fail naming the limit. Under one lock of the
 * run dir, the vTPMs of every other slot are
 * counted (a record naming a live swtpm, else a claim of a start still
 * running) and this one's claim is written into its slot: starts at once
 * cannot all pass the count before any of them is recorded. */
int ov_instance_reserve_tpms(int run, int cdir, const char *id, unsigned count, unsigned max,
			     ov_error *err);

#endif
