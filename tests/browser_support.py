"""Real processes for the browser journey: SP-API emulator, sample app, RQ worker.

Every process is started with its own process group so teardown can stop it (and any child
it forked, e.g. RQ work horses) by its id; every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .processes import free_port, stop_process, wait_http

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PYTHON = sys.executable
FLASK = os.path.join(os.path.dirname(PYTHON), "flask")
REDIS_URL = os.environ.get("XSALE_BROWSER_REDIS", "redis://127.0.0.1:6379/11")
ARTIFACTS = os.environ.get("XSALE_ARTIFACTS", os.path.join(REPO, "artifacts"))
SCREENSHOTS = os.path.join(ARTIFACTS, "screenshots")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]
#: Every Playwright wait's limit, in ms. A wait's limit, never an assertion: CI machines are
#: loaded, and a page that answers in 300 ms alone may take seconds there.
BROWSER_TIMEOUT = 30_000
with contextlib.suppress(ImportError):  # the expect() assertions' own default is 5 s
    from playwright.sync_api import expect

    expect.set_options(timeout=BROWSER_TIMEOUT)
XSS_NAME = "<script>alert(1)</script>"
XSS_SKU = "XSS-000001"


def new_context(browser: Any, base_url: str, **options: Any) -> Any:
    """A browser context for one operator: a 1366×900 window, English unless ``locale`` says
    otherwise, and :data:`BROWSER_TIMEOUT` for every wait and navigation."""
    options.setdefault("viewport", {"width": 1366, "height": 900})
    options.setdefault("locale", "en-US")
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(BROWSER_TIMEOUT)
    context.set_default_navigation_timeout(BROWSER_TIMEOUT)
    return context


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by a threaded werkzeug server on 127.0.0.1; yields its base URL."""
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def backend_of(url: str) -> str:
    """The backend name (:data:`conftest.BACKENDS`) of a database URL."""
    return "sqlite" if url.startswith("sqlite") else "mariadb" if url.startswith("mysql") \
        else "postgresql"


def screenshot(page: Any, name: str, backend: str, *, full_page: bool = True) -> str:
    """Save ``SCREENSHOTS/<name>.png``; on SQLite and MariaDB the database's name ends the
    file name (``<name>-sqlite.png``)."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    suffix = "" if backend == "postgresql" else f"-{backend}"
    path = os.path.join(SCREENSHOTS, f"{name}{suffix}.png")
    page.screenshot(path=path, full_page=full_page)
    return path


def settle(page: Any) -> None:
    """Wait until the page's CSS transitions and finite animations (a dialog's or a flash's
    fade-in) have finished, so a screenshot shows the page at rest. Endless ones (the striped
    progress bar of an active run) are not waited for."""
    page.wait_for_function("""() => document.getAnimations().every(a =>
        a.effect.getTiming().iterations === Infinity
        || (a.playState !== "running" && a.playState !== "pending"))""")


def click_and_wait(page: Any, target: Any) -> None:
    """Click ``target`` and wait for the page it navigates to (a form post, a reload).

    ``page.wait_for_load_state("load")`` right after a click returns at once: the page that is
    still showing has loaded long ago, so what follows would race the server's answer.
    """
    with page.expect_navigation():
        target.click()


@dataclass
class Stack:
    base_url: str
    emulator_url: str
    env: dict[str, str]
    logs: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.logs[name]
        out = open(log, "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        out.close()
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            stop_process(self.procs.pop(name))

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """Rows of a read-only query against this stack's schema (for direct assertions)."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(statement), params).all())
        finally:
            engine.dispose()


def seed_emulator(emulator_url: str) -> None:
    """The sample app's demo listings plus one DE offer whose name is a script tag."""
    from sample_app import seed_emulator as seed
    from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
    from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
    from xsale_amazon_plugin.emulator.server import EmulatorControl

    with contextlib.closing(EmulatorControl(emulator_url)) as control:
        control.wait_until_ready(15)
        seed(control)
        # Same DE report as seed_emulator, plus the hostile offer name.
        rows = list(demo_listings(60, seed=7, marketplace="DE"))
        rows += list(demo_listings(20, seed=8, marketplace="DE", channel="AMAZON_EU",
                                   sku_prefix="FBA-"))
        hostile = dict(rows[0], seller_sku=XSS_SKU, name=XSS_NAME, asin="B0XSSXSS01",
                       listing_id="9999X999999")
        rows.append(hostile)
        control.set_listings(get_marketplace("DE").marketplace_id,
                             render_report(rows, "eu_en"), charset="Cp1252", polls_until_done=2)


@contextlib.contextmanager
def running_stack(log_dir: str = os.path.join(ARTIFACTS, "logs"),
                  extra_env: dict[str, str] | None = None,
                  backend: str = "postgresql") -> Iterator[Stack]:
    """Fresh database on ``backend`` (a PostgreSQL schema by default) + own RQ queue +
    emulator + sample app + worker; all torn down.

    ``extra_env`` adds or overrides environment variables (app configuration) of the stack."""
    from redis import Redis

    from .conftest import any_database

    with contextlib.ExitStack() as teardown:  # in reverse: the processes, Redis, the database
        database_url = teardown.enter_context(any_database(backend))
        # No FLUSHDB: the stack's queue name is its own, and tests in other processes share
        # this Redis database.
        redis = Redis.from_url(REDIS_URL)
        teardown.callback(redis.close)
        app_port, emu_port = free_port(), free_port()
        emulator_url = f"http://127.0.0.1:{emu_port}"
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": database_url,
            "SECRET_KEY": "browser-test-" + uuid.uuid4().hex,
            "XSALE_AMAZON_REDIS_URL": REDIS_URL,
            "XSALE_AMAZON_QUEUE": "xa-browser-" + uuid.uuid4().hex[:8],
            "XSALE_AMAZON_SPAPI_ENDPOINT": emulator_url,
            "XSALE_AMAZON_LWA_ENDPOINT": emulator_url + "/auth/o2/token",
            "XSALE_AMAZON_POLL_INTERVAL": "1",
            "XSALE_AMAZON_POLL_MAX_INTERVAL": "1",
            "XSALE_AMAZON_PAGE_SIZE": "20",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": REPO,
            "FLASK_DEBUG": "0",
            **(extra_env or {}),
        })
        log_dir = os.path.join(log_dir, env["XSALE_AMAZON_QUEUE"])  # stacks run side by side
        os.makedirs(log_dir, exist_ok=True)
        logs = {name: os.path.join(log_dir, f"{name}.log")
                for name in ("emulator", "app", "worker")}
        stack = Stack(f"http://127.0.0.1:{app_port}", emulator_url, env, logs)
        teardown.callback(stack.stop_all)
        # The emulator and the app start side by side (the app does not call Amazon to
        # start). The app creates the schema and seeds; the worker starts only once that is
        # done, so the two processes do not race on CREATE TABLE.
        emu = stack.start("emulator", [PYTHON, "-m", "xsale_amazon_plugin.emulator",
                                       "--host", "127.0.0.1", "--port", str(emu_port)])
        app = stack.start("app", [FLASK, "--app", "sample_app", "run", "--host", "127.0.0.1",
                                  "--port", str(app_port), "--no-reload", "--with-threads"])
        wait_http(emulator_url + "/_emulator/health", 60, emu, logs["emulator"])
        seed_emulator(emulator_url)
        wait_http(stack.base_url + "/admin/", 120, app, logs["app"])
        stack.start("worker", [FLASK, "--app", "sample_app", "xsale-amazon", "worker"])
        yield stack
