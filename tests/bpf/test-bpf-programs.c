/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The eBPF dataplane programs (bpf/meshcrypt.bpf.c, DESIGN.md §3-§5) run on packets built
 * here, through BPF_PROG_TEST_RUN: each case gives a program, a config, a packet (addresses
 * by their role in a small cluster, below), the mark it arrives with, and what must come out:
 * the verdict, the mark, the counters. Every case runs once for IPv4 and once for IPv6.
 *
 * Needs root and a kernel that runs tc programs under BPF_PROG_TEST_RUN; without them it
 * prints why and exits 77 before cmocka starts. The maps are never pinned: their pin paths
 * are cleared before the object is loaded, so the machine's bpffs is not touched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>

#include "meshcrypt-maps.h"
#include "meshcrypt.skel.h"

/* The marks of the config written here: the defaults of DESIGN.md §4. */
#define ENCRYPT 0xe0u
#define DECRYPT 0xd0u
#define ROLE_MASK 0xf0u
#define PEER_MASK 0xffff0000u
#define PEER_SHIFT 16
#define KUBE_PROXY 0x4000u /* kube-proxy's mark bit: never ours to touch */
#define PEER_INDEX 7u      /* the index of the one participating peer */
#define WG_PORT 51830

static struct meshcrypt_bpf *skel;

/* The cluster, by role; every host has an IPv4 and an IPv6 address. */
enum host {
	LOCAL_POD,        /* managed, on this node: local_pods, inside local_cidrs */
	LOCAL_UNMANAGED,  /* unmanaged, on this node: inside local_cidrs only */
	LOCAL_OUTSIDE,    /* managed, on this node, outside its pod CIDRs: local_pods only */
	REMOTE_POD,       /* managed, on the peer: remote_pods, inside peer_prefixes */
	REMOTE_UNMANAGED, /* unmanaged, on the peer: inside peer_prefixes only */
	OTHER_POD,        /* a pod of a node that does not participate: in no map */
	CLUSTER_IP,       /* a Service address, before DNAT */
	INTERNET,
	NODE,         /* this node's address */
	PEER_NODE,    /* the peer's node address: peers -> PEER_INDEX */
	UNKNOWN_NODE, /* a node address that is not a peer's */
};

/* clang-format off */
static const struct {
	const char *v4, *v6;
} hosts[] = {
	[LOCAL_POD] = { "10.0.1.5", "fd00:10:1::5" },
	[LOCAL_UNMANAGED] = { "10.0.1.6", "fd00:10:1::6" },
	[LOCAL_OUTSIDE] = { "10.0.9.3", "fd00:10:9::3" },
	[REMOTE_POD] = { "10.1.2.7", "fd00:11:2::7" },
	[REMOTE_UNMANAGED] = { "10.1.2.8", "fd00:11:2::8" },
	[OTHER_POD] = { "10.2.0.5", "fd00:12::5" },
	[CLUSTER_IP] = { "10.96.0.10", "fd00:96::a" },
	[INTERNET] = { "93.184.216.34", "2606:2800:220:1::34" },
	[NODE] = { "192.168.1.10", "fd00:192::10" },
	[PEER_NODE] = { "192.168.1.20", "fd00:192::20" },
	[UNKNOWN_NODE] = { "192.168.1.99", "fd00:192::99" },
};

/* The prefixes: this node's pod CIDR, the peer's. */
static const struct {
	const char *v4;
	unsigned len4;
	const char *v6;
	unsigned len6;
} local_cidr = { "10.0.1.0", 24, "fd00:10:1::", 64 },
  peer_prefix = { "10.1.2.0", 24, "fd00:11:2::", 64 };
/* clang-format on */

enum prog {
	POD,
	NODE_IN,
	TUNNEL,
	GUARD,
};

/* The config entry; the zero value is the default one. */
enum config {
	CFG_DEFAULT,     /* inbound = require, leak_guard = drop */
	CFG_PERMIT,      /* inbound = permit */
	CFG_GUARD_COUNT, /* leak_guard = count */
	CFG_GUARD_OFF,   /* leak_guard = off */
	CFG_ABSENT,      /* never written: layout_version 0 */
	CFG_NEWER,       /* written for another layout: as good as absent */
};

enum l4 {
	UDP,
	TCP,
	ESP,
	WIREGUARD, /* UDP from and to port WG_PORT */
};

enum frame {
	ETHER,  /* Ethernet, IP, the L4 header and a few bytes */
	L3,     /* the same without Ethernet, as on mcwg0 */
	NOT_IP, /* the same with EtherType ARP: for the programs, no IP packet */
};

struct bpf_case {
	const char *name;
	enum prog prog;
	enum config config;
	enum host src, dst;
	enum l4 l4;
	enum frame frame;
	uint32_t mark_in, mark_out;
	bool shot; /* TC_ACT_SHOT; else TC_ACT_UNSPEC, the only other verdict */
	struct mc_bpf_stats stats;
};

/* The role and peer index ESP from PEER_NODE gets. */
#define FROM_PEER (DECRYPT | PEER_INDEX << PEER_SHIFT)

/* clang-format off */
static const struct bpf_case cases[] = {
	/* pod ingress: a managed pod's packet gets the role, whatever its destination */
	{ "pod: managed -> ClusterIP", POD, .src = LOCAL_POD, .dst = CLUSTER_IP, .l4 = TCP,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY | ENCRYPT, .stats = { .marked = 1 } },
	{ "pod: managed -> peer pod", POD, .src = LOCAL_POD, .dst = REMOTE_POD,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY | ENCRYPT, .stats = { .marked = 1 } },
	{ "pod: managed -> internet", POD, .src = LOCAL_POD, .dst = INTERNET, .l4 = TCP,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY | ENCRYPT, .stats = { .marked = 1 } },
	{ "pod: managed -> this node", POD, .src = LOCAL_POD, .dst = NODE,
	  .mark_in = 0, .mark_out = ENCRYPT, .stats = { .marked = 1 } },
	{ "pod: managed outside the pod CIDRs -> peer pod", POD, .src = LOCAL_OUTSIDE,
	  .dst = REMOTE_POD, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY | ENCRYPT,
	  .stats = { .marked = 1 } },
	{ "pod: managed, another role replaced, other bits kept", POD, .src = LOCAL_POD,
	  .dst = REMOTE_POD, .mark_in = 0x0005c030, .mark_out = 0x0005c000 | ENCRYPT,
	  .stats = { .marked = 1 } },
	{ "pod: unmanaged -> peer pod", POD, .src = LOCAL_UNMANAGED, .dst = REMOTE_POD,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },
	{ "pod: unmanaged -> ClusterIP", POD, .src = LOCAL_UNMANAGED, .dst = CLUSTER_IP, .l4 = TCP,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },
	{ "pod: not IP", POD, .src = LOCAL_POD, .dst = REMOTE_POD,
	  .frame = NOT_IP, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },
	{ "pod: no config", POD, CFG_ABSENT, .src = LOCAL_POD, .dst = REMOTE_POD,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },
	{ "pod: a config of another layout", POD, CFG_NEWER, .src = LOCAL_POD, .dst = REMOTE_POD,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },

	/* node ingress: ESP from a peer gets the role and the peer's index */
	{ "node: ESP from the peer", NODE_IN, .src = PEER_NODE, .dst = NODE, .l4 = ESP,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY | FROM_PEER, .stats = { .esp_in = 1 } },
	{ "node: ESP from the peer, a stale role and index replaced", NODE_IN, .src = PEER_NODE,
	  .dst = NODE, .l4 = ESP, .mark_in = 0x00094030, .mark_out = KUBE_PROXY | FROM_PEER,
	  .stats = { .esp_in = 1 } },
	{ "node: ESP from an unknown address", NODE_IN, .src = UNKNOWN_NODE, .dst = NODE,
	  .l4 = ESP, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY, .stats = { .passed = 1 } },
	{ "node: decrypted and re-injected keeps its mark", NODE_IN, .src = REMOTE_POD,
	  .dst = LOCAL_POD, .mark_in = FROM_PEER, .mark_out = FROM_PEER,
	  .stats = { .decrypted_seen = 1 } },
	{ "node: decrypted, other bits kept", NODE_IN, .src = REMOTE_POD, .dst = LOCAL_UNMANAGED,
	  .l4 = TCP, .mark_in = KUBE_PROXY | FROM_PEER, .mark_out = KUBE_PROXY | FROM_PEER,
	  .stats = { .decrypted_seen = 1 } },
	{ "node: a spoofed encrypt role is cleared", NODE_IN, .src = INTERNET, .dst = LOCAL_POD,
	  .l4 = TCP, .mark_in = KUBE_PROXY | ENCRYPT, .mark_out = KUBE_PROXY,
	  .stats = { .passed = 1 } },
	{ "node: a spoofed role 0x30 is cleared", NODE_IN, .src = UNKNOWN_NODE, .dst = NODE,
	  .mark_in = KUBE_PROXY | 0x30, .mark_out = KUBE_PROXY, .stats = { .passed = 1 } },
	{ "node: require drops managed remote -> managed local pod", NODE_IN, .src = REMOTE_POD,
	  .dst = LOCAL_POD, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY, .shot = true,
	  .stats = { .strict_drop = 1 } },
	{ "node: require drops managed remote -> local pod CIDR", NODE_IN, .src = REMOTE_POD,
	  .dst = LOCAL_UNMANAGED, .l4 = TCP, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY,
	  .shot = true, .stats = { .strict_drop = 1 } },
	{ "node: require drops managed remote -> local pod outside the CIDRs", NODE_IN,
	  .src = REMOTE_POD, .dst = LOCAL_OUTSIDE, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY,
	  .shot = true, .stats = { .strict_drop = 1 } },
	{ "node: require drops it with a spoofed role too", NODE_IN, .src = REMOTE_POD,
	  .dst = LOCAL_POD, .mark_in = KUBE_PROXY | ENCRYPT, .mark_out = KUBE_PROXY, .shot = true,
	  .stats = { .strict_drop = 1 } },
	{ "node: require passes unmanaged remote -> managed local pod", NODE_IN,
	  .src = REMOTE_UNMANAGED, .dst = LOCAL_POD, .l4 = TCP, .mark_in = KUBE_PROXY,
	  .mark_out = KUBE_PROXY, .stats = { .passed = 1 } },
	{ "node: require passes managed remote -> this node", NODE_IN, .src = REMOTE_POD,
	  .dst = NODE, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY, .stats = { .passed = 1 } },
	{ "node: permit passes managed remote -> managed local pod", NODE_IN, CFG_PERMIT,
	  .src = REMOTE_POD, .dst = LOCAL_POD, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY,
	  .stats = { .passed = 1 } },
	{ "node: permit passes managed remote -> local pod CIDR", NODE_IN, CFG_PERMIT,
	  .src = REMOTE_POD, .dst = LOCAL_UNMANAGED, .l4 = TCP, .mark_in = KUBE_PROXY,
	  .mark_out = KUBE_PROXY, .stats = { .passed = 1 } },
	{ "node: not IP", NODE_IN, .src = REMOTE_POD, .dst = LOCAL_POD,
	  .frame = NOT_IP, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },
	{ "node: no config, ESP from the peer", NODE_IN, CFG_ABSENT, .src = PEER_NODE,
	  .dst = NODE, .l4 = ESP, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },
	{ "node: no config, managed remote -> managed local pod", NODE_IN, CFG_ABSENT,
	  .src = REMOTE_POD, .dst = LOCAL_POD, .mark_in = KUBE_PROXY | ENCRYPT,
	  .mark_out = KUBE_PROXY | ENCRYPT },

	/* tunnel ingress: everything on mcwg0 was decrypted; the program reads no header */
	{ "tunnel: decrypted", TUNNEL, .src = REMOTE_POD, .dst = LOCAL_POD, .frame = L3,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY | DECRYPT,
	  .stats = { .decrypted_seen = 1 } },
	{ "tunnel: another role replaced, other bits kept", TUNNEL, .src = REMOTE_POD,
	  .dst = LOCAL_POD, .frame = L3, .mark_in = 0x0005c0e0, .mark_out = 0x0005c000 | DECRYPT,
	  .stats = { .decrypted_seen = 1 } },
	{ "tunnel: any bytes, an Ethernet frame too", TUNNEL, .src = INTERNET, .dst = NODE,
	  .l4 = TCP, .mark_in = 0, .mark_out = DECRYPT, .stats = { .decrypted_seen = 1 } },
	{ "tunnel: no config", TUNNEL, CFG_ABSENT, .src = REMOTE_POD, .dst = LOCAL_POD,
	  .frame = L3, .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY },

	/* the guard: plaintext from a managed local pod into a peer's prefixes is a leak */
	{ "guard: drop: managed -> peer pod", GUARD, .src = LOCAL_POD, .dst = REMOTE_POD,
	  .mark_in = KUBE_PROXY | ENCRYPT, .mark_out = KUBE_PROXY | ENCRYPT, .shot = true,
	  .stats = { .leak_dropped = 1 } },
	{ "guard: drop: managed -> unmanaged pod in the peer's prefix", GUARD, .src = LOCAL_POD,
	  .dst = REMOTE_UNMANAGED, .l4 = TCP, .mark_in = ENCRYPT, .mark_out = ENCRYPT,
	  .shot = true, .stats = { .leak_dropped = 1 } },
	{ "guard: drop: managed outside the pod CIDRs -> peer pod", GUARD, .src = LOCAL_OUTSIDE,
	  .dst = REMOTE_POD, .mark_in = ENCRYPT, .mark_out = ENCRYPT, .shot = true,
	  .stats = { .leak_dropped = 1 } },
	{ "guard: ESP between node addresses passes", GUARD, .src = NODE, .dst = PEER_NODE,
	  .l4 = ESP, .mark_in = KUBE_PROXY | ENCRYPT, .mark_out = KUBE_PROXY | ENCRYPT,
	  .stats = { .passed = 1 } },
	{ "guard: WireGuard between node addresses passes", GUARD, .src = NODE, .dst = PEER_NODE,
	  .l4 = WIREGUARD, .mark_in = 0, .mark_out = 0, .stats = { .passed = 1 } },
	{ "guard: unmanaged -> peer pod passes", GUARD, .src = LOCAL_UNMANAGED, .dst = REMOTE_POD,
	  .mark_in = KUBE_PROXY, .mark_out = KUBE_PROXY, .stats = { .passed = 1 } },
	{ "guard: managed -> a non-participating node's pod passes", GUARD, .src = LOCAL_POD,
	  .dst = OTHER_POD, .l4 = TCP, .mark_in = ENCRYPT, .mark_out = ENCRYPT,
	  .stats = { .passed = 1 } },
	{ "guard: managed -> internet passes", GUARD, .src = LOCAL_POD, .dst = INTERNET,
	  .l4 = TCP, .mark_in = KUBE_PROXY | ENCRYPT, .mark_out = KUBE_PROXY | ENCRYPT,
	  .stats = { .passed = 1 } },
	{ "guard: count: the leak is counted and passes", GUARD, CFG_GUARD_COUNT,
	  .src = LOCAL_POD, .dst = REMOTE_POD, .mark_in = ENCRYPT, .mark_out = ENCRYPT,
	  .stats = { .leak_dropped = 1 } },
	{ "guard: count: unmanaged -> peer pod passes", GUARD, CFG_GUARD_COUNT,
	  .src = LOCAL_UNMANAGED, .dst = REMOTE_POD, .mark_in = 0, .mark_out = 0,
	  .stats = { .passed = 1 } },
	{ "guard: off: the leak passes, not counted", GUARD, CFG_GUARD_OFF, .src = LOCAL_POD,
	  .dst = REMOTE_POD, .mark_in = ENCRYPT, .mark_out = ENCRYPT },
	{ "guard: not IP passes", GUARD, .src = LOCAL_POD, .dst = REMOTE_POD,
	  .frame = NOT_IP, .mark_in = ENCRYPT, .mark_out = ENCRYPT },
	/* maps.h: until the config is written the guard fails closed */
	{ "guard: no config: the leak is dropped", GUARD, CFG_ABSENT, .src = LOCAL_POD,
	  .dst = REMOTE_POD, .mark_in = ENCRYPT, .mark_out = ENCRYPT, .shot = true,
	  .stats = { .leak_dropped = 1 } },
	{ "guard: a config of another layout: the leak is dropped", GUARD, CFG_NEWER,
	  .src = LOCAL_POD, .dst = REMOTE_POD, .mark_in = ENCRYPT, .mark_out = ENCRYPT,
	  .shot = true, .stats = { .leak_dropped = 1 } },
	{ "guard: no config: ESP passes", GUARD, CFG_ABSENT, .src = NODE, .dst = PEER_NODE,
	  .l4 = ESP, .mark_in = 0, .mark_out = 0, .stats = { .passed = 1 } },
};
/* clang-format on */

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* One case for one family: the cmocka state of a test. */
struct instance {
	const struct bpf_case *c;
	int family;
	char name[128];
};

static void addr_parse(struct mc_bpf_addr *a, int family, const char *text)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		a->bytes[10] = 0xff;
		a->bytes[11] = 0xff;
		if (inet_pton(AF_INET, text, &a->bytes[12]) != 1)
			abort();
	} else if (inet_pton(AF_INET6, text, a->bytes) != 1) {
		abort();
	}
}

static void host_addr(struct mc_bpf_addr *a, int family, enum host h)
{
	addr_parse(a, family, family == AF_INET ? hosts[h].v4 : hosts[h].v6);
}

static uint16_t ip_checksum(const void *header, size_t len)
{
	const uint8_t *p = header;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* The L4 header and a few payload bytes; the programs read no L4 checksum. */
static size_t build_l4(uint8_t *buf, enum l4 l4, uint8_t *proto)
{
	static const uint8_t payload[16] = "meshcrypt-test!";

	switch (l4) {
	case UDP:
	case WIREGUARD: {
		uint16_t port = l4 == WIREGUARD ? WG_PORT : 5353;
		struct udphdr udp = { .source = htons(l4 == WIREGUARD ? WG_PORT : 40000),
				      .dest = htons(port),
				      .len = htons(sizeof(udp) + sizeof(payload)) };

		*proto = IPPROTO_UDP;
		memcpy(buf, &udp, sizeof(udp));
		memcpy(buf + sizeof(udp), payload, sizeof(payload));
		return sizeof(udp) + sizeof(payload);
	}
	case TCP: {
		struct tcphdr tcp = { .source = htons(40000), .dest = htons(443), .seq = htonl(1) };

		tcp.doff = sizeof(tcp) / 4;
		tcp.syn = 1;
		tcp.window = htons(65535);
		*proto = IPPROTO_TCP;
		memcpy(buf, &tcp, sizeof(tcp));
		return sizeof(tcp);
	}
	case ESP: {
		uint32_t spi_seq[2] = { htonl(0x1000), htonl(1) };

		*proto = IPPROTO_ESP;
		memcpy(buf, spi_seq, sizeof(spi_seq));
		memcpy(buf + sizeof(spi_seq), payload, sizeof(payload));
		return sizeof(spi_seq) + sizeof(payload);
	}
	}
	abort();
}

/* The case's packet in buf (at least 256 bytes); returns its length. */
static size_t build_packet(uint8_t *buf, const struct bpf_case *c, int family)
{
	struct mc_bpf_addr src, dst;
	uint8_t l4[64], proto;
	size_t l4_len = build_l4(l4, c->l4, &proto), off = 0, ip_len;

	host_addr(&src, family, c->src);
	host_addr(&dst, family, c->dst);
	if (c->frame != L3) {
		uint16_t type = family == AF_INET ? ETHERTYPE_IP : ETHERTYPE_IPV6;
		struct ether_header eth = {
			.ether_dhost = { 0x02, 0, 0, 0, 0, 0x01 },
			.ether_shost = { 0x02, 0, 0, 0, 0, 0x02 },
			.ether_type = htons(c->frame == NOT_IP ? ETHERTYPE_ARP : type),
		};

		memcpy(buf, &eth, sizeof(eth));
		off = sizeof(eth);
	}
	if (family == AF_INET) {
		struct iphdr ip = { .version = 4, .ihl = 5, .ttl = 64, .protocol = proto };

		ip_len = sizeof(ip);
		ip.tot_len = htons((uint16_t)(ip_len + l4_len));
		memcpy(&ip.saddr, &src.bytes[12], 4);
		memcpy(&ip.daddr, &dst.bytes[12], 4);
		ip.check = ip_checksum(&ip, sizeof(ip));
		memcpy(buf + off, &ip, sizeof(ip));
	} else {
		struct ip6_hdr ip6 = { .ip6_flow = htonl(6u << 28),
				       .ip6_plen = htons((uint16_t)l4_len),
				       .ip6_nxt = proto,
				       .ip6_hlim = 64 };

		ip_len = sizeof(ip6);
		memcpy(&ip6.ip6_src, src.bytes, 16);
		memcpy(&ip6.ip6_dst, dst.bytes, 16);
		memcpy(buf + off, &ip6, sizeof(ip6));
	}
	memcpy(buf + off + ip_len, l4, l4_len);
	return off + ip_len + l4_len;
}

static struct bpf_program *program(enum prog p)
{
	switch (p) {
	case POD:
		return skel->progs.mc_pod_ingress;
	case NODE_IN:
		return skel->progs.mc_node_ingress;
	case TUNNEL:
		return skel->progs.mc_tunnel_ingress;
	case GUARD:
		return skel->progs.mc_guard;
	}
	abort();
}

static void write_config(enum config cfg)
{
	struct mc_bpf_config conf = { 0 };
	uint32_t zero = 0;

	if (cfg != CFG_ABSENT)
		conf = (struct mc_bpf_config){
			.layout_version = MC_BPF_LAYOUT_VERSION + (cfg == CFG_NEWER),
			.encrypt_mark = ENCRYPT,
			.decrypt_mark = DECRYPT,
			.role_mask = ROLE_MASK,
			.peer_mask = PEER_MASK,
			.peer_shift = PEER_SHIFT,
			.inbound = cfg == CFG_PERMIT ? MC_BPF_INBOUND_PERMIT
						     : MC_BPF_INBOUND_REQUIRE,
			.leak_guard = cfg == CFG_GUARD_COUNT ? MC_BPF_GUARD_COUNT
				      : cfg == CFG_GUARD_OFF ? MC_BPF_GUARD_OFF
							     : MC_BPF_GUARD_DROP,
		};
	assert_int_equal(bpf_map__update_elem(skel->maps.config, &zero, sizeof(zero), &conf,
					      sizeof(conf), BPF_ANY),
			 0);
}

/* The per-CPU counters: zeroed (sum == NULL) or summed into sum. */
static void stats_op(struct mc_bpf_stats *sum)
{
	int ncpus = libbpf_num_possible_cpus();
	struct mc_bpf_stats *v;
	uint32_t zero = 0;

	assert_true(ncpus > 0);
	v = calloc((size_t)ncpus, sizeof(*v));
	assert_non_null(v);
	if (!sum) {
		assert_int_equal(bpf_map__update_elem(skel->maps.stats, &zero, sizeof(zero), v,
						      (size_t)ncpus * sizeof(*v), BPF_ANY),
				 0);
		free(v);
		return;
	}
	assert_int_equal(bpf_map__lookup_elem(skel->maps.stats, &zero, sizeof(zero), v,
					      (size_t)ncpus * sizeof(*v), 0),
			 0);
	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < ncpus; i++) {
		sum->marked += v[i].marked;
		sum->esp_in += v[i].esp_in;
		sum->decrypted_seen += v[i].decrypted_seen;
		sum->strict_drop += v[i].strict_drop;
		sum->leak_dropped += v[i].leak_dropped;
		sum->passed += v[i].passed;
	}
	free(v);
}

static void check_stats(const struct mc_bpf_stats *got, const struct mc_bpf_stats *want)
{
	bool ok = true;

#define CHECK(field)                                                                               \
	do {                                                                                       \
		if (got->field != want->field) {                                                   \
			print_error("stats." #field " = %llu, expected %llu\n",                    \
				    (unsigned long long)got->field,                                \
				    (unsigned long long)want->field);                              \
			ok = false;                                                                \
		}                                                                                  \
	} while (0)
	CHECK(marked);
	CHECK(esp_in);
	CHECK(decrypted_seen);
	CHECK(strict_drop);
	CHECK(leak_dropped);
	CHECK(passed);
#undef CHECK
	if (!ok)
		fail_msg("counters differ");
}

static void test_case(void **state)
{
	const struct instance *t = *state;
	const struct bpf_case *c = t->c;
	struct __sk_buff ctx = { .mark = c->mark_in }, ctx_out = { 0 };
	uint8_t in[256] = { 0 }, out[256] = { 0 };
	size_t len = build_packet(in, c, t->family);
	struct mc_bpf_stats got;
	int expected = c->shot ? TC_ACT_SHOT : TC_ACT_UNSPEC;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (uint32_t)len,
		    .data_out = out, .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .ctx_out = &ctx_out,
		    .ctx_size_out = sizeof(ctx_out), .repeat = 1);

	write_config(c->config);
	stats_op(NULL);
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(program(c->prog)), &opts), 0);
	if ((int)opts.retval != expected)
		fail_msg("verdict %d, expected %d", (int)opts.retval, expected);
	if (ctx_out.mark != c->mark_out)
		fail_msg("mark 0x%08x (in 0x%08x), expected 0x%08x", ctx_out.mark, c->mark_in,
			 c->mark_out);
	/* the programs only mark: the packet leaves as it came */
	assert_int_equal(opts.data_size_out, len);
	assert_memory_equal(out, in, len);
	stats_op(&got);
	check_stats(&got, &c->stats);
}

/* The maps stay unpinned: loading must not have reached for a bpffs. */
static void test_nothing_pinned(void **state)
{
	struct bpf_map *map;
	int n = 0;

	bpf_object__for_each_map(map, skel->obj)
	{
		if (bpf_map__is_internal(map))
			continue;
		assert_null(bpf_map__pin_path(map));
		assert_false(bpf_map__is_pinned(map));
		assert_true(bpf_map__fd(map) >= 0);
		n++;
	}
	assert_int_equal(n, 7);
}

static void add_prefix(struct bpf_map *map, int family, const char *text, unsigned len,
		       const void *value, size_t value_size)
{
	struct mc_bpf_prefix key = { .prefixlen = family == AF_INET ? 96 + len : len };
	struct mc_bpf_addr a;

	addr_parse(&a, family, text);
	memcpy(key.bytes, a.bytes, sizeof(key.bytes));
	if (bpf_map__update_elem(map, &key, sizeof(key), value, value_size, BPF_NOEXIST) < 0)
		abort();
}

static void add_host(struct bpf_map *map, int family, enum host h, const void *value,
		     size_t value_size)
{
	struct mc_bpf_addr key;

	host_addr(&key, family, h);
	if (bpf_map__update_elem(map, &key, sizeof(key), value, value_size, BPF_NOEXIST) < 0)
		abort();
}

/* The cluster of enum host, both families at once. */
static int fill_maps(void **state)
{
	static const int families[] = { AF_INET, AF_INET6 };
	const uint8_t one = 1;
	const uint32_t index = PEER_INDEX;

	for (size_t i = 0; i < 2; i++) {
		int f = families[i];

		add_host(skel->maps.local_pods, f, LOCAL_POD, &one, sizeof(one));
		add_host(skel->maps.local_pods, f, LOCAL_OUTSIDE, &one, sizeof(one));
		add_host(skel->maps.remote_pods, f, REMOTE_POD, &index, sizeof(index));
		add_host(skel->maps.peers, f, PEER_NODE, &index, sizeof(index));
		add_prefix(skel->maps.local_cidrs, f, f == AF_INET ? local_cidr.v4 : local_cidr.v6,
			   f == AF_INET ? local_cidr.len4 : local_cidr.len6, &one, sizeof(one));
		add_prefix(skel->maps.peer_prefixes, f,
			   f == AF_INET ? peer_prefix.v4 : peer_prefix.v6,
			   f == AF_INET ? peer_prefix.len4 : peer_prefix.len6, &index,
			   sizeof(index));
	}
	return 0;
}

/* 0 if this kernel loads a tc program and test-runs it with a context; else -errno. */
static int probe_test_run(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = TC_ACT_UNSPEC },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	uint8_t frame[64] = { 0 };
	struct __sk_buff ctx = { .mark = 1 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame),
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
	int fd, r;

	fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "mc_probe", "GPL", insns,
			   sizeof(insns) / sizeof(insns[0]), NULL);
	if (fd < 0)
		return fd;
	r = bpf_prog_test_run_opts(fd, &opts);
	close(fd);
	return r < 0 ? r : 0;
}

static int load_skeleton(void)
{
	struct bpf_map *map;
	int r;

	skel = meshcrypt_bpf__open();
	if (!skel)
		return -errno;
	/* LIBBPF_PIN_BY_NAME gave every map a path under /sys/fs/bpf: none here. */
	bpf_object__for_each_map(map, skel->obj)
	{
		r = bpf_map__set_pin_path(map, NULL);
		if (r < 0)
			return r;
	}
	return meshcrypt_bpf__load(skel);
}

int main(void)
{
	struct CMUnitTest *tests;
	struct instance *inst;
	size_t n = 0;
	int r;

	if (geteuid() != 0) {
		printf("SKIP: test-bpf-programs needs root to load BPF programs\n");
		return 77;
	}
	r = probe_test_run();
	if (r < 0) {
		printf("SKIP: this kernel does not load and test-run tc BPF programs: %s\n",
		       strerror(-r));
		return 77;
	}
	/* BPF works here: from now on, our object not loading is a failure, not a skip. */
	r = load_skeleton();
	if (r < 0) {
		fprintf(stderr, "test-bpf-programs: loading bpf/meshcrypt.bpf.c failed: %s\n",
			strerror(-r));
		meshcrypt_bpf__destroy(skel);
		return 1;
	}

	tests = calloc(1 + 2 * N_CASES, sizeof(*tests));
	inst = calloc(2 * N_CASES, sizeof(*inst));
	if (!tests || !inst)
		abort();
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_nothing_pinned);
	for (size_t i = 0; i < N_CASES; i++)
		for (int v6 = 0; v6 <= 1; v6++) {
			struct instance *t = &inst[2 * i + (size_t)v6];

			t->c = &cases[i];
			t->family = v6 ? AF_INET6 : AF_INET;
			snprintf(t->name, sizeof(t->name), "%s [%s]", cases[i].name,
				 v6 ? "IPv6" : "IPv4");
			tests[n++] = (struct CMUnitTest){ .name = t->name,
							  .test_func = test_case,
							  .initial_state = t };
		}
	r = _cmocka_run_group_tests("bpf-programs", tests, n, fill_maps, NULL);
	meshcrypt_bpf__destroy(skel);
	free(tests);
	free(inst);
	return r;
}
