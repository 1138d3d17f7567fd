/* SPDX-License-Identifier: ISC */
/* Publish: one outbound message and one delivery per matching subscription, atomically; its API. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/publish.h"
#include "hookd/subscription_input.h"
#include "hookd/util.h"

#define LIST_DEFAULT 50
#define LIST_MAX     500

/* A timestamptz as ISO 8601 UTC with milliseconds, as time_iso8601() writes it. */
#define ISO(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* hookd.publish (schema/004_outbound.sql) does the work; one row comes back. */
static const char publish_sql[] = "SELECT p.message_id, p.created, p.deliveries, " ISO(
    "p.created_at") " FROM hookd.publish($1, $2, $3::json, $4, $5, $6, $7, $8, $9::uuid) p";

/* The original's event type, for the reply to a repeat (same transaction, so visible). */
static const char event_type_sql[] = "SELECT event_type FROM hookd.messages WHERE id = $1";

/* One message as the API shows it, with its deliveries counted by status. */
#define MESSAGE_JSON                                                                               \
	"json_build_object('id', m.id, 'event', m.event_type, 'origin', m.origin,"                 \
	" 'origin_id', m.origin_id, 'table_schema', m.table_schema,"                               \
	" 'table_name', m.table_name, 'op', m.op, 'created_at', " ISO(                             \
	    "m.created_at") ","                                                                    \
	                    " 'data', m.data, 'delivery_counts', (SELECT "                         \
	                    "json_build_object('total', count(*),"                                 \
	                    "   'pending', count(*) FILTER (WHERE d.status = 'pending'),"          \
	                    "   'succeeded', count(*) FILTER (WHERE d.status = 'succeeded'),"      \
	                    "   'failed', count(*) FILTER (WHERE d.status = 'failed'),"            \
	                    "   'dead', count(*) FILTER (WHERE d.status = 'dead'))"                \
	                    "   FROM hookd.deliveries d WHERE d.message_id = m.id))::text"

/* Newest first, keyset pagination on (created_at, id); ?event= takes a pattern. */
static const char list_sql[] =
    "SELECT " MESSAGE_JSON ", m.id FROM hookd.messages m"
    " WHERE ($1::text IS NULL OR hookd.event_matches(jsonb_build_array($1::text),"
    "   m.event_type, NULL, NULL, NULL))"
    "   AND ($2::text IS NULL OR (m.created_at, m.id) <"
    "        (SELECT b.created_at, b.id FROM hookd.messages b WHERE b.id = $2))"
    " ORDER BY m.created_at DESC, m.id DESC LIMIT $3";

static const char get_sql[] =
    "SELECT " MESSAGE_JSON ","
    " (SELECT coalesce(json_agg(json_build_object('id', d.id,"
    "   'subscription_id', d.subscription_id, 'subscription_name', s.name,"
    "   'status', d.status, 'attempts', d.attempts,"
    "   'next_attempt_at', " ISO(
        "d.next_attempt_at") ", 'last_status', d.last_status,"
                             "   'last_error', d.last_error, 'last_duration_ms', "
                             "d.last_duration_ms,"
                             "   'created_at', " ISO("d.created_at") ", 'updated_at', " ISO(
                                 "d.updated_at") ","
                                                 "   'completed_at', " ISO(
                                                     "d.completed_at") ") ORDER BY d.created_at, "
                                                                       "d.id), '[]')"
                                                                       "   FROM hookd.deliveries d "
                                                                       "LEFT JOIN "
                                                                       "hookd.subscriptions s ON "
                                                                       "s.id = d.subscription_id"
                                                                       "   WHERE d.message_id = "
                                                                       "m.id)::text"
                                                                       " FROM hookd.messages m "
                                                                       "WHERE m.id = $1";

/*
 * Seen types (hookd.event_types) and declared ones ($1, a JSON array of {name, description}),
 * merged by name; the configuration's description wins over a stored one.
 */
static const char types_sql[] =
    "SELECT json_build_object('name', coalesce(t.name, d.name),"
    " 'description', coalesce(d.description, t.description),"
    " 'declared', d.name IS NOT NULL OR coalesce(t.declared, false),"
    " 'first_seen', " ISO("t.first_seen") ", 'last_seen', " ISO(
        "t.last_seen") ")::text"
                       " FROM hookd.event_types t"
                       " FULL JOIN jsonb_to_recordset($1::jsonb) AS d(name text, description text)"
                       "   ON d.name = t.name"
                       " ORDER BY coalesce(t.name, d.name)";

/*
 * What runs after a commit that made deliveries (the lead wires deliver_kick). One process
 * has one app, so the hook lives here rather than in struct app.
 */
static void (*commit_hook)(void *arg);
static void *commit_hook_arg;

/* The publish statement, prepared on every connection of the pool it was made for. */
static struct db *stmt_db;
static struct db_stmt *stmt;

void
publish_on_commit(struct app *app, void (*cb)(void *arg), void *arg)
{
	(void)app;
	commit_hook = cb;
	commit_hook_arg = arg;
}

static const struct db_stmt *
publish_stmt(struct app *app)
{
	if (stmt_db != app->db) {
		stmt_db = app->db;
		stmt = db_prepare(app->db, "hookd_publish", publish_sql);
	}
	return stmt;
}

void
publish_new_id(char out[37])
{
	char uuid[37];
	size_t n = 4;

	uuid_v7(uuid);
	memcpy(out, "evt_", 4);
	for (const char *c = uuid; *c != '\0'; c++) {
		if (*c != '-')
			out[n++] = *c;
	}
	out[n] = '\0';
}

/* The statement's parameters; id must already be set. */
static void
push_params(struct db_params *p, const struct publish_request *req, const char *id)
{
	db_params_init(p);
	db_param_text(p, id);
	db_param_text(p, req->event_type);
	if (req->data != NULL)
		db_param_textn(p, req->data, req->data_len);
	else
		db_param_text(p, "{}");
	db_param_text(p, req->origin != NULL ? req->origin : "api");
	db_param_text(p, req->origin_id);
	db_param_text(p, req->table_schema);
	db_param_text(p, req->table_name);
	db_param_text(p, req->op);
	db_param_text(p, req->only);
}

void
publish_group_add(struct app *app, struct db_group *g, const struct publish_request *req)
{
	struct db_params p;
	char id[37];

	if (req->id == NULL)
		publish_new_id(id);
	push_params(&p, req, req->id != NULL ? req->id : id);
	db_group_stmt(g, publish_stmt(app), &p);
}

int
publish_group_done(struct app *app, const PGresult *res, struct publish_result *out)
{
	(void)app;
	memset(out, 0, sizeof(*out));
	out->status = DB_OK;
	if (res == NULL || db_rows(res) != 1) {
		out->status = DB_ERR_SQL;
		out->error = "hookd.publish returned no row";
		return -1;
	}
	out->id = db_value(res, 0, 0);
	out->created = strcmp(db_value(res, 0, 1), "t") == 0;
	out->deliveries = atoi(db_value(res, 0, 2));
	out->created_at = db_value(res, 0, 3);
	/* Other processes hear NOTIFY hookd_deliveries; this one is told directly. */
	if (out->created && out->deliveries > 0 && commit_hook != NULL)
		commit_hook(commit_hook_arg);
	return 0;
}

/* --- publish in a transaction of its own ---------------------------------------------- */

struct pub_ctx {
	struct app *app;
	publish_cb cb;
	void *arg;
	char *id;
};

static void
published_cb(const struct db_result *r, void *arg)
{
	struct pub_ctx *c = arg;
	struct publish_result pr;

	if (r->status != DB_OK) {
		memset(&pr, 0, sizeof(pr));
		pr.status = r->status;
		pr.error = r->error;
		pr.id = c->id;
	} else if (publish_group_done(c->app, r->res[0], &pr) != 0) {
		pr.id = c->id; /* pr.status and pr.error say what went wrong */
	}
	if (c->cb != NULL)
		c->cb(&pr, c->arg);
	free(c->id);
	free(c);
}

void
publish(struct app *app, const struct publish_request *req, publish_cb cb, void *arg)
{
	struct pub_ctx *c = xcalloc(1, sizeof(*c));
	struct db_params p;
	char id[37];

	if (req->id == NULL)
		publish_new_id(id);
	c->app = app;
	c->cb = cb;
	c->arg = arg;
	c->id = xstrdup(req->id != NULL ? req->id : id);
	push_params(&p, req, c->id);
	db_exec(app->db, publish_stmt(app), &p, published_cb, c);
}

/* --- the API ------------------------------------------------------------------------------ */

/* A request waiting on the database; owned by whoever holds the pending callback. */
struct ectx {
	struct app *app;
	struct http_req *req;
	int limit;
};

static struct ectx *
ectx_new(struct app *app, struct http_req *r)
{
	struct ectx *c = xcalloc(1, sizeof(*c));

	c->app = app;
	c->req = r;
	return c;
}

/* 1 for errors that mean "the server is going away or overloaded", not "bad request". */
static int
transient_sqlstate(const char *st)
{
	return st != NULL && (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 ||
	                         strncmp(st, "57", 2) == 0 || strcmp(st, "40001") == 0 ||
	                         strcmp(st, "40P01") == 0);
}

/* Reply for a group that did not commit; returns 1 when it replied. */
static int
reply_db_error(struct http_req *r, const struct db_result *res)
{
	if (res->status == DB_OK)
		return 0;
	if (res->status == DB_ERR_SQL && !transient_sqlstate(res->sqlstate)) {
		log_msg(LOG_LEVEL_ERROR, http_req_id(r), "events api: database error %s: %s",
		    res->sqlstate ? res->sqlstate : "?", res->error);
		http_reply_error(r, 500, "internal", "database error (see the hookd log)");
		return 1;
	}
	log_msg(LOG_LEVEL_WARN, http_req_id(r), "events api: database: %s", res->error);
	http_reply_header(r, "Retry-After", "1");
	http_reply_error(r, 503, "unavailable", "the database is unavailable; retry later");
	return 1;
}

static void
reply_invalid(struct http_req *r, const struct subscription_input_error *err)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "error", "validation_failed");
	json_set_str(o, "message", err->message);
	json_set_str(o, "field", err->field[0] != '\0' ? err->field : NULL);
	http_reply_json(r, 422, o);
}

static struct json_object *
cell_json(const PGresult *res, int row, int col)
{
	const char *v = db_value(res, row, col);
	char err[64];

	return v != NULL ? json_parse(v, strlen(v), err, sizeof(err)) : NULL;
}

static void
created_cb(const struct db_result *res, void *arg)
{
	struct ectx *c = arg;
	struct publish_result pr;
	struct json_object *o;

	if (reply_db_error(c->req, res))
		goto out;
	if (publish_group_done(c->app, res->res[0], &pr) != 0) {
		http_reply_error(c->req, 500, "internal", "%s", pr.error);
		goto out;
	}
	o = json_object_new_object();
	json_set_str(o, "id", pr.id);
	json_set_str(o, "event", db_value(res->res[1], 0, 0));
	json_set_str(o, "created_at", pr.created_at);
	json_set_int(o, "deliveries", pr.deliveries);
	if (!pr.created)
		json_set_bool(o, "duplicate", 1);
	http_reply_json(c->req, pr.created ? 202 : 200, o);
out:
	free(c);
}

/* POST /api/v1/events */
static void
create_event(struct http_req *r, void *arg)
{
	struct app *app = arg;
	size_t len;
	const unsigned char *buf = http_req_body(r, &len);
	struct json_object *body;
	struct subscription_input_error err;
	struct publish_input in;
	struct publish_request req;
	struct db_group *g;
	struct db_params p;
	char why[160], id[37];

	body = json_parse((const char *)buf, len, why, sizeof(why));
	if (body == NULL) {
		http_reply_error(r, 400, "invalid_json", "the body is not valid JSON: %s", why);
		return;
	}
	if (publish_input_parse(body, &in, &err) != 0) {
		json_object_put(body);
		reply_invalid(r, &err);
		return;
	}
	json_object_put(body);
	if (in.id == NULL) {
		publish_new_id(id);
		in.id = xstrdup(id);
	}
	memset(&req, 0, sizeof(req));
	req.id = in.id;
	req.event_type = in.event;
	req.data = in.data;
	req.data_len = in.data_len;
	req.origin = "api";
	g = db_group_new(app->db);
	publish_group_add(app, g, &req);
	db_params_init(&p);
	db_param_text(&p, in.id);
	db_group_sql(g, event_type_sql, &p);
	db_group_send(g, created_cb, ectx_new(app, r));
	publish_input_clear(&in);
}

static void
listed_cb(const struct db_result *res, void *arg)
{
	struct ectx *c = arg;
	struct json_object *o, *data;
	int n;

	if (reply_db_error(c->req, res))
		goto out;
	n = db_rows(res->res[0]);
	data = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(data, cell_json(res->res[0], i, 0));
	o = json_object_new_object();
	json_set_obj(o, "data", data);
	/* Pass as "before" for the next page; null on the last one. */
	json_set_str(
	    o, "next_before", n == c->limit && n > 0 ? db_value(res->res[0], n - 1, 1) : NULL);
	http_reply_json(c->req, 200, o);
out:
	free(c);
}

/* GET /api/v1/events?limit=&before=&event= */
static void
list_events(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *limit = http_req_query(r, "limit"), *before = http_req_query(r, "before");
	const char *event = http_req_query(r, "event");
	struct db_params p;
	struct ectx *c;
	int64_t n = LIST_DEFAULT;

	if (limit != NULL && parse_int64(limit, 1, LIST_MAX, &n) != 0) {
		http_reply_error(
		    r, 400, "bad_request", "limit must be a whole number from 1 to %d", LIST_MAX);
		return;
	}
	if (before != NULL && !publish_message_id_valid(before)) {
		http_reply_error(r, 400, "bad_request", "before must be a message id");
		return;
	}
	if (event != NULL && *event == '\0')
		event = NULL;
	if (event != NULL && !subscription_pattern_valid(event)) {
		http_reply_error(r, 400, "bad_request",
		    "event must be an event type or a pattern (\"order.*\", \"*\")");
		return;
	}
	c = ectx_new(app, r);
	c->limit = (int)n;
	db_params_init(&p);
	db_param_text(&p, event);
	db_param_text(&p, before);
	db_param_int(&p, n);
	db_query(app->db, list_sql, &p, listed_cb, c);
}

static void
got_cb(const struct db_result *res, void *arg)
{
	struct ectx *c = arg;
	struct json_object *o;

	if (reply_db_error(c->req, res))
		goto out;
	if (db_rows(res->res[0]) == 0) {
		http_reply_error(c->req, 404, "not_found", "no message \"%.128s\"",
		    http_req_param(c->req, "id"));
		goto out;
	}
	o = cell_json(res->res[0], 0, 0);
	if (o == NULL)
		o = json_object_new_object();
	json_set_obj(o, "deliveries", cell_json(res->res[0], 0, 1));
	http_reply_json(c->req, 200, o);
out:
	free(c);
}

/* GET /api/v1/events/{id} */
static void
get_event(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *id = http_req_param(r, "id");
	struct db_params p;

	if (id == NULL || !publish_message_id_valid(id)) {
		http_reply_error(r, 404, "not_found", "no such message");
		return;
	}
	db_params_init(&p);
	db_param_text(&p, id);
	db_query(app->db, get_sql, &p, got_cb, ectx_new(app, r));
}

static void
types_cb(const struct db_result *res, void *arg)
{
	struct ectx *c = arg;
	struct json_object *o, *data;

	if (reply_db_error(c->req, res))
		goto out;
	data = json_object_new_array();
	for (int i = 0; i < db_rows(res->res[0]); i++)
		json_object_array_add(data, cell_json(res->res[0], i, 0));
	o = json_object_new_object();
	json_set_obj(o, "data", data);
	http_reply_json(c->req, 200, o);
out:
	free(c);
}

/* GET /api/v1/event-types */
static void
list_types(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct json_object *arr = json_object_new_array();
	struct declared_event_type *declared;
	struct db_params p;
	char *text;
	int n;

	/* Read at request time: event_types is reloadable. */
	declared = subscription_event_types_parse(app->cfg.event_types, &n);
	for (int i = 0; i < n; i++) {
		struct json_object *t = json_object_new_object();

		json_set_str(t, "name", declared[i].name);
		json_set_str(t, "description", declared[i].description);
		json_object_array_add(arr, t);
	}
	subscription_event_types_free(declared, n);
	text = json_compact(arr, NULL);
	json_object_put(arr);
	db_params_init(&p);
	db_param_text(&p, text);
	db_query(app->db, types_sql, &p, types_cb, ectx_new(app, r));
	free(text);
}

void
api_events_register(struct app *app)
{
	struct http_server *h = app->http;

	(void)publish_stmt(app);
	http_server_route(h, "POST", "/api/v1/events", HTTP_ADMIN, create_event, app);
	http_server_route(h, "GET", "/api/v1/events", HTTP_ADMIN, list_events, app);
	http_server_route(h, "GET", "/api/v1/events/{id}", HTTP_ADMIN, get_event, app);
	http_server_route(h, "GET", "/api/v1/event-types", HTTP_ADMIN, list_types, app);
}
