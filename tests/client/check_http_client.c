/* SPDX-License-Identifier: ISC */
/* The outbound HTTP client against real servers: the sink (plain and TLS), raw sockets, a fake DNS.
 */
/*
 * Run by run-check-http-client.sh, which starts hookd-sink twice and exports SINK_PORT,
 * SINK_TLS_PORT and TEST_CA_FILE (the CA that signed the TLS sink's certificate, whose
 * names are sink.test and 127.0.0.1). Names resolve through a DNS server inside this
 * process: sink.test and wrong.test are 127.0.0.1, multi.test is 127.0.0.2 then 127.0.0.1,
 * blackhole.test never answers, everything else is NXDOMAIN.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>

#include "hookd/http_client.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/netguard.h"
#include "hookd/util.h"

static struct event_base *base;
static struct evdns_base *dns;
static struct event *ticker;
static int sink_port, tls_port;
static const char *ca_file;
static struct cidr loopback;
static struct http_client *control; /* talks to the sinks' control endpoints */

/* --- harness --------------------------------------------------------------------------- */

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until *flag is set or ms pass. */
static int
wait_flag(const int *flag, int ms)
{
	uint64_t end = now_mono_ms() + (uint64_t)ms;

	while (!*flag) {
		if (now_mono_ms() >= end)
			return 0;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return 1;
}

static void
spin(int ms)
{
	int never = 0;

	wait_flag(&never, ms);
}

/* --- a DNS server on the loop ---------------------------------------------------------- */

static evutil_socket_t dns_fd = -1;
static struct event *dns_ev;
static int dns_queries;

static int
name_is(const unsigned char *q, size_t n, size_t *end, const char *want)
{
	char name[256];
	size_t i = 0, w = 0;

	while (i < n && q[i] != 0) {
		size_t len = q[i++];

		if (i + len > n || w + len + 1 >= sizeof(name))
			return 0;
		if (w > 0)
			name[w++] = '.';
		memcpy(name + w, q + i, len);
		w += len;
		i += len;
	}
	name[w] = '\0';
	*end = i + 1;
	return strcasecmp(name, want) == 0;
}

static void
dns_read_cb(evutil_socket_t fd, short what, void *arg)
{
	unsigned char q[512], r[1024];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
	size_t qend, len;
	const char *v4[2] = {NULL, NULL};
	int qtype, nans = 0, rcode = 0;

	if (n < 17)
		return;
	dns_queries++;
	if (name_is(q + 12, (size_t)n - 12, &qend, "blackhole.test"))
		return;
	qend += 12;
	if (qend + 4 > (size_t)n)
		return;
	qtype = q[qend] << 8 | q[qend + 1];
	if (name_is(q + 12, (size_t)n - 12, &len, "sink.test") ||
	    name_is(q + 12, (size_t)n - 12, &len, "wrong.test")) {
		v4[0] = "127.0.0.1";
	} else if (name_is(q + 12, (size_t)n - 12, &len, "multi.test")) {
		v4[0] = "127.0.0.2";
		v4[1] = "127.0.0.1";
	} else {
		rcode = 3; /* NXDOMAIN */
	}
	memcpy(r, q, qend + 4);
	r[2] = 0x81;                          /* QR, RD */
	r[3] = (unsigned char)(0x80 | rcode); /* RA */
	r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
	len = qend + 4;
	for (int i = 0; i < 2 && qtype == 1 && v4[i] != NULL; i++) {
		static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};

		memcpy(r + len, rr, sizeof(rr));
		len += sizeof(rr);
		inet_pton(AF_INET, v4[i], r + len);
		len += 4;
		nans++;
	}
	r[7] = (unsigned char)nans;
	(void)sendto(fd, r, len, 0, (struct sockaddr *)&from, fromlen);
}

static void
dns_start(void)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	char ns[64];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dns_fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(dns_fd, 0);
	ck_assert_int_eq(bind(dns_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(dns_fd, (struct sockaddr *)&sin, &slen), 0);
	evutil_make_socket_nonblocking(dns_fd);
	dns_ev = event_new(base, dns_fd, EV_READ | EV_PERSIST, dns_read_cb, NULL);
	event_add(dns_ev, NULL);
	dns = evdns_base_new(base, 0);
	snprintf(ns, sizeof(ns), "127.0.0.1:%d", ntohs(sin.sin_port));
	ck_assert_int_eq(evdns_base_nameserver_ip_add(dns, ns), 0);
	ck_assert_int_eq(evdns_base_set_option(dns, "timeout:", "2"), 0);
}

/* --- raw servers: exact bytes on the wire ---------------------------------------------- */

struct raw_server {
	struct evconnlistener *l;
	evutil_socket_t fd;     /* a bare listening socket (backlog 0), when l is NULL */
	evutil_socket_t filler; /* the connection that fills its backlog */
	int port;
	const char *response; /* sent after each request head; NULL: never answer */
	int close_after;      /* close right after answering */
	int idle_close_ms;    /* close this long after answering */
	int accepted, requests;
	struct bufferevent *bevs[64];
	struct event *timers[64];
	int answered[64];
	int nbev;
};

static void
raw_close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;

	/* Freed at teardown; here only the socket goes. */
	shutdown(bufferevent_getfd(bev), SHUT_RDWR);
}

static void
raw_write_cb(struct bufferevent *bev, void *arg)
{
	struct raw_server *rs = arg;

	/* libevent also calls this before anything was written: wait for the answer. */
	for (int i = 0; i < rs->nbev; i++) {
		if (rs->bevs[i] == bev && rs->answered[i] && rs->close_after &&
		    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			shutdown(bufferevent_getfd(bev), SHUT_RDWR);
	}
}

static void
raw_read_cb(struct bufferevent *bev, void *arg)
{
	struct raw_server *rs = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr p;

	while ((p = evbuffer_search(in, "\r\n\r\n", 4, NULL)).pos >= 0) {
		evbuffer_drain(in, (size_t)p.pos + 4);
		rs->requests++;
		if (rs->response == NULL)
			continue;
		bufferevent_write(bev, rs->response, strlen(rs->response));
		for (int i = 0; i < rs->nbev; i++) {
			struct timeval tv = {0, rs->idle_close_ms * 1000};

			if (rs->bevs[i] != bev)
				continue;
			rs->answered[i] = 1;
			if (rs->idle_close_ms > 0)
				evtimer_add(rs->timers[i], &tv);
		}
	}
}

static void
raw_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_disable(bev, EV_READ | EV_WRITE);
}

static void
raw_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct raw_server *rs = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);

	ck_assert_int_lt(rs->nbev, 64);
	rs->accepted++;
	rs->timers[rs->nbev] = evtimer_new(base, raw_close_cb, bev);
	rs->bevs[rs->nbev++] = bev;
	bufferevent_setcb(bev, raw_read_cb, raw_write_cb, raw_event_cb, rs);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static int
bound_port(evutil_socket_t fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void
raw_start(struct raw_server *rs, const char *response)
{
	struct sockaddr_in sin;

	memset(rs, 0, sizeof(*rs));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rs->response = response;
	rs->fd = -1;
	rs->l = evconnlistener_new_bind(base, raw_accept_cb, rs,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof(sin));
	ck_assert_ptr_nonnull(rs->l);
	rs->port = bound_port(evconnlistener_get_fd(rs->l));
}

/* A socket that listens with a full backlog: connects to it hang (SYNs are dropped). */
static void
raw_start_full(struct raw_server *rs)
{
	struct sockaddr_in sin;
	int filler;

	memset(rs, 0, sizeof(*rs));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rs->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(rs->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(rs->fd, 0), 0);
	rs->port = bound_port(rs->fd);
	sin.sin_port = htons((uint16_t)rs->port);
	filler = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(filler, (struct sockaddr *)&sin, sizeof(sin)), 0);
	rs->filler = filler;
}

static void
raw_stop(struct raw_server *rs)
{
	for (int i = 0; i < rs->nbev; i++) {
		event_free(rs->timers[i]);
		bufferevent_free(rs->bevs[i]);
	}
	if (rs->l != NULL)
		evconnlistener_free(rs->l);
	if (rs->fd >= 0) {
		close(rs->filler);
		close(rs->fd);
	}
	memset(rs, 0, sizeof(*rs));
}

/* A loopback port nobody listens on. */
static int
closed_port(void)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	port = bound_port(fd);
	close(fd);
	return port;
}

/* --- calls ------------------------------------------------------------------------------ */

struct result {
	int done, calls;
	enum http_call_error error;
	int status, truncated, reused;
	char *body, *location, *retry_after, *text, *remote;
	size_t body_len;
	double ms, queue_ms;
};

static void
result_clear(struct result *r)
{
	free(r->body);
	free(r->location);
	free(r->retry_after);
	free(r->text);
	free(r->remote);
	memset(r, 0, sizeof(*r));
}

static void
store_cb(const struct http_call_result *cr, void *arg)
{
	struct result *r = arg;

	ck_assert_ptr_nonnull(cr->error_text);
	ck_assert_ptr_nonnull(cr->remote);
	r->calls++;
	r->done = 1;
	r->error = cr->error;
	r->status = cr->status;
	r->truncated = cr->body_truncated;
	r->reused = cr->reused;
	r->body_len = cr->body_len;
	r->body = xstrndup(cr->body != NULL ? cr->body : "", cr->body_len);
	r->location = cr->location ? xstrdup(cr->location) : NULL;
	r->retry_after = cr->retry_after ? xstrdup(cr->retry_after) : NULL;
	r->text = xstrdup(cr->error_text);
	r->remote = xstrdup(cr->remote);
	r->ms = cr->duration_ms;
	r->queue_ms = cr->queue_ms;
}

struct call_opts {
	const char *method;
	const char *body;
	int timeout_ms;
	const struct cidr *pin;
	int npin;
	const struct http_header *headers;
	int nheaders;
};

static struct http_call *
start(struct http_client *c, const char *url, const struct call_opts *o, struct result *r)
{
	struct http_call_request req;
	struct http_call *call;

	memset(&req, 0, sizeof(req));
	req.url = url;
	req.method = o && o->method ? o->method : "GET";
	req.body = o ? o->body : NULL;
	req.body_len = o && o->body ? strlen(o->body) : 0;
	req.timeout_ms = o && o->timeout_ms ? o->timeout_ms : 5000;
	req.pin = o ? o->pin : NULL;
	req.npin = o ? o->npin : 0;
	req.headers = o ? o->headers : NULL;
	req.nheaders = o ? o->nheaders : 0;
	result_clear(r);
	call = http_client_call(c, &req, store_cb, r);
	ck_assert_ptr_nonnull(call);
	/* Never inside http_client_call. */
	ck_assert_int_eq(r->done, 0);
	return call;
}

static void
call_sync(struct http_client *c, const char *url, const struct call_opts *o, struct result *r)
{
	start(c, url, o, r);
	ck_assert_msg(wait_flag(&r->done, 10000), "%s: no result", url);
}

static char *
sink_url(int port, int tls, const char *host, const char *path)
{
	return xasprintf("%s://%s:%d%s", tls ? "https" : "http", host, port, path);
}

static struct http_client *
client_new(int max_per_origin, size_t max_body, int allow_loopback, int use_ca)
{
	struct http_client_options o;
	struct http_client *c;

	memset(&o, 0, sizeof(o));
	o.max_per_origin = max_per_origin;
	o.max_response_body = max_body;
	o.allow = allow_loopback ? &loopback : NULL;
	o.nallow = allow_loopback ? 1 : 0;
	o.ca_file = use_ca ? ca_file : NULL;
	o.user_agent = "hookd-test/1";
	c = http_client_new(base, dns, &o);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* Free a client and let the loop finish with it. */
static void
client_free(struct http_client *c)
{
	http_client_free(c);
	spin(20);
}

/* GET a sink control endpoint (or DELETE it) and parse the JSON answer. */
static json_object *
sink_json(int tls, const char *method, const char *path)
{
	struct call_opts o = {.method = method};
	struct result r = {0};
	char *url = sink_url(tls ? tls_port : sink_port, tls, "127.0.0.1", path);
	json_object *j;

	call_sync(control, url, &o, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK && r.status == 200, "%s: %s", url, r.text);
	j = json_tokener_parse(r.body);
	ck_assert_msg(j != NULL, "%s: not JSON", url);
	free(url);
	result_clear(&r);
	return j;
}

static void
sink_clear(int tls)
{
	json_object_put(sink_json(tls, "DELETE", "/_requests"));
}

static long
sink_stat(int tls, const char *key)
{
	json_object *j = sink_json(tls, "GET", "/_stats"), *v;
	long n;

	ck_assert(json_object_object_get_ex(j, key, &v));
	n = (long)json_object_get_int64(v);
	json_object_put(j);
	return n;
}

/* Requests the sink recorded under a path prefix. */
static json_object *
sink_requests(int tls, const char *prefix)
{
	char *path = xasprintf("/_requests?path=%s", prefix);
	json_object *j = sink_json(tls, "GET", path);

	free(path);
	return j;
}

/* --- fixture ---------------------------------------------------------------------------- */

static void
setup(void)
{
	struct timeval tv = {0, 20000};
	const char *p = getenv("SINK_PORT"), *t = getenv("SINK_TLS_PORT");

	ck_assert_msg(p != NULL && t != NULL, "run me through run-check-http-client.sh");
	sink_port = atoi(p);
	tls_port = atoi(t);
	ca_file = getenv("TEST_CA_FILE");
	ck_assert_ptr_nonnull(ca_file);
	ck_assert_int_eq(cidr_parse("127.0.0.0/8", &loopback), 0);
	log_set_level(LOG_LEVEL_ERROR);
	base = event_base_new();
	ticker = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(ticker, &tv);
	dns_start();
	control = client_new(4, 4 << 20, 1, 1);
}

static void
teardown(void)
{
	http_client_free(control);
	control = NULL;
	spin(20);
	evdns_base_free(dns, 1);
	spin(10);
	event_free(dns_ev);
	close(dns_fd);
	event_free(ticker);
	event_base_free(base);
	base = NULL;
}

/* --- tests ------------------------------------------------------------------------------ */

START_TEST(test_body_capture_and_headers)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct http_header hdrs[] = {{"X-Custom", "one two"}, {"webhook-id", "msg_1"},
	    {"Content-Length", "999"}, {"Host", "evil.example"}};
	struct call_opts o = {
	    .method = "POST", .body = "{\"a\":1}", .headers = hdrs, .nheaders = 4};
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/cap?status=201&body=created%20it");
	char host[64];
	json_object *reqs, *rec, *h, *v;

	sink_clear(0);
	call_sync(c, url, &o, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.body, "created it");
	ck_assert_int_eq(r.truncated, 0);
	ck_assert_int_eq(r.reused, 0);
	ck_assert_str_eq(r.text, "");
	snprintf(host, sizeof(host), "127.0.0.1:%d", sink_port);
	ck_assert_str_eq(r.remote, host);
	ck_assert(r.ms > 0);
	reqs = sink_requests(0, "/cap");
	ck_assert_int_eq(json_object_array_length(reqs), 1);
	rec = json_object_array_get_idx(reqs, 0);
	ck_assert(json_object_object_get_ex(rec, "method", &v));
	ck_assert_str_eq(json_object_get_string(v), "POST");
	ck_assert(json_object_object_get_ex(rec, "body", &v));
	ck_assert_str_eq(json_object_get_string(v), "{\"a\":1}");
	ck_assert(json_object_object_get_ex(rec, "headers", &h));
	ck_assert(json_object_object_get_ex(h, "host", &v));
	ck_assert_str_eq(json_object_get_string(v), host);
	ck_assert(json_object_object_get_ex(h, "content-length", &v));
	ck_assert_str_eq(json_object_get_string(v), "7");
	ck_assert(json_object_object_get_ex(h, "user-agent", &v));
	ck_assert_str_eq(json_object_get_string(v), "hookd-test/1");
	ck_assert(json_object_object_get_ex(h, "x-custom", &v));
	ck_assert_str_eq(json_object_get_string(v), "one two");
	ck_assert(json_object_object_get_ex(h, "webhook-id", &v));
	ck_assert_str_eq(json_object_get_string(v), "msg_1");
	json_object_put(reqs);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_truncation_then_reuse)
{
	struct http_client *c = client_new(0, 10, 1, 0);
	struct result r = {0};
	char *big = sink_url(sink_port, 0, "127.0.0.1", "/big?size=200000");
	char *small = sink_url(sink_port, 0, "127.0.0.1", "/small?body=hi");

	sink_clear(0);
	call_sync(c, big, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_uint_eq(r.body_len, 10);
	ck_assert_str_eq(r.body, "xxxxxxxxxx");
	ck_assert_int_eq(r.truncated, 1);
	/* The rest was read, so the connection carries the next call. */
	call_sync(c, small, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_str_eq(r.body, "hi");
	ck_assert_int_eq(r.truncated, 0);
	ck_assert_int_eq(r.reused, 1);
	ck_assert_int_eq(sink_stat(0, "connections"), 1);
	result_clear(&r);
	free(big);
	free(small);
	client_free(c);
}
END_TEST

START_TEST(test_keep_alive_reuse)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/ka");
	struct call_opts head = {.method = "HEAD"};

	sink_clear(0);
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.reused, 0);
	ck_assert_int_eq(http_client_connections(c), 1);
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.reused, 1);
	/* HEAD: Content-Length without a body, and the connection stays usable. */
	call_sync(c, url, &head, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_uint_eq(r.body_len, 0);
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.reused, 1);
	ck_assert_int_eq(http_client_connections(c), 1);
	ck_assert_int_eq(sink_stat(0, "connections"), 1);
	ck_assert_int_eq(sink_stat(0, "received"), 4);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

struct cap_watch {
	struct http_client *c;
	int max_seen;
};

static void
cap_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cap_watch *w = arg;

	if (http_client_connections(w->c) > w->max_seen)
		w->max_seen = http_client_connections(w->c);
}

START_TEST(test_per_origin_cap)
{
	enum { N = 3, CALLS = N + 3 };
	struct http_client *c = client_new(N, 0, 1, 0);
	struct result r[CALLS];
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/cap?delay_ms=200");
	struct cap_watch w = {c, 0};
	struct timeval tv = {0, 5000};
	struct event *watch = event_new(base, -1, EV_PERSIST, cap_tick_cb, &w);
	int reused = 0;

	memset(r, 0, sizeof(r));
	sink_clear(0);
	event_add(watch, &tv);
	for (int i = 0; i < CALLS; i++)
		start(c, url, NULL, &r[i]);
	ck_assert_int_le(http_client_connections(c), N);
	ck_assert_int_eq(http_client_queued(c), CALLS - N);
	for (int i = 0; i < CALLS; i++) {
		ck_assert(wait_flag(&r[i].done, 5000));
		ck_assert_msg(r[i].error == HTTP_CALL_OK, "%s", r[i].text);
		ck_assert_int_eq(r[i].status, 200);
		reused += r[i].reused;
		/*
		 * duration_ms is the exchange (the sink's 200 ms and a little), never the wait
		 * for a connection, which queue_ms reports: the queued ones waited ~200 ms.
		 */
		ck_assert_msg(r[i].ms >= 195 && r[i].ms < 350, "call %d took %.1f ms", i, r[i].ms);
		if (i >= N)
			ck_assert_msg(
			    r[i].queue_ms >= 190, "call %d queued %.1f ms", i, r[i].queue_ms);
		else
			ck_assert_msg(
			    r[i].queue_ms < 50, "call %d queued %.1f ms", i, r[i].queue_ms);
	}
	/* The queued calls went on connections that became free (FIFO). */
	ck_assert_int_eq(reused, CALLS - N);
	ck_assert_int_eq(http_client_queued(c), 0);
	ck_assert_int_le(w.max_seen, N);
	ck_assert_int_eq(sink_stat(0, "received"), CALLS);
	ck_assert_int_le(sink_stat(0, "connections"), N);
	ck_assert_int_le(sink_stat(0, "max_open"), N);
	event_free(watch);
	for (int i = 0; i < CALLS; i++)
		result_clear(&r[i]);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_timeout)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct call_opts o = {.timeout_ms = 200};
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/slow?delay_ms=1500");
	uint64_t t0 = now_mono_ms();

	call_sync(c, url, &o, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_TIMEOUT);
	ck_assert_msg(
	    strstr(r.text, "timeout after 200 ms waiting for the response") != NULL, "%s", r.text);
	ck_assert_uint_lt(now_mono_ms() - t0, 1000);
	ck_assert(r.ms >= 190);
	spin(10);
	/* A timed-out connection is never reused. */
	ck_assert_int_eq(http_client_connections(c), 0);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_timeout_phases)
{
	struct http_client *c = client_new(0, 0, 1, 1);
	struct raw_server full, mute;
	struct call_opts o = {.timeout_ms = 150};
	struct result r = {0};
	char *url;

	/* Connecting: the SYN goes unanswered. */
	raw_start_full(&full);
	url = sink_url(full.port, 0, "127.0.0.1", "/");
	call_sync(c, url, &o, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_TIMEOUT);
	ck_assert_msg(strstr(r.text, "connecting to 127.0.0.1:") != NULL, "%s", r.text);
	free(url);
	/* TLS: the server accepts and never answers the ClientHello. */
	raw_start(&mute, NULL);
	url = sink_url(mute.port, 1, "127.0.0.1", "/");
	call_sync(c, url, &o, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_TIMEOUT);
	ck_assert_msg(strstr(r.text, "in the TLS handshake with") != NULL, "%s", r.text);
	free(url);
	/* Resolving: the name server never answers. */
	url = sink_url(80, 0, "blackhole.test", "/");
	call_sync(c, url, &o, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_TIMEOUT);
	ck_assert_msg(strstr(r.text, "resolving blackhole.test") != NULL, "%s", r.text);
	free(url);
	result_clear(&r);
	client_free(c);
	raw_stop(&full);
	raw_stop(&mute);
}
END_TEST

START_TEST(test_connect_refused)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	int port = closed_port();
	char *url = sink_url(port, 0, "127.0.0.1", "/");
	char want[96];

	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_CONNECT);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%d: Connection refused", port);
	ck_assert_str_eq(r.text, want);
	spin(10);
	ck_assert_int_eq(http_client_connections(c), 0);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_next_address)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "multi.test", "/multi");
	char want[32];

	/* 127.0.0.2 refuses (the sink listens on 127.0.0.1 only): the next address works. */
	call_sync(c, url, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	snprintf(want, sizeof(want), "127.0.0.1:%d", sink_port);
	ck_assert_str_eq(r.remote, want);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_dns_failure)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "no-such-host.invalid", "/");
	char *ok = sink_url(sink_port, 0, "sink.test", "/by-name");

	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_DNS);
	ck_assert_msg(
	    strstr(r.text, "could not resolve no-such-host.invalid") != NULL, "%s", r.text);
	ck_assert_str_eq(r.remote, "");
	ck_assert_int_gt(dns_queries, 0);
	/* And a name that resolves. */
	call_sync(c, ok, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	result_clear(&r);
	free(url);
	free(ok);
	client_free(c);
}
END_TEST

START_TEST(test_ssrf_guard)
{
	struct http_client *guarded = client_new(0, 0, 0, 0);
	struct http_client *allowed = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *lit = sink_url(sink_port, 0, "127.0.0.1", "/ssrf");
	char *name = sink_url(sink_port, 0, "sink.test", "/ssrf");
	struct cidr ten, lo;
	struct call_opts pin_ten = {.pin = &ten, .npin = 1}, pin_lo = {.pin = &lo, .npin = 1};

	ck_assert_int_eq(cidr_parse("10.0.0.0/8", &ten), 0);
	ck_assert_int_eq(cidr_parse("127.0.0.1/32", &lo), 0);
	sink_clear(0);
	call_sync(guarded, lit, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_REFUSED_ADDR);
	ck_assert_msg(strncmp(r.text, "127.0.0.1 is a loopback address", 31) == 0, "%s", r.text);
	call_sync(guarded, name, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_REFUSED_ADDR);
	ck_assert_msg(
	    strncmp(r.text, "sink.test: 127.0.0.1 is a loopback address", 42) == 0, "%s", r.text);
	/* No connection was made: the sink saw nothing. */
	ck_assert_int_eq(sink_stat(0, "received"), 0);
	ck_assert_int_eq(sink_stat(0, "connections"), 0);
	ck_assert_int_eq(http_client_connections(guarded), 0);
	/* Allowlisted, it goes through. */
	call_sync(allowed, lit, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	/* A pin that excludes the address refuses, even with the network allowlisted... */
	call_sync(allowed, lit, &pin_ten, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_REFUSED_ADDR);
	ck_assert_msg(
	    strstr(r.text, "127.0.0.1 is not in the subscription's ip_allowlist (10.0.0.0/8)") !=
	        NULL,
	    "%s", r.text);
	/* ... and a pin that includes it never widens the guard: without the allowlist, no. */
	call_sync(guarded, name, &pin_lo, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_REFUSED_ADDR);
	ck_assert_msg(strncmp(r.text, "sink.test: 127.0.0.1 is a loopback address", 42) == 0 &&
	                  strstr(r.text, "add it to outbound_allow_networks") != NULL &&
	                  strstr(r.text, "an ip_allowlist only narrows") != NULL,
	    "%s", r.text);
	/* Both rules passed: allowlisted and inside the pin. */
	call_sync(allowed, name, &pin_lo, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(sink_stat(0, "received"), 2);
	result_clear(&r);
	free(lit);
	free(name);
	client_free(guarded);
	client_free(allowed);
}
END_TEST

START_TEST(test_pool_policy_separation)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/policy");
	struct cidr ten;
	struct call_opts pin_ten = {.pin = &ten, .npin = 1};

	ck_assert_int_eq(cidr_parse("10.0.0.0/8", &ten), 0);
	/* An idle connection made under the allowlist... */
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_OK);
	ck_assert_int_eq(http_client_connections(c), 1);
	/* ... does not carry a pinned call that its policy would refuse. */
	call_sync(c, url, &pin_ten, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_REFUSED_ADDR);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_tls)
{
	struct http_client *with_ca = client_new(0, 0, 1, 1);
	struct http_client *without = client_new(0, 0, 1, 0);
	struct http_client_options io;
	struct http_client *insecure;
	struct result r = {0};
	char *by_name = sink_url(tls_port, 1, "sink.test", "/tls?body=secret");
	char *by_ip = sink_url(tls_port, 1, "127.0.0.1", "/tls-ip");
	char *wrong = sink_url(tls_port, 1, "wrong.test", "/tls-wrong");

	sink_clear(1);
	call_sync(with_ca, by_name, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_str_eq(r.body, "secret");
	call_sync(with_ca, by_name, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(r.reused, 1);
	/* An IP literal is checked against the certificate's IP addresses. */
	call_sync(with_ca, by_ip, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	/* Without the test CA: the chain does not verify. */
	call_sync(without, by_name, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_TLS);
	ck_assert_msg(
	    strstr(r.text, "certificate verify failed: unable to get local issuer") != NULL, "%s",
	    r.text);
	/* The right certificate for another name. */
	call_sync(with_ca, wrong, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_TLS);
	ck_assert_msg(
	    strstr(r.text, "certificate verify failed: hostname mismatch") != NULL, "%s", r.text);
	ck_assert_int_eq(sink_stat(1, "received"), 3);
	/* The escape hatch. */
	memset(&io, 0, sizeof(io));
	io.allow = &loopback;
	io.nallow = 1;
	io.tls_insecure = 1;
	insecure = http_client_new(base, dns, &io);
	ck_assert_ptr_nonnull(insecure);
	call_sync(insecure, wrong, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	result_clear(&r);
	free(by_name);
	free(by_ip);
	free(wrong);
	client_free(with_ca);
	client_free(without);
	client_free(insecure);
}
END_TEST

START_TEST(test_bad_ca_file)
{
	struct http_client_options o;

	memset(&o, 0, sizeof(o));
	o.ca_file = "/nonexistent/ca.pem";
	ck_assert_ptr_null(http_client_new(base, dns, &o));
}
END_TEST

/* A readable file that holds no certificate is refused when the client is made, not at
 * its first https:// connection (the TLS context is otherwise made then). */
START_TEST(test_malformed_ca_file)
{
	struct http_client_options o;
	char path[] = "/tmp/hookd-bad-ca-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "not a certificate\n", 18), 18);
	close(fd);
	memset(&o, 0, sizeof(o));
	o.ca_file = path;
	ck_assert_ptr_null(http_client_new(base, dns, &o));
	unlink(path);
}
END_TEST

START_TEST(test_redirect_not_followed)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1",
	    "/redir?status=302&location=http://127.0.0.1/elsewhere&retry_after=30");

	sink_clear(0);
	call_sync(c, url, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(r.status, 302);
	ck_assert_str_eq(r.location, "http://127.0.0.1/elsewhere");
	ck_assert_str_eq(r.retry_after, "30");
	spin(50);
	ck_assert_int_eq(sink_stat(0, "received"), 1);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_retry_once_on_reused)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *warm = sink_url(sink_port, 0, "127.0.0.1", "/warm");
	char *closing = sink_url(sink_port, 0, "127.0.0.1", "/retry?fail=1&close=1");
	char *closing2 = sink_url(sink_port, 0, "127.0.0.1", "/retry2?fail=1&close=1");
	char *always = sink_url(sink_port, 0, "127.0.0.1", "/retry3?close=1");
	json_object *reqs;

	sink_clear(0);
	call_sync(c, warm, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	/* The server closes the kept-alive connection as the request arrives: sent again. */
	call_sync(c, closing, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.reused, 0);
	reqs = sink_requests(0, "/retry?");
	ck_assert_int_eq(json_object_array_length(reqs), 2);
	json_object_put(reqs);
	ck_assert_int_eq(sink_stat(0, "connections"), 2);
	/* Once only: a fresh connection that closes is an error. */
	call_sync(c, always, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_IO);
	ck_assert_msg(
	    strstr(r.text, "closed the connection before responding") != NULL, "%s", r.text);
	reqs = sink_requests(0, "/retry3");
	ck_assert_int_eq(json_object_array_length(reqs), 2);
	json_object_put(reqs);
	client_free(c);
	/* Never on a connection's first request. */
	c = client_new(0, 0, 1, 0);
	call_sync(c, closing2, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_IO);
	reqs = sink_requests(0, "/retry2");
	ck_assert_int_eq(json_object_array_length(reqs), 1);
	json_object_put(reqs);
	result_clear(&r);
	free(warm);
	free(closing);
	free(closing2);
	free(always);
	client_free(c);
}
END_TEST

START_TEST(test_idle_close_detected)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct raw_server rs;
	struct result r = {0};
	char *url;

	/* The server closes each connection 50 ms after answering, without saying so. */
	raw_start(&rs, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	rs.idle_close_ms = 50;
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(http_client_connections(c), 1);
	spin(200);
	ck_assert_int_eq(http_client_connections(c), 0);
	call_sync(c, url, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(r.reused, 0);
	ck_assert_int_eq(rs.accepted, 2);
	result_clear(&r);
	free(url);
	client_free(c);
	raw_stop(&rs);
}
END_TEST

START_TEST(test_idle_timeout)
{
	struct http_client_options o;
	struct http_client *c;
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/idle");

	memset(&o, 0, sizeof(o));
	o.allow = &loopback;
	o.nallow = 1;
	o.idle_timeout_ms = 100;
	c = http_client_new(base, dns, &o);
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(http_client_connections(c), 1);
	spin(300);
	ck_assert_int_eq(http_client_connections(c), 0);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_connection_close_and_http10)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct raw_server rs;
	struct result r = {0};
	char *url;

	raw_start(&rs, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	ck_assert_str_eq(r.body, "ok");
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.reused, 0);
	ck_assert_int_eq(rs.accepted, 2);
	raw_stop(&rs);
	free(url);
	/* HTTP/1.0 without keep-alive, body until close. */
	raw_start(&rs, "HTTP/1.0 200 OK\r\n\r\nuntil close");
	rs.close_after = 1;
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_str_eq(r.body, "until close");
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.reused, 0);
	ck_assert_int_eq(rs.accepted, 2);
	raw_stop(&rs);
	free(url);
	/* HTTP/1.0 with keep-alive is reused. */
	raw_start(&rs, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n1");
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.reused, 1);
	ck_assert_int_eq(rs.accepted, 1);
	raw_stop(&rs);
	free(url);
	result_clear(&r);
	client_free(c);
}
END_TEST

START_TEST(test_protocol_errors)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct raw_server rs;
	struct result r = {0};
	char *url, *huge;

	raw_start(&rs, "SMTP ready\r\n\r\n");
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_PROTOCOL);
	ck_assert_msg(strstr(r.text, "invalid response from 127.0.0.1:") != NULL, "%s", r.text);
	raw_stop(&rs);
	free(url);
	/* Headers beyond 64 KiB. */
	huge = xmalloc(80000);
	memcpy(huge, "HTTP/1.1 200 OK\r\nX-Big: ", 24);
	memset(huge + 24, 'a', 70000);
	strcpy(huge + 24 + 70000, "\r\n\r\n");
	raw_start(&rs, huge);
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_PROTOCOL);
	ck_assert_msg(strstr(r.text, "exceed 65536 bytes") != NULL, "%s", r.text);
	raw_stop(&rs);
	free(url);
	free(huge);
	/* The body is cut short by the close. */
	raw_start(&rs, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
	rs.close_after = 1;
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_IO);
	ck_assert_msg(strstr(r.text, "after 3 of 10 body bytes") != NULL, "%s", r.text);
	raw_stop(&rs);
	free(url);
	/* Interim responses are skipped. */
	raw_start(&rs, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
	url = sink_url(rs.port, 0, "127.0.0.1", "/");
	call_sync(c, url, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_int_eq(r.status, 204);
	raw_stop(&rs);
	free(url);
	result_clear(&r);
	client_free(c);
}
END_TEST

START_TEST(test_chunked_response)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *url =
	    sink_url(sink_port, 0, "127.0.0.1", "/chunked?chunked=1&body=hello-chunked-world");

	sink_clear(0);
	call_sync(c, url, NULL, &r);
	ck_assert_msg(r.error == HTTP_CALL_OK, "%s", r.text);
	ck_assert_str_eq(r.body, "hello-chunked-world");
	call_sync(c, url, NULL, &r);
	ck_assert_str_eq(r.body, "hello-chunked-world");
	ck_assert_int_eq(r.reused, 1);
	ck_assert_int_eq(sink_stat(0, "connections"), 1);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

START_TEST(test_bad_requests)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct http_header crlf[] = {{"X-Evil", "a\r\nInjected: yes"}};
	struct http_header space[] = {{"X Evil", "a"}};
	struct call_opts o1 = {.headers = crlf, .nheaders = 1},
	                 o2 = {.headers = space, .nheaders = 1};
	struct call_opts o3 = {.method = "GE T"};
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/bad");

	call_sync(c, "ftp://example.com/", NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_BAD_URL);
	call_sync(c, "http://user:pw@example.com/", NULL, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_BAD_URL);
	call_sync(c, url, &o1, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_BAD_REQUEST);
	ck_assert_ptr_null(strstr(r.text, "Injected")); /* values are never echoed */
	call_sync(c, url, &o2, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_BAD_REQUEST);
	call_sync(c, url, &o3, &r);
	ck_assert_int_eq(r.error, HTTP_CALL_BAD_REQUEST);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

/* --- cancel ------------------------------------------------------------------------------ */

START_TEST(test_cancel_every_phase)
{
	struct http_client *c = client_new(1, 0, 1, 1);
	struct raw_server full, mute, partial;
	struct result r = {0}, other = {0};
	struct http_call *call;
	char *url;

	/* Finished, result not yet reported. */
	call = start(c, "gopher://x/", NULL, &r);
	http_call_cancel(call);
	/* Resolving. */
	url = sink_url(80, 0, "blackhole.test", "/");
	call = start(c, url, NULL, &r);
	spin(20);
	http_call_cancel(call);
	free(url);
	/* Connecting. */
	raw_start_full(&full);
	url = sink_url(full.port, 0, "127.0.0.1", "/");
	call = start(c, url, NULL, &r);
	spin(20);
	http_call_cancel(call);
	free(url);
	/* TLS handshake. */
	raw_start(&mute, NULL);
	url = sink_url(mute.port, 1, "127.0.0.1", "/");
	call = start(c, url, NULL, &r);
	spin(50);
	ck_assert_int_eq(mute.accepted, 1);
	http_call_cancel(call);
	free(url);
	/* Waiting for the response; a second call queued behind it (max_per_origin 1). */
	url = sink_url(mute.port, 0, "127.0.0.1", "/");
	call = start(c, url, NULL, &r);
	{
		struct http_call *queued = start(c, url, NULL, &other);

		spin(50);
		ck_assert_int_eq(mute.requests, 1);
		ck_assert_int_eq(http_client_queued(c), 1);
		http_call_cancel(queued);
		ck_assert_int_eq(http_client_queued(c), 0);
	}
	http_call_cancel(call);
	free(url);
	/* Reading the body. */
	raw_start(&partial, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
	url = sink_url(partial.port, 0, "127.0.0.1", "/");
	call = start(c, url, NULL, &r);
	spin(50);
	ck_assert_int_eq(partial.requests, 1);
	http_call_cancel(call);
	free(url);
	/* None of them called back, and nothing is left behind. */
	spin(50);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(other.calls, 0);
	ck_assert_int_eq(http_client_connections(c), 0);
	ck_assert_int_eq(http_client_queued(c), 0);
	client_free(c);
	raw_stop(&full);
	raw_stop(&mute);
	raw_stop(&partial);
}
END_TEST

/* Callbacks that act on the client from inside. */
struct reentry {
	struct http_client *c;
	struct http_call *victim;
	struct result *victim_result;
	int calls;
	enum http_call_error error;
	int free_client;
	int cancel_self;
	struct http_call *self;
};

static void
reentry_cb(const struct http_call_result *cr, void *arg)
{
	struct reentry *re = arg;

	re->calls++;
	re->error = cr->error;
	if (re->victim != NULL) {
		http_call_cancel(re->victim);
		re->victim = NULL;
	}
	if (re->cancel_self)
		http_call_cancel(re->self); /* ignored: it is being reported */
	if (re->free_client)
		http_client_free(re->c);
}

START_TEST(test_callbacks_reenter)
{
	struct http_client *c = client_new(1, 0, 1, 0);
	struct http_call_request req;
	struct raw_server mute;
	struct reentry a = {0};
	struct result victim = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/reenter");
	char *slow;

	memset(&req, 0, sizeof(req));
	/* A callback cancels another call and itself. */
	req.url = url;
	req.timeout_ms = 5000;
	a.c = c;
	a.cancel_self = 1;
	a.self = http_client_call(c, &req, reentry_cb, &a);
	a.victim = start(c, url, NULL, &victim); /* queued behind (max_per_origin 1) */
	ck_assert(wait_flag(&a.calls, 5000));
	spin(50);
	ck_assert_int_eq(a.error, HTTP_CALL_OK);
	ck_assert_int_eq(victim.calls, 0);
	/* A callback frees the client while other calls are in flight: they get SHUTDOWN. */
	raw_start(&mute, NULL);
	slow = sink_url(mute.port, 0, "127.0.0.1", "/");
	memset(&a, 0, sizeof(a));
	a.c = c;
	a.free_client = 1;
	start(c, slow, NULL, &victim);
	req.url = "ftp://finishes-at-once/";
	http_client_call(c, &req, reentry_cb, &a);
	ck_assert(wait_flag(&victim.done, 5000));
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(victim.error, HTTP_CALL_SHUTDOWN);
	ck_assert_int_eq(victim.calls, 1);
	spin(50);
	result_clear(&victim);
	raw_stop(&mute);
	free(url);
	free(slow);
}
END_TEST

START_TEST(test_free_with_calls_in_flight)
{
	struct http_client *c = client_new(1, 0, 1, 0);
	struct raw_server mute;
	struct result r1 = {0}, r2 = {0};
	char *url;

	raw_start(&mute, NULL);
	url = sink_url(mute.port, 0, "127.0.0.1", "/");
	start(c, url, NULL, &r1);
	start(c, url, NULL, &r2); /* queued */
	spin(20);
	http_client_free(c);
	ck_assert_int_eq(r1.done + r2.done, 0); /* from the loop, not inside free */
	ck_assert(wait_flag(&r2.done, 1000));
	ck_assert(wait_flag(&r1.done, 1000));
	ck_assert_int_eq(r1.error, HTTP_CALL_SHUTDOWN);
	ck_assert_int_eq(r2.error, HTTP_CALL_SHUTDOWN);
	spin(20);
	result_clear(&r1);
	result_clear(&r2);
	free(url);
	raw_stop(&mute);
}
END_TEST

START_TEST(test_metrics)
{
	struct http_client *c = client_new(0, 0, 1, 0);
	struct result r = {0};
	char *url = sink_url(sink_port, 0, "127.0.0.1", "/metrics");
	char *text;
	size_t len;

	call_sync(c, url, NULL, &r);
	text = metrics_render(&len);
	ck_assert_ptr_nonnull(strstr(text, "hookd_http_client_requests_total{outcome=\"ok\"}"));
	ck_assert_ptr_nonnull(strstr(text, "hookd_http_client_connections{state=\"idle\"}"));
	ck_assert_ptr_nonnull(strstr(text, "hookd_http_client_duration_seconds_count"));
	free(text);
	result_clear(&r);
	free(url);
	client_free(c);
}
END_TEST

static Suite *
client_suite(void)
{
	Suite *s = suite_create("http_client");
	TCase *tc = tcase_create("http_client");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_body_capture_and_headers);
	tcase_add_test(tc, test_truncation_then_reuse);
	tcase_add_test(tc, test_keep_alive_reuse);
	tcase_add_test(tc, test_per_origin_cap);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_timeout_phases);
	tcase_add_test(tc, test_connect_refused);
	tcase_add_test(tc, test_next_address);
	tcase_add_test(tc, test_dns_failure);
	tcase_add_test(tc, test_ssrf_guard);
	tcase_add_test(tc, test_pool_policy_separation);
	tcase_add_test(tc, test_tls);
	tcase_add_test(tc, test_bad_ca_file);
	tcase_add_test(tc, test_malformed_ca_file);
	tcase_add_test(tc, test_redirect_not_followed);
	tcase_add_test(tc, test_retry_once_on_reused);
	tcase_add_test(tc, test_idle_close_detected);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_connection_close_and_http10);
	tcase_add_test(tc, test_protocol_errors);
	tcase_add_test(tc, test_chunked_response);
	tcase_add_test(tc, test_bad_requests);
	tcase_add_test(tc, test_cancel_every_phase);
	tcase_add_test(tc, test_callbacks_reenter);
	tcase_add_test(tc, test_free_with_calls_in_flight);
	tcase_add_test(tc, test_metrics);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN); /* as hookd does */
	sr = srunner_create(client_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
