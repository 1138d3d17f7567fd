/* SPDX-License-Identifier: ISC */
/* Unit tests for the timing wheel: behaviour, a property test against a reference, the driver. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "hookd/util.h"
#include "hookd/wheel.h"

/*
 * A check for hot loops: ck_assert reports every passing assertion to the parent
 * process (a write per check in fork mode), which would dominate the run time.
 */
#define expect(e)                                                                                  \
	do {                                                                                       \
		if (!(e))                                                                          \
			ck_abort_msg("%s:%d: expected %s", __FILE__, __LINE__, #e);                \
	} while (0)

/* A deterministic PRNG (splitmix64), so that every failure can be replayed. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform-ish in [0, n) (n > 0); the modulo bias does not matter here. */
static uint64_t
rng_below(uint64_t *s, uint64_t n)
{
	return rng_next(s) % n;
}

/* --- simple timers that record what fired, and when --------------------------------- */

#define MAX_FIRED 64

struct rec {
	struct wheel *w;
	int ids[MAX_FIRED];
	uint64_t at[MAX_FIRED];
	int n;
};

struct tmr {
	struct wheel_timer t;
	struct rec *rec;
	int id;
	void (*then)(struct tmr *m); /* optional action after recording */
	struct tmr *other;           /* what then acts on */
	uint64_t value;              /* a parameter for then */
};

static void
tmr_cb(struct wheel_timer *t, void *arg)
{
	struct tmr *m = arg;

	ck_assert_ptr_eq(t, &m->t);
	ck_assert(!wheel_pending(t));
	ck_assert_int_lt(m->rec->n, MAX_FIRED);
	m->rec->ids[m->rec->n] = m->id;
	m->rec->at[m->rec->n] = wheel_now(m->rec->w);
	m->rec->n++;
	if (m->then != NULL)
		m->then(m);
}

static void
tmr_init(struct tmr *m, struct rec *r, int id)
{
	memset(m, 0, sizeof(*m));
	m->rec = r;
	m->id = id;
	wheel_timer_init(&m->t, tmr_cb, m);
}

#define ck_fired(r, ...)                                                                           \
	do {                                                                                       \
		const int want_[] = {__VA_ARGS__};                                                 \
		ck_assert_int_eq((r)->n, (int)ARRAY_SIZE(want_));                                  \
		for (size_t i_ = 0; i_ < ARRAY_SIZE(want_); i_++)                                  \
			ck_assert_int_eq((r)->ids[i_], want_[i_]);                                 \
	} while (0)

START_TEST(test_wheel_basic)
{
	struct rec r = {0};
	struct tmr a, b, c;

	r.w = wheel_new(1000);
	ck_assert_int_eq(wheel_next_ms(r.w, 1000), -1);
	tmr_init(&a, &r, 1);
	tmr_init(&b, &r, 2);
	tmr_init(&c, &r, 3);
	ck_assert(!wheel_pending(&a.t));
	wheel_add(r.w, &a.t, 1030);
	wheel_add(r.w, &b.t, 1010);
	wheel_add(r.w, &c.t, 1020);
	ck_assert(wheel_pending(&a.t));
	ck_assert_uint_eq(wheel_count(r.w), 3);
	ck_assert_int_eq(wheel_next_ms(r.w, 1000), 10);
	ck_assert_int_eq(wheel_next_ms(r.w, 1004), 6);
	ck_assert_int_eq(wheel_next_ms(r.w, 5000), 0);

	wheel_advance(r.w, 1009);
	ck_assert_int_eq(r.n, 0);
	wheel_advance(r.w, 1010);
	ck_fired(&r, 2);
	ck_assert_uint_eq(r.at[0], 1010);
	ck_assert(!wheel_pending(&b.t));
	ck_assert_uint_eq(wheel_count(r.w), 2);
	wheel_advance(r.w, 2000);
	ck_fired(&r, 2, 3, 1);
	ck_assert_uint_eq(r.at[1], 1020);
	ck_assert_uint_eq(r.at[2], 1030);
	ck_assert_uint_eq(wheel_now(r.w), 2000);
	ck_assert_uint_eq(wheel_count(r.w), 0);
	ck_assert_int_eq(wheel_next_ms(r.w, 2000), -1);
	/* Going backwards is ignored. */
	wheel_advance(r.w, 10);
	ck_assert_uint_eq(wheel_now(r.w), 2000);
	wheel_free(r.w);
}
END_TEST

START_TEST(test_wheel_cancel)
{
	struct rec r = {0};
	struct tmr a, b;

	r.w = wheel_new(0);
	tmr_init(&a, &r, 1);
	tmr_init(&b, &r, 2);
	wheel_cancel(&a.t); /* never added */
	wheel_add(r.w, &a.t, 5);
	wheel_add(r.w, &b.t, 5);
	wheel_cancel(&a.t);
	ck_assert(!wheel_pending(&a.t));
	wheel_cancel(&a.t); /* twice */
	ck_assert_uint_eq(wheel_count(r.w), 1);
	wheel_advance(r.w, 100);
	ck_fired(&r, 2);
	wheel_cancel(&b.t); /* after firing */
	ck_assert_uint_eq(wheel_count(r.w), 0);
	ck_assert_int_eq(wheel_next_ms(r.w, 100), -1);

	/* Cancelling the earliest timer leaves no wake-up for its (now empty) slot. */
	wheel_add(r.w, &a.t, 110);
	wheel_add(r.w, &b.t, 120);
	ck_assert_int_eq(wheel_next_ms(r.w, 100), 10);
	wheel_cancel(&a.t);
	ck_assert_int_eq(wheel_next_ms(r.w, 100), 20);
	wheel_advance(r.w, 200);
	ck_fired(&r, 2, 2);
	r.n = 1;

	/* Cancelling the last timer of a far slot leaves nothing to wake up for. */
	wheel_add(r.w, &a.t, 1000000);
	ck_assert_int_gt(wheel_next_ms(r.w, 100), 0);
	wheel_cancel(&a.t);
	ck_assert_int_eq(wheel_next_ms(r.w, 100), -1);
	wheel_advance(r.w, 2000000);
	ck_fired(&r, 2);

	/* Cancelled timers can be added again; a freed wheel leaves timers not pending. */
	wheel_add(r.w, &a.t, 3000000);
	wheel_add(r.w, &b.t, 100);
	wheel_free(r.w);
	ck_assert(!wheel_pending(&a.t));
	ck_assert(!wheel_pending(&b.t));
	wheel_cancel(&a.t);
}
END_TEST

START_TEST(test_wheel_readd_moves)
{
	struct rec r = {0};
	struct tmr a, b, c;

	r.w = wheel_new(0);
	tmr_init(&a, &r, 1);
	tmr_init(&b, &r, 2);
	tmr_init(&c, &r, 3);
	wheel_add(r.w, &a.t, 100);
	wheel_add(r.w, &a.t, 50); /* earlier */
	ck_assert_uint_eq(wheel_count(r.w), 1);
	wheel_advance(r.w, 60);
	ck_fired(&r, 1);
	ck_assert_uint_eq(r.at[0], 50);
	wheel_advance(r.w, 200);
	ck_fired(&r, 1);

	wheel_add(r.w, &a.t, 300);
	wheel_add(r.w, &a.t, 100000); /* later, onto another level */
	wheel_advance(r.w, 99999);
	ck_fired(&r, 1);
	wheel_advance(r.w, 100000);
	ck_fired(&r, 1, 1);

	/* Equal expiries fire in the order added; re-adding moves a timer to the back. */
	wheel_add(r.w, &a.t, 100500);
	wheel_add(r.w, &b.t, 100500);
	wheel_add(r.w, &c.t, 100500);
	wheel_add(r.w, &a.t, 100500);
	wheel_advance(r.w, 100500);
	ck_fired(&r, 1, 1, 2, 3, 1);

	/* The same across levels: c goes to level 0 directly after a and b cascade there. */
	wheel_add(r.w, &a.t, 200010);
	wheel_add(r.w, &b.t, 200010);
	wheel_advance(r.w, 200000); /* 200000 = 3125 * 64: the level-1 slot cascades */
	wheel_add(r.w, &c.t, 200010);
	wheel_add(r.w, &a.t, 200010);
	wheel_advance(r.w, 300000);
	ck_fired(&r, 1, 1, 2, 3, 1, 2, 3, 1);
	wheel_free(r.w);
}
END_TEST

START_TEST(test_wheel_past)
{
	struct rec r = {0};
	struct tmr a, b, c, d;

	r.w = wheel_new(1000);
	tmr_init(&a, &r, 1);
	tmr_init(&b, &r, 2);
	tmr_init(&c, &r, 3);
	tmr_init(&d, &r, 4);
	wheel_add(r.w, &a.t, 1000); /* now */
	wheel_add(r.w, &b.t, 10);   /* long ago */
	wheel_add(r.w, &c.t, 1001);
	wheel_add(r.w, &d.t, 500);
	ck_assert_int_eq(wheel_next_ms(r.w, 1000), 0);
	/* Due timers fire on the next advance, even one that does not move the clock. */
	wheel_advance(r.w, 1000);
	ck_fired(&r, 2, 4, 1);
	ck_assert_int_eq(wheel_next_ms(r.w, 1000), 1);
	wheel_advance(r.w, 1001);
	ck_fired(&r, 2, 4, 1, 3);
	wheel_free(r.w);
}
END_TEST

/* --- callbacks changing the wheel -------------------------------------------------- */

static void
then_readd_self(struct tmr *m)
{
	if (m->value > 0) {
		m->value--;
		wheel_add(m->rec->w, &m->t, wheel_now(m->rec->w) + 7);
	}
}

static void
then_cancel_other(struct tmr *m)
{
	wheel_cancel(&m->other->t);
}

static void
then_add_other(struct tmr *m)
{
	wheel_add(m->rec->w, &m->other->t, wheel_now(m->rec->w) + m->value);
}

static void
then_free_self(struct tmr *m)
{
	free(m);
}

START_TEST(test_wheel_callbacks)
{
	struct rec r = {0};
	struct tmr a, b, c, d, e, *f;

	r.w = wheel_new(0);
	tmr_init(&a, &r, 1);
	tmr_init(&b, &r, 2);
	tmr_init(&c, &r, 3);
	tmr_init(&d, &r, 4);
	tmr_init(&e, &r, 5);

	/* A periodic timer re-adding itself fires at each period within one advance. */
	a.then = then_readd_self;
	a.value = 3;
	wheel_add(r.w, &a.t, 10);
	wheel_advance(r.w, 1000);
	ck_fired(&r, 1, 1, 1, 1);
	ck_assert_uint_eq(r.at[0], 10);
	ck_assert_uint_eq(r.at[1], 17);
	ck_assert_uint_eq(r.at[2], 24);
	ck_assert_uint_eq(r.at[3], 31);
	r.n = 0;

	/* Cancel another timer due in the same tick, and one due later in the advance. */
	a.then = then_cancel_other;
	a.other = &b;
	c.then = then_cancel_other;
	c.other = &d;
	wheel_add(r.w, &a.t, 1100);
	wheel_add(r.w, &b.t, 1100);
	wheel_add(r.w, &c.t, 1200);
	wheel_add(r.w, &d.t, 90000);
	wheel_add(r.w, &e.t, 1150);
	wheel_advance(r.w, 100000);
	ck_fired(&r, 1, 5, 3);
	ck_assert_uint_eq(wheel_count(r.w), 0);
	r.n = 0;

	/* Add a timer due within the advance (fires in it) or due now (fires in the next). */
	a.then = then_add_other;
	a.other = &b;
	a.value = 5;
	b.then = then_add_other;
	b.other = &c;
	b.value = 0;
	c.then = NULL;
	wheel_add(r.w, &a.t, 100010);
	wheel_advance(r.w, 100100);
	ck_fired(&r, 1, 2);
	ck_assert_uint_eq(r.at[1], 100015);
	ck_assert(wheel_pending(&c.t));
	ck_assert_int_eq(wheel_next_ms(r.w, 100100), 0);
	wheel_advance(r.w, 100100);
	ck_fired(&r, 1, 2, 3);
	ck_assert_uint_eq(r.at[2], 100100);
	r.n = 0;

	/* A due callback re-adding itself with no delay does not loop. */
	a.then = then_add_other;
	a.other = &a;
	a.value = 0;
	wheel_add(r.w, &a.t, 100);
	wheel_advance(r.w, 100100);
	ck_fired(&r, 1);
	wheel_advance(r.w, 100100);
	ck_fired(&r, 1, 1);
	wheel_cancel(&a.t);
	r.n = 0;

	/* A callback may free its own timer's owner. */
	f = xmalloc(sizeof(*f));
	tmr_init(f, &r, 6);
	f->then = then_free_self;
	wheel_add(r.w, &f->t, 200000);
	wheel_add(r.w, &b.t, 200000);
	b.then = NULL;
	wheel_advance(r.w, 200000);
	ck_fired(&r, 6, 2);
	ck_assert_uint_eq(wheel_count(r.w), 0);
	wheel_free(r.w);
}
END_TEST

/* --- far timers, cascades, large gaps ----------------------------------------------- */

START_TEST(test_wheel_far_future)
{
	static const uint64_t starts[] = {0, 1, 63, 4095, 123456789, (UINT64_C(1) << 36) - 3,
	    (UINT64_C(1) << 42) + 17, UINT64_C(1) << 62};
	static const uint64_t deltas[] = {1, 63, 64, 65, 4095, 4096, 4097, 262143, 262144,
	    UINT64_C(1) << 24, (UINT64_C(1) << 30) + 5, (UINT64_C(1) << 35) + 99,
	    (UINT64_C(1) << 36) - 1, UINT64_C(1) << 36, (UINT64_C(1) << 36) + 1,
	    (UINT64_C(1) << 40) + 12345, UINT64_C(1) << 50};

	for (size_t s = 0; s < ARRAY_SIZE(starts); s++) {
		struct rec r = {0};
		struct tmr m[ARRAY_SIZE(deltas)];
		uint64_t now = starts[s];

		r.w = wheel_new(now);
		for (size_t i = 0; i < ARRAY_SIZE(deltas); i++) {
			tmr_init(&m[i], &r, (int)i);
			wheel_add(r.w, &m[i].t, now + deltas[i]);
		}
		/* Drive it the way the libevent driver does: sleep next_ms, advance. */
		for (int wakeups = 0; wheel_count(r.w) > 0; wakeups++) {
			int64_t ms = wheel_next_ms(r.w, now);
			uint64_t next_expiry = UINT64_MAX;

			for (size_t i = 0; i < ARRAY_SIZE(deltas); i++) {
				if (wheel_pending(&m[i].t) && starts[s] + deltas[i] < next_expiry)
					next_expiry = starts[s] + deltas[i];
			}
			ck_assert_int_gt(ms, 0);
			ck_assert_uint_le(now + (uint64_t)ms, next_expiry);
			ck_assert_int_lt(wakeups, 200);
			now += (uint64_t)ms;
			wheel_advance(r.w, now);
		}
		ck_assert_int_eq(r.n, (int)ARRAY_SIZE(deltas));
		for (int i = 0; i < r.n; i++) {
			ck_assert_int_eq(r.ids[i], i);
			ck_assert_uint_eq(r.at[i], starts[s] + deltas[i]);
		}

		/* The same timers again, reached in one jump each from the start. */
		r.n = 0;
		for (size_t i = 0; i < ARRAY_SIZE(deltas); i++)
			wheel_add(r.w, &m[i].t, now + deltas[i]);
		wheel_advance(r.w, now + deltas[ARRAY_SIZE(deltas) - 1]);
		ck_assert_int_eq(r.n, (int)ARRAY_SIZE(deltas));
		for (int i = 0; i < r.n; i++) {
			ck_assert_int_eq(r.ids[i], i);
			ck_assert_uint_eq(r.at[i], now + deltas[i]);
		}
		wheel_free(r.w);
	}
}
END_TEST

START_TEST(test_wheel_large_gaps)
{
	struct rec r = {0};
	struct tmr m[40];
	uint64_t now = 5, seed = 42;

	/* An idle hour, many times over: nothing is walked tick by tick. */
	r.w = wheel_new(now);
	for (int i = 0; i < 100000; i++) {
		now += 3600 * 1000;
		wheel_advance(r.w, now);
	}
	ck_assert_uint_eq(wheel_now(r.w), now);

	/* Timers spread over 2^60 ms, crossed in jumps of 2^54 ms and a few small ones. */
	for (int i = 0; i < 40; i++) {
		tmr_init(&m[i], &r, i);
		wheel_add(r.w, &m[i].t, now + rng_below(&seed, UINT64_C(1) << 60) + 1);
	}
	while (wheel_count(r.w) > 0) {
		int64_t ms = wheel_next_ms(r.w, now);

		ck_assert_int_ge(ms, 0);
		now += rng_below(&seed, 4) == 0 ? (uint64_t)ms : UINT64_C(1) << 54;
		wheel_advance(r.w, now);
	}
	ck_assert_int_eq(r.n, 40);
	for (int i = 1; i < 40; i++)
		ck_assert_uint_le(r.at[i - 1], r.at[i]);
	for (int i = 0; i < 40; i++)
		ck_assert_uint_eq(r.at[i], m[r.ids[i]].t.expires);
	wheel_free(r.w);
}
END_TEST

START_TEST(test_wheel_extremes)
{
	struct rec r = {0};
	struct tmr a, b, c;

	/* Expiries at the very end of time, from the start of it. */
	r.w = wheel_new(0);
	tmr_init(&a, &r, 1);
	tmr_init(&b, &r, 2);
	tmr_init(&c, &r, 3);
	wheel_add(r.w, &a.t, UINT64_MAX);
	wheel_add(r.w, &b.t, UINT64_MAX - 1);
	wheel_add(r.w, &c.t, UINT64_C(1) << 63);
	ck_assert_int_gt(wheel_next_ms(r.w, 0), 0);
	ck_assert_uint_le(wheel_next_ms(r.w, 0), UINT64_C(1) << 63);
	wheel_advance(r.w, UINT64_MAX - 2);
	ck_fired(&r, 3);
	ck_assert_uint_eq(r.at[0], UINT64_C(1) << 63);
	ck_assert_int_le(wheel_next_ms(r.w, UINT64_MAX - 2), 1);
	wheel_advance(r.w, UINT64_MAX);
	ck_fired(&r, 3, 2, 1);
	ck_assert_uint_eq(r.at[2], UINT64_MAX);
	ck_assert_uint_eq(wheel_count(r.w), 0);
	/* Nothing is after the end: a timer there is due. */
	wheel_add(r.w, &a.t, UINT64_MAX);
	ck_assert_int_eq(wheel_next_ms(r.w, UINT64_MAX), 0);
	wheel_advance(r.w, UINT64_MAX);
	ck_fired(&r, 3, 2, 1, 1);
	wheel_free(r.w);
}
END_TEST

/* --- property test against a sorted reference --------------------------------------- */

/*
 * Two simulations receive the same random operations: the wheel, and a reference that
 * keeps timers in an array and fires the minimum (expiry, add sequence) one at a time.
 * Timer callbacks act on their simulation (re-add themselves, add or cancel others)
 * with choices drawn from the fire count, so both act alike while they agree. After
 * every operation the fired ids, the clock each fired at, the count seen by each
 * callback, the pending set and wheel_next_ms are compared.
 */

#define PT_TIMERS 48

struct sim;

struct pt_timer {
	struct wheel_timer t;
	struct sim *sim;
	int id;
};

struct ref_timer {
	int pending;
	int due;      /* added at or before the reference's now */
	uint64_t e;   /* expiry */
	uint64_t seq; /* add order */
};

struct fire_rec {
	int id;
	uint64_t now;
	size_t count;
};

struct sim {
	int is_ref;
	uint64_t seed;
	uint64_t nfired;
	uint64_t last_e[PT_TIMERS]; /* expiry most recently given to each timer */
	struct fire_rec *log;
	size_t nlog, caplog;
	size_t nchecked; /* log entries already compared */
	/* The wheel. */
	struct wheel *w;
	struct pt_timer timers[PT_TIMERS];
	/* The reference. */
	uint64_t now, seq;
	struct ref_timer ref[PT_TIMERS];
};

static uint64_t
sim_now(const struct sim *s)
{
	return s->is_ref ? s->now : wheel_now(s->w);
}

static size_t
sim_count(const struct sim *s)
{
	size_t n = 0;

	if (!s->is_ref)
		return wheel_count(s->w);
	for (int i = 0; i < PT_TIMERS; i++)
		n += s->ref[i].pending ? 1 : 0;
	return n;
}

static int
sim_pending(const struct sim *s, int id)
{
	return s->is_ref ? s->ref[id].pending : wheel_pending(&s->timers[id].t);
}

static void
sim_add(struct sim *s, int id, uint64_t e)
{
	s->last_e[id] = e;
	if (!s->is_ref) {
		wheel_add(s->w, &s->timers[id].t, e);
		return;
	}
	s->ref[id].pending = 1;
	s->ref[id].e = e;
	s->ref[id].seq = ++s->seq;
	s->ref[id].due = e <= s->now;
}

static void
sim_cancel(struct sim *s, int id)
{
	if (s->is_ref)
		s->ref[id].pending = 0;
	else
		wheel_cancel(&s->timers[id].t);
}

/* Record a firing and act on the simulation as the fire count dictates. */
static void
sim_fired(struct sim *s, int id)
{
	uint64_t r = s->seed ^ (++s->nfired * UINT64_C(0x2545f4914f6cdd1d));
	uint64_t now = sim_now(s), choice;
	int other;

	if (s->nlog == s->caplog) {
		s->caplog = s->caplog ? 2 * s->caplog : 256;
		s->log = xrealloc(s->log, s->caplog * sizeof(*s->log));
	}
	s->log[s->nlog].id = id;
	s->log[s->nlog].now = now;
	s->log[s->nlog].count = sim_count(s);
	s->nlog++;

	choice = rng_below(&r, 100);
	other = (int)rng_below(&r, PT_TIMERS);
	if (choice < 35)
		return;
	if (choice < 55)
		sim_add(s, id, now + rng_below(&r, 100));
	else if (choice < 70)
		sim_cancel(s, other);
	else if (choice < 85)
		sim_add(s, other, now + rng_below(&r, 300));
	else if (choice < 90)
		sim_add(s, other, now - rng_below(&r, 50));
	else if (choice < 95)
		sim_add(s, id, s->last_e[other] > now ? s->last_e[other] : now + 64);
	else
		sim_add(s, other, now + rng_below(&r, 1 << 20));
}

static void
pt_cb(struct wheel_timer *t, void *arg)
{
	struct pt_timer *p = arg;

	expect(!wheel_pending(t));
	sim_fired(p->sim, p->id);
}

/* The reference's pending timer with the least (expiry, seq), due ones excluded. */
static int
ref_min(const struct sim *s)
{
	int best = -1;

	for (int i = 0; i < PT_TIMERS; i++) {
		const struct ref_timer *t = &s->ref[i];

		if (!t->pending || t->due)
			continue;
		if (best < 0 || t->e < s->ref[best].e ||
		    (t->e == s->ref[best].e && t->seq < s->ref[best].seq))
			best = i;
	}
	return best;
}

struct due_entry {
	int id;
	uint64_t e;
	uint64_t seq;
};

static int
ref_due_cmp(const void *a, const void *b)
{
	const struct due_entry *x = a, *y = b;

	if (x->e != y->e)
		return x->e < y->e ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
ref_advance(struct sim *s, uint64_t target)
{
	struct due_entry snap[PT_TIMERS];
	int n = 0, b;

	/* Timers that were due at the start fire first, by expiry, unless changed meanwhile. */
	for (int i = 0; i < PT_TIMERS; i++) {
		if (s->ref[i].pending && s->ref[i].due) {
			snap[n].id = i;
			snap[n].e = s->ref[i].e;
			snap[n].seq = s->ref[i].seq;
			n++;
		}
	}
	qsort(snap, (size_t)n, sizeof(snap[0]), ref_due_cmp);
	for (int k = 0; k < n; k++) {
		struct ref_timer *t = &s->ref[snap[k].id];

		if (!t->pending || !t->due || t->seq != snap[k].seq)
			continue;
		t->pending = 0;
		sim_fired(s, snap[k].id);
	}
	if (target < s->now)
		target = s->now;
	while ((b = ref_min(s)) >= 0 && s->ref[b].e <= target) {
		s->now = s->ref[b].e;
		s->ref[b].pending = 0;
		sim_fired(s, b);
	}
	s->now = target;
}

static void
sim_advance(struct sim *s, uint64_t target)
{
	if (s->is_ref)
		ref_advance(s, target);
	else
		wheel_advance(s->w, target);
}

static void
sim_init(struct sim *s, int is_ref, uint64_t seed, uint64_t start)
{
	memset(s, 0, sizeof(*s));
	s->is_ref = is_ref;
	s->seed = seed;
	s->now = start;
	if (is_ref)
		return;
	s->w = wheel_new(start);
	for (int i = 0; i < PT_TIMERS; i++) {
		s->timers[i].sim = s;
		s->timers[i].id = i;
		wheel_timer_init(&s->timers[i].t, pt_cb, &s->timers[i]);
	}
}

static void
sim_done(struct sim *s)
{
	wheel_free(s->w);
	free(s->log);
}

/* Compare the two simulations after an operation. */
static void
sim_compare(struct sim *w, struct sim *ref, unsigned run, int op)
{
	uint64_t now = ref->now, min_e = UINT64_MAX;
	int any_due = 0;
	int64_t ms;

	if (w->nlog != ref->nlog)
		ck_abort_msg(
		    "run %u op %d: wheel fired %zu, reference %zu", run, op, w->nlog, ref->nlog);
	for (size_t i = w->nchecked; i < w->nlog; i++) {
		if (w->log[i].id != ref->log[i].id || w->log[i].now != ref->log[i].now ||
		    w->log[i].count != ref->log[i].count)
			ck_abort_msg("run %u op %d fire %zu: wheel id %d at %llu, "
			             "reference id %d at %llu",
			    run, op, i, w->log[i].id, (unsigned long long)w->log[i].now,
			    ref->log[i].id, (unsigned long long)ref->log[i].now);
	}
	w->nchecked = w->nlog;
	expect(wheel_now(w->w) == now);
	expect(wheel_count(w->w) == sim_count(ref));
	for (int i = 0; i < PT_TIMERS; i++) {
		expect(sim_pending(w, i) == sim_pending(ref, i));
		if (!ref->ref[i].pending)
			continue;
		expect(w->timers[i].t.expires == ref->ref[i].e);
		if (ref->ref[i].due)
			any_due = 1;
		else if (ref->ref[i].e < min_e)
			min_e = ref->ref[i].e;
	}
	/* next_ms: 0 when something is due, never past the next expiry, -1 when empty. */
	ms = wheel_next_ms(w->w, now);
	if (sim_count(ref) == 0) {
		expect(ms == -1);
	} else if (any_due) {
		expect(ms == 0);
	} else {
		expect(ms > 0);
		expect(now + (uint64_t)ms <= min_e);
	}
}

/* Draw an expiry relative to now: mostly near, some far, some past, some repeated. */
static uint64_t
pt_expiry(uint64_t *rng, const struct sim *s, uint64_t now)
{
	switch (rng_below(rng, 10)) {
	case 0: return now - rng_below(rng, 100);
	case 1: return now + 64 * rng_below(rng, 80);
	case 2: return now + rng_below(rng, 5000);
	case 3: return now + rng_below(rng, UINT64_C(1) << 22);
	case 4: return now + rng_below(rng, UINT64_C(1) << 38);
	case 5: return s->last_e[rng_below(rng, PT_TIMERS)];
	default: return now + rng_below(rng, 200);
	}
}

static uint64_t
pt_step(uint64_t *rng)
{
	switch (rng_below(rng, 20)) {
	case 0: return 0;
	case 1: return rng_below(rng, UINT64_C(1) << 24);
	case 2: return rng_below(rng, UINT64_C(1) << 37);
	case 3:
	case 4: return rng_below(rng, 10000);
	default: return rng_below(rng, 150);
	}
}

START_TEST(test_wheel_property)
{
	static const uint64_t starts[] = {
	    0, 1000, (UINT64_C(1) << 36) - 20000, (UINT64_C(1) << 37) - 5, UINT64_C(1) << 44};
	const unsigned runs = 200;
	const int ops = 2000;
	static struct sim sw, sr;

	for (unsigned run = 0; run < runs; run++) {
		uint64_t rng = UINT64_C(0x600dcafe) + run;
		uint64_t start = starts[run % ARRAY_SIZE(starts)] + rng_below(&rng, 1000);

		sim_init(&sw, 0, rng, start);
		sim_init(&sr, 1, rng, start);
		for (int op = 0; op < ops; op++) {
			uint64_t kind = rng_below(&rng, 100);
			int id = (int)rng_below(&rng, PT_TIMERS);
			uint64_t now = sr.now;

			if (kind < 45) {
				uint64_t e = pt_expiry(&rng, &sr, now);

				sim_add(&sw, id, e);
				sim_add(&sr, id, e);
			} else if (kind < 60) {
				sim_cancel(&sw, id);
				sim_cancel(&sr, id);
			} else {
				uint64_t step = pt_step(&rng);

				sim_advance(&sw, now + step);
				sim_advance(&sr, now + step);
			}
			sim_compare(&sw, &sr, run, op);
		}
		/* Drain: everything left fires, in the same order. */
		sim_advance(&sw, UINT64_C(1) << 50);
		sim_advance(&sr, UINT64_C(1) << 50);
		sim_advance(&sw, UINT64_C(1) << 51);
		sim_advance(&sr, UINT64_C(1) << 51);
		sim_compare(&sw, &sr, run, ops);
		sim_done(&sw);
		sim_done(&sr);
	}
}
END_TEST

/* --- cancel and re-add under churn ---------------------------------------------------- */

#define CHURN_TIMERS 4096

struct churn {
	struct wheel *w;
	struct churn_timer *timers;
	uint64_t rng;
	uint64_t fired;
	int quiet; /* callbacks stop churning (to drain the wheel) */
};

struct churn_timer {
	struct wheel_timer t;
	struct churn *c;
	uint64_t want; /* the expiry it was last given; 0 when it should not be pending */
};

static void
churn_poke(struct churn *c)
{
	struct churn_timer *o = &c->timers[rng_below(&c->rng, CHURN_TIMERS)];

	if (rng_below(&c->rng, 2) == 0) {
		wheel_cancel(&o->t);
		o->want = 0;
	} else {
		o->want = wheel_now(c->w) + 1 + rng_below(&c->rng, 5000);
		wheel_add(c->w, &o->t, o->want);
	}
}

static void
churn_cb(struct wheel_timer *t, void *arg)
{
	struct churn_timer *m = arg;
	struct churn *c = m->c;

	expect(m->want != 0);
	expect(wheel_now(c->w) == m->want);
	m->want = 0;
	c->fired++;
	if (c->quiet)
		return;
	/* Churn from inside: touch a few random timers, maybe this one again. */
	for (int i = 0; i < 3; i++)
		churn_poke(c);
	if (rng_below(&c->rng, 4) == 0) {
		m->want = wheel_now(c->w) + 1 + rng_below(&c->rng, 300);
		wheel_add(c->w, t, m->want);
	}
}

START_TEST(test_wheel_churn)
{
	struct churn c = {0};
	uint64_t now = 777;

	c.w = wheel_new(now);
	c.rng = 99;
	c.timers = xcalloc(CHURN_TIMERS, sizeof(*c.timers));
	for (int i = 0; i < CHURN_TIMERS; i++) {
		c.timers[i].c = &c;
		wheel_timer_init(&c.timers[i].t, churn_cb, &c.timers[i]);
	}
	for (int round = 0; round < 300; round++) {
		size_t want_count = 0;

		/* Re-add or cancel timers many times over between advances. */
		for (int i = 0; i < 20000; i++) {
			struct churn_timer *m = &c.timers[rng_below(&c.rng, CHURN_TIMERS)];

			switch (rng_below(&c.rng, 4)) {
			case 0:
				wheel_cancel(&m->t);
				m->want = 0;
				break;
			case 1:
				m->want = now + 1 + rng_below(&c.rng, UINT64_C(1) << 26);
				wheel_add(c.w, &m->t, m->want);
				break;
			default:
				m->want = now + 1 + rng_below(&c.rng, 3000);
				wheel_add(c.w, &m->t, m->want);
				break;
			}
		}
		if (rng_below(&c.rng, 4) == 0)
			now += rng_below(&c.rng, 100000);
		else
			now += rng_below(&c.rng, 2000);
		wheel_advance(c.w, now);
		for (int i = 0; i < CHURN_TIMERS; i++) {
			struct churn_timer *m = &c.timers[i];

			expect(wheel_pending(&m->t) == (m->want != 0));
			expect(m->want == 0 || m->want > now);
			want_count += m->want != 0;
		}
		ck_assert_uint_eq(wheel_count(c.w), want_count);
	}
	ck_assert_uint_gt(c.fired, 100000);
	c.quiet = 1;
	wheel_advance(c.w, now + (UINT64_C(1) << 27));
	ck_assert_uint_eq(wheel_count(c.w), 0);
	wheel_free(c.w);
	free(c.timers);
}
END_TEST

/* --- the libevent driver ---------------------------------------------------------- */

struct drv_timer {
	struct wheel_timer t;
	struct wheel_driver *d;
	int id;
	struct drv_log *log;
	struct drv_timer *chain; /* added by this one's callback, 15 ms later */
};

struct drv_log {
	int n;
	int ids[8];
	uint64_t expires[8]; /* monotonic ms each fired timer was due */
	uint64_t at[8];      /* monotonic ms it fired */
};

static void
drv_cb(struct wheel_timer *t, void *arg)
{
	struct drv_timer *m = arg;
	struct drv_log *l = m->log;

	ck_assert_int_lt(l->n, 8);
	l->ids[l->n] = m->id;
	l->expires[l->n] = t->expires;
	l->at[l->n] = now_mono_ms();
	l->n++;
	if (m->chain != NULL)
		wheel_driver_add(m->d, &m->chain->t, 15);
}

START_TEST(test_wheel_driver)
{
	struct event_base *base = event_base_new();
	struct wheel_driver *d;
	static const uint64_t delays[] = {300, 30, 0, 10, 20};
	struct drv_timer m[6];
	struct drv_log l = {0};
	uint64_t start = now_mono_ms();

	ck_assert_ptr_nonnull(base);
	d = wheel_driver_new(base);
	for (int i = 0; i < 6; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].d = d;
		m[i].id = i;
		m[i].log = &l;
		wheel_timer_init(&m[i].t, drv_cb, &m[i]);
	}
	m[3].chain = &m[5];
	/* The 300 ms timer first: each later add is earlier and must re-arm the timer. */
	for (size_t i = 0; i < ARRAY_SIZE(delays); i++)
		wheel_driver_add(d, &m[i].t, delays[i]);
	ck_assert_uint_eq(wheel_count(wheel_driver_wheel(d)), 5);
	/* The loop ends on its own once the wheel is empty and the timer disarmed. */
	ck_assert_int_eq(event_base_dispatch(base), 1);
	ck_assert_int_eq(l.n, 6);
	ck_assert_int_eq(l.ids[0], 2);
	ck_assert_int_eq(l.ids[1], 3);
	ck_assert_int_eq(l.ids[5], 0);
	for (int i = 0; i < l.n; i++) {
		ck_assert_uint_ge(l.at[i], l.expires[i]);
		if (i > 0)
			ck_assert_uint_le(l.expires[i - 1], l.expires[i]);
	}
	ck_assert_uint_ge(l.at[5], start + 300);
	/* The short timers did not wait for the long one (generous for slow builds). */
	ck_assert_uint_lt(l.at[4], start + 250);
	ck_assert_uint_eq(wheel_count(wheel_driver_wheel(d)), 0);

	/* Freeing the driver with pending timers leaves them not pending. */
	wheel_driver_add(d, &m[0].t, 1000);
	wheel_driver_free(d);
	ck_assert(!wheel_pending(&m[0].t));
	event_base_free(base);
}
END_TEST

static Suite *
wheel_suite(void)
{
	Suite *s = suite_create("wheel");
	TCase *tc = tcase_create("wheel");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_wheel_basic);
	tcase_add_test(tc, test_wheel_cancel);
	tcase_add_test(tc, test_wheel_readd_moves);
	tcase_add_test(tc, test_wheel_past);
	tcase_add_test(tc, test_wheel_callbacks);
	tcase_add_test(tc, test_wheel_far_future);
	tcase_add_test(tc, test_wheel_large_gaps);
	tcase_add_test(tc, test_wheel_extremes);
	tcase_add_test(tc, test_wheel_property);
	tcase_add_test(tc, test_wheel_churn);
	tcase_add_test(tc, test_wheel_driver);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(wheel_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
