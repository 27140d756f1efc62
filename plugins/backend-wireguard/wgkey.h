/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The node's WireGuard key pair: an X25519 private key generated once (OpenSSL) and kept in
 * the state directory with mode 0600, and its public key in WireGuard's base64 form. No
 * function here logs; the private key never leaves the struct, which is locked in memory and
 * wiped when freed.
 */
#ifndef MCW_WGKEY_H
#define MCW_WGKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MCW_KEY_LEN 32
#define MCW_KEY_B64_LEN 44 /* without the NUL */

struct mcw_keypair {
	uint8_t private_key[MCW_KEY_LEN];
	uint8_t public_key[MCW_KEY_LEN];
	char public_b64[MCW_KEY_B64_LEN + 1];
};

/*
 * Loads the private key from path (one base64 line, as `wg genkey` writes it), or, when the
 * file does not exist and create is true, generates one and writes it with mode 0600. A file
 * that group or others can access, that is not a regular file or that root does not own is
 * refused (-EPERM). On success *out is new (mcw_keypair_free()). error gets one line.
 */
int mcw_keypair_load(const char *path, bool create, struct mcw_keypair **out, char *error,
		     size_t error_size);
void mcw_keypair_free(struct mcw_keypair *kp);

/* Base64 of a 32-byte key into out (45 bytes with the NUL), and back: 0 or -EINVAL. */
void mcw_key_to_base64(const uint8_t key[MCW_KEY_LEN], char out[MCW_KEY_B64_LEN + 1]);
int mcw_key_from_base64(const char *b64, uint8_t key[MCW_KEY_LEN]);

#endif
