/* SPDX-License-Identifier: ISC */
/* Admin routes for subscriptions: /api/v1/webhooks (seed 004) and seed 003's /api/webhooks CRUD. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <sodium.h>

#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/seal.h"
#include "hookd/sign.h"
#include "hookd/source_input.h"
#include "hookd/subscription_input.h"
#include "hookd/subscriptions.h"
#include "hookd/util.h"

#define LIST_DEFAULT 100
#define LIST_MAX     1000
#define WRITE_TRIES  20 /* read-modify-write attempts while other processes change the row */

/* --- SQL ------------------------------------------------------------------------------ */

/* A timestamptz as ISO 8601 UTC with milliseconds, as time_iso8601() writes it. */
#define ISO(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * One subscription row as every statement here returns it (enum col). Secrets come sealed
 * with their timestamps normalized and a "live" flag; xmin guards read-modify-write.
 */
#define SUB_COLS                                                                                             \
	"s.id, s.name, s.description, s.url,"                                                                \
	" (SELECT coalesce(json_agg(json_build_object('id', x->>'id', 'sealed', x->>'sealed',"               \
	"   'created_at', " ISO(                                                                             \
	    "(x->>'created_at')::timestamptz") ","                                                           \
	                                       "   'expires_at', " ISO(                                      \
	                                           "(x->>'expires_at')::timestamptz") ","                    \
	                                                                              "   "                  \
	                                                                              "'live', "             \
	                                                                              "x->>'"                \
	                                                                              "expires_"             \
	                                                                              "at' IS "              \
	                                                                              "NULL OR "             \
	                                                                              "(x->>'"               \
	                                                                              "expires_"             \
	                                                                              "at')::"               \
	                                                                              "timestampt"           \
	                                                                              "z > now())"           \
	                                                                              "   ORDER "            \
	                                                                              "BY o), "              \
	                                                                              "'[]')"                \
	                                                                              "   FROM "             \
	                                                                              "jsonb_"               \
	                                                                              "array_"               \
	                                                                              "elements("            \
	                                                                              "s.secrets)"           \
	                                                                              " WITH "               \
	                                                                              "ORDINALITY"           \
	                                                                              " AS e(x, "            \
	                                                                              "o))::text,"           \
	                                                                              " s."                  \
	                                                                              "enabled, "            \
	                                                                              "s.events::"           \
	                                                                              "text, "               \
	                                                                              "s.max_"               \
	                                                                              "retries, "            \
	                                                                              "s.retry_"             \
	                                                                              "backoff_"             \
	                                                                              "seconds,"             \
	                                                                              " s.retry_"            \
	                                                                              "multiplier"           \
	                                                                              ", "                   \
	                                                                              "s.retry_"             \
	                                                                              "max_delay_"           \
	                                                                              "seconds, "            \
	                                                                              "s.retry_"             \
	                                                                              "jitter,"              \
	                                                                              " array_to_"           \
	                                                                              "json(s."              \
	                                                                              "retry_"               \
	                                                                              "schedule):"           \
	                                                                              ":text, "              \
	                                                                              "s.timeout_"           \
	                                                                              "seconds, "            \
	                                                                              "s.headers:"           \
	                                                                              ":text,"               \
	                                                                              " array_to_"           \
	                                                                              "json(s."              \
	                                                                              "signature_"           \
	                                                                              "headers)::"           \
	                                                                              "text, "               \
	                                                                              "s.payload_"           \
	                                                                              "format,"              \
	                                                                              " array_to_"           \
	                                                                              "json(s.ip_"           \
	                                                                              "allowlist:"           \
	                                                                              ":text[])::"           \
	                                                                              "text, "               \
	                                                                              "s.api, "              \
	                                                                              "s.failure_"           \
	                                                                              "streak,"              \
	                                                                              " s."                  \
	                                                                              "disabled_"            \
	                                                                              "reason,"              \
	                                                                              " " ISO("s."           \
	                                                                                      "di"           \
	                                                                                      "sa"           \
	                                                                                      "bl"           \
	                                                                                      "ed"           \
	                                                                                      "_a"           \
	                                                                                      "t") ", " ISO( \
	                                                                                  "s."               \
	                                                                                  "create"           \
	                                                                                  "d_at") ", " ISO("s.updated_at") ", s.xmin::text"

enum col {
	COL_ID,
	COL_NAME,
	COL_DESCRIPTION,
	COL_URL,
	COL_SECRETS,
	COL_ENABLED,
	COL_EVENTS,
	COL_MAX_RETRIES,
	COL_BACKOFF,
	COL_MULTIPLIER,
	COL_MAX_DELAY,
	COL_JITTER,
	COL_SCHEDULE,
	COL_TIMEOUT,
	COL_HEADERS,
	COL_SIGNATURE,
	COL_FORMAT,
	COL_ALLOW,
	COL_API,
	COL_STREAK,
	COL_REASON,
	COL_DISABLED_AT,
	COL_CREATED,
	COL_UPDATED,
	COL_XMIN,
};

/* JSON arrays (text) into double precision[] and cidr[], order kept; SQL NULL stays NULL. */
#define FLOAT_ARRAY(p)                                                                             \
	"CASE WHEN " p "::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT t::double precision FROM"      \
	" jsonb_array_elements_text(" p "::jsonb) WITH ORDINALITY AS a(t, o) ORDER BY o) END"
#define CIDR_ARRAY(p)                                                                              \
	"CASE WHEN " p "::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT t::cidr FROM"                  \
	" jsonb_array_elements_text(" p "::jsonb) WITH ORDINALITY AS a(t, o) ORDER BY o) END"

static const char list_sql[] = "SELECT " SUB_COLS " FROM hookd.subscriptions s"
                               " ORDER BY s.created_at, s.id LIMIT $1 OFFSET $2";

static const char load_sql[] = "SELECT " SUB_COLS " FROM hookd.subscriptions s"
                               " WHERE s.id = $1::uuid";

static const char insert_sql[] =
    "INSERT INTO hookd.subscriptions AS s (id, name, description, url, secrets, enabled,"
    " events, max_retries, retry_backoff_seconds, retry_multiplier, retry_max_delay_seconds,"
    " retry_jitter, retry_schedule, timeout_seconds, headers, signature_headers,"
    " payload_format, ip_allowlist, api)"
    " VALUES ($1::uuid, $2, $3, $4, coalesce($5::jsonb, '[]'), $6::boolean, $7::jsonb,"
    " $8::integer, $9::double precision, $10::double precision, $11::double precision,"
    " $12::double precision, " FLOAT_ARRAY("$13") ", $14::integer, $15::jsonb, $16::text[],"
                                                  " $17, " CIDR_ARRAY("$18") ", $19)"
                                                                             " RETURNING " SUB_COLS;

/*
 * Enabling a subscription clears why it was disabled and its failure streak; disabling
 * it through the API stamps disabled_at and leaves disabled_reason null (a person did it).
 */
static const char update_sql[] =
    "UPDATE hookd.subscriptions s SET name = $3, description = $4, url = $5,"
    " secrets = coalesce($6::jsonb, s.secrets), enabled = $7::boolean, events = $8::jsonb,"
    " max_retries = $9::integer, retry_backoff_seconds = $10::double precision,"
    " retry_multiplier = $11::double precision, retry_max_delay_seconds = $12::double precision,"
    " retry_jitter = $13::double precision, retry_schedule = " FLOAT_ARRAY(
        "$14") ","
               " timeout_seconds = $15::integer, headers = $16::jsonb, signature_headers = "
               "$17::text[],"
               " payload_format = $18, ip_allowlist = " CIDR_ARRAY(
                   "$19") ","
                          " failure_streak = CASE WHEN $7::boolean AND NOT s.enabled THEN 0"
                          "   ELSE s.failure_streak END,"
                          " disabled_reason = CASE WHEN $7::boolean THEN NULL ELSE "
                          "s.disabled_reason END,"
                          " disabled_at = CASE WHEN $7::boolean THEN NULL WHEN s.enabled THEN now()"
                          "   ELSE s.disabled_at END,"
                          " updated_at = now()"
                          " WHERE s.id = $1::uuid AND s.xmin::text = $2"
                          " RETURNING " SUB_COLS;

static const char update_secrets_sql[] =
    "UPDATE hookd.subscriptions s SET secrets = $3::jsonb, updated_at = now()"
    " WHERE s.id = $1::uuid AND s.xmin::text = $2"
    " RETURNING " SUB_COLS;

static const char delete_sql[] =
    "DELETE FROM hookd.subscriptions s WHERE s.id = $1::uuid RETURNING s.id";

/* Every process sharing the database reloads its subscriptions cache (this one too). */
static const char notify_sql[] = "SELECT pg_notify('hookd_config', 'subscriptions')";

/* --- one request --------------------------------------------------------------------- */

enum sub_op {
	SOP_LIST,    /* GET /api/v1/webhooks, GET /api/webhooks */
	SOP_GET,     /* GET …/{id} */
	SOP_CREATE,  /* POST /api/v1/webhooks, POST /api/webhooks */
	SOP_REPLACE, /* PUT /api/v1/webhooks/{id} */
	SOP_PATCH,   /* PATCH /api/v1/webhooks/{id}, PUT /api/webhooks/{id} */
	SOP_DELETE,  /* DELETE …/{id} */
	SOP_ROTATE,  /* POST /api/v1/webhooks/{id}/rotate-secret */
	SOP_SECRET,  /* GET /api/v1/webhooks/{id}/secret */
};

/*
 * A request's context, owned by whoever holds the pending database callback; the
 * callback that replies frees it.
 */
struct sreq {
	struct app *app;
	struct http_req *req;
	enum sub_op op;
	enum subscription_api api;
	char *key;                /* the {id} parameter */
	struct json_object *body; /* SOP_REPLACE, SOP_PATCH: parsed again on every attempt */
	char *rotate_secret;      /* SOP_ROTATE: the new plaintext, given or generated */
	int64_t expire_after;     /* SOP_ROTATE: seconds the previous secrets stay live */
	char *reveal;             /* a plaintext the reply shows once (never logged) */
	int tries;
	TAILQ_ENTRY(sreq) entry; /* in waiting */
};

/*
 * Read-modify-write requests (PUT, PATCH, rotate-secret) run one at a time in a process,
 * so they never race each other; only writes from other processes can make the xmin
 * guard send one round again. Admin writes are rare: one queue will do.
 */
static TAILQ_HEAD(, sreq) waiting = TAILQ_HEAD_INITIALIZER(waiting);
static struct sreq *writing;

static void load(struct sreq *c);

static void
reload_cb(evutil_socket_t fd, short what, void *arg)
{
	load(arg);
}

static struct sreq *
sreq_new(struct app *app, struct http_req *r, enum sub_op op, enum subscription_api api)
{
	struct sreq *c = xcalloc(1, sizeof(*c));
	const char *id = http_req_param(r, "id");

	c->app = app;
	c->req = r;
	c->op = op;
	c->api = api;
	c->key = id != NULL ? xstrdup(id) : NULL;
	c->expire_after = SUB_ROTATE_DEFAULT_OVERLAP;
	return c;
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static void
sreq_free(struct sreq *c)
{
	if (c == writing) {
		writing = TAILQ_FIRST(&waiting);
		if (writing != NULL) {
			TAILQ_REMOVE(&waiting, writing, entry);
			load(writing);
		}
	}
	free(c->key);
	json_object_put(c->body);
	wipe_free(c->rotate_secret);
	wipe_free(c->reveal);
	free(c);
}

/* --- replies -------------------------------------------------------------------------- */

/*
 * An error in the shape of the API the request came through: v1 {"error": code,
 * "message": text[, "field": f]}, seed 003 {"success": false, "error": text[, "field": f]}.
 * field is given for validation errors only (it may be NULL there: the body itself).
 */
static void reply_fail(struct http_req *r, enum subscription_api api, int status, const char *code,
    int with_field, const char *field, const char *fmt, ...) PRINTF_LIKE(7, 8);

static void
reply_fail(struct http_req *r, enum subscription_api api, int status, const char *code,
    int with_field, const char *field, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (api == SUB_API_V1) {
		json_set_str(o, "error", code);
		json_set_str(o, "message", msg);
	} else {
		json_set_bool(o, "success", 0);
		json_set_str(o, "error", msg);
	}
	if (with_field)
		json_set_str(o, "field", field != NULL && *field != '\0' ? field : NULL);
	if (status == 503)
		http_reply_header(r, "Retry-After", "1");
	http_reply_json(r, status, o);
}

static void
reply_invalid(
    struct http_req *r, enum subscription_api api, const struct subscription_input_error *err)
{
	reply_fail(r, api, 422, "validation_failed", 1, err->field, "%s", err->message);
}

/* 1 for errors that mean "the server is going away or overloaded", not "bad request". */
static int
transient_sqlstate(const char *st)
{
	return st != NULL && (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 ||
	                         strncmp(st, "57", 2) == 0 || strcmp(st, "40001") == 0 ||
	                         strcmp(st, "40P01") == 0);
}

/* Reply to a failed group and free the context. */
static void
fail_db(struct sreq *c, const struct db_result *res)
{
	struct http_req *r = c->req;

	if (res->status == DB_ERR_SQL && res->sqlstate != NULL &&
	    (strcmp(res->sqlstate, "42P01") == 0 || strcmp(res->sqlstate, "3F000") == 0 ||
	        strcmp(res->sqlstate, "42501") == 0 || strcmp(res->sqlstate, "42809") == 0)) {
		/* Watching a table named in events failed (trigger hookd.subscription_watch). */
		struct subscription_input_error err = {0};

		snprintf(err.field, sizeof(err.field), "events");
		snprintf(err.message, sizeof(err.message), "events: %s", res->error);
		reply_invalid(r, c->api, &err);
		sreq_free(c);
		return;
	}
	if (res->status == DB_ERR_UNAVAILABLE || res->status == DB_ERR_LOST ||
	    transient_sqlstate(res->sqlstate)) {
		log_msg(LOG_LEVEL_WARN, http_req_id(r), "subscriptions: database: %s", res->error);
		reply_fail(r, c->api, 503, "unavailable", 0, NULL,
		    "the database is unavailable; retry later");
	} else {
		log_msg(LOG_LEVEL_ERROR, http_req_id(r), "subscriptions: database error %s: %s",
		    res->sqlstate ? res->sqlstate : "?", res->error);
		reply_fail(
		    r, c->api, 500, "internal", 0, NULL, "database error (see the hookd log)");
	}
	sreq_free(c);
}

static void
fail_not_found(struct sreq *c)
{
	reply_fail(c->req, c->api, 404, "not_found", 0, NULL, "no webhook \"%.128s\"",
	    c->key ? c->key : "");
	sreq_free(c);
}

static void
fail_invalid(struct sreq *c, const struct subscription_input_error *err)
{
	reply_invalid(c->req, c->api, err);
	sreq_free(c);
}

/* --- representation ---------------------------------------------------------------------- */

static struct json_object *
parse_col(const PGresult *res, int row, int col)
{
	const char *v = db_value(res, row, col);
	char err[64];

	return v != NULL ? json_parse(v, strlen(v), err, sizeof(err)) : NULL;
}

static void
set_number(struct json_object *o, const char *key, const char *v)
{
	json_set_obj(o, key, v != NULL ? json_object_new_double(atof(v)) : NULL);
}

static void
set_int(struct json_object *o, const char *key, const char *v)
{
	json_set_obj(o, key, v != NULL ? json_object_new_int64(atoll(v)) : NULL);
}

/* The API's secrets: ids and timestamps only; never a value, sealed or not. */
static struct json_object *
secrets_json(const char *list)
{
	struct json_object *arr, *out = json_object_new_array();
	char err[64];

	arr = list != NULL ? json_parse(list, strlen(list), err, sizeof(err)) : NULL;
	for (size_t i = 0; arr != NULL && i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		struct json_object *o = json_object_new_object();

		json_set_str(o, "id", json_get_str(e, "id"));
		json_set_str(o, "created_at", json_get_str(e, "created_at"));
		json_set_str(o, "expires_at", json_get_str(e, "expires_at"));
		json_object_array_add(out, o);
	}
	json_object_put(arr);
	return out;
}

/* One subscription as /api/v1/webhooks shows it, from a row of SUB_COLS. */
static struct json_object *
sub_json(const PGresult *res, int row)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "id", db_value(res, row, COL_ID));
	json_set_str(o, "name", db_value(res, row, COL_NAME));
	json_set_str(o, "description", db_value(res, row, COL_DESCRIPTION));
	json_set_str(o, "url", db_value(res, row, COL_URL));
	json_set_bool(o, "enabled", strcmp(db_value(res, row, COL_ENABLED), "t") == 0);
	json_set_obj(o, "events", parse_col(res, row, COL_EVENTS));
	set_int(o, "max_retries", db_value(res, row, COL_MAX_RETRIES));
	set_int(o, "timeout_seconds", db_value(res, row, COL_TIMEOUT));
	set_number(o, "retry_backoff_seconds", db_value(res, row, COL_BACKOFF));
	set_number(o, "retry_multiplier", db_value(res, row, COL_MULTIPLIER));
	set_number(o, "retry_max_delay_seconds", db_value(res, row, COL_MAX_DELAY));
	set_number(o, "retry_jitter", db_value(res, row, COL_JITTER));
	json_set_obj(o, "retry_schedule", parse_col(res, row, COL_SCHEDULE));
	json_set_obj(o, "headers", parse_col(res, row, COL_HEADERS));
	json_set_obj(o, "ip_allowlist", parse_col(res, row, COL_ALLOW));
	json_set_obj(o, "signature_headers", parse_col(res, row, COL_SIGNATURE));
	json_set_str(o, "payload_format", db_value(res, row, COL_FORMAT));
	json_set_str(o, "api", db_value(res, row, COL_API));
	json_set_obj(o, "secrets", secrets_json(db_value(res, row, COL_SECRETS)));
	set_int(o, "failure_streak", db_value(res, row, COL_STREAK));
	json_set_str(o, "disabled_reason", db_value(res, row, COL_REASON));
	json_set_str(o, "disabled_at", db_value(res, row, COL_DISABLED_AT));
	json_set_str(o, "created_at", db_value(res, row, COL_CREATED));
	json_set_str(o, "updated_at", db_value(res, row, COL_UPDATED));
	return o;
}

/* Seed 003 shows single addresses as given ("192.168.1.100"), not as /32 networks. */
static struct json_object *
whitelist_json(const PGresult *res, int row)
{
	struct json_object *arr = parse_col(res, row, COL_ALLOW), *out;

	if (arr == NULL)
		return NULL;
	out = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		const char *c = json_object_get_string(json_object_array_get_idx(arr, i));
		size_t n = c != NULL ? strlen(c) : 0;

		if (n > 3 && strchr(c, ':') == NULL && strcmp(c + n - 3, "/32") == 0)
			n -= 3;
		else if (n > 4 && strchr(c, ':') != NULL && strcmp(c + n - 4, "/128") == 0)
			n -= 4;
		json_object_array_add(out, json_object_new_string_len(c ? c : "", (int)n));
	}
	json_object_put(arr);
	return out;
}

/* One subscription in seed 003's shape. */
static struct json_object *
omni_json(const PGresult *res, int row)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "id", db_value(res, row, COL_ID));
	json_set_str(o, "name", db_value(res, row, COL_NAME));
	json_set_str(o, "url", db_value(res, row, COL_URL));
	json_set_obj(o, "events", parse_col(res, row, COL_EVENTS));
	json_set_bool(o, "is_active", strcmp(db_value(res, row, COL_ENABLED), "t") == 0);
	json_set_str(o, "description", db_value(res, row, COL_DESCRIPTION));
	json_set_obj(o, "ip_whitelist", whitelist_json(res, row));
	set_int(o, "max_retries", db_value(res, row, COL_MAX_RETRIES));
	set_int(o, "timeout_seconds", db_value(res, row, COL_TIMEOUT));
	json_set_str(o, "disabled_reason", db_value(res, row, COL_REASON));
	json_set_str(o, "created_at", db_value(res, row, COL_CREATED));
	json_set_str(o, "updated_at", db_value(res, row, COL_UPDATED));
	return o;
}

static struct json_object *
row_json(const struct sreq *c, const PGresult *res, int row)
{
	return c->api == SUB_API_V1 ? sub_json(res, row) : omni_json(res, row);
}

/* Seed 003 wraps every answer: {"success": true, "data": ...}. */
static void
reply_ok(struct sreq *c, int status, struct json_object *data)
{
	struct json_object *o;

	if (c->api == SUB_API_V1) {
		http_reply_json(c->req, status, data);
		return;
	}
	o = json_object_new_object();
	json_set_bool(o, "success", 1);
	json_set_obj(o, "data", data);
	http_reply_json(c->req, status, o);
}

/* --- parameters ------------------------------------------------------------------------- */

/* A string array as JSON text for CIDR_ARRAY (malloc'd), or NULL for SQL NULL. */
static char *
strings_json(char **v, int n)
{
	struct json_object *arr;
	char *text;

	if (v == NULL)
		return NULL;
	arr = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(v[i]));
	text = json_compact(arr, NULL);
	json_object_put(arr);
	return text;
}

static char *
doubles_json(const double *v, int n)
{
	struct json_object *arr;
	char *text;

	if (v == NULL)
		return NULL;
	arr = json_object_new_array();
	for (int i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_double(v[i]));
	text = json_compact(arr, NULL);
	json_object_put(arr);
	return text;
}

/* Texts the parameters point into; they must outlive db_group_sql (which copies). */
struct field_texts {
	char *secrets, *events, *schedule, *headers, *signature, *allow;
	char numbers[4][32];
};

static void
field_texts_free(struct field_texts *t)
{
	free(t->secrets);
	free(t->events);
	free(t->schedule);
	free(t->headers);
	free(t->signature);
	free(t->allow);
}

/*
 * The writable fields as parameters, in insert_sql's order from $2 (update_sql's from
 * $3). secrets: the new sealed list (owned by t), or NULL to keep those stored.
 */
static void
push_fields(
    struct db_params *p, const struct subscription_input *in, struct field_texts *t, char *secrets)
{
	const double nums[4] = {in->backoff_s, in->multiplier, in->max_delay_s, in->jitter};

	memset(t, 0, sizeof(*t));
	t->secrets = secrets;
	t->events = json_compact(in->events, NULL);
	t->schedule = doubles_json(in->schedule, in->nschedule);
	t->headers = json_compact(in->headers, NULL);
	t->signature = sign_headers_format(in->sign_flags);
	t->allow = strings_json(in->ip_allowlist, in->nallow);
	db_param_text(p, in->name);
	db_param_text(p, in->description);
	db_param_text(p, in->url);
	db_param_text(p, t->secrets);
	db_param_bool(p, in->enabled);
	db_param_text(p, t->events);
	db_param_int(p, in->max_retries);
	for (int i = 0; i < 4; i++) {
		json_format_number(nums[i], t->numbers[i], sizeof(t->numbers[i]));
		db_param_text(p, t->numbers[i]);
	}
	db_param_text(p, t->schedule);
	db_param_int(p, in->timeout_seconds);
	db_param_text(p, t->headers);
	db_param_text(p, t->signature);
	db_param_text(p, subscription_payload_format_name(in->format));
	db_param_text(p, t->allow);
}

/* The stored list for one new secret (newest first), sealed; NULL when there is none. */
static char *
seal_one(struct app *app, const char *secret)
{
	char *plain[1];

	if (secret == NULL)
		return NULL;
	plain[0] = (char *)secret;
	return source_secrets_seal(app->master_key, plain, 1, now_wall_ms());
}

/* --- writes ----------------------------------------------------------------------------- */

static void
written_cb(const struct db_result *res, void *arg)
{
	struct sreq *c = arg;
	struct json_object *o, *out;

	if (res->status != DB_OK) {
		fail_db(c, res);
		return;
	}
	if (db_rows(res->res[0]) == 0) {
		/* Changed (or deleted) since we read it: read again and redo the change. */
		if (++c->tries < WRITE_TRIES) {
			/* Step aside a random moment so racing writers stop colliding. */
			struct timeval tv = {
			    0, (long)random_below(2000u << (c->tries < 5 ? c->tries : 5))};

			event_base_once(c->app->base, -1, EV_TIMEOUT, reload_cb, c, &tv);
			return;
		}
		reply_fail(c->req, c->api, 409, "conflict", 0, NULL,
		    "the webhook kept changing while this request ran; try again");
		sreq_free(c);
		return;
	}
	subscriptions_refresh(c->app->subscriptions);
	if (c->op == SOP_ROTATE) {
		out = json_object_new_object();
		json_set_str(out, "id", db_value(res->res[0], 0, COL_ID));
		json_set_str(out, "secret", c->reveal);
		json_set_obj(out, "secrets", secrets_json(db_value(res->res[0], 0, COL_SECRETS)));
		reply_ok(c, 200, out);
		sreq_free(c);
		return;
	}
	o = row_json(c, res->res[0], 0);
	if (c->reveal != NULL)
		json_set_str(o, "secret", c->reveal);
	reply_ok(c, c->op == SOP_CREATE ? 201 : 200, o);
	sreq_free(c);
}

/* Send a write: the statement and the NOTIFY, in one transaction. */
static void
send_write(struct sreq *c, const char *sql, const struct db_params *p)
{
	struct db_group *g = db_group_new(c->app->db);

	db_group_sql(g, sql, p);
	/*
	 * {"table", "operations"} entries of events make hookd watch those tables: the
	 * trigger hookd.subscription_watch (schema 005) does it in this transaction, and
	 * fail_db turns its refusal into a 422 on "events".
	 */
	db_group_sql(g, notify_sql, NULL);
	db_group_send(g, written_cb, c);
}

/* Live secrets among a row's stored ones. */
static int
count_live(const char *list)
{
	struct json_object *arr;
	char err[64];
	int n = 0, live;

	arr = list != NULL ? json_parse(list, strlen(list), err, sizeof(err)) : NULL;
	for (size_t i = 0; arr != NULL && i < json_object_array_length(arr); i++) {
		if (json_get_bool(json_object_array_get_idx(arr, i), "live", &live) == 0 && live)
			n++;
	}
	json_object_put(arr);
	return n;
}

/* The stored header sets of a row. */
static unsigned
row_sign_flags(const PGresult *res)
{
	struct json_object *arr = parse_col(res, 0, COL_SIGNATURE);
	unsigned flags = SIGN_STANDARD, one;
	char why[160];

	for (size_t i = 0; arr != NULL && json_object_is_type(arr, json_type_array) &&
	                   i < json_object_array_length(arr);
	     i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(arr, i));

		if (name != NULL && sign_headers_parse(name, &one, why, sizeof(why)) == 0)
			flags |= one;
	}
	json_object_put(arr);
	return flags;
}

/* The stored row as input (v1 fields), for PATCH merges. */
static int
row_input(struct sreq *c, const PGresult *res, struct subscription_input *base)
{
	static const char *const ro[] = {"id", "api", "secrets", "failure_streak",
	    "disabled_reason", "disabled_at", "created_at", "updated_at"};
	struct json_object *cur = sub_json(res, 0);
	struct subscription_input_error err;

	for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
		json_object_object_del(cur, ro[i]);
	if (subscription_input_parse(cur, SUB_INPUT_REPLACE, SUB_API_V1, base, &err) != 0) {
		json_object_put(cur);
		log_msg(LOG_LEVEL_ERROR, http_req_id(c->req),
		    "subscriptions: stored webhook %s does not validate: %s: %s", c->key, err.field,
		    err.message);
		reply_fail(c->req, c->api, 500, "internal", 0, NULL,
		    "the stored webhook does not validate (%s); replace it with "
		    "PUT /api/v1/webhooks",
		    err.field);
		return -1;
	}
	json_object_put(cur);
	base->given = 0;
	return 0;
}

/* PUT and PATCH, given the current row: merge, check, write guarded by xmin. */
static void
update_row(struct sreq *c, const PGresult *res)
{
	struct subscription_input body, base, *fin;
	struct subscription_input_error err;
	struct field_texts t;
	struct db_params p;
	unsigned stored;

	if (subscription_input_parse(c->body,
	        c->op == SOP_PATCH ? SUB_INPUT_PATCH : SUB_INPUT_REPLACE, c->api, &body,
	        &err) != 0) {
		fail_invalid(c, &err);
		return;
	}
	stored = row_sign_flags(res);
	if (c->op == SOP_PATCH) {
		/* The current subscription, read back through the same checks, the patch on top. */
		if (row_input(c, res, &base) != 0) {
			subscription_input_clear(&body);
			sreq_free(c);
			return;
		}
		subscription_input_merge(&base, &body);
		subscription_input_clear(&body);
		fin = &base;
	} else {
		fin = &body; /* a PUT needs nothing of the stored row but its secrets and sets */
	}
	if (subscription_input_finish(
	        fin, c->api, count_live(db_value(res, 0, COL_SECRETS)) > 0, &stored, &err) != 0) {
		subscription_input_clear(fin);
		fail_invalid(c, &err);
		return;
	}
	wipe_free(c->reveal);
	c->reveal = fin->secret_generated ? xstrdup(fin->secret) : NULL;
	db_params_init(&p);
	db_param_text(&p, db_value(res, 0, COL_ID));
	db_param_text(&p, db_value(res, 0, COL_XMIN));
	push_fields(&p, fin, &t, seal_one(c->app, fin->secret));
	send_write(c, update_sql, &p);
	field_texts_free(&t);
	subscription_input_clear(fin);
}

/* rotate-secret, given the current row. */
static void
rotate_row(struct sreq *c, const PGresult *res)
{
	struct json_object *entry;
	struct db_params p;
	char id[21], now_iso[32], exp_iso[32], *sealed, *list;
	uint64_t now = now_wall_ms();

	if (c->rotate_secret == NULL)
		c->rotate_secret = sign_secret_generate();
	wipe_free(c->reveal);
	c->reveal = xstrdup(c->rotate_secret);
	source_secret_id(id);
	time_iso8601(now, now_iso, sizeof(now_iso));
	sealed = seal_encrypt(c->app->master_key, c->rotate_secret);
	entry = json_object_new_object();
	json_set_str(entry, "id", id);
	json_set_str(entry, "sealed", sealed);
	json_set_str(entry, "created_at", now_iso);
	json_set_str(entry, "expires_at", NULL);
	free(sealed);
	time_iso8601(now + (uint64_t)c->expire_after * 1000u, exp_iso, sizeof(exp_iso));
	list = source_secrets_rotate(db_value(res, 0, COL_SECRETS), entry, exp_iso);
	if (list == NULL) {
		reply_fail(c->req, c->api, 500, "internal", 0, NULL,
		    "the stored secrets are not a JSON array");
		sreq_free(c);
		return;
	}
	db_params_init(&p);
	db_param_text(&p, db_value(res, 0, COL_ID));
	db_param_text(&p, db_value(res, 0, COL_XMIN));
	db_param_text(&p, list);
	send_write(c, update_secrets_sql, &p);
	free(list);
}

/* GET …/secret, given the current row: the newest live secret, unsealed. */
static void
secret_row(struct sreq *c, const PGresult *res)
{
	const char *list = db_value(res, 0, COL_SECRETS);
	struct json_object *arr, *o;
	char err[64], *plain = NULL;
	int live, found = 0;

	arr = list != NULL ? json_parse(list, strlen(list), err, sizeof(err)) : NULL;
	for (size_t i = 0; arr != NULL && i < json_object_array_length(arr) && !found; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *sealed = json_get_str(e, "sealed");

		if (json_get_bool(e, "live", &live) != 0 || !live || sealed == NULL)
			continue;
		found = 1;
		plain = seal_decrypt(c->app->master_key, sealed);
	}
	json_object_put(arr);
	if (!found) {
		reply_fail(c->req, c->api, 404, "not_found", 0, NULL,
		    "webhook %.64s has no live secret; rotate one in", c->key);
	} else if (plain == NULL) {
		log_msg(LOG_LEVEL_ERROR, http_req_id(c->req),
		    "subscriptions: cannot unseal the secret of webhook %s (another master key?)",
		    c->key);
		reply_fail(c->req, c->api, 500, "internal", 0, NULL,
		    "the secret cannot be unsealed with this process's master key");
	} else {
		o = json_object_new_object();
		json_set_str(o, "secret", plain);
		reply_ok(c, 200, o);
	}
	seal_free(plain);
	sreq_free(c);
}

static void
loaded_cb(const struct db_result *res, void *arg)
{
	struct sreq *c = arg;

	if (res->status != DB_OK) {
		fail_db(c, res);
		return;
	}
	if (db_rows(res->res[0]) == 0) {
		fail_not_found(c);
		return;
	}
	switch (c->op) {
	case SOP_GET:
		reply_ok(c, 200, row_json(c, res->res[0], 0));
		sreq_free(c);
		break;
	case SOP_REPLACE:
	case SOP_PATCH: update_row(c, res->res[0]); break;
	case SOP_ROTATE: rotate_row(c, res->res[0]); break;
	case SOP_SECRET: secret_row(c, res->res[0]); break;
	default:
		hookd_assert(!"loaded_cb: unexpected operation");
		reply_fail(c->req, c->api, 500, "internal", 0, NULL, "unexpected operation");
		sreq_free(c);
		break;
	}
}

/* Read the subscription named by c->key; loaded_cb carries on. */
static void
load(struct sreq *c)
{
	struct db_params p;

	db_params_init(&p);
	db_param_text(&p, c->key);
	db_query(c->app->db, load_sql, &p, loaded_cb, c);
}

/* 1 when the {id} can name a subscription; otherwise replies 404, frees c and returns 0. */
static int
key_ok(struct sreq *c)
{
	if (c->key != NULL && uuid_valid(c->key))
		return 1;
	fail_not_found(c);
	return 0;
}

/* Start a read-modify-write request now, or after those before it. */
static void
rmw_start(struct sreq *c)
{
	if (!key_ok(c))
		return;
	if (writing != NULL) {
		TAILQ_INSERT_TAIL(&waiting, c, entry);
		return;
	}
	writing = c;
	load(c);
}

/* The request body as JSON; replies 400 and returns NULL when it is not. */
static struct json_object *
body_json(struct http_req *r, enum subscription_api api, int optional)
{
	size_t len;
	const unsigned char *buf = http_req_body(r, &len);
	struct json_object *o;
	char err[160];

	if (optional && len == 0)
		return json_object_new_object();
	o = json_parse((const char *)buf, len, err, sizeof(err));
	if (o == NULL)
		reply_fail(
		    r, api, 400, "invalid_json", 0, NULL, "the body is not valid JSON: %s", err);
	return o;
}

/* --- handlers ----------------------------------------------------------------------------- */

static void
listed_cb(const struct db_result *res, void *arg)
{
	struct sreq *c = arg;
	struct json_object *o, *arr;

	if (res->status != DB_OK) {
		fail_db(c, res);
		return;
	}
	arr = json_object_new_array();
	for (int i = 0; i < db_rows(res->res[0]); i++)
		json_object_array_add(arr, row_json(c, res->res[0], i));
	if (c->api == SUB_API_V1) {
		o = json_object_new_object();
		json_set_obj(o, "data", arr);
		http_reply_json(c->req, 200, o);
	} else {
		reply_ok(c, 200, arr);
	}
	sreq_free(c);
}

static void
list_subs(struct http_req *r, struct app *app, enum subscription_api api)
{
	const char *ls = http_req_query(r, "limit"), *os = http_req_query(r, "offset");
	int64_t limit = LIST_DEFAULT, offset = 0;
	struct db_params p;

	if (ls != NULL && parse_int64(ls, 1, INT64_MAX, &limit) != 0) {
		reply_fail(r, api, 400, "bad_request", 0, NULL, "limit must be a positive integer");
		return;
	}
	if (os != NULL && parse_int64(os, 0, INT32_MAX, &offset) != 0) {
		reply_fail(r, api, 400, "bad_request", 0, NULL, "offset must be an integer from 0");
		return;
	}
	if (limit > LIST_MAX)
		limit = LIST_MAX;
	db_params_init(&p);
	db_param_int(&p, limit);
	db_param_int(&p, offset);
	db_query(app->db, list_sql, &p, listed_cb, sreq_new(app, r, SOP_LIST, api));
}

static void
get_sub(struct http_req *r, struct app *app, enum subscription_api api, enum sub_op op)
{
	struct sreq *c = sreq_new(app, r, op, api);

	if (key_ok(c))
		load(c);
}

static void
create_sub(struct http_req *r, struct app *app, enum subscription_api api)
{
	struct json_object *body = body_json(r, api, 0);
	struct subscription_input in;
	struct subscription_input_error err;
	struct field_texts t;
	struct db_params p;
	struct sreq *c;
	char id[37];

	if (body == NULL)
		return;
	if (subscription_input_parse(body, SUB_INPUT_CREATE, api, &in, &err) != 0 ||
	    subscription_input_finish(&in, api, 0, NULL, &err) != 0) {
		json_object_put(body);
		subscription_input_clear(&in);
		reply_invalid(r, api, &err);
		return;
	}
	json_object_put(body);
	c = sreq_new(app, r, SOP_CREATE, api);
	c->reveal = xstrdup(in.secret);
	uuid_v7(id);
	db_params_init(&p);
	db_param_text(&p, id);
	push_fields(&p, &in, &t, seal_one(app, in.secret));
	db_param_text(&p, api == SUB_API_V1 ? "v1" : "omnisales");
	send_write(c, insert_sql, &p);
	field_texts_free(&t);
	subscription_input_clear(&in);
}

/* PUT and PATCH: check the body now, apply it once the row is read. */
static void
update_sub(struct http_req *r, struct app *app, enum subscription_api api, enum sub_op op)
{
	struct json_object *body = body_json(r, api, 0);
	struct subscription_input in;
	struct subscription_input_error err;
	struct sreq *c;

	if (body == NULL)
		return;
	if (subscription_input_parse(
	        body, op == SOP_PATCH ? SUB_INPUT_PATCH : SUB_INPUT_REPLACE, api, &in, &err) != 0) {
		json_object_put(body);
		reply_invalid(r, api, &err);
		return;
	}
	subscription_input_clear(&in);
	c = sreq_new(app, r, op, api);
	c->body = body;
	rmw_start(c);
}

static void
deleted_cb(const struct db_result *res, void *arg)
{
	struct sreq *c = arg;
	struct json_object *o;

	if (res->status != DB_OK) {
		fail_db(c, res);
		return;
	}
	if (db_rows(res->res[0]) == 0) {
		fail_not_found(c);
		return;
	}
	subscriptions_refresh(c->app->subscriptions);
	if (c->api == SUB_API_V1) {
		http_reply_raw(c->req, 204, NULL, NULL, 0);
	} else {
		o = json_object_new_object();
		json_set_str(o, "id", c->key);
		json_set_bool(o, "deleted", 1);
		reply_ok(c, 200, o);
	}
	sreq_free(c);
}

/*
 * Deliveries of a deleted subscription stay as history; the delivery worker finds no
 * subscription for pending ones and must settle them.
 */
static void
delete_sub(struct http_req *r, struct app *app, enum subscription_api api)
{
	struct sreq *c = sreq_new(app, r, SOP_DELETE, api);
	struct db_group *g;
	struct db_params p;

	if (!key_ok(c))
		return;
	g = db_group_new(app->db);
	db_params_init(&p);
	db_param_text(&p, c->key);
	db_group_sql(g, delete_sql, &p);
	db_group_sql(g, notify_sql, NULL);
	db_group_send(g, deleted_cb, c);
}

/* --- route adapters ------------------------------------------------------------------------ */

static void
v1_list(struct http_req *r, void *arg)
{
	list_subs(r, arg, SUB_API_V1);
}

static void
v1_create(struct http_req *r, void *arg)
{
	create_sub(r, arg, SUB_API_V1);
}

static void
v1_get(struct http_req *r, void *arg)
{
	get_sub(r, arg, SUB_API_V1, SOP_GET);
}

static void
v1_replace(struct http_req *r, void *arg)
{
	update_sub(r, arg, SUB_API_V1, SOP_REPLACE);
}

static void
v1_patch(struct http_req *r, void *arg)
{
	update_sub(r, arg, SUB_API_V1, SOP_PATCH);
}

static void
v1_delete(struct http_req *r, void *arg)
{
	delete_sub(r, arg, SUB_API_V1);
}

static void
v1_secret(struct http_req *r, void *arg)
{
	get_sub(r, arg, SUB_API_V1, SOP_SECRET);
}

/* POST /api/v1/webhooks/{id}/rotate-secret */
static void
v1_rotate(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct json_object *body = body_json(r, SUB_API_V1, 1);
	struct subscription_input_error err;
	struct sreq *c;

	if (body == NULL)
		return;
	c = sreq_new(app, r, SOP_ROTATE, SUB_API_V1);
	if (subscription_rotate_parse(body, &c->rotate_secret, &c->expire_after, &err) != 0) {
		json_object_put(body);
		fail_invalid(c, &err);
		return;
	}
	json_object_put(body);
	rmw_start(c);
}

static void
omni_list(struct http_req *r, void *arg)
{
	list_subs(r, arg, SUB_API_OMNISALES);
}

static void
omni_create(struct http_req *r, void *arg)
{
	create_sub(r, arg, SUB_API_OMNISALES);
}

static void
omni_get(struct http_req *r, void *arg)
{
	get_sub(r, arg, SUB_API_OMNISALES, SOP_GET);
}

/* Seed 003's PUT changes the fields it is given (its admin UI toggles is_active alone). */
static void
omni_update(struct http_req *r, void *arg)
{
	update_sub(r, arg, SUB_API_OMNISALES, SOP_PATCH);
}

static void
omni_delete(struct http_req *r, void *arg)
{
	delete_sub(r, arg, SUB_API_OMNISALES);
}

void
api_subscriptions_register(struct app *app)
{
	struct http_server *h = app->http;

	/* After seed 001's /api/v1/webhooks/{supabase,notion,test,stats}: first match wins. */
	http_server_route(h, "GET", "/api/v1/webhooks", HTTP_ADMIN, v1_list, app);
	http_server_route(h, "POST", "/api/v1/webhooks", HTTP_ADMIN, v1_create, app);
	http_server_route(h, "GET", "/api/v1/webhooks/{id}", HTTP_ADMIN, v1_get, app);
	http_server_route(h, "PUT", "/api/v1/webhooks/{id}", HTTP_ADMIN, v1_replace, app);
	http_server_route(h, "PATCH", "/api/v1/webhooks/{id}", HTTP_ADMIN, v1_patch, app);
	http_server_route(h, "DELETE", "/api/v1/webhooks/{id}", HTTP_ADMIN, v1_delete, app);
	http_server_route(h, "GET", "/api/v1/webhooks/{id}/secret", HTTP_ADMIN, v1_secret, app);
	http_server_route(
	    h, "POST", "/api/v1/webhooks/{id}/rotate-secret", HTTP_ADMIN, v1_rotate, app);
	/* After seed 000's /api/webhooks/customer. */
	http_server_route(h, "GET", "/api/webhooks", HTTP_ADMIN, omni_list, app);
	http_server_route(h, "POST", "/api/webhooks", HTTP_ADMIN, omni_create, app);
	http_server_route(h, "GET", "/api/webhooks/{id}", HTTP_ADMIN, omni_get, app);
	http_server_route(h, "PUT", "/api/webhooks/{id}", HTTP_ADMIN, omni_update, app);
	http_server_route(h, "DELETE", "/api/webhooks/{id}", HTTP_ADMIN, omni_delete, app);
}
