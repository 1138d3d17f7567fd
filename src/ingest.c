/* SPDX-License-Identifier: ISC */
/* The inbound receive path: verify, dedupe, group-commit the event, then answer. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/ingest.h"
#include "hookd/ingest_util.h"
#include "hookd/json.h"
#include "hookd/json_check.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/netguard.h"
#include "hookd/sources.h"
#include "hookd/verify.h"

#define MAX_SECRETS             16
#define MAX_STORED_HEADERS      100
#define MAX_ANSWER_HEADERS      32 /* a sync handler's reply headers */
#define RETRY_AFTER_UNAVAILABLE "2"

/*
 * One event waiting for its commit. The data is copied in: if a group fails because
 * of one event's data, the others are sent again on their own.
 */
struct pending {
	TAILQ_ENTRY(pending) entry;
	ingest_cb cb;
	void *arg;
	char id[37];
	char source_id[37];
	char *external_id;
	char *event_type;
	char *payload;
	unsigned char *raw;
	size_t raw_len;
	char *headers;
	int has_work; /* the source's handler runs after the commit */
	int alone;    /* retried in a group of its own */
};
TAILQ_HEAD(pending_list, pending);

struct batch {
	struct ingest *in;
	int n;
	struct pending *items[];
};

/* A synchronous-handler event: stored and handled in one transaction of its own. */
struct sync_req {
	struct ingest *in;
	ingest_cb cb;
	void *arg;
};

struct ingest {
	struct app *app;
	struct db_stmt *insert;
	struct pending_list queue;
	int nqueued;
	int inflight;               /* groups in flight (batches and sync events) */
	int batches;                /* batches in flight, bounded by ingest_inflight_max */
	void (*on_work)(void *arg); /* handler work was committed */
	void *on_work_arg;
	char *proxies_text; /* trusted_proxies as last parsed */
	struct cidr *proxies;
	int nproxies;
};

static struct metric *m_received, *m_batch_rows;

/*
 * One group commit: every queued event in one INSERT from binary arrays (a multi-row
 * statement costs Postgres a fraction of a statement per row). Rows whose dedupe key is
 * taken are skipped and missing from RETURNING; the caller looks their ids up.
 */
static const char insert_sql[] =
    "INSERT INTO hookd.events (id, source_id, external_id, event_type, payload, raw_body,"
    " headers, next_attempt_at)"
    " SELECT id, source_id, external_id, event_type, payload, raw_body, headers,"
    "  CASE WHEN has_work THEN now() END"
    " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::bytea[],"
    "  $7::jsonb[], $8::bool[])"
    "  AS t(id, source_id, external_id, event_type, payload, raw_body, headers, has_work)"
    " ON CONFLICT (source_id, external_id) WHERE external_id IS NOT NULL DO NOTHING"
    " RETURNING id";

static const char lookup_sql[] =
    "SELECT id FROM hookd.events WHERE source_id = $1 AND external_id = $2";

static const char sync_sql[] =
    "SELECT event_id, duplicate, answer::text FROM hookd.ingest_sync($1, $2, $3, $4, $5,"
    " $6::jsonb, $7, $8::jsonb, $9)";

static void flush(struct ingest *in);

static void
pending_free(struct pending *p)
{
	free(p->external_id);
	free(p->event_type);
	free(p->payload);
	free(p->raw);
	free(p->headers);
	free(p);
}

static void
finish(struct pending *p, enum ingest_status status, const char *id, const char *error)
{
	struct ingest_result r = {status, id, error, NULL};

	p->cb(&r, p->arg);
	pending_free(p);
}

struct lookup {
	struct ingest *in;
	struct pending *p;
};

static void
lookup_cb(const struct db_result *r, void *arg)
{
	struct lookup *l = arg;
	const char *id =
	    r->status == DB_OK && db_rows(r->res[0]) == 1 ? db_value(r->res[0], 0, 0) : NULL;

	l->in->inflight--;
	if (id != NULL)
		finish(l->p, INGEST_DUPLICATE, id, NULL);
	else
		finish(l->p, INGEST_UNAVAILABLE, NULL,
		    "duplicate whose first copy is not visible yet");
	free(l);
}

/* A duplicate committed concurrently elsewhere: find the id it was stored under. */
static void
lookup_duplicate(struct ingest *in, struct pending *p)
{
	struct lookup *l = xmalloc(sizeof(*l));
	struct db_params dp;

	l->in = in;
	l->p = p;
	db_params_init(&dp);
	db_param_text(&dp, p->source_id);
	db_param_text(&dp, p->external_id);
	in->inflight++;
	db_query(in->app->db, lookup_sql, &dp, lookup_cb, l);
}

/* Data the database refuses (class 22: invalid jsonb, say) is the sender's fault. */
static int
data_error(const struct db_result *r)
{
	return r->status == DB_ERR_SQL && r->sqlstate != NULL && strncmp(r->sqlstate, "22", 2) == 0;
}

static void
batch_cb(const struct db_result *r, void *arg)
{
	struct batch *b = arg;
	struct ingest *in = b->in;
	int kick = 0;

	in->inflight--;
	in->batches--;
	metric_observe(m_batch_rows, b->n);
	/* The next group goes to Postgres while this one's answers are written. */
	if (!(r->status == DB_ERR_SQL && b->n > 1))
		flush(in);
	if (r->status == DB_OK) {
		const PGresult *res = r->res[0];
		int rows = db_rows(res);
		const char **want = xmalloc((size_t)b->n * sizeof(*want));
		const char **got = xmalloc((size_t)(rows > 0 ? rows : 1) * sizeof(*got));
		unsigned char *stored = xmalloc((size_t)b->n);

		/* RETURNING has the stored rows in no promised order: match them as a set. */
		for (int i = 0; i < b->n; i++)
			want[i] = b->items[i]->id;
		for (int row = 0; row < rows; row++)
			got[row] = db_value(res, row, 0);
		ingest_match_ids(want, b->n, got, rows, stored);
		for (int i = 0; i < b->n; i++) {
			struct pending *p = b->items[i];

			if (stored[i]) {
				kick |= p->has_work;
				finish(p, INGEST_STORED, p->id, NULL);
			} else {
				/* Skipped by ON CONFLICT: its dedupe key is taken. */
				lookup_duplicate(in, p);
			}
		}
		free(want);
		free(got);
		free(stored);
	} else if (r->status == DB_ERR_SQL && b->n > 1) {
		/* One event's data may have failed the whole group: send each on its own. */
		log_warn("ingest: a group of %d events failed (%s); retrying them one by one", b->n,
		    r->error);
		for (int i = b->n - 1; i >= 0; i--) {
			b->items[i]->alone = 1;
			TAILQ_INSERT_HEAD(&in->queue, b->items[i], entry);
			in->nqueued++;
		}
	} else {
		for (int i = 0; i < b->n; i++) {
			if (data_error(r))
				finish(b->items[i], INGEST_REJECTED, NULL, r->error);
			else
				finish(b->items[i], INGEST_UNAVAILABLE, NULL, r->error);
		}
	}
	free(b);
	if (kick && in->on_work != NULL)
		in->on_work(in->on_work_arg);
	flush(in);
}

/*
 * Send queued events as groups. With no group in flight one goes at once, so a lone
 * request waits for nothing; while groups are in flight another starts only once
 * ingest_batch_min events wait (and fewer than ingest_inflight_max are in flight), so
 * under load commits stay large (Postgres's cost per event falls with the group's size)
 * and yet several overlap, keeping both Postgres and hookd busy.
 */
static void
flush(struct ingest *in)
{
	const struct config *cfg = &in->app->cfg;
	int max_batch = (int)cfg->ingest_batch_max;

	while (in->nqueued > 0 && in->batches < cfg->ingest_inflight_max &&
	       (in->batches == 0 || in->nqueued >= cfg->ingest_batch_min ||
	           TAILQ_FIRST(&in->queue)->alone)) {
		int n = TAILQ_FIRST(&in->queue)->alone ? 1 : in->nqueued;
		struct db_array ids, sources, externals, types, payloads, raws, headers, work;
		struct db_params dp;
		struct batch *b;

		if (n > max_batch)
			n = max_batch;
		b = xmalloc(sizeof(*b) + (size_t)n * sizeof(b->items[0]));
		b->in = in;
		b->n = 0;
		db_array_init(&ids, DB_OID_UUID);
		db_array_init(&sources, DB_OID_UUID);
		db_array_init(&externals, DB_OID_TEXT);
		db_array_init(&types, DB_OID_TEXT);
		db_array_init(&payloads, DB_OID_JSONB);
		db_array_init(&raws, DB_OID_BYTEA);
		db_array_init(&headers, DB_OID_JSONB);
		db_array_init(&work, DB_OID_BOOL);
		while (b->n < n) {
			struct pending *p = TAILQ_FIRST(&in->queue);

			if (b->n > 0 && p->alone)
				break;
			TAILQ_REMOVE(&in->queue, p, entry);
			in->nqueued--;
			/* Our own ids: always well formed. */
			if (db_array_add_uuid(&ids, p->id) != 0 ||
			    db_array_add_uuid(&sources, p->source_id) != 0)
				abort();
			db_array_add_text(&externals, p->external_id);
			db_array_add_text(&types, p->event_type);
			db_array_add_jsonb(&payloads, p->payload, strlen(p->payload));
			db_array_add(&raws, p->raw, p->raw_len);
			db_array_add_jsonb(&headers, p->headers, strlen(p->headers));
			db_array_add_bool(&work, p->has_work);
			b->items[b->n++] = p;
		}
		db_params_init(&dp);
		db_param_array(&dp, &ids);
		db_param_array(&dp, &sources);
		db_param_array(&dp, &externals);
		db_param_array(&dp, &types);
		db_param_array(&dp, &payloads);
		db_param_array(&dp, &raws);
		db_param_array(&dp, &headers);
		db_param_array(&dp, &work);
		in->inflight++;
		in->batches++;
		db_exec(in->app->db, in->insert, &dp, batch_cb, b);
		db_array_free(&ids);
		db_array_free(&sources);
		db_array_free(&externals);
		db_array_free(&types);
		db_array_free(&payloads);
		db_array_free(&raws);
		db_array_free(&headers);
		db_array_free(&work);
	}
}

static void
sync_cb(const struct db_result *r, void *arg)
{
	struct sync_req *s = arg;
	struct ingest_result res = {INGEST_UNAVAILABLE, NULL, r->error, NULL};
	struct json_object *answer = NULL;

	s->in->inflight--;
	if (r->status == DB_OK && db_rows(r->res[0]) == 1) {
		const char *text = db_value(r->res[0], 0, 2);
		char err[64];

		res.status =
		    strcmp(db_value(r->res[0], 0, 1), "t") == 0 ? INGEST_DUPLICATE : INGEST_STORED;
		res.id = db_value(r->res[0], 0, 0);
		res.error = NULL;
		if (text != NULL)
			answer = json_parse(text, strlen(text), err, sizeof(err));
		res.answer = answer;
	} else if (data_error(r)) {
		res.status = INGEST_REJECTED;
	}
	s->cb(&res, s->arg);
	json_object_put(answer);
	free(s);
}

void
ingest_store(struct ingest *in, const struct ingest_event *ev, ingest_cb cb, void *arg)
{
	const struct source *src = ev->source;
	char id[37];

	uuid_v7(id);
	if (src->handler.type == HANDLER_SQL_SYNC) {
		struct sync_req *s = xmalloc(sizeof(*s));
		struct db_params dp;

		s->in = in;
		s->cb = cb;
		s->arg = arg;
		db_params_init(&dp);
		db_param_text(&dp, id);
		db_param_text(&dp, src->id);
		db_param_text(&dp, src->slug);
		db_param_text(&dp, ev->external_id);
		db_param_text(&dp, ev->event_type);
		db_param_textn(&dp, ev->payload, ev->payload_len);
		db_param_bin(&dp, ev->raw, ev->raw_len);
		db_param_text(&dp, ev->headers);
		db_param_text(&dp, src->handler.function);
		in->inflight++;
		db_query(in->app->db, sync_sql, &dp, sync_cb, s);
		return;
	}

	struct pending *p = xcalloc(1, sizeof(*p));

	p->cb = cb;
	p->arg = arg;
	memcpy(p->id, id, sizeof(id));
	memcpy(p->source_id, src->id, sizeof(p->source_id));
	p->external_id = ev->external_id ? xstrdup(ev->external_id) : NULL;
	p->event_type = ev->event_type ? xstrdup(ev->event_type) : NULL;
	p->payload = xstrndup(ev->payload, ev->payload_len);
	p->raw = xmalloc(ev->raw_len + 1);
	memcpy(p->raw, ev->raw, ev->raw_len);
	p->raw_len = ev->raw_len;
	p->headers = xstrdup(ev->headers ? ev->headers : "{}");
	p->has_work = src->handler.type == HANDLER_SQL || src->handler.type == HANDLER_PUBLISH;
	TAILQ_INSERT_TAIL(&in->queue, p, entry);
	in->nqueued++;
	flush(in);
}

void
ingest_on_work(struct ingest *in, void (*cb)(void *arg), void *arg)
{
	in->on_work = cb;
	in->on_work_arg = arg;
}

int
ingest_busy(const struct ingest *in)
{
	return in->nqueued + in->inflight;
}

struct ingest *
ingest_new(struct app *app)
{
	struct ingest *in = xcalloc(1, sizeof(*in));

	if (m_received == NULL) {
		static const double rows[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

		m_received = metric_counter("hookd_inbound_requests_total",
		    "Inbound webhook requests by source and outcome.", "source,outcome");
		m_batch_rows = metric_histogram("hookd_ingest_commit_events",
		    "Events carried by one group commit.", NULL, rows, (int)ARRAY_SIZE(rows));
	}
	in->app = app;
	TAILQ_INIT(&in->queue);
	in->insert = db_prepare(app->db, "hookd_ingest_insert", insert_sql);
	return in;
}

void
ingest_free(struct ingest *in)
{
	struct pending *p;

	if (in == NULL)
		return;
	while ((p = TAILQ_FIRST(&in->queue)) != NULL) {
		TAILQ_REMOVE(&in->queue, p, entry);
		pending_free(p);
	}
	free(in->proxies);
	free(in->proxies_text);
	free(in);
}

/* --- the HTTP receiver ------------------------------------------------------------------- */

/* A receiver request waiting for its commit. */
struct receive {
	struct app *app;
	struct http_req *req;
	struct source *source;
};

static const char *
header_cb(void *ctx, const char *name)
{
	return http_req_header(ctx, name);
}

static void
count(const struct source *s, const char *outcome)
{
	metric_add(m_received, 1, s ? s->slug : "", outcome);
}

static void
unavailable(struct http_req *r, const char *why)
{
	http_reply_header(r, "Retry-After", RETRY_AFTER_UNAVAILABLE);
	http_reply_error(r, 503, "unavailable", "the event was not stored: %s", why);
}

/* The trusted proxies, reparsed whenever the configuration changed. */
static void
proxies_update(struct ingest *in)
{
	const char *text = in->app->cfg.trusted_proxies;

	if (in->proxies_text != NULL && strcmp(in->proxies_text, text) == 0)
		return;
	free(in->proxies);
	in->proxies = NULL;
	in->nproxies = 0;
	free(in->proxies_text);
	in->proxies_text = xstrdup(text);
	if (*text != '\0' && cidr_list_parse(text, &in->proxies, &in->nproxies) != 0) {
		log_warn("trusted_proxies: cannot parse \"%s\"; trusting no proxy", text);
		in->proxies = NULL;
		in->nproxies = 0;
	}
}

static int
in_list(const struct sockaddr *sa, const struct cidr *list, int n)
{
	for (int i = 0; i < n; i++) {
		if (cidr_contains(&list[i], sa))
			return 1;
	}
	return 0;
}

/*
 * The client's address: the peer, or, when the peer is a trusted proxy, the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy.
 */
static int
parse_addr(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

static int
client_addr(struct ingest *in, struct http_req *r, struct sockaddr_storage *out)
{
	const struct sockaddr *peer = http_req_peer_addr(r);
	const char *xff;
	char *copy, *tok, *save = NULL, *hops[32];
	int nhops = 0;

	if (peer == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	memcpy(out, peer,
	    peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	proxies_update(in);
	if (in->nproxies == 0 || !in_list(peer, in->proxies, in->nproxies))
		return 0;
	if ((xff = http_req_header(r, "X-Forwarded-For")) == NULL)
		return 0;
	copy = xstrdup(xff);
	for (tok = strtok_r(copy, ", ", &save); tok != NULL && nhops < (int)ARRAY_SIZE(hops);
	     tok = strtok_r(NULL, ", ", &save))
		hops[nhops++] = tok;
	/* From the right: each hop we trust vouches for the one before it. */
	for (int i = nhops - 1; i >= 0; i--) {
		struct sockaddr_storage ss;

		if (parse_addr(hops[i], &ss) != 0)
			break;
		*out = ss;
		if (!in_list((struct sockaddr *)&ss, in->proxies, in->nproxies))
			break;
	}
	free(copy);
	return 0;
}

enum ingest_gate
ingest_gate(struct ingest *in, struct http_req *r, struct source *s, int media_ok)
{
	struct sockaddr_storage client;
	size_t raw_len;
	int retry_after;
	char ra[16];

	if (!s->active)
		return INGEST_GATE_INACTIVE;
	if (s->nallow > 0 && (client_addr(in, r, &client) != 0 ||
	                         !in_list((struct sockaddr *)&client, s->allow, s->nallow)))
		return INGEST_GATE_FORBIDDEN;
	(void)http_req_body(r, &raw_len);
	if (s->max_body > 0 && raw_len > (size_t)s->max_body)
		return INGEST_GATE_TOO_LARGE;
	if (!media_ok)
		return INGEST_GATE_MEDIA;
	/* Last: the limit guards what costs (verification and storage), not cheap refusals. */
	if (!source_rate_take(s, now_mono_ms(), &retry_after)) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		http_reply_header(r, "Retry-After", ra);
		return INGEST_GATE_RATE;
	}
	return INGEST_GATE_PASS;
}

const char *
ingest_gate_name(enum ingest_gate g)
{
	static const char *const names[] = {
	    "pass", "inactive", "forbidden", "too_large", "unsupported_media_type", "rate_limited"};

	return names[g];
}

/* 1 when the object text written so far already has the key "name". */
static int
header_seen(const char *json, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = json; (p = strstr(p, name)) != NULL; p += n) {
		if (p > json && p[-1] == '"' && p[n] == '"' && p[n + 1] == ':')
			return 1;
	}
	return 0;
}

enum body_kind {
	BODY_JSON, /* application/json, application/<anything>+json */
	BODY_FORM, /* application/x-www-form-urlencoded */
	BODY_OTHER,
};

static enum body_kind
body_kind(const char *ct)
{
	size_t n;
	const char *semi;

	if (ct == NULL)
		return BODY_OTHER;
	while (*ct == ' ')
		ct++;
	semi = strchr(ct, ';');
	n = semi ? (size_t)(semi - ct) : strlen(ct);
	while (n > 0 && ct[n - 1] == ' ')
		n--;
	if (ingest_media_is_json(ct))
		return BODY_JSON;
	if (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
		return BODY_FORM;
	return BODY_OTHER;
}

/* A form body as a JSON object of strings (the raw body is what gets verified and kept). */
static struct json_object *
form_to_json(const char *body)
{
	struct evkeyvalq q;
	struct evkeyval *kv;
	struct json_object *o;

	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(body, &q) != 0) {
		evhttp_clear_headers(&q);
		return NULL;
	}
	o = json_object_new_object();
	TAILQ_FOREACH(kv, &q, next)
	json_set_str(o, kv->key, kv->value);
	evhttp_clear_headers(&q);
	return o;
}

/* The request headers worth keeping with the event, as JSON text (malloc'd). */
static char *
stored_headers(struct http_req *r)
{
	static const char *const skip[] = {"authorization", "proxy-authorization", "cookie"};
	struct evkeyvalq *h = evhttp_request_get_input_headers(http_req_evhttp(r));
	struct json_buf b = {0};
	struct evkeyval *kv;
	int n = 0;

	json_buf_add(&b, "{", 1);
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
		/* A repeated header keeps its first value (jsonb would keep the last). */
		if (skipped || (strstr(b.p, name) != NULL && header_seen(b.p, name)))
			continue;
		if (n++ > 0)
			json_buf_add(&b, ",", 1);
		json_buf_string(&b, name, i);
		json_buf_add(&b, ":", 1);
		json_buf_string(&b, kv->value, strlen(kv->value));
	}
	json_buf_add(&b, "}", 1);
	return b.p;
}

/*
 * Whether the receive path needs the JSON body as a json-c tree: for a handshake, or a
 * json: key. Otherwise json_check takes the body as it is and event_type_of reads its
 * members in place.
 */
static int
needs_tree(const struct source *s)
{
	return verifier_has_handshake(s->verifier) || s->event_type_key.kind == SOURCE_KEY_JSON ||
	       s->dedupe.kind == SOURCE_KEY_JSON;
}

/*
 * The event type: the source's event_type_key, else the usual headers and members. The
 * members are read from body, or when there is no tree from the checked JSON text raw.
 */
static char *
event_type_of(const struct source *s, struct http_req *r, struct json_object *body,
    const unsigned char *raw, size_t raw_len)
{
	static const char *const headers[] = {"X-GitHub-Event", "X-Shopify-Topic", "X-Event-Type"};
	static const char *const members[] = {"type", "event", "event_type"};
	char *found[ARRAY_SIZE(members)], *type = NULL;

	if (s->event_type_key.kind != SOURCE_KEY_NONE)
		return source_key_value(&s->event_type_key, header_cb, r, body);
	for (size_t i = 0; i < ARRAY_SIZE(headers); i++) {
		const char *v = http_req_header(r, headers[i]);

		if (v != NULL && *v != '\0')
			return xstrdup(v);
	}
	if (body != NULL) {
		for (size_t i = 0; i < ARRAY_SIZE(members); i++) {
			const char *v = json_get_str(body, members[i]);

			if (v != NULL && *v != '\0')
				return xstrdup(v);
		}
		return NULL;
	}
	json_top_strings((const char *)raw, raw_len, members, (int)ARRAY_SIZE(members), found);
	for (size_t i = 0; i < ARRAY_SIZE(members); i++) {
		if (type == NULL && found[i] != NULL && *found[i] != '\0')
			type = found[i];
		else
			free(found[i]);
	}
	return type;
}

/*
 * A sync handler's answer: {"status": n, "body": ..., "headers": {...}} or any JSON. The
 * body is sent as compact JSON; its headers pass when ingest_answer_header_refused lets
 * them (a JSON Content-Type replaces application/json), and the others are dropped with
 * a warning naming them.
 */
static void
reply_answer(struct http_req *r, struct json_object *answer, const char *id)
{
	struct json_object *st, *body, *hdrs;
	const char *ctype = "application/json";
	int64_t status;
	size_t len;
	char *text;
	int nsent = 0;

	if (answer == NULL) {
		struct json_object *o = json_object_new_object();

		json_set_str(o, "status", "processed");
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
	if ((hdrs = json_get_obj(answer, "headers")) != NULL) {
		json_object_object_foreach(hdrs, k, v)
		{
			const char *why = "the value is not a string";

			if (json_object_is_type(v, json_type_string))
				why = ingest_answer_header_refused(k, json_object_get_string(v),
				    (size_t)json_object_get_string_len(v));
			if (why == NULL && nsent == MAX_ANSWER_HEADERS)
				why = "too many headers";
			if (why != NULL) {
				log_msg(LOG_LEVEL_WARN, http_req_id(r),
				    "ingest: event %s: handler header \"%.64s\" dropped: %s", id, k,
				    why);
				continue;
			}
			nsent++;
			if (strcasecmp(k, "Content-Type") == 0)
				ctype = json_object_get_string(v);
			else
				http_reply_header(r, k, json_object_get_string(v));
		}
	}
	if (!json_object_object_get_ex(answer, "body", &body))
		body = NULL;
	text = json_compact(body, &len);
	http_reply_raw(r, (int)status, ctype, text, len);
	free(text);
}

static void
stored_cb(const struct ingest_result *res, void *arg)
{
	struct receive *rc = arg;
	struct http_req *r = rc->req;
	struct json_object *o;

	switch (res->status) {
	case INGEST_STORED:
	case INGEST_DUPLICATE:
		count(rc->source, res->status == INGEST_STORED ? "accepted" : "duplicate");
		if (rc->source->handler.type == HANDLER_SQL_SYNC) {
			reply_answer(r, res->answer, res->id);
			break;
		}
		o = json_object_new_object();
		json_set_str(o, "status", res->status == INGEST_STORED ? "accepted" : "duplicate");
		json_set_str(o, "id", res->id);
		http_reply_json(r, res->status == INGEST_STORED ? 202 : 200, o);
		break;
	case INGEST_REJECTED:
		count(rc->source, "rejected");
		http_reply_error(
		    r, 400, "invalid_json", "the database refused the payload: %s", res->error);
		break;
	case INGEST_UNAVAILABLE:
		count(rc->source, "unavailable");
		log_msg(LOG_LEVEL_WARN, http_req_id(r), "ingest: not stored: %s", res->error);
		unavailable(r, "the database is unavailable");
		break;
	}
	source_unref(rc->source);
	free(rc);
}

/* POST /in/{slug}: the canonical receiver. */
static void
in_receive(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct ingest *in = app->ingest;
	const char *slug = http_req_param(r, "slug");
	struct source *s = NULL;
	struct verify_input vi = {0};
	const char *secrets[MAX_SECRETS];
	struct json_object *body = NULL;
	struct ingest_event ev = {0};
	struct receive *rc;
	char why[200], *event_type = NULL, *external_id = NULL, *headers = NULL, *url = NULL;
	char *payload = NULL;
	const unsigned char *raw;
	size_t raw_len;
	enum body_kind kind;
	enum verify_result vr;
	enum ingest_gate gate;
	int nsecrets;

	if (!sources_loaded(app->sources)) {
		unavailable(r, "sources are not loaded yet");
		return;
	}
	s = sources_get(app->sources, slug);
	if (s == NULL) {
		count(NULL, "unknown_source");
		http_reply_error(r, 404, "not_found", "no source \"%s\"", slug);
		return;
	}
	raw = http_req_body(r, &raw_len);
	kind = body_kind(http_req_header(r, "Content-Type"));
	gate = ingest_gate(in, r, s, kind != BODY_OTHER);
	if (gate != INGEST_GATE_PASS)
		count(s, ingest_gate_name(gate));
	switch (gate) {
	case INGEST_GATE_PASS: break;
	case INGEST_GATE_INACTIVE:
		http_reply_error(r, 410, "source_inactive", "source \"%s\" is not active", slug);
		goto out;
	case INGEST_GATE_FORBIDDEN:
		http_reply_error(
		    r, 403, "forbidden", "this client address may not send to \"%s\"", slug);
		goto out;
	case INGEST_GATE_TOO_LARGE:
		http_reply_error(r, 413, "payload_too_large",
		    "request body is %zu bytes; source \"%s\" takes at most %lld", raw_len, slug,
		    (long long)s->max_body);
		goto out;
	case INGEST_GATE_MEDIA:
		http_reply_error(r, 415, "unsupported_media_type",
		    "send application/json (or application/x-www-form-urlencoded)");
		goto out;
	case INGEST_GATE_RATE:
		http_reply_error(r, 429, "rate_limited",
		    "source \"%s\" takes at most %g requests/s", slug, s->rate_per_sec);
		goto out;
	}
	/* Verify over the raw bytes before anything trusts them. */
	/* Only schemes that sign the URL need it built. */
	if (verifier_uses_url(s->verifier))
		url = http_req_url(r);
	vi.method = http_req_method(r);
	vi.url = url;
	vi.content_type = http_req_header(r, "Content-Type");
	vi.body = raw;
	vi.body_len = raw_len;
	vi.header = header_cb;
	vi.header_ctx = r;
	vi.now = (int64_t)(now_wall_ms() / 1000);
	vi.tolerance = s->tolerance;
	nsecrets = source_live_secrets(s, vi.now, secrets, MAX_SECRETS);
	vr = verify_check(s->verifier, &vi, secrets, nsecrets, why, sizeof(why));
	if (vr != VERIFY_OK) {
		static const char *const codes[] = {"ok", "missing_signature", "invalid_signature",
		    "stale_timestamp", "source_misconfigured"};

		count(s, verify_result_name(vr));
		log_msg(LOG_LEVEL_INFO, http_req_id(r), "ingest: %s: %s", slug, why);
		http_reply_error(r, verify_http_status(vr), codes[vr], "%s", why);
		goto out;
	}

	if (kind == BODY_JSON && !needs_tree(s)) {
		/* Stored as sent: checked in place, its type read without a tree. */
		if (json_check((const char *)raw, raw_len, why, sizeof(why)) != 0) {
			count(s, "invalid_json");
			http_reply_error(
			    r, 400, "invalid_json", "the body is not valid JSON: %s", why);
			goto out;
		}
	} else if (kind == BODY_JSON) {
		body = json_parse((const char *)raw, raw_len, why, sizeof(why));
		if (body == NULL) {
			count(s, "invalid_json");
			http_reply_error(
			    r, 400, "invalid_json", "the body is not valid JSON: %s", why);
			goto out;
		}
	} else {
		body = form_to_json((const char *)raw);
		if (body == NULL) {
			count(s, "invalid_form");
			http_reply_error(r, 400, "invalid_form", "the body is not a valid form");
			goto out;
		}
	}
	{
		char *reply = NULL;

		if (verify_handshake(s->verifier, body, secrets, nsecrets, &reply) == 1) {
			count(s, "handshake");
			http_reply_raw(r, 200, "application/json", reply, strlen(reply));
			free(reply);
			goto out;
		}
	}
	event_type = event_type_of(s, r, body, raw, raw_len);
	if (!source_type_allowed(s, event_type)) {
		struct json_object *o = json_object_new_object();

		count(s, "ignored");
		json_set_str(o, "status", "ignored");
		json_set_str(o, "message", "this source does not take this event type");
		json_set_str(o, "event_type", event_type);
		http_reply_json(r, 200, o);
		goto out;
	}
	if (s->dedupe.kind != SOURCE_KEY_NONE)
		external_id = source_key_value(&s->dedupe, header_cb, r, body);
	else if (verify_delivery_id(s->verifier, &vi) != NULL)
		external_id = xstrdup(verify_delivery_id(s->verifier, &vi));
	headers = stored_headers(r);

	rc = xmalloc(sizeof(*rc));
	rc->app = app;
	rc->req = r;
	rc->source = s;
	ev.source = s;
	ev.event_type = event_type;
	ev.external_id = external_id;
	if (kind == BODY_JSON) {
		ev.payload = (const char *)raw;
		ev.payload_len = raw_len;
	} else {
		payload = json_compact(body, &ev.payload_len);
		ev.payload = payload;
	}
	ev.raw = raw;
	ev.raw_len = raw_len;
	ev.headers = headers;
	ingest_store(in, &ev, stored_cb, rc);
	s = NULL; /* the pending receive holds the reference now */
out:
	source_unref(s);
	json_object_put(body);
	free(event_type);
	free(external_id);
	free(headers);
	free(payload);
	free(url);
}

void
ingest_register(struct app *app)
{
	http_server_route(app->http, "POST", "/in/{slug}", 0, in_receive, app);
	/* Seed 002's edge-function address for the same receiver. */
	http_server_route(
	    app->http, "POST", "/functions/v1/webhook-ingest/{slug}", 0, in_receive, app);
}
