/* SPDX-License-Identifier: ISC */
/* The LISTEN connection: dispatches notifications, re-LISTENs and catches up after reconnect. */
#ifndef HOOKD_LISTEN_H
#define HOOKD_LISTEN_H

struct event_base;
struct evdns_base;
struct db_options;

struct db_listen;

typedef void (*listen_cb)(const char *channel, const char *payload, void *arg);

struct db_listen *listen_create(
    struct event_base *base, struct evdns_base *dns, const struct db_options *opt);
/* Subscribe before or after listen_start; several subscribers per channel are fine. */
void listen_subscribe(struct db_listen *l, const char *channel, listen_cb cb, void *arg);
/*
 * Called after every (re)connect once all LISTENs are in place, so the subscriber can
 * catch up on anything notified while the connection was down.
 */
void listen_on_connect(struct db_listen *l, void (*cb)(void *arg), void *arg);
void listen_start(struct db_listen *l);
int listen_connected(const struct db_listen *l);
void listen_free(struct db_listen *l);

#endif
