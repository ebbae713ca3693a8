/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/vtpm_proxy.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/log.h"
#include "oci-vtpm/proc.h"
#include "oci-vtpm/vtpmx.h"

#define MODPROBE_TIMEOUT_MS 30000
/* With uevents or inotify, still re-check this often (a missed event, a
 * netlink buffer overrun); without either, poll this often. */
#define RECHECK_MS  1000
#define FALLBACK_MS 50

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ov_parse_devnum(const char *s, dev_t *out)
{
	unsigned long maj, min;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	maj = strtoul(s, &end, 10);
	if (errno || *end != ':' || end[1] < '0' || end[1] > '9')
		return -1;
	min = strtoul(end + 1, &end, 10);
	if (errno || (*end && strcmp(end, "\n") != 0))
		return -1;
	/* The kernel's limits: 12 bits of major, 20 of minor. */
	if (maj > 0xfff || min > 0xfffff)
		return -1;
	*out = makedev((unsigned)maj, (unsigned)min);
	return 0;
}

/* --- modprobe ------------------------------------------------------------ */

static __attribute__((noreturn)) void modprobe_child(int devnull, int errfd)
{
	static char *const argv[] = {"modprobe", OV_VTPMX_MODULE, NULL};
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(126);
	if (syscall(SYS_close_range, 3, ~0U, 0) < 0 && errno != ENOSYS)
		_exit(126);
	execve(OV_MODPROBE_PATH, argv, envp);
	dprintf(2, "exec %s: %s\n", OV_MODPROBE_PATH, strerror(errno));
	_exit(127);
}

/* Run modprobe; on failure err says what it printed (first line). */
static int run_modprobe(ov_error *err)
{
	cleanup_close int devnull = -1, rd = -1;
	char out[512];
	size_t used = 0;
	int wr = -1, status;
	int64_t deadline;
	pid_t pid;
	bool killed = false;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return ov_error_set(err, errno, "opening /dev/null");
	pid = ov_proc_fork_piped(&rd, &wr, "modprobe", err);
	if (pid < 0)
		return -1;
	if (pid == 0)
		modprobe_child(devnull, wr);

	deadline = now_ms() + MODPROBE_TIMEOUT_MS;
	for (;;) {
		struct pollfd p = {.fd = rd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		ssize_t n;
		int r;

		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = true;
			break;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		n = read(rd, out + used, sizeof(out) - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == sizeof(out) - 1) {
			char sink[256]; /* keep draining; keep the first bytes */
			while (read(rd, sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	out[used] = '\0';
	out[strcspn(out, "\n")] = '\0';
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return ov_error_set(err, errno, "waiting for modprobe");
	if (killed)
		return ov_error_set(err, 0, "modprobe " OV_VTPMX_MODULE " timed out");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (*out)
		return ov_error_set(err, 0, "modprobe " OV_VTPMX_MODULE ": %s", out);
	if (WIFEXITED(status))
		return ov_error_set(err, 0, "modprobe " OV_VTPMX_MODULE " exited with %d",
				    WEXITSTATUS(status));
	return ov_error_set(err, 0, "modprobe " OV_VTPMX_MODULE " killed by signal %d",
			    WTERMSIG(status));
}

/* Once per process: a hook that failed to load the module does not retry it
 * for every vTPM. */
static int modprobe_once(ov_error *err)
{
	static int done = 0, result;
	static ov_error saved = {0};

	if (!done) {
		result = run_modprobe(&saved);
		done = 1;
		if (result == 0)
			ov_info("loaded kernel module " OV_VTPMX_MODULE);
	}
	if (result < 0) {
		*err = saved;
		return -1;
	}
	return 0;
}

static int vtpmx_missing(const char *path, bool modprobe, ov_error *err)
{
	ov_error merr = {0};

	if (!modprobe)
		return ov_error_set(err, ENOENT, "%s", path);
	if (modprobe_once(&merr) < 0)
		return ov_error_set(err, 0, "%s: No such file or directory (%s)", path, merr.msg);
	if (access(path, F_OK) < 0)
		return ov_error_set(err, errno, "%s (after modprobe " OV_VTPMX_MODULE ")", path);
	return 0;
}

int ov_vtpmx_available(ov_error *err)
{
	if (access(OV_VTPMX_PATH, F_OK) == 0)
		return 0;
	if (errno != ENOENT)
		return ov_error_set(err, errno, OV_VTPMX_PATH);
	return vtpmx_missing(OV_VTPMX_PATH, true, err);
}

/* --- creating a chip ------------------------------------------------------ */

int ov_vtpmx_new_at(const char *path, bool modprobe, bool tpm2, struct ov_vtpmx_dev *out,
		    ov_error *err)
{
	struct vtpm_proxy_new_dev nd = {.flags = tpm2 ? VTPM_PROXY_FLAG_TPM2 : 0};
	cleanup_close int x = -1, fd = -1;
	struct stat st;

	x = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (x < 0 && errno == ENOENT) {
		if (vtpmx_missing(path, modprobe, err) < 0)
			return ov_error_wrap(
			    err, "this kernel has no vtpm_proxy; use the socket backend");
		x = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	}
	if (x < 0)
		return ov_error_set(err, errno, "opening %s", path);
	if (fstat(x, &st) < 0)
		return ov_error_set(err, errno, "%s", path);
	if (!S_ISCHR(st.st_mode))
		return ov_error_set(err, 0, "%s is not a character device", path);
	if (ioctl(x, VTPM_PROXY_IOC_NEW_DEV, &nd) < 0)
		return ov_error_set(err, errno, "%s: VTPM_PROXY_IOC_NEW_DEV", path);
	/* The kernel installs the proxy fd without O_CLOEXEC. */
	fd = (int)nd.fd;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return ov_error_set(err, errno, "FD_CLOEXEC on the vTPM proxy fd");
	out->tpm_num = nd.tpm_num;
	out->dev = makedev(nd.major, nd.minor);
	out->rmdev = 0;
	ov_debug("vtpm proxy: /dev/tpm%u (%u:%u), TPM %s", nd.tpm_num, nd.major, nd.minor,
		 tpm2 ? "2.0" : "1.2");
	return take_fd(&fd);
}

int ov_vtpmx_new(bool tpm2, struct ov_vtpmx_dev *out, ov_error *err)
{
	return ov_vtpmx_new_at(OV_VTPMX_PATH, true, tpm2, out, err);
}

/* --- waiting for the chip -------------------------------------------------- */

int ov_vtpmx_open_node(int devfd, const char *name, dev_t rdev, ov_error *err)
{
	cleanup_close int fd = openat(devfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return ov_error_set(err, errno, "opening /dev/%s", name);
	if (fstat(fd, &st) < 0)
		return ov_error_set(err, errno, "/dev/%s", name);
	if (!S_ISCHR(st.st_mode) || st.st_rdev != rdev)
		return ov_error_set(err, 0, "/dev/%s is not the character device %u:%u", name,
				    major(rdev), minor(rdev));
	return take_fd(&fd);
}

/* Read sysfs class/<cls>/<cls>N/dev. 1: read, 0: not there yet, -1: error. */
static int read_sysfs_dev(int sysfd, const char *cls, unsigned n, dev_t *out, ov_error *err)
{
	char path[128], buf[64];
	cleanup_close int fd = -1;
	ssize_t r;

	snprintf(path, sizeof(path), "class/%s/%s%u/dev", cls, cls, n);
	/* class/<cls>/<cls>N is the kernel's own symlink into /sys/devices. */
	fd = openat(sysfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return ov_error_set(err, errno, "opening /sys/%s", path);
	}
	do
		r = read(fd, buf, sizeof(buf) - 1);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno == ENODEV || errno == ENOENT) /* removed under us */
			return 0;
		return ov_error_set(err, errno, "reading /sys/%s", path);
	}
	buf[r] = '\0';
	if (ov_parse_devnum(buf, out) < 0)
		return ov_error_set(err, 0, "/sys/%s: unexpected contents \"%.20s\"", path, buf);
	return 1;
}

/* Is devfd/name the character device rdev? Not there or not it: false. */
static bool node_is(int devfd, const char *name, dev_t rdev)
{
	struct stat st;

	return fstatat(devfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == rdev;
}

/*
 * 1: registered and the nodes are there; 0: not yet (why says what is
 * missing); -1: a contradiction (sysfs disagrees with the ioctl).
 */
static int chip_ready(int sysfd, int devfd, struct ov_vtpmx_dev *d, bool tpm2, char *why,
		      size_t whysz, ov_error *err)
{
	char name[32];
	dev_t dev;
	int r;

	r = read_sysfs_dev(sysfd, "tpm", d->tpm_num, &dev, err);
	if (r < 0)
		return -1;
	if (r == 0) {
		snprintf(why, whysz, "/sys/class/tpm/tpm%u did not appear", d->tpm_num);
		return 0;
	}
	if (dev != d->dev)
		return ov_error_set(
		    err, 0, "/sys/class/tpm/tpm%u/dev is %u:%u but the vtpm proxy made %u:%u",
		    d->tpm_num, major(dev), minor(dev), major(d->dev), minor(d->dev));
	if (tpm2) {
		r = read_sysfs_dev(sysfd, "tpmrm", d->tpm_num, &dev, err);
		if (r < 0)
			return -1;
		if (r == 0) {
			snprintf(why, whysz, "/sys/class/tpmrm/tpmrm%u did not appear", d->tpm_num);
			return 0;
		}
		d->rmdev = dev;
	}
	snprintf(name, sizeof(name), "tpm%u", d->tpm_num);
	if (!node_is(devfd, name, d->dev)) {
		snprintf(why, whysz, "/dev/%s did not appear as the character device %u:%u", name,
			 major(d->dev), minor(d->dev));
		return 0;
	}
	if (tpm2) {
		snprintf(name, sizeof(name), "tpmrm%u", d->tpm_num);
		if (!node_is(devfd, name, d->rmdev)) {
			snprintf(why, whysz, "/dev/%s did not appear as the character device %u:%u",
				 name, major(d->rmdev), minor(d->rmdev));
			return 0;
		}
	}
	return 1;
}

/* A socket for the kernel's uevents, or -1 (not an error: we fall back). */
static int uevent_socket(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};
	int fd =
	    socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* inotify on devfd for new nodes, or -1. */
static int dev_watch(int devfd)
{
	char path[64];
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	if (fd < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", devfd);
	if (inotify_add_watch(fd, path, IN_CREATE | IN_ATTRIB | IN_MOVED_TO | IN_ONLYDIR) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void drain(int fd)
{
	char buf[8192];

	if (fd < 0)
		return;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		/* ENOBUFS on the netlink socket: events were lost; the
		 * re-check that follows covers them. */
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 && !(n < 0 && errno == ENOBUFS))
			return;
	}
}

int ov_vtpmx_wait_at(int sysfd, int devfd, struct ov_vtpmx_dev *d, bool tpm2, int pidfd,
		     int timeout_ms, ov_error *err)
{
	/* Subscribed before the first check: nothing that happens after the
	 * check goes unnoticed. */
	cleanup_close int nl = uevent_socket(), in = dev_watch(devfd);
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	char why[160] = "";

	if (nl < 0 && in < 0)
		ov_debug("no uevent socket and no inotify: polling for /dev/tpm%u", d->tpm_num);
	for (;;) {
		struct pollfd p[3] = {{.fd = nl, .events = POLLIN},
				      {.fd = in, .events = POLLIN},
				      {.fd = pidfd, .events = POLLIN}};
		int64_t left;
		int r, tick;

		r = chip_ready(sysfd, devfd, d, tpm2, why, sizeof(why), err);
		if (r < 0)
			return -1;
		if (r > 0)
			return 0;
		left = deadline - now_ms();
		if (left <= 0)
			return ov_error_set(err, ETIMEDOUT,
					    "waiting for the kernel to register vTPM tpm%u: %s",
					    d->tpm_num, why);
		tick = nl < 0 && in < 0 ? FALLBACK_MS : RECHECK_MS;
		if (left < tick)
			tick = (int)left;
		r = poll(p, 3, tick);
		if (r < 0 && errno != EINTR)
			return ov_error_set(err, errno, "waiting for /dev/tpm%u", d->tpm_num);
		if (r > 0 && (p[2].revents & POLLIN))
			return ov_error_set(
			    err, 0,
			    "swtpm exited before the kernel registered vTPM tpm%u (%s; "
			    "the kernel log may say why)",
			    d->tpm_num, why);
		drain(nl);
		drain(in);
	}
}

int ov_vtpmx_wait(struct ov_vtpmx_dev *d, bool tpm2, int pidfd, int timeout_ms, ov_error *err)
{
	cleanup_close int sysfd = open("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
	cleanup_close int devfd = open("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (sysfd < 0)
		return ov_error_set(err, errno, "opening /sys");
	if (devfd < 0)
		return ov_error_set(err, errno, "opening /dev");
	return ov_vtpmx_wait_at(sysfd, devfd, d, tpm2, pidfd, timeout_ms, err);
}
