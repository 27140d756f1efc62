/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The work queue: client-go's rate-limiting, delaying FIFO with dirty and processing sets, as
 * one structure under one adaptive mutex, with its three hot paths off the lock
 * (docs/workqueue.md).
 *
 * Every known item has one node in a slab, found through one open-addressing map, and a state
 * made of three bits: DIRTY (needs a run), PROCESSING (a worker holds it), WAITING (in the
 * delay heap). A DIRTY item that is not PROCESSING is queued: in the ready ring, or after it in
 * the overflow FIFO. DIRTY and WAITING never hold together: an item has at most one pending run.
 *
 * The add calls (add, add_after, add_rate_limited) do not take the lock: they append to a
 * bounded lock-free log that the next lock holder applies first, in order ("the add log").
 * get takes the ready ring's head without the lock, claiming the node with a CAS of its state
 * ("the ready ring"), and done of the item the thread got last clears PROCESSING with a CAS
 * (done_fast()). The lock serialises the rest: applying the log, the map, the heap, moving
 * items into the ring, sleeping and waking. Metrics take the same paths: get and done count in
 * per-thread stripes that a scrape sums ("metrics").
 *
 * There is no delay thread. Items whose ready time has come are moved from the heap to the
 * queue by whoever takes the lock next and looks (add, get, done, len, a metrics render), in
 * ready-time order, so the result is what a timer thread would have produced. An idle worker
 * sleeps until the earliest ready time, so a due item never waits for a later event.
 *
 * Idle workers sleep on a condition variable. A call that leaves work queued signals one
 * sleeping worker unless one is already being woken, and a woken worker that leaves work behind
 * wakes the next (wake_one()); the signal is sent after the lock is released. Workers neither
 * spin nor yield before they sleep: with more threads than cores a spinning worker takes the
 * producer's core, and a yield costs a lock round trip when a core is free (docs/performance.md).
 */

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <meshcrypt/metrics.h>

#include "workqueue-internal.h"

enum {
	ST_DIRTY = 1,
	ST_PROCESSING = 2,
	ST_WAITING = 4,
	ST_FREE = 8, /* on the slab's free list */
	ST_FLAGS = 0xff,
	/* Above the flags, a generation counted up each time the node becomes queued (DIRTY and
	 * not PROCESSING), in the same atomic step: see "the ready ring". */
	ST_GEN_SHIFT = 8,
	ST_GEN_ONE = 1u << ST_GEN_SHIFT,
};

struct node {
	/* Overflow FIFO successor while queued there, heap position while WAITING, slab free list
	 * when free. */
	uint32_t link;
	/* ST_* flags and the ring generation. Changed under the lock, and without it by get and
	 * done (see "the ready ring"), so always with atomic read-modify-writes. */
	atomic_uint state;
	/* then struct node_times when metrics are on, then the item (at key_offset) */
};

/* The times and the item follow an 8-byte header, so both are 8-byte aligned. */
_Static_assert(sizeof(struct node) == 8, "node header must stay 8 bytes");

/* Atomic: a scrape reads them while getters and dones change them without the lock. */
struct node_times {
	/* Became DIRTY: queue_duration. Written under the lock, while the node is not queued. */
	_Atomic uint64_t add_ns;
	/* Handed to a worker, plus 1; 0 while no worker holds it: work_duration, unfinished
	 * work. Written by the getter after its claim, zeroed by the done before its release. */
	_Atomic uint64_t start_ns_1;
};

struct waiting {
	uint64_t ready_ns;
	uint32_t idx;
	uint32_t seq; /* equal ready times leave in the order they came */
};

/* client-go's buckets for both durations, 1e-6 .. 1e3 s by x10, here in ns. */
#define N_BOUNDS 10
static const uint64_t bound_ns[N_BOUNDS] = {
	1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
	100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
};
static const double bound_s[N_BOUNDS] = { 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000 };

/* How often a worker blocked in get() re-reads a replaced (test) clock. */
#define CUSTOM_CLOCK_POLL_NS 1000000ull

/* counts[N_BOUNDS] is the +Inf bucket, so that the count is their sum. */
struct hist {
	uint64_t counts[N_BOUNDS + 1];
	uint64_t sum_ns;
};

struct hist_stripe {
	_Atomic uint64_t counts[N_BOUNDS + 1];
	_Atomic uint64_t sum_ns;
};

/*
 * What get and done count, which they do without the lock: each thread adds to one of
 * N_STRIPES stripes (its own unless more threads than stripes use the queue), with relaxed
 * atomic adds to lines no other thread writes, and a scrape sums them.
 */
enum {
	N_STRIPES = 16,
};

struct stripe {
	_Alignas(64) struct hist_stripe queue_duration; /* one per get */
	struct hist_stripe work_duration;               /* one per done */
};

struct queue_metrics {
	struct stripe stripes[N_STRIPES];
	char *name;
	struct mc_metrics_collector *collector;
	/* Under the lock. Every add counts once, when the item becomes DIRTY, and every get
	 * once, when it takes the item: depth is adds minus gets. */
	uint64_t adds;
	uint64_t retries;
	/* client-go stops updating the unfinished-work gauges at shutdown; they keep these. */
	bool frozen;
	uint64_t frozen_unfinished_ns, frozen_longest_ns;
};

struct mc_workqueue {
	/* Read without the lock on every call and written rarely: kept off the lines that the lock
	 * holder writes, so that reading them does not pull those lines away from its core. */
	atomic_bool shutting_down; /* written under lock */
	/* The map's slot array and mask, published for prefetching without the lock. */
	atomic_uint hint_mask;
	atomic_uintptr_t hint_slots;
	size_t item_size;
	size_t key_offset;
	uint64_t (*hash)(const void *item);
	bool (*equal)(const void *a, const void *b);
	struct mc_clock clock;
	struct mc_rate_limiter *rl;
	struct queue_metrics *m; /* NULL: metrics off */
	uint64_t id; /* unique for the process's lifetime: a thread's last get (done_fast()) */
	/* The ready ring (see there): fixed at creation. */
	_Atomic uint64_t *ready;
	uint32_t ready_mask;
	/* The add log: fixed at creation. */
	unsigned char *log_slots;
	struct log_times *log_times;
	size_t log_mask, log_stride;
	/* Set while the delay heap holds items: adds then read the clock for promote order. */
	atomic_bool timed;

	/* The lock shares its line with the state that every get and done changes, so taking the
	 * lock brings that state along. */
	_Alignas(64) pthread_mutex_t lock;
	/* The overflow FIFO: what is queued after the ready ring, linked through the nodes. */
	uint32_t fifo_head, fifo_tail;
	/* Written under the lock; get() reads it without (see there). */
	atomic_uint overflow_len;
	struct mci_idxmap map;
	struct mci_slab slab;
	uint32_t next_sweep; /* sweep_idle() when the slab is full and has this many */

	struct waiting *heap;
	size_t heap_len, heap_cap;
	uint32_t heap_seq;
	/* shutdown_with_drain() waits; read by done without the lock. */
	atomic_bool drain;

	/*
	 * Wake-ups in flight: workers signalled (or timed out) that have not yet re-taken the lock.
	 * Only one is started at a time; a woken worker that leaves work queued starts the next,
	 * so skipping a signal while one is in flight never strands an item.
	 */
	unsigned n_idle;
	unsigned n_wakeups;
	bool signal_owed; /* to work_cond, sent by unlock() */
	/* Earliest ready time an idle worker sleeps until; UINT64_MAX: none. */
	uint64_t timer_ns;

	pthread_cond_t work_cond;  /* idle workers */
	pthread_cond_t drain_cond; /* shutdown_with_drain */

	/* n_idle && !n_wakeups, for adders that do not take the lock: a sleeping worker that no
	 * wake-up is on its way to. Written under the lock, only when it changes. */
	_Alignas(64) atomic_bool need_wake;
	/* The add log (see log_append()): the next position adders reserve, on its own line... */
	_Alignas(64) atomic_size_t log_tail;
	/* ...and how far the lock holder has applied it: private to the lock, then published for
	 * adders checking for room. */
	_Alignas(64) size_t log_head;
	atomic_size_t log_head_pub;
	/* The ready ring's ends: getters move the head, the lock holder the tail. */
	_Alignas(64) atomic_size_t ready_head;
	_Alignas(64) atomic_size_t ready_tail;
};

/* ---- nodes ---- */

static inline struct node *node_at(const struct mc_workqueue *q, uint32_t idx)
{
	return mci_slab_at(&q->slab, idx);
}

static inline struct node_times *times_of(struct node *n)
{
	return (struct node_times *)(void *)(n + 1);
}

static inline void *item_of(const struct mc_workqueue *q, struct node *n)
{
	return (unsigned char *)n + q->key_offset;
}

static inline struct mci_key key_for(const struct mc_workqueue *q, const void *item)
{
	return (struct mci_key){
		.item = item,
		.size = q->item_size,
		.hash = q->hash ? q->hash(item) : mci_hash_item(item, q->item_size),
		.equal = q->equal,
	};
}

/*
 * The key of a call that looks k up under the lock, its map slot prefetched: with many items
 * the slot is a cache miss, better taken before the lock than while holding it. The published
 * array may be stale; a prefetch of a freed address is harmless.
 */
static inline struct mci_key key_prefetched(struct mc_workqueue *q, const void *item)
{
	struct mci_key k = key_for(q, item);
	const uint64_t *slots =
		(const uint64_t *)atomic_load_explicit(&q->hint_slots, memory_order_relaxed);

	if (slots)
		__builtin_prefetch(slots + (mci_idxmap_tag(k.hash) &
					    atomic_load_explicit(&q->hint_mask, memory_order_relaxed)));
	return k;
}

static inline uint64_t now_ns(const struct mc_workqueue *q)
{
	return mci_clock_now(&q->clock);
}

/*
 * Acquire and release throughout (free on x86): what a getter or a done did to a node without
 * the lock happens before what the lock holder does after seeing its flags, such as reusing
 * the node for another item.
 */
static inline unsigned flags_of(struct node *n)
{
	return atomic_load_explicit(&n->state, memory_order_acquire) & ST_FLAGS;
}

/* The flags before. */
static inline unsigned flags_set(struct node *n, unsigned bits)
{
	return atomic_fetch_or_explicit(&n->state, bits, memory_order_acq_rel) & ST_FLAGS;
}

static inline unsigned flags_clear(struct node *n, unsigned bits)
{
	return atomic_fetch_and_explicit(&n->state, ~bits, memory_order_acq_rel) & ST_FLAGS;
}

/* The state after clearing PROCESSING: a node that is DIRTY becomes queued, a new stay. */
static inline unsigned state_done(unsigned s)
{
	return (s & ~(unsigned)ST_PROCESSING) + (s & ST_DIRTY ? ST_GEN_ONE : 0);
}

/*
 * Clears PROCESSING in one step, seq_cst (a drain counts PROCESSING nodes, processing_any()).
 * The flags before; 0 without changing anything if the node was not PROCESSING.
 */
static unsigned flags_done(struct node *n)
{
	unsigned s = atomic_load_explicit(&n->state, memory_order_relaxed);

	do {
		if (!(s & ST_PROCESSING))
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(&n->state, &s, state_done(s),
							memory_order_seq_cst,
							memory_order_relaxed));
	return s & ST_FLAGS;
}

/* A node changing hands (allocated or freed): no one else looks at its flags then. The
 * generation stays, so that a getter holding an old ring entry can never mistake it. */
static inline void flags_reset(struct node *n, unsigned flags)
{
	unsigned s = atomic_load_explicit(&n->state, memory_order_relaxed);

	atomic_store_explicit(&n->state, (s & ~(unsigned)ST_FLAGS) | flags, memory_order_relaxed);
}

static uint32_t find(const struct mc_workqueue *q, const struct mci_key *k, uint32_t *slot)
{
	if (!q->map.slots)
		return MCI_NONE;
	return mci_idxmap_find(&q->map, &q->slab, q->key_offset, k, slot);
}

static size_t sweep_idle(struct mc_workqueue *q);

/* The node for k, created with state 0 if absent; MCI_NONE when out of memory. */
static uint32_t find_or_create(struct mc_workqueue *q, const struct mci_key *k)
{
	uint32_t slot, idx;
	struct node *n;

	if (mci_idxmap_reserve(&q->map) < 0)
		return MCI_NONE;
	if (atomic_load_explicit(&q->hint_slots, memory_order_relaxed) != (uintptr_t)q->map.slots) {
		atomic_store_explicit(&q->hint_slots, (uintptr_t)q->map.slots, memory_order_relaxed);
		atomic_store_explicit(&q->hint_mask, q->map.mask, memory_order_relaxed);
	}
	idx = mci_idxmap_find(&q->map, &q->slab, q->key_offset, k, &slot);
	if (idx != MCI_NONE)
		return idx;
	if (q->slab.free_head == MCI_NONE && q->slab.used == q->slab.cap &&
	    q->slab.used >= q->next_sweep && sweep_idle(q))
		/* the sweep moved entries of the map: look for k's slot again */
		(void)mci_idxmap_find(&q->map, &q->slab, q->key_offset, k, &slot);
	idx = mci_slab_alloc(&q->slab);
	if (idx == MCI_NONE)
		return MCI_NONE;
	n = node_at(q, idx);
	flags_reset(n, 0);
	if (q->m) {
		atomic_store_explicit(&times_of(n)->add_ns, 0, memory_order_relaxed);
		atomic_store_explicit(&times_of(n)->start_ns_1, 0, memory_order_relaxed);
	}
	mci_copy_item(item_of(q, n), k->item, q->item_size);
	mci_idxmap_insert_at(&q->map, slot, k->hash, idx);
	return idx;
}

static void release_at(struct mc_workqueue *q, uint32_t idx, uint32_t slot)
{
	mci_idxmap_remove_at(&q->map, slot);
	flags_reset(node_at(q, idx), ST_FREE);
	mci_slab_release(&q->slab, idx);
}

/* For the rare paths that hold an index but not its map slot. */
static void release(struct mc_workqueue *q, uint32_t idx)
{
	struct mci_key k = key_for(q, item_of(q, node_at(q, idx)));
	uint32_t slot = 0;

	(void)find(q, &k, &slot);
	release_at(q, idx, slot);
}

/*
 * A done without the lock (done_fast()) leaves a node with no flags in the map, where the item's
 * next add finds it again: in a queue whose items come back, no node is freed and made again.
 * When the slab is full, the idle ones are freed (under the lock; no one else touches a node
 * without flags). Returns how many.
 */
static size_t sweep_idle(struct mc_workqueue *q)
{
	size_t freed = 0;

	for (uint32_t idx = 0; idx < q->slab.used; idx++) {
		if (!flags_of(node_at(q, idx))) {
			release(q, idx);
			freed++;
		}
	}
	/* A sweep that found few waits until the slab has doubled: sweeps stay O(1) per node. */
	q->next_sweep = freed * 4 >= q->slab.used ? q->slab.used : 2 * q->slab.used;
	return freed;
}

/* ---- the ready ring and the overflow FIFO ---- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Queued items wait in the ready ring, a bounded ring of (generation, node) entries, and once it
 * is full, after it in the overflow FIFO linked through the nodes. Only the lock holder puts
 * items in (at the ring's tail, or at the overflow's while that holds any) and moves them from
 * the overflow to the ring, so the two together keep the queue's order.
 *
 * get() takes the ring's head without the lock (ready_pop()): it claims the head's node with a
 * CAS of its state, DIRTY to PROCESSING while the entry's generation is still the node's, and
 * only then moves the head. So an item is handed to one getter only, and is PROCESSING from
 * the moment it leaves the ring. A getter that finds the head's node already claimed waits the
 * instant until its claimer moves the head. A node gets a new generation each time it becomes
 * queued, in the same CAS that makes it DIRTY and not PROCESSING (mark_dirty(), flags_done()),
 * so an entry that a getter read before it was overtaken can never claim the node's later stay,
 * in the ring or in the overflow (the 24-bit generation would have to wrap while the getter is
 * stopped between two loads).
 */
enum {
	READY_CAP = 1024,
};

static inline size_t ready_count(const struct mc_workqueue *q)
{
	return atomic_load_explicit(&q->ready_tail, memory_order_acquire) -
	       atomic_load_explicit(&q->ready_head, memory_order_acquire);
}

/* What get() can take: exact under the lock, a recent value without it. */
static inline size_t queued_count(const struct mc_workqueue *q)
{
	return ready_count(q) + atomic_load_explicit(&q->overflow_len, memory_order_relaxed);
}

/* Under the lock: false if the ring is full. */
static bool ready_push(struct mc_workqueue *q, uint32_t idx)
{
	size_t tail = atomic_load_explicit(&q->ready_tail, memory_order_relaxed);
	unsigned s;

	if (tail - atomic_load_explicit(&q->ready_head, memory_order_acquire) > q->ready_mask)
		return false;
	s = atomic_load_explicit(&node_at(q, idx)->state, memory_order_relaxed);
	atomic_store_explicit(&q->ready[tail & q->ready_mask],
			      (uint64_t)(s >> ST_GEN_SHIFT) << 32 | idx, memory_order_relaxed);
	/* Release: the node (its item, its flags) is complete for the getter that takes it. */
	atomic_store_explicit(&q->ready_tail, tail + 1, memory_order_release);
	return true;
}

static void overflow_push(struct mc_workqueue *q, uint32_t idx)
{
	node_at(q, idx)->link = MCI_NONE;
	if (q->fifo_tail == MCI_NONE)
		q->fifo_head = idx;
	else
		node_at(q, q->fifo_tail)->link = idx;
	q->fifo_tail = idx;
	atomic_fetch_add_explicit(&q->overflow_len, 1, memory_order_relaxed);
}

static void overflow_pop(struct mc_workqueue *q)
{
	q->fifo_head = node_at(q, q->fifo_head)->link;
	if (q->fifo_head == MCI_NONE)
		q->fifo_tail = MCI_NONE;
	atomic_fetch_sub_explicit(&q->overflow_len, 1, memory_order_relaxed);
}

/* Under the lock: queues idx at the tail. */
static void fifo_push(struct mc_workqueue *q, uint32_t idx)
{
	if (q->fifo_head != MCI_NONE || !ready_push(q, idx))
		overflow_push(q, idx);
}

/* Under the lock: moves what the ring has room for from the overflow into it. */
static void refill(struct mc_workqueue *q)
{
	while (q->fifo_head != MCI_NONE && ready_push(q, q->fifo_head))
		overflow_pop(q);
}

/*
 * Without the lock, or with it: claims the head of the ring; MCI_NONE if it is empty. With
 * metrics on, *added_ns is the time the claimed stay began, read before the claim: once the
 * node is PROCESSING, an add may start its next stay.
 */
static uint32_t ready_pop(struct mc_workqueue *q, uint64_t *added_ns)
{
	size_t head = atomic_load_explicit(&q->ready_head, memory_order_acquire);

	for (unsigned spins = 0;; spins++) {
		struct node *n;
		uint64_t entry;
		unsigned s;

		if (head == atomic_load_explicit(&q->ready_tail, memory_order_acquire))
			return MCI_NONE;
		entry = atomic_load_explicit(&q->ready[head & q->ready_mask], memory_order_acquire);
		/* The entry is the head's only if the head has not moved meanwhile: a slot is
		 * written again only once the head has passed it. */
		if (atomic_load_explicit(&q->ready_head, memory_order_acquire) != head) {
			head = atomic_load_explicit(&q->ready_head, memory_order_acquire);
			continue;
		}
		n = node_at(q, (uint32_t)entry);
		s = atomic_load_explicit(&n->state, memory_order_relaxed);
		if (s >> ST_GEN_SHIFT == (uint32_t)(entry >> 32) &&
		    (s & (ST_DIRTY | ST_PROCESSING)) == ST_DIRTY) {
			if (q->m)
				*added_ns = atomic_load_explicit(&times_of(n)->add_ns,
								 memory_order_relaxed);
			/* seq_cst: a drain counts PROCESSING nodes (processing_any()); and the
			 * add time above is read before. */
			if (atomic_compare_exchange_strong_explicit(
				    &n->state, &s, (s & ~(unsigned)ST_DIRTY) | ST_PROCESSING,
				    memory_order_seq_cst, memory_order_relaxed)) {
				atomic_store_explicit(&q->ready_head, head + 1, memory_order_release);
				return (uint32_t)entry;
			}
			continue;
		}
		/* Claimed by a getter that has yet to move the head. */
		if (spins < 64)
			cpu_relax();
		else
			sched_yield();
		head = atomic_load_explicit(&q->ready_head, memory_order_acquire);
	}
}

/* ---- delay heap (binary min-heap; each node knows its position) ---- */

static inline bool before(const struct waiting *a, const struct waiting *b)
{
	return a->ready_ns < b->ready_ns ||
	       (a->ready_ns == b->ready_ns && (int32_t)(a->seq - b->seq) < 0);
}

static inline void heap_set(struct mc_workqueue *q, size_t pos, const struct waiting *w)
{
	q->heap[pos] = *w;
	node_at(q, w->idx)->link = (uint32_t)pos;
}

static void sift_up(struct mc_workqueue *q, size_t pos)
{
	struct waiting w = q->heap[pos];

	while (pos) {
		size_t parent = (pos - 1) / 2;

		if (!before(&w, &q->heap[parent]))
			break;
		heap_set(q, pos, &q->heap[parent]);
		pos = parent;
	}
	heap_set(q, pos, &w);
}

static void sift_down(struct mc_workqueue *q, size_t pos)
{
	struct waiting w = q->heap[pos];

	for (;;) {
		size_t c = 2 * pos + 1;

		if (c >= q->heap_len)
			break;
		if (c + 1 < q->heap_len && before(&q->heap[c + 1], &q->heap[c]))
			c++;
		if (!before(&q->heap[c], &w))
			break;
		heap_set(q, pos, &q->heap[c]);
		pos = c;
	}
	heap_set(q, pos, &w);
}

static void heap_remove(struct mc_workqueue *q, size_t pos)
{
	if (pos == --q->heap_len)
		return;
	q->heap[pos] = q->heap[q->heap_len];
	if (pos && before(&q->heap[pos], &q->heap[(pos - 1) / 2]))
		sift_up(q, pos);
	else
		sift_down(q, pos);
}

static int heap_push(struct mc_workqueue *q, uint32_t idx, uint64_t ready_ns)
{
	if (q->heap_len == q->heap_cap) {
		size_t cap = q->heap_cap ? q->heap_cap * 2 : 64;
		struct waiting *h = realloc(q->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		q->heap = h;
		q->heap_cap = cap;
	}
	q->heap[q->heap_len] = (struct waiting){ ready_ns, idx, q->heap_seq++ };
	sift_up(q, q->heap_len++);
	return 0;
}

/* ---- metrics ---- */

static _Thread_local unsigned thread_stripe; /* 1 + the stripe; 0: not chosen yet */
static atomic_uint next_stripe;

static struct stripe *my_stripe(struct mc_workqueue *q)
{
	if (!thread_stripe)
		thread_stripe = 1 + atomic_fetch_add_explicit(&next_stripe, 1,
							      memory_order_relaxed) % N_STRIPES;
	return &q->m->stripes[thread_stripe - 1];
}

static void hist_observe(struct hist_stripe *h, uint64_t ns)
{
	size_t i = 0;

	while (i < N_BOUNDS && ns > bound_ns[i])
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

static void hist_sum(struct hist *out, const struct hist_stripe *h)
{
	for (size_t i = 0; i <= N_BOUNDS; i++)
		out->counts[i] += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
	out->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

static uint64_t hist_count(const struct hist *h)
{
	uint64_t n = 0;

	for (size_t i = 0; i <= N_BOUNDS; i++)
		n += h->counts[i];
	return n;
}

static uint64_t since(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

/* idx was just claimed, its stay having begun at added_ns. */
static void metrics_started(struct mc_workqueue *q, uint32_t idx, uint64_t now,
			    uint64_t added_ns)
{
	hist_observe(&my_stripe(q)->queue_duration, since(now, added_ns));
	atomic_store_explicit(&times_of(node_at(q, idx))->start_ns_1, now + 1,
			      memory_order_relaxed);
}

/*
 * Before PROCESSING is cleared (so that a scrape never takes the next stay for this one): the
 * exchange makes a second done of the same run count nothing.
 */
static void metrics_finished(struct mc_workqueue *q, struct node *n, uint64_t now)
{
	uint64_t start_1 = atomic_exchange_explicit(&times_of(n)->start_ns_1, 0,
						    memory_order_relaxed);

	if (start_1)
		hist_observe(&my_stripe(q)->work_duration, since(now, start_1 - 1));
}

/* Under the lock: the items being processed are the PROCESSING nodes that have started. */
static void unfinished_work(const struct mc_workqueue *q, uint64_t now, uint64_t *total,
			    uint64_t *longest)
{
	*total = *longest = 0;
	for (uint32_t idx = 0; idx < q->slab.used; idx++) {
		struct node *n = node_at(q, idx);
		uint64_t start_1, age;

		if (!(flags_of(n) & ST_PROCESSING))
			continue;
		start_1 = atomic_load_explicit(&times_of(n)->start_ns_1, memory_order_relaxed);
		if (!start_1)
			continue;
		age = since(now, start_1 - 1);
		*total += age;
		*longest = age > *longest ? age : *longest;
	}
}

/* ---- the add log ---- */

/*
 * The add calls do not take the lock. They append the item to a bounded log, a ring of slots
 * after Vyukov: the adder reserves a position with a CAS on log_tail, writes the slot and
 * publishes it with the slot's sequence number. Whoever takes the lock next applies the log in
 * order before it looks at the state (catch_up()). Every call that can observe the queue takes
 * the lock, so an add takes effect at its place in the log as if it had been applied at once.
 * Producers then write log slots only, while the lock, the map and the nodes stay with the
 * workers; with many producers they no longer queue up on the lock (workload (b) of
 * docs/performance.md). An adder that finds a sleeping worker with no wake-up on its way takes
 * the lock to wake it; one that finds the log full applies it itself; and one that finds a
 * quarter of it waiting applies it if the lock is free (add_logged()).
 */
struct log_slot {
	/* pos + 1 once the slot is written for position pos, with the LOG_* flags */
	atomic_uint_fast64_t seq;
	/* then the item, 8-byte aligned: a slot is 16 bytes for the common 8-byte item, as the
	 * cost of the log is the cache lines that travel from the adder's core to the workers' */
};

/* The adder's time is in log_times[] (for the metrics, or to order the add against delayed
 * items); else the lock holder's time is as good. */
#define LOG_TIMED (1ull << 61)
/* An add_after(): its ready time is in log_times[] too. */
#define LOG_AFTER (1ull << 62)
/* Refused: shutdown had begun. */
#define LOG_REFUSED (1ull << 63)
#define LOG_FLAGS (LOG_TIMED | LOG_AFTER | LOG_REFUSED)

/* Apart from the slots: read only for the entries that need them. */
struct log_times {
	uint64_t at, ready;
};

enum {
	LOG_CAP_MAX = 1024,
	LOG_BYTES_MAX = 64 * 1024,
};

static inline struct log_slot *log_slot_at(const struct mc_workqueue *q, size_t pos)
{
	return (struct log_slot *)(void *)(q->log_slots + (pos & q->log_mask) * q->log_stride);
}

static int log_init(struct mc_workqueue *q)
{
	size_t cap = LOG_CAP_MAX;

	q->log_stride = sizeof(struct log_slot) + ((q->item_size + 7) & ~(size_t)7);
	while (cap > 64 && cap * q->log_stride > LOG_BYTES_MAX)
		cap /= 2;
	q->log_mask = cap - 1;
	q->log_slots = calloc(cap, q->log_stride);
	q->log_times = calloc(cap, sizeof(*q->log_times));
	return q->log_slots && q->log_times ? 0 : -ENOMEM;
}

/*
 * 0: logged; 1: logged, and this adder should help apply the log (see add_logged()); -ENOBUFS:
 * the log is full; -ESHUTDOWN: refused. Shutdown sets shutting_down and
 * then applies the log up to log_tail, so an adder that reserved its slot and still sees the
 * flag clear is applied as before the shutdown; one that sees it set cancels its slot.
 * `flags`: LOG_TIMED and LOG_AFTER, saying which of `at` and `ready` to keep.
 */
static int log_append(struct mc_workqueue *q, const void *item, uint64_t flags, uint64_t at,
		      uint64_t ready)
{
	size_t pos = atomic_load_explicit(&q->log_tail, memory_order_relaxed), backlog;
	struct log_slot *slot;

	do {
		/* Acquire: the lock holder has finished reading the slot we may reuse. */
		backlog = pos - atomic_load_explicit(&q->log_head_pub, memory_order_acquire);
		if (backlog > q->log_mask)
			return -ENOBUFS;
	} while (!atomic_compare_exchange_weak_explicit(&q->log_tail, &pos, pos + 1,
							memory_order_seq_cst,
							memory_order_relaxed));
	if (atomic_load_explicit(&q->shutting_down, memory_order_seq_cst)) {
		flags = LOG_REFUSED;
	} else {
		slot = log_slot_at(q, pos);
		mci_copy_item(slot + 1, item, q->item_size);
		if (flags)
			q->log_times[pos & q->log_mask] = (struct log_times){ at, ready };
	}
	/* seq_cst: before the adder reads need_wake (see idle_wait()). */
	atomic_store_explicit(&log_slot_at(q, pos)->seq, (pos + 1) | flags, memory_order_seq_cst);
	if (flags & LOG_REFUSED)
		return -ESHUTDOWN;
	/* A quarter of the log waits: every sixteenth position offers to apply it. */
	return backlog > q->log_mask / 4 && !(pos & (q->log_mask / 16));
}

static inline bool log_written(const struct log_slot *slot, size_t pos)
{
	return (atomic_load_explicit(&slot->seq, memory_order_acquire) & ~LOG_FLAGS) == pos + 1;
}

/* A reserved slot is written a few instructions later, unless its adder was preempted there. */
static void log_wait_written(const struct log_slot *slot, size_t pos)
{
	for (unsigned spins = 0; !log_written(slot, pos); spins++) {
		if (spins < 100)
			cpu_relax();
		else
			sched_yield();
	}
}

/* ---- state changes (under the queue lock) ---- */

/*
 * Makes sure a sleeping worker is on its way, if one sleeps and none is being woken yet. One
 * wake-up at a time: the woken worker wakes the next if work is left when it takes its item,
 * so a burst of adds costs the adder one futex wake, not one per item. The signal goes out
 * when the lock is released (unlock()), so the woken worker does not run into a held lock.
 */
static void publish_need_wake(struct mc_workqueue *q)
{
	bool need = q->n_idle && !q->n_wakeups;

	if (need != atomic_load_explicit(&q->need_wake, memory_order_relaxed))
		atomic_store_explicit(&q->need_wake, need, memory_order_seq_cst);
}

static void wake_one(struct mc_workqueue *q)
{
	if (!q->n_wakeups && q->n_idle) {
		q->n_wakeups++;
		q->signal_owed = true;
		publish_need_wake(q);
	}
}

static void unlock(struct mc_workqueue *q)
{
	bool signal = q->signal_owed;
	bool timed = q->heap_len != 0;

	q->signal_owed = false;
	if (timed != atomic_load_explicit(&q->timed, memory_order_relaxed))
		atomic_store_explicit(&q->timed, timed, memory_order_relaxed);
	pthread_mutex_unlock(&q->lock);
	/* A signal that finds the worker it was meant for already awake (its timed wait ended)
	 * wakes another at worst, which finds nothing and sleeps again. */
	if (signal)
		pthread_cond_signal(&q->work_cond);
}

/* If no sleeping worker will wake by the earliest ready time, wake one to watch it. */
static void ensure_timer(struct mc_workqueue *q)
{
	if (q->heap_len && q->heap[0].ready_ns < q->timer_ns)
		wake_one(q);
}

static void mark_dirty(struct mc_workqueue *q, uint32_t idx, uint64_t added_ns)
{
	struct node *n = node_at(q, idx);

	unsigned before;

	if (q->m)
		atomic_store_explicit(&times_of(n)->add_ns, added_ns, memory_order_relaxed);
	/* The flags before, in one step: a done without the lock may be clearing PROCESSING
	 * right now, and exactly one of it and this must queue the item. */
	before = atomic_load_explicit(&n->state, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
		&n->state, &before,
		(before | ST_DIRTY) + (before & ST_PROCESSING ? 0 : ST_GEN_ONE), memory_order_acq_rel,
		memory_order_relaxed))
		;
	if (q->m)
		q->m->adds++;
	if (!(before & ST_PROCESSING))
		fifo_push(q, idx);
}

/* Moves the items whose ready time has come to the FIFO; returns how many. */
static size_t promote_due(struct mc_workqueue *q, uint64_t now)
{
	size_t n = 0;

	while (q->heap_len && q->heap[0].ready_ns <= now) {
		struct waiting w = q->heap[0];

		heap_remove(q, 0);
		flags_clear(node_at(q, w.idx), ST_WAITING);
		/* Queue latency runs from the ready time, as if a timer had added it then. */
		mark_dirty(q, w.idx, w.ready_ns);
		n++;
	}
	return n;
}

static void timed_wait(struct mc_workqueue *q, uint64_t deadline)
{
	uint64_t at = deadline;
	struct timespec ts;

	if (q->clock.now_ns) {
		uint64_t rem = since(deadline, now_ns(q));

		at = mci_monotonic_ns() + (rem < CUSTOM_CLOCK_POLL_NS ? rem : CUSTOM_CLOCK_POLL_NS);
	}
	ts.tv_sec = (time_t)(at / 1000000000u);
	ts.tv_nsec = (long)(at % 1000000000u);
	(void)pthread_cond_timedwait(&q->work_cond, &q->lock, &ts);
}

/*
 * Under the lock, before a call looks at the state: what was due by `now` goes to the FIFO
 * first, so it stays ahead of what this call queues, as if a timer thread had added it.
 */
static void promote(struct mc_workqueue *q, uint64_t now)
{
	if (q->heap_len && promote_due(q, now))
		wake_one(q);
}

/* The time a locked call needs: for the metrics and to promote due items; 0 when unused. */
static inline uint64_t locked_now(const struct mc_workqueue *q)
{
	return q->m || q->heap_len ? now_ns(q) : 0;
}

/* The apply_* functions change the state as a call made at time `at` would have (under lock). */

/* An add that was accepted (before shutdown). */
static int apply_accepted_add(struct mc_workqueue *q, const struct mci_key *k, uint64_t at)
{
	unsigned flags;
	uint32_t idx;
	struct node *n;

	idx = find_or_create(q, k);
	if (idx == MCI_NONE)
		return -ENOMEM;
	n = node_at(q, idx);
	flags = flags_of(n);
	if (flags & ST_DIRTY)
		return 0;
	if (flags & ST_WAITING) {
		/* Fix 2: the immediate run replaces the delayed one instead of adding to it. */
		heap_remove(q, n->link);
		flags_clear(n, ST_WAITING);
	}
	mark_dirty(q, idx, at);
	wake_one(q);
	return 0;
}

static int apply_accepted_add_after(struct mc_workqueue *q, const struct mci_key *k,
				    uint64_t ready, uint64_t at)
{
	unsigned flags;
	uint32_t idx;
	struct node *n;

	if (q->m)
		q->m->retries++;
	if (ready <= at)
		return apply_accepted_add(q, k, at);
	idx = find_or_create(q, k);
	if (idx == MCI_NONE)
		return -ENOMEM;
	n = node_at(q, idx);
	flags = flags_of(n);
	/* The pending run reads the latest state anyway (fix 2, other direction). */
	if (flags & ST_DIRTY)
		return 0;
	if (flags & ST_WAITING) {
		if (ready < q->heap[n->link].ready_ns) {
			q->heap[n->link].ready_ns = ready;
			sift_up(q, n->link);
		}
	} else {
		if (heap_push(q, idx, ready) < 0) {
			if (!flags_of(n))
				release(q, idx);
			return -ENOMEM;
		}
		flags_set(node_at(q, idx), ST_WAITING);
	}
	ensure_timer(q);
	return 0;
}

/* One accepted add call of the log, at its time `at`, after what was due by then. */
static int apply_logged(struct mc_workqueue *q, const struct mci_key *k, uint64_t flags,
			uint64_t at, uint64_t ready)
{
	promote(q, at);
	if (flags & LOG_AFTER)
		return apply_accepted_add_after(q, k, ready, at);
	return apply_accepted_add(q, k, at);
}

static void apply_done(struct mc_workqueue *q, const struct mci_key *k, uint64_t at)
{
	uint32_t idx, slot;
	struct node *n;

	unsigned before;

	idx = find(q, k, &slot);
	/* Fix 1: client-go queues a stray done()'s item a second time; ignore it instead. */
	if (idx == MCI_NONE)
		return;
	n = node_at(q, idx);
	if (q->m)
		metrics_finished(q, n, at);
	before = flags_done(n);
	if (!before)
		return;
	if (before & ST_DIRTY) {
		fifo_push(q, idx);
		wake_one(q);
	} else if (!(before & ~(unsigned)ST_PROCESSING)) {
		release_at(q, idx, slot);
	}
	if (atomic_load_explicit(&q->drain, memory_order_relaxed))
		pthread_cond_broadcast(&q->drain_cond);
}

/* Sleeps until woken, or until the earliest ready time if no other worker watches it. */
static void idle_wait(struct mc_workqueue *q)
{
	uint64_t deadline = UINT64_MAX;

	q->n_idle++;
	publish_need_wake(q);
	/* An adder that wrote its log slot before need_wake was set did not see it, so look at
	 * the log once more after setting it (the other half is in mc_workqueue_add()). An adder
	 * still writing will see need_wake. */
	if ((atomic_load_explicit(&log_slot_at(q, q->log_head)->seq, memory_order_seq_cst) &
	     ~LOG_FLAGS) == q->log_head + 1) {
		q->n_idle--;
		publish_need_wake(q);
		return;
	}
	if (q->heap_len && q->heap[0].ready_ns < q->timer_ns) {
		deadline = q->heap[0].ready_ns;
		q->timer_ns = deadline;
		timed_wait(q, deadline);
	} else {
		pthread_cond_wait(&q->work_cond, &q->lock);
	}
	q->n_idle--;
	if (q->n_wakeups)
		q->n_wakeups--;
	publish_need_wake(q);
	if (deadline != UINT64_MAX && q->timer_ns == deadline)
		q->timer_ns = UINT64_MAX;
}

/* Under the lock: whether a worker holds an item. get and done run without the lock, so the
 * nodes tell. */
static bool processing_any(struct mc_workqueue *q)
{
	/* Pairs with the seq_cst claim in ready_pop() and clear in done_fast(). */
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t idx = 0; idx < q->slab.used; idx++) {
		if (flags_of(node_at(q, idx)) & ST_PROCESSING)
			return true;
	}
	return false;
}

/* Discards the delayed items (client-go drops them at shutdown). */
static void drop_waiting(struct mc_workqueue *q)
{
	for (size_t i = 0; i < q->heap_len; i++) {
		uint32_t idx = q->heap[i].idx;
		struct node *n = node_at(q, idx);

		if (!(flags_clear(n, ST_WAITING) & ~(unsigned)ST_WAITING))
			release(q, idx);
	}
	q->heap_len = 0;
}

/*
 * Applies the log (under the lock), in log order, each add at its adder's time. With `all`, up
 * to what was reserved when it starts, waiting for slots still being written: a call that
 * reports or orders state must see every add that returned before it. Without, it stops at the
 * first such slot: get() and done() do not wait for an adder that is still in its call, whose
 * entry and those after it come with the next lock holder, at the latest the adder itself when
 * it finds a worker asleep.
 *
 * -ENOMEM leaves the entry that could not be applied for the next lock holder: the log then
 * fills, and adders get -ENOMEM from the locked path.
 */
static int log_apply(struct mc_workqueue *q, bool all)
{
	size_t tail = atomic_load_explicit(&q->log_tail, memory_order_seq_cst);
	size_t head = q->log_head;
	int r = 0;

	if (head == tail)
		return 0;
	for (; head != tail; head++) {
		struct log_slot *slot = log_slot_at(q, head);
		const struct log_times *times = &q->log_times[head & q->log_mask];
		uint64_t flags;
		struct mci_key k;

		if (all)
			log_wait_written(slot, head);
		else if (!log_written(slot, head))
			break;
		flags = atomic_load_explicit(&slot->seq, memory_order_relaxed) & LOG_FLAGS;
		if (flags & LOG_REFUSED)
			continue;
		k = key_for(q, slot + 1);
		r = apply_logged(q, &k, flags, flags & LOG_TIMED ? times->at : locked_now(q),
				 times->ready);
		if (r < 0)
			break;
	}
	q->log_head = head;
	atomic_store_explicit(&q->log_head_pub, head, memory_order_release);
	return r;
}

/*
 * Under the lock, before a call looks at the state: the log applied, then due items promoted.
 * Returns the time the call acts at.
 */
static uint64_t catch_up(struct mc_workqueue *q, bool all)
{
	uint64_t now;

	(void)log_apply(q, all);
	now = locked_now(q);
	promote(q, now);
	return now;
}

static uint64_t lock_and_catch_up(struct mc_workqueue *q, bool all)
{
	pthread_mutex_lock(&q->lock);
	return catch_up(q, all);
}

static void shutdown_locked(struct mc_workqueue *q, bool drain)
{
	if (!atomic_load_explicit(&q->shutting_down, memory_order_relaxed)) {
		uint64_t now = now_ns(q);

		/* First the flag, then the log: what was logged before is applied, what comes
		 * after is refused (log_append()). */
		atomic_store_explicit(&q->shutting_down, true, memory_order_seq_cst);
		(void)log_apply(q, true);
		/* What was due is already queued; only what still waits is dropped. */
		(void)promote_due(q, now);
		drop_waiting(q);
		if (q->m) {
			unfinished_work(q, now, &q->m->frozen_unfinished_ns,
					&q->m->frozen_longest_ns);
			q->m->frozen = true;
		}
	}
	/* seq_cst: before the drain looks for PROCESSING nodes (processing_any()). */
	atomic_store_explicit(&q->drain, drain, memory_order_seq_cst);
	q->n_wakeups = q->n_idle;
	publish_need_wake(q);
	pthread_cond_broadcast(&q->work_cond);
	if (!drain)
		pthread_cond_broadcast(&q->drain_cond);
}

/* ---- metrics collector ---- */

static void hist_export(const struct hist *h, struct mc_metrics_histogram *out)
{
	*out = (struct mc_metrics_histogram){
		.bounds = bound_s,
		.counts = h->counts,
		.n_bounds = N_BOUNDS,
		.count = hist_count(h),
		.sum = (double)h->sum_ns / 1e9,
	};
}

static int collect(struct mc_metrics_writer *w, void *userdata)
{
	struct mc_workqueue *q = userdata;
	const struct mc_metrics_label label = { "name", q->m->name };
	struct hist queue_duration = { 0 }, work_duration = { 0 };
	struct mc_metrics_histogram h;
	uint64_t unfinished, longest, adds, retries, gets;
	int r;

	(void)lock_and_catch_up(q, true);
	adds = q->m->adds;
	retries = q->m->retries;
	/* Under the lock no item becomes DIRTY, so the gets counted cannot pass the adds. */
	for (size_t i = 0; i < N_STRIPES; i++) {
		hist_sum(&queue_duration, &q->m->stripes[i].queue_duration);
		hist_sum(&work_duration, &q->m->stripes[i].work_duration);
	}
	gets = hist_count(&queue_duration);
	if (q->m->frozen) {
		unfinished = q->m->frozen_unfinished_ns;
		longest = q->m->frozen_longest_ns;
	} else {
		unfinished_work(q, now_ns(q), &unfinished, &longest);
	}
	unlock(q);

	r = mc_metrics_write_gauge(w, "workqueue_depth", "Current depth of workqueue", &label, 1,
				   (double)(adds > gets ? adds - gets : 0));
	if (r == 0)
		r = mc_metrics_write_counter(w, "workqueue_adds_total",
					     "Total number of adds handled by workqueue", &label,
					     1, (double)adds);
	hist_export(&queue_duration, &h);
	if (r == 0)
		r = mc_metrics_write_histogram(
			w, "workqueue_queue_duration_seconds",
			"How long in seconds an item stays in workqueue before being requested.",
			&label, 1, &h);
	hist_export(&work_duration, &h);
	if (r == 0)
		r = mc_metrics_write_histogram(
			w, "workqueue_work_duration_seconds",
			"How long in seconds processing an item from workqueue takes.", &label, 1,
			&h);
	if (r == 0)
		r = mc_metrics_write_gauge(
			w, "workqueue_unfinished_work_seconds",
			"How many seconds of work has done that is in progress and hasn't been "
			"observed by work_duration. Large values indicate stuck threads. One can "
			"deduce the number of stuck threads by observing the rate at which this "
			"increases.",
			&label, 1, (double)unfinished / 1e9);
	if (r == 0)
		r = mc_metrics_write_gauge(w, "workqueue_longest_running_processor_seconds",
					   "How many seconds has the longest running processor for "
					   "workqueue been running.",
					   &label, 1, (double)longest / 1e9);
	if (r == 0)
		r = mc_metrics_write_counter(w, "workqueue_retries_total",
					     "Total number of retries handled by workqueue",
					     &label, 1, (double)retries);
	return r;
}

/* ---- construction ---- */

static atomic_uint_fast64_t next_queue_id;

static int metrics_init(struct mc_workqueue *q, const char *name, struct mc_metrics *reg)
{
	static const char prefix[] = "workqueue/";
	char *key;

	/* sizeof is a multiple of the alignment, as aligned_alloc wants. */
	q->m = aligned_alloc(_Alignof(struct queue_metrics), sizeof(*q->m));
	if (!q->m)
		return -ENOMEM;
	memset(q->m, 0, sizeof(*q->m));
	q->m->name = strdup(name);
	key = malloc(sizeof(prefix) + strlen(name));
	if (!q->m->name || !key) {
		free(key);
		return -ENOMEM;
	}
	memcpy(key, prefix, sizeof(prefix) - 1);
	strcpy(key + sizeof(prefix) - 1, name);
	q->m->collector = mc_metrics_register(reg ? reg : mc_metrics_default(), key, collect, q);
	free(key);
	return q->m->collector ? 0 : -errno;
}

/* Trailing fields of a newer caller's config that this library does not know must be zero. */
static bool unknown_fields_zero(const struct mc_workqueue_config *cfg, size_t cfg_size)
{
	const unsigned char *p = (const unsigned char *)cfg;

	for (size_t i = sizeof(*cfg); i < cfg_size; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static bool config_valid(const struct mc_workqueue_config *c)
{
	return c->item_size > 0 && c->item_size <= UINT32_MAX && !c->hash == !c->equal;
}

struct mc_workqueue *mc_workqueue_new_sized(const struct mc_workqueue_config *cfg,
					    size_t cfg_size)
{
	struct mc_workqueue_config c = { 0 };
	pthread_condattr_t ca;
	bool metrics;
	struct mc_workqueue *q;
	int r;

	if (!cfg || cfg_size < offsetof(struct mc_workqueue_config, hash)) {
		errno = EINVAL;
		return NULL;
	}
	memcpy(&c, cfg, cfg_size < sizeof(c) ? cfg_size : sizeof(c));
	if (!unknown_fields_zero(cfg, cfg_size) || !config_valid(&c)) {
		mc_rate_limiter_free(c.rate_limiter);
		errno = EINVAL;
		return NULL;
	}
	/* As in client-go, an empty name means no metrics. */
	metrics = c.name && *c.name;
	/* sizeof is a multiple of the alignment, as aligned_alloc wants. */
	q = aligned_alloc(_Alignof(struct mc_workqueue), sizeof(*q));
	if (!q) {
		mc_rate_limiter_free(c.rate_limiter);
		errno = ENOMEM;
		return NULL;
	}
	memset(q, 0, sizeof(*q));
	mci_mutex_init_adaptive(&q->lock);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->work_cond, &ca);
	pthread_cond_init(&q->drain_cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&q->shutting_down, false);
	atomic_init(&q->hint_mask, 0);
	atomic_init(&q->hint_slots, 0);
	q->item_size = c.item_size;
	q->key_offset = sizeof(struct node) + (metrics ? sizeof(struct node_times) : 0);
	q->hash = c.hash;
	q->equal = c.equal;
	if (c.clock)
		q->clock = *c.clock;
	mci_idxmap_init(&q->map);
	mci_slab_init(&q->slab, (q->key_offset + c.item_size + 7) & ~(size_t)7);
	q->fifo_head = q->fifo_tail = MCI_NONE;
	q->id = atomic_fetch_add(&next_queue_id, 1) + 1;
	atomic_init(&q->ready_head, 0);
	atomic_init(&q->ready_tail, 0);
	atomic_init(&q->overflow_len, 0);
	q->ready_mask = READY_CAP - 1;
	q->ready = calloc(READY_CAP, sizeof(*q->ready));
	q->timer_ns = UINT64_MAX;
	atomic_init(&q->timed, false);
	atomic_init(&q->need_wake, false);
	atomic_init(&q->log_tail, 0);
	atomic_init(&q->log_head_pub, 0);

	q->rl = c.rate_limiter ? c.rate_limiter : mc_rate_limiter_default_controller();
	if (!q->rl || !q->ready || log_init(q) < 0) {
		mc_workqueue_free(q);
		errno = ENOMEM;
		return NULL;
	}
	if (c.clock)
		mc_rate_limiter_set_clock(q->rl, c.clock);
	if (metrics) {
		r = metrics_init(q, c.name, c.metrics);
		if (r < 0) {
			mc_workqueue_free(q);
			errno = -r;
			return NULL;
		}
	}
	return q;
}

void mc_workqueue_free(struct mc_workqueue *q)
{
	if (!q)
		return;
	if (q->m) {
		/* First, so that no render is looking at the queue while it goes away. */
		mc_metrics_unregister(q->m->collector);
		free(q->m->name);
		free(q->m);
	}
	mc_rate_limiter_free(q->rl);
	mci_idxmap_fini(&q->map);
	mci_slab_fini(&q->slab);
	free(q->heap);
	free(q->log_slots);
	free(q->log_times);
	free(q->ready);
	pthread_cond_destroy(&q->drain_cond);
	pthread_cond_destroy(&q->work_cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* ---- API ---- */

/*
 * The adds go through the log (see log_append()), or take the lock when it is full. The time
 * is read when something needs it: an add_after's ready time, the metrics, or ordering an
 * add against due delayed items.
 *
 * An adder that outruns the workers helps: with a quarter of the log waiting, an add in
 * sixteen tries the lock and applies the log. Otherwise the workers' core pays for applying
 * every add, those of items already queued too, which in workload (a) (one producer adding
 * 10,000 keys over and over) halves what they get done; client-go's adders pay for their own
 * adds under the lock. Only a trylock, and only that often, so that many producers (b) do not
 * fight over the lock (docs/performance.md).
 */
static int add_logged(struct mc_workqueue *q, const void *item, uint64_t flags, uint64_t at,
		      uint64_t ready)
{
	int r = log_append(q, item, flags, at, ready);

	if (r > 0) {
		r = 0;
		if (pthread_mutex_trylock(&q->lock) == 0) {
			(void)catch_up(q, false);
			unlock(q);
			return 0;
		}
	}
	if (r == -ENOBUFS) {
		struct mci_key k = key_for(q, item);

		pthread_mutex_lock(&q->lock);
		(void)log_apply(q, true);
		if (atomic_load_explicit(&q->shutting_down, memory_order_relaxed))
			r = -ESHUTDOWN;
		else
			r = apply_logged(q, &k, flags, flags & LOG_TIMED ? at : locked_now(q), ready);
		unlock(q);
	} else if (r == 0 && atomic_load_explicit(&q->need_wake, memory_order_seq_cst)) {
		/* A worker sleeps and no wake-up is on its way: applying the log wakes one. */
		(void)lock_and_catch_up(q, false);
		unlock(q);
	}
	return r;
}

int mc_workqueue_add(struct mc_workqueue *q, const void *item)
{
	if (!q || !item)
		return -EINVAL;
	if (atomic_load_explicit(&q->shutting_down, memory_order_relaxed))
		return -ESHUTDOWN;
	if (q->m || atomic_load_explicit(&q->timed, memory_order_relaxed))
		return add_logged(q, item, LOG_TIMED, now_ns(q), 0);
	return add_logged(q, item, 0, 0, 0);
}

int mc_workqueue_add_after(struct mc_workqueue *q, const void *item, uint64_t delay_ns)
{
	uint64_t now;

	if (!q || !item)
		return -EINVAL;
	if (atomic_load_explicit(&q->shutting_down, memory_order_relaxed))
		return -ESHUTDOWN;
	now = now_ns(q);
	return add_logged(q, item, LOG_TIMED | LOG_AFTER, now, mci_add_sat(now, delay_ns));
}

int mc_workqueue_add_rate_limited(struct mc_workqueue *q, const void *item)
{
	struct mci_key k;
	uint64_t delay, now;

	if (!q || !item)
		return -EINVAL;
	if (atomic_load_explicit(&q->shutting_down, memory_order_relaxed))
		return -ESHUTDOWN;
	k = key_for(q, item);
	delay = mci_rate_limiter_when(q->rl, &k);
	now = now_ns(q);
	return add_logged(q, item, LOG_TIMED | LOG_AFTER, now, mci_add_sat(now, delay));
}

/* The item this thread got last, so that its done can skip the lock (done_fast()). */
static _Thread_local struct {
	uint64_t queue_id;
	uint32_t idx;
} last_get;

/* idx was claimed (PROCESSING): hand its item out. */
static void got(struct mc_workqueue *q, uint32_t idx, void *item_out)
{
	mci_copy_item(item_out, item_of(q, node_at(q, idx)), q->item_size);
	last_get.queue_id = q->id;
	last_get.idx = idx;
}

bool mc_workqueue_get(struct mc_workqueue *q, void *item_out)
{
	uint64_t now, added_ns = 0;
	uint32_t idx;

	if (!q || !item_out)
		return false;
	/* The ring's head is taken without the lock. */
	if ((idx = ready_pop(q, &added_ns)) != MCI_NONE) {
		if (q->m)
			metrics_started(q, idx, now_ns(q), added_ns);
		got(q, idx, item_out);
		/* A worker that leaves work queued makes sure another is on its way (wake_one()).
		 * What was queued after this look woke a worker itself. */
		if (queued_count(q) && atomic_load_explicit(&q->need_wake, memory_order_seq_cst)) {
			pthread_mutex_lock(&q->lock);
			wake_one(q);
			unlock(q);
		}
		return true;
	}
	pthread_mutex_lock(&q->lock);
	for (;;) {
		now = catch_up(q, false);
		refill(q);
		idx = ready_pop(q, &added_ns);
		if (idx != MCI_NONE)
			break;
		if (atomic_load_explicit(&q->shutting_down, memory_order_relaxed)) {
			unlock(q);
			return false;
		}
		idle_wait(q);
	}
	if (q->m)
		metrics_started(q, idx, now, added_ns);
	got(q, idx, item_out);
	if (queued_count(q))
		wake_one(q);
	ensure_timer(q);
	unlock(q);
	return true;
}

/*
 * done() of the item this thread got last, without the lock: clears PROCESSING with a CAS. The
 * node stays in the map with no flags, where the item's next add finds it (sweep_idle() frees
 * idle nodes when the slab is full). The lock is taken only to queue the item again (it was
 * added while processing) or to wake a drain. false: not that item, or no longer PROCESSING;
 * the locked path decides.
 */
static bool done_fast(struct mc_workqueue *q, const void *item)
{
	const struct mci_key k = { .item = item, .size = q->item_size, .equal = q->equal };
	uint32_t idx = last_get.idx;
	struct node *n = node_at(q, idx);
	unsigned s;

	last_get.queue_id = 0;
	if (!mci_key_equal(&k, item_of(q, n)))
		return false;
	if (q->m)
		metrics_finished(q, n, now_ns(q));
	s = flags_done(n);
	if (!s)
		return false;
	if (s & ST_DIRTY) {
		(void)lock_and_catch_up(q, false);
		fifo_push(q, idx);
		wake_one(q);
		unlock(q);
	}
	if (atomic_load_explicit(&q->drain, memory_order_seq_cst)) {
		pthread_mutex_lock(&q->lock);
		pthread_cond_broadcast(&q->drain_cond);
		pthread_mutex_unlock(&q->lock);
	}
	return true;
}

void mc_workqueue_done(struct mc_workqueue *q, const void *item)
{
	struct mci_key k;
	uint64_t now;

	if (!q || !item)
		return;
	if (last_get.queue_id == q->id && done_fast(q, item))
		return;
	k = key_prefetched(q, item);
	now = lock_and_catch_up(q, false);
	apply_done(q, &k, now);
	unlock(q);
}

void mc_workqueue_forget(struct mc_workqueue *q, const void *item)
{
	struct mci_key k;

	if (!q || !item)
		return;
	k = key_for(q, item);
	mci_rate_limiter_forget(q->rl, &k);
}

unsigned mc_workqueue_num_requeues(struct mc_workqueue *q, const void *item)
{
	struct mci_key k;

	if (!q || !item)
		return 0;
	k = key_for(q, item);
	return mci_rate_limiter_num_requeues(q->rl, &k);
}

size_t mc_workqueue_len(struct mc_workqueue *q)
{
	size_t len;

	if (!q)
		return 0;
	(void)lock_and_catch_up(q, true);
	len = queued_count(q);
	unlock(q);
	return len;
}

void mc_workqueue_shutdown(struct mc_workqueue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	shutdown_locked(q, false);
	pthread_mutex_unlock(&q->lock);
}

void mc_workqueue_shutdown_with_drain(struct mc_workqueue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	shutdown_locked(q, true);
	while (atomic_load_explicit(&q->drain, memory_order_relaxed) && processing_any(q))
		pthread_cond_wait(&q->drain_cond, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

bool mc_workqueue_shutting_down(struct mc_workqueue *q)
{
	return q && atomic_load_explicit(&q->shutting_down, memory_order_relaxed);
}
