-- SPDX-License-Identifier: ISC
-- Change capture on partitioned tables: a row trigger on a partitioned table is cloned onto
-- every partition, and in a clone TG_TABLE_NAME is the partition's name (measurements_2025),
-- which no subscription to "measurements" matches. hookd.watch() now names the watched
-- table in the trigger's arguments, which the clones inherit, and the capture trigger
-- reports that name. Triggers made before this migration have no arguments and keep
-- reporting their own table.

CREATE OR REPLACE FUNCTION hookd.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s text := TG_TABLE_SCHEMA;
    t text := TG_TABLE_NAME;
BEGIN
    IF TG_NARGS = 2 THEN
        s := TG_ARGV[0];
        t := TG_ARGV[1];
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO hookd.changes (op, schema_name, table_name, record, old_record)
        VALUES (TG_OP, s, t, to_jsonb(NEW), NULL);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO hookd.changes (op, schema_name, table_name, record, old_record)
        VALUES (TG_OP, s, t, to_jsonb(NEW), to_jsonb(OLD));
    ELSE
        INSERT INTO hookd.changes (op, schema_name, table_name, record, old_record)
        VALUES (TG_OP, s, t, to_jsonb(OLD), to_jsonb(OLD));
    END IF;
    PERFORM pg_notify('hookd_changes', '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION hookd.watch(tbl regclass,
                                       ops text[] DEFAULT ARRAY['INSERT', 'UPDATE', 'DELETE'])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o text;
    events text := '';
    nsp text;
    rel text;
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
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    IF nsp = 'hookd' THEN
        RAISE EXCEPTION 'hookd.watch: % is one of hookd''s own tables', tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT has_table_privilege(tbl, 'TRIGGER') THEN
        RAISE EXCEPTION 'hookd.watch: % may not create triggers on %', current_user, tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- CREATE OR REPLACE TRIGGER (Postgres 14+) needs only the TRIGGER privilege; DROP
    -- TRIGGER needs the table's owner (see 008_capture_roles.sql).
    IF current_setting('server_version_num')::integer >= 140000 THEN
        EXECUTE format('CREATE OR REPLACE TRIGGER hookd_capture AFTER %s ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION hookd.capture(%L, %L)',
                       events, tbl, nsp, rel);
    ELSE
        EXECUTE format('DROP TRIGGER IF EXISTS hookd_capture ON %s', tbl);
        EXECUTE format('CREATE TRIGGER hookd_capture AFTER %s ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION hookd.capture(%L, %L)',
                       events, tbl, nsp, rel);
    END IF;
END
$$;

-- The watched tables: the partitions' cloned triggers are not watches of their own.
CREATE OR REPLACE VIEW hookd.watches AS
SELECT c.oid::regclass::text AS "table", n.nspname AS schema_name, c.relname AS table_name,
       array_remove(ARRAY[
           CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END,
           CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
           CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END], NULL) AS operations
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE t.tgname = 'hookd_capture' AND NOT t.tgisinternal AND t.tgparentid = 0;
