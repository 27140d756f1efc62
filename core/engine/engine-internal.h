/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What engine.c, host.c and reconciler.c share; nothing outside the engine includes this. */
#ifndef MC_ENGINE_INTERNAL_H
#define MC_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>
#include <meshcrypt/workqueue.h>

#include "config.h"
#include "engine.h"
#include "plugin-loader.h"

struct mc_handle; /* an io or timer source of a plugin (host.c) */

/* The reconciler's queue of store keys: keyq_add(), keyq_get(), ... */
MC_WORKQUEUE_DEFINE(keyq, struct mc_key);

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
	bool started;

	pthread_mutex_t status_lock;
	bool ready;
	char status[256];
	void (*ready_fn)(struct mc_engine *e, bool ready, const char *status, void *ud);
	void *ready_userdata;

	atomic_ulong reconciled, failed, permanent_failures;
};

static inline struct mc_plugin_instance *mc_instance(struct mc_plugin_ctx *ctx)
{
	return (struct mc_plugin_instance *)ctx;
}

/* host.c */
extern const struct mc_host mc_host_v1;
void mc_host_release_handles(struct mc_plugin_instance *inst);

/* reconciler.c */
int mc_reconciler_start(struct mc_engine *e);
void mc_reconciler_drain(struct mc_engine *e);
/* The store's enqueue callback. */
void mc_reconciler_enqueue(void *engine, const struct mc_key *key);

#endif
