/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm: the admin tool. Parses arguments; lib/admin.c does the work. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/admin.h"
#include "oci-vtpm/cdi.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/log.h"

static const char prog[] = "oci-vtpm";

static const char usage_text[] =
    "usage: oci-vtpm [--config FILE] COMMAND [ARGS]\n"
    "\n"
    "  init                        create the master key and the host CA (never overwrites)\n"
    "  list [--json]               archived vTPMs: generations, size, last archived, in use by\n"
    "  inspect NAME                one vTPM, every generation verified\n"
    "  export NAME FILE            the newest generation, still encrypted and authenticated\n"
    "  import FILE                 a vTPM exported on a host with the same master key\n"
    "  rm NAME                     destroy a vTPM (refused while in use)\n"
    "  restore NAME --generation N make generation N the newest again\n"
    "  rotate-key                  new master key; every vTPM rewrapped, crash-safe\n"
    "  gc                          collect what a crash or a reboot left\n"
    "  pool fill [N]               manufacture EK-certified TPM 2.0 states ahead of time, up to\n"
    "                              N ready (default: the settings' pool_size), and start warm\n"
    "                              vTPMs up to the settings' warm_size\n"
    "  pool status [--json]        ready entries, stale ones, claims under way, warm vTPMs\n"
    "  pool drain                  remove every pooled state, stop every warm vTPM\n"
    "  cdi [--dir DIR] [NAME...]   write the CDI spec (kind oci-vtpm.io/tpm; devices ephemeral\n"
    "                              and each NAME) to DIR/oci-vtpm.json (default /etc/cdi)\n";

static int usage(void)
{
	fputs(usage_text, stderr);
	return 2;
}

static int want_args(int argc, int n)
{
	return argc == n ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct ov_settings s = {0};
	ov_error err = {0};
	const char *config = NULL, *cmd;
	int ret = -1, i = 1;

	ov_log_init(prog);
	if (argc > 2 && strcmp(argv[1], "--config") == 0) {
		config = argv[2];
		i = 3;
	}
	if (i >= argc)
		return usage();
	cmd = argv[i];
	argc -= i;
	argv += i;
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (ov_settings_load(config, &s, &err) < 0)
		goto out;

	if (strcmp(cmd, "init") == 0 && want_args(argc, 1) == 0)
		ret = ov_admin_init(&s, stdout, &err);
	else if (strcmp(cmd, "list") == 0 && argc == 1)
		ret = ov_admin_list(&s, false, stdout, &err);
	else if (strcmp(cmd, "list") == 0 && argc == 2 && strcmp(argv[1], "--json") == 0)
		ret = ov_admin_list(&s, true, stdout, &err);
	else if (strcmp(cmd, "inspect") == 0 && want_args(argc, 2) == 0)
		ret = ov_admin_inspect(&s, argv[1], stdout, &err);
	else if (strcmp(cmd, "export") == 0 && want_args(argc, 3) == 0)
		ret = ov_admin_export(&s, argv[1], argv[2], &err);
	else if (strcmp(cmd, "import") == 0 && want_args(argc, 2) == 0)
		ret = ov_admin_import(&s, argv[1], stdout, &err);
	else if (strcmp(cmd, "rm") == 0 && want_args(argc, 2) == 0)
		ret = ov_admin_rm(&s, argv[1], &err);
	else if (strcmp(cmd, "restore") == 0 && argc == 4 && strcmp(argv[2], "--generation") == 0) {
		char *end;
		unsigned long long gen = strtoull(argv[3], &end, 10);

		if (!*argv[3] || *end || gen == 0) {
			fprintf(stderr, "%s: restore: bad generation \"%s\"\n", prog, argv[3]);
			ret = -2;
		} else {
			ret = ov_admin_restore(&s, argv[1], gen, stdout, &err);
		}
	} else if (strcmp(cmd, "rotate-key") == 0 && want_args(argc, 1) == 0)
		ret = ov_admin_rotate_key(&s, stdout, &err);
	else if (strcmp(cmd, "gc") == 0 && want_args(argc, 1) == 0)
		ret = ov_admin_gc(&s, stdout, &err);
	else if (strcmp(cmd, "pool") == 0 && argc == 2 &&
		 (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "drain") == 0 ||
		  strcmp(argv[1], "fill") == 0))
		ret = ov_admin_pool(&s, argv[1], -1, false, stdout, &err);
	else if (strcmp(cmd, "pool") == 0 && argc == 3 && strcmp(argv[1], "status") == 0 &&
		 strcmp(argv[2], "--json") == 0)
		ret = ov_admin_pool(&s, "status", -1, true, stdout, &err);
	else if (strcmp(cmd, "pool") == 0 && argc == 3 && strcmp(argv[1], "fill") == 0) {
		char *end;
		unsigned long n = strtoul(argv[2], &end, 10);

		if (!*argv[2] || *end || argv[2][0] == '-' || n > 4096) {
			fprintf(stderr, "%s: pool fill: bad count \"%s\" (0 to 4096)\n", prog,
				argv[2]);
			ret = -2;
		} else {
			ret = ov_admin_pool(&s, "fill", (long)n, false, stdout, &err);
		}
	} else if (strcmp(cmd, "cdi") == 0) {
		bool dir_given = argc >= 3 && strcmp(argv[1], "--dir") == 0;
		const char *dir = dir_given ? argv[2] : OV_CDI_DIR_DEFAULT;
		int first = dir_given ? 3 : 1;

		ret = ov_cdi_write(&s, config, dir, (const char *const *)argv + first,
				   (size_t)(argc - first), stdout, &err);
	} else {
		ov_settings_free(&s);
		return usage();
	}
out:
	if (ret == -1)
		ov_error_log(&err);
	ov_settings_free(&s);
	return ret == 0 ? 0 : 1;
}
