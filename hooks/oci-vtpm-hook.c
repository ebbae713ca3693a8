/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci-vtpm-hook [STAGE]: an OCI hook. createRuntime and prestart start the
 * container's vTPMs; poststop stops them. The OCI state comes on stdin.
 * Without STAGE (an oci-hooks(5) file gives every stage the same argv) the
 * state's status tells: "stopped" is poststop, anything else a start.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/vtpm.h"

static const char prog[] = "oci-vtpm-hook";

static int usage(void)
{
	fprintf(stderr, "%s: usage: %s [createRuntime|prestart|poststop] < state.json\n", prog,
		prog);
	return 2;
}

static int start(const struct ov_settings *s, const struct ov_state *st, ov_error *err)
{
	struct ov_spec sp;
	struct ov_request r;
	int ret;

	if (ov_spec_load(st->bundle, &sp, err) < 0)
		return -1;
	ret = ov_request_parse(s, sp.annotations, &r, err);
	if (ret == 0 && r.enable)
		ret = ov_vtpm_start(s, st, &sp, &r, err);
	if (ret == 0)
		ov_request_free(&r);
	ov_spec_free(&sp);
	return ret;
}

int main(int argc, char **argv)
{
	struct ov_settings s = {0};
	struct ov_state st = {0};
	ov_error err = {0};
	bool stop = false;
	int ret = 1;

	ov_log_init(prog);
	if (argc > 2)
		return usage();
	if (argc == 2 && strcmp(argv[1], "poststop") == 0)
		stop = true;
	else if (argc == 2 && strcmp(argv[1], "createRuntime") != 0 &&
		 strcmp(argv[1], "prestart") != 0)
		return usage();

	if (ov_state_read(STDIN_FILENO, &st, &err) < 0)
		goto out;
	if (argc == 1)
		stop = st.status && strcmp(st.status, "stopped") == 0;
	ov_log_set_id(st.id);
	if (ov_settings_load(NULL, &s, &err) < 0)
		goto out;
	ov_log_set_level(s.log_level);
	if (s.log_file && ov_log_open_file(s.log_file, &err) < 0)
		goto out;
	if (stop ? ov_vtpm_stop(&s, st.id, &err) : start(&s, &st, &err))
		goto out;
	ret = 0;
out:
	if (ret)
		ov_error_log(&err);
	ov_settings_free(&s);
	ov_state_free(&st);
	return ret;
}
