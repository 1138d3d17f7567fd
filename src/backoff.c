/* SPDX-License-Identifier: ISC */
/* Retry delays: exponential backoff with jitter or an explicit schedule; Retry-After. */
#include "config.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "hookd/backoff.h"
#include "hookd/util.h"

/* Ceiling on any delay (about 31,700 years), only to keep the arithmetic finite. */
#define BACKOFF_MAX_S 1e12

void
backoff_default(struct retry_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->max_retries = 3;
	p->initial_s = 1;
	p->multiplier = 2;
	p->max_delay_s = 60;
	p->jitter = 0.1;
}

int64_t
backoff_delay_ms(const struct retry_policy *p, int retry, uint32_t rnd)
{
	double delay, cap = BACKOFF_MAX_S, jitter, u;

	if (retry < 1 || retry > p->max_retries)
		return -1;
	if (p->schedule != NULL && p->nschedule > 0) {
		delay = p->schedule[(retry < p->nschedule ? retry : p->nschedule) - 1];
	} else {
		double mult = p->multiplier > 0 ? p->multiplier : 1;

		if (p->max_delay_s > 0 && p->max_delay_s < cap)
			cap = p->max_delay_s;
		delay = p->initial_s * pow(mult, retry - 1);
	}
	/* Also maps NaN and negative entries to 0. */
	if (!(delay > 0))
		delay = 0;
	if (delay > cap)
		delay = cap;
	jitter = p->jitter > 0 ? (p->jitter < 1 ? p->jitter : 1) : 0;
	u = (double)rnd / (double)UINT32_MAX;
	delay += delay * jitter * (2 * u - 1);
	if (delay > cap)
		delay = cap;
	if (delay < 0)
		delay = 0;
	return llround(delay * 1000);
}

/* --- Retry-After ------------------------------------------------------------------- */

static const char *const day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_names_long[] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
static const char *const month_names[] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Index of the n-byte word in names (case-insensitively), or -1. */
static int
name_index(const char *word, size_t n, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(names[i]) == n && strncasecmp(word, names[i], n) == 0)
			return (int)i;
	}
	return -1;
}

/* Read exactly n digits at *p into *out. */
static int
take_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit((*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Consume the literal lit at *p. */
static int
take_literal(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncasecmp(*p, lit, n) != 0)
		return -1;
	*p += n;
	return 0;
}

/* Read a three-letter month name at *p into *month (1..12). */
static int
take_month(const char **p, int *month)
{
	int i = name_index(*p, 3, month_names, ARRAY_SIZE(month_names));

	if (i < 0 || is_alpha((*p)[3]))
		return -1;
	*p += 3;
	*month = i + 1;
	return 0;
}

/* Read "HH:MM:SS" at *p into seconds since midnight. */
static int
take_time(const char **p, int64_t *secs)
{
	int h, m, s;

	if (take_digits(p, 2, &h) < 0 || take_literal(p, ":") < 0 || take_digits(p, 2, &m) < 0 ||
	    take_literal(p, ":") < 0 || take_digits(p, 2, &s) < 0)
		return -1;
	/* A leap second (60) is allowed by the grammar. */
	if (h > 23 || m > 59 || s > 60)
		return -1;
	*secs = h * 3600 + m * 60 + s;
	return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The Gregorian year holding Unix time t. */
static int64_t
year_of(int64_t t)
{
	int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	return yoe + era * 400 + (mp >= 10);
}

static int
days_in_month(int64_t y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/*
 * Parse an HTTP-date (RFC 9110 5.6.7) into Unix seconds: IMF-fixdate
 * "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" (a two-digit
 * year more than 50 years ahead of now_s means the century before) or asctime
 * "Sun Nov  6 08:49:37 1994". Names are matched case-insensitively; the day name is
 * not checked against the date.
 */
static int
parse_http_date(const char *s, int64_t now_s, int64_t *out)
{
	const char *p = s, *word = s;
	int day, month, year;
	int64_t secs;

	while (is_alpha(*p))
		p++;
	if (name_index(word, (size_t)(p - word), day_names, ARRAY_SIZE(day_names)) < 0 &&
	    name_index(word, (size_t)(p - word), day_names_long, ARRAY_SIZE(day_names_long)) < 0)
		return -1;
	if (*p == ',') {
		p++;
		if (take_literal(&p, " ") < 0 || take_digits(&p, 2, &day) < 0)
			return -1;
		if (*p == ' ') {
			p++;
			if (take_month(&p, &month) < 0 || take_literal(&p, " ") < 0 ||
			    take_digits(&p, 4, &year) < 0)
				return -1;
		} else if (*p == '-') {
			int64_t cur = year_of(now_s);
			int64_t y;

			p++;
			if (take_month(&p, &month) < 0 || take_literal(&p, "-") < 0 ||
			    take_digits(&p, 2, &year) < 0)
				return -1;
			y = cur - cur % 100 + year;
			if (y > cur + 50)
				y -= 100;
			year = (int)y;
		} else {
			return -1;
		}
		if (take_literal(&p, " ") < 0 || take_time(&p, &secs) < 0 ||
		    take_literal(&p, " GMT") < 0)
			return -1;
	} else if (*p == ' ') {
		p++;
		if (take_month(&p, &month) < 0 || take_literal(&p, " ") < 0)
			return -1;
		if (*p == ' ') {
			p++;
			if (take_digits(&p, 1, &day) < 0)
				return -1;
		} else if (take_digits(&p, 2, &day) < 0) {
			return -1;
		}
		if (take_literal(&p, " ") < 0 || take_time(&p, &secs) < 0 ||
		    take_literal(&p, " ") < 0 || take_digits(&p, 4, &year) < 0)
			return -1;
	} else {
		return -1;
	}
	if (*p != '\0' || day < 1 || day > days_in_month(year, month))
		return -1;
	*out = days_from_civil(year, month, day) * 86400 + secs;
	return 0;
}

int
backoff_retry_after(const char *value, int64_t now_s, int64_t max_s, int64_t *delay_s)
{
	const char *start, *end;
	char buf[40];
	int64_t v = 0, when;

	if (value == NULL)
		return -1;
	if (max_s < 0)
		max_s = 0;
	start = value;
	while (is_ows(*start))
		start++;
	end = start + strlen(start);
	while (end > start && is_ows(end[-1]))
		end--;
	if (start == end)
		return -1;

	if (is_digit(*start)) {
		/* delta-seconds: saturate rather than fail on absurd lengths. */
		for (const char *p = start; p < end; p++) {
			if (!is_digit(*p))
				return -1;
			if (v > (INT64_MAX - 9) / 10)
				v = INT64_MAX;
			else
				v = v * 10 + (*p - '0');
		}
		*delay_s = v < max_s ? v : max_s;
		return 0;
	}

	if ((size_t)(end - start) >= sizeof(buf))
		return -1;
	memcpy(buf, start, (size_t)(end - start));
	buf[end - start] = '\0';
	if (parse_http_date(buf, now_s, &when) < 0)
		return -1;
	if (__builtin_sub_overflow(when, now_s, &v))
		v = when > 0 ? INT64_MAX : 0;
	*delay_s = v < 0 ? 0 : (v < max_s ? v : max_s);
	return 0;
}
