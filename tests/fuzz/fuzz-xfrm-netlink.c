/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the xfrm backend's parsers of the kernel's messages
 * (plugins/backend-xfrm/netlink.h): arbitrary bytes arrive as the datagrams of a dump reply
 * through the receive loop of plugins/netlink-common (fuzz-nl.h), and every message of the
 * dump goes through mcx_sa_parse(), mcx_sp_parse() and mcx_sa_parse_gone(), whatever its
 * type; the dump stops, as the backend's does, when a state or a policy is malformed.
 *
 * Besides memory errors (reads past a message fault, see fuzz-nl.h) and undefined behaviour
 * (kernel structs read where a dump puts them, 4-byte aligned: each message is parsed at both
 * offsets from an 8-byte boundary, with the same results), a crash here means a result
 * that breaks what netlink.h promises: a return value not in the list; a state or policy
 * returned that is not of our reqid, whose addresses are not of one family or not in their
 * canonical form (an IPv4 address with bytes beyond its 4), a policy prefix longer than its
 * family's addresses, a key longer than the buffer or kept without the algorithm; or an object
 * that does not read back the same from the message the backend would build of it (or whose
 * delete message cannot be built).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/xfrm.h>

#include <netlink/msg.h>

#include "fuzz-nl.h"
#include "netlink.h"

/* The backend's default reqid ([plugin.xfrm] reqid), which the seeds carry. */
#define REQID 0x6d63

static void check_ip(const struct mc_ip *ip)
{
	FUZZ_CHECK(ip->family == AF_INET || ip->family == AF_INET6);
	if (ip->family == AF_INET)
		for (size_t i = 4; i < sizeof(ip->addr); i++)
			FUZZ_CHECK(ip->addr[i] == 0);
}

static void free_wiped(struct nl_msg *msg)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);

	explicit_bzero(h, h->nlmsg_len);
	nlmsg_free(msg);
}

static void check_sa(const struct mcx_sa *sa)
{
	struct nl_msg *msg;
	struct mcx_sa back;

	check_ip(&sa->src);
	check_ip(&sa->dst);
	FUZZ_CHECK(sa->src.family == sa->dst.family);
	FUZZ_CHECK(sa->reqid == REQID);
	FUZZ_CHECK(sa->key_len <= MCX_KEY_MAX && (sa->algo_ok || sa->key_len == 0));
	/* the backend deletes what it finds that it does not want */
	FUZZ_CHECK(mcx_sa_delete_message(sa, &msg) == 0);
	FUZZ_CHECK(nlmsg_hdr(msg)->nlmsg_type == XFRM_MSG_DELSA);
	nlmsg_free(msg);
	/* the message the backend builds of an SA it would install reads back the same */
	if (!sa->algo_ok || (sa->key_len != 20 && sa->key_len != 28 && sa->key_len != 36) ||
	    sa->replay_window > (sa->esn ? 32u * 32 : 255u))
		return;
	FUZZ_CHECK(mcx_sa_message(sa, XFRM_MSG_NEWSA, &msg) == 0);
	FUZZ_CHECK(mcx_sa_parse(nlmsg_hdr(msg), REQID, &back) == 0);
	FUZZ_CHECK(mcx_sa_equal(sa, &back) && mcx_sa_same_id(&back, sa));
	free_wiped(msg);
	explicit_bzero(&back, sizeof(back));
}

static void check_sp(const struct mcx_sp *sp)
{
	struct nl_msg *msg;
	struct mcx_sp back;

	check_ip(&sp->dst.ip);
	FUZZ_CHECK(sp->dst.len <= (sp->dst.ip.family == AF_INET ? 32 : 128));
	check_ip(&sp->tmpl_src);
	check_ip(&sp->tmpl_dst);
	FUZZ_CHECK(sp->tmpl_src.family == sp->tmpl_dst.family);
	FUZZ_CHECK(sp->reqid == REQID);
	FUZZ_CHECK(mcx_sp_delete_message(sp, &msg) == 0);
	FUZZ_CHECK(nlmsg_hdr(msg)->nlmsg_type == XFRM_MSG_DELPOLICY);
	nlmsg_free(msg);
	if ((sp->dir != XFRM_POLICY_OUT && sp->dir != XFRM_POLICY_IN &&
	     sp->dir != XFRM_POLICY_FWD) ||
	    sp->tmpl_dst.family != sp->dst.ip.family)
		return;
	FUZZ_CHECK(mcx_sp_message(sp, XFRM_MSG_NEWPOLICY, &msg) == 0);
	FUZZ_CHECK(mcx_sp_parse(nlmsg_hdr(msg), REQID, &back) == 0);
	FUZZ_CHECK(mcx_sp_equal(sp, &back) && mcx_sp_same_id(&back, sp));
	nlmsg_free(msg);
}

struct parsed {
	int sar, spr, goner;
	struct mcx_sa sa, gone;
	struct mcx_sp sp;
	uint64_t sent;
};

/* As the backend's dump callbacks and its monitor read a message. */
static void parse_all(const struct nlmsghdr *h, struct parsed *p)
{
	p->sar = mcx_sa_parse(h, REQID, &p->sa);
	FUZZ_CHECK(p->sar == 0 || p->sar == -ENOENT || p->sar == -EBADMSG);
	if (p->sar == 0)
		check_sa(&p->sa);

	p->spr = mcx_sp_parse(h, REQID, &p->sp);
	FUZZ_CHECK(p->spr == 0 || p->spr == -ENOENT || p->spr == -EBADMSG);
	if (p->spr == 0)
		check_sp(&p->sp);

	p->goner = mcx_sa_parse_gone(h, REQID, &p->gone, &p->sent);
	FUZZ_CHECK(p->goner == 0 || p->goner == -ENOENT);
	if (p->goner == 0) {
		check_ip(&p->gone.src);
		check_ip(&p->gone.dst);
		FUZZ_CHECK(p->gone.reqid == REQID && p->gone.key_len == 0);
	}
}

/*
 * Parses the message where fuzz-nl.h put it, and again 4 bytes off that (at the end of a heap
 * block of its size): messages and attributes are 4-byte aligned, so the kernel's structs come
 * at either offset from an 8-byte boundary, and the results must not depend on it.
 */
static int parse(const struct nlmsghdr *h, void *userdata)
{
	size_t off = (uintptr_t)h % 8 ? 0 : 4;
	uint8_t *block = malloc(off + h->nlmsg_len);
	struct parsed a, b;

	(void)userdata;
	FUZZ_CHECK(block);
	memcpy(block + off, h, h->nlmsg_len);
	memset(&a, 0, sizeof(a)); /* padding too, for memcmp() */
	memset(&b, 0, sizeof(b));
	parse_all(h, &a);
	parse_all((const struct nlmsghdr *)(block + off), &b);
	FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	explicit_bzero(block, off + h->nlmsg_len);
	free(block);
	explicit_bzero(&a, sizeof(a));
	explicit_bzero(&b, sizeof(b));

	/* dump_sa() and dump_sp() of xfrm.c: a malformed object of the dump stops it */
	if (h->nlmsg_type == XFRM_MSG_NEWSA)
		return a.sar == -ENOENT ? 0 : a.sar;
	if (h->nlmsg_type == XFRM_MSG_NEWPOLICY)
		return a.spr == -ENOENT ? 0 : a.spr;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_nl_receive(data, size, parse, NULL);
	return 0;
}
