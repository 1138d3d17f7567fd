/* SPDX-License-Identifier: ISC */
/* Outbound subscriptions: the in-memory cache the delivery worker reads, and their API. */
#ifndef HOOKD_SUBSCRIPTIONS_H
#define HOOKD_SUBSCRIPTIONS_H

#include <stdint.h>

#include "hookd/backoff.h"
#include "hookd/http_client.h"
#include "hookd/netguard.h"

struct app;

enum payload_format {
	PAYLOAD_DEFAULT, /* {id, event, created_at, data} (seed 003); change messages as seed 004 */
	PAYLOAD_FLUXBASE, /* change messages as seed 004: {event, table, schema, record, ...} */
	PAYLOAD_SUPABASE, /* change messages as seed 000: {type, table, schema, record, old_record}
	                   */
};

struct subscription_secret {
	char *id;           /* "sec_..." */
	char *value;        /* plaintext (unsealed) */
	int64_t expires_at; /* unix seconds; 0 = until removed */
};

/* One subscription as the delivery worker sees it. Reference counted. */
struct subscription {
	int refs;
	char id[37];
	char *name;
	char *url;
	struct target_url target;
	struct subscription_secret *secrets; /* newest first */
	int nsecrets;
	int enabled;
	struct retry_policy retry; /* retry.schedule points into schedule */
	double *schedule;
	int timeout_ms;
	struct http_header *headers; /* custom headers sent with every delivery */
	int nheaders;
	unsigned sign_flags; /* SIGN_STANDARD | SIGN_OMNISALES | SIGN_FLUXBASE */
	enum payload_format format;
	struct cidr *pin; /* ip_allowlist: the target must also resolve into these */
	int npin;
	char *api; /* "v1" or "omnisales": the API that made it */
};

struct subscriptions;

/* Load now, again on NOTIFY hookd_config and after every LISTEN reconnect. */
struct subscriptions *subscriptions_new(struct app *app);
void subscriptions_free(struct subscriptions *ss);
int subscriptions_loaded(const struct subscriptions *ss);
void subscriptions_refresh(struct subscriptions *ss);
/* The subscription with this id, referenced (subscription_unref when done), or NULL. */
struct subscription *subscriptions_get(struct subscriptions *ss, const char *id);
void subscription_unref(struct subscription *s);
/* Live (unexpired) secret values, newest first, into out; returns how many. */
int subscription_live_secrets(const struct subscription *s, int64_t now, const char **out, int max);

/* Admin routes: /api/v1/webhooks (seed 004) and seed 003's /api/webhooks CRUD. */
void api_subscriptions_register(struct app *app);

#endif
