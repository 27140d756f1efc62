/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backends' netlink receive loop (plugins/netlink-common/nl-request.c, included for its
 * static receive()) on datagrams from a socket pair, on the inputs its fuzz harnesses found
 * wrong (tests/fuzz/regressions/xfrm-netlink/).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/xfrm.h>

#include <cmocka.h>

#include "../../plugins/netlink-common/nl-request.c"

#define SEQ 1001

static int fds[2];
static uint8_t buf[4096];

static int setup(void **state)
{
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds), 0);
	memset(buf, 0, sizeof(buf));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(fds[0]);
	close(fds[1]);
	return 0;
}

/* Appends a message of len bytes (header included, at least 16) to *at. */
static uint8_t *put_message(uint8_t *at, uint32_t len, uint16_t type, uint16_t flags)
{
	struct nlmsghdr h = { .nlmsg_len = len, .nlmsg_type = type, .nlmsg_flags = flags,
			      .nlmsg_seq = SEQ };

	memset(at, 0, NLMSG_ALIGN(len));
	memcpy(at, &h, sizeof(h));
	return at + NLMSG_ALIGN(len);
}

static void send_datagram(const uint8_t *start, const uint8_t *end)
{
	assert_int_equal(send(fds[1], start, (size_t)(end - start), 0), end - start);
}

/* A message that carries an error, as the kernel's acknowledgement or the end of a dump. */
static void send_error(uint16_t type, int error)
{
	uint8_t d[64], *end = put_message(d, type == NLMSG_ERROR ? 36 : 20, type, 0);

	memcpy(d + NLMSG_HDRLEN, &error, sizeof(error));
	send_datagram(d, end);
}

static int count(const struct nlmsghdr *h, void *userdata)
{
	(*(int *)userdata)++;
	return 0;
}

/* An error is the kernel's -errno, or -EBADMSG when it is none: positive, it passed for
 * success; INT_MIN overflowed the callers' -r (regressions/xfrm-netlink/error-positive,
 * error-beyond-errno-range, done-int-min). */
static void test_errors(void **state)
{
	static const struct {
		uint16_t type;
		int error, want;
	} cases[] = {
		{ NLMSG_ERROR, 0, 0 },
		{ NLMSG_ERROR, -EEXIST, -EEXIST },
		{ NLMSG_ERROR, 5, -EBADMSG },
		{ NLMSG_ERROR, -0x0f000001, -EBADMSG },
		{ NLMSG_DONE, -EINTR, -EINTR },
		{ NLMSG_DONE, INT_MIN, -EBADMSG },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		send_error(cases[i].type, cases[i].error);
		assert_int_equal(receive(fds[0], SEQ, buf, sizeof(buf), NULL, NULL), cases[i].want);
	}
}

/* A datagram whose last message is not padded to 4 bytes ends the walk there; the walk does
 * not go on into what an earlier, longer datagram left in the buffer, which it read as
 * messages again (regressions/xfrm-netlink/last-message-unaligned). */
static void test_unpadded_last_message(void **state)
{
	uint8_t d[64], *end;
	int n = 0;

	(void)state;
	end = put_message(d, 20, XFRM_MSG_NEWSA, NLM_F_MULTI);
	end = put_message(end, 20, XFRM_MSG_NEWSA, NLM_F_MULTI);
	send_datagram(d, end);
	end = put_message(d, 17, XFRM_MSG_NEWSA, NLM_F_MULTI);
	send_datagram(d, d + 17);
	end = put_message(d, 20, NLMSG_DONE, NLM_F_MULTI);
	send_datagram(d, end);
	assert_int_equal(receive(fds[0], SEQ, buf, sizeof(buf), count, &n), 0);
	assert_int_equal(n, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpadded_last_message, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
