/* SPDX-License-Identifier: ISC */
/* Pure pieces of the receive path: group-commit id matching, media types. */
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

#endif
