/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meshcrypt cluster model: addresses, prefixes and the Kubernetes objects meshcrypt reads
 * (Node, Namespace, Pod, MeshcryptNode, Secret), parsed from JSON.
 *
 * The parser keeps only the fields meshcrypt needs (docs/model.md) and ignores every other
 * field. Wrong types, bad addresses, bad CIDRs and missing required fields are errors whose
 * message names the object and the field.
 *
 * Conventions: int functions return 0 or -errno; pointer functions return NULL and set errno;
 * every *_free(NULL) is a no-op.
 */
#ifndef MESHCRYPT_MODEL_H
#define MESHCRYPT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Length of a boot ID (a UUID in its 36-character text form), without the terminating NUL. */
#define MC_BOOT_ID_LEN 36

/* Length of a WireGuard public key in base64, without the terminating NUL. */
#define MC_WG_KEY_LEN 44

/*
 * An IPv4 or IPv6 address. family is AF_INET or AF_INET6. An IPv4 address sits in addr[0..3]
 * and the other bytes are zero, so two addresses are equal exactly when memcmp() says so;
 * initialise the whole struct (e.g. with memset) before filling it by hand.
 */
struct mc_ip {
	uint8_t family;
	uint8_t addr[16];
};

/* An address prefix. len is at most 32 (IPv4) or 128 (IPv6) and the host bits are zero. */
struct mc_prefix {
	struct mc_ip ip;
	uint8_t len;
};

/* Buffer sizes for the text forms, NUL included. */
#define MC_IP_STRLEN 46     /* INET6_ADDRSTRLEN */
#define MC_PREFIX_STRLEN 50 /* MC_IP_STRLEN + "/128" */

/* Parses "10.0.0.1" or "fd00::1" into *out. Returns -EINVAL for anything else. */
int mc_ip_parse(const char *s, struct mc_ip *out);

/*
 * Parses "10.244.0.0/24" or "fd00:10:244::/64" into *out. A prefix without "/len" is refused,
 * and so is one with host bits set ("10.244.0.1/24"): Kubernetes never hands those out, and
 * accepting them would hide a typo in a cluster file. Returns 0 or -EINVAL.
 */
int mc_prefix_parse(const char *s, struct mc_prefix *out);

/* Writes the text form of ip into buf and returns buf ("?" for an unknown family). */
const char *mc_ip_to_string(const struct mc_ip *ip, char buf[MC_IP_STRLEN]);

/* Writes "address/len" into buf and returns buf. */
const char *mc_prefix_to_string(const struct mc_prefix *p, char buf[MC_PREFIX_STRLEN]);

/* Whether ip lies inside p (false when the families differ). */
bool mc_prefix_contains(const struct mc_prefix *p, const struct mc_ip *ip);

/* Total order (family, address bytes) for sorting; returns <0, 0 or >0. */
int mc_ip_compare(const struct mc_ip *a, const struct mc_ip *b);

/* Total order (family, address bytes, length) for sorting; returns <0, 0 or >0. */
int mc_prefix_compare(const struct mc_prefix *a, const struct mc_prefix *b);

enum mc_object_kind {
	MC_OBJECT_NODE = 1,
	MC_OBJECT_NAMESPACE,
	MC_OBJECT_POD,
	MC_OBJECT_MESHCRYPT_NODE,
	MC_OBJECT_SECRET,
};

/* Bit of a kind in a kind mask (mc_store_replace_kinds()). */
#define MC_OBJECT_KIND_BIT(kind) (1u << (unsigned)(kind))
#define MC_OBJECT_KINDS_ALL                                                                      \
	(MC_OBJECT_KIND_BIT(MC_OBJECT_NODE) | MC_OBJECT_KIND_BIT(MC_OBJECT_NAMESPACE) |             \
	 MC_OBJECT_KIND_BIT(MC_OBJECT_POD) | MC_OBJECT_KIND_BIT(MC_OBJECT_MESHCRYPT_NODE) |         \
	 MC_OBJECT_KIND_BIT(MC_OBJECT_SECRET))

/* The Kubernetes kind name ("Pod", "MeshcryptNode", ...), or NULL for an unknown value. */
const char *mc_object_kind_name(enum mc_object_kind kind);

/* One parsed object. Immutable once parsed; the store takes it over on mc_store_upsert(). */
struct mc_object;

enum mc_object_kind mc_object_kind(const struct mc_object *obj);
/* NULL for cluster-scoped kinds (Node, Namespace, MeshcryptNode). Valid while obj lives. */
const char *mc_object_namespace(const struct mc_object *obj);
/* Valid while obj lives. */
const char *mc_object_name(const struct mc_object *obj);
/* Value of label key on a Namespace or Pod, or NULL when absent. Valid while obj lives. */
const char *mc_object_label(const struct mc_object *obj, const char *key);
/* Frees obj; NULL is a no-op. A Secret's values are wiped first. */
void mc_object_free(struct mc_object *obj);

/* The objects of one document, in document order. */
struct mc_object_list;

size_t mc_object_list_count(const struct mc_object_list *list);
/* Object i (< count). The list keeps ownership; valid while the list lives. */
const struct mc_object *mc_object_list_get(const struct mc_object_list *list, size_t i);
/* The List's metadata.resourceVersion, or NULL when it has none. Valid while the list lives. */
const char *mc_object_list_resource_version(const struct mc_object_list *list);
/* Frees the list and its objects; NULL is a no-op. */
void mc_object_list_free(struct mc_object_list *list);

/*
 * Where and why a parse failed. line and column are 1-based positions in the document (0 when
 * unknown, e.g. a file that could not be read); message names the object and the field, e.g.
 *   Pod default/web-1: status.podIPs[0].ip: "10.0.0.300" is not an IP address
 */
struct mc_parse_error {
	int line;
	int column;
	char message[256];
};

/* Largest document the parser accepts; larger ones fail with -EFBIG. */
#define MC_DOCUMENT_MAX ((size_t)256 << 20)

/*
 * Parses a Kubernetes List (kind "List" or "<Kind>List", with items[]) or a single object.
 * Items of kinds meshcrypt does not read (Service, CiliumNode, ...) are skipped. Items of a
 * "<Kind>List" may omit their kind, as kubelet's PodList does.
 *
 * json need not be NUL-terminated. On success *out is a new list the caller frees with
 * mc_object_list_free(). On failure *out is NULL and nothing is allocated; err (may be NULL)
 * says why. Returns 0, -EINVAL (syntax or content), -EFBIG (document too large) or -ENOMEM.
 */
int mc_object_list_parse(const char *json, size_t len, struct mc_object_list **out,
                         struct mc_parse_error *err);

/*
 * Like mc_object_list_parse(), but an item whose content is wrong (a label value of a megabyte,
 * an address that is none) is left out instead of failing the list, and counted in *skipped;
 * err then holds the last such item's error. For documents the cluster writes, where one
 * hostile object must not hold up every other; syntax errors still fail it all.
 */
int mc_object_list_parse_skipping(const char *json, size_t len, struct mc_object_list **out,
                                  size_t *skipped, struct mc_parse_error *err);

/* Like mc_object_list_parse() on the contents of path; also returns the error of open/read. */
int mc_object_list_parse_file(const char *path, struct mc_object_list **out,
                              struct mc_parse_error *err);

/*
 * Parses one object (e.g. a watch event's "object"). On success *out is a new object the
 * caller frees with mc_object_free(); on failure *out is NULL. Returns 0, -EINVAL, -ENOTSUP
 * (a well-formed object of a kind meshcrypt does not read), -EFBIG or -ENOMEM.
 */
int mc_object_parse(const char *json, size_t len, struct mc_object **out,
                    struct mc_parse_error *err);

#ifdef __cplusplus
}
#endif

#endif
