/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Archived vTPMs: <state_dir>/vtpms/<name>/ holds meta.json (salt, wrapped
 * data key, newest generation; authenticated) and one file per generation,
 * gen-<N>.ovtpm: a JSON header naming the vTPM, the generation and the
 * files, then the files (swtpm's state, already encrypted by swtpm with the
 * vTPM's state key), then an HMAC-SHA256 over all of it. A generation is
 * refused if it was edited, belongs to another vTPM, or is not the
 * generation the metadata says it is.
 */
#ifndef OCI_VTPM_ARCHIVE_H
#define OCI_VTPM_ARCHIVE_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"

#define OV_ARCHIVE_MAX (64u << 20)

struct ov_meta {
	char name[129];
	uint8_t salt[OV_SALT_LEN];
	char key_id[OV_KEY_ID_LEN + 1];
	uint8_t wrapped[OV_WRAPPED_LEN];
	unsigned long long newest; /* 0: nothing archived yet */
	enum ov_tpm_version version;
	unsigned count;
};

struct ov_vtpm_keys {
	struct ov_key state; /* swtpm --key */
	struct ov_key mac;   /* archives and meta.json */
};
void ov_vtpm_keys_wipe(struct ov_vtpm_keys *k);

/* The master key the settings name ($CREDENTIALS_DIRECTORY/oci-vtpm.master-key
 * first, where systemd passes one). */
int ov_master_key_path(const struct ov_settings *s, char *buf, size_t size);

/* The master key new vTPMs are wrapped under: master.key, or master.key.new
 * while a rotation is under way. */
int ov_master_key_current(const struct ov_settings *s, struct ov_key *k, ov_error *err);
/* The master key whose id is key_id: master.key or, mid-rotation,
 * master.key.new; a clear error when neither is. */
int ov_master_key_for(const struct ov_settings *s, const char *key_id, struct ov_key *k,
		      ov_error *err);

/* Open <state_dir>/vtpms/<name> (creating it when asked) and lock it; the
 * fd holds the lock. Without create, a missing vTPM is ENOENT. */
int ov_archive_dir(const struct ov_settings *s, const char *name, bool create, ov_error *err);
/* Open <state_dir>/vtpms, for listing. */
int ov_archive_root(const struct ov_settings *s, bool create, ov_error *err);

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

/* Archive the TPM state directories srcdirs[0..count) as generation
 * m->newest + 1: written atomically, then meta.json, then generations older
 * than the last keep removed. */
int ov_archive_save(int vdir, struct ov_meta *m, const struct ov_vtpm_keys *k, const int *srcdirs,
		    unsigned count, enum ov_tpm_version version, unsigned keep, ov_error *err);
/* Verify generation gen and unpack it into dstdirs (files owned uid:gid). */
int ov_archive_load(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		    unsigned long long gen, const int *dstdirs, unsigned count, uid_t uid,
		    gid_t gid, ov_error *err);
/* Verify generation gen without unpacking it. */
int ov_archive_verify(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		      unsigned long long gen, ov_error *err);
/* Is n a file name swtpm writes: no path, nothing hidden? */
bool ov_archive_state_file_ok(const char *n);

void ov_archive_gen_name(unsigned long long gen, char *buf, size_t size);

#endif
