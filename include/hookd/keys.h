/* SPDX-License-Identifier: ISC */
/* Admin API keys: generation, the stored hash, names. */
#ifndef HOOKD_KEYS_H
#define HOOKD_KEYS_H

#include <stddef.h>

/* "hk_" + 43 base64url characters (32 random bytes). */
#define KEYS_LEN        46
#define KEYS_HASH_LEN   64
#define KEYS_PREFIX_LEN 11

/* A fresh key into out (KEYS_LEN + 1 bytes). */
void keys_generate(char *out);
/* Hex BLAKE2b-256 of the key (KEYS_HASH_LEN + 1 bytes): all the database keeps. */
void keys_hash(const char *key, char *out);
/* The public start of a key ("hk_AbCdEfGh"), for listings (KEYS_PREFIX_LEN + 1 bytes). */
void keys_prefix(const char *key, char *out);
/* 1 when name is a valid key name: [A-Za-z0-9][A-Za-z0-9_.@-]{0,63}. */
int keys_valid_name(const char *name);
/* 1 when token has the shape of a key (cheap filter before hashing). */
int keys_plausible(const char *token);

#endif
