/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the JSON pull reader (core/libmeshcrypt/json-reader.h): walks arbitrary
 * bytes as JSON, reading every value of every type and entering every object and array.
 *
 * Each value is also skipped from a mark first, then read from the same mark, because the
 * object parser relies on both agreeing: it skips most of a document and reads the rest, and
 * a document must be accepted, or refused with the same error, whichever it does. So besides
 * memory errors (ASan) and undefined behaviour (UBSan), a crash here means one of:
 *   - skip and read disagree on whether a value is well-formed, where it ends or where its
 *     first error is;
 *   - a read's result breaks its contract (a string's NUL and length, an integer that is not
 *     strtoll()'s, a key outside the text or the key buffer, the nesting not back where it
 *     was after a whole value), or the reader of another type accepts a value or moves.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json-reader.h"

static int value(struct mci_json_reader *r);

/* Keeps the compiler from dropping reads whose only point is that ASan sees them. */
static volatile unsigned char sink;

static void touch(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sink ^= (unsigned char)p[i];
}

/* Buffer sizes for string reads: cut to nothing, to one byte, mid-way, and whole. */
static size_t string_size(const struct mci_json_reader *r)
{
	static const size_t sizes[] = { 1, 2, 17, 4096 };

	return sizes[(size_t)(r->at.p - r->text) % 4];
}

static int read_string(struct mci_json_reader *r)
{
	const char *start = r->at.p;
	size_t size = string_size(r), len, kept;
	/* exactly size bytes on the heap, so that ASan sees one byte too many */
	char *buf = malloc(size);
	int ret;

	FUZZ_CHECK(buf);
	ret = mci_json_read_string(r, buf, size, &len);
	if (ret == 0) {
		kept = len < size - 1 ? len : size - 1;
		FUZZ_CHECK(buf[kept] == '\0');
		touch(buf, kept);
		/* unescaping never lengthens: the raw text holds the quotes and at least len bytes */
		FUZZ_CHECK(len + 2 <= (size_t)(r->at.p - start));
	}
	free(buf);
	return ret;
}

/* An integer must read as strtoll() reads its text, which clamps the same way. */
static int read_int(struct mci_json_reader *r)
{
	const char *start = r->at.p;
	int64_t v;
	char *text;

	/* mci_json_peek() has checked the number already */
	FUZZ_CHECK(mci_json_read_int(r, &v) == 0);
	text = strndup(start, (size_t)(r->at.p - start));
	FUZZ_CHECK(text);
	FUZZ_CHECK(strtoll(text, NULL, 10) == v);
	free(text);
	return 0;
}

static int read_object(struct mci_json_reader *r)
{
	const char *k;
	size_t len;
	int more;

	if (mci_json_enter_object(r) < 0)
		return -EINVAL;
	while ((more = mci_json_next_member(r, &k, &len)) > 0) {
		if (k == r->key) {
			/* an escaped key: unescaped into the reader, cut at MCI_JSON_KEY_MAX */
			touch(k, len < MCI_JSON_KEY_MAX ? len : MCI_JSON_KEY_MAX);
		} else {
			FUZZ_CHECK(k >= r->text && len <= (size_t)(r->end - k));
			touch(k, len);
		}
		if (value(r) < 0)
			return -EINVAL;
	}
	return more;
}

static int read_array(struct mci_json_reader *r)
{
	int more;

	if (mci_json_enter_array(r) < 0)
		return -EINVAL;
	while ((more = mci_json_next_element(r)) > 0)
		if (value(r) < 0)
			return -EINVAL;
	return more;
}

/* The readers of the other types refuse the next value and leave the reader where it was. */
static void check_refused(struct mci_json_reader *r, enum mci_json_type type)
{
	/* their error is not the walk's: a later failure must set its own */
	const char *error = r->error, *error_at = r->error_at;
	struct mci_json_mark m = mci_json_mark(r);
	char buf[8];
	size_t len;
	int64_t i;
	bool b;

	if (type != MCI_JSON_STRING)
		FUZZ_CHECK(mci_json_read_string(r, buf, sizeof(buf), &len) == -EINVAL);
	if (type != MCI_JSON_INT && type != MCI_JSON_REAL)
		FUZZ_CHECK(mci_json_read_int(r, &i) == -EINVAL);
	if (type != MCI_JSON_BOOL)
		FUZZ_CHECK(mci_json_read_bool(r, &b) == -EINVAL);
	if (type != MCI_JSON_OBJECT)
		FUZZ_CHECK(mci_json_enter_object(r) == -EINVAL);
	if (type != MCI_JSON_ARRAY)
		FUZZ_CHECK(mci_json_enter_array(r) == -EINVAL);
	FUZZ_CHECK(r->at.p == m.p && r->at.depth == m.depth && r->at.stack == m.stack);
	r->error = error;
	r->error_at = error_at;
}

/* Reads the next value with the function for its type. */
static int read_value(struct mci_json_reader *r)
{
	enum mci_json_type type;
	bool b;
	int64_t i;

	if (mci_json_peek(r, &type) < 0)
		return -EINVAL;
	check_refused(r, type);
	switch (type) {
	case MCI_JSON_OBJECT:
		return read_object(r);
	case MCI_JSON_ARRAY:
		return read_array(r);
	case MCI_JSON_STRING:
		return read_string(r);
	case MCI_JSON_INT:
		return read_int(r);
	case MCI_JSON_REAL:
		/* refused without moving, then skipped as the object parser does */
		FUZZ_CHECK(mci_json_read_int(r, &i) == -EDOM);
		return mci_json_skip(r);
	case MCI_JSON_BOOL:
		if (mci_json_read_bool(r, &b) < 0)
			return -EINVAL;
		FUZZ_CHECK(b == (r->at.p[-4] == 't')); /* "true" or "false" just read */
		return 0;
	case MCI_JSON_NULL:
		return mci_json_skip(r);
	}
	FUZZ_CHECK(!"mci_json_peek() returned an unknown type");
	return -EINVAL;
}

static void check_error(const struct mci_json_reader *r)
{
	int line, column;

	FUZZ_CHECK(r->error && r->error_at >= r->text && r->error_at <= r->end);
	mci_json_position(r, r->error_at, &line, &column);
	FUZZ_CHECK(line >= 1 && column >= 1);
}

/* Skips the next value from a mark, then reads it from the same mark: see the top. */
static int value(struct mci_json_reader *r)
{
	struct mci_json_mark m = mci_json_mark(r);
	const char *skipped_to, *skip_error_at;
	int skipped, ret;

	r->error = NULL;
	skipped = mci_json_skip(r);
	skipped_to = r->at.p;
	skip_error_at = r->error_at;
	if (skipped < 0)
		check_error(r);
	mci_json_seek(r, &m);
	r->error = NULL;
	ret = read_value(r);
	FUZZ_CHECK((skipped == 0) == (ret == 0));
	if (ret < 0) {
		check_error(r);
		FUZZ_CHECK(r->error_at == skip_error_at);
		return ret;
	}
	FUZZ_CHECK(r->at.p == skipped_to);
	FUZZ_CHECK(r->at.depth == m.depth && r->at.stack == m.stack);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mci_json_reader r;

	mci_json_reader_init(&r, (const char *)data, size);
	if (value(&r) == 0 && mci_json_finish(&r) < 0)
		check_error(&r);
	return 0;
}
