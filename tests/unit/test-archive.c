/* SPDX-License-Identifier: Apache-2.0 */
/* Generations: round trip, keep-K pruning, and every kind of tampering. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/fsutil.h"
#include "unit.h"

static char dir[] = "/tmp/ov-unit-archive.XXXXXX";
static int dfd;

static int subdir(const char *name)
{
	mkdirat(dfd, name, 0700);
	return openat(dfd, name, O_RDONLY | O_DIRECTORY);
}

static void put(int d, const char *name, const char *text)
{
	ov_error err;

	ov_write_file_atomic(d, name, text, strlen(text), 0600, &err);
}

static bool has(int d, const char *name, const char *text)
{
	char *buf = NULL;
	ov_error err;
	bool ok = ov_read_file_at(d, name, 4096, &buf, NULL, &err) == 0 && strcmp(buf, text) == 0;

	free(buf);
	return ok;
}

static void copy(int from, const char *a, int to, const char *b)
{
	char *buf = NULL;
	size_t len;
	ov_error err;

	if (ov_read_file_at(from, a, OV_ARCHIVE_MAX, &buf, &len, &err) == 0)
		ov_write_file_atomic(to, b, buf, len, 0600, &err);
	free(buf);
}

int main(void)
{
	struct ov_key master, other;
	struct ov_meta m, mload, y;
	struct ov_vtpm_keys k, kload, ky;
	ov_error err = {0};
	char g1[64], g2[64], g3[64];

	CHECK(mkdtemp(dir) != NULL);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	int vx = subdir("X"), vy = subdir("Y"), src = subdir("src"), dst = subdir("dst");
	memset(master.b, 7, sizeof(master.b));
	memset(other.b, 8, sizeof(other.b));

	CHECK(ov_meta_load(vx, "X", &master, &m, &k, &err) < 0 && err.code == ENOENT);
	CHECK(ov_meta_new("X", &master, &m, &k, &err) == 0);
	m.count = 1;
	CHECK(ov_meta_write(vx, &m, &k, &err) == 0);
	CHECK(ov_meta_load(vx, "X", &master, &mload, &kload, &err) == 0);
	CHECK(memcmp(k.state.b, kload.state.b, OV_KEY_LEN) == 0 && mload.newest == 0);
	/* The wrong master key: a clear error naming both key ids. */
	CHECK(ov_meta_load(vx, "X", &other, &mload, &kload, &err) < 0);
	CHECK_ERR(&err, "vTPM X is protected by master key");
	/* Loaded under another name: refused. */
	CHECK(ov_meta_load(vx, "Z", &master, &mload, &kload, &err) < 0);
	CHECK_ERR(&err, "belongs to vTPM X");

	/* Three generations; swtpm's lock file is not archived. */
	put(src, "tpm2-00.permall", "state-1");
	put(src, ".lock", "");
	CHECK(ov_archive_save(vx, &m, &k, &src, 1, OV_TPM_2_0, 2, &err) == 0 && m.newest == 1);
	put(src, "tpm2-00.permall", "state-2");
	CHECK(ov_archive_save(vx, &m, &k, &src, 1, OV_TPM_2_0, 2, &err) == 0 && m.newest == 2);
	put(src, "tpm2-00.permall", "state-3");
	CHECK(ov_archive_save(vx, &m, &k, &src, 1, OV_TPM_2_0, 2, &err) == 0 && m.newest == 3);
	ov_archive_gen_name(1, g1, sizeof(g1));
	ov_archive_gen_name(2, g2, sizeof(g2));
	ov_archive_gen_name(3, g3, sizeof(g3));
	/* keep 2: generation 1 pruned */
	CHECK(faccessat(vx, g1, F_OK, 0) < 0 && faccessat(vx, g2, F_OK, 0) == 0);
	CHECK(ov_meta_load(vx, "X", &master, &mload, &kload, &err) == 0 && mload.newest == 3);

	CHECK(ov_archive_load(vx, &mload, &kload, 3, &dst, 1, getuid(), getgid(), &err) == 0);
	CHECK(has(dst, "tpm2-00.permall", "state-3"));
	CHECK(faccessat(dst, ".lock", F_OK, 0) < 0);
	/* Into a directory that has the file already: refused, not overwritten. */
	CHECK(ov_archive_load(vx, &mload, &kload, 2, &dst, 1, getuid(), getgid(), &err) < 0);
	CHECK(has(dst, "tpm2-00.permall", "state-3"));
	unlinkat(dst, "tpm2-00.permall", 0);
	/* More TPMs in the archive than the container asks for. */
	CHECK(ov_archive_verify(vx, &mload, &kload, 3, &err) == 0);

	/* An older generation put in place of the newest. */
	copy(vx, g2, vx, g3);
	CHECK(ov_archive_verify(vx, &mload, &kload, 3, &err) < 0);
	CHECK_ERR(&err, "vTPM X generation 3 holds generation 2");
	CHECK(ov_archive_save(vx, &m, &k, &src, 1, OV_TPM_2_0, 2, &err) == 0 && m.newest == 4);

	/* One flipped byte anywhere. */
	char *buf = NULL;
	size_t len;
	char g4[64];
	ov_archive_gen_name(4, g4, sizeof(g4));
	CHECK(ov_read_file_at(vx, g4, OV_ARCHIVE_MAX, &buf, &len, &err) == 0);
	for (size_t off = 0; off < len; off += len / 9 + 1) {
		buf[off] ^= 0x20;
		ov_write_file_atomic(vx, g4, buf, len, 0600, &err);
		CHECK(ov_archive_verify(vx, &m, &k, 4, &err) < 0);
		buf[off] ^= 0x20;
	}
	ov_write_file_atomic(vx, g4, buf, len, 0600, &err);
	CHECK(ov_archive_verify(vx, &m, &k, 4, &err) == 0);
	/* Truncated. */
	ov_write_file_atomic(vx, g4, buf, len - 1, 0600, &err);
	CHECK(ov_archive_verify(vx, &m, &k, 4, &err) < 0);
	ov_write_file_atomic(vx, g4, buf, len, 0600, &err);
	free(buf);

	/* X's archive in Y's place. */
	CHECK(ov_meta_new("Y", &master, &y, &ky, &err) == 0);
	y.count = 1;
	CHECK(ov_meta_write(vy, &y, &ky, &err) == 0);
	CHECK(ov_archive_save(vy, &y, &ky, &src, 1, OV_TPM_2_0, 2, &err) == 0);
	copy(vx, g4, vy, g1);
	CHECK(ov_archive_verify(vy, &y, &ky, 1, &err) < 0);
	CHECK_ERR(&err, "vTPM Y generation 1 does not verify");
	/* X's whole meta.json in Y's directory. */
	copy(vx, "meta.json", vy, "meta.json");
	CHECK(ov_meta_load(vy, "Y", &master, &mload, &kload, &err) < 0);
	CHECK_ERR(&err, "belongs to vTPM X");
	/* An edited newest-generation number in meta.json. */
	CHECK(ov_read_file_at(vx, "meta.json", 4096, &buf, &len, &err) == 0);
	char *p = strstr(buf, "\"newest\":4");
	CHECK(p != NULL);
	if (p) {
		p[9] = '3';
		ov_write_file_atomic(vx, "meta.json", buf, len, 0600, &err);
		CHECK(ov_meta_load(vx, "X", &master, &mload, &kload, &err) < 0);
		CHECK_ERR(&err, "does not verify");
		p[9] = '4';
		ov_write_file_atomic(vx, "meta.json", buf, len, 0600, &err);
	}
	free(buf);

	/* Rewrapping under a new master key: the archives stay readable. */
	CHECK(ov_meta_rewrap(vx, &m, &master, &other, &err) == 0);
	CHECK(ov_meta_load(vx, "X", &master, &mload, &kload, &err) < 0);
	CHECK(ov_meta_load(vx, "X", &other, &mload, &kload, &err) == 0);
	CHECK(memcmp(kload.state.b, k.state.b, OV_KEY_LEN) == 0);
	CHECK(ov_archive_verify(vx, &mload, &kload, 4, &err) == 0);

	close(vx);
	close(vy);
	close(src);
	close(dst);
	ov_remove_tree_at(AT_FDCWD, dir, &err);
	return unit_done("archive");
}
