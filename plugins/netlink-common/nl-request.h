/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Netlink requests as the backends need them, on a libnl socket: send, then read the replies
 * into a caller's buffer that is wiped afterwards (dumps of xfrm states and WireGuard devices
 * carry keys, and libnl's own receive path frees its buffers without wiping them), and return
 * the kernel's own errno (libnl's error codes lose it: EEXIST and ENOENT are reconcile
 * signals). A static library of the backends, hidden visibility.
 */
#ifndef MC_NL_REQUEST_H
#define MC_NL_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <linux/netlink.h>

struct nl_msg;
struct nl_sock;

typedef int (*mcn_msg_fn)(const struct nlmsghdr *h, void *userdata);

/* Sends msg with NLM_F_ACK and waits for the acknowledgement; always wipes and frees msg.
 * Returns 0 or the kernel's -errno. */
int mcn_transact(struct nl_sock *sk, struct nl_msg *msg, uint8_t *buf, size_t size);

/* Sends msg (a dump request: NLM_F_DUMP set by the caller) and calls fn for each message of
 * the reply until NLMSG_DONE; frees msg. fn returns 0 or -errno to stop. 0 or -errno. fn must
 * not send requests on the same socket: their receive would eat the rest of the dump. */
int mcn_dump(struct nl_sock *sk, struct nl_msg *msg, uint8_t *buf, size_t size, mcn_msg_fn fn,
	     void *userdata);

#endif
