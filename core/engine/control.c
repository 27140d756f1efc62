/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "control.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "util.h"
#include "xfrm-errors.h"

/* The loop must never wait for a client: a slow, silent or vanished one only costs its slot
 * until one of these limits drops it. */
#define MC_CONTROL_MAX_CLIENTS 32
#define MC_CONTROL_MAX_ANSWER (64u << 20)
#define MC_CONTROL_READ_TIMEOUT_USEC (5 * 1000000ull)
#define MC_CONTROL_WRITE_TIMEOUT_USEC (10 * 1000000ull)

static const char truncated[] = "error: answer truncated\n";

struct mc_client {
	struct mc_control *control;
	struct mc_client *prev, *next;
	sd_event_source *io;
	sd_event_source *timer;
	int fd;
	char cmd[64];
	size_t cmd_len;
	char *out;
	size_t out_len;
	size_t out_pos;
};

struct mc_control {
	sd_event *event;
	sd_event_source *source;
	struct mc_engine **engine;
	struct mc_client *clients;
	unsigned n_clients;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void client_free(struct mc_client *cl)
{
	struct mc_control *c = cl->control;

	if (cl->prev)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	c->n_clients--;
	sd_event_source_disable_unref(cl->io);
	sd_event_source_disable_unref(cl->timer);
	close(cl->fd);
	free(cl->out);
	free(cl);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mc_client *cl = userdata;

	mc_log_debug("control: client timed out (%zu of %zu bytes sent)", cl->out_pos,
		     cl->out_len);
	client_free(cl);
	return 0;
}

/* The same path as systemctl reload: SIGHUP to ourselves, handled by the loop once this answer
 * is rendered (the new configuration is validated before anything stops). */
static void request_reload(FILE *out)
{
	if (kill(getpid(), SIGHUP) < 0)
		fprintf(out, "error: cannot reload: %s\n", strerror(errno));
	else
		fputs("reload requested: the log and `meshcryptctl status` tell how it went\n", out);
}

/* "explain SRC DST" */
static void explain(struct mc_engine *e, const char *args, FILE *out)
{
	char src[64], dst[64], extra;

	if (sscanf(args, "%63s %63s %c", src, dst, &extra) != 2)
		fputs("error: usage: explain SRC DST\n", out);
	else
		(void)mc_engine_explain(e, src, dst, out);
}

/* The daemon's own network namespace's counters: those of the node it programs. */
static void write_xfrm_errors(FILE *out)
{
	_cleanup_fclose_ FILE *in = fopen("/proc/net/xfrm_stat", "re");
	int r;

	if (!in) {
		fprintf(out, "error: /proc/net/xfrm_stat: %s (is xfrm in this kernel?)\n",
			strerror(errno));
		return;
	}
	r = mc_xfrm_errors_write(in, out);
	if (r < 0)
		fprintf(out, "error: /proc/net/xfrm_stat: %s\n", strerror(-r));
}

/* The answer is rendered at once, so the client sees one consistent snapshot however slowly it
 * reads, and the engine's writers keep their FILE* interface. */
static int render(struct mc_client *cl)
{
	struct mc_engine *e = *cl->control->engine;
	size_t len = 0;
	char *buf = NULL;
	FILE *out;

	out = open_memstream(&buf, &len);
	if (!out)
		return -errno;
	if (!e)
		fputs("error: no engine running\n", out);
	else if (strcmp(cl->cmd, "status") == 0)
		mc_engine_write_status(e, out);
	else if (strcmp(cl->cmd, "status --json") == 0)
		mc_engine_write_status_json(e, out);
	else if (strcmp(cl->cmd, "plan") == 0)
		mc_engine_write_plan(e, out);
	else if (strcmp(cl->cmd, "wireguard-key") == 0)
		mc_engine_write_wireguard_key(e, out);
	else if (strcmp(cl->cmd, "xfrm-errors") == 0)
		write_xfrm_errors(out);
	else if (strcmp(cl->cmd, "peers") == 0)
		mc_engine_write_peers(e, out);
	else if (strcmp(cl->cmd, "pods") == 0)
		mc_engine_write_pods(e, out);
	else if (strcmp(cl->cmd, "bpf-stats") == 0)
		mc_engine_write_bpf_stats(e, out);
	else if (strcmp(cl->cmd, "reload") == 0)
		request_reload(out);
	else if (strncmp(cl->cmd, "explain ", 8) == 0)
		explain(e, cl->cmd + 8, out);
	else
		fprintf(out, "error: unknown command \"%s\" (status, plan, wireguard-key, "
			"peers, pods, xfrm-errors, bpf-stats, reload, explain SRC DST)\n", cl->cmd);
	if (fclose(out) != 0) {
		free(buf);
		return -ENOMEM;
	}
	if (len > MC_CONTROL_MAX_ANSWER) {
		char *nl;

		len = MC_CONTROL_MAX_ANSWER - (sizeof(truncated) - 1);
		buf[len] = '\0';
		nl = strrchr(buf, '\n');
		len = nl ? (size_t)(nl - buf) + 1 : 0;
		memcpy(buf + len, truncated, sizeof(truncated) - 1);
		len += sizeof(truncated) - 1;
	}
	cl->out = buf;
	cl->out_len = len;
	return 0;
}

static int client_write(struct mc_client *cl)
{
	while (cl->out_pos < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_pos, cl->out_len - cl->out_pos,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		cl->out_pos += (size_t)n;
		(void)sd_event_source_set_time_relative(cl->timer, MC_CONTROL_WRITE_TIMEOUT_USEC);
	}
	return 1;
}

static int client_read(struct mc_client *cl)
{
	for (;;) {
		ssize_t n = recv(cl->fd, cl->cmd + cl->cmd_len, sizeof(cl->cmd) - 1 - cl->cmd_len,
				 MSG_DONTWAIT);
		char *eol;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		cl->cmd_len += (size_t)n;
		cl->cmd[cl->cmd_len] = '\0';
		eol = strpbrk(cl->cmd, "\r\n");
		if (eol) {
			*eol = '\0';
			return 1;
		}
		if (cl->cmd_len == sizeof(cl->cmd) - 1)
			return 1; /* answered as an unknown command */
	}
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mc_client *cl = userdata;
	int r;

	if (!cl->out) {
		r = client_read(cl);
		if (r == 0)
			return 0;
		if (r > 0)
			r = render(cl);
		if (r < 0)
			goto drop;
		(void)sd_event_source_set_time_relative(cl->timer, MC_CONTROL_WRITE_TIMEOUT_USEC);
		(void)sd_event_source_set_io_events(cl->io, EPOLLOUT);
	}
	r = client_write(cl);
	if (r == 0)
		return 0;
drop:
	if (r < 0)
		mc_log_debug("control: client gone: %s", strerror(-r));
	client_free(cl);
	return 0;
}

static void refuse_busy(int fd)
{
	static const char busy[] = "error: busy\n";

	(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static int client_new(struct mc_control *c, int fd)
{
	struct mc_client *cl = calloc(1, sizeof(*cl));
	int r;

	if (!cl) {
		close(fd);
		return -ENOMEM;
	}
	cl->control = c;
	cl->fd = fd;
	cl->next = c->clients;
	if (c->clients)
		c->clients->prev = cl;
	c->clients = cl;
	c->n_clients++;
	r = sd_event_add_io(c->event, &cl->io, fd, EPOLLIN, on_client, cl);
	if (r >= 0)
		r = sd_event_add_time_relative(c->event, &cl->timer, CLOCK_MONOTONIC,
					       MC_CONTROL_READ_TIMEOUT_USEC, 0, on_timeout, cl);
	if (r < 0)
		client_free(cl);
	return r;
}

static int on_connect(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mc_control *c = userdata;
	int client, r;

	client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (client < 0)
		return 0;
	if (c->n_clients >= MC_CONTROL_MAX_CLIENTS) {
		mc_log_debug("control: %u clients, refusing another", c->n_clients);
		refuse_busy(client);
		return 0;
	}
	r = client_new(c, client);
	if (r < 0)
		mc_log_debug("control: cannot serve a client: %s", strerror(-r));
	return 0;
}

/* A socket file someone answers on belongs to a live daemon, which must keep it; one nobody
 * answers on is left over from a daemon that was killed. */
static int claim_path(const struct sockaddr_un *addr)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 || errno == EAGAIN)
		return -EADDRINUSE;
	if (errno == ENOENT)
		return 0;
	if (unlink(addr->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int mc_control_new(sd_event *event, const char *run_dir, struct mc_engine **engine,
		   struct mc_control **out)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct mc_control *c;
	int r;

	if (mkdir(run_dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", run_dir, MC_CONTROL_SOCKET) >=
	    (int)sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	r = claim_path(&addr);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    chmod(addr.sun_path, 0600) < 0 || listen(fd, 64) < 0)
		return -errno;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->event = event;
	c->engine = engine;
	memcpy(c->path, addr.sun_path, sizeof(c->path));
	r = sd_event_add_io(event, &c->source, fd, EPOLLIN, on_connect, c);
	if (r < 0) {
		free(c);
		return r;
	}
	sd_event_source_set_io_fd_own(c->source, true);
	fd = -1;
	*out = c;
	return 0;
}

void mc_control_free(struct mc_control *c)
{
	if (!c)
		return;
	while (c->clients)
		client_free(c->clients);
	sd_event_source_disable_unref(c->source);
	(void)unlink(c->path);
	free(c);
}
