# SPDX-License-Identifier: ISC
"""Postgres going away under a running hookd: readiness follows it, liveness does not, and the
pool and the LISTEN connection come back on their own."""

import time

import hookd_harness as hh

NOTIFY_METRIC = ("hookd_db_notifications_total", {"channel": "hookd_config"})


def notifications(h):
    name, labels = NOTIFY_METRIC
    return h.metric(name, default=0.0, **labels)


def notify_until_counted(h, timeout):
    """Send NOTIFY hookd_config until hookd's counter moves; returns how long it took."""
    before = notifications(h)
    start = time.monotonic()

    def counted():
        h.sql("NOTIFY hookd_config")
        return notifications(h) > before

    hh.wait_until(counted, timeout, interval=0.2, message="NOTIFY hookd_config counted by hookd")
    return time.monotonic() - start


def ready_status(h):
    return h.get("/readyz", timeout=5)


def readyz_is(h, status):
    """A wait_until probe: the /readyz reply once it has this status."""
    def probe():
        r = ready_status(h)
        return r if r.status == status else None
    return probe


def test_notify_reaches_hookd(hookd):
    notify_until_counted(hookd, 2)


def test_postgres_stop_and_start(pg, hookd):
    assert ready_status(hookd).status == 200
    assert hookd.admin_key  # made now: /metrics needs it later, and making it needs the database

    pg.stop("fast")
    stopped = time.monotonic()
    r = hh.wait_until(readyz_is(hookd, 503), 2, message="/readyz 503 after Postgres stopped")
    assert time.monotonic() - stopped <= 2
    assert r.body["status"] == "unavailable", r.body
    assert isinstance(r.body.get("reason"), str) and r.body["reason"], r.body
    health = hookd.get("/healthz")
    assert health.status == 200 and health.body == {"status": "ok"}
    assert hookd.alive()

    # a while down: repeated failed reconnects must not hurt
    time.sleep(1)
    assert ready_status(hookd).status == 503
    assert hookd.get("/healthz").status == 200

    pg.start()
    started = time.monotonic()
    hh.wait_until(readyz_is(hookd, 200), 5, message="/readyz 200 after Postgres came back")
    assert time.monotonic() - started <= 5
    assert hookd.alive()

    # the LISTEN connection is back too: a NOTIFY sent now is counted
    notify_until_counted(hookd, 5)
