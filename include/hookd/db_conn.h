/* SPDX-License-Identifier: ISC */
/* One asynchronous libpq connection: resolve, connect, time out, back off, watch the socket. */
#ifndef HOOKD_DB_CONN_H
#define HOOKD_DB_CONN_H

#include <libpq-fe.h>

#include "hookd/util.h"

struct event_base;
struct evdns_base;
struct db_options;

struct db_conn;

enum db_conn_state {
	DB_CONN_IDLE,       /* not started, or stopped: no socket, no timer */
	DB_CONN_RESOLVING,  /* evdns lookups of the host names in flight */
	DB_CONN_CONNECTING, /* PQconnectPoll steps in progress */
	DB_CONN_READY,      /* connected and non-blocking: the owner sends and reads */
	DB_CONN_BACKOFF,    /* waiting before the next attempt */
};

/*
 * What the owner hears. None of these is ever called from inside a db_conn_* call the
 * owner made: failures the owner reports (db_conn_fail, a failed flush) are processed
 * from a deferred event. The owner must not free the db_conn from inside them.
 */
struct db_conn_cbs {
	/* Connected (state READY, non-blocking); the back-off is reset. */
	void (*ready_cb)(struct db_conn *c, void *arg);
	/* Input was consumed: drain PQnotifies and the results that are complete. */
	void (*input_cb)(struct db_conn *c, void *arg);
	/*
	 * An attempt failed (was_ready 0) or a ready connection broke (was_ready 1). The
	 * PGconn is gone already; the next attempt is scheduled unless retry is off, in
	 * which case the state is IDLE.
	 */
	void (*down_cb)(struct db_conn *c, int was_ready, const char *err, void *arg);
};

/*
 * A connection for opt->conninfo with hookd's settings applied (application_name,
 * keep-alives, statement_timeout). label names it in log lines ("pool 2", "listen").
 * Returns NULL, with a reason in *err (malloc'd), when the conninfo does not parse.
 */
struct db_conn *db_conn_create(struct event_base *base, struct evdns_base *dns,
    const struct db_options *opt, const char *label, const struct db_conn_cbs *cbs, void *arg,
    char **err) WUR;
/* Take new timeouts and back-off bounds (they apply from the next attempt). */
void db_conn_set_options(struct db_conn *c, const struct db_options *opt);
/* Reconnect after failures (the default) or stop in state IDLE. */
void db_conn_set_retry(struct db_conn *c, int retry);
/* Start the first attempt now (from IDLE or BACKOFF). */
void db_conn_start(struct db_conn *c);
/* Close the connection and stay IDLE; no callback. */
void db_conn_stop(struct db_conn *c);
void db_conn_free(struct db_conn *c);

enum db_conn_state db_conn_state(const struct db_conn *c);
/* The connection when READY and not failing, else NULL. */
PGconn *db_conn_pq(const struct db_conn *c);
const char *db_conn_label(const struct db_conn *c);
/* The conninfo without secrets, for log lines. */
const char *db_conn_describe(const struct db_conn *c);

/*
 * Push out what the owner queued with PQsend*: PQflush until 0, watching for write and
 * read readiness while libpq still holds data. A failure is handled like a broken socket.
 */
void db_conn_flush(struct db_conn *c);
/* The owner found the connection unusable: close it and reconnect (deferred). */
void db_conn_fail(struct db_conn *c, const char *err);

/* Build the libpq keywords/values for opt; exposed for tests. NULL-terminated, malloc'd. */
int db_conn_params(const struct db_options *opt, char ***keys, char ***vals, char **err) WUR;
void db_conn_params_free(char **keys, char **vals);

#endif
