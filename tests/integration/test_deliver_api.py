# SPDX-License-Identifier: ISC
"""Delivery history and recovery routes (/api/v1 and seed 003's /api/webhooks/:id/...),
test sends, stats, and receivers that verify signatures the way real ones do: the
standardwebhooks npm package's Webhook.verify, and the seeds' Express examples."""

import json
import os
import re
import subprocess
import time
import urllib.request

import hookd_harness as hh
from outbound import (attempts, create_webhook, delivery, fresh, hex_hmac, publish,
                      wait_delivery)
from sink import sink  # noqa: F401  (fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
NIL = "00000000-0000-0000-0000-000000000000"


def test_delivery_history_routes(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    wh = create_webhook(h, sink.url("/hist?fail=1&status=500&body=nope"),
                        retry_backoff_seconds=0.2)
    mids = [publish(h, data={"n": i}) for i in range(3)]
    for m in mids:
        wait_delivery(h, m, "succeeded", 10)

    r = h.get(f"/api/v1/webhooks/{wh['id']}/deliveries?limit=2", auth=True)
    assert r.status == 200
    page = r.body["data"]
    assert len(page) == 2 and r.body["next_before"] == page[-1]["id"]
    d = page[0]
    assert set(d) >= {"id", "webhook_id", "message_id", "event", "status", "attempts",
                      "response_status", "response_time_ms", "response_body", "error",
                      "timestamp", "created_at", "completed_at"}
    assert d["status"] == "succeeded" and d["webhook_id"] == wh["id"]
    assert d["response_status"] == 200 and d["response_body"] == "nope"
    assert d["response_time_ms"] >= 0 and d["timestamp"].endswith("Z")
    rest = h.get(f"/api/v1/webhooks/{wh['id']}/deliveries?before={page[-1]['id']}",
                 auth=True).body
    assert len(rest["data"]) == 1 and rest["next_before"] is None
    all_ids = {x["message_id"] for x in page + rest["data"]}
    assert all_ids == set(mids)
    # The first request to reach the sink failed (fail=1 counts per URL): 2 attempts.
    ds = [delivery(h, m) for m in mids]
    assert sorted(x["attempts"] for x in ds) == [1, 1, 2]
    i = [x["attempts"] for x in ds].index(2)
    first = ds[i]
    r = h.get(f"/api/v1/deliveries/{first['id']}", auth=True)
    assert r.status == 200 and r.body["attempts"] == 2
    assert r.body["message"]["id"] == mids[i] and r.body["message"]["data"] == {"n": i}
    r = h.get(f"/api/v1/deliveries/{first['id']}/attempts", auth=True)
    assert [(a["attempt"], a["status_code"], a["success"], a["response_body"])
            for a in r.body["data"]] == [(1, 500, False, "nope"), (2, 200, True, "nope")]
    assert h.get(f"/api/v1/webhooks/{wh['id']}/deliveries?status=dead", auth=True
                 ).body["data"] == []
    # Errors.
    assert h.get(f"/api/v1/webhooks/{NIL}/deliveries", auth=True).status == 404
    assert h.get("/api/v1/webhooks/nope/deliveries", auth=True).status == 404
    assert h.get(f"/api/v1/deliveries/{NIL}", auth=True).status == 404
    assert h.get(f"/api/v1/deliveries/{NIL}/attempts", auth=True).status == 404
    assert h.get(f"/api/v1/webhooks/{wh['id']}/deliveries?limit=0", auth=True).status == 400
    assert h.get(f"/api/v1/webhooks/{wh['id']}/deliveries?status=x", auth=True).status == 400
    assert h.get(f"/api/v1/webhooks/{wh['id']}/deliveries").status == 401


def test_recover_replays_failures_since(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    wh = create_webhook(h, sink.url("/rec?status=500"), max_retries=0)
    old = publish(h)
    wait_delivery(h, old, "dead", 5)
    time.sleep(0.05)
    since = h.sql("SELECT to_char(now() AT TIME ZONE 'UTC',"
                  " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]
    new = [publish(h) for _ in range(2)]
    for m in new:
        wait_delivery(h, m, "dead", 5)
    # The endpoint works again (same webhook, PATCHed URL); recover everything since.
    r = h.patch(f"/api/v1/webhooks/{wh['id']}", auth=True, json={"url": sink.url("/rec-ok")})
    assert r.status == 200, r.body
    time.sleep(0.3)
    r = h.post(f"/api/v1/webhooks/{wh['id']}/recover", auth=True, json={"since": since})
    assert r.status == 202 and r.body == {"count": 2}
    for m in new:
        wait_delivery(h, m, "succeeded", 5)
    assert delivery(h, old)["status"] == "dead"
    assert sink.count("/rec-ok") == 2
    r = h.post(f"/api/v1/webhooks/{wh['id']}/recover", auth=True, json={"since": "soon"})
    assert r.status == 422 and r.body["field"] == "since"
    r = h.post(f"/api/v1/webhooks/{wh['id']}/recover", auth=True, json={})
    assert r.status == 422 and r.body["field"] == "since"
    r = h.post(f"/api/v1/webhooks/{NIL}/recover", auth=True, json={"since": since})
    assert r.status == 404


def test_test_send_and_stats(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    ok = create_webhook(h, sink.url("/t-ok?body=thanks"), events=["order.created"])
    bad = create_webhook(h, sink.url("/t-bad?status=503&body=later"))
    r = h.post(f"/api/v1/webhooks/{ok['id']}/test", auth=True)
    assert r.status == 200, r.body
    t = r.body
    assert t["success"] is True and t["status"] == "succeeded" and t["status_code"] == 200
    assert t["response_body"] == "thanks" and t["error"] is None and t["event"] == "webhook.test"
    assert t["duration_ms"] >= 0 and t["started_at"].endswith("Z")
    (req,) = sink.requests("/t-ok")
    body = json.loads(req["body"])
    assert body["event"] == "webhook.test" and body["data"]["webhook_id"] == ok["id"]
    assert req["headers"]["webhook-id"] == t["message_id"]
    # The attempt is recorded like any other.
    assert [a["status_code"] for a in attempts(h, t["id"])] == [200]
    # A failing test send is not retried and does not count towards disabling.
    r = h.post(f"/api/v1/webhooks/{bad['id']}/test", auth=True)
    assert r.status == 200
    assert r.body["success"] is False and r.body["status"] == "dead"
    assert r.body["status_code"] == 503 and r.body["response_body"] == "later"
    assert "503" in r.body["error"]
    time.sleep(0.3)
    assert sink.count("/t-bad") == 1
    assert h.sql("SELECT failure_streak FROM hookd.subscriptions WHERE id = %s",
                 bad["id"])[0][0] == 0
    assert h.post(f"/api/v1/webhooks/{NIL}/test", auth=True).status == 404
    h.patch(f"/api/v1/webhooks/{bad['id']}", auth=True, json={"enabled": False})
    r = h.post(f"/api/v1/webhooks/{bad['id']}/test", auth=True)
    assert r.status == 409

    for _ in range(3):
        publish(h, "order.created")
    hh.wait_until(lambda: h.sql("SELECT count(*) FROM hookd.deliveries"
                                " WHERE status = 'succeeded'")[0][0] == 4, 5 * hh.SLOW)
    r = h.get(f"/api/v1/webhooks/{ok['id']}/stats", auth=True)
    assert r.status == 200
    st = r.body
    assert st["webhook_id"] == ok["id"] and st["window_seconds"] == 86400
    assert (st["sent"], st["succeeded"], st["failed"], st["dead"], st["pending"]) == (4, 4, 0, 0, 0)
    assert st["success_rate"] == 1
    assert set(st["latency_ms"]) == {"p50", "p95", "p99", "avg", "max"}
    assert 0 <= st["latency_ms"]["p50"] <= st["latency_ms"]["p99"] <= st["latency_ms"]["max"]
    r = h.get("/api/v1/stats?window=1h", auth=True)
    assert r.status == 200
    assert (r.body["sent"], r.body["succeeded"], r.body["failed"], r.body["dead"]) == (5, 4, 1, 1)
    assert r.body["success_rate"] == 0.8 and r.body["window_seconds"] == 3600
    assert h.get("/api/v1/stats?window=forever", auth=True).status == 400


def test_seed_003_routes(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    r = h.post("/api/webhooks", auth=True, json={
        "name": "Order Notifications", "url": sink.url("/omni?fail=4&status=500"),
        "events": ["order.created", "order.updated"],
        "description": "Receive order events in real-time"})
    assert r.status == 201, r.body
    wh = r.body["data"]
    wid = wh["id"]
    time.sleep(0.3)
    h.sql("UPDATE hookd.subscriptions SET retry_backoff_seconds = 0.1 WHERE id = %s", wid)
    h.sql("NOTIFY hookd_config, 'subscriptions'")
    time.sleep(0.3)
    mid = publish(h, "order.created", {"order_id": "ord_789"})
    d = wait_delivery(h, mid, "dead", 10)

    r = h.get(f"/api/webhooks/{wid}/logs", auth=True)
    assert r.status == 200 and r.body["success"] is True
    logs = r.body["data"]
    assert len(logs) == 4 and [x["attempt"] for x in logs] == [4, 3, 2, 1]  # newest first
    assert all(x["event"] == "order.created" and x["event_id"] == mid and x["success"] is False
               and x["status_code"] == 500 for x in logs)

    r = h.get(f"/api/webhooks/{wid}/replay", auth=True)
    assert r.status == 200 and r.body["success"] is True
    (failure,) = r.body["data"]
    assert failure["failure_id"] == d["id"] and failure["status"] == "dead"
    assert failure["attempts"] == 4 and failure["event"] == "order.created"

    r = h.post(f"/api/webhooks/{wid}/replay", auth=True, json={"failure_id": failure["failure_id"]})
    assert r.status == 202, r.body
    assert r.body == {"success": True, "data": {"id": d["id"], "failure_id": d["id"],
                                                "status": "pending", "previous_status": "dead"}}
    wait_delivery(h, mid, "succeeded", 5)
    assert h.get(f"/api/webhooks/{wid}/replay", auth=True).body == {"success": True, "data": []}
    r = h.post(f"/api/webhooks/{wid}/replay", auth=True, json={"failure_id": "fail_abc123"})
    assert r.status == 422 and r.body["success"] is False and r.body["field"] == "failure_id"
    r = h.post(f"/api/webhooks/{wid}/replay", auth=True, json={"failure_id": NIL})
    assert r.status == 404 and r.body["success"] is False

    r = h.post(f"/api/webhooks/{wid}/test", auth=True)
    assert r.status == 200 and r.body["success"] is True
    assert r.body["data"]["success"] is True and r.body["data"]["status_code"] == 200
    # Seed 003's headers on every delivery of a webhook made through its API, with the
    # values docs/seed-003-omnisales.md gives them: X-Webhook-Signature the lower-case hex
    # HMAC-SHA256 of the body keyed with the secret string, X-Webhook-Timestamp this
    # attempt's Unix time, X-Webhook-ID the event id (the body's id, the same on retries).
    reqs = sink.requests("/omni")
    assert len(reqs) == 6  # 4 failures, the replay, the test send
    test_id = r.body["data"]["message_id"]
    for req in reqs:
        hdr, body = req["headers"], json.loads(req["body"])
        assert hdr["x-webhook-signature"] == hex_hmac(wh["secret"], req["body"]), req
        assert re.fullmatch(r"[0-9a-f]{64}", hdr["x-webhook-signature"])
        assert hdr["x-webhook-id"] == body["id"] == hdr["webhook-id"]
        ts = hdr["x-webhook-timestamp"]
        assert re.fullmatch(r"[0-9]{10}", ts) and ts == hdr["webhook-timestamp"]
        # When it was signed: whole seconds, at most the receipt time, and not long before
        # it (the attempt's own time: signing, connecting, sending; slower under ASan).
        assert req["ms"] / 1000 - 2 * hh.SLOW <= int(ts) <= req["ms"] / 1000
        assert hdr["user-agent"].startswith("hookd/") and "x-fluxbase-signature" not in hdr
    assert [x["headers"]["x-webhook-id"] for x in reqs] == [mid] * 5 + [test_id]
    assert json.loads(reqs[-1]["body"])["event"] == "webhook.test"

    r = h.get(f"/api/webhooks/{wid}/stats", auth=True)
    assert r.status == 200 and r.body["success"] is True
    st = r.body["data"]
    assert (st["sent"], st["succeeded"], st["failed"]) == (6, 2, 4)
    assert st["success_rate"] == round(2 / 6, 4)
    r = h.get(f"/api/webhooks/{NIL}/logs", auth=True)
    assert r.status == 404 and r.body["success"] is False
    assert h.get(f"/api/webhooks/{NIL}/stats", auth=True).status == 404


def test_seed_003_errors_are_in_its_shape(pg, hookd_factory, sink):
    """Every error of seed 003's routes is {"success": false, "error": text} (plus "field" on
    a 422) with the right status."""
    h = fresh(pg, hookd_factory)
    r = h.post("/api/webhooks", auth=True, json={"name": "x", "url": sink.url("/e"),
                                                 "events": ["order.created"]})
    assert r.status == 201, r.body
    wid = r.body["data"]["id"]
    time.sleep(0.3)
    J = {"Content-Type": "application/json"}
    cases = [
        ("GET", "/api/webhooks?limit=x", None, 400, None),
        ("GET", "/api/webhooks?offset=-1", None, 400, None),
        ("POST", "/api/webhooks", b"{bad", 400, None),
        ("POST", "/api/webhooks", b"", 400, None),
        ("POST", "/api/webhooks", b"[1]", 422, "null"),
        ("POST", "/api/webhooks", b'{"name":"x"}', 422, "url"),
        ("POST", "/api/webhooks", b'{"name":"x","url":"ftp://x"}', 422, "url"),
        ("GET", "/api/webhooks/nope", None, 404, None),
        ("GET", f"/api/webhooks/{NIL}", None, 404, None),
        ("PUT", f"/api/webhooks/{NIL}", b"{}", 404, None),
        ("PUT", f"/api/webhooks/{wid}", b"{bad", 400, None),
        ("PUT", f"/api/webhooks/{wid}", b'{"events":[]}', 422, "events"),
        ("DELETE", f"/api/webhooks/{NIL}", None, 404, None),
        ("GET", f"/api/webhooks/{NIL}/logs", None, 404, None),
        ("GET", "/api/webhooks/nope/logs", None, 404, None),
        ("GET", f"/api/webhooks/{wid}/logs?limit=0", None, 400, None),
        ("GET", f"/api/webhooks/{NIL}/stats", None, 404, None),
        ("GET", "/api/webhooks/nope/stats", None, 404, None),
        ("GET", f"/api/webhooks/{wid}/stats?window=x", None, 400, None),
        ("POST", f"/api/webhooks/{NIL}/test", None, 404, None),
        ("POST", "/api/webhooks/nope/test", None, 404, None),
        ("GET", f"/api/webhooks/{NIL}/replay", None, 404, None),
        ("GET", "/api/webhooks/nope/replay", None, 404, None),
        ("POST", f"/api/webhooks/{wid}/replay", b"{bad", 400, None),
        ("POST", f"/api/webhooks/{wid}/replay", b"{}", 422, "failure_id"),
        ("POST", f"/api/webhooks/{wid}/replay", b'{"failure_id":5}', 422, "failure_id"),
        ("POST", f"/api/webhooks/{wid}/replay", json.dumps({"failure_id": NIL}).encode(), 404,
         None),
        ("POST", f"/api/webhooks/{NIL}/replay", json.dumps({"failure_id": NIL}).encode(), 404,
         None),
    ]
    for method, path, body, status, field in cases:
        r = h.request(method, path, body=body, auth=True, headers=J if body is not None else None)
        what = f"{method} {path} {body!r}: {r.status} {r.body!r}"
        assert r.status == status, what
        assert "application/json" in r.headers.get("Content-Type", ""), what
        assert r.body["success"] is False and isinstance(r.body["error"], str), what
        assert r.body["error"], what
        if field is None:
            assert set(r.body) == {"success", "error"}, what
        else:
            assert set(r.body) == {"success", "error", "field"}, what
            assert r.body["field"] == (None if field == "null" else field), what
    # A delivery that is not failed is not replayed (409), nor is anything of a webhook
    # that is not active, nor is it tested.
    mid = publish(h, "order.created")
    d = wait_delivery(h, mid, "succeeded", 5)
    r = h.post(f"/api/webhooks/{wid}/replay", auth=True, json={"failure_id": d["id"]})
    assert r.status == 409 and r.body["success"] is False and "succeeded" in r.body["error"]
    assert h.put(f"/api/webhooks/{wid}", auth=True, json={"is_active": False}).status == 200
    time.sleep(0.3)
    r = h.post(f"/api/webhooks/{wid}/test", auth=True)
    assert r.status == 409 and r.body == {"success": False,
                                          "error": "the subscription is disabled"}, r.body


# --- real receivers -------------------------------------------------------------------------

class NodeReceiver:
    def __init__(self, node_modules, root):
        self.out = os.path.join(root, f"sw-receiver-{os.getpid()}-{time.monotonic_ns()}.out")
        env = dict(os.environ, NODE_PATH=node_modules)
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(["node", os.path.join(HERE, "node", "sw-receiver.js")],
                                         stdout=f, stderr=subprocess.STDOUT, env=env)

        def port():
            if self.proc.poll() is not None:
                raise AssertionError(f"sw-receiver exited:\n{hh.tail(self.out)}")
            with open(self.out) as f:
                for line in f:
                    if line.startswith("listening on "):
                        return int(line.split()[2])
            return None
        self.port = hh.wait_until(port, 20, message="node receiver listening")

    def call(self, method, path, obj=None):
        data = json.dumps(obj).encode() if obj is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def test_real_receivers_verify_every_delivery(pg, hookd_factory, test_root, node_modules):
    h = fresh(pg, hookd_factory)
    rx = NodeReceiver(node_modules, test_root)
    try:
        # Standard Webhooks with a generated whsec_ secret; seed 004's header too.
        std = create_webhook(h, rx.url("/r/std?check=standard"), name="std")
        flux = create_webhook(h, rx.url("/r/flux?check=standard,fluxbase"), name="flux",
                              secret="whsec_" + "c2VlZC0wMDQtZmx1eGJhc2Utc2VjcmV0LTEyMzQ1Njc4")
        r = h.post("/api/webhooks", auth=True, json={
            "name": "omni", "url": rx.url("/r/omni?check=standard,omnisales"),
            "events": ["*"]})
        assert r.status == 201, r.body
        omni = r.body["data"]
        rx.call("POST", "/_secrets", {"std": std["secret"], "flux": flux["secret"],
                                      "omni": omni["secret"]})
        time.sleep(0.3)
        # Bodies that are easy to get wrong: '/', unicode, numbers, nesting, key order.
        datas = [
            {"order_id": "ord_789", "total": 99.99, "currency": "USD", "url": "https://a/b",
             "items": [{"product_id": "prod_123", "quantity": 2, "price": 49.99}]},
            {"name": "Zoë — “quotes” \u2028 ✓", "n": 1.0, "big": 12345678901234, "neg": -0.5,
             "empty": {}, "list": [], "null": None, "t": True},
            {"2": "b", "1": "a", "z": {"10": 1, "9": 2}},
            "a string", 42, [1, "two", None],
        ]
        mids = [publish(h, "order.created", d) for d in datas]
        total = len(mids) * 3
        results = hh.wait_until(lambda: (lambda r: r if len(r) >= total else None)(
            rx.call("GET", "/_results")), 15 * hh.SLOW, message="every delivery at the receiver")
        bad = [x for x in results if not x["ok"]]
        assert bad == [], f"verification failed: {bad}"
        for m in mids:
            for wid in (std["id"], flux["id"], omni["id"]):
                wait_delivery(h, m, "succeeded", 5, wid=wid)

        # Rotation: during the overlap both the old and the new secret verify.
        r = h.post(f"/api/v1/webhooks/{std['id']}/rotate-secret", auth=True,
                   json={"expire_previous_after": 600})
        assert r.status == 200, r.body
        rx.call("POST", "/_secrets", {"std-new": r.body["secret"], "std-old": std["secret"]})
        h.patch(f"/api/v1/webhooks/{std['id']}", auth=True,
                json={"url": rx.url("/r/std-new?check=standard")})
        time.sleep(0.3)
        m1 = publish(h, "order.updated", {"n": 1})
        wait_delivery(h, m1, "succeeded", 10, wid=std["id"])
        h.patch(f"/api/v1/webhooks/{std['id']}", auth=True,
                json={"url": rx.url("/r/std-old?check=standard")})
        time.sleep(0.3)
        m2 = publish(h, "order.updated", {"n": 2})
        wait_delivery(h, m2, "succeeded", 10, wid=std["id"])
        results = rx.call("GET", "/_results")
        assert [x["ok"] for x in results if x["path"].startswith("/r/std-")] == [True, True]
    finally:
        rx.stop()
