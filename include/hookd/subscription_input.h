/* SPDX-License-Identifier: ISC */
/* Subscription and publish API input: JSON bodies checked field by field into stored values. */
#ifndef HOOKD_SUBSCRIPTION_INPUT_H
#define HOOKD_SUBSCRIPTION_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "hookd/subscriptions.h"
#include "hookd/util.h"

/* The writable fields, as bits of subscription_input.given. */
enum subscription_field {
	SUB_F_NAME = 1u << 0,               /* name */
	SUB_F_DESCRIPTION = 1u << 1,        /* description */
	SUB_F_URL = 1u << 2,                /* url */
	SUB_F_SECRET = 1u << 3,             /* secret (a non-null one) */
	SUB_F_ENABLED = 1u << 4,            /* enabled; is_active in seed 003's API */
	SUB_F_EVENTS = 1u << 5,             /* events */
	SUB_F_MAX_RETRIES = 1u << 6,        /* max_retries */
	SUB_F_TIMEOUT = 1u << 7,            /* timeout_seconds */
	SUB_F_BACKOFF = 1u << 8,            /* retry_backoff_seconds */
	SUB_F_MULTIPLIER = 1u << 9,         /* retry_multiplier */
	SUB_F_MAX_DELAY = 1u << 10,         /* retry_max_delay_seconds */
	SUB_F_JITTER = 1u << 11,            /* retry_jitter */
	SUB_F_SCHEDULE = 1u << 12,          /* retry_schedule */
	SUB_F_HEADERS = 1u << 13,           /* headers */
	SUB_F_IP_ALLOWLIST = 1u << 14,      /* ip_allowlist; ip_whitelist in seed 003's API */
	SUB_F_SIGNATURE_HEADERS = 1u << 15, /* signature_headers (not in seed 003's API) */
	SUB_F_PAYLOAD_FORMAT = 1u << 16,    /* payload_format */
};
#define SUB_F_ALL ((1u << 17) - 1)

enum subscription_input_mode {
	SUB_INPUT_CREATE,  /* POST: name and url required; every other field may default */
	SUB_INPUT_REPLACE, /* PUT: as CREATE, omitted fields default (the API keeps some) */
	SUB_INPUT_PATCH,   /* PATCH: only the fields given; nothing required */
};

/* Which API a body came through: it names two fields differently and sets the header sets. */
enum subscription_api {
	SUB_API_V1,        /* /api/v1/webhooks (seed 004) */
	SUB_API_OMNISALES, /* /api/webhooks (seed 003): is_active, ip_whitelist */
};

#define SUB_DEFAULT_MAX_RETRIES    3
#define SUB_DEFAULT_TIMEOUT        30
#define SUB_DEFAULT_BACKOFF        1.0
#define SUB_DEFAULT_MULTIPLIER     2.0
#define SUB_DEFAULT_MAX_DELAY      60.0
#define SUB_DEFAULT_JITTER         0.1
#define SUB_SECRET_MAX_LEN         512
#define SUB_EVENT_TYPE_MAX_LEN     200
#define SUB_ROTATE_DEFAULT_OVERLAP 86400 /* seconds both secrets sign after a rotation */

/*
 * The validated writable fields of a subscription. Every field holds its value (the
 * default when the body did not give it, except in PATCH mode); given says which the
 * body named. Strings, arrays and JSON values are owned; the secret is wiped when cleared.
 */
struct subscription_input {
	unsigned given; /* SUB_F_* bits */
	char *name;
	char *description; /* NULL: none */
	char *url;
	char *secret;         /* plaintext; NULL: keep the stored ones (or generate) */
	int secret_generated; /* made by subscription_input_finish */
	int enabled;
	struct json_object *events; /* normalized array of patterns and table objects */
	int64_t max_retries;
	int64_t timeout_seconds;
	double backoff_s;
	double multiplier;
	double max_delay_s;
	double jitter;
	double *schedule; /* NULL: no explicit schedule */
	int nschedule;
	struct json_object *headers; /* object: header name -> value */
	char **ip_allowlist;         /* canonical CIDR text; NULL: no pin */
	int nallow;
	unsigned sign_flags; /* SIGN_* */
	enum payload_format format;
};

/* What is wrong with an input: the field ("events[1].operations"; "" for the body) and why. */
struct subscription_input_error {
	char field[64];
	char message[256];
};

/*
 * Check a request body (a JSON object) into in. Unknown fields are refused; read-only
 * ones (id, created_at, ...) are refused in the v1 API and ignored in seed 003's, whose
 * clients send back what they read. Returns 0, or -1 with err filled (in is then cleared).
 * Secret values are never copied into err.
 */
int subscription_input_parse(struct json_object *body, enum subscription_input_mode mode,
    enum subscription_api api, struct subscription_input *in,
    struct subscription_input_error *err) WUR;
void subscription_input_clear(struct subscription_input *in);

/* PATCH: move every field patch gives into base (base keeps the others). */
void subscription_input_merge(struct subscription_input *base, struct subscription_input *patch);

/*
 * The final step once the fields are complete. A secret is generated ("whsec_" + base64
 * of 32 random bytes) when none is given and has_secret (the subscription already has
 * a live one) is 0. Header sets: standard always; when signature_headers is not given,
 * stored (if not NULL: an update keeps them) or, on create, {standard} for v1 and
 * {standard, omnisales} for seed 003; through v1 a given secret with no
 * signature_headers also adds fluxbase (seed 004's X-Fluxbase-Signature). A url whose
 * host is an IP literal outside ip_allowlist is refused. Returns 0 or -1 with err.
 */
int subscription_input_finish(struct subscription_input *in, enum subscription_api api,
    int has_secret, const unsigned *stored, struct subscription_input_error *err) WUR;

/* 0 when secret can sign (sign_secret_key accepts it), else -1 with why (never the secret). */
int subscription_secret_check(const char *secret, char *why, size_t whylen) WUR;

/*
 * Check a rotate-secret body ({"secret": "..."|null, "expire_previous_after": s|null};
 * NULL or {} for defaults). *secret gets a malloc'd copy or NULL; *expire_after the
 * seconds the previous secrets stay live (SUB_ROTATE_DEFAULT_OVERLAP unless given).
 */
int subscription_rotate_parse(struct json_object *body, char **secret, int64_t *expire_after,
    struct subscription_input_error *err) WUR;

/*
 * An event type: 1 to SUB_EVENT_TYPE_MAX_LEN bytes, a letter, digit or '_' first, then
 * letters, digits and "_.:/-" ("order.created", "orders/create", "scrape_job.completed").
 */
int subscription_event_type_valid(const char *s);
/* A filter pattern: "*", an event type, or an event type followed by ".*" ("order.*"). */
int subscription_pattern_valid(const char *s);

/* "default", "fluxbase", "supabase" <-> enum payload_format; -1 for an unknown name. */
int subscription_payload_format_parse(const char *s, enum payload_format *out) WUR;
const char *subscription_payload_format_name(enum payload_format f);

/* One declared event type. */
struct declared_event_type {
	char *name;
	char *description; /* NULL: none given */
};

/*
 * The declared event types of the config key event_types: comma separated entries, each
 * "name" or "name: description" (the name is the entry's first word, a colon ending it is
 * dropped; a description cannot hold a comma). White space trimmed, empty entries and
 * repeated names dropped (the first stays), order kept. Returns a malloc'd array for
 * subscription_event_types_free (NULL when empty); *n gets the count.
 */
struct declared_event_type *subscription_event_types_parse(const char *list, int *n);
void subscription_event_types_free(struct declared_event_type *v, int n);

/* --- publish -------------------------------------------------------------------------- */

/* A POST /api/v1/events body, checked. */
struct publish_input {
	char *event; /* the event type */
	char *data;  /* compact JSON text of data ("{}" when absent) */
	size_t data_len;
	char *id; /* the caller's message id, or NULL */
};

/*
 * Check {"event": "...", "data": any, "id"?: "..."}. data is re-serialized as
 * JSON.stringify would (key order kept, no white space), the form deliveries sign.
 * Returns 0 or -1 with err filled (in is then cleared).
 */
int publish_input_parse(
    struct json_object *body, struct publish_input *in, struct subscription_input_error *err) WUR;
void publish_input_clear(struct publish_input *in);
/* A caller's message id: 1 to 128 of [A-Za-z0-9_.:-] (it travels in webhook-id). */
int publish_message_id_valid(const char *s);

#endif
