/* SPDX-License-Identifier: ISC */
/* Inbound processing: lease due events, run SQL handlers, retry on the wheel, log outcomes. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "hookd/app.h"
#include "hookd/backoff.h"
#include "hookd/db.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/migrate.h"
#include "hookd/process.h"
#include "hookd/sources.h"
#include "hookd/wheel.h"

/*
 * How it works. The database is the truth: an event with handler work carries
 * next_attempt_at, and whoever leases it (status processing, lease_until, leased_by)
 * owns it until the lease ends. A lease is its own committed statement, taken with
 * FOR UPDATE SKIP LOCKED so that processes sharing a database split the due events;
 * an expired lease (its process died) is taken over by anyone. Each leased event then
 * runs in a group of its own through hookd.process_event (schema/003), which checks
 * that the lease is still ours, runs the handler in a subtransaction and records the
 * outcome in the same transaction. Retries are written as next_attempt_at and, in the
 * process that scheduled them, also put on the timing wheel so that they run on time
 * rather than at the next poll; the poll finds everything else (other processes'
 * retries, takeovers, missed wakes).
 */

#define WAKE_GRANULE_MS 10  /* retry wakes due within this share one timer */
#define MAX_WAKES       256 /* beyond this many distinct wake times, the poll takes over */

/* Lease due events (with their source's handler as it is now) for this process. */
static const char lease_sql[] =
    "UPDATE hookd.events e SET status = 'processing',"
    "  lease_until = now() + $2::bigint * interval '1 millisecond', leased_by = $3"
    " FROM (SELECT ev.id, s.slug, s.handler"
    "        FROM hookd.events ev LEFT JOIN hookd.sources s ON s.id = ev.source_id"
    "       WHERE ev.next_attempt_at <= now()"
    "         AND ev.status IN ('pending', 'processing')"
    "         AND (ev.lease_until IS NULL OR ev.lease_until < now())"
    "       ORDER BY ev.next_attempt_at LIMIT $1"
    "         FOR UPDATE OF ev SKIP LOCKED) d"
    " WHERE e.id = d.id"
    " RETURNING e.id, e.source_id, d.slug, d.handler::text";

static const char run_sql[] = "SELECT outcome, attempt, delay_ms, error, duration_ms"
                              " FROM hookd.process_event($1, $2, $3, $4, $5::bigint[])";

static const char publish_sql[] = "SELECT outcome, attempt, delay_ms, error, duration_ms"
                                  " FROM hookd.publish_event($1, $2, $3, $4::bigint[])";

static const char failed_sql[] =
    "SELECT outcome, attempt, delay_ms FROM hookd.event_attempt_failed($1, $2, $3,"
    " $4::bigint[], $5, NULL)";

static const char unhandled_sql[] =
    "SELECT hookd.event_unhandled($1, $2, $3::hookd.event_status, $4, $5::jsonb)";

/* Hand an unstarted event back (drain), so another process can take it at once. */
static const char release_sql[] =
    "UPDATE hookd.events SET status = 'pending', lease_until = NULL, leased_by = NULL"
    " WHERE id = $1 AND leased_by = $2 AND status = 'processing'";

enum pev_state {
	PEV_QUEUED,    /* leased, waiting for a handler slot */
	PEV_RUNNING,   /* its handler group is in flight */
	PEV_RECORDING, /* the handler group failed as a whole: recording the failed attempt */
	PEV_SETTLING,  /* no handler can run it: being failed or sent back to review */
	PEV_RELEASING, /* draining: being handed back unstarted */
	PEV_DONE,      /* finished; freed right after the transition */
};

/* One leased event. */
struct pev {
	TAILQ_ENTRY(pev) entry;
	struct process *p;
	enum pev_state state;
	struct db_req *req; /* the group in flight, if any */
	char id[37];
	char source_id[37];
	char *slug;         /* NULL: the source no longer exists */
	char *handler_json; /* the source's handler config at lease time */
};
TAILQ_HEAD(pev_list, pev);

/* A retry wake-up on the timing wheel; kept on a spare list after it fires, not freed. */
struct wake {
	TAILQ_ENTRY(wake) entry;
	struct wheel_timer timer;
	struct process *p;
	uint64_t due; /* monotonic ms, rounded up to WAKE_GRANULE_MS */
};
TAILQ_HEAD(wake_list, wake);

struct process {
	struct app *app;
	struct pev_list queued; /* PEV_QUEUED */
	struct pev_list active; /* every other live state: a group in flight */
	int nqueued, nactive;
	struct db_req *leasing; /* the lease statement in flight */
	int want;               /* events asked for by that lease */
	int again;              /* lease again as soon as there is room */
	int lease_failing;      /* the last lease failed (log once per streak) */
	struct event *poll;
	int64_t poll_ms;        /* the interval the poll timer runs at */
	struct wake_list wakes; /* pending */
	struct wake_list spare;
	int nwakes;
	struct metric *m_processed, *m_duration;
};

static void pump(struct process *p);
static void wake_cb(struct wheel_timer *t, void *arg);

static const char *
pev_state_name(enum pev_state s)
{
	static const char *const names[] = {
	    "queued", "running", "recording", "settling", "releasing", "done"};

	return names[s];
}

static void
pev_free(struct pev *e)
{
	free(e->slug);
	free(e->handler_json);
	free(e);
}

/*
 * The one place an event changes state: moves it between the queued and active lists
 * and keeps the counts. An impossible transition is a bug and aborts. PEV_DONE frees it.
 */
static void
set_state(struct pev *e, enum pev_state to)
{
	struct process *p = e->p;
	enum pev_state from = e->state;
	int ok;

	switch (from) {
	case PEV_QUEUED: ok = to == PEV_RUNNING || to == PEV_SETTLING || to == PEV_RELEASING; break;
	case PEV_RUNNING: ok = to == PEV_RECORDING || to == PEV_DONE; break;
	case PEV_RECORDING:
	case PEV_SETTLING:
	case PEV_RELEASING: ok = to == PEV_DONE; break;
	default: ok = 0; break;
	}
	if (!ok) {
		log_error("process: impossible transition %s -> %s for event %s",
		    pev_state_name(from), pev_state_name(to), e->id);
		abort();
	}
	if (from == PEV_QUEUED) {
		TAILQ_REMOVE(&p->queued, e, entry);
		p->nqueued--;
	} else {
		TAILQ_REMOVE(&p->active, e, entry);
		p->nactive--;
	}
	e->state = to;
	if (to == PEV_DONE) {
		pev_free(e);
		return;
	}
	TAILQ_INSERT_TAIL(&p->active, e, entry);
	p->nactive++;
}

/* Handler groups in flight at once: one pool connection is left for everybody else. */
static int
max_active(const struct process *p)
{
	int n = (int)p->app->cfg.db_pool_size - 1;

	return n < 1 ? 1 : n;
}

/* 1 when the worker may lease: the schema is current, the pool is up, not draining. */
static int
may_lease(const struct process *p)
{
	const struct app *app = p->app;

	return !app->draining && app->schema_version >= migrate_latest() &&
	       db_ready_count(app->db) > 0;
}

/* --- outcomes ----------------------------------------------------------------------- */

static const char *
metric_source(const struct pev *e)
{
	return e->slug != NULL ? e->slug : e->source_id;
}

/* Put a wake-up on the wheel delay_ms from now (shared with one due at the same time). */
static void
wake_at(struct process *p, int64_t delay_ms)
{
	uint64_t now = now_mono_ms(), due;
	struct wake *w;

	if (delay_ms < 0)
		delay_ms = 0;
	due = now + (uint64_t)delay_ms;
	due = (due + WAKE_GRANULE_MS - 1) / WAKE_GRANULE_MS * WAKE_GRANULE_MS;
	TAILQ_FOREACH(w, &p->wakes, entry)
	{
		if (w->due == due)
			return;
	}
	if (p->nwakes >= MAX_WAKES)
		return; /* the poll finds it, a little late */
	if ((w = TAILQ_FIRST(&p->spare)) != NULL)
		TAILQ_REMOVE(&p->spare, w, entry);
	else
		w = xcalloc(1, sizeof(*w));
	wheel_timer_init(&w->timer, wake_cb, w);
	w->p = p;
	w->due = due;
	TAILQ_INSERT_TAIL(&p->wakes, w, entry);
	p->nwakes++;
	wheel_driver_add(p->app->wheel, &w->timer, due - now);
}

/* A retry is due: lease. The wake goes back to the spare list, never freed here. */
static void
wake_cb(struct wheel_timer *t, void *arg)
{
	struct wake *w = arg;
	struct process *p = w->p;

	TAILQ_REMOVE(&p->wakes, w, entry);
	p->nwakes--;
	TAILQ_INSERT_HEAD(&p->spare, w, entry);
	p->again = 1;
	pump(p);
}

/* Count and log what an attempt's bookkeeping reported; schedule the retry wake. */
static void
attempt_outcome(struct pev *e, const PGresult *res, int have_error)
{
	struct process *p = e->p;
	const char *outcome = db_value(res, 0, 0), *attempt = db_value(res, 0, 1);
	const char *delay = db_value(res, 0, 2);
	const char *error = have_error ? db_value(res, 0, 3) : NULL;
	const char *dur = have_error ? db_value(res, 0, 4) : NULL;

	if (outcome == NULL) {
		log_error("process: event %s: no outcome from the database", e->id);
		return;
	}
	if (dur != NULL)
		metric_observe(p->m_duration, atof(dur) / 1000.0);
	if (strcmp(outcome, "lost") == 0) {
		log_warn("process: event %s: lease lost before it ran (taken over or reprocessed)",
		    e->id);
		return;
	}
	metric_add(p->m_processed, 1, metric_source(e), outcome);
	if (strcmp(outcome, "processed") == 0) {
		log_debug(
		    "process: event %s processed (attempt %s)", e->id, attempt ? attempt : "?");
	} else if (strcmp(outcome, "retry") == 0) {
		int64_t ms = delay != NULL ? atoll(delay) : 0;

		log_info("process: event %s attempt %s failed, retry in %lld ms: %s", e->id,
		    attempt ? attempt : "?", (long long)ms, error ? error : "(see event_logs)");
		wake_at(p, ms);
	} else {
		log_warn("process: event %s failed after %s attempt(s): %s", e->id,
		    attempt ? attempt : "?", error ? error : "(see event_logs)");
	}
}

static void
recorded_cb(const struct db_result *r, void *arg)
{
	struct pev *e = arg;
	struct process *p = e->p;

	e->req = NULL;
	if (r->status == DB_OK)
		attempt_outcome(e, r->res[0], 0);
	else
		log_warn("process: event %s: cannot record the failed attempt (%s); it runs again "
		         "when its lease expires",
		    e->id, r->error);
	set_state(e, PEV_DONE);
	pump(p);
}

/* The retry delays for a handler policy as a Postgres array: "{2000,4000}". */
static char *
delays_text(const struct source_handler *h)
{
	struct retry_policy pol = {0};
	size_t len = 3, off;
	char *buf;

	pol.max_retries = h->max_attempts - 1;
	pol.initial_s = h->backoff_s;
	pol.multiplier = h->multiplier;
	pol.max_delay_s = h->max_delay_s;
	pol.jitter = 0; /* the seeds' schedules are exact */
	if (pol.max_retries < 0)
		pol.max_retries = 0;
	len += (size_t)pol.max_retries * 21;
	buf = xmalloc(len);
	off = (size_t)snprintf(buf, len, "{");
	for (int retry = 1; retry <= pol.max_retries; retry++) {
		int64_t ms = backoff_delay_ms(&pol, retry, 0);

		if (ms < 0)
			break;
		off += (size_t)snprintf(
		    buf + off, len - off, "%s%lld", retry > 1 ? "," : "", (long long)ms);
	}
	snprintf(buf + off, len - off, "}");
	return buf;
}

/* The handler group failed as a whole (cancelled by statement_timeout, say): record it. */
static void
record_failure(struct pev *e, const struct source_handler *h, const char *error)
{
	struct process *p = e->p;
	struct db_params dp;
	char *delays = delays_text(h);

	set_state(e, PEV_RECORDING);
	db_params_init(&dp);
	db_param_text(&dp, e->id);
	db_param_text(&dp, p->app->instance);
	db_param_text(&dp, h->function);
	db_param_text(&dp, delays);
	db_param_text(&dp, error);
	e->req = db_query(p->app->db, failed_sql, &dp, recorded_cb, e);
	free(delays);
}

/* Re-parse the handler from the lease (cheap) rather than keep it per queued event. */
static int
pev_handler(const struct pev *e, struct source_handler *h, char *err, size_t errlen)
{
	struct json_object *cfg;
	int rc;

	if (e->handler_json == NULL) {
		snprintf(err, errlen, "no handler");
		memset(h, 0, sizeof(*h));
		return -1;
	}
	cfg = json_parse(e->handler_json, strlen(e->handler_json), err, errlen);
	if (cfg == NULL) {
		memset(h, 0, sizeof(*h));
		return -1;
	}
	rc = source_handler_parse(cfg, h, err, errlen);
	json_object_put(cfg);
	return rc;
}

static void
run_cb(const struct db_result *r, void *arg)
{
	struct pev *e = arg;
	struct process *p = e->p;
	struct source_handler h;
	char err[200];

	e->req = NULL;
	switch (r->status) {
	case DB_OK: attempt_outcome(e, r->res[0], 1); break;
	case DB_ERR_SQL:
		/* Not a handler error (those are caught inside): the whole group was refused. */
		if (pev_handler(e, &h, err, sizeof(err)) == 0) {
			log_warn("process: event %s: handler group failed: %s", e->id, r->error);
			record_failure(e, &h, r->error);
			source_handler_clear(&h);
			return;
		}
		log_error("process: event %s: %s", e->id, r->error);
		break;
	case DB_ERR_UNAVAILABLE:
	case DB_ERR_LOST:
		/* Unknown or not run: the lease expires and the event runs again (at least once).
		 */
		log_warn(
		    "process: event %s: %s; it runs again when its lease expires", e->id, r->error);
		break;
	}
	set_state(e, PEV_DONE);
	pump(p);
}

static void
settled_cb(const struct db_result *r, void *arg)
{
	struct pev *e = arg;
	struct process *p = e->p;

	e->req = NULL;
	if (r->status != DB_OK)
		log_warn("process: event %s: cannot settle it (%s); it is looked at again when its "
		         "lease expires",
		    e->id, r->error);
	set_state(e, PEV_DONE);
	pump(p);
}

/* No handler the worker runs: fail the event, or send it back to the review queue. */
static void
settle(struct pev *e, const char *status, const char *error, struct json_object *note)
{
	struct process *p = e->p;
	struct db_params dp;
	char *text = json_compact(note, NULL);

	json_object_put(note);
	set_state(e, PEV_SETTLING);
	if (strcmp(status, "failed") == 0) {
		log_warn("process: event %s failed: %s", e->id, error);
		metric_add(p->m_processed, 1, metric_source(e), "failed");
	} else {
		log_info("process: event %s: %s", e->id, error);
	}
	db_params_init(&dp);
	db_param_text(&dp, e->id);
	db_param_text(&dp, p->app->instance);
	db_param_text(&dp, status);
	db_param_text(&dp, error);
	db_param_text(&dp, text);
	e->req = db_query(p->app->db, unhandled_sql, &dp, settled_cb, e);
	free(text);
}

/* Start a queued event: run its handler, or settle it when none can run. */
static void
start(struct pev *e)
{
	struct process *p = e->p;
	struct source_handler h;
	struct json_object *note = json_object_new_object();
	struct db_params dp;
	char err[200], msg[300], *delays;

	if (e->slug == NULL) {
		snprintf(msg, sizeof(msg), "source %s no longer exists", e->source_id);
		json_set_str(note, "reason", "source_deleted");
		settle(e, "failed", msg, note);
		return;
	}
	if (pev_handler(e, &h, err, sizeof(err)) != 0) {
		snprintf(msg, sizeof(msg), "source %s: invalid handler: %s", e->slug, err);
		json_set_str(note, "reason", "invalid_handler");
		settle(e, "failed", msg, note);
		return;
	}
	switch (h.type) {
	case HANDLER_SQL:
	case HANDLER_SQL_SYNC:
		/* A sync handler's event here was reprocessed: its function runs like an async one.
		 */
		break;
	case HANDLER_STORE:
		snprintf(msg, sizeof(msg), "source %s stores only now: left for review", e->slug);
		json_set_str(note, "reason", "handler_store");
		settle(e, "pending", msg, note);
		source_handler_clear(&h);
		return;
	case HANDLER_PUBLISH:
		/* Published as an outbound message, with the same retries and logs. */
		break;
	}
	json_object_put(note);
	delays = delays_text(&h);
	set_state(e, PEV_RUNNING);
	db_params_init(&dp);
	db_param_text(&dp, e->id);
	db_param_text(&dp, p->app->instance);
	if (h.type == HANDLER_PUBLISH) {
		db_param_text(&dp, h.event_type);
		db_param_text(&dp, delays);
		e->req = db_query(p->app->db, publish_sql, &dp, run_cb, e);
	} else {
		db_param_text(&dp, h.function);
		db_param_text(&dp, e->slug);
		db_param_text(&dp, delays);
		e->req = db_query(p->app->db, run_sql, &dp, run_cb, e);
	}
	free(delays);
	source_handler_clear(&h);
}

static void
released_cb(const struct db_result *r, void *arg)
{
	struct pev *e = arg;

	e->req = NULL;
	if (r->status != DB_OK)
		log_warn("process: event %s: cannot hand it back (%s); its lease expires instead",
		    e->id, r->error);
	set_state(e, PEV_DONE);
}

static void
release(struct pev *e)
{
	struct process *p = e->p;
	struct db_params dp;

	set_state(e, PEV_RELEASING);
	db_params_init(&dp);
	db_param_text(&dp, e->id);
	db_param_text(&dp, p->app->instance);
	e->req = db_query(p->app->db, release_sql, &dp, released_cb, e);
}

/* --- leasing ------------------------------------------------------------------------ */

static void
lease_cb(const struct db_result *r, void *arg)
{
	struct process *p = arg;
	int rows;

	p->leasing = NULL;
	if (r->status != DB_OK) {
		if (!p->lease_failing)
			log_warn("process: cannot lease events: %s", r->error);
		p->lease_failing = 1;
		return; /* the next poll tries again */
	}
	if (p->lease_failing)
		log_info("process: leasing events again");
	p->lease_failing = 0;
	rows = db_rows(r->res[0]);
	for (int i = 0; i < rows; i++) {
		struct pev *e = xcalloc(1, sizeof(*e));
		const char *slug = db_value(r->res[0], i, 2), *handler = db_value(r->res[0], i, 3);

		e->p = p;
		e->state = PEV_QUEUED;
		snprintf(e->id, sizeof(e->id), "%s", db_value(r->res[0], i, 0));
		snprintf(e->source_id, sizeof(e->source_id), "%s", db_value(r->res[0], i, 1));
		e->slug = slug != NULL ? xstrdup(slug) : NULL;
		e->handler_json = handler != NULL ? xstrdup(handler) : NULL;
		TAILQ_INSERT_TAIL(&p->queued, e, entry);
		p->nqueued++;
	}
	if (rows > 0)
		log_debug("process: leased %d event(s)", rows);
	/* A full batch: more may be due. */
	if (rows >= p->want)
		p->again = 1;
	pump(p);
}

static void
lease(struct process *p, int want)
{
	struct db_params dp;

	p->again = 0;
	p->want = want;
	db_params_init(&dp);
	db_param_int(&dp, want);
	db_param_int(&dp, p->app->cfg.process_lease);
	db_param_text(&dp, p->app->instance);
	p->leasing = db_query(p->app->db, lease_sql, &dp, lease_cb, p);
}

/*
 * Move work along: hand queued events back when draining, start queued events while
 * there are handler slots, and lease more once the local queue has run dry.
 */
static void
pump(struct process *p)
{
	struct pev *e;
	int room;

	if (p->app->draining) {
		while ((e = TAILQ_FIRST(&p->queued)) != NULL)
			release(e);
		return;
	}
	while (p->nactive < max_active(p) && (e = TAILQ_FIRST(&p->queued)) != NULL)
		start(e);
	room = (int)p->app->cfg.process_batch - p->nqueued - p->nactive;
	if (p->again && p->leasing == NULL && p->nqueued == 0 && room > 0 && may_lease(p))
		lease(p, room);
}

static void
arm_poll(struct process *p)
{
	struct timeval tv;

	p->poll_ms = p->app->cfg.process_poll_interval;
	tv.tv_sec = (time_t)(p->poll_ms / 1000);
	tv.tv_usec = (suseconds_t)(p->poll_ms % 1000 * 1000);
	event_add(p->poll, &tv);
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct process *p = arg;

	if (p->poll_ms != p->app->cfg.process_poll_interval)
		arm_poll(p); /* reloaded */
	p->again = 1;
	pump(p);
}

/* --- public ------------------------------------------------------------------------- */

struct process *
process_new(struct app *app)
{
	struct process *p = xcalloc(1, sizeof(*p));

	p->app = app;
	TAILQ_INIT(&p->queued);
	TAILQ_INIT(&p->active);
	TAILQ_INIT(&p->wakes);
	TAILQ_INIT(&p->spare);
	p->m_processed = metric_counter("hookd_inbound_processed_total",
	    "Inbound events finished by the handler worker, by outcome (processed, retry, failed).",
	    "source,outcome");
	p->m_duration = metric_histogram("hookd_inbound_handler_duration_seconds",
	    "Time SQL handlers took, failed attempts included.", NULL, metrics_latency_buckets,
	    metrics_latency_nbuckets);
	p->poll = event_new(app->base, -1, EV_PERSIST, poll_cb, p);
	if (p->poll == NULL)
		hookd_assert_fail("event_new for the process poll", __FILE__, __LINE__);
	arm_poll(p);
	p->again = 1;
	return p;
}

void
process_free(struct process *p)
{
	struct pev *e;
	struct wake *w;

	if (p == NULL)
		return;
	if (p->leasing != NULL)
		db_cancel(p->leasing);
	while ((e = TAILQ_FIRST(&p->queued)) != NULL) {
		TAILQ_REMOVE(&p->queued, e, entry);
		pev_free(e);
	}
	while ((e = TAILQ_FIRST(&p->active)) != NULL) {
		TAILQ_REMOVE(&p->active, e, entry);
		if (e->req != NULL)
			db_cancel(e->req);
		pev_free(e);
	}
	while ((w = TAILQ_FIRST(&p->wakes)) != NULL) {
		TAILQ_REMOVE(&p->wakes, w, entry);
		wheel_cancel(&w->timer);
		free(w);
	}
	while ((w = TAILQ_FIRST(&p->spare)) != NULL) {
		TAILQ_REMOVE(&p->spare, w, entry);
		free(w);
	}
	event_free(p->poll);
	free(p);
}

void
process_kick(struct process *p)
{
	if (p == NULL)
		return;
	p->again = 1;
	pump(p);
}

int
process_busy(const struct process *p)
{
	return p != NULL ? p->nqueued + p->nactive : 0;
}
