/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A kubeconfig file, as kubectl writes it (YAML block style: maps by indentation, lists of
 * "- " items, plain or quoted scalars; flow style, anchors and multi-line scalars are not
 * supported and are reported). Only the current context's cluster and user are resolved.
 */
#ifndef MCK_KUBECONFIG_H
#define MCK_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct mck_credentials {
	char *server;
	char *ca_file;      /* certificate-authority */
	char *ca_data;      /* certificate-authority-data, decoded PEM */
	size_t ca_data_len;
	bool insecure;      /* insecure-skip-tls-verify: true */
	char *token;
	char *token_file;   /* tokenFile */
	char *cert_file, *key_file;   /* client-certificate, client-key */
	char *cert_data, *key_data;   /* ...-data, decoded PEM */
	size_t cert_data_len, key_data_len;
};

/* Reads path. On failure error says what and where ("line 12: ..."). 0, -EINVAL, -ENOENT. The
 * relative file paths in it are taken from the kubeconfig's folder. */
int mck_kubeconfig_load(const char *path, struct mck_credentials *out, char *error,
			size_t error_size);
/* Frees and wipes the secrets. */
void mck_credentials_clear(struct mck_credentials *c);

#endif
