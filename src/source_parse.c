/* SPDX-License-Identifier: ISC */
/* Source settings shared by the cache and the API: handler configs and key specs. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hookd/json.h"
#include "hookd/sources.h"
#include "hookd/util.h"

void
source_handler_clear(struct source_handler *h)
{
	free(h->function);
	free(h->event_type);
	memset(h, 0, sizeof(*h));
}

/* A function name: identifier or schema.identifier, lower-case SQL identifiers only. */
static int
valid_function_name(const char *s)
{
	int dots = 0, seglen = 0;

	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (seglen == 0 || ++dots > 1)
				return 0;
			seglen = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || *s == '_' ||
		        (seglen > 0 && *s >= '0' && *s <= '9')))
			return 0;
		if (++seglen > 63)
			return 0;
	}
	return seglen > 0;
}

static int
number_member(struct json_object *o, const char *key, double min, double max, double *out,
    char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
		snprintf(err, errlen, "handler.%s must be a number", key);
		return -1;
	}
	*out = json_object_get_double(v);
	if (!(*out >= min && *out <= max)) {
		snprintf(err, errlen, "handler.%s must be between %g and %g", key, min, max);
		return -1;
	}
	return 0;
}

int
source_handler_parse(struct json_object *cfg, struct source_handler *h, char *err, size_t errlen)
{
	const char *type, *fn, *et;
	double attempts = 3;

	memset(h, 0, sizeof(*h));
	h->max_attempts = 3;
	h->backoff_s = 2;
	h->multiplier = 2;
	h->max_delay_s = 60;
	if (cfg == NULL || json_object_is_type(cfg, json_type_null)) {
		h->type = HANDLER_STORE;
		return 0;
	}
	if (!json_object_is_type(cfg, json_type_object)) {
		snprintf(err, errlen, "handler must be an object");
		return -1;
	}
	type = json_get_str(cfg, "type");
	if (type == NULL || strcmp(type, "store") == 0)
		h->type = HANDLER_STORE;
	else if (strcmp(type, "sql") == 0)
		h->type = HANDLER_SQL;
	else if (strcmp(type, "sql_sync") == 0)
		h->type = HANDLER_SQL_SYNC;
	else if (strcmp(type, "publish") == 0)
		h->type = HANDLER_PUBLISH;
	else {
		snprintf(err, errlen, "handler.type must be store, sql, sql_sync or publish");
		return -1;
	}
	fn = json_get_str(cfg, "function");
	if (h->type == HANDLER_SQL || h->type == HANDLER_SQL_SYNC) {
		if (fn == NULL || !valid_function_name(fn)) {
			snprintf(err, errlen,
			    "handler.function must name a SQL function (\"schema.name\", lower "
			    "case)");
			return -1;
		}
		h->function = xstrdup(fn);
	}
	if (number_member(cfg, "max_attempts", 1, 100, &attempts, err, errlen) != 0 ||
	    number_member(cfg, "backoff_seconds", 0, 86400, &h->backoff_s, err, errlen) != 0 ||
	    number_member(cfg, "multiplier", 1, 100, &h->multiplier, err, errlen) != 0 ||
	    number_member(cfg, "max_delay_seconds", 0, 86400, &h->max_delay_s, err, errlen) != 0)
		goto fail;
	h->max_attempts = (int)attempts;
	et = json_get_str(cfg, "event_type");
	if (et != NULL)
		h->event_type = xstrdup(et);
	return 0;
fail:
	source_handler_clear(h);
	return -1;
}

void
source_key_clear(struct source_key *k)
{
	free(k->arg);
	k->arg = NULL;
	k->kind = SOURCE_KEY_NONE;
}

int
source_key_parse(const char *spec, struct source_key *k, char *err, size_t errlen)
{
	k->kind = SOURCE_KEY_NONE;
	k->arg = NULL;
	if (spec == NULL || *spec == '\0')
		return 0;
	if (strncasecmp(spec, "header:", 7) == 0 && spec[7] != '\0') {
		for (const char *c = spec + 7; *c != '\0'; c++) {
			if (*c <= ' ' || *c == ':' || *c >= 127) {
				snprintf(err, errlen, "\"%s\": not a header name", spec + 7);
				return -1;
			}
		}
		k->kind = SOURCE_KEY_HEADER;
		k->arg = xstrdup(spec + 7);
		return 0;
	}
	if (strncasecmp(spec, "json:", 5) == 0 && json_path_valid(spec + 5)) {
		k->kind = SOURCE_KEY_JSON;
		k->arg = xstrdup(spec + 5);
		return 0;
	}
	snprintf(err, errlen, "\"%s\": want \"header:Name\" or \"json:$.path\"", spec);
	return -1;
}

char *
source_key_value(const struct source_key *k, const char *(*header)(void *, const char *), void *ctx,
    struct json_object *body)
{
	const char *h;
	char *v;

	switch (k->kind) {
	case SOURCE_KEY_HEADER:
		h = header(ctx, k->arg);
		return h != NULL && *h != '\0' ? xstrdup(h) : NULL;
	case SOURCE_KEY_JSON:
		v = body != NULL ? json_scalar_text(json_path(body, k->arg)) : NULL;
		/* "" is no key, as an empty header is: it must not make every event one. */
		if (v != NULL && *v == '\0') {
			free(v);
			v = NULL;
		}
		return v;
	case SOURCE_KEY_NONE: break;
	}
	return NULL;
}
