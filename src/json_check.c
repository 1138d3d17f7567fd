/* SPDX-License-Identifier: ISC */
/* JSON checked in place: validation and top-level members without a tree (json_check.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json_check.h"
#include "hookd/util.h"

struct scan {
	const unsigned char *start, *p, *end;
	char *err;
	size_t errlen;
};

static int
fail(struct scan *s, const char *what)
{
	if (s->err != NULL && s->errlen > 0)
		snprintf(s->err, s->errlen, "%s at offset %zu", what, (size_t)(s->p - s->start));
	return -1;
}

static void
skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
is_digit(const struct scan *s)
{
	return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static int
hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		int d = hex_value(p[i]);

		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

/* The length of the well-formed UTF-8 sequence at p (lead byte 0x80 or more), or 0. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], lo = 0x80, hi = 0xBF;
	size_t n;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0; /* overlong */
	else if (c == 0xED)
		hi = 0x9F; /* U+D800..U+DFFF */
	else if (c == 0xF0)
		lo = 0x90; /* overlong */
	else if (c == 0xF4)
		hi = 0x8F; /* past U+10FFFF */
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	}
	return n;
}

/* The escape at s->p (a backslash): its length, or 0 (the reason in s->err). */
static size_t
escape_len(struct scan *s, unsigned *cp)
{
	static const char simple[] = "\"\\/bfnrt";
	unsigned u, lo;

	if (s->end - s->p < 2) {
		fail(s, "unterminated string");
		return 0;
	}
	if (s->p[1] != 'u') {
		if (strchr(simple, s->p[1]) == NULL || s->p[1] == '\0') {
			fail(s, "invalid escape in a string");
			return 0;
		}
		*cp = s->p[1];
		return 2;
	}
	if (s->end - s->p < 6 || hex4(s->p + 2, &u) < 0) {
		fail(s, "invalid \\u escape in a string");
		return 0;
	}
	if (u == 0) {
		fail(s, "strings must not contain \\u0000");
		return 0;
	}
	if (u < 0xD800 || u > 0xDFFF) {
		*cp = u;
		return 6;
	}
	/* jsonb takes a surrogate only as the first of a pair. */
	if (u > 0xDBFF || s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' ||
	    hex4(s->p + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF) {
		fail(s, "unpaired surrogate in a \\u escape");
		return 0;
	}
	*cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
	return 12;
}

/* A string at s->p (its opening quote); s->p ends past the closing quote. */
static int
scan_string(struct scan *s)
{
	s->p++;
	while (s->p < s->end) {
		unsigned c = *s->p, cp;
		size_t n;

		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c == '\\') {
			if ((n = escape_len(s, &cp)) == 0)
				return -1;
		} else if (c < 0x20) {
			return fail(s, "control character in a string (it must be escaped)");
		} else if (c < 0x80) {
			n = 1;
		} else if ((n = utf8_len(s->p, s->end)) == 0) {
			return fail(s, "invalid UTF-8 in a string");
		}
		s->p += n;
	}
	return fail(s, "unterminated string");
}

static int
scan_number(struct scan *s)
{
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (!is_digit(s))
		return fail(s, "invalid number");
	if (*s->p == '0') {
		s->p++;
	} else {
		while (is_digit(s))
			s->p++;
	}
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (!is_digit(s))
			return fail(s, "invalid number (a digit must follow '.')");
		while (is_digit(s))
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!is_digit(s))
			return fail(s, "invalid number (a digit must follow the exponent)");
		while (is_digit(s))
			s->p++;
	}
	return 0;
}

static int
scan_literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, "unexpected character");
	s->p += n;
	return 0;
}

/* One scalar (string, number, literal) at s->p. */
static int
scan_scalar(struct scan *s)
{
	switch (*s->p) {
	case '"': return scan_string(s);
	case 't': return scan_literal(s, "true");
	case 'f': return scan_literal(s, "false");
	case 'n': return scan_literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s);
		return fail(s, "unexpected character");
	}
}

/* A member's name and its ':' at s->p. */
static int
scan_name(struct scan *s)
{
	skip_ws(s);
	if (s->p == s->end)
		return fail(s, "unexpected end of JSON input");
	if (*s->p != '"')
		return fail(s, "expected a member name (a string)");
	if (scan_string(s) < 0)
		return -1;
	skip_ws(s);
	if (s->p == s->end || *s->p != ':')
		return fail(s, "expected ':' after a member name");
	s->p++;
	return 0;
}

int
json_check(const char *buf, size_t len, char *err, size_t errlen)
{
	struct scan s = {(const unsigned char *)buf, (const unsigned char *)buf,
	    (const unsigned char *)buf + len, err, errlen};
	char ends[JSON_CHECK_MAX_DEPTH]; /* what ends each enclosing container: '}' or ']' */
	int depth = 0, top_null, want_name = 0;

	skip_ws(&s);
	top_null = (size_t)(s.end - s.p) >= 4 && memcmp(s.p, "null", 4) == 0;
	for (;;) {
		if (want_name && scan_name(&s) < 0)
			return -1;
		want_name = 0;
		skip_ws(&s);
		if (s.p == s.end)
			return fail(&s, "unexpected end of JSON input");
		if (*s.p == '{' || *s.p == '[') {
			if (depth == JSON_CHECK_MAX_DEPTH)
				return fail(&s, "nesting too deep");
			ends[depth++] = *s.p == '{' ? '}' : ']';
			s.p++;
			skip_ws(&s);
			if (s.p == s.end || *s.p != ends[depth - 1]) {
				want_name = ends[depth - 1] == '}';
				continue; /* the container's first element */
			}
			s.p++; /* empty */
			depth--;
		} else if (scan_scalar(&s) < 0) {
			return -1;
		}
		/* After a value: the end, its container's end, or a comma and the next element. */
		for (;;) {
			skip_ws(&s);
			if (depth == 0) {
				if (s.p != s.end)
					return fail(&s, "unexpected data after JSON value");
				if (top_null)
					return fail(&s, "a JSON null is not accepted here");
				return 0;
			}
			if (s.p == s.end)
				return fail(&s, "unexpected end of JSON input");
			if (*s.p != ends[depth - 1])
				break;
			s.p++;
			depth--;
		}
		if (*s.p != ',')
			return fail(&s,
			    ends[depth - 1] == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
		s.p++;
		want_name = ends[depth - 1] == '}';
	}
}

/* --- top-level members ----------------------------------------------------------------- */

static void
put_utf8(char *out, size_t *n, unsigned cp)
{
	if (cp < 0x80) {
		out[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*n)++] = (char)(0xC0 | cp >> 6);
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		out[(*n)++] = (char)(0xE0 | cp >> 12);
		out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*n)++] = (char)(0xF0 | cp >> 18);
		out[(*n)++] = (char)(0x80 | (cp >> 12 & 0x3F));
		out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	}
}

/* The checked string at s->p, unescaped (malloc'd); s->p ends past it. NULL if malformed. */
static char *
take_string(struct scan *s)
{
	static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
	const unsigned char *begin = s->p + 1;
	char *out;
	size_t n = 0;

	if (scan_string(s) < 0)
		return NULL;
	/* Unescaped text is never longer than its escaped form. */
	out = xmalloc((size_t)(s->p - begin));
	for (struct scan t = {begin, begin, s->p - 1, NULL, 0}; t.p < t.end;) {
		unsigned cp;
		size_t len;

		if (*t.p != '\\') {
			out[n++] = (char)*t.p++;
			continue;
		}
		len = escape_len(&t, &cp);
		if (len == 0)
			break; /* not reached: scan_string took it */
		if (len == 2 && strchr(from, (int)cp) != NULL)
			cp = (unsigned char)to[strchr(from, (int)cp) - from];
		put_utf8(out, &n, cp);
		t.p += len;
	}
	out[n] = '\0';
	return out;
}

/* Past one checked value at s->p. */
static int
skip_value(struct scan *s)
{
	int depth = 0;

	do {
		skip_ws(s);
		if (s->p == s->end)
			return -1;
		switch (*s->p) {
		case '{':
		case '[':
			depth++;
			s->p++;
			break;
		case '}':
		case ']':
			depth--;
			s->p++;
			break;
		case ',':
		case ':': s->p++; break;
		default:
			if (scan_scalar(s) < 0)
				return -1;
		}
	} while (depth > 0);
	return 0;
}

void
json_top_strings(const char *buf, size_t len, const char *const *names, int n, char **out)
{
	struct scan s = {(const unsigned char *)buf, (const unsigned char *)buf,
	    (const unsigned char *)buf + len, NULL, 0};

	for (int i = 0; i < n; i++)
		out[i] = NULL;
	skip_ws(&s);
	if (s.p == s.end || *s.p != '{')
		return;
	s.p++;
	for (;;) {
		const unsigned char *name;
		size_t name_len;
		int which = -1;

		skip_ws(&s);
		if (s.p == s.end || *s.p != '"')
			return;
		name = s.p + 1;
		if (scan_string(&s) < 0)
			return;
		name_len = (size_t)(s.p - 1 - name);
		if (memchr(name, '\\', name_len) != NULL) {
			/* An escaped name (rare): compare its unescaped text. */
			const unsigned char *after = s.p;
			char *key;

			s.p = name - 1;
			if ((key = take_string(&s)) == NULL)
				return;
			for (int i = 0; i < n && which < 0; i++)
				which = strcmp(key, names[i]) == 0 ? i : -1;
			free(key);
			s.p = after;
		} else {
			for (int i = 0; i < n && which < 0; i++) {
				if (strlen(names[i]) == name_len &&
				    memcmp(name, names[i], name_len) == 0)
					which = i;
			}
		}
		skip_ws(&s);
		if (s.p == s.end || *s.p != ':')
			return;
		s.p++;
		skip_ws(&s);
		if (s.p == s.end)
			return;
		if (which >= 0) {
			/* The last occurrence decides, as in json-c's tree and in jsonb. */
			free(out[which]);
			out[which] = NULL;
		}
		if (which >= 0 && *s.p == '"') {
			if ((out[which] = take_string(&s)) == NULL)
				return;
		} else if (skip_value(&s) < 0) {
			return;
		}
		skip_ws(&s);
		if (s.p == s.end || *s.p != ',')
			return;
		s.p++;
	}
}
