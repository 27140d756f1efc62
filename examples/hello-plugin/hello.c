/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An out-of-tree meshcrypt plugin, built only against the installed SDK (meshcrypt-plugin.pc).
 * A backend that programs nothing and greets every peer it is handed: the smallest complete
 * plugin, showing the descriptor, a config schema, per-instance state and the dataplane ops.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <syslog.h>

#include <meshcrypt/host.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

struct hello {
	const char *greeting;
	atomic_uint peers_seen;
};

static int hello_init(struct mc_plugin_ctx *ctx)
{
	struct hello *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->greeting = ctx->host->config_string(ctx, "greeting");
	ctx->host->set_data(ctx, h);
	ctx->host->log(ctx, LOG_NOTICE, "%s from node %s", h->greeting, ctx->host->node_name(ctx));
	return 0;
}

static void hello_fini(struct mc_plugin_ctx *ctx)
{
	struct hello *h = ctx->host->get_data(ctx);

	if (h)
		ctx->host->log(ctx, LOG_NOTICE, "goodbye after %u peer updates",
			       atomic_load(&h->peers_seen));
	free(h);
}

static int hello_local(struct mc_plugin_ctx *ctx, const struct mc_local_state *local)
{
	return 0;
}

static int hello_peer(struct mc_plugin_ctx *ctx, const struct mc_peer_state *peer)
{
	struct hello *h = ctx->host->get_data(ctx);

	atomic_fetch_add(&h->peers_seen, 1);
	ctx->host->log(ctx, LOG_NOTICE, "%s, peer %s (%zu prefixes%s)", h->greeting, peer->name,
		       peer->n_prefixes, peer->present ? "" : ", leaving");
	return 0;
}

static int hello_pod(struct mc_plugin_ctx *ctx, const struct mc_pod_state *pod)
{
	return 0;
}

static const struct mc_dataplane_ops hello_ops = MC_DATAPLANE_OPS(
	.local_apply = hello_local, .peer_apply = hello_peer, .pod_apply = hello_pod);

static const struct mc_option hello_options[] = {
	{ .name = "greeting", .type = MC_OPTION_STRING, .default_value = "hello",
	  .help = "what to say to each peer" },
	{ 0 }
};

MC_PLUGIN_DEFINE(
	.name = "hello",
	.kind = MC_PLUGIN_BACKEND,
	.description = "greets every peer (SDK example)",
	.version = "1.0",
	.options = hello_options,
	.init = hello_init,
	.fini = hello_fini,
	.dataplane = &hello_ops);
