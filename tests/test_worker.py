"""The plugin's RQ worker: periodic maintenance, scheduler takeover and crash recovery.

The crash tests run real processes: PostgreSQL, Redis, the SP-API emulator over HTTP, two
``flask xsale-amazon worker`` processes and ``flask xsale-amazon import --wait``. A crash is a
SIGKILL of the worker *and* its work horse (RQ starts the horse in its own session, so killing
the worker's process group would miss it). The figures are printed and appended to
``artifacts/crash_takeover.txt``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import rq
import sqlalchemy as sa
from rq.scheduler import RQScheduler

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
from xsale_amazon_plugin.liveness import maintenance_interval
from xsale_amazon_plugin.proxies import current_amazon
from xsale_amazon_plugin.timeutil import as_utc
from xsale_amazon_plugin.worker import (
    SCHEDULER_SILENT_AFTER,
    PluginSimpleWorker,
    _break_lock_of_silent_scheduler,
    make_worker,
    register_periodic,
)

from .conftest import ARTIFACTS, PG_BASE
from .polling import wait_until
from .processes import FLASK, ROOT, flask, kill_tree

DE = get_marketplace("DE").marketplace_id
ACTIVE = ("queued", "requesting", "waiting", "processing")


def record_figure(line: str) -> None:
    print("\n" + line)
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, "crash_takeover.txt"), "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} rq {rq.__version__}: {line}\n")


# -- in-process: the maintenance hooks -------------------------------------------------------


def test_registered_periodic_tasks_run_in_the_app_context_of_an_idle_worker(host: Any) -> None:
    from flask import current_app

    seen: list[str] = []
    workers: list[Any] = []

    def record() -> None:
        seen.append(current_app.name)
        if len(seen) == 3:  # three idle ticks: stop, and wake the worker's blocking dequeue
            workers[0]._stop_requested = True
            current_amazon.queue.enqueue(len, "three")

    register_periodic("test.record", record, every_seconds=1)
    try:
        worker = make_worker(host.app, simple=True)
        workers.append(worker)
    finally:
        from xsale_amazon_plugin import worker as worker_module

        worker_module._registered.pop("test.record")
    assert isinstance(worker, PluginSimpleWorker)
    assert worker.tick == 1 and worker.dequeue_timeout == 1
    # Idle, the worker runs the task every second, not once per 10-minute maintenance: its
    # third run stops the worker long before the idle limit, which only bounds the wait.
    worker.work(max_idle_time=120, logging_level="WARNING")
    assert len(seen) >= 3, seen
    assert set(seen) == {host.app.name}
    with pytest.raises(ValueError):
        register_periodic("test.never", lambda: None, every_seconds=0)


def test_default_worker_blocks_at_most_a_few_seconds(host: Any) -> None:
    worker = make_worker(host.app)
    # RQ's default idle block is worker_ttl - 15 = 405 s; maintenance only runs between blocks.
    assert worker.dequeue_timeout <= 5
    assert maintenance_interval(300) == 30 and maintenance_interval(6) == 1.5
    assert maintenance_interval(0.5) == 1


def test_lock_of_a_silent_scheduler_is_broken_and_a_live_ones_kept(redis_conn: Any) -> None:
    queue_name = "xa-lock-" + uuid.uuid4().hex[:8]
    key = RQScheduler.get_locking_key(queue_name)
    try:
        # Holder without heartbeat hash, lock not refreshed for 20 s: dead.
        redis_conn.set(key, "dead-scheduler", ex=41)
        assert _break_lock_of_silent_scheduler(redis_conn, queue_name, "me")
        assert redis_conn.get(key) is None
        # Lock refreshed a moment ago (its hash may not exist yet): alive.
        redis_conn.set(key, "new-scheduler", ex=60)
        assert not _break_lock_of_silent_scheduler(redis_conn, queue_name, "me")
        assert redis_conn.get(key) == b"new-scheduler"
        # Lock TTL old, but the holder's own heartbeat is fresh: alive.
        live = RQScheduler([queue_name], connection=redis_conn)
        live.register_birth()
        redis_conn.set(key, live.name, ex=int(61 - SCHEDULER_SILENT_AFTER - 5))
        assert not _break_lock_of_silent_scheduler(redis_conn, queue_name, "me")
        assert redis_conn.get(key) == live.name.encode()
        live.register_death()
        assert _break_lock_of_silent_scheduler(redis_conn, queue_name, "me")
        # Our own lock is never broken.
        redis_conn.set(key, "me", ex=10)
        assert not _break_lock_of_silent_scheduler(redis_conn, queue_name, "me")
    finally:
        redis_conn.delete(key)


# -- real processes: SIGKILL and takeover ----------------------------------------------------


@pytest.fixture
def crash_env(emulator: Any, redis_conn: Any) -> Iterator[dict[str, str]]:
    """A sample-app environment with the *default* worker settings; only the poll interval
    (30 s by default) is shortened so the test does not wait for Amazon's first poll."""
    import sample_app

    emulator.reset()
    sample_app.seed_emulator(emulator)
    schema = "xa_crash_" + uuid.uuid4().hex[:8]
    engine = sa.create_engine(PG_BASE)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = dict(
        os.environ,
        DATABASE_URL=f"{PG_BASE}?options=-csearch_path%3D{schema}",
        SECRET_KEY="crash-test-secret",
        XSALE_AMAZON_REDIS_URL='"redis://127.0.0.1:6379/9"',
        XSALE_AMAZON_QUEUE='"xa-crash-' + uuid.uuid4().hex[:8] + '"',
        XSALE_AMAZON_SPAPI_ENDPOINT=f'"{emulator.url}"',
        XSALE_AMAZON_LWA_ENDPOINT=f'"{emulator.lwa_url}"',
        XSALE_AMAZON_POLL_INTERVAL="3",
        XSALE_AMAZON_POLL_MAX_INTERVAL="3",
        XSALE_AMAZON_REPORT_REUSE_WINDOW="0",
        PYTHONPATH=ROOT,
    )
    init = flask(env, "xsale-amazon", "recover")  # creates and seeds the schema once
    assert init.returncode == 0, init.stderr
    yield env
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


class Processes:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen] = []
        self.engine = sa.create_engine(env["DATABASE_URL"])
        self.queue = env["XSALE_AMAZON_QUEUE"].strip('"')

    def worker(self) -> subprocess.Popen:
        proc = subprocess.Popen([*FLASK, "xsale-amazon", "worker"], cwd=ROOT, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def import_wait(self, integration_id: int) -> subprocess.Popen:
        proc = subprocess.Popen([*FLASK, "xsale-amazon", "import", str(integration_id), "--wait",
                                 "--timeout", "240"], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM xsale_amazon_import_run "
                                       "ORDER BY id DESC LIMIT 1")).mappings().first()
        return dict(row) if row else None

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc.pid)
                proc.wait(timeout=10)
        self.engine.dispose()


@pytest.fixture
def processes(crash_env: dict[str, str]) -> Iterator[Processes]:
    procs = Processes(crash_env)
    yield procs
    procs.close()


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def scheduler_owner(redis_conn: Any, queue: str) -> int | None:
    """PID of the worker whose scheduler process holds the queue's scheduler lock."""
    holder = redis_conn.get(RQScheduler.get_locking_key(queue))
    if holder is None:
        return None
    try:
        scheduler = RQScheduler.fetch(holder.decode(), redis_conn)
    except Exception:
        return None
    return parent_pid(scheduler.pid) if scheduler.pid else None


def busy_worker_pid(redis_conn: Any, queue_name: str, job_id: str) -> int | None:
    from rq import Queue, Worker

    queue = Queue(queue_name, connection=redis_conn)
    for worker in Worker.all(queue=queue):
        if worker.get_current_job_id() == job_id:
            return worker.pid
    return None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_replacement_worker_continues_a_waiting_import(
        processes: Processes, emulator: Any, redis_conn: Any) -> None:
    rows = list(demo_listings(300, seed=31, marketplace="DE"))
    emulator.set_listings(DE, render_report(rows, "eu_en", encoding="cp1252"), charset="Cp1252",
                          polls_until_done=3)
    first = processes.worker()
    wait_until(lambda: scheduler_owner(redis_conn, processes.queue) == first.pid, timeout=300,
               what="the first worker's scheduler to take the lock")
    second = processes.worker()
    cli = processes.import_wait(1)
    # Waiting for Amazon: the first poll is done and the second one is scheduled; no step runs.
    wait_until(lambda: (r := processes.run()) and r["status"] == "waiting" and r["poll_count"] == 1
               and not busy_worker_pid(redis_conn, processes.queue, r["rq_job_id"]),
               timeout=300, what="the import to wait between two polls")
    assert scheduler_owner(redis_conn, processes.queue) == first.pid
    kill_tree(first.pid)
    killed_at = time.monotonic()
    first.wait(timeout=10)
    # Without the takeover the next poll waits for RQ's scheduler lock to expire (about 4
    # minutes); the assertion below is who holds the scheduler, this wait only bounds the test.
    wait_until(lambda: (processes.run() or {}).get("poll_count", 0) >= 2, timeout=200,
               what="the next poll after the crash")
    continued = time.monotonic() - killed_at
    assert scheduler_owner(redis_conn, processes.queue) == second.pid
    out, err = cli.communicate(timeout=300)
    ended = time.monotonic() - killed_at
    record_figure(f"SIGKILL of the scheduler-holding worker while an import waited for Amazon: "
                  f"next poll {continued:.1f} s later, import succeeded {ended:.1f} s later")
    assert cli.returncode == 0, out + err
    assert "Succeeded" in out and f"created {len(rows)}," in out
    run = processes.run()
    assert (run["status"], run["count_created"]) == ("succeeded", len(rows))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_step_of_a_killed_worker_ends_as_worker_died(
        processes: Processes, emulator: Any, redis_conn: Any) -> None:
    heartbeat_timeout = 6.0
    processes.env["XSALE_AMAZON_HEARTBEAT_TIMEOUT"] = str(heartbeat_timeout)
    rows = list(demo_listings(20_000, seed=32, marketplace="DE"))
    content = render_report(rows, "eu_en", encoding="cp1252")
    emulator.set_listings(DE, content, charset="Cp1252", gzip=False)
    emulator.configure(download_rate=len(content) / 30)  # a 30 s download: the step runs
    workers = [processes.worker(), processes.worker()]
    cli = processes.import_wait(1)
    run = wait_until(lambda: (r := processes.run()) and r["stage"] == "downloading" and r,
                     timeout=300, what="the download step")
    time.sleep(1.0)
    pid = wait_until(lambda: busy_worker_pid(redis_conn, processes.queue, run["rq_job_id"]),
                     timeout=300, what="the worker running the step")
    assert pid in {w.pid for w in workers}
    kill_tree(pid)  # the worker and its work horse
    killed_at = time.monotonic()
    ended = wait_until(lambda: (r := processes.run()) and r["status"] not in ACTIVE and r,
                       timeout=4 * heartbeat_timeout + 30, what="the run to end")
    took = time.monotonic() - killed_at
    out, err = cli.communicate(timeout=300)
    record_figure(f"SIGKILL of the worker running a step (HEARTBEAT_TIMEOUT {heartbeat_timeout:.0f}"
                  f" s): run ended {ended['status']}/{ended['error_code']} {took:.1f} s later")
    emulator.configure()
    assert (ended["status"], ended["error_code"]) == ("failed", "worker_died")
    # Logical time, not a wall-clock bound: the survivor failed the run only once the dead
    # step's last heartbeat had expired.
    beat = as_utc(ended["heartbeat_at"] or ended["started_at"])
    assert as_utc(ended["finished_at"]) >= beat + timedelta(seconds=heartbeat_timeout)
    assert cli.returncode == 1, out + err
    assert re.search(r"worker.*(died|stopped)", err, re.I), err
    with processes.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM xsale_amazon_offer")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM xsale_amazon_import_row")).scalar() == 0


def test_import_wait_without_any_worker_says_what_to_start(crash_env: dict[str, str]) -> None:
    """Without a worker nothing advances or ends a run; --wait must not wait in silence (the
    start itself refuses without a worker unless --queue-only)."""
    out = flask(crash_env, "xsale-amazon", "import", "1", "--queue-only", "--wait",
                "--timeout", "8")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "No worker is listening on queue" in out.stderr
    assert "flask xsale-amazon worker" in out.stderr
    assert "Timed out waiting" in out.stderr


# -- jobs queued by the release before the modules moved ------------------------------------


def test_every_renamed_job_function_resolves_to_what_the_plugin_enqueues_now() -> None:
    from rq.utils import import_attribute

    from xsale_amazon_plugin._job_class import RENAMED_JOB_FUNCTIONS
    from xsale_amazon_plugin.importing import lifecycle
    from xsale_amazon_plugin.linking import autolink_job
    from xsale_amazon_plugin.suggest import catalogue_check, jobs

    current = {lifecycle.JOB_FUNC, lifecycle.FAILURE_CALLBACK, autolink_job.JOB_FUNC,
               jobs.JOB_FUNC, catalogue_check.CHECK_FUNC}
    assert set(RENAMED_JOB_FUNCTIONS.values()) == current
    for new in current:
        assert callable(import_attribute(new)), new


def test_job_queued_under_an_old_module_name_runs_the_moved_function(
        host: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job (and its failure callback) queued by the previous release names the old modules
    (``xsale_amazon_plugin.import_job``); a worker of this release runs the moved functions."""
    from flask import current_app
    from rq import Callback

    ran: list[tuple[str, Any]] = []
    failed: list[tuple[str, Any]] = []

    def step(run_id: Any) -> None:
        ran.append((current_app.name, run_id))
        if run_id == "fail":
            raise RuntimeError("step failed")

    def on_failure(job: Any, connection: Any, exc_type: Any, value: Any, tb: Any) -> None:
        failed.append((job.args[0], str(value)))

    monkeypatch.setattr("xsale_amazon_plugin.importing.step_job.import_step", step)
    monkeypatch.setattr("xsale_amazon_plugin.importing.step_job.on_job_failure", on_failure)
    with host.app.app_context():
        queue = current_amazon.queue
        ok = queue.enqueue("xsale_amazon_plugin.import_job.import_step", 41)
        bad = queue.enqueue("xsale_amazon_plugin.import_job.import_step", "fail",
                            on_failure=Callback("xsale_amazon_plugin.import_job.on_job_failure"))
        assert ok.func_name == "xsale_amazon_plugin.import_job.import_step"
        worker = make_worker(host.app, simple=True)
        worker.work(burst=True, logging_level="WARNING")
        assert ok.get_status(refresh=True) == "finished"
        assert bad.get_status(refresh=True) == "failed"
    assert ran == [(host.app.name, 41), (host.app.name, "fail")]
    assert failed == [("fail", "step failed")]
