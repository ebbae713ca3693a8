/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Letting a container use its TPM character devices through its device
 * cgroup.
 *
 * cgroup v1: the container's devices cgroup (from /proc/<pid>/cgroup, under
 * the devices hierarchy's mount found in /proc/self/mountinfo) gets
 * "c MAJ:MIN rw" in devices.allow, and the write is checked in devices.list.
 *
 * cgroup v2: device access is an eBPF program the runtime attached; a hook
 * cannot widen it. The device must already be allowed by config.json's
 * linux.resources.devices (oci-vtpm-runtime puts it there), else this fails
 * with an error that says so.
 *
 * Nothing is done when the device is already allowed (e.g. a devices cgroup
 * that allows everything, as with crun --cgroup-manager=disabled).
 */
#ifndef OCI_VTPM_CGROUP_H
#define OCI_VTPM_CGROUP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oci-vtpm/error.h"

#define OV_DEV_READ  1u
#define OV_DEV_WRITE 2u
#define OV_DEV_MKNOD 4u

/* One device cgroup rule: "c 10:224 rw", "a *:* rwm". */
struct ov_devrule {
	char type;	 /* 'a', 'b' or 'c' */
	long major;	 /* -1: any */
	long minor;	 /* -1: any */
	unsigned access; /* OV_DEV_* bits */
};

/* Parse one rule (devices.list syntax). */
int ov_devrule_parse(const char *s, struct ov_devrule *out);
/* Does rule r cover a character device maj:min with all of access? */
bool ov_devrule_covers(const struct ov_devrule *r, unsigned maj, unsigned min, unsigned access);
/* Does devices.list text allow char device maj:min with all of access? The
 * kernel checks each rule alone, so one rule must cover all of access. */
bool ov_devices_list_allows(const char *list, unsigned maj, unsigned min, unsigned access);

/*
 * From /proc/<pid>/cgroup text: with controller (v1), the path of the
 * hierarchy that has it ("devices"); with NULL, the path of the v2 line
 * ("0::/path"). *out is malloc'd. Returns 1 found, 0 not there, -1 error
 * (malformed text).
 */
int ov_proc_cgroup_path(const char *text, const char *controller, char **out, ov_error *err);

/*
 * From /proc/self/mountinfo text: the mount of the v1 hierarchy with
 * controller (fstype "cgroup"), or of cgroup2 (controller NULL) whose root
 * is a prefix of cgpath, preferring the longest root. *mnt is the mount
 * point, *sub the rest of cgpath below that mount's root ("" or "a/b");
 * both malloc'd, octal escapes decoded. Returns 1 found, 0 none, -1 error.
 */
int ov_mountinfo_find_cgroup(const char *text, const char *controller, const char *cgpath,
			     char **mnt, char **sub, ov_error *err);

/*
 * Does config.json (the spec's root object) allow char device maj:min with
 * all of access through linux.resources.devices? Rules apply in order, a
 * later one overriding an earlier one, starting from deny-all.
 */
bool ov_spec_devices_allow(json_object *spec, unsigned maj, unsigned min, unsigned access);

/* Open (O_RDONLY|O_DIRECTORY) the cgroup directory cgpath of the v1
 * hierarchy with controller (NULL: cgroup2) through the mount that holds
 * it; never follows a symlink, checks the file system's type. */
int ov_cgroup_open_dir(const char *controller, const char *cgpath, ov_error *err);
/* The same with /proc/self/mountinfo's text mi, read once by
 * ov_cgroup_mountinfo for several calls. */
int ov_cgroup_open_dir_mi(const char *mi, const char *controller, const char *cgpath,
			  ov_error *err);
int ov_cgroup_mountinfo(char **out, ov_error *err);

/*
 * Let the container whose init is pid read and write the character devices
 * devs[0..n) (names[i] is what the container sees, for messages), as above.
 */
int ov_cgroup_allow_devices(pid_t pid, json_object *spec, const dev_t *devs,
			    const char *const *names, size_t n, ov_error *err);

#endif
