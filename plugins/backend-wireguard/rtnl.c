/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "rtnl.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "nl-request.h"

#define BUFFER (256 * 1024)

struct mcw_rtnl {
	struct nl_sock *sk;
	uint8_t buf[BUFFER];
};

struct mcw_rtnl *mcw_rtnl_open(void)
{
	struct mcw_rtnl *r = calloc(1, sizeof(*r));

	if (!r || !(r->sk = nl_socket_alloc()) || nl_connect(r->sk, NETLINK_ROUTE) < 0) {
		mcw_rtnl_close(r);
		errno = ENOMEM;
		return NULL;
	}
	return r;
}

void mcw_rtnl_close(struct mcw_rtnl *r)
{
	if (!r)
		return;
	if (r->sk)
		nl_socket_free(r->sk);
	free(r);
}

static struct nl_msg *message(int type, int flags, const void *hdr, size_t len)
{
	struct nl_msg *msg = nlmsg_alloc_simple(type, flags);

	if (msg && nlmsg_append(msg, (void *)hdr, len, NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		msg = NULL;
	}
	return msg;
}

/* ---- links ---- */

struct link_query {
	struct mcw_link *out;
	bool found;
};

static int on_link(const struct nlmsghdr *h, void *userdata)
{
	struct link_query *q = userdata;
	struct nlattr *tb[IFLA_MAX + 1];
	const struct ifinfomsg *ifi = nlmsg_data(h);

	if (h->nlmsg_type != RTM_NEWLINK ||
	    nlmsg_parse((struct nlmsghdr *)h, sizeof(*ifi), tb, IFLA_MAX, NULL) < 0)
		return 0;
	memset(q->out, 0, sizeof(*q->out));
	q->found = true;
	q->out->ifindex = ifi->ifi_index;
	q->out->up = ifi->ifi_flags & IFF_UP;
	if (tb[IFLA_MTU])
		q->out->mtu = nla_get_u32(tb[IFLA_MTU]);
	if (tb[IFLA_LINKINFO]) {
		struct nlattr *info[IFLA_INFO_MAX + 1];

		if (nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL) == 0 &&
		    info[IFLA_INFO_KIND])
			nla_strlcpy(q->out->kind, info[IFLA_INFO_KIND], sizeof(q->out->kind));
	}
	return 0;
}

int mcw_link_get(struct mcw_rtnl *r, const char *name, struct mcw_link *out)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct link_query q = { .out = out };
	struct nl_msg *msg = message(RTM_GETLINK, 0, &ifi, sizeof(ifi));
	int rc;

	if (!msg || nla_put_string(msg, IFLA_IFNAME, name) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	rc = mcn_dump(r->sk, msg, r->buf, BUFFER, on_link, &q);
	if (rc == -ENODEV || (rc == 0 && !q.found))
		return -ENODEV;
	return rc;
}

int mcw_link_add_wireguard(struct mcw_rtnl *r, const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nl_msg *msg = message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	struct nlattr *info;

	if (!msg || nla_put_string(msg, IFLA_IFNAME, name) < 0 ||
	    !(info = nla_nest_start(msg, IFLA_LINKINFO)) ||
	    nla_put_string(msg, IFLA_INFO_KIND, "wireguard") < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nla_nest_end(msg, info);
	return mcn_transact(r->sk, msg, r->buf, BUFFER);
}

int mcw_link_set(struct mcw_rtnl *r, int ifindex, unsigned mtu)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex,
				 .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	struct nl_msg *msg = message(RTM_NEWLINK, 0, &ifi, sizeof(ifi));

	if (!msg || (mtu && nla_put_u32(msg, IFLA_MTU, mtu) < 0)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return mcn_transact(r->sk, msg, r->buf, BUFFER);
}

int mcw_link_delete(struct mcw_rtnl *r, int ifindex)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };
	struct nl_msg *msg = message(RTM_DELLINK, 0, &ifi, sizeof(ifi));

	return msg ? mcn_transact(r->sk, msg, r->buf, BUFFER) : -ENOMEM;
}

/* ---- routes ---- */

struct route_query {
	uint32_t table;
	mcw_route_fn fn;
	void *userdata;
};

static int on_route(const struct nlmsghdr *h, void *userdata)
{
	struct route_query *q = userdata;
	struct nlattr *tb[RTA_MAX + 1];
	const struct rtmsg *rtm = nlmsg_data(h);
	struct mc_prefix dst;
	uint32_t table;
	size_t len = rtm->rtm_family == AF_INET ? 4 : 16;

	if (h->nlmsg_type != RTM_NEWROUTE ||
	    nlmsg_parse((struct nlmsghdr *)h, sizeof(*rtm), tb, RTA_MAX, NULL) < 0)
		return 0;
	table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
	if (table != q->table || !tb[RTA_DST] || nla_len(tb[RTA_DST]) != (int)len)
		return 0;
	memset(&dst, 0, sizeof(dst));
	dst.ip.family = rtm->rtm_family;
	memcpy(dst.ip.addr, nla_data(tb[RTA_DST]), len);
	dst.len = rtm->rtm_dst_len;
	return q->fn(&dst, tb[RTA_OIF] ? (int)nla_get_u32(tb[RTA_OIF]) : 0, q->userdata);
}

int mcw_routes_dump(struct mcw_rtnl *r, uint32_t table, mcw_route_fn fn, void *userdata)
{
	static const uint8_t families[] = { AF_INET, AF_INET6 };
	struct route_query q = { .table = table, .fn = fn, .userdata = userdata };

	for (size_t i = 0; i < 2; i++) {
		struct rtmsg rtm = { .rtm_family = families[i] };
		struct nl_msg *msg = message(RTM_GETROUTE, NLM_F_DUMP, &rtm, sizeof(rtm));
		int rc;

		if (!msg)
			return -ENOMEM;
		if ((rc = mcn_dump(r->sk, msg, r->buf, BUFFER, on_route, &q)) < 0)
			return rc;
	}
	return 0;
}

int mcw_route_set(struct mcw_rtnl *r, bool add, uint32_t table, const struct mc_prefix *dst,
		  int oif)
{
	struct rtmsg rtm = {
		.rtm_family = dst->ip.family,
		.rtm_dst_len = dst->len,
		.rtm_table = RT_TABLE_UNSPEC,
		.rtm_protocol = RTPROT_STATIC,
		.rtm_scope = RT_SCOPE_LINK,
		.rtm_type = RTN_UNICAST,
	};
	struct nl_msg *msg = message(add ? RTM_NEWROUTE : RTM_DELROUTE,
				     add ? NLM_F_CREATE | NLM_F_REPLACE : 0, &rtm, sizeof(rtm));

	if (!msg || nla_put_u32(msg, RTA_TABLE, table) < 0 ||
	    nla_put(msg, RTA_DST, dst->ip.family == AF_INET ? 4 : 16, dst->ip.addr) < 0 ||
	    (oif && nla_put_u32(msg, RTA_OIF, (uint32_t)oif) < 0)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return mcn_transact(r->sk, msg, r->buf, BUFFER);
}

/* ---- sysctl ---- */

int mcw_set_src_valid_mark(const char *name)
{
	char path[128], have[16] = "";
	int fd, r = 0;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/src_valid_mark", name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (read(fd, have, sizeof(have) - 1) <= 0 || have[0] != '1')
		r = pwrite(fd, "1", 1, 0) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* ---- rules ---- */

struct rule_query {
	uint32_t table;
	mcw_rule_fn fn;
	void *userdata;
};

static int on_rule(const struct nlmsghdr *h, void *userdata)
{
	struct rule_query *q = userdata;
	struct nlattr *tb[FRA_MAX + 1];
	const struct fib_rule_hdr *frh = nlmsg_data(h);
	struct mcw_rule rule = { .family = frh->family, .table = frh->table };

	if (h->nlmsg_type != RTM_NEWRULE ||
	    nlmsg_parse((struct nlmsghdr *)h, sizeof(*frh), tb, FRA_MAX, NULL) < 0)
		return 0;
	if (tb[FRA_TABLE])
		rule.table = nla_get_u32(tb[FRA_TABLE]);
	if (rule.table != q->table || frh->action != FR_ACT_TO_TBL)
		return 0;
	rule.priority = tb[FRA_PRIORITY] ? nla_get_u32(tb[FRA_PRIORITY]) : 0;
	rule.mark = tb[FRA_FWMARK] ? nla_get_u32(tb[FRA_FWMARK]) : 0;
	rule.mask = tb[FRA_FWMASK] ? nla_get_u32(tb[FRA_FWMASK]) : 0;
	return q->fn(&rule, q->userdata);
}

int mcw_rules_dump(struct mcw_rtnl *r, uint32_t table, mcw_rule_fn fn, void *userdata)
{
	static const uint8_t families[] = { AF_INET, AF_INET6 };
	struct rule_query q = { .table = table, .fn = fn, .userdata = userdata };

	for (size_t i = 0; i < 2; i++) {
		struct fib_rule_hdr frh = { .family = families[i] };
		struct nl_msg *msg = message(RTM_GETRULE, NLM_F_DUMP, &frh, sizeof(frh));
		int rc;

		if (!msg)
			return -ENOMEM;
		if ((rc = mcn_dump(r->sk, msg, r->buf, BUFFER, on_rule, &q)) < 0)
			return rc;
	}
	return 0;
}

int mcw_rule_set(struct mcw_rtnl *r, bool add, const struct mcw_rule *rule)
{
	struct fib_rule_hdr frh = {
		.family = rule->family,
		.table = rule->table < 256 ? (uint8_t)rule->table : RT_TABLE_UNSPEC,
		.action = FR_ACT_TO_TBL,
	};
	struct nl_msg *msg = message(add ? RTM_NEWRULE : RTM_DELRULE,
				     add ? NLM_F_CREATE | NLM_F_EXCL : 0, &frh, sizeof(frh));

	if (!msg || nla_put_u32(msg, FRA_TABLE, rule->table) < 0 ||
	    nla_put_u32(msg, FRA_PRIORITY, rule->priority) < 0 ||
	    nla_put_u32(msg, FRA_FWMARK, rule->mark) < 0 ||
	    nla_put_u32(msg, FRA_FWMASK, rule->mask) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return mcn_transact(r->sk, msg, r->buf, BUFFER);
}
