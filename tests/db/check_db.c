/* SPDX-License-Identifier: ISC */
/* The async Postgres layer against a real server: pool, groups, failures, LISTEN, migrations. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "hookd/db.h"
#include "hookd/db_conn.h"
#include "hookd/listen.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/migrate.h"

static struct event_base *base;
static struct evdns_base *dns;
static struct event *ticker;
static const char *url, *tcp_url;

/* --- harness ------------------------------------------------------------------------- */

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until pred holds or ms pass; a hung test fails instead of hanging. */
static int
wait_until(int (*pred)(void *), void *arg, int ms)
{
	uint64_t end = now_mono_ms() + (uint64_t)ms;

	while (!pred(arg)) {
		if (now_mono_ms() >= end)
			return 0;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return 1;
}

static int
flag_set(void *arg)
{
	return *(int *)arg != 0;
}

/* Run the loop for ms whatever happens. */
static void
spin(int ms)
{
	int never = 0;

	(void)wait_until(flag_set, &never, ms);
}

static void
server(const char *env)
{
	const char *cmd = getenv(env);

	ck_assert_msg(cmd != NULL, "%s is not set (run through run-check-db.sh)", env);
	ck_assert_int_eq(system(cmd), 0);
}

static void
setup(void)
{
	struct timeval tv = {0, 10000};

	url = getenv("DATABASE_URL");
	tcp_url = getenv("DATABASE_TCP_URL");
	ck_assert_msg(url != NULL && tcp_url != NULL, "run through tests/db/run-check-db.sh");
	/* A test that failed with the server stopped leaves it stopped: start it again. */
	server("PG_START_CMD");
	base = event_base_new();
	dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	ck_assert_ptr_nonnull(base);
	ck_assert_ptr_nonnull(dns);
	ticker = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(ticker, &tv);
}

static void
teardown(void)
{
	event_free(ticker);
	evdns_base_free(dns, 0);
	event_base_free(base);
}

static struct db_options
options(const char *conninfo, int pool)
{
	struct db_options o = {
	    .conninfo = conninfo,
	    .application_name = "hookd-test",
	    .pool_size = pool,
	    .connect_timeout_ms = 3000,
	    .reconnect_min_ms = 20,
	    .reconnect_max_ms = 300,
	    .pipeline_depth = 64,
	    .statement_timeout_ms = 20000,
	    .queue_timeout_ms = 15000,
	};
	return o;
}

/* What a callback saw, copied out (results are valid only during the callback). */
struct cap {
	int done, calls;
	enum db_status st;
	char err[512];
	char sqlstate[8];
	int nres;
	ExecStatusType rst[8];
	int rows[8];
	char val[8][4][128]; /* first row, first columns, "(null)" for NULL */
};

static void
cap_cb(const struct db_result *r, void *arg)
{
	struct cap *c = arg;

	c->done = 1;
	c->calls++;
	c->st = r->status;
	snprintf(c->err, sizeof(c->err), "%s", r->error ? r->error : "");
	snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", r->sqlstate ? r->sqlstate : "");
	c->nres = r->nres;
	for (int i = 0; i < r->nres && i < 8; i++) {
		c->rst[i] = r->res[i] != NULL ? PQresultStatus(r->res[i]) : PGRES_FATAL_ERROR;
		c->rows[i] = db_rows(r->res[i]);
		for (int col = 0; col < 4; col++) {
			const char *v = db_value(r->res[i], 0, col);

			snprintf(c->val[i][col], sizeof(c->val[i][col]), "%s", v ? v : "(null)");
		}
	}
}

static int
cap_done(void *arg)
{
	return ((struct cap *)arg)->done;
}

/* One statement, synchronously from the test's point of view. */
static void
run_sql(struct db *db, const char *sql, const struct db_params *p, struct cap *c)
{
	memset(c, 0, sizeof(*c));
	db_query(db, sql, p, cap_cb, c);
	ck_assert_int_eq(c->done, 0); /* never called from inside db_query */
	ck_assert_msg(wait_until(cap_done, c, 20000), "no answer to %s", sql);
}

static void
must_sql(struct db *db, const char *sql, struct cap *c)
{
	run_sql(db, sql, NULL, c);
	ck_assert_msg(c->st == DB_OK, "%s: %s", sql, c->err);
}

static int
pool_ready(void *arg)
{
	return db_ready_count(arg) > 0;
}

static int
pool_all_ready(void *arg)
{
	struct db *db = arg;

	return db_ready_count(db) == 2;
}

static int
pool_not_ready(void *arg)
{
	return db_ready_count(arg) == 0;
}

static struct db *
pool_up(const char *conninfo, int size)
{
	struct db_options o = options(conninfo, size);
	struct db *db = db_create(base, dns, &o);

	ck_assert_ptr_nonnull(db);
	db_start(db);
	ck_assert_msg(wait_until(pool_ready, db, 10000), "pool never connected");
	return db;
}

/* --- connection parameters ------------------------------------------------------------ */

static const char *
param(char **keys, char **vals, const char *k)
{
	for (int i = 0; keys[i] != NULL; i++) {
		if (strcmp(keys[i], k) == 0)
			return vals[i];
	}
	return NULL;
}

START_TEST(test_conn_params)
{
	struct db_options o = options("host=db.example port=5433 options='-c work_mem=8MB' "
	                              "keepalives_idle=30 connect_timeout=1 password=hunter2",
	    1);
	char **keys, **vals, *err;

	o.statement_timeout_ms = 1500;
	ck_assert_int_eq(db_conn_params(&o, &keys, &vals, &err), 0);
	ck_assert_str_eq(param(keys, vals, "options"), "-c work_mem=8MB -c statement_timeout=1500");
	ck_assert_str_eq(param(keys, vals, "application_name"), "hookd-test");
	ck_assert_str_eq(param(keys, vals, "keepalives"), "1");
	ck_assert_str_eq(param(keys, vals, "keepalives_idle"), "30"); /* the user's wins */
	ck_assert_str_eq(param(keys, vals, "keepalives_interval"), "5");
	ck_assert_str_eq(param(keys, vals, "keepalives_count"), "3");
	ck_assert_ptr_null(param(keys, vals, "connect_timeout"));
	ck_assert_str_eq(param(keys, vals, "host"), "db.example");
	db_conn_params_free(keys, vals);

	o = options("postgresql://u@h/db?application_name=mine", 1);
	o.statement_timeout_ms = 0;
	ck_assert_int_eq(db_conn_params(&o, &keys, &vals, &err), 0);
	ck_assert_str_eq(param(keys, vals, "application_name"), "mine");
	ck_assert_ptr_null(param(keys, vals, "options"));
	db_conn_params_free(keys, vals);

	o = options("host=x nonsense=1", 1);
	ck_assert_int_eq(db_conn_params(&o, &keys, &vals, &err), -1);
	ck_assert_ptr_nonnull(err);
	free(err);
	ck_assert_ptr_null(db_create(base, dns, &o));
}
END_TEST

/* --- queries ---------------------------------------------------------------------------- */

START_TEST(test_params)
{
	struct db *db = pool_up(url, 1);
	static const unsigned char blob[] = {0x00, 0x01, 0xff, 0x00};
	struct db_params p;
	struct cap c;

	db_params_init(&p);
	db_param_text(&p, "h\xc3\xa9llo");
	db_param_bin(&p, blob, sizeof(blob));
	db_param_null(&p);
	db_param_int(&p, -9000000000LL);
	run_sql(db, "SELECT $1::text, $2::bytea, $3::text IS NULL, $4::int8 + 1", &p, &c);
	ck_assert_msg(c.st == DB_OK, "%s", c.err);
	ck_assert_int_eq(c.nres, 1);
	ck_assert_int_eq(c.rows[0], 1);
	ck_assert_str_eq(c.val[0][0], "h\xc3\xa9llo");
	ck_assert_str_eq(c.val[0][1], "\\x0001ff00");
	ck_assert_str_eq(c.val[0][2], "t");
	ck_assert_str_eq(c.val[0][3], "-8999999999");

	/* Text with an explicit length, a bool, a NULL result, statement_timeout applied. */
	db_params_init(&p);
	db_param_textn(&p, "abcdef", 3);
	db_param_bool(&p, 1);
	run_sql(db, "SELECT $1::text, $2::bool, NULL::int, current_setting('statement_timeout')",
	    &p, &c);
	ck_assert_msg(c.st == DB_OK, "%s", c.err);
	ck_assert_str_eq(c.val[0][0], "abc");
	ck_assert_str_eq(c.val[0][1], "t");
	ck_assert_str_eq(c.val[0][2], "(null)");
	ck_assert_str_eq(c.val[0][3], "20s");

	/* A syntax error is a SQL error with its SQLSTATE. */
	run_sql(db, "SELEKT 1", NULL, &c);
	ck_assert_int_eq(c.st, DB_ERR_SQL);
	ck_assert_str_eq(c.sqlstate, "42601");
	ck_assert_msg(strstr(c.err, "syntax") != NULL, "%s", c.err);
	ck_assert_int_eq(db_busy(db), 0);
	db_free(db);
}
END_TEST

START_TEST(test_prepared)
{
	struct db_options o = options(url, 2);
	struct db *db = db_create(base, dns, &o);
	struct db_stmt *dbl, *late, *bad;
	struct db_params p;
	struct cap c;

	dbl = db_prepare(db, "t_double", "SELECT $1::int * 2");
	bad = db_prepare(db, "t_bad", "SELECT FROM nowhere_at_all");
	db_start(db);
	ck_assert(wait_until(pool_all_ready, db, 10000));
	db_params_init(&p);
	db_param_int(&p, 21);
	memset(&c, 0, sizeof(c));
	db_exec(db, dbl, &p, cap_cb, &c);
	ck_assert(wait_until(cap_done, &c, 10000));
	ck_assert_msg(c.st == DB_OK, "%s", c.err);
	ck_assert_str_eq(c.val[0][0], "42");

	/* A statement that does not prepare fails its users, not the connection. */
	memset(&c, 0, sizeof(c));
	db_exec(db, bad, NULL, cap_cb, &c);
	ck_assert(wait_until(cap_done, &c, 10000));
	ck_assert_int_eq(c.st, DB_ERR_SQL);
	ck_assert_str_eq(c.sqlstate, "26000");

	/* Registered after start: prepared on each connection before its first use there. */
	late = db_prepare(db, "t_late", "SELECT $1::text || '!'");
	for (int i = 0; i < 4; i++) {
		db_params_init(&p);
		db_param_text(&p, "hi");
		memset(&c, 0, sizeof(c));
		db_exec(db, late, &p, cap_cb, &c);
		ck_assert(wait_until(cap_done, &c, 10000));
		ck_assert_msg(c.st == DB_OK, "%s", c.err);
		ck_assert_str_eq(c.val[0][0], "hi!");
	}
	must_sql(db, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 't\\_%'", &c);
	ck_assert_str_eq(c.val[0][0], "2"); /* t_double and t_late; t_bad never prepared */
	db_free(db);
}
END_TEST

START_TEST(test_group_commit)
{
	struct db *db = pool_up(url, 1);
	struct db_group *g;
	struct db_params p;
	struct cap c;

	must_sql(db, "DROP TABLE IF EXISTS t_commit", &c);
	must_sql(db, "CREATE TABLE t_commit (id int PRIMARY KEY, v text)", &c);
	g = db_group_new(db);
	for (int i = 1; i <= 2; i++) {
		db_params_init(&p);
		db_param_int(&p, i);
		db_param_text(&p, i == 1 ? "one" : "two");
		db_group_sql(g, "INSERT INTO t_commit VALUES ($1, $2)", &p);
	}
	db_group_sql(g, "SELECT count(*), string_agg(v, ',' ORDER BY id) FROM t_commit", NULL);
	memset(&c, 0, sizeof(c));
	db_group_send(g, cap_cb, &c);
	ck_assert_int_eq(c.done, 0);
	ck_assert(wait_until(cap_done, &c, 10000));
	ck_assert_msg(c.st == DB_OK, "%s", c.err);
	ck_assert_int_eq(c.nres, 3);
	ck_assert_int_eq(c.rst[0], PGRES_COMMAND_OK);
	ck_assert_int_eq(c.rst[2], PGRES_TUPLES_OK);
	ck_assert_str_eq(c.val[2][0], "2");
	ck_assert_str_eq(c.val[2][1], "one,two");
	must_sql(db, "SELECT count(*) FROM t_commit", &c);
	ck_assert_str_eq(c.val[0][0], "2");
	db_free(db);
}
END_TEST

START_TEST(test_group_rollback)
{
	struct db *db = pool_up(url, 1);
	struct db_group *g;
	struct cap c;

	must_sql(db, "DROP TABLE IF EXISTS t_rollback", &c);
	must_sql(db, "CREATE TABLE t_rollback (id int PRIMARY KEY)", &c);
	g = db_group_new(db);
	db_group_sql(g, "INSERT INTO t_rollback VALUES (1)", NULL);
	db_group_sql(g, "INSERT INTO t_rollback VALUES (1)", NULL);
	db_group_sql(g, "INSERT INTO t_rollback VALUES (3)", NULL);
	memset(&c, 0, sizeof(c));
	db_group_send(g, cap_cb, &c);
	ck_assert(wait_until(cap_done, &c, 10000));
	ck_assert_int_eq(c.st, DB_ERR_SQL);
	ck_assert_str_eq(c.sqlstate, "23505");
	ck_assert_msg(strstr(c.err, "duplicate key") != NULL, "%s", c.err);
	ck_assert_int_eq(c.nres, 3);
	ck_assert_int_eq(c.rst[0], PGRES_COMMAND_OK);
	ck_assert_int_eq(c.rst[1], PGRES_FATAL_ERROR);
	ck_assert_int_eq(c.rst[2], PGRES_PIPELINE_ABORTED);
	/* The first insert went down with the group. */
	must_sql(db, "SELECT count(*) FROM t_rollback", &c);
	ck_assert_str_eq(c.val[0][0], "0");
	db_free(db);
}
END_TEST

struct many {
	int i, done, ok;
	int pid;
	int *left;
};

static void
many_cb(const struct db_result *r, void *arg)
{
	struct many *m = arg;
	const char *v = r->status == DB_OK ? db_value(r->res[0], 0, 0) : NULL;

	m->done++;
	m->ok = v != NULL && atoi(v) == m->i * 3;
	if (r->status == DB_OK)
		m->pid = atoi(db_value(r->res[0], 0, 1));
	(*m->left)--;
}

static int
none_left(void *arg)
{
	return *(int *)arg == 0;
}

START_TEST(test_many_pipelined)
{
	enum { N = 2000 };
	struct db *db;
	struct many *m = xcalloc(N, sizeof(*m));
	struct db_stmt *s;
	struct db_options o = options(url, 2);
	int left = N, pids[2] = {0, 0};
	uint64_t t0;

	db = db_create(base, dns, &o);
	s = db_prepare(db, "t_triple", "SELECT $1::int * 3, pg_backend_pid()");
	db_start(db);
	ck_assert(wait_until(pool_all_ready, db, 10000));
	ck_assert_int_eq(db_peak_pipeline(db), 0);
	t0 = now_mono_ms();
	for (int i = 0; i < N; i++) {
		struct db_params p;

		m[i].i = i;
		m[i].left = &left;
		db_params_init(&p);
		db_param_int(&p, i);
		db_exec(db, s, &p, many_cb, &m[i]);
	}
	ck_assert_int_eq(db_busy(db), N);
	ck_assert(wait_until(none_left, &left, 30000));
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(m[i].done, 1);
		ck_assert_msg(m[i].ok, "group %d got a wrong answer", i);
		if (pids[0] == 0 || pids[0] == m[i].pid)
			pids[0] = m[i].pid;
		else
			pids[1] = m[i].pid;
	}
	/* Both connections carried groups. */
	ck_assert_int_ne(pids[1], 0);
	/*
	 * Pipelining, not one round trip per group: a connection had a full pipeline of
	 * groups sent and not yet answered at once (2000 groups queued at once fill it).
	 */
	ck_assert_int_eq(db_peak_pipeline(db), o.pipeline_depth);
	ck_assert_int_eq(db_busy(db), 0);
	log_info("check_db: %d pipelined groups in %llu ms", N,
	    (unsigned long long)(now_mono_ms() - t0));
	free(m);
	db_free(db);
}
END_TEST

/*
 * A long statement does not hold back short ones: with two connections, a burst of groups
 * sent while one connection runs a 1.5 s statement all go to the other (by count alone
 * about half would queue behind the long one) and are answered long before it ends.
 */
START_TEST(test_long_statement_is_passed_over)
{
	enum { N = 40 };
	struct db_options o = options(url, 2);
	struct db *db = db_create(base, dns, &o);
	struct many *m = xcalloc(N, sizeof(*m));
	struct db_stmt *s = db_prepare(db, "t_short", "SELECT $1::int * 3, pg_backend_pid()");
	struct cap slow;
	int left = N;
	uint64_t t0;

	db_start(db);
	ck_assert(wait_until(pool_all_ready, db, 10000));
	memset(&slow, 0, sizeof(slow));
	db_query(db, "SELECT pg_sleep(1.5), pg_backend_pid()", NULL, cap_cb, &slow);
	spin(100); /* past DB_STALL_US: that connection is running a long statement */
	ck_assert_int_eq(slow.done, 0);
	t0 = now_mono_ms();
	for (int i = 0; i < N; i++) {
		struct db_params p;

		m[i].i = i;
		m[i].left = &left;
		db_params_init(&p);
		db_param_int(&p, i);
		db_exec(db, s, &p, many_cb, &m[i]);
	}
	ck_assert(wait_until(none_left, &left, 1000));
	ck_assert_msg(now_mono_ms() - t0 < 1000, "short groups waited for the long one");
	ck_assert_int_eq(slow.done, 0);
	for (int i = 0; i < N; i++)
		ck_assert_msg(m[i].ok, "group %d got a wrong answer", i);
	ck_assert(wait_until(cap_done, &slow, 5000));
	ck_assert_int_eq(slow.st, DB_OK);
	for (int i = 0; i < N; i++)
		ck_assert_int_ne(m[i].pid, atoi(slow.val[0][1]));
	free(m);
	db_free(db);
}
END_TEST

/* Big parameters out and big rows back: socket buffers fill in both directions. */
struct big {
	int i, ok;
	int *left;
};

static void
big_cb(const struct db_result *r, void *arg)
{
	struct big *b = arg;
	const char *v = r->status == DB_OK ? db_value(r->res[0], 0, 0) : NULL;

	b->ok = v != NULL && strlen(v) == 65536 && v[0] == 'a' + b->i % 26 &&
	        v[65535] == 'a' + b->i % 26;
	(*b->left)--;
}

START_TEST(test_large_pipelined)
{
	enum { N = 300, LEN = 65536 };
	struct db *db = pool_up(url, 1);
	struct big *b = xcalloc(N, sizeof(*b));
	char *payload = xmalloc(LEN);
	int left = N;

	for (int i = 0; i < N; i++) {
		struct db_params p;

		memset(payload, 'a' + i % 26, LEN);
		b[i].i = i;
		b[i].left = &left;
		db_params_init(&p);
		db_param_textn(&p, payload, LEN); /* copied when queued */
		db_query(db, "SELECT $1::text", &p, big_cb, &b[i]);
	}
	free(payload);
	ck_assert_msg(wait_until(none_left, &left, 60000), "%d groups never completed", left);
	for (int i = 0; i < N; i++)
		ck_assert_msg(b[i].ok, "group %d got a wrong answer", i);
	free(b);
	db_free(db);
}
END_TEST

/* A callback that queues another group and cancels a queued one. */
struct chain {
	struct db *db;
	struct db_req *victim;
	struct cap next;
	int called;
};

static void
chain_cb(const struct db_result *r, void *arg)
{
	struct chain *ch = arg;

	ch->called++;
	db_cancel(ch->victim);
	db_query(ch->db, "SELECT 'chained'", NULL, cap_cb, &ch->next);
}

START_TEST(test_cancel)
{
	struct db_options o = options(url, 1);
	struct db *db;
	struct chain ch;
	struct cap victim, inflight, after;
	struct db_req *r;

	o.pipeline_depth = 1;
	db = db_create(base, dns, &o);
	db_start(db);
	ck_assert(wait_until(pool_ready, db, 10000));
	memset(&ch, 0, sizeof(ch));
	memset(&victim, 0, sizeof(victim));
	memset(&inflight, 0, sizeof(inflight));
	memset(&after, 0, sizeof(after));
	ch.db = db;
	db_query(db, "SELECT pg_sleep(0.2)", NULL, chain_cb, &ch);
	ch.victim = db_query(db, "SELECT 1", NULL, cap_cb, &victim);
	ck_assert_int_eq(db_busy(db), 2);
	ck_assert(wait_until(cap_done, &ch.next, 10000));
	ck_assert_int_eq(ch.called, 1);
	ck_assert_int_eq(ch.next.st, DB_OK);
	ck_assert_str_eq(ch.next.val[0][0], "chained");
	ck_assert_int_eq(victim.done, 0);

	/* Cancelling a group in flight: it runs, the callback does not. */
	r = db_query(db, "SELECT pg_sleep(0.1)", NULL, cap_cb, &inflight);
	spin(30);
	db_cancel(r);
	db_query(db, "SELECT 2", NULL, cap_cb, &after);
	ck_assert(wait_until(cap_done, &after, 10000));
	ck_assert_int_eq(inflight.done, 0);
	ck_assert_int_eq(db_busy(db), 0);

	/* db_free fails what is queued, with callbacks. */
	{
		struct db_options o2 = options(url, 1);
		struct db *idle = db_create(base, dns, &o2);
		struct cap q1, q2;

		memset(&q1, 0, sizeof(q1));
		memset(&q2, 0, sizeof(q2));
		db_query(idle, "SELECT 1", NULL, cap_cb, &q1);
		db_query(idle, "SELECT 2", NULL, cap_cb, &q2);
		ck_assert_int_eq(db_busy(idle), 2);
		db_free(idle);
		ck_assert_int_eq(q1.calls, 1);
		ck_assert_int_eq(q1.st, DB_ERR_UNAVAILABLE);
		ck_assert_int_eq(q2.st, DB_ERR_UNAVAILABLE);
	}
	db_free(db);
}
END_TEST

/* --- failures --------------------------------------------------------------------------- */

struct states {
	int ups, zeros, last;
};

static void
state_cb(int ready, void *arg)
{
	struct states *s = arg;

	s->last = ready;
	if (ready > 0)
		s->ups++;
	else
		s->zeros++;
}

START_TEST(test_down_fail_fast)
{
	struct db_options o = options(url, 2);
	struct db *db = db_create(base, dns, &o);
	struct states st = {0, 0, -1};
	struct cap c;
	uint64_t t0;

	db_on_state(db, state_cb, &st);
	db_start(db);
	ck_assert(wait_until(pool_all_ready, db, 10000));
	ck_assert_int_eq(st.ups, 2);
	server("PG_STOP_CMD");
	ck_assert_msg(wait_until(pool_not_ready, db, 5000), "the pool did not notice");
	ck_assert_int_eq(st.zeros, 1);
	ck_assert_int_eq(st.last, 0);
	{
		size_t mlen;
		char *text = metrics_render(&mlen);

		ck_assert_msg(
		    strstr(text, "hookd_db_connections{state=\"ready\"} 0") != NULL, "%s", text);
		free(text);
	}
	/* Down: answered at once (from the loop), not after the queue timeout. */
	t0 = now_mono_ms();
	memset(&c, 0, sizeof(c));
	db_query(db, "SELECT 1", NULL, cap_cb, &c);
	ck_assert_int_eq(c.done, 0);
	ck_assert(wait_until(cap_done, &c, 5000));
	ck_assert_int_eq(c.st, DB_ERR_UNAVAILABLE);
	ck_assert_uint_lt(now_mono_ms() - t0, 200);
	ck_assert_int_eq(db_busy(db), 0);

	server("PG_START_CMD");
	ck_assert_msg(wait_until(pool_ready, db, 10000), "no reconnect");
	ck_assert_int_ge(st.ups, 3);
	must_sql(db, "SELECT 1", &c);
	db_free(db);
}
END_TEST

/* A TCP port that accepts connections in the kernel and never answers. */
static int
blackhole(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

START_TEST(test_queue_timeout)
{
	struct db_options o;
	struct db *db;
	struct cap c;
	char conninfo[128];
	uint64_t t0, dt;
	int port, fd = blackhole(&port);

	/* connect_timeout in the conninfo is ignored: hookd's own timer rules. */
	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%d user=nobody dbname=nothing connect_timeout=1", port);
	o = options(conninfo, 1);
	o.connect_timeout_ms = 1500;
	o.queue_timeout_ms = 300;
	db = db_create(base, dns, &o);
	db_start(db);
	t0 = now_mono_ms();
	memset(&c, 0, sizeof(c));
	db_query(db, "SELECT 1", NULL, cap_cb, &c);
	/* The very first connect: the group waits, up to the queue timeout. */
	ck_assert(wait_until(cap_done, &c, 5000));
	dt = now_mono_ms() - t0;
	ck_assert_int_eq(c.st, DB_ERR_UNAVAILABLE);
	ck_assert_msg(
	    dt >= 280 && dt < 1200, "queue timeout after %llu ms", (unsigned long long)dt);

	/* The connect attempt times out at 1.5 s; then the pool is down and fails fast. */
	spin(1500);
	t0 = now_mono_ms();
	memset(&c, 0, sizeof(c));
	db_query(db, "SELECT 1", NULL, cap_cb, &c);
	ck_assert(wait_until(cap_done, &c, 5000));
	ck_assert_int_eq(c.st, DB_ERR_UNAVAILABLE);
	ck_assert_uint_lt(now_mono_ms() - t0, 100);
	db_free(db);
	close(fd);
}
END_TEST

START_TEST(test_reconnect_reprepare)
{
	struct db_options o = options(url, 2);
	struct db *db = db_create(base, dns, &o);
	struct db_stmt *s = db_prepare(db, "t_hello", "SELECT 'hello ' || $1::text");
	struct states st = {0, 0, -1};
	struct db_params p;
	struct cap c;

	db_on_state(db, state_cb, &st);
	db_start(db);
	ck_assert(wait_until(pool_all_ready, db, 10000));
	server("PG_RESTART_CMD");
	ck_assert_msg(wait_until(pool_not_ready, db, 5000), "the restart went unnoticed");
	ck_assert_msg(wait_until(pool_all_ready, db, 10000), "no reconnect after restart");
	ck_assert_int_ge(st.ups, 4);
	for (int i = 0; i < 6; i++) {
		db_params_init(&p);
		db_param_text(&p, "again");
		memset(&c, 0, sizeof(c));
		db_exec(db, s, &p, cap_cb, &c);
		ck_assert(wait_until(cap_done, &c, 10000));
		ck_assert_msg(c.st == DB_OK, "%s", c.err);
		ck_assert_str_eq(c.val[0][0], "hello again");
	}
	db_free(db);
}
END_TEST

START_TEST(test_lost_in_flight)
{
	struct db *db = pool_up(url, 1);
	struct cap c, q;

	memset(&c, 0, sizeof(c));
	db_query(db, "SELECT pg_sleep(5)", NULL, cap_cb, &c);
	spin(300);
	ck_assert_int_eq(c.done, 0);
	server("PG_KILL_CMD");
	ck_assert(wait_until(cap_done, &c, 5000));
	ck_assert_int_eq(c.st, DB_ERR_LOST);
	ck_assert_msg(c.err[0] != '\0', "no error text");
	/* Queued behind nothing and sent nowhere: a new group waits or fails, never "lost". */
	server("PG_START_CMD");
	ck_assert(wait_until(pool_ready, db, 10000));
	must_sql(db, "SELECT 1", &q);
	db_free(db);
}
END_TEST

START_TEST(test_hostname_dns)
{
	struct db *db = pool_up(tcp_url, 1);
	struct db_options o;
	struct cap c;

	must_sql(db, "SELECT host(inet_server_addr())", &c);
	ck_assert_str_eq(c.val[0][0], "127.0.0.1");
	db_free(db);

	/* A host list: names resolved, literals kept, a dead first entry skipped by libpq. */
	{
		const char *port = getenv("PG_PORT");
		int dead, fd = blackhole(&dead);
		char *ci;

		ck_assert_ptr_nonnull(port);
		close(fd);
		ci = xasprintf("host=localhost,localhost,127.0.0.1 port=%d,%s,%s user=hookd "
		               "dbname=postgres",
		    dead, port, port);
		db = pool_up(ci, 1);
		must_sql(db, "SELECT inet_server_port()", &c);
		ck_assert_str_eq(c.val[0][0], port);
		db_free(db);
		free(ci);
	}

	/* Without a resolver a host name is refused rather than resolved blocking. */
	o = options(tcp_url, 1);
	o.queue_timeout_ms = 500;
	db = db_create(base, NULL, &o);
	db_start(db);
	run_sql(db, "SELECT 1", NULL, &c);
	ck_assert_int_eq(c.st, DB_ERR_UNAVAILABLE);
	ck_assert_int_eq(db_ready_count(db), 0);
	db_free(db);
}
END_TEST

/* --- LISTEN ------------------------------------------------------------------------------- */

struct heard {
	int connects;
	int n;
	char channel[64];
	char payload[64];
};

static void
heard_cb(const char *channel, const char *payload, void *arg)
{
	struct heard *h = arg;

	h->n++;
	snprintf(h->channel, sizeof(h->channel), "%s", channel);
	snprintf(h->payload, sizeof(h->payload), "%s", payload);
}

static void
connect_hook(void *arg)
{
	((struct heard *)arg)->connects++;
}

struct heard_wait {
	struct heard *h;
	int want;
};

static int
heard_enough(void *arg)
{
	struct heard_wait *w = arg;

	return w->h->n >= w->want;
}

static int
connects_at_least(void *arg)
{
	struct heard_wait *w = arg;

	return w->h->connects >= w->want;
}

/* NOTIFY through the pool until the listener hears it (a LISTEN may still be on its way). */
static void
notify_until_heard(struct db *db, struct heard *h, const char *channel, const char *payload)
{
	struct heard_wait w = {h, h->n + 1};
	struct db_params p;
	struct cap c;

	for (int tries = 0; tries < 50 && h->n < w.want; tries++) {
		db_params_init(&p);
		db_param_text(&p, channel);
		db_param_text(&p, payload);
		run_sql(db, "SELECT pg_notify($1, $2)", &p, &c);
		ck_assert_msg(c.st == DB_OK, "%s", c.err);
		(void)wait_until(heard_enough, &w, 200);
	}
	ck_assert_msg(h->n >= w.want, "notification on %s never arrived", channel);
	ck_assert_str_eq(h->channel, channel);
	ck_assert_str_eq(h->payload, payload);
}

START_TEST(test_listen)
{
	struct db_options o = options(url, 1);
	struct db_listen *l = listen_create(base, dns, &o);
	struct heard h, weird;
	struct heard_wait w = {&h, 1};
	struct db *db;

	memset(&h, 0, sizeof(h));
	memset(&weird, 0, sizeof(weird));
	listen_subscribe(l, "hookd_test", heard_cb, &h);
	listen_on_connect(l, connect_hook, &h);
	listen_start(l);
	ck_assert(wait_until(connects_at_least, &w, 10000));
	ck_assert_int_eq(listen_connected(l), 1);
	db = pool_up(url, 1);
	notify_until_heard(db, &h, "hookd_test", "one");

	/* Subscribed after connect: LISTEN goes out at once, the name quoted. */
	listen_subscribe(l, "Weird \"chan\"", heard_cb, &weird);
	notify_until_heard(db, &weird, "Weird \"chan\"", "odd");

	server("PG_RESTART_CMD");
	w.want = 2;
	ck_assert_msg(wait_until(connects_at_least, &w, 15000), "no re-LISTEN after restart");
	ck_assert_int_eq(h.connects, 2);
	ck_assert(wait_until(pool_ready, db, 10000));
	notify_until_heard(db, &h, "hookd_test", "two");
	notify_until_heard(db, &weird, "Weird \"chan\"", "again");
	{
		size_t mlen;
		char *text = metrics_render(&mlen);

		ck_assert_msg(
		    strstr(text, "hookd_db_notifications_total{channel=\"hookd_test\"}") != NULL,
		    "%s", text);
		free(text);
	}
	db_free(db);
	listen_free(l);
}
END_TEST

/* --- migrations ------------------------------------------------------------------------- */

struct mig {
	int done, rc, version;
	char err[512];
};

static void
mig_cb(int rc, int version, const char *err, void *arg)
{
	struct mig *m = arg;

	m->done++;
	m->rc = rc;
	m->version = version;
	snprintf(m->err, sizeof(m->err), "%s", err ? err : "");
}

static int
mig_done(void *arg)
{
	return ((struct mig *)arg)->done > 0;
}

static int
migs_done(void *arg)
{
	struct mig *m = arg;

	return m[0].done > 0 && m[1].done > 0;
}

/* A fresh database for a migration test; returns its conninfo (malloc'd). */
static char *
fresh_database(const char *name)
{
	struct db *db = pool_up(url, 1);
	char sql[128];
	struct cap c;

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
	must_sql(db, sql, &c);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	must_sql(db, sql, &c);
	db_free(db);
	return xasprintf("%s dbname=%s", url, name);
}

START_TEST(test_migrate)
{
	char *ci = fresh_database("hookd_mig");
	struct db_options o = options(ci, 1);
	struct mig m;
	struct cap c, before;
	struct db *db;
	char count[16];

	ck_assert_int_gt(migrations_count, 0);
	ck_assert_int_eq(migrate_latest(), migrations[migrations_count - 1].version);
	memset(&m, 0, sizeof(m));
	migrate_start(base, dns, &o, mig_cb, &m);
	ck_assert_int_eq(m.done, 0);
	ck_assert(wait_until(mig_done, &m, 30000));
	ck_assert_msg(m.rc == 0, "%s", m.err);
	ck_assert_int_eq(m.version, migrate_latest());

	db = pool_up(ci, 1);
	must_sql(db, migrate_version_sql, &c);
	ck_assert_int_eq(atoi(c.val[0][0]), migrate_latest());
	must_sql(
	    db, "SELECT count(*), max(applied_at)::text FROM hookd.schema_migrations", &before);
	snprintf(count, sizeof(count), "%d", migrations_count);
	ck_assert_str_eq(before.val[0][0], count);
	must_sql(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hookd'", &c);
	ck_assert_int_gt(atoi(c.val[0][0]), 5);

	/* Again: nothing to do, nothing touched. */
	memset(&m, 0, sizeof(m));
	migrate_start(base, dns, &o, mig_cb, &m);
	ck_assert(wait_until(mig_done, &m, 30000));
	ck_assert_msg(m.rc == 0, "%s", m.err);
	ck_assert_int_eq(m.version, migrate_latest());
	must_sql(db, "SELECT count(*), max(applied_at)::text FROM hookd.schema_migrations", &c);
	ck_assert_str_eq(c.val[0][0], before.val[0][0]);
	ck_assert_str_eq(c.val[0][1], before.val[0][1]);
	db_free(db);

	/* No server there: -1 and a reason, still from the loop. */
	{
		int port, fd = blackhole(&port);
		char bad[128];
		struct mig f;

		close(fd); /* nothing listens there now */
		snprintf(bad, sizeof(bad), "host=127.0.0.1 port=%d dbname=x", port);
		o = options(bad, 1);
		memset(&f, 0, sizeof(f));
		migrate_start(base, dns, &o, mig_cb, &f);
		ck_assert_int_eq(f.done, 0);
		ck_assert(wait_until(mig_done, &f, 10000));
		ck_assert_int_eq(f.rc, -1);
		ck_assert_msg(strstr(f.err, "cannot connect") != NULL, "%s", f.err);
	}
	/* Waiting for the advisory lock another session holds, then cancelled. */
	{
		struct mig x;
		struct migrate *mg;

		db = pool_up(ci, 1);
		must_sql(db, "SELECT pg_advisory_lock(448546171748)", &c);
		o = options(ci, 1);
		memset(&x, 0, sizeof(x));
		mg = migrate_start(base, dns, &o, mig_cb, &x);
		spin(300);
		ck_assert_int_eq(x.done, 0); /* it waits its turn */
		must_sql(db,
		    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
		    "AND NOT granted",
		    &c);
		ck_assert_str_eq(c.val[0][0], "1");
		migrate_cancel(mg);
		spin(200);
		ck_assert_int_eq(x.done, 0);
		/*
		 * libpq 15 has no non-blocking cancel, so the server-side wait goes on until
		 * the lock is free; the orphaned backend then finds its client gone and exits.
		 */
		must_sql(db, "SELECT pg_advisory_unlock(448546171748)", &c);
		ck_assert_str_eq(c.val[0][0], "t");
		for (int i = 0; i < 50; i++) {
			must_sql(
			    db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", &c);
			if (strcmp(c.val[0][0], "0") == 0)
				break;
			spin(100);
		}
		ck_assert_str_eq(c.val[0][0], "0");
		db_free(db);
	}
	free(ci);
}
END_TEST

/* A migration that fails is rolled back whole and reported with its name. */
START_TEST(test_migrate_fails)
{
	char *ci = fresh_database("hookd_migfail");
	struct db_options o = options(ci, 1);
	struct db *db = pool_up(ci, 1);
	struct mig m;
	struct cap c;

	/* Something 001 creates is in the way. */
	must_sql(db, "CREATE SCHEMA hookd", &c);
	must_sql(db, "CREATE TYPE hookd.delivery_status AS ENUM ('x')", &c);
	memset(&m, 0, sizeof(m));
	migrate_start(base, dns, &o, mig_cb, &m);
	ck_assert(wait_until(mig_done, &m, 30000));
	ck_assert_int_eq(m.rc, -1);
	ck_assert_msg(strncmp(m.err, "migration 001_init: ", 20) == 0, "%s", m.err);
	ck_assert_msg(strstr(m.err, "already exists") != NULL, "%s", m.err);
	ck_assert_int_eq(m.version, 0);
	/* Nothing of 001 stayed: not its first type, not its row. */
	must_sql(db,
	    "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
	    "WHERE n.nspname = 'hookd' AND t.typname = 'event_status'",
	    &c);
	ck_assert_str_eq(c.val[0][0], "0");
	must_sql(db, "SELECT count(*) FROM hookd.schema_migrations", &c);
	ck_assert_str_eq(c.val[0][0], "0");
	/* The lock went with the connection: the next run gets it and succeeds. */
	must_sql(db, "DROP TYPE hookd.delivery_status", &c);
	memset(&m, 0, sizeof(m));
	migrate_start(base, dns, &o, mig_cb, &m);
	ck_assert(wait_until(mig_done, &m, 30000));
	ck_assert_msg(m.rc == 0, "%s", m.err);
	ck_assert_int_eq(m.version, migrate_latest());
	db_free(db);
	free(ci);
}
END_TEST

START_TEST(test_migrate_race)
{
	char *ci = fresh_database("hookd_race");
	struct db_options o = options(ci, 1);
	struct mig m[2];
	struct cap c;
	struct db *db;
	char count[16];

	memset(m, 0, sizeof(m));
	migrate_start(base, dns, &o, mig_cb, &m[0]);
	migrate_start(base, dns, &o, mig_cb, &m[1]);
	ck_assert(wait_until(migs_done, m, 30000));
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(m[i].rc == 0, "migration %d: %s", i, m[i].err);
		ck_assert_int_eq(m[i].version, migrate_latest());
		ck_assert_int_eq(m[i].done, 1);
	}
	db = pool_up(ci, 1);
	must_sql(db, "SELECT count(*), count(DISTINCT version) FROM hookd.schema_migrations", &c);
	snprintf(count, sizeof(count), "%d", migrations_count);
	ck_assert_str_eq(c.val[0][0], count);
	ck_assert_str_eq(c.val[0][1], count);
	db_free(db);
	free(ci);
}
END_TEST

static Suite *
db_suite(void)
{
	Suite *s = suite_create("db");
	TCase *tc;

	tc = tcase_create("pool");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_conn_params);
	tcase_add_test(tc, test_params);
	tcase_add_test(tc, test_prepared);
	tcase_add_test(tc, test_group_commit);
	tcase_add_test(tc, test_group_rollback);
	tcase_add_test(tc, test_many_pipelined);
	tcase_add_test(tc, test_long_statement_is_passed_over);
	tcase_add_test(tc, test_large_pipelined);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_hostname_dns);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_queue_timeout);
	tcase_add_test(tc, test_down_fail_fast);
	tcase_add_test(tc, test_reconnect_reprepare);
	tcase_add_test(tc, test_lost_in_flight);
	suite_add_tcase(s, tc);

	tc = tcase_create("listen");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_listen);
	suite_add_tcase(s, tc);

	tc = tcase_create("migrate");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_migrate);
	tcase_add_test(tc, test_migrate_fails);
	tcase_add_test(tc, test_migrate_race);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(db_suite());
	int failed;

	if (getenv("HOOKD_TEST_DEBUG") != NULL)
		log_set_level(LOG_LEVEL_DEBUG);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
