# SPDX-License-Identifier: ISC
"""Integration-test harness: throwaway Postgres clusters and hookd processes, driven from pytest.

Everything a test starts lives under one temporary directory (never in the source or build
tree), is registered in LIVE, and is stopped by the fixtures' finalizers or, as a last resort,
by an atexit hook. Nothing here touches a Postgres it did not create: every connection names
the private socket directory of a cluster made by this module.
"""

import atexit
import collections
import fcntl
import glob
import hashlib
import http.client
import json as jsonlib
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import psycopg2

SERVER_USER = "hookd"  # the OS user Postgres runs as when the tests run as root
IS_ROOT = os.geteuid() == 0
HERE = os.path.dirname(os.path.abspath(__file__))
HOOKD_BIN = os.environ.get("HOOKD_BIN") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build", "hookd"))
# Waits that are not assertions (start-up, shutdown) are stretched by this factor; sanitizer
# builds are several times slower. The explicit bounds (2 s, 5 s) are never stretched.
SLOW = float(os.environ.get("HOOKD_TEST_SLOW") or ("3" if os.environ.get("ASAN_OPTIONS") else "1"))
KEEP = os.environ.get("HOOKD_TEST_KEEP", "") not in ("", "0")
TMP_BASE = os.environ.get("HOOKD_TEST_TMPDIR") or tempfile.gettempdir()
TEMPLATE_FORMAT = 1  # bump when what pg_template() puts in the template changes

SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: \w+Sanitizer|runtime error:")

# libpq reads PGHOST, PGPORT, PGSERVICE, ... : a developer's environment must not redirect
# the tests to another server, so drop them for this process and every child.
for _k in [k for k in os.environ if re.fullmatch(r"PG[A-Z]+", k)]:
    del os.environ[_k]

LIVE = []   # clusters and processes not yet cleaned up, oldest first
ROOTS = []  # per-run directories, removed last


class HarnessTimeout(BaseException):
    """Raised by the per-test alarm; a BaseException so that no `except Exception` eats it."""


# --- small helpers --------------------------------------------------------------------------

def wait_until(fn, timeout, interval=0.05, message="condition"):
    """Call fn until it returns something truthy; return that, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message}: not reached within {timeout:g} s")
        time.sleep(interval)


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return f"({path}: not there)"
    return "\n".join(text.splitlines()[-lines:])


def child_environ(**extra):
    """os.environ without anything that could steer hookd or libpq elsewhere, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HOOKD_") and k != "DATABASE_URL"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def make_root():
    """A fresh directory for one pytest run's clusters and processes (removed by cleanup)."""
    root = tempfile.mkdtemp(prefix="hookd-it-", dir=TMP_BASE)
    os.chmod(root, 0o755)  # the server user must be able to reach its cluster inside
    ROOTS.append(root)
    return root


def remove_root(root):
    remove_tree(root)
    if root in ROOTS:
        ROOTS.remove(root)


def remove_tree(path):
    if KEEP:
        print(f"hookd tests: keeping {path}")
        return
    shutil.rmtree(path, ignore_errors=True)


# --- Postgres ---------------------------------------------------------------------------------

def pg_bindir():
    """Postgres server binaries: $PG_BINDIR, else the newest /usr/lib/postgresql/*/bin."""
    cands = [os.environ.get("PG_BINDIR", "")]
    found = glob.glob("/usr/lib/postgresql/*/bin")
    found.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
               reverse=True)
    for d in cands + found:
        if d and os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    return None


def server_ids():
    """(uid, gid) the Postgres server runs as."""
    if not IS_ROOT:
        return os.geteuid(), os.getegid()
    ensure_server_user()
    pw = pwd.getpwnam(SERVER_USER)
    return pw.pw_uid, pw.pw_gid


def ensure_server_user():
    """initdb refuses root: as root, run the server as the system user hookd (made if missing)."""
    try:
        pwd.getpwnam(SERVER_USER)
        return
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    SERVER_USER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pwd.getpwnam(SERVER_USER)  # a parallel run may have made it; KeyError if nobody did


def give_to_server(*paths):
    if IS_ROOT:
        uid, gid = server_ids()
        for p in paths:
            os.chown(p, uid, gid)


def run_server_cmd(argv, check=True, timeout=120):
    """Run a Postgres server program, as the server user when we are root."""
    if IS_ROOT:
        ensure_server_user()
        argv = ["runuser", "-u", SERVER_USER, "--"] + argv
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, env=child_environ())
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n"
                           f"{p.stdout.decode('utf-8', 'replace')}")
    return p


def pg_template():
    """An initdb'ed data directory with a database named hookd, made once and shared.

    initdb takes a second or two; copying its result takes a tenth of that, so every
    cluster is a copy. The template is keyed by server version and user and built under a
    lock, so parallel test files (make -j2) share one.
    """
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("no Postgres server binaries (set PG_BINDIR or install postgresql-15)")
    version = subprocess.run([os.path.join(bindir, "postgres"), "-V"], stdout=subprocess.PIPE,
                             check=True).stdout.decode().strip()
    key = hashlib.sha1(f"{TEMPLATE_FORMAT}:{bindir}:{version}:{os.geteuid()}".encode())
    path = os.path.join(TMP_BASE, f"hookd-test-pgtemplate-{key.hexdigest()[:12]}")
    owner = server_ids()[0]

    def usable():
        try:
            return (os.stat(path).st_uid == owner
                    and os.path.exists(os.path.join(path, "PG_VERSION")))
        except OSError:
            return False

    if usable():
        return path
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if usable():
            return path
        shutil.rmtree(path, ignore_errors=True)
        work = tempfile.mkdtemp(prefix="hookd-test-pgtemplate-tmp-", dir=TMP_BASE)
        try:
            os.chmod(work, 0o755)
            data, run = os.path.join(work, "data"), os.path.join(work, "run")
            os.mkdir(run)
            give_to_server(work, run)
            run_server_cmd([os.path.join(bindir, "initdb"), "-D", data, "-U", "hookd",
                            "-A", "trust", "--nosync", "-E", "UTF8", "--locale=C",
                            "--no-instructions"])
            run_server_cmd([os.path.join(bindir, "pg_ctl"), "-D", data, "-l",
                            os.path.join(work, "log"), "-w", "-t", "60", "-s", "-o",
                            f"-c listen_addresses='' -k {run} -c fsync=off", "start"])
            try:
                run_server_cmd([os.path.join(bindir, "createdb"), "-h", run, "-U", "hookd",
                                "hookd"])
            finally:
                run_server_cmd([os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-s",
                                "-m", "fast", "stop"])
            os.rename(data, path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return path


class PgCluster:
    """A throwaway Postgres cluster on a private unix socket (and optionally a TCP port).

    The superuser is "hookd" with trust authentication; database "hookd" exists.
    """

    def __init__(self, root, tcp=False):
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=root)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "run")
        self.logfile = os.path.join(self.dir, "pg.log")
        self.tcp_port = free_port() if tcp else None
        self.port = self.tcp_port or 5432  # with no TCP the port only names the socket file
        self._conn = None
        self._conns = []
        if len(self.sockdir) > 90:
            raise RuntimeError(f"socket directory {self.sockdir} is too long for a unix socket; "
                               "set HOOKD_TEST_TMPDIR to a shorter directory")
        LIVE.append(self)

    def create(self):
        """Copy the template, configure for speed and privacy, start."""
        template = pg_template()
        os.mkdir(self.sockdir)
        subprocess.run(["cp", "-a", template, self.data], check=True)
        listen = "127.0.0.1" if self.tcp_port else ""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# hookd integration tests: private and fast\n"
                    f"listen_addresses = '{listen}'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.sockdir}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "shared_buffers = 32MB\nmax_connections = 100\n"
                    "log_line_prefix = '%m [%p] %q%a '\n")
        # cp -a keeps the template's owner; the server writes its log next to the data
        give_to_server(self.dir, self.sockdir)
        self.start()
        return self

    def _pg_ctl(self, *args, check=True):
        return run_server_cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, *args],
                              check=check)

    def start(self):
        try:
            self._pg_ctl("-l", self.logfile, "-w", "-t", str(int(60 * SLOW)), "-s", "start")
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n--- {self.logfile} ---\n{tail(self.logfile, 30)}") from None

    def stop(self, mode="fast"):
        """Stop the server (mode: smart, fast or immediate); our connections are closed first."""
        self.close_connections()
        self._pg_ctl("-w", "-t", str(int(60 * SLOW)), "-s", "-m", mode, "stop")

    def restart(self, mode="immediate"):
        self.stop(mode)
        self.start()

    def running(self):
        return self._pg_ctl("status", check=False).returncode == 0

    # --- addressing

    def url_for(self, dbname="hookd"):
        host = urllib.parse.quote(self.sockdir, safe="/")
        return f"postgresql://hookd@/{dbname}?host={host}&port={self.port}"

    @property
    def url(self):
        """libpq URL of database hookd over the private unix socket."""
        return self.url_for("hookd")

    @property
    def tcp_url(self):
        assert self.tcp_port, "cluster made without tcp=True"
        return f"postgresql://hookd@127.0.0.1:{self.tcp_port}/hookd"

    # --- SQL

    def connect(self, dbname="hookd", autocommit=True):
        """A new psycopg2 connection (closed by cleanup if the test does not close it)."""
        conn = psycopg2.connect(host=self.sockdir, port=self.port, user="hookd", dbname=dbname,
                                connect_timeout=10, application_name="hookd-tests")
        conn.autocommit = autocommit
        self._conns.append(conn)
        return conn

    def sql(self, query, *args, db="hookd"):
        """Run one statement in autocommit mode; returns its rows (a list of tuples, [] if none).

        Placeholders are %s (psycopg2); with no args the query is sent as it is.
        """
        for attempt in (0, 1):
            if self._conn is None or self._conn.closed or self._conn.info.dbname != db:
                if self._conn is not None:
                    self._conn.close()
                self._conn = self.connect(db)
            try:
                with self._conn.cursor() as cur:
                    cur.execute(query, args if args else None)
                    return cur.fetchall() if cur.description else []
            except psycopg2.OperationalError:
                # a server restart broke the cached connection: reconnect once
                if attempt or not self._conn.closed:
                    raise
                self._conn = None
        raise AssertionError("unreachable")

    def create_database(self, name):
        """A new empty database (for tests that want one of their own); returns its URL."""
        self.sql(f'CREATE DATABASE "{name}"', db="postgres")
        return self.url_for(name)

    def close_connections(self):
        for c in self._conns:
            try:
                c.close()
            except psycopg2.Error:
                pass
        self._conns = []
        self._conn = None

    def describe(self):
        return f"postgres log {self.logfile}", tail(self.logfile, 25)

    def destroy(self):
        self.close_connections()
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._pg_ctl("-w", "-s", "-m", "immediate", "stop", check=False)
        remove_tree(self.dir)
        if self in LIVE:
            LIVE.remove(self)


# --- HTTP ------------------------------------------------------------------------------------

Reply = collections.namedtuple("Reply", "status headers body")
Reply.__doc__ = """status: int; headers: http.client.HTTPMessage (case-insensitive .get);
body: the parsed JSON when the Content-Type says JSON, else bytes."""


def _send_body(sock, body, timeout):
    """Send body, but stop as soon as the server answers (an early 413) or hangs up."""
    view, off = memoryview(body), 0
    while off < len(view):
        readable, writable, _ = select.select([sock], [sock], [], timeout)
        if readable:
            return
        if not writable:
            raise TimeoutError("server stopped reading the request body")
        try:
            off += sock.send(view[off:off + 65536])
        except (BrokenPipeError, ConnectionResetError):
            return


def http_request(port, method, path, body=None, headers=None, timeout=10.0, host="127.0.0.1",
                 sent=None):
    """One HTTP/1.1 request on a fresh connection; returns a Reply.

    sent: called once the request is on the wire, before waiting for the answer (so a test
    can tell that a slow request is in flight)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        names = set()
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
            names.add(k.lower())
        if body is not None and "content-length" not in names:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body:
            _send_body(conn.sock, body, timeout)
        if sent is not None:
            sent()
        resp = conn.getresponse()
        data = resp.read()
        ctype = resp.getheader("Content-Type", "")
        if "json" in ctype and data:
            try:
                data = jsonlib.loads(data)
            except ValueError:
                raise AssertionError(f"{method} {path}: {resp.status} with Content-Type {ctype} "
                                     f"but the body is not JSON: {data[:300]!r}") from None
        return Reply(resp.status, resp.headers, data)
    finally:
        conn.close()


def parse_http_response(data):
    """One HTTP/1.x response from raw bytes: (Reply, rest). The body is parsed as JSON when
    the Content-Type says JSON; fails when the bytes hold no complete response."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    assert version.startswith("HTTP/1."), lines[0]
    msg = http.client.HTTPMessage()
    for line in lines[1:]:
        k, _, v = line.partition(":")
        msg[k.strip()] = v.strip()
    length = int(msg.get("Content-Length", "-1"))
    if length < 0:
        body, rest = rest, b""
    else:
        assert len(rest) >= length, f"short body: {len(rest)} of {length} bytes"
        body, rest = rest[:length], rest[length:]
    if "json" in msg.get("Content-Type", "") and body:
        try:
            body = jsonlib.loads(body)
        except ValueError:
            raise AssertionError(f"{lines[0]} with a JSON Content-Type but the body is not "
                                 f"JSON: {body[:300]!r}") from None
    return Reply(int(status), msg, body), rest


def raw_exchange(port, data, timeout=10.0, host="127.0.0.1"):
    """Send raw bytes on a fresh connection, read until the server closes (or timeout s);
    returns everything received. For requests http.client refuses to send."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        _send_body(sock, data, timeout)
        chunks, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def metric_key(name, **labels):
    """The key metrics() uses for a series: name{a="1",b="2"} with labels sorted."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


_SAMPLE_RE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """Prometheus text format to {metric_key: float}; raises AssertionError on a bad line."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise AssertionError(f"not a Prometheus sample line: {line!r}")
        labels = {k: v.encode().decode("unicode_escape") for k, v in _LABEL_RE.findall(m[2] or "")}
        out[metric_key(m[1], **labels)] = float(m[3])
    return out


# --- hookd -----------------------------------------------------------------------------------

def check_sanitizers(text, what):
    m = SANITIZER_RE.search(text)
    if m:
        start = text.rfind("\n", 0, max(0, m.start() - 200)) + 1  # from the report's banner
        raise AssertionError(f"{what} printed a sanitizer report:\n{text[start:start + 6000]}")


def run_hookd_cli(database_url, *args, cwd=None, check=True, timeout=60):
    """Run `hookd ARGS...` with DATABASE_URL set; returns the CompletedProcess (text)."""
    p = subprocess.run([HOOKD_BIN, *args], cwd=cwd, env=child_environ(DATABASE_URL=database_url),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout * SLOW)
    check_sanitizers(p.stderr, f"hookd {' '.join(args)}")
    if check and p.returncode != 0:
        raise AssertionError(f"hookd {' '.join(args)} exited {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


class Hookd:
    """One hookd process on a free loopback port against a PgCluster.

    config: extra config-file keys ({"http_max_body_size": "2KiB"}); env: extra environment.
    expect_exit: the exit status finish() accepts (None: any status, but no crash by signal).
    """

    def __init__(self, pg, root, config=None, env=None, db="hookd", args=()):
        self.args = list(args)  # extra command-line flags, before -c
        self.pg = pg
        self.db = db
        self.dir = tempfile.mkdtemp(prefix="hookd-", dir=root)
        self.config_path = os.path.join(self.dir, "hookd.conf")
        self.log_path = os.path.join(self.dir, "hookd.log")
        self.config = dict(config or {})
        self.extra_env = dict(env or {})
        self.port = None
        self.proc = None
        self.expect_exit = 0
        self._admin_key = None
        self._key_lock = threading.Lock()
        self._term_sent = False
        LIVE.append(self)

    # --- configuration and process

    @property
    def database_url(self):
        return self.pg.url_for(self.db)

    def write_config(self, **changes):
        """Merge changes into the config (None drops a key) and rewrite the file.

        Values are written as they are, so a test can write a broken file on purpose:
        write_config(db_pool_size="banana").
        """
        for k, v in changes.items():
            if v is None:
                self.config.pop(k, None)
            else:
                self.config[k] = v
        cfg = {"listen": f"127.0.0.1:{self.port}", "log_level": "info",
               "shutdown_timeout": "10s",
               "master_key_file": os.path.join(self.dir, "master.key")}
        cfg.update(self.config)
        with open(self.config_path + ".tmp", "w") as f:
            f.write("# written by tests/integration/hookd_harness.py\n")
            for k, v in cfg.items():
                f.write(f"{k} = {v}\n")
        os.replace(self.config_path + ".tmp", self.config_path)

    def start(self, wait="ready", timeout=None):
        """Start hookd and wait until /healthz (wait="healthy") or also /readyz (wait="ready",
        the default) answers 200; wait=None returns at once."""
        for attempt in range(3):
            self.port = free_port()
            self.write_config()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [HOOKD_BIN, *self.args, "-c", self.config_path], cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT,
                    env=child_environ(DATABASE_URL=self.database_url, **self.extra_env))
            if wait is None:
                return self
            try:
                self._wait_up(wait, timeout or 20 * SLOW)
                return self
            except AssertionError:
                # someone took the port between free_port() and bind: try another one
                if attempt < 2 and self.proc.poll() is not None and \
                        "in use" in self.log_text().lower():
                    continue
                raise
        raise AssertionError("unreachable")

    def _wait_up(self, wait, timeout):
        paths = ["/healthz"] + (["/readyz"] if wait == "ready" else [])
        deadline = time.monotonic() + timeout
        last = "no answer"
        for path in paths:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    raise AssertionError(f"hookd exited with {describe_status(rc)} while starting"
                                         f"\n--- {self.log_path} ---\n{tail(self.log_path)}")
                try:
                    r = self.request("GET", path, timeout=2)
                    if r.status == 200:
                        break
                    last = f"{r.status} {r.body!r}"
                except OSError as e:
                    last = repr(e)
                if time.monotonic() >= deadline:
                    raise AssertionError(f"hookd: GET {path} not 200 within {timeout:g} s "
                                         f"(last: {last})\n--- {self.log_path} ---\n"
                                         f"{tail(self.log_path)}")
                time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self._term_sent = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the process to exit; returns its status (negative: killed by that signal)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"hookd still running {timeout:g} s later") from None

    def kill9(self):
        """kill -9 on purpose (a crash test): finish() then accepts the signal as the exit."""
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def accepts_connections(self):
        """True when a TCP connect to the listen port succeeds."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                return True
        except (ConnectionRefusedError, ConnectionResetError):
            return False

    def finish(self):
        """SIGTERM if still running, wait, and fail on a crash, a hang, a wrong exit status or
        a sanitizer report. Called by the fixtures' finalizers."""
        if self in LIVE:
            LIVE.remove(self)
        try:
            if self.proc is None:
                return
            problems = []
            if self.proc.poll() is None:
                # a second SIGTERM means "exit now": send one only if the test did not
                if not self._term_sent:
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30 * SLOW)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    problems.append(f"did not exit within {30 * SLOW:g} s of SIGTERM (killed)")
            rc = self.proc.returncode
            if getattr(self, "killed", False) and rc == -signal.SIGKILL:
                pass
            elif rc < 0 or (self.expect_exit is not None and rc != self.expect_exit):
                problems.append(f"exited with {describe_status(rc)}, expected "
                                f"{'any status' if self.expect_exit is None else self.expect_exit}")
            try:
                check_sanitizers(self.log_text(), "hookd")
            except AssertionError as e:
                problems.append(str(e))
            if problems:
                raise AssertionError("hookd: " + "; ".join(problems) +
                                     f"\n--- {self.log_path} ---\n{tail(self.log_path, 80)}")
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            remove_tree(self.dir)

    def kill(self):
        """Last-resort cleanup (atexit)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in LIVE:
            LIVE.remove(self)

    # --- the log

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """A position in the log, for wait_for_log(since=...)."""
        return len(self.log_text())

    def log_lines(self, since=0):
        """Log lines as dicts (JSON lines); a line that is not JSON comes as {"raw": line}."""
        out = []
        for line in self.log_text()[since:].splitlines():
            try:
                obj = jsonlib.loads(line)
                out.append(obj if isinstance(obj, dict) else {"raw": line})
            except ValueError:
                out.append({"raw": line})
        return out

    def wait_for_log(self, pred, since=0, timeout=5):
        """Wait for a log line for which pred(dict) is true; returns it."""
        def find():
            for line in self.log_lines(since):
                if pred(line):
                    return line
            return None
        return wait_until(find, timeout, message="log line")

    def describe(self):
        return f"hookd log {self.log_path}", tail(self.log_path, 60)

    @property
    def instance(self):
        """This process's name in leases (leased_by), from its start-up log line."""
        line = self.wait_for_log(lambda ln: ln.get("msg", "").startswith("hookd ")
                                 and " started (" in ln.get("msg", ""))
        m = re.search(r"instance (\S+),", line["msg"])
        assert m, line
        return m.group(1)

    # --- HTTP

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, json=None, body=None, headers=None, auth=None, timeout=10):
        """One request. json: an object sent as application/json; body: raw bytes;
        auth: True for the admin key, a string for that bearer token, None for none."""
        hdrs = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if auth is True:
            auth = self.admin_key
        if auth is not None:
            hdrs["Authorization"] = f"Bearer {auth}"
        return http_request(self.port, method, path, body=body, headers=hdrs, timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # --- keys, metrics, SQL

    def cli(self, *args, check=True):
        """Run `hookd ARGS...` against this instance's database."""
        return run_hookd_cli(self.database_url, *args, cwd=self.dir, check=check)

    def create_key(self, name):
        """`hookd keys create NAME`; returns the key (the last line of its stdout)."""
        out = self.cli("keys", "create", name).stdout
        lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
        assert lines, f"hookd keys create {name} printed nothing on stdout"
        return lines[-1]

    @property
    def admin_key(self):
        """An admin key made on first use, once this hookd accepts it (thread-safe)."""
        with self._key_lock:
            if self._admin_key is None:
                key = self.create_key(f"test-admin-{uuid.uuid4().hex[:16]}")
                wait_until(lambda: self.get("/metrics", auth=key).status == 200, 5 * SLOW,
                           message="hookd accepting a fresh admin key")
                self._admin_key = key
            return self._admin_key

    def metrics(self):
        """GET /metrics with the admin key, parsed: {metric_key(name, **labels): value}."""
        r = self.get("/metrics", auth=True)
        assert r.status == 200, f"GET /metrics: {r.status} {r.body!r}"
        return parse_prometheus(r.body.decode())

    def metric(self, name, default=None, **labels):
        """One series' value, or default when hookd does not (yet) export it."""
        return self.metrics().get(metric_key(name, **labels), default)

    def sql(self, query, *args):
        return self.pg.sql(query, *args, db=self.db)


def describe_status(rc):
    if rc is None:
        return "no status (running)"
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"status {rc}"


@atexit.register
def _cleanup_everything():
    """Last resort when a run is interrupted: kill hookds, stop clusters, remove directories."""
    for obj in reversed(list(LIVE)):
        try:
            if isinstance(obj, Hookd):
                obj.kill()
                remove_tree(obj.dir)
            else:
                obj.destroy()
        except Exception as e:  # keep going: the next object still needs cleaning
            print(f"hookd tests: cleanup of {obj!r} failed: {e}")
    for root in list(ROOTS):
        remove_root(root)
