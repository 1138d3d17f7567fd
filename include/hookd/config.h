/* SPDX-License-Identifier: ISC */
/* Configuration: one declarative key table, a key = value file, environment overrides. */
#ifndef HOOKD_CONFIG_H
#define HOOKD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hookd/util.h"

enum config_type {
	CONFIG_STRING,   /* free text */
	CONFIG_INT,      /* integer within bounds */
	CONFIG_BOOL,     /* on/off, true/false, yes/no, 1/0 */
	CONFIG_DURATION, /* stored in milliseconds; "250ms", "5s", "2m", "1h"; bare numbers are
	                    seconds */
	CONFIG_SIZE,     /* stored in bytes; "512", "64KiB", "1MiB", "1GiB" (k/m/g accepted too) */
	CONFIG_LOGLEVEL, /* error, warn, info, debug */
};

/*
 * Every configuration value hookd has. Numbers are int64 whatever their unit so that
 * the key table can address them uniformly; strings are owned by the struct.
 */
struct config {
	char *listen;
	char *database_url;
	int64_t db_pool_size;
	int64_t db_connect_timeout;
	int64_t db_reconnect_min;
	int64_t db_reconnect_max;
	int64_t db_pipeline_depth;
	int64_t db_statement_timeout;
	int64_t db_queue_timeout;
	int64_t auto_migrate;
	int64_t http_max_body_size;
	int64_t http_max_header_size;
	int64_t http_timeout;
	int64_t http_max_connections;
	int64_t shutdown_timeout;
	int64_t log_level;
	char *master_key_file;
	char *trusted_proxies;
	int64_t ingest_batch_max;
	int64_t ingest_inflight_max;
	int64_t ingest_batch_min;
	int64_t process_batch;
	int64_t process_lease;
	int64_t process_poll_interval;
	char *outbound_allow_networks;
	int64_t outbound_tls_verify;
	char *outbound_ca_file;
	int64_t outbound_max_per_origin;
	int64_t outbound_idle_timeout;
	int64_t deliver_batch;
	int64_t deliver_concurrency;
	int64_t deliver_lease;
	int64_t deliver_poll_interval;
	int64_t retry_after_max;
	int64_t disable_after_dead;
	char *event_types;
	int64_t capture_batch;
	int64_t capture_poll_interval;
	int64_t capture_retention;
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;
	int64_t min, max; /* bounds for numeric types */
	const char *def;  /* default, in file syntax */
	int reloadable;   /* SIGHUP may change it */
	const char *env;  /* extra environment name besides HOOKD_<NAME>, or NULL */
	const char *help;
};

/* The key table, in documentation order. */
const struct config_key *config_keys(size_t *n);

/* Fill cfg with defaults. */
void config_defaults(struct config *cfg);
/* Apply "key = value" text (a file's contents); origin names it in errors. */
int config_apply_text(struct config *cfg, const char *text, const char *origin, char **err) WUR;
/* Apply HOOKD_<KEY> (and each key's extra name) from the environment. */
int config_apply_env(struct config *cfg, char **err) WUR;
/* Set one key from its text form. */
int config_set(struct config *cfg, const char *name, const char *value, char **err) WUR;
/* Cross-key checks after everything is applied. */
int config_validate(const struct config *cfg, char **err) WUR;
/* Defaults, then the file (if path is not NULL), then the environment, then validation. */
int config_load(struct config *cfg, const char *path, char **err) WUR;
void config_free(struct config *cfg);
/* Names of non-reloadable keys whose value differs, comma separated, or NULL (malloc'd). */
char *config_diff_fixed(const struct config *old, const struct config *new);
/* Copy every non-reloadable value of src into dst (a reload keeps what needs a restart). */
void config_keep_fixed(struct config *dst, const struct config *src);
/* The database URL to use: database_url, or the private cluster under ./var. */
char *config_database_url(const struct config *cfg);

/* The most addresses listen may name. */
#define CONFIG_MAX_LISTEN 16

/* One parsed listen address. */
struct config_listen {
	char text[256];               /* as written, trimmed */
	struct sockaddr_storage addr; /* numeric; "*" and "localhost" mapped to IPv4 */
	int addrlen;
};

/*
 * Parse a listen value ("host:port, [v6]:port, *:port, localhost:port") into out, which
 * has room for CONFIG_MAX_LISTEN entries. Start-up binds exactly what this returns, so
 * hookd -n and a reload refuse what start-up would refuse.
 */
int config_listen_parse(const char *addrs, struct config_listen *out, int *n, char **err) WUR;

/* Value parsers, exposed for tests. */
int config_parse_bool(const char *s, int64_t *out) WUR;
int config_parse_duration(const char *s, int64_t *ms) WUR;
int config_parse_size(const char *s, int64_t *bytes) WUR;

#endif
