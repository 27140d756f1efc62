/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for meshcryptd's configuration (core/engine/config.h): loads arbitrary bytes as
 * the ini file (mc_config_load() takes a path: the bytes go into a memfd, read through
 * /proc/self/fd), then checks the [plugin.*] sections as the engine does
 * (mc_config_check_plugin_sections()) and validates [plugin.NAME] against the schema of every
 * plugin meshcrypt ships (mc_config_plugin_section()), whichever the file selects.
 *
 * Besides memory errors, leaks and undefined behaviour, a crash here means a result that
 * breaks what config.h promises: a return value not in the list, a failure that hands out a
 * configuration or whose message is not one line naming the file, or a configuration that
 * passed although a value breaks its schema or the cross-key rules (marks inside role_mask
 * and different, peer_mask one run of at least 8 bits clear of role_mask, absolute paths, a
 * managed label key=value, a metrics address that parses).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "listen-address.h"
#include "plugin-schemas.h"

#define NS_PER_SEC INT64_C(1000000000)

static char path[64];

/* The file mc_config_load() reads: a memfd, rewritten for each input. */
static int config_file(const uint8_t *data, size_t size)
{
	static int fd = -1;

	if (fd < 0) {
		fd = memfd_create("meshcryptd.conf", MFD_CLOEXEC);
		FUZZ_CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	return 0;
}

/* One line that names the file (the configuration's own errors all start with it), and a
 * line of it where it names one ("FILE:LINE: ..."). */
static void check_error(const struct mc_config_error *err, const uint8_t *data, size_t size)
{
	size_t len = strlen(path), lines = 1;
	const char *at = err->message + len;
	char *end;
	long line;

	FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)));
	FUZZ_CHECK(!strchr(err->message, '\n'));
	FUZZ_CHECK(strncmp(err->message, path, len) == 0);
	if (at[0] != ':' || at[1] < '0' || at[1] > '9')
		return;
	line = strtol(at + 1, &end, 10);
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	FUZZ_CHECK(*end == ':' && line >= 1 && (size_t)line <= lines);
}

static bool is_absolute(const char *p)
{
	return p && p[0] == '/';
}

static bool enum_has(const char *choices, const char *s)
{
	size_t len = strlen(s);

	for (const char *c = choices; c; c = strchr(c, '|'), c = c ? c + 1 : NULL)
		if (strncmp(c, s, len) == 0 && (c[len] == '|' || c[len] == '\0'))
			return true;
	return false;
}

/* Every value of a validated section keeps to its option's rules. */
static void check_section(const struct mc_section *s, const struct mc_option *schema)
{
	for (size_t i = 0; schema && schema[i].name; i++) {
		const struct mc_option *o = &schema[i];
		const char *raw = mc_section_string(s, o->name);
		bool ranged = o->min || o->max;

		if (o->required || o->default_value)
			FUZZ_CHECK(raw);
		if (!raw)
			continue;
		switch (o->type) {
		case MC_OPTION_PATH:
			FUZZ_CHECK(is_absolute(raw));
			break;
		case MC_OPTION_INT:
			FUZZ_CHECK(!ranged || (mc_section_int(s, o->name) >= o->min &&
					       mc_section_int(s, o->name) <= o->max));
			break;
		case MC_OPTION_DURATION:
			FUZZ_CHECK(!ranged ||
				   (mc_section_duration_ns(s, o->name) >= (uint64_t)o->min &&
				    mc_section_duration_ns(s, o->name) <= (uint64_t)o->max));
			break;
		case MC_OPTION_ENUM:
			FUZZ_CHECK(enum_has(o->choices, raw));
			break;
		case MC_OPTION_STRING:
		case MC_OPTION_BOOL:
			break;
		}
	}
}

static void check_config(const struct mc_config *cfg)
{
	const struct mc_dataplane_config *dp = &cfg->dataplane;
	uint32_t peer_bits = dp->peer_mask >> __builtin_ctz(dp->peer_mask);
	struct sockaddr_storage sa;
	socklen_t sa_len;

	FUZZ_CHECK(strcmp(cfg->path, path) == 0);
	FUZZ_CHECK(cfg->node_name && cfg->node_name[0]);
	FUZZ_CHECK(is_absolute(cfg->plugin_dir) && is_absolute(cfg->state_dir) &&
		   is_absolute(cfg->run_dir));
	FUZZ_CHECK(cfg->workers >= 1 && cfg->workers <= 64);
	FUZZ_CHECK(strchr(cfg->managed_label, '=') && cfg->managed_label[0] != '=');
	FUZZ_CHECK(!cfg->metrics_listen[0] ||
		   mc_listen_address_parse(cfg->metrics_listen, &sa, &sa_len) == 0);
	FUZZ_CHECK(dp->encrypt_mark && dp->decrypt_mark && dp->encrypt_mark != dp->decrypt_mark);
	FUZZ_CHECK(!(dp->encrypt_mark & ~dp->role_mask) && !(dp->decrypt_mark & ~dp->role_mask));
	FUZZ_CHECK(dp->peer_mask && !(dp->role_mask & dp->peer_mask));
	FUZZ_CHECK((peer_bits & (peer_bits + 1)) == 0 && peer_bits >= 0xff);
	FUZZ_CHECK(mc_config_max_peer_index(cfg) >= 0xff &&
		   mc_config_max_peer_index(cfg) <= 0xffff);
	FUZZ_CHECK(dp->inbound == MC_INBOUND_REQUIRE || dp->inbound == MC_INBOUND_PERMIT);
	FUZZ_CHECK(dp->resync_interval_ns >= (uint64_t)NS_PER_SEC &&
		   dp->resync_interval_ns <= 86400 * (uint64_t)NS_PER_SEC);
	FUZZ_CHECK(cfg->slots[MC_SLOT_SOURCE].plugin && cfg->slots[MC_SLOT_BACKEND].plugin &&
		   cfg->slots[MC_SLOT_ATTACH].plugin);
	FUZZ_CHECK(strcmp(mc_section_name(cfg->core), "core") == 0);
	for (int i = 0; i < MC_SLOT_COUNT; i++)
		FUZZ_CHECK(strcmp(mc_section_name(cfg->slot_sections[i]), mc_slot_name(i)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_config *cfg = (struct mc_config *)0x1;
	struct mc_config_error err;
	int r;

	config_file(data, size);
	memset(&err, 0xa5, sizeof(err)); /* no NUL but the one the loader writes */
	r = mc_config_load(path, &cfg, &err);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE || r == -ENOMEM);
	if (r < 0) {
		FUZZ_CHECK(cfg == (struct mc_config *)0x1); /* nothing handed out */
		check_error(&err, data, size);
		return 0;
	}
	check_config(cfg);

	memset(&err, 0xa5, sizeof(err));
	r = mc_config_check_plugin_sections(cfg, &err);
	FUZZ_CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		check_error(&err, data, size);

	for (size_t i = 0; i < sizeof(fuzz_plugins) / sizeof(fuzz_plugins[0]); i++) {
		struct mc_section *s = (struct mc_section *)0x1;

		memset(&err, 0xa5, sizeof(err));
		r = mc_config_plugin_section(cfg, fuzz_plugins[i].name, fuzz_plugins[i].options, &s,
					     &err);
		FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE || r == -ENOMEM);
		if (r < 0) {
			FUZZ_CHECK(s == (struct mc_section *)0x1);
			check_error(&err, data, size);
			continue;
		}
		FUZZ_CHECK(strncmp(mc_section_name(s), "plugin.", 7) == 0 &&
			   strcmp(mc_section_name(s) + 7, fuzz_plugins[i].name) == 0);
		check_section(s, fuzz_plugins[i].options);
		mc_section_free(s);
	}

	/* meshcryptd --plugin-dir */
	FUZZ_CHECK(mc_config_set_plugin_dir(cfg, "/opt/meshcrypt/plugins") == 0);
	FUZZ_CHECK(strcmp(cfg->plugin_dir, "/opt/meshcrypt/plugins") == 0);
	mc_config_free(cfg);
	return 0;
}
