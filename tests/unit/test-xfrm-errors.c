/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* meshcryptctl xfrm-errors: the non-zero counters of /proc/net/xfrm_stat with their causes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "xfrm-errors.h"

/* Runs the formatter over text; returns its output (the caller frees it) and its result. */
static char *format(const char *text, int *result)
{
	FILE *in = fmemopen((void *)text, strlen(text), "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(in);
	assert_non_null(out);
	*result = mc_xfrm_errors_write(in, out);
	fclose(in);
	fclose(out);
	return buf;
}

static void test_nonzero_with_causes(void **state)
{
	/* the kernel's layout: a name, spaces, a value; the counters of a 6.1 kernel */
	static const char stat[] =
		"XfrmInError             \t0\nXfrmInBufferError       \t0\nXfrmInNoStates          \t3\n"
		"XfrmInTmplMismatch      \t12\nXfrmOutNoStates         \t0\nXfrmOutPolBlock         \t0\n"
		"XfrmInIptfsError        \t5\n";
	int r;
	char *out = format(stat, &r);

	(void)state;
	assert_int_equal(r, 0);
	assert_non_null(strstr(out, "XfrmInNoStates 3: ESP for an SPI"));
	assert_non_null(strstr(out, "XfrmInTmplMismatch 12: a policy requires ESP for traffic that "
				    "did not arrive as ESP; likely: plaintext from a managed remote pod"));
	assert_non_null(strstr(out, "XfrmInIptfsError 5\n")); /* unknown here: name and value */
	assert_null(strstr(out, "XfrmInError"));
	assert_null(strstr(out, "XfrmOutNoStates"));
	free(out);
}

static void test_all_zero_and_malformed(void **state)
{
	int r;
	char *out = format("XfrmInError 0\nXfrmOutNoStates 0\n", &r);

	(void)state;
	assert_int_equal(r, 0);
	assert_string_equal(out, "no xfrm errors (every counter of /proc/net/xfrm_stat is 0)\n");
	free(out);
	out = format("XfrmInError zero\n", &r);
	assert_int_equal(r, -EBADMSG);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonzero_with_causes),
		cmocka_unit_test(test_all_zero_and_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
