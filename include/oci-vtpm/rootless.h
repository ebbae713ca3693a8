/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rootless: running as a user other than root of the initial user
 * namespace. That is a plain user, or root of a user namespace mapped to
 * one: rootless podman runs its hooks as uid 0 of its own namespace, with
 * no environment but the hook entry's (no HOME, no XDG_*).
 *
 * Then every default is the user's own (docs/engines/podman.md, "Rootless
 * podman"): settings in $XDG_CONFIG_HOME/oci-vtpm/oci-vtpm.json, live
 * state in $XDG_RUNTIME_DIR/oci-vtpm (else /run/user/UID/oci-vtpm),
 * archives and keys in $XDG_DATA_HOME/oci-vtpm, swtpm as the user itself.
 * UID is the user outside the namespace (/proc/self/uid_map); an unset or
 * relative XDG variable falls back to the user's home in the passwd file.
 */
#ifndef OCI_VTPM_ROOTLESS_H
#define OCI_VTPM_ROOTLESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

/* Not root of the initial user namespace: a user, or uid 0 of a user
 * namespace whose uid 0 is a user of the passwd file (rootless podman);
 * not root of a system container whose root is an unnamed subordinate id. */
bool ov_rootless(void);

/* Our effective uid as the parent user namespace sees it. */
uid_t ov_outside_uid(void);

/* The user's directories, each with "/oci-vtpm" appended: which is
 * OV_DIR_CONFIG, OV_DIR_DATA or OV_DIR_RUNTIME. Returns a new string. */
enum ov_user_dir { OV_DIR_CONFIG, OV_DIR_DATA, OV_DIR_RUNTIME };
int ov_user_dir(enum ov_user_dir which, char **out, ov_error *err);

#endif
