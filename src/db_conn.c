/* SPDX-License-Identifier: ISC */
/* One asynchronous libpq connection: resolve, connect, time out, back off, watch the socket. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "hookd/db.h"
#include "hookd/db_conn.h"
#include "hookd/log.h"

#define MAX_ADDRS_PER_HOST 8

/* One evdns lookup; outlives its connection when abandoned (c == NULL). */
struct lookup {
	struct db_conn *c;
	struct evdns_getaddrinfo_request *req;
	int host;
	struct lookup *next;
};

struct db_conn {
	struct event_base *base;
	struct evdns_base *dns;
	char *label;
	char *describe;
	struct db_conn_cbs cbs;
	void *arg;

	/* Parameters other than host, hostaddr and port, NULL-terminated. */
	char **keys, **vals;
	/* The host list split at commas, which entries need DNS, the raw lists. */
	int nhosts;
	char **hosts;
	int *needs_dns;
	int ndns;
	char *host, *hostaddr, *port;
	int nports;
	char **ports;

	int connect_timeout_ms, reconnect_min_ms, reconnect_max_ms;
	int retry;

	enum db_conn_state state;
	PGconn *pq;
	struct event *io, *timer, *defer;
	int io_fd;
	short io_flags;
	int want_write; /* PQflush returned 1: watch for write too */
	int failing;    /* db_conn_fail or a flush error is pending in defer */
	int input_due;  /* libpq may hold unread input: run input_cb from defer */
	char *fail_err;
	int backoff_ms; /* the last delay, 0 after a success */
	int failures;   /* consecutive failed attempts */

	struct lookup *lookups;
	int pending; /* lookups outstanding */
	struct evutil_addrinfo **addrs;
	char *resolve_err;
};

static const char *const state_names[] = {"idle", "resolving", "connecting", "ready", "backoff"};

/* Allowed transitions, one bit per target state. */
static const unsigned transitions[] = {
    [DB_CONN_IDLE] = 1u << DB_CONN_BACKOFF,
    [DB_CONN_RESOLVING] = 1u << DB_CONN_CONNECTING | 1u << DB_CONN_BACKOFF | 1u << DB_CONN_IDLE,
    [DB_CONN_CONNECTING] = 1u << DB_CONN_READY | 1u << DB_CONN_BACKOFF | 1u << DB_CONN_IDLE,
    [DB_CONN_READY] = 1u << DB_CONN_BACKOFF | 1u << DB_CONN_IDLE,
    [DB_CONN_BACKOFF] = 1u << DB_CONN_BACKOFF | 1u << DB_CONN_RESOLVING | 1u << DB_CONN_CONNECTING |
                        1u << DB_CONN_IDLE,
};

static void io_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void defer_cb(evutil_socket_t fd, short what, void *arg);
static void attempt(struct db_conn *c);

static void
set_state(struct db_conn *c, enum db_conn_state to)
{
	if (c->state == to && to == DB_CONN_IDLE)
		return;
	if (!(transitions[c->state] & (1u << to))) {
		log_error("db %s: impossible transition %s -> %s", c->label, state_names[c->state],
		    state_names[to]);
		abort();
	}
	c->state = to;
}

/* libpq messages end in newlines and may span lines: one line, single spaces. */
static char *
clean_error(const char *msg)
{
	const char *p = msg != NULL && msg[0] != '\0' ? msg : "unknown error";
	char *s = xmalloc(strlen(p) + 1), *w = s;

	for (; *p != '\0'; p++) {
		int space = *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t';

		if (space && (w == s || w[-1] == ' '))
			continue;
		*w++ = space ? ' ' : *p;
	}
	while (w > s && w[-1] == ' ')
		w--;
	*w = '\0';
	return s;
}

static char **
split_list(const char *s, int *n)
{
	char **v = NULL;
	int count = 0;
	const char *p = s;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

		v = xrealloc(v, (size_t)(count + 1) * sizeof(*v));
		v[count++] = xstrndup(p, len);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*n = count;
	return v;
}

static void
free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Empty (libpq's default), a socket directory, an abstract socket or an address. */
static int
host_needs_dns(const char *h)
{
	return h[0] != '\0' && h[0] != '/' && h[0] != '@' && !is_ip_literal(h);
}

static void
params_add(char ***keys, char ***vals, int *n, const char *k, const char *v)
{
	*keys = xrealloc(*keys, (size_t)(*n + 2) * sizeof(char *));
	*vals = xrealloc(*vals, (size_t)(*n + 2) * sizeof(char *));
	(*keys)[*n] = xstrdup(k);
	(*vals)[*n] = xstrdup(v);
	(*n)++;
	(*keys)[*n] = NULL;
	(*vals)[*n] = NULL;
}

void
db_conn_params_free(char **keys, char **vals)
{
	for (int i = 0; keys != NULL && keys[i] != NULL; i++) {
		free(keys[i]);
		free(vals[i]);
	}
	free(keys);
	free(vals);
}

int
db_conn_params(const struct db_options *opt, char ***keysp, char ***valsp, char **err)
{
	static const char *const keepalive[][2] = {{"keepalives", "1"}, {"keepalives_idle", "10"},
	    {"keepalives_interval", "5"}, {"keepalives_count", "3"}};
	PQconninfoOption *info, *o;
	char *perr = NULL, **keys = NULL, **vals = NULL;
	const char *options = NULL, *appname = NULL;
	int n = 0;

	*err = NULL;
	info = PQconninfoParse(opt->conninfo != NULL ? opt->conninfo : "", &perr);
	if (info == NULL) {
		*err = perr != NULL ? clean_error(perr) : xstrdup("out of memory");
		PQfreemem(perr);
		return -1;
	}
	for (o = info; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		/* hookd enforces its own connect timeout, DNS included. */
		if (strcmp(o->keyword, "connect_timeout") == 0)
			continue;
		if (strcmp(o->keyword, "options") == 0) {
			options = o->val;
			continue;
		}
		if (strcmp(o->keyword, "application_name") == 0) {
			appname = o->val;
			continue;
		}
		params_add(&keys, &vals, &n, o->keyword, o->val);
	}
	/* The conninfo's own application_name wins over hookd's default. */
	if (appname == NULL)
		appname = opt->application_name;
	if (appname != NULL && appname[0] != '\0')
		params_add(&keys, &vals, &n, "application_name", appname);
	if (opt->statement_timeout_ms > 0) {
		char *s = xasprintf("%s%s-c statement_timeout=%d", options ? options : "",
		    options && options[0] ? " " : "", opt->statement_timeout_ms);

		params_add(&keys, &vals, &n, "options", s);
		free(s);
	} else if (options != NULL) {
		params_add(&keys, &vals, &n, "options", options);
	}
	for (size_t i = 0; i < ARRAY_SIZE(keepalive); i++) {
		int set = 0;

		for (o = info; o->keyword != NULL; o++) {
			if (o->val != NULL && strcmp(o->keyword, keepalive[i][0]) == 0)
				set = 1;
		}
		if (!set)
			params_add(&keys, &vals, &n, keepalive[i][0], keepalive[i][1]);
	}
	PQconninfoFree(info);
	if (keys == NULL) {
		keys = xcalloc(1, sizeof(char *));
		vals = xcalloc(1, sizeof(char *));
	}
	*keysp = keys;
	*valsp = vals;
	return 0;
}

/* Move host, hostaddr and port out of the parameter list (environment as libpq's fallback). */
static void
take_host_params(struct db_conn *c)
{
	int w = 0;

	for (int r = 0; c->keys[r] != NULL; r++) {
		char **slot = NULL;

		if (strcmp(c->keys[r], "host") == 0)
			slot = &c->host;
		else if (strcmp(c->keys[r], "hostaddr") == 0)
			slot = &c->hostaddr;
		else if (strcmp(c->keys[r], "port") == 0)
			slot = &c->port;
		if (slot != NULL) {
			free(*slot);
			*slot = c->vals[r];
			free(c->keys[r]);
			continue;
		}
		c->keys[w] = c->keys[r];
		c->vals[w] = c->vals[r];
		w++;
	}
	c->keys[w] = NULL;
	c->vals[w] = NULL;
	if (c->host == NULL && getenv("PGHOST") != NULL)
		c->host = xstrdup(getenv("PGHOST"));
	if (c->hostaddr == NULL && getenv("PGHOSTADDR") != NULL)
		c->hostaddr = xstrdup(getenv("PGHOSTADDR"));
	if (c->port == NULL && getenv("PGPORT") != NULL)
		c->port = xstrdup(getenv("PGPORT"));
}

static void
make_description(struct db_conn *c)
{
	static const char *const shown[] = {"dbname", "user"};
	char buf[512];
	size_t n = 0;

	buf[0] = '\0';
	if (c->host != NULL)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "host=%s ", c->host);
	if (c->hostaddr != NULL && n < sizeof(buf))
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "hostaddr=%s ", c->hostaddr);
	if (c->port != NULL && n < sizeof(buf))
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "port=%s ", c->port);
	for (int i = 0; c->keys[i] != NULL && n < sizeof(buf); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(shown); j++) {
			if (strcmp(c->keys[i], shown[j]) == 0 && n < sizeof(buf))
				n += (size_t)snprintf(
				    buf + n, sizeof(buf) - n, "%s=%s ", c->keys[i], c->vals[i]);
		}
	}
	if (n > 0 && n < sizeof(buf))
		buf[n - 1] = '\0';
	c->describe = xstrdup(buf);
}

struct db_conn *
db_conn_create(struct event_base *base, struct evdns_base *dns, const struct db_options *opt,
    const char *label, const struct db_conn_cbs *cbs, void *arg, char **err)
{
	struct db_conn *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->dns = dns;
	c->label = xstrdup(label);
	c->cbs = *cbs;
	c->arg = arg;
	c->retry = 1;
	c->io_fd = -1;
	if (db_conn_params(opt, &c->keys, &c->vals, err) < 0)
		goto fail;
	take_host_params(c);
	make_description(c);
	/* A given hostaddr means no DNS at all; otherwise resolve every host name. */
	if (c->hostaddr == NULL && c->host != NULL) {
		c->hosts = split_list(c->host, &c->nhosts);
		c->needs_dns = xcalloc((size_t)c->nhosts, sizeof(int));
		for (int i = 0; i < c->nhosts; i++) {
			c->needs_dns[i] = host_needs_dns(c->hosts[i]);
			c->ndns += c->needs_dns[i];
		}
		if (c->port != NULL)
			c->ports = split_list(c->port, &c->nports);
		if (c->ndns > 0 && c->nports > 1 && c->nports != c->nhosts) {
			*err = xasprintf(
			    "could not match %d port numbers to %d hosts", c->nports, c->nhosts);
			goto fail;
		}
		c->addrs = xcalloc((size_t)c->nhosts, sizeof(*c->addrs));
	}
	c->io = event_new(base, -1, 0, io_cb, c);
	c->timer = evtimer_new(base, timer_cb, c);
	c->defer = event_new(base, -1, 0, defer_cb, c);
	db_conn_set_options(c, opt);
	return c;
fail:
	db_conn_free(c);
	return NULL;
}

void
db_conn_set_options(struct db_conn *c, const struct db_options *opt)
{
	c->connect_timeout_ms = opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : 5000;
	c->reconnect_min_ms = opt->reconnect_min_ms > 0 ? opt->reconnect_min_ms : 100;
	c->reconnect_max_ms = opt->reconnect_max_ms >= c->reconnect_min_ms ? opt->reconnect_max_ms
	                                                                   : c->reconnect_min_ms;
}

void
db_conn_set_retry(struct db_conn *c, int retry)
{
	c->retry = retry;
}

enum db_conn_state
db_conn_state(const struct db_conn *c)
{
	return c->state;
}

PGconn *
db_conn_pq(const struct db_conn *c)
{
	return c->state == DB_CONN_READY && !c->failing ? c->pq : NULL;
}

const char *
db_conn_label(const struct db_conn *c)
{
	return c->label;
}

const char *
db_conn_describe(const struct db_conn *c)
{
	return c->describe;
}

/* Watch fd for flags; the event is re-made whenever the socket or the interest changes. */
static void
arm_io(struct db_conn *c, int fd, short flags)
{
	if (c->io_fd == fd && c->io_flags == flags &&
	    event_pending(c->io, EV_READ | EV_WRITE, NULL))
		return;
	event_del(c->io);
	event_assign(c->io, c->base, fd, flags, io_cb, c);
	c->io_fd = fd;
	c->io_flags = flags;
	event_add(c->io, NULL);
}

static void
disarm_io(struct db_conn *c)
{
	event_del(c->io);
	c->io_fd = -1;
	c->io_flags = 0;
}

static void
arm_timer(struct db_conn *c, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(c->timer, &tv);
}

static void
cancel_lookups(struct db_conn *c)
{
	struct lookup *lk = c->lookups;

	c->lookups = NULL;
	c->pending = 0;
	while (lk != NULL) {
		struct lookup *next = lk->next;

		/* The callback still runs (EVUTIL_EAI_CANCEL) and frees lk. */
		lk->c = NULL;
		evdns_getaddrinfo_cancel(lk->req);
		lk = next;
	}
	for (int i = 0; c->addrs != NULL && i < c->nhosts; i++) {
		if (c->addrs[i] != NULL)
			evutil_freeaddrinfo(c->addrs[i]);
		c->addrs[i] = NULL;
	}
	free(c->resolve_err);
	c->resolve_err = NULL;
}

/* Drop the socket, the lookups and the timer; the state is the caller's business. */
static void
close_conn(struct db_conn *c)
{
	if (c->io != NULL) {
		disarm_io(c);
		event_del(c->timer);
		event_del(c->defer);
	}
	cancel_lookups(c);
	if (c->pq != NULL) {
		/* Non-blocking: PQfinish only tries to send Terminate. */
		PQfinish(c->pq);
		c->pq = NULL;
	}
	c->want_write = 0;
	c->input_due = 0;
	c->failing = 0;
	free(c->fail_err);
	c->fail_err = NULL;
}

/* The next delay: reconnect_min doubling up to reconnect_max, then +-20% jitter. */
static int
next_delay(struct db_conn *c)
{
	int d;

	if (c->backoff_ms <= 0)
		c->backoff_ms = c->reconnect_min_ms;
	else if (c->backoff_ms >= c->reconnect_max_ms / 2)
		c->backoff_ms = c->reconnect_max_ms;
	else
		c->backoff_ms *= 2;
	d = c->backoff_ms;
	return d - d / 5 + (int)random_below((uint32_t)(2 * (d / 5)) + 1);
}

/* Server notices go to our log, not to libpq's default of stderr. */
static void
notice_cb(void *arg, const PGresult *res)
{
	struct db_conn *c = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	char *msg = clean_error(PQresultErrorMessage(res));

	if (sev != NULL && (strcmp(sev, "WARNING") == 0 || strcmp(sev, "ERROR") == 0 ||
	                       strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		log_warn("db %s: server says: %s", c->label, msg);
	else
		log_debug("db %s: server says: %s", c->label, msg);
	free(msg);
}

/* An attempt failed or a ready connection broke: close, schedule the next try, tell. */
static void
go_down(struct db_conn *c, const char *why)
{
	int was_ready = c->state == DB_CONN_READY;
	char *err = clean_error(why);

	close_conn(c);
	c->failures++;
	if (c->retry) {
		int delay = next_delay(c);

		set_state(c, DB_CONN_BACKOFF);
		arm_timer(c, delay);
		if (was_ready || c->failures == 1)
			log_warn("db %s: %s (%s); retrying in %d ms", c->label,
			    was_ready ? "connection lost" : "connect failed", err, delay);
		else
			log_debug("db %s: connect failed (%s); attempt %d, retrying in %d ms",
			    c->label, err, c->failures, delay);
	} else {
		set_state(c, DB_CONN_IDLE);
		log_warn("db %s: %s (%s)", c->label,
		    was_ready ? "connection lost" : "connect failed", err);
	}
	if (c->cbs.down_cb != NULL)
		c->cbs.down_cb(c, was_ready, err, c->arg);
	free(err);
}

/* The one timer: the connect deadline while connecting, the back-off delay otherwise. */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	char *msg;

	switch (c->state) {
	case DB_CONN_BACKOFF: attempt(c); break;
	case DB_CONN_RESOLVING:
	case DB_CONN_CONNECTING:
		msg = xasprintf("timeout after %d ms%s", c->connect_timeout_ms,
		    c->state == DB_CONN_RESOLVING ? " resolving the host name" : "");
		go_down(c, msg);
		free(msg);
		break;
	default: break;
	}
}

static void
connected(struct db_conn *c)
{
	event_del(c->timer);
	if (PQsetnonblocking(c->pq, 1) != 0) {
		go_down(c, PQerrorMessage(c->pq));
		return;
	}
	if (c->failures > 0)
		log_info("db %s: connected to %s (after %d failed attempt%s)", c->label,
		    c->describe, c->failures, c->failures == 1 ? "" : "s");
	else
		log_debug("db %s: connected to %s", c->label, c->describe);
	c->failures = 0;
	c->backoff_ms = 0;
	set_state(c, DB_CONN_READY);
	arm_io(c, PQsocket(c->pq), EV_READ | EV_PERSIST);
	if (c->cbs.ready_cb != NULL)
		c->cbs.ready_cb(c, c->arg);
}

/* One PQconnectPoll step, then wait on whatever socket libpq holds now. */
static void
connect_poll(struct db_conn *c)
{
	PostgresPollingStatusType st;

	/* The socket may change between hosts and SSL attempts: never keep watching it. */
	disarm_io(c);
	st = PQconnectPoll(c->pq);
	switch (st) {
	case PGRES_POLLING_READING: arm_io(c, PQsocket(c->pq), EV_READ); break;
	case PGRES_POLLING_WRITING: arm_io(c, PQsocket(c->pq), EV_WRITE); break;
	case PGRES_POLLING_OK: connected(c); break;
	default: go_down(c, PQerrorMessage(c->pq)); break;
	}
}

static void
strv_add(char **s, const char *v)
{
	char *n = xasprintf("%s%s%s", *s != NULL ? *s : "", *s != NULL ? "," : "", v);

	free(*s);
	*s = n;
}

/* Start libpq on the host list, with resolved addresses in hostaddr when there are any. */
static void
start_connect(struct db_conn *c)
{
	char **keys, **vals, *host = NULL, *hostaddr = NULL, *port = NULL;
	int n = 0;

	if (c->ndns > 0) {
		for (int i = 0; i < c->nhosts; i++) {
			const char *p = c->nports > 1 ? c->ports[i] : NULL;

			if (!c->needs_dns[i]) {
				strv_add(&host, c->hosts[i]);
				strv_add(&hostaddr, is_ip_literal(c->hosts[i]) ? c->hosts[i] : "");
				if (p != NULL)
					strv_add(&port, p);
				continue;
			}
			for (struct evutil_addrinfo *ai = c->addrs[i]; ai != NULL;
			     ai = ai->ai_next) {
				char text[INET6_ADDRSTRLEN];
				const void *a;

				if (ai->ai_family == AF_INET)
					a = &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr;
				else if (ai->ai_family == AF_INET6)
					a = &((struct sockaddr_in6 *)(void *)ai->ai_addr)
					         ->sin6_addr;
				else
					continue;
				if (evutil_inet_ntop(ai->ai_family, a, text, sizeof(text)) == NULL)
					continue;
				strv_add(&host, c->hosts[i]);
				strv_add(&hostaddr, text);
				if (p != NULL)
					strv_add(&port, p);
			}
		}
		if (host == NULL) {
			char *msg = xasprintf("could not resolve %s: %s", c->host,
			    c->resolve_err ? c->resolve_err : "no address");

			go_down(c, msg);
			free(msg);
			return;
		}
		if (port == NULL && c->port != NULL)
			port = xstrdup(c->port);
	} else {
		host = c->host ? xstrdup(c->host) : NULL;
		hostaddr = c->hostaddr ? xstrdup(c->hostaddr) : NULL;
		port = c->port ? xstrdup(c->port) : NULL;
	}
	while (c->keys[n] != NULL)
		n++;
	keys = xcalloc((size_t)n + 4, sizeof(char *));
	vals = xcalloc((size_t)n + 4, sizeof(char *));
	memcpy(keys, c->keys, (size_t)n * sizeof(char *));
	memcpy(vals, c->vals, (size_t)n * sizeof(char *));
	if (host != NULL) {
		keys[n] = "host";
		vals[n++] = host;
	}
	if (hostaddr != NULL) {
		keys[n] = "hostaddr";
		vals[n++] = hostaddr;
	}
	if (port != NULL) {
		keys[n] = "port";
		vals[n++] = port;
	}
	cancel_lookups(c);
	set_state(c, DB_CONN_CONNECTING);
	c->pq = PQconnectStartParams((const char *const *)keys, (const char *const *)vals, 0);
	free(keys);
	free(vals);
	free(host);
	free(hostaddr);
	free(port);
	if (c->pq == NULL) {
		go_down(c, "out of memory");
		return;
	}
	if (PQstatus(c->pq) == CONNECTION_BAD) {
		go_down(c, PQerrorMessage(c->pq));
		return;
	}
	PQsetNoticeReceiver(c->pq, notice_cb, c);
	/* Until the first poll, libpq waits as if PQconnectPoll had said WRITING. */
	arm_io(c, PQsocket(c->pq), EV_WRITE);
}

static void
lookup_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct lookup *lk = arg, **pp;
	struct db_conn *c = lk->c;

	if (c == NULL) {
		/* Abandoned by cancel_lookups. */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		free(lk);
		return;
	}
	for (pp = &c->lookups; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == lk) {
			*pp = lk->next;
			break;
		}
	}
	if (result == 0) {
		c->addrs[lk->host] = res;
	} else {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		if (c->resolve_err == NULL)
			c->resolve_err = xstrdup(evutil_gai_strerror(result));
	}
	free(lk);
	if (--c->pending == 0)
		start_connect(c);
}

/* Resolve every host name on the evdns base; answers may come back synchronously. */
static void
start_resolve(struct db_conn *c)
{
	struct evutil_addrinfo hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	set_state(c, DB_CONN_RESOLVING);
	c->pending = 1; /* held until every lookup is launched */
	for (int i = 0; i < c->nhosts; i++) {
		struct lookup *lk;
		struct evdns_getaddrinfo_request *r;

		if (!c->needs_dns[i])
			continue;
		lk = xcalloc(1, sizeof(*lk));
		lk->c = c;
		lk->host = i;
		lk->next = c->lookups;
		c->lookups = lk;
		c->pending++;
		r = evdns_getaddrinfo(c->dns, c->hosts[i], NULL, &hints, lookup_cb, lk);
		/* NULL: the callback ran already and lk is gone. */
		if (r != NULL)
			lk->req = r;
	}
	if (--c->pending == 0)
		start_connect(c);
}

static void
attempt(struct db_conn *c)
{
	arm_timer(c, c->connect_timeout_ms);
	if (c->ndns > 0 && c->dns == NULL) {
		go_down(c, "a host name needs resolving but there is no evdns base");
		return;
	}
	if (c->ndns > 0)
		start_resolve(c);
	else
		start_connect(c);
}

/* Deferred work: a failure the owner reported, or an input pass libpq's buffering needs. */
static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	if (c->state != DB_CONN_READY)
		return;
	if (c->failing) {
		char *err = c->fail_err;

		c->fail_err = NULL;
		go_down(c, err);
		free(err);
		return;
	}
	if (c->input_due) {
		c->input_due = 0;
		if (c->cbs.input_cb != NULL)
			c->cbs.input_cb(c, c->arg);
		if (c->state == DB_CONN_READY && !c->failing && PQstatus(c->pq) == CONNECTION_BAD)
			go_down(c, PQerrorMessage(c->pq));
	}
}

void
db_conn_fail(struct db_conn *c, const char *err)
{
	if (c->state != DB_CONN_READY || c->failing)
		return;
	c->failing = 1;
	c->fail_err = xstrdup(err);
	event_active(c->defer, EV_TIMEOUT, 1);
}

void
db_conn_flush(struct db_conn *c)
{
	int r;

	if (c->state != DB_CONN_READY || c->failing)
		return;
	r = PQflush(c->pq);
	if (r < 0) {
		db_conn_fail(c, PQerrorMessage(c->pq));
		return;
	}
	c->want_write = r == 1;
	arm_io(c, PQsocket(c->pq), EV_READ | EV_PERSIST | (c->want_write ? EV_WRITE : 0));
	/*
	 * A flush that cannot finish makes libpq read whatever the server sent (so that
	 * neither side blocks the other), and that input no longer wakes the socket: when
	 * results are complete, read them on the next loop pass rather than never.
	 */
	if (!c->input_due && !PQisBusy(c->pq)) {
		c->input_due = 1;
		event_active(c->defer, EV_TIMEOUT, 1);
	}
}

static void
io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	if (c->state == DB_CONN_CONNECTING) {
		connect_poll(c);
		return;
	}
	if (c->state != DB_CONN_READY || c->failing)
		return;
	if ((what & EV_READ) && !PQconsumeInput(c->pq)) {
		go_down(c, PQerrorMessage(c->pq));
		return;
	}
	if (c->want_write) {
		int r = PQflush(c->pq);

		if (r < 0) {
			go_down(c, PQerrorMessage(c->pq));
			return;
		}
		if (r == 0) {
			c->want_write = 0;
			arm_io(c, PQsocket(c->pq), EV_READ | EV_PERSIST);
		}
	}
	/* After a write too: flushing may have pulled input into libpq's buffer. */
	c->input_due = 0;
	if (c->cbs.input_cb != NULL)
		c->cbs.input_cb(c, c->arg);
	if (c->state == DB_CONN_READY && !c->failing && PQstatus(c->pq) == CONNECTION_BAD)
		go_down(c, PQerrorMessage(c->pq));
}

void
db_conn_start(struct db_conn *c)
{
	if (c->state != DB_CONN_IDLE && c->state != DB_CONN_BACKOFF)
		return;
	/* From the loop, so that no callback runs inside this call. */
	set_state(c, DB_CONN_BACKOFF);
	arm_timer(c, 0);
}

void
db_conn_stop(struct db_conn *c)
{
	close_conn(c);
	set_state(c, DB_CONN_IDLE);
}

void
db_conn_free(struct db_conn *c)
{
	if (c == NULL)
		return;
	close_conn(c);
	if (c->io != NULL)
		event_free(c->io);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->defer != NULL)
		event_free(c->defer);
	db_conn_params_free(c->keys, c->vals);
	free_list(c->hosts, c->nhosts);
	free_list(c->ports, c->nports);
	free(c->needs_dns);
	free(c->addrs);
	free(c->host);
	free(c->hostaddr);
	free(c->port);
	free(c->label);
	free(c->describe);
	free(c);
}
