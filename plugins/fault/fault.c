/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fault.h"

#ifdef MC_FAULT_INJECTION
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POINTS 8

static struct point {
	char name[16];
	int error;
	unsigned long every, limit;
	atomic_ulong calls, injected;
} points[POINTS];
static size_t n_points;
static pthread_once_t parsed = PTHREAD_ONCE_INIT;

static int errno_of(const char *s)
{
	static const struct {
		const char *name;
		int value;
	} names[] = { { "EIO", EIO }, { "ENOBUFS", ENOBUFS }, { "ENOMEM", ENOMEM },
		      { "EAGAIN", EAGAIN }, { "EBUSY", EBUSY }, { "E2BIG", E2BIG },
		      { "EPERM", EPERM }, { "ETIMEDOUT", ETIMEDOUT },
		      { "ECONNREFUSED", ECONNREFUSED }, { "EEXIST", EEXIST },
		      { "ENOENT", ENOENT } };
	char *end;
	long v = strtol(s, &end, 10);

	if (*s && !*end && v > 0)
		return (int)v;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].value;
	return 0;
}

/* A malformed entry is skipped with a line on stderr: a test that asks for faults must see
 * that it got none. */
static void parse(void)
{
	const char *env = getenv("MC_FAULTS");
	char buf[512], *save = NULL;

	if (!env || snprintf(buf, sizeof(buf), "%s", env) >= (int)sizeof(buf))
		return;
	for (char *item = strtok_r(buf, ",", &save); item && n_points < POINTS;
	     item = strtok_r(NULL, ",", &save)) {
		struct point *p = &points[n_points];
		char err[32] = "";
		int n = 0;

		p->limit = 0;
		if (sscanf(item, "%15[a-z-]=%31[A-Z0-9]:%lu%n", p->name, err, &p->every, &n) < 3 ||
		    !(p->error = errno_of(err)) || !p->every ||
		    (item[n] && sscanf(item + n, ":%lu", &p->limit) != 1)) {
			fprintf(stderr, "MC_FAULTS: \"%s\" is not POINT=ERRNO:EVERY[:LIMIT]\n", item);
			continue;
		}
		n_points++;
	}
}

int mcf_fault(const char *point)
{
	pthread_once(&parsed, parse);
	for (size_t i = 0; i < n_points; i++) {
		struct point *p = &points[i];

		if (strcmp(p->name, point) != 0)
			continue;
		if ((atomic_fetch_add(&p->calls, 1) + 1) % p->every)
			return 0;
		if (p->limit && atomic_fetch_add(&p->injected, 1) >= p->limit)
			return 0;
		return -p->error;
	}
	return 0;
}
#endif
