/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IPsec key material (DESIGN.md §6): the key file or Secret, and the per-pair keys derived
 * from it. Kept apart from netlink so the unit tests and the fuzzer can run it anywhere.
 *
 * A key set lives in memory locked with mlock() and excluded from core dumps
 * (MADV_DONTDUMP); mcx_keyset_free() wipes it. No function here logs or prints key bytes:
 * errors name the line and the problem only.
 */
#ifndef MCX_KEYS_H
#define MCX_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <meshcrypt/model.h>

#define MCX_ALGO "rfc4106(gcm(aes))"
#define MCX_ICV_BITS 128
#define MCX_SALT_LEN 4
#define MCX_KEY_MAX (32 + MCX_SALT_LEN)
/* spi(gen) = 256 + gen: the largest generation whose SPI fits in 32 bits. */
#define MCX_GENERATION_MAX (UINT32_MAX - 256u)

struct mcx_key {
	uint32_t generation;
	uint8_t len; /* AES key + 4-byte salt: 20, 28 or 36 */
	uint8_t bytes[MCX_KEY_MAX];
	/* HKDF's extract step, done once by the parser: PRK = HMAC-SHA256(salt, bytes) */
	bool has_prk;
	uint8_t prk[32];
};

struct mcx_keyset {
	size_t n;          /* sorted by generation, ascending, no duplicates */
	size_t mapped;     /* size of the mapping holding this struct */
	struct mcx_key k[]; /* n entries */
};

/*
 * Parses key lines ("<generation> rfc4106(gcm(aes)) <hex key+salt> 128"; "0x" before the hex
 * is allowed; blank lines and lines starting with '#' are skipped). On success *out is a new
 * key set (mcx_keyset_free()) with at least one key. On failure writes "line N: problem" into
 * error and returns -EINVAL, or -ENOMEM (-EIO: libcrypto failed). text is not changed; the caller wipes it.
 */
int mcx_keyset_parse(const char *text, size_t len, struct mcx_keyset **out, char *error,
		     size_t error_size);

/*
 * Reads and parses the key file at path. Refuses (-EPERM) a file that is group- or
 * world-accessible, not a regular file, or owned by someone other than root or this process's
 * user; error then says why and how to fix it.
 */
int mcx_keyset_load_file(const char *path, struct mcx_keyset **out, char *error,
			 size_t error_size);

/* Wipes and frees; NULL is a no-op. */
void mcx_keyset_free(struct mcx_keyset *ks);

/* The key of generation gen, or NULL. */
const struct mcx_key *mcx_keyset_find(const struct mcx_keyset *ks, uint32_t gen);
/* The highest generation held (the set is never empty). */
uint32_t mcx_keyset_current(const struct mcx_keyset *ks);
/* Whether both sets hold the same generations with the same bytes. */
bool mcx_keyset_equal(const struct mcx_keyset *a, const struct mcx_keyset *b);

static inline uint32_t mcx_spi(uint32_t generation)
{
	return 256u + generation;
}

/*
 * K(src -> dst, gen) = HKDF-SHA256(IKM = the generation's key bytes (key and salt, as in the
 * file), salt = "meshcrypt-ipsec-v1", info = src IP (16 bytes, IPv4-mapped) || dst IP ||
 * src boot ID (36) || dst boot ID (36) || gen (4 bytes, big endian)), as long as the IKM.
 * out receives key->len bytes (key then salt, as the kernel takes rfc4106 keys); the caller
 * wipes it. Returns 0 or -EIO (libcrypto failed).
 */
int mcx_derive(const struct mcx_key *key, const struct mc_ip *src, const struct mc_ip *dst,
	       const char *src_boot_id, const char *dst_boot_id, uint8_t out[MCX_KEY_MAX]);

/*
 * mcx_derive() with a MAC context kept between calls (the context's copy and release were most of
 * a derivation's cost). Not for two threads at once; between calls it holds the keyed state of
 * the last derivation, which mcx_mac_free() wipes. mcx_mac_new() returns NULL with errno.
 */
struct mcx_mac;
struct mcx_mac *mcx_mac_new(void);
void mcx_mac_free(struct mcx_mac *mac);
int mcx_derive_with(struct mcx_mac *mac, const struct mcx_key *key, const struct mc_ip *src,
		    const struct mc_ip *dst, const char *src_boot_id, const char *dst_boot_id,
		    uint8_t out[MCX_KEY_MAX]);

/* SHA-256 of data into out. 0 or -EIO. */
int mcx_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
