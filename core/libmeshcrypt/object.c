/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Addresses, prefixes and the parsed-object containers. */

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "object-internal.h"

int mc_ip_parse(const char *s, struct mc_ip *out)
{
	struct mc_ip ip;

	if (!s || !out)
		return -EINVAL;
	memset(&ip, 0, sizeof(ip));
	if (inet_pton(AF_INET, s, ip.addr) == 1)
		ip.family = AF_INET;
	else if (inet_pton(AF_INET6, s, ip.addr) == 1)
		ip.family = AF_INET6;
	else
		return -EINVAL;
	*out = ip;
	return 0;
}

static unsigned family_bits(uint8_t family)
{
	return family == AF_INET ? 32 : 128;
}

int mc_prefix_parse(const char *s, struct mc_prefix *out)
{
	char addr[MC_IP_STRLEN];
	struct mc_prefix p;
	const char *slash;
	char *end;
	unsigned long len;
	size_t n;

	if (!s || !out)
		return -EINVAL;
	slash = strchr(s, '/');
	if (!slash || (n = (size_t)(slash - s)) >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, n);
	addr[n] = '\0';
	memset(&p, 0, sizeof(p));
	if (mc_ip_parse(addr, &p.ip) < 0)
		return -EINVAL;
	/* strtoul would accept " 24", "+24" and "024"; a CIDR has plain decimal digits. */
	if (slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' && slash[2] != '\0'))
		return -EINVAL;
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (errno || *end != '\0' || len > family_bits(p.ip.family))
		return -EINVAL;
	p.len = (uint8_t)len;
	for (unsigned bit = p.len; bit < 128; bit++)
		if (p.ip.addr[bit / 8] & (0x80 >> (bit % 8)))
			return -EINVAL;
	*out = p;
	return 0;
}

const char *mc_ip_to_string(const struct mc_ip *ip, char buf[MC_IP_STRLEN])
{
	if (!ip || (ip->family != AF_INET && ip->family != AF_INET6) ||
	    !inet_ntop(ip->family, ip->addr, buf, MC_IP_STRLEN))
		snprintf(buf, MC_IP_STRLEN, "?");
	return buf;
}

const char *mc_prefix_to_string(const struct mc_prefix *p, char buf[MC_PREFIX_STRLEN])
{
	char ip[MC_IP_STRLEN];

	snprintf(buf, MC_PREFIX_STRLEN, "%s/%u", mc_ip_to_string(&p->ip, ip), (unsigned)p->len);
	return buf;
}

bool mc_prefix_contains(const struct mc_prefix *p, const struct mc_ip *ip)
{
	unsigned full = p->len / 8, rest = p->len % 8;

	if (p->ip.family != ip->family)
		return false;
	if (memcmp(p->ip.addr, ip->addr, full) != 0)
		return false;
	return rest == 0 || ((p->ip.addr[full] ^ ip->addr[full]) & (0xff00 >> rest)) == 0;
}

int mc_ip_compare(const struct mc_ip *a, const struct mc_ip *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->addr, b->addr, sizeof(a->addr));
}

int mc_prefix_compare(const struct mc_prefix *a, const struct mc_prefix *b)
{
	int r = mc_ip_compare(&a->ip, &b->ip);

	if (r != 0)
		return r;
	return (int)a->len - (int)b->len;
}

const char *mc_object_kind_name(enum mc_object_kind kind)
{
	switch (kind) {
	case MC_OBJECT_NODE:
		return "Node";
	case MC_OBJECT_NAMESPACE:
		return "Namespace";
	case MC_OBJECT_POD:
		return "Pod";
	case MC_OBJECT_MESHCRYPT_NODE:
		return "MeshcryptNode";
	case MC_OBJECT_SECRET:
		return "Secret";
	}
	return NULL;
}

enum mc_object_kind mc_object_kind(const struct mc_object *obj)
{
	return obj->kind;
}

const char *mc_object_namespace(const struct mc_object *obj)
{
	return obj->namespace;
}

const char *mc_object_name(const struct mc_object *obj)
{
	return obj->name;
}

const char *mc_object_label(const struct mc_object *obj, const char *key)
{
	for (size_t i = 0; i < obj->n_labels; i++)
		if (strcmp(obj->labels[i].key, key) == 0)
			return obj->labels[i].value;
	return NULL;
}

void mc_object_free(struct mc_object *obj)
{
	/* an arena object goes with its list */
	if (!obj || obj->in_arena)
		return;
	for (size_t i = 0; i < obj->n_labels; i++) {
		free(obj->labels[i].key);
		free(obj->labels[i].value);
	}
	free(obj->labels);
	switch (obj->kind) {
	case MC_OBJECT_NODE:
		free(obj->node.addresses);
		free(obj->node.pod_cidrs);
		break;
	case MC_OBJECT_POD:
		free(obj->pod.node_name);
		free(obj->pod.ips);
		break;
	case MC_OBJECT_MESHCRYPT_NODE:
		free(obj->mcnode.addresses);
		free(obj->mcnode.pod_cidrs);
		break;
	case MC_OBJECT_SECRET:
		for (size_t i = 0; i < obj->secret.n_entries; i++) {
			struct mc_secret_entry *e = &obj->secret.entries[i];

			free(e->key);
			if (e->data)
				explicit_bzero(e->data, e->len);
			free(e->data);
		}
		free(obj->secret.entries);
		break;
	case MC_OBJECT_NAMESPACE:
		break;
	}
	free(obj->namespace);
	free(obj->name);
	free(obj);
}

size_t mc_object_list_count(const struct mc_object_list *list)
{
	return list ? list->n_objects : 0;
}

const struct mc_object *mc_object_list_get(const struct mc_object_list *list, size_t i)
{
	return i < list->n_objects ? list->objects[i] : NULL;
}

const char *mc_object_list_resource_version(const struct mc_object_list *list)
{
	return list->resource_version;
}

/* A heap copy of an arena object: a Pod or a Namespace. */
static struct mc_object *object_to_heap(const struct mc_object *src)
{
	struct mc_object *o = calloc(1, sizeof(*o));
	bool ok;

	if (!o)
		return NULL;
	o->kind = src->kind;
	o->created = src->created;
	ok = (o->name = strdup(src->name)) &&
	     (!src->namespace || (o->namespace = strdup(src->namespace)));
	if (ok && src->n_labels)
		ok = (o->labels = calloc(src->n_labels, sizeof(*o->labels)));
	for (size_t i = 0; ok && i < src->n_labels; i++, o->n_labels++)
		ok = (o->labels[i].key = strdup(src->labels[i].key)) &&
		     (o->labels[i].value = strdup(src->labels[i].value));
	if (ok && src->kind == MC_OBJECT_POD) {
		o->pod.host_network = src->pod.host_network;
		o->pod.terminated = src->pod.terminated;
		ok = !src->pod.node_name || (o->pod.node_name = strdup(src->pod.node_name));
		if (ok && src->pod.n_ips)
			ok = (o->pod.ips = malloc(src->pod.n_ips * sizeof(*o->pod.ips)));
		if (ok && src->pod.n_ips) {
			memcpy(o->pod.ips, src->pod.ips, src->pod.n_ips * sizeof(*o->pod.ips));
			o->pod.n_ips = src->pod.n_ips;
		}
	}
	if (!ok) {
		mc_object_free(o);
		errno = ENOMEM;
		return NULL;
	}
	return o;
}

struct mc_object *mci_object_list_steal(struct mc_object_list *list, size_t i)
{
	struct mc_object *obj = list->objects[i];

	if (obj && obj->in_arena && !(obj = object_to_heap(obj)))
		return NULL;
	list->objects[i] = NULL;
	return obj;
}

struct mci_arena_block {
	struct mci_arena_block *next;
	size_t size; /* of the mapping, this header included */
};

#define ARENA_BLOCK ((size_t)1 << 20)
#define ARENA_ALIGN (sizeof(max_align_t))

void *mci_arena_alloc(struct mci_arena *a, size_t size)
{
	size_t header = (sizeof(struct mci_arena_block) + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	struct mci_arena_block *b;
	void *p;

	if (size > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	size = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	if (size > a->left) {
		/* a large request gets a block of its own; the current one stays in use */
		size_t bsize = size > ARENA_BLOCK / 4 ? header + size : ARENA_BLOCK;

		/* mmap, not malloc: the blocks go back to the system when the list is freed */
		b = mmap(NULL, bsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b == MAP_FAILED) {
			errno = ENOMEM;
			return NULL;
		}
		b->size = bsize;
		if (bsize != ARENA_BLOCK && a->blocks) {
			b->next = a->blocks->next;
			a->blocks->next = b;
			return (char *)b + header;
		}
		b->next = a->blocks;
		a->blocks = b;
		a->next = (char *)b + header;
		a->left = bsize - header;
	}
	/* fresh mappings are zeroed and nothing in a block is used twice */
	p = a->next;
	a->next += size;
	a->left -= size;
	return p;
}

static void arena_free(struct mci_arena *a)
{
	while (a->blocks) {
		struct mci_arena_block *b = a->blocks;

		a->blocks = b->next;
		munmap(b, b->size);
	}
	a->next = NULL;
	a->left = 0;
}

void mc_object_list_free(struct mc_object_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->n_objects; i++)
		mc_object_free(list->objects[i]);
	free(list->objects);
	free(list->resource_version);
	arena_free(&list->arena);
	free(list);
}
