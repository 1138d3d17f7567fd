/* SPDX-License-Identifier: ISC */
/* System routes: liveness, readiness, Prometheus metrics. */
#include "config.h"

#include <string.h>

#include "hookd/api_system.h"
#include "hookd/app.h"
#include "hookd/db.h"
#include "hookd/http_server.h"
#include "hookd/json.h"
#include "hookd/metrics.h"
#include "hookd/migrate.h"

/* GET /healthz: the process is alive and its loop turns. */
static void
healthz(struct http_req *r, void *arg)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "status", "ok");
	http_reply_json(r, 200, o);
}

static void
not_ready(struct http_req *r, const char *reason)
{
	struct json_object *o = json_object_new_object();

	json_set_str(o, "status", "unavailable");
	json_set_str(o, "reason", reason);
	http_reply_header(r, "Retry-After", "1");
	http_reply_json(r, 503, o);
}

struct readyz_ctx {
	struct app *app;
	struct http_req *req;
};

static void
readyz_cb(const struct db_result *res, void *arg)
{
	struct readyz_ctx *c = arg;
	struct app *app = c->app;
	struct http_req *r = c->req;
	struct json_object *o;
	int version = 0;
	char reason[160];

	free(c);
	if (res->status == DB_OK) {
		const char *v = db_value(res->res[0], 0, 0);

		version = v ? atoi(v) : 0;
	} else if (res->status != DB_ERR_SQL ||
	           (strcmp(res->sqlstate, "42P01") != 0 && strcmp(res->sqlstate, "3F000") != 0)) {
		snprintf(reason, sizeof(reason), "database unavailable: %s", res->error);
		not_ready(r, reason);
		return;
	}
	app->schema_version = version;
	if (version < migrate_latest()) {
		snprintf(reason, sizeof(reason), "schema at version %d, this hookd needs %d%s",
		    version, migrate_latest(),
		    app->migrating ? " (migrating)" : "; run hookd migrate");
		not_ready(r, reason);
		return;
	}
	o = json_object_new_object();
	json_set_str(o, "status", "ready");
	json_set_int(o, "schema_version", version);
	http_reply_json(r, 200, o);
}

/* GET /readyz: the pool has a connection, the database answers, the schema is current. */
static void
readyz(struct http_req *r, void *arg)
{
	struct app *app = arg;
	struct readyz_ctx *c;

	/* Probes that arrive while draining steer traffic away; those in flight finish. */
	if (app->draining) {
		not_ready(r, "shutting down");
		return;
	}
	if (db_ready_count(app->db) == 0) {
		not_ready(r, "database unavailable");
		return;
	}
	c = xmalloc(sizeof(*c));
	c->app = app;
	c->req = r;
	db_query(app->db, migrate_version_sql, NULL, readyz_cb, c);
}

/* GET /metrics: Prometheus text exposition. */
static void
metrics(struct http_req *r, void *arg)
{
	size_t len;
	char *text = metrics_render(&len);

	http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

void
api_system_register(struct app *app)
{
	http_server_route(app->http, "GET", "/healthz", 0, healthz, app);
	http_server_route(app->http, "GET", "/readyz", 0, readyz, app);
	http_server_route(app->http, "GET", "/metrics", HTTP_ADMIN, metrics, app);
}
