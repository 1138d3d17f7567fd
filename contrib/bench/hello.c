/* SPDX-License-Identifier: ISC */
/* The benchmark baseline: a hello-world evhttp server that reads the body and answers 200. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

static void
hello_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evbuffer_new();
	size_t n = evbuffer_get_length(evhttp_request_get_input_buffer(req));

	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evbuffer_add_printf(out, "{\"status\":\"ok\",\"bytes\":%zu}", n);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct evhttp *http;
	struct event *term;
	int port = argc > 1 ? atoi(argv[1]) : 8081;

	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, hello_cb, NULL);
	if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
		fprintf(stderr, "hello: cannot listen on 127.0.0.1:%d\n", port);
		return 1;
	}
	term = evsignal_new(base, SIGTERM, stop_cb, base);
	event_add(term, NULL);
	event_base_dispatch(base);
	event_free(term);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
