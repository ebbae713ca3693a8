/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cleanup attributes: every resource starts at NULL or -1 and is released
 * exactly once, when its variable leaves scope. Ownership is handed out
 * with take_fd() / take_ptr().
 */
#ifndef OCI_VTPM_CLEANUP_H
#define OCI_VTPM_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void ov_freep(void *p)
{
	free(*(void **)p);
}

static inline void ov_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void ov_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void ov_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define cleanup_free  __attribute__((cleanup(ov_freep)))
#define cleanup_close __attribute__((cleanup(ov_closep)))
#define cleanup_file  __attribute__((cleanup(ov_fclosep)))
#define cleanup_dir   __attribute__((cleanup(ov_closedirp)))

/* Hand an fd out of a cleanup_close variable. */
static inline int take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/* Hand a pointer out of a cleanup variable. */
#define take_ptr(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _t = (p);                                                            \
		(p) = NULL;                                                                        \
		_t;                                                                                \
	})

#endif
