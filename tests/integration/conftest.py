# SPDX-License-Identifier: ISC
"""pytest fixtures for hookd's integration tests: a Postgres cluster per module, hookd per test.

Fixtures:
  pg             (module)   a started PgCluster; database "hookd"; pg.sql(q, *args), pg.url
  hookd_factory  (function) start(config=None, wait="ready", env=None, db="hookd", pg=None)
                            -> a started Hookd; every one is finished (SIGTERM, checked) at
                            teardown
  hookd          (function) one Hookd with the default configuration
  module_hookd   (module)   one Hookd shared by a module's read-only tests
  node_modules   (session)  node/package.json's pinned npm packages (express,
                            standardwebhooks, stripe), installed once per run; the path to
                            give as NODE_PATH
See hookd_harness.py for the methods of PgCluster and Hookd.
"""

import os
import shutil
import signal
import subprocess

import pytest

import hookd_harness as hh


@pytest.fixture(scope="session")
def test_root():
    """This run's temporary directory (under $HOOKD_TEST_TMPDIR or /tmp)."""
    if not os.access(hh.HOOKD_BIN, os.X_OK):
        pytest.fail(f"no hookd binary at {hh.HOOKD_BIN} (set HOOKD_BIN or build first)",
                    pytrace=False)
    root = hh.make_root()
    yield root
    hh.remove_root(root)


@pytest.fixture(scope="module")
def pg(test_root):
    cluster = hh.PgCluster(test_root)
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.destroy()


def _finish_all(started):
    errors = []
    for h in reversed(started):
        try:
            h.finish()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def hookd_factory(pg, test_root):
    """start(...) -> Hookd, started and (by default) ready; all finished at teardown."""
    started = []

    def start(config=None, wait="ready", env=None, db="hookd", pg=pg):
        h = hh.Hookd(pg, test_root, config=config, env=env, db=db)
        started.append(h)
        return h.start(wait=wait)

    yield start
    _finish_all(started)


@pytest.fixture
def hookd(hookd_factory):
    return hookd_factory()


@pytest.fixture(scope="module")
def module_hookd(pg, test_root):
    h = hh.Hookd(pg, test_root)
    started = [h]
    try:
        h.start()
        yield h
    finally:
        _finish_all(started)


NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
NODE_MIN_MAJOR = 18  # Debian 12's nodejs; node/package.json's engines


@pytest.fixture(scope="session")
def node_modules(test_root):
    """The receivers' npm packages at the exact versions of node/package-lock.json, installed
    with npm ci into this run's temporary directory; returns its node_modules.

    npm ci --prefer-offline takes packages from npm's cache when it has them, so only the
    first run on a machine needs the registry. Without node or npm the tests that use this
    are skipped, unless HOOKD_TEST_REQUIRE_NODE=1 (contrib/dev test sets it once it has
    installed them): then they fail, so that a missing receiver cannot pass for a green run.
    """
    required = os.environ.get("HOOKD_TEST_REQUIRE_NODE", "") not in ("", "0")

    def unavailable(why):
        if required:
            pytest.fail(f"HOOKD_TEST_REQUIRE_NODE=1, but {why}", pytrace=False)
        pytest.skip(why)

    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if missing:
        unavailable(f"{' and '.join(missing)} not installed")
    version = subprocess.run([node, "--version"], stdout=subprocess.PIPE, text=True,
                             timeout=60).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < NODE_MIN_MAJOR:
        unavailable(f"node {version or '(unknown version)'} is older than {NODE_MIN_MAJOR}")
    prefix = os.path.join(test_root, "node")
    os.makedirs(prefix, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(NODE_DIR, name), prefix)
    p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline",
                        "--loglevel=error"], cwd=prefix, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    if p.returncode != 0:
        pytest.fail(f"npm ci in {prefix} failed:\n{p.stdout}", pytrace=False)
    return os.path.join(prefix, "node_modules")


@pytest.fixture(autouse=True)
def _per_test_timeout():
    """Fail a test (and run its finalizers) if it takes longer than HOOKD_TEST_TIMEOUT s."""
    limit = int(float(os.environ.get("HOOKD_TEST_TIMEOUT", "120")) * hh.SLOW)

    def on_alarm(signum, frame):
        raise hh.HarnessTimeout(f"test did not finish within {limit} s (HOOKD_TEST_TIMEOUT)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def pytest_configure(config):
    # make check's timeout (or a user's kill) sends SIGTERM: unwind so cleanup runs
    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, on_term)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tails of every live hookd and Postgres log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for obj in list(hh.LIVE):
            title, text = obj.describe()
            rep.sections.append((title, text))
