/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <seccomp.h>
#include <stddef.h>

#include "oci-vtpm/sandbox.h"

static const char *const denied[] = {
    /* mounts and the filesystem tree */
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "swapon",
    "swapoff",
    /* namespaces */
    "unshare",
    "setns",
    /* other processes */
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    /* the kernel itself */
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "perf_event_open",
    "iopl",
    "ioperm",
    "reboot",
    "acct",
    "quotactl",
    "lookup_dcookie",
    "syslog",
    "userfaultfd",
    /* keyrings */
    "keyctl",
    "add_key",
    "request_key",
    /* handles past permission checks */
    "open_by_handle_at",
    "name_to_handle_at",
    /* time */
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
};

int ov_sandbox_apply(ov_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int ret = -1, rc;

	if (!ctx)
		return ov_error_set(err, ENOMEM, "seccomp");
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture or libseccomp */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc < 0) {
			ov_error_set(err, -rc, "seccomp rule for %s", denied[i]);
			goto out;
		}
	}
	rc = seccomp_load(ctx);
	if (rc < 0) {
		ov_error_set(err, -rc, "loading the seccomp filter");
		goto out;
	}
	ret = 0;
out:
	seccomp_release(ctx);
	return ret;
}
