/* SPDX-License-Identifier: ISC */
/* Secrets sealed at rest: libsodium secretbox under a 32-byte master key. */
#ifndef HOOKD_SEAL_H
#define HOOKD_SEAL_H

#include <stddef.h>

#include "hookd/util.h"

#define SEAL_KEY_BYTES 32

/*
 * Seal a secret: base64(nonce || crypto_secretbox_easy(plaintext)) with a fresh random
 * nonce, so sealing the same secret twice gives different text. Returns a malloc'd string.
 */
char *seal_encrypt(const unsigned char key[SEAL_KEY_BYTES], const char *plaintext);

/*
 * Open a sealed secret. Returns the malloc'd plaintext (free with seal_free()), or NULL
 * when the text is not base64, too short, tampered with, sealed under another key, or
 * holds a NUL byte.
 */
char *seal_decrypt(const unsigned char key[SEAL_KEY_BYTES], const char *sealed) WUR;

/* Wipe and free a plaintext from seal_decrypt() (NULL is fine). */
void seal_free(char *plaintext);

/* Parse a master key given as base64 of exactly 32 bytes (surrounding white space ignored). */
int seal_key_parse(const char *b64, unsigned char key[SEAL_KEY_BYTES]) WUR;

/*
 * Load the master key at start-up (blocking file I/O). A non-empty env_b64 wins and is
 * parsed with seal_key_parse(). Otherwise the file at path is read: exactly 32 raw bytes,
 * or base64 text of 32 bytes; like ssh with a private key, a file that grants group or
 * other any access is refused. When the file does not exist and create is set, a new
 * random key is written there as base64 text with mode 0600: into a temporary file in
 * the same directory (which must exist), then linked into place so that a concurrent
 * starter never reads a half-written key and exactly one key wins. Returns 0, or -1
 * with the reason in err (never any key material).
 */
int seal_key_load(const char *path, const char *env_b64, unsigned char key[SEAL_KEY_BYTES],
    int create, char *err, size_t errlen) WUR;

#endif
