/* SPDX-License-Identifier: ISC */
/* Unit tests for json_check (JSON validated in place) and json_top_strings. */
#include "config.h"

#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json.h"
#include "hookd/json_check.h"
#include "hookd/util.h"

static int
ok(const char *doc)
{
	char err[128];

	return json_check(doc, strlen(doc), err, sizeof(err)) == 0;
}

static const char *
why(const char *doc, size_t len)
{
	static char err[128];

	ck_assert_int_eq(json_check(doc, len, err, sizeof(err)), -1);
	return err;
}

/* RFC 8259's grammar, as jsonb takes it. */
START_TEST(test_accepts_json)
{
	static const char *const good[] = {"{}", "[]", " { } ", "\t[\r\n]\n", "0", "-0", "1",
	    "-12.5e+3", "1E5", "0.25", "1e-7", "true", "false", "\"\"", "\"a\"", "[null]",
	    "{\"a\":null}", "[1,2,[3,{\"x\":[]}]]", "{\"a\":1,\"a\":2}",
	    "{\"\\u0041\":\"\\ud83d\\ude00\"}", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	    "\"Gr\xc3\xbc\xc3\x9f"
	    "e \xe2\x82\xac \xf0\x9f\x98\x80\"",
	    "\"\\u00e9\\uFFFF\"",
	    "{\"type\":\"invoice.paid\",\"data\":{\"object\":{\"id\":\"in_1\",\"amount\":100}}}",
	    "\"\xed\x9f\xbf\"", "\"\xee\x80\x80\"", "\"\xf4\x8f\xbf\xbf\"", "\"\x7f\""};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(ok(good[i]), "refused: %s", good[i]);
}
END_TEST

START_TEST(test_refuses_what_jsonb_refuses)
{
	static const char *const bad[] = {"", " ", "null", " null ", "{", "[", "]", "}", "{\"a\"}",
	    "{\"a\":}", "{\"a\" 1}", "{a:1}", "{'a':1}", "['a']", "{\"a\":1,}", "[1,]", "[,1]",
	    "[1 2]", "{\"a\":1 \"b\":2}", "01", "-", "1.", ".5", "+1", "1e", "1e+", "0x10", "NaN",
	    "Infinity", "-Infinity", "tru", "nul", "truex", "[true false]", "\"abc", "\"\\x\"",
	    "\"\\u00zz\"", "\"\\u12\"", "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\"",
	    "\"\\ud800\\u0041\"", "\"\\ud800x\"", "\"a\tb\"", "\"a\nb\"", "\"\x01\"",
	    "\"\xc0\x80\"", "\"\xc1\xbf\"", "\"\xe0\x9f\xbf\"", "\"\xed\xa0\x80\"",
	    "\"\xf0\x8f\xbf\xbf\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\x80\"",
	    "\"\xc3\"", "\"\xe2\x82\"", "\xef\xbb\xbf{}", "{} x", "[] []", "1 2", "/* c */ {}",
	    "{\"a\":1}//"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!ok(bad[i]), "accepted: %s", bad[i]);
	/* A NUL byte is not whitespace: the length, not the terminator, ends the text. */
	ck_assert_str_eq(why("{}\0", 3), "unexpected data after JSON value at offset 2");
}
END_TEST

START_TEST(test_reasons_and_offsets)
{
	ck_assert_str_eq(why("", 0), "unexpected end of JSON input at offset 0");
	ck_assert_str_eq(why("{\"a\":1,}", 8), "expected a member name (a string) at offset 7");
	ck_assert_str_eq(why("[1 2]", 5), "expected ',' or ']' at offset 3");
	ck_assert_str_eq(why("{\"a\":1 2}", 9), "expected ',' or '}' at offset 7");
	ck_assert_str_eq(why("\"\\u0000\"", 8), "strings must not contain \\u0000 at offset 1");
	ck_assert_str_eq(why("null", 4), "a JSON null is not accepted here at offset 4");
	ck_assert_str_eq(why("[\"\xc0\x80\"]", 6), "invalid UTF-8 in a string at offset 2");
	ck_assert_str_eq(why("1.", 2), "invalid number (a digit must follow '.') at offset 2");
}
END_TEST

/* json_parse's depth: 32 nested containers are taken, 33 are not. */
START_TEST(test_depth)
{
	char doc[2 * (JSON_CHECK_MAX_DEPTH + 1) + 1], err[128];
	struct json_object *o;

	for (int n = JSON_CHECK_MAX_DEPTH; n <= JSON_CHECK_MAX_DEPTH + 1; n++) {
		memset(doc, '[', (size_t)n);
		memset(doc + n, ']', (size_t)n);
		doc[2 * n] = '\0';
		o = json_parse(doc, strlen(doc), err, sizeof(err));
		ck_assert_int_eq(ok(doc), o != NULL);
		ck_assert_int_eq(ok(doc), n <= JSON_CHECK_MAX_DEPTH);
		json_object_put(o);
	}
	/* doc holds 33 now: the 33rd '[' is refused. */
	ck_assert_str_eq(why(doc, strlen(doc)), "nesting too deep at offset 32");
}
END_TEST

/*
 * Against json-c: random mutations of real documents (bytes replaced, inserted, deleted,
 * truncated). Whatever json_check takes json_parse takes too (json_check is the stricter),
 * and when both take a document, jsonb's view of its top-level strings is json-c's.
 */
START_TEST(test_against_json_c)
{
	static const char *const seeds[] = {
	    "{\"type\":\"invoice.paid\",\"id\":\"evt_1\",\"data\":{\"amount\":1250,\"ok\":true,"
	    "\"tags\":[\"a\",\"b\"],\"n\":null,\"x\":-1.5e3}}",
	    "[{\"event\":\"push\"},{\"event_type\":\"\\u00e9t\\u00e9\"},\"Gr\xc3\xbc\xc3\x9f"
	    "e\",0,[[]],{}]",
	    "{\"event\":\"a\\\"b\\\\c\\n\",\"type\":7,\"type\":\"later\",\"\\u0074ype\":\"esc\"}"};
	static const char alphabet[] =
	    "{}[]\",:\\u0123456789abcdefnulltrue -+.eE\t\n\xc3\xa9\xed\x80";
	static const char *const names[] = {"type", "event", "event_type"};
	char doc[512], err[128];
	unsigned long taken = 0, both = 0;

	for (int iter = 0; iter < 60000; iter++) {
		const char *seed = seeds[iter % 3];
		size_t len = strlen(seed);
		int edits = 1 + (int)random_below(3);
		struct json_object *o;
		int mine;

		memcpy(doc, seed, len);
		for (int e = 0; e < edits && len > 0; e++) {
			size_t at = random_below((uint32_t)len);
			char c = alphabet[random_below(sizeof(alphabet) - 1)];

			switch (random_below(4)) {
			case 0: doc[at] = c; break;
			case 1:
				if (len + 1 < sizeof(doc)) {
					memmove(doc + at + 1, doc + at, len - at);
					doc[at] = c;
					len++;
				}
				break;
			case 2:
				memmove(doc + at, doc + at + 1, len - at - 1);
				len--;
				break;
			default: len = at; break;
			}
		}
		mine = json_check(doc, len, err, sizeof(err)) == 0;
		o = json_parse(doc, len, err, sizeof(err));
		if (mine) {
			ck_assert_msg(
			    o != NULL, "json_check took what json-c refuses: %.*s", (int)len, doc);
			taken++;
		}
		if (mine && o != NULL && json_object_is_type(o, json_type_object)) {
			char *got[3];

			json_top_strings(doc, len, names, 3, got);
			for (int i = 0; i < 3; i++) {
				struct json_object *v = NULL;
				const char *want = json_object_object_get_ex(o, names[i], &v) &&
				                           json_object_is_type(v, json_type_string)
				                       ? json_object_get_string(v)
				                       : NULL;

				if (want == NULL)
					ck_assert_msg(got[i] == NULL, "%s: %s in %.*s", names[i],
					    got[i], (int)len, doc);
				else
					ck_assert_msg(got[i] != NULL && strcmp(got[i], want) == 0,
					    "%s: %s, json-c %s in %.*s", names[i], got[i], want,
					    (int)len, doc);
				free(got[i]);
			}
			both++;
		}
		json_object_put(o);
	}
	/* The mutations must exercise both sides. */
	ck_assert_uint_gt(taken, 1000);
	ck_assert_uint_gt(both, 1000);
}
END_TEST

START_TEST(test_top_strings)
{
	static const char *const names[] = {"type", "event"};
	char *got[2];
	const char *doc =
	    " {\"data\":{\"type\":\"inner\"},\"ty\\u0070e\":\"a\\u00e9\\ud83d\\ude00\\n\","
	    "\"event\":[\"x\"],\"list\":[1,{\"event\":\"no\"}]} ";

	json_top_strings(doc, strlen(doc), names, 2, got);
	ck_assert_str_eq(got[0], "a\xc3\xa9\xf0\x9f\x98\x80\n");
	ck_assert_ptr_null(got[1]); /* not a string */
	free(got[0]);

	doc = "[{\"type\":\"in an array\"}]";
	json_top_strings(doc, strlen(doc), names, 2, got);
	ck_assert_ptr_null(got[0]);
	ck_assert_ptr_null(got[1]);

	doc = "{\"event\":\"first\",\"event\":\"last\",\"type\":\"t\",\"type\":null}";
	json_top_strings(doc, strlen(doc), names, 2, got);
	ck_assert_ptr_null(got[0]); /* its last occurrence is null */
	ck_assert_str_eq(got[1], "last");
	free(got[1]);
}
END_TEST

static Suite *
json_check_suite(void)
{
	Suite *s = suite_create("json_check");
	TCase *tc = tcase_create("json_check");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_accepts_json);
	tcase_add_test(tc, test_refuses_what_jsonb_refuses);
	tcase_add_test(tc, test_reasons_and_offsets);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_against_json_c);
	tcase_add_test(tc, test_top_strings);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(json_check_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
