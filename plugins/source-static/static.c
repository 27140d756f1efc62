/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The static source: the cluster from a Kubernetes List JSON file (what `kubectl get
 * nodes,namespaces,pods -A -o json` prints, plus MeshcryptNode items), reloaded when it
 * changes. A changed file is parsed completely first and then applied as one replace-all, so
 * a broken edit changes nothing: the last good state stays in force.
 *
 * The directory is watched, not the file: editors and `mv` replace the file by rename, which
 * a watch on the old inode would never see.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <syslog.h>
#include <unistd.h>

#include <meshcrypt/host.h>
#include <meshcrypt/model.h>
#include <meshcrypt/plugin.h>

/* Writers touch a file in several steps (truncate, write, close); wait for the burst to end. */
#define RELOAD_DELAY_NS (20 * 1000 * 1000ull)

struct static_source {
	const char *path;
	char *dir, *base;
	int inotify_fd;
	struct mc_io *io;
	struct mc_timer *reload_timer;
	bool loaded_once;
};

static void load(struct mc_plugin_ctx *ctx, struct static_source *s)
{
	struct mc_object_list *list = NULL;
	struct mc_parse_error err = { 0 };
	char status[400];
	size_t count;
	int r;

	r = mc_object_list_parse_file(s->path, &list, &err);
	if (r < 0) {
		if (err.line > 0)
			snprintf(status, sizeof(status), "%s:%d:%d: %s", s->path, err.line,
				 err.column, err.message);
		else
			snprintf(status, sizeof(status), "%s: %s", s->path,
				 err.message[0] ? err.message : strerror(-r));
		ctx->host->log(ctx, LOG_ERR, "%s; %s", status,
			       s->loaded_once ? "keeping the last good state"
					      : "no cluster state yet");
		if (!s->loaded_once)
			ctx->host->set_ready(ctx, false, status);
		return;
	}
	count = mc_object_list_count(list);
	r = ctx->host->store_replace_all(ctx, list);
	if (r < 0) {
		snprintf(status, sizeof(status), "%s: cannot apply: %s", s->path, strerror(-r));
		ctx->host->log(ctx, LOG_ERR, "%s", status);
		if (!s->loaded_once)
			ctx->host->set_ready(ctx, false, status);
		return;
	}
	s->loaded_once = true;
	ctx->host->log(ctx, LOG_INFO, "%s: loaded %zu objects", s->path, count);
	snprintf(status, sizeof(status), "%zu objects from %s", count, s->path);
	ctx->host->set_ready(ctx, true, status);
}

static uint64_t on_reload_timer(struct mc_plugin_ctx *ctx, void *userdata)
{
	load(ctx, userdata);
	return 0;
}

static void on_inotify(struct mc_plugin_ctx *ctx, int fd, uint32_t revents, void *userdata)
{
	struct static_source *s = userdata;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool ours = false;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			/* An overflowed queue may have dropped the event of our file. */
			if ((ev->mask & IN_Q_OVERFLOW) || (ev->len && strcmp(ev->name, s->base) == 0))
				ours = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (!ours)
		return;
	ctx->host->timer_remove(s->reload_timer);
	s->reload_timer = NULL;
	if (ctx->host->timer_add(ctx, RELOAD_DELAY_NS, on_reload_timer, s, &s->reload_timer) < 0) {
		ctx->host->log(ctx, LOG_WARNING, "cannot delay the reload; reloading now");
		load(ctx, s);
	}
}

static int static_init(struct mc_plugin_ctx *ctx)
{
	struct static_source *s = calloc(1, sizeof(*s));
	char *copy;

	if (!s)
		return -ENOMEM;
	ctx->host->set_data(ctx, s);
	s->inotify_fd = -1;
	s->path = ctx->host->config_string(ctx, "file");
	copy = strdup(s->path);
	if (!copy || !(s->dir = strdup(dirname(copy)))) {
		free(copy);
		return -ENOMEM;
	}
	strcpy(copy, s->path);
	s->base = strdup(basename(copy));
	free(copy);
	if (!s->base)
		return -ENOMEM;
	s->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->inotify_fd < 0)
		return -errno;
	if (inotify_add_watch(s->inotify_fd, s->dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0) {
		int r = -errno;

		ctx->host->log(ctx, LOG_ERR, "cannot watch %s: %s", s->dir, strerror(-r));
		return r;
	}
	return 0;
}

static int static_start(struct mc_plugin_ctx *ctx)
{
	struct static_source *s = ctx->host->get_data(ctx);
	int r;

	r = ctx->host->io_add(ctx, s->inotify_fd, EPOLLIN, on_inotify, s, &s->io);
	if (r < 0)
		return r;
	load(ctx, s);
	return 0;
}

static void static_stop(struct mc_plugin_ctx *ctx)
{
	struct static_source *s = ctx->host->get_data(ctx);

	ctx->host->io_remove(s->io);
	ctx->host->timer_remove(s->reload_timer);
	s->io = NULL;
	s->reload_timer = NULL;
}

static void static_fini(struct mc_plugin_ctx *ctx)
{
	struct static_source *s = ctx->host->get_data(ctx);

	if (!s)
		return;
	if (s->inotify_fd >= 0)
		close(s->inotify_fd);
	free(s->dir);
	free(s->base);
	free(s);
	ctx->host->set_data(ctx, NULL);
}

static const struct mc_option static_options[] = {
	{ .name = "file", .type = MC_OPTION_PATH, .required = true,
	  .help = "the cluster as a Kubernetes List JSON file (kubectl get -o json)" },
	{ 0 }
};

MC_PLUGIN_DEFINE(
	.name = "static",
	.kind = MC_PLUGIN_SOURCE,
	.description = "the cluster from a Kubernetes List JSON file, live reload",
	.version = "1.0",
	.options = static_options,
	.init = static_init,
	.start = static_start,
	.stop = static_stop,
	.fini = static_fini);
