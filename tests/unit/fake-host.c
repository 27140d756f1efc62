/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake host of plugin unit tests (fake-host.h). */
#include "fake-host.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <syslog.h>

#include <meshcrypt/metrics.h>

struct fake_line {
	int level;
	char *text;
};

struct fake_config {
	char *section; /* NULL: the plugin's own section */
	char *key;
	char *value;   /* NULL: unset */
};

struct fake_secret {
	char *ns, *name, *key;
	uint8_t *data;
	size_t len;
};

struct fake_pod {
	struct mc_pod_state state;
};

struct mc_io {
	struct fake_host *fh;
	struct mc_io *next;
	unsigned long id;
	int fd;
	uint32_t events;
	mc_io_fn fn;
	void *userdata;
};

struct mc_timer {
	struct fake_host *fh;
	struct mc_timer *next;
	unsigned long id;
	uint64_t delay_ns; /* 0: disarmed */
	mc_timer_fn fn;
	void *userdata;
};

struct fake_host {
	struct mc_host host;
	struct mc_plugin_ctx ctx;

	pthread_mutex_t log_lock;
	struct fake_line *lines;
	size_t n_lines, cap_lines;
	bool echo;

	struct fake_config *config;
	size_t n_config;
	char **garbage; /* replaced strings, freed with the fake */
	size_t n_garbage;

	void *data;
	char *node_name, *state_dir, *run_dir;

	struct fake_store_record store;
	int store_result;

	unsigned ready_calls;
	bool ready;
	char status[1024];

	struct mc_io *ios;
	struct mc_timer *timers;
	unsigned long next_id;
	int io_result, timer_result;

	struct fake_secret *secrets;
	size_t n_secrets;

	struct mc_dataplane_config dataplane;

	struct fake_pod *pods;
	size_t n_pods;
	enum mc_pod_role pod_default_role;
	int pod_default_result;
	unsigned pod_state_calls;

	struct mc_metrics *metrics;

	pthread_mutex_t requeue_lock;
	struct mc_key *requeued;
	size_t n_requeued;

	struct mc_publication published;
	unsigned publish_calls;
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t n, size_t size)
{
	p = realloc(p, (n ? n : 1) * size);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *c = s ? strdup(s) : NULL;

	if (s && !c)
		abort();
	return c;
}

static void keep_garbage(struct fake_host *fh, char *s)
{
	if (!s)
		return;
	fh->garbage = xrealloc(fh->garbage, fh->n_garbage + 1, sizeof(*fh->garbage));
	fh->garbage[fh->n_garbage++] = s;
}

struct fake_host *fake_host_of(struct mc_plugin_ctx *ctx)
{
	return (struct fake_host *)((char *)ctx - offsetof(struct fake_host, ctx));
}

/* ---- the host calls ---- */

static void fh_vlog(struct mc_plugin_ctx *ctx, int level, const char *fmt, va_list ap)
{
	struct fake_host *fh = fake_host_of(ctx);
	char *text;

	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	pthread_mutex_lock(&fh->log_lock);
	if (fh->n_lines == fh->cap_lines) {
		fh->cap_lines = fh->cap_lines ? 2 * fh->cap_lines : 16;
		fh->lines = xrealloc(fh->lines, fh->cap_lines, sizeof(*fh->lines));
	}
	fh->lines[fh->n_lines++] = (struct fake_line){ .level = level, .text = text };
	if (fh->echo)
		fprintf(stderr, "[fake-host] <%d> %s\n", level, text);
	pthread_mutex_unlock(&fh->log_lock);
}

static void fh_log(struct mc_plugin_ctx *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fh_vlog(ctx, level, fmt, ap);
	va_end(ap);
}

static const struct fake_config *config_find(struct fake_host *fh, const char *section,
					     const char *key)
{
	for (size_t i = 0; i < fh->n_config; i++) {
		const struct fake_config *c = &fh->config[i];

		if (strcmp(c->key, key) != 0)
			continue;
		if ((!section && !c->section) ||
		    (section && c->section && strcmp(section, c->section) == 0))
			return c;
	}
	return NULL;
}

static const char *fh_config_string(struct mc_plugin_ctx *ctx, const char *key)
{
	const struct fake_config *c = config_find(fake_host_of(ctx), NULL, key);

	return c ? c->value : NULL;
}

int64_t fake_host_parse_int(const char *s)
{
	char *end;
	long long v;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 0);
	return errno || *end ? 0 : (int64_t)v;
}

bool fake_host_parse_bool(const char *s)
{
	return s && (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 ||
		     strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0);
}

uint64_t fake_host_parse_duration_ns(const char *s)
{
	static const struct {
		const char *suffix;
		uint64_t ns;
	} units[] = {
		{ "", 1000000000ull },   { "ns", 1 },		  { "us", 1000 },
		{ "ms", 1000000ull },    { "s", 1000000000ull }, { "m", 60000000000ull },
		{ "h", 3600000000000ull },
	};
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].suffix) == 0)
			return v > UINT64_MAX / units[i].ns ? 0 : v * units[i].ns;
	return 0;
}

static int64_t fh_config_int(struct mc_plugin_ctx *ctx, const char *key)
{
	return fake_host_parse_int(fh_config_string(ctx, key));
}

static bool fh_config_bool(struct mc_plugin_ctx *ctx, const char *key)
{
	return fake_host_parse_bool(fh_config_string(ctx, key));
}

static uint64_t fh_config_duration_ns(struct mc_plugin_ctx *ctx, const char *key)
{
	return fake_host_parse_duration_ns(fh_config_string(ctx, key));
}

static const char *fh_config_global(struct mc_plugin_ctx *ctx, const char *section,
				    const char *key)
{
	const struct fake_config *c;

	if (!section || !key)
		return NULL;
	c = config_find(fake_host_of(ctx), section, key);
	return c ? c->value : NULL;
}

static void fh_set_data(struct mc_plugin_ctx *ctx, void *data)
{
	fake_host_of(ctx)->data = data;
}

static void *fh_get_data(struct mc_plugin_ctx *ctx)
{
	return fake_host_of(ctx)->data;
}

static const char *fh_node_name(struct mc_plugin_ctx *ctx)
{
	return fake_host_of(ctx)->node_name;
}

static const char *fh_state_dir(struct mc_plugin_ctx *ctx)
{
	return fake_host_of(ctx)->state_dir;
}

static const char *fh_run_dir(struct mc_plugin_ctx *ctx)
{
	return fake_host_of(ctx)->run_dir;
}

static int fh_store_upsert(struct mc_plugin_ctx *ctx, struct mc_object *obj)
{
	struct fake_host *fh = fake_host_of(ctx);

	fh->store.upserts++;
	if (obj) {
		fh->store.upsert_kind = mc_object_kind(obj);
		snprintf(fh->store.upsert_name, sizeof(fh->store.upsert_name), "%s",
			 mc_object_name(obj));
	}
	mc_object_free(obj);
	return obj ? fh->store_result : -EINVAL;
}

static int fh_store_delete(struct mc_plugin_ctx *ctx, enum mc_object_kind kind, const char *ns,
			   const char *name)
{
	struct fake_host *fh = fake_host_of(ctx);

	fh->store.deletes++;
	fh->store.delete_kind = kind;
	snprintf(fh->store.delete_ns, sizeof(fh->store.delete_ns), "%s", ns ? ns : "");
	snprintf(fh->store.delete_name, sizeof(fh->store.delete_name), "%s", name ? name : "");
	return fh->store_result;
}

/* Records list's objects, after those recorded so far unless first. */
static void record_list(struct fake_host *fh, unsigned kinds, struct mc_object_list *list,
			bool first)
{
	size_t n = list ? mc_object_list_count(list) : 0;

	if (first) {
		fh->store.replace_count = 0;
		memset(fh->store.replace_kind_counts, 0, sizeof(fh->store.replace_kind_counts));
	}
	fh->store.replace_count += n;
	fh->store.replace_kinds_mask = kinds;
	for (size_t i = 0; i < n; i++) {
		enum mc_object_kind k = mc_object_kind(mc_object_list_get(list, i));

		if ((unsigned)k <= MC_OBJECT_SECRET)
			fh->store.replace_kind_counts[k]++;
	}
	mc_object_list_free(list);
}

static int fh_store_replace_all(struct mc_plugin_ctx *ctx, struct mc_object_list *list)
{
	struct fake_host *fh = fake_host_of(ctx);
	bool ok = list != NULL;

	fh->store.replace_alls++;
	record_list(fh, MC_OBJECT_KINDS_ALL, list, true);
	return ok ? fh->store_result : -EINVAL;
}

static int fh_store_replace_kinds(struct mc_plugin_ctx *ctx, unsigned kinds,
				  struct mc_object_list *list)
{
	struct fake_host *fh = fake_host_of(ctx);
	bool ok = list != NULL;

	fh->store.replace_kinds++;
	record_list(fh, kinds, list, true);
	return ok ? fh->store_result : -EINVAL;
}

/* Every level: the fake captures every line. */
static bool fh_log_enabled(struct mc_plugin_ctx *ctx, int level)
{
	return true;
}

static int fh_store_relist(struct mc_plugin_ctx *ctx, unsigned kinds, struct mc_object_list *page,
			   unsigned flags)
{
	struct fake_host *fh = fake_host_of(ctx);
	bool ok = page != NULL;

	fh->store.relist_pages++;
	record_list(fh, kinds, page, flags & MC_RELIST_FIRST);
	return ok ? fh->store_result : -EINVAL;
}

static void fh_set_ready(struct mc_plugin_ctx *ctx, bool ready, const char *status)
{
	struct fake_host *fh = fake_host_of(ctx);

	fh->ready_calls++;
	fh->ready = ready;
	snprintf(fh->status, sizeof(fh->status), "%s", status ? status : "");
}

static int fh_io_add(struct mc_plugin_ctx *ctx, int fd, uint32_t events, mc_io_fn fn,
		     void *userdata, struct mc_io **out)
{
	struct fake_host *fh = fake_host_of(ctx);
	struct mc_io *io, **tail;

	if (!fn || !out || fd < 0)
		return -EINVAL;
	if (fh->io_result < 0)
		return fh->io_result;
	io = xcalloc(1, sizeof(*io));
	*io = (struct mc_io){ .fh = fh, .id = ++fh->next_id, .fd = fd, .events = events,
			      .fn = fn, .userdata = userdata };
	for (tail = &fh->ios; *tail; tail = &(*tail)->next)
		;
	*tail = io;
	*out = io;
	return 0;
}

static void fh_io_remove(struct mc_io *io)
{
	struct mc_io **p;

	if (!io)
		return;
	for (p = &io->fh->ios; *p && *p != io; p = &(*p)->next)
		;
	if (!*p)
		abort(); /* not an open handle: a double remove */
	*p = io->next;
	free(io);
}

static int fh_timer_add(struct mc_plugin_ctx *ctx, uint64_t delay_ns, mc_timer_fn fn,
			void *userdata, struct mc_timer **out)
{
	struct fake_host *fh = fake_host_of(ctx);
	struct mc_timer *t, **tail;

	if (!fn || !out)
		return -EINVAL;
	if (fh->timer_result < 0)
		return fh->timer_result;
	t = xcalloc(1, sizeof(*t));
	/* A zero delay fires at the next loop iteration: armed all the same. */
	*t = (struct mc_timer){ .fh = fh, .id = ++fh->next_id, .delay_ns = delay_ns ? delay_ns : 1,
				.fn = fn, .userdata = userdata };
	for (tail = &fh->timers; *tail; tail = &(*tail)->next)
		;
	*tail = t;
	*out = t;
	return 0;
}

static void fh_timer_remove(struct mc_timer *t)
{
	struct mc_timer **p;

	if (!t)
		return;
	for (p = &t->fh->timers; *p && *p != t; p = &(*p)->next)
		;
	if (!*p)
		abort(); /* not an open handle: a double remove */
	*p = t->next;
	free(t);
}

static struct mc_metrics *fh_metrics(struct mc_plugin_ctx *ctx)
{
	return fake_host_of(ctx)->metrics;
}

static const struct mc_dataplane_config *fh_dataplane_config(struct mc_plugin_ctx *ctx)
{
	return &fake_host_of(ctx)->dataplane;
}

static struct fake_secret *secret_find(struct fake_host *fh, const char *ns, const char *name,
				       const char *key)
{
	for (size_t i = 0; i < fh->n_secrets; i++) {
		struct fake_secret *s = &fh->secrets[i];

		if (strcmp(s->ns, ns) == 0 && strcmp(s->name, name) == 0 &&
		    strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

static int fh_secret_get(struct mc_plugin_ctx *ctx, const char *ns, const char *name,
			 const char *key, uint8_t **data, size_t *len)
{
	struct fake_secret *s;

	if (!ns || !name || !key || !data || !len)
		return -EINVAL;
	*data = NULL;
	*len = 0;
	s = secret_find(fake_host_of(ctx), ns, name, key);
	if (!s)
		return -ENOENT;
	*data = xcalloc(s->len + 1, 1);
	memcpy(*data, s->data, s->len);
	*len = s->len;
	return 0;
}

static int fh_pod_state(struct mc_plugin_ctx *ctx, const struct mc_ip *ip,
			struct mc_pod_state *out)
{
	struct fake_host *fh = fake_host_of(ctx);

	fh->pod_state_calls++;
	if (!ip || !out)
		return -EINVAL;
	for (size_t i = 0; i < fh->n_pods; i++) {
		if (memcmp(&fh->pods[i].state.ip, ip, sizeof(*ip)) == 0) {
			*out = fh->pods[i].state;
			return 0;
		}
	}
	if (fh->pod_default_result < 0)
		return fh->pod_default_result;
	memset(out, 0, sizeof(*out));
	out->ip = *ip;
	out->role = fh->pod_default_role;
	return 0;
}

static int fh_requeue(struct mc_plugin_ctx *ctx, const struct mc_key *key)
{
	struct fake_host *fh = fake_host_of(ctx);

	pthread_mutex_lock(&fh->requeue_lock);
	fh->requeued = xrealloc(fh->requeued, fh->n_requeued + 1, sizeof(*key));
	fh->requeued[fh->n_requeued++] = *key;
	pthread_mutex_unlock(&fh->requeue_lock);
	return 0;
}

static int fh_publish(struct mc_plugin_ctx *ctx, const struct mc_publication *p)
{
	struct fake_host *fh = fake_host_of(ctx);

	pthread_mutex_lock(&fh->requeue_lock);
	if (p->inbound_generation)
		fh->published.inbound_generation = p->inbound_generation;
	if (p->wireguard_public_key[0])
		memcpy(fh->published.wireguard_public_key, p->wireguard_public_key,
		       sizeof(p->wireguard_public_key));
	fh->publish_calls++;
	pthread_mutex_unlock(&fh->requeue_lock);
	return 0;
}

unsigned fake_host_published(struct fake_host *fh, struct mc_publication *out)
{
	unsigned n;

	pthread_mutex_lock(&fh->requeue_lock);
	if (out)
		*out = fh->published;
	n = fh->publish_calls;
	pthread_mutex_unlock(&fh->requeue_lock);
	return n;
}

size_t fake_host_requeued(struct fake_host *fh, struct mc_key *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&fh->requeue_lock);
	n = fh->n_requeued;
	for (size_t i = 0; out && i < n && i < max; i++)
		out[i] = fh->requeued[i];
	fh->n_requeued = 0;
	pthread_mutex_unlock(&fh->requeue_lock);
	return n;
}

/* ---- the fake itself ---- */

struct fake_host *fake_host_new(void)
{
	struct fake_host *fh = xcalloc(1, sizeof(*fh));
	const char *verbose = getenv("FAKE_HOST_VERBOSE");

	fh->host = (struct mc_host){
		.struct_size = sizeof(struct mc_host),
		.abi_version = MC_PLUGIN_ABI_VERSION,
		.log = fh_log,
		.vlog = fh_vlog,
		.config_string = fh_config_string,
		.config_int = fh_config_int,
		.config_bool = fh_config_bool,
		.config_duration_ns = fh_config_duration_ns,
		.config_global = fh_config_global,
		.set_data = fh_set_data,
		.get_data = fh_get_data,
		.node_name = fh_node_name,
		.state_dir = fh_state_dir,
		.run_dir = fh_run_dir,
		.store_upsert = fh_store_upsert,
		.store_delete = fh_store_delete,
		.store_replace_all = fh_store_replace_all,
		.set_ready = fh_set_ready,
		.io_add = fh_io_add,
		.io_remove = fh_io_remove,
		.timer_add = fh_timer_add,
		.timer_remove = fh_timer_remove,
		.metrics = fh_metrics,
		.local_state_size = sizeof(struct mc_local_state),
		.peer_state_size = sizeof(struct mc_peer_state),
		.pod_state_size = sizeof(struct mc_pod_state),
		.dataplane_config = fh_dataplane_config,
		.store_replace_kinds = fh_store_replace_kinds,
		.store_relist = fh_store_relist,
		.log_enabled = fh_log_enabled,
		.secret_get = fh_secret_get,
		.pod_state = fh_pod_state,
		.requeue = fh_requeue,
		.publish = fh_publish,
	};
	pthread_mutex_init(&fh->requeue_lock, NULL);
	fh->ctx.host = &fh->host;
	pthread_mutex_init(&fh->log_lock, NULL);
	fh->echo = verbose && strcmp(verbose, "1") == 0;
	fh->node_name = xstrdup("node-1");
	fh->state_dir = xstrdup("/tmp");
	fh->run_dir = xstrdup("/tmp");
	fh->dataplane = (struct mc_dataplane_config){
		.struct_size = sizeof(struct mc_dataplane_config),
		.encrypt_mark = 0xe0,
		.decrypt_mark = 0xd0,
		.role_mask = 0xf0,
		.peer_mask = 0xffff0000u,
		.inbound = MC_INBOUND_REQUIRE,
		.resync_interval_ns = 300ull * 1000000000ull,
	};
	fh->pod_default_role = MC_POD_NONE;
	return fh;
}

void fake_host_free(struct fake_host *fh)
{
	if (!fh)
		return;
	while (fh->ios)
		fh_io_remove(fh->ios);
	while (fh->timers)
		fh_timer_remove(fh->timers);
	fake_host_log_clear(fh);
	free(fh->lines);
	pthread_mutex_destroy(&fh->log_lock);
	for (size_t i = 0; i < fh->n_config; i++) {
		free(fh->config[i].section);
		free(fh->config[i].key);
		free(fh->config[i].value);
	}
	free(fh->config);
	for (size_t i = 0; i < fh->n_garbage; i++)
		free(fh->garbage[i]);
	free(fh->garbage);
	free(fh->node_name);
	free(fh->state_dir);
	free(fh->run_dir);
	for (size_t i = 0; i < fh->n_secrets; i++) {
		free(fh->secrets[i].ns);
		free(fh->secrets[i].name);
		free(fh->secrets[i].key);
		free(fh->secrets[i].data);
	}
	free(fh->secrets);
	free(fh->pods);
	free(fh->requeued);
	pthread_mutex_destroy(&fh->requeue_lock);
	mc_metrics_free(fh->metrics);
	free(fh);
}

struct mc_plugin_ctx *fake_host_ctx(struct fake_host *fh)
{
	return &fh->ctx;
}

struct mc_host *fake_host_host(struct fake_host *fh)
{
	return &fh->host;
}

/* ---- log ---- */

size_t fake_host_log_count(struct fake_host *fh)
{
	size_t n;

	pthread_mutex_lock(&fh->log_lock);
	n = fh->n_lines;
	pthread_mutex_unlock(&fh->log_lock);
	return n;
}

size_t fake_host_log_count_level(struct fake_host *fh, int level)
{
	size_t n = 0;

	pthread_mutex_lock(&fh->log_lock);
	for (size_t i = 0; i < fh->n_lines; i++)
		n += fh->lines[i].level == level;
	pthread_mutex_unlock(&fh->log_lock);
	return n;
}

size_t fake_host_log_count_matching(struct fake_host *fh, const char *needle)
{
	size_t n = 0;

	pthread_mutex_lock(&fh->log_lock);
	for (size_t i = 0; i < fh->n_lines; i++)
		n += strstr(fh->lines[i].text, needle) != NULL;
	pthread_mutex_unlock(&fh->log_lock);
	return n;
}

const char *fake_host_log_line(struct fake_host *fh, size_t i, int *level)
{
	const char *text = NULL;

	pthread_mutex_lock(&fh->log_lock);
	if (i < fh->n_lines) {
		text = fh->lines[i].text;
		if (level)
			*level = fh->lines[i].level;
	}
	pthread_mutex_unlock(&fh->log_lock);
	return text;
}

const char *fake_host_log_find(struct fake_host *fh, int level, const char *needle)
{
	const char *text = NULL;

	pthread_mutex_lock(&fh->log_lock);
	for (size_t i = 0; i < fh->n_lines && !text; i++)
		if ((level < 0 || fh->lines[i].level == level) &&
		    strstr(fh->lines[i].text, needle))
			text = fh->lines[i].text;
	pthread_mutex_unlock(&fh->log_lock);
	return text;
}

void fake_host_log_clear(struct fake_host *fh)
{
	pthread_mutex_lock(&fh->log_lock);
	for (size_t i = 0; i < fh->n_lines; i++)
		free(fh->lines[i].text);
	fh->n_lines = 0;
	pthread_mutex_unlock(&fh->log_lock);
}

void fake_host_log_dump(struct fake_host *fh)
{
	pthread_mutex_lock(&fh->log_lock);
	fprintf(stderr, "[fake-host] %zu line(s) logged:\n", fh->n_lines);
	for (size_t i = 0; i < fh->n_lines; i++)
		fprintf(stderr, "[fake-host]   <%d> %s\n", fh->lines[i].level, fh->lines[i].text);
	pthread_mutex_unlock(&fh->log_lock);
}

void fake_host_log_echo(struct fake_host *fh, bool on)
{
	fh->echo = on;
}

/* ---- configuration ---- */

static void config_set(struct fake_host *fh, const char *section, const char *key,
		       const char *value)
{
	struct fake_config *c = (struct fake_config *)config_find(fh, section, key);

	if (!c) {
		fh->config = xrealloc(fh->config, fh->n_config + 1, sizeof(*fh->config));
		c = &fh->config[fh->n_config++];
		*c = (struct fake_config){ .section = xstrdup(section), .key = xstrdup(key) };
	}
	keep_garbage(fh, c->value);
	c->value = xstrdup(value);
}

void fake_host_set_config(struct fake_host *fh, const char *key, const char *value)
{
	config_set(fh, NULL, key, value);
}

void fake_host_set_global(struct fake_host *fh, const char *section, const char *key,
			  const char *value)
{
	config_set(fh, section, key, value);
}

/* ---- node name, directories ---- */

static void replace_string(struct fake_host *fh, char **where, const char *value)
{
	keep_garbage(fh, *where);
	*where = xstrdup(value);
}

void fake_host_set_node_name(struct fake_host *fh, const char *name)
{
	replace_string(fh, &fh->node_name, name);
}

void fake_host_set_state_dir(struct fake_host *fh, const char *dir)
{
	replace_string(fh, &fh->state_dir, dir);
}

void fake_host_set_run_dir(struct fake_host *fh, const char *dir)
{
	replace_string(fh, &fh->run_dir, dir);
}

/* ---- store, readiness ---- */

const struct fake_store_record *fake_host_store(struct fake_host *fh)
{
	return &fh->store;
}

void fake_host_set_store_result(struct fake_host *fh, int result)
{
	fh->store_result = result;
}

unsigned fake_host_ready_calls(struct fake_host *fh)
{
	return fh->ready_calls;
}

bool fake_host_ready(struct fake_host *fh)
{
	return fh->ready;
}

const char *fake_host_status(struct fake_host *fh)
{
	return fh->status;
}

/* ---- main loop ---- */

void fake_host_set_io_result(struct fake_host *fh, int result)
{
	fh->io_result = result;
}

void fake_host_set_timer_result(struct fake_host *fh, int result)
{
	fh->timer_result = result;
}

size_t fake_host_io_count(struct fake_host *fh)
{
	size_t n = 0;

	for (struct mc_io *io = fh->ios; io; io = io->next)
		n++;
	return n;
}

size_t fake_host_timer_count(struct fake_host *fh)
{
	size_t n = 0;

	for (struct mc_timer *t = fh->timers; t; t = t->next)
		n++;
	return n;
}

size_t fake_host_open_handles(struct fake_host *fh)
{
	return fake_host_io_count(fh) + fake_host_timer_count(fh);
}

int fake_host_io_fd(struct fake_host *fh, size_t i)
{
	for (struct mc_io *io = fh->ios; io; io = io->next)
		if (i-- == 0)
			return io->fd;
	return -1;
}

/* Callbacks may add and remove handles, their own included: the handles to fire are chosen by
 * id first, and each is looked up again before its call. */
static unsigned long *snapshot_ids(size_t n)
{
	return xcalloc(n, sizeof(unsigned long));
}

size_t fake_host_fire_io_events(struct fake_host *fh, int fd, uint32_t revents)
{
	size_t n = 0, fired = 0, total = fake_host_io_count(fh);
	unsigned long *ids = snapshot_ids(total);

	for (struct mc_io *io = fh->ios; io; io = io->next)
		if (io->fd == fd)
			ids[n++] = io->id;
	for (size_t i = 0; i < n; i++) {
		struct mc_io *io;

		for (io = fh->ios; io && io->id != ids[i]; io = io->next)
			;
		if (!io)
			continue;
		io->fn(&fh->ctx, io->fd, revents ? revents : io->events, io->userdata);
		fired++;
	}
	free(ids);
	return fired;
}

size_t fake_host_fire_io(struct fake_host *fh, int fd)
{
	return fake_host_fire_io_events(fh, fd, 0);
}

size_t fake_host_fire_timers(struct fake_host *fh)
{
	size_t n = 0, fired = 0, total = fake_host_timer_count(fh);
	unsigned long *ids = snapshot_ids(total);

	for (struct mc_timer *t = fh->timers; t; t = t->next)
		if (t->delay_ns)
			ids[n++] = t->id;
	for (size_t i = 0; i < n; i++) {
		struct mc_timer *t;
		uint64_t again;
		unsigned long id = ids[i];

		for (t = fh->timers; t && t->id != id; t = t->next)
			;
		if (!t || !t->delay_ns)
			continue;
		t->delay_ns = 0;
		again = t->fn(&fh->ctx, t->userdata);
		fired++;
		/* the callback may have removed its own timer */
		for (t = fh->timers; t && t->id != id; t = t->next)
			;
		if (t)
			t->delay_ns = again;
	}
	free(ids);
	return fired;
}

size_t fake_host_armed_timers(struct fake_host *fh)
{
	size_t n = 0;

	for (struct mc_timer *t = fh->timers; t; t = t->next)
		n += t->delay_ns != 0;
	return n;
}

uint64_t fake_host_timer_delay_ns(struct fake_host *fh, size_t i)
{
	for (struct mc_timer *t = fh->timers; t; t = t->next)
		if (i-- == 0)
			return t->delay_ns;
	return 0;
}

/* ---- Secrets, dataplane config, pod states, metrics ---- */

void fake_host_set_secret(struct fake_host *fh, const char *ns, const char *name,
			  const char *key, const void *data, size_t len)
{
	struct fake_secret *s = secret_find(fh, ns, name, key);

	if (!s && !data)
		return;
	if (!s) {
		fh->secrets = xrealloc(fh->secrets, fh->n_secrets + 1, sizeof(*fh->secrets));
		s = &fh->secrets[fh->n_secrets++];
		*s = (struct fake_secret){ .ns = xstrdup(ns), .name = xstrdup(name),
					   .key = xstrdup(key) };
	}
	free(s->data);
	s->data = NULL;
	s->len = 0;
	if (!data) {
		free(s->ns);
		free(s->name);
		free(s->key);
		*s = fh->secrets[--fh->n_secrets];
		return;
	}
	s->data = xcalloc(len, 1);
	memcpy(s->data, data, len);
	s->len = len;
}

struct mc_dataplane_config *fake_host_dataplane(struct fake_host *fh)
{
	return &fh->dataplane;
}

void fake_host_set_pod_state(struct fake_host *fh, const struct mc_ip *ip,
			     enum mc_pod_role role, uint32_t peer_id, uint16_t peer_index)
{
	struct fake_pod *p = NULL;

	for (size_t i = 0; i < fh->n_pods && !p; i++)
		if (memcmp(&fh->pods[i].state.ip, ip, sizeof(*ip)) == 0)
			p = &fh->pods[i];
	if (!p) {
		fh->pods = xrealloc(fh->pods, fh->n_pods + 1, sizeof(*fh->pods));
		p = &fh->pods[fh->n_pods++];
	}
	memset(p, 0, sizeof(*p));
	p->state.ip = *ip;
	p->state.role = role;
	p->state.peer_id = peer_id;
	p->state.peer_index = peer_index;
}

void fake_host_set_pod_default(struct fake_host *fh, enum mc_pod_role role, int result)
{
	fh->pod_default_role = role;
	fh->pod_default_result = result;
}

unsigned fake_host_pod_state_calls(struct fake_host *fh)
{
	return fh->pod_state_calls;
}

struct mc_metrics *fake_host_enable_metrics(struct fake_host *fh)
{
	if (!fh->metrics && !(fh->metrics = mc_metrics_new()))
		abort();
	return fh->metrics;
}

/* ---- helpers ---- */

struct mc_ip fake_ip(const char *s)
{
	struct mc_ip ip;

	memset(&ip, 0, sizeof(ip));
	if (mc_ip_parse(s, &ip) < 0)
		abort();
	return ip;
}

struct mc_prefix fake_prefix(const char *s)
{
	struct mc_prefix p;

	memset(&p, 0, sizeof(p));
	if (mc_prefix_parse(s, &p) < 0)
		abort();
	return p;
}
