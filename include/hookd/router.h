/* SPDX-License-Identifier: ISC */
/* Request routing: "METHOD /path/{param}" patterns to handlers, with 404 and 405 + Allow. */
#ifndef HOOKD_ROUTER_H
#define HOOKD_ROUTER_H

#include "hookd/util.h"

#define ROUTER_MAX_PARAMS 8

struct router;

enum router_result {
	ROUTER_FOUND,              /* a route matched method and path */
	ROUTER_NOT_FOUND,          /* no route has this path */
	ROUTER_METHOD_NOT_ALLOWED, /* the path exists under other methods; see allow */
};

struct route_match {
	void *handler;       /* what router_add was given */
	unsigned flags;      /* what router_add was given */
	const char *pattern; /* the matched pattern, for metrics labels */
	int nparams;
	const char *names[ROUTER_MAX_PARAMS];
	char *values[ROUTER_MAX_PARAMS]; /* percent-decoded, owned by the match */
	char allow[96];                  /* "GET, HEAD, POST" for ROUTER_METHOD_NOT_ALLOWED */
};

struct router *router_new(void);
void router_free(struct router *r);
/*
 * Add a route. pattern segments are literals, "{name}" (one segment) or a final
 * "{name*}" (the rest of the path, possibly empty). GET routes answer HEAD too.
 * Returns 0, or -1 for a malformed pattern.
 */
int router_add(
    struct router *r, const char *method, const char *pattern, void *handler, unsigned flags) WUR;
/* Match a request; path excludes the query string. Call route_match_clear afterwards. */
enum router_result router_match(
    const struct router *r, const char *method, const char *path, struct route_match *m);
void route_match_clear(struct route_match *m);
/* The value of parameter name, or NULL. */
const char *route_param(const struct route_match *m, const char *name);

#endif
