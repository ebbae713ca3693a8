/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include "oci-vtpm/sandbox.h"
#include "sandbox_bpf.h" /* generated: $(BUILD)/gen */

/* The filter is libseccomp's, made at build time from the list in
 * relay/gen-bpf.c ("sandbox"): a start compiles nothing in the child
 * (about 0.2 ms a cold start, docs/performance.md). */
int ov_sandbox_apply(ov_error *err)
{
	struct sock_fprog prog = {
	    .len = (unsigned short)(sizeof(ov_sandbox_bpf) / sizeof(ov_sandbox_bpf[0])),
	    .filter = (struct sock_filter *)ov_sandbox_bpf,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return ov_error_set(err, errno, "no_new_privs");
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return ov_error_set(err, errno, "loading the seccomp filter");
	return 0;
}
