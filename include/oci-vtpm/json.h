/* SPDX-License-Identifier: Apache-2.0 */
/* JSON helpers over json-c. */
#ifndef OCI_VTPM_JSON_H
#define OCI_VTPM_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#include "oci-vtpm/error.h"

/* Parse JSON text into an object, with a one-line error naming what: no
 * NUL byte, no trailing data, an object at the top. */
int ov_json_parse(const char *buf, size_t len, const char *what, json_object **out, ov_error *err);
/* key's value if it is a string, else NULL (borrowed from o). */
const char *ov_json_str(json_object *o, const char *key);
/* key's value if it is a non-negative integer: 0, else -1. */
int ov_json_u64(json_object *o, const char *key, unsigned long long *out);

/* json_object_put on scope exit. */
static inline void ov_json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define cleanup_json __attribute__((cleanup(ov_json_putp)))

#endif
