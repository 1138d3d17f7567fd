/* SPDX-License-Identifier: ISC */
/* Retry delays: exponential backoff with jitter or an explicit schedule; Retry-After. */
#ifndef HOOKD_BACKOFF_H
#define HOOKD_BACKOFF_H

#include <stdint.h>

#include "hookd/util.h"

/*
 * A retry policy (a subscription's, or inbound processing's). Retry n (1-based: retry 1
 * follows the first attempt) waits initial_s * multiplier^(n-1), capped at max_delay_s,
 * or schedule[n-1] when a schedule is given (its last entry repeats). Either way the
 * delay then moves by up to +-jitter of itself.
 */
struct retry_policy {
	int max_retries;        /* retries after the first attempt; 0 means none */
	double initial_s;       /* delay before retry 1 */
	double multiplier;      /* growth per retry (>= 1) */
	double max_delay_s;     /* cap on formula delays, jitter included; <= 0 means none */
	double jitter;          /* fraction in [0, 1]: 0.1 is +-10 % */
	const double *schedule; /* seconds before each retry, overriding the formula; or NULL */
	int nschedule;          /* entries in schedule; 0 means no schedule */
};

/* The default policy: 3 retries, 1 s then x2, capped at 60 s, +-10 % jitter. */
void backoff_default(struct retry_policy *p);

/*
 * Milliseconds to wait before retry number retry, or -1 when retry is outside
 * 1..max_retries (the delivery is exhausted). rnd is a uniform random 32-bit value
 * (random_below(UINT32_MAX) in production, fixed in tests): 0 gives -jitter,
 * UINT32_MAX gives +jitter. The result is never negative and, for formula delays
 * with a cap, never above max_delay_s: jitter is clamped there, so delays at the cap
 * spread over [cap - jitter, cap]. Explicit schedule entries are not capped.
 */
int64_t backoff_delay_ms(const struct retry_policy *p, int retry, uint32_t rnd) WUR;

/*
 * Parse an HTTP Retry-After value (delta-seconds, or an IMF-fixdate, RFC 850 or asctime
 * HTTP-date, compared with now_s in Unix seconds) into *delay_s, clamped to [0, max_s].
 * Returns 0, or -1 when the value is not one of those forms.
 */
int backoff_retry_after(const char *value, int64_t now_s, int64_t max_s, int64_t *delay_s) WUR;

#endif
