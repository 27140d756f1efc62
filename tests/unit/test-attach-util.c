/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attach plugins' pure helpers (plugins/attach-common/util.h): map key forms, key sets,
 * interface globs and the rtnetlink parser, on messages built here as the kernel sends them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cmocka.h>

#include "../../plugins/attach-common/util.h"

static struct mc_ip ip_of(const char *text)
{
	struct mc_ip ip = { 0 };

	ip.family = strchr(text, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(ip.family, text, ip.addr), 1);
	return ip;
}

static struct mci_key key_of(const char *text)
{
	struct mc_ip ip = ip_of(text);
	struct mci_key k;

	mci_key_from_ip(&k, &ip);
	return k;
}

static void test_key_from_ip(void **state)
{
	static const uint8_t mapped[MCI_KEY_SIZE] = { [10] = 0xff, [11] = 0xff, 10, 1, 2, 30 };
	struct mc_ip v6 = ip_of("fd00:1:2::30");
	struct mci_key k;

	(void)state;
	k = key_of("10.1.2.30");
	assert_memory_equal(k.b, mapped, sizeof(mapped));
	mci_key_from_ip(&k, &v6);
	assert_memory_equal(k.b, v6.addr, 16);
	for (size_t i = 16; i < MCI_KEY_SIZE; i++)
		assert_int_equal(k.b[i], 0); /* padding is zero: keys compare with memcmp */
}

static void test_key_from_prefix(void **state)
{
	struct mc_prefix p4 = { .ip = ip_of("10.1.2.0"), .len = 24 };
	struct mc_prefix p6 = { .ip = ip_of("fd00:1:2::"), .len = 64 };
	struct mci_key k;
	uint32_t len;

	(void)state;
	/* struct mc_bpf_prefix: host-endian length, then the 16 address bytes; IPv4 /n is 96 + n */
	mci_key_from_prefix(&k, &p4);
	memcpy(&len, k.b, 4);
	assert_int_equal(len, 96 + 24);
	assert_int_equal(k.b[4 + 10], 0xff);
	assert_int_equal(k.b[4 + 11], 0xff);
	assert_int_equal(k.b[4 + 12], 10);
	assert_int_equal(k.b[4 + 14], 2);
	mci_key_from_prefix(&k, &p6);
	memcpy(&len, k.b, 4);
	assert_int_equal(len, 64);
	assert_memory_equal(&k.b[4], p6.ip.addr, 16);
}

static void test_keys_normalize_and_contains(void **state)
{
	struct mci_key keys[5], probe;
	const char *ips[] = { "10.0.0.3", "10.0.0.1", "10.0.0.3", "fd00::1", "10.0.0.1" };
	size_t n;

	(void)state;
	for (size_t i = 0; i < 5; i++)
		keys[i] = key_of(ips[i]);
	n = mci_keys_normalize(keys, 5);
	assert_int_equal(n, 3);
	for (size_t i = 1; i < n; i++)
		assert_true(mci_key_compare(&keys[i - 1], &keys[i]) < 0);
	for (size_t i = 0; i < 5; i++) {
		probe = key_of(ips[i]);
		assert_true(mci_keys_contains(keys, n, &probe));
	}
	probe = key_of("10.0.0.2");
	assert_false(mci_keys_contains(keys, n, &probe));
	assert_false(mci_keys_contains(keys, 0, &probe));
	assert_int_equal(mci_keys_normalize(keys, 0), 0);
}

static void test_globs(void **state)
{
	(void)state;
	assert_true(mci_globs_match("veth*,lxc*,cali*,mcpod*", "veth1a2b"));
	assert_true(mci_globs_match("veth*,lxc*,cali*,mcpod*", "mcpoda"));
	assert_true(mci_globs_match(" eth0 ,\tbond* ", "bond0"));
	assert_true(mci_globs_match(" eth0 ,\tbond* ", "eth0"));
	assert_false(mci_globs_match(" eth0 ,\tbond* ", "eth1"));
	assert_false(mci_globs_match("veth*", "lo"));
	/* empty globs match nothing, not everything */
	assert_false(mci_globs_match("", "eth0"));
	assert_false(mci_globs_match(" , ,", "eth0"));
	assert_false(mci_globs_match("", ""));
}

/* ---- netlink ---- */

struct batch {
	_Alignas(NLMSG_ALIGNTO) uint8_t buf[4096];
	size_t len;
};

static struct nlmsghdr *msg_begin(struct batch *b, uint16_t type, uint16_t flags,
				  const void *body, size_t body_len)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(b->buf + b->len);

	memset(h, 0, NLMSG_SPACE(body_len));
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	h->nlmsg_len = NLMSG_LENGTH(body_len);
	memcpy(NLMSG_DATA(h), body, body_len);
	return h;
}

static void msg_attr(struct nlmsghdr *h, uint16_t type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((uint8_t *)h + NLMSG_ALIGN(h->nlmsg_len));

	memset(a, 0, RTA_SPACE(len));
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static void msg_end(struct batch *b, struct nlmsghdr *h)
{
	b->len += NLMSG_ALIGN(h->nlmsg_len);
}

static void add_link(struct batch *b, uint16_t type, int ifindex, const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };
	struct nlmsghdr *h = msg_begin(b, type, 0, &ifi, sizeof(ifi));

	if (name)
		msg_attr(h, IFLA_IFNAME, name, strlen(name) + 1);
	msg_end(b, h);
}

static void add_addr(struct batch *b, uint16_t type, int ifindex, const char *local,
		     const char *address)
{
	struct mc_ip l = ip_of(local ? local : address);
	struct ifaddrmsg ifa = { .ifa_family = l.family, .ifa_index = (uint32_t)ifindex };
	struct nlmsghdr *h = msg_begin(b, type, 0, &ifa, sizeof(ifa));
	size_t size = l.family == AF_INET ? 4 : 16;

	/* The kernel puts IFA_ADDRESS first; on a point-to-point link it is the peer's. */
	if (address) {
		struct mc_ip a = ip_of(address);
		msg_attr(h, IFA_ADDRESS, a.addr, size);
	}
	if (local)
		msg_attr(h, IFA_LOCAL, l.addr, size);
	msg_end(b, h);
}

static void add_plain(struct batch *b, uint16_t type, uint16_t flags, const void *body,
		      size_t len)
{
	msg_end(b, msg_begin(b, type, flags, body, len));
}

struct seen {
	struct mci_nl_msg m[8];
	size_t n;
	int fail_at; /* return -ECANCELED for this message (1-based), 0: never */
};

static int record(const struct mci_nl_msg *m, void *userdata)
{
	struct seen *s = userdata;

	if (s->n < 8)
		s->m[s->n] = *m;
	s->n++;
	return (int)s->n == s->fail_at ? -ECANCELED : 0;
}

static void test_nl_links_and_addresses(void **state)
{
	struct batch b = { .len = 0 };
	struct seen s = { .n = 0 };
	struct mc_ip want;
	int zero = 0;

	(void)state;
	add_link(&b, RTM_NEWLINK, 4, "mcpoda");
	add_link(&b, RTM_DELLINK, 5, NULL);
	add_addr(&b, RTM_NEWADDR, 2, "192.168.100.1", "192.168.100.1");
	add_addr(&b, RTM_NEWADDR, 3, "10.0.0.1", "10.0.0.2"); /* point-to-point */
	add_addr(&b, RTM_DELADDR, 2, NULL, "fd00:100::1");
	add_plain(&b, RTM_NEWROUTE, 0, &zero, sizeof(zero)); /* not ours: skipped */
	add_plain(&b, NLMSG_DONE, NLM_F_MULTI, &zero, sizeof(zero));
	add_link(&b, RTM_NEWLINK, 9, "after-done"); /* never read */

	assert_int_equal(mci_nl_parse(b.buf, b.len, record, &s), 1);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.m[0].event, MCI_NL_NEWLINK);
	assert_int_equal(s.m[0].ifindex, 4);
	assert_string_equal(s.m[0].ifname, "mcpoda");
	assert_int_equal(s.m[1].event, MCI_NL_DELLINK);
	assert_int_equal(s.m[1].ifindex, 5);
	assert_string_equal(s.m[1].ifname, "");
	assert_int_equal(s.m[2].event, MCI_NL_NEWADDR);
	want = ip_of("192.168.100.1");
	assert_memory_equal(&s.m[2].addr, &want, sizeof(want));
	want = ip_of("10.0.0.1"); /* IFA_LOCAL wins over the peer's IFA_ADDRESS */
	assert_int_equal(s.m[3].ifindex, 3);
	assert_memory_equal(&s.m[3].addr, &want, sizeof(want));
	assert_int_equal(s.m[4].event, MCI_NL_DELADDR);
	want = ip_of("fd00:100::1");
	assert_memory_equal(&s.m[4].addr, &want, sizeof(want));
}

static void test_nl_long_name_is_cut(void **state)
{
	struct batch b = { .len = 0 };
	struct seen s = { .n = 0 };

	(void)state;
	add_link(&b, RTM_NEWLINK, 4, "a-name-longer-than-ifnamsiz");
	assert_int_equal(mci_nl_parse(b.buf, b.len, record, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(strlen(s.m[0].ifname), 15);
}

static void test_nl_errors(void **state)
{
	struct nlmsgerr err = { .error = -ENODEV };
	struct nlmsgerr ack = { .error = 0 };
	struct ifinfomsg ifi = { .ifi_index = 1 };
	struct batch b;
	struct seen s;

	(void)state;
	/* an acknowledgement is not an error; an error is returned as it is */
	b.len = 0;
	add_plain(&b, NLMSG_ERROR, 0, &ack, sizeof(ack));
	add_plain(&b, NLMSG_ERROR, 0, &err, sizeof(err));
	s = (struct seen){ .n = 0 };
	assert_int_equal(mci_nl_parse(b.buf, b.len, record, &s), -ENODEV);

	/* a dump interrupted by a change: dump again */
	b.len = 0;
	add_plain(&b, RTM_NEWLINK, NLM_F_MULTI | NLM_F_DUMP_INTR, &ifi, sizeof(ifi));
	assert_int_equal(mci_nl_parse(b.buf, b.len, record, &s), -EINTR);
	assert_int_equal(s.n, 0);

	/* a link message too short for its header */
	b.len = 0;
	add_plain(&b, RTM_NEWLINK, 0, &ifi, 4);
	assert_int_equal(mci_nl_parse(b.buf, b.len, record, &s), -EBADMSG);

	/* a batch cut in the middle of a message */
	b.len = 0;
	add_link(&b, RTM_NEWLINK, 4, "eth0");
	add_link(&b, RTM_NEWLINK, 5, "eth1");
	s = (struct seen){ .n = 0 };
	assert_int_equal(mci_nl_parse(b.buf, b.len - 4, record, &s), -EBADMSG);
	assert_int_equal(s.n, 1);

	/* the callback's error stops the batch */
	s = (struct seen){ .n = 0, .fail_at = 1 };
	assert_int_equal(mci_nl_parse(b.buf, b.len, record, &s), -ECANCELED);
	assert_int_equal(s.n, 1);

	/* an address of another family, or none at all, is skipped */
	b.len = 0;
	{
		struct ifaddrmsg ifa = { .ifa_family = AF_PACKET, .ifa_index = 2 };
		struct ifaddrmsg bare = { .ifa_family = AF_INET, .ifa_index = 2 };
		struct nlmsghdr *h = msg_begin(&b, RTM_NEWADDR, 0, &ifa, sizeof(ifa));
		uint8_t six[6] = { 0 };

		msg_attr(h, IFA_ADDRESS, six, sizeof(six));
		msg_end(&b, h);
		add_plain(&b, RTM_NEWADDR, 0, &bare, sizeof(bare));
	}
	s = (struct seen){ .n = 0 };
	assert_int_equal(mci_nl_parse(b.buf, b.len, record, &s), 0);
	assert_int_equal(s.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_from_ip),
		cmocka_unit_test(test_key_from_prefix),
		cmocka_unit_test(test_keys_normalize_and_contains),
		cmocka_unit_test(test_globs),
		cmocka_unit_test(test_nl_links_and_addresses),
		cmocka_unit_test(test_nl_long_name_is_cut),
		cmocka_unit_test(test_nl_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
