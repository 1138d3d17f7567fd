# SPDX-License-Identifier: ISC
"""HTTP limits and the answers evhttp would give itself: bodies above its cap, header blocks
over http_max_header_size, malformed requests, unknown methods all get hookd's JSON error;
keep-alive, timeouts, http_max_connections, the access log and the /metrics families."""

import socket
import time

import pytest

import hookd_harness as hh

FIVE_MB = 5 * 1000 * 1000


def assert_json_error(r, status, code):
    assert r.status == status, f"expected {status}, got {r.status} {r.body!r}"
    assert r.headers.get("Content-Type", "") == "application/json", dict(r.headers)
    assert isinstance(r.body, dict), r.body
    assert set(r.body) == {"error", "message"}, r.body
    assert r.body["error"] == code, r.body
    assert isinstance(r.body["message"], str) and r.body["message"], r.body
    assert r.headers.get("X-Request-Id"), dict(r.headers)


def exchange(h, data, timeout=10):
    """Raw bytes in, the one response out; it must be the only thing on the wire."""
    raw = hh.raw_exchange(h.port, data, timeout=timeout)
    assert b"<HTML" not in raw.upper(), f"an HTML page reached the client: {raw[:400]!r}"
    r, rest = hh.parse_http_response(raw)
    assert rest == b"", f"bytes after the response: {rest[:200]!r}"
    return r


def access_lines(h, since, **match):
    return [ln for ln in h.log_lines(since) if ln.get("msg") == "request"
            and all(ln.get(k) == v for k, v in match.items())]


@pytest.fixture(scope="module")
def small(pg, test_root):
    """One hookd with a 2 KiB header limit, shared by the read-only tests."""
    h = hh.Hookd(pg, test_root, config={"http_max_header_size": "2KiB"})
    try:
        h.start()
        yield h
    finally:
        h.finish()


# --- evhttp's own refusals, rewritten -------------------------------------------------------

def test_a_body_above_the_http_layer_cap_is_a_json_413(small):
    mark = small.log_mark()
    head = (f"POST /in/anything HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {FIVE_MB}\r\n\r\n").encode()
    r = exchange(small, head + b"x" * FIVE_MB, timeout=30)
    assert_json_error(r, 413, "payload_too_large")
    assert "1048576" in r.body["message"], r.body
    assert r.headers.get("Connection") == "close", dict(r.headers)
    assert int(r.headers["Content-Length"]) == len(
        __import__("json").dumps(r.body, separators=(",", ":")).encode())
    lines = small.wait_for_log(lambda ln: ln.get("msg") == "request"
                               and ln.get("req") == r.headers["X-Request-Id"], since=mark)
    assert lines["status"] == 413 and lines["bytes"] > 0, lines


def test_a_five_mb_body_through_http_client_is_a_json_413(small):
    r = small.post("/in/anything", body=b"y" * FIVE_MB,
                   headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert_json_error(r, 413, "payload_too_large")


def test_a_header_block_over_the_limit_is_a_json_431(small):
    many = "".join(f"X-Pad-{i}: {'p' * 60}\r\n" for i in range(60))  # about 4 KiB
    r = exchange(small, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert_json_error(r, 431, "request_header_too_large")
    assert "2048" in r.body["message"], r.body
    assert r.headers.get("Connection") == "close"


def test_one_header_line_over_the_limit_is_a_json_431(small):
    r = exchange(small, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n")
    assert_json_error(r, 431, "request_header_too_large")


def test_a_request_line_over_the_limit_is_a_json_431(small):
    r = exchange(small, b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_json_error(r, 431, "request_header_too_large")


def test_headers_just_under_the_limit_are_served(small):
    r = exchange(small, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
                 + b"p" * 1500 + b"\r\n\r\n")
    assert r.status == 200, r


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nthis line has no colon\r\n\r\n",
    b"POST /in/anything HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n",
    b"\r\n",
], ids=["garbage", "version", "no-version", "header-no-colon", "bad-length", "empty-line"])
def test_a_malformed_request_is_a_json_400(small, data):
    mark = small.log_mark()
    r = exchange(small, data)
    assert_json_error(r, 400, "bad_request")
    line = small.wait_for_log(lambda ln: ln.get("req") == r.headers["X-Request-Id"], since=mark)
    assert line["status"] == 400 and line["method"] == "-", line


@pytest.mark.parametrize("line", [b"BREW /healthz HTTP/1.1", b"CONNECT example.com:443 HTTP/1.1"],
                         ids=["unknown", "connect"])
def test_an_unsupported_method_is_a_json_501(small, line):
    r = exchange(small, line + b"\r\nHost: x\r\n\r\n")
    assert_json_error(r, 501, "not_implemented")


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PATCH"])
def test_known_methods_reach_the_router(small, method):
    r = small.request(method, "/healthz")
    assert_json_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers.get("Allow", ""), dict(r.headers)


@pytest.mark.parametrize("second,status,code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n", 431,
     "request_header_too_large"),
    (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented"),
], ids=["garbage", "too-large", "method"])
def test_a_bad_request_after_a_good_one_on_the_same_connection(small, second, status, code):
    raw = hh.raw_exchange(small.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + second)
    assert b"<HTML" not in raw.upper(), raw[:600]
    first, rest = hh.parse_http_response(raw)
    assert first.status == 200, first
    r, rest = hh.parse_http_response(rest)
    assert rest == b""
    assert_json_error(r, status, code)


def test_an_unknown_expectation_is_a_json_417(small):
    r = exchange(small, b"POST /in/anything HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n"
                 b"Content-Length: 2\r\n\r\n{}")
    assert_json_error(r, 417, "expectation_failed")


def test_100_continue_passes_and_the_answer_follows(small):
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as s:
        s.sendall(b"POST /no/such HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 2\r\nConnection: close\r\n\r\n")
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        s.sendall(b"{}")
        raw = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    r, rest = hh.parse_http_response(raw)
    assert_json_error(r, 404, "not_found")


def test_refusals_are_counted_in_metrics(small):
    before = small.metric("hookd_http_requests_total", 0, route="unmatched", method="-",
                          status="400")
    for _ in range(3):
        exchange(small, b"GARBAGE\r\n\r\n")
    after = small.metric("hookd_http_requests_total", 0, route="unmatched", method="-",
                         status="400")
    assert after - before == 3, (before, after)


# --- keep-alive, timeouts, connections -------------------------------------------------------

def read_response(sock):
    """Read exactly one response (with a Content-Length) from a keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
    while len(data.split(b"\r\n\r\n", 1)[1]) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside a response body"
        data += chunk
    r, rest = hh.parse_http_response(data)
    assert rest == b""
    return r


def test_keep_alive_serves_several_requests_on_one_connection(small):
    mark = small.log_mark()
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as s:
        port = s.getsockname()[1]
        ids = []
        for i in range(5):
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: ka-{port}-{i}\r\n\r\n"
                      .encode())
            r = read_response(s)
            assert r.status == 200 and r.body == {"status": "ok"}, r
            assert r.headers.get("Connection") != "close"
            ids.append(r.headers["X-Request-Id"])
        assert ids == [f"ka-{port}-{i}" for i in range(5)]
        # pipelined: two requests in one write, two answers in order
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p1\r\n\r\n"
                  b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: p2\r\n\r\n")
        a, b = read_response(s), read_response(s)
        assert (a.status, a.headers["X-Request-Id"]) == (200, "p1")
        assert (b.status, b.headers["X-Request-Id"]) == (404, "p2")
    peers = {ln["peer"] for ln in access_lines(small, mark) if ln["req"].startswith("ka-")}
    assert peers == {"127.0.0.1"}, peers


@pytest.fixture
def quick(hookd_factory):
    return hookd_factory(config={"http_timeout": "1s"})


def closed_after(sock, limit):
    """Seconds until the server closes sock (reading whatever it sends), or None."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return time.monotonic() - t0, b""
    except ConnectionResetError:
        return time.monotonic() - t0, b""
    except socket.timeout:
        return None


def test_an_idle_keep_alive_connection_is_closed_at_the_timeout(quick):
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s).status == 200
        took = closed_after(s, 5)
        assert took is not None, "idle connection still open 5 s later (http_timeout = 1s)"
        assert 0.7 <= took[0] <= 3.0, took


def test_a_half_sent_header_is_closed_at_the_timeout(quick):
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        took = closed_after(s, 5)
        assert took is not None, "half-sent request still open 5 s later (http_timeout = 1s)"
        assert 0.7 <= took[0] <= 3.0, took
    assert quick.get("/healthz").status == 200


def test_the_connection_past_the_limit_waits_until_one_closes(hookd_factory):
    h = hookd_factory(config={"http_max_connections": "2"})
    held = [socket.create_connection(("127.0.0.1", h.port), timeout=10) for _ in range(2)]
    try:
        for s in held:  # both accepted and served
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s).status == 200
        hh.wait_until(lambda: h.log_lines() and any(
            "http_max_connections" in ln.get("msg", "") for ln in h.log_lines()), 5,
            message="the limit logged")
        third = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        try:
            third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            third.settimeout(1.0)
            with pytest.raises(socket.timeout):
                third.recv(1)  # the kernel accepted it; hookd has not
            held.pop().close()
            third.settimeout(5)
            assert read_response(third).status == 200
        finally:
            third.close()
    finally:
        for s in held:
            s.close()


# --- the access log and /metrics -------------------------------------------------------------

def test_one_access_line_per_request(small):
    mark = small.log_mark()
    small.get("/healthz", headers={"X-Request-Id": "acc-one"})
    small.post("/no/such/thing", body=b"12345", headers={"X-Request-Id": "acc-two"})
    time.sleep(0.2)
    for rid, method, path, status in [("acc-one", "GET", "/healthz", 200),
                                      ("acc-two", "POST", "/no/such/thing", 404)]:
        lines = [ln for ln in small.log_lines(mark) if ln.get("req") == rid]
        assert len(lines) == 1, lines
        ln = lines[0]
        assert ln["msg"] == "request" and ln["level"] == "info", ln
        assert (ln["method"], ln["path"], ln["status"]) == (method, path, status), ln
        assert isinstance(ln["bytes"], int) and ln["bytes"] > 0, ln
        assert isinstance(ln["ms"], (int, float)) and 0 <= ln["ms"] < 5000, ln
        assert ln["peer"] == "127.0.0.1", ln


def test_metrics_has_every_required_family(small):
    small.get("/healthz")
    small.get("/no/such/route")
    m = small.metrics()
    text = small.get("/metrics", auth=True).body.decode()

    def family(name, kind):
        assert f"# TYPE {name} {kind}" in text, f"no {kind} {name}"

    family("hookd_http_requests_total", "counter")
    assert m.get(hh.metric_key("hookd_http_requests_total", route="/healthz", method="GET",
                               status="200"), 0) >= 1, sorted(m)[:40]
    assert m.get(hh.metric_key("hookd_http_requests_total", route="unmatched", method="GET",
                               status="404"), 0) >= 1
    family("hookd_http_request_duration_seconds", "histogram")
    inf = hh.metric_key("hookd_http_request_duration_seconds_bucket", route="/healthz", le="+Inf")
    count = hh.metric_key("hookd_http_request_duration_seconds_count", route="/healthz")
    assert m.get(inf, 0) >= 1 and m[inf] == m[count], (m.get(inf), m.get(count))
    assert hh.metric_key("hookd_http_request_duration_seconds_sum", route="/healthz") in m
    family("hookd_db_connections", "gauge")
    for state in ("connecting", "ready", "down"):
        assert hh.metric_key("hookd_db_connections", state=state) in m, state
    assert m[hh.metric_key("hookd_db_connections", state="ready")] >= 1
    family("hookd_db_queries_total", "counter")
    assert m["hookd_db_queries_total"] >= 1
    family("hookd_db_errors_total", "counter")
    for kind in ("sql", "lost", "unavailable", "connect"):
        assert hh.metric_key("hookd_db_errors_total", kind=kind) in m, kind
