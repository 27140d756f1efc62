/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "genl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <linux/wireguard.h>

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

/* Attribute sizes, for the room checks: a peer's head and one allowed IP. */
#define PEER_HEAD (4 + (4 + MCW_KEY_LEN) + (4 + 4) + (4 + 28) + 4)
#define ALLOWED_IP (4 + 8 + (4 + 16) + 8)
#define CLOSING 64

void mcw_peer_clear(struct mcw_peer *p)
{
	free(p->allowed);
	memset(p, 0, sizeof(*p));
}

void mcw_device_clear(struct mcw_device *d)
{
	for (size_t i = 0; i < d->n_peers; i++)
		mcw_peer_clear(&d->peers[i]);
	free(d->peers);
	memset(d, 0, sizeof(*d));
}

/* ---- building ---- */

struct builder {
	int family;
	const struct mcw_device_change *change;
	mcw_msg_sink sink;
	void *userdata;
	struct nl_msg *msg;
	struct nlattr *peers, *peer, *ips;
	bool first;
};

static size_t used(const struct builder *b)
{
	return nlmsg_hdr(b->msg)->nlmsg_len;
}

static bool room(const struct builder *b, size_t need)
{
	return used(b) + need + CLOSING <= MCW_MESSAGE_MAX;
}

static int start_message(struct builder *b)
{
	const struct mcw_device_change *c = b->change;

	b->msg = nlmsg_alloc_size(MCW_MESSAGE_MAX + 256);
	if (!b->msg)
		return -ENOMEM;
	b->peer = b->ips = b->peers = NULL;
	if (!genlmsg_put(b->msg, NL_AUTO_PORT, NL_AUTO_SEQ, b->family, 0, 0, WG_CMD_SET_DEVICE,
			 WG_GENL_VERSION) ||
	    nla_put_string(b->msg, WGDEVICE_A_IFNAME, c->ifname) < 0)
		return -ENOMEM;
	if (b->first && c->private_key &&
	    nla_put(b->msg, WGDEVICE_A_PRIVATE_KEY, MCW_KEY_LEN, c->private_key) < 0)
		return -ENOMEM;
	if (b->first && c->listen_port >= 0 &&
	    nla_put_u16(b->msg, WGDEVICE_A_LISTEN_PORT, (uint16_t)c->listen_port) < 0)
		return -ENOMEM;
	b->first = false;
	if (c->n_peers && !(b->peers = nla_nest_start(b->msg, WGDEVICE_A_PEERS)))
		return -ENOMEM;
	return 0;
}

/* Closes the open nests and hands the message over. */
static int finish_message(struct builder *b)
{
	struct nl_msg *msg = b->msg;
	struct nlmsghdr *h;

	if (b->ips)
		nla_nest_end(msg, b->ips);
	if (b->peer)
		nla_nest_end(msg, b->peer);
	if (b->peers)
		nla_nest_end(msg, b->peers);
	b->msg = NULL;
	b->peer = b->ips = b->peers = NULL;
	h = nlmsg_hdr(msg);
	if (h->nlmsg_len > MCW_MESSAGE_MAX) {
		explicit_bzero(h, h->nlmsg_len);
		nlmsg_free(msg);
		return -E2BIG;
	}
	return b->sink(msg, b->userdata);
}

static int put_endpoint(struct nl_msg *msg, const struct mcw_peer *p)
{
	if (p->endpoint.family == AF_INET) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(p->port) };

		memcpy(&sin.sin_addr, p->endpoint.addr, 4);
		return nla_put(msg, WGPEER_A_ENDPOINT, sizeof(sin), &sin);
	}
	if (p->endpoint.family == AF_INET6) {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(p->port) };

		memcpy(&sin6.sin6_addr, p->endpoint.addr, 16);
		return nla_put(msg, WGPEER_A_ENDPOINT, sizeof(sin6), &sin6);
	}
	return 0;
}

/* Opens a peer's nest; a continuation only adds allowed IPs (no flags to replace them, no
 * endpoint), so the kernel appends to what the previous message set. */
static int begin_peer(struct builder *b, const struct mcw_peer_change *pc, bool continuation)
{
	const struct mcw_peer *p = pc->peer;
	uint32_t flags = pc->remove ? WGPEER_F_REMOVE_ME :
		       pc->replace_allowed && !continuation ? WGPEER_F_REPLACE_ALLOWEDIPS : 0;
	int r;

	if (!room(b, PEER_HEAD + ALLOWED_IP)) {
		if ((r = finish_message(b)) < 0 || (r = start_message(b)) < 0)
			return r;
	}
	if (!(b->peer = nla_nest_start(b->msg, 0)) ||
	    nla_put(b->msg, WGPEER_A_PUBLIC_KEY, MCW_KEY_LEN, p->public_key) < 0 ||
	    (flags && nla_put_u32(b->msg, WGPEER_A_FLAGS, flags) < 0) ||
	    (!pc->remove && pc->set_endpoint && !continuation && put_endpoint(b->msg, p) < 0))
		return -ENOMEM;
	if (!pc->remove && pc->replace_allowed && p->n_allowed &&
	    !(b->ips = nla_nest_start(b->msg, WGPEER_A_ALLOWEDIPS)))
		return -ENOMEM;
	return 0;
}

static int put_allowed(struct builder *b, const struct mc_prefix *a)
{
	struct nlattr *ip = nla_nest_start(b->msg, 0);

	if (!ip || nla_put_u16(b->msg, WGALLOWEDIP_A_FAMILY, a->ip.family) < 0 ||
	    nla_put(b->msg, WGALLOWEDIP_A_IPADDR, a->ip.family == AF_INET ? 4 : 16, a->ip.addr) < 0 ||
	    nla_put_u8(b->msg, WGALLOWEDIP_A_CIDR_MASK, a->len) < 0)
		return -ENOMEM;
	nla_nest_end(b->msg, ip);
	return 0;
}

int mcw_set_device_messages(int family, const struct mcw_device_change *change,
			    mcw_msg_sink sink, void *userdata)
{
	struct builder b = { .family = family, .change = change, .sink = sink,
			     .userdata = userdata, .first = true };
	int r = start_message(&b);

	for (size_t i = 0; r == 0 && i < change->n_peers; i++) {
		const struct mcw_peer_change *pc = &change->peers[i];

		r = begin_peer(&b, pc, false);
		for (size_t j = 0; r == 0 && b.ips && j < pc->peer->n_allowed; j++) {
			if (!room(&b, ALLOWED_IP)) {
				if ((r = finish_message(&b)) < 0 || (r = start_message(&b)) < 0 ||
				    (r = begin_peer(&b, pc, true)) < 0)
					break;
			}
			r = put_allowed(&b, &pc->peer->allowed[j]);
		}
		if (r == 0) {
			if (b.ips)
				nla_nest_end(b.msg, b.ips);
			nla_nest_end(b.msg, b.peer);
			b.ips = b.peer = NULL;
		}
	}
	if (r == 0)
		return finish_message(&b);
	if (b.msg) {
		explicit_bzero(nlmsg_hdr(b.msg), nlmsg_hdr(b.msg)->nlmsg_len);
		nlmsg_free(b.msg);
	}
	return r;
}

/* ---- parsing ---- */

/*
 * The attributes read with nla_get_u8() and nla_get_u16(), which read their size whatever the
 * attribute holds: only a policy makes libnl check that they hold it (as the kernel's own
 * policy does), else a short one at the end of a message is read past it.
 */
static const struct nla_policy device_policy[WGDEVICE_A_MAX + 1] = {
	[WGDEVICE_A_LISTEN_PORT] = { .type = NLA_U16 },
};
static const struct nla_policy allowedip_policy[WGALLOWEDIP_A_MAX + 1] = {
	[WGALLOWEDIP_A_FAMILY] = { .type = NLA_U16 },
	[WGALLOWEDIP_A_CIDR_MASK] = { .type = NLA_U8 },
};

static int prefix_compare(const void *a, const void *b)
{
	return mc_prefix_compare(a, b);
}

static int parse_allowed(struct nlattr *list, struct mcw_peer *p)
{
	struct nlattr *ip;
	int rem;

	nla_for_each_nested(ip, list, rem) {
		struct nlattr *tb[WGALLOWEDIP_A_MAX + 1];
		struct mc_prefix pre;
		struct mc_prefix *v;
		uint16_t family;
		size_t len;

		if (nla_parse_nested(tb, WGALLOWEDIP_A_MAX, ip, allowedip_policy) < 0 ||
		    !tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] ||
		    !tb[WGALLOWEDIP_A_CIDR_MASK])
			return -EBADMSG;
		family = nla_get_u16(tb[WGALLOWEDIP_A_FAMILY]);
		len = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
		if (!len || nla_len(tb[WGALLOWEDIP_A_IPADDR]) != (int)len)
			continue;
		memset(&pre, 0, sizeof(pre));
		pre.ip.family = (uint8_t)family;
		memcpy(pre.ip.addr, nla_data(tb[WGALLOWEDIP_A_IPADDR]), len);
		pre.len = nla_get_u8(tb[WGALLOWEDIP_A_CIDR_MASK]);
		/* As the kernel holds them, so that they compare as prefixes: none longer than its
		 * address (the kernel refuses one), no bits set beyond it (it clears them). */
		if (pre.len > len * 8)
			continue;
		for (unsigned bit = pre.len; bit < len * 8; bit++)
			pre.ip.addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
		v = realloc(p->allowed, (p->n_allowed + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->allowed = v;
		p->allowed[p->n_allowed++] = pre;
	}
	/* A peer without allowed IPs (an empty nest, as the kernel sends it) has no array:
	 * qsort() of NULL is undefined even for no elements. */
	if (p->n_allowed)
		qsort(p->allowed, p->n_allowed, sizeof(*p->allowed), prefix_compare);
	return 0;
}

static int parse_peer(struct nlattr *attr, struct mcw_device *d)
{
	struct nlattr *tb[WGPEER_A_MAX + 1];
	struct mcw_peer *p;

	if (nla_parse_nested(tb, WGPEER_A_MAX, attr, NULL) < 0 || !tb[WGPEER_A_PUBLIC_KEY] ||
	    nla_len(tb[WGPEER_A_PUBLIC_KEY]) != MCW_KEY_LEN)
		return -EBADMSG;
	/* The same key as the last peer: its allowed IPs continue from the previous message. */
	if (d->n_peers &&
	    memcmp(d->peers[d->n_peers - 1].public_key, nla_data(tb[WGPEER_A_PUBLIC_KEY]),
		   MCW_KEY_LEN) == 0) {
		p = &d->peers[d->n_peers - 1];
	} else {
		if (d->n_peers == d->cap_peers) {
			size_t cap = d->cap_peers ? 2 * d->cap_peers : 16;
			struct mcw_peer *v = realloc(d->peers, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			d->peers = v;
			d->cap_peers = cap;
		}
		p = &d->peers[d->n_peers++];
		memset(p, 0, sizeof(*p));
		memcpy(p->public_key, nla_data(tb[WGPEER_A_PUBLIC_KEY]), MCW_KEY_LEN);
	}
	if (tb[WGPEER_A_ENDPOINT]) {
		const struct sockaddr *sa = nla_data(tb[WGPEER_A_ENDPOINT]);
		int len = nla_len(tb[WGPEER_A_ENDPOINT]);

		/* the length first: sa_family may lie past a short attribute */
		if (len >= (int)sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)sa;

			/* whole: a peer continued from the previous message may hold an IPv6 one */
			p->endpoint = (struct mc_ip){ .family = AF_INET };
			memcpy(p->endpoint.addr, &sin->sin_addr, 4);
			p->port = ntohs(sin->sin_port);
		} else if (len >= (int)sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)sa;

			p->endpoint.family = AF_INET6;
			memcpy(p->endpoint.addr, &sin6->sin6_addr, 16);
			p->port = ntohs(sin6->sin6_port);
		}
	}
	if (tb[WGPEER_A_LAST_HANDSHAKE_TIME] &&
	    nla_len(tb[WGPEER_A_LAST_HANDSHAKE_TIME]) >= (int)sizeof(int64_t))
		memcpy(&p->last_handshake_sec, nla_data(tb[WGPEER_A_LAST_HANDSHAKE_TIME]),
		       sizeof(int64_t));
	if (tb[WGPEER_A_RX_BYTES])
		p->rx_bytes = nla_get_u64(tb[WGPEER_A_RX_BYTES]);
	if (tb[WGPEER_A_TX_BYTES])
		p->tx_bytes = nla_get_u64(tb[WGPEER_A_TX_BYTES]);
	return tb[WGPEER_A_ALLOWEDIPS] ? parse_allowed(tb[WGPEER_A_ALLOWEDIPS], p) : 0;
}

int mcw_device_parse(const struct nlmsghdr *h, struct mcw_device *d)
{
	struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
	int rem, r;

	if (genlmsg_parse((struct nlmsghdr *)h, 0, tb, WGDEVICE_A_MAX, device_policy) < 0)
		return -EBADMSG;
	if (tb[WGDEVICE_A_LISTEN_PORT])
		d->listen_port = nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]);
	if (tb[WGDEVICE_A_PUBLIC_KEY] && nla_len(tb[WGDEVICE_A_PUBLIC_KEY]) == MCW_KEY_LEN)
		memcpy(d->public_key, nla_data(tb[WGDEVICE_A_PUBLIC_KEY]), MCW_KEY_LEN);
	if (tb[WGDEVICE_A_PRIVATE_KEY]) {
		uint8_t zero[MCW_KEY_LEN] = { 0 };

		d->has_private_key = nla_len(tb[WGDEVICE_A_PRIVATE_KEY]) == MCW_KEY_LEN &&
				     memcmp(nla_data(tb[WGDEVICE_A_PRIVATE_KEY]), zero, MCW_KEY_LEN);
	}
	if (!tb[WGDEVICE_A_PEERS])
		return 0;
	nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem)
		if ((r = parse_peer(peer, d)) < 0)
			return r;
	return 0;
}
