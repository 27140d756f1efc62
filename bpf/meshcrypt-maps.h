/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * The layout of the BPF maps (DESIGN.md §5), shared by the programs (bpf/meshcrypt.bpf.c) and
 * the attach plugins that fill the maps. Only fixed-size types: the kernel sees these bytes.
 *
 * Every address is 16 bytes, an IPv4 address IPv4-mapped (::ffff:a.b.c.d), so that one map
 * serves both families; a prefix of an IPv4 CIDR /n is 96 + n long.
 *
 * Changing anything here that changes a map's bytes bumps MC_BPF_LAYOUT_VERSION: the attach
 * plugin then replaces the pinned maps of an older layout instead of reusing them.
 */
#ifndef MESHCRYPT_BPF_MAPS_H
#define MESHCRYPT_BPF_MAPS_H

#include <linux/types.h>

#define MC_BPF_LAYOUT_VERSION 1

/* The capacities; the pinned maps are made with these. */
#define MC_BPF_MAX_LOCAL_PODS 16384
#define MC_BPF_MAX_REMOTE_PODS 524288
#define MC_BPF_MAX_LOCAL_CIDRS 256
#define MC_BPF_MAX_PEER_ADDRESSES 131072 /* 65535 peers, IPv4 and IPv6 */
#define MC_BPF_MAX_PEER_PREFIXES 524288  /* pod CIDRs and host prefixes of pods outside them */

struct mc_bpf_addr {
	__u8 bytes[16];
};

/* Key of the LPM maps local_cidrs and peer_prefixes. */
struct mc_bpf_prefix {
	__u32 prefixlen; /* 0..128 */
	__u8 bytes[16];
};

enum mc_bpf_inbound {
	MC_BPF_INBOUND_REQUIRE = 1,
	MC_BPF_INBOUND_PERMIT = 2,
};

enum mc_bpf_leak_guard {
	MC_BPF_GUARD_DROP = 0, /* the default, also for a config not yet written */
	MC_BPF_GUARD_COUNT = 1,
	MC_BPF_GUARD_OFF = 2,
};

/* The single entry of map `config`. Until it is written (layout_version 0) every program
 * passes traffic untouched, apart from the guard, which then drops (fail closed). */
struct mc_bpf_config {
	__u32 layout_version; /* MC_BPF_LAYOUT_VERSION once written */
	__u32 encrypt_mark;   /* role of traffic from a managed local pod [0xe0] */
	__u32 decrypt_mark;   /* role of decrypted traffic [0xd0] */
	__u32 role_mask;      /* [0xf0] */
	__u32 peer_mask;      /* [0xffff0000] */
	__u32 peer_shift;     /* ctz(peer_mask): index << peer_shift lies in peer_mask */
	__u32 inbound;        /* enum mc_bpf_inbound */
	__u32 leak_guard;     /* enum mc_bpf_leak_guard */
};

/* The single entry of the per-CPU map `stats`; userspace sums the CPUs. */
struct mc_bpf_stats {
	__u64 marked;         /* pod ingress: from a managed local pod, role set to encrypt_mark */
	__u64 esp_in;         /* node ingress: ESP from a known peer, role and index set */
	__u64 decrypted_seen; /* node ingress kept, or tunnel ingress set, decrypt_mark */
	__u64 strict_drop;    /* node ingress, inbound = require: plaintext managed remote -> local pod */
	__u64 leak_dropped;   /* guard: plaintext managed local pod -> peer pod (dropped or counted) */
	__u64 passed;         /* node ingress and guard: looked at, let through unchanged */
};

/* Map names, as pinned under bpffs_dir. */
#define MC_BPF_MAP_LOCAL_PODS "local_pods"       /* mc_bpf_addr -> __u8 (1) */
#define MC_BPF_MAP_REMOTE_PODS "remote_pods"     /* mc_bpf_addr -> __u32 peer index */
#define MC_BPF_MAP_LOCAL_CIDRS "local_cidrs"     /* mc_bpf_prefix -> __u8 (1) */
#define MC_BPF_MAP_PEERS "peers"                 /* mc_bpf_addr (node address) -> __u32 index */
#define MC_BPF_MAP_PEER_PREFIXES "peer_prefixes" /* mc_bpf_prefix -> __u32 peer index */
#define MC_BPF_MAP_CONFIG "config"               /* __u32 0 -> mc_bpf_config */
#define MC_BPF_MAP_STATS "stats"                 /* __u32 0 -> mc_bpf_stats per CPU */

#endif /* MESHCRYPT_BPF_MAPS_H */
