/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reconciler: worker threads take keys from the work queue, read the latest desired state
 * for each from the store, fill in the peer index, and hand it to the backend and the attach
 * plugin, in the order that keeps the leak guard closed (apply()). A failure is retried with the queue's rate limiter (AddRateLimited); a success
 * forgets the key's failures; -MC_EPERMANENT (the input can never be applied) is logged once
 * and not retried. A full resync queues every key and then MC_KEY_GC, which hands the plugins
 * the peers that exist and releases the indices of the others.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine-internal.h"
#include "log.h"
#include "util.h"

void mc_reconciler_enqueue(void *engine, const struct mc_key *key)
{
	struct mc_engine *e = engine;

	(void)keyq_add(e->queue, key);
}

int mc_reconciler_requeue(struct mc_engine *e, const struct mc_key *key)
{
	if (key->type < MC_KEY_LOCAL || key->type > MC_KEY_SECRET)
		return -EINVAL;
	return keyq_add(e->queue, key);
}

/* The engine's own "never applicable": a peer beyond the last index. Distinct from anything a
 * plugin returns (plugin.h keeps codes above 1000 for the ABI). */
#define ENOINDEX 1100

static bool is_permanent(int r)
{
	return r == -MC_EPERMANENT;
}

static const char *describe_key(struct mc_engine *e, const struct mc_key *key, char *buf,
				size_t size)
{
	char ip[MC_IP_STRLEN];

	switch (key->type) {
	case MC_KEY_LOCAL:
		snprintf(buf, size, "local node %s", e->cfg->node_name);
		break;
	case MC_KEY_PEER:
		snprintf(buf, size, "peer #%u", key->peer_id);
		break;
	case MC_KEY_POD:
		snprintf(buf, size, "pod %s", mc_ip_to_string(&key->ip, ip));
		break;
	case MC_KEY_SECRET:
		snprintf(buf, size, "Secrets");
		break;
	case MC_KEY_GC:
		snprintf(buf, size, "garbage collection");
		break;
	default:
		snprintf(buf, size, "key of type %u", key->type);
	}
	return buf;
}

/*
 * The order in which the dataplane plugins see a change. The backend prepares encryption
 * before the attach plugin marks traffic for it, and removes its objects (gc, a peer that
 * left) before the attach plugin lets go of the peer's guard prefixes. But a peer that
 * participates enters the attach plugin first: its prefixes are guarded before its backend
 * objects exist, and stay guarded while the backend fails and retries (DESIGN.md §5).
 */
static const enum mc_slot backend_first[] = { MC_SLOT_BACKEND, MC_SLOT_ATTACH };
static const enum mc_slot attach_first[] = { MC_SLOT_ATTACH, MC_SLOT_BACKEND };

/* The running dataplane plugin of slot, or NULL. Ops of ABI 1.1 that an older plugin lacks
 * are NULL (the loader zero-fills them). */
static struct mc_plugin_instance *dataplane(struct mc_engine *e, enum mc_slot slot)
{
	struct mc_plugin_instance *inst = &e->plugins[slot];

	return inst->started && inst->desc->dataplane ? inst : NULL;
}

/*
 * Backend first, stopping at a failure: the attach plugin does not mark traffic for objects
 * that are not there. A participating peer: attach plugin first, and the backend even when
 * that failed, since encrypting is better than neither guarding nor encrypting. Returns the
 * first error.
 */
static int apply(struct mc_engine *e, const struct mc_key *key, const void *state)
{
	bool guard_first = key->type == MC_KEY_PEER && ((const struct mc_peer_state *)state)->present;
	const enum mc_slot *order = guard_first ? attach_first : backend_first;
	int first_error = 0;

	for (size_t i = 0; i < MC_ARRAY_SIZE(backend_first); i++) {
		struct mc_plugin_instance *inst = dataplane(e, order[i]);
		const struct mc_dataplane_ops *ops;
		int r = 0;

		if (!inst)
			continue;
		ops = inst->desc->dataplane;
		switch (key->type) {
		case MC_KEY_LOCAL:
			r = ops->local_apply(&inst->ctx, state);
			break;
		case MC_KEY_PEER:
			r = ops->peer_apply(&inst->ctx, state);
			break;
		case MC_KEY_POD:
			r = ops->pod_apply(&inst->ctx, state);
			break;
		case MC_KEY_SECRET:
			r = ops->secret_changed ? ops->secret_changed(&inst->ctx) : 0;
			break;
		}
		if (r < 0)
			atomic_fetch_add(&e->apply_errors[order[i]], 1);
		if (r < 0 && !guard_first)
			return r;
		if (r < 0 && !first_error)
			first_error = r;
	}
	return first_error;
}

static void cache_index(struct mc_engine *e, uint32_t peer_id, uint16_t index)
{
	pthread_mutex_lock(&e->index_lock);
	if (peer_id >= e->index_cap) {
		size_t cap = e->index_cap ? e->index_cap : 64;
		uint16_t *v;

		while (cap <= peer_id)
			cap *= 2;
		v = realloc(e->index_by_peer_id, cap * sizeof(*v));
		if (v) {
			memset(v + e->index_cap, 0, (cap - e->index_cap) * sizeof(*v));
			e->index_by_peer_id = v;
			e->index_cap = cap;
		}
	}
	/* A cache that cannot grow is only slower: the next lookup asks the store again. */
	if (peer_id < e->index_cap)
		e->index_by_peer_id[peer_id] = index;
	pthread_mutex_unlock(&e->index_lock);
}

uint16_t mc_reconciler_peer_index(struct mc_engine *e, uint32_t peer_id)
{
	uint16_t index = 0;

	pthread_mutex_lock(&e->index_lock);
	if (peer_id < e->index_cap)
		index = e->index_by_peer_id[peer_id];
	pthread_mutex_unlock(&e->index_lock);
	return index;
}

/*
 * The peer's index; a participating peer gets one if it has none. Index, -ENOINDEX when every
 * index is taken (a cluster larger than the peer mask allows: the gc after each full resync
 * says how many peers have none, in one line), or -errno.
 */
static int peer_index(struct mc_engine *e, const struct mc_peer_state *peer)
{
	int r = mc_peer_index_get(e->peer_index, peer->name, peer->present);

	if (r == -ENOSPC)
		return -ENOINDEX;
	if (r >= 0)
		cache_index(e, peer->peer_id, (uint16_t)r);
	return r;
}

static int get_peer(struct mc_engine *e, uint32_t peer_id, struct mc_peer_state **out)
{
	int r = mc_store_get_peer(e->store, peer_id, out);

	if (r == 0 && (r = peer_index(e, *out)) >= 0) {
		(*out)->peer_index = (uint16_t)r;
		return 0;
	}
	mc_peer_state_free(*out);
	*out = NULL;
	return r;
}

int mc_reconciler_pod_state(struct mc_engine *e, const struct mc_ip *ip, struct mc_pod_state *out)
{
	struct mc_peer_state *peer = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	r = mc_store_get_pod(e->store, ip, out);
	if (r < 0 || out->role != MC_POD_REMOTE_MANAGED)
		return r;
	out->peer_index = mc_reconciler_peer_index(e, out->peer_id);
	if (out->peer_index)
		return 0;
	r = get_peer(e, out->peer_id, &peer);
	if (r == 0)
		out->peer_index = peer->peer_index;
	mc_peer_state_free(peer);
	return r;
}

/* The participating peers, for gc: their states and names. */
struct peer_set {
	struct mc_peer_state **states;
	const char **names;
	size_t n;
};

static void peer_set_free(struct peer_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		mc_peer_state_free(set->states[i]);
	free(set->states);
	free(set->names);
}

/* The participating peers with an index; *no_index counts those left out for want of one
 * (they have no kernel objects to keep). */
static int peer_set_load(struct mc_engine *e, struct peer_set *set, size_t *no_index)
{
	_cleanup_free_ uint32_t *ids = NULL;
	size_t n;
	int r;

	*set = (struct peer_set){ 0 };
	r = mc_store_peer_ids(e->store, &ids, &n);
	if (r < 0 || n == 0)
		return r;
	set->states = calloc(n, sizeof(*set->states));
	set->names = calloc(n, sizeof(*set->names));
	if (!set->states || !set->names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct mc_peer_state *p;

		r = get_peer(e, ids[i], &p);
		if (r == -ENOINDEX) {
			(*no_index)++;
			continue;
		}
		if (r < 0)
			return r;
		/* Ids are a snapshot: a peer may have stopped participating since. */
		if (!p->present) {
			mc_peer_state_free(p);
			continue;
		}
		set->states[set->n] = p;
		set->names[set->n++] = p->name;
	}
	return 0;
}

static int collect_garbage(struct mc_engine *e)
{
	struct peer_set set;
	size_t no_index = 0;
	int r;

	r = peer_set_load(e, &set, &no_index);
	if (r == 0 && no_index)
		mc_log_error("%zu participating peer(s) have no peer index: all %u are taken (the "
			     "peer mask's width), so this node neither encrypts to them nor guards "
			     "their pods; the other peers are not affected",
			     no_index, (unsigned)mc_config_max_peer_index(e->cfg));
	for (size_t i = 0; i < MC_ARRAY_SIZE(backend_first) && r == 0; i++) {
		struct mc_plugin_instance *inst = dataplane(e, backend_first[i]);

		if (inst && inst->desc->dataplane->gc)
			r = inst->desc->dataplane->gc(&inst->ctx,
						      (const struct mc_peer_state *const *)set.states,
						      set.n);
	}
	/* Only once every plugin has removed the objects carrying them are indices free. */
	if (r == 0) {
		r = mc_peer_index_retain(e->peer_index, set.names, set.n);
		if (r > 0) {
			mc_log_info("released the indices of %d peer(s) no longer in the cluster", r);
			pthread_mutex_lock(&e->index_lock);
			memset(e->index_by_peer_id, 0, e->index_cap * sizeof(*e->index_by_peer_id));
			pthread_mutex_unlock(&e->index_lock);
		}
		r = r < 0 ? r : 0;
	}
	peer_set_free(&set);
	return r;
}

static int reconcile_locked(struct mc_engine *e, const struct mc_key *key)
{
	int r;

	switch (key->type) {
	case MC_KEY_LOCAL: {
		struct mc_local_state *local = NULL;

		r = mc_store_get_local(e->store, &local);
		if (r == 0)
			r = apply(e, key, local);
		mc_local_state_free(local);
		return r;
	}
	case MC_KEY_PEER: {
		struct mc_peer_state *peer = NULL;

		r = get_peer(e, key->peer_id, &peer);
		if (r == 0)
			r = apply(e, key, peer);
		mc_peer_state_free(peer);
		return r;
	}
	case MC_KEY_POD: {
		struct mc_pod_state pod;

		r = mc_reconciler_pod_state(e, &key->ip, &pod);
		return r < 0 ? r : apply(e, key, &pod);
	}
	case MC_KEY_SECRET:
		return apply(e, key, NULL);
	}
	return -MC_EPERMANENT;
}

static int reconcile(struct mc_engine *e, const struct mc_key *key)
{
	int r;

	if (key->type == MC_KEY_GC) {
		pthread_rwlock_wrlock(&e->apply_lock);
		r = collect_garbage(e);
	} else {
		pthread_rwlock_rdlock(&e->apply_lock);
		r = reconcile_locked(e, key);
	}
	pthread_rwlock_unlock(&e->apply_lock);
	return r;
}

int mc_reconciler_resync(struct mc_engine *e)
{
	const struct mc_key gc = { .type = MC_KEY_GC };
	_cleanup_free_ struct mc_key *keys = NULL;
	size_t n;
	int r;

	r = mc_store_keys(e->store, &keys, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		(void)keyq_add(e->queue, &keys[i]);
	(void)keyq_add(e->queue, &gc);
	atomic_fetch_add(&e->resyncs, 1);
	mc_log_debug("full resync: %zu keys queued, then garbage collection", n);
	return 0;
}

/* A plugin's "not yet" (-EAGAIN) is normal for a moment at start (plugin.h). */
#define EAGAIN_QUIET_ATTEMPTS 5

/* Waits until the workers may run; false: the engine stops before the first complete view. */
static bool wait_for_gate(struct mc_engine *e)
{
	bool open;

	pthread_mutex_lock(&e->gate_lock);
	while (!e->gate_open && !e->gate_closing)
		pthread_cond_wait(&e->gate_cond, &e->gate_lock);
	open = e->gate_open;
	pthread_mutex_unlock(&e->gate_lock);
	return open;
}

static void set_gate(struct mc_engine *e, bool open)
{
	pthread_mutex_lock(&e->gate_lock);
	if (open)
		e->gate_open = true;
	else
		e->gate_closing = true;
	pthread_cond_broadcast(&e->gate_cond);
	pthread_mutex_unlock(&e->gate_lock);
}

void mc_reconciler_open(struct mc_engine *e)
{
	set_gate(e, true);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record_outcome(struct mc_engine *e, const struct mc_key *key,
			   enum mc_peer_outcome outcome)
{
	uint16_t index = key->type == MC_KEY_PEER ? mc_reconciler_peer_index(e, key->peer_id) : 0;

	if (index)
		atomic_store(&e->peer_outcome[index], (uint8_t)outcome);
}

struct worker_arg {
	struct mc_engine *e;
	_Atomic uint64_t *busy_since;
};

static void *worker(void *arg)
{
	struct mc_engine *e = ((struct worker_arg *)arg)->e;
	_Atomic uint64_t *busy_since = ((struct worker_arg *)arg)->busy_since;
	struct mc_key key;
	char what[64];

	free(arg);
	if (!wait_for_gate(e))
		return NULL; /* what is queued was seen in a partial view: the next start redoes it */
	while (keyq_get(e->queue, &key)) {
		int r;

		atomic_store(busy_since, monotonic_ns());
		r = reconcile(e, &key);
		atomic_store(busy_since, 0);

		record_outcome(e, &key, r == 0 ? MC_PEER_APPLIED :
					is_permanent(r) ? MC_PEER_FAILED : MC_PEER_RETRYING);
		if (r == 0) {
			atomic_fetch_add(&e->reconciled, 1);
			keyq_forget(e->queue, &key);
		} else if (r == -ENOINDEX) {
			/* one line for all of them comes with the next garbage collection */
			atomic_fetch_add(&e->permanent_failures, 1);
			mc_log_debug("%s: its peer has no index (every one is taken)",
				     describe_key(e, &key, what, sizeof(what)));
			keyq_forget(e->queue, &key);
		} else if (is_permanent(r)) {
			atomic_fetch_add(&e->permanent_failures, 1);
			mc_log_error("%s: can never be applied as it is (a plugin said so, see "
				     "above); not retried until it changes or the next full resync",
				     describe_key(e, &key, what, sizeof(what)));
			keyq_forget(e->queue, &key);
		} else {
			unsigned attempt = keyq_num_requeues(e->queue, &key) + 1;

			atomic_fetch_add(&e->failed, 1);
			mc_log_errno(r == -EAGAIN && attempt <= EAGAIN_QUIET_ATTEMPTS ? LOG_DEBUG :
											LOG_WARNING,
				     r, "%s: apply failed (attempt %u), will retry: %m",
				     describe_key(e, &key, what, sizeof(what)), attempt);
			(void)keyq_add_rate_limited(e->queue, &key);
		}
		keyq_done(e->queue, &key);
	}
	return NULL;
}

int mc_reconciler_start(struct mc_engine *e)
{
	int r;

	e->workers = calloc(e->cfg->workers, sizeof(*e->workers));
	e->busy_since = calloc(e->cfg->workers, sizeof(*e->busy_since));
	if (!e->workers || !e->busy_since) {
		free(e->workers);
		free(e->busy_since);
		e->workers = NULL;
		e->busy_since = NULL;
		return -ENOMEM;
	}
	/* Writer first: a gc must not wait behind a stream of applies. */
	mc_rwlock_init_writer_first(&e->apply_lock);
	for (e->n_workers = 0; e->n_workers < e->cfg->workers; e->n_workers++) {
		struct worker_arg *wa = malloc(sizeof(*wa));

		r = wa ? 0 : -ENOMEM;
		if (wa) {
			*wa = (struct worker_arg){ e, &e->busy_since[e->n_workers] };
			r = -pthread_create(&e->workers[e->n_workers], NULL, worker, wa);
			if (r < 0)
				free(wa);
		}
		if (r < 0) {
			mc_reconciler_drain(e);
			return r;
		}
	}
	return 0;
}

void mc_reconciler_drain(struct mc_engine *e)
{
	if (!e->workers)
		return;
	set_gate(e, false);
	keyq_shutdown_with_drain(e->queue);
	for (unsigned i = 0; i < e->n_workers; i++)
		pthread_join(e->workers[i], NULL);
	pthread_rwlock_destroy(&e->apply_lock);
	free(e->workers);
	free(e->busy_since);
	e->workers = NULL;
	e->busy_since = NULL;
	e->n_workers = 0;
}

bool mc_engine_workers_alive(struct mc_engine *e, uint64_t max_busy_ns, unsigned *stuck)
{
	uint64_t now = monotonic_ns();

	for (unsigned i = 0; e && i < e->n_workers; i++) {
		uint64_t since = atomic_load(&e->busy_since[i]);

		if (since && now - since > max_busy_ns) {
			if (stuck)
				*stuck = i;
			return false;
		}
	}
	return true;
}
