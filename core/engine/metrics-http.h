/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Prometheus endpoint ([core] metrics_listen): GET /metrics answers with the running
 * engine's registry as Prometheus text (0.0.4). libmicrohttpd runs on the daemon's sd-event
 * loop, not in a thread of its own, so a render never races a reload swapping the engine.
 */
#ifndef MC_METRICS_HTTP_H
#define MC_METRICS_HTTP_H

#include <systemd/sd-event.h>

struct mc_engine;
struct mc_metrics_http;

/* `engine` points to the daemon's current engine (NULL while a reload swaps it: 503).
 * *out is the caller's (mc_metrics_http_free). -EINVAL (address), or -errno from bind(). */
int mc_metrics_http_new(sd_event *event, const char *listen, struct mc_engine **engine,
			struct mc_metrics_http **out);
void mc_metrics_http_free(struct mc_metrics_http *h);

#endif
