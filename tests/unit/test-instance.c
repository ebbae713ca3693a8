/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Run-dir slots (lib/instance.c): slot names, state directories, in use
 * by a live process and not by a dead one, the adoption window, a move
 * under a lock that passes the name's claim on and rewrites the record,
 * a move that lost the race changes nothing, name claims (one slot per
 * name, stale claims taken over and swept by gc).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/proc.h"
#include "swtpm-fixture.h"
#include "unit.h"

#define PRE_A	OV_PRECREATED_PREFIX "0000000000000000000000000000000a"
#define PRE_B	OV_PRECREATED_PREFIX "0000000000000000000000000000000b"
#define WARM_X1 "x1"
#define WARM_X2 "0123456789abcdef0123456789abcdef"
#define HEX32	"0123456789abcdef0123456789abcdef"

static struct ov_settings s;
static int run;
static ov_error lock_err;

static bool exists(const char *name)
{
	struct stat st;

	return lstat(path(name), &st) == 0;
}

static void test_names(void)
{
	char a[64], b[64], tiny[8];
	ov_error err = {0};

	CHECK(ov_instance_new_name(OV_WARM_PREFIX, a, sizeof(a), &err) == 0);
	CHECK(ov_instance_new_name(OV_WARM_PREFIX, b, sizeof(b), &err) == 0);
	CHECK(strlen(a) == strlen(OV_WARM_PREFIX) + 32 && ov_warm_valid(a));
	/* Never a container id: the two never meet in one namespace. */
	CHECK(strcmp(a, b) != 0 && !ov_container_id_valid(a) && ov_instance_slot_valid(a));
	CHECK(ov_instance_new_name(OV_PRECREATED_PREFIX, a, sizeof(a), &err) == 0);
	CHECK(ov_precreated_valid(a) && !ov_warm_valid(a) && !ov_container_id_valid(a));
	CHECK(ov_instance_new_name(OV_WARM_PREFIX, tiny, sizeof(tiny), &err) < 0);
	CHECK(err.code == ENAMETOOLONG);
}

/* Each kind of slot in its own directory; an id like an internal name is
 * a container's. */
static void test_paths(void)
{
	char p[OV_INSTANCE_PATH_MAX];
	ov_error err = {0};

	CHECK(ov_instance_path(run, "c1", false, p, sizeof(p), &err) == 0);
	CHECK(strcmp(p, OV_INSTANCE_CONTAINERS_DIR "/c1") == 0);
	CHECK(ov_instance_path(run, "warm-" HEX32, false, p, sizeof(p), &err) == 0);
	CHECK(strcmp(p, OV_INSTANCE_CONTAINERS_DIR "/warm-" HEX32) == 0);
	CHECK(ov_instance_path(run, OV_INSTANCE_NAMES_DIR, false, p, sizeof(p), &err) == 0);
	CHECK(strcmp(p, OV_INSTANCE_CONTAINERS_DIR "/" OV_INSTANCE_NAMES_DIR) == 0);
	CHECK(ov_instance_path(run, OV_WARM_PREFIX HEX32, false, p, sizeof(p), &err) == 0);
	CHECK(strcmp(p, OV_INSTANCE_WARM_DIR "/" HEX32) == 0);
	CHECK(ov_instance_path(run, OV_PRECREATED_PREFIX HEX32, false, p, sizeof(p), &err) == 0);
	CHECK(strcmp(p, OV_INSTANCE_PRECREATED_DIR "/" HEX32) == 0);
	/* Nothing else: no other kind, no path. */
	CHECK(ov_instance_path(run, OV_WARM_PREFIX "x", false, p, sizeof(p), &err) < 0);
	CHECK(err.code == EINVAL);
	CHECK(ov_instance_path(run, "../x", false, p, sizeof(p), &err) < 0);
	CHECK(ov_instance_path(run, OV_INSTANCE_NAMES_DIR "/" HEX32, false, p, sizeof(p), &err) <
	      0);
	/* Back from a path; one file name and back. */
	snprintf(p, sizeof(p), OV_INSTANCE_CONTAINERS_DIR "/warm-" HEX32);
	CHECK(ov_instance_slot_of(p) && strcmp(p, "warm-" HEX32) == 0);
	snprintf(p, sizeof(p), OV_WARM_PREFIX HEX32);
	CHECK(ov_instance_slot_of(p) && strcmp(p, OV_WARM_PREFIX HEX32) == 0);
	snprintf(p, sizeof(p), OV_INSTANCE_NAMES_DIR "/x");
	CHECK(!ov_instance_slot_of(p));
	snprintf(p, sizeof(p), "c1");
	CHECK(!ov_instance_slot_of(p));
	ov_instance_flat(OV_WARM_PREFIX HEX32, p, sizeof(p));
	CHECK(!strchr(p, '/') && !ov_container_id_valid(p));
	ov_instance_unflat(p);
	CHECK(strcmp(p, OV_WARM_PREFIX HEX32) == 0);
}

static void test_state_dirs(void)
{
	cleanup_close int cdir = ov_container_dir_lock(run, "c-state", true, &lock_err);
	struct ov_user u = {.uid = 1, .gid = 2, .name = "daemon"};
	int fds[OV_MAX_TPMS];
	struct stat st;
	ov_error err = {0};

	CHECK(cdir >= 0);
	CHECK(ov_instance_state_dirs(cdir, 3, &u, true, fds, &err) == 0);
	CHECK(fds[0] >= 0 && fds[2] >= 0);
	CHECK(stat(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-state/state-2"), &st) == 0 &&
	      st.st_uid == 1 && st.st_gid == 2 && (st.st_mode & 0777) == 0700);
	ov_instance_close_fds(fds, 3);
	CHECK(fds[0] == -1 && fds[2] == -1);
	/* Opened again (archive); one more than there are is an error. */
	CHECK(ov_instance_state_dirs(cdir, 3, NULL, false, fds, &err) == 0);
	ov_instance_close_fds(fds, 3);
	CHECK(ov_instance_state_dirs(cdir, 4, NULL, false, fds, &err) < 0);
	CHECK_ERR(&err, "state-3");
	ov_instance_close_fds(fds, 4);
	/* Never made twice: a state directory is never replaced. */
	CHECK(ov_instance_state_dirs(cdir, 1, &u, true, fds, &err) < 0);
	CHECK(err.code == EEXIST);
	ov_instance_close_fds(fds, 1);
	/* Nor through a symlink. */
	CHECK(symlinkat("/", cdir, "state-9") == 0);
	CHECK(ov_open_dir_at(cdir, "state-9") < 0);
	CHECK(ov_instance_remove(&s, "c-state", &err) == 0 &&
	      !exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-state"));
}

/* A child that lives until killed; its start time. */
static pid_t child(unsigned long long *starttime)
{
	ov_error err = {0};
	pid_t pid = fixture_child();

	CHECK(ov_proc_starttime(pid, starttime, &err) == 0);
	return pid;
}

static void test_in_use(void)
{
	struct ov_record rec = {.id = (char *)"c-use", .count = 1};
	unsigned long long st;
	pid_t tpm = child(&st), holder;
	ov_error err = {0};

	rec.tpms[0].pid = tpm;
	rec.tpms[0].starttime = st;
	CHECK(ov_instance_alive(&rec));
	/* Nobody holds it: not in use, a gc collects it. */
	CHECK(!ov_instance_in_use(&rec));
	/* The process creating the container holds it, for the window. */
	holder = child(&st);
	CHECK(ov_instance_hold(&rec, holder, &err) == 0);
	CHECK(rec.holder_pid == holder && rec.holder_starttime == st && rec.started_at > 0);
	CHECK(ov_instance_in_use(&rec));
	rec.started_at -= OV_INSTANCE_ADOPT_WINDOW_S + 1;
	CHECK(!ov_instance_in_use(&rec));
	rec.started_at += OV_INSTANCE_ADOPT_WINDOW_S + 1;
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	CHECK(!ov_instance_in_use(&rec));
	/* A holder that is gone cannot hold. */
	CHECK(ov_instance_hold(&rec, holder, &err) < 0);
	CHECK_ERR(&err, "the process creating the container");
	/* A warm vTPM is in use while it runs. */
	rec.id = (char *)OV_WARM_PREFIX "0123456789abcdef0123456789abcdef";
	CHECK(ov_instance_in_use(&rec));
	kill(tpm, SIGKILL);
	waitpid(tpm, NULL, 0);
	CHECK(!ov_instance_alive(&rec) && !ov_instance_in_use(&rec));
}

static void test_adopt_move(void)
{
	cleanup_close int cdir = ov_container_dir_lock(run, PRE_A, true, &lock_err);
	struct ov_record rec = {.id = (char *)PRE_A,
				.name = (char *)"vt-move",
				.backend = OV_BACKEND_SOCKET,
				.count = 1},
			 got;
	char holder[OV_ID_MAX + 1];
	unsigned long long st;
	pid_t container = child(&st);
	ov_error err = {0};
	bool moved;

	snprintf(rec.cgroup, sizeof(rec.cgroup), "00112233445566778899aabbccddeeff");
	CHECK(cdir >= 0 && ov_record_write(cdir, &rec, &err) == 0);
	CHECK(ov_instance_claim_name(run, "vt-move", PRE_A, &err) == 0);
	CHECK(ov_instance_cgroup_recorded(run, "00112233445566778899aabbccddeeff"));
	CHECK(!ov_instance_cgroup_recorded(run, "ffeeddccbbaa99887766554433221100"));
	/* Lost the race: from is another directory than the one locked. */
	CHECK(ov_instance_move(run, cdir, PRE_B, "c-move", "/b", 0, &rec, &moved, &err) < 0);
	CHECK(err.code == ENOENT && !moved && exists("run/" PRE_A) &&
	      !exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-move"));
	/* Moved: the directory, the claim, the record. */
	CHECK(ov_instance_move(run, cdir, PRE_A, "c-move", "/b", container, &rec, &moved, &err) ==
	      0);
	CHECK(moved && !exists("run/" PRE_A) &&
	      exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-move"));
	CHECK(ov_instance_name_holder(&s, "vt-move", holder, sizeof(holder)) &&
	      strcmp(holder, "c-move") == 0);
	CHECK(ov_record_read(cdir, &got, &err) == 0);
	CHECK(strcmp(got.id, "c-move") == 0 && strcmp(got.bundle, "/b") == 0 &&
	      got.holder_pid == container && got.container_pid == 0);
	/* Its cgroup's name is the record's token: a move leaves it. */
	CHECK(strcmp(got.cgroup, "00112233445566778899aabbccddeeff") == 0);
	CHECK(ov_instance_cgroup_recorded(run, "00112233445566778899aabbccddeeff"));
	/* The container is recorded once. */
	CHECK(ov_instance_adopt(cdir, container, &got, &err) == 0);
	ov_record_free(&got);
	CHECK(ov_record_read(cdir, &got, &err) == 0 && got.container_pid == container &&
	      got.container_starttime == st);
	ov_record_free(&got);
	/* A target that exists is never replaced. */
	CHECK(mkdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-taken"), 0700) == 0);
	CHECK(ov_instance_move(run, cdir, "c-move", "c-taken", NULL, 0, &rec, &moved, &err) < 0);
	CHECK(err.code == EEXIST && !moved && exists("run/" OV_INSTANCE_CONTAINERS_DIR "/c-move"));
	kill(container, SIGKILL);
	waitpid(container, NULL, 0);
	CHECK(ov_instance_remove(&s, "c-move", &err) == 0);
	CHECK(ov_instance_remove(&s, "c-taken", &err) == 0);
	ov_instance_release_name(&s, "vt-move", "c-move");
}

static void test_claims(void)
{
	char holder[OV_ID_MAX + 1];
	ov_error err = {0};

	CHECK(mkdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-one"), 0700) == 0);
	CHECK(mkdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-two"), 0700) == 0);
	CHECK(ov_instance_claim_name(run, "vt-a", "c-one", &err) == 0);
	CHECK(ov_instance_claim_name(run, "vt-a", "c-one", &err) == 0); /* again: its own */
	CHECK(ov_instance_claim_name(run, "vt-a", "c-two", &err) < 0);
	CHECK(err.code == EBUSY);
	CHECK_ERR(&err, "vTPM vt-a is in use by container c-one");
	/* Another slot's release leaves the claim alone. */
	ov_instance_release_name(&s, "vt-a", "c-two");
	CHECK(ov_instance_name_holder(&s, "vt-a", holder, sizeof(holder)) &&
	      strcmp(holder, "c-one") == 0);
	/* Its slot gone: the claim is stale, taken over. */
	CHECK(rmdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-one")) == 0);
	CHECK(!ov_instance_name_holder(&s, "vt-a", holder, sizeof(holder)));
	CHECK(ov_instance_claim_name(run, "vt-a", "c-two", &err) == 0);
	CHECK(ov_instance_name_holder(&s, "vt-a", holder, sizeof(holder)) &&
	      strcmp(holder, "c-two") == 0);
	ov_instance_release_name(&s, "vt-a", "c-two");
	CHECK(!exists("run/" OV_INSTANCE_NAMES_DIR "/vt-a"));
	/* gc sweeps the claims of slots that are gone, keeps the others. */
	CHECK(ov_instance_claim_name(run, "vt-b", "c-two", &err) == 0);
	CHECK(ov_instance_claim_name(run, "vt-c", "c-gone", &err) == 0);
	ov_instance_gc_names(&s);
	CHECK(exists("run/" OV_INSTANCE_NAMES_DIR "/vt-b"));
	CHECK(!exists("run/" OV_INSTANCE_NAMES_DIR "/vt-c"));
	CHECK(rmdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-two")) == 0);
}

static int count_fn(const struct ov_settings *st, const char *name, const char *boot_id)
{
	(void)st;
	(void)name;
	return boot_id[0] != '\0';
}

static void test_each(void)
{
	ov_error err = {0};

	CHECK(mkdir(path("run/" OV_INSTANCE_WARM_DIR), 0700) == 0);
	CHECK(mkdir(path("run/" OV_WARM_PREFIX WARM_X1), 0700) == 0); /* not 32 hex digits */
	CHECK(mkdir(path("run/" OV_WARM_PREFIX WARM_X2), 0700) == 0);
	CHECK(mkdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/c-other"), 0700) == 0);
	/* A container whose id looks like a warm slot's old name is none. */
	CHECK(mkdir(path("run/" OV_INSTANCE_CONTAINERS_DIR "/warm-" HEX32), 0700) == 0);
	CHECK(ov_instance_each(&s, ov_warm_valid, count_fn) == 1);
	CHECK(ov_instance_each(&s, ov_container_id_valid, count_fn) == 2);
	CHECK(ov_instance_each(&s, ov_instance_slot_valid, count_fn) == 3);
	{
		cleanup_instance_iter struct ov_instance_iter it = {.only = OV_INSTANCE_WARM_DIR};
		const char *slot = ov_instance_next(run, &it);

		CHECK(slot && strcmp(slot, OV_WARM_PREFIX WARM_X2) == 0);
		CHECK(!ov_instance_next(run, &it));
	}
	CHECK(ov_instance_remove(&s, OV_WARM_PREFIX WARM_X1, &err) < 0 && err.code == EINVAL);
	CHECK(rmdir(path("run/" OV_WARM_PREFIX WARM_X1)) == 0);
	CHECK(ov_instance_remove(&s, OV_WARM_PREFIX WARM_X2, &err) == 0);
	CHECK(ov_instance_remove(&s, "c-other", &err) == 0);
	CHECK(ov_instance_remove(&s, "warm-" HEX32, &err) == 0);
}

int main(void)
{
	ov_error err = {0};

	fixture_setup("/tmp/ov-unit-instance.XXXXXX");
	ov_settings_defaults(&s);
	free(s.run_dir);
	s.run_dir = strdup(path("run"));
	run = ov_run_dir_open(s.run_dir, true, &err);
	CHECK(run >= 0);

	test_names();
	test_paths();
	test_state_dirs();
	test_in_use();
	test_adopt_move();
	test_claims();
	test_each();

	close(run);
	fixture_teardown();
	ov_settings_free(&s);
	return unit_done("instance");
}
