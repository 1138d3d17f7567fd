/* SPDX-License-Identifier: ISC */
/* HTTP server on evhttp: listeners, limits, routing, request ids, JSON replies, access log. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <sodium.h>

#include "hookd/config.h"
#include "hookd/http_server.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/router.h"

/*
 * evhttp's own body cap sits above ours: bodies between the two are read and refused
 * by dispatch_cb, with the request's method, path and X-Request-Id in the log; bodies
 * above it are refused by evhttp as soon as their Content-Length is seen, and that
 * answer is rewritten into JSON (see "evhttp's own answers" below).
 */
#define EVHTTP_CAP_FACTOR 4

/* Room for an evhttp error page (they are a few hundred bytes). */
#define EVHTTP_PAGE_MAX 2048

struct route_entry {
	http_handler fn;
	void *arg;
};

struct http_server {
	struct event_base *base;
	struct evhttp *http;
	struct router *router;
	struct route_entry **entries;
	int nentries;
	struct evhttp_bound_socket *bound[CONFIG_MAX_LISTEN];
	int nbound;
	struct http_limits lim;
	int (*auth)(const char *token, void *arg);
	void *auth_arg;
	struct http_conn *conns; /* open client connections */
	int nconns;
	struct http_conn **fresh; /* accepted this loop pass, not yet adopted */
	int nfresh, freshcap;
	struct event *ev_adopt;
	struct http_conn **fixups; /* connections with an evhttp page to rewrite */
	int nfixups, fixupcap;
	struct event *ev_fixup;
	struct http_conn *reading; /* whose input evhttp consumed last (see dispatch_cb) */
	int replying;              /* send_reply is writing: the output is hookd's */
	int rewriting;             /* fixup_cb is writing */
	int inflight;              /* requests dispatched, not yet replied */
	int paused;                /* listeners disabled at max_connections */
	int draining;              /* SIGTERM: no new connections, replies close */
};

struct http_req {
	struct http_server *server;
	struct evhttp_request *ev;
	struct http_conn *conn; /* its connection, when known; NULL once that closes */
	struct route_match match;
	int matched;
	const char *method;
	char *path;
	char *query_raw;
	struct evkeyvalq *query;
	char id[40];
	uint64_t start_us;
	void *data;
	const unsigned char *body; /* pulled up and NUL-terminated on first use */
	size_t body_len;
};

/* One per client connection, made in bev_cb, freed by evhttp's close callback. */
struct http_conn {
	struct http_server *server;      /* NULL once the server is gone */
	struct evhttp_connection *evcon; /* NULL until adopted */
	struct bufferevent *bev;
	struct evbuffer_cb_entry *out_cb, *in_cb;
	struct http_conn *prev, *next;
	struct http_req *req; /* the request dispatched on it, until replied to */
	size_t consumed;      /* bytes evhttp has read off the input since hookd last replied */
	uint64_t start_us;    /* when it began reading them (loop_now_us) */
	size_t del[2];        /* the sizes of its last two reads off the input, newest first */
	ssize_t foreign;      /* offset in the output of bytes hookd did not write, or -1 */
	int queued;           /* in s->fixups */
};

static struct metric *m_requests, *m_duration, *m_conns, *m_inflight;

static void
metrics_init(void)
{
	if (m_requests != NULL)
		return;
	m_requests = metric_counter(
	    "hookd_http_requests_total", "HTTP requests answered.", "route,method,status");
	m_duration = metric_histogram("hookd_http_request_duration_seconds",
	    "Time from request dispatch to reply.", "route", metrics_latency_buckets,
	    metrics_latency_nbuckets);
	m_conns = metric_gauge("hookd_http_connections", "Open client connections.", NULL);
	m_inflight = metric_gauge("hookd_http_inflight", "Requests being handled.", NULL);
}

static void
collect_cb(void *arg)
{
	struct http_server *s = arg;

	metric_set(m_conns, s->nconns);
	metric_set(m_inflight, s->inflight);
}

static const char *
method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "UNKNOWN";
}

static const char *
status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return NULL;
}

/* --- connections -------------------------------------------------------------------- */

static void
listeners_set_paused(struct http_server *s, int paused)
{
	if (s->paused == paused || s->draining)
		return;
	s->paused = paused;
	for (int i = 0; i < s->nbound; i++) {
		struct evconnlistener *l = evhttp_bound_socket_get_listener(s->bound[i]);

		if (paused)
			evconnlistener_disable(l);
		else
			evconnlistener_enable(l);
	}
	if (paused)
		log_warn("http: %d connections open (http_max_connections); not accepting until "
		         "one closes",
		    s->nconns);
}

static void
conn_unlink(struct http_server *s, struct http_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

static void
conn_closed(struct http_server *s)
{
	s->nconns--;
	if (s->paused && s->nconns < s->lim.max_connections)
		listeners_set_paused(s, 0);
}

/* Forget the buffer callbacks (the bufferevent outlives the connection struct). */
static void
conn_release(struct http_conn *c)
{
	evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
}

static void
fixup_dequeue(struct http_server *s, struct http_conn *c)
{
	for (int i = 0; c->queued && i < s->nfixups; i++) {
		if (s->fixups[i] == c) {
			s->fixups[i] = s->fixups[--s->nfixups];
			c->queued = 0;
		}
	}
}

static void
conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *c = arg;
	struct http_server *s = c->server;

	conn_release(c);
	if (c->req != NULL)
		c->req->conn = NULL;
	if (s != NULL) {
		conn_unlink(s, c);
		conn_closed(s);
		fixup_dequeue(s, c);
		if (s->reading == c)
			s->reading = NULL;
	}
	free(c);
}

/*
 * Adopt the connections accepted in this loop pass. libevent 2.1 has no callback for
 * "a connection was accepted" or "freed", only evhttp's close callback, which needs
 * the evhttp_connection. evhttp makes the connection right after asking bev_cb for
 * its bufferevent and registers itself as that bufferevent's callback argument, so
 * the connection is found there. This runs before the loop polls again, so before
 * any event on the new socket; the reference taken in bev_cb keeps the bufferevent
 * readable even if evhttp gave up on the connection meanwhile (its callbacks are
 * then cleared).
 */
static void
adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;

	for (int i = 0; i < s->nfresh; i++) {
		struct http_conn *c = s->fresh[i];
		struct bufferevent *bev = c->bev;
		void *cbarg = NULL;
		struct evhttp_connection *evcon;

		bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
		evcon = cbarg;
		if (evcon != NULL && evhttp_connection_get_bufferevent(evcon) == bev) {
			c->evcon = evcon;
			c->next = s->conns;
			if (s->conns != NULL)
				s->conns->prev = c;
			s->conns = c;
			evhttp_connection_set_closecb(evcon, conn_close_cb, c);
		} else {
			conn_release(c);
			fixup_dequeue(s, c);
			free(c);
			conn_closed(s);
		}
		bufferevent_decref(bev);
	}
	s->nfresh = 0;
}

/* --- evhttp's own answers ------------------------------------------------------------- */

/*
 * evhttp answers some bad input itself, and libevent 2.1 has no error callback: a body
 * above its cap, a request line or header block it cannot parse or that exceeds
 * http_max_header_size, an unknown method, an Expect other than 100-continue. It writes
 * an HTML page (evhttp_send_error: Content-Type text/html, Connection: close) straight
 * into the connection's output buffer and closes the connection once it is sent.
 *
 * hookd never sends HTML, so such a page is recognised and replaced by hookd's JSON
 * error before it reaches the socket. A callback on the output buffer notes output
 * hookd did not write (everything hookd writes goes through send_reply, which raises
 * s->replying; interim 1xx lines pass; while a dispatched request waits for its reply
 * the callback rests, as only hookd writes then); fixup_cb, made active at once, runs in the same
 * loop pass, after evhttp has finished the page and before the socket can be written
 * again, and swaps the page for the JSON answer. A callback on the input buffer counts
 * what evhttp consumed of the current request, which tells a header block that was too
 * large (431) from one that was malformed (400): evhttp reports both as 400.
 *
 * A bufferevent_filter wrapping the socket cannot do this in libevent 2.1.12: evhttp
 * takes the filter's drained output for "sent" and frees the connection (shutting the
 * socket down) before the socket bufferevent below has written a Connection: close
 * reply, and a reply written while the filter's writing was disabled is not moved on
 * when evhttp enables it, so keep-alive replies hang.
 */

/* Copy up to n bytes at off out of buf (frozen or not); returns how many. */
static size_t
peek_at(struct evbuffer *buf, size_t off, char *dst, size_t n)
{
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr p;
	size_t got = 0;
	int nv;

	if (evbuffer_ptr_set(buf, &p, off, EVBUFFER_PTR_SET) != 0)
		return 0;
	nv = evbuffer_peek(buf, (ev_ssize_t)n, &p, v, (int)ARRAY_SIZE(v));
	for (int i = 0; i < nv && i < (int)ARRAY_SIZE(v) && got < n; i++) {
		size_t k = v[i].iov_len < n - got ? v[i].iov_len : n - got;

		memcpy(dst + got, v[i].iov_base, k);
		got += k;
	}
	return got;
}

/* 1 when the output at off starts an interim (1xx) response, e.g. 100 Continue. */
static int
interim_response(struct evbuffer *buf, size_t off)
{
	char head[10];

	return peek_at(buf, off, head, sizeof(head)) == sizeof(head) &&
	       memcmp(head, "HTTP/1.", 7) == 0 && head[8] == ' ' && head[9] == '1';
}

static void
out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_conn *c = arg;
	struct http_server *s = c->server;

	if (s == NULL)
		return;
	if (info->n_deleted > 0 && c->foreign > 0)
		c->foreign -= (ssize_t)(info->n_deleted < (size_t)c->foreign ? info->n_deleted
		                                                             : (size_t)c->foreign);
	if (info->n_added == 0 || s->rewriting)
		return;
	if (s->replying) {
		/* hookd answers: the request is read; what evhttp reads next is the next one. */
		c->consumed = 0;
		c->del[0] = c->del[1] = 0;
		return;
	}
	if (c->foreign >= 0 || interim_response(buf, info->orig_size))
		return;
	c->foreign = (ssize_t)info->orig_size;
	if (!c->queued) {
		if (s->nfixups == s->fixupcap) {
			s->fixupcap = s->fixupcap ? s->fixupcap * 2 : 8;
			s->fixups = xrealloc(s->fixups, (size_t)s->fixupcap * sizeof(*s->fixups));
		}
		s->fixups[s->nfixups++] = c;
		c->queued = 1;
		event_active(s->ev_fixup, EV_TIMEOUT, 0);
	}
}

/* The loop's cached clock (per loop pass), in microseconds: cheap enough for in_cb. */
static uint64_t
loop_now_us(const struct http_server *s)
{
	struct timeval tv;

	if (s == NULL || event_base_gettimeofday_cached(s->base, &tv) != 0)
		return 0;
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void
in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_conn *c = arg;

	if (info->n_deleted == 0)
		return;
	if (c->server != NULL)
		c->server->reading = c;
	if (c->consumed == 0)
		c->start_us = loop_now_us(c->server);
	c->consumed += info->n_deleted;
	c->del[1] = c->del[0];
	c->del[0] = info->n_deleted;
}

/*
 * evhttp says 400 both for a malformed request and for a request line or header block
 * over http_max_header_size. It refuses a block as too large when the lines it has read
 * exceed the limit, or when they and an unfinished line still buffered (no newline yet)
 * do. It reads a line as two removals, the text and then its line end; an empty line
 * (the end of a block, after which a bad Content-Length is also a 400) shows as a line
 * end after a line end, and then the block was not too large.
 */
static int
header_too_large(const struct http_server *s, const struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t max = s->lim.max_header;

	if (c->del[0] > 0 && c->del[0] <= 2 && c->del[1] <= 2)
		return 0;
	if (c->consumed > max)
		return 1;
	return c->consumed + evbuffer_get_length(in) > max &&
	       evbuffer_search(in, "\n", 1, NULL).pos < 0;
}

/* Replace evhttp's error page at c->foreign with hookd's JSON error. */
static void
rewrite_page(struct http_server *s, struct http_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev), *head = NULL;
	size_t len = evbuffer_get_length(out), off = (size_t)c->foreign, n, blen;
	struct json_object *o;
	char page[EVHTTP_PAGE_MAX], date[96] = "", msg[256], id[17], status_text[8], *end, *p;
	const char *code, *peer = "";
	unsigned char raw[8];
	int status, evstatus, frozen;
	double secs;
	char *text, probe;

	c->foreign = -1;
	if (off >= len)
		return;
	n = peek_at(out, off, page, len - off < sizeof(page) - 1 ? len - off : sizeof(page) - 1);
	page[n] = '\0';
	end = strstr(page, "\r\n\r\n");
	if (strncmp(page, "HTTP/1.", 7) != 0 || page[8] != ' ' || end == NULL)
		return;
	*end = '\0';
	/* Only evhttp's page: anything else is passed as it is. */
	if (strstr(page, "\r\nContent-Type: text/html") == NULL)
		return;
	evstatus = atoi(page + 9);
	if ((p = strstr(page, "\r\nDate: ")) != NULL) {
		size_t dl = strcspn(p + 2, "\r");

		if (dl < sizeof(date) - 3)
			snprintf(date, sizeof(date), "%.*s\r\n", (int)dl, p + 2);
	}

	status = evstatus;
	switch (evstatus) {
	case 400:
		if (header_too_large(s, c)) {
			status = 431;
			code = "request_header_too_large";
			snprintf(msg, sizeof(msg),
			    "the request line and headers exceed the limit of %zu bytes",
			    s->lim.max_header);
		} else {
			code = "bad_request";
			snprintf(msg, sizeof(msg),
			    "malformed HTTP request: the request line, a "
			    "header or the body framing cannot be parsed");
		}
		break;
	case 413:
		code = "payload_too_large";
		snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes",
		    s->lim.max_body);
		break;
	case 417:
		code = "expectation_failed";
		snprintf(msg, sizeof(msg), "the only Expect supported is 100-continue");
		break;
	case 501:
		code = "not_implemented";
		snprintf(msg, sizeof(msg), "the request method is not supported");
		break;
	default:
		code = "http_error";
		snprintf(msg, sizeof(msg), "%s",
		    status_phrase(evstatus) ? status_phrase(evstatus) : "refused");
		break;
	}
	random_ids(raw, sizeof(raw));
	hex_encode(raw, sizeof(raw), id);
	o = json_object_new_object();
	json_set_str(o, "error", code);
	json_set_str(o, "message", msg);
	text = json_compact(o, &blen);
	json_object_put(o);

	/*
	 * bufferevent_socket keeps the start of its output frozen between writes (after
	 * bufferevent_setfd it is not, until the first write): thaw it for the swap and
	 * leave it as it was.
	 */
	frozen = evbuffer_copyout(out, &probe, 1) < 0;
	if (frozen)
		evbuffer_unfreeze(out, 1);
	s->rewriting = 1;
	if (off > 0) {
		head = evbuffer_new();
		evbuffer_remove_buffer(out, head, off);
	}
	evbuffer_drain(out, evbuffer_get_length(out));
	if (head != NULL) {
		evbuffer_add_buffer(out, head);
		evbuffer_free(head);
	}
	evbuffer_add_printf(out,
	    "%.8s %d %s\r\n%sContent-Type: application/json\r\nContent-Length: %zu\r\n"
	    "X-Request-Id: %s\r\nConnection: close\r\n\r\n",
	    page, status, status_phrase(status) ? status_phrase(status) : "Error", date, blen, id);
	evbuffer_add(out, text, blen);
	s->rewriting = 0;
	if (frozen)
		evbuffer_freeze(out, 1);
	free(text);

	secs = c->consumed > 0 ? (double)(loop_now_us(s) - c->start_us) / 1e6 : 0;
	if (c->evcon != NULL) {
		char *addr = NULL;
		ev_uint16_t port;

		evhttp_connection_get_peer(c->evcon, &addr, &port);
		peer = addr ? addr : "";
	}
	snprintf(status_text, sizeof(status_text), "%d", status);
	metric_add(m_requests, 1, "unmatched", "-", status_text);
	metric_observe(m_duration, secs, "unmatched");
	log_access(id, "-", "-", status, blen, secs * 1000.0, peer);
	c->consumed = 0;
}

static void
fixup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;

	while (s->nfixups > 0) {
		struct http_conn *c = s->fixups[--s->nfixups];

		c->queued = 0;
		rewrite_page(s, c);
	}
}

/* evhttp asks for each accepted connection's bufferevent: count it, adopt it soon. */
static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	struct http_server *s = arg;
	struct bufferevent *bev;
	struct http_conn *c;

	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->server = s;
	c->bev = bev;
	c->foreign = -1;
	c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), out_cb, c);
	c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), in_cb, c);
	if (s->nfresh == s->freshcap) {
		s->freshcap = s->freshcap ? s->freshcap * 2 : 64;
		s->fresh = xrealloc(s->fresh, (size_t)s->freshcap * sizeof(*s->fresh));
	}
	bufferevent_incref(bev);
	s->fresh[s->nfresh++] = c;
	event_active(s->ev_adopt, EV_TIMEOUT, 0);
	s->nconns++;
	if (s->nconns >= s->lim.max_connections)
		listeners_set_paused(s, 1);
	return bev;
}

/* --- requests ----------------------------------------------------------------------- */

static int
valid_request_id(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= 64 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                   (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return n > 0;
}

static void
req_free(struct http_req *r)
{
	if (r->matched)
		route_match_clear(&r->match);
	if (r->query != NULL) {
		evhttp_clear_headers(r->query);
		free(r->query);
	}
	free(r->path);
	free(r->query_raw);
	free(r);
}

/*
 * Send the reply, then account for it. evhttp_send_reply may free the evhttp request
 * (and with it the connection's peer string) when the client is gone, so everything
 * the metrics and the access line need is taken before it, and r->ev is not touched
 * after it.
 */
static void
send_reply(struct http_req *r, int status, struct evbuffer *body)
{
	struct http_server *s = r->server;
	struct http_conn *c = r->conn;
	struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
	size_t bytes = body ? evbuffer_get_length(body) : 0;
	double secs = (double)(now_mono_us() - r->start_us) / 1e6;
	const char *route = r->matched ? r->match.pattern : "unmatched";
	char status_text[8], peer[INET6_ADDRSTRLEN + 32];
	size_t peer_len;

	peer_len = strnlen(http_req_peer(r), sizeof(peer) - 1);
	memcpy(peer, http_req_peer(r), peer_len);
	peer[peer_len] = '\0';
	evhttp_add_header(out, "X-Request-Id", r->id);
	if (s->draining)
		evhttp_add_header(out, "Connection", "close");
	if (c != NULL) {
		/* The request is read: what evhttp reads next is the next one. */
		c->consumed = 0;
		c->del[0] = c->del[1] = 0;
		c->req = NULL;
	}
	s->replying = 1;
	evhttp_send_reply(r->ev, status, status_phrase(status), body);
	s->replying = 0;
	r->ev = NULL;
	/* evhttp sends later, never from inside evhttp_send_reply: c is still there. */
	if (c != NULL)
		evbuffer_cb_set_flags(
		    bufferevent_get_output(c->bev), c->out_cb, EVBUFFER_CB_ENABLED);

	snprintf(status_text, sizeof(status_text), "%d", status);
	metric_add(m_requests, 1, route, r->method, status_text);
	metric_observe(m_duration, secs, route);
	log_access(r->id, r->method, r->path, status, bytes, secs * 1000.0, peer);
	s->inflight--;
	req_free(r);
}

void
http_reply_header(struct http_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

static void
free_cb(const void *data, size_t len, void *arg)
{
	free((void *)(uintptr_t)data);
}

void
http_reply_raw(
    struct http_req *r, int status, const char *content_type, const void *body, size_t len)
{
	struct evbuffer *buf = evbuffer_new();

	if (content_type != NULL)
		http_reply_header(r, "Content-Type", content_type);
	if (len > 0)
		evbuffer_add(buf, body, len);
	send_reply(r, status, buf);
	evbuffer_free(buf);
}

void
http_reply_json(struct http_req *r, int status, struct json_object *body)
{
	struct evbuffer *buf = evbuffer_new();
	size_t len;
	char *text = json_compact(body, &len);

	json_object_put(body);
	http_reply_header(r, "Content-Type", "application/json");
	evbuffer_add_reference(buf, text, len, free_cb, NULL);
	send_reply(r, status, buf);
	evbuffer_free(buf);
}

void
http_reply_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_set_str(o, "error", code);
	json_set_str(o, "message", msg);
	http_reply_json(r, status, o);
}

const char *
http_req_method(const struct http_req *r)
{
	return r->method;
}

const char *
http_req_path(const struct http_req *r)
{
	return r->path;
}

const char *
http_req_route(const struct http_req *r)
{
	return r->matched ? r->match.pattern : NULL;
}

const char *
http_req_param(const struct http_req *r, const char *name)
{
	return r->matched ? route_param(&r->match, name) : NULL;
}

const char *
http_req_query(struct http_req *r, const char *name)
{
	if (r->query_raw == NULL)
		return NULL;
	if (r->query == NULL) {
		r->query = xcalloc(1, sizeof(*r->query));
		TAILQ_INIT(r->query);
		if (evhttp_parse_query_str(r->query_raw, r->query) != 0)
			evhttp_clear_headers(r->query);
	}
	return evhttp_find_header(r->query, name);
}

const char *
http_req_header(const struct http_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const unsigned char *
http_req_body(struct http_req *r, size_t *len)
{
	struct evbuffer *in;

	if (r->body == NULL) {
		in = evhttp_request_get_input_buffer(r->ev);
		r->body_len = evbuffer_get_length(in);
		/* One spare byte, so text bodies can be treated as C strings. */
		evbuffer_add(in, "", 1);
		r->body = evbuffer_pullup(in, -1);
	}
	*len = r->body_len;
	return r->body;
}

const char *
http_req_id(const struct http_req *r)
{
	return r->id;
}

const char *
http_req_peer(const struct http_req *r)
{
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
	char *addr = NULL;
	ev_uint16_t port;

	if (c == NULL)
		return "";
	evhttp_connection_get_peer(c, &addr, &port);
	return addr ? addr : "";
}

const struct sockaddr *
http_req_peer_addr(const struct http_req *r)
{
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);

	return c ? evhttp_connection_get_addr(c) : NULL;
}

char *
http_req_url(const struct http_req *r)
{
	const char *host = http_req_header(r, "Host");
	const char *proto = http_req_header(r, "X-Forwarded-Proto");

	return xasprintf("%s://%s%s", proto && strcmp(proto, "https") == 0 ? "https" : "http",
	    host ? host : "localhost", evhttp_request_get_uri(r->ev));
}

struct evhttp_request *
http_req_evhttp(struct http_req *r)
{
	return r->ev;
}

void
http_req_set_data(struct http_req *r, void *data)
{
	r->data = data;
}

void *
http_req_data(const struct http_req *r)
{
	return r->data;
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *
bearer_token(const struct http_req *r)
{
	const char *h = http_req_header(r, "Authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

static int
authorized(const struct http_req *r)
{
	const char *token = bearer_token(r);

	return token != NULL && r->server->auth != NULL &&
	       r->server->auth(token, r->server->auth_arg);
}

static void
unauthorized(struct http_req *r)
{
	http_reply_header(r, "WWW-Authenticate", "Bearer");
	http_reply_error(r, 401, "unauthorized",
	    bearer_token(r) ? "the bearer key is not valid" : "an admin bearer key is required");
}

static void
dispatch_cb(struct evhttp_request *ev, void *arg)
{
	struct http_server *s = arg;
	struct http_req *r = xcalloc(1, sizeof(*r));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	const char *rid = evhttp_find_header(evhttp_request_get_input_headers(ev), "X-Request-Id");
	struct route_entry *e;
	enum router_result result;
	size_t body_len;

	r->server = s;
	r->ev = ev;
	r->start_us = now_mono_us();
	/*
	 * evhttp dispatches right after consuming the request's last bytes, so the
	 * connection in_cb saw last is this one (checked). Until the reply only hookd writes
	 * on it: its output callback rests, which keeps the callbacks off the hot path.
	 */
	if (s->reading != NULL && s->reading->evcon == evhttp_request_get_connection(ev) &&
	    s->reading->req == NULL) {
		r->conn = s->reading;
		r->conn->req = r;
		evbuffer_cb_clear_flags(
		    bufferevent_get_output(r->conn->bev), r->conn->out_cb, EVBUFFER_CB_ENABLED);
	}
	s->reading = NULL;
	r->method = method_name(evhttp_request_get_command(ev));
	r->path = xstrdup(path && *path ? path : "/");
	r->query_raw = query ? xstrdup(query) : NULL;
	if (rid != NULL && valid_request_id(rid)) {
		snprintf(r->id, sizeof(r->id), "%s", rid);
	} else {
		unsigned char raw[8];

		random_ids(raw, sizeof(raw));
		hex_encode(raw, sizeof(raw), r->id);
	}
	s->inflight++;

	body_len = evbuffer_get_length(evhttp_request_get_input_buffer(ev));
	if (body_len > s->lim.max_body) {
		http_reply_header(r, "Connection", "close");
		http_reply_error(r, 413, "payload_too_large",
		    "request body is %zu bytes; the limit is %zu", body_len, s->lim.max_body);
		return;
	}
	result = router_match(s->router, r->method, r->path, &r->match);
	/* Under /api/, strangers learn nothing about which routes exist. */
	if (result != ROUTER_FOUND && strncmp(r->path, "/api/", 5) == 0 && !authorized(r)) {
		route_match_clear(&r->match);
		unauthorized(r);
		return;
	}
	switch (result) {
	case ROUTER_NOT_FOUND:
		http_reply_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
		return;
	case ROUTER_METHOD_NOT_ALLOWED:
		http_reply_header(r, "Allow", r->match.allow);
		http_reply_error(r, 405, "method_not_allowed",
		    "%s is not allowed here; allowed: %s", r->method, r->match.allow);
		return;
	case ROUTER_FOUND: r->matched = 1; break;
	}
	if ((r->match.flags & HTTP_ADMIN) && !authorized(r)) {
		unauthorized(r);
		return;
	}
	e = r->match.handler;
	e->fn(r, e->arg);
}

/* --- server ------------------------------------------------------------------------- */

static void
apply_limits(struct http_server *s)
{
	struct timeval tv = {s->lim.timeout_ms / 1000, (s->lim.timeout_ms % 1000) * 1000};

	evhttp_set_max_headers_size(s->http, (ev_ssize_t)s->lim.max_header);
	evhttp_set_max_body_size(s->http, (ev_ssize_t)(s->lim.max_body * EVHTTP_CAP_FACTOR));
	evhttp_set_timeout_tv(s->http, &tv);
	if (s->paused && s->nconns < s->lim.max_connections)
		listeners_set_paused(s, 0);
}

struct http_server *
http_server_new(struct event_base *base, const struct http_limits *lim)
{
	struct http_server *s = xcalloc(1, sizeof(*s));

	metrics_init();
	metrics_on_collect(collect_cb, s);
	s->base = base;
	s->lim = *lim;
	s->router = router_new();
	s->http = evhttp_new(base);
	if (s->http == NULL) {
		log_error("http: evhttp_new failed");
		abort();
	}
	/*
	 * Every method evhttp knows reaches the router (405 with Allow, or 404) but CONNECT,
	 * whose replies evhttp sends without a Content-Length; evhttp refuses it and
	 * unknown methods itself (501, rewritten into JSON).
	 */
	evhttp_set_allowed_methods(s->http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(s->http, "application/json");
	evhttp_set_gencb(s->http, dispatch_cb, s);
	evhttp_set_bevcb(s->http, bev_cb, s);
	evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
	s->ev_adopt = event_new(base, -1, 0, adopt_cb, s);
	s->ev_fixup = event_new(base, -1, 0, fixup_cb, s);
	apply_limits(s);
	return s;
}

void
http_server_set_limits(struct http_server *s, const struct http_limits *lim)
{
	s->lim = *lim;
	apply_limits(s);
}

void
http_server_set_auth(struct http_server *s, int (*auth)(const char *, void *), void *arg)
{
	s->auth = auth;
	s->auth_arg = arg;
}

void
http_server_route(struct http_server *s, const char *method, const char *pattern, unsigned flags,
    http_handler fn, void *arg)
{
	struct route_entry *e = xmalloc(sizeof(*e));

	e->fn = fn;
	e->arg = arg;
	if (router_add(s->router, method, pattern, e, flags) != 0) {
		log_error("http: bad route pattern %s %s", method, pattern);
		abort();
	}
	s->entries = xrealloc(s->entries, (size_t)(s->nentries + 1) * sizeof(*s->entries));
	s->entries[s->nentries++] = e;
}

int
http_server_listen(struct http_server *s, const char *addrs, char *err, size_t errlen)
{
	struct config_listen l[CONFIG_MAX_LISTEN];
	char *why = NULL;
	int n;

	if (config_listen_parse(addrs, l, &n, &why) != 0) {
		snprintf(err, errlen, "%s", why ? why : "listen: invalid");
		free(why);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct evconnlistener *lev;

		lev = evconnlistener_new_bind(s->base, NULL, NULL,
		    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
		    (struct sockaddr *)&l[i].addr, l[i].addrlen);
		if (lev == NULL) {
			snprintf(err, errlen, "cannot listen on %s: %s", l[i].text,
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
			return -1;
		}
		s->bound[s->nbound] = evhttp_bind_listener(s->http, lev);
		if (s->bound[s->nbound] == NULL) {
			evconnlistener_free(lev);
			snprintf(err, errlen, "cannot serve HTTP on %s", l[i].text);
			return -1;
		}
		s->nbound++;
		log_info("http: listening on %s", l[i].text);
	}
	return 0;
}

int
http_server_port(const struct http_server *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd;

	if (s->nbound == 0)
		return -1;
	fd = evhttp_bound_socket_get_fd(s->bound[0]);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void
http_server_drain(struct http_server *s)
{
	for (int i = 0; i < s->nbound; i++)
		evhttp_del_accept_socket(s->http, s->bound[i]);
	s->nbound = 0;
	s->draining = 1;
}

int
http_server_inflight(const struct http_server *s)
{
	return s->inflight;
}

int
http_server_flushed(const struct http_server *s)
{
	if (s->inflight > 0)
		return 0;
	for (const struct http_conn *c = s->conns; c != NULL; c = c->next) {
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
			return 0;
	}
	return 1;
}

int
http_server_connections(const struct http_server *s)
{
	return s->nconns;
}

void
http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	/* Connections freed by evhttp_free (perhaps later) must not reach into the server. */
	adopt_cb(-1, 0, s);
	for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
		c->server = NULL;
		c->queued = 0;
	}
	s->conns = NULL;
	s->nfixups = 0;
	evhttp_free(s->http);
	event_free(s->ev_adopt);
	event_free(s->ev_fixup);
	free(s->fresh);
	free(s->fixups);
	router_free(s->router);
	for (int i = 0; i < s->nentries; i++)
		free(s->entries[i]);
	free(s->entries);
	free(s);
}
