/* SPDX-License-Identifier: ISC */
/* Hierarchical timing wheel: O(1) add and cancel of intrusive millisecond timers. */
#include "config.h"

#include <stddef.h>

#include "hookd/util.h"
#include "hookd/wheel.h"

/*
 * Layout. WHEEL_LEVELS levels of 64 slots, one millisecond per level-0 slot. Level l
 * holds the timers whose expiry first differs from the wheel's now in bits [6l, 6l + 6),
 * in the slot named by those bits of the expiry. So every occupied slot lies after now's
 * own slot on its level, and a per-level bitmap finds the next one with one ctz. When now
 * reaches the first millisecond of a level-l slot (l > 0) the slot is cascaded: its
 * timers are placed again relative to the new now, which puts them on lower levels, or
 * fires those due at exactly that millisecond. The levels reach to the end of now's
 * 2^36 ms (about 795-day) aligned block; later timers wait on an overflow list, placed
 * again when now reaches the block of the earliest of them.
 *
 * Order. Timers fire in expiry order, and timers with equal expiry in the order they were
 * added: a slot is always cascaded before a timer with the same expiry can be added to a
 * lower level directly, and cascading keeps list order.
 *
 * Timers added with an expiry at or before now go on the due list, fired (sorted stably by expiry)
 * at the start of the next wheel_advance; the firing list holds what is being fired.
 */
#define WHEEL_BITS       6
#define WHEEL_SLOTS      (1u << WHEEL_BITS)
#define WHEEL_MASK       ((uint64_t)WHEEL_SLOTS - 1)
#define WHEEL_LEVELS     6
#define WHEEL_RANGE_BITS (WHEEL_BITS * WHEEL_LEVELS)
#define WHEEL_RANGE_MASK ((UINT64_C(1) << WHEEL_RANGE_BITS) - 1)

/* Lists after the WHEEL_LEVELS * WHEEL_SLOTS slots. */
enum wheel_list {
	WHEEL_LIST_OVERFLOW = WHEEL_LEVELS * WHEEL_SLOTS, /* beyond the top level's range */
	WHEEL_LIST_DUE,                                   /* added at or before now */
	WHEEL_LIST_FIRING,                                /* being fired by wheel_advance */
	WHEEL_NLISTS,                                     /* number of lists */
};

struct wheel {
	uint64_t now;                    /* everything due by now has fired */
	size_t count;                    /* pending timers */
	uint64_t occupied[WHEEL_LEVELS]; /* bit s: slot s of the level is non-empty */
	uint64_t overflow_min;           /* no overflow timer expires earlier (may be stale) */
	int advancing;                   /* inside wheel_advance */
	int due_sorted;                  /* the due list is in expiry order */
	struct wheel_link lists[WHEEL_NLISTS];
};

#define timer_of(l) ((struct wheel_timer *)(void *)((char *)(l)-offsetof(struct wheel_timer, link)))

static void
list_init(struct wheel_link *head)
{
	head->next = head;
	head->prev = head;
}

static int
list_empty(const struct wheel_link *head)
{
	return head->next == head;
}

static void
list_append(struct wheel_link *head, struct wheel_link *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static void
list_unlink(struct wheel_link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n;
	n->prev = n;
}

/* Move every element of from to the (empty) list to, in order. */
static void
list_take(struct wheel_link *from, struct wheel_link *to)
{
	list_init(to);
	if (list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	list_init(from);
}

/* Append t to list idx of w. */
static void
wheel_link_to(struct wheel *w, struct wheel_timer *t, unsigned idx)
{
	t->list = idx;
	list_append(&w->lists[idx], &t->link);
}

/* Put t (due strictly after now) on the slot or list its expiry calls for. */
static void
wheel_place(struct wheel *w, struct wheel_timer *t)
{
	uint64_t diff = t->expires ^ w->now;
	unsigned level, slot;

	hookd_assert(t->expires > w->now);
	if (diff >> WHEEL_RANGE_BITS) {
		if (list_empty(&w->lists[WHEEL_LIST_OVERFLOW]) || t->expires < w->overflow_min)
			w->overflow_min = t->expires;
		wheel_link_to(w, t, WHEEL_LIST_OVERFLOW);
		return;
	}
	level = (unsigned)(63 - __builtin_clzll(diff)) / WHEEL_BITS;
	slot = (unsigned)((t->expires >> (level * WHEEL_BITS)) & WHEEL_MASK);
	w->occupied[level] |= UINT64_C(1) << slot;
	wheel_link_to(w, t, level * WHEEL_SLOTS + slot);
}

/* Take t off whatever list holds it, keeping the occupancy bitmap exact. */
static void
wheel_unlink(struct wheel *w, struct wheel_timer *t)
{
	list_unlink(&t->link);
	if (t->list < WHEEL_LIST_OVERFLOW && list_empty(&w->lists[t->list]))
		w->occupied[t->list / WHEEL_SLOTS] &= ~(UINT64_C(1) << (t->list % WHEEL_SLOTS));
}

void
wheel_timer_init(struct wheel_timer *t, void (*cb)(struct wheel_timer *t, void *arg), void *arg)
{
	t->link.next = &t->link;
	t->link.prev = &t->link;
	t->wheel = NULL;
	t->expires = 0;
	t->list = 0;
	t->cb = cb;
	t->arg = arg;
}

struct wheel *
wheel_new(uint64_t now_ms)
{
	struct wheel *w = xcalloc(1, sizeof(*w));

	w->now = now_ms;
	w->due_sorted = 1;
	for (unsigned i = 0; i < WHEEL_NLISTS; i++)
		list_init(&w->lists[i]);
	return w;
}

void
wheel_free(struct wheel *w)
{
	if (w == NULL)
		return;
	hookd_assert(!w->advancing);
	for (unsigned i = 0; i < WHEEL_NLISTS; i++) {
		struct wheel_link *head = &w->lists[i];

		while (!list_empty(head)) {
			struct wheel_timer *t = timer_of(head->next);

			list_unlink(&t->link);
			t->wheel = NULL;
		}
	}
	free(w);
}

void
wheel_add(struct wheel *w, struct wheel_timer *t, uint64_t expires_ms)
{
	struct wheel_link *due = &w->lists[WHEEL_LIST_DUE];

	wheel_cancel(t);
	t->wheel = w;
	t->expires = expires_ms;
	w->count++;
	if (expires_ms > w->now) {
		wheel_place(w, t);
		return;
	}
	if (list_empty(due))
		w->due_sorted = 1;
	else if (timer_of(due->prev)->expires > expires_ms)
		w->due_sorted = 0;
	wheel_link_to(w, t, WHEEL_LIST_DUE);
}

void
wheel_cancel(struct wheel_timer *t)
{
	struct wheel *w = t->wheel;

	if (w == NULL)
		return;
	wheel_unlink(w, t);
	t->wheel = NULL;
	hookd_assert(w->count > 0);
	w->count--;
}

int
wheel_pending(const struct wheel_timer *t)
{
	return t->wheel != NULL;
}

size_t
wheel_count(const struct wheel *w)
{
	return w->count;
}

uint64_t
wheel_now(const struct wheel *w)
{
	return w->now;
}

/* Merge two expiry-sorted NULL-terminated chains, a's elements first among equals. */
static struct wheel_link *
chain_merge(struct wheel_link *a, struct wheel_link *b)
{
	struct wheel_link head, *tail = &head;

	while (a != NULL && b != NULL) {
		if (timer_of(b)->expires < timer_of(a)->expires) {
			tail->next = b;
			b = b->next;
		} else {
			tail->next = a;
			a = a->next;
		}
		tail = tail->next;
	}
	tail->next = a != NULL ? a : b;
	return head.next;
}

/* Stable merge sort by expiry of a NULL-terminated chain of n links. */
static struct wheel_link *
chain_sort(struct wheel_link *a, size_t n)
{
	struct wheel_link *mid = a, *b;

	if (n < 2)
		return a;
	for (size_t i = 1; i < n / 2; i++)
		mid = mid->next;
	b = mid->next;
	mid->next = NULL;
	return chain_merge(chain_sort(a, n / 2), chain_sort(b, n - n / 2));
}

/* Sort the due list stably by expiry (it is usually sorted already). */
static void
wheel_sort_due(struct wheel *w)
{
	struct wheel_link *head = &w->lists[WHEEL_LIST_DUE], *first, *prev, *l;
	size_t n = 0;

	if (w->due_sorted)
		return;
	for (l = head->next; l != head; l = l->next)
		n++;
	head->prev->next = NULL;
	first = chain_sort(head->next, n);
	prev = head;
	for (l = first; l != NULL; l = l->next) {
		l->prev = prev;
		prev->next = l;
		prev = l;
	}
	prev->next = head;
	head->prev = prev;
	w->due_sorted = 1;
}

/* Fire the firing list in order; callbacks may change any list, this one included. */
static void
wheel_fire(struct wheel *w)
{
	struct wheel_link *head = &w->lists[WHEEL_LIST_FIRING];

	while (!list_empty(head)) {
		struct wheel_timer *t = timer_of(head->next);

		list_unlink(&t->link);
		t->wheel = NULL;
		w->count--;
		t->cb(t, t->arg);
	}
}

/* Move every timer of list idx to the firing list, in order. */
static void
wheel_take_for_firing(struct wheel *w, unsigned idx)
{
	struct wheel_link *head = &w->lists[idx];

	while (!list_empty(head)) {
		struct wheel_timer *t = timer_of(head->next);

		list_unlink(&t->link);
		wheel_link_to(w, t, WHEEL_LIST_FIRING);
	}
}

/* Place again every timer of list idx relative to now; those due now go to firing. */
static void
wheel_cascade(struct wheel *w, unsigned idx)
{
	struct wheel_link tmp;

	list_take(&w->lists[idx], &tmp);
	if (idx < WHEEL_LIST_OVERFLOW)
		w->occupied[idx / WHEEL_SLOTS] &= ~(UINT64_C(1) << (idx % WHEEL_SLOTS));
	else
		w->overflow_min = UINT64_MAX;
	while (!list_empty(&tmp)) {
		struct wheel_timer *t = timer_of(tmp.next);

		list_unlink(&t->link);
		hookd_assert(t->expires >= w->now);
		if (t->expires == w->now)
			wheel_link_to(w, t, WHEEL_LIST_FIRING);
		else
			wheel_place(w, t);
	}
}

/*
 * The earliest millisecond after now at which a slot must be fired or cascaded; 0 when
 * there is none. The lowest non-empty level always holds it: its slots lie within now's
 * slot on the level above.
 */
static int
wheel_next_event(const struct wheel *w, uint64_t *at)
{
	for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
		unsigned shift = l * WHEEL_BITS, above = shift + WHEEL_BITS, slot;
		uint64_t occ = w->occupied[l];

		if (occ == 0)
			continue;
		slot = (unsigned)__builtin_ctzll(occ);
		hookd_assert(slot > ((w->now >> shift) & WHEEL_MASK));
		*at = (w->now >> above << above) | ((uint64_t)slot << shift);
		return 1;
	}
	if (!list_empty(&w->lists[WHEEL_LIST_OVERFLOW])) {
		/* The block of the earliest overflow timer, and at least the next block. */
		uint64_t next = ((w->now >> WHEEL_RANGE_BITS) + 1) << WHEEL_RANGE_BITS;
		uint64_t min = w->overflow_min >> WHEEL_RANGE_BITS << WHEEL_RANGE_BITS;

		*at = min > next ? min : next;
		return 1;
	}
	return 0;
}

/* Move now to at (the next event) and fire or cascade what it calls for. */
static void
wheel_step(struct wheel *w, uint64_t at)
{
	unsigned slot;

	w->now = at;
	if ((at & WHEEL_RANGE_MASK) == 0)
		wheel_cascade(w, WHEEL_LIST_OVERFLOW);
	for (unsigned l = WHEEL_LEVELS - 1; l > 0; l--) {
		slot = (unsigned)((at >> (l * WHEEL_BITS)) & WHEEL_MASK);
		if (w->occupied[l] & (UINT64_C(1) << slot))
			wheel_cascade(w, l * WHEEL_SLOTS + slot);
	}
	slot = (unsigned)(at & WHEEL_MASK);
	if (w->occupied[0] & (UINT64_C(1) << slot)) {
		w->occupied[0] &= ~(UINT64_C(1) << slot);
		wheel_take_for_firing(w, slot);
	}
	wheel_fire(w);
}

void
wheel_advance(struct wheel *w, uint64_t now_ms)
{
	uint64_t at;

	hookd_assert(!w->advancing);
	w->advancing = 1;
	if (!list_empty(&w->lists[WHEEL_LIST_DUE])) {
		wheel_sort_due(w);
		wheel_take_for_firing(w, WHEEL_LIST_DUE);
		wheel_fire(w);
	}
	while (wheel_next_event(w, &at) && at <= now_ms)
		wheel_step(w, at);
	if (now_ms > w->now)
		w->now = now_ms;
	w->advancing = 0;
}

int64_t
wheel_next_ms(const struct wheel *w, uint64_t now_ms)
{
	uint64_t at;

	if (w->count == 0)
		return -1;
	if (!list_empty(&w->lists[WHEEL_LIST_DUE]) || !list_empty(&w->lists[WHEEL_LIST_FIRING]))
		return 0;
	if (!wheel_next_event(w, &at))
		return -1;
	if (at <= now_ms)
		return 0;
	return at - now_ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(at - now_ms);
}
