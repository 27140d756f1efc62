/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON pull reader: walking, unescaping, skipping, and every kind of malformed input. */

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

static void init(struct mci_json_reader *r, const char *text) {
	mci_json_reader_init(r, text, strlen(text));
}

/* Skips the whole document; returns 0 or -EINVAL with the error's offset in *at. */
static int check(const char *text, long *at, const char **what) {
	struct mci_json_reader r;
	int ret;

	init(&r, text);
	ret = mci_json_skip(&r);
	if (ret == 0)
		ret = mci_json_finish(&r);
	*at = ret < 0 ? r.error_at - text : -1;
	*what = ret < 0 ? r.error : NULL;
	return ret;
}

static void test_walk(void **state) {
	const char *doc = " {\"kind\" : \"Pod\", \"n\":[1, -2.5e3, true, false, null, {}, []],"
	                  "\"meta\":{\"x\":\"y\"}} ";
	struct mci_json_reader r;
	enum mci_json_type t;
	const char *key;
	size_t len;
	char buf[16];
	int64_t i;
	bool b;

	init(&r, doc);
	assert_int_equal(mci_json_peek(&r, &t), 0);
	assert_int_equal(t, MCI_JSON_OBJECT);
	assert_int_equal(mci_json_enter_object(&r), 0);
	assert_int_equal(mci_json_next_member(&r, &key, &len), 1);
	assert_int_equal(len, 4);
	assert_memory_equal(key, "kind", 4);
	assert_int_equal(mci_json_read_string(&r, buf, sizeof(buf), &len), 0);
	assert_string_equal(buf, "Pod");
	assert_int_equal(mci_json_next_member(&r, &key, &len), 1);
	assert_int_equal(mci_json_enter_array(&r), 0);
	assert_int_equal(mci_json_next_element(&r), 1);
	assert_int_equal(mci_json_peek(&r, &t), 0);
	assert_int_equal(t, MCI_JSON_INT);
	assert_int_equal(mci_json_read_int(&r, &i), 0);
	assert_int_equal(i, 1);
	assert_int_equal(mci_json_next_element(&r), 1);
	assert_int_equal(mci_json_peek(&r, &t), 0);
	assert_int_equal(t, MCI_JSON_REAL);
	assert_int_equal(mci_json_read_int(&r, &i), -EDOM);
	assert_int_equal(mci_json_skip(&r), 0);
	assert_int_equal(mci_json_next_element(&r), 1);
	assert_int_equal(mci_json_read_bool(&r, &b), 0);
	assert_true(b);
	assert_int_equal(mci_json_next_element(&r), 1);
	assert_int_equal(mci_json_read_bool(&r, &b), 0);
	assert_false(b);
	assert_int_equal(mci_json_next_element(&r), 1);
	assert_int_equal(mci_json_peek(&r, &t), 0);
	assert_int_equal(t, MCI_JSON_NULL);
	assert_int_equal(mci_json_skip(&r), 0);
	for (int n = 0; n < 2; n++) {
		assert_int_equal(mci_json_next_element(&r), 1);
		assert_int_equal(mci_json_skip(&r), 0);
	}
	assert_int_equal(mci_json_next_element(&r), 0);

	/* come back to a value, read it again, and carry on after it */
	assert_int_equal(mci_json_next_member(&r, &key, &len), 1);
	struct mci_json_mark m = mci_json_mark(&r);
	assert_int_equal(mci_json_skip(&r), 0);
	struct mci_json_mark after = r.at;
	mci_json_seek(&r, &m);
	assert_int_equal(mci_json_enter_object(&r), 0);
	assert_int_equal(mci_json_next_member(&r, &key, &len), 1);
	assert_memory_equal(key, "x", 1);
	mci_json_seek(&r, &after);
	assert_int_equal(mci_json_next_member(&r, &key, &len), 0);
	assert_int_equal(mci_json_finish(&r), 0);
}

static void test_strings(void **state) {
	struct mci_json_reader r;
	const char *key;
	char buf[32], small[4];
	size_t len;

	init(&r, "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\"");
	assert_int_equal(mci_json_read_string(&r, buf, sizeof(buf), &len), 0);
	assert_string_equal(buf, "a\"b\\c/d\b\f\n\r\té€😀");
	assert_int_equal(len, strlen(buf));

	/* lone surrogates read as U+FFFD, and what follows a lone high one on its own */
	init(&r, "\"\\ud800x\\udc00\\ud800\\u0041\"");
	assert_int_equal(mci_json_read_string(&r, buf, sizeof(buf), &len), 0);
	assert_string_equal(buf, "\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd" "A");

	/* a value longer than the buffer is cut, and its whole length told */
	init(&r, "\"abcdefgh\"");
	assert_int_equal(mci_json_read_string(&r, small, sizeof(small), &len), 0);
	assert_string_equal(small, "abc");
	assert_int_equal(len, 8);

	/* \u0000 gives a NUL byte in a value; a key ends there, as json-c's did */
	init(&r, "\"a\\u0000b\"");
	assert_int_equal(mci_json_read_string(&r, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "a\0b", 3);
	init(&r, "{\"k\\u0000x\":1,\"\\u006bind\":2}");
	assert_int_equal(mci_json_enter_object(&r), 0);
	assert_int_equal(mci_json_next_member(&r, &key, &len), 1);
	assert_int_equal(len, 1);
	assert_int_equal(mci_json_skip(&r), 0);
	assert_int_equal(mci_json_next_member(&r, &key, &len), 1);
	assert_int_equal(len, 4);
	assert_memory_equal(key, "kind", 4);
}

static void test_numbers(void **state) {
	struct mci_json_reader r;
	int64_t v;

	init(&r, "-0");
	assert_int_equal(mci_json_read_int(&r, &v), 0);
	assert_int_equal(v, 0);
	init(&r, "4294967296");
	assert_int_equal(mci_json_read_int(&r, &v), 0);
	assert_int_equal(v, 4294967296);
	/* beyond int64_t: clamped, as json-c did */
	init(&r, "123456789012345678901234567890");
	assert_int_equal(mci_json_read_int(&r, &v), 0);
	assert_int_equal(v, INT64_MAX);
	init(&r, "-9223372036854775809");
	assert_int_equal(mci_json_read_int(&r, &v), 0);
	assert_int_equal(v, INT64_MIN);
}

struct bad {
	const char *text;
	long at; /* offset of the error */
	const char *what;
};

static void test_malformed(void **state) {
	static const struct bad cases[] = {
		{ "", 0, "unexpected end of document" },
		{ "  ", 2, "unexpected end of document" },
		{ "{\"a\":", 5, "unexpected end of document" },
		{ "\"abc", 4, "unexpected end of document" },
		{ "[1,2", 4, "unexpected end of document" },
		{ "tru", 3, "unexpected end of document" },
		{ "\"\\u12", 5, "unexpected end of document" },
		{ "{\"a\":1} {}", 8, "unexpected character" },
		{ "{\"a\":1}x", 7, "unexpected character" },
		{ "{\"a\":1,}", 7, "unexpected character" },
		{ "[1,]", 3, "unexpected character" },
		{ "[1, ]", 4, "unexpected character" },
		{ "[1,,2]", 3, "unexpected character" },
		{ "[1]]", 3, "unexpected character" },
		{ "\xef\xbb\xbf{}", 0, "unexpected character" },
		{ "[\f1]", 1, "unexpected character" },
		{ "/*c*/1", 0, "unexpected character" },
		{ "{'a':1}", 1, "quoted object property name expected" },
		{ "{1:2}", 1, "quoted object property name expected" },
		{ "[1 2]", 3, "array value separator ',' expected" },
		{ "{\"a\" 1}", 5, "object property name separator ':' expected" },
		{ "{\"a\":1 \"b\":2}", 7, "object value separator ',' expected" },
		{ "{\"a\":[]]}", 7, "object value separator ',' expected" },
		{ "[1}", 2, "array value separator ',' expected" },
		{ "{\"a\":tr}", 7, "boolean expected" },
		{ "True", 0, "boolean expected" },
		{ "[nul]", 4, "null expected" },
		{ "[-]", 2, "number expected" },
		{ "[+1]", 1, "unexpected character" },
		{ "[.5]", 1, "unexpected character" },
		{ "[01]", 2, "number expected" },
		{ "[1.]", 3, "number expected" },
		{ "[1e]", 3, "number expected" },
		{ "[1.2.3]", 4, "number expected" },
		{ "[1x]", 2, "number expected" },
		{ "[NaN]", 1, "unexpected character" },
		{ "\"a\\x\"", 3, "invalid string sequence" },
		{ "\"a\\u12g4\"", 6, "invalid string sequence" },
		{ "\"\\ud83d\\u\"", 9, "invalid string sequence" },
		{ "\"a\tb\"", 2, "invalid string sequence" },
		{ "\"a\nb\"", 2, "invalid string sequence" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long at;
		const char *what;

		if (check(cases[i].text, &at, &what) != -EINVAL || at != cases[i].at ||
		    strcmp(what, cases[i].what) != 0)
			fail_msg("case %zu \"%s\": error \"%s\" at %ld, want \"%s\" at %ld", i,
			         cases[i].text, what ? what : "(none)", at, cases[i].what,
			         cases[i].at);
	}
}

static void test_valid(void **state) {
	static const char *const cases[] = {
		"{}", "[]", "0", "-0.5e-3", "1E+2", "\"\"", "null", "true",
		" \t\r\n{ \"a\" : [ 1 , { } , [ ] , \"x\" ] } \n",
		"\"\\u0000\\ud800\"", "\"\xff\xfe raw bytes are not checked\"",
		"{\"a\":1,\"a\":2}",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long at;
		const char *what;

		if (check(cases[i], &at, &what) != 0)
			fail_msg("case %zu \"%s\": %s at %ld", i, cases[i], what, at);
	}
}

/* 64 levels pass, the 65th is refused where it opens: without recursion, so 100000 are fine. */
static void test_depth(void **state) {
	size_t depth = 100000;
	char *doc = malloc(2 * depth + 1);
	struct mci_json_reader r;
	long at;
	const char *what;

	assert_non_null(doc);
	for (size_t n = 64; n <= 65; n++) {
		memset(doc, '[', n);
		memset(doc + n, ']', n);
		doc[2 * n] = '\0';
		assert_int_equal(check(doc, &at, &what), n == 64 ? 0 : -EINVAL);
	}
	assert_int_equal(at, 64);
	assert_string_equal(what, "nested deeper than 64 levels");
	memset(doc, '[', depth);
	memset(doc + depth, ']', depth);
	doc[2 * depth] = '\0';
	assert_int_equal(check(doc, &at, &what), -EINVAL);
	assert_int_equal(at, 64);

	/* objects count the same, and entering counts with skipping */
	init(&r, "{\"a\":{\"b\":[[{}]]}}");
	r.at.depth = MCI_JSON_DEPTH - 4;
	assert_int_equal(mci_json_enter_object(&r), 0);
	assert_int_equal(mci_json_next_member(&r, &(const char *){ NULL }, &(size_t){ 0 }), 1);
	assert_int_equal(mci_json_skip(&r), -EINVAL);
	assert_string_equal(r.error, "nested deeper than 64 levels");
	free(doc);
}

static void test_position(void **state) {
	const char *doc = "{\n  \"a\": 1,\n  \"b\": x\n}";
	struct mci_json_reader r;
	int line, column;

	init(&r, doc);
	assert_int_equal(mci_json_skip(&r), -EINVAL);
	mci_json_position(&r, r.error_at, &line, &column);
	assert_int_equal(line, 3);
	assert_int_equal(column, 8);
	mci_json_position(&r, doc, &line, &column);
	assert_int_equal(line, 1);
	assert_int_equal(column, 1);
}

/* A long string with escapes spread over it: the eight-byte scan must find each of them. */
static void test_long_strings(void **state) {
	size_t n = 10u << 20;
	char *doc = malloc(n + 3), *buf = malloc(n);
	struct mci_json_reader r;
	size_t len;

	assert_non_null(doc);
	assert_non_null(buf);
	doc[0] = '"';
	memset(doc + 1, 'a', n);
	for (size_t i = 1; i + 1 < n; i += 4099) {
		doc[i] = '\\';
		doc[i + 1] = 'n';
	}
	doc[n + 1] = '"';
	doc[n + 2] = '\0';
	mci_json_reader_init(&r, doc, n + 2);
	assert_int_equal(mci_json_skip(&r), 0);
	mci_json_reader_init(&r, doc, n + 2);
	assert_int_equal(mci_json_read_string(&r, buf, n, &len), 0);
	assert_int_equal(buf[0], '\n');
	assert_true(len < n);
	/* a control byte far into the string is still found */
	doc[n - 5] = '\x01';
	mci_json_reader_init(&r, doc, n + 2);
	assert_int_equal(mci_json_skip(&r), -EINVAL);
	assert_ptr_equal(r.error_at, doc + n - 5);
	free(doc);
	free(buf);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_position),
		cmocka_unit_test(test_long_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
