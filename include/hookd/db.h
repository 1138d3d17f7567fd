/* SPDX-License-Identifier: ISC */
/* Asynchronous Postgres pool: non-blocking connects, pipelined statement groups, callbacks. */
#ifndef HOOKD_DB_H
#define HOOKD_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "hookd/util.h"

struct event_base;
struct evdns_base;

struct db;      /* the pool */
struct db_stmt; /* a statement prepared on every pool connection */
struct db_req;  /* a queued or in-flight group: the token db_cancel takes */

struct db_options {
	const char *conninfo; /* libpq URL or key=value string */
	const char *application_name;
	int pool_size;            /* connections (>= 1) */
	int connect_timeout_ms;   /* one attempt, name resolution included */
	int reconnect_min_ms;     /* first back-off delay; doubles per failure */
	int reconnect_max_ms;     /* back-off ceiling; +-20% jitter on every delay */
	int pipeline_depth;       /* groups in flight per connection */
	int statement_timeout_ms; /* server-side statement_timeout, 0 = none */
	int queue_timeout_ms;     /* a group waiting longer for a connection fails */
};

enum db_status {
	DB_OK,              /* every statement succeeded; the group committed */
	DB_ERR_SQL,         /* the server refused a statement; nothing of the group committed */
	DB_ERR_UNAVAILABLE, /* never sent: no usable connection (down, queue timeout, shutdown) */
	DB_ERR_LOST,        /* sent, then the connection broke: the outcome is unknown */
};

struct db_result {
	enum db_status status;
	const char *error;    /* human-readable; NULL on DB_OK */
	const char *sqlstate; /* five characters for DB_ERR_SQL, else NULL */
	int nres;             /* statements in the group */
	PGresult *const *res; /* one per statement; valid only during the callback */
};

/*
 * 1 when a SQLSTATE says an object of hookd's schema is missing (no such table, function,
 * column, type or schema): what a new database answers before the migrations ran, or an
 * older schema before they finished.
 */
int db_sqlstate_schema_missing(const char *sqlstate);
/* db_sqlstate_schema_missing for a refused group. */
int db_schema_missing(const struct db_result *r);
/*
 * Log a failed group as "what: error": a warning, or at info when the schema is missing
 * (a cache that loads before the migrations ran loads again once they have).
 */
void db_log_failure(const struct db_result *r, const char *what);

/*
 * Completion callback. Always called from the event loop, never from inside the call
 * that queued the group, exactly once unless db_cancel was called first.
 */
typedef void (*db_cb)(const struct db_result *r, void *arg);

/* Statement parameters: built on the stack, copied when the group is queued. */
#define DB_MAX_PARAMS 24
struct db_params {
	int n;
	const char *values[DB_MAX_PARAMS];
	int lengths[DB_MAX_PARAMS];
	int formats[DB_MAX_PARAMS];   /* 0 text, 1 binary */
	char ints[DB_MAX_PARAMS][24]; /* storage for db_param_int */
};
void db_params_init(struct db_params *p);
void db_param_text(struct db_params *p, const char *s); /* NULL gives SQL NULL */
void db_param_textn(struct db_params *p, const char *s, size_t len);
void db_param_bin(struct db_params *p, const void *data, size_t len);
void db_param_int(struct db_params *p, int64_t v);
void db_param_bool(struct db_params *p, int v);
void db_param_null(struct db_params *p);

/*
 * A one-dimensional array parameter in Postgres's binary format, for multi-row
 * statements (INSERT ... SELECT FROM unnest($1::uuid[], ...)): no escaping, no parsing.
 */
struct db_array {
	unsigned elem_oid; /* DB_OID_* */
	int n;
	int has_null;
	char *buf; /* header, then (length, bytes) per element */
	size_t len, cap;
};
#define DB_OID_BOOL  16
#define DB_OID_BYTEA 17
#define DB_OID_TEXT  25
#define DB_OID_UUID  2950
#define DB_OID_JSONB 3802
void db_array_init(struct db_array *a, unsigned elem_oid);
/* Append an element in the type's binary form; data NULL appends SQL NULL. */
void db_array_add(struct db_array *a, const void *data, size_t len);
/* Convenience: text, jsonb (from JSON text), uuid (from its text form), bool. */
void db_array_add_text(struct db_array *a, const char *s);
void db_array_add_jsonb(struct db_array *a, const char *json, size_t len);
int db_array_add_uuid(struct db_array *a, const char *uuid) WUR;
void db_array_add_bool(struct db_array *a, int v);
/* The array as a binary parameter; valid until the array is freed or changed. */
void db_param_array(struct db_params *p, struct db_array *a);
void db_array_free(struct db_array *a);

struct db *db_create(struct event_base *base, struct evdns_base *dns, const struct db_options *opt);
/* Change the reloadable options (timeouts, depth, back-off) of a running pool. */
void db_set_options(struct db *db, const struct db_options *opt);
/* Register a statement; it is prepared on every connection before that connection is used. */
struct db_stmt *db_prepare(struct db *db, const char *name, const char *sql);
/* Start connecting. Groups queued before this wait for the first connection. */
void db_start(struct db *db);
/* Fail everything queued with DB_ERR_UNAVAILABLE, close connections, free. */
void db_free(struct db *db);

/* Called each time a pool connection becomes usable, and when the pool loses its last one. */
void db_on_state(struct db *db, void (*cb)(int ready_count, void *arg), void *arg);
int db_ready_count(const struct db *db);
/* Groups queued or in flight (drain waits for 0). */
int db_busy(const struct db *db);
/* The most groups one connection has had in flight at once (pipelining at work). */
int db_peak_pipeline(const struct db *db);

/*
 * A group is one or more statements that travel in one pipeline and end with one Sync,
 * so they run as one implicit transaction: all commit or none.
 */
struct db_group;
struct db_group *db_group_new(struct db *db);
void db_group_stmt(struct db_group *g, const struct db_stmt *s, const struct db_params *p);
void db_group_sql(struct db_group *g, const char *sql, const struct db_params *p);
/* Queue the group (ownership passes to the pool). */
struct db_req *db_group_send(struct db_group *g, db_cb cb, void *arg);

/* One-statement groups. p may be NULL for no parameters. */
struct db_req *db_exec(
    struct db *db, const struct db_stmt *s, const struct db_params *p, db_cb cb, void *arg);
struct db_req *db_query(
    struct db *db, const char *sql, const struct db_params *p, db_cb cb, void *arg);

/* Forget the callback. The statements may still run; req must not be used again. */
void db_cancel(struct db_req *req);

/* Result helpers: the text of a cell, NULL for SQL NULL or out of range. */
const char *db_value(const PGresult *res, int row, int col);
int db_rows(const PGresult *res);

#endif
