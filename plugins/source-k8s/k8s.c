/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Kubernetes source (DESIGN.md §8): list+watch of nodes, namespaces, pods (not
 * hostNetwork), MeshcryptNodes and the key Secret, with libcurl, one thread per informer.
 *
 * An informer lists page by page (limit/continue, one resourceVersion), hands the whole set to
 * the store (replace of its kind, so objects that vanished meanwhile are deleted), then
 * watches from that resourceVersion. The stream is split into lines as it arrives, each
 * line is one event parsed on its own (never buffered beyond MAX_LINE). BOOKMARK moves the
 * resourceVersion; 410 Gone, as an HTTP status or an in-stream ERROR, relists; a clean end
 * rewatches at once; other errors back off 0.8 s doubling to 30 s with jitter, reset after two
 * healthy minutes; 401 re-reads the token. The token file is re-read at least every 60 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>
#include <meshcrypt/model.h>
#include <meshcrypt/plugin.h>

#include "fault.h"
#include "kubeconfig.h"
#include "span.h"

#define MAX_LINE (4u << 20)     /* one watch event; larger ones are rejected */
#define MAX_PAGE (256u << 20)   /* one list page */
#define PAGE_LIMIT 500
#define TOKEN_MAX_AGE_NS (60ull * 1000000000)
#define BACKOFF_FIRST_MS 800
#define BACKOFF_MAX_MS 30000
#define HEALTHY_RESET_NS (120ull * 1000000000)
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct k8s;

struct informer {
	struct k8s *k;
	enum mc_object_kind kind;
	const char *name;     /* for the log: "pods" */
	const char *list_kind; /* "PodList": the API's list items carry no kind of their own */
	char path[1024];      /* the collection, with a fieldSelector where one applies */
	pthread_t thread;
	bool started;
	char rv[128];         /* the resourceVersion to watch from */
	atomic_bool synced;
	atomic_ulong lists, events; /* complete lists, watch events applied: for /metrics */
	/* one request's state */
	struct mck_lines lines;
	int watch_result;     /* 0, or -ESTALE after an in-stream 410 */
	char *page;
	size_t page_len;
};

struct k8s {
	struct mc_plugin_ctx *ctx;
	struct mc_metrics_collector *collector; /* the informers' metrics */
	char server[512];
	char ca_file[1024];
	char token_file[1024];
	struct mck_credentials creds; /* from the kubeconfig: CA and client certificate data */
	bool insecure;
	pthread_mutex_t token_lock;
	char token[8192];
	uint64_t token_read_ns;
	unsigned timeout_min, timeout_max;
	atomic_bool stop;
	int notify_fd;
	struct mc_io *notify_io;
	bool ready_reported;
	struct informer informers[5];
	size_t n_informers;

	/* publication of this node's MeshcryptNode */
	const char *node_name;
	pthread_mutex_t pub_lock;
	pthread_cond_t pub_cond;
	struct mc_publication want;   /* from the backend, through the engine */
	char addresses[512];          /* JSON array of the local Node's InternalIPs, "" unknown */
	char pod_cidrs[512];          /* JSON array of its spec.podCIDRs */
	bool pub_dirty;
	pthread_t publisher;
	bool publisher_started;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the token ---- */

/* Re-reads the token file when forced or older than 60 s; keeps the old one on failure. */
static void token_refresh(struct k8s *k, bool force)
{
	char buf[sizeof(k->token)];
	ssize_t n;
	int fd;

	pthread_mutex_lock(&k->token_lock);
	if (!k->token_file[0] || (!force && now_ns() - k->token_read_ns < TOKEN_MAX_AGE_NS)) {
		pthread_mutex_unlock(&k->token_lock);
		return;
	}
	fd = open(k->token_file, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
			n--;
		buf[n] = '\0';
		memcpy(k->token, buf, (size_t)n + 1);
		k->token_read_ns = now_ns();
	}
	explicit_bzero(buf, sizeof(buf));
	pthread_mutex_unlock(&k->token_lock);
}

static struct curl_slist *auth_headers(struct k8s *k)
{
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	char line[sizeof(k->token) + 32];

	token_refresh(k, false);
	pthread_mutex_lock(&k->token_lock);
	if (k->token[0]) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", k->token);
		h = curl_slist_append(h, line);
		explicit_bzero(line, sizeof(line));
	}
	pthread_mutex_unlock(&k->token_lock);
	return h;
}

/* ---- requests ---- */

static int progress(void *userdata, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct k8s *k = userdata;

	return atomic_load(&k->stop) ? 1 : 0;
}

/* A transfer to url with what every request of ours carries: verified TLS with our CA and
 * client certificate, the token, timeouts, a stop check. NULL on allocation failure. */
static CURL *easy_for(struct k8s *k, const char *url, long timeout_s, struct curl_slist **headers)
{
	CURL *c = curl_easy_init();

	*headers = NULL;
	if (!c)
		return NULL;
	*headers = auth_headers(k);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, k);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	/* TLS verification is always on, unless the kubeconfig says otherwise and
	 * allow_insecure accepted it. */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, k->insecure ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, k->insecure ? 0L : 2L);
	if (k->ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
	if (k->creds.ca_data) {
		struct curl_blob ca = { k->creds.ca_data, k->creds.ca_data_len, CURL_BLOB_NOCOPY };

		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
	}
	if (k->creds.cert_file)
		curl_easy_setopt(c, CURLOPT_SSLCERT, k->creds.cert_file);
	if (k->creds.key_file)
		curl_easy_setopt(c, CURLOPT_SSLKEY, k->creds.key_file);
	if (k->creds.cert_data) {
		struct curl_blob cert = { k->creds.cert_data, k->creds.cert_data_len, CURL_BLOB_NOCOPY };

		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
	}
	if (k->creds.key_data) {
		struct curl_blob key = { k->creds.key_data, k->creds.key_data_len, CURL_BLOB_NOCOPY };

		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
	}
	return c;
}

/* Runs a prepared transfer; *status receives the HTTP status. 0 or -errno (-ECANCELED when
 * stopping, -EFBIG when the write callback refused, -EIO for a transport error). */
static int perform(struct k8s *k, CURL *c, struct curl_slist *headers, const char *what,
		   long *status)
{
	int fault = mcf_fault("http");
	CURLcode rc = fault < 0 ? CURLE_COULDNT_CONNECT : curl_easy_perform(c);

	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&k->stop))
		return -ECANCELED;
	if (rc == CURLE_WRITE_ERROR)
		return -EFBIG;
	if (rc == CURLE_OPERATION_TIMEDOUT && *status == 200)
		return 0; /* a watch that ran its time: rewatch */
	if (rc != CURLE_OK) {
		mc_plugin_log(k->ctx, LOG_DEBUG, "%s: %s%s", what, curl_easy_strerror(rc),
			      fault < 0 ? " (injected)" : "");
		return fault < 0 ? fault : -EIO;
	}
	return 0;
}

/* GET url into write callback fn (userdata inf). */
static int get(struct informer *inf, const char *url, curl_write_callback fn, long timeout_s,
	       long *status)
{
	struct curl_slist *headers;
	CURL *c = easy_for(inf->k, url, timeout_s, &headers);

	*status = 0;
	if (!c) {
		curl_slist_free_all(headers);
		return -ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fn);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, inf);
	return perform(inf->k, c, headers, inf->name, status);
}

/* ---- the local Node, for the publication ---- */

/* Appends the strings of a JSON array span to out as a JSON array; for "addresses" only the
 * elements whose "type" is InternalIP, taking their "address". */
static void json_strings(struct mck_span array, bool internal_ips, char *out, size_t size)
{
	struct mck_span inner, rest, elem, v;
	size_t n = 0;

	n += (size_t)snprintf(out, size, "[");
	if (mck_array_inner(array, &inner) == 0) {
		rest = inner;
		while (mck_array_next(&rest, &elem) == 0 && n < size) {
			if (internal_ips) {
				if (mck_member(elem, "type", &v) < 0 || v.len != 10 ||
				    memcmp(v.p, "InternalIP", 10) != 0 || mck_member(elem, "address", &v) < 0)
					continue;
				elem = v;
			}
			n += (size_t)snprintf(out + n, size - n, "%s\"%.*s\"", n > 1 ? "," : "",
					      (int)elem.len, elem.p);
		}
	}
	if (n < size)
		snprintf(out + n, size - n, "]");
}

/* Remembers the addresses and pod CIDRs of node (raw JSON) if it is this node. */
static void note_local_node(struct k8s *k, struct mck_span node)
{
	struct mck_span meta, name, status, spec, v;
	char addresses[sizeof(k->addresses)] = "[]", cidrs[sizeof(k->pod_cidrs)] = "[]";

	if (mck_member(node, "metadata", &meta) < 0 || mck_member(meta, "name", &name) < 0 ||
	    name.len != strlen(k->node_name) || memcmp(name.p, k->node_name, name.len) != 0)
		return;
	if (mck_member(node, "status", &status) == 0 && mck_member(status, "addresses", &v) == 0)
		json_strings(v, true, addresses, sizeof(addresses));
	if (mck_member(node, "spec", &spec) == 0 && mck_member(spec, "podCIDRs", &v) == 0)
		json_strings(v, false, cidrs, sizeof(cidrs));
	pthread_mutex_lock(&k->pub_lock);
	if (strcmp(addresses, k->addresses) || strcmp(cidrs, k->pod_cidrs)) {
		snprintf(k->addresses, sizeof(k->addresses), "%s", addresses);
		snprintf(k->pod_cidrs, sizeof(k->pod_cidrs), "%s", cidrs);
		k->pub_dirty = true;
		pthread_cond_signal(&k->pub_cond);
	}
	pthread_mutex_unlock(&k->pub_lock);
}

/* ---- list ---- */

static size_t on_page(char *data, size_t size, size_t n, void *userdata)
{
	struct informer *inf = userdata;
	size_t len = size * n;
	char *p;

	if (inf->page_len + len > MAX_PAGE)
		return 0;
	p = realloc(inf->page, inf->page_len + len + 1);
	if (!p)
		return 0;
	memcpy(p + inf->page_len, data, len);
	inf->page = p;
	inf->page_len += len;
	p[inf->page_len] = '\0';
	return len;
}

/* Reads continue and resourceVersion off one page, and this node's Node from a page of
 * Nodes. */
static int page_metadata(struct informer *inf, char *cont, size_t cont_size)
{
	struct mck_span doc = { inf->page, inf->page_len }, meta, v;

	cont[0] = '\0';
	if (mck_member(doc, "metadata", &meta) < 0)
		return -EBADMSG;
	if (mck_member(meta, "continue", &v) == 0 && v.len < cont_size) {
		memcpy(cont, v.p, v.len);
		cont[v.len] = '\0';
	}
	if (mck_member(meta, "resourceVersion", &v) == 0 && v.len < sizeof(inf->rv)) {
		memcpy(inf->rv, v.p, v.len);
		inf->rv[v.len] = '\0';
	}
	if (inf->kind == MC_OBJECT_NODE) {
		struct mck_span items, rest, item;

		if (mck_member(doc, "items", &items) == 0 && mck_array_inner(items, &rest) == 0)
			while (mck_array_next(&rest, &item) == 0)
				note_local_node(inf->k, item);
	}
	return 0;
}

/*
 * Lists the collection page by page and replaces the store's objects of this kind. Each page
 * is parsed as it arrives and handed to the store at once (host store_relist): the memory of a
 * large list is one page of JSON and its parsed objects, never the whole list. 0 or -errno.
 */
static int list(struct informer *inf)
{
	const unsigned kind = MC_OBJECT_KIND_BIT(inf->kind);
	struct k8s *k = inf->k;
	char url[2048], cont[1024] = "";
	unsigned flags = MC_RELIST_FIRST;
	size_t listed = 0;
	long status;
	int r;

	for (unsigned restarts = 0;;) {
		struct mc_object_list *page = NULL;
		struct mc_parse_error err = { 0 };

		snprintf(url, sizeof(url), "%s%s%climit=%d%s%s", k->server, inf->path,
			 strchr(inf->path, '?') ? '&' : '?', PAGE_LIMIT, cont[0] ? "&continue=" : "",
			 cont);
		inf->page_len = 0;
		r = get(inf, url, on_page, 120, &status);
		if (r == 0 && status != 200)
			r = status == 401 ? -EACCES : status == 410 ? -ESTALE : -EIO;
		if (r == -ESTALE && cont[0] && restarts++ < 3) {
			/* the continue token expired: the list starts again from the first page */
			cont[0] = '\0';
			flags = MC_RELIST_FIRST;
			listed = 0;
			continue;
		}
		if (r == 0)
			r = page_metadata(inf, cont, sizeof(cont));
		if (r == 0) {
			size_t skipped = 0;

			/* an object the API server should never have served (a label of a
			 * megabyte) is left out, not the whole cluster with it */
			r = mc_object_list_parse_skipping(inf->page, inf->page_len, &page, &skipped,
							  &err);
			if (r < 0)
				mc_plugin_log(k->ctx, LOG_ERR, "%s: a page of the list is malformed: %s",
					      inf->name, err.message);
			else if (skipped)
				mc_plugin_log(k->ctx, LOG_WARNING,
					      "%s: %zu object(s) of the list left out as malformed; "
					      "the last: %s", inf->name, skipped, err.message);
		}
		if (r == 0) {
			listed += mc_object_list_count(page);
			r = k->ctx->host->store_relist(k->ctx, kind, page,
						       flags | (cont[0] ? 0 : MC_RELIST_LAST));
			flags = 0;
		}
		if (r < 0 || !cont[0])
			break;
	}
	free(inf->page);
	inf->page = NULL;
	if (r == 0) {
		atomic_fetch_add(&inf->lists, 1);
		mc_plugin_log(k->ctx, LOG_INFO, "%s: listed %zu at resourceVersion %s", inf->name,
			      listed, inf->rv);
	}
	return r;
}

/* ---- watch ---- */

static int on_event(const char *line, size_t len, void *userdata)
{
	struct informer *inf = userdata;
	struct k8s *k = inf->k;
	const struct mc_host *h = k->ctx->host;
	struct mck_span doc = { line, len }, type, object, meta, rv;
	struct mc_object *obj = NULL;
	struct mc_parse_error err = { 0 };
	int r;

	if (!line) {
		mc_plugin_log(k->ctx, LOG_ERR, "%s: a watch event of more than %u bytes: rejected",
			      inf->name, MAX_LINE);
		return 0;
	}
	if (mck_member(doc, "type", &type) < 0 || mck_member(doc, "object", &object) < 0) {
		mc_plugin_log(k->ctx, LOG_ERR, "%s: a malformed watch event: rejected", inf->name);
		return -EBADMSG; /* restart the watch from the last good resourceVersion */
	}
	if (type.len == 5 && memcmp(type.p, "ERROR", 5) == 0) {
		struct mck_span code;

		if (mck_member(object, "code", &code) == 0 && code.len == 3 &&
		    memcmp(code.p, "410", 3) == 0) {
			inf->watch_result = -ESTALE;
			return -ESTALE;
		}
		mc_plugin_log(k->ctx, LOG_WARNING, "%s: the watch reported an error: %.*s", inf->name,
			      (int)(object.len < 300 ? object.len : 300), object.p);
		return -EIO;
	}
	if (mck_member(object, "metadata", &meta) == 0 &&
	    mck_member(meta, "resourceVersion", &rv) == 0 && rv.len < sizeof(inf->rv)) {
		memcpy(inf->rv, rv.p, rv.len);
		inf->rv[rv.len] = '\0';
	}
	if (type.len == 8 && memcmp(type.p, "BOOKMARK", 8) == 0)
		return 0;
	if (inf->kind == MC_OBJECT_NODE && !(type.len == 7 && memcmp(type.p, "DELETED", 7) == 0))
		note_local_node(k, object);
	r = mc_object_parse(object.p, object.len, &obj, &err);
	if (r == -ENOTSUP)
		return 0;
	if (r < 0) {
		mc_plugin_log(k->ctx, LOG_ERR, "%s: an object of a watch event is malformed: %s",
			      inf->name, err.message);
		return 0; /* that event only */
	}
	atomic_fetch_add(&inf->events, 1);
	if (type.len == 7 && memcmp(type.p, "DELETED", 7) == 0) {
		r = h->store_delete(k->ctx, mc_object_kind(obj), mc_object_namespace(obj),
				    mc_object_name(obj));
		mc_object_free(obj);
		return r == -ENOENT ? 0 : r;
	}
	return h->store_upsert(k->ctx, obj);
}

static size_t on_watch_data(char *data, size_t size, size_t n, void *userdata)
{
	struct informer *inf = userdata;
	int r = mck_lines_feed(&inf->lines, data, size * n, on_event, inf);

	/* Any error ends the request; watch_result tells a 410 from the rest. */
	if (r < 0 && !inf->watch_result)
		inf->watch_result = r;
	return r < 0 ? 0 : size * n;
}

static int watch(struct informer *inf)
{
	struct k8s *k = inf->k;
	unsigned timeout = k->timeout_min + (unsigned)rand() % (k->timeout_max - k->timeout_min + 1);
	char url[2048];
	long status;
	int r;

	snprintf(url, sizeof(url), "%s%s%cwatch=1&allowWatchBookmarks=true&timeoutSeconds=%u"
		 "&resourceVersion=%s", k->server, inf->path, strchr(inf->path, '?') ? '&' : '?',
		 timeout, inf->rv);
	mck_lines_init(&inf->lines, MAX_LINE);
	inf->watch_result = 0;
	r = get(inf, url, on_watch_data, (long)timeout + 30, &status);
	mck_lines_free(&inf->lines);
	if (inf->watch_result)
		return inf->watch_result;
	if (r == 0 && status != 200)
		r = status == 401 ? -EACCES : status == 410 ? -ESTALE : -EIO;
	return r;
}

static void notify_main_loop(struct k8s *k)
{
	uint64_t one = 1;

	(void)!write(k->notify_fd, &one, sizeof(one));
}

static void backoff_sleep(struct k8s *k, unsigned ms)
{
	/* ±20 % jitter, in slices so that a stop is seen within 100 ms */
	unsigned total = ms * 4 / 5 + (unsigned)rand() % (ms * 2 / 5 + 1);

	for (unsigned t = 0; t < total && !atomic_load(&k->stop); t += 100)
		usleep(100000);
}

static void *informer_main(void *arg)
{
	struct informer *inf = arg;
	struct k8s *k = inf->k;
	unsigned backoff = 0;
	bool need_list = true;
	uint64_t healthy_since = 0;

	while (!atomic_load(&k->stop)) {
		int r;

		if (need_list) {
			r = list(inf);
			if (r == 0) {
				need_list = false;
				if (!atomic_exchange(&inf->synced, true))
					notify_main_loop(k);
				healthy_since = now_ns();
			}
		} else {
			r = watch(inf);
			if (r == -ESTALE) {
				mc_plugin_log(k->ctx, LOG_INFO,
					      "%s: resourceVersion %s is gone (410): listing again",
					      inf->name, inf->rv);
				need_list = true;
				continue;
			}
		}
		if (r == -ECANCELED)
			break;
		if (r == -EACCES) {
			mc_plugin_log(k->ctx, LOG_WARNING, "%s: unauthorized (401): re-reading the token",
				      inf->name);
			token_refresh(k, true);
		}
		if (r == 0) {
			/* a watch that ended cleanly: again at once */
			if (backoff && now_ns() - healthy_since > HEALTHY_RESET_NS)
				backoff = 0;
			continue;
		}
		if (r != -EBADMSG)
			healthy_since = now_ns();
		backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2) :
				    BACKOFF_FIRST_MS;
		mc_plugin_log(k->ctx, r == -EBADMSG ? LOG_INFO : LOG_WARNING,
			      "%s: %s failed (%s); again in about %u ms", inf->name,
			      need_list ? "the list" : "the watch", strerror(-r), backoff);
		backoff_sleep(k, r == -EBADMSG ? 0 : backoff);
	}
	return NULL;
}

/* ---- publication: this node's MeshcryptNode ---- */

struct response {
	char buf[65536];
	size_t len;
};

static size_t on_response(char *data, size_t size, size_t n, void *userdata)
{
	struct response *r = userdata;
	size_t len = size * n, room = sizeof(r->buf) - 1 - r->len;

	memcpy(r->buf + r->len, data, len < room ? len : room);
	r->len += len < room ? len : room;
	r->buf[r->len] = '\0';
	return len;
}

/* One request of the publisher: method on url with body (NULL: none). */
static int request(struct k8s *k, const char *method, const char *url, const char *body,
		   struct response *resp, long *status)
{
	struct curl_slist *headers;
	CURL *c = easy_for(k, url, 30, &headers);

	resp->len = 0;
	resp->buf[0] = '\0';
	if (!c) {
		curl_slist_free_all(headers);
		return -ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_response);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	return perform(k, c, headers, "publication", status);
}

static void read_boot_id(char out[MC_BOOT_ID_LEN + 1])
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, out, MC_BOOT_ID_LEN) : -1;

	if (fd >= 0)
		close(fd);
	out[n == MC_BOOT_ID_LEN ? MC_BOOT_ID_LEN : 0] = '\0';
}

/*
 * Creates or updates this node's MeshcryptNode with spec (a JSON object): GET it; absent ->
 * POST; present -> PUT with its resourceVersion (optimistic concurrency); a 409 (created or
 * changed meanwhile) starts over. 0 or -errno.
 */
static int publish_spec(struct k8s *k, const char *spec)
{
	static const char base[] = "/apis/meshcrypt.io/v1alpha1/meshcryptnodes";
	struct response *resp = malloc(sizeof(*resp));
	char url[1024], *body = NULL;
	int r = -EIO;

	if (!resp)
		return -ENOMEM;
	for (int attempt = 0; attempt < 5 && !atomic_load(&k->stop); attempt++) {
		struct mck_span doc, meta, rv = { "", 0 };
		long status;
		bool exists;

		snprintf(url, sizeof(url), "%s%s/%s", k->server, base, k->node_name);
		r = request(k, "GET", url, NULL, resp, &status);
		if (r < 0)
			break;
		if (status != 200 && status != 404) {
			r = status == 401 ? -EACCES : -EIO;
			break;
		}
		exists = status == 200;
		doc = (struct mck_span){ resp->buf, resp->len };
		if (exists && (mck_member(doc, "metadata", &meta) < 0 ||
			       mck_member(meta, "resourceVersion", &rv) < 0)) {
			r = -EBADMSG;
			break;
		}
		free(body);
		if (asprintf(&body, "{\"apiVersion\":\"meshcrypt.io/v1alpha1\",\"kind\":\"MeshcryptNode\","
			     "\"metadata\":{\"name\":\"%s\"%s%.*s%s},\"spec\":%s}", k->node_name,
			     exists ? ",\"resourceVersion\":\"" : "", (int)rv.len, rv.p,
			     exists ? "\"" : "", spec) < 0) {
			body = NULL;
			r = -ENOMEM;
			break;
		}
		if (!exists)
			snprintf(url, sizeof(url), "%s%s", k->server, base);
		r = request(k, exists ? "PUT" : "POST", url, body, resp, &status);
		if (r < 0)
			break;
		if (status == 200 || status == 201) {
			mc_plugin_log(k->ctx, LOG_INFO, "published MeshcryptNode %s: %s", k->node_name,
				      spec);
			r = 0;
			break;
		}
		r = status == 409 ? -EAGAIN : status == 401 ? -EACCES : -EIO;
		if (r != -EAGAIN)
			break;
	}
	free(body);
	free(resp);
	return r;
}

static void *publisher_main(void *arg)
{
	struct k8s *k = arg;
	unsigned backoff = 0;

	while (!atomic_load(&k->stop)) {
		char spec[2048], boot[MC_BOOT_ID_LEN + 1], gen[32] = "", wg[80] = "";
		int r;

		pthread_mutex_lock(&k->pub_lock);
		/* Only once the backend has reported what to publish (its inbound side is in
		 * place) and this node's Node is known. */
		while (!atomic_load(&k->stop) &&
		       (!k->pub_dirty || !k->addresses[0] ||
			(!k->want.inbound_generation && !k->want.wireguard_public_key[0])))
			pthread_cond_wait(&k->pub_cond, &k->pub_lock);
		if (atomic_load(&k->stop)) {
			pthread_mutex_unlock(&k->pub_lock);
			break;
		}
		k->pub_dirty = false;
		read_boot_id(boot);
		if (k->want.inbound_generation)
			snprintf(gen, sizeof(gen), ",\"keyGeneration\":%u", k->want.inbound_generation);
		if (k->want.wireguard_public_key[0])
			snprintf(wg, sizeof(wg), ",\"wireguardPublicKey\":\"%s\"",
				 k->want.wireguard_public_key);
		snprintf(spec, sizeof(spec), "{\"addresses\":%s,\"bootID\":\"%s\"%s%s,\"podCIDRs\":%s}",
			 k->addresses, boot, gen, wg, k->pod_cidrs);
		pthread_mutex_unlock(&k->pub_lock);
		r = publish_spec(k, spec);
		if (r == 0 || r == -ECANCELED) {
			backoff = 0;
			continue;
		}
		if (r == -EACCES)
			token_refresh(k, true);
		backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2) :
				    BACKOFF_FIRST_MS;
		mc_plugin_log(k->ctx, LOG_WARNING, "publishing MeshcryptNode %s failed (%s); again in "
			      "about %u ms", k->node_name, strerror(-r), backoff);
		pthread_mutex_lock(&k->pub_lock);
		k->pub_dirty = true;
		pthread_mutex_unlock(&k->pub_lock);
		backoff_sleep(k, backoff);
	}
	return NULL;
}

/* The descriptor's publish: the engine hands over what the backend reported. */
static void k8s_publish(struct mc_plugin_ctx *ctx, const struct mc_publication *p)
{
	struct k8s *k = ctx->host->get_data(ctx);

	if (!k)
		return;
	pthread_mutex_lock(&k->pub_lock);
	if (p->inbound_generation != k->want.inbound_generation ||
	    strcmp(p->wireguard_public_key, k->want.wireguard_public_key) != 0) {
		k->want = *p;
		k->pub_dirty = true;
		pthread_cond_signal(&k->pub_cond);
	}
	pthread_mutex_unlock(&k->pub_lock);
}

/* ---- main loop side ---- */

static void on_notify(struct mc_plugin_ctx *ctx, int fd, uint32_t revents, void *userdata)
{
	struct k8s *k = userdata;
	char status[sizeof(k->server) + 64];
	uint64_t v;
	size_t synced = 0;

	(void)!read(fd, &v, sizeof(v));
	for (size_t i = 0; i < k->n_informers; i++)
		synced += atomic_load(&k->informers[i].synced);
	snprintf(status, sizeof(status), "%zu of %zu informers synced from %s", synced,
		 k->n_informers, k->server);
	ctx->host->set_ready(ctx, synced == k->n_informers, status);
}

static const struct mc_option k8s_options[] = {
	{ .name = "kubeconfig", .type = MC_OPTION_PATH,
	  .help = "a kubeconfig (its current context); default: in-cluster (service account)" },
	{ .name = "allow_insecure", .type = MC_OPTION_BOOL, .default_value = "no",
	  .help = "accept insecure-skip-tls-verify in the kubeconfig (never do this in production)" },
	{ .name = "key_secret", .type = MC_OPTION_STRING,
	  .default_value = "meshcrypt-system/meshcrypt-ipsec-keys",
	  .help = "namespace/name of the IPsec key Secret to watch" },
	{ .name = "watch_timeout", .type = MC_OPTION_DURATION, .default_value = "300s",
	  .min = 1000000000, .max = (int64_t)3600 * 1000000000,
	  .help = "a watch asks for timeoutSeconds between this and twice it (random)" },
	{ 0 }
};

static int add_informer(struct k8s *k, enum mc_object_kind kind, const char *name,
			const char *list_kind, const char *path)
{
	struct informer *inf = &k->informers[k->n_informers++];

	inf->k = k;
	inf->kind = kind;
	inf->name = name;
	inf->list_kind = list_kind;
	snprintf(inf->path, sizeof(inf->path), "%s", path);
	return 0;
}

/* The informers' state for /metrics, by kind. */
static int collect(struct mc_metrics_writer *w, void *userdata)
{
	struct k8s *k = userdata;
	int r = 0;

	for (size_t i = 0; r == 0 && i < k->n_informers; i++) {
		struct informer *inf = &k->informers[i];
		struct mc_metrics_label kind = { "kind", mc_object_kind_name(inf->kind) };

		r = mc_metrics_write_gauge(w, "meshcrypt_k8s_informer_synced",
					   "1 once the informer's list is complete and it watches",
					   &kind, 1, atomic_load(&inf->synced));
		if (r == 0)
			r = mc_metrics_write_counter(w, "meshcrypt_k8s_lists_total",
						     "complete lists (the first, and relists)", &kind,
						     1, (double)atomic_load(&inf->lists));
		if (r == 0)
			r = mc_metrics_write_counter(w, "meshcrypt_k8s_watch_events_total",
						     "watch events applied to the store", &kind, 1,
						     (double)atomic_load(&inf->events));
	}
	return r;
}

static int k8s_init(struct mc_plugin_ctx *ctx)
{
	const struct mc_host *h = ctx->host;
	const char *kubeconfig = h->config_string(ctx, "kubeconfig");
	const char *secret = h->config_string(ctx, "key_secret");
	const char *ca = NULL, *token = NULL;
	char error[512];
	int r;
	uint64_t timeout = h->config_duration_ns(ctx, "watch_timeout");
	char path[1024], ns[256];
	const char *slash;
	struct k8s *k;

	if (!MC_HOST_HAS(h, store_relist)) {
		h->log(ctx, LOG_ERR, "this meshcryptd is too old: the k8s source needs ABI 1.4");
		return -EPROTO;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	h->set_data(ctx, k);
	k->ctx = ctx;
	k->notify_fd = -1;
	k->node_name = h->node_name(ctx);
	pthread_mutex_init(&k->token_lock, NULL);
	pthread_mutex_init(&k->pub_lock, NULL);
	pthread_cond_init(&k->pub_cond, NULL);
	if (kubeconfig) {
		r = mck_kubeconfig_load(kubeconfig, &k->creds, error, sizeof(error));
		if (r < 0) {
			h->log(ctx, LOG_ERR, "[plugin.k8s] kubeconfig %s: %s", kubeconfig, error);
			return r;
		}
		if (k->creds.insecure && !h->config_bool(ctx, "allow_insecure")) {
			h->log(ctx, LOG_ERR, "[plugin.k8s] kubeconfig %s: insecure-skip-tls-verify is "
			       "refused (allow_insecure = yes accepts it)", kubeconfig);
			return -EPERM;
		}
		if (k->creds.insecure)
			h->log(ctx, LOG_WARNING, "the API server's certificate is not verified "
			       "(insecure-skip-tls-verify, allow_insecure = yes)");
		k->insecure = k->creds.insecure;
		snprintf(k->server, sizeof(k->server), "%s", k->creds.server);
		ca = k->creds.ca_file;
		token = k->creds.token_file;
		if (k->creds.token)
			snprintf(k->token, sizeof(k->token), "%s", k->creds.token);
	} else {
		const char *host = getenv("KUBERNETES_SERVICE_HOST");
		const char *port = getenv("KUBERNETES_SERVICE_PORT");

		if (!host || !port) {
			h->log(ctx, LOG_ERR, "not in a cluster (no KUBERNETES_SERVICE_HOST/PORT) and no "
			       "[plugin.k8s] kubeconfig");
			return -EINVAL;
		}
		snprintf(k->server, sizeof(k->server), strchr(host, ':') ? "https://[%s]:%s" :
			 "https://%s:%s", host, port);
		if (!ca)
			ca = SA_DIR "/ca.crt";
		if (!token)
			token = SA_DIR "/token";
	}
	for (size_t n = strlen(k->server); n && k->server[n - 1] == '/'; n--)
		k->server[n - 1] = '\0';
	if (strncmp(k->server, "https://", 8) != 0) {
		h->log(ctx, LOG_ERR, "[plugin.k8s] server %s: only https is allowed", k->server);
		return -EINVAL;
	}
	snprintf(k->ca_file, sizeof(k->ca_file), "%s", ca ? ca : "");
	snprintf(k->token_file, sizeof(k->token_file), "%s", token ? token : "");
	k->timeout_min = (unsigned)(timeout / 1000000000u);
	k->timeout_max = 2 * k->timeout_min;
	token_refresh(k, true);
	slash = strchr(secret, '/');
	if (!slash || slash == secret || !slash[1]) {
		h->log(ctx, LOG_ERR, "[plugin.k8s] key_secret must be namespace/name, not \"%s\"",
		       secret);
		return -EINVAL;
	}
	snprintf(ns, sizeof(ns), "%.*s", (int)(slash - secret), secret);
	add_informer(k, MC_OBJECT_NODE, "nodes", "NodeList", "/api/v1/nodes");
	add_informer(k, MC_OBJECT_NAMESPACE, "namespaces", "NamespaceList", "/api/v1/namespaces");
	add_informer(k, MC_OBJECT_POD, "pods", "PodList",
		     "/api/v1/pods?fieldSelector=spec.hostNetwork%3Dfalse");
	add_informer(k, MC_OBJECT_MESHCRYPT_NODE, "meshcryptnodes", "MeshcryptNodeList",
		     "/apis/meshcrypt.io/v1alpha1/meshcryptnodes");
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets?fieldSelector=metadata.name%%3D%s",
		 ns, slash + 1);
	add_informer(k, MC_OBJECT_SECRET, "the key Secret", "SecretList", path);
	if (h->metrics(ctx) &&
	    !(k->collector = mc_metrics_register(h->metrics(ctx), "source/k8s", collect, k)))
		h->log(ctx, LOG_WARNING, "informer metrics: %s (not exported)", strerror(errno));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	return 0;
}

static int k8s_start(struct mc_plugin_ctx *ctx)
{
	struct k8s *k = ctx->host->get_data(ctx);
	int r;

	k->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->notify_fd < 0)
		return -errno;
	r = ctx->host->io_add(ctx, k->notify_fd, EPOLLIN, on_notify, k, &k->notify_io);
	if (r < 0)
		return r;
	ctx->host->set_ready(ctx, false, "listing from the API server");
	for (size_t i = 0; i < k->n_informers; i++) {
		r = -pthread_create(&k->informers[i].thread, NULL, informer_main, &k->informers[i]);
		if (r < 0)
			return r;
		k->informers[i].started = true;
	}
	r = -pthread_create(&k->publisher, NULL, publisher_main, k);
	if (r < 0)
		return r;
	k->publisher_started = true;
	return 0;
}

static void k8s_stop(struct mc_plugin_ctx *ctx)
{
	struct k8s *k = ctx->host->get_data(ctx);

	if (!k)
		return;
	atomic_store(&k->stop, true);
	pthread_mutex_lock(&k->pub_lock);
	pthread_cond_broadcast(&k->pub_cond);
	pthread_mutex_unlock(&k->pub_lock);
	if (k->publisher_started) {
		pthread_join(k->publisher, NULL);
		k->publisher_started = false;
	}
	for (size_t i = 0; i < k->n_informers; i++)
		if (k->informers[i].started) {
			pthread_join(k->informers[i].thread, NULL);
			k->informers[i].started = false;
		}
	ctx->host->io_remove(k->notify_io);
	k->notify_io = NULL;
}

static void k8s_fini(struct mc_plugin_ctx *ctx)
{
	struct k8s *k = ctx->host->get_data(ctx);

	if (!k)
		return;
	k8s_stop(ctx);
	mc_metrics_unregister(k->collector);
	if (k->notify_fd >= 0)
		close(k->notify_fd);
	explicit_bzero(k->token, sizeof(k->token));
	mck_credentials_clear(&k->creds);
	pthread_mutex_destroy(&k->token_lock);
	pthread_mutex_destroy(&k->pub_lock);
	pthread_cond_destroy(&k->pub_cond);
	free(k);
	ctx->host->set_data(ctx, NULL);
}

MC_PLUGIN_DEFINE(.name = "k8s", .kind = MC_PLUGIN_SOURCE,
		 .description = "the cluster from the Kubernetes API (list+watch)",
		 .version = "0.1.0",
		 .options = k8s_options,
		 .init = k8s_init,
		 .start = k8s_start,
		 .stop = k8s_stop,
		 .fini = k8s_fini,
		 .publish = k8s_publish);
