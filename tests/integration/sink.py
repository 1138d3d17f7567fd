# SPDX-License-Identifier: ISC
"""The project's webhook receiver (contrib/sink/hookd-sink) for delivery tests.

A subscription's URL programs the sink through its query (see hookd-sink.c):
  status=503  fail=N&status=500  delay_ms=N  retry_after=S  location=URL  close=1
  body=TEXT  size=N  chunked=1
Every request is recorded and can be read back:

    s = Sink(test_root).start()          # or the `sink` fixture: `from sink import sink`
    url = s.url("/hook?fail=2&status=500")
    ...
    reqs = s.wait_for(3, path="/hook")   # [{"method", "path", "ms", "conn", "tls", "sni",
                                         #   "headers", "body"}]
    s.stats()                            # {"received", "by_path", "first_ms", "last_ms",
                                         #  "connections", "open", "max_open"}
    s.clear()
    s.finish()                           # SIGTERM; fails on a crash or a sanitizer report

Header names in records are lower case; bodies are text (bytes that are not UTF-8 show as
U+FFFD); "sni" is the server name a TLS client sent (None without TLS or SNI). The sink
listens on 127.0.0.1, so hookd must allowlist 127.0.0.0/8.

A TLS sink (Sink(root, tls=(cert, key))) also listens in plain HTTP on another port, which
the control requests use; make_ca() and make_server_cert() make throwaway certificates with
the openssl CLI.
"""

import json
import os
import shutil
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
        self.plain_port = None
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

        def ports():
            if self.proc.poll() is not None:
                raise AssertionError(f"sink exited with {self.proc.returncode}:\n"
                                     f"{hh.tail(self.err_path)}")
            found = {}
            with open(self.out_path) as f:
                for line in f:
                    if line.startswith("listening on "):
                        found["tls" if self.tls else "plain"] = int(line.split()[2])
                    elif line.startswith("plain on "):
                        found["plain"] = int(line.split()[2])
            want = ("tls", "plain") if self.tls else ("plain",)
            return found if all(k in found for k in want) else None

        found = hh.wait_until(ports, timeout * hh.SLOW, message="sink listening")
        self.port = found["tls"] if self.tls else found["plain"]
        self.plain_port = found["plain"]
        return self

    # --- addresses

    @property
    def base_url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, path="/", host=None):
        """The URL of path (with its query) on this sink; host: a name instead of 127.0.0.1
        (one that resolves to it, such as localhost)."""
        if host is None:
            return self.base_url + path
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    # --- control endpoints (over plain HTTP, for a TLS sink on its plain port)

    def _control(self, method, path):
        r = hh.http_request(self.plain_port, method, path, timeout=10)
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


# --- throwaway certificates -----------------------------------------------------------------

def _openssl(*args):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command line tool")
    p = subprocess.run(["openssl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)}:\n{p.stdout}"


def make_ca(directory, name):
    """A CA certificate and key (P-256, 2 days) under directory: (cert_path, key_path)."""
    cert, key = (os.path.join(directory, f"{name}.{x}") for x in ("pem", "key"))
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_server_cert(directory, name, ca, dns_names):
    """A server certificate for dns_names signed by ca (from make_ca): (cert_path, key_path)."""
    cert, key, csr, ext = (os.path.join(directory, f"{name}.{x}")
                           for x in ("pem", "key", "csr", "cnf"))
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={dns_names[0]}")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns_names) + "\n"
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


@pytest.fixture
def sink(test_root):
    """A started plain-HTTP Sink, finished (and checked) at teardown."""
    s = Sink(test_root).start()
    yield s
    s.finish()
