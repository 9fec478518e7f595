"""The CLI against the emulator with real RQ worker processes and real Redis/PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report

from .conftest import SERVER_BACKENDS, server_database

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLASK = [sys.executable, "-m", "flask", "--app", "sample_app"]
OFFER_COLUMNS = ("seller_sku", "asin", "name", "listing_id", "price", "quantity",
                 "fulfillment_channel", "status", "product_id", "product_id_type", "open_date_raw",
                 "removed_at")


@pytest.fixture(params=SERVER_BACKENDS)
def cli_env(request: Any, emulator: Any, redis_conn: Any) -> Iterator[dict[str, str]]:
    with server_database(request.param) as url:
        yield from _cli_env(url, emulator)


def _cli_env(url: str, emulator: Any) -> Iterator[dict[str, str]]:
    import sample_app

    emulator.reset()
    sample_app.seed_emulator(emulator)
    env = dict(
        os.environ,
        DATABASE_URL=url,
        SECRET_KEY="cli-test-secret",
        XSALE_AMAZON_REDIS_URL='"redis://127.0.0.1:6379/9"',
        XSALE_AMAZON_QUEUE='"xa-cli-' + uuid.uuid4().hex[:8] + '"',
        XSALE_AMAZON_SPAPI_ENDPOINT=f'"{emulator.url}"',
        XSALE_AMAZON_LWA_ENDPOINT=f'"{emulator.lwa_url}"',
        XSALE_AMAZON_POLL_INTERVAL="0.2",
        XSALE_AMAZON_POLL_MAX_INTERVAL="0.5",
        XSALE_AMAZON_HEARTBEAT_TIMEOUT="3",
        XSALE_AMAZON_REPORT_REUSE_WINDOW="0",
        XSALE_AMAZON_BATCH_SIZE="2000",
        PYTHONPATH=ROOT,
    )
    init = flask(env, "xsale-amazon", "recover")  # creates and seeds the schema once
    assert init.returncode == 0, init.stderr
    yield env


def flask(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def worker(cli_env: dict[str, str]) -> Iterator[Any]:
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([*FLASK, "xsale-amazon", "worker"], cwd=ROOT, env=cli_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait(timeout=10)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (RQ's work horse has its own group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    todo, seen = [pid], []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo.extend(children.get(current, []))
    for victim in seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def db(env: dict[str, str]) -> sa.Engine:
    return sa.create_engine(env["DATABASE_URL"])


def offers_of(engine: sa.Engine, integration_id: int) -> set[tuple]:
    cols = ", ".join(OFFER_COLUMNS)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT {cols} FROM xsale_amazon_offer WHERE integration_id = :i"
        ), {"i": integration_id}).all()
    return {tuple(r) for r in rows}


def test_import_wait_succeeds_and_failure_exits_nonzero(cli_env, worker):
    worker()
    ok = flask(cli_env, "xsale-amazon", "import", "1", "--wait", "--timeout", "90")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Succeeded" in ok.stdout and "created" in ok.stdout
    engine = db(cli_env)
    assert len(offers_of(engine, 1)) > 0
    fr = flask(cli_env, "xsale-amazon", "import", "3", "--wait", "--timeout", "90")
    assert fr.returncode == 1
    assert "asin1" in fr.stderr and "Inventory Reports" in fr.stderr
    assert offers_of(engine, 3) == set()
    engine.dispose()


def test_second_import_is_refused_while_one_runs(cli_env):
    # No worker: --queue-only leaves it queued for one started later.
    first = flask(cli_env, "xsale-amazon", "import", "2", "--queue-only")
    assert first.returncode == 0, first.stderr
    second = flask(cli_env, "xsale-amazon", "import", "2")
    assert second.returncode != 0
    assert "already running" in second.stderr


def test_autolink_command(cli_env, worker):
    worker()
    assert flask(cli_env, "xsale-amazon", "import", "1", "--wait").returncode == 0
    out = flask(cli_env, "xsale-amazon", "autolink", "1", "--by", "sku")
    assert out.returncode == 0, out.stderr
    linked = int(out.stdout.split("linked ")[1].split(",")[0])
    assert linked > 0
    counts = [int(n) for n in re.findall(r"\d+", out.stdout.splitlines()[0])]
    assert counts[0] == sum(counts[1:]), out.stdout  # checked = linked + ambiguous + ...
    again = flask(cli_env, "xsale-amazon", "autolink", "1", "--by", "sku")
    assert "linked 0," in again.stdout and f"already linked {linked}" in again.stdout


def _wait_for(engine: sa.Engine, sql: str, *, timeout: float, **params: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            value = conn.execute(sa.text(sql), params).scalar()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {sql}")


def test_worker_killed_mid_import_is_recovered_and_rerun_converges(cli_env, worker, emulator):
    rows = list(demo_listings(60_000, seed=21, marketplace="DE"))
    emulator.set_listings(get_marketplace("DE").marketplace_id,
                          render_report(rows, "eu_en", encoding="cp1252"), charset="Cp1252")
    engine = db(cli_env)
    # Integration 1 gets an uninterrupted import (the reference) first.
    proc = worker()
    assert flask(cli_env, "xsale-amazon", "import", "1", "--wait").returncode == 0
    reference = offers_of(engine, 1)
    assert len(reference) == len(rows)
    # A second FBM integration on the same marketplace, with an earlier state and a link.
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO xsale_amazon_integration (name, marketplace, account_type, seller_id, "
            "lwa_client_id, lwa_client_secret, refresh_token, active, created_at, updated_at) "
            "SELECT 'DE copy', marketplace, account_type, 'A2COPY', lwa_client_id, "
            "lwa_client_secret, refresh_token, active, created_at, updated_at "
            "FROM xsale_amazon_integration WHERE id = 1"))
        copy_id = conn.execute(sa.text("SELECT max(id) FROM xsale_amazon_integration")).scalar()
        conn.execute(sa.text(
            "INSERT INTO xsale_amazon_offer (integration_id, seller_sku, name, first_seen_at, "
            "last_seen_at) VALUES (:i, 'OLD-SKU', 'Old', now(), now())"), {"i": copy_id})
        conn.execute(sa.text(
            "INSERT INTO xsale_amazon_offer_product_link (offer_id, product_id, method, "
            "created_at) SELECT o.id, (SELECT min(id) FROM towar), 'manual', now() "
            "FROM xsale_amazon_offer o WHERE o.seller_sku = 'OLD-SKU'"))
    before = offers_of(engine, copy_id)
    started = flask(cli_env, "xsale-amazon", "import", str(copy_id))
    assert started.returncode == 0
    _wait_for(engine, "SELECT 1 FROM xsale_amazon_import_run WHERE integration_id = :i AND "
              "stage = 'parsing' AND rows_done > 0", timeout=60, i=copy_id)
    kill_tree(proc.pid)
    proc.wait(timeout=10)
    time.sleep(3.5)  # > XSALE_AMAZON_HEARTBEAT_TIMEOUT
    assert offers_of(engine, copy_id) == before, "a killed import must not change offers"
    recovered = flask(cli_env, "xsale-amazon", "recover")
    assert "Marked 1 stale" in recovered.stdout, recovered.stdout + recovered.stderr
    with engine.connect() as conn:
        status, code = conn.execute(sa.text(
            "SELECT status, error_code FROM xsale_amazon_import_run WHERE integration_id = :i "
            "ORDER BY id DESC LIMIT 1"), {"i": copy_id}).one()
        assert (status, code) == ("failed", "worker_died")
        assert conn.execute(sa.text(
            "SELECT count(*) FROM xsale_amazon_offer_product_link")).scalar() == 1
    worker()
    # OLD-SKU is the only live offer and the report drops it: 100 % removed, so confirm it.
    rerun = flask(cli_env, "xsale-amazon", "import", str(copy_id), "--wait", "--allow-removal")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = offers_of(engine, copy_id)
    live = {o for o in after if o[-1] is None}
    assert {o[:-1] for o in live} == {o[:-1] for o in reference}
    removed = [o for o in after if o[-1] is not None]
    assert [o[0] for o in removed] == ["OLD-SKU"]
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM xsale_amazon_offer_product_link")).scalar() == 1
        leftovers = conn.execute(sa.text("SELECT count(*) FROM xsale_amazon_import_row")).scalar()
    assert leftovers == 0
    engine.dispose()


@pytest.fixture
def memory_queue_env(cli_env: dict[str, str]) -> dict[str, str]:
    """The sample app as README command 1 runs it: no Redis, an in-memory queue."""
    env = dict(cli_env)
    env.pop("XSALE_AMAZON_REDIS_URL")
    return env


def _runs(env: dict[str, str]) -> list[tuple]:
    engine = db(env)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT id, status, active_lock FROM xsale_amazon_import_run ORDER BY id")).all())
    finally:
        engine.dispose()


def test_cli_import_on_the_in_memory_queue_refuses_or_runs_inline(memory_queue_env):
    env = memory_queue_env
    refused = flask(env, "xsale-amazon", "import", "1", "--wait", "--timeout", "15")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "--inline" in refused.stderr and "in memory" in refused.stderr
    assert "goes on in the background" not in refused.stdout + refused.stderr
    assert _runs(env) == [], "a refused CLI import must leave no run behind"

    inline = flask(env, "xsale-amazon", "import", "1", "--inline", "--timeout", "90")
    assert inline.returncode == 0, inline.stdout + inline.stderr
    assert "Succeeded" in inline.stdout and "created" in inline.stdout
    assert [(status, lock) for _id, status, lock in _runs(env)] == [("succeeded", None)]
    engine = db(env)
    assert len(offers_of(engine, 1)) > 0
    engine.dispose()


def test_cli_import_without_a_worker_refuses_clearly(cli_env):
    refused = flask(cli_env, "xsale-amazon", "import", "1")
    assert refused.returncode == 1
    assert "No RQ worker is listening" in refused.stderr
    assert "flask xsale-amazon worker" in refused.stderr
    assert _runs(cli_env) == []


def test_cli_cancel_ends_the_run_and_frees_the_integration(cli_env):
    queued = flask(cli_env, "xsale-amazon", "import", "2", "--queue-only")
    assert queued.returncode == 0, queued.stderr
    run_id = _runs(cli_env)[0][0]
    cancelled = flask(cli_env, "xsale-amazon", "cancel", str(run_id))
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"#{run_id} cancelled" in cancelled.stdout
    assert _runs(cli_env) == [(run_id, "cancelled", None)]
    again = flask(cli_env, "xsale-amazon", "cancel", str(run_id))
    assert again.returncode == 1 and "already ended" in again.stderr
    missing = flask(cli_env, "xsale-amazon", "cancel", "999999")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # The integration can import again at once.
    next_run = flask(cli_env, "xsale-amazon", "import", "2", "--queue-only")
    assert next_run.returncode == 0, next_run.stderr
