/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A vTPM's slot in the run dir. <run_dir>/<id>/ holds the record, the
 * state directories (state-<i>), the sockets and the logs of the vTPMs of
 * one container; the directory is their lock (store.h). A slot is named by
 * the container's id, or, for vTPMs started before their container, by
 * OV_WARM_PREFIX or OV_PRECREATED_PREFIX and 32 random hex digits until a
 * container takes them over (one rename, under the running swtpm).
 *
 * Name claims: one container per vTPM name at a time. <run_dir>/@names/
 * <name> holds the id of the slot using it, written under the archive's
 * lock; it lives on tmpfs, so a reboot frees every name. A claim whose slot
 * is gone is stale and taken over.
 */
#ifndef OCI_VTPM_INSTANCE_H
#define OCI_VTPM_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/util.h"

#define OV_INSTANCE_NAMES_DIR "@names" /* not a valid container id */
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

/* Record holder (> 0) as the process whose life keeps the slot in use
 * until a container is recorded (rec is not written). */
int ov_instance_hold(struct ov_record *rec, pid_t holder, ov_error *err);
/* Record container (its init, > 0) as the slot's user and write rec to
 * cdirfd; nothing to do when it is recorded already. */
int ov_instance_adopt(int cdirfd, pid_t container, struct ov_record *rec, ov_error *err);

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
 * it). */
int ov_instance_remove(const struct ov_settings *s, const char *id, ov_error *err);

/* Call fn(s, name, boot_id) for every slot whose name passes valid;
 * returns how many calls returned > 0. Best effort: an unreadable run dir
 * is none. */
unsigned ov_instance_each(const struct ov_settings *s, bool (*valid)(const char *),
			  int (*fn)(const struct ov_settings *, const char *, const char *));

/* Does the record of a slot of run dir run name the cgroup name (gc)? */
bool ov_instance_cgroup_recorded(int run, const char *name);

/* The vTPMs (swtpm processes) running in the slots of run dir run other
 * than except (settings max_vtpms). */
unsigned ov_instance_count_tpms(int run, const char *except);

#endif
