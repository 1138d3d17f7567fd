-- SPDX-License-Identifier: ISC
-- Change capture for databases where hookd is not the only role: the capture trigger runs
-- as hookd's own role, watching needs only the TRIGGER privilege, and a table name never
-- means one of hookd's own tables.

-- The trigger runs in the writer's transaction, as the writer, who need not (and should
-- not) have any privilege on hookd's schema: without SECURITY DEFINER an application role
-- that may write a table could no longer write it once hookd watched it ("permission
-- denied for schema hookd"). search_path is pinned so that a writer cannot slip its own
-- functions or operators into code running as hookd's role.
ALTER FUNCTION hookd.capture() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION hookd.capture() FROM PUBLIC;

-- What a table name given by a user means. A qualified name is looked up as it is; an
-- unqualified one on the search path, but never in hookd's schema: when the database user
-- is named hookd, "$user" puts that schema first, and hookd has tables named events,
-- messages, deliveries, changes, ... A seed 004 subscription to the user's "events" table
-- must watch public.events.
CREATE FUNCTION hookd.watch_target(name text) RETURNS regclass
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t regclass;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'no table to watch' USING ERRCODE = 'undefined_table';
    END IF;
    IF strpos(name, '.') = 0 AND strpos(name, '"') = 0 THEN
        SELECT c.oid::regclass INTO t
          FROM unnest(current_schemas(false)) WITH ORDINALITY AS s(nsp, pos)
          JOIN pg_namespace n ON n.nspname = s.nsp
          JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = lower(name)
         WHERE s.nsp <> 'hookd'
         ORDER BY s.pos
         LIMIT 1;
    ELSE
        BEGIN
            t := to_regclass(name);
        EXCEPTION WHEN syntax_error OR invalid_name THEN
            t := NULL;  -- "a.b.c.d", "bad name": no such table either
        END;
    END IF;
    IF t IS NULL THEN
        RAISE EXCEPTION 'no table "%" to watch', name USING ERRCODE = 'undefined_table';
    END IF;
    RETURN t;
END
$$;

-- Watch a table: create or replace its capture trigger for the given operations.
-- Never one of hookd's own tables (a trigger on hookd.changes would recurse on every
-- change). CREATE OR REPLACE TRIGGER (Postgres 14+) needs only the TRIGGER privilege,
-- where DROP TRIGGER needs the table's owner, so a role granted TRIGGER can also change
-- the operations later.
CREATE OR REPLACE FUNCTION hookd.watch(tbl regclass,
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
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tbl
                                          AND c.relnamespace = 'hookd'::regnamespace) THEN
        RAISE EXCEPTION 'hookd.watch: % is one of hookd''s own tables', tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT has_table_privilege(tbl, 'TRIGGER') THEN
        RAISE EXCEPTION 'hookd.watch: % may not create triggers on %', current_user, tbl
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF current_setting('server_version_num')::integer >= 140000 THEN
        EXECUTE format('CREATE OR REPLACE TRIGGER hookd_capture AFTER %s ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION hookd.capture()', events, tbl);
    ELSE
        EXECUTE format('DROP TRIGGER IF EXISTS hookd_capture ON %s', tbl);
        EXECUTE format('CREATE TRIGGER hookd_capture AFTER %s ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION hookd.capture()', events, tbl);
    END IF;
END
$$;

-- Subscriptions resolve their table names as the watches API does (hookd.watch_target).
CREATE OR REPLACE FUNCTION hookd.subscription_watch() RETURNS trigger
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
        tbl := hookd.watch_target(f->>'table');
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
