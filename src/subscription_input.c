/* SPDX-License-Identifier: ISC */
/* Subscription and publish API input: JSON bodies checked field by field into stored values. */
#include "config.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "hookd/json.h"
#include "hookd/netguard.h"
#include "hookd/sign.h"
#include "hookd/subscription_input.h"

#define NAME_MAX_LEN        256
#define DESCRIPTION_MAX_LEN 4096
#define URL_MAX_LEN         2048
#define EVENTS_MAX          100
#define SCHEDULE_MAX        100
#define HEADERS_MAX         50
#define HEADER_NAME_MAX     256
#define HEADER_VALUE_MAX    4096
#define ALLOWLIST_MAX       100
#define IDENT_MAX           63
#define MESSAGE_ID_MAX      128
#define DELAY_MAX           604800.0 /* a week */
#define ROTATE_MAX          (365 * 86400)

static int fail_field(struct subscription_input_error *err, const char *field, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* Fill err and return -1. */
static int
fail_field(struct subscription_input_error *err, const char *field, const char *fmt, ...)
{
	va_list ap;

	snprintf(err->field, sizeof(err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

static int
is_null(struct json_object *v)
{
	return v == NULL || json_object_is_type(v, json_type_null);
}

/* An integral JSON number into *out; -1 for anything else. */
static int
int_value(struct json_object *v, int64_t *out)
{
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

/* A finite JSON number into *out; -1 for anything else. */
static int
number_value(struct json_object *v, double *out)
{
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return -1;
	*out = json_object_get_double(v);
	return isfinite(*out) ? 0 : -1;
}

/* 1 when s holds no control characters (a pasted newline is a common mistake). */
static int
printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	}
	return 1;
}

static void
free_strings(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void
subscription_input_clear(struct subscription_input *in)
{
	free(in->name);
	free(in->description);
	free(in->url);
	wipe_free(in->secret);
	json_object_put(in->events);
	free(in->schedule);
	json_object_put(in->headers);
	free_strings(in->ip_allowlist, in->nallow);
	memset(in, 0, sizeof(*in));
}

/* --- names --------------------------------------------------------------------------- */

static int
type_char(char c, int first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
		return 1;
	return !first && (c == '.' || c == ':' || c == '/' || c == '-');
}

int
subscription_event_type_valid(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		if (!type_char(s[n], n == 0))
			return 0;
	}
	return n >= 1 && n <= SUB_EVENT_TYPE_MAX_LEN;
}

int
subscription_pattern_valid(const char *s)
{
	size_t n;
	char buf[SUB_EVENT_TYPE_MAX_LEN + 1];

	if (s == NULL)
		return 0;
	if (strcmp(s, "*") == 0)
		return 1;
	n = strlen(s);
	if (n > 2 && strcmp(s + n - 2, ".*") == 0) {
		if (n - 2 > SUB_EVENT_TYPE_MAX_LEN)
			return 0;
		memcpy(buf, s, n - 2);
		buf[n - 2] = '\0';
		return subscription_event_type_valid(buf);
	}
	return subscription_event_type_valid(s);
}

/* A SQL identifier as a table or schema name is written unquoted. */
static int
ident_valid(const char *s, size_t n)
{
	if (n == 0 || n > IDENT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
		        (i > 0 && ((c >= '0' && c <= '9') || c == '$'))))
			return 0;
	}
	return 1;
}

/* "table" or "schema.table". */
static int
table_valid(const char *s)
{
	const char *dot = strchr(s, '.');

	if (dot == NULL)
		return ident_valid(s, strlen(s));
	return ident_valid(s, (size_t)(dot - s)) && ident_valid(dot + 1, strlen(dot + 1));
}

int
publish_message_id_valid(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		        c == '_' || c == '.' || c == ':' || c == '-'))
			return 0;
	}
	return n >= 1 && n <= MESSAGE_ID_MAX;
}

static const char *const format_names[] = {
    [PAYLOAD_DEFAULT] = "default",
    [PAYLOAD_FLUXBASE] = "fluxbase",
    [PAYLOAD_SUPABASE] = "supabase",
};

int
subscription_payload_format_parse(const char *s, enum payload_format *out)
{
	for (size_t i = 0; s != NULL && i < ARRAY_SIZE(format_names); i++) {
		if (strcmp(s, format_names[i]) == 0) {
			*out = (enum payload_format)i;
			return 0;
		}
	}
	return -1;
}

const char *
subscription_payload_format_name(enum payload_format f)
{
	return (size_t)f < ARRAY_SIZE(format_names) ? format_names[f] : "default";
}

/* --- one parser per field -------------------------------------------------------------- */

typedef int (*field_fn)(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err);

/* A string field with a length bound; NULL allowed (and kept) when nullable. */
static int
string_field(const char *name, struct json_object *v, int nullable, size_t max, char **out,
    struct subscription_input_error *err)
{
	const char *s;

	if (is_null(v)) {
		if (!nullable)
			return fail_field(err, name, "%s is required", name);
		free(*out);
		*out = NULL;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail_field(
		    err, name, "%s must be a string%s", name, nullable ? " or null" : "");
	s = json_object_get_string(v);
	if (strlen(s) > max)
		return fail_field(err, name, "%s is longer than %zu bytes", name, max);
	free(*out);
	*out = xstrdup(s);
	return 0;
}

static int
parse_name(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	if (string_field(name, v, 0, NAME_MAX_LEN, &in->name, err) != 0)
		return -1;
	if (in->name[0] == '\0' || !printable(in->name))
		return fail_field(err, name, "name must be non-empty, without control characters");
	return 0;
}

static int
parse_description(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	return string_field(name, v, 1, DESCRIPTION_MAX_LEN, &in->description, err);
}

static int
parse_url(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	struct target_url u;
	char why[200];

	if (string_field(name, v, 0, URL_MAX_LEN, &in->url, err) != 0)
		return -1;
	if (target_url_parse(in->url, &u, why, sizeof(why)) != 0)
		return fail_field(err, name, "url: %s", why);
	target_url_free(&u);
	return 0;
}

int
subscription_secret_check(const char *secret, char *why, size_t whylen)
{
	unsigned char key[SIGN_KEY_MAX];
	size_t keylen = sizeof(key), len = strlen(secret);
	int rc;

	if (len == 0 || len > SUB_SECRET_MAX_LEN || !printable(secret)) {
		snprintf(why, whylen, "must be 1 to %d bytes without control characters",
		    SUB_SECRET_MAX_LEN);
		return -1;
	}
	rc = sign_secret_key(secret, key, &keylen);
	sodium_memzero(key, sizeof(key));
	if (rc != 0) {
		if (strncmp(secret, "whsec_", 6) == 0)
			snprintf(why, whylen, "must be \"whsec_\" followed by standard base64");
		else
			snprintf(why, whylen, "must be at most %d bytes (or base64 of at most %d)",
			    SIGN_KEY_MAX, SIGN_KEY_MAX);
		return -1;
	}
	return 0;
}

static int
parse_secret(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	char why[200];

	wipe_free(in->secret);
	in->secret = NULL;
	if (is_null(v))
		return 0; /* keep the stored secrets (or generate one on create) */
	if (!json_object_is_type(v, json_type_string))
		return fail_field(err, name, "secret must be a string");
	if (subscription_secret_check(json_object_get_string(v), why, sizeof(why)) != 0)
		return fail_field(err, name, "secret %s", why);
	in->secret = xstrdup(json_object_get_string(v));
	return 0;
}

static int
parse_enabled(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	if (is_null(v)) {
		in->enabled = 1;
		return 0;
	}
	if (!json_object_is_type(v, json_type_boolean))
		return fail_field(err, name, "%s must be true or false", name);
	in->enabled = json_object_get_boolean(v);
	return 0;
}

/* One {"table": ..., "operations": [...]} filter, normalized into *out. */
static struct json_object *
table_filter(struct json_object *v, int i, struct subscription_input_error *err)
{
	static const char *const ops[] = {"INSERT", "UPDATE", "DELETE"};
	struct json_object *table = NULL, *opv = NULL, *out, *list;
	int have[3] = {0, 0, 0};
	char field[64];

	json_object_object_foreach(v, key, val)
	{
		if (strcmp(key, "table") == 0) {
			table = val;
		} else if (strcmp(key, "operations") == 0) {
			opv = val;
		} else {
			snprintf(field, sizeof(field), "events[%d].%.32s", i, key);
			fail_field(err, field,
			    "unknown field %s (a table filter has table and "
			    "operations)",
			    field);
			return NULL;
		}
	}
	snprintf(field, sizeof(field), "events[%d].table", i);
	if (table == NULL || !json_object_is_type(table, json_type_string) ||
	    !table_valid(json_object_get_string(table))) {
		fail_field(err, field,
		    "%s must be a table name such as \"users\" or "
		    "\"public.users\"",
		    field);
		return NULL;
	}
	snprintf(field, sizeof(field), "events[%d].operations", i);
	if (is_null(opv)) {
		have[0] = have[1] = have[2] = 1;
	} else {
		size_t n;

		if (!json_object_is_type(opv, json_type_array) ||
		    (n = json_object_array_length(opv)) == 0) {
			fail_field(err, field,
			    "%s must be a non-empty array of \"INSERT\", "
			    "\"UPDATE\", \"DELETE\"",
			    field);
			return NULL;
		}
		for (size_t k = 0; k < n; k++) {
			struct json_object *e = json_object_array_get_idx(opv, k);
			const char *s = json_object_is_type(e, json_type_string)
			                    ? json_object_get_string(e)
			                    : "";
			size_t j;

			for (j = 0; j < ARRAY_SIZE(ops) && strcasecmp(s, ops[j]) != 0; j++)
				;
			if (j == ARRAY_SIZE(ops)) {
				fail_field(err, field,
				    "%s[%zu] must be \"INSERT\", \"UPDATE\" or "
				    "\"DELETE\"",
				    field, k);
				return NULL;
			}
			have[j] = 1;
		}
	}
	out = json_object_new_object();
	json_set_str(out, "table", json_object_get_string(table));
	list = json_object_new_array();
	for (size_t j = 0; j < ARRAY_SIZE(ops); j++) {
		if (have[j])
			json_object_array_add(list, json_object_new_string(ops[j]));
	}
	json_set_obj(out, "operations", list);
	return out;
}

static int
parse_events(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	struct json_object *out;
	size_t n;

	if (is_null(v)) {
		json_object_put(in->events);
		in->events = json_object_new_array();
		json_object_array_add(in->events, json_object_new_string("*"));
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return fail_field(err, name,
		    "events must be an array of event-type patterns (\"order.created\", "
		    "\"order.*\", \"*\") and table filters ({\"table\": \"users\", "
		    "\"operations\": [...]})");
	n = json_object_array_length(v);
	if (n == 0)
		return fail_field(
		    err, name, "events must not be empty; [\"*\"] takes every event (the default)");
	if (n > EVENTS_MAX)
		return fail_field(err, name, "at most %d events", EVENTS_MAX);
	out = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i), *f;
		char field[32];

		snprintf(field, sizeof(field), "events[%zu]", i);
		if (json_object_is_type(e, json_type_string)) {
			if (!subscription_pattern_valid(json_object_get_string(e))) {
				json_object_put(out);
				return fail_field(err, field,
				    "%s must be \"*\", an event type of up to %d letters, "
				    "digits and \"_.:/-\" (\"order.created\"), or one followed "
				    "by \".*\" (\"order.*\")",
				    field, SUB_EVENT_TYPE_MAX_LEN);
			}
			json_object_array_add(
			    out, json_object_new_string(json_object_get_string(e)));
		} else if (json_object_is_type(e, json_type_object)) {
			f = table_filter(e, (int)i, err);
			if (f == NULL) {
				json_object_put(out);
				return -1;
			}
			json_object_array_add(out, f);
		} else {
			json_object_put(out);
			return fail_field(err, field,
			    "%s must be a pattern string or a table filter object", field);
		}
	}
	json_object_put(in->events);
	in->events = out;
	return 0;
}

static int
int_field(const char *name, struct json_object *v, int64_t def, int64_t min, int64_t max,
    int64_t *out, struct subscription_input_error *err)
{
	int64_t n = def;

	if (!is_null(v) && (int_value(v, &n) != 0 || n < min || n > max))
		return fail_field(err, name, "%s must be an integer from %lld to %lld", name,
		    (long long)min, (long long)max);
	*out = n;
	return 0;
}

static int
number_field(const char *name, struct json_object *v, double def, double min, double max,
    double *out, struct subscription_input_error *err)
{
	double d = def;

	if (!is_null(v) && (number_value(v, &d) != 0 || d < min || d > max))
		return fail_field(err, name, "%s must be a number from %g to %g", name, min, max);
	*out = d;
	return 0;
}

static int
parse_max_retries(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	return int_field(name, v, SUB_DEFAULT_MAX_RETRIES, 0, 100, &in->max_retries, err);
}

static int
parse_timeout(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	return int_field(name, v, SUB_DEFAULT_TIMEOUT, 1, 300, &in->timeout_seconds, err);
}

static int
parse_backoff(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	return number_field(name, v, SUB_DEFAULT_BACKOFF, 0, 86400, &in->backoff_s, err);
}

static int
parse_multiplier(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	return number_field(name, v, SUB_DEFAULT_MULTIPLIER, 1, 100, &in->multiplier, err);
}

static int
parse_max_delay(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	return number_field(name, v, SUB_DEFAULT_MAX_DELAY, 0, DELAY_MAX, &in->max_delay_s, err);
}

static int
parse_jitter(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	return number_field(name, v, SUB_DEFAULT_JITTER, 0, 1, &in->jitter, err);
}

static int
parse_schedule(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	size_t n;
	double *s;

	free(in->schedule);
	in->schedule = NULL;
	in->nschedule = 0;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_array) || (n = json_object_array_length(v)) == 0 ||
	    n > SCHEDULE_MAX)
		return fail_field(err, name,
		    "retry_schedule must be an array of 1 to %d delays in "
		    "seconds, or null",
		    SCHEDULE_MAX);
	s = xcalloc(n, sizeof(*s));
	for (size_t i = 0; i < n; i++) {
		if (number_value(json_object_array_get_idx(v, i), &s[i]) != 0 || s[i] < 0 ||
		    s[i] > DELAY_MAX) {
			free(s);
			return fail_field(err, name,
			    "retry_schedule[%zu] must be a number of seconds from 0 to %g", i,
			    DELAY_MAX);
		}
	}
	in->schedule = s;
	in->nschedule = (int)n;
	return 0;
}

/* Headers hookd writes itself, or that would break the request's framing. */
static const char *const reserved_headers[] = {
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-webhook-signature",
    "x-webhook-timestamp",
    "x-webhook-id",
    "x-fluxbase-signature",
};

static int
token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
parse_headers(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	struct json_object *out;
	int n = 0;

	if (is_null(v)) {
		json_object_put(in->headers);
		in->headers = json_object_new_object();
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return fail_field(err, name,
		    "headers must be an object of header names to string "
		    "values");
	json_object_object_foreach(v, key, val)
	{
		size_t klen = strlen(key);
		const char *s;

		if (++n > HEADERS_MAX)
			return fail_field(err, name, "at most %d headers", HEADERS_MAX);
		if (klen == 0 || klen > HEADER_NAME_MAX)
			return fail_field(
			    err, name, "a header name must be 1 to %d characters", HEADER_NAME_MAX);
		for (size_t i = 0; i < klen; i++) {
			if (!token_char(key[i]))
				return fail_field(err, name,
				    "header name \"%.64s\" is not a valid "
				    "HTTP token",
				    key);
		}
		for (size_t i = 0; i < ARRAY_SIZE(reserved_headers); i++) {
			if (strcasecmp(key, reserved_headers[i]) == 0)
				return fail_field(err, name,
				    "header %.64s is set by hookd (or is hop-by-hop) and may "
				    "not be given",
				    key);
		}
		if (!json_object_is_type(val, json_type_string))
			return fail_field(
			    err, name, "the value of header %.64s must be a string", key);
		s = json_object_get_string(val);
		if (strlen(s) > HEADER_VALUE_MAX)
			return fail_field(err, name,
			    "the value of header %.64s is longer than %d "
			    "bytes",
			    key, HEADER_VALUE_MAX);
		for (const char *c = s; *c != '\0'; c++) {
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				return fail_field(err, name,
				    "the value of header %.64s holds control characters", key);
		}
		/* The same header twice in other cases would be sent twice. */
		json_object_object_foreach(v, k2, v2)
		{
			(void)v2;
			if (k2 == key)
				break;
			if (strcasecmp(k2, key) == 0)
				return fail_field(err, name, "header %.64s is given twice", key);
		}
	}
	out = NULL;
	if (json_object_deep_copy(v, &out, NULL) != 0)
		abort();
	json_object_put(in->headers);
	in->headers = out;
	return 0;
}

static int
parse_ip_allowlist(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	size_t n;

	free_strings(in->ip_allowlist, in->nallow);
	in->ip_allowlist = NULL;
	in->nallow = 0;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return fail_field(err, name, "%s must be an array of CIDR networks, or null", name);
	n = json_object_array_length(v);
	if (n == 0)
		return fail_field(err, name,
		    "%s must not be empty; null puts no limit on where "
		    "the url resolves",
		    name);
	if (n > ALLOWLIST_MAX)
		return fail_field(err, name, "at most %d networks", ALLOWLIST_MAX);
	in->ip_allowlist = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		struct cidr c;
		char buf[CIDR_STRLEN];

		if (!json_object_is_type(e, json_type_string) ||
		    cidr_parse(json_object_get_string(e), &c) != 0)
			return fail_field(err, name,
			    "%s[%zu] is not a network such as \"203.0.113.0/24\" or "
			    "\"2001:db8::/32\" (bits past the prefix must be zero)",
			    name, i);
		cidr_format(&c, buf, sizeof(buf));
		in->ip_allowlist[in->nallow++] = xstrdup(buf);
	}
	return 0;
}

static int
parse_signature_headers(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	static const char *const sets[] = {"standard", "omnisales", "fluxbase"};
	static const unsigned bits[] = {SIGN_STANDARD, SIGN_OMNISALES, SIGN_FLUXBASE};
	size_t n;

	in->sign_flags = SIGN_STANDARD;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_array) || (n = json_object_array_length(v)) > 8)
		return fail_field(err, name,
		    "signature_headers must be an array of \"standard\", "
		    "\"omnisales\", \"fluxbase\"");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		const char *s =
		    json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
		size_t j;

		for (j = 0; j < ARRAY_SIZE(sets) && strcasecmp(s, sets[j]) != 0; j++)
			;
		if (j == ARRAY_SIZE(sets))
			return fail_field(err, name,
			    "signature_headers[%zu] must be \"standard\", "
			    "\"omnisales\" or \"fluxbase\"",
			    i);
		in->sign_flags |= bits[j];
	}
	return 0;
}

static int
parse_payload_format(struct subscription_input *in, struct json_object *v, const char *name,
    struct subscription_input_error *err)
{
	if (is_null(v)) {
		in->format = PAYLOAD_DEFAULT;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string) ||
	    subscription_payload_format_parse(json_object_get_string(v), &in->format) != 0)
		return fail_field(err, name,
		    "payload_format must be \"default\", \"fluxbase\" or "
		    "\"supabase\"");
	return 0;
}

/* The fields, with the name each API gives them (NULL: not in that API). */
static const struct {
	const char *v1, *omnisales;
	unsigned bit;
	field_fn fn;
} fields[] = {
    {"name", "name", SUB_F_NAME, parse_name},
    {"description", "description", SUB_F_DESCRIPTION, parse_description},
    {"url", "url", SUB_F_URL, parse_url},
    {"secret", "secret", SUB_F_SECRET, parse_secret},
    {"enabled", "is_active", SUB_F_ENABLED, parse_enabled},
    {"events", "events", SUB_F_EVENTS, parse_events},
    {"max_retries", "max_retries", SUB_F_MAX_RETRIES, parse_max_retries},
    {"timeout_seconds", "timeout_seconds", SUB_F_TIMEOUT, parse_timeout},
    {"retry_backoff_seconds", "retry_backoff_seconds", SUB_F_BACKOFF, parse_backoff},
    {"retry_multiplier", "retry_multiplier", SUB_F_MULTIPLIER, parse_multiplier},
    {"retry_max_delay_seconds", "retry_max_delay_seconds", SUB_F_MAX_DELAY, parse_max_delay},
    {"retry_jitter", "retry_jitter", SUB_F_JITTER, parse_jitter},
    {"retry_schedule", "retry_schedule", SUB_F_SCHEDULE, parse_schedule},
    {"headers", "headers", SUB_F_HEADERS, parse_headers},
    {"ip_allowlist", "ip_whitelist", SUB_F_IP_ALLOWLIST, parse_ip_allowlist},
    {"signature_headers", NULL, SUB_F_SIGNATURE_HEADERS, parse_signature_headers},
    {"payload_format", "payload_format", SUB_F_PAYLOAD_FORMAT, parse_payload_format},
};

/* Fields the APIs show but nobody writes. */
static const char *const read_only[] = {"id", "api", "secrets", "failure_streak", "disabled_reason",
    "disabled_at", "created_at", "updated_at", NULL};

int
subscription_input_parse(struct json_object *body, enum subscription_input_mode mode,
    enum subscription_api api, struct subscription_input *in, struct subscription_input_error *err)
{
	memset(in, 0, sizeof(*in));
	memset(err, 0, sizeof(*err));
	if (body == NULL || !json_object_is_type(body, json_type_object))
		return fail_field(err, "", "the body must be a JSON object");
	/* Every field a PUT or POST leaves out takes its default: parse "null" for it. */
	if (mode != SUB_INPUT_PATCH) {
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
			if (fields[i].bit & (SUB_F_NAME | SUB_F_URL | SUB_F_SECRET))
				continue;
			if (fields[i].fn(in, NULL, fields[i].v1, err) != 0)
				goto fail; /* a default that does not parse is a bug */
		}
	}
	json_object_object_foreach(body, key, val)
	{
		size_t i;

		for (i = 0; i < ARRAY_SIZE(fields); i++) {
			const char *nm = api == SUB_API_V1 ? fields[i].v1 : fields[i].omnisales;

			if (nm != NULL && strcmp(nm, key) == 0)
				break;
		}
		if (i == ARRAY_SIZE(fields)) {
			int ro = 0;

			for (int j = 0; read_only[j] != NULL; j++)
				ro |= strcmp(read_only[j], key) == 0;
			if (ro && api == SUB_API_OMNISALES)
				continue;
			if (ro)
				fail_field(err, key, "%s is read-only", key);
			else
				fail_field(err, key, "unknown field \"%.64s\"", key);
			goto fail;
		}
		if (fields[i].fn(in, val, key, err) != 0)
			goto fail;
		if (fields[i].bit != SUB_F_SECRET || in->secret != NULL)
			in->given |= fields[i].bit;
	}
	if (mode != SUB_INPUT_PATCH) {
		if (in->name == NULL) {
			fail_field(err, "name", "name is required");
			goto fail;
		}
		if (in->url == NULL) {
			fail_field(err, "url", "url is required");
			goto fail;
		}
	}
	return 0;
fail:
	subscription_input_clear(in);
	return -1;
}

#define TAKE(field)                                                                                \
	do {                                                                                       \
		__typeof__(base->field) tmp_ = base->field;                                        \
		base->field = patch->field;                                                        \
		patch->field = tmp_;                                                               \
	} while (0)

void
subscription_input_merge(struct subscription_input *base, struct subscription_input *patch)
{
	unsigned g = patch->given;

	/* Swap rather than copy: whatever base had is freed with patch. */
	if (g & SUB_F_NAME)
		TAKE(name);
	if (g & SUB_F_DESCRIPTION)
		TAKE(description);
	if (g & SUB_F_URL)
		TAKE(url);
	if (g & SUB_F_SECRET)
		TAKE(secret);
	if (g & SUB_F_ENABLED)
		TAKE(enabled);
	if (g & SUB_F_EVENTS)
		TAKE(events);
	if (g & SUB_F_MAX_RETRIES)
		TAKE(max_retries);
	if (g & SUB_F_TIMEOUT)
		TAKE(timeout_seconds);
	if (g & SUB_F_BACKOFF)
		TAKE(backoff_s);
	if (g & SUB_F_MULTIPLIER)
		TAKE(multiplier);
	if (g & SUB_F_MAX_DELAY)
		TAKE(max_delay_s);
	if (g & SUB_F_JITTER)
		TAKE(jitter);
	if (g & SUB_F_SCHEDULE) {
		TAKE(schedule);
		TAKE(nschedule);
	}
	if (g & SUB_F_HEADERS)
		TAKE(headers);
	if (g & SUB_F_IP_ALLOWLIST) {
		TAKE(ip_allowlist);
		TAKE(nallow);
	}
	if (g & SUB_F_SIGNATURE_HEADERS)
		TAKE(sign_flags);
	if (g & SUB_F_PAYLOAD_FORMAT)
		TAKE(format);
	base->given |= g;
}

#undef TAKE

/* Fill a sockaddr from an IP literal; -1 when it is not one. */
static int
literal_addr(const char *host, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

int
subscription_input_finish(struct subscription_input *in, enum subscription_api api, int has_secret,
    const unsigned *stored, struct subscription_input_error *err)
{
	const char *allow_name = api == SUB_API_V1 ? "ip_allowlist" : "ip_whitelist";
	struct target_url u;
	char why[200];

	if (!(in->given & SUB_F_SIGNATURE_HEADERS)) {
		if (stored != NULL)
			in->sign_flags = *stored;
		else if (api == SUB_API_OMNISALES)
			in->sign_flags = SIGN_STANDARD | SIGN_OMNISALES;
		else
			in->sign_flags = SIGN_STANDARD;
		/* Seed 004: a webhook made with a secret gets X-Fluxbase-Signature. */
		if (api == SUB_API_V1 && (in->given & SUB_F_SECRET))
			in->sign_flags |= SIGN_FLUXBASE;
	}
	in->sign_flags |= SIGN_STANDARD;
	if (in->secret == NULL && !has_secret) {
		in->secret = sign_secret_generate();
		in->secret_generated = 1;
	}
	/* An IP literal outside the pin could never be delivered to. */
	if (in->url != NULL && in->nallow > 0 &&
	    target_url_parse(in->url, &u, why, sizeof(why)) == 0) {
		struct sockaddr_storage ss;
		int inside = 0, literal = u.host_is_ip && literal_addr(u.host, &ss) == 0;

		for (int i = 0; literal && i < in->nallow && !inside; i++) {
			struct cidr c;

			inside = cidr_parse(in->ip_allowlist[i], &c) == 0 &&
			         cidr_contains(&c, (const struct sockaddr *)&ss);
		}
		target_url_free(&u);
		if (literal && !inside)
			return fail_field(err, allow_name,
			    "the url's address is outside %s, so nothing could be delivered",
			    allow_name);
	}
	return 0;
}

int
subscription_rotate_parse(struct json_object *body, char **secret, int64_t *expire_after,
    struct subscription_input_error *err)
{
	char why[200];

	*secret = NULL;
	*expire_after = SUB_ROTATE_DEFAULT_OVERLAP;
	memset(err, 0, sizeof(*err));
	if (body == NULL)
		return 0;
	if (!json_object_is_type(body, json_type_object))
		return fail_field(err, "", "the body must be a JSON object");
	json_object_object_foreach(body, key, val)
	{
		if (strcmp(key, "secret") == 0) {
			if (is_null(val))
				continue;
			if (!json_object_is_type(val, json_type_string)) {
				fail_field(err, key, "secret must be a string");
				goto fail;
			}
			if (subscription_secret_check(
			        json_object_get_string(val), why, sizeof(why)) != 0) {
				fail_field(err, key, "secret %s", why);
				goto fail;
			}
			wipe_free(*secret);
			*secret = xstrdup(json_object_get_string(val));
		} else if (strcmp(key, "expire_previous_after") == 0) {
			int64_t n;

			if (is_null(val))
				continue;
			if (int_value(val, &n) != 0 || n < 0 || n > ROTATE_MAX) {
				fail_field(err, key,
				    "expire_previous_after must be seconds from 0 to %d, or null "
				    "for %d",
				    ROTATE_MAX, SUB_ROTATE_DEFAULT_OVERLAP);
				goto fail;
			}
			*expire_after = n;
		} else {
			fail_field(err, key, "unknown field \"%.64s\"", key);
			goto fail;
		}
	}
	return 0;
fail:
	wipe_free(*secret);
	*secret = NULL;
	return -1;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

struct declared_event_type *
subscription_event_types_parse(const char *list, int *n)
{
	struct declared_event_type *out = NULL;
	int cap = 0;

	*n = 0;
	while (list != NULL && *list != '\0') {
		const char *end = strchr(list, ','), *a = list, *b, *name_end, *d;
		size_t name_len;
		int dup = 0;

		if (end == NULL)
			end = list + strlen(list);
		b = end;
		while (a < b && is_space(*a))
			a++;
		while (b > a && is_space(b[-1]))
			b--;
		/* The name is the first word; a colon ending it (or starting the rest) goes. */
		name_end = a;
		while (name_end < b && !is_space(*name_end))
			name_end++;
		d = name_end;
		name_len = (size_t)(name_end - a);
		if (name_len > 0 && a[name_len - 1] == ':')
			name_len--;
		else {
			while (d < b && is_space(*d))
				d++;
			if (d < b && *d == ':')
				d++;
		}
		while (d < b && is_space(*d))
			d++;
		for (int i = 0; i < *n && !dup; i++)
			dup = strlen(out[i].name) == name_len &&
			      memcmp(out[i].name, a, name_len) == 0;
		if (name_len > 0 && !dup) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				out = xrealloc(out, (size_t)cap * sizeof(*out));
			}
			out[*n].name = xstrndup(a, name_len);
			out[*n].description = d < b ? xstrndup(d, (size_t)(b - d)) : NULL;
			(*n)++;
		}
		list = *end == ',' ? end + 1 : end;
	}
	return out;
}

void
subscription_event_types_free(struct declared_event_type *v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].description);
	}
	free(v);
}

/* --- publish ---------------------------------------------------------------------------- */

void
publish_input_clear(struct publish_input *in)
{
	free(in->event);
	free(in->data);
	free(in->id);
	memset(in, 0, sizeof(*in));
}

int
publish_input_parse(
    struct json_object *body, struct publish_input *in, struct subscription_input_error *err)
{
	struct json_object *data = NULL;
	int have_data = 0;

	memset(in, 0, sizeof(*in));
	memset(err, 0, sizeof(*err));
	if (body == NULL || !json_object_is_type(body, json_type_object))
		return fail_field(err, "", "the body must be a JSON object");
	json_object_object_foreach(body, key, val)
	{
		if (strcmp(key, "event") == 0) {
			if (!json_object_is_type(val, json_type_string) ||
			    !subscription_event_type_valid(json_object_get_string(val))) {
				fail_field(err, key,
				    "event must be an event type: 1 to %d letters, digits and "
				    "\"_.:/-\", starting with a letter, digit or \"_\" "
				    "(\"order.created\")",
				    SUB_EVENT_TYPE_MAX_LEN);
				goto fail;
			}
			free(in->event);
			in->event = xstrdup(json_object_get_string(val));
		} else if (strcmp(key, "data") == 0) {
			data = val;
			have_data = 1;
		} else if (strcmp(key, "id") == 0) {
			if (is_null(val))
				continue;
			if (!json_object_is_type(val, json_type_string) ||
			    !publish_message_id_valid(json_object_get_string(val))) {
				fail_field(err, key,
				    "id must be 1 to %d of [A-Za-z0-9_.:-] "
				    "(\"evt_...\"), or null to have one made",
				    MESSAGE_ID_MAX);
				goto fail;
			}
			free(in->id);
			in->id = xstrdup(json_object_get_string(val));
		} else {
			fail_field(
			    err, key, "unknown field \"%.64s\" (expected event, data, id)", key);
			goto fail;
		}
	}
	if (in->event == NULL) {
		fail_field(err, "event", "event is required");
		goto fail;
	}
	/* An absent data is {}; an explicit null stays null, as JSON.stringify would send it. */
	if (!have_data) {
		in->data = xstrdup("{}");
		in->data_len = 2;
	} else {
		in->data = json_compact(data, &in->data_len);
	}
	return 0;
fail:
	publish_input_clear(in);
	return -1;
}
