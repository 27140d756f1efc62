/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Engine lifecycle: plugin order, required and optional plugin failures, plugin config. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine.h"
#include "log.h"
#include "test-util.h"

static char *dir;
static char conf[512], trace_path[512];

static int setup(void **state)
{
	dir = test_tmpdir();
	snprintf(conf, sizeof(conf), "%s/meshcryptd.conf", dir);
	snprintf(trace_path, sizeof(trace_path), "%s/trace", dir);
	test_install_plugin(dir, "source-tsource.so");
	test_install_plugin(dir, "backend-tbackend.so");
	test_install_plugin(dir, "attach-tattach.so");
	mc_log_set_max_level(LOG_CRIT); /* the failures below are expected */
	return 0;
}

static int teardown(void **state)
{
	test_rmtree(dir);
	return 0;
}

/* A configuration selecting the three test plugins, with extra lines for the [attach],
 * [plugin.tattach] and [plugin.tbackend] sections. */
static void write_config(const char *attach_extra, const char *tattach_extra, const char *extra)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "[core]\nnode_name = n1\nplugin_dir = %s\nstate_dir = %s\nrun_dir = %s\n"
		 "[source]\nplugin = tsource\n[backend]\nplugin = tbackend\n"
		 "[attach]\nplugin = tattach\n%s\n"
		 "[plugin.tsource]\ntrace = %s\n[plugin.tattach]\ntrace = %s\n%s\n"
		 "[plugin.tbackend]\ntrace = %s\n%s",
		 dir, dir, dir, attach_extra, trace_path, trace_path, tattach_extra, trace_path,
		 extra);
	test_write(conf, text);
}

static int new_engine(sd_event *event, struct mc_engine **e, char *error, size_t size)
{
	struct mc_config_error err;
	struct mc_config *cfg;

	assert_int_equal(mc_config_load(conf, &cfg, &err), 0);
	return mc_engine_new(cfg, event, e, error, size);
}

static void assert_trace(const char *expected)
{
	char buf[4096] = "";
	FILE *f = fopen(trace_path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	assert_string_equal(buf, expected);
}

static void test_lifecycle_order(void **state)
{
	sd_event *event = NULL;
	struct mc_engine *e;
	char error[512];

	write_config("", "", "");
	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(new_engine(event, &e, error, sizeof(error)), 0);
	assert_trace("tattach config_check\ntbackend config_check\ntsource config_check\n");
	assert_int_equal(mc_engine_start(e), 0);
	mc_engine_stop(e);
	mc_engine_free(e);
	assert_trace("tattach config_check\ntbackend config_check\ntsource config_check\n"
		     "tattach init\ntbackend init\ntsource init\n"
		     "tattach start\ntbackend start\ntsource start\n"
		     "tsource stop\ntbackend stop\ntattach stop\n"
		     "tsource fini\ntbackend fini\ntattach fini\n");
	sd_event_unref(event);
}

static void test_required_plugin_fails(void **state)
{
	sd_event *event = NULL;
	struct mc_engine *e;
	char error[512];

	write_config("", "", "fail_init = yes\n");
	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(new_engine(event, &e, error, sizeof(error)), 0);
	assert_int_equal(mc_engine_start(e), -EIO);
	mc_engine_free(e);
	/* fini runs for every plugin whose init was called, the failed one included */
	assert_trace("tattach config_check\ntbackend config_check\ntsource config_check\n"
		     "tattach init\ntbackend init\ntbackend fini\ntattach fini\n");
	sd_event_unref(event);
}

static void test_optional_plugin_fails(void **state)
{
	sd_event *event = NULL;
	struct mc_engine *e;
	char error[512];

	write_config("required = no", "fail_start = yes", "");
	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(new_engine(event, &e, error, sizeof(error)), 0);
	assert_int_equal(mc_engine_start(e), 0);
	mc_engine_free(e);
	assert_trace("tattach config_check\ntbackend config_check\ntsource config_check\n"
		     "tattach init\ntbackend init\ntsource init\n"
		     "tattach start\ntattach fini\ntbackend start\ntsource start\n"
		     "tsource stop\ntbackend stop\ntsource fini\ntbackend fini\n");
	sd_event_unref(event);
}

static void test_plugin_config_error(void **state)
{
	struct mc_engine *e = NULL;
	char error[512];

	write_config("", "", "count = 99\n");
	assert_int_equal(new_engine(NULL, &e, error, sizeof(error)), -ERANGE);
	assert_null(e);
	assert_non_null(strstr(error, "[plugin.tbackend] count = \"99\": out of range [1, 10]"));

	write_config("", "", "colour = blue\n");
	assert_int_equal(new_engine(NULL, &e, error, sizeof(error)), -EINVAL);
	assert_non_null(strstr(error, "[plugin.tbackend] colour = \"blue\": unknown key"));

	write_config("", "", "mode = medium\n");
	assert_int_equal(new_engine(NULL, &e, error, sizeof(error)), -EINVAL);
	assert_non_null(strstr(error, "[plugin.tbackend] mode = \"medium\": must be one of fast|slow"));
}

static void test_config_check_fails(void **state)
{
	struct mc_engine *e = NULL;
	char error[512];

	write_config("", "", "fail_check = yes\n");
	assert_int_equal(new_engine(NULL, &e, error, sizeof(error)), -EINVAL);
	assert_non_null(strstr(error, "[plugin.tbackend]: fail_check is set, so count 3 is refused"));
}

static void test_missing_plugin(void **state)
{
	struct mc_engine *e = NULL;
	char error[512], path[600];

	snprintf(path, sizeof(path), "%s/attach-tattach.so", dir);
	assert_int_equal(unlink(path), 0);
	write_config("", "", "");
	assert_int_equal(new_engine(NULL, &e, error, sizeof(error)), -ENOENT);
	assert_non_null(strstr(error, "no attach plugin \"tattach\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lifecycle_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_plugin_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_optional_plugin_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plugin_config_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_check_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_plugin, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
