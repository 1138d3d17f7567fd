/* SPDX-License-Identifier: ISC */
/* Timing wheel driver: one libevent timer, armed for the wheel's next deadline. */
#include "config.h"

#include <event2/event.h>

#include "hookd/util.h"
#include "hookd/wheel.h"

/* Longest single sleep; waking early is harmless (the timer is simply re-armed). */
#define DRIVER_MAX_SLEEP_MS (24 * 3600 * 1000)

struct wheel_driver {
	struct wheel *wheel;
	struct event *timer;
	uint64_t armed_at; /* monotonic ms the timer is armed for; UINT64_MAX when idle */
	int advancing;     /* inside wheel_advance: re-arm afterwards, not per add */
};

/* Arm the libevent timer for the wheel's next deadline as seen at now, or disarm it. */
static void
driver_arm(struct wheel_driver *d, uint64_t now)
{
	int64_t ms = wheel_next_ms(d->wheel, now);
	struct timeval tv;

	if (ms < 0) {
		event_del(d->timer);
		d->armed_at = UINT64_MAX;
		return;
	}
	if (ms > DRIVER_MAX_SLEEP_MS)
		ms = DRIVER_MAX_SLEEP_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (event_add(d->timer, &tv) != 0)
		hookd_assert_fail("event_add on the wheel timer", __FILE__, __LINE__);
	d->armed_at = now + (uint64_t)ms;
}

static void
driver_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wheel_driver *d = arg;

	d->armed_at = UINT64_MAX;
	d->advancing = 1;
	wheel_advance(d->wheel, now_mono_ms());
	d->advancing = 0;
	driver_arm(d, now_mono_ms());
}

struct wheel_driver *
wheel_driver_new(struct event_base *base)
{
	struct wheel_driver *d = xcalloc(1, sizeof(*d));

	d->wheel = wheel_new(now_mono_ms());
	d->timer = evtimer_new(base, driver_timer_cb, d);
	if (d->timer == NULL)
		hookd_assert_fail("evtimer_new for the wheel timer", __FILE__, __LINE__);
	d->armed_at = UINT64_MAX;
	return d;
}

void
wheel_driver_free(struct wheel_driver *d)
{
	if (d == NULL)
		return;
	event_free(d->timer);
	wheel_free(d->wheel);
	free(d);
}

struct wheel *
wheel_driver_wheel(struct wheel_driver *d)
{
	return d->wheel;
}

void
wheel_driver_add(struct wheel_driver *d, struct wheel_timer *t, uint64_t delay_ms)
{
	uint64_t now = now_mono_ms();
	uint64_t expires = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;

	wheel_add(d->wheel, t, expires);
	if (!d->advancing && expires < d->armed_at)
		driver_arm(d, now);
}
