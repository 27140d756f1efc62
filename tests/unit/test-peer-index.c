/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Peer indices: stable across reopen, independent of order, reused only when the never-used
 * ones are gone, and a journal that is malformed is refused rather than guessed at. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "peer-index.h"
#include "test-util.h"

static char *dir;
static char error[512];

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

static struct mc_peer_index *open_index(uint32_t max)
{
	struct mc_peer_index *pi = NULL;

	assert_int_equal(mc_peer_index_open(dir, max, &pi, error, sizeof(error)), 0);
	return pi;
}

static void test_stable_across_reopen(void **state)
{
	struct mc_peer_index *pi = open_index(65535);

	assert_int_equal(mc_peer_index_get(pi, "node-2", 0), 0);
	assert_int_equal(mc_peer_index_get(pi, "node-2", 1), 1);
	assert_int_equal(mc_peer_index_get(pi, "node-3", 1), 2);
	assert_int_equal(mc_peer_index_get(pi, "node-2", 1), 1);
	mc_peer_index_free(pi);
	/* another order after the restart: the same indices */
	pi = open_index(65535);
	assert_int_equal(mc_peer_index_get(pi, "node-4", 1), 3);
	assert_int_equal(mc_peer_index_get(pi, "node-3", 1), 2);
	assert_int_equal(mc_peer_index_get(pi, "node-2", 0), 1);
	mc_peer_index_free(pi);
}

static void test_reuse_only_when_exhausted(void **state)
{
	const char *keep[] = { "a", "c" };
	struct mc_peer_index *pi = open_index(3);

	assert_int_equal(mc_peer_index_get(pi, "a", 1), 1);
	assert_int_equal(mc_peer_index_get(pi, "b", 1), 2);
	assert_int_equal(mc_peer_index_retain(pi, keep, 1), 1); /* b released */
	/* 3 was never used: it goes before the released 2 */
	assert_int_equal(mc_peer_index_get(pi, "c", 1), 3);
	mc_peer_index_free(pi);
	pi = open_index(3); /* the journal compacts, the high mark survives */
	assert_int_equal(mc_peer_index_get(pi, "d", 1), 2);
	assert_int_equal(mc_peer_index_get(pi, "e", 1), -ENOSPC);
	assert_int_equal(mc_peer_index_retain(pi, keep, 2), 1); /* d released */
	mc_peer_index_free(pi);
	pi = open_index(3);
	assert_int_equal(mc_peer_index_get(pi, "a", 0), 1);
	assert_int_equal(mc_peer_index_get(pi, "c", 0), 3);
	assert_int_equal(mc_peer_index_get(pi, "d", 0), 0);
	mc_peer_index_free(pi);
}

static void test_torn_last_line_is_ignored(void **state)
{
	char path[600];
	struct mc_peer_index *pi;

	snprintf(path, sizeof(path), "%s/%s", dir, MC_PEER_INDEX_FILE);
	test_write(path, "+ 1 node-2\n+ 2 node-");
	pi = open_index(65535);
	assert_int_equal(mc_peer_index_get(pi, "node-2", 0), 1);
	assert_int_equal(mc_peer_index_get(pi, "node-", 0), 0);
	assert_int_equal(mc_peer_index_get(pi, "node-3", 1), 2);
	mc_peer_index_free(pi);
}

static void test_malformed_journal_is_refused(void **state)
{
	struct mc_peer_index *pi = NULL;
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", dir, MC_PEER_INDEX_FILE);
	test_write(path, "+ 1 node-2\n+ 1 node-3\n");
	assert_int_equal(mc_peer_index_open(dir, 65535, &pi, error, sizeof(error)), -EINVAL);
	assert_non_null(strstr(error, ":2: node-3 would have index 1 twice"));
	test_write(path, "+ 70000 node-2\n");
	assert_int_equal(mc_peer_index_open(dir, 65535, &pi, error, sizeof(error)), -EINVAL);
	assert_non_null(strstr(error, ":1: malformed line"));
	assert_null(pi);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stable_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse_only_when_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_line_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_journal_is_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
