/* SPDX-License-Identifier: ISC */
/* Pure pieces of the receive path: group-commit id matching, sync-answer headers, media types. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hookd/ingest_util.h"
#include "hookd/util.h"

#define HEADER_NAME_MAX  256
#define HEADER_VALUE_MAX 8192

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
ingest_match_ids(
    const char *const *want, int n, const char *const *got, int ngot, unsigned char *stored)
{
	const char **sorted;

	memset(stored, 0, (size_t)n);
	if (n <= 0 || ngot <= 0)
		return;
	sorted = xmalloc((size_t)ngot * sizeof(*sorted));
	memcpy(sorted, got, (size_t)ngot * sizeof(*sorted));
	qsort(sorted, (size_t)ngot, sizeof(*sorted), cmp_str);
	for (int i = 0; i < n; i++)
		stored[i] =
		    bsearch(&want[i], sorted, (size_t)ngot, sizeof(*sorted), cmp_str) != NULL;
	free(sorted);
}

int
ingest_media_is_json(const char *ct)
{
	const char *semi;
	size_t n;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	semi = strchr(ct, ';');
	n = semi ? (size_t)(semi - ct) : strlen(ct);
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
	       (n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
	           strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* RFC 7230 tchar. */
static int
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

const char *
ingest_answer_header_refused(const char *name, const char *value, size_t value_len)
{
	static const char *const owned[] = {"content-length", "transfer-encoding", "connection",
	    "keep-alive", "upgrade", "te", "trailer", "content-encoding", "x-request-id"};
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > HEADER_NAME_MAX)
		return "the name is empty or too long";
	for (size_t i = 0; i < n; i++) {
		if (!tchar((unsigned char)name[i]))
			return "the name is not an RFC 7230 token";
	}
	for (size_t i = 0; i < ARRAY_SIZE(owned); i++) {
		if (strcasecmp(name, owned[i]) == 0)
			return "hookd sets this header itself";
	}
	if (strncasecmp(name, "proxy-", 6) == 0)
		return "hookd sets this header itself";
	if (value == NULL || value_len > HEADER_VALUE_MAX)
		return "the value is missing or longer than 8 KiB";
	for (size_t i = 0; i < value_len; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return "the value holds a control character (CR, LF, NUL, ...)";
	}
	if (strcasecmp(name, "content-type") == 0 && !ingest_media_is_json(value))
		return "the body is sent as JSON: only a JSON Content-Type may replace the default";
	return NULL;
}
