"""Fault injection: faults must never cost data.

Real RQ worker subprocesses (``flask --app sample_app xsale-amazon worker``), real Redis and
PostgreSQL, the local SP-API emulator. Each fault is injected for real: SIGKILL of the worker
and its work horse, a dedicated ``redis-server`` that is killed, ``pg_terminate_backend`` of the
worker's connections, misbehaving Amazon. After each fault the offers and links are either
exactly as before the import or exactly what an uninterrupted import produces, the run ends in a
clear state, and a re-run converges.

The kill campaign (:class:`FaultLab`, :func:`default_points`, :func:`run_point`) is shared with
``bench/kill_campaign.py``; ``XSALE_KILL_POINTS`` / ``XSALE_KILL_ROWS`` raise its CI size.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
from xsale_amazon_plugin.timeutil import as_utc, utcnow

from .conftest import MYSQL_BASE, PG_BASE, SERVER_BACKENDS
from .polling import wait_until
from .processes import FLASK, ROOT, flask, free_port, kill_tree

DE = get_marketplace("DE").marketplace_id
OFFER = "xsale_amazon_offer"
LINK = "xsale_amazon_offer_product_link"
RUN = "xsale_amazon_import_run"
STAGING = "xsale_amazon_import_row"
#: What an import decides about an offer (ids and timestamps aside).
PROJECTION = ("seller_sku", "asin", "name", "listing_id", "price", "currency", "quantity",
              "fulfillment_channel", "status", "product_id", "product_id_type", "open_date",
              "open_date_raw")
ACTIVE = ("queued", "requesting", "waiting", "processing")
HEARTBEAT_TIMEOUT = 2.0



# -- a dedicated Redis that can really die -------------------------------------------------------


class RedisServer:
    """A throw-away ``redis-server`` on its own loopback port (no persistence)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        from redis import Redis

        client = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except Exception:
                return False

        try:
            wait_until(up, timeout=10, what=f"redis-server on port {self.port}")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_tree(self.proc.pid)
            self.proc.wait(timeout=10)
        self.proc = None


# -- the lab: one schema, one queue, workers, an earlier state and a reference --------------------

_REPORTS: dict[int, tuple[bytes, bytes, list[dict], list[dict]]] = {}


def reports(rows: int) -> tuple[bytes, bytes, list[dict], list[dict]]:
    """(old report, new report, old rows, new rows) for a campaign of ``rows`` rows.

    The old version lacks the first 2 % of the new SKUs, has other prices on every 97th row,
    and holds 0.5 % extra ``GONE-`` SKUs that the new version no longer lists.
    """
    if rows not in _REPORTS:
        new = list(demo_listings(rows, seed=21, marketplace="DE"))
        fresh = max(1, rows // 50)
        old = [dict(r, price=(r["price"] or Decimal("1")) + Decimal("1.11")) if i % 97 == 0
               else r for i, r in enumerate(new)][fresh:]
        old += list(demo_listings(max(3, rows // 200), seed=22, marketplace="DE",
                                  sku_prefix="GONE-"))
        _REPORTS[rows] = (render_report(old, "eu_en", encoding="cp1252"),
                          render_report(new, "eu_en", encoding="cp1252"), old, new)
    return _REPORTS[rows]


@dataclass
class FaultLab:
    """Everything a fault test needs, torn down (workers killed, schema dropped) by close()."""

    emulator: Any
    rows: int = 20_000
    redis_url: str = "redis://127.0.0.1:6379/9"
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    batch_size: int = 2000
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list[subprocess.Popen] = field(default_factory=list)
    reference_id: int = 1
    target_id: int = 0
    backend: str = "postgresql"

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self) -> FaultLab:
        import sample_app

        self.schema = f"xa_fault_{self.tag}"
        self.app_name = f"xa-worker-{self.tag}"
        if self.backend == "mariadb":
            url, worker_url = self._open_mariadb()
        else:
            self.admin = sa.create_engine(PG_BASE)
            with self.admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            url = f"{PG_BASE}?options=-csearch_path%3D{self.schema}"
            worker_url = f"{url}&application_name={self.app_name}"
        self.env = dict(
            os.environ,
            DATABASE_URL=url,
            SECRET_KEY="fault-test-secret",
            XSALE_AMAZON_REDIS_URL=f'"{self.redis_url}"',
            XSALE_AMAZON_QUEUE=f'"xa-fault-{self.tag}"',
            XSALE_AMAZON_SPAPI_ENDPOINT=f'"{self.emulator.url}"',
            XSALE_AMAZON_LWA_ENDPOINT=f'"{self.emulator.lwa_url}"',
            XSALE_AMAZON_POLL_INTERVAL="0.2",
            XSALE_AMAZON_POLL_MAX_INTERVAL="0.5",
            XSALE_AMAZON_HEARTBEAT_TIMEOUT=str(self.heartbeat_timeout),
            XSALE_AMAZON_REPORT_REUSE_WINDOW="0",
            XSALE_AMAZON_BATCH_SIZE=str(self.batch_size),
            XSALE_AMAZON_MAX_RETRIES="1",
            PYTHONPATH=ROOT,
        )
        self.worker_env = dict(self.env, DATABASE_URL=worker_url)
        self.engine = sa.create_engine(url)
        self.emulator.reset()
        sample_app.seed_emulator(self.emulator)
        init = flask(self.env, "xsale-amazon", "recover")
        assert init.returncode == 0, init.stderr
        return self

    def close(self) -> None:
        if not hasattr(self, "admin"):
            return
        for proc in self.workers:
            if proc.poll() is None:
                kill_tree(proc.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self.engine.dispose()
        self.terminate_worker_backends()
        with self.admin.begin() as conn:
            if self.backend == "mariadb":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.schema}`"))
                conn.execute(sa.text(f"DROP USER IF EXISTS '{self.app_name}'@'%'"))
            else:
                conn.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.admin.dispose()

    def _open_mariadb(self) -> tuple[str, str]:
        """A database and, for the workers, a user of their own: their connections are the
        ones of that user (MariaDB has no application_name)."""
        self.admin = sa.create_engine(MYSQL_BASE)
        self.app_name = f"xa_w_{self.tag}"
        with self.admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{self.schema}` CHARACTER SET utf8mb4"))
            conn.execute(sa.text(f"CREATE USER '{self.app_name}'@'%' IDENTIFIED BY '{self.tag}'"))
            conn.execute(sa.text(f"GRANT ALL ON `{self.schema}`.* TO '{self.app_name}'@'%'"))
        base = sa.make_url(MYSQL_BASE).set(database=self.schema, query={"charset": "utf8mb4"})
        worker = base.set(username=self.app_name, password=self.tag)
        return (base.render_as_string(hide_password=False),
                worker.render_as_string(hide_password=False))

    def __enter__(self) -> FaultLab:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- processes ------------------------------------------------------------------------------
    def spawn_worker(self) -> subprocess.Popen:
        proc = subprocess.Popen([*FLASK, "xsale-amazon", "worker"], cwd=ROOT, env=self.worker_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.workers.append(proc)
        return proc

    def kill_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                kill_tree(proc.pid)
                proc.wait(timeout=10)

    def live_workers(self) -> int:
        return sum(proc.poll() is None for proc in self.workers)

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return flask(self.env, "xsale-amazon", *args, timeout=timeout)

    def start_import(self, integration_id: int) -> int:
        # --queue-only: the lab starts and kills its workers itself.
        out = self.cli("import", str(integration_id), "--queue-only")
        assert out.returncode == 0, out.stdout + out.stderr
        return int(re.search(r"run #(\d+)", out.stdout).group(1))

    def recover(self) -> int:
        out = self.cli("recover")
        assert out.returncode == 0, out.stderr
        return int(re.search(r"Marked (\d+)", out.stdout).group(1))

    # -- database views -------------------------------------------------------------------------
    def run(self, run_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.text(f"SELECT * FROM {RUN} WHERE id = :r"),
                                     {"r": run_id}).mappings().one())

    def wait_run_end(self, run_id: int, timeout: float = 300) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            row = self.run(run_id)
            return row if row["status"] not in ACTIVE else None

        return wait_until(ended, timeout=timeout, interval=0.1, what=f"run {run_id} to end")

    def import_and_wait(self, integration_id: int, timeout: float = 300) -> dict[str, Any]:
        if not self.live_workers():
            self.spawn_worker()
        return self.wait_run_end(self.start_import(integration_id), timeout)

    @property
    def staging_statement(self) -> str:
        """How the statements that stage report rows begin."""
        return "INSERT INTO xsale_amazon_import_row" if self.backend == "mariadb" else "COPY"

    def worker_backends(self) -> list[dict[str, Any]]:
        """The workers' database connections: pid, state (active/idle), wait_event_type
        ("Lock" while waiting for a row lock) and the start of the query."""
        if self.backend == "mariadb":
            return self._mariadb_backends()
        with self.admin.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(
                "SELECT pid, state, wait_event_type, left(query, 60) AS query "
                "FROM pg_stat_activity WHERE application_name = :a"),
                {"a": self.app_name}).mappings()]

    def _mariadb_backends(self) -> list[dict[str, Any]]:
        with self.admin.connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.text(
                "SELECT p.id AS pid, "
                "CASE WHEN p.command = 'Sleep' THEN 'idle' ELSE 'active' END AS state, "
                # innodb_trx does not reliably show an UPDATE with a dependent subquery as
                # LOCK WAIT; a statement of these small imports running for over 2 s waits
                # for the row lock the test holds.
                "CASE WHEN t.trx_state = 'LOCK WAIT' OR (p.command = 'Query' AND "
                "p.time_ms > 2000) THEN 'Lock' END AS wait_event_type, "
                "left(p.info, 400) AS query FROM information_schema.processlist p "
                "LEFT JOIN information_schema.innodb_trx t ON t.trx_mysql_thread_id = p.id "
                "WHERE p.user = :u"), {"u": self.app_name}).mappings()]
        for row in rows:  # MySQL's multi-table UPDATE spelled like PostgreSQL's UPDATE ... FROM
            query = (row["query"] or "").replace(", xsale_amazon_import_row SET", " SET")
            row["query"] = query.replace("SET xsale_amazon_offer.", "SET ")[:60]
        return rows

    def terminate_worker_backends(self) -> int:
        if self.backend == "mariadb":
            pids = [b["pid"] for b in self._mariadb_backends()]
            with self.admin.begin() as conn:
                for pid in pids:
                    with contextlib.suppress(sa.exc.DBAPIError):  # already gone
                        conn.execute(sa.text(f"KILL CONNECTION {int(pid)}"))
            return len(pids)
        with self.admin.begin() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'test' "
                "AND pid <> pg_backend_pid() AND application_name = :a"),
                {"a": self.app_name}).all())

    def offers(self, integration_id: int) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                f"SELECT * FROM {OFFER} WHERE integration_id = :i ORDER BY id"),
                {"i": integration_id})]

    def projection(self, integration_id: int) -> tuple[set[tuple], set[str]]:
        """(live offers as PROJECTION tuples, SKUs of removed offers)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                f"SELECT {', '.join(PROJECTION)}, removed_at FROM {OFFER} "
                "WHERE integration_id = :i"), {"i": integration_id}).all()
        live = {tuple(r[:-1]) for r in rows if r[-1] is None}
        return live, {r[0] for r in rows if r[-1] is not None}

    def links(self) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {LINK} ORDER BY id"))]

    def staged(self, run_id: int | None = None) -> int:
        where = "" if run_id is None else f" WHERE run_id = {int(run_id)}"
        with self.engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {STAGING}{where}")).scalar_one()

    def duplicate_offers(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(
                f"SELECT count(*) FROM (SELECT integration_id, seller_sku FROM {OFFER} "
                "GROUP BY integration_id, seller_sku HAVING count(*) > 1) d")).scalar_one()

    # -- the scenario -----------------------------------------------------------------------------
    def publish(self, content: bytes, **kwargs: Any) -> None:
        kwargs.setdefault("polls_until_done", 2)
        self.emulator.set_listings(DE, content, charset="Cp1252", **kwargs)

    def prepare(self) -> None:
        """Reference import of the new report into integration 1; the target integration (a
        copy of 1) gets the old report plus links, one of them on an offer the new report
        removes, and one offer removed earlier that the new report restores."""
        old, new, old_rows, new_rows = reports(self.rows)
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO xsale_amazon_integration (name, marketplace, account_type, "
                "seller_id, lwa_client_id, lwa_client_secret, refresh_token, active, "
                "created_at, updated_at) "
                "SELECT 'DE target', marketplace, account_type, 'A2TARGET', lwa_client_id, "
                "lwa_client_secret, refresh_token, active, created_at, updated_at "
                "FROM xsale_amazon_integration WHERE id = 1"))
            self.target_id = conn.execute(sa.text(
                "SELECT max(id) FROM xsale_amazon_integration")).scalar_one()
        self.emulator.configure()
        self.publish(old)
        assert self.import_and_wait(self.target_id)["status"] == "succeeded"
        self.publish(new)
        ref = self.import_and_wait(self.reference_id)
        assert ref["status"] == "succeeded", ref["error_message"]
        self.reference = self.projection(self.reference_id)[0]
        assert len(self.reference) == len(new_rows)
        fresh = {r["seller_sku"] for r in new_rows[: max(1, self.rows // 50)]}
        with self.engine.begin() as conn:
            ids = dict(conn.execute(sa.text(
                f"SELECT seller_sku, id FROM {OFFER} WHERE integration_id = :i"),
                {"i": self.target_id}).all())
            products = list(conn.execute(sa.text("SELECT id FROM towar ORDER BY id")).scalars())
            new_skus = {r["seller_sku"] for r in new_rows}
            gone = sorted({r["seller_sku"] for r in old_rows} - new_skus)
            kept = sorted(s for s in ids if s in new_skus and s not in fresh)
            first = (len(fresh) // 97 + 1) * 97  # every 97th row has another price
            changed = new_rows[first + 97 * 3]["seller_sku"]
            self.restored_sku = kept[5]
            self.lock_changed, self.lock_gone = new_rows[first + 97 * 5]["seller_sku"], gone[-1]
            conn.execute(sa.text(f"UPDATE {OFFER} SET removed_at = last_seen_at WHERE id = :o"),
                         {"o": ids[self.restored_sku]})
            linked = [kept[1], kept[2], changed, gone[0], self.restored_sku]
            for n, sku in enumerate(linked):
                conn.execute(sa.text(
                    f"INSERT INTO {LINK} (offer_id, product_id, method, created_by, created_at) "
                    "VALUES (:o, :p, 'manual', 'fault-test', now())"),
                    {"o": ids[sku], "p": products[n % len(products)]})
        self.expected_removed = set(gone)
        # One poll only from now on: after a SIGKILL the dead worker's RQ scheduler lock
        # (61 s TTL) keeps a new worker's scheduler out until its 10-minute maintenance, so
        # polls scheduled for later would stall (see the RELIABILITY notes).
        self.publish(new, polls_until_done=1)
        self.earlier = self.offers(self.target_id)
        self.earlier_links = self.links()
        assert self.projection(self.target_id)[0] != self.reference

    def restore_earlier(self) -> None:
        """Put the target's offers and links back exactly as prepared (ids included)."""
        md = sa.MetaData()
        with self.engine.begin() as conn:
            offer = sa.Table(OFFER, md, autoload_with=conn)
            link = sa.Table(LINK, md, autoload_with=conn)
            conn.execute(offer.delete().where(offer.c.integration_id == self.target_id))
            names = [c.name for c in offer.columns]
            conn.execute(offer.insert(), [dict(zip(names, r, strict=True)) for r in self.earlier])
            conn.execute(link.delete())
            names = [c.name for c in link.columns]
            conn.execute(link.insert(),
                         [dict(zip(names, r, strict=True)) for r in self.earlier_links])

    def state_is_earlier(self) -> bool:
        return self.offers(self.target_id) == self.earlier and self.links() == self.earlier_links

    def state_is_reference(self) -> bool:
        return not self.reference_diff()

    def reference_diff(self) -> str:
        """'' when the target holds exactly what an uninterrupted import produces."""
        live, removed = self.projection(self.target_id)
        problems = []
        if live != self.reference:
            extra, missing = sorted(live - self.reference), sorted(self.reference - live)
            problems.append(f"{len(extra)} extra / {len(missing)} missing live offers, e.g. "
                            f"{extra[:1]} vs {missing[:1]}")
        if removed != self.expected_removed:
            problems.append(f"removed {sorted(removed ^ self.expected_removed)[:3]} wrong")
        if self.links() != self.earlier_links:
            problems.append("links changed")
        return "; ".join(problems)


@contextlib.contextmanager
def row_lock(lab: FaultLab, sku: str) -> Iterator[None]:
    """Hold a row lock on one target offer, so the apply blocks when it reaches that row."""
    conn = lab.engine.connect()
    try:
        trans = conn.begin()
        conn.execute(sa.text(f"SELECT id FROM {OFFER} WHERE integration_id = :i AND "
                             "seller_sku = :s FOR UPDATE"), {"i": lab.target_id, "s": sku})
        yield
        trans.rollback()
    finally:
        conn.close()


# -- the kill campaign ---------------------------------------------------------------------------


@dataclass
class KillPoint:
    name: str
    stage: str  # the stage the point aims at
    ready: Callable[[FaultLab, dict[str, Any], list[dict[str, Any]]], bool]
    emulator: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None  # "changed" / "gone": block the apply on that row first
    delay: float = 0.0  # extra seconds between "ready" and the kill


@dataclass
class PointResult:
    number: int
    point: str
    target: str
    hit: str
    progress: str
    outcome: str
    detected_s: float | None
    checks: list[str]
    ok: bool


def _fraction(share: float) -> Callable[[FaultLab, dict, list], bool]:
    def ready(lab: FaultLab, run: dict, db: list) -> bool:
        return (run["stage"] == "parsing" and bool(run["rows_total"])
                and run["rows_done"] >= share * run["rows_total"])

    return ready


#: Stands for the backend's staging statement (COPY, INSERT) in :func:`_in_statement`.
STAGING_STATEMENT = "<staging>"


def _in_statement(stage: str, needle: str, share: float = 0.0, waiting: bool = False
                  ) -> Callable[[FaultLab, dict, list], bool]:
    def ready(lab: FaultLab, run: dict, db: list) -> bool:
        text = lab.staging_statement if needle == STAGING_STATEMENT else needle
        progressed = run["rows_done"] >= share * (run["rows_total"] or 0)
        return run["stage"] == stage and progressed and any(
            b["state"] == "active" and text in (b["query"] or "")
            and (not waiting or b["wait_event_type"] == "Lock") for b in db)

    return ready


def _stage(status: str, stage: str) -> Callable[[FaultLab, dict, list], bool]:
    return lambda lab, run, db: run["status"] == status and run["stage"] == stage


def _polling(lab: FaultLab, run: dict, db: list) -> bool:
    """Waiting for Amazon with a poll step running (it saved after its job became due)."""
    return (run["status"] == "waiting" and run["heartbeat_at"] is not None
            and run["next_poll_at"] is not None and run["heartbeat_at"] >= run["next_poll_at"])


def default_points(count: int = 10, seed: int = 7) -> list[KillPoint]:
    """Ten points covering every stage, then random parsing/downloading points."""
    slow_create = {"operation_latency": {"createReport": 3.0}}
    slow_poll = {"operation_latency": {"getReport": 2.0}}
    throttled = {"download_rate": 1_500_000}
    base = [
        KillPoint("requesting report", "requesting_report",
                  _stage("requesting", "requesting_report"), slow_create, delay=0.5),
        KillPoint("waiting for Amazon (in a poll)", "waiting_for_amazon", _polling, slow_poll,
                  delay=0.4),
        KillPoint("downloading", "downloading", _stage("processing", "downloading"), throttled,
                  delay=0.8),
        KillPoint("parsing, before the first batch", "parsing", _fraction(0.0)),
        KillPoint("parsing ~25 %", "parsing", _fraction(0.25)),
        KillPoint("mid-batch (staging statement running)", "parsing",
                  _in_statement("parsing", STAGING_STATEMENT, 0.4)),
        KillPoint("parsing ~75 %", "parsing", _fraction(0.75)),
        KillPoint("saving: updating changed offers", "saving",
                  _in_statement("saving", "UPDATE xsale_amazon_offer SET asin", waiting=True),
                  lock="changed"),
        KillPoint("saving: removal marking", "saving",
                  _in_statement("saving", "UPDATE xsale_amazon_offer SET removed_at",
                                waiting=True), lock="gone"),
        KillPoint("after the apply commit", "done", _stage("succeeded", "done")),
    ]
    rng = random.Random(seed)
    points = base[:count]
    while len(points) < count:
        if rng.random() < 0.2:
            points.append(KillPoint("downloading (random)", "downloading",
                                    _stage("processing", "downloading"), throttled,
                                    delay=rng.uniform(0.1, 2.0)))
        else:
            share = round(rng.uniform(0.02, 0.98), 2)
            points.append(KillPoint(f"parsing ~{share:.0%} (random)", "parsing", _fraction(share)))
    return points


def _statement(query: str) -> str:
    for needle, label in (("COPY", "COPY to staging"),
                          ("INSERT INTO xsale_amazon_import_row", "INSERT to staging"),
                          ("SET removed_at", "removal UPDATE"),
                          ("SET asin", "changed-offers UPDATE"), ("INSERT INTO xsale_amazon_offer",
                                                                  "new-offers INSERT")):
        if needle in query:
            return label
    return query[:24]


def run_point(lab: FaultLab, number: int, point: KillPoint, *,
              ready_timeout: float = 300) -> PointResult:
    """Import into the target with a fresh worker, SIGKILL it at ``point`` and check."""
    checks: list[str] = []
    lab.kill_workers()
    lab.emulator.configure(**point.emulator)
    lab.spawn_worker()
    worker = lab.workers[-1]
    run_id = lab.start_import(lab.target_id)
    sku = {"changed": lab.lock_changed, "gone": lab.lock_gone}.get(point.lock or "")
    with row_lock(lab, sku) if sku else contextlib.nullcontext():
        seen: dict[str, Any] = {}

        def ready() -> bool:
            run, db = lab.run(run_id), lab.worker_backends()
            seen.update(run=run, db=db)
            return point.ready(lab, run, db) or run["status"] not in ACTIVE

        try:
            wait_until(ready, timeout=ready_timeout, interval=0.01, what=point.name)
        except AssertionError as exc:
            run = seen.get("run") or {}
            state = {k: run.get(k) for k in ("status", "stage", "rows_done", "rows_total",
                                             "poll_count", "error_code", "rq_job_id")}
            raise AssertionError(f"{exc}; run {run_id}: {state}; db: {seen.get('db')}; "
                                 f"worker alive: {worker.poll() is None}") from None
        if point.delay:
            time.sleep(point.delay)
        kill_tree(worker.pid)
        killed_at = time.monotonic()
        worker.wait(timeout=10)
    lab.emulator.configure()
    # Orphaned backends of the dead worker go away once they notice the closed socket.
    wait_until(lambda: not any(b["state"] != "idle" for b in lab.worker_backends()),
               timeout=300, what="the dead worker's backends")
    run = lab.run(run_id)
    before = seen["run"]
    active_q = [_statement(b["query"] or "") for b in seen["db"] if b["state"] == "active"]
    hit = run["stage"] if run["status"] == "succeeded" else before["stage"]
    progress = f"{before['status']}, {before['rows_done']}/{before['rows_total'] or '?'} rows"
    if active_q:
        progress += f", in {active_q[0]}"
    committed = run["status"] == "succeeded"
    if committed:
        diff = lab.reference_diff()
        checks.append(f"NOT REFERENCE: {diff}" if diff else "reference")
    else:
        checks.append("unchanged" if lab.state_is_earlier() else "CHANGED")
    links_ok = len(lab.links()) == len(lab.earlier_links)
    checks.append("links kept" if links_ok else "LINKS LOST")
    detected = None
    premature = False
    if not committed:
        # The dead worker's last heartbeat is older than the kill, so once HEARTBEAT_TIMEOUT has
        # passed since the kill, the first recover check must mark the run: no second chance.
        time.sleep(max(0.0, lab.heartbeat_timeout + 0.3 - (time.monotonic() - killed_at)))
        checked_at = time.monotonic()
        check_began = utcnow()
        marked = lab.recover()
        detected = round(checked_at - killed_at, 1)  # a figure for the table, never asserted
        run = lab.run(run_id)
        checks.append("marked at the first check" if marked else "NOT MARKED BY THE FIRST CHECK")
        # Logical time: the run was failed by that check, after its heartbeat had expired.
        beat = run["heartbeat_at"] or run["started_at"] or run["created_at"]
        premature = bool(marked) and not (
            as_utc(beat) + timedelta(seconds=lab.heartbeat_timeout) <= as_utc(run["finished_at"])
            and as_utc(run["finished_at"]) >= check_began)
        if premature:
            checks.append("MARKED BEFORE ITS HEARTBEAT EXPIRED")
    outcome = run["status"] + (f"/{run['error_code']}" if run["error_code"] else "")
    staged = lab.staged(run_id)
    checks.append("staging empty" if not staged else f"{staged} STAGED ROWS LEFT")
    if committed and not lab.state_is_earlier():
        lab.restore_earlier()
    if committed:
        ok = "reference" in checks
    else:
        ok = ("unchanged" in checks and outcome == "failed/worker_died"
              and "marked at the first check" in checks and not premature)
    ok = ok and links_ok and not staged
    return PointResult(number, point.name, point.stage, hit, progress, outcome, detected, checks,
                       ok)


def format_table(results: list[PointResult]) -> str:
    head = ("#", "kill point", "target", "hit", "progress at kill", "outcome", "detect s",
            "checks", "ok")
    rows = [head] + [(str(r.number), r.point, r.target, r.hit, r.progress, r.outcome,
                      "-" if r.detected_s is None else f"{r.detected_s:.1f}",
                      ", ".join(r.checks), "yes" if r.ok else "NO") for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def final_convergence(lab: FaultLab) -> list[str]:
    """A last import with a fresh worker must produce exactly the reference."""
    problems = []
    lab.kill_workers()
    lab.emulator.configure()
    run = lab.import_and_wait(lab.target_id)
    if run["status"] != "succeeded":
        problems.append(f"final run {run['status']}: {run['error_message']}")
    live, removed = lab.projection(lab.target_id)
    if live != lab.reference:
        problems.append(f"{len(live ^ lab.reference)} offers differ from the reference")
    if removed != lab.expected_removed:
        problems.append(f"removed {sorted(removed)[:5]} != {sorted(lab.expected_removed)[:5]}")
    if lab.links() != lab.earlier_links:
        problems.append("links changed")
    if lab.staged():
        problems.append(f"{lab.staged()} staged rows left")
    if lab.duplicate_offers():
        problems.append("duplicate offers")
    return problems


@pytest.fixture(params=SERVER_BACKENDS)
def lab_factory(request: Any, emulator: Any, redis_conn: Any
                ) -> Iterator[Callable[..., FaultLab]]:
    labs: list[FaultLab] = []

    def make(**kwargs: Any) -> FaultLab:
        kwargs.setdefault("backend", request.param)
        lab = FaultLab(emulator, **kwargs)
        labs.append(lab)
        return lab.open()

    yield make
    for lab in labs:
        lab.close()
    emulator.reset()


# -- 1. SIGKILL at every stage -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kill_campaign_never_costs_data(lab_factory: Callable[..., FaultLab]) -> None:
    points = int(os.environ.get("XSALE_KILL_POINTS", "10"))
    rows = int(os.environ.get("XSALE_KILL_ROWS", "100000"))
    lab = lab_factory(rows=rows)
    lab.prepare()
    results = []
    for number, point in enumerate(default_points(points), 1):
        results.append(run_point(lab, number, point))
    table = format_table(results)
    print("\n" + table)
    problems = final_convergence(lab)
    assert all(r.ok for r in results), table
    hit = {r.hit for r in results}
    assert {"requesting_report", "waiting_for_amazon", "downloading", "parsing",
            "saving"} <= hit, table
    assert not problems, problems


def test_overdue_poll_without_any_worker_is_not_a_ghost(amazon_host: Any, amazon: Any) -> None:
    """All workers gone while a run waits between polls: its scheduled job never runs. The
    run is failed as worker_missing after 12 x HEARTBEAT_TIMEOUT, not left waiting forever."""
    from datetime import timedelta

    from rq import SimpleWorker

    from xsale_amazon_plugin.importing.lifecycle import recover_stale_runs, start_import
    from xsale_amazon_plugin.timeutil import as_utc, utcnow

    from .test_import import publish, snapshot

    publish(amazon, "DE", list(demo_listings(10, seed=51)), polls_until_done=5)
    amazon_host.configure(POLL_INTERVAL=30.0, POLL_MAX_INTERVAL=60.0, HEARTBEAT_TIMEOUT=5)
    integ = amazon_host.add_integration("DE", "FBM")
    before = snapshot(amazon_host)
    with amazon_host.app.app_context():
        run_id = start_import(integ).id
    queue = amazon_host.state.queue
    SimpleWorker([queue], connection=queue.connection, job_class=queue.job_class).work(
        burst=True, logging_level="WARNING")  # one poll, then the next one is scheduled
    m = amazon_host.models
    with amazon_host.app.app_context():
        run = amazon_host.db.session.get(m.ImportRun, run_id)
        assert (run.status, run.poll_count) == ("waiting", 1)
        due = as_utc(run.next_poll_at)
        assert recover_stale_runs(now=due + timedelta(seconds=30)) == 0  # just late: wait
        assert recover_stale_runs(now=due + timedelta(seconds=61)) == 1
        amazon_host.db.session.expire_all()
        run = amazon_host.db.session.get(m.ImportRun, run_id)
        assert (run.status, run.error_code) == ("failed", "worker_missing")
        assert "flask xsale-amazon worker" in run.error_message
        assert utcnow() < due  # decided from the clock passed in, not by waiting
    assert snapshot(amazon_host) == before


# -- 2. Redis down / lost --------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.kill()


def test_redis_down_when_operator_clicks_import(db_url: str, amazon: Any,
                                                redis_server: RedisServer) -> None:
    from .hostapp import make_host
    from .test_admin_import import run_count, token_of

    host = make_host(db_url, config={"XSALE_AMAZON_REDIS_URL": redis_server.url,
                                     "XSALE_AMAZON_SPAPI_ENDPOINT": amazon.url,
                                     "XSALE_AMAZON_LWA_ENDPOINT": amazon.lwa_url})
    try:
        integ = host.add_integration("DE", "FBM")
        client = host.app.test_client()
        edit = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(
            as_text=True)
        redis_server.kill()
        page = client.post(f"/admin/xsale-amazon/integrations/import/{integ}/",
                           data={"csrf_token": token_of(edit)}, follow_redirects=True)
        assert "job queue (Redis) is not reachable" in page.get_data(as_text=True)
        assert run_count(host) == 0  # no run left queued forever
        redis_server.start()  # same port: the operator can start again
        again = client.post(f"/admin/xsale-amazon/integrations/import/{integ}/",
                            data={"csrf_token": token_of(edit)})
        assert again.status_code == 302 and "/runs/details/" in again.location
        assert run_count(host) == 1
        run_id = int(again.location.split("id=")[1])
        status = client.get(f"/xsale-amazon/runs/{run_id}.json").get_json()
        assert status["status"] == "queued"
    finally:
        with host.app.app_context():
            host.db.session.remove()
            for engine in host.db.engines.values():
                engine.dispose()


def _settle(lab: FaultLab, run_id: int, timeout: float = 300) -> dict[str, Any]:
    """Wait until the run ended, calling ``recover`` like an operator would (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        run = lab.run(run_id)
        if run["status"] not in ACTIVE:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']}/{run['stage']}")
        time.sleep(lab.heartbeat_timeout / 2)
        lab.recover()


def _assert_all_or_nothing(lab: FaultLab, run: dict[str, Any]) -> str:
    if run["status"] == "succeeded":
        assert lab.state_is_reference(), lab.reference_diff()
        return "succeeded"
    assert run["status"] == "failed", run
    assert lab.state_is_earlier(), "a failed run changed offers or links"
    assert lab.staged(run["id"]) == 0
    return f"failed/{run['error_code']}"


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["waiting", "processing"])
def test_redis_lost_mid_import(lab_factory: Callable[..., FaultLab], redis_server: RedisServer,
                               phase: str) -> None:
    lab = lab_factory(rows=20_000, redis_url=redis_server.url)
    lab.prepare()
    if phase == "waiting":
        lab.publish(reports(lab.rows)[1], polls_until_done=3)
        lab.emulator.configure(operation_latency={"getReport": 0.5})
        ready = lambda run: run["status"] == "waiting" and run["poll_count"] >= 1  # noqa: E731
    else:
        lab.emulator.configure(download_rate=300_000)
        ready = lambda run: run["stage"] in ("downloading", "parsing")  # noqa: E731
    run_id = lab.start_import(lab.target_id)
    wait_until(lambda: ready(lab.run(run_id)), timeout=300, interval=0.02, what=phase)
    redis_server.kill()
    lab.emulator.configure()
    time.sleep(lab.heartbeat_timeout)
    # While Redis is down a waiting run cannot be judged (its job is unknown): it stays.
    redis_server.start()  # empty: everything queued in Redis is lost
    run = _settle(lab, run_id)
    outcome = _assert_all_or_nothing(lab, run)
    print(f"Redis lost while {phase}: {outcome}: {run['error_message']} "
          f"(worker survived: {bool(lab.live_workers())})")
    # Once Redis is back the operator starts again and the import converges.
    if not lab.live_workers():
        lab.spawn_worker()
    rerun = lab.import_and_wait(lab.target_id, timeout=300)
    assert rerun["status"] == "succeeded", rerun["error_message"]
    assert lab.state_is_reference(), lab.reference_diff()


# -- 3. PostgreSQL connections dropped -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["parsing", "saving"])
def test_database_connection_dropped_mid_import(lab_factory: Callable[..., FaultLab],
                                                phase: str) -> None:
    # A heartbeat timeout a loaded machine cannot starve: the worker must not fail its own
    # live run as dead before the connections are dropped.
    # Small batches: the parse commits its progress often and lasts long enough to be seen.
    lab = lab_factory(rows=20_000, heartbeat_timeout=10.0, batch_size=200)
    lab.prepare()
    worker = lab.workers[-1]
    missed: list[str] = []
    point = (_fraction(0.3) if phase == "parsing"
             else _in_statement("saving", "SET removed_at", waiting=True))
    # On a loaded machine a poll can miss the moment: the import then ends untouched. Put the
    # earlier state back and try again (a bounded number of times); the wait never asserts.
    for _attempt in range(3):
        # The row lock is taken before the import starts: the apply cannot pass it.
        with row_lock(lab, lab.lock_gone) if phase == "saving" else contextlib.nullcontext():
            run_id = lab.start_import(lab.target_id)
            seen = wait_until(
                lambda run_id=run_id: ((r := lab.run(run_id))
                                       and point(lab, r, lab.worker_backends()) and "caught")
                or (r["status"] not in ACTIVE and "ended"),
                timeout=300, interval=0.01, what=phase)
            if seen == "caught":
                assert lab.terminate_worker_backends() >= 1
                break
        ended = lab.wait_run_end(run_id)
        missed.append(f"{ended['status']}/{ended['error_code']} {ended['stage']} "
                      f"{ended['rows_done']}/{ended['rows_total']} {ended['count_updated']} "
                      f"{ended['count_removed']}")
        if not lab.state_is_earlier():
            lab.restore_earlier()
    else:
        # Only the parse can run past the moment (the apply waits for the row lock): a
        # machine too loaded to see 30 % of a parse cannot run this check, which says so.
        pytest.skip(f"the import was never caught {phase} in 3 tries: {missed}")
    run = _settle(lab, run_id)
    outcome = _assert_all_or_nothing(lab, run)
    assert outcome in ("failed/database", "failed/worker_died", "succeeded"), (
        outcome, run["error_message"])
    if run["status"] == "failed":
        assert "Nothing from this run was applied" in run["error_message"] or \
            "stopped before it finished" in run["error_message"]
    print(f"connections dropped while {phase}: {outcome}: {run['error_message']}")
    assert worker.poll() is None, "the worker must survive a dropped database connection"
    rerun = lab.import_and_wait(lab.target_id)  # the same worker process
    assert rerun["status"] == "succeeded", rerun["error_message"]
    assert lab.state_is_reference(), lab.reference_diff()
    assert lab.staged() == 0


# -- 4. Amazon misbehaving -------------------------------------------------------------------------

AMAZON_FAULTS: dict[str, dict[str, Any]] = {
    "429 storm that passes": dict(
        inject=[("getReport", [429] * 5)], status="succeeded"),
    "429 storm": dict(
        inject=[("getReport", [429] * 40)], config={"MAX_RETRIES": 0},
        status="failed", code="amazon_throttled", text="kept throttling"),
    "5xx burst that passes": dict(
        inject=[("createReport", [500, 503]), ("getReportDocument", [503, 500])],
        status="succeeded"),
    "5xx storm": dict(
        inject=[("getReportDocument", [500, 503] * 20)], config={"MAX_RETRIES": 0},
        status="failed", code="amazon_unavailable", text="did not answer correctly"),
    "slow but in time": dict(
        emulator={"latency": 0.3}, config={"HTTP_TIMEOUT": 5.0}, status="succeeded"),
    "slower than the HTTP timeout": dict(
        emulator={"latency": 1.5}, config={"HTTP_TIMEOUT": 0.5, "MAX_RETRIES": 0},
        status="failed", code="amazon_unavailable", text="timed out"),
    "download cut mid-stream": dict(
        emulator={"cut_download_after": 300}, status="failed", code="download_failed",
        text="No offer was changed"),
    "truncated gzip": dict(
        emulator={"truncate_gzip": True}, status="failed", code="download_failed",
        text="not a complete gzip file"),
    "expired download URL": dict(
        emulator={"url_ttl": 0.0}, status="failed", code="download_failed",
        text="Request has expired"),
    "report stuck IN_PROGRESS": dict(
        emulator={"stuck_in_progress": True}, config={"REPORT_DEADLINE": 1.5},
        status="failed", code="report_timeout", text="did not finish the report"),
}


@pytest.mark.parametrize("fault", list(AMAZON_FAULTS))
def test_amazon_faults_end_clearly_and_keep_data(amazon_host: Any, amazon: Any,
                                                 fault: str) -> None:
    from rq.registry import ScheduledJobRegistry

    from xsale_amazon_plugin.linking.links import link_offers

    from .test_import import offers, publish, run_import, snapshot

    case = AMAZON_FAULTS[fault]
    rows = list(demo_listings(40, seed=41))
    publish(amazon, "DE", rows)
    integ = amazon_host.add_integration("DE", "FBM")
    assert run_import(amazon_host, integ).status == "succeeded"
    (pid,) = amazon_host.add_products([{"sku": "P-1", "name": "Linked"}])
    with amazon_host.app.app_context():
        link_offers([o.id for o in offers(amazon_host, integ).values()][:3], pid)
    before = snapshot(amazon_host)
    changed = [dict(r, price=Decimal("9.99")) for r in rows[5:]]  # 5 gone, the rest changed
    publish(amazon, "DE", changed)
    amazon.configure(**case.get("emulator", {}))
    for operation, statuses in case.get("inject", []):
        amazon.inject(operation, *statuses, retry_after=0)
    amazon_host.configure(**case.get("config", {}))
    run = run_import(amazon_host, integ)  # a bounded wait: a fault that never ends fails it
    assert run.status == case["status"], (run.error_code, run.error_message)
    if run.status == "failed":
        assert run.error_code == case["code"], run.error_message
        assert case["text"] in run.error_message, run.error_message
        assert snapshot(amazon_host) == before
    else:
        stored = offers(amazon_host, integ)
        assert run.count_updated == len(changed) and run.count_removed == 5
        assert all(stored[r["seller_sku"]].price == Decimal("9.99") for r in changed)
        assert snapshot(amazon_host)[1] == before[1]  # links untouched
    queue = amazon_host.state.queue
    assert queue.count == 0 and ScheduledJobRegistry(queue=queue).count == 0  # nothing stuck
    with amazon_host.app.app_context():
        m = amazon_host.models
        assert amazon_host.db.session.execute(
            sa.select(sa.func.count()).select_from(m.import_row)).scalar_one() == 0


# -- 5. Concurrency ------------------------------------------------------------------------------


def test_concurrent_clicks_create_one_run_per_integration(host: Any) -> None:
    from xsale_amazon_plugin.importing.lifecycle import ImportAlreadyRunning, start_import

    a, b = host.add_integration("DE", "FBM"), host.add_integration("DE", "FBA")
    barrier = threading.Barrier(12)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def click(integ: int) -> None:
        with host.app.app_context():
            barrier.wait(timeout=10)
            try:
                run = start_import(integ, trigger="test")
                outcome = f"run {run.id}"
            except ImportAlreadyRunning as exc:
                outcome = f"refused (run {exc.run.id})"
            except Exception as exc:  # recorded: must not happen
                outcome = f"error {type(exc).__name__}: {exc}"
            finally:
                host.db.session.remove()
        with lock:
            results.append((integ, outcome))

    threads = [threading.Thread(target=click, args=(a if i % 2 else b,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    for integ in (a, b):
        mine = [o for i, o in results if i == integ]
        created = [o for o in mine if o.startswith("run")]
        assert len(created) == 1, mine
        run_no = created[0].split()[1]
        assert all(o == f"refused (run {run_no})" for o in mine if o not in created), mine
    with host.app.app_context():
        m = host.models
        rows = host.db.session.execute(sa.select(m.ImportRun.integration_id,
                                                 m.ImportRun.status)).all()
    assert sorted(rows) == sorted([(a, "queued"), (b, "queued")])
    assert host.state.queue.count == 2


@pytest.mark.slow
def test_two_workers_double_click_and_autolink_race(lab_factory: Callable[..., FaultLab]) -> None:
    lab = lab_factory(rows=20_000)
    lab.prepare()
    lab.spawn_worker()  # two real workers on the same queue
    assert lab.live_workers() == 2
    # Products matching offers the target already has, so auto-link works during the import.
    _old, _new, _old_rows, new_rows = reports(lab.rows)
    skus = [r["seller_sku"] for r in new_rows[lab.rows // 2: lab.rows // 2 + 300]]
    with lab.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO towar (code, name) VALUES (:c, 'autolink target')"),
                     [{"c": s} for s in skus])
    # A download of several seconds keeps the first click's run active until the second
    # click's process has started, even on a loaded machine (a wait margin, not a bound).
    lab.emulator.configure(download_rate=200_000)
    clicks = [subprocess.Popen([*FLASK, "xsale-amazon", "import", str(lab.target_id)], cwd=ROOT,
                               env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in clicks]
    codes = sorted(p.returncode for p in clicks)
    assert codes == [0, 1], outs
    assert any("already running" in err for _out, err in outs)
    run_id = int(re.search(r"run #(\d+)", "".join(o for o, _e in outs)).group(1))
    autolinked = 0
    for _ in range(60):  # auto-link over and over while the import runs (bounded)
        out = lab.cli("autolink", str(lab.target_id), "--by", "sku")
        assert out.returncode == 0, out.stderr
        autolinked += int(out.stdout.split("linked ")[1].split(",")[0])
        if lab.run(run_id)["status"] not in ACTIVE:
            break
    run = lab.wait_run_end(run_id)
    assert run["status"] == "succeeded", run["error_message"]
    lab.emulator.configure()
    out = lab.cli("autolink", str(lab.target_id), "--by", "sku")
    autolinked += int(out.stdout.split("linked ")[1].split(",")[0])
    with lab.engine.connect() as conn:
        runs = conn.execute(sa.text(f"SELECT count(*) FROM {RUN} WHERE integration_id = :i"),
                            {"i": lab.target_id}).scalar_one()
        by_sku = conn.execute(sa.text(f"SELECT count(*) FROM {LINK} WHERE method = 'sku'")
                              ).scalar_one()
        orphans = conn.execute(sa.text(
            f"SELECT count(*) FROM {LINK} l LEFT JOIN {OFFER} o ON o.id = l.offer_id "
            "WHERE o.id IS NULL")).scalar_one()
    assert runs == 2  # the earlier import and this one: the double click made one run
    assert set(lab.earlier_links) <= set(lab.links()), "a manual link was lost"
    assert by_sku == autolinked >= 300
    assert len(lab.links()) == len(lab.earlier_links) + autolinked
    assert orphans == 0 and lab.duplicate_offers() == 0
    live, removed = lab.projection(lab.target_id)
    assert live == lab.reference and removed == lab.expected_removed
    # Both workers alive, and imports of two integrations run side by side.
    assert lab.live_workers() == 2
    first, second = lab.start_import(lab.reference_id), lab.start_import(lab.target_id)
    assert lab.wait_run_end(first)["status"] == "succeeded"
    assert lab.wait_run_end(second)["status"] == "succeeded"
    assert lab.duplicate_offers() == 0
