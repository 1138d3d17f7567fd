-- SPDX-License-Identifier: ISC
-- Change capture, set-based: one capture step turns its batch of changes into messages and
-- deliveries with one statement, matching subscriptions once per (table, operation) of the
-- batch instead of once per change. Measured with 2 subscriptions, batches of 500: 250 us
-- per change before, 26 us after (docs/performance.md).
--
-- What it does is what 005's loop over hookd.publish() did: the same message ids, types,
-- data and origin; a message that already exists (ON CONFLICT) makes no deliveries; one
-- delivery per enabled matching subscription; event_types seen; NOTIFY hookd_deliveries
-- when there is something to deliver; and the cursor advanced in the same transaction.
-- hookd.event_matches, unchanged but in PL/pgSQL: a SQL function that cannot be inlined
-- (this one aggregates) has its body planned again in every statement that calls it, about
-- 50 us a call, per subscription, per publish; PL/pgSQL keeps the plan for the session.
-- hookd.publish() with 2 subscriptions: 300 us -> 105 us.
CREATE OR REPLACE FUNCTION hookd.event_matches(filter jsonb, p_type text, p_schema text,
                                               p_table text, p_op text)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (SELECT coalesce(bool_or(CASE
        WHEN jsonb_typeof(f) = 'string' AND p_table IS NULL THEN
            f #>> '{}' = '*'
            OR f #>> '{}' = p_type
            OR (right(f #>> '{}', 2) = '.*'
                AND p_type LIKE replace(replace(left(f #>> '{}', -1), '%', '\%'), '_', '\_') || '%')
        WHEN jsonb_typeof(f) = 'object' AND p_table IS NOT NULL THEN
            (f->>'table' = p_table OR f->>'table' = p_schema || '.' || p_table)
            AND (NOT f ? 'operations'
                 OR jsonb_typeof(f->'operations') <> 'array'
                 OR jsonb_array_length(f->'operations') = 0
                 OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(f->'operations') o
                            WHERE upper(o) = p_op OR o = '*'))
        ELSE false
    END), false)
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filter) = 'array' THEN filter
                                   ELSE '[]'::jsonb END) f);
END
$$;

-- Generic plans (planned once per session): the statement below is large, and planning it
-- afresh for every step (custom plans, which Postgres keeps choosing here) cost more than
-- running it when a step carries one or two changes. Its plan does not depend on the
-- values: an index scan of changes_order from the cursor, stopped by the LIMIT.
--
-- held: committed changes wait above the horizon, behind a transaction that is still open
-- (any transaction with an older xid, on any table). That transaction's end sends no
-- NOTIFY unless it too changed a watched table, so the reader looks again soon rather
-- than at its next poll.
DROP FUNCTION hookd.capture_step(integer);
CREATE FUNCTION hookd.capture_step(p_limit integer)
RETURNS TABLE (changes integer, messages integer, more boolean, held boolean)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    cur hookd.capture_cursor;
    -- Why the snapshot xmin: see 005_capture.sql. Every transaction below it has ended,
    -- so the changes below it are final and (xid, id) order never skips a late commit.
    horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    n integer;
    m integer;
    d integer;
    last_xid xid8;
    last_id bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('hookd.capture_step')) THEN
        RETURN QUERY SELECT 0, 0, false, false;
        RETURN;
    END IF;
    SELECT * INTO cur FROM hookd.capture_cursor WHERE id = 1 FOR UPDATE;
    WITH batch AS MATERIALIZED (
        SELECT ch.* FROM hookd.changes ch
         WHERE ch.xid < horizon AND (ch.xid, ch.id) > (cur.xid, cur.change_id)
         ORDER BY ch.xid, ch.id
         LIMIT p_limit
    ), msg AS (
        INSERT INTO hookd.messages (id, event_type, data, origin, origin_id, table_schema,
                                    table_name, op)
        SELECT 'evt_chg' || lpad(b.id::text, 25, '0'),
               b.schema_name || '.' || b.table_name || '.' || b.op,
               json_build_object('op', b.op, 'schema', b.schema_name, 'table', b.table_name,
                                 'record', b.record, 'old_record', b.old_record,
                                 'timestamp', b.changed_at),
               'change', b.id::text, b.schema_name, b.table_name, b.op
          FROM batch b
         ORDER BY b.xid, b.id
        ON CONFLICT (id) DO NOTHING
        RETURNING id, event_type, table_schema, table_name, op
    ), kinds AS (
        SELECT DISTINCT event_type, table_schema, table_name, op FROM msg
    ), subs AS MATERIALIZED (
        SELECT k.event_type, k.table_schema, k.table_name, k.op, s.id AS subscription_id
          FROM kinds k
          JOIN hookd.subscriptions s
            ON s.enabled
           AND hookd.event_matches(s.events, k.event_type, k.table_schema, k.table_name, k.op)
    ), dlv AS (
        INSERT INTO hookd.deliveries (id, message_id, subscription_id)
        SELECT gen_random_uuid(), msg.id, subs.subscription_id
          FROM msg JOIN subs USING (event_type, table_schema, table_name, op)
        RETURNING 1
    ), seen AS (
        INSERT INTO hookd.event_types (name, first_seen, last_seen)
        SELECT DISTINCT event_type, now(), now() FROM msg
        ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen
        RETURNING 1
    ), last AS (
        SELECT b.xid, b.id FROM batch b ORDER BY b.xid DESC, b.id DESC LIMIT 1
    )
    SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM msg),
           (SELECT count(*) FROM dlv), (SELECT xid FROM last), (SELECT id FROM last)
      INTO n, m, d, last_xid, last_id;
    IF n > 0 THEN
        UPDATE hookd.capture_cursor SET xid = last_xid, change_id = last_id, updated_at = now()
         WHERE id = 1;
    END IF;
    IF d > 0 THEN
        PERFORM pg_notify('hookd_deliveries', '');
    END IF;
    -- Held: the newest visible change is at or above the horizon. (Not EXISTS ... WHERE
    -- xid >= horizon: its generic plan is a sequential scan of the whole outbox.)
    RETURN QUERY SELECT n, m, n = p_limit,
        n < p_limit AND coalesce((SELECT ch.xid FROM hookd.changes ch
                                   ORDER BY ch.xid DESC LIMIT 1) >= horizon, false);
END
$$;
