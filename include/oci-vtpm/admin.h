/* SPDX-License-Identifier: Apache-2.0 */
/* What the oci-vtpm admin tool does; its main only parses arguments. */
#ifndef OCI_VTPM_ADMIN_H
#define OCI_VTPM_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

int ov_admin_init(const struct ov_settings *s, FILE *out, ov_error *err);
int ov_admin_list(const struct ov_settings *s, bool json, FILE *out, ov_error *err);
int ov_admin_inspect(const struct ov_settings *s, const char *name, FILE *out, ov_error *err);
int ov_admin_export(const struct ov_settings *s, const char *name, const char *path, ov_error *err);
int ov_admin_import(const struct ov_settings *s, const char *path, FILE *out, ov_error *err);
int ov_admin_rm(const struct ov_settings *s, const char *name, ov_error *err);
int ov_admin_restore(const struct ov_settings *s, const char *name, unsigned long long gen,
		     FILE *out, ov_error *err);
int ov_admin_rotate_key(const struct ov_settings *s, FILE *out, ov_error *err);
int ov_admin_gc(const struct ov_settings *s, FILE *out, ov_error *err);

/* The provisioning pool (pool.h): cmd is "fill" (up to count entries;
 * count < 0: the settings' pool_size), "status" (json: one JSON object) or
 * "drain". */
int ov_admin_pool(const struct ov_settings *s, const char *cmd, long count, bool json, FILE *out,
		  ov_error *err);

#endif
