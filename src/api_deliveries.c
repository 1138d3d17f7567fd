/* SPDX-License-Identifier: ISC */
/* Admin routes for outbound history: deliveries, attempts, dead letters, replay, test sends, stats.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/deliver.h"
#include "hookd/http_server.h"
#include "hookd/json.h"
#include "hookd/log.h"

#define LIST_DEFAULT     50
#define LIST_MAX         500
#define ATTEMPTS_MAX     1000
#define WINDOW_DEFAULT_S 86400
#define WINDOW_MAX_S     (86400 * 90)

/* A timestamptz as ISO 8601 UTC with milliseconds, as time_iso8601() writes it. */
#define ISO(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * One delivery as the API shows it (seed 004's delivery history: status, attempts,
 * response time, response body, timestamp). la is its latest attempt (LATERAL), m its
 * message.
 */
#define DELIVERY_FIELDS                                                                                                    \
	"'id', d.id, 'webhook_id', d.subscription_id, 'message_id', d.message_id,"                                         \
	" 'event', m.event_type, 'status', d.status, 'attempts', d.attempts,"                                              \
	" 'response_status', d.last_status, 'response_time_ms', d.last_duration_ms,"                                       \
	" 'response_body', la.response_body, 'error', d.last_error,"                                                       \
	" 'timestamp', " ISO(                                                                                              \
	    "coalesce(la.started_at, d.created_at)") ","                                                                   \
	                                             " 'next_attempt_at', CASE WHEN d.status IN "                          \
	                                             "('pending', 'failed') THEN " ISO(                                    \
	                                                 "d.next_attempt_at") " END,"                                      \
	                                                                      " 'created_at',"                             \
	                                                                      " " ISO(                                     \
	                                                                          "d.created_"                             \
	                                                                          "at") ", "                               \
	                                                                                "'upd"                             \
	                                                                                "ated"                             \
	                                                                                "_at'"                             \
	                                                                                ","                                \
	                                                                                " " ISO(                           \
	                                                                                    "d."                           \
	                                                                                    "upda"                         \
	                                                                                    "ted_"                         \
	                                                                                    "at") ","                      \
	                                                                                          " 'completed_at', " ISO( \
	                                                                                              "d.completed_at")
#define DELIVERY_FROM                                                                              \
	" FROM hookd.deliveries d LEFT JOIN hookd.messages m ON m.id = d.message_id"               \
	" LEFT JOIN LATERAL (SELECT a.response_body, a.started_at FROM hookd.attempts a"           \
	"   WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1) la ON true"

/* One attempt, with what it delivered. */
#define ATTEMPT_JSON                                                                               \
	"json_build_object('id', a.id, 'delivery_id', a.delivery_id,"                              \
	" 'webhook_id', a.subscription_id, 'event_id', d.message_id, 'event', m.event_type,"       \
	" 'attempt', a.attempt, 'started_at', " ISO(                                               \
	    "a.started_at") ","                                                                    \
	                    " 'duration_ms', a.duration_ms, 'status_code', a.status_code,"         \
	                    " 'success', coalesce(a.status_code BETWEEN 200 AND 299, false),"      \
	                    " 'response_body', a.response_body, 'error', a.error)::text"
#define ATTEMPT_FROM                                                                               \
	" FROM hookd.attempts a LEFT JOIN hookd.deliveries d ON d.id = a.delivery_id"              \
	" LEFT JOIN hookd.messages m ON m.id = d.message_id"

static const char sub_exists_sql[] = "SELECT 1 FROM hookd.subscriptions WHERE id = $1";

/* Newest first, keyset pagination on (created_at, id): "before" is the last id seen. */
static const char deliveries_sql[] =
    "SELECT json_build_object(" DELIVERY_FIELDS ")::text, d.id" DELIVERY_FROM
    " WHERE d.subscription_id = $1"
    "   AND ($2::hookd.delivery_status IS NULL OR d.status = $2)"
    "   AND ($3::uuid IS NULL OR (d.created_at, d.id) <"
    "        (SELECT b.created_at, b.id FROM hookd.deliveries b WHERE b.id = $3))"
    " ORDER BY d.created_at DESC, d.id DESC LIMIT $4";

static const char delivery_sql[] =
    "SELECT json_build_object(" DELIVERY_FIELDS ", 'message', json_build_object('id', m.id,"
    "  'event', m.event_type, 'origin', m.origin, 'created_at', " ISO(
        "m.created_at") ","
                        "  'data', m.data))::text" DELIVERY_FROM " WHERE d.id = $1";

static const char delivery_exists_sql[] = "SELECT 1 FROM hookd.deliveries WHERE id = $1";

static const char attempts_sql[] =
    "SELECT " ATTEMPT_JSON ATTEMPT_FROM " WHERE a.delivery_id = $1 ORDER BY a.id LIMIT $2";

/* Seed 003's logs: a webhook's attempts, newest first. */
static const char logs_sql[] = "SELECT " ATTEMPT_JSON ATTEMPT_FROM " WHERE a.subscription_id = $1"
                               " ORDER BY a.started_at DESC, a.id DESC LIMIT $2";

/* Dead letters, most recently dead first; keyset pagination on (updated_at, id). */
static const char dead_sql[] =
    "SELECT json_build_object(" DELIVERY_FIELDS ", 'failure_id', d.id)::text, d.id" DELIVERY_FROM
    " WHERE d.status = 'dead' AND ($1::uuid IS NULL OR d.subscription_id = $1)"
    "   AND ($2::uuid IS NULL OR (d.updated_at, d.id) <"
    "        (SELECT b.updated_at, b.id FROM hookd.deliveries b WHERE b.id = $2))"
    " ORDER BY d.updated_at DESC, d.id DESC LIMIT $3";

/*
 * Replay one delivery: a dead (or failed, between retries) delivery goes back to pending,
 * its attempt count reset, due now. Reports why not otherwise. $2 limits it to one
 * subscription (seed 003's route) or is NULL.
 */
static const char replay_sql[] =
    "WITH t AS ("
    "  SELECT d.id, d.status, d.lease_until > now() AS leased, s.id IS NOT NULL AS sub_found,"
    "    s.enabled, s.disabled_reason"
    "  FROM hookd.deliveries d LEFT JOIN hookd.subscriptions s ON s.id = d.subscription_id"
    "  WHERE d.id = $1 AND ($2::uuid IS NULL OR d.subscription_id = $2) FOR UPDATE OF d"
    "), r AS ("
    "  UPDATE hookd.deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(),"
    "    lease_until = NULL, leased_by = NULL, completed_at = NULL, updated_at = now()"
    "  FROM t WHERE d.id = t.id AND t.status IN ('dead', 'failed')"
    "    AND NOT coalesce(t.leased, false) AND t.enabled"
    "  RETURNING d.id"
    ")"
    " SELECT t.status, coalesce(t.leased, false), t.sub_found, t.enabled, t.disabled_reason,"
    "   (SELECT count(*) FROM r),"
    "   CASE WHEN EXISTS (SELECT 1 FROM r) THEN pg_notify('hookd_deliveries', '') END"
    " FROM t";

/* Replay every dead or failed delivery of a subscription made since a time. */
static const char recover_sql[] =
    "WITH s AS (SELECT id, enabled, disabled_reason FROM hookd.subscriptions WHERE id = $1),"
    " r AS ("
    "  UPDATE hookd.deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(),"
    "    lease_until = NULL, leased_by = NULL, completed_at = NULL, updated_at = now()"
    "  FROM s WHERE d.subscription_id = s.id AND s.enabled"
    "    AND d.status IN ('dead', 'failed') AND d.created_at >= $2::timestamptz"
    "    AND ($3::timestamptz IS NULL OR d.created_at < $3::timestamptz)"
    "    AND (d.lease_until IS NULL OR d.lease_until < now())"
    "  RETURNING d.id"
    ")"
    " SELECT s.enabled, s.disabled_reason, (SELECT count(*) FROM r),"
    "   CASE WHEN EXISTS (SELECT 1 FROM r) THEN pg_notify('hookd_deliveries', '') END"
    " FROM s";

/*
 * Stats over a recent window ($2 seconds), for one subscription ($1) or all: attempts
 * sent, their outcome and latency percentiles; deliveries that died in the window; the
 * backlog (pending or failed deliveries now).
 */
static const char stats_sql[] =
    "WITH a AS ("
    "  SELECT status_code, duration_ms FROM hookd.attempts"
    "  WHERE started_at >= now() - $2::bigint * interval '1 second'"
    "    AND ($1::uuid IS NULL OR subscription_id = $1)"
    "), t AS ("
    "  SELECT count(*) AS sent,"
    "    count(*) FILTER (WHERE status_code BETWEEN 200 AND 299) AS succeeded,"
    "    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,"
    "    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95,"
    "    percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99,"
    "    avg(duration_ms) AS avg, max(duration_ms) AS max"
    "  FROM a"
    ")"
    " SELECT json_build_object('window_seconds', $2::bigint, 'sent', t.sent,"
    "   'succeeded', t.succeeded, 'failed', t.sent - t.succeeded,"
    "   'dead', (SELECT count(*) FROM hookd.deliveries d WHERE d.status = 'dead'"
    "     AND d.updated_at >= now() - $2::bigint * interval '1 second'"
    "     AND ($1::uuid IS NULL OR d.subscription_id = $1)),"
    "   'pending', (SELECT count(*) FROM hookd.deliveries d"
    "     WHERE d.status IN ('pending', 'failed')"
    "     AND ($1::uuid IS NULL OR d.subscription_id = $1)),"
    "   'success_rate', CASE WHEN t.sent > 0 THEN round(t.succeeded::numeric / t.sent, 4) END,"
    "   'latency_ms', json_build_object('p50', round(t.p50::numeric, 3),"
    "     'p95', round(t.p95::numeric, 3), 'p99', round(t.p99::numeric, 3),"
    "     'avg', round(t.avg::numeric, 3), 'max', round(t.max::numeric, 3)))::text"
    " FROM t";

/* Which reply shape a route speaks. */
enum shape {
	SHAPE_V1,        /* {"data": ...} / {"error", "message"} */
	SHAPE_OMNISALES, /* seed 003: {"success": true, "data": ...} / {"success": false, "error"}
	                  */
};

/* A request waiting on the database; owned by whoever holds the pending callback. */
struct actx {
	struct app *app;
	struct http_req *req;
	enum shape shape;
	char id[37];
	int limit;
	int check; /* statement 0 checks that the subscription / delivery exists */
};

static struct actx *
actx_new(struct app *app, struct http_req *r, enum shape shape)
{
	struct actx *c = xcalloc(1, sizeof(*c));

	c->app = app;
	c->req = r;
	c->shape = shape;
	return c;
}

/* --- replies --------------------------------------------------------------------------- */

static void reply_error(struct http_req *r, enum shape shape, int status, const char *code,
    const char *fmt, ...) PRINTF_LIKE(5, 6);

static void
reply_error(
    struct http_req *r, enum shape shape, int status, const char *code, const char *fmt, ...)
{
	struct json_object *o;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (shape == SHAPE_V1) {
		http_reply_error(r, status, code, "%s", msg);
		return;
	}
	o = json_object_new_object();
	json_set_bool(o, "success", 0);
	json_set_str(o, "error", msg);
	http_reply_json(r, status, o);
}

/* 422 naming the field. */
static void
reply_invalid(struct http_req *r, enum shape shape, const char *field, const char *message)
{
	struct json_object *o = json_object_new_object();

	if (shape == SHAPE_V1) {
		json_set_str(o, "error", "validation_failed");
		json_set_str(o, "message", message);
		json_set_str(o, "field", field);
	} else {
		json_set_bool(o, "success", 0);
		json_set_str(o, "error", message);
		json_set_str(o, "field", field);
	}
	http_reply_json(r, 422, o);
}

/* Reply with data in the route's shape: v1 gets it as is (extra members merged in). */
static void
reply_data(struct http_req *r, enum shape shape, int status, struct json_object *data)
{
	struct json_object *o;

	if (shape == SHAPE_V1) {
		http_reply_json(r, status, data);
		return;
	}
	o = json_object_new_object();
	json_set_bool(o, "success", 1);
	json_set_obj(o, "data", data);
	http_reply_json(r, status, o);
}

/* Reply for a group that did not commit; returns 1 when it replied. */
static int
reply_db_error(struct actx *c, const struct db_result *res)
{
	switch (res->status) {
	case DB_OK: return 0;
	case DB_ERR_SQL:
		log_msg(LOG_LEVEL_ERROR, http_req_id(c->req), "deliveries api: %s (%s)", res->error,
		    res->sqlstate);
		reply_error(c->req, c->shape, 500, "internal", "the database refused the query: %s",
		    res->error);
		return 1;
	case DB_ERR_UNAVAILABLE:
	case DB_ERR_LOST: break;
	}
	http_reply_header(c->req, "Retry-After", "1");
	reply_error(
	    c->req, c->shape, 503, "unavailable", "the database is unavailable: %s", res->error);
	return 1;
}

/* A JSON cell as an object (NULL cells, and defensively unparsable ones, as null). */
static struct json_object *
cell_json(const PGresult *res, int row, int col)
{
	const char *v = db_value(res, row, col);
	char err[64];

	return v != NULL ? json_parse(v, strlen(v), err, sizeof(err)) : NULL;
}

static struct json_object *
rows_array(const PGresult *res)
{
	struct json_object *a = json_object_new_array();
	int n = db_rows(res);

	for (int i = 0; i < n; i++)
		json_object_array_add(a, cell_json(res, i, 0));
	return a;
}

/* The {id} parameter when it can name a row, else a 404 reply and NULL. */
static const char *
id_param(struct http_req *r, enum shape shape, const char *what)
{
	const char *id = http_req_param(r, "id");

	if (id == NULL || !uuid_valid(id)) {
		reply_error(r, shape, 404, "not_found", "no such %s", what);
		return NULL;
	}
	return id;
}

/* ?limit= in 1..max (default LIST_DEFAULT); -1 after replying 400. */
static int
limit_param(struct http_req *r, enum shape shape, int max)
{
	const char *v = http_req_query(r, "limit");
	int64_t n = LIST_DEFAULT;

	if (v != NULL && parse_int64(v, 1, max, &n) != 0) {
		reply_error(
		    r, shape, 400, "bad_request", "limit must be a whole number from 1 to %d", max);
		return -1;
	}
	return (int)n;
}

/* Parse the body as a JSON object (an empty body is {}); NULL after replying. */
static struct json_object *
body_object(struct http_req *r, enum shape shape)
{
	size_t len;
	const unsigned char *raw = http_req_body(r, &len);
	struct json_object *o;
	char err[160];

	if (len == 0)
		return json_object_new_object();
	o = json_parse((const char *)raw, len, err, sizeof(err));
	if (o == NULL) {
		reply_error(r, shape, 400, "invalid_json", "the body is not valid JSON: %s", err);
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		reply_invalid(r, shape, NULL, "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* --- GET /api/v1/webhooks/{id}/deliveries, seed 003's logs ---------------------------- */

static void
list_cb(const struct db_result *res, void *arg)
{
	struct actx *c = arg;
	const PGresult *rows;
	struct json_object *o;
	int n;

	if (reply_db_error(c, res))
		goto out;
	if (c->check && db_rows(res->res[0]) == 0) {
		reply_error(c->req, c->shape, 404, "not_found", "no webhook %s", c->id);
		goto out;
	}
	rows = res->res[res->nres - 1];
	n = db_rows(rows);
	if (c->shape == SHAPE_OMNISALES) {
		reply_data(c->req, c->shape, 200, rows_array(rows));
		goto out;
	}
	o = json_object_new_object();
	json_set_obj(o, "data", rows_array(rows));
	/* Pass as "before" for the next page; null on the last one. */
	json_set_str(o, "next_before",
	    n == c->limit && n > 0 && PQnfields(rows) > 1 ? db_value(rows, n - 1, 1) : NULL);
	http_reply_json(c->req, 200, o);
out:
	free(c);
}

static int
valid_status(const char *s)
{
	return strcmp(s, "pending") == 0 || strcmp(s, "succeeded") == 0 ||
	       strcmp(s, "failed") == 0 || strcmp(s, "dead") == 0;
}

static void
webhook_deliveries(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = id_param(r, SHAPE_V1, "webhook"), *status, *before;
	struct db_group *g;
	struct db_params p;
	struct actx *c;
	int limit;

	/* Nothing may touch r once it has been answered. */
	if (id == NULL || (limit = limit_param(r, SHAPE_V1, LIST_MAX)) < 0)
		return;
	status = http_req_query(r, "status");
	before = http_req_query(r, "before");
	if (status != NULL && *status != '\0' && !valid_status(status)) {
		http_reply_error(
		    r, 400, "bad_request", "status must be pending, succeeded, failed or dead");
		return;
	}
	if (before != NULL && !uuid_valid(before)) {
		http_reply_error(r, 400, "bad_request", "before must be a delivery id");
		return;
	}
	c = actx_new(app, r, SHAPE_V1);
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->limit = limit;
	c->check = 1;
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, id);
	db_group_sql(g, sub_exists_sql, &p);
	db_param_text(&p, status != NULL && *status != '\0' ? status : NULL);
	db_param_text(&p, before);
	db_param_int(&p, limit);
	db_group_sql(g, deliveries_sql, &p);
	db_group_send(g, list_cb, c);
}

static void
omni_logs(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = id_param(r, SHAPE_OMNISALES, "webhook");
	struct db_group *g;
	struct db_params p;
	struct actx *c;
	int limit;

	if (id == NULL || (limit = limit_param(r, SHAPE_OMNISALES, LIST_MAX)) < 0)
		return;
	c = actx_new(app, r, SHAPE_OMNISALES);
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->limit = limit;
	c->check = 1;
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, id);
	db_group_sql(g, sub_exists_sql, &p);
	db_param_int(&p, limit);
	db_group_sql(g, logs_sql, &p);
	db_group_send(g, list_cb, c);
}

/* --- GET /api/v1/dead-letters, seed 003's GET replay ------------------------------------ */

static void
dead_letters(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *sub = http_req_query(r, "subscription"), *before = http_req_query(r, "before");
	struct db_params p;
	struct actx *c;
	int limit;

	if ((limit = limit_param(r, SHAPE_V1, LIST_MAX)) < 0)
		return;
	if (sub == NULL || *sub == '\0')
		sub = http_req_query(r, "webhook_id");
	if (sub != NULL && *sub == '\0')
		sub = NULL;
	if (sub != NULL && !uuid_valid(sub)) {
		http_reply_error(r, 400, "bad_request", "subscription must be a webhook id");
		return;
	}
	if (before != NULL && !uuid_valid(before)) {
		http_reply_error(r, 400, "bad_request", "before must be a delivery id");
		return;
	}
	c = actx_new(app, r, SHAPE_V1);
	c->limit = limit;
	db_params_init(&p);
	db_param_text(&p, sub);
	db_param_text(&p, before);
	db_param_int(&p, limit);
	db_query(app->db, dead_sql, &p, list_cb, c);
}

static void
omni_failed(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = id_param(r, SHAPE_OMNISALES, "webhook");
	struct db_group *g;
	struct db_params p;
	struct actx *c;
	int limit;

	if (id == NULL || (limit = limit_param(r, SHAPE_OMNISALES, LIST_MAX)) < 0)
		return;
	c = actx_new(app, r, SHAPE_OMNISALES);
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->limit = limit;
	c->check = 1;
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, id);
	db_group_sql(g, sub_exists_sql, &p);
	db_param_text(&p, NULL);
	db_param_int(&p, limit);
	db_group_sql(g, dead_sql, &p);
	db_group_send(g, list_cb, c);
}

/* --- GET /api/v1/deliveries/{id}[/attempts] ----------------------------------------------- */

static void
delivery_cb(const struct db_result *res, void *arg)
{
	struct actx *c = arg;
	struct json_object *o;

	if (reply_db_error(c, res))
		goto out;
	if (db_rows(res->res[0]) == 0) {
		http_reply_error(c->req, 404, "not_found", "no delivery %s", c->id);
		goto out;
	}
	o = cell_json(res->res[0], 0, 0);
	if (o == NULL) {
		http_reply_error(c->req, 500, "internal", "delivery %s could not be shown", c->id);
		goto out;
	}
	http_reply_json(c->req, 200, o);
out:
	free(c);
}

static void
get_delivery(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = id_param(r, SHAPE_V1, "delivery");
	struct db_params p;
	struct actx *c;

	if (id == NULL)
		return;
	c = actx_new(app, r, SHAPE_V1);
	snprintf(c->id, sizeof(c->id), "%s", id);
	db_params_init(&p);
	db_param_text(&p, id);
	db_query(app->db, delivery_sql, &p, delivery_cb, c);
}

static void
attempts_cb(const struct db_result *res, void *arg)
{
	struct actx *c = arg;
	struct json_object *o;

	if (reply_db_error(c, res))
		goto out;
	if (db_rows(res->res[0]) == 0) {
		http_reply_error(c->req, 404, "not_found", "no delivery %s", c->id);
		goto out;
	}
	o = json_object_new_object();
	json_set_obj(o, "data", rows_array(res->res[1]));
	http_reply_json(c->req, 200, o);
out:
	free(c);
}

static void
delivery_attempts(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = id_param(r, SHAPE_V1, "delivery");
	struct db_group *g;
	struct db_params p;
	struct actx *c;

	if (id == NULL)
		return;
	c = actx_new(app, r, SHAPE_V1);
	snprintf(c->id, sizeof(c->id), "%s", id);
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, id);
	db_group_sql(g, delivery_exists_sql, &p);
	db_param_int(&p, ATTEMPTS_MAX);
	db_group_sql(g, attempts_sql, &p);
	db_group_send(g, attempts_cb, c);
}

/* --- replay ----------------------------------------------------------------------------- */

static void
replay_cb(const struct db_result *res, void *arg)
{
	struct actx *c = arg;
	const PGresult *rs;
	const char *status, *enabled, *reason;
	struct json_object *o;

	if (reply_db_error(c, res))
		goto out;
	rs = res->res[0];
	if (db_rows(rs) == 0) {
		reply_error(c->req, c->shape, 404, "not_found", "no delivery %s%s", c->id,
		    c->shape == SHAPE_OMNISALES ? " for this webhook" : "");
		goto out;
	}
	status = db_value(rs, 0, 0);
	enabled = db_value(rs, 0, 3);
	reason = db_value(rs, 0, 4);
	if (atoi(db_value(rs, 0, 5)) > 0) {
		deliver_kick(c->app->deliver);
		o = json_object_new_object();
		json_set_str(o, "id", c->id);
		if (c->shape == SHAPE_OMNISALES)
			json_set_str(o, "failure_id", c->id);
		json_set_str(o, "status", "pending");
		json_set_str(o, "previous_status", status);
		reply_data(c->req, c->shape, 202, o);
		goto out;
	}
	if (strcmp(db_value(rs, 0, 2), "t") != 0)
		reply_error(c->req, c->shape, 409, "conflict",
		    "the webhook of delivery %s was deleted: there is nowhere to send it", c->id);
	else if (enabled == NULL || strcmp(enabled, "t") != 0)
		reply_error(c->req, c->shape, 409, "conflict",
		    "the webhook of delivery %s is disabled%s%s; enable it first", c->id,
		    reason ? ": " : "", reason ? reason : "");
	else if (strcmp(db_value(rs, 0, 1), "t") == 0)
		reply_error(c->req, c->shape, 409, "conflict",
		    "delivery %s is being sent right now", c->id);
	else
		reply_error(c->req, c->shape, 409, "conflict",
		    "delivery %s is %s: only dead or failed deliveries are replayed", c->id,
		    status);
out:
	free(c);
}

static void
start_replay(struct app *app, struct http_req *r, enum shape shape, const char *delivery_id,
    const char *sub_id)
{
	struct actx *c = actx_new(app, r, shape);
	struct db_params p;

	snprintf(c->id, sizeof(c->id), "%s", delivery_id);
	db_params_init(&p);
	db_param_text(&p, delivery_id);
	db_param_text(&p, sub_id);
	db_query(app->db, replay_sql, &p, replay_cb, c);
}

/* POST /api/v1/dead-letters/{id}/replay and POST /api/v1/deliveries/{id}/replay */
static void
replay_delivery(struct http_req *r, void *arg)
{
	const char *id = id_param(r, SHAPE_V1, "delivery");

	if (id != NULL)
		start_replay(arg, r, SHAPE_V1, id, NULL);
}

/* Seed 003: POST /api/webhooks/{id}/replay {"failure_id": "..."} */
static void
omni_replay(struct http_req *r, void *arg)
{
	const char *id = id_param(r, SHAPE_OMNISALES, "webhook");
	struct json_object *body;
	const char *fid;

	if (id == NULL || (body = body_object(r, SHAPE_OMNISALES)) == NULL)
		return;
	fid = json_get_str(body, "failure_id");
	if (fid == NULL || !uuid_valid(fid)) {
		reply_invalid(r, SHAPE_OMNISALES, "failure_id",
		    "failure_id must be the id of a failed delivery (GET /api/webhooks/:id/replay "
		    "lists them)");
		json_object_put(body);
		return;
	}
	start_replay(arg, r, SHAPE_OMNISALES, fid, id);
	json_object_put(body);
}

/* --- POST /api/v1/webhooks/{id}/recover ------------------------------------------------- */

static void
recover_cb(const struct db_result *res, void *arg)
{
	struct actx *c = arg;
	const PGresult *rs;
	const char *enabled, *reason;
	struct json_object *o;
	int n;

	if (res->status == DB_ERR_SQL && res->sqlstate != NULL &&
	    strncmp(res->sqlstate, "22", 2) == 0) {
		char msg[300];

		snprintf(
		    msg, sizeof(msg), "since and until must be ISO 8601 times: %s", res->error);
		reply_invalid(c->req, c->shape, "since", msg);
		goto out;
	}
	if (reply_db_error(c, res))
		goto out;
	rs = res->res[0];
	if (db_rows(rs) == 0) {
		http_reply_error(c->req, 404, "not_found", "no webhook %s", c->id);
		goto out;
	}
	enabled = db_value(rs, 0, 0);
	reason = db_value(rs, 0, 1);
	if (strcmp(enabled, "t") != 0) {
		http_reply_error(c->req, 409, "conflict",
		    "webhook %s is disabled%s%s; enable it first", c->id, reason ? ": " : "",
		    reason ? reason : "");
		goto out;
	}
	n = atoi(db_value(rs, 0, 2));
	if (n > 0)
		deliver_kick(c->app->deliver);
	o = json_object_new_object();
	json_set_int(o, "count", n);
	http_reply_json(c->req, 202, o);
out:
	free(c);
}

/* A member that must be a string when present: 0 with *out (NULL when absent), or -1. */
static int
string_member(struct json_object *body, const char *key, const char **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	*out = json_object_get_string(v);
	return 0;
}

static void
recover(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = id_param(r, SHAPE_V1, "webhook"), *since, *until;
	struct json_object *body;
	struct db_params p;
	struct actx *c;

	if (id == NULL || (body = body_object(r, SHAPE_V1)) == NULL)
		return;
	if (string_member(body, "since", &since) != 0 || since == NULL) {
		reply_invalid(r, SHAPE_V1, "since",
		    "since is required: an ISO 8601 time; deliveries made since then are replayed");
		goto out;
	}
	if (string_member(body, "until", &until) != 0) {
		reply_invalid(r, SHAPE_V1, "until", "until must be an ISO 8601 time");
		goto out;
	}
	c = actx_new(app, r, SHAPE_V1);
	snprintf(c->id, sizeof(c->id), "%s", id);
	db_params_init(&p);
	db_param_text(&p, id);
	db_param_text(&p, since);
	db_param_text(&p, until);
	db_query(app->db, recover_sql, &p, recover_cb, c);
out:
	json_object_put(body);
}

/* --- test sends ------------------------------------------------------------------------- */

static void
tested_cb(const struct deliver_test_result *t, void *arg)
{
	struct actx *c = arg;
	struct json_object *o;
	char iso[32];

	switch (t->status) {
	case DELIVER_TEST_NOT_FOUND:
		reply_error(c->req, c->shape, 404, "not_found", "no webhook %s", c->id);
		goto out;
	case DELIVER_TEST_DISABLED:
		reply_error(c->req, c->shape, 409, "conflict", "%s", t->error);
		goto out;
	case DELIVER_TEST_UNAVAILABLE:
		http_reply_header(c->req, "Retry-After", "1");
		reply_error(c->req, c->shape, 503, "unavailable", "%s", t->error);
		goto out;
	case DELIVER_TEST_PENDING:
	case DELIVER_TEST_DONE: break;
	}
	o = json_object_new_object();
	json_set_str(o, "id", t->delivery_id);
	json_set_str(o, "message_id", t->message_id);
	json_set_str(o, "event", "webhook.test");
	json_set_str(o, "status", t->delivery_status);
	if (t->status == DELIVER_TEST_PENDING) {
		json_set_str(o, "message", t->error);
		reply_data(c->req, c->shape, 202, o);
		goto out;
	}
	json_set_bool(o, "success", t->success);
	if (t->status_code > 0)
		json_set_int(o, "status_code", t->status_code);
	else
		json_set_obj(o, "status_code", NULL);
	json_set_double(o, "duration_ms", (double)(int64_t)(t->duration_ms * 1000) / 1000.0);
	json_set_str(o, "response_body", t->response_body);
	json_set_str(o, "error", t->success ? NULL : t->error);
	time_iso8601(t->started_ms, iso, sizeof(iso));
	json_set_str(o, "started_at", iso);
	reply_data(c->req, c->shape, 200, o);
out:
	free(c);
}

static void
start_test(struct http_req *r, void *arg, enum shape shape)
{
	struct app *app = arg;
	const char *id = id_param(r, shape, "webhook");
	struct actx *c;

	if (id == NULL)
		return;
	c = actx_new(app, r, shape);
	snprintf(c->id, sizeof(c->id), "%s", id);
	deliver_test(app->deliver, id, tested_cb, c);
}

static void
test_v1(struct http_req *r, void *arg)
{
	start_test(r, arg, SHAPE_V1);
}

static void
omni_test(struct http_req *r, void *arg)
{
	start_test(r, arg, SHAPE_OMNISALES);
}

/* --- stats ------------------------------------------------------------------------------ */

/* ?window=: seconds, or a number with s, m, h or d; -1 after replying 400. */
static int64_t
window_param(struct http_req *r, enum shape shape)
{
	const char *v = http_req_query(r, "window");
	char *end;
	double n;
	int64_t s;

	if (v == NULL || *v == '\0')
		return WINDOW_DEFAULT_S;
	n = strtod(v, &end);
	if (end == v || n <= 0)
		goto bad;
	switch (*end) {
	case '\0':
	case 's': break;
	case 'm': n *= 60; break;
	case 'h': n *= 3600; break;
	case 'd': n *= 86400; break;
	default: goto bad;
	}
	if (*end != '\0' && end[1] != '\0')
		goto bad;
	s = (int64_t)n;
	if (s < 1 || s > WINDOW_MAX_S)
		goto bad;
	return s;
bad:
	reply_error(r, shape, 400, "bad_request",
	    "window must be a duration from 1s to 90d (3600, 15m, 24h, 7d)");
	return -1;
}

static void
stats_cb(const struct db_result *res, void *arg)
{
	struct actx *c = arg;
	const PGresult *rs;
	struct json_object *o;

	if (reply_db_error(c, res))
		goto out;
	if (c->check && db_rows(res->res[0]) == 0) {
		reply_error(c->req, c->shape, 404, "not_found", "no webhook %s", c->id);
		goto out;
	}
	rs = res->res[res->nres - 1];
	o = cell_json(rs, 0, 0);
	if (o == NULL) {
		reply_error(c->req, c->shape, 500, "internal", "no stats");
		goto out;
	}
	if (c->check)
		json_set_str(o, "webhook_id", c->id);
	reply_data(c->req, c->shape, 200, o);
out:
	free(c);
}

static void
start_stats(struct http_req *r, struct app *app, enum shape shape, const char *sub)
{
	struct db_group *g = NULL;
	struct db_params p;
	struct actx *c;
	int64_t window = window_param(r, shape);

	if (window < 0)
		return;
	c = actx_new(app, r, shape);
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, sub);
	if (sub != NULL) {
		snprintf(c->id, sizeof(c->id), "%s", sub);
		c->check = 1;
		db_group_sql(g, sub_exists_sql, &p);
	}
	db_param_int(&p, window);
	db_group_sql(g, stats_sql, &p);
	db_group_send(g, stats_cb, c);
}

static void
stats_all(struct http_req *r, void *arg)
{
	start_stats(r, arg, SHAPE_V1, NULL);
}

static void
stats_webhook(struct http_req *r, void *arg)
{
	const char *id = id_param(r, SHAPE_V1, "webhook");

	if (id != NULL)
		start_stats(r, arg, SHAPE_V1, id);
}

static void
omni_stats(struct http_req *r, void *arg)
{
	const char *id = id_param(r, SHAPE_OMNISALES, "webhook");

	if (id != NULL)
		start_stats(r, arg, SHAPE_OMNISALES, id);
}

void
api_deliveries_register(struct app *app)
{
	struct http_server *s = app->http;

	/* Seed 003 (OmniSales) shapes over the same data. */
	http_server_route(s, "GET", "/api/webhooks/{id}/logs", HTTP_ADMIN, omni_logs, app);
	http_server_route(s, "GET", "/api/webhooks/{id}/stats", HTTP_ADMIN, omni_stats, app);
	http_server_route(s, "POST", "/api/webhooks/{id}/test", HTTP_ADMIN, omni_test, app);
	http_server_route(s, "GET", "/api/webhooks/{id}/replay", HTTP_ADMIN, omni_failed, app);
	http_server_route(s, "POST", "/api/webhooks/{id}/replay", HTTP_ADMIN, omni_replay, app);
	/* /api/v1 */
	http_server_route(
	    s, "GET", "/api/v1/webhooks/{id}/deliveries", HTTP_ADMIN, webhook_deliveries, app);
	http_server_route(s, "POST", "/api/v1/webhooks/{id}/recover", HTTP_ADMIN, recover, app);
	http_server_route(s, "POST", "/api/v1/webhooks/{id}/test", HTTP_ADMIN, test_v1, app);
	http_server_route(s, "GET", "/api/v1/webhooks/{id}/stats", HTTP_ADMIN, stats_webhook, app);
	http_server_route(s, "GET", "/api/v1/deliveries/{id}", HTTP_ADMIN, get_delivery, app);
	http_server_route(
	    s, "GET", "/api/v1/deliveries/{id}/attempts", HTTP_ADMIN, delivery_attempts, app);
	http_server_route(
	    s, "POST", "/api/v1/deliveries/{id}/replay", HTTP_ADMIN, replay_delivery, app);
	http_server_route(s, "GET", "/api/v1/dead-letters", HTTP_ADMIN, dead_letters, app);
	http_server_route(
	    s, "POST", "/api/v1/dead-letters/{id}/replay", HTTP_ADMIN, replay_delivery, app);
	http_server_route(s, "GET", "/api/v1/stats", HTTP_ADMIN, stats_all, app);
}
