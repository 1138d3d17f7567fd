/* SPDX-License-Identifier: ISC */
/* Unit tests for the pure core: config, router, JSON helpers, metrics, encodings. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "hookd/config.h"
#include "hookd/json.h"
#include "hookd/keys.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/router.h"
#include "hookd/util.h"

/* --- config ------------------------------------------------------------------------ */

START_TEST(test_config_defaults)
{
	struct config c;

	config_defaults(&c);
	ck_assert_str_eq(c.listen, "127.0.0.1:8080");
	ck_assert_int_eq(c.db_pool_size, 4);
	ck_assert_int_eq(c.http_max_body_size, 1024 * 1024);
	ck_assert_int_eq(c.db_connect_timeout, 5000);
	ck_assert_int_eq(c.auto_migrate, 1);
	ck_assert_int_eq(c.log_level, LOG_LEVEL_INFO);
	config_free(&c);
}
END_TEST

START_TEST(test_config_file)
{
	struct config c;
	char *err = NULL;
	const char *text = "# comment\n"
	                   "\n"
	                   "listen = 0.0.0.0:9000, [::1]:9001\n"
	                   "db_pool_size=8\n"
	                   "http_max_body_size = 2MiB   # trailing comment\n"
	                   "http_timeout = 250ms\n"
	                   "auto_migrate = off\n"
	                   "database_url = \"postgresql://u@h/db?sslmode=require\"\n"
	                   "log_level = debug\n";

	config_defaults(&c);
	ck_assert_int_eq(config_apply_text(&c, text, "test.conf", &err), 0);
	ck_assert_str_eq(c.listen, "0.0.0.0:9000, [::1]:9001");
	ck_assert_int_eq(c.db_pool_size, 8);
	ck_assert_int_eq(c.http_max_body_size, 2 * 1024 * 1024);
	ck_assert_int_eq(c.http_timeout, 250);
	ck_assert_int_eq(c.auto_migrate, 0);
	ck_assert_str_eq(c.database_url, "postgresql://u@h/db?sslmode=require");
	ck_assert_int_eq(c.log_level, LOG_LEVEL_DEBUG);
	config_free(&c);
	free(err);
}
END_TEST

START_TEST(test_config_errors)
{
	struct config c;
	char *err = NULL;

	config_defaults(&c);
	ck_assert_int_eq(config_apply_text(&c, "\n\nnope = 1\n", "a.conf", &err), -1);
	ck_assert_str_eq(err, "a.conf:3: unknown key \"nope\"");
	ck_assert_int_eq(config_apply_text(&c, "db_pool_size = 0\n", "a.conf", &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "out of range"));
	ck_assert_int_eq(config_apply_text(&c, "db_pool_size = 4x\n", "a.conf", &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot parse"));
	ck_assert_int_eq(config_apply_text(&c, "listen\n", "a.conf", &err), -1);
	ck_assert_str_eq(err, "a.conf:1: expected key = value");
	ck_assert_int_eq(config_apply_text(&c, "listen = \"x\n", "a.conf", &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unterminated"));
	ck_assert_int_eq(config_apply_text(&c, "auto_migrate = maybe\n", "a.conf", &err), -1);
	ck_assert_int_eq(config_apply_text(&c, "log_level = loud\n", "a.conf", &err), -1);
	/* Cross-key validation. */
	ck_assert_int_eq(
	    config_apply_text(&c, "db_reconnect_min = 5s\ndb_reconnect_max = 1s\n", "a.conf", &err),
	    0);
	ck_assert_int_eq(config_validate(&c, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "db_reconnect_min"));
	config_free(&c);
	free(err);
}
END_TEST

/* Set one key on a default config and validate: returns the error (malloc'd) or NULL. */
static char *
validate_one(const char *key, const char *value)
{
	struct config c;
	char *err = NULL;

	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, key, value, &err), 0);
	if (config_validate(&c, &err) == 0) {
		free(err);
		err = NULL;
	} else {
		ck_assert_ptr_nonnull(err);
	}
	config_free(&c);
	return err;
}

/* The error of validate_one names the key and contains want. */
static void
assert_invalid(const char *key, const char *value, const char *want)
{
	char *err = validate_one(key, value);

	ck_assert_msg(err != NULL, "%s = %s was accepted", key, value);
	ck_assert_msg(strncmp(err, key, strlen(key)) == 0, "error does not name %s: %s", key, err);
	ck_assert_msg(
	    strstr(err, want) != NULL, "%s = %s: \"%s\" lacks \"%s\"", key, value, err, want);
	free(err);
}

static void
assert_valid(const char *key, const char *value)
{
	char *err = validate_one(key, value);

	ck_assert_msg(err == NULL, "%s = %s refused: %s", key, value, err);
}

START_TEST(test_config_validate_structured)
{
	char *err;

	assert_valid("listen", "127.0.0.1:8080");
	assert_valid("listen", " *:80 , [::1]:8081,localhost:9000 ");
	assert_invalid("listen", "127.0.0.1", "cannot parse \"127.0.0.1\"");
	assert_invalid("listen", "example.com:80", "cannot parse \"example.com:80\"");
	assert_invalid("listen", "127.0.0.1:80, 10.0.0.300:1", "\"10.0.0.300:1\"");
	assert_invalid("listen", "127.0.0.1:99999", "cannot parse");
	assert_invalid("listen", " , ", "at least one address");
	assert_invalid("listen",
	    "1.1.1.1:1,1.1.1.1:2,1.1.1.1:3,1.1.1.1:4,1.1.1.1:5,1.1.1.1:6,1.1.1.1:7,1.1.1.1:8,"
	    "1.1.1.1:9,1.1.1.1:10,1.1.1.1:11,1.1.1.1:12,1.1.1.1:13,1.1.1.1:14,1.1.1.1:15,"
	    "1.1.1.1:16,1.1.1.1:17",
	    "too many");

	assert_valid("trusted_proxies", "");
	assert_valid("trusted_proxies", "10.0.0.0/8, 192.168.1.1, ::1/128");
	assert_invalid("trusted_proxies", "10.0.0.0/8, 10.0.0.0/33", "element 2");
	assert_invalid("trusted_proxies", "nonsense", "element 1");
	assert_invalid("trusted_proxies", "10.0.0.0/8,", "trusted_proxies: ");
	assert_valid("outbound_allow_networks", "127.0.0.0/8");
	assert_invalid("outbound_allow_networks", "127.0.0.0/8, localhost", "element 2");

	assert_valid("database_url", "postgresql://u:pw@db.example/hookd?sslmode=require");
	assert_valid("database_url", "host=/tmp dbname=hookd");
	assert_invalid("database_url", "host=/tmp dbname", "missing \"=\"");
	assert_invalid("database_url", "postgresql://u@h/db?nosuchoption=1", "nosuchoption");
	assert_invalid("database_url", "postgresql://[::1/db", "database_url: libpq cannot parse");
	/* libpq quotes the string in its message: the password never shows. */
	err = validate_one("database_url", "postgresql://alice:s3cr3t-pw@[::1/db");
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, "s3cr3t-pw") == NULL, "password in error: %s", err);
	ck_assert_ptr_nonnull(strstr(err, "***"));
	free(err);
	err = validate_one("database_url", "host=h password='s3cr3t pw' sslmode");
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, "s3cr3t") == NULL, "password in error: %s", err);
	free(err);

	assert_valid("event_types", "order.created, order.updated,");
	assert_invalid(
	    "event_types", "order.created, -bad: a type that starts with a dash", "\"-bad\"");
	/* "name: description" and "name description" entries are valid. */
	assert_valid("event_types", "order.created: New order placed, order.paid Payment received");
	assert_invalid(
	    "outbound_ca_file", "/nonexistent/ca.pem", "cannot read /nonexistent/ca.pem");
	assert_invalid("master_key_file", "", "master_key_file must name a file");
}
END_TEST

START_TEST(test_config_listen_parse)
{
	struct config_listen l[CONFIG_MAX_LISTEN];
	char *err = NULL;
	int n;

	ck_assert_int_eq(config_listen_parse("*:80, [::1]:81 ,localhost:82", l, &n, &err), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(l[0].text, "*:80");
	ck_assert_int_eq(l[0].addr.ss_family, AF_INET);
	ck_assert_str_eq(l[1].text, "[::1]:81");
	ck_assert_int_eq(l[1].addr.ss_family, AF_INET6);
	ck_assert_str_eq(l[2].text, "localhost:82");
	ck_assert_int_eq(l[2].addr.ss_family, AF_INET);
	/* evutil_parse_sockaddr_port refuses port 0, as start-up always has. */
	ck_assert_int_eq(config_listen_parse("127.0.0.1:0", l, &n, &err), -1);
	ck_assert_int_eq(config_listen_parse("", l, &n, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "at least one"));
	free(err);
}
END_TEST

START_TEST(test_config_units)
{
	int64_t v;

	ck_assert_int_eq(config_parse_duration("5", &v), 0);
	ck_assert_int_eq(v, 5000);
	ck_assert_int_eq(config_parse_duration("1.5s", &v), 0);
	ck_assert_int_eq(v, 1500);
	ck_assert_int_eq(config_parse_duration("2m", &v), 0);
	ck_assert_int_eq(v, 120000);
	ck_assert_int_eq(config_parse_duration("3h", &v), 0);
	ck_assert_int_eq(v, 3 * 3600000);
	ck_assert_int_eq(config_parse_duration("-1s", &v), -1);
	ck_assert_int_eq(config_parse_duration("1 fortnight", &v), -1);
	ck_assert_int_eq(config_parse_size("64KiB", &v), 0);
	ck_assert_int_eq(v, 65536);
	ck_assert_int_eq(config_parse_size("1m", &v), 0);
	ck_assert_int_eq(v, 1048576);
	ck_assert_int_eq(config_parse_size("12", &v), 0);
	ck_assert_int_eq(v, 12);
	ck_assert_int_eq(config_parse_size("", &v), -1);
	ck_assert_int_eq(config_parse_bool("YES", &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(config_parse_bool("off", &v), 0);
	ck_assert_int_eq(v, 0);
}
END_TEST

START_TEST(test_config_env)
{
	struct config c;
	char *err = NULL;

	setenv("DATABASE_URL", "postgresql:///fromenv", 1);
	setenv("HOOKD_DB_POOL_SIZE", "7", 1);
	ck_assert_int_eq(config_load(&c, NULL, &err), 0);
	ck_assert_str_eq(c.database_url, "postgresql:///fromenv");
	ck_assert_int_eq(c.db_pool_size, 7);
	config_free(&c);
	setenv("HOOKD_DB_POOL_SIZE", "700", 1);
	ck_assert_int_eq(config_load(&c, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "HOOKD_DB_POOL_SIZE"));
	unsetenv("DATABASE_URL");
	unsetenv("HOOKD_DB_POOL_SIZE");
	free(err);
}
END_TEST

START_TEST(test_config_diff)
{
	struct config a, b;
	char *d;

	config_defaults(&a);
	config_defaults(&b);
	ck_assert_ptr_null(config_diff_fixed(&a, &b));
	ck_assert_int_eq(config_set(&b, "http_timeout", "1s", NULL), 0);
	ck_assert_ptr_null(config_diff_fixed(&a, &b));
	ck_assert_int_eq(config_set(&b, "listen", "127.0.0.1:1", NULL), 0);
	ck_assert_int_eq(config_set(&b, "db_pool_size", "2", NULL), 0);
	d = config_diff_fixed(&a, &b);
	ck_assert_str_eq(d, "listen, db_pool_size");
	free(d);
	config_free(&a);
	config_free(&b);
}
END_TEST

/* Every key must be documented: docs/configuration.md names it as `key`. */
START_TEST(test_config_documented)
{
	const char *srcdir = getenv("top_srcdir");
	char path[4096], *doc;
	const struct config_key *keys;
	size_t n, len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/docs/configuration.md", srcdir ? srcdir : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	doc = xmalloc(1 << 20);
	len = fread(doc, 1, (1 << 20) - 1, f);
	doc[len] = '\0';
	fclose(f);
	keys = config_keys(&n);
	for (size_t i = 0; i < n; i++) {
		char needle[128];

		snprintf(needle, sizeof(needle), "`%s`", keys[i].name);
		ck_assert_msg(
		    strstr(doc, needle) != NULL, "%s is not documented in %s", keys[i].name, path);
	}
	free(doc);
}
END_TEST

/* --- router ------------------------------------------------------------------------ */

static int h_a, h_b, h_c, h_d;

START_TEST(test_router_match)
{
	struct router *r = router_new();
	struct route_match m;

	ck_assert_int_eq(router_add(r, "GET", "/healthz", &h_a, 0), 0);
	ck_assert_int_eq(router_add(r, "POST", "/in/{slug}", &h_b, 1), 0);
	ck_assert_int_eq(router_add(r, "GET", "/api/v1/webhooks/{id}/deliveries", &h_c, 2), 0);
	ck_assert_int_eq(router_add(r, "DELETE", "/api/v1/webhooks/{id}", &h_d, 2), 0);
	ck_assert_int_eq(router_add(r, "GET", "/ui/{path*}", &h_a, 0), 0);

	ck_assert_int_eq(router_match(r, "GET", "/healthz", &m), ROUTER_FOUND);
	ck_assert_ptr_eq(m.handler, &h_a);
	route_match_clear(&m);
	ck_assert_int_eq(router_match(r, "HEAD", "/healthz", &m), ROUTER_FOUND);
	route_match_clear(&m);
	ck_assert_int_eq(router_match(r, "GET", "/healthz/", &m), ROUTER_FOUND);
	route_match_clear(&m);

	ck_assert_int_eq(router_match(r, "POST", "/in/stripe%2Dlive", &m), ROUTER_FOUND);
	ck_assert_ptr_eq(m.handler, &h_b);
	ck_assert_uint_eq(m.flags, 1);
	ck_assert_str_eq(route_param(&m, "slug"), "stripe-live");
	ck_assert_str_eq(m.pattern, "/in/{slug}");
	ck_assert_ptr_null(route_param(&m, "nope"));
	route_match_clear(&m);

	ck_assert_int_eq(
	    router_match(r, "GET", "/api/v1/webhooks/42/deliveries", &m), ROUTER_FOUND);
	ck_assert_str_eq(route_param(&m, "id"), "42");
	route_match_clear(&m);

	ck_assert_int_eq(router_match(r, "GET", "/ui/assets/app.js", &m), ROUTER_FOUND);
	ck_assert_str_eq(route_param(&m, "path"), "assets/app.js");
	route_match_clear(&m);
	ck_assert_int_eq(router_match(r, "GET", "/ui/", &m), ROUTER_FOUND);
	ck_assert_str_eq(route_param(&m, "path"), "");
	route_match_clear(&m);
	router_free(r);
}
END_TEST

START_TEST(test_router_errors)
{
	struct router *r = router_new();
	struct route_match m;

	ck_assert_int_eq(router_add(r, "GET", "/api/v1/webhooks/{id}", &h_a, 0), 0);
	ck_assert_int_eq(router_add(r, "PUT", "/api/v1/webhooks/{id}", &h_b, 0), 0);
	ck_assert_int_eq(router_add(r, "DELETE", "/api/v1/webhooks/{id}", &h_c, 0), 0);
	ck_assert_int_eq(router_add(r, "POST", "/api/v1/webhooks", &h_d, 0), 0);

	ck_assert_int_eq(
	    router_match(r, "POST", "/api/v1/webhooks/7", &m), ROUTER_METHOD_NOT_ALLOWED);
	ck_assert_str_eq(m.allow, "GET, HEAD, PUT, DELETE");
	route_match_clear(&m);
	ck_assert_int_eq(router_match(r, "GET", "/api/v1/webhooks", &m), ROUTER_METHOD_NOT_ALLOWED);
	ck_assert_str_eq(m.allow, "POST");
	route_match_clear(&m);
	ck_assert_int_eq(router_match(r, "GET", "/api/v1/nothing", &m), ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(r, "GET", "/api/v1/webhooks/7/extra", &m), ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(r, "GET", "/api//webhooks", &m), ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(r, "GET", "/api/v1/webhooks/%zz", &m), ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(r, "GET", "/api/v1/webhooks/%00", &m), ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(r, "GET", "/api/v1/webhooks/%4", &m), ROUTER_NOT_FOUND);
	ck_assert_int_eq(router_match(r, "GET", "relative", &m), ROUTER_NOT_FOUND);

	ck_assert_int_eq(router_add(r, "GET", "nope", &h_a, 0), -1);
	ck_assert_int_eq(router_add(r, "GET", "/a//b", &h_a, 0), -1);
	ck_assert_int_eq(router_add(r, "GET", "/a/{x*}/b", &h_a, 0), -1);
	ck_assert_int_eq(router_add(r, "GET", "/a/{}", &h_a, 0), -1);
	router_free(r);
}
END_TEST

/* --- json ---------------------------------------------------------------------------- */

static void
check_number(double d, const char *want)
{
	char buf[40];

	json_format_number(d, buf, sizeof(buf));
	ck_assert_msg(strcmp(buf, want) == 0, "%.17g formatted as %s, want %s", d, buf, want);
}

START_TEST(test_json_numbers)
{
	/* Expected strings are what JavaScript's String(n) prints. */
	check_number(0, "0");
	check_number(-0.0, "0");
	check_number(1, "1");
	check_number(-1, "-1");
	check_number(1.5, "1.5");
	check_number(99.99, "99.99");
	check_number(0.1, "0.1");
	check_number(0.1 + 0.2, "0.30000000000000004");
	check_number(100, "100");
	check_number(123456789012, "123456789012");
	check_number(1e21, "1e+21");
	check_number(1e20, "100000000000000000000");
	check_number(1.5e300, "1.5e+300");
	check_number(0.000001, "0.000001");
	check_number(0.0000001, "1e-7");
	check_number(1.2345e-7, "1.2345e-7");
	check_number(-2.5e-10, "-2.5e-10");
	check_number(5e-324, "5e-324");
	check_number(1.7976931348623157e308, "1.7976931348623157e+308");
	check_number(123.456, "123.456");
	check_number(NAN, "null");
}
END_TEST

START_TEST(test_json_compact)
{
	const char *in =
	    "{ \"a\" : 99.990, \"b\": 1.0, \"c\": \"x/y\\u0001\\n\\\"é\",\n"
	    "  \"d\": 1e21, \"e\": [true, false, null, -0.0, 12], \"f\": {} , \"g\": []}";
	char err[128];
	struct json_object *o = json_parse(in, strlen(in), err, sizeof(err));
	char *out;
	size_t len;

	ck_assert_msg(o != NULL, "%s", err);
	out = json_compact(o, &len);
	ck_assert_str_eq(out, "{\"a\":99.99,\"b\":1,\"c\":\"x/y\\u0001\\n\\\"é\",\"d\":1e+21,"
	                      "\"e\":[true,false,null,0,12],\"f\":{},\"g\":[]}");
	ck_assert_uint_eq(len, strlen(out));
	free(out);
	json_object_put(o);
}
END_TEST

START_TEST(test_json_parse_errors)
{
	static const char *bad[] = {
	    "",
	    "{",
	    "{\"a\":1} x",
	    "[1,]",
	    "{'a':1}",
	    "{\"a\":\"\\u0000\"}",
	    "nul",
	    "{\"a\":1}{\"b\":2}",
	    "\"\xff\"",
	    "{\"a\":01}",
	};
	char err[128];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct json_object *o = json_parse(bad[i], strlen(bad[i]), err, sizeof(err));

		ck_assert_msg(o == NULL, "accepted %s", bad[i]);
		ck_assert_msg(err[0] != '\0', "no reason for %s", bad[i]);
	}
	{
		static const char *good[] = {
		    " [1] \n", "42", "-1.5e3", "true", "false", "\"s\"", "{}"};

		for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
			struct json_object *ok =
			    json_parse(good[i], strlen(good[i]), err, sizeof(err));

			ck_assert_msg(ok != NULL, "refused %s: %s", good[i], err);
			json_object_put(ok);
		}
		ck_assert_ptr_null(json_parse("null", 4, err, sizeof(err)));
		ck_assert_ptr_null(json_parse("4x", 2, err, sizeof(err)));
		ck_assert_ptr_null(json_parse("tru", 3, err, sizeof(err)));
	}
}
END_TEST

START_TEST(test_json_accessors)
{
	const char *in = "{\"s\":\"x\",\"i\":42,\"d\":3.0,\"f\":3.5,\"b\":true,\"o\":{},\"a\":[]}";
	char err[64];
	struct json_object *o = json_parse(in, strlen(in), err, sizeof(err));
	int64_t i;
	int b;

	ck_assert_str_eq(json_get_str(o, "s"), "x");
	ck_assert_ptr_null(json_get_str(o, "i"));
	ck_assert_int_eq(json_get_int(o, "i", &i), 0);
	ck_assert_int_eq(i, 42);
	ck_assert_int_eq(json_get_int(o, "d", &i), 0);
	ck_assert_int_eq(i, 3);
	ck_assert_int_eq(json_get_int(o, "f", &i), -1);
	ck_assert_int_eq(json_get_int(o, "s", &i), -1);
	ck_assert_int_eq(json_get_bool(o, "b", &b), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_ptr_nonnull(json_get_obj(o, "o"));
	ck_assert_ptr_null(json_get_obj(o, "a"));
	ck_assert_ptr_nonnull(json_get_arr(o, "a"));
	ck_assert_ptr_null(json_get_str(o, "missing"));
	json_object_put(o);
}
END_TEST

START_TEST(test_json_path)
{
	const char *in = "{\"type\":\"a.b\",\"data\":{\"object\":{\"id\":\"pi_1\",\"n\":7}},"
	                 "\"items\":[{\"sku\":\"x\"},{\"sku\":\"y\"}],\"flag\":true}";
	char err[64], *t;
	struct json_object *o = json_parse(in, strlen(in), err, sizeof(err));

	ck_assert_str_eq(json_object_get_string(json_path(o, "$.data.object.id")), "pi_1");
	ck_assert_str_eq(json_object_get_string(json_path(o, "data.object.id")), "pi_1");
	ck_assert_str_eq(json_object_get_string(json_path(o, "items[1].sku")), "y");
	ck_assert_str_eq(json_object_get_string(json_path(o, "$.items.0.sku")), "x");
	ck_assert_ptr_null(json_path(o, "items[2].sku"));
	ck_assert_ptr_null(json_path(o, "data.missing"));
	ck_assert_ptr_null(json_path(o, "type.x"));
	ck_assert_ptr_null(json_path(o, "data[0]"));
	t = json_scalar_text(json_path(o, "data.object.n"));
	ck_assert_str_eq(t, "7");
	free(t);
	t = json_scalar_text(json_path(o, "flag"));
	ck_assert_str_eq(t, "true");
	free(t);
	ck_assert_ptr_null(json_scalar_text(json_path(o, "data")));
	ck_assert(json_path_valid("$.a.b[0]"));
	ck_assert(json_path_valid("id"));
	ck_assert(!json_path_valid("$"));
	ck_assert(!json_path_valid("a..b"));
	ck_assert(!json_path_valid("a[x]"));
	ck_assert(!json_path_valid("a["));
	json_object_put(o);
}
END_TEST

/* --- metrics ------------------------------------------------------------------------- */

START_TEST(test_metrics_render)
{
	struct metric *c = metric_counter("t_requests_total", "Requests.", "route,status");
	struct metric *g = metric_gauge("t_conns", "Connections.", NULL);
	const double b[] = {0.1, 1};
	struct metric *h = metric_histogram("t_seconds", "Durations.", "route", b, 2);
	char *text;
	size_t len;

	metric_add(c, 1, "/in/{slug}", "202");
	metric_add(c, 2, "/in/{slug}", "202");
	metric_add(c, 1, "a\"b", "404");
	metric_set(g, 5);
	metric_observe(h, 0.05, "/x");
	metric_observe(h, 0.5, "/x");
	metric_observe(h, 5, "/x");
	ck_assert(metric_value(c, "/in/{slug}", "202") == 3);
	text = metrics_render(&len);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE t_requests_total counter\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "t_requests_total{route=\"/in/{slug}\",status=\"202\"} 3\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "t_requests_total{route=\"a\\\"b\",status=\"404\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_conns 5\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_count{route=\"/x\"} 3\n"));
	free(text);
	metrics_reset();
}
END_TEST

/* --- encodings and ids ----------------------------------------------------------------- */

START_TEST(test_encodings)
{
	unsigned char buf[64];
	char hex[129], *b64;
	int n;

	hex_encode((const unsigned char *)"\x00\xffhi", 4, hex);
	ck_assert_str_eq(hex, "00ff6869");
	n = hex_decode("00FF6869", 8, buf, sizeof(buf));
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(memcmp(buf, "\x00\xffhi", 4), 0);
	ck_assert_int_eq(hex_decode("abc", 3, buf, sizeof(buf)), -1);
	ck_assert_int_eq(hex_decode("zz", 2, buf, sizeof(buf)), -1);
	b64 = base64_encode((const unsigned char *)"hello?", 6);
	ck_assert_str_eq(b64, "aGVsbG8/");
	free(b64);
	ck_assert_int_eq(base64_decode("aGVsbG8/", 8, buf, sizeof(buf)), 6);
	ck_assert_int_eq(base64_decode("aGVsbG8_", 8, buf, sizeof(buf)), 6);
	ck_assert_int_eq(base64_decode("aGk", 3, buf, sizeof(buf)), 2);
	ck_assert_int_eq(base64_decode("!!", 2, buf, sizeof(buf)), -1);
	ck_assert(ct_equal("abc", 3, "abc", 3));
	ck_assert(!ct_equal("abc", 3, "abd", 3));
	ck_assert(!ct_equal("abc", 3, "abcd", 4));
}
END_TEST

START_TEST(test_uuid)
{
	char a[37], b[37];

	uuid_v7(a);
	uuid_v7(b);
	ck_assert(uuid_valid(a));
	ck_assert_int_eq(a[14], '7');
	ck_assert(strchr("89ab", a[19]) != NULL);
	ck_assert_str_ne(a, b);
	ck_assert(!uuid_valid("not-a-uuid"));
	ck_assert(uuid_valid("550e8400-e29b-41d4-a716-446655440000"));
	ck_assert(!uuid_valid("550e8400-e29b-41d4-a716-44665544000g"));
	ck_assert(!uuid_valid("550e8400-e29b-41d4-a716-4466554400001"));
}
END_TEST

/* --- admin keys ------------------------------------------------------------------------ */

START_TEST(test_keys_hash)
{
	char hash[KEYS_HASH_LEN + 1], key[KEYS_LEN + 1], key2[KEYS_LEN + 1],
	    prefix[KEYS_PREFIX_LEN + 1];

	/* Reference: Python hashlib.blake2b(key, digest_size=32).hexdigest(). */
	keys_hash("hk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", hash);
	ck_assert_str_eq(hash, "d9c404051e034fd841a171223a9e65211d70e37623ad2d821cd0533dd661c786");
	keys_hash("", hash);
	ck_assert_str_eq(hash, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");

	keys_generate(key);
	keys_generate(key2);
	ck_assert_uint_eq(strlen(key), KEYS_LEN);
	ck_assert_str_ne(key, key2);
	ck_assert(keys_plausible(key));
	keys_prefix(key, prefix);
	ck_assert_uint_eq(strlen(prefix), KEYS_PREFIX_LEN);
	ck_assert_int_eq(strncmp(prefix, key, KEYS_PREFIX_LEN), 0);

	ck_assert(!keys_plausible("hk_short"));
	ck_assert(!keys_plausible("xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	ck_assert(!keys_plausible("hk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	ck_assert(keys_valid_name("ci-deploy.bot@prod"));
	ck_assert(!keys_valid_name(""));
	ck_assert(!keys_valid_name("-leading"));
	ck_assert(!keys_valid_name("has space"));
}
END_TEST

static Suite *
core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_file);
	tcase_add_test(tc, test_config_errors);
	tcase_add_test(tc, test_config_validate_structured);
	tcase_add_test(tc, test_config_listen_parse);
	tcase_add_test(tc, test_config_units);
	tcase_add_test(tc, test_config_env);
	tcase_add_test(tc, test_config_diff);
	tcase_add_test(tc, test_config_documented);
	tcase_add_test(tc, test_router_match);
	tcase_add_test(tc, test_router_errors);
	tcase_add_test(tc, test_json_numbers);
	tcase_add_test(tc, test_json_compact);
	tcase_add_test(tc, test_json_parse_errors);
	tcase_add_test(tc, test_json_accessors);
	tcase_add_test(tc, test_json_path);
	tcase_add_test(tc, test_metrics_render);
	tcase_add_test(tc, test_encodings);
	tcase_add_test(tc, test_uuid);
	tcase_add_test(tc, test_keys_hash);
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
	sr = srunner_create(core_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
