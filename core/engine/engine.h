/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine: one configuration's plugins, store, work queue and reconciler workers, driven
 * by an sd-event loop that the caller (meshcryptd) owns.
 *
 *   mc_engine_new    load the selected plugins, validate their sections, config_check
 *                    (no side effects beyond loading: --check-config stops here)
 *   mc_engine_start  init plugins (attach, backend, source), start workers, start plugins
 *   mc_engine_drain  reconcile every queued key once more, then stop the workers; keys waiting
 *                    for a retry are dropped, not waited for (a failing backend must not hold
 *                    up a stop): the next start's full resync applies them
 *   mc_engine_stop   stop the source, drain, stop the dataplane plugins, fini in reverse
 *                    (mc_engine_start may follow: meshcryptd restarts the running engine
 *                    when a reloaded configuration fails to start)
 *   mc_engine_free   stop if needed, unload
 *   mc_engine_cleanup  instead of start (meshcryptd --cleanup): init the dataplane plugins,
 *                    have each remove exactly its own objects, fini
 *
 * The dataplane is left as it is on stop, so a restart or an upgrade is hitless.
 */
#ifndef MC_ENGINE_H
#define MC_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-event.h>

#include "config.h"

struct mc_engine;

/* Takes ownership of cfg on success and on failure. Writes one line to error on failure. */
int mc_engine_new(struct mc_config *cfg, sd_event *event, struct mc_engine **out, char *error,
		  size_t error_size);
/* Logs each plugin failure with context; returns -errno if a required plugin failed. */
int mc_engine_start(struct mc_engine *e);
void mc_engine_drain(struct mc_engine *e);
/* Logs each failure with context; returns -errno if any plugin failed to clean up. */
int mc_engine_cleanup(struct mc_engine *e);
void mc_engine_stop(struct mc_engine *e);
/*
 * After a reload that chose another backend (xfrm -> wireguard, say) and started: prev, the
 * stopped engine of the old configuration, has its backend remove its objects, so none of
 * the old backend stay behind. Nothing when the backend is the same. 0 or -errno (logged).
 */
int mc_engine_cleanup_replaced_backend(struct mc_engine *prev, const struct mc_engine *next);
void mc_engine_free(struct mc_engine *e);

const struct mc_config *mc_engine_config(const struct mc_engine *e);
/* The engine's metrics registry (the work queue's, the plugins'); the engine owns it. */
struct mc_metrics *mc_engine_metrics(const struct mc_engine *e);
/*
 * Whether every reconcile worker is waiting for a key or has been on its current one for at
 * most max_busy_ns (the systemd watchdog's test: a worker stuck in a plugin must get the agent
 * restarted as a hung main loop would). false: *stuck (if not NULL) is a stuck worker's number.
 */
bool mc_engine_workers_alive(struct mc_engine *e, uint64_t max_busy_ns, unsigned *stuck);
/* The source's last word: whether it holds a complete view, and a short status. */
bool mc_engine_ready(struct mc_engine *e);
const char *mc_engine_status(struct mc_engine *e, char *buf, size_t size);
/* Called on the main loop whenever the source changes its readiness or status. */
void mc_engine_on_ready(struct mc_engine *e,
			void (*fn)(struct mc_engine *e, bool ready, const char *status, void *ud),
			void *userdata);
/* Desired state as text (mc_store_write_plan), and a status summary for meshcryptctl. */
int mc_engine_write_plan(struct mc_engine *e, FILE *f);
int mc_engine_write_status(struct mc_engine *e, FILE *f);
/* meshcryptctl explain SRC DST (explain.c): whether this node encrypts SRC -> DST and the
 * reply, why and how, to f; 0 or -errno (an "error:" line is written too). */
int mc_engine_explain(struct mc_engine *e, const char *src, const char *dst, FILE *f);
/* meshcryptctl peers: each participating peer, its index and what the backend holds for it. */
int mc_engine_write_peers(struct mc_engine *e, FILE *f);
/* meshcryptctl pods: each managed pod, on this node or on which peer, then the counts. */
int mc_engine_write_pods(struct mc_engine *e, FILE *f);
/* meshcryptctl bpf-stats: each BPF counter of the attach plugin with what it counts. */
int mc_engine_write_bpf_stats(struct mc_engine *e, FILE *f);
/* The same as one JSON object, for scripts (meshcryptctl --json status). */
int mc_engine_write_status_json(struct mc_engine *e, FILE *f);
/* This node's WireGuard public key, which the wireguard backend keeps in
 * <state_dir>/wireguard.pub, or an "error: ..." line. */
int mc_engine_write_wireguard_key(struct mc_engine *e, FILE *f);

#endif
