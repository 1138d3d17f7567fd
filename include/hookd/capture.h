/* SPDX-License-Identifier: ISC */
/* Change capture: turn committed outbox rows (hookd.changes) into messages, one per change. */
#ifndef HOOKD_CAPTURE_H
#define HOOKD_CAPTURE_H

struct app;

struct capture;

/* Reads on NOTIFY hookd_changes, every capture_poll_interval, and after every reconnect. */
struct capture *capture_new(struct app *app);
void capture_free(struct capture *c);
/* Call cb after a step made messages (to wake the delivery worker at once). */
void capture_on_work(struct capture *c, void (*cb)(void *arg), void *arg);
/* A read in flight (drain). */
int capture_busy(const struct capture *c);

/* GET/POST /api/v1/watches, DELETE /api/v1/watches/{table}. */
void api_watches_register(struct app *app);

#endif
