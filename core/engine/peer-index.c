/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "peer-index.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define INDEX_LIMIT 65535u
#define HEADER "# meshcrypt peer indices: \"+ INDEX NODE\" allocated, \"- INDEX NODE\" released\n"

struct index_entry {
	char *name;
	uint32_t index;
};

struct mc_peer_index {
	pthread_mutex_t lock;
	char path[PATH_MAX];
	int fd;         /* the journal, O_APPEND */
	uint32_t max;   /* largest usable index */
	uint32_t high;  /* largest index ever allocated: the ones above were never used */
	void *by_name;  /* tsearch tree of struct index_entry */
	struct index_entry *by_index[INDEX_LIMIT + 1];
};

static int entry_compare(const void *a, const void *b)
{
	return strcmp(((const struct index_entry *)a)->name, ((const struct index_entry *)b)->name);
}

static void entry_free(void *p)
{
	struct index_entry *e = p;

	free(e->name);
	free(e);
}

static struct index_entry *find(struct mc_peer_index *pi, const char *name)
{
	struct index_entry probe = { .name = (char *)name }, **found;

	found = tfind(&probe, &pi->by_name, entry_compare);
	return found ? *found : NULL;
}

static int insert(struct mc_peer_index *pi, const char *name, uint32_t index)
{
	struct index_entry *e = calloc(1, sizeof(*e));

	if (!e || !(e->name = strdup(name)) || !tsearch(e, &pi->by_name, entry_compare)) {
		if (e)
			free(e->name);
		free(e);
		return -ENOMEM;
	}
	e->index = index;
	pi->by_index[index] = e;
	if (index > pi->high)
		pi->high = index;
	return 0;
}

static void release(struct mc_peer_index *pi, struct index_entry *e)
{
	pi->by_index[e->index] = NULL;
	tdelete(e, &pi->by_name, entry_compare);
	entry_free(e);
}

static int journal(struct mc_peer_index *pi, char op, uint32_t index, const char *name)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%c %u %s\n", op, index, name);

	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENAMETOOLONG;
	/* One write: O_APPEND makes it land whole after whatever was there. */
	if (write(pi->fd, line, (size_t)n) != n)
		return errno ? -errno : -EIO;
	return 0;
}

/* Node names are DNS subdomains: no spaces, no control characters. */
static bool valid_node_name(const char *s)
{
	if (!*s || strlen(s) > 253)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

static int replay(struct mc_peer_index *pi, FILE *f, size_t *lines, char *error, size_t size)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, r = 0;

	*lines = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		char op, name[256];
		unsigned index;
		struct index_entry *e;

		lineno++;
		if (line[0] == '#')
			continue;
		/* A last line without its newline is a write that never completed: its index was
		 * never handed out. */
		if (line[len - 1] != '\n')
			break;
		if (sscanf(line, "%c %u %255s", &op, &index, name) != 3 || (op != '+' && op != '-') ||
		    index < 1 || index > INDEX_LIMIT || !valid_node_name(name)) {
			snprintf(error, size, "%s:%d: malformed line (expected \"+ INDEX NODE\" or "
				 "\"- INDEX NODE\"); move the file away to start over", pi->path, lineno);
			r = -EINVAL;
			break;
		}
		(*lines)++;
		e = find(pi, name);
		if (op == '-') {
			if (e && e->index == index)
				release(pi, e);
			if (index > pi->high)
				pi->high = index;
			continue;
		}
		if (e || pi->by_index[index]) {
			snprintf(error, size, "%s:%d: %s would have index %u twice (or share one); "
				 "move the file away to start over", pi->path, lineno, name, index);
			r = -EINVAL;
			break;
		}
		r = insert(pi, name, index);
		if (r < 0)
			break;
	}
	free(line);
	return r;
}

static size_t live_count(const struct mc_peer_index *pi)
{
	size_t n = 0;

	for (uint32_t i = 1; i <= pi->high; i++)
		n += pi->by_index[i] != NULL;
	return n;
}

/* Rewrites the journal as the live entries, atomically; the high mark survives as a released
 * line of the highest index if that one is free. */
static int compact(struct mc_peer_index *pi, const char *dir)
{
	char tmp[PATH_MAX + 8];
	_cleanup_fclose_ FILE *f = NULL;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.new", pi->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	fputs(HEADER, f);
	for (uint32_t i = 1; i <= pi->high; i++)
		if (pi->by_index[i])
			fprintf(f, "+ %u %s\n", i, pi->by_index[i]->name);
	if (pi->high && !pi->by_index[pi->high])
		fprintf(f, "- %u -\n", pi->high);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, pi->path) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlink(tmp);
		return r;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	return 0;
}

/* mkdir -p, the new levels with mode 0700. */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		bool end = *p == '\0';

		if (*p != '/' && !end)
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		if (end)
			return 0;
		*p = '/';
	}
}

int mc_peer_index_open(const char *state_dir, uint32_t max, struct mc_peer_index **out,
		       char *error, size_t size)
{
	struct mc_peer_index *pi;
	size_t lines = 0;
	FILE *f;
	int r;

	if (max < 1 || max > INDEX_LIMIT)
		return -EINVAL;
	r = make_dirs(state_dir);
	if (r < 0) {
		snprintf(error, size, "cannot create state directory %s: %s", state_dir,
			 strerror(-r));
		return r;
	}
	pi = calloc(1, sizeof(*pi));
	if (!pi)
		return -ENOMEM;
	pthread_mutex_init(&pi->lock, NULL);
	pi->fd = -1;
	pi->max = max;
	if (snprintf(pi->path, sizeof(pi->path), "%s/%s", state_dir, MC_PEER_INDEX_FILE) >=
	    (int)sizeof(pi->path)) {
		mc_peer_index_free(pi);
		return -ENAMETOOLONG;
	}
	f = fopen(pi->path, "re");
	if (f) {
		r = replay(pi, f, &lines, error, size);
		fclose(f);
	} else {
		r = errno == ENOENT ? 0 : -errno;
		if (r < 0)
			snprintf(error, size, "%s: %s", pi->path, strerror(-r));
	}
	/* A first start writes the header; later ones compact once the journal has grown. */
	if (r == 0 && (!f || lines > live_count(pi) + 1)) {
		r = compact(pi, state_dir);
		if (r < 0)
			snprintf(error, size, "cannot write %s: %s", pi->path, strerror(-r));
	}
	if (r == 0) {
		pi->fd = open(pi->path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (pi->fd < 0) {
			r = -errno;
			snprintf(error, size, "%s: %s", pi->path, strerror(-r));
		}
	}
	if (r < 0) {
		mc_peer_index_free(pi);
		return r;
	}
	*out = pi;
	return 0;
}

void mc_peer_index_free(struct mc_peer_index *pi)
{
	if (!pi)
		return;
	tdestroy(pi->by_name, entry_free);
	if (pi->fd >= 0)
		close(pi->fd);
	pthread_mutex_destroy(&pi->lock);
	free(pi);
}

/* Never-used indices first; then the lowest released one. 0 when all are taken. */
static uint32_t next_free(const struct mc_peer_index *pi)
{
	if (pi->high < pi->max)
		return pi->high + 1;
	for (uint32_t i = 1; i <= pi->max; i++)
		if (!pi->by_index[i])
			return i;
	return 0;
}

int mc_peer_index_get(struct mc_peer_index *pi, const char *name, int allocate)
{
	struct index_entry *e;
	uint32_t index;
	int r;

	if (!valid_node_name(name))
		return -EINVAL;
	pthread_mutex_lock(&pi->lock);
	e = find(pi, name);
	if (e || !allocate) {
		r = e ? (int)e->index : 0;
		goto out;
	}
	index = next_free(pi);
	if (!index) {
		r = -ENOSPC;
		goto out;
	}
	/* Journaled before it is handed out, so no kernel object carries an unrecorded index. */
	r = journal(pi, '+', index, name);
	if (r == 0)
		r = insert(pi, name, index);
	if (r == 0)
		r = (int)index;
out:
	pthread_mutex_unlock(&pi->lock);
	return r;
}

static int names_compare(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int mc_peer_index_retain(struct mc_peer_index *pi, const char *const *names, size_t n)
{
	_cleanup_free_ const char **sorted = NULL;
	int released = 0, r = 0;

	if (n) {
		sorted = malloc(n * sizeof(*sorted));
		if (!sorted)
			return -ENOMEM;
		memcpy(sorted, names, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), names_compare);
	}
	pthread_mutex_lock(&pi->lock);
	for (uint32_t i = 1; i <= pi->high && r == 0; i++) {
		struct index_entry *e = pi->by_index[i];

		if (!e || (n && bsearch(&e->name, sorted, n, sizeof(*sorted), names_compare)))
			continue;
		r = journal(pi, '-', e->index, e->name);
		if (r == 0) {
			release(pi, e);
			released++;
		}
	}
	pthread_mutex_unlock(&pi->lock);
	return r < 0 ? r : released;
}

int mc_peer_index_remove_file(const char *state_dir)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", state_dir, MC_PEER_INDEX_FILE) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}
