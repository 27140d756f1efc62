/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the Kubernetes source's watch-stream splitter and member finder
 * (plugins/source-k8s/span.h).
 *
 * The first HEADER bytes choose how the rest, a watch stream, is fed: the line limit, the
 * sizes of the chunks (from a small generator seeded by the input, so that lines are cut
 * anywhere, by empty chunks too) and which call of the line callback fails. What
 * mck_lines_feed() delivers must equal a reference split of the whole stream: every complete
 * non-empty line of at most max bytes, in order and byte for byte; every longer one reported
 * once as fn(NULL, n) with max < n <= its length (an unfinished last line too, as soon as it
 * is too long), and nothing buffered beyond max. A callback's error is returned at once and
 * ends the stream, as the watch ends.
 *
 * Each line delivered is then searched as on_event() searches a watch event (mck_member(),
 * mck_array_inner(), mck_array_next()): the spans found must lie within the line and a walk
 * of an array must end. Where the JSON reader (core/libmeshcrypt/json-reader.h) finds the line
 * well-formed, which mck_member() does not check, both must agree: every member (by its raw
 * key, the first of equal keys) and every array element is found with the same value,
 * strings without their quotes, down to a few levels.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json-reader.h"
#include "span.h"

/* max (2 bytes, big endian; 0xffff: the k8s source's 4 MiB), chunk generator seed, chunk
 * scale, the callback that fails (0: none). */
#define HEADER 5
#define K8S_MAX_LINE (4u << 20)

/* Lookups of one line against the JSON reader: mck_member() is linear in the line, so this
 * bounds the quadratic work that a line of many members would ask for. */
#define BUDGET 64

/* ---- the splitter against a reference split ---- */

struct expect {
	const uint8_t *stream, *end;
	const uint8_t *at; /* start of the next line of the reference */
	size_t max;
	size_t calls, fail_at; /* fn calls so far; the one that returns -ECANCELED */
	bool reported;         /* the too-long line at `at` has been reported */
	const char **lines;    /* the lines delivered, to be searched after the feed */
	size_t *lens, n_lines;
};

/* The reference's next event from `at` on: 1 with a line to deliver, 2 with a too-long line
 * (*len its length so far, *complete whether its newline has come), 0 when none is left. */
static int reference_next(struct expect *e, const uint8_t **line, size_t *len, bool *complete)
{
	while (e->at < e->end) {
		const uint8_t *nl = memchr(e->at, '\n', (size_t)(e->end - e->at));
		size_t n = nl ? (size_t)(nl - e->at) : (size_t)(e->end - e->at);

		*line = e->at;
		*len = n;
		*complete = nl != NULL;
		if (n > e->max && !e->reported)
			return 2;
		if (n > 0 && n <= e->max && nl)
			return 1;
		if (!nl)
			return 0; /* an unfinished line the splitter holds */
		e->at = nl + 1;   /* an empty line, or the rest of a reported one */
		e->reported = false;
	}
	return 0;
}

static int on_line(const char *line, size_t len, void *userdata)
{
	struct expect *e = userdata;
	const uint8_t *want;
	size_t want_len;
	bool complete;
	int kind = reference_next(e, &want, &want_len, &complete);

	e->calls++;
	if (!line) {
		/* a line longer than max, reported once with its length so far */
		FUZZ_CHECK(kind == 2);
		FUZZ_CHECK(len > e->max && len <= want_len);
		e->reported = true;
	} else {
		FUZZ_CHECK(kind == 1);
		FUZZ_CHECK(len == want_len && memcmp(line, want, len) == 0);
		e->at = want + want_len + 1;
		if (e->n_lines < 16) {
			char *copy = malloc(len ? len : 1);

			FUZZ_CHECK(copy);
			memcpy(copy, line, len);
			e->lines[e->n_lines] = copy;
			e->lens[e->n_lines++] = len;
		}
	}
	return e->calls == e->fail_at ? -ECANCELED : 0;
}

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Feeds the stream in chunks; returns whether a callback failed (and ended the stream). */
static bool feed(struct expect *e, uint8_t seed, uint8_t scale)
{
	struct mck_lines l;
	const uint8_t *p = e->stream;
	uint32_t s = 0x9e3779b9u ^ seed;
	bool failed = false, was_empty = false;

	mck_lines_init(&l, e->max);
	while (p < e->end) {
		size_t left = (size_t)(e->end - p), chunk = xorshift(&s) % (1u + 8u * scale);
		int r;

		/* an empty chunk now and then, never twice in a row */
		if (chunk == 0 && was_empty)
			chunk = 1;
		was_empty = chunk == 0;
		if (chunk > left)
			chunk = left;
		r = mck_lines_feed(&l, (const char *)p, chunk, on_line, e);
		/* bounded by max whatever comes: no line is kept beyond it */
		FUZZ_CHECK(l.len <= l.max);
		FUZZ_CHECK(l.cap <= (l.max > 2048 ? 2 * l.max : 4096));
		if (r < 0) {
			FUZZ_CHECK(r == -ECANCELED && e->calls == e->fail_at);
			failed = true;
			break;
		}
		/* a callback that failed ends the feed with its error */
		FUZZ_CHECK(r == 0 && (!e->fail_at || e->calls < e->fail_at));
		p += chunk;
	}
	mck_lines_free(&l);
	return failed;
}

/* ---- the member finder ---- */

static void check_inside(struct mck_span doc, struct mck_span v)
{
	FUZZ_CHECK(v.p >= doc.p && v.len <= doc.len && (size_t)(v.p - doc.p) <= doc.len - v.len);
}

/* The value at [start, end) as mck_member() and mck_array_next() return it. */
static struct mck_span unquoted(const char *start, const char *end)
{
	if (*start == '"')
		return (struct mck_span){ start + 1, (size_t)(end - start) - 2 };
	return (struct mck_span){ start, (size_t)(end - start) };
}

static bool same_span(struct mck_span a, struct mck_span b)
{
	return a.p == b.p && a.len == b.len;
}

static void agree(struct mck_span doc, unsigned depth, unsigned *budget);

/* doc is a well-formed object: each member, by its raw key, is where the reader finds it. */
static void agree_object(struct mck_span doc, unsigned depth, unsigned *budget)
{
	struct mci_json_reader r;
	const char *keys[16];
	size_t key_lens[16], n_keys = 0;
	const char *k;
	size_t len;
	struct mck_span v;

	mci_json_reader_init(&r, doc.p, doc.len);
	FUZZ_CHECK(mci_json_enter_object(&r) == 0);
	while (mci_json_next_member(&r, &k, &len) == 1 && *budget > 0) {
		struct mci_json_mark m = mci_json_mark(&r);
		bool seen = false;
		char key[256];

		FUZZ_CHECK(mci_json_skip(&r) == 0);
		/* mck_member() compares raw keys: an escaped one has no raw text here */
		if (k == r.key || len >= sizeof(key))
			continue;
		for (size_t i = 0; i < n_keys; i++)
			seen |= key_lens[i] == len && memcmp(keys[i], k, len) == 0;
		if (seen)
			continue; /* mck_member() finds the first */
		if (n_keys < 16) {
			keys[n_keys] = k;
			key_lens[n_keys++] = len;
		}
		memcpy(key, k, len);
		key[len] = '\0';
		(*budget)--;
		FUZZ_CHECK(mck_member(doc, key, &v) == 0);
		FUZZ_CHECK(same_span(v, unquoted(m.p, r.at.p)));
		agree((struct mck_span){ m.p, (size_t)(r.at.p - m.p) }, depth + 1, budget);
	}
	/* a key no member has (a JSON key holds no raw control character) */
	FUZZ_CHECK(mck_member(doc, "\x01", &v) == -ENOENT);
}

/* doc is a well-formed array: mck_array_next() walks the elements the reader walks. */
static void agree_array(struct mck_span doc, unsigned depth, unsigned *budget)
{
	struct mci_json_reader r;
	struct mck_span rest, elem;

	FUZZ_CHECK(mck_array_inner(doc, &rest) == 0);
	mci_json_reader_init(&r, doc.p, doc.len);
	FUZZ_CHECK(mci_json_enter_array(&r) == 0);
	while (mci_json_next_element(&r) == 1 && *budget > 0) {
		struct mci_json_mark m = mci_json_mark(&r);

		(*budget)--;
		FUZZ_CHECK(mci_json_skip(&r) == 0);
		FUZZ_CHECK(mck_array_next(&rest, &elem) == 0);
		FUZZ_CHECK(same_span(elem, unquoted(m.p, r.at.p)));
		agree((struct mck_span){ m.p, (size_t)(r.at.p - m.p) }, depth + 1, budget);
	}
	if (*budget > 0)
		FUZZ_CHECK(mck_array_next(&rest, &elem) == -ENOENT);
}

static void agree(struct mck_span doc, unsigned depth, unsigned *budget)
{
	if (depth > 4 || doc.len == 0)
		return;
	if (doc.p[0] == '{')
		agree_object(doc, depth, budget);
	else if (doc.p[0] == '[')
		agree_array(doc, depth, budget);
}

/* Walks an array as the source walks "items" and "addresses": it ends, within the array. */
static void walk_array(struct mck_span doc)
{
	struct mck_span inner, rest, elem;
	int r;

	r = mck_array_inner(doc, &inner);
	FUZZ_CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		return;
	check_inside(doc, inner);
	rest = inner;
	for (;;) {
		size_t before = rest.len;

		if ((r = mck_array_next(&rest, &elem)) != 0)
			break;
		check_inside(inner, elem);
		check_inside(inner, rest);
		/* each step moves on (malformed text may yield an empty element, as in "[1,,2]") */
		FUZZ_CHECK(rest.len < before);
	}
	FUZZ_CHECK(r == -ENOENT || r == -EINVAL);
}

/* Searches doc as on_event() and the list reader do: the spans found lie within it. */
static struct mck_span member(struct mck_span doc, const char *key)
{
	struct mck_span v = { NULL, 0 };
	int r = mck_member(doc, key, &v);

	FUZZ_CHECK(r == 0 || r == -ENOENT || r == -EINVAL);
	if (r < 0)
		return (struct mck_span){ NULL, 0 };
	check_inside(doc, v);
	return v;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void search(struct mck_span doc)
{
	struct mci_json_reader r;
	struct mck_span object = member(doc, "object"), meta, trimmed = doc;
	unsigned budget = BUDGET;

	(void)member(doc, "type");
	meta = member(object, "metadata");
	(void)member(meta, "resourceVersion");
	(void)member(member(doc, "metadata"), "continue");
	walk_array(member(doc, "items"));
	walk_array(member(member(object, "status"), "addresses"));
	walk_array(doc);

	mci_json_reader_init(&r, doc.p, doc.len);
	if (mci_json_skip(&r) < 0 || mci_json_finish(&r) < 0)
		return;
	while (trimmed.len && is_space(trimmed.p[0]))
		trimmed.p++, trimmed.len--;
	while (trimmed.len && is_space(trimmed.p[trimmed.len - 1]))
		trimmed.len--;
	agree(trimmed, 0, &budget);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *lines[16];
	size_t lens[16];
	struct expect e = { .lines = lines, .lens = lens };
	bool failed;

	if (size < HEADER)
		return 0;
	e.max = data[0] << 8 | data[1];
	if (e.max == 0xffff)
		e.max = K8S_MAX_LINE;
	e.fail_at = data[4];
	e.stream = e.at = data + HEADER;
	e.end = data + size;
	failed = feed(&e, data[2], data[3]);
	if (!failed) {
		const uint8_t *line;
		size_t len;
		bool complete;

		/* every event of the stream came, but an unfinished line within the limit */
		FUZZ_CHECK(reference_next(&e, &line, &len, &complete) == 0);
	}
	for (size_t i = 0; i < e.n_lines; i++) {
		search((struct mck_span){ lines[i], lens[i] });
		free((void *)lines[i]);
	}
	return 0;
}
