// SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause)
/*
 * The dataplane programs (DESIGN.md §3-§5): they mark, and the guard drops; the encryption
 * backend decides what a mark means after Service DNAT, in its xfrm policies or routes.
 *
 *   mc_pod_ingress     host side of every pod interface: a managed local pod's packet gets
 *                      role encrypt_mark, whatever its destination
 *   mc_node_ingress    uplinks: ESP from a known peer gets decrypt_mark and the peer's index
 *                      (the inbound SA's mark); a decrypted, re-injected packet keeps its
 *                      role; anything else loses our role bits and, under inbound = require,
 *                      plaintext from a managed remote pod to a pod of this node is dropped
 *   mc_tunnel_ingress  the WireGuard device: every packet is decrypted, role decrypt_mark
 *   mc_guard           uplink egress: plaintext from a managed local pod to a participating
 *                      peer's pods is a leak (encrypted traffic leaves between node addresses)
 *
 * A program that does not decide returns TC_ACT_UNSPEC (TCX_NEXT), so other agents' programs
 * run after ours. Mark bits outside ours (kube-proxy's 0x4000, 0x8000) are never touched.
 * Written against the UAPI headers and libbpf's bpf_helpers.h only (no vmlinux.h).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "meshcrypt-maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MC_BPF_MAX_LOCAL_PODS);
	__type(key, struct mc_bpf_addr);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} local_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MC_BPF_MAX_REMOTE_PODS);
	__type(key, struct mc_bpf_addr);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} remote_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MC_BPF_MAX_LOCAL_CIDRS);
	__type(key, struct mc_bpf_prefix);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} local_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MC_BPF_MAX_PEER_ADDRESSES);
	__type(key, struct mc_bpf_addr);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MC_BPF_MAX_PEER_PREFIXES);
	__type(key, struct mc_bpf_prefix);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} peer_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mc_bpf_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mc_bpf_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

/* The addresses and protocol of an IP packet behind an Ethernet header. */
struct packet {
	struct mc_bpf_addr src, dst;
	__u8 proto; /* IPv4 protocol, or IPv6 next header (extension headers are not walked) */
};

static __always_inline void map_v4(struct mc_bpf_addr *a, __be32 v4)
{
	__builtin_memset(a, 0, sizeof(*a));
	a->bytes[10] = 0xff;
	a->bytes[11] = 0xff;
	__builtin_memcpy(&a->bytes[12], &v4, sizeof(v4));
}

/* 0: p holds the packet's addresses; -1: not IPv4 or IPv6, or truncated. */
static __always_inline int parse(struct __sk_buff *skb, struct packet *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return -1;
		map_v4(&p->src, ip->saddr);
		map_v4(&p->dst, ip->daddr);
		p->proto = ip->protocol;
		return 0;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(p->src.bytes, &ip6->saddr, 16);
		__builtin_memcpy(p->dst.bytes, &ip6->daddr, 16);
		p->proto = ip6->nexthdr;
		return 0;
	}
	return -1;
}

static __always_inline const struct mc_bpf_config *get_config(void)
{
	__u32 zero = 0;
	const struct mc_bpf_config *c = bpf_map_lookup_elem(&config, &zero);

	return c && c->layout_version == MC_BPF_LAYOUT_VERSION ? c : 0;
}

static __always_inline struct mc_bpf_stats *get_stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&stats, &zero);
}

#define COUNT(field)                                                                           \
	do {                                                                                   \
		struct mc_bpf_stats *s_ = get_stats();                                         \
		if (s_)                                                                        \
			s_->field++;                                                           \
	} while (0)

static __always_inline void set_role(struct __sk_buff *skb, const struct mc_bpf_config *c,
				     __u32 role)
{
	skb->mark = (skb->mark & ~c->role_mask) | role;
}

static __always_inline int in_prefixes(void *map, const struct mc_bpf_addr *a)
{
	struct mc_bpf_prefix k = { .prefixlen = 128 };

	__builtin_memcpy(k.bytes, a->bytes, 16);
	return bpf_map_lookup_elem(map, &k) != 0;
}

SEC("tc")
int mc_pod_ingress(struct __sk_buff *skb)
{
	const struct mc_bpf_config *c = get_config();
	struct packet p;

	if (!c || parse(skb, &p) < 0)
		return TC_ACT_UNSPEC;
	if (bpf_map_lookup_elem(&local_pods, &p.src)) {
		set_role(skb, c, c->encrypt_mark);
		COUNT(marked);
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int mc_node_ingress(struct __sk_buff *skb)
{
	const struct mc_bpf_config *c = get_config();
	struct packet p;
	__u32 *index;

	if (!c || parse(skb, &p) < 0)
		return TC_ACT_UNSPEC;
	/* Decrypted by xfrm and re-injected on this device: the mark it got as ESP stays, as
	 * the inbound policy and a later lookup need it. */
	if ((skb->mark & c->role_mask) == c->decrypt_mark) {
		COUNT(decrypted_seen);
		return TC_ACT_UNSPEC;
	}
	if (p.proto == IPPROTO_ESP && (index = bpf_map_lookup_elem(&peers, &p.src))) {
		skb->mark = (skb->mark & ~(c->role_mask | c->peer_mask)) | c->decrypt_mark |
			    ((*index << c->peer_shift) & c->peer_mask);
		COUNT(esp_in);
		return TC_ACT_UNSPEC;
	}
	if (skb->mark & c->role_mask)
		skb->mark &= ~c->role_mask;
	if (c->inbound == MC_BPF_INBOUND_REQUIRE && bpf_map_lookup_elem(&remote_pods, &p.src) &&
	    (bpf_map_lookup_elem(&local_pods, &p.dst) || in_prefixes(&local_cidrs, &p.dst))) {
		COUNT(strict_drop);
		return TC_ACT_SHOT;
	}
	COUNT(passed);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int mc_tunnel_ingress(struct __sk_buff *skb)
{
	const struct mc_bpf_config *c = get_config();

	if (!c)
		return TC_ACT_UNSPEC;
	set_role(skb, c, c->decrypt_mark);
	COUNT(decrypted_seen);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int mc_guard(struct __sk_buff *skb)
{
	const struct mc_bpf_config *c = get_config();
	__u32 mode = c ? c->leak_guard : MC_BPF_GUARD_DROP;
	struct packet p;

	if (mode == MC_BPF_GUARD_OFF || parse(skb, &p) < 0)
		return TC_ACT_UNSPEC;
	if (bpf_map_lookup_elem(&local_pods, &p.src) && in_prefixes(&peer_prefixes, &p.dst)) {
		COUNT(leak_dropped);
		if (mode == MC_BPF_GUARD_DROP)
			return TC_ACT_SHOT;
		return TC_ACT_UNSPEC;
	}
	COUNT(passed);
	return TC_ACT_UNSPEC;
}
