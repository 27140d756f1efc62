/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs a fuzz harness's entry point once on each file named, or on each regular file of each
 * directory named, without libFuzzer: the unit suite replays tests/fuzz/regressions/ with it,
 * built by gcc and, in the ASan build, under ASan. A broken check aborts; a file that cannot
 * be read fails the run, so that a renamed directory cannot pass as an empty one.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Reads path into a buffer of exactly its size (as libFuzzer passes inputs, so that ASan
 * catches a read past the end) and runs the harness on it. */
static int replay_file(const char *path)
{
	uint8_t *data = NULL;
	long size;
	FILE *f;

	errno = 0; /* a short fread() sets none */
	f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
		goto fail;
	/* malloc(0) may return NULL; one byte more is never passed on */
	data = malloc(size ? (size_t)size : 1);
	if (!data || fread(data, 1, (size_t)size, f) != (size_t)size)
		goto fail;
	fclose(f);
	printf("%s (%ld bytes)\n", path, size);
	fflush(stdout);
	LLVMFuzzerTestOneInput(data, (size_t)size);
	free(data);
	return 0;
fail:
	fprintf(stderr, "%s: %s\n", path, strerror(errno ? errno : EIO));
	free(data);
	if (f)
		fclose(f);
	return -1;
}

static int replay_dir(const char *dir)
{
	struct dirent **entries;
	int n = scandir(dir, &entries, NULL, alphasort), ret = 0;

	if (n < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, entries[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && replay_file(path) < 0)
			ret = -1;
		free(entries[i]);
	}
	free(entries);
	return ret;
}

int main(int argc, char **argv)
{
	int ret = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			ret |= replay_dir(argv[i]);
		else
			ret |= replay_file(argv[i]);
	}
	return ret ? EXIT_FAILURE : EXIT_SUCCESS;
}
