/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"
#include "util.h"

/* Init and start run in slot order (attach, backend, source): the dataplane is ready before
 * the source produces its first event. Stop and fini run in reverse. */

static void store_event(void *ctx, int level, const char *message)
{
	mc_log_prefixed(level, "store: ", "%s", message);
}

static bool slot_used(const struct mc_config *cfg, enum mc_slot slot)
{
	return strcmp(cfg->slots[slot].plugin, "none") != 0;
}

static bool slot_is_auto(const struct mc_config *cfg, enum mc_slot slot)
{
	return slot == MC_SLOT_ATTACH && strcmp(cfg->slots[slot].plugin, "auto") == 0;
}

/* Loads plugin `name` into the slot and validates its section. */
static int load_slot_plugin(struct mc_engine *e, enum mc_slot slot, const char *name,
			    char *error, size_t size)
{
	struct mc_plugin_instance *inst = &e->plugins[slot];
	const struct mc_config *cfg = e->cfg;
	struct mc_config_error cerr;
	char why[sizeof(cerr.message)];
	int r;

	inst->engine = e;
	inst->slot = slot;
	inst->ctx.host = &mc_host_v1;
	r = mc_plugin_load(cfg->plugin_dir, mc_slot_kind(slot), name, &inst->loaded, why,
			   sizeof(why));
	if (r < 0) {
		snprintf(error, size, "%s: [%s] plugin = \"%s\": %s", cfg->path, mc_slot_name(slot),
			 cfg->slots[slot].plugin, why);
		return r;
	}
	inst->desc = mc_loaded_plugin_descriptor(inst->loaded);
	snprintf(inst->log_prefix, sizeof(inst->log_prefix), "%s: ", inst->desc->name);

	r = mc_config_plugin_section(cfg, inst->desc->name, inst->desc->options, &inst->section,
				     &cerr);
	if (r < 0) {
		snprintf(error, size, "%s", cerr.message);
		return r;
	}
	if (inst->desc->config_check) {
		why[0] = '\0';
		r = inst->desc->config_check(&inst->ctx, why, sizeof(why));
		if (r < 0) {
			snprintf(error, size, "%s: [plugin.%s]: %s", cfg->path, inst->desc->name,
				 why[0] ? why : strerror(-r));
			return r < 0 ? r : -EINVAL;
		}
	}
	return 0;
}

static void unload_slot(struct mc_plugin_instance *inst)
{
	mc_section_free(inst->section);
	inst->section = NULL;
	mc_plugin_unload(inst->loaded);
	inst->loaded = NULL;
	inst->desc = NULL;
}

static int load_slot(struct mc_engine *e, enum mc_slot slot, char *error, size_t size)
{
	int r = -ENOENT;

	if (!slot_is_auto(e->cfg, slot))
		return load_slot_plugin(e, slot, e->cfg->slots[slot].plugin, error, size);
	for (size_t i = 0; mc_config_auto_attach[i] && r == -ENOENT; i++)
		r = load_slot_plugin(e, slot, mc_config_auto_attach[i], error, size);
	return r;
}

/*
 * Runs the slot's init. With plugin = auto, a plugin whose method this kernel lacks gives way
 * to the next one (fini, unload, load, init). Returns init's result; if the next plugin does
 * not load, that is logged and the slot is left empty (inst->loaded NULL).
 */
static int init_slot(struct mc_plugin_instance *inst)
{
	struct mc_engine *e = inst->engine;
	char error[512];
	int r;

	for (;;) {
		const char *tried = inst->desc->name;
		size_t next = 0;

		inst->initialized = true; /* fini copes with a partial init */
		r = inst->desc->init ? inst->desc->init(&inst->ctx) : 0;
		if (r != -EOPNOTSUPP || !slot_is_auto(e->cfg, inst->slot))
			return r;
		while (mc_config_auto_attach[next] && strcmp(mc_config_auto_attach[next], tried) != 0)
			next++;
		if (!mc_config_auto_attach[next] || !mc_config_auto_attach[++next])
			return r;
		mc_log_info("[attach] plugin = auto: %s is not supported by this kernel, trying %s",
			    tried, mc_config_auto_attach[next]);
		if (inst->desc->fini)
			inst->desc->fini(&inst->ctx);
		inst->initialized = false;
		mc_host_release_handles(inst);
		unload_slot(inst);
		r = load_slot_plugin(e, inst->slot, mc_config_auto_attach[next], error,
				     sizeof(error));
		if (r < 0)
			return mc_log_error_errno(r, "%s", error);
	}
}

int mc_engine_new(struct mc_config *cfg, sd_event *event, struct mc_engine **out, char *error,
		  size_t size)
{
	struct mc_config_error cerr;
	struct mc_engine *e;
	int r;

	e = calloc(1, sizeof(*e));
	if (!e) {
		mc_config_free(cfg);
		return -ENOMEM;
	}
	e->cfg = cfg;
	e->event = sd_event_ref(event);
	e->metrics = mc_metrics_new();
	if (!e->metrics) {
		r = -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&e->status_lock, NULL);
	pthread_mutex_init(&e->index_lock, NULL);
	pthread_mutex_init(&e->publication_lock, NULL);
	pthread_mutex_init(&e->gate_lock, NULL);
	pthread_cond_init(&e->gate_cond, NULL);
	e->publication.struct_size = sizeof(e->publication);
	r = mc_engine_metrics_register(e);
	if (r < 0)
		goto fail;

	r = mc_config_check_plugin_sections(cfg, &cerr);
	if (r < 0) {
		snprintf(error, size, "%s", cerr.message);
		goto fail;
	}
	for (int slot = 0; slot < MC_SLOT_COUNT; slot++) {
		if (!slot_used(cfg, slot))
			continue;
		r = load_slot(e, slot, error, size);
		if (r < 0)
			goto fail;
	}
	*out = e;
	return 0;
fail:
	mc_engine_free(e);
	return r;
}

const struct mc_config *mc_engine_config(const struct mc_engine *e)
{
	return e->cfg;
}

struct mc_metrics *mc_engine_metrics(const struct mc_engine *e)
{
	return e->metrics;
}

static void fini_plugins(struct mc_engine *e)
{
	for (int slot = MC_SLOT_COUNT - 1; slot >= 0; slot--) {
		struct mc_plugin_instance *inst = &e->plugins[slot];

		if (inst->initialized && inst->desc->fini)
			inst->desc->fini(&inst->ctx);
		inst->initialized = false;
		if (inst->loaded)
			mc_host_release_handles(inst);
	}
}

/* A plugin that failed: required -> the whole start fails; otherwise it is left out. */
static int plugin_failed(struct mc_plugin_instance *inst, const char *phase, int r)
{
	const struct mc_config *cfg = inst->engine->cfg;
	bool required = cfg->slots[inst->slot].required;

	mc_log_errno(required ? LOG_ERR : LOG_WARNING, r, "%s plugin %s: %s failed: %m%s",
		     mc_slot_name(inst->slot), inst->desc->name, phase,
		     required ? "" : " (not required: continuing without it)");
	if (!required) {
		if (inst->desc->fini && inst->initialized)
			inst->desc->fini(&inst->ctx);
		inst->initialized = false;
		mc_host_release_handles(inst);
		return 0;
	}
	return r;
}

static int open_peer_index(struct mc_engine *e, char *error, size_t size)
{
	error[0] = '\0';
	mc_peer_index_free(e->peer_index);
	e->peer_index = NULL;
	return mc_peer_index_open(e->cfg->state_dir, mc_config_max_peer_index(e->cfg),
				  &e->peer_index, error, size);
}

static int on_resync_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mc_engine *e = userdata;
	int r = mc_reconciler_resync(e);

	if (r < 0)
		mc_log_errno(LOG_WARNING, r, "periodic resync: %m (trying again next interval)");
	(void)sd_event_source_set_time_relative(s, e->cfg->dataplane.resync_interval_ns / 1000);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

void mc_engine_source_ready(struct mc_engine *e)
{
	int r;

	/* The first complete view: objects of peers deleted while the agent was down go now. */
	if (e->synced_once || !e->queue)
		return;
	e->synced_once = true;
	r = mc_reconciler_resync(e);
	if (r < 0)
		mc_log_errno(LOG_WARNING, r, "first full resync: %m (trying again at the next one)");
	mc_reconciler_open(e);
	if (e->resync_timer || !e->cfg->dataplane.resync_interval_ns)
		return;
	r = sd_event_add_time_relative(e->event, &e->resync_timer, CLOCK_MONOTONIC,
				       e->cfg->dataplane.resync_interval_ns / 1000, 1000000,
				       on_resync_timer, e);
	if (r < 0)
		mc_log_errno(LOG_WARNING, r, "resync timer: %m (no periodic resync)");
}

void mc_engine_deliver_publication_locked(struct mc_engine *e)
{
	struct mc_plugin_instance *source = &e->plugins[MC_SLOT_SOURCE];

	if (e->source_hears_publication &&
	    (e->publication.inbound_generation || e->publication.wireguard_public_key[0]))
		source->desc->publish(&source->ctx, &e->publication);
}

/* The source starts or stops hearing publications; the workers may be publishing meanwhile. */
static void source_hears_publication(struct mc_engine *e, bool on)
{
	struct mc_plugin_instance *source = &e->plugins[MC_SLOT_SOURCE];

	pthread_mutex_lock(&e->publication_lock);
	e->source_hears_publication = on && source->started && source->desc->publish;
	mc_engine_deliver_publication_locked(e);
	pthread_mutex_unlock(&e->publication_lock);
}

int mc_engine_start(struct mc_engine *e)
{
	struct mc_store_config scfg = {
		.local_node = e->cfg->node_name,
		.managed_label = e->cfg->managed_label,
		.enqueue = mc_reconciler_enqueue,
		.event = store_event,
		.ctx = e,
	};
	struct mc_workqueue_config qcfg = {
		.name = "reconciler",
		.metrics = e->metrics,
	};
	const char *backend = e->cfg->slots[MC_SLOT_BACKEND].plugin;

	/* Only marked traffic is encrypted: a real backend without eBPF encrypts nothing. */
	if (!e->plugins[MC_SLOT_ATTACH].loaded && backend && strcmp(backend, "dryrun") != 0)
		mc_log_warning("[attach] plugin = none: nothing is marked, so the %s backend "
			       "encrypts nothing (set [attach] plugin = auto)",
			       backend);
	char error[512];
	int r;

	/* A stopped engine starts again from nothing: its source reports the cluster anew. */
	mc_store_free(e->store);
	keyq_free(e->queue);
	e->queue = NULL;
	e->synced_once = false;
	e->gate_open = e->gate_closing = false; /* no worker runs yet: no lock needed */
	pthread_mutex_lock(&e->status_lock);
	e->ready = false;
	snprintf(e->status, sizeof(e->status), "starting");
	pthread_mutex_unlock(&e->status_lock);
	e->store = mc_store_new(&scfg);
	if (!e->store)
		return mc_log_error_errno(-errno, "cannot create the store: %m");
	e->queue = keyq_new(&qcfg);
	if (!e->queue)
		return mc_log_error_errno(-errno, "cannot create the work queue: %m");
	r = open_peer_index(e, error, sizeof(error));
	if (r < 0)
		return mc_log_error_errno(r, "peer indices: %s", error);

	for (int slot = 0; slot < MC_SLOT_COUNT; slot++) {
		struct mc_plugin_instance *inst = &e->plugins[slot];

		if (!inst->loaded)
			continue;
		r = init_slot(inst);
		/* !loaded: auto's next plugin did not load (logged). */
		if (r < 0 && (!inst->loaded || (r = plugin_failed(inst, "init", r)) < 0))
			goto fail;
	}
	r = mc_reconciler_start(e);
	if (r < 0) {
		mc_log_error_errno(r, "cannot start reconciler workers: %m");
		goto fail;
	}
	for (int slot = 0; slot < MC_SLOT_COUNT; slot++) {
		struct mc_plugin_instance *inst = &e->plugins[slot];

		if (!inst->initialized)
			continue;
		r = inst->desc->start ? inst->desc->start(&inst->ctx) : 0;
		if (r < 0 && (r = plugin_failed(inst, "start", r)) < 0)
			goto fail;
		inst->started = inst->initialized;
	}
	e->started = true;
	/* With what a backend published before the source was there to hear it. */
	source_hears_publication(e, true);
	return 0;
fail:
	e->started = true;
	mc_engine_stop(e);
	return r;
}

void mc_engine_drain(struct mc_engine *e)
{
	mc_reconciler_drain(e);
}

void mc_engine_stop(struct mc_engine *e)
{
	if (!e->started)
		return;
	source_hears_publication(e, false);
	/* The source first, so no new keys arrive while the queue drains. */
	for (int slot = MC_SLOT_COUNT - 1; slot >= 0; slot--) {
		struct mc_plugin_instance *inst = &e->plugins[slot];

		if (slot == MC_SLOT_BACKEND)
			mc_reconciler_drain(e);
		if (inst->started && inst->desc->stop)
			inst->desc->stop(&inst->ctx);
		inst->started = false;
	}
	fini_plugins(e);
	e->resync_timer = sd_event_source_disable_unref(e->resync_timer);
	mc_peer_index_free(e->peer_index);
	e->peer_index = NULL;
	free(e->index_by_peer_id);
	e->index_by_peer_id = NULL;
	e->index_cap = 0;
	e->started = false;
}

/* Has the dataplane plugins of slots (a mask of 1 << slot) remove their objects: init, which
 * acquires what cleanup needs (netlink sockets, pinned maps), cleanup (backend before
 * attach), fini. Returns 0 or the last error. */
static int cleanup_slots(struct mc_engine *e, unsigned slots)
{
	static const enum mc_slot order[] = { MC_SLOT_BACKEND, MC_SLOT_ATTACH };
	int r, failed = 0;

	for (int slot = 0; slot < MC_SLOT_COUNT; slot++) {
		struct mc_plugin_instance *inst = &e->plugins[slot];

		if (!inst->loaded || slot == MC_SLOT_SOURCE || !(slots & 1u << slot))
			continue;
		r = init_slot(inst);
		if (r < 0 && !inst->loaded) {
			failed = r;
		} else if (r < 0) {
			failed = mc_log_error_errno(r, "%s plugin %s: init failed: %m; its objects stay",
						    mc_slot_name(slot), inst->desc->name);
		}
	}
	for (size_t i = 0; i < MC_ARRAY_SIZE(order); i++) {
		struct mc_plugin_instance *inst = &e->plugins[order[i]];

		if (!inst->loaded || !inst->initialized || !(slots & 1u << order[i]))
			continue;
		if (!inst->desc->cleanup) {
			mc_log_info("%s plugin %s: nothing to clean up", mc_slot_name(order[i]),
				    inst->desc->name);
			continue;
		}
		r = inst->desc->cleanup(&inst->ctx);
		if (r < 0)
			failed = mc_log_error_errno(r, "%s plugin %s: cleanup failed: %m",
						    mc_slot_name(order[i]), inst->desc->name);
		else
			mc_log_info("%s plugin %s: removed its objects", mc_slot_name(order[i]),
				    inst->desc->name);
	}
	fini_plugins(e);
	return failed;
}

int mc_engine_cleanup(struct mc_engine *e)
{
	int r, failed = cleanup_slots(e, 1u << MC_SLOT_BACKEND | 1u << MC_SLOT_ATTACH);

	/* The indices mean nothing once the objects carrying them are gone. */
	if (!failed && (r = mc_peer_index_remove_file(e->cfg->state_dir)) < 0)
		failed = mc_log_error_errno(r, "%s/%s: %m", e->cfg->state_dir, MC_PEER_INDEX_FILE);
	return failed;
}

int mc_engine_cleanup_replaced_backend(struct mc_engine *prev, const struct mc_engine *next)
{
	const char *was = prev->cfg->slots[MC_SLOT_BACKEND].plugin;
	const char *now = next->cfg->slots[MC_SLOT_BACKEND].plugin;

	if (!was || (now && strcmp(was, now) == 0))
		return 0;
	mc_log_info("the backend changed from %s to %s: removing the objects of %s", was,
		    now ? now : "none", was);
	return cleanup_slots(prev, 1u << MC_SLOT_BACKEND);
}

void mc_engine_free(struct mc_engine *e)
{
	if (!e)
		return;
	mc_engine_stop(e);
	keyq_free(e->queue);
	mc_metrics_free(e->metrics);
	mc_store_free(e->store);
	for (int slot = 0; slot < MC_SLOT_COUNT; slot++)
		unload_slot(&e->plugins[slot]);
	mc_config_free(e->cfg);
	sd_event_unref(e->event);
	pthread_mutex_destroy(&e->status_lock);
	pthread_mutex_destroy(&e->index_lock);
	pthread_mutex_destroy(&e->publication_lock);
	pthread_mutex_destroy(&e->gate_lock);
	pthread_cond_destroy(&e->gate_cond);
	free(e);
}

bool mc_engine_ready(struct mc_engine *e)
{
	bool ready;

	pthread_mutex_lock(&e->status_lock);
	ready = e->ready;
	pthread_mutex_unlock(&e->status_lock);
	return ready;
}

const char *mc_engine_status(struct mc_engine *e, char *buf, size_t size)
{
	pthread_mutex_lock(&e->status_lock);
	snprintf(buf, size, "%s", e->status);
	pthread_mutex_unlock(&e->status_lock);
	return buf;
}

void mc_engine_on_ready(struct mc_engine *e,
			void (*fn)(struct mc_engine *e, bool ready, const char *status, void *ud),
			void *userdata)
{
	e->ready_fn = fn;
	e->ready_userdata = userdata;
}

int mc_engine_write_plan(struct mc_engine *e, FILE *f)
{
	return e->store ? mc_store_write_plan(e->store, f) : -ENODATA;
}

typedef void counter_fn(FILE *f, const char *name, const char *value, const char *help,
			bool first);

/* Calls fn for each of the attach plugin's BPF counters (meshcrypt_bpf_*, without the prefix):
 * what the programs marked, saw and dropped (docs/attach.md), with the help line of its family.
 * Returns how many there were. */
static size_t each_dataplane_counter(struct mc_engine *e, counter_fn *fn, FILE *f)
{
	static const char prefix[] = "meshcrypt_bpf_", help_prefix[] = "# HELP meshcrypt_bpf_";
	_cleanup_free_ char *text = mc_metrics_render(e->metrics, NULL);
	const char *help = "";
	size_t n = 0;

	for (char *line = text; line && *line;) {
		char *end = strchr(line, '\n'), *space;

		if (end)
			*end = '\0';
		if (strncmp(line, help_prefix, sizeof(help_prefix) - 1) == 0 &&
		    (space = strchr(line + sizeof(help_prefix) - 1, ' ')))
			help = space + 1;
		if (strncmp(line, prefix, sizeof(prefix) - 1) == 0 && (space = strchr(line, ' '))) {
			*space = '\0';
			fn(f, line + sizeof(prefix) - 1, space + 1, help, n++ == 0);
		}
		line = end ? end + 1 : NULL;
	}
	return n;
}

static void counter_as_text(FILE *f, const char *name, const char *value, const char *help,
			    bool first)
{
	fprintf(f, "bpf: %s %s\n", name, value);
}

static void counter_as_json(FILE *f, const char *name, const char *value, const char *help,
			    bool first)
{
	fprintf(f, "%s\"%s\": %s", first ? "" : ", ", name, value);
}

static void counter_explained(FILE *f, const char *name, const char *value, const char *help,
			      bool first)
{
	fprintf(f, "%s %s: %s\n", name, value, help);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

const char *mc_peer_outcome_name(enum mc_peer_outcome o)
{
	static const char *const names[MC_PEER_OUTCOMES] = { "pending", "applied", "retrying",
							      "failed" };

	return o < MC_PEER_OUTCOMES ? names[o] : "?";
}

typedef void peer_fn(FILE *f, const char *name, uint16_t index, const char *reconcile,
		     const char *text, bool first);

/* Calls fn for each participating peer with how its last reconcile went and what the backend
 * has in place for it (its peer_status, ABI 1.5; "" from a backend without). */
static void each_peer_status(struct mc_engine *e, peer_fn *fn, FILE *f)
{
	const struct mc_plugin_instance *backend = &e->plugins[MC_SLOT_BACKEND];
	_cleanup_free_ uint32_t *ids = NULL;
	size_t n = 0;

	if (!e->store || mc_store_peer_ids(e->store, &ids, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		uint16_t index = mc_reconciler_peer_index(e, ids[i]);
		struct mc_peer_state *p;
		char text[512] = "";

		if (mc_store_get_peer(e->store, ids[i], &p) < 0)
			continue;
		if (backend->started && backend->desc->dataplane->peer_status &&
		    backend->desc->dataplane->peer_status((struct mc_plugin_ctx *)&backend->ctx, index,
							  text, sizeof(text)) < 0)
			snprintf(text, sizeof(text), "nothing in place yet");
		fn(f, p->name, index,
		   mc_peer_outcome_name(index ? atomic_load(&e->peer_outcome[index]) : MC_PEER_PENDING),
		   text, i == 0);
		mc_peer_state_free(p);
	}
}

static void peer_as_text(FILE *f, const char *name, uint16_t index, const char *reconcile,
			 const char *text, bool first)
{
	fprintf(f, "peer: %s index %u, %s%s%s\n", name, index, reconcile, text[0] ? ": " : "",
		text);
}

static void peer_as_json(FILE *f, const char *name, uint16_t index, const char *reconcile,
			 const char *text, bool first)
{
	fputs(first ? "{\"name\": " : ", {\"name\": ", f);
	json_string(f, name);
	fprintf(f, ", \"index\": %u, \"reconcile\": \"%s\", \"backend\": ", index, reconcile);
	json_string(f, text);
	fputc('}', f);
}

int mc_engine_write_peers(struct mc_engine *e, FILE *f)
{
	each_peer_status(e, peer_as_text, f);
	return ferror(f) ? -EIO : 0;
}

/* The managed pods, local and on each peer, then the counts. Not in status: it walks every
 * pod key, which a status polled every 20 ms during a 150,000-pod sync must not. */
int mc_engine_write_pods(struct mc_engine *e, FILE *f)
{
	_cleanup_free_ struct mc_key *keys = NULL;
	size_t n = 0, local = 0, remote = 0;

	if (!e->store || mc_store_keys(e->store, &keys, &n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct mc_peer_state *p = NULL;
		struct mc_pod_state pod;
		char ip[MC_IP_STRLEN];

		if (keys[i].type != MC_KEY_POD || mc_store_get_pod(e->store, &keys[i].ip, &pod) < 0 ||
		    pod.role == MC_POD_NONE)
			continue;
		if (pod.role == MC_POD_LOCAL_MANAGED)
			local++;
		else
			remote++;
		mc_ip_to_string(&pod.ip, ip);
		if (pod.role == MC_POD_LOCAL_MANAGED) {
			fprintf(f, "pod: %s managed, on this node\n", ip);
			continue;
		}
		(void)mc_store_get_peer(e->store, pod.peer_id, &p);
		fprintf(f, "pod: %s managed, on peer %s (index %u)\n", ip, p ? p->name : "?",
			mc_reconciler_peer_index(e, pod.peer_id));
		mc_peer_state_free(p);
	}
	fprintf(f, "managed pods: %zu on this node, %zu on peers\n", local, remote);
	return ferror(f) ? -EIO : 0;
}

int mc_engine_write_bpf_stats(struct mc_engine *e, FILE *f)
{
	if (!each_dataplane_counter(e, counter_explained, f))
		fputs("no BPF counters: no attach plugin runs ([attach] plugin = none)\n", f);
	return ferror(f) ? -EIO : 0;
}


int mc_engine_write_wireguard_key(struct mc_engine *e, FILE *f)
{
	char path[4096], key[64] = "";
	_cleanup_fclose_ FILE *in = NULL;

	snprintf(path, sizeof(path), "%s/wireguard.pub", e->cfg->state_dir);
	in = fopen(path, "re");
	if (!in || !fgets(key, sizeof(key), in)) {
		fprintf(f, "error: no WireGuard key in %s (the wireguard backend writes it when it "
			"starts)\n", path);
		return -ENOENT;
	}
	fputs(key, f);
	return 0;
}

static const char *inbound_name(const struct mc_engine *e)
{
	return e->cfg->dataplane.inbound == MC_INBOUND_PERMIT ? "permit" : "require";
}

unsigned mc_engine_published_generation(struct mc_engine *e)
{
	unsigned generation;

	pthread_mutex_lock(&e->publication_lock);
	generation = e->publication.inbound_generation;
	pthread_mutex_unlock(&e->publication_lock);
	return generation;
}

int mc_engine_write_status(struct mc_engine *e, FILE *f)
{
	char status[sizeof(e->status)];
	struct mc_store_stats st = { 0 };
	size_t local_pods = 0, remote_pods = 0;

	if (e->store) {
		mc_store_stats(e->store, &st);
		mc_store_managed_pods(e->store, &local_pods, &remote_pods);
	}
	fprintf(f, "node: %s\nready: %s\nstatus: %s\n", e->cfg->node_name,
		mc_engine_ready(e) ? "yes" : "no", mc_engine_status(e, status, sizeof(status)));
	for (int slot = 0; slot < MC_SLOT_COUNT; slot++) {
		const struct mc_plugin_instance *inst = &e->plugins[slot];

		fprintf(f, "%s: %s%s%s%s\n", mc_slot_name(slot), e->cfg->slots[slot].plugin,
			slot_is_auto(e->cfg, slot) && inst->desc ? " -> " : "",
			slot_is_auto(e->cfg, slot) && inst->desc ? inst->desc->name : "",
			inst->loaded && !inst->started ? " (not running)" : "");
	}
	fprintf(f, "inbound: %s\nkey generation published: %u\n", inbound_name(e),
		mc_engine_published_generation(e));
	fprintf(f, "objects: %zu nodes, %zu meshcryptnodes, %zu namespaces, %zu pods\n", st.nodes,
		st.meshcrypt_nodes, st.namespaces, st.pods);
	fprintf(f, "managed pods: %zu on this node, %zu on peers\n", local_pods, remote_pods);
	fprintf(f, "queue: %zu waiting\nreconciled: %lu ok, %lu retried, %lu permanent failures\n",
		e->queue ? keyq_len(e->queue) : 0, atomic_load(&e->reconciled),
		atomic_load(&e->failed), atomic_load(&e->permanent_failures));
	each_peer_status(e, peer_as_text, f);
	each_dataplane_counter(e, counter_as_text, f);
	return ferror(f) ? -EIO : 0;
}

int mc_engine_write_status_json(struct mc_engine *e, FILE *f)
{
	char status[sizeof(e->status)];
	struct mc_store_stats st = { 0 };
	size_t local_pods = 0, remote_pods = 0;

	if (e->store) {
		mc_store_stats(e->store, &st);
		mc_store_managed_pods(e->store, &local_pods, &remote_pods);
	}
	fputs("{\"node\": ", f);
	json_string(f, e->cfg->node_name);
	fprintf(f, ", \"ready\": %s, \"status\": ", mc_engine_ready(e) ? "true" : "false");
	json_string(f, mc_engine_status(e, status, sizeof(status)));
	fputs(", \"plugins\": {", f);
	for (int slot = 0; slot < MC_SLOT_COUNT; slot++) {
		const struct mc_plugin_instance *inst = &e->plugins[slot];

		fprintf(f, "%s\"%s\": {\"configured\": ", slot ? ", " : "", mc_slot_name(slot));
		json_string(f, e->cfg->slots[slot].plugin);
		fputs(", \"running\": ", f);
		if (inst->started)
			json_string(f, inst->desc->name);
		else
			fputs("null", f);
		fputc('}', f);
	}
	fprintf(f, "}, \"inbound\": \"%s\", \"key_generation_published\": %u", inbound_name(e),
		mc_engine_published_generation(e));
	fprintf(f, ", \"objects\": {\"nodes\": %zu, \"meshcryptnodes\": %zu, \"namespaces\": %zu, "
		"\"pods\": %zu}", st.nodes, st.meshcrypt_nodes, st.namespaces, st.pods);
	fprintf(f, ", \"managed_pods\": {\"local\": %zu, \"remote\": %zu}", local_pods,
		remote_pods);
	fprintf(f, ", \"queue\": %zu, \"reconciled\": {\"ok\": %lu, \"retried\": %lu, "
		"\"permanent_failures\": %lu}, \"peers\": [",
		e->queue ? keyq_len(e->queue) : 0, atomic_load(&e->reconciled),
		atomic_load(&e->failed), atomic_load(&e->permanent_failures));
	each_peer_status(e, peer_as_json, f);
	fputs("], \"bpf\": {", f);
	each_dataplane_counter(e, counter_as_json, f);
	fputs("}}\n", f);
	return ferror(f) ? -EIO : 0;
}
