/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel's vTPM proxy (tpm_vtpm_proxy): VTPM_PROXY_IOC_NEW_DEV on
 * /dev/vtpmx gives a proxy fd (swtpm serves TPM commands on it) and makes a
 * TPM chip /dev/tpmN (and /dev/tpmrmN for TPM 2.0).
 *
 * The chip registers asynchronously: the ioctl returns at once, and the
 * kernel sends TPM commands on the proxy fd while it registers the chip, so
 * /dev/tpmN and /dev/tpmrmN only appear once swtpm answers. ov_vtpmx_wait()
 * is called after swtpm is ready. Device numbers come from the ioctl
 * (/dev/tpmN) and from sysfs (/dev/tpmrmN), never from guesses.
 */
#ifndef OCI_VTPM_VTPMX_H
#define OCI_VTPM_VTPMX_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

#define OV_VTPMX_PATH	 "/dev/vtpmx"
#define OV_VTPMX_MODULE	 "tpm_vtpm_proxy"
#define OV_MODPROBE_PATH "/sbin/modprobe"

struct ov_vtpmx_dev {
	unsigned tpm_num; /* N of /dev/tpmN and /dev/tpmrmN */
	dev_t dev;	  /* /dev/tpmN, from the ioctl */
	dev_t rmdev;	  /* /dev/tpmrmN, from sysfs once registered (TPM 2.0); else 0 */
};

/* Is OV_VTPMX_PATH there? When it is missing, run `modprobe tpm_vtpm_proxy`
 * (once per process, clean environment, no shell) and look again. The error
 * says what modprobe said. */
int ov_vtpmx_available(ov_error *err);

/* Create a proxied TPM chip (TPM 2.0 with tpm2, else TPM 1.2). Returns the
 * proxy fd, FD_CLOEXEC, and fills out (rmdev stays 0). Needs root. */
int ov_vtpmx_new(bool tpm2, struct ov_vtpmx_dev *out, ov_error *err);
/* The same on a given vtpmx path; modprobe only when asked (the tests). */
int ov_vtpmx_new_at(const char *path, bool modprobe, bool tpm2, struct ov_vtpmx_dev *out,
		    ov_error *err);

/*
 * Wait, up to timeout_ms, until the kernel has registered chip d->tpm_num:
 * /sys/class/tpm/tpmN/dev says d->dev, /sys/class/tpmrm/tpmrmN/dev (TPM 2.0)
 * gives d->rmdev, and /dev/tpmN (and /dev/tpmrmN) are those character
 * devices. Woken by uevents (NETLINK_KOBJECT_UEVENT) and inotify on /dev;
 * a bounded poll only when neither can be had. Call it after swtpm answers
 * on the proxy fd. pidfd (may be -1) is swtpm's: if it exits first (the
 * kernel hangs up the proxy fd when the chip fails to register), fail at once.
 */
int ov_vtpmx_wait(struct ov_vtpmx_dev *d, bool tpm2, int pidfd, int timeout_ms, ov_error *err);
/* The same with sysfs and /dev given as directory fds (the tests). */
int ov_vtpmx_wait_at(int sysfd, int devfd, struct ov_vtpmx_dev *d, bool tpm2, int pidfd,
		     int timeout_ms, ov_error *err);

/* O_PATH fd of devfd/name, which must be the character device rdev; the
 * last component is never followed. */
int ov_vtpmx_open_node(int devfd, const char *name, dev_t rdev, ov_error *err);

/* Parse a sysfs "dev" attribute ("MAJ:MIN", one trailing newline allowed). */
int ov_parse_devnum(const char *s, dev_t *out);

#endif
