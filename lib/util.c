/* SPDX-License-Identifier: Apache-2.0 */
#include <pwd.h>
#include <string.h>
#include <time.h>

#include "oci-vtpm/util.h"

double ov_util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int ov_util_user(const char *name, struct ov_user *u, ov_error *err)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int e;

	u->uid = 0;
	u->gid = 0;
	u->name = NULL;
	if (!name || !*name || strcmp(name, "root") == 0)
		return 0;
	e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (!res)
		return ov_error_set(err, e, "swtpm_user \"%s\": no such user", name);
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	u->name = name;
	return 0;
}

const char *ov_util_tpm_version(enum ov_tpm_version v)
{
	return v == OV_TPM_1_2 ? "1.2" : "2.0";
}

int ov_util_ms_left(int64_t deadline)
{
	int64_t left = deadline - (int64_t)ov_util_mono_ms();

	return left < 0 ? 0 : (int)left;
}
