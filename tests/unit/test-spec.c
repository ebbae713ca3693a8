/* SPDX-License-Identifier: Apache-2.0 */
/* The config.json edit of oci-vtpm-runtime (and podman's precreate stage). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/prepare.h"
#include "oci-vtpm/spec.h"
#include "oci-vtpm/vtpm.h"
#include "unit.h"

#define HOOK "/opt/ov/bin/oci-vtpm-hook"

static struct ov_settings settings;

static json_object *parse(const char *text)
{
	json_object *o = NULL;
	ov_error err = {0};

	if (ov_json_parse(text, strlen(text), "test", &o, &err) < 0)
		fprintf(stderr, "  parse: %s\n", err.msg);
	return o;
}

/* The object at a dotted path ("linux.resources.devices"), or NULL. */
static json_object *at(json_object *o, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		if (!json_object_object_get_ex(o, k, &o))
			return NULL;
	return o;
}

static size_t len_at(json_object *o, const char *path)
{
	json_object *a = at(o, path);

	return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static const char *str_at(json_object *o, const char *path)
{
	json_object *v = at(o, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Run the edit as the precreate stage does (no container id). */
static int edit(const char *in, const char *config, char **out, struct ov_prepare_result *res,
		ov_error *err)
{
	struct ov_prepare e = {.s = &settings, .hook = HOOK, .config = config};
	size_t n;

	return ov_prepare_text(in, strlen(in), &e, out, &n, res, err);
}

static const char enabled[] =
    "{\"ociVersion\":\"1.0.2\",\"x-vendor\":{\"a\":[1,2,{\"b\":null}],\"big\":18446744073709551615,"
    "\"f\":0.25,\"s\":\"a/b\"},\"process\":{\"args\":[\"sh\"],\"weird\":true},"
    "\"root\":{\"path\":\"rootfs\"},"
    "\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"resources\":{\"devices\":"
    "[{\"allow\":false,\"access\":\"rwm\"}],\"x-res\":7},\"x-linux\":\"kept\"},"
    "\"hooks\":{\"prestart\":[{\"path\":\"/usr/bin/other-hook\"}]},"
    "\"annotations\":{\"io.oci-vtpm.enable\":\"true\",\"other\":\"v\"}}";

static void test_edit_keeps_unknown_fields(void)
{
	cleanup_json json_object *before = parse(enabled), *after = NULL;
	struct ov_prepare_result res;
	ov_error err = {0};
	char *out = NULL;
	json_object *h;

	CHECK(edit(enabled, "/etc/ov/test.json", &out, &res, &err) == 0);
	CHECK(res.enabled && !res.precreated);
	CHECK(out != NULL);
	if (!out)
		return;
	after = parse(out);
	CHECK(after != NULL);
	/* Everything that was there is still there, the same. */
	json_object_object_foreach(before, key, val)
	{
		json_object *v;

		if (strcmp(key, "hooks") == 0)
			continue;
		CHECK(json_object_object_get_ex(after, key, &v) && json_object_equal(val, v));
		if (!(json_object_object_get_ex(after, key, &v) && json_object_equal(val, v)))
			fprintf(stderr, "  \"%s\" changed: %s\n", key,
				json_object_to_json_string(v));
	}
	CHECK(strstr(out, "18446744073709551615") != NULL);
	CHECK(strstr(out, "\"a/b\"") != NULL); /* no "a\/b" */
	CHECK(json_object_equal(at(before, "hooks.prestart"), at(after, "hooks.prestart")));

	/* Our hooks, exactly. */
	CHECK(len_at(after, "hooks.createRuntime") == 1 && len_at(after, "hooks.poststop") == 1);
	h = json_object_array_get_idx(at(after, "hooks.createRuntime"), 0);
	CHECK(streq(str_at(h, "path"), HOOK));
	CHECK(len_at(h, "args") == 2 &&
	      streq(json_object_get_string(json_object_array_get_idx(at(h, "args"), 0)),
		    "oci-vtpm-hook") &&
	      streq(json_object_get_string(json_object_array_get_idx(at(h, "args"), 1)),
		    "createRuntime"));
	CHECK(len_at(h, "env") == 1 &&
	      streq(json_object_get_string(json_object_array_get_idx(at(h, "env"), 0)),
		    "OCI_VTPM_CONFIG=/etc/ov/test.json"));
	/* defaults: start 10 s per TPM, stop 3 x 5 s per TPM, + 10 */
	CHECK(json_object_get_int(at(h, "timeout")) == 20);
	h = json_object_array_get_idx(at(after, "hooks.poststop"), 0);
	CHECK(streq(str_at(h, "path"), HOOK));
	CHECK(
	    streq(json_object_get_string(json_object_array_get_idx(at(h, "args"), 1)), "poststop"));
	CHECK(json_object_get_int(at(h, "timeout")) == 25);
	free(out);
}

static void test_edit_idempotent(void)
{
	struct ov_prepare_result res;
	ov_error err = {0};
	char *once = NULL, *twice = NULL;
	cleanup_json json_object *o = NULL;
	json_object *h;

	CHECK(edit(enabled, NULL, &once, &res, &err) == 0 && once);
	if (!once)
		return;
	/* The second run finds everything there: no change at all. */
	CHECK(edit(once, NULL, &twice, &res, &err) == 0);
	CHECK(res.enabled && twice == NULL);
	o = parse(once);
	CHECK(len_at(o, "hooks.createRuntime") == 1 && len_at(o, "hooks.poststop") == 1);
	/* Without a settings file the hook gets an empty environment. */
	h = json_object_array_get_idx(at(o, "hooks.createRuntime"), 0);
	CHECK(at(h, "env") && len_at(h, "env") == 0);
	free(once);
	free(twice);

	/* The hook already there from an oci-hooks(5) file (any directory, no
	 * stage argument): nothing added. */
	const char *hooked =
	    "{\"hooks\":{\"createRuntime\":[{\"path\":\"/usr/libexec/x/oci-vtpm-hook\","
	    "\"args\":[\"oci-vtpm-hook\"]}],\"poststop\":[{\"path\":\"/usr/libexec/x/"
	    "oci-vtpm-hook\","
	    "\"args\":[\"oci-vtpm-hook\"]}]},\"annotations\":{\"io.oci-vtpm.enable\":\"true\"}}";
	CHECK(edit(hooked, NULL, &once, &res, &err) == 0 && res.enabled && once == NULL);

	/* Ours at prestart counts for the start; poststop is still added. */
	const char *pre = "{\"hooks\":{\"prestart\":[{\"path\":\"/x/oci-vtpm-hook\"}]},"
			  "\"annotations\":{\"io.oci-vtpm.enable\":\"true\"}}";
	CHECK(edit(pre, NULL, &once, &res, &err) == 0 && once);
	json_object_put(o);
	o = parse(once);
	CHECK(len_at(o, "hooks.prestart") == 1 && len_at(o, "hooks.createRuntime") == 0);
	CHECK(len_at(o, "hooks.poststop") == 1);
	free(once);

	/* A hook merely named like ours is not ours. */
	const char *similar =
	    "{\"hooks\":{\"createRuntime\":[{\"path\":\"/x/oci-vtpm-hook-old\"}],"
	    "\"poststop\":null},\"annotations\":{\"io.oci-vtpm.enable\":\"true\"}}";
	CHECK(edit(similar, NULL, &once, &res, &err) == 0 && once);
	json_object_put(o);
	o = parse(once);
	CHECK(len_at(o, "hooks.createRuntime") == 2 && len_at(o, "hooks.poststop") == 1);
	free(once);
}

static void test_edit_not_asked(void)
{
	static const char *const inputs[] = {
	    "{\"annotations\":{\"io.oci-vtpm.enable\":\"false\"}}",
	    "{\"annotations\":{\"other\":\"true\"}}",
	    "{}",
	};
	struct ov_prepare_result res;
	ov_error err = {0};
	char *out = NULL;

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		CHECK(edit(inputs[i], "/x.json", &out, &res, &err) == 0);
		CHECK(out == NULL && !res.enabled);
	}
	/* Bad requests are errors that name the key. */
	CHECK(edit("{\"annotations\":{\"io.oci-vtpm.enable\":\"yes\"}}", NULL, &out, &res, &err) <
	      0);
	CHECK_ERR(&err, "io.oci-vtpm.enable");
	CHECK(edit("{\"annotations\":{\"io.oci-vtpm.colour\":\"red\"}}", NULL, &out, &res, &err) <
	      0);
	CHECK_ERR(&err, "unknown annotation io.oci-vtpm.colour");
	CHECK(edit("{\"annotations\":{\"io.oci-vtpm.enable\":\"true\"},\"hooks\":[]}", NULL, &out,
		   &res, &err) < 0);
	CHECK_ERR(&err, "\"hooks\" is not an object");
	CHECK(edit("not json", NULL, &out, &res, &err) < 0);
	CHECK_ERR(&err, "invalid JSON");
}

/* Does the config text carry the annotation io.oci-vtpm.enable=true? */
static bool annotated_enable(const char *text)
{
	json_object *o = text ? parse(text) : NULL, *ann, *v;
	bool yes = o && json_object_object_get_ex(o, "annotations", &ann) &&
		   json_object_object_get_ex(ann, "io.oci-vtpm.enable", &v) &&
		   streq(json_object_get_string(v), "true");

	if (o)
		json_object_put(o);
	return yes;
}

/* Asked by process.env or by the settings' default_enable: the edit says
 * so in the annotation io.oci-vtpm.enable, for the hook. */
static void test_edit_env_and_default(void)
{
	struct ov_prepare_result res;
	ov_error err = {0};
	char *out = NULL;

	CHECK(edit("{\"process\":{\"env\":[\"PATH=/bin\",\"OCI_VTPM_ENABLE=true\"]}}", NULL, &out,
		   &res, &err) == 0);
	CHECK(out && res.enabled);
	CHECK(annotated_enable(out));
	free(out);
	out = NULL;
	CHECK(edit("{\"process\":{\"env\":[\"OCI_VTPM_COUNT=99\"]}}", NULL, &out, &res, &err) < 0);
	CHECK_ERR(&err, "environment OCI_VTPM_COUNT: bad value \"99\"");
	CHECK(edit("{\"process\":{\"env\":\"OCI_VTPM_ENABLE=true\"}}", NULL, &out, &res, &err) < 0);
	CHECK_ERR(&err, "\"process.env\" is not an array");

	settings.default_enable = true;
	CHECK(edit("{\"annotations\":{\"other\":\"x\"}}", NULL, &out, &res, &err) == 0);
	CHECK(out && res.enabled && annotated_enable(out));
	free(out);
	out = NULL;
	CHECK(edit("{\"process\":{\"env\":[\"OCI_VTPM_ENABLE=false\"]}}", NULL, &out, &res, &err) ==
	      0);
	CHECK(!out && !res.enabled);
	settings.default_enable = false;
}

static int check_device(json_object *spec, const char *path, int64_t major, int64_t minor)
{
	json_object *devs = at(spec, "linux.devices"), *d = NULL;
	int found = 0;

	for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
		json_object *e = json_object_array_get_idx(devs, i);

		if (streq(str_at(e, "path"), path)) {
			d = e;
			found++;
		}
	}
	if (found != 1 || !streq(str_at(d, "type"), "c") ||
	    json_object_get_int64(at(d, "major")) != major ||
	    json_object_get_int64(at(d, "minor")) != minor ||
	    json_object_get_int(at(d, "fileMode")) != 0600 || !at(d, "uid") ||
	    json_object_get_int(at(d, "uid")) != 0 || !at(d, "gid") ||
	    json_object_get_int(at(d, "gid")) != 0) {
		fprintf(stderr, "  %s: %d entries, %s\n", path, found,
			json_object_to_json_string(d));
		return 0;
	}
	return 1;
}

/* How many allow rules {c major:minor rwm} there are, and where the last is. */
static int count_rules(json_object *spec, int64_t major, int64_t minor, size_t *last)
{
	json_object *rules = at(spec, "linux.resources.devices");
	int n = 0;

	for (size_t i = 0; rules && i < json_object_array_length(rules); i++) {
		json_object *r = json_object_array_get_idx(rules, i);

		if (json_object_get_boolean(at(r, "allow")) && streq(str_at(r, "type"), "c") &&
		    at(r, "major") && json_object_get_int64(at(r, "major")) == major &&
		    at(r, "minor") && json_object_get_int64(at(r, "minor")) == minor &&
		    streq(str_at(r, "access"), "rwm")) {
			n++;
			if (last)
				*last = i;
		}
	}
	return n;
}

static void test_devices(void)
{
	cleanup_json json_object *spec = parse(
	    "{\"linux\":{\"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,"
	    "\"minor\":229}],\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}}}");
	cleanup_json json_object *empty = parse("{}");
	cleanup_json json_object *bad = parse("{\"linux\":{\"devices\":{}}}");
	struct ov_record rec = {0};
	ov_error err = {0};
	size_t last = 0;

	CHECK(ov_spec_add_device(spec, "/dev/tpm0", 10, 224, &err) == 1);
	CHECK(check_device(spec, "/dev/tpm0", 10, 224));
	/* untouched */
	CHECK(streq(
	    json_object_to_json_string_ext(json_object_array_get_idx(at(spec, "linux.devices"), 0),
					   JSON_C_TO_STRING_PLAIN),
	    "{\"path\":\"\\/dev\\/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229}"));
	CHECK(count_rules(spec, 10, 224, &last) == 1);
	/* after the deny-all, so that it wins */
	CHECK(last == 1 && len_at(spec, "linux.resources.devices") == 2);

	/* Twice: nothing more. */
	CHECK(ov_spec_add_device(spec, "/dev/tpm0", 10, 224, &err) == 0);
	CHECK(len_at(spec, "linux.devices") == 2 && count_rules(spec, 10, 224, NULL) == 1);

	/* Other numbers for the same path (a later vTPM): replaced. */
	CHECK(ov_spec_add_device(spec, "/dev/tpm0", 253, 65536, &err) == 1);
	CHECK(check_device(spec, "/dev/tpm0", 253, 65536));
	CHECK(count_rules(spec, 10, 224, NULL) == 0 && count_rules(spec, 253, 65536, NULL) == 1);
	CHECK(len_at(spec, "linux.devices") == 2 && len_at(spec, "linux.resources.devices") == 2);

	/* Nothing there yet: everything made. */
	CHECK(ov_spec_add_device(empty, "/dev/tpmrm0", 253, 65537, &err) == 1);
	CHECK(check_device(empty, "/dev/tpmrm0", 253, 65537));
	CHECK(count_rules(empty, 253, 65537, NULL) == 1);

	CHECK(ov_spec_add_device(bad, "/dev/tpm0", 10, 224, &err) < 0);
	CHECK_ERR(&err, "\"linux.devices\" is not an array");
	CHECK(ov_spec_add_device(empty, "dev/tpm0", 10, 224, &err) < 0);

	/* From a record: /dev/tpmN and /dev/tpmrmN by index; TPM 1.2 has no rm. */
	json_object_put(empty);
	empty = parse("{}");
	rec.count = 2;
	rec.tpms[0].dev = makedev(10, 224);
	rec.tpms[0].rmdev = makedev(253, 65536);
	rec.tpms[1].dev = makedev(253, 1);
	rec.tpms[1].rmdev = 0;
	CHECK(ov_spec_add_record_devices(empty, &rec, &err) == 1);
	CHECK(check_device(empty, "/dev/tpm0", 10, 224));
	CHECK(check_device(empty, "/dev/tpmrm0", 253, 65536));
	CHECK(check_device(empty, "/dev/tpm1", 253, 1));
	CHECK(len_at(empty, "linux.devices") == 3 && len_at(empty, "linux.resources.devices") == 3);
	CHECK(ov_spec_add_record_devices(empty, &rec, &err) == 0);
	rec.tpms[1].dev = 0;
	CHECK(ov_spec_add_record_devices(empty, &rec, &err) < 0);
	CHECK_ERR(&err, "no device number");
}

static void test_hook_is_ours(void)
{
	cleanup_json json_object *a = parse("{\"path\":\"/usr/bin/oci-vtpm-hook\"}");
	cleanup_json json_object *b = parse("{\"path\":\"oci-vtpm-hook\"}");
	cleanup_json json_object *c = parse("{\"path\":\"/usr/bin/oci-vtpm-hook.sh\"}");
	cleanup_json json_object *d = parse("{\"args\":[\"oci-vtpm-hook\"]}");
	cleanup_json json_object *e = parse("{\"path\":\"/oci-vtpm-hook/other\"}");

	CHECK(ov_spec_hook_is_ours(a) && ov_spec_hook_is_ours(b));
	CHECK(!ov_spec_hook_is_ours(c) && !ov_spec_hook_is_ours(d) && !ov_spec_hook_is_ours(e));
}

/* ------------------------------------------------------------------ files */

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
}

static char *read_file(const char *path)
{
	char *buf = NULL;
	size_t len;
	ov_error err = {0};

	if (ov_read_file_at(AT_FDCWD, path, 1 << 20, &buf, &len, &err) < 0)
		return NULL;
	return buf;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

static void test_files(void)
{
	char dir[] = "/tmp/ov-unit-spec.XXXXXX", path[512], run[256];
	/* Odd formatting that any rewrite would change. */
	const char *plain =
	    "{ \"ociVersion\" : \"1.0.2\",\n\t\"annotations\": {\"io.oci-vtpm.enable\""
	    ": \"false\"},  \"x\": 1.50 }\n";
	struct ov_prepare_result res;
	struct stat before, after;
	cleanup_json json_object *o = NULL;
	ov_error err = {0};
	char *text;
	int dfd;

	CHECK(mkdtemp(dir) != NULL);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	snprintf(run, sizeof(run), "%s/run", dir);

	struct ov_prepare e = {.s = &settings, .hook = HOOK, .id = "c1", .bundle = dir};
	free(settings.run_dir);
	settings.run_dir = strdup(run);

	/* Not asked: byte for byte the same file, not even rewritten. */
	write_file(path, plain, 0640);
	CHECK(stat(path, &before) == 0);
	CHECK(ov_prepare_file(dfd, "config.json", &e, &res, &err) == 0 && !res.enabled);
	CHECK(stat(path, &after) == 0);
	text = read_file(path);
	CHECK(streq(text, plain));
	free(text);
	CHECK(before.st_ino == after.st_ino && before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
	      before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
	CHECK(ov_spec_file_wants_vtpm(dfd, "config.json", &settings, &err) == 0);

	/* A bad request: an error, and the file as it was. */
	write_file(path,
		   "{\"annotations\":{\"io.oci-vtpm.count\":\"99\",\"io.oci-vtpm.enable\":"
		   "\"true\"}}",
		   0640);
	CHECK(ov_prepare_file(dfd, "config.json", &e, &res, &err) < 0);
	CHECK_ERR(&err, "io.oci-vtpm.count");
	text = read_file(path);
	CHECK(text && strstr(text, "\"99\"") && !strstr(text, "hooks"));
	free(text);
	CHECK(ov_spec_file_wants_vtpm(dfd, "config.json", &settings, &err) < 0);

	/* Asked (socket backend), by the shim: the vTPM started now, the
	 * file replaced atomically, same mode, no temp file left; no hook,
	 * the socket directory a read-only bind mount, the marker. */
	write_file(path, enabled, 0640);
	CHECK(stat(path, &before) == 0);
	CHECK(ov_spec_file_wants_vtpm(dfd, "config.json", &settings, &err) == 1);
	CHECK(ov_prepare_file(dfd, "config.json", &e, &res, &err) == 0);
	CHECK(res.enabled && res.precreated);
	CHECK(stat(path, &after) == 0);
	CHECK(before.st_ino != after.st_ino && (after.st_mode & 07777) == 0640);
	CHECK(count_entries(dir) == 2); /* config.json, run */
	text = read_file(path);
	o = text ? parse(text) : NULL;
	CHECK(o && len_at(o, "hooks.createRuntime") == 0 && len_at(o, "hooks.poststop") == 0);
	CHECK(o && streq(str_at(o, "linux.x-linux"), "kept"));
	CHECK(o && streq(json_object_get_string(json_object_object_get(
			     json_object_object_get(o, "annotations"), "io.oci-vtpm.provided-by")),
			 "oci-vtpm-runtime"));
	{
		json_object *ms = NULL, *m;
		char src[600];

		snprintf(src, sizeof(src), "%s/containers/c1/private/tpm", run);
		CHECK(o && json_object_object_get_ex(o, "mounts", &ms) &&
		      json_object_array_length(ms) == 1);
		m = ms ? json_object_array_get_idx(ms, 0) : NULL;
		CHECK(m && streq(str_at(m, "destination"), "/run/tpm") &&
		      streq(str_at(m, "source"), src) && streq(str_at(m, "type"), "bind"));
		CHECK(m && streq(json_object_to_json_string_ext(
				     json_object_object_get(m, "options"), JSON_C_TO_STRING_PLAIN),
				 "[\"bind\",\"ro\",\"nosuid\",\"nodev\",\"noexec\"]"));
	}
	free(text);

	/* Run twice (a retried create): not rewritten, nothing started again. */
	CHECK(stat(path, &before) == 0);
	CHECK(ov_prepare_file(dfd, "config.json", &e, &res, &err) == 0 && res.enabled &&
	      !res.precreated);
	CHECK(stat(path, &after) == 0 && before.st_ino == after.st_ino);
	CHECK(ov_vtpm_stop(&settings, "c1", &err) == 0);

	/* A symlinked config.json is read, never rewritten. */
	char real[300];
	snprintf(real, sizeof(real), "%s/real.json", dir);
	write_file(real, enabled, 0644);
	unlink(path);
	CHECK(symlink("real.json", path) == 0);
	CHECK(ov_prepare_file(dfd, "config.json", &e, &res, &err) < 0);
	CHECK_ERR(&err, "symlink");
	CHECK(lstat(path, &after) == 0 && S_ISLNK(after.st_mode));
	text = read_file(real);
	CHECK(streq(text, enabled));
	free(text);
	unlink(path);
	unlink(real);

	/* Device backend without vtpm_proxy: it fails before the runtime,
	 * leaves nothing running and the file as it was. */
	settings.backend = OV_BACKEND_DEVICE;
	write_file(path, enabled, 0640);
	if (access("/dev/vtpmx", F_OK) != 0) {
		CHECK(ov_prepare_file(dfd, "config.json", &e, &res, &err) < 0);
		CHECK(!res.precreated);
		text = read_file(path);
		CHECK(streq(text, enabled));
		free(text);
		snprintf(path, sizeof(path), "%s/c1", run);
		CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	}
	settings.backend = OV_BACKEND_SOCKET;

	close(dfd);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	CHECK(system(path) == 0);
}

static void test_settings_keys(void)
{
	const char *ok = "{\"runtime\":\"/usr/bin/crun\",\"hook\":\"/opt/ov/oci-vtpm-hook\"}";
	struct ov_settings s;
	ov_error err = {0};

	CHECK(ov_settings_parse(ok, strlen(ok), &s, &err) == 0);
	CHECK(streq(s.runtime, "/usr/bin/crun") && streq(s.hook, "/opt/ov/oci-vtpm-hook"));
	ov_settings_free(&s);
	CHECK(ov_settings_parse("{}", 2, &s, &err) == 0);
	CHECK(s.runtime == NULL && s.hook == NULL);
	ov_settings_free(&s);
	CHECK(ov_settings_parse("{\"runtime\":\"crun\"}", 18, &s, &err) < 0);
	CHECK_ERR(&err, "\"runtime\": \"crun\" is not an absolute path");
}

int main(void)
{
	ov_error err = {0};
	const char *cfg = "{\"backend\":\"socket\"}";

	if (ov_settings_parse(cfg, strlen(cfg), &settings, &err) < 0) {
		fprintf(stderr, "settings: %s\n", err.msg);
		return 1;
	}
	test_edit_keeps_unknown_fields();
	test_edit_idempotent();
	test_edit_not_asked();
	test_edit_env_and_default();
	test_devices();
	test_hook_is_ours();
	test_files();
	test_settings_keys();
	ov_settings_free(&settings);
	return unit_done("test-spec");
}
