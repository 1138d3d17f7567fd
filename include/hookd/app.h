/* SPDX-License-Identifier: ISC */
/* The running daemon's shared state: what every I/O module is handed at start-up. */
#ifndef HOOKD_APP_H
#define HOOKD_APP_H

#include <stdint.h>

#include "hookd/config.h"
#include "hookd/db.h"

struct event_base;
struct evdns_base;
struct event;
struct http_server;
struct db_listen;
struct auth;
struct sources;
struct ingest;
struct process;
struct wheel_driver;
struct subscriptions;
struct deliver;
struct http_client;
struct capture;

struct app {
	struct event_base *base;
	struct evdns_base *dns;
	struct config cfg;
	const char *config_path; /* NULL: defaults and environment only */
	char *database_url;      /* resolved from cfg */
	char instance[80];       /* "host:pid:nonce", names this process in leases (opaque) */
	struct db *db;
	struct db_listen *listen;
	struct http_server *http;
	struct auth *auth;
	struct wheel_driver *wheel;          /* retry timers */
	struct sources *sources;             /* inbound sources cache */
	struct ingest *ingest;               /* inbound receive path */
	struct process *process;             /* inbound handler worker */
	struct subscriptions *subscriptions; /* outbound subscriptions cache */
	struct deliver *deliver;             /* outbound delivery worker */
	struct http_client *client;          /* outbound HTTP */
	struct capture *capture;             /* change reader */
	unsigned char master_key[32];        /* seals secrets at rest */
	int schema_version;                  /* applied version, -1 while unknown */
	int migrating;                       /* a migration is running */
	int draining;                        /* SIGTERM received */
	uint64_t started_ms;                 /* wall clock at start */
};

/* The pool options the configuration implies. */
void app_db_options(const struct app *app, struct db_options *opt);
/* Re-read the applied schema version (after a migration or a reconnect). */
void app_check_schema(struct app *app);

#endif
