-- SPDX-License-Identifier: ISC
-- Change capture: a row trigger writes the outbox (hookd.changes) in the writer's own
-- transaction and wakes hookd with an empty NOTIFY; hookd.capture_step() turns committed
-- changes into messages, exactly one per change.

-- The trigger: one outbox row per changed row. DELETE carries the deleted row in both
-- record and old_record (seed 004). The NOTIFY has no payload, so no row is ever too big
-- for it (8000-byte limit); Postgres folds repeats within a transaction into one.
CREATE FUNCTION hookd.capture() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO hookd.changes (op, schema_name, table_name, record, old_record)
        VALUES (TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(NEW), NULL);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO hookd.changes (op, schema_name, table_name, record, old_record)
        VALUES (TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(NEW), to_jsonb(OLD));
    ELSE
        INSERT INTO hookd.changes (op, schema_name, table_name, record, old_record)
        VALUES (TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(OLD), to_jsonb(OLD));
    END IF;
    PERFORM pg_notify('hookd_changes', '');
    RETURN NULL;
END
$$;

-- Watch a table: (re)create its capture trigger for the given operations.
CREATE FUNCTION hookd.watch(tbl regclass,
                            ops text[] DEFAULT ARRAY['INSERT', 'UPDATE', 'DELETE'])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o text;
    events text := '';
BEGIN
    IF ops IS NULL OR cardinality(ops) = 0 THEN
        RAISE EXCEPTION 'hookd.watch: give at least one of INSERT, UPDATE, DELETE';
    END IF;
    FOREACH o IN ARRAY (SELECT array_agg(DISTINCT upper(x)) FROM unnest(ops) x) LOOP
        IF o NOT IN ('INSERT', 'UPDATE', 'DELETE') THEN
            RAISE EXCEPTION 'hookd.watch: % is not INSERT, UPDATE or DELETE', o;
        END IF;
        events := events || CASE WHEN events = '' THEN '' ELSE ' OR ' END || o;
    END LOOP;
    IF NOT has_table_privilege(tbl, 'TRIGGER') THEN
        RAISE EXCEPTION 'hookd.watch: % may not create triggers on %', current_user, tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS hookd_capture ON %s', tbl);
    EXECUTE format('CREATE TRIGGER hookd_capture AFTER %s ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION hookd.capture()', events, tbl);
END
$$;

CREATE FUNCTION hookd.unwatch(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS hookd_capture ON %s', tbl);
END
$$;

-- The watched tables and their operations, read from the catalog.
CREATE VIEW hookd.watches AS
SELECT c.oid::regclass::text AS "table", n.nspname AS schema_name, c.relname AS table_name,
       array_remove(ARRAY[
           CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END,
           CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
           CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END], NULL) AS operations
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE t.tgname = 'hookd_capture' AND NOT t.tgisinternal;

-- Turn committed changes into messages. Only one process reads at a time (an advisory
-- lock held for this transaction); any may deliver.
--
-- Why the snapshot xmin: change ids are handed out in insertion order, but transactions
-- commit in any order, so a transaction with a lower xid or id may commit after a later
-- one has been read. Every transaction whose xid is below pg_snapshot_xmin() has ended,
-- committed or not, so the set of changes below it is final and can be read in
-- (xid, id) order without ever skipping one that commits late. The cursor advances in
-- the same transaction that writes the messages (and their deliveries): exactly one
-- message per change, across crashes and restarts.
CREATE FUNCTION hookd.capture_step(p_limit integer)
RETURNS TABLE (changes integer, messages integer, more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    cur hookd.capture_cursor;
    horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    c hookd.changes;
    n integer := 0;
    m integer := 0;
    p record;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('hookd.capture_step')) THEN
        RETURN QUERY SELECT 0, 0, false;
        RETURN;
    END IF;
    SELECT * INTO cur FROM hookd.capture_cursor WHERE id = 1 FOR UPDATE;
    FOR c IN
        SELECT * FROM hookd.changes ch
         WHERE ch.xid < horizon AND (ch.xid, ch.id) > (cur.xid, cur.change_id)
         ORDER BY ch.xid, ch.id
         LIMIT p_limit
    LOOP
        SELECT * INTO p FROM hookd.publish(
            'evt_chg' || lpad(c.id::text, 25, '0'),
            c.schema_name || '.' || c.table_name || '.' || c.op,
            json_build_object('op', c.op, 'schema', c.schema_name, 'table', c.table_name,
                              'record', c.record, 'old_record', c.old_record,
                              'timestamp', c.changed_at),
            'change', c.id::text, c.schema_name, c.table_name, c.op);
        n := n + 1;
        m := m + CASE WHEN p.created THEN 1 ELSE 0 END;
        cur.xid := c.xid;
        cur.change_id := c.id;
    END LOOP;
    IF n > 0 THEN
        UPDATE hookd.capture_cursor SET xid = cur.xid, change_id = cur.change_id,
               updated_at = now()
         WHERE id = 1;
    END IF;
    RETURN QUERY SELECT n, m, n = p_limit;
END
$$;

-- Retention: drop changes that are read and older than the given age.
CREATE FUNCTION hookd.capture_prune(keep interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cur hookd.capture_cursor;
    n integer;
BEGIN
    SELECT * INTO cur FROM hookd.capture_cursor WHERE id = 1;
    DELETE FROM hookd.changes ch
     WHERE (ch.xid, ch.id) <= (cur.xid, cur.change_id) AND ch.changed_at < now() - keep;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- A subscription whose events name {table, operations} makes hookd watch those tables, in
-- the transaction that writes the subscription: if a table does not exist or the database
-- user may not create triggers on it, the write fails and no half-made subscription is
-- left. A table's trigger covers the union of the operations asked for (never fewer than
-- it had: unwatching is explicit).
CREATE FUNCTION hookd.subscription_watch() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    f jsonb;
    tbl regclass;
    ops text[];
    have text[];
BEGIN
    IF NOT NEW.enabled OR jsonb_typeof(NEW.events) <> 'array' THEN
        RETURN NULL;
    END IF;
    FOR f IN SELECT e FROM jsonb_array_elements(NEW.events) e WHERE jsonb_typeof(e) = 'object'
    LOOP
        tbl := to_regclass(f->>'table');
        IF tbl IS NULL THEN
            RAISE EXCEPTION 'no table "%" to watch', f->>'table'
                USING ERRCODE = 'undefined_table';
        END IF;
        ops := ARRAY(SELECT DISTINCT upper(o) FROM jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(f->'operations') = 'array'
                      AND jsonb_array_length(f->'operations') > 0
                 THEN f->'operations' ELSE '["INSERT", "UPDATE", "DELETE"]' END) o);
        SELECT w.operations INTO have FROM hookd.watches w WHERE w."table" = tbl::text;
        IF have IS NOT NULL AND ops <@ have THEN
            CONTINUE;
        END IF;
        PERFORM hookd.watch(tbl, ARRAY(SELECT DISTINCT x FROM unnest(coalesce(have, '{}') || ops) x));
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_watch AFTER INSERT OR UPDATE OF events, enabled
    ON hookd.subscriptions FOR EACH ROW EXECUTE FUNCTION hookd.subscription_watch();
