/* SPDX-License-Identifier: ISC */
/* Unit tests for the receive path's pure pieces: id matching, answer headers, media types. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/ingest_util.h"
#include "hookd/util.h"

/* The batch's ids as group commit makes them. */
static void
make_ids(char (*ids)[37], int n)
{
	for (int i = 0; i < n; i++)
		uuid_v7(ids[i]);
}

START_TEST(test_match_in_any_order)
{
	enum { N = 300 };
	static char ids[N][37];
	const char *want[N], *got[N];
	unsigned char stored[N];
	int ngot = 0;

	make_ids(ids, N);
	for (int i = 0; i < N; i++)
		want[i] = ids[i];
	/* Every third row skipped (a dedupe conflict); the rest returned back to front. */
	for (int i = N - 1; i >= 0; i--) {
		if (i % 3 != 1)
			got[ngot++] = ids[i];
	}
	ingest_match_ids(want, N, got, ngot, stored);
	for (int i = 0; i < N; i++)
		ck_assert_msg(stored[i] == (i % 3 != 1), "item %d", i);

	/* Shuffled: the same set, the same answer. */
	for (int i = ngot - 1; i > 0; i--) {
		int j = (int)random_below((uint32_t)i + 1);
		const char *t = got[i];

		got[i] = got[j];
		got[j] = t;
	}
	memset(stored, 7, sizeof(stored));
	ingest_match_ids(want, N, got, ngot, stored);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(stored[i], i % 3 != 1);
}
END_TEST

START_TEST(test_match_edges)
{
	static char ids[4][37];
	const char *want[4], *got[4];
	unsigned char stored[4];
	/* Copies of the text, as libpq hands them out: compared by value, not by pointer. */
	char copy[37];

	make_ids(ids, 4);
	for (int i = 0; i < 4; i++)
		want[i] = ids[i];

	/* Nothing returned: every event was a duplicate. */
	memset(stored, 7, sizeof(stored));
	ingest_match_ids(want, 4, got, 0, stored);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(stored[i], 0);

	/* Only the last one, as another pointer. */
	snprintf(copy, sizeof(copy), "%s", ids[3]);
	got[0] = copy;
	ingest_match_ids(want, 4, got, 1, stored);
	ck_assert_int_eq(stored[0], 0);
	ck_assert_int_eq(stored[1], 0);
	ck_assert_int_eq(stored[2], 0);
	ck_assert_int_eq(stored[3], 1);

	/* A returned id that is not in the batch matches nothing (and breaks nothing). */
	got[0] = "00000000-0000-7000-8000-000000000000";
	got[1] = ids[0];
	ingest_match_ids(want, 4, got, 2, stored);
	ck_assert_int_eq(stored[0], 1);
	ck_assert_int_eq(stored[1] + stored[2] + stored[3], 0);

	/* A batch of one. */
	ingest_match_ids(want + 2, 1, (const char *const *)&want[2], 1, stored);
	ck_assert_int_eq(stored[0], 1);
}
END_TEST

START_TEST(test_media_is_json)
{
	ck_assert(ingest_media_is_json("application/json"));
	ck_assert(ingest_media_is_json("Application/JSON; charset=utf-8"));
	ck_assert(ingest_media_is_json(" application/problem+json "));
	ck_assert(ingest_media_is_json("application/vnd.api+json;v=2"));
	ck_assert(!ingest_media_is_json(NULL));
	ck_assert(!ingest_media_is_json(""));
	ck_assert(!ingest_media_is_json("text/html"));
	ck_assert(!ingest_media_is_json("text/json"));
	ck_assert(!ingest_media_is_json("application/+json"));
	ck_assert(!ingest_media_is_json("application/jsonx"));
	ck_assert(!ingest_media_is_json("application/x-www-form-urlencoded"));
}
END_TEST

static const char *
refused(const char *name, const char *value)
{
	return ingest_answer_header_refused(name, value, value ? strlen(value) : 0);
}

START_TEST(test_answer_headers)
{
	static const char *const owned[] = {"Content-Length", "transfer-encoding", "Connection",
	    "Keep-Alive", "Upgrade", "TE", "Trailer", "Proxy-Authenticate", "proxy-connection",
	    "Content-Encoding", "X-Request-Id", "x-request-id"};
	char big[9000];

	/* What a handler may send. */
	ck_assert_ptr_null(refused("X-Order-Id", "o-1"));
	ck_assert_ptr_null(refused("Location", "/orders/o-1"));
	ck_assert_ptr_null(refused("Retry-After", "30"));
	ck_assert_ptr_null(refused("Set-Cookie", "a=b; Path=/"));
	ck_assert_ptr_null(refused("X-Tab", "a\tb"));
	ck_assert_ptr_null(refused("X-Empty", ""));
	ck_assert_ptr_null(refused("x!#$%&'*+-.^_`|~9", "ok"));
	ck_assert_ptr_null(refused("Content-Type", "application/problem+json"));
	ck_assert_ptr_null(refused("content-type", "application/json; charset=utf-8"));

	/* What hookd owns. */
	for (size_t i = 0; i < ARRAY_SIZE(owned); i++)
		ck_assert_msg(refused(owned[i], "x") != NULL, "%s passed", owned[i]);
	/* Not JSON: the body is JSON whatever the handler says. */
	ck_assert_ptr_nonnull(refused("Content-Type", "text/html"));
	/* Names that are not tokens. */
	ck_assert_ptr_nonnull(refused("", "x"));
	ck_assert_ptr_nonnull(refused("X Order", "x"));
	ck_assert_ptr_nonnull(refused("X-Order:", "x"));
	ck_assert_ptr_nonnull(refused("X-Order\r\nX-Evil", "x"));
	ck_assert_ptr_nonnull(refused("X-(comment)", "x"));
	ck_assert_ptr_nonnull(refused("X-\xc3\xa9", "x"));
	/* Values with control characters, an embedded NUL included. */
	ck_assert_ptr_nonnull(refused("X-A", "a\r\nSet-Cookie: evil=1"));
	ck_assert_ptr_nonnull(refused("X-A", "a\nb"));
	ck_assert_ptr_nonnull(refused("X-A", "a\rb"));
	ck_assert_ptr_nonnull(refused("X-A", "a\x7f"));
	ck_assert_ptr_nonnull(ingest_answer_header_refused("X-A", "a\0b", 3));
	ck_assert_ptr_null(ingest_answer_header_refused("X-A", "a\0b", 1));
	ck_assert_ptr_nonnull(ingest_answer_header_refused("X-A", NULL, 0));
	/* Too long. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_ptr_nonnull(refused("X-Big", big));
	ck_assert_ptr_nonnull(refused(big, "x"));
}
END_TEST

static Suite *
ingest_util_suite(void)
{
	Suite *s = suite_create("ingest_util");
	TCase *tc = tcase_create("ingest_util");

	tcase_add_test(tc, test_match_in_any_order);
	tcase_add_test(tc, test_match_edges);
	tcase_add_test(tc, test_media_is_json);
	tcase_add_test(tc, test_answer_headers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ingest_util_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
