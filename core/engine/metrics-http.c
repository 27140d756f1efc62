/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "metrics-http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include <meshcrypt/metrics.h>

#include "engine.h"
#include "listen-address.h"

struct mc_metrics_http {
	struct MHD_Daemon *mhd;
	sd_event_source *io, *timer;
	struct mc_engine **engine;
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body,
			       size_t len, const char *content_type)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result r;

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status,
				    const char *text)
{
	char *body = strdup(text);

	return body ? respond(conn, status, body, strlen(body), "text/plain; charset=utf-8")
		    : MHD_NO;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_size, void **req_cls)
{
	struct mc_metrics_http *h = cls;
	size_t len;
	char *body;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
	if (strcmp(url, "/metrics") != 0)
		return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
	if (!*h->engine)
		return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "reloading\n");
	body = mc_metrics_render(mc_engine_metrics(*h->engine), &len);
	if (!body)
		return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n");
	return respond(conn, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Runs what is ready and arms the timer for libmicrohttpd's next deadline (idle connections). */
static int run(struct mc_metrics_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;

	(void)MHD_run(h->mhd);
	if (MHD_get_timeout(h->mhd, &ms) != MHD_YES)
		return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
	if (ms > (MHD_UNSIGNED_LONG_LONG)UINT64_MAX / 1000)
		ms = UINT64_MAX / 1000;
	(void)sd_event_source_set_time_relative(h->timer, ms * 1000);
	return sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	return run(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	return run(userdata);
}

int mc_metrics_http_new(sd_event *event, const char *listen, struct mc_engine **engine,
			struct mc_metrics_http **out)
{
	struct sockaddr_storage sa;
	const union MHD_DaemonInfo *info;
	struct mc_metrics_http *h;
	socklen_t sa_len;
	unsigned flags = MHD_USE_EPOLL;
	int r;

	r = mc_listen_address_parse(listen, &sa, &sa_len);
	if (r < 0)
		return r;
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->engine = engine;
	errno = 0;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, answer, h,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				  /* A scraper, not a crowd; slow clients are dropped. */
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
				  MHD_OPTION_END);
	if (!h->mhd) {
		r = errno ? -errno : -EADDRINUSE;
		free(h);
		return r;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	r = info ? sd_event_add_io(event, &h->io, info->epoll_fd, EPOLLIN, on_io, h) : -EIO;
	if (r >= 0)
		r = sd_event_add_time_relative(event, &h->timer, CLOCK_MONOTONIC, 0, 0, on_timer,
					       h);
	if (r >= 0)
		r = sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
	if (r < 0) {
		mc_metrics_http_free(h);
		return r;
	}
	*out = h;
	return 0;
}

void mc_metrics_http_free(struct mc_metrics_http *h)
{
	if (!h)
		return;
	sd_event_source_disable_unref(h->io);
	sd_event_source_disable_unref(h->timer);
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	free(h);
}
