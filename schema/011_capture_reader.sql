-- SPDX-License-Identifier: ISC
-- Change capture, hardened:
--   * the reader's lock is a row lock on hookd.capture_cursor, not an advisory lock in the
--     key space every application shares;
--   * a cursor (or outbox rows) ahead of this cluster's transaction counter, as after a
--     dump and restore into another cluster, is found and repaired instead of hiding every
--     new change for ever;
--   * retention deletes in short batches from the oldest change, one process at a time;
--   * which subscriptions would lose their changes if a table were unwatched;
--   * hookd's tables get statistics as they grow, so that a new database's plans do not
--     wait for autovacuum.

-- Taken by the process that prunes (FOR UPDATE SKIP LOCKED): one pruner at a time.
CREATE TABLE hookd.capture_janitor (
    id        integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    pruned_at timestamptz
);
INSERT INTO hookd.capture_janitor DEFAULT VALUES;

-- Repair a cursor or outbox from another cluster's transaction counter. The caller holds
-- the cursor's row lock. Returns NULL when there was nothing to repair, else what was done.
--
-- The cursor and hookd.changes.xid hold xid8 values of the cluster that wrote them. After
-- a dump and restore (or a move by logical replication) into a cluster whose counter is
-- lower, the cursor is above every new change, which would never be read, and outbox rows
-- above the counter would be held back (above the horizon) until it caught up. Every xid a
-- cluster has handed out is below the xmax of a snapshot taken now, and a visible row's
-- xid is its own committed transaction's, so a value at or above that xmax can only come
-- from elsewhere. Those rows are committed (a restore copies only committed rows), so they
-- are renumbered below every real xid (3 is the first normal one): 1 when the cursor had
-- read them, 2 when not; the cursor goes to (1, the last such row read). Changes of the old
-- cluster whose xid happens to be below the new counter are then read again: that makes no
-- second message, because a change's message id is 'evt_chg' and its change id, messages
-- are inserted ON CONFLICT (id) DO NOTHING, and deliveries are made only for messages that
-- insert returned (hookd.capture_step below). Messages deleted by hand since would be sent
-- again.
CREATE FUNCTION hookd.capture_rebase() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cur hookd.capture_cursor;
    next_xid xid8;
    top xid8;
    moved bigint;
    why text;
BEGIN
    SELECT * INTO cur FROM hookd.capture_cursor WHERE id = 1;
    -- One statement, one snapshot: its xmax and the newest xid it sees.
    SELECT pg_snapshot_xmax(s),
           (SELECT ch.xid FROM hookd.changes ch ORDER BY ch.xid DESC LIMIT 1)
      INTO next_xid, top
      FROM pg_current_snapshot() s;
    IF cur.xid < next_xid AND (top IS NULL OR top < next_xid) THEN
        RETURN NULL;
    END IF;
    UPDATE hookd.changes ch
       SET xid = CASE WHEN (ch.xid, ch.id) <= (cur.xid, cur.change_id) THEN '1'::xid8
                      ELSE '2'::xid8 END
     WHERE ch.xid >= pg_snapshot_xmax(pg_current_snapshot());
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved = 0 AND cur.xid < next_xid THEN
        RETURN NULL;  -- the newest row was a transaction that began after next_xid was read
    END IF;
    UPDATE hookd.capture_cursor
       SET xid = '1', change_id = coalesce((SELECT max(ch.id) FROM hookd.changes ch
                                             WHERE ch.xid = '1'), 0),
           updated_at = now()
     WHERE id = 1;
    why := format('the change cursor (xid %s, change %s) or the outbox (newest xid %s) was '
                  'ahead of this cluster''s transaction counter (next xid %s), as after a '
                  'restore into another cluster: %s outbox row(s) renumbered below it and the '
                  'cursor moved back; changes read again make no second message',
                  cur.xid, cur.change_id, coalesce(top::text, 'none'), next_xid, moved);
    RAISE WARNING 'hookd: %', why;
    RETURN why;
END
$$;

-- The reader, as in 009, with two changes. The lock: the cursor row, FOR UPDATE SKIP
-- LOCKED, held to the end of the step's transaction. A second reader finds it taken and
-- leaves; a reader that dies releases it with its session. An advisory lock keyed by
-- hashtext() shared the one key space of every application on the database, and an
-- unrelated pg_advisory_lock() with the same number would have stopped capture without a
-- word. And every step first checks that the cursor and the outbox belong to this cluster
-- (hookd.capture_rebase); reset says what was repaired, NULL when nothing was.
DROP FUNCTION hookd.capture_step(integer);
CREATE FUNCTION hookd.capture_step(p_limit integer)
RETURNS TABLE (changes integer, messages integer, more boolean, held boolean, reset text)
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
    why text;
BEGIN
    SELECT * INTO cur FROM hookd.capture_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 0, 0, false, false, NULL::text;
        RETURN;
    END IF;
    -- An index probe a step; the repair runs only when a check fails (and checks again).
    IF cur.xid >= pg_snapshot_xmax(pg_current_snapshot())
       OR coalesce((SELECT ch.xid FROM hookd.changes ch ORDER BY ch.xid DESC LIMIT 1)
                   >= pg_snapshot_xmax(pg_current_snapshot()), false) THEN
        why := hookd.capture_rebase();
        SELECT * INTO cur FROM hookd.capture_cursor WHERE id = 1;
    END IF;
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
        -- Only messages the insert above made: a change read again makes no delivery.
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
    -- Held: the newest visible change is at or above the horizon (an index probe; see 009).
    RETURN QUERY SELECT n, m, n = p_limit,
        n < p_limit AND coalesce((SELECT ch.xid FROM hookd.changes ch
                                   ORDER BY ch.xid DESC LIMIT 1) >= horizon, false),
        why;
END
$$;

-- Retention: delete changes that are read and older than keep, at most p_limit of them,
-- from the oldest change id; returns how many (p_limit: call again, there may be more).
--
-- Walking from the lowest id and stopping at the first change that must stay (too young,
-- or not read yet) costs what it deletes. The old form filtered every read change on
-- changed_at, which has no index: a walk over the whole retention window, millions of rows
-- at 1,000 changes/s with an hour kept, every minute, in every process. Ids and changed_at
-- are taken together when a row is written, so id order is age order (give or take
-- concurrent inserts); a change that may not go yet only delays the ones after it, until
-- it is read or old enough itself. Short batches matter for latency too: the pruning
-- transaction holds an xid, and capture reads nothing committed after it began until it
-- ends. One process prunes at a time (the janitor row, FOR UPDATE SKIP LOCKED); the others
-- return 0.
DROP FUNCTION hookd.capture_prune(interval);
CREATE FUNCTION hookd.capture_prune(keep interval, p_limit integer DEFAULT 1000)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    cur hookd.capture_cursor;
    cutoff timestamptz := now() - keep;
    lo bigint;
    hi bigint;
    stop bigint;
    n integer;
BEGIN
    PERFORM 1 FROM hookd.capture_janitor WHERE id = 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    SELECT * INTO cur FROM hookd.capture_cursor WHERE id = 1;
    SELECT min(h.id), max(h.id), min(h.id) FILTER (WHERE NOT h.done)
      INTO lo, hi, stop
      FROM (SELECT ch.id,
                   ch.changed_at < cutoff AND (ch.xid, ch.id) <= (cur.xid, cur.change_id) AS done
              FROM hookd.changes ch ORDER BY ch.id LIMIT p_limit) h;
    IF stop IS NOT NULL THEN
        hi := stop - 1;
    END IF;
    IF lo IS NULL OR hi < lo THEN
        RETURN 0;
    END IF;
    -- The range is the batch up to the first keeper; the conditions are checked again for
    -- a row that became visible in between (it can only be unread, and stays).
    DELETE FROM hookd.changes ch
     WHERE ch.id BETWEEN lo AND hi
       AND ch.changed_at < cutoff AND (ch.xid, ch.id) <= (cur.xid, cur.change_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE hookd.capture_janitor SET pruned_at = now() WHERE id = 1;
    RETURN n;
END
$$;

-- The enabled subscriptions that would receive some change of a table (DELETE
-- /api/v1/watches/{table} refuses to unwatch a table they still name).
CREATE FUNCTION hookd.watch_users(tbl regclass) RETURNS TABLE (id uuid, name text)
LANGUAGE sql STABLE AS $$
    SELECT s.id, s.name
      FROM hookd.subscriptions s, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl AND s.enabled
       AND EXISTS (SELECT 1 FROM unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) op
                    WHERE hookd.event_matches(s.events, n.nspname || '.' || c.relname || '.' || op,
                                              n.nspname, c.relname, op))
     ORDER BY s.name, s.id
$$;

-- Statistics for hookd's own tables as they grow; hookd calls this every second and it
-- returns how many tables it analyzed.
--
-- A new database's tables have no statistics until autovacuum first analyzes them (its
-- naptime is a minute, and it may be off). Meanwhile every session plans for nearly empty
-- tables, and keeps those plans (the generic plans of prepared statements and PL/pgSQL) as
-- the tables grow: on a new database the delivery worker's lease and write-back scanned
-- the whole of hookd.deliveries and hookd.messages for the first minute (docs/performance.md,
-- "cold"). An ANALYZE at start-up does not help (the tables are empty then; EXPLAIN shows
-- worse plans after it). This analyzes a table once it has 500 rows and twice the rows it
-- had at its last ANALYZE or VACUUM, which also makes every session plan again: no plan is
-- made for a table less than half its size, whatever autovacuum does. Past the first
-- minutes autovacuum's own threshold (10 % by default) comes first and this does nothing.
-- SKIP_LOCKED: a table being analyzed or vacuumed already is left alone; tables hookd's
-- role may not analyze are not tried.
--
-- Only the tables of the delivery path (deliveries, messages, changes), and only while
-- they are young (fewer than 100,000 rows at their last ANALYZE): past that their plans
-- no longer change with their size, and an ANALYZE samples 30,000 rows, which on a large
-- table (hookd.events with kilobyte bodies: half a second at 150,000 rows) costs a core
-- that ingest needs more.
CREATE FUNCTION hookd.analyze_grown() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t regclass;
    n integer := 0;
BEGIN
    FOR t IN
        SELECT s.relid::regclass
          FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.schemaname = 'hookd' AND c.relkind = 'r'
           AND s.relname IN ('deliveries', 'messages', 'changes')
           AND c.reltuples < 100000
           AND s.n_live_tup >= greatest(500, 2 * c.reltuples)
           AND pg_has_role(c.relowner, 'USAGE')
    LOOP
        EXECUTE format('ANALYZE (SKIP_LOCKED) %s', t);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
