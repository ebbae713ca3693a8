/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device backend: each vTPM is a vtpm_proxy chip. The host gets
 * /dev/tpmN (and /dev/tpmrmN for TPM 2.0); the container sees them as
 * /dev/tpm<idx> and /dev/tpmrm<idx>, bind-mounted after checking their
 * device numbers, and allowed in its device cgroup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "oci-vtpm/backend.h"
#include "oci-vtpm/cgroup.h"
#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/measure.h"
#include "oci-vtpm/mount.h"
#include "oci-vtpm/spec.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/store.h"
#include "oci-vtpm/vtpmx.h"

/* Two devices per TPM at most. */
#define MAX_DEVS (2 * OV_MAX_TPMS)
/* Device numbers of other containers' records looked at. */
#define MAX_RECORDED 1024

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * The N of /dev/tpmN that other containers' records of this boot name. When
 * a container's swtpm dies (killed, crashed) its chip goes, but the
 * container keeps the old node bind-mounted and allowed in its device
 * cgroup until poststop: a new chip that got the same number would be
 * reachable from it. Such numbers are not handed out again while recorded.
 */
static size_t recorded_devnums(int cdirfd, unsigned *out, size_t max)
{
	cleanup_close int run = openat(cdirfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat self;
	char boot_id[64];
	ov_error ignored = {0};
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (run < 0 || fstat(cdirfd, &self) < 0 ||
	    ov_proc_boot_id(boot_id, sizeof(boot_id), &ignored) < 0)
		return 0;
	d = fdopendir(take_fd(&run));
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		cleanup_close int c = -1;
		struct ov_record rec;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		c = ov_open_dir_at(dirfd(d), de->d_name);
		if (c < 0 || fstat(c, &st) < 0 ||
		    (st.st_dev == self.st_dev && st.st_ino == self.st_ino))
			continue;
		if (ov_record_read(c, &rec, &ignored) < 0)
			continue;
		if (rec.backend == OV_BACKEND_DEVICE && rec.boot_id &&
		    strcmp(rec.boot_id, boot_id) == 0)
			for (unsigned i = 0; i < rec.count && i < OV_MAX_TPMS && n < max; i++)
				if (rec.tpms[i].devnum >= 0)
					out[n++] = (unsigned)rec.tpms[i].devnum;
		ov_record_free(&rec);
	}
	closedir(d);
	return n;
}

static bool listed(const unsigned *v, size_t n, unsigned x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static int device_open_channel(int cdirfd, unsigned idx, const struct ov_request *r, int *server_fd,
			       struct ov_record_tpm *t, ov_error *err)
{
	unsigned taken[MAX_RECORDED];
	int held[MAX_RECORDED];
	size_t ntaken, nheld = 0;
	struct ov_vtpmx_dev d;
	int fd;

	ntaken = recorded_devnums(cdirfd, taken, MAX_RECORDED);
	/* The kernel gives the lowest free number: hold a chip on each number
	 * still recorded until one is not. At most ntaken are held, since
	 * each held chip has a distinct number from the list. */
	for (;;) {
		fd = ov_vtpmx_new(r->version == OV_TPM_2_0, &d, err);
		if (fd < 0 || !listed(taken, ntaken, d.tpm_num) || nheld == MAX_RECORDED)
			break;
		ov_info("vTPM %u: not using /dev/tpm%u: another container's record still names it",
			idx, d.tpm_num);
		held[nheld++] = fd;
	}
	/* Closing a proxy fd drops its chip (never registered: no swtpm). */
	close_all(held, nheld);
	if (fd < 0)
		return -1;
	if (listed(taken, ntaken, d.tpm_num)) {
		close(fd);
		return ov_error_set(err, EBUSY, "no free vTPM device number");
	}
	t->devnum = (int)d.tpm_num;
	t->dev = d.dev;
	t->rmdev = 0;
	*server_fd = fd;
	ov_debug("vTPM %u: vtpm proxy chip tpm%u (%u:%u)", idx, d.tpm_num, major(d.dev),
		 minor(d.dev));
	return 0;
}

static int device_wait(int cdirfd, const struct ov_settings *s, const struct ov_request *r,
		       unsigned idx, struct ov_record_tpm *t, int exit_fd,
		       const struct ov_limits_cg *cg, int timeout_ms, ov_error *err)
{
	struct ov_vtpmx_dev d = {.tpm_num = (unsigned)t->devnum, .dev = t->dev};
	bool tpm2 = r->version == OV_TPM_2_0;

	(void)cg; /* the kernel's chip: no process of ours to limit */
	if (ov_vtpmx_wait(&d, tpm2, exit_fd, timeout_ms, err) < 0)
		return -1;
	t->rmdev = d.rmdev;
	if (tpm2)
		ov_debug("vTPM %u: /dev/tpm%u (%u:%u) and /dev/tpmrm%u (%u:%u) registered", idx,
			 d.tpm_num, major(d.dev), minor(d.dev), d.tpm_num, major(d.rmdev),
			 minor(d.rmdev));
	else
		ov_debug("vTPM %u: /dev/tpm%u (%u:%u) registered", idx, d.tpm_num, major(d.dev),
			 minor(d.dev));
	return 0;
}

/* The launch's event logs (lib/measure.c), read-only at socket_dir, when
 * measured: the O_PATH fd of their directory, with *b, or -1. Optional: a
 * container whose root may not make socket_dir in its rootfs (its own user
 * namespace over a rootfs of the host's root, a read-only rootfs) gets its
 * devices without it; its PCRs are measured all the same, and the host
 * reads the log (oci-vtpm log). */
static int log_bind(int cdirfd, const struct ov_settings *s, struct ov_bind *b)
{
	int fd = openat(cdirfd, OV_MEASURE_LOG_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0)
		*b = (struct ov_bind){
		    .src_fd = fd, .is_dir = true, .target = s->socket_dir + 1, .optional = true};
	return fd;
}

static int device_attach(int cdirfd, const struct ov_settings *s, pid_t pid,
			 const struct ov_spec *sp, const struct ov_record *rec, ov_error *err)
{
	char shown[MAX_DEVS][32], hostname[32];
	const char *names[MAX_DEVS];
	struct ov_bind binds[MAX_DEVS + 1];
	dev_t devs[MAX_DEVS];
	int fds[MAX_DEVS];
	cleanup_close int devfd = -1, logs = -1;
	__attribute__((cleanup(ov_strv_freep))) char **fresh = NULL;
	bool tpm2 = rec->version == OV_TPM_2_0;
	size_t n = 0;
	int ret = -1;

	if (!sp->rootfs)
		return ov_error_set(err, 0, "config.json has no root.path");
	devfd = open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (devfd < 0)
		return ov_error_set(err, errno, "opening /dev");

	for (unsigned i = 0; i < rec->count; i++) {
		const struct ov_record_tpm *t = &rec->tpms[i];

		for (int rm = 0; rm <= (tpm2 ? 1 : 0); rm++) {
			dev_t dev = rm ? t->rmdev : t->dev;

			if (t->devnum < 0 || dev == 0) {
				ov_error_set(err, 0, "vTPM %u has no device recorded", i);
				goto out;
			}
			snprintf(hostname, sizeof(hostname), "%s%d", rm ? "tpmrm" : "tpm",
				 t->devnum);
			/* "/dev/tpm0" as the container sees it; the target is
			 * relative to the rootfs: "dev/tpm0". */
			snprintf(shown[n], sizeof(shown[n]), "/dev/%s%u", rm ? "tpmrm" : "tpm", i);
			fds[n] = ov_vtpmx_open_node(devfd, hostname, dev, err);
			if (fds[n] < 0)
				goto out;
			binds[n] = (struct ov_bind){
			    .src_fd = fds[n], .is_dir = false, .rdev = dev, .target = shown[n] + 1};
			devs[n] = dev;
			names[n] = shown[n];
			n++;
		}
	}

	/* A container with its own user namespace: its root is some other
	 * host uid, which a root-only node would shut out. The chip is this
	 * container's alone, so its host nodes go to that uid and gid. */
	{
		uid_t uid;
		gid_t gid;

		if (ov_userns_root_ids(pid, &uid, &gid, err) < 0)
			goto out;
		for (size_t k = 0; k < n && (uid || gid); k++) {
			if (fchownat(fds[k], "", uid, gid, AT_EMPTY_PATH) < 0) {
				ov_error_set(err, errno,
					     "giving %s to the container's root (%u:%u)", names[k],
					     (unsigned)uid, (unsigned)gid);
				goto out;
			}
		}
	}

	/* The device cgroup first: under cgroup v2 it may refuse, and then the
	 * container's rootfs is left untouched. */
	if (ov_cgroup_allow_devices(pid, sp->root, devs, names, n, err) < 0)
		goto out;
	if (ov_spec_fresh_mounts(sp, &fresh, err) < 0)
		goto out;
	logs = log_bind(cdirfd, s, &binds[n]);
	if (ov_mount_into(pid, sp->rootfs, (const char *const *)fresh, binds, n + (logs >= 0),
			  err) < 0) {
		ov_error_wrap(err, "placing the vTPM devices in the container");
		goto out;
	}
	ret = 0;
out:
	close_all(fds, n);
	return ret;
}

/* The host's own /dev/tpmN of TPM idx, checked to be the chip recorded. */
static int device_connect(int cdirfd, unsigned idx, const struct ov_record_tpm *t, ov_error *err)
{
	cleanup_close int devfd = open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC), node = -1;
	char name[32], path[64];
	struct stat st;
	int fd;

	(void)cdirfd;
	if (devfd < 0)
		return ov_error_set(err, errno, "opening /dev");
	if (t->devnum < 0 || t->dev == 0)
		return ov_error_set(err, 0, "vTPM %u has no device recorded", idx);
	snprintf(name, sizeof(name), "tpm%d", t->devnum);
	node = ov_vtpmx_open_node(devfd, name, t->dev, err);
	if (node < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", node);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ov_error_set(err, errno, "opening /dev/%s", name);
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != t->dev) {
		close(fd);
		return ov_error_set(err, 0, "/dev/%s is not the vTPM's device", name);
	}
	return fd;
}

static void device_ctrl_name(unsigned idx, char *buf, size_t size)
{
	snprintf(buf, size, "ctrl-%u.sock", idx);
}

static int device_precreate(json_object *spec, const struct ov_settings *s,
			    const struct ov_record *rec, ov_error *err)
{
	(void)s;
	return ov_spec_add_record_devices(spec, rec, err);
}

const struct ov_backend_ops ov_backend_device = {
    .kind = OV_BACKEND_DEVICE,
    .chardev = true,
    .open_channel = device_open_channel,
    .wait = device_wait,
    .precreate = device_precreate,
    .precreate_unnamed = true,
    .attach = device_attach,
    .connect = device_connect,
    .ctrl_name = device_ctrl_name,
};
