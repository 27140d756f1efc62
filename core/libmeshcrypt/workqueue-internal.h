/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private to the work queue module (workqueue.c, rate-limiter.c, hashmap.c) and its tests.
 * Symbols here are hidden: libmeshcrypt exports only the public mc_* API.
 */
#ifndef MC_WORKQUEUE_INTERNAL_H
#define MC_WORKQUEUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <meshcrypt/workqueue.h>

#include "hashmap.h"

/* ---- time ---- */

static inline uint64_t mci_monotonic_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A clock whose now_ns is NULL is CLOCK_MONOTONIC, read without an indirect call. */
static inline uint64_t mci_clock_now(const struct mc_clock *c)
{
	return c->now_ns ? c->now_ns(c->userdata) : mci_monotonic_ns();
}

static inline uint64_t mci_add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Short critical sections: spinning briefly before sleeping avoids most futex sleeps on the
 * lock (BENCHMARKS.md: the largest single gain for the queue). */
static inline void mci_mutex_init_adaptive(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

/* ---- rate limiters as seen by the queue ---- */

struct mci_rate_limiter_ops {
	uint64_t (*when)(struct mc_rate_limiter *rl, const struct mci_key *k);
	void (*forget)(struct mc_rate_limiter *rl, const struct mci_key *k);
	unsigned (*num_requeues)(struct mc_rate_limiter *rl, const struct mci_key *k);
	/* Combinators pass the clock on to the limiters they own. */
	void (*set_clock)(struct mc_rate_limiter *rl, const struct mc_clock *clock);
	size_t (*entries)(struct mc_rate_limiter *rl);
	void (*free)(struct mc_rate_limiter *rl);
};

struct mc_rate_limiter {
	const struct mci_rate_limiter_ops *ops;
	struct mc_clock clock;
};

/* The queue calls these with its own hash and equality, so that a limiter and the queue
 * agree on which items are the same. */
static inline uint64_t mci_rate_limiter_when(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	return rl->ops->when(rl, k);
}

static inline void mci_rate_limiter_forget(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	rl->ops->forget(rl, k);
}

static inline unsigned mci_rate_limiter_num_requeues(struct mc_rate_limiter *rl,
						     const struct mci_key *k)
{
	return rl->ops->num_requeues(rl, k);
}

/* Number of per-item entries the limiter (and those it owns) currently holds; for tests. */
MCI_HIDDEN size_t mci_rate_limiter_entries(struct mc_rate_limiter *rl);

#endif /* MC_WORKQUEUE_INTERNAL_H */
