/* SPDX-License-Identifier: ISC */
/* The LISTEN connection: dispatches notifications, re-LISTENs and catches up after reconnect. */
#include "config.h"

#include <string.h>

#include <event2/event.h>

#include "hookd/db.h"
#include "hookd/db_conn.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/metrics.h"

/*
 * The connection stays out of pipeline mode: it only ever runs LISTEN commands, one
 * simple query at a time, from a small queue. After every (re)connect one query LISTENs
 * on every channel; when its results are in, the on-connect hooks run, so a subscriber
 * that catches up from there cannot miss a notification sent after that point.
 */

struct listen_sub {
	struct listen_sub *next;
	char *channel;
	listen_cb cb;
	void *arg;
};

struct listen_hook {
	struct listen_hook *next;
	void (*cb)(void *arg);
	void *arg;
};

/* A LISTEN query waiting to be sent, or in flight when it is the head and busy is set. */
struct listen_cmd {
	struct listen_cmd *next;
	char *sql;
	int initial; /* the after-connect query: run the hooks when it completes */
};

struct db_listen {
	struct db_conn *conn;
	struct listen_sub *subs;
	struct listen_hook *hooks;
	struct listen_cmd *cmds;
	int busy;      /* the head of cmds is in flight */
	int connected; /* every LISTEN is in place */
	int in_cb;
};

static struct metric *m_notifications;

static void
cmds_clear(struct db_listen *l)
{
	while (l->cmds != NULL) {
		struct listen_cmd *c = l->cmds;

		l->cmds = c->next;
		free(c->sql);
		free(c);
	}
	l->busy = 0;
}

static void
cmd_push(struct db_listen *l, char *sql, int initial)
{
	struct listen_cmd *c = xcalloc(1, sizeof(*c)), **pp = &l->cmds;

	c->sql = sql;
	c->initial = initial;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = c;
}

/* Send the head of the queue unless a query is in flight already. */
static void
cmd_kick(struct db_listen *l)
{
	PGconn *pq = db_conn_pq(l->conn);

	if (pq == NULL || l->busy || l->cmds == NULL)
		return;
	if (!PQsendQuery(pq, l->cmds->sql)) {
		db_conn_fail(l->conn, PQerrorMessage(pq));
		return;
	}
	l->busy = 1;
	db_conn_flush(l->conn);
}

/* "LISTEN name" with the channel quoted as an identifier; NULL when libpq refuses. */
static char *
listen_sql(PGconn *pq, const char *channel)
{
	char *id = PQescapeIdentifier(pq, channel, strlen(channel)), *sql;

	if (id == NULL)
		return NULL;
	sql = xasprintf("LISTEN %s", id);
	PQfreemem(id);
	return sql;
}

static int
channel_seen_before(const struct db_listen *l, const struct listen_sub *upto)
{
	for (const struct listen_sub *s = l->subs; s != upto; s = s->next) {
		if (strcmp(s->channel, upto->channel) == 0)
			return 1;
	}
	return 0;
}

static void
run_hooks(struct db_listen *l)
{
	l->in_cb++;
	for (struct listen_hook *h = l->hooks; h != NULL; h = h->next)
		h->cb(h->arg);
	l->in_cb--;
}

static void
ready_cb(struct db_conn *c, void *arg)
{
	struct db_listen *l = arg;
	PGconn *pq = db_conn_pq(c);
	char *sql = NULL;

	cmds_clear(l);
	for (struct listen_sub *s = l->subs; s != NULL; s = s->next) {
		char *one, *joined;

		if (channel_seen_before(l, s))
			continue;
		one = listen_sql(pq, s->channel);
		if (one == NULL) {
			log_error("db listen: cannot quote channel %s: %s", s->channel,
			    PQerrorMessage(pq));
			continue;
		}
		joined = xasprintf("%s%s%s", sql ? sql : "", sql ? "; " : "", one);
		free(one);
		free(sql);
		sql = joined;
	}
	if (sql == NULL) {
		l->connected = 1;
		run_hooks(l);
		return;
	}
	cmd_push(l, sql, 1);
	cmd_kick(l);
}

static void
dispatch_notifies(struct db_listen *l, PGconn *pq)
{
	PGnotify *n;

	while (db_conn_pq(l->conn) != NULL && (n = PQnotifies(pq)) != NULL) {
		metric_add(m_notifications, 1, n->relname);
		l->in_cb++;
		for (struct listen_sub *s = l->subs; s != NULL; s = s->next) {
			if (strcmp(s->channel, n->relname) == 0)
				s->cb(n->relname, n->extra, s->arg);
		}
		l->in_cb--;
		PQfreemem(n);
	}
}

static void
input_cb(struct db_conn *c, void *arg)
{
	struct db_listen *l = arg;
	PGconn *pq = db_conn_pq(c);

	if (pq == NULL)
		return;
	dispatch_notifies(l, pq);
	while (l->busy && db_conn_pq(c) != NULL && !PQisBusy(pq)) {
		PGresult *res = PQgetResult(pq);
		struct listen_cmd *cmd = l->cmds;

		if (res != NULL) {
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				log_error("db listen: %s failed: %s", cmd->sql,
				    PQresultErrorMessage(res));
			PQclear(res);
			continue;
		}
		/* The query is complete. */
		l->cmds = cmd->next;
		l->busy = 0;
		if (cmd->initial) {
			l->connected = 1;
			log_info("db listen: listening");
			run_hooks(l);
		}
		free(cmd->sql);
		free(cmd);
		cmd_kick(l);
	}
	if (db_conn_pq(c) != NULL)
		dispatch_notifies(l, pq);
}

static void
down_cb(struct db_conn *c, int was_ready, const char *err, void *arg)
{
	struct db_listen *l = arg;

	cmds_clear(l);
	l->connected = 0;
}

struct db_listen *
listen_create(struct event_base *base, struct evdns_base *dns, const struct db_options *opt)
{
	static const struct db_conn_cbs cbs = {ready_cb, input_cb, down_cb};
	struct db_listen *l = xcalloc(1, sizeof(*l));
	char *err = NULL;

	if (m_notifications == NULL)
		m_notifications = metric_counter("hookd_db_notifications_total",
		    "Notifications received on the LISTEN connection.", "channel");
	l->conn = db_conn_create(base, dns, opt, "listen", &cbs, l, &err);
	if (l->conn == NULL) {
		log_error("db listen: bad connection string: %s", err);
		free(err);
		free(l);
		return NULL;
	}
	return l;
}

void
listen_subscribe(struct db_listen *l, const char *channel, listen_cb cb, void *arg)
{
	struct listen_sub *s = xcalloc(1, sizeof(*s)), **pp = &l->subs;
	PGconn *pq;

	s->channel = xstrdup(channel);
	s->cb = cb;
	s->arg = arg;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = s;
	/* Not connected yet: the after-connect query will include it. */
	pq = db_conn_pq(l->conn);
	if (pq != NULL && !channel_seen_before(l, s)) {
		char *sql = listen_sql(pq, channel);

		if (sql == NULL) {
			log_error(
			    "db listen: cannot quote channel %s: %s", channel, PQerrorMessage(pq));
			return;
		}
		cmd_push(l, sql, 0);
		cmd_kick(l);
	}
}

void
listen_on_connect(struct db_listen *l, void (*cb)(void *arg), void *arg)
{
	struct listen_hook *h = xcalloc(1, sizeof(*h)), **pp = &l->hooks;

	h->cb = cb;
	h->arg = arg;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = h;
}

void
listen_start(struct db_listen *l)
{
	db_conn_start(l->conn);
}

int
listen_connected(const struct db_listen *l)
{
	return l->connected;
}

void
listen_free(struct db_listen *l)
{
	if (l == NULL)
		return;
	if (l->in_cb > 0) {
		log_error("listen_free called from inside a listen callback");
		abort();
	}
	db_conn_free(l->conn);
	cmds_clear(l);
	while (l->subs != NULL) {
		struct listen_sub *s = l->subs;

		l->subs = s->next;
		free(s->channel);
		free(s);
	}
	while (l->hooks != NULL) {
		struct listen_hook *h = l->hooks;

		l->hooks = h->next;
		free(h);
	}
	free(l);
}
