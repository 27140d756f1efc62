/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Work queue semantics: every scenario of client-go's util/workqueue queue_test.go,
 * delaying_queue_test.go, rate_limiting_queue_test.go and metrics_test.go, ported, plus the
 * three client-go flaws that meshcrypt fixes (docs/workqueue.md). Delays run on a fake clock.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <meshcrypt/metrics.h>
#include <meshcrypt/workqueue.h>

#include "fake-clock.h"
#include "metric-sample.h"

#include "workqueue-internal.h"

#define MS 1000000ull
#define S 1000000000ull

/* ---- helpers ---- */

struct skey {
	char s[16];
};

MC_WORKQUEUE_DEFINE(sq, struct skey);
MC_WORKQUEUE_DEFINE(iq, int);

/* A pointer to a key with this literal name. */
#define K(str) (&(struct skey){ .s = str })

static struct skey key_from(const char *s)
{
	struct skey k = { .s = "" };

	snprintf(k.s, sizeof(k.s), "%s", s);
	return k;
}


static struct sq_queue *sq_fake(struct fake_clock *f, struct mc_rate_limiter *rl)
{
	struct mc_workqueue_config cfg = { .clock = &f->c, .rate_limiter = rl };
	struct sq_queue *q;

	fake_clock_init(f, 1000 * S);
	q = sq_new(&cfg);
	assert_non_null(q);
	return q;
}

static void expect_get(struct sq_queue *q, const char *want)
{
	struct skey k;

	assert_true(sq_get(q, &k));
	assert_string_equal(k.s, want);
}

static void sleep_ms(unsigned ms)
{
	usleep(ms * 1000u);
}

/* Gets until the queue reports shutdown: the way client-go's tests wait for ShutDown to begin. */
static void get_until_shutdown(struct sq_queue *q)
{
	struct skey k;

	while (sq_get(q, &k))
		sq_done(q, &k);
}

static void *drain_thread(void *arg)
{
	sq_shutdown_with_drain(arg);
	return NULL;
}

/* ---- queue_test.go ---- */

struct basic {
	struct iq_queue *q;
	bool drain;
	atomic_int producer_index;
	atomic_int bad;
};

static void *basic_producer(void *arg)
{
	struct basic *b = arg;
	int i = atomic_fetch_add(&b->producer_index, 1);

	for (int j = 0; j < 50; j++) {
		if (iq_add(b->q, &i) != 0)
			atomic_store(&b->bad, 1);
		usleep(100);
	}
	return NULL;
}

static void *basic_consumer(void *arg)
{
	struct basic *b = arg;
	int item;

	while (iq_get(b->q, &item)) {
		if (item == -1)
			atomic_store(&b->bad, 1);
		usleep(300);
		iq_done(b->q, &item);
	}
	return NULL;
}

static void run_basic(bool drain)
{
	struct basic b = { .q = iq_new(NULL), .drain = drain };
	pthread_t producers[50], consumers[10];
	int after = -1;

	assert_non_null(b.q);
	for (int i = 0; i < 50; i++)
		pthread_create(&producers[i], NULL, basic_producer, &b);
	for (int i = 0; i < 10; i++)
		pthread_create(&consumers[i], NULL, basic_consumer, &b);
	for (int i = 0; i < 50; i++)
		pthread_join(producers[i], NULL);
	if (drain)
		iq_shutdown_with_drain(b.q);
	else
		iq_shutdown(b.q);
	assert_int_equal(iq_add(b.q, &after), -ESHUTDOWN);
	for (int i = 0; i < 10; i++)
		pthread_join(consumers[i], NULL);
	assert_int_equal(iq_len(b.q), 0);
	assert_false(atomic_load(&b.bad));
	iq_free(b.q);
}

static void test_basic(void **state)
{
	run_basic(false);
	run_basic(true);
}

struct awp {
	struct iq_queue *q;
	atomic_int next;
	atomic_int bad;
	atomic_int runs[50];
};

static void *awp_producer(void *arg)
{
	struct awp *a = arg;
	int i = atomic_fetch_add(&a->next, 1);

	if (iq_add(a->q, &i) != 0)
		atomic_store(&a->bad, 1);
	return NULL;
}

/* Every worker re-adds every item it sees for the first time: dirty while processing. */
static void *awp_consumer(void *arg)
{
	struct awp *a = arg;
	int counters[50] = { 0 };
	int item;

	while (iq_get(a->q, &item)) {
		atomic_fetch_add(&a->runs[item], 1);
		if (++counters[item] < 2 && iq_add(a->q, &item) != 0)
			atomic_store(&a->bad, 1);
		iq_done(a->q, &item);
	}
	return NULL;
}

static void run_add_while_processing(bool drain)
{
	struct awp a = { .q = iq_new(NULL) };
	pthread_t producers[50], consumers[10];

	assert_non_null(a.q);
	for (int i = 0; i < 50; i++)
		pthread_create(&producers[i], NULL, awp_producer, &a);
	for (int i = 0; i < 10; i++)
		pthread_create(&consumers[i], NULL, awp_consumer, &a);
	for (int i = 0; i < 50; i++)
		pthread_join(producers[i], NULL);
	/* Let the re-adds happen before shutting down, so each item runs at least twice. */
	for (int i = 0; i < 50; i++) {
		while (atomic_load(&a.runs[i]) < 2)
			usleep(100);
	}
	if (drain)
		iq_shutdown_with_drain(a.q);
	else
		iq_shutdown(a.q);
	for (int i = 0; i < 10; i++)
		pthread_join(consumers[i], NULL);
	assert_int_equal(iq_len(a.q), 0);
	assert_false(atomic_load(&a.bad));
	iq_free(a.q);
}

static void test_add_while_processing(void **state)
{
	run_add_while_processing(false);
	run_add_while_processing(true);
}

static void test_add_after_shutdown(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct skey foo = *K("foo"), bar = *K("bar");
	pthread_t t;

	assert_int_equal(sq_add(q, &foo), 0);
	assert_int_equal(sq_add(q, &foo), 0);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	pthread_create(&t, NULL, drain_thread, q);
	get_until_shutdown(q);
	assert_true(sq_shutting_down(q));
	assert_int_equal(sq_add(q, &bar), -ESHUTDOWN);
	assert_int_equal(sq_add_after(q, &bar, MS), -ESHUTDOWN);
	assert_int_equal(sq_add_rate_limited(q, &bar), -ESHUTDOWN);
	sq_done(q, &foo);
	pthread_join(t, NULL);
	sq_free(q);
}

static void test_len(void **state)
{
	struct sq_queue *q = sq_new(NULL);

	assert_int_equal(sq_add(q, K("foo")), 0);
	assert_int_equal(sq_len(q), 1);
	assert_int_equal(sq_add(q, K("bar")), 0);
	assert_int_equal(sq_len(q), 2);
	assert_int_equal(sq_add(q, K("foo")), 0); /* must not grow */
	assert_int_equal(sq_len(q), 2);
	sq_free(q);
}

static void test_reinsert(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct skey foo = *K("foo");

	sq_add(q, &foo);
	expect_get(q, "foo");
	sq_add(q, &foo); /* while processing */
	assert_int_equal(sq_len(q), 0);
	sq_done(q, &foo);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	sq_done(q, &foo);
	assert_int_equal(sq_len(q), 0);
	sq_free(q);
}

static void test_collapse(void **state)
{
	struct sq_queue *q = sq_new(NULL);

	sq_add(q, K("bar"));
	sq_add(q, K("bar"));
	expect_get(q, "bar");
	sq_done(q, K("bar"));
	assert_int_equal(sq_len(q), 0);
	sq_free(q);
}

static void test_collapse_keeps_place(void **state)
{
	struct sq_queue *q = sq_new(NULL);

	sq_add(q, K("a"));
	sq_add(q, K("b"));
	sq_add(q, K("a"));
	sq_add(q, K("c"));
	expect_get(q, "a");
	expect_get(q, "b");
	expect_get(q, "c");
	sq_free(q);
}

/* Another worker: got becomes 1 once it holds "foo", -1 if it got something else. */
struct getter {
	struct sq_queue *q;
	atomic_int got;
};

static void *getter_thread(void *arg)
{
	struct getter *g = arg;
	struct skey k;

	if (sq_get(g->q, &k) && strcmp(k.s, "foo") == 0) {
		atomic_store(&g->got, 1);
		sq_done(g->q, &k);
	} else {
		atomic_store(&g->got, -1);
	}
	return NULL;
}

static void test_collapse_while_processing(void **state)
{
	struct getter g = { .q = sq_new(NULL) };
	struct skey foo = *K("foo");
	pthread_t t;

	sq_add(g.q, &foo);
	expect_get(g.q, "foo");
	sq_add(g.q, &foo);
	sq_add(g.q, &foo);
	pthread_create(&t, NULL, getter_thread, &g);
	/* The other worker must stay blocked until the first one is done with foo. */
	sleep_ms(50);
	assert_false(atomic_load(&g.got));
	sq_done(g.q, &foo);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&g.got), 1);
	assert_int_equal(sq_len(g.q), 0);
	sq_free(g.q);
}

static void test_drain_with_shutdown_with_drain(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct skey a, b;
	pthread_t t;

	sq_add(q, K("foo"));
	sq_add(q, K("bar"));
	assert_true(sq_get(q, &a));
	assert_true(sq_get(q, &b));
	pthread_create(&t, NULL, drain_thread, q);
	get_until_shutdown(q);
	sq_done(q, &a);
	sq_done(q, &b);
	pthread_join(t, NULL);
	sq_free(q);
}

static void test_no_drain_with_shutdown(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct skey a, b;

	sq_add(q, K("foo"));
	sq_add(q, K("bar"));
	assert_true(sq_get(q, &a));
	assert_true(sq_get(q, &b));
	sq_shutdown(q); /* returns without done() */
	assert_false(sq_get(q, &a));
	sq_free(q);
}

static void test_force_shutdown(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct skey a, b;
	pthread_t t;

	sq_add(q, K("foo"));
	sq_add(q, K("bar"));
	assert_true(sq_get(q, &a));
	assert_true(sq_get(q, &b));
	pthread_create(&t, NULL, drain_thread, q);
	get_until_shutdown(q);
	sq_shutdown(q); /* forces the draining call out; nothing was done */
	pthread_join(t, NULL);
	sq_free(q);
}

static void test_drain_with_dirty_item(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct skey foo = *K("foo"), again;
	pthread_t t;

	sq_add(q, &foo);
	expect_get(q, "foo");
	sq_add(q, &foo);
	pthread_create(&t, NULL, drain_thread, q);
	get_until_shutdown(q);
	sq_done(q, &foo);
	/* done() queued the dirty item again: it is still handed out after shutdown. */
	assert_true(sq_get(q, &again));
	assert_string_equal(again.s, "foo");
	sq_done(q, &again);
	assert_false(sq_get(q, &again));
	pthread_join(t, NULL);
	sq_free(q);
}

static void test_drain_returns_when_idle(void **state)
{
	struct sq_queue *q = sq_new(NULL);

	sq_add(q, K("queued"));
	sq_shutdown_with_drain(q); /* nothing is processing: returns at once, as in client-go */
	expect_get(q, "queued");
	sq_done(q, K("queued"));
	assert_false(sq_get(q, &(struct skey){ { 0 } }));
	sq_free(q);
}

/* ---- delaying_queue_test.go ---- */

static void test_delaying_simple(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL);

	assert_int_equal(sq_add_after(q, K("foo"), 50 * MS), 0);
	assert_int_equal(sq_len(q), 0);
	step(&f, 60 * MS);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	sq_done(q, K("foo"));
	step(&f, 10 * S); /* past client-go's heartbeat: nothing comes back */
	assert_int_equal(sq_len(q), 0);
	sq_free(q);
}

static void test_delaying_dedupe(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL);
	struct skey foo = *K("foo");

	sq_add_after(q, &foo, 50 * MS);
	sq_add_after(q, &foo, 70 * MS); /* later: ignored */
	assert_int_equal(sq_len(q), 0);
	step(&f, 60 * MS);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	sq_done(q, &foo);
	step(&f, 20 * MS); /* past the second add: it was merged */
	assert_int_equal(sq_len(q), 0);

	sq_add_after(q, &foo, 50 * MS);
	sq_add_after(q, &foo, 30 * MS); /* earlier: wins */
	assert_int_equal(sq_len(q), 0);
	step(&f, 40 * MS);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	sq_done(q, &foo);
	step(&f, 20 * MS);
	assert_int_equal(sq_len(q), 0);
	sq_free(q);
}

static void test_delaying_two_fire_early(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL);

	sq_add_after(q, K("foo"), 1 * S);
	sq_add_after(q, K("bar"), 50 * MS);
	assert_int_equal(sq_len(q), 0);
	step(&f, 60 * MS);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "bar");
	sq_add_after(q, K("baz"), 2 * S);
	step(&f, 1 * S);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	step(&f, 2 * S);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "baz");
	sq_free(q);
}

static void test_delaying_copy_shifting(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL);

	sq_add_after(q, K("foo"), 1 * S);
	sq_add_after(q, K("bar"), 500 * MS);
	sq_add_after(q, K("baz"), 250 * MS);
	assert_int_equal(sq_len(q), 0);
	step(&f, 2 * S);
	assert_int_equal(sq_len(q), 3);
	expect_get(q, "baz");
	expect_get(q, "bar");
	expect_get(q, "foo");
	sq_free(q);
}

static void test_delaying_many_in_order(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL);
	char name[16];

	/* Ready times in scrambled order come out in time order... */
	for (int i = 0; i < 200; i++) {
		int v = (i * 37) % 200;
		struct skey k;

		snprintf(name, sizeof(name), "%03d", v);
		/* key_from zeroes the bytes after the NUL: items are compared bytewise */
		k = key_from(name);
		sq_add_after(q, &k, (uint64_t)(v + 1) * MS);
	}
	step(&f, 1 * S);
	assert_int_equal(sq_len(q), 200);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "%03d", i);
		expect_get(q, name);
	}
	/* ...and equal ready times in the order they were added. */
	sq_add_after(q, K("t1"), 5 * MS);
	sq_add_after(q, K("t2"), 5 * MS);
	sq_add_after(q, K("t3"), 5 * MS);
	step(&f, 5 * MS);
	expect_get(q, "t1");
	expect_get(q, "t2");
	expect_get(q, "t3");
	sq_free(q);
}

static void test_delaying_dropped_at_shutdown(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL);
	struct skey k;

	sq_add_after(q, K("later"), 1 * S);
	sq_add_after(q, K("due"), 10 * MS);
	step(&f, 20 * MS);
	sq_shutdown(q);
	step(&f, 2 * S);
	expect_get(q, "due"); /* was due before the shutdown */
	sq_done(q, K("due"));
	assert_false(sq_get(q, &k));
	assert_int_equal(sq_len(q), 0);
	sq_free(q);
}

static void test_delaying_wakes_blocked_getter(void **state)
{
	struct fake_clock f;
	struct getter g = { .q = sq_fake(&f, NULL) };
	pthread_t t;

	pthread_create(&t, NULL, getter_thread, &g);
	sq_add_after(g.q, K("foo"), 1 * S);
	sleep_ms(20);
	assert_false(atomic_load(&g.got));
	step(&f, 1 * S); /* a worker asleep in get() notices on its own */
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&g.got), 1);
	sq_free(g.q);
}

static void test_delaying_real_clock(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct timespec a, b;
	uint64_t elapsed;

	clock_gettime(CLOCK_MONOTONIC, &a);
	sq_add_after(q, K("foo"), 20 * MS);
	expect_get(q, "foo");
	clock_gettime(CLOCK_MONOTONIC, &b);
	elapsed = (uint64_t)(b.tv_sec - a.tv_sec) * S + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
	assert_true(elapsed >= 20 * MS);
	sq_free(q);
}

/* ---- rate_limiting_queue_test.go ---- */

/* The delay of the next retry of item: when it becomes ready on the fake clock. */
static uint64_t ready_after(struct sq_queue *q, struct fake_clock *f, const char *item)
{
	uint64_t waited = 0;
	struct skey k = key_from(item);

	while (sq_len(q) == 0) {
		step(f, 100000); /* 0.1 ms */
		waited += 100000;
	}
	expect_get(q, item);
	sq_done(q, &k);
	return waited;
}

static void test_rate_limiting_queue(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, mc_rate_limiter_exponential(1 * MS, 1 * S));

	sq_add_rate_limited(q, K("one"));
	assert_int_equal(ready_after(q, &f, "one"), 1 * MS);
	sq_add_rate_limited(q, K("one"));
	assert_int_equal(ready_after(q, &f, "one"), 2 * MS);
	assert_int_equal(sq_num_requeues(q, K("one")), 2);

	sq_add_rate_limited(q, K("two"));
	assert_int_equal(ready_after(q, &f, "two"), 1 * MS);
	sq_add_rate_limited(q, K("two"));
	assert_int_equal(ready_after(q, &f, "two"), 2 * MS);

	sq_forget(q, K("one"));
	assert_int_equal(sq_num_requeues(q, K("one")), 0);
	sq_add_rate_limited(q, K("one"));
	assert_int_equal(ready_after(q, &f, "one"), 1 * MS);
	sq_free(q);
}

static void test_default_rate_limiter(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL); /* default controller: 5 ms first */

	sq_add_rate_limited(q, K("x"));
	assert_int_equal(ready_after(q, &f, "x"), 5 * MS);
	assert_int_equal(sq_num_requeues(q, K("x")), 1);
	sq_free(q);
}

/* ---- the three client-go fixes ---- */

static void test_fix_stray_done(void **state)
{
	struct sq_queue *q = sq_new(NULL);
	struct skey foo = *K("foo"), k;

	sq_done(q, K("never-added")); /* no-op */
	assert_int_equal(sq_len(q), 0);
	sq_add(q, &foo);
	sq_done(q, &foo); /* client-go appends foo a second time here */
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	sq_done(q, &foo);
	sq_shutdown(q);
	assert_false(sq_get(q, &k));
	sq_free(q);
}

static void test_fix_add_cancels_delayed(void **state)
{
	struct fake_clock f;
	struct sq_queue *q = sq_fake(&f, NULL);
	struct skey foo = *K("foo");

	sq_add_after(q, &foo, 1 * S);
	sq_add(q, &foo); /* runs now; client-go would run it again in 1 s */
	expect_get(q, "foo");
	sq_done(q, &foo);
	step(&f, 2 * S);
	assert_int_equal(sq_len(q), 0);

	/* The other direction: a dirty item absorbs a delayed add. */
	sq_add(q, &foo);
	sq_add_after(q, &foo, 1 * S);
	expect_get(q, "foo");
	sq_done(q, &foo);
	step(&f, 2 * S);
	assert_int_equal(sq_len(q), 0);

	/* A retry scheduled while processing (the usual failure path) still happens. */
	sq_add(q, &foo);
	expect_get(q, "foo");
	sq_add_after(q, &foo, 1 * S);
	sq_done(q, &foo);
	assert_int_equal(sq_len(q), 0);
	step(&f, 1 * S);
	assert_int_equal(sq_len(q), 1);
	expect_get(q, "foo");
	sq_done(q, &foo);
	sq_free(q);
}

/* Fix 3 (failure entries age out) is tested in test-rate-limiter.c. */

/* ---- metrics_test.go ---- */

static bool near(double a, double b)
{
	return a - b < 1e-12 && b - a < 1e-12;
}

static struct sq_queue *metered(struct fake_clock *f, struct mc_metrics *reg, const char *name)
{
	struct mc_workqueue_config cfg = { .name = name, .metrics = reg, .clock = &f->c };
	struct sq_queue *q;

	fake_clock_init(f, 0);
	q = sq_new(&cfg);
	assert_non_null(q);
	return q;
}

static void test_metrics(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct fake_clock f;
	struct sq_queue *q = metered(&f, reg, "test");
	struct skey foo = *K("foo");

	sq_add(q, &foo);
	assert_true(metric(reg, "workqueue_adds_total{name=\"test\"}") == 1.0);
	assert_true(metric(reg, "workqueue_depth{name=\"test\"}") == 1.0);
	step(&f, 50000);
	expect_get(q, "foo");
	assert_true(near(metric(reg, "workqueue_queue_duration_seconds_sum{name=\"test\"}"), 5e-05));
	assert_true(metric(reg, "workqueue_queue_duration_seconds_count{name=\"test\"}") == 1.0);
	assert_true(metric(reg, "workqueue_queue_duration_seconds_bucket{name=\"test\",le=\"1e-05\"}") == 0.0);
	assert_true(metric(reg, "workqueue_queue_duration_seconds_bucket{name=\"test\",le=\"0.0001\"}") == 1.0);

	/* Adds while processing collapse: one add counted, depth 1 (dirty, not in len). */
	for (int i = 0; i < 5; i++)
		sq_add(q, &foo);
	assert_true(metric(reg, "workqueue_adds_total{name=\"test\"}") == 2.0);
	assert_true(metric(reg, "workqueue_depth{name=\"test\"}") == 1.0);
	assert_int_equal(sq_len(q), 0);

	step(&f, 25000);
	sq_done(q, &foo);
	assert_true(near(metric(reg, "workqueue_work_duration_seconds_sum{name=\"test\"}"), 2.5e-05));
	assert_true(metric(reg, "workqueue_work_duration_seconds_count{name=\"test\"}") == 1.0);
	assert_true(metric(reg, "workqueue_depth{name=\"test\"}") == 1.0);

	expect_get(q, "foo");
	assert_true(metric(reg, "workqueue_queue_duration_seconds_count{name=\"test\"}") == 2.0);
	assert_true(near(metric(reg, "workqueue_queue_duration_seconds_sum{name=\"test\"}"), 7.5e-05));
	assert_true(metric(reg, "workqueue_depth{name=\"test\"}") == 0.0);

	step(&f, 1 * MS);
	assert_true(metric(reg, "workqueue_unfinished_work_seconds{name=\"test\"}") == 0.001);
	assert_true(metric(reg, "workqueue_longest_running_processor_seconds{name=\"test\"}") == 0.001);

	sq_done(q, &foo);
	assert_true(metric(reg, "workqueue_work_duration_seconds_count{name=\"test\"}") == 2.0);
	assert_true(metric(reg, "workqueue_work_duration_seconds_bucket{name=\"test\",le=\"0.001\"}") == 2.0);
	assert_true(metric(reg, "workqueue_work_duration_seconds_bucket{name=\"test\",le=\"+Inf\"}") == 2.0);
	assert_true(metric(reg, "workqueue_unfinished_work_seconds{name=\"test\"}") == 0.0);

	sq_add_after(q, &foo, 1 * MS);
	sq_add_rate_limited(q, &foo);
	assert_true(metric(reg, "workqueue_retries_total{name=\"test\"}") == 2.0);
	sq_free(q);
	mc_metrics_free(reg);
}

struct done_elsewhere {
	struct sq_queue *q;
	const char *key;
};

static void *done_thread(void *arg)
{
	struct done_elsewhere *d = arg;
	struct skey k = key_from(d->key);

	sq_done(d->q, &k);
	return NULL;
}

/* get and done count without the lock, and a done from another thread takes the locked path:
 * each run is counted once in work_duration whichever way its done came, and twice never. */
static void test_metrics_done_paths(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct fake_clock f;
	struct sq_queue *q = metered(&f, reg, "paths");
	struct done_elsewhere d = { q, "foo" };
	pthread_t t;

	sq_add(q, K("foo"));
	sq_add(q, K("bar"));
	expect_get(q, "foo");
	step(&f, 2 * MS);
	expect_get(q, "bar");
	step(&f, 1 * MS);
	/* Two in flight: 3 ms and 1 ms. */
	assert_true(near(metric(reg, "workqueue_unfinished_work_seconds{name=\"paths\"}"), 0.004));
	assert_true(near(metric(reg, "workqueue_longest_running_processor_seconds{name=\"paths\"}"),
			 0.003));
	assert_true(metric(reg, "workqueue_depth{name=\"paths\"}") == 0.0);

	pthread_create(&t, NULL, done_thread, &d);
	pthread_join(t, NULL);
	assert_true(metric(reg, "workqueue_work_duration_seconds_count{name=\"paths\"}") == 1.0);
	assert_true(near(metric(reg, "workqueue_work_duration_seconds_sum{name=\"paths\"}"), 0.003));
	assert_true(near(metric(reg, "workqueue_longest_running_processor_seconds{name=\"paths\"}"),
			 0.001));
	/* The done of this thread's last get, here of an item another thread finished: nothing. */
	sq_done(q, K("foo"));
	sq_done(q, K("bar"));
	sq_done(q, K("bar"));
	assert_true(metric(reg, "workqueue_work_duration_seconds_count{name=\"paths\"}") == 2.0);
	assert_true(near(metric(reg, "workqueue_work_duration_seconds_sum{name=\"paths\"}"), 0.004));
	assert_true(metric(reg, "workqueue_unfinished_work_seconds{name=\"paths\"}") == 0.0);
	sq_free(q);
	mc_metrics_free(reg);
}

static void test_metrics_stop_at_shutdown(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct fake_clock f;
	struct sq_queue *q = metered(&f, reg, "stop");

	sq_add(q, K("foo"));
	expect_get(q, "foo");
	step(&f, 1 * MS);
	assert_true(metric(reg, "workqueue_unfinished_work_seconds{name=\"stop\"}") == 0.001);
	sq_shutdown(q);
	step(&f, 3600 * S);
	assert_true(metric(reg, "workqueue_unfinished_work_seconds{name=\"stop\"}") == 0.001);
	assert_true(metric(reg, "workqueue_longest_running_processor_seconds{name=\"stop\"}") == 0.001);
	sq_free(q);
	mc_metrics_free(reg);
}

static void test_metrics_registration(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct mc_workqueue_config cfg = { .name = "dup", .metrics = reg };
	struct sq_queue *a = sq_new(&cfg), *b;
	char *text;

	assert_non_null(a);
	errno = 0;
	b = sq_new(&cfg);
	assert_null(b);
	assert_int_equal(errno, EEXIST);
	cfg.name = "other";
	b = sq_new(&cfg);
	assert_non_null(b);
	text = mc_metrics_render(reg, NULL);
	assert_non_null(strstr(text, "workqueue_depth{name=\"dup\"} 0\nworkqueue_depth{name=\"other\"} 0\n"));
	free(text);
	sq_free(a);
	text = mc_metrics_render(reg, NULL);
	assert_null(strstr(text, "\"dup\""));
	free(text);
	sq_free(b);
	/* No name (or an empty one): no metrics, as in client-go. */
	cfg.name = "";
	b = sq_new(&cfg);
	assert_non_null(b);
	text = mc_metrics_render(reg, NULL);
	assert_string_equal(text, "");
	free(text);
	sq_free(b);
	mc_metrics_free(reg);
}

static void test_metrics_default_registry(void **state)
{
	struct mc_workqueue_config cfg = { .item_size = 4, .name = "default-reg" };
	struct mc_workqueue *q = mc_workqueue_new(&cfg);
	char *text;

	assert_non_null(q);
	text = mc_metrics_render(mc_metrics_default(), NULL);
	assert_non_null(strstr(text, "workqueue_adds_total{name=\"default-reg\"} 0\n"));
	free(text);
	mc_workqueue_free(q);
}

/* ---- configuration, ownership, item identity ---- */

static void test_config(void **state)
{
	struct mc_workqueue_config cfg = { 0 };
	struct {
		struct mc_workqueue_config cfg;
		uint64_t future_field;
	} newer = { .cfg = { .item_size = 8 }, .future_field = 0 };

	errno = 0;
	assert_null(mc_workqueue_new(&cfg));
	assert_int_equal(errno, EINVAL);
	assert_null(mc_workqueue_new(NULL));
	/* The queue owns the limiter even when it refuses the config (ASan checks the leak). */
	cfg.rate_limiter = mc_rate_limiter_exponential(MS, S);
	assert_null(mc_workqueue_new(&cfg));
	/* hash without equal */
	cfg = (struct mc_workqueue_config){ .item_size = 8, .hash = (uint64_t (*)(const void *))1 };
	assert_null(mc_workqueue_new(&cfg));
	/* A newer caller's struct: accepted while its unknown fields are zero. */
	mc_workqueue_free(mc_workqueue_new_sized(&newer.cfg, sizeof(newer)));
	newer.future_field = 1;
	errno = 0;
	assert_null(mc_workqueue_new_sized(&newer.cfg, sizeof(newer)));
	assert_int_equal(errno, EINVAL);
	mc_workqueue_free(NULL);

	assert_int_equal(mc_workqueue_add(NULL, "x"), -EINVAL);
	assert_false(mc_workqueue_get(NULL, &cfg));
	assert_int_equal(mc_workqueue_len(NULL), 0);
}

struct named {
	char name[16]; /* NUL-terminated; bytes after the NUL are garbage */
};

static uint64_t named_hash(const void *item)
{
	uint64_t h = 1469598103934665603u;

	for (const char *p = ((const struct named *)item)->name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211u;
	return h;
}

static bool named_equal(const void *a, const void *b)
{
	return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name) == 0;
}

MC_WORKQUEUE_DEFINE(nq, struct named);

static void test_custom_identity(void **state)
{
	struct mc_workqueue_config cfg = { .hash = named_hash, .equal = named_equal,
					   .rate_limiter = mc_rate_limiter_exponential(MS, S) };
	struct nq_queue *q = nq_new(&cfg);
	struct named a, b, out;

	memset(&a, 'x', sizeof(a));
	memset(&b, 'y', sizeof(b));
	strcpy(a.name, "pod-a");
	strcpy(b.name, "pod-a");
	nq_add(q, &a);
	nq_add(q, &b); /* same name: collapses */
	assert_int_equal(nq_len(q), 1);
	assert_true(nq_get(q, &out));
	assert_string_equal(out.name, "pod-a");
	nq_done(q, &b); /* done with an equal item ends a's processing */
	assert_int_equal(nq_len(q), 0);
	/* The limiter keys by the queue's identity too. */
	nq_add_rate_limited(q, &a);
	assert_int_equal(nq_num_requeues(q, &b), 1);
	nq_forget(q, &b);
	assert_int_equal(nq_num_requeues(q, &a), 0);
	nq_free(q);
}

/* The inline hash of 8-byte keys must equal the general one: a rate limiter called by the queue
 * and one called directly must find the same entry. */
static void test_hash_u64_matches_bytes(void **state)
{
	uint64_t seed = 1;

	for (int i = 0; i < 1000; i++) {
		uint64_t v = seed;

		seed = seed * 6364136223846793005u + 1442695040888963407u;
		assert_true(mci_hash_u64(&v) == mci_hash_bytes(&v, sizeof(v)));
		assert_true(mci_hash_item(&v, sizeof(v)) == mci_hash_bytes(&v, sizeof(v)));
	}
}

static void test_many_distinct_items(void **state)
{
	struct iq_queue *q = iq_new(NULL);
	int item;

	/* Enough to grow the map and the slab several times, then empty them again. */
	for (int i = 0; i < 100000; i++)
		assert_int_equal(iq_add(q, &i), 0);
	for (int i = 0; i < 100000; i += 2)
		assert_int_equal(iq_add(q, &i), 0);
	assert_int_equal(iq_len(q), 100000);
	for (int i = 0; i < 100000; i++) {
		assert_true(iq_get(q, &item));
		assert_int_equal(item, i);
		iq_done(q, &item);
	}
	assert_int_equal(iq_len(q), 0);
	iq_free(q);
}

/* ---- get and done without the lock (docs/workqueue.md, "How it works") ---- */

struct handoff {
	struct sq_queue *q;
	struct skey got;
	bool ok;
};

static void *get_one(void *arg)
{
	struct handoff *h = arg;

	h->ok = sq_get(h->q, &h->got);
	return NULL;
}

/* done() may come from another thread than get(): it takes the locked path, with the same
 * result, including the one more run of an item added while it was processing. */
static void test_done_from_another_thread(void **state)
{
	struct handoff h = { .q = sq_new(NULL) };
	pthread_t t;

	sq_add(h.q, K("foo"));
	pthread_create(&t, NULL, get_one, &h);
	pthread_join(t, NULL);
	assert_true(h.ok);
	assert_string_equal(h.got.s, "foo");
	sq_add(h.q, K("foo"));
	assert_int_equal(sq_len(h.q), 0); /* processing: its next run waits for done */
	sq_done(h.q, &h.got);
	assert_int_equal(sq_len(h.q), 1);
	expect_get(h.q, "foo");
	sq_done(h.q, K("foo"));
	sq_done(h.q, K("foo")); /* stray now: ignored */
	assert_int_equal(sq_len(h.q), 0);
	sq_free(h.q);
}

static void *drain_and_flag(void *arg)
{
	struct handoff *h = arg;

	sq_shutdown_with_drain(h->q);
	h->ok = true;
	return NULL;
}

/* An item taken without the lock is PROCESSING for a drain as much as one taken with it, and
 * the done that ends it, also without the lock, wakes the drain. */
static void test_drain_waits_for_unlocked_get(void **state)
{
	struct handoff h = { .q = sq_new(NULL) };
	struct skey k;
	pthread_t t;

	sq_add(h.q, K("foo"));
	assert_true(sq_get(h.q, &k));
	pthread_create(&t, NULL, drain_and_flag, &h);
	usleep(20000);
	assert_false(h.ok);
	sq_done(h.q, &k);
	pthread_join(t, NULL);
	assert_true(h.ok);
	sq_free(h.q);
}

/* Many items that come back: the nodes of done items stay for the next add, and enough
 * distinct ones are freed again when the slab fills (sweep_idle()), with every item still
 * running exactly when it should. */
static void test_idle_nodes_reused_and_swept(void **state)
{
	struct iq_queue *q = iq_new(NULL);
	int item;

	/* the third round brings back the first's items, the others new ones */
	static const int bases[] = { 0, 100000, 0, 200000 };

	for (int round = 0; round < 4; round++) {
		int base = bases[round];

		for (int i = 0; i < 3000; i++) {
			int v = base + i;

			assert_int_equal(iq_add(q, &v), 0);
		}
		assert_int_equal(iq_len(q), 3000);
		for (int i = 0; i < 3000; i++) {
			assert_true(iq_get(q, &item));
			assert_int_equal(item, base + i);
			iq_done(q, &item);
		}
		assert_int_equal(iq_len(q), 0);
	}
	iq_free(q);
}

/* ---- wake-ups ---- */

#define BURST_WORKERS 4

struct burst {
	struct iq_queue *q;
	atomic_int holding; /* workers holding an item at the same time */
	atomic_int timed_out;
};

/* Holds its item until every worker holds one: only possible if every worker was woken. */
static void *burst_worker(void *arg)
{
	struct burst *b = arg;
	int item;

	while (iq_get(b->q, &item)) {
		atomic_fetch_add(&b->holding, 1);
		for (int i = 0; atomic_load(&b->holding) < BURST_WORKERS; i++) {
			if (i == 5000) { /* 5 s */
				atomic_store(&b->timed_out, 1);
				break;
			}
			usleep(1000);
		}
		iq_done(b->q, &item);
	}
	return NULL;
}

/*
 * A burst of adds signals one sleeping worker, and each woken worker that leaves work behind
 * wakes the next: every sleeping worker must end up with an item.
 */
static void test_burst_wakes_every_worker(void **state)
{
	struct burst b = { .q = iq_new(NULL) };
	pthread_t w[BURST_WORKERS];

	assert_non_null(b.q);
	for (int i = 0; i < BURST_WORKERS; i++)
		pthread_create(&w[i], NULL, burst_worker, &b);
	sleep_ms(20); /* let them all fall asleep in get() */
	for (int i = 0; i < BURST_WORKERS; i++)
		assert_int_equal(iq_add(b.q, &i), 0);
	/* Not shut down before that: shutdown wakes every worker anyway. */
	while (atomic_load(&b.holding) < BURST_WORKERS && !atomic_load(&b.timed_out))
		sleep_ms(1);
	iq_shutdown_with_drain(b.q);
	for (int i = 0; i < BURST_WORKERS; i++)
		pthread_join(w[i], NULL);
	assert_false(atomic_load(&b.timed_out));
	assert_int_equal(atomic_load(&b.holding), BURST_WORKERS);
	iq_free(b.q);
}

/* The same when the burst comes due from the delay heap while every worker sleeps. */
static void test_due_burst_wakes_every_worker(void **state)
{
	struct burst b = { .q = iq_new(NULL) };
	pthread_t w[BURST_WORKERS];

	assert_non_null(b.q);
	for (int i = 0; i < BURST_WORKERS; i++)
		pthread_create(&w[i], NULL, burst_worker, &b);
	sleep_ms(20);
	for (int i = 0; i < BURST_WORKERS; i++)
		assert_int_equal(iq_add_after(b.q, &i, 10 * MS), 0);
	while (atomic_load(&b.holding) < BURST_WORKERS && !atomic_load(&b.timed_out))
		sleep_ms(1);
	iq_shutdown_with_drain(b.q);
	for (int i = 0; i < BURST_WORKERS; i++)
		pthread_join(w[i], NULL);
	assert_false(atomic_load(&b.timed_out));
	assert_int_equal(atomic_load(&b.holding), BURST_WORKERS);
	iq_free(b.q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_add_while_processing),
		cmocka_unit_test(test_add_after_shutdown),
		cmocka_unit_test(test_len),
		cmocka_unit_test(test_reinsert),
		cmocka_unit_test(test_collapse),
		cmocka_unit_test(test_collapse_keeps_place),
		cmocka_unit_test(test_collapse_while_processing),
		cmocka_unit_test(test_drain_with_shutdown_with_drain),
		cmocka_unit_test(test_no_drain_with_shutdown),
		cmocka_unit_test(test_force_shutdown),
		cmocka_unit_test(test_drain_with_dirty_item),
		cmocka_unit_test(test_drain_returns_when_idle),
		cmocka_unit_test(test_delaying_simple),
		cmocka_unit_test(test_delaying_dedupe),
		cmocka_unit_test(test_delaying_two_fire_early),
		cmocka_unit_test(test_delaying_copy_shifting),
		cmocka_unit_test(test_delaying_many_in_order),
		cmocka_unit_test(test_delaying_dropped_at_shutdown),
		cmocka_unit_test(test_delaying_wakes_blocked_getter),
		cmocka_unit_test(test_delaying_real_clock),
		cmocka_unit_test(test_rate_limiting_queue),
		cmocka_unit_test(test_default_rate_limiter),
		cmocka_unit_test(test_fix_stray_done),
		cmocka_unit_test(test_fix_add_cancels_delayed),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_metrics_done_paths),
		cmocka_unit_test(test_metrics_stop_at_shutdown),
		cmocka_unit_test(test_metrics_registration),
		cmocka_unit_test(test_metrics_default_registry),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_custom_identity),
		cmocka_unit_test(test_hash_u64_matches_bytes),
		cmocka_unit_test(test_many_distinct_items),
		cmocka_unit_test(test_done_from_another_thread),
		cmocka_unit_test(test_drain_waits_for_unlocked_get),
		cmocka_unit_test(test_idle_nodes_reused_and_swept),
		cmocka_unit_test(test_burst_wakes_every_worker),
		cmocka_unit_test(test_due_burst_wakes_every_worker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
