/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the Kubernetes source needs to find in a document without parsing it: the value of a
 * member of the top-level object (a watch event's "type" and "object", a list's "metadata" and
 * "items", a metadata's "continue" and "resourceVersion"), as a span of the input. Objects
 * themselves are parsed by libmeshcrypt (mc_object_parse). No allocation; strings are returned
 * with their quotes stripped and escapes left as they are (the values read here never hold
 * any). Also the splitter of a watch stream into lines.
 */
#ifndef MCK_SPAN_H
#define MCK_SPAN_H

#include <stdbool.h>
#include <stddef.h>

struct mck_span {
	const char *p;
	size_t len;
};

/* The value of member key of the object in doc. 0, -ENOENT, or -EINVAL (not an object, or
 * malformed). A string value comes without its quotes. */
int mck_member(struct mck_span doc, const char *key, struct mck_span *value);

/* The elements of the array in doc, without the brackets: "{...},{...}" (may be empty). */
int mck_array_inner(struct mck_span doc, struct mck_span *inner);

/* The next element of an array's inner span (mck_array_inner), advancing *rest: 0, -ENOENT at
 * the end, -EINVAL. A string element comes without its quotes. */
int mck_array_next(struct mck_span *rest, struct mck_span *elem);

/*
 * A watch stream's line splitter: bytes arrive in chunks that cut lines anywhere. Feeds data,
 * calling fn for every complete line (without the newline); a line longer than max is
 * discarded and reported once with fn(NULL, length so far). Returns 0 or fn's error.
 */
struct mck_lines {
	char *buf;
	size_t len, cap, max;
	bool skipping; /* inside a line that was too long */
};

typedef int (*mck_line_fn)(const char *line, size_t len, void *userdata);

void mck_lines_init(struct mck_lines *l, size_t max);
void mck_lines_free(struct mck_lines *l);
int mck_lines_feed(struct mck_lines *l, const char *data, size_t len, mck_line_fn fn,
		   void *userdata);

#endif
