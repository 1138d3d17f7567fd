/* SPDX-License-Identifier: ISC */
/* Admin API keys: generation, the stored hash, names. */
#include "config.h"

#include <string.h>

#include <sodium.h>

#include "hookd/keys.h"
#include "hookd/util.h"

/*
 * Keys are 256 random bits, so a fast unsalted hash is the right tool: nothing is
 * left to brute-force, and every admin request can be checked in a microsecond
 * (a password hash such as Argon2 would cost tens of milliseconds per request).
 */
void
keys_hash(const char *key, char *out)
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), (const unsigned char *)key, strlen(key), NULL, 0);
	hex_encode(h, sizeof(h), out);
}

void
keys_generate(char *out)
{
	unsigned char raw[32];

	randombytes_buf(raw, sizeof(raw));
	memcpy(out, "hk_", 3);
	sodium_bin2base64(
	    out + 3, KEYS_LEN + 1 - 3, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

void
keys_prefix(const char *key, char *out)
{
	size_t n = strlen(key);

	if (n > KEYS_PREFIX_LEN)
		n = KEYS_PREFIX_LEN;
	memcpy(out, key, n);
	out[n] = '\0';
}

int
keys_valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || strchr("_.@-", c) == NULL))
			return 0;
	}
	return 1;
}

int
keys_plausible(const char *token)
{
	size_t n = strlen(token);

	if (n != KEYS_LEN || strncmp(token, "hk_", 3) != 0)
		return 0;
	for (size_t i = 3; i < n; i++) {
		char c = token[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		        c == '-' || c == '_'))
			return 0;
	}
	return 1;
}
