/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provisioning pool against the real swtpm: fill a temp state_dir under
 * a test master key and CA, claim (the entry leaves the pool), concurrent
 * claims from forked processes get distinct entries, a claimed state starts
 * in swtpm with the entry's state key (and not with another key), a claimed
 * entry renamed for a vTPM name keeps that state key, stale and tampered
 * entries are never handed out, no master key means no pool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/backend.h"
#include "oci-vtpm/ca.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/manufacture.h"
#include "oci-vtpm/pool.h"
#include "oci-vtpm/swtpm.h"
#include "swtpm-fixture.h"
#include "unit.h"

#define RACERS	  12
#define RACE_POOL 8

static struct ov_settings s;

/* A new empty state directory owned by tss; its fd. */
static int new_state_fd(const char *name)
{
	return open(new_state(name), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Entries of d (not . and ..), counting those starting with prefix. */
static int entries(const char *d, const char *prefix, int *with_prefix)
{
	DIR *dd = opendir(d);
	struct dirent *de;
	int n = 0;

	if (with_prefix)
		*with_prefix = 0;
	if (!dd)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(dd))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (with_prefix && prefix && !strncmp(de->d_name, prefix, strlen(prefix)))
			(*with_prefix)++;
	}
	closedir(dd);
	return n;
}

static unsigned ready(void)
{
	struct ov_pool_status st;
	ov_error err = {0};

	CHECK(ov_pool_status(&s, &st, &err) == 0);
	return st.ready;
}

static off_t file_size(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0 ? sb.st_size : -1;
}

/* ------------------------------------------------------------- the tests */

static void test_empty(void)
{
	struct ov_pool_entry e;
	ov_error err = {0};
	int sfd = new_state_fd("st-empty");

	CHECK(ov_pool_claim(&s, "c-empty", 0, sfd, tss_uid, tss_gid, &e, &err) < 0);
	CHECK(err.code == ENOENT);
	CHECK_ERR(&err, "the pool is empty");
	CHECK(ov_tpm_state_fresh(sfd));
	close(sfd);
}

static void test_fill_claim_start(void)
{
	struct ov_pool_entry e;
	struct ov_pool_status st;
	ov_error err = {0};
	unsigned made = 0;
	struct stat sb;
	struct tpm t = {0};
	int with = 0, sfd;
	double t0 = ov_util_mono_ms();

	CHECK(ov_pool_fill(&s, 3, &made, NULL, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "fill: %s\n", err.msg);
	printf("# pool fill of 3: %.1f ms\n", ov_util_mono_ms() - t0);
	CHECK(made == 3);
	CHECK(ov_pool_status(&s, &st, &err) == 0);
	CHECK(st.ready == 3 && st.stale == 0 && st.claims == 0 && st.have_key && st.have_ca);
	CHECK(entries(path("state/pool"), st.kind, &with) == 3 && with == 3);
	CHECK(stat(path("state/pool"), &sb) == 0 && (sb.st_mode & 07777) == 0700);
	/* A fill to the same size does nothing; the work dir is gone. */
	CHECK(ov_pool_fill(&s, 3, &made, NULL, &err) == 0 && made == 0);
	CHECK(entries(path("run/" OV_INSTANCE_POOL_DIR), NULL, NULL) == 0);

	sfd = new_state_fd("st-claimed");
	t0 = ov_util_mono_ms();
	CHECK(ov_pool_claim(&s, "c1", 0, sfd, tss_uid, tss_gid, &e, &err) == 0);
	printf("# pool claim: %.2f ms\n", ov_util_mono_ms() - t0);
	if (err.msg[0])
		fprintf(stderr, "claim: %s\n", err.msg);
	CHECK(ready() == 2);
	/* The claimed entry is gone from the pool, and no claim is left. */
	CHECK(entries(path("state/pool"), e.meta.name, &with) == 2 + 1 && with == 0);
	CHECK(entries(path("state/pool/.claims"), NULL, NULL) == 0);
	CHECK(!ov_tpm_state_fresh(sfd));
	CHECK(stat(path("st-claimed/tpm2-00.permall"), &sb) == 0 && sb.st_uid == tss_uid &&
	      (sb.st_mode & 077) == 0);
	CHECK(e.meta.version == OV_TPM_2_0 && e.meta.count == 1);
	CHECK(strncmp(e.meta.name, "ek2-", 4) == 0);
	close(sfd);

	/* A swtpm on it with another key refuses the state. */
	struct ov_key wrong = e.keys.state;
	wrong.b[0] ^= 1;
	CHECK(start_tpm(&t, path("st-claimed"), &wrong, &err) < 0);
	CHECK_ERR(&err, "libtpms");
	ov_error_clear(&err);

	/* With the entry's state key: the EK certificates are there. */
	CHECK(start_tpm(&t, path("st-claimed"), &e.keys.state, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "start: %s\n", err.msg);
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_nvread", "0x01c00002", "-o",
					 path("ek-rsa.der"), NULL}) == 0);
	CHECK(tool(&t, NULL,
		   (const char *const[]){"/usr/bin/tpm2_nvread", "0x01c08000", "-o",
					 path("platform.der"), NULL}) == 0);
	CHECK(file_size(path("ek-rsa.der")) > 200 && file_size(path("platform.der")) > 200);
	stop_tpm(&t);

	/* Claimed under a name: the same salt and data key, so the same
	 * state key; wrapped and MACed for the name, readable from meta.json. */
	{
		cleanup_close int vdir = ov_mkdir_p(path("vtpm-db"), 0700, &err);
		struct ov_meta m, m2;
		struct ov_vtpm_keys k, k2;

		CHECK(ov_meta_rename(&e.meta, &e.master, "db", &e.master, &m, &k, &err) == 0);
		CHECK(strcmp(m.name, "db") == 0 && m.newest == 0);
		CHECK(memcmp(k.state.b, e.keys.state.b, OV_KEY_LEN) == 0);
		CHECK(memcmp(k.mac.b, e.keys.mac.b, OV_KEY_LEN) != 0);
		CHECK(ov_meta_write(vdir, &m, &k, &err) == 0);
		CHECK(ov_meta_load(vdir, "db", &e.master, &m2, &k2, &err) == 0);
		CHECK(memcmp(k2.state.b, e.keys.state.b, OV_KEY_LEN) == 0);
		/* Not readable as the entry it was. */
		CHECK(ov_meta_load(vdir, e.meta.name, &e.master, &m2, &k2, &err) < 0);
		CHECK(ov_meta_rename(&e.meta, &e.master, "../x", &e.master, &m, &k, &err) < 0);
		ov_vtpm_keys_wipe(&k);
		ov_vtpm_keys_wipe(&k2);
	}
	ov_pool_entry_wipe(&e);

	/* A state directory that holds a TPM already is refused, untouched. */
	sfd = open(path("st-claimed"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(ov_pool_claim(&s, "c1", 1, sfd, tss_uid, tss_gid, &e, &err) < 0);
	CHECK(ready() == 2);
	close(sfd);
}

/* RACERS processes claim at once from a pool of RACE_POOL: each entry goes
 * to exactly one of them, the others find the pool empty. */
static void test_concurrent(void)
{
	char names[RACERS][128];
	int pipes[RACERS][2], go[2];
	pid_t pids[RACERS];
	ov_error err = {0};
	unsigned made;
	int got = 0, empty = 0;

	CHECK(ov_pool_fill(&s, RACE_POOL, &made, NULL, &err) == 0);
	CHECK(ready() == RACE_POOL);
	CHECK(pipe(go) == 0);
	for (int i = 0; i < RACERS; i++) {
		char st[32];
		int sfd;

		snprintf(st, sizeof(st), "st-race-%d", i);
		sfd = new_state_fd(st);
		CHECK(pipe(pipes[i]) == 0);
		pids[i] = fork();
		if (pids[i] == 0) {
			struct ov_pool_entry e;
			char id[32], out[160], c;
			int r;

			close(go[1]);
			/* All start together. */
			if (read(go[0], &c, 1) < 0)
				_exit(3);
			snprintf(id, sizeof(id), "racer-%d", i);
			r = ov_pool_claim(&s, id, 0, sfd, tss_uid, tss_gid, &e, &err);
			snprintf(out, sizeof(out), "%d %.150s", r, r == 0 ? e.meta.name : err.msg);
			if (write(pipes[i][1], out, strlen(out)) < 0)
				_exit(3);
			_exit(0);
		}
		close(pipes[i][1]);
		close(sfd);
	}
	close(go[0]);
	close(go[1]); /* EOF: go */
	for (int i = 0; i < RACERS; i++) {
		char buf[160] = {0};
		int status;
		ssize_t n = read(pipes[i][0], buf, sizeof(buf) - 1);

		close(pipes[i][0]);
		CHECK(waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0);
		names[i][0] = '\0';
		if (n > 2 && buf[0] == '0') {
			snprintf(names[i], sizeof(names[i]), "%.127s", buf + 2);
			got++;
		} else if (n > 2 && buf[0] == '-') {
			CHECK(strstr(buf, "the pool is empty") != NULL);
			empty++;
		} else {
			fprintf(stderr, "racer %d: %s\n", i, buf);
		}
	}
	CHECK(got == RACE_POOL && empty == RACERS - RACE_POOL);
	for (int i = 0; i < RACERS; i++)
		for (int j = i + 1; j < RACERS; j++)
			if (names[i][0])
				CHECK(strcmp(names[i], names[j]) != 0);
	CHECK(ready() == 0);
	CHECK(entries(path("state/pool/.claims"), NULL, NULL) == 0);
	/* Every winner has a state, every loser an empty directory. */
	for (int i = 0; i < RACERS; i++) {
		char st[32];
		int sfd;

		snprintf(st, sizeof(st), "st-race-%d", i);
		sfd = open(path(st), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		CHECK(ov_tpm_state_fresh(sfd) == (names[i][0] == '\0'));
		close(sfd);
	}
}

static void test_stale_tampered_nokey(void)
{
	struct ov_pool_entry e;
	struct ov_pool_status st;
	ov_error err = {0};
	unsigned made, removed;
	char kind[80], meta[400];
	int sfd, fd;

	CHECK(ov_pool_fill(&s, 2, &made, NULL, &err) == 0 && made == 2);
	CHECK(ov_pool_status(&s, &st, &err) == 0);
	snprintf(kind, sizeof(kind), "%s", st.kind);

	/* A tampered entry is discarded, never handed out. */
	{
		DIR *d = opendir(path("state/pool"));
		struct dirent *de = NULL;

		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, kind, strlen(kind)))
				break;
		CHECK(de != NULL);
		snprintf(meta, sizeof(meta), "%s/state/pool/%s/meta.json", dir,
			 de ? de->d_name : "x");
		if (d)
			closedir(d);
	}
	{
		char buf[2048] = {0}, *salt;
		ssize_t n;

		fd = open(meta, O_RDWR);
		n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
		salt = n > 0 ? strstr(buf, "\"salt\":\"") : NULL;
		CHECK(salt != NULL);
		if (salt) {
			salt += 8;
			*salt = *salt == '0' ? '1' : '0';
			CHECK(pwrite(fd, buf, (size_t)n, 0) == n);
		}
		close(fd);
	}
	/* Claim until the tampered one comes up: every other claim works. */
	int bad = 0, good = 0;
	for (int i = 0; i < 2; i++) {
		char name[32];
		int r;

		snprintf(name, sizeof(name), "st-t%d", i);
		sfd = new_state_fd(name);
		r = ov_pool_claim(&s, "c-tamper", (unsigned)i, sfd, tss_uid, tss_gid, &e, &err);
		if (r < 0 && err.code != ENOENT) {
			bad++;
			CHECK_ERR(&err, "discarded");
			CHECK(ov_tpm_state_fresh(sfd));
		} else if (r == 0) {
			good++;
			ov_pool_entry_wipe(&e);
		}
		close(sfd);
	}
	CHECK(bad == 1 && good == 1 && ready() == 0);
	CHECK(entries(path("state/pool/.claims"), NULL, NULL) == 0);

	/* A new CA makes the entries stale: not claimed; fill replaces them. */
	CHECK(ov_pool_fill(&s, 2, &made, NULL, &err) == 0 && made == 2);
	unlink(s.ca_key);
	unlink(s.ca_cert);
	CHECK(ov_ca_create(s.ca_key, s.ca_cert, OV_CA_EC_P256, "another unit test CA", &err) == 0);
	CHECK(ov_pool_status(&s, &st, &err) == 0 && st.ready == 0 && st.stale == 2);
	sfd = new_state_fd("st-stale");
	CHECK(ov_pool_claim(&s, "c-stale", 0, sfd, tss_uid, tss_gid, &e, &err) < 0);
	CHECK(err.code == ENOENT);
	CHECK_ERR(&err, "2 stale");
	CHECK(ov_tpm_state_fresh(sfd));
	/* A claim a crashed start left (no such container is starting). */
	CHECK(mkdir(path("state/pool/.claims/gone-1.0"), 0700) == 0);
	CHECK(ov_pool_fill(&s, 1, &made, &removed, &err) == 0);
	CHECK(made == 1 && removed == 3);
	CHECK(ov_pool_status(&s, &st, &err) == 0 && st.ready == 1 && st.stale == 0 &&
	      st.claims == 0);

	/* No master key: no pool (entries are wrapped), nothing changed. */
	CHECK(rename(s.master_key, path("keys/away")) == 0);
	CHECK(ov_pool_claim(&s, "c-nokey", 0, sfd, tss_uid, tss_gid, &e, &err) < 0);
	CHECK(err.code == ENOKEY);
	CHECK(ov_tpm_state_fresh(sfd));
	CHECK(ov_pool_fill(&s, 2, &made, NULL, &err) < 0);
	CHECK_ERR(&err, "master key");
	CHECK(rename(path("keys/away"), s.master_key) == 0);
	CHECK(ready() == 1);
	CHECK(ov_pool_claim(&s, "c-nokey", 0, sfd, tss_uid, tss_gid, &e, &err) == 0);
	ov_pool_entry_wipe(&e);
	close(sfd);

	CHECK(ov_pool_fill(&s, 2, &made, NULL, &err) == 0 && made == 2);
	CHECK(ov_pool_drain(&s, &removed, &err) == 0 && removed == 2 && ready() == 0);
}

static void test_settings(void)
{
	struct ov_settings t;
	ov_error err = {0};
	const char *ok = "{\"pool_size\":32}", *bad = "{\"pool_size\":5000}";

	ov_settings_defaults(&t);
	CHECK(t.pool_size == 8);
	CHECK(ov_settings_parse(ok, strlen(ok), &t, &err) == 0 && t.pool_size == 32);
	ov_settings_free(&t);
	CHECK(ov_settings_parse(bad, strlen(bad), &t, &err) < 0);
	CHECK_ERR(&err, "pool_size");
	ov_settings_free(&t);
}

int main(void)
{
	struct ov_key k;
	ov_error err = {0};

	fixture_setup("/tmp/ov-unit-pool.XXXXXX");
	fixture_settings(&s);
	CHECK(ov_master_key_create(s.master_key, &k, &err) == 0);
	ov_key_wipe(&k);
	CHECK(ov_ca_create(s.ca_key, s.ca_cert, OV_CA_EC_P256, "unit test CA", &err) == 0);

	test_settings();
	test_empty();
	test_fill_claim_start();
	test_concurrent();
	test_stale_tampered_nokey();

	fixture_teardown();
	ov_settings_free(&s);
	return unit_done("pool");
}
