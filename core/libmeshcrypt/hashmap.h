/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private to libmeshcrypt: the seeded hash, the index slab and the index map that the work
 * queue, the rate limiters and the store share. Symbols here are hidden.
 */
#ifndef MC_HASHMAP_H
#define MC_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MCI_HIDDEN __attribute__((visibility("hidden")))

#define MCI_NONE UINT32_MAX

/* ---- hashing ---- */

/* Bytewise hash with a per-process random seed, so that keys chosen by cluster users cannot
 * be crafted to collide. */
MCI_HIDDEN uint64_t mci_hash_bytes(const void *p, size_t n);
MCI_HIDDEN extern uint64_t mci_hash_seed;

static inline uint64_t mci_mum(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* mci_hash_bytes() of one 8-byte word (the common key), inline: the call and the loop cost
 * more than the two multiplications. */
static inline uint64_t mci_hash_u64(const void *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return mci_mum(mci_mum(mci_hash_seed ^ (8u * 0x9e3779b97f4a7c15u) ^ w, 0xa0761d6478bd642fu),
		       0x8ebc6af09c88c6e3u);
}

static inline uint64_t mci_hash_item(const void *p, size_t n)
{
	return n == sizeof(uint64_t) ? mci_hash_u64(p) : mci_hash_bytes(p, n);
}

/* How a caller identifies an item: its bytes, their hash, and the equality to use. */
struct mci_key {
	const void *item;
	size_t size;
	uint64_t hash;
	bool (*equal)(const void *a, const void *b); /* NULL: memcmp */
};

/* Most keys are one 8-byte word (an id, an IPv4 pair): compare and copy those inline, as a
 * call to memcmp or memcpy for a size known only at run time costs more than the work. */
static inline bool mci_key_equal(const struct mci_key *k, const void *stored)
{
	if (k->equal)
		return k->equal(stored, k->item);
	if (k->size == sizeof(uint64_t)) {
		uint64_t a, b;

		memcpy(&a, stored, sizeof(a));
		memcpy(&b, k->item, sizeof(b));
		return a == b;
	}
	return memcmp(stored, k->item, k->size) == 0;
}

static inline void mci_copy_item(void *dst, const void *src, size_t size)
{
	if (size == sizeof(uint64_t))
		memcpy(dst, src, sizeof(uint64_t));
	else
		memcpy(dst, src, size);
}

/* ---- slab: fixed-size nodes addressed by a stable 32-bit index ---- */

/*
 * The first 4 bytes of a free node link the free list; the rest of a node is the caller's.
 * Nodes live in chunks that never move (chunk k holds 64 << k nodes), so a node's address stays
 * valid until it is released: the work queue's lock-free get reads nodes while the slab grows.
 */
#define MCI_SLAB_CHUNKS 26 /* 64 * (2^26 - 1) nodes: more than a 32-bit index reaches */

struct mci_slab {
	unsigned char *chunks[MCI_SLAB_CHUNKS];
	size_t node_size;
	uint32_t cap;
	uint32_t used; /* high-water mark: nodes [used, cap) were never handed out */
	uint32_t free_head;
};

MCI_HIDDEN void mci_slab_init(struct mci_slab *s, size_t node_size);
MCI_HIDDEN void mci_slab_fini(struct mci_slab *s);
/* An index, or MCI_NONE when memory is exhausted. */
MCI_HIDDEN uint32_t mci_slab_alloc(struct mci_slab *s);
MCI_HIDDEN void mci_slab_release(struct mci_slab *s, uint32_t idx);

static inline void *mci_slab_at(const struct mci_slab *s, uint32_t idx)
{
	/* chunk k holds the indices [64 * (2^k - 1), 64 * (2^(k+1) - 1)) */
	unsigned k = 31u - (unsigned)__builtin_clz((idx >> 6) + 1);

	return s->chunks[k] + (size_t)(idx - ((64u << k) - 64u)) * s->node_size;
}

/* ---- idxmap: open addressing (linear probing, backward-shift deletion) of 32-bit values ---- */

/*
 * One index for the work queue, the rate limiters and the store. A slot holds
 * (upper 32 bits of the hash) << 32 | (value + 1); 0 is empty, so a value is anything below
 * MCI_NONE (the queue stores slab indices, the store pod slots, name ids and entry numbers).
 * A slot's home is its tag & mask, so growth and deletion work from the stored tags alone and
 * never call back; a lookup compares tags first and asks the caller only about equal ones.
 */
struct mci_idxmap {
	uint64_t *slots; /* NULL until the first reserve */
	uint32_t mask;
	uint32_t count;
};

MCI_HIDDEN void mci_idxmap_init(struct mci_idxmap *m);
MCI_HIDDEN void mci_idxmap_fini(struct mci_idxmap *m);
/* Doubles the table: the slow path of mci_idxmap_reserve(). 0 or -ENOMEM. */
MCI_HIDDEN int mci_idxmap_grow(struct mci_idxmap *m);

/* Makes room for one more entry (load <= 3/4). 0 or -ENOMEM. */
static inline int mci_idxmap_reserve(struct mci_idxmap *m)
{
	uint64_t cap = m->slots ? (uint64_t)m->mask + 1 : 0;

	return (uint64_t)(m->count + 1) * 4 <= cap * 3 ? 0 : mci_idxmap_grow(m);
}

/* Makes room for more entries, so that as many inserts that follow cannot fail. */
static inline int mci_idxmap_reserve_n(struct mci_idxmap *m, uint32_t more)
{
	for (;;) {
		uint64_t cap = m->slots ? (uint64_t)m->mask + 1 : 0;
		int r;

		if (((uint64_t)m->count + more) * 4 <= cap * 3)
			return 0;
		if ((r = mci_idxmap_grow(m)) < 0)
			return r;
	}
}

MCI_HIDDEN void mci_idxmap_remove_at(struct mci_idxmap *m, uint32_t slot);

static inline uint32_t mci_idxmap_tag(uint64_t hash)
{
	return (uint32_t)(hash >> 32);
}

static inline uint32_t mci_idxmap_home(const struct mci_idxmap *m, uint64_t slot_value)
{
	return (uint32_t)(slot_value >> 32) & m->mask;
}

static inline uint32_t mci_idxmap_slot_index(uint64_t slot_value)
{
	return (uint32_t)slot_value - 1;
}

/*
 * Walks the probe run of hash: for each value stored with hash's tag, asks match(ctx, value),
 * and stops at the first true. Returns that value or MCI_NONE; *slot is where it is, or the
 * empty slot that ends the run, where it would go (valid until the map changes; reserve first
 * if you mean to insert there). A match that always answers false visits every value with the
 * tag (the store's IP index holds several pods per IP). The map must have slots: reserve
 * once, or check m->slots. Always inlined, so that a constant match is inlined too and costs
 * no call.
 */
static inline __attribute__((always_inline)) uint32_t
mci_idxmap_lookup(const struct mci_idxmap *m, uint64_t hash,
		  bool (*match)(void *ctx, uint32_t value), void *ctx, uint32_t *slot)
{
	uint32_t tag = mci_idxmap_tag(hash);
	uint32_t i = tag & m->mask;

	for (;; i = (i + 1) & m->mask) {
		uint64_t v = m->slots[i];

		if (!v)
			break;
		if ((uint32_t)(v >> 32) == tag) {
			uint32_t value = (uint32_t)v - 1;

			if (match(ctx, value)) {
				*slot = i;
				return value;
			}
		}
	}
	*slot = i;
	return MCI_NONE;
}

static inline void mci_idxmap_insert_at(struct mci_idxmap *m, uint32_t slot, uint64_t hash,
					uint32_t idx)
{
	m->slots[slot] = (uint64_t)mci_idxmap_tag(hash) << 32 | (uint64_t)(idx + 1);
	m->count++;
}

/* Adds value under hash, after a reserve; equal keys may be added more than once. */
static inline void mci_idxmap_insert(struct mci_idxmap *m, uint64_t hash, uint32_t value)
{
	uint32_t i = mci_idxmap_tag(hash) & m->mask;

	while (m->slots[i])
		i = (i + 1) & m->mask;
	mci_idxmap_insert_at(m, i, hash, value);
}

/* Removes value, which is present under hash. */
static inline void mci_idxmap_remove(struct mci_idxmap *m, uint64_t hash, uint32_t value)
{
	uint64_t want = (uint64_t)mci_idxmap_tag(hash) << 32 | (uint64_t)(value + 1);
	uint32_t i = mci_idxmap_tag(hash) & m->mask;

	while (m->slots[i] != want)
		i = (i + 1) & m->mask;
	mci_idxmap_remove_at(m, i);
}

/* ---- the queue's and the rate limiters' lookup: slab nodes holding an mci_key ---- */

struct mci_slab_match {
	const struct mci_slab *slab;
	size_t key_offset;
	const struct mci_key *key;
};

static inline bool mci_slab_key_match(void *ctx, uint32_t idx)
{
	const struct mci_slab_match *c = ctx;

	return mci_key_equal(c->key, (unsigned char *)mci_slab_at(c->slab, idx) + c->key_offset);
}

/*
 * Looks k up among the nodes of s whose key starts key_offset bytes into the node. Returns the
 * index or MCI_NONE; *slot as for mci_idxmap_lookup(). A thin wrapper: it compiles to the
 * same loop as a lookup written out by hand.
 */
static inline uint32_t mci_idxmap_find(const struct mci_idxmap *m, const struct mci_slab *s,
				       size_t key_offset, const struct mci_key *k, uint32_t *slot)
{
	struct mci_slab_match c = { .slab = s, .key_offset = key_offset, .key = k };

	return mci_idxmap_lookup(m, k->hash, mci_slab_key_match, &c, slot);
}

#endif /* MC_HASHMAP_H */
