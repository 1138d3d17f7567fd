/* SPDX-License-Identifier: ISC */
/* Unit tests for source API input: field checks, defaults, PATCH merges, secret lists. */
#include "config.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hookd/json.h"
#include "hookd/seal.h"
#include "hookd/source_input.h"
#include "hookd/sources.h"
#include "hookd/util.h"

#define LIMIT (1024 * 1024)

static struct json_object *
js(const char *text)
{
	char err[128];
	struct json_object *o = json_parse(text, strlen(text), err, sizeof(err));

	ck_assert_msg(o != NULL, "bad test JSON %s: %s", text, err);
	return o;
}

static int
parse(const char *text, enum source_input_mode mode, struct source_input *in,
    struct source_input_error *err)
{
	struct json_object *o = js(text);
	int rc = source_input_parse(o, mode, LIMIT, in, err);

	json_object_put(o);
	return rc;
}

/* The body is refused, naming field. */
static void
refused(const char *text, enum source_input_mode mode, const char *field)
{
	struct source_input in;
	struct source_input_error err;

	ck_assert_msg(parse(text, mode, &in, &err) == -1, "accepted: %s", text);
	ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\" (%s)", text,
	    err.field, field, err.message);
	ck_assert_msg(err.message[0] != '\0', "%s: no message", text);
	/* A refused input is left cleared. */
	ck_assert_ptr_null(in.slug);
	ck_assert_ptr_null(in.verifier);
}

static void patched(const char *stored, const char *patch_text, struct source_input *out);

static char *
compact(struct json_object *o)
{
	return json_compact(o, NULL);
}

/* --- valid input ------------------------------------------------------------------------- */

START_TEST(test_minimal_create_takes_defaults)
{
	struct source_input in;
	struct source_input_error err;
	char *t;

	ck_assert_int_eq(parse("{\"slug\":\"github-main\"}", SOURCE_INPUT_CREATE, &in, &err), 0);
	ck_assert_uint_eq(in.given, SOURCE_F_SLUG);
	ck_assert_str_eq(in.slug, "github-main");
	ck_assert_str_eq(in.name, "");
	ck_assert_ptr_null(in.description);
	t = compact(in.verifier);
	ck_assert_str_eq(t, "{\"scheme\":\"none\"}");
	free(t);
	t = compact(in.handler);
	ck_assert_str_eq(t, "{\"type\":\"store\"}");
	free(t);
	ck_assert_int_eq(in.tolerance, 300);
	ck_assert_ptr_null(in.allowed_types);
	ck_assert_int_eq(in.max_body, 0);
	ck_assert(in.rate_per_sec == 0);
	ck_assert_ptr_null(in.ip_allowlist);
	ck_assert_ptr_null(in.dedupe_key);
	ck_assert_ptr_null(in.event_type_key);
	ck_assert_ptr_null(in.handler_function);
	ck_assert_int_eq(in.review_required, 0);
	ck_assert_int_eq(in.active, 1);
	ck_assert_int_eq(in.nsecrets, 0);
	source_input_clear(&in);
}
END_TEST

START_TEST(test_full_create)
{
	struct source_input in;
	struct source_input_error err;
	char *t;
	const char *body =
	    "{\"slug\":\"A1_b.c-d\",\"name\":\"Stripe\",\"description\":\"payments\","
	    "\"verifier\":\"stripe\",\"secret\":\"whsec_abc\",\"timestamp_tolerance\":0,"
	    "\"allowed_event_types\":[\"charge.succeeded\",\"charge.failed\"],\"max_body\":65536,"
	    "\"rate_limit\":{\"per_second\":2.5,\"burst\":10},"
	    "\"ip_allowlist\":[\"10.0.0.0/8\",\"192.168.1.7\",\"2001:db8::/32\"],"
	    "\"dedupe_key\":\"json:$.id\",\"event_type_key\":\"header:X-Event\","
	    "\"handler\":{\"type\":\"sql\",\"function\":\"public.on_event\",\"max_attempts\":5},"
	    "\"review_required\":true,\"active\":false,"
	    "\"allowed_object_types\":[\"person\",\"influencer\"],"
	    "\"default_entity_table\":\"influencer\"}";

	ck_assert_msg(
	    parse(body, SOURCE_INPUT_CREATE, &in, &err) == 0, "%s: %s", err.field, err.message);
	ck_assert_uint_eq(in.given, SOURCE_F_ALL);
	ck_assert_str_eq(in.slug, "A1_b.c-d");
	ck_assert_str_eq(in.name, "Stripe");
	ck_assert_str_eq(in.description, "payments");
	t = compact(in.verifier);
	ck_assert_str_eq(t, "{\"scheme\":\"stripe\"}");
	free(t);
	ck_assert_int_eq(in.nsecrets, 1);
	ck_assert_str_eq(in.secrets[0], "whsec_abc");
	ck_assert_int_eq(in.secrets_list, 0);
	ck_assert_int_eq(in.tolerance, 0);
	ck_assert_int_eq(in.nallowed, 2);
	ck_assert_str_eq(in.allowed_types[1], "charge.failed");
	ck_assert_int_eq(in.max_body, 65536);
	ck_assert(in.rate_per_sec == 2.5);
	ck_assert_int_eq(in.rate_burst, 10);
	ck_assert_int_eq(in.nallow, 3);
	ck_assert_str_eq(in.ip_allowlist[0], "10.0.0.0/8");
	ck_assert_str_eq(in.ip_allowlist[1], "192.168.1.7/32");
	ck_assert_str_eq(in.ip_allowlist[2], "2001:db8::/32");
	ck_assert_str_eq(in.dedupe_key, "json:$.id");
	ck_assert_str_eq(in.event_type_key, "header:X-Event");
	ck_assert_str_eq(in.handler_function, "public.on_event");
	ck_assert_int_eq(in.review_required, 1);
	ck_assert_int_eq(in.active, 0);
	ck_assert_int_eq(in.nobject_types, 2);
	ck_assert_str_eq(in.object_types[0], "person");
	ck_assert_str_eq(in.object_types[1], "influencer");
	ck_assert_str_eq(in.entity_table, "influencer");
	source_input_clear(&in);
}
END_TEST

START_TEST(test_nulls_mean_defaults)
{
	struct source_input in;
	struct source_input_error err;
	const char *body = "{\"slug\":\"s\",\"name\":null,\"description\":null,\"verifier\":null,"
	                   "\"timestamp_tolerance\":null,\"allowed_event_types\":null,"
	                   "\"max_body\":null,\"rate_limit\":null,\"ip_allowlist\":null,"
	                   "\"dedupe_key\":null,\"event_type_key\":\"\",\"handler\":null,"
	                   "\"review_required\":null,\"active\":null,"
	                   "\"allowed_object_types\":null,\"default_entity_table\":null}";

	ck_assert_msg(parse(body, SOURCE_INPUT_REPLACE, &in, &err) == 0, "%s", err.message);
	ck_assert_ptr_null(in.object_types);
	ck_assert_int_eq(in.nobject_types, 0);
	ck_assert_ptr_null(in.entity_table);
	ck_assert_int_eq(in.tolerance, 300);
	ck_assert_int_eq(in.active, 1);
	ck_assert_ptr_null(in.event_type_key);
	ck_assert_str_eq(json_get_str(in.verifier, "scheme"), "none");
	source_input_clear(&in);
}
END_TEST

START_TEST(test_shorthands_and_lists)
{
	struct source_input in;
	struct source_input_error err;
	char *t;

	ck_assert_int_eq(parse("{\"slug\":\"s\",\"verifier\":{\"scheme\":\"hmac\",\"header\":"
	                       "\"X-Sig\",\"encoding\":\"base64\"},\"handler\":\"publish\","
	                       "\"secrets\":[\"new\",\"old\"],\"rate_limit\":{\"per_second\":2.5}}",
	                     SOURCE_INPUT_CREATE, &in, &err),
	    0);
	t = compact(in.verifier);
	ck_assert_str_eq(t, "{\"scheme\":\"hmac\",\"header\":\"X-Sig\",\"encoding\":\"base64\"}");
	free(t);
	t = compact(in.handler);
	ck_assert_str_eq(t, "{\"type\":\"publish\"}");
	free(t);
	ck_assert_int_eq(in.nsecrets, 2);
	ck_assert_int_eq(in.secrets_list, 1);
	ck_assert_str_eq(in.secrets[0], "new");
	/* Without a burst the bucket holds one second's worth, rounded up. */
	ck_assert_int_eq(in.rate_burst, 3);
	source_input_clear(&in);

	/* Integral doubles count as integers. */
	ck_assert_int_eq(
	    parse("{\"slug\":\"s\",\"timestamp_tolerance\":60.0}", SOURCE_INPUT_CREATE, &in, &err),
	    0);
	ck_assert_int_eq(in.tolerance, 60);
	source_input_clear(&in);
}
END_TEST

START_TEST(test_slug_valid)
{
	char long_ok[129], too_long[130];

	memset(long_ok, 'a', 128);
	long_ok[128] = '\0';
	memset(too_long, 'a', 129);
	too_long[129] = '\0';
	ck_assert(source_slug_valid("a"));
	ck_assert(source_slug_valid("0abc_d.e-f"));
	ck_assert(source_slug_valid(long_ok));
	ck_assert(!source_slug_valid(too_long));
	ck_assert(!source_slug_valid(""));
	ck_assert(!source_slug_valid("-a"));
	ck_assert(!source_slug_valid(".a"));
	ck_assert(!source_slug_valid("a b"));
	ck_assert(!source_slug_valid("a/b"));
	ck_assert(!source_slug_valid("caf\xc3\xa9"));
}
END_TEST

/* --- invalid input: every field kind, each naming its field ----------------------------- */

START_TEST(test_invalid_fields)
{
	static const struct {
		const char *body;
		const char *field;
	} cases[] = {
	    {"[]", ""},
	    {"\"x\"", ""},
	    {"{}", "slug"},
	    {"{\"name\":\"x\"}", "slug"},
	    {"{\"slug\":null}", "slug"},
	    {"{\"slug\":7}", "slug"},
	    {"{\"slug\":\"-bad\"}", "slug"},
	    {"{\"slug\":\"has space\"}", "slug"},
	    {"{\"slug\":\"s\",\"name\":5}", "name"},
	    {"{\"slug\":\"s\",\"description\":[]}", "description"},
	    {"{\"slug\":\"s\",\"verifier\":\"nope\"}", "verifier"},
	    {"{\"slug\":\"s\",\"verifier\":{\"scheme\":\"github\",\"bogus\":1}}", "verifier"},
	    {"{\"slug\":\"s\",\"verifier\":{}}", "verifier"},
	    {"{\"slug\":\"s\",\"verifier\":5}", "verifier"},
	    {"{\"slug\":\"s\",\"secret\":\"\"}", "secret"},
	    {"{\"slug\":\"s\",\"secret\":5}", "secret"},
	    {"{\"slug\":\"s\",\"secret\":\"a\\nb\"}", "secret"},
	    {"{\"slug\":\"s\",\"secrets\":\"x\"}", "secrets"},
	    {"{\"slug\":\"s\",\"secrets\":[\"ok\",3]}", "secrets"},
	    {"{\"slug\":\"s\",\"secret\":\"a\",\"secrets\":[\"b\"]}", "secrets"},
	    {"{\"slug\":\"s\",\"timestamp_tolerance\":-1}", "timestamp_tolerance"},
	    {"{\"slug\":\"s\",\"timestamp_tolerance\":86401}", "timestamp_tolerance"},
	    {"{\"slug\":\"s\",\"timestamp_tolerance\":1.5}", "timestamp_tolerance"},
	    {"{\"slug\":\"s\",\"timestamp_tolerance\":\"300\"}", "timestamp_tolerance"},
	    {"{\"slug\":\"s\",\"allowed_event_types\":\"a\"}", "allowed_event_types"},
	    {"{\"slug\":\"s\",\"allowed_object_types\":\"person\"}", "allowed_object_types"},
	    {"{\"slug\":\"s\",\"allowed_object_types\":[]}", "allowed_object_types"},
	    {"{\"slug\":\"s\",\"allowed_object_types\":[\"\"]}", "allowed_object_types"},
	    {"{\"slug\":\"s\",\"allowed_object_types\":[1]}", "allowed_object_types"},
	    {"{\"slug\":\"s\",\"allowed_object_types\":[\"a\",\"a\"]}", "allowed_object_types"},
	    {"{\"slug\":\"s\",\"allowed_object_types\":[\"a\\nb\"]}", "allowed_object_types"},
	    {"{\"slug\":\"s\",\"default_entity_table\":\"\"}", "default_entity_table"},
	    {"{\"slug\":\"s\",\"default_entity_table\":5}", "default_entity_table"},
	    {"{\"slug\":\"s\",\"default_entity_table\":\"Influencer\"}", "default_entity_table"},
	    {"{\"slug\":\"s\",\"default_entity_table\":\"1table\"}", "default_entity_table"},
	    {"{\"slug\":\"s\",\"default_entity_table\":\"public.people\"}", "default_entity_table"},
	    {"{\"slug\":\"s\",\"allowed_event_types\":[]}", "allowed_event_types"},
	    {"{\"slug\":\"s\",\"allowed_event_types\":[\"a\",\"\"]}", "allowed_event_types"},
	    {"{\"slug\":\"s\",\"allowed_event_types\":[1]}", "allowed_event_types"},
	    {"{\"slug\":\"s\",\"max_body\":0}", "max_body"},
	    {"{\"slug\":\"s\",\"max_body\":1048577}", "max_body"},
	    {"{\"slug\":\"s\",\"max_body\":\"1k\"}", "max_body"},
	    {"{\"slug\":\"s\",\"rate_limit\":5}", "rate_limit"},
	    {"{\"slug\":\"s\",\"rate_limit\":{}}", "rate_limit.per_second"},
	    {"{\"slug\":\"s\",\"rate_limit\":{\"per_second\":0}}", "rate_limit.per_second"},
	    {"{\"slug\":\"s\",\"rate_limit\":{\"per_second\":-2}}", "rate_limit.per_second"},
	    {"{\"slug\":\"s\",\"rate_limit\":{\"per_second\":1,\"burst\":0}}", "rate_limit.burst"},
	    {"{\"slug\":\"s\",\"rate_limit\":{\"per_second\":1,\"burst\":1.5}}",
	        "rate_limit.burst"},
	    {"{\"slug\":\"s\",\"rate_limit\":{\"per_second\":1,\"brust\":1}}", "rate_limit.brust"},
	    {"{\"slug\":\"s\",\"ip_allowlist\":\"10.0.0.0/8\"}", "ip_allowlist"},
	    {"{\"slug\":\"s\",\"ip_allowlist\":[]}", "ip_allowlist"},
	    {"{\"slug\":\"s\",\"ip_allowlist\":[\"10.1.2.3/8\"]}", "ip_allowlist"},
	    {"{\"slug\":\"s\",\"ip_allowlist\":[\"10.0.0.0/8\",\"banana\"]}", "ip_allowlist"},
	    {"{\"slug\":\"s\",\"ip_allowlist\":[\"10.0.0.0/33\"]}", "ip_allowlist"},
	    {"{\"slug\":\"s\",\"dedupe_key\":\"id\"}", "dedupe_key"},
	    {"{\"slug\":\"s\",\"dedupe_key\":\"header:\"}", "dedupe_key"},
	    {"{\"slug\":\"s\",\"dedupe_key\":\"json:$..\"}", "dedupe_key"},
	    {"{\"slug\":\"s\",\"dedupe_key\":5}", "dedupe_key"},
	    {"{\"slug\":\"s\",\"event_type_key\":\"body:type\"}", "event_type_key"},
	    {"{\"slug\":\"s\",\"handler\":5}", "handler"},
	    {"{\"slug\":\"s\",\"handler\":{\"type\":\"shell\"}}", "handler.type"},
	    {"{\"slug\":\"s\",\"handler\":{\"type\":\"sql\"}}", "handler.function"},
	    {"{\"slug\":\"s\",\"handler\":{\"type\":\"sql\",\"function\":\"x; drop\"}}",
	        "handler.function"},
	    {"{\"slug\":\"s\",\"handler\":{\"type\":\"sql\",\"function\":\"f\",\"max_attempts\":0}"
	     "}",
	        "handler.max_attempts"},
	    {"{\"slug\":\"s\",\"handler\":{\"type\":\"sql\",\"fucntion\":\"f\"}}",
	        "handler.fucntion"},
	    {"{\"slug\":\"s\",\"review_required\":\"yes\"}", "review_required"},
	    {"{\"slug\":\"s\",\"active\":1}", "active"},
	    {"{\"slug\":\"s\",\"colour\":\"red\"}", "colour"},
	    {"{\"slug\":\"s\",\"id\":\"x\"}", "id"},
	    {"{\"slug\":\"s\",\"url\":\"/in/s\"}", "url"},
	    {"{\"slug\":\"s\",\"created_at\":\"x\"}", "created_at"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		refused(cases[i].body, SOURCE_INPUT_CREATE, cases[i].field);
	/* PATCH checks what it is given the same way. */
	refused("{\"max_body\":0}", SOURCE_INPUT_PATCH, "max_body");
	refused("{\"slug\":null}", SOURCE_INPUT_PATCH, "slug");
	refused("{\"nope\":1}", SOURCE_INPUT_PATCH, "nope");
	refused("{\"name\":\"x\"}", SOURCE_INPUT_REPLACE, "slug");
}
END_TEST

START_TEST(test_error_never_shows_a_secret)
{
	struct source_input in;
	struct source_input_error err;

	ck_assert_int_eq(
	    parse("{\"slug\":\"s\",\"verifier\":\"discord\",\"secret\":\"topsecretvalue\"}",
	        SOURCE_INPUT_CREATE, &in, &err),
	    0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), -1);
	ck_assert_str_eq(err.field, "secret");
	ck_assert_ptr_null(strstr(err.message, "topsecretvalue"));
	source_input_clear(&in);
}
END_TEST

/* --- PATCH merges --------------------------------------------------------------------------- */

START_TEST(test_patch_gives_only_what_it_names)
{
	struct source_input in;
	struct source_input_error err;

	ck_assert_int_eq(
	    parse("{\"name\":\"n\",\"active\":false}", SOURCE_INPUT_PATCH, &in, &err), 0);
	ck_assert_uint_eq(in.given, SOURCE_F_NAME | SOURCE_F_ACTIVE);
	ck_assert_ptr_null(in.slug);
	ck_assert_ptr_null(in.verifier);
	ck_assert_ptr_null(in.handler);
	source_input_clear(&in);
	ck_assert_int_eq(parse("{}", SOURCE_INPUT_PATCH, &in, &err), 0);
	ck_assert_uint_eq(in.given, 0);
	source_input_clear(&in);
}
END_TEST

START_TEST(test_patch_merge)
{
	struct source_input base, patch;
	struct source_input_error err;

	ck_assert_int_eq(
	    parse("{\"slug\":\"s\",\"name\":\"old\",\"description\":\"d\","
	          "\"verifier\":\"github\",\"allowed_event_types\":[\"a\"],"
	          "\"rate_limit\":{\"per_second\":5,\"burst\":7},"
	          "\"ip_allowlist\":[\"10.0.0.0/8\"],\"dedupe_key\":\"header:X-Id\","
	          "\"handler\":{\"type\":\"sql\",\"function\":\"f\"},\"max_body\":100}",
	        SOURCE_INPUT_REPLACE, &base, &err),
	    0);
	base.given = 0;
	ck_assert_int_eq(parse("{\"name\":\"new\",\"description\":null,\"rate_limit\":null,"
	                       "\"allowed_event_types\":[\"b\",\"c\"],\"handler\":null,"
	                       "\"active\":false}",
	                     SOURCE_INPUT_PATCH, &patch, &err),
	    0);
	source_input_merge(&base, &patch);
	source_input_clear(&patch);
	/* Named fields changed, null ones went back to their defaults ... */
	ck_assert_str_eq(base.name, "new");
	ck_assert_ptr_null(base.description);
	ck_assert(base.rate_per_sec == 0);
	ck_assert_int_eq(base.rate_burst, 0);
	ck_assert_int_eq(base.nallowed, 2);
	ck_assert_str_eq(base.allowed_types[0], "b");
	ck_assert_str_eq(json_get_str(base.handler, "type"), "store");
	ck_assert_ptr_null(base.handler_function);
	ck_assert_int_eq(base.active, 0);
	/* ... and the others kept theirs. */
	ck_assert_str_eq(base.slug, "s");
	ck_assert_str_eq(json_get_str(base.verifier, "scheme"), "github");
	ck_assert_int_eq(base.nallow, 1);
	ck_assert_str_eq(base.dedupe_key, "header:X-Id");
	ck_assert_int_eq(base.max_body, 100);
	ck_assert_int_eq(base.tolerance, 300);
	ck_assert_uint_eq(base.given, SOURCE_F_NAME | SOURCE_F_DESCRIPTION | SOURCE_F_RATE_LIMIT |
	                                  SOURCE_F_ALLOWED_TYPES | SOURCE_F_HANDLER |
	                                  SOURCE_F_ACTIVE);
	ck_assert(!(base.given & SOURCE_F_SECRETS));
	source_input_clear(&base);
}
END_TEST

START_TEST(test_patch_merge_seed_002_fields)
{
	struct source_input in;

	patched("{\"slug\":\"crm\",\"allowed_object_types\":[\"person\"],"
	        "\"default_entity_table\":\"people\"}",
	    "{\"default_entity_table\":\"influencer\"}", &in);
	ck_assert_uint_eq(in.given, SOURCE_F_ENTITY_TABLE);
	ck_assert_int_eq(in.nobject_types, 1);
	ck_assert_str_eq(in.object_types[0], "person");
	ck_assert_str_eq(in.entity_table, "influencer");
	source_input_clear(&in);
	patched("{\"slug\":\"crm\",\"allowed_object_types\":[\"person\"],"
	        "\"default_entity_table\":\"people\"}",
	    "{\"allowed_object_types\":null}", &in);
	ck_assert_ptr_null(in.object_types);
	ck_assert_str_eq(in.entity_table, "people");
	source_input_clear(&in);
}
END_TEST

START_TEST(test_patch_merge_secrets_and_slug)
{
	struct source_input base, patch;
	struct source_input_error err;

	ck_assert_int_eq(
	    parse("{\"slug\":\"s\",\"verifier\":\"github\"}", SOURCE_INPUT_REPLACE, &base, &err),
	    0);
	base.given = 0;
	ck_assert_int_eq(
	    parse("{\"slug\":\"t\",\"secrets\":[\"x1\",\"x2\"]}", SOURCE_INPUT_PATCH, &patch, &err),
	    0);
	source_input_merge(&base, &patch);
	source_input_clear(&patch);
	ck_assert_str_eq(base.slug, "t");
	ck_assert_int_eq(base.nsecrets, 2);
	ck_assert_str_eq(base.secrets[1], "x2");
	ck_assert(base.given & SOURCE_F_SECRETS);
	/* Given secrets are used as they are: nothing is generated. */
	ck_assert_int_eq(source_input_finish(&base, 0, &err), 0);
	ck_assert_int_eq(base.secret_generated, 0);
	source_input_clear(&base);
}
END_TEST

/* --- finishing: secrets and verifiers --------------------------------------------------- */

START_TEST(test_finish_generates_secrets)
{
	struct source_input in;
	struct source_input_error err;
	unsigned char raw[64];

	/* Standard Webhooks: whsec_ + base64 of 32 bytes. */
	ck_assert_int_eq(
	    parse("{\"slug\":\"s\",\"verifier\":\"standard\"}", SOURCE_INPUT_CREATE, &in, &err), 0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.nsecrets, 1);
	ck_assert_int_eq(in.secret_generated, 1);
	ck_assert(in.given & SOURCE_F_SECRETS);
	ck_assert(strncmp(in.secrets[0], "whsec_", 6) == 0);
	ck_assert_int_eq(
	    base64_decode(in.secrets[0] + 6, strlen(in.secrets[0] + 6), raw, sizeof(raw)), 32);
	source_input_clear(&in);

	/* Others: 32 random bytes as hex. */
	ck_assert_int_eq(
	    parse("{\"slug\":\"s\",\"verifier\":\"github\"}", SOURCE_INPUT_CREATE, &in, &err), 0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(strlen(in.secrets[0]), 64);
	ck_assert_int_eq(hex_decode(in.secrets[0], 64, raw, sizeof(raw)), 32);
	source_input_clear(&in);

	/* No verification: no secret. */
	ck_assert_int_eq(parse("{\"slug\":\"s\"}", SOURCE_INPUT_CREATE, &in, &err), 0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.nsecrets, 0);
	source_input_clear(&in);

	/* Secrets already stored and live: nothing to make. */
	ck_assert_int_eq(parse("{\"verifier\":\"github\"}", SOURCE_INPUT_PATCH, &in, &err), 0);
	ck_assert_int_eq(source_input_finish(&in, 1, &err), 0);
	ck_assert_int_eq(in.nsecrets, 0);
	ck_assert(!(in.given & SOURCE_F_SECRETS));
	source_input_clear(&in);

	/* An explicit empty list replaces the stored ones, so one is made. */
	ck_assert_int_eq(parse("{\"slug\":\"s\",\"verifier\":\"slack\",\"secrets\":[]}",
	                     SOURCE_INPUT_REPLACE, &in, &err),
	    0);
	ck_assert_int_eq(source_input_finish(&in, 2, &err), 0);
	ck_assert_int_eq(in.secret_generated, 1);
	source_input_clear(&in);
}
END_TEST

/* A PATCH as api_sources makes it: the stored source, given = 0, the patch merged on top. */
static void
patched(const char *stored, const char *patch_text, struct source_input *out)
{
	struct source_input patch;
	struct source_input_error err;

	ck_assert_int_eq(parse(stored, SOURCE_INPUT_REPLACE, out, &err), 0);
	out->given = 0;
	ck_assert_int_eq(parse(patch_text, SOURCE_INPUT_PATCH, &patch, &err), 0);
	source_input_merge(out, &patch);
	source_input_clear(&patch);
}

START_TEST(test_finish_makes_no_secret_for_other_edits)
{
	static const char seed[] = "{\"slug\":\"customer\",\"verifier\":{\"scheme\":\"supabase\"},"
	                           "\"handler\":{\"type\":\"sql_sync\",\"function\":\"f.g\"}}";
	struct source_input in;
	struct source_input_error err;

	/* A seed's source with no secret: a rate limit, an allowlist, active: no secret. */
	patched(seed, "{\"rate_limit\":{\"per_second\":1,\"burst\":1}}", &in);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.nsecrets, 0);
	ck_assert_int_eq(in.secret_generated, 0);
	ck_assert(!(in.given & SOURCE_F_SECRETS));
	source_input_clear(&in);
	patched(seed, "{\"ip_allowlist\":[\"10.0.0.0/8\"],\"active\":false,\"name\":\"n\"}", &in);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.nsecrets, 0);
	source_input_clear(&in);
	/* The same for a Discord source without its key: nothing to refuse either. */
	patched("{\"slug\":\"d\",\"verifier\":\"discord\"}", "{\"max_body\":100}", &in);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.nsecrets, 0);
	source_input_clear(&in);

	/* Naming the verifier (even the same one) makes one, as does an empty secret list. */
	patched(seed, "{\"verifier\":\"supabase\"}", &in);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.secret_generated, 1);
	ck_assert_int_eq(strlen(in.secrets[0]), 64);
	source_input_clear(&in);
	patched(seed, "{\"secrets\":[]}", &in);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.secret_generated, 1);
	source_input_clear(&in);

	/* PUT names every field it sets: a verifier named makes one, none leaves "none". */
	ck_assert_int_eq(parse(seed, SOURCE_INPUT_REPLACE, &in, &err), 0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.secret_generated, 1);
	source_input_clear(&in);
	ck_assert_int_eq(parse("{\"slug\":\"customer\"}", SOURCE_INPUT_REPLACE, &in, &err), 0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
	ck_assert_int_eq(in.nsecrets, 0);
	source_input_clear(&in);
}
END_TEST

START_TEST(test_finish_discord_needs_public_key)
{
	struct source_input in;
	struct source_input_error err;
	static const char key[] =
	    "e1ca7a4b4f9e3c5a7f0c1e2d3b4a59687766554433221100ffeeddccbbaa9988";

	ck_assert_int_eq(
	    parse("{\"slug\":\"d\",\"verifier\":\"discord\"}", SOURCE_INPUT_CREATE, &in, &err), 0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), -1);
	ck_assert_str_eq(err.field, "secret");
	source_input_clear(&in);

	ck_assert_int_eq(parse("{\"slug\":\"d\",\"verifier\":\"discord\",\"secrets\":[\"abcd\"]}",
	                     SOURCE_INPUT_CREATE, &in, &err),
	    0);
	ck_assert_int_eq(source_input_finish(&in, 0, &err), -1);
	ck_assert_str_eq(err.field, "secrets");
	source_input_clear(&in);

	{
		char body[256];

		snprintf(body, sizeof(body),
		    "{\"slug\":\"d\",\"verifier\":\"discord\",\"secret\":\"%s\"}", key);
		ck_assert_int_eq(parse(body, SOURCE_INPUT_CREATE, &in, &err), 0);
		ck_assert_int_eq(source_input_finish(&in, 0, &err), 0);
		ck_assert_int_eq(in.secret_generated, 0);
		source_input_clear(&in);
	}
}
END_TEST

START_TEST(test_key_encodings)
{
	struct json_object *v;
	char why[200];

	v = js("\"standard\"");
	ck_assert_int_eq(source_verifier_key_encoding(v), SOURCE_KEYENC_WHSEC);
	json_object_put(v);
	v = js("{\"scheme\":\"svix\"}");
	ck_assert_int_eq(source_verifier_key_encoding(v), SOURCE_KEYENC_WHSEC);
	json_object_put(v);
	v = js("{\"scheme\":\"discord\"}");
	ck_assert_int_eq(source_verifier_key_encoding(v), SOURCE_KEYENC_ED25519);
	json_object_put(v);
	v = js("{\"scheme\":\"github\"}");
	ck_assert_int_eq(source_verifier_key_encoding(v), SOURCE_KEYENC_RAW);
	json_object_put(v);
	v = js("{\"scheme\":\"hmac\",\"header\":\"X\",\"key_encoding\":\"hex\"}");
	ck_assert_int_eq(source_verifier_key_encoding(v), SOURCE_KEYENC_HEX);
	json_object_put(v);
	v = js("{\"scheme\":\"hmac\",\"header\":\"X\",\"algorithm\":\"ed25519\"}");
	ck_assert_int_eq(source_verifier_key_encoding(v), SOURCE_KEYENC_ED25519);
	json_object_put(v);

	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_RAW, "any thing", why, sizeof(why)), 0);
	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_RAW, "tab\there", why, sizeof(why)), -1);
	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_HEX, "00ff", why, sizeof(why)), 0);
	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_HEX, "0g", why, sizeof(why)), -1);
	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_WHSEC,
	                     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", why, sizeof(why)),
	    0);
	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_WHSEC,
	                     "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", why, sizeof(why)),
	    0);
	ck_assert_int_eq(
	    source_secret_check(SOURCE_KEYENC_WHSEC, "whsec_!!!", why, sizeof(why)), -1);
	ck_assert_ptr_null(strstr(why, "!!!"));
	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_BASE64, "%%%", why, sizeof(why)), -1);
	ck_assert_int_eq(source_secret_check(SOURCE_KEYENC_ED25519, "00", why, sizeof(why)), -1);
	ck_assert_ptr_null(source_secret_generate(SOURCE_KEYENC_ED25519));
}
END_TEST

START_TEST(test_secret_helpers)
{
	char id[21], hint[16], *a, *b;

	source_secret_id(id);
	ck_assert_int_eq(strlen(id), 20);
	ck_assert(strncmp(id, "sec_", 4) == 0);
	for (int i = 4; i < 20; i++)
		ck_assert(strchr("0123456789abcdef", id[i]) != NULL);
	source_secret_hint("whsec_0123456789abcdefWXYZ", hint, sizeof(hint));
	ck_assert_str_eq(hint, "\xe2\x80\xa6WXYZ");
	source_secret_hint("short", hint, sizeof(hint));
	ck_assert_str_eq(hint, "\xe2\x80\xa6");
	a = source_secret_generate(SOURCE_KEYENC_RAW);
	b = source_secret_generate(SOURCE_KEYENC_RAW);
	ck_assert_str_ne(a, b);
	free(a);
	free(b);
}
END_TEST

/* --- stored secret lists ------------------------------------------------------------------ */

START_TEST(test_secrets_seal_round_trip)
{
	unsigned char key[32];
	char *plain[] = {"first-secret", "second-secret"};
	char *text, *open0;
	struct json_object *arr, *e;

	randombytes_buf(key, sizeof(key));
	text = source_secrets_seal(key, plain, 2, 1767225600123ull);
	ck_assert_ptr_null(strstr(text, "first-secret"));
	arr = js(text);
	ck_assert_int_eq(json_object_array_length(arr), 2);
	e = json_object_array_get_idx(arr, 0);
	ck_assert(strncmp(json_get_str(e, "id"), "sec_", 4) == 0);
	ck_assert_str_eq(json_get_str(e, "created_at"), "2026-01-01T00:00:00.123Z");
	ck_assert(json_object_object_get_ex(e, "expires_at", NULL));
	ck_assert_ptr_null(json_get_str(e, "expires_at"));
	open0 = seal_decrypt(key, json_get_str(e, "sealed"));
	ck_assert_str_eq(open0, "first-secret");
	seal_free(open0);
	ck_assert_str_ne(
	    json_get_str(e, "id"), json_get_str(json_object_array_get_idx(arr, 1), "id"));
	json_object_put(arr);
	free(text);
}
END_TEST

static const char stored[] =
    "[{\"id\":\"sec_1\",\"sealed\":\"S1\",\"created_at\":\"2026-01-02T00:00:00.000Z\","
    "\"expires_at\":null,\"live\":true},"
    "{\"id\":\"sec_2\",\"sealed\":\"S2\",\"created_at\":\"2026-01-01T00:00:00.000Z\","
    "\"expires_at\":\"2026-03-01T00:00:00.000Z\",\"live\":true},"
    "{\"id\":\"sec_3\",\"sealed\":\"S3\",\"created_at\":\"2025-01-01T00:00:00.000Z\","
    "\"expires_at\":\"2025-02-01T00:00:00.000Z\",\"live\":false}]";

static struct json_object *
new_entry(void)
{
	return js(
	    "{\"id\":\"sec_new\",\"sealed\":\"SN\",\"created_at\":\"2026-02-01T00:00:00.000Z\","
	    "\"expires_at\":null}");
}

START_TEST(test_secrets_rotate)
{
	char *text;

	/* Without an expiry the live ones stay as they were; the expired one goes. */
	text = source_secrets_rotate(stored, new_entry(), NULL);
	ck_assert_str_eq(text,
	    "[{\"id\":\"sec_new\",\"sealed\":\"SN\",\"created_at\":\"2026-02-01T00:00:00.000Z\","
	    "\"expires_at\":null},"
	    "{\"id\":\"sec_1\",\"sealed\":\"S1\",\"created_at\":\"2026-01-02T00:00:00.000Z\","
	    "\"expires_at\":null},"
	    "{\"id\":\"sec_2\",\"sealed\":\"S2\",\"created_at\":\"2026-01-01T00:00:00.000Z\","
	    "\"expires_at\":\"2026-03-01T00:00:00.000Z\"}]");
	free(text);
	/* With one, every previous secret expires then, unless it expires earlier already. */
	text = source_secrets_rotate(stored, new_entry(), "2026-04-01T00:00:00.000Z");
	ck_assert_ptr_nonnull(strstr(text, "\"id\":\"sec_1\",\"sealed\":\"S1\",\"created_at\":"
	                                   "\"2026-01-02T00:00:00.000Z\",\"expires_at\":"
	                                   "\"2026-04-01T00:00:00.000Z\""));
	ck_assert_ptr_nonnull(strstr(text, "\"expires_at\":\"2026-03-01T00:00:00.000Z\""));
	ck_assert_ptr_nonnull(strstr(text, "\"id\":\"sec_new\",\"sealed\":\"SN\",\"created_at\":"
	                                   "\"2026-02-01T00:00:00.000Z\",\"expires_at\":null"));
	free(text);
	text = source_secrets_rotate(stored, new_entry(), "2026-02-15T00:00:00.000Z");
	ck_assert_ptr_null(strstr(text, "2026-03-01"));
	free(text);
	/* A first secret on an empty list. */
	text = source_secrets_rotate("[]", new_entry(), NULL);
	ck_assert_ptr_nonnull(strstr(text, "sec_new"));
	free(text);
	ck_assert_ptr_null(source_secrets_rotate("{}", new_entry(), NULL));
}
END_TEST

START_TEST(test_secrets_remove)
{
	char *text;
	int live;

	text = source_secrets_remove(stored, "sec_1", &live);
	ck_assert_int_eq(live, 1);
	ck_assert_ptr_null(strstr(text, "sec_1"));
	ck_assert_ptr_null(strstr(text, "live"));
	ck_assert_ptr_nonnull(strstr(text, "sec_3"));
	free(text);
	text = source_secrets_remove(stored, "sec_3", &live);
	ck_assert_int_eq(live, 2);
	free(text);
	ck_assert_ptr_null(source_secrets_remove(stored, "sec_9", &live));
	text = source_secrets_remove("[{\"id\":\"sec_a\",\"sealed\":\"x\",\"created_at\":null,"
	                             "\"expires_at\":null,\"live\":true}]",
	    "sec_a", &live);
	ck_assert_str_eq(text, "[]");
	ck_assert_int_eq(live, 0);
	free(text);
}
END_TEST

START_TEST(test_rotate_body)
{
	struct source_input_error err;
	struct json_object *o;
	char *secret;
	int64_t after;

	ck_assert_int_eq(source_rotate_parse(NULL, &secret, &after, &err), 0);
	ck_assert_ptr_null(secret);
	ck_assert_int_eq(after, -1);
	o = js("{\"secret\":\"whsec_abc\",\"expire_previous_after\":3600}");
	ck_assert_int_eq(source_rotate_parse(o, &secret, &after, &err), 0);
	ck_assert_str_eq(secret, "whsec_abc");
	ck_assert_int_eq(after, 3600);
	free(secret);
	json_object_put(o);
	o = js("{\"secret\":null,\"expire_previous_after\":null}");
	ck_assert_int_eq(source_rotate_parse(o, &secret, &after, &err), 0);
	ck_assert_ptr_null(secret);
	ck_assert_int_eq(after, -1);
	json_object_put(o);
	o = js("{\"expire_previous_after\":-5}");
	ck_assert_int_eq(source_rotate_parse(o, &secret, &after, &err), -1);
	ck_assert_str_eq(err.field, "expire_previous_after");
	json_object_put(o);
	o = js("{\"secret\":\"ok\",\"expire_after\":5}");
	ck_assert_int_eq(source_rotate_parse(o, &secret, &after, &err), -1);
	ck_assert_str_eq(err.field, "expire_after");
	ck_assert_ptr_null(secret);
	json_object_put(o);
	o = js("{\"secret\":\"\"}");
	ck_assert_int_eq(source_rotate_parse(o, &secret, &after, &err), -1);
	ck_assert_str_eq(err.field, "secret");
	json_object_put(o);
	o = js("[1]");
	ck_assert_int_eq(source_rotate_parse(o, &secret, &after, &err), -1);
	json_object_put(o);
}
END_TEST

/* --- key values: dedupe and event-type keys ------------------------------------------- */

/* A request's headers for source_key_value: "Name: value" lines, looked up ignoring case. */
static const char *
test_header(void *ctx, const char *name)
{
	static char value[128];
	const char *const *lines = ctx;
	size_t n = strlen(name);

	for (; *lines != NULL; lines++) {
		if (strncasecmp(*lines, name, n) == 0 && (*lines)[n] == ':') {
			snprintf(value, sizeof(value), "%s", *lines + n + 2);
			return value;
		}
	}
	return NULL;
}

/* The value of spec for these headers and body (body text may be NULL), or NULL. */
static char *
key_value(const char *spec, const char *const *headers, const char *body)
{
	struct json_object *o = body != NULL ? js(body) : NULL;
	struct source_key k;
	char err[128], *v;

	ck_assert_msg(source_key_parse(spec, &k, err, sizeof(err)) == 0, "%s: %s", spec, err);
	v = source_key_value(&k, test_header, (void *)headers, o);
	source_key_clear(&k);
	json_object_put(o);
	return v;
}

static void
key_is(const char *spec, const char *const *headers, const char *body, const char *want)
{
	char *v = key_value(spec, headers, body);

	if (want == NULL)
		ck_assert_msg(v == NULL, "%s: got \"%s\", want none", spec, v);
	else
		ck_assert_msg(v != NULL && strcmp(v, want) == 0, "%s: got \"%s\", want \"%s\"",
		    spec, v ? v : "(none)", want);
	free(v);
}

START_TEST(test_key_values)
{
	static const char *const headers[] = {
	    "x-request-id: req-1", "X-Empty: ", "Idempotency-Key: k 2", NULL};
	static const char body[] =
	    "{\"id\":\"o-1\",\"n\":42,\"f\":1.5,\"big\":12345678901234,\"yes\":true,"
	    "\"no\":false,\"nil\":null,\"empty\":\"\",\"obj\":{\"id\":\"inner\"},"
	    "\"arr\":[\"a\",{\"id\":7}]}";
	struct source_key none = {SOURCE_KEY_NONE, NULL};

	/* Headers: the name as configured, matched whatever the case. */
	key_is("header:X-Request-Id", headers, NULL, "req-1");
	key_is("header:idempotency-key", headers, body, "k 2");
	key_is("header:X-Missing", headers, body, NULL);
	key_is("header:X-Empty", headers, body, NULL);
	/* JSON paths: strings as they are, other scalars as JSON text. */
	key_is("json:$.id", headers, body, "o-1");
	key_is("json:$.n", headers, body, "42");
	key_is("json:$.f", headers, body, "1.5");
	key_is("json:$.big", headers, body, "12345678901234");
	key_is("json:$.yes", headers, body, "true");
	key_is("json:$.no", headers, body, "false");
	key_is("json:$.obj.id", headers, body, "inner");
	key_is("json:$.arr[0]", headers, body, "a");
	key_is("json:$.arr[1].id", headers, body, "7");
	key_is("json:id", headers, body, "o-1"); /* the $ is optional */
	/* No value: missing, null, "", an object, an array, past the end, no body. */
	key_is("json:$.missing", headers, body, NULL);
	key_is("json:$.obj.missing", headers, body, NULL);
	key_is("json:$.nil", headers, body, NULL);
	key_is("json:$.empty", headers, body, NULL);
	key_is("json:$.obj", headers, body, NULL);
	key_is("json:$.arr", headers, body, NULL);
	key_is("json:$.arr[5]", headers, body, NULL);
	key_is("json:$.id.deeper", headers, body, NULL);
	key_is("json:$.id", headers, NULL, NULL);
	key_is("json:$.id", headers, "[1,2]", NULL);
	/* An unset key has no value. */
	ck_assert_ptr_null(source_key_value(&none, test_header, (void *)headers, NULL));
}
END_TEST

START_TEST(test_key_specs)
{
	struct source_key k;
	char err[128];

	ck_assert_int_eq(source_key_parse("HEADER:X-Id", &k, err, sizeof(err)), 0);
	ck_assert_int_eq(k.kind, SOURCE_KEY_HEADER);
	ck_assert_str_eq(k.arg, "X-Id");
	source_key_clear(&k);
	ck_assert_int_eq(source_key_parse("json:$.a.b", &k, err, sizeof(err)), 0);
	ck_assert_int_eq(k.kind, SOURCE_KEY_JSON);
	ck_assert_str_eq(k.arg, "$.a.b");
	source_key_clear(&k);
	ck_assert_int_eq(source_key_parse("", &k, err, sizeof(err)), 0);
	ck_assert_int_eq(k.kind, SOURCE_KEY_NONE);
	ck_assert_int_eq(source_key_parse("header:", &k, err, sizeof(err)), -1);
	ck_assert_int_eq(source_key_parse("header:X Id", &k, err, sizeof(err)), -1);
	ck_assert_int_eq(source_key_parse("header:X-Id:", &k, err, sizeof(err)), -1);
	ck_assert_int_eq(source_key_parse("json:$", &k, err, sizeof(err)), -1);
	ck_assert_int_eq(source_key_parse("json:$.a[x]", &k, err, sizeof(err)), -1);
	ck_assert_int_eq(source_key_parse("json:$..a", &k, err, sizeof(err)), -1);
	ck_assert_int_eq(source_key_parse("X-Request-Id", &k, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "header:Name"));
}
END_TEST

static Suite *
source_input_suite(void)
{
	Suite *s = suite_create("source_input");
	TCase *tc = tcase_create("source_input");

	tcase_add_test(tc, test_minimal_create_takes_defaults);
	tcase_add_test(tc, test_full_create);
	tcase_add_test(tc, test_nulls_mean_defaults);
	tcase_add_test(tc, test_shorthands_and_lists);
	tcase_add_test(tc, test_slug_valid);
	tcase_add_test(tc, test_invalid_fields);
	tcase_add_test(tc, test_error_never_shows_a_secret);
	tcase_add_test(tc, test_patch_gives_only_what_it_names);
	tcase_add_test(tc, test_patch_merge);
	tcase_add_test(tc, test_patch_merge_secrets_and_slug);
	tcase_add_test(tc, test_patch_merge_seed_002_fields);
	tcase_add_test(tc, test_finish_generates_secrets);
	tcase_add_test(tc, test_finish_discord_needs_public_key);
	tcase_add_test(tc, test_finish_makes_no_secret_for_other_edits);
	tcase_add_test(tc, test_key_encodings);
	tcase_add_test(tc, test_secret_helpers);
	tcase_add_test(tc, test_secrets_seal_round_trip);
	tcase_add_test(tc, test_secrets_rotate);
	tcase_add_test(tc, test_secrets_remove);
	tcase_add_test(tc, test_rotate_body);
	tcase_add_test(tc, test_key_values);
	tcase_add_test(tc, test_key_specs);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (sodium_init() < 0)
		return 1;
	sr = srunner_create(source_input_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
