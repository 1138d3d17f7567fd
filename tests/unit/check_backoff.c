/* SPDX-License-Identifier: ISC */
/* Unit tests for retry delays: the default policy, jitter bounds, caps, schedules, Retry-After. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "hookd/backoff.h"
#include "hookd/util.h"

/* Aborts only on failure: ck_assert reports every passing check to the parent process. */
#define expect(e)                                                                                  \
	do {                                                                                       \
		if (!(e))                                                                          \
			ck_abort_msg("%s:%d: expected %s", __FILE__, __LINE__, #e);                \
	} while (0)

/* A deterministic PRNG (xorshift32) for jitter inputs. */
static uint32_t
rng32(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

#define RND_MID (UINT32_MAX / 2u + 1u) /* about the middle: no jitter to the ms */

START_TEST(test_backoff_default)
{
	struct retry_policy p;

	backoff_default(&p);
	ck_assert_int_eq(p.max_retries, 3);
	ck_assert_ptr_null(p.schedule);
	/* 1, 2, 4 s; the extremes of rnd give exactly -10 % and +10 %. */
	ck_assert_int_eq(backoff_delay_ms(&p, 1, RND_MID), 1000);
	ck_assert_int_eq(backoff_delay_ms(&p, 2, RND_MID), 2000);
	ck_assert_int_eq(backoff_delay_ms(&p, 3, RND_MID), 4000);
	ck_assert_int_eq(backoff_delay_ms(&p, 1, 0), 900);
	ck_assert_int_eq(backoff_delay_ms(&p, 1, UINT32_MAX), 1100);
	ck_assert_int_eq(backoff_delay_ms(&p, 3, 0), 3600);
	ck_assert_int_eq(backoff_delay_ms(&p, 3, UINT32_MAX), 4400);
	/* Exhausted after max_retries; retry numbers start at 1. */
	ck_assert_int_eq(backoff_delay_ms(&p, 4, RND_MID), -1);
	ck_assert_int_eq(backoff_delay_ms(&p, 100, 0), -1);
	ck_assert_int_eq(backoff_delay_ms(&p, 0, 0), -1);
	ck_assert_int_eq(backoff_delay_ms(&p, -1, 0), -1);
	p.max_retries = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 1, 0), -1);
}
END_TEST

START_TEST(test_backoff_jitter_bounds)
{
	struct retry_policy p;
	uint32_t seed = 12345;
	static const int64_t base[] = {1000, 2000, 4000};

	backoff_default(&p);
	for (int retry = 1; retry <= 3; retry++) {
		int64_t lo = INT64_MAX, hi = 0;
		double sum = 0;
		const int n = 200000;

		for (int i = 0; i < n; i++) {
			int64_t d = backoff_delay_ms(&p, retry, rng32(&seed));

			expect(d >= base[retry - 1] * 9 / 10);
			expect(d <= base[retry - 1] * 11 / 10);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			sum += (double)d;
		}
		/* The whole band is used, centred on the nominal delay. */
		ck_assert_int_le(lo, base[retry - 1] * 9 / 10 + base[retry - 1] / 100);
		ck_assert_int_ge(hi, base[retry - 1] * 11 / 10 - base[retry - 1] / 100);
		ck_assert_double_eq_tol(sum / n, (double)base[retry - 1], base[retry - 1] / 200.0);
	}

	/* No jitter: exact. Jitter above 1 counts as 1 (0 .. 2x), never negative. */
	p.jitter = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 2, 0), 2000);
	ck_assert_int_eq(backoff_delay_ms(&p, 2, UINT32_MAX), 2000);
	p.jitter = 5;
	p.max_delay_s = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 2, 0), 0);
	ck_assert_int_eq(backoff_delay_ms(&p, 2, UINT32_MAX), 4000);
	p.jitter = -1;
	ck_assert_int_eq(backoff_delay_ms(&p, 2, 0), 2000);
}
END_TEST

START_TEST(test_backoff_cap)
{
	struct retry_policy p;
	uint32_t seed = 777;

	backoff_default(&p);
	p.max_retries = 100;
	p.jitter = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 6, 0), 32000);
	ck_assert_int_eq(backoff_delay_ms(&p, 7, 0), 60000); /* 64 s capped */
	ck_assert_int_eq(backoff_delay_ms(&p, 100, 0), 60000);
	p.max_retries = 5000; /* 2^4999 overflows a double: still the cap */
	ck_assert_int_eq(backoff_delay_ms(&p, 5000, 0), 60000);

	/* Jitter is applied after the cap and clamped to it: [54 s, 60 s]. */
	p.jitter = 0.1;
	ck_assert_int_eq(backoff_delay_ms(&p, 10, 0), 54000);
	ck_assert_int_eq(backoff_delay_ms(&p, 10, UINT32_MAX), 60000);
	for (int i = 0; i < 100000; i++) {
		int64_t d = backoff_delay_ms(&p, 7 + i % 50, rng32(&seed));

		expect(d >= 54000 && d <= 60000);
	}
	/* Below the cap jitter may go either way, up to the cap. */
	p.max_delay_s = 33;
	ck_assert_int_eq(backoff_delay_ms(&p, 6, 0), 28800);
	ck_assert_int_eq(backoff_delay_ms(&p, 6, UINT32_MAX), 33000);

	/* A cap of 0 means none. */
	p.max_delay_s = 0;
	p.jitter = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 11, 0), 1024000);
}
END_TEST

START_TEST(test_backoff_schedule)
{
	static const double sched[] = {5, 30, 300};
	static const double odd[] = {0.25, -3, 0};
	struct retry_policy p;

	backoff_default(&p);
	p.schedule = sched;
	p.nschedule = (int)ARRAY_SIZE(sched);
	p.max_retries = 5;
	p.jitter = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 1, 0), 5000);
	ck_assert_int_eq(backoff_delay_ms(&p, 2, 0), 30000);
	/* Not capped by max_delay_s (60 s); the last entry repeats. */
	ck_assert_int_eq(backoff_delay_ms(&p, 3, 0), 300000);
	ck_assert_int_eq(backoff_delay_ms(&p, 4, 0), 300000);
	ck_assert_int_eq(backoff_delay_ms(&p, 5, 0), 300000);
	ck_assert_int_eq(backoff_delay_ms(&p, 6, 0), -1);
	/* Shorter max_retries than the schedule: exhausted early. */
	p.max_retries = 2;
	ck_assert_int_eq(backoff_delay_ms(&p, 3, 0), -1);
	/* Jitter applies to schedule entries too. */
	p.max_retries = 3;
	p.jitter = 0.2;
	ck_assert_int_eq(backoff_delay_ms(&p, 3, 0), 240000);
	ck_assert_int_eq(backoff_delay_ms(&p, 3, UINT32_MAX), 360000);
	/* Fractions are kept to the millisecond; negative entries count as 0. */
	p.schedule = odd;
	p.jitter = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 1, 0), 250);
	ck_assert_int_eq(backoff_delay_ms(&p, 2, UINT32_MAX), 0);
	ck_assert_int_eq(backoff_delay_ms(&p, 3, 0), 0);
	/* nschedule 0 means the formula. */
	p.nschedule = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 3, 0), 4000);
}
END_TEST

START_TEST(test_backoff_inbound)
{
	struct retry_policy p;

	/* Inbound processing (seed 001): 3 attempts, 2 s then 4 s. */
	backoff_default(&p);
	p.max_retries = 2;
	p.initial_s = 2;
	p.jitter = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 1, 0), 2000);
	ck_assert_int_eq(backoff_delay_ms(&p, 2, 0), 4000);
	ck_assert_int_eq(backoff_delay_ms(&p, 3, 0), -1);
	/* An initial delay of 0 retries at once. */
	p.initial_s = 0;
	ck_assert_int_eq(backoff_delay_ms(&p, 2, UINT32_MAX), 0);
}
END_TEST

/* --- Retry-After ------------------------------------------------------------------- */

#define RFC_EXAMPLE 784111777  /* Sun, 06 Nov 1994 08:49:37 GMT */
#define Y2026       1767225600 /* Thu, 01 Jan 2026 00:00:00 GMT */

/* The delay for value, or -1 when it does not parse. */
static int64_t
ra(const char *value, int64_t now_s, int64_t max_s)
{
	int64_t d = -12345;

	if (backoff_retry_after(value, now_s, max_s, &d) < 0) {
		ck_assert_int_eq(d, -12345); /* untouched on failure */
		return -1;
	}
	return d;
}

START_TEST(test_retry_after_seconds)
{
	ck_assert_int_eq(ra("120", Y2026, 3600), 120);
	ck_assert_int_eq(ra("0", Y2026, 3600), 0);
	ck_assert_int_eq(ra("007", Y2026, 3600), 7);
	ck_assert_int_eq(ra(" \t42 ", Y2026, 3600), 42);
	ck_assert_int_eq(ra("3600", Y2026, 3600), 3600);
	ck_assert_int_eq(ra("3601", Y2026, 3600), 3600);
	ck_assert_int_eq(ra("86400", Y2026, 60), 60);
	ck_assert_int_eq(ra("99999999999999999999999999999999", Y2026, 3600), 3600);
	ck_assert_int_eq(ra("9223372036854775807", Y2026, INT64_MAX), INT64_MAX);
	ck_assert_int_eq(ra("9223372036854775808", Y2026, INT64_MAX), INT64_MAX);
	ck_assert_int_eq(ra("10", Y2026, -5), 0); /* a negative maximum counts as 0 */
	/* Garbage. */
	ck_assert_int_eq(ra(NULL, Y2026, 3600), -1);
	ck_assert_int_eq(ra("", Y2026, 3600), -1);
	ck_assert_int_eq(ra("   ", Y2026, 3600), -1);
	ck_assert_int_eq(ra("-5", Y2026, 3600), -1);
	ck_assert_int_eq(ra("+5", Y2026, 3600), -1);
	ck_assert_int_eq(ra("1.5", Y2026, 3600), -1);
	ck_assert_int_eq(ra("12abc", Y2026, 3600), -1);
	ck_assert_int_eq(ra("1 2", Y2026, 3600), -1);
	ck_assert_int_eq(ra("soon", Y2026, 3600), -1);
	ck_assert_int_eq(ra("0x10", Y2026, 3600), -1);
}
END_TEST

START_TEST(test_retry_after_dates)
{
	const int64_t now = RFC_EXAMPLE - 120;

	/* The three HTTP-date forms of the same instant. */
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:49:37 GMT", now, 3600), 120);
	ck_assert_int_eq(ra("Sunday, 06-Nov-94 08:49:37 GMT", now, 3600), 120);
	ck_assert_int_eq(ra("Sun Nov  6 08:49:37 1994", now, 3600), 120);
	ck_assert_int_eq(ra("  Sun, 06 Nov 1994 08:49:37 GMT  ", now, 3600), 120);
	/* Lenient: names in any case, a two-digit asctime day, day name unchecked. */
	ck_assert_int_eq(ra("sun, 06 nov 1994 08:49:37 gmt", now, 3600), 120);
	ck_assert_int_eq(ra("Sun Nov 16 08:49:37 1994", now, 20 * 86400), 10 * 86400 + 120);
	ck_assert_int_eq(ra("Mon, 06 Nov 1994 08:49:37 GMT", now, 3600), 120);

	/* Past dates give 0; far ones are clamped. */
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE, 3600), 0);
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE + 5000, 3600), 0);
	ck_assert_int_eq(ra("Thu, 01 Jan 1970 00:00:00 GMT", Y2026, 3600), 0);
	ck_assert_int_eq(ra("Fri, 31 Dec 9999 23:59:59 GMT", Y2026, 3600), 3600);
	ck_assert_int_eq(
	    ra("Fri, 31 Dec 9999 23:59:59 GMT", Y2026, INT64_MAX), INT64_C(253402300799) - Y2026);

	/* Calendar arithmetic: leap days, century rules, a leap second. */
	ck_assert_int_eq(ra("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 - 1, 3600), 1);
	ck_assert_int_eq(ra("Wed, 01 Mar 2000 00:00:00 GMT", 951868800 - 10, 3600), 10);
	ck_assert_int_eq(ra("Tue, 29 Feb 2000 00:00:00 GMT", 951868800 - 86400, 3600), 0);
	ck_assert_int_eq(ra("Fri, 31 Dec 1999 23:59:59 GMT", 946684799 - 59, 3600), 59);
	ck_assert_int_eq(ra("Fri, 31 Dec 1999 23:59:60 GMT", 946684799 - 59, 3600), 60);
	ck_assert_int_eq(ra("Thu, 01 Jan 2026 00:00:00 GMT", Y2026 - 3599, 3600), 3599);

	/* RFC 850 two-digit years: more than 50 years ahead means the century before. */
	ck_assert_int_eq(
	    ra("Thursday, 01-Jan-70 00:00:00 GMT", Y2026, INT64_MAX), INT64_C(3155760000) - Y2026);
	ck_assert_int_eq(ra("Tuesday, 01-Jan-80 00:00:00 GMT", Y2026, INT64_MAX), 0);
	ck_assert_int_eq(ra("Friday, 31-Dec-99 23:59:59 GMT", 946684799 - 30, 3600), 30);
	ck_assert_int_eq(ra("Thursday, 01-Jan-26 00:00:00 GMT", Y2026 - 5, 3600), 5);

	/* Malformed dates. */
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:49:37", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:49:37 UTC", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:49:37 GMT x", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 6 Nov 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Nov 94 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Now 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 November 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 31 Nov 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 00 Nov 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Mon, 29 Feb 2100 00:00:00 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 24:00:00 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:60:00 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 08:49:61 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06 Nov 1994 8:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Funday, 06 Nov 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("06 Nov 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun,06 Nov 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sunday, 06-Nov-1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sunday, 06-Nov-9x 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sunday, 06-Nov 94 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun, 06/Nov/1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun; 06 Nov 1994 08:49:37 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun Now  6 08:49:37 1994", now, 3600), -1);
	ck_assert_int_eq(ra("Sun Nov  x 08:49:37 1994", now, 3600), -1);
	ck_assert_int_eq(ra("Sun Nov 6 08:49:37 1994", now, 3600), -1);
	ck_assert_int_eq(ra("Sun Nov  6 08:49:37 1994 GMT", now, 3600), -1);
	ck_assert_int_eq(ra("Sun Nov  6 08:49:37 94", now, 3600), -1);
	ck_assert_int_eq(
	    ra("Sun, 06 Nov 1994 08:49:37 GMT                                 ", now, 3600), 120);
	ck_assert_int_eq(
	    ra("Sun, 06 Nov 1994 08:49:37 GMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMT", now, 3600), -1);
}
END_TEST

static Suite *
backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("backoff");

	tcase_add_test(tc, test_backoff_default);
	tcase_add_test(tc, test_backoff_jitter_bounds);
	tcase_add_test(tc, test_backoff_cap);
	tcase_add_test(tc, test_backoff_schedule);
	tcase_add_test(tc, test_backoff_inbound);
	tcase_add_test(tc, test_retry_after_seconds);
	tcase_add_test(tc, test_retry_after_dates);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(backoff_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
