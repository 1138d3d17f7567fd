# SPDX-License-Identifier: ISC
"""At-least-once delivery across crashes and several processes: kill -9 with sends in
flight loses nothing (the leases expire and another process sends again), and two hookd
processes on one database deliver every message, each once when no lease expires."""

import collections
import signal
import time

import hookd_harness as hh
from outbound import (create_webhook, fresh, publish, sibling, standard_signatures,
                      wait_delivery)
from sink import sink  # noqa: F401  (fixture)


def ids_at_sink(sink, path):
    return collections.Counter(r["headers"].get("webhook-id") for r in sink.requests(path))


def test_kill9_with_sends_in_flight_then_restart(pg, hookd_factory, sink):
    n = 30
    h = fresh(pg, hookd_factory, name="crash", deliver_lease="5s")
    # Slow answers, so that the kill finds sends in flight (lease: 5 s, the minimum).
    create_webhook(h, sink.url("/slow?delay_ms=700"), timeout_seconds=2)
    mids = [publish(h, data={"n": i}) for i in range(n)]
    hh.wait_until(lambda: sink.count("/slow") >= 5, 10 * hh.SLOW, message="sends in flight")
    h.kill9()
    leased = h.sql("SELECT count(*) FROM hookd.deliveries WHERE leased_by IS NOT NULL")[0][0]
    assert leased > 0, "the kill found nothing leased"

    h2 = sibling(hookd_factory, h)
    hh.wait_until(lambda: h2.sql("SELECT count(*) FROM hookd.deliveries"
                                 " WHERE status = 'succeeded'")[0][0] == n,
                  30 * hh.SLOW, message="every delivery succeeded after the restart")
    seen = ids_at_sink(sink, "/slow")
    assert set(mids) <= set(seen), f"never delivered: {set(mids) - set(seen)}"
    # Sent twice only where the killed process's lease expired with the send in flight.
    assert sum(seen.values()) - n <= leased
    assert h2.sql("SELECT count(*) FROM hookd.deliveries WHERE leased_by IS NOT NULL")[0][0] == 0


def test_two_processes_share_the_work(pg, hookd_factory, sink):
    n = 400
    a = fresh(pg, hookd_factory, name="pair")
    b = sibling(hookd_factory, a)
    create_webhook(a, sink.url("/pair"))
    hh.wait_until(lambda: b.sql("SELECT count(*) FROM hookd.subscriptions")[0][0] == 1, 5)
    time.sleep(0.3)  # both caches have it
    # Publish through both, so that both are woken directly and by NOTIFY.
    mids = [publish(a if i % 2 else b, data={"n": i}) for i in range(n)]
    hh.wait_until(lambda: a.sql("SELECT count(*) FROM hookd.deliveries"
                                " WHERE status = 'succeeded'")[0][0] == n,
                  30 * hh.SLOW, message="every delivery succeeded")
    seen = ids_at_sink(sink, "/pair")
    assert set(seen) == set(mids)
    # The default lease (120 s) never expires here: nothing is sent twice.
    assert [m for m, c in seen.items() if c > 1] == []
    # Both took part.
    attempts_by = a.sql("SELECT count(*) FROM hookd.attempts")[0][0]
    assert attempts_by == n
    assert a.metric("hookd_deliveries_total", outcome="succeeded", default=0) > 0
    assert b.metric("hookd_deliveries_total", outcome="succeeded", default=0) > 0


def test_lease_lost_with_its_connection_is_handed_back(pg, hookd_factory, sink):
    """A lease whose connection broke may have committed: hookd hands back every row leased
    to it that it does not hold, instead of leaving them until the lease expires."""
    h = fresh(pg, hookd_factory, name="lost")
    wh = create_webhook(h, sink.url("/lost"))
    me = h.instance  # leased_by: host:pid:nonce, an opaque label
    # A row leased to this process for an hour that it never saw (what a lost lease leaves).
    h.sql("INSERT INTO hookd.messages (id, event_type, data) VALUES ('evt_orphan', 'x', '{}')")
    h.sql("INSERT INTO hookd.deliveries (id, message_id, subscription_id, leased_by,"
          " lease_until) VALUES (gen_random_uuid(), 'evt_orphan', %s, %s,"
          " now() + interval '1 hour')", wh["id"], me)
    # Make the next lease hang on a lock, then break its connection.
    locker = pg.connect(dbname=h.db, autocommit=False)
    locker.cursor().execute("LOCK TABLE hookd.messages IN ACCESS EXCLUSIVE MODE")
    try:
        h.sql("NOTIFY hookd_deliveries")
        pid = hh.wait_until(lambda: (lambda r: r[0][0] if r else None)(h.sql(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE 'WITH upd AS (UPDATE hookd.deliveries%%'")),
            5 * hh.SLOW, message="a lease waiting on the lock")
        h.sql("SELECT pg_terminate_backend(%s)", pid)
    finally:
        locker.rollback()
        locker.close()
    d = hh.wait_until(lambda: (lambda r: r if r[0] == "succeeded" else None)(
        h.sql("SELECT status::text FROM hookd.deliveries WHERE message_id = 'evt_orphan'")[0]),
        10 * hh.SLOW, message="the orphaned delivery handed back and sent")
    assert d
    assert [r["headers"]["webhook-id"] for r in sink.requests("/lost")] == ["evt_orphan"]
    h.wait_for_log(lambda ln: "handed back 1 delivery lease" in ln.get("msg", ""))


def test_a_process_that_cannot_unseal_the_secret_sends_nothing_unsigned(pg, hookd_factory,
                                                                        sink):
    """A process whose master key is not the one the secrets were sealed with (a second
    process set up without the shared key) must not send deliveries without signatures."""
    a = fresh(pg, hookd_factory, name="key")
    wh = create_webhook(a, sink.url("/key"))
    a.signal(signal.SIGTERM)
    assert a.wait_exit(15 * hh.SLOW) == 0
    b = hookd_factory(config=dict(a.config), db=a.db)  # a master key of its own
    mid = publish(b)
    d = wait_delivery(b, mid, "dead", 10)
    assert "could be unsealed" in d["last_error"]
    assert b.sql("SELECT count(*) FROM hookd.attempts")[0][0] == 0
    time.sleep(0.3)
    assert sink.count("/key") == 0
    # Replayed by a process with the right key, it goes out signed.
    b.signal(signal.SIGTERM)
    assert b.wait_exit(15 * hh.SLOW) == 0
    c = sibling(hookd_factory, a)
    assert c.post(f"/api/v1/deliveries/{d['id']}/replay", auth=True).status == 202
    wait_delivery(c, mid, "succeeded", 10)
    (req,) = sink.requests("/key")
    hdr = req["headers"]
    assert hdr["webhook-signature"] == standard_signatures(
        wh["secret"], mid, hdr["webhook-timestamp"], req["body"].encode())
