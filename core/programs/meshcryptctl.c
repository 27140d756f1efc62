/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* meshcryptctl: asks a running meshcryptd over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"

static void help(void)
{
	printf("Usage: meshcryptctl [--run-dir DIR] [--json] COMMAND\n"
	       "Commands:\n"
	       "  status   readiness, plugins, object counts, reconciler counters\n"
	       "           (exit status 3 while meshcryptd is not ready)\n"
	       "  plan     the desired dataplane state (peers, prefixes, managed pods)\n"
	       "  peers    each peer, its index and what the backend holds for it\n"
	       "  pods     each managed pod: on this node or on which peer\n"
	       "  wireguard-key  this node's WireGuard public key, for the cluster file\n"
	       "  xfrm-errors    the non-zero xfrm error counters, what they count and the "
	       "likely cause\n"
	       "  bpf-stats      the BPF counters (marked, leak-guard drops, ...) and what "
	       "they count\n"
	       "  reload   re-read the configuration (as SIGHUP or systemctl reload)\n"
	       "  explain  SRC DST: whether this node encrypts SRC -> DST, why, how, and the "
	       "reply\n"
	       "Options:\n"
	       "  --run-dir DIR   meshcryptd's [core] run_dir [/run/meshcrypt]\n"
	       "  --json          status as one JSON object, for scripts\n"
	       "Exit status: 0, 1 on an error (meshcryptd not running, a command it refused), 3\n"
	       "for status while not ready.\n");
}

/* Writes all of buf; -EPIPE when the reader of stdout has gone (`| head`). */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	/* A daemon that accepts and then says nothing must not hang a script forever. */
	const struct timeval timeout = { .tv_sec = 10 };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	bool first = true, error = false, not_ready = false, json = false;
	char head[4096]; /* the answer's beginning, where status says whether it is ready */
	size_t head_len = 0;
	const char *run_dir = "/run/meshcrypt";
	char buf[65536];
	ssize_t n;
	int c, fd;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (c == 'r') {
			run_dir = optarg;
		} else if (c == 'j') {
			json = true;
		} else {
			help();
			return c == 'h' ? EXIT_SUCCESS : EXIT_FAILURE;
		}
	}
	if (optind >= argc || (strcmp(argv[optind], "explain") == 0) != (argc - optind == 3) ||
	    argc - optind > 3) {
		help();
		return EXIT_FAILURE;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", run_dir, MC_CONTROL_SOCKET);
	/* Write errors on stdout are handled where they happen, as EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "meshcryptctl: meshcryptd is not running (no daemon answers "
				"at %s)\n", addr.sun_path);
		else
			fprintf(stderr, "meshcryptctl: cannot reach meshcryptd at %s: %s\n",
				addr.sun_path, strerror(errno));
		return EXIT_FAILURE;
	}
	n = snprintf(buf, sizeof(buf), "%s%s%s%s%s\n", argv[optind], argc - optind == 3 ? " " : "",
		     argc - optind == 3 ? argv[optind + 1] : "", argc - optind == 3 ? " " : "",
		     argc - optind == 3 ? argv[optind + 2] : "");
	if (json && n > 0 && (size_t)n < sizeof(buf) - 8)
		n = snprintf(buf, sizeof(buf), "%s --json\n", argv[optind]);
	if (n < 0 || (size_t)n >= sizeof(buf) || write_all(fd, buf, (size_t)n) < 0) {
		fprintf(stderr, "meshcryptctl: cannot send the command: %s\n",
			n < 0 || (size_t)n >= sizeof(buf) ? strerror(ENAMETOOLONG) : strerror(errno));
		return EXIT_FAILURE;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "meshcryptctl: reading the answer: %s\n",
				errno == EAGAIN ? "timed out" : strerror(errno));
			return EXIT_FAILURE;
		}
		if (n == 0)
			break;
		if (first)
			error = n >= 6 && strncmp(buf, "error:", 6) == 0;
		first = false;
		if (head_len < sizeof(head) - 1) {
			size_t take = (size_t)n < sizeof(head) - 1 - head_len ? (size_t)n :
										sizeof(head) - 1 - head_len;

			memcpy(head + head_len, buf, take);
			head_len += take;
			head[head_len] = '\0';
			not_ready = strstr(head, "\nready: no\n") || strstr(head, "\"ready\": false");
		}
		c = write_all(STDOUT_FILENO, buf, (size_t)n);
		if (c == -EPIPE)
			return error ? EXIT_FAILURE : EXIT_SUCCESS; /* the reader had enough */
		if (c < 0) {
			fprintf(stderr, "meshcryptctl: writing the answer: %s\n", strerror(-c));
			return EXIT_FAILURE;
		}
	}
	close(fd);
	if (first) {
		fprintf(stderr, "meshcryptctl: meshcryptd closed without answering\n");
		return EXIT_FAILURE;
	}
	if (error)
		return EXIT_FAILURE;
	/* a script's `meshcryptctl status` tells a node that is not ready yet */
	return strcmp(argv[optind], "status") == 0 && not_ready ? 3 : EXIT_SUCCESS;
}
