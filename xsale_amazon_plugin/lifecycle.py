"""Starting imports, scheduling their steps on RQ, and ending them (also when a worker died).

Job arguments are run ids only. The database, not Redis, is the source of truth: one active
run per integration is enforced by a unique column, and every step re-reads the run.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .extension import get_state
from .messages import error_text
from .models import Stage, Status, as_utc, utcnow
from .signals import import_finished

log = logging.getLogger(__name__)

JOB_FUNC = "xsale_amazon_plugin.jobs.import_step"


class ImportRefused(Exception):
    """Base of the errors :func:`start_import` raises; ``str()`` is operator-readable."""


class ImportAlreadyRunning(ImportRefused):
    def __init__(self, run: Any) -> None:
        self.run = run
        super().__init__(f"An import of this integration is already running (run #{run.id}).")


class ImportNotPossible(ImportRefused):
    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        super().__init__(error_text(code, {"detail": detail}))


def start_import(integration_id: int, *, trigger: str = "api", requested_by: str | None = None):
    """Create an import run for the integration and enqueue its first step.

    Raises :class:`ImportAlreadyRunning` when one is queued, running or waiting, and
    :class:`ImportNotPossible` when the integration cannot import or the queue is down.
    """
    state = get_state()
    m, session = state.models, state.db.session
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


def active_run(integration_id: int):
    m = get_state().models
    return get_state().db.session.execute(
        sa.select(m.ImportRun).where(m.ImportRun.active_lock == integration_id)
    ).scalar_one_or_none()


def enqueue_step(run: Any, delay: float | None = None) -> None:
    """Enqueue (now or after ``delay`` seconds) the next step of ``run`` and record its job id."""
    state = get_state()
    # The queue name keeps ids apart when several apps (or test runs) share one Redis.
    queue_tag = re.sub(r"[^A-Za-z0-9_-]", "-", str(state.cfg("QUEUE")))[:40]
    job_id = f"xsale-amazon-{queue_tag}-{run.id}-{run.poll_count}-{run.retries}"
    kwargs = dict(
        job_id=job_id,
        job_timeout=int(state.cfg("JOB_TIMEOUT")),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"xsale-amazon import run {run.id}",
        on_failure=_failure_callback(),
    )
    run.rq_job_id = job_id
    run.next_poll_at = utcnow() + timedelta(seconds=delay or 0)
    state.db.session.commit()
    queue = state.queue
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), JOB_FUNC, run.id, **kwargs)
    else:
        queue.enqueue(JOB_FUNC, run.id, **kwargs)


def _failure_callback():
    from rq import Callback

    return Callback("xsale_amazon_plugin.jobs.on_job_failure", timeout=30)


def finish_run(run: Any, status: str, *, error_code: str | None = None,
               error_params: dict | None = None, expect: dict[str, Any] | None = None) -> bool:
    """End ``run`` unless it already ended (or changed owner): commit, then send
    :data:`import_finished`. ``expect`` lists column values the run must still have, so a
    worker and the stale-run check can never both end the same run. Returns True if it
    ended the run here.
    """
    state = get_state()
    session = state.db.session
    table = run.__table__
    values: dict[str, Any] = {"status": status, "active_lock": None, "finished_at": utcnow()}
    if status == Status.SUCCEEDED:
        values["stage"] = Stage.DONE
    if error_code:
        values["error_code"] = error_code
        values["error_params"] = error_params or {}
        with _english():
            values["error_message"] = error_text(error_code, error_params)[:4000]
    conditions = [table.c.id == run.id, table.c.active_lock.is_not(None)]
    for column, value in (expect or {}).items():
        conditions.append(table.c[column].is_(None) if value is None else table.c[column] == value)
    session.flush()
    ended = session.execute(table.update().where(*conditions).values(**values)).rowcount == 1
    if ended:  # rows a dead or failed step staged are of no use any more
        staging = state.models.import_row
        session.execute(staging.delete().where(staging.c.run_id == run.id))
    session.commit()
    session.expire(run)
    if ended:
        send_finished(run)
    return ended


def send_finished(run: Any) -> None:
    from flask import current_app

    import_finished.send(
        current_app._get_current_object(), run=run, integration=run.integration, counts=run.counts
    )


class _english:
    """Force English while producing the message stored for logs and the CLI."""

    def __enter__(self) -> None:
        from flask_babel import force_locale

        self._ctx = force_locale("en")
        try:
            self._ctx.__enter__()
        except Exception:
            self._ctx = None

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def recover_stale_runs(integration_id: int | None = None, now: datetime | None = None) -> int:
    """Fail active runs whose worker is gone; returns how many were failed.

    A run is stale when its step is running but its heartbeat is older than
    ``XSALE_AMAZON_HEARTBEAT_TIMEOUT``, or when its next step is overdue by that much and
    the RQ job for it is not waiting in Redis any more.
    """
    state = get_state()
    m, session = state.models, state.db.session
    now = now or utcnow()
    timeout = timedelta(seconds=float(state.cfg("HEARTBEAT_TIMEOUT")))
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
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=get_state().redis)
        return str(job.get_status(refresh=True).value if job.get_status() else "missing")
    except NoSuchJobError:
        return "missing"
    except Exception:  # Redis unreachable: we cannot tell, so do not fail the run
        return "unknown"
