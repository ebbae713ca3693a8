/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm init, oci-vtpm rotate-key: the master key and the host CA. */
#include <stdio.h>

#include "cli.h"
#include "oci-vtpm/admin.h"

int cli_init(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	static const char *const how[] = {
	    [OV_ADMIN_KEY_CREATED] = "created master key",
	    [OV_ADMIN_KEY_KEPT] = "kept the existing master key",
	    [OV_ADMIN_KEY_CREDENTIAL] = "using the master key from the credential",
	};
	struct ov_admin_init r;
	int ret;

	if (argc != 1)
		return CLI_USAGE;
	ret = ov_admin_init(s, &r, err);
	/* What was done before a failure, then the failure. */
	if (r.have_key)
		printf("%s %s (key id %s)\n", how[r.key_origin], r.key_path, r.key_id);
	if (r.have_ca)
		printf("%s host CA %s: %s\n", r.ca_created ? "created" : "using the", s->ca_cert,
		       r.ca_desc);
	return ret;
}

int cli_rotate_key(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	struct ov_admin_rotation r;
	int ret;

	if (argc != 1)
		return CLI_USAGE;
	ret = ov_admin_rotate_key(s, &r, err);
	if (r.resumed)
		printf("resuming an interrupted rotation\n");
	if (ret == 0)
		printf("master key rotated: %s -> %s (%u vTPMs rewrapped)\n", r.old_id, r.new_id,
		       r.rewrapped);
	return ret;
}
