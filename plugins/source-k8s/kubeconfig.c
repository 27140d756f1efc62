/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "kubeconfig.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ynode {
	char *key;   /* NULL: a list item */
	char *value; /* NULL: children follow */
	struct ynode **children;
	size_t n;
	int indent;
};

static void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		ynode_free(n->children[i]);
	free(n->children);
	if (n->value)
		explicit_bzero(n->value, strlen(n->value));
	free(n->key);
	free(n->value);
	free(n);
}

static struct ynode *ynode_add(struct ynode *parent, int indent)
{
	struct ynode *n = calloc(1, sizeof(*n)), **v;

	if (!n)
		return NULL;
	v = realloc(parent->children, (parent->n + 1) * sizeof(*v));
	if (!v) {
		free(n);
		return NULL;
	}
	parent->children = v;
	parent->children[parent->n++] = n;
	n->indent = indent;
	return n;
}

/* A scalar without its quotes; NULL when malformed. */
static char *scalar(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (!out)
		return NULL;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\r' || s[len - 1] == '\t'))
		len--;
	if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
		for (size_t i = 1; i + 1 < len; i++) {
			if (s[i] == '\\' && i + 2 < len)
				i++;
			*o++ = s[i];
		}
	} else if (len >= 2 && s[0] == '\'' && s[len - 1] == '\'') {
		for (size_t i = 1; i + 1 < len; i++) {
			*o++ = s[i];
			if (s[i] == '\'' && s[i + 1] == '\'')
				i++;
		}
	} else {
		memcpy(out, s, len);
		o = out + len;
	}
	*o = '\0';
	return out;
}

struct stack {
	struct ynode *node[64];
	int n;
};

/* Parses text into root's children. 0, or -EINVAL with error ("line N: ..."). */
static int parse(char *text, struct ynode *root, char *error, size_t error_size)
{
	struct stack st = { .node = { root }, .n = 1 };
	unsigned line = 0;

	root->indent = -1;
	for (char *p = text, *eol; p && *p; p = eol ? eol + 1 : NULL) {
		char *c, *colon;
		int indent = 0;

		eol = strchr(p, '\n');
		if (eol)
			*eol = '\0';
		line++;
		while (p[indent] == ' ')
			indent++;
		c = p + indent;
		if (!*c || *c == '#' || *c == '\r' || strcmp(c, "---") == 0)
			continue;
		if (*c == '\t') {
			snprintf(error, error_size, "line %u: a tab in the indentation", line);
			return -EINVAL;
		}
		while (c[0] == '-' && (c[1] == ' ' || c[1] == '\0')) {
			struct ynode *item;

			while (st.n > 1 && (st.node[st.n - 1]->indent > indent ||
					    (st.node[st.n - 1]->indent == indent && !st.node[st.n - 1]->key)))
				st.n--;
			item = ynode_add(st.node[st.n - 1], indent);
			if (!item || st.n == 64)
				return -ENOMEM;
			st.node[st.n++] = item;
			c += c[1] ? 2 : 1;
			indent += 2;
			while (*c == ' ') {
				c++;
				indent++;
			}
		}
		if (!*c)
			continue;
		if (*c == '{' || *c == '[' || *c == '&' || *c == '*' || *c == '|' || *c == '>') {
			snprintf(error, error_size, "line %u: only block-style YAML is read", line);
			return -EINVAL;
		}
		colon = strstr(c, ": ");
		if (!colon && c[strlen(c) - 1] == ':')
			colon = c + strlen(c) - 1;
		if (!colon) {
			snprintf(error, error_size, "line %u: expected \"key: value\"", line);
			return -EINVAL;
		}
		while (st.n > 1 && st.node[st.n - 1]->indent >= indent)
			st.n--;
		{
			struct ynode *n = ynode_add(st.node[st.n - 1], indent);
			const char *v = colon + 1;

			if (!n || !(n->key = scalar(c, (size_t)(colon - c))))
				return -ENOMEM;
			while (*v == ' ')
				v++;
			if (*v && *v != '#') {
				if (*v == '|' || *v == '>') {
					snprintf(error, error_size,
						 "line %u: multi-line scalars are not read", line);
					return -EINVAL;
				}
				if (!(n->value = scalar(v, strlen(v))))
					return -ENOMEM;
			} else {
				if (st.n == 64)
					return -ENOMEM;
				st.node[st.n++] = n;
			}
		}
	}
	return 0;
}

static const struct ynode *child(const struct ynode *n, const char *key)
{
	for (size_t i = 0; n && i < n->n; i++)
		if (n->children[i]->key && strcmp(n->children[i]->key, key) == 0)
			return n->children[i];
	return NULL;
}

static const char *value(const struct ynode *n, const char *key)
{
	const struct ynode *c = child(n, key);

	return c ? c->value : NULL;
}

/* The item of list `list` (clusters, users, contexts) named name: its `inner` map. */
static const struct ynode *named(const struct ynode *root, const char *list, const char *inner,
				 const char *name)
{
	const struct ynode *l = child(root, list);

	for (size_t i = 0; name && l && i < l->n; i++) {
		const char *n = value(l->children[i], "name");

		if (n && strcmp(n, name) == 0)
			return child(l->children[i], inner);
	}
	return NULL;
}

static int b64(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static char *base64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n / 4 * 3 + 4);
	unsigned acc = 0;
	int bits = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int v = b64(s[i]);

		if (s[i] == '=' || s[i] == '\n' || s[i] == ' ')
			continue;
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits);
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* A copy of path, taken from dir when relative. */
static char *resolve(const char *dir, const char *path)
{
	char *out;

	if (!path)
		return NULL;
	if (path[0] == '/')
		return strdup(path);
	if (asprintf(&out, "%s/%s", dir, path) < 0)
		return NULL;
	return out;
}

void mck_credentials_clear(struct mck_credentials *c)
{
	char *secrets[] = { c->token, c->key_data };
	size_t lens[] = { c->token ? strlen(c->token) : 0, c->key_data_len };

	for (size_t i = 0; i < 2; i++)
		if (secrets[i])
			explicit_bzero(secrets[i], lens[i]);
	free(c->server);
	free(c->ca_file);
	free(c->ca_data);
	free(c->token);
	free(c->token_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_data);
	free(c->key_data);
	memset(c, 0, sizeof(*c));
}

int mck_kubeconfig_load(const char *path, struct mck_credentials *out, char *error,
			size_t error_size)
{
	struct ynode root = { 0 };
	const struct ynode *ctx, *cluster, *user;
	const char *current, *v;
	char *text = NULL, *dircopy, *dir;
	size_t len = 0;
	FILE *f;
	int r;

	memset(out, 0, sizeof(*out));
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(error, error_size, "%s", strerror(-r));
		return r;
	}
	r = getdelim(&text, &len, '\0', f) < 0 ? -EIO : 0;
	fclose(f);
	if (r == 0)
		r = parse(text, &root, error, error_size);
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
	if (r < 0)
		goto out;
	current = value(&root, "current-context");
	ctx = named(&root, "contexts", "context", current);
	cluster = ctx ? named(&root, "clusters", "cluster", value(ctx, "cluster")) : NULL;
	user = ctx ? named(&root, "users", "user", value(ctx, "user")) : NULL;
	if (!current || !ctx || !cluster || !value(cluster, "server")) {
		snprintf(error, error_size, "no current-context with a cluster and its server");
		r = -EINVAL;
		goto out;
	}
	dircopy = strdup(path);
	dir = dircopy ? dirname(dircopy) : (char *)".";
	out->server = strdup(value(cluster, "server"));
	out->ca_file = resolve(dir, value(cluster, "certificate-authority"));
	v = value(cluster, "insecure-skip-tls-verify");
	out->insecure = v && strcmp(v, "true") == 0;
	if ((v = value(cluster, "certificate-authority-data")))
		out->ca_data = base64_decode(v, &out->ca_data_len);
	if (user) {
		if ((v = value(user, "token")))
			out->token = strdup(v);
		out->token_file = resolve(dir, value(user, "tokenFile"));
		out->cert_file = resolve(dir, value(user, "client-certificate"));
		out->key_file = resolve(dir, value(user, "client-key"));
		if ((v = value(user, "client-certificate-data")))
			out->cert_data = base64_decode(v, &out->cert_data_len);
		if ((v = value(user, "client-key-data")))
			out->key_data = base64_decode(v, &out->key_data_len);
	}
	free(dircopy);
out:
	for (size_t i = 0; i < root.n; i++)
		ynode_free(root.children[i]);
	free(root.children);
	if (r < 0)
		mck_credentials_clear(out);
	return r;
}
