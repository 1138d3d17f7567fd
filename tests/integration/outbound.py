# SPDX-License-Identifier: ISC
"""Helpers shared by the outbound delivery tests: a hookd per database that may reach the
sink, webhooks made through the API, publishing, and reading deliveries back."""

import base64
import hashlib
import hmac
import itertools
import json
import os

import hookd_harness as hh

_dbs = itertools.count()


def fresh(pg, hookd_factory, name="dlv", **config):
    """A hookd on a database of its own, allowed to reach loopback (the sink), polling often."""
    db = f"{name}_{next(_dbs)}"
    pg.create_database(db)
    cfg = {"outbound_allow_networks": "127.0.0.0/8", "deliver_poll_interval": "200ms"}
    cfg.update(config)
    return hookd_factory(config={k: v for k, v in cfg.items() if v is not None}, db=db)


def sibling(hookd_factory, h, **config):
    """Another hookd process on h's database, with h's configuration and master key (every
    process sharing a database must unseal the same secrets: docs/scaling.md)."""
    cfg = dict(h.config, master_key_file=os.path.join(h.dir, "master.key"))
    cfg.update(config)
    return hookd_factory(config=cfg, db=h.db)


def create_webhook(h, url, **fields):
    """POST /api/v1/webhooks; returns the created object (with "secret")."""
    body = {"name": fields.pop("name", "test"), "url": url, "events": fields.pop("events", ["*"])}
    body.update(fields)
    r = h.post("/api/v1/webhooks", auth=True, json=body)
    assert r.status == 201, f"create webhook: {r.status} {r.body}"
    wait_cached(h, r.body["id"])
    return r.body


def wait_cached(h, wid):
    """hookd reloads its subscription cache on NOTIFY; give it a moment (not required for
    correctness: a delivery for a subscription the cache lacks waits and is retried)."""
    hh.wait_until(lambda: h.get(f"/api/v1/webhooks/{wid}", auth=True).status == 200, 5,
                  message="webhook visible")


def publish(h, event="order.created", data=None, **extra):
    body = {"event": event, "data": data if data is not None else {"order_id": "ord_1"}}
    body.update(extra)
    r = h.post("/api/v1/events", auth=True, json=body)
    assert r.status in (200, 202), f"publish: {r.status} {r.body}"
    return r.body["id"]


def delivery(h, message_id, wid=None):
    """The delivery row of a message (to one webhook) as a dict."""
    keys = ("id", "subscription_id", "status", "attempts", "last_status", "last_error",
            "lease_until", "leased_by", "completed_at", "next_attempt_at")
    q = ("SELECT id::text, subscription_id::text, status::text, attempts, last_status,"
         " last_error, lease_until, leased_by, completed_at, next_attempt_at"
         " FROM hookd.deliveries WHERE message_id = %s")
    args = [message_id]
    if wid is not None:
        q += " AND subscription_id = %s"
        args.append(wid)
    rows = h.sql(q, *args)
    assert len(rows) == 1, f"{len(rows)} deliveries for {message_id}"
    return dict(zip(keys, rows[0]))


def attempts(h, delivery_id):
    keys = ("attempt", "started_at", "duration_ms", "status_code", "response_body", "error")
    rows = h.sql("SELECT attempt, started_at, duration_ms, status_code, response_body, error"
                 " FROM hookd.attempts WHERE delivery_id = %s ORDER BY id", delivery_id)
    return [dict(zip(keys, r)) for r in rows]


def wait_delivery(h, message_id, status, timeout, wid=None):
    return hh.wait_until(
        lambda: (lambda d: d if d["status"] == status and d["leased_by"] is None else None)(
            delivery(h, message_id, wid)),
        timeout * hh.SLOW, message=f"delivery of {message_id} {status}")


def standard_signatures(secret, msg_id, ts, body):
    """The v1 signature Standard Webhooks expects for one secret."""
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def js_stringify(obj):
    """JSON.stringify for the plain values these tests send (no floats with exponents)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def hex_hmac(secret, text):
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
