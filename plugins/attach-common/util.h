/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pure helpers of the attach plugins, kept apart from libbpf and the kernel so that the unit
 * tests (tests/unit/test-attach-util.c) can run them anywhere: the map key forms of addresses
 * and prefixes, sets of map keys, interface globs and netlink message parsing.
 */
#ifndef MC_ATTACH_UTIL_H
#define MC_ATTACH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <meshcrypt/model.h>

/*
 * A key of any of our maps, zero-padded to the largest key (struct mc_bpf_prefix, 20 bytes),
 * so that one type and memcmp() serve every map; the kernel reads only its map's key_size.
 */
#define MCI_KEY_SIZE 20
struct mci_key {
	uint8_t b[MCI_KEY_SIZE];
};

/* The 16-byte map form of ip (IPv4 as ::ffff:a.b.c.d): a key of local_pods, remote_pods and
 * peers. */
void mci_key_from_ip(struct mci_key *k, const struct mc_ip *ip);
/* The map form of prefix p (struct mc_bpf_prefix; an IPv4 /n is 96 + n long): a key of
 * local_cidrs and peer_prefixes. */
void mci_key_from_prefix(struct mci_key *k, const struct mc_prefix *p);

int mci_key_compare(const void *a, const void *b);
/* Sorts keys[0..n) and drops duplicates; returns the new count. */
size_t mci_keys_normalize(struct mci_key *keys, size_t n);
/* Whether key is in keys[0..n), which mci_keys_normalize() has sorted. */
bool mci_keys_contains(const struct mci_key *keys, size_t n, const struct mci_key *key);

/*
 * Whether name matches one of the comma-separated fnmatch(3) globs of list ("veth*, lxc*");
 * blanks around a glob are ignored, empty globs match nothing.
 */
bool mci_globs_match(const char *list, const char *name);

/* What a link or address message of rtnetlink says. */
enum mci_nl_event {
	MCI_NL_NEWLINK = 1,
	MCI_NL_DELLINK,
	MCI_NL_NEWADDR,
	MCI_NL_DELADDR,
};

struct mci_nl_msg {
	enum mci_nl_event event;
	int ifindex;
	char ifname[16];    /* links: IFLA_IFNAME, "" when absent */
	struct mc_ip addr;  /* addresses: IFA_LOCAL, else IFA_ADDRESS */
};

/* Called for each link or address message of a batch; returns 0 to go on or -errno to stop. */
typedef int (*mci_nl_fn)(const struct mci_nl_msg *m, void *userdata);

/*
 * Parses the netlink messages in buf[0..len) (one recv()), calling fn for each link and
 * address message and skipping the others. Returns 1 when NLMSG_DONE ends a dump, 0 when the
 * batch holds none, -EINTR when the kernel reports a dump interrupted by a change
 * (NLM_F_DUMP_INTR; dump again), an NLMSG_ERROR's error, -EBADMSG for a malformed batch, or
 * fn's error.
 */
int mci_nl_parse(const void *buf, size_t len, mci_nl_fn fn, void *userdata);

#endif
