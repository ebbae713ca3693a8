/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm top: what each running slot's swtpms use, from their cgroups. */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "oci-vtpm/admin.h"

static void col(int64_t v, int width)
{
	if (v < 0)
		printf(" %*s", width, "-");
	else
		printf(" %*" PRId64, width, v);
}

static json_object *to_json(const struct ov_admin_top_entry *e)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(e->id));
	json_object_object_add(o, "name", e->name ? json_object_new_string(e->name) : NULL);
	json_object_object_add(o, "count", json_object_new_int64(e->count));
	json_object_object_add(o, "limited", json_object_new_boolean(e->limited));
	json_object_object_add(o, "cgroup", e->limited ? json_object_new_string(e->cgroup) : NULL);
	json_object_object_add(o, "memory", json_object_new_int64(e->usage.memory));
	json_object_object_add(o, "memory_max", json_object_new_int64(e->usage.memory_max));
	json_object_object_add(o, "pids", json_object_new_int64(e->usage.pids));
	json_object_object_add(o, "pids_max", json_object_new_int64(e->usage.pids_max));
	json_object_object_add(o, "cpu_us", json_object_new_int64(e->usage.cpu_us));
	json_object_object_add(o, "cpu_max", json_object_new_int64(e->usage.cpu_max));
	return o;
}

int cli_top(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	struct ov_admin_top_entry *e = NULL;
	bool json = argc == 2 && cli_is_json(argv[1]);
	size_t n = 0;

	if (argc > 2 || (argc == 2 && !json))
		return CLI_USAGE;
	if (ov_admin_top(s, &e, &n, err) < 0)
		return -1;
	if (json) {
		json_object *a = json_object_new_array();

		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, to_json(&e[i]));
		cli_print_json(a, true);
		json_object_put(a);
	} else {
		printf("%-24s %-16s %4s %10s %10s %5s %5s %9s %5s\n", "CONTAINER", "NAME", "TPMS",
		       "MEMORY", "MEM_MAX", "PIDS", "MAX", "CPU_MS", "CPU%");
		for (size_t i = 0; i < n; i++) {
			const struct ov_limits_usage *u = &e[i].usage;

			printf("%-24.24s %-16.16s %4u", e[i].id, e[i].name ? e[i].name : "-",
			       e[i].count);
			col(u->memory, 10);
			col(u->memory_max, 10);
			col(u->pids, 5);
			col(u->pids_max, 5);
			col(u->cpu_us < 0 ? -1 : u->cpu_us / 1000, 9);
			col(u->cpu_max, 5);
			printf("\n");
		}
	}
	ov_admin_top_free(e, n);
	return 0;
}
