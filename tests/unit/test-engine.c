/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Engine lifecycle: plugin order, required and optional plugin failures, plugin config;
 * reconciling a cluster from the static source: retries, permanent failures, gc, peer
 * indices, --cleanup. */
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
#include "test-util.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

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

/* [attach] plugin = auto: tcx, whose init says the kernel lacks it, gives way to tc. */
static void test_auto_attach_falls_back(void **state)
{
	sd_event *event = NULL;
	struct mc_engine *e;
	char error[512], text[4096];

	test_install_plugin(dir, "attach-tcx.so");
	test_install_plugin(dir, "attach-tc.so");
	snprintf(text, sizeof(text),
		 "[core]\nnode_name = n1\nplugin_dir = %s\nstate_dir = %s\nrun_dir = %s\n"
		 "[source]\nplugin = tsource\n[backend]\nplugin = tbackend\n"
		 "[attach]\nplugin = auto\n"
		 "[plugin.tsource]\ntrace = %s\n[plugin.tbackend]\ntrace = %s\n"
		 "[plugin.tcx]\ntrace = %s\nunsupported = yes\n[plugin.tc]\ntrace = %s\n",
		 dir, dir, dir, trace_path, trace_path, trace_path, trace_path);
	test_write(conf, text);
	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(new_engine(event, &e, error, sizeof(error)), 0);
	assert_int_equal(mc_engine_start(e), 0);
	mc_engine_stop(e);
	mc_engine_free(e);
	sd_event_unref(event);
	assert_trace("tcx config_check\ntbackend config_check\ntsource config_check\n"
		     "tcx init\ntcx fini\ntc config_check\ntc init\ntbackend init\ntsource init\n"
		     "tc start\ntbackend start\ntsource start\n"
		     "tsource stop\ntbackend stop\ntc stop\n"
		     "tsource fini\ntbackend fini\ntc fini\n");
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

/* ---- the engine with the real static source on a cluster file ---- */

static char plugdir[256], cluster_path[700];

static void copy_file(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	ssize_t n;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (in < 0 || out < 0)
		abort();
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			abort();
	close(in);
	close(out);
	if (chmod(dst, mode) < 0)
		abort();
}

/* dir/plugins holds the test plugins and a copy of the static source; its RUNPATH
 * ($ORIGIN/../core/libmeshcrypt) finds libmeshcrypt through dir/core -> the build's core. */
static int setup_static(void **state)
{
	char path[700];

	setup(state);
	snprintf(plugdir, sizeof(plugdir), "%s/plugins", dir);
	assert_int_equal(mkdir(plugdir, 0755), 0);
	assert_int_equal(chmod(plugdir, 0755), 0);
	snprintf(path, sizeof(path), "%s/core", dir);
	assert_int_equal(symlink(MC_BUILDDIR "/core", path), 0);
	test_install_plugin(plugdir, "backend-tbackend.so");
	test_install_plugin(plugdir, "attach-tattach.so");
	snprintf(path, sizeof(path), "%s/source-static.so", plugdir);
	copy_file(MC_BUILDDIR "/plugins/source-static.so", path, 0755);
	snprintf(cluster_path, sizeof(cluster_path), "%s", MC_SRCDIR "/examples/cluster-3node.json");
	return 0;
}

static void write_static_config(const char *tbackend_extra)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "[core]\nnode_name = node-1\nplugin_dir = %s\nstate_dir = %s\nrun_dir = %s\n"
		 "workers = 2\n"
		 "[source]\nplugin = static\n[backend]\nplugin = tbackend\n"
		 "[attach]\nplugin = tattach\n"
		 "[plugin.static]\nfile = %s\n[plugin.tattach]\ntrace = %s\n"
		 "[plugin.tbackend]\ntrace = %s\n%s",
		 plugdir, dir, dir, cluster_path, trace_path, trace_path, tbackend_extra);
	test_write(conf, text);
}

/* The trace, split into lines (NULL-terminated); free with free_lines. */
static char **read_lines(size_t *count)
{
	char **lines = NULL, *line = NULL;
	size_t n = 0, cap = 0;
	ssize_t len;
	FILE *f = fopen(trace_path, "r");

	if (f) {
		while ((len = getline(&line, &cap, f)) >= 0) {
			if (len && line[len - 1] == '\n')
				line[len - 1] = '\0';
			lines = realloc(lines, (n + 2) * sizeof(*lines));
			assert_non_null(lines);
			lines[n++] = strdup(line);
		}
		free(line);
		fclose(f);
	}
	lines = realloc(lines, (n + 1) * sizeof(*lines));
	assert_non_null(lines);
	lines[n] = NULL;
	if (count)
		*count = n;
	return lines;
}

static void free_lines(char **lines)
{
	for (size_t i = 0; lines[i]; i++)
		free(lines[i]);
	free(lines);
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Lines "<plugin> peer <node> ..." in order, and the first that did not fail (-1: none). */
static size_t peer_lines(char **lines, const char *plugin, const char *node, size_t *pos,
			 size_t max, long *first_ok)
{
	char prefix[128];
	size_t n = 0;

	snprintf(prefix, sizeof(prefix), "%s peer %s ", plugin, node);
	*first_ok = -1;
	for (size_t i = 0; lines[i]; i++) {
		if (!starts_with(lines[i], prefix))
			continue;
		if (n < max)
			pos[n] = i;
		n++;
		if (*first_ok < 0 && !ends_with(lines[i], " failed"))
			*first_ok = (long)i;
	}
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the trace has a line starting with each of the prefixes. */
static bool trace_has_all(const char *const *prefixes)
{
	char **lines = read_lines(NULL);
	bool all = true;

	for (size_t p = 0; prefixes[p] && all; p++) {
		bool found = false;

		for (size_t i = 0; lines[i] && !found; i++)
			found = starts_with(lines[i], prefixes[p]) && !ends_with(lines[i], " failed");
		all = found;
	}
	free_lines(lines);
	return all;
}

/*
 * Starts an engine on conf, waits (up to 10 s) until the trace has a successful line for each
 * of wait_for and settle_ms more, then drains and stops it. Waiting matters: the drain shuts the queue down,
 * which drops the keys still waiting for their retry.
 */
static void run_static_engine(const char *const *wait_for, unsigned settle_ms)
{
	sd_event *event = NULL;
	struct mc_engine *e;
	char error[512];
	int64_t deadline = now_ms() + 10000;

	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(new_engine(event, &e, error, sizeof(error)), 0);
	assert_int_equal(mc_engine_start(e), 0);
	assert_true(mc_engine_ready(e));
	while (wait_for && !trace_has_all(wait_for) && now_ms() < deadline)
		usleep(2000);
	usleep(settle_ms * 1000);
	mc_engine_drain(e);
	mc_engine_stop(e);
	mc_engine_free(e);
	sd_event_unref(event);
	if (getenv("TEST_SHOW_TRACE")) {
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "cat %s >&2; echo ---- >&2", trace_path);
		(void)system(cmd);
	}
}

static const char *const peers[] = { "node-2", "node-3" };

static void test_retry_then_forget(void **state)
{
	/* The backend's successful line comes last for a peer: the attach plugin sees each
	 * attempt first, so waiting for the attach plugin's line would stop between retries. */
	static const char *const wait_for[] = { "tbackend peer node-2 ", "tbackend peer node-3 ",
						"tattach local node-1", NULL };
	char **lines;

	write_static_config("fail_apply = 2\n");
	run_static_engine(wait_for, 0);
	lines = read_lines(NULL);
	for (size_t p = 0; p < ARRAY_SIZE(peers); p++) {
		size_t pos[16], n, na;
		long ok, ok_attach;
		size_t apos[16];

		n = peer_lines(lines, "tbackend", peers[p], pos, 16, &ok);
		/* failed, failed, then it works (and stays working: the success forgot the key) */
		assert_true(n >= 3);
		assert_true(ends_with(lines[pos[0]], " failed"));
		assert_true(ends_with(lines[pos[1]], " failed"));
		assert_false(ends_with(lines[pos[2]], " failed"));
		assert_int_equal(ok, (long)pos[2]);
		for (size_t i = 3; i < n && i < 16; i++)
			assert_false(ends_with(lines[pos[i]], " failed"));
		/* A participating peer: the attach plugin (the leak guard) first, on every attempt,
		 * the failed ones included. */
		na = peer_lines(lines, "tattach", peers[p], apos, 16, &ok_attach);
		assert_true(na >= 3);
		for (size_t i = 0; i < 3; i++)
			assert_true(apos[i] < pos[i]);
		assert_true(ok_attach >= 0 && ok_attach < (long)pos[0]);
	}
	free_lines(lines);
}

static void test_permanent_not_retried(void **state)
{
	char **lines;

	write_static_config("permanent = yes\n");
	/* Nothing to wait for but the local node; then 100 ms in which a retry with backoff
	 * (5 ms, 10 ms, 20 ms, ...) would show. */
	run_static_engine((const char *const[]){ "tattach local node-1", "tattach gc 2", NULL },
			  100);
	lines = read_lines(NULL);
	for (size_t p = 0; p < ARRAY_SIZE(peers); p++) {
		size_t pos[16], n;
		long ok;

		/*
		 * Once per time the key was queued: the source's replace-all queues it, and the
		 * first full resync (set_ready) queues every key again. When a worker has already
		 * finished the key in between, the resync applies it a second time (a race in the
		 * engine: mc_engine_source_ready() re-queues keys the store just queued), so 1 or
		 * 2 lines, never a retry.
		 */
		n = peer_lines(lines, "tbackend", peers[p], pos, 16, &ok);
		assert_in_range(n, 1, 2);
		for (size_t i = 0; i < n; i++)
			assert_true(ends_with(lines[pos[i]], " failed"));
		assert_int_equal(ok, -1);
		/* the guard went in before each attempt, and stays */
		assert_int_equal(peer_lines(lines, "tattach", peers[p], pos, 16, &ok), n);
	}
	free_lines(lines);
}

/* The gc lines of one plugin: "P gc N" then N "P gc keeps NODE index I"; indices by node. */
static void assert_gc(char **lines, const char *plugin, unsigned index_out[2])
{
	char head[64], keeps[64];
	size_t i;

	snprintf(head, sizeof(head), "%s gc 2", plugin);
	snprintf(keeps, sizeof(keeps), "%s gc keeps ", plugin);
	for (i = 0; lines[i] && strcmp(lines[i], head) != 0; i++)
		;
	assert_non_null(lines[i]);
	index_out[0] = index_out[1] = 0;
	for (size_t k = 1; k <= 2; k++) {
		char node[64];
		unsigned index;

		assert_non_null(lines[i + k]);
		assert_true(starts_with(lines[i + k], keeps));
		assert_int_equal(sscanf(lines[i + k] + strlen(keeps), "%63s index %u", node, &index),
				 2);
		assert_in_range(index, 1, 65535);
		if (strcmp(node, "node-2") == 0)
			index_out[0] = index;
		else if (strcmp(node, "node-3") == 0)
			index_out[1] = index;
		else
			fail_msg("gc keeps an unexpected peer %s", node);
	}
	assert_int_not_equal(index_out[0], 0);
	assert_int_not_equal(index_out[1], 0);
	assert_int_not_equal(index_out[0], index_out[1]);
	/* one gc, after the first full resync */
	for (i = i + 3; lines[i]; i++)
		assert_false(starts_with(lines[i], head));
}

static void test_gc_after_first_resync(void **state)
{
	static const char *const wait_for[] = { "tattach gc 2", NULL };
	unsigned backend[2], attach[2];
	char **lines;

	write_static_config("");
	run_static_engine(wait_for, 0);
	lines = read_lines(NULL);
	assert_gc(lines, "tbackend", backend);
	assert_gc(lines, "tattach", attach);
	assert_int_equal(backend[0], attach[0]);
	assert_int_equal(backend[1], attach[1]);
	free_lines(lines);
}

/* The index each peer was applied with (all of its successful lines must agree). */
static void peer_indices(unsigned index_out[2])
{
	char **lines = read_lines(NULL);

	for (size_t p = 0; p < ARRAY_SIZE(peers); p++) {
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "tbackend peer %s index ", peers[p]);
		index_out[p] = 0;
		for (size_t i = 0; lines[i]; i++) {
			unsigned index;

			if (!starts_with(lines[i], prefix))
				continue;
			assert_int_equal(sscanf(lines[i] + strlen(prefix), "%u", &index), 1);
			assert_in_range(index, 1, 65535);
			if (index_out[p])
				assert_int_equal(index, index_out[p]);
			index_out[p] = index;
		}
		assert_int_not_equal(index_out[p], 0);
	}
	assert_int_not_equal(index_out[0], index_out[1]);
	free_lines(lines);
}

static void test_peer_indices_stable(void **state)
{
	static const char *const wait_for[] = { "tattach gc 2", NULL };
	unsigned first[2], again[2], reversed[2];
	char reversed_path[700], cmd[2000];

	write_static_config("");
	run_static_engine(wait_for, 0);
	peer_indices(first);

	/* a new engine on the same state_dir */
	assert_int_equal(unlink(trace_path), 0);
	run_static_engine(wait_for, 0);
	peer_indices(again);
	assert_int_equal(again[0], first[0]);
	assert_int_equal(again[1], first[1]);

	/* the same cluster, items in reverse order */
	snprintf(reversed_path, sizeof(reversed_path), "%s/reversed.json", dir);
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
		 "d[\"items\"].reverse(); json.dump(d, open(sys.argv[2], \"w\"))' '%s' '%s'",
		 cluster_path, reversed_path);
	assert_int_equal(system(cmd), 0);
	snprintf(cluster_path, sizeof(cluster_path), "%s", reversed_path);
	write_static_config("");
	assert_int_equal(unlink(trace_path), 0);
	run_static_engine(wait_for, 0);
	peer_indices(reversed);
	assert_int_equal(reversed[0], first[0]);
	assert_int_equal(reversed[1], first[1]);
}

static void test_cleanup(void **state)
{
	struct mc_engine *e;
	char error[512];

	write_config("", "", "");
	assert_int_equal(new_engine(NULL, &e, error, sizeof(error)), 0);
	assert_int_equal(mc_engine_cleanup(e), 0);
	mc_engine_free(e);
	/* the backend's objects go before the attach plugin's; the source is never initialised
	 * and nothing is started */
	assert_trace("tattach config_check\ntbackend config_check\ntsource config_check\n"
		     "tattach init\ntbackend init\n"
		     "tbackend cleanup\ntattach cleanup\n"
		     "tbackend fini\ntattach fini\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lifecycle_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_plugin_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_optional_plugin_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_attach_falls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plugin_config_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_check_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_then_forget, setup_static, teardown),
		cmocka_unit_test_setup_teardown(test_permanent_not_retried, setup_static, teardown),
		cmocka_unit_test_setup_teardown(test_gc_after_first_resync, setup_static, teardown),
		cmocka_unit_test_setup_teardown(test_peer_indices_stable, setup_static, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
