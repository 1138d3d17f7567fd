/* SPDX-License-Identifier: ISC */
/* Outbound signatures: Standard Webhooks headers, the seeds' hex body HMACs, secrets. */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "hookd/sign.h"

#define SECRET_PREFIX "whsec_"
#define SECRET_BYTES  32
/* "v1," + base64 of 32 bytes + a separating space. */
#define SIG_TEXT_MAX  (3 + 44 + 1)

static const struct {
	unsigned flag;
	const char *name;
} set_names[] = {
    {SIGN_STANDARD, "standard"},
    {SIGN_OMNISALES, "omnisales"},
    {SIGN_FLUXBASE, "fluxbase"},
};

char *
sign_secret_generate(void)
{
	unsigned char raw[SECRET_BYTES];
	char *b64, *secret;

	randombytes_buf(raw, sizeof(raw));
	b64 = base64_encode(raw, sizeof(raw));
	secret = xasprintf(SECRET_PREFIX "%s", b64);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, strlen(b64));
	free(b64);
	return secret;
}

/*
 * Strict standard base64 (the alphabet the standardwebhooks libraries decode), padded,
 * or also unpadded when allow_unpadded. Returns 0 or -1.
 */
static int
decode_standard_b64(const char *in, size_t inlen, unsigned char *out, size_t outmax, size_t *outlen,
    int allow_unpadded)
{
	if (sodium_base642bin(
	        out, outmax, in, inlen, NULL, outlen, NULL, sodium_base64_VARIANT_ORIGINAL) == 0)
		return 0;
	if (!allow_unpadded)
		return -1;
	return sodium_base642bin(
	    out, outmax, in, inlen, NULL, outlen, NULL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
}

int
sign_secret_key(const char *secret, unsigned char *key, size_t *keylen)
{
	size_t len, plen = strlen(SECRET_PREFIX), n;
	int rc;

	if (secret == NULL)
		return -1;
	len = strlen(secret);
	if (len >= plen && strncmp(secret, SECRET_PREFIX, plen) == 0) {
		if (len == plen)
			return -1;
		/* Standard alphabet only, as the libraries; unpadded too (svix's 24-byte keys). */
		if (decode_standard_b64(secret + plen, len - plen, key, *keylen, &n, 1) != 0 ||
		    n == 0)
			return -1;
		*keylen = n;
		return 0;
	}
	if (len == 0)
		return -1;
	/* Unprefixed: only padded base64 counts, so that a short word stays a word. */
	rc = decode_standard_b64(secret, len, key, *keylen, &n, 0);
	if (rc == 0 && n > 0) {
		*keylen = n;
		return 0;
	}
	/* Not base64: the secret's own bytes are the key. */
	if (len > *keylen)
		return -1;
	memcpy(key, secret, len);
	*keylen = len;
	return 0;
}

/* HMAC-SHA256 of "{id}.{timestamp}.{body}" under one secret's key. */
static int
standard_mac(const char *secret, const char *msg_id, const char *ts, const char *body, size_t len,
    unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;
	unsigned char key[SIGN_KEY_MAX];
	size_t keylen = sizeof(key);

	if (sign_secret_key(secret, key, &keylen) != 0)
		return -1;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg_id, strlen(msg_id));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(key, sizeof(key));
	return 0;
}

char *
sign_standard(const char *msg_id, int64_t timestamp, const char *body, size_t len,
    const char *const *secrets, int nsecrets)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char ts[24], *out, *p;

	hookd_assert(body != NULL || len == 0);
	if (nsecrets <= 0 || secrets == NULL || msg_id == NULL)
		return NULL;
	if (body == NULL)
		body = "";
	snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
	out = xmalloc((size_t)nsecrets * SIG_TEXT_MAX + 1);
	p = out;
	for (int i = 0; i < nsecrets; i++) {
		char b64[sodium_base64_ENCODED_LEN(sizeof(mac), sodium_base64_VARIANT_ORIGINAL)];

		if (standard_mac(secrets[i], msg_id, ts, body, len, mac) != 0)
			goto fail;
		sodium_bin2base64(
		    b64, sizeof(b64), mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
		p += sprintf(p, "%sv1,%s", i > 0 ? " " : "", b64);
	}
	return out;

fail:
	free(out);
	return NULL;
}

char *
sign_hex_body(const char *secret, const char *body, size_t len)
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char *hex = xmalloc(2 * sizeof(mac) + 1);

	hookd_assert(secret != NULL);
	hookd_assert(body != NULL || len == 0);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)(body ? body : ""), len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	hex_encode(mac, sizeof(mac), hex);
	return hex;
}

/* A message id fit for a header value: printable ASCII, no spaces or control bytes. */
static int
header_token_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	}
	return 1;
}

int
sign_headers_build(unsigned flags, const char *msg_id, int64_t ts, const char *body, size_t len,
    const char *const *secrets, int nsecrets,
    void (*add)(const char *name, const char *value, void *arg), void *arg)
{
	char tsbuf[24], *standard = NULL, *hex = NULL;
	int rc = -1;

	if (!header_token_ok(msg_id))
		goto out;
	if (nsecrets < 0 || (nsecrets > 0 && secrets == NULL))
		goto out;
	snprintf(tsbuf, sizeof(tsbuf), "%" PRId64, ts);
	/* Compute every signature first so that a failure adds no header at all. */
	if ((flags & SIGN_STANDARD) && nsecrets > 0) {
		standard = sign_standard(msg_id, ts, body, len, secrets, nsecrets);
		if (standard == NULL)
			goto out;
	}
	if ((flags & (SIGN_OMNISALES | SIGN_FLUXBASE)) && nsecrets > 0)
		hex = sign_hex_body(secrets[0], body, len);

	if (flags & SIGN_STANDARD) {
		add("webhook-id", msg_id, arg);
		add("webhook-timestamp", tsbuf, arg);
		if (standard != NULL)
			add("webhook-signature", standard, arg);
	}
	if (flags & SIGN_OMNISALES) {
		if (hex != NULL)
			add("X-Webhook-Signature", hex, arg);
		add("X-Webhook-Timestamp", tsbuf, arg);
		add("X-Webhook-ID", msg_id, arg);
	}
	if ((flags & SIGN_FLUXBASE) && hex != NULL)
		add("X-Fluxbase-Signature", hex, arg);
	rc = 0;

out:
	free(standard);
	free(hex);
	return rc;
}

/*
 * Split Postgres array text ("{a,\"b c\"}") or a comma-separated list into trimmed,
 * non-empty elements. Returns a NULL-terminated malloc'd vector (free with
 * free_list()) or NULL on a syntax error; *n gets the count.
 */
static char **
split_list(const char *s, int *n)
{
	char **v = NULL;
	char *buf = NULL;
	const char *p, *end;
	int count = 0;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if (end > s && *s == '{') {
		if (end[-1] != '}' || end - s < 2)
			return NULL;
		s++;
		end--;
	}
	v = xcalloc(1, sizeof(*v));
	buf = xmalloc((size_t)(end - s) + 1);
	p = s;
	while (p < end) {
		size_t blen = 0;

		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p == end && count == 0)
			break; /* "{ }" */
		if (p < end && *p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				buf[blen++] = *p;
			}
			if (p == end)
				goto fail;
			p++;
			while (p < end && isspace((unsigned char)*p))
				p++;
		} else {
			while (p < end && *p != ',' && *p != '"' && *p != '{' && *p != '}')
				buf[blen++] = *p++;
			while (blen > 0 && isspace((unsigned char)buf[blen - 1]))
				blen--;
		}
		if (blen == 0 || (p < end && *p != ','))
			goto fail;
		if (p < end && p + 1 == end)
			goto fail; /* trailing comma */
		if (p < end)
			p++;
		v = xrealloc(v, (size_t)(count + 2) * sizeof(*v));
		v[count++] = xstrndup(buf, blen);
		v[count] = NULL;
	}
	free(buf);
	*n = count;
	return v;

fail:
	for (int i = 0; i < count; i++)
		free(v[i]);
	free(v);
	free(buf);
	return NULL;
}

static void
free_list(char **v)
{
	for (char **p = v; p != NULL && *p != NULL; p++)
		free(*p);
	free(v);
}

int
sign_headers_parse(const char *list, unsigned *flags, char *why, size_t whylen)
{
	char **v;
	unsigned mask = 0;
	int n, rc = -1;

	if (list == NULL) {
		*flags = 0;
		return 0;
	}
	v = split_list(list, &n);
	if (v == NULL) {
		snprintf(why, whylen, "header sets: malformed list");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < ARRAY_SIZE(set_names); j++) {
			if (strcasecmp(v[i], set_names[j].name) == 0)
				break;
		}
		if (j == ARRAY_SIZE(set_names)) {
			snprintf(why, whylen,
			    "unknown header set \"%.64s\" "
			    "(expected standard, omnisales or fluxbase)",
			    v[i]);
			goto out;
		}
		mask |= set_names[j].flag;
	}
	*flags = mask;
	rc = 0;

out:
	free_list(v);
	return rc;
}

char *
sign_headers_format(unsigned flags)
{
	char buf[64];
	size_t off = 0;

	buf[off++] = '{';
	for (size_t j = 0; j < ARRAY_SIZE(set_names); j++) {
		if (flags & set_names[j].flag)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
			    off > 1 ? "," : "", set_names[j].name);
	}
	buf[off++] = '}';
	buf[off] = '\0';
	return xstrdup(buf);
}
