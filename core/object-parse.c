/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kubernetes JSON -> struct mc_object. json-c decodes the document; this file keeps the few
 * fields meshcrypt reads and checks them. An error names the object and the field; when the
 * document text is at hand, a small scanner walks it along the field's path to give the line.
 */

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "object-internal.h"

/* Kubernetes objects nest about 20 levels deep (managedFields); 64 leaves room, and bounds the
 * recursion of json-c and of locate() below. */
#define MC_JSON_DEPTH 64
#define PATH_DEPTH 8
#define LABEL_KEY_MAX 317 /* prefix (253) + '/' + name (63) */
#define LABEL_VALUE_MAX 63
#define QUOTE_MAX 48

struct path_elem {
	const char *key; /* NULL: an array index */
	size_t index;
};

struct pctx {
	struct mc_parse_error *err;
	const char *text; /* NULL when converting a decoded tree */
	size_t len;
	long item; /* index in the List's items[], -1 for a document that is one object */
	const char *kind;
	const char *ns, *name;
	struct path_elem path[PATH_DEPTH];
	unsigned depth;
};

/* --- scanning the text: locating a field, splitting a List ------------------------------- */

/* The scanner never validates (json-c does), it only finds boundaries and stays in bounds. */
static const char *skip_ws(const char *p, const char *end) {
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* End of the string at p (at its '"'), or NULL when it does not end. */
static const char *skip_string(const char *p, const char *end) {
	for (p++; p < end; p++) {
		const char *q = memchr(p, '"', (size_t)(end - p)), *b = q;

		if (!q)
			return NULL;
		/* a quote after an odd number of backslashes is escaped */
		while (b > p && b[-1] == '\\')
			b--;
		if ((q - b) % 2 == 0)
			return q + 1;
		p = q;
	}
	return NULL;
}

static const bool structural[256] = { ['"'] = true, ['{'] = true, ['['] = true, ['}'] = true,
	                               [']'] = true };

/* End of the JSON value at p, or NULL. It need not validate: the fast path below has json-c
 * decode each span, and the locator runs only on text json-c accepted. */
static const char *span_end(const char *p, const char *end) {
	unsigned depth = 0;

	do {
		if (p >= end)
			return NULL;
		if (*p == '"') {
			if (!(p = skip_string(p, end)))
				return NULL;
		} else if (*p == '{' || *p == '[') {
			depth++, p++;
		} else if (*p == '}' || *p == ']') {
			if (depth-- == 0)
				return NULL;
			p++;
		} else if (depth == 0) {
			while (p < end && !strchr(" \t\r\n,:]}", *p))
				p++;
			return p;
		} else {
			/* inside a container only quotes and brackets matter: skip to the next one */
			for (p++; p < end && !structural[(unsigned char)*p]; p++)
				;
		}
	} while (depth > 0);
	return p;
}

/* p at '{': returns the start of member key's value, or NULL. */
static const char *find_member(const char *p, const char *end, const char *key) {
	size_t klen = strlen(key);

	for (p = skip_ws(p + 1, end); p < end && *p == '"';) {
		const char *k = p + 1, *v = skip_string(p, end);
		bool match;

		if (!v)
			return NULL;
		match = (size_t)(v - 1 - k) == klen && memcmp(k, key, klen) == 0;
		v = skip_ws(v, end);
		if (v >= end || *v != ':')
			return NULL;
		v = skip_ws(v + 1, end);
		if (match)
			return v;
		if (!(p = span_end(v, end)))
			return NULL;
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return NULL;
}

/* p at '[': returns the start of element index, or NULL. */
static const char *find_index(const char *p, const char *end, size_t index) {
	p = skip_ws(p + 1, end);
	for (size_t i = 0; p < end && *p != ']'; i++) {
		if (i == index)
			return p;
		if (!(p = span_end(p, end)))
			return NULL;
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return NULL;
}

static const char *descend(const char *p, const char *end, const struct path_elem *e) {
	if (e->key)
		return *p == '{' ? find_member(p, end, e->key) : NULL;
	return *p == '[' ? find_index(p, end, e->index) : NULL;
}

static void set_position(struct mc_parse_error *err, const char *text, size_t offset) {
	err->line = 1;
	err->column = 1;
	for (size_t i = 0; i < offset; i++) {
		if (text[i] == '\n') {
			err->line++;
			err->column = 1;
		} else {
			err->column++;
		}
	}
}

/* Points err at the deepest element of the path that exists (its parent, for a missing one). */
static void locate(struct pctx *c, const char *last_key) {
	const char *end = c->text + c->len, *p = skip_ws(c->text, end), *next;
	struct path_elem items[2] = { { "items", 0 }, { NULL, (size_t)c->item } };
	struct path_elem last = { last_key, 0 };

	for (unsigned i = 0; c->item >= 0 && i < 2; i++, p = next)
		if (!(next = descend(p, end, &items[i])))
			goto out;
	for (unsigned i = 0; i < c->depth; i++, p = next)
		if (!(next = descend(p, end, &c->path[i])))
			goto out;
	if (last_key && (next = descend(p, end, &last)))
		p = next;
out:
	set_position(c->err, c->text, (size_t)(p - c->text));
}

/* --- errors ------------------------------------------------------------------------------ */

static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...) {
	va_list ap;
	int n;

	if (*pos >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, size - *pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos += (size_t)n;
}

static int fail(struct pctx *c, int r, const char *last_key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Fills the error as "<Kind> <ns>/<name>: <field path>: <detail>" and returns r. */
static int fail(struct pctx *c, int r, const char *last_key, const char *fmt, ...) {
	struct mc_parse_error *err = c->err;
	size_t pos = 0, size = sizeof(err->message);
	char *m = err->message;
	bool field = c->depth > 0 || last_key;
	va_list ap;

	if (c->kind)
		append(m, size, &pos, "%s ", c->kind);
	if (c->name && c->ns)
		append(m, size, &pos, "%s/%s: ", c->ns, c->name);
	else if (c->name)
		append(m, size, &pos, "%s: ", c->name);
	else if (c->item >= 0)
		append(m, size, &pos, "items[%ld]: ", c->item);
	else if (c->kind)
		append(m, size, &pos, "(unnamed): ");
	for (unsigned i = 0; i < c->depth; i++) {
		if (c->path[i].key)
			append(m, size, &pos, "%s%s", i ? "." : "", c->path[i].key);
		else
			append(m, size, &pos, "[%zu]", c->path[i].index);
	}
	if (last_key)
		append(m, size, &pos, "%s%s", c->depth ? "." : "", last_key);
	if (field)
		append(m, size, &pos, ": ");
	if (pos < size) {
		va_start(ap, fmt);
		vsnprintf(m + pos, size - pos, fmt, ap);
		va_end(ap);
	}
	if (c->text)
		locate(c, last_key);
	else
		err->line = err->column = 0;
	return r;
}

/* A value for a message: quoted, cut at QUOTE_MAX characters, control bytes shown as '?'. */
static const char *quote(char buf[QUOTE_MAX + 8], const char *s, size_t len) {
	size_t n = len > QUOTE_MAX ? QUOTE_MAX : len, o = 0;

	buf[o++] = '"';
	for (size_t i = 0; i < n; i++)
		buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (n < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* --- typed access ------------------------------------------------------------------------ */

static void push_key(struct pctx *c, const char *key) {
	c->path[c->depth++] = (struct path_elem){ key, 0 };
}

static void push_index(struct pctx *c, size_t index) {
	c->path[c->depth++] = (struct path_elem){ NULL, index };
}

static void pop(struct pctx *c) {
	c->depth--;
}

static const char *type_name(enum json_type t) {
	switch (t) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "?";
}

/* Member key of parent, checked to be of type want. Absent and null both give *out = NULL:
 * Kubernetes writes null for empty lists ("conditions": null). */
static int member(struct pctx *c, struct json_object *parent, const char *key, enum json_type want,
                  struct json_object **out) {
	struct json_object *v = NULL;

	*out = NULL;
	if (!parent || !json_object_object_get_ex(parent, key, &v) || !v)
		return 0;
	if (json_object_get_type(v) != want)
		return fail(c, -EINVAL, key, "expected %s, got %s", type_name(want),
		            type_name(json_object_get_type(v)));
	*out = v;
	return 0;
}

/* A string value, refusing embedded NUL bytes; *len may be NULL. */
static int string_value(struct pctx *c, struct json_object *v, const char *key, const char **s,
                        size_t *len) {
	size_t n = (size_t)json_object_get_string_len(v);

	*s = json_object_get_string(v);
	if (strlen(*s) != n)
		return fail(c, -EINVAL, key, "contains a NUL character");
	if (len)
		*len = n;
	return 0;
}

static int member_string(struct pctx *c, struct json_object *parent, const char *key,
                         const char **s, size_t *len) {
	struct json_object *v;
	int r = member(c, parent, key, json_type_string, &v);

	*s = NULL;
	if (len)
		*len = 0;
	if (r < 0 || !v)
		return r;
	return string_value(c, v, key, s, len);
}

/* --- field checks ------------------------------------------------------------------------ */

static bool dns_chars(const char *s, size_t len) {
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return len > 0;
}

/* A DNS-style Kubernetes name of at most max characters, copied into *out. */
static int name_value(struct pctx *c, const char *key, const char *s, size_t len, size_t max,
                      char **out) {
	char q[QUOTE_MAX + 8];

	if (len == 0)
		return fail(c, -EINVAL, key, "must not be empty");
	if (len > max)
		return fail(c, -EINVAL, key, "%s is longer than %zu characters", quote(q, s, len), max);
	if (!dns_chars(s, len))
		return fail(c, -EINVAL, key, "%s is not a DNS name (a-z, 0-9, '-', '.')",
		            quote(q, s, len));
	*out = strndup(s, len);
	return *out ? 0 : -ENOMEM;
}

static int ip_value(struct pctx *c, const char *key, const char *s, size_t len, struct mc_ip *out) {
	char q[QUOTE_MAX + 8];

	if (mc_ip_parse(s, out) < 0)
		return fail(c, -EINVAL, key, "%s is not an IP address", quote(q, s, len));
	return 0;
}

static int prefix_value(struct pctx *c, const char *key, const char *s, size_t len,
                        struct mc_prefix *out) {
	char q[QUOTE_MAX + 8];

	if (mc_prefix_parse(s, out) < 0)
		return fail(c, -EINVAL, key, "%s is not a CIDR (network address/length)",
		            quote(q, s, len));
	return 0;
}

/* A boot ID is HKDF input on both ends (DESIGN.md §6): exactly a 36-character UUID. */
static int boot_id_member(struct pctx *c, struct json_object *parent, const char *key,
                          char out[MC_BOOT_ID_LEN + 1]) {
	char q[QUOTE_MAX + 8];
	const char *s;
	size_t len;
	int r = member_string(c, parent, key, &s, &len);

	if (r < 0 || !s || len == 0)
		return r;
	for (size_t i = 0; i < len && len == MC_BOOT_ID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			len = 0;
	}
	if (len != MC_BOOT_ID_LEN)
		return fail(c, -EINVAL, key, "%s is not a boot ID (a UUID)", quote(q, s, strlen(s)));
	memcpy(out, s, MC_BOOT_ID_LEN + 1);
	return 0;
}

static int b64_digit(char ch) {
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = ch ? strchr(alphabet, ch) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

/* Standard base64 with padding, as Kubernetes encodes Secret data. *out gets len/4*3 bytes of
 * room (plus a NUL, so text keys can be used as strings). */
static int base64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len) {
	uint8_t *buf;
	size_t o = 0;

	if (len % 4 != 0)
		return -EINVAL;
	buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 4) {
		int d[4];
		unsigned pad = 0;

		for (unsigned j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == len && j >= 2 && (j == 3 || s[i + 3] == '=')) {
				d[j] = 0;
				pad++;
			} else if ((d[j] = b64_digit(s[i + j])) < 0) {
				explicit_bzero(buf, len / 4 * 3 + 1);
				free(buf);
				return -EINVAL;
			}
		}
		buf[o++] = (uint8_t)(d[0] << 2 | d[1] >> 4);
		if (pad < 2)
			buf[o++] = (uint8_t)(d[1] << 4 | d[2] >> 2);
		if (pad < 1)
			buf[o++] = (uint8_t)(d[2] << 6 | d[3]);
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
}

static int wireguard_key_member(struct pctx *c, struct json_object *parent,
                                char out[MC_WG_KEY_LEN + 1]) {
	const char *key = "wireguardPublicKey";
	char q[QUOTE_MAX + 8];
	uint8_t *raw = NULL;
	const char *s;
	size_t len, raw_len = 0;
	int r = member_string(c, parent, key, &s, &len);

	if (r < 0 || !s || len == 0)
		return r;
	r = len == MC_WG_KEY_LEN ? base64_decode(s, len, &raw, &raw_len) : -EINVAL;
	free(raw);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || raw_len != 32)
		return fail(c, -EINVAL, key, "%s is not a WireGuard key (32 bytes in base64)",
		            quote(q, s, len));
	memcpy(out, s, MC_WG_KEY_LEN + 1);
	return 0;
}

/* An array member of strings, each converted by conv into elements of size elem_size. */
typedef int (*conv_fn)(struct pctx *c, const char *key, const char *s, size_t len, void *out);

static int string_array(struct pctx *c, struct json_object *parent, const char *key,
                        size_t elem_size, conv_fn conv, void **out, size_t *n_out) {
	struct json_object *arr;
	uint8_t *elems = NULL;
	size_t n = 0, count;
	int r = member(c, parent, key, json_type_array, &arr);

	if (r < 0 || !arr)
		return r;
	count = json_object_array_length(arr);
	if (count == 0)
		return 0;
	elems = calloc(count, elem_size);
	if (!elems)
		return -ENOMEM;
	push_key(c, key);
	for (size_t i = 0; i < count; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *s = NULL;
		size_t len = 0;

		push_index(c, i);
		if (json_object_get_type(v) != json_type_string)
			r = fail(c, -EINVAL, NULL, "expected a string, got %s",
			         type_name(json_object_get_type(v)));
		else
			r = string_value(c, v, NULL, &s, &len);
		if (r >= 0)
			r = conv(c, NULL, s, len, elems + n * elem_size);
		pop(c);
		if (r < 0)
			break;
		/* keep each value once: "a pod's IPs" and "a node's CIDRs" are sets */
		bool dup = false;
		for (size_t j = 0; j < n && !dup; j++)
			dup = memcmp(elems + j * elem_size, elems + n * elem_size, elem_size) == 0;
		if (!dup)
			n++;
	}
	pop(c);
	if (r < 0) {
		free(elems);
		return r;
	}
	*out = elems;
	*n_out = n;
	return 0;
}

static int conv_ip(struct pctx *c, const char *key, const char *s, size_t len, void *out) {
	return ip_value(c, key, s, len, out);
}

static int conv_prefix(struct pctx *c, const char *key, const char *s, size_t len, void *out) {
	return prefix_value(c, key, s, len, out);
}

static int ip_array(struct pctx *c, struct json_object *parent, const char *key,
                    struct mc_ip **out, size_t *n) {
	return string_array(c, parent, key, sizeof(**out), conv_ip, (void **)out, n);
}

static int prefix_array(struct pctx *c, struct json_object *parent, const char *key,
                        struct mc_prefix **out, size_t *n) {
	return string_array(c, parent, key, sizeof(**out), conv_prefix, (void **)out, n);
}

/* A single optional string converted like one element of an array (status.podIP,
 * spec.podCIDR); an empty string means none. */
static int single_string(struct pctx *c, struct json_object *parent, const char *key,
                         size_t elem_size, conv_fn conv, void **out, size_t *n) {
	const char *s;
	size_t len;
	void *elem;
	int r = member_string(c, parent, key, &s, &len);

	if (r < 0 || !s || len == 0)
		return r;
	elem = calloc(1, elem_size);
	if (!elem)
		return -ENOMEM;
	r = conv(c, key, s, len, elem);
	if (r < 0) {
		free(elem);
		return r;
	}
	*out = elem;
	*n = 1;
	return 0;
}

/* RFC 3339 as Kubernetes writes metav1.Time: 2006-01-02T15:04:05Z or with an offset; a
 * fraction is ignored. */
static int parse_time(const char *s, int64_t *out) {
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long offset = 0;
	int hh, mm, n = 0;

	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		offset = 0;
	else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) == 2 &&
	         n == 5 && p[6] == '\0')
		offset = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
	else
		return -EINVAL;
	*out = (int64_t)timegm(&tm) - offset;
	return 0;
}

/* --- objects ----------------------------------------------------------------------------- */

static int parse_labels(struct pctx *c, struct json_object *meta, struct mc_object *o) {
	struct json_object *labels;
	char q[QUOTE_MAX + 8];
	size_t n;
	int r = member(c, meta, "labels", json_type_object, &labels);

	if (r < 0 || !labels || (n = (size_t)json_object_object_length(labels)) == 0)
		return r;
	o->labels = calloc(n, sizeof(*o->labels));
	if (!o->labels)
		return -ENOMEM;
	push_key(c, "labels");
	json_object_object_foreach(labels, key, val) {
		struct mc_label *l = &o->labels[o->n_labels];
		const char *s;
		size_t klen = strlen(key), vlen = 0;

		if (klen == 0 || klen > LABEL_KEY_MAX) {
			r = fail(c, -EINVAL, NULL, "label key %s is empty or too long",
			         quote(q, key, klen));
			break;
		}
		if (json_object_get_type(val) != json_type_string) {
			r = fail(c, -EINVAL, key, "expected a string, got %s",
			         type_name(json_object_get_type(val)));
			break;
		}
		if ((r = string_value(c, val, key, &s, &vlen)) < 0)
			break;
		if (vlen > LABEL_VALUE_MAX) {
			r = fail(c, -EINVAL, key, "%s is longer than %d characters",
			         quote(q, s, vlen), LABEL_VALUE_MAX);
			break;
		}
		l->key = strdup(key);
		l->value = strndup(s, vlen);
		o->n_labels++;
		if (!l->key || !l->value) {
			r = -ENOMEM;
			break;
		}
	}
	pop(c);
	return r;
}

static int parse_node(struct pctx *c, struct json_object *root, struct mc_object *o) {
	struct json_object *spec, *status, *info, *addresses;
	int r;

	if ((r = member(c, root, "spec", json_type_object, &spec)) < 0)
		return r;
	if (spec) {
		push_key(c, "spec");
		r = prefix_array(c, spec, "podCIDRs", &o->node.pod_cidrs, &o->node.n_pod_cidrs);
		if (r >= 0 && o->node.n_pod_cidrs == 0)
			r = single_string(c, spec, "podCIDR", sizeof(struct mc_prefix), conv_prefix,
			                  (void **)&o->node.pod_cidrs, &o->node.n_pod_cidrs);
		pop(c);
		if (r < 0)
			return r;
	}
	if ((r = member(c, root, "status", json_type_object, &status)) < 0 || !status)
		return r;
	push_key(c, "status");
	r = member(c, status, "nodeInfo", json_type_object, &info);
	if (r >= 0 && info) {
		push_key(c, "nodeInfo");
		r = boot_id_member(c, info, "bootID", o->node.boot_id);
		pop(c);
	}
	if (r >= 0)
		r = member(c, status, "addresses", json_type_array, &addresses);
	if (r >= 0 && addresses) {
		size_t count = json_object_array_length(addresses);

		push_key(c, "addresses");
		o->node.addresses = count ? calloc(count, sizeof(struct mc_ip)) : NULL;
		if (count && !o->node.addresses)
			r = -ENOMEM;
		for (size_t i = 0; r >= 0 && i < count; i++) {
			struct json_object *a = json_object_array_get_idx(addresses, i);
			struct mc_ip *ip = &o->node.addresses[o->node.n_addresses];
			const char *type, *addr;
			size_t len;

			push_index(c, i);
			if (json_object_get_type(a) != json_type_object)
				r = fail(c, -EINVAL, NULL, "expected an object, got %s",
				         type_name(json_object_get_type(a)));
			if (r >= 0)
				r = member_string(c, a, "type", &type, NULL);
			if (r >= 0 && type && strcmp(type, "InternalIP") == 0) {
				r = member_string(c, a, "address", &addr, &len);
				if (r >= 0 && !addr)
					r = fail(c, -EINVAL, "address", "missing");
				if (r >= 0)
					r = ip_value(c, "address", addr, len, ip);
				if (r >= 0 && !memmem(o->node.addresses, o->node.n_addresses * sizeof(*ip),
				                      ip, sizeof(*ip)))
					o->node.n_addresses++;
			}
			pop(c);
		}
		pop(c);
	}
	pop(c);
	return r;
}

static int parse_pod(struct pctx *c, struct json_object *root, struct json_object *meta,
                     struct mc_object *o) {
	struct json_object *spec, *status, *hn;
	const char *s;
	size_t len, count;
	char q[QUOTE_MAX + 8];
	int r;

	push_key(c, "metadata");
	r = member_string(c, meta, "creationTimestamp", &s, &len);
	if (r >= 0 && s && parse_time(s, &o->created) < 0)
		r = fail(c, -EINVAL, "creationTimestamp", "%s is not an RFC 3339 time",
		         quote(q, s, len));
	pop(c);
	if (r < 0)
		return r;
	if ((r = member(c, root, "spec", json_type_object, &spec)) < 0)
		return r;
	if (spec) {
		push_key(c, "spec");
		r = member_string(c, spec, "nodeName", &s, &len);
		if (r >= 0 && s && len > 0)
			r = name_value(c, "nodeName", s, len, MC_NAME_MAX, &o->pod.node_name);
		if (r >= 0)
			r = member(c, spec, "hostNetwork", json_type_boolean, &hn);
		if (r >= 0 && hn)
			o->pod.host_network = json_object_get_boolean(hn);
		pop(c);
		if (r < 0)
			return r;
	}
	if ((r = member(c, root, "status", json_type_object, &status)) < 0 || !status)
		return r;
	push_key(c, "status");
	r = member_string(c, status, "phase", &s, NULL);
	if (r >= 0 && s)
		o->pod.terminated = strcmp(s, "Succeeded") == 0 || strcmp(s, "Failed") == 0;
	if (r >= 0) {
		struct json_object *ips;

		r = member(c, status, "podIPs", json_type_array, &ips);
		count = r >= 0 && ips ? json_object_array_length(ips) : 0;
		if (count > 0) {
			o->pod.ips = calloc(count, sizeof(struct mc_ip));
			if (!o->pod.ips)
				r = -ENOMEM;
			push_key(c, "podIPs");
			for (size_t i = 0; r >= 0 && i < count; i++) {
				struct json_object *e = json_object_array_get_idx(ips, i);
				struct mc_ip *ip = &o->pod.ips[o->pod.n_ips];

				push_index(c, i);
				if (json_object_get_type(e) != json_type_object)
					r = fail(c, -EINVAL, NULL, "expected an object, got %s",
					         type_name(json_object_get_type(e)));
				if (r >= 0)
					r = member_string(c, e, "ip", &s, &len);
				if (r >= 0 && !s)
					r = fail(c, -EINVAL, "ip", "missing");
				if (r >= 0)
					r = ip_value(c, "ip", s, len, ip);
				for (size_t j = 0; r >= 0 && j < o->pod.n_ips; j++)
					if (o->pod.ips[j].family == ip->family &&
					    memcmp(&o->pod.ips[j], ip, sizeof(*ip)) != 0)
						r = fail(c, -EINVAL, "ip",
						         "a second address of one family (Kubernetes allows "
						         "one IPv4 and one IPv6 address)");
				if (r >= 0 && !memmem(o->pod.ips, o->pod.n_ips * sizeof(*ip), ip,
				                      sizeof(*ip)))
					o->pod.n_ips++;
				pop(c);
			}
			pop(c);
		} else if (r >= 0) {
			/* servers before 1.16 (and kubelet's early states) set only podIP */
			r = single_string(c, status, "podIP", sizeof(struct mc_ip), conv_ip,
			                  (void **)&o->pod.ips, &o->pod.n_ips);
		}
	}
	pop(c);
	return r;
}

static int parse_meshcrypt_node(struct pctx *c, struct json_object *root, struct mc_object *o) {
	struct json_object *spec, *gen;
	int r;

	if ((r = member(c, root, "spec", json_type_object, &spec)) < 0 || !spec)
		return r;
	push_key(c, "spec");
	r = ip_array(c, spec, "addresses", &o->mcnode.addresses, &o->mcnode.n_addresses);
	if (r >= 0)
		r = boot_id_member(c, spec, "bootID", o->mcnode.boot_id);
	if (r >= 0)
		r = member(c, spec, "keyGeneration", json_type_int, &gen);
	if (r >= 0 && gen) {
		int64_t g = json_object_get_int64(gen);

		/* json-c clamps out-of-range numbers to INT64_MAX, which fails here too */
		if (g < 0 || g > UINT32_MAX)
			r = fail(c, -EINVAL, "keyGeneration", "%lld is not in 0..%u", (long long)g,
			         UINT32_MAX);
		else
			o->mcnode.key_generation = (uint32_t)g;
	}
	if (r >= 0)
		r = wireguard_key_member(c, spec, o->mcnode.wireguard_public_key);
	if (r >= 0)
		r = prefix_array(c, spec, "podCIDRs", &o->mcnode.pod_cidrs, &o->mcnode.n_pod_cidrs);
	pop(c);
	return r;
}

static int parse_secret(struct pctx *c, struct json_object *root, struct mc_object *o) {
	struct json_object *data;
	char q[QUOTE_MAX + 8];
	size_t n;
	int r = member(c, root, "data", json_type_object, &data);

	if (r < 0 || !data || (n = (size_t)json_object_object_length(data)) == 0)
		return r;
	o->secret.entries = calloc(n, sizeof(*o->secret.entries));
	if (!o->secret.entries)
		return -ENOMEM;
	push_key(c, "data");
	json_object_object_foreach(data, key, val) {
		struct mc_secret_entry *e = &o->secret.entries[o->secret.n_entries];
		const char *s;
		size_t klen = strlen(key), len = 0;

		if (klen == 0 || klen > MC_NAME_MAX) {
			r = fail(c, -EINVAL, NULL, "key %s is empty or too long", quote(q, key, klen));
			break;
		}
		if (json_object_get_type(val) != json_type_string) {
			r = fail(c, -EINVAL, key, "expected a string, got %s",
			         type_name(json_object_get_type(val)));
			break;
		}
		if ((r = string_value(c, val, key, &s, &len)) < 0)
			break;
		if (!(e->key = strdup(key))) {
			r = -ENOMEM;
			break;
		}
		o->secret.n_entries++;
		r = base64_decode(s, len, &e->data, &e->len);
		if (r == -EINVAL)
			r = fail(c, -EINVAL, key, "not valid base64");
		if (r < 0)
			break;
	}
	pop(c);
	return r;
}

struct kind_info {
	const char *name;
	enum mc_object_kind kind;
	const char *group; /* apiVersion is "<group>/<version>"; NULL: the core group, "v1" */
	bool namespaced;
};

static const struct kind_info kinds[] = {
	{ "Node", MC_OBJECT_NODE, NULL, false },
	{ "Namespace", MC_OBJECT_NAMESPACE, NULL, false },
	{ "Pod", MC_OBJECT_POD, NULL, true },
	{ "MeshcryptNode", MC_OBJECT_MESHCRYPT_NODE, "meshcrypt.io", false },
	{ "Secret", MC_OBJECT_SECRET, NULL, true },
};

/* The kind meshcrypt reads, or NULL for another kind (or the same name in another API group,
 * such as a CRD called Node). A missing apiVersion is accepted: kubelet's items have none. */
static const struct kind_info *lookup_kind(const char *kind, const char *api_version) {
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind_info *k = &kinds[i];
		size_t glen = k->group ? strlen(k->group) : 0;

		if (strcmp(kind, k->name) != 0)
			continue;
		if (!api_version)
			return k;
		if (k->group ? strncmp(api_version, k->group, glen) == 0 && api_version[glen] == '/'
		             : strcmp(api_version, "v1") == 0)
			return k;
		return NULL;
	}
	return NULL;
}

/* Converts one object. Returns 0 with *out set, 1 when the kind is not one meshcrypt reads
 * (*out NULL, *kind_out its name for a message), or -errno. */
static int convert(struct pctx *c, struct json_object *root, const char *default_kind,
                   struct mc_object **out, const char **kind_out) {
	struct json_object *meta;
	const struct kind_info *k;
	struct mc_object *o;
	const char *kind, *api_version, *s;
	size_t len;
	int r;

	*out = NULL;
	if (json_object_get_type(root) != json_type_object)
		return fail(c, -EINVAL, NULL, "expected an object, got %s",
		            type_name(json_object_get_type(root)));
	if ((r = member_string(c, root, "kind", &kind, NULL)) < 0 ||
	    (r = member_string(c, root, "apiVersion", &api_version, NULL)) < 0)
		return r;
	if (!kind && !(kind = default_kind))
		return fail(c, -EINVAL, "kind", "missing");
	*kind_out = kind;
	if (!(k = lookup_kind(kind, api_version)))
		return 1;
	c->kind = k->name;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->kind = k->kind;
	if ((r = member(c, root, "metadata", json_type_object, &meta)) < 0)
		goto fail;
	if (!meta) {
		r = fail(c, -EINVAL, "metadata", "missing");
		goto fail;
	}
	push_key(c, "metadata");
	r = member_string(c, meta, "name", &s, &len);
	if (r >= 0 && !s)
		r = fail(c, -EINVAL, "name", "missing");
	if (r >= 0)
		r = name_value(c, "name", s, len, MC_NAME_MAX, &o->name);
	if (r >= 0)
		c->name = o->name;
	if (r >= 0 && k->namespaced) {
		r = member_string(c, meta, "namespace", &s, &len);
		if (r >= 0 && !s)
			r = fail(c, -EINVAL, "namespace", "missing");
		if (r >= 0)
			r = name_value(c, "namespace", s, len, MC_NAMESPACE_MAX, &o->namespace);
		if (r >= 0)
			c->ns = o->namespace;
	}
	if (r >= 0 && (k->kind == MC_OBJECT_NAMESPACE || k->kind == MC_OBJECT_POD))
		r = parse_labels(c, meta, o);
	pop(c);
	if (r < 0)
		goto fail;
	switch (k->kind) {
	case MC_OBJECT_POD:
		r = parse_pod(c, root, meta, o);
		break;
	case MC_OBJECT_NODE:
		r = parse_node(c, root, o);
		break;
	case MC_OBJECT_MESHCRYPT_NODE:
		r = parse_meshcrypt_node(c, root, o);
		break;
	case MC_OBJECT_SECRET:
		r = parse_secret(c, root, o);
		break;
	case MC_OBJECT_NAMESPACE:
		break;
	}
	if (r < 0)
		goto fail;
	*out = o;
	return 0;
fail:
	c->name = c->ns = NULL;
	mc_object_free(o);
	return r;
}

static void clear_error(struct mc_parse_error *err) {
	err->line = err->column = 0;
	err->message[0] = '\0';
}

int mc_object_from_json(struct json_object *obj, struct mc_object **out,
                        struct mc_parse_error *err) {
	struct mc_parse_error scratch;
	struct pctx c = { .err = err ? err : &scratch, .item = -1 };
	const char *kind = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	clear_error(c.err);
	r = convert(&c, obj, NULL, out, &kind);
	if (r == 1)
		return fail(&c, -ENOTSUP, NULL, "kind %s is not one meshcrypt reads", kind);
	return r;
}

/* Decodes text into a json-c tree, or explains why not. */
static int decode(const char *json, size_t len, struct json_object **out,
                  struct mc_parse_error *err) {
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	size_t end;

	*out = NULL;
	if (len > MC_DOCUMENT_MAX) {
		snprintf(err->message, sizeof(err->message),
		         "document of %zu bytes is larger than the limit of %zu", len,
		         (size_t)MC_DOCUMENT_MAX);
		return -EFBIG;
	}
	tok = json_tokener_new_ex(MC_JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	*out = json_tokener_parse_ex(tok, json, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (*out)
		return 0;
	if (jerr == json_tokener_continue) {
		snprintf(err->message, sizeof(err->message), "JSON: unexpected end of document");
		end = len;
	} else if (jerr == json_tokener_error_depth) {
		snprintf(err->message, sizeof(err->message), "JSON: nested deeper than %d levels",
		         MC_JSON_DEPTH);
	} else {
		snprintf(err->message, sizeof(err->message), "JSON: %s",
		         json_tokener_error_desc(jerr));
	}
	set_position(err, json, end);
	return -EINVAL;
}

/* "PodList" -> "Pod" in buf; "List" -> NULL (its items name their kind). */
static const char *item_kind(const char *list_kind, char *buf, size_t size) {
	size_t n = strlen(list_kind) - 4;

	if (n == 0 || n >= size)
		return NULL;
	memcpy(buf, list_kind, n);
	buf[n] = '\0';
	return buf;
}

static bool is_list(const char *kind) {
	size_t n = kind ? strlen(kind) : 0;

	return n >= 4 && strcmp(kind + n - 4, "List") == 0;
}

static int convert_list(const char *json, size_t len, struct json_object *root,
                        struct mc_object_list *list, struct mc_parse_error *err) {
	struct pctx c = { .err = err, .text = json, .len = len, .item = -1 };
	struct json_object *items, *meta;
	const char *kind, *rv;
	char kind_buf[64];
	const char *default_kind;
	size_t count;
	int r;

	if ((r = member_string(&c, root, "kind", &kind, NULL)) < 0)
		return r;
	default_kind = item_kind(kind, kind_buf, sizeof(kind_buf));
	if ((r = member(&c, root, "metadata", json_type_object, &meta)) < 0)
		return r;
	push_key(&c, "metadata");
	r = member_string(&c, meta, "resourceVersion", &rv, NULL);
	pop(&c);
	if (r < 0)
		return r;
	if (rv && *rv && !(list->resource_version = strdup(rv)))
		return -ENOMEM;
	if ((r = member(&c, root, "items", json_type_array, &items)) < 0 || !items)
		return r;
	count = json_object_array_length(items);
	if (count > 0 && !(list->objects = calloc(count, sizeof(*list->objects))))
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		struct pctx ic = { .err = err, .text = json, .len = len, .item = (long)i };
		struct mc_object *o;
		const char *k;

		r = convert(&ic, json_object_array_get_idx(items, i), default_kind, &o, &k);
		if (r < 0)
			return r;
		if (r == 0)
			list->objects[list->n_objects++] = o;
	}
	return 0;
}

/* --- the fast path for large Lists ------------------------------------------------------ */

/* Decodes exactly [p, p + len) as one JSON value, or returns NULL. */
static struct json_object *decode_span(struct json_tokener *tok, const char *p, size_t len) {
	struct json_object *o;

	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, p, (int)len);
	if (o && json_tokener_get_parse_end(tok) != len) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int list_append(struct mc_object_list *list, size_t *cap, struct mc_object *o) {
	if (list->n_objects == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct mc_object **v = realloc(list->objects, ncap * sizeof(*v));

		if (!v) {
			mc_object_free(o);
			return -ENOMEM;
		}
		list->objects = v;
		*cap = ncap;
	}
	list->objects[list->n_objects++] = o;
	return 0;
}

/*
 * Converts a List item by item: json-c decodes one item at a time, which is freed before the
 * next, instead of the whole document at once (for 150,000 pods, a tree of gigabytes built in
 * seconds). The two outer levels are split here; everything below them is decoded by json-c.
 * Returns 0 with *out set, 1 when the document is not a plainly shaped List or has any error
 * (the slow path then decides and explains it precisely), or -ENOMEM.
 */
static int fast_list(const char *json, size_t len, struct mc_object_list **out) {
	const char *end = json + len, *p = skip_ws(json, end), *items = NULL, *items_end = NULL;
	struct json_object *kind = NULL, *meta = NULL, *rv;
	struct mc_object_list *list = NULL;
	struct mc_parse_error scratch;
	struct json_tokener *tok;
	char kind_buf[64];
	const char *default_kind;
	size_t cap = 0;
	int r = 1;

	if (p >= end || *p != '{' || !(tok = json_tokener_new_ex(MC_JSON_DEPTH - 2)))
		return p < end && *p == '{' ? -ENOMEM : 1;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	for (p = skip_ws(p + 1, end);;) {
		const char *k = p + 1, *ke = k, *v, *e;
		struct json_object *val;

		if (p >= end || *p != '"')
			goto out;
		/* a key written with escapes could be "items": leave it to json-c */
		while (ke < end && *ke != '"' && *ke != '\\')
			ke++;
		if (ke >= end || *ke != '"')
			goto out;
		p = skip_ws(ke + 1, end);
		if (p >= end || *p != ':')
			goto out;
		v = skip_ws(p + 1, end);
		if (!(e = span_end(v, end)))
			goto out;
		if ((size_t)(ke - k) == 5 && memcmp(k, "items", 5) == 0) {
			items = v;
			items_end = e;
		} else {
			if (!(val = decode_span(tok, v, (size_t)(e - v))))
				goto out;
			if ((size_t)(ke - k) == 4 && memcmp(k, "kind", 4) == 0) {
				json_object_put(kind);
				kind = val;
			} else if ((size_t)(ke - k) == 8 && memcmp(k, "metadata", 8) == 0) {
				json_object_put(meta);
				meta = val;
			} else {
				json_object_put(val);
			}
		}
		p = skip_ws(e, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}' && skip_ws(p + 1, end) == end)
			break;
		goto out;
	}
	if (!kind || !json_object_is_type(kind, json_type_string) ||
	    !is_list(json_object_get_string(kind)) || !items || *items != '[' ||
	    (meta && !json_object_is_type(meta, json_type_object)))
		goto out;
	if (!(list = calloc(1, sizeof(*list)))) {
		r = -ENOMEM;
		goto out;
	}
	if (meta && json_object_object_get_ex(meta, "resourceVersion", &rv) && rv) {
		if (!json_object_is_type(rv, json_type_string))
			goto out;
		if (json_object_get_string_len(rv) > 0 &&
		    !(list->resource_version = strdup(json_object_get_string(rv)))) {
			r = -ENOMEM;
			goto out;
		}
	}
	default_kind = item_kind(json_object_get_string(kind), kind_buf, sizeof(kind_buf));
	p = skip_ws(items + 1, items_end);
	for (long i = 0; p < items_end && *p != ']'; i++) {
		struct pctx ic = { .err = &scratch, .item = i };
		const char *e = span_end(p, items_end), *k;
		struct json_object *item;
		struct mc_object *o;

		if (!e || !(item = decode_span(tok, p, (size_t)(e - p))))
			goto out;
		r = convert(&ic, item, default_kind, &o, &k);
		json_object_put(item);
		if (r < 0 || (r == 0 && list_append(list, &cap, o) < 0)) {
			r = r == -ENOMEM || r == 0 ? -ENOMEM : 1;
			goto out;
		}
		r = 1;
		p = skip_ws(e, items_end);
		if (p < items_end && *p == ',')
			p = skip_ws(p + 1, items_end);
		else if (p >= items_end || *p != ']')
			goto out;
	}
	if (p + 1 != items_end)
		goto out;
	*out = list;
	list = NULL;
	r = 0;
out:
	mc_object_list_free(list);
	json_object_put(kind);
	json_object_put(meta);
	json_tokener_free(tok);
	return r;
}

int mc_object_list_parse(const char *json, size_t len, struct mc_object_list **out,
                         struct mc_parse_error *err) {
	struct mc_parse_error scratch;
	struct json_object *root;
	struct mc_object_list *list;
	const char *kind = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!err)
		err = &scratch;
	clear_error(err);
	if (!json)
		return -EINVAL;
	if (len <= MC_DOCUMENT_MAX && (r = fast_list(json, len, out)) <= 0)
		return r;
	if ((r = decode(json, len, &root, err)) < 0)
		return r;
	list = calloc(1, sizeof(*list));
	if (!list) {
		json_object_put(root);
		return -ENOMEM;
	}
	if (json_object_get_type(root) == json_type_object) {
		struct json_object *k;

		if (json_object_object_get_ex(root, "kind", &k) &&
		    json_object_get_type(k) == json_type_string)
			kind = json_object_get_string(k);
	}
	if (is_list(kind)) {
		r = convert_list(json, len, root, list, err);
	} else {
		struct pctx c = { .err = err, .text = json, .len = len, .item = -1 };
		struct mc_object *o;

		r = convert(&c, root, NULL, &o, &kind);
		if (r == 0) {
			list->objects = malloc(sizeof(*list->objects));
			if (list->objects)
				list->objects[list->n_objects++] = o;
			else
				r = -ENOMEM, mc_object_free(o);
		}
	}
	json_object_put(root);
	if (r < 0) {
		mc_object_list_free(list);
		return r;
	}
	/* r == 1: a single object of another kind, skipped like a List item */
	*out = list;
	return 0;
}

int mc_object_parse(const char *json, size_t len, struct mc_object **out,
                    struct mc_parse_error *err) {
	struct mc_parse_error scratch;
	struct pctx c = { .text = json, .len = len, .item = -1 };
	struct json_object *root;
	const char *kind = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	c.err = err ? err : &scratch;
	clear_error(c.err);
	if (!json)
		return -EINVAL;
	if ((r = decode(json, len, &root, c.err)) < 0)
		return r;
	r = convert(&c, root, NULL, out, &kind);
	if (r == 1)
		r = fail(&c, is_list(kind) ? -EINVAL : -ENOTSUP, NULL,
		         "kind %s is not one object meshcrypt reads", kind);
	json_object_put(root);
	return r;
}

int mc_object_list_parse_file(const char *path, struct mc_object_list **out,
                              struct mc_parse_error *err) {
	struct mc_parse_error scratch;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, r = 0;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!err)
		err = &scratch;
	clear_error(err);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size > MC_DOCUMENT_MAX) {
		r = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	/* the file may change under us (the static source reloads on inotify): read what is there */
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	r = mc_object_list_parse(buf, got, out, err);
out:
	if (r < 0 && err->message[0] == '\0')
		snprintf(err->message, sizeof(err->message), "%s: %s", path, strerror(-r));
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}
