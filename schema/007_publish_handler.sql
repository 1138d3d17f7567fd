-- SPDX-License-Identifier: ISC
-- The "publish" inbound handler: an inbound event becomes an outbound message (id
-- "evt_" + the event's uuid, so running it again publishes nothing new), run by the
-- process worker after the event's commit, with the same retries and logs as SQL
-- handlers.

CREATE FUNCTION hookd.publish_event(p_id uuid, p_me text, p_type text, p_delays_ms bigint[])
RETURNS TABLE (outcome text, attempt integer, delay_ms bigint, error text,
               duration_ms double precision)
LANGUAGE plpgsql AS $$
DECLARE
    ev hookd.events;
    p record;
    f record;
    msg text;
    dur double precision;
    data json;
    etype text;
    t0 timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO ev FROM hookd.events e
     WHERE e.id = p_id AND e.leased_by = p_me AND e.status = 'processing' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'lost'::text, NULL::integer, NULL::bigint, NULL::text,
                            NULL::double precision;
        RETURN;
    END IF;
    etype := coalesce(nullif(p_type, ''), ev.event_type, 'webhook.received');
    BEGIN
        -- A JSON body is republished as the sender wrote it (its key order); a form body
        -- as the object hookd made of it.
        data := CASE WHEN coalesce(ev.headers->>'content-type', '') ILIKE '%json%'
                     THEN convert_from(ev.raw_body, 'UTF8')::json
                     ELSE ev.payload::json END;
        SELECT * INTO p FROM hookd.publish('evt_' || replace(ev.id::text, '-', ''), etype,
                                           data, 'inbound', ev.id::text, NULL, NULL, NULL);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        dur := extract(epoch FROM clock_timestamp() - t0) * 1000;
        SELECT * INTO f FROM hookd.event_attempt_failed(p_id, p_me, 'publish', p_delays_ms,
                                                        msg, dur);
        RETURN QUERY SELECT f.outcome, f.attempt, f.delay_ms, msg, dur;
        RETURN;
    END;
    dur := extract(epoch FROM clock_timestamp() - t0) * 1000;
    UPDATE hookd.events SET status = 'processed', attempts = ev.attempts + 1,
           result = jsonb_build_object('message_id', p.message_id, 'deliveries', p.deliveries),
           error = NULL, processed_at = clock_timestamp(), next_attempt_at = NULL,
           lease_until = NULL, leased_by = NULL
     WHERE id = p_id;
    INSERT INTO hookd.event_logs (event_id, source_id, action, config, success, duration_ms)
    VALUES (p_id, ev.source_id, 'publish',
            jsonb_build_object('message_id', p.message_id, 'event_type', etype,
                               'deliveries', p.deliveries, 'attempt', ev.attempts + 1),
            true, dur);
    RETURN QUERY SELECT 'processed'::text, ev.attempts + 1, NULL::bigint, NULL::text, dur;
END
$$;
