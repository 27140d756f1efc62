/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "plugin-loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <ltdl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/*
 * The plugin's descriptor, dataplane ops and option schema are copied into structs of this
 * core's sizes, zero-filled past what the plugin declared: the engine then reads every field
 * of ABI 1.x without checking sizes again, and fields a plugin did not know are NULL / 0.
 */
struct mc_loaded_plugin {
	lt_dlhandle handle;
	struct mc_plugin desc;
	struct mc_dataplane_ops ops;
	struct mc_option *options; /* NULL-name terminated, or NULL */
	char *path;
};

/* The fields every ABI 1 plugin has: the descriptor up to `fini`, the three apply calls. */
#define MC_PLUGIN_MIN_SIZE (offsetof(struct mc_plugin, fini) + sizeof(((struct mc_plugin *)0)->fini))
#define MC_OPS_MIN_SIZE                                                                        \
	(offsetof(struct mc_dataplane_ops, pod_apply) + sizeof(((struct mc_dataplane_ops *)0)->pod_apply))

/* Copies min(have, want) bytes of src and zeroes the rest of dst. */
static void copy_sized(void *dst, size_t want, const void *src, size_t have)
{
	size_t n = have < want ? have : want;

	memcpy(dst, src, n);
	memset((char *)dst + n, 0, want - n);
}

/* The plugin's schema with its own element size (1.0 plugins: the 1.0 size, which is ours). */
static int copy_options(struct mc_loaded_plugin *p, const struct mc_option *options,
			size_t stride)
{
	const char *base = (const char *)options;
	size_t n = 0;

	if (!options)
		return 0;
	if (stride < offsetof(struct mc_option, help) + sizeof(options->help))
		stride = sizeof(struct mc_option);
	while (((const struct mc_option *)(base + n * stride))->name)
		n++;
	p->options = calloc(n + 1, sizeof(*p->options));
	if (!p->options)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		copy_sized(&p->options[i], sizeof(p->options[i]), base + i * stride, stride);
	return 0;
}

static int fail(char *error, size_t size, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *error, size_t size, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(error, size, fmt, ap);
	va_end(ap);
	return r;
}

const char *mc_plugin_kind_name(enum mc_plugin_kind kind)
{
	switch (kind) {
	case MC_PLUGIN_SOURCE:
		return "source";
	case MC_PLUGIN_BACKEND:
		return "backend";
	case MC_PLUGIN_ATTACH:
		return "attach";
	}
	return NULL;
}

const struct mc_plugin *mc_loaded_plugin_descriptor(const struct mc_loaded_plugin *p)
{
	return &p->desc;
}

const char *mc_loaded_plugin_path(const struct mc_loaded_plugin *p)
{
	return p->path;
}

int mc_plugin_dir_check(const char *dir, char *error, size_t size)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return fail(error, size, -errno, "plugin directory %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(error, size, -ENOTDIR, "plugin directory %s: not a directory", dir);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return fail(error, size, -EPERM,
			    "plugin directory %s is group- or world-writable (mode %03o): refusing "
			    "to load plugins from it",
			    dir, st.st_mode & 0777);
	return 0;
}

/* lt_dlinit/lt_dlexit are reference counted but not thread-safe. */
static pthread_mutex_t ltdl_lock = PTHREAD_MUTEX_INITIALIZER;

static int ltdl_open(const char *path, lt_dlhandle *out, char *error, size_t size)
{
	lt_dladvise advise;
	int r = 0;

	pthread_mutex_lock(&ltdl_lock);
	if (lt_dlinit() != 0) {
		r = fail(error, size, -ELIBACC, "libltdl: %s", lt_dlerror());
		goto out;
	}
	/* Local: two plugins may define the same internal names. */
	if (lt_dladvise_init(&advise) || lt_dladvise_local(&advise)) {
		r = fail(error, size, -ELIBACC, "libltdl: %s", lt_dlerror());
		lt_dlexit();
		goto out;
	}
	*out = lt_dlopenadvise(path, advise);
	lt_dladvise_destroy(&advise);
	if (!*out) {
		const char *why = lt_dlerror();
		/* libltdl reports any refusal of the dynamic linker as "file not found": ask it
		 * directly for the reason (a missing library, an undefined symbol). */
		void *probe = dlopen(path, RTLD_NOW | RTLD_LOCAL);

		if (probe)
			dlclose(probe);
		else
			why = dlerror();
		r = fail(error, size, -ELIBACC, "%s: cannot load: %s (try ldd -r %s)", path, why,
			 path);
		lt_dlexit();
	}
out:
	pthread_mutex_unlock(&ltdl_lock);
	return r;
}

static void ltdl_close(lt_dlhandle handle)
{
	pthread_mutex_lock(&ltdl_lock);
	lt_dlclose(handle);
	lt_dlexit();
	pthread_mutex_unlock(&ltdl_lock);
}

static bool valid_name(const char *name)
{
	if (!name[0] || strlen(name) > 64)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return false;
	return true;
}

static int check_descriptor(const char *path, const struct mc_plugin *d, char *error,
			    size_t size)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	const char *kind;
	char expected[128];

	if (MC_PLUGIN_ABI_GET_MAJOR(d->abi_version) != MC_PLUGIN_ABI_MAJOR)
		return fail(error, size, -EPROTONOSUPPORT,
			    "%s: incompatible plugin ABI %u.%u, this meshcryptd has ABI %u.%u "
			    "(rebuild the plugin against meshcrypt-plugin %u)",
			    path, MC_PLUGIN_ABI_GET_MAJOR(d->abi_version),
			    MC_PLUGIN_ABI_GET_MINOR(d->abi_version), MC_PLUGIN_ABI_MAJOR,
			    MC_PLUGIN_ABI_MINOR, MC_PLUGIN_ABI_MAJOR);
	if (d->struct_size < MC_PLUGIN_MIN_SIZE)
		return fail(error, size, -ENOEXEC,
			    "%s: malformed descriptor: struct_size %zu is below the %zu bytes of "
			    "ABI %u.0",
			    path, d->struct_size, (size_t)MC_PLUGIN_MIN_SIZE, MC_PLUGIN_ABI_MAJOR);
	if (!d->name || !valid_name(d->name))
		return fail(error, size, -ENOEXEC,
			    "%s: malformed descriptor: name must be 1-64 of [a-z0-9-]", path);
	kind = mc_plugin_kind_name(d->kind);
	if (!kind)
		return fail(error, size, -ENOEXEC, "%s: malformed descriptor: unknown kind %d",
			    path, (int)d->kind);
	snprintf(expected, sizeof(expected), "%s-%s.so", kind, d->name);
	if (strcmp(base, expected) != 0)
		return fail(error, size, -ENOEXEC,
			    "%s: descriptor says %s plugin \"%s\", so the file must be named %s",
			    path, kind, d->name, expected);
	if (d->kind != MC_PLUGIN_SOURCE) {
		const struct mc_dataplane_ops *ops =
			d->struct_size >= offsetof(struct mc_plugin, dataplane) + sizeof(d->dataplane)
				? d->dataplane
				: NULL;

		if (!ops || ops->struct_size < MC_OPS_MIN_SIZE ||
		    !ops->local_apply || !ops->peer_apply || !ops->pod_apply)
			return fail(error, size, -ENOEXEC,
				    "%s: malformed descriptor: a %s plugin needs dataplane ops "
				    "local_apply, peer_apply and pod_apply",
				    path, kind);
	}
	return 0;
}

int mc_plugin_load_path(const char *path, struct mc_loaded_plugin **out, char *error,
			size_t size)
{
	_cleanup_free_ char *dir = strdup(path);
	struct mc_loaded_plugin *p;
	struct stat st;
	lt_dlhandle handle;
	const struct mc_plugin *desc;
	char *slash;
	int r;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash || path[0] != '/')
		return fail(error, size, -EINVAL, "%s: plugin paths must be absolute", path);
	*slash = '\0';
	r = mc_plugin_dir_check(dir[0] ? dir : "/", error, size);
	if (r < 0)
		return r;
	/* lstat: a symlink could lead out of the checked directory. */
	if (lstat(path, &st) < 0)
		return fail(error, size, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(error, size, -EPERM, "%s: not a regular file", path);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return fail(error, size, -EPERM, "%s: group- or world-writable (mode %03o)", path,
			    st.st_mode & 0777);

	r = ltdl_open(path, &handle, error, size);
	if (r < 0)
		return r;
	desc = lt_dlsym(handle, MC_PLUGIN_SYMBOL);
	if (!desc) {
		ltdl_close(handle);
		return fail(error, size, -ENOEXEC, "%s: no %s descriptor exported: not a meshcrypt plugin",
			    path, MC_PLUGIN_SYMBOL);
	}
	r = check_descriptor(path, desc, error, size);
	if (r < 0) {
		ltdl_close(handle);
		return r;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		ltdl_close(handle);
		return -ENOMEM;
	}
	p->handle = handle;
	copy_sized(&p->desc, sizeof(p->desc), desc, desc->struct_size);
	if (p->desc.dataplane) {
		copy_sized(&p->ops, sizeof(p->ops), p->desc.dataplane, p->desc.dataplane->struct_size);
		p->desc.dataplane = &p->ops;
	}
	if (copy_options(p, p->desc.options, p->desc.option_size) < 0) {
		mc_plugin_unload(p);
		return -ENOMEM;
	}
	p->desc.options = p->options;
	p->desc.option_size = sizeof(struct mc_option);
	*out = p;
	return 0;
}

int mc_plugin_load(const char *dir, enum mc_plugin_kind kind, const char *name,
		   struct mc_loaded_plugin **out, char *error, size_t size)
{
	_cleanup_free_ char *path = NULL;
	const char *kind_name = mc_plugin_kind_name(kind);
	int r;

	if (!kind_name || !valid_name(name))
		return fail(error, size, -EINVAL, "invalid plugin name \"%s\"", name);
	r = mc_plugin_dir_check(dir, error, size);
	if (r < 0)
		return r;
	if (asprintf(&path, "%s/%s-%s.so", dir, kind_name, name) < 0)
		return -ENOMEM;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return fail(error, size, -ENOENT, "no %s plugin \"%s\" (%s does not exist)",
			    kind_name, name, path);
	return mc_plugin_load_path(path, out, error, size);
}

void mc_plugin_unload(struct mc_loaded_plugin *p)
{
	if (!p)
		return;
	ltdl_close(p->handle);
	free(p->options);
	free(p->path);
	free(p);
}

static int filter_so(const struct dirent *de)
{
	size_t len = strlen(de->d_name);

	return len > 3 && strcmp(de->d_name + len - 3, ".so") == 0;
}

int mc_plugin_list(const char *dir, mc_plugin_list_fn fn, void *userdata)
{
	struct dirent **entries;
	char error[512];
	int n, r;

	r = mc_plugin_dir_check(dir, error, sizeof(error));
	if (r < 0)
		return r;
	n = scandir(dir, &entries, filter_so, alphasort);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct mc_loaded_plugin *p = NULL;
		char *path;

		if (asprintf(&path, "%s/%s", dir, entries[i]->d_name) < 0) {
			r = -ENOMEM;
		} else {
			error[0] = '\0';
			r = mc_plugin_load_path(path, &p, error, sizeof(error));
			fn(path, p, r, error, userdata);
			mc_plugin_unload(p);
			free(path);
			r = 0;
		}
		free(entries[i]);
		if (r < 0) {
			while (++i < n)
				free(entries[i]);
			break;
		}
	}
	free(entries);
	return r;
}
