# SPDX-License-Identifier: ISC
"""Subscriptions: /api/v1/webhooks (seed 004) CRUD, the secret (generated, sealed, shown on
create and by GET .../secret, rotated with an overlap), a 422 naming the field for every kind
of bad input, seed 003's /api/webhooks over the same table with its {"success": ...} shape,
seed 001's /api/v1/webhooks/* routes untouched, a second hookd reloading its cache through
NOTIFY, and 503 while Postgres is down."""

import base64
import json
import os
import re
import threading
import time
import uuid

import pytest

import hookd_harness as hh
from sink import sink  # noqa: F401  (fixture)

API = "/api/v1/webhooks"
OMNI = "/api/webhooks"
TARGET = "http://127.0.0.1:9/hooks"
ISO_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
V1_KEYS = {"id", "name", "description", "url", "enabled", "events", "max_retries",
           "timeout_seconds", "retry_backoff_seconds", "retry_multiplier",
           "retry_max_delay_seconds", "retry_jitter", "retry_schedule", "headers",
           "ip_allowlist", "signature_headers", "payload_format", "api", "secrets",
           "failure_streak", "disabled_reason", "disabled_at", "created_at", "updated_at"}
OMNI_KEYS = {"id", "name", "url", "events", "is_active", "description", "ip_whitelist",
             "max_retries", "timeout_seconds", "disabled_reason", "created_at", "updated_at"}



@pytest.fixture(autouse=True)
def _watchable_tables(pg):
    """Table filters make hookd watch their tables, so the tables must exist."""
    pg.sql("CREATE TABLE IF NOT EXISTS public.users (id int PRIMARY KEY);"
           " CREATE TABLE IF NOT EXISTS public.orders (id int PRIMARY KEY);"
           " CREATE SCHEMA IF NOT EXISTS app;"
           " CREATE TABLE IF NOT EXISTS app.users (id int PRIMARY KEY)")

def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def with_key(h):
    """Give h an admin key under a unique name (see test_sources.py for why)."""
    key = h.create_key(uniq("subs-admin"))
    hh.wait_until(lambda: h.get("/metrics", auth=key).status == 200, 5 * hh.SLOW,
                  message="hookd accepting a fresh admin key")
    h._admin_key = key
    return h


@pytest.fixture
def hookd(hookd_factory):
    return with_key(hookd_factory())


def create(h, **fields):
    fields.setdefault("name", uniq("sub"))
    fields.setdefault("url", TARGET)
    r = h.post(API, json=fields, auth=True)
    assert r.status == 201, r
    return r.body


def assert_error(r, status, code):
    assert r.status == status, r
    assert "application/json" in r.headers.get("Content-Type", ""), r.headers
    assert isinstance(r.body, dict) and r.body.get("error") == code, r.body
    assert isinstance(r.body.get("message"), str) and r.body["message"], r.body


def assert_invalid(r, field):
    assert_error(r, 422, "validation_failed")
    assert r.body.get("field") == field, r.body


def assert_omni_error(r, status, field=False):
    assert r.status == status, r
    assert r.body.get("success") is False, r.body
    assert isinstance(r.body.get("error"), str) and r.body["error"], r.body
    if field is not False:
        assert r.body.get("field") == field, r.body


def assert_iso(text):
    assert isinstance(text, str) and re.match(ISO_RE, text), text


def assert_whsec(secret):
    assert secret.startswith("whsec_"), secret
    assert len(base64.b64decode(secret[6:], validate=True)) == 32


# --- create, read ------------------------------------------------------------------------------

def test_create_generates_a_secret_shown_on_create_and_by_get_secret(hookd):
    s = create(hookd, name="Orders")
    secret = s.pop("secret")
    assert set(s) == V1_KEYS, sorted(set(s) ^ V1_KEYS)
    assert_whsec(secret)
    uuid.UUID(s["id"])
    assert_iso(s["created_at"])
    assert_iso(s["updated_at"])
    # defaults
    assert s["name"] == "Orders" and s["description"] is None and s["url"] == TARGET
    assert s["enabled"] is True and s["events"] == ["*"]
    assert (s["max_retries"], s["timeout_seconds"], s["retry_backoff_seconds"],
            s["retry_multiplier"], s["retry_max_delay_seconds"], s["retry_jitter"]) == \
        (3, 30, 1, 2, 60, 0.1)
    assert s["retry_schedule"] is None and s["headers"] == {} and s["ip_allowlist"] is None
    assert s["signature_headers"] == ["standard"] and s["payload_format"] == "default"
    assert s["api"] == "v1" and s["failure_streak"] == 0
    assert s["disabled_reason"] is None and s["disabled_at"] is None
    assert len(s["secrets"]) == 1 and set(s["secrets"][0]) == {"id", "created_at", "expires_at"}
    assert s["secrets"][0]["id"].startswith("sec_") and s["secrets"][0]["expires_at"] is None

    # never shown again, except by GET .../secret
    got = hookd.get(f"{API}/{s['id']}", auth=True)
    assert got.status == 200 and "secret" not in got.body, got
    assert secret[6:] not in json.dumps(got.body)
    assert secret[6:] not in json.dumps(hookd.get(API, auth=True).body)
    r = hookd.get(f"{API}/{s['id']}/secret", auth=True)
    assert r.status == 200 and r.body == {"secret": secret}, r

    # sealed at rest, never logged
    (stored,) = hookd.sql("SELECT secrets FROM hookd.subscriptions WHERE id = %s", s["id"])[0]
    assert len(stored) == 1 and set(stored[0]) == {"id", "sealed", "created_at", "expires_at"}
    assert secret[6:] not in json.dumps(stored)
    assert secret[6:] not in hookd.log_text()


def test_seed_004_body_with_a_secret_adds_the_fluxbase_header(hookd):
    body = {
        "name": "User Events",
        "description": "Notify external system of user changes",
        "url": "https://example.com/webhooks/fluxbase",
        "secret": "your-webhook-secret",
        "enabled": True,
        "events": [{"table": "users", "operations": ["INSERT", "UPDATE"]}],
        "max_retries": 3,
        "timeout_seconds": 30,
        "retry_backoff_seconds": 5,
    }
    r = hookd.post(API, json=body, auth=True)
    assert r.status == 201, r
    s = r.body
    assert s["secret"] == "your-webhook-secret"

    def same(got, want):
        """Every field of the seed's body comes back exactly: value and JSON type
        (5 stays 5, not 5.0; "users" stays "users")."""
        for k, v in want.items():
            if k != "secret":
                assert got[k] == v and type(got[k]) is type(v), (k, got[k], v)

    same(s, body)
    same(hookd.get(f"{API}/{s['id']}", auth=True).body, body)
    (listed,) = [x for x in hookd.get(API, auth=True).body["data"] if x["id"] == s["id"]]
    same(listed, body)
    # The seed's "Update Webhook": PUT takes the create body, and it round-trips too.
    update = dict(body, name="User Events v2", enabled=False, max_retries=5,
                  timeout_seconds=10, retry_backoff_seconds=2.5,
                  events=[{"table": "users", "operations": ["INSERT", "UPDATE", "DELETE"]}])
    r = hookd.put(f"{API}/{s['id']}", json=update, auth=True)
    assert r.status == 200 and "secret" not in r.body, r
    same(r.body, update)
    same(hookd.get(f"{API}/{s['id']}", auth=True).body, update)
    r = hookd.put(f"{API}/{s['id']}", json=body, auth=True)
    assert r.status == 200, r
    same(r.body, body)
    assert s["signature_headers"] == ["standard", "fluxbase"]
    row = hookd.sql("SELECT signature_headers, api, events, retry_backoff_seconds"
                    " FROM hookd.subscriptions WHERE id = %s", s["id"])[0]
    assert row == (["standard", "fluxbase"], "v1",
                   [{"table": "users", "operations": ["INSERT", "UPDATE"]}], 5.0)
    assert hookd.get(f"{API}/{s['id']}/secret", auth=True).body == {
        "secret": "your-webhook-secret"}
    assert "your-webhook-secret" not in hookd.log_text()


def test_create_with_every_field(hookd):
    fields = dict(name="Full", description="every field", url="https://example.com/h?x=1",
                  enabled=False,
                  events=["order.created", "order.*", {"table": "public.users"},
                          {"table": "orders", "operations": ["delete"]}],
                  max_retries=10, timeout_seconds=5, retry_backoff_seconds=0.5,
                  retry_multiplier=3, retry_max_delay_seconds=120, retry_jitter=0,
                  retry_schedule=[1, 5, 30.5], headers={"Authorization": "Bearer t0k",
                                                        "X-Tenant": "t1"},
                  ip_allowlist=["10.0.0.0/8", "203.0.113.7", "2001:db8::/32"],
                  signature_headers=["omnisales"], payload_format="supabase")
    s = create(hookd, **fields)
    want = dict(fields)
    want["events"] = ["order.created", "order.*",
                      {"table": "public.users", "operations": ["INSERT", "UPDATE", "DELETE"]},
                      {"table": "orders", "operations": ["DELETE"]}]
    want["ip_allowlist"] = ["10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32"]
    want["signature_headers"] = ["standard", "omnisales"]
    for k, v in want.items():
        assert s[k] == v, (k, s[k], v)
    assert_whsec(s["secret"])  # generated: explicit sets, so no fluxbase either way
    row = hookd.sql("SELECT retry_schedule, ip_allowlist::text[], headers, payload_format,"
                    " disabled_at IS NULL FROM hookd.subscriptions WHERE id = %s", s["id"])[0]
    assert row == ([1.0, 5.0, 30.5], want["ip_allowlist"],
                   {"Authorization": "Bearer t0k", "X-Tenant": "t1"}, "supabase", True)


def test_list_is_data_in_creation_order_and_pages(hookd):
    ids = [create(hookd, name=f"list-{i}")["id"] for i in range(3)]
    r = hookd.get(API, auth=True)
    assert r.status == 200 and set(r.body) == {"data"}, r
    listed = [s["id"] for s in r.body["data"]]
    assert [i for i in listed if i in ids] == ids
    for s in r.body["data"]:
        assert set(s) == V1_KEYS, s
    i = listed.index(ids[0])
    page = hookd.get(f"{API}?limit=2&offset={i + 1}", auth=True)
    assert [s["id"] for s in page.body["data"]] == ids[1:3], page
    for bad in ("limit=0", "limit=x", "offset=-1"):
        assert_error(hookd.get(f"{API}?{bad}", auth=True), 400, "bad_request")


# --- change, delete ----------------------------------------------------------------------------

def test_put_replaces_and_keeps_secret_and_header_sets(hookd):
    s = create(hookd, name="before", description="d", secret="kept-secret-value",
               events=["a.*"], max_retries=9, headers={"X-A": "1"})
    assert s["signature_headers"] == ["standard", "fluxbase"]
    time.sleep(0.01)
    r = hookd.put(f"{API}/{s['id']}", json={"name": "after", "url": TARGET + "/2"}, auth=True)
    assert r.status == 200, r
    t = r.body
    assert "secret" not in t
    assert t["name"] == "after" and t["url"] == TARGET + "/2"
    assert t["description"] is None and t["events"] == ["*"] and t["max_retries"] == 3
    assert t["headers"] == {}
    assert t["signature_headers"] == ["standard", "fluxbase"]      # kept
    assert t["secrets"] == s["secrets"]                             # kept
    assert t["created_at"] == s["created_at"] and t["updated_at"] > s["updated_at"]
    assert hookd.get(f"{API}/{s['id']}/secret", auth=True).body["secret"] == "kept-secret-value"

    # a new secret replaces the stored ones (rotate-secret is the way to overlap)
    r = hookd.put(f"{API}/{s['id']}", json={"name": "after", "url": TARGET,
                                            "secret": "replacement-value",
                                            "signature_headers": []}, auth=True)
    assert r.status == 200 and "secret" not in r.body, r
    assert r.body["signature_headers"] == ["standard"]
    assert len(r.body["secrets"]) == 1 and r.body["secrets"][0]["id"] != s["secrets"][0]["id"]
    assert hookd.get(f"{API}/{s['id']}/secret", auth=True).body["secret"] == "replacement-value"
    # PUT needs name and url
    assert_invalid(hookd.put(f"{API}/{s['id']}", json={"name": "x"}, auth=True), "url")
    assert_invalid(hookd.put(f"{API}/{s['id']}", json={"url": TARGET}, auth=True), "name")


def test_patch_changes_only_what_it_names_and_enabling_clears_the_streak(hookd):
    s = create(hookd, name="n", description="keep me", events=["x.*"], retry_schedule=[1, 2])
    r = hookd.patch(f"{API}/{s['id']}", json={"name": "renamed", "retry_schedule": None,
                                               "enabled": False}, auth=True)
    assert r.status == 200, r
    p = r.body
    assert p["name"] == "renamed" and p["enabled"] is False and p["retry_schedule"] is None
    assert_iso(p["disabled_at"])
    assert p["disabled_reason"] is None
    for k in ("description", "events", "url", "secrets", "signature_headers", "created_at",
              "max_retries", "headers"):
        assert p[k] == s[k], k
    # the delivery worker disabled it: enabling again clears the reason and the streak
    hookd.sql("UPDATE hookd.subscriptions SET failure_streak = 10,"
              " disabled_reason = '10 deliveries in a row died' WHERE id = %s", s["id"])
    r = hookd.patch(f"{API}/{s['id']}", json={"description": "x"}, auth=True)
    assert r.body["disabled_reason"] == "10 deliveries in a row died", r
    r = hookd.patch(f"{API}/{s['id']}", json={"enabled": True}, auth=True)
    assert r.status == 200, r
    assert (r.body["enabled"], r.body["failure_streak"], r.body["disabled_reason"],
            r.body["disabled_at"]) == (True, 0, None, None)
    # an empty patch changes nothing but updated_at; a bad one changes nothing
    assert hookd.patch(f"{API}/{s['id']}", json={}, auth=True).status == 200
    assert_invalid(hookd.patch(f"{API}/{s['id']}", json={"name": "y", "max_retries": 101},
                               auth=True), "max_retries")
    assert hookd.get(f"{API}/{s['id']}", auth=True).body["name"] == "renamed"


def test_a_stored_row_that_no_longer_validates_is_repaired_with_put(hookd):
    s = create(hookd, secret="kept-through-repair", events=["a.*"])
    hookd.sql("UPDATE hookd.subscriptions SET url = 'not a url' WHERE id = %s;"
              " SELECT pg_notify('hookd_config', 'subscriptions')", s["id"])
    hookd.wait_for_log(lambda l: s["id"] in l.get("msg", "") and "unusable" in l["msg"],
                       timeout=5 * hh.SLOW)
    r = hookd.patch(f"{API}/{s['id']}", json={"name": "x"}, auth=True)
    assert_error(r, 500, "internal")
    r = hookd.put(f"{API}/{s['id']}", json={"name": "fixed", "url": TARGET}, auth=True)
    assert r.status == 200 and r.body["url"] == TARGET, r
    assert r.body["signature_headers"] == ["standard", "fluxbase"]
    assert hookd.get(f"{API}/{s['id']}/secret", auth=True).body["secret"] == \
        "kept-through-repair"


def test_delete(hookd):
    s = create(hookd)
    r = hookd.delete(f"{API}/{s['id']}", auth=True)
    assert r.status == 204 and r.body == b"", r
    assert_error(hookd.get(f"{API}/{s['id']}", auth=True), 404, "not_found")
    assert_error(hookd.delete(f"{API}/{s['id']}", auth=True), 404, "not_found")
    assert hookd.sql("SELECT count(*) FROM hookd.subscriptions WHERE id = %s", s["id"])[0][0] == 0


# --- refusals ----------------------------------------------------------------------------------

INVALID = [
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"url": None}, "url"),
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "https://user:pw@example.com/"}, "url"),
    ({"url": "http://0x7f.0.0.1/"}, "url"),
    ({"url": "example.com/hook"}, "url"),
    ({"description": ["x"]}, "description"),
    ({"secret": ""}, "secret"),
    ({"secret": 12}, "secret"),
    ({"secret": "whsec_!!!"}, "secret"),
    ({"enabled": "yes"}, "enabled"),
    ({"events": []}, "events"),
    ({"events": "order.created"}, "events"),
    ({"events": ["order.*.created"]}, "events[0]"),
    ({"events": ["*", "has space"]}, "events[1]"),
    ({"events": [{"operations": ["INSERT"]}]}, "events[0].table"),
    ({"events": [{"table": "users", "operations": ["TRUNCATE"]}]}, "events[0].operations"),
    ({"events": [{"table": "users", "operations": []}]}, "events[0].operations"),
    ({"events": [{"table": "users", "when": "always"}]}, "events[0].when"),
    ({"max_retries": 101}, "max_retries"),
    ({"max_retries": -1}, "max_retries"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"timeout_seconds": 301}, "timeout_seconds"),
    ({"retry_backoff_seconds": -1}, "retry_backoff_seconds"),
    ({"retry_backoff_seconds": "5"}, "retry_backoff_seconds"),
    ({"retry_multiplier": 0.5}, "retry_multiplier"),
    ({"retry_max_delay_seconds": -1}, "retry_max_delay_seconds"),
    ({"retry_jitter": 2}, "retry_jitter"),
    ({"retry_schedule": []}, "retry_schedule"),
    ({"retry_schedule": [1, "2"]}, "retry_schedule"),
    ({"headers": ["X-A: 1"]}, "headers"),
    ({"headers": {"Connection": "close"}}, "headers"),
    ({"headers": {"Content-Type": "text/plain"}}, "headers"),
    ({"headers": {"webhook-signature": "v1,x"}}, "headers"),
    ({"headers": {"X-Webhook-Signature": "x"}}, "headers"),
    ({"headers": {"X-A": "a\r\nX-B: b"}}, "headers"),
    ({"ip_allowlist": []}, "ip_allowlist"),
    ({"ip_allowlist": ["not-a-network"]}, "ip_allowlist"),
    ({"ip_allowlist": ["10.1.2.3/8"]}, "ip_allowlist"),
    ({"ip_allowlist": ["10.0.0.0/8"]}, "ip_allowlist"),   # the url's 127.0.0.1 is outside
    ({"signature_headers": ["stripe"]}, "signature_headers"),
    ({"payload_format": "xml"}, "payload_format"),
    ({"colour": "red"}, "colour"),
    ({"id": str(uuid.uuid4())}, "id"),
    ({"failure_streak": 0}, "failure_streak"),
]


def test_every_invalid_field_is_a_422_naming_it(hookd):
    name = uniq("inv")
    for fields, field in INVALID:
        body = {"name": name, "url": TARGET}
        body.update(fields)
        assert_invalid(hookd.post(API, json=body, auth=True), field)
    assert hookd.sql("SELECT count(*) FROM hookd.subscriptions WHERE name = %s", name)[0][0] == 0
    # the same checks on PUT and PATCH, which change nothing
    s = create(hookd, name=name)
    for fields, field in INVALID:
        assert_invalid(hookd.patch(f"{API}/{s['id']}", json=fields, auth=True), field)
        body = {"name": name, "url": TARGET}
        body.update(fields)
        assert_invalid(hookd.put(f"{API}/{s['id']}", json=body, auth=True), field)
    assert hookd.get(f"{API}/{s['id']}", auth=True).body["updated_at"] == s["updated_at"]
    # the body itself
    assert_invalid(hookd.post(API, json=[1, 2], auth=True), None)
    assert_invalid(hookd.post(API, json={"url": TARGET}, auth=True), "name")
    assert_invalid(hookd.post(API, json={"name": "n"}, auth=True), "url")


def test_bad_json_is_a_400(hookd):
    s = create(hookd)
    for method, path in (("POST", API), ("PUT", f"{API}/{s['id']}"),
                         ("PATCH", f"{API}/{s['id']}"),
                         ("POST", f"{API}/{s['id']}/rotate-secret")):
        for body in (b"{bad", b"", b'{"name": "a"} x', b'{"name": "\\u0000"}'):
            if body == b"" and path.endswith("rotate-secret"):
                continue  # the rotate body is optional
            r = hookd.request(method, path, body=body, auth=True,
                              headers={"Content-Type": "application/json"})
            assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("key", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_webhook_is_a_404(hookd, key):
    assert_error(hookd.get(f"{API}/{key}", auth=True), 404, "not_found")
    assert_error(hookd.put(f"{API}/{key}", json={"name": "x", "url": TARGET}, auth=True), 404,
                 "not_found")
    assert_error(hookd.patch(f"{API}/{key}", json={}, auth=True), 404, "not_found")
    assert_error(hookd.delete(f"{API}/{key}", auth=True), 404, "not_found")
    assert_error(hookd.get(f"{API}/{key}/secret", auth=True), 404, "not_found")
    assert_error(hookd.post(f"{API}/{key}/rotate-secret", json={}, auth=True), 404, "not_found")
    assert_omni_error(hookd.get(f"{OMNI}/{key}", auth=True), 404)
    assert_omni_error(hookd.put(f"{OMNI}/{key}", json={}, auth=True), 404)
    assert_omni_error(hookd.delete(f"{OMNI}/{key}", auth=True), 404)


def test_every_route_needs_an_admin_key(hookd):
    sid = create(hookd)["id"]
    routes = [("GET", API), ("POST", API), ("GET", f"{API}/{sid}"), ("PUT", f"{API}/{sid}"),
              ("PATCH", f"{API}/{sid}"), ("DELETE", f"{API}/{sid}"),
              ("GET", f"{API}/{sid}/secret"), ("POST", f"{API}/{sid}/rotate-secret"),
              ("GET", OMNI), ("POST", OMNI), ("GET", f"{OMNI}/{sid}"), ("PUT", f"{OMNI}/{sid}"),
              ("DELETE", f"{OMNI}/{sid}")]
    for method, path in routes:
        for auth in (None, "hk_" + "A" * 43):
            r = hookd.request(method, path, body=b"{}", auth=auth,
                              headers={"Content-Type": "application/json"})
            assert_error(r, 401, "unauthorized")
    assert hookd.get(f"{API}/{sid}", auth=True).status == 200


def test_seed_001_routes_under_the_same_prefix_still_answer(hookd):
    # registered before /api/v1/webhooks/{id}, so they win
    r = hookd.get("/api/v1/webhooks/stats", auth=True)
    assert r.status == 200 and "id" not in r.body, r
    r = hookd.post("/api/v1/webhooks/test", json={"hello": "world"})
    assert r.status not in (401, 404), r


# --- secrets -----------------------------------------------------------------------------------

def test_rotate_keeps_the_previous_secret_live_for_a_day_by_default(hookd):
    s = create(hookd, secret="first-secret-value")
    old_id = s["secrets"][0]["id"]
    before = time.time()
    r = hookd.post(f"{API}/{s['id']}/rotate-secret", auth=True)  # no body: generated
    assert r.status == 200, r
    assert set(r.body) == {"id", "secret", "secrets"} and r.body["id"] == s["id"]
    new = r.body["secret"]
    assert_whsec(new)
    new_entry, old_entry = r.body["secrets"]
    assert old_entry["id"] == old_id and new_entry["expires_at"] is None
    (exp,) = hookd.sql("SELECT extract(epoch FROM %s::timestamptz)::float8",
                       old_entry["expires_at"])[0]
    assert before + 86400 - 5 <= exp <= time.time() + 86400 + 5
    assert hookd.get(f"{API}/{s['id']}/secret", auth=True).body == {"secret": new}
    got = hookd.get(f"{API}/{s['id']}", auth=True).body
    assert [x["id"] for x in got["secrets"]] == [new_entry["id"], old_id]
    assert new[6:] not in json.dumps(got) and new[6:] not in hookd.log_text()
    # both are live in the stored list the delivery worker signs with
    assert hookd.sql("SELECT count(*) FROM hookd.subscriptions s,"
                     " jsonb_array_elements(s.secrets) x WHERE s.id = %s AND"
                     " (x->>'expires_at' IS NULL OR (x->>'expires_at')::timestamptz > now())",
                     s["id"])[0][0] == 2


def test_rotate_with_a_given_secret_and_an_expiry(hookd):
    s = create(hookd)
    r = hookd.post(f"{API}/{s['id']}/rotate-secret",
                   json={"secret": "my-own-secret", "expire_previous_after": 0}, auth=True)
    assert r.status == 200 and r.body["secret"] == "my-own-secret", r
    assert len(r.body["secrets"]) == 2
    # the next rotation drops the expired one
    r = hookd.post(f"{API}/{s['id']}/rotate-secret", json={"expire_previous_after": 60},
                   auth=True)
    assert r.status == 200 and len(r.body["secrets"]) == 2, r
    assert_invalid(hookd.post(f"{API}/{s['id']}/rotate-secret", json={"secret": "whsec_%%"},
                              auth=True), "secret")
    assert_invalid(hookd.post(f"{API}/{s['id']}/rotate-secret",
                              json={"expire_previous_after": -1}, auth=True),
                   "expire_previous_after")
    assert_invalid(hookd.post(f"{API}/{s['id']}/rotate-secret", json={"secrets": ["x"]},
                              auth=True), "secrets")


def test_concurrent_rotations_lose_nothing(hookd, hookd_factory):
    b = with_key(hookd_factory(config={"master_key_file": os.path.join(hookd.dir, "master.key")}))
    s = create(hookd)
    replies = [None] * 10

    def go(i):
        h = (hookd, b)[i % 2]
        replies[i] = h.post(f"{API}/{s['id']}/rotate-secret", json={}, auth=True)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in replies] == [200] * 10, [(r.status, r.body) for r in replies]
    assert len(hookd.get(f"{API}/{s['id']}", auth=True).body["secrets"]) == 11
    # B opens what A sealed (the same master key)
    newest = b.get(f"{API}/{s['id']}/secret", auth=True)
    assert newest.status == 200 and newest.body["secret"].startswith("whsec_"), newest


# --- seed 003's API ---------------------------------------------------------------------------

def test_seed_003_create_list_get_update_delete(hookd):
    body = {"name": "Order Notifications", "url": "https://your-app.com/webhooks/orders",
            "events": ["order.created", "order.updated", "order.shipped"],
            "description": "Receive order events in real-time"}
    r = hookd.post(OMNI, json=body, auth=True)
    assert r.status == 201, r
    assert r.body["success"] is True and set(r.body) == {"success", "data"}
    d = r.body["data"]
    assert set(d) == OMNI_KEYS | {"secret"}, sorted(set(d) ^ (OMNI_KEYS | {"secret"}))
    for k, v in body.items():
        assert d[k] == v, k
    assert d["is_active"] is True and d["ip_whitelist"] is None
    assert_whsec(d["secret"])
    assert_iso(d["created_at"])
    row = hookd.sql("SELECT api, signature_headers, enabled FROM hookd.subscriptions"
                    " WHERE id = %s", d["id"])[0]
    assert row == ("omnisales", ["standard", "omnisales"], True)

    # the same subscription through both APIs
    v1 = hookd.get(f"{API}/{d['id']}", auth=True).body
    assert v1["api"] == "omnisales" and v1["signature_headers"] == ["standard", "omnisales"]
    assert hookd.get(f"{API}/{d['id']}/secret", auth=True).body["secret"] == d["secret"]
    r = hookd.get(OMNI, auth=True)
    assert r.status == 200 and r.body["success"] is True, r
    assert d["id"] in [x["id"] for x in r.body["data"]]
    assert all(set(x) == OMNI_KEYS for x in r.body["data"])
    r = hookd.get(f"{OMNI}/{d['id']}", auth=True)
    assert r.status == 200 and r.body["data"]["name"] == body["name"], r
    assert "secret" not in r.body["data"]

    # PUT changes what it is given; read-only fields sent back are ignored
    got = dict(r.body["data"])
    got.update({"is_active": False, "ip_whitelist": ["192.168.1.100", "203.0.113.0/24"]})
    r = hookd.put(f"{OMNI}/{d['id']}", json=got, auth=True)
    assert r.status == 200 and r.body["success"] is True, r
    u = r.body["data"]
    assert u["is_active"] is False and u["ip_whitelist"] == ["192.168.1.100", "203.0.113.0/24"]
    assert u["events"] == body["events"] and u["description"] == body["description"]
    assert hookd.sql("SELECT enabled, ip_allowlist::text[], signature_headers"
                     " FROM hookd.subscriptions WHERE id = %s", d["id"])[0] == \
        (False, ["192.168.1.100/32", "203.0.113.0/24"], ["standard", "omnisales"])
    r = hookd.put(f"{OMNI}/{d['id']}", json={"is_active": True}, auth=True)
    assert r.status == 200 and r.body["data"]["is_active"] is True, r

    # errors in its shape, naming its fields
    assert_omni_error(hookd.post(OMNI, json={"name": "x"}, auth=True), 422, "url")
    assert_omni_error(hookd.put(f"{OMNI}/{d['id']}", json={"is_active": "no"}, auth=True), 422,
                      "is_active")
    assert_omni_error(hookd.post(OMNI, json={"name": "x", "url": TARGET,
                                             "ip_whitelist": ["nope"]}, auth=True), 422,
                      "ip_whitelist")
    assert_omni_error(hookd.post(OMNI, json={"name": "x", "url": TARGET, "enabled": True},
                                 auth=True), 422, "enabled")
    r = hookd.request("POST", OMNI, body=b"{bad", auth=True,
                      headers={"Content-Type": "application/json"})
    assert_omni_error(r, 400)

    r = hookd.delete(f"{OMNI}/{d['id']}", auth=True)
    assert r.status == 200 and r.body == {"success": True,
                                          "data": {"id": d["id"], "deleted": True}}, r
    assert_omni_error(hookd.get(f"{OMNI}/{d['id']}", auth=True), 404)


def test_seed_003_whitelist_narrows_the_target(hookd, sink):
    # An IP literal outside the whitelist could never be delivered to: refused at once.
    r = hookd.post(OMNI, json={"name": "pinned", "url": "http://127.0.0.1:9/x",
                               "ip_whitelist": ["192.168.1.100"]}, auth=True)
    assert_omni_error(r, 422, "ip_whitelist")
    # A whitelist naming loopback is accepted, but it narrows the SSRF guard and never
    # widens it: this hookd's configuration allows no private network, so the sink on
    # 127.0.0.1 is not reached, and the attempt says which rule refused.
    r = hookd.post(OMNI, json={"name": "loopback", "url": sink.url("/omni-pinned"),
                               "events": ["order.created"],
                               "ip_whitelist": ["127.0.0.1", "0.0.0.0/0"]}, auth=True)
    assert r.status == 201, r
    assert r.body["data"]["ip_whitelist"] == ["127.0.0.1", "0.0.0.0/0"]
    wid = r.body["data"]["id"]
    hh.wait_until(lambda: hookd.get(f"{OMNI}/{wid}", auth=True).status == 200, 5)
    time.sleep(0.3)  # the delivery worker's cache reloads on NOTIFY
    pub = hookd.post("/api/v1/events", auth=True,
                     json={"event": "order.created", "data": {"order_id": "ord_789"}})
    assert pub.status == 202, pub
    (err,) = hh.wait_until(lambda: hookd.sql(
        "SELECT a.error FROM hookd.attempts a JOIN hookd.deliveries d ON d.id = a.delivery_id"
        " WHERE d.message_id = %s LIMIT 1", pub.body["id"]) or None, 10 * hh.SLOW,
        message="the first attempt")[0]
    assert err.startswith("127.0.0.1 is a loopback address; add it to"
                          " outbound_allow_networks"), err
    assert "ip_allowlist only narrows" in err, err
    assert sink.stats()["connections"] == 0


# --- several processes -------------------------------------------------------------------------

def test_a_second_hookd_reloads_its_cache_through_notify(pg, hookd_factory):
    db = f"subs_{uuid.uuid4().hex[:8]}"
    pg.create_database(db)
    a = with_key(hookd_factory(db=db))
    b = hookd_factory(db=db, config={"master_key_file": os.path.join(a.dir, "master.key")})

    def loaded(h, n, enabled, since):
        return h.wait_for_log(lambda l: l.get("msg") == f"subscriptions: {n} loaded, "
                                                        f"{enabled} enabled",
                              since=since, timeout=5 * hh.SLOW)

    hh.wait_until(lambda: "subscriptions: 0 loaded" in b.log_text(), 5 * hh.SLOW,
                  message="B's first load")
    mark = b.log_mark()
    s = create(a, secret="shared-secret")
    loaded(b, 1, 1, mark)
    mark = b.log_mark()
    assert a.patch(f"{API}/{s['id']}", json={"enabled": False}, auth=True).status == 200
    loaded(b, 1, 0, mark)
    mark = b.log_mark()
    assert a.delete(f"{API}/{s['id']}", auth=True).status == 204
    loaded(b, 0, 0, mark)
    # an unsealable secret would be logged as an error
    assert "cannot unseal" not in b.log_text()


# --- the database away (last: it stops the module's cluster) --------------------------------

def test_database_down_is_a_503(pg, hookd):
    s = create(hookd)
    pg.stop("fast")
    try:
        def unavailable(r):
            assert r.status == 503, r
            assert r.headers.get("Retry-After"), r.headers

        hh.wait_until(lambda: hookd.get(API, auth=True).status == 503, 5,
                      message="503 once Postgres is down")
        unavailable(hookd.get(API, auth=True))
        unavailable(hookd.get(f"{API}/{s['id']}", auth=True))
        unavailable(hookd.post(API, json={"name": "x", "url": TARGET}, auth=True))
        unavailable(hookd.patch(f"{API}/{s['id']}", json={"name": "x"}, auth=True))
        unavailable(hookd.delete(f"{API}/{s['id']}", auth=True))
        unavailable(hookd.post(f"{API}/{s['id']}/rotate-secret", json={}, auth=True))
        r = hookd.get(OMNI, auth=True)
        unavailable(r)
        assert r.body["success"] is False
    finally:
        pg.start()
    hh.wait_until(lambda: hookd.get(f"{API}/{s['id']}", auth=True).status == 200, 20 * hh.SLOW,
                  message="the API back with the database")
