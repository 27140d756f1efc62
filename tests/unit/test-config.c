/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Configuration validation: every error path names file, line, section, key and value. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "test-util.h"

static char *dir;
static char path[512];

static int setup(void **state)
{
	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/meshcryptd.conf", dir);
	return 0;
}

static int teardown(void **state)
{
	test_rmtree(dir);
	return 0;
}

static const char *const minimal = "[source]\nplugin = static\n[backend]\nplugin = dryrun\n";

/* Loads `text`; expects failure with a message containing each of the NULL-ended strings. */
static void expect_error(const char *text, ...)
{
	struct mc_config_error err = { 0 };
	struct mc_config *cfg = (struct mc_config *)0x1;
	const char *want;
	va_list ap;

	test_write(path, text);
	assert_true(mc_config_load(path, &cfg, &err) < 0);
	assert_ptr_equal(cfg, (struct mc_config *)0x1); /* nothing handed out */
	assert_null(strchr(err.message, '\n'));          /* one line */
	assert_non_null(strstr(err.message, path));
	va_start(ap, text);
	while ((want = va_arg(ap, const char *))) {
		if (!strstr(err.message, want))
			fail_msg("\"%s\" not in \"%s\"", want, err.message);
	}
	va_end(ap);
}

static void test_defaults(void **state)
{
	struct mc_config_error err;
	struct mc_config *cfg;

	test_write(path, minimal);
	assert_int_equal(mc_config_load(path, &cfg, &err), 0);
	assert_string_equal(cfg->slots[MC_SLOT_SOURCE].plugin, "static");
	assert_string_equal(cfg->slots[MC_SLOT_BACKEND].plugin, "dryrun");
	assert_string_equal(cfg->slots[MC_SLOT_ATTACH].plugin, "none");
	assert_true(cfg->slots[MC_SLOT_BACKEND].required);
	assert_int_equal(cfg->workers, 2);
	assert_int_equal(cfg->dataplane.resync_interval_ns, 300000000000ull);
	assert_int_equal(cfg->dataplane.encrypt_mark, 0xe0);
	assert_int_equal(cfg->dataplane.decrypt_mark, 0xd0);
	assert_int_equal(cfg->dataplane.role_mask, 0xf0);
	assert_int_equal(cfg->dataplane.peer_mask, 0xffff0000);
	assert_int_equal(cfg->dataplane.inbound, MC_INBOUND_REQUIRE);
	assert_string_equal(cfg->managed_label, "meshcrypt.io/encryption=enabled");
	assert_string_equal(cfg->state_dir, "/var/lib/meshcrypt");
	assert_string_equal(mc_section_string(cfg->slot_sections[MC_SLOT_ATTACH], "bpffs_dir"),
			    "/sys/fs/bpf/meshcrypt");
	assert_non_null(cfg->node_name);
	mc_config_free(cfg);
}

static void test_values(void **state)
{
	struct mc_config_error err;
	struct mc_config *cfg;
	char expected[600];

	test_write(path, "[core]\nnode_name = n1\nworkers = 0x4\nresync_interval = 90m\n"
			 "inbound = permit\nstate_dir = state\n; a comment\n"
			 "[source]\nplugin = static\nrequired = off\n"
			 "[backend]\nplugin = dryrun\n");
	assert_int_equal(mc_config_load(path, &cfg, &err), 0);
	assert_string_equal(cfg->node_name, "n1");
	assert_int_equal(cfg->workers, 4);
	assert_int_equal(cfg->dataplane.resync_interval_ns, 5400000000000ull);
	assert_int_equal(cfg->dataplane.inbound, MC_INBOUND_PERMIT);
	assert_false(cfg->slots[MC_SLOT_SOURCE].required);
	/* relative paths are taken from the configuration file's directory */
	snprintf(expected, sizeof(expected), "%s/state", dir);
	assert_string_equal(cfg->state_dir, expected);
	mc_config_free(cfg);
}

static void test_missing_file(void **state)
{
	struct mc_config_error err;
	struct mc_config *cfg = NULL;

	assert_int_equal(mc_config_load("/nonexistent/meshcryptd.conf", &cfg, &err), -ENOENT);
	assert_null(cfg);
	assert_non_null(strstr(err.message, "/nonexistent/meshcryptd.conf: cannot read"));
}

static void test_syntax_error(void **state)
{
	expect_error("[core]\nworkers = 2\nthis line has no equals sign\n", ":3: syntax error",
		     "this line has no equals sign", NULL);
}

/* An empty file reads as no keys at all; its errors name no line (found by fuzz-config:
 * regressions/config/empty.conf). */
static void test_empty_file(void **state)
{
	struct mc_config_error err;
	struct mc_config *cfg;
	char want[600];

	test_write(path, "");
	assert_int_equal(mc_config_load(path, &cfg, &err), -EINVAL);
	snprintf(want, sizeof(want), "%s: [backend]: missing required key \"plugin\"", path);
	assert_string_equal(err.message, want);
}

/* iniparser's own messages end in a newline; the error is still one line (expect_error) with
 * the line number (regressions/config/line-too-long.conf, nul-in-line.conf). */
static void test_line_too_long(void **state)
{
	char text[1200];

	snprintf(text, sizeof(text), "[core]\nnode_name = %01100d\n", 0);
	expect_error(text, "cannot parse: iniparser: input line too long", "(2)", NULL);
}

/* The line number is iniparser's, not a number in the text after a "(" (regressions/config/
 * syntax-error-with-paren.conf). */
static void test_syntax_error_paren(void **state)
{
	expect_error("[core]\nworkers (9\n", ":2: syntax error: \"workers (9\"", NULL);
}

/* A section name with a ':' is no section meshcrypt knows: "[core:workers]", which iniparser
 * handed over as a key of [core] without a value (meshcryptd crashed), and "[plugin:xfrm]", a
 * typo of [plugin.xfrm] that was ignored (regressions/config/section-with-colon.conf). */
static void test_section_with_colon(void **state)
{
	expect_error("[core]\n[core:workers]\n", ":2: [core:workers]: unknown section", NULL);
	expect_error("[source]\nplugin = static\n[backend]\nplugin = xfrm\n[plugin:xfrm]\n"
		     "key_file = /k\n",
		     ":5: [plugin:xfrm]: unknown section", NULL);
}

static void test_unknown_section(void **state)
{
	expect_error("[source]\nplugin = static\n[backend]\nplugin = dryrun\n[bakend]\nx = 1\n",
		     ":5: [bakend]: unknown section", NULL);
}

static void test_unknown_key(void **state)
{
	expect_error("[core]\nworkerz = 3\n[source]\nplugin = static\n[backend]\nplugin = dryrun\n",
		     ":2: [core] workerz = \"3\": unknown key", NULL);
}

static void test_not_an_integer(void **state)
{
	expect_error("[core]\nworkers = two\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     ":2: [core] workers = \"two\": not an integer", NULL);
}

static void test_out_of_range(void **state)
{
	expect_error("[core]\nworkers = 65\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] workers = \"65\": out of range [1, 64]", NULL);
}

static void test_bad_bool(void **state)
{
	expect_error("[source]\nplugin = s\nrequired = maybe\n[backend]\nplugin = d\n",
		     ":3: [source] required = \"maybe\": not a boolean", NULL);
}

static void test_bad_duration(void **state)
{
	expect_error("[core]\nresync_interval = 5 parsecs\n[source]\nplugin = s\n[backend]\n"
		     "plugin = d\n",
		     "[core] resync_interval = \"5 parsecs\": not a duration", NULL);
	expect_error("[core]\nresync_interval = 0s\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] resync_interval = \"0s\": out of range", NULL);
}

static void test_bad_enum(void **state)
{
	expect_error("[core]\ninbound = maybe\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] inbound = \"maybe\": must be one of require|permit", NULL);
}

static void test_missing_required(void **state)
{
	expect_error("[source]\nplugin = static\n", "[backend]: missing required key \"plugin\"",
		     NULL);
	expect_error("[core]\nworkers = 2\n[backend]\nplugin = dryrun\n",
		     "[source]: missing required key \"plugin\"", NULL);
}

static void test_empty_path(void **state)
{
	expect_error("[core]\nstate_dir =\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] state_dir = \"\": empty path", NULL);
}

static void test_bad_label(void **state)
{
	expect_error("[core]\nmanaged_label = enabled\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     ":2: [core] managed_label = \"enabled\": must be key=value", NULL);
}

static void test_metrics_listen(void **state)
{
	static const char *const bad[] = { "localhost:9474", "127.0.0.1", "127.0.0.1:0",
					   "127.0.0.1:65536", "127.0.0.1:94x", "::1:9474",
					   "[::1]", "[::1:9474", "1.2.3:9474" };
	static const char *const good[] = { "127.0.0.1:9474", "[::1]:9474", "0.0.0.0:1", "" };
	struct mc_config_error err;
	struct mc_config *cfg;
	char text[256], want[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		snprintf(text, sizeof(text), "[core]\nmetrics_listen = %s\n%s", bad[i], minimal);
		snprintf(want, sizeof(want), ":2: [core] metrics_listen = \"%s\": not ADDRESS:PORT",
			 bad[i]);
		expect_error(text, want, NULL);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		snprintf(text, sizeof(text), "[core]\nmetrics_listen = %s\n%s", good[i], minimal);
		test_write(path, text);
		assert_int_equal(mc_config_load(path, &cfg, &err), 0);
		assert_string_equal(cfg->metrics_listen, good[i]);
		mc_config_free(cfg);
	}
}

static void test_bad_marks(void **state)
{
	expect_error("[core]\nencrypt_mark = 0x1e0\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] encrypt_mark = \"0x1e0\": has bits outside role_mask 0xf0", NULL);
	expect_error("[core]\ndecrypt_mark = 0xe0\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] decrypt_mark = \"0xe0\": must differ from encrypt_mark", NULL);
	expect_error("[core]\npeer_mask = 0xff0\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] peer_mask = \"0xff0\": overlaps role_mask 0xf0", NULL);
	expect_error("[core]\nrole_mask = 0xffffffff\n[source]\nplugin = s\n[backend]\nplugin = d\n",
		     "[core] role_mask = \"0xffffffff\": out of range", NULL);
}

static void test_unselected_plugin_section(void **state)
{
	struct mc_config_error err;
	struct mc_config *cfg;

	test_write(path, "[source]\nplugin = static\n[backend]\nplugin = dryrun\n[plugin.xfrm]\n"
			 "key_file = /k\n");
	assert_int_equal(mc_config_load(path, &cfg, &err), 0);
	assert_int_equal(mc_config_check_plugin_sections(cfg, &err), -EINVAL);
	assert_non_null(strstr(err.message, ":5: [plugin.xfrm]: no [source], [backend] or [attach] "
					    "selects plugin \"xfrm\""));
	mc_config_free(cfg);
}

static const struct mc_option plugin_options[] = {
	{ .name = "file", .type = MC_OPTION_PATH, .required = true },
	{ .name = "count", .type = MC_OPTION_INT, .default_value = "3", .min = 1, .max = 10 },
	{ 0 }
};

static void test_plugin_section(void **state)
{
	struct mc_config_error err;
	struct mc_config *cfg;
	struct mc_section *s = NULL;

	test_write(path, "[source]\nplugin = static\n[backend]\nplugin = dryrun\n"
			 "[plugin.static]\nfile = /c.json\ncount = 11\n");
	assert_int_equal(mc_config_load(path, &cfg, &err), 0);
	assert_int_equal(mc_config_plugin_section(cfg, "static", plugin_options, &s, &err), -ERANGE);
	assert_null(s);
	assert_non_null(strstr(err.message, ":7: [plugin.static] count = \"11\": out of range"));

	assert_int_equal(mc_config_plugin_section(cfg, "dryrun", NULL, &s, &err), 0);
	assert_null(mc_section_string(s, "anything"));
	mc_section_free(s);
	mc_config_free(cfg);

	test_write(path, "[source]\nplugin = static\n[backend]\nplugin = dryrun\n[plugin.static]\n"
			 "count = 2\n");
	assert_int_equal(mc_config_load(path, &cfg, &err), 0);
	assert_int_equal(mc_config_plugin_section(cfg, "static", plugin_options, &s, &err), -EINVAL);
	assert_non_null(strstr(err.message, "[plugin.static]: missing required key \"file\""));
	mc_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error_paren, setup, teardown),
		cmocka_unit_test_setup_teardown(test_section_with_colon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_an_integer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_bool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_duration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_enum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_label, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_listen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unselected_plugin_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plugin_section, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
