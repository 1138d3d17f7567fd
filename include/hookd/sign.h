/* SPDX-License-Identifier: ISC */
/* Outbound signatures: Standard Webhooks, the seeds' hex body HMACs, subscription secrets. */
#ifndef HOOKD_SIGN_H
#define HOOKD_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "hookd/util.h"

/* Room for any key sign_secret_key() accepts. */
#define SIGN_KEY_MAX 256

/* The header sets a subscription may carry (a bit mask; several at once). */
enum sign_headers {
	SIGN_STANDARD = 1u << 0,  /* webhook-id, webhook-timestamp, webhook-signature */
	SIGN_OMNISALES = 1u << 1, /* seed 003: X-Webhook-Signature (hex), -Timestamp, -ID */
	SIGN_FLUXBASE = 1u << 2,  /* seed 004: X-Fluxbase-Signature (hex) */
};
#define SIGN_ALL (SIGN_STANDARD | SIGN_OMNISALES | SIGN_FLUXBASE)

/* A new secret: "whsec_" + base64 of 32 random bytes. */
char *sign_secret_generate(void);

/*
 * The Standard Webhooks HMAC key of a secret, into key (room for *keylen bytes; on
 * success *keylen is the key's length). "whsec_..." decodes the standard base64 after
 * the prefix (padding optional) and fails when it is not base64. A secret without the
 * prefix is decoded when it is padded standard base64 (the standardwebhooks and svix
 * libraries decode every secret), and otherwise its own bytes are the key, so that a
 * plain password still signs. Returns 0 or -1 (bad base64 after whsec_, empty, too long).
 */
int sign_secret_key(const char *secret, unsigned char *key, size_t *keylen) WUR;

/*
 * The webhook-signature header value: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>"
 * for each secret, space separated (newest first, so rotation overlaps). NULL when there
 * is no secret or one of them has no usable key (sign_secret_key).
 */
char *sign_standard(const char *msg_id, int64_t timestamp, const char *body, size_t len,
    const char *const *secrets, int nsecrets) WUR;

/* Lower-case hex HMAC-SHA256 of body keyed with the secret string's own bytes (seeds 003, 004). */
char *sign_hex_body(const char *secret, const char *body, size_t len);

/*
 * Call add(name, value, arg) for every header of the sets in flags, in the order
 * standard, omnisales, fluxbase. secrets are the live secrets, newest first; the hex
 * sets sign with secrets[0]. With no secret the signature headers are left out (the
 * id and timestamp headers are still sent), as seed 004 does for a webhook without
 * one. Returns 0, or -1 (nothing added) when msg_id is empty or holds characters a
 * header may not carry, or a secret yields no key.
 */
int sign_headers_build(unsigned flags, const char *msg_id, int64_t ts, const char *body, size_t len,
    const char *const *secrets, int nsecrets,
    void (*add)(const char *name, const char *value, void *arg), void *arg) WUR;

/*
 * Parse header-set names ("standard", "omnisales", "fluxbase", any case) given as
 * Postgres array text ("{standard,omnisales}") or a comma-separated list into a mask.
 * An empty list gives 0. Returns 0, or -1 with the reason in why.
 */
int sign_headers_parse(const char *list, unsigned *flags, char *why, size_t whylen) WUR;
/* The Postgres array text of a mask ("{standard,fluxbase}"); malloc'd. */
char *sign_headers_format(unsigned flags);

#endif
