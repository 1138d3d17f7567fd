/* SPDX-License-Identifier: ISC */
/* Schema migrations: schema/NNN_name.sql, compiled in, applied in order under an advisory lock. */
#ifndef HOOKD_MIGRATE_H
#define HOOKD_MIGRATE_H

struct event_base;
struct evdns_base;
struct db_options;

struct migration {
	int version;
	const char *name;
	const char *sql;
};

/* The compiled-in migrations, in version order (generated from schema/). */
extern const struct migration migrations[];
extern const int migrations_count;
/* The highest compiled-in version: the schema is current when the database has it. */
int migrate_latest(void);

struct migrate;
/*
 * Connect on a connection of its own and apply every pending migration, each in its
 * own transaction, holding a session advisory lock so racing processes take turns.
 * cb gets 0 and the version reached, or -1 and an error; the migrate object is freed
 * after cb returns.
 */
struct migrate *migrate_start(struct event_base *base, struct evdns_base *dns,
    const struct db_options *opt, void (*cb)(int rc, int version, const char *err, void *arg),
    void *arg);
/* Abandon a running migration (its callback will not be called). */
void migrate_cancel(struct migrate *m);

/* The SQL that reads the applied version; SQLSTATE 42P01 or 3F000 means version 0. */
extern const char migrate_version_sql[];

#endif
