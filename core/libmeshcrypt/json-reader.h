/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A pull reader over JSON text (RFC 8259), for the object parser. It builds no tree and
 * allocates nothing: the caller walks the text value by value, reads the few values it keeps
 * (strings unescaped into its own buffer) and skips the rest. Skipping validates as strictly as
 * reading, so a document read to its end is well-formed JSON. Nesting is limited to
 * MCI_JSON_DEPTH levels and tracked in a bit stack, so no input makes it recurse.
 *
 * Not validated, as before (json-c without JSON_TOKENER_VALIDATE_UTF8): the UTF-8 of raw
 * bytes. A lone UTF-16 surrogate in a \u escape reads as U+FFFD, as json-c does.
 *
 * Every int function returns 0 (or 1, where said) on success and -EINVAL on malformed JSON;
 * then error and error_at say what and where.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kubernetes objects nest about 20 levels deep (managedFields); 64 leaves room. */
#define MCI_JSON_DEPTH 64

/* Room for a member key with escapes; longer keys are cut (mci_json_next_member()). */
#define MCI_JSON_KEY_MAX 511

enum mci_json_type {
	MCI_JSON_NULL = 1,
	MCI_JSON_BOOL,
	MCI_JSON_INT,  /* a number without fraction or exponent */
	MCI_JSON_REAL, /* a number with either */
	MCI_JSON_STRING,
	MCI_JSON_OBJECT,
	MCI_JSON_ARRAY,
};

/* A place in the text to come back to with mci_json_seek(). */
struct mci_json_mark {
	const char *p;
	uint64_t stack; /* bit i set: level i + 1 is an object, else an array */
	unsigned depth;
};

struct mci_json_reader {
	const char *text, *end;
	struct mci_json_mark at;
	bool first; /* no member or element of the innermost container read yet */
	const char *error; /* e.g. "unexpected character", for "JSON: %s" */
	const char *error_at;
	char key[MCI_JSON_KEY_MAX + 1];
};

void mci_json_reader_init(struct mci_json_reader *r, const char *text, size_t len);

/* Type of the next value, which is not consumed. */
int mci_json_peek(struct mci_json_reader *r, enum mci_json_type *type);

/* The next value's place (whitespace before it is passed over). */
struct mci_json_mark mci_json_mark(struct mci_json_reader *r);
void mci_json_seek(struct mci_json_reader *r, const struct mci_json_mark *m);

/* Consume the '{' or '[' that starts the next value. */
int mci_json_enter_object(struct mci_json_reader *r);
int mci_json_enter_array(struct mci_json_reader *r);

/*
 * The next member of the object entered last: returns 1 with its key, after which the caller
 * reads or skips exactly one value, or 0 at the end of the object, which is consumed. *key is
 * not NUL-terminated and is valid until the next call; *len is the key's full length, of which
 * at most MCI_JSON_KEY_MAX bytes are at *key when it had escapes. A key ends at a "\u0000"
 * escape, as json-c's keys (C strings) did.
 */
int mci_json_next_member(struct mci_json_reader *r, const char **key, size_t *len);

/* The next element of the array entered last: 1 when there is one (read or skip it), 0 at the
 * end of the array, which is consumed. */
int mci_json_next_element(struct mci_json_reader *r);

/*
 * Reads a string value, unescaped: its first size - 1 bytes (size > 0) and a NUL go to buf,
 * and *len gets its full length, so a caller can tell a cut value from a whole one.
 */
int mci_json_read_string(struct mci_json_reader *r, char *buf, size_t size, size_t *len);

/* Reads an MCI_JSON_INT number; values beyond int64_t are clamped, as json-c does. Returns
 * -EDOM for a number with a fraction or exponent. */
int mci_json_read_int(struct mci_json_reader *r, int64_t *v);

int mci_json_read_bool(struct mci_json_reader *r, bool *v);

/* Skips the next value, whatever it holds, validating it. */
int mci_json_skip(struct mci_json_reader *r);

/* Checks that only whitespace follows. */
int mci_json_finish(struct mci_json_reader *r);

/* 1-based line and column (in bytes) of at, a place in the text. */
void mci_json_position(const struct mci_json_reader *r, const char *at, int *line, int *column);
