/* SPDX-License-Identifier: Apache-2.0 */
/* Device cgroup rules, devices.list matching, /proc/<pid>/cgroup and
 * mountinfo parsing, config.json device rules; on a cgroup v1 host (root),
 * the real devices.allow write and check in a scratch cgroup. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cgroup.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/proc.h"
#include "unit.h"

#define RW (OV_DEV_READ | OV_DEV_WRITE)

static void test_rules(void)
{
	struct ov_devrule r;

	CHECK(ov_devrule_parse("c 10:224 rw", &r) == 0 && r.type == 'c' && r.major == 10 &&
	      r.minor == 224 && r.access == RW);
	CHECK(ov_devrule_parse("a *:* rwm", &r) == 0 && r.type == 'a' && r.major == -1 &&
	      r.minor == -1 && r.access == (RW | OV_DEV_MKNOD));
	CHECK(ov_devrule_parse("b 8:* m\n", &r) == 0 && r.type == 'b' && r.major == 8 &&
	      r.minor == -1 && r.access == OV_DEV_MKNOD);
	CHECK(ov_devrule_parse("c 253:65536 wr", &r) == 0 && r.minor == 65536 && r.access == RW);
	CHECK(ov_devrule_parse("", &r) < 0);
	CHECK(ov_devrule_parse("x 1:2 rw", &r) < 0);
	CHECK(ov_devrule_parse("c 1:2", &r) < 0);
	CHECK(ov_devrule_parse("c 1:2 ", &r) < 0);
	CHECK(ov_devrule_parse("c 1:2 rx", &r) < 0);
	CHECK(ov_devrule_parse("c 1:2 rr", &r) < 0);
	CHECK(ov_devrule_parse("c 1 rw", &r) < 0);
	CHECK(ov_devrule_parse("c  1:2 rw", &r) < 0);
	CHECK(ov_devrule_parse("c 1:2 rw\nc", &r) < 0);
	CHECK(ov_devrule_parse("c 99999999:2 rw", &r) < 0);

	CHECK(ov_devrule_parse("c 10:224 rw", &r) == 0 && ov_devrule_covers(&r, 10, 224, RW));
	CHECK(!ov_devrule_covers(&r, 10, 225, RW));
	CHECK(!ov_devrule_covers(&r, 10, 224, RW | OV_DEV_MKNOD));
	CHECK(ov_devrule_parse("b 10:224 rwm", &r) == 0 && !ov_devrule_covers(&r, 10, 224, RW));
	CHECK(ov_devrule_parse("c *:224 rw", &r) == 0 && ov_devrule_covers(&r, 11, 224, RW));
}

static void test_devices_list(void)
{
	const char *runc = "c 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 5:0 rwm\nc 136:* rwm\n"
			   "c 10:224 rw\nc 253:65536 rw\n";

	CHECK(ov_devices_list_allows("a *:* rwm\n", 10, 224, RW));
	CHECK(ov_devices_list_allows(runc, 10, 224, RW));
	CHECK(ov_devices_list_allows(runc, 253, 65536, RW));
	CHECK(ov_devices_list_allows(runc, 136, 4, RW));
	CHECK(!ov_devices_list_allows(runc, 10, 225, RW));
	CHECK(!ov_devices_list_allows(runc, 253, 65537, RW));
	CHECK(!ov_devices_list_allows("", 10, 224, RW));
	/* The kernel checks each rule alone: r and w from two rules is no rw. */
	CHECK(!ov_devices_list_allows("c 10:224 r\nc 10:224 w\n", 10, 224, RW));
	CHECK(ov_devices_list_allows("c 10:224 r\nc 10:224 w\n", 10, 224, OV_DEV_READ));
	CHECK(!ov_devices_list_allows("b 10:224 rwm\n", 10, 224, RW));
	CHECK(ov_devices_list_allows("c 10:* rw", 10, 224, RW)); /* no final newline */
	CHECK(ov_devices_list_allows("garbage\n\nc 10:224 rw\n", 10, 224, RW));
}

static void test_proc_cgroup(void)
{
	const char *v1 = "12:devices:/user.slice/ctr\n"
			 "4:cpu,cpuacct:/a\n"
			 "3:net_cls,net_prio:/n\n"
			 "1:name=systemd:/b\n"
			 "0::/c\n";
	ov_error err = {0};
	char *p = NULL;

	CHECK(ov_proc_cgroup_path(v1, "devices", &p, &err) == 1 &&
	      strcmp(p, "/user.slice/ctr") == 0);
	free(p);
	CHECK(ov_proc_cgroup_path(v1, "cpuacct", &p, &err) == 1 && strcmp(p, "/a") == 0);
	free(p);
	CHECK(ov_proc_cgroup_path(v1, "cpu", &p, &err) == 1 && strcmp(p, "/a") == 0);
	free(p);
	CHECK(ov_proc_cgroup_path(v1, "net", &p, &err) == 0 && p == NULL);
	CHECK(ov_proc_cgroup_path(v1, "name=systemd", &p, &err) == 1 && strcmp(p, "/b") == 0);
	free(p);
	CHECK(ov_proc_cgroup_path(v1, NULL, &p, &err) == 1 && strcmp(p, "/c") == 0);
	free(p);
	/* cgroup v2 only: no devices hierarchy. */
	CHECK(ov_proc_cgroup_path("0::/system.slice/x.scope\n", "devices", &p, &err) == 0);
	CHECK(ov_proc_cgroup_path("0::/system.slice/x.scope\n", NULL, &p, &err) == 1 &&
	      strcmp(p, "/system.slice/x.scope") == 0);
	free(p);
	CHECK(ov_proc_cgroup_path("0::/\n", NULL, &p, &err) == 1 && strcmp(p, "/") == 0);
	free(p);
	/* A ':' inside the path stays in it; no final newline. */
	CHECK(ov_proc_cgroup_path("5:devices:/a:b", "devices", &p, &err) == 1 &&
	      strcmp(p, "/a:b") == 0);
	free(p);
	/* Not "0::" */
	CHECK(ov_proc_cgroup_path("10::/x\n", NULL, &p, &err) == 0);
	CHECK(ov_proc_cgroup_path("0::/gone (deleted)\n", NULL, &p, &err) < 0);
	CHECK_ERR(&err, "deleted");
	CHECK(ov_proc_cgroup_path("garbage\n", "devices", &p, &err) < 0);
	CHECK_ERR(&err, "malformed");
	CHECK(ov_proc_cgroup_path("5:devices:relative\n", "devices", &p, &err) < 0);
	CHECK(ov_proc_cgroup_path("", "devices", &p, &err) == 0);
}

static void test_mountinfo(void)
{
	const char *mi =
	    "24 1 0:22 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	    "31 24 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	    "35 31 0:30 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:15 - "
	    "cgroup "
	    "cgroup rw,devices\n"
	    "36 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:16 - cgroup cgroup "
	    "rw,cpu,cpuacct\n"
	    "37 31 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
	    "40 31 0:35 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	    /* a bind of a sub-hierarchy, with an escaped space */
	    "50 24 0:30 /docker /mnt/dev\\040cg rw - cgroup cgroup rw,devices\n"
	    /* "devices" only as a prefix of another option: not it */
	    "51 24 0:40 / /mnt/other rw - cgroup cgroup rw,devicesx\n"
	    /* a tmpfs whose options say devices: not a cgroup */
	    "52 24 0:41 / /mnt/tmp rw - tmpfs devices rw,devices\n";
	ov_error err = {0};
	char *mnt = NULL, *sub = NULL;

	CHECK(ov_mountinfo_find_cgroup(mi, "devices", "/t1", &mnt, &sub, &err) == 1);
	CHECK(mnt && strcmp(mnt, "/sys/fs/cgroup/devices") == 0 && sub && strcmp(sub, "t1") == 0);
	free(mnt);
	free(sub);
	CHECK(ov_mountinfo_find_cgroup(mi, "devices", "/", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/sys/fs/cgroup/devices") == 0 && strcmp(sub, "") == 0);
	free(mnt);
	free(sub);
	/* The longest root that holds the path wins. */
	CHECK(ov_mountinfo_find_cgroup(mi, "devices", "/docker/abc", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/mnt/dev cg") == 0 && strcmp(sub, "abc") == 0);
	free(mnt);
	free(sub);
	CHECK(ov_mountinfo_find_cgroup(mi, "devices", "/docker", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/mnt/dev cg") == 0 && strcmp(sub, "") == 0);
	free(mnt);
	free(sub);
	/* "/docker" is no prefix of "/dockerx". */
	CHECK(ov_mountinfo_find_cgroup(mi, "devices", "/dockerx/a", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/sys/fs/cgroup/devices") == 0 && strcmp(sub, "dockerx/a") == 0);
	free(mnt);
	free(sub);
	CHECK(ov_mountinfo_find_cgroup(mi, "cpuacct", "/a/b", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/sys/fs/cgroup/cpu,cpuacct") == 0 && strcmp(sub, "a/b") == 0);
	free(mnt);
	free(sub);
	CHECK(ov_mountinfo_find_cgroup(mi, "name=systemd", "/x", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/sys/fs/cgroup/systemd") == 0);
	free(mnt);
	free(sub);
	CHECK(ov_mountinfo_find_cgroup(mi, NULL, "/x/y", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/sys/fs/cgroup/unified") == 0 && strcmp(sub, "x/y") == 0);
	free(mnt);
	free(sub);
	CHECK(ov_mountinfo_find_cgroup(mi, "pids", "/x", &mnt, &sub, &err) == 0);
	CHECK(mnt == NULL && sub == NULL);
	/* Only a bind of /docker mounted: /other is not reachable. */
	CHECK(ov_mountinfo_find_cgroup("50 24 0:30 /docker /mnt/d rw - cgroup cgroup rw,devices\n",
				       "devices", "/other", &mnt, &sub, &err) == 0);
	/* Optional fields of any number; a truncated line is skipped. */
	CHECK(ov_mountinfo_find_cgroup("60 24 0:30 / /c rw shared:1 master:2 propagate_from:3 - "
				       "cgroup cgroup rw,devices\n61 24 0:30 / /d rw - cgroup\n",
				       "devices", "/k", &mnt, &sub, &err) == 1);
	CHECK(strcmp(mnt, "/c") == 0 && strcmp(sub, "k") == 0);
	free(mnt);
	free(sub);
	CHECK(ov_mountinfo_find_cgroup("", "devices", "/k", &mnt, &sub, &err) == 0);
}

static json_object *spec(const char *devices)
{
	char buf[2048];
	json_object *o = NULL;
	ov_error err;

	snprintf(buf, sizeof(buf), "{\"linux\": {\"resources\": {\"devices\": %s}}}", devices);
	if (ov_json_parse(buf, strlen(buf), "spec", &o, &err) < 0)
		fprintf(stderr, "%s\n", err.msg);
	return o;
}

static void test_spec(void)
{
	cleanup_json json_object *deny = spec("[{\"allow\": false, \"access\": \"rwm\"}]");
	cleanup_json json_object *one = spec("[{\"allow\": false, \"access\": \"rwm\"},"
					     " {\"allow\": true, \"type\": \"c\", \"major\": 10, "
					     "\"minor\": 224, \"access\": \"rw\"}]");
	cleanup_json json_object *wild =
	    spec("[{\"allow\": false, \"access\": \"rwm\"},"
		 " {\"allow\": true, \"type\": \"c\", \"major\": 253, \"access\": \"rw\"}]");
	cleanup_json json_object *later_deny =
	    spec("[{\"allow\": true, \"type\": \"c\", \"major\": 10, \"minor\": 224, \"access\": "
		 "\"rw\"},"
		 " {\"allow\": false, \"type\": \"c\", \"major\": 10, \"minor\": 224, \"access\": "
		 "\"w\"}]");
	cleanup_json json_object *all = spec("[{\"allow\": true}]");
	cleanup_json json_object *ronly = spec("[{\"allow\": true, \"type\": \"c\", \"major\": 10, "
					       "\"minor\": 224, \"access\": \"r\"}]");
	cleanup_json json_object *block = spec("[{\"allow\": true, \"type\": \"b\", \"major\": 10, "
					       "\"minor\": 224, \"access\": \"rw\"}]");
	cleanup_json json_object *junk =
	    spec("[1, \"x\", {\"type\": \"c\"}, {\"allow\": \"yes\"}]");
	cleanup_json json_object *none = NULL;

	CHECK(!ov_spec_devices_allow(deny, 10, 224, RW));
	CHECK(ov_spec_devices_allow(one, 10, 224, RW));
	CHECK(!ov_spec_devices_allow(one, 10, 225, RW));
	CHECK(!ov_spec_devices_allow(one, 10, 224, RW | OV_DEV_MKNOD));
	CHECK(ov_spec_devices_allow(wild, 253, 65536, RW));
	CHECK(!ov_spec_devices_allow(wild, 254, 0, RW));
	CHECK(!ov_spec_devices_allow(later_deny, 10, 224, RW));
	CHECK(ov_spec_devices_allow(later_deny, 10, 224, OV_DEV_READ));
	CHECK(ov_spec_devices_allow(all, 10, 224, RW));
	CHECK(!ov_spec_devices_allow(ronly, 10, 224, RW));
	CHECK(!ov_spec_devices_allow(block, 10, 224, RW));
	CHECK(!ov_spec_devices_allow(junk, 10, 224, RW));
	CHECK(!ov_spec_devices_allow(NULL, 10, 224, RW));
	CHECK(ov_json_parse("{}", 2, "spec", &none, &(ov_error){0}) == 0);
	CHECK(!ov_spec_devices_allow(none, 10, 224, RW));
}

/* Write a string to dir/name. */
static int put(const char *dir, const char *name, const char *s)
{
	char p[512];
	int fd, r;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = ov_write_all(fd, s, strlen(s));
	close(fd);
	return r;
}

static pid_t sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * The real v1 path, where this host has a writable v1 devices hierarchy at
 * the usual place: a scratch cgroup that denies everything, a process in
 * it, and the hook's step against it.
 */
static void test_v1_real(void)
{
	char cg[256], pidbuf[32];
	const dev_t devs[] = {makedev(1, 3), makedev(1, 5)};
	const char *const names[] = {"/dev/tpm0", "/dev/tpmrm0"};
	cleanup_free char *list = NULL;
	ov_error err = {0};
	pid_t pid, runtime;
	int status;

	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/devices/ov-unit-%d", (int)getpid());
	if (geteuid() != 0 || access("/sys/fs/cgroup/devices/devices.allow", W_OK) < 0 ||
	    mkdir(cg, 0755) < 0) {
		printf("# no writable cgroup v1 devices hierarchy: the real v1 test is left out\n");
		return;
	}
	CHECK(put(cg, "devices.deny", "a") == 0);

	/* A container in a cgroup of its own. */
	pid = sleeper();
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	CHECK(put(cg, "cgroup.procs", pidbuf) == 0);
	CHECK(ov_cgroup_allow_devices(pid, NULL, devs, names, 2, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "%s\n", err.msg);
	{
		int fd = open(cg, O_PATH | O_DIRECTORY | O_CLOEXEC);

		CHECK(ov_read_file_at(fd, "devices.list", 1 << 20, &list, NULL, &err) == 0);
		close(fd);
	}
	CHECK(list && strstr(list, "c 1:3 rw\n") && strstr(list, "c 1:5 rw\n"));
	/* Again: already allowed, nothing to do. */
	CHECK(ov_cgroup_allow_devices(pid, NULL, devs, names, 2, &err) == 0);
	stop(pid);

	/* A "container" that shares the devices cgroup of its runtime (cgroup
	 * manager disabled): not widened. */
	CHECK(put(cg, "devices.deny", "a") == 0);
	runtime = fork();
	if (runtime == 0) {
		char me[32];
		pid_t c;
		int r;

		snprintf(me, sizeof(me), "%d", (int)getpid());
		if (put(cg, "cgroup.procs", me) < 0)
			_exit(3);
		c = sleeper();
		r = ov_cgroup_allow_devices(c, NULL, devs, names, 2, &err);
		stop(c);
		_exit(r == 0 ? 1 : strstr(err.msg, "refusing to widen a shared cgroup") ? 0 : 2);
	}
	CHECK(waitpid(runtime, &status, 0) == runtime && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0);

	/* A vanished container. */
	CHECK(ov_cgroup_allow_devices(999999999, NULL, devs, names, 2, &err) < 0);
	CHECK_ERR(&err, "/proc/999999999/cgroup");
	CHECK(rmdir(cg) == 0);
}

int main(void)
{
	test_rules();
	test_devices_list();
	test_proc_cgroup();
	test_mountinfo();
	test_spec();
	test_v1_real();
	return unit_done("cgroup");
}
