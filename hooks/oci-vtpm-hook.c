/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci-vtpm-hook [STAGE]: an OCI hook. createRuntime and prestart start the
 * container's vTPMs; poststop stops them. The OCI state comes on stdin.
 * Without STAGE (an oci-hooks(5) file gives every stage the same argv) the
 * state's status tells: "stopped" is poststop, anything else a start.
 *
 * runc execs the hook at every container's start and stop, so a start that
 * asks for nothing returns as soon as it knows: before the settings and the
 * log when no annotation names io.oci-vtpm.* and no OCI_VTPM_* request is
 * in process.env or in the hook's own environment (its hooks[] entry's
 * env, as a CDI spec's device sets it). A stop always looks for what is
 * recorded under the container's id, and leaves alone a record of another
 * container with that id (another runtime root: another bundle).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/vtpm.h"

static const char prog[] = "oci-vtpm-hook";

static const char help_text[] =
    "usage: oci-vtpm-hook [createRuntime|prestart|poststop] < state.json\n"
    "       oci-vtpm-hook --help | --version\n"
    "\n"
    "An OCI hook: createRuntime (or prestart) starts the vTPMs a container's\n"
    "io.oci-vtpm.* annotations ask for, poststop stops them. The OCI state comes\n"
    "on stdin; without a stage its status tells. Settings: $OCI_VTPM_CONFIG, else\n"
    "/etc/oci-vtpm/config.json. See oci-vtpm-hook(1) and oci-vtpm.json(5).\n";

static int usage(void)
{
	fprintf(stderr, "%s: usage: %s [createRuntime|prestart|poststop] < state.json\n", prog,
		prog);
	return 2;
}

/* Does any annotation name io.oci-vtpm.*? Bad values are ov_request_parse's
 * to report, so any such key takes the whole way. */
static bool asks(json_object *annotations)
{
	const size_t plen = strlen(OV_ANNOTATION_PREFIX);

	if (!annotations)
		return false;
	json_object_object_foreach(annotations, key, v)
	{
		(void)v;
		if (strncmp(key, OV_ANNOTATION_PREFIX, plen) == 0)
			return true;
	}
	return false;
}

/* Start the container's vTPMs (the container's init keeps them in use
 * until it is recorded), then place them in it; vTPMs running already
 * (started by the shim, podman's precreate stage, an earlier stage) were
 * placed through config.json: the container is only recorded. */
static int start(const struct ov_settings *s, const struct ov_state *st, const struct ov_spec *sp,
		 json_object *annotations, ov_error *err)
{
	struct ov_request r;
	int ret = 0;

	if (ov_request_parse(s, annotations, sp->env, &r, err) < 0)
		return -1;
	if (r.enable && r.provided) {
		/* oci-vtpm-runtime started and placed them: record the
		 * container, nothing more. */
		ret = ov_vtpm_adopt(s, st->id, st->pid, sp, &r, err);
	} else if (r.enable) {
		ret = ov_vtpm_start(s, st->id, st->bundle, &r, st->pid, err);
		if (ret == 0)
			ret = ov_vtpm_attach(s, st->id, st->pid, sp, &r, err);
		else if (ret > 0)
			ret = ov_vtpm_adopt(s, st->id, st->pid, sp, &r, err);
	}
	ov_request_free(&r);
	return ret;
}

/* Did oci-vtpm-runtime provide the vTPMs (it stops them itself)? A
 * container that claims so without it got none: createRuntime refuses
 * it, as no vTPM of its id runs. */
static bool provided_by_runtime(json_object *annotations)
{
	json_object *v;

	return annotations &&
	       json_object_object_get_ex(annotations, OV_ANNOTATION_PREFIX "provided-by", &v) &&
	       json_object_is_type(v, json_type_string) &&
	       strcmp(json_object_get_string(v), OV_PROVIDER_RUNTIME) == 0;
}

int main(int argc, char **argv)
{
	struct ov_settings s = {0};
	struct ov_state st = {0};
	struct ov_spec sp = {0};
	ov_error err = {0}, spec_err = {0};
	cleanup_json json_object *own_request = NULL;
	bool stop = false;
	int spec_ret = 0, ret = 1;

	ov_log_init(prog);
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("%s %s\n", prog, OV_VERSION);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(help_text, stdout);
		return 0;
	}
	if (argc > 2)
		return usage();
	if (argc == 2 && strcmp(argv[1], "poststop") == 0)
		stop = true;
	else if (argc == 2 && strcmp(argv[1], "createRuntime") != 0 &&
		 strcmp(argv[1], "prestart") != 0)
		return usage();

	if (ov_oci_state_read(STDIN_FILENO, &st, &err) < 0)
		goto out;
	if (argc == 1)
		stop = st.status && strcmp(st.status, "stopped") == 0;
	ov_log_set_id(st.id);
	if (stop && provided_by_runtime(st.annotations)) {
		/* oci-vtpm-runtime stops them after the runtime's delete. */
		ret = 0;
		goto out;
	}
	if (!stop) {
		/* The request is in config.json: its annotations (the state's
		 * are the same) or process.env. A config.json that cannot be
		 * read is reported below, through the log the settings name. */
		spec_ret = ov_oci_spec_load(st.bundle, &sp, &spec_err);
		if (spec_ret == 0 &&
		    ov_request_hook_env(sp.annotations, environ, &own_request, &spec_err) < 0)
			spec_ret = -1;
		if (spec_ret == 0 && !asks(own_request ? own_request : sp.annotations) &&
		    !ov_request_in_env(sp.env)) {
			ret = 0;
			goto out;
		}
	}
	if (ov_settings_load(NULL, &s, &err) < 0)
		goto out;
	ov_log_set_level(s.log_level);
	if (s.log_file && ov_log_open_file(s.log_file, &err) < 0)
		goto out;
	if (spec_ret < 0) {
		err = spec_err;
		goto out;
	}
	if (stop ? ov_vtpm_stop_owned(&s, st.id, st.bundle, st.pid, s.stop_async, &err)
		 : start(&s, &st, &sp, own_request ? own_request : sp.annotations, &err))
		goto out;
	ret = 0;
out:
	if (ret)
		ov_error_log(&err);
	ov_oci_spec_free(&sp);
	ov_settings_free(&s);
	ov_oci_state_free(&st);
	return ret;
}
