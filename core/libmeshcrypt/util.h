/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by the engine's modules (never installed). */
#ifndef MC_UTIL_H
#define MC_UTIL_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define _cleanup_(f) __attribute__((cleanup(f)))

/* Defines `name##p(type *p)`, a cleanup function calling name(*p); name(NULL) is a no-op. */
#define MC_DEFINE_CLEANUP(type, name)                                                          \
	static inline void name##p(type *p)                                                    \
	{                                                                                      \
		name(*p);                                                                      \
	}

static inline void mc_freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(mc_freep)

static inline void mc_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(mc_fclosep)

static inline void mc_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_ _cleanup_(mc_closep)

/* Returns *pp and clears it, handing ownership out of a _cleanup_ variable. */
#define mc_steal_ptr(p)                                                                        \
	({                                                                                     \
		__typeof__(p) stolen_ = (p);                                                   \
		(p) = NULL;                                                                    \
		stolen_;                                                                       \
	})

/* A rwlock that lets a waiting writer in before new readers: glibc's default prefers readers, so
 * workers that keep reading could hold off a writer for as long as they are busy. Readers must
 * not take it twice (NONRECURSIVE: a waiting writer would deadlock them). */
static inline void mc_rwlock_init_writer_first(pthread_rwlock_t *lock)
{
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

#define mc_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
