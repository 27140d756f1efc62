/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <netlink/addr.h>
#include <netlink/msg.h>
#include <netlink/attr.h>
#include <netlink/xfrm/lifetime.h>
#include <netlink/xfrm/selector.h>
#include <netlink/xfrm/sp.h>
#include <netlink/xfrm/template.h>

static size_t addr_len(uint8_t family)
{
	return family == AF_INET ? 4 : 16;
}

static void addr_to_kernel(const struct mc_ip *ip, xfrm_address_t *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out, ip->addr, addr_len(ip->family));
}

static void addr_from_kernel(uint8_t family, const xfrm_address_t *in, struct mc_ip *out)
{
	memset(out, 0, sizeof(*out));
	out->family = family;
	memcpy(out->addr, in, addr_len(family));
}

static bool ip_equal(const struct mc_ip *a, const struct mc_ip *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

bool mcx_sa_same_id(const struct mcx_sa *a, const struct mcx_sa *b)
{
	return ip_equal(&a->dst, &b->dst) && a->spi == b->spi &&
	       (a->mark & a->mark_mask) == (b->mark & b->mark_mask) && a->mark_mask == b->mark_mask;
}

bool mcx_sa_equal(const struct mcx_sa *want, const struct mcx_sa *have)
{
	return mcx_sa_same_id(want, have) && ip_equal(&want->src, &have->src) &&
	       want->reqid == have->reqid && want->replay_window == have->replay_window &&
	       want->esn == have->esn && have->lifetime_infinite && have->algo_ok &&
	       want->key_len == have->key_len && memcmp(want->key, have->key, want->key_len) == 0;
}

bool mcx_sp_same_id(const struct mcx_sp *a, const struct mcx_sp *b)
{
	return a->dir == b->dir && mc_prefix_compare(&a->dst, &b->dst) == 0 &&
	       a->mark == b->mark && a->mark_mask == b->mark_mask;
}

bool mcx_sp_equal(const struct mcx_sp *want, const struct mcx_sp *have)
{
	return mcx_sp_same_id(want, have) && want->priority == have->priority &&
	       ip_equal(&want->tmpl_src, &have->tmpl_src) &&
	       ip_equal(&want->tmpl_dst, &have->tmpl_dst) && want->tmpl_spi == have->tmpl_spi &&
	       want->reqid == have->reqid;
}

/* ---- states: UAPI structs with libnl's nlmsg/nla ---- */

/* Wipes a message that may hold a key, then frees it. */
static void message_free_wiped(struct nl_msg *msg)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);

	explicit_bzero(h, h->nlmsg_len);
	nlmsg_free(msg);
}

static int put_mark(struct nl_msg *msg, uint32_t mark, uint32_t mask)
{
	struct xfrm_mark m = { .v = mark, .m = mask };

	return mask ? nla_put(msg, XFRMA_MARK, sizeof(m), &m) : 0;
}

int mcx_sa_message(const struct mcx_sa *sa, int type, struct nl_msg **out)
{
	struct {
		struct xfrm_algo_aead head;
		uint8_t key[MCX_KEY_MAX];
	} aead;
	struct {
		struct xfrm_replay_state_esn head;
		uint32_t bmp[32];
	} esn;
	struct xfrm_usersa_info info;
	struct nl_msg *msg;
	size_t bmp_len = (sa->replay_window + 31) / 32;
	int r = 0;

	*out = NULL;
	if ((type != XFRM_MSG_NEWSA && type != XFRM_MSG_UPDSA) || sa->src.family != sa->dst.family ||
	    bmp_len > 32 || sa->key_len > MCX_KEY_MAX)
		return -EINVAL;
	memset(&info, 0, sizeof(info));
	info.sel.family = sa->dst.family;
	addr_to_kernel(&sa->dst, &info.id.daddr);
	info.id.spi = htonl(sa->spi);
	info.id.proto = IPPROTO_ESP;
	addr_to_kernel(&sa->src, &info.saddr);
	info.lft.soft_byte_limit = XFRM_INF;
	info.lft.hard_byte_limit = XFRM_INF;
	info.lft.soft_packet_limit = XFRM_INF;
	info.lft.hard_packet_limit = XFRM_INF;
	info.reqid = sa->reqid;
	info.family = sa->dst.family;
	info.mode = XFRM_MODE_TUNNEL;
	/* With ESN the window lives in XFRMA_REPLAY_ESN_VAL; the kernel wants 0 here. */
	info.replay_window = sa->esn ? 0 : (uint8_t)sa->replay_window;
	info.flags = sa->esn ? XFRM_STATE_ESN : 0;

	memset(&aead, 0, sizeof(aead));
	snprintf(aead.head.alg_name, sizeof(aead.head.alg_name), "%s", MCX_ALGO);
	aead.head.alg_key_len = sa->key_len * 8u;
	aead.head.alg_icv_len = MCX_ICV_BITS;
	memcpy(aead.key, sa->key, sa->key_len);

	msg = nlmsg_alloc_simple(type, 0);
	if (!msg) {
		explicit_bzero(&aead, sizeof(aead));
		return -ENOMEM;
	}
	if (nlmsg_append(msg, &info, sizeof(info), NLMSG_ALIGNTO) < 0 ||
	    nla_put(msg, XFRMA_ALG_AEAD, (int)(sizeof(aead.head) + sa->key_len), &aead) < 0 ||
	    put_mark(msg, sa->mark, sa->mark_mask) < 0)
		r = -ENOMEM;
	if (r == 0 && sa->esn) {
		memset(&esn, 0, sizeof(esn));
		esn.head.bmp_len = (uint32_t)bmp_len;
		esn.head.replay_window = sa->replay_window;
		esn.head.oseq = (uint32_t)sa->initial_seq;
		esn.head.oseq_hi = (uint32_t)(sa->initial_seq >> 32);
		if (nla_put(msg, XFRMA_REPLAY_ESN_VAL,
			    (int)(sizeof(esn.head) + bmp_len * sizeof(uint32_t)), &esn) < 0)
			r = -ENOMEM;
	}
	explicit_bzero(&aead, sizeof(aead));
	if (r < 0) {
		message_free_wiped(msg);
		return r;
	}
	*out = msg;
	return 0;
}

int mcx_sa_delete_message(const struct mcx_sa *sa, struct nl_msg **out)
{
	struct xfrm_usersa_id id;
	struct nl_msg *msg = nlmsg_alloc_simple(XFRM_MSG_DELSA, 0);

	*out = NULL;
	if (!msg)
		return -ENOMEM;
	memset(&id, 0, sizeof(id));
	addr_to_kernel(&sa->dst, &id.daddr);
	id.spi = htonl(sa->spi);
	id.family = sa->dst.family;
	id.proto = IPPROTO_ESP;
	if (nlmsg_append(msg, &id, sizeof(id), NLMSG_ALIGNTO) < 0 ||
	    put_mark(msg, sa->mark, sa->mark_mask) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	*out = msg;
	return 0;
}

static bool lifetime_infinite(const struct xfrm_lifetime_cfg *l)
{
	return l->soft_byte_limit == XFRM_INF && l->hard_byte_limit == XFRM_INF &&
	       l->soft_packet_limit == XFRM_INF && l->hard_packet_limit == XFRM_INF &&
	       !l->soft_add_expires_seconds && !l->hard_add_expires_seconds &&
	       !l->soft_use_expires_seconds && !l->hard_use_expires_seconds;
}

/*
 * The parsers read the kernel's structs from copies: messages follow each other in a dump at
 * 4-byte boundaries (NLMSG_ALIGN), and attributes too, but xfrm_usersa_info and
 * xfrm_userpolicy_info hold 64-bit counters and want 8-byte alignment. The XFRMA_SA of a
 * DELSA notification is 4 bytes past an 8-byte boundary in every message.
 */
int mcx_sa_parse(const struct nlmsghdr *h, uint32_t reqid, struct mcx_sa *out)
{
	struct nlattr *tb[XFRMA_MAX + 1];
	struct xfrm_usersa_info info_copy;
	const struct xfrm_usersa_info *info = &info_copy;

	memset(out, 0, sizeof(*out));
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*info)))
		return -EBADMSG;
	memcpy(&info_copy, nlmsg_data(h), sizeof(info_copy)); /* aligned: see above */
	if (info->reqid != reqid || info->id.proto != IPPROTO_ESP ||
	    info->mode != XFRM_MODE_TUNNEL ||
	    (info->family != AF_INET && info->family != AF_INET6))
		return -ENOENT;
	if (nlmsg_parse((struct nlmsghdr *)h, sizeof(*info), tb, XFRMA_MAX, NULL) < 0)
		return -EBADMSG;
	addr_from_kernel(info->family, &info->id.daddr, &out->dst);
	addr_from_kernel(info->family, &info->saddr, &out->src);
	out->spi = ntohl(info->id.spi);
	out->reqid = info->reqid;
	out->lifetime_infinite = lifetime_infinite(&info->lft);
	out->esn = info->flags & XFRM_STATE_ESN;
	out->replay_window = info->replay_window;
	if (tb[XFRMA_MARK] && nla_len(tb[XFRMA_MARK]) >= (int)sizeof(struct xfrm_mark)) {
		const struct xfrm_mark *m = nla_data(tb[XFRMA_MARK]);

		out->mark = m->v;
		out->mark_mask = m->m;
	}
	if (tb[XFRMA_REPLAY_ESN_VAL] &&
	    nla_len(tb[XFRMA_REPLAY_ESN_VAL]) >= (int)sizeof(struct xfrm_replay_state_esn)) {
		const struct xfrm_replay_state_esn *esn = nla_data(tb[XFRMA_REPLAY_ESN_VAL]);
		uint64_t oseq = (uint64_t)esn->oseq_hi << 32 | esn->oseq;

		out->replay_window = esn->replay_window;
		out->initial_seq = oseq >= info->curlft.packets ? oseq - info->curlft.packets : 0;
	}
	if (tb[XFRMA_ALG_AEAD] &&
	    nla_len(tb[XFRMA_ALG_AEAD]) >= (int)sizeof(struct xfrm_algo_aead)) {
		const struct xfrm_algo_aead *a = nla_data(tb[XFRMA_ALG_AEAD]);
		size_t len = (a->alg_key_len + 7) / 8;

		if (strncmp(a->alg_name, MCX_ALGO, sizeof(a->alg_name)) == 0 &&
		    a->alg_icv_len == MCX_ICV_BITS && len <= MCX_KEY_MAX &&
		    nla_len(tb[XFRMA_ALG_AEAD]) >= (int)(sizeof(*a) + len)) {
			out->algo_ok = true;
			out->key_len = (uint8_t)len;
			memcpy(out->key, a->alg_key, len);
		}
	}
	return 0;
}

int mcx_sa_parse_gone(const struct nlmsghdr *h, uint32_t reqid, struct mcx_sa *gone, uint64_t *sent)
{
	struct nlattr *tb[XFRMA_MAX + 1];
	struct xfrm_usersa_info info_copy;
	const struct xfrm_usersa_info *info = &info_copy;
	size_t hdrlen;

	memset(gone, 0, sizeof(*gone));
	*sent = 0;
	if (h->nlmsg_type == XFRM_MSG_DELSA)
		hdrlen = sizeof(struct xfrm_usersa_id);
	else if (h->nlmsg_type == XFRM_MSG_EXPIRE)
		hdrlen = sizeof(struct xfrm_user_expire);
	else
		return -ENOENT;
	if (h->nlmsg_len < NLMSG_LENGTH(hdrlen) ||
	    nlmsg_parse((struct nlmsghdr *)h, hdrlen, tb, XFRMA_MAX, NULL) < 0)
		return -ENOENT;
	if (h->nlmsg_type == XFRM_MSG_DELSA) {
		if (!tb[XFRMA_SA] || nla_len(tb[XFRMA_SA]) < (int)sizeof(*info))
			return -ENOENT;
		memcpy(&info_copy, nla_data(tb[XFRMA_SA]), sizeof(info_copy)); /* aligned */
	} else {
		struct xfrm_user_expire e;

		memcpy(&e, nlmsg_data(h), sizeof(e)); /* aligned: see mcx_sa_parse() */
		if (!e.hard)
			return -ENOENT;
		info_copy = e.state;
	}
	if (info->reqid != reqid || info->id.proto != IPPROTO_ESP ||
	    (info->family != AF_INET && info->family != AF_INET6))
		return -ENOENT;
	addr_from_kernel(info->family, &info->id.daddr, &gone->dst);
	addr_from_kernel(info->family, &info->saddr, &gone->src);
	gone->spi = ntohl(info->id.spi);
	gone->reqid = info->reqid;
	if (tb[XFRMA_MARK] && nla_len(tb[XFRMA_MARK]) >= (int)sizeof(struct xfrm_mark)) {
		const struct xfrm_mark *m = nla_data(tb[XFRMA_MARK]);

		gone->mark = m->v;
		gone->mark_mask = m->m;
	}
	*sent = info->curlft.packets;
	return 0;
}

/* ---- policies: libnl-xfrm ---- */

static struct nl_addr *nl_address(const struct mc_ip *ip, unsigned prefixlen)
{
	struct nl_addr *a = nl_addr_build(ip->family, ip->addr, addr_len(ip->family));

	if (a)
		nl_addr_set_prefixlen(a, (int)prefixlen);
	return a;
}

static struct mc_ip any_of(uint8_t family)
{
	struct mc_ip ip;

	memset(&ip, 0, sizeof(ip));
	ip.family = family;
	return ip;
}

/* The libnl-xfrm object of sp; NULL on allocation failure. */
static struct xfrmnl_sp *sp_object(const struct mcx_sp *sp, bool with_template)
{
	struct mc_ip any = any_of(sp->dst.ip.family);
	struct xfrmnl_sp *o = xfrmnl_sp_alloc();
	struct xfrmnl_sel *sel = xfrmnl_sel_alloc();
	struct xfrmnl_ltime_cfg *lft = xfrmnl_ltime_cfg_alloc();
	struct xfrmnl_user_tmpl *t = with_template ? xfrmnl_user_tmpl_alloc() : NULL;
	struct nl_addr *sel_src = nl_address(&any, 0), *sel_dst = nl_address(&sp->dst.ip, sp->dst.len);
	struct nl_addr *t_src = nl_address(&sp->tmpl_src, addr_len(sp->tmpl_src.family) * 8);
	struct nl_addr *t_dst = nl_address(&sp->tmpl_dst, addr_len(sp->tmpl_dst.family) * 8);
	bool ok = o && sel && lft && (t || !with_template) && sel_src && sel_dst && t_src && t_dst;

	if (ok) {
		xfrmnl_sel_set_saddr(sel, sel_src);
		xfrmnl_sel_set_daddr(sel, sel_dst);
		xfrmnl_sel_set_family(sel, sp->dst.ip.family);
		xfrmnl_sel_set_prefixlen_s(sel, 0);
		xfrmnl_sel_set_prefixlen_d(sel, sp->dst.len);
		xfrmnl_sp_set_sel(o, sel);
		xfrmnl_sp_set_dir(o, sp->dir);
		xfrmnl_sp_set_mark(o, sp->mark, sp->mark_mask);
	}
	if (ok && with_template) {
		xfrmnl_ltime_cfg_set_soft_bytelimit(lft, XFRM_INF);
		xfrmnl_ltime_cfg_set_hard_bytelimit(lft, XFRM_INF);
		xfrmnl_ltime_cfg_set_soft_packetlimit(lft, XFRM_INF);
		xfrmnl_ltime_cfg_set_hard_packetlimit(lft, XFRM_INF);
		xfrmnl_sp_set_lifetime_cfg(o, lft);
		xfrmnl_sp_set_priority(o, sp->priority);
		xfrmnl_sp_set_action(o, XFRM_POLICY_ALLOW);
		xfrmnl_user_tmpl_set_family(t, sp->tmpl_dst.family);
		xfrmnl_user_tmpl_set_daddr(t, t_dst);
		xfrmnl_user_tmpl_set_saddr(t, t_src);
		xfrmnl_user_tmpl_set_spi(t, sp->tmpl_spi);
		xfrmnl_user_tmpl_set_proto(t, IPPROTO_ESP);
		xfrmnl_user_tmpl_set_reqid(t, sp->reqid);
		xfrmnl_user_tmpl_set_mode(t, XFRM_MODE_TUNNEL);
		/* Any algorithm: the kernel compares these masks with the state's algorithms,
		 * and an AEAD state has an encryption algorithm. */
		xfrmnl_user_tmpl_set_aalgos(t, ~0u);
		xfrmnl_user_tmpl_set_ealgos(t, ~0u);
		xfrmnl_user_tmpl_set_calgos(t, ~0u);
		xfrmnl_sp_add_usertemplate(o, t); /* the policy owns it now */
		t = NULL;
	}
	nl_addr_put(sel_src);
	nl_addr_put(sel_dst);
	nl_addr_put(t_src);
	nl_addr_put(t_dst);
	if (sel)
		xfrmnl_sel_put(sel);
	if (lft)
		xfrmnl_ltime_cfg_put(lft);
	if (t)
		xfrmnl_user_tmpl_free(t);
	if (!ok && o) {
		xfrmnl_sp_put(o);
		o = NULL;
	}
	return o;
}

int mcx_sp_message(const struct mcx_sp *sp, int type, struct nl_msg **out)
{
	struct xfrmnl_sp *o;
	int r;

	*out = NULL;
	if (type != XFRM_MSG_NEWPOLICY && type != XFRM_MSG_UPDPOLICY)
		return -EINVAL;
	o = sp_object(sp, true);
	if (!o)
		return -ENOMEM;
	r = type == XFRM_MSG_NEWPOLICY ? xfrmnl_sp_build_add_request(o, 0, out) :
					 xfrmnl_sp_build_update_request(o, 0, out);
	xfrmnl_sp_put(o);
	return r < 0 ? -ENOMEM : 0;
}

int mcx_sp_delete_message(const struct mcx_sp *sp, struct nl_msg **out)
{
	struct xfrmnl_sp *o = sp_object(sp, false);
	int r;

	*out = NULL;
	if (!o)
		return -ENOMEM;
	r = xfrmnl_sp_build_delete_request(o, 0, out);
	xfrmnl_sp_put(o);
	return r < 0 ? -ENOMEM : 0;
}

/*
 * Parsed over the UAPI structs rather than with xfrmnl_sp_parse(): libnl 3.7's parser leaks
 * four address objects per policy, and the model re-reads every policy at start and after
 * each foreign change.
 */
int mcx_sp_parse(const struct nlmsghdr *h, uint32_t reqid, struct mcx_sp *out)
{
	struct nlattr *tb[XFRMA_MAX + 1];
	struct xfrm_userpolicy_info info_copy;
	const struct xfrm_userpolicy_info *info = &info_copy;
	const struct xfrm_user_tmpl *t;
	uint8_t family;

	memset(out, 0, sizeof(*out));
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*info)))
		return -EBADMSG;
	memcpy(&info_copy, nlmsg_data(h), sizeof(info_copy)); /* aligned: see mcx_sa_parse() */
	if (nlmsg_parse((struct nlmsghdr *)h, sizeof(*info), tb, XFRMA_MAX, NULL) < 0)
		return -EBADMSG;
	family = info->sel.family;
	/* Ours: exactly one template, ESP in tunnel mode with our reqid. */
	if (!tb[XFRMA_TMPL] || nla_len(tb[XFRMA_TMPL]) != (int)sizeof(*t) ||
	    (family != AF_INET && family != AF_INET6))
		return -ENOENT;
	t = nla_data(tb[XFRMA_TMPL]);
	if (t->reqid != reqid || t->id.proto != IPPROTO_ESP || t->mode != XFRM_MODE_TUNNEL ||
	    (t->family != AF_INET && t->family != AF_INET6))
		return -ENOENT;
	/* The kernel refuses a longer prefix (verify_newpolicy_info()); taken as it is, it would
	 * make mc_prefix_contains() read past the address. */
	if (info->sel.prefixlen_d > (family == AF_INET ? 32 : 128))
		return -EBADMSG;
	out->dir = info->dir;
	addr_from_kernel(family, &info->sel.daddr, &out->dst.ip);
	out->dst.len = info->sel.prefixlen_d;
	if (tb[XFRMA_MARK] && nla_len(tb[XFRMA_MARK]) >= (int)sizeof(struct xfrm_mark)) {
		const struct xfrm_mark *m = nla_data(tb[XFRMA_MARK]);

		out->mark = m->v;
		out->mark_mask = m->m;
	}
	out->priority = info->priority;
	addr_from_kernel(t->family, &t->saddr, &out->tmpl_src);
	addr_from_kernel(t->family, &t->id.daddr, &out->tmpl_dst);
	out->tmpl_spi = ntohl(t->id.spi);
	out->reqid = t->reqid;
	return 0;
}
