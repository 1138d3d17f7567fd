# SPDX-License-Identifier: ISC
"""POST /in/{slug}: verification over the raw body, every refusal with its status and JSON
error, dedupe, rotation, handshakes, synchronous SQL handlers, group commit, and the promise
that a 2xx means the event is committed (Postgres down, kill -9 under load)."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest

import hookd_harness as hh

STD_SECRET = "whsec_" + base64.b64encode(b"hookd-ingest-test-key-32-bytes!!").decode()


def std_sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def std_headers(secret, body, msg_id=None, ts=None):
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    ts = int(time.time()) if ts is None else ts
    return {"Content-Type": "application/json", "webhook-id": msg_id,
            "webhook-timestamp": str(ts), "webhook-signature": std_sign(secret, msg_id, ts, body)}


def make_source(h, **fields):
    """Create a source through the API and wait until this hookd's cache has it."""
    r = h.post("/api/v1/sources", json=fields, auth=True)
    assert r.status == 201, r
    slug = fields["slug"]
    # text/plain is refused (415) before rate limits and storage: a probe that costs nothing
    hh.wait_until(lambda: h.post(f"/in/{slug}", body=b"{}",
                                 headers={"Content-Type": "text/plain"}).status != 404,
                  5, message=f"source {slug} in hookd's cache")
    return r.body


def count_events(h, slug):
    return h.sql("SELECT count(*) FROM hookd.events e JOIN hookd.sources s ON s.id = e.source_id"
                 " WHERE s.slug = %s", slug)[0][0]


def assert_error(r, status, code):
    assert r.status == status, r
    assert isinstance(r.body, dict) and r.body.get("error") == code, r.body
    assert r.body.get("message"), r.body


def test_accept_store_and_dedupe(hookd):
    make_source(hookd, slug="std", verifier={"scheme": "standard"}, secret=STD_SECRET)
    body = json.dumps({"type": "invoice.paid", "data": {"id": "in_1", "amount": 42}}).encode()
    headers = std_headers(STD_SECRET, body, msg_id="msg_first")
    headers["Authorization"] = "Bearer not-stored"
    r = hookd.post("/in/std", body=body, headers=headers)
    assert r.status == 202, r
    assert r.body["status"] == "accepted" and uuid.UUID(r.body["id"])
    rows = hookd.sql("SELECT external_id, event_type, status, payload, raw_body, headers"
                     " FROM hookd.events WHERE id = %s", r.body["id"])
    assert len(rows) == 1
    external_id, event_type, status, payload, raw, stored_headers = rows[0]
    assert external_id == "msg_first"          # Standard Webhooks' webhook-id dedupes
    assert event_type == "invoice.paid"
    assert status == "pending"
    assert payload == {"type": "invoice.paid", "data": {"id": "in_1", "amount": 42}}
    assert bytes(raw) == body                   # the exact bytes that were verified
    assert stored_headers["webhook-id"] == "msg_first"
    assert "authorization" not in stored_headers

    again = hookd.post("/in/std", body=body, headers=headers)
    assert again.status == 200, again
    assert again.body == {"status": "duplicate", "id": r.body["id"]}
    assert count_events(hookd, "std") == 1


def test_dedupe_on_a_header(hookd):
    """dedupe_key "header:X-Request-Id": a repeat with that header (any case, any body) is
    the first event; without the header nothing is deduplicated."""
    make_source(hookd, slug="hdr-dedupe", dedupe_key="header:X-Request-Id")
    first = hookd.post("/in/hdr-dedupe", json={"n": 1}, headers={"X-Request-Id": "req-abc-1"})
    assert first.status == 202, first
    assert first.body["status"] == "accepted"
    again = hookd.post("/in/hdr-dedupe", json={"n": 2}, headers={"x-request-id": "req-abc-1"})
    assert again.status == 200, again
    assert again.body == {"status": "duplicate", "id": first.body["id"]}
    rows = hookd.sql("SELECT e.id::text, e.external_id, e.payload FROM hookd.events e"
                     " JOIN hookd.sources s ON s.id = e.source_id WHERE s.slug = 'hdr-dedupe'")
    assert rows == [(first.body["id"], "req-abc-1", {"n": 1})]

    other = hookd.post("/in/hdr-dedupe", json={"n": 3}, headers={"X-Request-Id": "req-abc-2"})
    assert other.status == 202 and other.body["id"] != first.body["id"]
    bare = [hookd.post("/in/hdr-dedupe", json={"n": 4}) for _ in range(2)]
    assert [r.status for r in bare] == [202, 202] and bare[0].body["id"] != bare[1].body["id"]
    assert hookd.sql("SELECT external_id FROM hookd.events e JOIN hookd.sources s"
                     " ON s.id = e.source_id WHERE s.slug = 'hdr-dedupe'"
                     " ORDER BY e.received_at, e.id") == [
        ("req-abc-1",), ("req-abc-2",), (None,), (None,)]

    # A JSON key whose value is "" is no key either: both stored.
    make_source(hookd, slug="json-dedupe", dedupe_key="json:$.order.id")
    empty = [hookd.post("/in/json-dedupe", json={"order": {"id": ""}}) for _ in range(2)]
    assert [r.status for r in empty] == [202, 202], empty
    dup = [hookd.post("/in/json-dedupe", json={"order": {"id": 17}}) for _ in range(2)]
    assert [r.status for r in dup] == [202, 200], dup
    assert dup[1].body == {"status": "duplicate", "id": dup[0].body["id"]}
    assert count_events(hookd, "json-dedupe") == 3


def test_refusals_store_nothing(hookd):
    make_source(hookd, slug="strict", verifier={"scheme": "standard"}, secret=STD_SECRET,
                max_body=512)
    body = b'{"type":"a"}'
    good = std_headers(STD_SECRET, body)

    assert_error(hookd.post("/in/nope", body=body, headers=good), 404, "not_found")
    assert_error(hookd.post("/in/strict", body=body,
                            headers={**good, "Content-Type": "text/plain"}),
                 415, "unsupported_media_type")
    assert_error(hookd.post("/in/strict", body=b"x" * 600,
                            headers=std_headers(STD_SECRET, b"x" * 600)), 413, "payload_too_large")
    missing = {"Content-Type": "application/json"}
    assert_error(hookd.post("/in/strict", body=body, headers=missing), 400, "missing_signature")
    bad = dict(good)
    bad["webhook-signature"] = std_sign(STD_SECRET, good["webhook-id"],
                                        good["webhook-timestamp"], b'{"type":"b"}')
    assert_error(hookd.post("/in/strict", body=body, headers=bad), 401, "invalid_signature")
    stale = std_headers(STD_SECRET, body, ts=int(time.time()) - 3600)
    assert_error(hookd.post("/in/strict", body=body, headers=stale), 401, "stale_timestamp")
    not_json = b'{"type": '
    assert_error(hookd.post("/in/strict", body=not_json, headers=std_headers(STD_SECRET, not_json)),
                 400, "invalid_json")
    assert count_events(hookd, "strict") == 0

    # inactive source
    src = hookd.get("/api/v1/sources/strict", auth=True).body
    assert hookd.patch(f"/api/v1/sources/{src['id']}", json={"active": False}, auth=True).status == 200
    hh.wait_until(lambda: hookd.post("/in/strict", body=body,
                                     headers={"Content-Type": "text/plain"}).status == 410, 5,
                  message="inactive source answering 410")
    assert_error(hookd.post("/in/strict", body=body, headers=std_headers(STD_SECRET, body)),
                 410, "source_inactive")
    assert count_events(hookd, "strict") == 0


def test_json_checked_in_place(hookd):
    """A source with no handshake and no json: key takes its JSON body as sent, checked in
    place (json_check): what jsonb would refuse is a 400 naming the reason, before any
    commit, and the event type comes from the body's top-level members."""
    make_source(hookd, slug="plainjson")
    refused = {
        b'{"a":"\\ud800"}': "unpaired surrogate in a \\u escape at offset 6",
        b'{"a":"\\u0000"}': "strings must not contain \\u0000 at offset 6",
        b'{"a":"tab\there"}': "control character in a string (it must be escaped) at offset 9",
        b'{"a":"\xc0\x80"}': "invalid UTF-8 in a string at offset 6",
        b'{"a":1.}': "invalid number (a digit must follow '.') at offset 7",
        b'{"a":NaN}': "unexpected character at offset 5",
        b'{"a":1} {}': "unexpected data after JSON value at offset 8",
        b"[" * 33 + b"]" * 33: "nesting too deep at offset 32",
        b"null": "a JSON null is not accepted here at offset 4",
    }
    for body, reason in refused.items():
        r = hookd.post("/in/plainjson", body=body, headers={"Content-Type": "application/json"})
        assert_error(r, 400, "invalid_json")
        assert r.body["message"] == f"the body is not valid JSON: {reason}", (body, r.body)
    assert count_events(hookd, "plainjson") == 0

    cases = [  # body, the event type stored
        (b'{"ty\\u0070e":"caf\\u00e9.paid","event":"ignored"}', "caf\u00e9.paid"),
        (b'{"type":"","event":"order.created"}', "order.created"),
        (b'{"type":7,"event_type":"from.event_type"}', "from.event_type"),
        (b'{"type":"first","type":"last"}', "last"),
        (b'{"data":{"type":"nested"}}', None),
        (b'["type","array"]', None),
        (b'"just a string"', None),
    ]
    ids = []
    for body, _ in cases:
        r = hookd.post("/in/plainjson", body=body, headers={"Content-Type": "application/json"})
        assert r.status == 202, (body, r)
        ids.append(r.body["id"])
    rows = dict(hookd.sql("SELECT id::text, event_type FROM hookd.events WHERE id = ANY(%s::uuid[])",
                          ids))
    assert [rows[i] for i in ids] == [want for _, want in cases]
    raw = hookd.sql("SELECT raw_body FROM hookd.events WHERE id = %s", ids[0])[0][0]
    assert bytes(raw) == cases[0][0]  # byte for byte


def test_ip_allowlist_and_rate_limit(hookd):
    make_source(hookd, slug="walled", ip_allowlist=["10.0.0.0/8"])
    assert_error(hookd.post("/in/walled", json={"a": 1}), 403, "forbidden")
    # Without trusted_proxies, X-Forwarded-For is anybody's say-so: ignored.
    assert_error(hookd.post("/in/walled", json={"a": 2}, headers={"X-Forwarded-For": "10.1.2.3"}),
                 403, "forbidden")
    assert count_events(hookd, "walled") == 0

    # An address the list allows (tests talk from 127.0.0.1).
    make_source(hookd, slug="lan", ip_allowlist=["192.0.2.0/24", "127.0.0.0/8"])
    r = hookd.post("/in/lan", json={"a": 1})
    assert r.status == 202, r
    assert hookd.sql("SELECT payload FROM hookd.events WHERE id = %s", r.body["id"]) == [
        ({"a": 1},)]

    make_source(hookd, slug="slow", rate_limit={"per_second": 0.5, "burst": 2})
    statuses = [hookd.post("/in/slow", json={"n": i}) for i in range(4)]
    assert [r.status for r in statuses[:2]] == [202, 202], statuses
    limited = [r for r in statuses[2:] if r.status == 429]
    assert limited, statuses
    assert_error(limited[0], 429, "rate_limited")
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert count_events(hookd, "slow") == sum(1 for r in statuses if r.status == 202)


def test_ip_allowlist_behind_a_trusted_proxy(hookd_factory):
    """With trusted_proxies, the client is the right-most X-Forwarded-For address that is
    not itself a trusted proxy; hops left of it are not believed."""
    h = hookd_factory(config={"trusted_proxies": "127.0.0.0/8, 198.51.100.0/24"})
    make_source(h, slug="proxied", ip_allowlist=["10.0.0.0/8"])

    def send(xff, n):
        headers = {"X-Forwarded-For": xff} if xff is not None else {}
        return h.post("/in/proxied", json={"n": n}, headers=headers)

    # The proxy (127.0.0.1) itself is not in the list.
    assert_error(send(None, 0), 403, "forbidden")
    accepted = []
    for n, xff in enumerate(["10.1.2.3", "10.1.2.3, 198.51.100.7", "192.0.2.9, 10.9.9.9"], 1):
        r = send(xff, n)
        assert r.status == 202, (xff, r)
        accepted.append(r.body["id"])
    for n, xff in enumerate(["192.0.2.9", "10.1.2.3, 192.0.2.9", "not-an-address"], 10):
        assert_error(send(xff, n), 403, "forbidden")
    rows = h.sql("SELECT e.id::text, e.payload->>'n', e.headers->>'x-forwarded-for'"
                 " FROM hookd.events e JOIN hookd.sources s ON s.id = e.source_id"
                 " WHERE s.slug = 'proxied' ORDER BY (e.payload->>'n')::int")
    assert rows == [(accepted[0], "1", "10.1.2.3"), (accepted[1], "2", "10.1.2.3, 198.51.100.7"),
                    (accepted[2], "3", "192.0.2.9, 10.9.9.9")]


def test_rotated_secret(hookd):
    src = make_source(hookd, slug="rot", verifier={"scheme": "standard"}, secret=STD_SECRET)
    new_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    r = hookd.post(f"/api/v1/sources/{src['id']}/rotate-secret", json={"secret": new_secret},
                   auth=True)
    assert r.status == 200, r
    assert r.body["secret"] == new_secret
    assert len(r.body["secrets"]) == 2 and r.body["secrets"][1]["id"] == src["secrets"][0]["id"]
    new_id, old_id = r.body["secrets"][0]["id"], r.body["secrets"][1]["id"]
    assert r.body["secrets"][0]["hint"] == "\u2026" + new_secret[-4:]

    def send(secret, tag):
        body = json.dumps({"type": "rot.test", "tag": tag}).encode()
        return hookd.post("/in/rot", body=body, headers=std_headers(secret, body))

    def stored(tag):
        return hookd.sql("SELECT e.id::text, e.payload, e.status FROM hookd.events e"
                         " JOIN hookd.sources s ON s.id = e.source_id"
                         " WHERE s.slug = 'rot' AND e.payload->>'tag' = %s", tag)

    def accepted(r, tag):
        assert r.status == 202, r
        assert r.body["status"] == "accepted" and uuid.UUID(r.body["id"])
        assert stored(tag) == [(r.body["id"], {"type": "rot.test", "tag": tag}, "pending")]

    probe = iter(range(1000))
    hh.wait_until(lambda: send(new_secret, f"probe-{next(probe)}").status == 202, 5,
                  message="new secret accepted")
    accepted(send(new_secret, "new-1"), "new-1")
    accepted(send(STD_SECRET, "old-during-overlap"), "old-during-overlap")

    assert hookd.delete(f"/api/v1/sources/{src['id']}/secrets/{old_id}", auth=True).status == 204
    # (probes sent before this hookd reloads are still accepted, and stored)
    hh.wait_until(lambda: send(STD_SECRET, f"old-probe-{next(probe)}").status == 401, 5,
                  message="old secret refused once removed")
    r = send(STD_SECRET, "old-after")
    assert_error(r, 401, "invalid_signature")
    assert stored("old-after") == []
    accepted(send(new_secret, "new-2"), "new-2")
    assert [x["id"] for x in hookd.get(f"/api/v1/sources/{src['id']}", auth=True).body[
        "secrets"]] == [new_id]


def test_slack_handshake_not_stored(hookd):
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    make_source(hookd, slug="slack", verifier={"scheme": "slack"}, secret=secret)
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    r = hookd.post("/in/slack", body=body, headers={
        "Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig})
    assert r.status == 200, r
    assert r.body == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert count_events(hookd, "slack") == 0


def raw_post(port, path, body, headers):
    """POST on a raw socket: (status, Content-Type, body bytes exactly as sent)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    status, hdrs, got = raw_exchange(port, (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    ctype = [v for k, v in hdrs if k.lower() == "content-type"]
    return status, ctype, got


def test_zoom_url_validation_not_stored(hookd):
    """Zoom's endpoint.url_validation: signed like any event, answered with the plain token
    and its HMAC-SHA256 (hex, keyed with the secret token), nothing stored."""
    secret = "zoom-secret-token-for-tests"
    make_source(hookd, slug="zoom", verifier={"scheme": "zoom"}, secret=secret)
    plain = "qgg8vlvZRS6UYooatFL8Aw"
    body = json.dumps({"payload": {"plainToken": plain}, "event_ts": 1654503849680,
                       "event": "endpoint.url_validation"}).encode()

    def zoom_headers(body, key=secret):
        ts = str(int(time.time()))
        mac = hmac.new(key.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "x-zm-request-timestamp": ts,
                "x-zm-signature": "v0=" + mac}

    status, ctype, got = raw_post(hookd.port, "/in/zoom", body, zoom_headers(body))
    assert status == 200, got
    assert ctype == ["application/json"]
    expected = hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
    assert got == ('{"plainToken":"%s","encryptedToken":"%s"}' % (plain, expected)).encode()
    # Not signed with the secret: no answer that would prove the endpoint.
    r = hookd.post("/in/zoom", body=body, headers=zoom_headers(body, key="other"))
    assert_error(r, 401, "invalid_signature")
    # An ordinary event is stored.
    ev = json.dumps({"event": "meeting.started", "payload": {"object": {"id": "1"}}}).encode()
    r = hookd.post("/in/zoom", body=ev, headers=zoom_headers(ev))
    assert r.status == 202, r
    assert hookd.sql("SELECT e.id::text, e.event_type FROM hookd.events e JOIN hookd.sources s"
                     " ON s.id = e.source_id WHERE s.slug = 'zoom'") == [
        (r.body["id"], "meeting.started")]


# A fixed Ed25519 vector (tests/unit/check_verify.c says how it was made): Discord's PING
# and an interaction, signed over "1700000000" + body with the key DISCORD_PK.
DISCORD_PK = "5aeddb92430b145a25d37eccc0d3d9c49db37e56414043f6dd2edeab229d7876"
DISCORD_TS = "1700000000"
DISCORD_PING = b'{"type":1}'
DISCORD_PING_SIG = ("b36b7c9df64904cec92f7ef4fe701a6afef700b540a6b9665504244ca7efdcd3"
                    "4c3922a7fc0a56a12e1a6b31b42bf00ab56df1f375926f38a689ab6d0a9ef80f")
DISCORD_EVENT = b'{"type":2,"id":"9012","data":{"name":"ping"}}'
DISCORD_EVENT_SIG = ("fcaa637ce9682c393aafef35ead802d987317c2f19d3ee678ac5912433e390e2"
                     "ddd75aa6c7b6d273b6c6a747e0d0a27b90d71fe3015ea53dc84ddfd9f7910f06")


def test_discord_ping_not_stored(hookd):
    """Discord's PING (type 1) is answered {"type":1} and not stored; other interactions
    are. The vector's timestamp is fixed, so the window is off (timestamp_tolerance 0);
    with the default window the same request is stale."""
    make_source(hookd, slug="discord", verifier="discord", secret=DISCORD_PK,
                timestamp_tolerance=0)

    def headers(sig):
        return {"Content-Type": "application/json", "X-Signature-Ed25519": sig,
                "X-Signature-Timestamp": DISCORD_TS}

    status, ctype, got = raw_post(hookd.port, "/in/discord", DISCORD_PING,
                                  headers(DISCORD_PING_SIG))
    assert (status, ctype, got) == (200, ["application/json"], b'{"type":1}')
    # A PING signed for another body is refused, not answered.
    r = hookd.post("/in/discord", body=DISCORD_PING, headers=headers(DISCORD_EVENT_SIG))
    assert_error(r, 401, "invalid_signature")
    assert_error(hookd.post("/in/discord", body=DISCORD_PING,
                            headers={"Content-Type": "application/json"}),
                 400, "missing_signature")
    assert count_events(hookd, "discord") == 0
    r = hookd.post("/in/discord", body=DISCORD_EVENT, headers=headers(DISCORD_EVENT_SIG))
    assert r.status == 202, r
    rows = hookd.sql("SELECT e.id::text, e.raw_body FROM hookd.events e JOIN hookd.sources s"
                     " ON s.id = e.source_id WHERE s.slug = 'discord'")
    assert [(i, bytes(raw)) for i, raw in rows] == [(r.body["id"], DISCORD_EVENT)]

    make_source(hookd, slug="discord-window", verifier="discord", secret=DISCORD_PK)
    assert_error(hookd.post("/in/discord-window", body=DISCORD_PING,
                            headers=headers(DISCORD_PING_SIG)), 401, "stale_timestamp")
    assert count_events(hookd, "discord-window") == 0


SYNC_SQL = """
CREATE TABLE IF NOT EXISTS public.orders (id text PRIMARY KEY, total numeric);
CREATE TABLE IF NOT EXISTS public.blocked (id text PRIMARY KEY);
CREATE OR REPLACE FUNCTION public.take_order(event jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.blocked WHERE id = event->'payload'->>'id') THEN
        RAISE EXCEPTION 'order % refused', event->'payload'->>'id';
    END IF;
    INSERT INTO public.orders VALUES (event->'payload'->>'id', (event->'payload'->>'total')::numeric);
    RETURN jsonb_build_object('status', 201, 'body',
        jsonb_build_object('ok', true, 'order', event->'payload'->>'id', 'source', event->>'source'));
END $$;
"""


def test_sync_handler_answers(hookd):
    hookd.sql(SYNC_SQL)
    make_source(hookd, slug="shop", dedupe_key="json:$.id",
                handler={"type": "sql_sync", "function": "public.take_order"})
    r = hookd.post("/in/shop", json={"id": "o-1", "total": 12.5})
    assert r.status == 201, r
    assert r.body == {"ok": True, "order": "o-1", "source": "shop"}
    assert hookd.sql("SELECT total FROM public.orders WHERE id = 'o-1'")[0][0] == 12.5
    status, result = hookd.sql("SELECT status, result FROM hookd.events WHERE external_id = 'o-1'")[0]
    assert status == "processed" and result["body"]["order"] == "o-1"
    logs = hookd.sql("SELECT action, success FROM hookd.event_logs l JOIN hookd.events e"
                     " ON e.id = l.event_id WHERE e.external_id = 'o-1'")
    assert logs == [("sql_sync", True)]

    # A repeat gets the same answer without running the handler again.
    again = hookd.post("/in/shop", json={"id": "o-1", "total": 12.5})
    assert again.status == 201 and again.body == r.body
    assert hookd.sql("SELECT count(*) FROM public.orders")[0][0] == 1

    # A failing handler: 500, the event kept as failed, its work rolled back; the
    # sender's retry runs the handler again.
    hookd.sql("INSERT INTO public.blocked VALUES ('o-2')")
    bad = hookd.post("/in/shop", json={"id": "o-2", "total": 1})
    assert_error(bad, 500, "handler_failed")
    assert "order o-2 refused" in bad.body["message"]
    assert hookd.sql("SELECT status FROM hookd.events WHERE external_id = 'o-2'")[0][0] == "failed"
    assert hookd.sql("SELECT count(*) FROM public.orders WHERE id = 'o-2'")[0][0] == 0
    hookd.sql("DELETE FROM public.blocked")
    fixed = hookd.post("/in/shop", json={"id": "o-2", "total": 1})
    assert fixed.status == 201, fixed
    assert hookd.sql("SELECT status FROM hookd.events WHERE external_id = 'o-2'")[0][0] == "processed"


HEADERS_SQL = r"""
CREATE OR REPLACE FUNCTION public.answer_with_headers(event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('status', 202, 'body', jsonb_build_object('ok', true),
        'headers', CASE WHEN event->'payload'->>'case' = 'html'
            THEN jsonb_build_object('Content-Type', 'text/html', 'X-Kept', 'yes')
            ELSE jsonb_build_object(
                'X-Order-Id', 'o-9', 'Location', '/orders/o-9', 'X-Tabbed', E'a	b',
                'Content-Type', 'application/problem+json',
                'Content-Length', '1', 'Transfer-Encoding', 'chunked', 'Connection', 'close',
                'Keep-Alive', 'timeout=1', 'Upgrade', 'h2c', 'TE', 'trailers',
                'Trailer', 'X-T', 'Proxy-Authenticate', 'Basic', 'Content-Encoding', 'gzip',
                'X-Request-Id', 'forged', 'Bad Name', 'x', 'X-Colon:', 'x',
                'X-Split', E'a
Set-Cookie: evil=1', 'X-Newline', E'a
b',
                'X-Number', 5)
            END)
$$;
"""


def raw_exchange(port, request):
    """Send raw request bytes on a keep-alive connection; return (status, [(name, value)],
    body) read exactly as framed by Content-Length."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before the headers: {data!r}"
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:]]
        length = [int(v) for k, v in headers if k.lower() == "content-length"]
        assert len(length) == 1, headers
        while len(body) < length[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside the body"
            body += chunk
        return status, headers, body


def test_sync_handler_headers_are_filtered(hookd):
    """A sync handler chooses its status and headers, but not the framing: hop-by-hop and
    framing headers, X-Request-Id, bad names and values with CR/LF are dropped, and only a
    JSON Content-Type may replace application/json. On the wire, byte for byte."""
    hookd.sql(HEADERS_SQL)
    make_source(hookd, slug="hdrs", handler={"type": "sql_sync",
                                             "function": "public.answer_with_headers"})
    mark = hookd.log_mark()
    body = b'{"case":"all"}'
    status, headers, got = raw_exchange(hookd.port, (
        "POST /in/hdrs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert status == 202
    assert got == b'{"ok":true}'
    names = [k.lower() for k, _ in headers]
    values = {k.lower(): v for k, v in headers}
    assert names.count("content-type") == 1 and values["content-type"] == "application/problem+json"
    assert names.count("content-length") == 1 and values["content-length"] == str(len(got))
    assert values["x-order-id"] == "o-9" and values["location"] == "/orders/o-9"
    assert values["x-tabbed"] == "a\tb"
    assert names.count("x-request-id") == 1 and values["x-request-id"] != "forged"
    for gone in ("transfer-encoding", "keep-alive", "upgrade", "te", "trailer",
                 "proxy-authenticate", "content-encoding", "bad name", "x-colon:", "x-split",
                 "set-cookie", "x-newline", "x-number"):
        assert gone not in names, (gone, headers)
    assert values.get("connection", "keep-alive").lower() != "close", headers
    dropped = {l.get("msg", "") for l in hookd.log_lines(mark) if "dropped" in l.get("msg", "")}
    for name in ("Content-Length", "Transfer-Encoding", "X-Request-Id", "X-Split", "Bad Name",
                 "X-Number"):
        assert any(f'"{name}"' in m for m in dropped), (name, dropped)
    assert not any("evil" in m for m in dropped)  # names only, never values

    # A Content-Type that is not JSON is dropped: the body is JSON whatever it says.
    r = hookd.post("/in/hdrs", json={"case": "html"})
    assert r.status == 202 and r.body == {"ok": True}
    assert r.headers.get_all("Content-Type") == ["application/json"]
    assert r.headers["X-Kept"] == "yes"
    assert hookd.sql("SELECT count(*), bool_and(status = 'processed') FROM hookd.events e"
                     " JOIN hookd.sources s ON s.id = e.source_id WHERE s.slug = 'hdrs'") == [
        (2, True)]


def test_group_commit_batches(hookd_factory):
    h = hookd_factory(config={"ingest_inflight_max": 1})
    make_source(h, slug="bulk")
    n = 120
    results = [None] * n
    start = threading.Barrier(n)

    def send(i):
        start.wait()
        results[i] = h.post("/in/bulk", json={"n": i})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None and r.status == 202 for r in results), results
    ids = {r.body["id"] for r in results}
    assert len(ids) == n
    stored = {str(x[0]) for x in h.sql("SELECT e.id FROM hookd.events e JOIN hookd.sources s"
                                       " ON s.id = e.source_id WHERE s.slug = 'bulk'")}
    assert ids <= stored
    m = h.metrics()
    commits = m[hh.metric_key("hookd_ingest_commit_events_count")]
    single = m[hh.metric_key("hookd_ingest_commit_events_bucket", le="1")]
    # Some commit carried several events: requests arriving while one was in flight
    # shared the next one.
    assert single < commits, (single, commits)


def test_database_down_gives_503_and_stores_nothing(pg, hookd):
    make_source(hookd, slug="down")
    before = count_events(hookd, "down")
    pg.stop("fast")
    try:
        r = hookd.post("/in/down", json={"marker": "while-down"})
        assert_error(r, 503, "unavailable")
        assert int(r.headers["Retry-After"]) >= 1
    finally:
        pg.start()
    hh.wait_until(lambda: hookd.get("/readyz").status == 200, 10, message="ready again")
    assert count_events(hookd, "down") == before
    assert hookd.sql("SELECT count(*) FROM hookd.events WHERE payload->>'marker' = 'while-down'")[0][0] == 0
    assert hookd.post("/in/down", json={"marker": "after"}).status == 202


WRK_SCRIPT = r"""
local counter = 0
function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
end
function init(args)
    out = io.open(os.getenv("WRK_OUT") .. "." .. tid, "w")
    wrk.method = "POST"
    wrk.body = '{"type":"load.test","data":{"filler":"0123456789012345678901234567890123456789"}}'
    wrk.headers["Content-Type"] = "application/json"
end
function response(status, headers, body)
    if status >= 200 and status < 300 then
        out:write(body, "\n")
        out:flush()
    end
end
"""


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_kill9_during_wrk_every_2xx_is_stored(hookd_factory, test_root):
    h = hookd_factory()
    make_source(h, slug="load")
    script = os.path.join(test_root, "kill9.lua")
    outbase = os.path.join(test_root, "kill9-ids")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    wrk = subprocess.Popen(["wrk", "-t2", "-c32", "-d4s", "-s", script,
                            f"http://127.0.0.1:{h.port}/in/load"],
                           env={**os.environ, "WRK_OUT": outbase},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    h.kill9()
    wrk.communicate(timeout=30)
    answered = []
    for tid in (0, 1):
        path = f"{outbase}.{tid}"
        if os.path.exists(path):
            with open(path) as f:
                answered += [json.loads(line)["id"] for line in f if line.strip()]
    assert len(answered) > 100, f"only {len(answered)} answers before the kill"
    stored = {str(x[0]) for x in h.sql("SELECT id FROM hookd.events")}
    missing = [i for i in answered if i not in stored]
    assert not missing, f"{len(missing)} of {len(answered)} ids answered 2xx are not stored"
