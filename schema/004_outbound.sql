-- SPDX-License-Identifier: ISC
-- Outbound: what a message says about the table change it came from (for {table,
-- operations} filters), subscription matching, and publish: one message and one delivery
-- per matching enabled subscription, in the caller's transaction.

ALTER TABLE hookd.messages
    ADD COLUMN table_schema text,
    ADD COLUMN table_name   text,
    ADD COLUMN op           text;   -- INSERT | UPDATE | DELETE for origin = 'change'

CREATE INDEX deliveries_subscription_status ON hookd.deliveries (subscription_id, status);

-- Does a subscription's events filter take this message? The filter is a JSON array of
-- event-type patterns ("order.created", "order.*", "*") and/or table objects
-- {"table": "users" | "public.users", "operations": ["INSERT", ...]}. Patterns match the
-- event types of published messages; table objects match change messages (p_table set)
-- only, so a "*" subscriber is not flooded with row changes it never asked for.
CREATE FUNCTION hookd.event_matches(filter jsonb, p_type text, p_schema text, p_table text,
                                    p_op text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(bool_or(CASE
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
                                   ELSE '[]'::jsonb END) f
$$;

-- Publish a message: idempotent on its id. Returns whether it was new and how many
-- deliveries it made. Wakes every hookd process with NOTIFY hookd_deliveries.
CREATE FUNCTION hookd.publish(p_id text, p_type text, p_data json, p_origin text,
                              p_origin_id text, p_schema text, p_table text, p_op text,
                              p_only uuid DEFAULT NULL)
RETURNS TABLE (message_id text, created boolean, deliveries integer, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := 0;
    t timestamptz;
BEGIN
    INSERT INTO hookd.messages (id, event_type, data, origin, origin_id, table_schema,
                                table_name, op)
    VALUES (p_id, p_type, p_data, p_origin, p_origin_id, p_schema, p_table, p_op)
    ON CONFLICT (id) DO NOTHING
    RETURNING messages.created_at INTO t;
    IF NOT FOUND THEN
        RETURN QUERY SELECT m.id, false,
            (SELECT count(*)::integer FROM hookd.deliveries d WHERE d.message_id = m.id),
            m.created_at
          FROM hookd.messages m WHERE m.id = p_id;
        RETURN;
    END IF;
    INSERT INTO hookd.deliveries (id, message_id, subscription_id)
    SELECT gen_random_uuid(), p_id, s.id
      FROM hookd.subscriptions s
     WHERE s.enabled
       AND (p_only IS NULL OR s.id = p_only)
       AND (p_only IS NOT NULL OR hookd.event_matches(s.events, p_type, p_schema, p_table, p_op));
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO hookd.event_types (name, first_seen, last_seen)
    VALUES (p_type, now(), now())
    ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen;
    IF n > 0 THEN
        PERFORM pg_notify('hookd_deliveries', '');
    END IF;
    RETURN QUERY SELECT p_id, true, n, t;
END
$$;
