/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "oci-vtpm/error.h"
#include "unit.h"

int main(void)
{
	ov_error err = {0};
	char big[3000];

	CHECK(ov_error_set(&err, ENOENT, "opening %s", "x") == -1);
	CHECK(strcmp(err.msg, "opening x: No such file or directory") == 0);
	CHECK(err.code == ENOENT);
	CHECK(ov_error_wrap(&err, "vTPM %d", 0) == -1);
	CHECK(strcmp(err.msg, "vTPM 0: opening x: No such file or directory") == 0);
	CHECK(err.code == ENOENT);

	/* Overlong messages are cut, never overflow, and stay one string. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ov_error_set(&err, 0, "%s", big);
	CHECK(strlen(err.msg) == OV_ERROR_MAX - 1);
	ov_error_wrap(&err, "%s", big);
	CHECK(strlen(err.msg) == OV_ERROR_MAX - 1);
	ov_error_set(&err, 0, "inner");
	ov_error_wrap(&err, "%s", big);
	CHECK(strlen(err.msg) < OV_ERROR_MAX);

	/* A prefix that just fits, and one a byte longer: never past the end. */
	for (size_t plen = OV_ERROR_MAX - 4; plen < OV_ERROR_MAX + 2; plen++) {
		memset(big, 'p', plen);
		big[plen] = '\0';
		ov_error_set(&err, 0, "inner");
		ov_error_wrap(&err, "%s", big);
		CHECK(strlen(err.msg) < OV_ERROR_MAX);
	}

	ov_error_clear(&err);
	CHECK(err.code == 0 && err.msg[0] == '\0');
	return unit_done("error");
}
