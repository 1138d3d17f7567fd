/* SPDX-License-Identifier: ISC */
/* Pure pieces of the receive path: group-commit id matching, sync-answer headers, media types. */
#ifndef HOOKD_INGEST_UTIL_H
#define HOOKD_INGEST_UTIL_H

#include <stddef.h>

/*
 * A group commit's RETURNING ids against its batch: stored[i] is 1 when want[i] is among
 * got[0..ngot), else 0. Matched as a set, since Postgres promises no order for the rows of
 * INSERT ... SELECT ... RETURNING; ids are compared as text (both sides are canonical
 * lower-case uuids). O((n + ngot) log ngot).
 */
void ingest_match_ids(
    const char *const *want, int n, const char *const *got, int ngot, unsigned char *stored);

/* 1 for application/json or application/<anything>+json, parameters allowed. */
int ingest_media_is_json(const char *content_type);

/*
 * Why a synchronous handler's answer header may not be sent, or NULL when it may. Refused:
 * names that are not an RFC 7230 token; the framing and hop-by-hop headers hookd owns
 * (Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer,
 * Proxy-*), Content-Encoding (hookd writes the body bytes) and X-Request-Id; values with
 * control characters (CR, LF, NUL, ... ; tab is fine) or longer than 8 KiB; and a
 * Content-Type that is not JSON (the body is always sent as JSON). value_len counts the
 * value's bytes, so an embedded NUL is seen.
 */
const char *ingest_answer_header_refused(const char *name, const char *value, size_t value_len);

#endif
