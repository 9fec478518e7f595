"""Scheduled imports with real `flask xsale-amazon worker` processes, Redis, PostgreSQL and
MariaDB.

Four independent environments (own database, own queue) run at the same time so the
minute-scale scenarios share one wall-clock wait of about four minutes; per database:

- *running*: two workers, 1-minute schedules for three integrations — one that imports
  fine (3 runs in 3 minutes ±1, never two for one slot), one whose imports fail (paused after
  three), one kept busy by a long manual import (its slots are skipped and recorded);
- *down*: no worker while three slots pass, then one worker: exactly one catch-up run.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
from xsale_amazon_plugin.timeutil import as_utc

from .conftest import SERVER_BACKENDS, server_database
from .processes import FLASK, ROOT, cli_environment, flask, kill_tree

UTC = timezone.utc


@dataclass
class Env:
    backend: str
    env: dict[str, str]
    engine: sa.Engine
    procs: list[subprocess.Popen] = field(default_factory=list)

    def worker(self) -> None:
        self.procs.append(subprocess.Popen(
            [*FLASK, "xsale-amazon", "worker"], cwd=ROOT, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Rows of ``sql``; ``{trigger}`` is the quoted column name (reserved in MySQL)."""
        quoted = self.engine.dialect.identifier_preparer.quote_identifier("trigger")
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql.replace("{trigger}", quoted)), params).all())

    def set_every_minute(self, *integration_ids: int) -> datetime:
        for integration_id in integration_ids:
            out = flask(self.env, "xsale-amazon", "schedule", str(integration_id), "--every", "1")
            assert out.returncode == 0, out.stdout + out.stderr
        return datetime.now(UTC)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc.pid)
                proc.wait(timeout=10)
        self.engine.dispose()


def _environment(stack: contextlib.ExitStack, backend: str, emulator: Any) -> Env:
    url = stack.enter_context(server_database(backend))
    env = next(cli_environment(url, emulator))  # schema created and seeded by the sample app
    env["XSALE_AMAZON_SCHEDULE_TICK"] = "1"
    env["XSALE_AMAZON_HEARTBEAT_TIMEOUT"] = "30"
    made = Env(backend, env, sa.create_engine(url))
    stack.callback(made.stop)
    return made


def _sleep_until(moment: datetime) -> None:
    remaining = (moment - datetime.now(UTC)).total_seconds()
    if remaining > 0:
        time.sleep(remaining)


def _wait_for_rows(env: Env, sql: str, *, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = env.rows(sql)
        if rows:
            return rows
        time.sleep(0.5)
    raise AssertionError(f"{env.backend}: nothing appeared in {timeout} s: {sql}")


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_workers_one_run_per_slot_skips_pauses_and_one_catch_up(emulator, redis_conn):
    with contextlib.ExitStack() as stack:
        running = {b: _environment(stack, b, emulator) for b in SERVER_BACKENDS}
        down = {b: _environment(stack, b, emulator) for b in SERVER_BACKENDS}
        # After the seeding above (which resets the emulator): IT reports never finish.
        emulator.set_listings(get_marketplace("IT").marketplace_id,
                              render_report(list(demo_listings(5, seed=5, marketplace="IT")),
                                            "eu_en", encoding="cp1252"),
                              charset="Cp1252", polls_until_done=1_000_000)
        for env in running.values():
            with env.engine.begin() as conn:  # integration 4: IT, credentials of integration 1
                conn.execute(sa.text(
                    "INSERT INTO xsale_amazon_integration (name, marketplace, account_type, "
                    "seller_id, lwa_client_id, lwa_client_secret, refresh_token, active, "
                    "created_at, updated_at) SELECT 'Amazon IT', 'IT', account_type, seller_id, "
                    "lwa_client_id, lwa_client_secret, refresh_token, active, created_at, "
                    "updated_at FROM xsale_amazon_integration WHERE id = 1"))
            busy = flask(env.env, "xsale-amazon", "import", "4", "--queue-only")
            assert busy.returncode == 0, busy.stdout + busy.stderr
            env.worker()
            env.worker()
        first_slot = {b: _minute(env.set_every_minute(1, 3, 4)) for b, env in running.items()}
        down_first = {b: _minute(env.set_every_minute(1)) for b, env in down.items()}

        # Down: three slots pass without any worker, then one worker comes back.
        for backend, env in down.items():
            _sleep_until(down_first[backend] + timedelta(minutes=2, seconds=8))
            assert env.rows("SELECT count(*) FROM xsale_amazon_import_run")[0][0] == 0
            env.worker()
        for env in down.values():
            _wait_for_rows(env, "SELECT id FROM xsale_amazon_import_run", timeout=40)

        # Running: three slots (first_slot + 0, 1, 2 min) and time for the third to finish.
        _sleep_until(max(first_slot.values()) + timedelta(minutes=2, seconds=40))
        results = {}
        for backend, env in running.items():
            results[backend] = dict(
                runs=env.rows("SELECT integration_id, {trigger}, status, id FROM "
                              "xsale_amazon_import_run ORDER BY id"),
                slots=[(r[0], as_utc(r[1]), r[2], r[3]) for r in env.rows(
                    "SELECT integration_id, slot_at, outcome, run_id FROM "
                    "xsale_amazon_schedule_slot ORDER BY integration_id, slot_at")],
                schedules={r[0]: r[1:] for r in env.rows(
                    "SELECT integration_id, paused_at, paused_reason FROM xsale_amazon_schedule")},
                listing=flask(env.env, "xsale-amazon", "schedule", "--list").stdout,
                down_slots=[(as_utc(r[0]), r[1], r[2]) for r in down[backend].rows(
                    "SELECT s.slot_at, s.outcome, r.{trigger} FROM xsale_amazon_schedule_slot s "
                    "LEFT JOIN xsale_amazon_import_run r ON s.run_id = r.id ORDER BY s.slot_at")],
            )

    for backend, got in results.items():
        def per(integration_id: int, rows: list[Any]) -> list[Any]:
            return [r for r in rows if r[0] == integration_id]

        runs, slots = got["runs"], got["slots"]
        # Integration 1 imports fine: three slots, one run each, never two for a slot.
        scheduled = [r for r in per(1, runs) if r[1] == "schedule"]
        print(f"\n{backend} running env: integration 1 scheduled runs={len(scheduled)} "
              f"slots={[(s[1].strftime('%H:%M'), s[2], s[3]) for s in per(1, slots)]}")
        assert 2 <= len(scheduled) <= 4, (backend, scheduled)
        run_ids = [s[3] for s in per(1, slots) if s[2] == "started"]
        assert len(run_ids) == len(set(run_ids)) == len(scheduled), backend
        assert len({s[1] for s in per(1, slots)}) == len(per(1, slots)), backend
        assert all(r[2] == "succeeded" for r in scheduled[:-1]), (backend, scheduled)
        # Integration 3 (FR without an ASIN column) failed three times in a row: paused.
        failed = [r for r in per(3, runs) if r[1] == "schedule"]
        print(f"{backend} integration 3 failed runs={[(r[3], r[2]) for r in failed]} "
              f"paused={got['schedules'].get(3)}")
        assert [r[2] for r in failed] == ["failed"] * 3, backend
        assert got["schedules"][3][0] is not None and got["schedules"][3][1] == "failures"
        assert "\tevery 1 min (paused)\tpaused\t" in got["listing"], backend
        # Integration 4's manual import kept running: every slot skipped and recorded, no run.
        skipped = per(4, slots)
        shown = [(s[1].strftime("%H:%M"), s[2], s[3]) for s in skipped]
        print(f"{backend} integration 4 slots={shown}")
        assert 2 <= len(skipped) <= 4 and {s[2] for s in skipped} == {"skipped"}, backend
        assert [r[1] for r in per(4, runs)] == ["cli"], backend
        assert {s[3] for s in skipped} == {per(4, runs)[0][3]}, backend
        # Down env: one catch-up run for the latest of the three missed slots.
        last_missed = down_first[backend] + timedelta(minutes=2)
        caught_up = [s for s in got["down_slots"] if s[0] <= last_missed]
        shown = [(s[0].strftime("%H:%M"), s[1], s[2]) for s in got["down_slots"]]
        print(f"{backend} down env: slots={shown}")
        assert caught_up == [(last_missed, "started", "schedule")], (backend, got["down_slots"])
