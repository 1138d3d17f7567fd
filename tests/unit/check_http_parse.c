/* SPDX-License-Identifier: ISC */
/* Unit tests for the HTTP/1.x response parser: status lines, headers, framing, keep-alive. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "hookd/http_parse.h"
#include "hookd/util.h"

/*
 * Feed text to the parser whole, or one byte at a time (bytewise), stopping at the first
 * status other than MORE; eof then reports the connection closing.
 */
static enum http_parse_status
run(struct http_parser *p, struct evbuffer *in, const char *text, int bytewise, int eof)
{
	size_t n = strlen(text);
	enum http_parse_status st = HTTP_PARSE_MORE;

	if (!bytewise) {
		evbuffer_add(in, text, n);
		st = http_parser_feed(p, in);
	} else {
		for (size_t i = 0; i < n && st == HTTP_PARSE_MORE; i++) {
			evbuffer_add(in, text + i, 1);
			st = http_parser_feed(p, in);
		}
		/* Whatever was not consumed stays for the caller, as with one feed. */
	}
	if (st == HTTP_PARSE_MORE && eof)
		st = http_parser_eof(p);
	return st;
}

/* Parse text both ways; the outcome must not depend on how the bytes arrive. */
#define BOTH_WAYS for (int bytewise = 0; bytewise < 2; bytewise++)

struct fixture {
	struct http_parser *p;
	struct evbuffer *in;
};

static struct fixture
fx_new(size_t max_header, size_t max_body)
{
	struct fixture f = {http_parser_new(max_header, max_body), evbuffer_new()};

	return f;
}

static void
fx_free(struct fixture *f)
{
	http_parser_free(f->p);
	evbuffer_free(f->in);
}

static void
body_is(const struct http_response *r, const char *want)
{
	ck_assert_uint_eq(r->body_len, strlen(want));
	if (r->body_len > 0)
		ck_assert(memcmp(r->body, want, r->body_len) == 0);
}

/* --- status lines ------------------------------------------------------------------------ */

START_TEST(test_simple)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 16384);
		const struct http_response *r;

		ck_assert_int_eq(http_parser_started(f.p), 0);
		ck_assert_int_eq(run(f.p, f.in,
		                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
		                     "Content-Type: text/plain\r\n\r\nhello",
		                     bytewise, 0),
		    HTTP_PARSE_DONE);
		r = http_parser_response(f.p);
		ck_assert_int_eq(r->status, 200);
		ck_assert_int_eq(r->minor_version, 1);
		ck_assert_int_eq(r->keep_alive, 1);
		ck_assert_int_eq(r->body_truncated, 0);
		ck_assert_uint_eq(r->body_total, 5);
		ck_assert_ptr_null(r->retry_after);
		ck_assert_ptr_null(r->location);
		body_is(r, "hello");
		ck_assert_int_eq(http_parser_started(f.p), 1);
		ck_assert_uint_eq(evbuffer_get_length(f.in), 0);
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_status_lines)
{
	static const struct {
		const char *line;
		int status; /* 0: invalid */
	} cases[] = {
	    {"HTTP/1.1 200 OK", 200},
	    {"HTTP/1.1 404 Not Found", 404},
	    {"HTTP/1.1 503 ", 503},
	    {"HTTP/1.1 204", 204},
	    {"HTTP/1.0 500 Internal Server Error", 500},
	    {"HTTP/1.1 299 Custom\tReason", 299},
	    {"HTTP/1.1 999 Odd", 999},
	    {"HTTP/2 200 OK", 0},
	    {"HTTP/1.1 20 OK", 0},
	    {"HTTP/1.1 2000 OK", 0},
	    {"HTTP/1.1 20x OK", 0},
	    {"HTTP/1.1 099 Low", 0},
	    {"HTP/1.1 200 OK", 0},
	    {"ICY 200 OK", 0},
	    {"HTTP/1.1  200 OK", 0},
	    {"http/1.1 200 OK", 0},
	    {"HTTP/1.1 200 OK\x01", 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		BOTH_WAYS
		{
			struct fixture f = fx_new(65536, 16384);
			char text[256];
			enum http_parse_status st;

			snprintf(
			    text, sizeof(text), "%s\r\nContent-Length: 0\r\n\r\n", cases[i].line);
			st = run(f.p, f.in, text, bytewise, 0);
			if (cases[i].status == 0) {
				ck_assert_msg(
				    st == HTTP_PARSE_ERROR, "%s: accepted", cases[i].line);
				ck_assert_str_ne(http_parser_error(f.p), "");
			} else {
				ck_assert_msg(st == HTTP_PARSE_DONE, "%s: %s", cases[i].line,
				    http_parser_error(f.p));
				ck_assert_int_eq(
				    http_parser_response(f.p)->status, cases[i].status);
			}
			fx_free(&f);
		}
	}
}
END_TEST

START_TEST(test_bare_lf_and_leading_blank_lines)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 16384);

		ck_assert_int_eq(
		    run(f.p, f.in, "\r\n\nHTTP/1.1 201 Created\nContent-Length: 2\n\nok", bytewise,
		        0),
		    HTTP_PARSE_DONE);
		ck_assert_int_eq(http_parser_response(f.p)->status, 201);
		body_is(http_parser_response(f.p), "ok");
		fx_free(&f);
	}
}
END_TEST

/* --- headers ------------------------------------------------------------------------------ */

START_TEST(test_headers_kept)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 16384);
		const struct http_response *r;

		ck_assert_int_eq(
		    run(f.p, f.in,
		        "HTTP/1.1 302 Found\r\nlocation:   https://example.com/next  \r\n"
		        "RETRY-AFTER: 120\r\nLocation: /second\r\nContent-Length: 0\r\n\r\n",
		        bytewise, 0),
		    HTTP_PARSE_DONE);
		r = http_parser_response(f.p);
		ck_assert_int_eq(r->status, 302);
		ck_assert_str_eq(r->location, "https://example.com/next");
		ck_assert_str_eq(r->retry_after, "120");
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_headers_invalid)
{
	static const struct {
		const char *headers;
		const char *why;
	} cases[] = {
	    {"X-A: one\r\n two\r\n", "folding"},
	    {"X-A: one\r\n\ttwo\r\n", "folding"},
	    {"X-A : one\r\n", "name"},
	    {"X A: one\r\n", "name"},
	    {": one\r\n", "malformed"},
	    {"no colon here\r\n", "malformed"},
	    {"X-A: one\rtwo\r\n", "character"},
	    {"Content-Length: 5x\r\n", "Content-Length"},
	    {"Content-Length: -1\r\n", "Content-Length"},
	    {"Content-Length: 5\r\nContent-Length: 6\r\n", "conflicting"},
	    {"Content-Length: 5, 6\r\n", "conflicting"},
	    {"Content-Length: 99999999999999999999\r\n", "Content-Length"},
	    {"Transfer-Encoding: chunked, gzip\r\n", "final"},
	    {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "final"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		BOTH_WAYS
		{
			struct fixture f = fx_new(65536, 16384);
			char text[512];

			snprintf(
			    text, sizeof(text), "HTTP/1.1 200 OK\r\n%s\r\nhello", cases[i].headers);
			ck_assert_msg(run(f.p, f.in, text, bytewise, 0) == HTTP_PARSE_ERROR,
			    "case %zu accepted", i);
			ck_assert_msg(strstr(http_parser_error(f.p), cases[i].why) != NULL,
			    "case %zu: %s", i, http_parser_error(f.p));
			fx_free(&f);
		}
	}
}
END_TEST

START_TEST(test_content_length_list)
{
	struct fixture f = fx_new(65536, 16384);

	ck_assert_int_eq(run(f.p, f.in, "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", 0, 0),
	    HTTP_PARSE_DONE);
	body_is(http_parser_response(f.p), "abc");
	fx_free(&f);
}
END_TEST

START_TEST(test_oversized_headers)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(64, 16384);
		const char *fits = "HTTP/1.1 200 OK\r\nX-Pad: aaaaaaaaaaaaaaaaa\r\n"
		                   "Content-Length: 0\r\n\r\n"; /* 64 bytes exactly */
		char big[400];

		ck_assert_uint_eq(strlen(fits), 64);
		ck_assert_int_eq(run(f.p, f.in, fits, bytewise, 0), HTTP_PARSE_DONE);
		http_parser_reset(f.p, 0);
		snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Pad: %0100d\r\n\r\n", 0);
		ck_assert_int_eq(run(f.p, f.in, big, bytewise, 0), HTTP_PARSE_ERROR);
		ck_assert_ptr_nonnull(strstr(http_parser_error(f.p), "exceed 64 bytes"));
		evbuffer_drain(f.in, evbuffer_get_length(f.in));
		/* One endless line, no LF at all: refused as soon as it passes the limit. */
		http_parser_reset(f.p, 0);
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert_int_eq(run(f.p, f.in, big, bytewise, 0), HTTP_PARSE_ERROR);
		fx_free(&f);
	}
}
END_TEST

/* --- keep-alive --------------------------------------------------------------------------- */

START_TEST(test_keep_alive_rules)
{
	static const struct {
		const char *head;
		int keep_alive;
	} cases[] = {
	    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 1},
	    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n", 0},
	    {"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n", 0},
	    {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n", 0},
	    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n", 1},
	    {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\n"
	     "Content-Length: 0\r\n",
	        1},
	    {"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n", 0},
	    /* Framing that ends with the connection: never reusable. */
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", 0},
	    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n", 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fixture f = fx_new(65536, 16384);
		char text[512];
		int chunked = strstr(cases[i].head, "chunked") != NULL;

		snprintf(text, sizeof(text), "%s\r\n%s", cases[i].head, chunked ? "0\r\n\r\n" : "");
		ck_assert_msg(run(f.p, f.in, text, 0, 0) == HTTP_PARSE_DONE, "case %zu: %s", i,
		    http_parser_error(f.p));
		ck_assert_msg(http_parser_response(f.p)->keep_alive == cases[i].keep_alive,
		    "case %zu: keep_alive %d", i, http_parser_response(f.p)->keep_alive);
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_body_until_close)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 16384);
		const struct http_response *r;

		ck_assert_int_eq(run(f.p, f.in, "HTTP/1.1 200 OK\r\n\r\nall of this", bytewise, 0),
		    HTTP_PARSE_MORE);
		ck_assert_int_eq(http_parser_eof(f.p), HTTP_PARSE_DONE);
		r = http_parser_response(f.p);
		ck_assert_int_eq(r->keep_alive, 0);
		body_is(r, "all of this");
		fx_free(&f);
	}
}
END_TEST

/* --- bodies ------------------------------------------------------------------------------- */

START_TEST(test_truncation)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 4);
		const struct http_response *r;

		ck_assert_int_eq(
		    run(f.p, f.in, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcdefghij",
		        bytewise, 0),
		    HTTP_PARSE_DONE);
		r = http_parser_response(f.p);
		body_is(r, "abcd");
		ck_assert_int_eq(r->body_truncated, 1);
		ck_assert_uint_eq(r->body_total, 10);
		ck_assert_int_eq(r->keep_alive, 1);
		ck_assert_uint_eq(evbuffer_get_length(f.in), 0);
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_length_mismatch)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 16384);

		/* Too short: the connection closes first. */
		ck_assert_int_eq(
		    run(f.p, f.in, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", bytewise, 1),
		    HTTP_PARSE_ERROR);
		ck_assert_str_eq(
		    http_parser_error(f.p), "connection closed after 3 of 10 body bytes");
		evbuffer_drain(f.in, evbuffer_get_length(f.in));
		/* Too long: the response ends at Content-Length, the rest stays unread. */
		http_parser_reset(f.p, 0);
		ck_assert_int_eq(
		    run(f.p, f.in, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA", 0, 0),
		    HTTP_PARSE_DONE);
		body_is(http_parser_response(f.p), "abc");
		ck_assert_uint_eq(evbuffer_get_length(f.in), 5);
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_no_body_responses)
{
	static const char *const heads[] = {
	    "HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n",
	    "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
		struct fixture f = fx_new(65536, 16384);

		ck_assert_int_eq(run(f.p, f.in, heads[i], 0, 0), HTTP_PARSE_DONE);
		ck_assert_uint_eq(http_parser_response(f.p)->body_len, 0);
		ck_assert_int_eq(http_parser_response(f.p)->keep_alive, 1);
		fx_free(&f);
	}
	{
		struct fixture f = fx_new(65536, 16384);

		/* HEAD: the headers describe a body that is not sent. */
		http_parser_reset(f.p, 1);
		ck_assert_int_eq(
		    run(f.p, f.in, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", 0, 0),
		    HTTP_PARSE_DONE);
		ck_assert_uint_eq(http_parser_response(f.p)->body_len, 0);
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_chunked)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 16384);
		const struct http_response *r;

		ck_assert_int_eq(run(f.p, f.in,
		                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
		                     "5;name=value;other=\"q\"\r\nhello\r\n"
		                     "000A \t;ext\r\n, world!!!\r\n"
		                     "1\r\n\n\r\n"
		                     "0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n",
		                     bytewise, 0),
		    HTTP_PARSE_DONE);
		r = http_parser_response(f.p);
		body_is(r, "hello, world!!!\n");
		ck_assert_int_eq(r->keep_alive, 1);
		ck_assert_uint_eq(evbuffer_get_length(f.in), 0);
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_chunked_truncated_body)
{
	struct fixture f = fx_new(65536, 6);
	const struct http_response *r;

	ck_assert_int_eq(run(f.p, f.in,
	                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                     "4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n",
	                     0, 0),
	    HTTP_PARSE_DONE);
	r = http_parser_response(f.p);
	body_is(r, "abcdef");
	ck_assert_int_eq(r->body_truncated, 1);
	ck_assert_uint_eq(r->body_total, 8);
	fx_free(&f);
}
END_TEST

START_TEST(test_chunked_invalid)
{
	static const struct {
		const char *body;
		const char *why;
	} cases[] = {
	    {"zz\r\n", "chunk size"},
	    {"\r\n", "chunk size"},
	    {"5 x\r\nhello\r\n0\r\n\r\n", "chunk size"},
	    {"10000000000000000\r\n", "too large"},
	    {"3\r\nhello\r\n0\r\n\r\n", "longer than its size"},
	    {"5;a=\x01\r\nhello\r\n0\r\n\r\n", "extension"},
	    {"0\r\nX-T: a\r\n folded\r\n\r\n", "folding"},
	    {"0\r\nbad trailer\r\n\r\n", "malformed"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		BOTH_WAYS
		{
			struct fixture f = fx_new(65536, 16384);
			char text[512];

			snprintf(text, sizeof(text),
			    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s",
			    cases[i].body);
			ck_assert_msg(run(f.p, f.in, text, bytewise, 0) == HTTP_PARSE_ERROR,
			    "case %zu accepted", i);
			ck_assert_msg(strstr(http_parser_error(f.p), cases[i].why) != NULL,
			    "case %zu: %s", i, http_parser_error(f.p));
			fx_free(&f);
		}
	}
	{
		/* Leading zeros do not count against the size's digits. */
		struct fixture f = fx_new(65536, 16384);

		ck_assert_int_eq(run(f.p, f.in,
		                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		                     "00000000000000000002\r\nhi\r\n0\r\n\r\n",
		                     0, 0),
		    HTTP_PARSE_DONE);
		body_is(http_parser_response(f.p), "hi");
		fx_free(&f);
	}
	{
		/* The connection closing inside a chunked body is an error, not the end. */
		struct fixture f = fx_new(65536, 16384);

		ck_assert_int_eq(
		    run(f.p, f.in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		        0, 1),
		    HTTP_PARSE_ERROR);
		ck_assert_ptr_nonnull(strstr(http_parser_error(f.p), "chunked"));
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_other_transfer_coding)
{
	struct fixture f = fx_new(65536, 16384);

	/* Not chunked last: the body runs until the connection closes (RFC 9112 6.3). */
	ck_assert_int_eq(
	    run(f.p, f.in,
	        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n"
	        "abcdef",
	        0, 1),
	    HTTP_PARSE_DONE);
	body_is(http_parser_response(f.p), "abcdef");
	ck_assert_int_eq(http_parser_response(f.p)->keep_alive, 0);
	fx_free(&f);
}
END_TEST

/* --- interim responses, reuse ------------------------------------------------------------- */

START_TEST(test_interim)
{
	BOTH_WAYS
	{
		struct fixture f = fx_new(65536, 16384);
		const struct http_response *r;

		ck_assert_int_eq(
		    run(f.p, f.in,
		        "HTTP/1.1 100 Continue\r\n\r\n"
		        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n"
		        "Location: /not-this-one\r\n\r\n"
		        "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
		        bytewise, 0),
		    HTTP_PARSE_DONE);
		r = http_parser_response(f.p);
		ck_assert_int_eq(r->status, 202);
		ck_assert_ptr_null(r->location);
		body_is(r, "ok");
		fx_free(&f);
	}
	{
		struct fixture f = fx_new(65536, 16384);

		ck_assert_int_eq(
		    run(f.p, f.in, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		        0, 0),
		    HTTP_PARSE_ERROR);
		ck_assert_ptr_nonnull(strstr(http_parser_error(f.p), "101"));
		fx_free(&f);
	}
	{
		/* Interim responses count against the header limit: no endless 1xx stream. */
		struct fixture f = fx_new(100, 16384);
		enum http_parse_status st = HTTP_PARSE_MORE;

		for (int i = 0; i < 20 && st == HTTP_PARSE_MORE; i++)
			st = run(f.p, f.in, "HTTP/1.1 100 Continue\r\n\r\n", 0, 0);
		ck_assert_int_eq(st, HTTP_PARSE_ERROR);
		fx_free(&f);
	}
}
END_TEST

START_TEST(test_two_responses_and_take_body)
{
	struct fixture f = fx_new(65536, 16384);
	char *body;
	size_t len;

	ck_assert_int_eq(run(f.p, f.in,
	                     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nRetry-After: 5\r\n\r\none"
	                     "HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\ntwo",
	                     0, 0),
	    HTTP_PARSE_DONE);
	body = http_parser_take_body(f.p, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert(memcmp(body, "one", 3) == 0);
	ck_assert_ptr_null(http_parser_response(f.p)->body);
	http_parser_reset(f.p, 0);
	ck_assert_int_eq(http_parser_started(f.p), 0);
	ck_assert_ptr_null(http_parser_response(f.p)->retry_after);
	ck_assert_int_eq(http_parser_feed(f.p, f.in), HTTP_PARSE_DONE);
	ck_assert_int_eq(http_parser_response(f.p)->status, 500);
	body_is(http_parser_response(f.p), "two");
	ck_assert(memcmp(body, "one", 3) == 0);
	free(body);
	/* An empty body hands over nothing. */
	http_parser_reset(f.p, 0);
	ck_assert_int_eq(run(f.p, f.in, "HTTP/1.1 204 No Content\r\n\r\n", 0, 0), HTTP_PARSE_DONE);
	ck_assert_ptr_null(http_parser_take_body(f.p, &len));
	ck_assert_uint_eq(len, 0);
	fx_free(&f);
}
END_TEST

START_TEST(test_eof_states)
{
	struct fixture f = fx_new(65536, 16384);

	ck_assert_int_eq(http_parser_eof(f.p), HTTP_PARSE_ERROR);
	ck_assert_str_eq(http_parser_error(f.p), "connection closed before the response");
	ck_assert_int_eq(http_parser_started(f.p), 0);
	http_parser_reset(f.p, 0);
	ck_assert_int_eq(run(f.p, f.in, "HTTP/1.1 200 OK\r\nX-A: b\r\n", 0, 1), HTTP_PARSE_ERROR);
	ck_assert_str_eq(http_parser_error(f.p), "connection closed in the response headers");
	ck_assert_int_eq(http_parser_started(f.p), 1);
	evbuffer_drain(f.in, evbuffer_get_length(f.in));
	http_parser_reset(f.p, 0);
	ck_assert_int_eq(run(f.p, f.in, "HTTP/1.1 2", 0, 1), HTTP_PARSE_ERROR);
	ck_assert_int_eq(http_parser_started(f.p), 1);
	fx_free(&f);
}
END_TEST

static Suite *
http_parse_suite(void)
{
	Suite *s = suite_create("http_parse");
	TCase *tc = tcase_create("http_parse");

	tcase_add_test(tc, test_simple);
	tcase_add_test(tc, test_status_lines);
	tcase_add_test(tc, test_bare_lf_and_leading_blank_lines);
	tcase_add_test(tc, test_headers_kept);
	tcase_add_test(tc, test_headers_invalid);
	tcase_add_test(tc, test_content_length_list);
	tcase_add_test(tc, test_oversized_headers);
	tcase_add_test(tc, test_keep_alive_rules);
	tcase_add_test(tc, test_body_until_close);
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_length_mismatch);
	tcase_add_test(tc, test_no_body_responses);
	tcase_add_test(tc, test_chunked);
	tcase_add_test(tc, test_chunked_truncated_body);
	tcase_add_test(tc, test_chunked_invalid);
	tcase_add_test(tc, test_other_transfer_coding);
	tcase_add_test(tc, test_interim);
	tcase_add_test(tc, test_two_responses_and_take_body);
	tcase_add_test(tc, test_eof_states);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(http_parse_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
