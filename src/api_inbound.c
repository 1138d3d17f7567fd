/* SPDX-License-Identifier: ISC */
/* Admin routes for inbound events: list, show, their logs, and reprocessing. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/process.h"

#define LIST_DEFAULT 50
#define LIST_MAX     500
#define LOGS_MAX     1000

/* Newest first, keyset pagination on (received_at, id): "before" is the last id seen. */
static const char list_sql[] =
    "SELECT hookd.event_json(e, s.slug)::text, e.id"
    " FROM hookd.events e LEFT JOIN hookd.sources s ON s.id = e.source_id"
    " WHERE ($1::uuid IS NULL OR e.source_id = $1)"
    "   AND ($2::text IS NULL OR s.slug = $2)"
    "   AND ($3::hookd.event_status IS NULL OR e.status = $3)"
    "   AND ($4::uuid IS NULL OR (e.received_at, e.id) <"
    "        (SELECT b.received_at, b.id FROM hookd.events b WHERE b.id = $4))"
    " ORDER BY e.received_at DESC, e.id DESC"
    " LIMIT $5";

static const char slug_sql[] = "SELECT 1 FROM hookd.sources WHERE slug = $1";

static const char get_sql[] = "SELECT hookd.event_json(e, s.slug)::text,"
                              "  translate(encode(e.raw_body, 'base64'), E'\\n', '')"
                              " FROM hookd.events e LEFT JOIN hookd.sources s ON s.id = e.source_id"
                              " WHERE e.id = $1";

static const char exists_sql[] = "SELECT 1 FROM hookd.events WHERE id = $1";

static const char logs_sql[] = "SELECT hookd.event_log_json(l)::text FROM hookd.event_logs l"
                               " WHERE l.event_id = $1 ORDER BY l.id LIMIT $2";

static const char reprocess_sql[] = "SELECT hookd.reprocess_event($1, 'api')";

/* -1 when a source was named and does not exist (the worker is not asked anything). */
static const char reprocess_bulk_sql[] =
    "SELECT CASE WHEN $1::text IS NOT NULL AND src.id IS NULL THEN -1"
    "  ELSE hookd.reprocess_events(src.id, $2::hookd.event_status, $3::timestamptz, 'api')"
    "  END"
    " FROM (SELECT (SELECT id FROM hookd.sources WHERE slug = $1 OR id::text = $1) AS id) src";

/* A request waiting on the database; owned by whoever holds the pending callback. */
struct ictx {
	struct app *app;
	struct http_req *req;
	char id[37];
	int by_slug; /* list: statement 0 checks that the slug exists */
	int limit;
};

static struct ictx *
ictx_new(struct app *app, struct http_req *r)
{
	struct ictx *c = xcalloc(1, sizeof(*c));

	c->app = app;
	c->req = r;
	return c;
}

/* Reply for a group that did not commit; returns 1 when it replied. */
static int
reply_db_error(struct http_req *r, const struct db_result *res)
{
	switch (res->status) {
	case DB_OK: return 0;
	case DB_ERR_SQL:
		log_msg(LOG_LEVEL_ERROR, http_req_id(r), "inbound api: %s (%s)", res->error,
		    res->sqlstate);
		http_reply_error(
		    r, 500, "internal", "the database refused the query: %s", res->error);
		return 1;
	case DB_ERR_UNAVAILABLE:
	case DB_ERR_LOST: break;
	}
	http_reply_header(r, "Retry-After", "1");
	http_reply_error(r, 503, "unavailable", "the database is unavailable: %s", res->error);
	return 1;
}

/* 422 in the shape the sources API uses: {"error", "message", "field"} (field may be NULL). */
static void
reply_invalid(struct http_req *r, const char *field, const char *message)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "error", "validation_failed");
	json_set_str(o, "message", message);
	json_set_str(o, "field", field);
	http_reply_json(r, 422, o);
}

/* A JSON cell as an object (NULL cells and, defensively, unparsable ones as null). */
static struct json_object *
cell_json(const PGresult *res, int row, int col)
{
	const char *v = db_value(res, row, col);
	char err[64];

	return v != NULL ? json_parse(v, strlen(v), err, sizeof(err)) : NULL;
}

/* The {id} parameter, or a 404 reply when it cannot name an event. */
static const char *
event_param(struct http_req *r)
{
	const char *id = http_req_param(r, "id");

	if (id == NULL || !uuid_valid(id)) {
		http_reply_error(r, 404, "not_found", "no such event");
		return NULL;
	}
	return id;
}

static int
valid_status(const char *s)
{
	return strcmp(s, "pending") == 0 || strcmp(s, "processing") == 0 ||
	       strcmp(s, "processed") == 0 || strcmp(s, "failed") == 0;
}

/* --- GET /api/v1/inbound/events -------------------------------------------------------- */

static void
list_cb(const struct db_result *res, void *arg)
{
	struct ictx *c = arg;
	struct http_req *r = c->req;
	const PGresult *rows;
	struct json_object *o, *data;
	int n;

	if (reply_db_error(r, res))
		goto out;
	if (c->by_slug && db_rows(res->res[0]) == 0) {
		http_reply_error(
		    r, 404, "not_found", "no source \"%s\"", http_req_query(r, "source"));
		goto out;
	}
	rows = res->res[res->nres - 1];
	n = db_rows(rows);
	data = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(data, cell_json(rows, i, 0));
	o = json_object_new_object();
	json_set_obj(o, "data", data);
	/* Pass as "before" for the next page; null on the last one. */
	json_set_str(o, "next_before", n == c->limit && n > 0 ? db_value(rows, n - 1, 1) : NULL);
	http_reply_json(r, 200, o);
out:
	free(c);
}

static void
list_events(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *source = http_req_query(r, "source"), *status = http_req_query(r, "status");
	const char *limit = http_req_query(r, "limit"), *before = http_req_query(r, "before");
	struct ictx *c;
	struct db_group *g;
	struct db_params dp;
	int64_t n = LIST_DEFAULT;
	int by_id;

	if (status != NULL && !valid_status(status)) {
		http_reply_error(r, 400, "bad_request",
		    "status must be pending, processing, processed or failed");
		return;
	}
	if (limit != NULL && parse_int64(limit, 1, LIST_MAX, &n) != 0) {
		http_reply_error(
		    r, 400, "bad_request", "limit must be a whole number from 1 to %d", LIST_MAX);
		return;
	}
	if (before != NULL && !uuid_valid(before)) {
		http_reply_error(r, 400, "bad_request", "before must be an event id");
		return;
	}
	if (source != NULL && *source == '\0')
		source = NULL;
	by_id = source != NULL && uuid_valid(source);
	c = ictx_new(app, r);
	c->limit = (int)n;
	c->by_slug = source != NULL && !by_id;
	g = db_group_new(app->db);
	if (c->by_slug) {
		db_params_init(&dp);
		db_param_text(&dp, source);
		db_group_sql(g, slug_sql, &dp);
	}
	db_params_init(&dp);
	db_param_text(&dp, by_id ? source : NULL);
	db_param_text(&dp, c->by_slug ? source : NULL);
	db_param_text(&dp, status);
	db_param_text(&dp, before);
	db_param_int(&dp, n);
	db_group_sql(g, list_sql, &dp);
	db_group_send(g, list_cb, c);
}

/* --- GET /api/v1/inbound/events/{id} ------------------------------------------------- */

static void
get_cb(const struct db_result *res, void *arg)
{
	struct ictx *c = arg;
	struct http_req *r = c->req;
	struct json_object *o;

	if (reply_db_error(r, res))
		goto out;
	if (db_rows(res->res[0]) == 0) {
		http_reply_error(r, 404, "not_found", "no event %s", c->id);
		goto out;
	}
	o = cell_json(res->res[0], 0, 0);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		http_reply_error(r, 500, "internal", "event %s could not be shown", c->id);
		goto out;
	}
	json_set_str(o, "raw_body", db_value(res->res[0], 0, 1));
	http_reply_json(r, 200, o);
out:
	free(c);
}

static void
get_event(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = event_param(r);
	struct db_params dp;
	struct ictx *c;

	if (id == NULL)
		return;
	c = ictx_new(app, r);
	snprintf(c->id, sizeof(c->id), "%s", id);
	db_params_init(&dp);
	db_param_text(&dp, id);
	db_query(app->db, get_sql, &dp, get_cb, c);
}

/* --- GET /api/v1/inbound/events/{id}/logs ---------------------------------------------- */

static void
logs_cb(const struct db_result *res, void *arg)
{
	struct ictx *c = arg;
	struct http_req *r = c->req;
	struct json_object *o, *data;
	int n;

	if (reply_db_error(r, res))
		goto out;
	if (db_rows(res->res[0]) == 0) {
		http_reply_error(r, 404, "not_found", "no event %s", c->id);
		goto out;
	}
	n = db_rows(res->res[1]);
	data = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(data, cell_json(res->res[1], i, 0));
	o = json_object_new_object();
	json_set_obj(o, "data", data);
	http_reply_json(r, 200, o);
out:
	free(c);
}

static void
event_logs(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = event_param(r);
	struct db_group *g;
	struct db_params dp;
	struct ictx *c;

	if (id == NULL)
		return;
	c = ictx_new(app, r);
	snprintf(c->id, sizeof(c->id), "%s", id);
	g = db_group_new(app->db);
	db_params_init(&dp);
	db_param_text(&dp, id);
	db_group_sql(g, exists_sql, &dp);
	db_param_int(&dp, LOGS_MAX);
	db_group_sql(g, logs_sql, &dp);
	db_group_send(g, logs_cb, c);
}

/* --- POST /api/v1/inbound/events/{id}/reprocess -------------------------------------- */

static void
reprocess_cb(const struct db_result *res, void *arg)
{
	struct ictx *c = arg;
	struct http_req *r = c->req;
	struct json_object *o;
	const char *what;

	if (reply_db_error(r, res))
		goto out;
	what = db_value(res->res[0], 0, 0);
	if (what == NULL || strcmp(what, "not_found") == 0) {
		http_reply_error(r, 404, "not_found", "no event %s", c->id);
	} else if (strcmp(what, "busy") == 0) {
		http_reply_error(
		    r, 409, "conflict", "event %s is being processed right now", c->id);
	} else if (strcmp(what, "no_source") == 0) {
		http_reply_error(r, 409, "conflict",
		    "the source of event %s no longer exists: there is no handler to run", c->id);
	} else {
		int queued = strcmp(what, "queued") == 0;

		if (queued)
			process_kick(c->app->process);
		o = json_object_new_object();
		json_set_str(o, "id", c->id);
		json_set_str(o, "status", queued ? "pending" : "processed");
		json_set_str(o, "action", queued ? "reprocess" : "review");
		http_reply_json(r, 202, o);
	}
out:
	free(c);
}

static void
reprocess_event(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = event_param(r);
	struct db_params dp;
	struct ictx *c;

	if (id == NULL)
		return;
	c = ictx_new(app, r);
	snprintf(c->id, sizeof(c->id), "%s", id);
	db_params_init(&dp);
	db_param_text(&dp, id);
	db_query(app->db, reprocess_sql, &dp, reprocess_cb, c);
}

/* --- POST /api/v1/inbound/events/reprocess --------------------------------------------- */

static void
reprocess_bulk_cb(const struct db_result *res, void *arg)
{
	struct ictx *c = arg;
	struct http_req *r = c->req;
	struct json_object *o;
	const char *v;
	int64_t n;

	if (res->status == DB_ERR_SQL && res->sqlstate != NULL &&
	    strncmp(res->sqlstate, "22", 2) == 0) {
		char msg[300];

		snprintf(msg, sizeof(msg), "since must be an ISO 8601 time: %s", res->error);
		reply_invalid(r, "since", msg);
		goto out;
	}
	if (reply_db_error(r, res))
		goto out;
	v = db_value(res->res[0], 0, 0);
	n = v != NULL ? atoll(v) : 0;
	if (n < 0) {
		http_reply_error(r, 404, "not_found", "no such source");
		goto out;
	}
	if (n > 0)
		process_kick(c->app->process);
	o = json_object_new_object();
	json_set_int(o, "count", n);
	http_reply_json(r, 202, o);
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
reprocess_bulk(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct json_object *body = NULL;
	const char *source, *status, *since;
	const unsigned char *raw;
	struct db_params dp;
	char err[160];
	size_t len;

	raw = http_req_body(r, &len);
	if (len > 0) {
		body = json_parse((const char *)raw, len, err, sizeof(err));
		if (body == NULL) {
			http_reply_error(
			    r, 400, "invalid_json", "the body is not valid JSON: %s", err);
			return;
		}
	} else {
		body = json_object_new_object();
	}
	if (!json_object_is_type(body, json_type_object)) {
		reply_invalid(r, NULL, "the body must be a JSON object");
		goto out;
	}
	if (string_member(body, "source", &source) != 0) {
		reply_invalid(r, "source", "source must be a source's slug or id");
		goto out;
	}
	if (string_member(body, "status", &status) != 0 ||
	    (status != NULL && strcmp(status, "pending") != 0 && strcmp(status, "processed") != 0 &&
	        strcmp(status, "failed") != 0)) {
		reply_invalid(r, "status",
		    "status must be failed, processed or pending (events being processed cannot "
		    "be reprocessed)");
		goto out;
	}
	if (string_member(body, "since", &since) != 0) {
		reply_invalid(r, "since", "since must be an ISO 8601 time");
		goto out;
	}
	db_params_init(&dp);
	db_param_text(&dp, source);
	db_param_text(&dp, status != NULL ? status : "failed");
	db_param_text(&dp, since);
	db_query(app->db, reprocess_bulk_sql, &dp, reprocess_bulk_cb, ictx_new(app, r));
out:
	json_object_put(body);
}

void
api_inbound_register(struct app *app)
{
	struct http_server *s = app->http;

	http_server_route(s, "GET", "/api/v1/inbound/events", HTTP_ADMIN, list_events, app);
	http_server_route(s, "GET", "/api/v1/inbound/events/{id}", HTTP_ADMIN, get_event, app);
	http_server_route(
	    s, "GET", "/api/v1/inbound/events/{id}/logs", HTTP_ADMIN, event_logs, app);
	http_server_route(
	    s, "POST", "/api/v1/inbound/events/{id}/reprocess", HTTP_ADMIN, reprocess_event, app);
	http_server_route(
	    s, "POST", "/api/v1/inbound/events/reprocess", HTTP_ADMIN, reprocess_bulk, app);
}
