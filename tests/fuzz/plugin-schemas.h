/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The schemas of the [plugin.NAME] sections of every plugin meshcrypt ships, as their
 * descriptors declare them (the `options` of MC_PLUGIN_DEFINE, help texts left out), for
 * fuzz-config.c: a copy, since linking the plugins into a harness would bring in libcurl, libbpf
 * and the kernel interfaces. The unit test plugin-loader (test_fuzz_schemas_are_the_plugins')
 * loads each plugin and fails on any difference, so the copy cannot drift.
 */
#ifndef MC_FUZZ_PLUGIN_SCHEMAS_H
#define MC_FUZZ_PLUGIN_SCHEMAS_H

#include <meshcrypt/plugin.h>

static const struct mc_option fuzz_static_options[] = { /* plugins/source-static/static.c */
	{ .name = "file", .type = MC_OPTION_PATH, .required = true },
	{ 0 }
};
static const struct mc_option fuzz_k8s_options[] = { /* plugins/source-k8s/k8s.c */
	{ .name = "kubeconfig", .type = MC_OPTION_PATH },
	{ .name = "allow_insecure", .type = MC_OPTION_BOOL, .default_value = "no" },
	{ .name = "key_secret", .type = MC_OPTION_STRING,
	  .default_value = "meshcrypt-system/meshcrypt-ipsec-keys" },
	{ .name = "watch_timeout", .type = MC_OPTION_DURATION, .default_value = "300s",
	  .min = 1000000000, .max = (int64_t)3600 * 1000000000 },
	{ 0 }
};
static const struct mc_option fuzz_xfrm_options[] = { /* plugins/backend-xfrm/xfrm.c */
	{ .name = "key_file", .type = MC_OPTION_PATH },
	{ .name = "key_secret", .type = MC_OPTION_STRING,
	  .default_value = "meshcrypt-system/meshcrypt-ipsec-keys" },
	{ .name = "rotation_grace", .type = MC_OPTION_DURATION, .default_value = "300s",
	  .min = 0, .max = (int64_t)86400 * 1000000000 },
	{ .name = "reqid", .type = MC_OPTION_INT, .default_value = "0x6d63", .min = 1,
	  .max = 0x7fffffff },
	{ 0 }
};
static const struct mc_option fuzz_wg_options[] = { /* plugins/backend-wireguard/wireguard.c */
	{ .name = "device", .type = MC_OPTION_STRING, .default_value = "mcwg0" },
	{ .name = "listen_port", .type = MC_OPTION_INT, .default_value = "51830", .min = 1,
	  .max = 65535 },
	{ .name = "route_table", .type = MC_OPTION_INT, .default_value = "0x6d63", .min = 1,
	  .max = 0x7fffffff },
	{ .name = "mtu", .type = MC_OPTION_STRING, .default_value = "auto" },
	{ .name = "private_key_file", .type = MC_OPTION_PATH },
	{ 0 }
};

static const struct {
	enum mc_plugin_kind kind;
	const char *name;
	const struct mc_option *options; /* NULL: takes no keys */
} fuzz_plugins[] = {
	{ MC_PLUGIN_SOURCE, "static", fuzz_static_options },
	{ MC_PLUGIN_SOURCE, "k8s", fuzz_k8s_options },
	{ MC_PLUGIN_BACKEND, "xfrm", fuzz_xfrm_options },
	{ MC_PLUGIN_BACKEND, "wireguard", fuzz_wg_options },
	{ MC_PLUGIN_BACKEND, "dryrun", NULL },
	{ MC_PLUGIN_ATTACH, "tc", NULL },
	{ MC_PLUGIN_ATTACH, "tcx", NULL },
};

#endif
