/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `meshcryptctl explain SRC DST`: whether this node encrypts traffic from SRC to DST, by which
 * rule of DESIGN.md §3, to which peer and through which SA or WireGuard peer, and what it does
 * with the reply. Judged from the store's desired state, as the BPF programs judge it from
 * their maps: the source's role (a managed pod on this node, or on a peer), the destination's
 * peer (the participating peer whose prefixes hold it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "util.h"

/* The participating peer whose prefixes hold ip (the longest match), or NULL. */
static struct mc_peer_state *peer_of(struct mc_engine *e, const struct mc_ip *ip,
				     const struct mc_prefix **matched)
{
	struct mc_peer_state *best = NULL;
	_cleanup_free_ uint32_t *ids = NULL;
	size_t n = 0;

	*matched = NULL;
	if (mc_store_peer_ids(e->store, &ids, &n) < 0)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		struct mc_peer_state *p;
		bool better = false;

		if (mc_store_get_peer(e->store, ids[i], &p) < 0)
			continue;
		for (size_t j = 0; p->present && j < p->n_prefixes; j++)
			if (mc_prefix_contains(&p->prefixes[j], ip) &&
			    (!*matched || p->prefixes[j].len > (*matched)->len)) {
				*matched = &p->prefixes[j];
				better = true;
			}
		if (better) {
			mc_peer_state_free(best);
			best = p;
		} else {
			mc_peer_state_free(p);
		}
	}
	return best;
}

static bool local_pod_address(const struct mc_local_state *l, const struct mc_ip *ip)
{
	for (size_t i = 0; l && i < l->n_pod_cidrs; i++)
		if (mc_prefix_contains(&l->pod_cidrs[i], ip))
			return true;
	return false;
}

/* The peer's address of ip's family, the tunnel's other end. */
static const struct mc_ip *peer_address(const struct mc_peer_state *p, const struct mc_ip *ip)
{
	for (size_t i = 0; i < p->n_addresses; i++)
		if (p->addresses[i].family == ip->family)
			return &p->addresses[i];
	return p->n_addresses ? &p->addresses[0] : NULL;
}

/* How the backend carries traffic to peer p: the objects DESIGN.md §6 and §7 name. */
static void write_carrier(struct mc_engine *e, const struct mc_peer_state *p,
			  const struct mc_ip *dst, const struct mc_prefix *prefix, FILE *f)
{
	const struct mc_plugin_instance *backend = &e->plugins[MC_SLOT_BACKEND];
	const char *name = backend->desc ? backend->desc->name : "none";
	const struct mc_ip *addr = peer_address(p, dst);
	char a[MC_IP_STRLEN] = "?", pre[MC_PREFIX_STRLEN];
	uint16_t index = mc_reconciler_peer_index(e, p->peer_id);
	unsigned shift = (unsigned)__builtin_ctz(e->cfg->dataplane.peer_mask);

	if (addr)
		mc_ip_to_string(addr, a);
	mc_prefix_to_string(prefix, pre);
	fprintf(f, "  marked: 0x%x (encrypt 0x%x, peer index %u)\n",
		e->cfg->dataplane.encrypt_mark | ((uint32_t)index << shift),
		e->cfg->dataplane.encrypt_mark, index);
	if (strcmp(name, "xfrm") == 0)
		fprintf(f, "  xfrm: out policy to %s with that mark, ESP SA spi 0x%08x (generation %u, "
			"the one %s advertises) to %s\n",
			pre, 0x100 + p->key_generation, p->key_generation, p->name, a);
	else if (strcmp(name, "wireguard") == 0)
		fprintf(f, "  wireguard: routed by that mark into the tunnel device, to peer %s "
			"(public key %s) at %s, allowed IPs %s\n",
			p->name, p->wireguard_public_key[0] ? p->wireguard_public_key : "unknown", a,
			pre);
	else
		fprintf(f, "  backend %s: to %s at %s\n", name, p->name, a);
}

/* One direction; returns whether this node encrypts it. */
static bool explain_direction(struct mc_engine *e, const struct mc_ip *src, const struct mc_ip *dst,
			      const struct mc_local_state *local, bool reply, FILE *f)
{
	char s[MC_IP_STRLEN], d[MC_IP_STRLEN];
	const struct mc_prefix *prefix;
	struct mc_pod_state from;
	struct mc_peer_state *to;
	bool encrypted = false;

	mc_ip_to_string(src, s);
	mc_ip_to_string(dst, d);
	if (mc_store_get_pod(e->store, src, &from) < 0)
		from.role = MC_POD_NONE;
	to = peer_of(e, dst, &prefix);
	fprintf(f, "%s%s -> %s: ", reply ? "reply " : "", s, d);
	if (from.role == MC_POD_LOCAL_MANAGED && to) {
		fprintf(f, "encrypted (a managed pod on this node to a pod on participating peer %s, "
			"DESIGN.md §3)\n", to->name);
		write_carrier(e, to, dst, prefix, f);
		encrypted = true;
	} else if (from.role == MC_POD_LOCAL_MANAGED && local_pod_address(local, dst)) {
		fputs("not encrypted: both ends are on this node\n", f);
	} else if (from.role == MC_POD_LOCAL_MANAGED) {
		fputs("not encrypted: the destination is no pod of a participating node (a node "
		      "address, outside the cluster, or a node that does not participate); for a "
		      "Service IP, explain the pod it is translated to\n", f);
	} else if (from.role == MC_POD_REMOTE_MANAGED && local_pod_address(local, dst)) {
		struct mc_peer_state *p = NULL;

		(void)mc_store_get_peer(e->store, from.peer_id, &p);
		fprintf(f, "arrives encrypted from %s (a managed pod there to a pod here); as "
			"plaintext it is %s (inbound = %s)\n", p ? p->name : "its peer",
			e->cfg->dataplane.inbound == MC_INBOUND_PERMIT ? "accepted" : "dropped",
			e->cfg->dataplane.inbound == MC_INBOUND_PERMIT ? "permit" : "require");
		mc_peer_state_free(p);
	} else if (local_pod_address(local, src)) {
		fputs("not encrypted: the source is not a managed pod, so its traffic stays as it "
		      "is, plaintext, and is never dropped\n", f);
	} else {
		fputs("not this node's to encrypt: the source is not a pod on this node\n", f);
	}
	mc_peer_state_free(to);
	return encrypted;
}

int mc_engine_explain(struct mc_engine *e, const char *src, const char *dst, FILE *f)
{
	struct mc_local_state *local = NULL;
	struct mc_ip s, d;

	if (!e->store) {
		fputs("error: the engine has no cluster view yet\n", f);
		return -ENODATA;
	}
	if (mc_ip_parse(src, &s) < 0 || mc_ip_parse(dst, &d) < 0 || s.family != d.family) {
		fputs("error: explain SRC DST takes two addresses of one family\n", f);
		return -EINVAL;
	}
	if (mc_store_get_local(e->store, &local) < 0) {
		fputs("error: out of memory\n", f);
		return -ENOMEM;
	}
	explain_direction(e, &s, &d, local, false, f);
	explain_direction(e, &d, &s, local, true, f);
	mc_local_state_free(local);
	return ferror(f) ? -EIO : 0;
}
