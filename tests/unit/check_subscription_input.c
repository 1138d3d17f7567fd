/* SPDX-License-Identifier: ISC */
/* Unit tests for subscription and publish API input: field checks, defaults, merges, secrets. */
#include "config.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json.h"
#include "hookd/sign.h"
#include "hookd/subscription_input.h"
#include "hookd/util.h"

#define URL "\"url\":\"https://example.com/hooks\""

static struct json_object *
js(const char *text)
{
	char err[128];
	struct json_object *o = json_parse(text, strlen(text), err, sizeof(err));

	ck_assert_msg(o != NULL, "bad test JSON %s: %s", text, err);
	return o;
}

static int
parse(const char *text, enum subscription_input_mode mode, enum subscription_api api,
    struct subscription_input *in, struct subscription_input_error *err)
{
	struct json_object *o = js(text);
	int rc = subscription_input_parse(o, mode, api, in, err);

	json_object_put(o);
	return rc;
}

/* The body is refused, naming field. */
static void
refused_as(const char *text, enum subscription_input_mode mode, enum subscription_api api,
    const char *field)
{
	struct subscription_input in;
	struct subscription_input_error err;

	ck_assert_msg(parse(text, mode, api, &in, &err) == -1, "accepted: %s", text);
	ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\" (%s)", text,
	    err.field, field, err.message);
	ck_assert_msg(err.message[0] != '\0', "%s: no message", text);
	ck_assert_ptr_null(in.name);
	ck_assert_ptr_null(in.events);
}

static void
refused(const char *text, const char *field)
{
	refused_as(text, SUB_INPUT_CREATE, SUB_API_V1, field);
}

static char *
compact(struct json_object *o)
{
	return json_compact(o, NULL);
}

static void
assert_json(struct json_object *o, const char *want)
{
	char *got = compact(o);

	ck_assert_str_eq(got, want);
	free(got);
}

START_TEST(test_minimal_create_takes_defaults)
{
	struct subscription_input in;
	struct subscription_input_error err;

	ck_assert_int_eq(
	    parse("{\"name\":\"n\"," URL "}", SUB_INPUT_CREATE, SUB_API_V1, &in, &err), 0);
	ck_assert_uint_eq(in.given, SUB_F_NAME | SUB_F_URL);
	ck_assert_str_eq(in.name, "n");
	ck_assert_str_eq(in.url, "https://example.com/hooks");
	ck_assert_ptr_null(in.description);
	ck_assert_ptr_null(in.secret);
	ck_assert_int_eq(in.enabled, 1);
	assert_json(in.events, "[\"*\"]");
	ck_assert_int_eq(in.max_retries, 3);
	ck_assert_int_eq(in.timeout_seconds, 30);
	ck_assert(in.backoff_s == 1.0 && in.multiplier == 2.0 && in.max_delay_s == 60.0);
	ck_assert(in.jitter == 0.1);
	ck_assert_ptr_null(in.schedule);
	assert_json(in.headers, "{}");
	ck_assert_ptr_null(in.ip_allowlist);
	ck_assert_uint_eq(in.sign_flags, SIGN_STANDARD);
	ck_assert_int_eq(in.format, PAYLOAD_DEFAULT);

	/* finish: a secret is made, standard only */
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_V1, 0, NULL, &err), 0);
	ck_assert(in.secret_generated);
	ck_assert_ptr_nonnull(in.secret);
	ck_assert_int_eq(strncmp(in.secret, "whsec_", 6), 0);
	ck_assert_uint_eq(in.sign_flags, SIGN_STANDARD);
	subscription_input_clear(&in);
}
END_TEST

START_TEST(test_full_create)
{
	struct subscription_input in;
	struct subscription_input_error err;
	const char *body =
	    "{\"name\":\"User Events\",\"description\":\"d\"," URL ","
	    "\"secret\":\"your-webhook-secret\","
	    "\"enabled\":false,\"events\":[\"order.created\",\"order.*\",\"*\","
	    "{\"table\":\"users\",\"operations\":[\"insert\",\"UPDATE\",\"INSERT\"]},"
	    "{\"table\":\"public.orders\"}],"
	    "\"max_retries\":10,\"timeout_seconds\":5,\"retry_backoff_seconds\":5,"
	    "\"retry_multiplier\":3,\"retry_max_delay_seconds\":120,\"retry_jitter\":0,"
	    "\"retry_schedule\":[1,5,30.5],\"headers\":{\"Authorization\":\"Bearer x\","
	    "\"X-Tenant\":\"t1\"},\"ip_allowlist\":[\"10.0.0.0/8\",\"203.0.113.7\"],"
	    "\"signature_headers\":[\"fluxbase\"],\"payload_format\":\"supabase\"}";

	ck_assert_int_eq(parse(body, SUB_INPUT_CREATE, SUB_API_V1, &in, &err), 0);
	ck_assert_str_eq(in.description, "d");
	ck_assert_str_eq(in.secret, "your-webhook-secret");
	ck_assert_int_eq(in.enabled, 0);
	assert_json(in.events, "[\"order.created\",\"order.*\",\"*\","
	                       "{\"table\":\"users\",\"operations\":[\"INSERT\",\"UPDATE\"]},"
	                       "{\"table\":\"public.orders\",\"operations\":[\"INSERT\",\"UPDATE\","
	                       "\"DELETE\"]}]");
	ck_assert_int_eq(in.max_retries, 10);
	ck_assert_int_eq(in.timeout_seconds, 5);
	ck_assert(
	    in.backoff_s == 5 && in.multiplier == 3 && in.max_delay_s == 120 && in.jitter == 0);
	ck_assert_int_eq(in.nschedule, 3);
	ck_assert(in.schedule[2] == 30.5);
	assert_json(in.headers, "{\"Authorization\":\"Bearer x\",\"X-Tenant\":\"t1\"}");
	ck_assert_int_eq(in.nallow, 2);
	ck_assert_str_eq(in.ip_allowlist[1], "203.0.113.7/32");
	ck_assert_uint_eq(in.sign_flags, SIGN_STANDARD | SIGN_FLUXBASE);
	ck_assert_int_eq(in.format, PAYLOAD_SUPABASE);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_V1, 0, NULL, &err), 0);
	ck_assert(!in.secret_generated);
	ck_assert_str_eq(in.secret, "your-webhook-secret");
	subscription_input_clear(&in);
}
END_TEST

START_TEST(test_header_sets_by_api)
{
	struct subscription_input in;
	struct subscription_input_error err;
	unsigned stored = SIGN_STANDARD | SIGN_OMNISALES;

	/* v1 with a secret: fluxbase added (seed 004) */
	ck_assert_int_eq(parse("{\"name\":\"n\"," URL ",\"secret\":\"s3cret\"}", SUB_INPUT_CREATE,
	                     SUB_API_V1, &in, &err),
	    0);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_V1, 0, NULL, &err), 0);
	ck_assert_uint_eq(in.sign_flags, SIGN_STANDARD | SIGN_FLUXBASE);
	subscription_input_clear(&in);
	/* v1 with a secret and explicit sets: they win, standard always there */
	ck_assert_int_eq(parse("{\"name\":\"n\"," URL ",\"secret\":\"s3cret\","
	                       "\"signature_headers\":[\"omnisales\"]}",
	                     SUB_INPUT_CREATE, SUB_API_V1, &in, &err),
	    0);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_V1, 0, NULL, &err), 0);
	ck_assert_uint_eq(in.sign_flags, SIGN_STANDARD | SIGN_OMNISALES);
	subscription_input_clear(&in);
	/* seed 003: standard and omnisales; a given secret adds nothing */
	ck_assert_int_eq(parse("{\"name\":\"n\"," URL ",\"secret\":\"s3cret\"}", SUB_INPUT_CREATE,
	                     SUB_API_OMNISALES, &in, &err),
	    0);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_OMNISALES, 0, NULL, &err), 0);
	ck_assert_uint_eq(in.sign_flags, SIGN_STANDARD | SIGN_OMNISALES);
	subscription_input_clear(&in);
	/* an update keeps the stored sets */
	ck_assert_int_eq(
	    parse("{\"name\":\"n\"," URL "}", SUB_INPUT_REPLACE, SUB_API_V1, &in, &err), 0);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_V1, 1, &stored, &err), 0);
	ck_assert_uint_eq(in.sign_flags, stored);
	ck_assert_ptr_null(in.secret); /* has one: nothing generated */
	subscription_input_clear(&in);
	/* signature_headers is not a field of seed 003's API */
	refused_as("{\"name\":\"n\"," URL ",\"signature_headers\":[]}", SUB_INPUT_CREATE,
	    SUB_API_OMNISALES, "signature_headers");
}
END_TEST

START_TEST(test_omnisales_names)
{
	struct subscription_input in;
	struct subscription_input_error err;

	ck_assert_int_eq(parse("{\"name\":\"Order Notifications\"," URL ",\"events\":"
	                       "[\"order.created\"],\"is_active\":false,\"ip_whitelist\":"
	                       "[\"192.168.1.100\",\"203.0.113.0/24\"],\"id\":\"x\","
	                       "\"created_at\":\"2025-01-16T10:30:00Z\"}",
	                     SUB_INPUT_CREATE, SUB_API_OMNISALES, &in, &err),
	    0);
	ck_assert_int_eq(in.enabled, 0);
	ck_assert_int_eq(in.nallow, 2);
	ck_assert_str_eq(in.ip_allowlist[0], "192.168.1.100/32");
	ck_assert_uint_eq(
	    in.given & (SUB_F_ENABLED | SUB_F_IP_ALLOWLIST), SUB_F_ENABLED | SUB_F_IP_ALLOWLIST);
	subscription_input_clear(&in);
	/* v1 names are unknown there, and its errors use its names */
	refused_as("{\"name\":\"n\"," URL ",\"enabled\":true}", SUB_INPUT_CREATE, SUB_API_OMNISALES,
	    "enabled");
	refused_as("{\"name\":\"n\"," URL ",\"is_active\":1}", SUB_INPUT_CREATE, SUB_API_OMNISALES,
	    "is_active");
	refused_as("{\"name\":\"n\"," URL ",\"ip_whitelist\":[\"x\"]}", SUB_INPUT_CREATE,
	    SUB_API_OMNISALES, "ip_whitelist");
	/* read-only fields are refused by v1 */
	refused("{\"name\":\"n\"," URL ",\"id\":\"x\"}", "id");
	refused("{\"name\":\"n\"," URL ",\"failure_streak\":0}", "failure_streak");
}
END_TEST

START_TEST(test_invalid_fields)
{
	static const struct {
		const char *body, *field;
	} cases[] = {
	    {"{" URL "}", "name"},
	    {"{\"name\":\"\"," URL "}", "name"},
	    {"{\"name\":5," URL "}", "name"},
	    {"{\"name\":null," URL "}", "name"},
	    {"{\"name\":\"n\"}", "url"},
	    {"{\"name\":\"n\",\"url\":\"ftp://example.com/\"}", "url"},
	    {"{\"name\":\"n\",\"url\":\"https://user:pw@example.com/\"}", "url"},
	    {"{\"name\":\"n\",\"url\":\"not a url\"}", "url"},
	    {"{\"name\":\"n\",\"url\":\"http://127.1/\"}", "url"},
	    {"{\"name\":\"n\"," URL ",\"description\":[1]}", "description"},
	    {"{\"name\":\"n\"," URL ",\"secret\":\"\"}", "secret"},
	    {"{\"name\":\"n\"," URL ",\"secret\":12}", "secret"},
	    {"{\"name\":\"n\"," URL ",\"secret\":\"whsec_!!!\"}", "secret"},
	    {"{\"name\":\"n\"," URL ",\"secret\":\"a\\nb\"}", "secret"},
	    {"{\"name\":\"n\"," URL ",\"enabled\":\"yes\"}", "enabled"},
	    {"{\"name\":\"n\"," URL ",\"events\":[]}", "events"},
	    {"{\"name\":\"n\"," URL ",\"events\":\"*\"}", "events"},
	    {"{\"name\":\"n\"," URL ",\"events\":[\"order.*.x\"]}", "events[0]"},
	    {"{\"name\":\"n\"," URL ",\"events\":[\"*\",\"a b\"]}", "events[1]"},
	    {"{\"name\":\"n\"," URL ",\"events\":[\".x\"]}", "events[0]"},
	    {"{\"name\":\"n\"," URL ",\"events\":[5]}", "events[0]"},
	    {"{\"name\":\"n\"," URL ",\"events\":[{\"operations\":[\"INSERT\"]}]}",
	        "events[0].table"},
	    {"{\"name\":\"n\"," URL ",\"events\":[{\"table\":\"users; drop\"}]}",
	        "events[0].table"},
	    {"{\"name\":\"n\"," URL ",\"events\":[{\"table\":\"a.b.c\"}]}", "events[0].table"},
	    {"{\"name\":\"n\"," URL ",\"events\":[{\"table\":\"u\",\"operations\":[]}]}",
	        "events[0].operations"},
	    {"{\"name\":\"n\"," URL
	     ",\"events\":[{\"table\":\"u\",\"operations\":[\"TRUNCATE\"]}]}",
	        "events[0].operations"},
	    {"{\"name\":\"n\"," URL ",\"events\":[{\"table\":\"u\",\"colour\":1}]}",
	        "events[0].colour"},
	    {"{\"name\":\"n\"," URL ",\"max_retries\":101}", "max_retries"},
	    {"{\"name\":\"n\"," URL ",\"max_retries\":-1}", "max_retries"},
	    {"{\"name\":\"n\"," URL ",\"max_retries\":1.5}", "max_retries"},
	    {"{\"name\":\"n\"," URL ",\"timeout_seconds\":0}", "timeout_seconds"},
	    {"{\"name\":\"n\"," URL ",\"timeout_seconds\":301}", "timeout_seconds"},
	    {"{\"name\":\"n\"," URL ",\"timeout_seconds\":\"30\"}", "timeout_seconds"},
	    {"{\"name\":\"n\"," URL ",\"retry_backoff_seconds\":-1}", "retry_backoff_seconds"},
	    {"{\"name\":\"n\"," URL ",\"retry_multiplier\":0.5}", "retry_multiplier"},
	    {"{\"name\":\"n\"," URL ",\"retry_max_delay_seconds\":true}",
	        "retry_max_delay_seconds"},
	    {"{\"name\":\"n\"," URL ",\"retry_jitter\":1.5}", "retry_jitter"},
	    {"{\"name\":\"n\"," URL ",\"retry_schedule\":[]}", "retry_schedule"},
	    {"{\"name\":\"n\"," URL ",\"retry_schedule\":[1,-2]}", "retry_schedule"},
	    {"{\"name\":\"n\"," URL ",\"headers\":[]}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"Connection\":\"close\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"content-type\":\"text/plain\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"Host\":\"x\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"Webhook-Signature\":\"x\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"X-Fluxbase-Signature\":\"x\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"Transfer-Encoding\":\"chunked\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"Bad Name\":\"x\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"X-A\":1}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"headers\":{\"X-A\":\"1\",\"x-a\":\"2\"}}", "headers"},
	    {"{\"name\":\"n\"," URL ",\"ip_allowlist\":[]}", "ip_allowlist"},
	    {"{\"name\":\"n\"," URL ",\"ip_allowlist\":[\"10.1.2.3/8\"]}", "ip_allowlist"},
	    {"{\"name\":\"n\"," URL ",\"ip_allowlist\":\"10.0.0.0/8\"}", "ip_allowlist"},
	    {"{\"name\":\"n\"," URL ",\"signature_headers\":[\"stripe\"]}", "signature_headers"},
	    {"{\"name\":\"n\"," URL ",\"signature_headers\":\"standard\"}", "signature_headers"},
	    {"{\"name\":\"n\"," URL ",\"payload_format\":\"xml\"}", "payload_format"},
	    {"{\"name\":\"n\"," URL ",\"colour\":\"red\"}", "colour"},
	    {"[1]", ""},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		refused(cases[i].body, cases[i].field);
}
END_TEST

START_TEST(test_error_never_shows_a_secret)
{
	struct subscription_input in;
	struct subscription_input_error err;

	ck_assert_int_eq(parse("{\"name\":\"n\"," URL ",\"secret\":\"whsec_SUPERSECRET!\"}",
	                     SUB_INPUT_CREATE, SUB_API_V1, &in, &err),
	    -1);
	ck_assert_str_eq(err.field, "secret");
	ck_assert_ptr_null(strstr(err.message, "SUPERSECRET"));
}
END_TEST

START_TEST(test_ip_literal_outside_the_pin)
{
	struct subscription_input in;
	struct subscription_input_error err;

	ck_assert_int_eq(parse("{\"name\":\"n\",\"url\":\"http://127.0.0.1:9/x\","
	                       "\"ip_allowlist\":[\"10.0.0.0/8\"]}",
	                     SUB_INPUT_CREATE, SUB_API_V1, &in, &err),
	    0);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_V1, 0, NULL, &err), -1);
	ck_assert_str_eq(err.field, "ip_allowlist");
	subscription_input_clear(&in);
	ck_assert_int_eq(parse("{\"name\":\"n\",\"url\":\"http://[::1]:9/x\",\"ip_whitelist\":"
	                       "[\"::1\"]}",
	                     SUB_INPUT_CREATE, SUB_API_OMNISALES, &in, &err),
	    0);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_OMNISALES, 0, NULL, &err), 0);
	subscription_input_clear(&in);
	/* a host name is checked when it resolves, not here */
	ck_assert_int_eq(parse("{\"name\":\"n\"," URL ",\"ip_allowlist\":[\"10.0.0.0/8\"]}",
	                     SUB_INPUT_CREATE, SUB_API_V1, &in, &err),
	    0);
	ck_assert_int_eq(subscription_input_finish(&in, SUB_API_V1, 0, NULL, &err), 0);
	subscription_input_clear(&in);
}
END_TEST

START_TEST(test_patch_merge)
{
	struct subscription_input base, patch;
	struct subscription_input_error err;

	ck_assert_int_eq(parse("{\"name\":\"a\"," URL ",\"events\":[\"x.*\"],\"max_retries\":7,"
	                       "\"retry_schedule\":[1,2],\"headers\":{\"X-A\":\"1\"}}",
	                     SUB_INPUT_REPLACE, SUB_API_V1, &base, &err),
	    0);
	base.given = 0;
	ck_assert_int_eq(parse("{\"name\":\"b\",\"retry_schedule\":null,\"enabled\":false}",
	                     SUB_INPUT_PATCH, SUB_API_V1, &patch, &err),
	    0);
	ck_assert_uint_eq(patch.given, SUB_F_NAME | SUB_F_SCHEDULE | SUB_F_ENABLED);
	ck_assert_ptr_null(patch.events); /* PATCH fills nothing it was not given */
	subscription_input_merge(&base, &patch);
	subscription_input_clear(&patch);
	ck_assert_str_eq(base.name, "b");
	ck_assert_str_eq(base.url, "https://example.com/hooks");
	assert_json(base.events, "[\"x.*\"]");
	ck_assert_int_eq(base.max_retries, 7);
	ck_assert_ptr_null(base.schedule);
	ck_assert_int_eq(base.nschedule, 0);
	ck_assert_int_eq(base.enabled, 0);
	assert_json(base.headers, "{\"X-A\":\"1\"}");
	ck_assert_uint_eq(base.given, SUB_F_NAME | SUB_F_SCHEDULE | SUB_F_ENABLED);
	subscription_input_clear(&base);

	/* a null secret in a PATCH is "keep it", not a change */
	ck_assert_int_eq(parse("{\"secret\":null}", SUB_INPUT_PATCH, SUB_API_V1, &patch, &err), 0);
	ck_assert_uint_eq(patch.given, 0);
	subscription_input_clear(&patch);
	/* nothing is required in a PATCH, but a given field is checked */
	refused_as("{\"url\":null}", SUB_INPUT_PATCH, SUB_API_V1, "url");
	refused_as("{\"name\":\"n\"}", SUB_INPUT_REPLACE, SUB_API_V1, "url");
}
END_TEST

START_TEST(test_patterns)
{
	static const char *const good[] = {"*", "order.created", "order.*", "a", "_x",
	    "orders/create", "scrape_job.completed", "a:b-c", "INSERT"};
	static const char *const bad[] = {"", ".*", "order.*.created", "*.created", "order*",
	    ".order", "-x", "a b", "é", "order..*x"};
	char longest[SUB_EVENT_TYPE_MAX_LEN + 2];

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		ck_assert_msg(subscription_pattern_valid(good[i]), "%s", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(!subscription_pattern_valid(bad[i]), "%s", bad[i]);
	ck_assert(!subscription_event_type_valid("*"));
	ck_assert(!subscription_event_type_valid("order.*"));
	memset(longest, 'a', sizeof(longest));
	longest[SUB_EVENT_TYPE_MAX_LEN] = '\0';
	ck_assert(subscription_event_type_valid(longest));
	longest[SUB_EVENT_TYPE_MAX_LEN] = 'a';
	longest[SUB_EVENT_TYPE_MAX_LEN + 1] = '\0';
	ck_assert(!subscription_event_type_valid(longest));
	ck_assert(publish_message_id_valid("evt_550e8400e29b41d4a716446655440000"));
	ck_assert(publish_message_id_valid("order-123:created.v1"));
	ck_assert(!publish_message_id_valid(""));
	ck_assert(!publish_message_id_valid("a b"));
	ck_assert(!publish_message_id_valid("a\r\nX: y"));
}
END_TEST

START_TEST(test_secret_check)
{
	char why[200];
	char *gen = sign_secret_generate();
	char big[SUB_SECRET_MAX_LEN + 2];

	ck_assert_int_eq(subscription_secret_check(gen, why, sizeof(why)), 0);
	ck_assert_int_eq(subscription_secret_check("your-webhook-secret", why, sizeof(why)), 0);
	ck_assert_int_eq(subscription_secret_check("whsec_", why, sizeof(why)), -1);
	ck_assert_int_eq(subscription_secret_check("whsec_%%%%", why, sizeof(why)), -1);
	ck_assert_int_eq(subscription_secret_check("", why, sizeof(why)), -1);
	memset(big, 'x', sizeof(big));
	big[SUB_SECRET_MAX_LEN + 1] = '\0';
	ck_assert_int_eq(subscription_secret_check(big, why, sizeof(why)), -1);
	/* a raw key longer than SIGN_KEY_MAX cannot sign */
	big[SIGN_KEY_MAX + 1] = '\0';
	ck_assert_int_eq(subscription_secret_check(big, why, sizeof(why)), -1);
	free(gen);
}
END_TEST

START_TEST(test_rotate_body)
{
	struct subscription_input_error err;
	struct json_object *o;
	char *secret;
	int64_t exp;

	ck_assert_int_eq(subscription_rotate_parse(NULL, &secret, &exp, &err), 0);
	ck_assert_ptr_null(secret);
	ck_assert_int_eq(exp, SUB_ROTATE_DEFAULT_OVERLAP);
	o = js("{\"secret\":\"new-one\",\"expire_previous_after\":0}");
	ck_assert_int_eq(subscription_rotate_parse(o, &secret, &exp, &err), 0);
	ck_assert_str_eq(secret, "new-one");
	ck_assert_int_eq(exp, 0);
	free(secret);
	json_object_put(o);
	o = js("{\"expire_previous_after\":null}");
	ck_assert_int_eq(subscription_rotate_parse(o, &secret, &exp, &err), 0);
	ck_assert_int_eq(exp, SUB_ROTATE_DEFAULT_OVERLAP);
	json_object_put(o);
	o = js("{\"expire_previous_after\":-1}");
	ck_assert_int_eq(subscription_rotate_parse(o, &secret, &exp, &err), -1);
	ck_assert_str_eq(err.field, "expire_previous_after");
	json_object_put(o);
	o = js("{\"secret\":\"whsec_!\"}");
	ck_assert_int_eq(subscription_rotate_parse(o, &secret, &exp, &err), -1);
	ck_assert_str_eq(err.field, "secret");
	ck_assert_ptr_null(secret);
	json_object_put(o);
	o = js("{\"secrets\":[]}");
	ck_assert_int_eq(subscription_rotate_parse(o, &secret, &exp, &err), -1);
	ck_assert_str_eq(err.field, "secrets");
	json_object_put(o);
}
END_TEST

START_TEST(test_event_types_parse)
{
	int n;
	struct declared_event_type *v =
	    subscription_event_types_parse(" order.created, order.updated,,\n"
	                                   "order.created: again ,payment.failed ",
	        &n);

	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(v[0].name, "order.created");
	ck_assert_str_eq(v[1].name, "order.updated");
	ck_assert_str_eq(v[2].name, "payment.failed");
	for (int i = 0; i < n; i++)
		ck_assert_ptr_null(v[i].description);
	subscription_event_types_free(v, n);
	v = subscription_event_types_parse("", &n);
	ck_assert_int_eq(n, 0);
	subscription_event_types_free(v, n);
	v = subscription_event_types_parse(NULL, &n);
	ck_assert_int_eq(n, 0);
	subscription_event_types_free(v, n);

	/* Seed 003's catalogue style: "name: description". */
	v = subscription_event_types_parse("order.created: New order placed,"
	                                   "  payment.failed:   Payment failed  ,"
	                                   "email.clicked : Link in email clicked,"
	                                   "crm:contact:sync, tenant/a:x: Namespaced,"
	                                   "bare:, order.created: a repeat keeps the first,"
	                                   "  : no name",
	    &n);
	ck_assert_int_eq(n, 6);
	ck_assert_str_eq(v[0].name, "order.created");
	ck_assert_str_eq(v[0].description, "New order placed");
	ck_assert_str_eq(v[1].name, "payment.failed");
	ck_assert_str_eq(v[1].description, "Payment failed");
	ck_assert_str_eq(v[2].name, "email.clicked");
	ck_assert_str_eq(v[2].description, "Link in email clicked");
	/* Colons inside a name stay (event types may hold them). */
	ck_assert_str_eq(v[3].name, "crm:contact:sync");
	ck_assert_ptr_null(v[3].description);
	ck_assert_str_eq(v[4].name, "tenant/a:x");
	ck_assert_str_eq(v[4].description, "Namespaced");
	ck_assert_str_eq(v[5].name, "bare");
	ck_assert_ptr_null(v[5].description);
	subscription_event_types_free(v, n);
}
END_TEST

START_TEST(test_payload_formats)
{
	enum payload_format f;

	ck_assert_int_eq(subscription_payload_format_parse("fluxbase", &f), 0);
	ck_assert_int_eq(f, PAYLOAD_FLUXBASE);
	ck_assert_str_eq(subscription_payload_format_name(PAYLOAD_SUPABASE), "supabase");
	ck_assert_int_eq(subscription_payload_format_parse("Default", &f), -1);
	ck_assert_int_eq(subscription_payload_format_parse(NULL, &f), -1);
}
END_TEST

START_TEST(test_publish_input)
{
	struct publish_input in;
	struct subscription_input_error err;
	struct json_object *o;

	/* data is re-serialized as JSON.stringify would: key order kept, no white space */
	o = js("{\"event\":\"order.created\",\"data\":{ \"z\": 1.0, \"a\": [1, \"x/y\"],"
	       " \"u\": \"\\u00e9\" }}");
	ck_assert_int_eq(publish_input_parse(o, &in, &err), 0);
	ck_assert_str_eq(in.event, "order.created");
	ck_assert_str_eq(in.data, "{\"z\":1,\"a\":[1,\"x/y\"],\"u\":\"\xc3\xa9\"}");
	ck_assert_uint_eq(in.data_len, strlen(in.data));
	ck_assert_ptr_null(in.id);
	publish_input_clear(&in);
	json_object_put(o);

	o = js("{\"event\":\"a\",\"id\":\"evt_1\"}");
	ck_assert_int_eq(publish_input_parse(o, &in, &err), 0);
	ck_assert_str_eq(in.data, "{}");
	ck_assert_str_eq(in.id, "evt_1");
	publish_input_clear(&in);
	json_object_put(o);

	o = js("{\"event\":\"a\",\"data\":null}");
	ck_assert_int_eq(publish_input_parse(o, &in, &err), 0);
	ck_assert_str_eq(in.data, "null");
	publish_input_clear(&in);
	json_object_put(o);

	static const struct {
		const char *body, *field;
	} bad[] = {
	    {"{}", "event"},
	    {"{\"data\":{}}", "event"},
	    {"{\"event\":\"\"}", "event"},
	    {"{\"event\":\"order.*\"}", "event"},
	    {"{\"event\":7}", "event"},
	    {"{\"event\":\"a\",\"id\":\"has space\"}", "id"},
	    {"{\"event\":\"a\",\"id\":5}", "id"},
	    {"{\"event\":\"a\",\"type\":\"b\"}", "type"},
	    {"[]", ""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		o = js(bad[i].body);
		ck_assert_msg(publish_input_parse(o, &in, &err) == -1, "accepted %s", bad[i].body);
		ck_assert_msg(
		    strcmp(err.field, bad[i].field) == 0, "%s: field %s", bad[i].body, err.field);
		ck_assert_ptr_null(in.event);
		json_object_put(o);
	}
}
END_TEST

static Suite *
subscription_input_suite(void)
{
	Suite *s = suite_create("subscription_input");
	TCase *tc = tcase_create("subscription_input");

	tcase_add_test(tc, test_minimal_create_takes_defaults);
	tcase_add_test(tc, test_full_create);
	tcase_add_test(tc, test_header_sets_by_api);
	tcase_add_test(tc, test_omnisales_names);
	tcase_add_test(tc, test_invalid_fields);
	tcase_add_test(tc, test_error_never_shows_a_secret);
	tcase_add_test(tc, test_ip_literal_outside_the_pin);
	tcase_add_test(tc, test_patch_merge);
	tcase_add_test(tc, test_patterns);
	tcase_add_test(tc, test_secret_check);
	tcase_add_test(tc, test_rotate_body);
	tcase_add_test(tc, test_event_types_parse);
	tcase_add_test(tc, test_payload_formats);
	tcase_add_test(tc, test_publish_input);
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
	sr = srunner_create(subscription_input_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
