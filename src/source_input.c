/* SPDX-License-Identifier: ISC */
/* Source API input: a JSON body checked field by field into the values hookd.sources stores. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "hookd/json.h"
#include "hookd/netguard.h"
#include "hookd/seal.h"
#include "hookd/sign.h"
#include "hookd/source_input.h"
#include "hookd/sources.h"
#include "hookd/verify.h"

#define NAME_MAX_LEN        256
#define DESCRIPTION_MAX_LEN 4096
#define LIST_MAX            1000
#define EVENT_TYPE_MAX_LEN  256
#define KEY_SPEC_MAX_LEN    512
#define OBJECT_TYPES_MAX    100
#define OBJECT_TYPE_MAX_LEN 64
#define ENTITY_TABLE_MAX    63 /* a Postgres identifier */
#define RATE_MAX            1e6
#define SECRET_RANDOM_BYTES 32

static int fail_field(struct source_input_error *err, const char *field, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* Fill err and return -1. */
static int
fail_field(struct source_input_error *err, const char *field, const char *fmt, ...)
{
	va_list ap;

	snprintf(err->field, sizeof(err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

int
source_slug_valid(const char *s)
{
	size_t n = 0;

	for (const char *c = s; *c != '\0'; c++, n++) {
		int alnum = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		            (*c >= '0' && *c <= '9');

		if (!alnum && (n == 0 || (*c != '_' && *c != '.' && *c != '-')))
			return 0;
	}
	return n >= 1 && n <= 128;
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

static int
is_null(struct json_object *v)
{
	return v == NULL || json_object_is_type(v, json_type_null);
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
free_secrets(char **v, int n)
{
	for (int i = 0; i < n; i++) {
		sodium_memzero(v[i], strlen(v[i]));
		free(v[i]);
	}
	free(v);
}

void
source_input_clear(struct source_input *in)
{
	free(in->slug);
	free(in->name);
	free(in->description);
	json_object_put(in->verifier);
	free_secrets(in->secrets, in->nsecrets);
	free_strings(in->allowed_types, in->nallowed);
	free_strings(in->ip_allowlist, in->nallow);
	free(in->dedupe_key);
	free(in->event_type_key);
	json_object_put(in->handler);
	free(in->handler_function);
	free_strings(in->object_types, in->nobject_types);
	free(in->entity_table);
	memset(in, 0, sizeof(*in));
}

/* --- one parser per field ---------------------------------------------------------- */

/* What a field parser is handed besides its value. */
struct parse_ctx {
	const char *name; /* the field as the body spells it */
	int64_t max_body_limit;
};

typedef int (*field_fn)(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err);

static int
parse_slug(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string))
		return fail_field(err, "slug", "slug must be a string");
	s = json_object_get_string(v);
	if (!source_slug_valid(s))
		return fail_field(
		    err, "slug", "slug must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$");
	free(in->slug);
	in->slug = xstrdup(s);
	return 0;
}

static int
parse_name(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	const char *s = "";

	if (!is_null(v)) {
		if (!json_object_is_type(v, json_type_string))
			return fail_field(err, "name", "name must be a string");
		s = json_object_get_string(v);
		if (strlen(s) > NAME_MAX_LEN)
			return fail_field(
			    err, "name", "name is longer than %d bytes", NAME_MAX_LEN);
	}
	free(in->name);
	in->name = xstrdup(s);
	return 0;
}

static int
parse_description(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	const char *s = NULL;

	if (!is_null(v)) {
		if (!json_object_is_type(v, json_type_string))
			return fail_field(
			    err, "description", "description must be a string or null");
		s = json_object_get_string(v);
		if (strlen(s) > DESCRIPTION_MAX_LEN)
			return fail_field(err, "description", "description is longer than %d bytes",
			    DESCRIPTION_MAX_LEN);
	}
	free(in->description);
	in->description = s ? xstrdup(s) : NULL;
	return 0;
}

static int
parse_verifier(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	struct json_object *cfg;
	struct verifier *ver;
	char why[200];

	if (is_null(v)) {
		cfg = json_object_new_object();
		json_set_str(cfg, "scheme", "none");
	} else if (json_object_is_type(v, json_type_string)) {
		/* The shorthand "github" is stored as {"scheme": "github"}. */
		cfg = json_object_new_object();
		json_set_str(cfg, "scheme", json_object_get_string(v));
	} else if (json_object_is_type(v, json_type_object)) {
		cfg = NULL;
		if (json_object_deep_copy(v, &cfg, NULL) != 0)
			abort();
	} else {
		return fail_field(err, "verifier",
		    "verifier must be an object {\"scheme\": ...} or a scheme name");
	}
	ver = verifier_compile(cfg, why, sizeof(why));
	if (ver == NULL) {
		json_object_put(cfg);
		return fail_field(err, "verifier", "verifier: %s", why);
	}
	verifier_free(ver);
	json_object_put(in->verifier);
	in->verifier = cfg;
	return 0;
}

/* One secret's form, whatever the verifier: the encoding check comes later. */
static int
secret_plausible(const char *field, struct json_object *v, struct source_input_error *err)
{
	const char *s;
	size_t len;

	if (!json_object_is_type(v, json_type_string))
		return fail_field(err, field, "%s must be a string", field);
	s = json_object_get_string(v);
	len = strlen(s);
	if (len == 0 || len > SOURCE_SECRET_MAX_LEN)
		return fail_field(
		    err, field, "%s must be 1 to %d bytes long", field, SOURCE_SECRET_MAX_LEN);
	if (!printable(s))
		return fail_field(err, field, "%s must not contain control characters", field);
	return 0;
}

static int
parse_secrets(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	int list = strcmp(ctx->name, "secrets") == 0, n;

	if (in->given & SOURCE_F_SECRETS)
		return fail_field(err, ctx->name, "give either secret or secrets, not both");
	free_secrets(in->secrets, in->nsecrets);
	in->secrets = NULL;
	in->nsecrets = 0;
	in->secrets_list = list;
	if (is_null(v))
		return 0;
	if (!list) {
		if (secret_plausible("secret", v, err) != 0)
			return -1;
		in->secrets = xcalloc(1, sizeof(char *));
		in->secrets[0] = xstrdup(json_object_get_string(v));
		in->nsecrets = 1;
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return fail_field(err, "secrets", "secrets must be an array of strings");
	n = (int)json_object_array_length(v);
	if (n > SOURCE_MAX_SECRETS)
		return fail_field(err, "secrets", "at most %d secrets", SOURCE_MAX_SECRETS);
	for (int i = 0; i < n; i++) {
		if (secret_plausible("secrets", json_object_array_get_idx(v, i), err) != 0)
			return -1;
	}
	in->secrets = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++)
		in->secrets[i] = xstrdup(json_object_get_string(json_object_array_get_idx(v, i)));
	in->nsecrets = n;
	return 0;
}

static int
parse_tolerance(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	int64_t t = SOURCE_DEFAULT_TOLERANCE;

	if (!is_null(v) && (int_value(v, &t) != 0 || t < 0 || t > SOURCE_MAX_TOLERANCE))
		return fail_field(err, "timestamp_tolerance",
		    "timestamp_tolerance must be an integer from 0 to %d (seconds)",
		    SOURCE_MAX_TOLERANCE);
	in->tolerance = t;
	return 0;
}

static int
parse_allowed_types(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	int n;

	free_strings(in->allowed_types, in->nallowed);
	in->allowed_types = NULL;
	in->nallowed = 0;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return fail_field(err, "allowed_event_types",
		    "allowed_event_types must be an array of event types, or null for any");
	n = (int)json_object_array_length(v);
	if (n == 0)
		return fail_field(err, "allowed_event_types",
		    "allowed_event_types must not be empty; null accepts every event type");
	if (n > LIST_MAX)
		return fail_field(err, "allowed_event_types", "at most %d event types", LIST_MAX);
	for (int i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		const char *s =
		    json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;

		if (s == NULL || *s == '\0' || strlen(s) > EVENT_TYPE_MAX_LEN)
			return fail_field(err, "allowed_event_types",
			    "allowed_event_types[%d] must be a non-empty string of at most %d "
			    "bytes",
			    i, EVENT_TYPE_MAX_LEN);
	}
	in->allowed_types = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++)
		in->allowed_types[i] =
		    xstrdup(json_object_get_string(json_object_array_get_idx(v, i)));
	in->nallowed = n;
	return 0;
}

static int
parse_max_body(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	int64_t n = 0;

	if (!is_null(v) && (int_value(v, &n) != 0 || n < 1 || n > ctx->max_body_limit))
		return fail_field(err, "max_body",
		    "max_body must be an integer from 1 to %lld (http_max_body_size), or null",
		    (long long)ctx->max_body_limit);
	in->max_body = n;
	return 0;
}

static int
parse_rate_limit(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	struct json_object *ps = NULL, *burst = NULL;
	double rate;
	int64_t b;

	in->rate_per_sec = 0;
	in->rate_burst = 0;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return fail_field(err, "rate_limit",
		    "rate_limit must be {\"per_second\": n, \"burst\": n} or null");
	json_object_object_foreach(v, key, val)
	{
		if (strcmp(key, "per_second") == 0) {
			ps = val;
		} else if (strcmp(key, "burst") == 0) {
			burst = val;
		} else {
			char field[64];

			snprintf(field, sizeof(field), "rate_limit.%s", key);
			return fail_field(err, field, "unknown field %s", field);
		}
	}
	if (ps == NULL ||
	    (!json_object_is_type(ps, json_type_int) && !json_object_is_type(ps, json_type_double)))
		return fail_field(
		    err, "rate_limit.per_second", "rate_limit.per_second must be a number above 0");
	rate = json_object_get_double(ps);
	if (!(rate > 0 && rate <= RATE_MAX))
		return fail_field(err, "rate_limit.per_second",
		    "rate_limit.per_second must be above 0 and at most %g", RATE_MAX);
	/* Without a burst the bucket holds one second's worth, as the receiver assumes. */
	b = (int64_t)ceil(rate);
	if (!is_null(burst) && (int_value(burst, &b) != 0 || b < 1 || b > (int64_t)RATE_MAX))
		return fail_field(err, "rate_limit.burst",
		    "rate_limit.burst must be an integer from 1 to %lld", (long long)RATE_MAX);
	in->rate_per_sec = rate;
	in->rate_burst = b;
	return 0;
}

static int
parse_ip_allowlist(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	int n;

	free_strings(in->ip_allowlist, in->nallow);
	in->ip_allowlist = NULL;
	in->nallow = 0;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return fail_field(err, "ip_allowlist",
		    "ip_allowlist must be an array of CIDR networks, or null for any address");
	n = (int)json_object_array_length(v);
	if (n == 0)
		return fail_field(err, "ip_allowlist",
		    "ip_allowlist must not be empty; null accepts every address");
	if (n > LIST_MAX)
		return fail_field(err, "ip_allowlist", "at most %d networks", LIST_MAX);
	in->ip_allowlist = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		struct cidr c;
		char buf[CIDR_STRLEN];

		if (!json_object_is_type(e, json_type_string) ||
		    cidr_parse(json_object_get_string(e), &c) != 0)
			return fail_field(err, "ip_allowlist",
			    "ip_allowlist[%d] is not a network such as \"10.0.0.0/8\" or "
			    "\"2001:db8::/32\" (bits past the prefix must be zero)",
			    i);
		cidr_format(&c, buf, sizeof(buf));
		in->ip_allowlist[in->nallow++] = xstrdup(buf);
	}
	return 0;
}

static int
parse_key_spec(const char *field, struct json_object *v, char **out, struct source_input_error *err)
{
	struct source_key k;
	const char *s;
	char why[200];

	free(*out);
	*out = NULL;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return fail_field(
		    err, field, "%s must be \"header:Name\", \"json:$.path\" or null", field);
	s = json_object_get_string(v);
	if (*s == '\0')
		return 0;
	if (strlen(s) > KEY_SPEC_MAX_LEN)
		return fail_field(
		    err, field, "%s is longer than %d bytes", field, KEY_SPEC_MAX_LEN);
	if (source_key_parse(s, &k, why, sizeof(why)) != 0)
		return fail_field(err, field, "%s: %s", field, why);
	source_key_clear(&k);
	*out = xstrdup(s);
	return 0;
}

static int
parse_dedupe_key(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	return parse_key_spec("dedupe_key", v, &in->dedupe_key, err);
}

static int
parse_event_type_key(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	return parse_key_spec("event_type_key", v, &in->event_type_key, err);
}

static int
parse_handler(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	static const char *const keys[] = {"type", "function", "max_attempts", "backoff_seconds",
	    "multiplier", "max_delay_seconds", "event_type", NULL};
	struct source_handler h;
	struct json_object *cfg;
	char why[200], field[64];

	if (is_null(v)) {
		cfg = json_object_new_object();
		json_set_str(cfg, "type", "store");
	} else if (json_object_is_type(v, json_type_string)) {
		/* The shorthand "store" is stored as {"type": "store"}. */
		cfg = json_object_new_object();
		json_set_str(cfg, "type", json_object_get_string(v));
	} else if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val)
		{
			int i;

			(void)val;
			for (i = 0; keys[i] != NULL && strcmp(keys[i], key) != 0; i++)
				;
			if (keys[i] == NULL) {
				snprintf(field, sizeof(field), "handler.%s", key);
				return fail_field(err, field, "unknown field %s", field);
			}
		}
		cfg = NULL;
		if (json_object_deep_copy(v, &cfg, NULL) != 0)
			abort();
	} else {
		return fail_field(err, "handler", "handler must be an object {\"type\": ...}");
	}
	if (source_handler_parse(cfg, &h, why, sizeof(why)) != 0) {
		/* The parser's reason starts with its member ("handler.function must ..."). */
		size_t n = strcspn(why, " ");

		if (strncmp(why, "handler", 7) == 0 && n < sizeof(field))
			snprintf(field, sizeof(field), "%.*s", (int)n, why);
		else
			snprintf(field, sizeof(field), "handler");
		json_object_put(cfg);
		return fail_field(err, field, "%s", why);
	}
	free(in->handler_function);
	in->handler_function = h.function != NULL ? xstrdup(h.function) : NULL;
	source_handler_clear(&h);
	json_object_put(in->handler);
	in->handler = cfg;
	return 0;
}

static int
parse_bool(
    const char *field, struct json_object *v, int def, int *out, struct source_input_error *err)
{
	if (is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_object_is_type(v, json_type_boolean))
		return fail_field(err, field, "%s must be true or false", field);
	*out = json_object_get_boolean(v);
	return 0;
}

static int
parse_review(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	return parse_bool("review_required", v, 0, &in->review_required, err);
}

static int
parse_active(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	return parse_bool("active", v, 1, &in->active, err);
}

/* Seed 002: the object types an endpoint takes ("person", "influencer", ...), or null. */
static int
parse_object_types(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	static const char field[] = "allowed_object_types";
	int n;

	free_strings(in->object_types, in->nobject_types);
	in->object_types = NULL;
	in->nobject_types = 0;
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return fail_field(
		    err, field, "allowed_object_types must be an array of object types, or null");
	n = (int)json_object_array_length(v);
	if (n == 0)
		return fail_field(
		    err, field, "allowed_object_types must not be empty; null sets none");
	if (n > OBJECT_TYPES_MAX)
		return fail_field(err, field, "at most %d object types", OBJECT_TYPES_MAX);
	for (int i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		const char *t =
		    json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;

		if (t == NULL || *t == '\0' || strlen(t) > OBJECT_TYPE_MAX_LEN || !printable(t))
			return fail_field(err, field,
			    "allowed_object_types[%d] must be a non-empty string of at most %d "
			    "bytes without control characters",
			    i, OBJECT_TYPE_MAX_LEN);
		for (int j = 0; j < i; j++) {
			if (strcmp(t, json_object_get_string(json_object_array_get_idx(v, j))) == 0)
				return fail_field(
				    err, field, "allowed_object_types[%d] repeats \"%s\"", i, t);
		}
	}
	in->object_types = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++)
		in->object_types[i] =
		    xstrdup(json_object_get_string(json_object_array_get_idx(v, i)));
	in->nobject_types = n;
	return 0;
}

/* Seed 002: the entity table events default to, a lower-case SQL identifier, or null. */
static int
parse_entity_table(struct source_input *in, struct json_object *v, const struct parse_ctx *ctx,
    struct source_input_error *err)
{
	const char *t;
	size_t n;

	free(in->entity_table);
	in->entity_table = NULL;
	if (is_null(v))
		return 0;
	t = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	n = strlen(t);
	for (size_t i = 0; i < n; i++) {
		char c = t[i];

		if (!((c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9')))
			n = 0;
	}
	if (n == 0 || n > ENTITY_TABLE_MAX)
		return fail_field(err, "default_entity_table",
		    "default_entity_table must be a table name (^[a-z_][a-z0-9_]{0,62}$) or null");
	in->entity_table = xstrdup(t);
	return 0;
}

static const struct {
	const char *name;
	unsigned bit;
	field_fn fn;
} fields[] = {
    {"slug", SOURCE_F_SLUG, parse_slug},
    {"name", SOURCE_F_NAME, parse_name},
    {"description", SOURCE_F_DESCRIPTION, parse_description},
    {"verifier", SOURCE_F_VERIFIER, parse_verifier},
    {"secret", SOURCE_F_SECRETS, parse_secrets},
    {"secrets", SOURCE_F_SECRETS, parse_secrets},
    {"timestamp_tolerance", SOURCE_F_TOLERANCE, parse_tolerance},
    {"allowed_event_types", SOURCE_F_ALLOWED_TYPES, parse_allowed_types},
    {"max_body", SOURCE_F_MAX_BODY, parse_max_body},
    {"rate_limit", SOURCE_F_RATE_LIMIT, parse_rate_limit},
    {"ip_allowlist", SOURCE_F_IP_ALLOWLIST, parse_ip_allowlist},
    {"dedupe_key", SOURCE_F_DEDUPE_KEY, parse_dedupe_key},
    {"event_type_key", SOURCE_F_EVENT_TYPE_KEY, parse_event_type_key},
    {"handler", SOURCE_F_HANDLER, parse_handler},
    {"review_required", SOURCE_F_REVIEW, parse_review},
    {"active", SOURCE_F_ACTIVE, parse_active},
    {"allowed_object_types", SOURCE_F_OBJECT_TYPES, parse_object_types},
    {"default_entity_table", SOURCE_F_ENTITY_TABLE, parse_entity_table},
};

/* Fields the API shows but nobody writes. */
static const char *const read_only[] = {"id", "url", "created_at", "updated_at", NULL};

int
source_input_parse(struct json_object *body, enum source_input_mode mode, int64_t max_body_limit,
    struct source_input *in, struct source_input_error *err)
{
	struct parse_ctx ctx = {NULL, max_body_limit};

	memset(in, 0, sizeof(*in));
	memset(err, 0, sizeof(*err));
	if (body == NULL || !json_object_is_type(body, json_type_object))
		return fail_field(err, "", "the body must be a JSON object");
	/* Every field a PUT or POST leaves out takes its default: parse "null" for it. */
	if (mode != SOURCE_INPUT_PATCH) {
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
			if (fields[i].bit == SOURCE_F_SLUG || fields[i].bit == SOURCE_F_SECRETS)
				continue;
			ctx.name = fields[i].name;
			if (fields[i].fn(in, NULL, &ctx, err) != 0)
				goto fail; /* a default that does not parse is a bug */
		}
	}
	json_object_object_foreach(body, key, val)
	{
		size_t i;

		for (i = 0; i < ARRAY_SIZE(fields) && strcmp(fields[i].name, key) != 0; i++)
			;
		if (i == ARRAY_SIZE(fields)) {
			for (int j = 0; read_only[j] != NULL; j++) {
				if (strcmp(read_only[j], key) == 0) {
					fail_field(err, key, "%s is read-only", key);
					goto fail;
				}
			}
			fail_field(err, key, "unknown field \"%.64s\"", key);
			goto fail;
		}
		if (fields[i].bit == SOURCE_F_SLUG && is_null(val)) {
			fail_field(err, "slug", "slug must be a string");
			goto fail;
		}
		ctx.name = fields[i].name;
		if (fields[i].fn(in, val, &ctx, err) != 0)
			goto fail;
		in->given |= fields[i].bit;
	}
	if (mode != SOURCE_INPUT_PATCH && in->slug == NULL) {
		fail_field(err, "slug", "slug is required");
		goto fail;
	}
	return 0;
fail:
	source_input_clear(in);
	return -1;
}

#define TAKE(field)                                                                                \
	do {                                                                                       \
		__typeof__(base->field) tmp_ = base->field;                                        \
		base->field = patch->field;                                                        \
		patch->field = tmp_;                                                               \
	} while (0)

void
source_input_merge(struct source_input *base, struct source_input *patch)
{
	unsigned g = patch->given;

	/* Swap rather than copy: whatever base had is freed with patch. */
	if (g & SOURCE_F_SLUG)
		TAKE(slug);
	if (g & SOURCE_F_NAME)
		TAKE(name);
	if (g & SOURCE_F_DESCRIPTION)
		TAKE(description);
	if (g & SOURCE_F_VERIFIER)
		TAKE(verifier);
	if (g & SOURCE_F_SECRETS) {
		TAKE(secrets);
		TAKE(nsecrets);
		TAKE(secrets_list);
	}
	if (g & SOURCE_F_TOLERANCE)
		TAKE(tolerance);
	if (g & SOURCE_F_ALLOWED_TYPES) {
		TAKE(allowed_types);
		TAKE(nallowed);
	}
	if (g & SOURCE_F_MAX_BODY)
		TAKE(max_body);
	if (g & SOURCE_F_RATE_LIMIT) {
		TAKE(rate_per_sec);
		TAKE(rate_burst);
	}
	if (g & SOURCE_F_IP_ALLOWLIST) {
		TAKE(ip_allowlist);
		TAKE(nallow);
	}
	if (g & SOURCE_F_DEDUPE_KEY)
		TAKE(dedupe_key);
	if (g & SOURCE_F_EVENT_TYPE_KEY)
		TAKE(event_type_key);
	if (g & SOURCE_F_HANDLER) {
		TAKE(handler);
		TAKE(handler_function);
	}
	if (g & SOURCE_F_REVIEW)
		TAKE(review_required);
	if (g & SOURCE_F_ACTIVE)
		TAKE(active);
	if (g & SOURCE_F_OBJECT_TYPES) {
		TAKE(object_types);
		TAKE(nobject_types);
	}
	if (g & SOURCE_F_ENTITY_TABLE)
		TAKE(entity_table);
	base->given |= g;
}

#undef TAKE

/* --- secrets --------------------------------------------------------------------------- */

enum source_key_encoding
source_verifier_key_encoding(struct json_object *verifier)
{
	const char *scheme = NULL, *alg = NULL, *kenc = NULL;

	if (json_object_is_type(verifier, json_type_string)) {
		scheme = json_object_get_string(verifier);
	} else if (json_object_is_type(verifier, json_type_object)) {
		scheme = json_get_str(verifier, "scheme");
		alg = json_get_str(verifier, "algorithm");
		kenc = json_get_str(verifier, "key_encoding");
	}
	if ((alg != NULL && strcasecmp(alg, "ed25519") == 0) ||
	    (alg == NULL && scheme != NULL && strcasecmp(scheme, "discord") == 0))
		return SOURCE_KEYENC_ED25519;
	if (kenc != NULL) {
		if (strcasecmp(kenc, "base64") == 0)
			return SOURCE_KEYENC_BASE64;
		if (strcasecmp(kenc, "hex") == 0)
			return SOURCE_KEYENC_HEX;
		if (strcasecmp(kenc, "whsec") == 0)
			return SOURCE_KEYENC_WHSEC;
		return SOURCE_KEYENC_RAW;
	}
	if (scheme != NULL &&
	    (strcasecmp(scheme, "standard") == 0 || strcasecmp(scheme, "svix") == 0))
		return SOURCE_KEYENC_WHSEC;
	return SOURCE_KEYENC_RAW;
}

int
source_secret_check(enum source_key_encoding enc, const char *secret, char *why, size_t whylen)
{
	unsigned char buf[SOURCE_SECRET_MAX_LEN];
	size_t len = strlen(secret);
	int got = 0, rc = -1;

	if (len == 0 || len > SOURCE_SECRET_MAX_LEN || !printable(secret)) {
		snprintf(why, whylen, "must be 1 to %d bytes without control characters",
		    SOURCE_SECRET_MAX_LEN);
		return -1;
	}
	switch (enc) {
	case SOURCE_KEYENC_RAW: return 0;
	case SOURCE_KEYENC_HEX:
		got = hex_decode(secret, len, buf, sizeof(buf));
		if (got > 0)
			rc = 0;
		else
			snprintf(why, whylen, "must be hex (the verifier's key_encoding)");
		break;
	case SOURCE_KEYENC_WHSEC:
		if (strncmp(secret, "whsec_", 6) == 0) {
			secret += 6;
			len -= 6;
		}
		/* FALLTHROUGH */
	case SOURCE_KEYENC_BASE64:
		got = base64_decode(secret, len, buf, sizeof(buf));
		if (got > 0)
			rc = 0;
		else
			snprintf(why, whylen, "%s",
			    enc == SOURCE_KEYENC_WHSEC
			        ? "must be \"whsec_\" followed by base64"
			        : "must be base64 (the verifier's key_encoding)");
		break;
	case SOURCE_KEYENC_ED25519:
		got = hex_decode(secret, len, buf, sizeof(buf));
		if (got != crypto_sign_PUBLICKEYBYTES)
			got = base64_decode(secret, len, buf, sizeof(buf));
		if (got == crypto_sign_PUBLICKEYBYTES)
			rc = 0;
		else
			snprintf(why, whylen,
			    "must be the application's Ed25519 public key (64 hex characters)");
		break;
	}
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

char *
source_secret_generate(enum source_key_encoding enc)
{
	unsigned char raw[SECRET_RANDOM_BYTES];
	char *hex;

	if (enc == SOURCE_KEYENC_ED25519)
		return NULL;
	if (enc == SOURCE_KEYENC_WHSEC)
		return sign_secret_generate();
	randombytes_buf(raw, sizeof(raw));
	hex = xmalloc(2 * sizeof(raw) + 1);
	hex_encode(raw, sizeof(raw), hex);
	sodium_memzero(raw, sizeof(raw));
	return hex;
}

void
source_secret_id(char out[21])
{
	unsigned char raw[8];

	randombytes_buf(raw, sizeof(raw));
	memcpy(out, "sec_", 4);
	hex_encode(raw, sizeof(raw), out + 4);
}

void
source_secret_hint(const char *secret, char *out, size_t outlen)
{
	size_t len = secret != NULL ? strlen(secret) : 0;

	/* Short secrets show nothing: four characters of eight is too much of them. */
	if (len >= 16)
		snprintf(out, outlen, "\xe2\x80\xa6%s", secret + len - 4);
	else
		snprintf(out, outlen, "\xe2\x80\xa6");
}

int
source_input_finish(struct source_input *in, int existing_live, struct source_input_error *err)
{
	struct verifier *v;
	enum source_key_encoding enc = source_verifier_key_encoding(in->verifier);
	const char *field = in->secrets_list ? "secrets" : "secret";
	int requires, have;
	char why[200];

	v = verifier_compile(in->verifier, why, sizeof(why));
	if (v == NULL)
		return fail_field(err, "verifier", "verifier: %s", why);
	requires = verifier_requires_secret(v);
	verifier_free(v);
	for (int i = 0; i < in->nsecrets; i++) {
		if (source_secret_check(enc, in->secrets[i], why, sizeof(why)) != 0) {
			if (in->nsecrets > 1)
				return fail_field(err, field, "%s[%d] %s", field, i, why);
			return fail_field(err, field, "%s %s", field, why);
		}
	}
	have = (in->given & SOURCE_F_SECRETS) ? in->nsecrets : existing_live;
	/*
	 * Only a request that sets the verifier or the secrets gets a secret made for it. An
	 * edit of anything else (a rate limit on a seed's source, whose signature checks
	 * follow the environment while it has no secret) leaves verification as it was.
	 */
	if (!requires || have > 0 || !(in->given & (SOURCE_F_VERIFIER | SOURCE_F_SECRETS)))
		return 0;
	if (enc == SOURCE_KEYENC_ED25519)
		return fail_field(err, field,
		    "this verifier needs the provider's public key as "
		    "secret; hookd cannot make one");
	free_secrets(in->secrets, in->nsecrets);
	in->secrets = xcalloc(1, sizeof(char *));
	in->secrets[0] = source_secret_generate(enc);
	in->nsecrets = 1;
	in->secret_generated = 1;
	in->given |= SOURCE_F_SECRETS;
	return 0;
}

char *
source_secrets_seal(const unsigned char key[32], char *const *plain, int n, uint64_t now_ms)
{
	struct json_object *arr = json_object_new_array();
	char iso[32], id[21];
	char *out;

	time_iso8601(now_ms, iso, sizeof(iso));
	for (int i = 0; i < n; i++) {
		struct json_object *e = json_object_new_object();
		char *sealed = seal_encrypt(key, plain[i]);

		source_secret_id(id);
		json_set_str(e, "id", id);
		json_set_str(e, "sealed", sealed);
		json_set_str(e, "created_at", iso);
		json_set_str(e, "expires_at", NULL);
		json_object_array_add(arr, e);
		free(sealed);
	}
	out = json_compact(arr, NULL);
	json_object_put(arr);
	return out;
}

/* The stored form of one listed entry: id, sealed, created_at, expires_at (no "live"). */
static struct json_object *
stored_entry(struct json_object *e, const char *expires_at)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "id", json_get_str(e, "id"));
	json_set_str(o, "sealed", json_get_str(e, "sealed"));
	json_set_str(o, "created_at", json_get_str(e, "created_at"));
	json_set_str(o, "expires_at", expires_at);
	return o;
}

static int
entry_live(struct json_object *e)
{
	int live;

	return json_get_bool(e, "live", &live) != 0 || live;
}

static struct json_object *
parse_list(const char *list)
{
	struct json_object *arr;
	char why[64];

	arr = list != NULL ? json_parse(list, strlen(list), why, sizeof(why)) : NULL;
	if (arr != NULL && !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		return NULL;
	}
	return arr;
}

char *
source_secrets_rotate(const char *list, struct json_object *new_entry, const char *expire_iso)
{
	struct json_object *arr = parse_list(list), *out;
	char *text;

	if (arr == NULL) {
		json_object_put(new_entry);
		return NULL;
	}
	out = json_object_new_array();
	json_object_array_add(out, new_entry);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *exp = json_get_str(e, "expires_at");

		if (!entry_live(e))
			continue;
		/* ISO 8601 UTC in one format: text order is time order. */
		if (expire_iso != NULL && (exp == NULL || strcmp(expire_iso, exp) < 0))
			exp = expire_iso;
		json_object_array_add(out, stored_entry(e, exp));
	}
	text = json_compact(out, NULL);
	json_object_put(out);
	json_object_put(arr);
	return text;
}

char *
source_secrets_remove(const char *list, const char *id, int *live_left)
{
	struct json_object *arr = parse_list(list), *out;
	char *text = NULL;
	int found = 0;

	*live_left = 0;
	if (arr == NULL)
		return NULL;
	out = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *eid = json_get_str(e, "id");

		if (eid != NULL && strcmp(eid, id) == 0) {
			found = 1;
			continue;
		}
		*live_left += entry_live(e);
		json_object_array_add(out, stored_entry(e, json_get_str(e, "expires_at")));
	}
	if (found)
		text = json_compact(out, NULL);
	json_object_put(out);
	json_object_put(arr);
	return text;
}

int
source_rotate_parse(
    struct json_object *body, char **secret, int64_t *expire_after, struct source_input_error *err)
{
	*secret = NULL;
	*expire_after = -1;
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
			if (secret_plausible("secret", val, err) != 0)
				goto fail;
			free(*secret);
			*secret = xstrdup(json_object_get_string(val));
		} else if (strcmp(key, "expire_previous_after") == 0) {
			int64_t n;

			if (is_null(val))
				continue;
			if (int_value(val, &n) != 0 || n < 0 || n > 365 * 86400) {
				fail_field(err, key,
				    "expire_previous_after must be seconds from "
				    "0 to %d, or null",
				    365 * 86400);
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
	if (*secret != NULL) {
		sodium_memzero(*secret, strlen(*secret));
		free(*secret);
		*secret = NULL;
	}
	return -1;
}
