/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listen addresses of the daemon's endpoints ([core] metrics_listen), validated at load time. */
#ifndef MC_LISTEN_ADDRESS_H
#define MC_LISTEN_ADDRESS_H

#include <sys/socket.h>

/*
 * Parses "ADDRESS:PORT": an IPv4 address, or an IPv6 one in brackets ("[::1]:9474"), and a
 * port 1-65535; numeric only, so that a configuration does not depend on name resolution.
 * 0 or -EINVAL.
 */
int mc_listen_address_parse(const char *s, struct sockaddr_storage *sa, socklen_t *len);

#endif
