/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Temporary files and plugin directories for the engine's unit tests. */
#ifndef MC_TEST_UTIL_H
#define MC_TEST_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where meson built the test plugins (tests/unit/meson.build). */
#define TEST_PLUGIN_BUILD_DIR MC_BUILDDIR "/tests/unit"

/* A new private directory; the caller removes it with test_rmtree. */
static inline char *test_tmpdir(void)
{
	char *dir = strdup("/tmp/mc-test-XXXXXX");

	if (!dir || !mkdtemp(dir))
		abort();
	return dir;
}

static inline void test_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

/* Copies the built test plugin `file` into dir, mode 0644. */
static inline void test_install_plugin(const char *dir, const char *file)
{
	char src[512], dst[512], buf[65536];
	ssize_t n;
	int in, out;

	snprintf(src, sizeof(src), "%s/%s", TEST_PLUGIN_BUILD_DIR, file);
	snprintf(dst, sizeof(dst), "%s/%s", dir, file);
	in = open(src, O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in < 0 || out < 0)
		abort();
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			abort();
	close(in);
	close(out);
	if (chmod(dst, 0644) < 0)
		abort();
}

static inline void test_rmtree(char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		abort();
	free(dir);
}

#endif
