/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON pull reader (json-reader.h). The error descriptions are json-c's, so that messages stay
 * what they were when json-c decoded the documents.
 */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "json-reader.h"

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static int syntax(struct mci_json_reader *r, const char *at, const char *what)
{
	r->error = what;
	r->error_at = at;
	return -EINVAL;
}

static int truncated(struct mci_json_reader *r)
{
	return syntax(r, r->end, "unexpected end of document");
}

void mci_json_reader_init(struct mci_json_reader *r, const char *text, size_t len)
{
	*r = (struct mci_json_reader){ .text = text, .end = text + len, .at = { .p = text } };
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

struct mci_json_mark mci_json_mark(struct mci_json_reader *r)
{
	r->at.p = skip_ws(r->at.p, r->end);
	return r->at;
}

void mci_json_seek(struct mci_json_reader *r, const struct mci_json_mark *m)
{
	r->at = *m;
	/* a mark is taken at a value or after one, never right after a '{' or '[' */
	r->first = false;
}

static int push(struct mci_json_reader *r, const char *at, bool object)
{
	if (r->at.depth >= MCI_JSON_DEPTH)
		return syntax(r, at, "nested deeper than 64 levels");
	r->at.stack |= (uint64_t)object << r->at.depth;
	r->at.depth++;
	return 0;
}

static void pop(struct mci_json_reader *r)
{
	r->at.depth--;
	r->at.stack &= ~((uint64_t)1 << r->at.depth);
}

static bool in_object(const struct mci_json_reader *r)
{
	return (r->at.stack >> (r->at.depth - 1)) & 1;
}

/* Bytes a string scan must stop at: the quote, the backslash and control characters. */
static bool special(unsigned char ch)
{
	return ch == '"' || ch == '\\' || ch < 0x20;
}

/* The first special byte at or after p, or end. Eight bytes at a time: this loop is where
 * the time goes, as most of a Kubernetes document is string contents. */
static inline const char *scan_plain(const char *p, const char *end)
{
	while (end - p >= 8) {
		uint64_t v, q, b, hit;

		memcpy(&v, p, 8);
		q = v ^ (ONES * '"');
		b = v ^ (ONES * '\\');
		/* a byte is flagged when it is zero in q or b, or below 0x20 in v; the flag of
		 * the lowest such byte is always a true one (borrows only run upwards) */
		hit = (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((v - ONES * 0x20) & ~v)) & HIGHS;
		if (hit) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return p + __builtin_ctzll(hit) / 8;
#else
			break;
#endif
		}
		p += 8;
	}
	while (p < end && !special((unsigned char)*p))
		p++;
	return p;
}

static int hex4(const char *p, const char *end, unsigned *out, const char **bad)
{
	unsigned v = 0;

	for (unsigned i = 0; i < 4; i++, p++) {
		unsigned d;

		if (p >= end) {
			*bad = end;
			return -1;
		}
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')
			d = (unsigned)((*p | 0x20) - 'a' + 10);
		else {
			*bad = p;
			return -1;
		}
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/* Output of an unescaping string read: bytes past size - 1 are counted, not stored. */
struct sink {
	char *buf;
	size_t size, len;
};

static void put(struct sink *s, const char *p, size_t n)
{
	if (s->len < s->size - 1)
		memcpy(s->buf + s->len, p, n < s->size - 1 - s->len ? n : s->size - 1 - s->len);
	s->len += n;
}

static void put_code_point(struct sink *s, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	put(s, u, n);
}

/*
 * The string whose opening quote is at p: returns the byte after its closing quote, or NULL
 * on an error. With out, the contents are unescaped into it; without, only checked.
 * *escaped (may be NULL) says whether the string had any escape.
 */
static const char *string(struct mci_json_reader *r, const char *p, struct sink *out,
			  bool *escaped)
{
	const char *end = r->end, *bad;

	if (escaped)
		*escaped = false;
	for (p++;;) {
		const char *run = p;
		unsigned cp, lo;

		p = scan_plain(p, end);
		if (out)
			put(out, run, (size_t)(p - run));
		if (p >= end)
			return truncated(r), NULL;
		if (*p == '"')
			return p + 1;
		if (*p != '\\')
			return syntax(r, p, "invalid string sequence"), NULL;
		if (escaped)
			*escaped = true;
		if (++p >= end)
			return truncated(r), NULL;
		switch (*p) {
		case '"':
		case '\\':
		case '/':
			if (out)
				put(out, p, 1);
			p++;
			continue;
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			if (out)
				put(out, &"\b\f\n\r\t"[strchr("bfnrt", *p) - "bfnrt"], 1);
			p++;
			continue;
		case 'u':
			break;
		default:
			return syntax(r, p, "invalid string sequence"), NULL;
		}
		if (hex4(p + 1, end, &cp, &bad) < 0)
			return bad >= end ? truncated(r) : syntax(r, bad, "invalid string sequence"),
			       NULL;
		p += 5;
		/* a high surrogate pairs with a following \u low surrogate; a lone one reads as
		 * U+FFFD (and what follows it is read on its own), as json-c does */
		if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 2 && p[0] == '\\' && p[1] == 'u') {
			if (hex4(p + 2, end, &lo, &bad) < 0)
				return bad >= end ? truncated(r)
				                  : syntax(r, bad, "invalid string sequence"),
				       NULL;
			if (lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			} else {
				cp = 0xfffd;
			}
		} else if (cp >= 0xd800 && cp < 0xe000) {
			cp = 0xfffd;
		}
		if (out)
			put_code_point(out, cp);
	}
}

/* string() without out, most strings having no escape: their closing quote is all to find. */
static inline const char *check_string(struct mci_json_reader *r, const char *p, bool *escaped)
{
	const char *q = scan_plain(p + 1, r->end);

	if (q < r->end && *q == '"') {
		if (escaped)
			*escaped = false;
		return q + 1;
	}
	return string(r, p, NULL, escaped);
}

/* The number at p: returns the byte after it, or NULL. *real says whether it had a fraction or
 * an exponent. */
static const char *number(struct mci_json_reader *r, const char *p, bool *real)
{
	const char *end = r->end;

	*real = false;
	if (*p == '-')
		p++;
	if (p >= end)
		return truncated(r), NULL;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else
		return syntax(r, p, "number expected"), NULL;
	if (p < end && *p == '.') {
		*real = true;
		if (++p >= end)
			return truncated(r), NULL;
		if (*p < '0' || *p > '9')
			return syntax(r, p, "number expected"), NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*real = true;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end)
			return truncated(r), NULL;
		if (*p < '0' || *p > '9')
			return syntax(r, p, "number expected"), NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	/* as json-c: a number runs up to whitespace or a separator ("01", "1.2.3" and "1x" are
	 * numbers gone wrong, not two values without a comma) */
	if (p < end && (!*p || !strchr(" \t\n\r,]}", *p)))
		return syntax(r, p, "number expected"), NULL;
	return p;
}

/* The literal word (true, false, null) at p. */
static const char *literal(struct mci_json_reader *r, const char *p, const char *word,
			   const char *what)
{
	for (; *word; word++, p++) {
		if (p >= r->end)
			return truncated(r), NULL;
		if (*p != *word)
			return syntax(r, p, what), NULL;
	}
	return p;
}

/* A scalar value at p (not '{' or '['): returns the byte after it, or NULL. */
static const char *scalar(struct mci_json_reader *r, const char *p)
{
	bool real;

	switch (*p) {
	case '"':
		return check_string(r, p, NULL);
	case 't':
		return literal(r, p, "true", "boolean expected");
	case 'f':
		return literal(r, p, "false", "boolean expected");
	case 'n':
		return literal(r, p, "null", "null expected");
	case '-':
	case '0' ... '9':
		return number(r, p, &real);
	case 'T':
	case 'F':
		/* json-c's word for the capitals it accepts when not strict */
		return syntax(r, p, "boolean expected"), NULL;
	}
	return syntax(r, p, "unexpected character"), NULL;
}

int mci_json_peek(struct mci_json_reader *r, enum mci_json_type *type)
{
	const char *p = r->at.p = skip_ws(r->at.p, r->end);
	bool real;

	if (p >= r->end)
		return truncated(r);
	switch (*p) {
	case '"':
		*type = MCI_JSON_STRING;
		return 0;
	case '{':
		*type = MCI_JSON_OBJECT;
		return 0;
	case '[':
		*type = MCI_JSON_ARRAY;
		return 0;
	case 't':
	case 'f':
		*type = MCI_JSON_BOOL;
		return 0;
	case 'n':
		*type = MCI_JSON_NULL;
		return 0;
	case '-':
	case '0' ... '9':
		if (!number(r, p, &real))
			return -EINVAL;
		*type = real ? MCI_JSON_REAL : MCI_JSON_INT;
		return 0;
	}
	/* not a value: the same words as when skipping it */
	scalar(r, p);
	return -EINVAL;
}

static int enter(struct mci_json_reader *r, char open, bool object)
{
	const char *p = r->at.p = skip_ws(r->at.p, r->end);

	if (p >= r->end)
		return truncated(r);
	if (*p != open)
		return syntax(r, p, "unexpected character");
	if (push(r, p, object) < 0)
		return -EINVAL;
	r->at.p = p + 1;
	r->first = true;
	return 0;
}

int mci_json_enter_object(struct mci_json_reader *r)
{
	return enter(r, '{', true);
}

int mci_json_enter_array(struct mci_json_reader *r)
{
	return enter(r, '[', false);
}

/* Where the next member or element starts: 1 with p at it, 0 at the closing bracket (then
 * consumed), or -EINVAL. json-c's words for each mistake. */
static int next(struct mci_json_reader *r, char close, const char *separator, const char **at)
{
	const char *p = skip_ws(r->at.p, r->end);
	bool first = r->first;

	r->first = false;
	if (p >= r->end)
		return truncated(r);
	if (*p == close) {
		pop(r);
		r->at.p = p + 1;
		return 0;
	}
	if (!first) {
		if (*p != ',')
			return syntax(r, p, separator);
		p = skip_ws(p + 1, r->end);
		if (p >= r->end)
			return truncated(r);
		if (*p == close)
			return syntax(r, p, "unexpected character");
	}
	*at = p;
	return 1;
}

/* The key at p (its opening quote) and the ':' after it; leaves the reader at the value. */
static int key(struct mci_json_reader *r, const char *p, const char **k, size_t *len)
{
	const char *q;
	bool escaped;

	if (*p != '"')
		return syntax(r, p, "quoted object property name expected");
	if (!(q = check_string(r, p, &escaped)))
		return -EINVAL;
	if (escaped) {
		struct sink s = { .buf = r->key, .size = sizeof(r->key) };
		size_t kept, n;

		string(r, p, &s, NULL);
		kept = s.len < MCI_JSON_KEY_MAX ? s.len : MCI_JSON_KEY_MAX;
		/* json-c kept keys as C strings: "a\u0000b" was the key "a" */
		n = strnlen(r->key, kept);
		*k = r->key;
		*len = n < kept ? n : s.len;
	} else {
		*k = p + 1;
		*len = (size_t)(q - p - 2);
	}
	q = skip_ws(q, r->end);
	if (q >= r->end)
		return truncated(r);
	if (*q != ':')
		return syntax(r, q, "object property name separator ':' expected");
	r->at.p = q + 1;
	return 0;
}

int mci_json_next_member(struct mci_json_reader *r, const char **k, size_t *len)
{
	const char *p;
	int n = next(r, '}', "object value separator ',' expected", &p);

	if (n <= 0)
		return n;
	return key(r, p, k, len) < 0 ? -EINVAL : 1;
}

int mci_json_next_element(struct mci_json_reader *r)
{
	const char *p;
	int n = next(r, ']', "array value separator ',' expected", &p);

	if (n > 0)
		r->at.p = p;
	return n;
}

int mci_json_read_string(struct mci_json_reader *r, char *buf, size_t size, size_t *len)
{
	const char *p = r->at.p = skip_ws(r->at.p, r->end);
	struct sink s = { .buf = buf, .size = size };

	if (p >= r->end)
		return truncated(r);
	if (*p != '"')
		return syntax(r, p, "unexpected character");
	if (!(p = string(r, p, &s, NULL)))
		return -EINVAL;
	buf[s.len < size - 1 ? s.len : size - 1] = '\0';
	*len = s.len;
	r->at.p = p;
	return 0;
}

int mci_json_read_int(struct mci_json_reader *r, int64_t *v)
{
	const char *p = r->at.p = skip_ws(r->at.p, r->end), *e;
	bool real, neg;
	uint64_t u = 0;

	if (p >= r->end)
		return truncated(r);
	if (*p != '-' && (*p < '0' || *p > '9'))
		return syntax(r, p, "number expected");
	if (!(e = number(r, p, &real)))
		return -EINVAL;
	if (real)
		return -EDOM;
	neg = *p == '-';
	for (p += neg; p < e; p++)
		u = u > (UINT64_MAX - 9) / 10 ? UINT64_MAX : u * 10 + (uint64_t)(*p - '0');
	if (neg)
		*v = u > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)u;
	else
		*v = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
	r->at.p = e;
	return 0;
}

int mci_json_read_bool(struct mci_json_reader *r, bool *v)
{
	const char *p = r->at.p = skip_ws(r->at.p, r->end), *e;

	if (p >= r->end)
		return truncated(r);
	if (*p == 't')
		e = literal(r, p, "true", "boolean expected");
	else if (*p == 'f')
		e = literal(r, p, "false", "boolean expected");
	else
		return syntax(r, p, "boolean expected");
	if (!e)
		return -EINVAL;
	*v = *p == 't';
	r->at.p = e;
	return 0;
}

/* Iterative, with the reader's own bit stack for the brackets: no input makes it recurse. */
int mci_json_skip(struct mci_json_reader *r)
{
	const char *end = r->end, *p = skip_ws(r->at.p, end);
	unsigned base = r->at.depth;

value:
	if (p >= end)
		return truncated(r);
	if (*p == '{' || *p == '[') {
		bool object = *p == '{';

		if (push(r, p, object) < 0)
			return -EINVAL;
		p = skip_ws(p + 1, end);
		if (p < end && *p == (object ? '}' : ']')) {
			pop(r);
			p++;
			goto after;
		}
		if (object)
			goto member;
		goto value;
	}
	/* strings are most values: no call for them */
	if (!(p = *p == '"' ? check_string(r, p, NULL) : scalar(r, p)))
		return -EINVAL;
after:
	while (r->at.depth > base) {
		bool object = in_object(r);

		p = skip_ws(p, end);
		if (p >= end)
			return truncated(r);
		if (*p == (object ? '}' : ']')) {
			pop(r);
			p++;
			continue;
		}
		if (*p != ',')
			return syntax(r, p, object ? "object value separator ',' expected"
			                           : "array value separator ',' expected");
		p = skip_ws(p + 1, end);
		if (p < end && *p == (object ? '}' : ']'))
			return syntax(r, p, "unexpected character");
		if (object)
			goto member;
		goto value;
	}
	r->at.p = p;
	return 0;
member:
	if (p >= end)
		return truncated(r);
	if (*p != '"')
		return syntax(r, p, "quoted object property name expected");
	if (!(p = check_string(r, p, NULL)))
		return -EINVAL;
	p = skip_ws(p, end);
	if (p >= end)
		return truncated(r);
	if (*p != ':')
		return syntax(r, p, "object property name separator ':' expected");
	p = skip_ws(p + 1, end);
	goto value;
}

int mci_json_finish(struct mci_json_reader *r)
{
	const char *p = r->at.p = skip_ws(r->at.p, r->end);

	return p < r->end ? syntax(r, p, "unexpected character") : 0;
}

void mci_json_position(const struct mci_json_reader *r, const char *at, int *line, int *column)
{
	const char *p = r->text, *nl;

	*line = 1;
	while ((nl = memchr(p, '\n', (size_t)(at - p)))) {
		(*line)++;
		p = nl + 1;
	}
	*column = (int)(at - p) + 1;
}
