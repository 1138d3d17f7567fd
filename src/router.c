/* SPDX-License-Identifier: ISC */
/* Request routing: "METHOD /path/{param}" patterns to handlers, with 404 and 405 + Allow. */
#include "config.h"

#include <string.h>

#include "hookd/router.h"

#define MAX_SEGMENTS 16

struct segment {
	char *text; /* literal text, or the parameter name */
	int param;  /* 1: "{name}" */
	int rest;   /* 1: "{name*}", matches the remainder */
};

struct route {
	char method[12];
	char *pattern;
	int nseg;
	struct segment seg[MAX_SEGMENTS];
	void *handler;
	unsigned flags;
};

struct router {
	struct route *routes;
	int n, cap;
};

struct router *
router_new(void)
{
	return xcalloc(1, sizeof(struct router));
}

void
router_free(struct router *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->n; i++) {
		for (int j = 0; j < r->routes[i].nseg; j++)
			free(r->routes[i].seg[j].text);
		free(r->routes[i].pattern);
	}
	free(r->routes);
	free(r);
}

int
router_add(struct router *r, const char *method, const char *pattern, void *handler, unsigned flags)
{
	struct route rt = {0};
	const char *p = pattern;
	int nparams = 0;

	if (*p != '/' || strlen(method) >= sizeof(rt.method))
		return -1;
	strcpy(rt.method, method);
	while (*p == '/' && p[1] != '\0') {
		const char *start = ++p, *end = strchr(start, '/');
		size_t len = end ? (size_t)(end - start) : strlen(start);
		struct segment *s;

		if (len == 0 || rt.nseg == MAX_SEGMENTS)
			goto fail;
		s = &rt.seg[rt.nseg++];
		if (start[0] == '{' && start[len - 1] == '}') {
			if (len < 3 || ++nparams > ROUTER_MAX_PARAMS)
				goto fail;
			s->param = 1;
			if (start[len - 2] == '*') {
				if (end != NULL || len < 4)
					goto fail;
				s->rest = 1;
				s->text = xstrndup(start + 1, len - 3);
			} else {
				s->text = xstrndup(start + 1, len - 2);
			}
		} else {
			s->text = xstrndup(start, len);
		}
		p = start + len;
	}
	if (*p != '\0' && strcmp(p, "/") != 0)
		goto fail;
	rt.pattern = xstrdup(pattern);
	rt.handler = handler;
	rt.flags = flags;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 32;
		r->routes = xrealloc(r->routes, (size_t)r->cap * sizeof(*r->routes));
	}
	r->routes[r->n++] = rt;
	return 0;
fail:
	for (int j = 0; j < rt.nseg; j++)
		free(rt.seg[j].text);
	return -1;
}

/* Percent-decode one segment; NULL when malformed or decoding to NUL or '/'. */
static char *
decode_segment(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= len)
				goto fail;
			hi = hex_value(s[i + 1]);
			lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto fail;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

/* Split path into at most MAX_SEGMENTS raw segments; -1 when malformed. */
static int
split_path(const char *path, const char **seg, size_t *seglen, const char **restp)
{
	int n = 0;
	const char *p = path;

	if (*p != '/')
		return -1;
	while (*p == '/' && p[1] != '\0') {
		const char *start = ++p, *end = strchr(start, '/');
		size_t len = end ? (size_t)(end - start) : strlen(start);

		if (len == 0) {
			/* Allow one trailing slash; refuse empty segments inside the path. */
			if (end == NULL || end[1] != '\0')
				return -1;
			break;
		}
		if (n == MAX_SEGMENTS)
			return -1;
		restp[n] = start;
		seg[n] = start;
		seglen[n++] = len;
		p = start + len;
	}
	return n;
}

static int
match_route(const struct route *rt, int n, const char **seg, const size_t *seglen)
{
	int i;

	for (i = 0; i < rt->nseg; i++) {
		const struct segment *s = &rt->seg[i];

		if (s->rest)
			return 1;
		if (i >= n)
			return 0;
		if (!s->param &&
		    (strlen(s->text) != seglen[i] || memcmp(s->text, seg[i], seglen[i]) != 0))
			return 0;
	}
	return i == n;
}

static void
fill_params(const struct route *rt, int n, const char **seg, const size_t *seglen,
    const char **restp, const char *path, struct route_match *m)
{
	m->nparams = 0;
	for (int i = 0; i < rt->nseg; i++) {
		const struct segment *s = &rt->seg[i];

		if (!s->param)
			continue;
		m->names[m->nparams] = s->text;
		if (s->rest) {
			const char *rest = i < n ? restp[i] : path + strlen(path);

			m->values[m->nparams++] = xstrdup(rest);
			return;
		}
		m->values[m->nparams] = decode_segment(seg[i], seglen[i]);
		if (m->values[m->nparams] == NULL)
			m->values[m->nparams] = xstrdup("");
		m->nparams++;
	}
}

static int
method_is(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return 1;
	return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

static void
allow_add(char *allow, size_t len, const char *method)
{
	char *p = allow;
	size_t mlen = strlen(method);

	/* Skip duplicates. */
	while ((p = strstr(p, method)) != NULL) {
		if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
			return;
		p += mlen;
	}
	if (*allow != '\0')
		strncat(allow, ", ", len - strlen(allow) - 1);
	strncat(allow, method, len - strlen(allow) - 1);
}

enum router_result
router_match(const struct router *r, const char *method, const char *path, struct route_match *m)
{
	const char *seg[MAX_SEGMENTS], *restp[MAX_SEGMENTS];
	size_t seglen[MAX_SEGMENTS];
	int n, path_known = 0;

	memset(m, 0, sizeof(*m));
	n = split_path(path, seg, seglen, restp);
	if (n < 0)
		return ROUTER_NOT_FOUND;
	/* Decoding failures count as "no such path". */
	for (int i = 0; i < n; i++) {
		char *d = decode_segment(seg[i], seglen[i]);

		if (d == NULL)
			return ROUTER_NOT_FOUND;
		free(d);
	}
	for (int i = 0; i < r->n; i++) {
		const struct route *rt = &r->routes[i];

		if (!match_route(rt, n, seg, seglen))
			continue;
		if (method_is(rt->method, method)) {
			m->handler = rt->handler;
			m->flags = rt->flags;
			m->pattern = rt->pattern;
			fill_params(rt, n, seg, seglen, restp, path, m);
			return ROUTER_FOUND;
		}
		path_known = 1;
		allow_add(m->allow, sizeof(m->allow), rt->method);
		if (strcmp(rt->method, "GET") == 0)
			allow_add(m->allow, sizeof(m->allow), "HEAD");
	}
	return path_known ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}

void
route_match_clear(struct route_match *m)
{
	for (int i = 0; i < m->nparams; i++)
		free(m->values[i]);
	m->nparams = 0;
}

const char *
route_param(const struct route_match *m, const char *name)
{
	for (int i = 0; i < m->nparams; i++) {
		if (strcmp(m->names[i], name) == 0)
			return m->values[i];
	}
	return NULL;
}
