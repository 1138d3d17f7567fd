-- SPDX-License-Identifier: ISC
-- Inbound processing: where the event type comes from, the due-work index, and the
-- server-side helper that calls a source's SQL handler by name without the client ever
-- pasting a function name into SQL.

ALTER TABLE hookd.sources ADD COLUMN event_type_key text;  -- "header:Name" or "json:$.path"

-- Only events that have handler work waiting carry next_attempt_at.
DROP INDEX hookd.events_due;
CREATE INDEX events_due ON hookd.events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Call handler function fn (any "schema.name" resolvable to one function taking jsonb)
-- with the event envelope. regproc resolves and quotes the name, so format() is safe.
CREATE FUNCTION hookd.call_handler(fn text, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    proc regproc := fn::regproc;
    result jsonb;
BEGIN
    EXECUTE format('SELECT %s($1)::jsonb', proc) INTO result USING event;
    RETURN result;
END
$$;

-- The envelope a handler receives: the event with its source, type, payload and headers.
CREATE FUNCTION hookd.event_envelope(e hookd.events, slug text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', e.id,
        'source', slug,
        'event_type', e.event_type,
        'external_id', e.external_id,
        'payload', e.payload,
        'headers', e.headers,
        'received_at', e.received_at,
        'attempt', e.attempts)
$$;

-- The synchronous-handler path, in one statement: store the event, run the handler in the
-- same transaction, record the outcome and return the handler's answer. A handler error
-- rolls back only the handler's own work (a subtransaction); the event is kept as failed
-- and the sender gets a 500, so its retry (same dedupe key) runs the handler again. A
-- duplicate of a processed event gets the stored answer without running anything.
CREATE FUNCTION hookd.ingest_sync(p_id uuid, p_source uuid, p_slug text, p_external text,
                                  p_type text, p_payload jsonb, p_raw bytea, p_headers jsonb,
                                  p_fn text)
RETURNS TABLE (event_id uuid, duplicate boolean, answer jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    ev hookd.events;
    res jsonb;
    msg text;
    t0 timestamptz := clock_timestamp();
BEGIN
    INSERT INTO hookd.events (id, source_id, external_id, event_type, payload, raw_body,
                              headers, status)
    VALUES (p_id, p_source, p_external, p_type, p_payload, p_raw, p_headers, 'processing')
    ON CONFLICT (source_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING * INTO ev;
    IF NOT FOUND THEN
        SELECT * INTO ev FROM hookd.events e
         WHERE e.source_id = p_source AND e.external_id = p_external FOR UPDATE;
        IF ev.status <> 'failed' THEN
            RETURN QUERY SELECT ev.id, true, ev.result;
            RETURN;
        END IF;
    END IF;
    BEGIN
        res := hookd.call_handler(p_fn, hookd.event_envelope(ev, p_slug));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        UPDATE hookd.events SET status = 'failed', attempts = attempts + 1, error = msg,
               processed_at = now()
         WHERE id = ev.id;
        INSERT INTO hookd.event_logs (event_id, source_id, action, config, success, error,
                                      duration_ms)
        VALUES (ev.id, p_source, 'sql_sync', jsonb_build_object('function', p_fn), false, msg,
                extract(epoch FROM clock_timestamp() - t0) * 1000);
        RETURN QUERY SELECT ev.id, false,
            jsonb_build_object('status', 500, 'body',
                jsonb_build_object('error', 'handler_failed', 'message', msg));
        RETURN;
    END;
    UPDATE hookd.events SET status = 'processed', attempts = attempts + 1, result = res,
           error = NULL, processed_at = now()
     WHERE id = ev.id;
    INSERT INTO hookd.event_logs (event_id, source_id, action, config, success, duration_ms)
    VALUES (ev.id, p_source, 'sql_sync', jsonb_build_object('function', p_fn), true,
            extract(epoch FROM clock_timestamp() - t0) * 1000);
    RETURN QUERY SELECT ev.id, false, res;
END
$$;
