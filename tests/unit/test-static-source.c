/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The static source (plugins/source-static/static.c) against the fake host: first load, a
 * broken file at start, live reload through inotify and the reload timer, the last good state
 * kept across a broken edit, handles released at stop. */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <syslog.h>
#include <cmocka.h>

#include "fake-host.h"
#include "test-util.h"

#define EXAMPLE MC_SRCDIR "/examples/cluster-3node.json"
#define EXAMPLE_OBJECTS 22

/* Syntax error at line 3 (the items array holds a bare word). */
#define BROKEN_SYNTAX "{\n  \"kind\": \"List\",\n  \"items\": [ nonsense ]\n}\n"
/* Well-formed JSON, wrong content: a Node whose address is not an IP address. */
#define BROKEN_CONTENT                                                                         \
	"{\"kind\": \"List\", \"items\": [\n"                                                  \
	"  {\"kind\": \"Node\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"n1\"},\n"   \
	"   \"status\": {\"addresses\": [{\"type\": \"InternalIP\", \"address\": \"10.0.0.300\"}]}}\n" \
	"]}\n"

struct fixture {
	char *dir;
	char path[512];
	struct fake_host *fh;
	struct mc_plugin_ctx *ctx;
	bool started;
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	int c;

	if (!f || !out)
		abort();
	while ((c = fgetc(f)) != EOF)
		fputc(c, out);
	fclose(f);
	fclose(out);
	return buf;
}

static void write_good(struct fixture *fx)
{
	char *text = slurp(EXAMPLE);

	test_write(fx->path, text);
	free(text);
}

/* Writes text next to the file and renames it over the file, as editors and `mv` do. */
static void rename_into_place(struct fixture *fx, const char *text)
{
	char tmp[600];

	snprintf(tmp, sizeof(tmp), "%s/.cluster.json.tmp", fx->dir);
	test_write(tmp, text);
	if (rename(tmp, fx->path) < 0)
		abort();
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->dir = test_tmpdir();
	snprintf(fx->path, sizeof(fx->path), "%s/cluster.json", fx->dir);
	fx->fh = fake_host_new();
	fx->ctx = fake_host_ctx(fx->fh);
	fake_host_set_config(fx->fh, "file", fx->path);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->started)
		meshcrypt_plugin.stop(fx->ctx);
	meshcrypt_plugin.fini(fx->ctx);
	assert_null(fake_host_host(fx->fh)->get_data(fx->ctx));
	/* stop released the I/O source and the timer; nothing is left for the host to free */
	assert_int_equal(fake_host_open_handles(fx->fh), 0);
	fake_host_free(fx->fh);
	test_rmtree(fx->dir);
	free(fx);
	return 0;
}

static void init_and_start(struct fixture *fx)
{
	assert_int_equal(meshcrypt_plugin.init(fx->ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(fx->ctx), 0);
	fx->started = true;
	assert_int_equal(fake_host_io_count(fx->fh), 1);
}

/* Delivers the pending inotify events, then the reload timer they armed. Returns the number of
 * timers that fired. */
static size_t deliver_change(struct fixture *fx)
{
	int fd = fake_host_io_fd(fx->fh, 0);

	assert_true(fd >= 0);
	assert_int_equal(fake_host_fire_io(fx->fh, fd), 1);
	return fake_host_fire_timers(fx->fh);
}

/* "<path>:<line>:<col>: ..." with line and col positive numbers. */
static void assert_position(const char *status, const char *path)
{
	size_t n = strlen(path);
	const char *p = status + n;
	int line = 0, col = 0, used = 0;

	if (strncmp(status, path, n) != 0 || sscanf(p, ":%d:%d:%n", &line, &col, &used) != 2 ||
	    used == 0) {
		fprintf(stderr, "status: %s\n", status);
		fail_msg("no file:line:col in the status");
	}
	assert_true(line > 0);
	assert_true(col > 0);
}

static void test_descriptor(void **state)
{
	assert_string_equal(meshcrypt_plugin.name, "static");
	assert_int_equal(meshcrypt_plugin.kind, MC_PLUGIN_SOURCE);
	assert_int_equal(meshcrypt_plugin.struct_size, sizeof(struct mc_plugin));
	assert_int_equal(meshcrypt_plugin.abi_version, MC_PLUGIN_ABI_VERSION);
	assert_non_null(meshcrypt_plugin.init);
	assert_non_null(meshcrypt_plugin.start);
	assert_non_null(meshcrypt_plugin.stop);
	assert_non_null(meshcrypt_plugin.fini);
	assert_null(meshcrypt_plugin.dataplane);
	assert_string_equal(meshcrypt_plugin.options[0].name, "file");
	assert_true(meshcrypt_plugin.options[0].required);
	(void)state;
}

static void test_first_load(void **state)
{
	struct fixture *fx = *state;
	const struct fake_store_record *st = fake_host_store(fx->fh);
	char want[700];

	write_good(fx);
	init_and_start(fx);
	assert_int_equal(st->replace_alls, 1);
	assert_int_equal(st->replace_count, EXAMPLE_OBJECTS);
	assert_int_equal(st->replace_kinds_mask, MC_OBJECT_KINDS_ALL);
	assert_int_equal(st->upserts + st->deletes + st->replace_kinds, 0);
	assert_int_equal(fake_host_ready_calls(fx->fh), 1);
	assert_true(fake_host_ready(fx->fh));
	snprintf(want, sizeof(want), "%d objects from %s", EXAMPLE_OBJECTS, fx->path);
	assert_string_equal(fake_host_status(fx->fh), want);
	assert_non_null(fake_host_log_find(fx->fh, LOG_INFO, "loaded 22 objects"));
	assert_int_equal(fake_host_log_count_level(fx->fh, LOG_ERR), 0);
	/* nothing changed: no reload pending */
	assert_int_equal(fake_host_armed_timers(fx->fh), 0);
}

static void check_broken_start(struct fixture *fx, const char *text)
{
	const struct fake_store_record *st = fake_host_store(fx->fh);
	const char *line;

	test_write(fx->path, text);
	init_and_start(fx); /* a broken file does not fail start: the source waits for a fix */
	assert_int_equal(st->replace_alls, 0);
	assert_int_equal(fake_host_ready_calls(fx->fh), 1);
	assert_false(fake_host_ready(fx->fh));
	assert_position(fake_host_status(fx->fh), fx->path);
	assert_int_equal(fake_host_log_count_level(fx->fh, LOG_ERR), 1);
	line = fake_host_log_find(fx->fh, LOG_ERR, fx->path);
	assert_non_null(line);
	assert_non_null(strstr(line, "no cluster state yet"));
	/* the log line carries the same position as the status */
	assert_non_null(strstr(line, fake_host_status(fx->fh)));
}

static void test_broken_at_start(void **state)
{
	check_broken_start(*state, BROKEN_SYNTAX);
}

static void test_broken_content_at_start(void **state)
{
	struct fixture *fx = *state;

	check_broken_start(fx, BROKEN_CONTENT);
	assert_non_null(strstr(fake_host_status(fx->fh), "10.0.0.300"));
}

/* A missing file: no position, the errno's text, not ready. */
static void test_missing_at_start(void **state)
{
	struct fixture *fx = *state;

	init_and_start(fx);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 0);
	assert_int_equal(fake_host_ready_calls(fx->fh), 1);
	assert_false(fake_host_ready(fx->fh));
	assert_non_null(strstr(fake_host_status(fx->fh), fx->path));
	assert_int_equal(fake_host_log_count_level(fx->fh, LOG_ERR), 1);

	/* creating it later loads it */
	write_good(fx);
	assert_int_equal(deliver_change(fx), 1);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 1);
	assert_true(fake_host_ready(fx->fh));
}

/* A broken file at start, then fixed: the fix is loaded and the source becomes ready. */
static void test_broken_then_fixed(void **state)
{
	struct fixture *fx = *state;
	const struct fake_store_record *st = fake_host_store(fx->fh);

	check_broken_start(fx, BROKEN_SYNTAX);
	write_good(fx);
	assert_int_equal(deliver_change(fx), 1);
	assert_int_equal(st->replace_alls, 1);
	assert_int_equal(st->replace_count, EXAMPLE_OBJECTS);
	assert_int_equal(fake_host_ready_calls(fx->fh), 2);
	assert_true(fake_host_ready(fx->fh));
}

static void test_reload(void **state)
{
	struct fixture *fx = *state;
	const struct fake_store_record *st = fake_host_store(fx->fh);
	const char *line;

	write_good(fx);
	init_and_start(fx);
	assert_int_equal(st->replace_alls, 1);
	fake_host_log_clear(fx->fh);

	/* A broken edit: logged, nothing replaced, still ready with the old status. */
	test_write(fx->path, BROKEN_SYNTAX);
	assert_int_equal(deliver_change(fx), 1);
	assert_int_equal(st->replace_alls, 1);
	assert_int_equal(fake_host_ready_calls(fx->fh), 1);
	assert_true(fake_host_ready(fx->fh));
	assert_int_equal(fake_host_log_count_level(fx->fh, LOG_ERR), 1);
	line = fake_host_log_find(fx->fh, LOG_ERR, "keeping the last good state");
	assert_non_null(line);
	assert_position(line, fx->path);
	fake_host_log_clear(fx->fh);

	/* The fix: replaced again, ready again. */
	write_good(fx);
	assert_int_equal(deliver_change(fx), 1);
	assert_int_equal(st->replace_alls, 2);
	assert_int_equal(st->replace_count, EXAMPLE_OBJECTS);
	assert_int_equal(fake_host_ready_calls(fx->fh), 2);
	assert_true(fake_host_ready(fx->fh));
	assert_int_equal(fake_host_log_count_level(fx->fh, LOG_ERR), 0);
	assert_non_null(fake_host_log_find(fx->fh, LOG_INFO, "loaded 22 objects"));

	/* Replaced by rename, as editors do: seen through the directory watch. */
	rename_into_place(fx, BROKEN_CONTENT);
	assert_int_equal(deliver_change(fx), 1);
	assert_int_equal(st->replace_alls, 2);
	assert_non_null(fake_host_log_find(fx->fh, LOG_ERR, "keeping the last good state"));
	{
		char *good = slurp(EXAMPLE);

		rename_into_place(fx, good);
		free(good);
	}
	assert_int_equal(deliver_change(fx), 1);
	assert_int_equal(st->replace_alls, 3);

	/* Deleting the file keeps the last good state too. */
	fake_host_log_clear(fx->fh);
	assert_int_equal(unlink(fx->path), 0);
	assert_int_equal(deliver_change(fx), 1);
	assert_int_equal(st->replace_alls, 3);
	assert_true(fake_host_ready(fx->fh));
	assert_non_null(fake_host_log_find(fx->fh, LOG_ERR, "keeping the last good state"));
}

/* Several events in a burst arm one reload; a change to another file in the directory arms
 * none. */
static void test_reload_debounce(void **state)
{
	struct fixture *fx = *state;
	char other[600];
	int fd;

	write_good(fx);
	init_and_start(fx);
	fd = fake_host_io_fd(fx->fh, 0);

	snprintf(other, sizeof(other), "%s/unrelated.txt", fx->dir);
	test_write(other, "hello\n");
	assert_int_equal(fake_host_fire_io(fx->fh, fd), 1);
	assert_int_equal(fake_host_timer_count(fx->fh), 0);

	write_good(fx);
	assert_int_equal(fake_host_fire_io(fx->fh, fd), 1);
	write_good(fx);
	assert_int_equal(fake_host_fire_io(fx->fh, fd), 1);
	/* the first timer was removed and replaced: one timer, armed with a short delay */
	assert_int_equal(fake_host_timer_count(fx->fh), 1);
	assert_int_equal(fake_host_armed_timers(fx->fh), 1);
	assert_true(fake_host_timer_delay_ns(fx->fh, 0) > 0);
	assert_true(fake_host_timer_delay_ns(fx->fh, 0) < 1000000000ull);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 1);
	assert_int_equal(fake_host_fire_timers(fx->fh), 1);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 2);
	/* the timer fired once and disarmed itself */
	assert_int_equal(fake_host_armed_timers(fx->fh), 0);
	assert_int_equal(fake_host_fire_timers(fx->fh), 0);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 2);
}

/* No timer available: the reload happens at once. */
static void test_reload_without_timer(void **state)
{
	struct fixture *fx = *state;

	write_good(fx);
	init_and_start(fx);
	fake_host_set_timer_result(fx->fh, -ENOMEM);
	write_good(fx);
	assert_int_equal(fake_host_fire_io(fx->fh, fake_host_io_fd(fx->fh, 0)), 1);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 2);
	assert_non_null(fake_host_log_find(fx->fh, LOG_WARNING, "reloading now"));
	assert_int_equal(fake_host_timer_count(fx->fh), 0);
}

/* A store that refuses the list: logged, not ready yet. */
static void test_store_failure(void **state)
{
	struct fixture *fx = *state;

	write_good(fx);
	fake_host_set_store_result(fx->fh, -ENOMEM);
	init_and_start(fx);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 1);
	assert_false(fake_host_ready(fx->fh));
	assert_non_null(fake_host_log_find(fx->fh, LOG_ERR, "cannot apply"));
}

/* io_add failing fails start; fini copes. */
static void test_start_failure(void **state)
{
	struct fixture *fx = *state;

	write_good(fx);
	fake_host_set_io_result(fx->fh, -ENOMEM);
	assert_int_equal(meshcrypt_plugin.init(fx->ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(fx->ctx), -ENOMEM);
	assert_int_equal(fake_host_open_handles(fx->fh), 0);
}

/* A directory that cannot be watched fails init with an error line; fini copes. */
static void test_init_failure(void **state)
{
	struct fixture *fx = *state;

	fake_host_set_config(fx->fh, "file", "/nonexistent-mc-test-dir/cluster.json");
	assert_int_equal(meshcrypt_plugin.init(fx->ctx), -ENOENT);
	assert_non_null(fake_host_log_find(fx->fh, LOG_ERR, "cannot watch /nonexistent-mc-test-dir"));
}

/* Stop with a reload pending releases the timer too; a second stop/start cycle works. */
static void test_stop_with_pending_reload(void **state)
{
	struct fixture *fx = *state;

	write_good(fx);
	init_and_start(fx);
	write_good(fx);
	assert_int_equal(fake_host_fire_io(fx->fh, fake_host_io_fd(fx->fh, 0)), 1);
	assert_int_equal(fake_host_open_handles(fx->fh), 2);
	meshcrypt_plugin.stop(fx->ctx);
	fx->started = false;
	assert_int_equal(fake_host_open_handles(fx->fh), 0);

	assert_int_equal(meshcrypt_plugin.start(fx->ctx), 0);
	fx->started = true;
	assert_int_equal(fake_host_io_count(fx->fh), 1);
	assert_int_equal(fake_host_store(fx->fh)->replace_alls, 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		T(test_first_load),
		T(test_broken_at_start),
		T(test_broken_content_at_start),
		T(test_missing_at_start),
		T(test_broken_then_fixed),
		T(test_reload),
		T(test_reload_debounce),
		T(test_reload_without_timer),
		T(test_store_failure),
		T(test_start_failure),
		T(test_init_failure),
		T(test_stop_with_pending_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
