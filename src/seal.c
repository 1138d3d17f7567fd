/* SPDX-License-Identifier: ISC */
/* Secrets sealed at rest: libsodium secretbox under a master key from env or a key file. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "hookd/seal.h"

/* A key file is tiny; anything longer than this is not one. */
#define KEY_FILE_MAX 256

char *
seal_encrypt(const unsigned char key[SEAL_KEY_BYTES], const char *plaintext)
{
	size_t plen = strlen(plaintext);
	size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plen;
	unsigned char *box = xmalloc(blen);
	char *out;

	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(
	    box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plaintext, plen, box, key);
	out = base64_encode(box, blen);
	free(box);
	return out;
}

char *
seal_decrypt(const unsigned char key[SEAL_KEY_BYTES], const char *sealed)
{
	size_t slen, max, clen = 0;
	unsigned char *box = NULL;
	char *plain = NULL;
	int n;

	if (sealed == NULL)
		return NULL;
	slen = strlen(sealed);
	max = slen / 4 * 3 + 3;
	box = xmalloc(max);
	n = base64_decode(sealed, slen, box, max);
	if (n < (int)(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES))
		goto fail;
	clen = (size_t)n - crypto_secretbox_NONCEBYTES;
	plain = xmalloc(clen - crypto_secretbox_MACBYTES + 1);
	if (crypto_secretbox_open_easy(
	        (unsigned char *)plain, box + crypto_secretbox_NONCEBYTES, clen, box, key) != 0)
		goto fail;
	plain[clen - crypto_secretbox_MACBYTES] = '\0';
	if (strlen(plain) != clen - crypto_secretbox_MACBYTES)
		goto fail; /* an embedded NUL would silently truncate the secret */
	free(box);
	return plain;

fail:
	free(box);
	if (plain != NULL)
		sodium_memzero(plain, clen - crypto_secretbox_MACBYTES + 1);
	free(plain);
	return NULL;
}

void
seal_free(char *plaintext)
{
	if (plaintext == NULL)
		return;
	sodium_memzero(plaintext, strlen(plaintext));
	free(plaintext);
}

/* Parse base64 of exactly 32 bytes from in[0..len), white space around it ignored. */
static int
key_from_b64(const char *in, size_t len, unsigned char key[SEAL_KEY_BYTES])
{
	unsigned char buf[SEAL_KEY_BYTES + 3];
	int n;

	while (len > 0 && isspace((unsigned char)*in)) {
		in++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)in[len - 1]))
		len--;
	if (len == 0)
		return -1;
	n = base64_decode(in, len, buf, sizeof(buf));
	if (n != SEAL_KEY_BYTES) {
		sodium_memzero(buf, sizeof(buf));
		return -1;
	}
	memcpy(key, buf, SEAL_KEY_BYTES);
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

int
seal_key_parse(const char *b64, unsigned char key[SEAL_KEY_BYTES])
{
	if (b64 == NULL)
		return -1;
	return key_from_b64(b64, strlen(b64), key);
}

/* Read an existing key file. Returns 0, -1 with err set, or -2 when it does not exist. */
static int
read_key_file(const char *path, unsigned char key[SEAL_KEY_BYTES], char *err, size_t errlen)
{
	unsigned char buf[KEY_FILE_MAX + 1];
	struct stat st;
	size_t len = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return -2;
		snprintf(err, errlen, "master key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "master key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "master key file %s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "permissions %04o for master key file %s are too open; "
		    "it must not be accessible by group or others (chmod 600)",
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "master key file %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == sizeof(buf))
			break;
	}
	if (len == SEAL_KEY_BYTES) {
		memcpy(key, buf, SEAL_KEY_BYTES);
		rc = 0;
	} else if (len <= KEY_FILE_MAX && key_from_b64((const char *)buf, len, key) == 0) {
		rc = 0;
	} else {
		snprintf(err, errlen,
		    "master key file %s holds neither 32 raw bytes nor base64 of 32 bytes", path);
	}

out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* Write all of buf to fd. */
static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Make a new directory entry durable (best effort: the key is already in memory). */
static void
sync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL   ? xstrdup(".")
	            : slash == path ? xstrdup("/")
	                            : xstrndup(path, (size_t)(slash - path));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/*
 * Make a new key file. Returns 0, -1 with err set, or -2 when another process created
 * the file first (the caller then reads that one).
 */
static int
create_key_file(const char *path, unsigned char key[SEAL_KEY_BYTES], char *err, size_t errlen)
{
	unsigned char raw[SEAL_KEY_BYTES];
	char *tmp, *text = NULL, *b64 = NULL;
	int fd, rc = -1;

	tmp = xasprintf("%s.tmp.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT | O_EXCL, mode 0600 */
	if (fd < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen,
			    "cannot create master key file %s: its directory "
			    "does not exist",
			    path);
		else
			snprintf(err, errlen, "cannot create master key file %s: %s", path,
			    strerror(errno));
		free(tmp);
		return -1;
	}
	randombytes_buf(raw, sizeof(raw));
	b64 = base64_encode(raw, sizeof(raw));
	text = xasprintf("%s\n", b64);
	if (fchmod(fd, 0600) != 0 || write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write master key file %s: %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	if (close(fd) != 0) {
		snprintf(err, errlen, "cannot write master key file %s: %s", path, strerror(errno));
		goto out;
	}
	/* link() publishes the complete file or fails with EEXIST: one key wins. */
	if (link(tmp, path) != 0) {
		if (errno == EEXIST)
			rc = -2;
		else
			snprintf(err, errlen, "cannot create master key file %s: %s", path,
			    strerror(errno));
		goto out;
	}
	sync_parent_dir(path);
	memcpy(key, raw, SEAL_KEY_BYTES);
	rc = 0;

out:
	unlink(tmp);
	free(tmp);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, strlen(b64));
	sodium_memzero(text, strlen(text));
	free(b64);
	free(text);
	return rc;
}

int
seal_key_load(const char *path, const char *env_b64, unsigned char key[SEAL_KEY_BYTES], int create,
    char *err, size_t errlen)
{
	int rc;

	if (env_b64 != NULL && *env_b64 != '\0') {
		if (seal_key_parse(env_b64, key) != 0) {
			snprintf(err, errlen,
			    "the master key from the environment is not base64 of 32 bytes");
			return -1;
		}
		return 0;
	}
	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "no master key: set a key file or the environment variable");
		return -1;
	}
	/* Two rounds: if another process wins the race to create the file, read its key. */
	for (int round = 0; round < 2; round++) {
		rc = read_key_file(path, key, err, errlen);
		if (rc != -2)
			return rc;
		if (!create) {
			snprintf(err, errlen, "master key file %s does not exist", path);
			return -1;
		}
		rc = create_key_file(path, key, err, errlen);
		if (rc != -2)
			return rc;
	}
	snprintf(err, errlen,
	    "master key file %s can be neither read nor created "
	    "(a dangling symbolic link?)",
	    path);
	return -1;
}
