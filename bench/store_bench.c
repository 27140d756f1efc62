/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cluster-model benchmark: generates a Kubernetes List of N nodes (each with a MeshcryptNode)
 * and 30 pods per node in memory, then times parsing it and loading it into a store, and
 * measures what the store keeps resident. Usage: store_bench [nodes] (default 5000).
 * store_bench --fixture [nodes] prints the document instead: the test API server serves it for
 * bench/k8s-sync (the same cluster, through the k8s source).
 * Results: docs/performance.md, "Cluster model".
 */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <meshcrypt/model.h>
#include <meshcrypt/store.h>

#define PODS_PER_NODE 30
#define NAMESPACES 50

static double now(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size in bytes, from /proc/self/statm. */
static size_t rss(void) {
	unsigned long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * 4096;
}

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...) {
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n + 1;
		b->p = realloc(b->p, b->cap);
		if (!b->p) {
			perror("realloc");
			exit(1);
		}
	}
	b->len += (size_t)n;
}

/* A pod as `kubectl get pods -o json` prints it, minus the container statuses and volumes. */
static void put_pod(struct buf *b, unsigned node, unsigned i) {
	unsigned ns = (node * PODS_PER_NODE + i) % NAMESPACES;

	put(b, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"app-%u-7d9f8c6b5-%05u%02u\","
	       "\"namespace\":\"team-%02u\",\"uid\":\"6f1c2d3e-%04x-4a5b-8c7d-%012x\","
	       "\"resourceVersion\":\"%u\",\"creationTimestamp\":\"2024-05-01T10:%02u:%02uZ\","
	       "\"generateName\":\"app-%u-7d9f8c6b5-\",\"labels\":{\"app\":\"app-%u\","
	       "\"pod-template-hash\":\"7d9f8c6b5\"%s},\"ownerReferences\":[{\"apiVersion\":\"apps/v1\","
	       "\"kind\":\"ReplicaSet\",\"name\":\"app-%u-7d9f8c6b5\",\"uid\":\"0b1c2d3e-0000-4000-8000-"
	       "000000000000\",\"controller\":true,\"blockOwnerDeletion\":true}]},"
	       "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"registry.example.com/app:1.2.3\","
	       "\"ports\":[{\"containerPort\":8080,\"protocol\":\"TCP\"}],\"resources\":{\"requests\":"
	       "{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}}],\"nodeName\":\"node-%05u\","
	       "\"restartPolicy\":\"Always\",\"schedulerName\":\"default-scheduler\","
	       "\"serviceAccountName\":\"default\"},\"status\":{\"phase\":\"Running\","
	       "\"hostIP\":\"10.0.%u.%u\",\"podIP\":\"10.%u.%u.%u\",\"podIPs\":[{\"ip\":\"10.%u.%u.%u\"}],"
	       "\"qosClass\":\"Burstable\",\"startTime\":\"2024-05-01T10:00:00Z\"}}",
	    ns, node, i, ns, node, node * PODS_PER_NODE + i, node * 100 + i, i, node % 60, ns, ns,
	    ns % 2 ? ",\"meshcrypt.io/encryption\":\"enabled\"" : "", ns, node, node / 256,
	    node % 256, 64 + node / 256, node % 256, 10 + i, 64 + node / 256, node % 256, 10 + i);
}

static char *generate(unsigned nodes, size_t *len) {
	struct buf b = { .cap = 1 << 20 };

	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	put(&b, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"\"},\"items\":[");
	for (unsigned ns = 0; ns < NAMESPACES; ns++)
		put(&b, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"team-%02u\","
		        "\"labels\":{\"kubernetes.io/metadata.name\":\"team-%02u\"%s}}},",
		    ns, ns, ns % 5 == 0 ? ",\"meshcrypt.io/encryption\":\"enabled\"" : "");
	for (unsigned n = 0; n < nodes; n++) {
		put(&b, "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node-%05u\","
		        "\"labels\":{\"kubernetes.io/hostname\":\"node-%05u\"}},\"spec\":{\"podCIDR\":"
		        "\"10.%u.%u.0/24\",\"podCIDRs\":[\"10.%u.%u.0/24\"]},\"status\":{\"addresses\":["
		        "{\"type\":\"InternalIP\",\"address\":\"10.0.%u.%u\"},{\"type\":\"Hostname\","
		        "\"address\":\"node-%05u\"}],\"nodeInfo\":{\"bootID\":"
		        "\"%08x-1111-4111-8111-111111111111\",\"kubeletVersion\":\"v1.29.3\"}}},",
		    n, n, 64 + n / 256, n % 256, 64 + n / 256, n % 256, n / 256, n % 256, n, n);
		put(&b, "{\"apiVersion\":\"meshcrypt.io/v1alpha1\",\"kind\":\"MeshcryptNode\",\"metadata\":"
		        "{\"name\":\"node-%05u\"},\"spec\":{\"keyGeneration\":1,\"addresses\":"
		        "[\"10.0.%u.%u\"]}},",
		    n, n / 256, n % 256);
		for (unsigned i = 0; i < PODS_PER_NODE; i++) {
			put_pod(&b, n, i);
			put(&b, "%s", n + 1 == nodes && i + 1 == PODS_PER_NODE ? "" : ",");
		}
	}
	put(&b, "]}");
	*len = b.len;
	return b.p;
}

static size_t keys;

static void count_key(void *ctx, const struct mc_key *key) {
	keys++;
}

int main(int argc, char **argv) {
	bool fixture = argc > 1 && strcmp(argv[1], "--fixture") == 0;
	unsigned nodes = argc > 1 + fixture ? (unsigned)strtoul(argv[1 + fixture], NULL, 10) : 5000;
	struct mc_store_config cfg = { .local_node = "node-00000", .enqueue = count_key };
	struct mc_object_list *list;
	struct mc_store_stats st;
	struct mc_parse_error err;
	struct mc_store *s;
	size_t len, rss_base, rss_loaded;
	double t0, t1, t2;
	char *doc;
	int r;

	if (nodes == 0 || nodes > 16384) {
		fprintf(stderr, "usage: %s [--fixture] [nodes, 1..16384]\n", argv[0]);
		return 2;
	}
	rss_base = rss();
	doc = generate(nodes, &len);
	if (!doc)
		return 1;
	if (fixture)
		return fwrite(doc, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;

	t0 = now();
	r = mc_object_list_parse(doc, len, &list, &err);
	t1 = now();
	if (r < 0) {
		fprintf(stderr, "parse: %s (line %d)\n", err.message, err.line);
		return 1;
	}
	s = mc_store_new(&cfg);
	if (!s || mc_store_replace_all(s, list) < 0) {
		fprintf(stderr, "load: %s\n", strerror(errno));
		return 1;
	}
	t2 = now();
	free(doc);
	/* hand the parser's freed memory back, so RSS shows what the store keeps */
	malloc_trim(0);
	rss_loaded = rss();
	mc_store_stats(s, &st);

	printf("document        %zu bytes, %u nodes, %zu pods\n", len, nodes, st.pods);
	printf("parse           %.3f s\n", t1 - t0);
	printf("load            %.3f s (keys enqueued: %zu)\n", t2 - t1, keys);
	printf("parse + load    %.3f s\n", t2 - t0);
	printf("store heap      %zu bytes, %.1f bytes per pod (all objects)\n", st.bytes,
	       (double)st.bytes / (double)st.pods);
	printf("RSS delta       %zu bytes, %.1f bytes per pod\n", rss_loaded - rss_base,
	       (double)(rss_loaded - rss_base) / (double)st.pods);

	/* an identical relist: parse again, compare, enqueue nothing */
	doc = generate(nodes, &len);
	keys = 0;
	t0 = now();
	if (!doc || mc_object_list_parse(doc, len, &list, &err) < 0 ||
	    mc_store_replace_all(s, list) < 0)
		return 1;
	t1 = now();
	printf("identical relist %.3f s (keys enqueued: %zu)\n", t1 - t0, keys);
	free(doc);
	mc_store_free(s);
	return 0;
}
