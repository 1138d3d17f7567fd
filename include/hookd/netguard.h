/* SPDX-License-Identifier: ISC */
/* SSRF guard: address classification, CIDR allowlists and outbound target URLs. */
#ifndef HOOKD_NETGUARD_H
#define HOOKD_NETGUARD_H

#include <stddef.h>
#include <sys/socket.h>

#include "hookd/util.h"

/*
 * A network. IPv4 networks have family AF_INET and use addr[0..3]; IPv6 networks
 * AF_INET6 and all 16 bytes. Bits past the prefix are always zero.
 */
struct cidr {
	int family;
	unsigned char addr[16];
	int bits;
};

/* Room for cidr_format() output. */
#define CIDR_STRLEN 52

/*
 * Parse "a.b.c.d[/bits]" or "v6[/bits]" (no zone ids, no brackets); without /bits the
 * network is the single address. Like Postgres's cidr type, a value with bits set past
 * the prefix ("10.1.2.3/8") is refused rather than silently widened, since it is
 * usually a typo. An IPv6 network inside ::ffff:0:0/96 with a prefix of at least 96 is
 * stored as the IPv4 network it denotes. Returns 0 or -1.
 */
int cidr_parse(const char *s, struct cidr *out) WUR;

/*
 * 1 when the address is inside the network. An IPv4 address and its IPv4-mapped IPv6
 * form (::ffff:a.b.c.d) are the same address: both match 10.0.0.0/8, and both match
 * an IPv6 network covering ::ffff:10.0.0.1 (::/0, say). Other embeddings (NAT64,
 * 6to4, ...) are distinct IPv6 addresses and match only IPv6 networks. The port is
 * ignored; families other than AF_INET and AF_INET6 never match.
 */
int cidr_contains(const struct cidr *c, const struct sockaddr *sa);

/* Write "10.0.0.0/8" or "fe80::/10" into buf (CIDR_STRLEN bytes is enough). */
void cidr_format(const struct cidr *c, char *buf, size_t len);

/*
 * Parse a list of networks, comma separated ("10.0.0.0/8, ::1") or as Postgres array
 * text ("{10.0.0.0/8,192.168.1.1/32}"); an empty list gives *n = 0 and *out = NULL.
 * On success *out is a malloc'd array the caller frees. On failure returns -1, *out
 * is NULL and *n is the 0-based index of the offending element (-1 when the list
 * itself is malformed), so that callers can name it in an error.
 */
int cidr_list_parse(const char *csv_or_pg_array, struct cidr **out, int *n) WUR;

enum netguard_class {
	NETGUARD_PUBLIC,      /* globally routable unicast */
	NETGUARD_LOOPBACK,    /* 127.0.0.0/8, ::1 */
	NETGUARD_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10 */
	NETGUARD_LINK_LOCAL,  /* 169.254/16 (cloud metadata), fe80::/10 */
	NETGUARD_MULTICAST,   /* 224.0.0.0/4, ff00::/8 */
	NETGUARD_UNSPECIFIED, /* 0.0.0.0/8, :: */
	NETGUARD_RESERVED,    /* documentation, benchmarking, 240/4, unallocated v6, non-IP */
};

/*
 * Classify the address a connection would go to. IPv4-mapped, IPv4-translated and
 * IPv4-compatible IPv6 addresses, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses
 * take the class of the IPv4 address they embed; Teredo (2001::/32) that of its client
 * address, or of its server when only that is non-public.
 */
enum netguard_class netguard_classify(const struct sockaddr *sa);

/* "public", "loopback", "private", "link-local", "multicast", "unspecified", "reserved". */
const char *netguard_class_name(enum netguard_class c);

/*
 * May hookd connect to this address? 0 when it is public or inside one of the allowed
 * networks; otherwise -1 with a reason fit for a delivery error, such as "127.0.0.1 is
 * a loopback address; add it to outbound_allow_networks to allow it". Call it on the
 * address actually connected to (after DNS), never on the host name.
 */
int netguard_check(
    const struct sockaddr *sa, const struct cidr *allow, int nallow, char *why, size_t whylen) WUR;

/* An outbound target, split for the HTTP client. */
struct target_url {
	char *scheme;     /* "http" or "https", lower case */
	char *host;       /* lower case; an IPv6 literal without its brackets */
	char *path_query; /* request target: path and query, "/" at least; no fragment */
	int port;         /* explicit, or 80/443 by scheme */
	int host_is_ip;   /* host is an IPv4 or IPv6 literal: no DNS, no SNI */
};

/*
 * Parse an absolute http(s) URL. Refused: other schemes, user info ("user:pass@"),
 * an empty host, an invalid or zero port, white space, control or non-ASCII bytes and
 * backslashes anywhere, IPv6 literals that are invalid or carry a zone id, and numeric
 * host names that are not a canonical dotted quad ("127.1", "0x7f.0.0.1",
 * "2130706433"), which resolvers would read as IPv4 in surprising ways. A fragment is
 * dropped, as HTTP clients do. Returns 0, or -1 with the reason in why (out is then
 * zeroed).
 */
int target_url_parse(const char *url, struct target_url *out, char *why, size_t whylen) WUR;
/* The Host header value: host, brackets around IPv6, ":port" unless the default. malloc'd. */
char *target_url_host_header(const struct target_url *u);
/* Free the fields and zero the struct (a zeroed or failed one is fine). */
void target_url_free(struct target_url *u);

#endif
