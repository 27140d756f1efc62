/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kubernetes JSON -> struct mc_object, with one reader over the text (json-reader.h): no tree
 * is built and only the kept fields are copied (docs/model.md, "How the parser reads").
 *
 * A document counts only once it has been read to its end, which checks all of it: a syntax
 * error anywhere wins over any content error and a bad document yields no objects. One walk
 * over an object notes where each kept member starts (walk(), entering metadata, spec and
 * status) and skips the others; the kept ones are then converted in a fixed order. So members
 * may come in any order (kubectl writes "items" before "kind"), a repeated key means its last
 * value, as with json-c before, and of two content errors always the same one is reported.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json-reader.h"
#include "object-internal.h"

#define PATH_DEPTH 8
#define LABEL_KEY_MAX 317 /* prefix (253) + '/' + name (63) */
#define LABEL_VALUE_MAX 63
#define QUOTE_MAX 48

struct path_elem {
	const char *key; /* NULL: an array index */
	size_t index;
	const char *at; /* where its value starts */
};

struct pctx {
	struct mc_parse_error *err;
	struct mci_json_reader *r;
	long item; /* index in the List's items[], -1 for a document that is one object */
	const char *at; /* the object being converted */
	const char *kind;
	const char *ns, *name;
	struct path_elem path[PATH_DEPTH];
	unsigned depth;
	struct mci_arena *list_arena; /* the arena of the list being filled, if any */
	bool skip_bad_items;          /* mc_object_list_parse_skipping() */
	struct mci_arena *arena;      /* where the object being converted lives: NULL, the heap */
};

/* A member's value as noted by walk() or collect(): where it starts, and its type (0: absent or null,
 * as Kubernetes writes null for empty lists, "conditions": null). */
struct val {
	struct mci_json_mark m;
	enum mci_json_type type;
};

/* --- errors ------------------------------------------------------------------------------ */

static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
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

static int fail(struct pctx *c, int r, const char *last_key, const char *at, const char *fmt,
		...) __attribute__((format(printf, 5, 6)));

/*
 * Fills the error as "<Kind> <ns>/<name>: <field path>: <detail>" and returns r. at is where
 * last_key's value starts; NULL (a missing field) points at the innermost element of the path.
 */
static int fail(struct pctx *c, int r, const char *last_key, const char *at, const char *fmt,
		...)
{
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
	if (!at)
		at = c->depth ? c->path[c->depth - 1].at : c->at;
	mci_json_position(c->r, at, &err->line, &err->column);
	return r;
}

/* A syntax error the reader found. */
static int syntax_error(struct pctx *c)
{
	snprintf(c->err->message, sizeof(c->err->message), "JSON: %s", c->r->error);
	mci_json_position(c->r, c->r->error_at, &c->err->line, &c->err->column);
	return -EINVAL;
}

/* A value for a message: quoted, cut at QUOTE_MAX characters, control bytes shown as '?'. */
static const char *quote(char buf[QUOTE_MAX + 8], const char *s, size_t len)
{
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

static void push_key(struct pctx *c, const char *key, const char *at)
{
	c->path[c->depth++] = (struct path_elem){ key, 0, at };
}

static void push_index(struct pctx *c, size_t index, const char *at)
{
	c->path[c->depth++] = (struct path_elem){ NULL, index, at };
}

static void pop(struct pctx *c)
{
	c->depth--;
}

static const char *type_name(enum mci_json_type t)
{
	switch (t) {
	case MCI_JSON_NULL:
		return "null";
	case MCI_JSON_BOOL:
		return "a boolean";
	case MCI_JSON_REAL:
		return "a number";
	case MCI_JSON_INT:
		return "an integer";
	case MCI_JSON_OBJECT:
		return "an object";
	case MCI_JSON_ARRAY:
		return "an array";
	case MCI_JSON_STRING:
		return "a string";
	}
	return "?";
}

/*
 * Notes where the value of each of keys[] starts in the object at m, the last one for a
 * repeated key, and skips every other member at scanning speed. For the small objects in
 * arrays (addresses, podIPs); whole objects are read by walk().
 */
static int collect(struct pctx *c, const struct mci_json_mark *m, const char *const *keys,
		   size_t n, struct val *vals)
{
	struct mci_json_reader *r = c->r;
	const char *k;
	size_t len;
	int more;

	memset(vals, 0, n * sizeof(*vals));
	mci_json_seek(r, m);
	if (mci_json_enter_object(r) < 0)
		return syntax_error(c);
	while ((more = mci_json_next_member(r, &k, &len)) > 0) {
		for (size_t i = 0; i < n; i++) {
			if (strlen(keys[i]) != len || memcmp(keys[i], k, len) != 0)
				continue;
			vals[i].m = mci_json_mark(r);
			if (mci_json_peek(r, &vals[i].type) < 0)
				return syntax_error(c);
			if (vals[i].type == MCI_JSON_NULL)
				vals[i].type = 0;
			break;
		}
		if (mci_json_skip(r) < 0)
			return syntax_error(c);
	}
	return more < 0 ? syntax_error(c) : 0;
}

/* Checks that the member key noted in v, if present, is of type want. */
static int member(struct pctx *c, const char *key, const struct val *v, enum mci_json_type want)
{
	if (!v->type || v->type == want)
		return 0;
	return fail(c, -EINVAL, key, v->m.p, "expected %s, got %s", type_name(want),
	            type_name(v->type));
}

/* A string read from the text: in buf when it fits, else on the heap. s is NULL when the
 * member is absent. */
struct str {
	char *s;
	size_t len;
	char buf[256];
};

static void str_free(struct str *s)
{
	if (s->s != s->buf)
		free(s->s);
	s->s = NULL;
}

/* Reads the string value at v into s, refusing embedded NUL characters. On failure s holds
 * nothing to free (a long string's buffer is freed here: callers return at once). */
static int read_str(struct pctx *c, const char *key, const struct val *v, struct str *s)
{
	struct mci_json_reader *r = c->r;
	int ret = 0;

	s->s = s->buf;
	mci_json_seek(r, &v->m);
	if (mci_json_read_string(r, s->buf, sizeof(s->buf), &s->len) < 0) {
		ret = syntax_error(c);
	} else if (s->len >= sizeof(s->buf)) {
		if (!(s->s = malloc(s->len + 1)))
			return -ENOMEM;
		mci_json_seek(r, &v->m);
		if (mci_json_read_string(r, s->s, s->len + 1, &s->len) < 0)
			ret = syntax_error(c);
	}
	if (ret == 0 && memchr(s->s, '\0', s->len))
		ret = fail(c, -EINVAL, key, v->m.p, "contains a NUL character");
	if (ret < 0)
		str_free(s);
	return ret;
}

/* The string member key noted in v; s->s stays NULL when it is absent. */
static int member_str(struct pctx *c, const char *key, const struct val *v, struct str *s)
{
	int r = member(c, key, v, MCI_JSON_STRING);

	s->s = NULL;
	s->len = 0;
	if (r < 0 || !v->type)
		return r;
	return read_str(c, key, v, s);
}

/* Counts the members or elements of the container at v. */
static int count(struct pctx *c, const struct val *v, size_t *n)
{
	struct mci_json_reader *r = c->r;
	const char *k;
	size_t len;
	int more;

	*n = 0;
	mci_json_seek(r, &v->m);
	if (v->type == MCI_JSON_OBJECT) {
		if (mci_json_enter_object(r) < 0)
			return syntax_error(c);
		while ((more = mci_json_next_member(r, &k, &len)) > 0 && mci_json_skip(r) == 0)
			(*n)++;
	} else {
		if (mci_json_enter_array(r) < 0)
			return syntax_error(c);
		while ((more = mci_json_next_element(r)) > 0 && mci_json_skip(r) == 0)
			(*n)++;
	}
	return more != 0 ? syntax_error(c) : 0;
}

/* --- the object's memory ------------------------------------------------------------------ */

/* Zeroed memory for the object being converted: from its list's arena for a Pod or a Namespace
 * (object-internal.h), else from the heap. */
static void *obj_alloc(struct pctx *c, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return c->arena ? mci_arena_alloc(c->arena, n * size) : calloc(n, size);
}

static char *obj_strndup(struct pctx *c, const char *s, size_t len)
{
	char *d = obj_alloc(c, len + 1, 1);

	if (d)
		memcpy(d, s, len);
	return d;
}

/* Gives back what obj_alloc() returned; arena memory goes with the list. */
static void obj_release(struct pctx *c, void *p)
{
	if (!c->arena)
		free(p);
}

/* --- field checks ------------------------------------------------------------------------ */

static bool dns_chars(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return len > 0;
}

/* A DNS-style Kubernetes name of at most max characters, copied into *out. */
static int name_value(struct pctx *c, const char *key, const char *at, const struct str *s,
		      size_t max, char **out)
{
	char q[QUOTE_MAX + 8];

	if (s->len == 0)
		return fail(c, -EINVAL, key, at, "must not be empty");
	if (s->len > max)
		return fail(c, -EINVAL, key, at, "%s is longer than %zu characters",
		            quote(q, s->s, s->len), max);
	if (!dns_chars(s->s, s->len))
		return fail(c, -EINVAL, key, at, "%s is not a DNS name (a-z, 0-9, '-', '.')",
		            quote(q, s->s, s->len));
	*out = obj_strndup(c, s->s, s->len);
	return *out ? 0 : -ENOMEM;
}

/* ::ffff:a.b.c.d is how the BPF maps key IPv4 (DESIGN.md §5): taken as IPv6 it would share a
 * key with a.b.c.d, so a pod could stand in for another; Kubernetes never assigns one. */
static bool ipv4_mapped(const struct mc_ip *ip)
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return ip->family == AF_INET6 && memcmp(ip->addr, prefix, sizeof(prefix)) == 0;
}

static int ip_value(struct pctx *c, const char *key, const char *at, const struct str *s,
		    struct mc_ip *out)
{
	char q[QUOTE_MAX + 8];

	if (mc_ip_parse(s->s, out) < 0)
		return fail(c, -EINVAL, key, at, "%s is not an IP address", quote(q, s->s, s->len));
	if (ipv4_mapped(out))
		return fail(c, -EINVAL, key, at, "%s is an IPv4-mapped IPv6 address; write the IPv4 "
		            "address", quote(q, s->s, s->len));
	return 0;
}

static int prefix_value(struct pctx *c, const char *key, const char *at, const struct str *s,
			struct mc_prefix *out)
{
	char q[QUOTE_MAX + 8];

	if (mc_prefix_parse(s->s, out) < 0)
		return fail(c, -EINVAL, key, at, "%s is not a CIDR (network address/length)",
		            quote(q, s->s, s->len));
	if (ipv4_mapped(&out->ip))
		return fail(c, -EINVAL, key, at, "%s is an IPv4-mapped IPv6 prefix; write the IPv4 "
		            "prefix", quote(q, s->s, s->len));
	return 0;
}

/* A boot ID is HKDF input on both ends (DESIGN.md §6): exactly a 36-character UUID. */
static int boot_id_member(struct pctx *c, const char *key, const struct val *v,
			  char out[MC_BOOT_ID_LEN + 1])
{
	char q[QUOTE_MAX + 8];
	struct str s;
	size_t len;
	int r = member_str(c, key, v, &s);

	if (r < 0 || !s.s || s.len == 0)
		goto out;
	len = s.len;
	for (size_t i = 0; i < len && len == MC_BOOT_ID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s.s[i] != '-' : !strchr("0123456789abcdefABCDEF", s.s[i]))
			len = 0;
	}
	if (len != MC_BOOT_ID_LEN)
		r = fail(c, -EINVAL, key, v->m.p, "%s is not a boot ID (a UUID)",
		         quote(q, s.s, s.len));
	else
		memcpy(out, s.s, MC_BOOT_ID_LEN + 1);
out:
	str_free(&s);
	return r;
}

static int b64_digit(char ch)
{
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = ch ? strchr(alphabet, ch) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

/* Standard base64 with padding, as Kubernetes encodes Secret data. *out gets len/4*3 bytes of
 * room (plus a NUL, so text keys can be used as strings). */
static int base64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
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

static int wireguard_key_member(struct pctx *c, const struct val *v,
				char out[MC_WG_KEY_LEN + 1])
{
	const char *key = "wireguardPublicKey";
	char q[QUOTE_MAX + 8];
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	struct str s;
	int r = member_str(c, key, v, &s);

	if (r < 0 || !s.s || s.len == 0)
		goto out;
	r = s.len == MC_WG_KEY_LEN ? base64_decode(s.s, s.len, &raw, &raw_len) : -EINVAL;
	free(raw);
	if (r == -ENOMEM)
		goto out;
	if (r < 0 || raw_len != 32)
		r = fail(c, -EINVAL, key, v->m.p, "%s is not a WireGuard key (32 bytes in base64)",
		         quote(q, s.s, s.len));
	else
		memcpy(out, s.s, MC_WG_KEY_LEN + 1);
out:
	str_free(&s);
	return r;
}

/* Converts one string into an element (an IP, a prefix); at is where the value starts. */
typedef int (*conv_fn)(struct pctx *c, const char *key, const char *at, const struct str *s,
		       void *out);

/* An array member of strings, each converted by conv into elements of size elem_size. */
static int string_array(struct pctx *c, const char *key, const struct val *v, size_t elem_size,
			conv_fn conv, void **out, size_t *n_out)
{
	struct mci_json_reader *r = c->r;
	uint8_t *elems = NULL;
	size_t n = 0, total;
	int more = 0, ret = member(c, key, v, MCI_JSON_ARRAY);

	if (ret < 0 || !v->type)
		return ret;
	if ((ret = count(c, v, &total)) < 0 || total == 0)
		return ret;
	elems = obj_alloc(c, total, elem_size);
	if (!elems)
		return -ENOMEM;
	push_key(c, key, v->m.p);
	mci_json_seek(r, &v->m);
	if (mci_json_enter_array(r) < 0)
		ret = syntax_error(c);
	for (size_t i = 0; ret >= 0 && (more = mci_json_next_element(r)) > 0; i++) {
		struct val e = { .m = mci_json_mark(r) };
		struct str s = { .s = NULL };

		push_index(c, i, e.m.p);
		if (mci_json_peek(r, &e.type) < 0)
			ret = syntax_error(c);
		else if (e.type != MCI_JSON_STRING)
			ret = fail(c, -EINVAL, NULL, NULL, "expected a string, got %s",
			           type_name(e.type));
		else
			ret = read_str(c, NULL, &e, &s);
		if (ret >= 0)
			ret = conv(c, NULL, e.m.p, &s, elems + n * elem_size);
		str_free(&s);
		pop(c);
		if (ret < 0)
			break;
		/* keep each value once: "a pod's IPs" and "a node's CIDRs" are sets */
		bool dup = false;
		for (size_t j = 0; j < n && !dup; j++)
			dup = memcmp(elems + j * elem_size, elems + n * elem_size, elem_size) == 0;
		if (!dup)
			n++;
	}
	if (ret >= 0 && more < 0)
		ret = syntax_error(c);
	pop(c);
	if (ret < 0) {
		obj_release(c, elems);
		return ret;
	}
	*out = elems;
	*n_out = n;
	return 0;
}

static int conv_ip(struct pctx *c, const char *key, const char *at, const struct str *s,
		   void *out)
{
	return ip_value(c, key, at, s, out);
}

static int conv_prefix(struct pctx *c, const char *key, const char *at, const struct str *s,
		       void *out)
{
	return prefix_value(c, key, at, s, out);
}

static int ip_array(struct pctx *c, const char *key, const struct val *v, struct mc_ip **out,
		    size_t *n)
{
	return string_array(c, key, v, sizeof(**out), conv_ip, (void **)out, n);
}

static int prefix_array(struct pctx *c, const char *key, const struct val *v,
			struct mc_prefix **out, size_t *n)
{
	return string_array(c, key, v, sizeof(**out), conv_prefix, (void **)out, n);
}

/* A single optional string converted like one element of an array (status.podIP,
 * spec.podCIDR); an empty string means none. */
static int single_string(struct pctx *c, const char *key, const struct val *v, size_t elem_size,
			 conv_fn conv, void **out, size_t *n)
{
	struct str s;
	void *elem = NULL;
	int r = member_str(c, key, v, &s);

	if (r < 0 || !s.s || s.len == 0)
		goto out;
	elem = obj_alloc(c, 1, elem_size);
	if (!elem) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = conv(c, key, v->m.p, &s, elem)) < 0)
		goto out;
	*out = elem;
	*n = 1;
	elem = NULL;
out:
	obj_release(c, elem);
	str_free(&s);
	return r;
}

/* RFC 3339 as Kubernetes writes metav1.Time: 2006-01-02T15:04:05Z or with an offset; a
 * fraction is ignored. */
static int parse_time(const char *s, int64_t *out)
{
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

/*
 * The members this file reads, for every kind at once: one walk over an object notes where
 * each of them starts (in vals[slot]), entering metadata, spec and status rather than skipping
 * them, so that an object is read once. A repeated key means its last value; when a container
 * repeats, what was noted inside the earlier one is forgotten.
 */
enum slot {
	S_KIND, S_API_VERSION, S_METADATA, S_SPEC, S_STATUS, S_DATA, S_ITEMS,
	/* metadata.* */
	S_NAME, S_NAMESPACE, S_LABELS, S_CREATED, S_RESOURCE_VERSION,
	/* spec.* */
	S_POD_CIDRS, S_POD_CIDR, S_NODE_NAME, S_HOST_NETWORK, S_SPEC_ADDRESSES, S_SPEC_BOOT_ID,
	S_KEY_GENERATION, S_WG_KEY,
	/* status.* */
	S_NODE_INFO, S_BOOT_ID, S_STATUS_ADDRESSES, S_PHASE, S_POD_IPS, S_POD_IP,
	S_N
};

struct field {
	const char *key;
	unsigned len, slot;
	const struct field *sub; /* the members read inside, when the value is an object */
	unsigned sub_first, sub_end; /* the slots of sub and what is inside them */
};

#define LEAF(k, s) { k, sizeof(k) - 1, s, NULL, 0, 0 }
#define NODE(k, s, f, first, end) { k, sizeof(k) - 1, s, f, first, end }

static const struct field info_fields[] = { LEAF("bootID", S_BOOT_ID), { NULL } };

static const struct field metadata_fields[] = {
	LEAF("name", S_NAME),
	LEAF("namespace", S_NAMESPACE),
	LEAF("labels", S_LABELS),
	LEAF("creationTimestamp", S_CREATED),
	LEAF("resourceVersion", S_RESOURCE_VERSION),
	{ NULL },
};

static const struct field spec_fields[] = {
	LEAF("podCIDRs", S_POD_CIDRS),
	LEAF("podCIDR", S_POD_CIDR),
	LEAF("nodeName", S_NODE_NAME),
	LEAF("hostNetwork", S_HOST_NETWORK),
	LEAF("addresses", S_SPEC_ADDRESSES),
	LEAF("bootID", S_SPEC_BOOT_ID),
	LEAF("keyGeneration", S_KEY_GENERATION),
	LEAF("wireguardPublicKey", S_WG_KEY),
	{ NULL },
};

static const struct field status_fields[] = {
	NODE("nodeInfo", S_NODE_INFO, info_fields, S_BOOT_ID, S_BOOT_ID + 1),
	LEAF("addresses", S_STATUS_ADDRESSES),
	LEAF("phase", S_PHASE),
	LEAF("podIPs", S_POD_IPS),
	LEAF("podIP", S_POD_IP),
	{ NULL },
};

static const struct field object_fields[] = {
	LEAF("kind", S_KIND),
	LEAF("apiVersion", S_API_VERSION),
	NODE("metadata", S_METADATA, metadata_fields, S_NAME, S_RESOURCE_VERSION + 1),
	NODE("spec", S_SPEC, spec_fields, S_POD_CIDRS, S_WG_KEY + 1),
	NODE("status", S_STATUS, status_fields, S_NODE_INFO, S_POD_IP + 1),
	LEAF("data", S_DATA),
	LEAF("items", S_ITEMS),
	{ NULL },
};

/* Called by walk() for the root's "items" instead of skipping it; it consumes the value. */
struct items_hook {
	int (*fn)(struct pctx *c, struct val *vals, struct items_hook *hook);
};

/* Notes the members of fields in the object at the reader into vals, and consumes it. The
 * recursion follows the fields, three levels at most, never the input. */
static int walk(struct pctx *c, const struct field *fields, struct val *vals,
		struct items_hook *hook)
{
	struct mci_json_reader *r = c->r;
	const char *k;
	size_t len;
	int more, ret;

	if (mci_json_enter_object(r) < 0)
		return syntax_error(c);
	while ((more = mci_json_next_member(r, &k, &len)) > 0) {
		const struct field *f = fields;
		struct val *v;

		while (f->key && (f->len != len || f->key[0] != k[0] || memcmp(f->key, k, len) != 0))
			f++;
		if (!f->key) {
			if (mci_json_skip(r) < 0)
				return syntax_error(c);
			continue;
		}
		v = &vals[f->slot];
		v->m = mci_json_mark(r);
		if (mci_json_peek(r, &v->type) < 0)
			return syntax_error(c);
		if (v->type == MCI_JSON_NULL)
			v->type = 0;
		if (f->sub)
			memset(&vals[f->sub_first], 0, (f->sub_end - f->sub_first) * sizeof(*v));
		if (f->sub && v->type == MCI_JSON_OBJECT)
			ret = walk(c, f->sub, vals, NULL);
		else if (hook && f->slot == S_ITEMS)
			ret = hook->fn(c, vals, hook);
		else
			ret = mci_json_skip(r) < 0 ? syntax_error(c) : 0;
		if (ret < 0)
			return ret;
	}
	return more < 0 ? syntax_error(c) : 0;
}

/*
 * Walks the members (labels, Secret data) of the object at v in document order: each key is
 * checked (non-empty, at most key_max bytes) and handed NUL-terminated to each(), with its
 * value, which must be a string. what names the keys in messages ("label key").
 */
typedef int (*entry_fn)(struct pctx *c, const char *key, const struct val *v,
			struct mc_object *o);

static int map_entries(struct pctx *c, const struct val *v, const char *what, size_t key_max,
		       entry_fn each, struct mc_object *o)
{
	struct mci_json_reader *r = c->r;
	struct mci_json_mark after;
	char q[QUOTE_MAX + 8], key[LABEL_KEY_MAX + 1];
	const char *k;
	size_t len;
	int more, ret;

	mci_json_seek(r, &v->m);
	if (mci_json_enter_object(r) < 0)
		return syntax_error(c);
	while ((more = mci_json_next_member(r, &k, &len)) > 0) {
		struct val e = { .m = mci_json_mark(r) };

		if (len == 0 || len > key_max)
			return fail(c, -EINVAL, NULL, NULL, "%s %s is empty or too long", what,
			            quote(q, k, len));
		memcpy(key, k, len);
		key[len] = '\0';
		if (mci_json_peek(r, &e.type) < 0 || mci_json_skip(r) < 0)
			return syntax_error(c);
		after = r->at;
		if (e.type != MCI_JSON_STRING)
			return fail(c, -EINVAL, key, e.m.p, "expected a string, got %s",
			            type_name(e.type));
		if ((ret = each(c, key, &e, o)) < 0)
			return ret;
		mci_json_seek(r, &after);
	}
	return more < 0 ? syntax_error(c) : 0;
}

static int label_entry(struct pctx *c, const char *key, const struct val *v, struct mc_object *o)
{
	char q[QUOTE_MAX + 8];
	struct mc_label *l = NULL;
	struct str s;
	char *value;
	int r = read_str(c, key, v, &s);

	if (r < 0)
		goto out;
	if (s.len > LABEL_VALUE_MAX) {
		r = fail(c, -EINVAL, key, v->m.p, "%s is longer than %d characters",
		         quote(q, s.s, s.len), LABEL_VALUE_MAX);
		goto out;
	}
	if (!(value = obj_strndup(c, s.s, s.len))) {
		r = -ENOMEM;
		goto out;
	}
	/* a repeated key keeps its place and takes the last value, as json-c's objects did */
	for (size_t i = 0; i < o->n_labels && !l; i++)
		if (strcmp(o->labels[i].key, key) == 0)
			l = &o->labels[i];
	if (!l) {
		l = &o->labels[o->n_labels];
		if (!(l->key = obj_strndup(c, key, strlen(key)))) {
			obj_release(c, value);
			r = -ENOMEM;
			goto out;
		}
		o->n_labels++;
	}
	obj_release(c, l->value);
	l->value = value;
out:
	str_free(&s);
	return r;
}

static int parse_labels(struct pctx *c, const struct val *v, struct mc_object *o)
{
	size_t n;
	int r = member(c, "labels", v, MCI_JSON_OBJECT);

	if (r < 0 || !v->type || (r = count(c, v, &n)) < 0 || n == 0)
		return r;
	o->labels = obj_alloc(c, n, sizeof(*o->labels));
	if (!o->labels)
		return -ENOMEM;
	push_key(c, "labels", v->m.p);
	r = map_entries(c, v, "label key", LABEL_KEY_MAX, label_entry, o);
	pop(c);
	return r;
}

/* Calls each() for every element of the array member key at v, which must be objects; the
 * element is on the path meanwhile. */
typedef int (*element_fn)(struct pctx *c, const struct val *e, struct mc_object *o);

static int object_elements(struct pctx *c, const char *key, const struct val *v,
			   element_fn each, struct mc_object *o)
{
	struct mci_json_reader *r = c->r;
	struct mci_json_mark after;
	int more = 0, ret = 0;

	push_key(c, key, v->m.p);
	mci_json_seek(r, &v->m);
	if (mci_json_enter_array(r) < 0)
		ret = syntax_error(c);
	for (size_t i = 0; ret >= 0 && (more = mci_json_next_element(r)) > 0; i++) {
		struct val e = { .m = mci_json_mark(r) };

		if (mci_json_peek(r, &e.type) < 0 || mci_json_skip(r) < 0) {
			ret = syntax_error(c);
			break;
		}
		after = r->at;
		push_index(c, i, e.m.p);
		if (e.type != MCI_JSON_OBJECT)
			ret = fail(c, -EINVAL, NULL, NULL, "expected an object, got %s",
			           type_name(e.type));
		else
			ret = each(c, &e, o);
		pop(c);
		mci_json_seek(r, &after);
	}
	if (ret >= 0 && more < 0)
		ret = syntax_error(c);
	pop(c);
	return ret;
}

static int node_address(struct pctx *c, const struct val *e, struct mc_object *o)
{
	static const char *const keys[] = { "type", "address" };
	struct mc_ip *ip = &o->node.addresses[o->node.n_addresses];
	struct val vals[2];
	struct str type, addr = { .s = NULL };
	int r = collect(c, &e->m, keys, 2, vals);

	if (r < 0 || (r = member_str(c, "type", &vals[0], &type)) < 0)
		return r;
	if (type.s && strcmp(type.s, "InternalIP") == 0) {
		r = member_str(c, "address", &vals[1], &addr);
		if (r >= 0 && !addr.s)
			r = fail(c, -EINVAL, "address", NULL, "missing");
		if (r >= 0)
			r = ip_value(c, "address", vals[1].m.p, &addr, ip);
		if (r >= 0 &&
		    !memmem(o->node.addresses, o->node.n_addresses * sizeof(*ip), ip, sizeof(*ip)))
			o->node.n_addresses++;
	}
	str_free(&type);
	str_free(&addr);
	return r;
}

static int parse_node(struct pctx *c, const struct val *vals, struct mc_object *o)
{
	const struct val *spec = &vals[S_SPEC], *status = &vals[S_STATUS];
	const struct val *info = &vals[S_NODE_INFO], *addresses = &vals[S_STATUS_ADDRESSES];
	size_t n = 0;
	int r;

	if ((r = member(c, "spec", spec, MCI_JSON_OBJECT)) < 0)
		return r;
	if (spec->type) {
		push_key(c, "spec", spec->m.p);
		r = prefix_array(c, "podCIDRs", &vals[S_POD_CIDRS], &o->node.pod_cidrs,
		                 &o->node.n_pod_cidrs);
		if (r >= 0 && o->node.n_pod_cidrs == 0)
			r = single_string(c, "podCIDR", &vals[S_POD_CIDR], sizeof(struct mc_prefix),
			                  conv_prefix, (void **)&o->node.pod_cidrs,
			                  &o->node.n_pod_cidrs);
		pop(c);
		if (r < 0)
			return r;
	}
	if ((r = member(c, "status", status, MCI_JSON_OBJECT)) < 0 || !status->type)
		return r;
	push_key(c, "status", status->m.p);
	r = member(c, "nodeInfo", info, MCI_JSON_OBJECT);
	if (r >= 0 && info->type) {
		push_key(c, "nodeInfo", info->m.p);
		r = boot_id_member(c, "bootID", &vals[S_BOOT_ID], o->node.boot_id);
		pop(c);
	}
	if (r >= 0)
		r = member(c, "addresses", addresses, MCI_JSON_ARRAY);
	if (r >= 0 && addresses->type)
		r = count(c, addresses, &n);
	if (r >= 0 && n > 0) {
		o->node.addresses = obj_alloc(c, n, sizeof(struct mc_ip));
		r = o->node.addresses ? object_elements(c, "addresses", addresses, node_address, o)
		                      : -ENOMEM;
	}
	pop(c);
	return r;
}

static int pod_ip(struct pctx *c, const struct val *e, struct mc_object *o)
{
	static const char *const keys[] = { "ip" };
	struct mc_ip *ip = &o->pod.ips[o->pod.n_ips];
	struct val v;
	struct str s = { .s = NULL };
	int r = collect(c, &e->m, keys, 1, &v);

	if (r >= 0)
		r = member_str(c, "ip", &v, &s);
	if (r >= 0 && !s.s)
		r = fail(c, -EINVAL, "ip", NULL, "missing");
	if (r >= 0)
		r = ip_value(c, "ip", v.m.p, &s, ip);
	for (size_t j = 0; r >= 0 && j < o->pod.n_ips; j++)
		if (o->pod.ips[j].family == ip->family && memcmp(&o->pod.ips[j], ip, sizeof(*ip)) != 0)
			r = fail(c, -EINVAL, "ip", v.m.p,
			         "a second address of one family (Kubernetes allows one IPv4 and one "
			         "IPv6 address)");
	if (r >= 0 && !memmem(o->pod.ips, o->pod.n_ips * sizeof(*ip), ip, sizeof(*ip)))
		o->pod.n_ips++;
	str_free(&s);
	return r;
}

static int parse_pod(struct pctx *c, const struct val *vals, struct mc_object *o)
{
	const struct val *spec = &vals[S_SPEC], *status = &vals[S_STATUS];
	const struct val *host = &vals[S_HOST_NETWORK], *ips = &vals[S_POD_IPS];
	char q[QUOTE_MAX + 8];
	struct str s;
	size_t n = 0;
	int r;

	push_key(c, "metadata", vals[S_METADATA].m.p);
	r = member_str(c, "creationTimestamp", &vals[S_CREATED], &s);
	if (r >= 0 && s.s && parse_time(s.s, &o->created) < 0)
		r = fail(c, -EINVAL, "creationTimestamp", vals[S_CREATED].m.p,
		         "%s is not an RFC 3339 time", quote(q, s.s, s.len));
	str_free(&s);
	pop(c);
	if (r < 0 || (r = member(c, "spec", spec, MCI_JSON_OBJECT)) < 0)
		return r;
	if (spec->type) {
		push_key(c, "spec", spec->m.p);
		r = member_str(c, "nodeName", &vals[S_NODE_NAME], &s);
		if (r >= 0 && s.s && s.len > 0)
			r = name_value(c, "nodeName", vals[S_NODE_NAME].m.p, &s, MC_NAME_MAX,
			               &o->pod.node_name);
		str_free(&s);
		if (r >= 0)
			r = member(c, "hostNetwork", host, MCI_JSON_BOOL);
		if (r >= 0 && host->type) {
			mci_json_seek(c->r, &host->m);
			if (mci_json_read_bool(c->r, &o->pod.host_network) < 0)
				r = syntax_error(c);
		}
		pop(c);
		if (r < 0)
			return r;
	}
	if ((r = member(c, "status", status, MCI_JSON_OBJECT)) < 0 || !status->type)
		return r;
	push_key(c, "status", status->m.p);
	r = member_str(c, "phase", &vals[S_PHASE], &s);
	if (r >= 0 && s.s)
		o->pod.terminated = strcmp(s.s, "Succeeded") == 0 || strcmp(s.s, "Failed") == 0;
	str_free(&s);
	if (r >= 0)
		r = member(c, "podIPs", ips, MCI_JSON_ARRAY);
	if (r >= 0 && ips->type)
		r = count(c, ips, &n);
	if (r >= 0 && n > 0) {
		o->pod.ips = obj_alloc(c, n, sizeof(struct mc_ip));
		r = o->pod.ips ? object_elements(c, "podIPs", ips, pod_ip, o) : -ENOMEM;
	} else if (r >= 0) {
		/* servers before 1.16 (and kubelet's early states) set only podIP */
		r = single_string(c, "podIP", &vals[S_POD_IP], sizeof(struct mc_ip), conv_ip,
		                  (void **)&o->pod.ips, &o->pod.n_ips);
	}
	pop(c);
	return r;
}

static int parse_meshcrypt_node(struct pctx *c, const struct val *vals, struct mc_object *o)
{
	const struct val *spec = &vals[S_SPEC], *gen = &vals[S_KEY_GENERATION];
	int64_t g;
	int r;

	if ((r = member(c, "spec", spec, MCI_JSON_OBJECT)) < 0 || !spec->type)
		return r;
	push_key(c, "spec", spec->m.p);
	r = ip_array(c, "addresses", &vals[S_SPEC_ADDRESSES], &o->mcnode.addresses,
	             &o->mcnode.n_addresses);
	if (r >= 0)
		r = boot_id_member(c, "bootID", &vals[S_SPEC_BOOT_ID], o->mcnode.boot_id);
	if (r >= 0)
		r = member(c, "keyGeneration", gen, MCI_JSON_INT);
	if (r >= 0 && gen->type) {
		mci_json_seek(c->r, &gen->m);
		if (mci_json_read_int(c->r, &g) < 0)
			r = syntax_error(c);
		/* numbers beyond int64_t read as its limits, which fail here too */
		else if (g < 0 || g > UINT32_MAX)
			r = fail(c, -EINVAL, "keyGeneration", gen->m.p, "%lld is not in 0..%u",
			         (long long)g, UINT32_MAX);
		else
			o->mcnode.key_generation = (uint32_t)g;
	}
	if (r >= 0)
		r = wireguard_key_member(c, &vals[S_WG_KEY], o->mcnode.wireguard_public_key);
	if (r >= 0)
		r = prefix_array(c, "podCIDRs", &vals[S_POD_CIDRS], &o->mcnode.pod_cidrs,
		                 &o->mcnode.n_pod_cidrs);
	pop(c);
	return r;
}

static int secret_entry(struct pctx *c, const char *key, const struct val *v,
			struct mc_object *o)
{
	struct mc_secret_entry *e;
	uint8_t *data = NULL;
	size_t len = 0;
	struct str s;
	int r = read_str(c, key, v, &s);

	if (r >= 0) {
		r = base64_decode(s.s, s.len, &data, &len);
		if (r == -EINVAL)
			r = fail(c, -EINVAL, key, v->m.p, "not valid base64");
	}
	/* the text is the secret too */
	if (s.s)
		explicit_bzero(s.s, s.len);
	str_free(&s);
	if (r < 0)
		return r;
	/* a repeated key keeps its place and takes the last value, as json-c's objects did */
	for (size_t i = 0; i < o->secret.n_entries; i++) {
		e = &o->secret.entries[i];
		if (strcmp(e->key, key) != 0)
			continue;
		explicit_bzero(e->data, e->len);
		free(e->data);
		e->data = data;
		e->len = len;
		return 0;
	}
	e = &o->secret.entries[o->secret.n_entries];
	if (!(e->key = strdup(key))) {
		explicit_bzero(data, len);
		free(data);
		return -ENOMEM;
	}
	e->data = data;
	e->len = len;
	o->secret.n_entries++;
	return 0;
}

static int parse_secret(struct pctx *c, const struct val *vals, struct mc_object *o)
{
	const struct val *data = &vals[S_DATA];
	size_t n;
	int r = member(c, "data", data, MCI_JSON_OBJECT);

	if (r < 0 || !data->type || (r = count(c, data, &n)) < 0 || n == 0)
		return r;
	o->secret.entries = calloc(n, sizeof(*o->secret.entries));
	if (!o->secret.entries)
		return -ENOMEM;
	push_key(c, "data", data->m.p);
	r = map_entries(c, data, "key", MC_NAME_MAX, secret_entry, o);
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
static const struct kind_info *lookup_kind(const char *kind, const char *api_version)
{
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

/* The metadata every kind has: name, namespace, labels. */
static int parse_metadata(struct pctx *c, const struct kind_info *k, const struct val *vals,
			  struct mc_object *o)
{
	struct str s;
	int r = member_str(c, "name", &vals[S_NAME], &s);

	if (r >= 0 && !s.s)
		r = fail(c, -EINVAL, "name", NULL, "missing");
	if (r >= 0)
		r = name_value(c, "name", vals[S_NAME].m.p, &s, MC_NAME_MAX, &o->name);
	str_free(&s);
	if (r < 0)
		return r;
	c->name = o->name;
	if (k->namespaced) {
		r = member_str(c, "namespace", &vals[S_NAMESPACE], &s);
		if (r >= 0 && !s.s)
			r = fail(c, -EINVAL, "namespace", NULL, "missing");
		if (r >= 0)
			r = name_value(c, "namespace", vals[S_NAMESPACE].m.p, &s, MC_NAMESPACE_MAX,
			               &o->namespace);
		str_free(&s);
		if (r < 0)
			return r;
		c->ns = o->namespace;
	}
	if (k->kind == MC_OBJECT_NAMESPACE || k->kind == MC_OBJECT_POD)
		r = parse_labels(c, &vals[S_LABELS], o);
	return r;
}

/*
 * Converts the object whose members walk() noted in vals. Returns 0 with *out set, 1 when the
 * kind is not one meshcrypt reads (*out NULL; kind holds its name for a message, or is NULL
 * when default_kind was used), or -errno.
 */
static int convert(struct pctx *c, const struct val *vals, const char *default_kind,
		   struct mc_object **out, struct str *kind)
{
	const struct val *meta = &vals[S_METADATA];
	const struct kind_info *k;
	struct mc_object *o;
	struct str api;
	const char *name;
	int r;

	*out = NULL;
	if ((r = member_str(c, "kind", &vals[S_KIND], kind)) < 0 ||
	    (r = member_str(c, "apiVersion", &vals[S_API_VERSION], &api)) < 0)
		return r;
	if (!(name = kind->s ? kind->s : default_kind)) {
		str_free(&api);
		return fail(c, -EINVAL, "kind", NULL, "missing");
	}
	k = lookup_kind(name, api.s);
	str_free(&api);
	if (!k)
		return 1;
	c->kind = k->name;

	c->arena = k->kind == MC_OBJECT_POD || k->kind == MC_OBJECT_NAMESPACE ? c->list_arena : NULL;
	o = obj_alloc(c, 1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->kind = k->kind;
	o->in_arena = c->arena != NULL;
	if ((r = member(c, "metadata", meta, MCI_JSON_OBJECT)) < 0)
		goto fail;
	if (!meta->type) {
		r = fail(c, -EINVAL, "metadata", NULL, "missing");
		goto fail;
	}
	push_key(c, "metadata", meta->m.p);
	r = parse_metadata(c, k, vals, o);
	pop(c);
	if (r < 0)
		goto fail;
	switch (k->kind) {
	case MC_OBJECT_POD:
		r = parse_pod(c, vals, o);
		break;
	case MC_OBJECT_NODE:
		r = parse_node(c, vals, o);
		break;
	case MC_OBJECT_MESHCRYPT_NODE:
		r = parse_meshcrypt_node(c, vals, o);
		break;
	case MC_OBJECT_SECRET:
		r = parse_secret(c, vals, o);
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

static void clear_error(struct mc_parse_error *err)
{
	err->line = err->column = 0;
	err->message[0] = '\0';
}

/* "PodList" -> "Pod" in buf; "List" -> NULL (its items name their kind). */
static const char *item_kind(const char *list_kind, char *buf, size_t size)
{
	size_t n = strlen(list_kind) - 4;

	if (n == 0 || n >= size)
		return NULL;
	memcpy(buf, list_kind, n);
	buf[n] = '\0';
	return buf;
}

static bool is_list(const char *kind)
{
	size_t n = kind ? strlen(kind) : 0;

	return n >= 4 && strcmp(kind + n - 4, "List") == 0;
}

static int list_append(struct mc_object_list *list, size_t *cap, struct mc_object *o)
{
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

/* A syntax error, which ends the reading; a content error (-EINVAL with the reader content)
 * does not. */
static bool is_syntax_error(const struct pctx *c, int r)
{
	return r == -EINVAL && c->r->error;
}

/*
 * Converts the List whose members are noted in vals into list, leaving the reader after its
 * items. On a content error, the items after it are still read, so that a syntax error further
 * on is the one reported, as it would be with the whole document checked first.
 */
static int convert_list(struct pctx *c, const struct val *vals, const char *list_kind,
			struct mc_object_list *list)
{
	struct mci_json_reader *r = c->r;
	const struct val *meta = &vals[S_METADATA], *items = &vals[S_ITEMS];
	char kind_buf[64];
	const char *default_kind = item_kind(list_kind, kind_buf, sizeof(kind_buf));
	struct str s;
	size_t cap = 0;
	int more, ret = member(c, "metadata", meta, MCI_JSON_OBJECT);

	if (ret >= 0 && meta->type) {
		push_key(c, "metadata", meta->m.p);
		ret = member_str(c, "resourceVersion", &vals[S_RESOURCE_VERSION], &s);
		pop(c);
		if (ret >= 0 && s.s && s.len > 0 && !(list->resource_version = strdup(s.s)))
			ret = -ENOMEM;
		str_free(&s);
	}
	if (ret >= 0)
		ret = member(c, "items", items, MCI_JSON_ARRAY);
	if (ret < 0 || items->type != MCI_JSON_ARRAY) {
		/* not converted, but read: the reader is to end up after them (even a null) */
		if (ret != -ENOMEM && items->m.p) {
			mci_json_seek(r, &items->m);
			if (mci_json_skip(r) < 0)
				return syntax_error(c);
		}
		return ret;
	}
	mci_json_seek(r, &items->m);
	if (mci_json_enter_array(r) < 0)
		return syntax_error(c);
	for (long i = 0; (more = mci_json_next_element(r)) > 0; i++) {
		struct pctx ic = { .err = c->err, .r = r, .item = i, .list_arena = &list->arena };
		struct val item = { .m = mci_json_mark(r) }, iv[S_N];
		struct mci_json_mark after;
		struct mc_object *o;
		struct str kind;
		int cr;

		ic.at = item.m.p;
		if (mci_json_peek(r, &item.type) < 0)
			return syntax_error(c);
		if (item.type != MCI_JSON_OBJECT || ret < 0) {
			if (mci_json_skip(r) < 0)
				return syntax_error(c);
			if (ret >= 0 && item.type != MCI_JSON_OBJECT) {
				cr = fail(&ic, -EINVAL, NULL, NULL, "expected an object, got %s",
				          type_name(item.type));
				if (c->skip_bad_items)
					list->skipped++;
				else
					ret = cr;
			}
			continue;
		}
		memset(iv, 0, sizeof(iv));
		if ((cr = walk(&ic, object_fields, iv, NULL)) < 0)
			return cr;
		after = r->at;
		cr = convert(&ic, iv, default_kind, &o, &kind);
		str_free(&kind);
		if (cr == -ENOMEM || (cr == 0 && list_append(list, &cap, o) < 0))
			return -ENOMEM;
		if (cr < 0 && c->skip_bad_items)
			list->skipped++;
		else if (cr < 0)
			ret = cr;
		mci_json_seek(r, &after);
	}
	return more < 0 ? syntax_error(c) : ret;
}

/*
 * A List's items are converted while the document is read, when its kind and metadata came
 * before them (as the API server writes them); kubectl writes "items" first, and then they are
 * converted after the reading. The conversion counts only if neither kind, metadata nor items
 * came again later.
 */
struct list_hook {
	struct items_hook hook;
	struct mc_object_list *list;
	/* the items last converted into list, NULL when none were: it may hold them even when
	 * later items were not converted, so only discard_items() empties it */
	const char *items_at;
	int result;
};

static int items_now(struct pctx *c, struct val *vals, struct items_hook *hook)
{
	struct list_hook *lh = (struct list_hook *)hook;
	struct mc_object_list *list = lh->list;
	struct str kind;
	int r;

	if (vals[S_KIND].type != MCI_JSON_STRING)
		return mci_json_skip(c->r) < 0 ? syntax_error(c) : 0;
	if ((r = read_str(c, "kind", &vals[S_KIND], &kind)) < 0 || !is_list(kind.s)) {
		str_free(&kind);
		if (r < 0 && (r == -ENOMEM || is_syntax_error(c, r)))
			return r;
		mci_json_seek(c->r, &vals[S_ITEMS].m);
		return mci_json_skip(c->r) < 0 ? syntax_error(c) : 0;
	}
	/* a repeated "items": start again */
	for (size_t i = 0; i < list->n_objects; i++)
		mc_object_free(list->objects[i]);
	list->n_objects = 0;
	free(list->resource_version);
	list->resource_version = NULL;
	clear_error(c->err);
	r = convert_list(c, vals, kind.s, list);
	str_free(&kind);
	if (r == -ENOMEM || is_syntax_error(c, r))
		return r;
	lh->items_at = vals[S_ITEMS].m.p;
	lh->result = r;
	return 0;
}

/*
 * Reads the whole document once, which checks that all of it is JSON, and notes the root
 * value in *root and, when it is an object, its members in vals. hook (may be NULL) converts
 * a List's items on the way.
 */
static int read_document(struct pctx *c, const char *json, size_t len, struct val *root,
			 struct val vals[S_N], struct items_hook *hook)
{
	if (len > MC_DOCUMENT_MAX) {
		snprintf(c->err->message, sizeof(c->err->message),
		         "document of %zu bytes is larger than the limit of %zu", len,
		         (size_t)MC_DOCUMENT_MAX);
		return -EFBIG;
	}
	mci_json_reader_init(c->r, json, len);
	root->m = mci_json_mark(c->r);
	c->at = root->m.p;
	memset(vals, 0, S_N * sizeof(*vals));
	if (mci_json_peek(c->r, &root->type) < 0)
		return syntax_error(c);
	if (root->type == MCI_JSON_OBJECT) {
		int r = walk(c, object_fields, vals, hook);

		if (r < 0)
			return r;
	} else if (mci_json_skip(c->r) < 0) {
		return syntax_error(c);
	}
	return mci_json_finish(c->r) < 0 ? syntax_error(c) : 0;
}

/* Drops the items converted while reading, which did not count after all (the kind, metadata
 * or items came again later), and the error they may have left. */
static int discard_items(struct pctx *c, struct list_hook *lh)
{
	clear_error(c->err);
	if (!lh->items_at)
		return 0;
	mc_object_list_free(lh->list);
	lh->list = calloc(1, sizeof(*lh->list));
	return lh->list ? 0 : -ENOMEM;
}

/* Whether the member noted in v is absent or came before at. */
static bool before(const struct val *v, const char *at)
{
	return !v->m.p || v->m.p < at;
}

/* What both entry points do first: a place for the error, cleared, and a document. */
static int parse_begin(struct pctx *c, struct mc_parse_error *err, struct mc_parse_error *scratch,
		       const char *json)
{
	c->err = err ? err : scratch;
	clear_error(c->err);
	return json ? 0 : -EINVAL;
}

static int expect_object(struct pctx *c, const struct val *root)
{
	if (root->type == MCI_JSON_OBJECT)
		return 0;
	return fail(c, -EINVAL, NULL, NULL, "expected an object, got %s", type_name(root->type));
}

static int parse_list(const char *json, size_t len, bool skip_bad_items,
		      struct mc_object_list **out, struct mc_parse_error *err)
{
	struct mc_parse_error scratch;
	struct mci_json_reader reader;
	struct pctx c = { .r = &reader, .item = -1, .skip_bad_items = skip_bad_items };
	struct list_hook lh = { .hook.fn = items_now };
	struct val root, vals[S_N];
	struct str kind = { .s = NULL };
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if ((r = parse_begin(&c, err, &scratch, json)) < 0)
		return r;
	if (!(lh.list = calloc(1, sizeof(*lh.list))))
		return -ENOMEM;
	if ((r = read_document(&c, json, len, &root, vals, &lh.hook)) < 0)
		goto out;
	/* a List is known by its kind; anything else is taken as one object */
	if (root.type == MCI_JSON_OBJECT && vals[S_KIND].type == MCI_JSON_STRING &&
	    (r = read_str(&c, "kind", &vals[S_KIND], &kind)) < 0)
		goto out;
	if (is_list(kind.s)) {
		if (lh.items_at && lh.items_at == vals[S_ITEMS].m.p &&
		    before(&vals[S_KIND], lh.items_at) && before(&vals[S_METADATA], lh.items_at)) {
			r = lh.result;
		} else if ((r = discard_items(&c, &lh)) == 0) {
			r = convert_list(&c, vals, kind.s, lh.list);
		}
	} else if ((r = discard_items(&c, &lh)) == 0) {
		struct mc_object *o;
		struct str k;

		c.list_arena = &lh.list->arena;
		r = expect_object(&c, &root);
		if (r == 0)
			r = convert(&c, vals, NULL, &o, &k);
		if (root.type == MCI_JSON_OBJECT)
			str_free(&k);
		if (r == 0) {
			lh.list->objects = malloc(sizeof(*lh.list->objects));
			if (lh.list->objects)
				lh.list->objects[lh.list->n_objects++] = o;
			else
				r = -ENOMEM, mc_object_free(o);
		}
	}
out:
	str_free(&kind);
	if (r < 0) {
		mc_object_list_free(lh.list);
		return r;
	}
	/* r == 1: a single object of another kind, skipped like a List item */
	*out = lh.list;
	return 0;
}

int mc_object_list_parse(const char *json, size_t len, struct mc_object_list **out,
			 struct mc_parse_error *err)
{
	return parse_list(json, len, false, out, err);
}

int mc_object_list_parse_skipping(const char *json, size_t len, struct mc_object_list **out,
				  size_t *skipped, struct mc_parse_error *err)
{
	int r = parse_list(json, len, true, out, err);

	*skipped = r == 0 ? (*out)->skipped : 0;
	return r;
}

int mc_object_parse(const char *json, size_t len, struct mc_object **out,
		    struct mc_parse_error *err)
{
	struct mc_parse_error scratch;
	struct mci_json_reader reader;
	struct pctx c = { .r = &reader, .item = -1 };
	struct val root, vals[S_N];
	struct str kind = { .s = NULL };
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if ((r = parse_begin(&c, err, &scratch, json)) < 0)
		return r;
	if ((r = read_document(&c, json, len, &root, vals, NULL)) < 0)
		return r;
	if ((r = expect_object(&c, &root)) < 0)
		return r;
	r = convert(&c, vals, NULL, out, &kind);
	if (r == 1)
		r = fail(&c, is_list(kind.s) ? -EINVAL : -ENOTSUP, NULL, NULL,
		         "kind %s is not one object meshcrypt reads", kind.s);
	str_free(&kind);
	return r;
}

int mc_object_list_parse_file(const char *path, struct mc_object_list **out,
			      struct mc_parse_error *err)
{
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
