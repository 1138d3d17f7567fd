/* SPDX-License-Identifier: ISC */
/* Unit tests for outbound bodies: the seeds' shapes, JSON.stringify bytes, change timestamps. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json.h"
#include "hookd/payload.h"

/* 2025-01-16T10:30:00.000Z */
#define T0 1737023400000ull

static char *
build(const struct payload_message *m, enum payload_format f, const char *webhook_id)
{
	char err[200];
	size_t len = 0;
	char *body = payload_build(m, f, webhook_id, &len, err, sizeof(err));

	ck_assert_msg(body != NULL, "payload_build failed: %s", err);
	ck_assert_uint_eq(len, strlen(body));
	return body;
}

static void
expect_body(const struct payload_message *m, enum payload_format f, const char *webhook_id,
    const char *want)
{
	char *body = build(m, f, webhook_id);

	ck_assert_str_eq(body, want);
	free(body);
}

START_TEST(test_envelope)
{
	/* Seed 003's envelope, data compacted; '/' stays; created_at in UTC with Z. */
	static const char data[] =
	    "{ \"order_id\" : \"ord_789\",\n  \"url\": \"https:\\/\\/x.test/a\","
	    " \"total\": 99.990, \"qty\": 2.0, \"items\": [ 1, 2 ] }";
	struct payload_message m = {
	    .id = "evt_550e8400e29b41d4a716446655440000",
	    .event_type = "order.created",
	    .created_ms = T0,
	    .data = data,
	    .data_len = sizeof(data) - 1,
	};

	expect_body(&m, PAYLOAD_DEFAULT, "7c9e6679-7425-40de-944b-e07fc1f90ae7",
	    "{\"id\":\"evt_550e8400e29b41d4a716446655440000\",\"event\":\"order.created\","
	    "\"created_at\":\"2025-01-16T10:30:00.000Z\",\"data\":{\"order_id\":\"ord_789\","
	    "\"url\":\"https://x.test/a\",\"total\":99.99,\"qty\":2,\"items\":[1,2]}}");
	/* Every format sends ordinary messages in the envelope, and they are shared. */
	expect_body(&m, PAYLOAD_SUPABASE, "x",
	    "{\"id\":\"evt_550e8400e29b41d4a716446655440000\",\"event\":\"order.created\","
	    "\"created_at\":\"2025-01-16T10:30:00.000Z\",\"data\":{\"order_id\":\"ord_789\","
	    "\"url\":\"https://x.test/a\",\"total\":99.99,\"qty\":2,\"items\":[1,2]}}");
	ck_assert_int_eq(payload_shared(&m, PAYLOAD_DEFAULT), 1);
	ck_assert_int_eq(payload_shared(&m, PAYLOAD_FLUXBASE), 1);
	/* Scalars and null data. */
	m.data = "\"hi\\u0041\"";
	m.data_len = strlen(m.data);
	m.created_ms = T0 + 7;
	expect_body(&m, PAYLOAD_DEFAULT, NULL,
	    "{\"id\":\"evt_550e8400e29b41d4a716446655440000\",\"event\":\"order.created\","
	    "\"created_at\":\"2025-01-16T10:30:00.007Z\",\"data\":\"hiA\"}");
	m.data = " 12.50 ";
	m.data_len = strlen(m.data);
	expect_body(&m, PAYLOAD_DEFAULT, NULL,
	    "{\"id\":\"evt_550e8400e29b41d4a716446655440000\",\"event\":\"order.created\","
	    "\"created_at\":\"2025-01-16T10:30:00.007Z\",\"data\":12.5}");
	m.data = "null";
	m.data_len = 4;
	expect_body(&m, PAYLOAD_DEFAULT, NULL,
	    "{\"id\":\"evt_550e8400e29b41d4a716446655440000\",\"event\":\"order.created\","
	    "\"created_at\":\"2025-01-16T10:30:00.007Z\",\"data\":null}");
	m.data = NULL;
	expect_body(&m, PAYLOAD_DEFAULT, NULL,
	    "{\"id\":\"evt_550e8400e29b41d4a716446655440000\",\"event\":\"order.created\","
	    "\"created_at\":\"2025-01-16T10:30:00.007Z\",\"data\":null}");
}
END_TEST

START_TEST(test_js_stringify_bytes)
{
	/*
	 * What node prints for JSON.stringify(JSON.parse(data)): integer-like keys first and
	 * ascending, numbers as JavaScript prints them, U+2028 as is.
	 */
	static const char data[] =
	    "{\"b\":1,\"2\":2,\"a\":[{\"z\":0,\"10\":1,\"9\":2}],\"1\":\"x/y\","
	    "\"n\":1.0,\"big\":1e21,\"f\":0.1,\"neg\":-0,\"01\":3,"
	    "\"4294967295\":4,\"4294967294\":5,\"u\":\"\xc3\xa9\xe2\x80\xa8\"}";
	struct payload_message m = {
	    .id = "evt_1",
	    .event_type = "t",
	    .created_ms = T0,
	    .data = data,
	    .data_len = sizeof(data) - 1,
	};

	expect_body(&m, PAYLOAD_DEFAULT, NULL,
	    "{\"id\":\"evt_1\",\"event\":\"t\",\"created_at\":\"2025-01-16T10:30:00.000Z\","
	    "\"data\":{\"1\":\"x/y\",\"2\":2,\"4294967294\":5,\"b\":1,"
	    "\"a\":[{\"9\":2,\"10\":1,\"z\":0}],\"n\":1,\"big\":1e+21,\"f\":0.1,\"neg\":0,"
	    "\"01\":3,\"4294967295\":4,\"u\":\"\xc3\xa9\xe2\x80\xa8\"}}");
}
END_TEST

START_TEST(test_bad_data)
{
	struct payload_message m = {
	    .id = "evt_1",
	    .event_type = "t",
	    .created_ms = T0,
	    .data = "{\"a\":",
	    .data_len = 5,
	};
	char err[200];
	size_t len = 99;

	ck_assert_ptr_null(payload_build(&m, PAYLOAD_DEFAULT, NULL, &len, err, sizeof(err)));
	ck_assert_msg(strstr(err, "not valid JSON") != NULL, "err: %s", err);
	m.data = "1, 2";
	m.data_len = 4;
	ck_assert_ptr_null(payload_build(&m, PAYLOAD_DEFAULT, NULL, &len, err, sizeof(err)));
	m.data = "";
	m.data_len = 0;
	ck_assert_ptr_null(payload_build(&m, PAYLOAD_DEFAULT, NULL, &len, err, sizeof(err)));
	m.data = "{\"record\":{}}";
	m.data_len = strlen(m.data);
	m.op = "INSERT";
	m.old_record = "{oops";
	ck_assert_ptr_null(payload_build(&m, PAYLOAD_FLUXBASE, "w", &len, err, sizeof(err)));
	ck_assert_msg(strstr(err, "old_record") != NULL, "err: %s", err);
}
END_TEST

/* A change as hookd.capture_step() stores it: json_build_object over the outbox row. */
static const char change_update[] =
    "{\"op\" : \"UPDATE\", \"schema\" : \"public\", \"table\" : \"users\", "
    "\"record\" : {\"id\": \"550e8400-e29b-41d4-a716-446655440000\", \"email\": "
    "\"user@example.com\", \"n\": 10.50}, \"old_record\" : {\"id\": "
    "\"550e8400-e29b-41d4-a716-446655440000\", \"email\": \"old@example.com\", \"n\": 1}, "
    "\"timestamp\" : \"2025-11-02T12:30:00.123456+02:00\"}";

START_TEST(test_change_fluxbase)
{
	struct payload_message m = {
	    .id = "evt_chg0000000000000000000000042",
	    .event_type = "public.users.UPDATE",
	    .created_ms = T0,
	    .data = change_update,
	    .data_len = sizeof(change_update) - 1,
	    .op = "UPDATE",
	    .schema = "public",
	    .table = "users",
	};
	static const char want[] =
	    "{\"event\":\"UPDATE\",\"table\":\"users\",\"schema\":\"public\",\"record\":{\"id\":"
	    "\"550e8400-e29b-41d4-a716-446655440000\",\"email\":\"user@example.com\",\"n\":10.5},"
	    "\"old_record\":{\"id\":\"550e8400-e29b-41d4-a716-446655440000\",\"email\":"
	    "\"old@example.com\",\"n\":1},\"timestamp\":\"2025-11-02T10:30:00.123Z\","
	    "\"webhook_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\"}";

	/* Seed 004's shape for the default format and for fluxbase; per subscription. */
	expect_body(&m, PAYLOAD_DEFAULT, "7c9e6679-7425-40de-944b-e07fc1f90ae7", want);
	expect_body(&m, PAYLOAD_FLUXBASE, "7c9e6679-7425-40de-944b-e07fc1f90ae7", want);
	ck_assert_int_eq(payload_shared(&m, PAYLOAD_DEFAULT), 0);
	ck_assert_int_eq(payload_shared(&m, PAYLOAD_FLUXBASE), 0);
	/* The table and schema come from data when the caller leaves them out. */
	m.schema = m.table = NULL;
	expect_body(&m, PAYLOAD_FLUXBASE, "7c9e6679-7425-40de-944b-e07fc1f90ae7", want);
}
END_TEST

/* A DELETE as the capture trigger stores it: the deleted row in record and old_record. */
static const char change_delete[] =
    "{\"op\" : \"DELETE\", \"schema\" : \"public\", \"table\" : \"users\", "
    "\"record\" : {\"id\": 7, \"email\": \"gone@example.com\"}, "
    "\"old_record\" : {\"id\": 7, \"email\": \"gone@example.com\"}, "
    "\"timestamp\" : \"2025-11-02T10:30:00.5Z\"}";

START_TEST(test_change_delete)
{
	struct payload_message m = {
	    .id = "evt_chg0000000000000000000000043",
	    .event_type = "public.users.DELETE",
	    .created_ms = T0,
	    .data = change_delete,
	    .data_len = sizeof(change_delete) - 1,
	    .op = "DELETE",
	    .schema = "public",
	    .table = "users",
	};

	/* Seed 004: "record": deleted record data, "old_record": same as record. */
	expect_body(&m, PAYLOAD_FLUXBASE, "w",
	    "{\"event\":\"DELETE\",\"table\":\"users\",\"schema\":\"public\","
	    "\"record\":{\"id\":7,\"email\":\"gone@example.com\"},"
	    "\"old_record\":{\"id\":7,\"email\":\"gone@example.com\"},"
	    "\"timestamp\":\"2025-11-02T10:30:00.500Z\",\"webhook_id\":\"w\"}");
	/* Seed 000 (Supabase): row_to_json(NEW) is null on DELETE; the row is old_record. */
	expect_body(&m, PAYLOAD_SUPABASE, "w",
	    "{\"type\":\"DELETE\",\"table\":\"users\",\"schema\":\"public\",\"record\":null,"
	    "\"old_record\":{\"id\":7,\"email\":\"gone@example.com\"}}");
	/* The same when the caller passes the columns rather than data. */
	m.record = "{\"id\":7}";
	m.old_record = "{\"id\":7}";
	expect_body(&m, PAYLOAD_SUPABASE, "w",
	    "{\"type\":\"DELETE\",\"table\":\"users\",\"schema\":\"public\",\"record\":null,"
	    "\"old_record\":{\"id\":7}}");
}
END_TEST

START_TEST(test_change_insert_and_caller_fields)
{
	static const char data[] = "{\"op\":\"INSERT\",\"schema\":\"public\",\"table\":\"t\","
	                           "\"record\":{\"id\":1},\"old_record\":null}";
	struct payload_message m = {
	    .id = "evt_x",
	    .event_type = "public.t.INSERT",
	    .created_ms = T0 + 5,
	    .data = data,
	    .data_len = sizeof(data) - 1,
	    .op = "INSERT",
	};

	/* No timestamp in data: the message's own time. */
	expect_body(&m, PAYLOAD_FLUXBASE, "w",
	    "{\"event\":\"INSERT\",\"table\":\"t\",\"schema\":\"public\",\"record\":{\"id\":1},"
	    "\"old_record\":null,\"timestamp\":\"2025-01-16T10:30:00.005Z\",\"webhook_id\":\"w\"}");
	/* Seed 000's shape, shared by every supabase subscriber. */
	expect_body(&m, PAYLOAD_SUPABASE, "w",
	    "{\"type\":\"INSERT\",\"table\":\"t\",\"schema\":\"public\",\"record\":{\"id\":1},"
	    "\"old_record\":null}");
	ck_assert_int_eq(payload_shared(&m, PAYLOAD_SUPABASE), 1);
	/* What the caller fills wins over data. */
	m.record = "{ \"id\" : 2 }";
	m.old_record = "{\"id\":1}";
	m.timestamp = "2025-11-02 10:30:00Z";
	m.table = "u";
	expect_body(&m, PAYLOAD_FLUXBASE, "w",
	    "{\"event\":\"INSERT\",\"table\":\"u\",\"schema\":\"public\",\"record\":{\"id\":2},"
	    "\"old_record\":{\"id\":1},\"timestamp\":\"2025-11-02T10:30:00.000Z\","
	    "\"webhook_id\":\"w\"}");
	/* data that is not an object: record and old_record are null. */
	m.data = "[1]";
	m.data_len = 3;
	m.record = m.old_record = NULL;
	expect_body(&m, PAYLOAD_SUPABASE, "w",
	    "{\"type\":\"INSERT\",\"table\":\"u\",\"schema\":null,\"record\":null,"
	    "\"old_record\":null}");
}
END_TEST

static int64_t
pt(const char *s)
{
	uint64_t ms = 0;

	return payload_parse_time(s, &ms) == 0 ? (int64_t)ms : -1;
}

START_TEST(test_parse_time)
{
	ck_assert_int_eq(pt("1970-01-01T00:00:00Z"), 0);
	ck_assert_int_eq(pt("2025-01-16T10:30:00Z"), (int64_t)T0);
	ck_assert_int_eq(pt("2025-01-16T10:30:00.5Z"), (int64_t)T0 + 500);
	ck_assert_int_eq(pt("2025-01-16T10:30:00.123999Z"), (int64_t)T0 + 123);
	ck_assert_int_eq(pt("2025-01-16 10:30:00+00"), (int64_t)T0);
	ck_assert_int_eq(pt("2025-01-16T12:30:00+02:00"), (int64_t)T0);
	ck_assert_int_eq(pt("2025-01-16T05:00:00-05:30"), (int64_t)T0);
	ck_assert_int_eq(pt("2025-01-16T10:30:00+0000"), (int64_t)T0);
	ck_assert_int_eq(pt("2025-01-16T10:30:00"), (int64_t)T0); /* no offset: UTC */
	ck_assert_int_eq(pt("2000-02-29T00:00:00Z"), 951782400000);
	ck_assert_int_eq(pt("2025-01-16T10:30Z"), -1);
	ck_assert_int_eq(pt("2025-13-16T10:30:00Z"), -1);
	ck_assert_int_eq(pt("2025-01-32T10:30:00Z"), -1);
	ck_assert_int_eq(pt("2025-01-16T10:30:00.Z"), -1);
	ck_assert_int_eq(pt("2025-01-16T10:30:00Zjunk"), -1);
	ck_assert_int_eq(pt("2025-01-16T10:30:00+2"), -1);
	ck_assert_int_eq(pt(""), -1);
	ck_assert_int_eq(pt(NULL), -1);
}
END_TEST

START_TEST(test_js_order_in_place)
{
	char err[100], *text;
	const char *src = "[{\"b\":{\"3\":1,\"x\":2,\"0\":3}},\"s\"]";
	struct json_object *o = json_parse(src, strlen(src), err, sizeof(err));

	ck_assert_ptr_nonnull(o);
	o = payload_js_order(o);
	text = json_compact(o, NULL);
	ck_assert_str_eq(text, "[{\"b\":{\"0\":3,\"3\":1,\"x\":2}},\"s\"]");
	free(text);
	json_object_put(o);
	/* A top-level object that needs reordering is replaced. */
	o = json_parse("{\"z\":1,\"7\":2}", 13, err, sizeof(err));
	o = payload_js_order(o);
	text = json_compact(o, NULL);
	ck_assert_str_eq(text, "{\"7\":2,\"z\":1}");
	free(text);
	json_object_put(o);
}
END_TEST

START_TEST(test_response_text)
{
	size_t n = 99;
	char *t = payload_response_text("ok \xc3\xa9", 5, &n);

	ck_assert_str_eq(t, "ok \xc3\xa9");
	ck_assert_uint_eq(n, 5);
	free(t);
	/* NUL, a stray continuation byte, a truncated sequence, a surrogate, overlong. */
	t = payload_response_text("a\0b\x80"
	                          "c\xe2\x82",
	    7, &n);
	ck_assert_str_eq(t, "a\xef\xbf\xbd"
	                    "b\xef\xbf\xbd"
	                    "c\xef\xbf\xbd\xef\xbf\xbd");
	ck_assert_uint_eq(n, strlen(t));
	free(t);
	t = payload_response_text("\xed\xa0\x80\xc0\xaf", 5, NULL);
	ck_assert_str_eq(t, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	free(t);
	t = payload_response_text(NULL, 0, &n);
	ck_assert_str_eq(t, "");
	ck_assert_uint_eq(n, 0);
	free(t);
}
END_TEST

static Suite *
payload_suite(void)
{
	Suite *s = suite_create("payload");
	TCase *tc = tcase_create("payload");

	tcase_add_test(tc, test_envelope);
	tcase_add_test(tc, test_js_stringify_bytes);
	tcase_add_test(tc, test_bad_data);
	tcase_add_test(tc, test_change_fluxbase);
	tcase_add_test(tc, test_change_delete);
	tcase_add_test(tc, test_change_insert_and_caller_fields);
	tcase_add_test(tc, test_parse_time);
	tcase_add_test(tc, test_js_order_in_place);
	tcase_add_test(tc, test_response_text);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(payload_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
