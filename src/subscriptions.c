/* SPDX-License-Identifier: ISC */
/* Outbound subscriptions: the cache the delivery worker reads, kept in step with the table. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/json.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/netguard.h"
#include "hookd/seal.h"
#include "hookd/sign.h"
#include "hookd/subscription_input.h"
#include "hookd/subscriptions.h"

struct subscriptions {
	struct app *app;
	struct subscription **by_id; /* sorted by id */
	int n;
	int loaded;
	struct db_req *loading;
	int again; /* a reload was asked for while one ran */
};

/*
 * Every subscription, enabled or not (the worker must know a disabled one to stop
 * sending to it). Secrets are unsealed at load time; the cache never holds sealed text.
 */
static const char load_sql[] =
    "SELECT s.id, s.name, s.url,"
    " (SELECT coalesce(json_agg(json_build_object('id', x->>'id', 'sealed', x->>'sealed',"
    "   'expires_at', coalesce(extract(epoch FROM (x->>'expires_at')::timestamptz)::bigint, 0))"
    "   ORDER BY o), '[]')"
    "   FROM jsonb_array_elements(s.secrets) WITH ORDINALITY AS e(x, o))::text,"
    " s.enabled, s.max_retries, s.retry_backoff_seconds, s.retry_multiplier,"
    " s.retry_max_delay_seconds, s.retry_jitter, array_to_json(s.retry_schedule)::text,"
    " s.timeout_seconds, s.headers::text, s.signature_headers::text, s.payload_format,"
    " array_to_json(s.ip_allowlist::text[])::text, s.api"
    " FROM hookd.subscriptions s ORDER BY s.id";

enum col {
	COL_ID,
	COL_NAME,
	COL_URL,
	COL_SECRETS,
	COL_ENABLED,
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
};

/* --- one subscription ---------------------------------------------------------------- */

static void
subscription_free(struct subscription *s)
{
	for (int i = 0; i < s->nsecrets; i++) {
		free(s->secrets[i].id);
		seal_free(s->secrets[i].value);
	}
	free(s->secrets);
	for (int i = 0; i < s->nheaders; i++) {
		free((char *)s->headers[i].name);
		free((char *)s->headers[i].value);
	}
	free(s->headers);
	target_url_free(&s->target);
	free(s->schedule);
	free(s->pin);
	free(s->name);
	free(s->url);
	free(s->api);
	free(s);
}

void
subscription_unref(struct subscription *s)
{
	if (s != NULL && --s->refs == 0)
		subscription_free(s);
}

int
subscription_live_secrets(const struct subscription *s, int64_t now, const char **out, int max)
{
	int n = 0;

	for (int i = 0; i < s->nsecrets && n < max; i++) {
		if (s->secrets[i].expires_at == 0 || s->secrets[i].expires_at > now)
			out[n++] = s->secrets[i].value;
	}
	return n;
}

static struct json_object *
parse_text(const char *text, enum json_type type)
{
	struct json_object *o;
	char err[64];

	if (text == NULL)
		return NULL;
	o = json_parse(text, strlen(text), err, sizeof(err));
	if (o != NULL && !json_object_is_type(o, type)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int
parse_secrets(struct subscriptions *ss, struct subscription *s, const char *text)
{
	struct json_object *arr = parse_text(text, json_type_array);
	int n;

	if (arr == NULL)
		return -1;
	n = (int)json_object_array_length(arr);
	s->secrets = xcalloc((size_t)n + 1, sizeof(*s->secrets));
	for (int i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *id = json_get_str(e, "id"), *sealed = json_get_str(e, "sealed");
		int64_t exp = 0;
		char *plain;

		if (json_get_int(e, "expires_at", &exp) != 0)
			exp = 0;
		plain = sealed ? seal_decrypt(ss->app->master_key, sealed) : NULL;
		if (plain == NULL) {
			log_error("subscriptions: cannot unseal secret %s of subscription %s (is "
			          "this the master key it was sealed with?)",
			    id ? id : "?", s->id);
			continue;
		}
		s->secrets[s->nsecrets].id = xstrdup(id ? id : "");
		s->secrets[s->nsecrets].value = plain;
		s->secrets[s->nsecrets].expires_at = exp;
		s->nsecrets++;
	}
	json_object_put(arr);
	return 0;
}

static int
parse_schedule(struct subscription *s, const char *text)
{
	struct json_object *arr;
	int n;

	if (text == NULL)
		return 0;
	arr = parse_text(text, json_type_array);
	if (arr == NULL)
		return -1;
	n = (int)json_object_array_length(arr);
	s->schedule = xcalloc((size_t)n + 1, sizeof(double));
	for (int i = 0; i < n; i++)
		s->schedule[i] = json_object_get_double(json_object_array_get_idx(arr, i));
	json_object_put(arr);
	s->retry.schedule = n > 0 ? s->schedule : NULL;
	s->retry.nschedule = n;
	return 0;
}

static int
parse_headers(struct subscription *s, const char *text)
{
	struct json_object *o = parse_text(text, json_type_object);
	int n;

	if (o == NULL)
		return -1;
	n = json_object_object_length(o);
	s->headers = xcalloc((size_t)n + 1, sizeof(*s->headers));
	json_object_object_foreach(o, key, val)
	{
		if (!json_object_is_type(val, json_type_string))
			continue;
		s->headers[s->nheaders].name = xstrdup(key);
		s->headers[s->nheaders].value = xstrdup(json_object_get_string(val));
		s->nheaders++;
	}
	json_object_put(o);
	return 0;
}

static int
parse_pin(struct subscription *s, const char *text)
{
	struct json_object *arr;
	int n;

	if (text == NULL)
		return 0;
	arr = parse_text(text, json_type_array);
	if (arr == NULL)
		return -1;
	n = (int)json_object_array_length(arr);
	s->pin = xcalloc((size_t)n + 1, sizeof(*s->pin));
	for (int i = 0; i < n; i++) {
		const char *c = json_object_get_string(json_object_array_get_idx(arr, i));

		if (c == NULL || cidr_parse(c, &s->pin[s->npin]) != 0) {
			json_object_put(arr);
			return -1;
		}
		s->npin++;
	}
	json_object_put(arr);
	/* An empty pin would allow everything: refuse it rather than widen it. */
	return n > 0 ? 0 : -1;
}

/* Build one subscription from a row of load_sql; NULL (logged) when the row is unusable. */
static struct subscription *
subscription_from_row(struct subscriptions *ss, const PGresult *res, int row)
{
	struct subscription *s = xcalloc(1, sizeof(*s));
	const char *v;
	char why[200];

	s->refs = 1;
	snprintf(s->id, sizeof(s->id), "%s", db_value(res, row, COL_ID));
	s->name = xstrdup(db_value(res, row, COL_NAME));
	s->url = xstrdup(db_value(res, row, COL_URL));
	s->api = xstrdup(db_value(res, row, COL_API));
	if (target_url_parse(s->url, &s->target, why, sizeof(why)) != 0)
		goto bad;
	if (parse_secrets(ss, s, db_value(res, row, COL_SECRETS)) != 0) {
		snprintf(why, sizeof(why), "secrets are not a JSON array");
		goto bad;
	}
	s->enabled = strcmp(db_value(res, row, COL_ENABLED), "t") == 0;
	s->retry.max_retries = atoi(db_value(res, row, COL_MAX_RETRIES));
	s->retry.initial_s = atof(db_value(res, row, COL_BACKOFF));
	s->retry.multiplier = atof(db_value(res, row, COL_MULTIPLIER));
	s->retry.max_delay_s = atof(db_value(res, row, COL_MAX_DELAY));
	s->retry.jitter = atof(db_value(res, row, COL_JITTER));
	if (parse_schedule(s, db_value(res, row, COL_SCHEDULE)) != 0) {
		snprintf(why, sizeof(why), "retry_schedule");
		goto bad;
	}
	s->timeout_ms = atoi(db_value(res, row, COL_TIMEOUT)) * 1000;
	if (parse_headers(s, db_value(res, row, COL_HEADERS)) != 0) {
		snprintf(why, sizeof(why), "headers are not a JSON object");
		goto bad;
	}
	if (sign_headers_parse(
	        db_value(res, row, COL_SIGNATURE), &s->sign_flags, why, sizeof(why)) != 0)
		goto bad;
	s->sign_flags |= SIGN_STANDARD;
	v = db_value(res, row, COL_FORMAT);
	if (subscription_payload_format_parse(v, &s->format) != 0) {
		snprintf(why, sizeof(why), "unknown payload_format \"%.32s\"", v ? v : "");
		goto bad;
	}
	if (parse_pin(s, db_value(res, row, COL_ALLOW)) != 0) {
		snprintf(why, sizeof(why), "ip_allowlist");
		goto bad;
	}
	return s;
bad:
	log_error("subscriptions: subscription %s is unusable and ignored: %s", s->id, why);
	subscription_free(s);
	return NULL;
}

/* --- the cache ---------------------------------------------------------------------- */

static struct subscription *
find_id(struct subscription **arr, int n, const char *id)
{
	int lo = 0, hi = n - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = strcmp(id, arr[mid]->id);

		if (c == 0)
			return arr[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(
	    (*(struct subscription *const *)a)->id, (*(struct subscription *const *)b)->id);
}

static void
loaded_cb(const struct db_result *r, void *arg)
{
	struct subscriptions *ss = arg;

	ss->loading = NULL;
	if (r->status != DB_OK) {
		db_log_failure(r, "subscriptions: cannot load");
	} else {
		int rows = db_rows(r->res[0]), n = 0, enabled = 0;
		struct subscription **arr = xcalloc((size_t)rows + 1, sizeof(*arr));

		for (int i = 0; i < rows; i++) {
			struct subscription *s = subscription_from_row(ss, r->res[0], i);

			if (s == NULL)
				continue;
			enabled += s->enabled;
			arr[n++] = s;
		}
		/* The database orders by uuid, which is not strcmp order in every collation. */
		qsort(arr, (size_t)n, sizeof(*arr), cmp_id);
		for (int i = 0; i < ss->n; i++)
			subscription_unref(ss->by_id[i]);
		free(ss->by_id);
		ss->by_id = arr;
		ss->n = n;
		ss->loaded = 1;
		/* Config changes are rare: a line per reload shows every process caught up. */
		log_info("subscriptions: %d loaded, %d enabled", n, enabled);
	}
	if (ss->again) {
		ss->again = 0;
		subscriptions_refresh(ss);
	}
}

void
subscriptions_refresh(struct subscriptions *ss)
{
	if (ss == NULL)
		return;
	if (ss->loading != NULL) {
		ss->again = 1;
		return;
	}
	ss->loading = db_query(ss->app->db, load_sql, NULL, loaded_cb, ss);
}

/* Other resources' changes ("sources", "keys") leave subscriptions alone. */
static void
notify_cb(const char *channel, const char *payload, void *arg)
{
	if (payload != NULL && (strcmp(payload, "sources") == 0 || strcmp(payload, "keys") == 0))
		return;
	subscriptions_refresh(arg);
}

static void
reconnect_cb(void *arg)
{
	subscriptions_refresh(arg);
}

struct subscriptions *
subscriptions_new(struct app *app)
{
	struct subscriptions *ss = xcalloc(1, sizeof(*ss));

	ss->app = app;
	listen_subscribe(app->listen, "hookd_config", notify_cb, ss);
	listen_on_connect(app->listen, reconnect_cb, ss);
	subscriptions_refresh(ss);
	return ss;
}

void
subscriptions_free(struct subscriptions *ss)
{
	if (ss == NULL)
		return;
	if (ss->loading != NULL)
		db_cancel(ss->loading);
	for (int i = 0; i < ss->n; i++)
		subscription_unref(ss->by_id[i]);
	free(ss->by_id);
	free(ss);
}

int
subscriptions_loaded(const struct subscriptions *ss)
{
	return ss != NULL && ss->loaded;
}

struct subscription *
subscriptions_get(struct subscriptions *ss, const char *id)
{
	struct subscription *s;

	if (ss == NULL || id == NULL)
		return NULL;
	s = find_id(ss->by_id, ss->n, id);
	if (s != NULL)
		s->refs++;
	return s;
}
