/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The plugin loader: strict loading and a clear refusal for each way a plugin can be wrong;
 * ABI 1.0 plugins still load and run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "engine.h"
#include "log.h"
#include "plugin-loader.h"
#include "test-util.h"
#include "../fuzz/plugin-schemas.h"

static char *dir;

static int setup(void **state)
{
	dir = test_tmpdir();
	return 0;
}

static int teardown(void **state)
{
	test_rmtree(dir);
	return 0;
}

static int load(enum mc_plugin_kind kind, const char *name, const char *file, char *error,
		size_t size)
{
	struct mc_loaded_plugin *p = NULL;
	int r;

	if (file)
		test_install_plugin(dir, file);
	r = mc_plugin_load(dir, kind, name, &p, error, size);
	if (r == 0) {
		assert_non_null(p);
		mc_plugin_unload(p);
	} else {
		assert_null(p);
		assert_null(strchr(error, '\n'));
	}
	return r;
}

static void test_good_plugin(void **state)
{
	struct mc_loaded_plugin *p = NULL;
	const struct mc_plugin *d;
	char error[512];

	test_install_plugin(dir, "backend-tbackend.so");
	assert_int_equal(mc_plugin_load(dir, MC_PLUGIN_BACKEND, "tbackend", &p, error, sizeof(error)), 0);
	d = mc_loaded_plugin_descriptor(p);
	assert_string_equal(d->name, "tbackend");
	assert_int_equal(d->kind, MC_PLUGIN_BACKEND);
	assert_int_equal(d->abi_version, MC_PLUGIN_ABI_VERSION);
	assert_non_null(d->dataplane);
	mc_plugin_unload(p);
	mc_plugin_unload(NULL);
}

static void test_missing(void **state)
{
	char error[512];

	assert_int_equal(load(MC_PLUGIN_BACKEND, "xfrm", NULL, error, sizeof(error)), -ENOENT);
	assert_non_null(strstr(error, "no backend plugin \"xfrm\""));
}

static void test_wrong_abi(void **state)
{
	char error[512];

	assert_int_equal(load(MC_PLUGIN_BACKEND, "badabi", "backend-badabi.so", error, sizeof(error)),
			 -EPROTONOSUPPORT);
	assert_non_null(strstr(error, "incompatible plugin ABI 2.0, this meshcryptd has ABI 1.6"));
}

static void test_no_descriptor(void **state)
{
	char error[512];

	assert_int_equal(load(MC_PLUGIN_BACKEND, "nodesc", "backend-nodesc.so", error, sizeof(error)),
			 -ENOEXEC);
	assert_non_null(strstr(error, "no meshcrypt_plugin descriptor exported"));
}

static void test_undefined_symbol(void **state)
{
	char error[512];

	assert_int_equal(load(MC_PLUGIN_BACKEND, "undef", "backend-undef.so", error, sizeof(error)),
			 -ELIBACC);
	assert_non_null(strstr(error, "mc_test_nothing_defines_this"));
	assert_non_null(strstr(error, "ldd -r"));
}

static void test_too_small(void **state)
{
	char error[512];

	assert_int_equal(load(MC_PLUGIN_BACKEND, "small", "backend-small.so", error, sizeof(error)),
			 -ENOEXEC);
	assert_non_null(strstr(error, "malformed descriptor: struct_size"));
}

static void test_name_mismatch(void **state)
{
	char error[512], from[512], to[512];

	test_install_plugin(dir, "backend-tbackend.so");
	snprintf(from, sizeof(from), "%s/backend-tbackend.so", dir);
	snprintf(to, sizeof(to), "%s/backend-other.so", dir);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(load(MC_PLUGIN_BACKEND, "other", NULL, error, sizeof(error)), -ENOEXEC);
	assert_non_null(strstr(error, "must be named backend-tbackend.so"));
}

static void test_kind_mismatch(void **state)
{
	char error[512], from[512], to[512];

	/* a source plugin dropped in under a backend's file name */
	test_install_plugin(dir, "source-tsource.so");
	snprintf(from, sizeof(from), "%s/source-tsource.so", dir);
	snprintf(to, sizeof(to), "%s/backend-tsource.so", dir);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(load(MC_PLUGIN_BACKEND, "tsource", NULL, error, sizeof(error)), -ENOEXEC);
	assert_non_null(strstr(error, "descriptor says source plugin"));
}

static void test_writable_dir(void **state)
{
	char error[512];

	test_install_plugin(dir, "backend-tbackend.so");
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(load(MC_PLUGIN_BACKEND, "tbackend", NULL, error, sizeof(error)), -EPERM);
	assert_non_null(strstr(error, "group- or world-writable"));
	assert_int_equal(chmod(dir, 0775), 0);
	assert_int_equal(load(MC_PLUGIN_BACKEND, "tbackend", NULL, error, sizeof(error)), -EPERM);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(load(MC_PLUGIN_BACKEND, "tbackend", NULL, error, sizeof(error)), 0);
}

static void test_writable_file(void **state)
{
	char error[512], path[512];

	test_install_plugin(dir, "backend-tbackend.so");
	snprintf(path, sizeof(path), "%s/backend-tbackend.so", dir);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(load(MC_PLUGIN_BACKEND, "tbackend", NULL, error, sizeof(error)), -EPERM);
	assert_non_null(strstr(error, "group- or world-writable"));
}

static void test_symlink_refused(void **state)
{
	char error[512], path[512];

	snprintf(path, sizeof(path), "%s/backend-tbackend.so", dir);
	assert_int_equal(symlink(TEST_PLUGIN_BUILD_DIR "/backend-tbackend.so", path), 0);
	assert_int_equal(load(MC_PLUGIN_BACKEND, "tbackend", NULL, error, sizeof(error)), -EPERM);
	assert_non_null(strstr(error, "not a regular file"));
}

static void test_bad_name(void **state)
{
	char error[512];

	assert_int_equal(load(MC_PLUGIN_BACKEND, "../evil", NULL, error, sizeof(error)), -EINVAL);
}

struct listing {
	int ok, refused;
	char names[256];
};

static void collect(const char *path, const struct mc_loaded_plugin *p, int r, const char *error,
		    void *userdata)
{
	struct listing *l = userdata;

	if (r < 0) {
		l->refused++;
		return;
	}
	l->ok++;
	strcat(l->names, mc_loaded_plugin_descriptor(p)->name);
	strcat(l->names, " ");
}

static void test_list(void **state)
{
	struct listing l = { 0 };

	test_install_plugin(dir, "backend-tbackend.so");
	test_install_plugin(dir, "source-tsource.so");
	test_install_plugin(dir, "attach-tattach.so");
	test_install_plugin(dir, "backend-badabi.so");
	assert_int_equal(mc_plugin_list(dir, collect, &l), 0);
	assert_int_equal(l.ok, 3);
	assert_int_equal(l.refused, 1);
	assert_string_equal(l.names, "tattach tbackend tsource "); /* sorted by file name */
}

/* ---- the fuzz harness's copy of the shipped plugins' schemas ---- */

static bool same_string(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* mc_plugin_list() callback: the plugin is one of fuzz_plugins, with the same options; counts
 * the plugins checked. */
static void compare_schema(const char *path, const struct mc_loaded_plugin *p, int r,
			   const char *error, void *userdata)
{
	const struct mc_plugin *d;
	const struct mc_option *copy = NULL, *real;
	size_t *checked = userdata, i, k;

	if (r < 0)
		fail_msg("%s refused: %s", path, error);
	d = mc_loaded_plugin_descriptor(p);
	for (i = 0; i < sizeof(fuzz_plugins) / sizeof(fuzz_plugins[0]); i++)
		if (strcmp(fuzz_plugins[i].name, d->name) == 0 && fuzz_plugins[i].kind == d->kind)
			break;
	if (i == sizeof(fuzz_plugins) / sizeof(fuzz_plugins[0]))
		fail_msg("%s: plugin %s is missing from tests/fuzz/plugin-schemas.h", path, d->name);
	copy = fuzz_plugins[i].options;
	real = d->options;
	for (k = 0; (copy && copy[k].name) || (real && real[k].name); k++) {
		const struct mc_option *c = copy && copy[k].name ? &copy[k] : NULL;
		const struct mc_option *o = real && real[k].name ? &real[k] : NULL;

		if (!c || !o || !same_string(c->name, o->name) || c->type != o->type ||
		    !same_string(c->default_value, o->default_value) || c->required != o->required ||
		    c->min != o->min || c->max != o->max || !same_string(c->choices, o->choices))
			fail_msg("plugin %s, option %zu (%s): tests/fuzz/plugin-schemas.h differs from "
				 "the descriptor", d->name, k + 1, o ? o->name : c->name);
	}
	++*checked;
}

/* fuzz-config validates [plugin.NAME] against a copy of every shipped plugin's schema: the copy
 * is the descriptors' own, for every plugin the build makes. */
static void test_fuzz_schemas_are_the_plugins(void **state)
{
	size_t checked = 0;

	assert_int_equal(mc_plugin_list(MC_BUILDDIR "/plugins", compare_schema, &checked), 0);
	assert_int_equal(checked, sizeof(fuzz_plugins) / sizeof(fuzz_plugins[0]));
}

/* ---- ABI 1.0 plugins ---- */

static void test_abi10_descriptor(void **state)
{
	struct mc_loaded_plugin *p = NULL;
	const struct mc_plugin *d;
	char error[512];

	test_install_plugin(dir, "backend-old10.so");
	assert_int_equal(mc_plugin_load(dir, MC_PLUGIN_BACKEND, "old10", &p, error, sizeof(error)), 0);
	d = mc_loaded_plugin_descriptor(p);
	assert_string_equal(d->name, "old10");
	assert_int_equal(d->kind, MC_PLUGIN_BACKEND);
	assert_int_equal(d->abi_version, MC_PLUGIN_ABI(1, 0)); /* the plugin's, as it was built */
	/* 1.0 had no option_size: its options are read at the 1.0 size, which is today's */
	assert_int_equal(d->option_size, sizeof(struct mc_option));
	assert_non_null(d->options);
	assert_string_equal(d->options[0].name, "trace");
	/* fields and ops of 1.1 are NULL, the 1.0 ones are the plugin's */
	assert_null(d->cleanup);
	assert_non_null(d->init);
	assert_non_null(d->fini);
	assert_non_null(d->dataplane);
	assert_non_null(d->dataplane->local_apply);
	assert_non_null(d->dataplane->peer_apply);
	assert_non_null(d->dataplane->pod_apply);
	assert_null(d->dataplane->gc);
	assert_null(d->dataplane->secret_changed);
	mc_plugin_unload(p);
}

static bool trace_has(const char *path, const char *prefix)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strncmp(line, prefix, strlen(prefix)) == 0;
	fclose(f);
	return found;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The cluster file through the static source, old10 as the backend, tattach as the attach
 * plugin: old10 is applied every peer; the gc runs for tattach and is skipped for old10. */
static void test_abi10_engine(void **state)
{
	char plugdir[256], path[700], conf[600], trace[600], text[4096], error[512];
	struct mc_config_error cerr;
	struct mc_config *cfg;
	struct mc_engine *e;
	sd_event *event = NULL;
	int64_t deadline;
	char buf[16384];
	size_t n;
	FILE *f;

	snprintf(plugdir, sizeof(plugdir), "%s/plugins", dir);
	assert_int_equal(mkdir(plugdir, 0755), 0);
	assert_int_equal(chmod(plugdir, 0755), 0);
	/* the static source's RUNPATH is $ORIGIN/../core/libmeshcrypt */
	snprintf(path, sizeof(path), "%s/core", dir);
	assert_int_equal(symlink(MC_BUILDDIR "/core", path), 0);
	test_install_plugin(plugdir, "backend-old10.so");
	test_install_plugin(plugdir, "attach-tattach.so");
	{
		char src[] = MC_BUILDDIR "/plugins/source-static.so";
		char cmd[1600];

		snprintf(cmd, sizeof(cmd), "install -m 0755 '%s' '%s/source-static.so'", src,
			 plugdir);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(conf, sizeof(conf), "%s/meshcryptd.conf", dir);
	snprintf(trace, sizeof(trace), "%s/trace", dir);
	snprintf(text, sizeof(text),
		 "[core]\nnode_name = node-1\nplugin_dir = %s\nstate_dir = %s\nrun_dir = %s\n"
		 "workers = 2\n"
		 "[source]\nplugin = static\n[backend]\nplugin = old10\n[attach]\nplugin = tattach\n"
		 "[plugin.static]\nfile = %s\n[plugin.old10]\ntrace = %s\n[plugin.tattach]\n"
		 "trace = %s\n",
		 plugdir, dir, dir, MC_SRCDIR "/examples/cluster-3node.json", trace, trace);
	test_write(conf, text);

	mc_log_set_max_level(LOG_WARNING);
	assert_int_equal(mc_config_load(conf, &cfg, &cerr), 0);
	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(mc_engine_new(cfg, event, &e, error, sizeof(error)), 0);
	assert_int_equal(mc_engine_start(e), 0);
	assert_true(mc_engine_ready(e));
	deadline = now_ms() + 10000;
	while (!(trace_has(trace, "tattach peer node-2 ") && trace_has(trace, "tattach peer node-3 ") &&
		 trace_has(trace, "tattach gc 2")) &&
	       now_ms() < deadline)
		usleep(2000);
	mc_engine_drain(e);
	mc_engine_stop(e);
	mc_engine_free(e);
	sd_event_unref(event);

	f = fopen(trace, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* old10 traces peers the 1.0 way, with no index */
	assert_non_null(strstr(buf, "\nold10 peer node-2\n"));
	assert_non_null(strstr(buf, "\nold10 peer node-3\n"));
	assert_non_null(strstr(buf, "\nold10 local node-1\n"));
	assert_null(strstr(buf, "failed"));
	/* the gc ran (for tattach) and was skipped for old10, which has none */
	assert_non_null(strstr(buf, "\ntattach gc 2\n"));
	assert_null(strstr(buf, "old10 gc"));
	/* no cleanup either: 1.0 had none */
	assert_null(strstr(buf, "cleanup"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_abi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undefined_symbol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kind_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writable_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writable_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test(test_fuzz_schemas_are_the_plugins),
		cmocka_unit_test_setup_teardown(test_abi10_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abi10_engine, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
