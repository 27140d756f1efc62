/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reconciler: worker threads take keys from the work queue, read the latest desired state
 * for each from the store, and hand it to the backend and attach plugins. A failure is retried
 * with the queue's rate limiter (AddRateLimited); a success forgets the key's failures; an
 * input that can never be applied is logged once and not retried.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"
#include "util.h"

void mc_reconciler_enqueue(void *engine, const struct mc_key *key)
{
	struct mc_engine *e = engine;

	(void)keyq_add(e->queue, key);
}

static bool is_permanent(int r)
{
	return r == -EINVAL || r == -ERANGE || r == -EOPNOTSUPP;
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
	default:
		snprintf(buf, size, "key of type %u", key->type);
	}
	return buf;
}

/* The dataplane plugins in the order a change applies: the backend prepares encryption before
 * the attach plugin marks traffic for it. */
static const enum mc_slot apply_order[] = { MC_SLOT_BACKEND, MC_SLOT_ATTACH };

static int apply(struct mc_engine *e, const struct mc_key *key, const void *state)
{
	for (size_t i = 0; i < MC_ARRAY_SIZE(apply_order); i++) {
		struct mc_plugin_instance *inst = &e->plugins[apply_order[i]];
		const struct mc_dataplane_ops *ops;
		int r;

		if (!inst->started)
			continue;
		ops = inst->desc->dataplane;
		switch (key->type) {
		case MC_KEY_LOCAL:
			r = ops->local_apply(&inst->ctx, state);
			break;
		case MC_KEY_PEER:
			r = ops->peer_apply(&inst->ctx, state);
			break;
		default:
			r = ops->pod_apply(&inst->ctx, state);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int reconcile(struct mc_engine *e, const struct mc_key *key)
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

		r = mc_store_get_peer(e->store, key->peer_id, &peer);
		if (r == 0)
			r = apply(e, key, peer);
		mc_peer_state_free(peer);
		return r;
	}
	case MC_KEY_POD: {
		struct mc_pod_state pod;

		r = mc_store_get_pod(e->store, &key->ip, &pod);
		return r < 0 ? r : apply(e, key, &pod);
	}
	case MC_KEY_SECRET:
		/* No plugin of ABI 1.0 reads Secrets through the host yet: nothing to apply. */
		return 0;
	}
	return -EINVAL;
}

static void *worker(void *arg)
{
	struct mc_engine *e = arg;
	struct mc_key key;
	char what[64];

	while (keyq_get(e->queue, &key)) {
		int r = reconcile(e, &key);

		if (r == 0) {
			atomic_fetch_add(&e->reconciled, 1);
			keyq_forget(e->queue, &key);
		} else if (is_permanent(r)) {
			atomic_fetch_add(&e->permanent_failures, 1);
			mc_log_errno(LOG_ERR, r, "%s: cannot be applied, not retrying: %m",
				     describe_key(e, &key, what, sizeof(what)));
			keyq_forget(e->queue, &key);
		} else {
			atomic_fetch_add(&e->failed, 1);
			mc_log_errno(LOG_WARNING, r, "%s: apply failed (attempt %u), will retry: %m",
				     describe_key(e, &key, what, sizeof(what)),
				     keyq_num_requeues(e->queue, &key) + 1);
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
	if (!e->workers)
		return -ENOMEM;
	for (e->n_workers = 0; e->n_workers < e->cfg->workers; e->n_workers++) {
		r = -pthread_create(&e->workers[e->n_workers], NULL, worker, e);
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
	keyq_shutdown_with_drain(e->queue);
	for (unsigned i = 0; i < e->n_workers; i++)
		pthread_join(e->workers[i], NULL);
	free(e->workers);
	e->workers = NULL;
	e->n_workers = 0;
}
