/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Rate limiters of client-go's util/workqueue (default_rate_limiters.go): per-item exponential
 * and fast/slow failure limiters, the overall token bucket, max-of and with-max-wait.
 *
 * Unlike client-go, per-item failure entries age out (docs/workqueue.md, fix 3): an entry with
 * no failure for `ttl` counts as forgotten and is reclaimed by an amortised sweep.
 */

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "workqueue-internal.h"

/* Grace added to twice the longest delay before an untouched entry counts as forgotten: a
 * handler that fails slowly (a long reconcile) must keep its count. */
#define ITEM_TTL_GRACE_NS (600ull * 1000000000ull)
#define SWEEP_MIN 1024u

/* ---- per-item failure table (caller holds the limiter lock) ---- */

struct failure_entry {
	uint32_t link; /* slab free list */
	uint32_t failures;
	uint64_t last_ns;
	/* the item's bytes follow */
};

#define ENTRY_KEY_OFFSET sizeof(struct failure_entry)

struct failure_table {
	struct mci_idxmap map;
	struct mci_slab slab;
	size_t key_size; /* fixed by the first failure recorded; 0 before */
	uint64_t ttl_ns;
	uint32_t sweep_at;
};

static void table_init(struct failure_table *t, uint64_t ttl_ns)
{
	mci_idxmap_init(&t->map);
	mci_slab_init(&t->slab, 0);
	t->key_size = 0;
	t->ttl_ns = ttl_ns;
	t->sweep_at = SWEEP_MIN;
}

static void table_fini(struct failure_table *t)
{
	mci_idxmap_fini(&t->map);
	mci_slab_fini(&t->slab);
}

static bool entry_stale(const struct failure_table *t, const struct failure_entry *e, uint64_t now)
{
	return now > e->last_ns && now - e->last_ns > t->ttl_ns;
}

static void table_remove_at(struct failure_table *t, uint32_t slot)
{
	mci_slab_release(&t->slab, mci_idxmap_slot_index(t->map.slots[slot]));
	mci_idxmap_remove_at(&t->map, slot);
}

/* Removes every stale entry. Backward shift may pull a not yet visited entry into slot i, so
 * slot i is looked at again after a removal. */
static void table_sweep(struct failure_table *t, uint64_t now)
{
	for (uint32_t i = 0; t->map.count && i <= t->map.mask;) {
		uint64_t v = t->map.slots[i];

		if (v && entry_stale(t, mci_slab_at(&t->slab, mci_idxmap_slot_index(v)), now))
			table_remove_at(t, i);
		else
			i++;
	}
	t->sweep_at = t->map.count * 2 > SWEEP_MIN ? t->map.count * 2 : SWEEP_MIN;
}

/* The live entry for k, or NULL (a stale one is removed on the way). */
static struct failure_entry *table_lookup(struct failure_table *t, const struct mci_key *k,
					  uint64_t now)
{
	struct failure_entry *e;
	uint32_t slot, idx;

	if (!t->map.slots || k->size != t->key_size)
		return NULL;
	idx = mci_idxmap_find(&t->map, &t->slab, ENTRY_KEY_OFFSET, k, &slot);
	if (idx == MCI_NONE)
		return NULL;
	e = mci_slab_at(&t->slab, idx);
	if (entry_stale(t, e, now)) {
		table_remove_at(t, slot);
		return NULL;
	}
	return e;
}

/* Records one more failure; returns the new count, or 0 when it cannot be recorded (no
 * memory, or an item size other than the one this limiter keys by). */
static unsigned table_fail(struct failure_table *t, const struct mci_key *k, uint64_t now)
{
	struct failure_entry *e = table_lookup(t, k, now);
	uint32_t slot, idx;

	if (e) {
		if (e->failures < UINT32_MAX)
			e->failures++;
		e->last_ns = now;
		return e->failures;
	}
	if (!t->key_size) {
		t->key_size = k->size;
		mci_slab_init(&t->slab, (ENTRY_KEY_OFFSET + k->size + 7) & ~(size_t)7);
	} else if (k->size != t->key_size) {
		return 0;
	}
	if (t->map.count >= t->sweep_at)
		table_sweep(t, now);
	if (mci_idxmap_reserve(&t->map) < 0)
		return 0;
	idx = mci_slab_alloc(&t->slab);
	if (idx == MCI_NONE)
		return 0;
	e = mci_slab_at(&t->slab, idx);
	e->failures = 1;
	e->last_ns = now;
	mci_copy_item((unsigned char *)e + ENTRY_KEY_OFFSET, k->item, k->size);
	(void)mci_idxmap_find(&t->map, &t->slab, ENTRY_KEY_OFFSET, k, &slot);
	mci_idxmap_insert_at(&t->map, slot, k->hash, idx);
	return 1;
}

static void table_forget(struct failure_table *t, const struct mci_key *k)
{
	uint32_t slot;

	if (!t->map.slots || k->size != t->key_size)
		return;
	if (mci_idxmap_find(&t->map, &t->slab, ENTRY_KEY_OFFSET, k, &slot) != MCI_NONE)
		table_remove_at(t, slot);
}

/* ---- per-item limiters: exponential and fast/slow share everything but the delay ---- */

struct item_limiter {
	struct mc_rate_limiter base;
	pthread_mutex_t lock;
	struct failure_table table;
	uint64_t (*delay)(const struct item_limiter *l, unsigned failures);
	uint64_t short_ns, long_ns; /* exponential: base, max; fast/slow: fast, slow */
	unsigned max_fast;
};

static uint64_t exponential_delay(const struct item_limiter *l, unsigned failures)
{
	unsigned exp = failures - 1;

	if (exp >= 64 || l->short_ns > (UINT64_MAX >> exp))
		return l->long_ns;
	return l->short_ns << exp < l->long_ns ? l->short_ns << exp : l->long_ns;
}

static uint64_t fast_slow_delay(const struct item_limiter *l, unsigned failures)
{
	return failures <= l->max_fast ? l->short_ns : l->long_ns;
}

static struct item_limiter *item_of(struct mc_rate_limiter *rl)
{
	return (struct item_limiter *)rl;
}

static uint64_t item_when(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	struct item_limiter *l = item_of(rl);
	uint64_t now = mci_clock_now(&rl->clock);
	unsigned failures;

	pthread_mutex_lock(&l->lock);
	failures = table_fail(&l->table, k, now);
	pthread_mutex_unlock(&l->lock);
	/* Unrecorded failure: back off as far as this limiter ever does rather than hot-loop. */
	return failures ? l->delay(l, failures) : l->long_ns;
}

static void item_forget(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	struct item_limiter *l = item_of(rl);

	pthread_mutex_lock(&l->lock);
	table_forget(&l->table, k);
	pthread_mutex_unlock(&l->lock);
}

static unsigned item_num_requeues(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	struct item_limiter *l = item_of(rl);
	uint64_t now = mci_clock_now(&rl->clock);
	const struct failure_entry *e;
	unsigned n;

	pthread_mutex_lock(&l->lock);
	e = table_lookup(&l->table, k, now);
	n = e ? e->failures : 0;
	pthread_mutex_unlock(&l->lock);
	return n;
}

static void own_set_clock(struct mc_rate_limiter *rl, const struct mc_clock *clock)
{
	rl->clock = clock ? *clock : (struct mc_clock){ 0 };
}

static size_t item_entries(struct mc_rate_limiter *rl)
{
	struct item_limiter *l = item_of(rl);
	size_t n;

	pthread_mutex_lock(&l->lock);
	n = l->table.map.count;
	pthread_mutex_unlock(&l->lock);
	return n;
}

static void item_free(struct mc_rate_limiter *rl)
{
	struct item_limiter *l = item_of(rl);

	table_fini(&l->table);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static const struct mci_rate_limiter_ops item_ops = {
	.when = item_when,
	.forget = item_forget,
	.num_requeues = item_num_requeues,
	.set_clock = own_set_clock,
	.entries = item_entries,
	.free = item_free,
};

static struct mc_rate_limiter *item_limiter_new(uint64_t (*delay)(const struct item_limiter *,
								   unsigned),
						uint64_t short_ns, uint64_t long_ns,
						unsigned max_fast)
{
	struct item_limiter *l = calloc(1, sizeof(*l));
	uint64_t longest = short_ns > long_ns ? short_ns : long_ns;

	if (!l)
		return NULL;
	l->base.ops = &item_ops;
	mci_mutex_init_adaptive(&l->lock);
	table_init(&l->table, mci_add_sat(mci_add_sat(longest, longest), ITEM_TTL_GRACE_NS));
	l->delay = delay;
	l->short_ns = short_ns;
	l->long_ns = long_ns;
	l->max_fast = max_fast;
	return &l->base;
}

struct mc_rate_limiter *mc_rate_limiter_exponential(uint64_t base_ns, uint64_t max_ns)
{
	return item_limiter_new(exponential_delay, base_ns, max_ns, 0);
}

struct mc_rate_limiter *mc_rate_limiter_fast_slow(uint64_t fast_ns, uint64_t slow_ns,
						  unsigned max_fast_attempts)
{
	return item_limiter_new(fast_slow_delay, fast_ns, slow_ns, max_fast_attempts);
}

/* ---- token bucket (golang.org/x/time/rate reservation semantics) ---- */

struct bucket_limiter {
	struct mc_rate_limiter base;
	pthread_mutex_t lock;
	double qps, burst, tokens;
	uint64_t last_ns;
	bool started;
};

static uint64_t bucket_when(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	struct bucket_limiter *b = (struct bucket_limiter *)rl;
	uint64_t now = mci_clock_now(&rl->clock);
	double wait_s;

	pthread_mutex_lock(&b->lock);
	if (!b->started) {
		b->started = true;
		b->last_ns = now;
	} else if (now > b->last_ns) {
		b->tokens += (double)(now - b->last_ns) * b->qps / 1e9;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ns = now;
	}
	b->tokens -= 1;
	wait_s = b->tokens < 0 ? -b->tokens / b->qps : 0;
	pthread_mutex_unlock(&b->lock);
	return wait_s * 1e9 >= (double)UINT64_MAX ? UINT64_MAX : (uint64_t)(wait_s * 1e9);
}

static void bucket_forget(struct mc_rate_limiter *rl, const struct mci_key *k)
{
}

static unsigned bucket_num_requeues(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	return 0;
}

static size_t bucket_entries(struct mc_rate_limiter *rl)
{
	return 0;
}

static void bucket_free(struct mc_rate_limiter *rl)
{
	struct bucket_limiter *b = (struct bucket_limiter *)rl;

	pthread_mutex_destroy(&b->lock);
	free(b);
}

static const struct mci_rate_limiter_ops bucket_ops = {
	.when = bucket_when,
	.forget = bucket_forget,
	.num_requeues = bucket_num_requeues,
	.set_clock = own_set_clock,
	.entries = bucket_entries,
	.free = bucket_free,
};

struct mc_rate_limiter *mc_rate_limiter_bucket(double qps, unsigned burst)
{
	struct bucket_limiter *b;

	if (!(qps > 0) || !isfinite(qps) || burst == 0) {
		errno = EINVAL;
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->base.ops = &bucket_ops;
	pthread_mutex_init(&b->lock, NULL);
	b->qps = qps;
	b->burst = b->tokens = burst; /* a new bucket starts full */
	return &b->base;
}

/* ---- max-of ---- */

struct max_of_limiter {
	struct mc_rate_limiter base;
	size_t n;
	struct mc_rate_limiter *sub[];
};

static struct max_of_limiter *max_of(struct mc_rate_limiter *rl)
{
	return (struct max_of_limiter *)rl;
}

static uint64_t max_of_when(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	uint64_t d = 0;

	/* Every limiter is asked: each records the failure. */
	for (size_t i = 0; i < max_of(rl)->n; i++) {
		uint64_t s = mci_rate_limiter_when(max_of(rl)->sub[i], k);

		d = s > d ? s : d;
	}
	return d;
}

static void max_of_forget(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	for (size_t i = 0; i < max_of(rl)->n; i++)
		mci_rate_limiter_forget(max_of(rl)->sub[i], k);
}

static unsigned max_of_num_requeues(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	unsigned n = 0;

	for (size_t i = 0; i < max_of(rl)->n; i++) {
		unsigned s = mci_rate_limiter_num_requeues(max_of(rl)->sub[i], k);

		n = s > n ? s : n;
	}
	return n;
}

static void max_of_set_clock(struct mc_rate_limiter *rl, const struct mc_clock *clock)
{
	own_set_clock(rl, clock);
	for (size_t i = 0; i < max_of(rl)->n; i++)
		mc_rate_limiter_set_clock(max_of(rl)->sub[i], clock);
}

static size_t max_of_entries(struct mc_rate_limiter *rl)
{
	size_t n = 0;

	for (size_t i = 0; i < max_of(rl)->n; i++)
		n += mci_rate_limiter_entries(max_of(rl)->sub[i]);
	return n;
}

static void max_of_free(struct mc_rate_limiter *rl)
{
	for (size_t i = 0; i < max_of(rl)->n; i++)
		mc_rate_limiter_free(max_of(rl)->sub[i]);
	free(rl);
}

static const struct mci_rate_limiter_ops max_of_ops = {
	.when = max_of_when,
	.forget = max_of_forget,
	.num_requeues = max_of_num_requeues,
	.set_clock = max_of_set_clock,
	.entries = max_of_entries,
	.free = max_of_free,
};

struct mc_rate_limiter *mc_rate_limiter_max_of(struct mc_rate_limiter *const *limiters, size_t n)
{
	struct max_of_limiter *m = NULL;
	int err = EINVAL;

	if (limiters && n > 0 && n <= (SIZE_MAX - sizeof(*m)) / sizeof(m->sub[0])) {
		bool complete = true;

		for (size_t i = 0; i < n; i++)
			complete = complete && limiters[i];
		if (complete) {
			m = malloc(sizeof(*m) + n * sizeof(m->sub[0]));
			err = ENOMEM;
		}
	}
	if (!m) {
		for (size_t i = 0; limiters && i < n; i++)
			mc_rate_limiter_free(limiters[i]);
		errno = err;
		return NULL;
	}
	m->base = (struct mc_rate_limiter){ .ops = &max_of_ops };
	m->n = n;
	memcpy(m->sub, limiters, n * sizeof(m->sub[0]));
	return &m->base;
}

/* ---- with-max-wait ---- */

struct max_wait_limiter {
	struct mc_rate_limiter base;
	struct mc_rate_limiter *inner;
	uint64_t max_ns;
};

static struct max_wait_limiter *max_wait(struct mc_rate_limiter *rl)
{
	return (struct max_wait_limiter *)rl;
}

static uint64_t max_wait_when(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	uint64_t d = mci_rate_limiter_when(max_wait(rl)->inner, k);

	return d < max_wait(rl)->max_ns ? d : max_wait(rl)->max_ns;
}

static void max_wait_forget(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	mci_rate_limiter_forget(max_wait(rl)->inner, k);
}

static unsigned max_wait_num_requeues(struct mc_rate_limiter *rl, const struct mci_key *k)
{
	return mci_rate_limiter_num_requeues(max_wait(rl)->inner, k);
}

static void max_wait_set_clock(struct mc_rate_limiter *rl, const struct mc_clock *clock)
{
	own_set_clock(rl, clock);
	mc_rate_limiter_set_clock(max_wait(rl)->inner, clock);
}

static size_t max_wait_entries(struct mc_rate_limiter *rl)
{
	return mci_rate_limiter_entries(max_wait(rl)->inner);
}

static void max_wait_free(struct mc_rate_limiter *rl)
{
	mc_rate_limiter_free(max_wait(rl)->inner);
	free(rl);
}

static const struct mci_rate_limiter_ops max_wait_ops = {
	.when = max_wait_when,
	.forget = max_wait_forget,
	.num_requeues = max_wait_num_requeues,
	.set_clock = max_wait_set_clock,
	.entries = max_wait_entries,
	.free = max_wait_free,
};

struct mc_rate_limiter *mc_rate_limiter_with_max_wait(struct mc_rate_limiter *inner,
						      uint64_t max_ns)
{
	struct max_wait_limiter *w;

	if (!inner) {
		errno = EINVAL;
		return NULL;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		mc_rate_limiter_free(inner);
		errno = ENOMEM;
		return NULL;
	}
	*w = (struct max_wait_limiter){ .base.ops = &max_wait_ops, .inner = inner, .max_ns = max_ns };
	return &w->base;
}

struct mc_rate_limiter *mc_rate_limiter_default_controller(void)
{
	struct mc_rate_limiter *sub[2] = {
		mc_rate_limiter_exponential(5000000ull, 1000ull * 1000000000ull),
		mc_rate_limiter_bucket(10, 100),
	};

	/* max_of frees whichever one was made if the other failed. */
	return mc_rate_limiter_max_of(sub, 2);
}

/* ---- public entry points: bytewise keys ---- */

static struct mci_key bytes_key(const void *item, size_t item_size)
{
	return (struct mci_key){ .item = item, .size = item_size,
				 .hash = mci_hash_item(item, item_size) };
}

uint64_t mc_rate_limiter_when(struct mc_rate_limiter *rl, const void *item, size_t item_size)
{
	struct mci_key k;

	if (!rl || !item || !item_size)
		return 0;
	k = bytes_key(item, item_size);
	return mci_rate_limiter_when(rl, &k);
}

void mc_rate_limiter_forget(struct mc_rate_limiter *rl, const void *item, size_t item_size)
{
	struct mci_key k;

	if (!rl || !item || !item_size)
		return;
	k = bytes_key(item, item_size);
	mci_rate_limiter_forget(rl, &k);
}

unsigned mc_rate_limiter_num_requeues(struct mc_rate_limiter *rl, const void *item,
				      size_t item_size)
{
	struct mci_key k;

	if (!rl || !item || !item_size)
		return 0;
	k = bytes_key(item, item_size);
	return mci_rate_limiter_num_requeues(rl, &k);
}

void mc_rate_limiter_set_clock(struct mc_rate_limiter *rl, const struct mc_clock *clock)
{
	if (rl)
		rl->ops->set_clock(rl, clock);
}

size_t mci_rate_limiter_entries(struct mc_rate_limiter *rl)
{
	return rl->ops->entries(rl);
}

void mc_rate_limiter_free(struct mc_rate_limiter *rl)
{
	if (rl)
		rl->ops->free(rl);
}
