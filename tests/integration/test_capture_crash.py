# SPDX-License-Identifier: ISC
"""No change lost (DESIGN.md, the contract, item 3): a committed row change on a watched
table yields exactly one message, and each message is delivered, across hookd being
stopped, hookd being killed (kill -9), Postgres restarting with `pg_ctl restart -m
immediate` in the middle of a stream of changes, and two hookd processes sharing the
database. "Exactly one" is checked twice: in hookd.messages (one per change) and at the
sink (each webhook-id once: with the default lease, nothing is sent twice).

The test clusters run with synchronous_commit = off for speed, which lets Postgres forget
commits it has acknowledged when it crashes (and an immediate shutdown is a crash). This
module turns it back on (Postgres's default): a change is "committed" when its commit was
acknowledged, and no delivery guarantee can outlive a commit that Postgres itself lost.
"""

import collections
import json
import signal
import threading
import time

import psycopg2
import pytest

import hookd_harness as hh
from outbound import create_webhook, fresh, hex_hmac, js_stringify, sibling, wait_cached
from sink import sink  # noqa: F401  (fixture)

SECRET = "your-webhook-secret"


@pytest.fixture(scope="module", autouse=True)
def durable_commits(pg):
    pg.sql("ALTER SYSTEM SET synchronous_commit = on")
    pg.sql("SELECT pg_reload_conf()")
    yield


def start_stream(pg, hookd_factory, sink, path, timeout_seconds=30, **config):
    h = fresh(pg, hookd_factory, name="capx", **config)
    h.sql("CREATE TABLE public.stream (id int PRIMARY KEY, v text)")
    wh = create_webhook(h, sink.url(path), secret=SECRET, events=[{"table": "stream"}],
                        timeout_seconds=timeout_seconds)
    wait_cached(h, wh["id"])
    return h, wh


def received(sink, path):
    """[(webhook-id, parsed body)] at path, each body checked as a receiver would."""
    out = []
    for r in sink.requests(path):
        body = r["body"]
        assert body == js_stringify(json.loads(body))
        assert r["headers"]["x-fluxbase-signature"] == hex_hmac(SECRET, body)
        out.append((r["headers"]["webhook-id"], json.loads(body)))
    return out


def wait_or_explain(h, fn, timeout, message):
    """wait_until, and on a timeout say where the outbox and the deliveries stand."""
    try:
        hh.wait_until(fn, timeout, message=message)
    except AssertionError as e:
        raise AssertionError(f"{e}; {state(h)}") from None


def state(h):
    return h.sql(
        "SELECT json_build_object('changes', (SELECT count(*) FROM hookd.changes),"
        " 'cursor', (SELECT row_to_json(c) FROM hookd.capture_cursor c),"
        " 'last_change', (SELECT row_to_json(x) FROM (SELECT xid, id FROM hookd.changes"
        "   ORDER BY xid DESC, id DESC LIMIT 1) x),"
        " 'messages', (SELECT count(*) FROM hookd.messages WHERE origin = 'change'),"
        " 'deliveries', (SELECT json_object_agg(s, n) FROM (SELECT status || CASE WHEN"
        "   leased_by IS NULL THEN '' ELSE '/leased' END AS s, count(*) AS n"
        "   FROM hookd.deliveries GROUP BY 1) x))::text")[0][0]


def one_message_per_change(h):
    """Every change in the outbox has exactly one message, and no message lacks its change."""
    changes, messages, distinct, orphans = h.sql(
        "SELECT (SELECT count(*) FROM hookd.changes),"
        " (SELECT count(*) FROM hookd.messages WHERE origin = 'change'),"
        " (SELECT count(DISTINCT origin_id) FROM hookd.messages WHERE origin = 'change'),"
        " (SELECT count(*) FROM hookd.messages m WHERE origin = 'change' AND NOT EXISTS"
        "   (SELECT 1 FROM hookd.changes c WHERE c.id::text = m.origin_id))")[0]
    assert (messages, distinct, orphans) == (changes, changes, 0)
    return changes


def test_changes_made_while_hookd_is_stopped(pg, hookd_factory, sink):
    h, wh = start_stream(pg, hookd_factory, sink, "/stopped")
    h.signal(signal.SIGTERM)
    assert h.wait_exit(15 * hh.SLOW) == 0
    # 1,000 row changes with no hookd running: 600 inserts (60 transactions of 10), 300
    # updates (one each), 100 deletes (one transaction).
    c = pg.connect(dbname=h.db, autocommit=False)
    k = c.cursor()
    for t in range(60):
        k.execute("INSERT INTO public.stream SELECT g, 'new' FROM generate_series(%s, %s) g",
                  (t * 10 + 1, t * 10 + 10))
        c.commit()
    for i in range(1, 301):
        k.execute("UPDATE public.stream SET v = 'updated' WHERE id = %s", (i,))
        c.commit()
    k.execute("DELETE FROM public.stream WHERE id > 500")
    c.commit()
    c.close()
    assert h.sql("SELECT count(*) FROM hookd.changes")[0][0] == 1000
    assert h.sql("SELECT count(*) FROM hookd.messages")[0][0] == 0

    h2 = sibling(hookd_factory, h)
    hh.wait_until(lambda: sink.count("/stopped") >= 1000, 30 * hh.SLOW,
                  message="1,000 deliveries")
    hh.wait_until(lambda: h2.sql("SELECT count(*) FROM hookd.deliveries"
                                 " WHERE status = 'succeeded'")[0][0] == 1000, 10 * hh.SLOW)
    time.sleep(0.5)
    got = received(sink, "/stopped")
    assert len(got) == 1000
    ids = collections.Counter(mid for mid, _ in got)
    assert len(ids) == 1000 and max(ids.values()) == 1
    ops = collections.Counter(o["event"] for _, o in got)
    assert ops == {"INSERT": 600, "UPDATE": 300, "DELETE": 100}
    assert {o["webhook_id"] for _, o in got} == {wh["id"]}
    assert one_message_per_change(h2) == 1000


class Writer(threading.Thread):
    """Inserts rows 1, 2, 3, ... one transaction each, as fast as it can (or every `pause`
    seconds), through Postgres going away and coming back. Records which commits were
    acknowledged and which are in doubt (the connection broke during the commit)."""

    def __init__(self, pg, db, pause=0.0):
        super().__init__(daemon=True)
        self.pg, self.db, self.pause = pg, db, pause
        self.acked, self.doubt, self.errors = set(), set(), 0
        self.stop = threading.Event()

    def connect(self):
        c = psycopg2.connect(host=self.pg.sockdir, port=self.pg.port, user="hookd",
                             dbname=self.db, connect_timeout=5)
        c.autocommit = True
        return c

    def run(self):
        conn, i = None, 0
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self.connect()
                i += 1
                try:
                    conn.cursor().execute("INSERT INTO public.stream VALUES (%s, 'x')", (i,))
                    self.acked.add(i)
                except psycopg2.OperationalError:
                    self.doubt.add(i)  # sent: it may or may not have committed
                    raise
            except psycopg2.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
                continue
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()


def test_postgres_restart_immediate_during_a_stream(pg, hookd_factory, sink):
    h, wh = start_stream(pg, hookd_factory, sink, "/restart")
    w = Writer(pg, h.db, pause=0.002)
    w.start()
    try:
        hh.wait_until(lambda: sink.count("/restart") >= 200, 10 * hh.SLOW,
                      message="the stream flowing")
        pg.restart(mode="immediate")
        restarted_at = len(w.acked)
        hh.wait_until(lambda: len(w.acked) >= restarted_at + 300, 20 * hh.SLOW,
                      message="writes after the restart")
    finally:
        w.stop.set()
        w.join(10)
    assert w.errors > 0, "the restart went unnoticed by the writer"
    # The truth after recovery: the rows that exist are the committed changes.
    committed = {r[0] for r in h.sql("SELECT id FROM public.stream")}
    assert w.acked <= committed, f"acknowledged but lost: {sorted(w.acked - committed)[:10]}"
    assert committed <= w.acked | w.doubt
    wait_or_explain(h, lambda: sink.count("/restart") >= len(committed), 30 * hh.SLOW,
                    f"{len(committed)} deliveries")
    time.sleep(1)
    got = received(sink, "/restart")
    delivered = collections.Counter(o["record"]["id"] for _, o in got)
    assert set(delivered) == committed, (
        f"committed, not delivered: {sorted(committed - set(delivered))[:10]}; "
        f"delivered, not committed: {sorted(set(delivered) - committed)[:10]}")
    # None twice: a send is repeated only when its lease expires (120 s by default).
    per_id = collections.Counter(mid for mid, _ in got)
    assert [m for m, n in per_id.items() if n > 1] == []
    assert max(delivered.values()) == 1
    assert one_message_per_change(h) == len(committed)
    assert h.alive()


def test_change_right_after_a_restart_needs_no_poll(pg, hookd_factory, sink):
    """pg_ctl restart -m immediate, then a change committed as soon as Postgres accepts
    connections again: delivered without waiting for the poll (10 minutes here). hookd's
    LISTEN connection and its query pool reconnect on their own schedules, in either order;
    the catch-up read after the LISTEN reconnect, or the change's NOTIFY, may arrive while
    the pool is still down, and must be remembered and run when it is back. Five restarts,
    to meet both orders."""
    h, wh = start_stream(pg, hookd_factory, sink, "/again", capture_poll_interval="10m")
    h.sql("INSERT INTO public.stream VALUES (0, 'before')")
    sink.wait_for(1, "/again", timeout=5)
    for i in range(1, 6):
        pg.restart(mode="immediate")
        t0 = time.monotonic()
        h.sql("INSERT INTO public.stream VALUES (%s, 'right after the restart')", i)
        wait_or_explain(h, lambda: i in {o["record"]["id"] for _, o in received(sink, "/again")},
                        10 * hh.SLOW, f"the change after restart {i} delivered")
        took = time.monotonic() - t0
        assert took < 10 * hh.SLOW, f"restart {i}: delivered {took:.1f} s after the commit"
    time.sleep(0.5)
    got = received(sink, "/again")
    assert sorted(o["record"]["id"] for _, o in got) == list(range(6))
    assert len({mid for mid, _ in got}) == 6
    assert one_message_per_change(h) == 6
    assert h.alive()


def test_kill9_during_a_stream(pg, hookd_factory, sink):
    """hookd killed while reading and sending: a new process makes every missing message
    (and no message twice) and sends every delivery; a delivery is sent twice only if the
    dead process had leased it (its lease, 5 s here, expires and it is sent again)."""
    h, wh = start_stream(pg, hookd_factory, sink, "/kill9", deliver_lease="5s",
                         timeout_seconds=2)  # a lease: 5 s (timeout + 3 s at least)
    w = Writer(pg, h.db, pause=0.001)
    w.start()
    try:
        hh.wait_until(lambda: sink.count("/kill9") >= 200, 10 * hh.SLOW,
                      message="the stream flowing")
        h.kill9()
        leased = h.sql("SELECT count(*) FROM hookd.deliveries WHERE leased_by IS NOT NULL")[0][0]
        time.sleep(0.5)  # changes pile up with no hookd running
        h2 = sibling(hookd_factory, h)
        n = len(w.acked)
        hh.wait_until(lambda: len(w.acked) >= n + 300, 20 * hh.SLOW,
                      message="writes after the restart")
    finally:
        w.stop.set()
        w.join(10)
    committed = {r[0] for r in h.sql("SELECT id FROM public.stream")}
    assert w.doubt == set() and committed == w.acked
    wait_or_explain(h, lambda: len({o["record"]["id"] for _, o in received(sink, "/kill9")})
                    >= len(committed), 30 * hh.SLOW, "every change delivered")
    time.sleep(0.5)
    got = received(sink, "/kill9")
    assert {o["record"]["id"] for _, o in got} == committed
    assert len(got) - len(committed) <= leased
    assert one_message_per_change(h2) == len(committed)


def test_two_processes_read_each_change_once(pg, hookd_factory, sink):
    a, wh = start_stream(pg, hookd_factory, sink, "/pair")
    b = sibling(hookd_factory, a)
    wait_cached(b, wh["id"])
    time.sleep(0.3)
    # Several writers at once, so that both processes are woken often and both try to read;
    # paced over a second or more, so that the two race for the reader's lock in hundreds
    # of steps (the one that reads a step delivers what it made, so both deliver).
    conns = [pg.connect(dbname=a.db) for _ in range(3)]

    def write(k, c):
        cur = c.cursor()
        for j in range(200):
            cur.execute("INSERT INTO public.stream VALUES (%s, 'p')", (k * 1000 + j,))
            time.sleep(0.005)
    threads = [threading.Thread(target=write, args=(k, c)) for k, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hh.wait_until(lambda: sink.count("/pair") >= 600, 30 * hh.SLOW, message="600 deliveries")
    hh.wait_until(lambda: a.sql("SELECT count(*) FROM hookd.deliveries"
                                " WHERE status = 'succeeded'")[0][0] == 600, 10 * hh.SLOW)
    time.sleep(0.5)
    got = received(sink, "/pair")
    per_id = collections.Counter(mid for mid, _ in got)
    assert len(got) == 600 and len(per_id) == 600
    assert one_message_per_change(a) == 600
    # Only one process reads at a time, and each change is read once in all: the changes
    # the two processes report having read add up to the number of changes.
    ra = a.metric("hookd_capture_changes_total", default=0)
    rb = b.metric("hookd_capture_changes_total", default=0)
    assert ra + rb == 600, (ra, rb)
    # Both delivered (any process may deliver).
    assert a.metric("hookd_deliveries_total", outcome="succeeded", default=0) > 0
    assert b.metric("hookd_deliveries_total", outcome="succeeded", default=0) > 0
