/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Preparing a container before its runtime creates it: the edit
 * oci-vtpm-runtime makes to a bundle's config.json, and podman's precreate
 * hook stage makes to the config on its stdin. A config.json that does not
 * ask for a vTPM is not touched at all; files are replaced atomically.
 *
 * oci-vtpm-runtime (an id): the vTPMs are started now (ov_vtpm_start,
 * held by the shim until it records the container), and the backend's
 * precreate op puts into config.json what the runtime needs to place them
 * itself: their character devices in linux.devices and
 * linux.resources.devices (device), a read-only bind mount of the slot's
 * socket directory (socket). No hook goes in; the annotation
 * io.oci-vtpm.provided-by=oci-vtpm-runtime tells a hook that runs all the
 * same to only record the container.
 *
 * podman's precreate stage (no id): our hooks go in (spec.h); where the
 * backend's additions do not name the slot (precreate_unnamed: the device
 * backend) the vTPMs are started now under a name of their own, and the
 * hook, at createRuntime, adopts them.
 */
#ifndef OCI_VTPM_PREPARE_H
#define OCI_VTPM_PREPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

struct ov_prepare {
	const struct ov_settings *s;
	const char *hook;   /* absolute path of oci-vtpm-hook */
	const char *config; /* settings file named in the hooks' env; NULL: none */
	const char *id;	    /* container id; NULL: podman's precreate stage */
	const char *bundle; /* absolute bundle directory; NULL with id NULL */
	pid_t holder;	    /* the process that creates the container */
};

struct ov_prepare_result {
	bool enabled; /* the config asks for a vTPM */
	/* vTPMs were started before the container: for id (ov_vtpm_stop()
	 * undoes them), or without one, under a name of their own that the
	 * edit puts in the annotation io.oci-vtpm.precreated. */
	bool precreated;
	char run_name[64]; /* with precreated and no id: the name they got */
};

/*
 * Edit config.json text. *out is the new text (malloc'd, caller frees), or
 * NULL when nothing changes (no vTPM asked for, or everything already
 * there). Bad io.oci-vtpm.* annotations are errors. On error nothing is
 * left running.
 */
int ov_prepare_text(const char *buf, size_t len, const struct ov_prepare *e, char **out,
		    size_t *out_len, struct ov_prepare_result *res, ov_error *err);

/*
 * Edit dirfd/name (a config.json) in place: read it (a regular file,
 * bounded), edit as above, and only when something changed replace it
 * atomically with the same mode and owner. A config.json that is a symlink
 * is read but never rewritten. On error nothing is left running.
 */
int ov_prepare_file(int dirfd, const char *name, const struct ov_prepare *e,
		    struct ov_prepare_result *res, ov_error *err);

#endif
