/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Rate limiters: client-go's default_rate_limiters_test.go with its exact delays, the token
 * bucket on a fake clock, and fix 3 (failure entries age out instead of growing forever).
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <meshcrypt/workqueue.h>

#include "fake-clock.h"

#include "workqueue-internal.h"

#define MS 1000000ull
#define S 1000000000ull

/* A limiter keys by a fixed item size: names are padded to one. */
struct key {
	char s[16];
};

static struct key key_of(const char *item)
{
	struct key k;

	memset(&k, 0, sizeof(k));
	snprintf(k.s, sizeof(k.s), "%s", item);
	return k;
}

static uint64_t when(struct mc_rate_limiter *rl, const char *item)
{
	struct key k = key_of(item);

	return mc_rate_limiter_when(rl, &k, sizeof(k));
}

static unsigned requeues(struct mc_rate_limiter *rl, const char *item)
{
	struct key k = key_of(item);

	return mc_rate_limiter_num_requeues(rl, &k, sizeof(k));
}

static void forget(struct mc_rate_limiter *rl, const char *item)
{
	struct key k = key_of(item);

	mc_rate_limiter_forget(rl, &k, sizeof(k));
}


static void test_exponential(void **state)
{
	struct mc_rate_limiter *rl = mc_rate_limiter_exponential(1 * MS, 1 * S);

	assert_int_equal(when(rl, "one"), 1 * MS);
	assert_int_equal(when(rl, "one"), 2 * MS);
	assert_int_equal(when(rl, "one"), 4 * MS);
	assert_int_equal(when(rl, "one"), 8 * MS);
	assert_int_equal(when(rl, "one"), 16 * MS);
	assert_int_equal(requeues(rl, "one"), 5);
	assert_int_equal(when(rl, "two"), 1 * MS);
	assert_int_equal(when(rl, "two"), 2 * MS);
	assert_int_equal(requeues(rl, "two"), 2);
	forget(rl, "one");
	assert_int_equal(requeues(rl, "one"), 0);
	assert_int_equal(when(rl, "one"), 1 * MS);
	mc_rate_limiter_free(rl);
}

static void test_exponential_overflow(void **state)
{
	struct mc_rate_limiter *rl = mc_rate_limiter_exponential(1 * MS, 1000 * S);

	for (int i = 0; i < 5; i++)
		when(rl, "one");
	assert_int_equal(when(rl, "one"), 32 * MS);
	for (int i = 0; i < 1000; i++)
		when(rl, "overflow1");
	assert_int_equal(when(rl, "overflow1"), 1000 * S);
	mc_rate_limiter_free(rl);

	rl = mc_rate_limiter_exponential(60 * S, 1000 * 3600 * S);
	for (int i = 0; i < 2; i++)
		when(rl, "two");
	assert_int_equal(when(rl, "two"), 4 * 60 * S);
	for (int i = 0; i < 1000; i++)
		when(rl, "overflow2");
	assert_int_equal(when(rl, "overflow2"), 1000 * 3600 * S);
	mc_rate_limiter_free(rl);

	/* No cap below the 64-bit range: the shift must still not wrap. */
	rl = mc_rate_limiter_exponential(3, UINT64_MAX);
	for (int i = 0; i < 62; i++)
		when(rl, "big");
	assert_int_equal(when(rl, "big"), 3ull << 62);
	assert_int_equal(when(rl, "big"), UINT64_MAX);
	mc_rate_limiter_free(rl);
}

static void test_fast_slow(void **state)
{
	struct mc_rate_limiter *rl = mc_rate_limiter_fast_slow(5 * MS, 10 * S, 3);

	assert_int_equal(when(rl, "one"), 5 * MS);
	assert_int_equal(when(rl, "one"), 5 * MS);
	assert_int_equal(when(rl, "one"), 5 * MS);
	assert_int_equal(when(rl, "one"), 10 * S);
	assert_int_equal(when(rl, "one"), 10 * S);
	assert_int_equal(requeues(rl, "one"), 5);
	assert_int_equal(when(rl, "two"), 5 * MS);
	assert_int_equal(when(rl, "two"), 5 * MS);
	assert_int_equal(requeues(rl, "two"), 2);
	forget(rl, "one");
	assert_int_equal(requeues(rl, "one"), 0);
	assert_int_equal(when(rl, "one"), 5 * MS);
	mc_rate_limiter_free(rl);
}

static void test_max_of(void **state)
{
	struct mc_rate_limiter *sub[2] = {
		mc_rate_limiter_fast_slow(5 * MS, 3 * S, 3),
		mc_rate_limiter_exponential(1 * MS, 1 * S),
	};
	struct mc_rate_limiter *rl = mc_rate_limiter_max_of(sub, 2);

	assert_non_null(rl);
	assert_int_equal(when(rl, "one"), 5 * MS);
	assert_int_equal(when(rl, "one"), 5 * MS);
	assert_int_equal(when(rl, "one"), 5 * MS);
	assert_int_equal(when(rl, "one"), 3 * S);
	assert_int_equal(when(rl, "one"), 3 * S);
	assert_int_equal(requeues(rl, "one"), 5);
	assert_int_equal(when(rl, "two"), 5 * MS);
	assert_int_equal(when(rl, "two"), 5 * MS);
	assert_int_equal(requeues(rl, "two"), 2);
	forget(rl, "one");
	assert_int_equal(requeues(rl, "one"), 0);
	assert_int_equal(when(rl, "one"), 5 * MS);
	mc_rate_limiter_free(rl);
}

static void test_with_max_wait(void **state)
{
	struct fake_clock f;
	struct mc_rate_limiter *rl;
	char item[16];

	/* client-go steps a counting limiter past 100 calls; the bucket does the same here:
	 * 100 tokens, then each call waits 100 ms longer, capped at 500 ms. */
	fake_clock_init(&f, 5 * S);
	rl = mc_rate_limiter_with_max_wait(mc_rate_limiter_bucket(10, 100), 500 * MS);
	mc_rate_limiter_set_clock(rl, &f.c);
	for (int i = 0; i < 100; i++) {
		snprintf(item, sizeof(item), "%d", i);
		assert_int_equal(when(rl, item), 0);
	}
	assert_int_equal(when(rl, "100"), 100 * MS);
	assert_int_equal(when(rl, "101"), 200 * MS);
	for (int i = 102; i < 200; i++) {
		snprintf(item, sizeof(item), "%d", i);
		assert_true(when(rl, item) <= 500 * MS);
	}
	assert_int_equal(when(rl, "200"), 500 * MS);
	mc_rate_limiter_free(rl);

	/* The default controller under a cap: 5 ms for new items, the cap once they fail. */
	rl = mc_rate_limiter_with_max_wait(mc_rate_limiter_default_controller(), 500 * S);
	mc_rate_limiter_set_clock(rl, &f.c);
	for (int i = 0; i < 100; i++) {
		snprintf(item, sizeof(item), "%d", i);
		assert_int_equal(when(rl, item), 5 * MS);
	}
	for (int i = 0; i < 30; i++)
		when(rl, "0");
	assert_int_equal(when(rl, "0"), 500 * S);
	mc_rate_limiter_free(rl);
}

static void test_bucket(void **state)
{
	struct fake_clock f;
	struct mc_rate_limiter *rl = mc_rate_limiter_bucket(10, 3);

	fake_clock_init(&f, 5 * S);
	mc_rate_limiter_set_clock(rl, &f.c);
	/* A new bucket is full: burst calls pass, then each waits one more token. */
	assert_int_equal(when(rl, "a"), 0);
	assert_int_equal(when(rl, "b"), 0);
	assert_int_equal(when(rl, "c"), 0);
	assert_int_equal(when(rl, "d"), 100 * MS);
	assert_int_equal(when(rl, "e"), 200 * MS);
	/* 250 ms later 2.5 tokens came back; 2 were owed. */
	step(&f, 250 * MS);
	assert_int_equal(when(rl, "f"), 50 * MS);
	/* Refill stops at burst. */
	step(&f, 10 * S);
	assert_int_equal(when(rl, "g"), 0);
	assert_int_equal(when(rl, "h"), 0);
	assert_int_equal(when(rl, "i"), 0);
	assert_int_equal(when(rl, "j"), 100 * MS);
	/* The bucket keeps no per-item state. */
	assert_int_equal(requeues(rl, "j"), 0);
	forget(rl, "j");
	mc_rate_limiter_free(rl);

	errno = 0;
	assert_null(mc_rate_limiter_bucket(0, 1));
	assert_int_equal(errno, EINVAL);
	assert_null(mc_rate_limiter_bucket(10, 0));
}

static void test_default_controller(void **state)
{
	struct fake_clock f;
	struct mc_rate_limiter *rl = mc_rate_limiter_default_controller();

	fake_clock_init(&f, 5 * S);
	mc_rate_limiter_set_clock(rl, &f.c);
	assert_int_equal(when(rl, "x"), 5 * MS);
	assert_int_equal(when(rl, "x"), 10 * MS);
	assert_int_equal(when(rl, "x"), 20 * MS);
	assert_int_equal(requeues(rl, "x"), 3);
	for (int i = 0; i < 40; i++)
		when(rl, "x");
	assert_int_equal(when(rl, "x"), 1000 * S);
	mc_rate_limiter_free(rl);
}

/* Fix 3: entries of items that stopped failing but were never forgotten go away. */
static void test_failures_age_out(void **state)
{
	struct fake_clock f;
	struct mc_rate_limiter *rl = mc_rate_limiter_exponential(1 * MS, 1 * S);
	uint64_t ttl = 2 * S + 600 * S; /* twice the longest delay plus ten minutes */
	char item[16];

	fake_clock_init(&f, 5 * S);
	mc_rate_limiter_set_clock(rl, &f.c);
	when(rl, "old");
	when(rl, "old");
	step(&f, ttl);
	assert_int_equal(requeues(rl, "old"), 2); /* not yet */
	step(&f, 1);
	assert_int_equal(requeues(rl, "old"), 0);
	assert_int_equal(when(rl, "old"), 1 * MS); /* starts over */

	/* Thousands of distinct failing items, never forgotten: once they are stale, the next
	 * ones reuse the room instead of growing the table. */
	for (int i = 0; i < 5000; i++) {
		snprintf(item, sizeof(item), "a%d", i);
		when(rl, item);
	}
	assert_int_equal(mci_rate_limiter_entries(rl), 5001);
	step(&f, ttl + 1);
	for (int i = 0; i < 5000; i++) {
		snprintf(item, sizeof(item), "b%d", i);
		when(rl, item);
	}
	assert_true(mci_rate_limiter_entries(rl) <= 5000 + 1024);
	for (int i = 0; i < 5000; i++) {
		snprintf(item, sizeof(item), "b%d", i);
		assert_int_equal(requeues(rl, item), 1);
	}
	mc_rate_limiter_free(rl);
}

static void test_ownership(void **state)
{
	struct mc_rate_limiter *subs[3] = { mc_rate_limiter_exponential(1, 2), NULL,
					    mc_rate_limiter_bucket(1, 1) };

	/* Constructors that take ownership free what they got, even when they fail
	 * (ASan reports a leak otherwise). */
	errno = 0;
	assert_null(mc_rate_limiter_max_of(subs, 3));
	assert_int_equal(errno, EINVAL);
	assert_null(mc_rate_limiter_max_of(NULL, 0));
	assert_null(mc_rate_limiter_with_max_wait(NULL, 1));
	mc_rate_limiter_free(NULL);
	assert_int_equal(mc_rate_limiter_when(NULL, "x", 2), 0);
	assert_int_equal(mc_rate_limiter_num_requeues(NULL, "x", 2), 0);
}

static void test_item_size_is_fixed(void **state)
{
	struct mc_rate_limiter *rl = mc_rate_limiter_exponential(1 * MS, 1 * S);
	uint32_t small = 7;
	uint64_t big = 7;

	assert_int_equal(mc_rate_limiter_when(rl, &small, sizeof(small)), 1 * MS);
	/* Another size than the first one cannot be tracked: the longest delay, never a hot loop. */
	assert_int_equal(mc_rate_limiter_when(rl, &big, sizeof(big)), 1 * S);
	assert_int_equal(mc_rate_limiter_num_requeues(rl, &big, sizeof(big)), 0);
	assert_int_equal(mc_rate_limiter_num_requeues(rl, &small, sizeof(small)), 1);
	mc_rate_limiter_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exponential),
		cmocka_unit_test(test_exponential_overflow),
		cmocka_unit_test(test_fast_slow),
		cmocka_unit_test(test_max_of),
		cmocka_unit_test(test_with_max_wait),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_default_controller),
		cmocka_unit_test(test_failures_age_out),
		cmocka_unit_test(test_ownership),
		cmocka_unit_test(test_item_size_is_fixed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
