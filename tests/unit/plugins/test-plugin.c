/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One plugin source, built into several test plugins (tests/unit/meson.build):
 *   TEST_KIND, TEST_NAME  what the descriptor says
 *   TEST_ABI_MAJOR        another ABI major, to be refused
 *   TEST_NO_DESCRIPTOR    exports its descriptor under another name (as an old or foreign
 *                         plugin would), so the loader finds no `meshcrypt_plugin`
 *   TEST_UNDEFINED        calls a function nothing defines (refused at load: -z now)
 *   TEST_SMALL            a descriptor whose struct_size is too small
 *   TEST_ABI_10           built as an ABI 1.0 plugin: 1.0 version and sizes, no 1.1 fields
 * Each callback appends "<name> <callback>" to the file named by the `trace` key, so tests
 * can assert the lifecycle order; fail_init/fail_start/fail_check make that step fail, and
 * unsupported = yes makes init return -EOPNOTSUPP (an attach method the kernel lacks).
 * Dataplane calls trace "<name> peer NODE index I", "<name> pod IP role R index I",
 * "<name> local NODE", "<name> gc N" and "<name> cleanup"; fail_apply = N makes the first N
 * applies of each key fail with -EIO (retried), permanent = yes makes peer applies fail with
 * -MC_EPERMANENT, hang_apply = D makes every peer apply take D (a worker that hangs).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <meshcrypt/host.h>
#include <meshcrypt/plugin.h>

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

static void tracef(struct mc_plugin_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void tracef(struct mc_plugin_ctx *ctx, const char *fmt, ...)
{
	const char *path = ctx->host->config_string(ctx, "trace");
	va_list ap;
	FILE *f;

	pthread_mutex_lock(&trace_lock);
	if (path && (f = fopen(path, "a"))) {
		fprintf(f, "%s ", TEST_NAME);
		va_start(ap, fmt);
		vfprintf(f, fmt, ap);
		va_end(ap);
		fputc('\n', f);
		fclose(f);
	}
	pthread_mutex_unlock(&trace_lock);
}

static void trace(struct mc_plugin_ctx *ctx, const char *what)
{
	tracef(ctx, "%s", what);
}

/* Failures left per key for fail_apply, by a small hash of the key's text. */
static unsigned failures_left[256];

static int maybe_fail(struct mc_plugin_ctx *ctx, const char *key)
{
	unsigned h = 0;
	int r = 0;

	for (const char *c = key; *c; c++)
		h = h * 31 + (unsigned char)*c;
	pthread_mutex_lock(&trace_lock);
	if (failures_left[h & 255] == 0xffffffffu)
		r = 0;
	else if (failures_left[h & 255] == 0)
		failures_left[h & 255] = (unsigned)ctx->host->config_int(ctx, "fail_apply");
	if (failures_left[h & 255] && failures_left[h & 255] != 0xffffffffu) {
		failures_left[h & 255]--;
		r = -EIO;
		if (!failures_left[h & 255])
			failures_left[h & 255] = 0xffffffffu; /* done failing this key */
	} else {
		failures_left[h & 255] = 0xffffffffu;
	}
	pthread_mutex_unlock(&trace_lock);
	return r;
}

#ifdef TEST_UNDEFINED
void mc_test_nothing_defines_this(void);
#endif

static int test_check(struct mc_plugin_ctx *ctx, char *error, size_t size)
{
	trace(ctx, "config_check");
	if (ctx->host->config_bool(ctx, "fail_check")) {
		snprintf(error, size, "fail_check is set, so count %lld is refused",
			 (long long)ctx->host->config_int(ctx, "count"));
		return -EINVAL;
	}
	return 0;
}

static int test_init(struct mc_plugin_ctx *ctx)
{
#ifdef TEST_UNDEFINED
	mc_test_nothing_defines_this();
#endif
	trace(ctx, "init");
	if (ctx->host->config_bool(ctx, "unsupported"))
		return -EOPNOTSUPP;
	return ctx->host->config_bool(ctx, "fail_init") ? -EIO : 0;
}

static int test_start(struct mc_plugin_ctx *ctx)
{
	trace(ctx, "start");
	return ctx->host->config_bool(ctx, "fail_start") ? -EIO : 0;
}

static void test_stop(struct mc_plugin_ctx *ctx)
{
	trace(ctx, "stop");
}

static void test_fini(struct mc_plugin_ctx *ctx)
{
	trace(ctx, "fini");
}

static int test_local(struct mc_plugin_ctx *ctx, const struct mc_local_state *s)
{
	int r = maybe_fail(ctx, "local");

	tracef(ctx, "local %s%s", s->name, r ? " failed" : "");
	return r;
}

static int test_peer(struct mc_plugin_ctx *ctx, const struct mc_peer_state *s)
{
	char key[300];
	int r;

	snprintf(key, sizeof(key), "peer %s", s->name);
	{
		uint64_t hang = ctx->host->config_duration_ns(ctx, "hang_apply");
		struct timespec ts = { .tv_sec = (time_t)(hang / 1000000000),
				       .tv_nsec = (long)(hang % 1000000000) };

		while (hang && nanosleep(&ts, &ts) < 0)
			;
	}
	r = maybe_fail(ctx, key);
	if (r == 0 && ctx->host->config_bool(ctx, "permanent"))
		r = -MC_EPERMANENT;
#ifdef TEST_ABI_10
	tracef(ctx, "peer %s%s%s", s->name, s->present ? "" : " absent", r ? " failed" : "");
#else
	tracef(ctx, "peer %s index %u%s%s", s->name,
	       MC_STATE_HAS(ctx->host, peer_state, peer_index) ? s->peer_index : 0,
	       s->present ? "" : " absent", r ? " failed" : "");
#endif
	return r;
}

static int test_pod(struct mc_plugin_ctx *ctx, const struct mc_pod_state *s)
{
	char ip[MC_IP_STRLEN];

	/* inet_ntop, not mc_ip_to_string: test plugins link no libmeshcrypt */
	inet_ntop(s->ip.family, s->ip.addr, ip, sizeof(ip));
#ifdef TEST_ABI_10
	tracef(ctx, "pod %s role %d", ip, (int)s->role);
#else
	tracef(ctx, "pod %s role %d index %u", ip, (int)s->role,
	       MC_STATE_HAS(ctx->host, pod_state, peer_index) ? s->peer_index : 0);
#endif
	return 0;
}

#ifdef TEST_ABI_10
/* The ops as an ABI 1.0 plugin has them: three apply calls, nothing after. */
struct ops_v10 {
	size_t struct_size;
	int (*local_apply)(struct mc_plugin_ctx *ctx, const struct mc_local_state *desired);
	int (*peer_apply)(struct mc_plugin_ctx *ctx, const struct mc_peer_state *desired);
	int (*pod_apply)(struct mc_plugin_ctx *ctx, const struct mc_pod_state *desired);
};
static const struct ops_v10 test_ops_v10 = { sizeof(struct ops_v10), test_local, test_peer,
					     test_pod };
#define TEST_OPS ((const struct mc_dataplane_ops *)&test_ops_v10)
#else
static int test_gc(struct mc_plugin_ctx *ctx, const struct mc_peer_state *const *peers, size_t n)
{
	tracef(ctx, "gc %zu", n);
	for (size_t i = 0; i < n; i++)
		tracef(ctx, "gc keeps %s index %u", peers[i]->name, peers[i]->peer_index);
	return 0;
}

static int test_cleanup(struct mc_plugin_ctx *ctx)
{
	trace(ctx, "cleanup");
	return 0;
}

static const struct mc_dataplane_ops test_ops = MC_DATAPLANE_OPS(
	.local_apply = test_local, .peer_apply = test_peer, .pod_apply = test_pod, .gc = test_gc);
#define TEST_OPS (&test_ops)
#endif

static const struct mc_option test_options[] = {
	{ .name = "trace", .type = MC_OPTION_PATH },
	{ .name = "fail_check", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "fail_init", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "unsupported", .type = MC_OPTION_BOOL, .default_value = "no" }, /* -EOPNOTSUPP */
	{ .name = "fail_start", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "count", .type = MC_OPTION_INT, .default_value = "3", .min = 1, .max = 10 },
	{ .name = "mode", .type = MC_OPTION_ENUM, .default_value = "fast", .choices = "fast|slow" },
	{ .name = "period", .type = MC_OPTION_DURATION, .default_value = "5s" },
	{ .name = "fail_apply", .type = MC_OPTION_INT, .default_value = "0", .min = 0, .max = 100 },
	{ .name = "permanent", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "hang_apply", .type = MC_OPTION_DURATION, .default_value = "0s" },
	{ 0 }
};

#ifdef TEST_NO_DESCRIPTOR
#define meshcrypt_plugin module_register
#endif
MC_PLUGIN_EXPORT const struct mc_plugin meshcrypt_plugin = {
#if defined(TEST_SMALL)
	.struct_size = offsetof(struct mc_plugin, name),
#elif defined(TEST_ABI_10)
	.struct_size = offsetof(struct mc_plugin, option_size),
#else
	.struct_size = sizeof(struct mc_plugin),
#endif
#ifndef TEST_ABI_10
	.option_size = sizeof(struct mc_option),
	.cleanup = test_cleanup,
#endif
#if defined(TEST_ABI_MAJOR)
	.abi_version = MC_PLUGIN_ABI(TEST_ABI_MAJOR, 0),
#elif defined(TEST_ABI_10)
	.abi_version = MC_PLUGIN_ABI(1, 0),
#else
	.abi_version = MC_PLUGIN_ABI_VERSION,
#endif
	.name = TEST_NAME,
	.kind = TEST_KIND,
	.description = "test plugin",
	.options = test_options,
	.config_check = test_check,
	.init = test_init,
	.start = test_start,
	.stop = test_stop,
	.fini = test_fini,
	.dataplane = TEST_KIND == MC_PLUGIN_SOURCE ? NULL : TEST_OPS,
};
