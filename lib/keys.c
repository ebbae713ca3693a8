/* SPDX-License-Identifier: Apache-2.0 */
/* The host's master key and the keys derived for one vTPM. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/keys.h"

#define CRED_NAME "oci-vtpm.master-key"

void ov_vtpm_keys_wipe(struct ov_vtpm_keys *k)
{
	ov_key_wipe(&k->state);
	ov_key_wipe(&k->mac);
}

int ov_master_key_path(const struct ov_settings *s, char *buf, size_t size)
{
	const char *cred = getenv("CREDENTIALS_DIRECTORY");
	int n;

	if (cred && *cred) {
		n = snprintf(buf, size, "%s/" CRED_NAME, cred);
		if (n > 0 && (size_t)n < size && access(buf, F_OK) == 0)
			return 0;
	}
	n = snprintf(buf, size, "%s", s->master_key);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int ov_master_key_current(const struct ov_settings *s, struct ov_key *k, ov_error *err)
{
	char path[4200], next[4210];

	if (ov_master_key_path(s, path, sizeof(path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "master key path");
	snprintf(next, sizeof(next), "%s.new", path);
	if (access(next, F_OK) == 0)
		return ov_master_key_load(next, k, err);
	return ov_master_key_load(path, k, err);
}

int ov_master_key_for(const struct ov_settings *s, const char *key_id, struct ov_key *k,
		      ov_error *err)
{
	char path[4200], next[4210], id[OV_KEY_ID_LEN + 1];
	ov_error nerr = {0};

	if (ov_master_key_path(s, path, sizeof(path)) < 0)
		return ov_error_set(err, ENAMETOOLONG, "master key path");
	if (ov_master_key_load(path, k, err) < 0)
		return -1;
	ov_key_id(k, id);
	if (strcmp(id, key_id) == 0)
		return 0;
	snprintf(next, sizeof(next), "%s.new", path);
	if (access(next, F_OK) == 0 && ov_master_key_load(next, k, &nerr) == 0) {
		ov_key_id(k, id);
		if (strcmp(id, key_id) == 0)
			return 0;
	}
	/* Neither: unwrapping with master.key gives the clear error. */
	return ov_master_key_load(path, k, err);
}
