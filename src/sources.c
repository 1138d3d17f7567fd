/* SPDX-License-Identifier: ISC */
/* Inbound sources: the in-memory cache every receiver reads, kept in step with hookd.sources. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/json.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/netguard.h"
#include "hookd/seal.h"
#include "hookd/sources.h"
#include "hookd/verify.h"

struct sources {
	struct app *app;
	struct source **by_slug; /* sorted by slug */
	int n;
	int loaded;
	struct db_req *loading;
	int again; /* a reload was asked for while one ran */
};

/* Secrets are unsealed at load time; the cache never holds sealed text. */
static const char load_sql[] =
    "SELECT s.id, s.slug, s.name, s.verifier::text,"
    " (SELECT coalesce(json_agg(json_build_object('id', x->>'id', 'sealed', x->>'sealed',"
    "   'expires_at', coalesce(extract(epoch FROM (x->>'expires_at')::timestamptz)::bigint, 0))),"
    "   '[]') FROM jsonb_array_elements(s.secrets) x)::text,"
    " s.timestamp_tolerance, array_to_json(s.allowed_event_types)::text, s.max_body,"
    " s.rate_limit_per_sec, s.rate_limit_burst, array_to_json(s.ip_allowlist::text[])::text,"
    " s.dedupe_key, s.event_type_key, s.handler::text, s.review_required, s.active"
    " FROM hookd.sources s ORDER BY s.slug";

/* --- sources ------------------------------------------------------------------------ */

static void
source_free(struct source *s)
{
	for (int i = 0; i < s->nsecrets; i++) {
		free(s->secrets[i].id);
		seal_free(s->secrets[i].value);
	}
	free(s->secrets);
	for (int i = 0; i < s->nallowed; i++)
		free(s->allowed_types[i]);
	free(s->allowed_types);
	free(s->allow);
	verifier_free(s->verifier);
	source_key_clear(&s->dedupe);
	source_key_clear(&s->event_type_key);
	source_handler_clear(&s->handler);
	free(s->slug);
	free(s->name);
	free(s);
}

void
source_unref(struct source *s)
{
	if (s != NULL && --s->refs == 0)
		source_free(s);
}

int
source_live_secrets(const struct source *s, int64_t now, const char **out, int max)
{
	int n = 0;

	for (int i = 0; i < s->nsecrets && n < max; i++) {
		if (s->secrets[i].expires_at == 0 || s->secrets[i].expires_at > now)
			out[n++] = s->secrets[i].value;
	}
	return n;
}

int
source_rate_take(struct source *s, uint64_t now_ms, int *retry_after)
{
	double burst = s->rate_burst > 0 ? s->rate_burst : ceil(s->rate_per_sec);

	if (s->rate_per_sec <= 0)
		return 1;
	if (s->refill_ms == 0) {
		s->tokens = burst;
	} else if (now_ms > s->refill_ms) {
		s->tokens += (double)(now_ms - s->refill_ms) / 1000.0 * s->rate_per_sec;
		if (s->tokens > burst)
			s->tokens = burst;
	}
	s->refill_ms = now_ms;
	if (s->tokens >= 1) {
		s->tokens -= 1;
		return 1;
	}
	*retry_after = (int)ceil((1 - s->tokens) / s->rate_per_sec);
	if (*retry_after < 1)
		*retry_after = 1;
	return 0;
}

int
source_type_allowed(const struct source *s, const char *type)
{
	if (s->allowed_types == NULL)
		return 1;
	if (type == NULL)
		return 0;
	for (int i = 0; i < s->nallowed; i++) {
		if (strcmp(s->allowed_types[i], type) == 0)
			return 1;
	}
	return 0;
}

static int
parse_strings(const char *text, char ***out, int *n)
{
	struct json_object *arr;
	char err[64];

	*out = NULL;
	*n = 0;
	if (text == NULL)
		return 0;
	arr = json_parse(text, strlen(text), err, sizeof(err));
	if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		return -1;
	}
	*n = (int)json_object_array_length(arr);
	*out = xcalloc((size_t)*n + 1, sizeof(char *));
	for (int i = 0; i < *n; i++)
		(*out)[i] = xstrdup(json_object_get_string(json_object_array_get_idx(arr, i)));
	json_object_put(arr);
	return 0;
}

static int
parse_secrets(struct sources *ss, struct source *s, const char *text)
{
	struct json_object *arr;
	char err[64];
	int n;

	arr = json_parse(text, strlen(text), err, sizeof(err));
	if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		return -1;
	}
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
			log_error(
			    "sources: cannot unseal secret %s of source %s (is this the master key "
			    "the secret was sealed with?)",
			    id ? id : "?", s->slug);
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

/* Build one source from a row of load_sql; NULL (logged) when the row is unusable. */
static struct source *
source_from_row(struct sources *ss, const PGresult *res, int row)
{
	struct source *s = xcalloc(1, sizeof(*s));
	struct json_object *cfg;
	const char *v;
	char err[200];

	s->refs = 1;
	snprintf(s->id, sizeof(s->id), "%s", db_value(res, row, 0));
	s->slug = xstrdup(db_value(res, row, 1));
	s->name = xstrdup(db_value(res, row, 2) ? db_value(res, row, 2) : "");
	v = db_value(res, row, 3);
	cfg = v ? json_parse(v, strlen(v), err, sizeof(err)) : NULL;
	s->verifier = cfg ? verifier_compile(cfg, err, sizeof(err)) : NULL;
	json_object_put(cfg);
	if (s->verifier == NULL)
		goto bad;
	if (parse_secrets(ss, s, db_value(res, row, 4)) != 0) {
		snprintf(err, sizeof(err), "secrets are not a JSON array");
		goto bad;
	}
	s->tolerance = atoll(db_value(res, row, 5));
	if (parse_strings(db_value(res, row, 6), &s->allowed_types, &s->nallowed) != 0) {
		snprintf(err, sizeof(err), "allowed_event_types");
		goto bad;
	}
	s->max_body = db_value(res, row, 7) ? atoll(db_value(res, row, 7)) : 0;
	s->rate_per_sec = db_value(res, row, 8) ? atof(db_value(res, row, 8)) : 0;
	s->rate_burst = db_value(res, row, 9) ? atoi(db_value(res, row, 9)) : 0;
	if ((v = db_value(res, row, 10)) != NULL) {
		char **cidrs;
		int n;

		if (parse_strings(v, &cidrs, &n) == 0) {
			s->allow = xcalloc((size_t)n + 1, sizeof(*s->allow));
			for (int i = 0; i < n; i++) {
				if (cidr_parse(cidrs[i], &s->allow[s->nallow]) == 0)
					s->nallow++;
				free(cidrs[i]);
			}
			free(cidrs);
		}
	}
	if (source_key_parse(db_value(res, row, 11), &s->dedupe, err, sizeof(err)) != 0 ||
	    source_key_parse(db_value(res, row, 12), &s->event_type_key, err, sizeof(err)) != 0)
		goto bad;
	v = db_value(res, row, 13);
	cfg = v ? json_parse(v, strlen(v), err, sizeof(err)) : NULL;
	if (source_handler_parse(cfg, &s->handler, err, sizeof(err)) != 0) {
		json_object_put(cfg);
		goto bad;
	}
	json_object_put(cfg);
	s->review_required = strcmp(db_value(res, row, 14), "t") == 0;
	s->active = strcmp(db_value(res, row, 15), "t") == 0;
	return s;
bad:
	log_error("sources: source %s is unusable and ignored: %s", s->slug, err);
	source_free(s);
	return NULL;
}

static int
cmp_slug(const void *a, const void *b)
{
	return strcmp((*(struct source *const *)a)->slug, (*(struct source *const *)b)->slug);
}

static struct source *
find_slug(struct source **arr, int n, const char *slug)
{
	int lo = 0, hi = n - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = strcmp(slug, arr[mid]->slug);

		if (c == 0)
			return arr[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void
loaded_cb(const struct db_result *r, void *arg)
{
	struct sources *ss = arg;

	ss->loading = NULL;
	if (r->status != DB_OK) {
		db_log_failure(r, "sources: cannot load");
	} else {
		int rows = db_rows(r->res[0]), n = 0;
		struct source **arr = xcalloc((size_t)rows + 1, sizeof(*arr));

		for (int i = 0; i < rows; i++) {
			struct source *s = source_from_row(ss, r->res[0], i);
			struct source *old;

			if (s == NULL)
				continue;
			/* The token bucket survives reloads. */
			old = find_slug(ss->by_slug, ss->n, s->slug);
			if (old != NULL && strcmp(old->id, s->id) == 0) {
				s->tokens = old->tokens;
				s->refill_ms = old->refill_ms;
			}
			arr[n++] = s;
		}
		qsort(arr, (size_t)n, sizeof(*arr), cmp_slug);
		for (int i = 0; i < ss->n; i++)
			source_unref(ss->by_slug[i]);
		free(ss->by_slug);
		ss->by_slug = arr;
		ss->n = n;
		if (!ss->loaded)
			log_info("sources: %d source(s) loaded", n);
		ss->loaded = 1;
	}
	if (ss->again) {
		ss->again = 0;
		sources_refresh(ss);
	}
}

void
sources_refresh(struct sources *ss)
{
	if (ss->loading != NULL) {
		ss->again = 1;
		return;
	}
	ss->loading = db_query(ss->app->db, load_sql, NULL, loaded_cb, ss);
}

static void
notify_cb(const char *channel, const char *payload, void *arg)
{
	sources_refresh(arg);
}

static void
reconnect_cb(void *arg)
{
	sources_refresh(arg);
}

struct sources *
sources_new(struct app *app)
{
	struct sources *ss = xcalloc(1, sizeof(*ss));

	ss->app = app;
	listen_subscribe(app->listen, "hookd_config", notify_cb, ss);
	listen_on_connect(app->listen, reconnect_cb, ss);
	sources_refresh(ss);
	return ss;
}

void
sources_free(struct sources *ss)
{
	if (ss == NULL)
		return;
	if (ss->loading != NULL)
		db_cancel(ss->loading);
	for (int i = 0; i < ss->n; i++)
		source_unref(ss->by_slug[i]);
	free(ss->by_slug);
	free(ss);
}

int
sources_loaded(const struct sources *ss)
{
	return ss->loaded;
}

struct source *
sources_get(struct sources *ss, const char *slug)
{
	struct source *s = find_slug(ss->by_slug, ss->n, slug);

	if (s != NULL)
		s->refs++;
	return s;
}

struct source *
sources_get_id(struct sources *ss, const char *id)
{
	for (int i = 0; i < ss->n; i++) {
		if (strcmp(ss->by_slug[i]->id, id) == 0) {
			ss->by_slug[i]->refs++;
			return ss->by_slug[i];
		}
	}
	return NULL;
}
