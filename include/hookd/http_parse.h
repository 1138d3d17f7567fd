/* SPDX-License-Identifier: ISC */
/* Incremental HTTP/1.x response parser: status line, framing headers, body, over an evbuffer. */
#ifndef HOOKD_HTTP_PARSE_H
#define HOOKD_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "hookd/util.h"

struct evbuffer;
struct http_parser;

enum http_parse_status {
	HTTP_PARSE_MORE,  /* the response is not complete yet: feed more input */
	HTTP_PARSE_DONE,  /* a final (non-1xx) response is complete */
	HTTP_PARSE_ERROR, /* not valid HTTP/1.x: http_parser_error() says why */
};

/* What the parser learnt; valid once http_parser_feed/eof returned HTTP_PARSE_DONE. */
struct http_response {
	int status;              /* 100..999 */
	int minor_version;       /* the x of HTTP/1.x */
	int keep_alive;          /* the connection may carry another request */
	const char *retry_after; /* the first Retry-After value, or NULL */
	const char *location;    /* the first Location value, or NULL */
	const char *body;        /* the first max_body bytes of the body (NULL when none) */
	size_t body_len;
	int body_truncated;  /* more body arrived than was kept */
	uint64_t body_total; /* body bytes received (decoded, for chunked) */
};

/*
 * A parser for the responses on one connection. max_header_bytes bounds the status line and
 * header lines of a response together (1xx interim responses included) and separately its
 * trailers; max_body bounds the body bytes kept (the rest is consumed and dropped).
 */
struct http_parser *http_parser_new(size_t max_header_bytes, size_t max_body);
void http_parser_free(struct http_parser *p);
/* Expect a new response; head: the request was HEAD, so the response has no body. */
void http_parser_reset(struct http_parser *p, int head);
/*
 * Consume what input holds of the current response. At HTTP_PARSE_DONE whatever follows the
 * response is left in input (on a kept-alive connection nothing should). 1xx interim
 * responses are consumed and skipped; 101 is an error, since hookd never asks to upgrade.
 */
enum http_parse_status http_parser_feed(struct http_parser *p, struct evbuffer *input) WUR;
/* The connection closed: completes a body delimited by the close, or an error. */
enum http_parse_status http_parser_eof(struct http_parser *p) WUR;
/* 1 once any byte of the current response was consumed. */
int http_parser_started(const struct http_parser *p);
const struct http_response *http_parser_response(const struct http_parser *p);
/* Hand the kept body (malloc'd, NULL when empty) to the caller; *len gets its length. */
char *http_parser_take_body(struct http_parser *p, size_t *len);
/* Why the last call returned HTTP_PARSE_ERROR; "" otherwise. */
const char *http_parser_error(const struct http_parser *p);

#endif
