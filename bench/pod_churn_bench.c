/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pod churn through an attach plugin (BENCHMARKS.md, "Dataplane programming"): how fast pod
 * events become BPF map changes, and how many bpf() system calls each costs (target: one map
 * update per event, >= 200,000 events/s).
 *
 *   pod_churn_bench [-p PLUGIN.so] [-n EVENTS] [-l LIVE]
 *
 * The plugin (default: attach-tc.so of this build) is loaded as meshcryptd loads it and is
 * handed the unit tests' fake host. Its init creates the maps in a private bpffs, mounted in
 * a private mount namespace: nothing is attached to any interface, and the host's
 * /sys/fs/bpf is never touched. LIVE managed pods (default 10,000; 1 in 10 local, the rest on
 * 100 peers) are applied first and not counted; then EVENTS pod events (default 100,000),
 * each adding a new pod or removing the oldest one, go through pod_apply. One line out:
 *   pod_churn events N live L seconds S events_per_sec R bpf_calls_per_event X
 * bpf() calls are counted by interposing syscall(), through which libbpf makes every one (the
 * executable's definition wins over libc's for libbpf.so). Needs root (exit 77 otherwise).
 */
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#include "fake-host.h"

static unsigned long bpf_calls;

/* libbpf's sys_bpf() calls syscall(__NR_bpf, ...): count those, pass everything on to libc's. */
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
	if (number == __NR_bpf)
		bpf_calls++;
	return next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Pod number i: 10.(64 + i / 65536).(i / 256 % 256).(i % 256); 1 in 10 local, the others on
 * peers 1..100. */
static struct mc_pod_state pod(uint32_t i, bool live)
{
	struct mc_pod_state st = { .role = MC_POD_NONE };

	st.ip.family = AF_INET;
	st.ip.addr[0] = 10;
	st.ip.addr[1] = (uint8_t)(64 + i / 65536);
	st.ip.addr[2] = (uint8_t)(i / 256);
	st.ip.addr[3] = (uint8_t)i;
	if (!live)
		return st;
	if (i % 10 == 0) {
		st.role = MC_POD_LOCAL_MANAGED;
	} else {
		st.role = MC_POD_REMOTE_MANAGED;
		st.peer_id = 1 + i % 100;
		st.peer_index = (uint16_t)st.peer_id;
	}
	return st;
}

static int apply(const struct mc_plugin *p, struct mc_plugin_ctx *ctx, uint32_t i, bool live)
{
	struct mc_pod_state st = pod(i, live);
	int r = p->dataplane->pod_apply(ctx, &st);

	if (r < 0)
		fprintf(stderr, "pod_apply: %s\n", strerror(-r));
	return r;
}

/* A private bpffs in a private mount namespace. */
static int private_bpffs(char *dir)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    !mkdtemp(dir) || mount("bpf", dir, "bpf", 0, NULL) < 0)
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = MC_BUILDDIR "/plugins/attach-tc.so";
	uint32_t events = 100000, live = 10000;
	char bpffs[] = "/tmp/mc-churn-XXXXXX", bpffs_dir[64];
	const struct mc_plugin *p;
	struct mc_plugin_ctx *ctx;
	struct fake_host *fh;
	unsigned long calls;
	double t0, t;
	void *so;
	int opt, r;

	while ((opt = getopt(argc, argv, "p:n:l:")) != -1) {
		switch (opt) {
		case 'p':
			path = optarg;
			break;
		case 'n':
			events = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			live = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: %s [-p PLUGIN.so] [-n EVENTS] [-l LIVE]\n", argv[0]);
			return 2;
		}
	}
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root (a private bpffs, BPF maps)\n");
		return 77;
	}
	r = private_bpffs(bpffs);
	if (r < 0) {
		fprintf(stderr, "SKIP: cannot mount a private bpffs: %s\n", strerror(-r));
		return 77;
	}
	snprintf(bpffs_dir, sizeof(bpffs_dir), "%s/meshcrypt", bpffs);
	so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	p = so ? dlsym(so, MC_PLUGIN_SYMBOL) : NULL;
	if (!p) {
		fprintf(stderr, "%s: %s\n", path, dlerror());
		return 1;
	}
	fh = fake_host_new();
	ctx = fake_host_ctx(fh);
	fake_host_set_global(fh, "attach", "bpffs_dir", bpffs_dir);
	r = p->init ? p->init(ctx) : 0;
	if (r < 0) {
		fake_host_log_dump(fh);
		fprintf(stderr, "%s: init: %s\n", path, strerror(-r));
		return 1;
	}
	for (uint32_t i = 0; i < live; i++)
		if (apply(p, ctx, i, true) < 0)
			return 1;
	calls = bpf_calls;
	t0 = now_s();
	/* Even events add pod live + k, odd ones remove the oldest, so LIVE pods stay. */
	for (uint32_t k = 0; k < events; k++)
		if (apply(p, ctx, k % 2 ? k / 2 : live + k / 2, k % 2 == 0) < 0)
			return 1;
	t = now_s() - t0;
	calls = bpf_calls - calls;
	printf("pod_churn events %u live %u seconds %.3f events_per_sec %.0f "
	       "bpf_calls_per_event %.3f\n",
	       events, live, t, events / t, (double)calls / events);
	if (p->fini)
		p->fini(ctx);
	fake_host_free(fh);
	umount(bpffs);
	rmdir(bpffs);
	return 0;
}
