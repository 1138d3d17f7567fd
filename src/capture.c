/* SPDX-License-Identifier: ISC */
/* Change capture: turn committed outbox rows (hookd.changes) into messages, one per change. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "hookd/app.h"
#include "hookd/capture.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/json.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/migrate.h"

#define PRUNE_MIN_MS  1000  /* retention runs every quarter of capture_retention, within */
#define PRUNE_MAX_MS  60000 /* these bounds */
#define PRUNE_BATCH   1000  /* changes one retention transaction deletes at most */
#define STATS_MS      1000  /* how often hookd.analyze_grown() runs */
#define HELD_FIRST_MS 2     /* first look again at changes held back by an open transaction */

/*
 * The reader runs one hookd.capture_step() at a time. A wake-up that arrives while a
 * step runs is remembered and answered by another step when it finishes, so a NOTIFY
 * is never lost and never piles up.
 *
 * A step may find committed changes held back behind a transaction that is still open
 * (the snapshot xmin). When that transaction ends, nothing may wake the reader (it sends
 * no NOTIFY unless it changed a watched table too), so the reader looks again after
 * HELD_FIRST_MS, doubling while the same changes stay held, up to the poll interval.
 *
 * A step that cannot run (the pool has no connection) or that fails with the connection
 * is remembered (wanted) and run as soon as the pool has a connection again: a NOTIFY or
 * a LISTEN reconnect that arrives while the pool is down, or a step lost in a Postgres
 * restart, must not wait for the next poll (up to capture_poll_interval, 10 min at most).
 */
struct capture {
	struct app *app;
	struct event *poll;
	struct event *prune;
	struct event *soon;  /* the look again at held changes */
	struct event *stats; /* hookd.analyze_grown() */
	struct db_req *step; /* the step in flight */
	struct db_req *pruning;
	struct db_req *analyzing;
	int again;       /* woken while a step ran */
	int wanted;      /* a step is owed: run it when the pool has a connection */
	int soon_fired;  /* the step now running was the look again */
	int64_t held_ms; /* the current delay of the look again; 0: nothing held */
	void (*on_work)(void *arg);
	void *on_work_arg;
};

static struct metric *m_changes, *m_steps;

static const char step_sql[] =
    "SELECT changes, messages, more, held, reset FROM hookd.capture_step($1)";
static const char prune_sql[] =
    "SELECT hookd.capture_prune($1::bigint * interval '1 millisecond', $2)";
static const char stats_sql[] = "SELECT hookd.analyze_grown()";

static void step(struct capture *c);

/* Look again at changes held back, soon (see struct capture). */
static void
look_again(struct capture *c)
{
	int64_t poll_ms = c->app->cfg.capture_poll_interval;
	struct timeval tv;

	if (c->held_ms == 0)
		c->held_ms = HELD_FIRST_MS;
	else if (c->soon_fired)
		c->held_ms *= 2; /* still held after a look again: a longer transaction */
	if (c->held_ms > poll_ms)
		c->held_ms = poll_ms;
	if (evtimer_pending(c->soon, NULL))
		return;
	tv.tv_sec = (time_t)(c->held_ms / 1000);
	tv.tv_usec = (suseconds_t)(c->held_ms % 1000 * 1000);
	evtimer_add(c->soon, &tv);
}

static void
step_cb(const struct db_result *r, void *arg)
{
	struct capture *c = arg;
	int more = 0;

	c->step = NULL;
	if (r->status == DB_OK && db_rows(r->res[0]) == 1) {
		int changes = atoi(db_value(r->res[0], 0, 0));
		int messages = atoi(db_value(r->res[0], 0, 1));
		const char *reset = db_value(r->res[0], 0, 4);

		if (reset != NULL)
			log_error("capture: %s", reset);
		more = strcmp(db_value(r->res[0], 0, 2), "t") == 0;
		if (strcmp(db_value(r->res[0], 0, 3), "t") == 0)
			look_again(c);
		else
			c->held_ms = 0;
		metric_add(m_steps, 1);
		if (changes > 0) {
			metric_add(m_changes, changes);
			log_debug(
			    "capture: %d change(s) read, %d message(s) made", changes, messages);
		}
		if (messages > 0 && c->on_work != NULL)
			c->on_work(c->on_work_arg);
	} else if (db_schema_missing(r)) {
		/* The schema is older than this binary: the janitor migrates, the poll retries. */
		log_debug("capture: schema not ready: %s", r->error);
	} else if (r->status == DB_ERR_LOST || r->status == DB_ERR_UNAVAILABLE) {
		/* Committed or not, it is owed: again now, or when the pool is back. */
		log_info("capture: step not done, will retry: %s", r->error);
		c->wanted = 1;
	} else if (r->status != DB_OK) {
		log_warn("capture: cannot read changes: %s", r->error);
	}
	c->soon_fired = 0;
	/* A full batch means there is more; a wake-up during the step may mean more too. */
	if (more || c->again || c->wanted) {
		c->again = 0;
		step(c);
	}
}

static void
step(struct capture *c)
{
	struct db_params p;

	if (c->step != NULL) {
		c->again = 1;
		return;
	}
	if (c->app->draining)
		return;
	if (db_ready_count(c->app->db) == 0) {
		c->wanted = 1; /* pool_state_cb runs it */
		return;
	}
	c->wanted = 0;
	db_params_init(&p);
	db_param_int(&p, c->app->cfg.capture_batch);
	c->step = db_query(c->app->db, step_sql, &p, step_cb, c);
}

/* The pool gained a connection, or lost its last one. */
static void
pool_state_cb(int ready, void *arg)
{
	struct capture *c = arg;

	if (ready == 0)
		c->wanted = 1; /* whatever happened meanwhile is read when it is back */
	else if (c->wanted)
		step(c);
}

static void
notify_cb(const char *channel, const char *payload, void *arg)
{
	step(arg);
}

static void
soon_cb(evutil_socket_t fd, short what, void *arg)
{
	struct capture *c = arg;

	c->soon_fired = 1;
	step(c);
}

static void
reconnect_cb(void *arg)
{
	/* Anything committed while the LISTEN connection was down is read now. */
	step(arg);
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct capture *c = arg;
	struct timeval tv = {c->app->cfg.capture_poll_interval / 1000,
	    (c->app->cfg.capture_poll_interval % 1000) * 1000};

	step(c);
	event_add(c->poll, &tv);
}

static void prune_batch(struct capture *c);

static void
pruned_cb(const struct db_result *r, void *arg)
{
	struct capture *c = arg;
	int n = 0;

	c->pruning = NULL;
	if (r->status == DB_OK) {
		n = atoi(db_value(r->res[0], 0, 0));
		if (n > 0)
			log_debug("capture: %d read change(s) deleted", n);
	} else if (r->status != DB_ERR_UNAVAILABLE) {
		log_debug("capture: prune: %s", r->error);
	}
	/* A full batch: there may be more, in a transaction of its own. */
	if (n >= PRUNE_BATCH)
		prune_batch(c);
}

/* Delete one batch of read changes older than capture_retention. */
static void
prune_batch(struct capture *c)
{
	struct db_params p;

	if (c->pruning != NULL || c->app->draining || db_ready_count(c->app->db) == 0)
		return;
	db_params_init(&p);
	db_param_int(&p, c->app->cfg.capture_retention);
	db_param_int(&p, PRUNE_BATCH);
	c->pruning = db_query(c->app->db, prune_sql, &p, pruned_cb, c);
}

static void
prune_cb(evutil_socket_t fd, short what, void *arg)
{
	struct capture *c = arg;
	int64_t ms = c->app->cfg.capture_retention / 4;
	struct timeval tv;

	if (ms < PRUNE_MIN_MS)
		ms = PRUNE_MIN_MS;
	if (ms > PRUNE_MAX_MS)
		ms = PRUNE_MAX_MS;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	prune_batch(c);
	event_add(c->prune, &tv);
}

static void
analyzed_cb(const struct db_result *r, void *arg)
{
	struct capture *c = arg;

	c->analyzing = NULL;
	if (r->status == DB_OK && atoi(db_value(r->res[0], 0, 0)) > 0)
		log_debug("capture: %s of hookd's tables analyzed", db_value(r->res[0], 0, 0));
	else if (r->status != DB_OK && r->status != DB_ERR_UNAVAILABLE)
		log_debug("capture: analyze: %s", r->error);
}

/*
 * Statistics for hookd's tables as they grow (hookd.analyze_grown, 011_capture_reader.sql):
 * a new database's plans would otherwise stay those of empty tables until autovacuum.
 */
static void
stats_cb(evutil_socket_t fd, short what, void *arg)
{
	struct capture *c = arg;
	struct timeval tv = {STATS_MS / 1000, 0};

	if (c->analyzing == NULL && !c->app->draining && db_ready_count(c->app->db) > 0)
		c->analyzing = db_query(c->app->db, stats_sql, NULL, analyzed_cb, c);
	event_add(c->stats, &tv);
}

struct capture *
capture_new(struct app *app)
{
	struct capture *c = xcalloc(1, sizeof(*c));
	struct timeval now = {0, 0};

	if (m_changes == NULL) {
		m_changes = metric_counter("hookd_capture_changes_total",
		    "Row changes read from the outbox and turned into messages.", NULL);
		m_steps = metric_counter(
		    "hookd_capture_steps_total", "Transactions of the change reader.", NULL);
	}
	c->app = app;
	listen_subscribe(app->listen, "hookd_changes", notify_cb, c);
	listen_on_connect(app->listen, reconnect_cb, c);
	db_on_state(app->db, pool_state_cb, c);
	c->poll = event_new(app->base, -1, 0, poll_cb, c);
	c->prune = event_new(app->base, -1, 0, prune_cb, c);
	c->soon = evtimer_new(app->base, soon_cb, c);
	c->stats = evtimer_new(app->base, stats_cb, c);
	event_add(c->poll, &now);
	event_add(c->prune, &now);
	event_add(c->stats, &now);
	return c;
}

void
capture_on_work(struct capture *c, void (*cb)(void *arg), void *arg)
{
	c->on_work = cb;
	c->on_work_arg = arg;
}

int
capture_busy(const struct capture *c)
{
	return c->step != NULL;
}

void
capture_free(struct capture *c)
{
	if (c == NULL)
		return;
	if (c->step != NULL)
		db_cancel(c->step);
	if (c->pruning != NULL)
		db_cancel(c->pruning);
	if (c->analyzing != NULL)
		db_cancel(c->analyzing);
	event_free(c->poll);
	event_free(c->prune);
	event_free(c->soon);
	event_free(c->stats);
	free(c);
}

/* --- /api/v1/watches ---------------------------------------------------------------------- */

static void
unavailable(struct http_req *r, const struct db_result *res)
{
	http_reply_header(r, "Retry-After", "1");
	http_reply_error(r, 503, "unavailable", "the database is unavailable: %s", res->error);
}

static void invalid(struct http_req *r, const char *field, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void
invalid(struct http_req *r, const char *field, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_set_str(o, "error", "validation_failed");
	json_set_str(o, "message", msg);
	json_set_str(o, "field", field);
	http_reply_json(r, 422, o);
}

static struct json_object *
watch_json(const PGresult *res, int row)
{
	struct json_object *o = json_object_new_object(), *ops;
	const char *v = db_value(res, row, 3);
	char err[64];

	json_set_str(o, "table", db_value(res, row, 0));
	json_set_str(o, "schema", db_value(res, row, 1));
	json_set_str(o, "name", db_value(res, row, 2));
	ops = v ? json_parse(v, strlen(v), err, sizeof(err)) : NULL;
	json_set_obj(o, "operations", ops ? ops : json_object_new_array());
	return o;
}

static const char list_sql[] =
    "SELECT w.\"table\", w.schema_name, w.table_name, array_to_json(w.operations)::text"
    " FROM hookd.watches w ORDER BY 1";

static void
listed_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	struct json_object *o, *arr;

	if (res->status != DB_OK) {
		unavailable(r, res);
		return;
	}
	o = json_object_new_object();
	arr = json_object_new_array();
	for (int i = 0; i < db_rows(res->res[0]); i++)
		json_object_array_add(arr, watch_json(res->res[0], i));
	json_set_obj(o, "data", arr);
	http_reply_json(r, 200, o);
}

/* GET /api/v1/watches */
static void
watches_list(struct http_req *r, void *arg)
{
	struct app *app = arg;

	db_query(app->db, list_sql, NULL, listed_cb, r);
}

static void
watched_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *row;

	if (res->status == DB_ERR_SQL) {
		if (strcmp(res->sqlstate, "42P01") == 0 || strcmp(res->sqlstate, "3F000") == 0)
			invalid(r, "table", "%s", res->error);
		else if (strcmp(res->sqlstate, "42501") == 0)
			invalid(r, "table", "%s", res->error);
		else if (strcmp(res->sqlstate, "P0001") == 0)
			invalid(r, "operations", "%s", res->error);
		else if (strcmp(res->sqlstate, "42809") == 0)
			invalid(r, "table", "not a table: %s", res->error);
		else
			http_reply_error(r, 500, "internal", "cannot watch: %s", res->error);
		return;
	}
	if (res->status != DB_OK) {
		unavailable(r, res);
		return;
	}
	row = res->res[1];
	if (db_rows(row) != 1) {
		http_reply_error(r, 500, "internal", "the trigger was made but is not listed");
		return;
	}
	http_reply_json(r, 201, watch_json(row, 0));
}

/* POST /api/v1/watches {"table": "public.users", "operations": ["INSERT", ...]} */
static void
watches_create(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct json_object *body, *ops, *member = NULL;
	const unsigned char *raw;
	const char *table;
	char err[128], *opstext;
	size_t len;
	struct db_group *g;
	struct db_params p;

	raw = http_req_body(r, &len);
	body = json_parse((const char *)raw, len, err, sizeof(err));
	if (body == NULL || !json_object_is_type(body, json_type_object)) {
		http_reply_error(r, 400, "invalid_json", "the body is not a JSON object%s%s",
		    body ? "" : ": ", body ? "" : err);
		json_object_put(body);
		return;
	}
	table = json_get_str(body, "table");
	if (table == NULL || *table == '\0' || strlen(table) > 300) {
		invalid(r, "table", "%s", "table must name a table (\"schema.table\")");
		json_object_put(body);
		return;
	}
	ops = json_get_arr(body, "operations");
	if (json_object_object_get_ex(body, "operations", &member) && ops == NULL &&
	    member != NULL) {
		invalid(
		    r, "operations", "%s", "operations must be an array of INSERT, UPDATE, DELETE");
		json_object_put(body);
		return;
	}
	opstext = ops ? json_compact(ops, NULL) : xstrdup("[\"INSERT\",\"UPDATE\",\"DELETE\"]");
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, table);
	db_param_text(&p, opstext);
	/* hookd.watch_target: an unqualified name never means one of hookd's own tables. */
	db_group_sql(g,
	    "SELECT hookd.watch(hookd.watch_target($1),"
	    " ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))",
	    &p);
	db_params_init(&p);
	db_param_text(&p, table);
	db_group_sql(g,
	    "SELECT w.\"table\", w.schema_name, w.table_name, array_to_json(w.operations)::text"
	    " FROM hookd.watches w WHERE w.\"table\" = hookd.watch_target($1)::text",
	    &p);
	db_group_send(g, watched_cb, r);
	free(opstext);
	json_object_put(body);
}

/* 409: enabled subscriptions still name the table; they are listed. */
static void
in_use(struct http_req *r, const PGresult *users)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char names[300] = "", *msg;
	size_t len = 0;
	int n = db_rows(users);

	for (int i = 0; i < n; i++) {
		struct json_object *u = json_object_new_object();
		const char *name = db_value(users, i, 1);

		json_set_str(u, "id", db_value(users, i, 0));
		json_set_str(u, "name", name);
		json_object_array_add(arr, u);
		if (len < sizeof(names) - 1)
			len += (size_t)snprintf(
			    names + len, sizeof(names) - len, "%s\"%s\"", i > 0 ? ", " : "", name);
	}
	if (len >= sizeof(names) - 1)
		snprintf(names + sizeof(names) - 5, 5, "...");
	msg = xasprintf("%d enabled subscription(s) still receive this table's changes (%s): "
	                "change their events first, or unwatch anyway with ?force=true",
	    n, names);
	json_set_str(o, "error", "conflict");
	json_set_str(o, "message", msg);
	json_set_obj(o, "subscriptions", arr);
	http_reply_json(r, 409, o);
	free(msg);
}

static void
unwatched_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;

	if (res->status == DB_ERR_SQL &&
	    (strcmp(res->sqlstate, "42P01") == 0 || strcmp(res->sqlstate, "3F000") == 0)) {
		http_reply_error(r, 404, "not_found", "no such table");
		return;
	}
	if (res->status == DB_ERR_SQL && strcmp(res->sqlstate, "42501") == 0) {
		/* Postgres lets only the table's owner drop a trigger (TRIGGER does not do). */
		http_reply_error(r, 403, "forbidden",
		    "hookd's database user may not drop the trigger: only the table's owner may "
		    "(%s)",
		    res->error);
		return;
	}
	if (res->status == DB_ERR_SQL) {
		http_reply_error(r, 500, "internal", "cannot unwatch: %s", res->error);
		return;
	}
	if (res->status != DB_OK) {
		unavailable(r, res);
		return;
	}
	if (db_rows(res->res[0]) == 0) {
		http_reply_error(r, 404, "not_found", "that table is not watched");
		return;
	}
	if (db_rows(res->res[2]) == 0) {
		in_use(r, res->res[1]);
		return;
	}
	http_reply_raw(r, 204, NULL, NULL, 0);
}

/*
 * DELETE /api/v1/watches/{table}[?force=true]. Refused (409) while an enabled subscription
 * would receive the table's changes, which it would silently stop getting; force unwatches
 * anyway. The check and the unwatch are one transaction.
 */
static void
watches_delete(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *force = http_req_query(r, "force");
	struct db_group *g;
	struct db_params p;
	int forced;

	if (force == NULL || strcmp(force, "false") == 0 || strcmp(force, "0") == 0) {
		forced = 0;
	} else if (*force == '\0' || strcmp(force, "true") == 0 || strcmp(force, "1") == 0) {
		forced = 1;
	} else {
		http_reply_error(r, 400, "invalid_query", "force must be true or false");
		return;
	}
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, http_req_param(r, "table"));
	db_group_sql(g,
	    "SELECT 1 FROM hookd.watches w WHERE w.\"table\" = hookd.watch_target($1)::text", &p);
	db_group_sql(g, "SELECT u.id, u.name FROM hookd.watch_users(hookd.watch_target($1)) u", &p);
	db_param_bool(&p, forced);
	db_group_sql(g,
	    "SELECT hookd.unwatch(hookd.watch_target($1))"
	    " WHERE $2::boolean OR NOT EXISTS (SELECT 1 FROM hookd.watch_users("
	    "hookd.watch_target($1)))",
	    &p);
	db_group_send(g, unwatched_cb, r);
}

void
api_watches_register(struct app *app)
{
	http_server_route(app->http, "GET", "/api/v1/watches", HTTP_ADMIN, watches_list, app);
	http_server_route(app->http, "POST", "/api/v1/watches", HTTP_ADMIN, watches_create, app);
	http_server_route(
	    app->http, "DELETE", "/api/v1/watches/{table}", HTTP_ADMIN, watches_delete, app);
}
