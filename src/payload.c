/* SPDX-License-Identifier: ISC */
/* Outbound bodies: the bytes a delivery carries, compact JSON in the shape its subscription wants.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json.h"
#include "hookd/payload.h"

/* 1 when key is a JavaScript array index: "0", or [1-9][0-9]* up to 2^32 - 2. */
static int
index_key(const char *k, uint64_t *v)
{
	uint64_t n = 0;
	const char *p = k;

	if (*p == '\0' || (*p == '0' && p[1] != '\0'))
		return 0;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > 4294967294u)
			return 0;
	}
	*v = n;
	return 1;
}

struct ikey {
	uint64_t n;
	const char *key;
};

static int
ikey_cmp(const void *a, const void *b)
{
	const struct ikey *x = a, *y = b;

	return x->n < y->n ? -1 : x->n > y->n;
}

struct json_object *
payload_js_order(struct json_object *o)
{
	if (json_object_is_type(o, json_type_array)) {
		size_t n = json_object_array_length(o);

		for (size_t i = 0; i < n; i++) {
			struct json_object *v = json_object_array_get_idx(o, i);
			struct json_object *nv = payload_js_order(json_object_get(v));

			if (nv != v)
				json_object_array_put_idx(o, i, nv);
			else
				json_object_put(v);
		}
		return o;
	}
	if (json_object_is_type(o, json_type_object)) {
		int n = json_object_object_length(o), nidx = 0, i = 0;
		const char **keys;
		struct ikey *idx;
		struct json_object *out;
		uint64_t num;

		if (n == 0)
			return o;
		keys = xcalloc((size_t)n, sizeof(*keys));
		idx = xcalloc((size_t)n, sizeof(*idx));
		json_object_object_foreach(o, k, v0)
		{
			(void)v0;
			keys[i++] = k;
			if (index_key(k, &num)) {
				idx[nidx].n = num;
				idx[nidx++].key = k;
			}
		}
		for (i = 0; i < n; i++) {
			struct json_object *v = json_object_object_get(o, keys[i]);
			struct json_object *nv = payload_js_order(json_object_get(v));

			if (nv != v)
				json_object_object_add(o, keys[i], nv);
			else
				json_object_put(v);
		}
		out = o;
		if (nidx > 0) {
			/* JavaScript lists array-index keys first, ascending: rebuild in that
			 * order. */
			qsort(idx, (size_t)nidx, sizeof(*idx), ikey_cmp);
			out = json_object_new_object();
			for (i = 0; i < nidx; i++)
				json_object_object_add(out, idx[i].key,
				    json_object_get(json_object_object_get(o, idx[i].key)));
			for (i = 0; i < n; i++) {
				if (!index_key(keys[i], &num))
					json_object_object_add(out, keys[i],
					    json_object_get(json_object_object_get(o, keys[i])));
			}
			json_object_put(o);
		}
		free(keys);
		free(idx);
		return out;
	}
	return o;
}

/* Parse exactly n decimal digits. */
static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int
payload_parse_time(const char *s, uint64_t *ms)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, os = 0, sign = 0;
	const char *p = s;
	int64_t t;

	if (s == NULL || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -1;
	if (*p == '.') {
		int n = 0;

		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++, n++) {
			if (n < 3)
				frac = frac * 10 + (*p - '0');
		}
		for (; n < 3; n++)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (digits(&p, 2, &oh))
			return -1;
		if (*p == ':')
			p++;
		if (*p >= '0' && *p <= '9') {
			if (digits(&p, 2, &om))
				return -1;
			if (*p == ':')
				p++;
			if (*p >= '0' && *p <= '9' && digits(&p, 2, &os))
				return -1;
		}
		if (oh > 23 || om > 59 || os > 59)
			return -1;
	}
	if (*p != '\0')
		return -1;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= sign * (oh * 3600 + om * 60 + os);
	if (t < 0)
		return -1;
	*ms = (uint64_t)t * 1000u + (uint64_t)frac;
	return 0;
}

int
payload_shared(const struct payload_message *m, enum payload_format format)
{
	return m->op == NULL || format == PAYLOAD_SUPABASE;
}

/* Append "key": to a body under construction (a comma first unless it is the first). */
static void
add_key(struct json_buf *b, const char *key)
{
	if (b->len > 1)
		json_buf_add(b, ",", 1);
	json_buf_string(b, key, strlen(key));
	json_buf_add(b, ":", 1);
}

static void
add_str(struct json_buf *b, const char *key, const char *val)
{
	add_key(b, key);
	if (val == NULL)
		json_buf_add(b, "null", 4);
	else
		json_buf_string(b, val, strlen(val));
}

/* Append a JSON value compacted, JavaScript's key order applied; takes o's reference. */
static void
add_value(struct json_buf *b, const char *key, struct json_object *o)
{
	char *text;
	size_t n;

	add_key(b, key);
	if (o == NULL) {
		json_buf_add(b, "null", 4);
		return;
	}
	o = payload_js_order(o);
	text = json_compact(o, &n);
	json_buf_add(b, text, n);
	free(text);
	json_object_put(o);
}

/*
 * Parse any JSON value; NULL text is JSON null. json_parse refuses a top-level null
 * (json-c has no object for it), so scalars are parsed inside [ ], where null is an
 * element like any other.
 */
static struct json_object *
parse_value(const char *text, size_t len, char *err, size_t errlen)
{
	struct json_object *o, *v;
	size_t i = 0;
	char *wrapped;

	if (text == NULL)
		return NULL;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i < len && (text[i] == '{' || text[i] == '[' || text[i] == '"'))
		return json_parse(text, len, err, errlen);
	wrapped = xmalloc(len + 3);
	wrapped[0] = '[';
	memcpy(wrapped + 1, text, len);
	wrapped[len + 1] = ']';
	wrapped[len + 2] = '\0';
	o = json_parse(wrapped, len + 2, err, errlen);
	free(wrapped);
	if (o == NULL)
		return NULL;
	if (json_object_array_length(o) != 1) {
		snprintf(err, errlen, "not one JSON value");
		json_object_put(o);
		return NULL;
	}
	v = json_object_get(json_object_array_get_idx(o, 0));
	json_object_put(o);
	if (v == NULL) /* JSON null: a value, not an error */
		err[0] = '\0';
	return v;
}

/* A change's JSON member: the caller's text if given, else data's member (a new reference). */
static struct json_object *
change_member(
    const char *text, struct json_object *data, const char *key, char *err, size_t errlen, int *bad)
{
	struct json_object *v;
	char why[128];

	if (text != NULL) {
		why[0] = '\0';
		v = parse_value(text, strlen(text), why, sizeof(why));
		if (v == NULL && why[0] != '\0') {
			snprintf(err, errlen, "%s is not valid JSON: %s", key, why);
			*bad = 1;
		}
		return v;
	}
	if (data != NULL && json_object_object_get_ex(data, key, &v))
		return json_object_get(v);
	return NULL;
}

static const char *
data_str(struct json_object *data, const char *key)
{
	return data != NULL ? json_get_str(data, key) : NULL;
}

char *
payload_build(const struct payload_message *m, enum payload_format format, const char *webhook_id,
    size_t *len, char *err, size_t errlen)
{
	struct json_buf b = {0};
	struct json_object *data, *record, *old;
	char why[128], iso[32];
	const char *ts, *table, *schema;
	uint64_t ms;
	int bad = 0;

	why[0] = '\0';
	data = parse_value(m->data, m->data_len, why, sizeof(why));
	if (data == NULL && why[0] != '\0') {
		snprintf(err, errlen, "the message's data is not valid JSON: %s", why);
		return NULL;
	}
	json_buf_add(&b, "{", 1);
	if (m->op == NULL) {
		add_str(&b, "id", m->id);
		add_str(&b, "event", m->event_type);
		time_iso8601(m->created_ms, iso, sizeof(iso));
		add_str(&b, "created_at", iso);
		add_value(&b, "data", data);
		goto done;
	}
	if (!json_object_is_type(data, json_type_object)) {
		json_object_put(data);
		data = NULL;
	}
	record = change_member(m->record, data, "record", err, errlen, &bad);
	old = change_member(m->old_record, data, "old_record", err, errlen, &bad);
	if (bad) {
		json_object_put(record);
		json_object_put(old);
		json_object_put(data);
		free(b.p);
		return NULL;
	}
	table = m->table != NULL ? m->table : data_str(data, "table");
	schema = m->schema != NULL ? m->schema : data_str(data, "schema");
	if (format == PAYLOAD_SUPABASE) {
		/*
		 * Seed 000's trigger sends row_to_json(NEW) and row_to_json(OLD), as Supabase's
		 * database webhooks do: for DELETE there is no NEW, so record is null and the
		 * deleted row is old_record. (Seed 004 sends the deleted row in both.)
		 */
		if (strcmp(m->op, "DELETE") == 0) {
			json_object_put(record);
			record = NULL;
		}
		add_str(&b, "type", m->op);
		add_str(&b, "table", table);
		add_str(&b, "schema", schema);
		add_value(&b, "record", record);
		add_value(&b, "old_record", old);
	} else {
		add_str(&b, "event", m->op);
		add_str(&b, "table", table);
		add_str(&b, "schema", schema);
		add_value(&b, "record", record);
		add_value(&b, "old_record", old);
		ts = m->timestamp != NULL ? m->timestamp : data_str(data, "timestamp");
		if (ts == NULL || payload_parse_time(ts, &ms) != 0)
			ms = m->created_ms;
		time_iso8601(ms, iso, sizeof(iso));
		add_str(&b, "timestamp", iso);
		add_str(&b, "webhook_id", webhook_id);
	}
	json_object_put(data);
done:
	json_buf_add(&b, "}", 1);
	if (len != NULL)
		*len = b.len;
	return b.p;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes, never NUL), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (s[0] == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07u;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

char *
payload_response_text(const char *body, size_t len, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)body;
	struct json_buf b = {0};
	size_t i = 0, run = 0;

	json_buf_add(&b, "", 0);
	if (body == NULL)
		len = 0;
	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);

		if (n > 0) {
			i += n;
			run += n;
			continue;
		}
		if (run > 0)
			json_buf_add(&b, body + i - run, run);
		run = 0;
		json_buf_add(&b, "\xef\xbf\xbd", 3);
		i++;
	}
	if (run > 0)
		json_buf_add(&b, body + i - run, run);
	if (outlen != NULL)
		*outlen = b.len;
	return b.p;
}
