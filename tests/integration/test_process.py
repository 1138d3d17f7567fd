# SPDX-License-Identifier: ISC
"""Inbound processing: SQL handlers run after the commit, retried on the wheel at the
scheduled times, leased so that restarts and several processes neither lose nor repeat
work; and the admin routes that list, show and reprocess inbound events.

Each test gets a database of its own (migrated by the hookd it starts), so the worker of
one test never sees another test's events. Events are INSERTed the way the ingest path
stores them (status pending, next_attempt_at now() for sources with an SQL handler), and
sources are INSERTed directly: the worker reads a source's handler with its lease.
"""

import base64
import itertools
import json
import signal
import time
import uuid

import hookd_harness as hh

_dbs = itertools.count()


def fresh(pg, hookd_factory, **config):
    """A hookd on a new database of its own, polling often."""
    name = f"proc_{next(_dbs)}"
    pg.create_database(name)
    cfg = {"process_poll_interval": "100ms"}
    cfg.update(config)
    return hookd_factory(config=cfg, db=name)


def make_source(h, slug, handler):
    sid = str(uuid.uuid4())
    h.sql("INSERT INTO hookd.sources (id, slug, handler) VALUES (%s, %s, %s::jsonb)",
          sid, slug, json.dumps(handler))
    h.sql("NOTIFY hookd_config, 'sources'")
    return sid


def add_event(h, sid, payload=None, due=True, raw=None, event_type="test.event",
              headers=None):
    """Store an event as the ingest path does; returns its id."""
    eid = str(uuid.uuid4())
    payload = payload if payload is not None else {"hello": "world"}
    raw = raw if raw is not None else json.dumps(payload).encode()
    h.sql("INSERT INTO hookd.events (id, source_id, event_type, payload, raw_body, headers,"
          " next_attempt_at) VALUES (%s, %s, %s, %s::jsonb, %s, %s::jsonb,"
          " CASE WHEN %s THEN now() END)",
          eid, sid, event_type, json.dumps(payload), raw, json.dumps(headers or {}), due)
    return eid


def event(h, eid):
    rows = h.sql("SELECT status, attempts, error, result, next_attempt_at, lease_until,"
                 " leased_by, processed_at FROM hookd.events WHERE id = %s", eid)
    assert rows, f"event {eid} is gone"
    keys = ("status", "attempts", "error", "result", "next_attempt_at", "lease_until",
            "leased_by", "processed_at")
    return dict(zip(keys, rows[0]))


def logs(h, eid):
    rows = h.sql("SELECT action, success, error, config, at, duration_ms FROM hookd.event_logs"
                 " WHERE event_id = %s ORDER BY id", eid)
    keys = ("action", "success", "error", "config", "at", "duration_ms")
    return [dict(zip(keys, r)) for r in rows]


def wait_status(h, eid, status, timeout):
    return hh.wait_until(lambda: event(h, eid)["status"] == status, timeout,
                         message=f"event {eid} {status}")


# --- the worker ---------------------------------------------------------------------------

def test_fails_twice_then_succeeds_at_the_scheduled_times(pg, hookd_factory):
    """Seed 001: 3 attempts; attempt 2 after 2 s, attempt 3 after 4 s (the issue's check)."""
    h = fresh(pg, hookd_factory)
    # The envelope's "attempt" counts earlier attempts: 0 and 1 fail, 2 succeeds.
    h.sql("""CREATE FUNCTION public.flaky(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO public.flaky_side_effects VALUES ((ev->>'attempt')::int);
               IF (ev->>'attempt')::int < 2 THEN
                 RAISE EXCEPTION 'flaky failure on attempt %', ev->>'attempt';
               END IF;
               RETURN jsonb_build_object('ok', true, 'n', ev->'payload'->'n',
                                         'source', ev->'source');
             END $$""")
    h.sql("CREATE TABLE public.flaky_side_effects (attempt int)")
    sid = make_source(h, "sched", {"type": "sql", "function": "public.flaky"})
    eid = add_event(h, sid, {"n": 7})

    wait_status(h, eid, "processed", 20 * hh.SLOW)
    ev = event(h, eid)
    assert ev["attempts"] == 3
    assert ev["result"] == {"ok": True, "n": 7, "source": "sched"}
    assert ev["error"] is None and ev["next_attempt_at"] is None
    assert ev["lease_until"] is None and ev["leased_by"] is None
    assert ev["processed_at"] is not None

    lg = logs(h, eid)
    assert [(x["action"], x["success"]) for x in lg] == [("sql", False), ("sql", False),
                                                         ("sql", True)]
    assert [x["config"] for x in lg] == [{"function": "public.flaky", "attempt": n}
                                         for n in (1, 2, 3)]
    assert lg[0]["error"] == "flaky failure on attempt 0"
    assert lg[1]["error"] == "flaky failure on attempt 1"
    assert lg[2]["error"] is None
    assert all(x["duration_ms"] is not None and x["duration_ms"] >= 0 for x in lg)
    # The schedule the issue asks for (not a performance bound): ~2 s, then ~4 s.
    gap1 = (lg[1]["at"] - lg[0]["at"]).total_seconds()
    gap2 = (lg[2]["at"] - lg[1]["at"]).total_seconds()
    assert abs(gap1 - 2.0) <= 0.5, f"attempt 2 came {gap1:.3f} s after attempt 1"
    assert abs(gap2 - 4.0) <= 0.5, f"attempt 3 came {gap2:.3f} s after attempt 2"
    # A failed attempt's own work is rolled back; only the successful attempt's stays.
    assert h.sql("SELECT attempt FROM public.flaky_side_effects") == [(2,)]

    assert h.metric("hookd_inbound_processed_total", source="sched", outcome="retry") == 2
    assert h.metric("hookd_inbound_processed_total", source="sched", outcome="processed") == 1
    assert h.metric("hookd_inbound_handler_duration_seconds_count") == 3

    r = h.get(f"/api/v1/inbound/events/{eid}/logs", auth=True)
    assert r.status == 200
    assert [(x["action"], x["success"]) for x in r.body["data"]] == [
        ("sql", False), ("sql", False), ("sql", True)]


def test_always_failing_handler_fails_after_its_attempts(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    h.sql("""CREATE FUNCTION public.boom(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'boom: %', ev->'payload'->>'k'; END $$""")
    sid = make_source(h, "boom", {"type": "sql", "function": "public.boom",
                                  "backoff_seconds": 0.2, "multiplier": 1})
    eid = add_event(h, sid, {"k": "v"})

    wait_status(h, eid, "failed", 15 * hh.SLOW)
    ev = event(h, eid)
    assert ev["attempts"] == 3
    assert ev["error"] == "boom: v"
    assert ev["next_attempt_at"] is None and ev["lease_until"] is None
    assert ev["result"] is None
    lg = logs(h, eid)
    assert [(x["action"], x["success"], x["error"]) for x in lg] == [("sql", False, "boom: v")] * 3
    time.sleep(0.5)
    assert len(logs(h, eid)) == 3, "a failed event was tried again"
    assert h.metric("hookd_inbound_processed_total", source="boom", outcome="failed") == 1
    assert h.metric("hookd_inbound_processed_total", source="boom", outcome="retry") == 2


def test_missing_function_and_one_attempt_policy(pg, hookd_factory):
    """A handler naming no function fails like any handler error; max_attempts 1 means
    no retry."""
    h = fresh(pg, hookd_factory)
    sid = make_source(h, "nofn", {"type": "sql", "function": "public.nowhere",
                                  "max_attempts": 1})
    eid = add_event(h, sid)
    wait_status(h, eid, "failed", 10 * hh.SLOW)
    ev = event(h, eid)
    assert ev["attempts"] == 1
    assert "nowhere" in ev["error"]


def test_store_only_events_are_left_alone(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    sid = make_source(h, "keep", {"type": "store"})
    eid = add_event(h, sid, due=False)
    time.sleep(0.6)
    assert event(h, eid)["status"] == "pending"
    assert logs(h, eid) == []


def test_source_changed_to_store_or_deleted(pg, hookd_factory):
    """Due events whose source no longer has an SQL handler: back to review, or failed."""
    h = fresh(pg, hookd_factory)
    sid = make_source(h, "changed", {"type": "store"})
    gone = str(uuid.uuid4())
    e1 = add_event(h, sid)    # due, but its source stores only now
    e2 = add_event(h, gone)   # due, and its source was deleted
    wait_status(h, e2, "failed", 10 * hh.SLOW)
    assert "no longer exists" in event(h, e2)["error"]
    hh.wait_until(lambda: logs(h, e1), 10 * hh.SLOW, message="review note")
    ev = event(h, e1)
    assert ev["status"] == "pending" and ev["next_attempt_at"] is None
    assert ev["lease_until"] is None
    assert [(x["action"], x["success"]) for x in logs(h, e1)] == [("unhandled", True)]
    assert logs(h, e2)[0]["action"] == "unhandled" and logs(h, e2)[0]["success"] is False


def test_ingest_kicks_the_worker_and_retries_come_from_the_wheel(pg, hookd_factory):
    """With polling all but off, a stored event runs at once (the ingest's kick) and its
    retry runs on time (the timing wheel)."""
    h = fresh(pg, hookd_factory, process_poll_interval="10m")
    h.sql("""CREATE FUNCTION public.once_more(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN
               IF (ev->>'attempt')::int = 0 THEN RAISE EXCEPTION 'first try fails'; END IF;
               RETURN jsonb_build_object('got', ev->'payload');
             END $$""")
    make_source(h, "kicked", {"type": "sql", "function": "public.once_more",
                              "backoff_seconds": 0.3})

    def send():
        r = h.post("/in/kicked", json={"k": 1})
        return r if r.status == 202 else None  # 404 until the sources cache has it

    r = hh.wait_until(send, 10 * hh.SLOW, message="source loaded")
    eid = r.body["id"]
    wait_status(h, eid, "processed", 5 * hh.SLOW)
    ev = event(h, eid)
    assert ev["attempts"] == 2 and ev["result"] == {"got": {"k": 1}}
    lg = logs(h, eid)
    assert [x["success"] for x in lg] == [False, True]
    gap = (lg[1]["at"] - lg[0]["at"]).total_seconds()
    assert abs(gap - 0.3) <= 0.5


# --- leases: restarts and several processes ----------------------------------------------

def test_dead_process_lease_is_taken_over_after_it_expires(pg, hookd_factory):
    """A row leased by a process that died is left alone until its lease ends."""
    h = fresh(pg, hookd_factory)
    h.sql("""CREATE FUNCTION public.ok(ev jsonb) RETURNS jsonb LANGUAGE sql AS
             $$ SELECT jsonb_build_object('done', ev->'id') $$""")
    sid = make_source(h, "orphan", {"type": "sql", "function": "public.ok"})
    eid = str(uuid.uuid4())
    h.sql("INSERT INTO hookd.events (id, source_id, payload, raw_body, status, next_attempt_at,"
          " lease_until, leased_by) VALUES (%s, %s, '{}', '\\x7b7d', 'processing', now(),"
          " now() + interval '2 seconds', 'dead-host:1')", eid, sid)
    lease_until = event(h, eid)["lease_until"]
    time.sleep(1.0)
    ev = event(h, eid)
    assert ev["status"] == "processing" and ev["leased_by"] == "dead-host:1", ev
    wait_status(h, eid, "processed", 10 * hh.SLOW)
    ev = event(h, eid)
    assert ev["processed_at"] >= lease_until
    assert ev["result"] == {"done": eid}
    assert [(x["action"], x["success"]) for x in logs(h, eid)] == [("sql", True)]


def test_kill_9_during_a_handler_then_another_process_finishes(pg, hookd_factory):
    h = fresh(pg, hookd_factory, process_lease="2s")
    h.sql("CREATE SEQUENCE public.slow_calls")
    h.sql("CREATE TABLE public.slow_done (event_id uuid)")
    # The first call hangs (until its backend is terminated); later calls are quick.
    h.sql("""CREATE FUNCTION public.slow_once(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN
               IF nextval('public.slow_calls') = 1 THEN PERFORM pg_sleep(120); END IF;
               INSERT INTO public.slow_done VALUES ((ev->>'id')::uuid);
               RETURN '{"ok": true}';
             END $$""")
    sid = make_source(h, "slow", {"type": "sql", "function": "public.slow_once"})
    eid = add_event(h, sid)

    # Wait until the first call has taken its number and sleeps. process_event is active
    # from its first statement on: killing it before the nextval would hand the hanging
    # first call to the second process (a race that showed up on a loaded machine).
    def sleeping():
        return h.sql("SELECT a.pid FROM pg_stat_activity a, public.slow_calls c"
                     " WHERE a.datname = %s AND a.state = 'active' AND a.wait_event = 'PgSleep'"
                     " AND a.query LIKE '%%process_event%%' AND a.pid <> pg_backend_pid()"
                     " AND c.is_called", h.db)

    pids = hh.wait_until(sleeping, 10 * hh.SLOW, message="handler sleeping")
    ev = event(h, eid)
    assert ev["status"] == "processing" and ev["leased_by"] is not None
    h.kill9()
    # A dead client's backend would finish its statement and commit; to test the takeover,
    # end that transaction as a crash of the whole host would.
    for (pid,) in pids:
        h.sql("SELECT pg_terminate_backend(%s)", pid)

    h2 = hookd_factory(config={"process_poll_interval": "100ms", "process_lease": "2s"},
                       db=h.db)
    wait_status(h2, eid, "processed", 15 * hh.SLOW)
    ev = event(h2, eid)
    assert ev["attempts"] == 1  # the killed attempt left nothing behind
    assert h2.sql("SELECT count(*) FROM public.slow_done")[0][0] == 1
    assert [(x["action"], x["success"]) for x in logs(h2, eid)] == [("sql", True)]


def test_two_processes_share_the_work_exactly_once(pg, hookd_factory):
    cfg = {"process_batch": 5}
    a = fresh(pg, hookd_factory, **cfg)
    b = hookd_factory(config={"process_poll_interval": "100ms", **cfg}, db=a.db)
    a.sql("CREATE TABLE public.seen (event_id uuid, by text)")
    # The handler runs while the event is still leased: record which process leased it.
    a.sql("""CREATE FUNCTION public.count_it(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO public.seen SELECT e.id, e.leased_by FROM hookd.events e
                WHERE e.id = (ev->>'id')::uuid;
               PERFORM pg_sleep(0.005);
               RETURN '{}';
             END $$""")
    sid = make_source(a, "shared", {"type": "sql", "function": "public.count_it"})
    n = 200
    a.sql("INSERT INTO hookd.events (id, source_id, payload, raw_body, next_attempt_at)"
          " SELECT gen_random_uuid(), %s, jsonb_build_object('i', i), '\\x7b7d', now()"
          " FROM generate_series(1, %s) i", sid, n)

    hh.wait_until(lambda: a.sql("SELECT count(*) FROM hookd.events WHERE status = 'processed'"
                                )[0][0] == n, 60 * hh.SLOW, message="all events processed")
    total, distinct, procs = a.sql("SELECT count(*), count(DISTINCT event_id),"
                                   " count(DISTINCT by) FROM public.seen")[0]
    assert (total, distinct) == (n, n), "an event was handled twice or not at all"
    assert procs == 2, "one process did all the work"
    assert a.sql("SELECT count(*), bool_and(success) FROM hookd.event_logs")[0] == (n, True)
    assert a.sql("SELECT max(attempts) FROM hookd.events")[0][0] == 1


def test_sigterm_waits_for_a_running_handler(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    h.sql("""CREATE FUNCTION public.nap(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(1.5); RETURN '{"slept": true}'; END $$""")
    sid = make_source(h, "nap", {"type": "sql", "function": "public.nap"})
    eid = add_event(h, sid)
    hh.wait_until(lambda: event(h, eid)["status"] == "processing", 10 * hh.SLOW,
                  message="event leased")
    time.sleep(0.2)
    h.signal(signal.SIGTERM)
    assert h.wait_exit(20 * hh.SLOW) == 0
    ev = event(h, eid)
    assert ev["status"] == "processed" and ev["result"] == {"slept": True}


def test_sigterm_hands_back_events_not_yet_started(pg, hookd_factory):
    """Draining finishes the handler that runs and releases leased events that wait."""
    h = fresh(pg, hookd_factory, db_pool_size=2)  # one handler at a time
    h.sql("""CREATE FUNCTION public.nap2(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(1); RETURN '{}'; END $$""")
    sid = make_source(h, "nap2", {"type": "sql", "function": "public.nap2"})
    ids = [add_event(h, sid) for _ in range(3)]
    hh.wait_until(lambda: all(event(h, e)["status"] == "processing" for e in ids),
                  10 * hh.SLOW, message="all three leased")
    h.signal(signal.SIGTERM)
    assert h.wait_exit(20 * hh.SLOW) == 0
    evs = [event(h, e) for e in ids]
    assert sorted(e["status"] for e in evs) == ["pending", "pending", "processed"], evs
    for e in evs:
        assert e["lease_until"] is None and e["leased_by"] is None
        if e["status"] == "pending":
            assert e["attempts"] == 0 and e["next_attempt_at"] is not None


def test_a_handler_cancelled_by_statement_timeout_counts_as_a_failed_attempt(pg,
                                                                             hookd_factory):
    h = fresh(pg, hookd_factory, db_statement_timeout="1s")
    h.sql("""CREATE FUNCTION public.sloth(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(3); RETURN '{}'; END $$""")
    sid = make_source(h, "sloth", {"type": "sql", "function": "public.sloth",
                                   "max_attempts": 2, "backoff_seconds": 0.2})
    eid = add_event(h, sid)
    wait_status(h, eid, "failed", 15 * hh.SLOW)
    ev = event(h, eid)
    assert ev["attempts"] == 2 and "statement timeout" in ev["error"]
    assert [(x["action"], x["success"]) for x in logs(h, eid)] == [("sql", False)] * 2


# --- admin routes ----------------------------------------------------------------------

def test_list_get_and_logs_routes(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    s1 = make_source(h, "alpha", {"type": "store"})
    s2 = make_source(h, "beta", {"type": "store"})
    raw = b'{"a": 1,  "b": [true, null]}\n'
    ids = []
    for i in range(5):
        ids.append(add_event(h, s1 if i % 2 == 0 else s2, {"i": i}, due=False,
                             raw=raw if i == 0 else None, headers={"x-test": str(i)}))
        time.sleep(0.01)  # distinct received_at
    h.sql("UPDATE hookd.events SET status = 'failed', error = 'nope', attempts = 3"
          " WHERE id = %s", ids[2])

    r = h.get("/api/v1/inbound/events", auth=True)
    assert r.status == 200, r.body
    assert [e["id"] for e in r.body["data"]] == ids[::-1]
    e = r.body["data"][-1]
    assert set(e) >= {"id", "source", "source_id", "external_id", "event_type", "status",
                      "attempts", "error", "payload", "headers", "result", "received_at",
                      "processed_at", "next_attempt_at"}
    assert e["source"] == "alpha" and e["source_id"] == s1
    assert e["payload"] == {"i": 0} and e["headers"] == {"x-test": "0"}
    assert e["status"] == "pending" and e["attempts"] == 0 and e["result"] is None
    assert e["event_type"] == "test.event"
    assert e["received_at"].endswith("Z") and e["processed_at"] is None
    assert "raw_body" not in e

    r = h.get("/api/v1/inbound/events?source=alpha", auth=True)
    assert [e["id"] for e in r.body["data"]] == [ids[4], ids[2], ids[0]]
    r = h.get(f"/api/v1/inbound/events?source={s2}", auth=True)
    assert [e["id"] for e in r.body["data"]] == [ids[3], ids[1]]
    r = h.get("/api/v1/inbound/events?status=failed", auth=True)
    assert [(e["id"], e["error"], e["attempts"]) for e in r.body["data"]] == [(ids[2], "nope", 3)]
    r = h.get("/api/v1/inbound/events?source=alpha&status=pending", auth=True)
    assert [e["id"] for e in r.body["data"]] == [ids[4], ids[0]]

    # Keyset pagination: pages of 2 walk the whole list once.
    seen, before = [], None
    while True:
        q = "/api/v1/inbound/events?limit=2" + (f"&before={before}" if before else "")
        r = h.get(q, auth=True)
        assert r.status == 200
        seen += [e["id"] for e in r.body["data"]]
        before = r.body["next_before"]
        if before is None:
            break
    assert seen == ids[::-1]

    for bad in ("status=done", "limit=0", "limit=501", "limit=x", "before=nope"):
        r = h.get(f"/api/v1/inbound/events?{bad}", auth=True)
        assert r.status == 400 and r.body["error"] == "bad_request", (bad, r.body)
    r = h.get("/api/v1/inbound/events?source=nosuch", auth=True)
    assert r.status == 404 and r.body["error"] == "not_found"
    assert h.get("/api/v1/inbound/events").status == 401

    r = h.get(f"/api/v1/inbound/events/{ids[0]}", auth=True)
    assert r.status == 200
    assert r.body["id"] == ids[0] and r.body["payload"] == {"i": 0}
    assert base64.b64decode(r.body["raw_body"]) == raw
    assert h.get(f"/api/v1/inbound/events/{uuid.uuid4()}", auth=True).status == 404
    assert h.get("/api/v1/inbound/events/not-a-uuid", auth=True).status == 404

    r = h.get(f"/api/v1/inbound/events/{ids[0]}/logs", auth=True)
    assert r.status == 200 and r.body == {"data": []}
    r = h.get(f"/api/v1/inbound/events/{uuid.uuid4()}/logs", auth=True)
    assert r.status == 404 and r.body["error"] == "not_found"


def test_reprocess_a_failed_event(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    h.sql("""CREATE FUNCTION public.fixme(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'not yet'; END $$""")
    sid = make_source(h, "fixme", {"type": "sql", "function": "public.fixme", "max_attempts": 1})
    eid = add_event(h, sid, {"v": 1})
    wait_status(h, eid, "failed", 10 * hh.SLOW)

    h.sql("""CREATE OR REPLACE FUNCTION public.fixme(ev jsonb) RETURNS jsonb LANGUAGE sql AS
             $$ SELECT jsonb_build_object('fixed', ev->'payload'->'v') $$""")
    r = h.post(f"/api/v1/inbound/events/{eid}/reprocess", auth=True)
    assert r.status == 202, r.body
    assert r.body == {"id": eid, "status": "pending", "action": "reprocess"}
    wait_status(h, eid, "processed", 10 * hh.SLOW)
    ev = event(h, eid)
    assert ev["result"] == {"fixed": 1} and ev["error"] is None
    assert ev["attempts"] == 1  # reprocessing starts a fresh set of attempts
    lg = logs(h, eid)
    assert [(x["action"], x["success"]) for x in lg] == [("sql", False), ("reprocess", True),
                                                         ("sql", True)]
    assert lg[1]["config"]["previous_status"] == "failed"
    assert lg[2]["config"]["attempt"] == 1

    r = h.post(f"/api/v1/inbound/events/{uuid.uuid4()}/reprocess", auth=True)
    assert r.status == 404 and r.body["error"] == "not_found"
    assert h.post("/api/v1/inbound/events/x/reprocess", auth=True).status == 404
    assert h.post(f"/api/v1/inbound/events/{eid}/reprocess").status == 401


def test_reprocess_refuses_an_event_being_processed(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    sid = make_source(h, "busy", {"type": "store"})
    eid = str(uuid.uuid4())
    h.sql("INSERT INTO hookd.events (id, source_id, payload, raw_body, status, lease_until,"
          " leased_by) VALUES (%s, %s, '{}', '\\x7b7d', 'processing',"
          " now() + interval '1 hour', 'elsewhere:1')", eid, sid)
    r = h.post(f"/api/v1/inbound/events/{eid}/reprocess", auth=True)
    assert r.status == 409 and r.body["error"] == "conflict"
    assert event(h, eid)["status"] == "processing"
    # The same event with its lease expired (its process died) may be reprocessed.
    h.sql("UPDATE hookd.events SET lease_until = now() - interval '1 second' WHERE id = %s", eid)
    r = h.post(f"/api/v1/inbound/events/{eid}/reprocess", auth=True)
    assert r.status == 202 and r.body["status"] == "processed"


def test_reprocess_of_a_store_only_event_is_the_review_click(pg, hookd_factory):
    """Seed 002: a reviewer processes a queued event of a store-only source."""
    h = fresh(pg, hookd_factory)
    sid = make_source(h, "queue", {"type": "store"})
    eid = add_event(h, sid, due=False)
    r = h.post(f"/api/v1/inbound/events/{eid}/reprocess", auth=True)
    assert r.status == 202 and r.body == {"id": eid, "status": "processed", "action": "review"}
    ev = event(h, eid)
    assert ev["status"] == "processed" and ev["processed_at"] is not None
    assert [(x["action"], x["success"]) for x in logs(h, eid)] == [("review", True)]

    # Once the source gets an SQL handler, its queued events run through it.
    h.sql("""CREATE FUNCTION public.later(ev jsonb) RETURNS jsonb LANGUAGE sql AS
             $$ SELECT '{"later": true}'::jsonb $$""")
    h.sql("UPDATE hookd.sources SET handler = '{\"type\": \"sql\", \"function\": \"public.later\"}'"
          " WHERE id = %s", sid)
    e2 = add_event(h, sid, due=False)
    r = h.post(f"/api/v1/inbound/events/{e2}/reprocess", auth=True)
    assert r.status == 202 and r.body["status"] == "pending"
    wait_status(h, e2, "processed", 10 * hh.SLOW)
    assert event(h, e2)["result"] == {"later": True}


def test_bulk_reprocess(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    h.sql("CREATE TABLE public.switch (on_ boolean)")
    h.sql("INSERT INTO public.switch VALUES (false)")
    h.sql("""CREATE FUNCTION public.gated(ev jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN
               IF NOT (SELECT on_ FROM public.switch) THEN RAISE EXCEPTION 'gate closed'; END IF;
               RETURN '{"through": true}';
             END $$""")
    sid = make_source(h, "gated", {"type": "sql", "function": "public.gated", "max_attempts": 1})
    other = make_source(h, "other", {"type": "sql", "function": "public.gated",
                                     "max_attempts": 1})
    mine = [add_event(h, sid, {"i": i}) for i in range(4)]
    theirs = add_event(h, other)
    for eid in mine + [theirs]:
        wait_status(h, eid, "failed", 10 * hh.SLOW)
    h.sql("UPDATE public.switch SET on_ = true")

    for body, status, err, field in (({"status": "processing"}, 422, "validation_failed", "status"),
                                     ({"source": 5}, 422, "validation_failed", "source"),
                                     ({"since": "yesterday-ish"}, 422, "validation_failed",
                                      "since"),
                                     ([1], 422, "validation_failed", None),
                                     ({"source": "nosuch"}, 404, "not_found", None)):
        r = h.post("/api/v1/inbound/events/reprocess", json=body, auth=True)
        assert (r.status, r.body["error"], r.body.get("field")) == (status, err, field), \
            (body, r.body)
    r = h.post("/api/v1/inbound/events/reprocess", body=b"{nope",
               headers={"Content-Type": "application/json"}, auth=True)
    assert r.status == 400 and r.body["error"] == "invalid_json"
    r = h.post("/api/v1/inbound/events/reprocess",
               json={"source": "gated", "since": "2999-01-01T00:00:00Z"}, auth=True)
    assert r.status == 202 and r.body == {"count": 0}

    r = h.post("/api/v1/inbound/events/reprocess",
               json={"source": "gated", "status": "failed", "since": "2000-01-01T00:00:00Z"},
               auth=True)
    assert r.status == 202 and r.body == {"count": 4}
    for eid in mine:
        wait_status(h, eid, "processed", 10 * hh.SLOW)
    assert event(h, theirs)["status"] == "failed"
    # No body: every failed event.
    r = h.post("/api/v1/inbound/events/reprocess", auth=True)
    assert r.status == 202 and r.body == {"count": 1}
    wait_status(h, theirs, "processed", 10 * hh.SLOW)


def test_routes_answer_503_while_the_database_is_down(pg, hookd_factory):
    h = fresh(pg, hookd_factory)
    h.admin_key  # made while the database is up
    pg.stop()
    try:
        def down():
            r = h.get("/api/v1/inbound/events", auth=True)
            return r if r.status == 503 else None
        r = hh.wait_until(down, 15 * hh.SLOW, message="503 from the list route")
        assert r.body["error"] == "unavailable" and r.headers.get("Retry-After")
        r = h.post(f"/api/v1/inbound/events/{uuid.uuid4()}/reprocess", auth=True)
        assert r.status == 503
    finally:
        pg.start()
