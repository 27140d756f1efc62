/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "control.h"

#include <errno.h>
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

struct mc_control {
	sd_event_source *source;
	struct mc_engine **engine;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void answer(struct mc_control *c, int fd)
{
	const struct timeval timeout = { .tv_sec = 1 };
	char cmd[64];
	ssize_t n;
	FILE *out;

	/* A client that connects and says nothing must not stall the daemon's loop. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	n = read(fd, cmd, sizeof(cmd) - 1);
	if (n <= 0)
		return;
	cmd[n] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	out = fdopen(dup(fd), "w");
	if (!out)
		return;
	if (!*c->engine)
		fputs("error: no engine running\n", out);
	else if (strcmp(cmd, "status") == 0)
		mc_engine_write_status(*c->engine, out);
	else if (strcmp(cmd, "plan") == 0)
		mc_engine_write_plan(*c->engine, out);
	else
		fprintf(out, "error: unknown command \"%s\" (status, plan)\n", cmd);
	fclose(out);
}

static int on_connect(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

	if (client < 0)
		return 0;
	answer(userdata, client);
	close(client);
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
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(addr.sun_path); /* a stale socket of a previous run */
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    chmod(addr.sun_path, 0600) < 0 || listen(fd, 8) < 0)
		return -errno;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
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
	sd_event_source_disable_unref(c->source);
	(void)unlink(c->path);
	free(c);
}
