/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm cdi: write the CDI spec (lib/cdi.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "oci-vtpm/cdi.h"

int cli_cdi(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	const char *dir = OV_CDI_DIR_DEFAULT;
	int first = 1;

	if (argc >= 2 && strcmp(argv[1], "--dir") == 0) {
		if (argc < 3)
			return CLI_USAGE;
		dir = argv[2];
		first = 3;
	}
	for (int i = first; i < argc; i++)
		if (argv[i][0] == '-')
			return CLI_USAGE;
	return ov_cdi_write(s, dir, (const char *const *)argv + first, (size_t)(argc - first),
			    stdout, err);
}
