/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the IPsec key file parser (plugins/backend-xfrm/keys.h): parses arbitrary
 * bytes as key lines (mcx_keyset_parse()) and derives a key from every generation parsed
 * (mcx_derive()).
 *
 * Besides memory errors, leaks and undefined behaviour, a crash here means a result that
 * breaks what keys.h promises: a return value not in the list; a failure that hands out a key
 * set, or whose error is not a NUL-terminated "line N: problem" within the size given, or
 * shows key bytes; a key set that is empty, unsorted, holds a generation twice or outside
 * 1..MCX_GENERATION_MAX, or a key that is not 16, 24 or 32 bytes and a 4-byte salt; one key per
 * key line of the text; a set that does not read back the same when written out again; or a
 * derivation that fails, differs when repeated, or gives both directions the same key.
 *
 * Key sets live in mmap()ed, locked pages, which LeakSanitizer does not watch: that the pages
 * of a set are gone after mcx_keyset_free() is checked with mincore().
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "keys.h"

#define BOOT1 "11111111-1111-1111-1111-111111111111"
#define BOOT2 "22222222-2222-2222-2222-222222222222"

static bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The key lines of the text as keys.h defines them: lines whose first word does not start
 * with '#'. */
static size_t key_lines(const uint8_t *p, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < size;) {
		while (i < size && is_blank(p[i]))
			i++;
		if (i < size && p[i] != '\n' && p[i] != '#')
			n++;
		while (i < size && p[i] != '\n')
			i++;
		i++;
	}
	return n;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void check_error(const char *error, size_t size)
{
	size_t run = 0;

	FUZZ_CHECK(memchr(error, '\0', size));
	if (size < 16)
		return; /* cut: no room to say much */
	FUZZ_CHECK(strncmp(error, "line ", 5) == 0 || strcmp(error, "no key in it") == 0);
	/* never a key byte: the longest run of hex digits a message holds is a generation's 10 */
	for (const char *c = error; *c; c++) {
		run = is_hex(*c) ? run + 1 : 0;
		FUZZ_CHECK(run <= 10);
	}
}

/* The set written out as key lines, for reading back. */
static char *format(const struct mcx_keyset *ks, size_t *len)
{
	size_t size = ks->n * (10 + 1 + sizeof(MCX_ALGO) + 2 * MCX_KEY_MAX + 6) + 1, at = 0;
	char *text = malloc(size);

	FUZZ_CHECK(text);
	for (size_t i = 0; i < ks->n; i++) {
		at += (size_t)snprintf(text + at, size - at, "%u %s ", ks->k[i].generation,
				       MCX_ALGO);
		for (size_t b = 0; b < ks->k[i].len; b++)
			at += (size_t)snprintf(text + at, size - at, "%02x", ks->k[i].bytes[b]);
		at += (size_t)snprintf(text + at, size - at, " %u\n", MCX_ICV_BITS);
	}
	*len = at;
	return text;
}

static void check_derive(const struct mcx_key *k)
{
	static const struct mc_ip a = { .family = AF_INET, .addr = { 192, 168, 100, 1 } };
	static const struct mc_ip b = { .family = AF_INET6,
					.addr = { 0xfd, 0, 0, 0x64, [15] = 2 } };
	uint8_t out[MCX_KEY_MAX], again[MCX_KEY_MAX], back[MCX_KEY_MAX];

	FUZZ_CHECK(mcx_derive(k, &a, &b, BOOT1, BOOT2, out) == 0);
	FUZZ_CHECK(mcx_derive(k, &a, &b, BOOT1, BOOT2, again) == 0);
	FUZZ_CHECK(memcmp(out, again, k->len) == 0);
	FUZZ_CHECK(mcx_derive(k, &b, &a, BOOT2, BOOT1, back) == 0);
	FUZZ_CHECK(memcmp(out, back, k->len) != 0);
	explicit_bzero(out, sizeof(out));
	explicit_bzero(again, sizeof(again));
	explicit_bzero(back, sizeof(back));
}

/* Frees the set and checks that its pages are unmapped (mincore() fails with ENOMEM). */
static void free_checked(struct mcx_keyset *ks)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char vec;
	void *at = ks;

	mcx_keyset_free(ks);
	FUZZ_CHECK(mincore(at, (size_t)page, &vec) < 0 && errno == ENOMEM);
}

static void check_set(const struct mcx_keyset *ks, const uint8_t *data, size_t size)
{
	struct mcx_keyset *again;
	char error[200], *text;
	size_t len;

	FUZZ_CHECK(ks->n >= 1 && ks->n == key_lines(data, size));
	for (size_t i = 0; i < ks->n; i++) {
		const struct mcx_key *k = &ks->k[i];

		FUZZ_CHECK(k->generation >= 1 && k->generation <= MCX_GENERATION_MAX);
		FUZZ_CHECK(i == 0 || ks->k[i - 1].generation < k->generation);
		FUZZ_CHECK(k->len == 16 + MCX_SALT_LEN || k->len == 24 + MCX_SALT_LEN ||
			   k->len == 32 + MCX_SALT_LEN);
		FUZZ_CHECK(mcx_keyset_find(ks, k->generation) == k);
		FUZZ_CHECK(mcx_spi(k->generation) > k->generation); /* no wrap */
		check_derive(k);
	}
	FUZZ_CHECK(mcx_keyset_current(ks) == ks->k[ks->n - 1].generation);
	FUZZ_CHECK(mcx_keyset_equal(ks, ks));

	text = format(ks, &len);
	FUZZ_CHECK(mcx_keyset_parse(text, len, &again, error, sizeof(error)) == 0);
	FUZZ_CHECK(mcx_keyset_equal(ks, again));
	explicit_bzero(text, len);
	free(text);
	free_checked(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* error buffers cut to one byte, to a few, and whole; on the heap so that ASan sees
	 * one byte too many */
	static const size_t sizes[] = { 1, 7, 200 };
	size_t error_size = sizes[size % 3];
	char *error = malloc(error_size);
	struct mcx_keyset *ks = (struct mcx_keyset *)0x1;
	int r;

	FUZZ_CHECK(error);
	memset(error, 0xa5, error_size);
	r = mcx_keyset_parse((const char *)data, size, &ks, error, error_size);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	FUZZ_CHECK((r == 0) == (ks != NULL));
	if (r < 0) {
		check_error(error, error_size);
	} else {
		check_set(ks, data, size);
		free_checked(ks);
	}
	free(error);
	return 0;
}
