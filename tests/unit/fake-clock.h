/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A clock that moves only when a test says so (struct mc_clock of workqueue.h). */
#ifndef MC_TEST_FAKE_CLOCK_H
#define MC_TEST_FAKE_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

#include <meshcrypt/workqueue.h>

struct fake_clock {
	struct mc_clock c;
	atomic_uint_fast64_t now;
};

static inline uint64_t fake_now(void *userdata)
{
	return atomic_load(&((struct fake_clock *)userdata)->now);
}

static inline void fake_clock_init(struct fake_clock *f, uint64_t start_ns)
{
	f->c = (struct mc_clock){ .now_ns = fake_now, .userdata = f };
	atomic_init(&f->now, start_ns);
}

static inline void step(struct fake_clock *f, uint64_t ns)
{
	atomic_fetch_add(&f->now, ns);
}

#endif
