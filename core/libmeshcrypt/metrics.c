/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Metrics registry and Prometheus text exposition (format 0.0.4).
 *
 * A render runs every collector under the registry lock into an in-memory writer that groups
 * samples by family, then prints the text after the lock is dropped, so a slow reader (an HTTP
 * client) never holds up registration or another render.
 */

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <meshcrypt/metrics.h>

struct mc_metrics_collector {
	struct mc_metrics *reg;
	char *key;
	mc_metrics_collect_fn fn;
	void *userdata;
	struct mc_metrics_collector *prev, *next;
};

struct mc_metrics {
	pthread_mutex_t lock;
	struct mc_metrics_collector *head, *tail;
};

enum family_type { FAMILY_COUNTER, FAMILY_GAUGE, FAMILY_HISTOGRAM };

static const char *const family_type_names[] = {
	[FAMILY_COUNTER] = "counter",
	[FAMILY_GAUGE] = "gauge",
	[FAMILY_HISTOGRAM] = "histogram",
};

struct text {
	char *s;
	size_t len, cap;
};

struct family {
	char *name;
	char *help;
	enum family_type type;
	struct text samples;
};

struct mc_metrics_writer {
	struct family *fam;
	size_t n, cap;
	int err;
};

static struct mc_metrics default_registry = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- text buffer ---- */

static int text_reserve(struct text *t, size_t more)
{
	size_t cap;
	char *s;

	if (t->cap - t->len > more)
		return 0;
	cap = t->cap ? t->cap : 256;
	while (cap - t->len <= more) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	s = realloc(t->s, cap);
	if (!s)
		return -ENOMEM;
	t->s = s;
	t->cap = cap;
	return 0;
}

__attribute__((format(printf, 2, 3))) static int text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if (text_reserve(t, (size_t)n) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	(void)vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
	return 0;
}

static int text_putc(struct text *t, char c)
{
	if (text_reserve(t, 1) < 0)
		return -ENOMEM;
	t->s[t->len++] = c;
	t->s[t->len] = '\0';
	return 0;
}

/* Label values escape \ " and newline; HELP text escapes \ and newline. */
static int text_escaped(struct text *t, const char *s, bool quote)
{
	int r = 0;

	for (; *s && r == 0; s++) {
		if (*s == '\\')
			r = text_printf(t, "\\\\");
		else if (*s == '\n')
			r = text_printf(t, "\\n");
		else if (*s == '"' && quote)
			r = text_printf(t, "\\\"");
		else
			r = text_putc(t, *s);
	}
	return r;
}

/* ---- names and values ---- */

static bool valid_name(const char *s, bool metric)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++) {
		bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  (*s >= '0' && *s <= '9') || *s == '_' || (metric && *s == ':');

		if (!ok)
			return false;
	}
	return true;
}

/* The shortest of %.15g .. %.17g that reads back as the same double. */
static void format_value(char *buf, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* ---- writer ---- */

static struct family *writer_family(struct mc_metrics_writer *w, const char *name,
				    const char *help, enum family_type type, int *err)
{
	struct family *f;

	*err = -EINVAL;
	if (!valid_name(name, true))
		return NULL;
	for (size_t i = 0; i < w->n; i++) {
		if (strcmp(w->fam[i].name, name) != 0)
			continue;
		if (w->fam[i].type != type)
			return NULL;
		*err = 0;
		return &w->fam[i];
	}
	*err = -ENOMEM;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;

		f = realloc(w->fam, cap * sizeof(*f));
		if (!f)
			return NULL;
		w->fam = f;
		w->cap = cap;
	}
	f = &w->fam[w->n];
	*f = (struct family){ .name = strdup(name), .help = strdup(help ? help : ""),
			      .type = type };
	if (!f->name || !f->help) {
		free(f->name);
		free(f->help);
		return NULL;
	}
	w->n++;
	*err = 0;
	return f;
}

/* name{l1="v1",...[,le="bound"]} value */
static int write_sample(struct text *t, const char *name, const char *suffix,
			const struct mc_metrics_label *labels, size_t n_labels, const char *le,
			double value)
{
	char num[40];
	int r;

	r = text_printf(t, "%s%s", name, suffix);
	if (r == 0 && (n_labels || le))
		r = text_putc(t, '{');
	for (size_t i = 0; i < n_labels && r == 0; i++) {
		r = text_printf(t, "%s%s=\"", i ? "," : "", labels[i].name);
		if (r == 0)
			r = text_escaped(t, labels[i].value, true);
		if (r == 0)
			r = text_putc(t, '"');
	}
	if (r == 0 && le)
		r = text_printf(t, "%sle=\"%s\"", n_labels ? "," : "", le);
	if (r == 0 && (n_labels || le))
		r = text_putc(t, '}');
	format_value(num, sizeof(num), value);
	if (r == 0)
		r = text_printf(t, " %s\n", num);
	return r;
}

static int labels_valid(const struct mc_metrics_label *labels, size_t n_labels)
{
	if (n_labels && !labels)
		return -EINVAL;
	for (size_t i = 0; i < n_labels; i++) {
		if (!valid_name(labels[i].name, false) || !labels[i].value ||
		    strcmp(labels[i].name, "le") == 0)
			return -EINVAL;
	}
	return 0;
}

/* Records the first error of a render and passes it back to the collector. */
static int writer_fail(struct mc_metrics_writer *w, int err)
{
	if (err < 0 && w->err == 0)
		w->err = err;
	return err;
}

static int write_simple(struct mc_metrics_writer *w, enum family_type type, const char *family,
			const char *help, const struct mc_metrics_label *labels, size_t n_labels,
			double value)
{
	struct family *f;
	int r;

	if (!w)
		return -EINVAL;
	r = labels_valid(labels, n_labels);
	if (r < 0)
		return writer_fail(w, r);
	f = writer_family(w, family, help, type, &r);
	if (!f)
		return writer_fail(w, r);
	return writer_fail(w, write_sample(&f->samples, family, "", labels, n_labels, NULL, value));
}

int mc_metrics_write_counter(struct mc_metrics_writer *w, const char *family, const char *help,
			     const struct mc_metrics_label *labels, size_t n_labels, double value)
{
	return write_simple(w, FAMILY_COUNTER, family, help, labels, n_labels, value);
}

int mc_metrics_write_gauge(struct mc_metrics_writer *w, const char *family, const char *help,
			   const struct mc_metrics_label *labels, size_t n_labels, double value)
{
	return write_simple(w, FAMILY_GAUGE, family, help, labels, n_labels, value);
}

int mc_metrics_write_histogram(struct mc_metrics_writer *w, const char *family, const char *help,
			       const struct mc_metrics_label *labels, size_t n_labels,
			       const struct mc_metrics_histogram *h)
{
	struct family *f;
	uint64_t cumulative = 0;
	char le[40];
	int r;

	if (!w)
		return -EINVAL;
	r = labels_valid(labels, n_labels);
	if (r == 0 && (!h || (h->n_bounds && (!h->bounds || !h->counts))))
		r = -EINVAL;
	for (size_t i = 1; r == 0 && i < h->n_bounds; i++) {
		if (!(h->bounds[i - 1] < h->bounds[i]))
			r = -EINVAL;
	}
	if (r < 0)
		return writer_fail(w, r);
	f = writer_family(w, family, help, FAMILY_HISTOGRAM, &r);
	if (!f)
		return writer_fail(w, r);
	for (size_t i = 0; r == 0 && i < h->n_bounds; i++) {
		cumulative += h->counts[i];
		format_value(le, sizeof(le), h->bounds[i]);
		r = write_sample(&f->samples, family, "_bucket", labels, n_labels, le,
				 (double)cumulative);
	}
	if (r == 0)
		r = write_sample(&f->samples, family, "_bucket", labels, n_labels, "+Inf",
				 (double)h->count);
	if (r == 0)
		r = write_sample(&f->samples, family, "_sum", labels, n_labels, NULL, h->sum);
	if (r == 0)
		r = write_sample(&f->samples, family, "_count", labels, n_labels, NULL,
				 (double)h->count);
	return writer_fail(w, r);
}

static void writer_fini(struct mc_metrics_writer *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->fam[i].name);
		free(w->fam[i].help);
		free(w->fam[i].samples.s);
	}
	free(w->fam);
}

static int writer_emit(const struct mc_metrics_writer *w, FILE *f)
{
	for (size_t i = 0; i < w->n; i++) {
		const struct family *fam = &w->fam[i];
		struct text help = { 0 };
		int r = text_escaped(&help, fam->help, false);

		if (r < 0)
			return r;
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, help.s ? help.s : "",
			fam->name, family_type_names[fam->type]);
		free(help.s);
		if (fam->samples.len)
			fwrite(fam->samples.s, 1, fam->samples.len, f);
	}
	return ferror(f) ? -EIO : 0;
}

/* ---- registry ---- */

struct mc_metrics *mc_metrics_new(void)
{
	struct mc_metrics *reg = calloc(1, sizeof(*reg));

	if (reg)
		pthread_mutex_init(&reg->lock, NULL);
	return reg;
}

void mc_metrics_free(struct mc_metrics *reg)
{
	struct mc_metrics_collector *c, *next;

	if (!reg || reg == &default_registry)
		return;
	for (c = reg->head; c; c = next) {
		next = c->next;
		free(c->key);
		free(c);
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

struct mc_metrics *mc_metrics_default(void)
{
	return &default_registry;
}

struct mc_metrics_collector *mc_metrics_register(struct mc_metrics *reg, const char *key,
						 mc_metrics_collect_fn fn, void *userdata)
{
	struct mc_metrics_collector *c;

	if (!reg || !key || !fn) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	*c = (struct mc_metrics_collector){ .reg = reg, .key = strdup(key), .fn = fn,
					    .userdata = userdata };
	if (!c->key) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&reg->lock);
	for (const struct mc_metrics_collector *o = reg->head; o; o = o->next) {
		if (strcmp(o->key, key) == 0) {
			pthread_mutex_unlock(&reg->lock);
			free(c->key);
			free(c);
			errno = EEXIST;
			return NULL;
		}
	}
	c->prev = reg->tail;
	if (reg->tail)
		reg->tail->next = c;
	else
		reg->head = c;
	reg->tail = c;
	pthread_mutex_unlock(&reg->lock);
	return c;
}

void mc_metrics_unregister(struct mc_metrics_collector *c)
{
	struct mc_metrics *reg;

	if (!c)
		return;
	reg = c->reg;
	pthread_mutex_lock(&reg->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		reg->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		reg->tail = c->prev;
	pthread_mutex_unlock(&reg->lock);
	free(c->key);
	free(c);
}

int mc_metrics_write(struct mc_metrics *reg, FILE *f)
{
	struct mc_metrics_writer w = { 0 };
	int r = 0;

	if (!reg || !f)
		return -EINVAL;
	pthread_mutex_lock(&reg->lock);
	for (struct mc_metrics_collector *c = reg->head; c && r == 0; c = c->next)
		r = c->fn(&w, c->userdata);
	pthread_mutex_unlock(&reg->lock);
	if (r == 0)
		r = w.err;
	if (r == 0)
		r = writer_emit(&w, f);
	writer_fini(&w);
	return r;
}

char *mc_metrics_render(struct mc_metrics *reg, size_t *len_out)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	if (!reg) {
		errno = EINVAL;
		return NULL;
	}
	f = open_memstream(&s, &len);
	if (!f)
		return NULL;
	r = mc_metrics_write(reg, f);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r < 0) {
		free(s);
		errno = -r;
		return NULL;
	}
	if (len_out)
		*len_out = len;
	return s;
}
