/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the oci-vtpm admin tool does. Every function returns data and never
 * prints: the CLI (cli/) formats it. Errors follow error.h; where a
 * function does several steps, its result holds what was done before a
 * failure, so the caller can report both.
 */
#ifndef OCI_VTPM_ADMIN_H
#define OCI_VTPM_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/pool.h"
#include "oci-vtpm/store.h"

#define OV_ADMIN_NAME_MAX 128 /* ov_name_valid */
#define OV_ADMIN_PATH_MAX 4200

/* ----------------------------------------------------------- init */

enum ov_admin_key_origin {
	OV_ADMIN_KEY_CREATED,	 /* made now */
	OV_ADMIN_KEY_KEPT,	 /* there already: never overwritten */
	OV_ADMIN_KEY_CREDENTIAL, /* a systemd credential: used, nothing made */
};

struct ov_admin_init {
	bool have_key; /* the key step succeeded: the three fields below */
	enum ov_admin_key_origin key_origin;
	char key_path[OV_ADMIN_PATH_MAX];
	char key_id[OV_KEY_ID_LEN + 1];
	bool have_ca;	 /* the CA step succeeded */
	bool ca_created; /* made now (else an existing CA, kept) */
	char ca_desc[512];
};

/* Create the master key and the host CA where missing (never overwrites). */
int ov_admin_init(const struct ov_settings *s, struct ov_admin_init *r, ov_error *err);

/* --------------------------------------------------- archived vTPMs */

struct ov_admin_gen {
	unsigned long long gen;
	int64_t size;	  /* bytes */
	int64_t archived; /* mtime, seconds since the epoch */
	int verified;	  /* ov_admin_inspect: 1 or 0 (error says why); list: -1 */
	char *error;
};

struct ov_admin_vtpm {
	char name[OV_ADMIN_NAME_MAX + 1];
	char *meta_error; /* meta.json unreadable: why; the four below unset */
	unsigned long long newest;
	enum ov_tpm_version version;
	unsigned count;
	char key_id[OV_KEY_ID_LEN + 1];
	struct ov_admin_gen *gens; /* oldest first */
	size_t n_gens;
	int64_t size;		       /* of all generations */
	char in_use_by[OV_ID_MAX + 1]; /* "" when no container uses it */
	/* ov_admin_inspect only: */
	char *verify_error; /* the metadata or key did not check: why */
	unsigned bad;	    /* generations that did not verify */
};

void ov_admin_vtpm_clear(struct ov_admin_vtpm *v);
void ov_admin_vtpms_free(struct ov_admin_vtpm *v, size_t n);

/* Every archived vTPM, sorted by name (none: *n = 0). Free with
 * ov_admin_vtpms_free. */
int ov_admin_list(const struct ov_settings *s, struct ov_admin_vtpm **list, size_t *n,
		  ov_error *err);

/* One vTPM, every generation verified with this host's master key. Returns
 * 0 when the vTPM exists, whatever the verification says (verify_error,
 * bad, gens[].verified). Clear v with ov_admin_vtpm_clear. */
int ov_admin_inspect(const struct ov_settings *s, const char *name, struct ov_admin_vtpm *v,
		     ov_error *err);

/* The newest generation, still encrypted and authenticated, into path
 * (written atomically, mode 0600). */
int ov_admin_export(const struct ov_settings *s, const char *name, const char *path, ov_error *err);

/* An export made on a host with the same master key; verified before it
 * is visible. name and gen: what was imported. */
int ov_admin_import(const struct ov_settings *s, const char *path, char name[OV_ADMIN_NAME_MAX + 1],
		    unsigned long long *gen, ov_error *err);

/* Destroy a vTPM (EBUSY while a container uses it). */
int ov_admin_rm(const struct ov_settings *s, const char *name, ov_error *err);

/* Make generation gen the newest again, as a new generation (*newest). */
int ov_admin_restore(const struct ov_settings *s, const char *name, unsigned long long gen,
		     unsigned long long *newest, ov_error *err);

/* ----------------------------------------------------- rotate-key */

struct ov_admin_rotation {
	bool resumed; /* an interrupted rotation was finished */
	char old_id[OV_KEY_ID_LEN + 1];
	char new_id[OV_KEY_ID_LEN + 1];
	unsigned rewrapped; /* vTPMs rewrapped by this run */
};

/* A new master key; every vTPM rewrapped, crash-safe (a rerun resumes). */
int ov_admin_rotate_key(const struct ov_settings *s, struct ov_admin_rotation *r, ov_error *err);

/* ------------------------------------------------ gc (admin_gc.c) */

enum ov_admin_gc_kind {
	OV_ADMIN_GC_COLLECTED, /* a container's leftovers collected */
	OV_ADMIN_GC_FAILED,    /* could not be: msg says why */
	OV_ADMIN_GC_STRAY,     /* an swtpm whose container has no record, stopped */
};

struct ov_admin_gc_event {
	enum ov_admin_gc_kind kind;
	char id[OV_ID_MAX + 1]; /* the container */
	pid_t pid;		/* OV_ADMIN_GC_STRAY */
	char *msg;		/* OV_ADMIN_GC_FAILED */
};

struct ov_admin_gc {
	bool no_run_dir; /* the run directory does not exist: nothing done */
	struct ov_admin_gc_event *events;
	size_t n_events;
	unsigned collected, failed, strays;
	unsigned cgroups; /* empty swtpm cgroups of slots that are gone, removed */
};

/* Collect what a crash or a reboot left: records of containers that are
 * gone, stray swtpm processes, stale name claims. Returns -1 when any
 * container could not be collected (r still lists everything).
 * Free r with ov_admin_gc_free. */
int ov_admin_gc(const struct ov_settings *s, struct ov_admin_gc *r, ov_error *err);
void ov_admin_gc_free(struct ov_admin_gc *r);

/* One running slot's swtpms: what their cgroups account (limits.h). */
struct ov_admin_top_entry {
	char id[OV_ID_MAX + 1]; /* its slot: a container id, warm/<hex>, precreated/<hex> */
	char *name;		/* NULL: ephemeral */
	unsigned count;
	bool limited;	  /* has cgroups; else usage is all -1 */
	char cgroup[256]; /* limited: <swtpm_cgroup>/<its token> */
	struct ov_limits_usage usage;
};
/* Every slot in the run dir, its record readable. Free with
 * ov_admin_top_free. */
int ov_admin_top(const struct ov_settings *s, struct ov_admin_top_entry **out, size_t *n,
		 ov_error *err);
void ov_admin_top_free(struct ov_admin_top_entry *e, size_t n);

/* ---------------------------------- provisioning pool (admin_pool.c) */

struct ov_admin_pool_status {
	struct ov_pool_status pool;
	char dir[OV_ADMIN_PATH_MAX]; /* <state_dir>/pool */
	unsigned pool_size;	     /* the settings' target */
	unsigned warm;		     /* warm TPM 2.0 vTPMs running */
	unsigned warm_size;	     /* the settings' target */
	unsigned warm12;	     /* warm TPM 1.2 vTPMs running */
	unsigned warm_size_tpm12;    /* the settings' target */
};

int ov_admin_pool_status(const struct ov_settings *s, struct ov_admin_pool_status *r,
			 ov_error *err);

enum ov_admin_fill_kind {
	OV_ADMIN_FILL_REMOVED, /* stale entries or claims removed */
	OV_ADMIN_FILL_MADE,    /* EK-certified TPM 2.0 states manufactured */
	OV_ADMIN_FILL_WARM,    /* warm TPM 2.0 vTPMs started */
	OV_ADMIN_FILL_WARM12,  /* warm TPM 1.2 vTPMs started */
};

struct ov_admin_fill_step {
	enum ov_admin_fill_kind kind;
	unsigned n;
	double seconds; /* MADE and WARM */
};

#define OV_ADMIN_FILL_STEPS 8
struct ov_admin_pool_fill {
	struct ov_admin_fill_step steps[OV_ADMIN_FILL_STEPS]; /* in order */
	size_t n_steps;
};

/* Top the pool up to count entries (count < 0: the settings' pool_size),
 * and start warm vTPMs up to the settings' warm_size (TPM 2.0) and
 * warm_size_tpm12 (TPM 1.2). Steps that did
 * something are in r, also when a later one failed. */
int ov_admin_pool_fill(const struct ov_settings *s, long count, struct ov_admin_pool_fill *r,
		       ov_error *err);

/* Remove every pooled state and stop every warm vTPM. */
int ov_admin_pool_drain(const struct ov_settings *s, unsigned *removed, unsigned *warm,
			ov_error *err);

#endif
