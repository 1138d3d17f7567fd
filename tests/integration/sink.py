# SPDX-License-Identifier: ISC
"""The project's webhook receiver (contrib/sink/hookd-sink) for delivery tests.

A subscription's URL programs the sink through its query (see hookd-sink.c):
  status=503  fail=N&status=500  delay_ms=N  retry_after=S  location=URL  close=1
  body=TEXT  size=N  chunked=1
Every request is recorded and can be read back:

    s = Sink(test_root).start()          # or the `sink` fixture: `from sink import sink`
    url = s.url("/hook?fail=2&status=500")
    ...
    reqs = s.wait_for(3, path="/hook")   # [{"method", "path", "ms", "conn", "headers", "body"}]
    s.stats()                            # {"received", "by_path", "first_ms", "last_ms",
                                         #  "connections", "open", "max_open"}
    s.clear()
    s.finish()                           # SIGTERM; fails on a crash or a sanitizer report

Header names in records are lower case; bodies are text (bytes that are not UTF-8 show as
U+FFFD). The sink listens on 127.0.0.1, so hookd must allowlist 127.0.0.0/8.
"""

import json
import os
import signal
import subprocess
import tempfile
import urllib.parse

import pytest

import hookd_harness as hh

SINK_BIN = os.environ.get("HOOKD_SINK_BIN") or os.path.join(
    os.path.dirname(hh.HOOKD_BIN), "contrib", "sink", "hookd-sink")


class Sink:
    """One hookd-sink process on a free loopback port.

    tls: (cert_file, key_file) to serve HTTPS; records: how many requests to keep (0: only
    count them, for benchmarks)."""

    def __init__(self, root=None, tls=None, records=None):
        self.dir = tempfile.mkdtemp(prefix="sink-", dir=root or hh.TMP_BASE)
        self.out_path = os.path.join(self.dir, "sink.out")
        self.err_path = os.path.join(self.dir, "sink.err")
        self.tls = tls
        self.records = records
        self.port = None
        self.proc = None
        hh.LIVE.append(self)

    def start(self, timeout=10):
        if not os.access(SINK_BIN, os.X_OK):
            raise AssertionError(f"no sink at {SINK_BIN} (build with make, or set HOOKD_SINK_BIN)")
        argv = [SINK_BIN, "-p", "0", "-q"]
        if self.records is not None:
            argv += ["-n", str(self.records)]
        if self.tls:
            argv += ["--tls", self.tls[0], self.tls[1]]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

        def port():
            if self.proc.poll() is not None:
                raise AssertionError(f"sink exited with {self.proc.returncode}:\n"
                                     f"{hh.tail(self.err_path)}")
            with open(self.out_path) as f:
                for line in f:
                    if line.startswith("listening on "):
                        return int(line.split()[2])
            return None

        self.port = hh.wait_until(port, timeout * hh.SLOW, message="sink listening")
        return self

    # --- addresses

    @property
    def base_url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, path="/"):
        """The URL of path (with its query) on this sink."""
        return self.base_url + path

    # --- control endpoints (plain HTTP sinks only)

    def _control(self, method, path):
        if self.tls:
            raise AssertionError("control requests to a TLS sink: use a plain one")
        r = hh.http_request(self.port, method, path, timeout=10)
        if r.status != 200:
            raise AssertionError(f"sink {method} {path}: {r.status} {r.body!r}")
        return r.body if not isinstance(r.body, (bytes, bytearray)) else json.loads(r.body)

    def requests(self, path=None):
        """Recorded requests, oldest first; path: only those whose path starts with it."""
        q = "" if path is None else "?" + urllib.parse.urlencode({"path": path})
        return self._control("GET", "/_requests" + q)

    def stats(self):
        return self._control("GET", "/_stats")

    def clear(self):
        """Forget records, counters (fail=N included) and connection statistics."""
        self._control("DELETE", "/_requests")

    def wait_for(self, n, path=None, timeout=10):
        """Wait until at least n requests (under path) are recorded; returns them."""
        return hh.wait_until(lambda: (lambda r: r if len(r) >= n else None)(self.requests(path)),
                             timeout, message=f"{n} request(s) at the sink under {path or '/'}")

    def count(self, path=None):
        """Requests received under a path prefix (all of them when path is None)."""
        st = self.stats()
        if path is None:
            return st["received"]
        return sum(v for k, v in st["by_path"].items() if k.startswith(path))

    # --- process

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def finish(self):
        """SIGTERM, wait, and fail on a crash, a hang or a sanitizer report."""
        if self in hh.LIVE:
            hh.LIVE.remove(self)
        try:
            if self.proc is None:
                return
            problems = []
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10 * hh.SLOW)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    problems.append("did not exit on SIGTERM (killed)")
            if self.proc.returncode != 0:
                problems.append(f"exited with {self.proc.returncode}")
            try:
                with open(self.err_path, errors="replace") as f:
                    hh.check_sanitizers(f.read(), "hookd-sink")
            except AssertionError as e:
                problems.append(str(e))
            if problems:
                raise AssertionError("hookd-sink: " + "; ".join(problems) +
                                     f"\n--- {self.err_path} ---\n{hh.tail(self.err_path)}")
        finally:
            self.destroy()

    def describe(self):
        """For the failure report (conftest.py): the tail of the sink's stderr."""
        return f"hookd-sink stderr {self.err_path}", hh.tail(self.err_path, 30)

    def destroy(self):
        """Last-resort cleanup (the harness's atexit hook calls this)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in hh.LIVE:
            hh.LIVE.remove(self)
        hh.remove_tree(self.dir)

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.finish()


@pytest.fixture
def sink(test_root):
    """A started plain-HTTP Sink, finished (and checked) at teardown."""
    s = Sink(test_root).start()
    yield s
    s.finish()
