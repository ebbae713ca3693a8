/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Live records: a slot of the run dir (<run_dir>/containers/<id>/, the
 * layout: instance.h) holds record.json, the swtpm state and logs of one
 * container. The directory itself is the lock (flock).
 */
#ifndef OCI_VTPM_STORE_H
#define OCI_VTPM_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

#define OV_ID_MAX 1024
/* A slot's cgroup name (limits.h): 32 lowercase hex digits, made once with
 * the slot's first swtpm and never changed (a slot rename leaves it). */
#define OV_CGROUP_TOKEN_LEN 32

/* runc's rule: [A-Za-z0-9_+.-]+, neither "." nor "..", bounded. */
bool ov_container_id_valid(const char *id);

/* Open (creating with mode 0700 if asked) the run dir. */
int ov_run_dir_open(const char *run_dir, bool create, ov_error *err);

/* The absolute path of slot id (<run_dir>/containers/<id>, instance.h),
 * for what names it to another program (the runtime's bind mount). */
int ov_slot_path(const char *run_dir, const char *id, char *buf, size_t size, ov_error *err);

/* Open the slot id (a container id or a warm/precreated slot name,
 * instance.h) and take its exclusive lock; the returned fd holds the
 * lock until closed. With create, the directory is made (0711: swtpm may run
 * as another user and must reach its own state directory inside). Without
 * create, a missing directory returns -1 with err->code == ENOENT. */
int ov_container_dir_lock(int run_dirfd, const char *id, bool create, ov_error *err);

struct ov_record_tpm {
	pid_t pid;		      /* 0: not started */
	unsigned long long starttime; /* /proc/<pid>/stat field 22, against pid reuse */
	int devnum;		      /* device backend: N of /dev/tpmN; -1 otherwise */
	dev_t dev, rmdev;
};

struct ov_record {
	char *id;
	char *bundle;
	char *name; /* NULL: ephemeral */
	char *boot_id;
	enum ov_backend backend;
	enum ov_tpm_version version;
	bool ek_cert; /* asked for EK certificates */
	/* A named vTPM handed to a warm swtpm (lib/warm.c): its live state is
	 * under that swtpm's own key, taken back over the control channel
	 * before it stops. */
	bool state_in_swtpm;
	/* Its container stopped: a detached worker (settings stop_async) is
	 * stopping and archiving it, holding the slot's lock and a named
	 * vTPM's archive lock; in use by nobody (gc finishes what a killed
	 * worker left). */
	bool stopping;
	unsigned count;
	pid_t container_pid; /* the container's init at start; 0 unknown */
	unsigned long long container_starttime;
	/* Started before the container existed: the process creating it
	 * (struct ov_state's holder), and when (CLOCK_REALTIME seconds). */
	pid_t holder_pid;
	unsigned long long holder_starttime;
	int64_t started_at;
	/* The shim's runtime that runs the container: its path and its
	 * --root (absolute, symlinks resolved); NULL: not known (the hooks,
	 * or no --root). A container id is unique within one root: a delete
	 * under the same ones is this container's (oci-vtpm-runtime). */
	char *runtime;
	char *runtime_root;
	/* Its swtpms' cgroup under swtpm_cgroup; "": none. */
	char cgroup[OV_CGROUP_TOKEN_LEN + 1];
	struct ov_record_tpm tpms[OV_MAX_TPMS];
};

int ov_record_write(int cdirfd, const struct ov_record *rec, ov_error *err);
/* Is token a slot's cgroup name (OV_CGROUP_TOKEN_LEN lowercase hex)? */
bool ov_cgroup_token_valid(const char *token);
/* Returns 0 and fills rec, or -1; a missing record is err->code == ENOENT. */
int ov_record_read(int cdirfd, struct ov_record *rec, ov_error *err);
void ov_record_free(struct ov_record *rec);

#endif
