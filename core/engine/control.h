/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket <run_dir>/meshcryptd.sock that meshcryptctl talks to: a client sends one
 * command line ("status" or "plan") and reads the answer until the daemon closes. Only root
 * can connect (mode 0600). Clients are served from the loop without ever blocking it: at most
 * 32 at once (others get "error: busy"), 5 s to send the line, 10 s without write progress,
 * answers cut at 64 MiB with "error: answer truncated".
 */
#ifndef MC_CONTROL_H
#define MC_CONTROL_H

#include <systemd/sd-event.h>

struct mc_engine;
struct mc_control;

#define MC_CONTROL_SOCKET "meshcryptd.sock"

/* `engine` points to the daemon's current engine, so the socket survives a reload. *out is
 * the caller's (mc_control_free, which removes the socket file). A stale socket file is
 * replaced; -EADDRINUSE when another daemon answers on it. */
int mc_control_new(sd_event *event, const char *run_dir, struct mc_engine **engine,
		   struct mc_control **out);
void mc_control_free(struct mc_control *c);

#endif
