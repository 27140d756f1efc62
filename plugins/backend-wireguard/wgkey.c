/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "wgkey.h"

void mcw_key_to_base64(const uint8_t key[MCW_KEY_LEN], char out[MCW_KEY_B64_LEN + 1])
{
	EVP_EncodeBlock((unsigned char *)out, key, MCW_KEY_LEN);
	out[MCW_KEY_B64_LEN] = '\0';
}

int mcw_key_from_base64(const char *b64, uint8_t key[MCW_KEY_LEN])
{
	uint8_t buf[MCW_KEY_LEN + 3];
	size_t len = strlen(b64);

	while (len && (b64[len - 1] == '\n' || b64[len - 1] == '\r' || b64[len - 1] == ' '))
		len--;
	if (len != MCW_KEY_B64_LEN || b64[MCW_KEY_B64_LEN - 1] != '=' ||
	    EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len) != MCW_KEY_LEN + 1) {
		explicit_bzero(buf, sizeof(buf));
		return -EINVAL;
	}
	memcpy(key, buf, MCW_KEY_LEN);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static struct mcw_keypair *keypair_alloc(void)
{
	struct mcw_keypair *kp = mmap(NULL, sizeof(*kp), PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (kp == MAP_FAILED)
		return NULL;
	(void)mlock(kp, sizeof(*kp));
	(void)madvise(kp, sizeof(*kp), MADV_DONTDUMP);
	return kp;
}

void mcw_keypair_free(struct mcw_keypair *kp)
{
	if (!kp)
		return;
	explicit_bzero(kp, sizeof(*kp));
	(void)munlock(kp, sizeof(*kp));
	munmap(kp, sizeof(*kp));
}

/* Fills in the public key of kp's private key. 0 or -EIO. */
static int derive_public(struct mcw_keypair *kp)
{
	EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, kp->private_key,
						      MCW_KEY_LEN);
	size_t len = MCW_KEY_LEN;
	int r = -EIO;

	if (pkey && EVP_PKEY_get_raw_public_key(pkey, kp->public_key, &len) == 1 &&
	    len == MCW_KEY_LEN) {
		mcw_key_to_base64(kp->public_key, kp->public_b64);
		r = 0;
	}
	EVP_PKEY_free(pkey);
	return r;
}

static int generate(struct mcw_keypair *kp)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
	EVP_PKEY *pkey = NULL;
	size_t len = MCW_KEY_LEN;
	int r = -EIO;

	if (pctx && EVP_PKEY_keygen_init(pctx) == 1 && EVP_PKEY_keygen(pctx, &pkey) == 1 &&
	    EVP_PKEY_get_raw_private_key(pkey, kp->private_key, &len) == 1 && len == MCW_KEY_LEN)
		r = derive_public(kp);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/* Writes the private key to path (new file, 0600) atomically: a temporary file, renamed. */
static int write_key(const char *path, const struct mcw_keypair *kp)
{
	char tmp[4096], line[MCW_KEY_B64_LEN + 2];
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	mcw_key_to_base64(kp->private_key, line);
	line[MCW_KEY_B64_LEN] = '\n';
	line[MCW_KEY_B64_LEN + 1] = '\0';
	if (fchmod(fd, 0600) < 0 || write(fd, line, MCW_KEY_B64_LEN + 1) != MCW_KEY_B64_LEN + 1 ||
	    fsync(fd) < 0)
		r = -errno ? -errno : -EIO;
	explicit_bzero(line, sizeof(line));
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int mcw_keypair_load(const char *path, bool create, struct mcw_keypair **out, char *error,
		     size_t error_size)
{
	struct mcw_keypair *kp = keypair_alloc();
	char buf[128];
	struct stat st;
	ssize_t n;
	int fd, r;

	*out = NULL;
	if (!kp)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0 && errno == ENOENT && create) {
		r = generate(kp);
		if (r == 0)
			r = write_key(path, kp);
		if (r < 0) {
			snprintf(error, error_size, "generating %s: %s", path, strerror(-r));
			mcw_keypair_free(kp);
			return r;
		}
		*out = kp;
		return 0;
	}
	if (fd < 0) {
		r = -errno;
		snprintf(error, error_size, "%s: %s", path, strerror(-r));
		mcw_keypair_free(kp);
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO)) ||
	    (st.st_uid != 0 && st.st_uid != geteuid())) {
		snprintf(error, error_size,
			 "%s: the private key must be a regular file of root with mode 0600 (it "
			 "is %04o, uid %u); refusing it",
			 path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
		close(fd);
		mcw_keypair_free(kp);
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	r = n < 0 ? -errno : mcw_key_from_base64(buf, kp->private_key);
	explicit_bzero(buf, sizeof(buf));
	if (r == 0)
		r = derive_public(kp);
	if (r < 0) {
		snprintf(error, error_size, "%s: not a WireGuard private key (one base64 line)",
			 path);
		mcw_keypair_free(kp);
		return r;
	}
	*out = kp;
	return 0;
}
