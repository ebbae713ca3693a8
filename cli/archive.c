/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm list, inspect, export, import, rm, restore: archived vTPMs. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "oci-vtpm/admin.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/oci.h"

static json_object *time_or_null(bool have, int64_t t)
{
	return have ? json_object_new_int64(t) : NULL;
}

/* One vTPM as `list --json` and `inspect` show it. */
static json_object *vtpm_json(const struct ov_admin_vtpm *v)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(v->name));
	if (!v->meta_error) {
		json_object_object_add(o, "newest", json_object_new_int64((int64_t)v->newest));
		json_object_object_add(
		    o, "version", json_object_new_string(v->version == OV_TPM_1_2 ? "1.2" : "2.0"));
		json_object_object_add(o, "count", json_object_new_int((int)v->count));
		json_object_object_add(o, "key_id", json_object_new_string(v->key_id));
	} else {
		json_object_object_add(o, "error", json_object_new_string(v->meta_error));
	}
	for (size_t i = 0; i < v->n_gens; i++) {
		const struct ov_admin_gen *g = &v->gens[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "generation", json_object_new_int64((int64_t)g->gen));
		json_object_object_add(j, "size", json_object_new_int64(g->size));
		json_object_object_add(j, "archived", json_object_new_int64(g->archived));
		if (g->verified >= 0)
			json_object_object_add(j, "verified", json_object_new_boolean(g->verified));
		if (g->error)
			json_object_object_add(j, "error", json_object_new_string(g->error));
		json_object_array_add(arr, j);
	}
	json_object_object_add(o, "generations", arr);
	json_object_object_add(o, "size", json_object_new_int64(v->size));
	json_object_object_add(
	    o, "last_archived",
	    time_or_null(v->n_gens > 0, v->n_gens ? v->gens[v->n_gens - 1].archived : 0));
	json_object_object_add(o, "in_use_by",
			       v->in_use_by[0] ? json_object_new_string(v->in_use_by) : NULL);
	if (v->verify_error)
		json_object_object_add(o, "verify_error", json_object_new_string(v->verify_error));
	return o;
}

static void fmt_time(const struct ov_admin_vtpm *v, char *buf, size_t size)
{
	time_t t;
	struct tm tm;

	if (!v->n_gens) {
		snprintf(buf, size, "-");
		return;
	}
	t = (time_t)v->gens[v->n_gens - 1].archived;
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cli_list(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	struct ov_admin_vtpm *all;
	bool json = argc == 2 && cli_is_json(argv[1]);
	size_t n;

	if (argc != 1 && !json)
		return CLI_USAGE;
	if (ov_admin_list(s, &all, &n, err) < 0)
		return CLI_ERROR;
	if (json) {
		cleanup_json json_object *arr = json_object_new_array();

		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, vtpm_json(&all[i]));
		cli_print_json(arr, true);
	} else {
		printf("%-24s %5s %10s %-20s %s\n", "NAME", "GENS", "SIZE", "LAST ARCHIVED",
		       "IN USE BY");
		for (size_t i = 0; i < n; i++) {
			char when[32];

			fmt_time(&all[i], when, sizeof(when));
			printf("%-24s %5zu %10" PRId64 " %-20s %s\n", all[i].name, all[i].n_gens,
			       all[i].size, when, all[i].in_use_by[0] ? all[i].in_use_by : "-");
		}
	}
	ov_admin_vtpms_free(all, n);
	return 0;
}

int cli_inspect(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	struct ov_admin_vtpm v;
	int ret = 0;

	if (argc != 2)
		return CLI_USAGE;
	if (ov_admin_inspect(s, argv[1], &v, err) < 0)
		return CLI_ERROR;
	{
		cleanup_json json_object *o = vtpm_json(&v);

		cli_print_json(o, true);
	}
	if (v.verify_error)
		ret = ov_error_set(err, 0, "vTPM %s: %s", v.name, v.verify_error);
	else if (v.bad)
		ret = ov_error_set(err, 0, "vTPM %s: %u generation%s did not verify", v.name, v.bad,
				   v.bad > 1 ? "s" : "");
	ov_admin_vtpm_clear(&v);
	return ret;
}

int cli_export(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	if (argc != 3)
		return CLI_USAGE;
	return ov_admin_export(s, argv[1], argv[2], err);
}

int cli_import(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	char name[OV_ADMIN_NAME_MAX + 1];
	unsigned long long gen;

	if (argc != 2)
		return CLI_USAGE;
	if (ov_admin_import(s, argv[1], name, &gen, err) < 0)
		return CLI_ERROR;
	printf("imported vTPM %s (generation %llu)\n", name, gen);
	return 0;
}

int cli_rm(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	if (argc != 2)
		return CLI_USAGE;
	return ov_admin_rm(s, argv[1], err);
}

int cli_restore(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	unsigned long long gen, newest;
	char *end;

	if (argc != 4 || strcmp(argv[2], "--generation") != 0)
		return CLI_USAGE;
	gen = strtoull(argv[3], &end, 10);
	if (!*argv[3] || *end || gen == 0 || argv[3][0] == '-') {
		fprintf(stderr, "%s: restore: bad generation \"%s\"\n", CLI_PROG, argv[3]);
		return CLI_REPORTED;
	}
	if (ov_admin_restore(s, argv[1], gen, &newest, err) < 0)
		return CLI_ERROR;
	printf("vTPM %s: generation %llu restored as generation %llu\n", argv[1], gen, newest);
	return 0;
}
