/* SPDX-License-Identifier: ISC */
/* Admin authentication: an in-memory cache of live key hashes, refreshed on NOTIFY. */
#ifndef HOOKD_AUTH_H
#define HOOKD_AUTH_H

struct db;
struct db_listen;

struct auth;

/* Loads the keys now and again on every "hookd_config" notification and reconnect. */
struct auth *auth_new(struct db *db, struct db_listen *listen);
void auth_free(struct auth *a);
/* http_server's auth callback: 1 when token is a live admin key. */
int auth_check(const char *token, void *arg);
/* Reload the cache from the database. */
void auth_refresh(struct auth *a);
/* Write last_used_at for keys used since the previous flush (called by the janitor). */
void auth_flush(struct auth *a);

#endif
