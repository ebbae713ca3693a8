/* SPDX-License-Identifier: Apache-2.0 */
/* meta.json: one vTPM's salt, wrapped data key and newest generation,
 * authenticated (see meta.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/cleanup.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/json.h"
#include "oci-vtpm/meta.h"
#include "oci-vtpm/util.h"

#define META	 "meta.json"
#define META_MAX (64u << 10)

static int wrap_aad(const struct ov_meta *m, char *buf, size_t size)
{
	char salt[2 * OV_SALT_LEN + 1];

	ov_hex(m->salt, sizeof(m->salt), salt);
	return snprintf(buf, size, "oci-vtpm/v1/data-key/%s/%s", m->name, salt);
}

/*
 * The state key is not bound to the name: the data key is random per vTPM
 * already, and a state made ahead of time (the provisioning pool) must stay
 * readable when it is claimed under a name. The name is bound where it
 * matters: in the key-encryption key, the wrapped key's AAD, and every MAC.
 */
static int derive(const struct ov_meta *m, const struct ov_key *dek, struct ov_vtpm_keys *k,
		  ov_error *err)
{
	if (ov_hkdf(dek, m->salt, sizeof(m->salt), "state", NULL, &k->state, err) < 0 ||
	    ov_hkdf(dek, m->salt, sizeof(m->salt), "mac", m->name, &k->mac, err) < 0)
		return -1;
	return 0;
}

static int kek_for(const struct ov_meta *m, const struct ov_key *master, struct ov_key *kek,
		   ov_error *err)
{
	return ov_hkdf(master, m->salt, sizeof(m->salt), "kek", m->name, kek, err);
}

int ov_meta_new(const char *name, const struct ov_key *master, struct ov_meta *m,
		struct ov_vtpm_keys *k, ov_error *err)
{
	cleanup_key struct ov_key dek = {0}, kek = {0};
	char aad[256];

	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	if (ov_random(m->salt, sizeof(m->salt), err) < 0 ||
	    ov_random(dek.b, sizeof(dek.b), err) < 0)
		return -1;
	ov_key_id(master, m->key_id);
	wrap_aad(m, aad, sizeof(aad));
	if (kek_for(m, master, &kek, err) < 0 ||
	    ov_key_wrap(&kek, aad, strlen(aad), &dek, m->wrapped, err) < 0)
		return -1;
	return derive(m, &dek, k, err);
}

static int meta_mac(const struct ov_meta *m, const struct ov_vtpm_keys *k, uint8_t out[OV_MAC_LEN],
		    ov_error *err)
{
	char salt[2 * OV_SALT_LEN + 1], wrapped[2 * OV_WRAPPED_LEN + 1], text[1024];
	struct ov_mac *mac;
	int n, ret;

	ov_hex(m->salt, sizeof(m->salt), salt);
	ov_hex(m->wrapped, sizeof(m->wrapped), wrapped);
	n = snprintf(text, sizeof(text), "oci-vtpm/v1/meta|%s|%s|%s|%s|%llu|%s|%u", m->name, salt,
		     m->key_id, wrapped, m->newest, ov_util_tpm_version(m->version), m->count);
	if (n < 0 || (size_t)n >= sizeof(text))
		return ov_error_set(err, ENAMETOOLONG, "meta");
	mac = ov_mac_new(&k->mac, err);
	if (!mac)
		return -1;
	ov_mac_update(mac, text, (size_t)n);
	ret = ov_mac_final(mac, out, err);
	ov_mac_free(mac);
	return ret;
}

int ov_meta_load_keys(const struct ov_settings *s, int vdir, const char *name, struct ov_meta *m,
		      struct ov_vtpm_keys *k, ov_error *err)
{
	cleanup_key struct ov_key master = {0};

	if (ov_meta_load(vdir, name, NULL, m, NULL, err) < 0 ||
	    ov_master_key_for(s, m->key_id, &master, err) < 0 ||
	    ov_meta_load(vdir, name, &master, m, k, err) < 0)
		return -1;
	return 0;
}

int ov_meta_write(int vdir, const struct ov_meta *m, const struct ov_vtpm_keys *k, ov_error *err)
{
	char salt[2 * OV_SALT_LEN + 1], wrapped[2 * OV_WRAPPED_LEN + 1],
	    mac_hex[2 * OV_MAC_LEN + 1];
	uint8_t mac[OV_MAC_LEN];
	char text[2048];
	int n;

	if (meta_mac(m, k, mac, err) < 0)
		return -1;
	ov_hex(m->salt, sizeof(m->salt), salt);
	ov_hex(m->wrapped, sizeof(m->wrapped), wrapped);
	ov_hex(mac, sizeof(mac), mac_hex);
	n = snprintf(text, sizeof(text),
		     "{\"format\":1,\"name\":\"%s\",\"salt\":\"%s\",\"key_id\":\"%s\","
		     "\"wrapped_key\":\"%s\",\"newest\":%llu,\"version\":\"%s\",\"count\":%u,"
		     "\"mac\":\"%s\"}\n",
		     m->name, salt, m->key_id, wrapped, m->newest, ov_util_tpm_version(m->version),
		     m->count, mac_hex);
	if (n < 0 || (size_t)n >= sizeof(text))
		return ov_error_set(err, ENAMETOOLONG, "meta");
	if (ov_write_file_atomic(vdir, META, text, (size_t)n, 0600, err) < 0)
		return ov_error_wrap(err, "vTPM %s", m->name);
	return 0;
}

static int parse_meta(json_object *root, struct ov_meta *m, uint8_t mac[OV_MAC_LEN])
{
	const char *name = ov_json_str(root, "name"), *salt = ov_json_str(root, "salt"),
		   *key_id = ov_json_str(root, "key_id"),
		   *wrapped = ov_json_str(root, "wrapped_key"),
		   *version = ov_json_str(root, "version"), *mac_hex = ov_json_str(root, "mac");
	unsigned long long count;

	if (!name || !salt || !key_id || !wrapped || !version || !mac_hex ||
	    strlen(name) >= sizeof(m->name) || strlen(key_id) != OV_KEY_ID_LEN ||
	    ov_json_u64(root, "newest", &m->newest) < 0 || ov_json_u64(root, "count", &count) < 0 ||
	    count > OV_MAX_TPMS || ov_unhex(salt, m->salt, sizeof(m->salt)) < 0 ||
	    ov_unhex(wrapped, m->wrapped, sizeof(m->wrapped)) < 0 ||
	    ov_unhex(mac_hex, mac, OV_MAC_LEN) < 0)
		return -1;
	strcpy(m->name, name);
	strcpy(m->key_id, key_id);
	m->version = strcmp(version, "1.2") == 0 ? OV_TPM_1_2 : OV_TPM_2_0;
	m->count = (unsigned)count;
	return 0;
}

static int unwrap(const struct ov_meta *m, const struct ov_key *master, struct ov_key *dek,
		  ov_error *err)
{
	cleanup_key struct ov_key kek = {0};
	char aad[256], id[OV_KEY_ID_LEN + 1];

	wrap_aad(m, aad, sizeof(aad));
	if (kek_for(m, master, &kek, err) < 0)
		return -1;
	if (ov_key_unwrap(&kek, aad, strlen(aad), m->wrapped, dek, err) < 0) {
		ov_key_id(master, id); /* for the message only: an HKDF */
		if (strcmp(id, m->key_id) != 0)
			return ov_error_set(err, 0,
					    "vTPM %s is protected by master key %s, not by this "
					    "host's master key %s",
					    m->name, m->key_id, id);
		return ov_error_set(err, 0,
				    "vTPM %s: its wrapped key does not verify (meta.json edited?)",
				    m->name);
	}
	return 0;
}

int ov_meta_load(int vdir, const char *name, const struct ov_key *master, struct ov_meta *m,
		 struct ov_vtpm_keys *k, ov_error *err)
{
	cleanup_free char *buf = NULL;
	cleanup_json json_object *root = NULL;
	cleanup_key struct ov_key dek = {0};
	uint8_t mac[OV_MAC_LEN], want[OV_MAC_LEN];
	size_t len;

	memset(m, 0, sizeof(*m));
	if (ov_read_file_at(vdir, META, META_MAX, &buf, &len, err) < 0) {
		if (err->code == ENOENT)
			return -1;
		return ov_error_wrap(err, "vTPM %s", name);
	}
	if (ov_json_parse(buf, len, META, &root, err) < 0 || parse_meta(root, m, mac) < 0)
		return ov_error_set(err, 0, "vTPM %s: %s is malformed", name, META);
	if (strcmp(m->name, name) != 0)
		return ov_error_set(err, 0, "vTPM %s: %s belongs to vTPM %s", name, META, m->name);
	if (!master)
		return 0;
	if (unwrap(m, master, &dek, err) < 0 || derive(m, &dek, k, err) < 0)
		return -1;
	if (meta_mac(m, k, want, err) < 0)
		return -1;
	if (!ov_mac_equal(mac, want)) {
		ov_vtpm_keys_wipe(k);
		return ov_error_set(err, 0, "vTPM %s: %s does not verify (edited?)", name, META);
	}
	return 0;
}

int ov_meta_rewrap(int vdir, struct ov_meta *m, const struct ov_key *old_master,
		   const struct ov_key *new_master, ov_error *err)
{
	cleanup_key struct ov_key dek = {0}, kek = {0};
	struct ov_vtpm_keys k;
	char aad[256];
	int ret;

	if (unwrap(m, old_master, &dek, err) < 0 || derive(m, &dek, &k, err) < 0)
		return -1;
	wrap_aad(m, aad, sizeof(aad));
	ov_key_id(new_master, m->key_id);
	ret = kek_for(m, new_master, &kek, err);
	if (ret == 0)
		ret = ov_key_wrap(&kek, aad, strlen(aad), &dek, m->wrapped, err);
	if (ret == 0)
		ret = ov_meta_write(vdir, m, &k, err);
	ov_vtpm_keys_wipe(&k);
	return ret;
}

int ov_meta_rename(const struct ov_meta *from, const struct ov_key *from_master, const char *name,
		   const struct ov_key *master, struct ov_meta *to, struct ov_vtpm_keys *k,
		   ov_error *err)
{
	cleanup_key struct ov_key dek = {0}, kek = {0};
	char aad[256];

	if (!ov_name_valid(name))
		return ov_error_set(err, EINVAL, "invalid vTPM name \"%.64s\"", name);
	if (unwrap(from, from_master, &dek, err) < 0)
		return -1;
	*to = *from;
	snprintf(to->name, sizeof(to->name), "%s", name);
	to->newest = 0;
	ov_key_id(master, to->key_id);
	wrap_aad(to, aad, sizeof(aad));
	if (kek_for(to, master, &kek, err) < 0 ||
	    ov_key_wrap(&kek, aad, strlen(aad), &dek, to->wrapped, err) < 0)
		return -1;
	return derive(to, &dek, k, err);
}
