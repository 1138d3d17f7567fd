/* SPDX-License-Identifier: ISC */
/* Unit tests for the SSRF guard: address classes, CIDRs, allowlists, target URLs. */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "hookd/netguard.h"
#include "hookd/util.h"

/* A socket address for an IPv4 or IPv6 literal, port 8080 (ports never matter). */
static const struct sockaddr *
sa_of(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(8080);
	} else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(8080);
	} else {
		ck_abort_msg("bad test address %s", text);
	}
	return (const struct sockaddr *)ss;
}

struct class_case {
	const char *addr;
	enum netguard_class cls;
};

static void
check_classes(const struct class_case *cases, size_t n)
{
	struct sockaddr_storage ss;

	for (size_t i = 0; i < n; i++) {
		enum netguard_class got = netguard_classify(sa_of(cases[i].addr, &ss));

		ck_assert_msg(got == cases[i].cls, "%s: got %s, want %s", cases[i].addr,
		    netguard_class_name(got), netguard_class_name(cases[i].cls));
	}
}

/* --- classification ------------------------------------------------------------------ */

START_TEST(test_classify_v4)
{
	static const struct class_case cases[] = {
	    {"8.8.8.8", NETGUARD_PUBLIC},
	    {"1.1.1.1", NETGUARD_PUBLIC},
	    {"11.0.0.1", NETGUARD_PUBLIC},
	    {"223.255.255.255", NETGUARD_PUBLIC},
	    {"127.0.0.1", NETGUARD_LOOPBACK},
	    {"127.255.255.254", NETGUARD_LOOPBACK},
	    {"10.0.0.0", NETGUARD_PRIVATE},
	    {"10.255.255.255", NETGUARD_PRIVATE},
	    {"9.255.255.255", NETGUARD_PUBLIC},
	    {"172.16.0.1", NETGUARD_PRIVATE},
	    {"172.31.255.255", NETGUARD_PRIVATE},
	    {"172.15.255.255", NETGUARD_PUBLIC},
	    {"172.32.0.0", NETGUARD_PUBLIC},
	    {"192.168.1.100", NETGUARD_PRIVATE},
	    {"192.169.0.1", NETGUARD_PUBLIC},
	    {"100.64.0.1", NETGUARD_PRIVATE},
	    {"100.127.255.255", NETGUARD_PRIVATE},
	    {"100.63.255.255", NETGUARD_PUBLIC},
	    {"100.128.0.0", NETGUARD_PUBLIC},
	    {"169.254.169.254", NETGUARD_LINK_LOCAL},
	    {"169.254.0.1", NETGUARD_LINK_LOCAL},
	    {"169.255.0.1", NETGUARD_PUBLIC},
	    {"224.0.0.1", NETGUARD_MULTICAST},
	    {"239.255.255.250", NETGUARD_MULTICAST},
	    {"0.0.0.0", NETGUARD_UNSPECIFIED},
	    {"0.1.2.3", NETGUARD_UNSPECIFIED},
	    {"240.0.0.1", NETGUARD_RESERVED},
	    {"255.255.255.255", NETGUARD_RESERVED},
	    {"192.0.0.8", NETGUARD_RESERVED},
	    {"192.0.1.1", NETGUARD_PUBLIC},
	    {"192.0.2.1", NETGUARD_RESERVED},
	    {"192.88.99.1", NETGUARD_RESERVED},
	    {"198.18.0.1", NETGUARD_RESERVED},
	    {"198.19.255.255", NETGUARD_RESERVED},
	    {"198.20.0.0", NETGUARD_PUBLIC},
	    {"198.51.100.7", NETGUARD_RESERVED},
	    {"203.0.113.9", NETGUARD_RESERVED},
	    {"203.0.114.1", NETGUARD_PUBLIC},
	};

	check_classes(cases, ARRAY_SIZE(cases));
}
END_TEST

START_TEST(test_classify_v6)
{
	static const struct class_case cases[] = {
	    {"2606:4700:4700::1111", NETGUARD_PUBLIC},
	    {"2001:4860:4860::8888", NETGUARD_PUBLIC},
	    {"2a00:1450:4001::1", NETGUARD_PUBLIC},
	    {"::1", NETGUARD_LOOPBACK},
	    {"::", NETGUARD_UNSPECIFIED},
	    {"fc00::1", NETGUARD_PRIVATE},
	    {"fd12:3456:789a::1", NETGUARD_PRIVATE},
	    {"fd00:ec2::254", NETGUARD_PRIVATE}, /* AWS metadata over IPv6 */
	    {"fe80::1", NETGUARD_LINK_LOCAL},
	    {"febf:ffff::1", NETGUARD_LINK_LOCAL},
	    {"fec0::1", NETGUARD_PRIVATE},
	    {"ff02::1", NETGUARD_MULTICAST},
	    {"ff0e::101", NETGUARD_MULTICAST},
	    {"2001:db8::1", NETGUARD_RESERVED},
	    {"2001:db8:ffff::1", NETGUARD_RESERVED},
	    {"2001:2::1", NETGUARD_RESERVED},
	    {"2001:20::1", NETGUARD_RESERVED},
	    {"100::1", NETGUARD_RESERVED},
	    {"3fff::1", NETGUARD_RESERVED},
	    {"5f00::1", NETGUARD_RESERVED},
	    {"4000::1", NETGUARD_RESERVED},
	    {"1::1", NETGUARD_RESERVED},
	    {"64:ff9b:1::1", NETGUARD_RESERVED},
	};

	check_classes(cases, ARRAY_SIZE(cases));
}
END_TEST

START_TEST(test_classify_embedded)
{
	static const struct class_case cases[] = {
	    /* IPv4-mapped, -translated and -compatible. */
	    {"::ffff:127.0.0.1", NETGUARD_LOOPBACK},
	    {"::ffff:8.8.8.8", NETGUARD_PUBLIC},
	    {"::ffff:10.1.2.3", NETGUARD_PRIVATE},
	    {"::ffff:169.254.169.254", NETGUARD_LINK_LOCAL},
	    {"::ffff:0.0.0.0", NETGUARD_UNSPECIFIED},
	    {"::ffff:0:127.0.0.1", NETGUARD_LOOPBACK},
	    {"::127.0.0.1", NETGUARD_LOOPBACK},
	    {"::8.8.8.8", NETGUARD_PUBLIC},
	    {"::2", NETGUARD_UNSPECIFIED}, /* ::0.0.0.2 */
	    /* NAT64. */
	    {"64:ff9b::7f00:1", NETGUARD_LOOPBACK},
	    {"64:ff9b::8.8.8.8", NETGUARD_PUBLIC},
	    {"64:ff9b::a9fe:a9fe", NETGUARD_LINK_LOCAL},
	    {"64:ff9b::192.168.0.1", NETGUARD_PRIVATE},
	    /* 6to4. */
	    {"2002:7f00:1::1", NETGUARD_LOOPBACK},
	    {"2002:808:808::1", NETGUARD_PUBLIC},
	    {"2002:c0a8:101::1", NETGUARD_PRIVATE},
	    {"2002:a9fe:a9fe::", NETGUARD_LINK_LOCAL},
	    /* Teredo: client 127.0.0.1 (inverted 80ff:fffe), server 8.8.8.8. */
	    {"2001:0:808:808::80ff:fffe", NETGUARD_LOOPBACK},
	    /* client 8.8.4.4 (inverted f7f7:fbfb): public unless the server is not. */
	    {"2001:0:808:808::f7f7:fbfb", NETGUARD_PUBLIC},
	    {"2001:0:a00:1::f7f7:fbfb", NETGUARD_PRIVATE},
	};

	check_classes(cases, ARRAY_SIZE(cases));
}
END_TEST

START_TEST(test_classify_other)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_int_eq(netguard_classify((struct sockaddr *)&sun), NETGUARD_RESERVED);
	ck_assert_int_eq(netguard_classify(NULL), NETGUARD_RESERVED);
	ck_assert_str_eq(netguard_class_name(NETGUARD_PUBLIC), "public");
	ck_assert_str_eq(netguard_class_name(NETGUARD_LOOPBACK), "loopback");
	ck_assert_str_eq(netguard_class_name(NETGUARD_PRIVATE), "private");
	ck_assert_str_eq(netguard_class_name(NETGUARD_LINK_LOCAL), "link-local");
	ck_assert_str_eq(netguard_class_name(NETGUARD_MULTICAST), "multicast");
	ck_assert_str_eq(netguard_class_name(NETGUARD_UNSPECIFIED), "unspecified");
	ck_assert_str_eq(netguard_class_name(NETGUARD_RESERVED), "reserved");
}
END_TEST

/* --- CIDRs --------------------------------------------------------------------------- */

/* Parse s and compare its canonical text with want (NULL: must fail). */
static void
check_cidr(const char *s, const char *want)
{
	struct cidr c;
	char buf[CIDR_STRLEN];

	if (want == NULL) {
		ck_assert_msg(cidr_parse(s, &c) == -1, "\"%s\" should be refused", s);
		return;
	}
	ck_assert_msg(cidr_parse(s, &c) == 0, "\"%s\" should parse", s);
	cidr_format(&c, buf, sizeof(buf));
	ck_assert_msg(strcmp(buf, want) == 0, "\"%s\": got %s, want %s", s, buf, want);
}

START_TEST(test_cidr_parse)
{
	struct cidr c;

	check_cidr("10.0.0.0/8", "10.0.0.0/8");
	check_cidr("10.0.0.0/08", "10.0.0.0/8");
	check_cidr("192.168.1.100", "192.168.1.100/32");
	check_cidr("192.168.1.100/32", "192.168.1.100/32");
	check_cidr("0.0.0.0/0", "0.0.0.0/0");
	check_cidr("203.0.113.0/24", "203.0.113.0/24");
	check_cidr("::1", "::1/128");
	check_cidr("::/0", "::/0");
	check_cidr("fe80::/10", "fe80::/10");
	check_cidr("FC00::/7", "fc00::/7");
	check_cidr("2001:db8::/32", "2001:db8::/32");
	check_cidr("2001:db8::1/128", "2001:db8::1/128");
	/* Mapped networks become the IPv4 networks they denote. */
	check_cidr("::ffff:10.0.0.0/104", "10.0.0.0/8");
	check_cidr("::ffff:127.0.0.1", "127.0.0.1/32");
	check_cidr("::ffff:0:0/96", "0.0.0.0/0");
	check_cidr("::ffff:0:0/95", NULL); /* host bit 96..127 zero, but ffff past /95 */
	check_cidr("::/95", "::/95");

	/* Host bits set past the prefix: refused, as Postgres's cidr type does. */
	check_cidr("10.1.2.3/8", NULL);
	check_cidr("192.168.1.1/16", NULL);
	check_cidr("fe80::1/10", NULL);
	check_cidr("1.2.3.4/0", NULL);

	check_cidr("1.2.3.4/33", NULL);
	check_cidr("::/129", NULL);
	check_cidr("1.2.3.4/", NULL);
	check_cidr("/8", NULL);
	check_cidr("1.2.3.4/-1", NULL);
	check_cidr("1.2.3.4/ 8", NULL);
	check_cidr("1.2.3.4/8x", NULL);
	check_cidr("1.2.3.4/0032", NULL);
	check_cidr("1.2.3/24", NULL);
	check_cidr("01.2.3.4", NULL);
	check_cidr("1.2.3.256", NULL);
	check_cidr(" 1.2.3.4", NULL);
	check_cidr("fe80::1%eth0", NULL);
	check_cidr("[::1]", NULL);
	check_cidr("localhost", NULL);
	check_cidr("", NULL);
	ck_assert_int_eq(cidr_parse(NULL, &c), -1);

	ck_assert_int_eq(cidr_parse("10.0.0.0/8", &c), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_int_eq(c.bits, 8);
	ck_assert_int_eq(cidr_parse("::1", &c), 0);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_int_eq(c.bits, 128);
}
END_TEST

static int
contains(const char *net, const char *addr)
{
	struct sockaddr_storage ss;
	struct cidr c;

	ck_assert_msg(cidr_parse(net, &c) == 0, "bad network %s", net);
	return cidr_contains(&c, sa_of(addr, &ss));
}

START_TEST(test_cidr_contains)
{
	struct sockaddr_un sun;
	struct cidr c;

	ck_assert(contains("10.0.0.0/8", "10.0.0.0"));
	ck_assert(contains("10.0.0.0/8", "10.255.255.255"));
	ck_assert(!contains("10.0.0.0/8", "11.0.0.0"));
	ck_assert(!contains("10.0.0.0/8", "9.255.255.255"));
	ck_assert(contains("172.16.0.0/12", "172.31.1.1"));
	ck_assert(!contains("172.16.0.0/12", "172.32.1.1"));
	ck_assert(contains("127.0.0.0/8", "127.0.0.1"));
	/* /32 and /0. */
	ck_assert(contains("1.2.3.4/32", "1.2.3.4"));
	ck_assert(!contains("1.2.3.4/32", "1.2.3.5"));
	ck_assert(contains("0.0.0.0/0", "8.8.8.8"));
	ck_assert(contains("0.0.0.0/0", "255.255.255.255"));
	ck_assert(!contains("0.0.0.0/0", "::1"));
	ck_assert(!contains("0.0.0.0/0", "2001:db8::1"));
	/* IPv6, /128 and /0. */
	ck_assert(contains("::1/128", "::1"));
	ck_assert(!contains("::1/128", "::2"));
	ck_assert(contains("2001:db8::/32", "2001:db8:ffff::1"));
	ck_assert(!contains("2001:db8::/32", "2001:db9::"));
	ck_assert(contains("fe80::/10", "febf::1"));
	ck_assert(!contains("fe80::/10", "fec0::1"));
	ck_assert(contains("::/0", "::1"));
	ck_assert(contains("::/0", "2001:db8::1"));
	/* An IPv4 address and its mapped form are one address. */
	ck_assert(contains("10.0.0.0/8", "::ffff:10.1.1.1"));
	ck_assert(contains("127.0.0.0/8", "::ffff:127.0.0.1"));
	ck_assert(!contains("127.0.0.0/8", "::ffff:128.0.0.1"));
	ck_assert(contains("0.0.0.0/0", "::ffff:1.2.3.4"));
	ck_assert(contains("::ffff:127.0.0.1", "127.0.0.1"));
	ck_assert(contains("::/0", "127.0.0.1"));
	ck_assert(!contains("::1/128", "127.0.0.1"));
	/* Other embeddings are distinct IPv6 addresses. */
	ck_assert(!contains("127.0.0.0/8", "64:ff9b::7f00:1"));
	ck_assert(!contains("127.0.0.0/8", "::127.0.0.1"));
	ck_assert(!contains("127.0.0.0/8", "2002:7f00:1::1"));
	ck_assert(contains("64:ff9b::/96", "64:ff9b::7f00:1"));

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_int_eq(cidr_parse("0.0.0.0/0", &c), 0);
	ck_assert(!cidr_contains(&c, (struct sockaddr *)&sun));
	ck_assert(!cidr_contains(&c, NULL));
}
END_TEST

START_TEST(test_cidr_list)
{
	struct cidr *list;
	char buf[CIDR_STRLEN];
	int n;

	ck_assert_int_eq(cidr_list_parse("10.0.0.0/8,192.168.1.1/32", &list, &n), 0);
	ck_assert_int_eq(n, 2);
	cidr_format(&list[1], buf, sizeof(buf));
	ck_assert_str_eq(buf, "192.168.1.1/32");
	free(list);

	ck_assert_int_eq(cidr_list_parse("{10.0.0.0/8,192.168.1.1/32}", &list, &n), 0);
	ck_assert_int_eq(n, 2);
	cidr_format(&list[0], buf, sizeof(buf));
	ck_assert_str_eq(buf, "10.0.0.0/8");
	free(list);

	ck_assert_int_eq(cidr_list_parse("  127.0.0.0/8 , ::1 ,fc00::/7  ", &list, &n), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(list[1].family, AF_INET6);
	free(list);

	ck_assert_int_eq(cidr_list_parse("{\"10.0.0.0/8\",\"::1/128\"}", &list, &n), 0);
	ck_assert_int_eq(n, 2);
	free(list);

	/* Seed 003's ip_whitelist example. */
	ck_assert_int_eq(cidr_list_parse("192.168.1.100, 203.0.113.0/24", &list, &n), 0);
	ck_assert_int_eq(n, 2);
	free(list);

	ck_assert_int_eq(cidr_list_parse("", &list, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_ptr_null(list);
	ck_assert_int_eq(cidr_list_parse("{}", &list, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_ptr_null(list);
	ck_assert_int_eq(cidr_list_parse(NULL, &list, &n), 0);
	ck_assert_int_eq(n, 0);

	/* Failures name the offending element (or -1 for the list's own syntax). */
	ck_assert_int_eq(cidr_list_parse("10.0.0.0/8,bogus,::1", &list, &n), -1);
	ck_assert_ptr_null(list);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(cidr_list_parse("{10.1.0.0/8}", &list, &n), -1);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(cidr_list_parse("{10.0.0.0/8", &list, &n), -1);
	ck_assert_int_eq(n, -1);
	ck_assert_int_eq(cidr_list_parse("10.0.0.0/8,,::1", &list, &n), -1);
	ck_assert_int_eq(n, -1);
	ck_assert_int_eq(cidr_list_parse("10.0.0.0/8,", &list, &n), -1);
	ck_assert_int_eq(cidr_list_parse("{10.0.0.0/8,\"::1}", &list, &n), -1);
	ck_assert_int_eq(cidr_list_parse("{{10.0.0.0/8}}", &list, &n), -1);
	ck_assert_ptr_null(list);
}
END_TEST

/* --- the guard ----------------------------------------------------------------------- */

START_TEST(test_netguard_check)
{
	struct sockaddr_storage ss;
	struct cidr *allow;
	char why[256];
	int n;

	/* Public addresses pass with no allowlist. */
	ck_assert_int_eq(netguard_check(sa_of("8.8.8.8", &ss), NULL, 0, why, sizeof(why)), 0);
	ck_assert_int_eq(
	    netguard_check(sa_of("2606:4700:4700::1111", &ss), NULL, 0, why, sizeof(why)), 0);
	ck_assert_int_eq(
	    netguard_check(sa_of("::ffff:8.8.8.8", &ss), NULL, 0, why, sizeof(why)), 0);

	/* Refusals explain themselves. */
	ck_assert_int_eq(netguard_check(sa_of("127.0.0.1", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "127.0.0.1 is a loopback address; add it to "
	                      "outbound_allow_networks to allow it");
	ck_assert_int_eq(netguard_check(sa_of("::1", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "::1 is a loopback address; add it to outbound_allow_networks to "
	                      "allow it");
	ck_assert_int_eq(netguard_check(sa_of("10.0.0.1", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "10.0.0.1 is a private address; add it to outbound_allow_networks "
	                      "to allow it");
	ck_assert_int_eq(
	    netguard_check(sa_of("169.254.169.254", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "169.254.169.254 is a link-local address (the cloud metadata "
	                      "service); add it to outbound_allow_networks to allow it");
	ck_assert_int_eq(netguard_check(sa_of("0.0.0.0", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "0.0.0.0 is an unspecified address; add it to "
	                      "outbound_allow_networks to allow it");
	ck_assert_int_eq(netguard_check(sa_of("224.0.0.251", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "multicast"));
	ck_assert_int_eq(netguard_check(sa_of("198.51.100.1", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "reserved"));
	ck_assert_int_eq(
	    netguard_check(sa_of("64:ff9b::7f00:1", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "64:ff9b::7f00:1 embeds 127.0.0.1, a loopback address; add "
	                      "64:ff9b::7f00:1 to outbound_allow_networks to allow it");
	ck_assert_int_eq(
	    netguard_check(sa_of("2002:a9fe:a9fe::", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "metadata"));
	ck_assert_int_eq(
	    netguard_check(sa_of("::ffff:127.0.0.1", &ss), NULL, 0, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "loopback"));

	/* The tests' allowlist: 127.0.0.0/8 lets loopback IPv4 through, and only that. */
	ck_assert_int_eq(cidr_list_parse("127.0.0.0/8", &allow, &n), 0);
	ck_assert_int_eq(netguard_check(sa_of("127.0.0.1", &ss), allow, n, why, sizeof(why)), 0);
	ck_assert_int_eq(netguard_check(sa_of("127.3.2.1", &ss), allow, n, why, sizeof(why)), 0);
	ck_assert_int_eq(
	    netguard_check(sa_of("::ffff:127.0.0.1", &ss), allow, n, why, sizeof(why)), 0);
	ck_assert_int_eq(netguard_check(sa_of("::1", &ss), allow, n, why, sizeof(why)), -1);
	ck_assert_int_eq(netguard_check(sa_of("10.0.0.1", &ss), allow, n, why, sizeof(why)), -1);
	ck_assert_int_eq(
	    netguard_check(sa_of("64:ff9b::7f00:1", &ss), allow, n, why, sizeof(why)), -1);
	ck_assert_int_eq(netguard_check(sa_of("8.8.8.8", &ss), allow, n, why, sizeof(why)), 0);
	free(allow);

	ck_assert_int_eq(cidr_list_parse("{127.0.0.0/8,::1/128,10.0.0.0/8}", &allow, &n), 0);
	ck_assert_int_eq(netguard_check(sa_of("::1", &ss), allow, n, why, sizeof(why)), 0);
	ck_assert_int_eq(netguard_check(sa_of("10.9.8.7", &ss), allow, n, why, sizeof(why)), 0);
	ck_assert_int_eq(netguard_check(sa_of("192.168.0.1", &ss), allow, n, why, sizeof(why)), -1);
	free(allow);

	/* A small buffer truncates the reason safely. */
	ck_assert_int_eq(netguard_check(sa_of("127.0.0.1", &ss), NULL, 0, why, 10), -1);
	ck_assert_str_eq(why, "127.0.0.1");
}
END_TEST

/* --- target URLs --------------------------------------------------------------------- */

static void
check_url(const char *url, const char *scheme, const char *host, int port, const char *pq,
    int is_ip, const char *host_header)
{
	struct target_url u;
	char why[256] = "";
	char *hh;

	ck_assert_msg(target_url_parse(url, &u, why, sizeof(why)) == 0, "%s: %s", url, why);
	ck_assert_str_eq(u.scheme, scheme);
	ck_assert_str_eq(u.host, host);
	ck_assert_int_eq(u.port, port);
	ck_assert_str_eq(u.path_query, pq);
	ck_assert_int_eq(u.host_is_ip, is_ip);
	hh = target_url_host_header(&u);
	ck_assert_str_eq(hh, host_header);
	free(hh);
	target_url_free(&u);
	ck_assert_ptr_null(u.host);
}

START_TEST(test_url_good)
{
	check_url("https://example.com", "https", "example.com", 443, "/", 0, "example.com");
	check_url("http://example.com/", "http", "example.com", 80, "/", 0, "example.com");
	check_url("HTTP://Example.COM:8080/a/B?c=D&e=%20#frag", "http", "example.com", 8080,
	    "/a/B?c=D&e=%20", 0, "example.com:8080");
	check_url("https://example.com:443/x", "https", "example.com", 443, "/x", 0, "example.com");
	check_url(
	    "https://example.com:80/x", "https", "example.com", 80, "/x", 0, "example.com:80");
	check_url("http://example.com?x=1", "http", "example.com", 80, "/?x=1", 0, "example.com");
	check_url("http://example.com#top", "http", "example.com", 80, "/", 0, "example.com");
	check_url("http://example.com:/p", "http", "example.com", 80, "/p", 0, "example.com");
	check_url(
	    "http://127.0.0.1:9000/hook", "http", "127.0.0.1", 9000, "/hook", 1, "127.0.0.1:9000");
	check_url("http://[::1]:8080/x", "http", "::1", 8080, "/x", 1, "[::1]:8080");
	check_url("https://[2001:DB8::1]/", "https", "2001:db8::1", 443, "/", 1, "[2001:db8::1]");
	check_url("http://[::ffff:127.0.0.1]/", "http", "::ffff:127.0.0.1", 80, "/", 1,
	    "[::ffff:127.0.0.1]");
	check_url("http://my_host.internal-1.example./in", "http", "my_host.internal-1.example.",
	    80, "/in", 0, "my_host.internal-1.example.");
	check_url(
	    "http://localhost:65535/a", "http", "localhost", 65535, "/a", 0, "localhost:65535");
	check_url("http://a1.b2/x", "http", "a1.b2", 80, "/x", 0, "a1.b2");
}
END_TEST

START_TEST(test_url_bad)
{
	static const char *const bad[] = {
	    "",
	    "example.com",
	    "ftp://example.com/",
	    "javascript:alert(1)",
	    "file:///etc/passwd",
	    "httpx://example.com/",
	    "http:/example.com",
	    "http:example.com",
	    "http://",
	    "http:///path",
	    "http://:80/",
	    "http://?q",
	    "http://user:pw@example.com/",
	    "http://user@example.com/",
	    "http://@example.com/",
	    "http://example.com@evil.com/",
	    "http://example.com:0/",
	    "http://example.com:65536/",
	    "http://example.com:123456/",
	    "http://example.com:8a/",
	    "http://example.com:-1/",
	    "http://example.com:80:80/",
	    "http://exa mple.com/",
	    "http://example.com/a b",
	    "http://example.com/\r\nX-Evil: 1",
	    "http://example.com/\t",
	    "http://example.com/\x7f",
	    " http://example.com/",
	    "http://ex\\ample.com/",
	    "http://example.com\\@evil.com/",
	    "http://ex\xc3\xa4mple.com/",
	    "http://example.com/caf\xc3\xa9",
	    "http://exa%41mple.com/",
	    "http://example..com/",
	    "http://.example.com/",
	    "http://[::1/",
	    "http://[::1",
	    "http://[]/",
	    "http://[fe80::1%25eth0]/",
	    "http://[not-v6]/",
	    "http://[::1]x/",
	    "http://[127.0.0.1]/",
	    "http://::1/",
	    "http://127.1/",
	    "http://127.0.1/",
	    "http://2130706433/",
	    "http://0x7f000001/",
	    "http://0x7f.0.0.1/",
	    "http://0177.0.0.1/",
	    "http://127.0.0.1./",
	    "http://1.2.3.4.5/",
	    "http://example.123/",
	};
	struct target_url u;
	char why[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		why[0] = '\0';
		ck_assert_msg(target_url_parse(bad[i], &u, why, sizeof(why)) == -1,
		    "\"%s\" should be refused", bad[i]);
		ck_assert_msg(why[0] != '\0', "\"%s\": no reason given", bad[i]);
		ck_assert_ptr_null(u.scheme);
		ck_assert_ptr_null(u.host);
		ck_assert_ptr_null(u.path_query);
		target_url_free(&u); /* harmless after a failure */
	}
	ck_assert_int_eq(target_url_parse(NULL, &u, why, sizeof(why)), -1);

	/* A few reasons, as a user would read them. */
	ck_assert_int_eq(target_url_parse("ftp://x/", &u, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "URL scheme must be http or https");
	ck_assert_int_eq(target_url_parse("http://u:p@x/", &u, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "user info"));
	ck_assert_int_eq(target_url_parse("http://x:99999/", &u, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "port"));
	ck_assert_int_eq(target_url_parse("http://127.1/", &u, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "dotted-quad"));
	ck_assert_int_eq(target_url_parse("http://[fe80::1%eth0]/", &u, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "zone"));
}
END_TEST

static Suite *
netguard_suite(void)
{
	Suite *s = suite_create("netguard");
	TCase *tc = tcase_create("netguard");

	tcase_add_test(tc, test_classify_v4);
	tcase_add_test(tc, test_classify_v6);
	tcase_add_test(tc, test_classify_embedded);
	tcase_add_test(tc, test_classify_other);
	tcase_add_test(tc, test_cidr_parse);
	tcase_add_test(tc, test_cidr_contains);
	tcase_add_test(tc, test_cidr_list);
	tcase_add_test(tc, test_netguard_check);
	tcase_add_test(tc, test_url_good);
	tcase_add_test(tc, test_url_bad);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(netguard_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
