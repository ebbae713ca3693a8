/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/instance.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/store.h"
#include "unit.h"

static void test_ids(void)
{
	char long_id[OV_ID_MAX + 2];

	CHECK(ov_container_id_valid("abc"));
	CHECK(ov_container_id_valid("a_b+c.d-e"));
	CHECK(ov_container_id_valid("0123456789abcdef0123456789abcdef"));
	CHECK(!ov_container_id_valid(""));
	CHECK(!ov_container_id_valid("."));
	CHECK(!ov_container_id_valid(".."));
	CHECK(!ov_container_id_valid("a/b"));
	CHECK(!ov_container_id_valid("../x"));
	CHECK(!ov_container_id_valid("a b"));
	CHECK(!ov_container_id_valid("a\nb"));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	CHECK(!ov_container_id_valid(long_id));
}

static void test_lock_and_record(void)
{
	char dir[] = "/tmp/ov-unit-store.XXXXXX";
	struct ov_record rec = {0}, got;
	ov_error err = {0};
	int run, cdir, status;
	pid_t child;

	CHECK(mkdtemp(dir) != NULL);
	run = ov_run_dir_open(dir, true, &err);
	CHECK(run >= 0);
	CHECK(ov_container_dir_lock(run, "../x", true, &err) < 0);
	CHECK_ERR(&err, "invalid container id");
	CHECK(ov_container_dir_lock(run, "absent", false, &err) < 0 && err.code == ENOENT);

	cdir = ov_container_dir_lock(run, "c1", true, &err);
	CHECK(cdir >= 0);
	/* The lock is exclusive across processes. */
	child = fork();
	if (child == 0) {
		int fd = openat(run, OV_INSTANCE_CONTAINERS_DIR "/c1", O_RDONLY | O_DIRECTORY);
		_exit(flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK ? 0 : 1);
	}
	CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);

	CHECK(ov_record_read(cdir, &got, &err) < 0 && err.code == ENOENT);
	rec.id = "c1";
	rec.bundle = "/b";
	rec.name = "vt";
	rec.boot_id = "bid";
	rec.backend = OV_BACKEND_SOCKET;
	rec.version = OV_TPM_1_2;
	rec.count = 2;
	rec.tpms[0] = (struct ov_record_tpm){.pid = 10, .starttime = 99, .devnum = -1};
	rec.tpms[1] = (struct ov_record_tpm){
	    .pid = 11, .starttime = 1ULL << 40, .devnum = 3, .dev = 0xa00e0, .rmdev = 0xfe00010003};
	CHECK(ov_record_write(cdir, &rec, &err) == 0);
	CHECK(ov_record_read(cdir, &got, &err) == 0);
	CHECK(strcmp(got.id, "c1") == 0 && strcmp(got.name, "vt") == 0);
	CHECK(got.backend == OV_BACKEND_SOCKET && got.version == OV_TPM_1_2 && got.count == 2);
	CHECK(got.tpms[1].starttime == 1ULL << 40 && got.tpms[1].devnum == 3);
	CHECK(got.tpms[1].rmdev == 0xfe00010003 && got.tpms[0].pid == 10);
	CHECK(got.holder_pid == 0 && got.started_at == 0);
	ov_record_free(&got);

	/* Started before its container: who creates it, and when. */
	rec.holder_pid = 42;
	rec.holder_starttime = 1ULL << 33;
	rec.started_at = 1795000000;
	CHECK(ov_record_write(cdir, &rec, &err) == 0);
	CHECK(ov_record_read(cdir, &got, &err) == 0);
	CHECK(got.holder_pid == 42 && got.holder_starttime == 1ULL << 33);
	CHECK(got.started_at == 1795000000 && got.container_pid == 0);
	CHECK(got.cgroup[0] == '\0' && !got.runtime && !got.runtime_root);
	ov_record_free(&got);

	/* The shim's runtime and root: both or neither. */
	rec.runtime = "/usr/sbin/runc";
	CHECK(ov_record_write(cdir, &rec, &err) == 0);
	CHECK(ov_record_read(cdir, &got, &err) == 0);
	CHECK(!got.runtime && !got.runtime_root);
	ov_record_free(&got);
	rec.runtime_root = "/run/runc";
	CHECK(ov_record_write(cdir, &rec, &err) == 0);
	CHECK(ov_record_read(cdir, &got, &err) == 0);
	CHECK(got.runtime && strcmp(got.runtime, "/usr/sbin/runc") == 0);
	CHECK(got.runtime_root && strcmp(got.runtime_root, "/run/runc") == 0);
	ov_record_free(&got);
	rec.runtime = rec.runtime_root = NULL;

	/* Its swtpms' cgroup: a token of 32 hex digits, nothing else. */
	snprintf(rec.cgroup, sizeof(rec.cgroup), "0123456789abcdef0123456789abcdef");
	CHECK(ov_record_write(cdir, &rec, &err) == 0);
	CHECK(ov_record_read(cdir, &got, &err) == 0);
	CHECK(strcmp(got.cgroup, rec.cgroup) == 0);
	ov_record_free(&got);
	CHECK(ov_cgroup_token_valid("0123456789abcdef0123456789abcdef"));
	CHECK(!ov_cgroup_token_valid("0123456789abcdef0123456789abcde"));
	CHECK(!ov_cgroup_token_valid("0123456789abcdef0123456789abcdef0"));
	CHECK(!ov_cgroup_token_valid("../3456789abcdef0123456789abcdef"));
	CHECK(!ov_cgroup_token_valid("0123456789ABCDEF0123456789abcdef"));
	CHECK(!ov_cgroup_token_valid(""));
	{
		int bad = openat(cdir, "record.json", O_WRONLY | O_TRUNC);
		const char *text = "{\"id\":\"c1\",\"backend\":\"socket\",\"version\":\"2.0\","
				   "\"container_pid\":0,\"container_starttime\":0,"
				   "\"cgroup\":\"../../x\",\"tpms\":[]}";

		CHECK(write(bad, text, strlen(text)) == (ssize_t)strlen(text));
		close(bad);
		CHECK(ov_record_read(cdir, &got, &err) < 0);
		CHECK_ERR(&err, "cgroup");
	}

	/* A corrupt record is an error, not an empty record. */
	int fd = openat(cdir, "record.json", O_WRONLY | O_TRUNC);
	CHECK(write(fd, "{\"id\":1}", 8) == 8);
	close(fd);
	CHECK(ov_record_read(cdir, &got, &err) < 0);
	CHECK_ERR(&err, "record");
	unlinkat(cdir, "record.json", 0);
	close(cdir);
	unlinkat(run, "c1", AT_REMOVEDIR);
	close(run);
	rmdir(dir);
}

static void test_proc(void)
{
	unsigned long long a = 0, b = 0;
	char boot[64];
	ov_error err = {0};

	CHECK(ov_proc_starttime(getpid(), &a, &err) == 0 && a > 0);
	CHECK(ov_proc_starttime(getpid(), &b, &err) == 0 && a == b);
	CHECK(ov_proc_starttime(1, &b, &err) == 0 && b <= a);
	CHECK(ov_proc_boot_id(boot, sizeof(boot), &err) == 0 && strlen(boot) == 36);
}

/* CPU time grows with work done; a process that is gone has none. */
static void test_proc_cpu(void)
{
	uint64_t before = 0, after = 0;
	volatile unsigned long spin = 0;
	struct timespec t0, t;
	ov_error err = {0};

	CHECK(ov_proc_cpu_ms(getpid(), &before, &err) == 0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	do {
		for (int i = 0; i < 100000; i++)
			spin += (unsigned long)i;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 200);
	CHECK(ov_proc_cpu_ms(getpid(), &after, &err) == 0);
	CHECK(after >= before + 100);
	CHECK(ov_proc_cpu_ms(-1, &after, &err) < 0 && err.code == ENOENT);
}

int main(void)
{
	test_ids();
	test_lock_and_record();
	test_proc_cpu();
	test_proc();
	return unit_done("store");
}
