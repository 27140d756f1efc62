/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meshcrypt plugin ABI: what a plugin exports.
 *
 * A plugin is a shared object in the configured plugin directory that exports exactly one
 * symbol, the descriptor `meshcrypt_plugin`, defined with MC_PLUGIN_DEFINE. The daemon refuses
 * a plugin whose ABI major differs from its own, whose descriptor is missing, or whose
 * descriptor is too small or inconsistent. See docs/plugin-author-guide.md.
 *
 * Growth rules (libbpf's opts pattern): `struct_size` comes first and records
 * sizeof(struct mc_plugin) as the plugin saw it; the core reads only the fields that fit, so
 * fields may be appended in a minor ABI release. Removing or reordering fields, or changing a
 * callback's signature, bumps MC_PLUGIN_ABI_MAJOR. Arrays and structs that cross the ABI carry
 * their size too: the option schema's element size (`option_size`), the dataplane ops'
 * `struct_size`, and the sizes of the desired states in the host (MC_STATE_HAS in host.h), so
 * a plugin built for a newer minor runs on an older core and the reverse.
 *
 * ABI 1.1 appended: option_size and cleanup (descriptor); gc and secret_changed (dataplane
 * ops); MC_EPERMANENT; the host calls of host.h marked 1.1.
 * ABI 1.2 appended: the host call requeue.
 * ABI 1.3 appended: struct mc_publication, the host call publish (backends) and the
 * descriptor's publish (sources).
 * ABI 1.4 appended: the host call store_relist (a relist handed over page by page).
 * ABI 1.5 appended: the dataplane op peer_status (meshcryptctl status).
 * ABI 1.6 appended: the host call log_enabled.
 */
#ifndef MESHCRYPT_PLUGIN_H
#define MESHCRYPT_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MC_PLUGIN_ABI_MAJOR 1
#define MC_PLUGIN_ABI_MINOR 6
#define MC_PLUGIN_ABI(major, minor) ((uint32_t)(((uint32_t)(major) << 16) | (uint32_t)(minor)))
#define MC_PLUGIN_ABI_VERSION MC_PLUGIN_ABI(MC_PLUGIN_ABI_MAJOR, MC_PLUGIN_ABI_MINOR)
#define MC_PLUGIN_ABI_GET_MAJOR(v) ((uint32_t)(v) >> 16)
#define MC_PLUGIN_ABI_GET_MINOR(v) ((uint32_t)(v) & 0xffffu)

/* The one symbol a plugin exports. */
#define MC_PLUGIN_SYMBOL "meshcrypt_plugin"

enum mc_plugin_kind {
	MC_PLUGIN_SOURCE = 1,  /* reports cluster objects to the store; never touches the dataplane */
	MC_PLUGIN_BACKEND = 2, /* encryption: xfrm, wireguard, dryrun */
	MC_PLUGIN_ATTACH = 3,  /* eBPF maps and programs: tc, tcx */
};

/* Types of configuration values. Each value is validated by the core before `init`. */
enum mc_option_type {
	MC_OPTION_STRING = 1,
	MC_OPTION_PATH,     /* a string that must be an absolute path */
	MC_OPTION_INT,      /* decimal or 0x hex, within [min, max] unless both are 0 */
	MC_OPTION_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	MC_OPTION_DURATION, /* "300s", "5m", "250ms", "1h", a bare number is seconds; in ns */
	MC_OPTION_ENUM,     /* one of `choices`, written "a|b|c" */
};

/* One key of a plugin's `[plugin.<name>]` section. Arrays end with an entry whose name is NULL. */
struct mc_option {
	const char *name;
	enum mc_option_type type;
	const char *default_value; /* NULL: no default (the getters return NULL / 0 / false) */
	bool required;             /* the key must be set in the section */
	int64_t min, max;          /* INT: inclusive range; DURATION: range in ns; 0, 0: any */
	const char *choices;       /* ENUM only */
	const char *help;          /* one line, shown by --list-plugins -v and the docs */
};

/*
 * Handed to every callback. Allocated and owned by the core; a plugin reads only `host`
 * and keeps its per-instance state with host->set_data()/get_data(), never in globals.
 */
struct mc_host;
struct mc_plugin_ctx {
	const struct mc_host *host;
};

struct mc_local_state;
struct mc_peer_state;
struct mc_pod_state;

/*
 * ABI 1.3. What this node must publish about itself for its peers (the Kubernetes source
 * writes it into the node's MeshcryptNode), as its backend reports it: host->publish() merges
 * what a backend sets into the node's publication, and the source's publish callback receives
 * the whole of it. 0 / "" means "nothing to say" and leaves the field as it was.
 */
struct mc_publication {
	size_t struct_size;
	/* The key generation whose inbound side (in states for every participating peer) is
	 * installed: peers may switch to it (DESIGN.md §6). */
	uint32_t inbound_generation;
	char wireguard_public_key[45]; /* base64, MC_WG_KEY_LEN + 1 */
};

/*
 * Returned (negated) by a dataplane callback whose input can never be applied as it is, e.g. a
 * peer whose addresses this backend cannot use: logged once, not retried until the desired
 * state changes or the next full resync. Every other error is retried with backoff; -EINVAL
 * in particular, which the kernel also returns for states that are transient. Below -1000,
 * clear of errno values.
 * (ABI 1.1; a 1.0 core retries it like any other error.)
 */
#define MC_EPERMANENT 1001

/*
 * Desired-state callbacks of backend and attach plugins, called from reconciler worker
 * threads (never two at once for the same key; different keys may run concurrently).
 * The state is owned by the caller and valid during the call only. A callback is idempotent:
 * applying the same state twice must leave the kernel untouched the second time.
 * Return 0, or -errno: the key is retried with backoff, except for -MC_EPERMANENT. -EAGAIN
 * says "not yet" (something the plugin waits for, e.g. the node's addresses) and is logged at
 * debug for the first few attempts, then as a warning like any other error.
 * For one key the backend is called before the attach plugin, and the attach plugin only if
 * the backend succeeded; except for a participating peer (present), which the attach plugin
 * sees first, so that the leak guard covers its prefixes before the backend's objects exist,
 * and the backend then sees even if the attach plugin failed. gc and cleanup: backend first.
 */
struct mc_dataplane_ops {
	size_t struct_size;
	int (*local_apply)(struct mc_plugin_ctx *ctx, const struct mc_local_state *desired);
	int (*peer_apply)(struct mc_plugin_ctx *ctx, const struct mc_peer_state *desired);
	int (*pod_apply)(struct mc_plugin_ctx *ctx, const struct mc_pod_state *desired);
	/*
	 * 1.1, optional. After each full resync (once when the source is first ready, then every
	 * [core] resync_interval): peers[0..n) are the desired states of every participating
	 * peer; remove every object of a peer that is not among them (deleted while the agent was
	 * down, say). No apply runs while gc does. The array is valid during the call only.
	 */
	int (*gc)(struct mc_plugin_ctx *ctx, const struct mc_peer_state *const *peers, size_t n);
	/* 1.1, optional. Some Secret the source reports changed or vanished: read the entries
	 * this plugin uses again with host->secret_get(). Retried like an apply on failure. */
	int (*secret_changed)(struct mc_plugin_ctx *ctx);
	/*
	 * 1.5, optional. What this plugin has in place for the peer of index peer_index, as one
	 * line of text into buf (size bytes, NUL-terminated), for meshcryptctl status: the xfrm
	 * backend its SAs and policies, the WireGuard backend its peer. From the main loop while
	 * applies run on the workers; from the plugin's own model, no kernel round trip. 0, or
	 * -ENOENT when it holds nothing for that index.
	 */
	int (*peer_status)(struct mc_plugin_ctx *ctx, uint16_t peer_index, char *buf, size_t size);
};

/*
 * The descriptor. Lifecycle: config_check (pure) -> init (acquire, may fail) -> start ->
 * stop -> fini. Start runs dataplane plugins before the source, stop runs in reverse.
 * fini is called after a failed init too, so it must cope with partial initialisation.
 * Every callback is optional except for the dataplane ops of backend and attach plugins.
 */
struct mc_plugin {
	size_t struct_size;   /* sizeof(struct mc_plugin) as built; must stay first */
	uint32_t abi_version; /* MC_PLUGIN_ABI_VERSION as built */
	const char *name;     /* [a-z0-9-]+, matches the file name <kind>-<name>.so */
	enum mc_plugin_kind kind;
	const char *description;
	const char *version;                /* the plugin's own release, informational */
	const struct mc_option *options;    /* schema of [plugin.<name>], NULL = takes no keys */
	/* Cross-key checks on the validated section. Writes one line into `error` on failure. */
	int (*config_check)(struct mc_plugin_ctx *ctx, char *error, size_t error_size);
	int (*init)(struct mc_plugin_ctx *ctx);
	int (*start)(struct mc_plugin_ctx *ctx);
	void (*stop)(struct mc_plugin_ctx *ctx);
	void (*fini)(struct mc_plugin_ctx *ctx);
	const struct mc_dataplane_ops *dataplane; /* backend and attach plugins only */
	/* 1.1: sizeof(struct mc_option) as built, the stride of `options` (0: the 1.0 size). */
	size_t option_size;
	/*
	 * 1.1, optional, dataplane plugins: `meshcryptd --cleanup` calls it after init instead of
	 * start: remove exactly the kernel objects (and files) this plugin made, on this node,
	 * and nothing else. Called for the backend before the attach plugin, so the leak guard
	 * is the last thing to go.
	 */
	int (*cleanup)(struct mc_plugin_ctx *ctx);
	/*
	 * 1.3, optional, sources: the node's publication changed (struct mc_publication). Called
	 * from any thread, the struct valid during the call only; publish it (the k8s source
	 * writes the node's MeshcryptNode) or ignore it (the static source: the file is the
	 * authority).
	 */
	void (*publish)(struct mc_plugin_ctx *ctx, const struct mc_publication *p);
};

#if defined(__GNUC__)
#define MC_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define MC_PLUGIN_EXPORT
#endif

/*
 * Defines the descriptor, stamping the ABI version and size. Usage:
 *   MC_PLUGIN_DEFINE(.name = "hello", .kind = MC_PLUGIN_BACKEND, .init = hello_init, ...);
 */
#define MC_PLUGIN_DEFINE(...)                                                                  \
	MC_PLUGIN_EXPORT extern const struct mc_plugin meshcrypt_plugin;                       \
	MC_PLUGIN_EXPORT const struct mc_plugin meshcrypt_plugin = {                           \
		.struct_size = sizeof(struct mc_plugin),                                       \
		.abi_version = MC_PLUGIN_ABI_VERSION,                                          \
		.option_size = sizeof(struct mc_option),                                       \
		__VA_ARGS__                                                                    \
	}

#define MC_DATAPLANE_OPS(...) { .struct_size = sizeof(struct mc_dataplane_ops), __VA_ARGS__ }

#ifdef __cplusplus
}
#endif

#endif
