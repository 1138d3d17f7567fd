# SPDX-License-Identifier: ISC
"""SIGHUP reloads all or nothing: a broken file keeps the running configuration (and says so
in the log); a valid change takes effect without a restart."""

import signal
import time

import pytest

import hookd_harness as hh


def body_status(h, size):
    return h.post("/in/anything", body=b"x" * size,
                  headers={"Content-Type": "application/octet-stream"}).status


def is_reload_error(line):
    return line.get("level") == "error" and "reload" in line.get("msg", "").lower()


@pytest.mark.parametrize("broken,why", [
    ({"no_such_key": "on"}, "no_such_key"),
    ({"db_pool_size": "banana"}, "db_pool_size"),
    ({"trusted_proxies": "10.0.0.0/8, 10.1.0.0/33"}, "trusted_proxies"),
    ({"outbound_allow_networks": "127.0.0.0/8, not-a-network"}, "outbound_allow_networks"),
    ({"listen": "127.0.0.1"}, "listen"),
], ids=["unknown-key", "bad-value", "bad-cidr", "bad-cidr-list", "bad-listen"])
def test_sighup_with_a_broken_file_keeps_serving_then_applies_a_good_one(hookd, broken, why):
    assert body_status(hookd, 4096) != 413

    # a broken file that would also lower the body limit: nothing of it may apply
    mark = hookd.log_mark()
    hookd.write_config(http_max_body_size="2KiB", **broken)
    hookd.signal(signal.SIGHUP)
    line = hookd.wait_for_log(is_reload_error, since=mark, timeout=5)
    assert why in line["msg"], f"the reload error does not say why: {line}"
    assert hookd.alive()
    assert hookd.get("/healthz").status == 200
    assert hookd.get("/readyz").status == 200
    assert body_status(hookd, 4096) != 413, "part of a broken configuration was applied"

    # the same change in a valid file applies
    hookd.write_config(**{k: None for k in broken})
    hookd.signal(signal.SIGHUP)
    hh.wait_until(lambda: body_status(hookd, 4096) == 413, 5,
                  message="4 KiB body refused after http_max_body_size = 2KiB")
    r = hookd.post("/in/anything", body=b"x" * 4096)
    assert r.status == 413 and r.body["error"] == "payload_too_large", r.body
    assert body_status(hookd, 1024) != 413
    assert hookd.get("/readyz").status == 200



LEVELS = ["error", "warn", "info", "debug"]


@pytest.mark.parametrize("flags,level", [([], "error"), (["-v"], "warn"), (["-v", "-v"], "info"),
                                         (["-vvv"], "debug"), (["-v"] * 5, "debug")])
def test_each_v_raises_the_log_level_by_one_also_after_a_reload(pg, test_root, flags, level):
    h = hh.Hookd(pg, test_root, config={"log_level": "error"}, args=flags)
    try:
        h.start()
        h.get("/healthz", headers={"X-Request-Id": "v-before"})
        time.sleep(0.3)
        before = h.log_lines()
        # log_level one step up in the file: each -v still adds one step on top of it
        mark = h.log_mark()
        h.write_config(log_level="warn")
        h.signal(signal.SIGHUP)
        time.sleep(1.0)
        h.get("/healthz", headers={"X-Request-Id": "v-after"})
        time.sleep(0.3)
        after = h.log_lines(mark)
    finally:
        h.finish()
    n = LEVELS.index(level)
    seen = {ln.get("level") for ln in before}
    assert seen <= set(LEVELS[:n + 1]), f"{flags}: lines above {level}: {seen}"
    started = any(" started (" in ln.get("msg", "") for ln in before)
    assert started == (n >= 2), f"{flags}: info start-up line shown: {started}"
    assert any(ln.get("req") == "v-before" for ln in before) == (n >= 2)
    if n == 3:
        assert "debug" in seen, seen
    n_after = min(3, LEVELS.index("warn") + len("".join(flags).replace("-", "")))
    assert any(ln.get("req") == "v-after" for ln in after) == (n_after >= 2), (flags, after)
