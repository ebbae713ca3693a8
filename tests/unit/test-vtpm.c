/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lifecycle stages against the real swtpm (socket backend): launch
 * (swtpms recorded and answering, stopped), provision (random keys for
 * ephemeral TPMs, a named vTPM's keys and claim), and their composition in
 * vtpm.c: a start that is held, idempotent, adopted and collected; a named
 * vTPM whose NV index survives stop and start (archive, restore); an
 * attach that fails discards everything; a warm vTPM taken by a start;
 * podman's precreated vTPM moved to the container.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/launch.h"
#include "oci-vtpm/manufacture.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/provision.h"
#include "oci-vtpm/vtpm.h"
#include "oci-vtpm/warm.h"
#include "swtpm-fixture.h"
#include "unit.h"

static struct ov_settings s;
static char boot_id[64];
static ov_error run_err;

static bool exists(const char *name)
{
	struct stat st;

	return lstat(path(name), &st) == 0;
}

static struct ov_request request(const char *name, unsigned count)
{
	struct ov_request r = {.enable = true,
			       .count = count,
			       .version = OV_TPM_2_0,
			       .backend = OV_BACKEND_SOCKET,
			       .name = (char *)name};
	return r;
}

/* The record of slot id (0 when readable). */
static int record(const char *id, struct ov_record *rec)
{
	cleanup_close int run = open(s.run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_close int cdir = -1;
	char slot[OV_INSTANCE_PATH_MAX];
	ov_error err = {0};

	if (ov_instance_path(run, id, false, slot, sizeof(slot), &err) < 0)
		return -1;
	cdir = ov_open_dir_at(run, slot);
	return cdir < 0 ? -1 : ov_record_read(cdir, rec, &err);
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A tpm2-tools target: TPM 0 of slot id. */
static void target(const char *id, struct tpm *t)
{
	snprintf(t->tcti, sizeof(t->tcti),
		 "TPM2TOOLS_TCTI=swtpm:path=%s/run/" OV_INSTANCE_CONTAINERS_DIR
		 "/%s/private/tpm/tpm0.sock",
		 dir, id);
}

static void test_launch(void)
{
	struct ov_request r = request(NULL, 2);
	struct ov_user u;
	struct ov_key keys[2];
	struct ov_record rec = {.id = (char *)"c-launch", .backend = OV_BACKEND_SOCKET}, got;
	cleanup_close int run = ov_run_dir_open(s.run_dir, true, &run_err);
	cleanup_close int cdir = -1;
	int fds[2];
	unsigned char rsp[8];
	char ctrl[512];
	ov_error err = {0};

	CHECK(ov_util_user(s.swtpm_user, &u, &err) == 0);
	CHECK(ov_random(keys, sizeof(keys), &err) == 0);
	cdir = ov_container_dir_lock(run, "c-launch", true, &err);
	CHECK(ov_instance_state_dirs(cdir, 2, &u, true, fds, &err) == 0);
	ov_instance_close_fds(fds, 2);
	CHECK(ov_launch_start(cdir, &s, &r, &u, keys, &rec, &err) == 0);
	CHECK(rec.count == 2 && ov_proc_alive(rec.tpms[1].pid, rec.tpms[1].starttime));
	/* Recorded as it ran; it answers on its control channel. */
	CHECK(record("c-launch", &got) == 0 && got.count == 2 &&
	      got.tpms[0].pid == rec.tpms[0].pid && got.tpms[1].pid == rec.tpms[1].pid);
	ov_record_free(&got);
	snprintf(ctrl, sizeof(ctrl),
		 "%s/run/" OV_INSTANCE_CONTAINERS_DIR "/c-launch/private/tpm/tpm1.sock.ctrl", dir);
	CHECK(ov_swtpm_ctrl(ctrl, OV_SWTPM_CMD_GET_CAPABILITY, rsp, sizeof(rsp), -1, 5000, &err) ==
	      0);
	CHECK(ov_launch_stop(cdir, &s, &rec, &err) == 0);
	CHECK(!ov_proc_alive(rec.tpms[0].pid, rec.tpms[0].starttime));
	CHECK(!ov_proc_alive(rec.tpms[1].pid, rec.tpms[1].starttime));
	waitpid(rec.tpms[0].pid, NULL, WNOHANG);
	waitpid(rec.tpms[1].pid, NULL, WNOHANG);
	CHECK(ov_instance_remove(&s, "c-launch", &err) == 0);

	/* A swtpm that cannot start: said, nothing recorded running. */
	struct ov_record bad = {.id = (char *)"c-bad", .backend = OV_BACKEND_SOCKET};
	char *swtpm = s.swtpm;

	close(cdir);
	cdir = ov_container_dir_lock(run, "c-bad", true, &err);
	CHECK(ov_instance_state_dirs(cdir, 1, &u, true, fds, &err) == 0);
	ov_instance_close_fds(fds, 1);
	s.swtpm = (char *)"/nonexistent/swtpm";
	r.count = 1;
	CHECK(ov_launch_start(cdir, &s, &r, &u, keys, &bad, &err) < 0);
	CHECK_ERR(&err, "vTPM 0");
	CHECK(bad.tpms[0].pid == 0);
	s.swtpm = swtpm;
	CHECK(ov_instance_remove(&s, "c-bad", &err) == 0);
}

static void test_provision(void)
{
	cleanup_close int run = ov_run_dir_open(s.run_dir, true, &run_err);
	cleanup_close int cdir = -1;
	struct ov_request r = request(NULL, 2);
	__attribute__((cleanup(ov_provision_wipe))) struct ov_provision p = {0};
	struct ov_key zero = {0};
	char holder[OV_ID_MAX + 1];
	struct ov_user u;
	int fds[2];
	ov_error err = {0};

	CHECK(ov_util_user(s.swtpm_user, &u, &err) == 0);
	cdir = ov_container_dir_lock(run, "c-prov", true, &err);
	CHECK(ov_instance_state_dirs(cdir, 2, &u, true, fds, &err) == 0);
	/* Ephemeral: one random key, fresh states (swtpm makes them). */
	CHECK(ov_provision_start(&s, run, "c-prov", &r, &u, fds, &p, &err) == 0);
	CHECK(memcmp(&p.keys[0], &zero, sizeof(zero)) != 0);
	CHECK(memcmp(&p.keys[0], &p.keys[1], sizeof(zero)) == 0);
	CHECK(ov_tpm_state_fresh(fds[0]) && ov_tpm_state_fresh(fds[1]));
	/* Named, first start: its keys written, the name claimed. */
	r = request("vt-prov", 2);
	CHECK(ov_provision_start(&s, run, "c-prov", &r, &u, fds, &p, &err) == 0);
	CHECK(exists("state/vtpms/vt-prov/meta.json"));
	CHECK(ov_instance_name_holder(&s, "vt-prov", holder, sizeof(holder)) &&
	      strcmp(holder, "c-prov") == 0);
	/* Another live slot cannot have it; the archive is untouched. */
	CHECK(mkdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-prov2"), 0700) == 0);
	CHECK(ov_provision_start(&s, run, "c-prov2", &r, &u, fds, &p, &err) < 0);
	CHECK(err.code == EBUSY && exists("state/vtpms/vt-prov/meta.json"));
	/* Undone: the claim is released. */
	ov_provision_undo(&s, "c-prov", &r);
	CHECK(!ov_instance_name_holder(&s, "vt-prov", holder, sizeof(holder)));
	ov_instance_close_fds(fds, 2);
	CHECK(ov_instance_remove(&s, "c-prov", &err) == 0);
	CHECK(ov_instance_remove(&s, "c-prov2", &err) == 0);
}

static void test_start_stop(void)
{
	struct ov_request r = request("vt-life", 1);
	struct ov_record rec;
	struct ov_meta m;
	struct tpm t;
	const char *define[] = {"/usr/bin/tpm2_nvdefine", "-C", "o", "-s", "32", "0x1500016", NULL};
	const char *readpub[] = {"/usr/bin/tpm2_nvreadpublic", "0x1500016", NULL};
	pid_t container = fixture_child();
	ov_error err = {0};
	int vdir;

	CHECK(ov_vtpm_start(&s, "c-life", "/bundle", &r, getpid(), &err) == 0);
	CHECK(record("c-life", &rec) == 0 && rec.holder_pid == getpid() && rec.count == 1 &&
	      strcmp(rec.name, "vt-life") == 0 && strcmp(rec.bundle, "/bundle") == 0);
	ov_record_free(&rec);
	/* Idempotent: running already, nothing done. */
	CHECK(ov_vtpm_start(&s, "c-life", "/bundle", &r, getpid(), &err) == 1);
	/* Held: gc leaves it; a container adopts it. */
	CHECK(ov_vtpm_collect(&s, "c-life", boot_id, &err) == 0);
	CHECK(ov_vtpm_adopt(&s, "c-life", container, &(struct ov_spec){0}, &r, &err) == 0);
	CHECK(record("c-life", &rec) == 0 && rec.container_pid == container);
	ov_record_free(&rec);
	target("c-life", &t);
	CHECK(tool(&t, NULL, define) == 0);
	/* Stopped: archived as generation 1, the slot and the claim gone. */
	CHECK(ov_vtpm_stop(&s, "c-life", &err) == 0);
	CHECK(!exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-life") &&
	      !exists("run/" OV_INSTANCE_NAMES_DIR "/vt-life"));
	vdir = ov_archive_dir(&s, "vt-life", false, &err);
	CHECK(vdir >= 0 && ov_meta_load(vdir, "vt-life", NULL, &m, NULL, &err) == 0 &&
	      m.newest == 1);
	close(vdir);
	/* Started again: the same TPM (its NV index is there). */
	CHECK(ov_vtpm_start(&s, "c-life2", NULL, &r, getpid(), &err) == 0);
	target("c-life2", &t);
	CHECK(tool(&t, NULL, readpub) == 0);
	CHECK(ov_vtpm_stop(&s, "c-life2", &err) == 0);
	/* An ephemeral one is new every time. */
	r = request(NULL, 1);
	CHECK(ov_vtpm_start(&s, "c-eph", NULL, &r, getpid(), &err) == 0);
	target("c-eph", &t);
	CHECK(tool(&t, NULL, readpub) != 0);
	CHECK(ov_vtpm_stop(&s, "c-eph", &err) == 0 &&
	      !exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-eph"));
	/* Its holder gone, nothing adopted it: gc collects it. */
	pid_t holder = fixture_child();

	CHECK(ov_vtpm_start(&s, "c-gc", NULL, &r, holder, &err) == 0);
	reap(holder);
	CHECK(ov_vtpm_collect(&s, "c-gc", boot_id, &err) == 1 &&
	      !exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-gc"));
	reap(container);
}

static void test_attach_fails(void)
{
	struct ov_request r = request("vt-attach", 1);
	struct ov_spec sp = {0}; /* no root.path */
	struct ov_record rec;
	pid_t tpm;
	ov_error err = {0};

	CHECK(ov_vtpm_start(&s, "c-attach", NULL, &r, getpid(), &err) == 0);
	CHECK(record("c-attach", &rec) == 0);
	tpm = rec.tpms[0].pid;
	CHECK(ov_vtpm_attach(&s, "c-attach", getpid(), &sp, &r, &err) < 0);
	CHECK_ERR(&err, "root.path");
	/* Discarded: swtpm stopped, slot and claim gone, nothing archived. */
	CHECK(!ov_proc_alive(tpm, rec.tpms[0].starttime));
	ov_record_free(&rec);
	CHECK(!exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-attach") &&
	      !exists("run/" OV_INSTANCE_NAMES_DIR "/vt-attach"));
	{
		int vdir = ov_archive_dir(&s, "vt-attach", false, &err);
		struct ov_meta m;

		CHECK(vdir >= 0 && ov_meta_load(vdir, "vt-attach", NULL, &m, NULL, &err) == 0 &&
		      m.newest == 0);
		close(vdir);
	}
}

static void test_warm(void)
{
	struct ov_request r = request(NULL, 1);
	struct ov_record rec;
	unsigned ready, made;
	ov_error err = {0};

	s.warm_size = 1;
	CHECK(ov_warm_fill(&s, OV_TPM_2_0, &ready, &made, &err) == 0 && ready == 1 && made == 1);
	CHECK(ov_warm_count(&s, OV_TPM_2_0) == 1);
	CHECK(ov_warm_fill(&s, OV_TPM_2_0, &ready, &made, &err) == 0 && ready == 1 && made == 0);
	/* A start that asks for just that takes it (one rename). */
	CHECK(ov_vtpm_start(&s, "c-warm", NULL, &r, getpid(), &err) == 0);
	CHECK(ov_warm_count(&s, OV_TPM_2_0) == 0);
	CHECK(record("c-warm", &rec) == 0 && strcmp(rec.id, "c-warm") == 0 &&
	      ov_instance_alive(&rec) && rec.holder_pid == getpid());
	ov_record_free(&rec);
	/* A named one of one TPM takes one too (socket backend): the name is
	 * new, the warm TPM's state becomes it; the record says its state is
	 * in the swtpm, and the stop archives it as generation 1. */
	CHECK(ov_warm_fill(&s, OV_TPM_2_0, &ready, &made, &err) == 0 && made == 1);
	r = request("vt-warm", 1);
	CHECK(ov_vtpm_start(&s, "c-warm2", NULL, &r, getpid(), &err) == 0);
	CHECK(ov_warm_count(&s, OV_TPM_2_0) == 0);
	CHECK(record("c-warm2", &rec) == 0 && rec.state_in_swtpm && rec.name &&
	      strcmp(rec.name, "vt-warm") == 0);
	ov_record_free(&rec);
	/* Its swtpm killed: the live state was under that swtpm's key, so it
	 * is lost; the stop says so, releases the name, removes the slot and
	 * writes no generation. */
	CHECK(ov_warm_fill(&s, OV_TPM_2_0, &ready, &made, &err) == 0 && made == 1);
	r = request("vt-lost", 1);
	CHECK(ov_vtpm_start(&s, "c-lost", NULL, &r, getpid(), &err) == 0);
	CHECK(record("c-lost", &rec) == 0 && rec.state_in_swtpm);
	kill(rec.tpms[0].pid, SIGKILL);
	while (ov_proc_alive(rec.tpms[0].pid, rec.tpms[0].starttime))
		usleep(1000);
	ov_record_free(&rec);
	CHECK(ov_vtpm_stop(&s, "c-lost", &err) < 0);
	CHECK_ERR(&err, "live state of vTPM vt-lost is lost");
	CHECK(!exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-lost") &&
	      !exists("run/" OV_INSTANCE_NAMES_DIR "/vt-lost"));
	{
		int vdir = ov_archive_dir(&s, "vt-lost", false, &err);
		struct ov_meta m;

		CHECK(vdir >= 0 && ov_meta_load(vdir, "vt-lost", NULL, &m, NULL, &err) == 0 &&
		      m.newest == 0);
		if (vdir >= 0)
			close(vdir);
	}
	/* Two TPMs never do. */
	CHECK(ov_warm_fill(&s, OV_TPM_2_0, &ready, &made, &err) == 0 && made == 1);
	r = request("vt-warm3", 2);
	CHECK(ov_vtpm_start(&s, "c-warm3", NULL, &r, getpid(), &err) == 0);
	CHECK(ov_warm_count(&s, OV_TPM_2_0) == 1);
	CHECK(ov_warm_drain(&s) == 1 && ov_warm_count(&s, OV_TPM_2_0) == 0);
	s.warm_size = 0;
	CHECK(ov_vtpm_stop(&s, "c-warm", &err) == 0);
	CHECK(ov_vtpm_stop(&s, "c-warm2", &err) == 0);
	CHECK(ov_vtpm_stop(&s, "c-warm3", &err) == 0);
	{
		int vdir = ov_archive_dir(&s, "vt-warm", false, &err);
		struct ov_meta m;

		CHECK(vdir >= 0 && ov_meta_load(vdir, "vt-warm", NULL, &m, NULL, &err) == 0 &&
		      m.newest == 1);
		if (vdir >= 0)
			close(vdir);
	}
}

/* warm_size_tpm12: warm TPM 1.2 vTPMs, taken by TPM 1.2 requests only. */
static void test_warm_tpm12(void)
{
	struct ov_request r = request(NULL, 1);
	struct ov_record rec;
	unsigned ready, made;
	ov_error err = {0};

	s.warm_size_tpm12 = 1;
	CHECK(ov_warm_fill(&s, OV_TPM_1_2, &ready, &made, &err) == 0 && ready == 1 && made == 1);
	CHECK(ov_warm_count(&s, OV_TPM_1_2) == 1 && ov_warm_count(&s, OV_TPM_2_0) == 0);
	/* Not for a TPM 2.0 (none of its kind is warm: it starts its own). */
	CHECK(ov_vtpm_start(&s, "c-w12-2", NULL, &r, getpid(), &err) == 0);
	CHECK(ov_warm_count(&s, OV_TPM_1_2) == 1);
	r.version = OV_TPM_1_2;
	CHECK(ov_vtpm_start(&s, "c-w12", NULL, &r, getpid(), &err) == 0);
	CHECK(ov_warm_count(&s, OV_TPM_1_2) == 0);
	CHECK(record("c-w12", &rec) == 0 && rec.version == OV_TPM_1_2 && ov_instance_alive(&rec));
	ov_record_free(&rec);
	s.warm_size_tpm12 = 0;
	CHECK(ov_vtpm_stop(&s, "c-w12", &err) == 0);
	CHECK(ov_vtpm_stop(&s, "c-w12-2", &err) == 0);
}

static void test_precreated(void)
{
	struct ov_request r = request("vt-pre", 1);
	char pre[64];
	pid_t podman = fixture_child();
	ov_error err = {0};

	CHECK(ov_instance_new_name(OV_PRECREATED_PREFIX, pre, sizeof(pre), &err) == 0);
	CHECK(ov_vtpm_start(&s, pre, NULL, &r, podman, &err) == 0);
	/* The hook of the container: moved to its id, running already. */
	r.precreated = pre;
	CHECK(ov_vtpm_start(&s, "c-pre", "/b", &r, getpid(), &err) == 1);
	{
		char rel[80];

		snprintf(rel, sizeof(rel), "run/%s", pre);
		CHECK(!exists(rel) && exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-pre"));
	}
	{
		char holder[OV_ID_MAX + 1];

		CHECK(ov_instance_name_holder(&s, "vt-pre", holder, sizeof(holder)) &&
		      strcmp(holder, "c-pre") == 0);
	}
	/* Again (prestart after createRuntime): its own slot. */
	CHECK(ov_vtpm_start(&s, "c-pre", "/b", &r, getpid(), &err) == 1);
	/* Gone: said. */
	r.precreated = (char *)OV_PRECREATED_PREFIX "00000000000000000000000000000000";
	CHECK(ov_vtpm_start(&s, "c-pre2", "/b", &r, getpid(), &err) < 0);
	CHECK_ERR(&err, "is gone");
	CHECK(ov_vtpm_stop(&s, "c-pre", &err) == 0);
	reap(podman);
}

int main(void)
{
	struct ov_key k;
	ov_error err = {0};

	fixture_setup("/tmp/ov-unit-vtpm.XXXXXX");
	fixture_settings(&s);
	CHECK(ov_master_key_create(s.master_key, &k, &err) == 0);
	ov_key_wipe(&k);
	s.backend = OV_BACKEND_SOCKET;
	s.ek_cert = false;
	CHECK(ov_proc_boot_id(boot_id, sizeof(boot_id), &err) == 0);

	test_launch();
	test_provision();
	test_start_stop();
	test_attach_fails();
	test_warm();
	test_warm_tpm12();
	test_precreated();

	fixture_teardown();
	ov_settings_free(&s);
	return unit_done("vtpm");
}
