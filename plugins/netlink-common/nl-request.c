/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "nl-request.h"

#include "fault.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

/* An error a message carries, as -errno: anything else (positive, or beyond the errno range,
 * which no kernel sends) would pass for success with callers that test r < 0, or overflow
 * their -r. */
static int message_errno(int e)
{
	return e <= 0 && e >= -4095 ? e : -EBADMSG;
}

/* Reads replies to seq until an acknowledgement or the end of a dump, calling fn (if any)
 * for each other message. Returns 0 or -errno. */
static int receive(int fd, uint32_t seq, uint8_t *buf, size_t size, mcn_msg_fn fn,
		   void *userdata)
{
	size_t used = 0;
	int r = 0;

	for (;;) {
		ssize_t n = recv(fd, buf, size, 0);
		/* int, as NLMSG_OK() and NLMSG_NEXT() take it: an unsigned count wraps after a last
		 * message whose length is not a multiple of 4, and the walk goes on past the bytes
		 * received. */
		int left;
		bool done = false;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		used = used > (size_t)n ? used : (size_t)n;
		left = (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left);
		     h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE) {
				/* A dump that failed on the way ends with its error here. */
				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) && r == 0 &&
				    *(const int *)NLMSG_DATA(h) < 0)
					r = message_errno(*(const int *)NLMSG_DATA(h));
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					r = -EBADMSG;
				else if (r == 0)
					r = message_errno(e->error);
				done = true;
				break;
			}
			if (fn && r == 0)
				r = fn(h, userdata);
			if (!(h->nlmsg_flags & NLM_F_MULTI)) {
				done = true;
				break;
			}
		}
		if (done)
			break;
	}
	explicit_bzero(buf, used);
	return r;
}

int mcn_transact(struct nl_sock *sk, struct nl_msg *msg, uint8_t *buf, size_t size)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	int r = mcf_fault("netlink");

	if (r < 0) { /* as if the kernel had refused it */
		explicit_bzero(h, h->nlmsg_len);
		nlmsg_free(msg);
		return r;
	}
	nl_complete_msg(sk, msg);
	h->nlmsg_flags |= NLM_F_ACK;
	r = nl_send(sk, msg) < 0 ? -EIO : receive(nl_socket_get_fd(sk), h->nlmsg_seq, buf, size,
						  NULL, NULL);
	explicit_bzero(h, h->nlmsg_len);
	nlmsg_free(msg);
	return r;
}

int mcn_dump(struct nl_sock *sk, struct nl_msg *msg, uint8_t *buf, size_t size, mcn_msg_fn fn,
	     void *userdata)
{
	uint32_t seq;
	int r;

	nl_complete_msg(sk, msg);
	seq = nlmsg_hdr(msg)->nlmsg_seq;
	r = nl_send(sk, msg);
	nlmsg_free(msg);
	return r < 0 ? -EIO : receive(nl_socket_get_fd(sk), seq, buf, size, fn, userdata);
}
