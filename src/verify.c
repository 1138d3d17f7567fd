/* SPDX-License-Identifier: ISC */
/* Inbound signature verification: verifier configs compiled once, then requests checked. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include "hookd/json.h"
#include "hookd/util.h"
#include "hookd/verify.h"

#define VERIFY_MAX_SIGS 16 /* signatures looked at per header; providers send one to three */
#define VERIFY_SIG_MAX  64 /* largest signature: SHA-512 and Ed25519 */
#define VERIFY_TS_MAX   20 /* digits in a timestamp */

enum verify_kind {
	VERIFY_KIND_SIGNED, /* a signature over a content template (HMAC or Ed25519) */
	VERIFY_KIND_TWILIO, /* HMAC-SHA1 over the URL plus sorted form parameters */
	VERIFY_KIND_NONE,   /* no verification */
};

enum verify_alg {
	VERIFY_ALG_SHA256,  /* HMAC-SHA256 */
	VERIFY_ALG_SHA1,    /* HMAC-SHA1 */
	VERIFY_ALG_SHA512,  /* HMAC-SHA512 */
	VERIFY_ALG_ED25519, /* Ed25519 signature; the secret is the public key */
};

enum verify_enc {
	VERIFY_ENC_HEX,    /* either case */
	VERIFY_ENC_BASE64, /* standard or URL-safe, padding optional */
};

enum verify_key {
	VERIFY_KEY_RAW,    /* the secret string's bytes */
	VERIFY_KEY_BASE64, /* base64 of the key */
	VERIFY_KEY_HEX,    /* hex of the key */
	VERIFY_KEY_WHSEC,  /* optional "whsec_" then base64 (Standard Webhooks, Svix) */
};

enum verify_seg {
	VERIFY_SEG_LITERAL,   /* text from the template */
	VERIFY_SEG_BODY,      /* the raw body */
	VERIFY_SEG_TIMESTAMP, /* the timestamp as sent */
	VERIFY_SEG_ID,        /* the id header's value */
	VERIFY_SEG_URL,       /* the request URL */
	VERIFY_SEG_METHOD,    /* the request method */
};

enum verify_hs {
	VERIFY_HS_NONE,    /* no handshake */
	VERIFY_HS_SLACK,   /* url_verification: echo the challenge */
	VERIFY_HS_ZOOM,    /* endpoint.url_validation: HMAC of plainToken */
	VERIFY_HS_DISCORD, /* PING (type 1): answer type 1 */
};

struct segment {
	enum verify_seg kind;
	char *text; /* VERIFY_SEG_LITERAL only */
	size_t len;
};

struct verifier {
	char *scheme;
	enum verify_kind kind;
	char *header;        /* carries the signature(s) */
	char *prefix;        /* before each signature ("v1,", "sha256="), or NULL */
	int prefix_optional; /* a signature without the prefix counts too */
	char *separators;    /* characters between items, or NULL for one signature */
	enum verify_alg alg;
	enum verify_enc enc;
	enum verify_key key_enc;
	char *content; /* the template as configured */
	struct segment *segs;
	size_t nsegs;
	char *timestamp_header; /* timestamp in its own header */
	char *timestamp_param;  /* or as "NAME=" item of the signature header (Stripe, Paddle) */
	char *timestamp_json;   /* or a top-level member of the JSON body (Linear), optional */
	int timestamp_ms;       /* the timestamp counts milliseconds */
	char *id_header;        /* {id} */
	char *delivery_header;  /* verify_delivery_id */
	enum verify_hs handshake;
	EVP_MAC *mac;       /* HMAC implementation, fetched once */
	const char *digest; /* OpenSSL digest name */
	size_t sig_len;     /* bytes in one signature */
};

struct preset {
	const char *name;
	enum verify_kind kind;
	const char *header;
	const char *prefix;
	int prefix_optional;
	const char *separators;
	enum verify_alg alg;
	enum verify_enc enc;
	enum verify_key key_enc;
	const char *content;
	const char *timestamp_header;
	const char *timestamp_param;
	const char *timestamp_json;
	int timestamp_ms;
	const char *id_header;
	const char *delivery_header;
	enum verify_hs handshake;
};

/*
 * The presets. Unset fields mean: HMAC-SHA256, hex, the secret's bytes as the key,
 * content "{body}", the delivery id from id_header. "hmac" is the generic scheme: its
 * header comes from the config.
 */
static const struct preset presets[] = {
    {.name = "hmac"},
    {.name = "standard",
        .header = "webhook-signature",
        .prefix = "v1,",
        .separators = " ",
        .enc = VERIFY_ENC_BASE64,
        .key_enc = VERIFY_KEY_WHSEC,
        .content = "{id}.{timestamp}.{body}",
        .timestamp_header = "webhook-timestamp",
        .id_header = "webhook-id"},
    {.name = "svix",
        .header = "svix-signature",
        .prefix = "v1,",
        .separators = " ",
        .enc = VERIFY_ENC_BASE64,
        .key_enc = VERIFY_KEY_WHSEC,
        .content = "{id}.{timestamp}.{body}",
        .timestamp_header = "svix-timestamp",
        .id_header = "svix-id"},
    {.name = "stripe",
        .header = "Stripe-Signature",
        .prefix = "v1=",
        .separators = ",",
        .content = "{timestamp}.{body}",
        .timestamp_param = "t"},
    {.name = "github",
        .header = "X-Hub-Signature-256",
        .prefix = "sha256=",
        .delivery_header = "X-GitHub-Delivery"},
    {.name = "shopify",
        .header = "X-Shopify-Hmac-Sha256",
        .enc = VERIFY_ENC_BASE64,
        .delivery_header = "X-Shopify-Webhook-Id"},
    {.name = "slack",
        .header = "X-Slack-Signature",
        .prefix = "v0=",
        .content = "v0:{timestamp}:{body}",
        .timestamp_header = "X-Slack-Request-Timestamp",
        .handshake = VERIFY_HS_SLACK},
    {.name = "paddle",
        .header = "Paddle-Signature",
        .prefix = "h1=",
        .separators = ";",
        .content = "{timestamp}:{body}",
        .timestamp_param = "ts"},
    {.name = "linear",
        .header = "Linear-Signature",
        .timestamp_json = "webhookTimestamp",
        .timestamp_ms = 1,
        .delivery_header = "Linear-Delivery"},
    {.name = "zoom",
        .header = "x-zm-signature",
        .prefix = "v0=",
        .content = "v0:{timestamp}:{body}",
        .timestamp_header = "x-zm-request-timestamp",
        .handshake = VERIFY_HS_ZOOM},
    {.name = "twilio",
        .kind = VERIFY_KIND_TWILIO,
        .header = "X-Twilio-Signature",
        .alg = VERIFY_ALG_SHA1,
        .enc = VERIFY_ENC_BASE64,
        .delivery_header = "I-Twilio-Idempotency-Token"},
    {.name = "discord",
        .header = "X-Signature-Ed25519",
        .alg = VERIFY_ALG_ED25519,
        .key_enc = VERIFY_KEY_HEX,
        .content = "{timestamp}{body}",
        .timestamp_header = "X-Signature-Timestamp",
        .handshake = VERIFY_HS_DISCORD},
    {.name = "supabase", .header = "x-supabase-signature"},
    {.name = "hookd",
        .header = "X-Webhook-Signature",
        .prefix = "sha256=",
        .prefix_optional = 1,
        .delivery_header = "X-Webhook-ID"},
    {.name = "none", .kind = VERIFY_KIND_NONE},
};

/* Which kinds of scheme a config key may override. */
#define FOR_SIGNED (1u << VERIFY_KIND_SIGNED)
#define FOR_TWILIO (1u << VERIFY_KIND_TWILIO)
#define FOR_NONE   (1u << VERIFY_KIND_NONE)
#define FOR_ALL    (FOR_SIGNED | FOR_TWILIO | FOR_NONE)

static const struct {
	const char *name;
	unsigned kinds;
} config_keys[] = {
    {"scheme", FOR_ALL},
    {"header", FOR_SIGNED | FOR_TWILIO},
    {"prefix", FOR_SIGNED},
    {"prefix_optional", FOR_SIGNED},
    {"multiple", FOR_SIGNED},
    {"algorithm", FOR_SIGNED},
    {"encoding", FOR_SIGNED},
    {"key_encoding", FOR_SIGNED | FOR_TWILIO},
    {"content", FOR_SIGNED},
    {"timestamp_header", FOR_SIGNED},
    {"timestamp_param", FOR_SIGNED},
    {"timestamp_json", FOR_SIGNED},
    {"timestamp_unit", FOR_SIGNED},
    {"id_header", FOR_SIGNED},
    {"delivery_id_header", FOR_ALL},
    {"handshake", FOR_SIGNED},
};

/* A piece of signed content: the message is the concatenation of its pieces. */
struct piece {
	const void *p;
	size_t n;
};

struct message {
	struct piece *v;
	size_t n, cap;
};

/* A decoded secret. */
struct key {
	unsigned char *buf;
	size_t len;
};

/* What the headers of one request yielded. */
struct parsed {
	const char *ts; /* timestamp text as sent, not NUL-terminated */
	size_t ts_len;
	int64_t ts_val;
	const char *id;
	size_t id_len;
	int nfound; /* signature items carrying the prefix */
	int nsigs;  /* of those, the ones that decoded to the right length */
	unsigned char sig[VERIFY_MAX_SIGS][VERIFY_SIG_MAX];
};

/* A form parameter, percent-decoded, for Twilio. */
struct form_pair {
	const char *name;
	size_t nlen;
	const char *val;
	size_t vlen;
};

static void say(char *buf, size_t len, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Write a reason into a caller's buffer, which may be absent. */
static void
say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && is_space(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && is_space((*s)[*len - 1]))
		(*len)--;
}

static int
starts_with(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

/* --- compiling ---------------------------------------------------------------------- */

void
verifier_free(struct verifier *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nsegs; i++)
		free(v->segs[i].text);
	free(v->segs);
	free(v->scheme);
	free(v->header);
	free(v->prefix);
	free(v->separators);
	free(v->content);
	free(v->timestamp_header);
	free(v->timestamp_param);
	free(v->timestamp_json);
	free(v->id_header);
	free(v->delivery_header);
	EVP_MAC_free(v->mac);
	free(v);
}

/* An HTTP header name: RFC 9110 token characters. */
static int
valid_header_name(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 128)
		return 0;
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		        (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
			return 0;
	}
	return 1;
}

static void
add_segment(struct verifier *v, enum verify_seg kind, const char *text, size_t len)
{
	struct segment *s;

	v->segs = xrealloc(v->segs, (v->nsegs + 1) * sizeof(*v->segs));
	s = &v->segs[v->nsegs++];
	s->kind = kind;
	s->text = kind == VERIFY_SEG_LITERAL ? xstrndup(text, len) : NULL;
	s->len = len;
}

/* Split the content template into literal text and placeholders. */
static int
parse_content(struct verifier *v, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum verify_seg kind;
	} names[] = {
	    {"{body}", VERIFY_SEG_BODY},
	    {"{timestamp}", VERIFY_SEG_TIMESTAMP},
	    {"{id}", VERIFY_SEG_ID},
	    {"{url}", VERIFY_SEG_URL},
	    {"{method}", VERIFY_SEG_METHOD},
	};
	const char *s = v->content, *lit = s;

	while (*s != '\0') {
		size_t i;

		if (*s != '{') {
			s++;
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(names); i++) {
			if (strncmp(s, names[i].name, strlen(names[i].name)) == 0)
				break;
		}
		if (i == ARRAY_SIZE(names)) {
			const char *end = strchr(s, '}');

			if (end == NULL)
				say(err, errlen, "content: unterminated placeholder");
			else
				say(err, errlen,
				    "content: unknown placeholder %.*s (use {body}, "
				    "{timestamp}, {id}, {url} or {method})",
				    (int)(end - s + 1), s);
			return -1;
		}
		if (s > lit)
			add_segment(v, VERIFY_SEG_LITERAL, lit, (size_t)(s - lit));
		add_segment(v, names[i].kind, NULL, 0);
		s += strlen(names[i].name);
		lit = s;
	}
	if (s > lit)
		add_segment(v, VERIFY_SEG_LITERAL, lit, (size_t)(s - lit));
	return 0;
}

static int
has_segment(const struct verifier *v, enum verify_seg kind)
{
	for (size_t i = 0; i < v->nsegs; i++) {
		if (v->segs[i].kind == kind)
			return 1;
	}
	return 0;
}

/* Look a name up in a NULL-terminated list of alternatives; its index or -1. */
static int
pick(const char *s, const char *const *names)
{
	for (int i = 0; names[i] != NULL; i++) {
		if (strcasecmp(s, names[i]) == 0)
			return i;
	}
	return -1;
}

/* Apply one override from the config. */
static int
apply_key(struct verifier *v, const char *key, struct json_object *val, char *err, size_t errlen)
{
	static const char *const algs[] = {"sha256", "sha1", "sha512", "ed25519", NULL};
	static const char *const encs[] = {"hex", "base64", NULL};
	static const char *const keys[] = {"raw", "base64", "hex", "whsec", NULL};
	static const char *const units[] = {"s", "ms", NULL};
	static const char *const hss[] = {"none", "slack", "zoom", "discord", NULL};
	const char *s = NULL;
	int i;

	if (strcmp(key, "prefix_optional") == 0) {
		if (!json_object_is_type(val, json_type_boolean)) {
			say(err, errlen, "prefix_optional must be true or false");
			return -1;
		}
		v->prefix_optional = json_object_get_boolean(val);
		return 0;
	}
	/* Every other key is a string; null or "" clears an optional one. */
	if (json_object_is_type(val, json_type_string))
		s = json_object_get_string(val);
	else if (!json_object_is_type(val, json_type_null)) {
		say(err, errlen, "%s must be a string", key);
		return -1;
	}
	if (strcmp(key, "header") == 0) {
		free(v->header);
		v->header = dup_or_null(s);
	} else if (strcmp(key, "prefix") == 0) {
		free(v->prefix);
		v->prefix = dup_or_null(s);
	} else if (strcmp(key, "multiple") == 0) {
		free(v->separators);
		v->separators = dup_or_null(s);
	} else if (strcmp(key, "content") == 0) {
		free(v->content);
		v->content = dup_or_null(s);
	} else if (strcmp(key, "timestamp_header") == 0) {
		free(v->timestamp_header);
		v->timestamp_header = dup_or_null(s);
	} else if (strcmp(key, "timestamp_param") == 0) {
		free(v->timestamp_param);
		v->timestamp_param = dup_or_null(s);
	} else if (strcmp(key, "timestamp_json") == 0) {
		free(v->timestamp_json);
		v->timestamp_json = dup_or_null(s);
	} else if (strcmp(key, "id_header") == 0) {
		free(v->id_header);
		v->id_header = dup_or_null(s);
	} else if (strcmp(key, "delivery_id_header") == 0) {
		free(v->delivery_header);
		v->delivery_header = dup_or_null(s);
	} else if (strcmp(key, "algorithm") == 0) {
		if (s == NULL || (i = pick(s, algs)) < 0) {
			say(err, errlen, "algorithm must be sha1, sha256, sha512 or ed25519");
			return -1;
		}
		v->alg = (enum verify_alg)i;
	} else if (strcmp(key, "encoding") == 0) {
		if (s == NULL || (i = pick(s, encs)) < 0) {
			say(err, errlen, "encoding must be hex or base64");
			return -1;
		}
		v->enc = (enum verify_enc)i;
	} else if (strcmp(key, "key_encoding") == 0) {
		if (s == NULL || (i = pick(s, keys)) < 0) {
			say(err, errlen, "key_encoding must be raw, base64, hex or whsec");
			return -1;
		}
		v->key_enc = (enum verify_key)i;
	} else if (strcmp(key, "timestamp_unit") == 0) {
		if (s == NULL || (i = pick(s, units)) < 0) {
			say(err, errlen, "timestamp_unit must be s or ms");
			return -1;
		}
		v->timestamp_ms = i == 1;
	} else if (strcmp(key, "handshake") == 0) {
		if (s == NULL || (i = pick(s, hss)) < 0) {
			say(err, errlen, "handshake must be none, slack, zoom or discord");
			return -1;
		}
		v->handshake = (enum verify_hs)i;
	}
	return 0;
}

/* Cross-key checks once the preset and the overrides are merged. */
static int
validate(struct verifier *v, char *err, size_t errlen)
{
	if (v->kind == VERIFY_KIND_NONE)
		return 0;
	if (v->header == NULL) {
		say(err, errlen, "header is required for scheme %s", v->scheme);
		return -1;
	}
	if (!valid_header_name(v->header)) {
		say(err, errlen, "header is not a valid header name");
		return -1;
	}
	if ((v->timestamp_header != NULL && !valid_header_name(v->timestamp_header)) ||
	    (v->id_header != NULL && !valid_header_name(v->id_header)) ||
	    (v->delivery_header != NULL && !valid_header_name(v->delivery_header))) {
		say(err, errlen,
		    "timestamp_header, id_header and delivery_id_header must be "
		    "valid header names");
		return -1;
	}
	if (v->kind == VERIFY_KIND_TWILIO)
		return 0;
	if (v->content == NULL) {
		say(err, errlen, "content must not be empty");
		return -1;
	}
	if (parse_content(v, err, errlen) < 0)
		return -1;
	if (!has_segment(v, VERIFY_SEG_BODY)) {
		say(err, errlen, "content must include {body}, or the body goes unauthenticated");
		return -1;
	}
	if (v->timestamp_header != NULL && v->timestamp_param != NULL) {
		say(err, errlen, "timestamp_header and timestamp_param exclude each other");
		return -1;
	}
	if (has_segment(v, VERIFY_SEG_TIMESTAMP) && v->timestamp_header == NULL &&
	    v->timestamp_param == NULL) {
		say(err, errlen,
		    "content uses {timestamp} but neither timestamp_header nor "
		    "timestamp_param is set");
		return -1;
	}
	if ((v->timestamp_header != NULL || v->timestamp_param != NULL) &&
	    !has_segment(v, VERIFY_SEG_TIMESTAMP)) {
		/* An unsigned timestamp can be rewritten, so checking it would prove nothing. */
		say(err, errlen, "a timestamp is configured but content does not sign {timestamp}");
		return -1;
	}
	if (has_segment(v, VERIFY_SEG_ID) && v->id_header == NULL) {
		say(err, errlen, "content uses {id} but id_header is not set");
		return -1;
	}
	if (v->timestamp_param != NULL && v->separators == NULL) {
		say(err, errlen, "timestamp_param needs multiple (the item separators)");
		return -1;
	}
	if (v->separators != NULL && strchr(v->separators, '=') != NULL) {
		say(err, errlen, "multiple must not contain '='");
		return -1;
	}
	if (v->prefix_optional && v->prefix == NULL) {
		say(err, errlen, "prefix_optional needs a prefix");
		return -1;
	}
	return 0;
}

struct verifier *
verifier_compile(struct json_object *cfg, char *err, size_t errlen)
{
	const struct preset *p = NULL;
	struct verifier *v = NULL;
	const char *name;

	if (json_object_is_type(cfg, json_type_string)) {
		name = json_object_get_string(cfg);
	} else if (json_object_is_type(cfg, json_type_object)) {
		name = json_get_str(cfg, "scheme");
	} else {
		say(err, errlen, "verifier config must be a JSON object");
		return NULL;
	}
	if (name == NULL) {
		say(err, errlen, "scheme is required (a string)");
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(presets); i++) {
		if (strcasecmp(name, presets[i].name) == 0)
			p = &presets[i];
	}
	if (p == NULL) {
		say(err, errlen, "unknown scheme \"%.64s\"", name);
		return NULL;
	}
	v = xcalloc(1, sizeof(*v));
	v->scheme = xstrdup(p->name);
	v->kind = p->kind;
	v->header = dup_or_null(p->header);
	v->prefix = dup_or_null(p->prefix);
	v->prefix_optional = p->prefix_optional;
	v->separators = dup_or_null(p->separators);
	v->alg = p->alg;
	v->enc = p->enc;
	v->key_enc = p->key_enc;
	if (p->kind == VERIFY_KIND_SIGNED)
		v->content = xstrdup(p->content != NULL ? p->content : "{body}");
	v->timestamp_header = dup_or_null(p->timestamp_header);
	v->timestamp_param = dup_or_null(p->timestamp_param);
	v->timestamp_json = dup_or_null(p->timestamp_json);
	v->timestamp_ms = p->timestamp_ms;
	v->id_header = dup_or_null(p->id_header);
	v->delivery_header = dup_or_null(p->delivery_header);
	v->handshake = p->handshake;

	if (json_object_is_type(cfg, json_type_object)) {
		json_object_object_foreach(cfg, key, val)
		{
			size_t i;

			for (i = 0; i < ARRAY_SIZE(config_keys); i++) {
				if (strcmp(key, config_keys[i].name) == 0)
					break;
			}
			if (i == ARRAY_SIZE(config_keys)) {
				say(err, errlen, "unknown key \"%.64s\"", key);
				goto fail;
			}
			if (!(config_keys[i].kinds & (1u << v->kind))) {
				say(err, errlen, "%.64s does not apply to scheme %s", key,
				    v->scheme);
				goto fail;
			}
			if (strcmp(key, "scheme") != 0 && apply_key(v, key, val, err, errlen) < 0)
				goto fail;
		}
	}
	if (validate(v, err, errlen) < 0)
		goto fail;
	if (v->delivery_header == NULL && v->id_header != NULL)
		v->delivery_header = xstrdup(v->id_header);

	if (v->kind != VERIFY_KIND_NONE && v->alg != VERIFY_ALG_ED25519) {
		static const char *const digests[] = {"SHA256", "SHA1", "SHA512"};
		static const size_t lens[] = {32, 20, 64};

		v->digest = digests[v->alg];
		v->sig_len = lens[v->alg];
		/* Only SHA-1 goes through OpenSSL (hmac_pieces); the first fetch costs 2 MB. */
		if (v->alg == VERIFY_ALG_SHA1 &&
		    (v->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL) {
			say(err, errlen, "OpenSSL has no HMAC implementation");
			goto fail;
		}
	} else if (v->alg == VERIFY_ALG_ED25519) {
		v->sig_len = crypto_sign_BYTES;
	}
	return v;
fail:
	verifier_free(v);
	return NULL;
}

int
verifier_uses_url(const struct verifier *v)
{
	return v->kind == VERIFY_KIND_TWILIO || has_segment(v, VERIFY_SEG_URL);
}

int
verifier_has_handshake(const struct verifier *v)
{
	return v->handshake != VERIFY_HS_NONE;
}

const char *
verifier_scheme(const struct verifier *v)
{
	return v->scheme;
}

int
verifier_requires_secret(const struct verifier *v)
{
	return v->kind != VERIFY_KIND_NONE;
}

int
verify_http_status(enum verify_result r)
{
	switch (r) {
	case VERIFY_OK: return 200;
	case VERIFY_MISSING: return 400;
	case VERIFY_INVALID:
	case VERIFY_STALE: return 401;
	case VERIFY_NO_SECRET: break;
	}
	return 500;
}

const char *
verify_result_name(enum verify_result r)
{
	static const char *const names[] = {"ok", "missing", "invalid", "stale", "no_secret"};

	return (unsigned)r < ARRAY_SIZE(names) ? names[r] : "unknown";
}

/* --- checking ----------------------------------------------------------------------- */

static const char *
get_header(const struct verify_input *in, const char *name)
{
	return in->header != NULL && name != NULL ? in->header(in->header_ctx, name) : NULL;
}

static void
msg_add(struct message *m, const void *p, size_t n)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 16;
		m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
	}
	m->v[m->n].p = p;
	m->v[m->n].n = n;
	m->n++;
}

/* Parse a decimal timestamp of at most VERIFY_TS_MAX digits. */
static int
parse_ts(const char *s, size_t len, int64_t *out)
{
	char buf[VERIFY_TS_MAX + 1];

	if (len == 0 || len > VERIFY_TS_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	return parse_int64(buf, 0, INT64_MAX, out);
}

/* Decode one signature item into the next slot when it has the expected length. */
static void
take_signature(const struct verifier *v, struct parsed *p, const char *s, size_t len)
{
	int n;

	p->nfound++;
	if (p->nsigs == VERIFY_MAX_SIGS)
		return;
	if (v->enc == VERIFY_ENC_HEX)
		n = hex_decode(s, len, p->sig[p->nsigs], VERIFY_SIG_MAX);
	else
		n = base64_decode(s, len, p->sig[p->nsigs], VERIFY_SIG_MAX);
	if (n >= 0 && (size_t)n == v->sig_len)
		p->nsigs++;
}

/* Take the signature header apart: signatures, and a timestamp item if configured. */
static enum verify_result
parse_signature_header(
    const struct verifier *v, const char *value, struct parsed *p, char *why, size_t whylen)
{
	const char *s = value;
	size_t plen = v->prefix != NULL ? strlen(v->prefix) : 0;
	size_t tplen = v->timestamp_param != NULL ? strlen(v->timestamp_param) : 0;

	while (*s != '\0') {
		const char *item = s;
		size_t len;

		if (v->separators != NULL)
			len = strcspn(s, v->separators);
		else
			len = strlen(s);
		s += len;
		if (*s != '\0')
			s++;
		trim(&item, &len);
		if (len == 0)
			continue;
		if (tplen > 0 && len > tplen && memcmp(item, v->timestamp_param, tplen) == 0 &&
		    item[tplen] == '=') {
			if (p->ts == NULL) {
				p->ts = item + tplen + 1;
				p->ts_len = len - tplen - 1;
			}
			continue;
		}
		if (plen > 0 && starts_with(item, len, v->prefix)) {
			item += plen;
			len -= plen;
		} else if (plen > 0 && !v->prefix_optional) {
			continue; /* another version ("v0=", "v1a,"): not ours */
		}
		take_signature(v, p, item, len);
	}
	if (p->nfound == 0) {
		if (v->prefix != NULL)
			say(why, whylen, "no %s signature in %s header", v->prefix, v->header);
		else
			say(why, whylen, "empty %s header", v->header);
		return VERIFY_MISSING;
	}
	if (v->timestamp_param != NULL && p->ts == NULL) {
		say(why, whylen, "no %s= timestamp in %s header", v->timestamp_param, v->header);
		return VERIFY_MISSING;
	}
	return VERIFY_OK;
}

/* Decode the secrets into keys; the count of usable ones. */
static int
decode_keys(const struct verifier *v, const char *const *secrets, int nsecrets, struct key *keys)
{
	int n = 0;

	for (int i = 0; i < nsecrets; i++) {
		const char *s = secrets[i];
		size_t len = s != NULL ? strlen(s) : 0;
		int got;

		if (len == 0 || len > INT32_MAX)
			continue;
		keys[n].buf = xmalloc(len);
		switch (v->key_enc) {
		case VERIFY_KEY_RAW:
			memcpy(keys[n].buf, s, len);
			got = (int)len;
			break;
		case VERIFY_KEY_HEX: got = hex_decode(s, len, keys[n].buf, len); break;
		case VERIFY_KEY_WHSEC:
			if (strncmp(s, "whsec_", 6) == 0) {
				s += 6;
				len -= 6;
			}
			/* FALLTHROUGH */
		case VERIFY_KEY_BASE64:
		default: got = base64_decode(s, len, keys[n].buf, len); break;
		}
		if (got <= 0 ||
		    (v->alg == VERIFY_ALG_ED25519 && got != crypto_sign_PUBLICKEYBYTES)) {
			sodium_memzero(keys[n].buf, len);
			free(keys[n].buf);
			continue;
		}
		keys[n].len = (size_t)got;
		n++;
	}
	return n;
}

static void
free_keys(struct key *keys, int n)
{
	for (int i = 0; i < n; i++) {
		sodium_memzero(keys[i].buf, keys[i].len);
		free(keys[i].buf);
	}
	free(keys);
}

/*
 * HMAC of the pieces under one key into out (v->sig_len bytes): libsodium for SHA-256 and
 * SHA-512 (no provider lookup per call: OpenSSL 3's EVP_MAC_init fetches the digest by
 * name each time, which cost the receive path more than the hashing), OpenSSL for SHA-1.
 */
static int
hmac_pieces(const struct verifier *v, EVP_MAC_CTX *ctx, const struct key *k,
    const struct message *m, unsigned char *out)
{
	OSSL_PARAM params[2];
	size_t outlen = 0;

	if (v->alg == VERIFY_ALG_SHA256) {
		crypto_auth_hmacsha256_state st;

		crypto_auth_hmacsha256_init(&st, k->buf, k->len);
		for (size_t i = 0; i < m->n; i++)
			crypto_auth_hmacsha256_update(&st, m->v[i].p, m->v[i].n);
		crypto_auth_hmacsha256_final(&st, out);
		sodium_memzero(&st, sizeof(st));
		return 0;
	}
	if (v->alg == VERIFY_ALG_SHA512) {
		crypto_auth_hmacsha512_state st;

		crypto_auth_hmacsha512_init(&st, k->buf, k->len);
		for (size_t i = 0; i < m->n; i++)
			crypto_auth_hmacsha512_update(&st, m->v[i].p, m->v[i].n);
		crypto_auth_hmacsha512_final(&st, out);
		sodium_memzero(&st, sizeof(st));
		return 0;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)v->digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx == NULL || !EVP_MAC_init(ctx, k->buf, k->len, params))
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].n > 0 && !EVP_MAC_update(ctx, m->v[i].p, m->v[i].n))
			return -1;
	}
	if (!EVP_MAC_final(ctx, out, &outlen, VERIFY_SIG_MAX) || outlen != v->sig_len)
		return -1;
	return 0;
}

/* 1 when any (message, key, signature) triple verifies. */
static int
match_any(const struct verifier *v, const struct message *msgs, int nmsgs, const struct key *keys,
    int nkeys, const struct parsed *p)
{
	unsigned char mac[VERIFY_SIG_MAX];
	EVP_MAC_CTX *ctx;
	int ok = 0;

	if (p->nsigs == 0)
		return 0;
	if (v->alg == VERIFY_ALG_ED25519) {
		for (int m = 0; m < nmsgs && !ok; m++) {
			size_t total = 0, at = 0;
			unsigned char *buf;

			for (size_t i = 0; i < msgs[m].n; i++)
				total += msgs[m].v[i].n;
			buf = xmalloc(total + 1);
			for (size_t i = 0; i < msgs[m].n; i++) {
				if (msgs[m].v[i].n > 0)
					memcpy(buf + at, msgs[m].v[i].p, msgs[m].v[i].n);
				at += msgs[m].v[i].n;
			}
			for (int k = 0; k < nkeys && !ok; k++) {
				for (int s = 0; s < p->nsigs && !ok; s++)
					ok = crypto_sign_verify_detached(
					         p->sig[s], buf, total, keys[k].buf) == 0;
			}
			free(buf);
		}
		return ok;
	}
	ctx = v->alg == VERIFY_ALG_SHA1 ? EVP_MAC_CTX_new(v->mac) : NULL;
	if (v->alg == VERIFY_ALG_SHA1 && ctx == NULL)
		return 0;
	for (int m = 0; m < nmsgs && !ok; m++) {
		for (int k = 0; k < nkeys && !ok; k++) {
			if (hmac_pieces(v, ctx, &keys[k], &msgs[m], mac) < 0)
				continue;
			for (int s = 0; s < p->nsigs && !ok; s++)
				ok = ct_equal(mac, v->sig_len, p->sig[s], v->sig_len);
		}
	}
	sodium_memzero(mac, sizeof(mac));
	EVP_MAC_CTX_free(ctx);
	return ok;
}

/* The content template's pieces for this request. */
static void
build_template(const struct verifier *v, const struct verify_input *in, const struct parsed *p,
    struct message *m)
{
	for (size_t i = 0; i < v->nsegs; i++) {
		const struct segment *s = &v->segs[i];

		switch (s->kind) {
		case VERIFY_SEG_LITERAL: msg_add(m, s->text, s->len); break;
		case VERIFY_SEG_BODY: msg_add(m, in->body, in->body_len); break;
		case VERIFY_SEG_TIMESTAMP: msg_add(m, p->ts, p->ts_len); break;
		case VERIFY_SEG_ID: msg_add(m, p->id, p->id_len); break;
		case VERIFY_SEG_URL: msg_add(m, in->url, strlen(in->url)); break;
		case VERIFY_SEG_METHOD: msg_add(m, in->method, strlen(in->method)); break;
		}
	}
}

/* Percent-decode (and '+' to space) len bytes of s into out; returns the decoded length. */
static size_t
form_decode(const char *s, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[n++] = ' ';
		} else if (s[i] == '%' && i + 2 < len && hex_value(s[i + 1]) >= 0 &&
		           hex_value(s[i + 2]) >= 0) {
			out[n++] = (char)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2]));
			i += 2;
		} else {
			out[n++] = s[i]; /* a stray '%' stays, as browsers keep it */
		}
	}
	return n;
}

static int
bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct form_pair *x = a, *y = b;
	int c = bytes_cmp(x->name, x->nlen, y->name, y->nlen);

	return c != 0 ? c : bytes_cmp(x->val, x->vlen, y->val, y->vlen);
}

/*
 * Parse an x-www-form-urlencoded body into pairs sorted by name, then value, with exact
 * duplicates dropped: the order Twilio's helper libraries sign in.
 */
static size_t
form_parse(const unsigned char *body, size_t len, char *scratch, struct form_pair **out)
{
	const char *s = (const char *)body, *end = s + len;
	struct form_pair *pairs = NULL;
	size_t n = 0, cap = 0, used = 0, kept = 0;

	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *stop = amp != NULL ? amp : end, *eq;

		if (stop > s) {
			eq = memchr(s, '=', (size_t)(stop - s));
			if (n == cap) {
				cap = cap ? 2 * cap : 16;
				pairs = xrealloc(pairs, cap * sizeof(*pairs));
			}
			pairs[n].name = scratch + used;
			pairs[n].nlen =
			    form_decode(s, (size_t)((eq ? eq : stop) - s), scratch + used);
			used += pairs[n].nlen;
			pairs[n].val = scratch + used;
			pairs[n].vlen = eq != NULL ? form_decode(eq + 1, (size_t)(stop - eq - 1),
			                                 scratch + used)
			                           : 0;
			used += pairs[n].vlen;
			n++;
		}
		s = stop + 1;
	}
	if (n > 1)
		qsort(pairs, n, sizeof(*pairs), pair_cmp);
	for (size_t i = 0; i < n; i++) {
		if (kept > 0 && pair_cmp(&pairs[kept - 1], &pairs[i]) == 0)
			continue;
		pairs[kept++] = pairs[i];
	}
	*out = pairs;
	return kept;
}

/* The value of query parameter name in url (not decoded: only hex is looked up), or NULL. */
static const char *
query_param(const char *url, const char *name, size_t *len)
{
	const char *q = strchr(url, '?');
	size_t nlen = strlen(name);

	if (q == NULL)
		return NULL;
	q++;
	while (*q != '\0' && *q != '#') {
		size_t item = strcspn(q, "&#");

		if (item > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
			*len = item - nlen - 1;
			return q + nlen + 1;
		}
		q += item;
		if (*q == '&')
			q++;
	}
	return NULL;
}

/*
 * The URL without its port and with its port (the default one added when absent):
 * Twilio's back ends sign either form, so its libraries accept both.
 */
static int
url_variants(const char *url, char *out[2])
{
	const char *auth = strstr(url, "://"), *host, *end, *colon = NULL;
	size_t ulen = strlen(url);

	if (auth == NULL) {
		out[0] = xstrdup(url);
		return 1;
	}
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	host = auth;
	for (const char *c = auth; c < end; c++) {
		if (*c == '@')
			host = c + 1;
	}
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		if (close != NULL && close + 1 < end && close[1] == ':')
			colon = close + 1;
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
	}
	if (colon != NULL) {
		out[0] = xmalloc(ulen + 1);
		memcpy(out[0], url, (size_t)(colon - url));
		memcpy(out[0] + (colon - url), end, strlen(end) + 1);
		out[1] = xstrdup(url);
	} else {
		const char *port = strncasecmp(url, "https:", 6) == 0 ? ":443" : ":80";

		out[0] = xstrdup(url);
		out[1] = xasprintf("%.*s%s%s", (int)(end - url), url, port, end);
	}
	return 2;
}

/* Twilio: is the request's Content-Type a form? */
static int
is_form(const struct verify_input *in)
{
	static const char form[] = "application/x-www-form-urlencoded";

	return in->content_type != NULL &&
	       strncasecmp(in->content_type, form, sizeof(form) - 1) == 0 &&
	       (in->content_type[sizeof(form) - 1] == '\0' ||
	           in->content_type[sizeof(form) - 1] == ';' ||
	           is_space(in->content_type[sizeof(form) - 1]));
}

/* Twilio's bodySHA256 rule: the URL carries the hex SHA-256 of the body. */
static int
body_hash_matches(const struct verify_input *in, const char *hex, size_t hexlen)
{
	unsigned char want[32], got[32];

	if (hex_decode(hex, hexlen, want, sizeof(want)) != (int)sizeof(want))
		return 0;
	crypto_hash_sha256(
	    got, in->body_len > 0 ? in->body : (const unsigned char *)"", in->body_len);
	return ct_equal(want, sizeof(want), got, sizeof(got));
}

/* The timestamp in seconds, whatever its unit. */
static int64_t
ts_seconds(const struct verifier *v, int64_t ts)
{
	return v->timestamp_ms ? ts / 1000 : ts;
}

static int
outside(int64_t now, int64_t ts, int64_t tolerance)
{
	if (now < 0)
		now = 0;
	return (ts > now ? ts - now : now - ts) > tolerance;
}

/* Linear-style timestamp in the JSON body: checked when present and numeric. */
static int
json_ts_stale(const struct verifier *v, const struct verify_input *in)
{
	struct json_object *doc = in->json, *val, *owned = NULL;
	int64_t ts;
	int stale = 0;
	char err[64];

	if (doc == NULL) {
		owned = json_parse((const char *)in->body, in->body_len, err, sizeof(err));
		doc = owned;
	}
	if (doc != NULL && json_object_is_type(doc, json_type_object) &&
	    json_object_object_get_ex(doc, v->timestamp_json, &val) &&
	    (json_object_is_type(val, json_type_int) ||
	        json_object_is_type(val, json_type_double))) {
		ts = json_object_is_type(val, json_type_int) ? json_object_get_int64(val)
		                                             : (int64_t)json_object_get_double(val);
		stale = ts < 0 || outside(in->now, ts_seconds(v, ts), in->tolerance);
	}
	json_object_put(owned);
	return stale;
}

/* Read what the request's headers carry: signatures, timestamp, id. */
static enum verify_result
read_headers(const struct verifier *v, const struct verify_input *in, struct parsed *p, char *why,
    size_t whylen)
{
	const char *value = get_header(in, v->header);
	enum verify_result r;

	if (value == NULL) {
		say(why, whylen, "missing %s header", v->header);
		return VERIFY_MISSING;
	}
	if ((r = parse_signature_header(v, value, p, why, whylen)) != VERIFY_OK)
		return r;
	if (v->timestamp_header != NULL) {
		p->ts = get_header(in, v->timestamp_header);
		if (p->ts == NULL) {
			say(why, whylen, "missing %s header", v->timestamp_header);
			return VERIFY_MISSING;
		}
		p->ts_len = strlen(p->ts);
		trim(&p->ts, &p->ts_len);
	}
	if (p->ts != NULL && parse_ts(p->ts, p->ts_len, &p->ts_val) < 0) {
		say(why, whylen, "unparsable timestamp in %s header",
		    v->timestamp_header != NULL ? v->timestamp_header : v->header);
		return VERIFY_MISSING;
	}
	if (v->id_header != NULL && has_segment(v, VERIFY_SEG_ID)) {
		p->id = get_header(in, v->id_header);
		if (p->id == NULL) {
			say(why, whylen, "missing %s header", v->id_header);
			return VERIFY_MISSING;
		}
		p->id_len = strlen(p->id);
		trim(&p->id, &p->id_len);
	}
	return VERIFY_OK;
}

/*
 * Twilio's messages: each URL variant, then for a form body its parameters. With a
 * bodySHA256 query parameter the URL alone is signed; *hash points at the parameter.
 */
static int
build_twilio(const struct verify_input *in, struct message msgs[2], char *urls[2],
    struct form_pair **pairs, char **scratch, const char **hash, size_t *hashlen)
{
	size_t npairs = 0;
	int n;

	*hash = query_param(in->url, "bodySHA256", hashlen);
	if (*hash == NULL && is_form(in) && in->body_len > 0) {
		*scratch = xmalloc(in->body_len + 1);
		npairs = form_parse(in->body, in->body_len, *scratch, pairs);
	}
	n = url_variants(in->url, urls);
	for (int m = 0; m < n; m++) {
		msg_add(&msgs[m], urls[m], strlen(urls[m]));
		for (size_t i = 0; i < npairs; i++) {
			msg_add(&msgs[m], (*pairs)[i].name, (*pairs)[i].nlen);
			msg_add(&msgs[m], (*pairs)[i].val, (*pairs)[i].vlen);
		}
	}
	return n;
}

enum verify_result
verify_check(const struct verifier *v, const struct verify_input *in, const char *const *secrets,
    int nsecrets, char *why, size_t whylen)
{
	struct parsed *p = NULL;
	struct message msgs[2];
	struct key *keys = NULL;
	struct form_pair *pairs = NULL;
	char *urls[2] = {NULL, NULL}, *scratch = NULL;
	const char *hash = NULL;
	size_t hashlen = 0;
	int nmsgs, nkeys = 0;
	enum verify_result r;

	memset(msgs, 0, sizeof(msgs));
	say(why, whylen, "ok");
	if (v->kind == VERIFY_KIND_NONE)
		return VERIFY_OK;
	if (nsecrets <= 0 || secrets == NULL) {
		say(why, whylen, "no secret configured");
		return VERIFY_NO_SECRET;
	}
	p = xcalloc(1, sizeof(*p));
	if ((r = read_headers(v, in, p, why, whylen)) != VERIFY_OK)
		goto out;
	if ((v->kind == VERIFY_KIND_TWILIO || has_segment(v, VERIFY_SEG_URL)) && in->url == NULL) {
		say(why, whylen, "request URL unknown, cannot verify");
		r = VERIFY_INVALID;
		goto out;
	}
	if (has_segment(v, VERIFY_SEG_METHOD) && in->method == NULL) {
		say(why, whylen, "request method unknown, cannot verify");
		r = VERIFY_INVALID;
		goto out;
	}
	keys = xcalloc((size_t)nsecrets, sizeof(*keys));
	nkeys = decode_keys(v, secrets, nsecrets, keys);
	if (nkeys == 0) {
		say(why, whylen, "no usable secret (check the key encoding)");
		r = VERIFY_NO_SECRET;
		goto out;
	}

	if (v->kind == VERIFY_KIND_TWILIO) {
		nmsgs = build_twilio(in, msgs, urls, &pairs, &scratch, &hash, &hashlen);
	} else {
		build_template(v, in, p, &msgs[0]);
		nmsgs = 1;
	}
	if (!match_any(v, msgs, nmsgs, keys, nkeys, p)) {
		say(why, whylen, "signature does not match");
		r = VERIFY_INVALID;
		goto out;
	}
	if (hash != NULL && !body_hash_matches(in, hash, hashlen)) {
		say(why, whylen, "body does not match its bodySHA256");
		r = VERIFY_INVALID;
		goto out;
	}
	/* Freshness last: the timestamp counts only once its signature is known good. */
	if (in->tolerance > 0 && p->ts != NULL &&
	    outside(in->now, ts_seconds(v, p->ts_val), in->tolerance)) {
		say(why, whylen, "timestamp outside tolerance");
		r = VERIFY_STALE;
		goto out;
	}
	if (in->tolerance > 0 && v->timestamp_json != NULL && json_ts_stale(v, in)) {
		say(why, whylen, "%s outside tolerance", v->timestamp_json);
		r = VERIFY_STALE;
		goto out;
	}
	say(why, whylen, "ok");
	r = VERIFY_OK;
out:
	for (int m = 0; m < 2; m++) {
		free(msgs[m].v);
		free(urls[m]);
	}
	free(pairs);
	free(scratch);
	if (keys != NULL)
		free_keys(keys, nkeys);
	free(p);
	return r;
}

const char *
verify_delivery_id(const struct verifier *v, const struct verify_input *in)
{
	const char *id = get_header(in, v->delivery_header);

	return id != NULL && *id != '\0' ? id : NULL;
}

/* --- handshakes --------------------------------------------------------------------- */

static char *
reply(struct json_object *o)
{
	char *s = json_compact(o, NULL);

	json_object_put(o);
	return s;
}

int
verify_handshake(const struct verifier *v, struct json_object *body, const char *const *secrets,
    int nsecrets, char **reply_json)
{
	*reply_json = NULL;
	if (body == NULL || !json_object_is_type(body, json_type_object))
		return 0;
	switch (v->handshake) {
	case VERIFY_HS_NONE: return 0;
	case VERIFY_HS_SLACK: {
		const char *type = json_get_str(body, "type");
		const char *challenge = json_get_str(body, "challenge");
		struct json_object *o;

		if (type == NULL || strcmp(type, "url_verification") != 0 || challenge == NULL)
			return 0;
		o = json_object_new_object();
		json_set_str(o, "challenge", challenge);
		*reply_json = reply(o);
		return 1;
	}
	case VERIFY_HS_ZOOM: {
		const char *event = json_get_str(body, "event");
		const char *token = json_get_str(json_get_obj(body, "payload"), "plainToken");
		struct verifier hv;
		struct message m = {NULL, 0, 0};
		struct key *keys;
		unsigned char mac[VERIFY_SIG_MAX];
		char hex[2 * VERIFY_SIG_MAX + 1];
		struct json_object *o;
		int nkeys, ok;

		if (event == NULL || strcmp(event, "endpoint.url_validation") != 0 ||
		    token == NULL || nsecrets <= 0 || secrets == NULL)
			return 0;
		/* HMAC-SHA256 keyed with the first secret, however the scheme signs requests. */
		memset(&hv, 0, sizeof(hv));
		hv.key_enc = v->key_enc;
		hv.alg = VERIFY_ALG_SHA256;
		hv.digest = "SHA256";
		hv.sig_len = 32;
		keys = xcalloc(1, sizeof(*keys));
		nkeys = decode_keys(&hv, secrets, 1, keys);
		msg_add(&m, token, strlen(token));
		ok = nkeys == 1 && hmac_pieces(&hv, NULL, &keys[0], &m, mac) == 0;
		free_keys(keys, nkeys);
		free(m.v);
		if (!ok)
			return 0;
		hex_encode(mac, hv.sig_len, hex);
		o = json_object_new_object();
		json_set_str(o, "plainToken", token);
		json_set_str(o, "encryptedToken", hex);
		*reply_json = reply(o);
		return 1;
	}
	case VERIFY_HS_DISCORD: {
		int64_t type;
		struct json_object *o;

		if (json_get_int(body, "type", &type) < 0 || type != 1)
			return 0;
		o = json_object_new_object();
		json_set_int(o, "type", 1);
		*reply_json = reply(o);
		return 1;
	}
	}
	return 0;
}
