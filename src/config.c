/* SPDX-License-Identifier: ISC */
/* Configuration: one declarative key table, a key = value file, environment overrides. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/util.h>
#include <libpq-fe.h>

#include "hookd/config.h"
#include "hookd/log.h"
#include "hookd/netguard.h"
#include "hookd/subscription_input.h"

#define KEY(name, type, min, max, def, reload, env, help)                                          \
	{                                                                                          \
#name, type, offsetof(struct config, name), min, max, def, reload, env, help       \
	}
#define MS(x)  ((int64_t)(x))
#define SEC(x) ((int64_t)(x)*1000)
#define KIB(x) ((int64_t)(x)*1024)
#define MIB(x) ((int64_t)(x)*1024 * 1024)

static const struct config_key keys[] = {
    KEY(listen, CONFIG_STRING, 0, 0, "127.0.0.1:8080", 0, NULL,
        "Addresses to serve HTTP on, comma separated (host:port, [v6]:port)."),
    KEY(database_url, CONFIG_STRING, 0, 0, "", 0, "DATABASE_URL",
        "libpq connection string or URL; empty means the private cluster under ./var."),
    KEY(db_pool_size, CONFIG_INT, 1, 64, "4", 0, NULL,
        "Connections in the query pool (the LISTEN connection is extra)."),
    KEY(db_connect_timeout, CONFIG_DURATION, MS(100), SEC(120), "5s", 1, NULL,
        "How long one connection attempt may take, name resolution included."),
    KEY(db_reconnect_min, CONFIG_DURATION, MS(10), SEC(60), "100ms", 1, NULL,
        "First delay before reconnecting after a failure; doubles up to db_reconnect_max."),
    KEY(db_reconnect_max, CONFIG_DURATION, MS(10), SEC(600), "2s", 1, NULL,
        "Longest delay between reconnection attempts (jitter of +-20% is added)."),
    KEY(db_pipeline_depth, CONFIG_INT, 1, 4096, "64", 1, NULL,
        "Statement groups one connection may have in flight in pipeline mode."),
    KEY(db_statement_timeout, CONFIG_DURATION, 0, SEC(3600), "30s", 0, NULL,
        "Server-side statement_timeout for pool connections (0 disables)."),
    KEY(db_queue_timeout, CONFIG_DURATION, MS(10), SEC(600), "5s", 1, NULL,
        "How long a query may wait for a connection before it fails."),
    KEY(auto_migrate, CONFIG_BOOL, 0, 1, "on", 0, NULL,
        "Apply pending schema migrations when a connection is first made."),
    KEY(http_max_body_size, CONFIG_SIZE, KIB(1), MIB(256), "1MiB", 1, NULL,
        "Largest request body; larger ones get 413 with a JSON error."),
    KEY(http_max_header_size, CONFIG_SIZE, KIB(1), MIB(1), "32KiB", 1, NULL,
        "Largest request line plus headers."),
    KEY(http_timeout, CONFIG_DURATION, MS(100), SEC(3600), "30s", 1, NULL,
        "Read and write timeout on client connections; idle keep-alive connections close after "
        "it."),
    KEY(http_max_connections, CONFIG_INT, 1, 1000000, "10000", 1, NULL,
        "Client connections held at once; past it hookd stops accepting until one closes."),
    KEY(shutdown_timeout, CONFIG_DURATION, 0, SEC(3600), "30s", 1, NULL,
        "On SIGTERM, how long in-flight requests and queries may take before hookd exits anyway."),
    KEY(log_level, CONFIG_LOGLEVEL, 0, 3, "info", 1, NULL, "error, warn, info or debug."),
    KEY(master_key_file, CONFIG_STRING, 0, 0, "var/master.key", 0, NULL,
        "File holding the 32-byte key that seals secrets at rest (made on first run); "
        "HOOKD_MASTER_KEY (base64) takes precedence."),
    KEY(trusted_proxies, CONFIG_STRING, 0, 0, "", 1, NULL,
        "CIDRs of proxies whose X-Forwarded-For names the real client (for IP allowlists)."),
    KEY(ingest_batch_max, CONFIG_INT, 1, 10000, "256", 1, NULL,
        "Events one group commit may carry."),
    KEY(ingest_inflight_max, CONFIG_INT, 1, 64, "3", 1, NULL,
        "Group commits in flight at once; requests arriving meanwhile join the next one."),
    KEY(ingest_batch_min, CONFIG_INT, 1, 10000, "16", 1, NULL,
        "Events that must be waiting before a group commit starts while another is in "
        "flight (with none in flight one starts at once)."),
    KEY(process_batch, CONFIG_INT, 1, 10000, "64", 1, NULL,
        "Inbound events the handler worker leases at once."),
    KEY(process_lease, CONFIG_DURATION, SEC(1), SEC(3600), "60s", 1, NULL,
        "How long a leased inbound event belongs to this process before another may take it."),
    KEY(process_poll_interval, CONFIG_DURATION, MS(50), SEC(600), "1s", 1, NULL,
        "How often the handler worker looks for due events (it is also woken on new work)."),
    KEY(outbound_allow_networks, CONFIG_STRING, 0, 0, "", 1, NULL,
        "CIDRs deliveries may reach although the SSRF guard refuses them (private, loopback...)."),
    KEY(outbound_tls_verify, CONFIG_BOOL, 0, 1, "on", 1, NULL,
        "Verify the certificates and host names of HTTPS targets."),
    KEY(outbound_ca_file, CONFIG_STRING, 0, 0, "", 1, NULL,
        "Extra CA certificates (PEM) trusted for HTTPS targets, besides the system store."),
    KEY(outbound_max_per_origin, CONFIG_INT, 1, 1024, "32", 1, NULL,
        "Connections hookd keeps to one target origin (scheme, host, port)."),
    KEY(outbound_idle_timeout, CONFIG_DURATION, SEC(1), SEC(3600), "60s", 1, NULL,
        "How long an idle keep-alive connection to a target stays open."),
    KEY(deliver_batch, CONFIG_INT, 1, 10000, "256", 1, NULL,
        "Deliveries the worker leases at once."),
    KEY(deliver_concurrency, CONFIG_INT, 1, 100000, "1024", 1, NULL,
        "Deliveries one process has in flight at once."),
    KEY(deliver_lease, CONFIG_DURATION, SEC(5), SEC(3600), "120s", 1, NULL,
        "How long leased deliveries belong to this process; it is stretched to cover the "
        "subscription's timeout. Another process retries them once it has passed."),
    KEY(deliver_poll_interval, CONFIG_DURATION, MS(50), SEC(600), "1s", 1, NULL,
        "How often the worker looks for due deliveries (it is also woken by NOTIFY)."),
    KEY(retry_after_max, CONFIG_DURATION, SEC(1), SEC(86400), "10m", 1, NULL,
        "The longest Retry-After a target's 429 or 503 may ask for."),
    KEY(disable_after_dead, CONFIG_INT, 0, 100000, "10", 1, NULL,
        "Consecutive dead deliveries that disable a subscription (0: never)."),
    KEY(event_types, CONFIG_STRING, 0, 0, "", 1, NULL,
        "Declared event types, comma separated, listed by GET /api/v1/event-types."),
    KEY(capture_batch, CONFIG_INT, 1, 100000, "500", 1, NULL,
        "Row changes turned into messages per transaction."),
    KEY(capture_poll_interval, CONFIG_DURATION, MS(50), SEC(600), "1s", 1, NULL,
        "How often the change reader looks for changes besides NOTIFY wake-ups."),
    KEY(capture_retention, CONFIG_DURATION, 0, SEC(86400 * 30), "1h", 1, NULL,
        "How long read changes stay in hookd.changes before they are deleted."),
};

const struct config_key *
config_keys(size_t *n)
{
	*n = ARRAY_SIZE(keys);
	return keys;
}

static const struct config_key *
find_key(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

static void set_error(char **err, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
set_error(char **err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	free(*err);
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
}

int
config_parse_bool(const char *s, int64_t *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* A non-negative number followed by a unit from the table; returns 0 or -1. */
static int
parse_with_unit(const char *s, const char *const *units, const int64_t *mult, size_t nunits,
    int64_t bare, int64_t *out)
{
	char *end;
	double v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0)
		return -1;
	while (*end == ' ')
		end++;
	if (*end == '\0') {
		v *= (double)bare;
	} else {
		size_t i;

		for (i = 0; i < nunits; i++) {
			if (strcasecmp(end, units[i]) == 0)
				break;
		}
		if (i == nunits)
			return -1;
		v *= (double)mult[i];
	}
	if (v > 9.0e18)
		return -1;
	*out = (int64_t)v;
	return 0;
}

int
config_parse_duration(const char *s, int64_t *ms)
{
	static const char *const units[] = {"ms", "s", "sec", "m", "min", "h"};
	static const int64_t mult[] = {1, 1000, 1000, 60000, 60000, 3600000};

	return parse_with_unit(s, units, mult, ARRAY_SIZE(units), 1000, ms);
}

int
config_parse_size(const char *s, int64_t *bytes)
{
	static const char *const units[] = {
	    "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib"};
	static const int64_t mult[] = {
	    1, KIB(1), KIB(1), KIB(1), MIB(1), MIB(1), MIB(1), MIB(1024), MIB(1024), MIB(1024)};

	return parse_with_unit(s, units, mult, ARRAY_SIZE(units), 1, bytes);
}

int
config_set(struct config *cfg, const char *name, const char *value, char **err)
{
	const struct config_key *k = find_key(name);
	char *base = (char *)cfg;
	int64_t v = 0;
	int rc = 0;

	if (k == NULL) {
		set_error(err, "unknown key \"%s\"", name);
		return -1;
	}
	switch (k->type) {
	case CONFIG_STRING: {
		char **slot = (char **)(void *)(base + k->offset);

		free(*slot);
		*slot = xstrdup(value);
		return 0;
	}
	case CONFIG_INT: rc = parse_int64(value, INT64_MIN, INT64_MAX, &v); break;
	case CONFIG_BOOL: rc = config_parse_bool(value, &v); break;
	case CONFIG_DURATION: rc = config_parse_duration(value, &v); break;
	case CONFIG_SIZE: rc = config_parse_size(value, &v); break;
	case CONFIG_LOGLEVEL: {
		enum log_level lv;

		rc = log_parse_level(value, &lv);
		v = lv;
		break;
	}
	}
	if (rc != 0) {
		set_error(err, "%s: cannot parse \"%s\"", name, value);
		return -1;
	}
	if (k->type != CONFIG_BOOL && k->type != CONFIG_LOGLEVEL && (v < k->min || v > k->max)) {
		set_error(err, "%s: %s is out of range [%lld, %lld]", name, value,
		    (long long)k->min, (long long)k->max);
		return -1;
	}
	*(int64_t *)(void *)(base + k->offset) = v;
	return 0;
}

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char *err = NULL;

		if (config_set(cfg, keys[i].name, keys[i].def, &err) != 0) {
			/* A bad default is a programming error. */
			log_error("config default: %s", err);
			abort();
		}
	}
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
config_apply_text(struct config *cfg, const char *text, const char *origin, char **err)
{
	char *copy = xstrdup(text), *line = copy, *next;
	int lineno = 0, rc = 0;

	for (; line != NULL; line = next) {
		char *eq, *key, *value, *inner = NULL;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		eq = strchr(line, '=');
		if (eq == NULL) {
			set_error(err, "%s:%d: expected key = value", origin, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = trim(line);
		value = trim(eq + 1);
		if (*value == '"') {
			size_t n = strlen(value);

			if (n < 2 || value[n - 1] != '"') {
				set_error(err, "%s:%d: unterminated quote", origin, lineno);
				rc = -1;
				break;
			}
			value[n - 1] = '\0';
			value++;
		} else {
			char *hash = strstr(value, " #");

			if (hash != NULL)
				*hash = '\0';
			value = trim(value);
		}
		if (config_set(cfg, key, value, &inner) != 0) {
			set_error(err, "%s:%d: %s", origin, lineno, inner ? inner : "invalid");
			free(inner);
			rc = -1;
			break;
		}
	}
	free(copy);
	return rc;
}

int
config_apply_env(struct config *cfg, char **err)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char envname[128];
		const char *v;
		size_t j;

		if (keys[i].env != NULL && (v = getenv(keys[i].env)) != NULL && *v != '\0') {
			if (config_set(cfg, keys[i].name, v, err) != 0)
				return -1;
		}
		snprintf(envname, sizeof(envname), "HOOKD_%s", keys[i].name);
		for (j = 6; envname[j] != '\0'; j++)
			envname[j] = (char)toupper((unsigned char)envname[j]);
		if ((v = getenv(envname)) != NULL) {
			if (config_set(cfg, keys[i].name, v, err) != 0) {
				char *inner = *err;

				*err = NULL;
				set_error(err, "%s: %s", envname, inner ? inner : "invalid");
				free(inner);
				return -1;
			}
		}
	}
	return 0;
}

/* Parse one "host:port" ("*:port", "[v6]:port", "localhost:port") into l. */
static int
listen_addr_parse(const char *text, struct config_listen *l)
{
	char buf[sizeof(l->text) + 16];

	if (strncmp(text, "*:", 2) == 0)
		snprintf(buf, sizeof(buf), "0.0.0.0:%s", text + 2);
	else if (strncmp(text, "localhost:", 10) == 0)
		snprintf(buf, sizeof(buf), "127.0.0.1:%s", text + 10);
	else if (strrchr(text, ':') == NULL)
		return -1;
	else
		snprintf(buf, sizeof(buf), "%s", text);
	l->addrlen = (int)sizeof(l->addr);
	return evutil_parse_sockaddr_port(buf, (struct sockaddr *)&l->addr, &l->addrlen);
}

int
config_listen_parse(const char *addrs, struct config_listen *out, int *n, char **err)
{
	const char *p = addrs;

	*n = 0;
	while (*p != '\0') {
		const char *end = strchr(p, ','), *a = p, *b;
		struct config_listen *l;

		if (end == NULL)
			end = p + strlen(p);
		b = end;
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		p = *end == ',' ? end + 1 : end;
		if (a == b)
			continue;
		if (*n == CONFIG_MAX_LISTEN) {
			set_error(
			    err, "listen: too many addresses (at most %d)", CONFIG_MAX_LISTEN);
			return -1;
		}
		l = &out[*n];
		if ((size_t)(b - a) >= sizeof(l->text)) {
			set_error(err, "listen: address \"%.40s...\" is too long", a);
			return -1;
		}
		memcpy(l->text, a, (size_t)(b - a));
		l->text[b - a] = '\0';
		if (listen_addr_parse(l->text, l) != 0) {
			set_error(err,
			    "listen: cannot parse \"%s\" (want host:port, [v6]:port, *:port or "
			    "localhost:port, with a numeric host)",
			    l->text);
			return -1;
		}
		(*n)++;
	}
	if (*n == 0) {
		set_error(err, "listen must name at least one address");
		return -1;
	}
	return 0;
}

/* Where a password sits in a libpq URL or key=value string: [*at, *at + *len). */
static void
find_password(const char *url, const char **at, size_t *len)
{
	const char *p, *scheme = strstr(url, "://");

	*at = NULL;
	*len = 0;
	if (scheme != NULL) {
		const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#"), *amp;
		const char *atsign = memchr(auth, '@', (size_t)(end - auth));
		const char *colon = atsign ? memchr(auth, ':', (size_t)(atsign - auth)) : NULL;

		if (colon != NULL) {
			*at = colon + 1;
			*len = (size_t)(atsign - colon - 1);
			return;
		}
		if ((p = strstr(end, "password=")) != NULL) {
			*at = p + 9;
			amp = strchr(*at, '&');
			*len = amp ? (size_t)(amp - *at) : strlen(*at);
		}
		return;
	}
	for (p = strstr(url, "password"); p != NULL; p = strstr(p + 1, "password")) {
		const char *v = p + 8;

		while (*v == ' ')
			v++;
		if (*v != '=')
			continue;
		for (v++; *v == ' '; v++)
			;
		if (*v == '\'') {
			const char *q = strchr(v + 1, '\'');

			*at = v + 1;
			*len = q ? (size_t)(q - v - 1) : strlen(v + 1);
		} else {
			*at = v;
			*len = strcspn(v, " \t\n");
		}
		return;
	}
}

/* libpq's parse error for url, with any copy of its password replaced by "***". */
static char *
conninfo_error(const char *url, const char *msg)
{
	const char *pw;
	size_t pwlen, mlen = strlen(msg);
	char *out = xmalloc(mlen * 3 + 1), *o = out;

	find_password(url, &pw, &pwlen);
	for (const char *m = msg; *m != '\0';) {
		if (pwlen > 0 && strncmp(m, pw, pwlen) == 0) {
			memcpy(o, "***", 3);
			o += 3;
			m += pwlen;
		} else {
			*o++ = *m++;
		}
	}
	while (o > out && isspace((unsigned char)o[-1]))
		o--;
	*o = '\0';
	return out;
}

/* A CIDR list key (comma separated, or a Postgres array literal). */
static int
validate_cidrs(const char *name, const char *text, char **err)
{
	struct cidr *list = NULL;
	int n = 0;

	if (text == NULL || *text == '\0')
		return 0;
	if (cidr_list_parse(text, &list, &n) != 0) {
		if (n < 0)
			set_error(err, "%s: cannot parse \"%s\" as a list of networks", name, text);
		else
			set_error(err,
			    "%s: element %d of \"%s\" is not a network (want an address or "
			    "address/bits, e.g. 10.0.0.0/8 or ::1/128)",
			    name, n + 1, text);
		return -1;
	}
	free(list);
	return 0;
}

int
config_validate(const struct config *cfg, char **err)
{
	struct config_listen addrs[CONFIG_MAX_LISTEN];
	struct declared_event_type *types;
	int n, rc = 0;

	if (cfg->db_reconnect_min > cfg->db_reconnect_max) {
		set_error(err, "db_reconnect_min must not exceed db_reconnect_max");
		return -1;
	}
	if (config_listen_parse(cfg->listen, addrs, &n, err) != 0)
		return -1;
	if (*cfg->database_url != '\0') {
		char *msg = NULL;
		PQconninfoOption *opts = PQconninfoParse(cfg->database_url, &msg);

		if (opts == NULL) {
			/* libpq may quote the string, password included: mask it. */
			char *why = conninfo_error(cfg->database_url, msg ? msg : "out of memory");

			set_error(err, "database_url: libpq cannot parse it: %s", why);
			free(why);
			PQfreemem(msg);
			return -1;
		}
		PQconninfoFree(opts);
	}
	if (validate_cidrs("trusted_proxies", cfg->trusted_proxies, err) != 0 ||
	    validate_cidrs("outbound_allow_networks", cfg->outbound_allow_networks, err) != 0)
		return -1;
	types = subscription_event_types_parse(cfg->event_types, &n);
	for (int i = 0; i < n && rc == 0; i++) {
		if (!subscription_event_type_valid(types[i].name)) {
			set_error(err,
			    "event_types: \"%.80s\" is not an event type (a letter, digit or '_', "
			    "then also '.', ':', '/' or '-'; at most %d bytes)",
			    types[i].name, SUB_EVENT_TYPE_MAX_LEN);
			rc = -1;
		}
	}
	subscription_event_types_free(types, n);
	if (rc != 0)
		return -1;
	if (*cfg->outbound_ca_file != '\0' && access(cfg->outbound_ca_file, R_OK) != 0) {
		set_error(err, "outbound_ca_file: cannot read %s: %s", cfg->outbound_ca_file,
		    strerror(errno));
		return -1;
	}
	if (*cfg->master_key_file == '\0' && getenv("HOOKD_MASTER_KEY") == NULL) {
		set_error(err, "master_key_file must name a file (or set HOOKD_MASTER_KEY)");
		return -1;
	}
	return 0;
}

static char *
read_file(const char *path, char **err)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL) {
		set_error(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if (cap > 16u << 20) {
				set_error(err, "%s: file too large", path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = xrealloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		set_error(err, "%s: read error", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

int
config_load(struct config *cfg, const char *path, char **err)
{
	config_defaults(cfg);
	if (path != NULL) {
		char *text = read_file(path, err);
		int rc;

		if (text == NULL)
			goto fail;
		rc = config_apply_text(cfg, text, path, err);
		free(text);
		if (rc != 0)
			goto fail;
	}
	if (config_apply_env(cfg, err) != 0 || config_validate(cfg, err) != 0)
		goto fail;
	return 0;
fail:
	config_free(cfg);
	return -1;
}

void
config_free(struct config *cfg)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (keys[i].type == CONFIG_STRING) {
			char **slot = (char **)(void *)((char *)cfg + keys[i].offset);

			free(*slot);
			*slot = NULL;
		}
	}
}

char *
config_diff_fixed(const struct config *old, const struct config *new)
{
	char *out = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *a = (const char *)old + keys[i].offset;
		const char *b = (const char *)new + keys[i].offset;
		int same;

		if (keys[i].reloadable)
			continue;
		if (keys[i].type == CONFIG_STRING)
			same = strcmp(*(char *const *)(const void *)a,
			           *(char *const *)(const void *)b) == 0;
		else
			same =
			    *(const int64_t *)(const void *)a == *(const int64_t *)(const void *)b;
		if (!same) {
			char *next =
			    out ? xasprintf("%s, %s", out, keys[i].name) : xstrdup(keys[i].name);

			free(out);
			out = next;
		}
	}
	return out;
}

void
config_keep_fixed(struct config *dst, const struct config *src)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char *d = (char *)dst + keys[i].offset;
		const char *s = (const char *)src + keys[i].offset;

		if (keys[i].reloadable)
			continue;
		if (keys[i].type == CONFIG_STRING) {
			char **slot = (char **)(void *)d;

			free(*slot);
			*slot = xstrdup(*(char *const *)(const void *)s);
		} else {
			*(int64_t *)(void *)d = *(const int64_t *)(const void *)s;
		}
	}
}

char *
config_database_url(const struct config *cfg)
{
	char cwd[4096];

	if (*cfg->database_url != '\0')
		return xstrdup(cfg->database_url);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup("dbname=hookd user=hookd");
	return xasprintf("host=%s/var/run dbname=hookd user=hookd", cwd);
}
