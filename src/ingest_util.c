/* SPDX-License-Identifier: ISC */
/* Pure pieces of the receive path: group-commit id matching, media types. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hookd/ingest_util.h"
#include "hookd/util.h"

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
