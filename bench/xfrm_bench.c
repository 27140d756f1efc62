/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Node churn through the IPsec backend (issue 15, BENCHMARKS.md "Dataplane programming"): what
 * a peer added, re-keyed or removed costs in kernel objects and netlink messages, how long N
 * peers take to converge from scratch, what a resync and a restart with nothing changed send,
 * and the same objects through iproute2's `ip -batch`, side by side.
 *
 *   xfrm_bench [-n PEERS] [-r ROUNDS] [-k | -p] [-6]
 *
 * The plugin's own sources are linked in (bench/meson.build) and driven as the engine drives
 * them, with the unit tests' fake host: local_apply, peer_apply for every peer, gc. Its one
 * kernel call, mcx_nl_transact(), is wrapped (--wrap) to count the messages each step sends.
 * Everything runs in a network namespace of its own, so only its objects are there. States
 * need ESP and AES-GCM in the kernel: run it in the lab VM (bench/run does) where the host
 * lacks them; without them it exits 77.
 *
 * -k (no kernel): the wrapper accepts every message without sending it, so only the
 * userspace cost remains; for the CPU time of a resync, which sends nothing anyway, on a
 * kernel without ESP. -p (policies only): states are accepted without being sent, policies go
 * to the kernel, and ip -batch gets the policy lines only: the comparison on a kernel that
 * has xfrm but no ESP (meshcrypt still derives every state's key, so it is not flattered). -6: every peer and the node have an IPv6 address and an IPv6 pod CIDR
 * too (twice the objects). ROUNDS (default 3): convergence from scratch is timed that many
 * times in turn with `ip -batch`, medians printed.
 *
 * Output: one line per figure, `name value unit`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <linux/xfrm.h>
#include <netlink/msg.h>

#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#include "fake-host.h"
#include "netlink.h"

#define REQID 0x6d63
#define BOOT_LOCAL "00000000-0000-4000-8000-000000000000"

static bool no_kernel, policies_only;
static unsigned long writes; /* requests that change the kernel: NEW, UPD, DEL */

int __real_mcx_nl_transact(struct mcx_nl *nl, struct nl_msg *msg);
int __wrap_mcx_nl_transact(struct mcx_nl *nl, struct nl_msg *msg);
int __wrap_mcx_nl_transact(struct mcx_nl *nl, struct nl_msg *msg)
{
	uint16_t type = nlmsg_hdr(msg)->nlmsg_type;

	writes++;
	if (!no_kernel && !(policies_only && (type == XFRM_MSG_NEWSA || type == XFRM_MSG_UPDSA ||
					       type == XFRM_MSG_DELSA)))
		return __real_mcx_nl_transact(nl, msg);
	nlmsg_free(msg);
	return 0;
}

int __real_mcx_nl_dump(struct mcx_nl *nl, uint16_t type, mcx_dump_fn fn, void *userdata);
int __wrap_mcx_nl_dump(struct mcx_nl *nl, uint16_t type, mcx_dump_fn fn, void *userdata);
int __wrap_mcx_nl_dump(struct mcx_nl *nl, uint16_t type, mcx_dump_fn fn, void *userdata)
{
	return no_kernel ? 0 : __real_mcx_nl_dump(nl, type, fn, userdata);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "xfrm_bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

/* ---- the cluster: this node and peers 1..n ---- */

static bool dual_stack;

static struct mc_ip v4(uint32_t a)
{
	struct mc_ip ip = { .family = AF_INET };

	ip.addr[0] = (uint8_t)(a >> 24);
	ip.addr[1] = (uint8_t)(a >> 16);
	ip.addr[2] = (uint8_t)(a >> 8);
	ip.addr[3] = (uint8_t)a;
	return ip;
}

static struct mc_ip v6(uint16_t group6, uint32_t low)
{
	struct mc_ip ip = { .family = AF_INET6 };

	ip.addr[0] = 0xfd;
	ip.addr[10] = (uint8_t)(group6 >> 8);
	ip.addr[11] = (uint8_t)group6;
	ip.addr[12] = (uint8_t)(low >> 24);
	ip.addr[13] = (uint8_t)(low >> 16);
	ip.addr[14] = (uint8_t)(low >> 8);
	ip.addr[15] = (uint8_t)low;
	return ip;
}

/* Node i (0: this one): 100.64.0.0/10 + i and fd00::1:<i>; its pod CIDR 10.<i>.0/24 (i <
 * 65536) and fd00::2:<i>:0/112. */
static struct mc_ip node_ip(uint32_t i, int family)
{
	return family == AF_INET ? v4(0x64400000u + i + 1) : v6(1, i + 1);
}

static struct mc_prefix pod_cidr(uint32_t i, int family)
{
	struct mc_prefix p;

	memset(&p, 0, sizeof(p));
	if (family == AF_INET) {
		p.ip = v4(0x0a000000u + (i << 8));
		p.len = 24;
	} else {
		p.ip = v6(2, i << 16);
		p.len = 112;
	}
	return p;
}

static void boot_id(uint32_t i, unsigned incarnation, char out[MC_BOOT_ID_LEN + 1])
{
	snprintf(out, MC_BOOT_ID_LEN + 1, "%08x-0000-4000-8000-%012x", i, incarnation);
}

struct peer_storage {
	struct mc_peer_state st;
	struct mc_ip addrs[2];
	struct mc_prefix prefixes[2];
};

/* Peer i's desired state, present or not, in its boot incarnation. */
static const struct mc_peer_state *peer(uint32_t i, bool present, unsigned incarnation)
{
	static struct peer_storage s;

	memset(&s, 0, sizeof(s));
	s.st.peer_id = i;
	s.st.name = (char *)"peer";
	s.st.present = present;
	s.addrs[0] = node_ip(i, AF_INET);
	s.prefixes[0] = pod_cidr(i, AF_INET);
	if (dual_stack) {
		s.addrs[1] = node_ip(i, AF_INET6);
		s.prefixes[1] = pod_cidr(i, AF_INET6);
	}
	s.st.addresses = s.addrs;
	s.st.n_addresses = dual_stack ? 2 : 1;
	s.st.prefixes = s.prefixes;
	s.st.n_prefixes = dual_stack ? 2 : 1;
	boot_id(i, incarnation, s.st.boot_id);
	s.st.key_generation = 1;
	s.st.peer_index = (uint16_t)i;
	return &s.st;
}

static const struct mc_local_state *local(void)
{
	static struct mc_local_state l;
	static struct mc_ip addrs[2];

	memset(&l, 0, sizeof(l));
	addrs[0] = node_ip(0, AF_INET);
	addrs[1] = node_ip(0, AF_INET6);
	l.name = (char *)"bench";
	l.known = l.participating = true;
	l.addresses = addrs;
	l.n_addresses = dual_stack ? 2 : 1;
	memcpy(l.boot_id, BOOT_LOCAL, sizeof(BOOT_LOCAL));
	l.key_generation = 1;
	return &l;
}

/* ---- the plugin ---- */

extern const struct mc_plugin meshcrypt_plugin;
static char key_path[] = "/tmp/xfrm-bench-keys-XXXXXX";
static const char key_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
			      "20212223";

/* The daemon's log: debug lines dropped before they are formatted (the fake host would keep
 * every line, which costs the plugin what meshcryptd never charges it), the rest to stderr. */
static void daemon_vlog(struct mc_plugin_ctx *ctx, int level, const char *fmt, va_list ap)
{
	if (level > LOG_INFO)
		return;
	fputs("xfrm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static bool daemon_log_enabled(struct mc_plugin_ctx *ctx, int level)
{
	return level <= LOG_INFO;
}

static void daemon_log(struct mc_plugin_ctx *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	daemon_vlog(ctx, level, fmt, ap);
	va_end(ap);
}

static struct fake_host *plugin_up(void)
{
	struct fake_host *fh = fake_host_new();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	int r;

	fake_host_host(fh)->log = daemon_log;
	fake_host_host(fh)->vlog = daemon_vlog;
	fake_host_host(fh)->log_enabled = daemon_log_enabled;
	fake_host_set_config(fh, "key_file", key_path);
	fake_host_set_config(fh, "key_secret", "meshcrypt-system/meshcrypt-ipsec-keys");
	fake_host_set_config(fh, "rotation_grace", "300s");
	fake_host_set_config(fh, "reqid", "0x6d63");
	if ((r = meshcrypt_plugin.init(ctx)) < 0 || (r = meshcrypt_plugin.start(ctx)) < 0) {
		fake_host_log_dump(fh);
		die("plugin init/start", r);
	}
	return fh;
}

static void plugin_down(struct fake_host *fh)
{
	meshcrypt_plugin.stop(fake_host_ctx(fh));
	meshcrypt_plugin.fini(fake_host_ctx(fh));
	fake_host_free(fh);
}

static void apply_peer(struct fake_host *fh, const struct mc_peer_state *p)
{
	int r = meshcrypt_plugin.dataplane->peer_apply(fake_host_ctx(fh), p);

	if (r < 0) {
		fake_host_log_dump(fh);
		if (r == -ENOENT || r == -EPROTONOSUPPORT || r == -ENOSYS) {
			fprintf(stderr, "SKIP: this kernel takes no ESP state (%s): run it in the "
				"lab VM (tests/lab/vm)\n", strerror(-r));
			exit(77);
		}
		die("peer_apply", r);
	}
}

/* local_apply, then peers first..last, then gc over peers 1..last: the engine's start. */
static void converge(struct fake_host *fh, uint32_t first, uint32_t last)
{
	const struct mc_peer_state **all;
	struct mc_peer_state *copies;
	int r;

	if ((r = meshcrypt_plugin.dataplane->local_apply(fake_host_ctx(fh), local())) < 0)
		die("local_apply", r);
	for (uint32_t i = first; i <= last; i++)
		apply_peer(fh, peer(i, true, 0));
	/* gc wants every participating peer at once */
	copies = calloc(last, sizeof(*copies));
	all = calloc(last, sizeof(*all));
	if (!copies || !all)
		die("gc", -ENOMEM);
	for (uint32_t i = 1; i <= last; i++) {
		copies[i - 1] = *peer(i, true, 0);
		all[i - 1] = &copies[i - 1];
	}
	/* the states' pointers point into peer()'s static storage: gc reads only ids, index,
	 * generation and addresses, so give each its own */
	for (uint32_t i = 1; i <= last; i++) {
		struct mc_ip *a = malloc(2 * sizeof(*a));

		a[0] = node_ip(i, AF_INET);
		a[1] = node_ip(i, AF_INET6);
		copies[i - 1].addresses = a;
		copies[i - 1].prefixes = NULL;
		copies[i - 1].n_prefixes = 0;
	}
	r = meshcrypt_plugin.dataplane->gc(fake_host_ctx(fh), all, last);
	for (uint32_t i = 0; i < last; i++)
		free(copies[i].addresses);
	free(copies);
	free(all);
	if (r < 0)
		die("gc", r);
}

/* ---- counting the kernel's objects ---- */

static int count_one(const struct nlmsghdr *h, void *userdata)
{
	(*(size_t *)userdata)++;
	return 0;
}

static size_t kernel_objects(uint16_t type)
{
	struct mcx_nl *nl;
	size_t n = 0;

	if (no_kernel)
		return 0;
	nl = mcx_nl_open();
	if (!nl || __real_mcx_nl_dump(nl, type, count_one, &n) < 0)
		die("dump", -errno);
	mcx_nl_close(nl);
	return n;
}

static size_t kernel_total(void)
{
	return kernel_objects(XFRM_MSG_GETSA) + kernel_objects(XFRM_MSG_GETPOLICY);
}

/* What the kernel holds of the peers' objects as sent: policies only with -p. */
static size_t kernel_sent(void)
{
	return policies_only ? kernel_objects(XFRM_MSG_GETPOLICY) : kernel_total();
}

static void flush_kernel(void)
{
	if (!no_kernel && system("ip xfrm state flush && ip xfrm policy flush") != 0)
		die("ip xfrm flush", -EIO);
}

/* ---- the same objects through ip -batch ---- */

static void ip_addr(const struct mc_ip *ip, char *buf)
{
	mc_ip_to_string(ip, buf);
}

static void write_batch(const char *path, uint32_t n)
{
	FILE *f = fopen(path, "w");
	char l[MC_IP_STRLEN], p[MC_IP_STRLEN], c[MC_PREFIX_STRLEN];

	if (!f)
		die(path, -errno);
	for (int fam = 0; fam < (dual_stack ? 2 : 1); fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		struct mc_ip lip = node_ip(0, family);

		ip_addr(&lip, l);
		fprintf(f, "xfrm policy add dir in mark 0xd0 mask 0xf0 priority 100 tmpl src %s "
			"dst %s proto esp reqid %u mode tunnel\n", fam ? "::" : "0.0.0.0", l, REQID);
		fprintf(f, "xfrm policy add dir fwd mark 0xd0 mask 0xf0 priority 100 tmpl src %s "
			"dst %s proto esp reqid %u mode tunnel\n", fam ? "::" : "0.0.0.0", l, REQID);
	}
	for (uint32_t i = 1; i <= n; i++) {
		for (int fam = 0; fam < (dual_stack ? 2 : 1); fam++) {
			int family = fam ? AF_INET6 : AF_INET;
			struct mc_ip lip = node_ip(0, family), pip = node_ip(i, family);
			struct mc_prefix cidr = pod_cidr(i, family);

			ip_addr(&lip, l);
			ip_addr(&pip, p);
			mc_prefix_to_string(&cidr, c);
			if (!policies_only) {
				fprintf(f, "xfrm state add src %s dst %s proto esp spi 0x101 reqid %u "
					"mode tunnel replay-window 128 flag esn mark 0x%x mask "
					"0xffff00f0 aead 'rfc4106(gcm(aes))' 0x%s 128\n", p, l, REQID,
					0xd0 | i << 16, key_hex);
				fprintf(f, "xfrm state add src %s dst %s proto esp spi 0x101 reqid %u "
					"mode tunnel replay-window 128 flag esn aead "
					"'rfc4106(gcm(aes))' 0x%s 128\n", l, p, REQID, key_hex);
			}
			fprintf(f, "xfrm policy add dst %s dir out mark 0xe0 mask 0xf0 priority 100 "
				"tmpl src %s dst %s proto esp spi 0x101 reqid %u mode tunnel\n", c, l, p,
				REQID);
		}
	}
	if (fclose(f) != 0)
		die(path, -errno);
}

/* Runs ip -batch path; its wall time. */
static double run_ip_batch(const char *path)
{
	double t0 = now_s();
	pid_t pid = fork();
	int status;

	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		execlp("ip", "ip", "-batch", path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("ip -batch", -EIO);
	return now_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* xfrm_NAME_N_peers VALUE UNIT; xfrm_policies_... with -p, xfrm_userspace_... with -k */
static void print(const char *name, uint32_t n, double value, const char *unit)
{
	printf("xfrm_%s%s_%u_peers %.*f %s\n",
	       no_kernel ? "userspace_" : policies_only ? "policies_" : "", name, n,
	       value == (double)(long)value ? 0 : 3, value, unit);
}

int main(int argc, char **argv)
{
	uint32_t n = 1000, rounds = 3, k;
	double t, c, mc_times[16], ip_times[16], empty_times[16];
	unsigned long w;
	size_t objects;
	struct fake_host *fh;
	int opt, fd;

	while ((opt = getopt(argc, argv, "n:r:kp6")) != -1) {
		switch (opt) {
		case 'n':
			n = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			no_kernel = true;
			break;
		case 'p':
			policies_only = true;
			break;
		case '6':
			dual_stack = true;
			break;
		default:
			fprintf(stderr, "usage: %s [-n PEERS] [-r ROUNDS] [-k | -p] [-6]\n", argv[0]);
			return 2;
		}
	}
	if (n < 2 || n > 65000 || rounds < 1 || rounds > 16) {
		fprintf(stderr, "xfrm_bench: 2 <= PEERS <= 65000, 1 <= ROUNDS <= 16\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root (a network namespace of its own)\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET) < 0)
		die("unshare(CLONE_NEWNET)", -errno);
	fd = mkstemp(key_path);
	if (fd < 0 || dprintf(fd, "1 rfc4106(gcm(aes)) %s 128\n", key_hex) < 0)
		die(key_path, -errno);
	close(fd);
	k = n / 10 < 100 ? n / 10 : 100; /* peers per per-peer figure */

	/* from scratch: n peers, timed; a peer more, re-keyed, removed: counted */
	fh = plugin_up();
	w = writes;
	t = now_s();
	converge(fh, 1, n - k);
	t = now_s() - t;
	w = writes - w;
	objects = kernel_sent();
	print("converge_seconds", n - k, t, "s");
	print("converge_messages", n - k, (double)w, "messages");
	if (!no_kernel)
		print("converge_objects", n - k, (double)objects, "objects");

	w = writes;
	for (uint32_t i = n - k + 1; i <= n; i++)
		apply_peer(fh, peer(i, true, 0));
	print("peer_add_messages_per_peer", n, (double)(writes - w) / k, "messages");
	if (!no_kernel)
		print("peer_add_objects_per_peer", n, (double)(kernel_sent() - objects) / k,
		      "objects");
	w = writes;
	for (uint32_t i = n - k + 1; i <= n; i++)
		apply_peer(fh, peer(i, true, 1)); /* rebooted: new boot ID, new keys */
	print("peer_rekey_messages_per_peer", n, (double)(writes - w) / k, "messages");

	/* a resync with nothing changed: every peer applied again */
	w = writes;
	c = cpu_s();
	t = now_s();
	for (uint32_t i = 1; i <= n; i++)
		apply_peer(fh, peer(i, true, i > n - k));
	t = now_s() - t;
	c = cpu_s() - c;
	print("resync_cpu_seconds", n, c, "s");
	print("resync_seconds", n, t, "s");
	print("resync_messages", n, (double)(writes - w), "messages");

	w = writes;
	objects = kernel_sent();
	for (uint32_t i = n - k + 1; i <= n; i++)
		apply_peer(fh, peer(i, false, 1));
	print("peer_remove_messages_per_peer", n, (double)(writes - w) / k, "messages");
	if (!no_kernel)
		print("peer_remove_objects_per_peer", n, (double)(objects - kernel_sent()) / k,
		      "objects");
	for (uint32_t i = n - k + 1; i <= n; i++)
		apply_peer(fh, peer(i, true, 0));

	/* a restart with nothing changed: the model from a dump, then every peer again */
	if (!no_kernel && !policies_only) {
		plugin_down(fh);
		w = writes;
		t = now_s();
		fh = plugin_up();
		converge(fh, 1, n);
		t = now_s() - t;
		print("restart_seconds", n, t, "s");
		print("restart_messages", n, (double)(writes - w), "messages");
	}
	plugin_down(fh);
	if (no_kernel)
		goto out;

	/* side by side, from an empty kernel: meshcrypt, then ip -batch with the same objects,
	 * then ip -batch of an empty file (its start-up, taken off its figure) */
	char batch[] = "/tmp/xfrm-bench-batch-XXXXXX", empty[] = "/tmp/xfrm-bench-empty-XXXXXX";

	if ((fd = mkstemp(batch)) < 0 || close(fd) < 0 || (fd = mkstemp(empty)) < 0 ||
	    close(fd) < 0)
		die("mkstemp", -errno);
	write_batch(batch, n);
	for (uint32_t r = 0; r < rounds; r++) {
		flush_kernel();
		fh = plugin_up();
		t = now_s();
		converge(fh, 1, n);
		mc_times[r] = now_s() - t;
		objects = kernel_sent();
		plugin_down(fh);
		flush_kernel();
		ip_times[r] = run_ip_batch(batch);
		if (kernel_sent() != objects) {
			fprintf(stderr, "xfrm_bench: ip -batch made %zu objects, meshcrypt %zu\n",
				kernel_sent(), objects);
			return 1;
		}
		flush_kernel();
		empty_times[r] = run_ip_batch(empty);
	}
	t = median(mc_times, rounds);
	c = median(ip_times, rounds) - median(empty_times, rounds);
	print("converge_side_by_side_seconds", n, t, "s");
	print("ip_batch_seconds", n, c, "s");
	print("ip_batch_over_meshcrypt", n, c / t, "ratio");
	unlink(batch);
	unlink(empty);
out:
	unlink(key_path);
	return 0;
}
