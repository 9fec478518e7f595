"""The life of an import run: start, ownership, heartbeat, finish, recovery.

This module is the only one that decides who owns a run and how a run ends. The database, not
Redis, is the source of truth:

* one active run per integration: ``active_lock`` equals the integration id while the run is
  active and is unique, so a second start fails in the database itself;
* a step owns the run while the run is active and its ``rq_job_id`` is the step's job id
  (:func:`owned`); every write of a step goes through :func:`save_if_owned`, and ending a run
  (:func:`finish_run`, :func:`end_values`) is guarded the same way, so a worker and the
  stale-run check can never both end the same run;
* a running step proves itself alive through :class:`Heartbeat`; :func:`recover_stale_runs`
  fails the runs whose worker is gone.

Job arguments are run ids only (no credentials in Redis).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from rq import Callback
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy.exc import IntegrityError

from .messages import error_text
from .models import Stage, Status, utcnow
from .proxies import current_amazon
from .signals import import_finished
from .timeutil import as_utc

log = logging.getLogger(__name__)

#: Dotted path of the RQ job function (see :mod:`xsale_amazon_plugin.import_job`).
JOB_FUNC = "xsale_amazon_plugin.import_job.import_step"
FAILURE_CALLBACK = "xsale_amazon_plugin.import_job.on_job_failure"


class ImportRefused(Exception):
    """Base of the errors :func:`start_import` raises; ``str()`` is operator-readable."""


class ImportAlreadyRunning(ImportRefused):
    """The integration has an active run (``run``); the database refused a second one."""

    def __init__(self, run: Any) -> None:
        self.run = run
        super().__init__(f"An import of this integration is already running (run #{run.id}).")


class ImportNotPossible(ImportRefused):
    """The integration cannot import now; ``code`` is a :mod:`messages` error code."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        super().__init__(error_text(code, {"detail": detail}))


# -- start -------------------------------------------------------------------------------------
def start_import(integration_id: int, *, trigger: str = "api",
                 requested_by: str | None = None) -> Any:
    """Create an import run for the integration, commit it and enqueue its first step.

    The run is committed (not only flushed) before its job is enqueued because a worker in
    another process must find it; so unlike the linking services this one always commits the
    session. Raises :class:`ImportAlreadyRunning` when a run is queued, running or waiting,
    :class:`ImportNotPossible` when the integration cannot import or the queue is down, and
    LookupError when the integration does not exist.
    """
    m, session = current_amazon.models, current_amazon.db.session
    recover_stale_runs(integration_id)
    integration = session.get(m.AmazonIntegration, integration_id)
    if integration is None:
        raise LookupError(f"Amazon integration {integration_id} does not exist.")
    if not integration.active:
        raise ImportNotPossible("inactive")
    if not integration.has_credentials:
        raise ImportNotPossible("missing_credentials")
    run = m.ImportRun(
        integration_id=integration_id,
        status=Status.QUEUED,
        stage=Stage.QUEUED,
        active_lock=integration_id,
        trigger=trigger,
        requested_by=requested_by,
    )
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = active_run(integration_id)
        if existing is None:  # the other run ended between our insert and this read
            return start_import(integration_id, trigger=trigger, requested_by=requested_by)
        raise ImportAlreadyRunning(existing) from None
    try:
        enqueue_step(run)
    except Exception as exc:  # Redis down: leave no ghost run behind
        log.warning("Cannot enqueue import run %s: %s", run.id, exc)
        session.delete(run)
        session.commit()
        raise ImportNotPossible("queue_unavailable", type(exc).__name__ + ": " + str(exc)) from exc
    return run


def active_run(integration_id: int) -> Any:
    """The integration's queued, running or waiting run, or None."""
    m = current_amazon.models
    return current_amazon.db.session.execute(
        sa.select(m.ImportRun).where(m.ImportRun.active_lock == integration_id)
    ).scalar_one_or_none()


def enqueue_step(run: Any, delay: float | None = None) -> None:
    """Enqueue (now or after ``delay`` seconds) the next step of ``run`` and record its job id.

    The job id is recorded (and committed) first: from then on only that job owns the run.
    """
    ext = current_amazon
    # The queue name keeps ids apart when several apps (or test runs) share one Redis.
    queue_tag = re.sub(r"[^A-Za-z0-9_-]", "-", ext.settings.queue)[:40]
    job_id = f"xsale-amazon-{queue_tag}-{run.id}-{run.poll_count}-{run.retries}"
    run.rq_job_id = job_id
    run.next_poll_at = utcnow() + timedelta(seconds=delay or 0)
    ext.db.session.commit()
    options: dict[str, Any] = dict(
        job_id=job_id,
        job_timeout=ext.settings.job_timeout,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"xsale-amazon import run {run.id}",
        on_failure=Callback(FAILURE_CALLBACK, timeout=30),
    )
    if delay:
        ext.queue.enqueue_in(timedelta(seconds=delay), JOB_FUNC, run.id, **options)
    else:
        ext.queue.enqueue(JOB_FUNC, run.id, **options)


# -- ownership ---------------------------------------------------------------------------------
def owned(table: sa.Table, run_id: int, job_id: str | None) -> sa.ColumnElement[bool]:
    """SQL condition: the run is active and the step of ``job_id`` owns it."""
    return sa.and_(table.c.id == run_id, table.c.rq_job_id == job_id,
                   table.c.active_lock.is_not(None))


def save_if_owned(run: Any, job_id: str | None, **fields: Any) -> bool:
    """Write ``fields`` (and a fresh heartbeat) to ``run`` if the step of ``job_id`` still owns
    it; commit. Returns False (nothing written) when the run was ended or taken over elsewhere.
    """
    session = current_amazon.db.session
    table = run.__table__
    fields["heartbeat_at"] = utcnow()
    session.flush()
    written = session.execute(
        table.update().where(owned(table, run.id, job_id)).values(**fields)
    ).rowcount
    session.commit()
    session.expire(run)
    return written == 1


class Heartbeat:
    """Refreshes the run's ``heartbeat_at`` from a thread while a step works.

    :func:`recover_stale_runs` fails a running run whose heartbeat stops, so a SIGKILLed
    worker is noticed after ``XSALE_AMAZON_HEARTBEAT_TIMEOUT`` whatever the step was doing
    (even a long apply transaction, which this thread does not wait for: it uses its own
    connection). Beats only while the step owns the run.
    """

    def __init__(self, engine: sa.Engine, table: sa.Table, run_id: int, job_id: str | None,
                 interval: float) -> None:
        self._stop = threading.Event()
        self._engine = engine
        self._statement = table.update().where(owned(table, run_id, job_id))
        self._interval = interval
        self._run_id = run_id
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"xsale-amazon-heartbeat-{run_id}")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._engine.begin() as conn:
                    conn.execute(self._statement.values(heartbeat_at=utcnow()))
            except Exception:  # e.g. SQLite busy during the apply; the next beat retries
                log.debug("heartbeat of run %s skipped", self._run_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# -- finish ------------------------------------------------------------------------------------
def end_values(status: str, *, error_code: str | None = None,
               error_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The column values that end a run with ``status`` (and release the integration)."""
    values: dict[str, Any] = {"status": status, "active_lock": None, "finished_at": utcnow()}
    if status == Status.SUCCEEDED:
        values["stage"] = Stage.DONE
    if error_code:
        values["error_code"] = error_code
        values["error_params"] = error_params or {}
        with _english():
            values["error_message"] = error_text(error_code, error_params)[:4000]
    return values


def finish_run(run: Any, status: str, *, error_code: str | None = None,
               error_params: dict[str, Any] | None = None,
               expect: dict[str, Any] | None = None) -> bool:
    """End ``run`` unless it already ended (or changed owner): commit, then send
    :data:`~xsale_amazon_plugin.signals.import_finished`. ``expect`` lists column values the
    run must still have (e.g. ``{"rq_job_id": job_id}``). Returns True if it ended the run.
    """
    ext = current_amazon
    session = ext.db.session
    table = run.__table__
    conditions = [table.c.id == run.id, table.c.active_lock.is_not(None)]
    for column, value in (expect or {}).items():
        conditions.append(table.c[column].is_(None) if value is None else table.c[column] == value)
    values = end_values(status, error_code=error_code, error_params=error_params)
    session.flush()
    ended = session.execute(table.update().where(*conditions).values(**values)).rowcount == 1
    if ended:  # rows a dead or failed step staged are of no use any more
        staging = ext.models.import_row
        session.execute(staging.delete().where(staging.c.run_id == run.id))
    session.commit()
    session.expire(run)
    if ended:
        send_finished(run)
    return ended


def send_finished(run: Any) -> None:
    """Send :data:`~xsale_amazon_plugin.signals.import_finished` for an ended run."""
    import_finished.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                         run=run, integration=run.integration, counts=run.counts)


@contextmanager
def _english() -> Iterator[None]:
    """Force English while producing the message stored for logs and the CLI."""
    try:
        context = force_locale("en")
        context.__enter__()
    except Exception:  # no request/app locale machinery: the default is English anyway
        yield
        return
    try:
        yield
    finally:
        context.__exit__(None, None, None)


# -- recovery ----------------------------------------------------------------------------------
def recover_stale_runs(integration_id: int | None = None, now: datetime | None = None) -> int:
    """Fail active runs whose worker is gone; returns how many were failed.

    A run is stale when its step is running but its heartbeat is older than
    ``XSALE_AMAZON_HEARTBEAT_TIMEOUT``, or when its next step is overdue by that much and
    the RQ job for it is not waiting in Redis any more.
    """
    ext = current_amazon
    m, session = ext.models, ext.db.session
    now = now or utcnow()
    timeout = timedelta(seconds=ext.settings.heartbeat_timeout)
    query = sa.select(m.ImportRun).where(m.ImportRun.active_lock.is_not(None))
    if integration_id is not None:
        query = query.where(m.ImportRun.integration_id == integration_id)
    failed = 0
    for run in session.execute(query).scalars().all():
        reason = _stale_reason(run, now, timeout)
        if not reason:
            continue
        seen = {"status": run.status, "rq_job_id": run.rq_job_id, "heartbeat_at": run.heartbeat_at}
        if finish_run(run, Status.FAILED, error_code=reason, expect=seen):
            log.warning("Import run %s is stale (%s); marked it failed", run.id, reason)
            failed += 1
    return failed


def _stale_reason(run: Any, now: datetime, timeout: timedelta) -> str | None:
    running = run.status in (Status.REQUESTING, Status.PROCESSING)
    if running:
        beat = as_utc(run.heartbeat_at or run.started_at or run.created_at)
        return "worker_died" if beat < now - timeout else None
    due = as_utc(run.next_poll_at or run.created_at)
    if due > now - timeout:
        return None
    job_state = _job_state(run.rq_job_id)
    if job_state == "started":
        # A step is (or was) running although the run waits: a poll. Its heartbeat thread
        # proves it alive; RQ only notices a SIGKILLed worker's job much later (heartbeat TTL
        # + registry maintenance, ~10 minutes).
        beat = max(as_utc(run.heartbeat_at or run.created_at), due)
        return "worker_died" if beat < now - timeout else None
    if job_state in ("queued", "scheduled", "deferred"):
        # Without any worker (hence no scheduler) a scheduled poll never runs either.
        if job_state in ("queued", "scheduled") and due < now - 12 * timeout:
            return "worker_missing"
        return None
    if job_state == "unknown":
        return None
    log.warning("Import run %s: its job %s is %s although the run waits for it", run.id,
                run.rq_job_id, job_state)
    return "worker_died"


def _job_state(job_id: str | None) -> str:
    if not job_id:
        return "missing"
    try:
        job = Job.fetch(job_id, connection=current_amazon.redis)
        status = job.get_status(refresh=True)
        return str(status.value) if status else "missing"
    except NoSuchJobError:
        return "missing"
    except Exception:  # Redis unreachable: we cannot tell, so do not fail the run
        return "unknown"
