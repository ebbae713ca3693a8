/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/admin.c returns what the admin tool prints: init, list, inspect (a
 * tampered generation found), restore, export/rm/import, rotate-key, gc and
 * the pool verbs, on a vTPM whose state a real swtpm wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-vtpm/admin.h"
#include "oci-vtpm/archive.h"
#include "oci-vtpm/cleanup.h"
#include "swtpm-fixture.h"
#include "unit.h"

static struct ov_settings s;

/* A named vTPM with gens generations, each of a state a real swtpm wrote. */
static void make_vtpm(const char *name, unsigned gens)
{
	cleanup_close int vdir = -1, sdir = -1;
	cleanup_key struct ov_key master = {0};
	struct ov_vtpm_keys keys;
	struct ov_meta m;
	ov_error err = {0};
	struct tpm t = {0};
	const char *state = new_state(name);

	CHECK(ov_master_key_current(&s, &master, &err) == 0);
	vdir = ov_archive_dir(&s, name, true, &err);
	CHECK(vdir >= 0);
	CHECK(ov_meta_new(name, &master, &m, &keys, &err) == 0);
	CHECK(start_tpm(&t, state, &keys.state, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "swtpm: %s\n", err.msg);
	/* Something in NV, so the state is one a TPM wrote. */
	const char *const define[] = {"/usr/bin/tpm2_nvdefine", "0x1500016", "-s", "8", NULL};
	CHECK(tool(&t, NULL, define) == 0);
	stop_tpm(&t);
	sdir = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (unsigned i = 0; i < gens; i++)
		CHECK(ov_archive_save(vdir, &m, &keys, &sdir, 1, OV_TPM_2_0, s.keep_generations,
				      &err) == 0);
	ov_vtpm_keys_wipe(&keys);
}

static void flip_byte(const char *p, off_t off)
{
	int fd = open(p, O_RDWR | O_CLOEXEC);
	char c = 0;

	CHECK(fd >= 0 && pread(fd, &c, 1, off) == 1);
	c ^= 0x20;
	CHECK(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

static void test_init(void)
{
	struct ov_admin_init r;
	ov_error err = {0};

	CHECK(ov_admin_init(&s, &r, &err) == 0);
	CHECK(r.have_key && r.key_origin == OV_ADMIN_KEY_CREATED && strlen(r.key_id) == 16);
	CHECK(strcmp(r.key_path, s.master_key) == 0);
	CHECK(r.have_ca && r.ca_created && r.ca_desc[0]);
	/* Never overwritten: the same key id, the same CA. */
	char id[sizeof(r.key_id)];
	snprintf(id, sizeof(id), "%s", r.key_id);
	CHECK(ov_admin_init(&s, &r, &err) == 0);
	CHECK(r.key_origin == OV_ADMIN_KEY_KEPT && strcmp(r.key_id, id) == 0);
	CHECK(r.have_ca && !r.ca_created);
}

static void test_list_inspect_restore(void)
{
	struct ov_admin_vtpm *all, v;
	unsigned long long newest = 0;
	ov_error err = {0};
	size_t n;

	/* Nothing archived yet: an empty list, not an error. */
	CHECK(ov_admin_list(&s, &all, &n, &err) == 0 && n == 0 && all == NULL);
	make_vtpm("X", 2);
	make_vtpm("A", 1);
	CHECK(ov_admin_list(&s, &all, &n, &err) == 0 && n == 2);
	if (n == 2) {
		/* Sorted by name; generations oldest first; sizes add up. */
		CHECK(strcmp(all[0].name, "A") == 0 && strcmp(all[1].name, "X") == 0);
		CHECK(all[1].n_gens == 2 && all[1].gens[0].gen == 1 && all[1].gens[1].gen == 2);
		CHECK(all[1].size == all[1].gens[0].size + all[1].gens[1].size && all[1].size > 0);
		CHECK(all[1].newest == 2 && all[1].count == 1 && all[1].version == OV_TPM_2_0);
		CHECK(!all[1].meta_error && all[1].in_use_by[0] == '\0');
		CHECK(all[1].gens[0].verified == -1 && !all[1].verify_error);
	}
	ov_admin_vtpms_free(all, n);

	CHECK(ov_admin_inspect(&s, "X", &v, &err) == 0);
	CHECK(v.n_gens == 2 && v.bad == 0 && !v.verify_error);
	CHECK(v.n_gens == 2 && v.gens[0].verified == 1 && v.gens[1].verified == 1);
	ov_admin_vtpm_clear(&v);
	CHECK(ov_admin_inspect(&s, "nope", &v, &err) < 0 && err.code == ENOENT);
	CHECK_ERR(&err, "no vTPM named nope");

	/* restore: generation 1 becomes generation 3. */
	CHECK(ov_admin_restore(&s, "X", 1, &newest, &err) == 0 && newest == 3);
	CHECK(ov_admin_restore(&s, "X", 99, &newest, &err) < 0);
	CHECK_ERR(&err, "99");

	/* A flipped byte in generation 2: inspect says which, and why. */
	char gname[64], gpath[128];

	ov_archive_gen_name(2, gname, sizeof(gname));
	snprintf(gpath, sizeof(gpath), "state/vtpms/X/%s", gname);
	flip_byte(path(gpath), 100);
	CHECK(ov_admin_inspect(&s, "X", &v, &err) == 0);
	CHECK(v.n_gens == 3 && v.bad == 1);
	CHECK(v.n_gens == 3 && v.gens[0].verified == 1 && v.gens[1].verified == 0 &&
	      v.gens[1].error && v.gens[2].verified == 1);
	ov_admin_vtpm_clear(&v);
}

static void test_export_rm_import(void)
{
	char name[OV_ADMIN_NAME_MAX + 1];
	unsigned long long gen = 0;
	ov_error err = {0};
	struct stat st;

	CHECK(ov_admin_export(&s, "X", path("x.export"), &err) == 0);
	CHECK(stat(path("x.export"), &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(ov_admin_import(&s, path("x.export"), name, &gen, &err) < 0);
	CHECK_ERR(&err, "already exists");
	CHECK(ov_admin_rm(&s, "X", &err) == 0);
	CHECK(ov_admin_rm(&s, "X", &err) < 0 && err.code == ENOENT);
	CHECK(ov_admin_import(&s, path("x.export"), name, &gen, &err) == 0);
	CHECK(strcmp(name, "X") == 0 && gen == 3);
}

static void test_rotate_key(void)
{
	struct ov_admin_rotation r;
	struct ov_admin_vtpm v;
	ov_error err = {0};

	CHECK(ov_admin_rotate_key(&s, &r, &err) == 0);
	CHECK(!r.resumed && r.rewrapped == 2 && strcmp(r.old_id, r.new_id) != 0);
	CHECK(ov_admin_inspect(&s, "A", &v, &err) == 0);
	CHECK(strcmp(v.key_id, r.new_id) == 0 && v.bad == 0 && !v.verify_error);
	ov_admin_vtpm_clear(&v);
}

static void test_gc(void)
{
	struct ov_admin_gc r;
	ov_error err = {0};

	/* No run directory: nothing to do, and said so. */
	CHECK(ov_admin_gc(&s, &r, &err) == 0 && r.no_run_dir && r.n_events == 0);
	ov_admin_gc_free(&r);
	CHECK(mkdir(path("run"), 0711) == 0);
	CHECK(ov_admin_gc(&s, &r, &err) == 0 && !r.no_run_dir);
	CHECK(r.collected == 0 && r.failed == 0 && r.strays == 0 && r.n_events == 0);
	ov_admin_gc_free(&r);
}

static void test_pool(void)
{
	struct ov_admin_pool_status st;
	struct ov_admin_pool_fill f;
	unsigned removed = 0, warm = 9;
	ov_error err = {0};

	CHECK(ov_admin_pool_status(&s, &st, &err) == 0);
	CHECK(st.pool.ready == 0 && st.pool.have_key && st.pool.have_ca);
	CHECK(st.pool_size == s.pool_size && st.warm == 0 && strstr(st.dir, "/state/pool"));
	double t0 = now_ms();

	CHECK(ov_admin_pool_fill(&s, 2, &f, &err) == 0);
	printf("# pool fill of 2: %.1f ms\n", now_ms() - t0);
	if (err.msg[0])
		fprintf(stderr, "fill: %s\n", err.msg);
	CHECK(f.n_steps == 1 && f.steps[0].kind == OV_ADMIN_FILL_MADE && f.steps[0].n == 2 &&
	      f.steps[0].seconds > 0);
	CHECK(ov_admin_pool_status(&s, &st, &err) == 0 && st.pool.ready == 2);
	/* Already full: no step. */
	CHECK(ov_admin_pool_fill(&s, 2, &f, &err) == 0 && f.n_steps == 0);
	CHECK(ov_admin_pool_drain(&s, &removed, &warm, &err) == 0 && removed == 2 && warm == 0);
	CHECK(ov_admin_pool_status(&s, &st, &err) == 0 && st.pool.ready == 0);
}

int main(void)
{
	fixture_setup("/tmp/ov-unit-admin.XXXXXX");
	fixture_settings(&s);

	test_init();
	test_list_inspect_restore();
	test_export_rm_import();
	test_rotate_key();
	test_gc();
	test_pool();

	fixture_teardown();
	ov_settings_free(&s);
	return unit_done("admin");
}
