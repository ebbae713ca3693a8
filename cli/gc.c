/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm gc: collect what a crash or a reboot left. */
#include <stdio.h>

#include "cli.h"
#include "oci-vtpm/admin.h"

int cli_gc(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	struct ov_admin_gc r;
	int ret;

	if (argc != 1)
		return CLI_USAGE;
	ret = ov_admin_gc(s, &r, err);
	if (r.no_run_dir) {
		printf("gc: nothing to do (%s does not exist)\n", s->run_dir);
		return ret;
	}
	for (size_t i = 0; i < r.n_events; i++) {
		const struct ov_admin_gc_event *ev = &r.events[i];

		switch (ev->kind) {
		case OV_ADMIN_GC_COLLECTED:
			printf("collected container %s\n", ev->id);
			break;
		case OV_ADMIN_GC_FAILED:
			printf("container %s: %s\n", ev->id, ev->msg ? ev->msg : "");
			break;
		case OV_ADMIN_GC_STRAY:
			printf("stopped swtpm %d of container %s, which has no record\n",
			       (int)ev->pid, ev->id);
			break;
		}
	}
	if (r.cgroups)
		printf("removed %u cgroup%s of swtpms that are gone\n", r.cgroups,
		       r.cgroups == 1 ? "" : "s");
	if (ret == 0 || r.failed)
		printf("gc: %u collected, %u stray swtpm stopped, %u failed\n", r.collected,
		       r.strays, r.failed);
	ov_admin_gc_free(&r);
	return ret;
}
