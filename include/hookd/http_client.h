/* SPDX-License-Identifier: ISC */
/* Outbound HTTP/1.1 client: async DNS, SSRF guard, TLS, keep-alive pool per origin. */
#ifndef HOOKD_HTTP_CLIENT_H
#define HOOKD_HTTP_CLIENT_H

#include <stddef.h>

#include "hookd/util.h"

struct event_base;
struct evdns_base;
struct cidr;

struct http_client;
struct http_call; /* one request in flight: the token http_call_cancel takes */

/*
 * Zero means the default for every field, so a zeroed struct is a safe configuration:
 * certificates and host names are verified unless tls_insecure is set.
 */
struct http_client_options {
	int max_per_origin;       /* connections per origin (default 8) */
	int idle_timeout_ms;      /* a kept-alive connection idle this long is closed (60 s) */
	size_t max_response_body; /* body bytes kept, the rest read and dropped (16 KiB) */
	const struct cidr *allow; /* networks allowed despite the SSRF guard (copied) */
	int nallow;
	int tls_insecure;       /* 1: skip certificate and host name verification (escape hatch) */
	const char *ca_file;    /* extra CA bundle (PEM) besides the system store, or NULL */
	const char *user_agent; /* NULL: "hookd/VERSION" */
};

struct http_header {
	const char *name;
	const char *value;
};

/*
 * The client writes Host, Content-Length, Connection and (unless given here) User-Agent;
 * the caller's Host, Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE
 * and Trailer headers are dropped. Header values are never logged (they carry signatures).
 */
struct http_call_request {
	const char *url;    /* http:// or https:// */
	const char *method; /* NULL: "POST" */
	const struct http_header *headers;
	int nheaders;
	const char *body;
	size_t body_len;
	int timeout_ms;         /* the whole attempt: DNS, connect, TLS, request, response,
	                           not the wait for a free connection; 0: 30 s */
	const struct cidr *pin; /* if set, the connected address must also be in one of */
	int npin;               /* these: a pin narrows the SSRF guard, never widens it */
};

enum http_call_error {
	HTTP_CALL_OK,           /* a response arrived (any status) */
	HTTP_CALL_BAD_URL,      /* the URL does not parse or is not http(s) */
	HTTP_CALL_BAD_REQUEST,  /* the method or a header is not valid HTTP (CR/LF, bad token) */
	HTTP_CALL_DNS,          /* the host name did not resolve */
	HTTP_CALL_REFUSED_ADDR, /* the SSRF guard refused every address: no connection made */
	HTTP_CALL_CONNECT,      /* TCP connect failed */
	HTTP_CALL_TLS,          /* TLS handshake or certificate verification failed */
	HTTP_CALL_TIMEOUT,      /* timeout_ms passed before the response was complete */
	HTTP_CALL_PROTOCOL,     /* the response is not valid HTTP/1.x */
	HTTP_CALL_IO,           /* the connection broke mid-exchange */
	HTTP_CALL_SHUTDOWN,     /* the client is being freed */
};

/* Valid during the callback only: copy what you keep. */
struct http_call_result {
	enum http_call_error error;
	const char *error_text; /* human-readable detail, never NULL */
	int status;             /* HTTP status (error == HTTP_CALL_OK) */
	const char *body;       /* response body, at most max_response_body bytes */
	size_t body_len;
	int body_truncated;
	const char *retry_after; /* the Retry-After header, or NULL */
	const char *location;    /* the Location header, or NULL (redirects are not followed) */
	double duration_ms;      /* the exchange: from getting a connection (a kept-alive one,
	                            or DNS, connect and TLS for a new one) to the result */
	double queue_ms;         /* the wait before that for a connection (per-origin cap) */
	const char *remote;      /* "address:port" connected to, or "" */
	int reused;              /* a kept-alive connection carried the request */
};

/*
 * Keep-alive: connections are pooled per origin, that is scheme, host, port and the pin set
 * (so that a connection made under one address policy never carries a call made under
 * another). A request that meets EOF or ECONNRESET on a reused connection before any byte of
 * a response is sent once more on a fresh connection to the same address: the server closed
 * the idle connection as the request left, so it almost surely never saw it. This can, rarely,
 * deliver a request twice, which at-least-once delivery with a stable webhook-id allows.
 */

typedef void (*http_call_cb)(const struct http_call_result *r, void *arg);

/*
 * NULL when the TLS context cannot be made (an unreadable ca_file, say); the reason is
 * logged. The process must ignore SIGPIPE (hookd does): a peer may close while we write.
 * Metrics: hookd_http_client_requests_total{outcome}, hookd_http_client_connections{state},
 * hookd_http_client_duration_seconds (duration_ms), hookd_http_client_queue_seconds
 * (queue_ms).
 */
struct http_client *http_client_new(
    struct event_base *base, struct evdns_base *dns, const struct http_client_options *opt) WUR;
/*
 * Calls still in flight complete with HTTP_CALL_SHUTDOWN (from the loop), then it is freed:
 * keep the loop running until it has (event_base_dispatch returns once it is done). With
 * nothing in flight it is freed at once. Safe inside a call's callback.
 */
void http_client_free(struct http_client *c);
/*
 * Start a request. cb is called exactly once, from the loop (never inside this call),
 * unless http_call_cancel is called first. The request's strings are copied.
 */
struct http_call *http_client_call(
    struct http_client *c, const struct http_call_request *req, http_call_cb cb, void *arg);
/*
 * Drop a call in any phase (queued, resolving, connecting, TLS, sending, receiving, or
 * finished but not yet reported): its callback never runs and its connection is closed.
 * Inside the call's own callback it does nothing; after it, the call is gone.
 */
void http_call_cancel(struct http_call *call);
/* Connections open (idle and busy) and calls waiting for a connection. */
int http_client_connections(const struct http_client *c);
int http_client_queued(const struct http_client *c);

#endif
