/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's own metrics, rendered on each scrape of /metrics next to the work queue's and
 * the plugins': readiness, reconciles by result and by plugin, stored objects, peers by the
 * outcome of their last reconcile, the key generation published, and the node's /proc/net/xfrm_stat as meshcrypt_xfrm_errors_total.
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

/* The participating peers by how their last reconcile went. */
static int write_peers(struct mc_metrics_writer *w, struct mc_engine *e)
{
	_cleanup_free_ uint32_t *ids = NULL;
	size_t n = 0, count[MC_PEER_OUTCOMES] = { 0 };
	int r = 0;

	if (e->store && mc_store_peer_ids(e->store, &ids, &n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint16_t index = mc_reconciler_peer_index(e, ids[i]);

		count[index ? atomic_load(&e->peer_outcome[index]) : MC_PEER_PENDING]++;
	}
	for (int o = 0; r == 0 && o < MC_PEER_OUTCOMES; o++)
		r = mc_metrics_write_gauge(w, "meshcrypt_peers",
					   "participating peers by the outcome of their last "
					   "reconcile",
					   &(struct mc_metrics_label){ "state", mc_peer_outcome_name(o) },
					   1, (double)count[o]);
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
	size_t managed[2] = { 0, 0 };
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
	if (e->store) {
		mc_store_stats(e->store, &st);
		mc_store_managed_pods(e->store, &managed[0], &managed[1]);
	}
	objects[0].kind = "node", objects[0].value = st.nodes;
	objects[1].kind = "meshcryptnode", objects[1].value = st.meshcrypt_nodes;
	objects[2].kind = "namespace", objects[2].value = st.namespaces;
	objects[3].kind = "pod", objects[3].value = st.pods;
	for (size_t i = 0; r == 0 && i < MC_ARRAY_SIZE(objects); i++)
		r = mc_metrics_write_gauge(w, "meshcrypt_store_objects", "objects the store holds",
					   &(struct mc_metrics_label){ "kind", objects[i].kind }, 1,
					   (double)objects[i].value);
	for (int remote = 0; r == 0 && remote < 2; remote++)
		r = mc_metrics_write_gauge(w, "meshcrypt_managed_pods",
					   "managed pod IPs, on this node or on participating peers",
					   &(struct mc_metrics_label){ "node", remote ? "peer" : "local" },
					   1, (double)managed[remote]);
	if (r == 0)
		r = mc_metrics_write_gauge(w, "meshcrypt_key_generation_published",
					   "the key generation whose inbound side the backend "
					   "installed for every peer (0: none yet)",
					   NULL, 0, mc_engine_published_generation(e));
	if (r == 0)
		r = mc_metrics_write_counter(w, "meshcrypt_resyncs_total", "full resyncs queued",
					     NULL, 0, (double)atomic_load(&e->resyncs));
	if (r == 0)
		r = write_peers(w, e);
	return r < 0 ? r : write_xfrm_stat(w);
}

int mc_engine_metrics_register(struct mc_engine *e)
{
	e->metrics_collector = mc_metrics_register(e->metrics, "engine", collect, e);
	return e->metrics_collector ? 0 : -errno;
}
