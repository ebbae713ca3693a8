/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host settings (/etc/oci-vtpm/config.json, every key optional) and the
 * request a container makes through io.oci-vtpm.* annotations.
 */
#ifndef OCI_VTPM_CONFIG_H
#define OCI_VTPM_CONFIG_H

#include <json-c/json.h>
#include <stdbool.h>

#include "oci-vtpm/error.h"
#include "oci-vtpm/log.h"

#define OV_CONFIG_PATH_DEFAULT "/etc/oci-vtpm/config.json"
/* Rootless: the settings file in the user's config dir (lib/rootless.h). */
#define OV_USER_CONFIG_NAME  "oci-vtpm.json"
#define OV_CONFIG_ENV	     "OCI_VTPM_CONFIG"
#define OV_MAX_TPMS	     8
#define OV_ANNOTATION_PREFIX "io.oci-vtpm."
#define OV_ENV_PREFIX	     "OCI_VTPM_"

/* The keys of a request, as bits (settings "env_request",
 * "annotation_request"). */
enum {
	OV_REQ_ENABLE = 1u << 0,
	OV_REQ_NAME = 1u << 1,
	OV_REQ_VERSION = 1u << 2,
	OV_REQ_COUNT = 1u << 3,
	OV_REQ_EK_CERT = 1u << 4,
	OV_REQ_BACKEND = 1u << 5,
	OV_REQ_MEASURE = 1u << 6,
};
#define OV_REQ_ALL                                                                                 \
	(OV_REQ_ENABLE | OV_REQ_NAME | OV_REQ_VERSION | OV_REQ_COUNT | OV_REQ_EK_CERT |            \
	 OV_REQ_BACKEND | OV_REQ_MEASURE)
/* settings "name_scope": the default, scope by the namespace Kubernetes'
 * CRI (containerd, then CRI-O) writes when there is one. */
#define OV_NAME_SCOPE_AUTO "auto"

/* An image's ENV reaches process.env as much as `docker run -e` does: by
 * default the environment may ask for a vTPM and its shape, not for a
 * named identity (which would let any image claim any name's TPM). */
#define OV_ENV_KEYS_DEFAULT                                                                        \
	(OV_REQ_ENABLE | OV_REQ_VERSION | OV_REQ_COUNT | OV_REQ_EK_CERT | OV_REQ_BACKEND |         \
	 OV_REQ_MEASURE)

enum ov_backend {
	OV_BACKEND_AUTO,
	OV_BACKEND_DEVICE,
	OV_BACKEND_SOCKET,
};

enum ov_tpm_version {
	OV_TPM_2_0,
	OV_TPM_1_2,
};

struct ov_settings {
	char *path;	  /* the file ov_settings_load read; NULL: none (defaults) */
	char *run_dir;	  /* live state, records: /run/oci-vtpm */
	char *state_dir;  /* archives: /var/lib/oci-vtpm */
	char *swtpm;	  /* swtpm binary */
	char *swtpm_user; /* user swtpm runs as; "" or "root" to stay root */
	/* swtpm_uid_range: each slot's swtpm runs as a uid (and gid) of its
	 * own from first .. first+count-1; count 0: swtpm_user for all. */
	unsigned swtpm_uid_first, swtpm_uid_count;
	char *log_file;	  /* NULL: syslog */
	char *socket_dir; /* socket backend: directory inside the container */
	char *runtime;	  /* oci-vtpm-runtime: the real OCI runtime; NULL: search */
	char *hook;	  /* oci-vtpm-runtime: the hook it adds; NULL: next to itself */
	char *master_key; /* /etc/oci-vtpm/master.key */
	char *ca_key;	  /* host CA's private key (PEM, 0600 root): /etc/oci-vtpm/ca/ca.key */
	char *ca_cert;	  /* host CA's certificate (PEM): /etc/oci-vtpm/ca/ca.pem */
	/* Each slot's swtpms run in <swtpm_cgroup>/<slot> under every cgroup
	 * hierarchy with memory, pids or cpu ("" none), limited per TPM. */
	char *swtpm_cgroup;
	unsigned swtpm_memory_max; /* bytes; 0 no limit */
	unsigned swtpm_pids_max;   /* 0 no limit */
	unsigned swtpm_cpu_max;	   /* percent of one CPU; 0 no limit */
	/* The settings file names a limit (swtpm_*_max): a cgroup that cannot
	 * be made fails the start (else a warning, and no limits). */
	bool swtpm_limits_required;
	enum ov_log_level log_level;
	enum ov_backend backend;
	bool ek_cert;
	bool measure; /* measured launch by default (true) */
	/* Every container whose request is read (the shim's, the precreate
	 * stage's) gets a vTPM unless it opts out (enable=false). */
	bool default_enable;
	/* A named vTPM's stop at poststop (the shim: after the runtime's
	 * delete) returns once the slot is marked stopping; a detached worker
	 * stops swtpm and archives (true). false: all of it before returning. */
	bool stop_async;
	unsigned env_keys; /* OV_REQ_* the environment may set; 0: env ignored */
	/* Who may ask for what (docs/engines/requests.md, "Who may ask for what"). */
	unsigned annotation_keys; /* OV_REQ_* annotations may set */
	/* "": names as asked (single tenant); "auto" (OV_NAME_SCOPE_AUTO);
	 * else an annotation key whose value prefixes every name. */
	char *name_scope;
	unsigned max_vtpms; /* vTPMs (swtpm processes) alive per host; 0: no limit */
	unsigned max_names; /* archived named vTPMs per host; 0: no limit */
	unsigned keep_generations;
	unsigned pool_size;	  /* `oci-vtpm pool fill` without a count */
	unsigned warm_size;	  /* idle TPM 2.0 vTPMs `oci-vtpm pool fill` keeps running */
	unsigned warm_size_tpm12; /* idle TPM 1.2 vTPMs, the same */
	unsigned start_timeout_ms;
	unsigned stop_timeout_ms;
};

struct ov_request {
	bool enable;
	char *name; /* NULL: ephemeral */
	enum ov_tpm_version version;
	unsigned count;
	bool ek_cert;
	bool measure;		 /* the measured launch (lib/measure.c) */
	enum ov_backend backend; /* AUTO resolved later */
	/* io.oci-vtpm.precreated: the run-directory name under which podman's
	 * precreate stage started the vTPMs before the container had an id
	 * (OV_PRECREATED_PREFIX and 32 hex digits, instance.h); the hook adopts them. */
	char *precreated;
	/* io.oci-vtpm.provided-by=oci-vtpm-runtime: the shim started the
	 * vTPMs under the container's id and placed them through config.json
	 * (it stops them after the runtime's delete): a hook that runs all the
	 * same only records the container (createRuntime) or does nothing
	 * (poststop). */
	bool provided;
};
#define OV_PROVIDER_RUNTIME "oci-vtpm-runtime"

/* The path of the settings file: $OCI_VTPM_CONFIG, else the default (rootless:
 * the user's, lib/rootless.h; valid until the next call). */
const char *ov_settings_path(void);
/* Load settings from path (NULL: ov_settings_path()). A missing file at the
 * default path gives the defaults; a file named explicitly must exist. */
int ov_settings_load(const char *path, struct ov_settings *s, ov_error *err);
int ov_settings_parse(const char *buf, size_t len, struct ov_settings *s, ov_error *err);
void ov_settings_defaults(struct ov_settings *s);
void ov_settings_free(struct ov_settings *s);

/* ---------------------------------------------- requests (lib/request.c) */

/* Build the request from annotations and process.env (both may be NULL):
 * io.oci-vtpm.<key> and OCI_VTPM_<KEY> (enable, name, version, count,
 * ek-cert as EK_CERT, backend); an annotation wins over the environment.
 * Defaults: the settings' default_enable, ek_cert and backend. Unknown
 * io.oci-vtpm.* keys, bad values, a key set twice in the environment and
 * one the settings' env_request or annotation_request leaves out are
 * errors naming the key; a name is scoped as the settings' name_scope says
 * (r->name is then "<scope>.<name>");
 * other OCI_VTPM_* variables are not ours. A Kubernetes pod sandbox
 * (io.kubernetes.cri.container-type or io.kubernetes.cri-o.ContainerType
 * "sandbox") is validated the same but never enabled. */
int ov_request_parse(const struct ov_settings *s, json_object *annotations, json_object *env,
		     struct ov_request *r, ov_error *err);
/* The request in the hook's own environment (envp, NULL-terminated): the
 * env of its hooks[] entry, written by whoever wrote config.json or by a
 * CDI spec's device, never by the image, so as trusted as an annotation.
 * Its OCI_VTPM_<KEY> entries become io.oci-vtpm.<key> in *out, a new
 * object holding annotations' entries too (which win); *out is NULL when
 * envp holds no request. */
int ov_request_hook_env(json_object *annotations, char *const *envp, json_object **out,
			ov_error *err);
/* Does process.env (may be NULL) hold any OCI_VTPM_<KEY> of a request? */
bool ov_request_in_env(json_object *env);
void ov_request_free(struct ov_request *r);
/* The settings' list of request keys v ("enable", "name", ...: settings
 * key name) as OV_REQ_* bits. */
int ov_request_keys_parse(const char *name, json_object *v, unsigned *out, ov_error *err);

/* vTPM names: [A-Za-z0-9][A-Za-z0-9_.-]{0,127} */
bool ov_name_valid(const char *name);

const char *ov_backend_name(enum ov_backend b);
int ov_backend_parse(const char *s, bool allow_auto, enum ov_backend *out);

#endif
