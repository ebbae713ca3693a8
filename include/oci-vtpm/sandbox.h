/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Our own seccomp filter for swtpm (made by libseccomp at build time:
 * relay/gen-bpf.c sandbox), installed in the child just before exec,
 * under swtpm's own profile. swtpm runs next to
 * containers as root until it drops to its user; what it never needs to do
 * (mount, enter or make namespaces, trace, load modules or BPF, touch the
 * kernel keyring, set the clock, reboot) fails with EPERM.
 */
#ifndef OCI_VTPM_SANDBOX_H
#define OCI_VTPM_SANDBOX_H

#include "oci-vtpm/error.h"

/* Install the filter on the calling thread (and what it execs). */
int ov_sandbox_apply(ov_error *err);

#endif
