from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from .hostapp import REDIS_URL, Host, make_host
from .processes import cli_environment, kill_tree, spawn

PG_BASE = os.environ.get("XSALE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_BASE = os.environ.get("XSALE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
#: Database servers; with SQLite the backends every database test runs on.
SERVER_BACKENDS = ("postgresql", "mariadb")
BACKENDS = ("sqlite", *SERVER_BACKENDS)
ARTIFACTS = os.environ.get("XSALE_ARTIFACTS", os.path.join(os.path.dirname(__file__), "..",
                                                           "artifacts"))


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "browser: real Chromium tests")
    config.addinivalue_line("markers", "slow: long-running tests")
    config.addinivalue_line("markers", "steps: the module's tests build on each other, in "
                                       "file order, in one process")


#: Modules whose tests build on each other in file order (marker ``steps``): each runs in one
#: process per parameter set (per database), see :func:`pytest_xdist_make_scheduler`.
STEPS_MODULES = frozenset({"tests/test_browser.py", "tests/test_offers_browser.py"})


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    for item in items:
        if (item.get_closest_marker("steps")
                and item.nodeid.partition("::")[0] not in STEPS_MODULES):
            raise pytest.UsageError(f"{item.nodeid}: a steps module belongs in STEPS_MODULES")


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown without it
def pytest_xdist_make_scheduler(config: Any, log: Any) -> Any:
    """``--dist loadgroup``, with the tests of a :data:`STEPS_MODULES` module kept in one
    process and in file order, per parameter set. (pytest-xdist's own ``xdist_group`` renames
    node ids, which pytest 9 no longer lets it do, and ``--dist worksteal`` would hand the later
    steps of a module to another process, where the state they build on does not exist.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class StepsTogether(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path, _, name = nodeid.partition("::")
            if path in STEPS_MODULES:
                return path + (name[name.index("["):] if "[" in name else "")
            return super()._split_scope(nodeid)

    return StepsTogether(config, log)


@pytest.fixture(params=BACKENDS)
def db_url(request: Any, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/host.sqlite"
        return
    with server_database(request.param) as url:
        yield url


@contextmanager
def any_database(backend: str) -> Iterator[str]:
    """The URL of a fresh, empty database on any of :data:`BACKENDS` (SQLite: a file in a
    temporary directory), for fixtures wider than one test (no ``tmp_path``)."""
    if backend != "sqlite":
        with server_database(backend) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="xa-sqlite-") as directory:
        yield f"sqlite:///{directory}/host.sqlite"


@contextmanager
def server_database(backend: str) -> Iterator[str]:
    """The URL of a fresh, empty database on ``backend`` ("postgresql" or "mariadb")."""
    if backend == "mariadb":
        with mysql_database() as url:
            yield url
        return
    with postgres_schema() as url:
        yield url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema (unique name) for one test, dropped afterwards."""
    schema = "xa_" + uuid.uuid4().hex[:10]
    engine = sa.create_engine(PG_BASE)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def mysql_database() -> Iterator[str]:
    """A fresh MariaDB/MySQL database (unique name) for one test, dropped afterwards."""
    name = "xa_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(MYSQL_BASE)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        url = sa.make_url(MYSQL_BASE).set(database=name, query={"charset": "utf8mb4"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


@pytest.fixture
def redis_conn() -> Any:
    """The tests' Redis. Not flushed: every test uses its own queue name, and test runs
    (or other suites) may share this server."""
    from redis import Redis

    conn = Redis.from_url(REDIS_URL)
    conn.ping()
    yield conn
    conn.close()


@pytest.fixture
def host(db_url: str, redis_conn: Any) -> Iterator[Host]:
    h = make_host(db_url)
    yield h
    with h.app.app_context():
        h.db.session.remove()
        for engine in h.db.engines.values():
            engine.dispose()


@pytest.fixture(params=SERVER_BACKENDS)
def cli_env(request: Any, emulator: Any, redis_conn: Any) -> Iterator[dict[str, str]]:
    """The environment of ``flask xsale-amazon`` processes on a fresh server database
    (:func:`processes.cli_environment`)."""
    with server_database(request.param) as url:
        yield from cli_environment(url, emulator)


@pytest.fixture
def cli_worker(cli_env: dict[str, str]) -> Iterator[Callable[[], subprocess.Popen]]:
    """Starts ``flask xsale-amazon worker`` processes; each is killed with its work horse at
    the end of the test."""
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = spawn(cli_env, "xsale-amazon", "worker")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, never a downloaded one) per test process."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    from .browser_support import BROWSER_TIMEOUT, CHROMIUM, CHROMIUM_ARGS

    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True, timeout=BROWSER_TIMEOUT)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    from xsale_amazon_plugin.emulator.server import SpApiEmulator

    emu = SpApiEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def amazon(emulator: Any) -> Any:
    """A reset emulator with the test account registered."""
    from .hostapp import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN

    emulator.reset()
    emulator.add_account(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    return emulator


@pytest.fixture
def amazon_host(host: Host, amazon: Any) -> Host:
    host.app.config["XSALE_AMAZON_SPAPI_ENDPOINT"] = amazon.url
    host.app.config["XSALE_AMAZON_LWA_ENDPOINT"] = amazon.lwa_url
    host.configure(SPAPI_ENDPOINT=amazon.url, LWA_ENDPOINT=amazon.lwa_url)
    return host


def drain(host: Host, run_id: int | None = None, *, timeout: float = 300.0,
          max_rounds: int = 2000) -> Any:
    """Run queued and due scheduled jobs in-process until the run ends (bounded)."""
    from rq import SimpleWorker
    from rq.scheduler import RQScheduler

    state = host.state
    queue = state.queue
    worker = SimpleWorker([queue], connection=queue.connection, job_class=queue.job_class)
    scheduler = RQScheduler([queue], connection=queue.connection)
    deadline = time.monotonic() + timeout
    m = host.models
    for _ in range(max_rounds):
        scheduler.acquire_locks()
        scheduler.enqueue_scheduled_jobs()
        scheduler.release_locks()
        worker.work(burst=True, logging_level="WARNING")
        with host.app.app_context():
            if run_id is None:
                active = host.db.session.execute(
                    sa.select(sa.func.count()).select_from(m.ImportRun)
                    .where(m.ImportRun.active_lock.is_not(None))
                ).scalar_one()
                if not active:
                    return None
            else:
                run = host.db.session.get(m.ImportRun, run_id)
                if run.status not in ("queued", "requesting", "waiting", "processing"):
                    host.db.session.expunge(run)
                    return run
        if time.monotonic() > deadline:
            raise AssertionError("import did not finish in time")
        time.sleep(0.02)
    raise AssertionError("import did not finish within the round limit")
