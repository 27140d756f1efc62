/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meshcrypt metrics registry: components register collectors; a render asks every collector
 * for its current samples and prints them in the Prometheus text exposition format (0.0.4).
 *
 * Samples of one metric family written by several collectors (two work queues both write
 * workqueue_depth) come out as one group under a single # HELP / # TYPE, as the format
 * requires. Registries are thread-safe; renders are serialised, and a collector is never
 * called after mc_metrics_unregister() has returned.
 */
#ifndef MESHCRYPT_METRICS_H
#define MESHCRYPT_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mc_metrics;           /* a registry */
struct mc_metrics_collector; /* one registration */
struct mc_metrics_writer;    /* handed to a collector for the length of one render */

/* One label of a sample; the value is escaped on output. */
struct mc_metrics_label {
	const char *name;
	const char *value;
};

/*
 * A histogram snapshot. counts[i] is the number of observations in (bounds[i-1], bounds[i]]
 * (not cumulative; the writer accumulates). Observations above the last bound are counted only
 * in count, which is the +Inf bucket. bounds are strictly increasing, in the metric's unit.
 */
struct mc_metrics_histogram {
	const double *bounds;
	const uint64_t *counts;
	size_t n_bounds;
	uint64_t count;
	double sum;
};

/*
 * Called under the registry lock during a render. It writes its samples with the
 * mc_metrics_write_*() functions and returns 0 or -errno (which aborts the render). It must not
 * call into the same registry.
 */
typedef int (*mc_metrics_collect_fn)(struct mc_metrics_writer *w, void *userdata);

/* A new, empty registry, or NULL with errno set. The caller owns it (mc_metrics_free). */
struct mc_metrics *mc_metrics_new(void);

/*
 * Frees a registry. Every collector must have been unregistered first; a handle still
 * registered is released here and must not be used afterwards. NULL and the default registry
 * are no-ops.
 */
void mc_metrics_free(struct mc_metrics *reg);

/* The process-wide registry: static, never freed, never NULL. */
struct mc_metrics *mc_metrics_default(void);

/*
 * Registers fn(userdata) under a unique key (copied; "workqueue/<name>" for a work queue).
 * Returns the handle, or NULL with errno: EINVAL (NULL argument), EEXIST (key taken), ENOMEM.
 * userdata stays owned by the caller and must stay valid until mc_metrics_unregister returns.
 */
struct mc_metrics_collector *mc_metrics_register(struct mc_metrics *reg, const char *key,
						 mc_metrics_collect_fn fn, void *userdata);

/* Removes a collector, waiting for a render that is calling it. NULL is a no-op. */
void mc_metrics_unregister(struct mc_metrics_collector *c);

/*
 * Sample writers, for use inside a collector. family is the metric name, help its one-line
 * description (the first writer of a family provides it). Return 0, -EINVAL (bad name, or the
 * family already has another type) or -ENOMEM; an error is also remembered and fails the render.
 */
int mc_metrics_write_counter(struct mc_metrics_writer *w, const char *family, const char *help,
			     const struct mc_metrics_label *labels, size_t n_labels, double value);
int mc_metrics_write_gauge(struct mc_metrics_writer *w, const char *family, const char *help,
			   const struct mc_metrics_label *labels, size_t n_labels, double value);
int mc_metrics_write_histogram(struct mc_metrics_writer *w, const char *family, const char *help,
			       const struct mc_metrics_label *labels, size_t n_labels,
			       const struct mc_metrics_histogram *h);

/* Renders every collector to f. Returns 0 or -errno; on error f may hold a partial render. */
int mc_metrics_write(struct mc_metrics *reg, FILE *f);

/*
 * Renders every collector into a NUL-terminated string the caller frees, or NULL with errno.
 * len_out (optional) receives the length without the NUL.
 */
char *mc_metrics_render(struct mc_metrics *reg, size_t *len_out);

#ifdef __cplusplus
}
#endif

#endif /* MESHCRYPT_METRICS_H */
