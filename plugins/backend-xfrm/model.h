/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the backend knows the kernel holds: its states and policies, each found by its kernel
 * identity (mcx_sa_same_id, mcx_sp_same_id) in O(1) and listed under its owner (a peer index,
 * the node, or nobody), so that an apply touches its own peer's objects only and a resync of
 * N peers costs O(N), not O(N * objects).
 *
 * Objects are allocated one by one and never move: a pointer from a find stays valid until
 * that object is dropped or the model cleared. Not thread-safe: the backend's lock guards it.
 */
#ifndef MCX_MODEL_H
#define MCX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "netlink.h"

/* Owners: a peer index 1..MCX_MAX_PEER_INDEX, the node, or nobody yet (found at start, or
 * left by a peer that went: the next garbage collection removes it). */
#define MCX_MAX_PEER_INDEX 65535
#define MCX_OWNER_NONE 0u
#define MCX_OWNER_NODE (MCX_MAX_PEER_INDEX + 1u)

struct mcx_held_sa {
	struct mcx_sa sa; /* key wiped: key_digest identifies it */
	uint8_t key_digest[32];
	uint32_t owner;
	/* the model's links */
	uint64_t hash;
	struct mcx_held_sa *own_prev, *own_next, *all_prev, *all_next;
};

struct mcx_held_sp {
	struct mcx_sp sp;
	uint32_t owner;
	uint64_t hash;
	struct mcx_held_sp *own_prev, *own_next, *all_prev, *all_next;
};

struct mcx_model_table {
	void **slots; /* power of two; NULL = empty */
	size_t mask, n;
};

struct mcx_model {
	struct mcx_model_table sa_index, sp_index;
	struct mcx_owned {
		struct mcx_held_sa *sas;
		struct mcx_held_sp *sps;
	} *owned;                     /* [owner], MCX_OWNER_NODE + 1 of them */
	struct mcx_held_sa *all_sas; /* every state, newest first */
	struct mcx_held_sp *all_sps;
	size_t n_sas, n_sps;
};

/* An empty model. 0 or -ENOMEM. */
int mcx_model_init(struct mcx_model *m);
/* Frees every object (state keys are wiped anyway) and the indexes; the model is then empty
 * and must be initialised again before use. A zeroed model is a no-op. */
void mcx_model_fini(struct mcx_model *m);

/* The held object with the identity of id, or NULL. */
struct mcx_held_sa *mcx_model_sa_find(const struct mcx_model *m, const struct mcx_sa *id);
struct mcx_held_sp *mcx_model_sp_find(const struct mcx_model *m, const struct mcx_sp *id);

/*
 * Holds sa (its key replaced by key_digest; sa->key itself is not read) or sp for owner:
 * replaces the object of the same identity, or adds one. The held object, or NULL with errno
 * ENOMEM (the model is unchanged).
 */
struct mcx_held_sa *mcx_model_sa_put(struct mcx_model *m, const struct mcx_sa *sa,
				     const uint8_t key_digest[32], uint32_t owner);
struct mcx_held_sp *mcx_model_sp_put(struct mcx_model *m, const struct mcx_sp *sp,
				     uint32_t owner);

/* Moves an object to another owner's list. */
void mcx_model_sa_set_owner(struct mcx_model *m, struct mcx_held_sa *h, uint32_t owner);
void mcx_model_sp_set_owner(struct mcx_model *m, struct mcx_held_sp *h, uint32_t owner);

/* Forgets an object (wiping a state) and frees it. */
void mcx_model_sa_drop(struct mcx_model *m, struct mcx_held_sa *h);
void mcx_model_sp_drop(struct mcx_model *m, struct mcx_held_sp *h);

#endif
