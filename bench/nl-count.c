/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD=nl-count.so PROGRAM: counts what PROGRAM asks the kernel to change, for the
 * restart figure of bench/run (a restart with nothing changed must change nothing).
 *
 * Netlink: every message sent on a netlink socket (sendmsg, sendto, send) is a request; it is a
 * write unless it is a dump or a get (rtnetlink RTM_GET*, xfrm XFRM_MSG_GET*, generic netlink's
 * controller lookups and WireGuard's get). BPF: bpf() commands that change a map, a program or
 * an attachment are writes; lookups, iteration and object gets are not. libbpf makes every
 * bpf() call through syscall(), libnl every send through sendmsg(), so interposing those three
 * libc entry points sees all of them.
 *
 * At exit the counts go to $MC_NLCOUNT_FILE (appended, one line):
 *   netlink_sends N netlink_messages N netlink_writes N bpf_calls N bpf_writes N
 * and for each kind of write, so a non-zero count says what was sent:
 *   write route|xfrm|generic NETLINK-TYPE COUNT
 *   write bpf BPF-COMMAND COUNT
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/xfrm.h>

static atomic_ulong sends, messages, writes, bpf_calls, bpf_writes;
/* writes by protocol (NETLINK_ROUTE, _XFRM, _GENERIC) and type (< 256) */
static atomic_ulong by_type[3][256];
/* bpf() writes by command */
static atomic_ulong by_cmd[64];

static int protocol_slot(int protocol)
{
	return protocol == NETLINK_ROUTE ? 0 : protocol == NETLINK_XFRM ? 1 :
	       protocol == NETLINK_GENERIC ? 2 : -1;
}

static int is_read(int protocol, const struct nlmsghdr *h)
{
	if (h->nlmsg_flags & NLM_F_DUMP)
		return 1;
	switch (protocol) {
	case NETLINK_ROUTE:
		return h->nlmsg_type >= RTM_BASE && (h->nlmsg_type - RTM_BASE) % 4 == 2;
	case NETLINK_XFRM:
		return h->nlmsg_type == XFRM_MSG_GETSA || h->nlmsg_type == XFRM_MSG_GETPOLICY ||
		       h->nlmsg_type == XFRM_MSG_GETAE || h->nlmsg_type == XFRM_MSG_GETSADINFO ||
		       h->nlmsg_type == XFRM_MSG_GETSPDINFO;
	case NETLINK_GENERIC: {
		const struct genlmsghdr *g = NLMSG_DATA(h);

		/* the controller's family lookup; WireGuard's WG_CMD_GET_DEVICE (0) is a dump */
		return h->nlmsg_type == GENL_ID_CTRL ||
		       (h->nlmsg_len >= NLMSG_LENGTH(sizeof(*g)) && g->cmd == 0);
	}
	}
	return 0;
}

static void count_buffer(int fd, const void *buf, size_t len)
{
	int protocol, domain;
	socklen_t n = sizeof(domain);
	unsigned left = (unsigned)len;

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &n) < 0 || domain != AF_NETLINK)
		return;
	n = sizeof(protocol);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &n) < 0)
		return;
	atomic_fetch_add(&sends, 1);
	for (const struct nlmsghdr *h = buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
		int slot = protocol_slot(protocol);

		atomic_fetch_add(&messages, 1);
		if (!(h->nlmsg_flags & NLM_F_REQUEST) || is_read(protocol, h))
			continue;
		atomic_fetch_add(&writes, 1);
		if (slot >= 0 && h->nlmsg_type < 256)
			atomic_fetch_add(&by_type[slot][h->nlmsg_type], 1);
	}
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static ssize_t (*next)(int, const struct msghdr *, int);

	if (!next)
		next = (ssize_t(*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
	/* libnl sends one buffer per call; a message never spans two iovecs here */
	for (size_t i = 0; msg && i < msg->msg_iovlen; i++)
		count_buffer(fd, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
	return next(fd, msg, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
	       socklen_t tolen)
{
	static ssize_t (*next)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);

	if (!next)
		next = (ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *,
				   socklen_t))dlsym(RTLD_NEXT, "sendto");
	count_buffer(fd, buf, len);
	return next(fd, buf, len, flags, to, tolen);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	return sendto(fd, buf, len, flags, NULL, 0);
}

long syscall(long number, ...)
{
	static long (*next)(long, ...);
	long a[6];
	va_list ap;

	if (!next)
		next = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == __NR_bpf) {
		atomic_fetch_add(&bpf_calls, 1);
		switch (a[0]) {
		case BPF_MAP_UPDATE_ELEM:
		case BPF_MAP_DELETE_ELEM:
		case BPF_MAP_CREATE:
		case BPF_PROG_LOAD:
		case BPF_OBJ_PIN:
		case BPF_PROG_ATTACH:
		case BPF_PROG_DETACH:
		case BPF_LINK_CREATE:
		case BPF_LINK_UPDATE:
		case BPF_LINK_DETACH:
		case BPF_MAP_UPDATE_BATCH:
		case BPF_MAP_DELETE_BATCH:
			atomic_fetch_add(&bpf_writes, 1);
			atomic_fetch_add(&by_cmd[a[0]], 1);
			break;
		}
	}
	return next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

__attribute__((destructor)) static void report(void)
{
	static const char *const protocols[] = { "route", "xfrm", "generic" };
	const char *path = getenv("MC_NLCOUNT_FILE");
	FILE *f = path ? fopen(path, "a") : NULL;

	if (!f)
		return;
	fprintf(f, "netlink_sends %lu netlink_messages %lu netlink_writes %lu bpf_calls %lu "
		"bpf_writes %lu\n", atomic_load(&sends), atomic_load(&messages),
		atomic_load(&writes), atomic_load(&bpf_calls), atomic_load(&bpf_writes));
	for (int p = 0; p < 3; p++)
		for (int t = 0; t < 256; t++)
			if (atomic_load(&by_type[p][t]))
				fprintf(f, "write %s %d %lu\n", protocols[p], t,
					atomic_load(&by_type[p][t]));
	for (int c = 0; c < 64; c++)
		if (atomic_load(&by_cmd[c]))
			fprintf(f, "write bpf %d %lu\n", c, atomic_load(&by_cmd[c]));
	fclose(f);
}
