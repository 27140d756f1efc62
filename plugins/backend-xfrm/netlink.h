/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The xfrm objects of DESIGN.md §6 as the backend models them, their netlink messages, and
 * the transport that carries those messages (transport.c: the only code that talks to the
 * kernel, which the unit tests replace with the linker's --wrap).
 *
 * Policy messages are built with libnl-xfrm; state messages with libnl's generic nlmsg/nla
 * calls over the kernel's UAPI structs, since libnl-xfrm's state objects copy the key into
 * heap buffers they free without wiping; and everything the kernel sends is parsed over the
 * UAPI structs, since libnl 3.7's parsers leak and keep keys (docs/ipsec.md).
 */
#ifndef MCX_NETLINK_H
#define MCX_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/netlink.h>
#include <linux/xfrm.h>

#include <meshcrypt/model.h>

#include "keys.h"

struct nl_msg;
struct nl_sock;

/* An ESP tunnel-mode state with AEAD rfc4106(gcm(aes)), ESN and a replay window. Identity
 * in the kernel: (family, dst, spi, mark under mask). */
struct mcx_sa {
	struct mc_ip src, dst;
	uint32_t spi;
	uint32_t reqid;
	uint32_t mark, mark_mask; /* 0, 0 for out states */
	uint32_t replay_window;
	bool esn;
	bool lifetime_infinite; /* no byte, packet or time limit */
	bool algo_ok;           /* rfc4106(gcm(aes)) with a 128-bit ICV */
	uint8_t key_len;
	uint8_t key[MCX_KEY_MAX];
	/* The sequence number an out state starts after (its ESN oseq when added: 0 sends 1
	 * first). Parsed: the kernel's oseq less the packets the state sent (xfrm_output_one
	 * counts both together), so the state's last sequence number is always initial_seq +
	 * packets sent, which a deletion or expiry notification tells (mcx_sa_parse_gone). */
	uint64_t initial_seq;
};

/* A policy whose one template is an ESP tunnel with our reqid. Identity in the kernel:
 * (dir, selector, mark under mask). Selector: any source -> dst (same family). */
struct mcx_sp {
	uint8_t dir;            /* XFRM_POLICY_OUT, _IN, _FWD */
	struct mc_prefix dst;
	uint32_t mark, mark_mask;
	uint32_t priority;
	struct mc_ip tmpl_src;  /* all zeros of the family: any (in and fwd) */
	struct mc_ip tmpl_dst;
	uint32_t tmpl_spi;      /* 0: any (in and fwd) */
	uint32_t reqid;
};

/* Whether two objects are the same kernel object (their identities are equal). */
bool mcx_sa_same_id(const struct mcx_sa *a, const struct mcx_sa *b);
bool mcx_sp_same_id(const struct mcx_sp *a, const struct mcx_sp *b);
/* Whether the kernel's object `have` is what `want` says, in every field we set. */
bool mcx_sa_equal(const struct mcx_sa *want, const struct mcx_sa *have);
bool mcx_sp_equal(const struct mcx_sp *want, const struct mcx_sp *have);

/*
 * Messages. On success *out is a new message for mcx_nl_transact() (which frees it). type is
 * XFRM_MSG_NEWSA or XFRM_MSG_UPDSA, XFRM_MSG_NEWPOLICY or XFRM_MSG_UPDPOLICY. Returns 0,
 * -ENOMEM or -EINVAL.
 */
int mcx_sa_message(const struct mcx_sa *sa, int type, struct nl_msg **out);
int mcx_sa_delete_message(const struct mcx_sa *sa, struct nl_msg **out);
int mcx_sp_message(const struct mcx_sp *sp, int type, struct nl_msg **out);
int mcx_sp_delete_message(const struct mcx_sp *sp, struct nl_msg **out);

/*
 * Parsers of the kernel's messages (dump replies; XFRM_MSG_NEWSA, _UPDSA, _NEWPOLICY,
 * _UPDPOLICY notifications). 0 when the message holds an object of reqid, -ENOENT when it
 * holds someone else's (or one we do not model), -EBADMSG when it is malformed. The caller
 * wipes a parsed state's key.
 */
int mcx_sa_parse(const struct nlmsghdr *h, uint32_t reqid, struct mcx_sa *out);
int mcx_sp_parse(const struct nlmsghdr *h, uint32_t reqid, struct mcx_sp *out);

/*
 * Whether a notification (XFRM_MSG_DELSA, or a hard XFRM_MSG_EXPIRE) says that a state of
 * reqid is gone; *gone receives its identity (addresses, spi, mark) and *sent how many
 * packets it sent. Its last sequence number is the initial_seq it was added with (or parsed
 * with) plus *sent: a state restored under the same SPI and key must continue after it, as
 * the peer's replay window drops a restart from 1. An expiry carries no replay state
 * (build_expire() in the kernel), hence the count. 0 or -ENOENT.
 */
int mcx_sa_parse_gone(const struct nlmsghdr *h, uint32_t reqid, struct mcx_sa *gone,
		      uint64_t *sent);

/* ---- transport (transport.c) ---- */

/* A netlink socket for requests and dumps, with a receive buffer that is wiped after use
 * (dumps of states carry keys). */
struct mcx_nl;

/* NETLINK_XFRM, acknowledgements capped (the kernel does not echo a request, key and all,
 * in an error). Returns NULL with errno. */
struct mcx_nl *mcx_nl_open(void);
void mcx_nl_close(struct mcx_nl *nl);

/* Sends msg and waits for its acknowledgement; always frees msg, wiping it first. Returns 0
 * or the kernel's -errno (-EEXIST, -ENOENT, ...). */
int mcx_nl_transact(struct mcx_nl *nl, struct nl_msg *msg);

typedef int (*mcx_dump_fn)(const struct nlmsghdr *h, void *userdata);
/* Dumps XFRM_MSG_GETSA or XFRM_MSG_GETPOLICY, calling fn for each object; fn returns 0 or
 * -errno to stop. Returns 0 or -errno. */
int mcx_nl_dump(struct mcx_nl *nl, uint16_t type, mcx_dump_fn fn, void *userdata);

/* The local port of the request socket: notifications of our own changes carry it. */
uint32_t mcx_nl_port(const struct mcx_nl *nl);

/* A non-blocking socket subscribed to the xfrm groups of states, policies and expiries.
 * Returns the fd or -errno. */
int mcx_nl_monitor_open(void);
/* Reads every pending notification; *foreign tells whether one came from someone else (not
 * own_port: the kernel's expiries, an operator's `ip xfrm`) or some were lost; fn (if any)
 * sees each of those. 0 or -errno. */
int mcx_nl_monitor_read(int fd, uint32_t own_port, bool *foreign, mcx_dump_fn fn,
			void *userdata);

#endif
