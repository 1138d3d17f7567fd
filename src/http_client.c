/* SPDX-License-Identifier: ISC */
/* Outbound HTTP/1.1 client on bufferevents: async DNS, SSRF guard, TLS, keep-alive pool. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "hookd/http_client.h"
#include "hookd/http_parse.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/netguard.h"

#define MAX_ADDRS          8     /* resolved addresses tried per connection */
#define MAX_HEADER_BYTES   65536 /* status line and headers of a response */
#define DEFAULT_MAX_BODY   16384
#define DEFAULT_PER_ORIGIN 8
#define DEFAULT_IDLE_MS    60000
#define ERR_LEN            320
#define REMOTE_LEN         (INET6_ADDRSTRLEN + 10)

/*
 * A connection's life. RESOLVING, CONNECTING and TLS belong to the call that asked for the
 * connection; BUSY carries one call; IDLE waits in its origin's idle list; CLOSED sits on
 * the client's dead list until the next deferred pass frees it.
 */
enum conn_state {
	CONN_NEW,        /* made, nothing started */
	CONN_RESOLVING,  /* evdns lookup in flight */
	CONN_CONNECTING, /* TCP connect in flight (one address after another) */
	CONN_TLS,        /* TLS handshake in flight */
	CONN_BUSY,       /* request out, response coming */
	CONN_IDLE,       /* kept alive between calls */
	CONN_CLOSED,     /* waiting to be freed */
};

#define BIT(s) (1u << (s))
static const unsigned conn_transitions[] = {
    [CONN_NEW] = BIT(CONN_RESOLVING) | BIT(CONN_CONNECTING) | BIT(CONN_CLOSED),
    [CONN_RESOLVING] = BIT(CONN_CONNECTING) | BIT(CONN_CLOSED),
    [CONN_CONNECTING] = BIT(CONN_CONNECTING) | BIT(CONN_TLS) | BIT(CONN_BUSY) | BIT(CONN_CLOSED),
    [CONN_TLS] = BIT(CONN_BUSY) | BIT(CONN_CLOSED),
    [CONN_BUSY] = BIT(CONN_BUSY) | BIT(CONN_IDLE) | BIT(CONN_CLOSED),
    [CONN_IDLE] = BIT(CONN_BUSY) | BIT(CONN_CLOSED),
    [CONN_CLOSED] = 0,
};
static const char *const conn_state_names[] = {
    "new", "resolving", "connecting", "tls", "busy", "idle", "closed"};

enum call_state {
	CALL_NEW,        /* being set up inside http_client_call */
	CALL_QUEUED,     /* waiting in its origin's FIFO for a connection */
	CALL_ACTIVE,     /* owns a connection (being made, or carrying the request) */
	CALL_DONE,       /* result ready, on the client's done list */
	CALL_DELIVERING, /* its callback is running */
};

struct http_call;
struct conn;

/* One evdns lookup; outlives its connection when abandoned (conn == NULL). */
struct lookup {
	struct conn *conn;
	struct evdns_getaddrinfo_request *req;
};

/* Connections that share a scheme, host, port and address policy. */
struct origin {
	struct http_client *c;
	char *key;
	unsigned hash;
	struct origin *hnext;
	int https, port, host_is_ip;
	char *host;
	struct cidr *pin; /* the calls' pin set: part of the key */
	int npin;
	TAILQ_HEAD(, conn) conns;        /* every live connection */
	TAILQ_HEAD(, conn) idle;         /* most recently used first */
	TAILQ_HEAD(, http_call) waiting; /* FIFO of calls without a connection */
	int nconns, nwaiting;
	int pumping, pump_again;
	int reap_pending;
	struct origin *reap_next;
};

struct conn {
	struct http_client *c;
	struct origin *o;
	enum conn_state state;
	TAILQ_ENTRY(conn) link;      /* origin->conns; client->dead once closed */
	TAILQ_ENTRY(conn) idle_link; /* origin->idle */
	struct http_call *call;
	struct lookup *lookup;
	evutil_socket_t fd; /* until a bufferevent owns it */
	struct event *ev_connect;
	struct event *ev_idle;
	struct bufferevent *bev;
	SSL *ssl; /* owned by bev once bev exists */
	struct http_parser *parser;
	struct sockaddr_storage addrs[MAX_ADDRS];
	socklen_t addrlens[MAX_ADDRS];
	int naddrs, next_addr;
	int requests; /* responses completed on this connection */
	char remote[REMOTE_LEN];
	char connect_err[ERR_LEN];
};

struct http_call {
	struct http_client *c;
	struct origin *o;
	struct conn *conn;
	enum call_state state;
	TAILQ_ENTRY(http_call) link; /* origin->waiting or client->done */
	http_call_cb cb;
	void *arg;
	char *req; /* the whole request, head and body */
	size_t reqlen;
	int head;
	int timeout_ms;
	int retried;
	int reused;
	uint64_t start_us;  /* http_client_call */
	uint64_t attach_us; /* its first connection: the exchange and its timeout start */
	/* The result, filled by call_finish. */
	enum http_call_error error;
	int status;
	int body_truncated;
	char *body;
	size_t body_len;
	char *location;
	char retry_after[65];
	int has_retry_after;
	double duration_ms, queue_ms;
	char remote[REMOTE_LEN];
	char err[ERR_LEN];
	/* The attempt timer, assigned in place (event_get_struct_event_size bytes). */
	alignas(max_align_t) unsigned char timer[];
};

struct http_client {
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ssl_ctx; /* made when first needed: tls_context() */
	char *ca_file;
	int max_per_origin, idle_timeout_ms, tls_verify;
	size_t max_body;
	struct cidr *allow;
	int nallow;
	char *user_agent;
	struct origin **buckets;
	unsigned nbuckets, norigins;
	struct origin *reap;
	TAILQ_HEAD(, http_call) done;
	TAILQ_HEAD(, conn) dead;
	struct event *ev_defer;
	int nconns, nqueued;
	int freeing, in_defer, destroy_scheduled;
};

static struct metric *m_requests, *m_duration, *m_queue, *m_conns;
static int g_idle, g_busy; /* over every client in the process */

static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_connect_next(struct conn *cn);
static void conn_open(struct conn *cn);
static void origin_pump(struct origin *o);
static SSL_CTX *tls_context(struct http_client *c);

/* --- metrics --------------------------------------------------------------------------- */

static void
collect_cb(void *arg)
{
	metric_set(m_conns, g_idle, "idle");
	metric_set(m_conns, g_busy, "busy");
}

static void
metrics_init(void)
{
	if (m_requests != NULL)
		return;
	m_requests = metric_counter(
	    "hookd_http_client_requests_total", "Outbound HTTP calls by outcome.", "outcome");
	m_duration = metric_histogram("hookd_http_client_duration_seconds",
	    "Outbound HTTP exchanges, from getting a connection to the result.", NULL,
	    metrics_latency_buckets, metrics_latency_nbuckets);
	m_queue = metric_histogram("hookd_http_client_queue_seconds",
	    "How long outbound calls waited for a connection under the per-origin cap.", NULL,
	    metrics_latency_buckets, metrics_latency_nbuckets);
	m_conns = metric_gauge("hookd_http_client_connections",
	    "Outbound connections by state (busy includes those being made).", "state");
	metrics_on_collect(collect_cb, NULL);
}

static const char *
outcome_name(enum http_call_error e)
{
	switch (e) {
	case HTTP_CALL_OK: return "ok";
	case HTTP_CALL_BAD_URL:
	case HTTP_CALL_BAD_REQUEST: return "invalid";
	case HTTP_CALL_DNS: return "dns";
	case HTTP_CALL_REFUSED_ADDR: return "refused";
	case HTTP_CALL_CONNECT: return "connect";
	case HTTP_CALL_TLS: return "tls";
	case HTTP_CALL_TIMEOUT: return "timeout";
	case HTTP_CALL_PROTOCOL: return "protocol";
	case HTTP_CALL_IO: return "io";
	case HTTP_CALL_SHUTDOWN: return NULL;
	}
	return NULL;
}

/* --- deferred work --------------------------------------------------------------------- */

static void
schedule_defer(struct http_client *c)
{
	event_active(c->ev_defer, EV_TIMEOUT, 1);
}

/* --- calls ----------------------------------------------------------------------------- */

static struct event *
call_timer(struct http_call *call)
{
	return (struct event *)(void *)call->timer;
}

static void
call_free(struct http_call *call)
{
	event_del(call_timer(call));
	free(call->req);
	free(call->body);
	free(call->location);
	free(call);
}

/* Record the outcome and queue the callback for the next deferred pass. */
static void call_finish(struct http_call *call, enum http_call_error error, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static void
call_finish(struct http_call *call, enum http_call_error error, const char *fmt, ...)
{
	struct http_client *c = call->c;
	const char *outcome = outcome_name(error);
	uint64_t now;
	va_list ap;

	hookd_assert(
	    call->state == CALL_NEW || call->state == CALL_QUEUED || call->state == CALL_ACTIVE);
	hookd_assert(call->conn == NULL);
	event_del(call_timer(call));
	call->error = error;
	va_start(ap, fmt);
	vsnprintf(call->err, sizeof(call->err), fmt, ap);
	va_end(ap);
	/* The exchange is timed from its first connection; the wait for one is apart. */
	now = now_mono_us();
	if (call->attach_us != 0) {
		call->duration_ms = (double)(now - call->attach_us) / 1000.0;
		call->queue_ms = (double)(call->attach_us - call->start_us) / 1000.0;
	} else {
		call->duration_ms = 0;
		call->queue_ms = (double)(now - call->start_us) / 1000.0;
	}
	free(call->req);
	call->req = NULL;
	if (outcome != NULL) {
		metric_add(m_requests, 1, outcome);
		metric_observe(m_duration, call->duration_ms / 1000.0);
		metric_observe(m_queue, call->queue_ms / 1000.0);
	}
	call->state = CALL_DONE;
	TAILQ_INSERT_TAIL(&c->done, call, link);
	schedule_defer(c);
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Give a connection to a call. The attempt's clock (its timeout and duration_ms) starts
 * with its first connection, so a wait in the origin's queue is neither.
 */
static void
call_attach(struct http_call *call, struct conn *cn)
{
	hookd_assert(cn->call == NULL);
	call->conn = cn;
	call->state = CALL_ACTIVE;
	cn->call = call;
	if (call->attach_us == 0) {
		struct timeval tv = {call->timeout_ms / 1000, (call->timeout_ms % 1000) * 1000};

		call->attach_us = now_mono_us();
		evtimer_add(call_timer(call), &tv);
	}
}

static struct http_call *
call_detach(struct conn *cn)
{
	struct http_call *call = cn->call;

	if (call != NULL) {
		call->conn = NULL;
		if (cn->remote[0] != '\0')
			memcpy(call->remote, cn->remote, sizeof(call->remote));
		cn->call = NULL;
	}
	return call;
}

/* --- connections: the state machine ---------------------------------------------------- */

static void
set_state(struct conn *cn, enum conn_state to)
{
	struct origin *o = cn->o;
	struct http_client *c = cn->c;
	enum conn_state from = cn->state;

	if (!(conn_transitions[from] & BIT(to))) {
		log_error("http client: impossible connection transition %s -> %s",
		    conn_state_names[from], conn_state_names[to]);
		abort();
	}
	if (from == to)
		return;
	/* Leave the old state's books. */
	if (from == CONN_IDLE) {
		TAILQ_REMOVE(&o->idle, cn, idle_link);
		g_idle--;
	} else if (from != CONN_NEW) {
		g_busy--;
	}
	cn->state = to;
	switch (to) {
	case CONN_IDLE:
		TAILQ_INSERT_HEAD(&o->idle, cn, idle_link);
		g_idle++;
		break;
	case CONN_CLOSED:
		TAILQ_REMOVE(&o->conns, cn, link);
		o->nconns--;
		c->nconns--;
		TAILQ_INSERT_TAIL(&c->dead, cn, link);
		if (o->nconns == 0 && o->nwaiting == 0 && !o->reap_pending) {
			o->reap_pending = 1;
			o->reap_next = c->reap;
			c->reap = o;
		}
		schedule_defer(c);
		break;
	default: g_busy++; break;
	}
}

static struct conn *
conn_new(struct origin *o)
{
	struct http_client *c = o->c;
	struct conn *cn = xcalloc(1, sizeof(*cn));

	cn->c = c;
	cn->o = o;
	cn->state = CONN_NEW;
	cn->fd = -1;
	cn->parser = http_parser_new(MAX_HEADER_BYTES, c->max_body);
	TAILQ_INSERT_TAIL(&o->conns, cn, link);
	o->nconns++;
	c->nconns++;
	return cn;
}

static void
conn_free(struct conn *cn)
{
	if (cn->bev != NULL)
		bufferevent_free(cn->bev); /* frees the SSL and closes the socket */
	else if (cn->ssl != NULL)
		SSL_free(cn->ssl);
	if (cn->fd >= 0)
		evutil_closesocket(cn->fd);
	if (cn->ev_connect != NULL)
		event_free(cn->ev_connect);
	if (cn->ev_idle != NULL)
		event_free(cn->ev_idle);
	http_parser_free(cn->parser);
	free(cn);
}

/*
 * Stop everything the connection does and hand it to the dead list. Its call, if any,
 * must have been detached. Does not start connections for waiting calls: callers do that
 * (origin_pump) once they are done with the origin.
 */
static void
conn_close(struct conn *cn)
{
	hookd_assert(cn->call == NULL);
	if (cn->state == CONN_CLOSED)
		return;
	if (cn->lookup != NULL) {
		struct lookup *lk = cn->lookup;

		/* The callback still runs (EVUTIL_EAI_CANCEL), from the loop, and frees lk. */
		cn->lookup = NULL;
		lk->conn = NULL;
		if (lk->req != NULL)
			evdns_getaddrinfo_cancel(lk->req);
	}
	if (cn->ev_connect != NULL)
		event_del(cn->ev_connect);
	if (cn->ev_idle != NULL)
		event_del(cn->ev_idle);
	if (cn->bev != NULL) {
		bufferevent_disable(cn->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(cn->bev, NULL, NULL, NULL, NULL);
	}
	set_state(cn, CONN_CLOSED);
}

/* The connection failed its call: report, close, let a waiting call have the slot. */
static void conn_fail(struct conn *cn, enum http_call_error error, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static void
conn_fail(struct conn *cn, enum http_call_error error, const char *fmt, ...)
{
	struct origin *o = cn->o;
	struct http_call *call = call_detach(cn);
	char msg[ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_close(cn);
	if (call != NULL)
		call_finish(call, error, "%s", msg);
	origin_pump(o);
}

static void
format_remote(const struct sockaddr *sa, char *buf, size_t len)
{
	char text[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
		snprintf(buf, len, "[%s]:%d", text, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
		snprintf(buf, len, "%s:%d", text, ntohs(s4->sin_port));
	}
}

/*
 * May hookd connect here? The SSRF guard with the config's allowlist always decides first; a
 * pin set (a subscription's ip_allowlist) then narrows what it allows, never widens it. The
 * reason names the rule that refused.
 */
static int
address_allowed(const struct origin *o, const struct sockaddr *sa, char *why, size_t whylen)
{
	char text[INET6_ADDRSTRLEN + 8], nets[256];
	size_t n = 0;
	int pinned = 0;

	for (int i = 0; i < o->npin && !pinned; i++)
		pinned = cidr_contains(&o->pin[i], sa);
	if (netguard_check(sa, o->c->allow, o->c->nallow, why, whylen) != 0) {
		size_t len = strlen(why);

		if (pinned && len + 1 < whylen)
			snprintf(why + len, whylen - len,
			    " (an ip_allowlist only narrows what outbound_allow_networks allows)");
		return -1;
	}
	if (o->npin == 0 || pinned)
		return 0;
	format_remote(sa, text, sizeof(text));
	*strrchr(text, ':') = '\0';
	if (text[0] == '[') {
		memmove(text, text + 1, strlen(text));
		text[strlen(text) - 1] = '\0';
	}
	nets[0] = '\0';
	for (int i = 0; i < o->npin && n + CIDR_STRLEN + 2 < sizeof(nets); i++) {
		char one[CIDR_STRLEN];

		cidr_format(&o->pin[i], one, sizeof(one));
		n += (size_t)snprintf(nets + n, sizeof(nets) - n, "%s%s", i ? ", " : "", one);
	}
	snprintf(why, whylen, "%s is not in the subscription's ip_allowlist (%s)", text, nets);
	return -1;
}

/* Keep the addresses the guard allows (in order); fail the call when none is left. */
static int
conn_take_addrs(struct conn *cn, const struct evutil_addrinfo *ai)
{
	struct origin *o = cn->o;
	char why[ERR_LEN], first[ERR_LEN] = "";

	cn->naddrs = 0;
	cn->next_addr = 0;
	for (; ai != NULL && cn->naddrs < MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
			continue;
		if (address_allowed(o, ai->ai_addr, why, sizeof(why)) != 0) {
			if (first[0] == '\0')
				memcpy(first, why, sizeof(first));
			continue;
		}
		memcpy(&cn->addrs[cn->naddrs], ai->ai_addr, ai->ai_addrlen);
		cn->addrlens[cn->naddrs] = (socklen_t)ai->ai_addrlen;
		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *)&cn->addrs[cn->naddrs])->sin_port =
			    htons((uint16_t)o->port);
		else
			((struct sockaddr_in6 *)&cn->addrs[cn->naddrs])->sin6_port =
			    htons((uint16_t)o->port);
		cn->naddrs++;
	}
	if (cn->naddrs > 0)
		return 0;
	if (first[0] == '\0')
		conn_fail(cn, HTTP_CALL_DNS, "%s has no IPv4 or IPv6 address", o->host);
	else if (o->host_is_ip)
		conn_fail(cn, HTTP_CALL_REFUSED_ADDR, "%s", first);
	else
		conn_fail(cn, HTTP_CALL_REFUSED_ADDR, "%s: %s", o->host, first);
	return -1;
}

static void
lookup_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct lookup *lk = arg;
	struct conn *cn = lk->conn;

	free(lk);
	if (cn == NULL) {
		/* Abandoned by conn_close. */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	cn->lookup = NULL;
	if (result != 0) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		conn_fail(cn, HTTP_CALL_DNS, "could not resolve %s: %s", cn->o->host,
		    evutil_gai_strerror(result));
		return;
	}
	if (conn_take_addrs(cn, res) == 0) {
		evutil_freeaddrinfo(res);
		conn_connect_next(cn);
		return;
	}
	evutil_freeaddrinfo(res);
}

/* The idle timer, or data/EOF on an idle connection: close it. */
static void
idle_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *cn = arg;

	if (cn->state != CONN_IDLE)
		return;
	conn_close(cn);
}

/* Send the call's request; the response parser starts afresh. */
static void
conn_send(struct conn *cn)
{
	struct http_call *call = cn->call;

	hookd_assert(cn->state == CONN_BUSY && call != NULL);
	call->reused = cn->requests > 0;
	http_parser_reset(cn->parser, call->head);
	if (bufferevent_write(cn->bev, call->req, call->reqlen) != 0) {
		conn_fail(
		    cn, HTTP_CALL_IO, "connection to %s: cannot queue the request", cn->remote);
		return;
	}
	bufferevent_enable(cn->bev, EV_READ | EV_WRITE);
}

/* The connection is free: hand it to the next waiting call, or keep it idle. */
static void
conn_release(struct conn *cn)
{
	struct origin *o = cn->o;
	struct http_client *c = cn->c;
	struct http_call *next = TAILQ_FIRST(&o->waiting);
	struct timeval tv = {c->idle_timeout_ms / 1000, (c->idle_timeout_ms % 1000) * 1000};

	if (next != NULL) {
		TAILQ_REMOVE(&o->waiting, next, link);
		o->nwaiting--;
		c->nqueued--;
		set_state(cn, CONN_BUSY);
		call_attach(next, cn);
		conn_send(cn);
		return;
	}
	set_state(cn, CONN_IDLE);
	if (cn->ev_idle == NULL)
		cn->ev_idle = evtimer_new(c->base, idle_timeout_cb, cn);
	evtimer_add(cn->ev_idle, &tv);
}

/* A complete response: report it, then reuse or close the connection. */
static void
conn_response_done(struct conn *cn, int eof)
{
	struct origin *o = cn->o;
	const struct http_response *r = http_parser_response(cn->parser);
	int reusable = r->keep_alive && !eof && !cn->c->freeing &&
	               evbuffer_get_length(bufferevent_get_input(cn->bev)) == 0 &&
	               evbuffer_get_length(bufferevent_get_output(cn->bev)) == 0;
	struct http_call *call = call_detach(cn);

	cn->requests++;
	call->status = r->status;
	call->body_truncated = r->body_truncated;
	if (r->retry_after != NULL) {
		snprintf(call->retry_after, sizeof(call->retry_after), "%s", r->retry_after);
		call->has_retry_after = 1;
	}
	if (r->location != NULL)
		call->location = xstrdup(r->location);
	call->body = http_parser_take_body(cn->parser, &call->body_len);
	call_finish(call, HTTP_CALL_OK, "%s", "");
	if (reusable) {
		conn_release(cn);
	} else {
		conn_close(cn);
		origin_pump(o);
	}
}

/*
 * The retry-once rule. A server may close a kept-alive connection at any moment while it
 * is idle; a request written just then meets EOF or ECONNRESET before any byte of a
 * response. It was then almost surely never processed, so the call is sent once more on a
 * fresh connection. Only then: not after a response byte arrived, not on a connection's
 * first request, not twice, never after a timeout. Deliveries are at-least-once and carry
 * a stable webhook-id, so the rare duplicate this can cause is one receivers dedupe.
 */
static int
conn_may_retry(struct conn *cn, int err)
{
	return cn->call != NULL && !cn->call->retried && cn->requests > 0 &&
	       !http_parser_started(cn->parser) &&
	       evbuffer_get_length(bufferevent_get_input(cn->bev)) == 0 &&
	       (err == 0 || err == ECONNRESET || err == EPIPE);
}

static void
conn_retry(struct conn *cn)
{
	struct origin *o = cn->o;
	struct http_call *call = call_detach(cn);
	struct conn *fresh;

	log_debug("http client: %s closed a kept-alive connection; sending again on a new one",
	    cn->remote);
	call->retried = 1;
	/* Close first (the slot is the call's), start the new one, no pump in between. */
	conn_close(cn);
	fresh = conn_new(o);
	call_attach(call, fresh);
	call->remote[0] = '\0';
	/* The same address, checked already, and the ones after it: no new lookup. */
	memcpy(fresh->addrs, cn->addrs, sizeof(cn->addrs));
	memcpy(fresh->addrlens, cn->addrlens, sizeof(cn->addrlens));
	fresh->naddrs = cn->naddrs;
	fresh->next_addr = cn->next_addr > 0 ? cn->next_addr - 1 : 0;
	conn_connect_next(fresh);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *cn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (cn->state == CONN_IDLE) {
		/* Nothing may arrive between responses. */
		log_debug("http client: %s sent unexpected data on an idle connection", cn->remote);
		conn_close(cn);
		return;
	}
	if (cn->state != CONN_BUSY || cn->call == NULL)
		return;
	switch (http_parser_feed(cn->parser, in)) {
	case HTTP_PARSE_MORE: break;
	case HTTP_PARSE_DONE: conn_response_done(cn, 0); break;
	case HTTP_PARSE_ERROR:
		conn_fail(cn, HTTP_CALL_PROTOCOL, "invalid response from %s: %s", cn->remote,
		    http_parser_error(cn->parser));
		break;
	}
}

/* Why a certificate failed, for the people who must fix it; "" when the reason says it all. */
static const char *
verify_hint(long vr)
{
	switch (vr) {
	case X509_V_ERR_HOSTNAME_MISMATCH: return " (the certificate does not name this host)";
	case X509_V_ERR_IP_ADDRESS_MISMATCH: return " (the certificate does not name this address)";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return " (no CA of the system store or outbound_ca_file issued its chain)";
	default: return "";
	}
}

/* What OpenSSL says went wrong in the handshake, for error_text. */
static void
tls_error_text(struct conn *cn, short what, int sock_err, char *buf, size_t len)
{
	long vr = cn->ssl != NULL ? SSL_get_verify_result(cn->ssl) : X509_V_OK;
	unsigned long e, first = 0;
	char peer[REMOTE_LEN + 136];

	/* The name too: the certificate is checked against it, not the address. */
	if (cn->o->host_is_ip)
		snprintf(peer, sizeof(peer), "%s", cn->remote);
	else
		snprintf(peer, sizeof(peer), "%.128s (%s)", cn->o->host, cn->remote);
	while ((e = bufferevent_get_openssl_error(cn->bev)) != 0) {
		if (first == 0)
			first = e;
	}
	if (vr != X509_V_OK) {
		snprintf(buf, len, "TLS handshake with %s: certificate verify failed: %s%s", peer,
		    X509_verify_cert_error_string(vr), verify_hint(vr));
	} else if (first != 0) {
		const char *reason = ERR_reason_error_string(first);
		char tmp[96];

		if (reason == NULL) {
			ERR_error_string_n(first, tmp, sizeof(tmp));
			reason = tmp;
		}
		snprintf(buf, len, "TLS handshake with %s: %s", peer, reason);
	} else if ((what & BEV_EVENT_EOF) || sock_err == 0) {
		snprintf(buf, len, "TLS handshake with %s: connection closed by the server", peer);
	} else {
		snprintf(buf, len, "TLS handshake with %s: %s", peer,
		    evutil_socket_error_to_string(sock_err));
	}
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *cn = arg;
	int err = (what & BEV_EVENT_ERROR) ? EVUTIL_SOCKET_ERROR() : 0;
	char msg[ERR_LEN];

	switch (cn->state) {
	case CONN_TLS:
		if (what & BEV_EVENT_CONNECTED) {
			set_state(cn, CONN_BUSY);
			conn_send(cn);
			return;
		}
		tls_error_text(cn, what, err, msg, sizeof(msg));
		conn_fail(cn, HTTP_CALL_TLS, "%s", msg);
		return;
	case CONN_IDLE:
		/* The server closed an idle connection (or it broke): forget it. */
		conn_close(cn);
		return;
	case CONN_BUSY: break;
	default: return;
	}
	if (cn->call == NULL)
		return;
	if (what & BEV_EVENT_EOF) {
		/* Whatever arrived with the close first, then the close itself. */
		enum http_parse_status st =
		    http_parser_feed(cn->parser, bufferevent_get_input(bev));

		if (st == HTTP_PARSE_ERROR) {
			conn_fail(cn, HTTP_CALL_PROTOCOL, "invalid response from %s: %s",
			    cn->remote, http_parser_error(cn->parser));
			return;
		}
		if (st == HTTP_PARSE_MORE)
			st = http_parser_eof(cn->parser);
		if (st == HTTP_PARSE_DONE) {
			conn_response_done(cn, 1);
			return;
		}
		if (conn_may_retry(cn, 0))
			conn_retry(cn);
		else if (!http_parser_started(cn->parser))
			conn_fail(cn, HTTP_CALL_IO, "%s closed the connection before responding",
			    cn->remote);
		else
			conn_fail(
			    cn, HTTP_CALL_IO, "%s: %s", cn->remote, http_parser_error(cn->parser));
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e, first = 0;

		while ((e = bufferevent_get_openssl_error(bev)) != 0) {
			if (first == 0)
				first = e;
		}
		if (first == 0 && conn_may_retry(cn, err)) {
			conn_retry(cn);
			return;
		}
		if (first != 0) {
			const char *reason = ERR_reason_error_string(first);

			conn_fail(cn, HTTP_CALL_IO, "connection to %s: TLS: %s", cn->remote,
			    reason != NULL ? reason : "error");
		} else {
			conn_fail(cn, HTTP_CALL_IO, "connection to %s: %s", cn->remote,
			    err != 0 ? evutil_socket_error_to_string(err) : "broken");
		}
	}
}

/* TCP is up: start TLS or send. The socket now belongs to a bufferevent. */
static void
conn_connected(struct conn *cn)
{
	struct http_client *c = cn->c;
	struct origin *o = cn->o;
	evutil_socket_t fd = cn->fd;

	cn->fd = -1;
	if (!o->https) {
		cn->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (cn->bev == NULL) {
			evutil_closesocket(fd);
			conn_fail(
			    cn, HTTP_CALL_CONNECT, "connect to %s: out of resources", cn->remote);
			return;
		}
		bufferevent_setcb(cn->bev, conn_read_cb, NULL, conn_event_cb, cn);
		set_state(cn, CONN_BUSY);
		conn_send(cn);
		return;
	}
	if (tls_context(c) == NULL) {
		evutil_closesocket(fd);
		conn_fail(
		    cn, HTTP_CALL_TLS, "TLS with %s: no TLS context (see the log)", cn->remote);
		return;
	}
	cn->ssl = SSL_new(c->ssl_ctx);
	if (cn->ssl == NULL) {
		evutil_closesocket(fd);
		conn_fail(cn, HTTP_CALL_TLS, "TLS with %s: cannot make an SSL object", cn->remote);
		return;
	}
	if (!o->host_is_ip)
		SSL_set_tlsext_host_name(cn->ssl, o->host);
	if (c->tls_verify) {
		if (o->host_is_ip) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(cn->ssl), o->host);
		} else {
			SSL_set_hostflags(cn->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			SSL_set1_host(cn->ssl, o->host);
		}
	}
	cn->bev = bufferevent_openssl_socket_new(
	    c->base, fd, cn->ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (cn->bev == NULL) {
		/* libevent frees neither the SSL nor the socket then. */
		evutil_closesocket(fd);
		conn_fail(cn, HTTP_CALL_TLS, "TLS with %s: out of resources", cn->remote);
		return;
	}
	/* Servers often close without close_notify; framing, not TLS, says what is complete. */
	bufferevent_openssl_set_allow_dirty_shutdown(cn->bev, 1);
	bufferevent_setcb(cn->bev, conn_read_cb, NULL, conn_event_cb, cn);
	bufferevent_enable(cn->bev, EV_READ | EV_WRITE);
	set_state(cn, CONN_TLS);
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *cn = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		snprintf(cn->connect_err, sizeof(cn->connect_err), "connect to %s: %s", cn->remote,
		    strerror(err));
		evutil_closesocket(cn->fd);
		cn->fd = -1;
		conn_connect_next(cn);
		return;
	}
	conn_connected(cn);
}

/* Connect to the next allowed address; fail the call when none is left. */
static void
conn_connect_next(struct conn *cn)
{
	struct http_client *c = cn->c;

	while (cn->next_addr < cn->naddrs) {
		const struct sockaddr *sa = (const struct sockaddr *)&cn->addrs[cn->next_addr];
		socklen_t salen = cn->addrlens[cn->next_addr];
		int one = 1, fd;

		cn->next_addr++;
		format_remote(sa, cn->remote, sizeof(cn->remote));
		fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
		if (fd < 0) {
			snprintf(cn->connect_err, sizeof(cn->connect_err), "connect to %s: %s",
			    cn->remote, strerror(errno));
			continue;
		}
		/* A request leaves in one write: no reason to wait for the previous ACK. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, sa, salen) == 0) {
			cn->fd = fd;
			set_state(cn, CONN_CONNECTING);
			conn_connected(cn);
			return;
		}
		if (errno == EINPROGRESS) {
			cn->fd = fd;
			/* One event per connection, pointed at each address's socket in turn. */
			if (cn->ev_connect == NULL)
				cn->ev_connect = event_new(c->base, fd, EV_WRITE, connect_cb, cn);
			else
				event_assign(cn->ev_connect, c->base, fd, EV_WRITE, connect_cb, cn);
			event_add(cn->ev_connect, NULL);
			set_state(cn, CONN_CONNECTING);
			return;
		}
		snprintf(cn->connect_err, sizeof(cn->connect_err), "connect to %s: %s", cn->remote,
		    strerror(errno));
		close(fd);
	}
	conn_fail(cn, HTTP_CALL_CONNECT, "%s",
	    cn->connect_err[0] ? cn->connect_err : "no address to connect to");
}

/* Start a connection for its call: the address (DNS unless a literal), the guard, connect. */
static void
conn_open(struct conn *cn)
{
	struct origin *o = cn->o;
	struct http_client *c = cn->c;
	struct evutil_addrinfo hints;
	struct lookup *lk;
	struct evdns_getaddrinfo_request *r;

	if (o->host_is_ip) {
		struct evutil_addrinfo ai;
		struct sockaddr_storage ss;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		memset(&ai, 0, sizeof(ai));
		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, o->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			ai.ai_addrlen = sizeof(*s4);
		} else if (inet_pton(AF_INET6, o->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			ai.ai_addrlen = sizeof(*s6);
		} else {
			conn_fail(cn, HTTP_CALL_BAD_URL, "%s is not an IP address", o->host);
			return;
		}
		ai.ai_family = ss.ss_family;
		ai.ai_addr = (struct sockaddr *)&ss;
		if (conn_take_addrs(cn, &ai) == 0)
			conn_connect_next(cn);
		return;
	}
	if (c->dns == NULL) {
		conn_fail(cn, HTTP_CALL_DNS, "could not resolve %s: no resolver", o->host);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	lk = xcalloc(1, sizeof(*lk));
	lk->conn = cn;
	cn->lookup = lk;
	set_state(cn, CONN_RESOLVING);
	r = evdns_getaddrinfo(c->dns, o->host, NULL, &hints, lookup_cb, lk);
	/* NULL: the callback ran already and lk is gone. */
	if (r != NULL)
		lk->req = r;
}

/* --- origins --------------------------------------------------------------------------- */

static unsigned
hash_key(const char *s, size_t n)
{
	unsigned h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static void
origin_free(struct origin *o)
{
	free(o->key);
	free(o->host);
	free(o->pin);
	free(o);
}

static void
origins_grow(struct http_client *c)
{
	unsigned n = c->nbuckets * 2;
	struct origin **b = xcalloc(n, sizeof(*b));

	for (unsigned i = 0; i < c->nbuckets; i++) {
		struct origin *o = c->buckets[i];

		while (o != NULL) {
			struct origin *next = o->hnext;

			o->hnext = b[o->hash & (n - 1)];
			b[o->hash & (n - 1)] = o;
			o = next;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
}

/* The pool key: scheme, host, port and, for pinned calls, the pin set. */
static char *
origin_key(const struct target_url *u, const struct cidr *pin, int npin, char *buf, size_t cap,
    size_t *lenp)
{
	size_t n;
	char *k = buf;

	n = (size_t)snprintf(buf, cap, "%s://%s:%d", u->scheme, u->host, u->port);
	if (n >= cap || npin > 0) {
		struct evbuffer *eb = evbuffer_new();

		evbuffer_add_printf(eb, "%s://%s:%d", u->scheme, u->host, u->port);
		for (int i = 0; i < npin; i++) {
			char one[CIDR_STRLEN];

			cidr_format(&pin[i], one, sizeof(one));
			evbuffer_add_printf(eb, "%c%s", i == 0 ? '|' : ',', one);
		}
		n = evbuffer_get_length(eb);
		k = xmalloc(n + 1);
		evbuffer_remove(eb, k, n);
		k[n] = '\0';
		evbuffer_free(eb);
	}
	*lenp = n;
	return k;
}

static struct origin *
origin_get(struct http_client *c, const struct target_url *u, const struct cidr *pin, int npin)
{
	char buf[320];
	size_t len;
	char *key = origin_key(u, pin, npin, buf, sizeof(buf), &len);
	unsigned h = hash_key(key, len);
	struct origin *o;

	for (o = c->buckets[h & (c->nbuckets - 1)]; o != NULL; o = o->hnext) {
		if (o->hash == h && strcmp(o->key, key) == 0)
			break;
	}
	if (o == NULL) {
		o = xcalloc(1, sizeof(*o));
		o->c = c;
		o->key = key == buf ? xstrdup(buf) : key;
		key = NULL;
		o->hash = h;
		o->https = strcmp(u->scheme, "https") == 0;
		o->port = u->port;
		o->host_is_ip = u->host_is_ip;
		o->host = xstrdup(u->host);
		if (npin > 0) {
			o->pin = xmalloc((size_t)npin * sizeof(*pin));
			memcpy(o->pin, pin, (size_t)npin * sizeof(*pin));
			o->npin = npin;
		}
		TAILQ_INIT(&o->conns);
		TAILQ_INIT(&o->idle);
		TAILQ_INIT(&o->waiting);
		if (c->norigins + 1 > c->nbuckets)
			origins_grow(c);
		o->hnext = c->buckets[h & (c->nbuckets - 1)];
		c->buckets[h & (c->nbuckets - 1)] = o;
		c->norigins++;
	}
	if (key != buf)
		free(key);
	return o;
}

static void
origin_unlink(struct http_client *c, struct origin *o)
{
	struct origin **pp = &c->buckets[o->hash & (c->nbuckets - 1)];

	while (*pp != o)
		pp = &(*pp)->hnext;
	*pp = o->hnext;
	c->norigins--;
}

/* Start connections for waiting calls while the origin is under its cap. */
static void
origin_pump(struct origin *o)
{
	struct http_client *c = o->c;

	if (o->pumping) {
		o->pump_again = 1;
		return;
	}
	o->pumping = 1;
	do {
		o->pump_again = 0;
		while (!c->freeing && o->nwaiting > 0 && o->nconns < c->max_per_origin) {
			struct http_call *call = TAILQ_FIRST(&o->waiting);
			struct conn *cn;

			TAILQ_REMOVE(&o->waiting, call, link);
			o->nwaiting--;
			c->nqueued--;
			cn = conn_new(o);
			call_attach(call, cn);
			conn_open(cn);
		}
	} while (o->pump_again);
	o->pumping = 0;
}

/* A new call: an idle connection, a new one under the cap, or the queue. */
static void
origin_submit(struct origin *o, struct http_call *call)
{
	struct http_client *c = o->c;
	struct conn *cn = TAILQ_FIRST(&o->idle);

	if (cn != NULL) {
		event_del(cn->ev_idle);
		set_state(cn, CONN_BUSY);
		call_attach(call, cn);
		conn_send(cn);
		return;
	}
	call->state = CALL_QUEUED;
	TAILQ_INSERT_TAIL(&o->waiting, call, link);
	o->nwaiting++;
	c->nqueued++;
	origin_pump(o);
}

/* --- the deferred pass ----------------------------------------------------------------- */

static void client_destroy(struct http_client *c);

static void
destroy_cb(evutil_socket_t fd, short what, void *arg)
{
	client_destroy(arg);
}

static void
free_dead(struct http_client *c)
{
	struct conn *cn;

	while ((cn = TAILQ_FIRST(&c->dead)) != NULL) {
		TAILQ_REMOVE(&c->dead, cn, link);
		conn_free(cn);
	}
}

static void
reap_origins(struct http_client *c)
{
	while (c->reap != NULL) {
		struct origin *o = c->reap;

		c->reap = o->reap_next;
		o->reap_pending = 0;
		if (o->nconns == 0 && o->nwaiting == 0) {
			origin_unlink(c, o);
			origin_free(o);
		}
	}
}

/* Free closed connections, run the callbacks of finished calls, drop empty origins. */
static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	struct http_call *call;

	c->in_defer = 1;
	free_dead(c);
	while ((call = TAILQ_FIRST(&c->done)) != NULL) {
		struct http_call_result r;

		TAILQ_REMOVE(&c->done, call, link);
		call->state = CALL_DELIVERING;
		memset(&r, 0, sizeof(r));
		r.error = call->error;
		r.error_text = call->err;
		r.status = call->error == HTTP_CALL_OK ? call->status : 0;
		r.body = call->body;
		r.body_len = call->body_len;
		r.body_truncated = call->body_truncated;
		r.retry_after = call->has_retry_after ? call->retry_after : NULL;
		r.location = call->location;
		r.duration_ms = call->duration_ms;
		r.queue_ms = call->queue_ms;
		r.remote = call->remote;
		r.reused = call->reused;
		call->cb(&r, call->arg);
		call_free(call);
	}
	free_dead(c);
	reap_origins(c);
	c->in_defer = 0;
	if (c->freeing && !c->destroy_scheduled) {
		static const struct timeval now = {0, 0};

		/* Not from inside our own event's callback: on the next pass. */
		c->destroy_scheduled = 1;
		if (event_base_once(c->base, -1, EV_TIMEOUT, destroy_cb, c, &now) != 0)
			client_destroy(c);
	}
}

/* --- the public interface -------------------------------------------------------------- */

/* Does dir hold a certificate under OpenSSL's hashed name (8 hex digits, '.', a digit)? */
static int
dir_has_hashed_certs(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int found = 0;

	if (d == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		found = strlen(n) >= 10 && strspn(n, "0123456789abcdef") == 8 && n[8] == '.' &&
		        n[9] >= '0' && n[9] <= '9';
	}
	closedir(d);
	return found;
}

/*
 * The system's CA certificates.  Where the system keeps them as a hashed directory
 * (Debian's /etc/ssl/certs, or SSL_CERT_DIR), a handshake looks its root up there and the
 * store keeps only the roots in use: loading the whole bundle file instead parses some 140
 * certificates and holds 0.8 MB.  SSL_CERT_FILE, or a system with no hashed directory,
 * loads the bundle file as OpenSSL's defaults do.
 */
static int
load_system_cas(SSL_CTX *ctx)
{
	const char *dir = getenv(X509_get_default_cert_dir_env());
	const char *file = getenv(X509_get_default_cert_file_env());

	if (file == NULL || *file == '\0') {
		if (dir != NULL && *dir != '\0')
			return SSL_CTX_load_verify_dir(ctx, dir);
		if (dir_has_hashed_certs(X509_get_default_cert_dir()))
			return SSL_CTX_load_verify_dir(ctx, X509_get_default_cert_dir());
	}
	return SSL_CTX_set_default_verify_paths(ctx);
}

/* The client's TLS context, made on first use; NULL (the reason logged) when it cannot be. */
static SSL_CTX *
tls_context(struct http_client *c)
{
	SSL_CTX *ctx;

	if (c->ssl_ctx != NULL)
		return c->ssl_ctx;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		log_error("http client: cannot make a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Idle keep-alive connections need not hold 30 KiB of TLS buffers each. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
	if (c->tls_verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (load_system_cas(ctx) != 1)
			log_warn("http client: cannot load the system's CA certificates");
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (c->ca_file != NULL && c->ca_file[0] != '\0' && access(c->ca_file, R_OK) != 0) {
		log_error("http client: cannot read CA certificates from %s: %s", c->ca_file,
		    strerror(errno));
		goto fail;
	}
	if (c->ca_file != NULL && c->ca_file[0] != '\0' &&
	    SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
		char reason[256] = "unknown error";
		unsigned long e = ERR_peek_last_error();

		if (e != 0)
			ERR_error_string_n(e, reason, sizeof(reason));
		ERR_clear_error();
		log_error(
		    "http client: cannot load CA certificates from %s: %s", c->ca_file, reason);
		goto fail;
	}
	c->ssl_ctx = ctx;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct http_client *
http_client_new(
    struct event_base *base, struct evdns_base *dns, const struct http_client_options *opt)
{
	struct http_client *c = xcalloc(1, sizeof(*c));

	metrics_init();
	c->base = base;
	c->dns = dns;
	c->max_per_origin = opt->max_per_origin > 0 ? opt->max_per_origin : DEFAULT_PER_ORIGIN;
	c->idle_timeout_ms = opt->idle_timeout_ms > 0 ? opt->idle_timeout_ms : DEFAULT_IDLE_MS;
	c->max_body = opt->max_response_body > 0 ? opt->max_response_body : DEFAULT_MAX_BODY;
	c->tls_verify = !opt->tls_insecure;
	if (opt->nallow > 0) {
		c->allow = xmalloc((size_t)opt->nallow * sizeof(*c->allow));
		memcpy(c->allow, opt->allow, (size_t)opt->nallow * sizeof(*c->allow));
		c->nallow = opt->nallow;
	}
	c->user_agent =
	    xstrdup(opt->user_agent != NULL ? opt->user_agent : PACKAGE_NAME "/" VERSION);
	c->nbuckets = 16;
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	TAILQ_INIT(&c->done);
	TAILQ_INIT(&c->dead);
	c->ev_defer = event_new(base, -1, 0, defer_cb, c);

	/*
	 * The TLS context is made at the first https:// connection: OpenSSL's first use maps
	 * some 2 MB of its library, which a hookd that sends no HTTPS need not carry.  An extra
	 * CA file is read now, so that a bad one is refused here and a reload keeps the old
	 * configuration.
	 */
	if (!c->tls_verify)
		log_warn("http client: TLS certificate verification is off");
	if (opt->ca_file != NULL && opt->ca_file[0] != '\0') {
		c->ca_file = xstrdup(opt->ca_file);
		if (tls_context(c) == NULL)
			goto fail;
	}
	return c;
fail:
	client_destroy(c);
	return NULL;
}

static int
valid_token(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		        (ch >= 'A' && ch <= 'Z') || strchr(extra, ch) != NULL))
			return 0;
	}
	return 1;
}

static int
valid_value(const char *s)
{
	if (s == NULL)
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return 0;
	}
	return 1;
}

/* 1, with the reason, when the request cannot be sent as given. */
static int
request_invalid(const struct http_call_request *req, const char *method, char *why, size_t len)
{
	if ((req->nheaders > 0 && req->headers == NULL) || (req->npin > 0 && req->pin == NULL) ||
	    (req->body_len > 0 && req->body == NULL)) {
		snprintf(why, len, "headers, pin or body missing");
		return 1;
	}
	if (!valid_token(method)) {
		snprintf(why, len, "invalid method");
		return 1;
	}
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (!valid_token(h->name) || !valid_value(h->value)) {
			/* The name only: a value may be a secret. */
			snprintf(why, len, "invalid header %.64s",
			    valid_token(h->name) ? h->name : "name");
			return 1;
		}
	}
	return 0;
}

/* Headers the client owns: the caller's are dropped. */
static int
reserved_header(const char *name)
{
	static const char *const names[] = {"host", "content-length", "transfer-encoding",
	    "connection", "keep-alive", "upgrade", "te", "trailer"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcasecmp(name, names[i]) == 0)
			return 1;
	}
	return 0;
}

static char *
put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

/* The request, head and body, in one buffer. */
static void
build_request(struct http_call *call, const struct http_client *c, const char *method,
    const struct target_url *u, const struct http_call_request *req)
{
	char *host = target_url_host_header(u), clen[24], *p;
	size_t n, mlen = strlen(method), plen = strlen(u->path_query), hlen = strlen(host);
	size_t ualen = strlen(c->user_agent);
	int caller_ua = 0, want_len;

	for (int i = 0; i < req->nheaders; i++) {
		if (strcasecmp(req->headers[i].name, "user-agent") == 0)
			caller_ua = 1;
	}
	want_len = req->body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	           strcmp(method, "PATCH") == 0;
	snprintf(clen, sizeof(clen), "%zu", req->body_len);
	n = mlen + 1 + plen + sizeof(" HTTP/1.1\r\nHost: \r\n") - 1 + hlen +
	    sizeof("Connection: keep-alive\r\n\r\n") - 1 + req->body_len;
	if (!caller_ua)
		n += sizeof("User-Agent: \r\n") - 1 + ualen;
	if (want_len)
		n += sizeof("Content-Length: \r\n") - 1 + strlen(clen);
	for (int i = 0; i < req->nheaders; i++) {
		if (!reserved_header(req->headers[i].name))
			n += strlen(req->headers[i].name) + 4 + strlen(req->headers[i].value);
	}
	p = call->req = xmalloc(n);
	p = put(p, method, mlen);
	p = PUTS(p, " ");
	p = put(p, u->path_query, plen);
	p = PUTS(p, " HTTP/1.1\r\nHost: ");
	p = put(p, host, hlen);
	p = PUTS(p, "\r\n");
	if (!caller_ua) {
		p = PUTS(p, "User-Agent: ");
		p = put(p, c->user_agent, ualen);
		p = PUTS(p, "\r\n");
	}
	if (want_len) {
		p = PUTS(p, "Content-Length: ");
		p = put(p, clen, strlen(clen));
		p = PUTS(p, "\r\n");
	}
	p = PUTS(p, "Connection: keep-alive\r\n");
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (reserved_header(h->name))
			continue;
		p = put(p, h->name, strlen(h->name));
		p = PUTS(p, ": ");
		p = put(p, h->value, strlen(h->value));
		p = PUTS(p, "\r\n");
	}
	p = PUTS(p, "\r\n");
	if (req->body_len > 0)
		p = put(p, req->body, req->body_len);
	hookd_assert((size_t)(p - call->req) == n);
	call->reqlen = n;
	free(host);
}

struct http_call *
http_client_call(
    struct http_client *c, const struct http_call_request *req, http_call_cb cb, void *arg)
{
	size_t evsize = event_get_struct_event_size();
	struct http_call *call = xcalloc(1, sizeof(*call) + evsize);
	const char *method = req->method != NULL ? req->method : "POST";
	struct target_url u;
	char why[ERR_LEN];

	call->c = c;
	call->cb = cb;
	call->arg = arg;
	call->state = CALL_NEW;
	call->start_us = now_mono_us();
	call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 30000;
	evtimer_assign(call_timer(call), c->base, call_timeout_cb, call);
	if (c->freeing) {
		call_finish(call, HTTP_CALL_SHUTDOWN, "the HTTP client is shutting down");
		return call;
	}
	if (target_url_parse(req->url, &u, why, sizeof(why)) != 0) {
		call_finish(call, HTTP_CALL_BAD_URL, "invalid URL: %s", why);
		return call;
	}
	if (request_invalid(req, method, why, sizeof(why))) {
		target_url_free(&u);
		call_finish(call, HTTP_CALL_BAD_REQUEST, "%s", why);
		return call;
	}
	call->head = strcmp(method, "HEAD") == 0;
	build_request(call, c, method, &u, req);
	call->o = origin_get(c, &u, req->pin, req->npin);
	target_url_free(&u);
	origin_submit(call->o, call);
	return call;
}

/* The attempt ran out of time: whatever the connection was doing, it is closed. */
static void
call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_call *call = arg;
	struct conn *cn = call->conn;
	struct origin *o = call->o;
	char phase[REMOTE_LEN + 64];

	if (call->state != CALL_ACTIVE || cn == NULL)
		return;
	switch (cn->state) {
	case CONN_NEW:
	case CONN_RESOLVING: snprintf(phase, sizeof(phase), "resolving %s", o->host); break;
	case CONN_CONNECTING: snprintf(phase, sizeof(phase), "connecting to %s", cn->remote); break;
	case CONN_TLS:
		snprintf(phase, sizeof(phase), "in the TLS handshake with %s", cn->remote);
		break;
	default:
		snprintf(phase, sizeof(phase), "%s the response from %s",
		    http_parser_started(cn->parser) ? "reading" : "waiting for", cn->remote);
		break;
	}
	call_detach(cn);
	conn_close(cn);
	call_finish(call, HTTP_CALL_TIMEOUT, "timeout after %d ms %s", call->timeout_ms, phase);
	origin_pump(o);
}

void
http_call_cancel(struct http_call *call)
{
	struct http_client *c;
	struct origin *o;

	if (call == NULL)
		return;
	c = call->c;
	o = call->o;
	switch (call->state) {
	case CALL_NEW:
	case CALL_DELIVERING: return; /* inside its own callback: it is freed on return */
	case CALL_QUEUED:
		TAILQ_REMOVE(&o->waiting, call, link);
		o->nwaiting--;
		c->nqueued--;
		if (o->nconns == 0 && o->nwaiting == 0 && !o->reap_pending) {
			o->reap_pending = 1;
			o->reap_next = c->reap;
			c->reap = o;
			schedule_defer(c);
		}
		break;
	case CALL_ACTIVE: {
		/* Mid-exchange the connection cannot be reused: close it. */
		struct conn *cn = call->conn;

		call_detach(cn);
		conn_close(cn);
		origin_pump(o);
		break;
	}
	case CALL_DONE: TAILQ_REMOVE(&c->done, call, link); break;
	}
	call_free(call);
}

static void
client_destroy(struct http_client *c)
{
	free_dead(c);
	for (unsigned i = 0; c->buckets != NULL && i < c->nbuckets; i++) {
		while (c->buckets[i] != NULL) {
			struct origin *o = c->buckets[i];

			c->buckets[i] = o->hnext;
			origin_free(o);
		}
	}
	free(c->buckets);
	if (c->ev_defer != NULL)
		event_free(c->ev_defer);
	if (c->ssl_ctx != NULL)
		SSL_CTX_free(c->ssl_ctx);
	free(c->ca_file);
	free(c->allow);
	free(c->user_agent);
	free(c);
}

void
http_client_free(struct http_client *c)
{
	if (c == NULL || c->freeing)
		return;
	c->freeing = 1;
	for (unsigned i = 0; i < c->nbuckets; i++) {
		for (struct origin *o = c->buckets[i]; o != NULL; o = o->hnext) {
			struct http_call *call;
			struct conn *cn, *next;

			while ((call = TAILQ_FIRST(&o->waiting)) != NULL) {
				TAILQ_REMOVE(&o->waiting, call, link);
				o->nwaiting--;
				c->nqueued--;
				call_finish(call, HTTP_CALL_SHUTDOWN, "the HTTP client was freed");
			}
			for (cn = TAILQ_FIRST(&o->conns); cn != NULL; cn = next) {
				struct http_call *owner = call_detach(cn);

				next = TAILQ_NEXT(cn, link);
				conn_close(cn);
				if (owner != NULL)
					call_finish(
					    owner, HTTP_CALL_SHUTDOWN, "the HTTP client was freed");
			}
		}
	}
	reap_origins(c);
	if (!c->in_defer && TAILQ_EMPTY(&c->done)) {
		client_destroy(c);
		return;
	}
	/* The SHUTDOWN callbacks run from the loop; the client goes after them. */
	schedule_defer(c);
}

int
http_client_connections(const struct http_client *c)
{
	return c->nconns;
}

int
http_client_queued(const struct http_client *c)
{
	return c->nqueued;
}
