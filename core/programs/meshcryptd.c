/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* meshcryptd: the node agent. A thin program on libmeshcrypt's engine. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "build-config.h"
#include "config.h"
#include "control.h"
#include "engine.h"
#include "log.h"
#include "metrics-http.h"
#include "plugin-loader.h"
#include "util.h"

struct daemon {
	const char *config_path;
	const char *plugin_dir; /* --plugin-dir, overrides [core] plugin_dir */
	bool dry_run, once;
	sd_event *event;
	struct mc_engine *engine;
	struct mc_control *control;
	struct mc_metrics_http *metrics;
	uint64_t watchdog_usec; /* WatchdogSec= as systemd passed it; 0: no watchdog */
	bool watchdog_starved;  /* a worker is stuck: pings withheld (logged once) */
	int exit_code;
};

/*
 * Every half watchdog interval: WATCHDOG=1, but only while the loop runs (this is the loop)
 * and no worker has spent a whole interval on one key. A stuck worker gets the agent restarted
 * by systemd, which leaves the dataplane in place.
 */
static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct daemon *d = userdata;
	unsigned stuck = 0;

	if (mc_engine_workers_alive(d->engine, d->watchdog_usec * 1000, &stuck)) {
		if (d->watchdog_starved)
			mc_log_notice("the reconcile workers are moving again: systemd watchdog pings "
				      "resume");
		d->watchdog_starved = false;
		sd_notify(false, "WATCHDOG=1");
	} else if (!d->watchdog_starved) {
		d->watchdog_starved = true;
		mc_log_error("reconcile worker %u has been on one key for more than %llu ms: no "
			     "systemd watchdog pings until it moves (systemd restarts a hung agent)",
			     stuck, (unsigned long long)(d->watchdog_usec / 1000));
	}
	(void)sd_event_source_set_time(s, usec + d->watchdog_usec / 2);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static void help(void)
{
	printf("Usage: meshcryptd [OPTIONS]\n"
	       "Transparent pod-to-pod encryption agent for Kubernetes nodes.\n\n"
	       "  -c, --config FILE       configuration file [%s/meshcryptd.conf]\n"
	       "      --plugin-dir DIR    load plugins from DIR instead of [core] plugin_dir\n"
	       "      --check-config      validate the configuration and its plugins, then exit\n"
	       "      --cleanup           remove every kernel object and file of ours, then exit\n"
	       "      --list-plugins      list the plugins in the plugin directory, then exit\n"
	       "      --dry-run           use the dryrun backend and no attach plugin\n"
	       "      --once              sync once, reconcile, print the plan, then exit\n"
	       "  -v, --verbose           log debug messages\n"
	       "      --version           print the version and the plugin ABI, then exit\n"
	       "  -h, --help              print this help, then exit\n",
	       MC_SYSCONFDIR);
}

/* Loads and validates a configuration and its plugins into a new engine, logging why not. */
static int prepare_engine(struct daemon *d, struct mc_engine **out)
{
	struct mc_config_error err;
	struct mc_config *cfg;
	char error[1024];
	int r;

	r = mc_config_load(d->config_path, &cfg, &err);
	if (r < 0) {
		mc_log_error("%s", err.message);
		return r;
	}
	if (d->plugin_dir && (r = mc_config_set_plugin_dir(cfg, d->plugin_dir)) < 0) {
		mc_config_free(cfg);
		return mc_log_error_errno(r, "--plugin-dir: %m");
	}
	if (d->dry_run) {
		cfg->slots[MC_SLOT_BACKEND].plugin = "dryrun";
		cfg->slots[MC_SLOT_ATTACH].plugin = "none";
	}
	r = mc_engine_new(cfg, d->event, out, error, sizeof(error));
	if (r < 0)
		mc_log_error("%s", error);
	return r;
}

static void on_ready(struct mc_engine *e, bool ready, const char *status, void *userdata)
{
	struct daemon *d = userdata;

	sd_notifyf(false, "STATUS=%s%s", ready ? "" : "not ready: ", status);
	if (d->once) {
		d->exit_code = ready ? EXIT_SUCCESS : EXIT_FAILURE;
		if (!ready)
			mc_log_error("source not ready: %s", status);
		sd_event_exit(d->event, 0);
	}
}

static int start_engine(struct daemon *d, struct mc_engine *e)
{
	int r;

	mc_engine_on_ready(e, on_ready, d);
	r = mc_engine_start(e);
	if (r < 0)
		return r;
	d->engine = e;
	if (!d->once) {
		const char *listen = mc_engine_config(e)->metrics_listen;

		r = mc_control_new(d->event, mc_engine_config(e)->run_dir, &d->engine, &d->control);
		if (r < 0)
			mc_log_errno(LOG_WARNING, r, "control socket in %s: %m (meshcryptctl will not "
				     "reach this daemon)", mc_engine_config(e)->run_dir);
		/* Metrics are worth a warning, never the dataplane. */
		r = listen[0] ? mc_metrics_http_new(d->event, listen, &d->engine, &d->metrics) : 0;
		if (r < 0)
			mc_log_errno(LOG_WARNING, r, "metrics endpoint %s: %m (no Prometheus metrics "
				     "from this daemon)", listen);
	}
	return 0;
}

/* The control socket and the metrics endpoint, which the next engine opens anew. */
static void close_endpoints(struct daemon *d)
{
	mc_control_free(d->control);
	d->control = NULL;
	mc_metrics_http_free(d->metrics);
	d->metrics = NULL;
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct daemon *d = userdata;
	struct mc_engine *next, *prev;
	int r;

	mc_log_info("reloading %s", d->config_path);
	sd_notify(false, "RELOADING=1");
	if (prepare_engine(d, &next) < 0) {
		mc_log_error("reload failed: keeping the running configuration");
		sd_notify(false, "READY=1");
		return 0;
	}
	/* The dataplane stays in place across the swap; the new engine reconciles it. The old
	 * engine is only stopped, so that it can start again if the new one does not. */
	close_endpoints(d);
	prev = d->engine;
	d->engine = NULL;
	mc_engine_stop(prev);
	r = start_engine(d, next);
	if (r < 0) {
		mc_engine_free(next);
		mc_log_error_errno(r, "reload: the new configuration failed to start: %m");
		r = start_engine(d, prev);
		if (r < 0) {
			mc_engine_free(prev);
			mc_log_error_errno(r, "reload: the previous configuration failed to start "
					   "again: %m");
			d->exit_code = EXIT_FAILURE;
			return sd_event_exit(d->event, 0);
		}
		mc_log_info("reload: the previous configuration started again");
		sd_notify(false, "READY=1");
		return 0;
	}
	(void)mc_engine_cleanup_replaced_backend(prev, d->engine);
	mc_engine_free(prev);
	sd_notify(false, "READY=1");
	return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct daemon *d = userdata;

	mc_log_info("received %s, stopping", strsignal((int)si->ssi_signo));
	sd_notify(false, "STOPPING=1");
	return sd_event_exit(d->event, 0);
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static void list_one(const char *path, const struct mc_loaded_plugin *p, int r,
		     const char *error, void *userdata)
{
	const struct mc_plugin *desc;
	int *refused = userdata;

	if (r < 0) {
		printf("refused  %s\n", error);
		(*refused)++;
		return;
	}
	desc = mc_loaded_plugin_descriptor(p);
	/* The description last, as it has no bound; the header line names the directory. */
	printf("%-8s %-12s ABI %u.%u  %-24s %s\n", mc_plugin_kind_name(desc->kind), desc->name,
	       MC_PLUGIN_ABI_GET_MAJOR(desc->abi_version), MC_PLUGIN_ABI_GET_MINOR(desc->abi_version),
	       basename_of(path), desc->description ? desc->description : "");
}

static int list_plugins(struct daemon *d)
{
	const char *dir = d->plugin_dir ? d->plugin_dir : MC_PLUGINDIR;
	struct mc_config_error err;
	struct mc_config *cfg = NULL;
	int refused = 0, r;

	/* The directory of the configuration file if there is one, else the built-in one. */
	if (!d->plugin_dir && mc_config_load(d->config_path, &cfg, &err) == 0)
		dir = cfg->plugin_dir;
	printf("plugin directory %s (meshcryptd ABI %u.%u)\n", dir, MC_PLUGIN_ABI_MAJOR,
	       MC_PLUGIN_ABI_MINOR);
	r = mc_plugin_list(dir, list_one, &refused);
	if (r < 0)
		mc_log_error_errno(r, "cannot list plugins in %s: %m", dir);
	mc_config_free(cfg);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int cleanup(struct daemon *d)
{
	struct mc_engine *e;
	int r;

	r = sd_event_default(&d->event);
	if (r < 0)
		return mc_log_error_errno(r, "sd-event: %m"), EXIT_FAILURE;
	if (prepare_engine(d, &e) < 0) {
		sd_event_unref(d->event);
		return EXIT_FAILURE;
	}
	r = mc_engine_cleanup(e);
	mc_engine_free(e);
	sd_event_unref(d->event);
	if (r < 0)
		return EXIT_FAILURE;
	mc_log_info("cleanup done: this node's meshcrypt objects are removed");
	return EXIT_SUCCESS;
}

static int run(struct daemon *d, bool check_only)
{
	struct mc_engine *e;
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* A peer that goes away must cost an EPIPE, never the daemon (the control socket sends
	 * with MSG_NOSIGNAL; this covers any other socket or pipe). */
	signal(SIGPIPE, SIG_IGN);
	r = sd_event_default(&d->event);
	if (r < 0)
		return mc_log_error_errno(r, "sd-event: %m"), EXIT_FAILURE;
	/* Under WatchdogSec=, the loop itself sends WATCHDOG=1 (on_watchdog). */
	if (sd_watchdog_enabled(false, &d->watchdog_usec) > 0 &&
	    (r = sd_event_add_time_relative(d->event, NULL, CLOCK_MONOTONIC, d->watchdog_usec / 2,
					    d->watchdog_usec / 20, on_watchdog, d)) < 0)
		mc_log_errno(LOG_WARNING, r, "systemd watchdog: %m (not kept alive)");

	/* Every way out, --check-config and a refused configuration too, goes through "out": the
	 * event loop is ours to unref (tests/analyze/run fails on what is left at exit). */
	if (prepare_engine(d, &e) < 0) {
		d->exit_code = EXIT_FAILURE;
		goto out;
	}
	if (check_only) {
		printf("%s: configuration valid\n", d->config_path);
		mc_engine_free(e);
		goto out;
	}
	if (sd_event_add_signal(d->event, NULL, SIGTERM, on_terminate, d) < 0 ||
	    sd_event_add_signal(d->event, NULL, SIGINT, on_terminate, d) < 0 ||
	    sd_event_add_signal(d->event, NULL, SIGHUP, on_reload, d) < 0) {
		mc_engine_free(e);
		mc_log_error("cannot watch signals");
		d->exit_code = EXIT_FAILURE;
		goto out;
	}
	r = start_engine(d, e);
	if (r < 0) {
		mc_engine_free(e);
		d->exit_code = EXIT_FAILURE;
		goto out;
	}
	mc_log_info("meshcryptd %s started on node %s", PACKAGE_VERSION,
		    mc_engine_config(e)->node_name);
	sd_notify(false, "READY=1");
	r = sd_event_loop(d->event);
	if (r < 0) {
		mc_log_error_errno(r, "event loop: %m");
		d->exit_code = EXIT_FAILURE;
	}
	if (d->once && d->engine && d->exit_code == EXIT_SUCCESS) {
		mc_engine_drain(d->engine);
		if (mc_engine_write_plan(d->engine, stdout) < 0)
			d->exit_code = EXIT_FAILURE;
	}
out:
	close_endpoints(d);
	mc_engine_free(d->engine);
	sd_event_unref(d->event);
	return d->exit_code;
}

int main(int argc, char **argv)
{
	enum { OPT_PLUGIN_DIR = 256, OPT_CHECK, OPT_LIST, OPT_DRY_RUN, OPT_ONCE, OPT_VERSION,
	       OPT_CLEANUP };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "cleanup", no_argument, NULL, OPT_CLEANUP },
		{ "list-plugins", no_argument, NULL, OPT_LIST },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct daemon d = { .config_path = MC_SYSCONFDIR "/meshcryptd.conf" };
	_cleanup_free_ char *plugin_dir = NULL;
	bool check = false, list = false, clean = false;
	int c;

	/*
	 * Keys pass through buffers no single owner can lock and mark (libcurl's for the key
	 * Secret, the store's copy of it): a core dump would hold them. Not dumpable: no core file,
	 * and no other process of the same user may read this one's memory (ptrace, /proc/PID/mem).
	 */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	while ((c = getopt_long(argc, argv, "c:vh", options, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case OPT_PLUGIN_DIR:
			/* relative to the working directory, as a user typing it expects */
			free(plugin_dir);
			plugin_dir = realpath(optarg, NULL);
			d.plugin_dir = plugin_dir ? plugin_dir : optarg;
			break;
		case OPT_CHECK:
			check = true;
			break;
		case OPT_LIST:
			list = true;
			break;
		case OPT_CLEANUP:
			clean = true;
			break;
		case OPT_DRY_RUN:
			d.dry_run = true;
			break;
		case OPT_ONCE:
			d.once = true;
			break;
		case 'v':
			mc_log_set_max_level(LOG_DEBUG);
			break;
		case OPT_VERSION:
			printf("meshcryptd %s (plugin ABI %u.%u)\n", PACKAGE_VERSION,
			       MC_PLUGIN_ABI_MAJOR, MC_PLUGIN_ABI_MINOR);
			return EXIT_SUCCESS;
		case 'h':
			help();
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'meshcryptd --help'.\n");
			return EXIT_FAILURE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "meshcryptd: unexpected argument \"%s\"; try 'meshcryptd --help'.\n",
			argv[optind]);
		return EXIT_FAILURE;
	}
	if (list)
		return list_plugins(&d);
	if (clean)
		return cleanup(&d);
	return run(&d, check);
}
