/* SPDX-License-Identifier: ISC */
/* The seeds' routes: thin adapters onto the receive path, plus what they share. */
#ifndef HOOKD_COMPAT_H
#define HOOKD_COMPAT_H

#include <stddef.h>

#include "hookd/verify.h"

struct app;
struct http_req;
struct json_object;
struct source;
struct verifier;

/*
 * A source a compat route stores into. It is created at start-up when missing
 * (INSERT ... ON CONFLICT (slug) DO NOTHING), so the route works on any hookd without
 * set-up; users may change it afterwards through the sources API.
 */
struct compat_source_spec {
	const char *slug;
	const char *name;
	const char *description;
	const char *verifier; /* JSON text */
	const char *handler;  /* JSON text */
};

/* Make sure these sources exist, now if the database is up, else once it is. */
void compat_sources_ensure(struct app *app, const struct compat_source_spec *specs, int n);

/*
 * The source for a request: cb(r, source, arg) with a reference the callee releases,
 * at once when the cache has it, else once it does (the source is being created), or
 * with NULL after a few seconds or on shutdown (answer 503).
 */
typedef void (*compat_source_cb)(struct http_req *r, struct source *s, void *arg);
void compat_source_get(
    struct app *app, const char *slug, struct http_req *r, compat_source_cb cb, void *arg);

/* An environment variable's value read once at start-up (NULL when unset or empty). */
const char *compat_env(const char *name);
/* 1 when an environment variable says yes ("true", "1", "yes", "on", any case). */
int compat_env_true(const char *name);

/*
 * Check a request's signature over its raw body (from http_req_body, which must be
 * called only once per request) with v against the environment secret (if any) and the
 * source's own live secrets. *checked is 0 when there is no secret at all, so nothing
 * was verified (the result is then VERIFY_OK).
 */
enum verify_result compat_verify(const struct verifier *v, struct http_req *r,
    const unsigned char *body, size_t body_len, const struct source *s, const char *env_secret,
    int *checked) WUR;

/* 1 for application/json or application/<anything>+json. */
int compat_is_json(const char *content_type);
/* The request headers worth storing with the event, as JSON text (malloc'd). */
char *compat_stored_headers(struct http_req *r);
/* A JSON value is "truthy" as JavaScript sees it (the seeds' `if (payload.x)`). */
int compat_truthy(struct json_object *v);
/* Count a compat request's outcome in hookd_compat_requests_total{receiver,outcome}. */
void compat_count(const char *receiver, const char *outcome);

/* Seed 000: POST/GET /api/webhooks/customer, GET /api/webhooks/customer/metrics. */
void compat_omniops_register(struct app *app);
/* Seed 001: /api/v1/webhooks/{supabase,notion,test,stats}. */
void compat_memory_register(struct app *app);

#endif
