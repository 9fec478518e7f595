"""Scheduled imports with real `flask xsale-amazon worker` processes, Redis and PostgreSQL.

Two independent environments run at the same time (own schema, own queue) so the
minute-scale scenarios share one wall-clock wait of about four minutes:

- *running*: two workers, 1-minute schedules for three integrations — one that imports
  fine (3 runs in 3 minutes ±1, never two for one slot), one whose imports fail (paused after
  three), one kept busy by a long manual import (its slots are skipped and recorded);
- *down*: no worker while three slots pass, then one worker: exactly one catch-up run.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
from xsale_amazon_plugin.marketplaces import get_marketplace

from .test_cli import FLASK, ROOT, cli_env, db, flask, kill_tree  # noqa: F401

UTC = timezone.utc


def _env(base: dict[str, str], emulator: Any) -> Any:
    """A second copy of the CLI environment with its own schema and queue."""
    import uuid

    from .conftest import PG_BASE

    schema = "xa_sched_" + uuid.uuid4().hex[:8]
    engine = sa.create_engine(PG_BASE)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = dict(base, DATABASE_URL=f"{PG_BASE}?options=-csearch_path%3D{schema}",
               XSALE_AMAZON_QUEUE='"xa-sched-' + uuid.uuid4().hex[:8] + '"')
    init = flask(env, "xsale-amazon", "recover")
    assert init.returncode == 0, init.stderr
    return env, schema, engine, db(env)


def _rows(engine: sa.Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def _set_every_minute(env: dict[str, str], *integration_ids: int) -> datetime:
    for integration_id in integration_ids:
        out = flask(env, "xsale-amazon", "schedule", str(integration_id), "--every", "1")
        assert out.returncode == 0, out.stdout + out.stderr
    return datetime.now(UTC)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_workers_one_run_per_slot_skips_pauses_and_one_catch_up(cli_env, emulator):  # noqa: F811
    import subprocess

    env = dict(cli_env, XSALE_AMAZON_SCHEDULE_TICK="1", XSALE_AMAZON_HEARTBEAT_TIMEOUT="30")
    busy = get_marketplace("IT")
    emulator.set_listings(busy.marketplace_id,
                          render_report(list(demo_listings(5, seed=5, marketplace="IT")),
                                        "eu_en", encoding="cp1252"),
                          charset="Cp1252", polls_until_done=1_000_000)
    running = db(env)
    with running.begin() as conn:  # integration 4: IT, same credentials as integration 1
        conn.execute(sa.text(
            "INSERT INTO xsale_amazon_integration (name, marketplace, account_type, seller_id, "
            "lwa_client_id, lwa_client_secret, refresh_token, active, created_at, updated_at) "
            "SELECT 'Amazon IT', 'IT', account_type, seller_id, lwa_client_id, "
            "lwa_client_secret, refresh_token, active, created_at, updated_at "
            "FROM xsale_amazon_integration WHERE id = 1"))
    busy_run = flask(env, "xsale-amazon", "import", "4", "--queue-only")  # workers start below
    assert busy_run.returncode == 0, busy_run.stderr

    down_env, down_schema, admin_engine, down_engine = _env(env, emulator)
    procs: list[subprocess.Popen] = []
    try:
        worker_a = subprocess.Popen([*FLASK, "xsale-amazon", "worker"], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
        worker_b = subprocess.Popen([*FLASK, "xsale-amazon", "worker"], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
        procs += [worker_a, worker_b]
        set_at = _set_every_minute(env, 1, 3, 4)
        down_set_at = _set_every_minute(down_env, 1)
        first_slot = set_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        down_first_slot = down_set_at.replace(second=0, microsecond=0) + timedelta(minutes=1)

        # Down: three slots pass without any worker, then one worker comes back.
        _sleep_until(down_first_slot + timedelta(minutes=2, seconds=8))
        assert _rows(down_engine, "SELECT count(*) FROM xsale_amazon_import_run")[0][0] == 0
        comeback = subprocess.Popen([*FLASK, "xsale-amazon", "worker"], cwd=ROOT,
                                    env=down_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(comeback)
        caught_up = _wait_for_rows(down_engine, "SELECT id FROM xsale_amazon_import_run",
                                   timeout=40)

        # Running: three slots (first_slot + 0, 1, 2 min) and time for the third to finish.
        _sleep_until(first_slot + timedelta(minutes=2, seconds=40))
        down_seen_at = datetime.now(UTC)
        down_slots = _rows(down_engine, "SELECT s.slot_at, s.outcome, r.trigger "
                                        "FROM xsale_amazon_schedule_slot s LEFT JOIN "
                                        "xsale_amazon_import_run r ON s.run_id = r.id "
                                        "WHERE s.slot_at <= :last ORDER BY s.slot_at",
                           last=down_first_slot + timedelta(minutes=2))
        runs = _rows(running, "SELECT integration_id, trigger, status, id FROM "
                              "xsale_amazon_import_run ORDER BY id")
        slots = _rows(running, "SELECT integration_id, slot_at, outcome, run_id FROM "
                               "xsale_amazon_schedule_slot ORDER BY integration_id, slot_at")
        schedules = {r[0]: r[1:] for r in _rows(
            running, "SELECT integration_id, paused_at, paused_reason FROM "
                     "xsale_amazon_schedule")}
        listing = flask(env, "xsale-amazon", "schedule", "--list").stdout
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_tree(proc.pid)
                proc.wait(timeout=10)
        down_engine.dispose()
        running.dispose()
        with admin_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{down_schema}" CASCADE'))
        admin_engine.dispose()

    def per(integration_id: int, rows: list[Any]) -> list[Any]:
        return [r for r in rows if r[0] == integration_id]

    # Integration 1 imports fine: three slots, one run each, never two for a slot.
    scheduled = [r for r in per(1, runs) if r[1] == "schedule"]
    print(f"\nrunning env: integration 1 scheduled runs={len(scheduled)} "
          f"slots={[(s[1].isoformat(), s[2], s[3]) for s in per(1, slots)]}")
    assert 2 <= len(scheduled) <= 4, scheduled
    run_ids = [s[3] for s in per(1, slots) if s[2] == "started"]
    assert len(run_ids) == len(set(run_ids)) == len(scheduled)
    assert len({s[1] for s in per(1, slots)}) == len(per(1, slots))  # one record per slot
    assert all(r[2] == "succeeded" for r in scheduled[:-1])
    # Integration 3 (FR without an ASIN column) failed three times in a row: paused.
    failed = [r for r in per(3, runs) if r[1] == "schedule"]
    print(f"integration 3 failed runs={[(r[3], r[2]) for r in failed]} schedule={schedules.get(3)}")
    assert [r[2] for r in failed] == ["failed"] * 3
    assert schedules[3][0] is not None and schedules[3][1] == "failures"
    assert "\tevery 1 min (paused)\tpaused\t" in listing
    # Integration 4's manual import kept running: every slot skipped and recorded, no run.
    skipped = per(4, slots)
    print(f"integration 4 slots={[(s[1].isoformat(), s[2], s[3]) for s in skipped]}")
    assert 2 <= len(skipped) <= 4 and {s[2] for s in skipped} == {"skipped"}
    assert [r[1] for r in per(4, runs)] == ["cli"]
    assert {s[3] for s in skipped} == {per(4, runs)[0][3]}
    # Down env: one catch-up run for the latest of the three missed slots.
    print(f"down env: slots={down_slots} first run ids={caught_up} seen at "
          f"{down_seen_at.isoformat()}")
    assert [(s[0], s[1], s[2]) for s in down_slots] == [
        (down_first_slot + timedelta(minutes=2), "started", "schedule")]


def _wait_for_rows(engine: sa.Engine, sql: str, *, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _rows(engine, sql)
        if rows:
            return rows
        time.sleep(0.5)
    raise AssertionError(f"nothing appeared in {timeout} s: {sql}")


def _sleep_until(moment: datetime) -> None:
    remaining = (moment - datetime.now(UTC)).total_seconds()
    if remaining > 0:
        time.sleep(remaining)
