/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fault injection (plugins/fault/fault.h): which calls of a point fail, with what, how often. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "fault.h"

static void test_faults(void **state)
{
	int got[8];

	(void)state;
	/* read once, at the first call: a malformed entry is skipped, the others apply */
	assert_int_equal(setenv("MC_FAULTS", "netlink=ENOBUFS:3:2,bogus,bpf-map=7:1,http=EIO:2", 1), 0);
	for (int i = 0; i < 8; i++)
		got[i] = mcf_fault("netlink");
	/* every 3rd call, twice in all */
	assert_int_equal(got[2], -ENOBUFS);
	assert_int_equal(got[5], -ENOBUFS);
	for (int i = 0; i < 8; i++)
		if (i != 2 && i != 5)
			assert_int_equal(got[i], 0);
	assert_int_equal(mcf_fault("netlink"), 0); /* the 9th: the limit is reached */
	/* a number for the errno, every call, no limit */
	for (int i = 0; i < 5; i++)
		assert_int_equal(mcf_fault("bpf-map"), -7);
	assert_int_equal(mcf_fault("http"), 0);
	assert_int_equal(mcf_fault("http"), -EIO);
	assert_int_equal(mcf_fault("unknown"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_faults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
