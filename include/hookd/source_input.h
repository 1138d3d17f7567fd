/* SPDX-License-Identifier: ISC */
/* Source API input: a JSON body checked field by field into the values hookd.sources stores. */
#ifndef HOOKD_SOURCE_INPUT_H
#define HOOKD_SOURCE_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "hookd/util.h"

/* The writable fields, as bits of source_input.given. */
enum source_field {
	SOURCE_F_SLUG = 1u << 0,            /* slug */
	SOURCE_F_NAME = 1u << 1,            /* name */
	SOURCE_F_DESCRIPTION = 1u << 2,     /* description */
	SOURCE_F_VERIFIER = 1u << 3,        /* verifier */
	SOURCE_F_SECRETS = 1u << 4,         /* secret or secrets */
	SOURCE_F_TOLERANCE = 1u << 5,       /* timestamp_tolerance */
	SOURCE_F_ALLOWED_TYPES = 1u << 6,   /* allowed_event_types */
	SOURCE_F_MAX_BODY = 1u << 7,        /* max_body */
	SOURCE_F_RATE_LIMIT = 1u << 8,      /* rate_limit */
	SOURCE_F_IP_ALLOWLIST = 1u << 9,    /* ip_allowlist */
	SOURCE_F_DEDUPE_KEY = 1u << 10,     /* dedupe_key */
	SOURCE_F_EVENT_TYPE_KEY = 1u << 11, /* event_type_key */
	SOURCE_F_HANDLER = 1u << 12,        /* handler */
	SOURCE_F_REVIEW = 1u << 13,         /* review_required */
	SOURCE_F_ACTIVE = 1u << 14,         /* active */
	SOURCE_F_OBJECT_TYPES = 1u << 15,   /* allowed_object_types (seed 002) */
	SOURCE_F_ENTITY_TABLE = 1u << 16,   /* default_entity_table (seed 002) */
};
#define SOURCE_F_ALL ((1u << 17) - 1)

enum source_input_mode {
	SOURCE_INPUT_CREATE,  /* POST: slug required; every other field may default */
	SOURCE_INPUT_REPLACE, /* PUT: as CREATE; omitted optional fields take their defaults */
	SOURCE_INPUT_PATCH,   /* PATCH: only the fields given; nothing required */
};

#define SOURCE_DEFAULT_TOLERANCE 300
#define SOURCE_MAX_TOLERANCE     86400
#define SOURCE_MAX_SECRETS       16
#define SOURCE_SECRET_MAX_LEN    1024

/*
 * The validated writable fields of a source. Every field holds its value (the default
 * when the body did not give it, except in PATCH mode); given says which the body named.
 * Strings and arrays are owned; secret plaintexts are wiped when cleared.
 */
struct source_input {
	unsigned given; /* SOURCE_F_* bits */
	char *slug;
	char *name;                   /* "" by default */
	char *description;            /* NULL: none */
	struct json_object *verifier; /* normalized object {"scheme": ...} */
	char **secrets;               /* plaintexts, newest first */
	int nsecrets;
	int secrets_list;     /* given as "secrets" (an array) rather than "secret" */
	int secret_generated; /* secrets[0] was made by source_input_finish */
	int64_t tolerance;    /* seconds */
	char **allowed_types; /* NULL: every event type */
	int nallowed;
	int64_t max_body;    /* bytes; 0: http_max_body_size */
	double rate_per_sec; /* 0: no rate limit */
	int64_t rate_burst;
	char **ip_allowlist; /* canonical CIDR text; NULL: any address */
	int nallow;
	char *dedupe_key; /* "header:Name" or "json:$.path"; NULL: none */
	char *event_type_key;
	struct json_object *handler; /* normalized object {"type": ...} */
	char *handler_function;      /* sql and sql_sync handlers: the function to look up */
	int review_required;
	int active;
	char **object_types; /* seed 002's allowed_object_types; NULL: not set */
	int nobject_types;
	char *entity_table; /* seed 002's default_entity_table; NULL: none */
};

/* What is wrong with an input: the field ("rate_limit.burst"; "" for the body) and why. */
struct source_input_error {
	char field[64];
	char message[256];
};

/*
 * Check a request body (a JSON object) into in. max_body_limit bounds max_body (the
 * configured http_max_body_size). Unknown and read-only fields are refused. Returns 0,
 * or -1 with err filled (in is then cleared). Secret values are never copied into err.
 */
int source_input_parse(struct json_object *body, enum source_input_mode mode,
    int64_t max_body_limit, struct source_input *in, struct source_input_error *err) WUR;
void source_input_clear(struct source_input *in);

/* PATCH: move every field patch gives into base (base keeps the others). */
void source_input_merge(struct source_input *base, struct source_input *patch);

/*
 * The final checks once the fields are complete: given secrets must suit the verifier's
 * key encoding (Discord: a 32-byte hex public key; whsec: base64). When the input sets
 * the verifier or the secrets (given), the verifier needs a secret, and none is given and
 * existing_live (secrets already stored and unexpired) is 0, one is generated, except
 * where it must come from the provider (an Ed25519 public key): then -1. An input that
 * sets neither never gets a secret made. Returns 0 or -1 with err filled.
 */
int source_input_finish(
    struct source_input *in, int existing_live, struct source_input_error *err) WUR;

/* How a verifier config turns a secret into a key. */
enum source_key_encoding {
	SOURCE_KEYENC_RAW,     /* the secret's own bytes */
	SOURCE_KEYENC_BASE64,  /* base64 */
	SOURCE_KEYENC_HEX,     /* hex */
	SOURCE_KEYENC_WHSEC,   /* optional "whsec_", then base64 */
	SOURCE_KEYENC_ED25519, /* hex of a 32-byte Ed25519 public key, issued by the provider */
};

/* The key encoding of a (valid) verifier config, object or scheme name. */
enum source_key_encoding source_verifier_key_encoding(struct json_object *verifier);
/* 0 when secret suits enc, else -1 with the reason (never the secret) in why. */
int source_secret_check(
    enum source_key_encoding enc, const char *secret, char *why, size_t whylen) WUR;
/*
 * A new secret for a key encoding: "whsec_" + base64 of 32 random bytes for whsec,
 * otherwise hex of 32 random bytes; NULL for Ed25519 (only the provider has the key).
 */
char *source_secret_generate(enum source_key_encoding enc);
/* A new secret id: "sec_" + 16 hex characters, into out. */
void source_secret_id(char out[21]);
/* What the API shows of a secret: "…" and its last 4 characters (only "…" when short). */
void source_secret_hint(const char *secret, char *out, size_t outlen);

/*
 * The stored form of hookd.sources.secrets for new plaintexts (newest first):
 * [{"id":"sec_…","sealed":…,"created_at":ISO,"expires_at":null}], sealed under key.
 * Returns compact JSON (malloc'd).
 */
char *source_secrets_seal(const unsigned char key[32], char *const *plain, int n, uint64_t now_ms);

/*
 * Secret rotation on the stored list (JSON array text, newest first, entries {id,
 * sealed, created_at, expires_at, live}): new_entry (an object, consumed) goes first;
 * unexpired entries follow, their expires_at lowered to expire_iso when that is given
 * and earlier; expired entries are dropped. Returns the new stored list (compact JSON
 * without "live", malloc'd), or NULL when list is not a JSON array.
 */
char *source_secrets_rotate(
    const char *list, struct json_object *new_entry, const char *expire_iso);
/*
 * Remove secret id from the stored list. Returns the new list (malloc'd, without "live"),
 * or NULL when there is no such secret; *live_left gets the unexpired secrets that remain.
 */
char *source_secrets_remove(const char *list, const char *id, int *live_left);

/*
 * Check a rotate-secret body ({"secret": "...", "expire_previous_after": seconds|null};
 * NULL or {} for defaults). *secret gets a malloc'd copy or NULL; *expire_after the
 * seconds, or -1 when the previous secrets stay until removed. Returns 0 or -1.
 */
int source_rotate_parse(struct json_object *body, char **secret, int64_t *expire_after,
    struct source_input_error *err) WUR;

/* 1 when s is a well-formed slug: ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$. */
int source_slug_valid(const char *s);

#endif
