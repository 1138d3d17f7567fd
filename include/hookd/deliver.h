/* SPDX-License-Identifier: ISC */
/* Outbound delivery: lease due deliveries, send them, record attempts, retry or dead-letter. */
#ifndef HOOKD_DELIVER_H
#define HOOKD_DELIVER_H

struct app;

struct deliver;

struct deliver *deliver_new(struct app *app);
void deliver_free(struct deliver *d);
/* Deliveries were just committed (publish): lease now rather than at the next poll. */
void deliver_kick(struct deliver *d);
/* Deliveries leased and not yet finished, outcomes not yet written (drain waits for 0). */
int deliver_busy(const struct deliver *d);

/*
 * Admin routes: delivery history and attempts, dead letters, replay, recover, test
 * sends, stats (/api/v1/...), and seed 003's /api/webhooks/{id}/logs|stats|test|replay.
 */
void api_deliveries_register(struct app *app);

#endif
