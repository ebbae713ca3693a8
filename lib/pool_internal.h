/* SPDX-License-Identifier: Apache-2.0 */
/* What pool.c (claim, status) and pool_fill.c (fill, drain) share. */
#ifndef OCI_VTPM_POOL_INTERNAL_H
#define OCI_VTPM_POOL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"
#include "oci-vtpm/instance.h"

#define POOL_DIR   "pool"
#define NEW_DIR	   ".new"
#define CLAIMS_DIR ".claims"
#define WORK_DIR   OV_INSTANCE_POOL_DIR /* in run_dir (instance.h) */
#define META	   "meta.json"
#define ID_HEX	   16
#define CANDIDATES 64
#define FILE_MAX   (16u << 20)
#define FILES_MAX  16

struct ov_pool_copied {
	char names[FILES_MAX][65];
	unsigned n;
};

/* <state_dir>/pool. */
int ov_pool_path(const struct ov_settings *s, char *buf, size_t size, ov_error *err);
/* The name prefix of this host's entries: kind, master key id, CA id. */
int ov_pool_kind_prefix(const struct ov_settings *s, const struct ov_key *master, char *buf,
			size_t size, ov_error *err);
/* Is n an entry's name (kind-key-ca-random)? */
bool ov_pool_entry_name_ok(const char *n);
/* Copy the state files of from into to (owned uid:gid; durable: fsync'd);
 * c names what was copied, for ov_pool_uncopy. */
int ov_pool_copy_files(int from, int to, uid_t uid, gid_t gid, bool durable,
		       struct ov_pool_copied *c, ov_error *err);
void ov_pool_uncopy(int to, const struct ov_pool_copied *c);

#endif
