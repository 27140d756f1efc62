/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The only code of the backend that talks to the kernel (netlink.h). Replies are read into
 * one locked buffer that is wiped after each call (plugins/netlink-common).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "netlink.h"
#include "nl-request.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define RECV_BUFFER (256 * 1024)

struct mcx_nl {
	struct nl_sock *sk;
	uint8_t *buf;
};

struct mcx_nl *mcx_nl_open(void)
{
	struct mcx_nl *nl = calloc(1, sizeof(*nl));
	int one = 1, r;

	if (!nl)
		return NULL;
	nl->buf = mmap(NULL, RECV_BUFFER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	nl->sk = nl_socket_alloc();
	if (nl->buf == MAP_FAILED || !nl->sk) {
		if (nl->buf == MAP_FAILED)
			nl->buf = NULL;
		mcx_nl_close(nl);
		errno = ENOMEM;
		return NULL;
	}
	(void)mlock(nl->buf, RECV_BUFFER);
	(void)madvise(nl->buf, RECV_BUFFER, MADV_DONTDUMP);
	r = nl_connect(nl->sk, NETLINK_XFRM);
	if (r < 0) {
		mcx_nl_close(nl);
		errno = EPROTONOSUPPORT;
		return NULL;
	}
	(void)setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_CAP_ACK, &one,
			 sizeof(one));
	(void)nl_socket_set_buffer_size(nl->sk, RECV_BUFFER, RECV_BUFFER);
	return nl;
}

void mcx_nl_close(struct mcx_nl *nl)
{
	if (!nl)
		return;
	if (nl->sk)
		nl_socket_free(nl->sk);
	if (nl->buf) {
		explicit_bzero(nl->buf, RECV_BUFFER);
		munmap(nl->buf, RECV_BUFFER);
	}
	free(nl);
}

int mcx_nl_transact(struct mcx_nl *nl, struct nl_msg *msg)
{
	return mcn_transact(nl->sk, msg, nl->buf, RECV_BUFFER);
}

int mcx_nl_dump(struct mcx_nl *nl, uint16_t type, mcx_dump_fn fn, void *userdata)
{
	struct nl_msg *msg = nlmsg_alloc_simple(type, NLM_F_DUMP);

	return msg ? mcn_dump(nl->sk, msg, nl->buf, RECV_BUFFER, fn, userdata) : -ENOMEM;
}

uint32_t mcx_nl_port(const struct mcx_nl *nl)
{
	return nl_socket_get_local_port(nl->sk);
}

int mcx_nl_monitor_open(void)
{
	struct sockaddr_nl sa = {
		.nl_family = AF_NETLINK,
		.nl_groups = XFRMGRP_SA | XFRMGRP_POLICY | XFRMGRP_EXPIRE,
	};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_XFRM);
	int size = RECV_BUFFER;

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int mcx_nl_monitor_read(int fd, uint32_t own_port, bool *foreign, mcx_dump_fn fn,
			void *userdata)
{
	/* Notifications of states carry their keys: read into a buffer that is wiped. */
	static _Thread_local uint8_t buf[64 * 1024];
	ssize_t n;

	*foreign = false;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR)) {
		/* signed: NLMSG_NEXT of an unpadded last message takes it below 0, which must end
		 * the walk rather than wrap (the same as plugins/netlink-common's receive loop) */
		int left = n > 0 ? (int)n : 0;

		for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, left);
		     h = NLMSG_NEXT(h, left))
			if (h->nlmsg_pid != own_port) {
				*foreign = true;
				if (fn)
					(void)fn(h, userdata);
			}
		explicit_bzero(buf, n > 0 ? (size_t)n : 0);
	}
	if (n < 0 && errno == ENOBUFS) {
		*foreign = true; /* lost some: assume the worst */
		return 0;
	}
	return n < 0 && errno != EAGAIN ? -errno : 0;
}
