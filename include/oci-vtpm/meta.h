/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meta.json, one per archived vTPM: its name, salt, the id of the master
 * key and the data key wrapped under it, the newest generation, version
 * and count; authenticated with the vTPM's MAC key.
 */
#ifndef OCI_VTPM_META_H
#define OCI_VTPM_META_H

#include "oci-vtpm/keys.h"

struct ov_meta {
	char name[129];
	uint8_t salt[OV_SALT_LEN];
	char key_id[OV_KEY_ID_LEN + 1];
	uint8_t wrapped[OV_WRAPPED_LEN];
	unsigned long long newest; /* 0: nothing archived yet */
	enum ov_tpm_version version;
	unsigned count;
};

/* A new vTPM: fresh salt and data key, wrapped under master. Not written. */
int ov_meta_new(const char *name, const struct ov_key *master, struct ov_meta *m,
		struct ov_vtpm_keys *k, ov_error *err);
/* Load and check meta.json; the missing file is ENOENT. With master, also
 * unwrap the data key and derive keys (k may be NULL without master). */
int ov_meta_load(int vdir, const char *name, const struct ov_key *master, struct ov_meta *m,
		 struct ov_vtpm_keys *k, ov_error *err);
/* ov_meta_load checked with this host's master key for the vTPM (by its
 * key id): the one way to get a vTPM's keys. */
int ov_meta_load_keys(const struct ov_settings *s, int vdir, const char *name, struct ov_meta *m,
		      struct ov_vtpm_keys *k, ov_error *err);
int ov_meta_write(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k, ov_error *err);
/* Wrap the data key of (m, under old) under new_master instead, and write. */
int ov_meta_rewrap(int vdir, struct ov_meta *m, const struct ov_key *old_master,
		   const struct ov_key *new_master, ov_error *err);

/* The same vTPM keys under another name (a pooled state claimed by a
 * named vTPM): from's data key and salt, so the same state key, wrapped
 * under master for name; MAC key for name; newest 0. Not written. */
int ov_meta_rename(const struct ov_meta *from, const struct ov_key *from_master, const char *name,
		   const struct ov_key *master, struct ov_meta *to, struct ov_vtpm_keys *k,
		   ov_error *err);

#endif
