/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the netlink harnesses share: the backends' receive loop (receive() of
 * plugins/netlink-common/nl-request.c, included here with recv() and explicit_bzero() replaced)
 * fed with a fuzz input as datagrams, as a dump reply arrives from the kernel.
 *
 * Input: one byte, then netlink messages. The byte's low 7 bits are how many messages each
 * datagram holds (0: all of them in one); bit 7 makes the first recv() fail with EINTR. The
 * messages are cut where the loop's own walk (NLMSG_OK, NLMSG_NEXT) would cut them; bytes after
 * the last whole message go into the last datagram. The sequence number of the dump is that
 * of the first message, so that the messages the fuzzer grows from a seed are the dump's.
 * After the last datagram recv() fails with EAGAIN, where the kernel would make it wait.
 *
 * Each datagram is copied to the start of a page-aligned receive buffer, as recv() writes it,
 * and the rest of the buffer is poisoned for ASan. What the loop hands on must lie within the
 * datagram and be a message of the dump that is neither its end nor an error, and nothing may
 * come after the callback failed, whose failure must fail the loop; the loop must return 0 or
 * -errno and leave the buffer wiped.
 * Each message handed on is copied once more, to end where an unmapped page begins, and
 * parsed there: a read past its end, even by libnl (not built with ASan), is a SIGSEGV.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <sanitizer/asan_interface.h>

#include "fuzz.h"

#define FUZZ_NL_MAX (64 * 1024)

static ssize_t fuzz_recv(int fd, void *buf, size_t size, int flags);
static void fuzz_wipe(void *p, size_t n);

/* The system headers came first, so only the calls of nl-request.c are replaced. */
#define recv fuzz_recv
#define explicit_bzero fuzz_wipe
#include "nl-request.c"
#undef recv
#undef explicit_bzero

static struct {
	const uint8_t *stream;
	size_t start[FUZZ_NL_MAX / NLMSG_HDRLEN + 2], len[FUZZ_NL_MAX / NLMSG_HDRLEN + 2];
	size_t n, next;
	bool eintr;
	uint8_t *buf;   /* the receive buffer handed to receive() */
	size_t current; /* length of the datagram in it */
	size_t used;    /* the longest datagram so far */
} dg;

static _Alignas(4096) uint8_t receive_buffer[FUZZ_NL_MAX + 4096];

static ssize_t fuzz_recv(int fd, void *buf, size_t size, int flags)
{
	size_t n;

	(void)fd;
	(void)flags;
	FUZZ_CHECK(buf == dg.buf && size == sizeof(receive_buffer));
	if (dg.eintr) {
		dg.eintr = false;
		errno = EINTR;
		return -1;
	}
	if (dg.next == dg.n) {
		errno = EAGAIN;
		return -1;
	}
	n = dg.len[dg.next];
	ASAN_UNPOISON_MEMORY_REGION(buf, size);
	memcpy(buf, dg.stream + dg.start[dg.next++], n);
	ASAN_POISON_MEMORY_REGION((uint8_t *)buf + n, size - n);
	dg.current = n;
	dg.used = dg.used > n ? dg.used : n;
	return (ssize_t)n;
}

static void fuzz_wipe(void *p, size_t n)
{
	ASAN_UNPOISON_MEMORY_REGION(p, n);
	explicit_bzero(p, n);
}

/* A copy of each message that ends where an unmapped page begins (NLMSG_ALIGNTO-aligned, so
 * up to 3 bytes short of it). */
static const struct nlmsghdr *guarded_copy(const struct nlmsghdr *h)
{
	static uint8_t *region;
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = FUZZ_NL_MAX + page;
	uint8_t *at;

	if (!region) {
		region = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		FUZZ_CHECK(region != MAP_FAILED);
		FUZZ_CHECK(mprotect(region + size, page, PROT_NONE) == 0);
	}
	at = region + size - NLMSG_ALIGN(h->nlmsg_len);
	memcpy(at, h, h->nlmsg_len);
	return (const struct nlmsghdr *)at;
}

static uint32_t read_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

struct fuzz_nl_walk {
	uint32_t seq;
	int (*parse)(const struct nlmsghdr *h, void *userdata);
	void *userdata;
	int failed; /* the callback's error, after which it must not be called */
};

static int on_message(const struct nlmsghdr *h, void *userdata)
{
	struct fuzz_nl_walk *w = userdata;
	const uint8_t *p = (const uint8_t *)h;
	int r;

	FUZZ_CHECK(!w->failed);
	FUZZ_CHECK(p >= dg.buf && p + NLMSG_HDRLEN <= dg.buf + dg.current);
	FUZZ_CHECK(h->nlmsg_len >= NLMSG_HDRLEN &&
		   h->nlmsg_len <= (size_t)(dg.buf + dg.current - p));
	FUZZ_CHECK(h->nlmsg_seq == w->seq);
	FUZZ_CHECK(h->nlmsg_type != NLMSG_DONE && h->nlmsg_type != NLMSG_ERROR);
	r = w->parse(guarded_copy(h), w->userdata);
	FUZZ_CHECK(r <= 0);
	w->failed = r;
	return r;
}

/*
 * Runs the receive loop over the input, calling parse for each message of the dump (as
 * mcn_dump() calls the backends' callbacks); parse returns 0 or -errno to stop, as theirs do.
 * Returns the loop's result.
 */
static int fuzz_nl_receive(const uint8_t *data, size_t size,
			   int (*parse)(const struct nlmsghdr *h, void *userdata), void *userdata)
{
	struct fuzz_nl_walk w = { .parse = parse, .userdata = userdata };
	size_t len, at = 0, begin = 0, count = 0, per;
	int r;

	if (size < 1)
		return 0;
	per = data[0] & 0x7f;
	dg.eintr = data[0] & 0x80;
	dg.stream = data + 1;
	len = size - 1 < FUZZ_NL_MAX ? size - 1 : FUZZ_NL_MAX;
	dg.n = dg.next = dg.used = dg.current = 0;
	dg.buf = receive_buffer;
	if (len >= NLMSG_HDRLEN)
		w.seq = read_u32(dg.stream + offsetof(struct nlmsghdr, nlmsg_seq));
	/* the walk of NLMSG_OK() and NLMSG_NEXT(), over bytes that need not be aligned */
	while (len - at >= NLMSG_HDRLEN) {
		uint32_t mlen = read_u32(dg.stream + at);

		if (mlen < NLMSG_HDRLEN || mlen > len - at)
			break;
		at += NLMSG_ALIGN(mlen) < len - at ? NLMSG_ALIGN(mlen) : len - at;
		if (per && ++count % per == 0) {
			dg.start[dg.n] = begin;
			dg.len[dg.n++] = at - begin;
			begin = at;
		}
	}
	if (len > begin || dg.n == 0) {
		dg.start[dg.n] = begin;
		dg.len[dg.n++] = len - begin;
	}

	r = receive(-1, w.seq, dg.buf, sizeof(receive_buffer), on_message, &w);
	ASAN_UNPOISON_MEMORY_REGION(dg.buf, sizeof(receive_buffer));
	/* 0 or -errno, whatever the messages say */
	FUZZ_CHECK(r <= 0 && r >= -4095);
	FUZZ_CHECK(!w.failed || r < 0);
	/* wiped: dumps of states carry keys */
	for (size_t i = 0; i < dg.used; i++)
		FUZZ_CHECK(dg.buf[i] == 0);
	return r;
}
