# SPDX-License-Identifier: ISC
"""The "publish" inbound handler: an inbound webhook becomes an outbound message that every
matching subscription receives, once, with the sender's JSON as the message's data."""

import json

import hookd_harness as hh
from outbound import create_webhook, fresh
from sink import sink  # noqa: F401  (fixture)


def make_source(h, **fields):
    r = h.post("/api/v1/sources", json=fields, auth=True)
    assert r.status == 201, r
    hh.wait_until(lambda: h.post(f"/in/{fields['slug']}", body=b"{}",
                                 headers={"Content-Type": "text/plain"}).status != 404,
                  5, message="source in the cache")


def test_inbound_event_is_published_to_matching_subscriptions(pg, hookd_factory, sink):
    h = fresh(pg, hookd_factory, name="inpub")
    hook = create_webhook(h, sink.url("/orders"), events=["order.*"])
    create_webhook(h, sink.url("/other"), events=["invoice.*"])
    make_source(h, slug="shop", dedupe_key="json:$.id",
                handler={"type": "publish", "event_type": "order.received"})

    raw = b'{"id":"o-1","zeta":1,"alpha":{"b":2,"a":1}}'
    r = h.post("/in/shop", body=raw, headers={"Content-Type": "application/json"})
    assert r.status == 202, r
    event_id = r.body["id"]
    message_id = "evt_" + event_id.replace("-", "")

    got = sink.wait_for(1, "/orders", timeout=10)[0]
    body = json.loads(got["body"])
    assert body["id"] == message_id and body["event"] == "order.received"
    assert body["data"] == {"id": "o-1", "zeta": 1, "alpha": {"b": 2, "a": 1}}
    # the sender's key order survives into the delivered bytes
    assert '"data":{"id":"o-1","zeta":1,"alpha":{"b":2,"a":1}}' in got["body"]
    headers = {k.lower(): v for k, v in got["headers"].items()}
    assert headers["webhook-id"] == message_id

    hh.wait_until(lambda: h.sql("SELECT status FROM hookd.events WHERE id = %s",
                                event_id)[0][0] == "processed", 5, message="event processed")
    result = h.sql("SELECT result FROM hookd.events WHERE id = %s", event_id)[0][0]
    assert result == {"message_id": message_id, "deliveries": 1}
    logs = h.sql("SELECT action, success, config->>'message_id' FROM hookd.event_logs"
                 " WHERE event_id = %s", event_id)
    assert logs == [("publish", True, message_id)]
    assert sink.count("/other") == 0

    # Reprocessing republishes nothing: the message id is the event's.
    assert h.post(f"/api/v1/inbound/events/{event_id}/reprocess", auth=True).status == 202
    hh.wait_until(lambda: h.sql("SELECT count(*) FROM hookd.event_logs WHERE event_id = %s"
                                " AND action = 'publish'", event_id)[0][0] == 2, 5,
                  message="reprocessed")
    assert h.sql("SELECT count(*) FROM hookd.messages WHERE origin = 'inbound'")[0][0] == 1
    assert h.sql("SELECT count(*) FROM hookd.deliveries WHERE message_id = %s",
                 message_id)[0][0] == 1
