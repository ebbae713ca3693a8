/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/oci.h"
#include "unit.h"

static int state(const char *json, struct ov_state *st, ov_error *err)
{
	return ov_oci_state_parse(json, strlen(json), st, err);
}

static void test_state(void)
{
	struct ov_state st;
	ov_error err = {0};

	CHECK(state("{\"ociVersion\":\"1.0.2\",\"id\":\"c1\",\"status\":\"created\",\"pid\":42,"
		    "\"bundle\":\"/b\",\"annotations\":{\"io.oci-vtpm.enable\":\"true\"}}",
		    &st, &err) == 0);
	CHECK(strcmp(st.id, "c1") == 0 && st.pid == 42 && strcmp(st.bundle, "/b") == 0);
	CHECK(st.annotations && json_object_object_length(st.annotations) == 1);
	ov_oci_state_free(&st);

	/* poststop: no pid */
	CHECK(state("{\"id\":\"c1\",\"bundle\":\"/b\",\"status\":\"stopped\"}", &st, &err) == 0);
	CHECK(st.pid == 0);
	ov_oci_state_free(&st);

	CHECK(state("{\"id\":\"c1\",", &st, &err) < 0);
	CHECK_ERR(&err, "OCI state: invalid JSON");
	CHECK(state("", &st, &err) < 0);
	CHECK_ERR(&err, "invalid JSON");
	CHECK(state("[1,2]", &st, &err) < 0);
	CHECK_ERR(&err, "not a JSON object");
	CHECK(state("{\"id\":\"c1\",\"bundle\":\"/b\"} x", &st, &err) < 0);
	CHECK_ERR(&err, "trailing data");
	CHECK(state("{\"bundle\":\"/b\"}", &st, &err) < 0);
	CHECK_ERR(&err, "missing \"id\"");
	CHECK(state("{\"id\":7,\"bundle\":\"/b\"}", &st, &err) < 0);
	CHECK_ERR(&err, "\"id\" is not a string");
	CHECK(state("{\"id\":\"c\",\"bundle\":\"rel\"}", &st, &err) < 0);
	CHECK_ERR(&err, "not an absolute path");
	CHECK(state("{\"id\":\"c\",\"bundle\":\"/b\",\"pid\":-1}", &st, &err) < 0);
	CHECK_ERR(&err, "pid");
	CHECK(state("{\"id\":\"c\",\"bundle\":\"/b\",\"pid\":\"1\"}", &st, &err) < 0);
	CHECK_ERR(&err, "pid");
	CHECK(state("{\"id\":\"c\",\"bundle\":\"/b\",\"annotations\":{\"a\":1}}", &st, &err) < 0);
	CHECK_ERR(&err, "annotation a is not a string");
	/* The id becomes a path: checked here, before any caller uses it. */
	static const char *const bad_ids[] = {"../x", "..", ".", "", "a/b", "a\\nb", "a b"};
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		char json[128];

		snprintf(json, sizeof(json), "{\"id\":\"%s\",\"bundle\":\"/b\"}", bad_ids[i]);
		CHECK(state(json, &st, &err) < 0);
		CHECK_ERR(&err, "invalid container id");
	}
	/* A NUL inside the input is not silently truncated. */
	CHECK(ov_oci_state_parse("{\"id\":\"c\",\"bundle\":\"/b\"}\0zz", 28, &st, &err) < 0);
	CHECK_ERR(&err, "NUL");
}

static void test_state_read(void)
{
	struct ov_state st;
	ov_error err = {0};
	int p[2];
	static char big[(1u << 20) + 16];

	/* Oversized input is refused without reading it all into memory. */
	memset(big, ' ', sizeof(big));
	CHECK(pipe(p) == 0);
	if (fork() == 0) {
		close(p[0]);
		if (write(p[1], big, sizeof(big)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	CHECK(ov_oci_state_read(p[0], &st, &err) < 0);
	CHECK_ERR(&err, "larger than");
	close(p[0]);
}

static void test_spec(void)
{
	char dir[] = "/tmp/ov-unit-oci.XXXXXX";
	struct ov_spec sp;
	ov_error err = {0};
	char path[256];
	const char *cfg = "{\"root\":{\"path\":\"rootfs\"},\"annotations\":{\"x\":\"y\"},"
			  "\"unknown\":{\"kept\":true}}";
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(ov_oci_spec_load(dir, &sp, &err) < 0);
	CHECK_ERR(&err, "config.json: No such file or directory");

	snprintf(path, sizeof(path), "%s/config.json", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(write(fd, cfg, strlen(cfg)) == (ssize_t)strlen(cfg));
	close(fd);
	CHECK(ov_oci_spec_load(dir, &sp, &err) == 0);
	snprintf(path, sizeof(path), "%s/rootfs", dir);
	CHECK(sp.rootfs && strcmp(sp.rootfs, path) == 0);
	CHECK(sp.annotations != NULL);
	ov_oci_spec_free(&sp);

	const char *abs = "{\"root\":{\"path\":\"/abs\"}}";
	CHECK(ov_oci_spec_parse(abs, strlen(abs), "/b", &sp, &err) == 0);
	CHECK(sp.rootfs && strcmp(sp.rootfs, "/abs") == 0);
	ov_oci_spec_free(&sp);
	CHECK(ov_oci_spec_parse("{\"annotations\":[]}", 18, "/b", &sp, &err) < 0);
	CHECK_ERR(&err, "config.json: \"annotations\" is not an object");

	/* A symlinked config.json is not followed. */
	unlink(path);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	unlink(path);
	CHECK(symlink("/etc/passwd", path) == 0);
	CHECK(ov_oci_spec_load(dir, &sp, &err) < 0);
	unlink(path);
	rmdir(dir);
}

static void test_fresh_mounts(void)
{
	static const char cfg[] =
	    "{\"mounts\":[{\"destination\":\"/dev\",\"type\":\"tmpfs\"},"
	    "{\"destination\":\"//run/\",\"type\":\"tmpfs\"},"
	    "{\"destination\":\"/run\",\"type\":\"none\",\"options\":[\"rbind\"]},"
	    "{\"destination\":\"/vol\",\"type\":\"bind\"},"
	    "{\"destination\":\"/a/../b\",\"type\":\"tmpfs\"},"
	    "{\"destination\":\"/proc\",\"type\":\"proc\"}]}";
	struct ov_spec sp;
	ov_error err = {0};
	char **v = NULL;

	CHECK(ov_oci_spec_parse(cfg, strlen(cfg), "/b", &sp, &err) == 0);
	CHECK(ov_spec_fresh_mounts(&sp, &v, &err) == 0);
	/* /run: a tmpfs, then a bind over it: the bind decides. */
	CHECK(v && v[0] && strcmp(v[0], "dev") == 0 && v[1] && strcmp(v[1], "proc") == 0 && !v[2]);
	ov_strv_free(v);
	ov_oci_spec_free(&sp);
}

int main(void)
{
	test_state();
	test_state_read();
	test_spec();
	test_fresh_mounts();
	return unit_done("oci");
}
