/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsed Kubernetes objects: the layout shared by the parser, the store and their tests. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <meshcrypt/model.h>

struct mc_label {
	char *key;
	char *value;
};

struct mc_secret_entry {
	char *key;
	uint8_t *data; /* wiped before it is freed */
	size_t len;
};

/* Kubernetes names are DNS subdomains; namespaces are DNS labels. */
#define MC_NAME_MAX 253
#define MC_NAMESPACE_MAX 63

struct mc_object {
	enum mc_object_kind kind;
	bool in_arena; /* it and its fields live in its list's arena (Pods and Namespaces) */
	char *namespace; /* NULL for cluster-scoped kinds */
	char *name;
	int64_t created; /* metadata.creationTimestamp, seconds since the epoch; 0 if absent */
	struct mc_label *labels; /* Namespace and Pod only */
	size_t n_labels;
	union {
		struct {
			struct mc_ip *addresses; /* InternalIP addresses, in status order */
			size_t n_addresses;
			char boot_id[MC_BOOT_ID_LEN + 1];
			struct mc_prefix *pod_cidrs; /* spec.podCIDRs, else spec.podCIDR */
			size_t n_pod_cidrs;
		} node;
		struct {
			char *node_name; /* NULL until scheduled */
			bool host_network;
			bool terminated; /* phase Succeeded or Failed */
			struct mc_ip *ips; /* status.podIPs, else status.podIP; one per family */
			size_t n_ips;
		} pod;
		struct {
			struct mc_ip *addresses;
			size_t n_addresses;
			char boot_id[MC_BOOT_ID_LEN + 1];
			uint32_t key_generation;
			char wireguard_public_key[MC_WG_KEY_LEN + 1];
			struct mc_prefix *pod_cidrs;
			size_t n_pod_cidrs;
		} mcnode;
		struct {
			struct mc_secret_entry *entries;
			size_t n_entries;
		} secret;
	};
};

/*
 * The memory of a list's Pods and Namespaces, which the store copies what it needs from: taken
 * from the system in large blocks and given back whole with the list. 150,000 pods then cost a
 * few dozen mmap() calls instead of 1.5 million malloc() and free() calls, and leave no holes
 * between the store's own allocations. Nodes, MeshcryptNodes and Secrets, which the store keeps,
 * are allocated one by one.
 */
struct mci_arena_block;

struct mci_arena {
	struct mci_arena_block *blocks;
	char *next;  /* free space in the newest block */
	size_t left;
};

/* size zeroed bytes, aligned for any type; NULL (errno ENOMEM) when out of memory. */
void *mci_arena_alloc(struct mci_arena *a, size_t size);

struct mc_object_list {
	struct mc_object **objects;
	size_t n_objects;
	char *resource_version;
	struct mci_arena arena;
	size_t skipped; /* items left out by mc_object_list_parse_skipping() */
};

/* Detaches and returns object i of list (the slot becomes NULL); an object from the arena is
 * copied out of it first. NULL (errno ENOMEM) when out of memory; the slot is then kept. */
struct mc_object *mci_object_list_steal(struct mc_object_list *list, size_t i);
