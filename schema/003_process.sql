-- SPDX-License-Identifier: ISC
-- Inbound processing: run a leased event's SQL handler and record the outcome in one call,
-- record a failed attempt, settle events no handler can run, and reprocess on request.
--
-- Why functions: a handler error must roll back the handler's own work but still commit
-- the attempt's bookkeeping (attempts, error, next_attempt_at, an event_logs row). A
-- plpgsql exception block is a subtransaction, so one round trip does both; from the
-- client it would take a second group after the first one aborted.

-- ISO 8601 UTC with milliseconds, the way hookd prints times ("2026-01-01T15:00:00.123Z").
CREATE FUNCTION hookd.iso8601(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- An event as the admin API shows it (json, so the keys keep this order).
CREATE FUNCTION hookd.event_json(e hookd.events, slug text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', e.id,
        'source', slug,
        'source_id', e.source_id,
        'external_id', e.external_id,
        'event_type', e.event_type,
        'status', e.status,
        'attempts', e.attempts,
        'error', e.error,
        'payload', e.payload,
        'headers', e.headers,
        'result', e.result,
        'received_at', hookd.iso8601(e.received_at),
        'processed_at', hookd.iso8601(e.processed_at),
        'next_attempt_at', hookd.iso8601(e.next_attempt_at))
$$;

-- One event_logs row as the admin API shows it.
CREATE FUNCTION hookd.event_log_json(l hookd.event_logs) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', l.id,
        'action', l.action,
        'config', l.config,
        'success', l.success,
        'error', l.error,
        'duration_ms', l.duration_ms,
        'at', hookd.iso8601(l.at))
$$;

-- Record a failed attempt of an event this process (p_me) leased: schedule the next one
-- after p_delays_ms[attempt] milliseconds, or fail the event when the array has no entry
-- for this attempt (the retries are used up). Returns (outcome, attempt, delay_ms) where
-- outcome is 'retry' or 'failed', or 'lost' when the event is no longer this process's.
CREATE FUNCTION hookd.event_attempt_failed(p_id uuid, p_me text, p_fn text,
                                           p_delays_ms bigint[], p_error text,
                                           p_duration_ms double precision)
RETURNS TABLE (outcome text, attempt integer, delay_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    ev hookd.events;
    n integer;
    delay bigint;
BEGIN
    SELECT * INTO ev FROM hookd.events e
     WHERE e.id = p_id AND e.leased_by = p_me AND e.status = 'processing' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'lost'::text, NULL::integer, NULL::bigint;
        RETURN;
    END IF;
    n := ev.attempts + 1;
    IF p_delays_ms IS NOT NULL AND n <= coalesce(array_length(p_delays_ms, 1), 0) THEN
        delay := p_delays_ms[n];
    END IF;
    IF delay IS NULL THEN
        UPDATE hookd.events SET status = 'failed', attempts = n, error = p_error,
               next_attempt_at = NULL, lease_until = NULL, leased_by = NULL,
               processed_at = clock_timestamp()
         WHERE id = p_id;
    ELSE
        UPDATE hookd.events SET status = 'pending', attempts = n, error = p_error,
               next_attempt_at = clock_timestamp() + delay * interval '1 millisecond',
               lease_until = NULL, leased_by = NULL
         WHERE id = p_id;
    END IF;
    INSERT INTO hookd.event_logs (event_id, source_id, action, config, success, error,
                                  duration_ms)
    VALUES (p_id, ev.source_id, 'sql', jsonb_build_object('function', p_fn, 'attempt', n),
            false, p_error, p_duration_ms);
    RETURN QUERY SELECT CASE WHEN delay IS NULL THEN 'failed' ELSE 'retry' END, n, delay;
END
$$;

-- Run the SQL handler p_fn on an event this process (p_me) leased, in one transaction:
-- on success store the result and mark it processed; on a handler error roll back only
-- the handler's work (a subtransaction) and record the failed attempt as
-- event_attempt_failed does. The event row stays locked while the handler runs, so a
-- lease that expires meanwhile cannot be taken over (other processes lease with SKIP
-- LOCKED). Returns (outcome, attempt, delay_ms, error, duration_ms) with outcome
-- 'processed', 'retry', 'failed' or 'lost' (not this process's lease any more: nothing ran).
CREATE FUNCTION hookd.process_event(p_id uuid, p_me text, p_fn text, p_slug text,
                                    p_delays_ms bigint[])
RETURNS TABLE (outcome text, attempt integer, delay_ms bigint, error text,
               duration_ms double precision)
LANGUAGE plpgsql AS $$
DECLARE
    ev hookd.events;
    res jsonb;
    msg text;
    dur double precision;
    f record;
    t0 timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO ev FROM hookd.events e
     WHERE e.id = p_id AND e.leased_by = p_me AND e.status = 'processing' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'lost'::text, NULL::integer, NULL::bigint, NULL::text,
                            NULL::double precision;
        RETURN;
    END IF;
    BEGIN
        res := hookd.call_handler(p_fn, hookd.event_envelope(ev, p_slug));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        dur := extract(epoch FROM clock_timestamp() - t0) * 1000;
        SELECT * INTO f FROM hookd.event_attempt_failed(p_id, p_me, p_fn, p_delays_ms, msg, dur);
        RETURN QUERY SELECT f.outcome, f.attempt, f.delay_ms, msg, dur;
        RETURN;
    END;
    dur := extract(epoch FROM clock_timestamp() - t0) * 1000;
    UPDATE hookd.events SET status = 'processed', attempts = ev.attempts + 1, result = res,
           error = NULL, processed_at = clock_timestamp(), next_attempt_at = NULL,
           lease_until = NULL, leased_by = NULL
     WHERE id = p_id;
    INSERT INTO hookd.event_logs (event_id, source_id, action, config, success, duration_ms)
    VALUES (p_id, ev.source_id, 'sql',
            jsonb_build_object('function', p_fn, 'attempt', ev.attempts + 1), true, dur);
    RETURN QUERY SELECT 'processed'::text, ev.attempts + 1, NULL::bigint, NULL::text, dur;
END
$$;

-- Settle a leased event that no handler can run (its source is gone, its handler is not
-- one the worker runs): set p_status (failed, or pending to wait for review) and log why.
-- Returns false when the event is no longer this process's.
CREATE FUNCTION hookd.event_unhandled(p_id uuid, p_me text, p_status hookd.event_status,
                                      p_error text, p_note jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    src uuid;
BEGIN
    UPDATE hookd.events SET status = p_status, error = p_error, next_attempt_at = NULL,
           lease_until = NULL, leased_by = NULL,
           processed_at = CASE WHEN p_status = 'failed' THEN clock_timestamp() END
     WHERE id = p_id AND leased_by = p_me AND status = 'processing'
    RETURNING source_id INTO src;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO hookd.event_logs (event_id, source_id, action, config, success, error)
    VALUES (p_id, src, 'unhandled', p_note, p_status <> 'failed', p_error);
    RETURN true;
END
$$;

-- Reprocess one event on an admin's request. With a source whose handler the worker runs
-- (sql, sql_sync, publish) the event becomes pending and due now with its attempts reset
-- (a fresh set under the current policy; the logs keep the history). With a store-only
-- source it is marked processed: the reviewer's "Process" of seed 002. Returns
-- 'queued', 'reviewed', 'not_found', 'busy' (a handler runs on it or its lease is live)
-- or 'no_source'.
CREATE FUNCTION hookd.reprocess_event(p_id uuid, p_by text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    ev hookd.events;
    htype text;
BEGIN
    SELECT * INTO ev FROM hookd.events e WHERE e.id = p_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        PERFORM 1 FROM hookd.events e WHERE e.id = p_id;
        RETURN CASE WHEN FOUND THEN 'busy' ELSE 'not_found' END;
    END IF;
    IF ev.status = 'processing' AND ev.lease_until > now() THEN
        RETURN 'busy';
    END IF;
    SELECT coalesce(s.handler->>'type', 'store') INTO htype
      FROM hookd.sources s WHERE s.id = ev.source_id;
    IF NOT FOUND THEN
        RETURN 'no_source';
    END IF;
    IF htype = 'store' THEN
        UPDATE hookd.events SET status = 'processed', error = NULL, next_attempt_at = NULL,
               lease_until = NULL, leased_by = NULL, processed_at = now()
         WHERE id = p_id;
        INSERT INTO hookd.event_logs (event_id, source_id, action, config, success)
        VALUES (p_id, ev.source_id, 'review',
                jsonb_build_object('by', p_by, 'previous_status', ev.status), true);
        RETURN 'reviewed';
    END IF;
    UPDATE hookd.events SET status = 'pending', attempts = 0, error = NULL,
           next_attempt_at = now(), lease_until = NULL, leased_by = NULL
     WHERE id = p_id;
    INSERT INTO hookd.event_logs (event_id, source_id, action, config, success)
    VALUES (p_id, ev.source_id, 'reprocess',
            jsonb_build_object('by', p_by, 'previous_status', ev.status,
                               'previous_attempts', ev.attempts, 'handler', htype), true);
    RETURN 'queued';
END
$$;

-- Reprocess every event of a status (and optionally one source, received since a time)
-- that is not being processed right now; returns how many were queued or reviewed.
CREATE FUNCTION hookd.reprocess_events(p_source uuid, p_status hookd.event_status,
                                       p_since timestamptz, p_by text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT e.id FROM hookd.events e
              WHERE e.status = p_status
                AND (p_source IS NULL OR e.source_id = p_source)
                AND (p_since IS NULL OR e.received_at >= p_since)
              ORDER BY e.received_at, e.id
    LOOP
        IF hookd.reprocess_event(r.id, p_by) IN ('queued', 'reviewed') THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
