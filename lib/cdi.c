/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/cdi.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/runtime.h"
#include "oci-vtpm/spec.h"

/* One device: its name, and createRuntime and poststop hooks whose env
 * carries the request (name NULL: ephemeral). */
static json_object *device(const struct ov_settings *s, const struct ov_cdi_opts *o,
			   const char *dev, const char *name)
{
	cleanup_free char *name_env = NULL;
	const char *env[] = {OV_ENV_PREFIX "ENABLE=true", NULL, NULL};
	struct ov_hook_opts ho = {.path = o->hook, .config = o->config, .env = env};
	static const char *const stages[] = {"createRuntime", "poststop"};
	cleanup_json json_object *d = json_object_new_object();
	json_object *edits = json_object_new_object(), *hooks = json_object_new_array();

	if (!d || !edits || json_object_object_add(d, "name", json_object_new_string(dev)) < 0 ||
	    json_object_object_add(d, "containerEdits", edits) < 0) {
		json_object_put(edits);
		json_object_put(hooks);
		return NULL;
	}
	if (!hooks || json_object_object_add(edits, "hooks", hooks) < 0) {
		json_object_put(hooks);
		return NULL;
	}
	if (name) {
		if (asprintf(&name_env, OV_ENV_PREFIX "NAME=%s", name) < 0) {
			name_env = NULL;
			return NULL;
		}
		env[1] = name_env;
	}
	ov_spec_hook_timeouts(s, 1, &ho);
	for (size_t i = 0; i < 2; i++) {
		json_object *h =
		    ov_spec_hook_entry(&ho, stages[i], i == 0 ? ho.start_timeout : ho.stop_timeout);

		if (!h ||
		    json_object_object_add(h, "hookName", json_object_new_string(stages[i])) < 0 ||
		    json_object_array_add(hooks, h) < 0) {
			json_object_put(h);
			return NULL;
		}
	}
	return take_ptr(d);
}

static int check_names(const struct ov_cdi_opts *o, ov_error *err)
{
	for (size_t i = 0; i < o->n_names; i++) {
		const char *n = o->names[i];

		if (!ov_name_valid(n))
			return ov_error_set(err, 0,
					    "\"%s\" is not a valid vTPM name (letters, digits, "
					    "'_', '.', '-'; at most 128)",
					    n);
		if (strcmp(n, OV_CDI_EPHEMERAL) == 0)
			return ov_error_set(err, 0, "\"%s\" is the CDI device of ephemeral vTPMs",
					    n);
		for (size_t j = 0; j < i; j++)
			if (strcmp(n, o->names[j]) == 0)
				return ov_error_set(err, 0, "vTPM name \"%s\" given twice", n);
	}
	return 0;
}

int ov_cdi_spec(const struct ov_settings *s, const struct ov_cdi_opts *o, char **out, ov_error *err)
{
	cleanup_json json_object *spec = NULL;
	json_object *devs, *d;
	const char *text;
	size_t len;

	*out = NULL;
	if (!o->hook || o->hook[0] != '/')
		return ov_error_set(err, 0, "CDI spec: the hook's path is not absolute");
	if (check_names(o, err) < 0)
		return ov_error_wrap(err, "CDI spec");
	spec = json_object_new_object();
	devs = json_object_new_array();
	if (!spec || !devs ||
	    json_object_object_add(spec, "cdiVersion", json_object_new_string(OV_CDI_VERSION)) <
		0 ||
	    json_object_object_add(spec, "kind", json_object_new_string(OV_CDI_KIND)) < 0 ||
	    json_object_object_add(spec, "devices", devs) < 0) {
		json_object_put(devs);
		return ov_error_set(err, ENOMEM, "CDI spec");
	}
	for (size_t i = 0; i <= o->n_names; i++) {
		const char *name = i == 0 ? NULL : o->names[i - 1];

		d = device(s, o, name ? name : OV_CDI_EPHEMERAL, name);
		if (!d || json_object_array_add(devs, d) < 0) {
			json_object_put(d);
			return ov_error_set(err, ENOMEM, "CDI spec");
		}
	}
	text = json_object_to_json_string_length(
	    spec, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!text || !(*out = malloc(len + 2)))
		return ov_error_set(err, ENOMEM, "CDI spec");
	memcpy(*out, text, len);
	(*out)[len] = '\n';
	(*out)[len + 1] = '\0';
	return 0;
}

int ov_cdi_write(const struct ov_settings *s, const char *dir, const char *const *names,
		 size_t n_names, FILE *out, ov_error *err)
{
	const char *config = s->path;

	cleanup_free char *text = NULL, *cfg = NULL;
	cleanup_close int dfd = -1;
	char hook[PATH_MAX];
	struct ov_cdi_opts o = {.hook = hook, .names = names, .n_names = n_names};

	if (config) {
		cfg = realpath(config, NULL);
		if (!cfg)
			return ov_error_set(err, errno, "settings %s", config);
		o.config = cfg;
	}
	if (ov_rt_hook_path(s->hook, hook, sizeof(hook), err) < 0 ||
	    ov_cdi_spec(s, &o, &text, err) < 0)
		return -1;
	/* The directory the admin names is used as it is (/var/run is a
	 * symlink on Debian); one that is missing is made. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT)
		dfd = ov_mkdir_p(dir, 0755, err);
	else if (dfd < 0)
		ov_error_set(err, errno, "opening %s", dir);
	if (dfd < 0)
		return ov_error_wrap(err, "CDI spec directory");
	if (ov_write_file_atomic(dfd, OV_CDI_FILE, text, strlen(text), 0644, err) < 0)
		return ov_error_wrap(err, "%s/%s", dir, OV_CDI_FILE);
	fprintf(out, "wrote %s/%s: kind %s, devices %s", dir, OV_CDI_FILE, OV_CDI_KIND,
		OV_CDI_EPHEMERAL);
	for (size_t i = 0; i < n_names; i++)
		fprintf(out, ", %s", names[i]);
	fputc('\n', out);
	return 0;
}
