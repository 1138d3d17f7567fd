/* SPDX-License-Identifier: ISC */
/* Small helpers shared by every module: allocation, time, ids, encodings. */
#ifndef HOOKD_UTIL_H
#define HOOKD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define ARRAY_SIZE(a)     (sizeof(a) / sizeof((a)[0]))
#define WUR               __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define UNUSED            __attribute__((unused))

#ifdef HOOKD_CASSERT
#define hookd_assert(e) ((e) ? (void)0 : hookd_assert_fail(#e, __FILE__, __LINE__))
#else
#define hookd_assert(e) ((void)0)
#endif
void hookd_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Out-of-memory aborts: callers never check. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Monotonic milliseconds and microseconds; wall-clock milliseconds since the epoch. */
uint64_t now_mono_ms(void);
uint64_t now_mono_us(void);
uint64_t now_wall_ms(void);

/* ISO 8601 UTC with milliseconds ("2026-01-01T15:00:00.123Z") into buf (>= 25 bytes). */
void time_iso8601(uint64_t wall_ms, char *buf, size_t len);

/* A UUIDv7 (time-ordered) in canonical text form into buf (>= 37 bytes). */
void uuid_v7(char out[37]);
/* 1 when s is a canonical UUID (any version). */
int uuid_valid(const char *s);

/* The value of one hex digit (either case), or -1. */
int hex_value(int c);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);
/* Decode hex (either case); returns the byte count or -1. */
int hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax) WUR;

/* Standard base64 with padding; returns a malloc'd string. */
char *base64_encode(const unsigned char *in, size_t n);
/* Decode standard or URL-safe base64, padding optional; returns the byte count or -1. */
int base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax) WUR;

/* Constant-time equality of two byte strings (lengths compared first). */
int ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Parse a decimal integer in [min, max]; returns 0 or -1. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out) WUR;

/* Random bytes for identifiers (pooled; not for secrets or keys). */
void random_ids(void *buf, size_t len);

/* Uniform random integer in [0, n). */
uint32_t random_below(uint32_t n);

#endif
