/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dryrun backend: programs nothing and logs every dataplane change it would make, so the
 * whole pipeline runs on any machine. Like a real backend it models what it "installed" and
 * logs only differences: applying the same state twice logs nothing the second time.
 *
 * What it installed outlives the process as a kernel's objects would: <state_dir>/dryrun.state
 * is written at stop and after each garbage collection, so a restart sees the objects of a
 * peer that was deleted meanwhile, and the gc after the first full resync removes them.
 * Objects are named by what survives a restart ("peer node-2", "pod 10.1.0.5"), never by the
 * store's ids.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <meshcrypt/host.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#define STATE_FILE "dryrun.state"

/* One object it would have installed: "local", "peer NAME" or "pod IP", and its text form. */
struct installed {
	char *name;
	char *text;
};

struct dryrun {
	pthread_mutex_t lock; /* workers apply different keys concurrently */
	void *installed;      /* tsearch tree of struct installed */
	char path[PATH_MAX];
	bool dirty;           /* changed since the state file was written */
};

static int installed_compare(const void *a, const void *b)
{
	return strcmp(((const struct installed *)a)->name, ((const struct installed *)b)->name);
}

static void installed_free(void *p)
{
	struct installed *i = p;

	if (!i)
		return;
	free(i->name);
	free(i->text);
	free(i);
}

/* Replaces the text stored under name in *tree (NULL text: removes it). Returns whether it
 * changed, or -ENOMEM. */
static int tree_set(void **tree, const char *name, const char *text)
{
	struct installed probe = { .name = (char *)name }, **found, *entry;

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
	if (!entry || !(entry->name = strdup(name)) || !(entry->text = strdup(text)) ||
	    !tsearch(entry, tree, installed_compare)) {
		installed_free(entry);
		return -ENOMEM;
	}
	return 1;
}

/* Records the new text of object `name` and logs "<name>: <text>" if it changed; NULL text
 * removes it. */
static int record(struct mc_plugin_ctx *ctx, const char *name, const char *text)
{
	struct dryrun *d = ctx->host->get_data(ctx);
	int r;

	pthread_mutex_lock(&d->lock);
	r = tree_set(&d->installed, name, text);
	if (r > 0)
		d->dirty = true;
	pthread_mutex_unlock(&d->lock);
	if (r > 0)
		ctx->host->log(ctx, LOG_NOTICE, "%s: %s", name, text ? text : "remove");
	return r < 0 ? r : 0;
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

/* "addresses A, boot ID B, generation G" of a node, local or peer. */
static void write_node(FILE *f, const struct mc_ip *ips, size_t n, const char *boot_id,
		       uint32_t generation)
{
	fputs("addresses ", f);
	write_ips(f, ips, n);
	fprintf(f, ", boot ID %s, generation %u", boot_id[0] ? boot_id : "none", generation);
}

static int dryrun_local_apply(struct mc_plugin_ctx *ctx, const struct mc_local_state *l)
{
	struct text t;
	int r;

	/* What a real backend would report once its inbound side is in place: the generation
	 * the node advertises, or 1 for a node that advertises none yet. */
	if (l->known && MC_HOST_HAS(ctx->host, publish)) {
		struct mc_publication pub = { .struct_size = sizeof(pub),
					      .inbound_generation = l->key_generation ? l->key_generation : 1 };

		(void)ctx->host->publish(ctx, &pub);
	}
	if (!l->participating)
		return record(ctx, "local", NULL);
	if (text_open(&t) < 0)
		return -ENOMEM;
	fprintf(t.f, "node %s, ", l->name);
	write_node(t.f, l->addresses, l->n_addresses, l->boot_id, l->key_generation);
	fputs(", pod CIDRs ", t.f);
	write_prefixes(t.f, l->pod_cidrs, l->n_pod_cidrs);
	if (text_close(&t) < 0)
		return -ENOMEM;
	r = record(ctx, "local", t.buf);
	free(t.buf);
	return r;
}

static uint16_t peer_index_of(struct mc_plugin_ctx *ctx, const struct mc_peer_state *p)
{
	return MC_STATE_HAS(ctx->host, peer_state, peer_index) ? p->peer_index : 0;
}

static int dryrun_peer_apply(struct mc_plugin_ctx *ctx, const struct mc_peer_state *p)
{
	struct text t = { 0 };
	char name[300];
	int r;

	if (p->present) {
		if (text_open(&t) < 0)
			return -ENOMEM;
		fprintf(t.f, "index %u, ", peer_index_of(ctx, p));
		write_node(t.f, p->addresses, p->n_addresses, p->boot_id, p->key_generation);
		fputs(", prefixes ", t.f);
		write_prefixes(t.f, p->prefixes, p->n_prefixes);
		if (text_close(&t) < 0)
			return -ENOMEM;
	}
	snprintf(name, sizeof(name), "peer %s", p->name);
	r = record(ctx, name, t.buf);
	free(t.buf);
	return r;
}

static int dryrun_pod_apply(struct mc_plugin_ctx *ctx, const struct mc_pod_state *pod)
{
	char name[64], ip[MC_IP_STRLEN], text[64];
	uint16_t index = MC_STATE_HAS(ctx->host, pod_state, peer_index) ? pod->peer_index : 0;

	snprintf(name, sizeof(name), "pod %s", mc_ip_to_string(&pod->ip, ip));
	switch (pod->role) {
	case MC_POD_LOCAL_MANAGED:
		return record(ctx, name, "managed, local");
	case MC_POD_REMOTE_MANAGED:
		snprintf(text, sizeof(text), "managed, on peer index %u", index);
		return record(ctx, name, text);
	case MC_POD_NONE:
		break;
	}
	return record(ctx, name, NULL);
}

/* ---- the state file, as a kernel keeps its objects ---- */

static void write_entry(const void *node, VISIT which, void *f)
{
	const struct installed *i = *(const struct installed *const *)node;

	if (which == postorder || which == leaf)
		fprintf(f, "%s\t%s\n", i->name, i->text);
}

static int save_locked(struct dryrun *d)
{
	char tmp[PATH_MAX + 8];
	FILE *f;
	int r = 0;

	if (!d->dirty)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.new", d->path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	twalk_r(d->installed, write_entry, f);
	if (fflush(f) != 0 || ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, d->path) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(tmp);
	else
		d->dirty = false;
	return r;
}

static int save(struct dryrun *d)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = save_locked(d);
	pthread_mutex_unlock(&d->lock);
	return r;
}

static int load(struct dryrun *d)
{
	FILE *f = fopen(d->path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int r = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	errno = 0;
	while (r == 0 && (len = getline(&line, &cap, f)) > 0) {
		char *tab = strchr(line, '\t');

		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (!tab)
			continue;
		*tab = '\0';
		r = tree_set(&d->installed, line, tab + 1);
		r = r < 0 ? r : 0;
		errno = 0;
	}
	/* A state that cannot be read whole is not an empty one: gc would miss what it lost. */
	if (r == 0 && ferror(f))
		r = errno ? -errno : -EIO;
	free(line);
	fclose(f);
	return r;
}

/* ---- garbage collection and cleanup ---- */

struct sweep {
	struct mc_plugin_ctx *ctx;
	const struct mc_peer_state *const *peers;
	size_t n_peers;
	bool all;
	/* names to remove, collected first: the tree cannot change during a walk */
	char **doomed;
	size_t n_doomed, cap;
	int error;
};

static bool peer_listed(const struct sweep *s, const char *name)
{
	for (size_t i = 0; i < s->n_peers; i++)
		if (strcmp(s->peers[i]->name, name) == 0)
			return true;
	return false;
}

static bool stale(const struct sweep *s, const char *name)
{
	struct mc_pod_state pod;
	struct mc_ip ip;

	if (s->all)
		return true;
	if (strncmp(name, "peer ", 5) == 0)
		return !peer_listed(s, name + 5);
	if (strncmp(name, "pod ", 4) == 0 && mc_ip_parse(name + 4, &ip) == 0 &&
	    MC_HOST_HAS(s->ctx->host, pod_state))
		return s->ctx->host->pod_state(s->ctx, &ip, &pod) == 0 && pod.role == MC_POD_NONE;
	return false;
}

static void collect_stale(const void *node, VISIT which, void *userdata)
{
	const struct installed *i = *(const struct installed *const *)node;
	struct sweep *s = userdata;

	if ((which != postorder && which != leaf) || s->error || !stale(s, i->name))
		return;
	if (s->n_doomed == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->doomed, cap * sizeof(*v));

		if (!v) {
			s->error = -ENOMEM;
			return;
		}
		s->doomed = v;
		s->cap = cap;
	}
	if (!(s->doomed[s->n_doomed] = strdup(i->name)))
		s->error = -ENOMEM;
	else
		s->n_doomed++;
}

/* Removes what s selects, logging each, and writes the state file. */
static int sweep(struct mc_plugin_ctx *ctx, struct sweep *s)
{
	struct dryrun *d = ctx->host->get_data(ctx);
	int r;

	s->ctx = ctx;
	pthread_mutex_lock(&d->lock);
	twalk_r(d->installed, collect_stale, s);
	pthread_mutex_unlock(&d->lock);
	r = s->error;
	for (size_t i = 0; i < s->n_doomed; i++) {
		if (r == 0)
			r = record(ctx, s->doomed[i], NULL);
		free(s->doomed[i]);
	}
	free(s->doomed);
	return r < 0 ? r : save(d);
}

static int dryrun_gc(struct mc_plugin_ctx *ctx, const struct mc_peer_state *const *peers,
		     size_t n)
{
	struct sweep s = { .peers = peers, .n_peers = n };

	return sweep(ctx, &s);
}

static int dryrun_cleanup(struct mc_plugin_ctx *ctx)
{
	struct dryrun *d = ctx->host->get_data(ctx);
	struct sweep s = { .all = true };
	int r = sweep(ctx, &s);

	return r == 0 && unlink(d->path) < 0 && errno != ENOENT ? -errno : r;
}

static int dryrun_init(struct mc_plugin_ctx *ctx)
{
	struct dryrun *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	ctx->host->set_data(ctx, d);
	if (snprintf(d->path, sizeof(d->path), "%s/%s", ctx->host->state_dir(ctx), STATE_FILE) >=
	    (int)sizeof(d->path))
		return -ENAMETOOLONG;
	r = load(d);
	if (r < 0)
		ctx->host->log(ctx, LOG_ERR, "%s: %s", d->path, strerror(-r));
	return r;
}

static void dryrun_stop(struct mc_plugin_ctx *ctx)
{
	struct dryrun *d = ctx->host->get_data(ctx);
	int r = save(d);

	if (r < 0)
		ctx->host->log(ctx, LOG_WARNING, "%s: %s (what it installed is forgotten)", d->path,
			       strerror(-r));
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
	.pod_apply = dryrun_pod_apply,
	.gc = dryrun_gc);

MC_PLUGIN_DEFINE(
	.name = "dryrun",
	.kind = MC_PLUGIN_BACKEND,
	.description = "logs the dataplane changes it would make",
	.version = "1.1",
	.init = dryrun_init,
	.stop = dryrun_stop,
	.fini = dryrun_fini,
	.cleanup = dryrun_cleanup,
	.dataplane = &dryrun_ops);
