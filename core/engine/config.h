/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meshcryptd's ini configuration (DESIGN.md §11), parsed with iniparser and validated against
 * schemas: the core's own for [core], [source], [backend] and [attach], and each plugin's
 * declared options for its [plugin.<name>] section. A configuration is validated completely
 * before anything uses it, so a bad file is never half-applied.
 *
 * Errors are one line in struct mc_config_error, naming file, line, section, key and the
 * quoted value; nothing here logs.
 */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <meshcrypt/host.h>
#include <meshcrypt/plugin.h>

struct mc_config_error {
	char message[512];
};

/* The validated values of one section: every declared key, defaults filled in. */
struct mc_section;

const char *mc_section_name(const struct mc_section *s);
/* NULL / 0 / false for a key the schema does not declare or that has no value. */
const char *mc_section_string(const struct mc_section *s, const char *key);
int64_t mc_section_int(const struct mc_section *s, const char *key);
bool mc_section_bool(const struct mc_section *s, const char *key);
uint64_t mc_section_duration_ns(const struct mc_section *s, const char *key);
void mc_section_free(struct mc_section *s);

enum mc_slot {
	MC_SLOT_ATTACH,
	MC_SLOT_BACKEND,
	MC_SLOT_SOURCE,
	MC_SLOT_COUNT,
};
/* "attach", "backend", "source": the section name and the file-name prefix of its plugins. */
const char *mc_slot_name(enum mc_slot slot);
enum mc_plugin_kind mc_slot_kind(enum mc_slot slot);

struct mc_config {
	char *path;
	/* [core], resolved: */
	char *node_name;
	const char *plugin_dir, *state_dir, *run_dir, *managed_label, *metrics_listen;
	unsigned workers;
	/* marks, masks, inbound, resync_interval: handed to plugins as they are */
	struct mc_dataplane_config dataplane;
	/* [source], [backend], [attach]: plugin name ("none" = no attach plugin) and whether a
	 * failure of that plugin aborts start-up. */
	struct {
		const char *plugin;
		bool required;
	} slots[MC_SLOT_COUNT];

	struct mc_section *core, *slot_sections[MC_SLOT_COUNT];
	struct mc_config_private *priv;
};

/* Loads and validates everything but the [plugin.*] sections, which need the plugins'
 * schemas (mc_config_plugin_section). On success *out is the caller's (mc_config_free); on
 * failure *out is untouched and err says why. */
int mc_config_load(const char *path, struct mc_config **out, struct mc_config_error *err);
void mc_config_free(struct mc_config *cfg);

/* The largest peer index (DESIGN.md §4) that [core] peer_mask can carry, at most 65535. */
uint32_t mc_config_max_peer_index(const struct mc_config *cfg);

/*
 * [attach] plugin = auto: the plugins to try, in order, NULL-terminated. The engine takes the
 * first whose file exists and whose init does not return -EOPNOTSUPP (tcx before 6.6).
 */
extern const char *const mc_config_auto_attach[];

/* Overrides [core] plugin_dir (e.g. meshcryptd --plugin-dir); the string is copied. */
int mc_config_set_plugin_dir(struct mc_config *cfg, const char *dir);

/* Validates [plugin.<name>] against `schema` (NULL = the plugin takes no keys). A missing
 * section is valid and yields the defaults. *out is the caller's (mc_section_free). */
int mc_config_plugin_section(const struct mc_config *cfg, const char *name,
			     const struct mc_option *schema, struct mc_section **out,
			     struct mc_config_error *err);

/* Fails on a [plugin.<name>] section whose plugin no slot selects: a typo there would
 * otherwise be ignored silently. */
int mc_config_check_plugin_sections(const struct mc_config *cfg, struct mc_config_error *err);

#endif
