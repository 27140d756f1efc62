/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Work queue benchmark: the fixed workloads of BENCHMARKS.md, comparable with client-go's
 * util/workqueue. Each run of a workload happens in its own child process, so peak_rss_kb is
 * that workload's alone; every run checks its own result and the program fails if one is wrong.
 *
 *   workqueue_bench [-m] [-r RUNS] [a|b|c|d|mem ...]
 *
 * -m names the queues, which turns their metrics on as in the daemon (metrics=on in the line).
 *
 * prints, per workload, the run with the median items/s:
 *   name items workers items_per_sec peak_rss_kb key=value...
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <meshcrypt/workqueue.h>

MC_WORKQUEUE_DEFINE(key, uint64_t);

struct result {
	uint64_t items;
	unsigned workers;
	double items_per_sec;
	long peak_rss_kb;
	char extra[160];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long peak_rss_kb(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static long current_rss_kb(void)
{
	long pages = -1, rss = -1;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = -1;
		fclose(f);
	}
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void die(const char *what)
{
	fprintf(stderr, "workqueue_bench: %s\n", what);
	exit(1);
}

static void start_threads(pthread_t *t, unsigned n, void *(*fn)(void *), void *arg)
{
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&t[i], NULL, fn, arg) != 0)
			die("pthread_create failed");
	}
}

static void join_threads(pthread_t *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Shared state of one run. seen[k] counts the runs of key k. */
struct run {
	struct key_queue *q;
	uint64_t target; /* completions that end the timed part (c, d); 0: not counted (a, b) */
	/* Counters the workers write, each on its own cache line: sharing one with q, which the
	 * producers read on every add, made the bench measure its own false sharing. */
	_Alignas(64) atomic_uint_fast64_t gets;
	_Alignas(64) atomic_uint_fast64_t completions;
	atomic_uint_fast64_t finished_ns;
	atomic_uint *seen;
	atomic_uchar *in_flight; /* a key handed to two workers at once shows up here */
	atomic_int overlap;
	uint64_t next_key;
	pthread_mutex_t lock;
};

static void complete(struct run *r)
{
	if (atomic_fetch_add(&r->completions, 1) + 1 == r->target)
		atomic_store(&r->finished_ns, now_ns());
}

/* get -> done; counts each key's runs and completes every item (a, b, c). */
static void *plain_worker(void *arg)
{
	struct run *r = arg;
	struct key_queue *q = r->q;
	uint64_t k, gets = 0;

	/* Gets are counted locally: one counter bumped per item by every worker is a contended line
	 * that the naive port, which counts under its lock, does not have. */
	while (key_get(q, &k)) {
		if (atomic_exchange(&r->in_flight[k], 1))
			atomic_store(&r->overlap, 1);
		atomic_fetch_add(&r->seen[k], 1);
		gets++;
		atomic_store(&r->in_flight[k], 0);
		key_done(q, &k);
		if (r->target)
			complete(r);
	}
	atomic_fetch_add(&r->gets, gets);
	return NULL;
}

#define A_ADDS 1000000u
#define A_KEYS 10000u
#define B_KEYS 1000000u
#define B_THREADS 8u
#define C_KEYS 100000u
#define D_KEYS 100000u

/* -m: the daemon's configuration, a named queue with its metrics on (default registry). */
static bool metrics_on;

static struct run *run_new(size_t keys, struct mc_rate_limiter *rl)
{
	struct run *r = aligned_alloc(_Alignof(struct run), sizeof(struct run));
	struct mc_workqueue_config cfg = { .rate_limiter = rl, .name = metrics_on ? "bench" : NULL };

	if (!r)
		die("out of memory");
	memset(r, 0, sizeof(*r));
	r->seen = calloc(keys, sizeof(*r->seen));
	r->in_flight = calloc(keys, sizeof(*r->in_flight));
	r->q = key_new(&cfg);
	if (!r->seen || !r->in_flight || !r->q)
		die("cannot create the queue");
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

static void run_free(struct run *r)
{
	key_free(r->q);
	free(r->seen);
	free(r->in_flight);
	free(r);
}

static void workload_a(struct result *res)
{
	struct run *r = run_new(A_KEYS, NULL);
	pthread_t w[4];
	uint64_t t0, t1, t2;

	t0 = now_ns();
	start_threads(w, 4, plain_worker, r);
	for (uint64_t i = 0; i < A_ADDS; i++) {
		uint64_t k = i % A_KEYS;

		if (key_add(r->q, &k) < 0)
			die("add failed");
	}
	t1 = now_ns();
	key_shutdown_with_drain(r->q);
	join_threads(w, 4);
	t2 = now_ns();
	/* Every key was added after its previous run began, so each ran at least once. */
	for (unsigned k = 0; k < A_KEYS; k++) {
		if (!atomic_load(&r->seen[k]))
			die("(a) a key was never processed");
	}
	if (key_len(r->q) || atomic_load(&r->overlap))
		die("(a) queue not empty or a key ran twice at once");
	res->items = atomic_load(&r->gets);
	res->workers = 4;
	res->items_per_sec = (double)res->items * 1e9 / (double)(t2 - t0);
	snprintf(res->extra, sizeof(res->extra), "adds_per_sec=%.0f",
		 (double)A_ADDS * 1e9 / (double)(t1 - t0));
	run_free(r);
}

static void *b_producer(void *arg)
{
	struct run *r = arg;
	uint64_t first;

	pthread_mutex_lock(&r->lock);
	first = r->next_key;
	r->next_key += B_KEYS / B_THREADS;
	pthread_mutex_unlock(&r->lock);
	for (uint64_t k = first; k < first + B_KEYS / B_THREADS; k++) {
		if (key_add(r->q, &k) < 0)
			die("add failed");
	}
	return NULL;
}

static void workload_b(struct result *res)
{
	struct run *r = run_new(B_KEYS, NULL);
	pthread_t w[B_THREADS], p[B_THREADS];
	uint64_t t0, t1;

	t0 = now_ns();
	start_threads(w, B_THREADS, plain_worker, r);
	start_threads(p, B_THREADS, b_producer, r);
	join_threads(p, B_THREADS);
	key_shutdown_with_drain(r->q);
	join_threads(w, B_THREADS);
	t1 = now_ns();
	for (unsigned k = 0; k < B_KEYS; k++) {
		if (atomic_load(&r->seen[k]) != 1)
			die("(b) a key did not run exactly once");
	}
	res->items = atomic_load(&r->gets);
	res->workers = B_THREADS;
	res->items_per_sec = (double)res->items * 1e9 / (double)(t1 - t0);
	run_free(r);
}

static void workload_c(struct result *res)
{
	struct run *r = run_new(C_KEYS, NULL);
	uint64_t seed = 42, t0;
	pthread_t w[4];

	r->target = C_KEYS;
	t0 = now_ns();
	start_threads(w, 4, plain_worker, r);
	for (uint64_t k = 0; k < C_KEYS; k++) {
		if (key_add_after(r->q, &k, splitmix64(&seed) % 1000000u) < 0)
			die("add_after failed");
	}
	while (atomic_load(&r->completions) < C_KEYS)
		usleep(100);
	key_shutdown(r->q);
	join_threads(w, 4);
	for (unsigned k = 0; k < C_KEYS; k++) {
		if (atomic_load(&r->seen[k]) != 1)
			die("(c) a key did not run exactly once");
	}
	res->items = C_KEYS;
	res->workers = 4;
	res->items_per_sec = (double)C_KEYS * 1e9 / (double)(atomic_load(&r->finished_ns) - t0);
	run_free(r);
}

/* Attempts 1 and 2 fail (add_rate_limited, done); attempt 3 succeeds (forget, done). */
static void *d_worker(void *arg)
{
	struct run *r = arg;
	uint64_t k;

	while (key_get(r->q, &k)) {
		unsigned attempt = key_num_requeues(r->q, &k);

		atomic_fetch_add(&r->seen[k], 1);
		atomic_fetch_add(&r->gets, 1);
		if (attempt < 3) {
			if (key_add_rate_limited(r->q, &k) < 0)
				die("add_rate_limited failed");
			key_done(r->q, &k);
		} else {
			key_forget(r->q, &k);
			key_done(r->q, &k);
			complete(r);
		}
	}
	return NULL;
}

static void workload_d(struct result *res)
{
	struct mc_rate_limiter *rl = mc_rate_limiter_exponential(1000, 1000000);
	struct run *r = run_new(D_KEYS, rl);
	pthread_t w[4];
	uint64_t t0;

	r->target = D_KEYS;
	t0 = now_ns();
	start_threads(w, 4, d_worker, r);
	for (uint64_t k = 0; k < D_KEYS; k++) {
		if (key_add_rate_limited(r->q, &k) < 0)
			die("add_rate_limited failed");
	}
	while (atomic_load(&r->completions) < D_KEYS)
		usleep(100);
	key_shutdown(r->q);
	join_threads(w, 4);
	for (unsigned k = 0; k < D_KEYS; k++) {
		if (atomic_load(&r->seen[k]) != 3 || key_num_requeues(r->q, &(uint64_t){ k }))
			die("(d) a key did not take exactly three attempts and a forget");
	}
	res->items = D_KEYS;
	res->workers = 4;
	res->items_per_sec = (double)D_KEYS * 1e9 / (double)(atomic_load(&r->finished_ns) - t0);
	snprintf(res->extra, sizeof(res->extra), "gets=%" PRIu64, (uint64_t)atomic_load(&r->gets));
	run_free(r);
}

/* Memory per queued item: 1e6 distinct keys queued, nobody taking them. */
static void workload_mem(struct result *res)
{
	struct mc_workqueue_config cfg = { 0 };
	struct key_queue *q;
	long before, after;
	uint64_t t0, t1;

	before = current_rss_kb();
	q = key_new(&cfg);
	if (!q)
		die("cannot create the queue");
	t0 = now_ns();
	for (uint64_t k = 0; k < B_KEYS; k++) {
		if (key_add(q, &k) < 0)
			die("add failed");
	}
	t1 = now_ns();
	after = current_rss_kb();
	if (key_len(q) != B_KEYS)
		die("(mem) wrong length");
	res->items = B_KEYS;
	res->workers = 0;
	res->items_per_sec = (double)B_KEYS * 1e9 / (double)(t1 - t0);
	snprintf(res->extra, sizeof(res->extra), "bytes_per_item=%.1f item_size=%zu",
		 (double)(after - before) * 1024.0 / B_KEYS - (double)sizeof(uint64_t),
		 sizeof(uint64_t));
	key_free(q);
}

static const struct workload {
	const char *name;
	void (*fn)(struct result *res);
} workloads[] = {
	{ "a", workload_a }, { "b", workload_b }, { "c", workload_c },
	{ "d", workload_d }, { "mem", workload_mem },
};

/* Runs one workload in a child; the result comes back through a pipe. */
static int run_once(const struct workload *wl, struct result *res)
{
	int fds[2], status;
	pid_t pid;
	ssize_t n;

	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct result r = { 0 };

		close(fds[0]);
		wl->fn(&r);
		r.peak_rss_kb = peak_rss_kb();
		_exit(write(fds[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(fds[1]);
	n = read(fds[0], res, sizeof(*res));
	close(fds[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    n != (ssize_t)sizeof(*res))
		return -EIO;
	return 0;
}

static int by_rate(const void *a, const void *b)
{
	const struct result *x = a, *y = b;

	return (x->items_per_sec > y->items_per_sec) - (x->items_per_sec < y->items_per_sec);
}

int main(int argc, char **argv)
{
	unsigned runs = 1;
	int opt, first;

	while ((opt = getopt(argc, argv, "mr:")) != -1) {
		if (opt == 'm') {
			metrics_on = true;
			continue;
		}
		if (opt != 'r' || atoi(optarg) < 1) {
			fprintf(stderr, "usage: %s [-m] [-r RUNS] [a|b|c|d|mem ...]\n", argv[0]);
			return 2;
		}
		runs = (unsigned)atoi(optarg);
	}
	first = optind;
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++) {
		struct result *res;
		bool wanted = first == argc;

		for (int a = first; a < argc; a++)
			wanted = wanted || strcmp(argv[a], workloads[i].name) == 0;
		if (!wanted)
			continue;
		res = calloc(runs, sizeof(*res));
		if (!res)
			die("out of memory");
		for (unsigned r = 0; r < runs; r++) {
			if (run_once(&workloads[i], &res[r]) < 0) {
				fprintf(stderr, "workqueue_bench: workload %s failed\n",
					workloads[i].name);
				return 1;
			}
		}
		qsort(res, runs, sizeof(*res), by_rate);
		printf("%s %" PRIu64 " %u %.0f %ld runs=%u min=%.0f max=%.0f metrics=%s%s%s\n",
		       workloads[i].name, res[runs / 2].items, res[runs / 2].workers,
		       res[runs / 2].items_per_sec, res[runs / 2].peak_rss_kb, runs,
		       res[0].items_per_sec, res[runs - 1].items_per_sec, metrics_on ? "on" : "off",
		       res[runs / 2].extra[0] ? " " : "", res[runs / 2].extra);
		fflush(stdout);
		free(res);
	}
	return 0;
}
