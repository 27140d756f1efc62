/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The plugin loader: strict loading and a clear refusal for each way a plugin can be wrong. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugin-loader.h"
#include "test-util.h"

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
	assert_non_null(strstr(error, "incompatible plugin ABI 2.0, this meshcryptd has ABI 1.1"));
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
