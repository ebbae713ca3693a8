/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provisioning pool: EK-certified TPM 2.0 states manufactured ahead of
 * time (`oci-vtpm pool fill`), so that a container asking for a new
 * EK-certified vTPM does not wait for its manufacture.
 *
 * <state_dir>/pool/ (0700 root) holds one directory per ready entry:
 *
 *   ek2-<master key id>-<CA id>-<random>/
 *       meta.json          salt and data key wrapped under the master key
 *                          (archive.h's format; the entry's name is the
 *                          vTPM name its keys are bound to)
 *       tpm2-00.permall    swtpm's state, encrypted with the entry's state key
 *   .new/                  entries being made (by one `pool fill` at a time:
 *                          flock on the pool directory)
 *   .claims/<slot>.<N>/    an entry being taken by TPM N of slot <slot>
 *                          (container id, or "warm:<hex>": ov_instance_flat)
 *
 * The name tags what an entry is: "ek2" (TPM 2.0 with EK and platform
 * certificates, the only kind pooled: a plain state costs swtpm nothing to
 * make), the master key that wraps it and the host CA (the first 16 hex
 * digits of the SHA-256 of the ca_cert file) that signed its certificates.
 * A start only takes entries whose tags match this host's current master key
 * and CA; others are stale and `pool fill` replaces them. The name is bound
 * into the key-encryption key and the MACs, so the tags are authenticated.
 *
 * Claiming is one rename(2) of the entry directory into .claims/: of any
 * number of concurrent claims of one entry exactly one succeeds, and the
 * others go on to the next entry. The state files are then copied into the
 * container's state directory and the claim removed.
 */
#ifndef OCI_VTPM_POOL_H
#define OCI_VTPM_POOL_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"

#define OV_POOL_KIND_EK2 "ek2"

/* A claimed entry: its metadata, the master key that unwraps it, its keys
 * (keys.state is the key swtpm's state is encrypted with). */
struct ov_pool_entry {
	struct ov_meta meta;
	struct ov_key master;
	struct ov_vtpm_keys keys;
};
void ov_pool_entry_wipe(struct ov_pool_entry *e);

/*
 * Take one EK-certified TPM 2.0 state out of the pool for TPM idx of
 * container id: its files are written into dstdir (which must hold no TPM
 * state; files owned uid:gid, 0600), and e describes it.
 * Returns 0 when an entry was taken; else -1 with err filled: err->code
 * ENOENT (the pool has no matching entry) or ENOKEY (no master key or no
 * host CA) when none could be taken and nothing was changed; any other
 * code on a failure (a claimed entry is discarded, dstdir left empty).
 */
int ov_pool_claim(const struct ov_settings *s, const char *id, unsigned idx, int dstdir, uid_t uid,
		  gid_t gid, struct ov_pool_entry *e, ov_error *err);

struct ov_pool_status {
	char kind[80];	 /* the tag prefix entries for this host have now; "" unknown */
	unsigned ready;	 /* entries of that kind */
	unsigned stale;	 /* entries of another master key or CA */
	unsigned claims; /* claims under way (or left by a crashed start) */
	bool have_key;	 /* a master key to wrap entries under */
	bool have_ca;	 /* a host CA to certify them */
};
int ov_pool_status(const struct ov_settings *s, struct ov_pool_status *st, ov_error *err);

/*
 * Top the pool up to target ready entries: remove stale entries, leftovers
 * of an interrupted fill and claims whose container is no longer starting,
 * then manufacture what is missing (swtpm runs in <run_dir>/pool, as
 * swtpm_user). Every entry is durable (fsync) before it is visible. One
 * fill at a time; a second waits. made/removed may be NULL.
 */
int ov_pool_fill(const struct ov_settings *s, unsigned target, unsigned *made, unsigned *removed,
		 ov_error *err);

/* Remove every entry (claims under way are left alone). */
int ov_pool_drain(const struct ov_settings *s, unsigned *removed, ov_error *err);

#endif
