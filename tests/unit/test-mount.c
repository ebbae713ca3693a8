/* SPDX-License-Identifier: Apache-2.0 */
/* Placement under a hostile rootfs, and real binds into another mount
 * namespace (a child that unshared one), as the hook does. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/mount.h"
#include "unit.h"

static char dir[] = "/tmp/ov-unit-mount.XXXXXX";
static char rootfs[256], outside[256];
static int rootfd;

static bool exists(const char *base, const char *rel)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", base, rel);
	return lstat(p, &st) == 0;
}

static void test_open_beneath(void)
{
	ov_error err = {0};
	struct stat st;
	int fd;

	fd = ov_open_beneath(rootfd, "run/tpm", NULL, true, true, &err);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode));
	close(fd);
	fd = ov_open_beneath(rootfd, "dev/tpm0", NULL, false, true, &err);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
	close(fd);
	/* An existing target is reused. */
	fd = ov_open_beneath(rootfd, "dev/tpm0", NULL, false, true, &err);
	CHECK(fd >= 0);
	close(fd);

	/* The final component a symlink to a host file. */
	CHECK(symlinkat("/etc/passwd", rootfd, "dev/tpm1") == 0);
	CHECK(ov_open_beneath(rootfd, "dev/tpm1", NULL, false, true, &err) < 0);
	CHECK_ERR(&err, "refusing /dev/tpm1");
	/* A dangling symlink: its target is not created. */
	CHECK(symlinkat("/tmp/ov-unit-dangling-target", rootfd, "dev/tpm2") == 0);
	CHECK(ov_open_beneath(rootfd, "dev/tpm2", NULL, false, true, &err) < 0);
	CHECK(access("/tmp/ov-unit-dangling-target", F_OK) < 0);
	/* A directory on the way a symlink out of the rootfs. */
	CHECK(symlinkat(outside, rootfd, "evil") == 0);
	CHECK(ov_open_beneath(rootfd, "evil/tpm0", NULL, false, true, &err) < 0);
	CHECK_ERR(&err, "\"evil\" is a symlink");
	CHECK(ov_open_beneath(rootfd, "evil/sub/dir", NULL, true, true, &err) < 0);
	CHECK(!exists(outside, "tpm0") && !exists(outside, "sub"));
	/* A relative symlink that climbs out. */
	CHECK(symlinkat("../../../../..", rootfd, "up") == 0);
	CHECK(ov_open_beneath(rootfd, "up/tmp/x", NULL, true, true, &err) < 0);
	CHECK(ov_open_beneath(rootfd, "../x", NULL, true, true, &err) < 0);
	CHECK_ERR(&err, "'..'");
	/* A directory where a device goes, a file where a directory goes. */
	CHECK(ov_open_beneath(rootfd, "run", NULL, false, true, &err) < 0);
	CHECK(ov_open_beneath(rootfd, "dev/tpm0/x", NULL, true, true, &err) < 0);
	/* Without mkdirs nothing is made. */
	CHECK(ov_open_beneath(rootfd, "new/dir", NULL, true, false, &err) < 0);
	CHECK(!exists(rootfs, "new"));
}

/* A child in its own mount namespace, standing in for a container. */
static pid_t container(int *go)
{
	int ready[2], wait_fd[2];
	pid_t pid;
	char c;

	CHECK(pipe(ready) == 0 && pipe(wait_fd) == 0);
	pid = fork();
	if (pid == 0) {
		char p[512];
		struct stat st;
		int ok;

		close(ready[0]);
		close(wait_fd[1]);
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(10);
		if (write(ready[1], "r", 1) != 1)
			_exit(11);
		if (read(wait_fd[0], &c, 1) != 1)
			_exit(12);
		/* What the parent bound must be here. */
		snprintf(p, sizeof(p), "%s/run/tpm/marker", rootfs);
		ok = stat(p, &st) == 0;
		snprintf(p, sizeof(p), "%s/dev/tpm0", rootfs);
		ok = ok && stat(p, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
		_exit(ok ? 0 : 13);
	}
	close(ready[1]);
	close(wait_fd[0]);
	CHECK(read(ready[0], &c, 1) == 1);
	close(ready[0]);
	*go = wait_fd[1];
	return pid;
}

static void test_mount_into(void)
{
	char src[512], marker[600];
	ov_error err = {0};
	int go, status;
	pid_t pid;

	snprintf(src, sizeof(src), "%s/src", dir);
	CHECK(mkdir(src, 0755) == 0);
	snprintf(marker, sizeof(marker), "%s/marker", src);
	close(open(marker, O_CREAT | O_WRONLY, 0600));

	int srcfd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int devfd = open("/dev/null", O_PATH | O_CLOEXEC);
	struct ov_bind binds[] = {
	    {.src_fd = srcfd, .is_dir = true, .target = "run/tpm"},
	    {.src_fd = devfd, .is_dir = false, .rdev = makedev(1, 3), .target = "dev/tpm0"},
	};

	/* The source must be the device the caller named. */
	pid = container(&go);
	binds[1].rdev = makedev(1, 5);
	CHECK(ov_mount_into(pid, rootfs, NULL, binds, 2, &err) < 0);
	CHECK_ERR(&err, "not the character device expected");
	binds[1].rdev = makedev(1, 3);
	/* A hostile target fails in the child and says why. */
	struct ov_bind evil = {.src_fd = srcfd, .is_dir = true, .target = "evil/tpm"};
	CHECK(ov_mount_into(pid, rootfs, NULL, &evil, 1, &err) < 0);
	CHECK_ERR(&err, "refusing /evil/tpm");

	CHECK(ov_mount_into(pid, rootfs, NULL, binds, 2, &err) == 0);
	/* Not in our namespace. */
	CHECK(!exists(rootfs, "run/tpm/marker"));
	CHECK(write(go, "g", 1) == 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(go);

	CHECK(ov_mount_into(0, rootfs, NULL, binds, 2, &err) < 0);
	CHECK_ERR(&err, "no container pid");
	close(srcfd);
	close(devfd);
}

/* A mount point on the way is crossed only when it is in fresh (the
 * runtime's own filesystems); in a child with a mount namespace of its
 * own, like the hook's helper. */
static void test_no_xdev(void)
{
	pid_t pid = fork();
	int status;

	CHECK(pid >= 0);
	if (pid == 0) {
		const char *fresh[] = {"vol", NULL}, *other[] = {"dev", NULL};
		char vol[600];
		ov_error err = {0};
		int fd, root, bad = 0;

		snprintf(vol, sizeof(vol), "%s/vol", rootfs);
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || mkdir(vol, 0755) < 0 ||
		    mount("tmpfs", vol, "tmpfs", 0, "size=64k") < 0)
			_exit(20);
		/* The rootfs as this namespace sees it (the helper opens it
		 * after setns, too). */
		root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
		fd = ov_open_beneath(root, "vol/tpm", NULL, true, true, &err);
		bad |= fd >= 0 || !strstr(err.msg, "/vol is a mount point");
		fd = ov_open_beneath(root, "vol/tpm", (const char *const *)other, true, true, &err);
		bad |= fd >= 0 || exists(vol, "tpm");
		fd = ov_open_beneath(root, "vol/tpm", (const char *const *)fresh, true, true, &err);
		bad |= fd < 0 || !exists(vol, "tpm");
		_exit(bad ? 21 : 0);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
	ov_error err = {0};

	CHECK(mkdtemp(dir) != NULL);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	CHECK(mkdir(rootfs, 0755) == 0 && mkdir(outside, 0755) == 0);
	rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	test_open_beneath();
	test_mount_into();
	test_no_xdev();
	close(rootfd);
	ov_remove_tree_at(AT_FDCWD, dir, &err);
	return unit_done("mount");
}
