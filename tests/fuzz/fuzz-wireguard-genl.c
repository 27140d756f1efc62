/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the WireGuard backend's parser of WG_CMD_GET_DEVICE dumps
 * (plugins/backend-wireguard/genl.h): arbitrary bytes arrive as the datagrams of a dump reply
 * through the receive loop of plugins/netlink-common (fuzz-nl.h), and each message of the
 * dump is added to one device with mcw_device_parse(), as mcw_genl_get_device() does; the
 * device is then freed with mcw_device_clear().
 *
 * Besides memory errors (reads past a message fault, see fuzz-nl.h), leaks and undefined
 * behaviour, a crash here means a result that breaks what genl.h promises: a return value not
 * in the list; or, where every message parsed, a device whose peers are not what a dump says:
 * two neighbours with one key (a peer continued across messages is merged), an endpoint
 * address not in its canonical form, allowed IPs that are not sorted or not canonical
 * prefixes (what the kernel holds and what the backend compares them with: no bits beyond the
 * prefix, none beyond an IPv4 address); or a device that does not read back the same from the
 * WG_CMD_SET_DEVICE messages the backend would build of it (their attributes are the dump's).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/msg.h>

#include "fuzz-nl.h"
#include "genl.h"

#define FAMILY 0x1d

static void check_ip(const struct mc_ip *ip)
{
	FUZZ_CHECK(ip->family == AF_INET || ip->family == AF_INET6);
	if (ip->family == AF_INET)
		for (size_t i = 4; i < sizeof(ip->addr); i++)
			FUZZ_CHECK(ip->addr[i] == 0);
}

/* Canonical: it prints and parses back the same (mc_prefix_parse() refuses host bits). */
static void check_prefix(const struct mc_prefix *p)
{
	char text[MC_PREFIX_STRLEN];
	struct mc_prefix back;

	check_ip(&p->ip);
	FUZZ_CHECK(p->len <= (p->ip.family == AF_INET ? 32 : 128));
	FUZZ_CHECK(mc_prefix_parse(mc_prefix_to_string(p, text), &back) == 0);
	FUZZ_CHECK(mc_prefix_compare(p, &back) == 0);
}

static void check_device(const struct mcw_device *d)
{
	FUZZ_CHECK(d->n_peers <= d->cap_peers && (!d->n_peers || d->peers));
	FUZZ_CHECK(d->listen_port >= 0 && d->listen_port <= 65535);
	for (size_t i = 0; i < d->n_peers; i++) {
		const struct mcw_peer *p = &d->peers[i];

		FUZZ_CHECK(i == 0 ||
			   memcmp(d->peers[i - 1].public_key, p->public_key, MCW_KEY_LEN) != 0);
		if (p->endpoint.family)
			check_ip(&p->endpoint);
		else
			FUZZ_CHECK(p->port == 0);
		FUZZ_CHECK(!p->n_allowed || p->allowed);
		for (size_t j = 0; j < p->n_allowed; j++) {
			check_prefix(&p->allowed[j]);
			FUZZ_CHECK(j == 0 ||
				   mc_prefix_compare(&p->allowed[j - 1], &p->allowed[j]) <= 0);
		}
	}
}

struct rebuilt {
	struct mcw_device d;
	int r;
};

/* The sink of mcw_set_device_messages(): each message read as a dump's. */
static int reparse(struct nl_msg *msg, void *userdata)
{
	struct rebuilt *b = userdata;
	struct nlmsghdr *h = nlmsg_hdr(msg);

	FUZZ_CHECK(h->nlmsg_len <= MCW_MESSAGE_MAX);
	if (b->r == 0)
		b->r = mcw_device_parse(h, &b->d);
	explicit_bzero(h, h->nlmsg_len);
	nlmsg_free(msg);
	return 0;
}

/* What the backend would set of the device reads back as the device: the same peers, keys,
 * endpoints and allowed IPs. */
static void check_rebuilt(const struct mcw_device *d)
{
	struct mcw_peer_change *pcs = calloc(d->n_peers ? d->n_peers : 1, sizeof(*pcs));
	struct mcw_device_change c = {
		.ifname = "mcwg0", .listen_port = -1, .peers = pcs, .n_peers = d->n_peers
	};
	struct rebuilt b = { .r = 0 };

	FUZZ_CHECK(pcs);
	for (size_t i = 0; i < d->n_peers; i++)
		pcs[i] = (struct mcw_peer_change){ .peer = &d->peers[i],
						   .set_endpoint = true,
						   .replace_allowed = true };
	FUZZ_CHECK(mcw_set_device_messages(FAMILY, &c, reparse, &b) == 0);
	FUZZ_CHECK(b.r == 0);
	FUZZ_CHECK(b.d.n_peers == d->n_peers);
	for (size_t i = 0; i < d->n_peers; i++) {
		const struct mcw_peer *p = &d->peers[i], *q = &b.d.peers[i];

		FUZZ_CHECK(memcmp(p->public_key, q->public_key, MCW_KEY_LEN) == 0);
		FUZZ_CHECK(memcmp(&p->endpoint, &q->endpoint, sizeof(p->endpoint)) == 0);
		FUZZ_CHECK(p->port == q->port);
		FUZZ_CHECK(p->n_allowed == q->n_allowed);
		for (size_t j = 0; j < p->n_allowed; j++)
			FUZZ_CHECK(mc_prefix_compare(&p->allowed[j], &q->allowed[j]) == 0);
	}
	mcw_device_clear(&b.d);
	free(pcs);
}

struct dump {
	struct mcw_device d;
	int parse_error;
};

/* parse_into() of transport.c */
static int parse(const struct nlmsghdr *h, void *userdata)
{
	struct dump *dump = userdata;
	int r = mcw_device_parse(h, &dump->d);

	FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
	dump->parse_error = r;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mcw_device zero;
	struct dump dump;

	memset(&dump, 0, sizeof(dump));
	/* Whatever the loop returns, the device holds the messages parsed so far (a dump cut
	 * short, or one that failed, where the caller only clears it). */
	(void)fuzz_nl_receive(data, size, parse, &dump);
	if (!dump.parse_error) {
		check_device(&dump.d);
		check_rebuilt(&dump.d);
	}
	mcw_device_clear(&dump.d);
	FUZZ_CHECK(memcmp(&dump.d, &zero, sizeof(dump.d)) == 0);
	return 0;
}
