/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meshcrypt work queue: a rate-limited work queue with the semantics of Kubernetes client-go's
 * TypedRateLimitingQueue (k8s.io/client-go/util/workqueue), three of its known flaws fixed.
 * docs/workqueue.md describes the semantics, the fixes and the metrics in full.
 *
 * In short: an item is any fixed-size value (a key, never a snapshot), copied in by value.
 *  - add() marks it dirty. A dirty item waits in FIFO order; adding it again collapses and
 *    keeps its place. An item is never handed to two workers at once: one added while it is
 *    being processed is queued again (at the tail) when the worker calls done().
 *  - add_after() / add_rate_limited() hold it back until a ready time; the earliest ready
 *    time wins. An item has at most one pending run: a dirty item absorbs delayed adds, and an
 *    immediate add cancels its delayed one.
 *  - After shutdown, adds are dropped (-ESHUTDOWN), delayed items are discarded, and get()
 *    returns the queued items until the queue is empty, then false.
 *
 * Every function is thread-safe, except mc_workqueue_free(), which must be the last call.
 */
#ifndef MESHCRYPT_WORKQUEUE_H
#define MESHCRYPT_WORKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mc_metrics;
struct mc_rate_limiter;
struct mc_workqueue;

/*
 * A monotonic nanosecond clock. Only tests replace the default (CLOCK_MONOTONIC): a worker
 * blocked in get() re-reads a replaced clock at least every millisecond, so a fake clock that a
 * test steps is noticed without any further call.
 */
struct mc_clock {
	uint64_t (*now_ns)(void *userdata);
	void *userdata;
};

/*
 * Queue configuration. Zeroed fields take their defaults, so a designated initialiser that sets
 * only item_size makes a working queue. Fields may be appended; mc_workqueue_new() passes the
 * size of the caller's struct, so binaries built against an older header keep working.
 */
struct mc_workqueue_config {
	/* Size of an item in bytes (required, > 0). Items are copied in and out by value. */
	size_t item_size;
	/*
	 * Item identity. NULL (both): bytewise equality. Set both to compare items by content
	 * (e.g. a struct with padding or a NUL-terminated name); equal items must hash equally.
	 * The queue never follows pointers inside items: what they point to is the caller's.
	 * Stored items are 8-byte aligned.
	 */
	uint64_t (*hash)(const void *item);
	bool (*equal)(const void *a, const void *b);
	/* Non-NULL enables the client-go metrics, labelled name="<name>" (copied). */
	const char *name;
	/*
	 * Limiter for add_rate_limited/forget/num_requeues. The queue takes ownership on success
	 * and on failure. NULL: mc_rate_limiter_default_controller().
	 */
	struct mc_rate_limiter *rate_limiter;
	/* Registry for the metrics (borrowed; must outlive the queue). NULL: mc_metrics_default(). */
	struct mc_metrics *metrics;
	/* Clock for delays, rate limiting and metrics (copied; also given to rate_limiter). */
	const struct mc_clock *clock;
};

/*
 * Creates a queue, or returns NULL with errno: EINVAL (bad config), EEXIST (a queue with this
 * name already reports to the registry), ENOMEM. cfg is only read. cfg_size is sizeof the
 * caller's struct mc_workqueue_config; call mc_workqueue_new(), which supplies it.
 */
struct mc_workqueue *mc_workqueue_new_sized(const struct mc_workqueue_config *cfg,
					    size_t cfg_size);

static inline struct mc_workqueue *mc_workqueue_new(const struct mc_workqueue_config *cfg)
{
	return mc_workqueue_new_sized(cfg, sizeof(*cfg));
}

/*
 * Frees the queue, its items, its rate limiter and its metrics registration. No other thread
 * may use the queue any more (shut it down and join the workers first). NULL is a no-op.
 */
void mc_workqueue_free(struct mc_workqueue *q);

/*
 * Marks item as needing processing. 0, -ESHUTDOWN (dropped), -EINVAL or -ENOMEM (the item was
 * not added).
 */
int mc_workqueue_add(struct mc_workqueue *q, const void *item);

/*
 * Adds item once delay_ns has passed (0: now). If it already waits, the earlier ready time
 * wins; if it is dirty, the pending run absorbs this one. Returns as mc_workqueue_add().
 */
int mc_workqueue_add_after(struct mc_workqueue *q, const void *item, uint64_t delay_ns);

/* add_after(item, the rate limiter's delay for item); counts a failure for item. */
int mc_workqueue_add_rate_limited(struct mc_workqueue *q, const void *item);

/*
 * Blocks until an item is ready, copies it to item_out (item_size bytes) and returns true; the
 * caller must call mc_workqueue_done() for it. Returns false once the queue is shut down and
 * empty: the worker should exit.
 */
bool mc_workqueue_get(struct mc_workqueue *q, void *item_out);

/*
 * Ends the processing of item; if it was added meanwhile it is queued again. done() for an item
 * that is not being processed is ignored.
 */
void mc_workqueue_done(struct mc_workqueue *q, const void *item);

/* Clears item's failure history in the rate limiter (call it when processing succeeded). */
void mc_workqueue_forget(struct mc_workqueue *q, const void *item);

/* How many failures the rate limiter holds for item. */
unsigned mc_workqueue_num_requeues(struct mc_workqueue *q, const void *item);

/* Number of items waiting to be handed out (not those being processed or delayed). */
size_t mc_workqueue_len(struct mc_workqueue *q);

/* Stops accepting items and wakes all workers; get() still hands out what is queued. */
void mc_workqueue_shutdown(struct mc_workqueue *q);

/*
 * Like shutdown(), then waits until no item is being processed. A concurrent or later
 * mc_workqueue_shutdown() makes it return at once. Workers must keep calling done().
 */
void mc_workqueue_shutdown_with_drain(struct mc_workqueue *q);

/* True once either shutdown has begun. */
bool mc_workqueue_shutting_down(struct mc_workqueue *q);

/*
 * Rate limiters. Delays are in nanoseconds. A limiter keys items by their bytes (or by the
 * owning queue's hash/equal), so every call on one limiter must use the same item_size.
 * Constructors return NULL with errno (EINVAL, ENOMEM); a limiter is freed with
 * mc_rate_limiter_free() unless a queue or a combinator took ownership of it.
 * Limiters are thread-safe.
 *
 * Per-item failure counts age out: an item with no failure for twice the limiter's longest
 * delay plus ten minutes counts as forgotten, and such entries are reclaimed, so a caller that
 * never calls forget() does not make the limiter grow without bound.
 */

/* base * 2^(failures-1), capped at max_ns, without overflow. */
struct mc_rate_limiter *mc_rate_limiter_exponential(uint64_t base_ns, uint64_t max_ns);

/* fast_ns for the first max_fast_attempts failures of an item, slow_ns afterwards. */
struct mc_rate_limiter *mc_rate_limiter_fast_slow(uint64_t fast_ns, uint64_t slow_ns,
						  unsigned max_fast_attempts);

/*
 * Overall token bucket (not per item): qps tokens per second (> 0), at most burst (>= 1)
 * saved up. Each call takes a token and returns how long until that token exists.
 */
struct mc_rate_limiter *mc_rate_limiter_bucket(double qps, unsigned burst);

/*
 * The largest delay of n (>= 1) limiters; num_requeues is their largest, forget reaches all.
 * Takes ownership of every non-NULL limiters[i] on success and on failure (the array itself
 * stays the caller's).
 */
struct mc_rate_limiter *mc_rate_limiter_max_of(struct mc_rate_limiter *const *limiters, size_t n);

/* inner's delay capped at max_ns. Takes ownership of inner on success and on failure. */
struct mc_rate_limiter *mc_rate_limiter_with_max_wait(struct mc_rate_limiter *inner,
						      uint64_t max_ns);

/* client-go's default: max_of(exponential 5 ms .. 1000 s, bucket 10 qps burst 100). */
struct mc_rate_limiter *mc_rate_limiter_default_controller(void);

/* Records a failure of item and returns how long to wait before retrying it. */
uint64_t mc_rate_limiter_when(struct mc_rate_limiter *rl, const void *item, size_t item_size);

/* Clears item's failure history. */
void mc_rate_limiter_forget(struct mc_rate_limiter *rl, const void *item, size_t item_size);

/* The number of failures recorded for item (since the last forget). */
unsigned mc_rate_limiter_num_requeues(struct mc_rate_limiter *rl, const void *item,
				      size_t item_size);

/* Replaces the limiter's clock (copied; NULL: CLOCK_MONOTONIC), combined limiters included. */
void mc_rate_limiter_set_clock(struct mc_rate_limiter *rl, const struct mc_clock *clock);

/* Frees the limiter (and those it owns). NULL is a no-op. */
void mc_rate_limiter_free(struct mc_rate_limiter *rl);

/*
 * MC_WORKQUEUE_DEFINE(prefix, type) declares an opaque struct prefix_queue and type-checked
 * static inline wrappers around every queue function: prefix_new(cfg) (item_size is set to
 * sizeof(type); cfg may be NULL), prefix_free, prefix_add(q, const type *), prefix_add_after,
 * prefix_add_rate_limited, prefix_get(q, type *), prefix_done, prefix_forget,
 * prefix_num_requeues, prefix_len, prefix_shutdown, prefix_shutdown_with_drain,
 * prefix_shutting_down, and prefix_base(q) for the untyped queue. Passing a queue of one prefix
 * or an item of another type to them is a compile-time error.
 */
#if defined(__GNUC__) || defined(__clang__)
#define MC_WORKQUEUE_MAYBE_UNUSED __attribute__((unused))
#else
#define MC_WORKQUEUE_MAYBE_UNUSED
#endif

/* A user rarely needs every wrapper; unused ones must not warn where the macro is expanded. */
#define MC_WORKQUEUE_DEFINE(prefix, type)                                                       \
	struct prefix##_queue;                                                                  \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline struct mc_workqueue *prefix##_base(struct prefix##_queue *q)              \
	{                                                                                       \
		return (struct mc_workqueue *)(void *)q;                                        \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline struct prefix##_queue *prefix##_new(const struct mc_workqueue_config *cfg) \
	{                                                                                       \
		struct mc_workqueue_config c = { 0 };                                           \
		if (cfg)                                                                        \
			c = *cfg;                                                               \
		c.item_size = sizeof(type);                                                     \
		return (struct prefix##_queue *)(void *)mc_workqueue_new(&c);                   \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline void prefix##_free(struct prefix##_queue *q)                              \
	{                                                                                       \
		mc_workqueue_free(prefix##_base(q));                                            \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline int prefix##_add(struct prefix##_queue *q, const type *item)              \
	{                                                                                       \
		return mc_workqueue_add(prefix##_base(q), item);                                \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline int prefix##_add_after(struct prefix##_queue *q, const type *item,        \
					     uint64_t delay_ns)                                 \
	{                                                                                       \
		return mc_workqueue_add_after(prefix##_base(q), item, delay_ns);                \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline int prefix##_add_rate_limited(struct prefix##_queue *q, const type *item) \
	{                                                                                       \
		return mc_workqueue_add_rate_limited(prefix##_base(q), item);                   \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline bool prefix##_get(struct prefix##_queue *q, type *item_out)               \
	{                                                                                       \
		return mc_workqueue_get(prefix##_base(q), item_out);                            \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline void prefix##_done(struct prefix##_queue *q, const type *item)            \
	{                                                                                       \
		mc_workqueue_done(prefix##_base(q), item);                                      \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline void prefix##_forget(struct prefix##_queue *q, const type *item)          \
	{                                                                                       \
		mc_workqueue_forget(prefix##_base(q), item);                                    \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline unsigned prefix##_num_requeues(struct prefix##_queue *q, const type *item) \
	{                                                                                       \
		return mc_workqueue_num_requeues(prefix##_base(q), item);                       \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline size_t prefix##_len(struct prefix##_queue *q)                             \
	{                                                                                       \
		return mc_workqueue_len(prefix##_base(q));                                      \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline void prefix##_shutdown(struct prefix##_queue *q)                          \
	{                                                                                       \
		mc_workqueue_shutdown(prefix##_base(q));                                        \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline void prefix##_shutdown_with_drain(struct prefix##_queue *q)               \
	{                                                                                       \
		mc_workqueue_shutdown_with_drain(prefix##_base(q));                             \
	}                                                                                       \
	MC_WORKQUEUE_MAYBE_UNUSED                                                               \
	static inline bool prefix##_shutting_down(struct prefix##_queue *q)                     \
	{                                                                                       \
		return mc_workqueue_shutting_down(prefix##_base(q));                            \
	}                                                                                       \
	struct prefix##_queue

#ifdef __cplusplus
}
#endif

#endif /* MESHCRYPT_WORKQUEUE_H */
