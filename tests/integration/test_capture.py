# SPDX-License-Identifier: ISC
"""Change capture: row changes on watched tables become webhooks (seed 004, seed 000 shape).

Every test asserts the bytes the receiver got: the body is compact JSON exactly as
JavaScript's JSON.stringify prints it (so a receiver that re-serializes the parsed body
signs the same bytes), the Standard Webhooks signature and seed 004's X-Fluxbase-Signature
verify, and the fields are seed 004's (or seed 000's) with the row's values. Also: rows of
any size (no NOTIFY payload limit), partitioned tables, the operations filter, transactions
that commit in the opposite order of their change ids, a change held back by an open
transaction, rollbacks, the watches API and hookd.watch() from SQL, tables hookd may not
watch (missing, no TRIGGER privilege, hookd's own), hookd running as an ordinary
(non-superuser) role, and seed 004's own Express receiver accepting everything.

Crashes, restarts and several processes are in test_capture_crash.py.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import uuid

import psycopg2
import pytest

import hookd_harness as hh
from outbound import create_webhook, fresh, hex_hmac, js_stringify, wait_cached
from sink import sink  # noqa: F401  (fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "your-webhook-secret"  # seed 004's create example: a plain string
SEED_004_KEYS = ["event", "table", "schema", "record", "old_record", "timestamp", "webhook_id"]
SEED_000_KEYS = ["type", "table", "schema", "record", "old_record"]


# --- what a receiver checks -------------------------------------------------------------------

def standard_key(secret):
    """The HMAC key Standard Webhooks libraries derive from a secret (sign.c does the same):
    whsec_ + base64; else padded base64; else the string's own bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[6:] + "=" * (-len(secret[6:]) % 4))
    if len(secret) % 4 == 0 and re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", secret):
        return base64.b64decode(secret)
    return secret.encode()


def wire(req, secret, fluxbase=True):
    """Check one delivery's bytes and headers as a receiver would; returns the parsed body."""
    hdr, body = req["headers"], req["body"]
    assert req["method"] == "POST"
    assert hdr["content-type"] == "application/json"
    obj = json.loads(body)
    # Compact JSON, byte for byte what JSON.stringify(JSON.parse(body)) prints.
    assert body == js_stringify(obj), body[:300]
    mid, ts = hdr["webhook-id"], hdr["webhook-timestamp"]
    assert re.fullmatch(r"evt_chg\d{25}", mid), mid
    assert abs(int(ts) - time.time()) < 300
    mac = hmac.new(standard_key(secret), f"{mid}.{ts}.".encode() + body.encode(),
                   hashlib.sha256).digest()
    assert "v1," + base64.b64encode(mac).decode() in hdr["webhook-signature"].split(" ")
    if fluxbase:
        assert hdr["x-fluxbase-signature"] == hex_hmac(secret, body)
    else:
        assert "x-fluxbase-signature" not in hdr
    return obj


def iso_ms(s):
    """'2026-11-22T14:13:53.861Z' -> unix ms."""
    import calendar
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s), s
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(s[20:23])


def by_event(reqs, secret, **kw):
    out = {}
    for r in reqs:
        o = wire(r, secret, **kw)
        out[o.get("event") or o.get("type")] = (o, r)
    return out


def subscription_count(h):
    return h.sql("SELECT count(*) FROM hookd.subscriptions")[0][0]


def watched(h):
    """{table: operations} from hookd.watches."""
    return {t: ops for t, ops in h.sql('SELECT "table", operations FROM hookd.watches')}


# --- payloads ---------------------------------------------------------------------------------

def test_insert_update_delete_seed_004_and_seed_000_bytes(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.users (id int PRIMARY KEY, email text, name text,"
          " balance numeric(10,2), profile jsonb, created_at timestamptz)")
    # Seed 004's create body: the subscription makes hookd watch the table.
    r = h.post("/api/v1/webhooks", auth=True, json={
        "name": "User Events", "description": "Notify external system of user changes",
        "url": sink.url("/flux"), "secret": SECRET, "enabled": True,
        "events": [{"table": "users", "operations": ["INSERT", "UPDATE", "DELETE"]}],
        "max_retries": 3, "timeout_seconds": 30, "retry_backoff_seconds": 5})
    assert r.status == 201, r.body
    flux = r.body
    assert watched(h) == {"users": ["INSERT", "UPDATE", "DELETE"]}
    # Seed 000's shape for a receiver written for Supabase database webhooks.
    supa = create_webhook(h, sink.url("/supa"), name="supa", payload_format="supabase",
                          events=[{"table": "public.users"}])
    wait_cached(h, flux["id"])

    t0 = time.time() * 1000
    h.sql("INSERT INTO public.users VALUES (1, 'user@example.com', 'Zoë “Z” /path',"
          " 12.50, '{\"b\": 1, \"2\": [true, null], \"a\": {\"10\": 1, \"9\": 2}}',"
          " '2025-11-02T10:30:00Z')")
    h.sql("UPDATE public.users SET email = 'new@example.com', balance = 100 WHERE id = 1")
    h.sql("DELETE FROM public.users WHERE id = 1")
    t1 = time.time() * 1000

    got = by_event(sink.wait_for(3, "/flux", timeout=10 * hh.SLOW), SECRET)
    assert set(got) == {"INSERT", "UPDATE", "DELETE"}
    row1 = {"id": 1, "email": "user@example.com", "name": "Zoë “Z” /path", "balance": 12.5,
            "profile": {"2": [True, None], "a": {"9": 2, "10": 1}, "b": 1},
            "created_at": "2025-11-02T10:30:00+00:00"}
    row2 = dict(row1, email="new@example.com", balance=100)
    ins, upd, dele = got["INSERT"][0], got["UPDATE"][0], got["DELETE"][0]
    for o in (ins, upd, dele):
        assert list(o) == SEED_004_KEYS
        assert o["table"] == "users" and o["schema"] == "public"
        assert o["webhook_id"] == flux["id"]
        # When the change happened (the trigger's clock), ISO 8601 with milliseconds.
        assert t0 - 1000 <= iso_ms(o["timestamp"]) <= t1 + 1000
    assert ins["record"] == row1 and ins["old_record"] is None
    assert upd["record"] == row2 and upd["old_record"] == row1
    assert dele["record"] == row2 and dele["old_record"] == row2
    # Numbers as JavaScript prints them (12.50 -> 12.5), integer-like keys first.
    assert '"balance":12.5,' in got["INSERT"][1]["body"]
    assert '"profile":{"2":[true,null],"a":{"9":2,"10":1},"b":1}' in got["INSERT"][1]["body"]

    # The seed 000 deliveries: same messages, other bytes; no secret given, so a generated
    # whsec_ secret and the Standard Webhooks headers only.
    sgot = by_event(sink.wait_for(3, "/supa", timeout=10 * hh.SLOW), supa["secret"],
                    fluxbase=False)
    assert set(sgot) == {"INSERT", "UPDATE", "DELETE"}
    for op, (o, req) in sgot.items():
        assert list(o) == SEED_000_KEYS
        assert o["table"] == "users" and o["schema"] == "public"
        # One message per change, delivered to both subscriptions under the same id.
        assert req["headers"]["webhook-id"] == got[op][1]["headers"]["webhook-id"]
    # Seed 000's trigger sends row_to_json(NEW), row_to_json(OLD): NEW is null on DELETE
    # (as in Supabase's database webhooks), where seed 004 repeats the deleted row.
    assert (sgot["INSERT"][0]["record"], sgot["INSERT"][0]["old_record"]) == (row1, None)
    assert (sgot["UPDATE"][0]["record"], sgot["UPDATE"][0]["old_record"]) == (row2, row1)
    assert (sgot["DELETE"][0]["record"], sgot["DELETE"][0]["old_record"]) == (None, row2)
    assert '"record":null,"old_record":{' in sgot["DELETE"][1]["body"]
    assert h.sql("SELECT count(*), count(DISTINCT origin_id) FROM hookd.messages"
                 " WHERE origin = 'change'")[0] == (3, 3)
    # Seed 004's delivery history shows them, once their outcomes are written back (the
    # sink has them before hookd's write-back commits).
    def history():
        r = h.get(f"/api/v1/webhooks/{flux['id']}/deliveries?limit=50", auth=True)
        assert r.status == 200
        return sorted(d["status"] for d in r.body["data"])
    hh.wait_until(lambda: history() == ["succeeded"] * 3, 10 * hh.SLOW,
                  message="three succeeded deliveries in the history")


def test_row_of_100_kb_is_delivered_whole(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.docs (id int PRIMARY KEY, body text, tags text[])")
    wh = create_webhook(h, sink.url("/docs"), secret=SECRET,
                        events=[{"table": "docs", "operations": ["INSERT"]}])
    text = ("Grüße, 世界 / \"quoted\" \\ tab\t" * 4000)[:100 * 1024]
    h.sql("INSERT INTO public.docs VALUES (1, %s, ARRAY['a', 'b'])", text)
    (req,) = sink.wait_for(1, "/docs", timeout=10 * hh.SLOW)
    o = wire(req, SECRET)
    assert o["record"] == {"id": 1, "body": text, "tags": ["a", "b"]}
    assert o["webhook_id"] == wh["id"]
    # Far past NOTIFY's 8000-byte payload limit: the NOTIFY is only a wake-up.
    assert len(req["body"].encode()) > 100 * 1024


def test_partitioned_table_reports_the_watched_table(pg, hookd_factory, sink):
    """A subscription to a partitioned table gets its changes under that table's name, not
    under the partition's each row landed in."""
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.measurements (id int, at date, v numeric)"
          " PARTITION BY RANGE (at);"
          " CREATE TABLE public.measurements_2025 PARTITION OF public.measurements"
          " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
          " CREATE TABLE public.measurements_2026 PARTITION OF public.measurements"
          " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
    wh = create_webhook(h, sink.url("/part"), secret=SECRET,
                        events=[{"table": "measurements", "operations": ["INSERT", "UPDATE"]}])
    assert watched(h) == {"measurements": ["INSERT", "UPDATE"]}
    h.sql("INSERT INTO public.measurements VALUES (1, '2025-05-05', 1.5), (2, '2026-06-06', 2)")
    h.sql("UPDATE public.measurements SET v = 3 WHERE id = 2")
    got = sorted((o["event"], o["record"]["id"], o["table"], o["webhook_id"]) for o in
                 (wire(r, SECRET) for r in sink.wait_for(3, "/part", timeout=10 * hh.SLOW)))
    assert got == [("INSERT", 1, "measurements", wh["id"]), ("INSERT", 2, "measurements", wh["id"]),
                   ("UPDATE", 2, "measurements", wh["id"])]
    # A partition made later is covered too (Postgres clones the trigger onto it).
    h.sql("CREATE TABLE public.measurements_2027 PARTITION OF public.measurements"
          " FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');"
          " INSERT INTO public.measurements VALUES (3, '2027-07-07', 0)")
    req = sink.wait_for(4, "/part", timeout=10 * hh.SLOW)[-1]
    assert wire(req, SECRET)["table"] == "measurements"


def test_operations_filter(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.items (id int PRIMARY KEY, qty int)")
    only = create_webhook(h, sink.url("/ins"), secret=SECRET, name="inserts",
                          events=[{"table": "items", "operations": ["INSERT"]}])
    assert watched(h) == {"items": ["INSERT"]}
    every = create_webhook(h, sink.url("/all"), secret=SECRET, name="all",
                           events=[{"table": "public.items"}])
    # The trigger covers the union of what the subscriptions ask for.
    assert watched(h) == {"items": ["INSERT", "UPDATE", "DELETE"]}
    # Event-type patterns, "*" included, never match row changes.
    star = create_webhook(h, sink.url("/star"), name="star", events=["*"])
    wait_cached(h, every["id"])
    h.sql("INSERT INTO public.items VALUES (1, 1)")
    h.sql("UPDATE public.items SET qty = 2")
    h.sql("DELETE FROM public.items")
    # The other subscription shows that UPDATE and DELETE were captured and sent.
    allreq = by_event(sink.wait_for(3, "/all", timeout=10 * hh.SLOW), SECRET)
    assert set(allreq) == {"INSERT", "UPDATE", "DELETE"}
    time.sleep(0.3)
    ins = [wire(r, SECRET) for r in sink.requests("/ins")]
    assert [(o["event"], o["webhook_id"]) for o in ins] == [("INSERT", only["id"])]
    assert sink.count("/star") == 0 and star["id"]
    assert h.sql("SELECT count(*) FROM hookd.deliveries d JOIN hookd.messages m"
                 " ON m.id = d.message_id WHERE m.origin = 'change'")[0][0] == 4


# --- transactions -----------------------------------------------------------------------------

def sink_records(sink, path):
    """{record name: request} for the deliveries at path so far."""
    return {json.loads(r["body"])["record"]["name"]: r for r in sink.requests(path)}


def test_transactions_that_commit_out_of_order_are_both_delivered(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.orders (id serial PRIMARY KEY, name text)")
    create_webhook(h, sink.url("/ooo"), secret=SECRET, events=[{"table": "orders"}])
    c1 = pg.connect(dbname=h.db, autocommit=False)
    c2 = pg.connect(dbname=h.db, autocommit=False)
    k1, k2 = c1.cursor(), c2.cursor()
    try:
        # The case a cursor over change ids alone would get wrong: T1 writes the lower
        # change id, T2 the higher one, T2 commits and is delivered, then T1 commits.
        # (T2 takes its transaction id first: a transaction that is still open when a
        # later-numbered one commits holds the reader back until it ends, see below.)
        k2.execute("SELECT pg_current_xact_id()")
        k1.execute("INSERT INTO public.orders (name) VALUES ('t1')")
        k2.execute("INSERT INTO public.orders (name) VALUES ('t2')")
        c2.commit()
        hh.wait_until(lambda: "t2" in sink_records(sink, "/ooo"), 10 * hh.SLOW,
                      message="T2's change delivered while T1 is open")
        c1.commit()
        hh.wait_until(lambda: "t1" in sink_records(sink, "/ooo"), 10 * hh.SLOW,
                      message="T1's change delivered after it committed")
        (i1, x1), (i2, x2) = h.sql("SELECT id, xid::text::bigint FROM hookd.changes"
                                   " ORDER BY id")
        assert i1 < i2 and x1 > x2  # T1: lower change id, committed last

        # The same, with T1 also taking the lower transaction id: T2 commits first, but
        # T1 might still write changes that come before T2's, so the reader waits for T1
        # to end (the snapshot xmin), then delivers both.
        k1.execute("INSERT INTO public.orders (name) VALUES ('t3')")
        k2.execute("INSERT INTO public.orders (name) VALUES ('t4')")
        c2.commit()
        time.sleep(1.5)  # longer than capture_poll_interval (1 s)
        assert "t4" not in sink_records(sink, "/ooo")
        c1.commit()
        hh.wait_until(lambda: {"t3", "t4"} <= set(sink_records(sink, "/ooo")), 10 * hh.SLOW,
                      message="T3's and T4's changes delivered")
    finally:
        c1.close()
        c2.close()
    time.sleep(0.3)
    reqs = sink.requests("/ooo")
    assert sorted(json.loads(r["body"])["record"]["name"] for r in reqs) == \
        ["t1", "t2", "t3", "t4"]
    for r in reqs:
        wire(r, SECRET)


def test_change_held_back_by_an_open_transaction_goes_out_when_it_ends(pg, hookd_factory,
                                                                        sink):
    """A change committed while an older transaction is still open waits for it (the
    snapshot xmin); when that transaction ends without touching a watched table nothing
    sends a NOTIFY, and the reader must not wait for its next poll (10 s here)."""
    h = fresh(pg, hookd_factory, name="cap", capture_poll_interval="10s")
    h.sql("CREATE TABLE public.orders (id int PRIMARY KEY, name text);"
          " CREATE TABLE public.unwatched (id int)")
    create_webhook(h, sink.url("/held"), secret=SECRET, events=[{"table": "orders"}])
    old = pg.connect(dbname=h.db, autocommit=False)
    try:
        old.cursor().execute("INSERT INTO public.unwatched VALUES (1)")  # takes an xid
        h.sql("INSERT INTO public.orders VALUES (1, 'held')")
        time.sleep(0.4)
        assert sink.count("/held") == 0  # held back behind the open transaction
        old.commit()
        ended = time.monotonic()
    finally:
        old.close()
    (req,) = sink.wait_for(1, "/held", timeout=5)
    took = time.monotonic() - ended
    assert took < 1.5, f"delivered {took:.2f} s after the transaction ended"
    assert wire(req, SECRET)["record"] == {"id": 1, "name": "held"}


def test_rolled_back_changes_are_not_delivered(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.orders (id int PRIMARY KEY, name text)")
    create_webhook(h, sink.url("/rb"), secret=SECRET, events=[{"table": "orders"}])
    c = pg.connect(dbname=h.db, autocommit=False)
    try:
        k = c.cursor()
        k.execute("INSERT INTO public.orders VALUES (1, 'rolled back')")
        k.execute("UPDATE public.orders SET name = 'rolled back too'")
        c.rollback()
        k.execute("INSERT INTO public.orders VALUES (2, 'kept')")
        k.execute("SAVEPOINT s")
        k.execute("INSERT INTO public.orders VALUES (3, 'to savepoint')")
        k.execute("ROLLBACK TO SAVEPOINT s")
        c.commit()
        k.execute("INSERT INTO public.orders VALUES (4, 'last')")
        c.commit()
    finally:
        c.close()
    sink.wait_for(2, "/rb", timeout=10 * hh.SLOW)
    time.sleep(0.5)
    got = [wire(r, SECRET)["record"] for r in sink.requests("/rb")]
    assert sorted(x["id"] for x in got) == [2, 4]
    assert h.sql("SELECT count(*) FROM hookd.messages WHERE origin = 'change'")[0][0] == 2


# --- the reader ---------------------------------------------------------------------------------

def test_notify_wakes_the_reader(pg, hookd_factory, sink):
    """With a 10-minute poll nothing but the trigger's NOTIFY hookd_changes can explain a
    delivery within a second or two: the wake-up reaches the reader."""
    h = fresh(pg, hookd_factory, name="cap", capture_poll_interval="10m")
    h.sql("CREATE TABLE public.pings (id int PRIMARY KEY)")
    create_webhook(h, sink.url("/wake"), secret=SECRET, events=[{"table": "pings"}])
    before = h.metric("hookd_db_notifications_total", channel="hookd_changes", default=0)
    for i in range(1, 4):
        t0 = time.monotonic()
        h.sql("INSERT INTO public.pings VALUES (%s)", i)
        reqs = sink.wait_for(i, "/wake", timeout=5)
        took = time.monotonic() - t0
        assert took < 2, f"change {i} delivered after {took:.2f} s"
        assert wire(reqs[-1], SECRET)["record"] == {"id": i}
    assert h.metric("hookd_db_notifications_total", channel="hookd_changes") >= before + 3


def test_an_applications_advisory_lock_does_not_stall_the_reader(pg, hookd_factory, sink):
    """The reader's lock is the cursor row (FOR UPDATE SKIP LOCKED), not an advisory lock in
    the key space applications share: an application holding the number the reader used to
    take (hashtext('hookd.capture_step')) changes nothing. A session that holds the cursor
    row is another reader: nothing is read until it lets go."""
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.jobs (id int PRIMARY KEY)")
    create_webhook(h, sink.url("/adv"), secret=SECRET, events=[{"table": "jobs"}])
    app = pg.connect(dbname=h.db)
    other = pg.connect(dbname=h.db, autocommit=False)
    try:
        app.cursor().execute("SELECT pg_advisory_lock(hashtext('hookd.capture_step'))")
        h.sql("INSERT INTO public.jobs VALUES (1)")
        assert wire(sink.wait_for(1, "/adv", timeout=5)[0], SECRET)["record"] == {"id": 1}

        other.cursor().execute("SELECT * FROM hookd.capture_cursor FOR UPDATE")
        h.sql("INSERT INTO public.jobs VALUES (2)")
        time.sleep(1.5)  # past the 1 s poll: every step found the cursor taken
        assert sink.count("/adv") == 1
        other.rollback()
        reqs = sink.wait_for(2, "/adv", timeout=5)
        assert wire(reqs[-1], SECRET)["record"] == {"id": 2}
    finally:
        other.close()
        app.close()
    assert h.sql("SELECT count(*) FROM hookd.messages WHERE origin = 'change'")[0][0] == 2


def test_cursor_ahead_of_the_transaction_counter_is_reset(pg, hookd_factory, sink):
    """After a dump and restore into a cluster whose transaction counter is lower, the
    cursor's xid8 is above every new change, which would never be read. hookd notices (at
    its next step), logs it as an error, renumbers the outbox rows from the other counter
    and moves the cursor back; the changes it reads again make no second message and no
    second delivery (their message ids are derived from the change ids)."""
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.accounts (id int PRIMARY KEY, name text)")
    wh = create_webhook(h, sink.url("/ahead"), secret=SECRET, events=[{"table": "accounts"}])
    h.sql("INSERT INTO public.accounts VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    sink.wait_for(3, "/ahead", timeout=10 * hh.SLOW)
    mark = h.log_mark()
    # What a restore into a lower counter leaves: the cursor a million xids ahead, and an
    # outbox row written (committed, not read yet) under that counter.
    c = pg.connect(dbname=h.db, autocommit=False)
    try:
        k = c.cursor()
        k.execute("SELECT pg_current_xact_id()::text::bigint + 1000000")
        far = k.fetchone()[0]
        k.execute("UPDATE hookd.capture_cursor SET xid = %s::text::xid8", (str(far),))
        k.execute("INSERT INTO hookd.changes (xid, op, schema_name, table_name, record)"
                  " VALUES (%s::text::xid8, 'INSERT', 'public', 'accounts',"
                  " '{\"id\": 4, \"name\": \"from the old cluster\"}')", (str(far + 10),))
        c.commit()
    finally:
        c.close()
    h.sql("INSERT INTO public.accounts VALUES (5, 'new')")

    sink.wait_for(5, "/ahead", timeout=10 * hh.SLOW)
    line = h.wait_for_log(lambda x: x.get("msg", "").startswith("capture: ")
                          and "ahead of this cluster's transaction counter" in x["msg"],
                          since=mark)
    assert line["level"] == "error", line
    time.sleep(0.5)
    got = [wire(r, SECRET) for r in sink.requests("/ahead")]
    assert sorted(o["record"]["id"] for o in got) == [1, 2, 3, 4, 5]
    assert {o["webhook_id"] for o in got} == {wh["id"]}
    assert h.sql("SELECT count(*), count(DISTINCT id) FROM hookd.messages"
                 " WHERE origin = 'change'")[0] == (5, 5)
    assert h.sql("SELECT count(*) FROM hookd.deliveries")[0][0] == 5
    # The cursor is this cluster's again, and the outbox below its counter.
    assert h.sql("SELECT k.xid < pg_current_xact_id() AND NOT EXISTS (SELECT 1 FROM"
                 " hookd.changes c WHERE c.xid >= pg_current_xact_id())"
                 " FROM hookd.capture_cursor k")[0][0] is True
    # And it keeps working.
    h.sql("INSERT INTO public.accounts VALUES (6, 'after')")
    assert wire(sink.wait_for(6, "/ahead", timeout=5)[-1], SECRET)["record"]["id"] == 6


def test_retention_deletes_read_changes_past_capture_retention(pg, hookd_factory, sink):
    """capture_retention (20 s here: hookd prunes every quarter of it, so every 5 s): read
    changes older than it are deleted, in batches of 1,000 from the oldest, by one process
    at a time; younger read changes and unread changes of any age stay."""
    h = fresh(pg, hookd_factory, name="cap", capture_retention="20s")
    h.sql("CREATE TABLE public.orders (id int PRIMARY KEY, name text);"
          " CREATE TABLE public.unwatched (id int)")
    create_webhook(h, sink.url("/ret"), secret=SECRET, events=[{"table": "orders"}])

    def names():
        return dict(h.sql("SELECT record->>'name', count(*) FROM hookd.changes GROUP BY 1"))

    def unread():
        return h.sql("SELECT count(*) FROM hookd.changes c, hookd.capture_cursor k"
                     " WHERE (c.xid, c.id) > (k.xid, k.change_id)")[0][0]

    h.sql("INSERT INTO public.orders SELECT g, 'old' FROM generate_series(1, 2500) g")
    h.sql("INSERT INTO public.orders VALUES (3000, 'young')")
    hh.wait_until(lambda: unread() == 0, 20 * hh.SLOW, message="every change read")
    # As if written an hour ago.
    h.sql("UPDATE hookd.changes SET changed_at = now() - interval '1 hour'"
          " WHERE record->>'name' = 'old'")
    hold = pg.connect(dbname=h.db, autocommit=False)
    janitor = pg.connect(dbname=h.db, autocommit=False)
    try:
        # An unread change, an hour old too: held back behind an open transaction.
        hold.cursor().execute("INSERT INTO public.unwatched VALUES (1)")
        h.sql("INSERT INTO public.orders VALUES (4000, 'unread')")
        h.sql("UPDATE hookd.changes SET changed_at = now() - interval '1 hour'"
              " WHERE record->>'name' = 'unread'")
        assert unread() == 1
        # While another process prunes (holds the janitor row), this one does not.
        janitor.cursor().execute("SELECT * FROM hookd.capture_janitor FOR UPDATE")
        time.sleep(6)
        assert names() == {"old": 2500, "young": 1, "unread": 1}
        janitor.rollback()
        # The next prune (within 5 s) deletes all 2,500 at once, a batch after another.
        hh.wait_until(lambda: "old" not in names(), 8 * hh.SLOW, message="old changes deleted")
        assert names() == {"young": 1, "unread": 1}
        assert h.sql("SELECT pruned_at > now() - interval '10 s' FROM hookd.capture_janitor")[0][0]
        hold.commit()
    finally:
        hold.close()
        janitor.close()
    # The unread change is read and delivered; messages are not capture's to delete.
    hh.wait_until(lambda: any(wire(r, SECRET)["record"]["id"] == 4000
                              for r in sink.requests("/ret")), 10 * hh.SLOW,
                  message="the unread change delivered")
    assert h.sql("SELECT count(*) FROM hookd.messages WHERE origin = 'change'")[0][0] == 2502


def test_hookd_analyzes_its_tables_as_they_grow(pg, hookd_factory, sink):
    """Plans made while hookd's tables are nearly empty are kept by every session as they
    grow (sequential scans of hookd.deliveries and hookd.messages on a new database): hookd
    analyzes its tables once they reach 500 rows and each time they double, whatever
    autovacuum does (here it is off for them, and only a manual ANALYZE sets last_analyze)."""
    h = fresh(pg, hookd_factory, name="cap")
    for t in ("changes", "messages", "deliveries"):
        h.sql(f"ALTER TABLE hookd.{t} SET (autovacuum_enabled = false)")
    h.sql("CREATE TABLE public.orders (id int PRIMARY KEY)")
    create_webhook(h, sink.url("/an"), events=[{"table": "orders"}])

    def analyzed():
        return dict(h.sql("SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
                          " WHERE schemaname = 'hookd'"
                          " AND relname IN ('changes', 'messages', 'deliveries')"))

    assert analyzed() == {"changes": False, "messages": False, "deliveries": False}
    h.sql("INSERT INTO public.orders SELECT g FROM generate_series(1, 300) g")
    sink.wait_for(300, "/an", timeout=20 * hh.SLOW)
    time.sleep(2)
    assert analyzed() == {"changes": False, "messages": False, "deliveries": False}
    h.sql("INSERT INTO public.orders SELECT g FROM generate_series(301, 700) g")
    # Table statistics reach pg_stat_user_tables within about 10 s of an idle backend.
    hh.wait_until(lambda: all(analyzed().values()), 25 * hh.SLOW,
                  message="hookd's tables analyzed")
    assert all(n >= 500 for (n,) in h.sql(
        "SELECT reltuples FROM pg_class WHERE oid IN"
        " ('hookd.messages'::regclass, 'hookd.deliveries'::regclass)"))


# --- watches ----------------------------------------------------------------------------------

def test_watches_api_and_sql(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.things (id int PRIMARY KEY);"
          " CREATE TABLE public.others (id int PRIMARY KEY);"
          " CREATE SCHEMA app; CREATE TABLE app.accounts (id int PRIMARY KEY);"
          " CREATE VIEW public.thing_view AS SELECT * FROM public.things")
    assert h.get("/api/v1/watches").status == 401
    assert h.get("/api/v1/watches", auth=True).body == {"data": []}

    r = h.post("/api/v1/watches", auth=True,
               json={"table": "public.things", "operations": ["insert", "UPDATE"]})
    assert r.status == 201, r.body
    assert r.body == {"table": "things", "schema": "public", "name": "things",
                      "operations": ["INSERT", "UPDATE"]}
    # From SQL, as the docs show it.
    h.sql("SELECT hookd.watch('app.accounts', ARRAY['DELETE'])")
    h.sql("SELECT hookd.watch('public.others')")
    r = h.get("/api/v1/watches", auth=True)
    assert r.status == 200
    assert r.body["data"] == [
        {"table": "app.accounts", "schema": "app", "name": "accounts", "operations": ["DELETE"]},
        {"table": "others", "schema": "public", "name": "others",
         "operations": ["INSERT", "UPDATE", "DELETE"]},
        {"table": "things", "schema": "public", "name": "things",
         "operations": ["INSERT", "UPDATE"]}]
    # Watching again replaces the operations.
    r = h.post("/api/v1/watches", auth=True, json={"table": "public.things"})
    assert r.status == 201 and r.body["operations"] == ["INSERT", "UPDATE", "DELETE"]

    # A watch writes the outbox; an unwatch stops it.
    h.sql("INSERT INTO public.things VALUES (1)")
    assert h.sql("SELECT op, table_name, record::text FROM hookd.changes") == \
        [("INSERT", "things", '{"id": 1}')]
    r = h.delete("/api/v1/watches/public.things", auth=True)
    assert r.status == 204
    h.sql("INSERT INTO public.things VALUES (2)")
    assert h.sql("SELECT count(*) FROM hookd.changes")[0][0] == 1
    assert h.delete("/api/v1/watches/public.things", auth=True).status == 404
    assert h.delete("/api/v1/watches/public.nothing", auth=True).status == 404
    h.sql("SELECT hookd.unwatch('app.accounts')")
    assert [w["table"] for w in h.get("/api/v1/watches", auth=True).body["data"]] == ["others"]

    # Bad input.
    for body, field in [
            ({"table": "public.nothing"}, "table"),
            ({"table": "nothing.things"}, "table"),
            ({"table": "public.thing_view"}, "table"),
            ({"table": "public.things", "operations": ["TRUNCATE"]}, "operations"),
            ({"table": "public.things", "operations": []}, "operations"),
            ({"table": "public.things", "operations": "INSERT"}, "operations"),
            ({"operations": ["INSERT"]}, "table"),
            ({"table": "hookd.deliveries"}, "table"),
            ({"table": "hookd.changes"}, "table")]:
        r = h.post("/api/v1/watches", auth=True, json=body)
        assert (r.status, r.body.get("error"), r.body.get("field")) == \
            (422, "validation_failed", field), (body, r.body)
    r = h.post("/api/v1/watches", auth=True, body=b"{",
               headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert set(watched(h)) == {"others"}


def test_unwatching_a_table_a_subscription_names_is_refused(pg, hookd_factory, sink):
    """DELETE /api/v1/watches/{table} while an enabled subscription would receive the
    table's changes: 409 naming the subscriptions (they would silently stop getting
    changes), unless ?force=true."""
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.users (id int PRIMARY KEY);"
          " CREATE TABLE public.other (id int PRIMARY KEY)")
    a = create_webhook(h, sink.url("/u"), name="User Events", secret=SECRET,
                       events=[{"table": "users", "operations": ["INSERT"]}])
    b = create_webhook(h, sink.url("/u"), name="audit", events=[{"table": "public.users"}])
    create_webhook(h, sink.url("/o"), name="other", events=[{"table": "other"}, "order.*"])
    paused = create_webhook(h, sink.url("/u"), name="paused", events=[{"table": "users"}])
    assert h.patch(f"/api/v1/webhooks/{paused['id']}", auth=True,
                   json={"enabled": False}).status == 200

    r = h.delete("/api/v1/watches/public.users", auth=True)
    assert r.status == 409, r.body
    assert r.body["error"] == "conflict"
    assert r.body["subscriptions"] == [{"id": a["id"], "name": "User Events"},
                                       {"id": b["id"], "name": "audit"}]
    assert '"User Events", "audit"' in r.body["message"] and "force=true" in r.body["message"]
    assert h.delete("/api/v1/watches/users?force=false", auth=True).status == 409
    r = h.delete("/api/v1/watches/public.users?force=maybe", auth=True)
    assert r.status == 400 and r.body["error"] == "invalid_query"
    # Nothing changed: still watched, still delivered.
    assert set(watched(h)) == {"users", "other"}
    h.sql("INSERT INTO public.users VALUES (1)")
    sink.wait_for(2, "/u", timeout=10 * hh.SLOW)

    # Once no enabled subscription names it, it goes.
    assert h.patch(f"/api/v1/webhooks/{a['id']}", auth=True,
                   json={"events": ["order.*"]}).status == 200
    assert h.patch(f"/api/v1/webhooks/{b['id']}", auth=True,
                   json={"enabled": False}).status == 200
    assert h.delete("/api/v1/watches/public.users", auth=True).status == 204
    # force: unwatched although "other" still names it.
    r = h.delete("/api/v1/watches/public.other", auth=True)
    assert r.status == 409 and [x["name"] for x in r.body["subscriptions"]] == ["other"]
    assert h.delete("/api/v1/watches/public.other?force=true", auth=True).status == 204
    assert watched(h) == {}


def test_subscription_to_a_table_hookd_cannot_watch_is_refused_whole(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="cap")
    n = subscription_count(h)
    r = h.post("/api/v1/webhooks", auth=True, json={
        "name": "missing", "url": sink.url("/m"), "secret": SECRET,
        "events": ["order.*", {"table": "missing_table", "operations": ["INSERT"]}]})
    assert r.status == 422, r.body
    assert r.body["error"] == "validation_failed" and r.body["field"] == "events"
    assert "missing_table" in r.body["message"]
    assert subscription_count(h) == n and watched(h) == {}
    # A PATCH that adds such a table is refused too, and changes nothing.
    wh = create_webhook(h, sink.url("/m"), events=["order.*"])
    r = h.patch(f"/api/v1/webhooks/{wh['id']}", auth=True,
                json={"events": [{"table": "public.missing_table"}]})
    assert r.status == 422 and r.body["field"] == "events"
    assert h.get(f"/api/v1/webhooks/{wh['id']}", auth=True).body["events"] == ["order.*"]


def test_unqualified_names_never_mean_hookds_own_tables(pg, hookd_factory, sink):
    """hookd's schema has tables named events, messages, deliveries, changes...: a seed 004
    subscription to the user's "events" table must watch public.events, and hookd never
    watches its own tables (a trigger on hookd.changes would recurse on every change)."""
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.events (id int PRIMARY KEY, kind text)")
    wh = create_webhook(h, sink.url("/ev"), secret=SECRET,
                        events=[{"table": "events", "operations": ["INSERT"]}])
    assert watched(h) == {"public.events": ["INSERT"]}
    h.sql("INSERT INTO public.events VALUES (1, 'signup')")
    (req,) = sink.wait_for(1, "/ev", timeout=10 * hh.SLOW)
    o = wire(req, SECRET)
    assert (o["schema"], o["table"], o["record"], o["webhook_id"]) == \
        ("public", "events", {"id": 1, "kind": "signup"}, wh["id"])
    # The API resolves the same way.
    r = h.post("/api/v1/watches", auth=True, json={"table": "events"})
    assert r.status == 201 and (r.body["schema"], r.body["name"]) == ("public", "events")
    # A name hookd alone has is no table to watch.
    r = h.post("/api/v1/webhooks", auth=True, json={
        "name": "x", "url": sink.url("/x"), "events": [{"table": "deliveries"}]})
    assert r.status == 422 and r.body["field"] == "events", r.body
    for t in ("hookd.changes", "hookd.events"):
        with pytest.raises(psycopg2.Error):
            h.sql("SELECT hookd.watch(%s)", t)
    assert set(watched(h)) == {"public.events"}


# --- hookd as an ordinary role ----------------------------------------------------------------

class AppHookd(hh.Hookd):
    """A hookd that connects as the role hookd_app instead of the superuser."""

    @property
    def database_url(self):
        return self.pg.url_for(self.db).replace("postgresql://hookd@", "postgresql://hookd_app@")


def connect_as(pg, user, db):
    c = psycopg2.connect(host=pg.sockdir, port=pg.port, user=user, dbname=db, connect_timeout=10)
    c.autocommit = True
    return c


def test_hookd_as_an_ordinary_role(pg, test_root, sink):
    """hookd needs no superuser: CREATE on the database (to make its schema) and TRIGGER on
    the tables it watches (docs/capture.md, "Grants"). Tables it may not trigger are refused
    whole; the application's roles write their tables with no grant on hookd's schema."""
    db = f"capapp_{uuid.uuid4().hex[:8]}"
    pg.sql("DO $$ BEGIN"
           " IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookd_app') THEN"
           "  CREATE ROLE hookd_app LOGIN; END IF;"
           " IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') THEN"
           "  CREATE ROLE app_owner LOGIN; END IF;"
           " IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_writer') THEN"
           "  CREATE ROLE app_writer LOGIN; END IF; END $$")
    pg.sql(f'CREATE DATABASE "{db}" OWNER app_owner', db="postgres")
    pg.sql(f'GRANT CREATE ON DATABASE "{db}" TO hookd_app', db="postgres")
    # The application's tables belong to the application's role.
    pg.sql("CREATE TABLE public.granted (id int PRIMARY KEY, v text);"
           " CREATE TABLE public.private (id int PRIMARY KEY, v text);"
           " ALTER TABLE public.granted OWNER TO app_owner;"
           " ALTER TABLE public.private OWNER TO app_owner;"
           " GRANT TRIGGER ON public.granted TO hookd_app;"
           " GRANT SELECT, INSERT, UPDATE ON public.granted TO app_writer", db=db)
    assert pg.sql("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles"
                  " WHERE rolname = 'hookd_app'")[0] == (False, False, False)

    h = AppHookd(pg, test_root, db=db, config={"outbound_allow_networks": "127.0.0.0/8",
                                               "deliver_poll_interval": "200ms"})
    try:
        h.start()  # migrates its schema as hookd_app
        assert pg.sql("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'hookd'",
                      db=db) == [("hookd_app",)]

        # No TRIGGER privilege: refused whole, through the subscription and the API.
        n = subscription_count(h)
        r = h.post("/api/v1/webhooks", auth=True, json={
            "name": "private", "url": sink.url("/p"), "secret": SECRET,
            "events": [{"table": "private", "operations": ["INSERT"]}]})
        assert r.status == 422 and r.body["field"] == "events", r.body
        assert "private" in r.body["message"]
        assert subscription_count(h) == n
        r = h.post("/api/v1/watches", auth=True, json={"table": "public.private"})
        assert r.status == 422 and r.body["field"] == "table", r.body
        assert watched(h) == {}

        # TRIGGER privilege is enough to watch, and to widen the watch later.
        a = create_webhook(h, sink.url("/g"), secret=SECRET, name="ins",
                           events=[{"table": "granted", "operations": ["INSERT"]}])
        assert watched(h) == {"granted": ["INSERT"]}
        b = create_webhook(h, sink.url("/g"), secret=SECRET, name="upd",
                           events=[{"table": "granted", "operations": ["UPDATE"]}])
        assert watched(h) == {"granted": ["INSERT", "UPDATE"]}
        wait_cached(h, b["id"])

        # The application's roles write as before: nothing granted to them on hookd's schema.
        for user, sql in [("app_owner", "INSERT INTO public.granted VALUES (1, 'owner')"),
                          ("app_writer", "INSERT INTO public.granted VALUES (2, 'writer')"),
                          ("app_writer", "UPDATE public.granted SET v = 'updated' WHERE id = 1")]:
            c = connect_as(pg, user, db)
            try:
                c.cursor().execute(sql)
            finally:
                c.close()
        reqs = sink.wait_for(3, "/g", timeout=10 * hh.SLOW)
        got = sorted((o["event"], o["record"]["id"], o["webhook_id"])
                     for o in (wire(r, SECRET) for r in reqs))
        assert got == sorted([("INSERT", 1, a["id"]), ("INSERT", 2, a["id"]),
                              ("UPDATE", 1, b["id"])])
        # Dropping a trigger is the table owner's right alone (Postgres): hookd says so
        # (forced: two enabled subscriptions still name the table).
        r = h.delete("/api/v1/watches/public.granted", auth=True)
        assert r.status == 409 and len(r.body["subscriptions"]) == 2, r.body
        r = h.delete("/api/v1/watches/public.granted?force=true", auth=True)
        assert r.status == 403 and r.body["error"] == "forbidden", r.body
        assert "owner" in r.body["message"]
    finally:
        h.finish()


# --- seed 004's own receiver ------------------------------------------------------------------

class ExpressReceiver:
    """node/fluxbase-express.js: seed 004's Express handler with FLUXBASE_WEBHOOK_SECRET."""

    def __init__(self, node_modules, root, secret):
        self.out = os.path.join(root, f"fluxbase-express-{time.monotonic_ns()}.out")
        env = dict(os.environ, NODE_PATH=node_modules, FLUXBASE_WEBHOOK_SECRET=secret)
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(
                ["node", os.path.join(HERE, "node", "fluxbase-express.js")],
                stdout=f, stderr=subprocess.STDOUT, env=env)

        def port():
            if self.proc.poll() is not None:
                raise AssertionError(f"fluxbase-express exited:\n{hh.tail(self.out)}")
            with open(self.out) as f:
                for line in f:
                    if line.startswith("listening on "):
                        return int(line.split()[2])
            return None
        self.port = hh.wait_until(port, 20, message="express receiver listening")

    def url(self, path="/webhooks/fluxbase"):
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self):
        r = hh.http_request(self.port, "GET", "/_received")
        assert r.status == 200
        return r.body

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_seed_004_express_receiver_accepts_the_deliveries(pg, hookd_factory, test_root,
                                                           node_modules):
    h = fresh(pg, hookd_factory, name="cap")
    h.sql("CREATE TABLE public.users (id uuid PRIMARY KEY, email text, name text,"
          " score numeric, meta jsonb, created_at timestamptz DEFAULT now())")
    rx = ExpressReceiver(node_modules, test_root, SECRET)
    try:
        # Seed 004's create example, pointed at the receiver.
        r = h.post("/api/v1/webhooks", auth=True, json={
            "name": "User Events", "description": "Notify external system of user changes",
            "url": rx.url(), "secret": SECRET, "enabled": True,
            "events": [{"table": "users", "operations": ["INSERT", "UPDATE", "DELETE"]}],
            "max_retries": 3, "timeout_seconds": 30, "retry_backoff_seconds": 5})
        assert r.status == 201, r.body
        wid = r.body["id"]
        # A control: a webhook whose secret is not the receiver's must be turned away (401),
        # or the 200s above would prove nothing.
        bad = create_webhook(h, rx.url(), name="wrong secret", secret="not-the-secret",
                             max_retries=0, events=[{"table": "users",
                                                     "operations": ["INSERT"]}])
        wait_cached(h, wid)
        uid = "550e8400-e29b-41d4-a716-446655440000"
        h.sql("INSERT INTO public.users (id, email, name, score, meta) VALUES"
              " (%s, 'user@example.com', 'Zoë “quotes” / ✓', 1.50,"
              " '{\"z\": 1, \"10\": \"ten\", \"2\": [1.0, 2.5e3, -0.0],"
              " \"url\": \"https://a/b\"}')",
              uid)
        h.sql("UPDATE public.users SET email = 'new@example.com', score = 1e-7 WHERE id = %s", uid)
        h.sql("DELETE FROM public.users WHERE id = %s", uid)

        def done():
            rec = rx.received()["received"]
            return rec if len(rec) >= 4 else None
        rec = hh.wait_until(done, 15 * hh.SLOW, message="4 deliveries at the receiver")
        mine = sorted((x["event"], x["status"]) for x in rec if x["webhook_id"] == wid)
        assert mine == [("DELETE", 200), ("INSERT", 200), ("UPDATE", 200)], rec
        assert [(x["event"], x["status"]) for x in rec if x["webhook_id"] == bad["id"]] == \
            [("INSERT", 401)]
        handled = {x["op"]: x for x in rx.received()["handled"]}
        assert handled["INSERT"]["table"] == "users"
        assert handled["INSERT"]["record"]["id"] == uid
        assert handled["INSERT"]["record"]["name"] == "Zoë “quotes” / ✓"
        assert handled["UPDATE"]["old_record"]["email"] == "user@example.com"
        assert handled["UPDATE"]["record"]["email"] == "new@example.com"
        assert handled["DELETE"]["record"]["id"] == uid
        hh.wait_until(lambda: h.sql(
            "SELECT count(*) FROM hookd.deliveries WHERE subscription_id = %s"
            " AND status = 'succeeded' AND last_status = 200", wid)[0][0] == 3,
            5 * hh.SLOW, message="the deliveries recorded as succeeded")
    finally:
        rx.stop()
