/* SPDX-License-Identifier: ISC */
/* Admin routes for inbound sources: CRUD under /api/v1/sources and secret rotation. */
#include "config.h"

#include <math.h>
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
#include "hookd/source_input.h"
#include "hookd/sources.h"
#include "hookd/util.h"
#include "hookd/verify.h"

#define LIST_DEFAULT 100
#define LIST_MAX     1000
#define WRITE_TRIES  20 /* read-modify-write attempts while other processes change the source */

/* --- SQL ------------------------------------------------------------------------------ */

/* A timestamptz as ISO 8601 UTC with milliseconds, as time_iso8601() writes it. */
#define ISO(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * One source row as every statement here returns it (enum col). Secrets come sealed with
 * their timestamps normalized and a "live" flag; xmin guards read-modify-write.
 */
/* clang-format off */
#define SOURCE_SECRETS_COL \
	"(SELECT coalesce(json_agg(json_build_object('id', x->>'id', 'sealed', x->>'sealed'," \
	"   'created_at', " ISO("(x->>'created_at')::timestamptz") "," \
	"   'expires_at', " ISO("(x->>'expires_at')::timestamptz") "," \
	"   'live', x->>'expires_at' IS NULL OR (x->>'expires_at')::timestamptz > now())" \
	"   ORDER BY o), '[]')" \
	"   FROM jsonb_array_elements(s.secrets) WITH ORDINALITY AS e(x, o))::text"
#define SOURCE_COLS \
	"s.id, s.slug, s.name, s.description, s.verifier::text, " SOURCE_SECRETS_COL "," \
	" s.timestamp_tolerance, array_to_json(s.allowed_event_types)::text, s.max_body," \
	" s.rate_limit_per_sec, s.rate_limit_burst, array_to_json(s.ip_allowlist::text[])::text," \
	" s.dedupe_key, s.event_type_key, s.handler::text, s.review_required, s.active," \
	" " ISO("s.created_at") ", " ISO("s.updated_at") ", s.xmin::text," \
	" array_to_json(s.allowed_object_types)::text, s.default_entity_table"
/* clang-format on */

enum col {
	COL_ID,
	COL_SLUG,
	COL_NAME,
	COL_DESCRIPTION,
	COL_VERIFIER,
	COL_SECRETS,
	COL_TOLERANCE,
	COL_ALLOWED,
	COL_MAX_BODY,
	COL_RATE,
	COL_BURST,
	COL_ALLOW,
	COL_DEDUPE,
	COL_ETKEY,
	COL_HANDLER,
	COL_REVIEW,
	COL_ACTIVE,
	COL_CREATED,
	COL_UPDATED,
	COL_XMIN,
	COL_OBJECT_TYPES,
	COL_ENTITY_TABLE,
};

/* The source named by $1 (its id or its slug) with $2 = $1 when $1 is a uuid, else NULL. */
#define MATCH                                                                                      \
	"s.id = coalesce((SELECT id FROM hookd.sources WHERE id = $2::uuid),"                      \
	" (SELECT id FROM hookd.sources WHERE slug = $1))"

/* JSON arrays (text) into text[] and cidr[], order kept; SQL NULL stays NULL. */
#define TEXT_ARRAY(p)                                                                              \
	"CASE WHEN " p "::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT t FROM"                        \
	" jsonb_array_elements_text(" p "::jsonb) WITH ORDINALITY AS a(t, o) ORDER BY o) END"
#define CIDR_ARRAY(p)                                                                              \
	"CASE WHEN " p "::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT t::cidr FROM"                  \
	" jsonb_array_elements_text(" p "::jsonb) WITH ORDINALITY AS a(t, o) ORDER BY o) END"

static const char list_sql[] =
    "SELECT " SOURCE_COLS " FROM hookd.sources s ORDER BY s.slug LIMIT $1 OFFSET $2";

static const char load_sql[] = "SELECT " SOURCE_COLS " FROM hookd.sources s WHERE " MATCH;

/* clang-format off */
static const char insert_sql[] =
    "INSERT INTO hookd.sources AS s (id, slug, name, description, verifier, secrets,"
    " timestamp_tolerance, allowed_event_types, max_body, rate_limit_per_sec, rate_limit_burst,"
    " ip_allowlist, dedupe_key, event_type_key, handler, review_required, active,"
    " allowed_object_types, default_entity_table)"
    " VALUES ($1::uuid, $2, $3, $4, $5::jsonb, coalesce($6::jsonb, '[]'), $7::integer, "
    TEXT_ARRAY("$8") ", $9::integer, $10::double precision, $11::integer, "
    CIDR_ARRAY("$12") ", $13, $14, $15::jsonb, $16::boolean, $17::boolean, "
    TEXT_ARRAY("$18") ", $19)"
    " RETURNING " SOURCE_COLS;

static const char update_sql[] =
    "UPDATE hookd.sources s SET slug = $3, name = $4, description = $5, verifier = $6::jsonb,"
    " secrets = coalesce($7::jsonb, s.secrets), timestamp_tolerance = $8::integer,"
    " allowed_event_types = " TEXT_ARRAY("$9") ", max_body = $10::integer,"
    " rate_limit_per_sec = $11::double precision, rate_limit_burst = $12::integer,"
    " ip_allowlist = " CIDR_ARRAY("$13") ", dedupe_key = $14, event_type_key = $15,"
    " handler = $16::jsonb, review_required = $17::boolean, active = $18::boolean,"
    " allowed_object_types = " TEXT_ARRAY("$19") ", default_entity_table = $20,"
    " updated_at = now()"
    " WHERE s.id = $1::uuid AND s.xmin::text = $2"
    " RETURNING " SOURCE_COLS;
/* clang-format on */

static const char update_secrets_sql[] =
    "UPDATE hookd.sources s SET secrets = $3::jsonb, updated_at = now()"
    " WHERE s.id = $1::uuid AND s.xmin::text = $2"
    " RETURNING " SOURCE_COLS;

static const char delete_sql[] = "DELETE FROM hookd.sources s WHERE " MATCH " RETURNING s.id";

/* Every process sharing the database reloads its sources cache (this one too). */
static const char notify_sql[] = "SELECT pg_notify('hookd_config', 'sources')";

/* A SQL handler's function must exist: regproc resolves the name or fails. */
static const char check_function_sql[] = "SELECT $1::text::regproc";

/* --- one request --------------------------------------------------------------------- */

enum source_op {
	SOP_LIST,          /* GET /api/v1/sources */
	SOP_GET,           /* GET /api/v1/sources/{id} */
	SOP_CREATE,        /* POST /api/v1/sources */
	SOP_REPLACE,       /* PUT /api/v1/sources/{id} */
	SOP_PATCH,         /* PATCH /api/v1/sources/{id} */
	SOP_DELETE,        /* DELETE /api/v1/sources/{id} */
	SOP_ROTATE,        /* POST /api/v1/sources/{id}/rotate-secret */
	SOP_DELETE_SECRET, /* DELETE /api/v1/sources/{id}/secrets/{secret_id} */
};

/*
 * A request's context, owned by whoever holds the pending database callback; the
 * callback that replies frees it.
 */
struct sreq {
	struct app *app;
	struct http_req *req;
	enum source_op op;
	char *key;                /* the {id} parameter: a uuid or a slug */
	char *secret_id;          /* SOP_DELETE_SECRET */
	struct json_object *body; /* SOP_REPLACE, SOP_PATCH: parsed again on every attempt */
	struct source_input in;   /* SOP_CREATE: the checked body */
	char *rotate_secret;      /* SOP_ROTATE: the new plaintext, given or generated */
	int64_t expire_after;     /* SOP_ROTATE: seconds, -1 for none */
	char *reveal;             /* a plaintext the reply shows once (never logged) */
	char *slug;               /* the slug being written, for a conflict message */
	int check_fn;             /* the write group starts with check_function_sql */
	int tries;
	TAILQ_ENTRY(sreq) entry; /* in waiting */
};

/*
 * Read-modify-write requests (PUT, PATCH, rotate-secret, secret removal) run one at a
 * time in a process, so they never race each other; only writes from other processes can
 * make the xmin guard send one round again. Admin writes are rare: one queue will do.
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
sreq_new(struct app *app, struct http_req *r, enum source_op op)
{
	struct sreq *c = xcalloc(1, sizeof(*c));
	const char *id = http_req_param(r, "id"), *sid = http_req_param(r, "secret_id");

	c->app = app;
	c->req = r;
	c->op = op;
	c->key = id != NULL ? xstrdup(id) : NULL;
	c->secret_id = sid != NULL ? xstrdup(sid) : NULL;
	c->expire_after = -1;
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
	free(c->secret_id);
	json_object_put(c->body);
	source_input_clear(&c->in);
	wipe_free(c->rotate_secret);
	wipe_free(c->reveal);
	free(c->slug);
	free(c);
}

/* --- replies -------------------------------------------------------------------------- */

static void
reply_invalid(struct http_req *r, const struct source_input_error *err)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "error", "validation_failed");
	json_set_str(o, "message", err->message);
	json_set_str(o, "field", err->field[0] != '\0' ? err->field : NULL);
	http_reply_json(r, 422, o);
}

static void
reply_unavailable(struct http_req *r)
{
	http_reply_header(r, "Retry-After", "1");
	http_reply_error(r, 503, "unavailable", "the database is unavailable; retry later");
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

	if (res->status == DB_ERR_UNAVAILABLE || res->status == DB_ERR_LOST ||
	    transient_sqlstate(res->sqlstate)) {
		log_msg(LOG_LEVEL_WARN, http_req_id(r), "sources: database: %s", res->error);
		reply_unavailable(r);
	} else {
		log_msg(LOG_LEVEL_ERROR, http_req_id(r), "sources: database error %s: %s",
		    res->sqlstate ? res->sqlstate : "?", res->error);
		http_reply_error(r, 500, "internal", "database error (see the hookd log)");
	}
	sreq_free(c);
}

static void
fail_not_found(struct sreq *c)
{
	http_reply_error(c->req, 404, "not_found", "no source \"%.128s\"", c->key ? c->key : "");
	sreq_free(c);
}

static void
fail_invalid(struct sreq *c, const struct source_input_error *err)
{
	reply_invalid(c->req, err);
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
set_int_or_null(struct json_object *o, const char *key, const char *v)
{
	json_set_obj(o, key, v != NULL ? json_object_new_int64(atoll(v)) : NULL);
}

/* The API's secrets: id, timestamps and a hint; never a value, sealed or not. */
static struct json_object *
secrets_json(struct app *app, const char *list)
{
	struct json_object *arr, *out = json_object_new_array();
	char err[64];

	arr = list != NULL ? json_parse(list, strlen(list), err, sizeof(err)) : NULL;
	for (size_t i = 0; arr != NULL && i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		struct json_object *o = json_object_new_object();
		const char *sealed = json_get_str(e, "sealed");
		char *plain = sealed != NULL ? seal_decrypt(app->master_key, sealed) : NULL;
		char hint[16];

		json_set_str(o, "id", json_get_str(e, "id"));
		json_set_str(o, "created_at", json_get_str(e, "created_at"));
		json_set_str(o, "expires_at", json_get_str(e, "expires_at"));
		if (plain != NULL) {
			source_secret_hint(plain, hint, sizeof(hint));
			json_set_str(o, "hint", hint);
		} else {
			json_set_str(o, "hint", NULL); /* sealed under another master key */
		}
		seal_free(plain);
		json_object_array_add(out, o);
	}
	json_object_put(arr);
	return out;
}

/* One source as the API shows it, from a row of SOURCE_COLS. */
static struct json_object *
source_json(struct app *app, const PGresult *res, int row)
{
	struct json_object *o = json_object_new_object(), *rl = NULL;
	const char *slug = db_value(res, row, COL_SLUG), *rate = db_value(res, row, COL_RATE);
	char *url = xasprintf("/in/%s", slug);

	json_set_str(o, "id", db_value(res, row, COL_ID));
	json_set_str(o, "slug", slug);
	json_set_str(o, "name", db_value(res, row, COL_NAME));
	json_set_str(o, "description", db_value(res, row, COL_DESCRIPTION));
	json_set_str(o, "url", url);
	json_set_obj(o, "verifier", parse_col(res, row, COL_VERIFIER));
	json_set_obj(o, "secrets", secrets_json(app, db_value(res, row, COL_SECRETS)));
	set_int_or_null(o, "timestamp_tolerance", db_value(res, row, COL_TOLERANCE));
	json_set_obj(o, "allowed_event_types", parse_col(res, row, COL_ALLOWED));
	set_int_or_null(o, "max_body", db_value(res, row, COL_MAX_BODY));
	if (rate != NULL) {
		const char *burst = db_value(res, row, COL_BURST);
		double per_sec = atof(rate);

		rl = json_object_new_object();
		json_set_double(rl, "per_second", per_sec);
		json_set_int(rl, "burst", burst != NULL ? atoll(burst) : (int64_t)ceil(per_sec));
	}
	json_set_obj(o, "rate_limit", rl);
	json_set_obj(o, "ip_allowlist", parse_col(res, row, COL_ALLOW));
	json_set_str(o, "dedupe_key", db_value(res, row, COL_DEDUPE));
	json_set_str(o, "event_type_key", db_value(res, row, COL_ETKEY));
	json_set_obj(o, "handler", parse_col(res, row, COL_HANDLER));
	json_set_bool(o, "review_required", strcmp(db_value(res, row, COL_REVIEW), "t") == 0);
	json_set_bool(o, "active", strcmp(db_value(res, row, COL_ACTIVE), "t") == 0);
	json_set_obj(o, "allowed_object_types", parse_col(res, row, COL_OBJECT_TYPES));
	json_set_str(o, "default_entity_table", db_value(res, row, COL_ENTITY_TABLE));
	json_set_str(o, "created_at", db_value(res, row, COL_CREATED));
	json_set_str(o, "updated_at", db_value(res, row, COL_UPDATED));
	free(url);
	return o;
}

/* --- parameters ------------------------------------------------------------------------- */

/* A string array as JSON text for TEXT_ARRAY/CIDR_ARRAY (malloc'd), or NULL for SQL NULL. */
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

/* Texts the parameters point into; they must outlive db_group_send (which copies). */
struct field_texts {
	char *verifier, *secrets, *allowed, *allow, *handler, *object_types;
	char rate[32];
};

static void
field_texts_free(struct field_texts *t)
{
	free(t->verifier);
	free(t->secrets);
	free(t->allowed);
	free(t->allow);
	free(t->handler);
	free(t->object_types);
}

/*
 * The writable fields as parameters, in insert_sql's order from $2 (update_sql's from $3).
 * secrets: new sealed secrets, or NULL to keep those stored.
 */
static void
push_fields(
    struct db_params *p, const struct source_input *in, struct field_texts *t, char *secrets)
{
	memset(t, 0, sizeof(*t));
	t->verifier = json_compact(in->verifier, NULL);
	t->secrets = secrets;
	t->allowed = strings_json(in->allowed_types, in->nallowed);
	t->allow = strings_json(in->ip_allowlist, in->nallow);
	t->handler = json_compact(in->handler, NULL);
	t->object_types = strings_json(in->object_types, in->nobject_types);
	db_param_text(p, in->slug);
	db_param_text(p, in->name);
	db_param_text(p, in->description);
	db_param_text(p, t->verifier);
	db_param_text(p, t->secrets);
	db_param_int(p, in->tolerance);
	db_param_text(p, t->allowed);
	if (in->max_body > 0)
		db_param_int(p, in->max_body);
	else
		db_param_null(p);
	if (in->rate_per_sec > 0) {
		json_format_number(in->rate_per_sec, t->rate, sizeof(t->rate));
		db_param_text(p, t->rate);
		db_param_int(p, in->rate_burst);
	} else {
		db_param_null(p);
		db_param_null(p);
	}
	db_param_text(p, t->allow);
	db_param_text(p, in->dedupe_key);
	db_param_text(p, in->event_type_key);
	db_param_text(p, t->handler);
	db_param_bool(p, in->review_required);
	db_param_bool(p, in->active);
	db_param_text(p, t->object_types);
	db_param_text(p, in->entity_table);
}

/* $1 the key as given, $2 the same when it is a uuid (MATCH). */
static void
push_key(struct db_params *p, const char *key)
{
	db_param_text(p, key);
	db_param_text(p, uuid_valid(key) ? key : NULL);
}

/* --- writes ----------------------------------------------------------------------------- */

/* 1 when the handler-function check is what failed. */
static int
function_check_failed(const struct sreq *c, const struct db_result *res)
{
	return c->check_fn && res->nres > 0 && res->res[0] != NULL &&
	       PQresultStatus(res->res[0]) == PGRES_FATAL_ERROR;
}

static void
written_cb(const struct db_result *res, void *arg)
{
	struct sreq *c = arg;
	struct http_req *r = c->req;
	int idx = c->check_fn ? 1 : 0;
	struct json_object *o, *out;

	if (function_check_failed(c, res)) {
		struct source_input_error err;

		snprintf(err.field, sizeof(err.field), "handler.function");
		snprintf(err.message, sizeof(err.message), "handler.function: %s", res->error);
		fail_invalid(c, &err);
		return;
	}
	if (res->status == DB_ERR_SQL && strcmp(res->sqlstate, "23505") == 0) {
		http_reply_error(r, 409, "conflict", "a source with slug \"%s\" already exists",
		    c->slug ? c->slug : "?");
		sreq_free(c);
		return;
	}
	if (res->status != DB_OK) {
		fail_db(c, res);
		return;
	}
	if (db_rows(res->res[idx]) == 0) {
		/* Changed (or deleted) since we read it: read again and redo the change. */
		if (++c->tries < WRITE_TRIES) {
			/* Step aside a random moment so racing writers stop colliding. */
			struct timeval tv = {
			    0, (long)random_below(2000u << (c->tries < 5 ? c->tries : 5))};

			event_base_once(c->app->base, -1, EV_TIMEOUT, reload_cb, c, &tv);
			return;
		}
		http_reply_error(r, 409, "conflict",
		    "the source kept changing while this request ran; try again");
		sreq_free(c);
		return;
	}
	sources_refresh(c->app->sources);
	o = source_json(c->app, res->res[idx], 0);
	switch (c->op) {
	case SOP_ROTATE:
		out = json_object_new_object();
		json_set_str(out, "id", json_get_str(o, "id"));
		json_set_str(out, "secret", c->reveal);
		json_set_obj(out, "secrets", json_object_get(json_get_arr(o, "secrets")));
		json_object_put(o);
		http_reply_json(r, 200, out);
		break;
	case SOP_DELETE_SECRET:
		json_object_put(o);
		http_reply_raw(r, 204, NULL, NULL, 0);
		break;
	default:
		if (c->reveal != NULL)
			json_set_str(o, "secret", c->reveal);
		http_reply_json(r, c->op == SOP_CREATE ? 201 : 200, o);
		break;
	}
	sreq_free(c);
}

/* Send a write: [the handler function check,] the statement, the NOTIFY. */
static void
send_write(struct sreq *c, const char *sql, const struct db_params *p, const char *check_function)
{
	struct db_group *g = db_group_new(c->app->db);

	c->check_fn = check_function != NULL;
	if (c->check_fn) {
		struct db_params fp;

		db_params_init(&fp);
		db_param_text(&fp, check_function);
		db_group_sql(g, check_function_sql, &fp);
	}
	db_group_sql(g, sql, p);
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

/* PUT and PATCH, given the current row: merge, check, write guarded by xmin. */
static void
update_row(struct sreq *c, const PGresult *res)
{
	struct source_input body, base, *fin;
	struct source_input_error err;
	struct field_texts t;
	struct db_params p;
	char *sealed = NULL;
	const char *fn;

	if (source_input_parse(c->body,
	        c->op == SOP_PATCH ? SOURCE_INPUT_PATCH : SOURCE_INPUT_REPLACE,
	        c->app->cfg.http_max_body_size, &body, &err) != 0) {
		fail_invalid(c, &err);
		return;
	}
	memset(&base, 0, sizeof(base));
	fin = &body;
	if (c->op == SOP_PATCH) {
		/* The current source, read back through the same checks, then the patch on top. */
		struct json_object *cur = source_json(c->app, res, 0);
		static const char *const ro[] = {
		    "id", "url", "secrets", "created_at", "updated_at"};

		for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
			json_object_object_del(cur, ro[i]);
		if (source_input_parse(cur, SOURCE_INPUT_REPLACE, INT32_MAX, &base, &err) != 0) {
			json_object_put(cur);
			source_input_clear(&body);
			log_msg(LOG_LEVEL_ERROR, http_req_id(c->req),
			    "sources: stored source %s does not validate: %s: %s", c->key,
			    err.field, err.message);
			http_reply_error(c->req, 500, "internal",
			    "the stored source does not validate (%s); replace it with PUT",
			    err.field);
			sreq_free(c);
			return;
		}
		json_object_put(cur);
		base.given = 0;
		source_input_merge(&base, &body);
		source_input_clear(&body);
		fin = &base;
	}
	if (source_input_finish(fin, count_live(db_value(res, 0, COL_SECRETS)), &err) != 0) {
		source_input_clear(fin);
		fail_invalid(c, &err);
		return;
	}
	wipe_free(c->reveal);
	c->reveal = fin->secret_generated ? xstrdup(fin->secrets[0]) : NULL;
	free(c->slug);
	c->slug = xstrdup(fin->slug);
	if (fin->given & SOURCE_F_SECRETS)
		sealed = source_secrets_seal(
		    c->app->master_key, fin->secrets, fin->nsecrets, now_wall_ms());
	db_params_init(&p);
	db_param_text(&p, db_value(res, 0, COL_ID));
	db_param_text(&p, db_value(res, 0, COL_XMIN));
	push_fields(&p, fin, &t, sealed);
	fn = (fin->given & SOURCE_F_HANDLER) ? fin->handler_function : NULL;
	send_write(c, update_sql, &p, fn);
	field_texts_free(&t);
	source_input_clear(fin);
}

/* rotate-secret, given the current row. */
static void
rotate_row(struct sreq *c, const PGresult *res)
{
	struct json_object *verifier = parse_col(res, 0, COL_VERIFIER), *entry;
	enum source_key_encoding enc = source_verifier_key_encoding(verifier);
	struct source_input_error err;
	struct db_params p;
	char id[21], now_iso[32], exp_iso[32], why[200], *sealed, *list;
	uint64_t now = now_wall_ms();

	json_object_put(verifier);
	memset(&err, 0, sizeof(err));
	if (c->rotate_secret == NULL) {
		c->rotate_secret = source_secret_generate(enc);
		if (c->rotate_secret == NULL) {
			snprintf(err.field, sizeof(err.field), "secret");
			snprintf(err.message, sizeof(err.message),
			    "this verifier needs the provider's public key as secret; "
			    "hookd cannot make one");
			fail_invalid(c, &err);
			return;
		}
	} else if (source_secret_check(enc, c->rotate_secret, why, sizeof(why)) != 0) {
		snprintf(err.field, sizeof(err.field), "secret");
		snprintf(err.message, sizeof(err.message), "secret %s", why);
		fail_invalid(c, &err);
		return;
	}
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
	if (c->expire_after >= 0)
		time_iso8601(now + (uint64_t)c->expire_after * 1000u, exp_iso, sizeof(exp_iso));
	list = source_secrets_rotate(
	    db_value(res, 0, COL_SECRETS), entry, c->expire_after >= 0 ? exp_iso : NULL);
	if (list == NULL) {
		http_reply_error(
		    c->req, 500, "internal", "the stored secrets are not a JSON array");
		sreq_free(c);
		return;
	}
	db_params_init(&p);
	db_param_text(&p, db_value(res, 0, COL_ID));
	db_param_text(&p, db_value(res, 0, COL_XMIN));
	db_param_text(&p, list);
	send_write(c, update_secrets_sql, &p, NULL);
	free(list);
}

/* DELETE …/secrets/{secret_id}, given the current row. */
static void
remove_secret_row(struct sreq *c, const PGresult *res)
{
	struct json_object *cfg = parse_col(res, 0, COL_VERIFIER);
	struct verifier *v;
	struct db_params p;
	char why[200], *list;
	int live_left, requires = 1;

	v = cfg != NULL ? verifier_compile(cfg, why, sizeof(why)) : NULL;
	if (v != NULL) {
		requires = verifier_requires_secret(v);
		verifier_free(v);
	}
	json_object_put(cfg);
	list = source_secrets_remove(db_value(res, 0, COL_SECRETS), c->secret_id, &live_left);
	if (list == NULL) {
		http_reply_error(c->req, 404, "not_found", "source %.128s has no secret \"%.64s\"",
		    c->key, c->secret_id);
		sreq_free(c);
		return;
	}
	/* Only a live secret is protected: expired ones may always go. */
	if (requires && live_left == 0 && count_live(db_value(res, 0, COL_SECRETS)) > 0) {
		free(list);
		http_reply_error(c->req, 409, "conflict",
		    "%.64s is the source's last live secret and its verifier needs one; "
		    "rotate in a new secret first",
		    c->secret_id);
		sreq_free(c);
		return;
	}
	db_params_init(&p);
	db_param_text(&p, db_value(res, 0, COL_ID));
	db_param_text(&p, db_value(res, 0, COL_XMIN));
	db_param_text(&p, list);
	send_write(c, update_secrets_sql, &p, NULL);
	free(list);
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
		http_reply_json(c->req, 200, source_json(c->app, res->res[0], 0));
		sreq_free(c);
		break;
	case SOP_REPLACE:
	case SOP_PATCH: update_row(c, res->res[0]); break;
	case SOP_ROTATE: rotate_row(c, res->res[0]); break;
	case SOP_DELETE_SECRET: remove_secret_row(c, res->res[0]); break;
	default:
		hookd_assert(!"loaded_cb: unexpected operation");
		http_reply_error(c->req, 500, "internal", "unexpected operation");
		sreq_free(c);
		break;
	}
}

/* Read the source named by c->key; loaded_cb carries on. */
static void
load(struct sreq *c)
{
	struct db_params p;

	db_params_init(&p);
	push_key(&p, c->key);
	db_query(c->app->db, load_sql, &p, loaded_cb, c);
}

/* Start a read-modify-write request now, or after those before it. */
static void
rmw_start(struct sreq *c)
{
	if (writing != NULL) {
		TAILQ_INSERT_TAIL(&waiting, c, entry);
		return;
	}
	writing = c;
	load(c);
}

/* The request body as JSON; replies 400 and returns NULL when it is not. */
static struct json_object *
body_json(struct http_req *r, int optional)
{
	size_t len;
	const unsigned char *buf = http_req_body(r, &len);
	struct json_object *o;
	char err[160];

	if (optional && len == 0)
		return json_object_new_object();
	o = json_parse((const char *)buf, len, err, sizeof(err));
	if (o == NULL)
		http_reply_error(r, 400, "invalid_json", "the body is not valid JSON: %s", err);
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
		json_object_array_add(arr, source_json(c->app, res->res[0], i));
	o = json_object_new_object();
	json_set_obj(o, "data", arr);
	http_reply_json(c->req, 200, o);
	sreq_free(c);
}

/* GET /api/v1/sources[?limit=&offset=] */
static void
list_sources(struct http_req *r, void *arg)
{
	struct app *app = arg;
	const char *ls = http_req_query(r, "limit"), *os = http_req_query(r, "offset");
	int64_t limit = LIST_DEFAULT, offset = 0;
	struct db_params p;

	if (ls != NULL && parse_int64(ls, 1, INT64_MAX, &limit) != 0) {
		http_reply_error(r, 400, "bad_request", "limit must be a positive integer");
		return;
	}
	if (os != NULL && parse_int64(os, 0, INT32_MAX, &offset) != 0) {
		http_reply_error(r, 400, "bad_request", "offset must be an integer from 0");
		return;
	}
	if (limit > LIST_MAX)
		limit = LIST_MAX;
	db_params_init(&p);
	db_param_int(&p, limit);
	db_param_int(&p, offset);
	db_query(app->db, list_sql, &p, listed_cb, sreq_new(app, r, SOP_LIST));
}

/* GET /api/v1/sources/{id} */
static void
get_source(struct http_req *r, void *arg)
{
	load(sreq_new(arg, r, SOP_GET));
}

/* POST /api/v1/sources */
static void
create_source(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct json_object *body = body_json(r, 0);
	struct source_input_error err;
	struct field_texts t;
	struct db_params p;
	struct sreq *c;
	char id[37];

	if (body == NULL)
		return;
	c = sreq_new(app, r, SOP_CREATE);
	if (source_input_parse(
	        body, SOURCE_INPUT_CREATE, app->cfg.http_max_body_size, &c->in, &err) != 0 ||
	    source_input_finish(&c->in, 0, &err) != 0) {
		json_object_put(body);
		fail_invalid(c, &err);
		return;
	}
	json_object_put(body);
	if (c->in.nsecrets > 0)
		c->reveal = xstrdup(c->in.secrets[0]);
	c->slug = xstrdup(c->in.slug);
	uuid_v7(id);
	db_params_init(&p);
	db_param_text(&p, id);
	push_fields(&p, &c->in, &t,
	    c->in.nsecrets > 0
	        ? source_secrets_seal(app->master_key, c->in.secrets, c->in.nsecrets, now_wall_ms())
	        : NULL);
	send_write(c, insert_sql, &p, c->in.handler_function);
	field_texts_free(&t);
}

/* PUT and PATCH /api/v1/sources/{id}: check the body now, apply it once the row is read. */
static void
update_source(struct http_req *r, struct app *app, enum source_op op)
{
	struct json_object *body = body_json(r, 0);
	struct source_input in;
	struct source_input_error err;
	struct sreq *c;

	if (body == NULL)
		return;
	if (source_input_parse(body, op == SOP_PATCH ? SOURCE_INPUT_PATCH : SOURCE_INPUT_REPLACE,
	        app->cfg.http_max_body_size, &in, &err) != 0) {
		json_object_put(body);
		reply_invalid(r, &err);
		return;
	}
	source_input_clear(&in);
	c = sreq_new(app, r, op);
	c->body = body;
	rmw_start(c);
}

static void
replace_source(struct http_req *r, void *arg)
{
	update_source(r, arg, SOP_REPLACE);
}

static void
patch_source(struct http_req *r, void *arg)
{
	update_source(r, arg, SOP_PATCH);
}

static void
deleted_cb(const struct db_result *res, void *arg)
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
	sources_refresh(c->app->sources);
	http_reply_raw(c->req, 204, NULL, NULL, 0);
	sreq_free(c);
}

/* DELETE /api/v1/sources/{id} */
static void
delete_source(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct sreq *c = sreq_new(app, r, SOP_DELETE);
	struct db_group *g = db_group_new(app->db);
	struct db_params p;

	db_params_init(&p);
	push_key(&p, c->key);
	db_group_sql(g, delete_sql, &p);
	db_group_sql(g, notify_sql, NULL);
	db_group_send(g, deleted_cb, c);
}

/* POST /api/v1/sources/{id}/rotate-secret */
static void
rotate_secret(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct json_object *body = body_json(r, 1);
	struct source_input_error err;
	struct sreq *c;

	if (body == NULL)
		return;
	c = sreq_new(app, r, SOP_ROTATE);
	if (source_rotate_parse(body, &c->rotate_secret, &c->expire_after, &err) != 0) {
		json_object_put(body);
		fail_invalid(c, &err);
		return;
	}
	json_object_put(body);
	rmw_start(c);
}

/* DELETE /api/v1/sources/{id}/secrets/{secret_id} */
static void
delete_secret(struct http_req *r, void *arg)
{
	rmw_start(sreq_new(arg, r, SOP_DELETE_SECRET));
}

void
api_sources_register(struct app *app)
{
	struct http_server *h = app->http;

	http_server_route(h, "GET", "/api/v1/sources", HTTP_ADMIN, list_sources, app);
	http_server_route(h, "POST", "/api/v1/sources", HTTP_ADMIN, create_source, app);
	http_server_route(h, "GET", "/api/v1/sources/{id}", HTTP_ADMIN, get_source, app);
	http_server_route(h, "PUT", "/api/v1/sources/{id}", HTTP_ADMIN, replace_source, app);
	http_server_route(h, "PATCH", "/api/v1/sources/{id}", HTTP_ADMIN, patch_source, app);
	http_server_route(h, "DELETE", "/api/v1/sources/{id}", HTTP_ADMIN, delete_source, app);
	http_server_route(
	    h, "POST", "/api/v1/sources/{id}/rotate-secret", HTTP_ADMIN, rotate_secret, app);
	http_server_route(h, "DELETE", "/api/v1/sources/{id}/secrets/{secret_id}", HTTP_ADMIN,
	    delete_secret, app);
}
