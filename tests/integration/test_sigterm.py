# SPDX-License-Identifier: ISC
"""SIGTERM drains: the listener closes, requests in flight get their normal answers, exit 0."""

import signal
import threading
import time

import hookd_harness as hh


def lock_waiters(pg):
    return pg.sql("SELECT count(*) FROM pg_stat_activity "
                  "WHERE datname = 'hookd' AND wait_event_type = 'Lock'")[0][0]


def test_sigterm_when_idle_exits_0(hookd):
    hookd.signal(signal.SIGTERM)
    assert hookd.wait_exit(10 * hh.SLOW) == 0


def test_sigterm_lets_requests_in_flight_finish(pg, hookd):
    n = 3
    # /readyz reads hookd.schema_migrations: holding this lock makes every /readyz wait
    locker = pg.connect(autocommit=False)
    locker.cursor().execute("LOCK TABLE hookd.schema_migrations IN ACCESS EXCLUSIVE MODE")

    results = [None] * n
    sent = [threading.Event() for _ in range(n)]

    def client(i):
        try:
            results[i] = hh.http_request(hookd.port, "GET", "/readyz", timeout=60,
                                         sent=sent[i].set)
        except Exception as e:  # reported below, with the others
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for ev in sent:
            assert ev.wait(10), "request not sent"
        hh.wait_until(lambda: lock_waiters(pg) >= 1, 10,
                      message="hookd's query waiting on the lock")
        time.sleep(0.3)  # let hookd read every request off its socket
        assert results == [None] * n, f"answered while the table was locked: {results}"

        hookd.signal(signal.SIGTERM)
        hh.wait_until(lambda: not hookd.accepts_connections(), 5,
                      message="listener closed after SIGTERM")
        time.sleep(0.3)
        assert hookd.alive(), "hookd exited with requests in flight"
        assert all(t.is_alive() for t in threads), f"requests cut short: {results}"
    finally:
        locker.rollback()  # release the lock: the queries, then the requests, complete
        locker.close()
    for t in threads:
        t.join(30 * hh.SLOW)

    for i, r in enumerate(results):
        assert isinstance(r, hh.Reply), f"request {i}: {r!r}"
        # The normal answer: the check ran to completion while hookd drained.
        assert r.status == 200, r
        assert r.body["status"] == "ready", r.body
    assert hookd.wait_exit(10 * hh.SLOW) == 0


def test_second_sigterm_exits_at_once_with_status_1(pg, hookd):
    # hold a /readyz query on a lock so that the first SIGTERM has work to wait for
    locker = pg.connect(autocommit=False)
    locker.cursor().execute("LOCK TABLE hookd.schema_migrations IN ACCESS EXCLUSIVE MODE")
    results = [None]
    sent = threading.Event()

    def client():
        try:
            results[0] = hh.http_request(hookd.port, "GET", "/readyz", timeout=30,
                                         sent=sent.set)
        except Exception as e:  # a cut connection is an acceptable end here
            results[0] = e

    t = threading.Thread(target=client, daemon=True)
    try:
        t.start()
        assert sent.wait(10), "request not sent"
        hh.wait_until(lambda: lock_waiters(pg) >= 1, 10,
                      message="hookd's query waiting on the lock")
        hookd.signal(signal.SIGTERM)
        hh.wait_until(lambda: not hookd.accepts_connections(), 5,
                      message="listener closed after SIGTERM")
        time.sleep(0.5)
        assert hookd.alive(), "the first SIGTERM did not wait for the request in flight"

        hookd.expect_exit = 1
        t0 = time.monotonic()
        hookd.signal(signal.SIGTERM)
        rc = hookd.wait_exit(5)
        took = time.monotonic() - t0
        assert took < 1.0 * hh.SLOW, f"second SIGTERM took {took:.2f} s to exit"
        assert rc == 1, hh.describe_status(rc)
        assert any("second SIGTERM" in ln.get("msg", "") for ln in hookd.log_lines())
    finally:
        locker.rollback()
        locker.close()
    t.join(10)
    # the request in flight got an answer or a closed connection, never a hang
    assert not t.is_alive()
    r = results[0]
    if isinstance(r, hh.Reply):
        assert r.status == 503, r
