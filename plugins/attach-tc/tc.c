/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attach plugin "tc": the programs as direct-action BPF filters on the clsact qdisc, for
 * kernels without tcx (before 6.6). Our filters have their own handle and priority, so they
 * sit beside anyone else's: we replace only ours, delete only ours, and never create more
 * than the clsact qdisc, which we never remove (others may hang filters on it).
 */
#include <errno.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "attach.h"
#include "internal.h"

/* "mc": our filter's handle and priority on every hook. Lower priorities run first; most
 * tools' filters take 1 or the kernel's automatic 49152 and up. */
#define MCI_TC_HANDLE 0x6d63
#define MCI_TC_PRIORITY 0x6d63

/* libbpf refuses a hook whose padding is not zero: memset, not an initialiser. */
static void hook_of(struct bpf_tc_hook *hook, int ifindex, enum mci_dir dir)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = ifindex;
	hook->attach_point = dir == MCI_INGRESS ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

/* The id of the program our filter at this hook runs: 0 and *id, or -ENOENT. */
static int our_filter(int ifindex, enum mci_dir dir, __u32 *id)
{
	struct bpf_tc_hook hook;
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = MCI_TC_HANDLE, .priority = MCI_TC_PRIORITY);
	int r;

	hook_of(&hook, ifindex, dir);
	r = bpf_tc_query(&hook, &opts);

	/* No clsact qdisc (EINVAL) or no such filter (ENOENT): not ours to have. */
	if (r == -EINVAL || r == -ENOENT)
		return -ENOENT;
	if (r == 0)
		*id = opts.prog_id;
	return r;
}

static int tc_attach(struct mci_attach *a, int ifindex, enum mci_dir dir, int prog_fd)
{
	struct bpf_tc_hook hook;
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = MCI_TC_HANDLE, .priority = MCI_TC_PRIORITY,
		    .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
	__u32 id = 0;
	int r;

	(void)a;
	hook_of(&hook, ifindex, dir);
	/* A restart's filter that runs this very program: nothing to write. */
	if (our_filter(ifindex, dir, &id) == 0 && mci_prog_is(id, prog_fd))
		return 0;
	r = bpf_tc_hook_create(&hook);
	if (r < 0 && r != -EEXIST)
		return r;
	/* Replaces our filter in place when there is one: no moment without a program. */
	return bpf_tc_attach(&hook, &opts);
}

static int tc_detach(struct mci_attach *a, int ifindex, enum mci_dir dir)
{
	struct bpf_tc_hook hook;
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = MCI_TC_HANDLE, .priority = MCI_TC_PRIORITY);
	__u32 id;
	int r;

	(void)a;
	hook_of(&hook, ifindex, dir);
	/* Look first: a delete where there is nothing would be a netlink write for nothing. */
	r = our_filter(ifindex, dir, &id);
	if (r < 0)
		return r;
	r = bpf_tc_detach(&hook, &opts);
	return r == -EINVAL ? -ENOENT : r;
}

static const struct mci_method tc_method = {
	.attach = tc_attach,
	.detach = tc_detach,
};

static int tc_init(struct mc_plugin_ctx *ctx)
{
	return mci_init(ctx, &tc_method);
}

MC_PLUGIN_DEFINE(
	.name = "tc",
	.kind = MC_PLUGIN_ATTACH,
	.description = "eBPF programs as tc filters on clsact (any kernel with clsact)",
	.version = "1.0",
	.init = tc_init,
	.start = mci_start,
	.stop = mci_stop,
	.fini = mci_fini,
	.cleanup = mci_cleanup,
	.dataplane = &mci_dataplane_ops);
