/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer: what the shim parses. The input is split at NUL bytes into an
 * argv for ov_rt_parse; the whole input is also given to the spec edit as
 * config.json, with the socket backend and no pre-creation (id NULL), so
 * nothing is started.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/runtime.h"
#include "oci-vtpm/prepare.h"
#include "oci-vtpm/spec.h"

#define ARGS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[ARGS_MAX + 1], *out = NULL;
	struct ov_prepare_result res;
	struct ov_settings s;
	struct ov_rt_args a;
	size_t out_len;
	ov_error err;
	int argc = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; p < buf + size + 1 && argc < ARGS_MAX; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	ov_rt_parse(argc, argv, &a, &err);

	memcpy(buf, data, size);
	ov_settings_defaults(&s);
	s.backend = OV_BACKEND_SOCKET;
	struct ov_prepare e = {.s = &s, .hook = "/usr/bin/oci-vtpm-hook"};
	if (ov_prepare_text(buf, size, &e, &out, &out_len, &res, &err) == 0)
		free(out);
	free(buf);
	return 0;
}
