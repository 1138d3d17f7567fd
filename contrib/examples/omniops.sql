-- SPDX-License-Identifier: ISC
-- Seed 000 (Customer Webhooks API): the business logic behind POST /api/webhooks/customer,
-- as hookd SQL handlers. hookd stores each webhook, then calls
-- omniops.handle_customer_webhook(event) in the same transaction; its answer
-- {"status": n, "body": {...}} is the HTTP reply. Load with
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f contrib/examples/omniops.sql
-- Idempotent: safe to load again (tables are kept, functions replaced).

CREATE SCHEMA IF NOT EXISTS omniops;

-- Scrape jobs, as the seed's scrape job manager keeps them.
CREATE TABLE IF NOT EXISTS omniops.scrape_jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain          text NOT NULL,
    job_type        text NOT NULL DEFAULT 'domain_scrape',
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    priority        integer NOT NULL DEFAULT 5,
    config          jsonb NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}',
    -- What made the job, so that a repeated webhook does not make it twice
    -- ("customer_config:<record id>", "domain:<record id>"); NULL for jobs made elsewhere.
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The processing queue: one entry per job.
CREATE TABLE IF NOT EXISTS omniops.job_queue (
    queue_id  text PRIMARY KEY,               -- queue_<unix seconds>_<9 random [0-9a-z]>
    job_id    uuid NOT NULL UNIQUE REFERENCES omniops.scrape_jobs (id) ON DELETE CASCADE,
    priority  integer NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);

-- Customer configurations as the webhooks report them (the seed's record shape).
CREATE TABLE IF NOT EXISTS omniops.customer_configs (
    id          text PRIMARY KEY,
    customer_id text,
    domain      text,
    settings    jsonb NOT NULL DEFAULT '{}',
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz,
    updated_at  timestamptz,
    synced_at   timestamptz NOT NULL DEFAULT now()
);

-- Domain profiles, made and updated by "domains" change webhooks.
CREATE TABLE IF NOT EXISTS omniops.domains (
    id                text PRIMARY KEY,          -- the domain record's id
    domain            text NOT NULL,
    customer_id       text,
    is_valid          boolean NOT NULL,
    status            text NOT NULL,            -- 'active' or 'invalid'
    settings          jsonb NOT NULL DEFAULT '{}',
    metadata          jsonb NOT NULL DEFAULT '{}',
    last_validated_at timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- JavaScript truthiness of a JSON value (the seed's `if (payload.event)`).
CREATE OR REPLACE FUNCTION omniops.truthy(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN v <> '""'::jsonb
        WHEN 'number' THEN v <> '0'::jsonb
        WHEN 'boolean' THEN v = 'true'::jsonb
        WHEN 'object' THEN true
        WHEN 'array' THEN true
        ELSE false
    END
$$;

-- A timestamp from the sender's text, or NULL when it is not one (never an error).
CREATE OR REPLACE FUNCTION omniops.try_timestamptz(t text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN t::timestamptz;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- A handler answer.
CREATE OR REPLACE FUNCTION omniops.reply(status integer, body jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('status', status, 'body', body)
$$;

-- queue_<unix seconds>_<9 characters of [0-9a-z]>, like the seed's "queue_1640995200_abc123def".
CREATE OR REPLACE FUNCTION omniops.new_queue_id() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'queue_' || floor(extract(epoch FROM clock_timestamp()))::bigint || '_' ||
           string_agg(substr('0123456789abcdefghijklmnopqrstuvwxyz',
                             1 + floor(random() * 36)::int, 1), '')
      FROM generate_series(1, 9)
$$;

-- Scrape job notification: the job must exist and be pending; queue it (once) and say where.
CREATE OR REPLACE FUNCTION omniops.process_scrape_job_webhook(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    jid text := p->>'job_id';
    job omniops.scrape_jobs;
    qid text;
BEGIN
    IF jid ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        -- The row lock makes concurrent notifications for one job queue it once.
        SELECT * INTO job FROM omniops.scrape_jobs
         WHERE id = jid::uuid AND status = 'pending' FOR UPDATE;
    END IF;
    IF job.id IS NULL THEN
        RETURN omniops.reply(404, jsonb_build_object(
            'error', 'Job not found or not pending',
            'job_id', p->'job_id'));
    END IF;
    BEGIN
        SELECT q.queue_id INTO qid FROM omniops.job_queue q WHERE q.job_id = job.id;
        IF qid IS NULL THEN
            INSERT INTO omniops.job_queue (queue_id, job_id, priority)
            VALUES (omniops.new_queue_id(), job.id, job.priority)
            RETURNING queue_id INTO qid;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'omniops: cannot queue job %: %', job.id, SQLERRM;
        RETURN omniops.reply(500, jsonb_build_object(
            'error', 'Failed to queue job',
            'job_id', p->'job_id',
            'details', 'Queue system temporarily unavailable'));
    END;
    RETURN omniops.reply(200, jsonb_build_object(
        'success', true,
        'message', 'Job queued for processing',
        'job_id', p->'job_id',
        'queue_id', qid));
END
$$;

-- The seed's createInitialScrapeJob, keyed on the config record's id: true when it made
-- the job, false when the job for this config exists already.
CREATE OR REPLACE FUNCTION omniops.create_initial_scrape_job(config jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    max_pages jsonb := config->'settings'->'max_pages';
    meta jsonb;
    made uuid;
BEGIN
    meta := jsonb_build_object('source', 'webhook',
                               'customer_id', config->'customer_id',
                               'trigger', 'new_customer_config');
    IF NOT config ? 'customer_id' THEN
        meta := meta - 'customer_id';  -- JSON.stringify drops undefined members
    END IF;
    INSERT INTO omniops.scrape_jobs (domain, job_type, status, priority, config, metadata,
                                     idempotency_key)
    VALUES (config->>'domain', 'initial_scrape', 'pending', 6,
            jsonb_build_object('depth', 2,
                               'maxPages', CASE WHEN omniops.truthy(max_pages)
                                                THEN max_pages ELSE '50'::jsonb END,
                               'timeout', 30000),
            meta,
            'customer_config:' || (config->>'id'))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO made;
    RETURN made IS NOT NULL;
END
$$;

-- customer_configs changes: keep a copy; an INSERT with a domain makes the initial job.
CREATE OR REPLACE FUNCTION omniops.handle_customer_config_change(op text, rec jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(rec) = 'object' AND rec->>'id' IS NOT NULL THEN
        INSERT INTO omniops.customer_configs AS c (id, customer_id, domain, settings, metadata,
                                                   created_at, updated_at)
        VALUES (rec->>'id', rec->>'customer_id', rec->>'domain',
                CASE WHEN jsonb_typeof(rec->'settings') = 'object' THEN rec->'settings' ELSE '{}' END,
                CASE WHEN jsonb_typeof(rec->'metadata') = 'object' THEN rec->'metadata' ELSE '{}' END,
                omniops.try_timestamptz(rec->>'created_at'),
                omniops.try_timestamptz(rec->>'updated_at'))
        ON CONFLICT (id) DO UPDATE
           SET customer_id = EXCLUDED.customer_id, domain = EXCLUDED.domain,
               settings = EXCLUDED.settings, metadata = EXCLUDED.metadata,
               updated_at = EXCLUDED.updated_at, synced_at = now();
    END IF;
    IF op = 'INSERT' AND omniops.truthy(rec->'domain') THEN
        RETURN omniops.reply(200, jsonb_build_object(
            'message', 'Customer config webhook processed',
            'actions', jsonb_build_array(
                CASE WHEN omniops.create_initial_scrape_job(rec)
                     THEN 'Created initial scrape job'
                     ELSE 'Initial scrape job already exists' END)));
    END IF;
    RETURN omniops.reply(200, jsonb_build_object('message', 'Customer config webhook processed'));
END
$$;

-- domains changes: validate the name, keep the domain profile, schedule the first crawl once.
CREATE OR REPLACE FUNCTION omniops.handle_domain_change(op text, rec jsonb, old jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    name text := lower(coalesce(rec->>'domain', rec->>'name'));
    valid boolean;
    existed boolean;
    actions jsonb := '[]';
    job uuid;
BEGIN
    IF jsonb_typeof(rec) <> 'object' OR rec->>'id' IS NULL OR name IS NULL THEN
        RETURN omniops.reply(200, jsonb_build_object(
            'message', 'Domain webhook processed',
            'actions', jsonb_build_array('Ignored: the record has no id or domain')));
    END IF;
    -- "Validates domain accessibility": from SQL, that the name is a well-formed host name.
    valid := name ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$';
    SELECT true INTO existed FROM omniops.domains WHERE id = rec->>'id';
    INSERT INTO omniops.domains AS d (id, domain, customer_id, is_valid, status, settings, metadata)
    VALUES (rec->>'id', name, rec->>'customer_id', valid,
            CASE WHEN valid THEN 'active' ELSE 'invalid' END,
            CASE WHEN jsonb_typeof(rec->'settings') = 'object' THEN rec->'settings' ELSE '{}' END,
            CASE WHEN jsonb_typeof(rec->'metadata') = 'object' THEN rec->'metadata' ELSE '{}' END)
    ON CONFLICT (id) DO UPDATE
       SET domain = EXCLUDED.domain, customer_id = EXCLUDED.customer_id,
           is_valid = EXCLUDED.is_valid, status = EXCLUDED.status,
           settings = EXCLUDED.settings, metadata = EXCLUDED.metadata,
           last_validated_at = now(), updated_at = now();
    actions := actions || to_jsonb(CASE WHEN valid THEN 'Validated domain'
                                        ELSE 'Domain validation failed' END);
    actions := actions || to_jsonb(CASE WHEN existed THEN 'Updated domain profile'
                                        ELSE 'Created domain profile' END);
    IF op = 'UPDATE' AND old IS NOT NULL AND old->>'domain' IS DISTINCT FROM rec->>'domain' THEN
        actions := actions || '"Re-validated changed domain"'::jsonb;
    END IF;
    IF valid AND op = 'INSERT' THEN
        INSERT INTO omniops.scrape_jobs (domain, job_type, status, priority, config, metadata,
                                         idempotency_key)
        VALUES (name, 'domain_scrape', 'pending', 5,
                jsonb_build_object('depth', 2, 'maxPages', 50, 'timeout', 30000),
                jsonb_build_object('source', 'webhook', 'customer_id', rec->'customer_id',
                                   'trigger', 'new_domain'),
                'domain:' || (rec->>'id'))
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id INTO job;
        IF job IS NOT NULL THEN
            actions := actions || '"Scheduled initial crawl"'::jsonb;
        END IF;
    END IF;
    RETURN omniops.reply(200, jsonb_build_object('message', 'Domain webhook processed',
                                                 'actions', actions));
END
$$;

-- Database change event (Supabase trigger payload {type, table, record, old_record, schema}).
CREATE OR REPLACE FUNCTION omniops.process_database_webhook(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    op text := upper(p->>'type');
BEGIN
    CASE p->>'table'
        WHEN 'customer_configs' THEN
            RETURN omniops.handle_customer_config_change(op, p->'record');
        WHEN 'domains' THEN
            RETURN omniops.handle_domain_change(op, p->'record', p->'old_record');
        ELSE
            RETURN omniops.reply(200, jsonb_build_object(
                'message', format('Webhook for table %s not handled', p->>'table')));
    END CASE;
END
$$;

-- The handler hookd calls: the seed's WebhookProcessor.processWebhook. event is hookd's
-- envelope {id, source, event_type, external_id, payload, headers, received_at, attempt};
-- a bare payload works too (handy from psql). An error raised here fails the event: hookd
-- records it and answers the seed's 500 {"error": "Internal server error", ...}.
CREATE OR REPLACE FUNCTION omniops.handle_customer_webhook(event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := CASE WHEN event ? 'payload' AND event ? 'received_at' THEN event->'payload'
                    ELSE event END;
BEGIN
    IF jsonb_typeof(p) = 'object' AND omniops.truthy(p->'event') THEN
        RETURN omniops.process_scrape_job_webhook(p);
    ELSIF jsonb_typeof(p) = 'object' AND omniops.truthy(p->'type')
          AND omniops.truthy(p->'table') THEN
        RETURN omniops.process_database_webhook(p);
    END IF;
    RETURN omniops.reply(400, jsonb_build_object(
        'error', 'Unknown webhook format',
        'details', 'Payload does not match expected schemas'));
END
$$;
