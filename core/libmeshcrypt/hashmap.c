/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hashing, the index slab and the index map shared by the work queue, the rate limiters and
 * the store. */

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "hashmap.h"

uint64_t mci_hash_seed;

/* Once per process, before any queue or store exists; a failing getrandom still leaves ASLR
 * and clock entropy. */
__attribute__((constructor)) static void hash_seed_init(void)
{
	struct timespec ts = { 0 };
	uint64_t s = 0;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
		(void)clock_gettime(CLOCK_MONOTONIC, &ts);
		s = (uint64_t)(uintptr_t)&s ^
		    ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	}
	mci_hash_seed = s;
}

uint64_t mci_hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = mci_hash_seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15u);
	uint64_t w;

	for (; n >= 8; n -= 8, b += 8) {
		memcpy(&w, b, 8);
		h = mci_mum(h ^ w, 0xa0761d6478bd642fu);
	}
	if (n) {
		w = 0;
		memcpy(&w, b, n);
		h = mci_mum(h ^ w, 0xe7037ed1a0b428dbu);
	}
	return mci_mum(h, 0x8ebc6af09c88c6e3u);
}

void mci_slab_init(struct mci_slab *s, size_t node_size)
{
	*s = (struct mci_slab){ .node_size = node_size, .free_head = MCI_NONE };
}

void mci_slab_fini(struct mci_slab *s)
{
	for (unsigned k = 0; k < MCI_SLAB_CHUNKS; k++)
		free(s->chunks[k]);
	*s = (struct mci_slab){ .node_size = s->node_size, .free_head = MCI_NONE };
}

uint32_t mci_slab_alloc(struct mci_slab *s)
{
	uint32_t idx = s->free_head;

	if (idx != MCI_NONE) {
		memcpy(&s->free_head, mci_slab_at(s, idx), sizeof(uint32_t));
		return idx;
	}
	if (s->used == s->cap) {
		/* The next chunk doubles the capacity; the ones before stay where they are. */
		unsigned k = s->cap ? 31u - (unsigned)__builtin_clz(s->cap / 64 + 1) : 0;
		uint32_t n = 64u << k;

		if (k >= MCI_SLAB_CHUNKS || s->cap > MCI_NONE - 1 - n)
			return MCI_NONE;
		s->chunks[k] = calloc(n, s->node_size);
		if (!s->chunks[k])
			return MCI_NONE;
		s->cap += n;
	}
	return s->used++;
}

void mci_slab_release(struct mci_slab *s, uint32_t idx)
{
	memcpy(mci_slab_at(s, idx), &s->free_head, sizeof(uint32_t));
	s->free_head = idx;
}

void mci_idxmap_init(struct mci_idxmap *m)
{
	*m = (struct mci_idxmap){ 0 };
}

void mci_idxmap_fini(struct mci_idxmap *m)
{
	free(m->slots);
	mci_idxmap_init(m);
}

int mci_idxmap_grow(struct mci_idxmap *m)
{
	uint64_t cap = m->slots ? (uint64_t)m->mask + 1 : 0;
	uint64_t ncap, *slots;

	ncap = cap ? cap * 2 : 64;
	if (ncap > (uint64_t)1 << 32)
		return -ENOMEM;
	slots = calloc(ncap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint64_t i = 0; i < cap; i++) {
		uint64_t v = m->slots[i];
		uint64_t j;

		if (!v)
			continue;
		for (j = (v >> 32) & (ncap - 1); slots[j]; j = (j + 1) & (ncap - 1))
			;
		slots[j] = v;
	}
	free(m->slots);
	m->slots = slots;
	m->mask = (uint32_t)(ncap - 1);
	return 0;
}

void mci_idxmap_remove_at(struct mci_idxmap *m, uint32_t slot)
{
	uint32_t i = slot, j = slot;

	/* Backward shift: pull later entries of the probe run into the hole unless that would
	 * move one before its home slot. No tombstones, so lookups never slow down. */
	for (;;) {
		uint32_t home;

		j = (j + 1) & m->mask;
		if (!m->slots[j])
			break;
		home = mci_idxmap_home(m, m->slots[j]);
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		m->slots[i] = m->slots[j];
		i = j;
	}
	m->slots[i] = 0;
	m->count--;
}
