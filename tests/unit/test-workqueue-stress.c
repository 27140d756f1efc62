/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * 16 threads hammering one queue (8 adding in every way, 8 working), meant to run under TSan
 * too. Checks the two promises that matter: a key is never held by two workers at once, and
 * every add is followed by a run that starts after it (nothing is lost). Once with metrics off
 * and once on (the daemon's configuration), which must then add up: every get counted once in
 * queue_duration and every done once in work_duration, depth back to 0.
 */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include <meshcrypt/metrics.h>
#include <meshcrypt/workqueue.h>

#include "metric-sample.h"

#define KEYS 64
#define PRODUCERS 8
#define WORKERS 8
#define OPS_PER_PRODUCER 4000

MC_WORKQUEUE_DEFINE(kq, uint32_t);

struct stress {
	struct kq_queue *q;
	/* Bumped before every add of a key; a run records the value it saw when it began. */
	atomic_uint add_gen[KEYS];
	atomic_uint run_gen[KEYS];
	atomic_int in_flight[KEYS];
	atomic_int overlap;
	atomic_int add_errors;
	atomic_uint seed;
	atomic_uint runs;
};

static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void *producer(void *arg)
{
	struct stress *st = arg;
	uint32_t s = atomic_fetch_add(&st->seed, 7919) | 1;

	for (int i = 0; i < OPS_PER_PRODUCER; i++) {
		uint32_t r = next_rand(&s), k = r % KEYS;
		int err = 0;

		switch ((r >> 8) % 8) {
		case 0:
		case 1:
		case 2:
			atomic_fetch_add(&st->add_gen[k], 1);
			err = kq_add(st->q, &k);
			break;
		case 3:
		case 4:
			atomic_fetch_add(&st->add_gen[k], 1);
			err = kq_add_after(st->q, &k, (r >> 16) % 200000); /* < 0.2 ms */
			break;
		case 5:
			atomic_fetch_add(&st->add_gen[k], 1);
			err = kq_add_rate_limited(st->q, &k);
			break;
		case 6:
			kq_forget(st->q, &k);
			(void)kq_num_requeues(st->q, &k);
			break;
		default:
			(void)kq_len(st->q);
			break;
		}
		if (err)
			atomic_store(&st->add_errors, 1);
	}
	return NULL;
}

static void *worker(void *arg)
{
	struct stress *st = arg;
	uint32_t k;

	while (kq_get(st->q, &k)) {
		if (atomic_exchange(&st->in_flight[k], 1))
			atomic_store(&st->overlap, 1);
		atomic_store(&st->run_gen[k], atomic_load(&st->add_gen[k]));
		atomic_store(&st->in_flight[k], 0);
		atomic_fetch_add(&st->runs, 1);
		if (k % 5 == 0 && kq_num_requeues(st->q, &k) < 3)
			(void)kq_add_rate_limited(st->q, &k); /* a failed run: retried, then given up */
		else
			kq_forget(st->q, &k);
		kq_done(st->q, &k);
	}
	return NULL;
}

static void stress(struct mc_metrics *reg)
{
	struct stress *st = calloc(1, sizeof(*st));
	struct mc_workqueue_config cfg = {
		.name = reg ? "stress" : NULL,
		.metrics = reg,
		.rate_limiter = mc_rate_limiter_exponential(1000, 100000), /* 1 us .. 0.1 ms */
	};
	pthread_t p[PRODUCERS], w[WORKERS];

	assert_non_null(st);
	st->q = kq_new(&cfg);
	assert_non_null(st->q);
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&w[i], NULL, worker, st);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_create(&p[i], NULL, producer, st);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(p[i], NULL);
	/* Every key whose last run has not yet seen its last add must still be pending: wait
	 * for the runs (delays are below a millisecond; sanitizers make everything slower). */
	for (int tries = 0; tries < 20000; tries++) {
		bool settled = true;

		for (int k = 0; k < KEYS; k++)
			settled = settled &&
				  atomic_load(&st->run_gen[k]) == atomic_load(&st->add_gen[k]);
		if (settled)
			break;
		usleep(500);
	}
	kq_shutdown_with_drain(st->q);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(w[i], NULL);
	for (int k = 0; k < KEYS; k++)
		assert_int_equal(atomic_load(&st->run_gen[k]), atomic_load(&st->add_gen[k]));
	assert_false(atomic_load(&st->overlap));
	assert_false(atomic_load(&st->add_errors));
	assert_int_equal(kq_len(st->q), 0);
	if (reg) {
		double runs = atomic_load(&st->runs);

		assert_true(metric(reg, "workqueue_queue_duration_seconds_count{name=\"stress\"}") ==
			    runs);
		assert_true(metric(reg, "workqueue_work_duration_seconds_count{name=\"stress\"}") ==
			    runs);
		/* Every add that made a key DIRTY was followed by exactly one get. */
		assert_true(metric(reg, "workqueue_adds_total{name=\"stress\"}") == runs);
		assert_true(metric(reg, "workqueue_depth{name=\"stress\"}") == 0);
	}
	kq_free(st->q);
	free(st);
}

static void test_stress(void **state)
{
	stress(NULL);
}

static void test_stress_metrics(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();

	assert_non_null(reg);
	stress(reg);
	mc_metrics_free(reg);
}

/* ---- adds racing shutdown ---- */

#define RACE_PRODUCERS 4
#define RACE_KEYS_EACH 50000u
#define RACE_ROUNDS 10

struct race {
	struct kq_queue *q;
	atomic_uchar *accepted, *ran; /* per key */
	atomic_uint next_producer;
	atomic_int started;
};

static void *race_producer(void *arg)
{
	struct race *rc = arg;
	uint32_t first = atomic_fetch_add(&rc->next_producer, 1) * RACE_KEYS_EACH;

	atomic_fetch_add(&rc->started, 1);
	for (uint32_t k = first; k < first + RACE_KEYS_EACH; k++) {
		int r = kq_add(rc->q, &k);

		if (r == 0)
			atomic_store(&rc->accepted[k], 1);
		else if (r != -ESHUTDOWN)
			atomic_store(&rc->accepted[k], 2);
	}
	return NULL;
}

static void *race_worker(void *arg)
{
	struct race *rc = arg;
	uint32_t k;

	while (kq_get(rc->q, &k)) {
		atomic_fetch_add(&rc->ran[k], 1);
		kq_done(rc->q, &k);
	}
	return NULL;
}

/* An add that returned 0 is run even when shutdown came in the middle of it; one that was
 * refused is not. The adds go through the lock-free log, so this is the log's promise.
 * Returns whether the shutdown landed in the middle of the adds. */
static bool race_round(unsigned round)
{
	const uint32_t keys = RACE_PRODUCERS * RACE_KEYS_EACH;
	struct race rc = { 0 };
	struct mc_workqueue_config cfg = { 0 };
	pthread_t p[RACE_PRODUCERS], w[WORKERS];
	size_t accepted = 0;

	rc.q = kq_new(&cfg);
	rc.accepted = calloc(keys, 1);
	rc.ran = calloc(keys, 1);
	assert_non_null(rc.q);
	assert_non_null(rc.accepted);
	assert_non_null(rc.ran);
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&w[i], NULL, race_worker, &rc);
	for (int i = 0; i < RACE_PRODUCERS; i++)
		pthread_create(&p[i], NULL, race_producer, &rc);
	while (atomic_load(&rc.started) < RACE_PRODUCERS)
		usleep(100);
	usleep(200 * round);
	kq_shutdown_with_drain(rc.q);
	for (int i = 0; i < RACE_PRODUCERS; i++)
		pthread_join(p[i], NULL);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(w[i], NULL);
	for (uint32_t k = 0; k < keys; k++) {
		assert_int_not_equal(atomic_load(&rc.accepted[k]), 2);
		assert_int_equal(atomic_load(&rc.ran[k]), atomic_load(&rc.accepted[k]));
		accepted += atomic_load(&rc.accepted[k]);
	}
	assert_int_equal(kq_len(rc.q), 0);
	kq_free(rc.q);
	free(rc.accepted);
	free(rc.ran);
	return accepted < keys;
}

/* On two busy cores the shutdown can come after every add (it may wait tens of milliseconds
 * for its turn on the lock): such rounds check nothing and do not count. */
static void test_adds_racing_shutdown(void **state)
{
	unsigned landed = 0;

	for (unsigned round = 0; round < 4 * RACE_ROUNDS && landed < RACE_ROUNDS; round++)
		landed += race_round(round % RACE_ROUNDS);
	assert_int_equal(landed, RACE_ROUNDS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_stress_metrics),
		cmocka_unit_test(test_adds_racing_shutdown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
