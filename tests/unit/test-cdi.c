/* SPDX-License-Identifier: Apache-2.0 */
/* The CDI spec oci-vtpm cdi writes, and the hook's reading of the request
 * its devices put into the hook's environment. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/cdi.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/oci.h"
#include "unit.h"

static struct ov_settings settings;

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		   ? json_object_get_string(v)
		   : NULL;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* hook (a createRuntime or poststop entry of device d) has env entry e */
static bool has_env(json_object *hook, const char *e)
{
	json_object *env = get(hook, "env");

	for (size_t i = 0; env && i < json_object_array_length(env); i++)
		if (streq(json_object_get_string(json_object_array_get_idx(env, i)), e))
			return true;
	return false;
}

static void test_spec(void)
{
	static const char *const names[] = {"db", "web-1"};
	struct ov_cdi_opts o = {.hook = "/opt/ov/oci-vtpm-hook",
				.config = "/etc/ov.json",
				.names = names,
				.n_names = 2};
	cleanup_free char *text = NULL;
	cleanup_json json_object *spec = NULL;
	json_object *devs, *d, *hooks, *h;
	ov_error err = {0};

	CHECK(ov_cdi_spec(&settings, &o, &text, &err) == 0);
	CHECK(text && ov_json_parse(text, strlen(text), "cdi", &spec, &err) == 0);
	CHECK(streq(str(spec, "cdiVersion"), "0.5.0") &&
	      streq(str(spec, "kind"), "oci-vtpm.io/tpm"));
	devs = get(spec, "devices");
	CHECK(devs && json_object_array_length(devs) == 3);
	for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
		const char *want = i == 0 ? "ephemeral" : names[i - 1];
		char name_env[64];

		d = json_object_array_get_idx(devs, i);
		CHECK(streq(str(d, "name"), want));
		hooks = get(get(d, "containerEdits"), "hooks");
		CHECK(hooks && json_object_array_length(hooks) == 2);
		if (!hooks || json_object_array_length(hooks) != 2)
			continue;
		h = json_object_array_get_idx(hooks, 0);
		CHECK(streq(str(h, "hookName"), "createRuntime") &&
		      streq(str(h, "path"), "/opt/ov/oci-vtpm-hook"));
		CHECK(streq(json_object_get_string(json_object_array_get_idx(get(h, "args"), 1)),
			    "createRuntime"));
		CHECK(has_env(h, "OCI_VTPM_CONFIG=/etc/ov.json") &&
		      has_env(h, "OCI_VTPM_ENABLE=true"));
		snprintf(name_env, sizeof(name_env), "OCI_VTPM_NAME=%s", want);
		CHECK(has_env(h, name_env) == (i > 0));
		CHECK(json_object_get_int(get(h, "timeout")) > 0);
		h = json_object_array_get_idx(hooks, 1);
		CHECK(streq(str(h, "hookName"), "poststop"));
		CHECK(streq(json_object_get_string(json_object_array_get_idx(get(h, "args"), 1)),
			    "poststop"));
		/* No container env: the image's ENV and the request stay apart. */
		CHECK(!get(get(d, "containerEdits"), "env"));
	}

	/* Bad names, the reserved one, twice; a relative hook. */
	static const char *const bad[] = {"../x"}, *const eph[] = {"ephemeral"},
				 *const twice[] = {"a", "a"};
	o.names = bad;
	o.n_names = 1;
	free(text);
	text = NULL;
	CHECK(ov_cdi_spec(&settings, &o, &text, &err) < 0 && !text);
	CHECK_ERR(&err, "\"../x\" is not a valid vTPM name");
	o.names = eph;
	CHECK(ov_cdi_spec(&settings, &o, &text, &err) < 0);
	CHECK_ERR(&err, "ephemeral");
	o.names = twice;
	o.n_names = 2;
	CHECK(ov_cdi_spec(&settings, &o, &text, &err) < 0);
	CHECK_ERR(&err, "given twice");
	o.n_names = 0;
	o.hook = "oci-vtpm-hook";
	CHECK(ov_cdi_spec(&settings, &o, &text, &err) < 0);
	CHECK_ERR(&err, "not absolute");
}

static void test_write(void)
{
	char dir[] = "/tmp/ov-cdi-XXXXXX", sub[64], hook[96], *e;
	cleanup_free char *buf = NULL;
	struct ov_settings s = settings;
	ov_error err = {0};
	FILE *out = fopen("/dev/null", "w");
	size_t len;
	struct stat st;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(hook, sizeof(hook), "%s/oci-vtpm-hook", dir);
	fd = open(hook, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	CHECK(fd >= 0);
	close(fd);
	s.hook = hook;
	snprintf(sub, sizeof(sub), "%s/cdi", dir);
	CHECK(ov_cdi_write(&s, sub, NULL, 0, out, &err) == 0);
	CHECK(ov_read_file_at(AT_FDCWD, strcat(sub, "/oci-vtpm.json"), 1 << 20, &buf, &len, &err) ==
	      0);
	CHECK(buf && strstr(buf, hook) && strstr(buf, "\"ephemeral\""));
	CHECK(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0644);
	unlink(sub);
	e = strrchr(sub, '/');
	*e = '\0';
	rmdir(sub);
	/* A hook that is not there is an error naming it. */
	unlink(hook);
	CHECK(ov_cdi_write(&s, sub, NULL, 0, out, &err) < 0);
	CHECK_ERR(&err, "the hook");
	rmdir(sub);
	rmdir(dir);
	fclose(out);
}

/* The request in the hook's own environment, as a CDI device puts it. */
static void test_hook_env(void)
{
	char *envp[] = {(char *)"PATH=/bin", (char *)"OCI_VTPM_CONFIG=/x",
			(char *)"OCI_VTPM_ENABLE=true", (char *)"OCI_VTPM_NAME=db", NULL};
	char *none[] = {(char *)"PATH=/bin", (char *)"OCI_VTPM_CONFIG=/x", NULL};
	cleanup_json json_object *ann =
	    json_tokener_parse("{\"io.oci-vtpm.name\":\"mine\",\"other\":\"1\"}");
	json_object *o = NULL;
	struct ov_request r;
	ov_error err = {0};

	CHECK(ov_request_hook_env(NULL, none, &o, &err) == 0 && !o);
	CHECK(ov_request_hook_env(NULL, envp, &o, &err) == 0 && o);
	CHECK(streq(str(o, "io.oci-vtpm.enable"), "true") &&
	      streq(str(o, "io.oci-vtpm.name"), "db"));
	/* As trusted as an annotation: the settings' env_request (no names by
	 * default) does not apply. */
	CHECK(ov_request_parse(&settings, o, NULL, &r, &err) == 0 && r.enable &&
	      streq(r.name, "db"));
	ov_request_free(&r);
	json_object_put(o);
	/* The container's annotations win, and are kept. */
	CHECK(ov_request_hook_env(ann, envp, &o, &err) == 0 && o);
	CHECK(streq(str(o, "io.oci-vtpm.name"), "mine") && streq(str(o, "other"), "1") &&
	      streq(str(o, "io.oci-vtpm.enable"), "true"));
	json_object_put(o);
}

int main(void)
{
	ov_error err = {0};

	if (ov_settings_parse("{}", 2, &settings, &err) < 0) {
		fprintf(stderr, "settings: %s\n", err.msg);
		return 1;
	}
	test_spec();
	test_write();
	test_hook_env();
	ov_settings_free(&settings);
	return unit_done("cdi");
}
