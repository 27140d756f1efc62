/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* meshcryptctl: asks a running meshcryptd over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"

static void help(void)
{
	printf("Usage: meshcryptctl [--run-dir DIR] COMMAND\n"
	       "Commands:\n"
	       "  status   readiness, plugins, object counts, reconciler counters\n"
	       "  plan     the desired dataplane state (peers, prefixes, managed pods)\n"
	       "Options:\n"
	       "  --run-dir DIR   meshcryptd's [core] run_dir [/run/meshcrypt]\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *run_dir = "/run/meshcrypt";
	char buf[65536];
	ssize_t n;
	int c, fd;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (c == 'r') {
			run_dir = optarg;
		} else {
			help();
			return c == 'h' ? EXIT_SUCCESS : EXIT_FAILURE;
		}
	}
	if (optind + 1 != argc) {
		help();
		return EXIT_FAILURE;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", run_dir, MC_CONTROL_SOCKET);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "meshcryptctl: cannot reach meshcryptd at %s: %s\n", addr.sun_path,
			strerror(errno));
		return EXIT_FAILURE;
	}
	dprintf(fd, "%s\n", argv[optind]);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	return strncmp(buf, "error:", 6) == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
