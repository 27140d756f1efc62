/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define HKDF_SALT "meshcrypt-ipsec-v1"
#define KEYS_MAX 64
#define KEY_FILE_MAX (64 * 1024)

/*
 * Fetched once: OpenSSL's one-shot calls (EVP_KDF_derive, whose HMAC is EVP_Q_mac) fetch the
 * algorithm on every call, and those lookups took more than half of an apply. hmac_template
 * holds the digest setting and no key; each MAC works on a copy of it.
 */
static pthread_once_t fetched = PTHREAD_ONCE_INIT;
static EVP_MD *sha256;
static EVP_MAC *hmac;
static EVP_MAC_CTX *hmac_template;

static void fetch_algorithms(void)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	hmac_template = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	if (hmac_template && EVP_MAC_CTX_set_params(hmac_template, params) != 1) {
		EVP_MAC_CTX_free(hmac_template);
		hmac_template = NULL;
	}
}

/* The plugin may be unloaded and loaded again (a reload that changes the backend). */
__attribute__((destructor)) static void free_algorithms(void)
{
	EVP_MAC_CTX_free(hmac_template);
	EVP_MAC_free(hmac);
	EVP_MD_free(sha256);
}

struct mcx_mac {
	EVP_MAC_CTX *ctx;
};

struct mcx_mac *mcx_mac_new(void)
{
	struct mcx_mac *m = calloc(1, sizeof(*m));

	pthread_once(&fetched, fetch_algorithms);
	if (m && !(m->ctx = hmac_template ? EVP_MAC_CTX_dup(hmac_template) : NULL)) {
		free(m);
		m = NULL;
	}
	if (!m)
		errno = ENOMEM;
	return m;
}

void mcx_mac_free(struct mcx_mac *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->ctx); /* cleanses the keyed state */
	free(m);
}

/* HMAC-SHA256(key, a || b || c) into out, with mac's context (NULL: a context of its own);
 * b and c may be empty. 0 or -EIO. */
static int hmac_sha256(struct mcx_mac *mac, const uint8_t *key, size_t key_len, const void *a,
		       size_t a_len, const void *b, size_t b_len, const void *c, size_t c_len,
		       uint8_t out[32])
{
	EVP_MAC_CTX *ctx;
	size_t len = 0;
	int ok;

	pthread_once(&fetched, fetch_algorithms);
	ctx = mac ? mac->ctx : hmac_template ? EVP_MAC_CTX_dup(hmac_template) : NULL;
	ok = ctx && EVP_MAC_init(ctx, key, key_len, NULL) == 1 &&
	     EVP_MAC_update(ctx, a, a_len) == 1 && (!b_len || EVP_MAC_update(ctx, b, b_len) == 1) &&
	     (!c_len || EVP_MAC_update(ctx, c, c_len) == 1) &&
	     EVP_MAC_final(ctx, out, &len, 32) == 1 && len == 32;
	if (!mac)
		EVP_MAC_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

/* HKDF-Extract (RFC 5869) with our salt: what every derivation from this key starts with. */
static int extract(struct mcx_key *k)
{
	int r = hmac_sha256(NULL, (const uint8_t *)HKDF_SALT, strlen(HKDF_SALT), k->bytes, k->len,
			    NULL, 0, NULL, 0, k->prk);

	k->has_prk = r == 0;
	return r;
}

int mcx_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned n = 32;

	pthread_once(&fetched, fetch_algorithms);
	return sha256 && EVP_Digest(data, len, out, &n, sha256, NULL) == 1 ? 0 : -EIO;
}

static struct mcx_keyset *keyset_alloc(size_t n)
{
	size_t size = sizeof(struct mcx_keyset) + n * sizeof(struct mcx_key);
	long page = sysconf(_SC_PAGESIZE);
	struct mcx_keyset *ks;

	size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
	ks = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ks == MAP_FAILED)
		return NULL;
	/* Never swapped, never in a core dump. Without CAP_IPC_LOCK mlock counts against
	 * RLIMIT_MEMLOCK (8 MiB by default), which a page or two fits; failing it loses only the
	 * swap protection. */
	(void)mlock(ks, size);
	(void)madvise(ks, size, MADV_DONTDUMP);
	ks->mapped = size;
	return ks;
}

void mcx_keyset_free(struct mcx_keyset *ks)
{
	size_t size;

	if (!ks)
		return;
	size = ks->mapped;
	explicit_bzero(ks, size);
	(void)munlock(ks, size);
	munmap(ks, size);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Splits the next blank-separated word of [*p, end) into [*w, *w + *n); false at the end. */
static bool next_word(const char **p, const char *end, const char **w, size_t *n)
{
	while (*p < end && (**p == ' ' || **p == '\t' || **p == '\r'))
		(*p)++;
	if (*p == end)
		return false;
	*w = *p;
	while (*p < end && **p != ' ' && **p != '\t' && **p != '\r')
		(*p)++;
	*n = (size_t)(*p - *w);
	return true;
}

static bool word_is(const char *w, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(w, s, n) == 0;
}

static int key_compare(const void *a, const void *b)
{
	uint32_t x = ((const struct mcx_key *)a)->generation, y = ((const struct mcx_key *)b)->generation;

	return x < y ? -1 : x > y;
}

/* Parses one non-empty line into *k; on failure writes the problem into error. */
static int parse_line(const char *p, const char *end, struct mcx_key *k, char *error,
		      size_t error_size)
{
	const char *w;
	size_t n;
	unsigned long long gen = 0;

	memset(k, 0, sizeof(*k));
	if (!next_word(&p, end, &w, &n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9' || n > 10) {
			snprintf(error, error_size, "the generation must be a number from 1 to %u",
				 MCX_GENERATION_MAX);
			return -EINVAL;
		}
		gen = gen * 10 + (unsigned)(w[i] - '0');
	}
	if (gen == 0 || gen > MCX_GENERATION_MAX) {
		snprintf(error, error_size, "the generation must be a number from 1 to %u",
			 MCX_GENERATION_MAX);
		return -EINVAL;
	}
	k->generation = (uint32_t)gen;
	if (!next_word(&p, end, &w, &n) || !word_is(w, n, MCX_ALGO)) {
		snprintf(error, error_size, "the algorithm must be %s", MCX_ALGO);
		return -EINVAL;
	}
	if (!next_word(&p, end, &w, &n)) {
		snprintf(error, error_size, "the key is missing");
		return -EINVAL;
	}
	if (n > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X')) {
		w += 2;
		n -= 2;
	}
	if (n != 2 * (16 + MCX_SALT_LEN) && n != 2 * (24 + MCX_SALT_LEN) &&
	    n != 2 * (32 + MCX_SALT_LEN)) {
		snprintf(error, error_size,
			 "the key must be 40, 56 or 72 hex digits (a 16, 24 or 32-byte AES key and "
			 "a 4-byte salt), not %zu",
			 n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_value(w[i]), lo = hex_value(w[i + 1]);

		if (hi < 0 || lo < 0) {
			explicit_bzero(k, sizeof(*k));
			snprintf(error, error_size, "the key is not hexadecimal");
			return -EINVAL;
		}
		k->bytes[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	k->len = (uint8_t)(n / 2);
	if (extract(k) < 0) {
		explicit_bzero(k, sizeof(*k));
		snprintf(error, error_size, "deriving from the key failed (libcrypto)");
		return -EIO;
	}
	if (!next_word(&p, end, &w, &n) || !word_is(w, n, "128")) {
		explicit_bzero(k, sizeof(*k));
		snprintf(error, error_size, "the ICV length must be 128 (bits)");
		return -EINVAL;
	}
	if (next_word(&p, end, &w, &n)) {
		explicit_bzero(k, sizeof(*k));
		snprintf(error, error_size, "unexpected text after the ICV length");
		return -EINVAL;
	}
	return 0;
}

int mcx_keyset_parse(const char *text, size_t len, struct mcx_keyset **out, char *error,
		     size_t error_size)
{
	struct mcx_keyset *ks = keyset_alloc(KEYS_MAX);
	const char *p = text, *end = text + len;
	unsigned line = 0;
	char problem[160];

	*out = NULL;
	if (!ks)
		return -ENOMEM;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *q = p, *w;
		size_t n;

		if (!eol)
			eol = end;
		line++;
		if (next_word(&q, eol, &w, &n) && w[0] != '#') {
			int r;

			if (ks->n == KEYS_MAX) {
				snprintf(error, error_size, "line %u: more than %d keys", line, KEYS_MAX);
				mcx_keyset_free(ks);
				return -EINVAL;
			}
			r = parse_line(p, eol, &ks->k[ks->n], problem, sizeof(problem));
			if (r < 0) {
				snprintf(error, error_size, "line %u: %s", line, problem);
				mcx_keyset_free(ks);
				return r;
			}
			for (size_t i = 0; i < ks->n; i++)
				if (ks->k[i].generation == ks->k[ks->n].generation) {
					snprintf(error, error_size,
						 "line %u: generation %u appears twice", line,
						 ks->k[i].generation);
					mcx_keyset_free(ks);
					return -EINVAL;
				}
			ks->n++;
		}
		p = eol + 1;
	}
	if (ks->n == 0) {
		snprintf(error, error_size, "no key in it");
		mcx_keyset_free(ks);
		return -EINVAL;
	}
	qsort(ks->k, ks->n, sizeof(ks->k[0]), key_compare);
	*out = ks;
	return 0;
}

int mcx_keyset_load_file(const char *path, struct mcx_keyset **out, char *error,
			 size_t error_size)
{
	char buf[KEY_FILE_MAX];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, r;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(error, error_size, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(error, error_size, "%s: not a regular file", path);
		return -EPERM;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		snprintf(error, error_size,
			 "%s: mode %04o lets others read or change the keys; refusing it "
			 "(chmod 0600)",
			 path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		close(fd);
		snprintf(error, error_size, "%s: owned by uid %u, not by root; refusing it", path,
			 (unsigned)st.st_uid);
		return -EPERM;
	}
	(void)mlock(buf, sizeof(buf));
	while ((n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r == 0 && len == sizeof(buf)) {
		snprintf(error, error_size, "%s: larger than %d bytes", path, KEY_FILE_MAX);
		r = -EFBIG;
	} else if (r < 0) {
		snprintf(error, error_size, "%s: %s", path, strerror(-r));
	} else {
		char problem[200];

		r = mcx_keyset_parse(buf, len, out, problem, sizeof(problem));
		if (r < 0)
			snprintf(error, error_size, "%s: %s", path, problem);
	}
	explicit_bzero(buf, sizeof(buf));
	(void)munlock(buf, sizeof(buf));
	return r;
}

const struct mcx_key *mcx_keyset_find(const struct mcx_keyset *ks, uint32_t gen)
{
	for (size_t i = 0; ks && i < ks->n; i++)
		if (ks->k[i].generation == gen)
			return &ks->k[i];
	return NULL;
}

uint32_t mcx_keyset_current(const struct mcx_keyset *ks)
{
	return ks && ks->n ? ks->k[ks->n - 1].generation : 0;
}

bool mcx_keyset_equal(const struct mcx_keyset *a, const struct mcx_keyset *b)
{
	if (!a || !b)
		return a == b;
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->k[i].generation != b->k[i].generation || a->k[i].len != b->k[i].len ||
		    memcmp(a->k[i].bytes, b->k[i].bytes, a->k[i].len) != 0)
			return false;
	return true;
}

static void mapped_address(const struct mc_ip *ip, uint8_t out[16])
{
	memset(out, 0, 16);
	if (ip->family == AF_INET) {
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(&out[12], ip->addr, 4);
	} else {
		memcpy(out, ip->addr, 16);
	}
}

/* HKDF-Expand (RFC 5869): T(1) = HMAC(PRK, info || 1), T(2) = HMAC(PRK, T(1) || info || 2),
 * the first len bytes of T(1) || T(2). */
int mcx_derive(const struct mcx_key *key, const struct mc_ip *src, const struct mc_ip *dst,
	       const char *src_boot_id, const char *dst_boot_id, uint8_t out[MCX_KEY_MAX])
{
	return mcx_derive_with(NULL, key, src, dst, src_boot_id, dst_boot_id, out);
}

int mcx_derive_with(struct mcx_mac *mac, const struct mcx_key *key, const struct mc_ip *src,
		    const struct mc_ip *dst, const char *src_boot_id, const char *dst_boot_id,
		    uint8_t out[MCX_KEY_MAX])
{
	uint8_t info[16 + 16 + 2 * MC_BOOT_ID_LEN + 4], t[64];
	static const uint8_t one = 1, two = 2;
	struct mcx_key k = *key;
	int r = 0;

	if (!k.has_prk)
		r = extract(&k);
	mapped_address(src, info);
	mapped_address(dst, info + 16);
	memcpy(info + 32, src_boot_id, MC_BOOT_ID_LEN);
	memcpy(info + 32 + MC_BOOT_ID_LEN, dst_boot_id, MC_BOOT_ID_LEN);
	info[104] = (uint8_t)(key->generation >> 24);
	info[105] = (uint8_t)(key->generation >> 16);
	info[106] = (uint8_t)(key->generation >> 8);
	info[107] = (uint8_t)key->generation;
	if (r == 0)
		r = hmac_sha256(mac, k.prk, sizeof(k.prk), info, sizeof(info), &one, 1, NULL, 0, t);
	if (r == 0 && key->len > 32)
		r = hmac_sha256(mac, k.prk, sizeof(k.prk), t, 32, info, sizeof(info), &two, 1,
				t + 32);
	if (r == 0)
		memcpy(out, t, key->len);
	explicit_bzero(t, sizeof(t));
	explicit_bzero(&k, sizeof(k));
	return r;
}
