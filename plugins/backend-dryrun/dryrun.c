/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dryrun backend: programs nothing and logs every dataplane change it would make, so the
 * whole pipeline runs on any machine. Like a real backend it models what it "installed" and
 * logs only differences: applying the same state twice logs nothing the second time.
 */
#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <meshcrypt/host.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

/* One object it would have installed: the local node, a peer or a pod, and its text form. */
struct installed {
	struct mc_key key;
	char *text;
};

struct dryrun {
	pthread_mutex_t lock; /* workers apply different keys concurrently */
	void *installed;      /* tsearch tree of struct installed */
};

static int installed_compare(const void *a, const void *b)
{
	return memcmp(&((const struct installed *)a)->key, &((const struct installed *)b)->key,
		      sizeof(struct mc_key));
}

static void installed_free(void *p)
{
	struct installed *i = p;

	free(i->text);
	free(i);
}

/* Replaces the text stored under key in *tree (NULL text: removes it). Returns whether it
 * changed, or -ENOMEM. */
static int tree_set(void **tree, const struct mc_key *key, const char *text)
{
	struct installed probe = { .key = *key }, **found, *entry;

	found = tfind(&probe, tree, installed_compare);
	if (found && text && strcmp((*found)->text, text) == 0)
		return 0;
	if (!found && !text)
		return 0;
	if (found) {
		entry = *found;
		tdelete(&probe, tree, installed_compare);
		installed_free(entry);
	}
	if (!text)
		return 1;
	entry = calloc(1, sizeof(*entry));
	if (!entry || !(entry->text = strdup(text)) || !tsearch(entry, tree, installed_compare)) {
		if (entry)
			free(entry->text);
		free(entry);
		return -ENOMEM;
	}
	entry->key = *key;
	return 1;
}

/* The text form of an installed object, built with stdio into a growing buffer. */
struct text {
	char *buf;
	size_t len;
	FILE *f;
};

static int text_open(struct text *t)
{
	t->buf = NULL;
	t->len = 0;
	t->f = open_memstream(&t->buf, &t->len);
	return t->f ? 0 : -ENOMEM;
}

static int text_close(struct text *t)
{
	if (fclose(t->f) != 0) {
		free(t->buf);
		t->buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void write_ips(FILE *f, const struct mc_ip *ips, size_t n)
{
	char buf[MC_IP_STRLEN];

	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? " " : "", mc_ip_to_string(&ips[i], buf));
	if (!n)
		fputs("none", f);
}

static void write_prefixes(FILE *f, const struct mc_prefix *p, size_t n)
{
	char buf[MC_PREFIX_STRLEN];

	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? " " : "", mc_prefix_to_string(&p[i], buf));
	if (!n)
		fputs("none", f);
}

/* Records the new text for key and logs "<what>: <text>" if it changed; NULL text removes. */
static int record(struct mc_plugin_ctx *ctx, const struct mc_key *key, const char *what,
		  const char *text)
{
	struct dryrun *d = ctx->host->get_data(ctx);
	int r;

	pthread_mutex_lock(&d->lock);
	r = tree_set(&d->installed, key, text);
	pthread_mutex_unlock(&d->lock);
	if (r > 0)
		ctx->host->log(ctx, LOG_NOTICE, "%s: %s", what, text ? text : "remove");
	return r < 0 ? r : 0;
}

static int dryrun_local_apply(struct mc_plugin_ctx *ctx, const struct mc_local_state *l)
{
	const struct mc_key key = { .type = MC_KEY_LOCAL };
	struct text t;
	char what[300];
	int r;

	if (!l->participating)
		return record(ctx, &key, "local node", NULL);
	if (text_open(&t) < 0)
		return -ENOMEM;
	fputs("addresses ", t.f);
	write_ips(t.f, l->addresses, l->n_addresses);
	fprintf(t.f, ", boot ID %s, generation %u, pod CIDRs ", l->boot_id[0] ? l->boot_id : "none",
		l->key_generation);
	write_prefixes(t.f, l->pod_cidrs, l->n_pod_cidrs);
	if (text_close(&t) < 0)
		return -ENOMEM;
	snprintf(what, sizeof(what), "local node %s", l->name);
	r = record(ctx, &key, what, t.buf);
	free(t.buf);
	return r;
}

static int dryrun_peer_apply(struct mc_plugin_ctx *ctx, const struct mc_peer_state *p)
{
	const struct mc_key key = { .type = MC_KEY_PEER, .peer_id = p->peer_id };
	struct text t = { 0 };
	char what[300];
	int r;

	if (p->present) {
		if (text_open(&t) < 0)
			return -ENOMEM;
		fputs("addresses ", t.f);
		write_ips(t.f, p->addresses, p->n_addresses);
		fprintf(t.f, ", boot ID %s, generation %u, prefixes ",
			p->boot_id[0] ? p->boot_id : "none", p->key_generation);
		write_prefixes(t.f, p->prefixes, p->n_prefixes);
		if (text_close(&t) < 0)
			return -ENOMEM;
	}
	snprintf(what, sizeof(what), "peer %s (#%u)", p->name, p->peer_id);
	r = record(ctx, &key, what, t.buf);
	free(t.buf);
	return r;
}

static int dryrun_pod_apply(struct mc_plugin_ctx *ctx, const struct mc_pod_state *pod)
{
	const struct mc_key key = { .type = MC_KEY_POD, .ip = pod->ip };
	char what[64], ip[MC_IP_STRLEN], text[64];

	snprintf(what, sizeof(what), "pod %s", mc_ip_to_string(&pod->ip, ip));
	switch (pod->role) {
	case MC_POD_LOCAL_MANAGED:
		return record(ctx, &key, what, "managed, local");
	case MC_POD_REMOTE_MANAGED:
		snprintf(text, sizeof(text), "managed, on peer #%u", pod->peer_id);
		return record(ctx, &key, what, text);
	case MC_POD_NONE:
		break;
	}
	return record(ctx, &key, what, NULL);
}

static int dryrun_init(struct mc_plugin_ctx *ctx)
{
	struct dryrun *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	ctx->host->set_data(ctx, d);
	return 0;
}

static void dryrun_fini(struct mc_plugin_ctx *ctx)
{
	struct dryrun *d = ctx->host->get_data(ctx);

	if (!d)
		return;
	tdestroy(d->installed, installed_free);
	pthread_mutex_destroy(&d->lock);
	free(d);
	ctx->host->set_data(ctx, NULL);
}

static const struct mc_dataplane_ops dryrun_ops = MC_DATAPLANE_OPS(
	.local_apply = dryrun_local_apply,
	.peer_apply = dryrun_peer_apply,
	.pod_apply = dryrun_pod_apply);

MC_PLUGIN_DEFINE(
	.name = "dryrun",
	.kind = MC_PLUGIN_BACKEND,
	.description = "logs the dataplane changes it would make",
	.version = "1.0",
	.init = dryrun_init,
	.fini = dryrun_fini,
	.dataplane = &dryrun_ops);
