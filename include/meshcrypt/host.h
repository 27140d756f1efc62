/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meshcrypt host API: what the core offers a plugin.
 *
 * A plugin links nothing from the daemon: every service reaches it through the versioned
 * struct of function pointers below (ctx->host). Fields are only ever appended; before using
 * a field added after ABI 1.0, check MC_HOST_HAS(host, field), and before reading a field of a
 * desired state added after 1.0, MC_STATE_HAS(host, state, field). Unit tests hand plugins a
 * fake host built the same way (tests/unit/fake-host.c).
 *
 * Threads: log, config getters, get_data and the store calls are safe from any thread.
 * io_add/io_remove/timer_add/timer_remove and set_ready must be called from the main loop
 * (callbacks of init/start/stop and of the I/O and timer events themselves).
 */
#ifndef MESHCRYPT_HOST_H
#define MESHCRYPT_HOST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <meshcrypt/model.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mc_metrics;
struct mc_io;
struct mc_timer;

/* Called on the main loop when `fd` is ready; `revents` are EPOLL* bits. */
typedef void (*mc_io_fn)(struct mc_plugin_ctx *ctx, int fd, uint32_t revents, void *userdata);
/* Called on the main loop once the timer's delay has passed. Return a delay in ns to fire
 * again, or 0 to disarm it (the handle stays valid until timer_remove). */
typedef uint64_t (*mc_timer_fn)(struct mc_plugin_ctx *ctx, void *userdata);

#define MC_HOST_HAS(host, field)                                                               \
	((host)->struct_size >= offsetof(struct mc_host, field) + sizeof((host)->field))

/*
 * Whether the desired states this host hands out have `field`: state is local_state,
 * peer_state or pod_state (struct mc_<state> of store.h). A 1.0 host has only the 1.0 fields.
 */
#define MC_STATE_HAS(host, state, field)                                                       \
	(MC_HOST_HAS(host, state##_size) &&                                                    \
	 (host)->state##_size >= offsetof(struct mc_##state, field) +                          \
					 sizeof(((struct mc_##state *)0)->field))

/* [core] inbound (DESIGN.md §3). */
enum mc_inbound {
	MC_INBOUND_REQUIRE = 1, /* drop plaintext from a managed remote pod to a local pod */
	MC_INBOUND_PERMIT = 2,  /* accept it */
};

/* The marks and masks of [core] (DESIGN.md §4) and the inbound mode, validated: the marks lie
 * inside role_mask, which does not overlap peer_mask. */
struct mc_dataplane_config {
	size_t struct_size;
	uint32_t encrypt_mark; /* role of traffic from a managed local pod [0xe0] */
	uint32_t decrypt_mark; /* role of decrypted traffic [0xd0] */
	uint32_t role_mask;    /* [0xf0] */
	uint32_t peer_mask;    /* where the peer index goes: index << ctz(peer_mask) [0xffff0000] */
	enum mc_inbound inbound;
	uint64_t resync_interval_ns;
};

struct mc_host {
	size_t struct_size;
	uint32_t abi_version;

	/* Logging with the plugin name as prefix; `level` is a syslog LOG_* priority. Never log
	 * key material. */
	void (*log)(struct mc_plugin_ctx *ctx, int level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	void (*vlog)(struct mc_plugin_ctx *ctx, int level, const char *fmt, va_list ap)
		__attribute__((format(printf, 3, 0)));

	/* The plugin's own validated [plugin.<name>] section; defaults are filled in. A key the
	 * plugin did not declare yields NULL / 0 / false. The strings live until fini. */
	const char *(*config_string)(struct mc_plugin_ctx *ctx, const char *key);
	int64_t (*config_int)(struct mc_plugin_ctx *ctx, const char *key);
	bool (*config_bool)(struct mc_plugin_ctx *ctx, const char *key);
	uint64_t (*config_duration_ns)(struct mc_plugin_ctx *ctx, const char *key);
	/* A validated string of [core], [source], [backend] or [attach], e.g. ("attach",
	 * "bpffs_dir") or ("core", "encrypt_mark"); NULL for an unknown section or key. */
	const char *(*config_global)(struct mc_plugin_ctx *ctx, const char *section,
				     const char *key);

	/* Per-instance plugin state; the core never frees it (fini does). */
	void (*set_data)(struct mc_plugin_ctx *ctx, void *data);
	void *(*get_data)(struct mc_plugin_ctx *ctx);

	/* [core] values every plugin may need. Strings live until fini. */
	const char *(*node_name)(struct mc_plugin_ctx *ctx);
	const char *(*state_dir)(struct mc_plugin_ctx *ctx);
	const char *(*run_dir)(struct mc_plugin_ctx *ctx);

	/* Store updates, for source plugins. Each takes ownership of its object or list, on
	 * success and on failure. replace_all reports the full set after a (re)list; the store
	 * emits deletes for objects that vanished. */
	int (*store_upsert)(struct mc_plugin_ctx *ctx, struct mc_object *obj);
	int (*store_delete)(struct mc_plugin_ctx *ctx, enum mc_object_kind kind, const char *ns,
			    const char *name);
	int (*store_replace_all)(struct mc_plugin_ctx *ctx, struct mc_object_list *list);
	/* A source reports whether it holds a complete, current view (sd_notify READY/STATUS).
	 * `status` is a short human sentence; it is copied. */
	void (*set_ready)(struct mc_plugin_ctx *ctx, bool ready, const char *status);

	/* Main-loop integration, so plugins need no event library of their own. On success
	 * *out is a handle owned by the plugin, released with the matching remove (removing
	 * NULL is a no-op); all handles left are released after fini. */
	int (*io_add)(struct mc_plugin_ctx *ctx, int fd, uint32_t events, mc_io_fn fn,
		      void *userdata, struct mc_io **out);
	void (*io_remove)(struct mc_io *io);
	int (*timer_add)(struct mc_plugin_ctx *ctx, uint64_t delay_ns, mc_timer_fn fn,
			 void *userdata, struct mc_timer **out);
	void (*timer_remove)(struct mc_timer *timer);

	/* The engine's metrics registry (include/meshcrypt/metrics.h). */
	struct mc_metrics *(*metrics)(struct mc_plugin_ctx *ctx);

	/* ---- ABI 1.1 ---- */

	/* Sizes of the desired states handed to this plugin (MC_STATE_HAS). */
	size_t local_state_size;
	size_t peer_state_size;
	size_t pod_state_size;

	/* Marks, masks and inbound mode; valid until fini. */
	const struct mc_dataplane_config *(*dataplane_config)(struct mc_plugin_ctx *ctx);

	/*
	 * A relist of some kinds only (a mask of MC_OBJECT_KIND_BIT()): objects of those kinds that
	 * are not in list are deleted, objects of other kinds are left alone, so a relist of pods
	 * never deletes Nodes or Secrets (mc_store_replace_kinds() in store.h). Takes ownership
	 * of list on success and on failure.
	 */
	int (*store_replace_kinds)(struct mc_plugin_ctx *ctx, unsigned kinds,
				   struct mc_object_list *list);

	/*
	 * Entry key of the Secret ns/name that the source reported, for backends (key material).
	 * On success *data is a new buffer of *len bytes (a NUL follows, not counted) that the
	 * caller wipes with explicit_bzero() and frees. -ENOENT: no such Secret or entry yet.
	 * dataplane ops secret_changed tells when to read again.
	 */
	int (*secret_get)(struct mc_plugin_ctx *ctx, const char *ns, const char *name,
			  const char *key, uint8_t **data, size_t *len);

	/*
	 * The current desired state of pod IP ip, peer index filled in, e.g. for a gc that walks
	 * its own map of pod IPs and removes the ones whose role is now MC_POD_NONE. 0 or -errno.
	 */
	int (*pod_state)(struct mc_plugin_ctx *ctx, const struct mc_ip *ip,
			 struct mc_pod_state *out);

	/* ---- ABI 1.2 ---- */

	/*
	 * Queues key (store.h) for a reconcile, as if its desired state had changed: for a
	 * dataplane plugin whose kernel objects changed behind its back (a notification that
	 * one of its xfrm policies was deleted), or whose own input changed in a way the store
	 * cannot see (new key material: every peer must be applied again). Safe from any
	 * thread. Returns 0, or -ESHUTDOWN while the engine stops.
	 */
	int (*requeue)(struct mc_plugin_ctx *ctx, const struct mc_key *key);

	/* ---- ABI 1.3 ---- */

	/* Backends: what this node must publish (plugin.h, struct mc_publication); the fields
	 * set are merged into the node's publication, which goes to the source. Any thread. */
	int (*publish)(struct mc_plugin_ctx *ctx, const struct mc_publication *p);

	/* ---- ABI 1.4 ---- */

	/*
	 * A relist of some kinds handed over page by page as the pages are parsed, so that a
	 * source never holds the whole list (mc_store_relist() in store.h: MC_RELIST_FIRST on the
	 * first page, MC_RELIST_LAST on the last, both for a list of one page). After an error,
	 * relist again from the first page. Takes ownership of page on success and on failure.
	 */
	int (*store_relist)(struct mc_plugin_ctx *ctx, unsigned kinds, struct mc_object_list *page,
			    unsigned flags);

	/* ---- ABI 1.6 ---- */

	/* Whether a line of level would be logged: to skip building the arguments of debug lines
	 * on a hot path (mc_plugin_log_enabled() also answers for an older core). Any thread. */
	bool (*log_enabled)(struct mc_plugin_ctx *ctx, int level);
};

#define mc_plugin_log(ctx, level, ...) ((ctx)->host->log((ctx), (level), __VA_ARGS__))

/* host->log_enabled, or true on a core older than ABI 1.6. */
static inline bool mc_plugin_log_enabled(struct mc_plugin_ctx *ctx, int level)
{
	return !MC_HOST_HAS(ctx->host, log_enabled) || ctx->host->log_enabled(ctx, level);
}

#ifdef __cplusplus
}
#endif

#endif
