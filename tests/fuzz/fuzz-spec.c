/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: config.json and the request in it (io.oci-vtpm.* annotations,
 * OCI_VTPM_* in process.env). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	struct ov_settings s;
	struct ov_request r;
	struct ov_spec sp;
	ov_error err;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (ov_oci_spec_parse(buf, size, "/bundle", &sp, &err) == 0) {
		ov_settings_defaults(&s);
		s.env_keys = size & 1 ? OV_ENV_KEYS_DEFAULT | OV_REQ_NAME : 0;
		if (ov_request_parse(&s, sp.annotations, sp.env, &r, &err) == 0)
			ov_request_free(&r);
		ov_oci_spec_free(&sp);
	}
	free(buf);
	return 0;
}
