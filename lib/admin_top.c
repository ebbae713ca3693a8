/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm top (include/oci-vtpm/admin.h): every running slot and what
 * its swtpms' cgroup accounts (lib/limits.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "oci-vtpm/admin.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/limits.h"
#include "oci-vtpm/store.h"

int ov_admin_top(const struct ov_settings *s, struct ov_admin_top_entry **out, size_t *n,
		 ov_error *err)
{
	cleanup_close int run = ov_run_dir_open(s->run_dir, false, err);
	cleanup_instance_iter struct ov_instance_iter it = {0};
	struct ov_record rec;
	const char *slot;

	*out = NULL;
	*n = 0;
	if (run < 0) {
		if (err->code != ENOENT)
			return -1;
		ov_error_clear(err);
		return 0;
	}
	while ((slot = ov_instance_next_record(run, &it, &rec))) {
		struct ov_admin_top_entry *e = reallocarray(*out, *n + 1, sizeof(**out));
		ov_error ignored = {0};

		if (!e) {
			ov_record_free(&rec);
			ov_admin_top_free(*out, *n);
			*out = NULL;
			*n = 0;
			return ov_error_set(err, ENOMEM, "listing %s", s->run_dir);
		}
		*out = e;
		e = &e[(*n)++];
		*e = (struct ov_admin_top_entry){.count = rec.count, .name = rec.name};
		rec.name = NULL;
		snprintf(e->id, sizeof(e->id), "%s", slot);
		e->limited = ov_limits_usage(s, rec.cgroup, &e->usage, &ignored) > 0;
		if (e->limited)
			snprintf(e->cgroup, sizeof(e->cgroup), "%s/%s", s->swtpm_cgroup,
				 rec.cgroup);
		ov_record_free(&rec);
	}
	return 0;
}

void ov_admin_top_free(struct ov_admin_top_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}
