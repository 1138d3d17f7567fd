/* SPDX-License-Identifier: ISC */
/* Inbound sources: the in-memory cache every receiver reads, kept in step with hookd.sources. */
#ifndef HOOKD_SOURCES_H
#define HOOKD_SOURCES_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct cidr;
struct json_object;
struct verifier;

enum handler_type {
	HANDLER_STORE,    /* store only; the event stays pending (a review queue, seed 002) */
	HANDLER_SQL,      /* SQL function run after the commit by the process worker, retried */
	HANDLER_SQL_SYNC, /* SQL function run in the insert's transaction; its answer is the reply
	                   */
	HANDLER_PUBLISH,  /* publish the event as an outbound message (outbound issue) */
};

struct source_handler {
	enum handler_type type;
	char *function;     /* SQL handlers: a function name ("schema.fn") taking jsonb */
	int max_attempts;   /* SQL: attempts in all, default 3 (seed 001) */
	double backoff_s;   /* SQL: delay before the 2nd attempt, default 2 s */
	double multiplier;  /* SQL: default 2 */
	double max_delay_s; /* SQL: default 60 s */
	char *event_type;   /* publish: the outbound event type; NULL keeps the inbound one */
};

enum source_key_kind {
	SOURCE_KEY_NONE,   /* not configured */
	SOURCE_KEY_HEADER, /* arg is a header name */
	SOURCE_KEY_JSON,   /* arg is a json_path() path into the body */
};

struct source_key {
	enum source_key_kind kind;
	char *arg;
};

struct source_secret {
	char *id;           /* "sec_..." */
	char *value;        /* plaintext, as the provider gave it (unsealed) */
	int64_t expires_at; /* unix seconds; 0 = until removed */
};

/*
 * One source as receivers see it. Read-only for receivers except the token bucket.
 * Reference counted: a request holds its source across a cache refresh.
 */
struct source {
	int refs;
	char id[37];
	char *slug;
	char *name;
	struct verifier *verifier;
	struct source_secret *secrets; /* newest first */
	int nsecrets;
	int64_t tolerance;    /* seconds; 0 disables timestamp checks */
	char **allowed_types; /* NULL: every event type */
	int nallowed;
	int64_t max_body;    /* bytes; 0: http_max_body_size */
	double rate_per_sec; /* 0: no rate limit */
	int rate_burst;
	struct cidr *allow; /* NULL: any client address */
	int nallow;
	struct source_key dedupe; /* where the external id comes from */
	struct source_key event_type_key;
	struct source_handler handler;
	int review_required;
	int active;
	double tokens; /* token bucket state, carried across refreshes */
	uint64_t refill_ms;
};

struct sources;

/* Load now, again on NOTIFY hookd_config and after every LISTEN reconnect. */
struct sources *sources_new(struct app *app);
void sources_free(struct sources *ss);
/* 1 once the cache has been filled from the database at least once. */
int sources_loaded(const struct sources *ss);
/* Ask for a reload (API writes call this after their own commit, besides NOTIFY). */
void sources_refresh(struct sources *ss);
/* The source with this slug / id, referenced (source_unref when done), or NULL. */
struct source *sources_get(struct sources *ss, const char *slug);
struct source *sources_get_id(struct sources *ss, const char *id);
void source_unref(struct source *s);

/* Live (unexpired) secret values, newest first, into out; returns how many. */
int source_live_secrets(const struct source *s, int64_t now, const char **out, int max);
/* Take one token; 0 when refused, with the seconds until one is free in *retry_after. */
int source_rate_take(struct source *s, uint64_t now_ms, int *retry_after);
/* 1 when the source accepts this event type (NULL type: only if no list is set). */
int source_type_allowed(const struct source *s, const char *type);

/*
 * Parsers shared by the cache loader and the API's validation. Each returns 0, or -1
 * with a reason naming what is wrong.
 */
/* A handler config: {"type": "store" | "sql" | "sql_sync" | "publish", ...}. */
int source_handler_parse(
    struct json_object *cfg, struct source_handler *h, char *err, size_t errlen);
void source_handler_clear(struct source_handler *h);
/* "header:Name" or "json:$.path" (NULL or "" gives SOURCE_KEY_NONE). */
int source_key_parse(const char *spec, struct source_key *k, char *err, size_t errlen);
void source_key_clear(struct source_key *k);
/*
 * The value of a key for one request (malloc'd): a header's value, or the scalar at a JSON
 * path as text (numbers as JSON writes them, booleans as true/false). NULL when the header
 * is missing or empty, or the path is missing, null, an object, an array or "".
 */
char *source_key_value(const struct source_key *k,
    const char *(*header)(void *ctx, const char *name), void *ctx, struct json_object *body);

/* The admin routes under /api/v1/sources. */
void api_sources_register(struct app *app);

#endif
