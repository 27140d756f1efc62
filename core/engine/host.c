/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host API handed to plugins (include/meshcrypt/host.h), version 1.1. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine-internal.h"
#include "log.h"
#include "util.h"

/* An sd-event source owned by a plugin: io and timer handles share this shape. */
struct mc_handle {
	struct mc_handle *next, **pprev;
	struct mc_plugin_instance *inst;
	sd_event_source *source;
	void *fn;
	void *userdata;
};

struct mc_io {
	struct mc_handle h;
};

struct mc_timer {
	struct mc_handle h;
};

static void host_vlog(struct mc_plugin_ctx *ctx, int level, const char *fmt, va_list ap)
{
	mc_log_vprefixed(level, mc_instance(ctx)->log_prefix, fmt, ap);
}

static void host_log(struct mc_plugin_ctx *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	host_vlog(ctx, level, fmt, ap);
	va_end(ap);
}

static bool host_log_enabled(struct mc_plugin_ctx *ctx, int level)
{
	return level <= mc_log_get_max_level();
}

static const char *host_config_string(struct mc_plugin_ctx *ctx, const char *key)
{
	return mc_section_string(mc_instance(ctx)->section, key);
}

static int64_t host_config_int(struct mc_plugin_ctx *ctx, const char *key)
{
	return mc_section_int(mc_instance(ctx)->section, key);
}

static bool host_config_bool(struct mc_plugin_ctx *ctx, const char *key)
{
	return mc_section_bool(mc_instance(ctx)->section, key);
}

static uint64_t host_config_duration_ns(struct mc_plugin_ctx *ctx, const char *key)
{
	return mc_section_duration_ns(mc_instance(ctx)->section, key);
}

static const char *host_config_global(struct mc_plugin_ctx *ctx, const char *section,
				      const char *key)
{
	const struct mc_config *cfg = mc_instance(ctx)->engine->cfg;

	if (strcmp(section, "core") == 0)
		return mc_section_string(cfg->core, key);
	for (int i = 0; i < MC_SLOT_COUNT; i++)
		if (strcmp(section, mc_slot_name(i)) == 0)
			return mc_section_string(cfg->slot_sections[i], key);
	return NULL;
}

static void host_set_data(struct mc_plugin_ctx *ctx, void *data)
{
	mc_instance(ctx)->data = data;
}

static void *host_get_data(struct mc_plugin_ctx *ctx)
{
	return mc_instance(ctx)->data;
}

static const char *host_node_name(struct mc_plugin_ctx *ctx)
{
	return mc_instance(ctx)->engine->cfg->node_name;
}

static const char *host_state_dir(struct mc_plugin_ctx *ctx)
{
	return mc_instance(ctx)->engine->cfg->state_dir;
}

static const char *host_run_dir(struct mc_plugin_ctx *ctx)
{
	return mc_instance(ctx)->engine->cfg->run_dir;
}

static int host_store_upsert(struct mc_plugin_ctx *ctx, struct mc_object *obj)
{
	return mc_store_upsert(mc_instance(ctx)->engine->store, obj);
}

static int host_store_delete(struct mc_plugin_ctx *ctx, enum mc_object_kind kind, const char *ns,
			     const char *name)
{
	return mc_store_delete(mc_instance(ctx)->engine->store, kind, ns, name);
}

static int host_store_replace_all(struct mc_plugin_ctx *ctx, struct mc_object_list *list)
{
	return mc_store_replace_all(mc_instance(ctx)->engine->store, list);
}

static void host_set_ready(struct mc_plugin_ctx *ctx, bool ready, const char *status)
{
	struct mc_engine *e = mc_instance(ctx)->engine;
	char copy[sizeof(e->status)];

	pthread_mutex_lock(&e->status_lock);
	e->ready = ready;
	snprintf(e->status, sizeof(e->status), "%s", status ? status : "");
	memcpy(copy, e->status, sizeof(copy));
	pthread_mutex_unlock(&e->status_lock);
	if (ready)
		mc_engine_source_ready(e);
	if (e->ready_fn)
		e->ready_fn(e, ready, copy, e->ready_userdata);
}

static void handle_link(struct mc_plugin_instance *inst, struct mc_handle *h)
{
	h->inst = inst;
	h->next = inst->handles;
	if (h->next)
		h->next->pprev = &h->next;
	h->pprev = &inst->handles;
	inst->handles = h;
}

static void handle_free(struct mc_handle *h)
{
	if (!h)
		return;
	*h->pprev = h->next;
	if (h->next)
		h->next->pprev = h->pprev;
	sd_event_source_disable_unref(h->source);
	free(h);
}

void mc_host_release_handles(struct mc_plugin_instance *inst)
{
	while (inst->handles)
		handle_free(inst->handles);
}

static int io_dispatch(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mc_handle *h = userdata;

	((mc_io_fn)h->fn)(&h->inst->ctx, fd, revents, h->userdata);
	return 0;
}

static int host_io_add(struct mc_plugin_ctx *ctx, int fd, uint32_t events, mc_io_fn fn,
		       void *userdata, struct mc_io **out)
{
	struct mc_plugin_instance *inst = mc_instance(ctx);
	struct mc_io *io = calloc(1, sizeof(*io));
	int r;

	if (!io)
		return -ENOMEM;
	io->h.fn = (void *)fn;
	io->h.userdata = userdata;
	r = sd_event_add_io(inst->engine->event, &io->h.source, fd, events, io_dispatch, &io->h);
	if (r < 0) {
		free(io);
		return r;
	}
	handle_link(inst, &io->h);
	*out = io;
	return 0;
}

static void host_io_remove(struct mc_io *io)
{
	handle_free(io ? &io->h : NULL);
}

static int timer_dispatch(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mc_handle *h = userdata;
	uint64_t again_ns = ((mc_timer_fn)h->fn)(&h->inst->ctx, h->userdata);

	if (again_ns) {
		sd_event_source_set_time_relative(s, (again_ns + 999) / 1000);
		sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	}
	return 0;
}

static int host_timer_add(struct mc_plugin_ctx *ctx, uint64_t delay_ns, mc_timer_fn fn,
			  void *userdata, struct mc_timer **out)
{
	struct mc_plugin_instance *inst = mc_instance(ctx);
	struct mc_timer *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->h.fn = (void *)fn;
	t->h.userdata = userdata;
	/* 1 ms accuracy: sd-event's default of 250 ms would make a debounce sluggish. */
	r = sd_event_add_time_relative(inst->engine->event, &t->h.source, CLOCK_MONOTONIC,
				       (delay_ns + 999) / 1000, 1000, timer_dispatch, &t->h);
	if (r < 0) {
		free(t);
		return r;
	}
	handle_link(inst, &t->h);
	*out = t;
	return 0;
}

static void host_timer_remove(struct mc_timer *t)
{
	handle_free(t ? &t->h : NULL);
}

static struct mc_metrics *host_metrics(struct mc_plugin_ctx *ctx)
{
	return mc_instance(ctx)->engine->metrics;
}

static const struct mc_dataplane_config *host_dataplane_config(struct mc_plugin_ctx *ctx)
{
	return &mc_instance(ctx)->engine->cfg->dataplane;
}

static int host_store_relist(struct mc_plugin_ctx *ctx, unsigned kinds,
			     struct mc_object_list *page, unsigned flags)
{
	return mc_store_relist(mc_instance(ctx)->engine->store, kinds, page, flags);
}

static int host_store_replace_kinds(struct mc_plugin_ctx *ctx, unsigned kinds,
				    struct mc_object_list *list)
{
	return mc_store_replace_kinds(mc_instance(ctx)->engine->store, kinds, list);
}

static int host_secret_get(struct mc_plugin_ctx *ctx, const char *ns, const char *name,
			   const char *key, uint8_t **data, size_t *len)
{
	return mc_store_get_secret(mc_instance(ctx)->engine->store, ns, name, key, data, len);
}

static int host_pod_state(struct mc_plugin_ctx *ctx, const struct mc_ip *ip,
			  struct mc_pod_state *out)
{
	return mc_reconciler_pod_state(mc_instance(ctx)->engine, ip, out);
}

static int host_publish(struct mc_plugin_ctx *ctx, const struct mc_publication *p)
{
	struct mc_engine *e = mc_instance(ctx)->engine;
	bool changed = false;

	if (!p || p->struct_size < offsetof(struct mc_publication, wireguard_public_key))
		return -EINVAL;
	pthread_mutex_lock(&e->publication_lock);
	if (p->inbound_generation && p->inbound_generation != e->publication.inbound_generation) {
		e->publication.inbound_generation = p->inbound_generation;
		changed = true;
	}
	if (p->struct_size >= sizeof(*p) && p->wireguard_public_key[0] &&
	    strcmp(p->wireguard_public_key, e->publication.wireguard_public_key) != 0) {
		memcpy(e->publication.wireguard_public_key, p->wireguard_public_key,
		       sizeof(p->wireguard_public_key));
		e->publication.wireguard_public_key[sizeof(p->wireguard_public_key) - 1] = '\0';
		changed = true;
	}
	if (changed)
		mc_engine_deliver_publication_locked(e);
	pthread_mutex_unlock(&e->publication_lock);
	return 0;
}

static int host_requeue(struct mc_plugin_ctx *ctx, const struct mc_key *key)
{
	return mc_reconciler_requeue(mc_instance(ctx)->engine, key);
}

const struct mc_host mc_host_v1 = {
	.struct_size = sizeof(struct mc_host),
	.abi_version = MC_PLUGIN_ABI_VERSION,
	.log = host_log,
	.vlog = host_vlog,
	.config_string = host_config_string,
	.config_int = host_config_int,
	.config_bool = host_config_bool,
	.config_duration_ns = host_config_duration_ns,
	.config_global = host_config_global,
	.set_data = host_set_data,
	.get_data = host_get_data,
	.node_name = host_node_name,
	.state_dir = host_state_dir,
	.run_dir = host_run_dir,
	.store_upsert = host_store_upsert,
	.store_delete = host_store_delete,
	.store_replace_all = host_store_replace_all,
	.set_ready = host_set_ready,
	.io_add = host_io_add,
	.io_remove = host_io_remove,
	.timer_add = host_timer_add,
	.timer_remove = host_timer_remove,
	.metrics = host_metrics,
	.local_state_size = sizeof(struct mc_local_state),
	.peer_state_size = sizeof(struct mc_peer_state),
	.pod_state_size = sizeof(struct mc_pod_state),
	.dataplane_config = host_dataplane_config,
	.store_replace_kinds = host_store_replace_kinds,
	.store_relist = host_store_relist,
	.secret_get = host_secret_get,
	.pod_state = host_pod_state,
	.requeue = host_requeue,
	.publish = host_publish,
	.log_enabled = host_log_enabled,
};
