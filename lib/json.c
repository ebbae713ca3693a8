/* SPDX-License-Identifier: Apache-2.0 */
/* JSON helpers over json-c: strict parsing and typed field reads. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "oci-vtpm/json.h"

int ov_json_parse(const char *buf, size_t len, const char *what, json_object **out, ov_error *err)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	size_t off;

	if (len > INT_MAX)
		return ov_error_set(err, 0, "%s: too large", what);
	if (strlen(buf) != len)
		return ov_error_set(err, 0, "%s: invalid JSON: NUL byte", what);
	tok = json_tokener_new_ex(64);
	if (!tok)
		return ov_error_set(err, ENOMEM, "%s", what);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	off = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		if (obj)
			json_object_put(obj);
		return ov_error_set(err, 0, "%s: invalid JSON: %s", what,
				    jerr == json_tokener_continue ? "unexpected end of input"
								  : json_tokener_error_desc(jerr));
	}
	for (; off < len; off++) {
		if (!strchr(" \t\r\n", buf[off])) {
			json_object_put(obj);
			return ov_error_set(err, 0, "%s: invalid JSON: trailing data", what);
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return ov_error_set(err, 0, "%s: not a JSON object", what);
	}
	*out = obj;
	return 0;
}

const char *ov_json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int ov_json_u64(json_object *o, const char *key, unsigned long long *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return -1;
	*out = (unsigned long long)json_object_get_int64(v);
	return 0;
}
