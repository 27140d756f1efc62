/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pod churn from source event to BPF map (issue 15; BENCHMARKS.md "Dataplane programming"):
 * meshcryptd's engine as the daemon runs it (the static source for the initial cluster, the
 * dryrun backend, the tc attach plugin with its pinned BPF maps, two reconcile workers), fed
 * pod events as the Kubernetes source feeds a watch event: the Pod's JSON parsed
 * (mc_object_parse) and handed to the store (what host->store_upsert does), or a deletion.
 *
 *   pod_events_bench [-p PODS] [-e EVENTS] [-r RATE]
 *
 * The cluster: this node and 100 peers, each with a /16 pod CIDR; PODS managed pods (default
 * 10,000), 1 in 10 on this node. Once every pod is in the maps, EVENTS events (default
 * 100,000; each adds a pod or deletes the oldest, so PODS stay) go in as fast as one thread
 * parses them, in waves of PODS (at most 20,000) each waited for: events per second = EVENTS /
 * (first event -> last map change). Then events go
 * in at RATE per second (default 5,000; 0: none) for two seconds, and each one's latency is
 * measured from before its JSON is parsed to the bpf() call that changes its map entry:
 * libbpf makes every bpf() call through syscall(), which this executable interposes.
 *
 * Runs in a network and mount namespace of its own (a veth uplink, a private bpffs): nothing
 * of the machine's is touched. Needs root and the BPF build; exit 77 otherwise.
 *
 * Output, one line per figure: pod_events_PODS_pods_{per_sec,p50_ms,p99_ms,max_ms,
 * bpf_calls_per_event}.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <linux/bpf.h>

#include <meshcrypt/model.h>
#include <meshcrypt/store.h>

#include "engine-internal.h"
#include "engine.h"
#include "log.h"

#define PEERS 100
#define NS "bench"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "pod_events_bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

/* ---- pods: number i -> node and IP, and back ---- */

static unsigned node_of(uint32_t i)
{
	return i % 10 ? 1 + i / 10 % PEERS : 0;
}

/* 10.<node>.<n / 256>.<n % 256>, n numbering the node's pods */
static uint32_t ip_of(uint32_t i)
{
	uint32_t node = node_of(i), n = node ? i / 10 / PEERS * 9 + i % 10 - 1 : i / 10;

	return 10u << 24 | node << 16 | n;
}

/* The pod number of a BPF map key, or -1 when it is no pod's (a peer's address, a prefix). */
static int64_t pod_of_key(const uint8_t key[16])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint32_t node, n;

	if (memcmp(key, mapped, 12) != 0 || key[12] != 10 || key[13] > PEERS)
		return -1;
	node = key[13];
	n = (uint32_t)key[14] << 8 | key[15];
	if (!node)
		return (int64_t)n * 10;
	return ((int64_t)(n / 9) * PEERS + node - 1) * 10 + n % 9 + 1;
}

/* ---- when each pod's map entry changed: written from libbpf's bpf() calls ---- */

static double *issued, *changed; /* by pod number */
static uint32_t n_slots;
static atomic_ulong bpf_calls, pod_changes;

long syscall(long number, ...)
{
	static long (*next)(long, ...);
	long a[6], r;
	va_list ap;

	if (!next)
		next = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	r = next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (number == __NR_bpf) {
		const union bpf_attr *attr = (const union bpf_attr *)a[1];

		atomic_fetch_add(&bpf_calls, 1);
		if ((a[0] == BPF_MAP_UPDATE_ELEM || a[0] == BPF_MAP_DELETE_ELEM) && changed) {
			int64_t pod = pod_of_key((const uint8_t *)(uintptr_t)attr->key);

			if (pod >= 0 && pod < n_slots) {
				changed[pod] = now_s();
				atomic_fetch_add(&pod_changes, 1);
			}
		}
	}
	return r;
}

/* ---- the cluster file and the configuration ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die(path, -errno);
}

static void pod_json(FILE *f, uint32_t i)
{
	uint32_t ip = ip_of(i);

	fprintf(f, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"pod-%u\","
		"\"namespace\":\"" NS "\",\"uid\":\"6f1c2d3e-0000-4a5b-8c7d-%012x\","
		"\"creationTimestamp\":\"2024-05-01T10:00:00Z\",\"labels\":{\"app\":\"bench\"}},"
		"\"spec\":{\"nodeName\":\"node-%u\"},\"status\":{\"phase\":\"Running\","
		"\"podIP\":\"%u.%u.%u.%u\",\"podIPs\":[{\"ip\":\"%u.%u.%u.%u\"}]}}",
		i, i, node_of(i), ip >> 24, ip >> 16 & 255, ip >> 8 & 255, ip & 255, ip >> 24,
		ip >> 16 & 255, ip >> 8 & 255, ip & 255);
}

static void write_cluster(const char *path, uint32_t pods)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die(path, -errno);
	fputs("{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{\"apiVersion\":\"v1\",\"kind\":"
	      "\"Namespace\",\"metadata\":{\"name\":\"" NS "\",\"labels\":{"
	      "\"meshcrypt.io/encryption\":\"enabled\"}}}", f);
	for (unsigned n = 0; n <= PEERS; n++) {
		fprintf(f, ",{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":"
			"\"node-%u\"},\"spec\":{\"podCIDR\":\"10.%u.0.0/16\",\"podCIDRs\":["
			"\"10.%u.0.0/16\"]},\"status\":{\"addresses\":[{\"type\":\"InternalIP\","
			"\"address\":\"192.168.0.%u\"}],\"nodeInfo\":{\"bootID\":"
			"\"%08x-1111-4111-8111-111111111111\"}}}", n, n, n, n + 1, n);
		fprintf(f, ",{\"apiVersion\":\"meshcrypt.io/v1alpha1\",\"kind\":\"MeshcryptNode\","
			"\"metadata\":{\"name\":\"node-%u\"},\"spec\":{\"keyGeneration\":1,"
			"\"addresses\":[\"192.168.0.%u\"]}}", n, n + 1);
	}
	for (uint32_t i = 0; i < pods; i++) {
		fputc(',', f);
		pod_json(f, i);
	}
	if (fputs("]}", f) < 0 || fclose(f) != 0)
		die(path, -errno);
}

static void copy_plugin(const char *dir, const char *name)
{
	char from[512], to[512], buf[65536];
	int in, out;
	ssize_t n;

	snprintf(from, sizeof(from), "%s/plugins/%s", MC_BUILDDIR, name);
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	in = open(from, O_RDONLY | O_CLOEXEC);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (in < 0 || out < 0)
		die(in < 0 ? from : to, -errno);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			die(to, -errno);
	close(in);
	close(out);
}

/* ---- events ---- */

static struct mc_engine *engine;

static void add_pod(uint32_t i)
{
	char *json = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&json, &len);
	struct mc_parse_error err;
	struct mc_object *obj;
	int r;

	if (!f)
		die("open_memstream", -errno);
	pod_json(f, i);
	fclose(f);
	changed[i] = 0;
	issued[i] = now_s();
	r = mc_object_parse(json, len, &obj, &err);
	free(json);
	if (r < 0)
		die("mc_object_parse", r);
	/* what host->store_upsert does for a source */
	if ((r = mc_store_upsert(engine->store, obj)) < 0)
		die("mc_store_upsert", r);
}

static void delete_pod(uint32_t i)
{
	char name[32];
	int r;

	snprintf(name, sizeof(name), "pod-%u", i);
	changed[i] = 0;
	issued[i] = now_s();
	if ((r = mc_store_delete(engine->store, MC_OBJECT_POD, NS, name)) < 0)
		die("mc_store_delete", r);
}

/* Event k after the initial pods: even ones add pod pods + k/2, odd ones delete pod k/2. */
static uint32_t event(uint32_t pods, uint32_t k)
{
	if (k % 2 == 0) {
		add_pod(pods + k / 2);
		return pods + k / 2;
	}
	delete_pod(k / 2);
	return k / 2;
}

/* Waits (up to 60 s) until every pod in [first, last] whose event was issued saw its change. */
static void wait_changed(const uint32_t *pods, size_t n)
{
	double deadline = now_s() + 60;

	for (size_t i = 0; i < n; i++)
		while (!changed[pods[i]]) {
			if (now_s() > deadline) {
				fprintf(stderr, "pod_events_bench: pod %u never reached the maps\n",
					pods[i]);
				exit(1);
			}
			usleep(200);
		}
}

/* Waits until the queue is empty and no bpf() call came for 200 ms: the start's full resync
 * ends with a garbage collection that walks every map, which must not land in a figure. */
static void wait_quiet(void)
{
	unsigned long calls;

	do {
		calls = atomic_load(&bpf_calls);
		usleep(200000);
	} while (keyq_len(engine->queue) || calls != atomic_load(&bpf_calls));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	uint32_t pods = 10000, events = 100000, rate = 5000, *touched, n_paced;
	char dir[] = "/tmp/mc-pod-events-XXXXXX", path[512], conf[4096], error[512];
	struct mc_config_error cerr;
	struct mc_config *cfg;
	sd_event *loop = NULL;
	double t0, t1, *lat;
	unsigned long calls;
	int opt, r;

	while ((opt = getopt(argc, argv, "p:e:r:")) != -1) {
		switch (opt) {
		case 'p':
			pods = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'e':
			events = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rate = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: %s [-p PODS] [-e EVENTS] [-r RATE]\n", argv[0]);
			return 2;
		}
	}
	/* a pod is deleted PODS events after it was added: long enough for its add to reach
	 * the maps first (else the two merge in the queue and the delete changes nothing) */
	if (pods < 1000 || pods > 150000 || events < 2 || events % 2 || rate % 2) {
		fprintf(stderr, "pod_events_bench: 1,000 <= PODS <= 150,000; EVENTS and RATE even\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root (namespaces, a private bpffs, BPF maps)\n");
		return 77;
	}
	if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || !mkdtemp(dir))
		die("namespaces", -errno);
	n_paced = rate ? 2 * rate : 0;
	n_slots = pods + events / 2 + n_paced / 2 + 1;
	issued = calloc(n_slots, sizeof(*issued));
	changed = calloc(n_slots, sizeof(*changed));
	touched = calloc(events + n_paced + pods, sizeof(*touched));
	if (!issued || !changed || !touched)
		die("calloc", -ENOMEM);

	snprintf(path, sizeof(path), "%s/bpffs", dir);
	if (mkdir(path, 0700) < 0 || mount("bpf", path, "bpf", 0, NULL) < 0) {
		fprintf(stderr, "SKIP: cannot mount a private bpffs: %s\n", strerror(errno));
		return 77;
	}
	if (system("ip link set lo up && ip link add mcb0 type veth peer name mcb1 && ip link set mcb0 up") != 0)
		die("ip link add mcb0 type veth", -EIO);
	snprintf(path, sizeof(path), "%s/plugins", dir);
	if (mkdir(path, 0755) < 0)
		die(path, -errno);
	copy_plugin(path, "source-static.so");
	copy_plugin(path, "backend-dryrun.so");
	copy_plugin(path, "attach-tc.so");
	snprintf(path, sizeof(path), "%s/cluster.json", dir);
	write_cluster(path, pods);
	snprintf(conf, sizeof(conf),
		 "[core]\nnode_name = node-0\nplugin_dir = %s/plugins\nstate_dir = %s\n"
		 "run_dir = %s\nworkers = 2\nmetrics_listen =\n"
		 "[source]\nplugin = static\n[backend]\nplugin = dryrun\n"
		 "[attach]\nplugin = tc\nbpffs_dir = %s/bpffs/meshcrypt\nuplinks = mcb0\n"
		 "[plugin.static]\nfile = %s\n",
		 dir, dir, dir, dir, path);
	snprintf(path, sizeof(path), "%s/meshcryptd.conf", dir);
	write_file(path, conf);

	/* dryrun logs every change at NOTICE */
	mc_log_set_max_level(getenv("BENCH_VERBOSE") ? LOG_DEBUG : LOG_WARNING);
	if ((r = mc_config_load(path, &cfg, &cerr)) < 0)
		die(cerr.message, r);
	if ((r = sd_event_new(&loop)) < 0 ||
	    (r = mc_engine_new(cfg, loop, &engine, error, sizeof(error))) < 0)
		die(error, r);
	for (uint32_t i = 0; i < pods; i++) {
		issued[i] = now_s();
		touched[i] = i;
	}
	if ((r = mc_engine_start(engine)) < 0)
		die("mc_engine_start", r);
	wait_changed(touched, pods);
	wait_quiet();

	/*
	 * As fast as one thread parses and hands them over, in waves of at most PODS events,
	 * each waited for: a pod's add and its delete never meet in the queue, where they would
	 * merge into nothing (which is right, but would count two events for no work).
	 */
	calls = atomic_load(&bpf_calls);
	t0 = now_s();
	for (uint32_t first = 0, wave = pods < 20000 ? pods : 20000; first < events;
	     first += wave) {
		uint32_t last = first + wave < events ? first + wave : events;

		for (uint32_t k = first; k < last; k++)
			touched[k] = event(pods, k);
		wait_changed(touched + first, last - first);
	}
	t1 = 0;
	for (uint32_t k = 0; k < events; k++)
		t1 = changed[touched[k]] > t1 ? changed[touched[k]] : t1;
	printf("pod_events_%u_pods_per_sec %.0f events/s\n", pods, events / (t1 - t0));
	printf("pod_events_%u_pods_bpf_calls_per_event %.3f calls\n", pods,
	       (double)(atomic_load(&bpf_calls) - calls) / events);

	/* paced: the latency of each event when the agent keeps up */
	if (n_paced) {
		lat = calloc(n_paced, sizeof(*lat));
		if (!lat)
			die("calloc", -ENOMEM);
		t0 = now_s();
		for (uint32_t k = 0; k < n_paced; k++) {
			double due = t0 + (double)k / rate;
			struct timespec ts = { .tv_sec = (time_t)due,
					       .tv_nsec = (long)((due - (double)(time_t)due) * 1e9) };

			/* sleeping, not spinning: two cores, two workers */
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
			touched[k] = event(pods, events + k);
		}
		wait_changed(touched, n_paced);
		for (uint32_t k = 0; k < n_paced; k++)
			lat[k] = (changed[touched[k]] - issued[touched[k]]) * 1e3;
		qsort(lat, n_paced, sizeof(*lat), cmp_double);
		printf("pod_events_%u_pods_p50_ms %.3f ms\n", pods, lat[n_paced / 2]);
		printf("pod_events_%u_pods_p99_ms %.3f ms\n", pods, lat[n_paced * 99 / 100]);
		printf("pod_events_%u_pods_max_ms %.3f ms\n", pods, lat[n_paced - 1]);
		free(lat);
	}
	mc_engine_stop(engine);
	mc_engine_free(engine);
	sd_event_unref(loop);
	snprintf(path, sizeof(path), "rm -rf %s/plugins %s/cluster.json %s/meshcryptd.conf", dir,
		 dir, dir);
	(void)system(path);
	return 0;
}
