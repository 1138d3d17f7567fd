/* SPDX-License-Identifier: ISC */
/* Unit tests for outbound signing (Standard Webhooks, seed header sets) and sealed secrets. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "hookd/seal.h"
#include "hookd/sign.h"
#include "hookd/util.h"

/* The published Standard Webhooks test vector (standard-webhooks spec and libraries). */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS     1614265330
#define SW_BODY   "{\"test\": 2432232314}"
#define SW_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/*
 * A second secret, whsec_ + base64 of the bytes 0..31. Its signature of the vector's
 * message was computed once, independently, with Python:
 *   hmac.new(bytes(range(32)), b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}',
 *            hashlib.sha256).digest() | base64
 */
#define SECRET2     "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SECRET2_SIG "v1,O4Gjv1HqPqsMrjmczoggs/sWA8gZD0VyHG+fLh4+ktI="

/*
 * Hex body HMACs keyed with the secret string itself, computed once with OpenSSL:
 *   printf '%s' '{"id":"evt_1","event":"order.created","data":{"url":"https://x/y"}}' \
 *     | openssl dgst -sha256 -hmac 'whsec_abc123'
 *   printf '%s' '' | openssl dgst -sha256 -hmac 'your-webhook-secret'
 *   printf '%s' '{"id":"evt_1",...same body...}' | openssl dgst -sha256 -hmac "$SECRET2"
 */
#define HEX_BODY        "{\"id\":\"evt_1\",\"event\":\"order.created\",\"data\":{\"url\":\"https://x/y\"}}"
#define HEX_SECRET      "whsec_abc123"
#define HEX_SIG         "0dcc1109e1cdf9cffd0ab3214d4d3a499a8881fb8901d1b1f78566d4b026d2dd"
#define HEX_EMPTY_SIG   "9b05faa11d309c22d73f09cf58fa137bd436128250daccc545773e612633055f"
#define HEX_SECRET2_SIG "79cff1b0a3cfdaee855a141a590a41c5202dc5b2a28658cad90ef8aa798b4307"

/* --- Standard Webhooks --------------------------------------------------------------- */

START_TEST(test_standard_vector)
{
	const char *secrets[] = {SW_SECRET};
	char *sig = sign_standard(SW_MSG_ID, SW_TS, SW_BODY, strlen(SW_BODY), secrets, 1);

	ck_assert_ptr_nonnull(sig);
	ck_assert_str_eq(sig, SW_SIG);
	free(sig);
}
END_TEST

START_TEST(test_standard_rotation)
{
	const char *secrets[] = {SW_SECRET, SECRET2};
	char *sig;

	sig = sign_standard(SW_MSG_ID, SW_TS, SW_BODY, strlen(SW_BODY), secrets, 2);
	ck_assert_ptr_nonnull(sig);
	ck_assert_str_eq(sig, SW_SIG " " SECRET2_SIG);
	free(sig);

	/* Newest first: the order given is the order sent. */
	secrets[0] = SECRET2;
	secrets[1] = SW_SECRET;
	sig = sign_standard(SW_MSG_ID, SW_TS, SW_BODY, strlen(SW_BODY), secrets, 2);
	ck_assert_str_eq(sig, SECRET2_SIG " " SW_SIG);
	free(sig);

	/* No secret, or one that yields no key: no header value at all. */
	ck_assert_ptr_null(sign_standard(SW_MSG_ID, SW_TS, SW_BODY, strlen(SW_BODY), secrets, 0));
	secrets[1] = "whsec_!!!";
	ck_assert_ptr_null(sign_standard(SW_MSG_ID, SW_TS, SW_BODY, strlen(SW_BODY), secrets, 2));
}
END_TEST

START_TEST(test_secret_key)
{
	unsigned char key[SIGN_KEY_MAX], small[4];
	size_t len;
	char *sig, *longsecret;
	const char *secrets[1];

	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key(SW_SECRET, key, &len), 0);
	ck_assert_uint_eq(len, 24);
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key(SECRET2, key, &len), 0);
	ck_assert_uint_eq(len, 32);
	ck_assert_uint_eq(key[0], 0);
	ck_assert_uint_eq(key[31], 31);

	/* Unpadded base64 after the prefix is accepted too (svix-style 24-byte keys). */
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("whsec_AAECAw", key, &len), 0);
	ck_assert_uint_eq(len, 4);

	/* Not base64 after whsec_, or nothing after it: refused. */
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("whsec_", key, &len), -1);
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("whsec_!!!!", key, &len), -1);
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("whsec_ab-_", key, &len), -1); /* URL-safe alphabet */
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key(HEX_SECRET, key, &len), -1); /* stray bits: not base64 */
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("", key, &len), -1);
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key(NULL, key, &len), -1);

	/* Without the prefix: padded base64 is decoded ... */
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("abcd", key, &len), 0);
	ck_assert_uint_eq(len, 3);
	/* ... anything else is used as its own bytes. */
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("your-webhook-secret", key, &len), 0);
	ck_assert_uint_eq(len, strlen("your-webhook-secret"));
	ck_assert_int_eq(memcmp(key, "your-webhook-secret", len), 0);
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key("secret", key, &len), 0); /* unpadded: a word */
	ck_assert_uint_eq(len, 6);

	/* Too long for the buffer. */
	len = sizeof(small);
	ck_assert_int_eq(sign_secret_key(SW_SECRET, small, &len), -1);
	longsecret = xmalloc(SIGN_KEY_MAX + 2);
	memset(longsecret, 'x', SIGN_KEY_MAX + 1);
	longsecret[SIGN_KEY_MAX + 1] = '\0';
	len = sizeof(key);
	ck_assert_int_eq(sign_secret_key(longsecret, key, &len), -1);
	free(longsecret);

	/*
	 * Signatures under unprefixed secrets, checked against Python's hmac:
	 * key b'your-webhook-secret' and key base64.b64decode('abcd').
	 */
	secrets[0] = "your-webhook-secret";
	sig = sign_standard(SW_MSG_ID, SW_TS, SW_BODY, strlen(SW_BODY), secrets, 1);
	ck_assert_str_eq(sig, "v1,hCyyCA+1l1C0cvnYmJoOpm8XVWTX3inhhmC1rEwCykY=");
	free(sig);
	secrets[0] = "abcd";
	sig = sign_standard(SW_MSG_ID, SW_TS, SW_BODY, strlen(SW_BODY), secrets, 1);
	ck_assert_str_eq(sig, "v1,TXeGJtbZM+gfJQK4PQio7K26uiQH34rV1scbezm8QDk=");
	free(sig);
}
END_TEST

START_TEST(test_secret_generate)
{
	char *a = sign_secret_generate(), *b = sign_secret_generate();
	unsigned char key[SIGN_KEY_MAX];
	size_t len = sizeof(key);

	ck_assert_int_eq(strncmp(a, "whsec_", 6), 0);
	ck_assert_uint_eq(strlen(a), 6 + 44);
	ck_assert_int_eq(base64_decode(a + 6, strlen(a) - 6, key, sizeof(key)), 32);
	ck_assert_int_eq(sign_secret_key(a, key, &len), 0);
	ck_assert_uint_eq(len, 32);
	ck_assert_str_ne(a, b);
	free(a);
	free(b);
}
END_TEST

/* --- seed header sets ---------------------------------------------------------------- */

START_TEST(test_hex_body)
{
	char *hex = sign_hex_body(HEX_SECRET, HEX_BODY, strlen(HEX_BODY));

	ck_assert_str_eq(hex, HEX_SIG);
	free(hex);
	hex = sign_hex_body("your-webhook-secret", "", 0);
	ck_assert_str_eq(hex, HEX_EMPTY_SIG);
	free(hex);
}
END_TEST

struct headers {
	int n;
	char name[16][32];
	char value[16][128];
};

static void
collect_cb(const char *name, const char *value, void *arg)
{
	struct headers *h = arg;

	ck_assert_int_lt(h->n, 16);
	snprintf(h->name[h->n], sizeof(h->name[0]), "%s", name);
	snprintf(h->value[h->n], sizeof(h->value[0]), "%s", value);
	h->n++;
}

#define ASSERT_HEADER(h, i, nm, val)                                                               \
	do {                                                                                       \
		ck_assert_str_eq((h).name[i], nm);                                                 \
		ck_assert_str_eq((h).value[i], val);                                               \
	} while (0)

START_TEST(test_headers_build)
{
	const char *secrets[] = {HEX_SECRET, SW_SECRET};
	const char *sw[] = {SW_SECRET};
	struct headers h;
	char *std;

	/* Standard alone reproduces the published vector. */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(sign_headers_build(SIGN_STANDARD, SW_MSG_ID, SW_TS, SW_BODY,
	                     strlen(SW_BODY), sw, 1, collect_cb, &h),
	    0);
	ck_assert_int_eq(h.n, 3);
	ASSERT_HEADER(h, 0, "webhook-id", SW_MSG_ID);
	ASSERT_HEADER(h, 1, "webhook-timestamp", "1614265330");
	ASSERT_HEADER(h, 2, "webhook-signature", SW_SIG);

	/* Seed 003: hex of the body under the newest secret, timestamp, id. */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(sign_headers_build(SIGN_OMNISALES, "evt_1", 1705401000, HEX_BODY,
	                     strlen(HEX_BODY), secrets, 2, collect_cb, &h),
	    0);
	ck_assert_int_eq(h.n, 3);
	ASSERT_HEADER(h, 0, "X-Webhook-Signature", HEX_SIG);
	ASSERT_HEADER(h, 1, "X-Webhook-Timestamp", "1705401000");
	ASSERT_HEADER(h, 2, "X-Webhook-ID", "evt_1");

	/* Seed 004: one header. */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(sign_headers_build(SIGN_FLUXBASE, "evt_1", 1705401000, HEX_BODY,
	                     strlen(HEX_BODY), secrets, 2, collect_cb, &h),
	    0);
	ck_assert_int_eq(h.n, 1);
	ASSERT_HEADER(h, 0, "X-Fluxbase-Signature", HEX_SIG);

	/*
	 * "whsec_abc123" (seed 003's example) is not base64 after the prefix, so it has no
	 * Standard Webhooks key: asking for the standard set with it fails as a whole.
	 */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(sign_headers_build(SIGN_ALL, "evt_1", 1705401000, HEX_BODY,
	                     strlen(HEX_BODY), secrets, 2, collect_cb, &h),
	    -1);
	ck_assert_int_eq(h.n, 0);

	/* All three, in order; the standard signature carries both secrets, hex the newest. */
	secrets[0] = SECRET2;
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(sign_headers_build(SIGN_ALL, "evt_1", 1705401000, HEX_BODY,
	                     strlen(HEX_BODY), secrets, 2, collect_cb, &h),
	    0);
	ck_assert_int_eq(h.n, 7);
	std = sign_standard("evt_1", 1705401000, HEX_BODY, strlen(HEX_BODY), secrets, 2);
	ASSERT_HEADER(h, 0, "webhook-id", "evt_1");
	ASSERT_HEADER(h, 1, "webhook-timestamp", "1705401000");
	ASSERT_HEADER(h, 2, "webhook-signature", std);
	ck_assert_ptr_nonnull(strchr(h.value[2], ' '));
	ASSERT_HEADER(h, 3, "X-Webhook-Signature", HEX_SECRET2_SIG);
	ASSERT_HEADER(h, 4, "X-Webhook-Timestamp", "1705401000");
	ASSERT_HEADER(h, 5, "X-Webhook-ID", "evt_1");
	ASSERT_HEADER(h, 6, "X-Fluxbase-Signature", HEX_SECRET2_SIG);
	free(std);

	/* No secret: ids and timestamps only. */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(
	    sign_headers_build(SIGN_ALL, "evt_1", 1, "{}", 2, NULL, 0, collect_cb, &h), 0);
	ck_assert_int_eq(h.n, 4);
	ASSERT_HEADER(h, 0, "webhook-id", "evt_1");
	ASSERT_HEADER(h, 1, "webhook-timestamp", "1");
	ASSERT_HEADER(h, 2, "X-Webhook-Timestamp", "1");
	ASSERT_HEADER(h, 3, "X-Webhook-ID", "evt_1");

	/* Nothing asked, nothing added. */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(sign_headers_build(0, "evt_1", 1, "{}", 2, sw, 1, collect_cb, &h), 0);
	ck_assert_int_eq(h.n, 0);

	/* Ids that would split or smuggle headers, and unusable secrets: -1, nothing added. */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(
	    sign_headers_build(SIGN_ALL, "evt\r\nX-Evil: 1", 1, "{}", 2, sw, 1, collect_cb, &h),
	    -1);
	ck_assert_int_eq(
	    sign_headers_build(SIGN_ALL, "evt 1", 1, "{}", 2, sw, 1, collect_cb, &h), -1);
	ck_assert_int_eq(sign_headers_build(SIGN_ALL, "", 1, "{}", 2, sw, 1, collect_cb, &h), -1);
	ck_assert_int_eq(sign_headers_build(SIGN_ALL, NULL, 1, "{}", 2, sw, 1, collect_cb, &h), -1);
	secrets[1] = "whsec_***";
	ck_assert_int_eq(
	    sign_headers_build(SIGN_ALL, "evt_1", 1, "{}", 2, secrets, 2, collect_cb, &h), -1);
	ck_assert_int_eq(h.n, 0);

	/* Negative timestamps are printed as numbers (never happens, but stays defined). */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(
	    sign_headers_build(SIGN_STANDARD, "m", -5, "", 0, NULL, 0, collect_cb, &h), 0);
	ASSERT_HEADER(h, 1, "webhook-timestamp", "-5");
}
END_TEST

START_TEST(test_headers_parse)
{
	unsigned f = 99;
	char why[128] = "", *s;

	ck_assert_int_eq(sign_headers_parse("{standard,omnisales}", &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, SIGN_STANDARD | SIGN_OMNISALES);
	ck_assert_int_eq(sign_headers_parse("standard, fluxbase", &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, SIGN_STANDARD | SIGN_FLUXBASE);
	ck_assert_int_eq(sign_headers_parse("{\"FluxBase\"}", &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, SIGN_FLUXBASE);
	ck_assert_int_eq(sign_headers_parse("{standard,standard}", &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, SIGN_STANDARD);
	ck_assert_int_eq(sign_headers_parse("{}", &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, 0);
	f = 99;
	ck_assert_int_eq(sign_headers_parse("", &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, 0);
	f = 99;
	ck_assert_int_eq(sign_headers_parse(NULL, &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, 0);

	f = 99;
	ck_assert_int_eq(sign_headers_parse("{standard,github}", &f, why, sizeof(why)), -1);
	ck_assert_uint_eq(f, 99);
	ck_assert_ptr_nonnull(strstr(why, "\"github\""));
	ck_assert_int_eq(sign_headers_parse("{standard", &f, why, sizeof(why)), -1);
	ck_assert_int_eq(sign_headers_parse("standard,,fluxbase", &f, why, sizeof(why)), -1);
	ck_assert_int_eq(sign_headers_parse("standard,", &f, why, sizeof(why)), -1);
	ck_assert_int_eq(sign_headers_parse("{\"standard}", &f, why, sizeof(why)), -1);
	ck_assert_int_eq(sign_headers_parse("{NULL}", &f, why, sizeof(why)), -1);

	s = sign_headers_format(SIGN_ALL);
	ck_assert_str_eq(s, "{standard,omnisales,fluxbase}");
	free(s);
	s = sign_headers_format(SIGN_STANDARD | SIGN_FLUXBASE);
	ck_assert_str_eq(s, "{standard,fluxbase}");
	ck_assert_int_eq(sign_headers_parse(s, &f, why, sizeof(why)), 0);
	ck_assert_uint_eq(f, SIGN_STANDARD | SIGN_FLUXBASE);
	free(s);
	s = sign_headers_format(0);
	ck_assert_str_eq(s, "{}");
	free(s);
}
END_TEST

/* --- sealed secrets ------------------------------------------------------------------ */

START_TEST(test_seal_roundtrip)
{
	unsigned char key[SEAL_KEY_BYTES], other[SEAL_KEY_BYTES], box[512];
	char *a, *b, *plain, *tampered;
	int n;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(other, sizeof(other));
	a = seal_encrypt(key, SW_SECRET);
	b = seal_encrypt(key, SW_SECRET);
	ck_assert_str_ne(a, b); /* fresh nonce each time */
	ck_assert_ptr_null(strstr(a, "MfKQ9r8G"));
	plain = seal_decrypt(key, a);
	ck_assert_ptr_nonnull(plain);
	ck_assert_str_eq(plain, SW_SECRET);
	seal_free(plain);
	plain = seal_decrypt(key, b);
	ck_assert_str_eq(plain, SW_SECRET);
	seal_free(plain);

	/* Wrong key. */
	ck_assert_ptr_null(seal_decrypt(other, a));

	/* Any flipped byte (nonce, MAC or ciphertext) is detected. */
	n = base64_decode(a, strlen(a), box, sizeof(box));
	ck_assert_int_eq(n, 24 + 16 + (int)strlen(SW_SECRET));
	for (int i = 0; i < n; i++) {
		box[i] ^= 0x01;
		tampered = base64_encode(box, (size_t)n);
		ck_assert_ptr_null(seal_decrypt(key, tampered));
		free(tampered);
		box[i] ^= 0x01;
	}
	/* Truncated, empty, not base64. */
	tampered = base64_encode(box, (size_t)n - 1);
	ck_assert_ptr_null(seal_decrypt(key, tampered));
	free(tampered);
	tampered = base64_encode(box, 24 + 15);
	ck_assert_ptr_null(seal_decrypt(key, tampered));
	free(tampered);
	ck_assert_ptr_null(seal_decrypt(key, ""));
	ck_assert_ptr_null(seal_decrypt(key, "!!!not base64!!!"));
	ck_assert_ptr_null(seal_decrypt(key, NULL));
	free(a);
	free(b);

	/* The empty secret round-trips too. */
	a = seal_encrypt(key, "");
	plain = seal_decrypt(key, a);
	ck_assert_str_eq(plain, "");
	seal_free(plain);
	free(a);

	/* A sealed value holding a NUL byte is refused rather than truncated. */
	randombytes_buf(box, 24);
	crypto_secretbox_easy(box + 24, (const unsigned char *)"ab\0cd", 5, box, key);
	a = base64_encode(box, 24 + 16 + 5);
	ck_assert_ptr_null(seal_decrypt(key, a));
	free(a);
}
END_TEST

START_TEST(test_seal_key_parse)
{
	unsigned char raw[SEAL_KEY_BYTES], key[SEAL_KEY_BYTES];
	char *b64, *padded;

	randombytes_buf(raw, sizeof(raw));
	b64 = base64_encode(raw, sizeof(raw));
	ck_assert_int_eq(seal_key_parse(b64, key), 0);
	ck_assert_int_eq(memcmp(raw, key, sizeof(key)), 0);
	padded = xasprintf("  %s\n", b64);
	memset(key, 0, sizeof(key));
	ck_assert_int_eq(seal_key_parse(padded, key), 0);
	ck_assert_int_eq(memcmp(raw, key, sizeof(key)), 0);
	free(padded);
	free(b64);

	b64 = base64_encode(raw, 31);
	ck_assert_int_eq(seal_key_parse(b64, key), -1);
	free(b64);
	b64 = base64_encode(raw, 33);
	ck_assert_int_eq(seal_key_parse(b64, key), -1);
	free(b64);
	ck_assert_int_eq(seal_key_parse("", key), -1);
	ck_assert_int_eq(seal_key_parse("   ", key), -1);
	ck_assert_int_eq(seal_key_parse("not base64 at all", key), -1);
	ck_assert_int_eq(seal_key_parse(NULL, key), -1);
}
END_TEST

static void
write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

START_TEST(test_seal_key_file)
{
	char dir[] = "/tmp/hookd-seal-XXXXXX", path[256], missing[256], text[128], err[256];
	unsigned char key[SEAL_KEY_BYTES], again[SEAL_KEY_BYTES], raw[SEAL_KEY_BYTES];
	struct stat st;
	char *b64;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/master.key", dir);
	snprintf(missing, sizeof(missing), "%s/nodir/master.key", dir);

	/* Missing and not to be created. */
	ck_assert_int_eq(seal_key_load(path, NULL, key, 0, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "does not exist"));

	/* Created with mode 0600 as base64 text, then read back unchanged. */
	ck_assert_int_eq(seal_key_load(path, NULL, key, 1, err, sizeof(err)), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	ck_assert_uint_eq(strlen(text), 45);
	ck_assert_int_eq(base64_decode(text, 44, again, sizeof(again)), 32);
	ck_assert_int_eq(memcmp(key, again, sizeof(key)), 0);
	memset(again, 0, sizeof(again));
	ck_assert_int_eq(seal_key_load(path, "", again, 0, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(key, again, sizeof(key)), 0);
	/* create on an existing file reads it, never replaces it. */
	ck_assert_int_eq(seal_key_load(path, NULL, again, 1, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(key, again, sizeof(key)), 0);
	/* No temporary file is left behind. */
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", dir);
		ck_assert_int_eq(system(cmd), 0);
	}

	/* Group or other access: refused, like ssh; the message names the mode, not the key. */
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 1, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "0644"));
	ck_assert_ptr_nonnull(strstr(err, "too open"));
	text[20] = '\0'; /* a fragment of the key's text */
	ck_assert_ptr_null(strstr(err, text));
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 0, err, sizeof(err)), -1);
	ck_assert_int_eq(chmod(path, 0602), 0);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 0, err, sizeof(err)), -1);
	ck_assert_int_eq(chmod(path, 0400), 0);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 0, err, sizeof(err)), 0);

	/* Exactly 32 raw bytes. */
	randombytes_buf(raw, sizeof(raw));
	ck_assert_int_eq(unlink(path), 0);
	write_file(path, raw, sizeof(raw), 0600);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 0, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(raw, again, sizeof(raw)), 0);

	/* Neither 32 raw bytes nor base64 of 32 bytes. */
	write_file(path, raw, 31, 0600);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 0, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "neither"));
	write_file(path, "", 0, 0600);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 1, err, sizeof(err)), -1);

	/* The environment wins over a broken file; a broken environment value is an error. */
	b64 = base64_encode(raw, sizeof(raw));
	memset(again, 0, sizeof(again));
	ck_assert_int_eq(seal_key_load(path, b64, again, 0, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(raw, again, sizeof(raw)), 0);
	b64[10] = '\0';
	ck_assert_int_eq(seal_key_load(path, b64, again, 0, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "environment"));
	free(b64);

	/* A directory is not a key file; a missing parent directory is not created. */
	ck_assert_int_eq(seal_key_load(dir, NULL, again, 0, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "regular file"));
	ck_assert_int_eq(seal_key_load(missing, NULL, again, 1, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "directory"));
	ck_assert_int_eq(seal_key_load(NULL, NULL, again, 1, err, sizeof(err)), -1);

	/* A dangling symbolic link is neither read nor replaced. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink("nowhere", path), 0);
	ck_assert_int_eq(seal_key_load(path, NULL, again, 1, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "symbolic link"));

	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Processes starting at once on a fresh machine all end up with the one key written. */
START_TEST(test_seal_key_race)
{
	enum { NPROC = 6 };
	char dir[] = "/tmp/hookd-seal-XXXXXX", path[256], err[256];
	unsigned char key[SEAL_KEY_BYTES], got[NPROC][SEAL_KEY_BYTES];
	int fds[NPROC][2];
	pid_t pids[NPROC];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/master.key", dir);
	for (int i = 0; i < NPROC; i++) {
		ck_assert_int_eq(pipe(fds[i]), 0);
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			unsigned char k[SEAL_KEY_BYTES];
			int ok = seal_key_load(path, NULL, k, 1, err, sizeof(err)) == 0;

			if (ok && write(fds[i][1], k, sizeof(k)) != (ssize_t)sizeof(k))
				ok = 0;
			_exit(ok ? 0 : 1);
		}
		close(fds[i][1]);
	}
	for (int i = 0; i < NPROC; i++) {
		int status;

		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		ck_assert_int_eq(read(fds[i][0], got[i], SEAL_KEY_BYTES), SEAL_KEY_BYTES);
		close(fds[i][0]);
	}
	ck_assert_int_eq(seal_key_load(path, NULL, key, 0, err, sizeof(err)), 0);
	for (int i = 0; i < NPROC; i++)
		ck_assert_int_eq(memcmp(got[i], key, sizeof(key)), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0); /* fails if a temporary file was left behind */
}
END_TEST

static Suite *
sign_suite(void)
{
	Suite *s = suite_create("sign");
	TCase *tc = tcase_create("sign");

	tcase_add_test(tc, test_standard_vector);
	tcase_add_test(tc, test_standard_rotation);
	tcase_add_test(tc, test_secret_key);
	tcase_add_test(tc, test_secret_generate);
	tcase_add_test(tc, test_hex_body);
	tcase_add_test(tc, test_headers_build);
	tcase_add_test(tc, test_headers_parse);
	tcase_add_test(tc, test_seal_roundtrip);
	tcase_add_test(tc, test_seal_key_parse);
	tcase_add_test(tc, test_seal_key_file);
	tcase_add_test(tc, test_seal_key_race);
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
	sr = srunner_create(sign_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
