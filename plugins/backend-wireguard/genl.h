/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * WireGuard's generic netlink family as the backend uses it: WG_CMD_SET_DEVICE messages with
 * explicit flags per peer, chunked so that no message exceeds MCW_MESSAGE_MAX (a peer's
 * allowed IPs continue in the next message without the replace flag), and the parser of
 * WG_CMD_GET_DEVICE dumps (whose peers and allowed IPs may continue across messages too).
 * transport.c holds the socket: the only code that talks to the kernel (the unit tests
 * replace it with --wrap).
 */
#ifndef MCW_GENL_H
#define MCW_GENL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/netlink.h>

#include <meshcrypt/model.h>

#include "wgkey.h"

struct nl_msg;

/* Largest message built: well under a page-sized socket buffer of any netlink user. */
#define MCW_MESSAGE_MAX 8192

/* A peer as the device holds it (dump) or as a change wants it. */
struct mcw_peer {
	uint8_t public_key[MCW_KEY_LEN];
	struct mc_ip endpoint; /* family 0: none */
	uint16_t port;
	struct mc_prefix *allowed; /* sorted (mc_prefix_compare), owned */
	size_t n_allowed;
	int64_t last_handshake_sec; /* dumps only */
	uint64_t rx_bytes, tx_bytes;
};

void mcw_peer_clear(struct mcw_peer *p);

/* What one set_device call changes. */
struct mcw_peer_change {
	const struct mcw_peer *peer;
	bool remove;          /* WGPEER_F_REMOVE_ME: everything else is ignored */
	bool set_endpoint;
	bool replace_allowed; /* WGPEER_F_REPLACE_ALLOWEDIPS with peer->allowed */
};

struct mcw_device_change {
	const char *ifname;
	const uint8_t *private_key; /* NULL: unchanged */
	int listen_port;            /* -1: unchanged */
	const struct mcw_peer_change *peers;
	size_t n_peers;
};

/* Called with each message built; takes ownership of msg. Returns 0 or -errno to stop. */
typedef int (*mcw_msg_sink)(struct nl_msg *msg, void *userdata);

/*
 * Builds the WG_CMD_SET_DEVICE messages of change for family (the resolved genl id) and hands
 * each to sink, in order. Returns 0, -ENOMEM, -E2BIG (a single allowed IP does not fit, which
 * cannot happen with MCW_MESSAGE_MAX) or sink's error.
 */
int mcw_set_device_messages(int family, const struct mcw_device_change *change,
			    mcw_msg_sink sink, void *userdata);

/* A WireGuard device as a dump shows it. */
struct mcw_device {
	int listen_port;
	bool has_private_key;
	uint8_t public_key[MCW_KEY_LEN];
	struct mcw_peer *peers;
	size_t n_peers, cap_peers;
};

void mcw_device_clear(struct mcw_device *d);

/* Adds one message of a WG_CMD_GET_DEVICE dump to d (peers continued from the previous
 * message are merged). 0, -EBADMSG or -ENOMEM. */
int mcw_device_parse(const struct nlmsghdr *h, struct mcw_device *d);

/* ---- transport (transport.c) ---- */

struct mcw_genl;

/* Resolves the "wireguard" family: NULL with errno ENOENT when the module is missing. */
struct mcw_genl *mcw_genl_open(void);
void mcw_genl_close(struct mcw_genl *g);
int mcw_genl_family(const struct mcw_genl *g);
/* Sends msg, waits for its acknowledgement; frees msg. 0 or the kernel's -errno. */
int mcw_genl_transact(struct mcw_genl *g, struct nl_msg *msg);
/* Dumps device ifname into d. 0 or -errno (-ENODEV: no such device). */
int mcw_genl_get_device(struct mcw_genl *g, const char *ifname, struct mcw_device *d);

#endif
