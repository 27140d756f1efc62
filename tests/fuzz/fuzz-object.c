/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the Kubernetes object parser (include/meshcrypt/model.h): parses arbitrary
 * bytes as a List (mc_object_list_parse()) and as a single object (mc_object_parse()).
 *
 * Besides memory errors, leaks and undefined behaviour, a crash here means a result that
 * breaks what model.h and object-internal.h promise: a return value not in the list, an error
 * message that is not a string, an address or prefix that is not canonical, a name longer
 * than Kubernetes allows; or the two entry points disagreeing on the same bytes, which the
 * store and the sources rely on (a watch event's object is parsed alone, a full listing as a
 * List): the same syntax error, and the same object when a single one parses.
 *
 * Pods and Namespaces live in their list's arena (mmap(), which ASan does not watch), so each
 * object is also stolen out of the list, which copies it to the heap where ASan sees it.
 */

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include <meshcrypt/model.h>

#include "fuzz.h"
#include "object-internal.h"

static volatile unsigned char sink;

static void touch(const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sink ^= ((const unsigned char *)p)[i];
}

static void check_ip(const struct mc_ip *ip)
{
	char text[MC_IP_STRLEN];
	struct mc_ip back;

	FUZZ_CHECK(ip->family == AF_INET || ip->family == AF_INET6);
	if (ip->family == AF_INET)
		for (size_t i = 4; i < sizeof(ip->addr); i++)
			FUZZ_CHECK(ip->addr[i] == 0);
	FUZZ_CHECK(mc_ip_parse(mc_ip_to_string(ip, text), &back) == 0);
	FUZZ_CHECK(mc_ip_compare(ip, &back) == 0);
}

static void check_prefix(const struct mc_prefix *p)
{
	char text[MC_PREFIX_STRLEN];
	struct mc_prefix back;

	check_ip(&p->ip);
	FUZZ_CHECK(p->len <= (p->ip.family == AF_INET ? 32 : 128));
	/* the parser refuses host bits, so the text form parses back to the same prefix */
	FUZZ_CHECK(mc_prefix_parse(mc_prefix_to_string(p, text), &back) == 0);
	FUZZ_CHECK(mc_prefix_compare(p, &back) == 0);
	FUZZ_CHECK(mc_prefix_contains(p, &p->ip));
}

static void check_object(const struct mc_object *o)
{
	enum mc_object_kind kind = mc_object_kind(o);
	const char *ns = mc_object_namespace(o);

	FUZZ_CHECK(mc_object_kind_name(kind));
	FUZZ_CHECK(strlen(mc_object_name(o)) <= MC_NAME_MAX);
	FUZZ_CHECK(!ns || strlen(ns) <= MC_NAMESPACE_MAX);
	for (size_t i = 0; i < o->n_labels; i++) {
		touch(o->labels[i].value, strlen(o->labels[i].value));
		FUZZ_CHECK(mc_object_label(o, o->labels[i].key));
	}
	switch (kind) {
	case MC_OBJECT_NODE:
		for (size_t i = 0; i < o->node.n_addresses; i++)
			check_ip(&o->node.addresses[i]);
		for (size_t i = 0; i < o->node.n_pod_cidrs; i++)
			check_prefix(&o->node.pod_cidrs[i]);
		FUZZ_CHECK(strlen(o->node.boot_id) <= MC_BOOT_ID_LEN);
		break;
	case MC_OBJECT_POD:
		if (o->pod.node_name)
			FUZZ_CHECK(strlen(o->pod.node_name) <= MC_NAME_MAX);
		for (size_t i = 0; i < o->pod.n_ips; i++)
			check_ip(&o->pod.ips[i]);
		break;
	case MC_OBJECT_MESHCRYPT_NODE:
		for (size_t i = 0; i < o->mcnode.n_addresses; i++)
			check_ip(&o->mcnode.addresses[i]);
		for (size_t i = 0; i < o->mcnode.n_pod_cidrs; i++)
			check_prefix(&o->mcnode.pod_cidrs[i]);
		FUZZ_CHECK(strlen(o->mcnode.boot_id) <= MC_BOOT_ID_LEN);
		FUZZ_CHECK(strlen(o->mcnode.wireguard_public_key) <= MC_WG_KEY_LEN);
		break;
	case MC_OBJECT_SECRET:
		for (size_t i = 0; i < o->secret.n_entries; i++) {
			touch(o->secret.entries[i].key, strlen(o->secret.entries[i].key));
			touch(o->secret.entries[i].data, o->secret.entries[i].len);
		}
		break;
	case MC_OBJECT_NAMESPACE:
		break;
	}
}

static void check_error(const struct mc_parse_error *err)
{
	FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)));
	FUZZ_CHECK(err->message[0] != '\0');
	FUZZ_CHECK(err->line >= 0 && err->column >= 0);
}

static bool is_syntax_error(const struct mc_parse_error *err)
{
	return strncmp(err->message, "JSON: ", 6) == 0;
}

static bool same_string(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	struct mc_parse_error list_err, obj_err;
	struct mc_object_list *list;
	struct mc_object *obj;
	int lr, objr;

	lr = mc_object_list_parse(json, size, &list, &list_err);
	FUZZ_CHECK(lr == 0 || lr == -EINVAL || lr == -ENOMEM);
	FUZZ_CHECK((lr == 0) == (list != NULL));
	if (lr < 0)
		check_error(&list_err);
	else
		for (size_t i = 0; i < mc_object_list_count(list); i++)
			check_object(mc_object_list_get(list, i));

	objr = mc_object_parse(json, size, &obj, &obj_err);
	FUZZ_CHECK(objr == 0 || objr == -EINVAL || objr == -ENOTSUP || objr == -ENOMEM);
	FUZZ_CHECK((objr == 0) == (obj != NULL));
	if (objr < 0) {
		check_error(&obj_err);
	} else {
		check_object(obj);
		/* a single object reads the same as a document of its own */
		FUZZ_CHECK(lr == 0 && mc_object_list_count(list) == 1);
		FUZZ_CHECK(mc_object_kind(mc_object_list_get(list, 0)) == mc_object_kind(obj));
		FUZZ_CHECK(same_string(mc_object_name(mc_object_list_get(list, 0)),
				       mc_object_name(obj)));
		FUZZ_CHECK(same_string(mc_object_namespace(mc_object_list_get(list, 0)),
				       mc_object_namespace(obj)));
	}
	/* a kind meshcrypt does not read is skipped in a List, as a List item would be */
	if (objr == -ENOTSUP)
		FUZZ_CHECK(lr == 0 && mc_object_list_count(list) == 0);
	/* a syntax error wins over every content error, whichever way the bytes are read */
	if (objr < 0 && is_syntax_error(&obj_err)) {
		FUZZ_CHECK(lr < 0 && strcmp(list_err.message, obj_err.message) == 0);
		FUZZ_CHECK(list_err.line == obj_err.line && list_err.column == obj_err.column);
	}
	if (lr < 0 && is_syntax_error(&list_err))
		FUZZ_CHECK(objr < 0 && is_syntax_error(&obj_err));
	mc_object_free(obj);

	for (size_t i = 0; lr == 0 && i < mc_object_list_count(list); i++) {
		struct mc_object *stolen = mci_object_list_steal(list, i);

		FUZZ_CHECK(stolen);
		check_object(stolen);
		mc_object_free(stolen);
	}
	mc_object_list_free(list);
	return 0;
}
