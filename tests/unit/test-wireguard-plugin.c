/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The WireGuard backend against the fake host, with both of its kernel transports replaced
 * through the linker's --wrap (transport.c and rtnl.c are not linked): every generic netlink
 * message is captured and its attributes checked, every rtnetlink call recorded in order, and
 * errors are injected where a test chooses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <linux/wireguard.h>

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cmocka.h>

#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#include "../../plugins/backend-wireguard/genl.h"
#include "../../plugins/backend-wireguard/rtnl.h"
#include "fake-host.h"

extern const struct mc_plugin meshcrypt_plugin;

#define PEER_KEY "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="

static struct nlmsghdr *sent[64];
static size_t n_sent;
static char calls[4096]; /* the rtnetlink calls, "name;" each */
static int genl_error, genl_open_errno;
static bool device_exists;

static void reset(void)
{
	for (size_t i = 0; i < n_sent; i++)
		free(sent[i]);
	n_sent = 0;
	calls[0] = '\0';
	genl_error = 0;
}

static void call(const char *what)
{
	strncat(calls, what, sizeof(calls) - strlen(calls) - 2);
	strcat(calls, ";");
}

struct mcw_genl *__wrap_mcw_genl_open(void);
struct mcw_genl *__wrap_mcw_genl_open(void)
{
	static int token;

	if (genl_open_errno) {
		errno = genl_open_errno;
		return NULL;
	}
	return (struct mcw_genl *)&token;
}
void __wrap_mcw_genl_close(struct mcw_genl *g);
void __wrap_mcw_genl_close(struct mcw_genl *g) {}
int __wrap_mcw_genl_family(const struct mcw_genl *g);
int __wrap_mcw_genl_family(const struct mcw_genl *g) { return 0x1d; }
int __wrap_mcw_genl_transact(struct mcw_genl *g, struct nl_msg *msg);
int __wrap_mcw_genl_transact(struct mcw_genl *g, struct nl_msg *msg)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);

	assert_true(n_sent < 64);
	sent[n_sent] = malloc(h->nlmsg_len);
	memcpy(sent[n_sent++], h, h->nlmsg_len);
	nlmsg_free(msg);
	return genl_error;
}
int __wrap_mcw_genl_get_device(struct mcw_genl *g, const char *ifname, struct mcw_device *d);
/* What a device dump shows: no peers, or dumped_peer when it has a key (status tests). */
static struct mcw_peer dumped_peer;
static unsigned dumps;

int __wrap_mcw_genl_get_device(struct mcw_genl *g, const char *ifname, struct mcw_device *d)
{
	static const uint8_t no_key[MCW_KEY_LEN];

	memset(d, 0, sizeof(*d));
	dumps++;
	if (memcmp(dumped_peer.public_key, no_key, MCW_KEY_LEN)) {
		d->peers = calloc(1, sizeof(*d->peers));
		assert_non_null(d->peers);
		memcpy(d->peers, &dumped_peer, sizeof(dumped_peer));
		d->n_peers = d->cap_peers = 1;
	}
	return 0;
}

struct mcw_rtnl *__wrap_mcw_rtnl_open(void);
struct mcw_rtnl *__wrap_mcw_rtnl_open(void) { static int token; return (struct mcw_rtnl *)&token; }
void __wrap_mcw_rtnl_close(struct mcw_rtnl *r);
void __wrap_mcw_rtnl_close(struct mcw_rtnl *r) {}
int __wrap_mcw_link_get(struct mcw_rtnl *r, const char *name, struct mcw_link *out);
int __wrap_mcw_link_get(struct mcw_rtnl *r, const char *name, struct mcw_link *out)
{
	call("link_get");
	if (!device_exists)
		return -ENODEV;
	memset(out, 0, sizeof(*out));
	out->ifindex = 9;
	strcpy(out->kind, "wireguard");
	out->mtu = 1420;
	return 0;
}
int __wrap_mcw_link_add_wireguard(struct mcw_rtnl *r, const char *name);
int __wrap_mcw_link_add_wireguard(struct mcw_rtnl *r, const char *name)
{
	call("link_add");
	device_exists = true;
	return 0;
}
int __wrap_mcw_link_set(struct mcw_rtnl *r, int ifindex, unsigned mtu);
int __wrap_mcw_link_set(struct mcw_rtnl *r, int ifindex, unsigned mtu)
{
	call("link_set");
	return 0;
}
int __wrap_mcw_link_delete(struct mcw_rtnl *r, int ifindex);
int __wrap_mcw_link_delete(struct mcw_rtnl *r, int ifindex) { call("link_delete"); return 0; }
int __wrap_mcw_routes_dump(struct mcw_rtnl *r, uint32_t table, mcw_route_fn fn, void *ud);
int __wrap_mcw_routes_dump(struct mcw_rtnl *r, uint32_t table, mcw_route_fn fn, void *ud)
{
	call("routes_dump");
	return 0;
}
int __wrap_mcw_route_set(struct mcw_rtnl *r, bool add, uint32_t table, const struct mc_prefix *dst,
			 int oif);
int __wrap_mcw_route_set(struct mcw_rtnl *r, bool add, uint32_t table, const struct mc_prefix *dst,
			 int oif)
{
	char t[MC_PREFIX_STRLEN], what[96];

	assert_int_equal(table, 0x6d63);
	snprintf(what, sizeof(what), "route_%s %s%s", add ? "add" : "del", mc_prefix_to_string(dst, t),
		 add && oif == 9 ? " dev" : "");
	call(what);
	return 0;
}
int __wrap_mcw_rules_dump(struct mcw_rtnl *r, uint32_t table, mcw_rule_fn fn, void *ud);
int __wrap_mcw_rules_dump(struct mcw_rtnl *r, uint32_t table, mcw_rule_fn fn, void *ud)
{
	call("rules_dump");
	return 0;
}
int __wrap_mcw_rule_set(struct mcw_rtnl *r, bool add, const struct mcw_rule *rule);
int __wrap_mcw_rule_set(struct mcw_rtnl *r, bool add, const struct mcw_rule *rule)
{
	char what[96];

	snprintf(what, sizeof(what), "rule_%s %s 0x%x/0x%x prio %u", add ? "add" : "del",
		 rule->family == AF_INET ? "4" : "6", rule->mark, rule->mask, rule->priority);
	call(what);
	return 0;
}
int __wrap_mcw_set_src_valid_mark(const char *name);
int __wrap_mcw_set_src_valid_mark(const char *name) { call("src_valid_mark"); return 0; }

/* ---- states ---- */

static struct mc_local_state *local_node1(void)
{
	static struct mc_ip addrs[2];
	static struct mc_local_state l;

	addrs[0] = fake_ip("192.168.100.1");
	addrs[1] = fake_ip("fd00:100::1");
	memset(&l, 0, sizeof(l));
	l.name = (char *)"node1";
	l.known = l.participating = true;
	l.addresses = addrs;
	l.n_addresses = 2;
	return &l;
}

static struct mc_peer_state *peer_node2(void)
{
	static struct mc_ip addrs[2];
	static struct mc_prefix prefixes[2];
	static struct mc_peer_state p;

	addrs[0] = fake_ip("192.168.100.2");
	addrs[1] = fake_ip("fd00:100::2");
	prefixes[0] = fake_prefix("10.1.2.0/24");
	prefixes[1] = fake_prefix("fd00:1:2::/64");
	memset(&p, 0, sizeof(p));
	p.peer_id = 42;
	p.name = (char *)"node2";
	p.present = true;
	p.addresses = addrs;
	p.n_addresses = 2;
	memcpy(p.wireguard_public_key, PEER_KEY, sizeof(PEER_KEY));
	p.prefixes = prefixes;
	p.n_prefixes = 2;
	p.peer_index = 7;
	return &p;
}

static char state_dir[64];

static struct fake_host *up(void)
{
	struct fake_host *fh = fake_host_new();

	snprintf(state_dir, sizeof(state_dir), "/tmp/test-wgp-XXXXXX");
	assert_non_null(mkdtemp(state_dir));
	fake_host_set_state_dir(fh, state_dir);
	fake_host_set_config(fh, "device", "mcwg0");
	fake_host_set_config(fh, "listen_port", "51830");
	fake_host_set_config(fh, "route_table", "0x6d63");
	fake_host_set_config(fh, "mtu", "1400");
	device_exists = false;
	genl_open_errno = 0;
	reset();
	return fh;
}

static void down(struct fake_host *fh)
{
	char cmd[128];

	meshcrypt_plugin.fini(fake_host_ctx(fh));
	fake_host_free(fh);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
	assert_int_equal(system(cmd), 0);
	reset();
}

/* The peers of a captured SET_DEVICE: flags of the first and the number of allowed IPs. */
static size_t peers_in(const struct nlmsghdr *h, uint32_t *flags, size_t *n_allowed, bool *endpoint)
{
	struct nlattr *tb[WGDEVICE_A_MAX + 1], *peer;
	size_t n = 0;
	int rem;

	assert_int_equal(genlmsg_parse((struct nlmsghdr *)h, 0, tb, WGDEVICE_A_MAX, NULL), 0);
	if (!tb[WGDEVICE_A_PEERS])
		return 0;
	nla_for_each_nested(peer, tb[WGDEVICE_A_PEERS], rem) {
		struct nlattr *p[WGPEER_A_MAX + 1], *ip;
		int rem2;

		assert_int_equal(nla_parse_nested(p, WGPEER_A_MAX, peer, NULL), 0);
		*flags = p[WGPEER_A_FLAGS] ? nla_get_u32(p[WGPEER_A_FLAGS]) : 0;
		*endpoint = p[WGPEER_A_ENDPOINT] != NULL;
		*n_allowed = 0;
		if (p[WGPEER_A_ALLOWEDIPS])
			nla_for_each_nested(ip, p[WGPEER_A_ALLOWEDIPS], rem2)
				(*n_allowed)++;
		n++;
	}
	return n;
}

static void test_local_then_peer(void **state)
{
	struct fake_host *fh = up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct nlattr *tb[WGDEVICE_A_MAX + 1];
	uint32_t flags;
	size_t n_allowed;
	bool endpoint;
	char path[128];

	(void)state;
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	snprintf(path, sizeof(path), "%s/wireguard.key", state_dir);
	assert_int_equal(access(path, R_OK), 0);
	{
		struct mc_publication pub;

		/* the public key goes to the source for the node's MeshcryptNode */
		assert_int_equal(fake_host_published(fh, &pub), 1);
		assert_int_equal(strlen(pub.wireguard_public_key), 44);
	}
	/* a peer before the device: wait */
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), -EAGAIN);
	assert_int_equal(n_sent, 0);

	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	assert_string_equal(calls, "link_get;link_add;link_get;link_set;src_valid_mark;rules_dump;"
				   "rule_add 4 0xe0/0xf0 prio 100;rule_add 4 0xd0/0xf0 prio 101;"
				   "rule_add 6 0xe0/0xf0 prio 100;rule_add 6 0xd0/0xf0 prio 101;"
				   "routes_dump;");
	/* the device's private key and port, no peers, never REPLACE_PEERS */
	assert_int_equal(n_sent, 1);
	assert_int_equal(genlmsg_parse(sent[0], 0, tb, WGDEVICE_A_MAX, NULL), 0);
	assert_non_null(tb[WGDEVICE_A_PRIVATE_KEY]);
	assert_int_equal(nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]), 51830);
	assert_null(tb[WGDEVICE_A_FLAGS]);
	assert_null(tb[WGDEVICE_A_PEERS]);
	reset();

	/* the peer, then its routes */
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(n_sent, 1);
	assert_int_equal(peers_in(sent[0], &flags, &n_allowed, &endpoint), 1);
	assert_int_equal(flags, WGPEER_F_REPLACE_ALLOWEDIPS);
	assert_true(endpoint);
	assert_int_equal(n_allowed, 2);
	assert_string_equal(calls, "route_add 10.1.2.0/24 dev;route_add fd00:1:2::/64 dev;");
	reset();

	/* again: nothing */
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(n_sent, 0);
	assert_string_equal(calls, "");

	/* a prefix less: the allowed IPs replaced, that route removed */
	peer_node2()->n_prefixes = 1;
	{
		struct mc_peer_state *p = peer_node2();

		p->n_prefixes = 1;
		assert_int_equal(ops->peer_apply(ctx, p), 0);
		assert_int_equal(n_sent, 1);
		assert_int_equal(peers_in(sent[0], &flags, &n_allowed, &endpoint), 1);
		assert_int_equal(flags, WGPEER_F_REPLACE_ALLOWEDIPS);
		assert_false(endpoint); /* unchanged: not sent */
		assert_int_equal(n_allowed, 1);
		assert_string_equal(calls, "route_del fd00:1:2::/64;");
		reset();

		/* the peer leaves: routes first, then the peer */
		p->present = false;
		assert_int_equal(ops->peer_apply(ctx, p), 0);
		assert_string_equal(calls, "route_del 10.1.2.0/24;");
		assert_int_equal(n_sent, 1);
		assert_int_equal(peers_in(sent[0], &flags, &n_allowed, &endpoint), 1);
		assert_int_equal(flags, WGPEER_F_REMOVE_ME);
	}
	down(fh);
}

/* Status and /metrics read the handshake and the transfer from one device dump, shared. */
static void test_handshake_in_status_and_metrics(void **state)
{
	struct fake_host *fh = up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct mc_metrics *metrics = fake_host_enable_metrics(fh);
	char status[512], *text;

	(void)state;
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(mcw_key_from_base64(PEER_KEY, dumped_peer.public_key), 0);
	dumped_peer.last_handshake_sec = time(NULL) - 5;
	dumped_peer.rx_bytes = 1000;
	dumped_peer.tx_bytes = 2000;
	dumps = 0;

	assert_int_equal(ops->peer_status(ctx, 7, status, sizeof(status)), 0);
	assert_non_null(strstr(status, "WireGuard peer " PEER_KEY));
	assert_true(strstr(status, "latest handshake 5 s ago, 1000 bytes received, 2000 sent") ||
		    strstr(status, "latest handshake 6 s ago, 1000 bytes received, 2000 sent"));
	text = mc_metrics_render(metrics, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "meshcrypt_wireguard_peer_receive_bytes_total{peer=\"node2\"} 1000\n"));
	assert_non_null(strstr(text, "meshcrypt_wireguard_peer_transmit_bytes_total{peer=\"node2\"} 2000\n"));
	assert_non_null(strstr(text, "meshcrypt_wireguard_peer_last_handshake_seconds{peer=\"node2\"} "));
	free(text);
	assert_int_equal(dumps, 1);

	/* no handshake yet: said so, and 0 */
	memset(&dumped_peer, 0, sizeof(dumped_peer));
	down(fh);
	fh = up();
	ctx = fake_host_ctx(fh);
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(mcw_key_from_base64(PEER_KEY, dumped_peer.public_key), 0);
	assert_int_equal(ops->peer_status(ctx, 7, status, sizeof(status)), 0);
	assert_non_null(strstr(status, "; no handshake yet"));
	assert_int_equal(ops->peer_status(ctx, 8, status, sizeof(status)), -ENOENT);
	memset(&dumped_peer, 0, sizeof(dumped_peer));
	down(fh);
}

static void test_errors(void **state)
{
	static const int errors[] = { -EEXIST, -ENOMEM, -EPERM };
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;

	(void)state;
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		struct fake_host *fh = up();
		struct mc_plugin_ctx *ctx = fake_host_ctx(fh);

		assert_int_equal(meshcrypt_plugin.init(ctx), 0);
		assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
		reset();
		genl_error = errors[i];
		assert_int_equal(ops->peer_apply(ctx, peer_node2()), errors[i]);
		/* no route to a device that lacks the peer */
		assert_string_equal(calls, "");
		genl_error = 0;
		reset();
		assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
		assert_int_equal(n_sent, 1);
		assert_string_equal(calls, "route_add 10.1.2.0/24 dev;route_add fd00:1:2::/64 dev;");
		down(fh);
	}
}

static void test_bad_peer_key_and_no_module(void **state)
{
	struct fake_host *fh = up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct mc_peer_state *p;

	(void)state;
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	reset();
	p = peer_node2();
	strcpy(p->wireguard_public_key, "not-a-key");
	assert_int_equal(ops->peer_apply(ctx, p), -MC_EPERMANENT);
	assert_non_null(fake_host_log_find(fh, LOG_ERR, "peer node2 publishes no valid WireGuard public key"));
	assert_int_equal(n_sent, 0);
	down(fh);

	fh = up();
	genl_open_errno = ENOENT;
	assert_int_equal(meshcrypt_plugin.init(fake_host_ctx(fh)), -ENOENT);
	assert_non_null(fake_host_log_find(fh, LOG_ERR, "this kernel has no WireGuard"));
	down(fh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_then_peer),
		cmocka_unit_test(test_handshake_in_status_and_metrics),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bad_peer_key_and_no_module),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
