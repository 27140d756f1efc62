/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cluster model and its desired state (docs/model.md).
 *
 * Every write runs as a transaction under the write lock: before an input changes, each key
 * whose derived state depends on it is "touched" and its current derived state captured; at
 * the end every touched key is derived again, and only the keys that differ are enqueued,
 * after the lock is released.
 *
 * Memory: a pod is one allocation (header, IPs, name); node and namespace names are interned
 * to ids; the indexes (hashmap.h's seeded mci_idxmap, shared with the work queue) hold 32-bit
 * pod slots, not pointers, next to a 32-bit hash tag. Namespaces keep one bit (carries the
 * managed label), pods keep one bit for their own label.
 */

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <meshcrypt/store.h>

#include "hashmap.h"
#include "object-internal.h"
#include "util.h"

/* --- indexes ----------------------------------------------------------------------------- */

/* The indexes are mci_idxmaps (hashmap.h), the same index as the work queue's, hashed with the
 * same per-process seed: names and IPs are chosen by cluster users, so a fixed seed would let
 * them craft keys that collide and turn every lookup into a scan. */
static size_t idx_bytes(const struct mci_idxmap *m)
{
	return m->slots ? malloc_usable_size(m->slots) : 0;
}

/* memcmp() equality that accepts NULL for empty arrays. */
static bool mem_equal(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/* --- vectors of 32-bit values ---------------------------------------------------------------- */

struct u32vec {
	uint32_t *v;
	uint32_t n, cap;
};

static int vec_reserve(struct u32vec *a, uint32_t more)
{
	uint32_t cap;
	uint32_t *v;

	if (a->n + more <= a->cap)
		return 0;
	cap = a->cap ? a->cap : 4;
	while (cap < a->n + more)
		cap *= 2;
	v = realloc(a->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	a->v = v;
	a->cap = cap;
	return 0;
}

static void vec_remove(struct u32vec *a, uint32_t value)
{
	for (uint32_t i = 0; i < a->n; i++)
		if (a->v[i] == value) {
			a->v[i] = a->v[--a->n];
			return;
		}
}

/* --- interned names ------------------------------------------------------------------------ */

/* Names get ids 1, 2, ... in order of first sight and keep them for the life of the store. */
struct names {
	char **name; /* [id]; [0] unused */
	uint32_t n; /* next id */
	uint32_t cap;
	struct mci_idxmap index; /* ids by name */
};

struct names_key {
	const struct names *t;
	const char *name;
};

static bool names_match(void *ctx, uint32_t id)
{
	const struct names_key *k = ctx;

	return strcmp(k->t->name[id], k->name) == 0;
}

static uint32_t names_lookup(const struct names *t, const char *name)
{
	struct names_key k = { .t = t, .name = name };
	uint32_t at, id;

	if (!t->index.slots)
		return 0;
	id = mci_idxmap_lookup(&t->index, mci_hash_bytes(name, strlen(name)), names_match, &k, &at);
	return id == MCI_NONE ? 0 : id;
}

/* Issues the next id to name, which t does not hold yet. */
static int names_intern(struct names *t, const char *name, uint32_t *id)
{
	if (t->n == 0)
		t->n = 1;
	if (t->n >= t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 16;
		char **nv = realloc(t->name, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		t->name = nv;
		t->cap = cap;
	}
	if (mci_idxmap_reserve(&t->index) < 0 || !(t->name[t->n] = strdup(name)))
		return -ENOMEM;
	*id = t->n++;
	mci_idxmap_insert(&t->index, mci_hash_bytes(name, strlen(name)), *id);
	return 0;
}

static void names_free(struct names *t)
{
	for (uint32_t id = 1; id < t->n; id++)
		free(t->name[id]);
	free(t->name);
	mci_idxmap_fini(&t->index);
}

/* --- the store ----------------------------------------------------------------------------- */

enum {
	POD_LIVE = 1 << 0,     /* scheduled, has IPs, not hostNetwork, not Succeeded/Failed */
	POD_LABELLED = 1 << 1, /* carries the managed label itself */
	POD_SEEN = 1 << 2,     /* present in the relist being applied */
};

/* The parser allows one pod IP per family, as Kubernetes does. */
#define POD_IPS_MAX 2

struct pod {
	int64_t created;
	uint32_t ns;   /* namespace id */
	uint32_t node; /* node id; 0 when not scheduled */
	uint8_t flags;
	uint8_t n_ips; /* 0 unless POD_LIVE */
	struct mc_ip ips[];
	/* followed by the NUL-terminated name */
};

static const char *pod_name(const struct pod *p)
{
	return (const char *)(p->ips + p->n_ips);
}

struct node {
	struct mc_object *node;   /* the Node, or NULL */
	struct mc_object *mcnode; /* the MeshcryptNode, or NULL: not participating */
	struct u32vec pods;       /* slots of the live pods scheduled on it */
	bool node_seen, mcnode_seen;
};

struct ns {
	bool present, managed, seen;
};

struct mc_store {
	pthread_rwlock_t lock;
	char *local_name;
	uint32_t local_id;
	char *label_key, *label_value;
	void (*enqueue)(void *ctx, const struct mc_key *key);
	void (*event)(void *ctx, int level, const char *message);
	void *ctx;

	struct names node_names;
	struct node *nodes; /* [node id] */
	uint32_t nodes_cap;
	struct names ns_names;
	struct ns *nss; /* [namespace id] */
	uint32_t nss_cap;

	struct pod **pods; /* [slot]; slot 0 unused, NULL = free */
	uint32_t n_slots, cap_slots;
	struct u32vec free_slots;
	size_t n_pods, n_pod_ips;
	struct mci_idxmap by_name; /* pod slots by (namespace, name) */
	struct mci_idxmap by_ip;   /* slot << 1 | IP index, by IP: several pods may claim one IP */

	struct mc_object **secrets;
	bool *secret_seen;
	size_t n_secrets;

	/* kinds whose relist in pages lost a page (ENOMEM): their last page deletes nothing */
	unsigned relist_failed;

	/* every node's effective pod CIDRs, sorted, for "one IP in two nodes' CIDRs" */
	struct cidr_entry {
		struct mc_prefix prefix;
		uint32_t node;
	} *cidrs;
	size_t n_cidrs;
	bool cidrs_dirty;
	/* the prefix lengths in use, per family (0: IPv4, 1: IPv6), to look up only those */
	uint8_t cidr_lens[2][129];
	unsigned n_cidr_lens[2];

	/* every InternalIP of a Node and every address of a MeshcryptNode, sorted by address then
	 * node: no pod may claim one, and addr_owner() settles one that two nodes list */
	struct addr_entry {
		struct mc_ip ip;
		uint32_t node;
		bool node_object; /* listed by the Node (its kubelet), not only its MeshcryptNode */
	} *addrs;
	size_t n_addrs;
	bool addrs_dirty;

	/* managed pod IPs by role (enum mc_pod_role), kept by txn_finish() from the same
	 * before/after comparison that enqueues pod keys; stale after a write that lost a key
	 * (ENOMEM), then counted again by the next reader */
	size_t managed[MC_POD_REMOTE_MANAGED + 1];
	bool managed_stale;
};

static uint64_t ip_hash(const struct mc_ip *ip)
{
	return mci_hash_bytes(ip, sizeof(*ip));
}

static const struct mc_ip *ip_entry(const struct mc_store *s, uint32_t e)
{
	return &s->pods[e >> 1]->ips[e & 1];
}

static uint64_t name_key_hash(uint32_t ns, const char *name)
{
	return mci_mum(mci_hash_bytes(name, strlen(name)) ^ ns, 0x9e3779b97f4a7c15u);
}

struct pod_key {
	const struct mc_store *s;
	uint32_t ns;
	const char *name;
};

static bool pod_match(void *ctx, uint32_t slot)
{
	const struct pod_key *k = ctx;
	const struct pod *p = k->s->pods[slot];

	return p->ns == k->ns && strcmp(pod_name(p), k->name) == 0;
}

static uint32_t pod_find(const struct mc_store *s, uint32_t ns, const char *name)
{
	struct pod_key k = { .s = s, .ns = ns, .name = name };
	uint32_t at, slot;

	if (!s->by_name.slots)
		return 0;
	slot = mci_idxmap_lookup(&s->by_name, name_key_hash(ns, name), pod_match, &k, &at);
	return slot == MCI_NONE ? 0 : slot;
}

static bool pod_managed(const struct mc_store *s, const struct pod *p, const uint8_t *ns_view)
{
	/* ns_view: the namespaces' managed bits before this transaction (see struct txn) */
	if (p->flags & POD_LABELLED)
		return true;
	if (ns_view && ns_view[p->ns])
		return ns_view[p->ns] == 2;
	return s->nss[p->ns].managed;
}

/* Newest creationTimestamp wins; on a tie the greater namespace/name. */
static int pod_newer(const struct mc_store *s, const struct pod *a, const struct pod *b)
{
	int r;

	if (a->created != b->created)
		return a->created > b->created ? 1 : -1;
	r = strcmp(s->ns_names.name[a->ns], s->ns_names.name[b->ns]);
	return r ? r : strcmp(pod_name(a), pod_name(b));
}

struct ip_visit {
	const struct mc_store *s;
	const struct mc_ip *ip;
	uint32_t *out;
	size_t max, n;
	uint32_t winner;
};

/* Collects the claimants of v->ip, winner first; answers false to visit them all. */
static bool ip_collect(void *ctx, uint32_t e)
{
	struct ip_visit *v = ctx;
	const struct mc_store *s = v->s;

	if (memcmp(ip_entry(s, e), v->ip, sizeof(*v->ip)) != 0)
		return false;
	if (v->n < v->max)
		v->out[v->n] = e >> 1;
	if (v->n > 0 && v->n < v->max &&
	    pod_newer(s, s->pods[v->out[v->n]], s->pods[v->out[0]]) > 0) {
		uint32_t t = v->out[0];

		v->out[0] = v->out[v->n];
		v->out[v->n] = t;
	}
	v->n++;
	return false;
}

/* The slots of the live pods claiming ip (at most max), winner first; returns their count. */
static size_t ip_claimants(const struct mc_store *s, const struct mc_ip *ip, uint32_t *out,
			   size_t max)
{
	struct ip_visit v = { .s = s, .ip = ip, .out = out, .max = max };
	uint32_t at;

	if (!s->by_ip.slots)
		return 0;
	(void)mci_idxmap_lookup(&s->by_ip, ip_hash(ip), ip_collect, &v, &at);
	return v.n;
}

static bool ip_newest(void *ctx, uint32_t e)
{
	struct ip_visit *v = ctx;
	const struct mc_store *s = v->s;

	if (memcmp(ip_entry(s, e), v->ip, sizeof(*v->ip)) == 0 &&
	    (!v->winner || pod_newer(s, s->pods[e >> 1], s->pods[v->winner]) > 0))
		v->winner = e >> 1;
	return false;
}

static uint32_t ip_winner(const struct mc_store *s, const struct mc_ip *ip)
{
	struct ip_visit v = { .s = s, .ip = ip };
	uint32_t at;

	if (!s->by_ip.slots)
		return 0;
	(void)mci_idxmap_lookup(&s->by_ip, ip_hash(ip), ip_newest, &v, &at);
	return v.winner;
}

/* --- derived state --------------------------------------------------------------------------- */

static void effective(const struct node *n, const struct mc_ip **addrs, size_t *n_addrs,
		      const char **boot, const struct mc_prefix **cidrs, size_t *n_cidrs)
{
	const struct mc_object *nd = n->node, *mc = n->mcnode;

	*addrs = NULL, *n_addrs = 0, *boot = "", *cidrs = NULL, *n_cidrs = 0;
	if (mc && mc->mcnode.n_addresses)
		*addrs = mc->mcnode.addresses, *n_addrs = mc->mcnode.n_addresses;
	else if (nd)
		*addrs = nd->node.addresses, *n_addrs = nd->node.n_addresses;
	if (mc && mc->mcnode.boot_id[0])
		*boot = mc->mcnode.boot_id;
	else if (nd)
		*boot = nd->node.boot_id;
	if (mc && mc->mcnode.n_pod_cidrs)
		*cidrs = mc->mcnode.pod_cidrs, *n_cidrs = mc->mcnode.n_pod_cidrs;
	else if (nd)
		*cidrs = nd->node.pod_cidrs, *n_cidrs = nd->node.n_pod_cidrs;
}

static int cmp_prefix(const void *a, const void *b)
{
	return mc_prefix_compare(a, b);
}

/* Sorts and deduplicates n prefixes in place; returns the new count. */
static size_t prefixes_normalize(struct mc_prefix *p, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return 0;
	qsort(p, n, sizeof(*p), cmp_prefix);
	for (size_t i = 0; i < n; i++)
		if (o == 0 || mc_prefix_compare(&p[o - 1], &p[i]) != 0)
			p[o++] = p[i];
	return o;
}

static void *memdup_array(const void *src, size_t n, size_t size)
{
	void *p;

	if (n == 0)
		return NULL;
	p = malloc(n * size);
	if (p)
		memcpy(p, src, n * size);
	return p;
}

void mc_peer_state_free(struct mc_peer_state *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->addresses);
	free(p->prefixes);
	free(p);
}

void mc_local_state_free(struct mc_local_state *l)
{
	if (!l)
		return;
	free(l->name);
	free(l->addresses);
	free(l->pod_cidrs);
	free(l);
}

static bool in_any(const struct mc_prefix *cidrs, size_t n, const struct mc_ip *ip)
{
	for (size_t i = 0; i < n; i++)
		if (mc_prefix_contains(&cidrs[i], ip))
			return true;
	return false;
}

/* The first entry of ip in s->addrs (n_addrs when none). */
static size_t addr_first(const struct mc_store *s, const struct mc_ip *ip)
{
	size_t lo = 0, hi = s->n_addrs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mc_ip_compare(&s->addrs[mid].ip, ip) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool is_node_address(const struct mc_store *s, const struct mc_ip *ip)
{
	size_t i = addr_first(s, ip);

	return i < s->n_addrs && mc_ip_compare(&s->addrs[i].ip, ip) == 0;
}

/* Whether claim a beats claim b of one address: this node first (it never gives up its own),
 * then one its Node object lists (what kubelet reports, not what an agent publishes), then
 * the smaller name, so that every node settles it alike. */
static bool claim_beats(const struct mc_store *s, const struct addr_entry *a,
			const struct addr_entry *b)
{
	if ((a->node == s->local_id) != (b->node == s->local_id))
		return a->node == s->local_id;
	if (a->node_object != b->node_object)
		return a->node_object;
	return strcmp(s->node_names.name[a->node], s->node_names.name[b->node]) < 0;
}

/* The node an address belongs to (0: no node lists it). */
static uint32_t addr_owner(const struct mc_store *s, const struct mc_ip *ip)
{
	const struct addr_entry *best = NULL;

	for (size_t i = addr_first(s, ip); i < s->n_addrs && mc_ip_compare(&s->addrs[i].ip, ip) == 0;
	     i++)
		if (!best || claim_beats(s, &s->addrs[i], best))
			best = &s->addrs[i];
	return best ? best->node : 0;
}

/* Whether owner's own Node object lists ip. */
static bool addr_owner_by_node_object(const struct mc_store *s, const struct mc_ip *ip,
				      uint32_t owner)
{
	for (size_t i = addr_first(s, ip); i < s->n_addrs && mc_ip_compare(&s->addrs[i].ip, ip) == 0;
	     i++)
		if (s->addrs[i].node == owner && s->addrs[i].node_object)
			return true;
	return false;
}

static struct mc_peer_state *derive_peer(const struct mc_store *s, uint32_t id)
{
	const struct node *n = &s->nodes[id];
	const struct mc_prefix *cidrs;
	const struct mc_ip *addrs;
	const char *boot;
	size_t n_addrs, n_cidrs, max;
	struct mc_peer_state *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->peer_id = id;
	if (!(p->name = strdup(s->node_names.name[id])))
		goto fail;
	if (id == s->local_id || !n->mcnode)
		return p;
	p->present = true;
	effective(n, &addrs, &n_addrs, &boot, &cidrs, &n_cidrs);
	if (n_addrs && !(p->addresses = malloc(n_addrs * sizeof(*addrs))))
		goto fail;
	/* an address another node has a better claim to is not this peer's (addr_owner()) */
	for (size_t i = 0; i < n_addrs; i++)
		if (addr_owner(s, &addrs[i]) == id)
			p->addresses[p->n_addresses++] = addrs[i];
	memcpy(p->boot_id, boot, strlen(boot) + 1);
	p->key_generation = n->mcnode->mcnode.key_generation;
	memcpy(p->wireguard_public_key, n->mcnode->mcnode.wireguard_public_key,
	       sizeof(p->wireguard_public_key));
	max = n_cidrs + (size_t)n->pods.n * POD_IPS_MAX;
	if (max == 0)
		return p;
	if (!(p->prefixes = malloc(max * sizeof(*p->prefixes))))
		goto fail;
	if (n_cidrs)
		memcpy(p->prefixes, cidrs, n_cidrs * sizeof(*cidrs));
	p->n_prefixes = n_cidrs;
	for (uint32_t i = 0; i < n->pods.n; i++) {
		uint32_t slot = n->pods.v[i];
		const struct pod *pod = s->pods[slot];

		for (unsigned j = 0; j < pod->n_ips; j++) {
			struct mc_prefix *h = &p->prefixes[p->n_prefixes];

			/* an IP another (newer) pod won is not this node's to claim, nor is a
			 * node's address */
			if (in_any(cidrs, n_cidrs, &pod->ips[j]) || ip_winner(s, &pod->ips[j]) != slot ||
			    is_node_address(s, &pod->ips[j]))
				continue;
			h->ip = pod->ips[j];
			h->len = pod->ips[j].family == AF_INET ? 32 : 128;
			p->n_prefixes++;
		}
	}
	p->n_prefixes = prefixes_normalize(p->prefixes, p->n_prefixes);
	return p;
fail:
	mc_peer_state_free(p);
	errno = ENOMEM;
	return NULL;
}

static bool peer_equal(const struct mc_peer_state *a, const struct mc_peer_state *b)
{
	return a->present == b->present && a->n_addresses == b->n_addresses &&
	       a->n_prefixes == b->n_prefixes && a->key_generation == b->key_generation &&
	       strcmp(a->boot_id, b->boot_id) == 0 &&
	       strcmp(a->wireguard_public_key, b->wireguard_public_key) == 0 &&
	       mem_equal(a->addresses, b->addresses, a->n_addresses * sizeof(*a->addresses)) &&
	       mem_equal(a->prefixes, b->prefixes, a->n_prefixes * sizeof(*a->prefixes));
}

static struct mc_pod_state derive_pod(const struct mc_store *s, const struct mc_ip *ip,
				      const uint8_t *ns_view)
{
	struct mc_pod_state st = { .ip = *ip, .role = MC_POD_NONE };
	uint32_t w = ip_winner(s, ip);
	const struct pod *p;

	/* a pod that claims a node's address is not taken at its word (report_conflicts()) */
	if (!w || is_node_address(s, ip))
		return st;
	p = s->pods[w];
	if (!pod_managed(s, p, ns_view))
		return st;
	if (p->node == s->local_id) {
		st.role = MC_POD_LOCAL_MANAGED;
	} else if (s->nodes[p->node].mcnode) {
		st.role = MC_POD_REMOTE_MANAGED;
		st.peer_id = p->node;
	}
	return st;
}

static struct mc_local_state *derive_local(const struct mc_store *s)
{
	const struct node *n = &s->nodes[s->local_id];
	const struct mc_prefix *cidrs;
	const struct mc_ip *addrs;
	const char *boot;
	size_t n_addrs, n_cidrs;
	struct mc_local_state *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	if (!(l->name = strdup(s->local_name)))
		goto fail;
	l->known = n->node || n->mcnode;
	l->participating = n->mcnode != NULL;
	effective(n, &addrs, &n_addrs, &boot, &cidrs, &n_cidrs);
	if (n_addrs && !(l->addresses = memdup_array(addrs, n_addrs, sizeof(*addrs))))
		goto fail;
	l->n_addresses = n_addrs;
	memcpy(l->boot_id, boot, strlen(boot) + 1);
	l->key_generation = n->mcnode ? n->mcnode->mcnode.key_generation : 0;
	if (n_cidrs && !(l->pod_cidrs = memdup_array(cidrs, n_cidrs, sizeof(*cidrs))))
		goto fail;
	l->n_pod_cidrs = prefixes_normalize(l->pod_cidrs, n_cidrs);
	return l;
fail:
	mc_local_state_free(l);
	errno = ENOMEM;
	return NULL;
}

static bool local_equal(const struct mc_local_state *a, const struct mc_local_state *b)
{
	return a->known == b->known && a->participating == b->participating &&
	       a->n_addresses == b->n_addresses && a->n_pod_cidrs == b->n_pod_cidrs &&
	       a->key_generation == b->key_generation && strcmp(a->boot_id, b->boot_id) == 0 &&
	       mem_equal(a->addresses, b->addresses, a->n_addresses * sizeof(*a->addresses)) &&
	       mem_equal(a->pod_cidrs, b->pod_cidrs, a->n_pod_cidrs * sizeof(*a->pod_cidrs));
}

/* --- transactions ------------------------------------------------------------------------- */

struct touched {
	struct mc_key key;
	bool unknown; /* the old state could not be captured (ENOMEM): enqueue regardless */
	union {
		struct mc_pod_state pod;
		struct mc_peer_state *peer;
		struct mc_local_state *local;
	} before;
};

struct txn {
	struct touched *v;
	uint32_t n, cap;
	struct mci_idxmap index; /* entry numbers (into v), by key */
	/* [namespace id]: 0 unchanged in this transaction, else 1 + its managed bit before it.
	 * Namespace changes touch their pods in one pass at the end (touch_namespaces()), so
	 * until then derive_pod() must see the old bits. */
	uint8_t *ns_before;
	uint32_t ns_before_cap;
	bool ns_changed;
	/* produced for the caller, who emits them with the lock released */
	struct mc_key *changed;
	size_t n_changed;
	struct txn_event {
		int level;
		char *message;
	} *events;
	size_t n_events;
	int error; /* first ENOMEM: keep going so that every change is still enqueued */
};

static uint64_t key_hash(const struct mc_key *k)
{
	return mci_hash_bytes(k, sizeof(*k));
}

struct touched_key {
	const struct txn *t;
	const struct mc_key *key;
};

static bool touched_match(void *ctx, uint32_t e)
{
	const struct touched_key *k = ctx;

	return memcmp(&k->t->v[e].key, k->key, sizeof(*k->key)) == 0;
}

static struct mc_key make_key(uint32_t type, uint32_t peer_id, const struct mc_ip *ip)
{
	struct mc_key k;

	memset(&k, 0, sizeof(k));
	k.type = type;
	k.peer_id = peer_id;
	if (ip)
		k.ip = *ip;
	return k;
}

static void txn_oom(struct txn *t)
{
	if (!t->error)
		t->error = -ENOMEM;
}

/* Records key as affected by the change about to be made, capturing its state first. */
static void touch(struct mc_store *s, struct txn *t, const struct mc_key *key)
{
	struct touched_key k = { .t = t, .key = key };
	uint64_t h = key_hash(key);
	struct touched *e;
	uint32_t at;

	if (t->index.slots && mci_idxmap_lookup(&t->index, h, touched_match, &k, &at) != MCI_NONE)
		return;
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 64;
		struct touched *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			goto oom;
		t->v = v;
		t->cap = cap;
	}
	if (mci_idxmap_reserve(&t->index) < 0)
		goto oom;
	mci_idxmap_insert(&t->index, h, t->n);
	e = &t->v[t->n++];
	memset(e, 0, sizeof(*e));
	e->key = *key;
	switch (key->type) {
	case MC_KEY_POD:
		e->before.pod = derive_pod(s, &key->ip, t->ns_before);
		break;
	case MC_KEY_PEER:
		e->unknown = !(e->before.peer = derive_peer(s, key->peer_id));
		break;
	case MC_KEY_LOCAL:
		e->unknown = !(e->before.local = derive_local(s));
		break;
	default:
		e->unknown = true; /* secrets are compared when they are applied */
		break;
	}
	if (e->unknown && key->type != MC_KEY_SECRET)
		txn_oom(t);
	return;
oom:
	/* without a record the key would be lost: the error makes the caller relist */
	txn_oom(t);
}

static void touch_peer(struct mc_store *s, struct txn *t, uint32_t id)
{
	struct mc_key k = make_key(MC_KEY_PEER, id, NULL);

	touch(s, t, &k);
	if (id == s->local_id) {
		k = make_key(MC_KEY_LOCAL, 0, NULL);
		touch(s, t, &k);
	}
}

/*
 * Whether a pod of node id at ip can shape that node's peer state: only a participating
 * peer's IP outside its pod CIDRs becomes one of its prefixes (derive_peer()). Pod churn inside
 * the CIDRs, the usual case, then derives no peer state, whose cost grows with the node's pods.
 * A change of the CIDRs themselves touches the peer on its own (set_node_obj()).
 */
static bool ip_shapes_peer(const struct mc_store *s, uint32_t id, const struct mc_ip *ip)
{
	const struct node *n = &s->nodes[id];
	const struct mc_prefix *cidrs;
	const struct mc_ip *addrs;
	const char *boot;
	size_t n_addrs, n_cidrs;

	if (id == s->local_id || !n->mcnode || is_node_address(s, ip))
		return false;
	effective(n, &addrs, &n_addrs, &boot, &cidrs, &n_cidrs);
	return !in_any(cidrs, n_cidrs, ip);
}

/* Before a node's addresses change: the pod key of ip and every peer whose state may follow
 * from who holds ip (pods claiming it, nodes listing it). */
static void touch_addr(struct mc_store *s, struct txn *t, const struct mc_ip *ip)
{
	struct mc_key k = make_key(MC_KEY_POD, 0, ip);
	uint32_t claimants[8];
	size_t n = ip_claimants(s, ip, claimants, 8);

	touch(s, t, &k);
	for (size_t i = 0; i < n && i < 8; i++)
		touch_peer(s, t, s->pods[claimants[i]]->node);
	for (size_t i = addr_first(s, ip); i < s->n_addrs && mc_ip_compare(&s->addrs[i].ip, ip) == 0;
	     i++)
		touch_peer(s, t, s->addrs[i].node);
}

static void touch_node_addresses(struct mc_store *s, struct txn *t, const struct mc_object *o)
{
	const struct mc_ip *a = NULL;
	size_t n = 0;

	if (o && o->kind == MC_OBJECT_NODE)
		a = o->node.addresses, n = o->node.n_addresses;
	else if (o)
		a = o->mcnode.addresses, n = o->mcnode.n_addresses;
	for (size_t i = 0; i < n; i++)
		touch_addr(s, t, &a[i]);
}

/* A pod's IP key, and the peers of every pod claiming that IP whose prefixes it may be: who
 * wins decides whose host prefix it is. */
static void touch_ip(struct mc_store *s, struct txn *t, const struct mc_ip *ip)
{
	struct mc_key k = make_key(MC_KEY_POD, 0, ip);
	uint32_t claimants[8];
	size_t n = ip_claimants(s, ip, claimants, 8);

	touch(s, t, &k);
	for (size_t i = 0; i < n && i < 8; i++)
		if (ip_shapes_peer(s, s->pods[claimants[i]]->node, ip))
			touch_peer(s, t, s->pods[claimants[i]]->node);
}

static void touch_pod(struct mc_store *s, struct txn *t, const struct pod *p)
{
	for (unsigned i = 0; i < p->n_ips; i++) {
		touch_ip(s, t, &p->ips[i]);
		if (ip_shapes_peer(s, p->node, &p->ips[i]))
			touch_peer(s, t, p->node);
	}
}

static void event(struct txn *t, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void event(struct txn *t, int level, const char *fmt, ...)
{
	struct txn_event *v = realloc(t->events, (t->n_events + 1) * sizeof(*v));
	va_list ap;
	char *msg;
	int n;

	if (!v)
		return txn_oom(t);
	t->events = v;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return txn_oom(t);
	t->events[t->n_events++] = (struct txn_event){ level, msg };
}

static void report_conflicts(struct mc_store *s, struct txn *t, const struct mc_ip *ip)
{
	char ipbuf[MC_IP_STRLEN];
	uint32_t c[4];
	size_t n = ip_claimants(s, ip, c, 4), in = 0;
	const struct pod *w;
	uint32_t nodes[2];

	if (n == 0)
		return;
	w = s->pods[c[0]];
	mc_ip_to_string(ip, ipbuf);
	if (is_node_address(s, ip)) {
		event(t, LOG_WARNING,
		      "pod IP %s (%s/%s) is the address of node %s: not taken as a pod's, so "
		      "traffic to it is neither encrypted nor guarded as a pod's",
		      ipbuf, s->ns_names.name[w->ns], pod_name(w),
		      s->node_names.name[addr_owner(s, ip)]);
		return;
	}
	if (n >= 2) {
		const struct pod *l = s->pods[c[1]];

		event(t, LOG_WARNING,
		      "pod IP %s is claimed by %zu live pods: %s/%s (node %s) wins as the newest, "
		      "over %s/%s (node %s)%s",
		      ipbuf, n, s->ns_names.name[w->ns], pod_name(w), s->node_names.name[w->node],
		      s->ns_names.name[l->ns], pod_name(l), s->node_names.name[l->node],
		      n > 2 ? " and others" : "");
	}
	if (s->cidrs_dirty || !s->n_cidrs)
		return;
	for (unsigned l = 0, fam = ip->family == AF_INET6; l < s->n_cidr_lens[fam] && in < 2; l++) {
		unsigned len = s->cidr_lens[fam][l];
		struct cidr_entry key = { .prefix = { .ip = *ip, .len = (uint8_t)len } };
		size_t lo = 0, hi = s->n_cidrs;

		for (unsigned bit = len; bit < 128; bit++)
			key.prefix.ip.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (mc_prefix_compare(&s->cidrs[mid].prefix, &key.prefix) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < s->n_cidrs && in < 2 &&
		       mc_prefix_compare(&s->cidrs[lo].prefix, &key.prefix) == 0;
		     lo++)
			if (in == 0 || nodes[0] != s->cidrs[lo].node)
				nodes[in++] = s->cidrs[lo].node;
	}
	if (in == 2)
		event(t, LOG_WARNING,
		      "pod IP %s (%s/%s) lies inside the pod CIDRs of nodes %s and %s; it stays "
		      "with its own node %s",
		      ipbuf, s->ns_names.name[w->ns], pod_name(w), s->node_names.name[nodes[0]],
		      s->node_names.name[nodes[1]], s->node_names.name[w->node]);
}

static int cmp_cidr_entry(const void *a, const void *b)
{
	const struct cidr_entry *x = a, *y = b;
	int r = mc_prefix_compare(&x->prefix, &y->prefix);

	return r ? r : (x->node > y->node) - (x->node < y->node);
}

static void rebuild_cidrs(struct mc_store *s, struct txn *t)
{
	size_t n = 0, o = 0;
	struct cidr_entry *v;

	for (uint32_t id = 1; id < s->node_names.n; id++) {
		const struct mc_prefix *c;
		const struct mc_ip *a;
		const char *b;
		size_t na, nc;

		effective(&s->nodes[id], &a, &na, &b, &c, &nc);
		n += nc;
	}
	v = n ? malloc(n * sizeof(*v)) : NULL;
	if (n && !v)
		return txn_oom(t);
	for (uint32_t id = 1; id < s->node_names.n; id++) {
		const struct mc_prefix *c;
		const struct mc_ip *a;
		const char *b;
		size_t na, nc;

		effective(&s->nodes[id], &a, &na, &b, &c, &nc);
		for (size_t i = 0; i < nc; i++)
			v[o++] = (struct cidr_entry){ c[i], id };
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_cidr_entry);
	s->n_cidr_lens[0] = s->n_cidr_lens[1] = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned fam = v[i].prefix.ip.family == AF_INET6, k = s->n_cidr_lens[fam];

		if (!memchr(s->cidr_lens[fam], v[i].prefix.len, k))
			s->cidr_lens[fam][s->n_cidr_lens[fam]++] = v[i].prefix.len;
	}
	free(s->cidrs);
	s->cidrs = v;
	s->n_cidrs = n;
	s->cidrs_dirty = false;
}

/* Touches the pods of the namespaces this transaction changed: one pass over all pods. */
static int cmp_addr_entry(const void *a, const void *b)
{
	const struct addr_entry *x = a, *y = b;
	int c = mc_ip_compare(&x->ip, &y->ip);

	if (c)
		return c;
	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return (int)y->node_object - (int)x->node_object;
}

static size_t append_addrs(struct addr_entry *v, size_t n, const struct mc_ip *a, size_t na,
			   uint32_t node, bool node_object)
{
	for (size_t i = 0; i < na; i++)
		v[n++] = (struct addr_entry){ a[i], node, node_object };
	return n;
}

/* Every node's addresses, and a line for each address that two nodes list (once per change
 * of the nodes). */
static void rebuild_addrs(struct mc_store *s, struct txn *t)
{
	size_t n = 0, o = 0;
	struct addr_entry *v;

	for (uint32_t id = 1; id < s->node_names.n; id++) {
		const struct node *nd = &s->nodes[id];

		n += (nd->node ? nd->node->node.n_addresses : 0) +
		     (nd->mcnode ? nd->mcnode->mcnode.n_addresses : 0);
	}
	v = n ? malloc(n * sizeof(*v)) : NULL;
	if (n && !v)
		return txn_oom(t);
	for (uint32_t id = 1; id < s->node_names.n; id++) {
		const struct node *nd = &s->nodes[id];

		if (nd->node)
			o = append_addrs(v, o, nd->node->node.addresses, nd->node->node.n_addresses, id,
					 true);
		if (nd->mcnode)
			o = append_addrs(v, o, nd->mcnode->mcnode.addresses,
					 nd->mcnode->mcnode.n_addresses, id, false);
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_addr_entry);
	free(s->addrs);
	s->addrs = v;
	s->n_addrs = n;
	s->addrs_dirty = false;
	for (size_t i = 0; i < n;) {
		uint32_t owner = addr_owner(s, &v[i].ip);
		size_t j = i;
		char ip[MC_IP_STRLEN];

		for (; j < n && mc_ip_compare(&v[j].ip, &v[i].ip) == 0; j++)
			if (v[j].node != owner && (j == i || v[j].node != v[j - 1].node))
				event(t, LOG_WARNING,
				      "address %s is listed by nodes %s and %s: it stays with %s (%s); "
				      "node %s is not reached at it",
				      mc_ip_to_string(&v[i].ip, ip), s->node_names.name[owner],
				      s->node_names.name[v[j].node], s->node_names.name[owner],
				      owner == s->local_id ? "this node" :
				      addr_owner_by_node_object(s, &v[i].ip, owner) ? "its Node lists it" :
										      "first by name",
				      s->node_names.name[v[j].node]);
		i = j;
	}
}

static void touch_namespaces(struct mc_store *s, struct txn *t)
{
	if (!t->ns_changed)
		return;
	for (uint32_t slot = 1; slot < s->n_slots; slot++) {
		const struct pod *p = s->pods[slot];

		if (p && p->n_ips && p->ns < t->ns_before_cap && t->ns_before[p->ns])
			for (unsigned i = 0; i < p->n_ips; i++) {
				struct mc_key k = make_key(MC_KEY_POD, 0, &p->ips[i]);

				touch(s, t, &k);
			}
	}
}

/* Derives every touched key again and keeps those whose state changed. */
static void txn_finish(struct mc_store *s, struct txn *t)
{
	touch_namespaces(s, t);
	if (s->cidrs_dirty)
		rebuild_cidrs(s, t);
	if (s->addrs_dirty)
		rebuild_addrs(s, t);
	t->changed = t->n ? malloc(t->n * sizeof(*t->changed)) : NULL;
	if (t->n && !t->changed) {
		txn_oom(t);
		return;
	}
	for (uint32_t i = 0; i < t->n; i++) {
		struct touched *e = &t->v[i];
		bool changed = e->unknown;

		switch (e->key.type) {
		case MC_KEY_POD: {
			struct mc_pod_state now = derive_pod(s, &e->key.ip, NULL);

			changed = now.role != e->before.pod.role || now.peer_id != e->before.pod.peer_id;
			s->managed[e->before.pod.role]--; /* [MC_POD_NONE] is not read */
			s->managed[now.role]++;
			report_conflicts(s, t, &e->key.ip);
			break;
		}
		case MC_KEY_PEER: {
			struct mc_peer_state *now = derive_peer(s, e->key.peer_id);

			changed = changed || !now || !peer_equal(now, e->before.peer);
			mc_peer_state_free(now);
			break;
		}
		case MC_KEY_LOCAL: {
			struct mc_local_state *now = derive_local(s);

			changed = changed || !now || !local_equal(now, e->before.local);
			mc_local_state_free(now);
			break;
		}
		}
		if (changed)
			t->changed[t->n_changed++] = e->key;
	}
	if (t->error)
		s->managed_stale = true;
}

static void txn_free(struct txn *t)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].key.type == MC_KEY_PEER)
			mc_peer_state_free(t->v[i].before.peer);
		else if (t->v[i].key.type == MC_KEY_LOCAL)
			mc_local_state_free(t->v[i].before.local);
	}
	free(t->v);
	mci_idxmap_fini(&t->index);
	free(t->ns_before);
	free(t->changed);
	for (size_t i = 0; i < t->n_events; i++)
		free(t->events[i].message);
	free(t->events);
}

/* Ends a write: derives, unlocks, then hands out events and keys with the lock released. */
static int txn_commit(struct mc_store *s, struct txn *t)
{
	int r;

	txn_finish(s, t);
	pthread_rwlock_unlock(&s->lock);
	for (size_t i = 0; i < t->n_events; i++)
		if (s->event)
			s->event(s->ctx, t->events[i].level, t->events[i].message);
	for (size_t i = 0; i < t->n_changed; i++)
		s->enqueue(s->ctx, &t->changed[i]);
	r = t->error;
	txn_free(t);
	return r;
}

/* --- applying objects ------------------------------------------------------------------------ */

/* The id of name in t, issuing one if new; *array (one zeroed element of size elem per id,
 * *cap of them) grows first, so a new id always has its element. */
static int intern(struct names *t, const char *name, void **array, uint32_t *cap, size_t elem,
		  uint32_t *id)
{
	uint32_t next = t->n ? t->n : 1;

	if ((*id = names_lookup(t, name)))
		return 0;
	if (next >= *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 16;
		uint8_t *v = realloc(*array, ncap * elem);

		if (!v)
			return -ENOMEM;
		memset(v + *cap * elem, 0, (ncap - *cap) * elem);
		*array = v;
		*cap = ncap;
	}
	return names_intern(t, name, id);
}

static int intern_node(struct mc_store *s, const char *name, uint32_t *id)
{
	return intern(&s->node_names, name, (void **)&s->nodes, &s->nodes_cap, sizeof(*s->nodes),
	              id);
}

static int intern_ns(struct mc_store *s, const char *name, uint32_t *id)
{
	return intern(&s->ns_names, name, (void **)&s->nss, &s->nss_cap, sizeof(*s->nss), id);
}

static bool labelled(const struct mc_store *s, const struct mc_object *o)
{
	const char *v = mc_object_label(o, s->label_key);

	return v && strcmp(v, s->label_value) == 0;
}

static bool same_pod(const struct pod *a, const struct pod *b)
{
	return a->created == b->created && a->ns == b->ns && a->node == b->node &&
	       (a->flags & ~POD_SEEN) == (b->flags & ~POD_SEEN) && a->n_ips == b->n_ips &&
	       mem_equal(a->ips, b->ips, a->n_ips * sizeof(a->ips[0]));
}

/* Takes p out of the IP index and its node's list. */
static void unindex_pod(struct mc_store *s, uint32_t slot)
{
	struct pod *p = s->pods[slot];

	for (unsigned i = 0; i < p->n_ips; i++)
		mci_idxmap_remove(&s->by_ip, ip_hash(&p->ips[i]), slot << 1 | i);
	if (p->n_ips)
		vec_remove(&s->nodes[p->node].pods, slot);
	s->n_pod_ips -= p->n_ips;
}

/* After the reservations in apply_pod(). */
static void index_pod(struct mc_store *s, uint32_t slot)
{
	struct pod *p = s->pods[slot];

	for (unsigned i = 0; i < p->n_ips; i++)
		mci_idxmap_insert(&s->by_ip, ip_hash(&p->ips[i]), slot << 1 | i);
	if (p->n_ips)
		s->nodes[p->node].pods.v[s->nodes[p->node].pods.n++] = slot;
	s->n_pod_ips += p->n_ips;
}

static int new_slot(struct mc_store *s, uint32_t *slot)
{
	if (s->free_slots.n) {
		*slot = s->free_slots.v[--s->free_slots.n];
		return 0;
	}
	if (s->n_slots == 0)
		s->n_slots = 1;
	/* room for every slot in the free list, so that removing a pod cannot fail */
	if (vec_reserve(&s->free_slots, s->n_slots + 1 - s->free_slots.n) < 0)
		return -ENOMEM;
	if (s->n_slots >= s->cap_slots) {
		uint32_t cap = s->cap_slots ? s->cap_slots * 2 : 64;
		struct pod **v;

		if (cap > (1u << 30)) /* slot << 1 must fit the IP index */
			return -ENOSPC;
		v = realloc(s->pods, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->pods = v;
		s->cap_slots = cap;
	}
	*slot = s->n_slots++;
	s->pods[*slot] = NULL;
	return 0;
}

static int apply_pod(struct mc_store *s, struct txn *t, const struct mc_object *o)
{
	size_t name_len = strlen(o->name);
	uint32_t ns, node = 0, slot;
	struct pod *p, *old;
	unsigned n_ips = 0;
	int r;

	if ((r = intern_ns(s, o->namespace, &ns)) < 0)
		return r;
	if (o->pod.node_name && (r = intern_node(s, o->pod.node_name, &node)) < 0)
		return r;
	if (node && o->pod.n_ips && !o->pod.host_network && !o->pod.terminated)
		n_ips = o->pod.n_ips < POD_IPS_MAX ? (unsigned)o->pod.n_ips : POD_IPS_MAX;
	p = malloc(sizeof(*p) + n_ips * sizeof(struct mc_ip) + name_len + 1);
	if (!p)
		return -ENOMEM;
	p->created = o->created;
	p->ns = ns;
	p->node = node;
	p->flags = (n_ips ? POD_LIVE : 0) | (labelled(s, o) ? POD_LABELLED : 0) | POD_SEEN;
	p->n_ips = (uint8_t)n_ips;
	if (n_ips)
		memcpy(p->ips, o->pod.ips, n_ips * sizeof(struct mc_ip));
	memcpy((char *)pod_name(p), o->name, name_len + 1);

	slot = pod_find(s, ns, o->name);
	old = slot ? s->pods[slot] : NULL;
	if (old && same_pod(old, p)) {
		old->flags |= POD_SEEN;
		free(p);
		return 0;
	}
	/* reserve everything, so that nothing below fails half-way */
	if ((r = mci_idxmap_reserve_n(&s->by_ip, n_ips)) < 0 ||
	    (!old && (r = mci_idxmap_reserve(&s->by_name)) < 0) ||
	    (n_ips && (r = vec_reserve(&s->nodes[node].pods, 1)) < 0) ||
	    (!old && (r = new_slot(s, &slot)) < 0)) {
		free(p);
		return r;
	}
	if (old) {
		touch_pod(s, t, old);
		unindex_pod(s, slot);
		free(old);
	} else {
		s->n_pods++;
	}
	s->pods[slot] = p;
	if (!old)
		mci_idxmap_insert(&s->by_name, name_key_hash(ns, o->name), slot);
	/* the claimants before this pod joins them: they may lose the IP to it */
	touch_pod(s, t, p);
	index_pod(s, slot);
	return 0;
}

static void remove_pod(struct mc_store *s, struct txn *t, uint32_t slot)
{
	struct pod *p = s->pods[slot];

	touch_pod(s, t, p);
	unindex_pod(s, slot);
	mci_idxmap_remove(&s->by_name, name_key_hash(p->ns, pod_name(p)), slot);
	free(p);
	s->pods[slot] = NULL;
	s->n_pods--;
	s->free_slots.v[s->free_slots.n++] = slot; /* room reserved by new_slot() */
}

static int set_namespace(struct mc_store *s, struct txn *t, uint32_t ns, bool present,
			 bool managed)
{
	struct ns *n = &s->nss[ns];

	n->seen = present;
	if (n->present == present && n->managed == managed)
		return 0;
	if (n->managed != managed) {
		if (ns >= t->ns_before_cap) {
			uint32_t cap = s->ns_names.cap;
			uint8_t *v = realloc(t->ns_before, cap);

			if (!v)
				return -ENOMEM;
			memset(v + t->ns_before_cap, 0, cap - t->ns_before_cap);
			t->ns_before = v;
			t->ns_before_cap = cap;
		}
		if (!t->ns_before[ns])
			t->ns_before[ns] = (uint8_t)(1 + n->managed);
		t->ns_changed = true;
	}
	n->present = present;
	n->managed = managed;
	return 0;
}

static bool node_obj_equal(const struct mc_object *a, const struct mc_object *b)
{
	if (!a || !b)
		return a == b;
	if (a->kind == MC_OBJECT_NODE)
		return a->node.n_addresses == b->node.n_addresses &&
		       a->node.n_pod_cidrs == b->node.n_pod_cidrs &&
		       strcmp(a->node.boot_id, b->node.boot_id) == 0 &&
		       mem_equal(a->node.addresses, b->node.addresses,
		                 a->node.n_addresses * sizeof(struct mc_ip)) &&
		       mem_equal(a->node.pod_cidrs, b->node.pod_cidrs,
		                 a->node.n_pod_cidrs * sizeof(struct mc_prefix));
	return a->mcnode.n_addresses == b->mcnode.n_addresses &&
	       a->mcnode.n_pod_cidrs == b->mcnode.n_pod_cidrs &&
	       a->mcnode.key_generation == b->mcnode.key_generation &&
	       strcmp(a->mcnode.boot_id, b->mcnode.boot_id) == 0 &&
	       strcmp(a->mcnode.wireguard_public_key, b->mcnode.wireguard_public_key) == 0 &&
	       mem_equal(a->mcnode.addresses, b->mcnode.addresses,
	                 a->mcnode.n_addresses * sizeof(struct mc_ip)) &&
	       mem_equal(a->mcnode.pod_cidrs, b->mcnode.pod_cidrs,
	                 a->mcnode.n_pod_cidrs * sizeof(struct mc_prefix));
}

/* Installs o (a Node or MeshcryptNode; NULL removes) as node id's object of that kind. Takes
 * ownership of o. */
static void set_node_obj(struct mc_store *s, struct txn *t, uint32_t id, enum mc_object_kind kind,
			 struct mc_object *o)
{
	struct node *n = &s->nodes[id];
	struct mc_object **slot = kind == MC_OBJECT_NODE ? &n->node : &n->mcnode;

	if (kind == MC_OBJECT_NODE)
		n->node_seen = o != NULL;
	else
		n->mcnode_seen = o != NULL;
	if (node_obj_equal(*slot, o)) {
		mc_object_free(o);
		return;
	}
	touch_peer(s, t, id);
	touch_node_addresses(s, t, *slot);
	touch_node_addresses(s, t, o);
	/* participation decides whether its managed pods are remote-managed */
	if (kind == MC_OBJECT_MESHCRYPT_NODE && (*slot == NULL) != (o == NULL))
		for (uint32_t i = 0; i < n->pods.n; i++) {
			const struct pod *p = s->pods[n->pods.v[i]];

			for (unsigned j = 0; j < p->n_ips; j++)
				touch_ip(s, t, &p->ips[j]);
		}
	mc_object_free(*slot);
	*slot = o;
	s->cidrs_dirty = true;
	s->addrs_dirty = true;
}

static bool secret_equal(const struct mc_object *a, const struct mc_object *b)
{
	if (a->secret.n_entries != b->secret.n_entries)
		return false;
	for (size_t i = 0; i < a->secret.n_entries; i++) {
		const struct mc_secret_entry *x = &a->secret.entries[i], *y = &b->secret.entries[i];

		if (strcmp(x->key, y->key) != 0 || x->len != y->len ||
		    !mem_equal(x->data, y->data, x->len))
			return false;
	}
	return true;
}

static ssize_t secret_find(const struct mc_store *s, const char *ns, const char *name)
{
	for (size_t i = 0; i < s->n_secrets; i++)
		if (strcmp(s->secrets[i]->namespace, ns) == 0 && strcmp(s->secrets[i]->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static void touch_secret(struct mc_store *s, struct txn *t)
{
	struct mc_key k = make_key(MC_KEY_SECRET, 0, NULL);

	touch(s, t, &k);
}

/* Takes ownership of o. */
static int apply_secret(struct mc_store *s, struct txn *t, struct mc_object *o)
{
	ssize_t i = secret_find(s, o->namespace, o->name);

	if (i >= 0) {
		s->secret_seen[i] = true;
		if (!secret_equal(s->secrets[i], o))
			touch_secret(s, t);
		mc_object_free(s->secrets[i]);
		s->secrets[i] = o;
		return 0;
	}
	struct mc_object **v = realloc(s->secrets, (s->n_secrets + 1) * sizeof(*v));
	bool *seen = v ? realloc(s->secret_seen, (s->n_secrets + 1) * sizeof(*seen)) : NULL;

	if (v)
		s->secrets = v;
	if (!seen) {
		mc_object_free(o);
		return -ENOMEM;
	}
	s->secret_seen = seen;
	s->secrets[s->n_secrets] = o;
	s->secret_seen[s->n_secrets++] = true;
	touch_secret(s, t);
	return 0;
}

static void remove_secret(struct mc_store *s, struct txn *t, size_t i)
{
	mc_object_free(s->secrets[i]);
	s->n_secrets--;
	s->secrets[i] = s->secrets[s->n_secrets];
	s->secret_seen[i] = s->secret_seen[s->n_secrets];
	touch_secret(s, t);
}

/* Applies a Pod or a Namespace, of which the store keeps a copy, not o itself. */
static int apply_copied(struct mc_store *s, struct txn *t, const struct mc_object *o)
{
	uint32_t id;
	int r;

	if (o->kind == MC_OBJECT_POD)
		return apply_pod(s, t, o);
	if ((r = intern_ns(s, o->name, &id)) >= 0)
		r = set_namespace(s, t, id, true, labelled(s, o));
	return r;
}

/* Applies o to the store. Takes ownership of o. */
static int apply(struct mc_store *s, struct txn *t, struct mc_object *o)
{
	uint32_t id;
	int r = 0;

	switch (o->kind) {
	case MC_OBJECT_POD:
	case MC_OBJECT_NAMESPACE:
		r = apply_copied(s, t, o);
		break;
	case MC_OBJECT_NODE:
	case MC_OBJECT_MESHCRYPT_NODE:
		if ((r = intern_node(s, o->name, &id)) < 0)
			break;
		set_node_obj(s, t, id, o->kind, o);
		return 0;
	case MC_OBJECT_SECRET:
		return apply_secret(s, t, o);
	}
	mc_object_free(o);
	return r;
}

static void write_lock(struct mc_store *s, struct txn *t)
{
	memset(t, 0, sizeof(*t));
	pthread_rwlock_wrlock(&s->lock);
}

int mc_store_upsert(struct mc_store *s, struct mc_object *obj)
{
	struct txn t;
	int r;

	if (!s || !obj) {
		mc_object_free(obj);
		return -EINVAL;
	}
	write_lock(s, &t);
	r = apply(s, &t, obj);
	if (r < 0)
		txn_oom(&t);
	return txn_commit(s, &t);
}

int mc_store_delete(struct mc_store *s, enum mc_object_kind kind, const char *ns,
		    const char *name)
{
	uint32_t id, slot;
	struct txn t;
	ssize_t i;
	int r = 0;

	if (!s || !name || ((kind == MC_OBJECT_POD || kind == MC_OBJECT_SECRET) && !ns))
		return -EINVAL;
	write_lock(s, &t);
	switch (kind) {
	case MC_OBJECT_POD:
		id = names_lookup(&s->ns_names, ns);
		if (id && (slot = pod_find(s, id, name)))
			remove_pod(s, &t, slot);
		else
			r = -ENOENT;
		break;
	case MC_OBJECT_NAMESPACE:
		id = names_lookup(&s->ns_names, name);
		if (id && s->nss[id].present)
			r = set_namespace(s, &t, id, false, false);
		else
			r = -ENOENT;
		break;
	case MC_OBJECT_NODE:
	case MC_OBJECT_MESHCRYPT_NODE:
		id = names_lookup(&s->node_names, name);
		if (id && (kind == MC_OBJECT_NODE ? s->nodes[id].node : s->nodes[id].mcnode))
			set_node_obj(s, &t, id, kind, NULL);
		else
			r = -ENOENT;
		break;
	case MC_OBJECT_SECRET:
		if ((i = secret_find(s, ns, name)) >= 0)
			remove_secret(s, &t, (size_t)i);
		else
			r = -ENOENT;
		break;
	default:
		r = -EINVAL;
	}
	if (r == -ENOMEM)
		txn_oom(&t);
	int c = txn_commit(s, &t);

	return r < 0 ? r : c;
}

/* Forgets which objects of kinds the relist has seen: the first page of a relist. */
static void relist_clear_seen(struct mc_store *s, unsigned kinds)
{
	if (kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_POD))
		for (uint32_t slot = 1; slot < s->n_slots; slot++)
			if (s->pods[slot])
				s->pods[slot]->flags &= (uint8_t)~POD_SEEN;
	if (kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_NAMESPACE))
		for (uint32_t id = 1; id < s->ns_names.n; id++)
			s->nss[id].seen = false;
	for (uint32_t id = 1; id < s->node_names.n; id++) {
		if (kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_NODE))
			s->nodes[id].node_seen = false;
		if (kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_MESHCRYPT_NODE))
			s->nodes[id].mcnode_seen = false;
	}
	if (kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_SECRET))
		for (size_t i = 0; i < s->n_secrets; i++)
			s->secret_seen[i] = false;
}

/* Deletes the objects of kinds that the relist has not seen: its last page. */
static void relist_remove_unseen(struct mc_store *s, struct txn *t, unsigned kinds)
{
	if (kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_POD))
		for (uint32_t slot = 1; slot < s->n_slots; slot++)
			if (s->pods[slot] && !(s->pods[slot]->flags & POD_SEEN))
				remove_pod(s, t, slot);
	for (uint32_t id = 1; id < s->ns_names.n; id++)
		if ((kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_NAMESPACE)) && s->nss[id].present &&
		    !s->nss[id].seen && set_namespace(s, t, id, false, false) < 0)
			txn_oom(t);
	for (uint32_t id = 1; id < s->node_names.n; id++) {
		struct node *n = &s->nodes[id];

		if ((kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_NODE)) && n->node && !n->node_seen)
			set_node_obj(s, t, id, MC_OBJECT_NODE, NULL);
		if ((kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_MESHCRYPT_NODE)) && n->mcnode &&
		    !n->mcnode_seen)
			set_node_obj(s, t, id, MC_OBJECT_MESHCRYPT_NODE, NULL);
	}
	for (size_t i = s->n_secrets; i-- > 0;)
		if ((kinds & MC_OBJECT_KIND_BIT(MC_OBJECT_SECRET)) && !s->secret_seen[i])
			remove_secret(s, t, i);
}

int mc_store_relist(struct mc_store *s, unsigned kinds, struct mc_object_list *page,
		    unsigned flags)
{
	struct txn t;
	int r = 0;

	if (!s || !page) {
		mc_object_list_free(page);
		return -EINVAL;
	}
	write_lock(s, &t);
	if (flags & MC_RELIST_FIRST) {
		relist_clear_seen(s, kinds);
		s->relist_failed &= ~kinds;
	}
	if (s->relist_failed & kinds)
		r = -ECANCELED; /* an earlier page was lost: this relist cannot be completed */
	for (size_t i = 0; i < page->n_objects && !r && !t.error; i++) {
		const struct mc_object *o = mc_object_list_get(page, i);
		struct mc_object *own;

		if (!o || !(kinds & MC_OBJECT_KIND_BIT(o->kind)))
			continue;
		/* pods and namespaces are copied from the list, which frees them in bulk */
		if (o->kind == MC_OBJECT_POD || o->kind == MC_OBJECT_NAMESPACE)
			r = apply_copied(s, &t, o);
		else
			r = (own = mci_object_list_steal(page, i)) ? apply(s, &t, own) : -ENOMEM;
		if (r < 0)
			txn_oom(&t);
	}
	/* after a failure the seen marks are incomplete: deleting by them would be wrong */
	if (t.error)
		s->relist_failed |= kinds;
	else if (!r && (flags & MC_RELIST_LAST))
		relist_remove_unseen(s, &t, kinds);
	mc_object_list_free(page);
	int c = txn_commit(s, &t);

	return r == -ECANCELED ? r : c;
}

int mc_store_replace_kinds(struct mc_store *s, unsigned kinds, struct mc_object_list *list)
{
	return mc_store_relist(s, kinds, list, MC_RELIST_FIRST | MC_RELIST_LAST);
}

int mc_store_replace_all(struct mc_store *s, struct mc_object_list *list)
{
	return mc_store_replace_kinds(s, MC_OBJECT_KINDS_ALL, list);
}

/* --- readers ------------------------------------------------------------------------------- */

int mc_store_get_peer(struct mc_store *s, uint32_t peer_id, struct mc_peer_state **out)
{
	int r = 0;

	*out = NULL;
	pthread_rwlock_rdlock(&s->lock);
	if (peer_id == 0 || peer_id >= s->node_names.n)
		r = -ENOENT;
	else if (!(*out = derive_peer(s, peer_id)))
		r = -ENOMEM;
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int mc_store_get_pod(struct mc_store *s, const struct mc_ip *ip, struct mc_pod_state *out)
{
	if (!s || !ip || !out || (ip->family != AF_INET && ip->family != AF_INET6))
		return -EINVAL;
	pthread_rwlock_rdlock(&s->lock);
	*out = derive_pod(s, ip, NULL);
	pthread_rwlock_unlock(&s->lock);
	return 0;
}

int mc_store_get_local(struct mc_store *s, struct mc_local_state **out)
{
	pthread_rwlock_rdlock(&s->lock);
	*out = derive_local(s);
	pthread_rwlock_unlock(&s->lock);
	return *out ? 0 : -ENOMEM;
}

static int cmp_node_name(const void *a, const void *b, void *ctx)
{
	const struct mc_store *s = ctx;
	const uint32_t *x = a, *y = b;

	return strcmp(s->node_names.name[*x], s->node_names.name[*y]);
}

/* The ids of the participating peers sorted by name; the caller holds the lock. */
static int participating_peers(const struct mc_store *s, uint32_t **ids, size_t *n)
{
	uint32_t *v = NULL;
	size_t k = 0;

	for (uint32_t id = 1; id < s->node_names.n; id++)
		k += s->nodes[id].mcnode && id != s->local_id;
	if (k && !(v = malloc(k * sizeof(*v))))
		return -ENOMEM;
	k = 0;
	for (uint32_t id = 1; id < s->node_names.n; id++)
		if (s->nodes[id].mcnode && id != s->local_id)
			v[k++] = id;
	if (k)
		qsort_r(v, k, sizeof(*v), cmp_node_name, (void *)s);
	*ids = v;
	*n = k;
	return 0;
}

int mc_store_peer_ids(struct mc_store *s, uint32_t **ids, size_t *n)
{
	int r;

	*ids = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&s->lock);
	r = participating_peers(s, ids, n);
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int mc_store_keys(struct mc_store *s, struct mc_key **keys, size_t *n)
{
	struct mc_key *v;
	size_t k = 0, cap;

	*keys = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&s->lock);
	cap = 2 + (s->node_names.n ? s->node_names.n - 1 : 0) + s->n_pod_ips;
	v = malloc(cap * sizeof(*v));
	if (!v) {
		pthread_rwlock_unlock(&s->lock);
		return -ENOMEM;
	}
	v[k++] = make_key(MC_KEY_LOCAL, 0, NULL);
	v[k++] = make_key(MC_KEY_SECRET, 0, NULL);
	for (uint32_t id = 1; id < s->node_names.n; id++)
		if (id != s->local_id)
			v[k++] = make_key(MC_KEY_PEER, id, NULL);
	for (uint32_t slot = 1; slot < s->n_slots; slot++) {
		const struct pod *p = s->pods[slot];

		for (unsigned i = 0; p && i < p->n_ips && k < cap; i++)
			v[k++] = make_key(MC_KEY_POD, 0, &p->ips[i]);
	}
	pthread_rwlock_unlock(&s->lock);
	*keys = v;
	*n = k;
	return 0;
}

uint32_t mc_store_peer_id(struct mc_store *s, const char *name)
{
	uint32_t id;

	pthread_rwlock_rdlock(&s->lock);
	id = names_lookup(&s->node_names, name);
	pthread_rwlock_unlock(&s->lock);
	return id;
}

int mc_store_get_secret(struct mc_store *s, const char *ns, const char *name, const char *key,
			uint8_t **data, size_t *len)
{
	int r = -ENOENT;
	ssize_t i;

	*data = NULL;
	*len = 0;
	pthread_rwlock_rdlock(&s->lock);
	i = secret_find(s, ns, name);
	for (size_t j = 0; i >= 0 && j < s->secrets[i]->secret.n_entries; j++) {
		const struct mc_secret_entry *e = &s->secrets[i]->secret.entries[j];

		if (strcmp(e->key, key) != 0)
			continue;
		*data = malloc(e->len + 1);
		if (!*data) {
			r = -ENOMEM;
			break;
		}
		memcpy(*data, e->data, e->len);
		(*data)[e->len] = '\0';
		*len = e->len;
		r = 0;
		break;
	}
	pthread_rwlock_unlock(&s->lock);
	return r;
}

/* --- plan -------------------------------------------------------------------------------- */

struct plan_pod {
	struct mc_pod_state st;
	uint32_t slot;
};

static int cmp_plan_pod(const void *a, const void *b)
{
	const struct plan_pod *x = a, *y = b;

	if (x->st.role != y->st.role)
		return x->st.role < y->st.role ? -1 : 1;
	return mc_ip_compare(&x->st.ip, &y->st.ip);
}

static void write_addresses(FILE *f, const struct mc_ip *a, size_t n)
{
	char buf[MC_IP_STRLEN];

	for (size_t i = 0; i < n; i++)
		fprintf(f, "  address %s\n", mc_ip_to_string(&a[i], buf));
}

static void write_prefixes(FILE *f, const char *what, const struct mc_prefix *p, size_t n)
{
	char buf[MC_PREFIX_STRLEN];

	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %s %s\n", what, mc_prefix_to_string(&p[i], buf));
}

static int write_plan_locked(const struct mc_store *s, FILE *f)
{
	struct mc_local_state *l = derive_local(s);
	struct plan_pod *pods = NULL;
	uint32_t *ids = NULL;
	size_t n_ids = 0, n_pods = 0;
	char buf[MC_IP_STRLEN];
	int r = -ENOMEM;

	if (!l || participating_peers(s, &ids, &n_ids) < 0)
		goto out;
	fprintf(f, "local %s%s%s\n", l->name, l->known ? "" : " unknown",
	        l->participating ? " participating" : "");
	write_addresses(f, l->addresses, l->n_addresses);
	if (l->boot_id[0])
		fprintf(f, "  boot-id %s\n", l->boot_id);
	fprintf(f, "  key-generation %u\n", (unsigned)l->key_generation);
	write_prefixes(f, "pod-cidr", l->pod_cidrs, l->n_pod_cidrs);
	for (size_t i = 0; i < n_ids; i++) {
		struct mc_peer_state *p = derive_peer(s, ids[i]);

		if (!p)
			goto out;
		fprintf(f, "peer %s\n", p->name);
		write_addresses(f, p->addresses, p->n_addresses);
		if (p->boot_id[0])
			fprintf(f, "  boot-id %s\n", p->boot_id);
		fprintf(f, "  key-generation %u\n", (unsigned)p->key_generation);
		if (p->wireguard_public_key[0])
			fprintf(f, "  wireguard-public-key %s\n", p->wireguard_public_key);
		write_prefixes(f, "prefix", p->prefixes, p->n_prefixes);
		mc_peer_state_free(p);
	}
	if (s->n_pod_ips && !(pods = malloc(s->n_pod_ips * sizeof(*pods))))
		goto out;
	for (uint32_t slot = 1; slot < s->n_slots; slot++) {
		const struct pod *p = s->pods[slot];

		for (unsigned i = 0; p && i < p->n_ips; i++) {
			struct mc_pod_state st = derive_pod(s, &p->ips[i], NULL);

			if (st.role != MC_POD_NONE && ip_winner(s, &p->ips[i]) == slot)
				pods[n_pods++] = (struct plan_pod){ st, slot };
		}
	}
	if (n_pods)
		qsort(pods, n_pods, sizeof(*pods), cmp_plan_pod);
	for (size_t i = 0; i < n_pods; i++) {
		const struct pod *p = s->pods[pods[i].slot];

		if (pods[i].st.role == MC_POD_LOCAL_MANAGED)
			fprintf(f, "local-pod %s %s/%s\n", mc_ip_to_string(&pods[i].st.ip, buf),
			        s->ns_names.name[p->ns], pod_name(p));
		else
			fprintf(f, "remote-pod %s %s/%s peer %s\n", mc_ip_to_string(&pods[i].st.ip, buf),
			        s->ns_names.name[p->ns], pod_name(p),
			        s->node_names.name[pods[i].st.peer_id]);
	}
	r = 0;
out:
	free(pods);
	free(ids);
	mc_local_state_free(l);
	return r;
}

int mc_store_write_plan(struct mc_store *s, FILE *f)
{
	int r;

	pthread_rwlock_rdlock(&s->lock);
	r = write_plan_locked(s, f);
	pthread_rwlock_unlock(&s->lock);
	if (r == 0 && (fflush(f) != 0 || ferror(f)))
		r = -EIO;
	return r;
}

/* --- stats ------------------------------------------------------------------------------- */

static size_t usable(const void *p)
{
	return p ? malloc_usable_size((void *)p) : 0;
}

static size_t object_bytes(const struct mc_object *o)
{
	size_t b;

	if (!o)
		return 0;
	b = usable(o) + usable(o->name) + usable(o->namespace);
	if (o->kind == MC_OBJECT_NODE)
		b += usable(o->node.addresses) + usable(o->node.pod_cidrs);
	else if (o->kind == MC_OBJECT_MESHCRYPT_NODE)
		b += usable(o->mcnode.addresses) + usable(o->mcnode.pod_cidrs);
	else if (o->kind == MC_OBJECT_SECRET) {
		b += usable(o->secret.entries);
		for (size_t i = 0; i < o->secret.n_entries; i++)
			b += usable(o->secret.entries[i].key) + usable(o->secret.entries[i].data);
	}
	return b;
}

static size_t names_bytes(const struct names *t)
{
	size_t b = usable(t->name) + idx_bytes(&t->index);

	for (uint32_t id = 1; id < t->n; id++)
		b += usable(t->name[id]);
	return b;
}

/* The managed pod IPs by role, from every live pod: what txn_finish() keeps up to date. */
static void count_managed(struct mc_store *s)
{
	memset(s->managed, 0, sizeof(s->managed));
	for (uint32_t slot = 1; slot < s->n_slots; slot++) {
		const struct pod *p = s->pods[slot];

		for (unsigned i = 0; p && i < p->n_ips; i++)
			if (ip_winner(s, &p->ips[i]) == slot)
				s->managed[derive_pod(s, &p->ips[i], NULL).role]++;
	}
	s->managed_stale = false;
}

void mc_store_managed_pods(struct mc_store *s, size_t *local, size_t *remote)
{
	pthread_rwlock_rdlock(&s->lock);
	if (s->managed_stale) {
		pthread_rwlock_unlock(&s->lock);
		pthread_rwlock_wrlock(&s->lock);
		if (s->managed_stale)
			count_managed(s);
	}
	*local = s->managed[MC_POD_LOCAL_MANAGED];
	*remote = s->managed[MC_POD_REMOTE_MANAGED];
	pthread_rwlock_unlock(&s->lock);
}

void mc_store_stats(struct mc_store *s, struct mc_store_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&s->lock);
	out->pods = s->n_pods;
	out->pod_ips = s->n_pod_ips;
	out->secrets = s->n_secrets;
	out->names = (s->node_names.n ? s->node_names.n - 1 : 0) +
	             (s->ns_names.n ? s->ns_names.n - 1 : 0);
	out->bytes = usable(s) + usable(s->local_name) + usable(s->label_key) +
	             names_bytes(&s->node_names) + names_bytes(&s->ns_names) + usable(s->nodes) +
	             usable(s->nss) + usable(s->pods) + usable(s->free_slots.v) +
	             idx_bytes(&s->by_name) + idx_bytes(&s->by_ip) + usable(s->secrets) +
	             usable(s->secret_seen) + usable(s->cidrs);
	for (uint32_t id = 1; id < s->node_names.n; id++) {
		const struct node *n = &s->nodes[id];

		out->nodes += n->node != NULL;
		out->meshcrypt_nodes += n->mcnode != NULL;
		out->bytes += object_bytes(n->node) + object_bytes(n->mcnode) + usable(n->pods.v);
	}
	for (uint32_t id = 1; id < s->ns_names.n; id++)
		out->namespaces += s->nss[id].present;
	for (uint32_t slot = 1; slot < s->n_slots; slot++)
		out->bytes += usable(s->pods[slot]);
	for (size_t i = 0; i < s->n_secrets; i++)
		out->bytes += object_bytes(s->secrets[i]);
	pthread_rwlock_unlock(&s->lock);
}

/* --- life cycle ---------------------------------------------------------------------------- */

/* Splits "key=value" into s->label_key and s->label_value (one allocation). */
static int parse_managed_label(struct mc_store *s, const char *label)
{
	const char *eq = strchr(label, '=');

	if (!eq || eq == label || strpbrk(label, " \t\n,"))
		return -EINVAL;
	s->label_key = strdup(label);
	if (!s->label_key)
		return -ENOMEM;
	s->label_key[eq - label] = '\0';
	s->label_value = s->label_key + (eq - label) + 1;
	return 0;
}

struct mc_store *mc_store_new(const struct mc_store_config *cfg)
{
	struct mc_store *s;
	int r = 0;

	if (!cfg || !cfg->local_node || !cfg->local_node[0] || !cfg->enqueue) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	/* The source's writes must not wait behind workers that keep reading; no reader here
	 * takes the lock twice, and events and keys go out with it released (txn_commit). */
	mc_rwlock_init_writer_first(&s->lock);
	s->enqueue = cfg->enqueue;
	s->event = cfg->event;
	s->ctx = cfg->ctx;
	r = parse_managed_label(s, cfg->managed_label ? cfg->managed_label
	                                              : MC_MANAGED_LABEL_DEFAULT);
	if (r == 0 && !(s->local_name = strdup(cfg->local_node)))
		r = -ENOMEM;
	if (r == 0)
		r = intern_node(s, s->local_name, &s->local_id);
	if (r < 0) {
		mc_store_free(s);
		errno = -r;
		return NULL;
	}
	return s;
}

void mc_store_free(struct mc_store *s)
{
	if (!s)
		return;
	for (uint32_t id = 1; s->nodes && id < s->node_names.n; id++) {
		mc_object_free(s->nodes[id].node);
		mc_object_free(s->nodes[id].mcnode);
		free(s->nodes[id].pods.v);
	}
	for (uint32_t slot = 1; slot < s->n_slots; slot++)
		free(s->pods[slot]);
	for (size_t i = 0; i < s->n_secrets; i++)
		mc_object_free(s->secrets[i]);
	names_free(&s->node_names);
	names_free(&s->ns_names);
	free(s->nodes);
	free(s->nss);
	free(s->pods);
	free(s->free_slots.v);
	mci_idxmap_fini(&s->by_name);
	mci_idxmap_fini(&s->by_ip);
	free(s->secrets);
	free(s->secret_seen);
	free(s->cidrs);
	free(s->addrs);
	free(s->local_name);
	free(s->label_key);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}
