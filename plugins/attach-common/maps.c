/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dataplane ops: keep the BPF maps equal to the desired state. Each map has a model of
 * what it holds (struct mci_map), so a state applied twice makes no syscall the second time
 * and a delete of an entry that is not there makes none either; each change is one
 * bpf_map_update_elem() or bpf_map_delete_elem(). The maps are pinned and outlive the agent:
 * the model starts from what they hold, and gc removes what belongs to no peer any more.
 */
#include <errno.h>
#include <search.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <bpf/bpf.h>

#include "fault.h"
#include "internal.h"
#include "meshcrypt-maps.h"
#include "meshcrypt.skel.h"

static int entry_compare(const void *a, const void *b)
{
	return mci_key_compare(&((const struct mci_entry *)a)->key,
			       &((const struct mci_entry *)b)->key);
}

static struct mci_entry *model_find(const struct mci_map *m, const struct mci_key *k)
{
	struct mci_entry **found = tfind((const struct mci_entry *)k, &m->tree, entry_compare);

	return found ? *found : NULL;
}

/* Records key -> value in the model. -ENOMEM leaves the model without the key: the next
 * apply then writes it again, which is harmless. */
static int model_set(struct mci_map *m, const struct mci_key *k, uint32_t value)
{
	struct mci_entry *e = model_find(m, k), **slot;

	if (e) {
		e->value = value;
		return 0;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->key = *k;
	e->value = value;
	slot = tsearch(e, &m->tree, entry_compare);
	if (!slot) {
		free(e);
		return -ENOMEM;
	}
	return 0;
}

static void model_remove(struct mci_map *m, const struct mci_key *k)
{
	struct mci_entry *e = model_find(m, k);

	if (!e)
		return;
	tdelete(e, &m->tree, entry_compare);
	free(e);
}

/* Makes the map hold key -> value: 0 when it already did (no syscall), 1 when written. */
static int map_set(struct mci_map *m, const struct mci_key *k, uint32_t value)
{
	const struct mci_entry *e = model_find(m, k);
	uint8_t flag = (uint8_t)value;
	int r;

	if (e && e->value == value)
		return 0;
	if ((r = mcf_fault("bpf-map")) < 0)
		return r;
	r = bpf_map_update_elem(m->fd, k->b, m->value_size == 1 ? (void *)&flag : (void *)&value,
				BPF_ANY);
	if (r < 0)
		return r;
	r = model_set(m, k, value);
	return r < 0 ? r : 1;
}

/* Makes the map hold no key: 0 when it did not (no syscall), 1 when deleted. */
static int map_delete(struct mci_map *m, const struct mci_key *k)
{
	int r;

	if (!model_find(m, k))
		return 0;
	if ((r = mcf_fault("bpf-map")) < 0)
		return r;
	r = bpf_map_delete_elem(m->fd, k->b);
	/* Gone already (someone else removed it): what we wanted. */
	if (r < 0 && r != -ENOENT)
		return r;
	model_remove(m, k);
	return 1;
}

/* Deletes key only while it carries `index`: another peer may have claimed it since. */
static int map_delete_owned(struct mci_map *m, const struct mci_key *k, uint32_t index)
{
	const struct mci_entry *e = model_find(m, k);

	return e && e->value == index ? map_delete(m, k) : 0;
}

/* ---- reading the maps back, and walking them ---- */

/* The keys the kernel's map holds, as a new array (free()) of *n. */
static int kernel_keys(const struct mci_map *m, struct mci_key **out, size_t *n)
{
	struct mci_key *keys = NULL, k, next;
	size_t cap = 0, count = 0;
	const void *prev = NULL;
	int r;

	memset(&next, 0, sizeof(next));
	while ((r = bpf_map_get_next_key(m->fd, prev, next.b)) == 0) {
		if (count == cap) {
			size_t c = cap ? 2 * cap : 64;
			struct mci_key *v = realloc(keys, c * sizeof(*v));

			if (!v) {
				free(keys);
				return -ENOMEM;
			}
			keys = v;
			cap = c;
		}
		keys[count++] = next;
		k = next;
		prev = k.b;
	}
	if (r != -ENOENT) {
		free(keys);
		return r;
	}
	*out = keys;
	*n = count;
	return 0;
}

static int kernel_value(const struct mci_map *m, const struct mci_key *k, uint32_t *value)
{
	uint32_t v = 0;
	uint8_t flag = 0;
	int r = bpf_map_lookup_elem(m->fd, k->b, m->value_size == 1 ? (void *)&flag : (void *)&v);

	*value = m->value_size == 1 ? flag : v;
	return r;
}

/* Calls fn for every entry the kernel's map holds now; an entry deleted meanwhile is
 * skipped. */
static int kernel_walk(struct mci_map *m,
		       int (*fn)(struct mci_attach *a, struct mci_map *m, const struct mci_key *k,
				 uint32_t value, const void *arg),
		       struct mci_attach *a, const void *arg)
{
	struct mci_key *keys = NULL;
	size_t n = 0;
	uint32_t value;
	int r = kernel_keys(m, &keys, &n);

	for (size_t i = 0; r == 0 && i < n; i++) {
		r = kernel_value(m, &keys[i], &value);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r == 0)
			r = fn(a, m, &keys[i], value, arg);
	}
	free(keys);
	return r;
}

static int peer_add_key(struct mci_peer *p, bool prefix, const struct mci_key *k)
{
	struct mci_key **v = prefix ? &p->prefixes : &p->addrs;
	size_t *n = prefix ? &p->n_prefixes : &p->n_addrs;
	struct mci_key *grown = realloc(*v, (*n + 1) * sizeof(**v));

	if (!grown)
		return -ENOMEM;
	grown[(*n)++] = *k;
	*v = grown;
	return 0;
}

static struct mci_peer *peer_get(struct mci_attach *a, uint16_t index)
{
	struct mci_peer *p = a->by_index[index];

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->index = index;
	a->by_index[index] = p;
	return p;
}

static void peer_free(struct mci_attach *a, uint16_t index)
{
	struct mci_peer *p = a->by_index[index];

	if (!p)
		return;
	free(p->name);
	free(p->addrs);
	free(p->prefixes);
	free(p);
	a->by_index[index] = NULL;
}

static int load_entry(struct mci_attach *a, struct mci_map *m, const struct mci_key *k,
		      uint32_t value, const void *arg)
{
	struct mci_peer *p;
	int r = model_set(m, k, value);

	if (r < 0 || (m != &a->peers && m != &a->peer_prefixes))
		return r;
	/* An index out of range is no peer's: gc removes it. */
	if (value == 0 || value >= MCI_MAX_PEERS)
		return 0;
	p = peer_get(a, (uint16_t)value);
	return p ? peer_add_key(p, m == &a->peer_prefixes, k) : -ENOMEM;
}

static void maps_bind(struct mci_attach *a)
{
	const struct {
		struct mci_map *m;
		const char *name;
		struct bpf_map *map;
		size_t value_size;
	} maps[] = {
		{ &a->local_pods, MC_BPF_MAP_LOCAL_PODS, a->skel->maps.local_pods, 1 },
		{ &a->remote_pods, MC_BPF_MAP_REMOTE_PODS, a->skel->maps.remote_pods, 4 },
		{ &a->local_cidrs, MC_BPF_MAP_LOCAL_CIDRS, a->skel->maps.local_cidrs, 1 },
		{ &a->peers, MC_BPF_MAP_PEERS, a->skel->maps.peers, 4 },
		{ &a->peer_prefixes, MC_BPF_MAP_PEER_PREFIXES, a->skel->maps.peer_prefixes, 4 },
	};

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		maps[i].m->name = maps[i].name;
		maps[i].m->fd = bpf_map__fd(maps[i].map);
		maps[i].m->value_size = maps[i].value_size;
	}
}

int mci_maps_setup(struct mci_attach *a)
{
	struct mci_map *all[] = { &a->local_pods, &a->remote_pods, &a->local_cidrs, &a->peers,
				  &a->peer_prefixes };
	int r = 0;

	a->by_index = calloc(MCI_MAX_PEERS, sizeof(*a->by_index));
	if (!a->by_index)
		return -ENOMEM;
	maps_bind(a);
	for (size_t i = 0; r == 0 && i < sizeof(all) / sizeof(all[0]); i++)
		r = kernel_walk(all[i], load_entry, a, NULL);
	for (size_t i = 1; r == 0 && i < MCI_MAX_PEERS; i++) {
		struct mci_peer *p = a->by_index[i];

		if (p) {
			p->n_addrs = mci_keys_normalize(p->addrs, p->n_addrs);
			p->n_prefixes = mci_keys_normalize(p->prefixes, p->n_prefixes);
		}
	}
	return r;
}

void mci_maps_free(struct mci_attach *a)
{
	struct mci_map *all[] = { &a->local_pods, &a->remote_pods, &a->local_cidrs, &a->peers,
				  &a->peer_prefixes };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tdestroy(all[i]->tree, free);
		all[i]->tree = NULL;
	}
	for (size_t i = 0; a->by_index && i < MCI_MAX_PEERS; i++)
		peer_free(a, (uint16_t)i);
	free(a->by_index);
	a->by_index = NULL;
}

/* ---- local ---- */

struct collect {
	struct mci_key *keys;
	size_t n, cap;
	const struct mci_key *keep;
	size_t n_keep;
	int error;
};

static void collect_unwanted(const void *node, VISIT which, void *userdata)
{
	const struct mci_entry *e = *(const struct mci_entry *const *)node;
	struct collect *c = userdata;

	if ((which != postorder && which != leaf) || c->error ||
	    mci_keys_contains(c->keep, c->n_keep, &e->key))
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		struct mci_key *v = realloc(c->keys, cap * sizeof(*v));

		if (!v) {
			c->error = -ENOMEM;
			return;
		}
		c->keys = v;
		c->cap = cap;
	}
	c->keys[c->n++] = e->key;
}

static int mci_local_apply(struct mc_plugin_ctx *ctx, const struct mc_local_state *l)
{
	struct mci_attach *a = mci_get(ctx);
	struct mci_key *want = calloc(l->n_pod_cidrs + 1, sizeof(*want));
	struct collect c = { 0 };
	bool addrs_changed;
	int r = 0;

	if (!want)
		return -ENOMEM;
	for (size_t i = 0; i < l->n_pod_cidrs; i++)
		mci_key_from_prefix(&want[i], &l->pod_cidrs[i]);
	c.keep = want;
	c.n_keep = mci_keys_normalize(want, l->n_pod_cidrs);

	pthread_mutex_lock(&a->lock);
	twalk_r(a->local_cidrs.tree, collect_unwanted, &c);
	r = c.error;
	for (size_t i = 0; r >= 0 && i < c.n; i++)
		r = map_delete(&a->local_cidrs, &c.keys[i]);
	for (size_t i = 0; r >= 0 && i < c.n_keep; i++)
		r = map_set(&a->local_cidrs, &want[i], 1);

	addrs_changed = a->n_local_addrs != l->n_addresses ||
			(l->n_addresses && memcmp(a->local_addrs, l->addresses,
						  l->n_addresses * sizeof(*l->addresses)) != 0);
	if (r >= 0 && addrs_changed) {
		struct mc_ip *copy = malloc((l->n_addresses + 1) * sizeof(*copy));

		if (copy) {
			if (l->n_addresses)
				memcpy(copy, l->addresses, l->n_addresses * sizeof(*copy));
			free(a->local_addrs);
			a->local_addrs = copy;
			a->n_local_addrs = l->n_addresses;
			a->local_addrs_generation++;
		} else {
			r = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&a->lock);
	if (r >= 0 && addrs_changed)
		mci_ifaces_notify(a);
	free(c.keys);
	free(want);
	return r < 0 ? r : 0;
}

/* ---- peers ---- */

static int keys_of_ips(const struct mc_ip *ips, size_t n, struct mci_key **out, size_t *n_out)
{
	struct mci_key *k = calloc(n + 1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		mci_key_from_ip(&k[i], &ips[i]);
	*out = k;
	*n_out = mci_keys_normalize(k, n);
	return 0;
}

static int keys_of_prefixes(const struct mc_prefix *p, size_t n, struct mci_key **out,
			    size_t *n_out)
{
	struct mci_key *k = calloc(n + 1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		mci_key_from_prefix(&k[i], &p[i]);
	*out = k;
	*n_out = mci_keys_normalize(k, n);
	return 0;
}

/*
 * Makes map hold want[0..n_want) -> index and drop what *have held that want does not. *have
 * becomes want (taken over) on success; on failure it keeps the union, so a retry still
 * removes what is no longer wanted.
 */
static int sync_set(struct mci_map *m, uint16_t index, struct mci_key **have, size_t *n_have,
		    struct mci_key *want, size_t n_want)
{
	struct mci_key *merged;
	int r = 0;

	for (size_t i = 0; r >= 0 && i < n_want; i++)
		r = map_set(m, &want[i], index);
	for (size_t i = 0; r >= 0 && i < *n_have; i++)
		if (!mci_keys_contains(want, n_want, &(*have)[i]))
			r = map_delete_owned(m, &(*have)[i], index);
	if (r >= 0) {
		free(*have);
		*have = want;
		*n_have = n_want;
		return 0;
	}
	merged = realloc(*have, (*n_have + n_want + 1) * sizeof(*merged));
	if (merged) {
		if (n_want)
			memcpy(&merged[*n_have], want, n_want * sizeof(*merged));
		*have = merged;
		*n_have = mci_keys_normalize(merged, *n_have + n_want);
	}
	free(want);
	return r;
}

static struct mci_peer *peer_by_name(struct mci_attach *a, const char *name)
{
	for (size_t i = 1; i < MCI_MAX_PEERS; i++)
		if (a->by_index[i] && a->by_index[i]->name && strcmp(a->by_index[i]->name, name) == 0)
			return a->by_index[i];
	return NULL;
}

static int peer_name(struct mci_peer *p, const char *name)
{
	char *copy;

	if (p->name && strcmp(p->name, name) == 0)
		return 0;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	free(p->name);
	p->name = copy;
	return 0;
}

static int peer_remove(struct mci_attach *a, struct mci_peer *p)
{
	uint16_t index = p->index;
	int r = sync_set(&a->peers, index, &p->addrs, &p->n_addrs, NULL, 0);

	if (r == 0)
		r = sync_set(&a->peer_prefixes, index, &p->prefixes, &p->n_prefixes, NULL, 0);
	if (r == 0)
		peer_free(a, index);
	return r;
}

static int mci_peer_apply(struct mc_plugin_ctx *ctx, const struct mc_peer_state *ps)
{
	struct mci_attach *a = mci_get(ctx);
	uint16_t index = MC_STATE_HAS(ctx->host, peer_state, peer_index) ? ps->peer_index : 0;
	struct mci_key *addrs = NULL, *prefixes = NULL;
	size_t n_addrs = 0, n_prefixes = 0;
	struct mci_peer *p;
	int r;

	if (!ps->present) {
		pthread_mutex_lock(&a->lock);
		p = peer_by_name(a, ps->name);
		if (!p && index)
			p = a->by_index[index];
		r = p ? peer_remove(a, p) : 0;
		pthread_mutex_unlock(&a->lock);
		return r;
	}
	if (index == 0) {
		ctx->host->log(ctx, LOG_ERR, "peer %s has no peer index: the maps cannot name it",
			       ps->name);
		return -MC_EPERMANENT;
	}
	r = keys_of_ips(ps->addresses, ps->n_addresses, &addrs, &n_addrs);
	if (r == 0)
		r = keys_of_prefixes(ps->prefixes, ps->n_prefixes, &prefixes, &n_prefixes);
	if (r < 0) {
		free(addrs);
		return r;
	}
	pthread_mutex_lock(&a->lock);
	p = peer_get(a, index);
	r = p ? peer_name(p, ps->name) : -ENOMEM;
	/* The prefixes first: the guard covers them before anything else of the peer exists. */
	if (r == 0)
		r = sync_set(&a->peer_prefixes, index, &p->prefixes, &p->n_prefixes, prefixes,
			     n_prefixes);
	else
		free(prefixes);
	if (r == 0)
		r = sync_set(&a->peers, index, &p->addrs, &p->n_addrs, addrs, n_addrs);
	else
		free(addrs);
	pthread_mutex_unlock(&a->lock);
	if (r == 0 && !atomic_load(&a->guard_ready)) {
		ctx->host->log(ctx, LOG_DEBUG,
			       "peer %s: maps filled, but the uplinks are not judged yet: the "
			       "guard may not cover it",
			       ps->name);
		return -EAGAIN;
	}
	return r;
}

/* ---- pods ---- */

static int pod_apply_locked(struct mci_attach *a, const struct mc_pod_state *pod)
{
	uint16_t index = MC_STATE_HAS(a->ctx->host, pod_state, peer_index) ? pod->peer_index : 0;
	struct mci_key k;
	int r = 0;

	mci_key_from_ip(&k, &pod->ip);
	switch (pod->role) {
	case MC_POD_LOCAL_MANAGED:
		r = map_delete(&a->remote_pods, &k);
		if (r >= 0)
			r = map_set(&a->local_pods, &k, 1);
		break;
	case MC_POD_REMOTE_MANAGED:
		r = map_delete(&a->local_pods, &k);
		if (r >= 0)
			r = map_set(&a->remote_pods, &k, index);
		break;
	case MC_POD_NONE:
		r = map_delete(&a->local_pods, &k);
		if (r >= 0)
			r = map_delete(&a->remote_pods, &k);
		break;
	}
	return r < 0 ? r : 0;
}

static int mci_pod_apply(struct mc_plugin_ctx *ctx, const struct mc_pod_state *pod)
{
	struct mci_attach *a = mci_get(ctx);
	int r;

	pthread_mutex_lock(&a->lock);
	r = pod_apply_locked(a, pod);
	pthread_mutex_unlock(&a->lock);
	return r;
}

/* ---- garbage collection ---- */

/* A pod entry the store no longer wants as it is (a pod deleted while we were down, say):
 * applied anew from its current desired state. */
static int gc_pod(struct mci_attach *a, struct mci_map *m, const struct mci_key *k,
		  uint32_t value, const void *arg)
{
	static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct mc_plugin_ctx *ctx = a->ctx;
	struct mc_pod_state pod;
	struct mc_ip ip = { 0 };
	bool wanted;
	int r;

	(void)arg;
	if (memcmp(k->b, v4_mapped, sizeof(v4_mapped)) == 0) {
		ip.family = AF_INET;
		memcpy(ip.addr, &k->b[12], 4);
	} else {
		ip.family = AF_INET6;
		memcpy(ip.addr, k->b, 16);
	}
	r = ctx->host->pod_state(ctx, &ip, &pod);
	if (r == -ENOENT) {
		pod = (struct mc_pod_state){ .ip = ip, .role = MC_POD_NONE };
		r = 0;
	}
	if (r < 0)
		return r;
	wanted = m == &a->local_pods ? pod.role == MC_POD_LOCAL_MANAGED :
				       pod.role == MC_POD_REMOTE_MANAGED && pod.peer_index == value;
	if (wanted)
		return 0;
	/* The model may not know the entry (it was read before, or written by another run). */
	if (!model_find(m, k) && (r = model_set(m, k, value)) < 0)
		return r;
	return pod_apply_locked(a, &pod);
}

static int gc_entry(struct mci_attach *a, struct mci_map *m, const struct mci_key *k,
		    uint32_t value, const void *arg)
{
	const uint8_t *keep = arg;
	int r;

	if (value && value < MCI_MAX_PEERS && (keep[value / 8] & (1u << (value % 8))))
		return 0;
	/* In the kernel whatever the model says (a stale entry of an earlier run, say). */
	r = bpf_map_delete_elem(m->fd, k->b);
	if (r < 0 && r != -ENOENT)
		return r;
	model_remove(m, k);
	return 0;
}

static int mci_gc(struct mc_plugin_ctx *ctx, const struct mc_peer_state *const *peers, size_t n)
{
	struct mci_attach *a = mci_get(ctx);
	uint8_t *keep = calloc(MCI_MAX_PEERS / 8, 1);
	int r = 0;

	if (!keep)
		return -ENOMEM;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < n; i++) {
		uint16_t index = MC_STATE_HAS(ctx->host, peer_state, peer_index) ?
					 peers[i]->peer_index : 0;

		if (!index)
			continue;
		keep[index / 8] |= (uint8_t)(1u << (index % 8));
		if (a->by_index[index] && r == 0)
			r = peer_name(a->by_index[index], peers[i]->name);
	}
	if (r == 0)
		r = kernel_walk(&a->peers, gc_entry, a, keep);
	if (r == 0)
		r = kernel_walk(&a->peer_prefixes, gc_entry, a, keep);
	if (r == 0)
		r = kernel_walk(&a->local_pods, gc_pod, a, NULL);
	if (r == 0)
		r = kernel_walk(&a->remote_pods, gc_pod, a, NULL);
	for (size_t i = 1; r == 0 && i < MCI_MAX_PEERS; i++)
		if (!(keep[i / 8] & (1u << (i % 8))))
			peer_free(a, (uint16_t)i);
	pthread_mutex_unlock(&a->lock);
	free(keep);
	return r;
}

const struct mc_dataplane_ops mci_dataplane_ops = MC_DATAPLANE_OPS(
	.local_apply = mci_local_apply,
	.peer_apply = mci_peer_apply,
	.pod_apply = mci_pod_apply,
	.gc = mci_gc);
