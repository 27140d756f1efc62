/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's own metrics, rendered on each scrape of /metrics next to the work queue's and
 * the plugins': readiness, reconciles by result and by plugin, stored objects, the key
 * generation published, and the node's /proc/net/xfrm_stat as meshcrypt_xfrm_errors_total.
 */
#include <errno.h>
#include <stdio.h>

#include "engine-internal.h"
#include "util.h"

static int write_xfrm_stat(struct mc_metrics_writer *w)
{
	_cleanup_fclose_ FILE *in = fopen("/proc/net/xfrm_stat", "re");
	unsigned long long value;
	char name[64];
	int r = 0;

	if (!in)
		return 0; /* a kernel without xfrm: no such family */
	while (r == 0 && fscanf(in, "%63s %llu", name, &value) == 2)
		r = mc_metrics_write_counter(w, "meshcrypt_xfrm_errors_total",
					     "the node's /proc/net/xfrm_stat counters "
					     "(meshcryptctl xfrm-errors explains them)",
					     &(struct mc_metrics_label){ "counter", name }, 1,
					     (double)value);
	return r;
}

static int collect(struct mc_metrics_writer *w, void *userdata)
{
	static const char reconcile_help[] = "keys reconciled, by result";
	struct mc_engine *e = userdata;
	struct mc_store_stats st = { 0 };
	struct {
		const char *result;
		unsigned long value;
	} results[] = {
		{ "ok", atomic_load(&e->reconciled) },
		{ "retried", atomic_load(&e->failed) },
		{ "permanent_failure", atomic_load(&e->permanent_failures) },
	};
	struct {
		const char *kind;
		size_t value;
	} objects[4];
	unsigned generation;
	int r;

	r = mc_metrics_write_gauge(w, "meshcrypt_ready", "1 once the source holds a complete view",
				   NULL, 0, mc_engine_ready(e));
	for (size_t i = 0; r == 0 && i < MC_ARRAY_SIZE(results); i++)
		r = mc_metrics_write_counter(w, "meshcrypt_reconcile_total", reconcile_help,
					     &(struct mc_metrics_label){ "result", results[i].result },
					     1, (double)results[i].value);
	for (int slot = 0; r == 0 && slot < MC_SLOT_COUNT; slot++) {
		const struct mc_plugin_instance *inst = &e->plugins[slot];
		struct mc_metrics_label labels[] = { { "plugin", inst->desc ? inst->desc->name : "" },
						     { "result", "error" } };

		if (!inst->desc || !inst->desc->dataplane)
			continue;
		r = mc_metrics_write_counter(w, "meshcrypt_plugin_apply_total",
					     "dataplane applies by plugin that returned an error "
					     "(retried or permanent)",
					     labels, 2, (double)atomic_load(&e->apply_errors[slot]));
	}
	if (e->store)
		mc_store_stats(e->store, &st);
	objects[0].kind = "node", objects[0].value = st.nodes;
	objects[1].kind = "meshcryptnode", objects[1].value = st.meshcrypt_nodes;
	objects[2].kind = "namespace", objects[2].value = st.namespaces;
	objects[3].kind = "pod", objects[3].value = st.pods;
	for (size_t i = 0; r == 0 && i < MC_ARRAY_SIZE(objects); i++)
		r = mc_metrics_write_gauge(w, "meshcrypt_store_objects", "objects the store holds",
					   &(struct mc_metrics_label){ "kind", objects[i].kind }, 1,
					   (double)objects[i].value);
	pthread_mutex_lock(&e->publication_lock);
	generation = e->publication.inbound_generation;
	pthread_mutex_unlock(&e->publication_lock);
	if (r == 0)
		r = mc_metrics_write_gauge(w, "meshcrypt_key_generation_published",
					   "the key generation whose inbound side the backend "
					   "installed for every peer (0: none yet)",
					   NULL, 0, generation);
	if (r == 0)
		r = mc_metrics_write_counter(w, "meshcrypt_resyncs_total", "full resyncs queued",
					     NULL, 0, (double)atomic_load(&e->resyncs));
	return r < 0 ? r : write_xfrm_stat(w);
}

int mc_engine_metrics_register(struct mc_engine *e)
{
	e->metrics_collector = mc_metrics_register(e->metrics, "engine", collect, e);
	return e->metrics_collector ? 0 : -errno;
}
