/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The "plain C port" anchor of BENCHMARKS.md, for workload (a) only: one adaptive mutex, one
 * condvar signalled on every add, and arrays for the dirty and processing sets over the 1e4
 * keys (no hashing). It has the queue semantics workload (a) exercises (collapse, add while
 * processing, drain) and nothing else. Run it beside workqueue_bench in the same minutes: this
 * machine's speed swings by 2-5x, so only side-by-side figures compare (bench/side-by-side.sh).
 *   naive_queue_bench [-r 1] [a]   prints workqueue_bench's line for one run of (a):
 *                                  a gets workers items_per_sec peak_rss_kb impl=naive
 * Any other workload prints nothing: the port has no delays and no rate limiter.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define KEYS 10000
#define ADDS 1000000
#define WORKERS 4

static pthread_mutex_t lock;
static pthread_cond_t work;
static int fifo[KEYS + 1];
static int head, tail, queued;
static bool dirty[KEYS], processing[KEYS], shutting_down;
static long gets;

static void push(int key)
{
	fifo[tail] = key;
	tail = (tail + 1) % (KEYS + 1);
	queued++;
	pthread_cond_signal(&work);
}

static void add(int key)
{
	pthread_mutex_lock(&lock);
	if (!shutting_down && !dirty[key]) {
		dirty[key] = true;
		if (!processing[key])
			push(key);
	}
	pthread_mutex_unlock(&lock);
}

static bool get(int *key)
{
	pthread_mutex_lock(&lock);
	while (queued == 0 && !shutting_down)
		pthread_cond_wait(&work, &lock);
	if (queued == 0) {
		pthread_mutex_unlock(&lock);
		return false;
	}
	*key = fifo[head];
	head = (head + 1) % (KEYS + 1);
	queued--;
	processing[*key] = true;
	dirty[*key] = false;
	gets++;
	pthread_mutex_unlock(&lock);
	return true;
}

static void done(int key)
{
	pthread_mutex_lock(&lock);
	processing[key] = false;
	if (dirty[key])
		push(key);
	pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
	int key;

	while (get(&key))
		done(key);
	return arg;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	pthread_mutexattr_t attr;
	pthread_t workers[WORKERS];
	struct rusage ru;
	double start, wall;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-r") == 0)
			i++; /* one run per call: the caller repeats */
		else if (strcmp(argv[i], "a") != 0)
			return 0;
	}
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&lock, &attr);
	pthread_cond_init(&work, NULL);
	start = now();
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&workers[i], NULL, worker, NULL);
	for (int i = 0; i < ADDS; i++)
		add(i % KEYS);
	/* shutdown with drain: every queued key is still handed out, then the workers leave */
	pthread_mutex_lock(&lock);
	shutting_down = true;
	pthread_cond_broadcast(&work);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(workers[i], NULL);
	wall = now() - start;
	getrusage(RUSAGE_SELF, &ru);
	printf("a %ld %d %.0f %ld impl=naive\n", gets, WORKERS, (double)gets / wall, ru.ru_maxrss);
	return 0;
}
