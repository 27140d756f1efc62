/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fake struct mc_host for plugin unit tests: a plugin's .c file is compiled into the test
 * executable (its `meshcrypt_plugin` is then a global the test calls through) and is handed a
 * struct mc_plugin_ctx whose host is this fake. Every host call is implemented:
 *
 *   log/vlog       captured as lines (level + formatted text): count, clear, search
 *   config_*       a key=value table the test sets; the typed getters parse the value
 *   set/get_data   one pointer
 *   node_name, state_dir, run_dir   set by the test
 *   store_*        record what they got (counts, kinds mask) and free it (they take ownership)
 *   set_ready      records (ready, status)
 *   io_add, timer_add   recorded; the test fires them by hand (fake_host_fire_io/_timers)
 *   secret_get     a table the test sets
 *   dataplane_config    the [core] defaults (0xe0/0xd0/0xf0/0xffff0000, require)
 *   pod_state      per-IP answers the test sets, else a default answer (role MC_POD_NONE)
 *   metrics        NULL, or a mc_metrics_new() registry (fake_host_enable_metrics)
 *   requeue        records the keys (fake_host_requeued); thread-safe
 *   publish        merges what plugins publish (fake_host_published); thread-safe
 *   log_enabled    true for every level (every line is captured)
 *
 * Everything is ABI 1.6 with struct_size = sizeof(struct mc_host); a test may shrink the
 * sizes through fake_host_host() to play an older core. Not thread-safe apart from log and
 * the config/data getters, like the real host's rules for plugins.
 */
#ifndef MC_TEST_FAKE_HOST_H
#define MC_TEST_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <meshcrypt/host.h>
#include <meshcrypt/model.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

/* The descriptor of the plugin compiled into the test executable. */
extern const struct mc_plugin meshcrypt_plugin;

struct fake_host;

/* A new fake host with an empty configuration; node name "node-1", state and run dir "/tmp".
 * Aborts on allocation failure. */
struct fake_host *fake_host_new(void);
/* Frees it and whatever handles the plugin left (see fake_host_open_handles), the metrics
 * registry and the log. Does not call the plugin's fini. NULL is a no-op. */
void fake_host_free(struct fake_host *fh);

/* The plugin instance to hand to the plugin's callbacks. */
struct mc_plugin_ctx *fake_host_ctx(struct fake_host *fh);
/* The host vtable, writable so a test can play an older core (struct_size, *_state_size). */
struct mc_host *fake_host_host(struct fake_host *fh);
/* The fake that owns ctx. */
struct fake_host *fake_host_of(struct mc_plugin_ctx *ctx);

/* ---- log ---- */

/* Lines logged since the last clear. */
size_t fake_host_log_count(struct fake_host *fh);
/* Lines of exactly `level` since the last clear. */
size_t fake_host_log_count_level(struct fake_host *fh, int level);
/* Lines containing `needle` since the last clear. */
size_t fake_host_log_count_matching(struct fake_host *fh, const char *needle);
/* Line i (< count) and its level (level may be NULL); NULL when i is out of range. */
const char *fake_host_log_line(struct fake_host *fh, size_t i, int *level);
/* The first line containing `needle` (and of `level`, unless level < 0), or NULL. */
const char *fake_host_log_find(struct fake_host *fh, int level, const char *needle);
void fake_host_log_clear(struct fake_host *fh);
/* Prints the captured lines to stderr, e.g. before a failing assertion. */
void fake_host_log_dump(struct fake_host *fh);
/* Also echo each line to stderr as it is logged (off by default; or FAKE_HOST_VERBOSE=1). */
void fake_host_log_echo(struct fake_host *fh, bool on);

/* ---- configuration ---- */

/* Sets key of the plugin's section (value NULL: unsets it). Copied; a replaced value stays
 * allocated until fake_host_free, since the host promises its strings live until fini. */
void fake_host_set_config(struct fake_host *fh, const char *key, const char *value);
/* Sets key of a global section ("core", "source", ...) for config_global. */
void fake_host_set_global(struct fake_host *fh, const char *section, const char *key,
			  const char *value);
/* The getters' parsers, exposed for their own test: "0x10", "-3"; yes/no, true/false, on/off,
 * 1/0; "250ms", "5s", "2m", "1h", "10us", "7ns", a bare number of seconds. Invalid: 0/false. */
int64_t fake_host_parse_int(const char *s);
bool fake_host_parse_bool(const char *s);
uint64_t fake_host_parse_duration_ns(const char *s);

/* ---- node name, directories ---- */

void fake_host_set_node_name(struct fake_host *fh, const char *name);
void fake_host_set_state_dir(struct fake_host *fh, const char *dir);
void fake_host_set_run_dir(struct fake_host *fh, const char *dir);

/* ---- store calls ---- */

struct fake_store_record {
	unsigned upserts, deletes, replace_alls, replace_kinds; /* calls of each */
	unsigned relist_pages; /* store_relist calls */
	/* The last call of each: */
	enum mc_object_kind upsert_kind;
	char upsert_name[256];
	enum mc_object_kind delete_kind;
	char delete_ns[256], delete_name[256];
	/* The objects of the last replace_all or replace_kinds, or of the pages of the last
	 * store_relist from its MC_RELIST_FIRST page on: */
	size_t replace_count;
	unsigned replace_kinds_mask; /* its kinds (MC_OBJECT_KINDS_ALL for replace_all) */
	size_t replace_kind_counts[MC_OBJECT_SECRET + 1]; /* objects per kind */
};

const struct fake_store_record *fake_host_store(struct fake_host *fh);
/* What the store calls return from now on (default 0); they free their input anyway. */
void fake_host_set_store_result(struct fake_host *fh, int result);

/* ---- readiness ---- */

/* Calls of set_ready, and the arguments of the last one ("" before any). */
unsigned fake_host_ready_calls(struct fake_host *fh);
bool fake_host_ready(struct fake_host *fh);
const char *fake_host_status(struct fake_host *fh);

/* ---- main loop ---- */

/* What io_add/timer_add return from now on (default 0: success). */
void fake_host_set_io_result(struct fake_host *fh, int result);
void fake_host_set_timer_result(struct fake_host *fh, int result);
/* Handles added and not removed yet: I/O sources and timers. */
size_t fake_host_io_count(struct fake_host *fh);
size_t fake_host_timer_count(struct fake_host *fh);
size_t fake_host_open_handles(struct fake_host *fh);
/* The fd of the i-th open I/O source (oldest first), or -1. */
int fake_host_io_fd(struct fake_host *fh, size_t i);
/* Calls the callback of every open I/O source on fd with revents (0: its events). Returns
 * how many were called. */
size_t fake_host_fire_io_events(struct fake_host *fh, int fd, uint32_t revents);
size_t fake_host_fire_io(struct fake_host *fh, int fd);
/* Fires every armed timer once (a callback returning a delay re-arms it). Returns how many
 * fired. fake_host_armed_timers: how many are armed; fake_host_timer_delay_ns: the delay of
 * the i-th open timer (oldest first), 0 when disarmed or out of range. */
size_t fake_host_fire_timers(struct fake_host *fh);
size_t fake_host_armed_timers(struct fake_host *fh);
uint64_t fake_host_timer_delay_ns(struct fake_host *fh, size_t i);

/* ---- Secrets, dataplane config, pod states, metrics ---- */

/* Sets entry key of Secret ns/name (data NULL: removes it). Copied. */
void fake_host_set_secret(struct fake_host *fh, const char *ns, const char *name,
			  const char *key, const void *data, size_t len);
/* The dataplane config it hands out, writable. */
struct mc_dataplane_config *fake_host_dataplane(struct fake_host *fh);
/* The answer of pod_state for ip (copied; its ip field is ignored). */
void fake_host_set_pod_state(struct fake_host *fh, const struct mc_ip *ip,
			     enum mc_pod_role role, uint32_t peer_id, uint16_t peer_index);
/* The answer for every other IP: role (default MC_POD_NONE) and return value (default 0). */
void fake_host_set_pod_default(struct fake_host *fh, enum mc_pod_role role, int result);
/* How many times pod_state was called. */
unsigned fake_host_pod_state_calls(struct fake_host *fh);
/* metrics() returns a new mc_metrics_new() registry from now on (freed with the fake). */
struct mc_metrics *fake_host_enable_metrics(struct fake_host *fh);

/* The keys handed to host->requeue since the last call (up to max copied to out), then
 * forgotten; returns how many there were. */
size_t fake_host_requeued(struct fake_host *fh, struct mc_key *out, size_t max);

/* What host->publish merged so far (copied to out when not NULL); returns the number of calls. */
unsigned fake_host_published(struct fake_host *fh, struct mc_publication *out);

/* ---- helpers for building states ---- */

/* ip parsed from s, aborting on a bad address. */
struct mc_ip fake_ip(const char *s);
struct mc_prefix fake_prefix(const char *s);

#endif
