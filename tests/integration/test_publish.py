# SPDX-License-Identifier: ISC
"""Publish: POST /api/v1/events makes one message and one delivery per matching enabled
subscription in one transaction (patterns "*", "order.*", exact; table filters only for
change messages), idempotent on a given id; data stored as JSON.stringify would write it;
GET /api/v1/events[/{id}] with delivery counts; GET /api/v1/event-types with the seen and
the declared types (seed 003's catalogue from contrib/hookd.conf.example)."""

import json
import os
import re
import uuid

import pytest

import hookd_harness as hh

EVENTS = "/api/v1/events"
TYPES = "/api/v1/event-types"
TARGET = "http://127.0.0.1:9/hooks"
ISO_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
TOP = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(__file__), "..", "..")



def with_key(h):
    key = h.create_key(f"publish-admin-{uuid.uuid4().hex[:8]}")
    hh.wait_until(lambda: h.get("/metrics", auth=key).status == 200, 5 * hh.SLOW,
                  message="hookd accepting a fresh admin key")
    h._admin_key = key
    return h


@pytest.fixture
def fresh(pg, hookd_factory):
    """start(config=None) -> a hookd on a database of its own (subscriptions and messages
    of other tests would match)."""
    def start(config=None):
        db = f"pub_{uuid.uuid4().hex[:8]}"
        pg.create_database(db)
        # Table filters make hookd watch their tables, so the tables must exist.
        pg.sql("CREATE TABLE public.users (id int PRIMARY KEY);"
               " CREATE TABLE public.orders (id int PRIMARY KEY);"
               " CREATE SCHEMA app; CREATE TABLE app.users (id int PRIMARY KEY)", db=db)
        # The delivery worker runs too: keep its dead deliveries from disabling subscriptions.
        return with_key(hookd_factory(db=db, config={"disable_after_dead": "0",
                                                     **(config or {})}))
    return start


@pytest.fixture
def hookd(fresh):
    return fresh()


def subscribe(h, events, enabled=True, **extra):
    r = h.post("/api/v1/webhooks", json={"name": f"s-{uuid.uuid4().hex[:6]}", "url": TARGET,
                                         "events": events, "enabled": enabled, **extra},
               auth=True)
    assert r.status == 201, r
    return r.body["id"]


def publish(h, event, data=None, **extra):
    body = {"event": event, **extra}
    if data is not None:
        body["data"] = data
    return h.post(EVENTS, json=body, auth=True)


def delivered_to(h, msg_id):
    return {str(r[0]) for r in h.sql("SELECT subscription_id FROM hookd.deliveries"
                                     " WHERE message_id = %s", msg_id)}


def assert_invalid(r, field):
    assert r.status == 422, r
    assert r.body.get("error") == "validation_failed" and r.body.get("field") == field, r.body


# --- fan-out -----------------------------------------------------------------------------------

def test_one_delivery_per_matching_enabled_subscription(hookd):
    every = subscribe(hookd, ["*"])
    orders = subscribe(hookd, ["order.*"])
    exact = subscribe(hookd, ["order.created"])
    payments = subscribe(hookd, ["payment.*", "refund.created"])
    off = subscribe(hookd, ["*"], enabled=False)
    table = subscribe(hookd, [{"table": "users", "operations": ["INSERT"]}])
    underscore = subscribe(hookd, ["order_x.*"])  # LIKE's "_" must not match "."

    want = {
        "order.created": {every, orders, exact},
        "order.updated": {every, orders},
        "order.refund.created": {every, orders},
        "payment.failed": {every, payments},
        "refund.created": {every, payments},
        "orderXcreated": {every},
        "users": {every},   # a table filter takes change messages only
        "users.insert": {every},
    }
    for event, subs in want.items():
        r = publish(hookd, event, {"k": event})
        assert r.status == 202, r
        assert set(r.body) == {"id", "event", "created_at", "deliveries"}, r.body
        assert r.body["event"] == event and r.body["deliveries"] == len(subs), (event, r.body)
        assert re.fullmatch(r"evt_[0-9a-f]{32}", r.body["id"]), r.body
        assert re.match(ISO_RE, r.body["created_at"]), r.body
        assert delivered_to(hookd, r.body["id"]) == subs, event
        row = hookd.sql("SELECT event_type, origin, data::text FROM hookd.messages"
                        " WHERE id = %s", r.body["id"])
        assert row == [(event, "api", json.dumps({"k": event}, separators=(",", ":")))]
    assert off not in {str(r[0]) for r in hookd.sql("SELECT subscription_id FROM"
                                                    " hookd.deliveries")}
    assert underscore not in {str(r[0]) for r in hookd.sql("SELECT subscription_id FROM"
                                                           " hookd.deliveries")}
    # no subscription matches: a message with no delivery
    r = publish(hookd, "nobody.listens")
    assert r.status == 202 and r.body["deliveries"] == 1, r   # only "*"


def test_table_filters_match_change_messages_only(hookd):
    every = subscribe(hookd, ["*"])
    users = subscribe(hookd, [{"table": "users", "operations": ["INSERT", "UPDATE"]}])
    qualified = subscribe(hookd, [{"table": "app.users"}])
    orders_del = subscribe(hookd, [{"table": "orders", "operations": ["DELETE"]}])

    def change(schema, table, op):
        msg = f"evt_{uuid.uuid4().hex}"
        rows = hookd.sql("SELECT message_id, created, deliveries FROM hookd.publish("
                         "%s, %s, %s::json, 'change', NULL, %s, %s, %s)",
                         msg, f"{table}.{op.lower()}", '{"id": 1}', schema, table, op)
        assert rows[0][:2] == (msg, True)
        return msg, rows[0][2]

    # patterns ("*" too) take published events only, table filters change messages only
    msg, n = change("public", "users", "INSERT")
    assert delivered_to(hookd, msg) == {users} and n == 1
    msg, n = change("public", "users", "DELETE")
    assert delivered_to(hookd, msg) == set() and n == 0
    msg, _ = change("app", "users", "DELETE")      # no operations: every one
    assert delivered_to(hookd, msg) == {qualified}
    msg, _ = change("app", "users", "UPDATE")
    assert delivered_to(hookd, msg) == {users, qualified}
    msg, _ = change("public", "orders", "DELETE")
    assert delivered_to(hookd, msg) == {orders_del}
    # an API event named like the table is not a change
    r = publish(hookd, "users.insert")
    assert delivered_to(hookd, r.body["id"]) == {every}


def test_a_given_id_is_idempotent(hookd):
    subscribe(hookd, ["order.*"])
    msg = f"evt_{uuid.uuid4().hex}"
    r1 = publish(hookd, "order.created", {"n": 1}, id=msg)
    assert r1.status == 202 and r1.body["id"] == msg and r1.body["deliveries"] == 1, r1
    subscribe(hookd, ["*"])  # a later subscriber does not change the repeat's answer
    r2 = publish(hookd, "order.updated", {"n": 2}, id=msg)
    assert r2.status == 200, r2
    assert r2.body == {"id": msg, "event": "order.created", "created_at": r1.body["created_at"],
                       "deliveries": 1, "duplicate": True}
    assert hookd.sql("SELECT count(*), min(data::text) FROM hookd.messages WHERE id = %s",
                     msg) == [(1, '{"n":1}')]
    assert hookd.sql("SELECT count(*) FROM hookd.deliveries WHERE message_id = %s",
                     msg)[0][0] == 1


def test_data_is_stored_as_json_stringify_writes_it(hookd):
    body = (b'{"event": "order.created", "data": {\n  "z": 1.0, "a": [1, 2.50, "x/y"],\n'
            b'  "u": "\\u00e9", "n": null, "big": 1e21 } }')
    r = hookd.post(EVENTS, body=body, auth=True, headers={"Content-Type": "application/json"})
    assert r.status == 202, r
    (text,) = hookd.sql("SELECT data::text FROM hookd.messages WHERE id = %s", r.body["id"])[0]
    assert text == '{"z":1,"a":[1,2.5,"x/y"],"u":"\u00e9","n":null,"big":1e+21}'
    # no data: {}
    r = publish(hookd, "ping")
    assert hookd.sql("SELECT data::text FROM hookd.messages WHERE id = %s",
                     r.body["id"])[0][0] == "{}"


def test_bad_input(hookd):
    for body, field in (({}, "event"), ({"data": {}}, "event"), ({"event": ""}, "event"),
                        ({"event": "order.*"}, "event"), ({"event": "a b"}, "event"),
                        ({"event": "x" * 201}, "event"), ({"event": 5}, "event"),
                        ({"event": "a", "id": "has space"}, "id"),
                        ({"event": "a", "id": "x" * 129}, "id"),
                        ({"event": "a", "extra": 1}, "extra"), ([], None)):
        assert_invalid(hookd.post(EVENTS, json=body, auth=True), field)
    for raw in (b"{bad", b"", b'{"event":"a"} x'):
        r = hookd.post(EVENTS, body=raw, auth=True, headers={"Content-Type": "application/json"})
        assert r.status == 400 and r.body["error"] == "invalid_json", r
    assert publish(hookd, "x" * 200).status == 202
    for method, path in (("POST", EVENTS), ("GET", EVENTS), ("GET", f"{EVENTS}/evt_x"),
                         ("GET", TYPES)):
        r = hookd.request(method, path, body=b"{}", headers={"Content-Type": "application/json"})
        assert r.status == 401, r
    assert hookd.sql("SELECT count(*) FROM hookd.messages")[0][0] == 1


# --- reading messages ---------------------------------------------------------------------------

def test_list_and_get_messages(hookd):
    # The delivery worker tries the (refused) target once and, with no retries, gives up.
    sub = subscribe(hookd, ["order.*"], max_retries=0)
    ids = [publish(hookd, ev, {"i": i}).body["id"]
           for i, ev in enumerate(["order.created", "payment.received", "order.shipped"])]
    hh.wait_until(lambda: hookd.sql("SELECT count(*) FROM hookd.deliveries"
                                    " WHERE status <> 'dead'")[0][0] == 0, 10 * hh.SLOW,
                  message="deliveries settled")

    r = hookd.get(EVENTS, auth=True)
    assert r.status == 200 and set(r.body) == {"data", "next_before"}, r
    assert [m["id"] for m in r.body["data"]] == ids[::-1]   # newest first
    assert r.body["next_before"] is None
    m = r.body["data"][0]
    assert set(m) == {"id", "event", "origin", "origin_id", "table_schema", "table_name", "op",
                      "created_at", "data", "delivery_counts"}, m
    assert m["event"] == "order.shipped" and m["data"] == {"i": 2} and m["origin"] == "api"
    assert m["delivery_counts"] == {"total": 1, "pending": 0, "succeeded": 0, "failed": 0,
                                    "dead": 1}
    assert r.body["data"][1]["delivery_counts"]["total"] == 0

    r = hookd.get(f"{EVENTS}?event=order.*", auth=True)
    assert [m["id"] for m in r.body["data"]] == [ids[2], ids[0]], r
    r = hookd.get(f"{EVENTS}?event=payment.received", auth=True)
    assert [m["id"] for m in r.body["data"]] == [ids[1]], r
    r = hookd.get(f"{EVENTS}?limit=2", auth=True)
    assert [m["id"] for m in r.body["data"]] == [ids[2], ids[1]]
    assert r.body["next_before"] == ids[1], r
    r = hookd.get(f"{EVENTS}?limit=2&before={ids[1]}", auth=True)
    assert [m["id"] for m in r.body["data"]] == [ids[0]], r
    for bad in ("limit=0", "limit=501", "before=a%20b", "event=a%20b"):
        r = hookd.get(f"{EVENTS}?{bad}", auth=True)
        assert r.status == 400 and r.body["error"] == "bad_request", (bad, r)

    r = hookd.get(f"{EVENTS}/{ids[0]}", auth=True)
    assert r.status == 200, r
    assert r.body["id"] == ids[0] and r.body["data"] == {"i": 0}
    (d,) = r.body["deliveries"]
    assert d["subscription_id"] == sub and d["status"] == "dead" and d["attempts"] == 1
    assert d["last_error"] and re.match(ISO_RE, d["completed_at"]), d
    assert set(d) >= {"id", "subscription_name", "next_attempt_at", "last_status", "last_error",
                      "last_duration_ms", "created_at", "updated_at", "completed_at"}
    assert hookd.get(f"{EVENTS}/{ids[1]}", auth=True).body["deliveries"] == []
    r = hookd.get(f"{EVENTS}/evt_{'0' * 32}", auth=True)
    assert r.status == 404 and r.body["error"] == "not_found", r


# --- event types ----------------------------------------------------------------------------

# Seed 003's "Available Events", with its descriptions, in the seed's order.
SEED_003_CATALOGUE = {
    "order.created": "New order placed",
    "order.updated": "Order details modified",
    "order.shipped": "Order marked as shipped",
    "order.completed": "Order completed",
    "order.cancelled": "Order cancelled",
    "order.refunded": "Order refunded",
    "payment.received": "Payment successfully received",
    "payment.failed": "Payment failed",
    "payment.refunded": "Payment refunded",
    "payment.pending": "Payment pending",
    "customer.created": "New customer registered",
    "customer.updated": "Customer details updated",
    "customer.deleted": "Customer deleted",
    "product.created": "New product added",
    "product.updated": "Product details updated",
    "product.deleted": "Product removed",
    "product.inventory_low": "Inventory below threshold",
    "product.inventory_out": "Out of stock",
    "product.inventory_restocked": "Product restocked",
    "refund.created": "Refund requested",
    "refund.processed": "Refund completed",
    "refund.failed": "Refund failed",
    "email.sent": "Email sent",
    "email.delivered": "Email delivered",
    "email.failed": "Email delivery failed",
    "email.bounced": "Email bounced",
    "email.opened": "Email opened by recipient",
    "email.clicked": "Link in email clicked",
    "chat.escalated": "Chat escalated to agent",
    "chat.assigned": "Chat assigned to agent",
    "chat.resolved": "Chat resolved",
    "ticket.created": "Support ticket created",
    "ticket.updated": "Ticket updated",
    "ticket.closed": "Ticket closed",
}


def catalogue():
    with open(os.path.join(TOP, "contrib", "hookd.conf.example")) as f:
        for line in f:
            if line.startswith("event_types"):
                return line.split("=", 1)[1].strip()
    raise AssertionError("no event_types line in contrib/hookd.conf.example")


def test_event_types_lists_seen_and_declared(fresh):
    h = fresh(config={"event_types": catalogue()})
    declared = list(SEED_003_CATALOGUE)
    assert publish(h, "order.created").status == 202
    assert publish(h, "custom.thing").status == 202
    assert publish(h, "custom.thing").status == 202

    r = h.get(TYPES, auth=True)
    assert r.status == 200 and set(r.body) == {"data"}, r
    by_name = {t["name"]: t for t in r.body["data"]}
    assert set(by_name) == set(declared) | {"custom.thing"}
    names = [t["name"] for t in r.body["data"]]
    assert names == sorted(names)
    for t in r.body["data"]:
        assert set(t) == {"name", "description", "declared", "first_seen", "last_seen"}, t
    oc, ct, ps = by_name["order.created"], by_name["custom.thing"], by_name["payment.failed"]
    assert oc["declared"] is True and re.match(ISO_RE, oc["first_seen"])
    assert ct["declared"] is False and ct["last_seen"] >= ct["first_seen"]
    assert ps["declared"] is True and ps["first_seen"] is None and ps["last_seen"] is None
    # The example config ships the seed's catalogue with its descriptions, exactly.
    assert {t["name"]: t["description"] for t in r.body["data"] if t["declared"]} == \
        SEED_003_CATALOGUE
    assert oc["description"] == "New order placed" and ct["description"] is None

    # event_types is reloadable
    h.write_config(event_types="custom.thing: Something custom, brand.new,"
                               " ns:with:colons: Colons in the name")
    h.signal(__import__("signal").SIGHUP)
    hh.wait_until(lambda: "brand.new" in {t["name"] for t in h.get(TYPES, auth=True).body["data"]},
                  5 * hh.SLOW, message="the reloaded declared types")
    by_name = {t["name"]: t for t in h.get(TYPES, auth=True).body["data"]}
    assert by_name["custom.thing"]["declared"] is True
    assert by_name["custom.thing"]["description"] == "Something custom"
    assert by_name["brand.new"]["description"] is None
    assert by_name["ns:with:colons"]["description"] == "Colons in the name"
    assert by_name["order.created"]["declared"] is False          # seen, no longer declared
    assert by_name["order.created"]["description"] is None
    assert "payment.failed" not in by_name
