/* SPDX-License-Identifier: ISC */
/* Seed 000, the Customer Webhooks API: /api/webhooks/customer onto a synchronous SQL handler. */
#include "config.h"

#include <ctype.h>
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

#define SLUG                    "customer"
#define RECEIVER                "seed000"
#define SIGNATURE_HEADER        "x-supabase-signature"
#define RETRY_AFTER_UNAVAILABLE "2"

static const struct compat_source_spec omni_sources[] = {{
    .slug = SLUG,
    .name = "Customer Webhooks API (seed 000)",
    .description = "POST /api/webhooks/customer: scrape-job notifications and Supabase "
                   "database changes, answered by omniops.handle_customer_webhook "
                   "(contrib/examples/omniops.sql).",
    .verifier = "{\"scheme\":\"supabase\"}",
    .handler = "{\"type\":\"sql_sync\",\"function\":\"omniops.handle_customer_webhook\"}",
}};

/*
 * The seed's webhookMetrics over the customer source's stored events and handler logs.
 * Events are "processed" when the handler answered below 400, "failed" when it failed
 * or answered 400 or more.
 */
static const char metrics_sql[] =
    "WITH src AS (SELECT id FROM hookd.sources WHERE slug = $1),"
    " e AS (SELECT e.event_type, e.status,"
    "   CASE WHEN jsonb_typeof(e.result->'status') = 'number'"
    "        THEN (e.result->>'status')::numeric END AS st,"
    "   e.result->'body'->>'error' AS err"
    "  FROM hookd.events e WHERE e.source_id IN (SELECT id FROM src))"
    " SELECT (SELECT count(*) FROM e),"
    "  (SELECT count(*) FROM e WHERE status = 'processed' AND coalesce(st, 200) < 400),"
    "  (SELECT count(*) FROM e WHERE status = 'failed' OR (status = 'processed' AND st >= 400)),"
    "  (SELECT coalesce(avg(l.duration_ms), 0) FROM hookd.event_logs l"
    "    WHERE l.source_id IN (SELECT id FROM src) AND l.action = 'sql_sync'),"
    "  (SELECT coalesce(json_object_agg(t, n ORDER BY t), '{}')"
    "    FROM (SELECT coalesce(event_type, 'unknown') AS t, count(*) AS n"
    "      FROM e GROUP BY 1) x)::text,"
    "  (SELECT count(*) FROM e WHERE st = 404),"
    "  (SELECT count(*) FROM e WHERE err = 'Failed to queue job'),"
    "  (SELECT count(*) FROM e WHERE st = 400 AND err = 'Unknown webhook format')";

/* Read at start-up; the counters are this process's, since it started. */
static struct {
	const char *secret;        /* SUPABASE_WEBHOOK_SECRET */
	struct verifier *verifier; /* the seed's scheme: hex HMAC-SHA256 of the body */
	int64_t refused_signature; /* missing or invalid signature, never stored */
	int64_t refused_format;    /* not JSON, or neither payload shape, never stored */
} omni;

/* A POST waiting for its commit and handler answer. */
struct omni_req {
	struct http_req *req;
	struct source *source;
};

/* The seed's error shape: {"error": ..., "details": ...}. */
static void
omni_error(struct http_req *r, int status, const char *error, const char *details)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "error", error);
	json_set_str(o, "details", details);
	http_reply_json(r, status, o);
}

static void
omni_unsupported(struct http_req *r)
{
	omni_error(r, 415, "Unsupported media type", "Content-Type must be application/json");
}

static void
omni_unavailable(struct http_req *r, const char *details)
{
	compat_count(RECEIVER, "unavailable");
	http_reply_header(r, "Retry-After", RETRY_AFTER_UNAVAILABLE);
	omni_error(r, 503, "Service unavailable", details);
}

/* GET /api/webhooks/customer: the seed's health check. */
static void
omni_health(struct http_req *r, void *arg)
{
	struct json_object *o = json_object_new_object();
	char ts[32];

	time_iso8601(now_wall_ms(), ts, sizeof(ts));
	json_set_str(o, "status", "ok");
	json_set_str(o, "timestamp", ts);
	json_set_str(o, "endpoint", "customer-webhook");
	http_reply_json(r, 200, o);
}

/*
 * The event type: the notification's "event", or for a database change the table in
 * the singular and the operation ("customer_config_insert"), as the seed's byType.
 */
static char *
omni_event_type(struct json_object *body)
{
	struct json_object *v;
	const char *type, *table;
	size_t n;
	char *out;

	if (json_object_object_get_ex(body, "event", &v) && compat_truthy(v))
		return json_scalar_text(v);
	type = json_get_str(body, "type");
	table = json_get_str(body, "table");
	if (type == NULL || table == NULL)
		return NULL;
	n = strlen(table);
	if (n > 1 && table[n - 1] == 's')
		n--;
	out = xasprintf("%.*s_%s", (int)n, table, type);
	for (char *c = out + n; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return out;
}

/* The seed's two payload shapes: {"event": ...} or {"type": ..., "table": ...}. */
static int
omni_known_shape(struct json_object *body)
{
	struct json_object *ev, *type, *table;

	if (!json_object_is_type(body, json_type_object))
		return 0;
	if (json_object_object_get_ex(body, "event", &ev) && compat_truthy(ev))
		return 1;
	return json_object_object_get_ex(body, "type", &type) && compat_truthy(type) &&
	       json_object_object_get_ex(body, "table", &table) && compat_truthy(table);
}

/* The handler's {"status": n, "body": ...} is the reply; its failure the seed's 500. */
static void
omni_reply_answer(struct http_req *r, struct json_object *answer, const char *id)
{
	struct json_object *st, *body = NULL;
	int64_t status;

	if (answer == NULL) {
		struct json_object *o = json_object_new_object();

		json_set_str(o, "message", "Webhook processed");
		json_set_str(o, "id", id);
		http_reply_json(r, 200, o);
		return;
	}
	if (!json_object_is_type(answer, json_type_object) ||
	    !json_object_object_get_ex(answer, "status", &st) ||
	    !json_object_is_type(st, json_type_int) || (status = json_object_get_int64(st)) < 200 ||
	    status > 599) {
		http_reply_json(r, 200, json_object_get(answer));
		return;
	}
	json_object_object_get_ex(answer, "body", &body);
	if (status == 500 && body != NULL) {
		const char *err = json_get_str(body, "error");

		/* hookd.ingest_sync's answer when the handler raised (or does not exist). */
		if (err != NULL && strcmp(err, "handler_failed") == 0) {
			const char *msg = json_get_str(body, "message");

			log_msg(LOG_LEVEL_WARN, http_req_id(r),
			    "compat: " SLUG ": event %s: the handler failed: %s%s", id,
			    msg ? msg : "(no message)",
			    msg && strstr(msg, "does not exist")
			        ? " (is contrib/examples/omniops.sql loaded?)"
			        : "");
			compat_count(RECEIVER, "handler_failed");
			omni_error(r, 500, "Internal server error", "Failed to process webhook");
			return;
		}
	}
	compat_count(RECEIVER, status < 400 ? "processed" : "refused_by_handler");
	http_reply_json(r, (int)status, json_object_get(body));
}

static void
omni_stored_cb(const struct ingest_result *res, void *arg)
{
	struct omni_req *oreq = arg;
	struct http_req *r = oreq->req;
	struct json_object *o;

	switch (res->status) {
	case INGEST_STORED:
	case INGEST_DUPLICATE:
		if (oreq->source->handler.type == HANDLER_SQL_SYNC) {
			omni_reply_answer(r, res->answer, res->id);
			break;
		}
		/* The source was given a handler that runs later: stored, not yet processed. */
		compat_count(RECEIVER, "accepted");
		o = json_object_new_object();
		json_set_str(o, "message", "Webhook received");
		json_set_str(o, "id", res->id);
		http_reply_json(r, 202, o);
		break;
	case INGEST_REJECTED:
		compat_count(RECEIVER, "rejected");
		omni_error(r, 400, "Invalid JSON", "The database refused the payload");
		break;
	case INGEST_UNAVAILABLE:
		log_msg(
		    LOG_LEVEL_WARN, http_req_id(r), "compat: " SLUG ": not stored: %s", res->error);
		omni_unavailable(r, "The webhook was not stored; retry later");
		break;
	}
	source_unref(oreq->source);
	free(oreq);
}

static void
omni_receive_cb(struct http_req *r, struct source *s, void *arg)
{
	struct app *app = arg;
	struct json_object *body = NULL;
	struct ingest_event ev = {0};
	struct omni_req *oreq;
	const unsigned char *raw;
	char why[200], *event_type = NULL, *headers = NULL;
	size_t raw_len;
	enum verify_result vr;
	enum ingest_gate gate;
	int checked;

	if (s == NULL) {
		omni_unavailable(r, "The webhook receiver is not ready; retry shortly");
		return;
	}
	raw = http_req_body(r, &raw_len);
	/* The source's checks, as /in/{slug} applies them; the media type comes later. */
	gate = ingest_gate(app->ingest, r, s, 1);
	if (gate != INGEST_GATE_PASS)
		compat_count(RECEIVER, ingest_gate_name(gate));
	switch (gate) {
	case INGEST_GATE_PASS: break;
	case INGEST_GATE_INACTIVE:
		omni_error(r, 410, "Webhook endpoint disabled",
		    "The customer webhook source is not active");
		goto out;
	case INGEST_GATE_FORBIDDEN:
		omni_error(r, 403, "Forbidden", "This client address may not send webhooks here");
		goto out;
	case INGEST_GATE_TOO_LARGE:
		snprintf(why, sizeof(why), "The body is %zu bytes; the limit is %lld", raw_len,
		    (long long)s->max_body);
		omni_error(r, 413, "Payload too large", why);
		goto out;
	case INGEST_GATE_MEDIA: /* not asked for: checked after the signature, below */
		omni_unsupported(r);
		goto out;
	case INGEST_GATE_RATE:
		omni_error(r, 429, "Too many requests", "Rate limit exceeded; retry later");
		goto out;
	}

	/* Over the raw bytes, before anything trusts them. */
	vr = compat_verify(omni.verifier, r, raw, raw_len, s, omni.secret, &checked);
	if (checked && vr != VERIFY_OK) {
		const char *sig = http_req_header(r, SIGNATURE_HEADER);

		omni.refused_signature++;
		if (sig == NULL || *sig == '\0') {
			compat_count(RECEIVER, "missing_signature");
			omni_error(r, 400, "Missing signature",
			    "x-supabase-signature header required when webhook secret is "
			    "configured");
		} else {
			compat_count(RECEIVER, "invalid_signature");
			omni_error(
			    r, 401, "Invalid webhook signature", "Signature verification failed");
		}
		goto out;
	}
	if (!compat_is_json(http_req_header(r, "Content-Type"))) {
		compat_count(RECEIVER, "unsupported_media_type");
		omni_unsupported(r);
		goto out;
	}
	body = json_parse((const char *)raw, raw_len, why, sizeof(why));
	if (body == NULL) {
		char details[256];

		omni.refused_format++;
		compat_count(RECEIVER, "invalid_json");
		snprintf(details, sizeof(details), "The body is not valid JSON: %s", why);
		omni_error(r, 400, "Invalid JSON", details);
		goto out;
	}
	if (!omni_known_shape(body)) {
		omni.refused_format++;
		compat_count(RECEIVER, "unknown_format");
		omni_error(
		    r, 400, "Unknown webhook format", "Payload does not match expected schemas");
		goto out;
	}

	event_type = omni_event_type(body);
	headers = compat_stored_headers(r);
	oreq = xmalloc(sizeof(*oreq));
	oreq->req = r;
	oreq->source = s;
	ev.source = s;
	ev.event_type = event_type;
	/* Supabase sends no delivery id: repeats are the handler's business. */
	ev.external_id = NULL;
	ev.payload = (const char *)raw;
	ev.payload_len = raw_len;
	ev.raw = raw;
	ev.raw_len = raw_len;
	ev.headers = headers;
	ingest_store(app->ingest, &ev, omni_stored_cb, oreq);
	s = NULL; /* the pending request holds the reference now */
out:
	source_unref(s);
	json_object_put(body);
	free(event_type);
	free(headers);
}

/* POST /api/webhooks/customer. */
static void
omni_receive(struct http_req *r, void *arg)
{
	compat_source_get(arg, SLUG, r, omni_receive_cb, arg);
}

static double
round_to(double v, double scale)
{
	return round(v * scale) / scale;
}

static void
metrics_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	struct json_object *o, *m, *errors, *by_type;
	const PGresult *pr;
	int64_t stored, processed, failed, total;
	const char *text;
	char err[64];

	if (res->status != DB_OK) {
		log_msg(
		    LOG_LEVEL_WARN, http_req_id(r), "compat: " SLUG ": metrics: %s", res->error);
		http_reply_header(r, "Retry-After", RETRY_AFTER_UNAVAILABLE);
		omni_error(
		    r, 503, "Service unavailable", "The metrics could not be read; retry later");
		return;
	}
	pr = res->res[0];
	stored = atoll(db_value(pr, 0, 0));
	processed = atoll(db_value(pr, 0, 1));
	failed = atoll(db_value(pr, 0, 2)) + omni.refused_signature + omni.refused_format;
	total = stored + omni.refused_signature + omni.refused_format;
	text = db_value(pr, 0, 4);
	by_type = text ? json_parse(text, strlen(text), err, sizeof(err)) : NULL;

	m = json_object_new_object();
	json_set_int(m, "totalReceived", total);
	json_set_int(m, "processed", processed);
	json_set_int(m, "failed", failed);
	json_set_double(
	    m, "successRate", total > 0 ? round_to((double)processed / (double)total, 1e4) : 0);
	json_set_double(m, "avgProcessingTime", round_to(atof(db_value(pr, 0, 3)), 1e3));
	json_set_obj(m, "byType", by_type ? by_type : json_object_new_object());
	errors = json_object_new_object();
	json_set_int(errors, "signature_verification", omni.refused_signature);
	json_set_int(errors, "job_not_found", atoll(db_value(pr, 0, 5)));
	json_set_int(errors, "queue_system_error", atoll(db_value(pr, 0, 6)));
	json_set_int(errors, "unknown_format", omni.refused_format + atoll(db_value(pr, 0, 7)));
	json_set_obj(m, "errors", errors);
	o = json_object_new_object();
	json_set_obj(o, "webhookMetrics", m);
	http_reply_json(r, 200, o);
}

/* GET /api/webhooks/customer/metrics (admin): the seed's webhookMetrics. */
static void
omni_metrics(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct db_params dp;

	db_params_init(&dp);
	db_param_text(&dp, SLUG);
	db_query(app->db, metrics_sql, &dp, metrics_cb, r);
}

void
compat_omniops_register(struct app *app)
{
	struct json_object *cfg = json_object_new_object();
	char err[128];

	json_set_str(cfg, "scheme", "supabase");
	omni.verifier = verifier_compile(cfg, err, sizeof(err));
	json_object_put(cfg);
	if (omni.verifier == NULL) {
		log_error("compat: " SLUG ": cannot compile the supabase verifier: %s", err);
		abort();
	}
	omni.secret = compat_env("SUPABASE_WEBHOOK_SECRET");
	if (omni.secret != NULL)
		log_info("compat: POST /api/webhooks/customer requires x-supabase-signature "
		         "(SUPABASE_WEBHOOK_SECRET is set)");
	compat_sources_ensure(app, omni_sources, (int)ARRAY_SIZE(omni_sources));
	http_server_route(app->http, "GET", "/api/webhooks/customer", 0, omni_health, app);
	http_server_route(app->http, "POST", "/api/webhooks/customer", 0, omni_receive, app);
	http_server_route(
	    app->http, "GET", "/api/webhooks/customer/metrics", HTTP_ADMIN, omni_metrics, app);
}
