/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shared state of the attach plugins, between attach.c, maps.c and iface.c. */
#ifndef MC_ATTACH_INTERNAL_H
#define MC_ATTACH_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>

#include "attach.h"
#include "util.h"

/* One BPF map and what we know it holds: the model that lets an unchanged state cost no
 * syscall. Every change goes to the kernel first, then into the model. */
struct mci_map {
	const char *name;
	int fd;
	size_t value_size; /* 1 (__u8 flag) or 4 (__u32 peer index) */
	void *tree;        /* tsearch tree of struct mci_entry */
};

struct mci_entry {
	struct mci_key key;
	uint32_t value;
};

/* What one peer index holds in peers and peer_prefixes, sorted (mci_keys_normalize()). After
 * a restart the records are rebuilt from the maps, without names, which the next apply or gc
 * supplies. */
struct mci_peer {
	uint16_t index;
	char *name; /* NULL until an apply or gc names it */
	struct mci_key *addrs;
	size_t n_addrs;
	struct mci_key *prefixes;
	size_t n_prefixes;
};

#define MCI_MAX_PEERS 65536

/* What we hold at one direction of an interface. */
enum {
	MCI_HAVE_UNKNOWN = -2, /* not looked at since start: may hold a stale program of ours */
	MCI_HAVE_NONE = -1,
	/* >= 0: the fd of the program attached */
};

struct mci_iface {
	int ifindex;
	char name[16];
	int have[MCI_N_DIRS];
	bool seen;   /* in the current full dump */
	bool failed; /* an attach or detach failed: retried by the timer */
};

struct mci_iface_addr {
	int ifindex;
	struct mc_ip ip;
};

struct mci_attach {
	struct mc_plugin_ctx *ctx;
	const struct mci_method *method;
	char bpffs_dir[PATH_MAX];
	const char *pod_interfaces;
	const char *tunnel_interfaces; /* the WireGuard backend's device: tunnel program */
	const char *uplinks; /* "auto" or globs */
	uint32_t leak_guard; /* enum mc_bpf_leak_guard */
	struct meshcrypt_bpf *skel;
	struct mc_metrics_collector *collector;

	/* Workers apply different keys concurrently: the maps, the peer records and the local
	 * addresses are under lock. */
	pthread_mutex_t lock;
	struct mci_map local_pods, remote_pods, local_cidrs, peers, peer_prefixes;
	struct mci_peer **by_index; /* MCI_MAX_PEERS slots */
	struct mc_ip *local_addrs;  /* the local node's addresses, for uplinks = auto */
	size_t n_local_addrs;
	uint64_t local_addrs_generation; /* bumped when they change */

	/* Main loop only. */
	struct mci_iface *ifaces;
	size_t n_ifaces, cap_ifaces;
	struct mci_iface_addr *addrs;
	size_t n_addrs, cap_addrs;
	uint64_t uplinks_generation; /* local_addrs_generation the uplinks were judged with */
	int nl_fd;                   /* subscribed to link and address events */
	struct mc_io *nl_io;
	int event_fd;                /* a worker tells the main loop the local addresses changed */
	struct mc_io *event_io;
	struct mc_timer *retry_timer; /* armed while an interface failed */
	bool retry_armed;
	bool pruned; /* method->prune has run since start */
	bool warned_no_uplink;

	/* Whether the uplinks have been judged with the node's addresses known: until then a
	 * peer's apply reports -EAGAIN, since the guard may not cover it yet. */
	atomic_bool guard_ready;
};

struct mci_attach *mci_get(struct mc_plugin_ctx *ctx);

/* attach.c: whether the program with id prog_id is prog_fd's code with the same maps (a
 * restart's program, which need not be replaced). */
bool mci_prog_is(__u32 prog_id, int prog_fd);

/* maps.c: the model. mci_maps_setup binds the maps to the loaded skeleton's fds and reads
 * what they hold (a restart's previous state); mci_maps_free frees the model only. */
int mci_maps_setup(struct mci_attach *a);
void mci_maps_free(struct mci_attach *a);

/* iface.c: start follows interfaces and attaches; stop releases the sockets; cleanup detaches
 * ours everywhere (a dump of its own). mci_ifaces_free frees the tables. */
int mci_ifaces_start(struct mci_attach *a);
void mci_ifaces_stop(struct mci_attach *a);
int mci_ifaces_cleanup(struct mci_attach *a);
void mci_ifaces_free(struct mci_attach *a);
/* Wakes the main loop to judge the uplinks again (any thread). */
void mci_ifaces_notify(struct mci_attach *a);

#endif
