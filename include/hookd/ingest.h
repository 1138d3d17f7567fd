/* SPDX-License-Identifier: ISC */
/* The inbound receive path: verify, dedupe, group-commit the event, then answer. */
#ifndef HOOKD_INGEST_H
#define HOOKD_INGEST_H

#include <stddef.h>

#include "hookd/util.h"

struct app;
struct json_object;
struct source;

struct ingest;

/* What a receiver hands over once it has verified and parsed a request. */
struct ingest_event {
	struct source *source;   /* the caller keeps its reference until the callback */
	const char *event_type;  /* or NULL */
	const char *external_id; /* dedupe key, or NULL for no dedupe */
	const char *payload;     /* JSON text for the jsonb column */
	size_t payload_len;
	const unsigned char *raw; /* the body exactly as received */
	size_t raw_len;
	const char *headers; /* JSON object text of the stored headers */
};

enum ingest_status {
	INGEST_STORED,      /* committed: answer 2xx */
	INGEST_DUPLICATE,   /* already stored under this dedupe key (id is the stored one) */
	INGEST_UNAVAILABLE, /* the database did not take it (down, busy, outcome unknown): 503 */
	INGEST_REJECTED,    /* the database refused this event's data: 400 */
};

struct ingest_result {
	enum ingest_status status;
	const char *id;             /* the event's id (STORED, DUPLICATE) */
	const char *error;          /* why, for UNAVAILABLE and REJECTED */
	struct json_object *answer; /* a sync handler's answer (borrowed; NULL otherwise) */
};

typedef void (*ingest_cb)(const struct ingest_result *r, void *arg);

struct ingest *ingest_new(struct app *app);
void ingest_free(struct ingest *in);
/*
 * Store an event: batched with others into one commit (group commit), or, for a
 * synchronous SQL handler, stored and handled in one transaction. The pointers in ev
 * need only live until this call returns. cb runs from the loop once the outcome is
 * known: never before the commit for STORED.
 */
void ingest_store(struct ingest *in, const struct ingest_event *ev, ingest_cb cb, void *arg);
/* Call cb after committing events whose handler runs later (the process worker's kick). */
void ingest_on_work(struct ingest *in, void (*cb)(void *arg), void *arg);
/* Events queued or in flight (drain). */
int ingest_busy(const struct ingest *in);

struct http_req;

/* What ingest_gate decided about a request, before anything verifies or parses it. */
enum ingest_gate {
	INGEST_GATE_PASS,      /* go on: verify, parse, store */
	INGEST_GATE_INACTIVE,  /* the source is not active: 410 */
	INGEST_GATE_FORBIDDEN, /* the client address is not in the source's ip_allowlist: 403 */
	INGEST_GATE_TOO_LARGE, /* the body is over the source's max_body: 413 */
	INGEST_GATE_MEDIA,     /* the receiver refused the Content-Type (media_ok 0): 415 */
	INGEST_GATE_RATE,      /* the source's rate limit: 429, Retry-After already set */
};

/*
 * The source checks every receiver applies, in this order: active, the IP allowlist
 * (the client address, found behind trusted_proxies), max_body, the receiver's own
 * verdict on the media type (media_ok; pass 1 to check it later), and the rate limit
 * last, so that a cheap refusal costs no token. Each receiver answers a refusal in its
 * own error shape; for INGEST_GATE_RATE the Retry-After header is already set.
 */
enum ingest_gate ingest_gate(
    struct ingest *in, struct http_req *r, struct source *s, int media_ok) WUR;
/* A refusal as a metrics outcome: "inactive", "forbidden", "too_large", ... */
const char *ingest_gate_name(enum ingest_gate g);

/* POST /in/{slug} and seed 002's POST /functions/v1/webhook-ingest/{slug}. */
void ingest_register(struct app *app);

#endif
