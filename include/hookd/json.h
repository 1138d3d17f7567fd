/* SPDX-License-Identifier: ISC */
/* JSON helpers over json-c: strict parsing and JSON.stringify-compatible output. */
#ifndef HOOKD_JSON_H
#define HOOKD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "hookd/util.h"

/*
 * Parse exactly one JSON value filling the whole buffer (white space aside): strict
 * syntax, valid UTF-8, no NUL characters in strings (Postgres jsonb refuses them).
 * Returns the value or NULL with a short reason in err.
 */
struct json_object *json_parse(const char *buf, size_t len, char *err, size_t errlen);

/*
 * Serialize the way JavaScript's JSON.stringify does: no insignificant white space,
 * '/' not escaped, numbers in their shortest round-trip form ("1" for 1.0, "1e+21").
 * A receiver that re-serializes the parsed body gets the same bytes, so HMACs match.
 * Returns a malloc'd string; *len (if not NULL) gets its length.
 */
char *json_compact(struct json_object *o, size_t *len);
/* A growing string for writing JSON by hand on hot paths (free p when done). */
struct json_buf {
	char *p;
	size_t len, cap;
};
void json_buf_add(struct json_buf *b, const char *s, size_t n);
/* Append s as a JSON string: quoted and escaped as JSON.stringify does. */
void json_buf_string(struct json_buf *b, const char *s, size_t n);

/* Format one double as JavaScript's Number#toString; buf needs 32 bytes. */
void json_format_number(double d, char *buf, size_t len);

/* Member accessors; NULL or -1 when the member is absent or of another type. */
const char *json_get_str(struct json_object *o, const char *key);
int json_get_int(struct json_object *o, const char *key, int64_t *out) WUR;
int json_get_bool(struct json_object *o, const char *key, int *out) WUR;
struct json_object *json_get_obj(struct json_object *o, const char *key);
struct json_object *json_get_arr(struct json_object *o, const char *key);

/*
 * The value at a path ("$.data.object.id", "items[0].sku", "a.b.0"), or NULL. Keys may
 * not contain '.' or '['; a numeric segment indexes an array.
 */
struct json_object *json_path(struct json_object *o, const char *path);
/* 1 when path is well formed for json_path. */
int json_path_valid(const char *path);
/* A scalar as text for use as a key (strings as is, numbers and booleans printed); malloc'd. */
char *json_scalar_text(struct json_object *o);

/* Builders that tolerate NULL strings (stored as JSON null). */
void json_set_str(struct json_object *o, const char *key, const char *val);
void json_set_int(struct json_object *o, const char *key, int64_t val);
void json_set_bool(struct json_object *o, const char *key, int val);
void json_set_double(struct json_object *o, const char *key, double val);
void json_set_obj(struct json_object *o, const char *key, struct json_object *val);

#endif
