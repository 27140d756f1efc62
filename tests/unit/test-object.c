/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Object parser: real Kubernetes documents, every kind, and malformed input. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json-reader.h"
#include "object-internal.h"

#define REAL MC_SRCDIR "/tests/fixtures/real-k8s/"
#define CLUSTER MC_SRCDIR "/tests/fixtures/cluster/"
#define MALFORMED MC_SRCDIR "/tests/fixtures/malformed/"

static struct mc_object_list *load(const char *path) {
	struct mc_object_list *list = NULL;
	struct mc_parse_error err;
	int r = mc_object_list_parse_file(path, &list, &err);

	if (r < 0)
		fail_msg("%s: %s (line %d)", path, err.message, err.line);
	return list;
}

static const struct mc_object *find(const struct mc_object_list *l, enum mc_object_kind kind,
                                    const char *name) {
	for (size_t i = 0; i < mc_object_list_count(l); i++) {
		const struct mc_object *o = mc_object_list_get(l, i);

		if (o->kind == kind && strcmp(o->name, name) == 0)
			return o;
	}
	fail_msg("no %s %s", mc_object_kind_name(kind), name);
	return NULL;
}

static void assert_ip(const struct mc_ip *ip, const char *want) {
	char buf[MC_IP_STRLEN];

	assert_string_equal(mc_ip_to_string(ip, buf), want);
}

static void assert_prefix(const struct mc_prefix *p, const char *want) {
	char buf[MC_PREFIX_STRLEN];

	assert_string_equal(mc_prefix_to_string(p, buf), want);
}

static void test_ip_prefix(void **state) {
	struct mc_ip ip, ip2;
	struct mc_prefix p;
	char buf[MC_PREFIX_STRLEN];

	assert_int_equal(mc_ip_parse("10.0.0.1", &ip), 0);
	assert_int_equal(ip.family, AF_INET);
	assert_int_equal(ip.addr[3], 1);
	for (int i = 4; i < 16; i++)
		assert_int_equal(ip.addr[i], 0);
	assert_int_equal(mc_ip_parse("fd00::1", &ip2), 0);
	assert_int_equal(ip2.family, AF_INET6);
	assert_true(mc_ip_compare(&ip, &ip2) < 0);
	assert_string_equal(mc_ip_to_string(&ip2, buf), "fd00::1");
	assert_int_equal(mc_ip_parse("10.0.0.300", &ip), -EINVAL);
	assert_int_equal(mc_ip_parse("", &ip), -EINVAL);
	assert_int_equal(mc_ip_parse("10.0.0.1/24", &ip), -EINVAL);
	assert_int_equal(mc_ip_parse(" 10.0.0.1", &ip), -EINVAL);

	assert_int_equal(mc_prefix_parse("10.244.0.0/24", &p), 0);
	assert_prefix(&p, "10.244.0.0/24");
	assert_int_equal(mc_ip_parse("10.244.0.255", &ip), 0);
	assert_true(mc_prefix_contains(&p, &ip));
	assert_int_equal(mc_ip_parse("10.244.1.0", &ip), 0);
	assert_false(mc_prefix_contains(&p, &ip));
	assert_false(mc_prefix_contains(&p, &ip2));
	assert_int_equal(mc_prefix_parse("10.244.0.0/22", &p), 0);
	assert_int_equal(mc_ip_parse("10.244.3.9", &ip), 0);
	assert_true(mc_prefix_contains(&p, &ip));
	assert_int_equal(mc_prefix_parse("fd00:10:244::/64", &p), 0);
	assert_prefix(&p, "fd00:10:244::/64");
	assert_int_equal(mc_ip_parse("fd00:10:244::abcd", &ip), 0);
	assert_true(mc_prefix_contains(&p, &ip));
	assert_int_equal(mc_prefix_parse("0.0.0.0/0", &p), 0);
	assert_int_equal(mc_prefix_parse("::/0", &p), 0);
	assert_true(mc_prefix_contains(&p, &ip));

	assert_int_equal(mc_prefix_parse("10.244.0.1/24", &p), -EINVAL); /* host bits */
	assert_int_equal(mc_prefix_parse("10.244.0.0", &p), -EINVAL);
	assert_int_equal(mc_prefix_parse("10.244.0.0/33", &p), -EINVAL);
	assert_int_equal(mc_prefix_parse("10.244.0.0/024", &p), -EINVAL);
	assert_int_equal(mc_prefix_parse("10.244.0.0/+24", &p), -EINVAL);
	assert_int_equal(mc_prefix_parse("10.244.0.0/", &p), -EINVAL);
	assert_int_equal(mc_prefix_parse("fd00::/129", &p), -EINVAL);
	assert_int_equal(mc_prefix_parse("podCIDRsValue", &p), -EINVAL);
}

static void test_real_nodes(void **state) {
	struct mc_object_list *l = load(REAL "sonobuoy_kind-v1.20_nodes.json");
	const struct mc_object *n;

	assert_int_equal(mc_object_list_count(l), 3);
	assert_string_equal(mc_object_list_resource_version(l), "1579");
	n = find(l, MC_OBJECT_NODE, "kind-worker");
	assert_null(mc_object_namespace(n));
	assert_int_equal(n->node.n_addresses, 1); /* the Hostname address is not an IP */
	assert_ip(&n->node.addresses[0], "172.18.0.2");
	assert_int_equal(n->node.n_pod_cidrs, 1);
	assert_prefix(&n->node.pod_cidrs[0], "10.244.2.0/24");
	assert_string_equal(n->node.boot_id, "f562fa2d-50b1-4970-9c6f-b596bb198207");
	mc_object_list_free(l);

	/* kubectl's List; InternalDNS is ignored too */
	l = load(REAL "nri-kubernetes_v1.35_nodes.list.json");
	n = find(l, MC_OBJECT_NODE, "datagen-1-35");
	assert_ip(&n->node.addresses[0], "192.168.67.2");
	assert_string_equal(n->node.boot_id, "3f08706e-fbd4-4afe-ab2e-cb273a74d98b");
	mc_object_list_free(l);

	l = load(REAL "kubescape_eks-v1.29_node.json");
	assert_int_equal(mc_object_list_count(l), 1);
	n = mc_object_list_get(l, 0);
	assert_string_equal(n->name, "ip-1-1-1-1.eu-west-1.compute.internal");
	assert_int_equal(n->node.n_addresses, 1);
	assert_ip(&n->node.addresses[0], "1.1.1.1");
	assert_int_equal(n->node.n_pod_cidrs, 0);
	mc_object_list_free(l);
}

static void test_real_dual_stack_nodes(void **state) {
	struct mc_object_list *l = load(REAL "cilium_dualstack-kind-v1.27_init.list.json");
	const struct mc_object *n;

	/* 9 items: the CiliumNodes, Service, Endpoints and EndpointSlice are skipped */
	assert_int_equal(mc_object_list_count(l), 3);
	n = find(l, MC_OBJECT_NODE, "dual-stack-worker");
	assert_int_equal(n->node.n_addresses, 2);
	assert_ip(&n->node.addresses[0], "172.18.0.8");
	assert_ip(&n->node.addresses[1], "fc00:f853:ccd:e793::8");
	assert_int_equal(n->node.n_pod_cidrs, 2);
	assert_prefix(&n->node.pod_cidrs[0], "10.244.2.0/24");
	assert_prefix(&n->node.pod_cidrs[1], "fd00:10:244:2::/64");
	mc_object_list_free(l);
}

static void test_real_pods(void **state) {
	struct mc_object_list *l = load(REAL "nri-kubernetes_v1.35_kubelet-pods.json");
	const struct mc_object *p;
	size_t host = 0, done = 0;

	/* kubelet's PodList: the items carry no kind */
	assert_int_equal(mc_object_list_count(l), 24);
	for (size_t i = 0; i < 24; i++) {
		p = mc_object_list_get(l, i);
		assert_int_equal(p->kind, MC_OBJECT_POD);
		host += p->pod.host_network;
		done += p->pod.terminated;
	}
	assert_int_equal(host, 8);
	assert_int_equal(done, 6); /* 4 Failed, 2 Succeeded */
	p = find(l, MC_OBJECT_POD, "coredns-7d764666f9-qdcxt");
	assert_string_equal(mc_object_namespace(p), "kube-system");
	assert_string_equal(p->pod.node_name, "datagen-1-35");
	assert_int_equal(p->pod.n_ips, 1);
	assert_ip(&p->pod.ips[0], "10.244.0.2");
	assert_int_equal(p->created, 1782468739); /* 2026-06-26T10:12:19Z */
	assert_string_equal(mc_object_label(p, "k8s-app"), "kube-dns");
	assert_null(mc_object_label(p, "meshcrypt.io/encryption"));
	/* a static pod has no creationTimestamp */
	p = find(l, MC_OBJECT_POD, "etcd-datagen-1-35");
	assert_int_equal(p->created, 0);
	assert_true(p->pod.host_network);
	mc_object_list_free(l);

	l = load(REAL "sonobuoy_kind-v1.20_kube-system_pods.json");
	assert_int_equal(mc_object_list_count(l), 14);
	p = find(l, MC_OBJECT_POD, "coredns-74ff55c5b-ppjrs");
	assert_null(p->pod.node_name);
	assert_int_equal(p->pod.n_ips, 0);
	mc_object_list_free(l);

	l = load(REAL "kubectl-neat_kind_pods-list.json");
	assert_int_equal(mc_object_list_count(l), 2);
	assert_ip(&find(l, MC_OBJECT_POD, "t2")->pod.ips[0], "10.244.0.7");
	mc_object_list_free(l);

	l = load(REAL "k9s_kind_pod-native-sidecar.json");
	p = find(l, MC_OBJECT_POD, "sleep");
	assert_string_equal(p->pod.node_name, "kind-control-plane");
	assert_false(p->pod.terminated);
	mc_object_list_free(l);
}

static void test_real_namespaces(void **state) {
	struct mc_object_list *l = load(REAL "nri-kubernetes_v1.35_namespaces.list.json");
	const struct mc_object *n;

	assert_int_equal(mc_object_list_count(l), 6);
	n = find(l, MC_OBJECT_NAMESPACE, "scraper");
	assert_null(mc_object_namespace(n));
	assert_string_equal(mc_object_label(n, "kubernetes.io/metadata.name"), "scraper");
	mc_object_list_free(l);
}

/* The text of a watch event's "object" member, found as the k8s source finds it: by skipping
 * through the event with the JSON reader. */
static void event_object(const char *event, size_t len, const char **obj, size_t *obj_len) {
	struct mci_json_reader r;
	struct mci_json_mark m;
	const char *key;
	size_t klen;

	mci_json_reader_init(&r, event, len);
	assert_int_equal(mci_json_enter_object(&r), 0);
	while (mci_json_next_member(&r, &key, &klen) == 1) {
		m = mci_json_mark(&r);
		assert_int_equal(mci_json_skip(&r), 0);
		if (klen == 6 && memcmp(key, "object", 6) == 0) {
			*obj = m.p;
			*obj_len = (size_t)(r.at.p - m.p);
			return;
		}
	}
	fail_msg("no object in the event");
}

/* Feeds each line of a watch stream through mc_object_parse(), as the k8s source does;
 * returns the last object. */
static struct mc_object *last_watch_object(const char *path, size_t *events) {
	struct mc_object *last = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	*events = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		struct mc_parse_error err;
		struct mc_object *o;
		const char *obj;
		size_t len;

		if (line[0] != '{')
			continue;
		event_object(line, (size_t)n, &obj, &len);
		if (mc_object_parse(obj, len, &o, &err) < 0)
			fail_msg("%s (line %d)", err.message, err.line);
		mc_object_free(last);
		last = o;
		(*events)++;
	}
	free(line);
	fclose(f);
	return last;
}

static char *slurp(const char *path, size_t *len);

static void test_real_watch_events(void **state) {
	size_t events, len, obj_len;
	struct mc_object *o = last_watch_object(REAL "kuryr_pods-watch-2016.ndjson", &events);
	struct mc_parse_error err;
	const char *obj;
	char *text;

	assert_int_equal(events, 4);
	/* Kubernetes 1.2: status.podIP only */
	assert_int_equal(o->pod.n_ips, 1);
	assert_ip(&o->pod.ips[0], "172.16.49.2");
	assert_string_equal(o->pod.node_name, "10.240.0.4");
	mc_object_free(o);

	o = last_watch_object(REAL "kubeclient_watch-stream-2015.ndjson", &events);
	assert_int_equal(events, 3);
	assert_string_equal(o->name, "php");
	/* 2015-02-09T05:39:19-05:00 */
	assert_int_equal(o->created, 1423478359);
	mc_object_free(o);

	/* one pretty-printed event */
	text = slurp(REAL "kubeclient_node-watch-event.json", &len);
	event_object(text, len, &obj, &obj_len);
	assert_int_equal(mc_object_parse(obj, obj_len, &o, &err), 0);
	assert_int_equal(o->kind, MC_OBJECT_NODE);
	assert_ip(&o->node.addresses[0], "192.168.122.40");
	assert_string_equal(o->node.boot_id, "75be791d-88a2-4f56-a588-c071a80bf7cf");
	mc_object_free(o);
	free(text);
}

static char *slurp(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void test_real_other_kinds(void **state) {
	struct mc_object_list *l = load(REAL "kubeclient_status-410-expired.json");
	struct mc_parse_error err;
	struct mc_object *o = (struct mc_object *)1;
	size_t len;
	char *text;

	/* a Status is not an object meshcrypt reads: skipped in a list, refused alone */
	assert_int_equal(mc_object_list_count(l), 0);
	mc_object_list_free(l);
	text = slurp(REAL "kubeclient_status-410-expired.json", &len);
	assert_int_equal(mc_object_parse(text, len, &o, &err), -ENOTSUP);
	assert_null(o);
	assert_non_null(strstr(err.message, "Status"));
	free(text);
}

static void test_real_synthetic(void **state) {
	/* the round-trip fixtures fill every field with placeholders such as "nameValue" */
	const char *files[] = { REAL "k8s-api-testdata_core.v1.Node.json",
		                REAL "k8s-api-testdata_core.v1.Pod.json" };

	for (size_t i = 0; i < 2; i++) {
		struct mc_object_list *l = (struct mc_object_list *)1;
		struct mc_parse_error err;

		assert_int_equal(mc_object_list_parse_file(files[i], &l, &err), -EINVAL);
		assert_null(l);
		assert_non_null(strstr(err.message, "metadata.name: \"nameValue\" is not a DNS name"));
		assert_true(err.line > 1);
	}
}

static void test_cluster_kinds(void **state) {
	struct mc_object_list *l = load(CLUSTER "basic.json");
	const struct mc_object *o;

	assert_int_equal(mc_object_list_count(l), 19); /* the Service is skipped */
	o = find(l, MC_OBJECT_MESHCRYPT_NODE, "node-b");
	assert_int_equal(o->mcnode.key_generation, 2);
	assert_string_equal(o->mcnode.wireguard_public_key,
	                    "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=");
	assert_int_equal(o->mcnode.n_addresses, 1);
	assert_ip(&o->mcnode.addresses[0], "192.168.1.2");
	assert_int_equal(o->mcnode.n_pod_cidrs, 0);
	assert_string_equal(o->mcnode.boot_id, "");
	o = find(l, MC_OBJECT_POD, "web-b");
	assert_int_equal(o->pod.n_ips, 2);
	assert_ip(&o->pod.ips[0], "10.244.1.7");
	assert_ip(&o->pod.ips[1], "fd00:244:1::7");
	o = find(l, MC_OBJECT_POD, "v6-b");
	assert_int_equal(o->pod.n_ips, 1);
	assert_ip(&o->pod.ips[0], "fd00:244:1::9");
	o = find(l, MC_OBJECT_NAMESPACE, "secure");
	assert_string_equal(mc_object_label(o, "meshcrypt.io/encryption"), "enabled");
	mc_object_list_free(l);

	l = load(CLUSTER "secret.json");
	o = mc_object_list_get(l, 0);
	assert_int_equal(o->kind, MC_OBJECT_SECRET);
	assert_string_equal(mc_object_namespace(o), "meshcrypt-system");
	assert_int_equal(o->secret.n_entries, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct mc_secret_entry *e = &o->secret.entries[i];

		if (strcmp(e->key, "keys") == 0)
			assert_string_equal((const char *)e->data,
			                    "1 rfc4106(gcm(aes)) 000102030405060708090a0b0c0d0e0f10111213 128\n");
		else
			assert_int_equal(e->len, 0);
	}
	mc_object_list_free(l);
}

struct bad_file {
	const char *file;
	int line;
	const char *message;
};

static void test_malformed_files(void **state) {
	static const struct bad_file cases[] = {
		{ "truncated.json", 10, "JSON: unexpected end of document" },
		{ "wrong-type.json", 23,
		  "Pod default/web-1: spec.hostNetwork: expected a boolean, got a string" },
		{ "bad-ip.json", 28,
		  "Pod default/web-1: status.podIPs[0].ip: \"10.0.0.300\" is not an IP address" },
		{ "missing-name.json", 15, "Pod items[1]: metadata.name: missing" },
		{ "bad-cidr.json", 14,
		  "Node node-a: spec.podCIDRs[1]: \"10.244.1.1/24\" is not a CIDR" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512];
		struct mc_object_list *l = (struct mc_object_list *)1;
		struct mc_parse_error err;

		snprintf(path, sizeof(path), MALFORMED "%s", cases[i].file);
		assert_int_equal(mc_object_list_parse_file(path, &l, &err), -EINVAL);
		assert_null(l);
		if (!strstr(err.message, cases[i].message) || err.line != cases[i].line)
			fail_msg("%s: got \"%s\" at line %d", cases[i].file, err.message, err.line);
	}
}

struct bad_doc {
	const char *json;
	const char *message;
};

#define POD_HEAD "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"p\",\"namespace\":\"n\""
#define MCN_HEAD "{\"kind\":\"MeshcryptNode\",\"apiVersion\":\"meshcrypt.io/v1alpha1\",\"metadata\":{\"name\":\"a\"}"

static void test_malformed_inline(void **state) {
	static const struct bad_doc cases[] = {
		{ "", "unexpected end of document" },
		{ "[1,2]", "expected an object, got an array" },
		{ "{\"kind\":\"List\",\"items\":[{\"metadata\":{\"name\":\"x\"}}]}",
		  "items[0]: kind: missing" },
		{ "{\"kind\":\"List\",\"items\":[42]}", "items[0]: expected an object, got an integer" },
		{ "{\"kind\":\"List\",\"items\":{}}", "items: expected an array, got an object" },
		{ "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}",
		  "Pod p: metadata.namespace: missing" },
		{ "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"P\",\"namespace\":\"n\"}}",
		  "metadata.name: \"P\" is not a DNS name" },
		{ "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\\u0000x\",\"namespace\":\"n\"}}",
		  "metadata.name: contains a NUL character" },
		{ "{\"kind\":\"Node\"}", "Node (unnamed): metadata: missing" },
		{ "{\"kind\":\"Node\",\"metadata\":{\"name\":7}}",
		  "Node (unnamed): metadata.name: expected a string, got an integer" },
		{ POD_HEAD ",\"labels\":{\"a\":1}}}", "Pod n/p: metadata.labels.a: expected a string" },
		{ POD_HEAD ",\"labels\":[]}}", "metadata.labels: expected an object, got an array" },
		{ POD_HEAD ",\"creationTimestamp\":\"yesterday\"}}",
		  "metadata.creationTimestamp: \"yesterday\" is not an RFC 3339 time" },
		{ POD_HEAD "},\"spec\":{\"nodeName\":\"Node A\"}}", "spec.nodeName: \"Node A\" is not" },
		{ POD_HEAD "},\"status\":{\"podIPs\":\"10.0.0.1\"}}",
		  "status.podIPs: expected an array, got a string" },
		{ POD_HEAD "},\"status\":{\"podIPs\":[{\"ip\":\"10.0.0.1\"},{\"ip\":\"10.0.0.2\"}]}}",
		  "status.podIPs[1].ip: a second address of one family" },
		{ POD_HEAD "},\"status\":{\"podIPs\":[{}]}}", "status.podIPs[0].ip: missing" },
		{ POD_HEAD "},\"status\":{\"podIP\":\"fd00::g\"}}",
		  "status.podIP: \"fd00::g\" is not an IP address" },
		{ POD_HEAD "},\"status\":{\"podIP\":\"::ffff:10.0.0.1\"}}",
		  "status.podIP: \"::ffff:10.0.0.1\" is an IPv4-mapped IPv6 address" },
		{ "{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"podCIDR\":"
		  "\"::ffff:10.0.0.0/104\"}}",
		  "spec.podCIDR: \"::ffff:10.0.0.0/104\" is an IPv4-mapped IPv6 prefix" },
		{ "{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"podCIDR\":\"10.0.0.0/8/8\"}}",
		  "Node a: spec.podCIDR: \"10.0.0.0/8/8\" is not a CIDR" },
		{ "{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"},\"status\":{\"addresses\":"
		  "[{\"type\":\"InternalIP\",\"address\":\"node-a\"}]}}",
		  "Node a: status.addresses[0].address: \"node-a\" is not an IP address" },
		{ "{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"},\"status\":{\"nodeInfo\":"
		  "{\"bootID\":\"bootIDValue\"}}}",
		  "status.nodeInfo.bootID: \"bootIDValue\" is not a boot ID" },
		{ MCN_HEAD ",\"spec\":{\"keyGeneration\":\"1\"}}",
		  "spec.keyGeneration: expected an integer, got a string" },
		{ MCN_HEAD ",\"spec\":{\"keyGeneration\":4294967296}}",
		  "spec.keyGeneration: 4294967296 is not in 0..4294967295" },
		{ MCN_HEAD ",\"spec\":{\"keyGeneration\":-1}}", "-1 is not in" },
		{ MCN_HEAD ",\"spec\":{\"wireguardPublicKey\":\"abc\"}}",
		  "spec.wireguardPublicKey: \"abc\" is not a WireGuard key" },
		{ MCN_HEAD ",\"spec\":{\"addresses\":[\"10.0.0.1\",5]}}",
		  "spec.addresses[1]: expected a string, got an integer" },
		{ MCN_HEAD ",\"spec\":{\"podCIDRs\":[\"fd00::1/64\"]}}",
		  "spec.podCIDRs[0]: \"fd00::1/64\" is not a CIDR" },
		{ "{\"kind\":\"Secret\",\"metadata\":{\"name\":\"k\",\"namespace\":\"n\"},"
		  "\"data\":{\"keys\":\"!!!!\"}}",
		  "Secret n/k: data.keys: not valid base64" },
		{ "{\"kind\":\"Secret\",\"metadata\":{\"name\":\"k\",\"namespace\":\"n\"},"
		  "\"data\":{\"keys\":\"QQ=\"}}",
		  "data.keys: not valid base64" },
		{ "{\"kind\":\"Pod\",}", "JSON: unexpected character" },
		{ "{\"kind\":\"Pod\"} {}", "JSON: unexpected character" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_object_list *l = (struct mc_object_list *)1;
		struct mc_parse_error err;
		int r = mc_object_list_parse(cases[i].json, strlen(cases[i].json), &l, &err);

		if (r != -EINVAL || l || !strstr(err.message, cases[i].message))
			fail_msg("case %zu: r=%d message \"%s\", want \"%s\"", i, r, err.message,
			         cases[i].message);
		assert_int_equal(err.line, 1);
	}
}


/* One hostile item (a label value of a megabyte, a mapped address, not an object) is left out
 * of a List by the skipping parse, and only that one; a syntax error still fails it all. */
static void test_skipping_bad_items(void **state) {
	static const char good[] = POD_HEAD "},\"status\":{\"podIP\":\"10.0.0.1\"}}";
	size_t big = 1024 * 1024, skipped = 99;
	char *doc = malloc(big + 4096), *p;
	struct mc_object_list *l;
	struct mc_parse_error err;

	assert_non_null(doc);
	p = doc + sprintf(doc, "{\"kind\":\"List\",\"items\":[%s,", good);
	p += sprintf(p, "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"q\",\"namespace\":\"n\","
	                "\"labels\":{\"a\":\"");
	memset(p, 'x', big);
	p += big;
	p += sprintf(p, "\"}}},42,{\"kind\":\"Pod\",\"metadata\":{\"name\":\"r\","
	                "\"namespace\":\"n\"},\"status\":{\"podIP\":\"::ffff:10.0.0.2\"}},"
	                "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"s\",\"namespace\":\"n\"}}]}");
	assert_int_equal(mc_object_list_parse(doc, (size_t)(p - doc), &l, &err), -EINVAL);
	assert_null(l);
	assert_int_equal(mc_object_list_parse_skipping(doc, (size_t)(p - doc), &l, &skipped, &err),
	                 0);
	assert_int_equal(skipped, 3);
	assert_int_equal(mc_object_list_count(l), 2);
	assert_string_equal(mc_object_name(mc_object_list_get(l, 0)), "p");
	assert_string_equal(mc_object_name(mc_object_list_get(l, 1)), "s");
	assert_non_null(strstr(err.message, "IPv4-mapped"));
	mc_object_list_free(l);
	/* the same, kind after items (kubectl's order) */
	p = doc + sprintf(doc, "{\"items\":[%s,7],\"kind\":\"List\"}", good);
	assert_int_equal(mc_object_list_parse_skipping(doc, (size_t)(p - doc), &l, &skipped, &err),
	                 0);
	assert_int_equal(skipped, 1);
	assert_int_equal(mc_object_list_count(l), 1);
	mc_object_list_free(l);
	/* a syntax error is no item's */
	p = doc + sprintf(doc, "{\"kind\":\"List\",\"items\":[%s,{]}", good);
	assert_int_equal(mc_object_list_parse_skipping(doc, (size_t)(p - doc), &l, &skipped, &err),
	                 -EINVAL);
	assert_null(l);
	assert_int_equal(skipped, 0);
	free(doc);
}

static void test_single_object(void **state) {
	const char *pod = POD_HEAD "},\"status\":{\"podIPs\":[{\"ip\":\"10.0.0.1\"},"
	                  "{\"ip\":\"fd00::1\"},{\"ip\":\"10.0.0.1\"}]}}";
	const char *list = "{\"kind\":\"PodList\",\"items\":[]}";
	struct mc_parse_error err;
	struct mc_object *o;

	assert_int_equal(mc_object_parse(pod, strlen(pod), &o, &err), 0);
	assert_int_equal(mc_object_kind(o), MC_OBJECT_POD);
	assert_string_equal(mc_object_name(o), "p");
	assert_string_equal(mc_object_namespace(o), "n");
	assert_int_equal(o->pod.n_ips, 2); /* the repeated address counts once */
	mc_object_free(o);
	mc_object_free(NULL);
	mc_object_list_free(NULL);
	assert_int_equal(mc_object_parse(list, strlen(list), &o, &err), -EINVAL);
	assert_null(o);
	assert_int_equal(mc_object_parse(pod, strlen(pod), NULL, &err), -EINVAL);
	assert_string_equal(mc_object_kind_name(MC_OBJECT_MESHCRYPT_NODE), "MeshcryptNode");
	assert_null(mc_object_kind_name((enum mc_object_kind)99));
}

static void test_other_api_group(void **state) {
	const char *doc = "{\"kind\":\"List\",\"items\":["
	                  "{\"kind\":\"Node\",\"apiVersion\":\"example.com/v1\",\"metadata\":{}},"
	                  "{\"kind\":\"MeshcryptNode\",\"apiVersion\":\"v1\",\"metadata\":{}},"
	                  "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"}}]}";
	struct mc_object_list *l;

	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, NULL), 0);
	assert_int_equal(mc_object_list_count(l), 1);
	mc_object_list_free(l);
}

/* Member order, repeated keys, escapes, and which error wins: as when json-c decoded the
 * documents. */
static void test_json_details(void **state) {
	struct mc_object_list *l;
	struct mc_parse_error err;
	const struct mc_object *o;
	/* kubectl writes items before kind; a repeated key means its last value, a repeated
	 * container forgets the first; escaped keys and values are read unescaped */
	const char *doc = "{\"items\":[{\"metadata\":{\"namespace\":\"n\",\"name\":\"x\","
	                  "\"labels\":{\"a\":\"1\",\"b\":\"\\u00e9\\ud83d\\ude00\",\"a\":\"2\"}},"
	                  "\"kind\":\"Pod\",\"spec\":{\"nodeName\":\"n1\"},\"spec\":{\"hostNetwork\":true},"
	                  "\"metadata\":{\"namespace\":\"n\",\"name\":\"p\",\"labels\":{\"a\":\"1\","
	                  "\"b\":\"\\u00e9\\ud83d\\ude00\",\"a\":\"2\"}},\"\\u006bind\":\"Pod\"}],"
	                  "\"kind\":\"Node\",\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"7\"}}";

	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	assert_int_equal(mc_object_list_count(l), 1);
	assert_string_equal(mc_object_list_resource_version(l), "7");
	o = mc_object_list_get(l, 0);
	assert_string_equal(o->name, "p");
	assert_null(o->pod.node_name);
	assert_true(o->pod.host_network);
	assert_int_equal(o->n_labels, 2);
	assert_string_equal(o->labels[0].key, "a"); /* the first place, the last value */
	assert_string_equal(o->labels[0].value, "2");
	assert_string_equal(mc_object_label(o, "b"), "\xc3\xa9\xf0\x9f\x98\x80");
	mc_object_list_free(l);

	/* a kind given again after the items: the document is that one object */
	doc = "{\"kind\":\"List\",\"items\":[" POD_HEAD "}}],\"kind\":\"Pod\","
	      "\"metadata\":{\"name\":\"q\",\"namespace\":\"n\"}}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	assert_int_equal(mc_object_list_count(l), 1);
	assert_string_equal(mc_object_list_get(l, 0)->name, "q");
	mc_object_list_free(l);
	doc = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\"}],\"kind\":\"Service\"}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	assert_int_equal(mc_object_list_count(l), 0);
	assert_string_equal(err.message, "");
	mc_object_list_free(l);
	/* items converted under an earlier List kind are dropped when the last items are not
	 * converted on the way (found by tests/fuzz, regressions/list-kind-again-items-again.json) */
	doc = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"}}],"
	      "\"kind\":\"Service\",\"items\":[]}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	assert_int_equal(mc_object_list_count(l), 0);
	mc_object_list_free(l);
	doc = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"}}],"
	      "\"kind\":\"Service\",\"items\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"b\"}}],"
	      "\"kind\":\"List\"}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	assert_int_equal(mc_object_list_count(l), 1);
	assert_string_equal(mc_object_list_get(l, 0)->name, "b");
	mc_object_list_free(l);

	/* a null member counts as absent, even after a value */
	doc = POD_HEAD "},\"status\":{\"podIPs\":[{\"ip\":\"x\"}],\"podIPs\":null}}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	assert_int_equal(mc_object_list_get(l, 0)->pod.n_ips, 0);
	mc_object_list_free(l);

	/* a syntax error anywhere wins over a content error before it */
	doc = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\"},{\"kind\":\"Pod\" \"x\":1}]}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), -EINVAL);
	assert_null(l);
	assert_string_equal(err.message, "JSON: object value separator ',' expected");
	assert_int_equal(err.column, 54);
	doc = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\"}],\"metadata\":[}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), -EINVAL);
	assert_string_equal(err.message, "JSON: unexpected character");

	/* of two content errors, the first in the order of checks, not of the text */
	doc = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\",\"spec\":7,\"metadata\":{}}]}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), -EINVAL);
	assert_string_equal(err.message, "Pod items[0]: metadata.name: missing");
	assert_int_equal(err.column, 59);
	doc = "{\"items\":[{\"kind\":\"Pod\",\"metadata\":{}}],\"metadata\":5,\"kind\":\"List\"}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), -EINVAL);
	assert_string_equal(err.message, "metadata: expected an object, got an integer");
	doc = "{\"kind\":\"List\",\"metadata\":5,\"items\":[{\"kind\":\"Pod\",\"metadata\":{}}]}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), -EINVAL);
	assert_string_equal(err.message, "metadata: expected an object, got an integer");

	/* Secret data: escapes are undone before base64 */
	doc = "{\"kind\":\"Secret\",\"metadata\":{\"name\":\"k\",\"namespace\":\"n\"},"
	      "\"data\":{\"k\":\"\\u0059WJj\"}}";
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	o = mc_object_list_get(l, 0);
	assert_int_equal(o->secret.n_entries, 1);
	assert_int_equal(o->secret.entries[0].len, 3);
	assert_memory_equal(o->secret.entries[0].data, "abc", 3);
	mc_object_list_free(l);
}

/* A list's pods and namespaces live in its arena: one stolen is copied out, and outlives it. */
static void test_steal(void **state) {
	struct mc_object_list *l = load(CLUSTER "basic.json");
	struct mc_object *pod = NULL, *node = NULL, *ns = NULL;

	for (size_t i = 0; i < mc_object_list_count(l); i++) {
		const struct mc_object *o = mc_object_list_get(l, i);

		if (o->kind == MC_OBJECT_POD && strcmp(o->name, "web-b") == 0)
			pod = mci_object_list_steal(l, i);
		else if (o->kind == MC_OBJECT_NODE && !node)
			node = mci_object_list_steal(l, i);
		else if (o->kind == MC_OBJECT_NAMESPACE && strcmp(o->name, "secure") == 0)
			ns = mci_object_list_steal(l, i);
	}
	mc_object_list_free(l);
	assert_non_null(pod);
	assert_false(pod->in_arena);
	assert_string_equal(pod->namespace, "secure");
	assert_int_equal(pod->pod.n_ips, 2);
	assert_ip(&pod->pod.ips[1], "fd00:244:1::7");
	assert_non_null(pod->pod.node_name);
	assert_int_equal(pod->created, 1714557600);
	assert_non_null(node);
	assert_false(node->in_arena);
	assert_non_null(ns);
	assert_string_equal(mc_object_label(ns, "meshcrypt.io/encryption"), "enabled");
	mc_object_free(pod);
	mc_object_free(node);
	mc_object_free(ns);
}

/* A Pod whose field at "where" holds a string of n 'a's. */
static char *pod_with_long_string(size_t n, bool in_name) {
	const char *head = in_name ? "{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"n\",\"name\":\""
	                           : "{\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"n\",\"name\":\"p\","
	                             "\"annotations\":{\"big\":\"";
	const char *tail = in_name ? "\"}}" : "\"}}}";
	size_t hl = strlen(head), tl = strlen(tail);
	char *doc = malloc(hl + n + tl + 1);

	assert_non_null(doc);
	memcpy(doc, head, hl);
	memset(doc + hl, 'a', n);
	memcpy(doc + hl + n, tail, tl + 1);
	return doc;
}

static void test_huge_inputs(void **state) {
	size_t ten_mb = 10u << 20, depth = 100000;
	struct mc_object_list *l;
	struct mc_parse_error err;
	char *doc;

	/* a 10 MB annotation: ignored, like every unused field */
	doc = pod_with_long_string(ten_mb, false);
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), 0);
	assert_int_equal(mc_object_list_count(l), 1);
	mc_object_list_free(l);
	free(doc);

	/* a 10 MB name: refused, and the message stays short */
	doc = pod_with_long_string(ten_mb, true);
	assert_int_equal(mc_object_list_parse(doc, strlen(doc), &l, &err), -EINVAL);
	assert_null(l);
	assert_non_null(strstr(err.message, "metadata.name: \"aaaa"));
	assert_non_null(strstr(err.message, "...\" is longer than 253 characters"));
	free(doc);

	/* 100000 nested arrays */
	doc = malloc(2 * depth + 1);
	assert_non_null(doc);
	memset(doc, '[', depth);
	memset(doc + depth, ']', depth);
	doc[2 * depth] = '\0';
	assert_int_equal(mc_object_list_parse(doc, 2 * depth, &l, &err), -EINVAL);
	assert_non_null(strstr(err.message, "nested deeper than 64 levels"));
	assert_int_equal(err.line, 1);
	assert_int_equal(err.column, 65);
	free(doc);

	/* the size limit is checked before the text is read */
	assert_int_equal(mc_object_list_parse("{}", MC_DOCUMENT_MAX + 1, &l, &err), -EFBIG);
	assert_null(l);
}

static void test_missing_file(void **state) {
	struct mc_object_list *l;
	struct mc_parse_error err;

	assert_int_equal(mc_object_list_parse_file(MALFORMED "no-such-file.json", &l, &err),
	                 -ENOENT);
	assert_null(l);
	assert_non_null(strstr(err.message, "no-such-file.json"));
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ip_prefix),
		cmocka_unit_test(test_real_nodes),
		cmocka_unit_test(test_real_dual_stack_nodes),
		cmocka_unit_test(test_real_pods),
		cmocka_unit_test(test_real_namespaces),
		cmocka_unit_test(test_real_watch_events),
		cmocka_unit_test(test_real_other_kinds),
		cmocka_unit_test(test_real_synthetic),
		cmocka_unit_test(test_cluster_kinds),
		cmocka_unit_test(test_malformed_files),
		cmocka_unit_test(test_malformed_inline),
		cmocka_unit_test(test_skipping_bad_items),
		cmocka_unit_test(test_single_object),
		cmocka_unit_test(test_other_api_group),
		cmocka_unit_test(test_json_details),
		cmocka_unit_test(test_steal),
		cmocka_unit_test(test_huge_inputs),
		cmocka_unit_test(test_missing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
