# SPDX-License-Identifier: ISC
"""Outbound delivery against the project's sink: signed POSTs, retries at the scheduled
times (on the timing wheel), dead letters and replay, 410 and consecutive deaths disabling a
subscription (with a webhook.disabled message), timeouts, the SSRF guard, Retry-After,
secret rotation, change payloads, and a drain that finishes what is in flight.

Each test gets a database of its own; webhooks are made and events published through the
API, as a user would.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import hookd_harness as hh
from outbound import (attempts, create_webhook, delivery, fresh, hex_hmac, js_stringify,
                      publish, standard_signatures, wait_delivery)
from sink import Sink, make_ca, make_server_cert, sink  # noqa: F401  (fixture)


def gaps(reqs):
    return [(b["ms"] - a["ms"]) / 1000.0 for a, b in zip(reqs, reqs[1:])]


def test_fails_twice_then_succeeds_on_schedule(pg, hookd_factory, sink):
    """Default policy: retry 1 after ~1 s, retry 2 after ~2 s (+-10 % jitter); all stored."""
    h = fresh(pg, hookd_factory)
    wh = create_webhook(h, sink.url("/flaky?fail=2&status=500"))
    mid = publish(h, "order.created", {"order_id": "ord_789", "total": 99.99})

    reqs = sink.wait_for(3, path="/flaky", timeout=15 * hh.SLOW)
    d = wait_delivery(h, mid, "succeeded", 5)
    assert d["attempts"] == 3 and d["last_status"] == 200 and d["last_error"] is None
    assert d["completed_at"] is not None and d["lease_until"] is None
    g1, g2 = gaps(reqs)
    # The schedule, not a performance bound: jitter is +-10 %, plus a little for the
    # write-back, the wheel's 10 ms granule and the lease.
    slack = 0.35 * hh.SLOW
    assert 0.9 - 0.02 <= g1 <= 1.1 + slack, f"retry 1 came {g1:.3f} s after the first attempt"
    assert 1.8 - 0.02 <= g2 <= 2.2 + slack, f"retry 2 came {g2:.3f} s after retry 1"

    att = attempts(h, d["id"])
    assert [a["attempt"] for a in att] == [1, 2, 3]
    assert [a["status_code"] for a in att] == [500, 500, 200]
    assert all(a["duration_ms"] is not None and a["duration_ms"] >= 0 for a in att)
    assert all(a["error"] is None for a in att)
    assert att[2]["response_body"] == "ok"
    # The same message id on every attempt; the body is the seed 003 envelope, compact.
    assert {r["headers"]["webhook-id"] for r in reqs} == {mid}
    body = json.loads(reqs[0]["body"])
    assert list(body) == ["id", "event", "created_at", "data"]
    assert body["id"] == mid and body["event"] == "order.created"
    assert body["data"] == {"order_id": "ord_789", "total": 99.99}
    assert body["created_at"].endswith("Z")
    assert reqs[0]["body"] == js_stringify(body)
    for r in reqs:
        hdr = r["headers"]
        assert hdr["content-type"] == "application/json"
        assert hdr["user-agent"].startswith("hookd/")
        ts = int(hdr["webhook-timestamp"])
        assert abs(ts - r["ms"] / 1000) < 5
        assert hdr["webhook-signature"] == standard_signatures(
            wh["secret"], mid, ts, r["body"].encode())
    # The timestamps differ per attempt (this attempt's time), the signature follows them.
    assert reqs[0]["headers"]["webhook-timestamp"] != reqs[2]["headers"]["webhook-timestamp"]
    assert h.metric("hookd_deliveries_total", outcome="retry") == 2
    assert h.metric("hookd_deliveries_total", outcome="succeeded") == 1
    assert h.metric("hookd_delivery_attempts_total", result="5xx") == 2


def test_always_failing_is_dead_then_replayed(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    # 4 attempts (3 retries at 0.2, 0.4, 0.8 s) fail; the sink answers 200 from the 5th on.
    wh = create_webhook(h, sink.url("/down?fail=4&status=502"), retry_backoff_seconds=0.2)
    mid = publish(h)
    d = wait_delivery(h, mid, "dead", 10)
    assert d["attempts"] == 4 and d["last_status"] == 502
    assert "retries exhausted" in d["last_error"]
    assert sink.count("/down") == 4
    assert h.sql("SELECT failure_streak FROM hookd.subscriptions WHERE id = %s",
                 wh["id"])[0][0] == 1

    r = h.get("/api/v1/dead-letters", auth=True)
    assert r.status == 200
    assert [x["id"] for x in r.body["data"]] == [d["id"]]
    assert r.body["data"][0]["status"] == "dead" and r.body["data"][0]["attempts"] == 4
    r = h.get(f"/api/v1/dead-letters?subscription={wh['id']}", auth=True)
    assert [x["id"] for x in r.body["data"]] == [d["id"]]

    r = h.post(f"/api/v1/dead-letters/{d['id']}/replay", auth=True)
    assert r.status == 202, r.body
    assert r.body == {"id": d["id"], "status": "pending", "previous_status": "dead"}
    d = wait_delivery(h, mid, "succeeded", 5)
    assert d["attempts"] == 1  # reset by the replay
    assert [a["status_code"] for a in attempts(h, d["id"])] == [502] * 4 + [200]
    assert h.get("/api/v1/dead-letters", auth=True).body["data"] == []
    assert h.sql("SELECT failure_streak FROM hookd.subscriptions WHERE id = %s",
                 wh["id"])[0][0] == 0
    # A delivery that is not dead is not replayed.
    r = h.post(f"/api/v1/dead-letters/{d['id']}/replay", auth=True)
    assert r.status == 409 and "succeeded" in r.body["message"]
    r = h.post("/api/v1/dead-letters/00000000-0000-0000-0000-000000000000/replay", auth=True)
    assert r.status == 404


def test_410_disables_and_announces(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    watcher = create_webhook(h, sink.url("/watch"), name="watcher", events=["webhook.*"])
    gone = create_webhook(h, sink.url("/gone?status=410"), name="gone one",
                          events=["order.*"])
    mid = publish(h)
    d = wait_delivery(h, mid, "dead", 10, wid=gone["id"])
    assert d["attempts"] == 1 and d["last_status"] == 410
    assert "not retried" in d["last_error"]
    enabled, reason, at = h.sql("SELECT enabled, disabled_reason, disabled_at FROM"
                                " hookd.subscriptions WHERE id = %s", gone["id"])[0]
    assert enabled is False and at is not None
    assert "410" in reason
    # webhook.disabled is published (origin system) and delivered to its subscribers.
    msgs = h.sql("SELECT id, origin, data::text FROM hookd.messages"
                 " WHERE event_type = 'webhook.disabled'")
    assert len(msgs) == 1 and msgs[0][1] == "system"
    assert json.loads(msgs[0][2]) == {"webhook_id": gone["id"], "name": "gone one",
                                      "url": gone["url"], "reason": reason}
    got = sink.wait_for(1, path="/watch", timeout=5 * hh.SLOW)
    body = json.loads(got[0]["body"])
    assert body["event"] == "webhook.disabled" and body["data"]["webhook_id"] == gone["id"]
    # The API shows it; a new message makes no delivery for it.
    r = h.get(f"/api/v1/webhooks/{gone['id']}", auth=True)
    assert r.body["enabled"] is False and "410" in r.body["disabled_reason"]
    mid2 = publish(h)
    time.sleep(0.3)
    assert h.sql("SELECT count(*) FROM hookd.deliveries WHERE message_id = %s"
                 " AND subscription_id = %s", mid2, gone["id"])[0][0] == 0
    assert sink.count("/gone") == 1
    assert watcher["id"]


def test_consecutive_dead_deliveries_disable(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, disable_after_dead=3)
    wh = create_webhook(h, sink.url("/broken?status=500"), max_retries=0, name="broken")
    mids = [publish(h) for _ in range(3)]
    for m in mids:
        wait_delivery(h, m, "dead", 10)
    hh.wait_until(lambda: h.sql("SELECT NOT enabled FROM hookd.subscriptions WHERE id = %s",
                                wh["id"])[0][0], 5 * hh.SLOW, message="subscription disabled")
    streak, reason = h.sql("SELECT failure_streak, disabled_reason FROM hookd.subscriptions"
                           " WHERE id = %s", wh["id"])[0]
    assert streak == 3
    assert "3 deliveries in a row" in reason
    assert h.sql("SELECT count(*) FROM hookd.messages WHERE event_type = 'webhook.disabled'"
                 " AND data->>'webhook_id' = %s", wh["id"])[0][0] == 1
    # A delivery leased for a subscription that is disabled by then is a dead letter,
    # without an attempt, with a clear reason.
    h.sql("INSERT INTO hookd.messages (id, event_type, data) VALUES ('evt_late', 'x', '{}')")
    h.sql("INSERT INTO hookd.deliveries (id, message_id, subscription_id) VALUES"
          " (gen_random_uuid(), 'evt_late', %s)", wh["id"])
    h.sql("NOTIFY hookd_deliveries")
    d = wait_delivery(h, "evt_late", "dead", 5)
    assert d["attempts"] == 0 and "disabled" in d["last_error"]
    assert attempts(h, d["id"]) == []


def test_slow_receiver_times_out(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    create_webhook(h, sink.url("/slow?delay_ms=3000"), timeout_seconds=1, max_retries=0)
    t0 = time.monotonic()
    mid = publish(h)
    d = wait_delivery(h, mid, "dead", 10)
    assert time.monotonic() - t0 < 3.0 * hh.SLOW
    (a,) = attempts(h, d["id"])
    assert a["status_code"] is None
    assert "timeout" in a["error"]
    assert 900 <= a["duration_ms"] <= 1500 * hh.SLOW
    assert "timeout" in d["last_error"] and d["last_status"] is None
    assert h.metric("hookd_delivery_attempts_total", result="timeout") == 1
    # Let the sink's own delayed answer fire before it is stopped.
    time.sleep(max(0.0, 3.2 - (time.monotonic() - t0)))


def test_duration_is_the_exchange_not_the_wait_for_a_connection(pg, hookd_factory, sink):
    """With one connection per origin, a delivery queued behind a slow one to the same
    origin records the time of its own HTTP exchange (duration_ms, started_at); the wait
    for the connection shows in hookd_http_client_queue_seconds, not in latency."""
    h = fresh(pg, hookd_factory, outbound_max_per_origin=1)
    create_webhook(h, sink.url("/slow?delay_ms=800"), events=["slow.*"], name="slow")
    create_webhook(h, sink.url("/fast"), events=["fast.*"], name="fast")
    slow = publish(h, "slow.one")
    sink.wait_for(1, path="/slow", timeout=5 * hh.SLOW)  # the one connection is busy
    fast = publish(h, "fast.one")
    (freq,) = sink.wait_for(1, path="/fast", timeout=5 * hh.SLOW)
    (sreq,) = sink.requests("/slow")
    ds, df = wait_delivery(h, slow, "succeeded", 5), wait_delivery(h, fast, "succeeded", 5)
    # The fast one really waited for the slow one's connection (kept alive, then reused).
    assert (freq["ms"] - sreq["ms"]) >= 750 and freq["conn"] == sreq["conn"]
    (a_slow,), (a_fast,) = attempts(h, ds["id"]), attempts(h, df["id"])
    assert 750 <= a_slow["duration_ms"] <= 800 + 500 * hh.SLOW, a_slow
    assert a_fast["duration_ms"] < 300 * hh.SLOW, a_fast  # not the ~800 ms in the queue
    # started_at is when its exchange began: after the slow answer, not at the lease.
    waited = (a_fast["started_at"] - a_slow["started_at"]).total_seconds()
    assert waited >= 0.7, waited
    r = h.get(f"/api/v1/webhooks/{df['subscription_id']}/deliveries", auth=True)
    assert r.body["data"][0]["response_time_ms"] == a_fast["duration_ms"]
    assert h.metric("hookd_http_client_queue_seconds_count") == 2
    assert h.metric("hookd_http_client_queue_seconds_sum") >= 0.5
    assert h.metric("hookd_delivery_attempt_duration_seconds_sum") < 0.8 + 0.5 * hh.SLOW


def test_refused_network_makes_no_connection(pg, hookd_factory, sink):
    # No outbound_allow_networks: loopback (the sink) and link-local are refused.
    h = fresh(pg, hookd_factory, outbound_allow_networks=None)
    create_webhook(h, sink.url("/never"), max_retries=0, name="loopback")
    create_webhook(h, "http://169.254.169.254/latest/meta-data/", max_retries=0,
                   name="metadata")
    mid = publish(h)
    rows = hh.wait_until(lambda: (lambda r: r if len(r) == 2 and all(x[0] == "dead" for x in r)
                                  else None)(
        h.sql("SELECT d.status::text, a.error, a.status_code FROM hookd.deliveries d"
              " JOIN hookd.attempts a ON a.delivery_id = d.id WHERE d.message_id = %s"
              " ORDER BY a.error", mid)), 10 * hh.SLOW, message="both refused")
    errors = " | ".join(r[1] for r in rows)
    assert "169.254.169.254 is a link-local address" in errors
    assert "127.0.0.1 is a loopback address" in errors
    assert all("outbound_allow_networks" in r[1] for r in rows)
    assert all(r[2] is None for r in rows)
    st = sink.stats()
    assert st["received"] == 0 and st["connections"] == 0
    assert h.metric("hookd_delivery_attempts_total", result="refused") == 2


def test_https_from_hookd_verifies_the_chain_and_the_name(pg, hookd_factory, test_root):
    """hookd delivers over TLS itself: with outbound_ca_file trusting a throwaway CA, a
    certificate for localhost is accepted and the sink sees SNI localhost; a chain from
    another CA and a certificate for another name are refused in the handshake, with the
    reason on the attempt, no request sent and no success."""
    pki = tempfile.mkdtemp(prefix="pki-", dir=test_root)
    ca = make_ca(pki, "hookd-test-ca")
    rogue = make_ca(pki, "untrusted-ca")
    certs = [make_server_cert(pki, "good", ca, ["localhost"]),
             make_server_cert(pki, "untrusted", rogue, ["localhost"]),
             make_server_cert(pki, "wrong", ca, ["wrong.test"])]
    ok, untrusted, wrong = sinks = [Sink(test_root, tls=c).start() for c in certs]
    try:
        h = fresh(pg, hookd_factory, outbound_ca_file=ca[0])
        # localhost: hookd's resolver (evdns) answers it from /etc/hosts, as 127.0.0.1.
        wh = create_webhook(h, ok.url("/tls?body=secure", host="localhost"), name="a-ok")
        create_webhook(h, untrusted.url("/tls", host="localhost"), name="b-untrusted",
                       max_retries=0)
        create_webhook(h, wrong.url("/tls", host="localhost"), name="c-wrong", max_retries=0)
        mid = publish(h, data={"order_id": "ord_tls"})

        (req,) = ok.wait_for(1, path="/tls", timeout=10 * hh.SLOW)
        assert req["tls"] is True and req["sni"] == "localhost"
        hdr = req["headers"]
        assert hdr["host"] == f"localhost:{ok.port}"
        ts = int(hdr["webhook-timestamp"])
        assert hdr["webhook-signature"] == standard_signatures(wh["secret"], mid, ts,
                                                               req["body"].encode())
        assert json.loads(req["body"])["data"] == {"order_id": "ord_tls"}
        d = wait_delivery(h, mid, "succeeded", 5, wid=wh["id"])
        (a,) = attempts(h, d["id"])
        assert a["status_code"] == 200 and a["response_body"] == "secure" and a["error"] is None

        rows = hh.wait_until(lambda: (lambda r: r if len(r) == 2 and
                                      all(x[1] == "dead" for x in r) else None)(
            h.sql("SELECT s.name, d.status::text, d.last_status, a.status_code, a.error"
                  " FROM hookd.deliveries d"
                  " JOIN hookd.subscriptions s ON s.id = d.subscription_id"
                  " JOIN hookd.attempts a ON a.delivery_id = d.id"
                  " WHERE d.message_id = %s AND s.name <> 'a-ok' ORDER BY s.name", mid)),
            10 * hh.SLOW, message="both refused in the handshake")
        (_, _, ls1, sc1, e1), (_, _, ls2, sc2, e2) = rows
        assert (ls1, sc1, ls2, sc2) == (None, None, None, None)
        assert e1 == (f"TLS handshake with localhost (127.0.0.1:{untrusted.port}): certificate"
                      " verify failed: unable to get local issuer certificate (no CA of the"
                      " system store or outbound_ca_file issued its chain)"), e1
        assert e2 == (f"TLS handshake with localhost (127.0.0.1:{wrong.port}): certificate"
                      " verify failed: hostname mismatch (the certificate does not name this"
                      " host)"), e2
        # The handshake failed, so no request reached either sink.
        assert untrusted.count() == 0 and wrong.count() == 0
        assert h.metric("hookd_delivery_attempts_total", result="tls") == 2
        assert h.metric("hookd_delivery_attempts_total", result="2xx") == 1
    finally:
        for s in sinks:
            s.finish()


def test_https_trusts_the_system_store_as_openssl_names_it(pg, hookd_factory, test_root):
    """With no outbound_ca_file, the system store decides: a hashed directory named by
    SSL_CERT_DIR (looked up per handshake; SSL_CERT_FILE unset) or a bundle named by
    SSL_CERT_FILE. Each hookd trusts the throwaway CA only through its environment."""
    pki = tempfile.mkdtemp(prefix="pki-", dir=test_root)
    hashed = tempfile.mkdtemp(prefix="certs-", dir=test_root)
    ca = make_ca(pki, "system-store-ca")
    shutil.copy(ca[0], os.path.join(hashed, "system-store-ca.pem"))
    subprocess.run(["openssl", "rehash", hashed], check=True, capture_output=True)
    assert any(len(n) == 10 and n.endswith(".0") for n in os.listdir(hashed))
    good = Sink(test_root, tls=make_server_cert(pki, "good", ca, ["localhost"])).start()
    try:
        stores = {"dir": {"SSL_CERT_FILE": "", "SSL_CERT_DIR": hashed},
                  "file": {"SSL_CERT_FILE": ca[0], "SSL_CERT_DIR": ""}}
        for name, env in stores.items():
            db = f"store_{name}_{uuid.uuid4().hex[:6]}"
            pg.create_database(db)
            h = hookd_factory(config={"outbound_allow_networks": "127.0.0.0/8",
                                      "deliver_poll_interval": "200ms"}, db=db, env=env)
            create_webhook(h, good.url(f"/{name}", host="localhost"), name=name,
                           max_retries=0)
            mid = publish(h, data={"store": name})
            (req,) = good.wait_for(1, path=f"/{name}", timeout=10 * hh.SLOW)
            assert req["tls"] is True and req["sni"] == "localhost"
            d = wait_delivery(h, mid, "succeeded", 5)
            (a,) = attempts(h, d["id"])
            assert a["status_code"] == 200 and a["error"] is None, (name, a)
    finally:
        good.finish()


def test_retry_after_is_honoured(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    create_webhook(h, sink.url("/busy?fail=1&status=429&retry_after=3"), name="429")
    create_webhook(h, sink.url("/unavailable?fail=1&status=503&retry_after=2"), name="503")
    create_webhook(h, sink.url("/plain?fail=1&status=500&retry_after=3"), name="500")
    mid = publish(h)
    busy = sink.wait_for(2, path="/busy", timeout=10 * hh.SLOW)
    unavailable = sink.wait_for(2, path="/unavailable", timeout=10 * hh.SLOW)
    plain = sink.wait_for(2, path="/plain", timeout=10 * hh.SLOW)
    (g429,), (g503,), (g500,) = gaps(busy), gaps(unavailable), gaps(plain)
    assert 3.0 <= g429 <= 3.0 + 0.4 * hh.SLOW, f"429 retried after {g429:.3f} s"
    assert 2.0 <= g503 <= 2.0 + 0.4 * hh.SLOW, f"503 retried after {g503:.3f} s"
    # Only 429 and 503 ask: a 500's Retry-After is ignored (the 1 s backoff applies).
    assert 0.88 <= g500 <= 1.1 + 0.4 * hh.SLOW, f"500 retried after {g500:.3f} s"
    for wid in h.sql("SELECT subscription_id::text FROM hookd.deliveries WHERE message_id = %s",
                     mid):
        wait_delivery(h, mid, "succeeded", 5, wid=wid[0])


def test_retry_after_is_clamped(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, retry_after_max="1s")
    create_webhook(h, sink.url("/clamp?fail=1&status=503&retry_after=3600"),
                   retry_backoff_seconds=5)
    mid = publish(h)
    reqs = sink.wait_for(2, path="/clamp", timeout=5 * hh.SLOW)
    (g,) = gaps(reqs)
    assert 1.0 <= g <= 1.0 + 0.4 * hh.SLOW
    wait_delivery(h, mid, "succeeded", 5)


def test_rotation_signs_with_both_secrets(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    old = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    wh = create_webhook(h, sink.url("/rot"), secret=old)
    r = h.post(f"/api/v1/webhooks/{wh['id']}/rotate-secret", auth=True,
               json={"expire_previous_after": 3600})
    assert r.status == 200, r.body
    new = r.body["secret"]
    assert new != old
    hh.wait_until(lambda: h.get(f"/api/v1/webhooks/{wh['id']}/secret", auth=True).status == 200,
                  5, message="rotated")
    time.sleep(0.3)  # the cache reloads on NOTIFY
    mid = publish(h)
    (req,) = sink.wait_for(1, path="/rot", timeout=5 * hh.SLOW)
    hdr = req["headers"]
    ts = int(hdr["webhook-timestamp"])
    sigs = hdr["webhook-signature"].split(" ")
    # One v1 signature per live secret, newest first.
    assert sigs == [standard_signatures(new, mid, ts, req["body"].encode()),
                    standard_signatures(old, mid, ts, req["body"].encode())]
    # A webhook made with a secret through /api/v1 also carries seed 004's header,
    # signed with the newest secret's own bytes over the compact body.
    assert hdr["x-fluxbase-signature"] == hex_hmac(new, req["body"])


def test_change_payload_seed_004(pg, hookd_factory, sink):
    """A captured row change goes out in seed 004's shape, per webhook, signed."""
    h = fresh(pg, hookd_factory)
    h.sql("CREATE TABLE public.users (id int PRIMARY KEY, email text, note text)")
    h.sql("SELECT hookd.watch('public.users')")
    wh = create_webhook(h, sink.url("/users"), secret="fluxbase-secret-123",
                        events=[{"table": "users", "operations": ["INSERT", "UPDATE"]}])
    h.sql("INSERT INTO public.users VALUES (1, 'a@example.com', 'x/y')")
    h.sql("UPDATE public.users SET email = 'b@example.com' WHERE id = 1")
    h.sql("DELETE FROM public.users WHERE id = 1")
    reqs = sink.wait_for(2, path="/users", timeout=10 * hh.SLOW)
    time.sleep(0.3)
    assert sink.count("/users") == 2  # DELETE is not subscribed
    ins, upd = (json.loads(r["body"]) for r in reqs)
    assert list(ins) == ["event", "table", "schema", "record", "old_record", "timestamp",
                         "webhook_id"]
    assert ins["event"] == "INSERT" and ins["table"] == "users" and ins["schema"] == "public"
    assert ins["record"] == {"id": 1, "email": "a@example.com", "note": "x/y"}
    assert ins["old_record"] is None
    assert ins["webhook_id"] == wh["id"]
    assert ins["timestamp"].endswith("Z") and len(ins["timestamp"]) == 24
    assert upd["event"] == "UPDATE" and upd["old_record"]["email"] == "a@example.com"
    for r in reqs:
        assert r["body"] == js_stringify(json.loads(r["body"]))
        assert r["headers"]["x-fluxbase-signature"] == hex_hmac("fluxbase-secret-123",
                                                                r["body"])


def test_sigterm_lets_sends_in_flight_finish(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory)
    create_webhook(h, sink.url("/drain?delay_ms=1200"), timeout_seconds=5)
    mid = publish(h)
    sink.wait_for(1, path="/drain", timeout=5 * hh.SLOW)  # the request is at the sink
    h.signal(signal.SIGTERM)
    assert h.wait_exit(15 * hh.SLOW) == 0
    d = delivery(h, mid)
    assert d["status"] == "succeeded" and d["leased_by"] is None
    assert len(attempts(h, d["id"])) == 1


def test_ip_allowlist_narrows_never_widens(pg, hookd_factory, sink):
    """A subscription's ip_allowlist narrows the SSRF guard; it never lets a subscription
    reach what outbound_allow_networks does not allow (loopback, the metadata service)."""
    # No outbound_allow_networks: an admin-set allowlist, however wide, reaches nothing
    # private, and no connection is made.
    h = fresh(pg, hookd_factory, outbound_allow_networks=None)
    create_webhook(h, sink.url("/wide"), ip_allowlist=["0.0.0.0/0"], max_retries=0,
                   name="a-everything")
    create_webhook(h, sink.url("/loop"), ip_allowlist=["127.0.0.0/8"], max_retries=0,
                   name="b-loopback")
    create_webhook(h, "http://169.254.169.254/latest/meta-data/",
                   ip_allowlist=["169.254.0.0/16"], max_retries=0, name="c-metadata")
    mid = publish(h)
    rows = hh.wait_until(lambda: (lambda r: r if len(r) == 3 and
                                  all(x[0] == "dead" for x in r) else None)(
        h.sql("SELECT d.status::text, s.name, a.error, a.status_code FROM hookd.deliveries d"
              " JOIN hookd.subscriptions s ON s.id = d.subscription_id"
              " JOIN hookd.attempts a ON a.delivery_id = d.id"
              " WHERE d.message_id = %s ORDER BY s.name", mid)), 10 * hh.SLOW,
        message="all three refused")
    narrows = "(an ip_allowlist only narrows what outbound_allow_networks allows)"
    assert [r[1] for r in rows] == ["a-everything", "b-loopback", "c-metadata"]
    for _, _, err, code in rows[:2]:
        assert err == ("127.0.0.1 is a loopback address; add it to outbound_allow_networks"
                       " to allow it " + narrows), err
        assert code is None
    assert rows[2][2] == ("169.254.169.254 is a link-local address (the cloud metadata"
                          " service); add it to outbound_allow_networks to allow it " + narrows)
    st = sink.stats()
    assert st["received"] == 0 and st["connections"] == 0
    assert h.metric("hookd_delivery_attempts_total", result="refused") == 3

    # Loopback allowed by the config: inside the subscription's list it goes through, outside
    # it (a name resolving to 127.0.0.1, since the API refuses an IP literal outside the
    # list) it is refused by the subscription's rule.
    h = fresh(pg, hookd_factory)
    create_webhook(h, sink.url("/pinned"), ip_allowlist=["127.0.0.0/8"], name="pinned")
    create_webhook(h, f"http://localhost:{sink.port}/elsewhere", ip_allowlist=["10.0.0.0/8"],
                   max_retries=0, name="elsewhere")
    mid = publish(h)
    sink.wait_for(1, path="/pinned", timeout=5 * hh.SLOW)
    rows = hh.wait_until(lambda: (lambda r: r if len(r) == 2 and
                                  all(x[0] in ("succeeded", "dead") for x in r) else None)(
        h.sql("SELECT d.status::text, s.name, d.last_error FROM hookd.deliveries d"
              " JOIN hookd.subscriptions s ON s.id = d.subscription_id"
              " WHERE d.message_id = %s ORDER BY s.name", mid)), 10 * hh.SLOW)
    assert rows[0][:2] == ("dead", "elsewhere")
    assert rows[0][2].startswith("localhost: 127.0.0.1 is not in the subscription's"
                                 " ip_allowlist (10.0.0.0/8)"), rows[0][2]
    assert rows[1][:2] == ("succeeded", "pinned")
    assert sink.count("/elsewhere") == 0


def test_reload_changes_the_outbound_allowlist(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, outbound_allow_networks=None)
    create_webhook(h, sink.url("/later"), retry_schedule=[1, 1, 1, 1, 1])
    mid = publish(h)
    hh.wait_until(lambda: delivery(h, mid)["status"] == "failed", 5 * hh.SLOW)
    assert "loopback" in delivery(h, mid)["last_error"]
    h.write_config(outbound_allow_networks="127.0.0.0/8")
    h.signal(signal.SIGHUP)
    d = wait_delivery(h, mid, "succeeded", 10)
    assert sink.count("/later") == 1
    assert [a["status_code"] for a in attempts(h, d["id"])][-1] == 200
