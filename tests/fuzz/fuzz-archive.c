/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer: records and archives read back from disk. The input is split
 * at the first NUL: the part before is written as record.json and as
 * meta.json, the part after as a generation file; each is then read.
 * Generations are authenticated before they are parsed, so the fuzzer sees
 * the MAC check and the framing, which is what an attacker reaches.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci-vtpm/archive.h"
#include "oci-vtpm/fsutil.h"
#include "oci-vtpm/store.h"

static int dfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t first = nul ? (size_t)(nul - data) : size;
	struct ov_record rec;
	struct ov_meta m;
	struct ov_vtpm_keys k;
	struct ov_key master;
	ov_error err;
	char gen[64];

	if (dfd < 0) {
		char dir[] = "/tmp/ov-fuzz-archive.XXXXXX";

		if (!mkdtemp(dir))
			abort();
		dfd = open(dir, O_RDONLY | O_DIRECTORY);
	}
	ov_write_file_atomic(dfd, "record.json", data, first, 0600, &err);
	if (ov_record_read(dfd, &rec, &err) == 0)
		ov_record_free(&rec);

	memset(master.b, 1, sizeof(master.b));
	ov_write_file_atomic(dfd, "meta.json", data, first, 0600, &err);
	ov_meta_load(dfd, "X", &master, &m, &k, &err);

	/* A valid meta, then the rest of the input as generation 1. */
	if (ov_meta_new("X", &master, &m, &k, &err) == 0 && ov_meta_write(dfd, &m, &k, &err) == 0) {
		m.newest = 1;
		m.count = 1;
		ov_archive_gen_name(1, gen, sizeof(gen));
		ov_write_file_atomic(dfd, gen, nul ? nul + 1 : data, nul ? size - first - 1 : 0,
				     0600, &err);
		ov_archive_verify(dfd, &m, &k, 1, &err);
	}
	return 0;
}
