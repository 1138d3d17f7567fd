/* SPDX-License-Identifier: ISC */
/* Hierarchical timing wheel for many millisecond timers, plus a thin libevent driver. */
#ifndef HOOKD_WHEEL_H
#define HOOKD_WHEEL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct wheel;
struct wheel_driver;

/* A link in one of the wheel's circular lists (private). */
struct wheel_link {
	struct wheel_link *next;
	struct wheel_link *prev;
};

/*
 * A timer, embedded in its owner and set up with wheel_timer_init. The fields are
 * private to the wheel. A timer may sit on at most one wheel at a time.
 */
struct wheel_timer {
	struct wheel_link link; /* position in a slot or list */
	struct wheel *wheel;    /* the wheel holding it; NULL when not pending */
	uint64_t expires;       /* absolute expiry in the wheel's milliseconds */
	unsigned list;          /* which of the wheel's lists holds it */
	void (*cb)(struct wheel_timer *t, void *arg);
	void *arg;
};

/* Set up a timer that is not pending; cb runs with arg when it fires. */
void wheel_timer_init(
    struct wheel_timer *t, void (*cb)(struct wheel_timer *t, void *arg), void *arg);

/* A wheel whose clock starts at now_ms (any monotonic millisecond count). */
struct wheel *wheel_new(uint64_t now_ms);
/* Free a wheel; timers still on it become not pending and never fire. */
void wheel_free(struct wheel *w);

/*
 * Schedule t to fire at expires_ms; a pending timer is moved (and counts as added
 * last among timers with its expiry). A timer due at or before the wheel's now fires
 * at the start of the next wheel_advance. O(1).
 */
void wheel_add(struct wheel *w, struct wheel_timer *t, uint64_t expires_ms);
/* Stop t from firing; does nothing when t is not pending. O(1). */
void wheel_cancel(struct wheel_timer *t);
/* 1 when t is scheduled and has not fired yet, else 0. */
int wheel_pending(const struct wheel_timer *t);

/*
 * Move the wheel's clock to now_ms and fire every timer due by then: first those that
 * were added already due (by expiry), then the rest in expiry order, one millisecond at
 * a time, timers with equal expiry in the order they were added. A timer is no longer
 * pending when its callback runs, and the wheel never touches it after the callback
 * returns, so the callback may re-add it, free its owner, and add or cancel any other
 * timer (a cancelled timer due in this same advance does not fire). A timer added by a
 * callback that is due at or before the millisecond being fired waits for the next
 * advance. Empty stretches are skipped, so the cost does not depend on the idle time
 * crossed. A now_ms earlier than the wheel's clock is taken as the wheel's clock. Not
 * reentrant: callbacks must not call wheel_advance or wheel_free.
 */
void wheel_advance(struct wheel *w, uint64_t now_ms);

/*
 * Milliseconds from now_ms until wheel_advance must next be called: 0 when something is
 * due already, -1 when the wheel is empty. It may be earlier than the next expiry (when
 * a far-future slot must be cascaded) but never later.
 */
int64_t wheel_next_ms(const struct wheel *w, uint64_t now_ms);
/* Pending timers. */
size_t wheel_count(const struct wheel *w);
/* The wheel's clock: the millisecond being fired inside a callback, else the last advance. */
uint64_t wheel_now(const struct wheel *w);

/*
 * Libevent driver: owns a wheel on the monotonic clock (now_mono_ms) and one libevent
 * timer armed for wheel_next_ms. Callbacks of the driven wheel may use wheel_add and
 * wheel_cancel directly (the timer is re-armed after every advance); outside them, add
 * through wheel_driver_add so that an earlier expiry re-arms the timer.
 */
struct wheel_driver *wheel_driver_new(struct event_base *base);
void wheel_driver_free(struct wheel_driver *d);
/* The driven wheel, for wheel_cancel, wheel_pending, wheel_count and wheel_now. */
struct wheel *wheel_driver_wheel(struct wheel_driver *d);
/* Schedule t delay_ms from now (0 for the next loop pass); moves it when pending. */
void wheel_driver_add(struct wheel_driver *d, struct wheel_timer *t, uint64_t delay_ms);

#endif
