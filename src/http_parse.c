/* SPDX-License-Identifier: ISC */
/* Incremental HTTP/1.x response parser (RFC 9112): status, framing headers, body. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "hookd/http_parse.h"

/* Longer values are cut: a Retry-After is a number or a 29-byte date. */
#define RETRY_AFTER_MAX 64
/* Longer Location values are cut; hookd only reports them. */
#define LOCATION_MAX    2048

enum parse_state {
	PS_STATUS,      /* waiting for the status line */
	PS_HEADERS,     /* header lines until the empty line */
	PS_BODY_LENGTH, /* Content-Length bytes */
	PS_CHUNK_SIZE,  /* a chunk-size line */
	PS_CHUNK_DATA,  /* chunk bytes */
	PS_CHUNK_END,   /* the CRLF after chunk data */
	PS_TRAILERS,    /* trailer lines after the last chunk */
	PS_BODY_CLOSE,  /* everything until the connection closes */
	PS_DONE,        /* a final response is complete */
	PS_ERROR,       /* the response is invalid: nothing more is consumed */
};

struct http_parser {
	size_t max_header, max_body;
	enum parse_state state;
	int head;
	int started;
	size_t header_bytes; /* status and header lines so far (or trailer lines) */
	size_t scanned;      /* bytes of the current partial line searched for LF already */
	uint64_t remaining;  /* body or chunk bytes still to come */

	/* Framing headers of the response being read. */
	int cl_present, te_present, te_chunked, conn_close, conn_keep_alive;
	uint64_t content_length;

	struct http_response resp;
	char retry_after[RETRY_AFTER_MAX + 1];
	char *location;
	size_t location_cap;
	char *body;
	size_t body_cap;
	char err[192];
};

static enum http_parse_status fail(struct http_parser *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

static enum http_parse_status
fail(struct http_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->state = PS_ERROR;
	return HTTP_PARSE_ERROR;
}

struct http_parser *
http_parser_new(size_t max_header_bytes, size_t max_body)
{
	struct http_parser *p = xcalloc(1, sizeof(*p));

	p->max_header = max_header_bytes > 0 ? max_header_bytes : 65536;
	p->max_body = max_body;
	http_parser_reset(p, 0);
	return p;
}

void
http_parser_free(struct http_parser *p)
{
	if (p == NULL)
		return;
	free(p->location);
	free(p->body);
	free(p);
}

/* Forget the header fields of a response (a final one, or a 1xx before it). */
static void
reset_head(struct http_parser *p)
{
	p->cl_present = p->te_present = p->te_chunked = 0;
	p->conn_close = p->conn_keep_alive = 0;
	p->content_length = 0;
	p->resp.status = 0;
	p->resp.minor_version = 0;
	p->resp.retry_after = NULL;
	p->resp.location = NULL;
}

void
http_parser_reset(struct http_parser *p, int head)
{
	p->state = PS_STATUS;
	p->head = head;
	p->started = 0;
	p->header_bytes = 0;
	p->scanned = 0;
	p->remaining = 0;
	p->err[0] = '\0';
	reset_head(p);
	p->resp.keep_alive = 0;
	p->resp.body = NULL;
	p->resp.body_len = 0;
	p->resp.body_truncated = 0;
	p->resp.body_total = 0;
}

int
http_parser_started(const struct http_parser *p)
{
	return p->started;
}

const struct http_response *
http_parser_response(const struct http_parser *p)
{
	return &p->resp;
}

const char *
http_parser_error(const struct http_parser *p)
{
	return p->err;
}

char *
http_parser_take_body(struct http_parser *p, size_t *len)
{
	char *b = p->resp.body_len > 0 ? p->body : NULL;

	*len = p->resp.body_len;
	if (b != NULL) {
		p->body = NULL;
		p->body_cap = 0;
	}
	p->resp.body = NULL;
	p->resp.body_len = 0;
	return b;
}

/*
 * Find the next line (LF, optionally after CR) and pull it up contiguous. Returns 1 with
 * *line (CR LF stripped, not NUL-terminated), *len and *eaten (bytes to drain); 0 when the
 * line is not complete yet; -1 when it would take the block past limit bytes.
 */
static int
next_line(struct http_parser *p, struct evbuffer *in, size_t used, const char **line, size_t *len,
    size_t *eaten)
{
	struct evbuffer_ptr start, at;
	size_t avail = evbuffer_get_length(in);
	char *data;

	if (avail == 0)
		return 0;
	if (p->scanned > 0 && evbuffer_ptr_set(in, &start, p->scanned, EVBUFFER_PTR_SET) == 0)
		at = evbuffer_search(in, "\n", 1, &start);
	else
		at = evbuffer_search(in, "\n", 1, NULL);
	if (at.pos < 0) {
		if (used + avail > p->max_header)
			return -1;
		p->scanned = avail;
		return 0;
	}
	p->scanned = 0;
	*eaten = (size_t)at.pos + 1;
	if (used + *eaten > p->max_header)
		return -1;
	data = (char *)evbuffer_pullup(in, (ev_ssize_t)*eaten);
	*line = data;
	*len = (size_t)at.pos;
	if (*len > 0 && data[*len - 1] == '\r')
		(*len)--;
	return 1;
}

static int
is_tchar(unsigned char ch)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch != '\0' && strchr(extra, ch) != NULL);
}

static int
name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* Call fn for every comma-separated element of a list value, trimmed, empty ones skipped. */
static int
each_element(const char *v, size_t n, int (*fn)(struct http_parser *, const char *, size_t),
    struct http_parser *p)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s && fn(p, v + s, e - s) < 0)
			return -1;
		i++;
	}
	return 0;
}

static int
connection_token(struct http_parser *p, const char *t, size_t n)
{
	if (name_is(t, n, "close"))
		p->conn_close = 1;
	else if (name_is(t, n, "keep-alive"))
		p->conn_keep_alive = 1;
	return 0;
}

static int
transfer_coding(struct http_parser *p, const char *t, size_t n)
{
	size_t name_len = 0;

	/* A coding may carry parameters (";q=..." is not allowed here, others are). */
	while (name_len < n && t[name_len] != ';' && t[name_len] != ' ' && t[name_len] != '\t')
		name_len++;
	if (p->te_chunked) {
		/* chunked was not the final coding; or it came twice. */
		fail(p, "Transfer-Encoding: chunked is not the final coding");
		return -1;
	}
	p->te_chunked = name_is(t, name_len, "chunked");
	return 0;
}

static int
length_element(struct http_parser *p, const char *t, size_t n)
{
	uint64_t v = 0;

	if (n == 0 || n > 18) {
		fail(p, "invalid Content-Length");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9') {
			fail(p, "invalid Content-Length");
			return -1;
		}
		v = v * 10 + (uint64_t)(t[i] - '0');
	}
	if (p->cl_present && v != p->content_length) {
		fail(p, "conflicting Content-Length values");
		return -1;
	}
	p->cl_present = 1;
	p->content_length = v;
	return 0;
}

/* Check one field line; trailers is set for the trailer section (fields are ignored there). */
static int
header_line(struct http_parser *p, const char *line, size_t len, int trailers)
{
	const char *colon, *v;
	size_t nlen, vlen;

	if (line[0] == ' ' || line[0] == '\t') {
		fail(p, "obsolete line folding in %s", trailers ? "trailers" : "headers");
		return -1;
	}
	colon = memchr(line, ':', len);
	if (colon == NULL || colon == line) {
		fail(p, "malformed %s line", trailers ? "trailer" : "header");
		return -1;
	}
	nlen = (size_t)(colon - line);
	for (size_t i = 0; i < nlen; i++) {
		if (!is_tchar((unsigned char)line[i])) {
			fail(p, "invalid %s name", trailers ? "trailer" : "header");
			return -1;
		}
	}
	v = colon + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] == '\0' || v[i] == '\r') {
			fail(p, "invalid character in %s value", trailers ? "trailer" : "header");
			return -1;
		}
	}
	if (trailers)
		return 0;
	if (name_is(line, nlen, "content-length"))
		return each_element(v, vlen, length_element, p);
	if (name_is(line, nlen, "transfer-encoding")) {
		p->te_present = 1;
		return each_element(v, vlen, transfer_coding, p);
	}
	if (name_is(line, nlen, "connection"))
		return each_element(v, vlen, connection_token, p);
	if (name_is(line, nlen, "retry-after") && p->resp.retry_after == NULL) {
		size_t n = vlen < RETRY_AFTER_MAX ? vlen : RETRY_AFTER_MAX;

		memcpy(p->retry_after, v, n);
		p->retry_after[n] = '\0';
		p->resp.retry_after = p->retry_after;
	} else if (name_is(line, nlen, "location") && p->resp.location == NULL) {
		size_t n = vlen < LOCATION_MAX ? vlen : LOCATION_MAX;

		if (p->location_cap < n + 1) {
			p->location = xrealloc(p->location, n + 1);
			p->location_cap = n + 1;
		}
		memcpy(p->location, v, n);
		p->location[n] = '\0';
		p->resp.location = p->location;
	}
	return 0;
}

static int
status_line(struct http_parser *p, const char *line, size_t len)
{
	int st;

	/* HTTP/1.x SP 3DIGIT [SP reason] */
	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
	    line[8] != ' ') {
		fail(p, "invalid status line");
		return -1;
	}
	for (int i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9') {
			fail(p, "invalid status code");
			return -1;
		}
	}
	if (len > 12 && line[12] != ' ') {
		fail(p, "invalid status line");
		return -1;
	}
	for (size_t i = 12; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			fail(p, "invalid character in the reason phrase");
			return -1;
		}
	}
	st = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if (st < 100) {
		fail(p, "invalid status code %d", st);
		return -1;
	}
	p->resp.status = st;
	p->resp.minor_version = line[7] - '0';
	return 0;
}

/* The empty line ended the header block: decide how the body is framed. */
static enum http_parse_status
headers_done(struct http_parser *p)
{
	int st = p->resp.status;

	if (st >= 100 && st < 200) {
		if (st == 101)
			return fail(p, "101 Switching Protocols without an upgrade request");
		/* An interim response: the final one follows (its headers count against the limit).
		 */
		reset_head(p);
		p->state = PS_STATUS;
		return HTTP_PARSE_MORE;
	}
	if (p->resp.minor_version >= 1)
		p->resp.keep_alive = !p->conn_close;
	else
		p->resp.keep_alive = p->conn_keep_alive && !p->conn_close;
	if (p->head || st == 204 || st == 304) {
		p->state = PS_DONE;
		return HTTP_PARSE_DONE;
	}
	if (p->te_present) {
		/* RFC 9112 6.1, 6.3: TE wins over Content-Length; both, or TE in 1.0, close after.
		 */
		if (p->cl_present || p->resp.minor_version == 0)
			p->resp.keep_alive = 0;
		if (p->te_chunked) {
			p->state = PS_CHUNK_SIZE;
		} else {
			p->resp.keep_alive = 0;
			p->state = PS_BODY_CLOSE;
		}
		return HTTP_PARSE_MORE;
	}
	if (p->cl_present) {
		if (p->content_length == 0) {
			p->state = PS_DONE;
			return HTTP_PARSE_DONE;
		}
		p->remaining = p->content_length;
		p->state = PS_BODY_LENGTH;
		/* The common case: the whole body fits, so size the buffer once. */
		if (p->content_length <= p->max_body && p->body_cap < p->content_length) {
			p->body = xrealloc(p->body, (size_t)p->content_length);
			p->body_cap = (size_t)p->content_length;
		}
		return HTTP_PARSE_MORE;
	}
	p->resp.keep_alive = 0;
	p->state = PS_BODY_CLOSE;
	return HTTP_PARSE_MORE;
}

/* Take up to n body bytes from in: keep what fits under max_body, drop the rest. */
static void
take_body(struct http_parser *p, struct evbuffer *in, size_t n)
{
	size_t keep = 0;

	if (p->resp.body_len < p->max_body) {
		keep = p->max_body - p->resp.body_len;
		if (keep > n)
			keep = n;
	}
	if (keep > 0) {
		size_t need = p->resp.body_len + keep;

		if (need > p->body_cap) {
			size_t cap = p->body_cap > 0 ? p->body_cap * 2 : 1024;

			if (cap < need)
				cap = need;
			if (cap > p->max_body)
				cap = p->max_body;
			p->body = xrealloc(p->body, cap);
			p->body_cap = cap;
		}
		evbuffer_remove(in, p->body + p->resp.body_len, keep);
		p->resp.body_len += keep;
		p->resp.body = p->body;
	}
	if (n > keep) {
		evbuffer_drain(in, n - keep);
		p->resp.body_truncated = 1;
	}
	p->resp.body_total += n;
}

static int
chunk_size_line(struct http_parser *p, const char *line, size_t len)
{
	uint64_t v = 0;
	size_t i = 0;
	int significant = 0;

	for (; i < len; i++) {
		char ch = line[i];
		int d;

		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else
			break;
		if ((v != 0 || d != 0) && ++significant > 15) {
			fail(p, "chunk size too large");
			return -1;
		}
		v = (v << 4) | (uint64_t)d;
	}
	if (i == 0) {
		fail(p, "invalid chunk size");
		return -1;
	}
	/* BWS, then chunk extensions, which hookd ignores. */
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < len && line[i] != ';') {
		fail(p, "invalid chunk size");
		return -1;
	}
	for (; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			fail(p, "invalid character in a chunk extension");
			return -1;
		}
	}
	p->remaining = v;
	return 0;
}

enum http_parse_status
http_parser_feed(struct http_parser *p, struct evbuffer *in)
{
	for (;;) {
		const char *line;
		size_t len, eaten, avail;
		int r;

		switch (p->state) {
		case PS_DONE: return HTTP_PARSE_DONE;
		case PS_ERROR: return HTTP_PARSE_ERROR;
		case PS_STATUS:
		case PS_HEADERS:
		case PS_TRAILERS:
			if (evbuffer_get_length(in) > 0)
				p->started = 1;
			r = next_line(p, in, p->header_bytes, &line, &len, &eaten);
			if (r < 0)
				return fail(p, "response %s exceed %zu bytes",
				    p->state == PS_TRAILERS ? "trailers" : "headers",
				    p->max_header);
			if (r == 0)
				return HTTP_PARSE_MORE;
			p->header_bytes += eaten;
			if (p->state == PS_STATUS) {
				/* Tolerate empty lines before a status line (RFC 9112 2.2). */
				if (len > 0 && status_line(p, line, len) < 0)
					return HTTP_PARSE_ERROR;
				if (len > 0)
					p->state = PS_HEADERS;
				evbuffer_drain(in, eaten);
				break;
			}
			if (len == 0) {
				evbuffer_drain(in, eaten);
				if (p->state == PS_TRAILERS) {
					p->state = PS_DONE;
					return HTTP_PARSE_DONE;
				}
				if (headers_done(p) == HTTP_PARSE_DONE)
					return HTTP_PARSE_DONE;
				if (p->state == PS_ERROR)
					return HTTP_PARSE_ERROR;
				break;
			}
			if (header_line(p, line, len, p->state == PS_TRAILERS) < 0)
				return HTTP_PARSE_ERROR;
			evbuffer_drain(in, eaten);
			break;
		case PS_BODY_LENGTH:
		case PS_CHUNK_DATA:
			avail = evbuffer_get_length(in);
			if (avail == 0)
				return HTTP_PARSE_MORE;
			if ((uint64_t)avail > p->remaining)
				avail = (size_t)p->remaining;
			take_body(p, in, avail);
			p->remaining -= avail;
			if (p->remaining > 0)
				return HTTP_PARSE_MORE;
			if (p->state == PS_BODY_LENGTH) {
				p->state = PS_DONE;
				return HTTP_PARSE_DONE;
			}
			p->state = PS_CHUNK_END;
			break;
		case PS_CHUNK_SIZE:
		case PS_CHUNK_END:
			/* Chunk lines get a budget of their own: a long body has many. */
			r = next_line(p, in, 0, &line, &len, &eaten);
			if (r < 0)
				return fail(p, "chunk line longer than %zu bytes", p->max_header);
			if (r == 0)
				return HTTP_PARSE_MORE;
			if (p->state == PS_CHUNK_END) {
				if (len != 0)
					return fail(p, "chunk data longer than its size");
				evbuffer_drain(in, eaten);
				p->state = PS_CHUNK_SIZE;
				break;
			}
			if (chunk_size_line(p, line, len) < 0)
				return HTTP_PARSE_ERROR;
			evbuffer_drain(in, eaten);
			if (p->remaining == 0) {
				p->header_bytes = 0;
				p->state = PS_TRAILERS;
			} else {
				p->state = PS_CHUNK_DATA;
			}
			break;
		case PS_BODY_CLOSE:
			avail = evbuffer_get_length(in);
			if (avail > 0)
				take_body(p, in, avail);
			return HTTP_PARSE_MORE;
		}
	}
}

enum http_parse_status
http_parser_eof(struct http_parser *p)
{
	switch (p->state) {
	case PS_DONE: return HTTP_PARSE_DONE;
	case PS_ERROR: return HTTP_PARSE_ERROR;
	case PS_BODY_CLOSE:
		p->state = PS_DONE;
		p->resp.keep_alive = 0;
		return HTTP_PARSE_DONE;
	case PS_STATUS:
		if (!p->started)
			return fail(p, "connection closed before the response");
		return fail(p, "connection closed in the status line");
	case PS_HEADERS: return fail(p, "connection closed in the response headers");
	case PS_BODY_LENGTH:
		return fail(p, "connection closed after %llu of %llu body bytes",
		    (unsigned long long)(p->content_length - p->remaining),
		    (unsigned long long)p->content_length);
	case PS_CHUNK_SIZE:
	case PS_CHUNK_DATA:
	case PS_CHUNK_END:
	case PS_TRAILERS: return fail(p, "connection closed in the chunked body");
	}
	return fail(p, "connection closed");
}
