/* SPDX-License-Identifier: Apache-2.0 */
/* The vtpm proxy: sysfs dev strings, waiting for a chip (on a fake sysfs and
 * /dev made here), and the clear error where there is no /dev/vtpmx. Where
 * /dev/vtpmx exists (tests/vm), a real chip is made and dropped. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/vtpmx.h"
#include "unit.h"

static char dir[] = "/tmp/ov-unit-vtpmx.XXXXXX";
static int sysfd = -1, devfd = -1;
static bool can_mknod;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_parse_devnum(void)
{
	dev_t d = 0;

	CHECK(ov_parse_devnum("10:224\n", &d) == 0 && major(d) == 10 && minor(d) == 224);
	CHECK(ov_parse_devnum("253:65536", &d) == 0 && major(d) == 253 && minor(d) == 65536);
	CHECK(ov_parse_devnum("0:0", &d) == 0 && d == 0);
	CHECK(ov_parse_devnum("4095:1048575", &d) == 0 && major(d) == 4095 && minor(d) == 1048575);
	CHECK(ov_parse_devnum("", &d) < 0);
	CHECK(ov_parse_devnum("10", &d) < 0);
	CHECK(ov_parse_devnum("10:", &d) < 0);
	CHECK(ov_parse_devnum(":224", &d) < 0);
	CHECK(ov_parse_devnum("10:224x", &d) < 0);
	CHECK(ov_parse_devnum("10:224\n\n", &d) < 0);
	CHECK(ov_parse_devnum("10:224 ", &d) < 0);
	CHECK(ov_parse_devnum(" 10:224", &d) < 0);
	CHECK(ov_parse_devnum("-1:2", &d) < 0);
	CHECK(ov_parse_devnum("10:-2", &d) < 0);
	CHECK(ov_parse_devnum("4096:0", &d) < 0);
	CHECK(ov_parse_devnum("1:1048576", &d) < 0);
	CHECK(ov_parse_devnum("99999999999999999999:1", &d) < 0);
}

static void put(int base, const char *rel, const char *text)
{
	char d[256];
	int fd;

	/* mkdir -p of the parents, relative to base */
	snprintf(d, sizeof(d), "%s", rel);
	for (char *c = strchr(d, '/'); c; c = strchr(c + 1, '/')) {
		*c = '\0';
		mkdirat(base, d, 0755);
		*c = '/';
	}
	fd = openat(base, rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && ov_write_all(fd, text, strlen(text)) == 0);
	close(fd);
}

static void reset(void)
{
	ov_error err;

	ov_remove_tree_at(sysfd, "class", &err);
	unlinkat(devfd, "tpm7", 0);
	unlinkat(devfd, "tpmrm7", 0);
}

/* A chip tpm7: 10:224 and 253:65543, as sysfs and devtmpfs would show it. */
static void make_chip(bool tpm2, bool rm_node)
{
	put(sysfd, "class/tpm/tpm7/dev", "10:224\n");
	CHECK(mknodat(devfd, "tpm7", S_IFCHR | 0600, makedev(10, 224)) == 0);
	if (tpm2) {
		put(sysfd, "class/tpmrm/tpmrm7/dev", "253:65543\n");
		if (rm_node)
			CHECK(mknodat(devfd, "tpmrm7", S_IFCHR | 0600, makedev(253, 65543)) == 0);
	}
}

static void test_wait(void)
{
	struct ov_vtpmx_dev d = {.tpm_num = 7, .dev = makedev(10, 224)};
	ov_error err = {0};
	int64_t t0;
	pid_t pid;
	int pidfd;

	/* Already registered. */
	reset();
	make_chip(true, true);
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, true, -1, 1000, &err) == 0);
	CHECK(d.rmdev == makedev(253, 65543));

	/* TPM 1.2: no tpmrm. */
	reset();
	make_chip(false, false);
	d.rmdev = 0;
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, false, -1, 1000, &err) == 0);
	CHECK(d.rmdev == 0);

	/* Never appears: a bounded wait, an error naming what is missing. */
	reset();
	make_chip(true, false);
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, true, -1, 150, &err) < 0);
	CHECK(err.code == ETIMEDOUT);
	CHECK_ERR(&err, "/dev/tpmrm7 did not appear");
	reset();
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, true, -1, 100, &err) < 0);
	CHECK_ERR(&err, "/sys/class/tpm/tpm7 did not appear");

	/* sysfs disagrees with the ioctl: at once, not after the (here 60 s)
	 * timeout; the bound is far from both, whatever the load. */
	reset();
	put(sysfd, "class/tpm/tpm7/dev", "10:225\n");
	t0 = now_ms();
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, true, -1, 60000, &err) < 0);
	CHECK(now_ms() - t0 < 30000);
	CHECK(err.code != ETIMEDOUT);
	CHECK_ERR(&err, "is 10:225 but the vtpm proxy made 10:224");

	/* A symlink or a wrong node where /dev/tpm7 should be is not it. */
	reset();
	make_chip(false, false);
	CHECK(unlinkat(devfd, "tpm7", 0) == 0);
	CHECK(mknodat(devfd, "real", S_IFCHR | 0600, makedev(10, 224)) == 0);
	CHECK(symlinkat("real", devfd, "tpm7") == 0);
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, false, -1, 100, &err) < 0);
	CHECK_ERR(&err, "/dev/tpm7 did not appear as the character device 10:224");
	CHECK(unlinkat(devfd, "tpm7", 0) == 0);
	CHECK(mknodat(devfd, "tpm7", S_IFCHR | 0600, makedev(10, 225)) == 0);
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, false, -1, 100, &err) < 0);
	CHECK_ERR(&err, "did not appear");
	unlinkat(devfd, "real", 0);

	/* Woken by the node's creation (inotify), not by the 1 s re-check:
	 * this is no blind poll. Timed from the moment the child made the
	 * node (it sends that time), so a slow fork or a loaded machine does
	 * not count, only the wake-up. */
	reset();
	make_chip(true, false);
	int tp[2];
	CHECK(pipe(tp) == 0);
	pid = fork();
	if (pid == 0) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		int64_t made;
		int ok;

		nanosleep(&ts, NULL);
		ok = mknodat(devfd, "tpmrm7", S_IFCHR | 0600, makedev(253, 65543)) == 0;
		made = now_ms();
		_exit(ok && write(tp[1], &made, sizeof(made)) == sizeof(made) ? 0 : 1);
	}
	close(tp[1]);
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, true, -1, 60000, &err) == 0);
	t0 = now_ms();
	{
		int64_t made = 0;

		CHECK(read(tp[0], &made, sizeof(made)) == sizeof(made));
		CHECK(t0 - made < 500);
	}
	close(tp[0]);
	CHECK(d.rmdev == makedev(253, 65543));
	waitpid(pid, NULL, 0);

	/* swtpm (here: a child) exits first: fail at once. */
	reset();
	make_chip(true, false);
	pid = fork();
	if (pid == 0) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		nanosleep(&ts, NULL);
		_exit(0);
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	t0 = now_ms();
	CHECK(ov_vtpmx_wait_at(sysfd, devfd, &d, true, pidfd, 60000, &err) < 0);
	CHECK(now_ms() - t0 < 30000);
	CHECK_ERR(&err, "swtpm exited before the kernel registered vTPM tpm7");
	close(pidfd);
	waitpid(pid, NULL, 0);
	reset();
}

static void test_open_node(void)
{
	ov_error err = {0};
	int fd;

	reset();
	make_chip(true, true);
	fd = ov_vtpmx_open_node(devfd, "tpm7", makedev(10, 224), &err);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
		close(fd);
	}
	CHECK(ov_vtpmx_open_node(devfd, "tpm7", makedev(10, 225), &err) < 0);
	CHECK_ERR(&err, "/dev/tpm7 is not the character device 10:225");
	CHECK(symlinkat("tpm7", devfd, "link") == 0);
	CHECK(ov_vtpmx_open_node(devfd, "link", makedev(10, 224), &err) < 0);
	CHECK_ERR(&err, "is not the character device");
	CHECK(ov_vtpmx_open_node(devfd, "nope", makedev(10, 224), &err) < 0);
	CHECK(err.code == ENOENT);
	unlinkat(devfd, "link", 0);
	reset();
}

static void test_no_vtpmx(void)
{
	struct ov_vtpmx_dev d;
	ov_error err = {0};
	char path[300];
	int fd;

	/* Missing, no modprobe: the error says what to do. */
	snprintf(path, sizeof(path), "%s/vtpmx", dir);
	CHECK(ov_vtpmx_new_at(path, false, true, &d, &err) < 0);
	CHECK_ERR(&err, "this kernel has no vtpm_proxy; use the socket backend");
	CHECK_ERR(&err, "vtpmx");
	/* Not a character device. */
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	CHECK(ov_vtpmx_new_at(path, false, true, &d, &err) < 0);
	CHECK_ERR(&err, "is not a character device");
	unlink(path);
	/* A character device that is not vtpmx: the ioctl fails. */
	CHECK(ov_vtpmx_new_at("/dev/null", false, true, &d, &err) < 0);
	CHECK_ERR(&err, "VTPM_PROXY_IOC_NEW_DEV");
}

/* The real thing: on this host's /dev/vtpmx, or its clear absence. */
static void test_host(void)
{
	struct ov_vtpmx_dev d = {0};
	ov_error err = {0};
	int fd;

	if (access(OV_VTPMX_PATH, F_OK) < 0) {
		/* Runs modprobe tpm_vtpm_proxy, which fails on a kernel
		 * without it. */
		CHECK(ov_vtpmx_available(&err) < 0);
		CHECK_ERR(&err, "modprobe " OV_VTPMX_MODULE);
		fd = ov_vtpmx_new(true, &d, &err);
		CHECK(fd < 0);
		CHECK_ERR(&err, "this kernel has no vtpm_proxy; use the socket backend");
		CHECK_ERR(&err, OV_VTPMX_PATH);
		printf("# no %s here: %s\n", OV_VTPMX_PATH, err.msg);
		return;
	}
	CHECK(ov_vtpmx_available(&err) == 0);
	if (geteuid() != 0)
		return;
	for (int tpm2 = 0; tpm2 <= 1; tpm2++) {
		fd = ov_vtpmx_new(tpm2, &d, &err);
		CHECK(fd >= 3);
		if (fd < 0) {
			fprintf(stderr, "%s\n", err.msg);
			continue;
		}
		CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
		CHECK(major(d.dev) != 0 && d.rmdev == 0);
		printf("# made tpm%u (%u:%u), %s\n", d.tpm_num, major(d.dev), minor(d.dev),
		       tpm2 ? "TPM 2.0" : "TPM 1.2");
		/* No swtpm answers: the chip never registers; closing the
		 * proxy fd drops it. */
		close(fd);
	}
}

int main(void)
{
	char p[300];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(p, sizeof(p), "%s/sys", dir);
	mkdir(p, 0755);
	sysfd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof(p), "%s/dev", dir);
	mkdir(p, 0755);
	devfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	can_mknod = mknodat(devfd, "probe", S_IFCHR | 0600, makedev(1, 3)) == 0;
	unlinkat(devfd, "probe", 0);

	test_parse_devnum();
	if (can_mknod) {
		test_wait();
		test_open_node();
	} else {
		printf("# not root: the wait tests (mknod) are left out\n");
	}
	test_no_vtpmx();
	test_host();

	{
		ov_error err;
		int top = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

		ov_remove_tree_at(top, dir + 1, &err);
		close(top);
	}
	return unit_done("vtpmx");
}
