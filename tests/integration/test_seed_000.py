# SPDX-License-Identifier: ISC
"""Seed 000, the Customer Webhooks API: the seed's curl examples against hookd's
/api/webhooks/customer, answered by contrib/examples/omniops.sql through the synchronous
SQL handler of the "customer" source (which hookd makes on start-up).

Each test asserts the status, the body and the rows: hookd.events for what was stored,
omniops.* for what the handler did.
"""

import hashlib
import hmac
import itertools
import json
import os
import re

import pytest

import hookd_harness as hh

TOP = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(__file__), "..", "..")
OMNIOPS_SQL = os.path.join(TOP, "contrib", "examples", "omniops.sql")
ROUTE = "/api/webhooks/customer"
JSON = {"Content-Type": "application/json"}
JOB_ID = "123e4567-e89b-12d3-a456-426614174000"
CONFIG_ID = "456e7890-e89b-12d3-a456-426614174000"

# The seed's curl examples, with their bodies exactly as the seed writes them.
SCRAPE_JOB_BODY = b'''{
    "event": "scrape_job_created",
    "job_id": "123e4567-e89b-12d3-a456-426614174000",
    "domain": "example.com",
    "job_type": "domain_scrape",
    "status": "pending",
    "priority": 7
  }'''
SCRAPE_JOB_HEADERS = {"Content-Type": "application/json",
                      "x-supabase-signature": "signature_here"}
DB_CHANGE_BODY = b'''{
    "type": "INSERT",
    "table": "customer_configs",
    "record": {
      "id": "456e7890-e89b-12d3-a456-426614174000",
      "customer_id": "customer-123",
      "domain": "example.com",
      "settings": {"scraping_enabled": true}
    },
    "schema": "public"
  }'''

_dbs = itertools.count()


def load_examples(pg, db):
    with open(OMNIOPS_SQL) as f:
        pg.sql(f.read(), db=db)


@pytest.fixture(scope="module")
def examples(pg):
    load_examples(pg, "hookd")
    return pg


@pytest.fixture(scope="module")
def h(examples, module_hookd):
    return module_hookd


def fresh_db(pg, load=True):
    name = f"seed000_{next(_dbs)}"
    pg.create_database(name)
    if load:
        load_examples(pg, name)
    return name


def sign(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def events(h):
    return h.sql("SELECT e.event_type, e.status, e.payload, e.result FROM hookd.events e"
                 " JOIN hookd.sources s ON s.id = e.source_id WHERE s.slug = 'customer'"
                 " ORDER BY e.received_at, e.id")


def count_events(h):
    return len(events(h))


def reset_job(h, status="pending"):
    h.sql("DELETE FROM omniops.scrape_jobs WHERE id = %s", JOB_ID)
    if status is not None:
        h.sql("INSERT INTO omniops.scrape_jobs (id, domain, job_type, status, priority)"
              " VALUES (%s, 'example.com', 'domain_scrape', %s, 7)", JOB_ID, status)


# --- the seed's curl examples ---------------------------------------------------------------

def test_health_check(h):
    r = h.get(ROUTE)
    assert r.status == 200
    assert list(r.body) == ["status", "timestamp", "endpoint"]
    assert r.body["status"] == "ok" and r.body["endpoint"] == "customer-webhook"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r.body["timestamp"])


def test_source_made_on_start_up(h):
    rows = hh.wait_until(
        lambda: h.sql("SELECT handler, active FROM hookd.sources WHERE slug = 'customer'"),
        5 * hh.SLOW, message="the customer source")
    assert rows == [({"type": "sql_sync", "function": "omniops.handle_customer_webhook"}, True)]


def test_scrape_job_not_found(h):
    reset_job(h, status=None)
    before = count_events(h)
    r = h.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 404
    assert r.body == {"error": "Job not found or not pending", "job_id": JOB_ID}
    # Stored, handled, and the handler's answer kept with it.
    ev = events(h)
    assert len(ev) == before + 1
    etype, status, payload, result = ev[-1]
    assert (etype, status) == ("scrape_job_created", "processed")
    assert payload == json.loads(SCRAPE_JOB_BODY)
    assert result["status"] == 404


def test_scrape_job_not_pending(h):
    reset_job(h, status="running")
    r = h.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 404
    assert r.body == {"error": "Job not found or not pending", "job_id": JOB_ID}
    assert h.sql("SELECT count(*) FROM omniops.job_queue WHERE job_id = %s", JOB_ID) == [(0,)]


def test_scrape_job_queued(h):
    reset_job(h)
    r = h.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 200, r.body
    # (A handler's answer passes through jsonb: the members are the seed's, their order jsonb's.)
    assert sorted(r.body) == ["job_id", "message", "queue_id", "success"]
    assert r.body["success"] is True
    assert r.body["message"] == "Job queued for processing"
    assert r.body["job_id"] == JOB_ID
    assert re.fullmatch(r"queue_\d{10}_[0-9a-z]{9}", r.body["queue_id"])
    assert h.sql("SELECT queue_id, priority FROM omniops.job_queue WHERE job_id = %s",
                 JOB_ID) == [(r.body["queue_id"], 7)]
    # The same notification again queues nothing new: same queue id, one row.
    again = h.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert again.status == 200 and again.body == r.body
    assert h.sql("SELECT count(*) FROM omniops.job_queue WHERE job_id = %s", JOB_ID) == [(1,)]


@pytest.mark.parametrize("event", ["scrape_job_updated", "scrape_job_completed",
                                   "scrape_job_failed"])
def test_other_scrape_job_events(h, event):
    """The seed's other notification events take its one processing flow (its
    processScrapeJobWebhook does not look at the event name): a pending job is queued and
    its queue id returned; a job that is not pending is 404."""
    body = json.loads(SCRAPE_JOB_BODY)
    body["event"] = event
    reset_job(h)
    r = h.post(ROUTE, json=body, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 200, r.body
    assert sorted(r.body) == ["job_id", "message", "queue_id", "success"]
    assert (r.body["success"], r.body["message"], r.body["job_id"]) == (
        True, "Job queued for processing", JOB_ID)
    assert re.fullmatch(r"queue_\d{10}_[0-9a-z]{9}", r.body["queue_id"])
    assert h.sql("SELECT queue_id FROM omniops.job_queue WHERE job_id = %s", JOB_ID) == [
        (r.body["queue_id"],)]
    etype, status, payload, result = events(h)[-1]
    assert (etype, status, payload["event"]) == (event, "processed", event)
    assert result == {"status": 200, "body": r.body}

    # The job moved on (say it completed): the same notification is refused, nothing queued.
    reset_job(h, status="completed")
    r = h.post(ROUTE, json=body, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 404
    assert r.body == {"error": "Job not found or not pending", "job_id": JOB_ID}
    assert h.sql("SELECT count(*) FROM omniops.job_queue WHERE job_id = %s", JOB_ID) == [(0,)]
    assert events(h)[-1][:2] == (event, "processed")


def test_database_change_creates_the_initial_job_once(h):
    h.sql("DELETE FROM omniops.scrape_jobs WHERE idempotency_key = %s",
          f"customer_config:{CONFIG_ID}")
    r = h.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 200, r.body
    assert r.body == {"message": "Customer config webhook processed",
                      "actions": ["Created initial scrape job"]}
    jobs = h.sql("SELECT domain, job_type, status, priority, config, metadata"
                 " FROM omniops.scrape_jobs WHERE idempotency_key = %s",
                 f"customer_config:{CONFIG_ID}")
    assert jobs == [("example.com", "initial_scrape", "pending", 6,
                     {"depth": 2, "maxPages": 50, "timeout": 30000},
                     {"source": "webhook", "customer_id": "customer-123",
                      "trigger": "new_customer_config"})]
    assert events(h)[-1][:2] == ("customer_config_insert", "processed")
    # Supabase repeats a webhook: no second job.
    r = h.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 200
    assert r.body["message"] == "Customer config webhook processed"
    assert r.body["actions"] == ["Initial scrape job already exists"]
    assert h.sql("SELECT count(*) FROM omniops.scrape_jobs WHERE idempotency_key = %s",
                 f"customer_config:{CONFIG_ID}") == [(1,)]
    # The handler keeps its copy of the config.
    assert h.sql("SELECT customer_id, domain FROM omniops.customer_configs WHERE id = %s",
                 CONFIG_ID) == [("customer-123", "example.com")]


def test_database_change_max_pages_and_update(h):
    """The payload-structure example: settings.max_pages becomes the job's maxPages."""
    payload = {"type": "INSERT", "table": "customer_configs",
               "record": {"id": "cfg-max-pages", "customer_id": "customer-9",
                          "domain": "example.org",
                          "settings": {"scraping_enabled": True, "max_pages": 100},
                          "metadata": {"created_by": "user@example.com"},
                          "created_at": "2024-01-01T10:00:00.000Z",
                          "updated_at": "2024-01-01T10:00:00.000Z"},
               "old_record": None, "schema": "public"}
    r = h.post(ROUTE, json=payload)
    assert r.status == 200 and r.body["actions"] == ["Created initial scrape job"]
    assert h.sql("SELECT config->'maxPages' FROM omniops.scrape_jobs"
                 " WHERE idempotency_key = 'customer_config:cfg-max-pages'") == [(100,)]
    payload["type"] = "UPDATE"
    r = h.post(ROUTE, json=payload)
    assert r.status == 200
    assert r.body == {"message": "Customer config webhook processed"}
    assert events(h)[-1][0] == "customer_config_update"


def test_customer_config_update_changes_only_the_copy(h):
    """The seed's prose says an UPDATE "detects domain changes, updates existing jobs,
    triggers re-scraping"; its handleCustomerConfigChange does none of it and answers only
    the message. hookd follows the code (docs/seed-000 says so): the answer is the message,
    the handler's copy of the config follows, no job is made or changed."""
    rec = {"id": "cfg-update", "customer_id": "customer-7", "domain": "before.example"}
    r = h.post(ROUTE, json={"type": "INSERT", "table": "customer_configs", "record": rec})
    assert r.status == 200 and r.body["actions"] == ["Created initial scrape job"]
    jobs_before = h.sql("SELECT id, domain, status, updated_at FROM omniops.scrape_jobs"
                        " ORDER BY id")
    r = h.post(ROUTE, json={"type": "UPDATE", "table": "customer_configs",
                            "record": dict(rec, domain="after.example",
                                           settings={"max_pages": 500}),
                            "old_record": rec, "schema": "public"})
    assert r.status == 200, r.body
    assert r.body == {"message": "Customer config webhook processed"}
    assert h.sql("SELECT domain, settings FROM omniops.customer_configs WHERE id = %s",
                 rec["id"]) == [("after.example", {"max_pages": 500})]
    assert h.sql("SELECT id, domain, status, updated_at FROM omniops.scrape_jobs"
                 " ORDER BY id") == jobs_before
    assert events(h)[-1][:2] == ("customer_config_update", "processed")


def test_domain_change(h):
    rec = {"id": "dom-1", "domain": "Example.net", "customer_id": "customer-123"}
    r = h.post(ROUTE, json={"type": "INSERT", "table": "domains", "record": rec,
                            "schema": "public"})
    assert r.status == 200, r.body
    assert r.body == {"message": "Domain webhook processed",
                      "actions": ["Validated domain", "Created domain profile",
                                  "Scheduled initial crawl"]}
    assert h.sql("SELECT domain, is_valid, status FROM omniops.domains WHERE id = 'dom-1'") == [
        ("example.net", True, "active")]
    assert h.sql("SELECT count(*) FROM omniops.scrape_jobs"
                 " WHERE idempotency_key = 'domain:dom-1'") == [(1,)]
    r = h.post(ROUTE, json={"type": "UPDATE", "table": "domains",
                            "record": dict(rec, domain="not a domain"), "old_record": rec})
    assert r.status == 200
    assert r.body["actions"] == ["Domain validation failed", "Updated domain profile",
                                 "Re-validated changed domain"]
    assert h.sql("SELECT is_valid, status FROM omniops.domains WHERE id = 'dom-1'") == [
        (False, "invalid")]
    assert events(h)[-1][0] == "domain_update"


def test_other_table_not_handled(h):
    r = h.post(ROUTE, json={"type": "INSERT", "table": "users", "record": {"id": 1}})
    assert r.status == 200
    assert r.body == {"message": "Webhook for table users not handled"}


def test_unknown_format_is_refused_before_storage(h):
    before = count_events(h)
    for body in ({"hello": "world"}, {"type": "INSERT"}, {"event": ""}, [1, 2]):
        r = h.post(ROUTE, json=body)
        assert r.status == 400
        assert r.body == {"error": "Unknown webhook format",
                          "details": "Payload does not match expected schemas"}
    r = h.post(ROUTE, body=b'{"event": ', headers=JSON)
    assert r.status == 400
    assert r.body["error"] == "Invalid JSON" and r.body["details"]
    r = h.post(ROUTE, body=b"event=x", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    assert r.body == {"error": "Unsupported media type",
                      "details": "Content-Type must be application/json"}
    assert count_events(h) == before


def test_seed_integration_tests(h):
    """The seed's own Jest examples (job ids that are not uuids are simply not found)."""
    r = h.post(ROUTE, json={"event": "scrape_job_created", "job_id": "test-job-id",
                            "domain": "example.com", "job_type": "domain_scrape",
                            "status": "pending", "priority": 5})
    assert r.status == 404 and r.body["job_id"] == "test-job-id"
    r = h.post(ROUTE, json={"type": "INSERT", "table": "customer_configs",
                            "record": {"id": "test-config-id", "domain": "example.com",
                                       "customer_id": "customer-123"}, "schema": "public"})
    assert r.status == 200 and "processed" in r.body["message"]


# --- signatures -----------------------------------------------------------------------------

def test_signature_required_when_secret_is_set(examples, hookd_factory):
    secret = "supabase-test-secret"
    h2 = hookd_factory(env={"SUPABASE_WEBHOOK_SECRET": secret})
    before = count_events(h2)
    r = h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 400
    assert r.body == {"error": "Missing signature",
                      "details": "x-supabase-signature header required when webhook secret "
                                 "is configured"}
    # The seed's scrape-job example sends "signature_here": refused once a secret is set.
    r = h2.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 401
    assert r.body == {"error": "Invalid webhook signature",
                      "details": "Signature verification failed"}
    r = h2.post(ROUTE, body=DB_CHANGE_BODY,
                headers=dict(JSON, **{"x-supabase-signature": sign("wrong", DB_CHANGE_BODY)}))
    assert r.status == 401
    assert count_events(h2) == before
    r = h2.post(ROUTE, body=DB_CHANGE_BODY,
                headers=dict(JSON, **{"x-supabase-signature": sign(secret, DB_CHANGE_BODY)}))
    assert r.status == 200, r.body
    assert r.body["message"] == "Customer config webhook processed"
    assert count_events(h2) == before + 1
    # Never a signature or secret in the log.
    assert secret not in h2.log_text() and "signature_here" not in h2.log_text()


# --- failures and metrics ---------------------------------------------------------------------

def test_missing_handler_function(pg, hookd_factory):
    """Examples not loaded: the seed's 500, and the event kept as failed with the reason."""
    db = fresh_db(pg, load=False)
    h2 = hookd_factory(db=db)
    r = h2.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 500
    assert r.body == {"error": "Internal server error", "details": "Failed to process webhook"}
    rows = h2.sql("SELECT status, error FROM hookd.events")
    assert len(rows) == 1 and rows[0][0] == "failed"
    assert "omniops" in rows[0][1] and "does not exist" in rows[0][1]
    h2.wait_for_log(lambda l: "omniops.sql loaded" in l.get("msg", ""))


def test_queue_failure_is_the_seeds_500(pg, hookd_factory):
    """The queue insert fails (here a trigger standing in for an unavailable queue): the
    seed's 500 "Failed to queue job", nothing queued, the job still pending, the event kept
    with that answer and counted as a queue_system_error; once the queue works the same
    notification is queued."""
    db = fresh_db(pg)
    h2 = hookd_factory(db=db)
    h2.sql("INSERT INTO omniops.scrape_jobs (id, domain, job_type, status, priority)"
           " VALUES (%s, 'example.com', 'domain_scrape', 'pending', 7)", JOB_ID)
    h2.sql("""CREATE FUNCTION public.queue_down() RETURNS trigger LANGUAGE plpgsql AS
              $$ BEGIN RAISE EXCEPTION 'queue system unavailable'; END $$;
              CREATE TRIGGER queue_down BEFORE INSERT ON omniops.job_queue
              FOR EACH ROW EXECUTE FUNCTION public.queue_down()""")
    r = h2.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 500
    assert r.body == {"error": "Failed to queue job", "job_id": JOB_ID,
                      "details": "Queue system temporarily unavailable"}
    assert h2.sql("SELECT count(*) FROM omniops.job_queue") == [(0,)]
    assert h2.sql("SELECT status FROM omniops.scrape_jobs WHERE id = %s", JOB_ID) == [
        ("pending",)]
    etype, status, _, result = events(h2)[-1]
    assert (etype, status) == ("scrape_job_created", "processed")
    assert result == {"status": 500, "body": r.body}
    m = h2.get(ROUTE + "/metrics", auth=True).body["webhookMetrics"]
    assert m["errors"]["queue_system_error"] == 1 and m["failed"] == 1

    h2.sql("DROP TRIGGER queue_down ON omniops.job_queue")
    r = h2.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 200, r.body
    assert h2.sql("SELECT queue_id FROM omniops.job_queue WHERE job_id = %s", JOB_ID) == [
        (r.body["queue_id"],)]


def test_metrics(pg, hookd_factory):
    db = fresh_db(pg)
    secret = "metrics-secret"
    h2 = hookd_factory(db=db, env={"SUPABASE_WEBHOOK_SECRET": secret})
    r = h2.get(ROUTE + "/metrics")
    assert r.status == 401  # admin only

    def signed(body):
        return dict(JSON, **{"x-supabase-signature": sign(secret, body)})

    unknown = b'{"hello": "world"}'
    assert h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON).status == 400
    assert h2.post(ROUTE, body=DB_CHANGE_BODY, headers=SCRAPE_JOB_HEADERS).status == 401
    assert h2.post(ROUTE, body=unknown, headers=signed(unknown)).status == 400
    assert h2.post(ROUTE, body=SCRAPE_JOB_BODY, headers=signed(SCRAPE_JOB_BODY)).status == 404
    assert h2.post(ROUTE, body=DB_CHANGE_BODY, headers=signed(DB_CHANGE_BODY)).status == 200

    r = h2.get(ROUTE + "/metrics", auth=True)
    assert r.status == 200, r.body
    m = r.body["webhookMetrics"]
    assert list(m) == ["totalReceived", "processed", "failed", "successRate",
                       "avgProcessingTime", "byType", "errors"]
    assert m["totalReceived"] == 5
    assert m["processed"] == 1
    assert m["failed"] == 4
    assert m["successRate"] == 0.2
    assert 0 < m["avgProcessingTime"] < 1000
    assert m["byType"] == {"customer_config_insert": 1, "scrape_job_created": 1}
    assert m["errors"] == {"signature_verification": 2, "job_not_found": 1,
                           "queue_system_error": 0, "unknown_format": 1}


def test_source_made_again_and_turned_off(pg, hookd_factory):
    """The route needs no set-up: a deleted source is made again on the next request; a
    source set inactive turns the route off."""
    db = fresh_db(pg)
    h2 = hookd_factory(db=db)
    assert h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON).status == 200
    h2.sql("DELETE FROM hookd.sources WHERE slug = 'customer'")
    h2.sql("NOTIFY hookd_config, 'sources'")


    def made_again():
        r = h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
        assert r.status in (200, 503), r  # 503 only while it waits for the new source
        return h2.sql("SELECT count(*) FROM hookd.sources WHERE slug = 'customer'") == [(1,)]
    hh.wait_until(made_again, 10 * hh.SLOW, interval=0.1, message="the source made again")
    hh.wait_until(lambda: h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON).status == 200,
                  5 * hh.SLOW, message="the route working again")
    r = h2.patch("/api/v1/sources/customer", json={"active": False}, auth=True)
    assert r.status == 200, r.body
    r = hh.wait_until(lambda: (lambda x: x if x.status == 410 else None)(
        h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)), 5 * hh.SLOW,
        message="the route turned off")
    assert r.body == {"error": "Webhook endpoint disabled",
                      "details": "The customer webhook source is not active"}


# --- the source's own settings on this route ----------------------------------------------

# A probe that is never stored: 415 (text/plain) until the cache has max_body, then 413.
BIG_BODY = json.dumps({"event": "scrape_job_created", "pad": "x" * 1500}).encode()
TEXT = {"Content-Type": "text/plain"}


def customer_source(h):
    return hh.wait_until(lambda: h.sql("SELECT id FROM hookd.sources WHERE slug = 'customer'"),
                         5 * hh.SLOW, message="the customer source")[0][0]


def patch_customer(h, fields, ready):
    """PATCH the customer source, then wait until this hookd's cache has the change."""
    customer_source(h)
    r = h.patch("/api/v1/sources/customer", json=fields, auth=True)
    assert r.status == 200, r.body
    hh.wait_until(ready, 5 * hh.SLOW, message="the change in hookd's cache")
    return r.body


def test_editing_the_source_turns_no_verification_on(pg, hookd_factory):
    """A PATCH that names neither the verifier nor secrets makes no secret: with
    SUPABASE_WEBHOOK_SECRET unset, the seed's unsigned curl examples keep their answers."""
    h2 = hookd_factory(db=fresh_db(pg))
    # max_body as well, so that a refused big body shows the cache has the change
    src = patch_customer(h2, {"rate_limit": {"per_second": 1000, "burst": 1000},
                              "max_body": 1000},
                         lambda: h2.post(ROUTE, body=BIG_BODY, headers=TEXT).status == 413)
    assert "secret" not in src and src["secrets"] == []
    assert src["rate_limit"] == {"per_second": 1000, "burst": 1000}
    assert src["verifier"] == {"scheme": "supabase"}
    assert h2.sql("SELECT secrets FROM hookd.sources WHERE slug = 'customer'") == [([],)]

    r = h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 200, r.body
    assert r.body == {"message": "Customer config webhook processed",
                      "actions": ["Created initial scrape job"]}
    # The placeholder signature is not checked either: the job is just not there.
    r = h2.post(ROUTE, body=SCRAPE_JOB_BODY, headers=SCRAPE_JOB_HEADERS)
    assert r.status == 404, r.body
    assert r.body == {"error": "Job not found or not pending", "job_id": JOB_ID}
    assert [e[:2] for e in events(h2)] == [("customer_config_insert", "processed"),
                                           ("scrape_job_created", "processed")]


def test_source_ip_allowlist_and_rate_limit_apply(pg, hookd_factory):
    """The source's allowlist and rate limit are checked here as on /in/customer."""
    h2 = hookd_factory(db=fresh_db(pg))
    # (a text/plain probe is refused, 415 or 403, and stores nothing either way)
    patch_customer(h2, {"ip_allowlist": ["10.0.0.0/8"]},
                   lambda: h2.post(ROUTE, body=DB_CHANGE_BODY,
                                   headers={"Content-Type": "text/plain"}).status == 403)
    r = h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 403
    assert r.body == {"error": "Forbidden",
                      "details": "This client address may not send webhooks here"}
    r = h2.post("/in/customer", body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 403 and r.body["error"] == "forbidden"
    assert count_events(h2) == 0

    patch_customer(h2, {"ip_allowlist": ["127.0.0.0/8"],
                        "rate_limit": {"per_second": 0.01, "burst": 1}, "max_body": 1000},
                   lambda: h2.post(ROUTE, body=BIG_BODY, headers=TEXT).status == 413)
    r = h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 200, r.body
    assert r.body["message"] == "Customer config webhook processed"
    r = h2.post(ROUTE, body=DB_CHANGE_BODY, headers=JSON)
    assert r.status == 429
    assert r.body == {"error": "Too many requests", "details": "Rate limit exceeded; retry later"}
    assert 1 <= int(r.headers["Retry-After"]) <= 100
    assert count_events(h2) == 1
