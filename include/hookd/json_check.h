/* SPDX-License-Identifier: ISC */
/*
 * JSON checked in place: validation and top-level members without building a tree.
 *
 * The receive path stores a JSON body byte for byte and needs at most a member or two of
 * it, so it checks the text here instead of parsing it with json-c (whose tree of the body,
 * and its allocations, cost more than the rest of a request's JSON work).
 */
#ifndef HOOKD_JSON_CHECK_H
#define HOOKD_JSON_CHECK_H

#include <stddef.h>

/* Nesting json_parse takes (json-c's default depth): deeper documents are refused. */
#define JSON_CHECK_MAX_DEPTH 32

/*
 * 0 when buf[0..len) is one JSON text (RFC 8259) that Postgres's jsonb takes, else -1 with
 * the reason and its byte offset in err. Stricter than json-c's strict mode, as jsonb is:
 * UTF-8 must be well formed (no overlong forms, surrogates or code points past U+10FFFF),
 * control characters in strings must be escaped, \u escapes must pair surrogates and must
 * not be \u0000, and numbers are JSON's (no "1.", NaN or Infinity). A top-level null is
 * refused, as json_parse refuses it.
 */
int json_check(const char *buf, size_t len, char *err, size_t errlen);

/*
 * For a text json_check accepted: out[i] is the value of the top-level member names[i]
 * when the document is an object and that member's last occurrence (the one json-c and
 * jsonb keep) is a string, unescaped and malloc'd; else NULL.
 */
void json_top_strings(const char *buf, size_t len, const char *const *names, int n, char **out);

#endif
