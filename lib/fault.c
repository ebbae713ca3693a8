/* SPDX-License-Identifier: Apache-2.0 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "oci-vtpm/fault.h"

void ov_fault(const char *step)
{
#ifdef OV_FAULTS
	const char *f = getenv(OV_FAULT_ENV);

	if (f && strcmp(f, step) == 0)
		raise(SIGKILL);
	else if (f && strncmp(f, "stop:", 5) == 0 && strcmp(f + 5, step) == 0)
		raise(SIGSTOP); /* held there until SIGCONT: a slow start */
#else
	(void)step;
#endif
}

bool ov_fault_on(const char *what)
{
#ifdef OV_FAULTS
	const char *f = getenv(OV_FAULT_ENV);

	return f && strcmp(f, what) == 0;
#else
	(void)what;
	return false;
#endif
}
