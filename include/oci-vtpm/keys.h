/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host's master key (never given to swtpm) and the two keys derived for
 * each vTPM from its data key: swtpm's state key and the MAC key of its
 * archive and meta.json.
 */
#ifndef OCI_VTPM_KEYS_H
#define OCI_VTPM_KEYS_H

#include <stddef.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/crypto.h"
#include "oci-vtpm/error.h"

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

#endif
