/* SPDX-License-Identifier: ISC */
/* Seed 001, the Webhook Implementation Guide: Supabase and Notion receivers, stats, test. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hookd/app.h"
#include "hookd/compat.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/ingest.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/sources.h"
#include "hookd/verify.h"

#define RECEIVER                "seed001"
#define SIGNATURE_HEADER        "X-Webhook-Signature"
#define RETRY_AFTER_UNAVAILABLE "2"

#define MEMORY_HANDLER                                                                             \
	"{\"type\":\"sql\",\"function\":\"memory.process_webhook\",\"max_attempts\":3,"            \
	"\"backoff_seconds\":2,\"multiplier\":2}"

static const struct compat_source_spec memory_sources[] = {
    {
        .slug = "supabase",
        .name = "Supabase (seed 001)",
        .description = "POST /api/v1/webhooks/supabase: row changes, cached by "
                       "memory.process_webhook (contrib/examples/memory.sql).",
        .verifier = "{\"scheme\":\"hookd\"}",
        .handler = MEMORY_HANDLER,
    },
    {
        .slug = "notion",
        .name = "Notion (seed 001)",
        .description = "POST /api/v1/webhooks/notion: page updates, cached by "
                       "memory.process_webhook (contrib/examples/memory.sql).",
        .verifier = "{\"scheme\":\"hookd\"}",
        .handler = MEMORY_HANDLER,
    },
};

/* One receiver route and the source (and "source" field) it takes. */
struct memory_route {
	const char *slug;      /* source slug and the expected "source" value */
	const char *label;     /* "Supabase" in the seed's messages */
	const char *table_key; /* what the 202 details call table_name */
};

static const struct memory_route route_supabase = {"supabase", "Supabase", "table_name"};
static const struct memory_route route_notion = {"notion", "Notion", "database_id"};

/*
 * The seed's stats over the supabase and notion sources. Processed and failed count
 * finished events; retries are the attempts after each event's first; the processing
 * time is the average successful handler run.
 */
static const char stats_sql[] =
    "WITH src AS (SELECT id, slug FROM hookd.sources WHERE slug IN ('supabase', 'notion')),"
    " e AS (SELECT src.slug, e.event_type, e.status, e.attempts"
    "  FROM hookd.events e JOIN src ON src.id = e.source_id)"
    " SELECT (SELECT count(*) FROM e WHERE status = 'processed'),"
    "  (SELECT count(*) FROM e WHERE status = 'failed'),"
    "  (SELECT coalesce(sum(greatest(attempts - 1, 0)), 0) FROM e),"
    "  (SELECT coalesce(avg(l.duration_ms), 0) FROM hookd.event_logs l"
    "    WHERE l.source_id IN (SELECT id FROM src) AND l.action = 'sql' AND l.success),"
    "  (SELECT coalesce(json_object_agg(t, n ORDER BY t), '{}') FROM"
    "    (SELECT coalesce(lower(event_type), 'unknown') AS t, count(*) AS n FROM e"
    "      WHERE status IN ('processed', 'failed') GROUP BY 1) x)::text,"
    "  (SELECT coalesce(json_object_agg(slug, n ORDER BY slug), '{}') FROM"
    "    (SELECT slug, count(*) AS n FROM e WHERE status IN ('processed', 'failed')"
    "      GROUP BY 1) x)::text";

/* Read at start-up. */
static struct {
	struct app *app;
	int verify;                /* VERIFY_WEBHOOK_SIGNATURES=true */
	const char *secret;        /* WEBHOOK_SECRET */
	struct verifier *verifier; /* X-Webhook-Signature: hex HMAC-SHA256 of the body */
} mem;

/* A receiver request waiting for its commit. */
struct memory_req {
	struct http_req *req;
	struct source *source;
	const struct memory_route *route;
	struct json_object *details;
};

/* --- validation, as the seed's pydantic model ------------------------------------------ */

enum field_kind {
	FIELD_STR,  /* str: strings, and numbers (pydantic turns them into text) */
	FIELD_DICT, /* Dict[str, Any] */
};

static const struct {
	const char *name;
	enum field_kind kind;
	int required;
} fields[] = {
    {"event_type", FIELD_STR, 1},
    {"source", FIELD_STR, 1},
    {"table_name", FIELD_STR, 1},
    {"record_id", FIELD_STR, 1},
    {"data", FIELD_DICT, 1},
    {"timestamp", FIELD_STR, 0},
    {"metadata", FIELD_DICT, 0},
};

static void
detail_add(struct json_object *detail, const char *field, const char *msg, const char *type)
{
	struct json_object *d = json_object_new_object(), *loc = json_object_new_array();

	json_object_array_add(loc, json_object_new_string("body"));
	if (field != NULL)
		json_object_array_add(loc, json_object_new_string(field));
	json_set_obj(d, "loc", loc);
	json_set_str(d, "msg", msg);
	json_set_str(d, "type", type);
	json_object_array_add(detail, d);
}

/*
 * Validate a body against the seed's model. Returns the parsed payload (every field,
 * absent optional ones as null, numbers given for text fields as text), or NULL with
 * the 422 list in *detail.
 */
static struct json_object *
memory_validate(struct json_object *body, struct json_object **detail)
{
	struct json_object *parsed, *d = json_object_new_array();

	if (!json_object_is_type(body, json_type_object)) {
		detail_add(d, NULL, "value is not a valid dict", "type_error.dict");
		*detail = d;
		return NULL;
	}
	parsed = json_object_new_object();
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		struct json_object *v = NULL;
		int present = json_object_object_get_ex(body, fields[i].name, &v);

		if (!present || v == NULL) {
			if (present && fields[i].required)
				detail_add(d, fields[i].name, "none is not an allowed value",
				    "type_error.none.not_allowed");
			else if (fields[i].required)
				detail_add(
				    d, fields[i].name, "field required", "value_error.missing");
			else
				json_set_obj(parsed, fields[i].name, NULL);
			continue;
		}
		switch (fields[i].kind) {
		case FIELD_STR:
			if (json_object_is_type(v, json_type_string)) {
				json_set_obj(parsed, fields[i].name, json_object_get(v));
			} else if (json_object_is_type(v, json_type_int) ||
			           json_object_is_type(v, json_type_double)) {
				char *text = json_scalar_text(v);

				json_set_str(parsed, fields[i].name, text);
				free(text);
			} else {
				detail_add(
				    d, fields[i].name, "str type expected", "type_error.str");
			}
			break;
		case FIELD_DICT:
			if (json_object_is_type(v, json_type_object))
				json_set_obj(parsed, fields[i].name, json_object_get(v));
			else
				detail_add(d, fields[i].name, "value is not a valid dict",
				    "type_error.dict");
			break;
		}
	}
	if (json_object_array_length(d) > 0) {
		json_object_put(parsed);
		*detail = d;
		return NULL;
	}
	json_object_put(d);
	*detail = NULL;
	return parsed;
}

/* FastAPI's 422: {"detail": [...]}. Takes the list. */
static void
reply_422(struct http_req *r, struct json_object *detail)
{
	struct json_object *o = json_object_new_object();

	json_set_obj(o, "detail", detail);
	http_reply_json(r, 422, o);
}

/* FastAPI's 415 shape. */
static void
reply_415(struct http_req *r)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "detail", "Content-Type must be application/json");
	http_reply_json(r, 415, o);
}

/* The body as JSON, or a 422 answered (bad JSON) and NULL. */
static struct json_object *
parse_or_422(struct http_req *r, const unsigned char *raw, size_t raw_len)
{
	struct json_object *body, *d;
	char why[200];

	body = json_parse((const char *)raw, raw_len, why, sizeof(why));
	if (body != NULL)
		return body;
	d = json_object_new_array();
	detail_add(d, NULL, why, "value_error.jsondecode");
	compat_count(RECEIVER, "invalid_json");
	reply_422(r, d);
	return NULL;
}

static void
reply_error(struct http_req *r, int status, const char *error, const char *message)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "error", error);
	json_set_str(o, "message", message);
	http_reply_json(r, status, o);
}

static void
memory_unavailable(struct http_req *r, const char *message)
{
	compat_count(RECEIVER, "unavailable");
	http_reply_header(r, "Retry-After", RETRY_AFTER_UNAVAILABLE);
	reply_error(r, 503, "unavailable", message);
}

/* --- the receivers ------------------------------------------------------------------- */

static const char *
header_cb(void *ctx, const char *name)
{
	return http_req_header(ctx, name);
}

static void
memory_stored_cb(const struct ingest_result *res, void *arg)
{
	struct memory_req *mr = arg;
	struct http_req *r = mr->req;
	struct json_object *o;

	switch (res->status) {
	case INGEST_STORED:
	case INGEST_DUPLICATE:
		compat_count(RECEIVER, res->status == INGEST_STORED ? "accepted" : "duplicate");
		o = json_object_new_object();
		json_set_str(o, "status", "accepted");
		json_set_str(o, "message", "Webhook payload received and queued for processing");
		json_set_obj(o, "details", json_object_get(mr->details));
		http_reply_json(r, 202, o);
		break;
	case INGEST_REJECTED:
		compat_count(RECEIVER, "rejected");
		reply_error(r, 400, "invalid_payload", "The database refused the payload");
		break;
	case INGEST_UNAVAILABLE:
		log_msg(LOG_LEVEL_WARN, http_req_id(r), "compat: %s: not stored: %s",
		    mr->route->slug, res->error);
		memory_unavailable(r, "The webhook was not stored; retry later");
		break;
	}
	json_object_put(mr->details);
	source_unref(mr->source);
	free(mr);
}

/* The seed's 202 details for a valid payload. */
static struct json_object *
memory_details(const struct memory_route *rt, struct json_object *parsed)
{
	struct json_object *d = json_object_new_object();
	const char *ts = json_get_str(parsed, "timestamp");
	char now[32];

	if (ts == NULL) {
		time_iso8601(now_wall_ms(), now, sizeof(now));
		ts = now;
	}
	json_set_str(d, "event_type", json_get_str(parsed, "event_type"));
	json_set_str(d, "source", json_get_str(parsed, "source"));
	json_set_str(d, "record_id", json_get_str(parsed, "record_id"));
	json_set_str(d, rt->table_key, json_get_str(parsed, "table_name"));
	json_set_str(d, "timestamp", ts);
	return d;
}

static void
memory_receive_cb(struct http_req *r, struct source *s, void *arg)
{
	const struct memory_route *rt = arg;
	struct json_object *body = NULL, *parsed = NULL, *detail;
	struct ingest_event ev = {0};
	struct memory_req *mr;
	const unsigned char *raw;
	const char *source;
	char msg[128], *headers = NULL, *external_id = NULL;
	size_t raw_len;
	enum verify_result vr;
	enum ingest_gate gate;
	int checked;

	if (s == NULL) {
		memory_unavailable(r, "The webhook receiver is not ready; retry shortly");
		return;
	}
	raw = http_req_body(r, &raw_len);
	/* The source's checks, as /in/{slug} applies them; the media type comes later. */
	gate = ingest_gate(mem.app->ingest, r, s, 1);
	if (gate != INGEST_GATE_PASS)
		compat_count(RECEIVER, ingest_gate_name(gate));
	switch (gate) {
	case INGEST_GATE_PASS: break;
	case INGEST_GATE_INACTIVE:
		snprintf(msg, sizeof(msg), "The %s webhook source is not active", rt->label);
		reply_error(r, 410, "source_inactive", msg);
		goto out;
	case INGEST_GATE_FORBIDDEN:
		snprintf(
		    msg, sizeof(msg), "This client address may not send %s webhooks", rt->label);
		reply_error(r, 403, "forbidden", msg);
		goto out;
	case INGEST_GATE_TOO_LARGE:
		reply_error(r, 413, "payload_too_large", "The webhook payload is too large");
		goto out;
	case INGEST_GATE_MEDIA: /* not asked for: checked after the signature, below */
		reply_415(r);
		goto out;
	case INGEST_GATE_RATE:
		reply_error(r, 429, "rate_limited", "Too many webhook requests; retry later");
		goto out;
	}

	/*
	 * The signature first: nothing unauthenticated is parsed. Checked when the switch is
	 * on, or when the source was given secrets of its own; with the switch on and no
	 * secret anywhere, refuse rather than accept unverified.
	 */
	vr = compat_verify(
	    mem.verifier, r, raw, raw_len, s, mem.verify ? mem.secret : NULL, &checked);
	if (mem.verify && !checked) {
		compat_count(RECEIVER, "misconfigured");
		reply_error(r, 500, "server_misconfigured",
		    "VERIFY_WEBHOOK_SIGNATURES is on but no WEBHOOK_SECRET is set");
		goto out;
	}
	if (checked && vr != VERIFY_OK) {
		compat_count(RECEIVER, "invalid_signature");
		reply_error(r, 401, "invalid_signature", "Webhook signature verification failed");
		goto out;
	}
	if (!compat_is_json(http_req_header(r, "Content-Type"))) {
		compat_count(RECEIVER, "unsupported_media_type");
		reply_415(r);
		goto out;
	}
	if ((body = parse_or_422(r, raw, raw_len)) == NULL)
		goto out;
	if ((parsed = memory_validate(body, &detail)) == NULL) {
		compat_count(RECEIVER, "invalid_payload");
		reply_422(r, detail);
		goto out;
	}
	source = json_get_str(parsed, "source");
	if (strcmp(source, rt->slug) != 0) {
		struct json_object *o = json_object_new_object();

		compat_count(RECEIVER, "invalid_source");
		snprintf(msg, sizeof(msg), "Invalid source type for %s webhook", rt->label);
		json_set_str(o, "error", "invalid_source");
		json_set_str(o, "message", msg);
		json_set_str(o, "expected", rt->slug);
		json_set_str(o, "received", source);
		http_reply_json(r, 400, o);
		goto out;
	}

	/* Dedupe only when the sender names its deliveries (or the source says how). */
	if (s->dedupe.kind != SOURCE_KEY_NONE) {
		external_id = source_key_value(&s->dedupe, header_cb, r, body);
	} else {
		const char *id = http_req_header(r, "X-Webhook-ID");

		if (id != NULL && *id != '\0')
			external_id = xstrdup(id);
	}
	headers = compat_stored_headers(r);
	mr = xmalloc(sizeof(*mr));
	mr->req = r;
	mr->source = s;
	mr->route = rt;
	mr->details = memory_details(rt, parsed);
	ev.source = s;
	ev.event_type = json_get_str(parsed, "event_type");
	ev.external_id = external_id;
	ev.payload = (const char *)raw;
	ev.payload_len = raw_len;
	ev.raw = raw;
	ev.raw_len = raw_len;
	ev.headers = headers;
	ingest_store(mem.app->ingest, &ev, memory_stored_cb, mr);
	s = NULL; /* the pending request holds the reference now */
out:
	source_unref(s);
	json_object_put(body);
	json_object_put(parsed);
	free(headers);
	free(external_id);
}

/* POST /api/v1/webhooks/supabase and /notion. */
static void
memory_receive(struct http_req *r, void *arg)
{
	const struct memory_route *rt = arg;

	compat_source_get(mem.app, rt->slug, r, memory_receive_cb, arg);
}

/* POST /api/v1/webhooks/test: validate a payload without storing it. */
static void
memory_test(struct http_req *r, void *arg)
{
	struct json_object *body, *parsed, *detail, *o;
	const unsigned char *raw;
	const char *source;
	size_t raw_len;

	if (!compat_is_json(http_req_header(r, "Content-Type"))) {
		reply_415(r);
		return;
	}
	raw = http_req_body(r, &raw_len);
	if ((body = parse_or_422(r, raw, raw_len)) == NULL)
		return;
	parsed = memory_validate(body, &detail);
	json_object_put(body);
	if (parsed == NULL) {
		reply_422(r, detail);
		return;
	}
	source = json_get_str(parsed, "source");
	o = json_object_new_object();
	json_set_str(o, "status", "valid");
	json_set_str(o, "message", "Webhook payload is valid");
	json_set_obj(o, "parsed_payload", parsed);
	json_set_bool(o, "would_be_processed",
	    strcmp(source, route_supabase.slug) == 0 || strcmp(source, route_notion.slug) == 0);
	http_reply_json(r, 200, o);
}

static double
round3(double v)
{
	return round(v * 1000) / 1000;
}

static void
stats_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	struct json_object *o, *by_type, *by_source;
	const PGresult *pr;
	int64_t processed, failed;
	const char *t;
	char err[64];

	if (res->status != DB_OK) {
		log_msg(LOG_LEVEL_WARN, http_req_id(r), "compat: stats: %s", res->error);
		memory_unavailable(r, "The statistics could not be read; retry later");
		return;
	}
	pr = res->res[0];
	processed = atoll(db_value(pr, 0, 0));
	failed = atoll(db_value(pr, 0, 1));
	t = db_value(pr, 0, 4);
	by_type = t ? json_parse(t, strlen(t), err, sizeof(err)) : NULL;
	t = db_value(pr, 0, 5);
	by_source = t ? json_parse(t, strlen(t), err, sizeof(err)) : NULL;
	o = json_object_new_object();
	json_set_int(o, "total_processed", processed);
	json_set_int(o, "total_failed", failed);
	json_set_int(o, "total_retries", atoll(db_value(pr, 0, 2)));
	json_set_double(o, "success_rate",
	    processed + failed > 0 ? round3((double)processed / (double)(processed + failed)) : 0);
	json_set_double(
	    o, "average_processing_time_seconds", round3(atof(db_value(pr, 0, 3)) / 1000));
	json_set_obj(o, "events_by_type", by_type ? by_type : json_object_new_object());
	json_set_obj(o, "events_by_source", by_source ? by_source : json_object_new_object());
	http_reply_json(r, 200, o);
}

/* GET /api/v1/webhooks/stats (admin). */
static void
memory_stats(struct http_req *r, void *arg)
{
	db_query(mem.app->db, stats_sql, NULL, stats_cb, r);
}

void
compat_memory_register(struct app *app)
{
	struct json_object *cfg = json_object_new_object();
	char err[128];

	mem.app = app;
	json_set_str(cfg, "scheme", "hookd");
	mem.verifier = verifier_compile(cfg, err, sizeof(err));
	json_object_put(cfg);
	if (mem.verifier == NULL) {
		log_error("compat: cannot compile the hookd verifier: %s", err);
		abort();
	}
	mem.verify = compat_env_true("VERIFY_WEBHOOK_SIGNATURES");
	mem.secret = compat_env("WEBHOOK_SECRET");
	if (mem.verify && mem.secret == NULL)
		log_error("compat: VERIFY_WEBHOOK_SIGNATURES is on but WEBHOOK_SECRET is not set: "
		          "/api/v1/webhooks/supabase and /notion answer 500 until the sources get "
		          "secrets");
	else if (mem.verify)
		log_info("compat: /api/v1/webhooks/supabase and /notion require "
		         "X-Webhook-Signature");
	compat_sources_ensure(app, memory_sources, (int)ARRAY_SIZE(memory_sources));
	/* Literal routes, registered before the subscriptions' /api/v1/webhooks/{id}. */
	http_server_route(app->http, "POST", "/api/v1/webhooks/supabase", 0, memory_receive,
	    (void *)&route_supabase);
	http_server_route(
	    app->http, "POST", "/api/v1/webhooks/notion", 0, memory_receive, (void *)&route_notion);
	http_server_route(app->http, "POST", "/api/v1/webhooks/test", 0, memory_test, NULL);
	http_server_route(
	    app->http, "GET", "/api/v1/webhooks/stats", HTTP_ADMIN, memory_stats, NULL);
}
