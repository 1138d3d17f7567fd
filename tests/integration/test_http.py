# SPDX-License-Identifier: ISC
"""HTTP basics: health and readiness, JSON errors (404, 405, 413, 401), admin keys on /metrics,
and a request id on every response."""

import pytest

import hookd_harness as hh

TWO_MIB = 2 * 1024 * 1024


def assert_json_error(r, status, code):
    assert r.status == status, f"expected {status}, got {r.status} {r.body!r}"
    assert "application/json" in r.headers.get("Content-Type", ""), r.headers
    assert isinstance(r.body, dict), r.body
    assert r.body.get("error") == code, r.body
    assert isinstance(r.body.get("message"), str) and r.body["message"], r.body


def test_healthz(module_hookd):
    r = module_hookd.get("/healthz")
    assert r.status == 200
    assert "application/json" in r.headers.get("Content-Type", "")
    assert r.body == {"status": "ok"}


def test_readyz_when_database_is_up(module_hookd):
    r = module_hookd.get("/readyz")
    assert r.status == 200, r.body
    assert r.body["status"] == "ready"


def test_unknown_route_is_a_json_404(module_hookd):
    assert_json_error(module_hookd.get("/no/such/route"), 404, "not_found")
    assert_json_error(module_hookd.post("/nothing-here", json={"a": 1}), 404, "not_found")


@pytest.mark.parametrize("method,path", [("POST", "/healthz"), ("DELETE", "/readyz"),
                                         ("PUT", "/healthz")])
def test_wrong_method_is_a_json_405_with_allow(module_hookd, method, path):
    r = module_hookd.request(method, path, body=b"")
    assert_json_error(r, 405, "method_not_allowed")
    allow = [m.strip() for m in r.headers.get("Allow", "").split(",")]
    assert "GET" in allow, r.headers


def test_two_mib_body_on_a_receiver_is_a_json_413(module_hookd):
    body = b'{"pad":"' + b"x" * (TWO_MIB - 10) + b'"}'
    r = module_hookd.post("/in/anything", body=body, headers={"Content-Type": "application/json"})
    assert_json_error(r, 413, "payload_too_large")


def test_two_mib_body_on_an_admin_route_is_a_json_413(module_hookd):
    r = module_hookd.post("/api/v1/events", body=b"y" * TWO_MIB, auth=True,
                          headers={"Content-Type": "application/json"})
    assert_json_error(r, 413, "payload_too_large")


def test_body_under_the_limit_is_not_413(module_hookd):
    r = module_hookd.post("/in/anything", body=b"z" * (512 * 1024),
                          headers={"Content-Type": "application/octet-stream"})
    assert r.status != 413, r.body


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/events", "/api/v1/sources",
                                  "/api/v1/no-such-resource"])
@pytest.mark.parametrize("authorization", [None, "Bearer hk_" + "A" * 43, "Bearer not-a-key",
                                           "Bearer ", "Basic aGVsbG86d29ybGQ="])
def test_admin_routes_need_a_valid_key(module_hookd, path, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_json_error(module_hookd.get(path, headers=headers), 401, "unauthorized")


def test_metrics_with_a_key_is_prometheus_text(module_hookd):
    module_hookd.get("/healthz")
    r = module_hookd.get("/metrics", auth=True)
    assert r.status == 200, r.body
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    text = r.body.decode()
    assert "# TYPE " in text
    samples = hh.parse_prometheus(text)
    assert any(k.startswith("hookd_") for k in samples), text[:2000]


def test_every_response_carries_a_request_id(module_hookd):
    h = module_hookd
    replies = [
        h.get("/healthz"),
        h.get("/readyz"),
        h.get("/no/such/route"),
        h.request("POST", "/healthz", body=b""),
        h.get("/metrics"),
        h.get("/metrics", auth=True),
        h.post("/in/anything", body=b"x" * TWO_MIB),
    ]
    ids = []
    for r in replies:
        rid = r.headers.get("X-Request-Id")
        assert rid, f"{r.status} reply without X-Request-Id: {dict(r.headers)}"
        ids.append(rid)
    assert len(set(ids)) == len(ids), ids


def test_first_start_on_a_new_database_is_quiet(pg, hookd_factory):
    """On an empty database the pool and the caches come up before the migrations have
    made the schema: that is expected, logged at info, and no line is a warning or an
    error. Ready once migrated, with every cache loaded."""
    pg.create_database("quiet_start")
    h = hookd_factory(db="quiet_start")
    assert h.get("/readyz").body["schema_version"] > 0
    # This process found the database empty and migrated it itself.
    assert any(str(line.get("msg", "")).startswith("schema at version")
               for line in h.log_lines()), h.log_text()[-2000:]
    r = h.get("/api/v1/sources", auth=True)
    assert r.status == 200, r
    loud = [line for line in h.log_lines() if line.get("level") in ("warn", "error")]
    assert loud == [], loud
