/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The IPsec backend (DESIGN.md §6; docs/ipsec.md): per-peer ESP tunnel states and out
 * policies, node-wide in and fwd policies, per-pair keys, hitless rotation.
 *
 * It models what it installed: at init the kernel's states and policies of our reqid are
 * dumped into the model, every apply diffs the desired objects against the model and sends
 * only the difference, and each change goes to the kernel first, then into the model.
 * Objects that do not carry our reqid are never read into the model, so never touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>


#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#include "keys.h"
#include "model.h"
#include "netlink.h"

#define OUT_POLICY_PRIORITY 100
#define NODE_POLICY_PRIORITY 100
#define REPLAY_WINDOW 128
#define SECRET_ENTRY "keys"
#define MAX_PEER_INDEX MCX_MAX_PEER_INDEX
#define OWNER_NONE MCX_OWNER_NONE
#define OWNER_NODE MCX_OWNER_NODE

/* What the backend knows of a peer index from applies and gc. */
struct peer_info {
	uint32_t peer_id;
	uint32_t generation; /* the generation it advertises */
	bool present;
};

struct xfrm {
	struct mc_plugin_ctx *ctx;
	pthread_mutex_t lock; /* workers apply different peers concurrently */
	struct mcx_nl *nl;
	uint32_t reqid;
	uint64_t grace_ns;
	uint32_t encrypt_mark, decrypt_mark, role_mask, peer_mask;
	unsigned peer_shift;
	const char *key_file;
	char secret_ns[256], secret_name[256];

	struct mcx_keyset *keys;
	struct mcx_mac *mac; /* for the derivations, under lock */

	bool local_known;
	struct mc_ip local[2]; /* [0] IPv4, [1] IPv6; family 0: none */
	char local_boot_id[MC_BOOT_ID_LEN + 1];
	uint32_t local_generation; /* advertised; 0: the highest held */
	bool boot_id_warned;

	struct mcx_model model; /* what the kernel holds of ours */

	struct peer_info *peers; /* by index, MAX_PEER_INDEX + 1 */
	bool peers_complete;     /* a gc has told us every participating peer */
	/* present peers advertising less than behind_gen: kept as peers change (peer_info_set),
	 * so that check_settled does not walk every index on each apply */
	uint32_t behind_gen;
	size_t n_behind;
	uint32_t settled_generation; /* every present peer advertised it since settled_ns */
	uint64_t settled_ns;
	uint32_t retired_generation; /* older in states were last removed for this one */
	uint32_t published_generation; /* the inbound generation reported (host->publish) */
	bool local_installed;          /* the node-wide in and fwd policies are in place */
	struct mc_timer *retire_timer;

	/* Out states deleted behind our back, and the last sequence number each sent. */
	struct resume {
		struct mcx_sa id;
		uint64_t last_seq;
	} resume[32];
	size_t n_resume;

	int monitor_fd;
	struct mc_io *monitor;
	struct mc_timer *reload_timer;
	bool reload_armed;
	struct mc_metrics_collector *collector; /* states and policies by state, for /metrics */
};

static struct xfrm *get(struct mc_plugin_ctx *ctx)
{
	return ctx->host->get_data(ctx);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int family_slot(uint8_t family)
{
	return family == AF_INET ? 0 : 1;
}

/* The mark of the in states of the peer with index, and its mask (DESIGN.md §4, §6). */
static uint32_t in_mark(const struct xfrm *x, uint32_t index)
{
	return x->decrypt_mark | index << x->peer_shift;
}

static uint32_t in_mask(const struct xfrm *x)
{
	return x->role_mask | x->peer_mask;
}

static void digest(const uint8_t *key, size_t len, uint8_t out[32])
{
	if (mcx_sha256(key, len, out) < 0)
		memset(out, 0, 32);
}

/* ---- describing objects for the log (never with key bytes) ---- */

static const char *sa_text(const struct mcx_sa *sa, char *buf, size_t size)
{
	char s[MC_IP_STRLEN], d[MC_IP_STRLEN];

	snprintf(buf, size, "state %s -> %s spi 0x%x%s", mc_ip_to_string(&sa->src, s),
		 mc_ip_to_string(&sa->dst, d), sa->spi, sa->mark_mask ? " (in)" : " (out)");
	if (sa->mark_mask)
		snprintf(buf + strlen(buf), size - strlen(buf), " mark 0x%x/0x%x", sa->mark,
			 sa->mark_mask);
	return buf;
}

static const char *sp_text(const struct mcx_sp *sp, char *buf, size_t size)
{
	static const char *const dirs[] = { "in", "out", "fwd" };
	char p[MC_PREFIX_STRLEN], d[MC_IP_STRLEN];

	snprintf(buf, size, "policy %s %s mark 0x%x/0x%x tmpl -> %s spi 0x%x",
		 sp->dir < 3 ? dirs[sp->dir] : "?", mc_prefix_to_string(&sp->dst, p), sp->mark,
		 sp->mark_mask, mc_ip_to_string(&sp->tmpl_dst, d), sp->tmpl_spi);
	return buf;
}

/* ---- the model: every kernel change goes through these ---- */

static int sa_send(struct xfrm *x, int type, const struct mcx_sa *sa)
{
	struct nl_msg *msg;
	int r = type == XFRM_MSG_DELSA ? mcx_sa_delete_message(sa, &msg) :
					 mcx_sa_message(sa, type, &msg);

	return r < 0 ? r : mcx_nl_transact(x->nl, msg);
}

static int sp_send(struct xfrm *x, int type, const struct mcx_sp *sp)
{
	struct nl_msg *msg;
	int r = type == XFRM_MSG_DELPOLICY ? mcx_sp_delete_message(sp, &msg) :
					     mcx_sp_message(sp, type, &msg);

	return r < 0 ? r : mcx_nl_transact(x->nl, msg);
}

/* Holds sa in the model for owner, its key kept as a digest only, started after
 * initial_seq (mcx_sa.initial_seq). 0 or -ENOMEM. */
static int held_sa_put(struct xfrm *x, const struct mcx_sa *sa, uint64_t initial_seq,
		       uint32_t owner)
{
	struct mcx_held_sa *h;
	uint8_t d[32];

	digest(sa->key, sa->key_len, d);
	h = mcx_model_sa_put(&x->model, sa, d, owner);
	if (!h)
		return -ENOMEM;
	h->sa.initial_seq = initial_seq;
	return 0;
}

static int held_sp_put(struct xfrm *x, const struct mcx_sp *sp, uint32_t owner)
{
	return mcx_model_sp_put(&x->model, sp, owner) ? 0 : -ENOMEM;
}

/* Whether the kernel's state is the wanted one (the model keeps a digest of its key). */
static bool held_sa_is(const struct mcx_held_sa *h, const struct mcx_sa *want)
{
	struct mcx_sa have = h->sa;
	uint8_t d[32];
	bool same;

	digest(want->key, want->key_len, d);
	/* mcx_sa_equal compares key bytes: compare the digests instead. */
	have.key_len = want->key_len;
	memcpy(have.key, want->key, want->key_len);
	same = memcmp(d, h->key_digest, sizeof(d)) == 0 && mcx_sa_equal(want, &have);
	explicit_bzero(&have, sizeof(have));
	return same;
}

/*
 * Makes the kernel hold want: nothing when it does, an update in place where the kernel
 * allows (lifetime, replay settings), else (another key: a re-key after a reboot) the old
 * state is deleted and the new one added. -EEXIST from an add means an object we do not own
 * holds the identity.
 */
static int sa_ensure(struct xfrm *x, const struct mcx_sa *want, uint32_t owner)
{
	struct mcx_held_sa *h = mcx_model_sa_find(&x->model, want);
	/* where its sequence numbers start: 0 for a new key, the held state's own for an update
	 * in place, after the last sent for a restore */
	uint64_t initial_seq = 0;
	char what[160];
	int r;

	if (h && held_sa_is(h, want)) {
		mcx_model_sa_set_owner(&x->model, h, owner);
		return 0;
	}
	if (h) {
		uint8_t d[32];
		bool same_key;

		digest(want->key, want->key_len, d);
		same_key = memcmp(d, h->key_digest, sizeof(d)) == 0 &&
			   memcmp(&h->sa.src, &want->src, sizeof(want->src)) == 0;
		if (same_key) {
			initial_seq = h->sa.initial_seq;
			r = sa_send(x, XFRM_MSG_UPDSA, want);
			if (r == 0)
				mc_plugin_log(x->ctx, LOG_INFO, "%s: updated in place",
					      sa_text(want, what, sizeof(what)));
		} else {
			r = sa_send(x, XFRM_MSG_DELSA, &h->sa);
			if (r == 0 || r == -ENOENT)
				r = sa_send(x, XFRM_MSG_NEWSA, want);
			if (r == 0)
				mc_plugin_log(x->ctx, LOG_INFO, "%s: re-keyed",
					      sa_text(want, what, sizeof(what)));
		}
	} else {
		struct mcx_sa add = *want;
		size_t i;

		for (i = 0; i < x->n_resume && !mcx_sa_same_id(&x->resume[i].id, want); i++)
			;
		if (i < x->n_resume && !want->mark_mask)
			add.initial_seq = x->resume[i].last_seq;
		initial_seq = add.initial_seq;
		r = sa_send(x, XFRM_MSG_NEWSA, &add);
		explicit_bzero(&add, sizeof(add));
		if (r == 0 && i < x->n_resume) {
			mc_plugin_log(x->ctx, LOG_INFO, "%s: restored%s",
				      sa_text(want, what, sizeof(what)),
				      want->mark_mask ? "" : ", its sequence numbers continued");
			x->resume[i] = x->resume[--x->n_resume];
		} else if (r == 0 && mc_plugin_log_enabled(x->ctx, LOG_DEBUG)) {
			mc_plugin_log(x->ctx, LOG_DEBUG, "%s: added", sa_text(want, what, sizeof(what)));
		}
	}
	if (r < 0) {
		mc_plugin_log(x->ctx, LOG_WARNING, "%s: %s%s", sa_text(want, what, sizeof(what)),
			      strerror(-r),
			      r == -EEXIST ? " (held by an object that is not ours)" :
			      r == -ENOENT || r == -ENOSYS ? " (is esp4/esp6 loaded?)" : "");
		return r;
	}
	return held_sa_put(x, want, initial_seq, owner);
}

static int sa_remove(struct xfrm *x, struct mcx_held_sa *h)
{
	char what[160];
	int r = sa_send(x, XFRM_MSG_DELSA, &h->sa);

	if (r < 0 && r != -ENOENT) {
		mc_plugin_log(x->ctx, LOG_WARNING, "removing %s: %s",
			      sa_text(&h->sa, what, sizeof(what)), strerror(-r));
		return r;
	}
	if (mc_plugin_log_enabled(x->ctx, LOG_DEBUG))
		mc_plugin_log(x->ctx, LOG_DEBUG, "%s: removed", sa_text(&h->sa, what, sizeof(what)));
	mcx_model_sa_drop(&x->model, h);
	return 0;
}

/* Policies are changed in place, never deleted and re-added: no moment without one. */
static int sp_ensure(struct xfrm *x, const struct mcx_sp *want, uint32_t owner)
{
	struct mcx_held_sp *h = mcx_model_sp_find(&x->model, want);
	char what[200];
	int r = 0;

	if (h && mcx_sp_equal(want, &h->sp)) {
		mcx_model_sp_set_owner(&x->model, h, owner);
		return 0;
	}
	r = sp_send(x, h ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY, want);
	if (r < 0) {
		mc_plugin_log(x->ctx, LOG_WARNING, "%s: %s%s", sp_text(want, what, sizeof(what)),
			      strerror(-r),
			      r == -EEXIST ? " (held by a policy that is not ours)" : "");
		return r;
	}
	if (mc_plugin_log_enabled(x->ctx, LOG_DEBUG))
		mc_plugin_log(x->ctx, LOG_DEBUG, "%s: %s", sp_text(want, what, sizeof(what)),
			      h ? "updated in place" : "added");
	return held_sp_put(x, want, owner);
}

static int sp_remove(struct xfrm *x, struct mcx_held_sp *h)
{
	char what[200];
	int r = sp_send(x, XFRM_MSG_DELPOLICY, &h->sp);

	if (r < 0 && r != -ENOENT) {
		mc_plugin_log(x->ctx, LOG_WARNING, "removing %s: %s",
			      sp_text(&h->sp, what, sizeof(what)), strerror(-r));
		return r;
	}
	if (mc_plugin_log_enabled(x->ctx, LOG_DEBUG))
		mc_plugin_log(x->ctx, LOG_DEBUG, "%s: removed", sp_text(&h->sp, what, sizeof(what)));
	mcx_model_sp_drop(&x->model, h);
	return 0;
}

/* ---- keys ---- */

static void requeue_peers(struct xfrm *x)
{
	const struct mc_host *h = x->ctx->host;

	if (!MC_HOST_HAS(h, requeue))
		return;
	for (uint32_t i = 1; i <= MAX_PEER_INDEX; i++)
		if (x->peers[i].peer_id) {
			struct mc_key key = { .type = MC_KEY_PEER, .peer_id = x->peers[i].peer_id };

			(void)h->requeue(x->ctx, &key);
		}
}

/* Reads the key Secret; 0 and *changed, -ENOENT while there is none, or -errno. Locked. */
static int load_secret(struct xfrm *x, bool *changed)
{
	const struct mc_host *h = x->ctx->host;
	struct mcx_keyset *ks = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	char error[300];
	int r;

	*changed = false;
	if (!MC_HOST_HAS(h, secret_get))
		return -ENOTSUP;
	r = h->secret_get(x->ctx, x->secret_ns, x->secret_name, SECRET_ENTRY, &data, &len);
	if (r < 0) {
		if (r == -ENOENT && x->keys) {
			mc_plugin_log(x->ctx, LOG_WARNING,
				      "the key Secret %s/%s is gone; keeping the keys in use",
				      x->secret_ns, x->secret_name);
			return 0;
		}
		return r;
	}
	r = mcx_keyset_parse((const char *)data, len, &ks, error, sizeof(error));
	explicit_bzero(data, len);
	free(data);
	if (r < 0) {
		mc_plugin_log(x->ctx, LOG_ERR, "the key Secret %s/%s, entry %s: %s", x->secret_ns,
			      x->secret_name, SECRET_ENTRY, error);
		return r;
	}
	if (mcx_keyset_equal(ks, x->keys)) {
		mcx_keyset_free(ks);
		return 0;
	}
	mcx_keyset_free(x->keys);
	x->keys = ks;
	*changed = true;
	mc_plugin_log(x->ctx, LOG_INFO, "keys from Secret %s/%s: %zu generation(s), current %u",
		      x->secret_ns, x->secret_name, ks->n, mcx_keyset_current(ks));
	return 0;
}

static uint32_t local_generation(const struct xfrm *x)
{
	return x->local_generation && mcx_keyset_find(x->keys, x->local_generation) ?
		       x->local_generation :
		       mcx_keyset_current(x->keys);
}

/* The generation to send to a peer with: the one it advertises once we hold it, else the
 * one in use, else the highest we hold below it. */
static uint32_t out_generation(struct xfrm *x, const struct mc_peer_state *p, uint32_t in_use)
{
	uint32_t best = 0;

	if (p->key_generation == 0)
		return mcx_keyset_current(x->keys);
	if (mcx_keyset_find(x->keys, p->key_generation))
		return p->key_generation;
	if (in_use && mcx_keyset_find(x->keys, in_use))
		return in_use;
	for (size_t i = 0; i < x->keys->n; i++)
		if (x->keys->k[i].generation < p->key_generation)
			best = x->keys->k[i].generation;
	return best ? best : mcx_keyset_current(x->keys);
}

static uint64_t retire_check_interval(const struct xfrm *x)
{
	uint64_t t = x->grace_ns / 4;

	return t < 100000000ull ? 100000000ull : t > 5000000000ull ? 5000000000ull : t;
}

/* Whether in states of generations below the advertised one may go (DESIGN.md §6). */
static bool old_generations_retired(struct xfrm *x)
{
	return x->settled_generation == local_generation(x) && x->settled_ns &&
	       now_ns() - x->settled_ns >= x->grace_ns;
}

/* Whether the model holds in states of a generation below gen. */
static bool holds_older_in_states(const struct xfrm *x, uint32_t gen)
{
	for (const struct mcx_held_sa *h = x->model.all_sas; h; h = h->all_next)
		if (h->sa.mark_mask && h->sa.spi < mcx_spi(gen))
			return true;
	return false;
}

/* Periodic, on the main loop: once the grace period is over, the peers are applied again,
 * which removes the in states of older generations. */
static uint64_t on_retire_check(struct mc_plugin_ctx *ctx, void *userdata)
{
	struct xfrm *x = userdata;

	pthread_mutex_lock(&x->lock);
	if (x->keys && old_generations_retired(x) &&
	    holds_older_in_states(x, x->settled_generation) &&
	    x->retired_generation != x->settled_generation) {
		mc_plugin_log(ctx, LOG_INFO,
			      "every peer has advertised generation %u for the grace period: "
			      "removing the in states of older generations",
			      x->settled_generation);
		x->retired_generation = x->settled_generation;
		requeue_peers(x);
	}
	pthread_mutex_unlock(&x->lock);
	return retire_check_interval(x);
}

/* Records what an apply or a gc says of the peer with index, keeping n_behind. Locked. */
static void peer_info_set(struct xfrm *x, uint32_t index, uint32_t peer_id, uint32_t generation,
			  bool present)
{
	struct peer_info *info = &x->peers[index];

	x->n_behind -= info->present && info->generation < x->behind_gen;
	*info = (struct peer_info){ .peer_id = peer_id, .generation = generation,
				    .present = present };
	x->n_behind += present && generation < x->behind_gen;
}

/*
 * Called (locked) whenever a peer's advertised generation may have changed: once every
 * present peer advertises our generation, the grace period starts. The timer is armed on the
 * main loop only; from a worker the next apply there or the next resync arms it.
 */
static void check_settled(struct xfrm *x)
{
	uint32_t gen = local_generation(x);

	if (gen != x->behind_gen) {
		x->behind_gen = gen;
		x->n_behind = 0;
		for (uint32_t i = 1; i <= MAX_PEER_INDEX; i++)
			x->n_behind += x->peers[i].present && x->peers[i].generation < gen;
	}
	if (!x->peers_complete || x->n_behind) {
		x->settled_generation = 0;
		x->settled_ns = 0;
		return;
	}
	if (x->settled_generation != gen) {
		x->settled_generation = gen;
		x->settled_ns = now_ns();
	}
}

/*
 * Once the inbound side of the highest generation held is installed (node-wide policies, and
 * an in state of it for every participating peer), reports it for publication: peers switch
 * to a generation only after its receiver has advertised it (DESIGN.md §6). Locked; cheap once
 * the generation has been reported.
 */
static void maybe_publish(struct xfrm *x)
{
	const struct mc_host *h = x->ctx->host;
	uint32_t gen = mcx_keyset_current(x->keys), spi = mcx_spi(gen);
	struct mc_publication pub = { .struct_size = sizeof(pub), .inbound_generation = gen };

	if (!MC_HOST_HAS(h, publish) || !gen || gen == x->published_generation ||
	    !x->local_installed || !x->peers_complete)
		return;
	for (uint32_t i = 1; i <= MAX_PEER_INDEX; i++) {
		bool found = false;

		if (!x->peers[i].present)
			continue;
		for (int f = 0; f < 2 && !found; f++) {
			struct mcx_sa id = { .dst = x->local[f], .spi = spi, .mark = in_mark(x, i),
					     .mark_mask = in_mask(x) };

			found = x->local[f].family && mcx_model_sa_find(&x->model, &id);
		}
		if (!found)
			return;
	}
	if (h->publish(x->ctx, &pub) == 0) {
		x->published_generation = gen;
		mc_plugin_log(x->ctx, LOG_INFO, "inbound side of generation %u installed: published",
			      gen);
	}
}

/* ---- desired objects of a peer ---- */

struct desired {
	struct mcx_sa sas[16];
	size_t n_sas;
	struct mcx_sp *sps;
	size_t n_sps;
};

static void desired_free(struct desired *d)
{
	explicit_bzero(d->sas, sizeof(d->sas));
	free(d->sps);
}

static const struct mc_ip *peer_address(const struct mc_peer_state *p, uint8_t family)
{
	for (size_t i = 0; i < p->n_addresses; i++)
		if (p->addresses[i].family == family)
			return &p->addresses[i];
	return NULL;
}

static bool peer_has_address(const struct mc_peer_state *p, const struct mc_ip *ip)
{
	for (size_t i = 0; i < p->n_addresses; i++)
		if (memcmp(&p->addresses[i], ip, sizeof(*ip)) == 0)
			return true;
	return false;
}

/* The generation of our out state to this peer in the model, 0 when none. */
static uint32_t out_generation_in_use(struct xfrm *x, const struct mc_peer_state *p)
{
	for (const struct mcx_held_sa *h = x->model.owned[p->peer_index].sas; h; h = h->own_next)
		if (!h->sa.mark_mask && peer_has_address(p, &h->sa.dst) && h->sa.spi > mcx_spi(0))
			return h->sa.spi - mcx_spi(0);
	return 0;
}

static int add_sa(struct xfrm *x, struct desired *d, const struct mcx_key *key,
		  const struct mc_ip *src, const struct mc_ip *dst, const char *src_boot,
		  const char *dst_boot, uint32_t mark, uint32_t mask)
{
	struct mcx_sa *sa;

	if (d->n_sas == sizeof(d->sas) / sizeof(d->sas[0]))
		return -E2BIG;
	sa = &d->sas[d->n_sas];
	memset(sa, 0, sizeof(*sa));
	sa->src = *src;
	sa->dst = *dst;
	sa->spi = mcx_spi(key->generation);
	sa->reqid = x->reqid;
	sa->mark = mark;
	sa->mark_mask = mask;
	sa->replay_window = REPLAY_WINDOW;
	sa->esn = true;
	sa->lifetime_infinite = true;
	sa->algo_ok = true;
	sa->key_len = key->len;
	if (mcx_derive_with(x->mac, key, src, dst, src_boot, dst_boot, sa->key) < 0)
		return -EIO;
	d->n_sas++;
	return 0;
}

/* Builds what the kernel must hold for peer p. Locked. */
static int desire_peer(struct xfrm *x, const struct mc_peer_state *p, struct desired *d)
{
	uint32_t mark = in_mark(x, p->peer_index), mask = in_mask(x);
	uint32_t adv = local_generation(x), out_gen;
	bool retired = old_generations_retired(x);
	const struct mcx_key *out_key;
	int r;

	out_gen = out_generation(x, p, out_generation_in_use(x, p));
	out_key = mcx_keyset_find(x->keys, out_gen);
	for (int f = 0; f < 2; f++) {
		const struct mc_ip *local = x->local[f].family ? &x->local[f] : NULL;
		const struct mc_ip *peer = peer_address(p, f == 0 ? AF_INET : AF_INET6);

		if (!local || !peer)
			continue;
		for (size_t i = 0; i < x->keys->n; i++) {
			const struct mcx_key *k = &x->keys->k[i];
			struct mcx_sa id = { .dst = *local, .spi = mcx_spi(k->generation),
					     .mark = mark, .mark_mask = mask };

			/* Older generations are kept until retired, never added: a restart must
			 * not bring back in states that a rotation already removed. */
			if (k->generation < adv && (retired || !mcx_model_sa_find(&x->model, &id)))
				continue;
			r = add_sa(x, d, k, peer, local, p->boot_id, x->local_boot_id, mark, mask);
			if (r < 0)
				return r;
		}
		r = add_sa(x, d, out_key, local, peer, x->local_boot_id, p->boot_id, 0, 0);
		if (r < 0)
			return r;
	}
	d->sps = calloc(p->n_prefixes ? p->n_prefixes : 1, sizeof(*d->sps));
	if (!d->sps)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_prefixes; i++) {
		const struct mc_prefix *pre = &p->prefixes[i];
		int f = family_slot(pre->ip.family);
		const struct mc_ip *peer = peer_address(p, pre->ip.family);
		struct mcx_sp *sp;

		if (!x->local[f].family || !peer) {
			char t[MC_PREFIX_STRLEN];

			/* The guard drops what this would have encrypted: fail closed. */
			mc_plugin_log(x->ctx, LOG_DEBUG,
				      "peer %s: no %s address pair for %s; its traffic stays blocked",
				      p->name, pre->ip.family == AF_INET ? "IPv4" : "IPv6",
				      mc_prefix_to_string(pre, t));
			continue;
		}
		sp = &d->sps[d->n_sps++];
		memset(sp, 0, sizeof(*sp));
		sp->dir = XFRM_POLICY_OUT;
		sp->dst = *pre;
		sp->mark = x->encrypt_mark;
		sp->mark_mask = x->role_mask;
		sp->priority = OUT_POLICY_PRIORITY;
		sp->tmpl_src = x->local[f];
		sp->tmpl_dst = *peer;
		sp->tmpl_spi = mcx_spi(out_gen);
		sp->reqid = x->reqid;
	}
	return 0;
}

/*
 * Claims the objects a restart found that belong to peer p: its states of every generation
 * held (in states by the peer index in their mark, out states by its address) and its out
 * policies to its prefixes, found by identity. What it cannot name (a generation no longer
 * held, a prefix it no longer has) stays unclaimed until the gc after the full resync removes
 * it.
 */
static void claim(struct xfrm *x, const struct mc_peer_state *p)
{
	if (!x->model.owned[OWNER_NONE].sas && !x->model.owned[OWNER_NONE].sps)
		return;
	for (int f = 0; f < 2; f++) {
		const struct mc_ip *peer = peer_address(p, f == 0 ? AF_INET : AF_INET6);

		for (size_t i = 0; x->keys && i < x->keys->n; i++) {
			uint32_t spi = mcx_spi(x->keys->k[i].generation);
			struct mcx_sa in = { .dst = x->local[f], .spi = spi,
					     .mark = in_mark(x, p->peer_index),
					     .mark_mask = in_mask(x) };
			struct mcx_sa out = { .spi = spi };
			struct mcx_held_sa *h;

			if (x->local[f].family && (h = mcx_model_sa_find(&x->model, &in)) &&
			    h->owner == OWNER_NONE)
				mcx_model_sa_set_owner(&x->model, h, p->peer_index);
			if (peer) {
				out.dst = *peer;
				if ((h = mcx_model_sa_find(&x->model, &out)) && h->owner == OWNER_NONE)
					mcx_model_sa_set_owner(&x->model, h, p->peer_index);
			}
		}
	}
	for (size_t i = 0; i < p->n_prefixes; i++) {
		struct mcx_sp id = { .dir = XFRM_POLICY_OUT, .dst = p->prefixes[i],
				     .mark = x->encrypt_mark, .mark_mask = x->role_mask };
		struct mcx_held_sp *h = mcx_model_sp_find(&x->model, &id);

		if (h && h->owner == OWNER_NONE && peer_has_address(p, &h->sp.tmpl_dst))
			mcx_model_sp_set_owner(&x->model, h, p->peer_index);
	}
}

static bool sa_wanted(const struct desired *d, const struct mcx_sa *sa)
{
	for (size_t i = 0; i < d->n_sas; i++)
		if (mcx_sa_same_id(&d->sas[i], sa))
			return true;
	return false;
}

static bool sp_wanted(const struct desired *d, const struct mcx_sp *sp)
{
	for (size_t i = 0; i < d->n_sps; i++)
		if (mcx_sp_same_id(&d->sps[i], sp))
			return true;
	return false;
}

/*
 * Removes what owner holds beyond d (everything when d is empty): out policies first, then
 * out states, then in states, so no policy ever points at a missing state. Returns the first
 * error; the rest is still tried.
 */
static int remove_unwanted(struct xfrm *x, uint32_t owner, const struct desired *d)
{
	int first = 0, r;

	struct mcx_owned *own = &x->model.owned[owner];

	for (struct mcx_held_sp *h = own->sps, *next; h; h = next) {
		next = h->own_next;
		if (!sp_wanted(d, &h->sp) && (r = sp_remove(x, h)) < 0 && !first)
			first = r;
	}
	for (int in = 0; in < 2; in++)
		for (struct mcx_held_sa *h = own->sas, *next; h; h = next) {
			next = h->own_next;
			if (!h->sa.mark_mask == !in && !sa_wanted(d, &h->sa) &&
			    (r = sa_remove(x, h)) < 0 && !first)
				first = r;
		}
	return first;
}

/* In states first (we can receive), then out states, then the policies that use them. */
static int apply_desired(struct xfrm *x, uint32_t owner, const struct desired *d)
{
	int r;

	for (int in = 1; in >= 0; in--)
		for (size_t i = 0; i < d->n_sas; i++)
			if (!d->sas[i].mark_mask == !in && (r = sa_ensure(x, &d->sas[i], owner)) < 0)
				return r;
	for (size_t i = 0; i < d->n_sps; i++)
		if ((r = sp_ensure(x, &d->sps[i], owner)) < 0)
			return r;
	return remove_unwanted(x, owner, d);
}

/* A generation a peer advertises that this node does not hold is normal for a moment in a
 * rotation, and hostile or broken beyond it (0, 4294967295): said once per change, and the
 * out state keeps a generation both ends hold (out_generation()). Locked. */
static void note_generation(struct xfrm *x, const struct mc_peer_state *p)
{
	uint32_t current = mcx_keyset_current(x->keys);

	if (p->key_generation == 0)
		mc_plugin_log(x->ctx, LOG_WARNING,
			      "peer %s advertises no key generation (0): sending with generation %u",
			      p->name, current);
	else if (!mcx_keyset_find(x->keys, p->key_generation))
		mc_plugin_log(x->ctx, p->key_generation > current ? LOG_INFO : LOG_WARNING,
			      "peer %s advertises key generation %u, which this node does not hold "
			      "(it holds %u%s): sending with the highest generation it holds below",
			      p->name, p->key_generation, current,
			      p->key_generation > current ? "; a rotation it has not reached yet?" :
							    "");
}

static int xfrm_peer_apply(struct mc_plugin_ctx *ctx, const struct mc_peer_state *p)
{
	struct xfrm *x = get(ctx);
	struct desired d = { .n_sas = 0 };
	int r;

	if (!MC_STATE_HAS(ctx->host, peer_state, peer_index) || p->peer_index == 0)
		return -MC_EPERMANENT;
	pthread_mutex_lock(&x->lock);
	if (p->present && x->keys && (!x->peers[p->peer_index].present ||
				      x->peers[p->peer_index].generation != p->key_generation))
		note_generation(x, p);
	peer_info_set(x, p->peer_index, p->peer_id, p->key_generation, p->present);
	claim(x, p);
	if (!p->present) {
		r = remove_unwanted(x, p->peer_index, &d);
		goto out;
	}
	if (!x->local_known || !x->keys) {
		r = -EAGAIN; /* the local node's addresses and boot ID, or the key Secret */
		goto out;
	}
	if (strlen(p->boot_id) != MC_BOOT_ID_LEN) {
		mc_plugin_log(ctx, LOG_ERR, "peer %s publishes no boot ID: no keys can be derived",
			      p->name);
		r = -MC_EPERMANENT;
		goto out;
	}
	check_settled(x);
	r = desire_peer(x, p, &d);
	if (r == 0 && d.n_sas == 0) {
		mc_plugin_log(ctx, LOG_ERR,
			      "peer %s shares no address family with this node: cannot encrypt to it",
			      p->name);
		r = -MC_EPERMANENT;
	}
	if (r == 0)
		r = apply_desired(x, p->peer_index, &d);
	if (r == 0)
		maybe_publish(x);
out:
	pthread_mutex_unlock(&x->lock);
	desired_free(&d);
	return r;
}

/* ---- the local node: node-wide in and fwd policies ---- */

static void warn_boot_id(struct xfrm *x, const char *published)
{
	char actual[MC_BOOT_ID_LEN + 2] = "";
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, actual, MC_BOOT_ID_LEN);

		close(fd);
		actual[n > 0 ? n : 0] = '\0';
	}
	if (!x->boot_id_warned && actual[0] && strcmp(actual, published) != 0) {
		mc_plugin_log(x->ctx, LOG_WARNING,
			      "the boot ID published for this node (%s) is not this kernel's (%s): "
			      "keys are derived from the published one, so a reboot that keeps it "
			      "reuses keys",
			      published, actual);
		x->boot_id_warned = true;
	}
}

static int xfrm_local_apply(struct mc_plugin_ctx *ctx, const struct mc_local_state *l)
{
	struct xfrm *x = get(ctx);
	struct mc_ip local[2];
	struct desired d = { .n_sas = 0 };
	bool changed;
	int r = 0;

	memset(local, 0, sizeof(local));
	for (size_t i = 0; l->known && i < l->n_addresses; i++) {
		int f = family_slot(l->addresses[i].family);

		if (!local[f].family)
			local[f] = l->addresses[i];
	}
	pthread_mutex_lock(&x->lock);
	changed = x->local_known != l->known || memcmp(local, x->local, sizeof(local)) ||
		  strcmp(x->local_boot_id, l->boot_id) || x->local_generation != l->key_generation;
	if (l->known && strlen(l->boot_id) != MC_BOOT_ID_LEN) {
		mc_plugin_log(ctx, LOG_ERR, "this node publishes no boot ID: no keys can be derived");
		pthread_mutex_unlock(&x->lock);
		return -MC_EPERMANENT;
	}
	memcpy(x->local, local, sizeof(local));
	snprintf(x->local_boot_id, sizeof(x->local_boot_id), "%s", l->boot_id);
	x->local_generation = l->key_generation;
	x->local_known = l->known;
	if (x->local_known)
		warn_boot_id(x, l->boot_id);
	d.sps = calloc(4, sizeof(*d.sps));
	if (!d.sps) {
		pthread_mutex_unlock(&x->lock);
		return -ENOMEM;
	}
	for (int f = 0; f < 2; f++) {
		if (!local[f].family)
			continue;
		for (int dir = 0; dir < 2; dir++) {
			struct mcx_sp *sp = &d.sps[d.n_sps++];

			memset(sp, 0, sizeof(*sp));
			sp->dir = dir == 0 ? XFRM_POLICY_IN : XFRM_POLICY_FWD;
			sp->dst.ip.family = local[f].family;
			sp->mark = x->decrypt_mark;
			sp->mark_mask = x->role_mask;
			sp->priority = NODE_POLICY_PRIORITY;
			sp->tmpl_src.family = local[f].family;
			sp->tmpl_dst = local[f];
			sp->reqid = x->reqid;
		}
	}
	for (size_t i = 0; i < d.n_sps && r == 0; i++)
		r = sp_ensure(x, &d.sps[i], OWNER_NODE);
	if (r == 0)
		r = remove_unwanted(x, OWNER_NODE, &d);
	x->local_installed = r == 0 && x->local_known;
	if (r == 0)
		maybe_publish(x);
	if (changed)
		requeue_peers(x);
	pthread_mutex_unlock(&x->lock);
	desired_free(&d);
	return r;
}

static int xfrm_pod_apply(struct mc_plugin_ctx *ctx, const struct mc_pod_state *pod)
{
	/* Pods outside their node's CIDRs reach us as host prefixes of the peer's state. */
	return 0;
}

struct addr_owner {
	struct mc_ip ip;
	uint32_t index;
};

static int cmp_addr_owner(const void *a, const void *b)
{
	return mc_ip_compare(&((const struct addr_owner *)a)->ip,
			     &((const struct addr_owner *)b)->ip);
}

static uint32_t owner_by_address(const struct addr_owner *v, size_t n, const struct mc_ip *ip)
{
	struct addr_owner key = { .ip = *ip };
	const struct addr_owner *f = n ? bsearch(&key, v, n, sizeof(*v), cmp_addr_owner) : NULL;

	return f ? f->index : OWNER_NONE;
}

/*
 * For gc: claims what a restart found for one of peers that no apply has claimed yet (one that
 * waits for the local node and is retried later, -EAGAIN), from the objects themselves: in
 * states by the peer index in their mark, out states and policies by the peer address they
 * lead to. Else gc would remove them and the retry bring them back, traffic lost between.
 * O(objects found + peers log peers). Locked. 0 or -ENOMEM.
 */
static int claim_found(struct xfrm *x, const struct mc_peer_state *const *peers, size_t n,
		       const uint8_t *keep)
{
	struct mcx_owned *none = &x->model.owned[OWNER_NONE];
	struct addr_owner *v;
	size_t m = 0, total = 0;

	if (!none->sas && !none->sps)
		return 0;
	for (size_t i = 0; i < n; i++)
		total += peers[i]->n_addresses;
	if (total && !(v = malloc(total * sizeof(*v))))
		return -ENOMEM;
	if (!total)
		v = NULL;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < peers[i]->n_addresses; j++)
			v[m++] = (struct addr_owner){ peers[i]->addresses[j], peers[i]->peer_index };
	if (m)
		qsort(v, m, sizeof(*v), cmp_addr_owner);
	for (struct mcx_held_sa *h = none->sas, *next; h; h = next) {
		uint32_t index = (h->sa.mark & x->peer_mask) >> x->peer_shift;

		next = h->own_next;
		if (h->sa.mark_mask != in_mask(x))
			index = h->sa.mark_mask ? OWNER_NONE : owner_by_address(v, m, &h->sa.dst);
		if (index != OWNER_NONE && index <= MAX_PEER_INDEX && keep[index])
			mcx_model_sa_set_owner(&x->model, h, index);
	}
	for (struct mcx_held_sp *h = none->sps, *next; h; h = next) {
		uint32_t index;

		next = h->own_next;
		if (h->sp.dir == XFRM_POLICY_OUT &&
		    (index = owner_by_address(v, m, &h->sp.tmpl_dst)) != OWNER_NONE)
			mcx_model_sp_set_owner(&x->model, h, index);
	}
	free(v);
	return 0;
}

static int xfrm_gc(struct mc_plugin_ctx *ctx, const struct mc_peer_state *const *peers, size_t n)
{
	struct xfrm *x = get(ctx);
	struct desired none = { .n_sas = 0 };
	uint8_t *keep = calloc(MAX_PEER_INDEX + 1, 1);
	int first = 0, r;

	if (!keep)
		return -ENOMEM;
	pthread_mutex_lock(&x->lock);
	for (size_t i = 0; i < n; i++) {
		claim(x, peers[i]);
		keep[peers[i]->peer_index] = 1;
		peer_info_set(x, peers[i]->peer_index, peers[i]->peer_id,
			      peers[i]->key_generation, true);
	}
	for (uint32_t i = 1; i <= MAX_PEER_INDEX; i++)
		if (!keep[i] && x->peers[i].present)
			peer_info_set(x, i, x->peers[i].peer_id, x->peers[i].generation, false);
	if (claim_found(x, peers, n, keep) < 0) {
		/* unsure what is whose: remove nothing this time */
		pthread_mutex_unlock(&x->lock);
		free(keep);
		return -ENOMEM;
	}
	x->peers_complete = true;
	/* What no present peer claimed belongs to peers that are gone. */
	for (struct mcx_held_sp *h = x->model.all_sps; h; h = h->all_next)
		if (h->owner != OWNER_NODE && !keep[h->owner])
			mcx_model_sp_set_owner(&x->model, h, OWNER_NONE);
	for (struct mcx_held_sa *h = x->model.all_sas; h; h = h->all_next)
		if (h->owner == OWNER_NODE || !keep[h->owner])
			mcx_model_sa_set_owner(&x->model, h, OWNER_NONE);
	if ((r = remove_unwanted(x, OWNER_NONE, &none)) < 0)
		first = r;
	check_settled(x);
	if (x->keys)
		maybe_publish(x);
	pthread_mutex_unlock(&x->lock);
	free(keep);
	return first;
}

static int xfrm_secret_changed(struct mc_plugin_ctx *ctx)
{
	struct xfrm *x = get(ctx);
	bool changed = false;
	int r = 0;

	if (x->key_file)
		return 0;
	pthread_mutex_lock(&x->lock);
	r = load_secret(x, &changed);
	if (r == -ENOENT)
		r = 0; /* not there yet: peers wait with -EAGAIN */
	if (changed)
		requeue_peers(x);
	pthread_mutex_unlock(&x->lock);
	return r;
}

/* ---- lifecycle ---- */

struct dump_ctx {
	struct xfrm *x;
	int error;
};

static int dump_sa(const struct nlmsghdr *h, void *userdata)
{
	struct dump_ctx *c = userdata;
	struct mcx_sa sa;
	int r = mcx_sa_parse(h, c->x->reqid, &sa);

	if (r == 0)
		r = held_sa_put(c->x, &sa, sa.initial_seq, OWNER_NONE);
	explicit_bzero(&sa, sizeof(sa));
	return r == -ENOENT ? 0 : r;
}

static int dump_sp(const struct nlmsghdr *h, void *userdata)
{
	struct dump_ctx *c = userdata;
	struct mcx_sp sp;
	int r = mcx_sp_parse(h, c->x->reqid, &sp);

	if (r == 0)
		r = held_sp_put(c->x, &sp,
				sp.dir == XFRM_POLICY_OUT ? OWNER_NONE : OWNER_NODE);
	return r == -ENOENT ? 0 : r;
}

/* Fills the (empty) model from the kernel: our states and policies (our reqid), nothing
 * else. Locked. */
static int load_model(struct xfrm *x)
{
	struct dump_ctx c = { .x = x };
	int r;

	r = mcx_nl_dump(x->nl, XFRM_MSG_GETSA, dump_sa, &c);
	if (r == 0)
		r = mcx_nl_dump(x->nl, XFRM_MSG_GETPOLICY, dump_sp, &c);
	return r;
}

static void requeue_owner(struct xfrm *x, uint32_t owner)
{
	const struct mc_host *h = x->ctx->host;
	struct mc_key key = { .type = MC_KEY_LOCAL };

	if (!MC_HOST_HAS(h, requeue) || owner == OWNER_NONE)
		return;
	if (owner != OWNER_NODE) {
		if (!x->peers[owner].peer_id)
			return;
		key.type = MC_KEY_PEER;
		key.peer_id = x->peers[owner].peer_id;
	}
	(void)h->requeue(x->ctx, &key);
}

/*
 * Someone else changed xfrm objects (an operator, the kernel's expiry): reads the kernel's
 * truth again and has every owner of an object that vanished or changed applied again,
 * which restores it. Objects of our reqid that appeared meanwhile stay unowned: the next gc
 * removes them unless an apply claims them.
 */
static uint64_t on_reload(struct mc_plugin_ctx *ctx, void *userdata)
{
	struct xfrm *x = userdata;
	struct mcx_model old;
	int r;

	pthread_mutex_lock(&x->lock);
	x->reload_armed = false;
	old = x->model;
	r = mcx_model_init(&x->model);
	if (r == 0)
		r = load_model(x);
	if (r < 0) {
		mc_plugin_log(ctx, LOG_WARNING, "re-reading the xfrm objects failed: %s; keeping "
			      "the model", strerror(-r));
		mcx_model_fini(&x->model);
		x->model = old;
		pthread_mutex_unlock(&x->lock);
		return 0;
	}
	for (const struct mcx_held_sa *h = old.all_sas; h; h = h->all_next) {
		struct mcx_held_sa *now = mcx_model_sa_find(&x->model, &h->sa);
		char what[160];

		if (now)
			mcx_model_sa_set_owner(&x->model, now, h->owner);
		if (now && memcmp(&now->sa, &h->sa, sizeof(now->sa)) == 0 &&
		    memcmp(now->key_digest, h->key_digest, sizeof(h->key_digest)) == 0)
			continue;
		mc_plugin_log(ctx, LOG_WARNING, "%s was %s behind our back: restoring it",
			      sa_text(&h->sa, what, sizeof(what)), now ? "changed" : "deleted");
		requeue_owner(x, h->owner);
	}
	for (const struct mcx_held_sp *h = old.all_sps; h; h = h->all_next) {
		struct mcx_held_sp *now = mcx_model_sp_find(&x->model, &h->sp);
		char what[200];

		if (now)
			mcx_model_sp_set_owner(&x->model, now, h->owner);
		if (now && mcx_sp_equal(&h->sp, &now->sp))
			continue;
		mc_plugin_log(ctx, LOG_WARNING, "%s was %s behind our back: restoring it",
			      sp_text(&h->sp, what, sizeof(what)), now ? "changed" : "deleted");
		requeue_owner(x, h->owner);
	}
	mcx_model_fini(&old);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

/* An out state of ours is gone: remember the last sequence number it sent
 * (mcx_sa_parse_gone); the model, not yet re-read, still holds where it started. */
static int note_gone(const struct nlmsghdr *h, void *userdata)
{
	struct xfrm *x = userdata;
	const struct mcx_held_sa *held;
	struct mcx_sa gone;
	uint64_t sent;

	if (mcx_sa_parse_gone(h, x->reqid, &gone, &sent) < 0 || gone.mark_mask)
		return 0;
	pthread_mutex_lock(&x->lock);
	held = mcx_model_sa_find(&x->model, &gone);
	if (held) {
		if (x->n_resume == sizeof(x->resume) / sizeof(x->resume[0]))
			memmove(&x->resume[0], &x->resume[1],
				--x->n_resume * sizeof(x->resume[0]));
		x->resume[x->n_resume].id = gone;
		x->resume[x->n_resume++].last_seq = held->sa.initial_seq + sent;
	}
	pthread_mutex_unlock(&x->lock);
	return 0;
}

static void on_monitor(struct mc_plugin_ctx *ctx, int fd, uint32_t revents, void *userdata)
{
	struct xfrm *x = userdata;
	bool foreign = false;

	if (mcx_nl_monitor_read(fd, mcx_nl_port(x->nl), &foreign, note_gone, x) < 0 ||
	    !foreign || x->reload_armed)
		return;
	/* A burst of changes (ip xfrm flush) costs one re-read. */
	ctx->host->timer_remove(x->reload_timer);
	x->reload_timer = NULL;
	if (ctx->host->timer_add(ctx, 50 * 1000000ull, on_reload, x, &x->reload_timer) == 0)
		x->reload_armed = true;
}

static const struct mc_option xfrm_options[] = {
	{ .name = "key_file", .type = MC_OPTION_PATH,
	  .help = "key lines \"<generation> rfc4106(gcm(aes)) <hex key+salt> 128\", mode 0600; "
		  "empty: the key Secret" },
	{ .name = "key_secret", .type = MC_OPTION_STRING,
	  .default_value = "meshcrypt-system/meshcrypt-ipsec-keys",
	  .help = "namespace/name of the Secret whose entry \"keys\" holds the key lines" },
	{ .name = "rotation_grace", .type = MC_OPTION_DURATION, .default_value = "300s",
	  .min = 0, .max = (int64_t)86400 * 1000000000,
	  .help = "how long in states of an older generation stay after every peer moved on" },
	{ .name = "reqid", .type = MC_OPTION_INT, .default_value = "0x6d63", .min = 1,
	  .max = 0x7fffffff, .help = "the reqid that marks our states and policies" },
	{ 0 }
};

static int xfrm_config_check(struct mc_plugin_ctx *ctx, char *error, size_t error_size)
{
	const char *secret = ctx->host->config_string(ctx, "key_secret");
	const char *slash = secret ? strchr(secret, '/') : NULL;

	if (!ctx->host->config_string(ctx, "key_file") &&
	    (!slash || slash == secret || !slash[1] || strchr(slash + 1, '/'))) {
		snprintf(error, error_size, "key_secret must be namespace/name, not \"%s\"",
			 secret ? secret : "");
		return -EINVAL;
	}
	return 0;
}

static int xfrm_init(struct mc_plugin_ctx *ctx)
{
	const struct mc_host *h = ctx->host;
	const struct mc_dataplane_config *dp;
	struct xfrm *x;
	char error[400];
	int r;

	if (!MC_HOST_HAS(h, dataplane_config) || !MC_STATE_HAS(h, peer_state, peer_index)) {
		h->log(ctx, LOG_ERR, "this meshcryptd is too old: the xfrm backend needs ABI 1.1");
		return -EPROTO;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	h->set_data(ctx, x);
	x->ctx = ctx;
	x->monitor_fd = -1;
	pthread_mutex_init(&x->lock, NULL);
	dp = h->dataplane_config(ctx);
	x->encrypt_mark = dp->encrypt_mark;
	x->decrypt_mark = dp->decrypt_mark;
	x->role_mask = dp->role_mask;
	x->peer_mask = dp->peer_mask;
	x->peer_shift = (unsigned)__builtin_ctz(dp->peer_mask);
	x->reqid = (uint32_t)h->config_int(ctx, "reqid");
	x->grace_ns = h->config_duration_ns(ctx, "rotation_grace");
	x->key_file = h->config_string(ctx, "key_file");
	x->peers = calloc(MAX_PEER_INDEX + 1, sizeof(*x->peers));
	x->mac = mcx_mac_new();
	if (!x->peers || !x->mac)
		return -ENOMEM;
	if (!x->key_file) {
		const char *secret = h->config_string(ctx, "key_secret");
		const char *slash = strchr(secret, '/');

		snprintf(x->secret_ns, sizeof(x->secret_ns), "%.*s", (int)(slash - secret), secret);
		snprintf(x->secret_name, sizeof(x->secret_name), "%s", slash + 1);
	} else {
		r = mcx_keyset_load_file(x->key_file, &x->keys, error, sizeof(error));
		if (r < 0) {
			h->log(ctx, LOG_ERR, "[plugin.xfrm] key_file %s", error);
			return r;
		}
		h->log(ctx, LOG_INFO, "keys from %s: %zu generation(s), current %u", x->key_file,
		       x->keys->n, mcx_keyset_current(x->keys));
	}
	x->nl = mcx_nl_open();
	if (!x->nl) {
		r = -errno;
		h->log(ctx, LOG_ERR, "opening the xfrm netlink socket failed: %s%s", strerror(-r),
		       r == -EPROTONOSUPPORT ? " (is xfrm_user loaded?)" : "");
		return r;
	}
	r = mcx_model_init(&x->model);
	if (r == 0)
		r = load_model(x);
	if (r < 0) {
		h->log(ctx, LOG_ERR, "reading the kernel's xfrm states and policies failed: %s%s",
		       strerror(-r), r == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
		return r;
	}
	h->log(ctx, LOG_INFO, "found %zu state(s) and %zu policy(ies) of reqid 0x%x",
	       x->model.n_sas, x->model.n_sps, x->reqid);
	return 0;
}

enum { SA_OUT_ACTIVE, SA_IN_CURRENT, SA_IN_ACCEPTED, SA_OUT_UNCLAIMED, SA_IN_UNCLAIMED, SA_KINDS };

/* The model's states and policies by what they are for. Unclaimed: found at start (or left
 * by a peer that went) and removed by the next garbage collection; an in state of another
 * generation than the one advertised is kept for peers that have not switched yet. */
static int collect_metrics(struct mc_metrics_writer *w, void *userdata)
{
	static const struct mc_metrics_label sa_labels[SA_KINDS][2] = {
		[SA_OUT_ACTIVE] = { { "direction", "out" }, { "state", "active" } },
		[SA_IN_CURRENT] = { { "direction", "in" }, { "state", "current" } },
		[SA_IN_ACCEPTED] = { { "direction", "in" }, { "state", "accepted" } },
		[SA_OUT_UNCLAIMED] = { { "direction", "out" }, { "state", "unclaimed" } },
		[SA_IN_UNCLAIMED] = { { "direction", "in" }, { "state", "unclaimed" } },
	};
	static const char *const dirs[] = { "in", "out", "fwd" };
	struct xfrm *x = userdata;
	size_t sas[SA_KINDS] = { 0 }, sps[3][2] = { { 0 } };
	int r = 0;

	pthread_mutex_lock(&x->lock);
	for (const struct mcx_held_sa *h = x->model.all_sas; h; h = h->all_next) {
		bool in = h->sa.mark_mask != 0; /* in states carry the decrypt mark */

		if (h->owner == OWNER_NONE)
			sas[in ? SA_IN_UNCLAIMED : SA_OUT_UNCLAIMED]++;
		else if (!in)
			sas[SA_OUT_ACTIVE]++;
		else
			sas[h->sa.spi - mcx_spi(0) == local_generation(x) ? SA_IN_CURRENT :
									     SA_IN_ACCEPTED]++;
	}
	for (const struct mcx_held_sp *h = x->model.all_sps; h; h = h->all_next)
		if (h->sp.dir < sizeof(dirs) / sizeof(dirs[0]))
			sps[h->sp.dir][h->owner == OWNER_NONE]++;
	pthread_mutex_unlock(&x->lock);
	for (int k = 0; r == 0 && k < SA_KINDS; k++)
		r = mc_metrics_write_gauge(w, "meshcrypt_xfrm_states",
					   "the backend's xfrm states by direction and state",
					   sa_labels[k], 2, (double)sas[k]);
	for (size_t d = 0; r == 0 && d < sizeof(dirs) / sizeof(dirs[0]); d++)
		for (int unclaimed = 0; r == 0 && unclaimed < 2; unclaimed++)
			r = mc_metrics_write_gauge(
				w, "meshcrypt_xfrm_policies",
				"the backend's xfrm policies by direction and state",
				(struct mc_metrics_label[]){ { "direction", dirs[d] },
							     { "state", unclaimed ? "unclaimed" :
										    "active" } },
				2, (double)sps[d][unclaimed]);
	return r;
}

static int xfrm_start(struct mc_plugin_ctx *ctx)
{
	struct xfrm *x = get(ctx);
	bool changed;
	int r;

	x->monitor_fd = mcx_nl_monitor_open();
	if (x->monitor_fd < 0 ||
	    (r = ctx->host->io_add(ctx, x->monitor_fd, EPOLLIN, on_monitor, x, &x->monitor)) < 0) {
		r = x->monitor_fd < 0 ? x->monitor_fd : r;
		mc_plugin_log(ctx, LOG_ERR, "listening to xfrm notifications failed: %s",
			      strerror(-r));
		return r;
	}
	r = ctx->host->timer_add(ctx, retire_check_interval(x), on_retire_check, x,
				 &x->retire_timer);
	if (r < 0)
		return r;
	if (ctx->host->metrics(ctx) &&
	    !(x->collector = mc_metrics_register(ctx->host->metrics(ctx), "backend/xfrm",
						 collect_metrics, x)))
		mc_plugin_log(ctx, LOG_WARNING, "state and policy metrics: %s (not exported)",
			      strerror(errno));
	if (!x->key_file) {
		pthread_mutex_lock(&x->lock);
		r = load_secret(x, &changed);
		pthread_mutex_unlock(&x->lock);
		if (r == -ENOENT) {
			mc_plugin_log(ctx, LOG_INFO, "waiting for the key Secret %s/%s",
				      x->secret_ns, x->secret_name);
			r = 0;
		}
	}
	return r;
}

static void xfrm_stop(struct mc_plugin_ctx *ctx)
{
	struct xfrm *x = get(ctx);

	if (!x)
		return;
	mc_metrics_unregister(x->collector);
	x->collector = NULL;
	ctx->host->timer_remove(x->retire_timer);
	ctx->host->timer_remove(x->reload_timer);
	ctx->host->io_remove(x->monitor);
	x->retire_timer = x->reload_timer = NULL;
	x->monitor = NULL;
	x->reload_armed = false;
	if (x->monitor_fd >= 0)
		close(x->monitor_fd);
	x->monitor_fd = -1;
}

static void xfrm_fini(struct mc_plugin_ctx *ctx)
{
	struct xfrm *x = get(ctx);

	if (!x)
		return;
	/* The objects stay: what the dataplane does survives the agent. */
	if (x->monitor_fd >= 0)
		close(x->monitor_fd);
	mcx_nl_close(x->nl);
	mcx_keyset_free(x->keys);
	mcx_mac_free(x->mac);
	mcx_model_fini(&x->model);
	free(x->peers);
	pthread_mutex_destroy(&x->lock);
	free(x);
	ctx->host->set_data(ctx, NULL);
}

static int xfrm_cleanup(struct mc_plugin_ctx *ctx)
{
	struct xfrm *x = get(ctx);
	struct desired none = { .n_sas = 0 };
	size_t sas, sps;
	int r;

	pthread_mutex_lock(&x->lock);
	sas = x->model.n_sas;
	sps = x->model.n_sps;
	for (struct mcx_held_sp *h = x->model.all_sps; h; h = h->all_next)
		mcx_model_sp_set_owner(&x->model, h, OWNER_NONE);
	for (struct mcx_held_sa *h = x->model.all_sas; h; h = h->all_next)
		mcx_model_sa_set_owner(&x->model, h, OWNER_NONE);
	r = remove_unwanted(x, OWNER_NONE, &none);
	pthread_mutex_unlock(&x->lock);
	if (r < 0)
		return r;
	mc_plugin_log(ctx, LOG_INFO, "removed %zu state(s) and %zu policy(ies) of reqid 0x%x", sas,
		      sps, x->reqid);
	return 0;
}

/* The peer's SAs and out policies as the model holds them, for meshcryptctl status. */
static int xfrm_peer_status(struct mc_plugin_ctx *ctx, uint16_t index, char *buf, size_t size)
{
	struct xfrm *x = ctx->host->get_data(ctx);
	char out[256] = "", in[128] = "", addr[MC_IP_STRLEN];
	size_t n_policies = 0, o = 0, i = 0;
	bool any = false;

	if (!x || !index)
		return -ENOENT;
	pthread_mutex_lock(&x->lock);
	for (const struct mcx_held_sa *h = x->model.owned[index].sas; h; h = h->own_next) {
		const struct mcx_sa *sa = &h->sa;

		any = true;
		/* out states carry no mark; in states the decrypt mark */
		if (!sa->mark_mask && o < sizeof(out))
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%sspi 0x%08x (generation %u) to %s",
					      o ? ", " : "", sa->spi, sa->spi - mcx_spi(0),
					      mc_ip_to_string(&sa->dst, addr));
		else if (sa->mark_mask && i < sizeof(in))
			i += (size_t)snprintf(in + i, sizeof(in) - i, "%s%u", i ? "," : "",
					      sa->spi - mcx_spi(0));
	}
	for (const struct mcx_held_sp *h = x->model.owned[index].sps; h; h = h->own_next)
		n_policies += h->sp.dir == XFRM_POLICY_OUT;
	if (any || x->peers[index].present)
		snprintf(buf, size, "advertises generation %u; out SA %s; in SA generations %s; "
			 "%zu out policies", x->peers[index].generation, o ? out : "none",
			 i ? in : "none", n_policies);
	pthread_mutex_unlock(&x->lock);
	return any || x->peers[index].present ? 0 : -ENOENT;
}

static const struct mc_dataplane_ops xfrm_ops = MC_DATAPLANE_OPS(
	.local_apply = xfrm_local_apply,
	.peer_apply = xfrm_peer_apply,
	.pod_apply = xfrm_pod_apply,
	.gc = xfrm_gc,
	.secret_changed = xfrm_secret_changed,
	.peer_status = xfrm_peer_status);

MC_PLUGIN_DEFINE(.name = "xfrm", .kind = MC_PLUGIN_BACKEND,
		 .description = "IPsec ESP tunnels through the kernel's xfrm (DESIGN.md §6)",
		 .version = "0.1.0",
		 .options = xfrm_options,
		 .config_check = xfrm_config_check,
		 .init = xfrm_init,
		 .start = xfrm_start,
		 .stop = xfrm_stop,
		 .fini = xfrm_fini,
		 .cleanup = xfrm_cleanup,
		 .dataplane = &xfrm_ops);
