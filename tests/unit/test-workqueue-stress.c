/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * 16 threads hammering one queue (8 adding in every way, 8 working), meant to run under TSan
 * too. Checks the two promises that matter: a key is never held by two workers at once, and
 * every add is followed by a run that starts after it (nothing is lost).
 */

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include <meshcrypt/workqueue.h>

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
		if (k % 5 == 0 && kq_num_requeues(st->q, &k) < 3)
			(void)kq_add_rate_limited(st->q, &k); /* a failed run: retried, then given up */
		else
			kq_forget(st->q, &k);
		kq_done(st->q, &k);
	}
	return NULL;
}

static void test_stress(void **state)
{
	struct stress *st = calloc(1, sizeof(*st));
	struct mc_workqueue_config cfg = {
		.name = "stress", /* the metrics bookkeeping runs under the same load */
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
	kq_free(st->q);
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
