# SPDX-License-Identifier: ISC
"""/api/v1/sources: create (the secret shown once, sealed at rest), list, get by id and slug,
PUT, PATCH, DELETE, a 422 naming the field for every kind of bad input, 409, 404, 401,
secret rotation and removal, a second hookd seeing changes through NOTIFY, and 503 while
Postgres is down."""

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid

import pytest

import hookd_harness as hh

API = "/api/v1/sources"
STD_SECRET = "whsec_" + base64.b64encode(b"sources-test-key-of-32-bytes!!!!").decode()
DISCORD_KEY = "e1ca7a4b4f9e3c5a7f0c1e2d3b4a59687766554433221100ffeeddccbbaa9988"
ISO_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
SOURCE_KEYS = {"id", "slug", "name", "description", "url", "verifier", "secrets",
               "timestamp_tolerance", "allowed_event_types", "max_body", "rate_limit",
               "ip_allowlist", "dedupe_key", "event_type_key", "handler", "review_required",
               "active", "allowed_object_types", "default_entity_table", "created_at",
               "updated_at"}


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def with_key(h):
    """Give h an admin key under a unique name. The harness names its lazy key after
    id(Hookd) & 0xffff, which repeats once an earlier Hookd is freed, and the earlier key
    is still live in this module's shared database."""
    key = h.create_key(uniq("sources-admin"))
    hh.wait_until(lambda: h.get("/metrics", auth=key).status == 200, 5 * hh.SLOW,
                  message="hookd accepting a fresh admin key")
    h._admin_key = key
    return h


@pytest.fixture
def hookd(hookd_factory):
    return with_key(hookd_factory())


def create(h, **fields):
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


def assert_iso(text):
    import re
    assert isinstance(text, str) and re.match(ISO_RE, text), text


def assert_source_shape(s):
    assert set(s) == SOURCE_KEYS, sorted(set(s) ^ SOURCE_KEYS)
    uuid.UUID(s["id"])
    assert s["url"] == f"/in/{s['slug']}"
    assert_iso(s["created_at"])
    assert_iso(s["updated_at"])
    for sec in s["secrets"]:
        assert set(sec) == {"id", "created_at", "expires_at", "hint"}, sec
        assert sec["id"].startswith("sec_") and len(sec["id"]) == 20, sec
        assert_iso(sec["created_at"])


def std_sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def std_post(h, slug, secret):
    body = json.dumps({"type": "ping", "n": uuid.uuid4().hex}).encode()
    msg_id, ts = "msg_" + uuid.uuid4().hex, int(time.time())
    return h.post(f"/in/{slug}", body=body, headers={
        "Content-Type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": str(ts), "webhook-signature": std_sign(secret, msg_id, ts, body)})


# --- create, read ------------------------------------------------------------------------------

def test_create_shows_the_secret_once_and_seals_it(hookd):
    slug = uniq("std")
    s = create(hookd, slug=slug, name="Standard", verifier="standard")
    assert_source_shape({k: v for k, v in s.items() if k != "secret"})
    secret = s["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert s["verifier"] == {"scheme": "standard"}
    assert len(s["secrets"]) == 1
    assert s["secrets"][0]["expires_at"] is None
    assert s["secrets"][0]["hint"] == "\u2026" + secret[-4:]
    # defaults
    assert s["name"] == "Standard" and s["description"] is None
    assert s["timestamp_tolerance"] == 300 and s["allowed_event_types"] is None
    assert s["max_body"] is None and s["rate_limit"] is None and s["ip_allowlist"] is None
    assert s["dedupe_key"] is None and s["event_type_key"] is None
    assert s["handler"] == {"type": "store"}
    assert s["review_required"] is False and s["active"] is True

    for key in (s["id"], slug):
        r = hookd.get(f"{API}/{key}", auth=True)
        assert r.status == 200, r
        assert "secret" not in r.body
        assert r.body["id"] == s["id"] and r.body["secrets"] == s["secrets"]
        assert secret not in json.dumps(r.body) and secret[6:] not in json.dumps(r.body)
    listed = hookd.get(API, auth=True).body["data"]
    assert secret[6:] not in json.dumps(listed)

    # at rest: the stored format src/sources.c reads back, sealed, never the plaintext
    (stored,) = hookd.sql("SELECT secrets FROM hookd.sources WHERE id = %s", s["id"])[0]
    assert len(stored) == 1
    assert set(stored[0]) == {"id", "sealed", "created_at", "expires_at"}
    assert stored[0]["id"] == s["secrets"][0]["id"] and stored[0]["expires_at"] is None
    assert stored[0]["sealed"] != secret and secret[6:] not in json.dumps(stored)
    assert hookd.sql("SELECT (secrets->0->>'created_at')::timestamptz IS NOT NULL"
                     " FROM hookd.sources WHERE id = %s", s["id"])[0][0]
    # and never in the log
    assert secret[6:] not in hookd.log_text()


def test_create_with_every_field(hookd):
    hookd.sql("CREATE OR REPLACE FUNCTION public.src_handler(event jsonb) RETURNS jsonb"
              " LANGUAGE sql AS 'SELECT event'")
    slug = uniq("full")
    fields = dict(slug=slug, name="Full", description="every field",
                  verifier={"scheme": "github"}, secrets=["newest-secret-value", "older-secret"],
                  timestamp_tolerance=60, allowed_event_types=["push", "ping"], max_body=65536,
                  rate_limit={"per_second": 2.5, "burst": 10},
                  ip_allowlist=["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"],
                  dedupe_key="header:X-GitHub-Delivery", event_type_key="header:X-GitHub-Event",
                  handler={"type": "sql", "function": "public.src_handler", "max_attempts": 5},
                  review_required=True, active=False,
                  allowed_object_types=["person", "influencer"],
                  default_entity_table="influencer")
    s = create(hookd, **fields)
    assert s["secret"] == "newest-secret-value"
    assert [x["hint"] for x in s["secrets"]] == ["\u2026alue", "\u2026"]
    for k, v in fields.items():
        if k in ("secrets",):
            continue
        want = v
        if k == "ip_allowlist":
            want = ["10.0.0.0/8", "127.0.0.1/32", "2001:db8::/32"]
        assert s[k] == want, (k, s[k], want)
    row = hookd.sql("SELECT rate_limit_per_sec, rate_limit_burst, ip_allowlist::text[],"
                    " allowed_event_types, max_body, handler->>'function',"
                    " allowed_object_types, default_entity_table"
                    " FROM hookd.sources WHERE slug = %s", slug)[0]
    assert row == (2.5, 10, ["10.0.0.0/8", "127.0.0.1/32", "2001:db8::/32"], ["push", "ping"],
                   65536, "public.src_handler", ["person", "influencer"], "influencer")


def test_list_is_ordered_by_slug_and_pages(hookd):
    prefix = uniq("list")
    for name in ("c", "a", "b"):
        create(hookd, slug=f"{prefix}-{name}")
    r = hookd.get(API, auth=True)
    assert r.status == 200 and set(r.body) == {"data"}, r
    slugs = [s["slug"] for s in r.body["data"]]
    assert slugs == sorted(slugs)
    mine = [s for s in slugs if s.startswith(prefix)]
    assert mine == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    for s in r.body["data"]:
        assert_source_shape(s)
    i = slugs.index(f"{prefix}-a")
    page = hookd.get(f"{API}?limit=2&offset={i}", auth=True)
    assert page.status == 200, page
    assert [s["slug"] for s in page.body["data"]] == [f"{prefix}-a", f"{prefix}-b"]
    assert hookd.get(f"{API}?limit=100000", auth=True).status == 200
    for bad in ("limit=0", "limit=x", "offset=-1"):
        assert_error(hookd.get(f"{API}?{bad}", auth=True), 400, "bad_request")


# --- change, delete ----------------------------------------------------------------------------

def test_put_replaces_and_resets_omitted_fields(hookd):
    slug = uniq("put")
    s = create(hookd, slug=slug, name="before", description="d", verifier="github",
               secret="put-secret-0123456789", allowed_event_types=["a"], max_body=1000,
               rate_limit={"per_second": 5}, handler="publish", review_required=True,
               allowed_object_types=["person"], default_entity_table="people")
    time.sleep(0.01)
    r = hookd.put(f"{API}/{s['id']}", json={"slug": slug, "name": "after"}, auth=True)
    assert r.status == 200, r
    t = r.body
    assert "secret" not in t
    assert t["id"] == s["id"] and t["name"] == "after"
    assert t["description"] is None and t["allowed_event_types"] is None
    assert t["max_body"] is None and t["rate_limit"] is None
    assert t["handler"] == {"type": "store"} and t["review_required"] is False
    assert t["allowed_object_types"] is None and t["default_entity_table"] is None
    assert t["verifier"] == {"scheme": "none"}
    assert t["secrets"] == s["secrets"]           # secrets stay unless given
    assert t["created_at"] == s["created_at"] and t["updated_at"] > s["updated_at"]

    # by slug, renaming, with new secrets: replaced, not shown
    r = hookd.put(f"{API}/{slug}", json={"slug": slug + "-x", "verifier": "github",
                                         "secret": "replacement-secret-value"}, auth=True)
    assert r.status == 200, r
    assert r.body["slug"] == slug + "-x" and r.body["url"] == f"/in/{slug}-x"
    assert "secret" not in r.body
    assert [x["hint"] for x in r.body["secrets"]] == ["\u2026alue"]
    assert r.body["secrets"][0]["id"] != s["secrets"][0]["id"]
    assert hookd.get(f"{API}/{slug}", auth=True).status == 404
    # PUT needs the slug
    assert_invalid(hookd.put(f"{API}/{s['id']}", json={"name": "x"}, auth=True), "slug")


def test_patch_changes_only_what_it_names(hookd):
    slug = uniq("patch")
    s = create(hookd, slug=slug, name="n", description="keep me", verifier="slack",
               allowed_event_types=["a"], rate_limit={"per_second": 3, "burst": 4},
               dedupe_key="json:$.event_id")
    generated = s["secret"]
    r = hookd.patch(f"{API}/{s['id']}", json={"name": "renamed", "rate_limit": None,
                                               "active": False}, auth=True)
    assert r.status == 200, r
    p = r.body
    assert p["name"] == "renamed" and p["active"] is False and p["rate_limit"] is None
    for k in ("slug", "description", "verifier", "allowed_event_types", "dedupe_key",
              "secrets", "handler", "timestamp_tolerance", "created_at"):
        assert p[k] == s[k], k
    assert "secret" not in p
    # an empty patch changes nothing but updated_at
    r = hookd.patch(f"{API}/{slug}", json={}, auth=True)
    assert r.status == 200 and r.body["name"] == "renamed", r
    # a bad field is refused and nothing changes
    assert_invalid(hookd.patch(f"{API}/{slug}", json={"name": "x", "max_body": -1}, auth=True),
                   "max_body")
    assert hookd.get(f"{API}/{slug}", auth=True).body["name"] == "renamed"
    assert generated not in hookd.log_text()


def test_patch_to_a_verifier_that_needs_a_secret_makes_one(hookd):
    s = create(hookd, slug=uniq("none"))
    assert "secret" not in s and s["secrets"] == []
    r = hookd.patch(f"{API}/{s['id']}", json={"verifier": "standard"}, auth=True)
    assert r.status == 200, r
    assert r.body["secret"].startswith("whsec_")  # made now, shown this once
    assert len(r.body["secrets"]) == 1
    r = hookd.patch(f"{API}/{s['id']}", json={"verifier": "svix"}, auth=True)
    assert r.status == 200 and "secret" not in r.body, r


def test_seed_002_endpoint_fields(hookd):
    """Seed 002's allowed_object_types and default_entity_table: stored, shown, changed by
    PATCH alone, reset by null, validated."""
    s = create(hookd, slug=uniq("crm"))
    assert s["allowed_object_types"] is None and s["default_entity_table"] is None
    r = hookd.patch(f"{API}/{s['id']}", json={"allowed_object_types": ["person", "subscription"],
                                               "default_entity_table": "subscription"}, auth=True)
    assert r.status == 200, r
    assert r.body["allowed_object_types"] == ["person", "subscription"]
    assert r.body["default_entity_table"] == "subscription"
    assert hookd.sql("SELECT allowed_object_types, default_entity_table FROM hookd.sources"
                     " WHERE id = %s", s["id"]) == [(["person", "subscription"], "subscription")]
    r = hookd.patch(f"{API}/{s['id']}", json={"name": "kept"}, auth=True)
    assert r.body["allowed_object_types"] == ["person", "subscription"]
    r = hookd.patch(f"{API}/{s['id']}", json={"allowed_object_types": None}, auth=True)
    assert r.status == 200 and r.body["allowed_object_types"] is None
    assert r.body["default_entity_table"] == "subscription"
    got = hookd.get(f"{API}/{s['slug']}", auth=True).body
    assert_source_shape(got)
    assert (got["allowed_object_types"], got["default_entity_table"]) == (None, "subscription")
    for bad in ({"allowed_object_types": []}, {"allowed_object_types": ["a", "a"]},
                {"allowed_object_types": "person"}, {"default_entity_table": "Bad Name"}):
        assert_invalid(hookd.patch(f"{API}/{s['id']}", json=bad, auth=True), next(iter(bad)))


def test_delete(hookd):
    s = create(hookd, slug=uniq("del"))
    r = hookd.delete(f"{API}/{s['id']}", auth=True)
    assert r.status == 204 and r.body == b"", r
    assert_error(hookd.get(f"{API}/{s['id']}", auth=True), 404, "not_found")
    assert_error(hookd.delete(f"{API}/{s['id']}", auth=True), 404, "not_found")
    assert hookd.sql("SELECT count(*) FROM hookd.sources WHERE id = %s", s["id"])[0][0] == 0
    t = create(hookd, slug=uniq("del"))
    assert hookd.delete(f"{API}/{t['slug']}", auth=True).status == 204


# --- refusals ----------------------------------------------------------------------------------

INVALID = [
    ({}, "slug"),
    ({"slug": "has space"}, "slug"),
    ({"slug": "-leading"}, "slug"),
    ({"slug": "x" * 129}, "slug"),
    ({"slug": 5}, "slug"),
    ({"name": 5}, "name"),
    ({"description": ["x"]}, "description"),
    ({"verifier": "no-such-scheme"}, "verifier"),
    ({"verifier": {"scheme": "github", "colour": "red"}}, "verifier"),
    ({"secret": ""}, "secret"),
    ({"secret": 12}, "secret"),
    ({"secrets": "not-a-list"}, "secrets"),
    ({"secret": "a", "secrets": ["b"]}, "secrets"),
    ({"verifier": "discord"}, "secret"),
    ({"verifier": "discord", "secret": "not-a-public-key"}, "secret"),
    ({"verifier": "standard", "secret": "whsec_!!!"}, "secret"),
    ({"timestamp_tolerance": 86401}, "timestamp_tolerance"),
    ({"timestamp_tolerance": "300"}, "timestamp_tolerance"),
    ({"allowed_event_types": [""]}, "allowed_event_types"),
    ({"allowed_event_types": []}, "allowed_event_types"),
    ({"max_body": 0}, "max_body"),
    ({"max_body": 1024 * 1024 + 1}, "max_body"),
    ({"rate_limit": {"per_second": 0}}, "rate_limit.per_second"),
    ({"rate_limit": {"per_second": 1, "burst": 0}}, "rate_limit.burst"),
    ({"rate_limit": {"per_second": 1, "bursts": 2}}, "rate_limit.bursts"),
    ({"rate_limit": "10/s"}, "rate_limit"),
    ({"ip_allowlist": ["not-a-network"]}, "ip_allowlist"),
    ({"ip_allowlist": ["10.1.2.3/8"]}, "ip_allowlist"),
    ({"dedupe_key": "id"}, "dedupe_key"),
    ({"event_type_key": "body:type"}, "event_type_key"),
    ({"handler": {"type": "shell"}}, "handler.type"),
    ({"handler": {"type": "sql"}}, "handler.function"),
    ({"handler": {"type": "sql", "function": "public.no_such_function"}}, "handler.function"),
    ({"handler": {"type": "sql_sync", "function": "nope.fn"}}, "handler.function"),
    ({"handler": {"type": "store", "extra": 1}}, "handler.extra"),
    ({"review_required": "yes"}, "review_required"),
    ({"active": 0}, "active"),
    ({"colour": "red"}, "colour"),
    ({"id": str(uuid.uuid4())}, "id"),
]


def test_every_invalid_field_is_a_422_naming_it(hookd):
    slug = uniq("inv")
    for fields, field in INVALID:
        body = dict(fields)
        if "slug" not in fields and field != "slug":
            body["slug"] = slug
        assert_invalid(hookd.post(API, json=body, auth=True), field)
    assert hookd.sql("SELECT count(*) FROM hookd.sources WHERE slug = %s", slug)[0][0] == 0
    # the same checks on PUT and PATCH
    s = create(hookd, slug=slug)
    for fields, field in INVALID:
        if field == "slug" and "slug" not in fields:
            continue
        assert_invalid(hookd.patch(f"{API}/{s['id']}", json=fields, auth=True), field)
        body = dict(fields)
        body.setdefault("slug", slug)
        assert_invalid(hookd.put(f"{API}/{s['id']}", json=body, auth=True), field)
    assert hookd.get(f"{API}/{s['id']}", auth=True).body["updated_at"] == s["updated_at"]


def test_bad_json_is_a_400(hookd):
    s = create(hookd, slug=uniq("json"))
    for method, path in (("POST", API), ("PUT", f"{API}/{s['id']}"),
                         ("PATCH", f"{API}/{s['id']}"),
                         ("POST", f"{API}/{s['id']}/rotate-secret")):
        for body in (b"{bad", b"", b'{"slug": "a"} x', b'{"slug": "\\u0000"}'):
            if body == b"" and path.endswith("rotate-secret"):
                continue  # the rotate body is optional
            r = hookd.request(method, path, body=body, auth=True,
                              headers={"Content-Type": "application/json"})
            assert_error(r, 400, "invalid_json")
    assert_invalid(hookd.post(API, json=[1, 2], auth=True), None)


def test_duplicate_slug_is_a_409(hookd):
    slug = uniq("dup")
    create(hookd, slug=slug)
    assert_error(hookd.post(API, json={"slug": slug}, auth=True), 409, "conflict")
    other = create(hookd, slug=uniq("dup"))
    assert_error(hookd.patch(f"{API}/{other['id']}", json={"slug": slug}, auth=True), 409,
                 "conflict")
    assert_error(hookd.put(f"{API}/{other['id']}", json={"slug": slug}, auth=True), 409,
                 "conflict")


@pytest.mark.parametrize("key", [str(uuid.uuid4()), "no-such-source"])
def test_unknown_source_is_a_404(hookd, key):
    assert_error(hookd.get(f"{API}/{key}", auth=True), 404, "not_found")
    assert_error(hookd.put(f"{API}/{key}", json={"slug": "x"}, auth=True), 404, "not_found")
    assert_error(hookd.patch(f"{API}/{key}", json={}, auth=True), 404, "not_found")
    assert_error(hookd.delete(f"{API}/{key}", auth=True), 404, "not_found")
    assert_error(hookd.post(f"{API}/{key}/rotate-secret", json={}, auth=True), 404, "not_found")
    assert_error(hookd.delete(f"{API}/{key}/secrets/sec_0000000000000000", auth=True), 404,
                 "not_found")


def test_every_route_needs_an_admin_key(hookd):
    s = create(hookd, slug=uniq("auth"))
    sid = s["id"]
    for method, path in (("GET", API), ("POST", API), ("GET", f"{API}/{sid}"),
                         ("PUT", f"{API}/{sid}"), ("PATCH", f"{API}/{sid}"),
                         ("DELETE", f"{API}/{sid}"), ("POST", f"{API}/{sid}/rotate-secret"),
                         ("DELETE", f"{API}/{sid}/secrets/sec_0000000000000000")):
        for auth in (None, "hk_" + "A" * 43):
            r = hookd.request(method, path, body=b"{}", auth=auth,
                              headers={"Content-Type": "application/json"})
            assert_error(r, 401, "unauthorized")
    assert hookd.get(f"{API}/{sid}", auth=True).status == 200


# --- secrets -----------------------------------------------------------------------------------

def test_rotate_then_remove_the_old_secret(hookd):
    slug = uniq("rot")
    s = create(hookd, slug=slug, verifier="github", secret="first-secret-0123456789")
    old_id = s["secrets"][0]["id"]

    r = hookd.post(f"{API}/{s['id']}/rotate-secret", auth=True)  # no body: generated
    assert r.status == 200, r
    assert set(r.body) == {"id", "secret", "secrets"}
    assert r.body["id"] == s["id"]
    new = r.body["secret"]
    assert len(new) == 64 and bytes.fromhex(new)
    ids = [x["id"] for x in r.body["secrets"]]
    assert len(ids) == 2 and ids[1] == old_id         # newest first, the old one still live
    assert r.body["secrets"][0]["hint"] == "\u2026" + new[-4:]
    assert all(x["expires_at"] is None for x in r.body["secrets"])
    new_id = ids[0]
    got = hookd.get(f"{API}/{slug}", auth=True).body
    assert [x["id"] for x in got["secrets"]] == [new_id, old_id]
    assert new not in json.dumps(got)
    assert new not in hookd.log_text()

    r = hookd.delete(f"{API}/{s['id']}/secrets/{old_id}", auth=True)
    assert r.status == 204, r
    assert [x["id"] for x in hookd.get(f"{API}/{slug}", auth=True).body["secrets"]] == [new_id]
    stored = hookd.sql("SELECT secrets FROM hookd.sources WHERE slug = %s", slug)[0][0]
    assert [x["id"] for x in stored] == [new_id]

    assert_error(hookd.delete(f"{API}/{s['id']}/secrets/{old_id}", auth=True), 404, "not_found")
    # the last secret of a verifier that needs one stays
    assert_error(hookd.delete(f"{API}/{slug}/secrets/{new_id}", auth=True), 409, "conflict")


def test_rotate_with_a_given_secret_and_an_expiry(hookd):
    s = create(hookd, slug=uniq("exp"), verifier="standard")
    before = time.time()
    r = hookd.post(f"{API}/{s['id']}/rotate-secret", json={"secret": STD_SECRET,
                                                           "expire_previous_after": 3600},
                   auth=True)
    assert r.status == 200, r
    assert r.body["secret"] == STD_SECRET
    new, old = r.body["secrets"]
    assert new["expires_at"] is None
    (exp,) = hookd.sql("SELECT extract(epoch FROM %s::timestamptz)::float8", old["expires_at"])[0]
    assert before + 3600 - 5 <= exp <= time.time() + 3600 + 5

    # expire at once: the previous ones are no longer live, so they can go without a 409
    r = hookd.post(f"{API}/{s['id']}/rotate-secret", json={"expire_previous_after": 0},
                   auth=True)
    assert r.status == 200, r
    assert len(r.body["secrets"]) == 3
    # the next rotation drops the expired ones
    r = hookd.post(f"{API}/{s['id']}/rotate-secret", json={}, auth=True)
    assert r.status == 200, r
    assert len(r.body["secrets"]) == 2

    # a secret that does not suit the verifier, unknown fields
    assert_invalid(hookd.post(f"{API}/{s['id']}/rotate-secret", json={"secret": "whsec_%%%"},
                              auth=True), "secret")
    assert_invalid(hookd.post(f"{API}/{s['id']}/rotate-secret",
                              json={"expire_previous_after": -1}, auth=True),
                   "expire_previous_after")
    assert_invalid(hookd.post(f"{API}/{s['id']}/rotate-secret", json={"secrets": ["x"]},
                              auth=True), "secrets")


def test_discord_takes_the_public_key(hookd):
    s = create(hookd, slug=uniq("discord"), verifier="discord", secret=DISCORD_KEY)
    assert s["secret"] == DISCORD_KEY
    assert_invalid(hookd.post(f"{API}/{s['id']}/rotate-secret", json={}, auth=True), "secret")
    r = hookd.post(f"{API}/{s['id']}/rotate-secret", json={"secret": DISCORD_KEY[::-1]},
                   auth=True)
    assert r.status == 200, r


def test_a_source_without_verification_may_lose_its_last_secret(hookd):
    s = create(hookd, slug=uniq("nov"), secret="unused-secret-value")
    r = hookd.delete(f"{API}/{s['id']}/secrets/{s['secrets'][0]['id']}", auth=True)
    assert r.status == 204, r


def rotate_concurrently(hosts, sid, n):
    """n rotations of source sid spread over hosts at once; returns the replies."""
    replies = [None] * n

    def go(i):
        replies[i] = hosts[i % len(hosts)].post(f"{API}/{sid}/rotate-secret", json={},
                                                auth=True)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def test_concurrent_writes_lose_nothing(hookd):
    s = create(hookd, slug=uniq("race"), verifier="github", secret="race-secret-0123456789")
    replies = rotate_concurrently([hookd], s["id"], 12)
    assert [r.status for r in replies] == [200] * 12, [(r.status, r.body) for r in replies]
    ids = {r.body["secrets"][0]["id"] for r in replies}
    listed = [x["id"] for x in hookd.get(f"{API}/{s['id']}", auth=True).body["secrets"]]
    assert len(listed) == 13 and ids <= set(listed)
    # PATCHes of different fields at once: every one lands
    fields = [{"name": "n"}, {"description": "d"}, {"timestamp_tolerance": 7},
              {"max_body": 77}, {"review_required": True}, {"dedupe_key": "header:X-Id"}]
    out = [None] * len(fields)

    def patch(i):
        out[i] = hookd.patch(f"{API}/{s['id']}", json=fields[i], auth=True).status

    threads = [threading.Thread(target=patch, args=(i,)) for i in range(len(fields))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [200] * len(fields)
    got = hookd.get(f"{API}/{s['id']}", auth=True).body
    for f in fields:
        for k, v in f.items():
            assert got[k] == v, (k, got[k])
    assert len(got["secrets"]) == 13


# --- several processes -------------------------------------------------------------------------

def test_a_second_hookd_sees_changes_without_restart(hookd, hookd_factory):
    # the same master key, so that B can unseal what A sealed
    b = with_key(hookd_factory(config={"master_key_file": os.path.join(hookd.dir, "master.key")}))
    slug = uniq("multi")
    assert b.post(f"/in/{slug}", body=b"{}",
                  headers={"Content-Type": "application/json"}).status == 404
    create(hookd, slug=slug, verifier="standard", secret=STD_SECRET)

    # B's cache is refreshed by NOTIFY hookd_config: its receiver knows the source
    r = hh.wait_until(lambda: (lambda r: r if r.status != 404 else None)(
        std_post(b, slug, STD_SECRET)), 5, message="the new source on the second hookd")
    assert r.status == 202, r

    assert hookd.patch(f"{API}/{slug}", json={"active": False}, auth=True).status == 200
    hh.wait_until(lambda: std_post(b, slug, STD_SECRET).status == 410, 5,
                  message="the deactivated source on the second hookd")

    assert hookd.delete(f"{API}/{slug}", auth=True).status == 204
    hh.wait_until(lambda: std_post(b, slug, STD_SECRET).status == 404, 5,
                  message="the deleted source gone from the second hookd")


def test_two_processes_rotating_at_once_lose_nothing(hookd, hookd_factory):
    b = with_key(hookd_factory(config={"master_key_file": os.path.join(hookd.dir, "master.key")}))
    s = create(hookd, slug=uniq("race2"), verifier="github", secret="race-secret-0123456789")
    replies = rotate_concurrently([hookd, b], s["id"], 10)
    assert [r.status for r in replies] == [200] * 10, [(r.status, r.body) for r in replies]
    listed = hookd.get(f"{API}/{s['id']}", auth=True).body["secrets"]
    assert len(listed) == 11
    # B shows the hints of what A sealed: the same master key opens them
    assert all(x["hint"] for x in b.get(f"{API}/{s['id']}", auth=True).body["secrets"])


# --- the database away (last: it stops the module's cluster) --------------------------------

def test_database_down_is_a_503(pg, hookd):
    s = create(hookd, slug=uniq("down"))
    pg.stop("fast")
    try:
        def unavailable(r):
            assert_error(r, 503, "unavailable")
            assert r.headers.get("Retry-After"), r.headers

        hh.wait_until(lambda: hookd.get(API, auth=True).status == 503, 5,
                      message="503 once Postgres is down")
        unavailable(hookd.get(API, auth=True))
        unavailable(hookd.get(f"{API}/{s['id']}", auth=True))
        unavailable(hookd.post(API, json={"slug": uniq("down")}, auth=True))
        unavailable(hookd.patch(f"{API}/{s['id']}", json={"name": "x"}, auth=True))
        unavailable(hookd.delete(f"{API}/{s['id']}", auth=True))
        unavailable(hookd.post(f"{API}/{s['id']}/rotate-secret", json={}, auth=True))
    finally:
        pg.start()
    hh.wait_until(lambda: hookd.get(f"{API}/{s['id']}", auth=True).status == 200, 20 * hh.SLOW,
                  message="the API back with the database")
