/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the attach plugins tc and tcx share (docs/attach.md): everything but the attach method.
 * Each plugin is a descriptor whose init hands its struct mci_method to mci_init(); the rest
 * of the lifecycle and the dataplane ops are these, unchanged:
 *
 *   init     opens the skeleton with its maps pinned under [attach] bpffs_dir (reused across
 *            restarts, replaced when their layout is older), loads it, writes the config map,
 *            reads the maps back into the in-memory model, registers the stats collector
 *   start    follows interfaces through rtnetlink and attaches the programs (mci_iface.c)
 *   stop     leaves programs and pins in place (a restart is hitless)
 *   cleanup  detaches exactly our programs and removes our pins
 *   dataplane ops   keep the maps equal to the desired state, one syscall per change (maps.c)
 */
#ifndef MC_ATTACH_H
#define MC_ATTACH_H

#include <stdbool.h>

#include <meshcrypt/host.h>
#include <meshcrypt/plugin.h>

enum mci_dir {
	MCI_INGRESS = 0,
	MCI_EGRESS = 1,
};
#define MCI_N_DIRS 2

struct mci_attach;

/* How programs are attached to an interface: a tc filter or a tcx link. */
struct mci_method {
	/* Whether this kernel can attach this way: 0 or -EOPNOTSUPP (init then fails with it, so
	 * [attach] plugin = auto tries the next method). NULL: always. */
	int (*probe)(struct mci_attach *a);
	/* Attaches prog_fd at dir of ifindex, replacing our earlier program there in place (no
	 * moment without one, no second copy). 0 or -errno. */
	int (*attach)(struct mci_attach *a, int ifindex, enum mci_dir dir, int prog_fd);
	/* Removes our program at dir of ifindex: 0, or -ENOENT when there is none. */
	int (*detach)(struct mci_attach *a, int ifindex, enum mci_dir dir);
	/* The interface is gone (the kernel dropped its programs): forget what refers to it.
	 * NULL: nothing to do. */
	void (*forget)(struct mci_attach *a, int ifindex);
	/* After a full interface dump: remove what refers to interfaces that are not attached
	 * now (mci_attached()); with none attached (cleanup), all of it. 0 or -errno. NULL: none. */
	int (*prune)(struct mci_attach *a);
	/* Extra cleanup once nothing is attached (tcx: the links directory). NULL: none. */
	void (*cleanup)(struct mci_attach *a);
};

/* The lifecycle and dataplane ops of both plugins. `method` is static and outlives the
 * plugin. */
int mci_init(struct mc_plugin_ctx *ctx, const struct mci_method *method);
int mci_start(struct mc_plugin_ctx *ctx);
void mci_stop(struct mc_plugin_ctx *ctx);
void mci_fini(struct mc_plugin_ctx *ctx);
int mci_cleanup(struct mc_plugin_ctx *ctx);
extern const struct mc_dataplane_ops mci_dataplane_ops;

/* For the methods: [attach] bpffs_dir, valid until fini. */
const char *mci_bpffs_dir(const struct mci_attach *a);
/* For the methods: whether we hold a program at dir of ifindex now. */
bool mci_attached(const struct mci_attach *a, int ifindex, enum mci_dir dir);
/* For the methods: the plugin's context, e.g. to log at debug. */
struct mc_plugin_ctx *mci_ctx(const struct mci_attach *a);

#endif
