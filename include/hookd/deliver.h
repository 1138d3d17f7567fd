/* SPDX-License-Identifier: ISC */
/* Outbound delivery: lease due deliveries, send them, record attempts, retry or dead-letter. */
#ifndef HOOKD_DELIVER_H
#define HOOKD_DELIVER_H

#include <stdint.h>

struct app;

struct deliver;

struct deliver *deliver_new(struct app *app);
void deliver_free(struct deliver *d);
/* Deliveries were just committed (publish): lease now rather than at the next poll. */
void deliver_kick(struct deliver *d);
/* Deliveries leased and not yet finished, outcomes not yet written (drain waits for 0). */
int deliver_busy(const struct deliver *d);

enum deliver_test_status {
	DELIVER_TEST_DONE,        /* the attempt was made and its outcome committed */
	DELIVER_TEST_NOT_FOUND,   /* no such subscription */
	DELIVER_TEST_DISABLED,    /* the subscription is disabled */
	DELIVER_TEST_PENDING,     /* published, but no outcome in time (see delivery_id) */
	DELIVER_TEST_UNAVAILABLE, /* the database is unavailable, or hookd is shutting down */
};

/* What a test send did; strings are valid during the callback only. */
struct deliver_test_result {
	enum deliver_test_status status;
	const char *error;       /* why, for every status but DONE; else the attempt's error */
	const char *delivery_id; /* NULL unless the delivery was made */
	const char *message_id;
	const char *delivery_status; /* "succeeded", "dead" or "pending" */
	int success;                 /* a 2xx came back */
	int status_code;             /* 0: no response */
	double duration_ms;
	const char *response_body; /* NULL: none */
	uint64_t started_ms;       /* wall clock */
};
typedef void (*deliver_test_cb)(const struct deliver_test_result *r, void *arg);

/*
 * Send a webhook.test message (origin "test") to one subscription now, whatever its
 * event filter, and report the attempt once its outcome is committed. The message and
 * delivery are stored like any other, so the attempt shows in the history; a test
 * delivery is not retried and does not count towards disabling the subscription.
 * cb runs exactly once, from the loop.
 */
void deliver_test(struct deliver *d, const char *subscription_id, deliver_test_cb cb, void *arg);

/*
 * Admin routes: delivery history and attempts, dead letters, replay, recover, test
 * sends, stats (/api/v1/...), and seed 003's /api/webhooks/{id}/logs|stats|test|replay.
 */
void api_deliveries_register(struct app *app);

#endif
