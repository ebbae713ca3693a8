/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/fsutil.h"
#include "unit.h"

int main(void)
{
	char dir[] = "/tmp/ov-unit-fs.XXXXXX";
	char path[256], *buf = NULL;
	ov_error err = {0};
	struct stat st;
	size_t len;
	int dfd, fd;

	CHECK(mkdtemp(dir) != NULL);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);

	CHECK(ov_write_file_atomic(dfd, "f", "hello", 5, 0640, &err) == 0);
	CHECK(ov_read_file_at(dfd, "f", 100, &buf, &len, &err) == 0);
	CHECK(len == 5 && strcmp(buf, "hello") == 0);
	free(buf);
	CHECK(fstatat(dfd, "f", &st, 0) == 0 && (st.st_mode & 07777) == 0640);
	CHECK(ov_write_file_atomic(dfd, "f", "bye", 3, 0600, &err) == 0);
	CHECK(ov_read_file_at(dfd, "f", 100, &buf, &len, &err) == 0 && strcmp(buf, "bye") == 0);
	free(buf);
	/* A new file is never put in place of one: the old one stays, no temp
	 * file is left. */
	CHECK(ov_write_file_new(dfd, "g", "one", 3, 0600, &err) == 0);
	CHECK(ov_write_file_new(dfd, "g", "two", 3, 0600, &err) < 0 && err.code == EEXIST);
	CHECK_ERR(&err, "not replaced");
	CHECK(ov_read_file_at(dfd, "g", 100, &buf, &len, &err) == 0 && strcmp(buf, "one") == 0);
	free(buf);
	{
		char tmp[64];

		snprintf(tmp, sizeof(tmp), ".g.tmp.%d", (int)getpid());
		CHECK(faccessat(dfd, tmp, F_OK, 0) < 0 && errno == ENOENT);
	}
	CHECK(unlinkat(dfd, "g", 0) == 0);
	/* Bounded: more than max is an error. */
	CHECK(ov_read_file_at(dfd, "f", 2, &buf, &len, &err) < 0);
	CHECK_ERR(&err, "larger than 2 bytes");
	/* No symlink as the last component, no directory. */
	CHECK(symlinkat("f", dfd, "link") == 0);
	CHECK(ov_read_file_at(dfd, "link", 100, &buf, &len, &err) < 0);
	CHECK(ov_read_file_at(dfd, ".", 100, &buf, &len, &err) < 0);
	CHECK(ov_read_file_at(dfd, "absent", 100, &buf, &len, &err) < 0 && err.code == ENOENT);

	/* mkdir -p makes the chain and refuses symlinks in it. */
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	fd = ov_mkdir_p(path, 0700, &err);
	CHECK(fd >= 0);
	close(fd);
	CHECK(symlinkat("/tmp", dfd, "sl") == 0);
	snprintf(path, sizeof(path), "%s/sl/x", dir);
	CHECK(ov_mkdir_p(path, 0700, &err) < 0);
	CHECK(ov_mkdir_p("relative", 0700, &err) < 0);

	/* remove_tree deletes below it and never follows a symlink out. */
	snprintf(path, sizeof(path), "%s/outside", dir);
	CHECK(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/outside/keep", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/outside", dir);
	CHECK(symlinkat(path, dfd, "a/b/c/escape") == 0);
	CHECK(ov_remove_tree_at(dfd, "a", &err) == 0);
	CHECK(faccessat(dfd, "a", F_OK, 0) < 0 && errno == ENOENT);
	CHECK(faccessat(dfd, "outside/keep", F_OK, 0) == 0);
	CHECK(ov_remove_tree_at(dfd, "a", &err) == 0); /* already gone: fine */
	CHECK(ov_remove_tree_at(dfd, "outside", &err) == 0);
	CHECK(ov_remove_tree_at(dfd, "f", &err) == 0);
	unlinkat(dfd, "link", 0);
	unlinkat(dfd, "sl", 0);
	close(dfd);
	CHECK(rmdir(dir) == 0);
	return unit_done("fsutil");
}
