/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics registry: Prometheus text exposition, grouping, escaping, registration rules. */

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <meshcrypt/metrics.h>

static char *render(struct mc_metrics *reg)
{
	char *text = mc_metrics_render(reg, NULL);

	assert_non_null(text);
	return text;
}

static void assert_render(struct mc_metrics *reg, const char *want)
{
	char *text = render(reg);

	assert_string_equal(text, want);
	free(text);
}

/* Writes peers_total and xfrm_states with the peer name from userdata. */
static int peer_collector(struct mc_metrics_writer *w, void *userdata)
{
	const struct mc_metrics_label l[] = { { "peer", userdata }, { "family", "ipv4" } };
	int r = mc_metrics_write_counter(w, "meshcrypt_peer_bytes_total", "Bytes sent to a peer.",
					 l, 2, 1234);

	return r ? r : mc_metrics_write_gauge(w, "meshcrypt_states", "Installed states.", l, 1, 2.5);
}

static void test_empty(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	size_t len = 99;
	char *text = mc_metrics_render(reg, &len);

	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
	mc_metrics_free(reg);
	mc_metrics_free(NULL);
	mc_metrics_free(mc_metrics_default()); /* no-op */
}

static void test_families_grouped(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct mc_metrics_collector *a = mc_metrics_register(reg, "peer/a", peer_collector, "node-a");
	struct mc_metrics_collector *b = mc_metrics_register(reg, "peer/b", peer_collector, "node-b");

	assert_non_null(a);
	assert_non_null(b);
	assert_render(reg,
		      "# HELP meshcrypt_peer_bytes_total Bytes sent to a peer.\n"
		      "# TYPE meshcrypt_peer_bytes_total counter\n"
		      "meshcrypt_peer_bytes_total{peer=\"node-a\",family=\"ipv4\"} 1234\n"
		      "meshcrypt_peer_bytes_total{peer=\"node-b\",family=\"ipv4\"} 1234\n"
		      "# HELP meshcrypt_states Installed states.\n"
		      "# TYPE meshcrypt_states gauge\n"
		      "meshcrypt_states{peer=\"node-a\"} 2.5\n"
		      "meshcrypt_states{peer=\"node-b\"} 2.5\n");
	mc_metrics_unregister(a);
	assert_render(reg,
		      "# HELP meshcrypt_peer_bytes_total Bytes sent to a peer.\n"
		      "# TYPE meshcrypt_peer_bytes_total counter\n"
		      "meshcrypt_peer_bytes_total{peer=\"node-b\",family=\"ipv4\"} 1234\n"
		      "# HELP meshcrypt_states Installed states.\n"
		      "# TYPE meshcrypt_states gauge\n"
		      "meshcrypt_states{peer=\"node-b\"} 2.5\n");
	mc_metrics_unregister(b);
	mc_metrics_unregister(NULL);
	assert_render(reg, "");
	mc_metrics_free(reg);
}

static int histogram_collector(struct mc_metrics_writer *w, void *userdata)
{
	static const double bounds[] = { 0.001, 0.1, 10 };
	static const uint64_t counts[] = { 2, 0, 3 };
	const struct mc_metrics_histogram h = {
		.bounds = bounds, .counts = counts, .n_bounds = 3, .count = 6, .sum = 31.25,
	};

	return mc_metrics_write_histogram(w, "req_seconds", "Request time.", NULL, 0, &h);
}

static void test_histogram(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct mc_metrics_collector *c = mc_metrics_register(reg, "h", histogram_collector, NULL);

	assert_render(reg,
		      "# HELP req_seconds Request time.\n"
		      "# TYPE req_seconds histogram\n"
		      "req_seconds_bucket{le=\"0.001\"} 2\n"
		      "req_seconds_bucket{le=\"0.1\"} 2\n"
		      "req_seconds_bucket{le=\"10\"} 5\n"
		      "req_seconds_bucket{le=\"+Inf\"} 6\n"
		      "req_seconds_sum 31.25\n"
		      "req_seconds_count 6\n");
	mc_metrics_unregister(c);
	mc_metrics_free(reg);
}

static int escaping_collector(struct mc_metrics_writer *w, void *userdata)
{
	const struct mc_metrics_label l = { "path", "C:\\dir \"x\"\nnext" };
	int r = mc_metrics_write_gauge(w, "odd", "Help with \\ and\nnewline.", &l, 1, 0.1);

	if (r == 0)
		r = mc_metrics_write_gauge(w, "specials", "", NULL, 0, INFINITY);
	if (r == 0)
		r = mc_metrics_write_gauge(w, "specials", "", NULL, 0, -INFINITY);
	if (r == 0)
		r = mc_metrics_write_gauge(w, "specials", "", NULL, 0, NAN);
	if (r == 0)
		r = mc_metrics_write_gauge(w, "specials", "", NULL, 0, 1e20);
	return r;
}

static void test_escaping_and_values(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct mc_metrics_collector *c = mc_metrics_register(reg, "e", escaping_collector, NULL);

	assert_render(reg,
		      "# HELP odd Help with \\\\ and\\nnewline.\n"
		      "# TYPE odd gauge\n"
		      "odd{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 0.1\n"
		      "# HELP specials \n"
		      "# TYPE specials gauge\n"
		      "specials +Inf\n"
		      "specials -Inf\n"
		      "specials NaN\n"
		      "specials 1e+20\n");
	mc_metrics_unregister(c);
	mc_metrics_free(reg);
}

static int bad_name_collector(struct mc_metrics_writer *w, void *userdata)
{
	int *results = userdata;
	const struct mc_metrics_label bad_label = { "9lives", "x" };
	const struct mc_metrics_label le = { "le", "1" };

	results[0] = mc_metrics_write_gauge(w, "has space", "", NULL, 0, 1);
	results[1] = mc_metrics_write_gauge(w, "ok", "", &bad_label, 1, 1);
	results[2] = mc_metrics_write_gauge(w, "ok", "", &le, 1, 1);
	results[3] = mc_metrics_write_gauge(w, "ok", "", NULL, 0, 1);
	results[4] = mc_metrics_write_counter(w, "ok", "", NULL, 0, 1); /* type conflict */
	return 0;
}

static void test_invalid_samples(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	int results[5];
	struct mc_metrics_collector *c = mc_metrics_register(reg, "bad", bad_name_collector, results);

	errno = 0;
	assert_null(mc_metrics_render(reg, NULL));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(results[0], -EINVAL);
	assert_int_equal(results[1], -EINVAL);
	assert_int_equal(results[2], -EINVAL);
	assert_int_equal(results[3], 0);
	assert_int_equal(results[4], -EINVAL);
	mc_metrics_unregister(c);
	mc_metrics_free(reg);
}

static int failing_collector(struct mc_metrics_writer *w, void *userdata)
{
	return -EIO;
}

static void test_registration(void **state)
{
	struct mc_metrics *reg = mc_metrics_new();
	struct mc_metrics_collector *a = mc_metrics_register(reg, "same", failing_collector, NULL);

	errno = 0;
	assert_null(mc_metrics_register(reg, "same", failing_collector, NULL));
	assert_int_equal(errno, EEXIST);
	assert_null(mc_metrics_register(NULL, "x", failing_collector, NULL));
	assert_null(mc_metrics_register(reg, NULL, failing_collector, NULL));
	assert_null(mc_metrics_register(reg, "x", NULL, NULL));
	/* A failing collector fails the render. */
	errno = 0;
	assert_null(mc_metrics_render(reg, NULL));
	assert_int_equal(errno, EIO);
	assert_int_equal(mc_metrics_write(reg, stdout), -EIO);
	mc_metrics_unregister(a);
	a = mc_metrics_register(reg, "same", peer_collector, "again");
	assert_non_null(a);
	/* A handle left registered is released with the registry. */
	mc_metrics_free(reg);
}

struct churn {
	struct mc_metrics *reg;
	atomic_int stop;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	char key[32];

	for (int i = 0; !atomic_load(&c->stop); i++) {
		struct mc_metrics_collector *h;

		snprintf(key, sizeof(key), "k%d", i % 8);
		h = mc_metrics_register(c->reg, key, peer_collector, "churn");
		mc_metrics_unregister(h);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct churn c = { .reg = mc_metrics_new() };
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, churn_thread, &c);
	for (int i = 0; i < 300; i++)
		free(render(c.reg));
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_render(c.reg, "");
	mc_metrics_free(c.reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_families_grouped),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_escaping_and_values),
		cmocka_unit_test(test_invalid_samples),
		cmocka_unit_test(test_registration),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
