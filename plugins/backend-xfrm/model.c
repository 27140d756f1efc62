/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "model.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- identities and their hashes (as mcx_sa_same_id and mcx_sp_same_id compare) ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 29);
}

static uint64_t mix_ip(uint64_t h, const struct mc_ip *ip)
{
	uint64_t a, b;

	memcpy(&a, ip->addr, 8);
	memcpy(&b, ip->addr + 8, 8);
	return mix(mix(mix(h, ip->family), a), b);
}

static uint64_t sa_hash(const struct mcx_sa *sa)
{
	return mix(mix(mix_ip(1, &sa->dst), sa->spi),
		   (uint64_t)(sa->mark & sa->mark_mask) << 32 | sa->mark_mask);
}

static uint64_t sp_hash(const struct mcx_sp *sp)
{
	return mix(mix(mix_ip(2, &sp->dst.ip), (uint64_t)sp->dst.len << 8 | sp->dir),
		   (uint64_t)sp->mark << 32 | sp->mark_mask);
}

/* ---- an open-addressing table of object pointers, probed linearly ---- */

typedef uint64_t hash_of_fn(const void *obj);
typedef bool same_fn(const void *obj, const void *id);

static uint64_t held_sa_hash(const void *obj)
{
	return ((const struct mcx_held_sa *)obj)->hash;
}

static uint64_t held_sp_hash(const void *obj)
{
	return ((const struct mcx_held_sp *)obj)->hash;
}

static bool held_sa_same(const void *obj, const void *id)
{
	return mcx_sa_same_id(&((const struct mcx_held_sa *)obj)->sa, id);
}

static bool held_sp_same(const void *obj, const void *id)
{
	return mcx_sp_same_id(&((const struct mcx_held_sp *)obj)->sp, id);
}

static int table_init(struct mcx_model_table *t)
{
	t->slots = calloc(64, sizeof(*t->slots));
	t->mask = 63;
	t->n = 0;
	return t->slots ? 0 : -ENOMEM;
}

static void *table_find(const struct mcx_model_table *t, uint64_t hash, same_fn *same,
			const void *id, hash_of_fn *hash_of)
{
	for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
		void *obj = t->slots[i];

		if (!obj)
			return NULL;
		if (hash_of(obj) == hash && same(obj, id))
			return obj;
	}
}

static void table_place(void **slots, size_t mask, void *obj, uint64_t hash)
{
	size_t i = hash & mask;

	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = obj;
}

/* Room for one more at a load of at most a half. 0 or -ENOMEM. */
static int table_reserve(struct mcx_model_table *t, hash_of_fn *hash_of)
{
	size_t size = (t->mask + 1) * 2;
	void **slots;

	if ((t->n + 1) * 2 <= t->mask + 1)
		return 0;
	slots = calloc(size, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i <= t->mask; i++)
		if (t->slots[i])
			table_place(slots, size - 1, t->slots[i], hash_of(t->slots[i]));
	free(t->slots);
	t->slots = slots;
	t->mask = size - 1;
	return 0;
}

/* Removes obj, shifting back the entries after it so that no probe sequence breaks. */
static void table_remove(struct mcx_model_table *t, void *obj, hash_of_fn *hash_of)
{
	size_t i = hash_of(obj) & t->mask, j;

	while (t->slots[i] != obj)
		i = (i + 1) & t->mask;
	for (j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
		size_t home = hash_of(t->slots[j]) & t->mask;

		/* the entry at j may move to the hole at i unless its home lies in (i, j] */
		if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	t->slots[i] = NULL;
	t->n--;
}

/* ---- lists: the owner's and the model's, doubly linked through the objects ---- */

#define LIST_UNLINK(head, h, prev, next)                                                   \
	do {                                                                               \
		if ((h)->prev)                                                             \
			(h)->prev->next = (h)->next;                                       \
		else                                                                       \
			(head) = (h)->next;                                                \
		if ((h)->next)                                                             \
			(h)->next->prev = (h)->prev;                                       \
		(h)->prev = (h)->next = NULL;                                              \
	} while (0)

#define LIST_PUSH(head, h, prev, next)                                                     \
	do {                                                                               \
		(h)->prev = NULL;                                                          \
		(h)->next = (head);                                                        \
		if (head)                                                                  \
			(head)->prev = (h);                                                \
		(head) = (h);                                                              \
	} while (0)

int mcx_model_init(struct mcx_model *m)
{
	memset(m, 0, sizeof(*m));
	m->owned = calloc(MCX_OWNER_NODE + 1, sizeof(*m->owned));
	if (!m->owned || table_init(&m->sa_index) < 0 || table_init(&m->sp_index) < 0) {
		mcx_model_fini(m);
		return -ENOMEM;
	}
	return 0;
}

void mcx_model_fini(struct mcx_model *m)
{
	while (m->all_sas)
		mcx_model_sa_drop(m, m->all_sas);
	while (m->all_sps)
		mcx_model_sp_drop(m, m->all_sps);
	free(m->sa_index.slots);
	free(m->sp_index.slots);
	free(m->owned);
	memset(m, 0, sizeof(*m));
}

struct mcx_held_sa *mcx_model_sa_find(const struct mcx_model *m, const struct mcx_sa *id)
{
	return table_find(&m->sa_index, sa_hash(id), held_sa_same, id, held_sa_hash);
}

struct mcx_held_sp *mcx_model_sp_find(const struct mcx_model *m, const struct mcx_sp *id)
{
	return table_find(&m->sp_index, sp_hash(id), held_sp_same, id, held_sp_hash);
}

struct mcx_held_sa *mcx_model_sa_put(struct mcx_model *m, const struct mcx_sa *sa,
				     const uint8_t key_digest[32], uint32_t owner)
{
	struct mcx_held_sa *h = mcx_model_sa_find(m, sa);

	if (!h) {
		if (table_reserve(&m->sa_index, held_sa_hash) < 0 || !(h = calloc(1, sizeof(*h)))) {
			errno = ENOMEM;
			return NULL;
		}
		h->hash = sa_hash(sa);
		h->owner = owner;
		table_place(m->sa_index.slots, m->sa_index.mask, h, h->hash);
		m->sa_index.n++;
		LIST_PUSH(m->all_sas, h, all_prev, all_next);
		LIST_PUSH(m->owned[owner].sas, h, own_prev, own_next);
		m->n_sas++;
	}
	h->sa = *sa;
	explicit_bzero(h->sa.key, sizeof(h->sa.key));
	memcpy(h->key_digest, key_digest, sizeof(h->key_digest));
	mcx_model_sa_set_owner(m, h, owner);
	return h;
}

struct mcx_held_sp *mcx_model_sp_put(struct mcx_model *m, const struct mcx_sp *sp,
				     uint32_t owner)
{
	struct mcx_held_sp *h = mcx_model_sp_find(m, sp);

	if (!h) {
		if (table_reserve(&m->sp_index, held_sp_hash) < 0 || !(h = calloc(1, sizeof(*h)))) {
			errno = ENOMEM;
			return NULL;
		}
		h->hash = sp_hash(sp);
		h->owner = owner;
		table_place(m->sp_index.slots, m->sp_index.mask, h, h->hash);
		m->sp_index.n++;
		LIST_PUSH(m->all_sps, h, all_prev, all_next);
		LIST_PUSH(m->owned[owner].sps, h, own_prev, own_next);
		m->n_sps++;
	}
	h->sp = *sp;
	mcx_model_sp_set_owner(m, h, owner);
	return h;
}

void mcx_model_sa_set_owner(struct mcx_model *m, struct mcx_held_sa *h, uint32_t owner)
{
	if (h->owner == owner)
		return;
	LIST_UNLINK(m->owned[h->owner].sas, h, own_prev, own_next);
	h->owner = owner;
	LIST_PUSH(m->owned[owner].sas, h, own_prev, own_next);
}

void mcx_model_sp_set_owner(struct mcx_model *m, struct mcx_held_sp *h, uint32_t owner)
{
	if (h->owner == owner)
		return;
	LIST_UNLINK(m->owned[h->owner].sps, h, own_prev, own_next);
	h->owner = owner;
	LIST_PUSH(m->owned[owner].sps, h, own_prev, own_next);
}

void mcx_model_sa_drop(struct mcx_model *m, struct mcx_held_sa *h)
{
	table_remove(&m->sa_index, h, held_sa_hash);
	LIST_UNLINK(m->owned[h->owner].sas, h, own_prev, own_next);
	LIST_UNLINK(m->all_sas, h, all_prev, all_next);
	m->n_sas--;
	explicit_bzero(h, sizeof(*h));
	free(h);
}

void mcx_model_sp_drop(struct mcx_model *m, struct mcx_held_sp *h)
{
	table_remove(&m->sp_index, h, held_sp_hash);
	LIST_UNLINK(m->owned[h->owner].sps, h, own_prev, own_next);
	LIST_UNLINK(m->all_sps, h, all_prev, all_next);
	m->n_sps--;
	free(h);
}
