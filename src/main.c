/* SPDX-License-Identifier: ISC */
/* Entry point: flags, subcommands, start-up order, signals (HUP reload, TERM drain), janitor. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "hookd/api_system.h"
#include "hookd/app.h"
#include "hookd/auth.h"
#include "hookd/capture.h"
#include "hookd/cli.h"
#include "hookd/compat.h"
#include "hookd/config.h"
#include "hookd/db.h"
#include "hookd/deliver.h"
#include "hookd/http_server.h"
#include "hookd/ingest.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/migrate.h"
#include "hookd/process.h"
#include "hookd/publish.h"
#include "hookd/seal.h"
#include "hookd/sources.h"
#include "hookd/subscriptions.h"
#include "hookd/wheel.h"

#define JANITOR_MS      1000
#define DRAIN_POLL_MS   20
#define KEY_FLUSH_EVERY 30 /* janitor ticks */

static struct app app_state;

static struct event *ev_hup, *ev_term, *ev_int, *ev_janitor, *ev_drain;
static uint64_t drain_deadline_ms;
static int exit_status;
static int verbose; /* -v given this many times */

static void
usage(FILE *f)
{
	fprintf(f, "usage: hookd [-c FILE] [-n] [-v...] [-V] [-h]\n"
	           "       hookd [-c FILE] migrate\n"
	           "       hookd [-c FILE] keys create NAME | keys list | keys revoke NAME\n"
	           "\n"
	           "  -c FILE  configuration file (key = value); environment overrides it\n"
	           "           (DATABASE_URL, HOOKD_<KEY>)\n"
	           "  -n       check the configuration and exit\n"
	           "  -v       one log level more than log_level per -v (repeatable)\n"
	           "  -V       print the versions of hookd and its libraries\n"
	           "  -h       this help\n");
}

static void
versions(void)
{
	int pq = PQlibVersion();

	printf("hookd %s\n", PACKAGE_VERSION);
	printf("libevent %s\n", event_get_version());
	printf("libpq %d.%d\n", pq / 10000, pq % 10000);
	printf("json-c %s\n", json_c_version());
	printf("libsodium %s\n", sodium_version_string());
	printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
}

/* log_level raised one step per -v (error, warn, info, debug), at most to debug. */
static enum log_level
log_level_for(int64_t configured)
{
	int64_t level = configured + verbose;

	return level > LOG_LEVEL_DEBUG ? LOG_LEVEL_DEBUG : (enum log_level)level;
}

/* Room for http_max_connections plus the pool and some slack. */
static void
raise_fd_limit(int64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if ((int64_t)rl.rlim_cur >= want + 64)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || (int64_t)rl.rlim_cur < want + 64)
		log_warn(
		    "open file limit is %llu; http_max_connections = %lld may not be reachable",
		    (unsigned long long)rl.rlim_cur, (long long)want);
}

void
app_db_options(const struct app *app, struct db_options *opt)
{
	const struct config *c = &app->cfg;

	memset(opt, 0, sizeof(*opt));
	opt->conninfo = app->database_url;
	opt->application_name = "hookd";
	opt->pool_size = (int)c->db_pool_size;
	opt->connect_timeout_ms = (int)c->db_connect_timeout;
	opt->reconnect_min_ms = (int)c->db_reconnect_min;
	opt->reconnect_max_ms = (int)c->db_reconnect_max;
	opt->pipeline_depth = (int)c->db_pipeline_depth;
	opt->statement_timeout_ms = (int)c->db_statement_timeout;
	opt->queue_timeout_ms = (int)c->db_queue_timeout;
}

static void
http_limits_from(const struct config *c, struct http_limits *lim)
{
	lim->max_body = (size_t)c->http_max_body_size;
	lim->max_header = (size_t)c->http_max_header_size;
	lim->timeout_ms = (int)c->http_timeout;
	lim->max_connections = (int)c->http_max_connections;
}

/* --- schema ------------------------------------------------------------------------- */

static void
schema_cb(const struct db_result *r, void *arg)
{
	struct app *app = arg;

	if (r->status == DB_OK) {
		const char *v = db_value(r->res[0], 0, 0);

		app->schema_version = v ? atoi(v) : 0;
	} else if (r->status == DB_ERR_SQL &&
	           (strcmp(r->sqlstate, "42P01") == 0 || strcmp(r->sqlstate, "3F000") == 0)) {
		app->schema_version = 0;
	}
	if (app->schema_version >= 0 && app->schema_version < migrate_latest() &&
	    !app->cfg.auto_migrate)
		log_warn("schema at version %d, this hookd needs %d: run hookd migrate",
		    app->schema_version, migrate_latest());
}

void
app_check_schema(struct app *app)
{
	db_query(app->db, migrate_version_sql, NULL, schema_cb, app);
}

static void
migrated_cb(int rc, int version, const char *err, void *arg)
{
	struct app *app = arg;

	app->migrating = 0;
	if (rc == 0) {
		app->schema_version = version;
		log_info("schema at version %d", version);
		/* Caches that failed to load against the old schema load now. */
		sources_refresh(app->sources);
		auth_refresh(app->auth);
		subscriptions_refresh(app->subscriptions);
	} else {
		log_error("migration failed: %s", err);
	}
}

/* Start a migration when auto_migrate is on and the schema is behind (or unknown). */
static void
maybe_migrate(struct app *app)
{
	struct db_options opt;

	if (!app->cfg.auto_migrate || app->migrating || app->draining ||
	    app->schema_version >= migrate_latest() || db_ready_count(app->db) == 0)
		return;
	app->migrating = 1;
	app_db_options(app, &opt);
	migrate_start(app->base, app->dns, &opt, migrated_cb, app);
}

static void
db_state_cb(int ready, void *arg)
{
	struct app *app = arg;

	if (ready > 0) {
		app_check_schema(app);
		maybe_migrate(app);
	}
}

/* --- signals, reload, drain ---------------------------------------------------------- */

static void
reload(struct app *app)
{
	struct config nc;
	struct http_limits lim;
	struct db_options opt;
	char *err = NULL, *fixed;

	if (config_load(&nc, app->config_path, &err) != 0) {
		log_error("reload failed, keeping the running configuration: %s", err ? err : "?");
		free(err);
		return;
	}
	fixed = config_diff_fixed(&app->cfg, &nc);
	if (fixed != NULL) {
		log_warn(
		    "reload: %s changed; that takes a restart, the running values stay", fixed);
		free(fixed);
		config_keep_fixed(&nc, &app->cfg);
	}
	config_free(&app->cfg);
	app->cfg = nc;
	log_set_level(log_level_for(app->cfg.log_level));
	http_limits_from(&app->cfg, &lim);
	http_server_set_limits(app->http, &lim);
	app_db_options(app, &opt);
	db_set_options(app->db, &opt);
	log_info("configuration reloaded");
}

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;
	int inflight = http_server_inflight(app->http), busy = db_busy(app->db);

	busy += ingest_busy(app->ingest);
	busy += process_busy(app->process);
	busy += capture_busy(app->capture);
	busy += deliver_busy(app->deliver);
	if (busy == 0 && http_server_flushed(app->http)) {
		log_info("drained; exiting");
		event_base_loopexit(app->base, NULL);
		return;
	}
	if (now_mono_ms() >= drain_deadline_ms) {
		log_warn("shutdown_timeout reached with %d request(s) and %d query group(s) in "
		         "flight; exiting",
		    inflight, busy);
		exit_status = 1;
		event_base_loopexit(app->base, NULL);
	}
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	struct timeval tv = {0, DRAIN_POLL_MS * 1000};

	if (sig == SIGHUP) {
		log_info(
		    "SIGHUP: reloading %s", app->config_path ? app->config_path : "(environment)");
		reload(app);
		return;
	}
	if (app->draining) {
		log_warn("second %s: exiting now", sig == SIGINT ? "SIGINT" : "SIGTERM");
		exit_status = 1;
		event_base_loopbreak(app->base);
		return;
	}
	log_info("%s: draining (%d request(s) in flight)", sig == SIGINT ? "SIGINT" : "SIGTERM",
	    http_server_inflight(app->http));
	app->draining = 1;
	http_server_drain(app->http);
	drain_deadline_ms = now_mono_ms() + (uint64_t)app->cfg.shutdown_timeout;
	ev_drain = event_new(app->base, -1, EV_PERSIST, drain_cb, app);
	event_add(ev_drain, &tv);
}

static void
janitor_cb(evutil_socket_t fd, short what, void *arg)
{
	static unsigned ticks;
	struct app *app = arg;

	ticks++;
	maybe_migrate(app);
	if (!sources_loaded(app->sources))
		sources_refresh(app->sources);
	if (!subscriptions_loaded(app->subscriptions))
		subscriptions_refresh(app->subscriptions);
	if (ticks % KEY_FLUSH_EVERY == 0)
		auth_flush(app->auth);
}

/* The key that seals secrets: HOOKD_MASTER_KEY, or master_key_file (made on first run). */
static int
load_master_key(struct app *app)
{
	const char *path = app->cfg.master_key_file;
	const char *slash = strrchr(path, '/');
	char err[256];

	/* First run: make the key file's directory (var/ by default), private. */
	if (getenv("HOOKD_MASTER_KEY") == NULL && slash != NULL && slash != path) {
		char *dir = xstrndup(path, (size_t)(slash - path));

		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			log_warn("cannot create %s: %s", dir, strerror(errno));
		free(dir);
	}
	if (seal_key_load(path, getenv("HOOKD_MASTER_KEY"), app->master_key, 1, err, sizeof(err)) !=
	    0) {
		log_error("master key: %s", err);
		return -1;
	}
	return 0;
}

static void
deliver_kick_cb(void *arg)
{
	deliver_kick(arg);
}

static void
process_kick_cb(void *arg)
{
	process_kick(arg);
}

/* --- start-up ------------------------------------------------------------------------- */

/*
 * The event loop. epoll's change list folds the interest changes one loop pass makes to
 * a socket (evhttp drops reading and adds writing for every reply) into one epoll_ctl:
 * about 10 % more inbound requests per second. libevent warns it misbehaves with file
 * descriptors made by dup(); hookd makes none, and neither do libpq, OpenSSL or evdns.
 */
static struct event_base *
loop_new(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (ec == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static int
run(struct app *app)
{
	struct db_options opt;
	struct http_limits lim;
	struct timeval jt = {JANITOR_MS / 1000, 0};
	char err[256], host[48], nonce_hex[9];
	unsigned char nonce[4];

	app->base = loop_new();
	if (app->base == NULL) {
		log_error("cannot create the event loop");
		return 1;
	}
	app->dns = evdns_base_new(app->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (app->dns == NULL) {
		log_error("cannot set up DNS resolution (evdns)");
		return 1;
	}
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "hookd");
	host[sizeof(host) - 1] = '\0';
	/*
	 * This process's name in leases (leased_by). Host and pid alone collide when two
	 * containers with the same hostname each run hookd as PID 1: the nonce keeps them
	 * apart. It is an opaque label, compared whole and never parsed.
	 */
	randombytes_buf(nonce, sizeof(nonce));
	hex_encode(nonce, sizeof(nonce), nonce_hex);
	snprintf(app->instance, sizeof(app->instance), "%s:%d:%s", host, (int)getpid(), nonce_hex);
	app->started_ms = now_wall_ms();
	app->schema_version = -1;

	app_db_options(app, &opt);
	if (load_master_key(app) != 0)
		return 1;
	app->db = db_create(app->base, app->dns, &opt);
	app->listen = listen_create(app->base, app->dns, &opt);
	if (app->db == NULL || app->listen == NULL) {
		log_error("cannot use database_url (see the message above)");
		return 1;
	}
	db_on_state(app->db, db_state_cb, app);
	app->wheel = wheel_driver_new(app->base);
	app->auth = auth_new(app->db, app->listen);
	app->sources = sources_new(app);
	app->ingest = ingest_new(app);
	app->process = process_new(app);
	ingest_on_work(app->ingest, process_kick_cb, app->process);
	app->subscriptions = subscriptions_new(app);
	app->deliver = deliver_new(app);
	app->capture = capture_new(app);
	capture_on_work(app->capture, deliver_kick_cb, app->deliver);

	http_limits_from(&app->cfg, &lim);
	raise_fd_limit(app->cfg.http_max_connections);
	app->http = http_server_new(app->base, &lim);
	http_server_set_auth(app->http, auth_check, app->auth);
	api_system_register(app);
	ingest_register(app);
	compat_omniops_register(app);
	compat_memory_register(app);
	api_sources_register(app);
	api_inbound_register(app);
	api_watches_register(app);
	api_subscriptions_register(app);
	api_events_register(app);
	api_deliveries_register(app);
	if (http_server_listen(app->http, app->cfg.listen, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}

	db_start(app->db);
	listen_start(app->listen);
	maybe_migrate(app);

	ev_hup = evsignal_new(app->base, SIGHUP, signal_cb, app);
	ev_term = evsignal_new(app->base, SIGTERM, signal_cb, app);
	ev_int = evsignal_new(app->base, SIGINT, signal_cb, app);
	event_add(ev_hup, NULL);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	ev_janitor = event_new(app->base, -1, EV_PERSIST, janitor_cb, app);
	event_add(ev_janitor, &jt);

	log_info("hookd %s started (pid %d, instance %s, schema %d, pool %lld)", PACKAGE_VERSION,
	    (int)getpid(), app->instance, migrate_latest(), (long long)app->cfg.db_pool_size);
	event_base_dispatch(app->base);
	return exit_status;
}

static void
teardown(struct app *app)
{
	struct event **evs[] = {&ev_hup, &ev_term, &ev_int, &ev_janitor, &ev_drain};

	for (size_t i = 0; i < ARRAY_SIZE(evs); i++) {
		if (*evs[i] != NULL) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	}
	/*
	 * The pool first, while everything its callbacks may touch is alive: it fails what
	 * is still queued (only after a forced exit), and those callbacks reply to their
	 * requests and clear their tokens before the modules are freed.
	 */
	if (app->db != NULL)
		db_free(app->db);
	app->db = NULL;
	deliver_free(app->deliver);
	subscriptions_free(app->subscriptions);
	capture_free(app->capture);
	process_free(app->process);
	ingest_free(app->ingest);
	sources_free(app->sources);
	auth_free(app->auth);
	if (app->listen != NULL)
		listen_free(app->listen);
	http_server_free(app->http);
	if (app->wheel != NULL)
		wheel_driver_free(app->wheel);
	if (app->dns != NULL)
		evdns_base_free(app->dns, 0);
	if (app->base != NULL)
		event_base_free(app->base);
	metrics_reset();
	free(app->database_url);
	config_free(&app->cfg);
}

int
main(int argc, char **argv)
{
	struct app *app = &app_state;
	int opt, check_only = 0, rc;
	char *err = NULL;

	while ((opt = getopt(argc, argv, "+c:nvVh")) != -1) {
		switch (opt) {
		case 'c': app->config_path = optarg; break;
		case 'n': check_only = 1; break;
		case 'v': verbose++; break;
		case 'V': versions(); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "hookd: libsodium failed to initialise\n");
		return 1;
	}
	log_route_libevent();
	if (config_load(&app->cfg, app->config_path, &err) != 0) {
		log_error("configuration: %s", err ? err : "invalid");
		free(err);
		return 1;
	}
	log_set_level(log_level_for(app->cfg.log_level));
	if (check_only) {
		fprintf(stderr, "hookd: configuration ok\n");
		config_free(&app->cfg);
		return 0;
	}
	/*
	 * The one signal not taken through evsignal_*: SIGPIPE needs no handler, only to be
	 * ignored, so that a write to a socket the peer closed fails with EPIPE (which
	 * bufferevents and libpq handle) instead of killing the daemon; a libevent handler
	 * would only wake the loop for nothing.
	 */
	signal(SIGPIPE, SIG_IGN);
	app->database_url = config_database_url(&app->cfg);

	if (optind < argc && strcmp(argv[optind], "migrate") == 0) {
		rc = cli_migrate(&app->cfg);
	} else if (optind < argc && strcmp(argv[optind], "keys") == 0) {
		rc = cli_keys(&app->cfg, argc - optind - 1, argv + optind + 1);
	} else if (optind < argc) {
		fprintf(stderr, "hookd: unknown command \"%s\"\n", argv[optind]);
		usage(stderr);
		rc = 2;
	} else {
		rc = run(app);
		teardown(app);
		return rc;
	}
	free(app->database_url);
	config_free(&app->cfg);
	return rc;
}
