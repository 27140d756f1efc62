/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lifecycle of the attach plugins (attach.h): the skeleton, its pinned maps, the config
 * map and the stats collector. Interfaces are iface.c's, map contents maps.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "meshcrypt-maps.h"
#include "meshcrypt.skel.h"

struct mci_attach *mci_get(struct mc_plugin_ctx *ctx)
{
	return ctx->host->get_data(ctx);
}

const char *mci_bpffs_dir(const struct mci_attach *a)
{
	return a->bpffs_dir;
}

struct mc_plugin_ctx *mci_ctx(const struct mci_attach *a)
{
	return a->ctx;
}

/* ---- programs ---- */

static int prog_info(int fd, struct bpf_prog_info *info, __u32 *map_ids, __u32 n)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	info->nr_map_ids = n;
	info->map_ids = (__u64)(uintptr_t)map_ids;
	return bpf_obj_get_info_by_fd(fd, info, &len);
}

bool mci_prog_is(__u32 prog_id, int prog_fd)
{
	__u32 ids_have[16], ids_want[16];
	struct bpf_prog_info have, want;
	bool same;
	int fd;

	/* Our own pinned program: known by its id, which needs no CAP_SYS_ADMIN (the unit does
	 * not grant it). */
	if (prog_info(prog_fd, &want, ids_want, 16) < 0)
		return false;
	if (want.id == prog_id)
		return true;
	/* Another instance of the same program: opening it by id needs CAP_SYS_ADMIN; without,
	 * it is taken for foreign and replaced by ours, which is correct, only not needed. */
	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)
		return false;
	/* The tag hashes the instructions with the map references blanked: same code. The map
	 * ids tell whether it uses the maps we fill. */
	same = prog_info(fd, &have, ids_have, 16) == 0 &&
	       memcmp(have.tag, want.tag, sizeof(have.tag)) == 0 &&
	       have.nr_map_ids == want.nr_map_ids && have.nr_map_ids <= 16 &&
	       memcmp(ids_have, ids_want, have.nr_map_ids * sizeof(__u32)) == 0;
	close(fd);
	return same;
}

/* ---- libbpf's messages ---- */

/* libbpf has one print callback per process; warnings go to our log at debug, since the
 * caller reports the error that matters once, with context (a failed load's verifier log). */
static struct mc_plugin_ctx *libbpf_log_ctx;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	struct mc_plugin_ctx *ctx = libbpf_log_ctx;

	char line[512];
	size_t n;

	if (!ctx || level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	ctx->host->log(ctx, LOG_DEBUG, "%s", line);
	return 0;
}

/* ---- the pinned maps ---- */

static const char *const pinned_maps[] = {
	MC_BPF_MAP_LOCAL_PODS, MC_BPF_MAP_REMOTE_PODS,	 MC_BPF_MAP_LOCAL_CIDRS, MC_BPF_MAP_PEERS,
	MC_BPF_MAP_PEER_PREFIXES, MC_BPF_MAP_CONFIG, MC_BPF_MAP_STATS,
};

static int pin_path(const struct mci_attach *a, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", a->bpffs_dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Removes our map pins (not the directory): maps still referenced by attached programs live
 * on until those are replaced. 0 or the first -errno other than ENOENT. */
static int unpin_maps(const struct mci_attach *a)
{
	char path[PATH_MAX];
	int r = 0;

	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		if (pin_path(a, pinned_maps[i], path, sizeof(path)) == 0 && unlink(path) < 0 &&
		    errno != ENOENT && r == 0)
			r = -errno;
	}
	return r;
}

/* The layout version the pinned config map records: 0 when none is pinned or it was never
 * written, -errno when it cannot be read. */
static int pinned_layout(const struct mci_attach *a)
{
	struct mc_bpf_config conf = { 0 };
	char path[PATH_MAX];
	__u32 zero = 0;
	int fd, r;

	r = pin_path(a, MC_BPF_MAP_CONFIG, path, sizeof(path));
	if (r < 0)
		return r;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	r = bpf_map_lookup_elem(fd, &zero, &conf);
	close(fd);
	/* Another value size (an older struct) is an older layout too. */
	if (r == -EINVAL || r == -EFAULT)
		return -ESTALE;
	return r < 0 ? r : (int)conf.layout_version;
}

/* Makes bpffs_dir a directory on a bpf filesystem, creating it (and missing parents). */
static int make_pin_dir(struct mci_attach *a)
{
	char path[PATH_MAX];
	struct statfs fs;

	snprintf(path, sizeof(path), "%s", a->bpffs_dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (statfs(path, &fs) < 0)
		return -errno;
	return fs.f_type == BPF_FS_MAGIC ? 0 : -ENOTDIR;
}

static int open_and_load(struct mci_attach *a)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = a->bpffs_dir);
	int r;

	a->skel = meshcrypt_bpf__open_opts(&opts);
	if (!a->skel)
		return -errno;
	r = meshcrypt_bpf__load(a->skel);
	if (r < 0) {
		meshcrypt_bpf__destroy(a->skel);
		a->skel = NULL;
	}
	return r;
}

/*
 * Opens and loads the skeleton, its maps pinned under bpffs_dir: the maps a previous run
 * pinned are reused (so are their contents) unless their layout is another one, in which
 * case they are unpinned first and made anew.
 */
static int load_skeleton(struct mci_attach *a)
{
	struct mc_plugin_ctx *ctx = a->ctx;
	int layout = pinned_layout(a), r;

	if (layout != 0 && layout != MC_BPF_LAYOUT_VERSION) {
		if (layout > 0)
			ctx->host->log(ctx, LOG_NOTICE,
				       "the maps pinned in %s have layout %d, this build uses %d: "
				       "replacing them",
				       a->bpffs_dir, layout, MC_BPF_LAYOUT_VERSION);
		else
			ctx->host->log(ctx, LOG_NOTICE,
				       "the config map pinned in %s is unreadable (%s): replacing "
				       "the pinned maps",
				       a->bpffs_dir, strerror(-layout));
		r = unpin_maps(a);
		if (r < 0)
			return r;
	}
	r = open_and_load(a);
	/* libbpf refuses to reuse a pinned map whose definition differs (a development build of
	 * the same layout version, say): one more try without the old pins. */
	if (r == -EINVAL && layout == MC_BPF_LAYOUT_VERSION) {
		ctx->host->log(ctx, LOG_NOTICE,
			       "the maps pinned in %s do not match this build's: replacing them",
			       a->bpffs_dir);
		r = unpin_maps(a);
		if (r == 0)
			r = open_and_load(a);
	}
	return r;
}

static uint32_t ctz32(uint32_t v)
{
	return v ? (uint32_t)__builtin_ctz(v) : 0;
}

static uint32_t parse_leak_guard(const char *s)
{
	if (s && strcmp(s, "count") == 0)
		return MC_BPF_GUARD_COUNT;
	if (s && strcmp(s, "off") == 0)
		return MC_BPF_GUARD_OFF;
	return MC_BPF_GUARD_DROP;
}

/* Writes the config map, unless it already holds exactly this (a restart). */
static int write_config(struct mci_attach *a)
{
	const struct mc_dataplane_config *dc = a->ctx->host->dataplane_config(a->ctx);
	struct mc_bpf_config want = {
		.layout_version = MC_BPF_LAYOUT_VERSION,
		.encrypt_mark = dc->encrypt_mark,
		.decrypt_mark = dc->decrypt_mark,
		.role_mask = dc->role_mask,
		.peer_mask = dc->peer_mask,
		.peer_shift = ctz32(dc->peer_mask),
		.inbound = dc->inbound == MC_INBOUND_PERMIT ? MC_BPF_INBOUND_PERMIT :
							      MC_BPF_INBOUND_REQUIRE,
		.leak_guard = a->leak_guard,
	};
	struct mc_bpf_config have;
	int fd = bpf_map__fd(a->skel->maps.config);
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &have) == 0 && memcmp(&have, &want, sizeof(want)) == 0)
		return 0;
	return bpf_map_update_elem(fd, &zero, &want, BPF_ANY);
}

/* ---- stats ---- */

static int collect_stats(struct mc_metrics_writer *w, void *userdata)
{
	static const struct {
		const char *family, *help;
		size_t offset;
	} counters[] = {
		{ "meshcrypt_bpf_marked_total",
		  "packets from managed local pods marked for encryption (pod ingress)",
		  offsetof(struct mc_bpf_stats, marked) },
		{ "meshcrypt_bpf_esp_in_total", "ESP packets from known peers marked (node ingress)",
		  offsetof(struct mc_bpf_stats, esp_in) },
		{ "meshcrypt_bpf_decrypted_seen_total",
		  "decrypted packets seen with the decrypt mark (node and tunnel ingress)",
		  offsetof(struct mc_bpf_stats, decrypted_seen) },
		{ "meshcrypt_bpf_strict_drop_total",
		  "plaintext from managed remote pods to local pods dropped (inbound = require)",
		  offsetof(struct mc_bpf_stats, strict_drop) },
		{ "meshcrypt_bpf_leak_dropped_total",
		  "plaintext from managed local pods to peer pods stopped by the leak guard "
		  "(counted only, in leak_guard = count)",
		  offsetof(struct mc_bpf_stats, leak_dropped) },
		{ "meshcrypt_bpf_passed_total",
		  "packets looked at and passed unchanged (node ingress and guard)",
		  offsetof(struct mc_bpf_stats, passed) },
	};
	struct mci_attach *a = userdata;
	int ncpus = libbpf_num_possible_cpus(), r;
	struct mc_bpf_stats *v, sum = { 0 };
	__u32 zero = 0;

	if (ncpus <= 0)
		return ncpus < 0 ? ncpus : -EINVAL;
	v = calloc((size_t)ncpus, sizeof(*v));
	if (!v)
		return -ENOMEM;
	r = bpf_map_lookup_elem(bpf_map__fd(a->skel->maps.stats), &zero, v);
	for (int cpu = 0; r == 0 && cpu < ncpus; cpu++) {
		sum.marked += v[cpu].marked;
		sum.esp_in += v[cpu].esp_in;
		sum.decrypted_seen += v[cpu].decrypted_seen;
		sum.strict_drop += v[cpu].strict_drop;
		sum.leak_dropped += v[cpu].leak_dropped;
		sum.passed += v[cpu].passed;
	}
	free(v);
	for (size_t i = 0; r == 0 && i < sizeof(counters) / sizeof(counters[0]); i++) {
		__u64 value;

		/* memcpy: uint64_t is not __u64 to the aliasing rules. */
		memcpy(&value, (const char *)&sum + counters[i].offset, sizeof(value));
		r = mc_metrics_write_counter(w, counters[i].family, counters[i].help, NULL, 0,
					     (double)value);
	}
	return r;
}

/* ---- lifecycle ---- */

int mci_init(struct mc_plugin_ctx *ctx, const struct mci_method *method)
{
	const struct mc_host *h = ctx->host;
	struct mci_attach *a;
	const char *dir;
	int r;

	if (!MC_HOST_HAS(h, dataplane_config) || !MC_HOST_HAS(h, pod_state)) {
		h->log(ctx, LOG_ERR, "this meshcryptd is too old: the attach plugins need ABI 1.1");
		return -EPROTO;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	h->set_data(ctx, a);
	a->ctx = ctx;
	a->method = method;
	a->nl_fd = -1;
	a->event_fd = -1;
	pthread_mutex_init(&a->lock, NULL);
	dir = h->config_global(ctx, "attach", "bpffs_dir");
	a->pod_interfaces = h->config_global(ctx, "attach", "pod_interfaces");
	a->uplinks = h->config_global(ctx, "attach", "uplinks");
	a->leak_guard = parse_leak_guard(h->config_global(ctx, "attach", "leak_guard"));
	a->tunnel_interfaces = h->config_global(ctx, "attach", "tunnel_interfaces");
	if (!a->pod_interfaces)
		a->pod_interfaces = "veth*,lxc*,cali*,mcpod*";
	if (!a->tunnel_interfaces)
		a->tunnel_interfaces = "mcwg0";
	if (!a->uplinks)
		a->uplinks = "auto";
	if (snprintf(a->bpffs_dir, sizeof(a->bpffs_dir), "%s",
		     dir ? dir : "/sys/fs/bpf/meshcrypt") >= (int)sizeof(a->bpffs_dir))
		return -ENAMETOOLONG;
	/* Strip trailing slashes: pin paths are bpffs_dir + "/" + name. */
	for (size_t n = strlen(a->bpffs_dir); n > 1 && a->bpffs_dir[n - 1] == '/'; n--)
		a->bpffs_dir[n - 1] = '\0';

	libbpf_log_ctx = ctx;
	libbpf_set_print(libbpf_print);
	if (method->probe && (r = method->probe(a)) < 0) {
		h->log(ctx, r == -EOPNOTSUPP ? LOG_INFO : LOG_ERR,
		       "this kernel cannot attach programs this way: %s", strerror(-r));
		return r;
	}
	r = make_pin_dir(a);
	if (r < 0) {
		h->log(ctx, LOG_ERR, "[attach] bpffs_dir %s: %s", a->bpffs_dir,
		       r == -ENOTDIR ? "not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)" :
				       strerror(-r));
		return r;
	}
	r = load_skeleton(a);
	if (r < 0) {
		h->log(ctx, LOG_ERR, "loading the eBPF programs and maps (%s) failed: %s%s",
		       a->bpffs_dir, strerror(-r),
		       r == -EPERM ? " (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)" : "");
		return r;
	}
	r = write_config(a);
	if (r == 0)
		r = mci_maps_setup(a);
	if (r < 0) {
		h->log(ctx, LOG_ERR, "setting up the maps in %s failed: %s", a->bpffs_dir,
		       strerror(-r));
		return r;
	}
	if (h->metrics(ctx)) {
		a->collector = mc_metrics_register(h->metrics(ctx), "attach/bpf", collect_stats, a);
		if (!a->collector) {
			r = -errno;
			h->log(ctx, LOG_ERR, "registering the BPF counters failed: %s",
			       strerror(-r));
			return r;
		}
	}
	return 0;
}

int mci_start(struct mc_plugin_ctx *ctx)
{
	struct mci_attach *a = mci_get(ctx);
	int r = mci_ifaces_start(a);

	if (r < 0)
		ctx->host->log(ctx, LOG_ERR, "following the interfaces failed: %s", strerror(-r));
	return r;
}

void mci_stop(struct mc_plugin_ctx *ctx)
{
	struct mci_attach *a = mci_get(ctx);

	if (a)
		mci_ifaces_stop(a);
}

void mci_fini(struct mc_plugin_ctx *ctx)
{
	struct mci_attach *a = mci_get(ctx);

	if (!a)
		return;
	mc_metrics_unregister(a->collector);
	mci_ifaces_stop(a);
	mci_ifaces_free(a);
	mci_maps_free(a);
	free(a->local_addrs);
	/* Programs stay attached (tc filters and pinned tcx links hold them), maps stay pinned:
	 * what the dataplane does survives the agent. */
	meshcrypt_bpf__destroy(a->skel);
	pthread_mutex_destroy(&a->lock);
	if (libbpf_log_ctx == ctx)
		libbpf_log_ctx = NULL;
	free(a);
	ctx->host->set_data(ctx, NULL);
}

int mci_cleanup(struct mc_plugin_ctx *ctx)
{
	struct mci_attach *a = mci_get(ctx);
	int r = mci_ifaces_cleanup(a), r2;

	if (r < 0) {
		ctx->host->log(ctx, LOG_ERR, "detaching our programs failed: %s", strerror(-r));
		return r;
	}
	if (a->method->cleanup)
		a->method->cleanup(a);
	r = unpin_maps(a);
	r2 = rmdir(a->bpffs_dir) < 0 && errno != ENOENT ? -errno : 0;
	if (r < 0 || r2 < 0) {
		ctx->host->log(ctx, LOG_ERR, "removing our pins in %s failed: %s", a->bpffs_dir,
			       strerror(-(r < 0 ? r : r2)));
		return r < 0 ? r : r2;
	}
	ctx->host->log(ctx, LOG_INFO, "removed our programs and the pins in %s", a->bpffs_dir);
	return 0;
}
