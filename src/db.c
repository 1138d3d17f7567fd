/* SPDX-License-Identifier: ISC */
/* Asynchronous Postgres pool: pipelined statement groups on N connections, with callbacks. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "hookd/db.h"
#include "hookd/db_conn.h"
#include "hookd/log.h"
#include "hookd/metrics.h"

/* A group that has run this long marks its connection as busy with a long statement. */
#define DB_STALL_US 20000

/*
 * How it works. Each connection runs in pipeline mode. A group is sent as its
 * statements followed by one Sync; the server runs everything up to a Sync as one
 * implicit transaction, so a group commits or rolls back as a whole. Results come back
 * in send order, so a connection keeps its in-flight groups in a FIFO and matches
 * results to its head. A group is complete only when its Sync result arrives: if the
 * connection breaks before that, the outcome is unknown and the group gets DB_ERR_LOST.
 * Statement preparation travels in the same pipeline as internal groups (one Sync
 * each, so one bad statement does not abort the others), ahead of any group that uses
 * them.
 */

struct db_stmt {
	int index;
	char *name;
	char *sql;
};

/* One statement of a queued group: pointers into the group's own allocation. */
struct req_stmt {
	const struct db_stmt *stmt; /* a prepared statement, or NULL for sql */
	const char *sql;
	int nparams;
	const char *const *values;
	const int *lengths;
	const int *formats;
};

enum req_where {
	REQ_QUEUED, /* in db->queue, waiting for a connection */
	REQ_SENT,   /* in a connection's in-flight FIFO */
	REQ_FAILED, /* in db->failed, its failure callback deferred to the loop */
	REQ_DONE,   /* callback running or done */
};

struct db_req {
	TAILQ_ENTRY(db_req) entry;
	struct db *db;
	enum req_where where;
	int internal; /* a statement preparation sent by the pool: no callback */
	db_cb cb;     /* NULL once cancelled */
	void *arg;
	uint64_t queued_us;
	enum db_status fail_status; /* for REQ_FAILED */
	const char *fail_msg;
	int nstmts;
	int cur; /* the statement whose results are arriving */
	struct req_stmt *stmts;
	PGresult **res;
};
TAILQ_HEAD(req_list, db_req);

/* The group being built: offsets into one buffer, packed into a db_req when sent. */
struct group_stmt {
	const struct db_stmt *stmt;
	size_t sql_off;
	int nparams;
	int first;
};
struct group_param {
	size_t off;
	int len;
	int format;
	int null;
};
struct db_group {
	struct db *db;
	struct group_stmt *stmts;
	int nstmts, stmts_cap;
	struct group_param *params;
	int nparams, params_cap;
	char *buf;
	size_t len, cap;
};

/*
 * A statement's preparation on one connection. One that failed (say, its table did not
 * exist yet because migrations were still running) is prepared again before the next
 * group on that connection.
 */
enum stmt_prep {
	STMT_UNPREPARED, /* not sent, or its preparation failed */
	STMT_PREPARING,  /* PQsendPrepare in flight */
	STMT_PREPARED,   /* usable */
};

enum pconn_state {
	PCONN_DOWN,      /* connecting or waiting to reconnect */
	PCONN_PREPARING, /* connected, the registered statements being prepared */
	PCONN_READY,     /* takes groups */
};

struct pconn {
	struct db *db;
	struct db_conn *conn;
	enum pconn_state state;
	struct req_list inflight;
	int ngroups;               /* user groups in flight */
	unsigned char *stmt_state; /* per registered statement: STMT_UNPREPARED, ... */
	int nstmt_state;
	int npreparing;   /* preparations in flight */
	int failed;       /* failed since the pool's last successful connect */
	uint64_t head_us; /* when the first group in flight became the one Postgres runs */
};

struct state_hook {
	struct state_hook *next;
	void (*cb)(int ready_count, void *arg);
	void *arg;
};

struct db {
	struct db *next_pool;
	struct event_base *base;
	struct evdns_base *dns;
	struct db_options opt;
	char *conninfo, *application_name;
	int started, freeing;
	struct pconn *conns;
	int nconns;
	struct db_stmt **stmts;
	int nstmts;
	struct req_list queue, failed;
	int nqueued, ninflight, nfailed_reqs;
	int peak_groups; /* most user groups one connection has had in flight at once */
	int ready;       /* connections in PCONN_READY */
	int nfailed;     /* connections with failed set */
	struct event *queue_timer, *defer;
	struct state_hook *hooks;
	int in_cb; /* user callbacks on the stack */
};

static struct metric *m_conns, *m_queries, *m_errors, *m_duration;
static struct db *pools;

static void dispatch(struct db *db);

static void
collect_cb(void *arg)
{
	double n[3] = {0, 0, 0}; /* connecting, ready, down */

	for (struct db *db = pools; db != NULL; db = db->next_pool) {
		for (int i = 0; i < db->nconns; i++) {
			struct pconn *pc = &db->conns[i];
			enum db_conn_state s = db_conn_state(pc->conn);

			if (pc->state == PCONN_READY)
				n[1]++;
			else if (pc->state == PCONN_PREPARING || s == DB_CONN_RESOLVING ||
			         s == DB_CONN_CONNECTING)
				n[0]++;
			else
				n[2]++;
		}
	}
	metric_set(m_conns, n[0], "connecting");
	metric_set(m_conns, n[1], "ready");
	metric_set(m_conns, n[2], "down");
}

/* The families are process-wide: registered by the first pool, shared by the rest. */
static void
metrics_register(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	m_conns = metric_gauge("hookd_db_connections", "Pool connections by state.", "state");
	m_queries = metric_counter("hookd_db_queries_total", "Statements sent to Postgres.", NULL);
	m_errors = metric_counter("hookd_db_errors_total",
	    "Failed statement groups by kind (sql, lost, unavailable) and failed connects.",
	    "kind");
	/* Every kind from the start, at zero: a rate() over it needs the series to exist. */
	metric_add(m_errors, 0, "sql");
	metric_add(m_errors, 0, "lost");
	metric_add(m_errors, 0, "unavailable");
	metric_add(m_errors, 0, "connect");
	m_duration = metric_histogram("hookd_db_query_duration_seconds",
	    "Statement group latency, queueing included.", NULL, metrics_latency_buckets,
	    metrics_latency_nbuckets);
	metrics_on_collect(collect_cb, NULL);
}

/* --- parameters ---------------------------------------------------------------------- */

static int
param_slot(struct db_params *p)
{
	if (p->n >= DB_MAX_PARAMS) {
		log_error("db: more than %d parameters", DB_MAX_PARAMS);
		abort();
	}
	return p->n++;
}

void
db_params_init(struct db_params *p)
{
	p->n = 0;
}

void
db_param_textn(struct db_params *p, const char *s, size_t len)
{
	int i = param_slot(p);

	p->values[i] = s;
	p->lengths[i] = s != NULL ? (int)len : 0;
	p->formats[i] = 0;
}

void
db_param_text(struct db_params *p, const char *s)
{
	db_param_textn(p, s, s != NULL ? strlen(s) : 0);
}

void
db_param_bin(struct db_params *p, const void *data, size_t len)
{
	int i = param_slot(p);

	/* A non-NULL pointer even for zero bytes: NULL would mean SQL NULL. */
	p->values[i] = data != NULL ? data : "";
	p->lengths[i] = (int)len;
	p->formats[i] = 1;
}

void
db_param_int(struct db_params *p, int64_t v)
{
	int i = param_slot(p);

	snprintf(p->ints[i], sizeof(p->ints[i]), "%lld", (long long)v);
	p->values[i] = p->ints[i];
	p->lengths[i] = (int)strlen(p->ints[i]);
	p->formats[i] = 0;
}

static void
array_put(struct db_array *a, const void *data, size_t len)
{
	if (a->len + len > a->cap) {
		while (a->len + len > a->cap)
			a->cap = a->cap ? a->cap * 2 : 256;
		a->buf = xrealloc(a->buf, a->cap);
	}
	memcpy(a->buf + a->len, data, len);
	a->len += len;
}

static void
array_put32(struct db_array *a, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	    (unsigned char)(v >> 8), (unsigned char)v};

	array_put(a, b, 4);
}

static void
array_set32(struct db_array *a, size_t off, uint32_t v)
{
	unsigned char *b = (unsigned char *)a->buf + off;

	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
}

void
db_array_init(struct db_array *a, unsigned elem_oid)
{
	memset(a, 0, sizeof(*a));
	a->elem_oid = elem_oid;
	/* ndim, has-null flag, element type, length of the dimension, lower bound */
	array_put32(a, 1);
	array_put32(a, 0);
	array_put32(a, elem_oid);
	array_put32(a, 0);
	array_put32(a, 1);
}

void
db_array_add(struct db_array *a, const void *data, size_t len)
{
	if (data == NULL) {
		array_put32(a, 0xffffffffu);
		a->has_null = 1;
	} else {
		array_put32(a, (uint32_t)len);
		array_put(a, data, len);
	}
	a->n++;
}

void
db_array_add_text(struct db_array *a, const char *s)
{
	db_array_add(a, s, s ? strlen(s) : 0);
}

void
db_array_add_jsonb(struct db_array *a, const char *json, size_t len)
{
	if (json == NULL) {
		db_array_add(a, NULL, 0);
		return;
	}
	/* jsonb's binary form: version 1, then the JSON text. */
	array_put32(a, (uint32_t)len + 1);
	array_put(a, "\1", 1);
	array_put(a, json, len);
	a->n++;
}

int
db_array_add_uuid(struct db_array *a, const char *uuid)
{
	unsigned char b[16];
	char hex[33];
	int n = 0;

	if (uuid == NULL) {
		db_array_add(a, NULL, 0);
		return 0;
	}
	for (const char *c = uuid; *c != '\0' && n < 32; c++) {
		if (*c != '-')
			hex[n++] = *c;
	}
	if (n != 32 || hex_decode(hex, 32, b, sizeof(b)) != 16)
		return -1;
	db_array_add(a, b, sizeof(b));
	return 0;
}

void
db_array_add_bool(struct db_array *a, int v)
{
	unsigned char b = v ? 1 : 0;

	db_array_add(a, &b, 1);
}

void
db_param_array(struct db_params *p, struct db_array *a)
{
	array_set32(a, 4, a->has_null ? 1 : 0);
	array_set32(a, 12, (uint32_t)a->n);
	db_param_bin(p, a->buf, a->len);
}

void
db_array_free(struct db_array *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

void
db_param_bool(struct db_params *p, int v)
{
	db_param_text(p, v ? "t" : "f");
}

void
db_param_null(struct db_params *p)
{
	db_param_text(p, NULL);
}

/* --- groups -------------------------------------------------------------------------- */

static size_t
group_bytes(struct db_group *g, const void *data, size_t n)
{
	size_t off = g->len;

	if (g->len + n + 1 > g->cap) {
		while (g->len + n + 1 > g->cap)
			g->cap = g->cap ? g->cap * 2 : 256;
		g->buf = xrealloc(g->buf, g->cap);
	}
	if (n > 0)
		memcpy(g->buf + g->len, data, n);
	g->buf[g->len + n] = '\0'; /* text parameters and SQL are C strings */
	g->len += n + 1;
	return off;
}

static void
group_add(struct db_group *g, const struct db_stmt *s, const char *sql, const struct db_params *p)
{
	struct group_stmt *gs;
	int n = p != NULL ? p->n : 0;

	if (g->nstmts == g->stmts_cap) {
		g->stmts_cap = g->stmts_cap ? g->stmts_cap * 2 : 4;
		g->stmts = xrealloc(g->stmts, (size_t)g->stmts_cap * sizeof(*g->stmts));
	}
	gs = &g->stmts[g->nstmts++];
	gs->stmt = s;
	gs->sql_off = sql != NULL ? group_bytes(g, sql, strlen(sql)) : 0;
	gs->nparams = n;
	gs->first = g->nparams;
	if (g->nparams + n > g->params_cap) {
		while (g->nparams + n > g->params_cap)
			g->params_cap = g->params_cap ? g->params_cap * 2 : 8;
		g->params = xrealloc(g->params, (size_t)g->params_cap * sizeof(*g->params));
	}
	for (int i = 0; i < n; i++) {
		struct group_param *gp = &g->params[g->nparams++];

		gp->null = p->values[i] == NULL;
		gp->len = gp->null ? 0 : p->lengths[i];
		gp->format = p->formats[i];
		gp->off = gp->null ? 0 : group_bytes(g, p->values[i], (size_t)gp->len);
	}
}

struct db_group *
db_group_new(struct db *db)
{
	struct db_group *g = xcalloc(1, sizeof(*g));

	g->db = db;
	return g;
}

void
db_group_stmt(struct db_group *g, const struct db_stmt *s, const struct db_params *p)
{
	group_add(g, s, NULL, p);
}

void
db_group_sql(struct db_group *g, const char *sql, const struct db_params *p)
{
	group_add(g, NULL, sql, p);
}

static void
group_clear(struct db_group *g)
{
	free(g->stmts);
	free(g->params);
	free(g->buf);
}

/* Pack a group into one allocation: the request, its statements, results and bytes. */
static struct db_req *
req_pack(struct db *db, const struct db_group *g, db_cb cb, void *arg)
{
	size_t n = (size_t)g->nstmts, np = (size_t)g->nparams;
	size_t size = sizeof(struct db_req) + n * sizeof(struct req_stmt) + n * sizeof(PGresult *) +
	              np * sizeof(char *) + 2 * np * sizeof(int) + g->len;
	struct db_req *r = xcalloc(1, size);
	char *p = (char *)(r + 1);
	const char **values;
	int *lengths, *formats;
	char *bytes;

	r->stmts = (struct req_stmt *)(void *)p;
	p += n * sizeof(struct req_stmt);
	r->res = (PGresult **)(void *)p;
	p += n * sizeof(PGresult *);
	values = (const char **)(void *)p;
	p += np * sizeof(char *);
	lengths = (int *)(void *)p;
	p += np * sizeof(int);
	formats = (int *)(void *)p;
	p += np * sizeof(int);
	bytes = p;
	if (g->len > 0)
		memcpy(bytes, g->buf, g->len);
	for (size_t i = 0; i < np; i++) {
		values[i] = g->params[i].null ? NULL : bytes + g->params[i].off;
		lengths[i] = g->params[i].len;
		formats[i] = g->params[i].format;
	}
	for (size_t i = 0; i < n; i++) {
		const struct group_stmt *gs = &g->stmts[i];

		r->stmts[i].stmt = gs->stmt;
		r->stmts[i].sql = gs->stmt == NULL ? bytes + gs->sql_off : NULL;
		r->stmts[i].nparams = gs->nparams;
		r->stmts[i].values = values + gs->first;
		r->stmts[i].lengths = lengths + gs->first;
		r->stmts[i].formats = formats + gs->first;
	}
	r->db = db;
	r->cb = cb;
	r->arg = arg;
	r->nstmts = g->nstmts;
	r->queued_us = now_mono_us();
	return r;
}

static void
req_free(struct db_req *r)
{
	for (int i = 0; i < r->nstmts; i++) {
		if (r->res[i] != NULL)
			PQclear(r->res[i]);
	}
	free(r);
}

/* Call the callback (unless cancelled), then free the request. */
static void
req_finish(struct db_req *r, enum db_status status, const char *error, const char *sqlstate)
{
	struct db *db = r->db;
	struct db_result res = {status, error, sqlstate, r->nstmts, r->res};

	static const char *const kinds[] = {
	    [DB_ERR_SQL] = "sql", [DB_ERR_LOST] = "lost", [DB_ERR_UNAVAILABLE] = "unavailable"};

	r->where = REQ_DONE;
	if (status != DB_OK)
		metric_add(m_errors, 1, kinds[status]);
	if (status == DB_OK || status == DB_ERR_SQL)
		metric_observe(m_duration, (double)(now_mono_us() - r->queued_us) / 1e6);
	if (r->cb != NULL) {
		db->in_cb++;
		r->cb(&res, r->arg);
		db->in_cb--;
	}
	req_free(r);
}

/* Fail a request from the loop, never inside the call that queued it. */
static void
req_fail_later(struct db *db, struct db_req *r, enum db_status status, const char *msg)
{
	r->where = REQ_FAILED;
	r->fail_status = status;
	r->fail_msg = msg;
	TAILQ_INSERT_TAIL(&db->failed, r, entry);
	db->nfailed_reqs++;
	event_active(db->defer, EV_TIMEOUT, 1);
}

static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;
	struct db_req *r;

	/* Pop one at a time: a callback may cancel the next one. */
	while ((r = TAILQ_FIRST(&db->failed)) != NULL) {
		TAILQ_REMOVE(&db->failed, r, entry);
		db->nfailed_reqs--;
		req_finish(r, r->fail_status, r->fail_msg, NULL);
	}
}

static void
arm_queue_timer(struct db *db, int force)
{
	struct db_req *r = TAILQ_FIRST(&db->queue);
	uint64_t deadline, now;
	struct timeval tv;

	if (r == NULL || (!force && evtimer_pending(db->queue_timer, NULL)))
		return;
	deadline = r->queued_us + (uint64_t)db->opt.queue_timeout_ms * 1000u;
	now = now_mono_us();
	deadline = deadline > now ? deadline - now : 0;
	tv.tv_sec = (time_t)(deadline / 1000000u);
	tv.tv_usec = (suseconds_t)(deadline % 1000000u);
	evtimer_add(db->queue_timer, &tv);
}

/* Fail the groups that waited too long; the queue is in arrival order. */
static void
queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;
	uint64_t limit = (uint64_t)db->opt.queue_timeout_ms * 1000u;
	struct db_req *r;

	while ((r = TAILQ_FIRST(&db->queue)) != NULL && now_mono_us() - r->queued_us >= limit) {
		TAILQ_REMOVE(&db->queue, r, entry);
		db->nqueued--;
		req_finish(
		    r, DB_ERR_UNAVAILABLE, "timed out waiting for a database connection", NULL);
	}
	arm_queue_timer(db, 1);
}

static int
pool_is_down(const struct db *db)
{
	return db->started && db->ready == 0 && db->nfailed == db->nconns;
}

struct db_req *
db_group_send(struct db_group *g, db_cb cb, void *arg)
{
	struct db *db = g->db;
	struct db_req *r = req_pack(db, g, cb, arg);

	group_clear(g);
	free(g);
	if (db->freeing) {
		req_fail_later(db, r, DB_ERR_UNAVAILABLE, "the database pool is shutting down");
	} else if (pool_is_down(db)) {
		/* Every connection failed since the last success: answer now, not in 5 s. */
		req_fail_later(db, r, DB_ERR_UNAVAILABLE, "the database is unavailable");
	} else {
		r->where = REQ_QUEUED;
		TAILQ_INSERT_TAIL(&db->queue, r, entry);
		db->nqueued++;
		dispatch(db);
		arm_queue_timer(db, 0);
	}
	return r;
}

struct db_req *
db_exec(struct db *db, const struct db_stmt *s, const struct db_params *p, db_cb cb, void *arg)
{
	struct db_group *g = db_group_new(db);

	db_group_stmt(g, s, p);
	return db_group_send(g, cb, arg);
}

struct db_req *
db_query(struct db *db, const char *sql, const struct db_params *p, db_cb cb, void *arg)
{
	struct db_group *g = db_group_new(db);

	db_group_sql(g, sql, p);
	return db_group_send(g, cb, arg);
}

void
db_cancel(struct db_req *r)
{
	struct db *db;

	if (r == NULL)
		return;
	db = r->db;
	switch (r->where) {
	case REQ_QUEUED:
		TAILQ_REMOVE(&db->queue, r, entry);
		db->nqueued--;
		req_free(r);
		break;
	case REQ_FAILED:
		TAILQ_REMOVE(&db->failed, r, entry);
		db->nfailed_reqs--;
		req_free(r);
		break;
	case REQ_SENT:
		/* Already on the wire: the results are read and dropped. */
		r->cb = NULL;
		break;
	case REQ_DONE: break;
	}
}

/* --- connections --------------------------------------------------------------------- */

static void
fire_state(struct db *db)
{
	db->in_cb++;
	for (struct state_hook *h = db->hooks; h != NULL; h = h->next)
		h->cb(db->ready, h->arg);
	db->in_cb--;
}

static void
set_pconn_state(struct pconn *pc, enum pconn_state to)
{
	struct db *db = pc->db;
	enum pconn_state from = pc->state;

	if ((from == PCONN_DOWN && to != PCONN_PREPARING) ||
	    (from == PCONN_PREPARING && to == PCONN_PREPARING) ||
	    (from == PCONN_READY && to != PCONN_DOWN)) {
		log_error("db %s: impossible pool state change %d -> %d", db_conn_label(pc->conn),
		    (int)from, (int)to);
		abort();
	}
	pc->state = to;
	if (to == PCONN_READY) {
		db->ready++;
		/* A success: the database is up again, whatever failed before. */
		for (int i = 0; i < db->nconns; i++)
			db->conns[i].failed = 0;
		db->nfailed = 0;
	} else if (from == PCONN_READY) {
		db->ready--;
	}
}

/* Queue preparation of every statement this connection has not seen yet. */
static int
send_prepares(struct pconn *pc, PGconn *pq)
{
	struct db *db = pc->db;

	if (pc->nstmt_state < db->nstmts) {
		pc->stmt_state = xrealloc(pc->stmt_state, (size_t)db->nstmts);
		memset(pc->stmt_state + pc->nstmt_state, STMT_UNPREPARED,
		    (size_t)(db->nstmts - pc->nstmt_state));
		pc->nstmt_state = db->nstmts;
	}
	for (int i = 0; i < db->nstmts; i++) {
		const struct db_stmt *s = db->stmts[i];
		struct db_req *r;

		if (pc->stmt_state[i] != STMT_UNPREPARED)
			continue;
		if (!PQsendPrepare(pq, s->name, s->sql, 0, NULL) || !PQpipelineSync(pq))
			return -1;
		r = xcalloc(1, sizeof(*r) + sizeof(struct req_stmt) + sizeof(PGresult *));
		r->stmts = (struct req_stmt *)(void *)(r + 1);
		r->res = (PGresult **)(void *)(r->stmts + 1);
		r->stmts[0].stmt = s;
		r->db = db;
		r->internal = 1;
		r->nstmts = 1;
		r->where = REQ_SENT;
		if (TAILQ_EMPTY(&pc->inflight))
			pc->head_us = now_mono_us();
		TAILQ_INSERT_TAIL(&pc->inflight, r, entry);
		pc->npreparing++;
		pc->stmt_state[i] = STMT_PREPARING;
		metric_add(m_queries, 1);
	}
	return 0;
}

/* Send a group on a ready connection: its statements, then one Sync. */
static void
send_group(struct pconn *pc, struct db_req *r)
{
	struct db *db = pc->db;
	PGconn *pq = db_conn_pq(pc->conn);

	if (send_prepares(pc, pq) < 0)
		goto broken;
	for (int i = 0; i < r->nstmts; i++) {
		const struct req_stmt *s = &r->stmts[i];
		int ok;

		if (s->stmt != NULL)
			ok = PQsendQueryPrepared(
			    pq, s->stmt->name, s->nparams, s->values, s->lengths, s->formats, 0);
		else
			ok = PQsendQueryParams(
			    pq, s->sql, s->nparams, NULL, s->values, s->lengths, s->formats, 0);
		if (!ok)
			goto broken;
	}
	if (!PQpipelineSync(pq))
		goto broken;
	r->where = REQ_SENT;
	if (TAILQ_EMPTY(&pc->inflight))
		pc->head_us = now_mono_us();
	TAILQ_INSERT_TAIL(&pc->inflight, r, entry);
	pc->ngroups++;
	if (pc->ngroups > db->peak_groups)
		db->peak_groups = pc->ngroups;
	db->ninflight++;
	metric_add(m_queries, r->nstmts);
	db_conn_flush(pc->conn);
	return;
broken:
	/* Without its Sync the group cannot have committed: it waits for another connection. */
	r->where = REQ_QUEUED;
	TAILQ_INSERT_HEAD(&db->queue, r, entry);
	db->nqueued++;
	arm_queue_timer(db, 1);
	db_conn_fail(pc->conn, PQerrorMessage(pq));
}

/*
 * The ready connection with room and the fewest groups in flight. A connection whose
 * current group has run for more than DB_STALL_US (an ANALYZE, a slow handler, a large
 * report) is passed over while another has room: whatever is pipelined behind a long
 * statement waits for it, and a 1 ms commit should not wait for a 300 ms query.
 */
static struct pconn *
pick_conn(struct db *db)
{
	struct pconn *best = NULL;
	int best_stalled = 0;
	uint64_t now = 0;

	for (int i = 0; i < db->nconns; i++) {
		struct pconn *pc = &db->conns[i];
		int stalled;

		if (pc->state != PCONN_READY || db_conn_pq(pc->conn) == NULL ||
		    pc->ngroups >= db->opt.pipeline_depth)
			continue;
		stalled = 0;
		if (!TAILQ_EMPTY(&pc->inflight)) {
			if (now == 0)
				now = now_mono_us();
			stalled = now - pc->head_us > DB_STALL_US;
		}
		if (best == NULL || stalled < best_stalled ||
		    (stalled == best_stalled && pc->ngroups < best->ngroups)) {
			best = pc;
			best_stalled = stalled;
		}
	}
	return best;
}

/* Move queued groups to the ready connections with the fewest in flight. */
static void
dispatch(struct db *db)
{
	struct db_req *r;
	struct pconn *pc;

	while ((r = TAILQ_FIRST(&db->queue)) != NULL && (pc = pick_conn(db)) != NULL) {
		TAILQ_REMOVE(&db->queue, r, entry);
		db->nqueued--;
		send_group(pc, r);
	}
}

static void
conn_ready_cb(struct db_conn *c, void *arg)
{
	struct pconn *pc = arg;
	PGconn *pq = db_conn_pq(c);

	if (!PQenterPipelineMode(pq)) {
		db_conn_fail(c, PQerrorMessage(pq));
		return;
	}
	if (pc->stmt_state != NULL)
		memset(pc->stmt_state, STMT_UNPREPARED, (size_t)pc->nstmt_state);
	pc->npreparing = 0;
	set_pconn_state(pc, PCONN_PREPARING);
	if (send_prepares(pc, pq) < 0) {
		db_conn_fail(c, PQerrorMessage(pq));
		return;
	}
	if (pc->npreparing > 0) {
		db_conn_flush(c);
		return;
	}
	set_pconn_state(pc, PCONN_READY);
	fire_state(pc->db);
	dispatch(pc->db);
}

/* Status, message and SQLSTATE of a group whose Sync arrived. */
static void
req_complete(struct pconn *pc, struct db_req *r)
{
	struct db *db = pc->db;
	const char *msg = NULL, *state = NULL;
	enum db_status st = DB_OK;

	for (int i = 0; i < r->nstmts && st == DB_OK; i++) {
		PGresult *res = r->res[i];
		ExecStatusType t = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

		if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK || t == PGRES_EMPTY_QUERY)
			continue;
		st = DB_ERR_SQL;
		if (res == NULL) {
			msg = "no result for a statement";
		} else if (t == PGRES_FATAL_ERROR || t == PGRES_NONFATAL_ERROR) {
			msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (msg == NULL)
				msg = PQresultErrorMessage(res);
		} else {
			msg = t == PGRES_PIPELINE_ABORTED ? "statement aborted"
			                                  : "unsupported result (COPY?)";
		}
	}
	if (r->internal) {
		int idx = r->stmts[0].stmt->index;

		/*
		 * On a new database the pool connects before the migrations have made the
		 * tables: expected, and said at info. The statement is prepared again before
		 * the connection's next group; a missing object then is that group's error.
		 */
		if (st != DB_OK && db_sqlstate_schema_missing(state))
			log_info("db %s: statement %s waits for the schema (%s); prepared again "
			         "before this connection's next query",
			    db_conn_label(pc->conn), r->stmts[0].stmt->name, msg);
		else if (st != DB_OK)
			log_warn("db %s: cannot prepare statement %s (will retry): %s",
			    db_conn_label(pc->conn), r->stmts[0].stmt->name, msg);
		pc->stmt_state[idx] = st == DB_OK ? STMT_PREPARED : STMT_UNPREPARED;
		req_free(r);
		if (--pc->npreparing == 0 && pc->state == PCONN_PREPARING) {
			set_pconn_state(pc, PCONN_READY);
			fire_state(db);
		}
		return;
	}
	pc->ngroups--;
	db->ninflight--;
	req_finish(r, st, msg, st == DB_ERR_SQL && state == NULL ? "XX000" : state);
}

int
db_sqlstate_schema_missing(const char *sqlstate)
{
	static const char *const missing[] = {"42P01", "42883", "42703", "42704", "3F000"};

	for (size_t i = 0; sqlstate != NULL && i < sizeof(missing) / sizeof(missing[0]); i++) {
		if (strcmp(sqlstate, missing[i]) == 0)
			return 1;
	}
	return 0;
}

int
db_schema_missing(const struct db_result *r)
{
	return r->status == DB_ERR_SQL && db_sqlstate_schema_missing(r->sqlstate);
}

void
db_log_failure(const struct db_result *r, const char *what)
{
	if (db_schema_missing(r))
		log_info("%s yet (the schema is not migrated): %s", what, r->error);
	else
		log_warn("%s: %s", what, r->error);
}

/* Match results to the head of the in-flight FIFO; never call PQgetResult while busy. */
static void
conn_input_cb(struct db_conn *c, void *arg)
{
	struct pconn *pc = arg;
	struct db *db = pc->db;
	PGnotify *n;
	PGconn *pq;
	struct db_req *r;

	while ((pq = db_conn_pq(c)) != NULL && (n = PQnotifies(pq)) != NULL)
		PQfreemem(n);
	while ((pq = db_conn_pq(c)) != NULL && (r = TAILQ_FIRST(&pc->inflight)) != NULL) {
		PGresult *res;

		if (PQstatus(pq) == CONNECTION_BAD || PQisBusy(pq))
			break;
		res = PQgetResult(pq);
		if (r->cur < r->nstmts) {
			if (res == NULL) {
				r->cur++; /* this statement is done */
			} else if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
				PQclear(res);
				db_conn_fail(c, "pipeline out of step: early sync");
			} else if (r->res[r->cur] == NULL) {
				r->res[r->cur] = res;
			} else {
				PQclear(res);
			}
			continue;
		}
		if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
			if (res != NULL)
				PQclear(res);
			if (PQstatus(pq) != CONNECTION_BAD)
				db_conn_fail(c, "pipeline out of step: expected a sync");
			break;
		}
		PQclear(res);
		TAILQ_REMOVE(&pc->inflight, r, entry);
		pc->head_us = now_mono_us();
		req_complete(pc, r);
	}
	dispatch(db);
}

/* The connection is gone: what was sent on it has an unknown outcome. */
static void
fail_inflight(struct pconn *pc, const char *msg)
{
	struct db_req *r;

	while ((r = TAILQ_FIRST(&pc->inflight)) != NULL) {
		TAILQ_REMOVE(&pc->inflight, r, entry);
		if (r->internal) {
			req_free(r);
			continue;
		}
		pc->ngroups--;
		pc->db->ninflight--;
		req_finish(r, DB_ERR_LOST, msg, NULL);
	}
}

static void
conn_down_cb(struct db_conn *c, int was_ready, const char *err, void *arg)
{
	struct pconn *pc = arg;
	struct db *db = pc->db;
	int had_ready = db->ready;
	char *msg;

	if (pc->state != PCONN_DOWN)
		set_pconn_state(pc, PCONN_DOWN);
	if (pc->stmt_state != NULL)
		memset(pc->stmt_state, STMT_UNPREPARED, (size_t)pc->nstmt_state);
	pc->npreparing = 0;
	if (!pc->failed) {
		pc->failed = 1;
		db->nfailed++;
	}
	if (!was_ready)
		metric_add(m_errors, 1, "connect");
	msg = xasprintf("connection lost: %s", err);
	fail_inflight(pc, msg);
	free(msg);
	if (had_ready > 0 && db->ready == 0)
		fire_state(db);
}

/* --- the pool ------------------------------------------------------------------------ */

static void
copy_options(struct db *db, const struct db_options *opt)
{
	struct db_options o = *opt;

	o.conninfo = db->conninfo;
	o.application_name = db->application_name;
	if (o.pool_size < 1)
		o.pool_size = 1;
	if (o.pipeline_depth < 1)
		o.pipeline_depth = 1;
	if (o.queue_timeout_ms <= 0)
		o.queue_timeout_ms = 5000;
	db->opt = o;
}

struct db *
db_create(struct event_base *base, struct evdns_base *dns, const struct db_options *opt)
{
	static const struct db_conn_cbs cbs = {conn_ready_cb, conn_input_cb, conn_down_cb};
	struct db *db = xcalloc(1, sizeof(*db));

	metrics_register();
	db->base = base;
	db->dns = dns;
	db->conninfo = xstrdup(opt->conninfo != NULL ? opt->conninfo : "");
	db->application_name = opt->application_name ? xstrdup(opt->application_name) : NULL;
	copy_options(db, opt);
	TAILQ_INIT(&db->queue);
	TAILQ_INIT(&db->failed);
	db->queue_timer = evtimer_new(base, queue_timer_cb, db);
	db->defer = event_new(base, -1, 0, defer_cb, db);
	db->nconns = db->opt.pool_size;
	db->conns = xcalloc((size_t)db->nconns, sizeof(*db->conns));
	for (int i = 0; i < db->nconns; i++) {
		struct pconn *pc = &db->conns[i];
		char label[32], *err = NULL;

		pc->db = db;
		TAILQ_INIT(&pc->inflight);
		snprintf(label, sizeof(label), "pool %d", i + 1);
		pc->conn = db_conn_create(base, dns, &db->opt, label, &cbs, pc, &err);
		if (pc->conn == NULL) {
			log_error("db: bad connection string: %s", err);
			free(err);
			db->nconns = i;
			db->freeing = 1;
			db_free(db);
			return NULL;
		}
	}
	db->next_pool = pools;
	pools = db;
	return db;
}

void
db_set_options(struct db *db, const struct db_options *opt)
{
	int size = db->opt.pool_size;

	copy_options(db, opt);
	db->opt.pool_size = size; /* not reloadable */
	for (int i = 0; i < db->nconns; i++)
		db_conn_set_options(db->conns[i].conn, &db->opt);
	arm_queue_timer(db, 1);
	dispatch(db);
}

struct db_stmt *
db_prepare(struct db *db, const char *name, const char *sql)
{
	struct db_stmt *s = xcalloc(1, sizeof(*s));

	for (int i = 0; i < db->nstmts; i++) {
		if (strcmp(db->stmts[i]->name, name) == 0) {
			log_error("db: statement %s registered twice", name);
			abort();
		}
	}
	s->index = db->nstmts;
	s->name = xstrdup(name);
	s->sql = xstrdup(sql);
	db->stmts = xrealloc(db->stmts, (size_t)(db->nstmts + 1) * sizeof(*db->stmts));
	db->stmts[db->nstmts++] = s;
	/* Connections already up prepare it before their next group (send_prepares). */
	return s;
}

void
db_start(struct db *db)
{
	if (db->started)
		return;
	db->started = 1;
	log_info("db: pool of %d connections to %s", db->nconns,
	    db->nconns > 0 ? db_conn_describe(db->conns[0].conn) : "");
	for (int i = 0; i < db->nconns; i++)
		db_conn_start(db->conns[i].conn);
}

void
db_free(struct db *db)
{
	struct db_req *r;

	if (db == NULL)
		return;
	/* Freeing the pool under its own callback would pull the floor from under it. */
	if (db->in_cb > 0) {
		log_error("db_free called from inside a db callback");
		abort();
	}
	db->freeing = 1;
	for (struct db **pp = &pools; *pp != NULL; pp = &(*pp)->next_pool) {
		if (*pp == db) {
			*pp = db->next_pool;
			break;
		}
	}
	for (int i = 0; i < db->nconns; i++) {
		struct pconn *pc = &db->conns[i];

		db_conn_stop(pc->conn);
		if (pc->state == PCONN_READY)
			db->ready--;
		pc->state = PCONN_DOWN;
		fail_inflight(pc, "the database pool was closed");
	}
	/* Callbacks may queue more; those fail too, until nothing is left. */
	while ((r = TAILQ_FIRST(&db->queue)) != NULL || (r = TAILQ_FIRST(&db->failed)) != NULL) {
		if (r->where == REQ_QUEUED) {
			TAILQ_REMOVE(&db->queue, r, entry);
			db->nqueued--;
			req_finish(
			    r, DB_ERR_UNAVAILABLE, "the database pool is shutting down", NULL);
		} else {
			TAILQ_REMOVE(&db->failed, r, entry);
			db->nfailed_reqs--;
			req_finish(r, r->fail_status, r->fail_msg, NULL);
		}
	}
	for (int i = 0; i < db->nconns; i++) {
		db_conn_free(db->conns[i].conn);
		free(db->conns[i].stmt_state);
	}
	free(db->conns);
	for (int i = 0; i < db->nstmts; i++) {
		free(db->stmts[i]->name);
		free(db->stmts[i]->sql);
		free(db->stmts[i]);
	}
	free(db->stmts);
	while (db->hooks != NULL) {
		struct state_hook *h = db->hooks;

		db->hooks = h->next;
		free(h);
	}
	if (db->queue_timer != NULL)
		event_free(db->queue_timer);
	if (db->defer != NULL)
		event_free(db->defer);
	free(db->conninfo);
	free(db->application_name);
	free(db);
}

void
db_on_state(struct db *db, void (*cb)(int ready_count, void *arg), void *arg)
{
	struct state_hook *h = xcalloc(1, sizeof(*h)), **pp = &db->hooks;

	h->cb = cb;
	h->arg = arg;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = h;
}

int
db_ready_count(const struct db *db)
{
	return db->ready;
}

int
db_busy(const struct db *db)
{
	return db->nqueued + db->ninflight + db->nfailed_reqs;
}

int
db_peak_pipeline(const struct db *db)
{
	return db->peak_groups;
}

const char *
db_value(const PGresult *res, int row, int col)
{
	if (res == NULL || row < 0 || col < 0 || row >= PQntuples(res) || col >= PQnfields(res) ||
	    PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

int
db_rows(const PGresult *res)
{
	return res != NULL ? PQntuples(res) : 0;
}
