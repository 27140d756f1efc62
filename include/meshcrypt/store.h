/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meshcrypt store: the cluster model and the desired state derived from it.
 *
 * Sources hand objects to the store (upsert, delete, or replace a whole relisted set). The
 * store derives the desired state per peer node, per pod IP and for the local node, and hands
 * the *keys* whose derived state changed to the enqueue callback, never snapshots: workers
 * read the latest desired state with the getters when they process a key.
 *
 * Threads: the writers (upsert, delete, replace) may run on one thread while any number of
 * threads call the getters. The enqueue and event callbacks run on the writer's thread with
 * the store's lock released, so they may take other locks (the work queue's) and even call
 * the getters.
 *
 * Conventions: int functions return 0 or -errno; pointer functions return NULL and set errno;
 * every *_free(NULL) is a no-op.
 */
#ifndef MESHCRYPT_STORE_H
#define MESHCRYPT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <meshcrypt/model.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mc_key_type {
	MC_KEY_LOCAL = 1,  /* the local node: mc_store_get_local() */
	MC_KEY_PEER = 2,   /* a peer node, by peer_id: mc_store_get_peer() */
	MC_KEY_POD = 3,    /* a pod IP, by ip: mc_store_get_pod() */
	MC_KEY_SECRET = 4, /* some Secret's data changed or it vanished: mc_store_get_secret() */
};

/*
 * A work-queue item. Fixed layout with no padding, fully zeroed apart from the fields of its
 * type (peer_id for MC_KEY_PEER, ip for MC_KEY_POD), so two keys are equal exactly when
 * memcmp() says so.
 */
struct mc_key {
	uint32_t type;
	uint32_t peer_id;
	struct mc_ip ip;
	uint8_t reserved[3];
};

/* The default managed label (DESIGN.md §3). */
#define MC_MANAGED_LABEL_DEFAULT "meshcrypt.io/encryption=enabled"

struct mc_store_config {
	/* This node's name (a Kubernetes node name); required. Copied. */
	const char *local_node;
	/* "key=value": pods carrying it, or in a namespace carrying it, are managed. NULL means
	 * MC_MANAGED_LABEL_DEFAULT. Copied. */
	const char *managed_label;
	/* Called once per changed key; key points to storage valid only during the call. */
	void (*enqueue)(void *ctx, const struct mc_key *key);
	/* Conflicts and other conditions an operator must see; level is a syslog.h LOG_*
	 * value. message is valid only during the call. May be NULL (events are dropped). */
	void (*event)(void *ctx, int level, const char *message);
	void *ctx;
};

struct mc_store;

/*
 * Creates an empty store. The configuration is copied. Returns NULL with errno EINVAL (no
 * local_node, no enqueue callback, or a managed_label that is not "key=value") or ENOMEM.
 */
struct mc_store *mc_store_new(const struct mc_store_config *cfg);

/* Frees the store, wiping the Secret data it holds; NULL is a no-op. */
void mc_store_free(struct mc_store *s);

/*
 * Inserts or replaces obj (matched by kind, namespace and name) and enqueues the keys whose
 * desired state changed. Takes ownership of obj on success and on failure. Returns 0,
 * -EINVAL (s or obj NULL) or -ENOMEM.
 */
int mc_store_upsert(struct mc_store *s, struct mc_object *obj);

/* Removes an object; ns is NULL for cluster-scoped kinds. Returns 0, -ENOENT or -ENOMEM. */
int mc_store_delete(struct mc_store *s, enum mc_object_kind kind, const char *ns,
                    const char *name);

/*
 * Makes the objects of the kinds in kinds (a mask of MC_OBJECT_KIND_BIT()) exactly those of
 * list, as after a relist: objects in list are upserted, stored objects of those kinds that are
 * absent from list are deleted, and objects of list whose kind is not in kinds are ignored.
 * Readers see the old or the new set, never a mix. Objects that did not change enqueue
 * nothing. A name appearing twice in list: the later one wins. Takes ownership of list on
 * success and on failure. Returns 0, -EINVAL or -ENOMEM (the store then holds a consistent
 * mix of old and new objects, and the keys that changed were enqueued: relist again).
 */
int mc_store_replace_kinds(struct mc_store *s, unsigned kinds, struct mc_object_list *list);

/*
 * A relist handed over page by page, so that a source never holds a whole list: 150,000 parsed
 * pods take about 90 MB, a page of 500 a few hundred kB. Each page is applied as
 * mc_store_replace_kinds() applies its list, and committed (its changed keys enqueued);
 * MC_RELIST_FIRST first forgets which objects of kinds were seen, MC_RELIST_LAST then deletes
 * the stored objects of kinds that no page of this relist held. Between pages readers see a
 * mix: objects already relisted next to ones the last page may still delete (as during a run
 * of watch events). Relists of different kinds may run at once; one kind's relist must not
 * interleave with upserts or deletes of that kind. Takes ownership of page on success and on
 * failure. Returns 0, -EINVAL, -ENOMEM (a page was lost: the relist deletes nothing at its
 * last page; start again with MC_RELIST_FIRST) or -ECANCELED (a page after such a loss).
 * FIRST | LAST is mc_store_replace_kinds().
 */
#define MC_RELIST_FIRST (1u << 0)
#define MC_RELIST_LAST (1u << 1)
int mc_store_relist(struct mc_store *s, unsigned kinds, struct mc_object_list *page,
                    unsigned flags);

/* mc_store_replace_kinds() with MC_OBJECT_KINDS_ALL: the static source's whole cluster file. */
int mc_store_replace_all(struct mc_store *s, struct mc_object_list *list);

/* Desired state of one peer. All pointers are owned by the struct. */
struct mc_peer_state {
	uint32_t peer_id;
	char *name;
	bool present; /* false: the node does not participate (any more); remove the peer */
	struct mc_ip *addresses;
	size_t n_addresses;
	char boot_id[MC_BOOT_ID_LEN + 1];
	uint32_t key_generation;
	char wireguard_public_key[MC_WG_KEY_LEN + 1];
	/* Its pod CIDRs plus a host prefix for each of its live pods outside them; sorted
	 * (mc_prefix_compare()), no duplicates. */
	struct mc_prefix *prefixes;
	size_t n_prefixes;
	/*
	 * ABI 1.1 (MC_STATE_HAS in host.h): the peer's index on this node, 1..65535 (DESIGN.md
	 * §4), allocated and persisted by the daemon, never reused while the peer exists: what
	 * the BPF maps and the xfrm inbound SA marks carry. 0 for a peer that never had one (the
	 * store alone, e.g. in a test, leaves it 0).
	 */
	uint16_t peer_index;
};

void mc_peer_state_free(struct mc_peer_state *p);

enum mc_pod_role {
	MC_POD_NONE = 0,        /* not (or no longer) a managed pod: remove it */
	MC_POD_LOCAL_MANAGED,   /* a managed pod on this node (BPF map local_pods) */
	MC_POD_REMOTE_MANAGED,  /* a managed pod on participating peer peer_id (remote_pods) */
};

struct mc_pod_state {
	struct mc_ip ip;
	enum mc_pod_role role;
	uint32_t peer_id; /* MC_POD_REMOTE_MANAGED only, else 0 */
	uint16_t peer_index; /* ABI 1.1: MC_POD_REMOTE_MANAGED only: its peer's index, else 0 */
};

/* Desired state of this node. All pointers are owned by the struct. */
struct mc_local_state {
	char *name;
	bool known;         /* a Node or a MeshcryptNode of this name exists */
	bool participating; /* a MeshcryptNode of this name exists */
	struct mc_ip *addresses;
	size_t n_addresses;
	char boot_id[MC_BOOT_ID_LEN + 1];
	uint32_t key_generation;
	struct mc_prefix *pod_cidrs; /* sorted, no duplicates (BPF map local_cidrs) */
	size_t n_pod_cidrs;
};

void mc_local_state_free(struct mc_local_state *l);

/*
 * The desired state of peer peer_id. On success *out is new and the caller frees it with
 * mc_peer_state_free(); present is false for a node that does not participate (never did,
 * stopped, or is the local node). Returns 0, -ENOENT (an id the store never issued) or -ENOMEM;
 * *out is NULL on failure.
 */
int mc_store_get_peer(struct mc_store *s, uint32_t peer_id, struct mc_peer_state **out);

/* The desired state of pod IP ip (role MC_POD_NONE for an unknown IP). Returns 0 or -EINVAL. */
int mc_store_get_pod(struct mc_store *s, const struct mc_ip *ip, struct mc_pod_state *out);

/* The desired state of this node. *out is new (mc_local_state_free()); NULL on failure.
 * Returns 0 or -ENOMEM. */
int mc_store_get_local(struct mc_store *s, struct mc_local_state **out);

/*
 * The ids of the participating peers (local node excluded), sorted by node name. On success
 * *ids is a new array the caller frees with free() (NULL when *n is 0). Returns 0 or -ENOMEM.
 */
int mc_store_peer_ids(struct mc_store *s, uint32_t **ids, size_t *n);

/*
 * Every key that has a desired state, for a full resync: the local node, MC_KEY_SECRET, every
 * node ever seen but the local one (participating or not), and every live pod IP (an IP that
 * two pods claim comes once per pod: enqueueing merges them). On success *keys is a new array
 * the caller frees with free(), of *n keys. Returns 0 or -ENOMEM.
 */
int mc_store_keys(struct mc_store *s, struct mc_key **keys, size_t *n);

/* The id the store issued for node name, or 0 if it never saw that name. */
uint32_t mc_store_peer_id(struct mc_store *s, const char *name);

/*
 * A copy of entry key of Secret ns/name. On success *data is a new buffer of *len bytes (NUL
 * appended, not counted) that the caller wipes (explicit_bzero) and frees. Returns 0, -ENOENT
 * (no such Secret or entry) or -ENOMEM; *data is NULL on failure.
 */
int mc_store_get_secret(struct mc_store *s, const char *ns, const char *name, const char *key,
                        uint8_t **data, size_t *len);

/*
 * Writes the whole desired state as stable, sorted, diff-friendly text (no pointers, no
 * times): the local node, each participating peer by name, the local managed pod IPs and the
 * remote managed pod IPs with their peer. Returns 0 or -EIO (write error).
 */
int mc_store_write_plan(struct mc_store *s, FILE *f);

struct mc_store_stats {
	size_t nodes;           /* Node objects */
	size_t meshcrypt_nodes; /* MeshcryptNode objects */
	size_t namespaces;      /* Namespace objects */
	size_t pods;            /* Pod objects (live or not) */
	size_t pod_ips;         /* IPs of live pods */
	size_t secrets;         /* Secret objects */
	size_t names;           /* node and namespace names issued an id */
	size_t bytes;           /* heap bytes the store holds (malloc_usable_size) */
};

/* Counts and memory of the store, e.g. for metrics and the benchmark. */
void mc_store_stats(struct mc_store *s, struct mc_store_stats *out);

/*
 * The managed pod IPs: on this node (MC_POD_LOCAL_MANAGED) and on participating peers
 * (MC_POD_REMOTE_MANAGED), as mc_store_get_pod() derives them. Kept as keys change, so O(1)
 * (a count of every pod only after a write that ran out of memory).
 */
void mc_store_managed_pods(struct mc_store *s, size_t *local, size_t *remote);

#ifdef __cplusplus
}
#endif

#endif
