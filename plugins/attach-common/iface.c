/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which interface gets which program, following rtnetlink: pod interfaces ([attach]
 * pod_interfaces globs) get the pod program on ingress; uplinks get the node program on
 * ingress and the guard on egress. `uplinks = auto` means the interfaces holding one of the
 * node's addresses (the local state's), so addresses are followed too.
 *
 * Everything here runs on the main loop, except mci_ifaces_notify() (any thread). A full dump
 * at start (and after the event socket overflowed) judges every interface; events then judge
 * the one they name. A failed attach is retried every second until it works.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "internal.h"
#include "meshcrypt.skel.h"

#define RETRY_NS UINT64_C(1000000000)

enum role {
	ROLE_UNDECIDED, /* uplinks = auto, the node's addresses not known yet: leave it as it is */
	ROLE_NONE,
	ROLE_POD,
	ROLE_UPLINK,
	ROLE_TUNNEL, /* the WireGuard device: what arrives on it was decrypted */
};

static const char *const dir_names[MCI_N_DIRS] = { "ingress", "egress" };

bool mci_attached(const struct mci_attach *a, int ifindex, enum mci_dir dir)
{
	for (size_t i = 0; i < a->n_ifaces; i++)
		if (a->ifaces[i].ifindex == ifindex)
			return a->ifaces[i].have[dir] >= 0;
	return false;
}

static struct mci_iface *iface_find(struct mci_attach *a, int ifindex)
{
	for (size_t i = 0; i < a->n_ifaces; i++)
		if (a->ifaces[i].ifindex == ifindex)
			return &a->ifaces[i];
	return NULL;
}

static struct mci_iface *iface_get(struct mci_attach *a, int ifindex)
{
	struct mci_iface *f = iface_find(a, ifindex);

	if (f)
		return f;
	if (a->n_ifaces == a->cap_ifaces) {
		size_t cap = a->cap_ifaces ? 2 * a->cap_ifaces : 16;
		struct mci_iface *v = realloc(a->ifaces, cap * sizeof(*v));

		if (!v)
			return NULL;
		a->ifaces = v;
		a->cap_ifaces = cap;
	}
	f = &a->ifaces[a->n_ifaces++];
	*f = (struct mci_iface){ .ifindex = ifindex,
				 .have = { MCI_HAVE_UNKNOWN, MCI_HAVE_UNKNOWN } };
	return f;
}

static void iface_drop(struct mci_attach *a, struct mci_iface *f)
{
	if (a->method->forget)
		a->method->forget(a, f->ifindex);
	*f = a->ifaces[--a->n_ifaces];
}

static int addr_set(struct mci_attach *a, int ifindex, const struct mc_ip *ip, bool present)
{
	for (size_t i = 0; i < a->n_addrs; i++) {
		if (a->addrs[i].ifindex != ifindex || mc_ip_compare(&a->addrs[i].ip, ip) != 0)
			continue;
		if (!present)
			a->addrs[i] = a->addrs[--a->n_addrs];
		return 0;
	}
	if (!present)
		return 0;
	if (a->n_addrs == a->cap_addrs) {
		size_t cap = a->cap_addrs ? 2 * a->cap_addrs : 16;
		struct mci_iface_addr *v = realloc(a->addrs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->addrs = v;
		a->cap_addrs = cap;
	}
	a->addrs[a->n_addrs++] = (struct mci_iface_addr){ .ifindex = ifindex, .ip = *ip };
	return 0;
}

static void addrs_forget_iface(struct mci_attach *a, int ifindex)
{
	for (size_t i = 0; i < a->n_addrs;)
		if (a->addrs[i].ifindex == ifindex)
			a->addrs[i] = a->addrs[--a->n_addrs];
		else
			i++;
}

/* Whether the interface holds one of the node's addresses; called under a->lock. */
static bool holds_node_address(const struct mci_attach *a, int ifindex)
{
	for (size_t i = 0; i < a->n_addrs; i++) {
		if (a->addrs[i].ifindex != ifindex)
			continue;
		for (size_t j = 0; j < a->n_local_addrs; j++)
			if (mc_ip_compare(&a->addrs[i].ip, &a->local_addrs[j]) == 0)
				return true;
	}
	return false;
}

static enum role role_of(struct mci_attach *a, const struct mci_iface *f)
{
	bool uplink, known;

	if (!f->name[0] || strcmp(f->name, "lo") == 0)
		return ROLE_NONE;
	if (mci_globs_match(a->tunnel_interfaces, f->name))
		return ROLE_TUNNEL;
	if (mci_globs_match(a->pod_interfaces, f->name))
		return ROLE_POD;
	if (strcmp(a->uplinks, "auto") != 0)
		return mci_globs_match(a->uplinks, f->name) ? ROLE_UPLINK : ROLE_NONE;
	pthread_mutex_lock(&a->lock);
	known = a->local_addrs_generation > 0;
	uplink = holds_node_address(a, f->ifindex);
	pthread_mutex_unlock(&a->lock);
	/* Until the node's addresses are known, a restart keeps the programs it finds on
	 * uplinks: detaching them would open the guard for a moment. */
	if (!known)
		return ROLE_UNDECIDED;
	return uplink ? ROLE_UPLINK : ROLE_NONE;
}

static int wanted_prog(struct mci_attach *a, enum role role, enum mci_dir dir)
{
	switch (role) {
	case ROLE_POD:
		return dir == MCI_INGRESS ? bpf_program__fd(a->skel->progs.mc_pod_ingress) : -1;
	case ROLE_UPLINK:
		return bpf_program__fd(dir == MCI_INGRESS ? a->skel->progs.mc_node_ingress :
							    a->skel->progs.mc_guard);
	case ROLE_TUNNEL:
		return dir == MCI_INGRESS ? bpf_program__fd(a->skel->progs.mc_tunnel_ingress) : -1;
	case ROLE_UNDECIDED:
	case ROLE_NONE:
		break;
	}
	return -1;
}

static uint64_t retry_failed(struct mc_plugin_ctx *ctx, void *userdata);

/* A timer that has returned 0 stays allocated but disarmed: it is replaced by a new one. */
static void schedule_retry(struct mci_attach *a)
{
	if (a->retry_armed)
		return;
	a->ctx->host->timer_remove(a->retry_timer);
	a->retry_timer = NULL;
	a->retry_armed = a->ctx->host->timer_add(a->ctx, RETRY_NS, retry_failed, a,
						 &a->retry_timer) == 0;
}

/* Makes the interface carry what its role wants, and nothing of ours besides. */
static int iface_sync(struct mci_attach *a, struct mci_iface *f)
{
	struct mc_plugin_ctx *ctx = a->ctx;
	enum role role = role_of(a, f);
	int result = 0;

	if (role == ROLE_UNDECIDED)
		return 0;
	for (int dir = 0; dir < MCI_N_DIRS; dir++) {
		int fd = wanted_prog(a, role, dir), r = 0;

		if (fd >= 0 && f->have[dir] != fd) {
			r = a->method->attach(a, f->ifindex, dir, fd);
			if (r == 0) {
				f->have[dir] = fd;
				ctx->host->log(ctx, LOG_DEBUG, "%s %s: %s program attached", f->name,
					       dir_names[dir],
					       role == ROLE_POD ? "pod" : role == ROLE_TUNNEL ? "tunnel" : "uplink");
			}
		} else if (fd < 0 && f->have[dir] != MCI_HAVE_NONE) {
			r = a->method->detach(a, f->ifindex, dir);
			if (r == 0 || r == -ENOENT) {
				if (r == 0)
					ctx->host->log(ctx, LOG_DEBUG, "%s %s: our program detached",
						       f->name, dir_names[dir]);
				f->have[dir] = MCI_HAVE_NONE;
				r = 0;
			}
		}
		/* Gone meanwhile: its DELLINK follows. */
		if (r == -ENODEV || r == -ENXIO)
			r = 0;
		if (r < 0) {
			ctx->host->log(ctx, LOG_WARNING, "%s %s: %s our program failed: %s (retrying)",
				       f->name, dir_names[dir], fd >= 0 ? "attaching" : "detaching",
				       strerror(-r));
			f->failed = true;
			result = r;
		}
	}
	if (result == 0)
		f->failed = false;
	else
		schedule_retry(a);
	return result;
}

static void judge_uplinks_ready(struct mci_attach *a)
{
	bool known, any = false, failed = false;

	pthread_mutex_lock(&a->lock);
	known = strcmp(a->uplinks, "auto") != 0 || a->local_addrs_generation > 0;
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < a->n_ifaces; i++) {
		any |= a->ifaces[i].have[MCI_EGRESS] >= 0;
		failed |= a->ifaces[i].failed;
	}
	if (known && !any && !a->warned_no_uplink) {
		a->ctx->host->log(a->ctx, LOG_WARNING,
				  "no uplink found (uplinks = %s): the leak guard is attached to "
				  "no interface",
				  a->uplinks);
		a->warned_no_uplink = true;
	}
	if (any)
		a->warned_no_uplink = false;
	atomic_store(&a->guard_ready, known);
	/* Once every interface has its role and its programs, the links of interfaces gone can
	 * go (not before: a link not yet taken over would look gone). */
	if (known && !failed && !a->pruned && a->method->prune) {
		int r = a->method->prune(a);

		if (r < 0)
			a->ctx->host->log(a->ctx, LOG_WARNING,
					  "removing our links of interfaces gone failed: %s",
					  strerror(-r));
		a->pruned = true;
	}
}

static void sync_all(struct mci_attach *a)
{
	for (size_t i = 0; i < a->n_ifaces; i++)
		(void)iface_sync(a, &a->ifaces[i]);
	judge_uplinks_ready(a);
}

static uint64_t retry_failed(struct mc_plugin_ctx *ctx, void *userdata)
{
	struct mci_attach *a = userdata;
	bool again = false;

	(void)ctx;
	for (size_t i = 0; i < a->n_ifaces; i++)
		if (a->ifaces[i].failed)
			again |= iface_sync(a, &a->ifaces[i]) < 0;
	judge_uplinks_ready(a);
	a->retry_armed = again;
	return again ? RETRY_NS : 0;
}

/* ---- rtnetlink ---- */

struct apply_ctx {
	struct mci_attach *a;
	bool dump;      /* a full dump: remember what was seen, judge at the end */
	bool rejudge;   /* an address changed: judge every interface again */
};

static int apply_msg(const struct mci_nl_msg *m, void *userdata)
{
	struct apply_ctx *c = userdata;
	struct mci_attach *a = c->a;
	struct mci_iface *f;

	switch (m->event) {
	case MCI_NL_NEWLINK:
		f = iface_get(a, m->ifindex);
		if (!f)
			return -ENOMEM;
		f->seen = true;
		if (m->ifname[0])
			memcpy(f->name, m->ifname, sizeof(f->name));
		if (!c->dump)
			(void)iface_sync(a, f);
		return 0;
	case MCI_NL_DELLINK:
		f = iface_find(a, m->ifindex);
		addrs_forget_iface(a, m->ifindex);
		if (f)
			iface_drop(a, f);
		return 0;
	case MCI_NL_NEWADDR:
	case MCI_NL_DELADDR:
		c->rejudge = true;
		return addr_set(a, m->ifindex, &m->addr, m->event == MCI_NL_NEWADDR);
	}
	return 0;
}

static int nl_open(uint32_t groups, int flags)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = groups };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags, NETLINK_ROUTE), rcvbuf = 4 << 20;

	if (fd < 0)
		return -errno;
	/* Pod churn makes bursts of link events: a large buffer makes an overflow (and the full
	 * dump it costs) rare. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* One dump request (RTM_GETLINK or RTM_GETADDR) on a blocking socket, applied as it comes. */
static int dump_one(struct mci_attach *a, int fd, uint16_t type)
{
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = type,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		.g = { .rtgen_family = AF_UNSPEC },
	};
	struct apply_ctx c = { .a = a, .dump = true };
	static _Alignas(struct nlmsghdr) char buf[65536];
	int r;

	if (send(fd, &req, sizeof(req), 0) < 0)
		return -errno;
	do {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		r = mci_nl_parse(buf, (size_t)n, apply_msg, &c);
	} while (r == 0);
	return r < 0 ? r : 0;
}

/* Reads every link and address anew, forgets interfaces that are gone and judges all. */
static int full_dump(struct mci_attach *a)
{
	int fd, r;

	for (int attempt = 0; attempt < 10; attempt++) {
		fd = nl_open(0, 0);
		if (fd < 0)
			return fd;
		for (size_t i = 0; i < a->n_ifaces; i++)
			a->ifaces[i].seen = false;
		a->n_addrs = 0;
		r = dump_one(a, fd, RTM_GETLINK);
		if (r == 0)
			r = dump_one(a, fd, RTM_GETADDR);
		close(fd);
		/* A change during the dump made it inconsistent: once more. */
		if (r != -EINTR)
			break;
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->n_ifaces;)
		if (!a->ifaces[i].seen)
			iface_drop(a, &a->ifaces[i]);
		else
			i++;
	return 0;
}

static void on_events(struct mc_plugin_ctx *ctx, int fd, uint32_t revents, void *userdata)
{
	static _Alignas(struct nlmsghdr) char buf[65536];
	struct mci_attach *a = userdata;
	struct apply_ctx c = { .a = a };
	bool overflow = false;

	(void)revents;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0) {
			overflow = errno == ENOBUFS;
			if (errno == EINTR || overflow)
				continue;
			break;
		}
		(void)mci_nl_parse(buf, (size_t)n, apply_msg, &c);
	}
	if (overflow) {
		ctx->host->log(ctx, LOG_INFO, "missed interface events (socket overflow): "
					      "reading all interfaces again");
		if (full_dump(a) < 0)
			schedule_retry(a);
		c.rejudge = true;
	}
	if (c.rejudge)
		sync_all(a);
	else
		judge_uplinks_ready(a);
}

static void on_notify(struct mc_plugin_ctx *ctx, int fd, uint32_t revents, void *userdata)
{
	uint64_t v;

	(void)ctx;
	(void)revents;
	if (read(fd, &v, sizeof(v)) == sizeof(v))
		sync_all(userdata);
}

void mci_ifaces_notify(struct mci_attach *a)
{
	uint64_t one = 1;

	if (a->event_fd >= 0)
		(void)!write(a->event_fd, &one, sizeof(one));
}

int mci_ifaces_start(struct mci_attach *a)
{
	const struct mc_host *h = a->ctx->host;
	int r;

	/* Subscribe before the dump, so that no change falls between the two. */
	a->nl_fd = nl_open(1u << (RTNLGRP_LINK - 1) | 1u << (RTNLGRP_IPV4_IFADDR - 1) |
				   1u << (RTNLGRP_IPV6_IFADDR - 1),
			   SOCK_NONBLOCK);
	if (a->nl_fd < 0)
		return a->nl_fd;
	a->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->event_fd < 0)
		return -errno;
	r = h->io_add(a->ctx, a->nl_fd, EPOLLIN, on_events, a, &a->nl_io);
	if (r == 0)
		r = h->io_add(a->ctx, a->event_fd, EPOLLIN, on_notify, a, &a->event_io);
	if (r == 0)
		r = full_dump(a);
	if (r < 0)
		return r;
	sync_all(a);
	return 0;
}

void mci_ifaces_stop(struct mci_attach *a)
{
	const struct mc_host *h = a->ctx->host;

	h->io_remove(a->nl_io);
	h->io_remove(a->event_io);
	h->timer_remove(a->retry_timer);
	a->nl_io = a->event_io = NULL;
	a->retry_timer = NULL;
	a->retry_armed = false;
	a->pruned = false;
	if (a->nl_fd >= 0)
		close(a->nl_fd);
	if (a->event_fd >= 0)
		close(a->event_fd);
	a->nl_fd = a->event_fd = -1;
	atomic_store(&a->guard_ready, false);
}

int mci_ifaces_cleanup(struct mci_attach *a)
{
	int r = full_dump(a), first = 0;

	for (size_t i = 0; r == 0 && i < a->n_ifaces; i++) {
		for (int dir = 0; dir < MCI_N_DIRS; dir++) {
			int d = a->method->detach(a, a->ifaces[i].ifindex, dir);

			if (d == 0 || d == -ENOENT || d == -ENODEV)
				a->ifaces[i].have[dir] = MCI_HAVE_NONE;
			else if (first == 0)
				first = d;
		}
	}
	if (r == 0 && first == 0 && a->method->prune)
		r = a->method->prune(a);
	return r < 0 ? r : first;
}

void mci_ifaces_free(struct mci_attach *a)
{
	free(a->ifaces);
	free(a->addrs);
	a->ifaces = NULL;
	a->addrs = NULL;
	a->n_ifaces = a->cap_ifaces = a->n_addrs = a->cap_addrs = 0;
}
