/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The WireGuard backend (DESIGN.md §7; docs/wireguard.md): the device, one peer per
 * participating node, one routing table of the peers' pod prefixes via the device, and the
 * fwmark rules that consult it for traffic from managed pods (0xe0, after DNAT) and for
 * decrypted traffic (0xd0, the reverse path).
 *
 * Like the xfrm backend it models what the kernel holds (the device's peers and the table's
 * routes, read at start) and sends only differences, so a restart changes nothing and
 * starts no handshake.
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <netlink/msg.h>

#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#include "genl.h"
#include "rtnl.h"
#include "wgkey.h"

#define MAX_PEER_INDEX 65535
#define RULE_PRIORITY_ENCRYPT 100
#define RULE_PRIORITY_DECRYPT 101
#define KEY_FILE "wireguard.key"
#define PUBLIC_FILE "wireguard.pub"

struct route {
	struct mc_prefix dst;
	uint32_t owner; /* peer index, 0 until an apply claims it */
};

struct peer_record {
	uint32_t peer_id;
	bool installed;
	uint8_t public_key[MCW_KEY_LEN]; /* the peer we installed for this index */
	char *name;                      /* its node, for /metrics; owned */
};

struct wg {
	struct mc_plugin_ctx *ctx;
	pthread_mutex_t lock;
	struct mcw_genl *genl;
	struct mcw_rtnl *rtnl;
	struct mcw_keypair *keys;
	const char *device;
	int listen_port;
	uint32_t table;
	unsigned mtu_config; /* 0: auto */
	uint32_t encrypt_mark, decrypt_mark, role_mask;

	bool ready;       /* the device exists, is configured and up */
	int ifindex;
	struct mc_ip local[2];
	struct mcw_device dev;  /* the device's peers as we know them */
	struct route *routes;
	size_t n_routes;
	struct peer_record *peers; /* by index */

	/* The last device dump for status and /metrics (handshakes and bytes live only in the
	 * kernel), its peers sorted by key; stats_ns 0: none yet. */
	struct mcw_device stats;
	uint64_t stats_ns;
	int stats_error;
	struct mc_metrics_collector *collector;
};

static struct wg *get(struct mc_plugin_ctx *ctx)
{
	return ctx->host->get_data(ctx);
}

/* ---- the device's peers ---- */

static struct mcw_peer *dev_peer(struct wg *w, const uint8_t key[MCW_KEY_LEN])
{
	for (size_t i = 0; i < w->dev.n_peers; i++)
		if (memcmp(w->dev.peers[i].public_key, key, MCW_KEY_LEN) == 0)
			return &w->dev.peers[i];
	return NULL;
}

static int send_one(struct nl_msg *msg, void *userdata)
{
	return mcw_genl_transact(userdata, msg);
}

static int set_device(struct wg *w, const struct mcw_device_change *c)
{
	return mcw_set_device_messages(mcw_genl_family(w->genl), c, send_one, w->genl);
}

static bool same_allowed(const struct mcw_peer *a, const struct mc_prefix *p, size_t n)
{
	if (a->n_allowed != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (mc_prefix_compare(&a->allowed[i], &p[i]) != 0)
			return false;
	return true;
}

/* Makes the device hold want (added, or its endpoint / allowed IPs changed), with the
 * explicit flags of one message: nothing is read back and rewritten. */
static int peer_ensure(struct wg *w, const struct mcw_peer *want)
{
	struct mcw_peer *have = dev_peer(w, want->public_key);
	struct mcw_peer_change pc = { .peer = want };
	struct mcw_device_change c = { .ifname = w->device, .listen_port = -1, .peers = &pc,
				       .n_peers = 1 };
	struct mcw_peer *v;
	int r;

	pc.set_endpoint = !have || memcmp(&have->endpoint, &want->endpoint, sizeof(want->endpoint)) ||
			  have->port != want->port;
	pc.replace_allowed = !have || !same_allowed(have, want->allowed, want->n_allowed);
	if (!pc.set_endpoint && !pc.replace_allowed)
		return 0;
	r = set_device(w, &c);
	if (r < 0)
		return r;
	if (!have) {
		v = realloc(w->dev.peers, (w->dev.n_peers + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->dev.peers = v;
		have = &w->dev.peers[w->dev.n_peers++];
		memset(have, 0, sizeof(*have));
		memcpy(have->public_key, want->public_key, MCW_KEY_LEN);
	}
	have->endpoint = want->endpoint;
	have->port = want->port;
	if (pc.replace_allowed) {
		struct mc_prefix *copy = malloc((want->n_allowed ? want->n_allowed : 1) * sizeof(*copy));

		if (!copy)
			return -ENOMEM;
		memcpy(copy, want->allowed, want->n_allowed * sizeof(*copy));
		free(have->allowed);
		have->allowed = copy;
		have->n_allowed = want->n_allowed;
	}
	return 0;
}

static int peer_remove(struct wg *w, const uint8_t key[MCW_KEY_LEN])
{
	struct mcw_peer *have = dev_peer(w, key);
	struct mcw_peer gone;
	struct mcw_peer_change pc = { .peer = &gone, .remove = true };
	struct mcw_device_change c = { .ifname = w->device, .listen_port = -1, .peers = &pc,
				       .n_peers = 1 };
	int r;

	if (!have)
		return 0;
	memset(&gone, 0, sizeof(gone));
	memcpy(gone.public_key, key, MCW_KEY_LEN);
	r = set_device(w, &c);
	if (r < 0)
		return r;
	mcw_peer_clear(have);
	*have = w->dev.peers[--w->dev.n_peers];
	return 0;
}

/* ---- routes of our table ---- */

static struct route *route_find(struct wg *w, const struct mc_prefix *p)
{
	for (size_t i = 0; i < w->n_routes; i++)
		if (mc_prefix_compare(&w->routes[i].dst, p) == 0)
			return &w->routes[i];
	return NULL;
}

static int route_add(struct wg *w, const struct mc_prefix *p, uint32_t owner)
{
	struct route *have = route_find(w, p), *v;
	int r;

	if (have) {
		have->owner = owner;
		return 0;
	}
	r = mcw_route_set(w->rtnl, true, w->table, p, w->ifindex);
	if (r < 0) {
		char t[MC_PREFIX_STRLEN];

		mc_plugin_log(w->ctx, LOG_WARNING, "route %s dev %s table %u: %s",
			      mc_prefix_to_string(p, t), w->device, w->table, strerror(-r));
		return r;
	}
	v = realloc(w->routes, (w->n_routes + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	w->routes = v;
	w->routes[w->n_routes++] = (struct route){ .dst = *p, .owner = owner };
	return 0;
}

static int route_remove(struct wg *w, struct route *rt)
{
	int r = mcw_route_set(w->rtnl, false, w->table, &rt->dst, 0);

	if (r < 0 && r != -ESRCH && r != -ENOENT)
		return r;
	*rt = w->routes[--w->n_routes];
	return 0;
}

static bool prefix_in(const struct mc_prefix *p, const struct mc_prefix *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (mc_prefix_compare(p, &set[i]) == 0)
			return true;
	return false;
}

/* ---- peers ---- */

static const struct mc_ip *address_of(const struct mc_peer_state *p, uint8_t family)
{
	for (size_t i = 0; i < p->n_addresses; i++)
		if (p->addresses[i].family == family)
			return &p->addresses[i];
	return NULL;
}

/* Routes first, then the peer: nothing is routed to the device for a peer it lacks. */
static int remove_index(struct wg *w, uint16_t index, const struct mc_prefix *keep, size_t n_keep)
{
	struct peer_record *rec = &w->peers[index];
	int r = 0;

	for (size_t i = w->n_routes; i-- > 0;)
		if (w->routes[i].owner == index && !prefix_in(&w->routes[i].dst, keep, n_keep) &&
		    (r = route_remove(w, &w->routes[i])) < 0)
			return r;
	if (!n_keep && rec->installed) {
		r = peer_remove(w, rec->public_key);
		if (r == 0)
			rec->installed = false;
	}
	return r;
}

static int wg_peer_apply(struct mc_plugin_ctx *ctx, const struct mc_peer_state *p)
{
	struct wg *w = get(ctx);
	struct peer_record *rec;
	struct mcw_peer want;
	const struct mc_ip *endpoint = NULL;
	int r = 0;

	if (!MC_STATE_HAS(ctx->host, peer_state, peer_index) || p->peer_index == 0)
		return -MC_EPERMANENT;
	pthread_mutex_lock(&w->lock);
	rec = &w->peers[p->peer_index];
	rec->peer_id = p->peer_id;
	if (!rec->name || strcmp(rec->name, p->name)) {
		free(rec->name);
		if (!(rec->name = strdup(p->name))) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (!p->present) {
		r = remove_index(w, p->peer_index, NULL, 0);
		goto out;
	}
	if (!w->ready) {
		r = -EAGAIN; /* the device comes with the local node's state */
		goto out;
	}
	memset(&want, 0, sizeof(want));
	if (mcw_key_from_base64(p->wireguard_public_key, want.public_key) < 0) {
		mc_plugin_log(ctx, LOG_ERR, "peer %s publishes no valid WireGuard public key (\"%s\")",
			      p->name, p->wireguard_public_key);
		r = -MC_EPERMANENT;
		goto out;
	}
	if (w->local[0].family)
		endpoint = address_of(p, AF_INET);
	if (!endpoint && w->local[1].family)
		endpoint = address_of(p, AF_INET6);
	if (!endpoint) {
		mc_plugin_log(ctx, LOG_ERR, "peer %s shares no address family with this node", p->name);
		r = -MC_EPERMANENT;
		goto out;
	}
	want.endpoint = *endpoint;
	want.port = (uint16_t)w->listen_port;
	want.allowed = p->prefixes;
	want.n_allowed = p->n_prefixes;
	/* The node changed its key: its old peer goes (after the new one is in place). */
	r = peer_ensure(w, &want);
	if (r == 0 && rec->installed && memcmp(rec->public_key, want.public_key, MCW_KEY_LEN))
		r = peer_remove(w, rec->public_key);
	if (r == 0) {
		rec->installed = true;
		memcpy(rec->public_key, want.public_key, MCW_KEY_LEN);
	}
	for (size_t i = 0; r == 0 && i < p->n_prefixes; i++)
		r = route_add(w, &p->prefixes[i], p->peer_index);
	if (r == 0)
		r = remove_index(w, p->peer_index, p->prefixes, p->n_prefixes ? p->n_prefixes : 1);
	if (r < 0 && r != -MC_EPERMANENT)
		mc_plugin_log(ctx, LOG_DEBUG, "peer %s: %s", p->name, strerror(-r));
out:
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* ---- the local node: device, rules, reverse path ---- */

/* The MTU of the interface holding addr, or 0. */
static unsigned mtu_of_address(const struct mc_ip *addr)
{
	struct ifaddrs *list, *i;
	unsigned mtu = 0;

	if (getifaddrs(&list) < 0)
		return 0;
	for (i = list; i && !mtu; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;
		char path[PATH_MAX], buf[32] = "";
		int fd;

		if (!sa || sa->sa_family != addr->family ||
		    memcmp(sa->sa_family == AF_INET ?
				   (const void *)&((const struct sockaddr_in *)sa)->sin_addr :
				   (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr,
			   addr->addr, addr->family == AF_INET ? 4 : 16) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", i->ifa_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (read(fd, buf, sizeof(buf) - 1) > 0)
				mtu = (unsigned)strtoul(buf, NULL, 10);
			close(fd);
		}
	}
	freeifaddrs(list);
	return mtu;
}

/* The uplink MTU minus WireGuard's overhead: 60 bytes over IPv4, 80 over IPv6. */
static unsigned device_mtu(struct wg *w)
{
	unsigned best = 0;

	if (w->mtu_config)
		return w->mtu_config;
	for (int f = 0; f < 2; f++) {
		unsigned m = w->local[f].family ? mtu_of_address(&w->local[f]) : 0;

		if (m > 80 && (!best || m - (f ? 80 : 60) < best))
			best = m - (f ? 80 : 60);
	}
	return best ? best : 1420;
}

struct rule_set {
	struct mcw_rule have[16];
	size_t n;
};

static bool same_rule(const struct mcw_rule *a, const struct mcw_rule *b)
{
	return a->family == b->family && a->priority == b->priority && a->mark == b->mark &&
	       a->mask == b->mask && a->table == b->table;
}

static int collect_rule(const struct mcw_rule *rule, void *userdata)
{
	struct rule_set *s = userdata;

	if (s->n < 16)
		s->have[s->n++] = *rule;
	return 0;
}

static int ensure_rules(struct wg *w)
{
	struct mcw_rule want[4];
	struct rule_set set = { .n = 0 };
	size_t n = 0;
	int r;

	for (int f = 0; f < 2; f++) {
		uint8_t family = f ? AF_INET6 : AF_INET;

		want[n++] = (struct mcw_rule){ .family = family, .priority = RULE_PRIORITY_ENCRYPT,
					       .mark = w->encrypt_mark, .mask = w->role_mask,
					       .table = w->table };
		want[n++] = (struct mcw_rule){ .family = family, .priority = RULE_PRIORITY_DECRYPT,
					       .mark = w->decrypt_mark, .mask = w->role_mask,
					       .table = w->table };
	}
	r = mcw_rules_dump(w->rtnl, w->table, collect_rule, &set);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		bool found = false;

		for (size_t j = 0; j < set.n && !found; j++)
			found = same_rule(&set.have[j], &want[i]);
		if (!found && (r = mcw_rule_set(w->rtnl, true, &want[i])) < 0 && r != -EEXIST)
			return r;
	}
	/* Rules of our table that we do not want (other marks or priorities): ours, stale. */
	for (size_t j = 0; j < set.n; j++) {
		bool wanted = false;

		for (size_t i = 0; i < n && !wanted; i++)
			wanted = same_rule(&set.have[j], &want[i]);
		if (!wanted && (r = mcw_rule_set(w->rtnl, false, &set.have[j])) < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

static int collect_route(const struct mc_prefix *dst, int oif, void *userdata)
{
	struct wg *w = userdata;
	struct route *v = realloc(w->routes, (w->n_routes + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	w->routes = v;
	w->routes[w->n_routes++] = (struct route){ .dst = *dst };
	return 0;
}

/* The device, configured and up; its peers and our table's routes read into the model. */
static int ensure_device(struct wg *w)
{
	struct mcw_link link;
	struct mcw_device dev;
	unsigned mtu = device_mtu(w);
	int r = mcw_link_get(w->rtnl, w->device, &link);

	if (r == -ENODEV) {
		r = mcw_link_add_wireguard(w->rtnl, w->device);
		if (r == 0)
			mc_plugin_log(w->ctx, LOG_INFO, "created %s", w->device);
		if (r == 0)
			r = mcw_link_get(w->rtnl, w->device, &link);
	}
	if (r < 0)
		return r;
	if (strcmp(link.kind, "wireguard") != 0) {
		mc_plugin_log(w->ctx, LOG_ERR, "%s exists and is not a WireGuard device (%s); "
			      "refusing to touch it", w->device, link.kind[0] ? link.kind : "no kind");
		return -MC_EPERMANENT;
	}
	w->ifindex = link.ifindex;
	r = mcw_genl_get_device(w->genl, w->device, &dev);
	if (r < 0) {
		mcw_device_clear(&dev); /* what a dump that failed half-way had filled in */
		return r;
	}
	if (!dev.has_private_key || memcmp(dev.public_key, w->keys->public_key, MCW_KEY_LEN) ||
	    dev.listen_port != w->listen_port) {
		struct mcw_device_change c = { .ifname = w->device,
					       .private_key = w->keys->private_key,
					       .listen_port = w->listen_port };

		r = set_device(w, &c);
		if (r < 0) {
			mcw_device_clear(&dev);
			return r;
		}
	}
	mcw_device_clear(&w->dev);
	w->dev = dev;
	if ((link.mtu != mtu || !link.up) && (r = mcw_link_set(w->rtnl, w->ifindex, mtu)) < 0)
		return r;
	/* The reverse-path lookup of decrypted packets uses their 0xd0 mark (DESIGN.md §7):
	 * on this device only, never a global sysctl. */
	if ((r = mcw_set_src_valid_mark(w->device)) < 0)
		return r;
	if ((r = ensure_rules(w)) < 0)
		return r;
	free(w->routes);
	w->routes = NULL;
	w->n_routes = 0;
	return mcw_routes_dump(w->rtnl, w->table, collect_route, w);
}

static int wg_local_apply(struct mc_plugin_ctx *ctx, const struct mc_local_state *l)
{
	struct wg *w = get(ctx);
	struct mc_ip local[2];
	bool changed;
	int r = 0;

	memset(local, 0, sizeof(local));
	for (size_t i = 0; l->participating && i < l->n_addresses; i++) {
		int f = l->addresses[i].family == AF_INET ? 0 : 1;

		if (!local[f].family)
			local[f] = l->addresses[i];
	}
	pthread_mutex_lock(&w->lock);
	changed = memcmp(local, w->local, sizeof(local)) != 0;
	memcpy(w->local, local, sizeof(local));
	if (l->participating && (!w->ready || changed)) {
		r = ensure_device(w);
		if (r < 0 && r != -MC_EPERMANENT)
			mc_plugin_log(ctx, LOG_WARNING, "setting up %s: %s", w->device, strerror(-r));
		w->ready = r == 0;
		if (w->ready && MC_HOST_HAS(ctx->host, requeue))
			for (uint32_t i = 1; i <= MAX_PEER_INDEX; i++)
				if (w->peers[i].peer_id) {
					struct mc_key key = { .type = MC_KEY_PEER,
							      .peer_id = w->peers[i].peer_id };

					(void)ctx->host->requeue(ctx, &key);
				}
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

static int wg_pod_apply(struct mc_plugin_ctx *ctx, const struct mc_pod_state *pod)
{
	return 0; /* pods outside their node's CIDRs reach us as host prefixes of the peer */
}

static int wg_gc(struct mc_plugin_ctx *ctx, const struct mc_peer_state *const *peers, size_t n)
{
	struct wg *w = get(ctx);
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (!w->ready)
		goto out;
	for (size_t i = w->n_routes; r == 0 && i-- > 0;) {
		bool keep = false;

		for (size_t j = 0; j < n && !keep; j++)
			keep = prefix_in(&w->routes[i].dst, peers[j]->prefixes, peers[j]->n_prefixes);
		if (!keep)
			r = route_remove(w, &w->routes[i]);
	}
	for (size_t i = w->dev.n_peers; r == 0 && i-- > 0;) {
		bool keep = false;

		for (size_t j = 0; j < n && !keep; j++) {
			uint8_t key[MCW_KEY_LEN];

			keep = mcw_key_from_base64(peers[j]->wireguard_public_key, key) == 0 &&
			       memcmp(key, w->dev.peers[i].public_key, MCW_KEY_LEN) == 0;
		}
		if (!keep)
			r = peer_remove(w, w->dev.peers[i].public_key);
	}
out:
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* ---- lifecycle ---- */

static const struct mc_option wg_options[] = {
	{ .name = "device", .type = MC_OPTION_STRING, .default_value = "mcwg0",
	  .help = "the WireGuard device (created, or adopted when it exists)" },
	{ .name = "listen_port", .type = MC_OPTION_INT, .default_value = "51830", .min = 1,
	  .max = 65535, .help = "UDP port, the same on every node" },
	{ .name = "route_table", .type = MC_OPTION_INT, .default_value = "0x6d63", .min = 1,
	  .max = 0x7fffffff, .help = "routing table of the peers' pod prefixes" },
	{ .name = "mtu", .type = MC_OPTION_STRING, .default_value = "auto",
	  .help = "device MTU: auto (uplink MTU - 60 for IPv4, - 80 for IPv6) or a number" },
	{ .name = "private_key_file", .type = MC_OPTION_PATH,
	  .help = "the private key (mode 0600); default <state_dir>/wireguard.key, generated once" },
	{ 0 }
};

static int wg_config_check(struct mc_plugin_ctx *ctx, char *error, size_t error_size)
{
	const char *mtu = ctx->host->config_string(ctx, "mtu");
	const char *dev = ctx->host->config_string(ctx, "device");
	char *end;
	unsigned long v;

	if (!dev || !*dev || strlen(dev) >= IFNAMSIZ || strchr(dev, '/')) {
		snprintf(error, error_size, "device \"%s\" is not an interface name", dev ? dev : "");
		return -EINVAL;
	}
	if (strcmp(mtu, "auto") == 0)
		return 0;
	v = strtoul(mtu, &end, 10);
	if (*end || v < 1280 || v > 65535) {
		snprintf(error, error_size, "mtu must be auto or 1280..65535, not \"%s\"", mtu);
		return -EINVAL;
	}
	return 0;
}

static int write_public_key(struct wg *w, const char *dir)
{
	char path[PATH_MAX], line[MCW_KEY_B64_LEN + 2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, PUBLIC_FILE);
	snprintf(line, sizeof(line), "%s\n", w->keys->public_b64);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fputs(line, f);
	return fclose(f) == 0 ? 0 : -errno;
}

/* ---- handshakes and transfer: status and /metrics ---- */

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int compare_peer_key(const void *a, const void *b)
{
	return memcmp(((const struct mcw_peer *)a)->public_key,
		      ((const struct mcw_peer *)b)->public_key, MCW_KEY_LEN);
}

/* The device as the kernel has it now, dumped at most once a second: a status of every peer
 * and a scrape then cost one dump, not one per peer. With w->lock held. 0 or -errno. */
static int refresh_stats(struct wg *w)
{
	uint64_t now = monotonic_ns();

	if (w->stats_ns && now - w->stats_ns < 1000000000u)
		return w->stats_error;
	mcw_device_clear(&w->stats);
	w->stats_error = mcw_genl_get_device(w->genl, w->device, &w->stats);
	if (w->stats_error == 0 && w->stats.n_peers)
		qsort(w->stats.peers, w->stats.n_peers, sizeof(*w->stats.peers), compare_peer_key);
	w->stats_ns = now;
	return w->stats_error;
}

/* The dumped peer installed for index, or NULL. With w->lock held, after refresh_stats. */
static const struct mcw_peer *stats_peer(const struct wg *w, uint32_t index)
{
	struct mcw_peer key;

	if (!w->peers[index].installed || !w->stats.n_peers)
		return NULL;
	memcpy(key.public_key, w->peers[index].public_key, MCW_KEY_LEN);
	return bsearch(&key, w->stats.peers, w->stats.n_peers, sizeof(key), compare_peer_key);
}

/* The peer as the model holds it, with its latest handshake and transfer from the kernel. */
static int wg_peer_status(struct mc_plugin_ctx *ctx, uint16_t index, char *buf, size_t size)
{
	struct wg *w = get(ctx);
	char key[MCW_KEY_B64_LEN + 1], endpoint[MC_IP_STRLEN] = "none", handshake[96] = "";
	const struct mcw_peer *p, *k;
	int r = -ENOENT;

	if (!w || !index)
		return -ENOENT;
	pthread_mutex_lock(&w->lock);
	if (w->peers[index].installed && (p = dev_peer(w, w->peers[index].public_key))) {
		mcw_key_to_base64(p->public_key, key);
		if (p->endpoint.family)
			mc_ip_to_string(&p->endpoint, endpoint);
		if (refresh_stats(w) < 0 || !(k = stats_peer(w, index)))
			snprintf(handshake, sizeof(handshake), "; not on the device");
		else if (!k->last_handshake_sec)
			snprintf(handshake, sizeof(handshake), "; no handshake yet");
		else
			snprintf(handshake, sizeof(handshake),
				 "; latest handshake %lld s ago, %llu bytes received, %llu sent",
				 (long long)(time(NULL) - k->last_handshake_sec),
				 (unsigned long long)k->rx_bytes, (unsigned long long)k->tx_bytes);
		snprintf(buf, size, "WireGuard peer %s, endpoint %s port %u, %zu allowed IPs on %s%s",
			 key, endpoint, p->port, p->n_allowed, w->device, handshake);
		r = 0;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* Per peer, like prometheus_wireguard_exporter: the latest handshake as a Unix time (0: none)
 * and the bytes received and sent. */
static int collect_metrics(struct mc_metrics_writer *mw, void *userdata)
{
	struct wg *w = userdata;
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (refresh_stats(w) < 0) {
		pthread_mutex_unlock(&w->lock);
		return 0; /* no device yet: no samples */
	}
	for (uint32_t i = 1; r == 0 && i <= MAX_PEER_INDEX; i++) {
		const struct mcw_peer *k = stats_peer(w, i);
		struct mc_metrics_label peer = { "peer", w->peers[i].name };

		if (!k || !peer.value)
			continue;
		r = mc_metrics_write_gauge(mw, "meshcrypt_wireguard_peer_last_handshake_seconds",
					   "the latest handshake with the peer, as a Unix time "
					   "(0: none yet)",
					   &peer, 1, (double)k->last_handshake_sec);
		if (r == 0)
			r = mc_metrics_write_counter(mw, "meshcrypt_wireguard_peer_receive_bytes_total",
						     "bytes received from the peer", &peer, 1,
						     (double)k->rx_bytes);
		if (r == 0)
			r = mc_metrics_write_counter(mw, "meshcrypt_wireguard_peer_transmit_bytes_total",
						     "bytes sent to the peer", &peer, 1,
						     (double)k->tx_bytes);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

static int wg_init(struct mc_plugin_ctx *ctx)
{
	const struct mc_host *h = ctx->host;
	const struct mc_dataplane_config *dp;
	const char *key_file = h->config_string(ctx, "private_key_file");
	const char *mtu = h->config_string(ctx, "mtu");
	char path[PATH_MAX], error[512];
	struct wg *w;
	int r;

	if (!MC_HOST_HAS(h, dataplane_config) || !MC_STATE_HAS(h, peer_state, peer_index)) {
		h->log(ctx, LOG_ERR, "this meshcryptd is too old: the WireGuard backend needs ABI 1.1");
		return -EPROTO;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	h->set_data(ctx, w);
	w->ctx = ctx;
	pthread_mutex_init(&w->lock, NULL);
	dp = h->dataplane_config(ctx);
	w->encrypt_mark = dp->encrypt_mark;
	w->decrypt_mark = dp->decrypt_mark;
	w->role_mask = dp->role_mask;
	w->device = h->config_string(ctx, "device");
	w->listen_port = (int)h->config_int(ctx, "listen_port");
	w->table = (uint32_t)h->config_int(ctx, "route_table");
	w->mtu_config = strcmp(mtu, "auto") == 0 ? 0 : (unsigned)strtoul(mtu, NULL, 10);
	w->peers = calloc(MAX_PEER_INDEX + 1, sizeof(*w->peers));
	if (!w->peers)
		return -ENOMEM;
	if (!key_file) {
		snprintf(path, sizeof(path), "%s/%s", h->state_dir(ctx), KEY_FILE);
		key_file = path;
	}
	r = mcw_keypair_load(key_file, true, &w->keys, error, sizeof(error));
	if (r < 0) {
		h->log(ctx, LOG_ERR, "the WireGuard private key: %s", error);
		return r;
	}
	(void)write_public_key(w, h->state_dir(ctx));
	h->log(ctx, LOG_INFO, "this node's WireGuard public key: %s", w->keys->public_b64);
	if (MC_HOST_HAS(h, publish)) {
		struct mc_publication pub = { .struct_size = sizeof(pub) };

		memcpy(pub.wireguard_public_key, w->keys->public_b64, sizeof(pub.wireguard_public_key));
		(void)h->publish(ctx, &pub);
	}
	w->genl = mcw_genl_open();
	if (!w->genl) {
		r = -errno;
		h->log(ctx, LOG_ERR, "%s", r == -ENOENT ?
		       "this kernel has no WireGuard (modprobe wireguard; Linux 5.6 or later)" :
		       "opening the generic netlink socket failed");
		return r;
	}
	w->rtnl = mcw_rtnl_open();
	if (!w->rtnl) {
		r = -errno;
		h->log(ctx, LOG_ERR, "opening the rtnetlink socket failed: %s", strerror(-r));
		return r;
	}
	if (h->metrics(ctx) &&
	    !(w->collector = mc_metrics_register(h->metrics(ctx), "backend/wireguard",
						 collect_metrics, w)))
		h->log(ctx, LOG_WARNING, "handshake and transfer metrics: %s (not exported)",
		       strerror(errno));
	return 0;
}

static void wg_fini(struct mc_plugin_ctx *ctx)
{
	struct wg *w = get(ctx);

	if (!w)
		return;
	/* The device, its peers, routes and rules stay: the dataplane survives the agent. */
	mc_metrics_unregister(w->collector);
	mcw_genl_close(w->genl);
	mcw_rtnl_close(w->rtnl);
	mcw_keypair_free(w->keys);
	mcw_device_clear(&w->dev);
	mcw_device_clear(&w->stats);
	free(w->routes);
	for (uint32_t i = 0; w->peers && i <= MAX_PEER_INDEX; i++)
		free(w->peers[i].name);
	free(w->peers);
	pthread_mutex_destroy(&w->lock);
	free(w);
	ctx->host->set_data(ctx, NULL);
}

static int wg_cleanup(struct mc_plugin_ctx *ctx)
{
	struct wg *w = get(ctx);
	struct rule_set rules = { .n = 0 };
	struct mcw_link link;
	int r;

	/* Read first, then delete: a request sent from a dump's callback would read the rest of
	 * the dump as its own reply. Rules and routes before the device, so nothing is routed to
	 * a device that goes next. */
	free(w->routes);
	w->routes = NULL;
	w->n_routes = 0;
	r = mcw_rules_dump(w->rtnl, w->table, collect_rule, &rules);
	if (r == 0)
		r = mcw_routes_dump(w->rtnl, w->table, collect_route, w);
	for (size_t i = 0; r == 0 && i < rules.n; i++)
		if ((r = mcw_rule_set(w->rtnl, false, &rules.have[i])) == -ENOENT)
			r = 0;
	while (r == 0 && w->n_routes)
		r = route_remove(w, &w->routes[w->n_routes - 1]);
	if (r == 0 && mcw_link_get(w->rtnl, w->device, &link) == 0 &&
	    strcmp(link.kind, "wireguard") == 0)
		r = mcw_link_delete(w->rtnl, link.ifindex);
	if (r < 0) {
		mc_plugin_log(ctx, LOG_ERR, "removing %s, its routes and rules failed: %s", w->device,
			      strerror(-r));
		return r;
	}
	mc_plugin_log(ctx, LOG_INFO, "removed %s, the routes of table %u and its rules", w->device,
		      w->table);
	return 0;
}

static const struct mc_dataplane_ops wg_ops = MC_DATAPLANE_OPS(
	.local_apply = wg_local_apply,
	.peer_apply = wg_peer_apply,
	.pod_apply = wg_pod_apply,
	.gc = wg_gc,
	.peer_status = wg_peer_status);

MC_PLUGIN_DEFINE(.name = "wireguard", .kind = MC_PLUGIN_BACKEND,
		 .description = "kernel WireGuard tunnels between the nodes (DESIGN.md §7)",
		 .version = "0.1.0",
		 .options = wg_options,
		 .config_check = wg_config_check,
		 .init = wg_init,
		 .fini = wg_fini,
		 .cleanup = wg_cleanup,
		 .dataplane = &wg_ops);
