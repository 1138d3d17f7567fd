-- SPDX-License-Identifier: ISC
-- hookd's data model: every table of DESIGN.md. Later migrations add columns, not tables.
-- Hot tables (events, deliveries, attempts, changes) carry no foreign keys and keep a
-- distribution key (source_id, subscription_id) so they can be partitioned and sharded.

CREATE TYPE hookd.event_status AS ENUM ('pending', 'processing', 'processed', 'failed');
CREATE TYPE hookd.delivery_status AS ENUM ('pending', 'succeeded', 'failed', 'dead');

-- Admin API keys: only a BLAKE2b hash of each key is stored.
CREATE TABLE hookd.api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    key_hash     text NOT NULL UNIQUE,
    prefix       text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{admin}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX api_keys_live_name ON hookd.api_keys (name) WHERE revoked_at IS NULL;

-- Inbound receivers.
CREATE TABLE hookd.sources (
    id                   uuid PRIMARY KEY,
    slug                 text NOT NULL UNIQUE CHECK (slug ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    name                 text NOT NULL DEFAULT '',
    description          text,
    verifier             jsonb NOT NULL DEFAULT '{"scheme": "none"}',
    secrets              jsonb NOT NULL DEFAULT '[]',   -- [{id, sealed, created_at, expires_at}]
    timestamp_tolerance  integer NOT NULL DEFAULT 300 CHECK (timestamp_tolerance >= 0),
    allowed_event_types  text[],
    max_body             integer CHECK (max_body > 0),
    rate_limit_per_sec   double precision CHECK (rate_limit_per_sec > 0),
    rate_limit_burst     integer CHECK (rate_limit_burst > 0),
    ip_allowlist         cidr[],
    dedupe_key           text,                          -- "header:Name" or "json:$.path"
    handler              jsonb NOT NULL DEFAULT '{"type": "store"}',
    review_required      boolean NOT NULL DEFAULT false,
    allowed_object_types text[],
    default_entity_table text,
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Inbound events, stored before the 2xx.
CREATE TABLE hookd.events (
    id              uuid PRIMARY KEY,
    source_id       uuid NOT NULL,
    external_id     text,
    event_type      text,
    payload         jsonb,
    raw_body        bytea NOT NULL,
    headers         jsonb NOT NULL DEFAULT '{}',
    status          hookd.event_status NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    leased_by       text,
    error           text,
    result          jsonb,
    entity_table    text,
    is_person       boolean,
    person_id       uuid,
    entity_id       uuid,
    ai_confidence   numeric,
    user_id         uuid,
    received_at     timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz
);
CREATE UNIQUE INDEX events_dedupe ON hookd.events (source_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX events_source_received ON hookd.events (source_id, received_at);
CREATE INDEX events_due ON hookd.events (next_attempt_at)
    WHERE status IN ('pending', 'processing');

-- One row per action applied to an inbound event.
CREATE TABLE hookd.event_logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid NOT NULL,
    source_id   uuid,
    action      text NOT NULL,
    config      jsonb,
    success     boolean NOT NULL,
    error       text,
    duration_ms double precision,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_logs_event ON hookd.event_logs (event_id);

-- Outbound endpoints.
CREATE TABLE hookd.subscriptions (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL,
    description             text,
    url                     text NOT NULL,
    secrets                 jsonb NOT NULL DEFAULT '[]',  -- [{id, sealed, created_at, expires_at}]
    enabled                 boolean NOT NULL DEFAULT true,
    events                  jsonb NOT NULL DEFAULT '["*"]',
    max_retries             integer NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 100),
    retry_backoff_seconds   double precision NOT NULL DEFAULT 1 CHECK (retry_backoff_seconds >= 0),
    retry_multiplier        double precision NOT NULL DEFAULT 2 CHECK (retry_multiplier >= 1),
    retry_max_delay_seconds double precision NOT NULL DEFAULT 60 CHECK (retry_max_delay_seconds >= 0),
    retry_jitter            double precision NOT NULL DEFAULT 0.1 CHECK (retry_jitter BETWEEN 0 AND 1),
    retry_schedule          double precision[],
    timeout_seconds         integer NOT NULL DEFAULT 30 CHECK (timeout_seconds BETWEEN 1 AND 300),
    headers                 jsonb NOT NULL DEFAULT '{}',
    signature_headers       text[] NOT NULL DEFAULT '{standard}',
    payload_format          text NOT NULL DEFAULT 'default',
    ip_allowlist            cidr[],
    api                     text NOT NULL DEFAULT 'v1',   -- the API that made it, for its reply shape
    failure_streak          integer NOT NULL DEFAULT 0,
    disabled_reason         text,
    disabled_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- Outbound events. data is json, not jsonb, so the publisher's key order survives.
CREATE TABLE hookd.messages (
    id         text PRIMARY KEY,                -- evt_..., stable across retries
    event_type text NOT NULL,
    data       json NOT NULL,
    origin     text NOT NULL DEFAULT 'api',     -- api | inbound | change | test | system
    origin_id  text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_created ON hookd.messages (created_at);

-- One per (message, subscription).
CREATE TABLE hookd.deliveries (
    id               uuid PRIMARY KEY,
    message_id       text NOT NULL,
    subscription_id  uuid NOT NULL,
    status           hookd.delivery_status NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    leased_by        text,
    last_status      integer,
    last_error       text,
    last_duration_ms double precision,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (message_id, subscription_id)
);
CREATE INDEX deliveries_due ON hookd.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_subscription ON hookd.deliveries (subscription_id, created_at DESC);
CREATE INDEX deliveries_dead ON hookd.deliveries (updated_at) WHERE status = 'dead';

-- One per HTTP try.
CREATE TABLE hookd.attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     uuid NOT NULL,
    subscription_id uuid NOT NULL,
    attempt         integer NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     double precision,
    status_code     integer,
    response_body   text,                        -- at most 16 KiB
    error           text
);
CREATE INDEX attempts_delivery ON hookd.attempts (delivery_id);
CREATE INDEX attempts_subscription ON hookd.attempts (subscription_id, started_at DESC);

-- Event types seen or declared (GET /api/v1/event-types).
CREATE TABLE hookd.event_types (
    name        text PRIMARY KEY,
    description text,
    declared    boolean NOT NULL DEFAULT false,
    first_seen  timestamptz,
    last_seen   timestamptz
);

-- The change-capture outbox, written by row triggers in the writer's transaction.
CREATE TABLE hookd.changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    op          text NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    schema_name text NOT NULL,
    table_name  text NOT NULL,
    record      jsonb,
    old_record  jsonb,
    changed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX changes_order ON hookd.changes (xid, id);

-- Where the change reader has got to: everything at or before (xid, change_id) is done.
CREATE TABLE hookd.capture_cursor (
    id         integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    xid        xid8 NOT NULL DEFAULT '0',
    change_id  bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO hookd.capture_cursor DEFAULT VALUES;
