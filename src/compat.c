/* SPDX-License-Identifier: ISC */
/* What the seeds' routes share: their sources made on start-up, signatures, small helpers. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "hookd/app.h"
#include "hookd/compat.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/ingest_util.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/sources.h"
#include "hookd/verify.h"

#define MAX_SECRETS          16
#define MAX_STORED_HEADERS   100
#define ENSURE_RETRY_MS      1000 /* after a failure (database down, say) */
#define ENSURE_SCHEMA_MIN_MS 200  /* while the schema is being made: soon, then less often */
#define ENSURE_SCHEMA_MAX_MS 5000
#define REENSURE_MS          2000 /* a source deleted meanwhile is made again this often */
#define WAIT_POLL_MS         20   /* a parked request looks for its source this often */
#define WAIT_MAX_MS          5000 /* and gives up (503) after this long */

/*
 * INSERT ... ON CONFLICT DO NOTHING: a source that exists (perhaps changed by its
 * users) is left alone. The NOTIFY makes every hookd sharing the database reload.
 */
static const char ensure_sql[] =
    "INSERT INTO hookd.sources (id, slug, name, description, verifier, handler)"
    " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb) ON CONFLICT (slug) DO NOTHING";
static const char notify_sql[] = "SELECT pg_notify('hookd_config', 'sources')";

/* A request parked until its source shows up in the cache. */
struct waiter {
	TAILQ_ENTRY(waiter) entry;
	char *slug;
	struct http_req *req;
	compat_source_cb cb;
	void *arg;
	uint64_t deadline_ms;
};
TAILQ_HEAD(waiter_list, waiter);

/* One daemon, one app: the compat routes' shared state lives here. */
static struct {
	struct app *app;
	struct compat_source_spec *specs;
	int nspecs;
	int hooked;   /* db_on_state registered */
	int ensured;  /* the sources were inserted (or were there) at least once */
	int ensuring; /* a group is in flight */
	int retry_armed;
	int failures;        /* consecutive failed attempts (logged once per streak) */
	int schema_delay_ms; /* the next retry while hookd.sources does not exist */
	uint64_t last_ensure_ms;
	struct waiter_list waiters;
	int waiters_init;
	int poll_armed;
	struct metric *m_requests;
} cs;

static void ensure_run(void);

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	cs.retry_armed = 0;
	if (!cs.ensured && !cs.app->draining)
		ensure_run();
}

static void
retry_arm(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (cs.retry_armed || cs.app->draining)
		return;
	/* A one-shot event: libevent frees it, also when the base goes away first. */
	if (event_base_once(cs.app->base, -1, EV_TIMEOUT, retry_cb, NULL, &tv) == 0)
		cs.retry_armed = 1;
}

static void
ensure_cb(const struct db_result *r, void *arg)
{
	cs.ensuring = 0;
	cs.last_ensure_ms = now_mono_ms();
	if (r->status == DB_OK) {
		if (!cs.ensured)
			log_info(
			    "compat: the seeds' receiver sources are in place (%d)", cs.nspecs);
		cs.ensured = 1;
		cs.failures = 0;
		cs.schema_delay_ms = 0;
		sources_refresh(cs.app->sources);
		return;
	}
	/*
	 * Before the first migration hookd.sources does not exist: retry soon and quietly,
	 * then less often (with auto_migrate off it may be a while).
	 */
	if (r->status == DB_ERR_SQL &&
	    (strcmp(r->sqlstate, "42P01") == 0 || strcmp(r->sqlstate, "3F000") == 0)) {
		cs.schema_delay_ms =
		    cs.schema_delay_ms == 0 ? ENSURE_SCHEMA_MIN_MS : cs.schema_delay_ms * 2;
		if (cs.schema_delay_ms > ENSURE_SCHEMA_MAX_MS)
			cs.schema_delay_ms = ENSURE_SCHEMA_MAX_MS;
		retry_arm(cs.schema_delay_ms);
		return;
	}
	if (cs.failures++ == 0)
		log_warn("compat: cannot create the seeds' receiver sources yet: %s", r->error);
	if (!cs.ensured)
		retry_arm(ENSURE_RETRY_MS);
}

/* Insert every spec that is missing, then NOTIFY, in one transaction. */
static void
ensure_run(void)
{
	struct db_group *g;
	struct db_params dp;

	if (cs.ensuring || cs.nspecs == 0)
		return;
	cs.ensuring = 1;
	g = db_group_new(cs.app->db);
	for (int i = 0; i < cs.nspecs; i++) {
		const struct compat_source_spec *sp = &cs.specs[i];
		char id[37];

		uuid_v7(id);
		db_params_init(&dp);
		db_param_text(&dp, id);
		db_param_text(&dp, sp->slug);
		db_param_text(&dp, sp->name);
		db_param_text(&dp, sp->description);
		db_param_text(&dp, sp->verifier);
		db_param_text(&dp, sp->handler);
		db_group_sql(g, ensure_sql, &dp);
	}
	db_group_sql(g, notify_sql, NULL);
	db_group_send(g, ensure_cb, NULL);
}

static void
state_cb(int ready, void *arg)
{
	if (ready > 0 && !cs.ensured)
		ensure_run();
}

static void
init_once(struct app *app)
{
	if (cs.waiters_init)
		return;
	cs.app = app;
	TAILQ_INIT(&cs.waiters);
	cs.waiters_init = 1;
}

void
compat_sources_ensure(struct app *app, const struct compat_source_spec *specs, int n)
{
	init_once(app);
	cs.specs = xrealloc(cs.specs, (size_t)(cs.nspecs + n) * sizeof(*cs.specs));
	memcpy(cs.specs + cs.nspecs, specs, (size_t)n * sizeof(*specs));
	cs.nspecs += n;
	cs.ensured = 0;
	if (!cs.hooked) {
		db_on_state(app->db, state_cb, NULL);
		cs.hooked = 1;
	}
	if (db_ready_count(app->db) > 0)
		ensure_run();
}

/* --- requests waiting for their source --------------------------------------------- */

static void poll_arm(void);

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter_list ready;
	struct waiter *w, *next;
	uint64_t now = now_mono_ms();

	cs.poll_armed = 0;
	/* Move the settled waiters out first: their callbacks may park new requests. */
	TAILQ_INIT(&ready);
	for (w = TAILQ_FIRST(&cs.waiters); w != NULL; w = next) {
		struct source *s = sources_get(cs.app->sources, w->slug);

		next = TAILQ_NEXT(w, entry);
		if (s != NULL || cs.app->draining || now >= w->deadline_ms) {
			TAILQ_REMOVE(&cs.waiters, w, entry);
			TAILQ_INSERT_TAIL(&ready, w, entry);
		}
		source_unref(s);
	}
	/* Still missing after a while: it was deleted again, or the last attempt failed. */
	if (!TAILQ_EMPTY(&cs.waiters) && now - cs.last_ensure_ms >= REENSURE_MS)
		ensure_run();
	while ((w = TAILQ_FIRST(&ready)) != NULL) {
		struct source *s = cs.app->draining ? NULL : sources_get(cs.app->sources, w->slug);

		TAILQ_REMOVE(&ready, w, entry);
		w->cb(w->req, s, w->arg);
		free(w->slug);
		free(w);
	}
	if (!TAILQ_EMPTY(&cs.waiters))
		poll_arm();
}

static void
poll_arm(void)
{
	struct timeval tv = {0, WAIT_POLL_MS * 1000};

	if (cs.poll_armed)
		return;
	if (event_base_once(cs.app->base, -1, EV_TIMEOUT, poll_cb, NULL, &tv) == 0)
		cs.poll_armed = 1;
}

void
compat_source_get(
    struct app *app, const char *slug, struct http_req *r, compat_source_cb cb, void *arg)
{
	struct source *s;
	struct waiter *w;
	uint64_t now = now_mono_ms();

	init_once(app);
	s = sources_get(app->sources, slug);
	if (s != NULL || app->draining || db_ready_count(app->db) == 0) {
		cb(r, s, arg);
		return;
	}
	/* Not there yet (a fresh database) or deleted since: make it, then wait a little. */
	if (!cs.ensured || now - cs.last_ensure_ms >= REENSURE_MS)
		ensure_run();
	w = xcalloc(1, sizeof(*w));
	w->slug = xstrdup(slug);
	w->req = r;
	w->cb = cb;
	w->arg = arg;
	w->deadline_ms = now + WAIT_MAX_MS;
	TAILQ_INSERT_TAIL(&cs.waiters, w, entry);
	poll_arm();
}

/* --- helpers -------------------------------------------------------------------------- */

const char *
compat_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

int
compat_env_true(const char *name)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	const char *v = compat_env(name);

	for (size_t i = 0; v != NULL && i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
	}
	return 0;
}

static const char *
header_cb(void *ctx, const char *name)
{
	return http_req_header(ctx, name);
}

enum verify_result
compat_verify(const struct verifier *v, struct http_req *r, const unsigned char *body,
    size_t body_len, const struct source *s, const char *env_secret, int *checked)
{
	const char *secrets[MAX_SECRETS];
	struct verify_input vi = {0};
	enum verify_result vr;
	char why[200], *url;
	int n = 0;

	vi.now = (int64_t)(now_wall_ms() / 1000);
	if (env_secret != NULL)
		secrets[n++] = env_secret;
	n += source_live_secrets(s, vi.now, secrets + n, MAX_SECRETS - n);
	*checked = n > 0;
	if (n == 0)
		return VERIFY_OK;
	url = http_req_url(r);
	vi.method = http_req_method(r);
	vi.url = url;
	vi.content_type = http_req_header(r, "Content-Type");
	vi.body = body;
	vi.body_len = body_len;
	vi.header = header_cb;
	vi.header_ctx = r;
	vi.tolerance = s->tolerance;
	vr = verify_check(v, &vi, secrets, n, why, sizeof(why));
	if (vr != VERIFY_OK)
		log_msg(LOG_LEVEL_INFO, http_req_id(r), "compat: %s: %s", s->slug, why);
	free(url);
	return vr;
}

int
compat_is_json(const char *ct)
{
	return ingest_media_is_json(ct);
}

char *
compat_stored_headers(struct http_req *r)
{
	static const char *const skip[] = {"authorization", "proxy-authorization", "cookie"};
	struct evkeyvalq *h = evhttp_request_get_input_headers(http_req_evhttp(r));
	struct json_object *o = json_object_new_object();
	struct evkeyval *kv;
	int n = 0;
	char *text;

	TAILQ_FOREACH(kv, h, next)
	{
		char name[128];
		size_t i;
		int skipped = 0;

		if (n == MAX_STORED_HEADERS)
			break;
		for (i = 0; kv->key[i] != '\0' && i + 1 < sizeof(name); i++)
			name[i] = (char)tolower((unsigned char)kv->key[i]);
		name[i] = '\0';
		for (size_t j = 0; j < ARRAY_SIZE(skip); j++)
			skipped |= strcmp(name, skip[j]) == 0;
		if (skipped)
			continue;
		json_set_str(o, name, kv->value);
		n++;
	}
	text = json_compact(o, NULL);
	json_object_put(o);
	return text;
}

int
compat_truthy(struct json_object *v)
{
	double d;

	switch (json_object_get_type(v)) {
	case json_type_null: return 0;
	case json_type_boolean: return json_object_get_boolean(v);
	case json_type_int: return json_object_get_int64(v) != 0;
	case json_type_double: d = json_object_get_double(v); return d != 0 && !isnan(d);
	case json_type_string: return json_object_get_string_len(v) > 0;
	case json_type_object:
	case json_type_array: return 1;
	}
	return 0;
}

void
compat_count(const char *receiver, const char *outcome)
{
	if (cs.m_requests == NULL)
		cs.m_requests = metric_counter("hookd_compat_requests_total",
		    "Requests to the seeds' compat receivers by outcome.", "receiver,outcome");
	metric_add(cs.m_requests, 1, receiver, outcome);
}
