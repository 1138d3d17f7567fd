/* SPDX-License-Identifier: ISC */
/* Admin authentication: an in-memory cache of live key hashes, refreshed on NOTIFY. */
#include "config.h"

#include <string.h>

#include "hookd/auth.h"
#include "hookd/db.h"
#include "hookd/keys.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/util.h"

struct cached_key {
	char hash[KEYS_HASH_LEN + 1];
	int used; /* since the last flush */
};

struct auth {
	struct db *db;
	struct cached_key *keys;
	int nkeys;
	int loaded;             /* the cache has been filled at least once */
	struct db_req *loading; /* a refresh in flight */
	int again;              /* another refresh was asked for meanwhile */
	struct db_req *flushing;
};

static void
loaded_cb(const struct db_result *r, void *arg)
{
	struct auth *a = arg;
	int n;

	a->loading = NULL;
	if (r->status != DB_OK) {
		/* Keep serving with the keys we have; the next reconnect or notify retries. */
		db_log_failure(r, "auth: cannot load admin keys");
	} else {
		n = db_rows(r->res[0]);
		free(a->keys);
		a->keys = xcalloc((size_t)n, sizeof(*a->keys));
		a->nkeys = 0;
		for (int i = 0; i < n; i++) {
			const char *h = db_value(r->res[0], i, 0);

			if (h != NULL && strlen(h) == KEYS_HASH_LEN)
				memcpy(a->keys[a->nkeys++].hash, h, KEYS_HASH_LEN + 1);
		}
		if (!a->loaded)
			log_info("auth: %d admin key(s) loaded", a->nkeys);
		a->loaded = 1;
	}
	if (a->again) {
		a->again = 0;
		auth_refresh(a);
	}
}

void
auth_refresh(struct auth *a)
{
	if (a->loading != NULL) {
		a->again = 1;
		return;
	}
	a->loading = db_query(a->db, "SELECT key_hash FROM hookd.api_keys WHERE revoked_at IS NULL",
	    NULL, loaded_cb, a);
}

static void
notify_cb(const char *channel, const char *payload, void *arg)
{
	auth_refresh(arg);
}

static void
reconnect_cb(void *arg)
{
	auth_refresh(arg);
}

struct auth *
auth_new(struct db *db, struct db_listen *listen)
{
	struct auth *a = xcalloc(1, sizeof(*a));

	a->db = db;
	listen_subscribe(listen, "hookd_config", notify_cb, a);
	listen_on_connect(listen, reconnect_cb, a);
	auth_refresh(a);
	return a;
}

int
auth_check(const char *token, void *arg)
{
	struct auth *a = arg;
	char hash[KEYS_HASH_LEN + 1];
	int found = 0;

	if (!keys_plausible(token))
		return 0;
	keys_hash(token, hash);
	/* Compare against every key, in constant time each, whatever matches. */
	for (int i = 0; i < a->nkeys; i++) {
		if (ct_equal(hash, KEYS_HASH_LEN, a->keys[i].hash, KEYS_HASH_LEN)) {
			a->keys[i].used = 1;
			found = 1;
		}
	}
	return found;
}

static void
flushed_cb(const struct db_result *r, void *arg)
{
	struct auth *a = arg;

	a->flushing = NULL;
	if (r->status != DB_OK)
		log_debug("auth: cannot record key use: %s", r->error);
}

void
auth_flush(struct auth *a)
{
	struct db_params p;
	char *list = NULL;
	size_t len = 0;

	if (a->flushing != NULL)
		return;
	for (int i = 0; i < a->nkeys; i++) {
		if (!a->keys[i].used)
			continue;
		a->keys[i].used = 0;
		list = xrealloc(list, len + KEYS_HASH_LEN + 3);
		len += (size_t)snprintf(
		    list + len, KEYS_HASH_LEN + 3, "%s%s", len ? "," : "{", a->keys[i].hash);
	}
	if (list == NULL)
		return;
	list = xrealloc(list, len + 2);
	memcpy(list + len, "}", 2);
	db_params_init(&p);
	db_param_text(&p, list);
	a->flushing = db_query(a->db,
	    "UPDATE hookd.api_keys SET last_used_at = now() WHERE key_hash = ANY($1::text[])", &p,
	    flushed_cb, a);
	free(list);
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	if (a->loading != NULL)
		db_cancel(a->loading);
	if (a->flushing != NULL)
		db_cancel(a->flushing);
	free(a->keys);
	free(a);
}
