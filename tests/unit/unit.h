/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal unit-test harness: CHECK records a failure and goes on; each
 * program ends with "N passed, N failed". */
#ifndef OCI_VTPM_UNIT_H
#define OCI_VTPM_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			unit_passed++;                                                             \
		} else {                                                                           \
			unit_failed++;                                                             \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
		}                                                                                  \
	} while (0)

/* The error message contains needle. */
#define CHECK_ERR(err, needle)                                                                     \
	do {                                                                                       \
		if (strstr((err)->msg, (needle))) {                                                \
			unit_passed++;                                                             \
		} else {                                                                           \
			unit_failed++;                                                             \
			fprintf(stderr, "%s:%d: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,  \
				(err)->msg, (needle));                                             \
		}                                                                                  \
	} while (0)

static inline int unit_done(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
