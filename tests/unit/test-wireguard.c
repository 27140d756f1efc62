/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The WireGuard backend's message layer (plugins/backend-wireguard/genl.c) and key file
 * (wgkey.c): the exact attributes of WG_CMD_SET_DEVICE, chunking of 5,000 peers with 100,000
 * allowed IPs into messages that each fit, continuation without the replace flag, and the dump
 * parser merging a peer continued across messages; plus the private key file's checks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/wireguard.h>

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cmocka.h>

#include "../../plugins/backend-wireguard/genl.h"
#include "../../plugins/backend-wireguard/wgkey.h"

#define FAMILY 0x1d

struct captured {
	struct nlmsghdr **msgs;
	size_t n;
	int fail_at; /* return -EIO for this message (1-based), 0: never */
};

static int capture(struct nl_msg *msg, void *userdata)
{
	struct captured *c = userdata;
	struct nlmsghdr *h = nlmsg_hdr(msg);

	c->msgs = realloc(c->msgs, (c->n + 1) * sizeof(*c->msgs));
	c->msgs[c->n] = malloc(h->nlmsg_len);
	memcpy(c->msgs[c->n], h, h->nlmsg_len);
	c->n++;
	nlmsg_free(msg);
	return (int)c->n == c->fail_at ? -EIO : 0;
}

static void captured_free(struct captured *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->msgs[i]);
	free(c->msgs);
	c->msgs = NULL;
	c->n = 0;
}

static void make_peer(struct mcw_peer *p, unsigned i, size_t n_allowed)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->public_key, &i, sizeof(i));
	p->public_key[31] = 0x77;
	p->endpoint.family = AF_INET;
	p->endpoint.addr[0] = 192;
	p->endpoint.addr[1] = 168;
	p->endpoint.addr[2] = (uint8_t)(i >> 8);
	p->endpoint.addr[3] = (uint8_t)i;
	p->port = 51830;
	p->allowed = calloc(n_allowed, sizeof(*p->allowed));
	p->n_allowed = n_allowed;
	/* fd00:<i>:<j>::/128, unique and in mc_prefix_compare order */
	for (size_t j = 0; j < n_allowed; j++) {
		p->allowed[j].ip.family = AF_INET6;
		p->allowed[j].ip.addr[0] = 0xfd;
		p->allowed[j].ip.addr[2] = (uint8_t)(i >> 8);
		p->allowed[j].ip.addr[3] = (uint8_t)i;
		p->allowed[j].ip.addr[4] = (uint8_t)(j >> 8);
		p->allowed[j].ip.addr[5] = (uint8_t)j;
		p->allowed[j].len = 128;
	}
}

/* One peer nest as the kernel reads it. */
struct seen_peer {
	uint8_t key[32];
	uint32_t flags;
	bool endpoint;
	size_t n_allowed;
};

static size_t walk_peers(const struct nlmsghdr *h, struct seen_peer *out, size_t max)
{
	struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
	size_t n = 0;
	int rem;

	assert_int_equal(genlmsg_parse((struct nlmsghdr *)h, 0, tb, WGDEVICE_A_MAX, NULL), 0);
	assert_string_equal(nla_get_string(tb[WGDEVICE_A_IFNAME]), "mcwg0");
	if (!tb[WGDEVICE_A_PEERS])
		return 0;
	nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
		struct nlattr *p[WGPEER_A_MAX + 1], *ip;
		int rem2;

		assert_true(n < max);
		assert_true(nla_type(peer) == 0);
		assert_int_equal(nla_parse_nested(p, WGPEER_A_MAX, peer, NULL), 0);
		memcpy(out[n].key, nla_data(p[WGPEER_A_PUBLIC_KEY]), 32);
		out[n].flags = p[WGPEER_A_FLAGS] ? nla_get_u32(p[WGPEER_A_FLAGS]) : 0;
		out[n].endpoint = p[WGPEER_A_ENDPOINT] != NULL;
		out[n].n_allowed = 0;
		if (p[WGPEER_A_ALLOWEDIPS])
			nla_for_each_nested(ip, p[WGPEER_A_ALLOWEDIPS], rem2)
				out[n].n_allowed++;
		n++;
	}
	return n;
}

static void test_set_device_attributes(void **state)
{
	uint8_t private_key[32];
	struct mcw_peer peer;
	struct mcw_peer_change pc;
	struct mcw_device_change c = { .ifname = "mcwg0", .private_key = private_key,
				       .listen_port = 51830, .peers = &pc, .n_peers = 1 };
	struct captured cap = { 0 };
	struct nlattr *tb[WGDEVICE_A_MAX + 1];
	struct seen_peer seen[4];
	struct genlmsghdr *g;

	(void)state;
	memset(private_key, 0x42, sizeof(private_key));
	make_peer(&peer, 7, 2);
	pc = (struct mcw_peer_change){ .peer = &peer, .set_endpoint = true, .replace_allowed = true };
	assert_int_equal(mcw_set_device_messages(FAMILY, &c, capture, &cap), 0);
	assert_int_equal(cap.n, 1);
	assert_int_equal(cap.msgs[0]->nlmsg_type, FAMILY);
	g = nlmsg_data(cap.msgs[0]);
	assert_int_equal(g->cmd, WG_CMD_SET_DEVICE);
	assert_int_equal(g->version, WG_GENL_VERSION);
	assert_int_equal(genlmsg_parse(cap.msgs[0], 0, tb, WGDEVICE_A_MAX, NULL), 0);
	assert_memory_equal(nla_data(tb[WGDEVICE_A_PRIVATE_KEY]), private_key, 32);
	assert_int_equal(nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]), 51830);
	assert_null(tb[WGDEVICE_A_FLAGS]); /* never WGDEVICE_F_REPLACE_PEERS: other peers stay */
	assert_int_equal(walk_peers(cap.msgs[0], seen, 4), 1);
	assert_int_equal(seen[0].flags, WGPEER_F_REPLACE_ALLOWEDIPS);
	assert_true(seen[0].endpoint);
	assert_int_equal(seen[0].n_allowed, 2);
	captured_free(&cap);

	/* only the endpoint: no allowed IPs, no replace flag */
	pc = (struct mcw_peer_change){ .peer = &peer, .set_endpoint = true };
	c.private_key = NULL;
	c.listen_port = -1;
	assert_int_equal(mcw_set_device_messages(FAMILY, &c, capture, &cap), 0);
	assert_int_equal(genlmsg_parse(cap.msgs[0], 0, tb, WGDEVICE_A_MAX, NULL), 0);
	assert_null(tb[WGDEVICE_A_PRIVATE_KEY]);
	assert_null(tb[WGDEVICE_A_LISTEN_PORT]);
	assert_int_equal(walk_peers(cap.msgs[0], seen, 4), 1);
	assert_int_equal(seen[0].flags, 0);
	assert_int_equal(seen[0].n_allowed, 0);
	captured_free(&cap);

	/* removal: the key and WGPEER_F_REMOVE_ME only */
	pc = (struct mcw_peer_change){ .peer = &peer, .remove = true, .set_endpoint = true,
				       .replace_allowed = true };
	assert_int_equal(mcw_set_device_messages(FAMILY, &c, capture, &cap), 0);
	assert_int_equal(walk_peers(cap.msgs[0], seen, 4), 1);
	assert_int_equal(seen[0].flags, WGPEER_F_REMOVE_ME);
	assert_false(seen[0].endpoint);
	assert_int_equal(seen[0].n_allowed, 0);
	captured_free(&cap);
	mcw_peer_clear(&peer);
}

static void test_chunking_5000_peers_100000_ips(void **state)
{
	enum { PEERS = 5000, PER_PEER = 20 };
	struct mcw_peer *peers = calloc(PEERS, sizeof(*peers));
	struct mcw_peer_change *pcs = calloc(PEERS, sizeof(*pcs));
	struct mcw_device_change c = { .ifname = "mcwg0", .listen_port = -1, .peers = pcs,
				       .n_peers = PEERS };
	struct captured cap = { 0 };
	struct mcw_device dev = { 0 };
	struct seen_peer *seen = calloc(PEERS * 2, sizeof(*seen));
	size_t total_ips = 0, n_seen = 0;

	(void)state;
	for (unsigned i = 0; i < PEERS; i++) {
		/* one peer with many more allowed IPs than a message holds */
		make_peer(&peers[i], i, i == 17 ? 1500 : PER_PEER);
		pcs[i] = (struct mcw_peer_change){ .peer = &peers[i], .set_endpoint = true,
						   .replace_allowed = true };
	}
	assert_int_equal(mcw_set_device_messages(FAMILY, &c, capture, &cap), 0);
	assert_true(cap.n > 100);
	for (size_t m = 0; m < cap.n; m++) {
		size_t n;

		assert_true(cap.msgs[m]->nlmsg_len <= MCW_MESSAGE_MAX);
		n = walk_peers(cap.msgs[m], seen + n_seen, PEERS * 2 - n_seen);
		/* a peer continued from the previous message carries no flags and no endpoint,
		 * so the kernel appends instead of replacing */
		if (n && n_seen && memcmp(seen[n_seen].key, seen[n_seen - 1].key, 32) == 0) {
			assert_int_equal(seen[n_seen].flags, 0);
			assert_false(seen[n_seen].endpoint);
		}
		n_seen += n;
		assert_int_equal(mcw_device_parse(cap.msgs[m], &dev), 0);
	}
	for (size_t i = 0; i < n_seen; i++)
		total_ips += seen[i].n_allowed;
	assert_int_equal(total_ips, (PEERS - 1) * PER_PEER + 1500);
	/* read back as a dump would be: every peer once, with all its allowed IPs */
	assert_int_equal(dev.n_peers, PEERS);
	for (unsigned i = 0; i < PEERS; i++) {
		assert_memory_equal(dev.peers[i].public_key, peers[i].public_key, 32);
		assert_int_equal(dev.peers[i].n_allowed, peers[i].n_allowed);
		assert_int_equal(dev.peers[i].port, 51830);
		assert_memory_equal(&dev.peers[i].endpoint, &peers[i].endpoint, sizeof(struct mc_ip));
		for (size_t j = 0; j < peers[i].n_allowed; j++)
			assert_int_equal(mc_prefix_compare(&dev.peers[i].allowed[j], &peers[i].allowed[j]), 0);
	}
	captured_free(&cap);

	/* the sink's error stops the messages */
	cap.fail_at = 3;
	assert_int_equal(mcw_set_device_messages(FAMILY, &c, capture, &cap), -EIO);
	assert_int_equal(cap.n, 3);
	captured_free(&cap);

	mcw_device_clear(&dev);
	for (unsigned i = 0; i < PEERS; i++)
		mcw_peer_clear(&peers[i]);
	free(peers);
	free(pcs);
	free(seen);
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/test-wg-XXXXXX", path[64], error[300], b64[MCW_KEY_B64_LEN + 1];
	struct mcw_keypair *a, *b;
	uint8_t back[MCW_KEY_LEN];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/wireguard.key", dir);
	assert_int_equal(mcw_keypair_load(path, false, &a, error, sizeof(error)), -ENOENT);
	assert_int_equal(mcw_keypair_load(path, true, &a, error, sizeof(error)), 0);
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* loaded again: the same key pair */
	assert_int_equal(mcw_keypair_load(path, true, &b, error, sizeof(error)), 0);
	assert_memory_equal(a->public_key, b->public_key, MCW_KEY_LEN);
	assert_string_equal(a->public_b64, b->public_b64);
	assert_int_equal(strlen(a->public_b64), 44);
	mcw_keypair_free(b);
	/* X25519 of RFC 7748 section 6.1: Alice's keys */
	{
		static const char alice_private[] = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
		static const char alice_public[] = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
		FILE *f = fopen(path, "w");

		fprintf(f, "%s\n", alice_private);
		fclose(f);
		assert_int_equal(mcw_keypair_load(path, true, &b, error, sizeof(error)), 0);
		assert_string_equal(b->public_b64, alice_public);
		mcw_keypair_free(b);
	}
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(mcw_keypair_load(path, true, &b, error, sizeof(error)), -EPERM);
	assert_non_null(strstr(error, "0644"));
	mcw_key_to_base64(a->public_key, b64);
	assert_int_equal(mcw_key_from_base64(b64, back), 0);
	assert_memory_equal(back, a->public_key, MCW_KEY_LEN);
	assert_int_equal(mcw_key_from_base64("not a key", back), -EINVAL);
	mcw_keypair_free(a);
	unlink(path);
	rmdir(dir);
}

/* ---- the dump parser on messages the kernel would not send (tests/fuzz/regressions/
 * wireguard-genl/, found by fuzz-wireguard-genl) ---- */

/* A WG_CMD_GET_DEVICE reply with one peer (key 0x01...0x77) whose nest add() fills. */
static struct nl_msg *dump_message(void (*add)(struct nl_msg *msg, const void *arg),
				   const void *arg)
{
	struct nl_msg *msg = nlmsg_alloc();
	struct nlattr *peers, *peer;
	uint8_t key[32];

	memset(key, 1, sizeof(key));
	key[31] = 0x77;
	assert_non_null(msg);
	assert_non_null(genlmsg_put(msg, 0, 1, FAMILY, 0, NLM_F_MULTI, WG_CMD_GET_DEVICE,
				    WG_GENL_VERSION));
	assert_non_null(peers = nla_nest_start(msg, WGDEVICE_A_PEERS));
	assert_non_null(peer = nla_nest_start(msg, 0));
	assert_int_equal(nla_put(msg, WGPEER_A_PUBLIC_KEY, sizeof(key), key), 0);
	if (add)
		add(msg, arg);
	nla_nest_end(msg, peer);
	nla_nest_end(msg, peers);
	return msg;
}

/* WGPEER_A_ALLOWEDIPS with the prefixes of arg ("A.B.C.D/N", NULL-terminated) */
static void add_allowed(struct nl_msg *msg, const void *arg)
{
	const char *const *texts = arg;
	struct nlattr *ips = nla_nest_start(msg, WGPEER_A_ALLOWEDIPS);

	for (size_t i = 0; texts[i]; i++) {
		struct nlattr *ip = nla_nest_start(msg, 0);
		char addr[32];
		unsigned cidr;
		uint8_t bytes[4];

		assert_int_equal(sscanf(texts[i], "%31[0-9.]/%u", addr, &cidr), 2);
		assert_int_equal(inet_pton(AF_INET, addr, bytes), 1);
		assert_int_equal(nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, AF_INET), 0);
		assert_int_equal(nla_put(msg, WGALLOWEDIP_A_IPADDR, 4, bytes), 0);
		assert_int_equal(nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, (uint8_t)cidr), 0);
		nla_nest_end(msg, ip);
	}
	nla_nest_end(msg, ips);
}

/* A peer whose allowed IPs nest is empty, as the kernel sends a peer without any: none, and
 * no array (regressions/wireguard-genl/peer-without-allowed-ips). */
static void test_parse_peer_without_allowed_ips(void **state)
{
	static const char *const none[] = { NULL };
	struct mcw_device dev = { 0 };
	struct nl_msg *msg = dump_message(add_allowed, none);

	(void)state;
	assert_int_equal(mcw_device_parse(nlmsg_hdr(msg), &dev), 0);
	assert_int_equal(dev.n_peers, 1);
	assert_int_equal(dev.peers[0].n_allowed, 0);
	assert_null(dev.peers[0].allowed);
	mcw_device_clear(&dev);
	nlmsg_free(msg);
}

/* An empty attribute, of the type in arg, in the peer (a short one ends the message) */
static void add_empty(struct nl_msg *msg, const void *arg)
{
	assert_int_equal(nla_put(msg, *(const int *)arg, 0, NULL), 0);
}

/* An allowed IP whose attribute of the type in arg is empty */
static void add_allowed_empty(struct nl_msg *msg, const void *arg)
{
	struct nlattr *ips = nla_nest_start(msg, WGPEER_A_ALLOWEDIPS), *ip = nla_nest_start(msg, 0);
	uint8_t bytes[4] = { 10, 0, 0, 0 };
	int empty = *(const int *)arg;

	if (empty != WGALLOWEDIP_A_FAMILY)
		assert_int_equal(nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, AF_INET), 0);
	assert_int_equal(nla_put(msg, WGALLOWEDIP_A_IPADDR, 4, bytes), 0);
	if (empty != WGALLOWEDIP_A_CIDR_MASK)
		assert_int_equal(nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, 8), 0);
	assert_int_equal(nla_put(msg, empty, 0, NULL), 0);
	nla_nest_end(msg, ip);
	nla_nest_end(msg, ips);
}

/* Attributes too short for what is read of them: a malformed message, not a read past it
 * (regressions/wireguard-genl/listen-port-empty, allowed-ip-family-empty,
 * allowed-ip-cidr-empty); an endpoint too short for its family is no endpoint
 * (endpoint-empty). */
static void test_parse_short_attributes(void **state)
{
	static const int family = WGALLOWEDIP_A_FAMILY, cidr = WGALLOWEDIP_A_CIDR_MASK;
	static const int endpoint = WGPEER_A_ENDPOINT;
	struct mcw_device dev = { 0 };
	struct nl_msg *msg = nlmsg_alloc();

	(void)state;
	assert_non_null(genlmsg_put(msg, 0, 1, FAMILY, 0, NLM_F_MULTI, WG_CMD_GET_DEVICE,
				    WG_GENL_VERSION));
	assert_int_equal(nla_put(msg, WGDEVICE_A_LISTEN_PORT, 0, NULL), 0);
	assert_int_equal(mcw_device_parse(nlmsg_hdr(msg), &dev), -EBADMSG);
	mcw_device_clear(&dev);
	nlmsg_free(msg);

	msg = dump_message(add_allowed_empty, &family);
	assert_int_equal(mcw_device_parse(nlmsg_hdr(msg), &dev), -EBADMSG);
	mcw_device_clear(&dev);
	nlmsg_free(msg);
	msg = dump_message(add_allowed_empty, &cidr);
	assert_int_equal(mcw_device_parse(nlmsg_hdr(msg), &dev), -EBADMSG);
	mcw_device_clear(&dev);
	nlmsg_free(msg);

	msg = dump_message(add_empty, &endpoint);
	assert_int_equal(mcw_device_parse(nlmsg_hdr(msg), &dev), 0);
	assert_int_equal(dev.n_peers, 1);
	assert_int_equal(dev.peers[0].endpoint.family, 0);
	mcw_device_clear(&dev);
	nlmsg_free(msg);
}

/* Allowed IPs as the kernel holds them: bits beyond the prefix cleared, a prefix longer than
 * the address left out (regressions/wireguard-genl/allowed-ip-host-bits, allowed-ip-prefix-33). */
static void test_parse_allowed_canonical(void **state)
{
	static const char *const texts[] = { "10.2.3.4/16", "10.9.0.0/33", "10.3.0.1/32", NULL };
	struct mcw_device dev = { 0 };
	struct nl_msg *msg = dump_message(add_allowed, texts);
	struct mc_prefix want;

	(void)state;
	assert_int_equal(mcw_device_parse(nlmsg_hdr(msg), &dev), 0);
	assert_int_equal(dev.peers[0].n_allowed, 2);
	assert_int_equal(mc_prefix_parse("10.2.0.0/16", &want), 0);
	assert_int_equal(mc_prefix_compare(&dev.peers[0].allowed[0], &want), 0);
	assert_int_equal(mc_prefix_parse("10.3.0.1/32", &want), 0);
	assert_int_equal(mc_prefix_compare(&dev.peers[0].allowed[1], &want), 0);
	mcw_device_clear(&dev);
	nlmsg_free(msg);
}

/* WGPEER_A_ENDPOINT holding the sockaddr of arg */
static void add_endpoint(struct nl_msg *msg, const void *arg)
{
	const struct sockaddr *sa = arg;

	assert_int_equal(nla_put(msg, WGPEER_A_ENDPOINT,
				 sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
							    sizeof(struct sockaddr_in6),
				 sa),
			 0);
}

/* A peer continued in the next message with an IPv4 endpoint, after an IPv6 one: the IPv4
 * address whole, nothing left of the IPv6 one beyond its 4 bytes
 * (regressions/wireguard-genl/endpoint-ipv6-then-ipv4-in-continuation). */
static void test_parse_continued_endpoint(void **state)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(51830) };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(51830) };
	struct mcw_device dev = { 0 };
	struct mc_ip want;
	struct nl_msg *first, *next;

	(void)state;
	assert_int_equal(mc_ip_parse("192.168.100.2", &want), 0);
	assert_int_equal(inet_pton(AF_INET6, "fd00:100::3", &sin6.sin6_addr), 1);
	assert_int_equal(inet_pton(AF_INET, "192.168.100.2", &sin.sin_addr), 1);
	first = dump_message(add_endpoint, &sin6);
	next = dump_message(add_endpoint, &sin);
	assert_int_equal(mcw_device_parse(nlmsg_hdr(first), &dev), 0);
	assert_int_equal(mcw_device_parse(nlmsg_hdr(next), &dev), 0);
	assert_int_equal(dev.n_peers, 1);
	assert_memory_equal(&dev.peers[0].endpoint, &want, sizeof(want));
	mcw_device_clear(&dev);
	nlmsg_free(first);
	nlmsg_free(next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_device_attributes),
		cmocka_unit_test(test_chunking_5000_peers_100000_ips),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_parse_peer_without_allowed_ips),
		cmocka_unit_test(test_parse_short_attributes),
		cmocka_unit_test(test_parse_allowed_canonical),
		cmocka_unit_test(test_parse_continued_endpoint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
