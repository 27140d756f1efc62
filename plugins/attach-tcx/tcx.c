/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attach plugin "tcx": the programs as tcx links (kernel 6.6 and later), which cannot clash
 * with anyone else's filters and are replaced atomically by a link update. Each link is pinned
 * as <bpffs_dir>/links/<ifindex>-ingress|egress, so it outlives the agent and a restart finds
 * it again.
 *
 * Debian 12 builds against libbpf 1.1 and the 6.1 UAPI headers, which know neither the tcx
 * attach types nor bpf_tcx_opts: the constants are defined here and the plain
 * bpf_link_create() (target = ifindex) is used; support is probed at init.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "attach.h"
#include "internal.h"

/* enum bpf_attach_type and enum bpf_link_type of Linux 6.6. */
#define MCI_BPF_TCX_INGRESS 46
#define MCI_BPF_TCX_EGRESS 47
#define MCI_BPF_LINK_TYPE_TCX 11

static const char *const dir_names[MCI_N_DIRS] = { "ingress", "egress" };

static enum bpf_attach_type tcx_type(enum mci_dir dir)
{
	return (enum bpf_attach_type)(dir == MCI_INGRESS ? MCI_BPF_TCX_INGRESS :
							    MCI_BPF_TCX_EGRESS);
}

static int links_dir(const struct mci_attach *a, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/links", mci_bpffs_dir(a));

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int link_path(const struct mci_attach *a, int ifindex, enum mci_dir dir, char *buf,
		     size_t size)
{
	int n = snprintf(buf, size, "%s/links/%d-%s", mci_bpffs_dir(a), ifindex, dir_names[dir]);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/*
 * The pinned link of ifindex/dir, if it still is a tcx link on that interface (an interface
 * removed detaches its links, and its ifindex may be reused): its fd, -ENOENT, or -errno.
 */
static int pinned_link(const struct mci_attach *a, int ifindex, enum mci_dir dir,
		       __u32 *prog_id)
{
	/* struct bpf_link_info as of 6.6: the tcx member is the union's first two words. */
	struct {
		struct bpf_link_info info;
		char room[64];
	} li;
	const __u32 *tcx = (const __u32 *)((const char *)&li.info + offsetof(struct bpf_link_info,
									       raw_tracepoint));
	__u32 len = sizeof(li);
	char path[PATH_MAX];
	int fd, r = link_path(a, ifindex, dir, path, sizeof(path));

	if (r < 0)
		return r;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return fd;
	memset(&li, 0, sizeof(li));
	r = bpf_obj_get_info_by_fd(fd, &li, &len);
	if (r == 0 && (li.info.type != MCI_BPF_LINK_TYPE_TCX || tcx[0] != (__u32)ifindex ||
		       tcx[1] != (__u32)tcx_type(dir))) {
		/* Stale: the interface it was made for is gone. */
		unlink(path);
		r = -ENOENT;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	*prog_id = li.info.prog_id;
	return fd;
}

static int tcx_probe(struct mci_attach *a)
{
	__u32 count = 0;
	unsigned int lo = if_nametoindex("lo");
	int r;

	(void)a;
	if (!lo)
		return -errno;
	r = bpf_prog_query((int)lo, tcx_type(MCI_INGRESS), 0, NULL, NULL, &count);
	/* Kernels before 6.6 know no such attach type. */
	return r == -EINVAL ? -EOPNOTSUPP : r;
}

static int tcx_attach(struct mci_attach *a, int ifindex, enum mci_dir dir, int prog_fd)
{
	char path[PATH_MAX], dirpath[PATH_MAX];
	__u32 prog_id = 0;
	int fd, r;

	fd = pinned_link(a, ifindex, dir, &prog_id);
	if (fd >= 0) {
		/* A restart's link: keep it when it runs this program, else swap the program in
		 * atomically. */
		r = mci_prog_is(prog_id, prog_fd) ? 0 : bpf_link_update(fd, prog_fd, NULL);
		close(fd);
		if (r != -ENOLINK)
			return r;
	} else if (fd != -ENOENT) {
		return fd;
	}
	r = links_dir(a, dirpath, sizeof(dirpath));
	if (r == 0)
		r = link_path(a, ifindex, dir, path, sizeof(path));
	if (r < 0)
		return r;
	if (mkdir(dirpath, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = bpf_link_create(prog_fd, ifindex, tcx_type(dir), NULL);
	if (fd < 0)
		return fd;
	unlink(path);
	r = bpf_obj_pin(fd, path);
	/* Unpinned, the link would go with our fd: detach it rather than leave it behind. */
	if (r < 0)
		bpf_link_detach(fd);
	close(fd);
	return r;
}

static int tcx_detach(struct mci_attach *a, int ifindex, enum mci_dir dir)
{
	char path[PATH_MAX];
	__u32 prog_id;
	int fd = pinned_link(a, ifindex, dir, &prog_id), r;

	if (fd < 0)
		return fd;
	r = bpf_link_detach(fd);
	close(fd);
	if (r < 0 && r != -ENOLINK)
		return r;
	link_path(a, ifindex, dir, path, sizeof(path));
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static void tcx_forget(struct mci_attach *a, int ifindex)
{
	char path[PATH_MAX];

	for (int dir = 0; dir < MCI_N_DIRS; dir++)
		if (link_path(a, ifindex, dir, path, sizeof(path)) == 0)
			unlink(path);
}

/* Our pins of links that we do not hold now: of interfaces gone while we were not running,
 * or every one at cleanup. */
static int tcx_prune(struct mci_attach *a)
{
	char dirpath[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int r = links_dir(a, dirpath, sizeof(dirpath)), first = 0;

	if (r < 0)
		return r;
	d = opendir(dirpath);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		char dirname[16];
		int ifindex;

		if (sscanf(de->d_name, "%d-%15s", &ifindex, dirname) != 2)
			continue;
		for (int dir = 0; dir < MCI_N_DIRS; dir++) {
			if (strcmp(dirname, dir_names[dir]) != 0 || mci_attached(a, ifindex, dir))
				continue;
			r = tcx_detach(a, ifindex, dir);
			if (r < 0 && r != -ENOENT && first == 0)
				first = r;
		}
	}
	closedir(d);
	return first;
}

static void tcx_cleanup(struct mci_attach *a)
{
	char dirpath[PATH_MAX];

	if (links_dir(a, dirpath, sizeof(dirpath)) == 0)
		rmdir(dirpath);
}

static const struct mci_method tcx_method = {
	.probe = tcx_probe,
	.attach = tcx_attach,
	.detach = tcx_detach,
	.forget = tcx_forget,
	.prune = tcx_prune,
	.cleanup = tcx_cleanup,
};

static int tcx_init(struct mc_plugin_ctx *ctx)
{
	return mci_init(ctx, &tcx_method);
}

MC_PLUGIN_DEFINE(
	.name = "tcx",
	.kind = MC_PLUGIN_ATTACH,
	.description = "eBPF programs as tcx links (Linux 6.6 and later)",
	.version = "1.0",
	.init = tcx_init,
	.start = mci_start,
	.stop = mci_stop,
	.fini = mci_fini,
	.cleanup = mci_cleanup,
	.dataplane = &mci_dataplane_ops);
