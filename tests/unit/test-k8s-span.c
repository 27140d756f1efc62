/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Kubernetes source's watch-stream splitter (plugins/source-k8s/span.h) on the inputs its
 * fuzz harness found wrong (tests/fuzz/regressions/k8s-span/).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/source-k8s/span.h"

struct seen {
	char lines[8][32];
	size_t n, too_long;
};

static int on_line(const char *line, size_t len, void *userdata)
{
	struct seen *s = userdata;

	if (!line) {
		s->too_long++;
		return 0;
	}
	assert_true(s->n < 8 && len < sizeof(s->lines[0]));
	memcpy(s->lines[s->n], line, len);
	s->lines[s->n++][len] = '\0';
	return 0;
}

/* An empty line before any other, when the splitter holds no buffer yet (or after a line that
 * was too long, which it never buffered): nothing is delivered, and nothing is copied. */
static void test_lines_empty_first(void **state)
{
	struct mck_lines l;
	struct seen s = { .n = 0 };

	(void)state;
	mck_lines_init(&l, 16);
	assert_int_equal(mck_lines_feed(&l, "\n", 1, on_line, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(mck_lines_feed(&l, "\n{}\n", 4, on_line, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.lines[0], "{}");
	mck_lines_free(&l);

	memset(&s, 0, sizeof(s));
	mck_lines_init(&l, 4);
	assert_int_equal(mck_lines_feed(&l, "abcdefgh\n\n\nab\n", 14, on_line, &s), 0);
	assert_int_equal(s.too_long, 1);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.lines[0], "ab");
	mck_lines_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_empty_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
