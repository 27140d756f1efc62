/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Loads plugins with libltdl, strictly: only regular files named <kind>-<name>.so in a plugin
 * directory that is not group- or world-writable; the descriptor `meshcrypt_plugin` must be
 * exported, of our ABI major, large enough and self-consistent. This file is the only user of
 * ltdl.h. Nothing here logs: failures come back as -errno plus one line in `error`.
 *
 *   -ENOENT           no such plugin file
 *   -EPERM            the directory or file is group- or world-writable, or not a regular file
 *   -ELIBACC          the dynamic loader refused the file (missing library, undefined symbol)
 *   -ENOEXEC          no descriptor, or a malformed one
 *   -EPROTONOSUPPORT  built for another ABI major
 */
#ifndef MC_PLUGIN_LOADER_H
#define MC_PLUGIN_LOADER_H

#include <stddef.h>
#include <meshcrypt/plugin.h>

struct mc_loaded_plugin;

/* The descriptor as this core sees it (fields the plugin did not have are NULL / 0; abi_version
 * is the plugin's), valid until mc_plugin_unload. */
const struct mc_plugin *mc_loaded_plugin_descriptor(const struct mc_loaded_plugin *p);
const char *mc_loaded_plugin_path(const struct mc_loaded_plugin *p);

const char *mc_plugin_kind_name(enum mc_plugin_kind kind);

/* Checks that `dir` is a directory neither group- nor world-writable. */
int mc_plugin_dir_check(const char *dir, char *error, size_t error_size);

/* Loads <dir>/<kind>-<name>.so. On success *out is the caller's (mc_plugin_unload). */
int mc_plugin_load(const char *dir, enum mc_plugin_kind kind, const char *name,
		   struct mc_loaded_plugin **out, char *error, size_t error_size);
/* Loads the file `path` (in a checked directory), whatever its kind. */
int mc_plugin_load_path(const char *path, struct mc_loaded_plugin **out, char *error,
			size_t error_size);
void mc_plugin_unload(struct mc_loaded_plugin *p);

/* Calls fn for every *.so in dir, sorted by name, with the loaded plugin or, when it was
 * refused, NULL and the reason (r < 0, error). The plugin is unloaded after fn returns. */
typedef void (*mc_plugin_list_fn)(const char *path, const struct mc_loaded_plugin *p, int r,
				  const char *error, void *userdata);
int mc_plugin_list(const char *dir, mc_plugin_list_fn fn, void *userdata);

#endif
