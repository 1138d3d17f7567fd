/* SPDX-License-Identifier: ISC */
/* Inbound signature verification: verifier configs compiled once, requests checked, handshakes. */
#ifndef HOOKD_VERIFY_H
#define HOOKD_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "hookd/util.h"

struct verifier;

enum verify_result {
	VERIFY_OK,        /* a (signature, secret) pair matched and the timestamp is fresh */
	VERIFY_MISSING,   /* signature or timestamp header absent or unparsable: 400 */
	VERIFY_INVALID,   /* no signature matched any secret: 401 */
	VERIFY_STALE,     /* signed, but the timestamp is outside the tolerance: 401 */
	VERIFY_NO_SECRET, /* the source has no usable secret: a server-side fault */
};

/*
 * One request as the verifier sees it. Everything is borrowed for the call.
 * body is the raw request body: verification never looks at a re-serialized form.
 */
struct verify_input {
	const char *method;       /* "POST"; {method} and Twilio's form rule */
	const char *url;          /* absolute URL as the provider called it, query included */
	const char *content_type; /* Content-Type header or NULL (Twilio's form rule) */
	const unsigned char *body;
	size_t body_len;
	/* Case-insensitive header lookup: the value, or NULL when absent. */
	const char *(*header)(void *ctx, const char *name);
	void *header_ctx;
	int64_t now;              /* unix seconds */
	int64_t tolerance;        /* seconds either side of now; 0 (or less) disables */
	struct json_object *json; /* the parsed body if the caller has it, else NULL */
};

/*
 * Compile a verifier config: a JSON object {"scheme": NAME, ...overrides} (or just the
 * string NAME). Returns NULL with a reason in err for a bad config. docs/ lists the
 * schemes and keys.
 */
struct verifier *verifier_compile(struct json_object *cfg, char *err, size_t errlen) WUR;
void verifier_free(struct verifier *v);
/* The scheme name ("standard", "github", "hmac", ...). */
const char *verifier_scheme(const struct verifier *v);
/* 1 when the scheme signs the request URL (Twilio, or a template with {url}). */
int verifier_uses_url(const struct verifier *v);
/* 0 for scheme "none", else 1. */
int verifier_requires_secret(const struct verifier *v);
/* 1 when the scheme has a handshake for verify_handshake to answer (Slack, Zoom, Discord). */
int verifier_has_handshake(const struct verifier *v);

/*
 * Check a request against the source's live secrets (strings exactly as the provider
 * issued them; rotation means several). Valid when any (signature, secret) pair
 * matches, compared in constant time. Order of checks: no secret, missing or
 * unparsable headers, signature, timestamp window. why gets a short reason naming
 * headers, never secrets or signatures. Pure: no I/O, no clock.
 */
enum verify_result verify_check(const struct verifier *v, const struct verify_input *in,
    const char *const *secrets, int nsecrets, char *why, size_t whylen);

/* The HTTP status a receiver answers for a result (200 for VERIFY_OK, 500 for NO_SECRET). */
int verify_http_status(enum verify_result r);
/* "ok", "missing", "invalid", "stale", "no_secret": for logs and metrics labels. */
const char *verify_result_name(enum verify_result r);

/*
 * The id the provider gives the delivery (webhook-id, svix-id, X-GitHub-Delivery,
 * Linear-Delivery, X-Shopify-Webhook-Id, I-Twilio-Idempotency-Token, X-Webhook-ID),
 * for dedupe; NULL when the scheme has none or the header is absent. Points into
 * what in->header returned.
 */
const char *verify_delivery_id(const struct verifier *v, const struct verify_input *in);

/*
 * Handshakes answered without storing an event, for a body that verify_check already
 * accepted: Slack url_verification ({"challenge": ...}), Zoom endpoint.url_validation
 * ({"plainToken": ..., "encryptedToken": hex HMAC-SHA256(secrets[0], plainToken)}),
 * Discord PING (type 1 -> {"type": 1}). Returns 1 and a malloc'd compact JSON reply in
 * *reply_json, or 0 when the body is not a handshake of this scheme. Zoom signs with
 * one secret token: pass the current secret first.
 */
int verify_handshake(const struct verifier *v, struct json_object *body, const char *const *secrets,
    int nsecrets, char **reply_json) WUR;

#endif
