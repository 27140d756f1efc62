/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

void mci_key_from_ip(struct mci_key *k, const struct mc_ip *ip)
{
	memset(k, 0, sizeof(*k));
	if (ip->family == AF_INET) {
		k->b[10] = 0xff;
		k->b[11] = 0xff;
		memcpy(&k->b[12], ip->addr, 4);
	} else {
		memcpy(k->b, ip->addr, 16);
	}
}

void mci_key_from_prefix(struct mci_key *k, const struct mc_prefix *p)
{
	/* struct mc_bpf_prefix: a host-endian __u32 prefixlen, then the 16 address bytes. */
	uint32_t len = p->ip.family == AF_INET ? 96u + p->len : p->len;

	mci_key_from_ip(k, &p->ip);
	memmove(&k->b[4], k->b, 16);
	memcpy(k->b, &len, sizeof(len));
}

int mci_key_compare(const void *a, const void *b)
{
	return memcmp(a, b, MCI_KEY_SIZE);
}

size_t mci_keys_normalize(struct mci_key *keys, size_t n)
{
	size_t out = 0;

	if (n == 0)
		return 0;
	qsort(keys, n, sizeof(*keys), mci_key_compare);
	for (size_t i = 1; i < n; i++)
		if (mci_key_compare(&keys[out], &keys[i]) != 0)
			keys[++out] = keys[i];
	return out + 1;
}

bool mci_keys_contains(const struct mci_key *keys, size_t n, const struct mci_key *key)
{
	return n && bsearch(key, keys, n, sizeof(*keys), mci_key_compare);
}

bool mci_globs_match(const char *list, const char *name)
{
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char glob[256];

		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len && len < sizeof(glob)) {
			memcpy(glob, p, len);
			glob[len] = '\0';
			if (fnmatch(glob, name, 0) == 0)
				return true;
		}
		p = end ? end + 1 : NULL;
	}
	return false;
}

static void parse_link(const struct nlmsghdr *h, struct mci_nl_msg *m)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	int len = (int)IFLA_PAYLOAD(h);

	m->ifindex = ifi->ifi_index;
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		size_t n = RTA_PAYLOAD(a);

		if (a->rta_type != IFLA_IFNAME)
			continue;
		n = strnlen(RTA_DATA(a), n);
		if (n >= sizeof(m->ifname))
			n = sizeof(m->ifname) - 1;
		memcpy(m->ifname, RTA_DATA(a), n);
		m->ifname[n] = '\0';
	}
}

/* Returns whether the message carried an address of its family. */
static bool parse_addr(const struct nlmsghdr *h, struct mci_nl_msg *m)
{
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	int len = (int)IFA_PAYLOAD(h);
	size_t size = ifa->ifa_family == AF_INET ? 4 : ifa->ifa_family == AF_INET6 ? 16 : 0;
	bool local = false, found = false;

	m->ifindex = (int)ifa->ifa_index;
	m->addr.family = ifa->ifa_family;
	for (const struct rtattr *a = IFA_RTA(ifa); size && RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		/* On a point-to-point link IFA_ADDRESS is the peer's: IFA_LOCAL wins. */
		if ((a->rta_type != IFA_LOCAL && (a->rta_type != IFA_ADDRESS || local)) ||
		    RTA_PAYLOAD(a) < size)
			continue;
		memcpy(m->addr.addr, RTA_DATA(a), size);
		local = a->rta_type == IFA_LOCAL;
		found = true;
	}
	return found;
}

int mci_nl_parse(const void *buf, size_t len, mci_nl_fn fn, void *userdata)
{
	unsigned int left = (unsigned int)len;
	int r;

	for (const struct nlmsghdr *h = buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
		struct mci_nl_msg m = { 0 };

		if (h->nlmsg_flags & NLM_F_DUMP_INTR)
			return -EINTR;
		switch (h->nlmsg_type) {
		case NLMSG_DONE:
			return 1;
		case NLMSG_ERROR:
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
				return -EBADMSG;
			r = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (r != 0)
				return r;
			continue;
		case RTM_NEWLINK:
		case RTM_DELLINK:
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
				return -EBADMSG;
			m.event = h->nlmsg_type == RTM_NEWLINK ? MCI_NL_NEWLINK : MCI_NL_DELLINK;
			parse_link(h, &m);
			break;
		case RTM_NEWADDR:
		case RTM_DELADDR:
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
				return -EBADMSG;
			m.event = h->nlmsg_type == RTM_NEWADDR ? MCI_NL_NEWADDR : MCI_NL_DELADDR;
			if (!parse_addr(h, &m))
				continue;
			break;
		default:
			continue;
		}
		r = fn(&m, userdata);
		if (r < 0)
			return r;
	}
	return left ? -EBADMSG : 0;
}
