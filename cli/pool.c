/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm pool fill|status|drain: the provisioning pool and warm vTPMs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "oci-vtpm/admin.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/oci.h"

static void status_json(const struct ov_admin_pool_status *r)
{
	cleanup_json json_object *o = json_object_new_object();
	json_object *kinds = json_object_new_object();

	json_object_object_add(o, "kinds", kinds);
	json_object_object_add(o, "dir", json_object_new_string(r->dir));
	json_object_object_add(o, "count", json_object_new_int((int)r->pool.ready));
	if (r->pool.kind[0])
		json_object_object_add(kinds, OV_POOL_KIND_EK2,
				       json_object_new_int((int)r->pool.ready));
	json_object_object_add(o, "kind", json_object_new_string(r->pool.kind));
	json_object_object_add(o, "stale", json_object_new_int((int)r->pool.stale));
	json_object_object_add(o, "claims", json_object_new_int((int)r->pool.claims));
	json_object_object_add(o, "master_key", json_object_new_boolean(r->pool.have_key));
	json_object_object_add(o, "host_ca", json_object_new_boolean(r->pool.have_ca));
	json_object_object_add(o, "pool_size", json_object_new_int((int)r->pool_size));
	json_object_object_add(o, "warm", json_object_new_int((int)r->warm));
	json_object_object_add(o, "warm_size", json_object_new_int((int)r->warm_size));
	json_object_object_add(o, "warm_tpm12", json_object_new_int((int)r->warm12));
	json_object_object_add(o, "warm_size_tpm12", json_object_new_int((int)r->warm_size_tpm12));
	cli_print_json(o, false);
}

static void status_text(const struct ov_admin_pool_status *r)
{
	printf("pool %s: %u ready (target %u)\n", r->dir, r->pool.ready, r->pool_size);
	if (r->pool.kind[0])
		printf("  %s: %u (TPM 2.0 with EK and platform certificates; %s)\n",
		       OV_POOL_KIND_EK2, r->pool.ready, r->pool.kind);
	if (r->pool.stale)
		printf("  stale: %u (another master key or host CA; `pool fill` replaces them)\n",
		       r->pool.stale);
	if (r->pool.claims)
		printf("  claims: %u (being taken by starting containers)\n", r->pool.claims);
	if (r->warm_size || r->warm)
		printf("warm vTPMs: %u running (target %u)\n", r->warm, r->warm_size);
	if (r->warm_size_tpm12 || r->warm12)
		printf("warm TPM 1.2 vTPMs: %u running (target %u)\n", r->warm12,
		       r->warm_size_tpm12);
	if (!r->pool.have_key)
		printf("  no master key: the pool cannot be used (`oci-vtpm init`)\n");
	else if (!r->pool.have_ca)
		printf("  no host CA: the pool cannot be used (`oci-vtpm init`)\n");
}

static int status(const struct ov_settings *s, bool json, ov_error *err)
{
	struct ov_admin_pool_status r;

	if (ov_admin_pool_status(s, &r, err) < 0)
		return CLI_ERROR;
	if (json)
		status_json(&r);
	else
		status_text(&r);
	return 0;
}

static int fill(const struct ov_settings *s, long count, ov_error *err)
{
	struct ov_admin_pool_fill r;
	int ret = ov_admin_pool_fill(s, count, &r, err);

	for (size_t i = 0; i < r.n_steps; i++) {
		const struct ov_admin_fill_step *st = &r.steps[i];

		switch (st->kind) {
		case OV_ADMIN_FILL_REMOVED:
			printf("pool: removed %u stale entries or claims\n", st->n);
			break;
		case OV_ADMIN_FILL_MADE:
			printf("pool: made %u EK-certified TPM 2.0 states in %.1f s\n", st->n,
			       st->seconds);
			break;
		case OV_ADMIN_FILL_WARM:
			printf("pool: started %u warm vTPMs in %.1f s\n", st->n, st->seconds);
			break;
		case OV_ADMIN_FILL_WARM12:
			printf("pool: started %u warm TPM 1.2 vTPMs in %.1f s\n", st->n,
			       st->seconds);
			break;
		}
	}
	return ret < 0 ? CLI_ERROR : status(s, false, err);
}

int cli_pool(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "status") == 0 && (argc == 2 || (argc == 3 && cli_is_json(argv[2]))))
		return status(s, argc == 3, err);
	if (strcmp(sub, "drain") == 0 && argc == 2) {
		unsigned removed, warm;

		if (ov_admin_pool_drain(s, &removed, &warm, err) < 0)
			return CLI_ERROR;
		printf("pool: %u entries removed, %u warm vTPMs stopped\n", removed, warm);
		return 0;
	}
	if (strcmp(sub, "fill") == 0 && argc == 2)
		return fill(s, -1, err);
	if (strcmp(sub, "fill") == 0 && argc == 3) {
		char *end;
		unsigned long n = strtoul(argv[2], &end, 10);

		if (!*argv[2] || *end || argv[2][0] == '-' || n > 4096) {
			fprintf(stderr, "%s: pool fill: bad count \"%s\" (0 to 4096)\n", CLI_PROG,
				argv[2]);
			return CLI_REPORTED;
		}
		return fill(s, (long)n, err);
	}
	return CLI_USAGE;
}
