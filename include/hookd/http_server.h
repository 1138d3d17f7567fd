/* SPDX-License-Identifier: ISC */
/* HTTP server on evhttp: listeners, limits, routing, request ids, JSON replies, access log. */
#ifndef HOOKD_HTTP_SERVER_H
#define HOOKD_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "hookd/util.h"

struct event_base;
struct evhttp_request;
struct json_object;
struct sockaddr;

struct http_server;
struct http_req; /* one request; replied to exactly once, then freed by the server */

typedef void (*http_handler)(struct http_req *r, void *arg);

enum http_route_flag {
	HTTP_ADMIN = 1 << 0, /* needs Authorization: Bearer <admin key> */
};

struct http_limits {
	size_t max_body;     /* larger bodies get a JSON 413 */
	size_t max_header;   /* request line plus headers */
	int timeout_ms;      /* read and write timeout on client connections */
	int max_connections; /* past it, listeners pause until a connection closes */
};

struct http_server *http_server_new(struct event_base *base, const struct http_limits *lim);
void http_server_free(struct http_server *s);
/* Bind "host:port, [v6]:port, *:port"; returns 0 or -1 with a reason. */
int http_server_listen(struct http_server *s, const char *addrs, char *err, size_t errlen) WUR;
/* The port of the first listener (useful with port 0). */
int http_server_port(const struct http_server *s);
void http_server_set_limits(struct http_server *s, const struct http_limits *lim);
/* Admin authentication: returns 1 when token is a live admin key. */
void http_server_set_auth(
    struct http_server *s, int (*auth)(const char *token, void *arg), void *arg);
/* Add a route; aborts on a malformed pattern (a programming error). */
void http_server_route(struct http_server *s, const char *method, const char *pattern,
    unsigned flags, http_handler fn, void *arg);
/* Stop accepting; replies from now on carry Connection: close. */
void http_server_drain(struct http_server *s);
/* Requests dispatched and not yet replied to. */
int http_server_inflight(const struct http_server *s);
int http_server_connections(const struct http_server *s);
/* 1 when no request is in flight and every reply has left hookd's buffers. */
int http_server_flushed(const struct http_server *s);

/* Request accessors; strings live as long as the request. */
const char *http_req_method(const struct http_req *r);
const char *http_req_path(const struct http_req *r);
const char *http_req_route(const struct http_req *r); /* the matched pattern */
const char *http_req_param(const struct http_req *r, const char *name);
/* A decoded query-string parameter, or NULL. */
const char *http_req_query(struct http_req *r, const char *name);
/* A request header (case-insensitive), or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
/* The raw body: contiguous, NUL-terminated for convenience (the NUL is not counted). */
const unsigned char *http_req_body(struct http_req *r, size_t *len);
const char *http_req_id(const struct http_req *r);
/* The client address as text, and as a sockaddr (NULL if unknown). */
const char *http_req_peer(const struct http_req *r);
const struct sockaddr *http_req_peer_addr(const struct http_req *r);
/* The request's "scheme://host/path?query" as the client addressed it (Host header). */
char *http_req_url(const struct http_req *r);
struct evhttp_request *http_req_evhttp(struct http_req *r);
/* Per-request storage for the handler (freed by the handler, not the server). */
void http_req_set_data(struct http_req *r, void *data);
void *http_req_data(const struct http_req *r);

/* Add a response header; call before replying. */
void http_reply_header(struct http_req *r, const char *name, const char *value);
/* Reply with JSON (compact); takes ownership of body. */
void http_reply_json(struct http_req *r, int status, struct json_object *body);
/* Reply {"error": code, "message": text}. */
void http_reply_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
void http_reply_raw(
    struct http_req *r, int status, const char *content_type, const void *body, size_t len);

#endif
