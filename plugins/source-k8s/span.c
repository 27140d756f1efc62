/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "span.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t skip_ws(const char *p, size_t i, size_t n)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

/* The end (one past) of the JSON value at i, or 0 when malformed. Depth-limited. */
static size_t skip_value(const char *p, size_t i, size_t n)
{
	unsigned depth = 0;

	if (i >= n)
		return 0;
	do {
		if (i >= n)
			return 0;
		switch (p[i]) {
		case '"':
			for (i++; i < n && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
			if (i >= n)
				return 0;
			i++;
			break;
		case '{':
		case '[':
			if (++depth > 512)
				return 0;
			i++;
			break;
		case '}':
		case ']':
			if (depth == 0)
				return 0;
			depth--;
			i++;
			break;
		default:
			if (depth == 0) {
				/* a scalar: up to a delimiter */
				while (i < n && !strchr(",}] \t\r\n", p[i]))
					i++;
				return i;
			}
			i++;
		}
	} while (depth > 0);
	return i;
}

int mck_member(struct mck_span doc, const char *key, struct mck_span *value)
{
	const char *p = doc.p;
	size_t n = doc.len, i = skip_ws(p, 0, n), klen = strlen(key);

	if (i >= n || p[i] != '{')
		return -EINVAL;
	i = skip_ws(p, i + 1, n);
	if (i < n && p[i] == '}')
		return -ENOENT;
	while (i < n) {
		size_t kstart, kend, vstart, vend;

		if (p[i] != '"')
			return -EINVAL;
		kstart = i + 1;
		kend = skip_value(p, i, n);
		if (!kend)
			return -EINVAL;
		i = skip_ws(p, kend, n);
		if (i >= n || p[i] != ':')
			return -EINVAL;
		vstart = skip_ws(p, i + 1, n);
		vend = skip_value(p, vstart, n);
		if (!vend)
			return -EINVAL;
		if (kend - 1 - kstart == klen && memcmp(p + kstart, key, klen) == 0) {
			if (p[vstart] == '"') {
				value->p = p + vstart + 1;
				value->len = vend - vstart - 2;
			} else {
				value->p = p + vstart;
				value->len = vend - vstart;
			}
			return 0;
		}
		i = skip_ws(p, vend, n);
		if (i < n && p[i] == ',')
			i = skip_ws(p, i + 1, n);
		else if (i < n && p[i] == '}')
			return -ENOENT;
		else
			return -EINVAL;
	}
	return -EINVAL;
}

int mck_array_inner(struct mck_span doc, struct mck_span *inner)
{
	size_t i = skip_ws(doc.p, 0, doc.len), end;

	if (i >= doc.len || doc.p[i] != '[')
		return -EINVAL;
	end = skip_value(doc.p, i, doc.len);
	if (!end)
		return -EINVAL;
	inner->p = doc.p + i + 1;
	inner->len = end - i - 2;
	return 0;
}

int mck_array_next(struct mck_span *rest, struct mck_span *elem)
{
	size_t i = skip_ws(rest->p, 0, rest->len), end;

	if (i < rest->len && rest->p[i] == ',')
		i = skip_ws(rest->p, i + 1, rest->len);
	if (i >= rest->len)
		return -ENOENT;
	end = skip_value(rest->p, i, rest->len);
	if (!end)
		return -EINVAL;
	if (rest->p[i] == '"') {
		elem->p = rest->p + i + 1;
		elem->len = end - i - 2;
	} else {
		elem->p = rest->p + i;
		elem->len = end - i;
	}
	rest->p += end;
	rest->len -= end;
	return 0;
}

void mck_lines_init(struct mck_lines *l, size_t max)
{
	memset(l, 0, sizeof(*l));
	l->max = max;
}

void mck_lines_free(struct mck_lines *l)
{
	free(l->buf);
	memset(l, 0, sizeof(*l));
}

static int append(struct mck_lines *l, const char *data, size_t len)
{
	/* An empty line before any other (buf still NULL) appends nothing: memcpy() to NULL is
	 * undefined even for 0 bytes. */
	if (len == 0)
		return 0;
	if (l->len + len > l->cap) {
		size_t cap = l->cap ? l->cap : 4096;
		char *b;

		while (cap < l->len + len)
			cap *= 2;
		b = realloc(l->buf, cap);
		if (!b)
			return -ENOMEM;
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, data, len);
	l->len += len;
	return 0;
}

int mck_lines_feed(struct mck_lines *l, const char *data, size_t len, mck_line_fn fn,
		   void *userdata)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t part = nl ? (size_t)(nl - data) : len;
		int r = 0;

		if (!l->skipping && l->len + part > l->max) {
			r = fn(NULL, l->len + part, userdata);
			l->skipping = true;
			l->len = 0;
		}
		if (!l->skipping && (r = append(l, data, part)) < 0)
			return r;
		if (nl) {
			if (!l->skipping && l->len)
				r = fn(l->buf, l->len, userdata);
			l->skipping = false;
			l->len = 0;
		}
		if (r < 0)
			return r;
		data += part + (nl ? 1 : 0);
		len -= part + (nl ? 1 : 0);
	}
	return 0;
}
