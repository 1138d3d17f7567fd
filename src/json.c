/* SPDX-License-Identifier: ISC */
/* JSON helpers over json-c: strict parsing and JSON.stringify-compatible output. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json.h"

#define jbuf json_buf

void
json_buf_add(struct jbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

#define jb_add json_buf_add

static void
jb_puts(struct jbuf *b, const char *s)
{
	jb_add(b, s, strlen(s));
}

/* Reject strings holding NUL: json-c decodes \u0000 into the byte, jsonb refuses it. */
static int
has_nul(struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		return strlen(json_object_get_string(o)) != (size_t)json_object_get_string_len(o);
	case json_type_array: {
		size_t n = json_object_array_length(o);

		for (size_t i = 0; i < n; i++) {
			if (has_nul(json_object_array_get_idx(o, i)))
				return 1;
		}
		return 0;
	}
	case json_type_object: {
		struct json_object_iterator it = json_object_iter_begin(o);
		struct json_object_iterator end = json_object_iter_end(o);

		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
			if (has_nul(json_object_iter_peek_value(&it)))
				return 1;
		}
		return 0;
	}
	default: return 0;
	}
}

/* json-c's strict mode still takes single-quoted keys; JSON has no quote but '"'. */
static int
stray_quote(const char *buf, size_t len, size_t *at)
{
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		if (in_string) {
			if (buf[i] == '\\')
				i++;
			else if (buf[i] == '"')
				in_string = 0;
		} else if (buf[i] == '"') {
			in_string = 1;
		} else if (buf[i] == '\'') {
			*at = i;
			return 1;
		}
	}
	return 0;
}

struct json_object *
json_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error jerr;
	size_t used;

	if (len > (size_t)INT32_MAX) {
		snprintf(err, errlen, "body too large");
		return NULL;
	}
	if (stray_quote(buf, len, &used)) {
		snprintf(err, errlen, "unexpected character at offset %zu", used);
		return NULL;
	}
	tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	used = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue && o == NULL) {
		/* A number or literal at the very end waits for a delimiter: give it one. */
		o = json_tokener_parse_ex(tok, " ", 1);
		jerr = json_tokener_get_error(tok);
		used = len;
	}
	if (jerr == json_tokener_continue) {
		snprintf(err, errlen, "unexpected end of JSON input");
		goto fail;
	}
	if (o == NULL && jerr == json_tokener_success) {
		/* json-c represents null by NULL: say so rather than call it malformed. */
		snprintf(err, errlen, "a JSON null is not accepted here");
		goto fail;
	}
	if (jerr != json_tokener_success) {
		snprintf(err, errlen, "%s at offset %zu", json_tokener_error_desc(jerr), used);
		goto fail;
	}
	for (; used < len; used++) {
		char c = buf[used];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			snprintf(
			    err, errlen, "unexpected data after JSON value at offset %zu", used);
			goto fail;
		}
	}
	if (has_nul(o)) {
		snprintf(err, errlen, "strings must not contain \\u0000");
		goto fail;
	}
	json_tokener_free(tok);
	return o;
fail:
	json_object_put(o);
	json_tokener_free(tok);
	return NULL;
}

void
json_format_number(double d, char *buf, size_t len)
{
	char tmp[40], digits[24];
	int prec, exp10, k, n;
	char *e, *p;
	size_t nd = 0;

	if (!isfinite(d)) {
		snprintf(buf, len, "null");
		return;
	}
	if (d == 0) {
		snprintf(buf, len, "0");
		return;
	}
	/* The shortest precision that reads back as the same double. */
	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	e = strchr(tmp, 'e');
	exp10 = atoi(e + 1);
	for (p = tmp; p < e; p++) {
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	}
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	k = (int)nd;
	n = exp10 + 1;

	p = buf;
	if (d < 0)
		*p++ = '-';
	len -= (size_t)(p - buf);
	if (k <= n && n <= 21) {
		snprintf(p, len, "%s%0*d", digits, n - k, 0);
		if (n == k)
			p[k] = '\0';
	} else if (0 < n && n <= 21) {
		snprintf(p, len, "%.*s.%s", n, digits, digits + n);
	} else if (-6 < n && n <= 0) {
		snprintf(p, len, "0.%0*d%s", -n, 0, digits);
		if (n == 0)
			snprintf(p, len, "0.%s", digits);
	} else if (k == 1) {
		snprintf(p, len, "%ce%c%d", digits[0], n - 1 >= 0 ? '+' : '-', abs(n - 1));
	} else {
		snprintf(p, len, "%c.%se%c%d", digits[0], digits + 1, n - 1 >= 0 ? '+' : '-',
		    abs(n - 1));
	}
}

void
json_buf_string(struct jbuf *b, const char *s, size_t n)
{
	size_t start = 0;

	jb_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[8];

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				snprintf(u, sizeof(u), "\\u%04x", c);
				esc = u;
			}
		}
		if (esc != NULL) {
			jb_add(b, s + start, i - start);
			jb_puts(b, esc);
			start = i + 1;
		}
	}
	jb_add(b, s + start, n - start);
	jb_add(b, "\"", 1);
}

static void
compact_value(struct jbuf *b, struct json_object *o)
{
	char num[40];

	switch (json_object_get_type(o)) {
	case json_type_null: jb_puts(b, "null"); break;
	case json_type_boolean: jb_puts(b, json_object_get_boolean(o) ? "true" : "false"); break;
	case json_type_int: {
		int64_t v = json_object_get_int64(o);

		/* JavaScript reads integers as doubles: past 2^53 print what it would. */
		if (v > (INT64_C(1) << 53) || v < -(INT64_C(1) << 53) ||
		    (v == INT64_MAX && json_object_get_uint64(o) > (uint64_t)INT64_MAX))
			json_format_number(
			    v == INT64_MAX ? (double)json_object_get_uint64(o) : (double)v, num,
			    sizeof(num));
		else
			snprintf(num, sizeof(num), "%lld", (long long)v);
		jb_puts(b, num);
		break;
	}
	case json_type_double:
		json_format_number(json_object_get_double(o), num, sizeof(num));
		jb_puts(b, num);
		break;
	case json_type_string:
		json_buf_string(
		    b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
		break;
	case json_type_array: {
		size_t n = json_object_array_length(o);

		jb_add(b, "[", 1);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				jb_add(b, ",", 1);
			compact_value(b, json_object_array_get_idx(o, i));
		}
		jb_add(b, "]", 1);
		break;
	}
	case json_type_object: {
		struct json_object_iterator it = json_object_iter_begin(o);
		struct json_object_iterator end = json_object_iter_end(o);
		int first = 1;

		jb_add(b, "{", 1);
		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
			const char *k = json_object_iter_peek_name(&it);

			if (!first)
				jb_add(b, ",", 1);
			first = 0;
			json_buf_string(b, k, strlen(k));
			jb_add(b, ":", 1);
			compact_value(b, json_object_iter_peek_value(&it));
		}
		jb_add(b, "}", 1);
		break;
	}
	}
}

char *
json_compact(struct json_object *o, size_t *len)
{
	struct jbuf b = {0};

	compact_value(&b, o);
	if (len != NULL)
		*len = b.len;
	return b.p;
}

const char *
json_get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int
json_get_int(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return -1;
	if (json_object_is_type(v, json_type_int)) {
		*out = json_object_get_int64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		if (d != floor(d) || d > 9.0e15 || d < -9.0e15)
			return -1;
		*out = (int64_t)d;
		return 0;
	}
	return -1;
}

int
json_get_bool(struct json_object *o, const char *key, int *out)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return -1;
	*out = json_object_get_boolean(v);
	return 0;
}

struct json_object *
json_get_obj(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

struct json_object *
json_get_arr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

void
json_set_str(struct json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, val ? json_object_new_string(val) : NULL);
}

void
json_set_int(struct json_object *o, const char *key, int64_t val)
{
	json_object_object_add(o, key, json_object_new_int64(val));
}

void
json_set_bool(struct json_object *o, const char *key, int val)
{
	json_object_object_add(o, key, json_object_new_boolean(val ? 1 : 0));
}

void
json_set_double(struct json_object *o, const char *key, double val)
{
	json_object_object_add(o, key, json_object_new_double(val));
}

void
json_set_obj(struct json_object *o, const char *key, struct json_object *val)
{
	json_object_object_add(o, key, val);
}

/* Next path segment of p into seg (NUL-terminated); returns the rest, or NULL when malformed. */
static const char *
path_next(const char *p, char *seg, size_t seglen, int *is_index)
{
	size_t n = 0;

	*is_index = 0;
	if (*p == '.')
		p++;
	if (*p == '[') {
		p++;
		while (*p >= '0' && *p <= '9' && n + 1 < seglen)
			seg[n++] = *p++;
		if (*p != ']' || n == 0)
			return NULL;
		seg[n] = '\0';
		*is_index = 1;
		return p + 1;
	}
	while (*p != '\0' && *p != '.' && *p != '[' && n + 1 < seglen)
		seg[n++] = *p++;
	if (n == 0 || (*p != '\0' && *p != '.' && *p != '['))
		return NULL;
	seg[n] = '\0';
	return p;
}

struct json_object *
json_path(struct json_object *o, const char *path)
{
	const char *p = path;
	char seg[256];

	if (*p == '$')
		p++;
	while (o != NULL && *p != '\0') {
		int is_index, all_digits = 1;

		p = path_next(p, seg, sizeof(seg), &is_index);
		if (p == NULL)
			return NULL;
		for (const char *c = seg; *c != '\0'; c++)
			all_digits &= *c >= '0' && *c <= '9';
		if (json_object_is_type(o, json_type_array) && all_digits) {
			size_t i = strtoul(seg, NULL, 10);

			o = i < json_object_array_length(o) ? json_object_array_get_idx(o, i)
			                                    : NULL;
		} else if (!is_index && json_object_is_type(o, json_type_object)) {
			if (!json_object_object_get_ex(o, seg, &o))
				return NULL;
		} else {
			return NULL;
		}
	}
	return o;
}

int
json_path_valid(const char *path)
{
	const char *p = path;
	char seg[256];
	int is_index;

	if (*p == '$')
		p++;
	if (*p == '\0')
		return 0;
	while (*p != '\0') {
		p = path_next(p, seg, sizeof(seg), &is_index);
		if (p == NULL)
			return 0;
	}
	return 1;
}

char *
json_scalar_text(struct json_object *o)
{
	char num[40];

	switch (json_object_get_type(o)) {
	case json_type_string: return xstrdup(json_object_get_string(o));
	case json_type_int:
		snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(o));
		return xstrdup(num);
	case json_type_double:
		json_format_number(json_object_get_double(o), num, sizeof(num));
		return xstrdup(num);
	case json_type_boolean: return xstrdup(json_object_get_boolean(o) ? "true" : "false");
	default: return NULL;
	}
}
