/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dryrun backend (plugins/backend-dryrun/dryrun.c) against the fake host: one NOTICE line
 * per change and nothing for a repeated state, the state file across a restart, gc of peers
 * and of pod IPs, cleanup. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake-host.h"
#include "test-util.h"

#define BOOT_ID_1 "11111111-2222-3333-4444-555555555555"
#define BOOT_ID_2 "66666666-7777-8888-9999-000000000000"

struct fixture {
	char *dir;
	char state_file[512];
	struct fake_host *fh;
	struct mc_plugin_ctx *ctx;
	bool inited;
};

/* ---- hand-built states (store.h) ---- */

struct peer {
	struct mc_peer_state s;
	char name[64];
	struct mc_ip addresses[2];
	struct mc_prefix prefixes[2];
};

static void make_peer(struct peer *p, const char *name, uint16_t index, const char *address,
		      const char *prefix)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->addresses[0] = fake_ip(address);
	p->prefixes[0] = fake_prefix(prefix);
	p->s = (struct mc_peer_state){
		.peer_id = index + 100u,
		.name = p->name,
		.present = true,
		.addresses = p->addresses,
		.n_addresses = 1,
		.key_generation = 1,
		.prefixes = p->prefixes,
		.n_prefixes = 1,
		.peer_index = index,
	};
	snprintf(p->s.boot_id, sizeof(p->s.boot_id), "%s", BOOT_ID_2);
}

struct local {
	struct mc_local_state s;
	char name[64];
	struct mc_ip addresses[2];
	struct mc_prefix cidrs[2];
};

static void make_local(struct local *l)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "node-1");
	l->addresses[0] = fake_ip("10.0.0.1");
	l->addresses[1] = fake_ip("fd00::1");
	l->cidrs[0] = fake_prefix("10.244.0.0/24");
	l->s = (struct mc_local_state){
		.name = l->name,
		.known = true,
		.participating = true,
		.addresses = l->addresses,
		.n_addresses = 2,
		.key_generation = 3,
		.pod_cidrs = l->cidrs,
		.n_pod_cidrs = 1,
	};
	snprintf(l->s.boot_id, sizeof(l->s.boot_id), "%s", BOOT_ID_1);
}

static struct mc_pod_state make_pod(const char *ip, enum mc_pod_role role, uint32_t peer_id,
				    uint16_t index)
{
	struct mc_pod_state pod;

	memset(&pod, 0, sizeof(pod));
	pod.ip = fake_ip(ip);
	pod.role = role;
	pod.peer_id = peer_id;
	pod.peer_index = index;
	return pod;
}

/* ---- the plugin's lifecycle ---- */

static void plugin_init(struct fixture *fx)
{
	assert_int_equal(meshcrypt_plugin.init(fx->ctx), 0);
	fx->inited = true;
}

/* stop + fini, as at shutdown. */
static void plugin_shutdown(struct fixture *fx)
{
	meshcrypt_plugin.stop(fx->ctx);
	meshcrypt_plugin.fini(fx->ctx);
	fx->inited = false;
	assert_null(fake_host_host(fx->fh)->get_data(fx->ctx));
}

/* A restart: stop + fini, then init on the same state_dir with a fresh log. */
static void plugin_restart(struct fixture *fx)
{
	plugin_shutdown(fx);
	fake_host_log_clear(fx->fh);
	plugin_init(fx);
	assert_int_equal(fake_host_log_count(fx->fh), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->dir = test_tmpdir();
	snprintf(fx->state_file, sizeof(fx->state_file), "%s/dryrun.state", fx->dir);
	fx->fh = fake_host_new();
	fx->ctx = fake_host_ctx(fx->fh);
	fake_host_set_state_dir(fx->fh, fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->inited)
		meshcrypt_plugin.fini(fx->ctx);
	assert_int_equal(fake_host_open_handles(fx->fh), 0);
	fake_host_free(fx->fh);
	test_rmtree(fx->dir);
	free(fx);
	return 0;
}

/* Exactly one line was logged since the last clear: a NOTICE equal to want. Clears the log. */
static void expect_one(struct fixture *fx, const char *want)
{
	int level = -1;
	const char *line = fake_host_log_line(fx->fh, 0, &level);

	if (fake_host_log_count(fx->fh) != 1 || !line || strcmp(line, want) != 0 ||
	    level != LOG_NOTICE) {
		fprintf(stderr, "wanted one NOTICE line: %s\n", want);
		fake_host_log_dump(fx->fh);
		fail();
	}
	fake_host_log_clear(fx->fh);
}

static void expect_none(struct fixture *fx)
{
	if (fake_host_log_count(fx->fh) != 0) {
		fprintf(stderr, "wanted nothing logged\n");
		fake_host_log_dump(fx->fh);
		fail();
	}
}

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *out;
	int c;

	if (!f)
		return NULL;
	out = open_memstream(&buf, &len);
	if (!out)
		abort();
	while ((c = fgetc(f)) != EOF)
		fputc(c, out);
	fclose(f);
	fclose(out);
	return buf;
}

static int peer_apply(struct fixture *fx, const struct peer *p)
{
	return meshcrypt_plugin.dataplane->peer_apply(fx->ctx, &p->s);
}

static int pod_apply(struct fixture *fx, const struct mc_pod_state *pod)
{
	return meshcrypt_plugin.dataplane->pod_apply(fx->ctx, pod);
}

static int gc(struct fixture *fx, const struct peer *const *peers, size_t n)
{
	const struct mc_peer_state *states[8];

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		states[i] = &peers[i]->s;
	return meshcrypt_plugin.dataplane->gc(fx->ctx, states, n);
}

/* ---- tests ---- */

static void test_descriptor(void **state)
{
	assert_string_equal(meshcrypt_plugin.name, "dryrun");
	assert_int_equal(meshcrypt_plugin.kind, MC_PLUGIN_BACKEND);
	assert_int_equal(meshcrypt_plugin.abi_version, MC_PLUGIN_ABI_VERSION);
	assert_non_null(meshcrypt_plugin.dataplane);
	assert_int_equal(meshcrypt_plugin.dataplane->struct_size, sizeof(struct mc_dataplane_ops));
	assert_non_null(meshcrypt_plugin.dataplane->local_apply);
	assert_non_null(meshcrypt_plugin.dataplane->peer_apply);
	assert_non_null(meshcrypt_plugin.dataplane->pod_apply);
	assert_non_null(meshcrypt_plugin.dataplane->gc);
	assert_non_null(meshcrypt_plugin.cleanup);
	(void)state;
}

static void test_local(void **state)
{
	struct fixture *fx = *state;
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct local l;

	make_local(&l);
	plugin_init(fx);
	expect_none(fx);
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	expect_one(fx, "local: node node-1, addresses 10.0.0.1 fd00::1, boot ID " BOOT_ID_1
		       ", generation 3, pod CIDRs 10.244.0.0/24");
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	expect_none(fx);

	l.s.key_generation = 4;
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	expect_one(fx, "local: node node-1, addresses 10.0.0.1 fd00::1, boot ID " BOOT_ID_1
		       ", generation 4, pod CIDRs 10.244.0.0/24");
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	expect_none(fx);

	/* no addresses, CIDRs or boot ID yet */
	l.s.n_addresses = 0;
	l.s.n_pod_cidrs = 0;
	l.s.boot_id[0] = '\0';
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	expect_one(fx, "local: node node-1, addresses none, boot ID none, generation 4, "
		       "pod CIDRs none");

	/* not participating: removed once */
	l.s.participating = false;
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	expect_one(fx, "local: remove");
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	expect_none(fx);
}

static void test_peer(void **state)
{
	struct fixture *fx = *state;
	struct peer p;

	make_peer(&p, "node-2", 1, "10.0.0.2", "10.244.1.0/24");
	plugin_init(fx);
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_one(fx, "peer node-2: index 1, addresses 10.0.0.2, boot ID " BOOT_ID_2
		       ", generation 1, prefixes 10.244.1.0/24");
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_none(fx);

	/* a changed peer logs once */
	p.prefixes[1] = fake_prefix("10.244.9.7/32");
	p.s.n_prefixes = 2;
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_one(fx, "peer node-2: index 1, addresses 10.0.0.2, boot ID " BOOT_ID_2
		       ", generation 1, prefixes 10.244.1.0/24 10.244.9.7/32");
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_none(fx);

	p.s.boot_id[0] = 'f';
	assert_int_equal(peer_apply(fx, &p), 0);
	assert_int_equal(fake_host_log_count(fx->fh), 1);
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "boot ID f6666666-"));
	fake_host_log_clear(fx->fh);
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_none(fx);

	/* not present: removed once; a peer never installed is not removed */
	p.s.present = false;
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_one(fx, "peer node-2: remove");
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_none(fx);
	make_peer(&p, "node-9", 9, "10.0.0.9", "10.244.9.0/24");
	p.s.present = false;
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_none(fx);
}

/* A 1.0 core hands out states without peer_index: the plugin must not read it. */
static void test_peer_index_on_old_core(void **state)
{
	struct fixture *fx = *state;
	struct mc_host *host = fake_host_host(fx->fh);
	struct peer p;
	struct mc_pod_state pod = make_pod("10.244.1.5", MC_POD_REMOTE_MANAGED, 101, 1);

	host->peer_state_size = offsetof(struct mc_peer_state, peer_index);
	host->pod_state_size = offsetof(struct mc_pod_state, peer_index);
	make_peer(&p, "node-2", 7, "10.0.0.2", "10.244.1.0/24");
	plugin_init(fx);
	assert_int_equal(peer_apply(fx, &p), 0);
	expect_one(fx, "peer node-2: index 0, addresses 10.0.0.2, boot ID " BOOT_ID_2
		       ", generation 1, prefixes 10.244.1.0/24");
	assert_int_equal(pod_apply(fx, &pod), 0);
	expect_one(fx, "pod 10.244.1.5: managed, on peer index 0");
}

static void test_pod(void **state)
{
	struct fixture *fx = *state;
	struct mc_pod_state local = make_pod("10.244.0.7", MC_POD_LOCAL_MANAGED, 0, 0);
	struct mc_pod_state remote = make_pod("10.244.1.5", MC_POD_REMOTE_MANAGED, 101, 1);
	struct mc_pod_state v6 = make_pod("fd00:10:244:1::5", MC_POD_REMOTE_MANAGED, 102, 2);

	plugin_init(fx);
	assert_int_equal(pod_apply(fx, &local), 0);
	expect_one(fx, "pod 10.244.0.7: managed, local");
	assert_int_equal(pod_apply(fx, &local), 0);
	expect_none(fx);
	assert_int_equal(pod_apply(fx, &remote), 0);
	expect_one(fx, "pod 10.244.1.5: managed, on peer index 1");
	assert_int_equal(pod_apply(fx, &remote), 0);
	expect_none(fx);
	assert_int_equal(pod_apply(fx, &v6), 0);
	expect_one(fx, "pod fd00:10:244:1::5: managed, on peer index 2");
	assert_int_equal(pod_apply(fx, &v6), 0);
	expect_none(fx);

	/* moved to another peer */
	remote.peer_id = 102;
	remote.peer_index = 2;
	assert_int_equal(pod_apply(fx, &remote), 0);
	expect_one(fx, "pod 10.244.1.5: managed, on peer index 2");

	/* no longer managed */
	local.role = MC_POD_NONE;
	assert_int_equal(pod_apply(fx, &local), 0);
	expect_one(fx, "pod 10.244.0.7: remove");
	assert_int_equal(pod_apply(fx, &local), 0);
	expect_none(fx);
}

/* Stop writes the state file; a new instance loads it and re-applying logs nothing. */
static void test_restart(void **state)
{
	struct fixture *fx = *state;
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct local l;
	struct peer p2, p3;
	struct mc_pod_state pod = make_pod("10.244.1.5", MC_POD_REMOTE_MANAGED, 101, 1);
	char *text;

	make_local(&l);
	make_peer(&p2, "node-2", 1, "10.0.0.2", "10.244.1.0/24");
	make_peer(&p3, "node-3", 2, "10.0.0.3", "10.244.2.0/24");
	plugin_init(fx);
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	assert_int_equal(peer_apply(fx, &p2), 0);
	assert_int_equal(peer_apply(fx, &p3), 0);
	assert_int_equal(pod_apply(fx, &pod), 0);
	assert_int_equal(fake_host_log_count(fx->fh), 4);
	assert_false(file_exists(fx->state_file)); /* written at stop, not at each apply */

	meshcrypt_plugin.stop(fx->ctx);
	text = slurp(fx->state_file);
	assert_non_null(text);
	assert_non_null(strstr(text, "local\tnode node-1, "));
	assert_non_null(strstr(text, "peer node-2\tindex 1, "));
	assert_non_null(strstr(text, "peer node-3\tindex 2, "));
	assert_non_null(strstr(text, "pod 10.244.1.5\tmanaged, on peer index 1\n"));
	free(text);
	meshcrypt_plugin.fini(fx->ctx);
	fx->inited = false;

	fake_host_log_clear(fx->fh);
	plugin_init(fx);
	expect_none(fx);
	assert_int_equal(ops->local_apply(fx->ctx, &l.s), 0);
	assert_int_equal(peer_apply(fx, &p2), 0);
	assert_int_equal(peer_apply(fx, &p3), 0);
	assert_int_equal(pod_apply(fx, &pod), 0);
	expect_none(fx);

	/* what changed while it was down is logged once */
	p3.s.key_generation = 2;
	assert_int_equal(peer_apply(fx, &p3), 0);
	assert_int_equal(fake_host_log_count(fx->fh), 1);
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "peer node-3: index 2, "));
	fake_host_log_clear(fx->fh);

	/* and survives the next restart */
	plugin_restart(fx);
	assert_int_equal(peer_apply(fx, &p3), 0);
	assert_int_equal(peer_apply(fx, &p2), 0);
	expect_none(fx);

	/* a stop with nothing changed leaves the file alone */
	plugin_restart(fx);
	plugin_restart(fx);
	assert_int_equal(peer_apply(fx, &p2), 0);
	expect_none(fx);
}

/* gc removes the peers missing from the list, keeps the others, and writes the state file. */
static void test_gc_peers(void **state)
{
	struct fixture *fx = *state;
	struct peer p2, p3, p4;
	const struct peer *listed[] = { &p2, &p4 };
	const struct peer *all[] = { &p2, &p3, &p4 };

	make_peer(&p2, "node-2", 1, "10.0.0.2", "10.244.1.0/24");
	make_peer(&p3, "node-3", 2, "10.0.0.3", "10.244.2.0/24");
	make_peer(&p4, "node-4", 3, "10.0.0.4", "10.244.3.0/24");
	plugin_init(fx);
	assert_int_equal(peer_apply(fx, &p2), 0);
	assert_int_equal(peer_apply(fx, &p3), 0);
	assert_int_equal(peer_apply(fx, &p4), 0);
	fake_host_log_clear(fx->fh);

	/* every peer listed: nothing to do */
	assert_int_equal(gc(fx, all, 3), 0);
	expect_none(fx);

	assert_int_equal(gc(fx, listed, 2), 0);
	expect_one(fx, "peer node-3: remove");
	assert_int_equal(gc(fx, listed, 2), 0);
	expect_none(fx);
	/* kept: re-applying them logs nothing */
	assert_int_equal(peer_apply(fx, &p2), 0);
	assert_int_equal(peer_apply(fx, &p4), 0);
	expect_none(fx);

	/* gc wrote the state file: a crash now (no stop) does not bring node-3 back */
	{
		char *text = slurp(fx->state_file);

		assert_non_null(text);
		assert_null(strstr(text, "node-3"));
		assert_non_null(strstr(text, "peer node-2\t"));
		assert_non_null(strstr(text, "peer node-4\t"));
		free(text);
	}
	meshcrypt_plugin.fini(fx->ctx); /* no stop */
	fx->inited = false;
	plugin_init(fx);
	assert_int_equal(peer_apply(fx, &p3), 0);
	expect_one(fx, "peer node-3: index 2, addresses 10.0.0.3, boot ID " BOOT_ID_2
		       ", generation 1, prefixes 10.244.2.0/24");

	/* a peer deleted while the agent was down: installed before, gone from the list after
	 * the restart */
	plugin_restart(fx);
	assert_int_equal(gc(fx, listed, 2), 0);
	expect_one(fx, "peer node-3: remove");

	/* an empty list removes every peer, but not the local node */
	{
		struct local l;

		make_local(&l);
		assert_int_equal(meshcrypt_plugin.dataplane->local_apply(fx->ctx, &l.s), 0);
		fake_host_log_clear(fx->fh);
	}
	assert_int_equal(gc(fx, NULL, 0), 0);
	assert_int_equal(fake_host_log_count(fx->fh), 2);
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "peer node-2: remove"));
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "peer node-4: remove"));
	assert_null(fake_host_log_find(fx->fh, -1, "local"));
}

/* gc removes a pod IP whose current role is MC_POD_NONE, as the host's pod_state says. */
static void test_gc_pods(void **state)
{
	struct fixture *fx = *state;
	struct mc_pod_state live_local = make_pod("10.244.0.7", MC_POD_LOCAL_MANAGED, 0, 0);
	struct mc_pod_state live_remote = make_pod("10.244.1.6", MC_POD_REMOTE_MANAGED, 101, 1);
	struct mc_pod_state gone = make_pod("10.244.1.5", MC_POD_REMOTE_MANAGED, 101, 1);
	struct peer p2;
	const struct peer *listed[] = { &p2 };

	make_peer(&p2, "node-2", 1, "10.0.0.2", "10.244.1.0/24");
	fake_host_set_pod_state(fx->fh, &live_local.ip, MC_POD_LOCAL_MANAGED, 0, 0);
	fake_host_set_pod_state(fx->fh, &live_remote.ip, MC_POD_REMOTE_MANAGED, 101, 1);
	plugin_init(fx);
	assert_int_equal(peer_apply(fx, &p2), 0);
	assert_int_equal(pod_apply(fx, &live_local), 0);
	assert_int_equal(pod_apply(fx, &live_remote), 0);
	assert_int_equal(pod_apply(fx, &gone), 0);
	fake_host_log_clear(fx->fh);

	assert_int_equal(gc(fx, listed, 1), 0);
	expect_one(fx, "pod 10.244.1.5: remove");
	assert_true(fake_host_pod_state_calls(fx->fh) >= 3);
	assert_int_equal(gc(fx, listed, 1), 0);
	expect_none(fx);
	assert_int_equal(pod_apply(fx, &live_local), 0);
	assert_int_equal(pod_apply(fx, &live_remote), 0);
	expect_none(fx);

	/* pod_state failing: the pod is kept (not known to be gone) */
	fake_host_set_pod_default(fx->fh, MC_POD_NONE, -ENOMEM);
	assert_int_equal(pod_apply(fx, &gone), 0);
	fake_host_log_clear(fx->fh);
	assert_int_equal(gc(fx, listed, 1), 0);
	expect_none(fx);
}

/* A 1.0 core has no pod_state: gc leaves pod IPs alone. */
static void test_gc_pods_on_old_core(void **state)
{
	struct fixture *fx = *state;
	struct mc_host *host = fake_host_host(fx->fh);
	struct mc_pod_state gone = make_pod("10.244.1.5", MC_POD_REMOTE_MANAGED, 101, 1);

	plugin_init(fx);
	assert_int_equal(pod_apply(fx, &gone), 0);
	fake_host_log_clear(fx->fh);
	host->struct_size = offsetof(struct mc_host, local_state_size);
	assert_int_equal(gc(fx, NULL, 0), 0);
	expect_none(fx);
	assert_int_equal(fake_host_pod_state_calls(fx->fh), 0);
}

/* cleanup removes everything, logging each, and the state file. */
static void test_cleanup(void **state)
{
	struct fixture *fx = *state;
	struct local l;
	struct peer p2, p3;
	struct mc_pod_state pod = make_pod("10.244.1.5", MC_POD_REMOTE_MANAGED, 101, 1);

	make_local(&l);
	make_peer(&p2, "node-2", 1, "10.0.0.2", "10.244.1.0/24");
	make_peer(&p3, "node-3", 2, "10.0.0.3", "10.244.2.0/24");
	plugin_init(fx);
	assert_int_equal(meshcrypt_plugin.dataplane->local_apply(fx->ctx, &l.s), 0);
	assert_int_equal(peer_apply(fx, &p2), 0);
	assert_int_equal(peer_apply(fx, &p3), 0);
	assert_int_equal(pod_apply(fx, &pod), 0);
	plugin_restart(fx); /* what a previous run left, as `meshcryptd --cleanup` finds it */
	assert_true(file_exists(fx->state_file));

	assert_int_equal(meshcrypt_plugin.cleanup(fx->ctx), 0);
	assert_int_equal(fake_host_log_count(fx->fh), 4);
	assert_int_equal(fake_host_log_count_level(fx->fh, LOG_NOTICE), 4);
	assert_int_equal(fake_host_log_count_matching(fx->fh, ": remove"), 4);
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "local: remove"));
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "peer node-2: remove"));
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "peer node-3: remove"));
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "pod 10.244.1.5: remove"));
	assert_false(file_exists(fx->state_file));
	{
		char tmp[600];

		snprintf(tmp, sizeof(tmp), "%s.new", fx->state_file);
		assert_false(file_exists(tmp));
	}
	fake_host_log_clear(fx->fh);

	/* a second cleanup has nothing left */
	assert_int_equal(meshcrypt_plugin.cleanup(fx->ctx), 0);
	expect_none(fx);

	/* --cleanup runs init, cleanup, fini (no stop): nothing comes back */
	meshcrypt_plugin.fini(fx->ctx);
	fx->inited = false;
	plugin_init(fx);
	assert_int_equal(peer_apply(fx, &p2), 0);
	assert_int_equal(fake_host_log_count(fx->fh), 1);
}

/* A state_dir that cannot be written: stop warns, nothing crashes. An unreadable state file
 * fails init with an error line, and fini copes. */
static void test_state_dir_errors(void **state)
{
	struct fixture *fx = *state;
	struct peer p2;
	char missing[600];

	snprintf(missing, sizeof(missing), "%s/missing", fx->dir);
	fake_host_set_state_dir(fx->fh, missing);
	make_peer(&p2, "node-2", 1, "10.0.0.2", "10.244.1.0/24");
	plugin_init(fx); /* no state file yet: fine */
	assert_int_equal(peer_apply(fx, &p2), 0);
	fake_host_log_clear(fx->fh);
	meshcrypt_plugin.stop(fx->ctx);
	assert_int_equal(fake_host_log_count_level(fx->fh, LOG_WARNING), 1);
	assert_non_null(fake_host_log_find(fx->fh, LOG_WARNING, "what it installed is forgotten"));
	meshcrypt_plugin.fini(fx->ctx);
	fx->inited = false;

	/* the state file cannot be opened (a symlink loop: ELOOP, even for root) */
	fake_host_set_state_dir(fx->fh, fx->dir);
	assert_int_equal(symlink(fx->state_file, fx->state_file), 0);
	fake_host_log_clear(fx->fh);
	assert_int_equal(meshcrypt_plugin.init(fx->ctx), -ELOOP);
	assert_non_null(fake_host_log_find(fx->fh, LOG_ERR, fx->state_file));
	meshcrypt_plugin.fini(fx->ctx);
	assert_int_equal(unlink(fx->state_file), 0);

	/* it opens but cannot be read (a directory): a read error, not an empty state */
	assert_int_equal(mkdir(fx->state_file, 0700), 0);
	fake_host_log_clear(fx->fh);
	assert_int_equal(meshcrypt_plugin.init(fx->ctx), -EISDIR);
	assert_non_null(fake_host_log_find(fx->fh, LOG_ERR, fx->state_file));
	meshcrypt_plugin.fini(fx->ctx);
	assert_int_equal(rmdir(fx->state_file), 0);
}

/* A state file with lines it does not understand: they are skipped. */
static void test_state_file_garbage(void **state)
{
	struct fixture *fx = *state;
	struct peer p2;

	make_peer(&p2, "node-2", 1, "10.0.0.2", "10.244.1.0/24");
	test_write(fx->state_file, "no tab here\n\npeer node-2\tindex 1, addresses 10.0.0.2, boot ID "
				   BOOT_ID_2 ", generation 1, prefixes 10.244.1.0/24\n"
				   "peer node-5\tindex 5, no newline at the end");
	plugin_init(fx);
	expect_none(fx);
	assert_int_equal(peer_apply(fx, &p2), 0);
	expect_none(fx);
	assert_int_equal(gc(fx, NULL, 0), 0);
	assert_int_equal(fake_host_log_count(fx->fh), 2);
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "peer node-2: remove"));
	assert_non_null(fake_host_log_find(fx->fh, LOG_NOTICE, "peer node-5: remove"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		T(test_local),
		T(test_peer),
		T(test_peer_index_on_old_core),
		T(test_pod),
		T(test_restart),
		T(test_gc_peers),
		T(test_gc_pods),
		T(test_gc_pods_on_old_core),
		T(test_cleanup),
		T(test_state_dir_errors),
		T(test_state_file_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
