/* SPDX-License-Identifier: ISC */
/* Outbound bodies: the bytes a delivery carries, compact JSON in the shape its subscription wants.
 */
#ifndef HOOKD_PAYLOAD_H
#define HOOKD_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "hookd/subscriptions.h"
#include "hookd/util.h"

struct json_object;

/*
 * One outbound message as the body builder sees it; strings are borrowed. A change
 * message (origin "change") has op set; its table, schema, record, old_record and
 * timestamp, when left NULL, are read from its data object {"op","schema","table",
 * "record","old_record","timestamp"} as hookd.capture_step() stores it.
 */
struct payload_message {
	const char *id; /* "evt_...", the webhook-id */
	const char *event_type;
	uint64_t created_ms; /* wall-clock milliseconds */
	const char *data;    /* JSON text as stored (any white space, key order kept) */
	size_t data_len;
	const char *op; /* INSERT | UPDATE | DELETE for change messages, else NULL */
	const char *schema;
	const char *table;
	const char *record;     /* JSON text, or NULL: data's "record" (null when absent) */
	const char *old_record; /* JSON text, or NULL: data's "old_record" */
	const char *timestamp;  /* ISO 8601, any offset, or NULL: data's, else created_ms */
};

/*
 * The body for a message: compact JSON as JSON.stringify prints it (no insignificant
 * white space, '/' not escaped, numbers as JavaScript prints them, integer-like keys
 * first as JavaScript orders them), so a receiver that re-serializes the parsed body gets
 * the same bytes and its HMAC matches.
 *   ordinary messages, any format:  {"id","event","created_at","data"}           (seed 003)
 *   change messages, DEFAULT or FLUXBASE:
 *     {"event","table","schema","record","old_record","timestamp","webhook_id"}   (seed 004)
 *   change messages, SUPABASE:  {"type","table","schema","record","old_record"}   (seed 000)
 *     where a DELETE's record is null (seed 000's row_to_json(NEW)); seed 004's DELETE
 *     carries the deleted row in both record and old_record.
 * Times are ISO 8601 UTC with milliseconds and "Z". webhook_id is the subscription's id.
 * Returns a malloc'd string (its length in *len), or NULL with the reason in err when
 * the stored JSON does not parse.
 */
char *payload_build(const struct payload_message *m, enum payload_format format,
    const char *webhook_id, size_t *len, char *err, size_t errlen) WUR;

/* 1 when the body does not depend on the subscription (several deliveries may share it). */
int payload_shared(const struct payload_message *m, enum payload_format format);

/*
 * An ISO 8601 time with any offset ("2025-11-02 10:30:00.123456+02", "...T...Z") into
 * wall-clock milliseconds (digits past the millisecond are dropped). Returns 0 or -1.
 */
int payload_parse_time(const char *s, uint64_t *ms) WUR;

/*
 * A response body as Postgres text (malloc'd, NUL-terminated): bytes that are not UTF-8,
 * and NUL bytes, become U+FFFD. *outlen (if not NULL) gets its length.
 */
char *payload_response_text(const char *body, size_t len, size_t *outlen);

/*
 * Reorder the keys of every object in o, recursively, the way JavaScript orders an
 * object's own properties: array-index keys ("0" .. "4294967294", canonical) first in
 * ascending order, then the others in insertion order. Returns o, or a replacement for
 * it (o's reference then passes to the replacement).
 */
struct json_object *payload_js_order(struct json_object *o);

#endif
