/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: /etc/oci-vtpm/config.json. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	struct ov_settings s;
	ov_error err;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (ov_settings_parse(buf, size, &s, &err) == 0)
		ov_settings_free(&s);
	free(buf);
	return 0;
}
