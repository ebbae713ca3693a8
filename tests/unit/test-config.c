/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/rootless.h"
#include "oci-vtpm/store.h"
#include "unit.h"

static int settings(const char *json, struct ov_settings *s, ov_error *err)
{
	return ov_settings_parse(json, strlen(json), s, err);
}

static void test_settings(void)
{
	struct ov_settings s;
	ov_error err = {0};

	CHECK(settings("{}", &s, &err) == 0);
	CHECK(strcmp(s.run_dir, "/run/oci-vtpm") == 0);
	CHECK(strcmp(s.state_dir, "/var/lib/oci-vtpm") == 0);
	CHECK(strcmp(s.swtpm, "/usr/bin/swtpm") == 0);
	CHECK(strcmp(s.socket_dir, "/run/tpm") == 0);
	CHECK(s.backend == OV_BACKEND_AUTO && s.keep_generations == 3 && !s.ek_cert);
	CHECK(s.stop_async); /* a named vTPM's stop ends in a detached worker */
	ov_settings_free(&s);
	CHECK(settings("{\"stop_async\":false}", &s, &err) == 0 && !s.stop_async);
	ov_settings_free(&s);

	CHECK(settings("{\"run_dir\":\"/x\",\"backend\":\"socket\",\"ek_cert\":true,"
		       "\"keep_generations\":5,\"log_level\":\"debug\"}",
		       &s, &err) == 0);
	CHECK(strcmp(s.run_dir, "/x") == 0 && s.backend == OV_BACKEND_SOCKET && s.ek_cert);
	CHECK(s.keep_generations == 5 && s.log_level == OV_LOG_DEBUG);
	ov_settings_free(&s);

	CHECK(settings("{\"nope\":1}", &s, &err) < 0);
	CHECK_ERR(&err, "unknown key \"nope\"");
	CHECK(settings("{\"run_dir\":\"relative\"}", &s, &err) < 0);
	CHECK_ERR(&err, "\"run_dir\": \"relative\" is not an absolute path");
	CHECK(settings("{\"backend\":\"tcp\"}", &s, &err) < 0);
	CHECK_ERR(&err, "backend");
	CHECK(settings("{\"ek_cert\":\"yes\"}", &s, &err) < 0);
	CHECK_ERR(&err, "\"ek_cert\" must be true or false");
	CHECK(settings("{\"keep_generations\":0}", &s, &err) < 0);
	CHECK_ERR(&err, "keep_generations");
	CHECK(settings("{\"log_level\":\"loud\"}", &s, &err) < 0);
	CHECK_ERR(&err, "log_level");
	CHECK(settings("{\"swtpm\":5}", &s, &err) < 0);
	CHECK_ERR(&err, "\"swtpm\" must be a string");
	CHECK(settings("{", &s, &err) < 0);
	CHECK_ERR(&err, "settings: invalid JSON");

	/* swtpm's cgroup: limits by default are best effort; naming a limit
	 * asks for them. A parent that is not a relative path is refused. */
	CHECK(settings("{}", &s, &err) == 0);
	CHECK(strcmp(s.swtpm_cgroup, "oci-vtpm") == 0 && !s.swtpm_limits_required);
	ov_settings_free(&s);
	CHECK(settings("{\"swtpm_cgroup\":\"a/b\"}", &s, &err) == 0);
	CHECK(strcmp(s.swtpm_cgroup, "a/b") == 0 && !s.swtpm_limits_required);
	ov_settings_free(&s);
	CHECK(settings("{\"swtpm_pids_max\":4}", &s, &err) == 0);
	CHECK(s.swtpm_pids_max == 4 && s.swtpm_limits_required);
	ov_settings_free(&s);
	CHECK(settings("{\"swtpm_cgroup\":\"\"}", &s, &err) == 0);
	CHECK(s.swtpm_cgroup[0] == '\0');
	ov_settings_free(&s);
	CHECK(settings("{\"swtpm_cgroup\":\"/abs\"}", &s, &err) < 0);
	CHECK_ERR(&err, "\"swtpm_cgroup\": \"/abs\" is not a relative cgroup path");
	CHECK(settings("{\"swtpm_cgroup\":\"a/../b\"}", &s, &err) < 0);
	CHECK_ERR(&err, "swtpm_cgroup");

	/* A file named explicitly must exist. */
	CHECK(ov_settings_load("/nonexistent/config.json", &s, &err) < 0);
	CHECK_ERR(&err, "No such file");
}

/* The request of annotations and a process.env (a JSON array; NULL: none)
 * under settings (NULL: the defaults). */
static int request_with(const char *settings_json, const char *annotations, const char *env,
			struct ov_request *r, ov_error *err)
{
	struct ov_settings s;
	cleanup_json json_object *a = NULL, *e = NULL;
	int ret;

	if (settings_json) {
		if (ov_settings_parse(settings_json, strlen(settings_json), &s, err) < 0)
			return -2;
	} else {
		ov_settings_defaults(&s);
	}
	if (annotations && ov_json_parse(annotations, strlen(annotations), "t", &a, err) < 0)
		return -2;
	if (env && !(e = json_tokener_parse(env)))
		return -2;
	ret = ov_request_parse(&s, a, e, r, err);
	ov_settings_free(&s);
	return ret;
}

static int request(const char *annotations, struct ov_request *r, ov_error *err)
{
	return request_with(NULL, annotations, NULL, r, err);
}

static int request_env(const char *settings_json, const char *env, struct ov_request *r,
		       ov_error *err)
{
	return request_with(settings_json, NULL, env, r, err);
}

static void test_request_env(void)
{
	static const char names_ok[] = "{\"env_request\":[\"enable\",\"name\"]}";
	struct ov_request r;
	ov_error err = {0};
	cleanup_json json_object *env = json_tokener_parse("[\"PATH=/bin\",\"OCI_VTPM_COUNT=2\"]");

	/* The defaults: enable, version, count, ek-cert and backend. */
	CHECK(
	    request_env(NULL,
			"[\"PATH=/bin\",\"OCI_VTPM_ENABLE=true\",\"OCI_VTPM_VERSION=1.2\","
			"\"OCI_VTPM_COUNT=3\",\"OCI_VTPM_BACKEND=socket\",\"OCI_VTPM_CONFIG=/x\"]",
			&r, &err) == 0);
	CHECK(r.enable && r.version == OV_TPM_1_2 && r.count == 3 &&
	      r.backend == OV_BACKEND_SOCKET && !r.name);
	ov_request_free(&r);
	CHECK(request_env(NULL, "[\"OCI_VTPM_EK_CERT=true\"]", &r, &err) == 0 && r.ek_cert);
	CHECK(ov_request_in_env(env));
	CHECK(!ov_request_in_env(NULL));
	json_object_put(env);
	env = json_tokener_parse(
	    "[\"OCI_VTPM_CONFIG=/x\",\"OCI_VTPM_ENABLEX=1\",\"OCI_VTPM_ENABLE\"]");
	CHECK(!ov_request_in_env(env));

	/* Same validation as the annotations, one line naming the variable. */
	CHECK(request_env(NULL, "[\"OCI_VTPM_COUNT=99\"]", &r, &err) < 0);
	CHECK_ERR(&err, "environment OCI_VTPM_COUNT: bad value \"99\"");
	CHECK(request_env(NULL, "[\"OCI_VTPM_ENABLE=yes\"]", &r, &err) < 0);
	CHECK_ERR(&err, "environment OCI_VTPM_ENABLE: bad value \"yes\"");
	CHECK(request_env(NULL, "[\"OCI_VTPM_BACKEND=auto\"]", &r, &err) < 0);
	CHECK(request_env(NULL, "[\"OCI_VTPM_VERSION=1.2\",\"OCI_VTPM_EK_CERT=true\"]", &r, &err) <
	      0);
	CHECK_ERR(&err, "environment OCI_VTPM_EK_CERT=true needs TPM version 2.0");
	CHECK(request_env(NULL, "[\"OCI_VTPM_COUNT=2\",\"OCI_VTPM_COUNT=3\"]", &r, &err) < 0);
	CHECK_ERR(&err, "environment OCI_VTPM_COUNT: set twice");
	/* precreated is the shim's own annotation, never the environment's. */
	CHECK(request_env(NULL,
			  "[\"OCI_VTPM_PRECREATED=precreated/0123456789abcdef0123456789abcdef\"]",
			  &r, &err) == 0 &&
	      !r.precreated);

	/* Names only where the settings allow them. */
	CHECK(request_env(NULL, "[\"OCI_VTPM_ENABLE=true\",\"OCI_VTPM_NAME=db\"]", &r, &err) < 0);
	CHECK_ERR(&err, "environment OCI_VTPM_NAME: not honoured on this host (settings "
			"\"env_request\"; the annotation io.oci-vtpm.name is)");
	CHECK(request_env(names_ok, "[\"OCI_VTPM_ENABLE=true\",\"OCI_VTPM_NAME=db\"]", &r, &err) ==
	      0);
	CHECK(r.enable && r.name && strcmp(r.name, "db") == 0);
	ov_request_free(&r);
	CHECK(request_env(names_ok, "[\"OCI_VTPM_NAME=../x\"]", &r, &err) < 0);
	CHECK_ERR(&err, "environment OCI_VTPM_NAME: \"../x\" is not a valid vTPM name");
	CHECK(request_env(names_ok, "[\"OCI_VTPM_COUNT=2\"]", &r, &err) < 0);
	CHECK_ERR(&err, "OCI_VTPM_COUNT: not honoured");
	/* env_request [] : the environment is no request channel at all. */
	CHECK(request_env("{\"env_request\":[]}", "[\"OCI_VTPM_ENABLE=true\",\"OCI_VTPM_COUNT=x\"]",
			  &r, &err) == 0 &&
	      !r.enable && r.count == 1);

	/* Annotations win, also over a bad value in the environment. */
	CHECK(request_with(names_ok,
			   "{\"io.oci-vtpm.name\":\"a\",\"io.oci-vtpm.enable\":\"false\"}",
			   "[\"OCI_VTPM_ENABLE=true\",\"OCI_VTPM_NAME=b\"]", &r, &err) == 0);
	CHECK(!r.enable && strcmp(r.name, "a") == 0);
	ov_request_free(&r);
	CHECK(request_with(NULL, "{\"io.oci-vtpm.count\":\"2\"}", "[\"OCI_VTPM_COUNT=99\"]", &r,
			   &err) == 0 &&
	      r.count == 2);
	CHECK(request_with(NULL, "{\"io.oci-vtpm.name\":\"a\"}", "[\"OCI_VTPM_NAME=b\"]", &r,
			   &err) == 0);
	CHECK(strcmp(r.name, "a") == 0);
	ov_request_free(&r);

	/* default_enable: every container, unless it opts out. */
	CHECK(request_env("{\"default_enable\":true}", NULL, &r, &err) == 0 && r.enable);
	CHECK(request_env("{\"default_enable\":true}", "[\"OCI_VTPM_ENABLE=false\"]", &r, &err) ==
		  0 &&
	      !r.enable);
	CHECK(request_with("{\"default_enable\":true}", "{\"io.oci-vtpm.enable\":\"false\"}", NULL,
			   &r, &err) == 0 &&
	      !r.enable);

	/* A Kubernetes pod's sandbox gets the pod's annotations, not a vTPM. */
	CHECK(request_with("{\"default_enable\":true}",
			   "{\"io.oci-vtpm.enable\":\"true\",\"io.kubernetes.cri.container-type\":"
			   "\"sandbox\"}",
			   NULL, &r, &err) == 0 &&
	      !r.enable);
	CHECK(request_with(NULL,
			   "{\"io.oci-vtpm.enable\":\"true\",\"io.kubernetes.cri-o.ContainerType\":"
			   "\"sandbox\"}",
			   NULL, &r, &err) == 0 &&
	      !r.enable);
	CHECK(request_with(NULL,
			   "{\"io.oci-vtpm.enable\":\"true\",\"io.kubernetes.cri.container-type\":"
			   "\"container\"}",
			   NULL, &r, &err) == 0 &&
	      r.enable);
	CHECK(request_with(NULL,
			   "{\"io.oci-vtpm.count\":\"99\",\"io.kubernetes.cri.container-type\":"
			   "\"sandbox\"}",
			   NULL, &r, &err) < 0);

	/* The settings' keys. */
	CHECK(request_env("{\"env_request\":[\"enable\",\"precreated\"]}", NULL, &r, &err) == -2);
	CHECK_ERR(&err, "\"env_request\": \"precreated\" is not enable, name, version, count, "
			"ek-cert, backend or measure");
	CHECK(request_env("{\"env_request\":\"enable\"}", NULL, &r, &err) == -2);
	CHECK_ERR(&err, "\"env_request\" must be a list of request keys");
	CHECK(request_env("{\"default_enable\":1}", NULL, &r, &err) == -2);
	CHECK_ERR(&err, "\"default_enable\" must be true or false");
}

static void test_request(void)
{
	struct ov_request r;
	ov_error err = {0};

	CHECK(request(NULL, &r, &err) == 0);
	CHECK(!r.enable && r.count == 1 && r.version == OV_TPM_2_0 && !r.name);
	CHECK(request("{\"other\":\"x\",\"io.oci-vtpm.enable\":\"true\",\"io.oci-vtpm.name\":"
		      "\"db-1.a_b\",\"io.oci-vtpm.version\":\"2.0\",\"io.oci-vtpm.count\":\"2\","
		      "\"io.oci-vtpm.backend\":\"socket\",\"io.oci-vtpm.ek-cert\":\"true\"}",
		      &r, &err) == 0);
	CHECK(r.enable && r.name && strcmp(r.name, "db-1.a_b") == 0 && r.version == OV_TPM_2_0);
	CHECK(r.count == 2 && r.backend == OV_BACKEND_SOCKET && r.ek_cert);
	ov_request_free(&r);
	CHECK(request("{\"io.oci-vtpm.enable\":\"false\"}", &r, &err) == 0 && !r.enable);
	CHECK(request("{\"io.oci-vtpm.version\":\"1.2\"}", &r, &err) == 0 &&
	      r.version == OV_TPM_1_2);

	CHECK(request("{\"io.oci-vtpm.foo\":\"1\"}", &r, &err) < 0);
	CHECK_ERR(&err, "unknown annotation io.oci-vtpm.foo");
	CHECK(request("{\"io.oci-vtpm.enable\":\"yes\"}", &r, &err) < 0);
	CHECK_ERR(&err, "io.oci-vtpm.enable: bad value \"yes\"");
	CHECK(request("{\"io.oci-vtpm.count\":\"abc\"}", &r, &err) < 0);
	CHECK_ERR(&err, "io.oci-vtpm.count");
	CHECK(request("{\"io.oci-vtpm.count\":\"0\"}", &r, &err) < 0);
	CHECK(request("{\"io.oci-vtpm.count\":\"9\"}", &r, &err) < 0);
	CHECK(request("{\"io.oci-vtpm.count\":\"-1\"}", &r, &err) < 0);
	CHECK(request("{\"io.oci-vtpm.count\":\"1x\"}", &r, &err) < 0);
	CHECK(request("{\"io.oci-vtpm.version\":\"3\"}", &r, &err) < 0);
	CHECK_ERR(&err, "io.oci-vtpm.version: bad value \"3\"");
	CHECK(request("{\"io.oci-vtpm.backend\":\"auto\"}", &r, &err) < 0);
	CHECK(request("{\"io.oci-vtpm.version\":\"1.2\",\"io.oci-vtpm.ek-cert\":\"true\"}", &r,
		      &err) < 0);
	CHECK_ERR(&err, "ek-cert=true needs io.oci-vtpm.version=2.0");
	CHECK(request("{\"io.oci-vtpm.name\":\"../etc\"}", &r, &err) < 0);
	CHECK_ERR(&err, "not a valid vTPM name");
	CHECK(request("{\"io.oci-vtpm.name\":\"\"}", &r, &err) < 0);

	/* The name a precreate stage gave the vTPMs it started. */
	CHECK(request("{\"io.oci-vtpm.enable\":\"true\",\"io.oci-vtpm.precreated\":"
		      "\"precreated/0123456789abcdef0123456789abcdef\"}",
		      &r, &err) == 0);
	CHECK(r.precreated &&
	      strcmp(r.precreated, "precreated/0123456789abcdef0123456789abcdef") == 0);
	ov_request_free(&r);
	CHECK(!r.precreated && !r.name);
	CHECK(request("{\"io.oci-vtpm.precreated\":\"other-container\"}", &r, &err) < 0);
	CHECK_ERR(&err, "io.oci-vtpm.precreated: bad value");
	CHECK(request("{\"io.oci-vtpm.precreated\":\"precreated/../../etc\"}", &r, &err) < 0);
}

static void test_precreated_names(void)
{
	CHECK(ov_precreated_valid("precreated/0123456789abcdef0123456789abcdef"));
	CHECK(!ov_precreated_valid("precreated/0123456789abcdef0123456789abcde"));
	CHECK(!ov_precreated_valid("precreated/0123456789abcdef0123456789abcdef0"));
	CHECK(!ov_precreated_valid("precreated/0123456789ABCDEF0123456789abcdef"));
	CHECK(!ov_precreated_valid("precreated/0123456789abcdef0123456789abcdeg"));
	CHECK(!ov_precreated_valid("xre-0123456789abcdef0123456789abcdef"));
	CHECK(!ov_precreated_valid(""));
	CHECK(ov_warm_valid("warm/0123456789abcdef0123456789abcdef"));
	CHECK(!ov_warm_valid("precreated/0123456789abcdef0123456789abcdef"));
	CHECK(!ov_precreated_valid("warm/0123456789abcdef0123456789abcdef"));
	CHECK(!ov_warm_valid("warm/"));
	/* The names before the run dir had a directory per kind: container
	 * ids now. */
	CHECK(!ov_precreated_valid("pre-0123456789abcdef0123456789abcdef"));
	CHECK(!ov_warm_valid("warm-0123456789abcdef0123456789abcdef"));
}

static void test_names(void)
{
	char long_name[200];

	CHECK(ov_name_valid("a"));
	CHECK(ov_name_valid("web-01.prod_x"));
	CHECK(!ov_name_valid(""));
	CHECK(!ov_name_valid(".hidden"));
	CHECK(!ov_name_valid("-x"));
	CHECK(!ov_name_valid("a/b"));
	CHECK(!ov_name_valid(".."));
	CHECK(!ov_name_valid("a b"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	CHECK(!ov_name_valid(long_name));
	long_name[128] = '\0';
	CHECK(ov_name_valid(long_name));
}

/* swtpm_uid_range: {"first", "count"}, never root, never past the top. */
static void test_uid_range(void)
{
	struct ov_settings s;
	ov_error err = {0};

	CHECK(settings("{}", &s, &err) == 0 && s.swtpm_uid_count == 0);
	ov_settings_free(&s);
	CHECK(settings("{\"swtpm_uid_range\":{\"first\":200000,\"count\":65536}}", &s, &err) == 0);
	CHECK(s.swtpm_uid_first == 200000 && s.swtpm_uid_count == 65536);
	ov_settings_free(&s);
	CHECK(settings("{\"swtpm_uid_range\":{\"first\":0,\"count\":2}}", &s, &err) < 0);
	CHECK_ERR(&err, "first must be 1 or more");
	CHECK(settings("{\"swtpm_uid_range\":{\"first\":4294967290,\"count\":8}}", &s, &err) < 0);
	CHECK(settings("{\"swtpm_uid_range\":[1,2]}", &s, &err) < 0);
	CHECK_ERR(&err, "must be {\"first\": UID, \"count\": N}");
	CHECK(settings("{\"swtpm_uid_range\":{\"first\":9,\"count\":1,\"x\":1}}", &s, &err) < 0);
}

/* Who may ask for what: annotation_request, name_scope, max_vtpms, max_names. */
static void test_policy(void)
{
	static const char ns[] = "{\"io.oci-vtpm.name\":\"db\","
				 "\"io.kubernetes.cri.sandbox-namespace\":\"team-a\"}";
	struct ov_settings s;
	struct ov_request r;
	ov_error err = {0};

	CHECK(settings("{}", &s, &err) == 0);
	CHECK(s.annotation_keys == OV_REQ_ALL && strcmp(s.name_scope, "auto") == 0);
	CHECK(s.max_vtpms == 1024 && s.max_names == 4096);
	ov_settings_free(&s);
	CHECK(settings("{\"annotation_request\":[\"enable\"],\"name_scope\":\"\","
		       "\"max_vtpms\":0,\"max_names\":7}",
		       &s, &err) == 0);
	CHECK(s.annotation_keys == OV_REQ_ENABLE && strcmp(s.name_scope, "") == 0);
	CHECK(s.max_vtpms == 0 && s.max_names == 7);
	ov_settings_free(&s);
	CHECK(settings("{\"max_names\":-1}", &s, &err) < 0);
	CHECK_ERR(&err, "\"max_names\" must be between 0 and 1000000");
	CHECK(settings("{\"annotation_request\":[\"precreated\"]}", &s, &err) < 0);
	CHECK_ERR(&err, "\"annotation_request\": \"precreated\" is not");

	/* A key the admin does not let annotations set. */
	CHECK(request_with("{\"annotation_request\":[\"enable\"]}",
			   "{\"io.oci-vtpm.enable\":\"true\",\"io.oci-vtpm.count\":\"2\"}", NULL,
			   &r, &err) < 0);
	CHECK_ERR(&err, "annotation io.oci-vtpm.count: not allowed on this host (settings "
			"\"annotation_request\")");
	CHECK(request_with("{\"annotation_request\":[\"enable\"]}",
			   "{\"io.oci-vtpm.enable\":\"true\"}", NULL, &r, &err) == 0);
	CHECK(r.enable);
	ov_request_free(&r);

	/* auto (the default): Kubernetes' namespace scopes; without one, as asked. */
	CHECK(request(ns, &r, &err) == 0);
	CHECK(strcmp(r.name, "team-a.db") == 0);
	ov_request_free(&r);
	CHECK(request("{\"io.oci-vtpm.name\":\"db\",\"io.kubernetes.pod.namespace\":\"b\"}", &r,
		      &err) == 0);
	CHECK(strcmp(r.name, "b.db") == 0);
	ov_request_free(&r);
	CHECK(request("{\"io.oci-vtpm.name\":\"db\"}", &r, &err) == 0);
	CHECK(strcmp(r.name, "db") == 0);
	ov_request_free(&r);
	/* "": the single-tenant shortcut. */
	CHECK(request_with("{\"name_scope\":\"\"}", ns, NULL, &r, &err) == 0);
	CHECK(strcmp(r.name, "db") == 0);
	ov_request_free(&r);
	/* An explicit key must be there; its value must be a scope. */
	CHECK(request_with("{\"name_scope\":\"tenant\"}", ns, NULL, &r, &err) < 0);
	CHECK_ERR(&err, "vTPM name \"db\" needs the annotation tenant (settings \"name_scope\")");
	CHECK(request_with("{\"name_scope\":\"tenant\"}",
			   "{\"io.oci-vtpm.name\":\"db\",\"tenant\":\"a.b\"}", NULL, &r, &err) < 0);
	CHECK_ERR(&err, "annotation tenant: \"a.b\" cannot scope a vTPM name");
	CHECK(request_with("{\"name_scope\":\"tenant\"}",
			   "{\"io.oci-vtpm.name\":\"db\",\"tenant\":\"\"}", NULL, &r, &err) < 0);
	CHECK_ERR(&err, "cannot scope a vTPM name");
	CHECK(request_with("{\"name_scope\":\"tenant\"}", "{\"io.oci-vtpm.enable\":\"true\"}", NULL,
			   &r, &err) == 0);
	CHECK(!r.name);
	ov_request_free(&r);
	/* A name from the environment is scoped the same. */
	CHECK(request_with("{\"name_scope\":\"tenant\",\"env_request\":[\"name\"]}",
			   "{\"tenant\":\"t1\"}", "[\"OCI_VTPM_NAME=db\"]", &r, &err) == 0);
	CHECK(strcmp(r.name, "t1.db") == 0);
	ov_request_free(&r);
}

/* As a plain user (a forked child as nobody): the user's own defaults,
 * settings and run dirs it or root own are trusted, another user's not.
 * The child's CHECKs count in its exit status. */
static void rootless_child(const char *dir)
{
	struct ov_settings s;
	ov_error err = {0};
	char path[512];
	int fd;

	if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
		_exit(100);
	CHECK(ov_rootless());
	setenv("XDG_RUNTIME_DIR", "/x/run", 1);
	setenv("XDG_DATA_HOME", "/x/data", 1);
	setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
	unsetenv(OV_CONFIG_ENV);
	CHECK(strcmp(ov_settings_path(), "/x/cfg/oci-vtpm/" OV_USER_CONFIG_NAME) == 0);
	CHECK(settings("{}", &s, &err) == 0);
	CHECK(strcmp(s.run_dir, "/x/run/oci-vtpm") == 0);
	CHECK(strcmp(s.state_dir, "/x/data/oci-vtpm") == 0);
	CHECK(strcmp(s.master_key, "/x/data/oci-vtpm/master.key") == 0);
	CHECK(strcmp(s.ca_key, "/x/data/oci-vtpm/ca/ca.key") == 0);
	CHECK(strcmp(s.swtpm_user, "") == 0);
	ov_settings_free(&s);
	/* Unset or relative: /run/user/UID and the passwd home. */
	unsetenv("XDG_RUNTIME_DIR");
	setenv("XDG_DATA_HOME", "relative", 1);
	CHECK(settings("{\"master_key\":\"/k\"}", &s, &err) == 0);
	CHECK(strcmp(s.run_dir, "/run/user/65534/oci-vtpm") == 0);
	CHECK(strcmp(s.state_dir, "/nonexistent/.local/share/oci-vtpm") == 0);
	CHECK(strcmp(s.master_key, "/k") == 0);
	ov_settings_free(&s);

	snprintf(path, sizeof(path), "%s/mine.json", dir);
	CHECK(ov_settings_load(path, &s, &err) == 0);
	ov_settings_free(&s);
	snprintf(path, sizeof(path), "%s/root.json", dir);
	CHECK(ov_settings_load(path, &s, &err) == 0);
	ov_settings_free(&s);
	snprintf(path, sizeof(path), "%s/other.json", dir);
	CHECK(ov_settings_load(path, &s, &err) < 0);
	CHECK_ERR(&err, "is owned by uid 2 with mode 0644: only root or you may write it");
	snprintf(path, sizeof(path), "%s/run-mine", dir);
	fd = ov_run_dir_open(path, false, &err);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/run-other", dir);
	CHECK(ov_run_dir_open(path, true, &err) < 0);
	CHECK_ERR(&err, "is owned by uid 2 with mode 0755: it must be ours (uid 65534)");
	_exit(unit_failed > 99 ? 99 : unit_failed);
}

/* dir/name: a file or (dir) directory with that owner and mode. */
static void make_owned(const char *dir, const char *name, bool is_dir, uid_t uid, mode_t mode)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (is_dir) {
		CHECK(mkdir(path, mode) == 0);
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		CHECK(fd >= 0 && write(fd, "{}", 2) == 2);
		if (fd >= 0)
			close(fd);
	}
	CHECK(chown(path, uid, uid) == 0 && chmod(path, mode) == 0);
}

static void test_rootless(void)
{
	char dir[] = "/tmp/ov-test-rootless.XXXXXX";
	int status = -1;
	pid_t pid;

	CHECK(!ov_rootless()); /* the unit tests run as root */
	if (!mkdtemp(dir) || chmod(dir, 0755) < 0) {
		CHECK(!"mkdtemp");
		return;
	}
	make_owned(dir, "mine.json", false, 65534, 0600);
	make_owned(dir, "root.json", false, 0, 0644);
	make_owned(dir, "other.json", false, 2, 0644);
	make_owned(dir, "run-mine", true, 65534, 0700);
	make_owned(dir, "run-other", true, 2, 0755);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		rootless_child(dir);
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "rootless child: status 0x%x\n", status);
	for (const char *n = "mine.json\0root.json\0other.json\0run-mine\0run-other\0"; *n;
	     n += strlen(n) + 1) {
		char path[512];

		snprintf(path, sizeof(path), "%s/%s", dir, n);
		CHECK(remove(path) == 0);
	}
	CHECK(rmdir(dir) == 0);
}

/* A child in a new user namespace whose uid 0 is outside uid `out`: exits
 * 0 when ov_rootless() there is `want` and ov_outside_uid() is out. */
static int userns_child(uid_t out, bool want)
{
	int go[2], status = -1;
	char path[64], map[64];
	pid_t pid;
	int fd;

	if (pipe(go) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		char c;

		close(go[1]);
		if (unshare(CLONE_NEWUSER) < 0)
			_exit(10);
		/* the parent writes our map, then closes go */
		if (read(go[0], &c, 1) != 0)
			_exit(11);
		/* become the namespace's uid 0, which is `out` outside */
		if (setresuid(0, 0, 0) < 0)
			_exit(13);
		_exit(geteuid() == 0 && ov_outside_uid() == out && ov_rootless() == want ? 0 : 12);
	}
	close(go[0]);
	/* wait until the child has its namespace */
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	for (int i = 0; i < 1000; i++) {
		struct stat a, b;

		if (stat(path, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 &&
		    a.st_ino != b.st_ino)
			break;
		usleep(1000);
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)out);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, map, strlen(map)) == (ssize_t)strlen(map));
	if (fd >= 0)
		close(fd);
	close(go[1]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_rootless_userns(void)
{
	/* rootless podman's namespace: uid 0 is a user of the passwd file */
	CHECK(userns_child(65534, true) == 0);
	/* a system container's root: an unnamed subordinate id */
	CHECK(userns_child(3999999, false) == 0);
	/* root mapped to root */
	CHECK(userns_child(0, false) == 0);
}

int main(void)
{
	test_settings();
	test_request();
	test_request_env();
	test_names();
	test_policy();
	test_uid_range();
	test_precreated_names();
	test_rootless();
	test_rootless_userns();
	return unit_done("config");
}
