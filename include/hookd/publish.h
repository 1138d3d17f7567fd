/* SPDX-License-Identifier: ISC */
/* Publish: one outbound message and one delivery per matching subscription, atomically. */
#ifndef HOOKD_PUBLISH_H
#define HOOKD_PUBLISH_H

#include <stddef.h>

#include "hookd/db.h"

struct app;

struct publish_request {
	const char *id; /* the message id ("evt_..."); NULL makes one */
	const char *event_type;
	const char *data; /* JSON text, stored as json (the publisher's key order kept) */
	size_t data_len;
	const char *origin;       /* "api", "inbound", "change", "test", "system" */
	const char *origin_id;    /* what it came from (an inbound event id, ...) or NULL */
	const char *table_schema; /* change messages: the table and operation, else NULL */
	const char *table_name;
	const char *op;
	const char *only; /* a subscription id: deliver to it alone, whatever its filter */
};

struct publish_result {
	enum db_status status;
	const char *error;
	const char *id;         /* the message id */
	int created;            /* 0: a message with this id existed (idempotent repeat) */
	int deliveries;         /* deliveries made (or already made, for a repeat) */
	const char *created_at; /* ISO 8601 */
};

typedef void (*publish_cb)(const struct publish_result *r, void *arg);

/* Publish in a transaction of its own; cb runs after the commit. */
void publish(struct app *app, const struct publish_request *req, publish_cb cb, void *arg);
/*
 * Add the publish statement to a caller's group (it commits with the caller's work).
 * Once the group has committed, hand its result for this statement to publish_group_done.
 */
void publish_group_add(struct app *app, struct db_group *g, const struct publish_request *req);
/*
 * Read the result of a committed publish statement (res: its PGresult) into out, whose
 * strings point into res, and run the on-commit hook when it made deliveries. Returns 0,
 * or -1 (out->error says why) when res is not a publish result.
 */
int publish_group_done(struct app *app, const PGresult *res, struct publish_result *out) WUR;
/*
 * Call cb(arg) after every commit of a new message that made deliveries (publish and
 * publish_group_done), so that this process's delivery worker leases them at once
 * (deliver_kick). Other processes are woken by the NOTIFY hookd_deliveries that
 * hookd.publish sends. One hook per process; a later call replaces it.
 */
void publish_on_commit(struct app *app, void (*cb)(void *arg), void *arg);
/* A fresh message id: "evt_" + 32 hex characters (a UUIDv7 without dashes). */
void publish_new_id(char out[37]);

/* POST /api/v1/events, GET /api/v1/events[/{id}], GET /api/v1/event-types. */
void api_events_register(struct app *app);

#endif
