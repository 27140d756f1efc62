/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What engine.c, host.c and reconciler.c share; nothing outside the engine includes this. */
#ifndef MC_ENGINE_INTERNAL_H
#define MC_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>
#include <meshcrypt/workqueue.h>

#include "config.h"
#include "engine.h"
#include "peer-index.h"
#include "plugin-loader.h"

struct mc_handle; /* an io or timer source of a plugin (host.c) */

/* The reconciler's queue of store keys: keyq_add(), keyq_get(), ... */
MC_WORKQUEUE_DEFINE(keyq, struct mc_key);

/* The engine's own key, next to the store's: garbage collection after a full resync. */
#define MC_KEY_GC 0x100u

struct mc_plugin_instance {
	struct mc_plugin_ctx ctx; /* first: callbacks get &ctx */
	struct mc_engine *engine;
	enum mc_slot slot;
	struct mc_loaded_plugin *loaded;
	const struct mc_plugin *desc;
	struct mc_section *section;
	char log_prefix[80];
	void *data;
	bool initialized, started;
	struct mc_handle *handles; /* released after fini */
};

struct mc_engine {
	struct mc_config *cfg;
	sd_event *event;
	struct mc_plugin_instance plugins[MC_SLOT_COUNT]; /* .loaded NULL: slot unused */
	struct mc_store *store;
	struct keyq_queue *queue;
	struct mc_metrics *metrics;
	pthread_t *workers;
	unsigned n_workers;
	/* per worker: CLOCK_MONOTONIC ns when its current reconcile began, 0 while it waits */
	_Atomic uint64_t *busy_since;
	bool started;

	pthread_mutex_t status_lock;
	bool ready;
	char status[256];
	void (*ready_fn)(struct mc_engine *e, bool ready, const char *status, void *ud);
	void *ready_userdata;

	atomic_ulong reconciled, failed, permanent_failures, resyncs;
	atomic_ulong apply_errors[MC_SLOT_COUNT]; /* a dataplane plugin's apply returned < 0 */
	struct mc_metrics_collector *metrics_collector; /* engine-metrics.c */

	/* Peer indices, and a cache of them by the store's peer id for pod keys. */
	struct mc_peer_index *peer_index;
	pthread_mutex_t publication_lock;
	struct mc_publication publication; /* merged from the backend's host->publish */
	bool source_hears_publication;     /* the source is started and has a publish */
	pthread_mutex_t index_lock;
	uint16_t *index_by_peer_id;
	size_t index_cap;
	/* What the last reconcile of each peer did (enum mc_peer_outcome), by peer index: what
	 * status and /metrics tell of a peer beyond the backend's objects. */
	_Atomic uint8_t peer_outcome[UINT16_MAX + 1];
	/* Applies hold it shared, gc exclusively: gc sees no object half made. */
	pthread_rwlock_t apply_lock;
	sd_event_source *resync_timer;
	bool synced_once; /* the first full resync after the source was ready has been queued */
	/* The workers wait for the source's first complete view (client-go's WaitForCacheSync):
	 * in a view still filling in, with the Nodes listed but not yet the MeshcryptNodes, the
	 * local node has its Node's boot ID instead of its published one, and a restart re-keys
	 * its in states twice, dropping traffic meanwhile. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	bool gate_open, gate_closing;
};

static inline struct mc_plugin_instance *mc_instance(struct mc_plugin_ctx *ctx)
{
	return (struct mc_plugin_instance *)ctx;
}

enum mc_peer_outcome {
	MC_PEER_PENDING,  /* not reconciled since the engine started */
	MC_PEER_APPLIED,  /* the backend applied its desired state */
	MC_PEER_RETRYING, /* the last apply failed; it is retried with backoff */
	MC_PEER_FAILED,   /* a plugin said it can never be applied as it is */
	MC_PEER_OUTCOMES
};

/* The key generation whose inbound side the backend installed for every peer (0: none yet),
 * as published to the source (engine.c). */
unsigned mc_engine_published_generation(struct mc_engine *e);

/* "pending", "applied", "retrying", "failed" (engine.c). */
const char *mc_peer_outcome_name(enum mc_peer_outcome o);

/* host.c */
extern const struct mc_host mc_host_v1;
void mc_host_release_handles(struct mc_plugin_instance *inst);

/* reconciler.c */
/* With publication_lock held: hands the publication to the source if it hears them and there
 * is something to publish. Under the lock, so that the source never gets an older one last. */
void mc_engine_deliver_publication_locked(struct mc_engine *e);

/* Registers the engine's own metrics in its registry (engine-metrics.c). 0 or -errno. */
int mc_engine_metrics_register(struct mc_engine *e);

/* The index the reconciler handed out for the store's peer_id (0: none yet). */
uint16_t mc_reconciler_peer_index(struct mc_engine *e, uint32_t peer_id);

int mc_reconciler_start(struct mc_engine *e);
/* Lets the workers take keys: the source's view is complete for the first time. */
void mc_reconciler_open(struct mc_engine *e);
void mc_reconciler_drain(struct mc_engine *e);
/* The store's enqueue callback. */
void mc_reconciler_enqueue(void *engine, const struct mc_key *key);
/* host->requeue: a store key a plugin asks to reconcile again (0 or -errno). */
int mc_reconciler_requeue(struct mc_engine *e, const struct mc_key *key);
/* Queues every key of the store, then a garbage collection. Main loop. */
int mc_reconciler_resync(struct mc_engine *e);
/* The desired state of a pod IP with its peer index filled in (host->pod_state too). */
int mc_reconciler_pod_state(struct mc_engine *e, const struct mc_ip *ip, struct mc_pod_state *out);

/* engine.c: the source said it is ready (host->set_ready); main loop. */
void mc_engine_source_ready(struct mc_engine *e);

#endif
