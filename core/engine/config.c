/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"
#include "listen-address.h"
#include "util.h"
#include MC_INIPARSER_HEADER

struct mc_value {
	char *raw; /* NULL: unset and no default */
	int64_t i;
	uint64_t ns;
	bool b;
};

struct mc_section {
	char *name;
	const struct mc_option *schema;
	size_t n;
	struct mc_value values[];
};

struct mc_config_private {
	dictionary *ini;
	char *text; /* the file, for line numbers in error messages */
	char *dir;  /* relative paths in values are taken from here */
	char *plugin_dir_override;
};

#define NS_PER_SEC UINT64_C(1000000000)

static const struct mc_option core_options[] = {
	{ .name = "node_name", .type = MC_OPTION_STRING,
	  .help = "this node's name [$MESHCRYPT_NODE_NAME, else the host name]" },
	{ .name = "plugin_dir", .type = MC_OPTION_PATH, .default_value = MC_PLUGINDIR },
	{ .name = "state_dir", .type = MC_OPTION_PATH, .default_value = "/var/lib/meshcrypt" },
	{ .name = "run_dir", .type = MC_OPTION_PATH, .default_value = "/run/meshcrypt" },
	{ .name = "workers", .type = MC_OPTION_INT, .default_value = "2", .min = 1, .max = 64 },
	{ .name = "resync_interval", .type = MC_OPTION_DURATION, .default_value = "300s",
	  .min = (int64_t)NS_PER_SEC, .max = (int64_t)(86400 * NS_PER_SEC) },
	{ .name = "managed_label", .type = MC_OPTION_STRING,
	  .default_value = "meshcrypt.io/encryption=enabled" },
	{ .name = "inbound", .type = MC_OPTION_ENUM, .default_value = "require",
	  .choices = "require|permit" },
	{ .name = "metrics_listen", .type = MC_OPTION_STRING, .default_value = "127.0.0.1:9474" },
	{ .name = "encrypt_mark", .type = MC_OPTION_INT, .default_value = "0xe0", .min = 1,
	  .max = UINT32_MAX },
	{ .name = "decrypt_mark", .type = MC_OPTION_INT, .default_value = "0xd0", .min = 1,
	  .max = UINT32_MAX },
	{ .name = "role_mask", .type = MC_OPTION_INT, .default_value = "0xf0", .min = 1,
	  .max = UINT32_MAX - 1 },
	{ .name = "peer_mask", .type = MC_OPTION_INT, .default_value = "0xffff0000", .min = 1,
	  .max = UINT32_MAX - 1 },
	{ 0 }
};

#define SLOT_OPTIONS(plugin_default, plugin_required)                                          \
	{ .name = "plugin", .type = MC_OPTION_STRING, .default_value = plugin_default,         \
	  .required = plugin_required },                                                       \
	{ .name = "required", .type = MC_OPTION_BOOL, .default_value = "yes" }

static const struct mc_option source_options[] = { SLOT_OPTIONS(NULL, true), { 0 } };
static const struct mc_option backend_options[] = { SLOT_OPTIONS(NULL, true), { 0 } };
static const struct mc_option attach_options[] = {
	SLOT_OPTIONS("none", false),
	{ .name = "bpffs_dir", .type = MC_OPTION_PATH, .default_value = "/sys/fs/bpf/meshcrypt" },
	{ .name = "pod_interfaces", .type = MC_OPTION_STRING,
	  .default_value = "veth*,lxc*,cali*,mcpod*" },
	{ .name = "uplinks", .type = MC_OPTION_STRING, .default_value = "auto" },
	{ .name = "tunnel_interfaces", .type = MC_OPTION_STRING, .default_value = "mcwg0" },
	{ .name = "leak_guard", .type = MC_OPTION_ENUM, .default_value = "drop",
	  .choices = "drop|count|off" },
	{ 0 }
};

static const struct {
	const char *name;
	enum mc_plugin_kind kind;
	const struct mc_option *options;
} slot_info[MC_SLOT_COUNT] = {
	[MC_SLOT_ATTACH] = { "attach", MC_PLUGIN_ATTACH, attach_options },
	[MC_SLOT_BACKEND] = { "backend", MC_PLUGIN_BACKEND, backend_options },
	[MC_SLOT_SOURCE] = { "source", MC_PLUGIN_SOURCE, source_options },
};

const char *mc_slot_name(enum mc_slot slot)
{
	return slot_info[slot].name;
}

enum mc_plugin_kind mc_slot_kind(enum mc_slot slot)
{
	return slot_info[slot].kind;
}

static int set_error(struct mc_config_error *err, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_error(struct mc_config_error *err, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return r;
}

/* The line of `key` in `[section]`, for error messages; 0 when not found. iniparser keeps no
 * line numbers, and matches sections and keys without regard to case, as this does. */
static int find_line(const char *text, const char *section, const char *key)
{
	bool in_section = false;
	int line = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *s = p;
		size_t len;

		line++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '[') {
			len = strlen(section);
			in_section = strncasecmp(s + 1, section, len) == 0 && s[1 + len] == ']';
			if (!key && in_section)
				return line;
			continue;
		}
		if (!in_section || !key)
			continue;
		len = strlen(key);
		if (strncasecmp(s, key, len) == 0) {
			s += len;
			while (*s == ' ' || *s == '\t')
				s++;
			if (*s == '=' || *s == ':')
				return line;
		}
	}
	return 0;
}

/* "FILE:LINE: [section] key" or "FILE: [section]" when the line is unknown. */
static void where(const struct mc_config *cfg, const char *section, const char *key, char *buf,
		  size_t size)
{
	int line = find_line(cfg->priv->text, section, key);

	if (line > 0)
		snprintf(buf, size, "%s:%d: [%s]%s%s", cfg->path, line, section, key ? " " : "",
			 key ? key : "");
	else
		snprintf(buf, size, "%s: [%s]%s%s", cfg->path, section, key ? " " : "",
			 key ? key : "");
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < MC_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *out = false, 0;
	}
	return -EINVAL;
}

static int parse_duration(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t ns;
	} units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", NS_PER_SEC },
		{ "m", 60 * NS_PER_SEC }, { "h", 3600 * NS_PER_SEC }, { "d", 86400 * NS_PER_SEC },
		{ "", NS_PER_SEC },
	};
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	for (size_t i = 0; i < MC_ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (v > UINT64_MAX / units[i].ns)
				return -ERANGE;
			*out = v * units[i].ns;
			return 0;
		}
	}
	return -EINVAL;
}

static bool enum_has(const char *choices, const char *s)
{
	size_t len = strlen(s);

	for (const char *c = choices; c; c = strchr(c, '|'), c = c ? c + 1 : NULL)
		if (strncmp(c, s, len) == 0 && (c[len] == '|' || c[len] == '\0'))
			return true;
	return false;
}

/* Parses `raw` for `opt` into `v` (taking ownership of raw); on failure writes the reason. */
static int parse_value(const struct mc_config *cfg, const struct mc_option *opt, char *raw,
		       struct mc_value *v, char *why, size_t why_size)
{
	int r = 0;

	v->raw = raw;
	switch (opt->type) {
	case MC_OPTION_STRING:
		break;
	case MC_OPTION_PATH:
		if (raw[0] == '\0') {
			snprintf(why, why_size, "empty path");
			return -EINVAL;
		}
		if (raw[0] != '/') {
			char *abs;

			if (asprintf(&abs, "%s/%s", cfg->priv->dir, raw) < 0)
				return -ENOMEM;
			free(v->raw);
			v->raw = abs;
		}
		break;
	case MC_OPTION_INT:
		r = parse_int(raw, &v->i);
		if (r < 0)
			snprintf(why, why_size, "not an integer");
		else if ((opt->min || opt->max) && (v->i < opt->min || v->i > opt->max))
			r = -ERANGE, snprintf(why, why_size, "out of range [%" PRId64 ", %" PRId64 "]",
					      opt->min, opt->max);
		break;
	case MC_OPTION_BOOL:
		r = parse_bool(raw, &v->b);
		if (r < 0)
			snprintf(why, why_size, "not a boolean (yes or no)");
		break;
	case MC_OPTION_DURATION:
		r = parse_duration(raw, &v->ns);
		if (r < 0)
			snprintf(why, why_size, "not a duration (e.g. 300s, 5m, 250ms)");
		else if ((opt->min || opt->max) &&
			 (v->ns < (uint64_t)opt->min || v->ns > (uint64_t)opt->max))
			r = -ERANGE, snprintf(why, why_size, "out of range [%" PRIu64 "s, %" PRIu64 "s]",
					      (uint64_t)opt->min / NS_PER_SEC,
					      (uint64_t)opt->max / NS_PER_SEC);
		break;
	case MC_OPTION_ENUM:
		if (!enum_has(opt->choices, raw))
			r = -EINVAL, snprintf(why, why_size, "must be one of %s", opt->choices);
		break;
	default:
		r = -EINVAL, snprintf(why, why_size, "option has an unknown type %d", opt->type);
	}
	return r;
}

static size_t schema_len(const struct mc_option *schema)
{
	size_t n = 0;

	while (schema && schema[n].name)
		n++;
	return n;
}

static const struct mc_option *schema_find(const struct mc_option *schema, const char *key)
{
	for (size_t i = 0; schema && schema[i].name; i++)
		if (strcasecmp(schema[i].name, key) == 0)
			return &schema[i];
	return NULL;
}

void mc_section_free(struct mc_section *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->values[i].raw);
	free(s->name);
	free(s);
}

MC_DEFINE_CLEANUP(struct mc_section *, mc_section_free);

/* Validates `[section]` of the file against `schema`. */
static int section_validate(const struct mc_config *cfg, const char *section,
			    const struct mc_option *schema, struct mc_section **out,
			    struct mc_config_error *err)
{
	dictionary *ini = cfg->priv->ini;
	size_t n = schema_len(schema);
	_cleanup_(mc_section_freep) struct mc_section *s = NULL;
	char loc[PATH_MAX + 128], why[160];
	int nkeys, r;

	s = calloc(1, sizeof(*s) + n * sizeof(s->values[0]));
	if (!s || !(s->name = strdup(section)))
		return -ENOMEM;
	s->schema = schema;
	s->n = n;

	nkeys = iniparser_find_entry(ini, section) ? iniparser_getsecnkeys(ini, section) : 0;
	if (nkeys > 0) {
		_cleanup_free_ const char **keys = calloc((size_t)nkeys, sizeof(*keys));

		if (!keys || !iniparser_getseckeys(ini, section, keys))
			return -ENOMEM;
		for (int k = 0; k < nkeys; k++) {
			const char *key = strchr(keys[k], ':') + 1;
			const char *value = iniparser_getstring(ini, keys[k], "");
			const struct mc_option *opt = schema_find(schema, key);
			char *raw;

			where(cfg, section, key, loc, sizeof(loc));
			if (!opt)
				return set_error(err, -EINVAL, "%s = \"%s\": unknown key", loc, value);
			raw = strdup(value);
			if (!raw)
				return -ENOMEM;
			r = parse_value(cfg, opt, raw, &s->values[opt - schema], why, sizeof(why));
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				return set_error(err, r, "%s = \"%s\": %s", loc, value, why);
		}
	}

	for (size_t i = 0; i < n; i++) {
		struct mc_value *v = &s->values[i];

		if (v->raw)
			continue;
		if (schema[i].required) {
			where(cfg, section, NULL, loc, sizeof(loc));
			return set_error(err, -EINVAL, "%s: missing required key \"%s\"", loc,
					 schema[i].name);
		}
		if (!schema[i].default_value)
			continue;
		char *raw = strdup(schema[i].default_value);
		if (!raw)
			return -ENOMEM;
		r = parse_value(cfg, &schema[i], raw, v, why, sizeof(why));
		if (r < 0) /* a plugin's schema with a default that breaks its own rules */
			return set_error(err, r, "[%s] %s: default \"%s\": %s", section,
					 schema[i].name, schema[i].default_value, why);
	}
	*out = mc_steal_ptr(s);
	return 0;
}

static const struct mc_value *section_value(const struct mc_section *s, const char *key)
{
	const struct mc_option *opt = s ? schema_find(s->schema, key) : NULL;

	return opt ? &s->values[opt - s->schema] : NULL;
}

const char *mc_section_name(const struct mc_section *s)
{
	return s->name;
}

const char *mc_section_string(const struct mc_section *s, const char *key)
{
	const struct mc_value *v = section_value(s, key);

	return v ? v->raw : NULL;
}

int64_t mc_section_int(const struct mc_section *s, const char *key)
{
	const struct mc_value *v = section_value(s, key);

	return v ? v->i : 0;
}

bool mc_section_bool(const struct mc_section *s, const char *key)
{
	const struct mc_value *v = section_value(s, key);

	return v ? v->b : false;
}

uint64_t mc_section_duration_ns(const struct mc_section *s, const char *key)
{
	const struct mc_value *v = section_value(s, key);

	return v ? v->ns : 0;
}

void mc_config_free(struct mc_config *cfg)
{
	if (!cfg)
		return;
	mc_section_free(cfg->core);
	for (int i = 0; i < MC_SLOT_COUNT; i++)
		mc_section_free(cfg->slot_sections[i]);
	if (cfg->priv) {
		if (cfg->priv->ini)
			iniparser_freedict(cfg->priv->ini);
		free(cfg->priv->text);
		free(cfg->priv->dir);
		free(cfg->priv->plugin_dir_override);
		free(cfg->priv);
	}
	free(cfg->node_name);
	free(cfg->path);
	free(cfg);
}

MC_DEFINE_CLEANUP(struct mc_config *, mc_config_free);

/* iniparser reports syntax errors through a process-wide printf-like callback. */
static _Thread_local char ini_error[256];

static int ini_error_cb(const char *fmt, ...)
{
	va_list ap;

	if (ini_error[0])
		return 0; /* keep the first */
	va_start(ap, fmt);
	vsnprintf(ini_error, sizeof(ini_error), fmt, ap);
	va_end(ap);
	return 0;
}

/* iniparser's message is "iniparser: syntax error in FILE (LINE):\n-> TEXT\n"; say it as
 * one "FILE:LINE: syntax error: TEXT" line. */
static int syntax_error(const char *path, struct mc_config_error *err)
{
	const char *text = strstr(ini_error, "-> ");
	const char *open = NULL;
	int line, len = text ? (int)strcspn(text + 3, "\n") : 0;

	/* The line number is in the last "(" before the text, which may hold "(" itself. */
	for (const char *p = ini_error; (p = strchr(p, '(')) && (!text || p < text); p++)
		open = p;
	line = open ? atoi(open + 1) : 0;

	/* iniparser's other messages ("input line too long in FILE (LINE)\n") end in a
	 * newline too: the error is one line. */
	if (!open || !text)
		return set_error(err, -EINVAL, "%s: cannot parse: %.*s", path,
				 (int)strcspn(ini_error[0] ? ini_error : "unreadable", "\n"),
				 ini_error[0] ? ini_error : "unreadable");
	return set_error(err, -EINVAL, "%s:%d: syntax error: \"%.*s\"", path, line, len, text + 3);
}

static bool is_known_section(const char *name)
{
	if (strcasecmp(name, "core") == 0 || strncasecmp(name, "plugin.", 7) == 0)
		return true;
	for (int i = 0; i < MC_SLOT_COUNT; i++)
		if (strcasecmp(name, slot_info[i].name) == 0)
			return true;
	return false;
}

static int check_marks(const struct mc_config *cfg, struct mc_config_error *err)
{
	static const char *const mark_keys[] = { "encrypt_mark", "decrypt_mark" };
	const struct mc_dataplane_config *dp = &cfg->dataplane;
	const uint32_t marks[] = { dp->encrypt_mark, dp->decrypt_mark };
	uint32_t peer_bits = dp->peer_mask >> __builtin_ctz(dp->peer_mask);
	char loc[PATH_MAX + 128];

	for (size_t i = 0; i < MC_ARRAY_SIZE(marks); i++) {
		if (marks[i] & ~dp->role_mask) {
			where(cfg, "core", mark_keys[i], loc, sizeof(loc));
			return set_error(err, -EINVAL,
					 "%s = \"%s\": has bits outside role_mask 0x%x", loc,
					 mc_section_string(cfg->core, mark_keys[i]), dp->role_mask);
		}
	}
	if (dp->encrypt_mark == dp->decrypt_mark) {
		where(cfg, "core", "decrypt_mark", loc, sizeof(loc));
		return set_error(err, -EINVAL, "%s = \"%s\": must differ from encrypt_mark", loc,
				 mc_section_string(cfg->core, "decrypt_mark"));
	}
	if (dp->role_mask & dp->peer_mask) {
		where(cfg, "core", "peer_mask", loc, sizeof(loc));
		return set_error(err, -EINVAL, "%s = \"%s\": overlaps role_mask 0x%x", loc,
				 mc_section_string(cfg->core, "peer_mask"), dp->role_mask);
	}
	/* Peer indices are numbers in one run of bits; fewer than 8 bits would cap a cluster at
	 * a size that surprises nobody but its operator. */
	if ((peer_bits & (peer_bits + 1)) != 0 || peer_bits < 0xff) {
		where(cfg, "core", "peer_mask", loc, sizeof(loc));
		return set_error(err, -EINVAL,
				 "%s = \"%s\": must be one contiguous run of at least 8 bits", loc,
				 mc_section_string(cfg->core, "peer_mask"));
	}
	return 0;
}

uint32_t mc_config_max_peer_index(const struct mc_config *cfg)
{
	uint32_t bits = cfg->dataplane.peer_mask >> __builtin_ctz(cfg->dataplane.peer_mask);

	return bits < 65535 ? bits : 65535;
}

static int resolve_core(struct mc_config *cfg, struct mc_config_error *err)
{
	const struct mc_section *core = cfg->core;
	const char *label = mc_section_string(core, "managed_label");
	const char *node = mc_section_string(core, "node_name");
	char loc[PATH_MAX + 128];
	char host[256];

	if (!strchr(label, '=') || label[0] == '=') {
		where(cfg, "core", "managed_label", loc, sizeof(loc));
		return set_error(err, -EINVAL, "%s = \"%s\": must be key=value", loc, label);
	}
	/* In a DaemonSet the downward API hands the node's name in (spec.nodeName), which the
	 * host name need not equal. */
	if ((!node || !node[0]) && getenv("MESHCRYPT_NODE_NAME") && getenv("MESHCRYPT_NODE_NAME")[0])
		node = getenv("MESHCRYPT_NODE_NAME");
	if (!node || !node[0]) {
		if (gethostname(host, sizeof(host)) < 0)
			return -errno;
		host[sizeof(host) - 1] = '\0';
		node = host;
	}
	cfg->node_name = strdup(node);
	if (!cfg->node_name)
		return -ENOMEM;
	cfg->plugin_dir = mc_section_string(core, "plugin_dir");
	cfg->state_dir = mc_section_string(core, "state_dir");
	cfg->run_dir = mc_section_string(core, "run_dir");
	cfg->managed_label = label;
	cfg->metrics_listen = mc_section_string(core, "metrics_listen");
	if (cfg->metrics_listen[0]) {
		struct sockaddr_storage sa;
		socklen_t sa_len;

		if (mc_listen_address_parse(cfg->metrics_listen, &sa, &sa_len) < 0) {
			where(cfg, "core", "metrics_listen", loc, sizeof(loc));
			return set_error(err, -EINVAL,
					 "%s = \"%s\": not ADDRESS:PORT (127.0.0.1:9474, [::1]:9474)",
					 loc, cfg->metrics_listen);
		}
	}
	cfg->workers = (unsigned)mc_section_int(core, "workers");
	cfg->dataplane = (struct mc_dataplane_config){
		.struct_size = sizeof(cfg->dataplane),
		.encrypt_mark = (uint32_t)mc_section_int(core, "encrypt_mark"),
		.decrypt_mark = (uint32_t)mc_section_int(core, "decrypt_mark"),
		.role_mask = (uint32_t)mc_section_int(core, "role_mask"),
		.peer_mask = (uint32_t)mc_section_int(core, "peer_mask"),
		.inbound = strcmp(mc_section_string(core, "inbound"), "permit") == 0
				   ? MC_INBOUND_PERMIT
				   : MC_INBOUND_REQUIRE,
		.resync_interval_ns = mc_section_duration_ns(core, "resync_interval"),
	};
	return check_marks(cfg, err);
}

static int read_text(const char *path, char **out)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;

	if (!f)
		return -errno;
	if (getdelim(&buf, &size, '\0', f) < 0) {
		if (ferror(f))
			return -EIO;
		/* An empty file: getdelim() may have allocated buf without terminating it. */
		free(buf);
		buf = NULL;
	}
	if (!buf && !(buf = strdup("")))
		return -ENOMEM;
	*out = mc_steal_ptr(buf);
	return 0;
}

int mc_config_load(const char *path, struct mc_config **out, struct mc_config_error *err)
{
	_cleanup_(mc_config_freep) struct mc_config *cfg = NULL;
	_cleanup_free_ char *dir_copy = NULL;
	const dictionary *ini;
	int r;

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->priv = calloc(1, sizeof(*cfg->priv))) || !(cfg->path = strdup(path)) ||
	    !(dir_copy = strdup(path)))
		return set_error(err, -ENOMEM, "%s: out of memory", path);
	r = read_text(path, &cfg->priv->text);
	if (r < 0)
		return set_error(err, r, "%s: cannot read: %s", path, strerror(-r));
	cfg->priv->dir = realpath(dirname(dir_copy), NULL);
	if (!cfg->priv->dir)
		return set_error(err, -errno, "%s: cannot resolve its directory: %m", path);

	ini_error[0] = '\0';
	iniparser_set_error_callback(ini_error_cb);
	cfg->priv->ini = iniparser_load(path);
	iniparser_set_error_callback(NULL);
	if (!cfg->priv->ini)
		return syntax_error(path, err);

	/*
	 * Every section, read from the dictionary itself (an entry without a value): iniparser
	 * lists only names without a ':' (iniparser_getsecname()), yet takes "[plugin:xfrm]" (a
	 * typo of [plugin.xfrm]) as a section, which nothing would look at, and "[core:workers]"
	 * as one that iniparser_getseckeys() then returns as key "workers" of [core] with a NULL
	 * value.
	 */
	ini = cfg->priv->ini;
	for (ssize_t i = 0; i < ini->size; i++) {
		const char *name = ini->key[i];
		char loc[PATH_MAX + 128];

		if (!name || ini->val[i])
			continue;
		if (strchr(name, ':') || !is_known_section(name)) {
			where(cfg, name, NULL, loc, sizeof(loc));
			return set_error(err, -EINVAL,
					 "%s: unknown section (expected core, source, backend, "
					 "attach or plugin.NAME)",
					 loc);
		}
	}

	r = section_validate(cfg, "core", core_options, &cfg->core, err);
	if (r < 0)
		return r;
	for (int i = 0; i < MC_SLOT_COUNT; i++) {
		r = section_validate(cfg, slot_info[i].name, slot_info[i].options,
				     &cfg->slot_sections[i], err);
		if (r < 0)
			return r;
		cfg->slots[i].plugin = mc_section_string(cfg->slot_sections[i], "plugin");
		cfg->slots[i].required = mc_section_bool(cfg->slot_sections[i], "required");
	}
	r = resolve_core(cfg, err);
	if (r == -ENOMEM)
		return set_error(err, r, "%s: out of memory", path);
	if (r < 0)
		return r;
	*out = mc_steal_ptr(cfg);
	return 0;
}

int mc_config_set_plugin_dir(struct mc_config *cfg, const char *dir)
{
	char *copy = strdup(dir);

	if (!copy)
		return -ENOMEM;
	free(cfg->priv->plugin_dir_override);
	cfg->priv->plugin_dir_override = copy;
	cfg->plugin_dir = copy;
	return 0;
}

const char *const mc_config_auto_attach[] = { "tcx", "tc", NULL };

static bool slot_selects(const struct mc_config *cfg, const char *plugin)
{
	const char *attach = cfg->slots[MC_SLOT_ATTACH].plugin;

	for (int i = 0; i < MC_SLOT_COUNT; i++)
		if (cfg->slots[i].plugin && strcasecmp(cfg->slots[i].plugin, plugin) == 0)
			return true;
	for (size_t i = 0; attach && strcmp(attach, "auto") == 0 && mc_config_auto_attach[i]; i++)
		if (strcasecmp(mc_config_auto_attach[i], plugin) == 0)
			return true;
	return false;
}

int mc_config_plugin_section(const struct mc_config *cfg, const char *name,
			     const struct mc_option *schema, struct mc_section **out,
			     struct mc_config_error *err)
{
	char section[256];

	if (snprintf(section, sizeof(section), "plugin.%s", name) >= (int)sizeof(section))
		return set_error(err, -ENAMETOOLONG, "plugin name too long: %s", name);
	return section_validate(cfg, section, schema, out, err);
}

int mc_config_check_plugin_sections(const struct mc_config *cfg, struct mc_config_error *err)
{
	int nsec = iniparser_getnsec(cfg->priv->ini);

	for (int i = 0; i < nsec; i++) {
		const char *name = iniparser_getsecname(cfg->priv->ini, i);
		char loc[PATH_MAX + 128];

		if (strncasecmp(name, "plugin.", 7) != 0 || slot_selects(cfg, name + 7))
			continue;
		where(cfg, name, NULL, loc, sizeof(loc));
		return set_error(err, -EINVAL,
				 "%s: no [source], [backend] or [attach] selects plugin \"%s\"", loc,
				 name + 7);
	}
	return 0;
}
