/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the OCI state a hook reads from stdin. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	struct ov_state st;
	ov_error err;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (ov_oci_state_parse(buf, size, &st, &err) == 0)
		ov_oci_state_free(&st);
	free(buf);
	return 0;
}
