/* SPDX-License-Identifier: ISC */
/* SSRF guard: classify the addresses hookd connects to, CIDR allowlists, target URLs. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hookd/netguard.h"

/* IPv4 special-purpose blocks (IANA registry), most specific first where they nest. */
static const struct {
	uint32_t net;
	int bits;
	enum netguard_class cls;
} v4_ranges[] = {
    {0x00000000, 8, NETGUARD_UNSPECIFIED}, /* 0.0.0.0/8 "this network" */
    {0x0a000000, 8, NETGUARD_PRIVATE},     /* 10.0.0.0/8 */
    {0x64400000, 10, NETGUARD_PRIVATE},    /* 100.64.0.0/10 carrier-grade NAT */
    {0x7f000000, 8, NETGUARD_LOOPBACK},    /* 127.0.0.0/8 */
    {0xa9fe0000, 16, NETGUARD_LINK_LOCAL}, /* 169.254.0.0/16, cloud metadata */
    {0xac100000, 12, NETGUARD_PRIVATE},    /* 172.16.0.0/12 */
    {0xc0000000, 24, NETGUARD_RESERVED},   /* 192.0.0.0/24 IETF protocol assignments */
    {0xc0000200, 24, NETGUARD_RESERVED},   /* 192.0.2.0/24 TEST-NET-1 */
    {0xc0586300, 24, NETGUARD_RESERVED},   /* 192.88.99.0/24 former 6to4 relay anycast */
    {0xc0a80000, 16, NETGUARD_PRIVATE},    /* 192.168.0.0/16 */
    {0xc6120000, 15, NETGUARD_RESERVED},   /* 198.18.0.0/15 benchmarking */
    {0xc6336400, 24, NETGUARD_RESERVED},   /* 198.51.100.0/24 TEST-NET-2 */
    {0xcb007100, 24, NETGUARD_RESERVED},   /* 203.0.113.0/24 TEST-NET-3 */
    {0xe0000000, 4, NETGUARD_MULTICAST},   /* 224.0.0.0/4 */
    {0xf0000000, 4, NETGUARD_RESERVED},    /* 240.0.0.0/4 and 255.255.255.255 */
};

/* IPv6 blocks checked after the embedded-IPv4 forms; only the leading bytes are listed. */
static const struct {
	unsigned char prefix[6];
	int bits;
	enum netguard_class cls;
} v6_ranges[] = {
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, NETGUARD_RESERVED}, /* local-use NAT64 */
    {{0x01, 0x00}, 64, NETGUARD_RESERVED},                         /* 100::/64 discard */
    {{0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48, NETGUARD_RESERVED}, /* benchmarking */
    {{0x20, 0x01, 0x00, 0x10}, 28, NETGUARD_RESERVED},             /* ORCHID */
    {{0x20, 0x01, 0x00, 0x20}, 28, NETGUARD_RESERVED},             /* ORCHIDv2 */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, NETGUARD_RESERVED},             /* documentation */
    {{0x3f, 0xff, 0x00}, 20, NETGUARD_RESERVED},                   /* documentation */
    {{0x5f, 0x00}, 16, NETGUARD_RESERVED},                         /* SRv6 SIDs */
    {{0xfc}, 7, NETGUARD_PRIVATE},                                 /* unique local */
    {{0xfe, 0x80}, 10, NETGUARD_LINK_LOCAL},                       /* link-local */
    {{0xfe, 0xc0}, 10, NETGUARD_PRIVATE},                          /* site-local (old) */
    {{0xff}, 8, NETGUARD_MULTICAST},                               /* multicast */
};

static const unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* 1 when the first bits of a and b agree. */
static int
prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[whole] ^ b[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* Zero the bits past the prefix; returns 1 if any was set. */
static int
clear_host_bits(unsigned char *a, int nbytes, int bits)
{
	int dirty = 0;

	for (int i = 0; i < nbytes; i++) {
		int keep = bits - i * 8;
		unsigned char mask = keep >= 8   ? 0xff
		                     : keep <= 0 ? 0
		                                 : (unsigned char)(0xff << (8 - keep));

		if (a[i] & ~mask)
			dirty = 1;
		a[i] &= mask;
	}
	return dirty;
}

/* The address of sa in 16-byte form, IPv4 as ::ffff:a.b.c.d. Returns 0 or -1. */
static int
sockaddr_bytes(const struct sockaddr *sa, unsigned char out[16])
{
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		memcpy(out, mapped_prefix, 12);
		memcpy(out + 12, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(out, &sin6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

int
cidr_parse(const char *s, struct cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash;
	size_t alen;
	int bits = -1, max;
	struct cidr c;

	if (s == NULL)
		return -1;
	memset(&c, 0, sizeof(c));
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= INET6_ADDRSTRLEN)
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	if (slash != NULL) {
		const char *p = slash + 1;

		if (*p == '\0' || strlen(p) > 3)
			return -1;
		bits = 0;
		for (; *p != '\0'; p++) {
			if (!isdigit((unsigned char)*p))
				return -1;
			bits = bits * 10 + (*p - '0');
		}
		if (bits > max)
			return -1;
	} else {
		bits = max;
	}
	c.bits = bits;
	if (clear_host_bits(c.addr, max / 8, bits))
		return -1;
	/* ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n. */
	if (c.family == AF_INET6 && bits >= 96 && memcmp(c.addr, mapped_prefix, 12) == 0) {
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.family = AF_INET;
		c.bits = bits - 96;
	}
	*out = c;
	return 0;
}

int
cidr_contains(const struct cidr *c, const struct sockaddr *sa)
{
	unsigned char a[16], net[16];
	int bits;

	if (sockaddr_bytes(sa, a) != 0)
		return 0;
	if (c->family == AF_INET) {
		memcpy(net, mapped_prefix, 12);
		memcpy(net + 12, c->addr, 4);
		bits = 96 + c->bits;
	} else if (c->family == AF_INET6) {
		memcpy(net, c->addr, 16);
		bits = c->bits;
	} else {
		return 0;
	}
	return prefix_match(a, net, bits);
}

void
cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, addr, sizeof(addr)) == NULL)
		snprintf(addr, sizeof(addr), "?");
	snprintf(buf, len, "%s/%d", addr, c->bits);
}

/*
 * Split Postgres array text ("{a,\"b\"}") or a comma-separated list into trimmed,
 * non-empty elements. Returns a NULL-terminated malloc'd vector (free with
 * free_list()) or NULL on a syntax error; *n gets the count.
 */
static char **
split_list(const char *s, int *n)
{
	char **v = NULL;
	char *buf = NULL;
	const char *p, *end;
	int count = 0;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if (end > s && *s == '{') {
		if (end[-1] != '}' || end - s < 2)
			return NULL;
		s++;
		end--;
	}
	v = xcalloc(1, sizeof(*v));
	buf = xmalloc((size_t)(end - s) + 1);
	p = s;
	while (p < end) {
		size_t blen = 0;

		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p == end && count == 0)
			break; /* "{ }" */
		if (p < end && *p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				buf[blen++] = *p;
			}
			if (p == end)
				goto fail;
			p++;
			while (p < end && isspace((unsigned char)*p))
				p++;
		} else {
			while (p < end && *p != ',' && *p != '"' && *p != '{' && *p != '}')
				buf[blen++] = *p++;
			while (blen > 0 && isspace((unsigned char)buf[blen - 1]))
				blen--;
		}
		if (blen == 0 || (p < end && *p != ','))
			goto fail;
		if (p < end && p + 1 == end)
			goto fail; /* trailing comma */
		if (p < end)
			p++;
		v = xrealloc(v, (size_t)(count + 2) * sizeof(*v));
		v[count++] = xstrndup(buf, blen);
		v[count] = NULL;
	}
	free(buf);
	*n = count;
	return v;

fail:
	for (int i = 0; i < count; i++)
		free(v[i]);
	free(v);
	free(buf);
	return NULL;
}

static void
free_list(char **v)
{
	for (char **p = v; p != NULL && *p != NULL; p++)
		free(*p);
	free(v);
}

int
cidr_list_parse(const char *csv_or_pg_array, struct cidr **out, int *n)
{
	struct cidr *list = NULL;
	char **v;
	int count, i;

	*out = NULL;
	*n = 0;
	if (csv_or_pg_array == NULL)
		return 0;
	v = split_list(csv_or_pg_array, &count);
	if (v == NULL) {
		*n = -1;
		return -1;
	}
	if (count > 0)
		list = xcalloc((size_t)count, sizeof(*list));
	for (i = 0; i < count; i++) {
		if (cidr_parse(v[i], &list[i]) != 0)
			goto fail;
	}
	free_list(v);
	*out = list;
	*n = count;
	return 0;

fail:
	free_list(v);
	free(list);
	*n = i;
	return -1;
}

static enum netguard_class
classify_v4(const unsigned char a[4])
{
	uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];

	for (size_t i = 0; i < ARRAY_SIZE(v4_ranges); i++) {
		int bits = v4_ranges[i].bits;
		uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);

		if ((x & mask) == v4_ranges[i].net)
			return v4_ranges[i].cls;
	}
	return NETGUARD_PUBLIC;
}

/*
 * Classify a 16-byte address (IPv4 as mapped). When the class comes from an embedded
 * IPv4 address other than the plain mapped form, its 4 bytes go to embedded and
 * *has_embedded is set.
 */
static enum netguard_class
classify_v6(const unsigned char a[16], unsigned char embedded[4], int *has_embedded)
{
	static const unsigned char zero[16];
	static const unsigned char translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	unsigned char v4[4];
	enum netguard_class cls;

	*has_embedded = 0;
	if (memcmp(a, mapped_prefix, 12) == 0)
		return classify_v4(a + 12);
	if (memcmp(a, zero, 15) == 0 && a[15] <= 1) /* ::, ::1 */
		return a[15] == 0 ? NETGUARD_UNSPECIFIED : NETGUARD_LOOPBACK;
	if (memcmp(a, zero, 12) == 0 || memcmp(a, translated, 12) == 0 ||
	    memcmp(a, nat64, 12) == 0) {
		/* IPv4-compatible ::a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, NAT64. */
		memcpy(embedded, a + 12, 4);
		*has_embedded = 1;
		return classify_v4(a + 12);
	}
	if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4: 2002:AABB:CCDD::/48 */
		memcpy(embedded, a + 2, 4);
		*has_embedded = 1;
		return classify_v4(a + 2);
	}
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
		/* Teredo: server in bytes 4..7, client in 12..15 with every bit inverted. */
		for (int i = 0; i < 4; i++)
			v4[i] = (unsigned char)~a[12 + i];
		cls = classify_v4(v4);
		if (cls == NETGUARD_PUBLIC && classify_v4(a + 4) != NETGUARD_PUBLIC) {
			memcpy(v4, a + 4, 4);
			cls = classify_v4(v4);
		}
		memcpy(embedded, v4, 4);
		*has_embedded = 1;
		return cls;
	}
	for (size_t i = 0; i < ARRAY_SIZE(v6_ranges); i++) {
		unsigned char net[16] = {0};

		memcpy(net, v6_ranges[i].prefix, sizeof(v6_ranges[i].prefix));
		if (prefix_match(a, net, v6_ranges[i].bits))
			return v6_ranges[i].cls;
	}
	if ((a[0] & 0xe0) != 0x20) /* outside 2000::/3, the only global unicast allocation */
		return NETGUARD_RESERVED;
	return NETGUARD_PUBLIC;
}

enum netguard_class
netguard_classify(const struct sockaddr *sa)
{
	unsigned char a[16], embedded[4];
	int has_embedded;

	if (sockaddr_bytes(sa, a) != 0)
		return NETGUARD_RESERVED;
	return classify_v6(a, embedded, &has_embedded);
}

const char *
netguard_class_name(enum netguard_class c)
{
	switch (c) {
	case NETGUARD_PUBLIC: return "public";
	case NETGUARD_LOOPBACK: return "loopback";
	case NETGUARD_PRIVATE: return "private";
	case NETGUARD_LINK_LOCAL: return "link-local";
	case NETGUARD_MULTICAST: return "multicast";
	case NETGUARD_UNSPECIFIED: return "unspecified";
	case NETGUARD_RESERVED: return "reserved";
	}
	return "unknown";
}

int
netguard_check(
    const struct sockaddr *sa, const struct cidr *allow, int nallow, char *why, size_t whylen)
{
	static const unsigned char metadata[4] = {169, 254, 169, 254};
	char text[INET6_ADDRSTRLEN], inner[INET_ADDRSTRLEN], what[INET6_ADDRSTRLEN + 48];
	unsigned char a[16], embedded[4];
	enum netguard_class cls;
	int has_embedded;
	const char *name, *article, *note = "";

	if (sockaddr_bytes(sa, a) != 0) {
		snprintf(
		    why, whylen, "address family %d is not IPv4 or IPv6", sa ? sa->sa_family : -1);
		return -1;
	}
	cls = classify_v6(a, embedded, &has_embedded);
	if (cls == NETGUARD_PUBLIC)
		return 0;
	for (int i = 0; i < nallow; i++) {
		if (cidr_contains(&allow[i], sa))
			return 0;
	}
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, a + 12, text, sizeof(text));
	else
		inet_ntop(AF_INET6, a, text, sizeof(text));
	if (has_embedded) {
		inet_ntop(AF_INET, embedded, inner, sizeof(inner));
		snprintf(what, sizeof(what), "%s embeds %s,", text, inner);
	} else {
		snprintf(what, sizeof(what), "%s is", text);
	}
	if (memcmp(has_embedded ? embedded : a + 12, metadata, 4) == 0 &&
	    (has_embedded || memcmp(a, mapped_prefix, 12) == 0))
		note = " (the cloud metadata service)";
	name = netguard_class_name(cls);
	article = cls == NETGUARD_UNSPECIFIED ? "an" : "a";
	snprintf(why, whylen, "%s %s %s address%s; add %s to outbound_allow_networks to allow it",
	    what, article, name, note, has_embedded ? text : "it");
	return -1;
}

/* Copy [s, s+n) lower-cased into a new string. */
static char *
lower_dup(const char *s, size_t n)
{
	char *d = xstrndup(s, n);

	for (char *p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* 1 when s is all decimal digits, or a 0x hex number (what resolvers take for IPv4). */
static int
numeric_label(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return 0;
	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < n && isxdigit((unsigned char)s[i]); i++)
			;
		return i == n;
	}
	for (; i < n && isdigit((unsigned char)s[i]); i++)
		;
	return i == n;
}

/* Validate a DNS host name (already lower case). Returns 0 or -1 with why set. */
static int
check_hostname(const char *h, char *why, size_t whylen)
{
	size_t len = strlen(h), label = 0;
	const char *last;

	if (len > 254 || (len == 254 && h[253] != '.')) {
		snprintf(why, whylen, "host name is longer than 253 characters");
		return -1;
	}
	for (const char *p = h; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0) {
				snprintf(why, whylen, "host name has an empty label");
				return -1;
			}
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
			snprintf(why, whylen, "invalid character '%c' in host name", *p);
			return -1;
		}
		if (++label > 63) {
			snprintf(why, whylen, "host name label longer than 63 characters");
			return -1;
		}
	}
	/* The last label, a trailing dot aside. */
	len = h[len - 1] == '.' ? len - 1 : len;
	for (last = h + len; last > h && last[-1] != '.'; last--)
		;
	if (numeric_label(last, (size_t)(h + len - last))) {
		snprintf(
		    why, whylen, "numeric host \"%.64s\" is not a dotted-quad IPv4 address", h);
		return -1;
	}
	return 0;
}

int
target_url_parse(const char *url, struct target_url *out, char *why, size_t whylen)
{
	const char *p, *auth, *auth_end, *host_end, *port_str = NULL, *path, *path_end;
	unsigned char tmp[16];
	size_t slen;

	memset(out, 0, sizeof(*out));
	if (url == NULL || *url == '\0') {
		snprintf(why, whylen, "URL is empty");
		return -1;
	}
	for (p = url; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch <= 0x20 || ch == 0x7f) {
			snprintf(why, whylen, "URL contains white space or control characters");
			return -1;
		}
		if (ch >= 0x80) {
			snprintf(
			    why, whylen, "URL contains non-ASCII characters; percent-encode them");
			return -1;
		}
		if (ch == '\\') {
			snprintf(why, whylen, "URL contains a backslash");
			return -1;
		}
	}

	p = strchr(url, ':');
	slen = p ? (size_t)(p - url) : 0;
	if (p == NULL || !((slen == 4 && strncasecmp(url, "http", 4) == 0) ||
	                     (slen == 5 && strncasecmp(url, "https", 5) == 0))) {
		snprintf(why, whylen, "URL scheme must be http or https");
		return -1;
	}
	if (strncmp(p, "://", 3) != 0) {
		snprintf(why, whylen, "URL must be absolute: %.*s://host/path", (int)slen, url);
		return -1;
	}
	out->scheme = lower_dup(url, slen);
	out->port = slen == 5 ? 443 : 80;

	auth = p + 3;
	auth_end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
		snprintf(why, whylen, "URL must not contain user info (user:password@)");
		goto fail;
	}
	if (*auth == '[') {
		const char *close = memchr(auth, ']', (size_t)(auth_end - auth));
		char buf[INET6_ADDRSTRLEN];
		size_t hlen;

		if (close == NULL) {
			snprintf(why, whylen, "URL has an unterminated IPv6 literal");
			goto fail;
		}
		hlen = (size_t)(close - auth - 1);
		if (memchr(auth + 1, '%', hlen) != NULL) {
			snprintf(why, whylen, "IPv6 zone ids are not allowed in URLs");
			goto fail;
		}
		if (hlen == 0 || hlen >= sizeof(buf)) {
			snprintf(why, whylen, "URL has an invalid IPv6 address");
			goto fail;
		}
		memcpy(buf, auth + 1, hlen);
		buf[hlen] = '\0';
		if (inet_pton(AF_INET6, buf, tmp) != 1) {
			snprintf(why, whylen, "URL has an invalid IPv6 address");
			goto fail;
		}
		out->host = lower_dup(buf, hlen);
		out->host_is_ip = 1;
		host_end = close + 1;
		if (host_end < auth_end && *host_end != ':') {
			snprintf(why, whylen, "unexpected characters after the IPv6 literal");
			goto fail;
		}
	} else {
		host_end = memchr(auth, ':', (size_t)(auth_end - auth));
		if (host_end == NULL)
			host_end = auth_end;
		if (host_end == auth) {
			snprintf(why, whylen, "URL has no host");
			goto fail;
		}
		out->host = lower_dup(auth, (size_t)(host_end - auth));
		if (inet_pton(AF_INET, out->host, tmp) == 1)
			out->host_is_ip = 1;
		else if (check_hostname(out->host, why, whylen) != 0)
			goto fail;
	}
	if (host_end < auth_end) { /* ":port" */
		long port = 0;

		port_str = host_end + 1;
		if (auth_end - port_str > 5) {
			snprintf(why, whylen, "URL port is out of range");
			goto fail;
		}
		for (p = port_str; p < auth_end; p++) {
			if (!isdigit((unsigned char)*p)) {
				snprintf(why, whylen, "URL port is not a number");
				goto fail;
			}
			port = port * 10 + (*p - '0');
		}
		if (p > port_str) { /* "host:" keeps the default port, as RFC 3986 allows */
			if (port < 1 || port > 65535) {
				snprintf(why, whylen, "URL port is out of range");
				goto fail;
			}
			out->port = (int)port;
		}
	}

	path = auth_end;
	path_end = path + strcspn(path, "#");
	if (path == path_end)
		out->path_query = xstrdup("/");
	else if (*path == '?')
		out->path_query = xasprintf("/%.*s", (int)(path_end - path), path);
	else
		out->path_query = xstrndup(path, (size_t)(path_end - path));
	return 0;

fail:
	target_url_free(out);
	return -1;
}

char *
target_url_host_header(const struct target_url *u)
{
	int dflt = (strcmp(u->scheme, "https") == 0 && u->port == 443) ||
	           (strcmp(u->scheme, "http") == 0 && u->port == 80);
	int v6 = strchr(u->host, ':') != NULL;

	if (dflt)
		return xasprintf(v6 ? "[%s]" : "%s", u->host);
	return xasprintf(v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
}

void
target_url_free(struct target_url *u)
{
	free(u->scheme);
	free(u->host);
	free(u->path_query);
	memset(u, 0, sizeof(*u));
}
