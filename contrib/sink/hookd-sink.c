/* SPDX-License-Identifier: ISC */
/* The delivery tests' and benchmark's receiver: answers as its URL's query says, records what came.
 */
/*
 * hookd-sink [-b ADDR] [-p PORT] [-n RECORDS] [-q] [--tls CERT KEY]
 *
 * Every request is answered 200 "ok" unless its query says otherwise:
 *   status=N          answer N
 *   fail=N            answer `status` (default 500) to the first N requests with this exact
 *                     path and query, then 200
 *   delay_ms=N        wait N ms before answering (a timer; other requests go on meanwhile)
 *   retry_after=S     add Retry-After: S
 *   location=URL      add Location: URL
 *   close=1           close the connection without answering (with fail=N: the first N only)
 *   body=TEXT         answer TEXT;  size=N: answer N bytes of 'x'
 *   chunked=1         send the body with Transfer-Encoding: chunked
 * Requests are recorded (method, path and query, headers, body, receive time, and for TLS
 * the server name the client asked for with SNI) in a ring of the last RECORDS (default
 * 100000) and served as JSON:
 *   GET /_requests[?path=/prefix]   the records, oldest first
 *   DELETE /_requests               forget records, counters and connection statistics
 *   GET /_stats                     {"received","by_path","first_ms","last_ms","connections",
 *                                    "open","max_open"}; connections are those that carried
 *                                    a recorded request
 * "listening on PORT" goes to stdout once the socket is bound (-p 0 picks a free port).
 * With --tls, a second listener on a free port of the same address serves the same requests
 * (the control endpoints too) in plain HTTP, and "plain on PORT" follows on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define NBUCKETS 4096
/* What both listeners accept. */
#define SINK_METHODS                                                                               \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH)

struct record {
	char *method;
	char *target;  /* path and query as sent */
	char *headers; /* a JSON object, names lower-cased */
	char *body;
	size_t body_len;
	double ms;     /* unix time of receipt, milliseconds */
	unsigned conn; /* connection number */
	int tls;       /* came over TLS */
	char *sni;     /* the TLS server name the client sent, or NULL */
};

/* A string-keyed counter: requests per path, failures served per path and query. */
struct counter {
	struct counter *next;
	char *key;
	uint64_t n;
};

/* A connection that carried a recorded request. */
struct sconn {
	struct sconn *next;
	struct evhttp_connection *evcon;
	unsigned id;
	unsigned gen; /* counted in this generation of the statistics */
};

/* How to answer one request, from its query. */
struct plan {
	int status;
	int close;
	int chunked;
	long delay_ms;
	long size;
	char *body;
	char *retry_after;
	char *location;
};

struct delayed {
	struct evhttp_request *req;
	struct event *ev;
	struct plan plan;
};

static struct event_base *base;
static int quiet;
static struct record *ring;
static size_t ring_cap = 100000, ring_head, ring_len;
static struct counter *by_path[NBUCKETS], *failures[NBUCKETS];
static uint64_t received;
static double first_ms, last_ms;
static struct sconn *conns[NBUCKETS];
static unsigned next_conn_id, conns_open, conns_max_open, conns_seen, conns_gen;

static void *
xmalloc(size_t n)
{
	void *p = malloc(n > 0 ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "hookd-sink: out of memory\n");
		abort();
	}
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

static unsigned
hash_str(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKETS;
}

static struct counter *
counter_get(struct counter **table, const char *key)
{
	unsigned h = hash_str(key);
	struct counter *c;

	for (c = table[h]; c != NULL; c = c->next) {
		if (strcmp(c->key, key) == 0)
			return c;
	}
	c = xmalloc(sizeof(*c));
	c->key = xstrdup(key);
	c->n = 0;
	c->next = table[h];
	table[h] = c;
	return c;
}

static void
counters_clear(struct counter **table)
{
	for (int i = 0; i < NBUCKETS; i++) {
		while (table[i] != NULL) {
			struct counter *c = table[i];

			table[i] = c->next;
			free(c->key);
			free(c);
		}
	}
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* --- JSON output ----------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string (with quotes); bytes that are not UTF-8 become U+FFFD. */
static void
json_str(struct evbuffer *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	evbuffer_add(out, "\"", 1);
	while (i < n) {
		unsigned char ch = p[i];
		size_t len = utf8_len(p + i, n - i);

		if (len > 0 && ch >= 0x20 && ch != '"' && ch != '\\') {
			i += len;
			run += len;
			continue;
		}
		if (run > 0)
			evbuffer_add(out, p + i - run, run);
		run = 0;
		if (len == 0)
			evbuffer_add(out, "\\ufffd", 6);
		else if (ch == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (ch == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (ch == '\n')
			evbuffer_add(out, "\\n", 2);
		else if (ch == '\r')
			evbuffer_add(out, "\\r", 2);
		else if (ch == '\t')
			evbuffer_add(out, "\\t", 2);
		else
			evbuffer_add_printf(out, "\\u%04x", ch);
		i++;
	}
	if (run > 0)
		evbuffer_add(out, p + i - run, run);
	evbuffer_add(out, "\"", 1);
}

static char *
buffer_text(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = xmalloc(n + 1);

	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

/* --- records --------------------------------------------------------------------------- */

static void
record_free(struct record *r)
{
	free(r->method);
	free(r->target);
	free(r->headers);
	free(r->body);
	free(r->sni);
	memset(r, 0, sizeof(*r));
}

static void
records_clear(void)
{
	for (size_t i = 0; i < ring_len; i++)
		record_free(&ring[(ring_head + i) % ring_cap]);
	ring_head = ring_len = 0;
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

static void
conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct sconn *sc = arg, **pp;
	unsigned h = (unsigned)(((uintptr_t)evcon >> 4) % NBUCKETS);

	for (pp = &conns[h]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == sc) {
			*pp = sc->next;
			break;
		}
	}
	if (sc->gen == conns_gen)
		conns_open--;
	free(sc);
}

/* The connection's number, counting it the first time it carries a recorded request. */
static unsigned
conn_note(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	unsigned h = (unsigned)(((uintptr_t)evcon >> 4) % NBUCKETS);
	struct sconn *sc;

	if (evcon == NULL)
		return 0;
	for (sc = conns[h]; sc != NULL; sc = sc->next) {
		if (sc->evcon == evcon)
			break;
	}
	if (sc == NULL) {
		struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
		int one = 1;

		/* A TLS answer leaves in several records: do not let Nagle hold the last one. */
		if (bev != NULL && bufferevent_getfd(bev) >= 0)
			(void)setsockopt(
			    bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sc = xmalloc(sizeof(*sc));
		sc->evcon = evcon;
		sc->id = ++next_conn_id;
		sc->gen = conns_gen - 1;
		sc->next = conns[h];
		conns[h] = sc;
		evhttp_connection_set_closecb(evcon, conn_close_cb, sc);
	}
	if (sc->gen != conns_gen) {
		sc->gen = conns_gen;
		conns_seen++;
		conns_open++;
		if (conns_open > conns_max_open)
			conns_max_open = conns_open;
	}
	return sc->id;
}

static void
record(struct evhttp_request *req, const char *path)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
	struct evbuffer *hb;
	struct evkeyval *kv;
	struct record *r;
	double ms = now_ms();
	unsigned conn = conn_note(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	int first = 1;

	received++;
	if (received == 1)
		first_ms = ms;
	last_ms = ms;
	counter_get(by_path, path)->n++;
	if (ring_cap == 0)
		return;
	if (ring_len == ring_cap) {
		record_free(&ring[ring_head]);
		ring_head = (ring_head + 1) % ring_cap;
		ring_len--;
	}
	r = &ring[(ring_head + ring_len) % ring_cap];
	ring_len++;
	r->method = xstrdup(method_name(evhttp_request_get_command(req)));
	r->target = xstrdup(evhttp_request_get_uri(req));
	hb = evbuffer_new();
	evbuffer_add(hb, "{", 1);
	TAILQ_FOREACH(kv, hdrs, next)
	{
		char *lower = xstrdup(kv->key);

		for (char *p = lower; *p != '\0'; p++) {
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		}
		if (!first)
			evbuffer_add(hb, ",", 1);
		first = 0;
		json_str(hb, lower, strlen(lower));
		evbuffer_add(hb, ":", 1);
		json_str(hb, kv->value, strlen(kv->value));
		free(lower);
	}
	evbuffer_add(hb, "}", 1);
	r->headers = buffer_text(hb);
	evbuffer_free(hb);
	r->body_len = evbuffer_get_length(in);
	r->body = xmalloc(r->body_len + 1);
	evbuffer_copyout(in, r->body, r->body_len);
	r->body[r->body_len] = '\0';
	r->ms = ms;
	r->conn = conn;
	if (ssl != NULL) {
		const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

		r->tls = 1;
		r->sni = name != NULL ? xstrdup(name) : NULL;
	}
}

/* --- answers --------------------------------------------------------------------------- */

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 410: return "Gone";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	}
	return "Status";
}

static void
plan_free(struct plan *pl)
{
	free(pl->body);
	free(pl->retry_after);
	free(pl->location);
}

static void
send_answer(struct evhttp_request *req, struct plan *pl)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *body;

	if (pl->close) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
		evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

		/* The peer sees the close before any byte; evhttp then drops the connection. */
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
		evhttp_send_reply(req, 500, "Closed", NULL);
		return;
	}
	body = evbuffer_new();
	if (pl->size > 0) {
		char chunk[4096];

		memset(chunk, 'x', sizeof(chunk));
		for (long left = pl->size; left > 0; left -= (long)sizeof(chunk))
			evbuffer_add(
			    body, chunk, left < (long)sizeof(chunk) ? (size_t)left : sizeof(chunk));
	} else {
		const char *text = pl->body != NULL ? pl->body : "ok";

		evbuffer_add(body, text, strlen(text));
	}
	evhttp_add_header(out, "Content-Type", "text/plain");
	if (pl->retry_after != NULL)
		evhttp_add_header(out, "Retry-After", pl->retry_after);
	if (pl->location != NULL)
		evhttp_add_header(out, "Location", pl->location);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp 2.1 would send the body after a HEAD response: send none. */
		evhttp_send_reply(req, pl->status, reason(pl->status), NULL);
	} else if (pl->chunked) {
		size_t n = evbuffer_get_length(body), half = n / 2;
		struct evbuffer *part = evbuffer_new();

		evhttp_send_reply_start(req, pl->status, reason(pl->status));
		evbuffer_remove_buffer(body, part, half);
		if (half > 0)
			evhttp_send_reply_chunk(req, part);
		if (evbuffer_get_length(body) > 0)
			evhttp_send_reply_chunk(req, body);
		evhttp_send_reply_end(req);
		evbuffer_free(part);
	} else {
		evhttp_send_reply(req, pl->status, reason(pl->status), body);
	}
	evbuffer_free(body);
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;

	/* If the client left meanwhile, evhttp detached the request and this just frees it. */
	send_answer(d->req, &d->plan);
	plan_free(&d->plan);
	event_free(d->ev);
	free(d);
}

static long
query_long(struct evkeyvalq *q, const char *name, long dflt)
{
	const char *v = evhttp_find_header(q, name);
	char *end;
	long n;

	if (v == NULL)
		return dflt;
	n = strtol(v, &end, 10);
	return end != v && *end == '\0' ? n : dflt;
}

static void
make_plan(struct evhttp_request *req, const char *query, struct plan *pl)
{
	struct evkeyvalq q;
	const char *v;
	long fail;

	memset(pl, 0, sizeof(*pl));
	pl->status = 200;
	TAILQ_INIT(&q);
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0)
		return;
	fail = query_long(&q, "fail", -1);
	if (fail >= 0) {
		struct counter *c = counter_get(failures, evhttp_request_get_uri(req));

		if (c->n < (uint64_t)fail) {
			c->n++;
			pl->status = (int)query_long(&q, "status", 500);
			pl->close = query_long(&q, "close", 0) == 1;
		}
	} else {
		pl->status = (int)query_long(&q, "status", 200);
		pl->close = query_long(&q, "close", 0) == 1;
	}
	if (pl->status < 100 || pl->status > 999)
		pl->status = 200;
	pl->delay_ms = query_long(&q, "delay_ms", 0);
	pl->size = query_long(&q, "size", 0);
	pl->chunked = query_long(&q, "chunked", 0) == 1;
	if ((v = evhttp_find_header(&q, "body")) != NULL)
		pl->body = xstrdup(v);
	if ((v = evhttp_find_header(&q, "retry_after")) != NULL)
		pl->retry_after = xstrdup(v);
	if ((v = evhttp_find_header(&q, "location")) != NULL)
		pl->location = xstrdup(v);
	evhttp_clear_headers(&q);
}

/* --- control endpoints ----------------------------------------------------------------- */

static void
reply_json(struct evhttp_request *req, struct evbuffer *b)
{
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
}

static void
serve_requests(struct evhttp_request *req, const char *query)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq q;
	const char *prefix = NULL;
	size_t plen = 0;
	int first = 1;

	TAILQ_INIT(&q);
	if (query != NULL && evhttp_parse_query_str(query, &q) == 0)
		prefix = evhttp_find_header(&q, "path");
	if (prefix != NULL)
		plen = strlen(prefix);
	evbuffer_add(b, "[", 1);
	for (size_t i = 0; i < ring_len; i++) {
		const struct record *r = &ring[(ring_head + i) % ring_cap];

		if (prefix != NULL && strncmp(r->target, prefix, plen) != 0)
			continue;
		if (!first)
			evbuffer_add(b, ",\n", 2);
		first = 0;
		evbuffer_add(b, "{\"method\":", 10);
		json_str(b, r->method, strlen(r->method));
		evbuffer_add(b, ",\"path\":", 8);
		json_str(b, r->target, strlen(r->target));
		evbuffer_add_printf(b, ",\"ms\":%.3f,\"conn\":%u,\"tls\":%s,\"sni\":", r->ms,
		    r->conn, r->tls ? "true" : "false");
		if (r->sni != NULL)
			json_str(b, r->sni, strlen(r->sni));
		else
			evbuffer_add(b, "null", 4);
		evbuffer_add_printf(b, ",\"headers\":%s,\"body\":", r->headers);
		json_str(b, r->body, r->body_len);
		evbuffer_add(b, "}", 1);
	}
	evbuffer_add(b, "]\n", 2);
	evhttp_clear_headers(&q);
	reply_json(req, b);
	evbuffer_free(b);
}

static void
serve_stats(struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	int first = 1;

	evbuffer_add_printf(b, "{\"received\":%llu,\"by_path\":{", (unsigned long long)received);
	for (int i = 0; i < NBUCKETS; i++) {
		for (struct counter *c = by_path[i]; c != NULL; c = c->next) {
			if (!first)
				evbuffer_add(b, ",", 1);
			first = 0;
			json_str(b, c->key, strlen(c->key));
			evbuffer_add_printf(b, ":%llu", (unsigned long long)c->n);
		}
	}
	evbuffer_add(b, "},", 2);
	if (received > 0)
		evbuffer_add_printf(b, "\"first_ms\":%.3f,\"last_ms\":%.3f", first_ms, last_ms);
	else
		evbuffer_add_printf(b, "\"first_ms\":null,\"last_ms\":null");
	evbuffer_add_printf(b, ",\"connections\":%u,\"open\":%u,\"max_open\":%u}\n", conns_seen,
	    conns_open, conns_max_open);
	reply_json(req, b);
	evbuffer_free(b);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct plan pl;

	if (path == NULL || path[0] == '\0')
		path = "/";
	if (strcmp(path, "/_requests") == 0 && cmd == EVHTTP_REQ_GET) {
		serve_requests(req, query);
		return;
	}
	if (strcmp(path, "/_requests") == 0 && cmd == EVHTTP_REQ_DELETE) {
		struct evbuffer *b = evbuffer_new();

		records_clear();
		counters_clear(by_path);
		counters_clear(failures);
		received = 0;
		first_ms = last_ms = 0;
		/* Connections open now count again when they carry a request. */
		conns_gen++;
		conns_seen = conns_open = conns_max_open = 0;
		evbuffer_add_printf(b, "{\"cleared\":true}\n");
		reply_json(req, b);
		evbuffer_free(b);
		return;
	}
	if (strcmp(path, "/_stats") == 0) {
		serve_stats(req);
		return;
	}
	record(req, path);
	make_plan(req, query, &pl);
	if (!quiet)
		fprintf(stderr, "%s %s -> %d%s\n", method_name(cmd), evhttp_request_get_uri(req),
		    pl.status, pl.close ? " (close)" : "");
	if (pl.delay_ms > 0) {
		struct delayed *d = xmalloc(sizeof(*d));
		struct timeval tv = {pl.delay_ms / 1000, (pl.delay_ms % 1000) * 1000};

		d->req = req;
		d->plan = pl;
		d->ev = evtimer_new(base, delay_cb, d);
		evtimer_add(d->ev, &tv);
		return;
	}
	send_answer(req, &pl);
	plan_free(&pl);
}

/* --- TLS ------------------------------------------------------------------------------- */

static struct bufferevent *
tls_bev_cb(struct event_base *b, void *arg)
{
	SSL *ssl = SSL_new(arg);

	return bufferevent_openssl_socket_new(
	    b, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static SSL_CTX *
tls_context(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "hookd-sink: cannot load %s / %s: %s\n", cert, key,
		    ERR_reason_error_string(ERR_get_error()));
		exit(1);
	}
	return ctx;
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(base, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: hookd-sink [-b ADDR] [-p PORT] [-n RECORDS] [-q] "
	                "[--tls CERT KEY]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"tls", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
	const char *addr = "127.0.0.1", *cert = NULL, *key = NULL;
	struct evhttp_bound_socket *bound, *plain_bound;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct event *term, *intr;
	struct evhttp *http, *plain = NULL;
	SSL_CTX *ctx = NULL;
	int port = 0, ch;

	while ((ch = getopt_long(argc, argv, "+b:p:n:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': ring_cap = (size_t)strtoul(optarg, NULL, 10); break;
		case 'q': quiet = 1; break;
		case 't':
			/* --tls CERT KEY: the key is the next argument. */
			if (optind >= argc)
				usage();
			cert = optarg;
			key = argv[optind++];
			break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL)
		return 1;
	if (ring_cap > 0)
		ring = calloc(ring_cap, sizeof(*ring));
	http = evhttp_new(base);
	evhttp_set_allowed_methods(http, SINK_METHODS);
	evhttp_set_gencb(http, request_cb, NULL);
	if (cert != NULL) {
		ctx = tls_context(cert, key);
		evhttp_set_bevcb(http, tls_bev_cb, ctx);
	}
	bound = evhttp_bind_socket_with_handle(http, addr, (ev_uint16_t)port);
	if (bound == NULL) {
		fprintf(stderr, "hookd-sink: cannot listen on %s:%d: %s\n", addr, port,
		    strerror(errno));
		return 1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                      : ((struct sockaddr_in *)&ss)->sin_port);
	printf("listening on %d\n", port);
	if (ctx != NULL) {
		/* The same requests in plain HTTP, for control requests from tools without TLS. */
		plain = evhttp_new(base);
		evhttp_set_allowed_methods(plain, SINK_METHODS);
		evhttp_set_gencb(plain, request_cb, NULL);
		plain_bound = evhttp_bind_socket_with_handle(plain, addr, 0);
		sslen = sizeof(ss);
		if (plain_bound == NULL || getsockname(evhttp_bound_socket_get_fd(plain_bound),
		                               (struct sockaddr *)&ss, &sslen) != 0) {
			fprintf(stderr, "hookd-sink: cannot listen on %s for plain HTTP: %s\n",
			    addr, strerror(errno));
			return 1;
		}
		printf("plain on %d\n",
		    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                   : ((struct sockaddr_in *)&ss)->sin_port));
	}
	fflush(stdout);
	term = evsignal_new(base, SIGTERM, stop_cb, NULL);
	intr = evsignal_new(base, SIGINT, stop_cb, NULL);
	event_add(term, NULL);
	event_add(intr, NULL);
	event_base_dispatch(base);
	event_free(term);
	event_free(intr);
	evhttp_free(http);
	if (plain != NULL)
		evhttp_free(plain);
	records_clear();
	free(ring);
	counters_clear(by_path);
	counters_clear(failures);
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	event_base_free(base);
	return 0;
}
