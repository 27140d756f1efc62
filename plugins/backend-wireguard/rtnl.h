/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rtnetlink objects of the WireGuard backend (DESIGN.md §7): its device, the routes of
 * its table, and the two fwmark rules per family that consult it. Messages carry the
 * kernel's errno back (netlink-common), so EEXIST and ENOENT can be reconcile signals.
 */
#ifndef MCW_RTNL_H
#define MCW_RTNL_H

#include <stdbool.h>
#include <stdint.h>

#include <meshcrypt/model.h>

struct mcw_rtnl;

struct mcw_rtnl *mcw_rtnl_open(void); /* NULL with errno */
void mcw_rtnl_close(struct mcw_rtnl *r);

struct mcw_link {
	int ifindex;
	char kind[32]; /* IFLA_INFO_KIND, "" when none */
	unsigned mtu;
	bool up;
};

/* The link named name: 0, or -ENODEV when there is none. */
int mcw_link_get(struct mcw_rtnl *r, const char *name, struct mcw_link *out);
int mcw_link_add_wireguard(struct mcw_rtnl *r, const char *name);
/* Sets the MTU (0: unchanged) and brings the link up. */
int mcw_link_set(struct mcw_rtnl *r, int ifindex, unsigned mtu);
int mcw_link_delete(struct mcw_rtnl *r, int ifindex);

/* Routes of table: fn(prefix, oif) for each; 0 or -errno. */
typedef int (*mcw_route_fn)(const struct mc_prefix *dst, int oif, void *userdata);
int mcw_routes_dump(struct mcw_rtnl *r, uint32_t table, mcw_route_fn fn, void *userdata);
/* Adds (or replaces) / deletes the route dst dev oif in table. */
int mcw_route_set(struct mcw_rtnl *r, bool add, uint32_t table, const struct mc_prefix *dst,
		  int oif);

struct mcw_rule {
	uint8_t family;
	uint32_t priority;
	uint32_t mark, mask;
	uint32_t table;
};

typedef int (*mcw_rule_fn)(const struct mcw_rule *rule, void *userdata);
/* Every rule of both families whose table is table. */
int mcw_rules_dump(struct mcw_rtnl *r, uint32_t table, mcw_rule_fn fn, void *userdata);
int mcw_rule_set(struct mcw_rtnl *r, bool add, const struct mcw_rule *rule);

/* net.ipv4.conf.<name>.src_valid_mark = 1 (written only when it is not). 0 or -errno. */
int mcw_set_src_valid_mark(const char *name);

#endif
