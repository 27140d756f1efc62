/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the seed inputs of the netlink harnesses (tests/fuzz/run runs it):
 *
 *   netlink-seeds xfrm DIR        dumps of states and policies as the kernel sends them
 *                                 (net/xfrm/xfrm_user.c: dump_one_state, dump_one_policy), of
 *                                 ours (reqid 0x6d63, DESIGN.md §6) and of someone else's; the
 *                                 notifications of a state deleted and expired; the end of a
 *                                 dump that failed, an acknowledgement with an error
 *   netlink-seeds wireguard DIR   WG_CMD_GET_DEVICE dump replies as the kernel's wireguard
 *                                 module builds them (drivers/net/wireguard/netlink.c), a peer
 *                                 continued across messages among them
 *
 * Built over the kernel's UAPI structs, so that the layouts are the kernel's. Each file is one
 * byte (the messages per datagram, fuzz-nl.h) and the messages.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <linux/xfrm.h>

#define SEQ 1001
#define REQID 0x6d63

static uint8_t buf[64 * 1024];
static size_t len;

static void *put(const void *data, size_t n)
{
	uint8_t *at = buf + len;

	if (len + NLMSG_ALIGN(n) > sizeof(buf)) {
		fprintf(stderr, "netlink-seeds: too big\n");
		exit(1);
	}
	if (data)
		memcpy(at, data, n);
	else
		memset(at, 0, n);
	memset(at + n, 0, NLMSG_ALIGN(n) - n);
	len += NLMSG_ALIGN(n);
	return at;
}

static size_t msg_start(uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq,
			      .nlmsg_pid = 4242 };
	size_t at = len;

	put(&h, sizeof(h));
	return at;
}

static void msg_end(size_t at)
{
	uint32_t n = (uint32_t)(len - at);

	memcpy(buf + at, &n, sizeof(n));
}

static void attr(uint16_t type, const void *data, size_t n)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + n), .nla_type = type };

	put(&a, sizeof(a));
	put(data, n);
}

static size_t nest_start(uint16_t type)
{
	size_t at = len;

	attr(type | NLA_F_NESTED, NULL, 0);
	return at;
}

static void nest_end(size_t at)
{
	uint16_t n = (uint16_t)(len - at);

	memcpy(buf + at, &n, sizeof(n));
}

static void done(uint32_t seq, int error)
{
	size_t at = msg_start(NLMSG_DONE, NLM_F_MULTI, seq);

	put(&error, sizeof(error));
	msg_end(at);
}

static void write_seed(const char *dir, const char *name, uint8_t per_datagram)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(&per_datagram, 1, 1, f) != 1 || fwrite(buf, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	len = 0;
}

/* ---- xfrm ---- */

static void addr(xfrm_address_t *a, int family, const char *text)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(family, text, a) != 1)
		exit(1);
}

static const uint8_t key[36] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
				 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33,
				 34, 35 };

struct state {
	int family;
	const char *src, *dst;
	uint32_t spi, reqid, mark, mask, replay_window;
	uint8_t mode, key_len;
	int esn;
	uint32_t oseq;
	const char *alg; /* the AEAD's, or cbc(aes) as an encryption algorithm */
};

static void state_info(struct xfrm_usersa_info *p, const struct state *s)
{
	memset(p, 0, sizeof(*p));
	p->sel.family = (uint16_t)s->family;
	addr(&p->id.daddr, s->family, s->dst);
	p->id.spi = htonl(s->spi);
	p->id.proto = IPPROTO_ESP;
	addr(&p->saddr, s->family, s->src);
	p->lft.soft_byte_limit = p->lft.hard_byte_limit = XFRM_INF;
	p->lft.soft_packet_limit = p->lft.hard_packet_limit = XFRM_INF;
	p->curlft.add_time = 1700000000;
	p->reqid = s->reqid;
	p->family = (uint16_t)s->family;
	p->mode = s->mode;
	p->replay_window = s->esn ? 0 : (uint8_t)s->replay_window;
	p->flags = s->esn ? XFRM_STATE_ESN : 0;
}

/* The attributes copy_to_user_state_extra() adds, in its order. */
static void state_extra(const struct state *s)
{
	uint64_t lastused = 1700000100;
	struct {
		struct xfrm_algo_aead head;
		uint8_t key[36];
	} aead;
	struct {
		struct xfrm_algo head;
		uint8_t key[16];
	} crypt;
	struct xfrm_mark m = { .v = s->mark, .m = s->mask };
	struct {
		struct xfrm_replay_state_esn head;
		uint32_t bmp[4];
	} esn;
	struct xfrm_replay_state replay = { .oseq = s->oseq, .seq = 7, .bitmap = 0x7f };

	/* nla_put_u64_64bit(): an XFRMA_PAD first where the u64 would not be 8-byte aligned */
	if ((len + NLA_HDRLEN) % 8)
		attr(XFRMA_PAD, NULL, 0);
	attr(XFRMA_LASTUSED, &lastused, sizeof(lastused));
	if (strcmp(s->alg, "cbc(aes)") != 0) {
		memset(&aead, 0, sizeof(aead));
		snprintf(aead.head.alg_name, sizeof(aead.head.alg_name), "%s", s->alg);
		aead.head.alg_key_len = s->key_len * 8u;
		aead.head.alg_icv_len = 128;
		memcpy(aead.key, key, s->key_len);
		attr(XFRMA_ALG_AEAD, &aead, sizeof(aead.head) + s->key_len);
	} else {
		memset(&crypt, 0, sizeof(crypt));
		snprintf(crypt.head.alg_name, sizeof(crypt.head.alg_name), "%s", s->alg);
		crypt.head.alg_key_len = 128;
		memcpy(crypt.key, key, 16);
		attr(XFRMA_ALG_CRYPT, &crypt, sizeof(crypt));
	}
	if (s->mark || s->mask)
		attr(XFRMA_MARK, &m, sizeof(m));
	if (s->esn) {
		memset(&esn, 0, sizeof(esn));
		esn.head.bmp_len = (s->replay_window + 31) / 32;
		esn.head.oseq = s->oseq;
		esn.head.seq = 3;
		esn.head.replay_window = s->replay_window;
		attr(XFRMA_REPLAY_ESN_VAL, &esn, sizeof(esn.head) + esn.head.bmp_len * 4);
	} else {
		attr(XFRMA_REPLAY_VAL, &replay, sizeof(replay));
	}
}

static void newsa(const struct state *s, uint16_t type, uint16_t flags, uint32_t seq)
{
	size_t at = msg_start(type, flags, seq);
	struct xfrm_usersa_info info;

	state_info(&info, s);
	put(&info, sizeof(info));
	state_extra(s);
	msg_end(at);
}

struct policy {
	int family;
	const char *dst, *tmpl_src, *tmpl_dst;
	uint8_t prefixlen, dir;
	uint32_t mark, mask, spi, reqid, priority;
};

static void newpolicy(const struct policy *pol)
{
	size_t at = msg_start(XFRM_MSG_NEWPOLICY, NLM_F_MULTI, SEQ);
	struct xfrm_userpolicy_info p;
	struct xfrm_user_tmpl t;
	struct xfrm_userpolicy_type type = { .type = XFRM_POLICY_TYPE_MAIN };
	struct xfrm_mark m = { .v = pol->mark, .m = pol->mask };

	memset(&p, 0, sizeof(p));
	addr(&p.sel.daddr, pol->family, pol->dst);
	addr(&p.sel.saddr, pol->family, pol->family == AF_INET ? "0.0.0.0" : "::");
	p.sel.family = (uint16_t)pol->family;
	p.sel.prefixlen_d = pol->prefixlen;
	p.lft.soft_byte_limit = p.lft.hard_byte_limit = XFRM_INF;
	p.lft.soft_packet_limit = p.lft.hard_packet_limit = XFRM_INF;
	p.priority = pol->priority;
	p.index = 8 + pol->dir;
	p.dir = pol->dir;
	put(&p, sizeof(p));

	memset(&t, 0, sizeof(t));
	addr(&t.id.daddr, pol->family, pol->tmpl_dst);
	t.id.spi = htonl(pol->spi);
	t.id.proto = IPPROTO_ESP;
	t.family = (uint16_t)pol->family;
	addr(&t.saddr, pol->family, pol->tmpl_src);
	t.reqid = pol->reqid;
	t.mode = XFRM_MODE_TUNNEL;
	t.aalgos = t.ealgos = t.calgos = ~0u;
	/* copy_to_user_tmpl(), copy_to_user_policy_type(), xfrm_mark_put() */
	attr(XFRMA_TMPL, &t, sizeof(t));
	attr(XFRMA_POLICY_TYPE, &type, sizeof(type));
	if (pol->mark || pol->mask)
		attr(XFRMA_MARK, &m, sizeof(m));
	msg_end(at);
}

static void xfrm(const char *dir)
{
	static const struct state states[] = {
		/* out: ESN, the window in XFRMA_REPLAY_ESN_VAL */
		{ AF_INET, "192.168.100.1", "192.168.100.2", 0x101, REQID, 0, 0, 128,
		  XFRM_MODE_TUNNEL, 36, 1, 41, "rfc4106(gcm(aes))" },
		/* in: the peer's index and the decrypt role in its mark */
		{ AF_INET, "192.168.100.2", "192.168.100.1", 0x101, REQID, 0x200d0, 0xffff00f0, 128,
		  XFRM_MODE_TUNNEL, 36, 1, 0, "rfc4106(gcm(aes))" },
		{ AF_INET6, "fd00:100::1", "fd00:100::2", 0x102, REQID, 0, 0, 32,
		  XFRM_MODE_TUNNEL, 28, 0, 9, "rfc4106(gcm(aes))" },
		/* someone else's */
		{ AF_INET, "192.168.100.1", "192.168.100.3", 0x103, 7, 0, 0, 32,
		  XFRM_MODE_TRANSPORT, 16, 0, 0, "cbc(aes)" },
	};
	static const struct policy policies[] = {
		{ AF_INET, "10.2.0.0", "192.168.100.1", "192.168.100.2", 16, XFRM_POLICY_OUT,
		  0xe0, 0xf0, 0x101, REQID, 0 },
		{ AF_INET6, "fd00:1:2::", "fd00:100::1", "fd00:100::2", 64, XFRM_POLICY_OUT,
		  0xe0, 0xf0, 0x102, REQID, 0 },
		/* the node's in and fwd policies: a template with any source and any SPI */
		{ AF_INET, "0.0.0.0", "0.0.0.0", "192.168.100.1", 0, XFRM_POLICY_IN,
		  0xd0, 0xf0, 0, REQID, 0 },
		{ AF_INET, "0.0.0.0", "0.0.0.0", "192.168.100.1", 0, XFRM_POLICY_FWD,
		  0xd0, 0xf0, 0, REQID, 0 },
		/* someone else's, with a priority */
		{ AF_INET, "10.9.0.0", "192.168.100.1", "192.168.100.9", 16, XFRM_POLICY_OUT,
		  0, 0, 0, 7, 100 },
	};
	struct xfrm_usersa_info info;
	struct xfrm_usersa_id id;
	struct xfrm_user_expire ue;
	size_t at;

	/* the dump in one datagram, then one message a datagram */
	for (uint8_t per = 0; per < 2; per++) {
		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			newsa(&states[i], XFRM_MSG_NEWSA, NLM_F_MULTI, SEQ);
		done(SEQ, 0);
		write_seed(dir, per ? "dump-states-one-per-datagram" : "dump-states", per);
	}

	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		newpolicy(&policies[i]);
	done(SEQ, 0);
	write_seed(dir, "dump-policies-two-per-datagram", 2);

	/* a dump that failed on the way: its end carries the error */
	newsa(&states[0], XFRM_MSG_NEWSA, NLM_F_MULTI, SEQ);
	done(SEQ, -EMSGSIZE);
	write_seed(dir, "dump-failed", 0);

	/* an acknowledgement with an error, the request capped (NETLINK_CAP_ACK) */
	at = msg_start(NLMSG_ERROR, 0, SEQ);
	{
		struct nlmsgerr e = { .error = -EEXIST,
				      .msg = { .nlmsg_len = NLMSG_LENGTH(sizeof(info)),
					       .nlmsg_type = XFRM_MSG_NEWSA,
					       .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK,
					       .nlmsg_seq = SEQ } };

		put(&e, sizeof(e));
	}
	msg_end(at);
	write_seed(dir, "ack-eexist", 0);

	/* xfrm_notify_sa() of XFRM_MSG_DELSA: the id, the state in XFRMA_SA, then its extras */
	at = msg_start(XFRM_MSG_DELSA, 0, 0);
	memset(&id, 0, sizeof(id));
	addr(&id.daddr, AF_INET, states[0].dst);
	id.spi = htonl(states[0].spi);
	id.family = AF_INET;
	id.proto = IPPROTO_ESP;
	put(&id, sizeof(id));
	state_info(&info, &states[0]);
	attr(XFRMA_SA, &info, sizeof(info));
	state_extra(&states[0]);
	msg_end(at);
	write_seed(dir, "notification-delsa", 0);

	/* build_expire() of a hard expiry: the state (with the packets it sent), then its mark;
	 * no replay state */
	at = msg_start(XFRM_MSG_EXPIRE, 0, 0);
	memset(&ue, 0, sizeof(ue));
	state_info(&ue.state, &states[1]);
	ue.state.curlft.packets = 0x1ffffffffull;
	ue.hard = 1;
	put(&ue, sizeof(ue));
	{
		struct xfrm_mark m = { .v = 0x200d0, .m = 0xffff00f0 };

		attr(XFRMA_MARK, &m, sizeof(m));
	}
	msg_end(at);
	write_seed(dir, "notification-expire-hard", 0);
}

/* ---- WireGuard ---- */

#define FAMILY 0x1d

static size_t device_start(uint32_t seq)
{
	struct genlmsghdr g = { .cmd = WG_CMD_GET_DEVICE, .version = WG_GENL_VERSION };
	size_t at = msg_start(FAMILY, NLM_F_MULTI, seq);

	put(&g, sizeof(g));
	return at;
}

static void device_head(void)
{
	uint16_t port = 51830;
	uint32_t zero = 0, ifindex = 7;
	uint8_t k[32];

	attr(WGDEVICE_A_LISTEN_PORT, &port, sizeof(port));
	attr(WGDEVICE_A_FWMARK, &zero, sizeof(zero));
	attr(WGDEVICE_A_IFINDEX, &ifindex, sizeof(ifindex));
	attr(WGDEVICE_A_IFNAME, "mcwg0", 6);
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(i + 1);
	attr(WGDEVICE_A_PRIVATE_KEY, k, sizeof(k));
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(i + 33);
	attr(WGDEVICE_A_PUBLIC_KEY, k, sizeof(k));
}

static void allowed(int family, const char *text, uint8_t cidr)
{
	size_t at = nest_start(0);
	uint8_t a[16];
	uint16_t f = (uint16_t)family;

	inet_pton(family, text, a);
	attr(WGALLOWEDIP_A_CIDR_MASK, &cidr, 1);
	attr(WGALLOWEDIP_A_IPADDR, a, family == AF_INET ? 4 : 16);
	attr(WGALLOWEDIP_A_FAMILY, &f, sizeof(f));
	nest_end(at);
}

/* get_peer(): a peer's head (skipped when it continues from the previous message), then its
 * allowed IPs; the caller closes both nests. Returns the peer's nest. */
static size_t peer_start(uint8_t i, int family, const char *endpoint, int head)
{
	size_t at = nest_start(0);
	uint8_t k[32];

	memset(k, i, sizeof(k));
	k[31] = 0x77;
	attr(WGPEER_A_PUBLIC_KEY, k, sizeof(k));
	if (head) {
		struct { int64_t sec, nsec; } hs = { 1700000000 + i, 5 };
		uint64_t tx = 1000u * i, rx = 2000u * i;
		uint16_t keepalive = 0;
		uint32_t version = 1;

		memset(k, 0, sizeof(k));
		attr(WGPEER_A_PRESHARED_KEY, k, sizeof(k));
		attr(WGPEER_A_LAST_HANDSHAKE_TIME, &hs, sizeof(hs));
		attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, &keepalive, sizeof(keepalive));
		attr(WGPEER_A_TX_BYTES, &tx, sizeof(tx));
		attr(WGPEER_A_RX_BYTES, &rx, sizeof(rx));
		attr(WGPEER_A_PROTOCOL_VERSION, &version, sizeof(version));
		if (family == AF_INET) {
			struct sockaddr_in sin = { .sin_family = AF_INET,
						   .sin_port = htons(51830) };

			inet_pton(AF_INET, endpoint, &sin.sin_addr);
			attr(WGPEER_A_ENDPOINT, &sin, sizeof(sin));
		} else if (family == AF_INET6) {
			struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
						     .sin6_port = htons(51830) };

			inet_pton(AF_INET6, endpoint, &sin6.sin6_addr);
			attr(WGPEER_A_ENDPOINT, &sin6, sizeof(sin6));
		}
	}
	return at;
}

static void wireguard(const char *dir)
{
	size_t msg, peers, peer, ips;
	char text[32];

	/* two peers in one message */
	msg = device_start(SEQ);
	device_head();
	peers = nest_start(WGDEVICE_A_PEERS);
	peer = peer_start(2, AF_INET, "192.168.100.2", 1);
	ips = nest_start(WGPEER_A_ALLOWEDIPS);
	allowed(AF_INET, "10.2.0.0", 16);
	allowed(AF_INET6, "fd00:1:2::", 64);
	nest_end(ips);
	nest_end(peer);
	peer = peer_start(3, AF_INET6, "fd00:100::3", 1);
	ips = nest_start(WGPEER_A_ALLOWEDIPS);
	allowed(AF_INET6, "fd00:1:3::", 64);
	allowed(AF_INET, "10.3.0.5", 32);
	nest_end(ips);
	nest_end(peer);
	nest_end(peers);
	msg_end(msg);
	done(SEQ, 0);
	write_seed(dir, "device-two-peers", 0);

	/* a device without peers */
	msg = device_start(SEQ);
	device_head();
	msg_end(msg);
	done(SEQ, 0);
	write_seed(dir, "device-no-peers", 0);

	/* a peer whose allowed IPs continue in the next message, which repeats its key */
	msg = device_start(SEQ);
	device_head();
	peers = nest_start(WGDEVICE_A_PEERS);
	peer = peer_start(4, AF_INET, "192.168.100.4", 1);
	ips = nest_start(WGPEER_A_ALLOWEDIPS);
	for (int j = 0; j < 8; j++) {
		snprintf(text, sizeof(text), "10.4.%d.0", j);
		allowed(AF_INET, text, 24);
	}
	nest_end(ips);
	nest_end(peer);
	nest_end(peers);
	msg_end(msg);
	msg = device_start(SEQ);
	peers = nest_start(WGDEVICE_A_PEERS);
	peer = peer_start(4, 0, NULL, 0);
	ips = nest_start(WGPEER_A_ALLOWEDIPS);
	for (int j = 8; j < 12; j++) {
		snprintf(text, sizeof(text), "10.4.%d.0", j);
		allowed(AF_INET, text, 24);
	}
	nest_end(ips);
	nest_end(peer);
	peer = peer_start(5, 0, NULL, 1);
	nest_end(peer);
	nest_end(peers);
	msg_end(msg);
	done(SEQ, 0);
	write_seed(dir, "device-peer-continued", 1);
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "xfrm") != 0 && strcmp(argv[1], "wireguard") != 0)) {
		fprintf(stderr, "usage: netlink-seeds xfrm|wireguard DIR\n");
		return 2;
	}
	if (strcmp(argv[1], "xfrm") == 0)
		xfrm(argv[2]);
	else
		wireguard(argv[2]);
	return 0;
}
