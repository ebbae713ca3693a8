/* SPDX-License-Identifier: Apache-2.0 */
/* The measured launch's events (lib/measure.c): what is measured, in which
 * canonical form, and that no env value gets in. */
#include <openssl/evp.h>
#include <string.h>

#include "oci-vtpm/json.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/oci.h"
#include "unit.h"

static const char config[] =
    "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
    "\"process\":{\"args\":[\"/bin/app\",\"--port\",\"80\"],\"cwd\":\"/srv\","
    "\"user\":{\"uid\":1000,\"gid\":100},"
    "\"env\":[\"PATH=/bin\",\"DB_PASSWORD=hunter2\",\"A=1\",\"EMPTY=\"],"
    "\"capabilities\":{\"effective\":[\"CAP_KILL\"],\"bounding\":[\"CAP_KILL\"]}},"
    "\"mounts\":[{\"type\":\"proc\",\"destination\":\"/proc\",\"source\":\"proc\",\"extra\":1},"
    "{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/srv/data\","
    "\"options\":[\"rbind\",\"ro\"]}],"
    "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"}],"
    "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[]}},"
    "\"annotations\":{\"io.kubernetes.cri.image-name\":\"example.com/app@sha256:11\","
    "\"io.kubernetes.cri.sandbox-id\":\"x\",\"io.oci-vtpm.enable\":\"true\"}}";

static const char *event(json_object *ev, size_t i)
{
	return json_object_get_string(json_object_array_get_idx(ev, i));
}

static void test_events(void)
{
	struct ov_spec sp = {0};
	json_object *ev = NULL;
	ov_error err = {0};
	size_t n;
	char all[8192] = "";

	CHECK(ov_oci_spec_parse(config, strlen(config), "/b", &sp, &err) == 0);
	CHECK(ov_measure_events("c1", &sp, &ev, &err) == 0);
	n = ev ? json_object_array_length(ev) : 0;
	CHECK(n == 13);
	for (size_t i = 0; i < n; i++) {
		strncat(all, event(ev, i), sizeof(all) - strlen(all) - 2);
		strcat(all, "\n");
	}
	/* No env value, not even part of one; the names, sorted. */
	CHECK(!strstr(all, "hunter2") && !strstr(all, "/bin\"") && !strstr(all, "=1"));
	CHECK(n > 8 &&
	      strcmp(event(ev, 8), "{\"process.env.names\":[\"A\",\"DB_PASSWORD\",\"EMPTY\","
				   "\"PATH\"]}") == 0);
	/* One key per event, in order, keys sorted, no whitespace. */
	CHECK(n > 0 && strncmp(event(ev, 0), "{\"oci-vtpm\":{\"pcr\":11,\"version\":\"", 33) == 0);
	CHECK(n > 1 && strcmp(event(ev, 1), "{\"container.id\":\"c1\"}") == 0);
	CHECK(n > 2 && strcmp(event(ev, 2), "{\"engine\":\"containerd-cri\"}") == 0);
	CHECK(n > 3 && strcmp(event(ev, 3), "{\"image\":{\"io.kubernetes.cri.image-name\":"
					    "\"example.com/app@sha256:11\"}}") == 0);
	CHECK(n > 4 && strcmp(event(ev, 4), "{\"root.readonly\":true}") == 0);
	CHECK(n > 5 &&
	      strcmp(event(ev, 5), "{\"process.args\":[\"/bin/app\",\"--port\",\"80\"]}") == 0);
	CHECK(n > 6 && strcmp(event(ev, 6), "{\"process.cwd\":\"/srv\"}") == 0);
	CHECK(n > 7 && strcmp(event(ev, 7), "{\"process.user\":{\"gid\":100,\"uid\":1000}}") == 0);
	CHECK(n > 9 &&
	      strcmp(event(ev, 9), "{\"process.capabilities\":{\"bounding\":[\"CAP_KILL\"],"
				   "\"effective\":[\"CAP_KILL\"]}}") == 0);
	/* Mounts: the four fields, what else is there left out. */
	CHECK(n > 10 &&
	      strcmp(event(ev, 10),
		     "{\"mounts\":[{\"destination\":\"/proc\",\"source\":\"proc\","
		     "\"type\":\"proc\"},{\"destination\":\"/data\",\"options\":[\"rbind\","
		     "\"ro\"],\"source\":\"/srv/data\",\"type\":\"bind\"}]}") == 0);
	CHECK(n > 11 && strcmp(event(ev, 11), "{\"linux.namespaces\":[{\"type\":\"pid\"},"
					      "{\"type\":\"mount\"}]}") == 0);
	/* The profile itself, canonical: the TPM hashes it, a verifier reads it. */
	CHECK(n > 12 && strcmp(event(ev, 12), "{\"linux.seccomp\":{\"defaultAction\":"
					      "\"SCMP_ACT_ERRNO\",\"syscalls\":[]}}") == 0);
	json_object_put(ev);
	ov_oci_spec_free(&sp);

	/* podman's annotation names the engine; nothing names the image. */
	static const char pm[] = "{\"process\":{\"args\":[\"sh\"]},"
				 "\"annotations\":{\"io.container.manager\":\"libpod\"}}";
	CHECK(ov_oci_spec_parse(pm, strlen(pm), "/b", &sp, &err) == 0);
	CHECK(ov_measure_events("c2", &sp, &ev, &err) == 0);
	CHECK(ev && strcmp(event(ev, 2), "{\"engine\":\"podman\"}") == 0);
	CHECK(ev && strcmp(event(ev, 3), "{\"image\":{}}") == 0);
	CHECK(ev && strcmp(event(ev, 12), "{\"linux.seccomp\":null}") == 0);
	CHECK(ev && strcmp(event(ev, 8), "{\"process.env.names\":[]}") == 0);
	json_object_put(ev);
	ov_oci_spec_free(&sp);
}

int main(void)
{
	test_events();
	return unit_done("test-measure");
}
