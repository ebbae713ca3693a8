/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm log ID [N]: the measured launch's event log (CEL-JSON) of a
 * running container's vTPM N (default 0). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/util.h"

int cli_log(const struct ov_settings *s, int argc, char **argv, ov_error *err)
{
	cleanup_free char *text = NULL;
	unsigned idx = 0;
	size_t len;
	char *end;

	if (argc < 2 || argc > 3)
		return CLI_USAGE;
	if (argc == 3) {
		unsigned long v = strtoul(argv[2], &end, 10);

		if (!*argv[2] || *end || v >= OV_MAX_TPMS)
			return CLI_USAGE;
		idx = (unsigned)v;
	}
	if (ov_measure_log_read(s->run_dir, argv[1], idx, &text, &len, err) < 0)
		return CLI_ERROR;
	fwrite(text, 1, len, stdout);
	return 0;
}
