/* SPDX-License-Identifier: ISC */
/* Subcommands: hookd migrate, hookd keys create|list|revoke. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <sodium.h>

#include "hookd/cli.h"
#include "hookd/config.h"
#include "hookd/db.h"
#include "hookd/keys.h"
#include "hookd/log.h"
#include "hookd/migrate.h"
#include "hookd/util.h"

/* A short-lived event loop with a one-connection pool, for subcommands. */
struct cli {
	struct event_base *base;
	struct evdns_base *dns;
	struct db *db;
	struct db_options opt;
	char *url;
	int rc;
};

static int
cli_open(struct cli *c, const struct config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->base = event_base_new();
	c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (c->base == NULL || c->dns == NULL) {
		fprintf(stderr, "hookd: cannot set up the event loop\n");
		return -1;
	}
	c->url = config_database_url(cfg);
	c->opt.conninfo = c->url;
	c->opt.application_name = "hookd-cli";
	c->opt.pool_size = 1;
	c->opt.connect_timeout_ms = (int)cfg->db_connect_timeout;
	c->opt.reconnect_min_ms = (int)cfg->db_reconnect_min;
	c->opt.reconnect_max_ms = (int)cfg->db_reconnect_max;
	c->opt.pipeline_depth = 4;
	c->opt.statement_timeout_ms = (int)cfg->db_statement_timeout;
	c->opt.queue_timeout_ms = (int)cfg->db_connect_timeout + 1000;
	return 0;
}

static void
cli_close(struct cli *c)
{
	if (c->db != NULL)
		db_free(c->db);
	if (c->dns != NULL)
		evdns_base_free(c->dns, 0);
	if (c->base != NULL)
		event_base_free(c->base);
	free(c->url);
}

static void
migrated_cb(int rc, int version, const char *err, void *arg)
{
	struct cli *c = arg;

	if (rc == 0)
		fprintf(stderr, "hookd: schema at version %d\n", version);
	else
		fprintf(stderr, "hookd: migration failed: %s\n", err);
	c->rc = rc == 0 ? 0 : 1;
	event_base_loopbreak(c->base);
}

static int
run_migrations(struct cli *c)
{
	c->rc = 1;
	migrate_start(c->base, c->dns, &c->opt, migrated_cb, c);
	event_base_dispatch(c->base);
	return c->rc;
}

int
cli_migrate(const struct config *cfg)
{
	struct cli c;
	int rc;

	if (cli_open(&c, cfg) != 0)
		return 1;
	rc = run_migrations(&c);
	cli_close(&c);
	return rc;
}

/* --- keys ------------------------------------------------------------------------------ */

struct keys_cmd {
	struct cli *cli;
	const char *name;
	char key[KEYS_LEN + 1];
};

static void
created_cb(const struct db_result *r, void *arg)
{
	struct keys_cmd *k = arg;

	if (r->status == DB_OK) {
		fprintf(stderr, "hookd: admin key \"%s\" created; it is shown once, store it now\n",
		    k->name);
		printf("%s\n", k->key);
		k->cli->rc = 0;
	} else if (r->sqlstate != NULL && strcmp(r->sqlstate, "23505") == 0) {
		fprintf(
		    stderr, "hookd: a live key named \"%s\" exists; revoke it first\n", k->name);
	} else {
		fprintf(stderr, "hookd: cannot create key: %s\n", r->error);
	}
	event_base_loopbreak(k->cli->base);
}

static void
key_create(struct keys_cmd *k)
{
	struct db_group *g = db_group_new(k->cli->db);
	char id[37], hash[KEYS_HASH_LEN + 1], prefix[KEYS_PREFIX_LEN + 1];
	struct db_params p;

	keys_generate(k->key);
	keys_hash(k->key, hash);
	keys_prefix(k->key, prefix);
	uuid_v7(id);
	db_params_init(&p);
	db_param_text(&p, id);
	db_param_text(&p, k->name);
	db_param_text(&p, hash);
	db_param_text(&p, prefix);
	db_group_sql(g,
	    "INSERT INTO hookd.api_keys (id, name, key_hash, prefix) VALUES ($1, $2, $3, $4)", &p);
	db_group_sql(g, "SELECT pg_notify('hookd_config', 'keys')", NULL);
	db_group_send(g, created_cb, k);
}

static void
listed_cb(const struct db_result *r, void *arg)
{
	struct keys_cmd *k = arg;

	if (r->status != DB_OK) {
		fprintf(stderr, "hookd: cannot list keys: %s\n", r->error);
	} else {
		printf("%-24s %-12s %-20s %-20s %s\n", "NAME", "PREFIX", "CREATED", "LAST USED",
		    "REVOKED");
		for (int i = 0; i < db_rows(r->res[0]); i++) {
			const char *lu = db_value(r->res[0], i, 3), *rv = db_value(r->res[0], i, 4);

			printf("%-24s %-12s %-20s %-20s %s\n", db_value(r->res[0], i, 0),
			    db_value(r->res[0], i, 1), db_value(r->res[0], i, 2), lu ? lu : "-",
			    rv ? rv : "-");
		}
		k->cli->rc = 0;
	}
	event_base_loopbreak(k->cli->base);
}

static void
revoked_cb(const struct db_result *r, void *arg)
{
	struct keys_cmd *k = arg;

	if (r->status != DB_OK)
		fprintf(stderr, "hookd: cannot revoke key: %s\n", r->error);
	else if (db_rows(r->res[0]) == 0)
		fprintf(stderr, "hookd: no live key named \"%s\"\n", k->name);
	else {
		fprintf(stderr, "hookd: admin key \"%s\" revoked\n", k->name);
		k->cli->rc = 0;
	}
	event_base_loopbreak(k->cli->base);
}

static int
keys_usage(void)
{
	fprintf(
	    stderr, "usage: hookd keys create NAME | hookd keys list | hookd keys revoke NAME\n");
	return 2;
}

int
cli_keys(const struct config *cfg, int argc, char **argv)
{
	struct keys_cmd k = {0};
	struct cli c;
	struct db_params p;
	int rc;

	if (argc < 1)
		return keys_usage();
	if ((strcmp(argv[0], "create") == 0 || strcmp(argv[0], "revoke") == 0) && argc != 2)
		return keys_usage();
	if (strcmp(argv[0], "list") == 0 && argc != 1)
		return keys_usage();
	if (argc == 2 && !keys_valid_name(argv[1])) {
		fprintf(stderr, "hookd: key names are 1-64 of [A-Za-z0-9_.@-], starting with a "
		                "letter or digit\n");
		return 2;
	}
	if (strcmp(argv[0], "create") != 0 && strcmp(argv[0], "list") != 0 &&
	    strcmp(argv[0], "revoke") != 0)
		return keys_usage();
	if (cli_open(&c, cfg) != 0)
		return 1;
	if (cfg->auto_migrate && run_migrations(&c) != 0) {
		cli_close(&c);
		return 1;
	}
	c.db = db_create(c.base, c.dns, &c.opt);
	db_start(c.db);
	c.rc = 1;
	k.cli = &c;
	k.name = argc == 2 ? argv[1] : NULL;
	if (strcmp(argv[0], "create") == 0) {
		key_create(&k);
	} else if (strcmp(argv[0], "list") == 0) {
		db_query(c.db,
		    "SELECT name, prefix, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'),"
		    " to_char(last_used_at, 'YYYY-MM-DD HH24:MI:SS'),"
		    " to_char(revoked_at, 'YYYY-MM-DD HH24:MI:SS')"
		    " FROM hookd.api_keys ORDER BY created_at",
		    NULL, listed_cb, &k);
	} else {
		struct db_group *g = db_group_new(c.db);

		db_params_init(&p);
		db_param_text(&p, k.name);
		db_group_sql(g,
		    "UPDATE hookd.api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at "
		    "IS NULL"
		    " RETURNING id",
		    &p);
		db_group_sql(g, "SELECT pg_notify('hookd_config', 'keys')", NULL);
		db_group_send(g, revoked_cb, &k);
	}
	event_base_dispatch(c.base);
	rc = c.rc;
	sodium_memzero(k.key, sizeof(k.key));
	cli_close(&c);
	return rc;
}
