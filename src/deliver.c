/* SPDX-License-Identifier: ISC */
/* Outbound delivery: lease due deliveries, send them, record the outcome, retry or dead-letter. */
#include "config.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "hookd/app.h"
#include "hookd/backoff.h"
#include "hookd/db.h"
#include "hookd/deliver.h"
#include "hookd/http_client.h"
#include "hookd/json.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/migrate.h"
#include "hookd/netguard.h"
#include "hookd/payload.h"
#include "hookd/publish.h"
#include "hookd/sign.h"
#include "hookd/subscriptions.h"
#include "hookd/wheel.h"

/*
 * How it works. The database is the truth: a delivery that is due has status pending or
 * failed and next_attempt_at in the past. A process leases a batch of due deliveries in
 * one committed statement (FOR UPDATE SKIP LOCKED, lease_until, leased_by), so processes
 * sharing a database split the work, and only then sends: no row lock or transaction is
 * held during an HTTP call. Each outcome (and the attempt it records) is buffered and
 * written back with many others in one statement, which only touches rows still leased by
 * this process: a delivery whose lease expired and was taken over is not finished twice.
 * A retry is written as next_attempt_at and, in this process, also put on the timing
 * wheel, so that it is sent on time rather than at the next poll. Leases of sends that
 * take long (slow receivers, a queue for connections) are renewed while they run.
 */

#define WAKE_GRANULE_MS    10    /* retry wakes due within this share one timer */
#define MAX_WAKES          256   /* beyond this many distinct wake times, the poll takes over */
#define FLUSH_MAX          512   /* outcomes written back by one statement */
#define FLUSH_INFLIGHT_MAX 2     /* write-back statements in flight at once */
#define FLUSH_DELAY_MS     2     /* wait this long for company before writing an outcome back */
#define FLUSH_RETRY_MS     500   /* a write-back that could not be sent is tried again */
#define LEASE_MARGIN_MS    3000  /* a lease outlives the subscription's timeout by this */
#define DEFER_MS           250   /* a delivery for a subscription not in the cache yet waits */
#define TEST_GRACE_MS      15000 /* a test send's answer waits its timeout plus this */
#define MAX_SECRETS        8
#define MAX_HEADERS        64

#define OID_INT4   23
#define OID_INT8   20
#define OID_FLOAT8 701

/*
 * Lease: the rows are picked and locked by a subquery (FOR UPDATE SKIP LOCKED) and updated
 * by id, so that the plan is an index lookup per row whatever the table's size; the lease
 * lasts deliver_lease ($2 ms) or the subscription's timeout plus a margin ($4), whichever
 * is longer. The message and subscription come back with each row.
 */
#define LEASE_HEAD                                                                                 \
	"WITH upd AS (UPDATE hookd.deliveries d SET leased_by = $3,"                               \
	" lease_until = now() + greatest($2::bigint, coalesce((SELECT s.timeout_seconds"           \
	"   FROM hookd.subscriptions s WHERE s.id = d.subscription_id), 0) * 1000"                 \
	"   + $4::bigint) * interval '1 millisecond'"
#define LEASE_TAIL                                                                                 \
	" RETURNING d.id, d.subscription_id, d.message_id, d.attempts, d.lease_until)"             \
	" SELECT upd.id, upd.subscription_id, upd.message_id, upd.attempts,"                       \
	" m.id IS NOT NULL, m.event_type, m.data::text,"                                           \
	" floor(extract(epoch FROM m.created_at) * 1000)::int8, m.origin, m.table_schema,"         \
	" m.table_name, m.op, s.id IS NOT NULL, s.enabled, s.disabled_reason,"                     \
	" floor(extract(epoch FROM upd.lease_until - now()) * 1000)::int8"                         \
	" FROM upd LEFT JOIN hookd.messages m ON m.id = upd.message_id"                            \
	" LEFT JOIN hookd.subscriptions s ON s.id = upd.subscription_id"

enum lease_col {
	LC_ID,
	LC_SUB,
	LC_MSG,
	LC_ATTEMPTS,
	LC_MSG_FOUND,
	LC_TYPE,
	LC_DATA,
	LC_CREATED,
	LC_ORIGIN,
	LC_SCHEMA,
	LC_TABLE,
	LC_OP,
	LC_SUB_FOUND,
	LC_ENABLED,
	LC_REASON,
	LC_LEASE_MS,
};

/* Lease due deliveries ($1 how many, $2 lease ms, $3 this process, $4 margin ms). */
static const char lease_sql[] =
    LEASE_HEAD " WHERE d.id = ANY(ARRAY(SELECT id FROM hookd.deliveries"
               "   WHERE status IN ('pending', 'failed') AND next_attempt_at <= now()"
               "     AND (lease_until IS NULL OR lease_until < now())"
               "   ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED))" LEASE_TAIL;

/* Lease the delivery a test message just made ($1 its id, $5 the subscription). */
static const char lease_test_sql[] =
    LEASE_HEAD " WHERE d.message_id = $1 AND d.subscription_id = $5::uuid"
               "   AND d.status IN ('pending', 'failed')" LEASE_TAIL;

/*
 * Hand back the rows leased to this process that it does not hold ($2: those it does),
 * after a lease statement whose outcome is unknown (the connection broke).
 */
static const char reclaim_sql[] =
    "UPDATE hookd.deliveries SET lease_until = NULL, leased_by = NULL"
    " WHERE leased_by = $1 AND status IN ('pending', 'failed') AND NOT (id = ANY($2::uuid[]))";

/* Keep the leases of sends still running ($1 ids, $2 this process, $3 lease ms). */
static const char renew_sql[] =
    "UPDATE hookd.deliveries SET lease_until = now() + $3::bigint * interval '1 millisecond'"
    " WHERE id = ANY($1::uuid[]) AND leased_by = $2";

/*
 * Write back a batch of outcomes. Per row: status (NULL keeps it: a deferred or released
 * delivery), the delay before the next attempt (NULL keeps next_attempt_at), the attempt
 * count, and what the attempt saw. Only rows still leased by this process change; the
 * attempt is recorded for those, and for a row whose lease was lost it is recorded unless
 * it already is (a write-back repeated after a lost connection changes nothing twice).
 * Subscriptions' failure streaks follow the outcomes in order: a success resets it, a
 * dead delivery adds one; a 410, or a streak reaching $16, disables the subscription.
 */
/* A subscription's failure streak after the batch, and whether the batch disables it. */
#define WB_STREAK "(CASE WHEN sc.reset_at IS NULL THEN s.failure_streak + sc.n ELSE sc.n END)"
#define WB_DISABLE                                                                                 \
	"(s.enabled AND (sc.gone IS NOT NULL OR ($16::int > 0 AND sc.n > 0 AND " WB_STREAK         \
	" >= $16::int)))"
static const char writeback_sql[] =
    "WITH u AS ("
    "  SELECT * FROM unnest($2::uuid[], $3::text[], $4::int8[], $5::int4[], $6::int4[],"
    "    $7::text[], $8::float8[], $9::int8[], $10::text[], $11::bool[], $12::text[],"
    "    $13::uuid[], $14::int4[], $15::text[])"
    "    WITH ORDINALITY AS u(id, status, delay_ms, attempts, code, error, duration,"
    "      started_us, body, recorded, attempt_error, sub_id, streak, gone, pos)"
    "), upd AS ("
    "  UPDATE hookd.deliveries d SET"
    "    status = coalesce(u.status::hookd.delivery_status, d.status),"
    "    attempts = u.attempts,"
    "    next_attempt_at = CASE WHEN u.delay_ms IS NULL THEN d.next_attempt_at"
    "      ELSE now() + u.delay_ms * interval '1 millisecond' END,"
    "    lease_until = NULL, leased_by = NULL,"
    "    last_status = CASE WHEN u.recorded THEN u.code ELSE d.last_status END,"
    "    last_error = CASE WHEN u.status IS NULL THEN d.last_error ELSE u.error END,"
    "    last_duration_ms = CASE WHEN u.recorded THEN u.duration ELSE d.last_duration_ms END,"
    "    updated_at = CASE WHEN u.status IS NULL THEN d.updated_at ELSE now() END,"
    "    completed_at = CASE WHEN u.status IN ('succeeded', 'dead') THEN now()"
    "      ELSE d.completed_at END"
    "  FROM u WHERE d.id = u.id AND d.leased_by = $1"
    "  RETURNING d.id"
    "), att AS ("
    "  INSERT INTO hookd.attempts (delivery_id, subscription_id, attempt, started_at,"
    "    duration_ms, status_code, response_body, error)"
    "  SELECT u.id, u.sub_id, u.attempts, to_timestamp(u.started_us / 1e6), u.duration,"
    "    u.code, u.body, u.attempt_error"
    "  FROM u LEFT JOIN upd ON upd.id = u.id"
    "  WHERE u.recorded AND (upd.id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM hookd.attempts a"
    "    WHERE a.delivery_id = u.id AND a.attempt = u.attempts"
    "      AND a.started_at = to_timestamp(u.started_us / 1e6)))"
    "), st AS ("
    "  SELECT u.sub_id, max(u.pos) FILTER (WHERE u.streak < 0) AS reset_at,"
    "    max(u.gone) AS gone, array_agg(u.pos) FILTER (WHERE u.streak > 0) AS deads"
    "  FROM u JOIN upd ON upd.id = u.id"
    "  WHERE u.streak <> 0 OR u.gone IS NOT NULL GROUP BY u.sub_id"
    "), sc AS MATERIALIZED ("
    "  SELECT st.sub_id, st.reset_at, st.gone,"
    "    (SELECT count(*) FROM unnest(st.deads) p WHERE p > coalesce(st.reset_at, 0))::int AS n"
    "  FROM st"
    ")"
    " UPDATE hookd.subscriptions s SET"
    "   failure_streak = " WB_STREAK ","
    "   enabled = s.enabled AND NOT " WB_DISABLE ","
    "   disabled_reason = CASE WHEN " WB_DISABLE " THEN coalesce(sc.gone, format("
    "     '%s deliveries in a row failed permanently (dead); disable_after_dead is %s',"
    "     " WB_STREAK ", $16::int)) ELSE s.disabled_reason END,"
    "   disabled_at = CASE WHEN " WB_DISABLE " THEN now() ELSE s.disabled_at END,"
    "   updated_at = CASE WHEN " WB_DISABLE " THEN now() ELSE s.updated_at END"
    " FROM sc"
    " WHERE s.id = sc.sub_id AND (s.failure_streak <> " WB_STREAK " OR " WB_DISABLE ")";

/*
 * In the same transaction: announce the subscriptions the write-back just disabled
 * (disabled_at is this transaction's now()) with a webhook.disabled message, and tell
 * every process's cache.
 */
static const char disabled_sql[] =
    "SELECT s.id, p.message_id, s.disabled_reason, pg_notify('hookd_config', 'subscriptions')"
    " FROM (SELECT DISTINCT ON (sid) sid, mid FROM unnest($1::uuid[], $2::text[]) AS u(sid, mid))"
    "   AS x"
    " JOIN hookd.subscriptions s ON s.id = x.sid AND NOT s.enabled AND s.disabled_at = now()"
    " CROSS JOIN LATERAL hookd.publish(x.mid, 'webhook.disabled',"
    "   json_build_object('webhook_id', s.id, 'name', s.name, 'url', s.url,"
    "     'reason', s.disabled_reason), 'system', s.id::text, NULL, NULL, NULL) p";

static const char test_check_sql[] =
    "SELECT enabled, disabled_reason FROM hookd.subscriptions WHERE id = $1";

enum dlv_state {
	DLV_QUEUED,  /* leased, waiting for a send slot */
	DLV_SENDING, /* its HTTP call is in flight */
	DLV_WAITING, /* its outcome waits to be written back */
	DLV_WRITING, /* its outcome is in a write-back in flight */
	DLV_DONE,    /* written back (or given up); freed right after the transition */
};

enum outcome {
	OUT_SUCCEEDED, /* a 2xx */
	OUT_RETRY,     /* failed; another attempt is scheduled */
	OUT_DEAD,      /* failed for good (or no attempt possible): a dead letter */
	OUT_DEFER,     /* not attempted: the subscription cache lags; due again shortly */
	OUT_RELEASE,   /* not attempted: handed back unchanged (drain) */
};

/* A body several deliveries of one message share. */
struct body {
	int refs;
	char *p;
	size_t len;
};

/* An HTTP client and the calls it carries; an old one is freed when they are done. */
struct client_ref {
	LIST_ENTRY(client_ref) entry;
	struct http_client *client;
	int calls;
	int retired;
};
LIST_HEAD(client_list, client_ref);

struct waiter;

/* One leased delivery. */
struct dlv {
	TAILQ_ENTRY(dlv) entry;
	struct deliver *d;
	enum dlv_state state;
	struct flush *flush; /* DLV_WRITING: the write-back carrying it */
	char id[37];
	char sub_id[37];
	char *msg_id;
	int prev_attempts;       /* attempts before this lease */
	int is_test;             /* origin "test": no retries, no failure streak */
	uint64_t lease_deadline; /* monotonic ms when the lease (as we know it) ends */
	int64_t lease_ms;
	/* what to send */
	struct subscription *sub;
	struct body *body;
	struct client_ref *cref;
	struct http_call *call;
	/* the outcome */
	enum outcome outcome;
	int recorded; /* an HTTP attempt was made: an attempts row */
	int counts;   /* counts for the failure streak: -1 success, 1 dead, 0 neither */
	char *gone;   /* a 410: the reason the subscription is disabled */
	int status_code;
	char *error;         /* the delivery's last_error */
	char *attempt_error; /* the attempt's error (no response) */
	char *resp;
	double duration_ms;
	uint64_t started_ms; /* wall clock */
	int64_t delay_ms;    /* OUT_RETRY, OUT_DEFER */
	int64_t sent_delay;  /* the delay the write-back asked for (from its now()) */
	uint64_t outcome_at; /* monotonic ms */
};
TAILQ_HEAD(dlv_list, dlv);

/* One write-back statement in flight. */
struct flush {
	TAILQ_ENTRY(flush) entry;
	struct deliver *d;
	struct dlv_list rows;
	int n;
	struct db_req *req;
	int has_disable; /* the disabled statement follows */
};
TAILQ_HEAD(flush_list, flush);

/* A retry wake-up on the timing wheel; kept on a spare list after it fires, not freed. */
struct wake {
	TAILQ_ENTRY(wake) entry;
	struct wheel_timer timer;
	struct deliver *d;
	uint64_t due; /* monotonic ms, rounded up to WAKE_GRANULE_MS */
};
TAILQ_HEAD(wake_list, wake);

/* A test send waiting for its outcome. */
struct waiter {
	TAILQ_ENTRY(waiter) entry;
	struct deliver *d;
	char sub_id[37];
	char msg_id[37];
	char delivery_id[37];
	deliver_test_cb cb;
	void *arg;
	struct event *timer;
	struct db_req *req;
};
TAILQ_HEAD(waiter_list, waiter);

struct deliver {
	struct app *app;
	struct dlv_list queued, sending, waiting;
	int nqueued, nsending, nwaiting, nwriting;
	struct flush_list flushes;
	int nflushes;
	struct event *flush_timer;
	int flush_armed;
	int taking;              /* take_rows is at work: write-backs wait for the batch */
	uint64_t flush_retry_at; /* monotonic ms: no write-back before this (database down) */
	struct db_req *leasing;
	int want;
	int again;
	int lease_failing;
	int orphans; /* a lease's outcome is unknown: rows may be leased to us unseen */
	struct db_req *reclaiming;
	struct db_req *renewing;
	struct event *poll;
	int64_t poll_ms;
	struct wake_list wakes, spare;
	int nwakes;
	struct waiter_list waiters;
	struct client_list clients;
	struct client_ref *cref; /* the current client */
	char *client_conf;       /* the configuration it was made from */
	const struct db_stmt *st_lease, *st_writeback;
	struct metric *m_outcomes, *m_attempts, *m_duration, *m_inflight, *m_batch;
};

static void pump(struct deliver *d);
static void maybe_flush(struct deliver *d);
static void wake_cb(struct wheel_timer *t, void *arg);
static void waiter_finish(struct waiter *w, const struct deliver_test_result *r);

static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

static const char *
state_name(enum dlv_state s)
{
	static const char *const names[] = {"queued", "sending", "waiting", "writing", "done"};

	return names[s];
}

static const char *
outcome_name(enum outcome o)
{
	static const char *const names[] = {"succeeded", "retry", "dead", "deferred", "released"};

	return names[o];
}

static void
body_unref(struct body *b)
{
	if (b != NULL && --b->refs == 0) {
		free(b->p);
		free(b);
	}
}

static void
dlv_free(struct dlv *x)
{
	subscription_unref(x->sub);
	body_unref(x->body);
	free(x->msg_id);
	free(x->gone);
	free(x->error);
	free(x->attempt_error);
	free(x->resp);
	free(x);
}

static struct dlv_list *
state_list(struct deliver *d, enum dlv_state s, int **count)
{
	switch (s) {
	case DLV_QUEUED: *count = &d->nqueued; return &d->queued;
	case DLV_SENDING: *count = &d->nsending; return &d->sending;
	case DLV_WAITING: *count = &d->nwaiting; return &d->waiting;
	default: *count = NULL; return NULL;
	}
}

/*
 * The one place a delivery changes state: it moves between the lists, keeps the counts
 * and aborts on an impossible transition. DLV_WRITING rows live on their flush's list;
 * DLV_DONE frees the delivery.
 */
static void
set_state(struct dlv *x, enum dlv_state to)
{
	struct deliver *d = x->d;
	enum dlv_state from = x->state;
	struct dlv_list *l;
	int ok, *count;

	switch (from) {
	case DLV_QUEUED: ok = to == DLV_SENDING || to == DLV_WAITING || to == DLV_DONE; break;
	case DLV_SENDING: ok = to == DLV_WAITING || to == DLV_DONE; break;
	case DLV_WAITING: ok = to == DLV_WRITING || to == DLV_DONE; break;
	case DLV_WRITING: ok = to == DLV_WAITING || to == DLV_DONE; break;
	default: ok = 0; break;
	}
	if (!ok) {
		log_error("deliver: impossible transition %s -> %s for delivery %s",
		    state_name(from), state_name(to), x->id);
		abort();
	}
	if (from == DLV_WRITING) {
		TAILQ_REMOVE(&x->flush->rows, x, entry);
		x->flush->n--;
		x->flush = NULL;
		d->nwriting--;
	} else {
		l = state_list(d, from, &count);
		TAILQ_REMOVE(l, x, entry);
		(*count)--;
	}
	x->state = to;
	if (from == DLV_SENDING)
		metric_set(d->m_inflight, (double)d->nsending);
	if (to == DLV_DONE) {
		dlv_free(x);
		return;
	}
	if (to == DLV_WRITING) {
		d->nwriting++; /* the caller puts it on the flush's list */
		return;
	}
	l = state_list(d, to, &count);
	TAILQ_INSERT_TAIL(l, x, entry);
	(*count)++;
	if (to == DLV_SENDING)
		metric_set(d->m_inflight, (double)d->nsending);
}

/* 1 when the worker may lease: schema current, pool and cache up, a client, not draining. */
static int
may_lease(const struct deliver *d)
{
	const struct app *app = d->app;

	return !app->draining && app->schema_version >= migrate_latest() &&
	       db_ready_count(app->db) > 0 && subscriptions_loaded(app->subscriptions) &&
	       d->cref != NULL;
}

/* --- the HTTP client ------------------------------------------------------------------ */

/* The configuration the client is made from, as one string to compare on reload. */
static char *
client_conf(const struct config *c)
{
	return xasprintf("%s|%lld|%s|%lld|%lld",
	    c->outbound_allow_networks ? c->outbound_allow_networks : "",
	    (long long)c->outbound_tls_verify, c->outbound_ca_file ? c->outbound_ca_file : "",
	    (long long)c->outbound_max_per_origin, (long long)c->outbound_idle_timeout);
}

static void
client_ref_release(struct deliver *d, struct client_ref *cr)
{
	if (cr->retired && cr->calls == 0) {
		LIST_REMOVE(cr, entry);
		http_client_free(cr->client);
		free(cr);
	}
}

/* Make (or remake, after a reload changed the outbound keys) the client. */
static void
client_update(struct deliver *d)
{
	struct app *app = d->app;
	const struct config *c = &app->cfg;
	struct http_client_options opt;
	struct http_client *client;
	struct client_ref *cr;
	struct cidr *allow = NULL;
	char *conf = client_conf(c), ua[64];
	int nallow = 0;

	if (d->client_conf != NULL && strcmp(conf, d->client_conf) == 0) {
		free(conf);
		return;
	}
	if (c->outbound_allow_networks != NULL &&
	    cidr_list_parse(c->outbound_allow_networks, &allow, &nallow) != 0) {
		log_error("outbound_allow_networks: element %d is not a network; no network is "
		          "allowlisted",
		    nallow + 1);
		allow = NULL;
		nallow = 0;
	}
	memset(&opt, 0, sizeof(opt));
	opt.max_per_origin = (int)c->outbound_max_per_origin;
	opt.idle_timeout_ms = (int)c->outbound_idle_timeout;
	opt.max_response_body = 16384;
	opt.allow = allow;
	opt.nallow = nallow;
	opt.tls_insecure = !c->outbound_tls_verify;
	opt.ca_file = c->outbound_ca_file != NULL && *c->outbound_ca_file != '\0'
	                  ? c->outbound_ca_file
	                  : NULL;
	snprintf(ua, sizeof(ua), "hookd/%s", PACKAGE_VERSION);
	opt.user_agent = ua;
	client = http_client_new(app->base, app->dns, &opt);
	free(allow);
	if (client == NULL) {
		/* The reason is logged; keep the running client, if any, and try next reload. */
		log_error("deliver: cannot make the outbound HTTP client%s",
		    d->cref != NULL ? "; the previous configuration stays" : "; nothing is sent");
		free(d->client_conf);
		d->client_conf = conf;
		return;
	}
	if (d->cref != NULL) {
		d->cref->retired = 1;
		client_ref_release(d, d->cref);
	}
	cr = xcalloc(1, sizeof(*cr));
	cr->client = client;
	LIST_INSERT_HEAD(&d->clients, cr, entry);
	d->cref = cr;
	app->client = client;
	free(d->client_conf);
	d->client_conf = conf;
}

/* --- wakes ------------------------------------------------------------------------------ */

/* Put a wake-up on the wheel delay_ms from now (shared with one due at the same time). */
static void
wake_at(struct deliver *d, int64_t delay_ms)
{
	uint64_t now = now_mono_ms(), due;
	struct wake *w;

	if (delay_ms < 0)
		delay_ms = 0;
	due = now + (uint64_t)delay_ms;
	due = (due + WAKE_GRANULE_MS - 1) / WAKE_GRANULE_MS * WAKE_GRANULE_MS;
	TAILQ_FOREACH(w, &d->wakes, entry)
	{
		if (w->due == due)
			return;
	}
	if (d->nwakes >= MAX_WAKES)
		return; /* the poll finds it, a little late */
	if ((w = TAILQ_FIRST(&d->spare)) != NULL)
		TAILQ_REMOVE(&d->spare, w, entry);
	else
		w = xcalloc(1, sizeof(*w));
	wheel_timer_init(&w->timer, wake_cb, w);
	w->d = d;
	w->due = due;
	TAILQ_INSERT_TAIL(&d->wakes, w, entry);
	d->nwakes++;
	wheel_driver_add(d->app->wheel, &w->timer, due - now);
}

/* A retry is due: lease. The wake goes back to the spare list, never freed here. */
static void
wake_cb(struct wheel_timer *t, void *arg)
{
	struct wake *w = arg;
	struct deliver *d = w->d;

	TAILQ_REMOVE(&d->wakes, w, entry);
	d->nwakes--;
	TAILQ_INSERT_HEAD(&d->spare, w, entry);
	d->again = 1;
	pump(d);
}

/* --- outcomes ---------------------------------------------------------------------------- */

/*
 * Buffer a delivery's outcome for the next write-back. A send slot may have come free:
 * start a queued delivery or lease more (pump), unless a lease is being taken apart.
 */
static void
finish(struct dlv *x, enum outcome o)
{
	struct deliver *d = x->d;
	int was_sending = x->state == DLV_SENDING;

	x->outcome = o;
	x->outcome_at = now_mono_ms();
	metric_add(d->m_outcomes, 1, outcome_name(o));
	set_state(x, DLV_WAITING);
	if (was_sending && !d->taking)
		pump(d);
	maybe_flush(d);
}

/* Dead without an attempt (the subscription or message is gone): a dead letter to replay. */
static void
finish_skipped(struct dlv *x, const char *why)
{
	log_info("deliver: delivery %s dead without an attempt: %s", x->id, why);
	x->error = xstrdup(why);
	finish(x, OUT_DEAD);
}

static const char *
attempt_result(const struct http_call_result *r)
{
	switch (r->error) {
	case HTTP_CALL_OK:
		if (r->status >= 200 && r->status < 300)
			return "2xx";
		if (r->status >= 300 && r->status < 400)
			return "3xx";
		if (r->status >= 400 && r->status < 500)
			return "4xx";
		return "5xx";
	case HTTP_CALL_BAD_URL: return "bad_url";
	case HTTP_CALL_BAD_REQUEST: return "bad_request";
	case HTTP_CALL_DNS: return "dns";
	case HTTP_CALL_REFUSED_ADDR: return "refused";
	case HTTP_CALL_CONNECT: return "connect";
	case HTTP_CALL_TLS: return "tls";
	case HTTP_CALL_TIMEOUT: return "timeout";
	case HTTP_CALL_PROTOCOL: return "protocol";
	case HTTP_CALL_IO: return "io";
	case HTTP_CALL_SHUTDOWN: return "shutdown";
	}
	return "other";
}

/* The delay a 429 or 503 asks for (Retry-After, clamped), or -1 when it asks for none. */
static int64_t
retry_after_ms(const struct deliver *d, const struct http_call_result *r)
{
	int64_t s;

	if (r->error != HTTP_CALL_OK || (r->status != 429 && r->status != 503) ||
	    r->retry_after == NULL)
		return -1;
	if (backoff_retry_after(r->retry_after, (int64_t)(now_wall_ms() / 1000),
	        d->app->cfg.retry_after_max / 1000, &s) != 0)
		return -1;
	return s * 1000;
}

static void
call_cb(const struct http_call_result *r, void *arg)
{
	struct dlv *x = arg;
	struct deliver *d = x->d;
	struct subscription *s = x->sub;
	int attempt = x->prev_attempts + 1, permanent = 0;
	int64_t delay = -1, ra;
	char err[512];

	x->call = NULL;
	x->cref->calls--;
	client_ref_release(d, x->cref);
	x->cref = NULL;
	body_unref(x->body);
	x->body = NULL;
	if (r->error == HTTP_CALL_SHUTDOWN) {
		/* The client is going away under us (teardown): the lease expires instead. */
		set_state(x, DLV_DONE);
		return;
	}
	x->recorded = 1;
	/* The attempt is the HTTP exchange: it starts once a connection is had, after any
	 * wait behind the per-origin cap (hookd_http_client_queue_seconds counts that). */
	x->started_ms += (uint64_t)(r->queue_ms + 0.5);
	x->duration_ms = r->duration_ms;
	metric_observe(d->m_duration, r->duration_ms / 1000.0);
	metric_add(d->m_attempts, 1, attempt_result(r));
	if (r->error == HTTP_CALL_OK) {
		x->status_code = r->status;
		x->resp = payload_response_text(r->body, r->body_len, NULL);
		if (r->status >= 200 && r->status < 300) {
			x->counts = x->is_test ? 0 : -1;
			log_debug("deliver: delivery %s: %d in %.1f ms", x->id, r->status,
			    r->duration_ms);
			finish(x, OUT_SUCCEEDED);
			return;
		}
		if (r->status == 410) {
			x->gone = xasprintf("the endpoint answered 410 Gone to delivery %s", x->id);
			permanent = 1;
		}
		snprintf(err, sizeof(err), "HTTP %d", r->status);
	} else {
		x->attempt_error = xstrdup(r->error_text);
		snprintf(err, sizeof(err), "%s", r->error_text);
		permanent = r->error == HTTP_CALL_BAD_URL || r->error == HTTP_CALL_BAD_REQUEST;
	}
	if (!permanent && !x->is_test) {
		delay = backoff_delay_ms(&s->retry, attempt, random_below(UINT32_MAX));
		if (delay >= 0 && (ra = retry_after_ms(d, r)) >= 0)
			delay = ra;
	}
	if (delay >= 0) {
		x->error =
		    xasprintf("%s (attempt %d of %d)", err, attempt, s->retry.max_retries + 1);
		x->delay_ms = delay;
		log_info("deliver: delivery %s to %s failed: %s; retry in %lld ms", x->id,
		    s->name != NULL ? s->name : x->sub_id, x->error, (long long)delay);
		finish(x, OUT_RETRY);
		return;
	}
	if (x->is_test)
		x->error = xasprintf("%s (test send: not retried)", err);
	else if (permanent)
		x->error = xasprintf("%s (attempt %d; not retried)", err, attempt);
	else
		x->error =
		    xasprintf("%s (attempt %d of %d; retries exhausted)", err, attempt, attempt);
	x->counts = x->is_test ? 0 : 1;
	log_warn("deliver: delivery %s to %s is dead: %s", x->id,
	    s->name != NULL ? s->name : x->sub_id, x->error);
	finish(x, OUT_DEAD);
}

/* --- sending ------------------------------------------------------------------------------ */

struct hdrs {
	struct http_header h[MAX_HEADERS];
	char *owned[MAX_HEADERS];
	int n, nowned;
};

static void
add_sign_header_cb(const char *name, const char *value, void *arg)
{
	struct hdrs *hs = arg;

	if (hs->n >= MAX_HEADERS)
		return;
	hs->owned[hs->nowned++] = xstrdup(value);
	hs->h[hs->n].name = name; /* sign's names are string literals */
	hs->h[hs->n].value = hs->owned[hs->nowned - 1];
	hs->n++;
}

/* Custom headers may not replace what hookd itself sends. */
static int
reserved_header(const char *name)
{
	return strcasecmp(name, "content-type") == 0 || strncasecmp(name, "webhook-", 8) == 0 ||
	       strncasecmp(name, "x-webhook-", 10) == 0 ||
	       strcasecmp(name, "x-fluxbase-signature") == 0;
}

/* Start a queued delivery's HTTP call. */
static void
send_one(struct dlv *x)
{
	struct deliver *d = x->d;
	struct subscription *s = x->sub;
	struct http_call_request req;
	const char *secrets[MAX_SECRETS];
	struct hdrs hs;
	uint64_t now = now_wall_ms();
	int nsecrets;

	memset(&hs, 0, sizeof(hs));
	hs.h[hs.n].name = "Content-Type";
	hs.h[hs.n++].value = "application/json";
	for (int i = 0; i < s->nheaders && hs.n < MAX_HEADERS - 8; i++) {
		if (!reserved_header(s->headers[i].name))
			hs.h[hs.n++] = s->headers[i];
	}
	nsecrets = subscription_live_secrets(s, (int64_t)(now / 1000), secrets, MAX_SECRETS);
	if (nsecrets == 0) {
		/*
		 * Every subscription has a secret, so none usable means none could be unsealed
		 * (this process's master key is not the one they were sealed with). Never send
		 * unsigned: sign_headers_build() would leave the signature headers out.
		 */
		x->recorded = 0;
		x->counts = 0;
		finish_skipped(x, "cannot sign: no secret of the subscription could be unsealed "
		                  "(is this process's master key the one they were sealed with?)");
		goto out;
	}
	if (sign_headers_build(s->sign_flags | SIGN_STANDARD, x->msg_id, (int64_t)(now / 1000),
	        x->body->p, x->body->len, secrets, nsecrets, add_sign_header_cb, &hs) != 0) {
		/* A secret with no usable key, or a message id no header can carry. */
		x->recorded = 0;
		x->counts = 0;
		finish_skipped(x, "cannot sign: a secret of the subscription is not usable, or the "
		                  "message id cannot be sent in a header");
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.url = s->url;
	req.method = "POST";
	req.headers = hs.h;
	req.nheaders = hs.n;
	req.body = x->body->p;
	req.body_len = x->body->len;
	req.timeout_ms = s->timeout_ms;
	req.pin = s->pin;
	req.npin = s->npin;
	x->started_ms = now;
	x->cref = d->cref;
	x->cref->calls++;
	set_state(x, DLV_SENDING);
	x->call = http_client_call(x->cref->client, &req, call_cb, x);
out:
	for (int i = 0; i < hs.nowned; i++)
		free(hs.owned[i]);
}

/* --- write-back ---------------------------------------------------------------------------- */

/* Ids come from the database, so they always parse. */
static void
add_uuid(struct db_array *a, const char *id)
{
	if (db_array_add_uuid(a, id) != 0) {
		log_error("deliver: %s is not a uuid", id);
		abort();
	}
}

static void
arr_int4(struct db_array *a, int v, int null)
{
	uint32_t be = htobe32((uint32_t)v);

	db_array_add(a, null ? NULL : &be, 4);
}

static void
arr_int8(struct db_array *a, int64_t v, int null)
{
	uint64_t be = htobe64((uint64_t)v);

	db_array_add(a, null ? NULL : &be, 8);
}

static void
arr_float8(struct db_array *a, double v, int null)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof(bits));
	bits = htobe64(bits);
	db_array_add(a, null ? NULL : &bits, 8);
}

static const char *
outcome_status(enum outcome o)
{
	switch (o) {
	case OUT_SUCCEEDED: return "succeeded";
	case OUT_RETRY: return "failed";
	case OUT_DEAD: return "dead";
	default: return NULL;
	}
}

/* The delay still to wait when the outcome is written (the write-back came later). */
static int64_t
remaining_ms(const struct dlv *x, uint64_t now)
{
	int64_t r = x->delay_ms - (int64_t)(now - x->outcome_at);

	return r > 0 ? r : 0;
}

static void flush_cb(const struct db_result *r, void *arg);

/* Report a test delivery's outcome to its waiter, if any. */
static void
tell_waiter(struct deliver *d, struct dlv *x)
{
	struct deliver_test_result tr;
	struct waiter *w;

	TAILQ_FOREACH(w, &d->waiters, entry)
	{
		if (strcmp(w->delivery_id, x->id) == 0)
			break;
	}
	if (w == NULL || x->outcome == OUT_DEFER || x->outcome == OUT_RELEASE)
		return;
	memset(&tr, 0, sizeof(tr));
	tr.status = DELIVER_TEST_DONE;
	tr.delivery_id = x->id;
	tr.message_id = x->msg_id;
	tr.delivery_status = x->outcome == OUT_SUCCEEDED ? "succeeded"
	                     : x->outcome == OUT_DEAD    ? "dead"
	                                                 : "pending";
	tr.success = x->outcome == OUT_SUCCEEDED;
	tr.status_code = x->status_code;
	tr.duration_ms = x->duration_ms;
	tr.response_body = x->resp;
	tr.started_ms = x->started_ms;
	tr.error = x->attempt_error != NULL      ? x->attempt_error
	           : x->outcome != OUT_SUCCEEDED ? x->error
	                                         : NULL;
	waiter_finish(w, &tr);
}

/* Write back up to FLUSH_MAX waiting outcomes in one group. */
static void
flush(struct deliver *d)
{
	struct db_array ids, status, delay, attempts, code, error, dur, started, body, recorded;
	struct db_array aerr, subs, streak, gone, dsubs, dmsgs;
	struct flush *f = xcalloc(1, sizeof(*f));
	struct db_group *g;
	struct db_params p;
	uint64_t now = now_mono_ms();
	struct dlv *x;
	int ndisable = 0;

	f->d = d;
	TAILQ_INIT(&f->rows);
	db_array_init(&ids, DB_OID_UUID);
	db_array_init(&status, DB_OID_TEXT);
	db_array_init(&delay, OID_INT8);
	db_array_init(&attempts, OID_INT4);
	db_array_init(&code, OID_INT4);
	db_array_init(&error, DB_OID_TEXT);
	db_array_init(&dur, OID_FLOAT8);
	db_array_init(&started, OID_INT8);
	db_array_init(&body, DB_OID_TEXT);
	db_array_init(&recorded, DB_OID_BOOL);
	db_array_init(&aerr, DB_OID_TEXT);
	db_array_init(&subs, DB_OID_UUID);
	db_array_init(&streak, OID_INT4);
	db_array_init(&gone, DB_OID_TEXT);
	db_array_init(&dsubs, DB_OID_UUID);
	db_array_init(&dmsgs, DB_OID_TEXT);
	while (f->n < FLUSH_MAX && (x = TAILQ_FIRST(&d->waiting)) != NULL) {
		int has_delay = x->outcome == OUT_RETRY || x->outcome == OUT_DEFER;

		set_state(x, DLV_WRITING);
		x->flush = f;
		TAILQ_INSERT_TAIL(&f->rows, x, entry);
		f->n++;
		add_uuid(&ids, x->id);
		db_array_add_text(&status, outcome_status(x->outcome));
		x->sent_delay = has_delay ? remaining_ms(x, now) : 0;
		arr_int8(&delay, x->sent_delay, !has_delay);
		arr_int4(&attempts, x->prev_attempts + x->recorded, 0);
		arr_int4(&code, x->status_code, x->status_code == 0);
		db_array_add_text(&error, x->outcome == OUT_SUCCEEDED ? NULL : x->error);
		arr_float8(&dur, x->duration_ms, !x->recorded);
		arr_int8(&started, (int64_t)x->started_ms * 1000, !x->recorded);
		db_array_add_text(&body, x->resp);
		db_array_add_bool(&recorded, x->recorded);
		db_array_add_text(&aerr, x->attempt_error);
		add_uuid(&subs, x->sub_id);
		arr_int4(&streak, x->counts, 0);
		db_array_add_text(&gone, x->gone);
		if (x->counts > 0 || x->gone != NULL) {
			char mid[37];

			/* A message id for the webhook.disabled this outcome may cause. */
			publish_new_id(mid);
			add_uuid(&dsubs, x->sub_id);
			db_array_add_text(&dmsgs, mid);
			ndisable++;
		}
	}
	g = db_group_new(d->app->db);
	db_params_init(&p);
	db_param_text(&p, d->app->instance);
	db_param_array(&p, &ids);
	db_param_array(&p, &status);
	db_param_array(&p, &delay);
	db_param_array(&p, &attempts);
	db_param_array(&p, &code);
	db_param_array(&p, &error);
	db_param_array(&p, &dur);
	db_param_array(&p, &started);
	db_param_array(&p, &body);
	db_param_array(&p, &recorded);
	db_param_array(&p, &aerr);
	db_param_array(&p, &subs);
	db_param_array(&p, &streak);
	db_param_array(&p, &gone);
	db_param_int(&p, d->app->cfg.disable_after_dead);
	db_group_stmt(g, d->st_writeback, &p);
	if (ndisable > 0) {
		f->has_disable = 1;
		db_params_init(&p);
		db_param_array(&p, &dsubs);
		db_param_array(&p, &dmsgs);
		db_group_sql(g, disabled_sql, &p);
	}
	metric_observe(d->m_batch, (double)f->n, "writeback");
	TAILQ_INSERT_TAIL(&d->flushes, f, entry);
	d->nflushes++;
	f->req = db_group_send(g, flush_cb, f);
	db_array_free(&ids);
	db_array_free(&status);
	db_array_free(&delay);
	db_array_free(&attempts);
	db_array_free(&code);
	db_array_free(&error);
	db_array_free(&dur);
	db_array_free(&started);
	db_array_free(&body);
	db_array_free(&recorded);
	db_array_free(&aerr);
	db_array_free(&subs);
	db_array_free(&streak);
	db_array_free(&gone);
	db_array_free(&dsubs);
	db_array_free(&dmsgs);
}

static void
flush_done(struct deliver *d, struct flush *f)
{
	TAILQ_REMOVE(&d->flushes, f, entry);
	d->nflushes--;
	free(f);
}

static void
flush_cb(const struct db_result *r, void *arg)
{
	struct flush *f = arg;
	struct deliver *d = f->d;
	struct dlv *x;
	uint64_t now = now_mono_ms();
	int kick = 0;

	f->req = NULL;
	if (r->status == DB_OK) {
		while ((x = TAILQ_FIRST(&f->rows)) != NULL) {
			if (x->outcome == OUT_RETRY || x->outcome == OUT_DEFER) {
				/* Due at the server's now() + sent_delay: no later than this + it.
				 */
				wake_at(d, x->sent_delay + 1);
			}
			if (!TAILQ_EMPTY(&d->waiters))
				tell_waiter(d, x);
			set_state(x, DLV_DONE);
		}
		if (f->has_disable && r->nres > 1) {
			int n = db_rows(r->res[1]);

			for (int i = 0; i < n; i++) {
				log_warn("deliver: subscription %s disabled: %s; published %s "
				         "(webhook.disabled)",
				    db_value(r->res[1], i, 0), db_value(r->res[1], i, 2),
				    db_value(r->res[1], i, 1));
				kick = 1;
			}
			if (n > 0)
				subscriptions_refresh(d->app->subscriptions);
		}
		flush_done(d, f);
		if (kick) {
			d->again = 1;
			pump(d);
		}
		maybe_flush(d);
		return;
	}
	if (r->status == DB_ERR_SQL) {
		log_error("deliver: cannot write back %d outcome(s): %s (%s); those deliveries are "
		          "sent again when their leases expire",
		    f->n, r->error, r->sqlstate ? r->sqlstate : "?");
		while ((x = TAILQ_FIRST(&f->rows)) != NULL)
			set_state(x, DLV_DONE);
		flush_done(d, f);
		maybe_flush(d);
		return;
	}
	/*
	 * Not sent, or sent and the connection broke (the outcome unknown): write it again
	 * a little later, which is harmless either way, while the leases last.
	 */
	log_warn("deliver: cannot write back %d outcome(s) now: %s; trying again", f->n, r->error);
	while ((x = TAILQ_FIRST(&f->rows)) != NULL) {
		if (now >= x->lease_deadline) {
			log_warn(
			    "deliver: delivery %s: its lease ended before its outcome could be "
			    "written; it is sent again",
			    x->id);
			set_state(x, DLV_DONE);
		} else {
			set_state(x, DLV_WAITING);
		}
	}
	flush_done(d, f);
	d->flush_retry_at = now + FLUSH_RETRY_MS;
	maybe_flush(d);
}

static void
flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;

	d->flush_armed = 0;
	maybe_flush(d);
}

static void
arm_flush(struct deliver *d, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};

	if (d->flush_armed)
		return;
	d->flush_armed = 1;
	event_add(d->flush_timer, &tv);
}

/*
 * Write outcomes back: at once when a statement's worth waits, when no send is in flight
 * (nothing more is coming soon) or when draining; else a few milliseconds after the first,
 * so that outcomes arriving meanwhile share the statement.
 */
static void
maybe_flush(struct deliver *d)
{
	uint64_t now, first;
	int urgent;

	if (d->taking)
		return; /* take_rows flushes once it has seen the whole batch */
	while (d->nwaiting > 0 && d->nflushes < FLUSH_INFLIGHT_MAX) {
		now = now_mono_ms();
		if (now < d->flush_retry_at) {
			arm_flush(d, d->flush_retry_at - now);
			return;
		}
		urgent = d->nwaiting >= FLUSH_MAX || d->nsending == 0 || d->app->draining;
		if (!urgent) {
			/* One in flight: its completion writes what gathered meanwhile. */
			if (d->nflushes > 0)
				return;
			first = TAILQ_FIRST(&d->waiting)->outcome_at;
			if (now < first + FLUSH_DELAY_MS) {
				arm_flush(d, first + FLUSH_DELAY_MS - now);
				return;
			}
		}
		flush(d);
	}
}

/* --- leasing ------------------------------------------------------------------------------- */

/* A small table of bodies shared within one lease batch, by message id and shape. */
struct body_cache {
	struct {
		const char *key;
		char kind;
		struct body *b;
	} * slot;
	size_t cap;
};

static unsigned
str_hash(const char *s, char kind)
{
	unsigned h = 2166136261u ^ (unsigned char)kind;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct body **
body_slot(struct body_cache *c, const char *key, char kind)
{
	size_t i = str_hash(key, kind) & (c->cap - 1);

	for (; c->slot[i].key != NULL; i = (i + 1) & (c->cap - 1)) {
		if (c->slot[i].kind == kind && strcmp(c->slot[i].key, key) == 0)
			return &c->slot[i].b;
	}
	c->slot[i].key = key;
	c->slot[i].kind = kind;
	return &c->slot[i].b;
}

/* Turn a leased row into a delivery: ready to send, or finished without an attempt. */
static void
take_row(struct deliver *d, const PGresult *res, int i, struct body_cache *bc)
{
	struct dlv *x = xcalloc(1, sizeof(*x));
	const char *origin = db_value(res, i, LC_ORIGIN), *v;
	struct payload_message m;
	struct subscription *s;
	struct body **slot = NULL;
	char err[256];
	size_t len;
	char *text;

	x->d = d;
	x->state = DLV_QUEUED;
	snprintf(x->id, sizeof(x->id), "%s", db_value(res, i, LC_ID));
	snprintf(x->sub_id, sizeof(x->sub_id), "%s", db_value(res, i, LC_SUB));
	x->msg_id = xstrdup(db_value(res, i, LC_MSG));
	x->prev_attempts = atoi(db_value(res, i, LC_ATTEMPTS));
	x->is_test = origin != NULL && strcmp(origin, "test") == 0;
	v = db_value(res, i, LC_LEASE_MS);
	x->lease_ms = v != NULL ? atoll(v) : d->app->cfg.deliver_lease;
	x->lease_deadline = now_mono_ms() + (uint64_t)(x->lease_ms > 0 ? x->lease_ms : 0);
	TAILQ_INSERT_TAIL(&d->queued, x, entry);
	d->nqueued++;

	if (strcmp(db_value(res, i, LC_SUB_FOUND), "t") != 0) {
		finish_skipped(x, "the subscription was deleted");
		return;
	}
	if (strcmp(db_value(res, i, LC_ENABLED), "t") != 0) {
		v = db_value(res, i, LC_REASON);
		snprintf(err, sizeof(err), "the subscription is disabled%s%s", v ? ": " : "",
		    v ? v : "");
		finish_skipped(x, err);
		return;
	}
	if (strcmp(db_value(res, i, LC_MSG_FOUND), "t") != 0) {
		finish_skipped(x, "the message no longer exists");
		return;
	}
	s = subscriptions_get(d->app->subscriptions, x->sub_id);
	if (s == NULL || !s->enabled) {
		/* The database says it is there and enabled: this process's cache lags. */
		subscription_unref(s);
		subscriptions_refresh(d->app->subscriptions);
		x->delay_ms = DEFER_MS;
		log_debug("deliver: delivery %s waits for the subscription cache", x->id);
		finish(x, OUT_DEFER);
		return;
	}
	x->sub = s;
	memset(&m, 0, sizeof(m));
	m.id = x->msg_id;
	m.event_type = db_value(res, i, LC_TYPE);
	v = db_value(res, i, LC_CREATED);
	m.created_ms = v != NULL ? (uint64_t)atoll(v) : now_wall_ms();
	m.data = db_value(res, i, LC_DATA);
	m.data_len = m.data != NULL ? strlen(m.data) : 0;
	if (origin != NULL && strcmp(origin, "change") == 0 && db_value(res, i, LC_OP) != NULL) {
		m.op = db_value(res, i, LC_OP);
		m.schema = db_value(res, i, LC_SCHEMA);
		m.table = db_value(res, i, LC_TABLE);
	}
	if (payload_shared(&m, s->format)) {
		slot = body_slot(bc, x->msg_id, m.op == NULL ? 'e' : 's');
		if (*slot != NULL) {
			x->body = *slot;
			x->body->refs++;
			return;
		}
	}
	text = payload_build(&m, s->format, x->sub_id, &len, err, sizeof(err));
	if (text == NULL) {
		finish_skipped(x, err);
		return;
	}
	x->body = xcalloc(1, sizeof(*x->body));
	x->body->refs = 1;
	x->body->p = text;
	x->body->len = len;
	if (slot != NULL) {
		*slot = x->body;
		x->body->refs++; /* the cache's reference, dropped with the cache */
	}
}

/* Leased rows: make deliveries of them, then send what may be sent. */
static int
take_rows(struct deliver *d, const PGresult *res)
{
	int rows = db_rows(res);
	struct body_cache bc;

	if (rows == 0)
		return 0;
	bc.cap = 16;
	while (bc.cap < (size_t)rows * 2)
		bc.cap *= 2;
	bc.slot = xcalloc(bc.cap, sizeof(*bc.slot));
	d->taking = 1;
	for (int i = 0; i < rows; i++)
		take_row(d, res, i, &bc);
	d->taking = 0;
	for (size_t i = 0; i < bc.cap; i++)
		body_unref(bc.slot[i].b);
	free(bc.slot);
	metric_observe(d->m_batch, (double)rows, "lease");
	maybe_flush(d);
	return rows;
}

static void
lease_cb(const struct db_result *r, void *arg)
{
	struct deliver *d = arg;
	int rows;

	d->leasing = NULL;
	if (r->status != DB_OK) {
		if (!d->lease_failing)
			log_warn("deliver: cannot lease deliveries: %s", r->error);
		d->lease_failing = 1;
		/* It may have committed: hand back what this process holds but never saw. */
		if (r->status == DB_ERR_LOST)
			d->orphans = 1;
		return; /* the next poll tries again */
	}
	if (d->lease_failing)
		log_info("deliver: leasing deliveries again");
	d->lease_failing = 0;
	rows = take_rows(d, r->res[0]);
	if (rows > 0)
		log_debug("deliver: leased %d deliveries", rows);
	if (rows >= d->want)
		d->again = 1; /* a full batch: more may be due */
	pump(d);
}

static int64_t
lease_ms(const struct deliver *d)
{
	return d->app->cfg.deliver_lease;
}

static void
lease(struct deliver *d, int want)
{
	struct db_params p;

	d->again = 0;
	d->want = want;
	db_params_init(&p);
	db_param_int(&p, want);
	db_param_int(&p, lease_ms(d));
	db_param_text(&p, d->app->instance);
	db_param_int(&p, LEASE_MARGIN_MS);
	d->leasing = db_exec(d->app->db, d->st_lease, &p, lease_cb, d);
}

/* Hand queued deliveries back unchanged (drain). */
static void
release_queued(struct deliver *d)
{
	struct dlv *x;

	while ((x = TAILQ_FIRST(&d->queued)) != NULL)
		finish(x, OUT_RELEASE);
}

/*
 * Move work along: start queued deliveries while there is room, lease more when there is
 * room for a fair batch, and hand queued ones back when draining.
 */
static void
pump(struct deliver *d)
{
	const struct config *c = &d->app->cfg;
	int conc = (int)c->deliver_concurrency, room, min_room;
	struct dlv *x;

	if (d->app->draining) {
		release_queued(d);
		maybe_flush(d);
		return;
	}
	while (d->nsending < conc && (x = TAILQ_FIRST(&d->queued)) != NULL)
		send_one(x);
	room = conc - d->nsending - d->nqueued;
	min_room = (int)(c->deliver_batch < conc ? c->deliver_batch : conc) / 4;
	if (min_room < 1)
		min_room = 1;
	if (d->again && d->leasing == NULL && room >= min_room && may_lease(d))
		lease(d, room < c->deliver_batch ? room : (int)c->deliver_batch);
}

/* --- lease renewal ------------------------------------------------------------------------- */

static void
renew_cb(const struct db_result *r, void *arg)
{
	struct deliver *d = arg;

	d->renewing = NULL;
	if (r->status != DB_OK)
		log_warn("deliver: cannot renew leases: %s", r->error);
}

/* Renew the leases of sends that are past half their lease. */
static void
renew(struct deliver *d)
{
	struct db_array ids;
	struct db_params p;
	uint64_t now = now_mono_ms();
	int64_t ms = lease_ms(d), max_lm = ms;
	struct dlv *x;
	int n = 0;

	if (d->renewing != NULL || db_ready_count(d->app->db) == 0)
		return;
	db_array_init(&ids, DB_OID_UUID);
	for (int pass = 0; pass < 2; pass++) {
		TAILQ_FOREACH(x, pass == 0 ? &d->sending : &d->queued, entry)
		{
			int64_t lm = x->lease_ms > ms ? x->lease_ms : ms;

			if (x->lease_deadline > now + (uint64_t)lm / 2)
				continue;
			add_uuid(&ids, x->id);
			x->lease_deadline = now + (uint64_t)lm;
			x->lease_ms = lm;
			if (lm > max_lm)
				max_lm = lm;
			n++;
		}
	}
	if (n > 0) {
		db_params_init(&p);
		db_param_array(&p, &ids);
		db_param_text(&p, d->app->instance);
		db_param_int(&p, max_lm);
		d->renewing = db_query(d->app->db, renew_sql, &p, renew_cb, d);
		log_debug("deliver: renewing %d lease(s)", n);
	}
	db_array_free(&ids);
}

/* --- orphaned leases ------------------------------------------------------------------- */

static void
reclaim_cb(const struct db_result *r, void *arg)
{
	struct deliver *d = arg;

	d->reclaiming = NULL;
	if (r->status != DB_OK) {
		d->orphans = 1; /* next poll */
		return;
	}
	if (atoi(PQcmdTuples(r->res[0])) > 0)
		log_info("deliver: handed back %s delivery lease(s) lost with a connection",
		    PQcmdTuples(r->res[0]));
	d->again = 1;
	pump(d);
}

/*
 * After a lease whose outcome is unknown: release every row leased to this process that
 * it does not hold, once no other lease is in flight (its rows would not be held yet).
 */
static void
reclaim(struct deliver *d)
{
	struct db_array ids;
	struct db_params p;
	struct waiter *w;
	struct flush *f;
	struct dlv *x;

	if (!d->orphans || d->leasing != NULL || d->reclaiming != NULL ||
	    db_ready_count(d->app->db) == 0)
		return;
	TAILQ_FOREACH(w, &d->waiters, entry)
	{
		if (w->req != NULL)
			return; /* a test lease is in flight */
	}
	d->orphans = 0;
	db_array_init(&ids, DB_OID_UUID);
	for (int pass = 0; pass < 3; pass++) {
		TAILQ_FOREACH(x,
		    pass == 0   ? &d->queued
		    : pass == 1 ? &d->sending
		                : &d->waiting,
		    entry)
		add_uuid(&ids, x->id);
	}
	TAILQ_FOREACH(f, &d->flushes, entry)
	{
		TAILQ_FOREACH(x, &f->rows, entry)
		add_uuid(&ids, x->id);
	}
	db_params_init(&p);
	db_param_text(&p, d->app->instance);
	if (ids.n > 0)
		db_param_array(&p, &ids);
	else
		db_param_text(&p, "{}");
	d->reclaiming = db_query(d->app->db, reclaim_sql, &p, reclaim_cb, d);
	db_array_free(&ids);
}

/* --- test sends ---------------------------------------------------------------------------- */

static void
waiter_free(struct waiter *w)
{
	if (w->timer != NULL)
		event_free(w->timer);
	free(w);
}

/* Report and forget a waiter (its callback replies to the request). */
static void
waiter_finish(struct waiter *w, const struct deliver_test_result *r)
{
	struct deliver *d = w->d;

	TAILQ_REMOVE(&d->waiters, w, entry);
	w->cb(r, w->arg);
	waiter_free(w);
}

static void
waiter_fail(struct waiter *w, enum deliver_test_status status, const char *error)
{
	struct deliver_test_result r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	r.error = error;
	r.delivery_id = w->delivery_id[0] != '\0' ? w->delivery_id : NULL;
	r.message_id = w->msg_id[0] != '\0' ? w->msg_id : NULL;
	r.delivery_status = w->delivery_id[0] != '\0' ? "pending" : NULL;
	waiter_finish(w, &r);
}

static void
waiter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	waiter_fail(arg, DELIVER_TEST_PENDING,
	    "no outcome yet: the delivery is queued and is sent as soon as possible");
}

static void
test_leased_cb(const struct db_result *r, void *arg)
{
	struct waiter *w = arg;
	struct deliver *d = w->d;
	struct publish_result pr;
	struct subscription *s;
	struct timeval tv;
	int64_t ms = TEST_GRACE_MS;

	w->req = NULL;
	if (r->status != DB_OK) {
		if (r->status == DB_ERR_LOST)
			d->orphans = 1;
		waiter_fail(w, DELIVER_TEST_UNAVAILABLE, r->error);
		return;
	}
	if (publish_group_done(d->app, r->res[0], &pr) != 0 || db_rows(r->res[1]) == 0) {
		waiter_fail(
		    w, DELIVER_TEST_DISABLED, "the subscription is disabled (or was just deleted)");
		return;
	}
	snprintf(w->delivery_id, sizeof(w->delivery_id), "%s", db_value(r->res[1], 0, LC_ID));
	s = subscriptions_get(d->app->subscriptions, w->sub_id);
	if (s != NULL)
		ms += s->timeout_ms;
	subscription_unref(s);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	w->timer = evtimer_new(d->app->base, waiter_timeout_cb, w);
	evtimer_add(w->timer, &tv);
	take_rows(d, r->res[1]);
	pump(d);
}

static void
test_checked_cb(const struct db_result *r, void *arg)
{
	struct waiter *w = arg;
	struct deliver *d = w->d;
	struct publish_request req;
	struct db_group *g;
	struct db_params p;
	struct json_object *data;
	const char *enabled, *reason;
	char iso[32], msg[300], *text;

	w->req = NULL;
	if (r->status != DB_OK) {
		waiter_fail(w, DELIVER_TEST_UNAVAILABLE, r->error);
		return;
	}
	if (db_rows(r->res[0]) == 0) {
		waiter_fail(w, DELIVER_TEST_NOT_FOUND, "no such subscription");
		return;
	}
	enabled = db_value(r->res[0], 0, 0);
	reason = db_value(r->res[0], 0, 1);
	if (strcmp(enabled, "t") != 0) {
		snprintf(msg, sizeof(msg), "the subscription is disabled%s%s", reason ? ": " : "",
		    reason ? reason : "");
		waiter_fail(w, DELIVER_TEST_DISABLED, msg);
		return;
	}
	if (d->app->draining || d->cref == NULL) {
		waiter_fail(w, DELIVER_TEST_UNAVAILABLE,
		    d->app->draining ? "hookd is shutting down" : "no outbound HTTP client");
		return;
	}
	publish_new_id(w->msg_id);
	time_iso8601(now_wall_ms(), iso, sizeof(iso));
	data = json_object_new_object();
	json_set_str(data, "webhook_id", w->sub_id);
	json_set_str(data, "message", "This is a test event from hookd.");
	json_set_str(data, "timestamp", iso);
	text = json_compact(data, NULL);
	json_object_put(data);
	memset(&req, 0, sizeof(req));
	req.id = w->msg_id;
	req.event_type = "webhook.test";
	req.data = text;
	req.data_len = strlen(text);
	req.origin = "test";
	req.only = w->sub_id;
	g = db_group_new(d->app->db);
	publish_group_add(d->app, g, &req);
	db_params_init(&p);
	db_param_text(&p, w->msg_id);
	db_param_int(&p, lease_ms(d));
	db_param_text(&p, d->app->instance);
	db_param_int(&p, LEASE_MARGIN_MS);
	db_param_text(&p, w->sub_id);
	db_group_sql(g, lease_test_sql, &p);
	w->req = db_group_send(g, test_leased_cb, w);
	free(text);
}

void
deliver_test(struct deliver *d, const char *subscription_id, deliver_test_cb cb, void *arg)
{
	struct waiter *w = xcalloc(1, sizeof(*w));
	struct db_params p;

	w->d = d;
	w->cb = cb;
	w->arg = arg;
	snprintf(w->sub_id, sizeof(w->sub_id), "%s", subscription_id);
	TAILQ_INSERT_TAIL(&d->waiters, w, entry);
	db_params_init(&p);
	db_param_text(&p, subscription_id);
	w->req = db_query(d->app->db, test_check_sql, &p, test_checked_cb, w);
}

/* --- wake-ups ------------------------------------------------------------------------------ */

static void
arm_poll(struct deliver *d)
{
	struct timeval tv;

	d->poll_ms = d->app->cfg.deliver_poll_interval;
	tv.tv_sec = (time_t)(d->poll_ms / 1000);
	tv.tv_usec = (suseconds_t)(d->poll_ms % 1000 * 1000);
	event_add(d->poll, &tv);
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;

	if (d->poll_ms != d->app->cfg.deliver_poll_interval)
		arm_poll(d); /* reloaded */
	client_update(d);
	renew(d);
	reclaim(d);
	d->again = 1;
	pump(d);
	maybe_flush(d);
}

static void
notify_cb(const char *channel, const char *payload, void *arg)
{
	deliver_kick(arg);
}

static void
reconnect_cb(void *arg)
{
	deliver_kick(arg);
}

static void
publish_commit_cb(void *arg)
{
	deliver_kick(arg);
}

/* --- public -------------------------------------------------------------------------------- */

struct deliver *
deliver_new(struct app *app)
{
	struct deliver *d = xcalloc(1, sizeof(*d));

	d->app = app;
	TAILQ_INIT(&d->queued);
	TAILQ_INIT(&d->sending);
	TAILQ_INIT(&d->waiting);
	TAILQ_INIT(&d->flushes);
	TAILQ_INIT(&d->wakes);
	TAILQ_INIT(&d->spare);
	TAILQ_INIT(&d->waiters);
	LIST_INIT(&d->clients);
	d->m_outcomes = metric_counter("hookd_deliveries_total",
	    "Delivery outcomes: succeeded, retry (failed, another attempt scheduled), dead, "
	    "deferred (subscription cache behind), released (handed back on shutdown).",
	    "outcome");
	d->m_attempts = metric_counter("hookd_delivery_attempts_total",
	    "HTTP attempts by result: 2xx, 3xx, 4xx, 5xx, timeout, refused (SSRF guard), dns, "
	    "connect, tls, io, protocol, bad_url, bad_request.",
	    "result");
	d->m_duration = metric_histogram("hookd_delivery_attempt_duration_seconds",
	    "Time from starting an attempt to its result, waiting for a connection included.", NULL,
	    metrics_latency_buckets, metrics_latency_nbuckets);
	d->m_inflight = metric_gauge("hookd_deliveries_inflight", "HTTP attempts in flight.", NULL);
	d->m_batch = metric_histogram("hookd_deliver_batch_rows",
	    "Rows per lease and per write-back statement.", "kind", batch_bounds,
	    (int)ARRAY_SIZE(batch_bounds));
	metric_set(d->m_inflight, 0);
	d->st_lease = db_prepare(app->db, "hookd_deliver_lease", lease_sql);
	d->st_writeback = db_prepare(app->db, "hookd_deliver_writeback", writeback_sql);
	d->poll = event_new(app->base, -1, EV_PERSIST, poll_cb, d);
	d->flush_timer = evtimer_new(app->base, flush_timer_cb, d);
	if (d->poll == NULL || d->flush_timer == NULL)
		hookd_assert_fail("event_new for the delivery worker", __FILE__, __LINE__);
	client_update(d);
	arm_poll(d);
	listen_subscribe(app->listen, "hookd_deliveries", notify_cb, d);
	listen_on_connect(app->listen, reconnect_cb, d);
	publish_on_commit(app, publish_commit_cb, d);
	d->again = 1;
	return d;
}

void
deliver_free(struct deliver *d)
{
	struct client_ref *cr;
	struct waiter *w;
	struct flush *f;
	struct wake *wk;
	struct dlv *x;

	if (d == NULL)
		return;
	if (d->leasing != NULL)
		db_cancel(d->leasing);
	if (d->renewing != NULL)
		db_cancel(d->renewing);
	if (d->reclaiming != NULL)
		db_cancel(d->reclaiming);
	while ((w = TAILQ_FIRST(&d->waiters)) != NULL) {
		if (w->req != NULL)
			db_cancel(w->req);
		w->req = NULL;
		waiter_fail(w, DELIVER_TEST_UNAVAILABLE, "hookd is shutting down");
	}
	while ((f = TAILQ_FIRST(&d->flushes)) != NULL) {
		if (f->req != NULL)
			db_cancel(f->req);
		while ((x = TAILQ_FIRST(&f->rows)) != NULL) {
			TAILQ_REMOVE(&f->rows, x, entry);
			dlv_free(x);
		}
		TAILQ_REMOVE(&d->flushes, f, entry);
		free(f);
	}
	for (int pass = 0; pass < 3; pass++) {
		struct dlv_list *l = pass == 0 ? &d->queued : pass == 1 ? &d->sending : &d->waiting;

		while ((x = TAILQ_FIRST(l)) != NULL) {
			TAILQ_REMOVE(l, x, entry);
			if (x->call != NULL)
				http_call_cancel(x->call);
			dlv_free(x);
		}
	}
	while ((wk = TAILQ_FIRST(&d->wakes)) != NULL) {
		TAILQ_REMOVE(&d->wakes, wk, entry);
		wheel_cancel(&wk->timer);
		free(wk);
	}
	while ((wk = TAILQ_FIRST(&d->spare)) != NULL) {
		TAILQ_REMOVE(&d->spare, wk, entry);
		free(wk);
	}
	while ((cr = LIST_FIRST(&d->clients)) != NULL) {
		LIST_REMOVE(cr, entry);
		http_client_free(cr->client);
		free(cr);
	}
	d->app->client = NULL;
	publish_on_commit(d->app, NULL, NULL);
	event_free(d->poll);
	event_free(d->flush_timer);
	free(d->client_conf);
	free(d);
}

void
deliver_kick(struct deliver *d)
{
	if (d == NULL)
		return;
	d->again = 1;
	pump(d);
}

int
deliver_busy(const struct deliver *d)
{
	if (d == NULL)
		return 0;
	return d->nqueued + d->nsending + d->nwaiting + d->nwriting;
}
