/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The generic netlink socket of the "wireguard" family (genl.h): the only code of the backend
 * that talks to WireGuard; replies are read into a locked buffer that is wiped after use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/wireguard.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/socket.h>

#include "genl.h"
#include "nl-request.h"

#define RECV_BUFFER (1024 * 1024)

struct mcw_genl {
	struct nl_sock *sk;
	int family;
	uint8_t *buf;
};

struct mcw_genl *mcw_genl_open(void)
{
	struct mcw_genl *g = calloc(1, sizeof(*g));
	int err = ENOMEM;

	if (!g)
		return NULL;
	g->buf = mmap(NULL, RECV_BUFFER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->buf == MAP_FAILED)
		g->buf = NULL;
	g->sk = nl_socket_alloc();
	if (g->buf && g->sk) {
		(void)mlock(g->buf, RECV_BUFFER);
		(void)madvise(g->buf, RECV_BUFFER, MADV_DONTDUMP);
		err = EPROTONOSUPPORT;
		if (genl_connect(g->sk) == 0) {
			(void)nl_socket_set_buffer_size(g->sk, RECV_BUFFER, RECV_BUFFER);
			g->family = genl_ctrl_resolve(g->sk, WG_GENL_NAME);
			err = g->family < 0 ? ENOENT : 0;
		}
	}
	if (err) {
		mcw_genl_close(g);
		errno = err;
		return NULL;
	}
	return g;
}

void mcw_genl_close(struct mcw_genl *g)
{
	if (!g)
		return;
	if (g->sk)
		nl_socket_free(g->sk);
	if (g->buf) {
		explicit_bzero(g->buf, RECV_BUFFER);
		munmap(g->buf, RECV_BUFFER);
	}
	free(g);
}

int mcw_genl_family(const struct mcw_genl *g)
{
	return g->family;
}

int mcw_genl_transact(struct mcw_genl *g, struct nl_msg *msg)
{
	return mcn_transact(g->sk, msg, g->buf, RECV_BUFFER);
}

static int parse_into(const struct nlmsghdr *h, void *userdata)
{
	return mcw_device_parse(h, userdata);
}

int mcw_genl_get_device(struct mcw_genl *g, const char *ifname, struct mcw_device *d)
{
	struct nl_msg *msg = nlmsg_alloc();

	memset(d, 0, sizeof(*d));
	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, g->family, 0, NLM_F_DUMP,
			 WG_CMD_GET_DEVICE, WG_GENL_VERSION) ||
	    nla_put_string(msg, WGDEVICE_A_IFNAME, ifname) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return mcn_dump(g->sk, msg, g->buf, RECV_BUFFER, parse_into, d);
}
