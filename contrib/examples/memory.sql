-- SPDX-License-Identifier: ISC
-- Seed 001 (Webhook Implementation Guide): the background processing behind
-- POST /api/v1/webhooks/supabase and /notion, as a hookd SQL handler. hookd answers 202
-- once the event is committed; its worker then calls memory.process_webhook(event), with
-- retries (3 attempts: at once, after 2 s, after 4 s more). Load with
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f contrib/examples/memory.sql
-- Idempotent: safe to load again (tables are kept, functions replaced).

CREATE SCHEMA IF NOT EXISTS memory;

-- The cache the webhooks keep in step with Supabase tables and Notion databases.
CREATE TABLE IF NOT EXISTS memory.cache (
    source           text NOT NULL,          -- 'supabase' or 'notion'
    table_name       text NOT NULL,          -- Supabase table, or Notion database id
    record_id        text NOT NULL,
    data             jsonb NOT NULL,
    metadata         jsonb,
    last_event_type  text NOT NULL,          -- 'insert' or 'update'
    source_timestamp timestamptz,            -- the payload's timestamp, when it has one
    event_id         uuid,                   -- the hookd event that wrote this version
    version          integer NOT NULL DEFAULT 1,
    cached_at        timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, table_name, record_id)
);

-- A timestamp from the sender's text, or NULL when it is not one (never an error).
CREATE OR REPLACE FUNCTION memory.try_timestamptz(t text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN t::timestamptz;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- The handler hookd's worker calls. event is hookd's envelope {id, source, event_type,
-- external_id, payload, headers, received_at, attempt} where attempt counts the attempts
-- made before this one (0 the first time). Returns a summary that hookd stores as the
-- event's result, e.g. {"actions": ["data_verification", "cache_updated"], ...}. Raising
-- an error fails this attempt: hookd rolls back what it did and retries it later.
--
-- Event types are case-insensitive (Supabase triggers send TG_OP: INSERT, UPDATE, DELETE).
-- A payload may ask for failures to try the retry schedule out: with
-- "metadata": {"simulate_failures": n} the first n attempts raise.
CREATE OR REPLACE FUNCTION memory.process_webhook(event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := event->'payload';
    op text := lower(p->>'event_type');
    src text := p->>'source';
    tbl text := p->>'table_name';
    rid text := p->>'record_id';
    attempt integer := coalesce((event->>'attempt')::integer, 0) + 1;
    fail_first integer := 0;
    ts timestamptz := memory.try_timestamptz(p->>'timestamp');
    verification text;
    actions jsonb := '["data_verification"]';
    n integer;
BEGIN
    -- 1. Validation: the receiver checked the shape; a handler called some other way may not.
    IF src IS NULL OR tbl IS NULL OR rid IS NULL OR op IS NULL
       OR jsonb_typeof(p->'data') IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'memory.process_webhook: payload lacks source, table_name, record_id, '
                        'event_type or a data object';
    END IF;
    IF jsonb_typeof(p->'metadata'->'simulate_failures') = 'number' THEN
        fail_first := (p->'metadata'->>'simulate_failures')::numeric::integer;
    END IF;
    IF attempt <= fail_first THEN
        RAISE EXCEPTION 'simulated failure on attempt % (metadata.simulate_failures = %)',
            attempt, fail_first;
    END IF;

    -- 2. Verification: the record's own id, where it carries one, must be the record_id.
    verification := CASE
        WHEN NOT (p->'data' ? 'id') THEN 'no_id'
        WHEN p->'data'->>'id' = rid THEN 'ok'
        ELSE 'id_mismatch' END;

    -- 3. The cache. A change older than the cached version is not applied over it.
    IF op IN ('insert', 'update') THEN
        INSERT INTO memory.cache AS c (source, table_name, record_id, data, metadata,
                                       last_event_type, source_timestamp, event_id)
        VALUES (src, tbl, rid, p->'data', p->'metadata', op, ts, (event->>'id')::uuid)
        ON CONFLICT (source, table_name, record_id) DO UPDATE
           SET data = EXCLUDED.data, metadata = EXCLUDED.metadata,
               last_event_type = EXCLUDED.last_event_type,
               source_timestamp = EXCLUDED.source_timestamp, event_id = EXCLUDED.event_id,
               version = c.version + 1, updated_at = now()
         WHERE c.source_timestamp IS NULL OR EXCLUDED.source_timestamp IS NULL
            OR EXCLUDED.source_timestamp >= c.source_timestamp;
        GET DIAGNOSTICS n = ROW_COUNT;
        actions := actions || to_jsonb(CASE WHEN n > 0 THEN 'cache_updated'
                                            ELSE 'stale_update_ignored' END);
    ELSIF op = 'delete' THEN
        DELETE FROM memory.cache
         WHERE source = src AND table_name = tbl AND record_id = rid;
        actions := actions || '"cache_invalidated"'::jsonb;
    ELSE
        actions := actions || '"event_type_ignored"'::jsonb;
    END IF;

    RETURN jsonb_build_object(
        'actions', actions,
        'verification', verification,
        'source', src,
        'table_name', tbl,
        'record_id', rid,
        'event_type', op,
        'attempt', attempt);
END
$$;
