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
#include "oci-vtpm/error.h"
#include "oci-vtpm/meta.h"

#define OV_ARCHIVE_MAX (64u << 20)

/* Open <state_dir>/vtpms/<name> (creating it when asked) and lock it; the
 * fd holds the lock. Without create, a missing vTPM is ENOENT. */
int ov_archive_dir(const struct ov_settings *s, const char *name, bool create, ov_error *err);
/* Open <state_dir>/vtpms, for listing. */
int ov_archive_root(const struct ov_settings *s, bool create, ov_error *err);

/* Archive the TPM state directories srcdirs[0..count) as generation
 * m->newest + 1: written atomically, then meta.json, then generations older
 * than the last keep removed. */
int ov_archive_save(int vdir, struct ov_meta *m, const struct ov_vtpm_keys *k, const int *srcdirs,
		    unsigned count, enum ov_tpm_version version, unsigned keep, ov_error *err);
/* Verify generation gen and unpack it into dstdirs (files owned uid:gid). */
int ov_archive_load(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		    unsigned long long gen, const int *dstdirs, unsigned count, uid_t uid,
		    gid_t gid, ov_error *err);
/* Verify generation gen and call fn for each of its files (TPM tpm's
 * state file name, its data), in memory; fn's failure ends it. */
typedef int (*ov_archive_file_fn)(unsigned tpm, const char *name, const void *data, size_t len,
				  void *arg, ov_error *err);
int ov_archive_each(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		    unsigned long long gen, unsigned count, ov_archive_file_fn fn, void *arg,
		    ov_error *err);
/* Verify generation gen without unpacking it. */
int ov_archive_verify(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k,
		      unsigned long long gen, ov_error *err);
/* Is n a file name swtpm writes: no path, nothing hidden? */
bool ov_archive_state_file_ok(const char *n);

void ov_archive_gen_name(unsigned long long gen, char *buf, size_t size);

#endif
