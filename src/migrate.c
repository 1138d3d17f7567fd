/* SPDX-License-Identifier: ISC */
/* Schema migrations: schema/NNN_name.sql, compiled in, applied in order under an advisory lock. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "hookd/db.h"
#include "hookd/db_conn.h"
#include "hookd/log.h"
#include "hookd/migrate.h"

/*
 * One connection of its own, one command at a time:
 *   lock → bootstrap → read applied versions → per pending migration:
 *   "BEGIN; <file>" → INSERT its row (parameters) → COMMIT → … → unlock.
 * The session advisory lock makes a racing hookd wait for its turn; it then finds every
 * version applied and does nothing. A failed migration is rolled back; closing the
 * connection releases the lock whatever happened.
 */

/* "hookd" in ASCII: the session advisory lock every hookd takes to migrate. */
#define MIGRATE_LOCK_KEY "448546171748"

const char migrate_version_sql[] = "SELECT coalesce(max(version), 0) FROM hookd.schema_migrations";

static const char bootstrap_sql[] = "CREATE SCHEMA IF NOT EXISTS hookd; "
                                    "CREATE TABLE IF NOT EXISTS hookd.schema_migrations ("
                                    "version integer PRIMARY KEY, name text NOT NULL, "
                                    "applied_at timestamptz NOT NULL DEFAULT now())";

enum migrate_step {
	MIGRATE_CONNECTING, /* waiting for the connection */
	MIGRATE_LOCK,       /* SELECT pg_advisory_lock(key) */
	MIGRATE_BOOTSTRAP,  /* the schema and hookd.schema_migrations */
	MIGRATE_READ,       /* the versions applied so far */
	MIGRATE_APPLY,      /* BEGIN; and the migration's SQL */
	MIGRATE_RECORD,     /* INSERT INTO hookd.schema_migrations */
	MIGRATE_COMMIT,     /* COMMIT */
	MIGRATE_ROLLBACK,   /* after a failure inside a migration */
	MIGRATE_UNLOCK,     /* SELECT pg_advisory_unlock(key) */
	MIGRATE_DONE,       /* closed; the callback is deferred to the loop */
};

struct migrate {
	struct event_base *base;
	struct db_conn *conn;
	enum migrate_step step;
	void (*cb)(int rc, int version, const char *err, void *arg);
	void *arg;
	int cancelled;
	char *applied; /* per migrations[] index: already in the database */
	int current;   /* index in migrations[] being applied, -1 for none */
	int version;   /* highest version in the database */
	int rc;
	char *err;     /* the failure to report */
	char *cmd_err; /* the first error of the command in flight */
};

int
migrate_latest(void)
{
	int v = 0;

	for (int i = 0; i < migrations_count; i++) {
		if (migrations[i].version > v)
			v = migrations[i].version;
	}
	return v;
}

static void
migrate_free(struct migrate *m)
{
	db_conn_free(m->conn);
	free(m->applied);
	free(m->err);
	free(m->cmd_err);
	free(m);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct migrate *m = arg;

	if (!m->cancelled)
		m->cb(m->rc, m->version, m->err, m->arg);
	migrate_free(m);
}

/* Close the connection (releasing the lock) and report from a fresh loop pass. */
static void
finish(struct migrate *m, int rc, const char *err)
{
	static const struct timeval zero = {0, 0};

	if (m->step == MIGRATE_DONE)
		return;
	if (m->conn != NULL)
		db_conn_stop(m->conn);
	m->step = MIGRATE_DONE;
	m->rc = rc;
	if (err != NULL && m->err == NULL)
		m->err = xstrdup(err);
	if (rc == 0)
		log_info("migrate: schema at version %d", m->version);
	else
		log_error("migrate: %s", m->err);
	if (event_base_once(m->base, -1, EV_TIMEOUT, done_cb, m, &zero) != 0) {
		log_error("migrate: cannot schedule the callback");
		abort();
	}
}

static void
send_simple(struct migrate *m, enum migrate_step step, const char *sql)
{
	PGconn *pq = db_conn_pq(m->conn);

	m->step = step;
	free(m->cmd_err);
	m->cmd_err = NULL;
	if (pq == NULL)
		return; /* failing already: down_cb reports it */
	if (!PQsendQuery(pq, sql)) {
		db_conn_fail(m->conn, PQerrorMessage(pq));
		return;
	}
	db_conn_flush(m->conn);
}

static void
send_params(
    struct migrate *m, enum migrate_step step, const char *sql, int n, const char *const *values)
{
	PGconn *pq = db_conn_pq(m->conn);

	m->step = step;
	free(m->cmd_err);
	m->cmd_err = NULL;
	if (pq == NULL)
		return; /* failing already: down_cb reports it */
	if (!PQsendQueryParams(pq, sql, n, NULL, values, NULL, NULL, 0)) {
		db_conn_fail(m->conn, PQerrorMessage(pq));
		return;
	}
	db_conn_flush(m->conn);
}

/* Start the pending migration with the lowest version, or unlock when none is left. */
static void
next_migration(struct migrate *m)
{
	const struct migration *mg;
	char *sql;

	m->current = -1;
	for (int i = 0; i < migrations_count; i++) {
		if (!m->applied[i] &&
		    (m->current < 0 || migrations[i].version < migrations[m->current].version))
			m->current = i;
	}
	if (m->current < 0) {
		const char *key[] = {MIGRATE_LOCK_KEY};

		send_params(m, MIGRATE_UNLOCK, "SELECT pg_advisory_unlock($1::bigint)", 1, key);
		return;
	}
	mg = &migrations[m->current];
	sql = xasprintf("BEGIN;\n%s", mg->sql);
	log_info("migrate: applying %03d_%s", mg->version, mg->name);
	send_simple(m, MIGRATE_APPLY, sql);
	free(sql);
}

/* A migration failed: remember why, roll back, then unlock. */
static void
migration_failed(struct migrate *m)
{
	const struct migration *mg = &migrations[m->current];

	m->err = xasprintf("migration %03d_%s: %s", mg->version, mg->name, m->cmd_err);
	send_simple(m, MIGRATE_ROLLBACK, "ROLLBACK");
}

/* The command in flight has returned all its results. */
static void
command_done(struct migrate *m)
{
	const struct migration *mg;
	char ver[16], *msg;
	const char *values[2];

	switch (m->step) {
	case MIGRATE_LOCK:
	case MIGRATE_BOOTSTRAP:
	case MIGRATE_READ:
		if (m->cmd_err != NULL) {
			msg = xasprintf("%s: %s",
			    m->step == MIGRATE_LOCK        ? "advisory lock"
			    : m->step == MIGRATE_BOOTSTRAP ? "creating hookd.schema_migrations"
			                                   : "reading hookd.schema_migrations",
			    m->cmd_err);
			finish(m, -1, msg);
			free(msg);
		} else if (m->step == MIGRATE_LOCK) {
			send_simple(m, MIGRATE_BOOTSTRAP, bootstrap_sql);
		} else if (m->step == MIGRATE_BOOTSTRAP) {
			send_simple(m, MIGRATE_READ, "SELECT version FROM hookd.schema_migrations");
		} else {
			next_migration(m);
		}
		break;
	case MIGRATE_APPLY:
	case MIGRATE_RECORD:
	case MIGRATE_COMMIT:
		mg = &migrations[m->current];
		if (m->cmd_err != NULL) {
			migration_failed(m);
		} else if (m->step == MIGRATE_APPLY) {
			snprintf(ver, sizeof(ver), "%d", mg->version);
			values[0] = ver;
			values[1] = mg->name;
			send_params(m, MIGRATE_RECORD,
			    "INSERT INTO hookd.schema_migrations (version, name) VALUES ($1, $2)",
			    2, values);
		} else if (m->step == MIGRATE_RECORD) {
			send_simple(m, MIGRATE_COMMIT, "COMMIT");
		} else {
			if (mg->version > m->version)
				m->version = mg->version;
			m->applied[m->current] = 1;
			next_migration(m);
		}
		break;
	case MIGRATE_ROLLBACK: {
		const char *key[] = {MIGRATE_LOCK_KEY};

		send_params(m, MIGRATE_UNLOCK, "SELECT pg_advisory_unlock($1::bigint)", 1, key);
		break;
	}
	case MIGRATE_UNLOCK: finish(m, m->err != NULL ? -1 : 0, NULL); break;
	case MIGRATE_CONNECTING:
	case MIGRATE_DONE: break;
	}
}

static void
read_versions(struct migrate *m, const PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++) {
		int v = atoi(PQgetvalue(res, r, 0));

		if (v > m->version)
			m->version = v;
		for (int i = 0; i < migrations_count; i++) {
			if (migrations[i].version == v)
				m->applied[i] = 1;
		}
	}
}

static void
input_cb(struct db_conn *c, void *arg)
{
	struct migrate *m = arg;
	PGconn *pq;
	PGnotify *n;

	while ((pq = db_conn_pq(c)) != NULL && (n = PQnotifies(pq)) != NULL)
		PQfreemem(n);
	while ((pq = db_conn_pq(c)) != NULL && m->step != MIGRATE_DONE && !PQisBusy(pq)) {
		PGresult *res = PQgetResult(pq);
		ExecStatusType st;

		if (res == NULL) {
			command_done(m);
			continue;
		}
		st = PQresultStatus(res);
		if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
		    st == PGRES_BAD_RESPONSE) {
			if (m->cmd_err == NULL) {
				const char *e = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

				m->cmd_err = xstrdup(e != NULL ? e : PQresultErrorMessage(res));
			}
		} else if (st == PGRES_TUPLES_OK && m->step == MIGRATE_READ) {
			read_versions(m, res);
		}
		PQclear(res);
	}
}

static void
ready_cb(struct db_conn *c, void *arg)
{
	struct migrate *m = arg;
	const char *key[] = {MIGRATE_LOCK_KEY};

	/* A racing hookd holds the lock until it is done; the server queues us. */
	send_params(m, MIGRATE_LOCK, "SELECT pg_advisory_lock($1::bigint)", 1, key);
}

static void
down_cb(struct db_conn *c, int was_ready, const char *err, void *arg)
{
	struct migrate *m = arg;
	char *msg = xasprintf("%s: %s", was_ready ? "connection lost" : "cannot connect", err);

	finish(m, -1, msg);
	free(msg);
}

struct migrate *
migrate_start(struct event_base *base, struct evdns_base *dns, const struct db_options *opt,
    void (*cb)(int rc, int version, const char *err, void *arg), void *arg)
{
	static const struct db_conn_cbs cbs = {ready_cb, input_cb, down_cb};
	struct migrate *m = xcalloc(1, sizeof(*m));
	struct db_options o = *opt;
	char *err = NULL;

	m->base = base;
	m->cb = cb;
	m->arg = arg;
	m->applied = xcalloc((size_t)migrations_count + 1, 1);
	m->step = MIGRATE_CONNECTING;
	/* Waiting for the lock or building an index may take longer than any query should. */
	o.statement_timeout_ms = 0;
	m->conn = db_conn_create(base, dns, &o, "migrate", &cbs, m, &err);
	if (m->conn == NULL) {
		char *msg = xasprintf("bad connection string: %s", err);

		free(err);
		/* Still reported from the loop, like every other outcome. */
		finish(m, -1, msg);
		free(msg);
		return m;
	}
	db_conn_set_retry(m->conn, 0);
	db_conn_start(m->conn);
	return m;
}

void
migrate_cancel(struct migrate *m)
{
	if (m == NULL)
		return;
	if (m->step == MIGRATE_DONE) {
		/* The deferred callback frees it. */
		m->cancelled = 1;
		return;
	}
	migrate_free(m);
}
