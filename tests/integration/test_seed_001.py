# SPDX-License-Identifier: ISC
"""Seed 001, the Webhook Implementation Guide: the seed's curl examples against hookd's
/api/v1/webhooks/supabase and /notion (202 once committed), the background processing by
contrib/examples/memory.sql with its retry schedule (3 attempts: at once, after 2 s, after
4 s more), the stats and the payload test route.

Each test asserts the status, the body and the rows: hookd.events and hookd.event_logs for
what hookd stored and ran, memory.cache for what the handler did.
"""

import datetime
import hashlib
import hmac
import itertools
import json
import os
import re

import pytest

import hookd_harness as hh

TOP = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(__file__), "..", "..")
MEMORY_SQL = os.path.join(TOP, "contrib", "examples", "memory.sql")
JSON = {"Content-Type": "application/json"}
ACCEPTED = "Webhook payload received and queued for processing"

# The seed's curl examples, bodies exactly as written.
SUPABASE_CURL = b'''{
    "event_type": "insert",
    "source": "supabase",
    "table_name": "users",
    "record_id": "test-123",
    "data": {"name": "Test User"},
    "timestamp": "2026-01-01T15:00:00Z"
  }'''
NOTION_CURL = b'''{
    "event_type": "update",
    "source": "notion",
    "table_name": "database-id",
    "record_id": "page-id",
    "data": {"properties": {}},
    "timestamp": "2026-01-01T15:00:00Z"
  }'''
TEST_CURL = b'''{
    "event_type": "insert",
    "source": "supabase",
    "table_name": "test",
    "record_id": "123",
    "data": {}
  }'''
# The request bodies of the seed's endpoint sections.
SUPABASE_EXAMPLE = {
    "event_type": "insert", "source": "supabase", "table_name": "users",
    "record_id": "123e4567-e89b-12d3-a456-426614174000",
    "data": {"id": "123e4567-e89b-12d3-a456-426614174000", "name": "John Doe",
             "email": "john@example.com", "created_at": "2026-01-01T15:00:00Z"},
    "timestamp": "2026-01-01T15:00:00Z", "metadata": {"schema": "public"}}
NOTION_EXAMPLE = {
    "event_type": "update", "source": "notion",
    "table_name": "e8d4b0a1c7f24a9e8f2d5c3b1a6e9f4d",
    "record_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
    "data": {"properties": {
        "Name": {"type": "title", "title": [{"plain_text": "Project Alpha"}]},
        "Status": {"type": "select", "select": {"name": "In Progress"}}}},
    "timestamp": "2026-01-01T15:00:00Z"}

_dbs = itertools.count()


def load_examples(pg, db):
    with open(MEMORY_SQL) as f:
        pg.sql(f.read(), db=db)


def new_db(pg, name):
    """A database migrated before hookd starts (as contrib/dev does), examples loaded."""
    pg.create_database(name)
    hh.run_hookd_cli(pg.url_for(name), "migrate")
    load_examples(pg, name)


def fresh(pg, hookd_factory, env=None):
    """A hookd on a new database of its own (examples loaded), polling often."""
    name = f"seed001_{next(_dbs)}"
    new_db(pg, name)
    return hookd_factory(config={"process_poll_interval": "100ms"}, db=name, env=env)


@pytest.fixture(scope="module")
def h(pg, test_root):
    """One hookd for the module's tests, on its own database."""
    new_db(pg, "seed001")
    h = hh.Hookd(pg, test_root, config={"process_poll_interval": "100ms"}, db="seed001")
    try:
        h.start()
        yield h
    finally:
        h.finish()


def event_by_record(h, source, record_id):
    rows = h.sql("SELECT e.id, e.event_type, e.status, e.attempts, e.payload, e.result"
                 " FROM hookd.events e JOIN hookd.sources s ON s.id = e.source_id"
                 " WHERE s.slug = %s AND e.payload->>'record_id' = %s"
                 " ORDER BY e.received_at DESC LIMIT 1", source, record_id)
    assert rows, f"no {source} event for record {record_id}"
    return dict(zip(("id", "event_type", "status", "attempts", "payload", "result"), rows[0]))


def wait_processed(h, source, record_id, status="processed", timeout=10):
    return hh.wait_until(
        lambda: (lambda e: e if e["status"] == status else None)(
            event_by_record(h, source, record_id)),
        timeout * hh.SLOW, message=f"{source}/{record_id} {status}")


def cache(h, source, table, record_id):
    return h.sql("SELECT data, last_event_type, version FROM memory.cache"
                 " WHERE source = %s AND table_name = %s AND record_id = %s",
                 source, table, record_id)


def sign(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- the seed's curl examples ---------------------------------------------------------------

def test_supabase_curl(h):
    r = h.post("/api/v1/webhooks/supabase", body=SUPABASE_CURL, headers=JSON)
    assert r.status == 202, r.body
    assert r.body == {"status": "accepted", "message": ACCEPTED,
                      "details": {"event_type": "insert", "source": "supabase",
                                  "record_id": "test-123", "table_name": "users",
                                  "timestamp": "2026-01-01T15:00:00Z"}}
    assert list(r.body) == ["status", "message", "details"]
    assert list(r.body["details"]) == ["event_type", "source", "record_id", "table_name",
                                       "timestamp"]
    # Committed before the 202: the row is there now, with the payload as sent.
    ev = event_by_record(h, "supabase", "test-123")
    assert ev["event_type"] == "insert"
    assert ev["payload"] == json.loads(SUPABASE_CURL)
    # Then the worker runs memory.process_webhook.
    ev = wait_processed(h, "supabase", "test-123")
    assert ev["attempts"] == 1
    assert ev["result"]["actions"] == ["data_verification", "cache_updated"]
    assert cache(h, "supabase", "users", "test-123") == [({"name": "Test User"}, "insert", 1)]
    logs = h.sql("SELECT action, success FROM hookd.event_logs WHERE event_id = %s", ev["id"])
    assert logs == [("sql", True)]


def test_notion_curl(h):
    r = h.post("/api/v1/webhooks/notion", body=NOTION_CURL, headers=JSON)
    assert r.status == 202, r.body
    assert r.body == {"status": "accepted", "message": ACCEPTED,
                      "details": {"event_type": "update", "source": "notion",
                                  "record_id": "page-id", "database_id": "database-id",
                                  "timestamp": "2026-01-01T15:00:00Z"}}
    assert list(r.body["details"]) == ["event_type", "source", "record_id", "database_id",
                                       "timestamp"]
    wait_processed(h, "notion", "page-id")
    assert cache(h, "notion", "database-id", "page-id") == [({"properties": {}}, "update", 1)]


def test_endpoint_examples(h):
    r = h.post("/api/v1/webhooks/supabase", json=SUPABASE_EXAMPLE)
    assert r.status == 202
    assert r.body["details"] == {"event_type": "insert", "source": "supabase",
                                 "record_id": "123e4567-e89b-12d3-a456-426614174000",
                                 "table_name": "users", "timestamp": "2026-01-01T15:00:00Z"}
    r = h.post("/api/v1/webhooks/notion", json=NOTION_EXAMPLE)
    assert r.status == 202
    assert r.body["details"] == {"event_type": "update", "source": "notion",
                                 "record_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                                 "database_id": "e8d4b0a1c7f24a9e8f2d5c3b1a6e9f4d",
                                 "timestamp": "2026-01-01T15:00:00Z"}
    ev = wait_processed(h, "supabase", "123e4567-e89b-12d3-a456-426614174000")
    assert ev["result"]["verification"] == "ok"
    wait_processed(h, "notion", "a1b2c3d4-e5f6-7890-abcd-ef1234567890")
    assert cache(h, "notion", "e8d4b0a1c7f24a9e8f2d5c3b1a6e9f4d",
                 "a1b2c3d4-e5f6-7890-abcd-ef1234567890")[0][0] == NOTION_EXAMPLE["data"]


def test_supabase_trigger_shape(h):
    """What the seed's trigger sends: TG_OP in upper case, a numeric id, NOW() as text."""
    rec = {"event_type": "UPDATE", "source": "supabase", "table_name": "users",
           "record_id": 42, "data": {"id": 42, "name": "Ann"},
           "timestamp": "2026-01-01 15:00:00.123456+00"}
    r = h.post("/api/v1/webhooks/supabase", json=rec)
    assert r.status == 202
    assert r.body["details"]["record_id"] == "42"
    assert r.body["details"]["event_type"] == "UPDATE"
    ev = wait_processed(h, "supabase", "42")
    assert ev["result"]["actions"] == ["data_verification", "cache_updated"]
    assert cache(h, "supabase", "users", "42")[0][1] == "update"
    # A delete invalidates the cached record.
    r = h.post("/api/v1/webhooks/supabase", json=dict(rec, event_type="DELETE",
                                                     timestamp="2026-01-01T15:01:00Z"))
    assert r.status == 202
    hh.wait_until(lambda: not cache(h, "supabase", "users", "42"), 10 * hh.SLOW,
                  message="cache entry removed")
    assert event_by_record(h, "supabase", "42")["result"]["actions"] == [
        "data_verification", "cache_invalidated"]


def test_timestamp_defaults_to_receipt(h):
    r = h.post("/api/v1/webhooks/supabase",
               json={"event_type": "insert", "source": "supabase", "table_name": "users",
                     "record_id": "no-ts", "data": {}})
    assert r.status == 202
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r.body["details"]["timestamp"])


# --- errors -------------------------------------------------------------------------------

def test_invalid_source(h):
    body = json.loads(NOTION_CURL)
    before = h.sql("SELECT count(*) FROM hookd.events")
    r = h.post("/api/v1/webhooks/supabase", json=body)
    assert r.status == 400
    assert r.body == {"error": "invalid_source",
                      "message": "Invalid source type for Supabase webhook",
                      "expected": "supabase", "received": "notion"}
    r = h.post("/api/v1/webhooks/notion", json=json.loads(SUPABASE_CURL))
    assert r.status == 400
    assert r.body == {"error": "invalid_source",
                      "message": "Invalid source type for Notion webhook",
                      "expected": "notion", "received": "supabase"}
    assert h.sql("SELECT count(*) FROM hookd.events") == before


def test_missing_fields_422(h):
    body = json.loads(SUPABASE_CURL)
    del body["record_id"]
    r = h.post("/api/v1/webhooks/supabase", json=body)
    assert r.status == 422
    assert r.body == {"detail": [{"loc": ["body", "record_id"], "msg": "field required",
                                  "type": "value_error.missing"}]}
    r = h.post("/api/v1/webhooks/notion", json={"timestamp": "2026-01-01T15:00:00Z"})
    assert r.status == 422
    assert [d["loc"][1] for d in r.body["detail"]] == [
        "event_type", "source", "table_name", "record_id", "data"]
    assert all(d["msg"] == "field required" and d["type"] == "value_error.missing"
               for d in r.body["detail"])
    r = h.post("/api/v1/webhooks/supabase",
               json=dict(json.loads(SUPABASE_CURL), data="x", table_name=None))
    assert r.status == 422
    assert r.body == {"detail": [
        {"loc": ["body", "table_name"], "msg": "none is not an allowed value",
         "type": "type_error.none.not_allowed"},
        {"loc": ["body", "data"], "msg": "value is not a valid dict", "type": "type_error.dict"}]}
    r = h.post("/api/v1/webhooks/supabase", body=b'{"event_type": ', headers=JSON)
    assert r.status == 422
    assert r.body["detail"][0]["type"] == "value_error.jsondecode"
    r = h.post("/api/v1/webhooks/supabase", body=SUPABASE_CURL,
               headers={"Content-Type": "text/plain"})
    assert r.status == 415


# --- the payload test route ------------------------------------------------------------------

def test_test_route(h):
    before = h.sql("SELECT count(*) FROM hookd.events")
    r = h.post("/api/v1/webhooks/test", body=TEST_CURL, headers=JSON)
    assert r.status == 200
    assert r.body == {"status": "valid", "message": "Webhook payload is valid",
                      "parsed_payload": {"event_type": "insert", "source": "supabase",
                                         "table_name": "test", "record_id": "123", "data": {},
                                         "timestamp": None, "metadata": None},
                      "would_be_processed": True}
    assert list(r.body) == ["status", "message", "parsed_payload", "would_be_processed"]
    r = h.post("/api/v1/webhooks/test", json=dict(json.loads(TEST_CURL), source="github"))
    assert r.status == 200 and r.body["would_be_processed"] is False
    r = h.post("/api/v1/webhooks/test", json={"event_type": "insert", "source": "supabase"})
    assert r.status == 422
    assert [d["loc"] for d in r.body["detail"]] == [
        ["body", "table_name"], ["body", "record_id"], ["body", "data"]]
    assert h.sql("SELECT count(*) FROM hookd.events") == before  # nothing stored


# --- signatures ----------------------------------------------------------------------------

def test_signature_verification(pg, hookd_factory):
    secret = "your-secret-key"
    h2 = fresh(pg, hookd_factory, env={"VERIFY_WEBHOOK_SIGNATURES": "true",
                                       "WEBHOOK_SECRET": secret})
    r = h2.post("/api/v1/webhooks/supabase", body=SUPABASE_CURL, headers=JSON)
    assert r.status == 401
    assert r.body == {"error": "invalid_signature",
                      "message": "Webhook signature verification failed"}
    r = h2.post("/api/v1/webhooks/supabase", body=SUPABASE_CURL,
                headers=dict(JSON, **{"X-Webhook-Signature": sign("nope", SUPABASE_CURL)}))
    assert r.status == 401
    assert h2.sql("SELECT count(*) FROM hookd.events") == [(0,)]
    # As the seed's Python example signs: json.dumps(payload).encode().
    payload_bytes = json.dumps(json.loads(SUPABASE_CURL)).encode()
    r = h2.post("/api/v1/webhooks/supabase", body=payload_bytes,
                headers=dict(JSON, **{"X-Webhook-Signature": sign(secret, payload_bytes)}))
    assert r.status == 202, r.body
    assert h2.sql("SELECT count(*) FROM hookd.events") == [(1,)]
    # The payload test route never checks signatures.
    assert h2.post("/api/v1/webhooks/test", body=TEST_CURL, headers=JSON).status == 200
    assert secret not in h2.log_text()


def test_secret_alone_does_not_verify(pg, hookd_factory):
    """WEBHOOK_SECRET without VERIFY_WEBHOOK_SIGNATURES=true: unsigned payloads are taken
    (the seed's curl examples send no signature; contrib/dev sets the secret)."""
    h2 = fresh(pg, hookd_factory, env={"WEBHOOK_SECRET": "your-secret-key",
                                       "VERIFY_WEBHOOK_SIGNATURES": "false"})
    r = h2.post("/api/v1/webhooks/supabase", body=SUPABASE_CURL, headers=JSON)
    assert r.status == 202, r.body


def test_verify_without_secret_refuses(pg, hookd_factory):
    h2 = fresh(pg, hookd_factory, env={"VERIFY_WEBHOOK_SIGNATURES": "true"})
    r = h2.post("/api/v1/webhooks/supabase", body=SUPABASE_CURL, headers=JSON)
    assert r.status == 500
    assert r.body["error"] == "server_misconfigured"
    assert h2.sql("SELECT count(*) FROM hookd.events") == [(0,)]


# --- retries and stats ---------------------------------------------------------------------

def test_retry_schedule(pg, hookd_factory):
    """Fails twice, succeeds on the third attempt: attempts at ~0 s, ~2 s and ~6 s."""
    h2 = fresh(pg, hookd_factory)
    body = dict(json.loads(SUPABASE_CURL), record_id="flaky",
                metadata={"simulate_failures": 2})
    r = h2.post("/api/v1/webhooks/supabase", json=body)
    assert r.status == 202
    ev = wait_processed(h2, "supabase", "flaky", timeout=15)
    assert ev["attempts"] == 3
    received = h2.sql("SELECT received_at FROM hookd.events WHERE id = %s", ev["id"])[0][0]
    logs = h2.sql("SELECT success, at, error FROM hookd.event_logs WHERE event_id = %s"
                  " AND action = 'sql' ORDER BY id", ev["id"])
    assert [l[0] for l in logs] == [False, False, True]
    assert "simulated failure on attempt 1" in logs[0][2]
    offsets = [(l[1] - received).total_seconds() for l in logs]
    assert 0 <= offsets[0] < 1.0, offsets
    assert 1.9 <= offsets[1] - offsets[0] < 3.0, offsets
    assert 3.9 <= offsets[2] - offsets[1] < 5.0, offsets
    # Only the successful attempt's work stays.
    assert cache(h2, "supabase", "users", "flaky")[0][2] == 1
    # Every attempt fails: the event fails after the third.
    body = dict(body, record_id="hopeless", metadata={"simulate_failures": 5})
    assert h2.post("/api/v1/webhooks/supabase", json=body).status == 202
    ev = wait_processed(h2, "supabase", "hopeless", status="failed", timeout=15)
    assert ev["attempts"] == 3
    stats = h2.get("/api/v1/webhooks/stats", auth=True).body
    assert stats["total_processed"] == 1 and stats["total_failed"] == 1
    assert stats["total_retries"] == 4
    assert stats["success_rate"] == 0.5


def test_stats(pg, hookd_factory):
    h2 = fresh(pg, hookd_factory)
    assert h2.get("/api/v1/webhooks/stats").status == 401  # admin only
    r = h2.get("/api/v1/webhooks/stats", auth=True)
    assert r.status == 200
    assert r.body == {"total_processed": 0, "total_failed": 0, "total_retries": 0,
                      "success_rate": 0, "average_processing_time_seconds": 0,
                      "events_by_type": {}, "events_by_source": {}}
    sent = [("supabase", "insert", "a"), ("supabase", "UPDATE", "a"), ("notion", "update", "p"),
            ("supabase", "delete", "a")]
    for source, etype, rid in sent:
        body = {"event_type": etype, "source": source, "table_name": "t", "record_id": rid,
                "data": {}, "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        assert h2.post(f"/api/v1/webhooks/{source}", json=body).status == 202
    hh.wait_until(lambda: h2.sql("SELECT count(*) FROM hookd.events WHERE status = 'processed'")
                  == [(4,)], 10 * hh.SLOW, message="4 events processed")
    r = h2.get("/api/v1/webhooks/stats", auth=True)
    assert r.status == 200
    s = r.body
    assert list(s) == ["total_processed", "total_failed", "total_retries", "success_rate",
                       "average_processing_time_seconds", "events_by_type", "events_by_source"]
    assert s["total_processed"] == 4 and s["total_failed"] == 0 and s["total_retries"] == 0
    assert s["success_rate"] == 1
    assert 0 <= s["average_processing_time_seconds"] < 1
    assert s["events_by_type"] == {"delete": 1, "insert": 1, "update": 2}
    assert s["events_by_source"] == {"notion": 1, "supabase": 3}


def test_missing_handler_function(pg, hookd_factory):
    """Examples not loaded: the webhook is still taken and stored; the worker records why
    each attempt failed and retries as scheduled."""
    name = f"seed001_{next(_dbs)}"
    pg.create_database(name)
    hh.run_hookd_cli(pg.url_for(name), "migrate")
    h2 = hookd_factory(config={"process_poll_interval": "100ms"}, db=name)
    r = h2.post("/api/v1/webhooks/supabase", body=SUPABASE_CURL, headers=JSON)
    assert r.status == 202
    eid = event_by_record(h2, "supabase", "test-123")["id"]
    logs = hh.wait_until(
        lambda: h2.sql("SELECT success, error FROM hookd.event_logs WHERE event_id = %s", eid),
        5 * hh.SLOW, message="the first attempt logged")
    assert logs[0][0] is False and "memory" in logs[0][1] and "does not exist" in logs[0][1]
    ev = event_by_record(h2, "supabase", "test-123")
    assert ev["status"] in ("pending", "processing") and ev["attempts"] >= 1


# --- the sources' own settings on these routes --------------------------------------------

ROUTES = {"supabase": ("/api/v1/webhooks/supabase", SUPABASE_CURL),
          "notion": ("/api/v1/webhooks/notion", NOTION_CURL)}
BIG_BODY = json.dumps({"source": "supabase", "pad": "x" * 1500}).encode()


def patch_source(h, slug, fields, ready):
    """PATCH a seed source, then wait until this hookd's cache has the change."""
    hh.wait_until(lambda: h.sql("SELECT id FROM hookd.sources WHERE slug = %s", slug),
                  5 * hh.SLOW, message=f"the {slug} source")
    r = h.patch(f"/api/v1/sources/{slug}", json=fields, auth=True)
    assert r.status == 200, r.body
    hh.wait_until(ready, 5 * hh.SLOW, message="the change in hookd's cache")
    return r.body


def count_source_events(h, slug):
    return h.sql("SELECT count(*) FROM hookd.events e JOIN hookd.sources s"
                 " ON s.id = e.source_id WHERE s.slug = %s", slug)[0][0]


@pytest.mark.parametrize("slug", ["supabase", "notion"])
def test_editing_a_source_turns_no_verification_on(pg, hookd_factory, slug):
    """A PATCH that names neither the verifier nor secrets makes no secret: with
    VERIFY_WEBHOOK_SIGNATURES off, the seed's unsigned curl is still accepted."""
    h2 = fresh(pg, hookd_factory)
    route, curl = ROUTES[slug]
    src = patch_source(h2, slug, {"rate_limit": {"per_second": 1000, "burst": 1000},
                                  "max_body": 1000},
                       lambda: h2.post(route, body=BIG_BODY, headers=JSON).status == 413)
    assert "secret" not in src and src["secrets"] == []
    assert src["rate_limit"] == {"per_second": 1000, "burst": 1000}
    assert h2.sql("SELECT secrets FROM hookd.sources WHERE slug = %s", slug) == [([],)]
    r = h2.post(route, body=curl, headers=JSON)
    assert r.status == 202, r.body
    assert r.body["status"] == "accepted" and r.body["message"] == ACCEPTED
    assert r.body["details"]["source"] == slug
    assert count_source_events(h2, slug) == 1


@pytest.mark.parametrize("slug", ["supabase", "notion"])
def test_source_ip_allowlist_and_rate_limit_apply(pg, hookd_factory, slug):
    """The source's allowlist and rate limit are checked here as on /in/{slug}."""
    h2 = fresh(pg, hookd_factory)
    route, curl = ROUTES[slug]
    label = slug.capitalize()
    # (a text/plain probe is refused, 415 or 403, and stores nothing either way)
    patch_source(h2, slug, {"ip_allowlist": ["10.0.0.0/8"]},
                 lambda: h2.post(route, body=curl,
                                 headers={"Content-Type": "text/plain"}).status == 403)
    r = h2.post(route, body=curl, headers=JSON)
    assert r.status == 403
    assert r.body == {"error": "forbidden",
                      "message": f"This client address may not send {label} webhooks"}
    r = h2.post(f"/in/{slug}", body=curl, headers=JSON)
    assert r.status == 403 and r.body["error"] == "forbidden"
    assert count_source_events(h2, slug) == 0

    patch_source(h2, slug, {"ip_allowlist": ["127.0.0.0/8"],
                            "rate_limit": {"per_second": 0.01, "burst": 1}, "max_body": 1000},
                 lambda: h2.post(route, body=BIG_BODY, headers=JSON).status == 413)
    assert h2.post(route, body=curl, headers=JSON).status == 202
    r = h2.post(route, body=curl, headers=JSON)
    assert r.status == 429
    assert r.body == {"error": "rate_limited", "message": "Too many webhook requests; retry later"}
    assert 1 <= int(r.headers["Retry-After"]) <= 100
    assert count_source_events(h2, slug) == 1
