/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/instance.h"
#include "oci-vtpm/oci.h"
#include "oci-vtpm/rootless.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/util.h"

#define RECORD	   "record.json"
#define RECORD_MAX (64u << 10)

bool ov_container_id_valid(const char *id)
{
	size_t n = strnlen(id, OV_ID_MAX + 1);

	if (n == 0 || n > OV_ID_MAX || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_+.-", c)))
			return false;
	}
	return true;
}

/* The run directory holds the records and sockets of every vTPM we run:
 * it must be ours and writable by no one else (a rootless user's hook
 * refuses one another user could fill or swap). */
static int run_dir_check(int fd, const char *run_dir, ov_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return ov_error_set(err, errno, "stat of %s", run_dir);
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return ov_error_set(
		    err, EPERM,
		    "run directory %s is owned by uid %u with mode %04o: it must be "
		    "ours (uid %u) and writable by no one else",
		    run_dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
		    (unsigned)geteuid());
	return 0;
}

int ov_run_dir_open(const char *run_dir, bool create, ov_error *err)
{
	cleanup_close int fd = -1;

	/* 0711: swtpm, running as its own user, reaches its state directory
	 * <run_dir>/<kind>/<slot>/state-N by name; nothing here can be listed.
	 * Rootless, swtpm is the user: 0700. */
	if (create)
		fd = ov_mkdir_p(run_dir, ov_rootless() ? 0700 : 0711, err);
	else if ((fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return ov_error_set(err, errno, "opening %s", run_dir);
	if (fd < 0 || run_dir_check(fd, run_dir, err) < 0)
		return -1;
	return take_fd(&fd);
}

int ov_slot_path(const char *run_dir, const char *id, char *buf, size_t size, ov_error *err)
{
	char rel[OV_INSTANCE_PATH_MAX];

	if (ov_instance_path(-1, id, false, rel, sizeof(rel), err) < 0)
		return -1;
	if (run_dir[0] != '/' || snprintf(buf, size, "%s/%s", run_dir, rel) >= (int)size)
		return ov_error_set(err, ENAMETOOLONG, "the run directory of %s", id);
	return 0;
}

int ov_container_dir_lock(int run_dirfd, const char *id, bool create, ov_error *err)
{
	char path[OV_INSTANCE_PATH_MAX], kind[OV_INSTANCE_PATH_MAX];

	if (ov_instance_path(run_dirfd, id, create, path, sizeof(path), err) < 0)
		return -1;
	snprintf(kind, sizeof(kind), "%.*s", (int)strcspn(path, "/"), path);
	for (int attempt = 0; attempt < 100; attempt++) {
		cleanup_close int fd = -1;
		struct stat st;

		if (create && mkdirat(run_dirfd, path, 0711) == 0) {
			if (ov_fsync_dir_at(run_dirfd, kind) < 0)
				return ov_error_set(err, errno, "syncing the run directory of %s",
						    id);
		} else if (create && errno != EEXIST) {
			return ov_error_set(err, errno, "creating the run directory of %s", id);
		}
		fd = ov_open_dir_at(run_dirfd, path);
		if (fd < 0) {
			if (errno == ENOENT && create)
				continue; /* removed between mkdir and open */
			return ov_error_set(err, errno, "opening the run directory of %s", id);
		}
		while (flock(fd, LOCK_EX) < 0)
			if (errno != EINTR)
				return ov_error_set(err, errno, "locking the run directory of %s",
						    id);
		if (fstat(fd, &st) < 0)
			return ov_error_set(err, errno, "stat of the run directory of %s", id);
		/* Whoever held the lock before us may have removed the directory. */
		if (st.st_nlink == 0) {
			if (!create)
				return ov_error_set(err, ENOENT, "run directory of %s", id);
			continue;
		}
		return take_fd(&fd);
	}
	return ov_error_set(err, EAGAIN, "locking the run directory of %s", id);
}

static int add_string(json_object *o, const char *k, const char *v)
{
	json_object *s = v ? json_object_new_string(v) : NULL;

	if (v && !s)
		return -1;
	return json_object_object_add(o, k, s);
}

static int add_int(json_object *o, const char *k, int64_t v)
{
	json_object *n = json_object_new_int64(v);

	return n ? json_object_object_add(o, k, n) : -1;
}

/* A flag true is written; false is left out. */
static int add_flag(json_object *root, const char *key, bool on)
{
	json_object *b;

	if (!on)
		return 0;
	b = json_object_new_boolean(true);
	if (!b || json_object_object_add(root, key, b) < 0) {
		json_object_put(b);
		return -1;
	}
	return 0;
}

static int get_flag(json_object *root, const char *key, bool *out, ov_error *err)
{
	json_object *b;

	if (!json_object_object_get_ex(root, key, &b))
		return 0;
	if (!json_object_is_type(b, json_type_boolean))
		return ov_error_set(err, 0, "record: \"%s\" is not a boolean", key);
	*out = json_object_get_boolean(b);
	return 0;
}

int ov_record_write(int cdirfd, const struct ov_record *rec, ov_error *err)
{
	cleanup_json json_object *root = json_object_new_object();
	json_object *tpms = json_object_new_array();
	const char *text;
	size_t len;

	if (!root || !tpms || json_object_object_add(root, "tpms", tpms) < 0) {
		json_object_put(tpms);
		return ov_error_set(err, ENOMEM, "record");
	}
	if (add_string(root, "id", rec->id) < 0 || add_string(root, "bundle", rec->bundle) < 0 ||
	    add_string(root, "name", rec->name) < 0 ||
	    add_string(root, "boot_id", rec->boot_id) < 0 ||
	    add_string(root, "backend", ov_backend_name(rec->backend)) < 0 ||
	    add_string(root, "version", ov_util_tpm_version(rec->version)) < 0)
		return ov_error_set(err, ENOMEM, "record");
	if (add_int(root, "container_pid", rec->container_pid) < 0 ||
	    add_int(root, "container_starttime", (int64_t)rec->container_starttime) < 0)
		return ov_error_set(err, ENOMEM, "record");
	if (add_flag(root, "ek_cert", rec->ek_cert) < 0 ||
	    add_flag(root, "state_in_swtpm", rec->state_in_swtpm) < 0 ||
	    add_flag(root, "stopping", rec->stopping) < 0)
		return ov_error_set(err, ENOMEM, "record");
	if (rec->cgroup[0] && add_string(root, "cgroup", rec->cgroup) < 0)
		return ov_error_set(err, ENOMEM, "record");
	if (rec->runtime && rec->runtime_root &&
	    (add_string(root, "runtime", rec->runtime) < 0 ||
	     add_string(root, "runtime_root", rec->runtime_root) < 0))
		return ov_error_set(err, ENOMEM, "record");
	if (rec->holder_pid > 0 &&
	    (add_int(root, "holder_pid", rec->holder_pid) < 0 ||
	     add_int(root, "holder_starttime", (int64_t)rec->holder_starttime) < 0 ||
	     add_int(root, "started_at", rec->started_at) < 0))
		return ov_error_set(err, ENOMEM, "record");
	for (unsigned i = 0; i < rec->count && i < OV_MAX_TPMS; i++) {
		const struct ov_record_tpm *t = &rec->tpms[i];
		json_object *o = json_object_new_object();

		if (!o || json_object_array_add(tpms, o) < 0) {
			json_object_put(o);
			return ov_error_set(err, ENOMEM, "record");
		}
		if (add_int(o, "pid", t->pid) < 0 ||
		    add_int(o, "starttime", (int64_t)t->starttime) < 0 ||
		    add_int(o, "devnum", t->devnum) < 0 || add_int(o, "dev", (int64_t)t->dev) < 0 ||
		    add_int(o, "rmdev", (int64_t)t->rmdev) < 0)
			return ov_error_set(err, ENOMEM, "record");
	}
	text = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &len);
	if (!text)
		return ov_error_set(err, ENOMEM, "record");
	if (ov_write_file_atomic(cdirfd, RECORD, text, len, 0600, err) < 0)
		return ov_error_wrap(err, "writing the record");
	return 0;
}

static int get_str(json_object *o, const char *k, bool required, char **out, ov_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return ov_error_set(err, 0, "record: missing \"%s\"", k);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return ov_error_set(err, 0, "record: \"%s\" is not a string", k);
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : ov_error_set(err, ENOMEM, "record");
}

static int get_int(json_object *o, const char *k, int64_t min, int64_t max, int64_t *out,
		   ov_error *err)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
		return ov_error_set(err, 0, "record: \"%s\" missing or not a number", k);
	*out = json_object_get_int64(v);
	if (*out < min || *out > max)
		return ov_error_set(err, 0, "record: \"%s\" out of range", k);
	return 0;
}

static int parse_record(json_object *root, struct ov_record *rec, ov_error *err)
{
	cleanup_free char *backend = NULL, *version = NULL;
	json_object *tpms;
	size_t n;

	if (get_str(root, "id", true, &rec->id, err) < 0 ||
	    get_str(root, "bundle", false, &rec->bundle, err) < 0 ||
	    get_str(root, "name", false, &rec->name, err) < 0 ||
	    get_str(root, "boot_id", false, &rec->boot_id, err) < 0 ||
	    get_str(root, "runtime", false, &rec->runtime, err) < 0 ||
	    get_str(root, "runtime_root", false, &rec->runtime_root, err) < 0 ||
	    get_str(root, "backend", true, &backend, err) < 0 ||
	    get_str(root, "version", true, &version, err) < 0)
		return -1;
	if (ov_backend_parse(backend, false, &rec->backend) < 0)
		return ov_error_set(err, 0, "record: bad backend \"%s\"", backend);
	rec->version = strcmp(version, "1.2") == 0 ? OV_TPM_1_2 : OV_TPM_2_0;
	{
		int64_t cpid, cst;

		if (get_int(root, "container_pid", 0, INT32_MAX, &cpid, err) < 0 ||
		    get_int(root, "container_starttime", 0, INT64_MAX, &cst, err) < 0)
			return -1;
		rec->container_pid = (pid_t)cpid;
		rec->container_starttime = (unsigned long long)cst;
	}
	if (get_flag(root, "ek_cert", &rec->ek_cert, err) < 0 ||
	    get_flag(root, "state_in_swtpm", &rec->state_in_swtpm, err) < 0 ||
	    get_flag(root, "stopping", &rec->stopping, err) < 0)
		return -1;
	if (json_object_object_get_ex(root, "holder_pid", NULL)) {
		int64_t hpid, hst, at;

		if (get_int(root, "holder_pid", 1, INT32_MAX, &hpid, err) < 0 ||
		    get_int(root, "holder_starttime", 0, INT64_MAX, &hst, err) < 0 ||
		    get_int(root, "started_at", 0, INT64_MAX, &at, err) < 0)
			return -1;
		rec->holder_pid = (pid_t)hpid;
		rec->holder_starttime = (unsigned long long)hst;
		rec->started_at = at;
	}
	{
		cleanup_free char *cg = NULL;

		if (get_str(root, "cgroup", false, &cg, err) < 0)
			return -1;
		if (cg && !ov_cgroup_token_valid(cg))
			return ov_error_set(err, 0, "record: bad \"cgroup\"");
		if (cg)
			memcpy(rec->cgroup, cg, sizeof(rec->cgroup));
	}
	if (!json_object_object_get_ex(root, "tpms", &tpms) ||
	    !json_object_is_type(tpms, json_type_array))
		return ov_error_set(err, 0, "record: missing \"tpms\"");
	n = json_object_array_length(tpms);
	if (n > OV_MAX_TPMS)
		return ov_error_set(err, 0, "record: too many TPMs");
	rec->count = (unsigned)n;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(tpms, i);
		struct ov_record_tpm *t = &rec->tpms[i];
		int64_t pid, st, devnum, dev, rmdev;

		if (!json_object_is_type(o, json_type_object))
			return ov_error_set(err, 0, "record: bad TPM entry");
		if (get_int(o, "pid", 0, INT32_MAX, &pid, err) < 0 ||
		    get_int(o, "starttime", 0, INT64_MAX, &st, err) < 0 ||
		    get_int(o, "devnum", -1, INT32_MAX, &devnum, err) < 0 ||
		    get_int(o, "dev", 0, INT64_MAX, &dev, err) < 0 ||
		    get_int(o, "rmdev", 0, INT64_MAX, &rmdev, err) < 0)
			return -1;
		t->pid = (pid_t)pid;
		t->starttime = (unsigned long long)st;
		t->devnum = (int)devnum;
		t->dev = (dev_t)dev;
		t->rmdev = (dev_t)rmdev;
	}
	return 0;
}

bool ov_cgroup_token_valid(const char *token)
{
	size_t n = strspn(token, "0123456789abcdef");

	return n == OV_CGROUP_TOKEN_LEN && token[n] == '\0';
}

int ov_record_read(int cdirfd, struct ov_record *rec, ov_error *err)
{
	cleanup_free char *buf = NULL;
	cleanup_json json_object *root = NULL;
	size_t len;

	memset(rec, 0, sizeof(*rec));
	if (ov_read_file_at(cdirfd, RECORD, RECORD_MAX, &buf, &len, err) < 0)
		return -1;
	if (ov_json_parse(buf, len, RECORD, &root, err) < 0)
		return -1;
	if (parse_record(root, rec, err) < 0) {
		ov_record_free(rec);
		return -1;
	}
	return 0;
}

void ov_record_free(struct ov_record *rec)
{
	free(rec->id);
	free(rec->bundle);
	free(rec->name);
	free(rec->boot_id);
	free(rec->runtime);
	free(rec->runtime_root);
	memset(rec, 0, sizeof(*rec));
}
