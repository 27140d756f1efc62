/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One plugin source, built into several test plugins (tests/unit/meson.build):
 *   TEST_KIND, TEST_NAME  what the descriptor says
 *   TEST_ABI_MAJOR        another ABI major, to be refused
 *   TEST_NO_DESCRIPTOR    exports its descriptor under another name (as an old or foreign
 *                         plugin would), so the loader finds no `meshcrypt_plugin`
 *   TEST_UNDEFINED        calls a function nothing defines (refused at load: -z now)
 *   TEST_SMALL            a descriptor whose struct_size is too small
 * Each callback appends "<name> <callback>" to the file named by the `trace` key, so tests
 * can assert the lifecycle order; fail_init/fail_start/fail_check make that step fail.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <meshcrypt/host.h>
#include <meshcrypt/plugin.h>

static void trace(struct mc_plugin_ctx *ctx, const char *what)
{
	const char *path = ctx->host->config_string(ctx, "trace");
	FILE *f;

	if (!path || !(f = fopen(path, "a")))
		return;
	fprintf(f, "%s %s\n", TEST_NAME, what);
	fclose(f);
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
	return 0;
}

static int test_peer(struct mc_plugin_ctx *ctx, const struct mc_peer_state *s)
{
	return 0;
}

static int test_pod(struct mc_plugin_ctx *ctx, const struct mc_pod_state *s)
{
	return 0;
}

static const struct mc_dataplane_ops test_ops =
	MC_DATAPLANE_OPS(.local_apply = test_local, .peer_apply = test_peer, .pod_apply = test_pod);

static const struct mc_option test_options[] = {
	{ .name = "trace", .type = MC_OPTION_PATH },
	{ .name = "fail_check", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "fail_init", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "fail_start", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "count", .type = MC_OPTION_INT, .default_value = "3", .min = 1, .max = 10 },
	{ .name = "mode", .type = MC_OPTION_ENUM, .default_value = "fast", .choices = "fast|slow" },
	{ .name = "period", .type = MC_OPTION_DURATION, .default_value = "5s" },
	{ 0 }
};

#ifdef TEST_NO_DESCRIPTOR
#define meshcrypt_plugin module_register
#endif
MC_PLUGIN_EXPORT const struct mc_plugin meshcrypt_plugin = {
#ifdef TEST_SMALL
	.struct_size = offsetof(struct mc_plugin, name),
#else
	.struct_size = sizeof(struct mc_plugin),
#endif
#ifdef TEST_ABI_MAJOR
	.abi_version = MC_PLUGIN_ABI(TEST_ABI_MAJOR, 0),
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
	.dataplane = TEST_KIND == MC_PLUGIN_SOURCE ? NULL : &test_ops,
};
