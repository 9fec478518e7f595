"""The life of an import run: start, ownership, heartbeat, finish, recovery.

This module is the only one that decides who owns a run and how a run ends. The database, not
Redis, is the source of truth:

* one active run per integration: ``active_lock`` equals the integration id while the run is
  active and is unique, so a second start fails in the database itself;
* a step owns the run while the run is active and its ``rq_job_id`` is the step's job id
  (:func:`owned`); every write of a step goes through :func:`save_if_owned`, and ending a run
  (:func:`finish_run`, :func:`end_values`) is guarded the same way, so a worker and the
  stale-run check can never both end the same run;
* a running step proves itself alive through a heartbeat (:mod:`.liveness`);
  :func:`recover_stale_runs` fails the runs whose worker is gone;
* a run whose apply would soft-remove more than ``XSALE_AMAZON_REMOVAL_GUARD`` of the live
  offers is *held* (:func:`hold_run`) until an operator confirms (:func:`confirm_run`) or
  discards (:func:`discard_run`) it - see "Held runs" below.

Job arguments are run ids only (no credentials in Redis).
"""

from __future__ import annotations

import logging
import re
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

from ..babel import gettext as _
from ..liveness import is_stale
from ..models import ReportMode, Stage, Status
from ..proxies import current_amazon
from ..signals import import_finished
from ..timeutil import as_utc, utcnow
from .messages import error_text, status_label
from .writer import ApplyCounts

log = logging.getLogger(__name__)

#: Dotted path of the RQ job function (see :mod:`xsale_amazon_plugin.importing.step_job`).
JOB_FUNC = "xsale_amazon_plugin.importing.step_job.import_step"
FAILURE_CALLBACK = "xsale_amazon_plugin.importing.step_job.on_job_failure"


class ImportRefused(Exception):
    """Base of the errors :func:`start_import` raises; ``str()`` is operator-readable."""


class ImportAlreadyRunning(ImportRefused):
    """The integration has an active run (``run``); the database refused a second one."""

    def __init__(self, run: Any) -> None:
        self.run = run
        super().__init__(f"An import of this integration is already running (run #{run.id}).")


class ImportNotPossible(ImportRefused):
    """The integration cannot import now; ``code`` is a :mod:`.messages` error code."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        super().__init__(error_text(code, {"detail": detail}))


# -- start -------------------------------------------------------------------------------------
def start_import(integration_id: int, *, trigger: str = "api",
                 requested_by: str | None = None, allow_removal: bool = False,
                 report_mode: str = ReportMode.AUTO, reuse_report_id: str | None = None) -> Any:
    """Create an import run for the integration, commit it and enqueue its first step.

    The run is committed (not only flushed) before its job is enqueued because a worker in
    another process must find it; so unlike the linking services this one always commits the
    session. A run of the integration held for confirmation is discarded: the newer report
    supersedes it.

    :param integration_id: the integration to import into.
    :param trigger: who started it, recorded on the run (``"admin"``, ``"cli"``,
        ``"schedule"``, ``"api"``...).
    :param requested_by: the operator's name recorded on the run.
    :param allow_removal: confirm up front that the report may soft-remove more offers than
        ``XSALE_AMAZON_REMOVAL_GUARD`` allows (the run is then never held).
    :param report_mode: a :class:`~xsale_amazon_plugin.models.ReportMode`: ``auto`` reuses a
        recent report Amazon holds (never one a failed or discarded run of this integration
        used), ``fresh`` always requests a new one, ``reuse`` uses ``reuse_report_id``.
    :param reuse_report_id: Amazon's report id, with ``report_mode="reuse"``.
    :returns: the new run (an ``ImportRun`` of :attr:`~xsale_amazon_plugin.Models`).
    :raises ImportAlreadyRunning: a run of the integration is queued, running or waiting.
    :raises ImportNotPossible: the integration cannot import (inactive, no credentials) or
        the job queue is down.
    :raises LookupError: the integration does not exist.
    :raises ValueError: ``report_mode`` is not a :class:`ReportMode`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
        ``allow_removal``, ``report_mode`` and ``reuse_report_id``.
    """
    if report_mode not in ReportMode.ALL:
        raise ValueError(f"report_mode must be one of {ReportMode.ALL}")
    if report_mode == ReportMode.REUSE and not reuse_report_id:
        report_mode = ReportMode.AUTO
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
        allow_removal=allow_removal,
        report_mode=report_mode,
        reuse_report_id=reuse_report_id if report_mode == ReportMode.REUSE else None,
    )
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = active_run(integration_id)
        if existing is None:  # the other run ended between our insert and this read
            return start_import(integration_id, trigger=trigger, requested_by=requested_by,
                                allow_removal=allow_removal, report_mode=report_mode,
                                reuse_report_id=reuse_report_id)
        raise ImportAlreadyRunning(existing) from None
    try:
        enqueue_step(run)
    except Exception as exc:  # Redis down: leave no ghost run behind
        log.warning("Cannot enqueue import run %s: %s", run.id, exc)
        session.delete(run)
        session.commit()
        raise ImportNotPossible("queue_unavailable", type(exc).__name__ + ": " + str(exc)) from exc
    _discard_held_runs(integration_id=integration_id, reason="superseded")
    return run


def active_run(integration_id: int) -> Any:
    """The integration's queued, running or waiting run, or None."""
    m = current_amazon.models
    return current_amazon.db.session.execute(
        sa.select(m.ImportRun).where(m.ImportRun.active_lock == integration_id)
    ).scalar_one_or_none()


def failed_report_ids(integration_id: int) -> set[str]:
    """Reports a failed run of this integration used: never reused (the operator may have
    fixed the cause in Seller Central, and the same report would fail the same way)."""
    m = current_amazon.models
    rows = current_amazon.db.session.execute(
        sa.select(m.ImportRun.report_id).distinct().where(
            m.ImportRun.integration_id == integration_id,
            m.ImportRun.status == Status.FAILED,
            m.ImportRun.report_id.is_not(None),
        )
    ).scalars()
    return {str(r) for r in rows}


def rerun_report_mode(run: Any) -> str:
    """How *Run again* on ``run`` gets its report: after a failure always a fresh one."""
    return ReportMode.FRESH if run.status == Status.FAILED else ReportMode.AUTO


def enqueue_step(run: Any, delay: float | None = None, *, tag: str = "") -> None:
    """Enqueue (now or after ``delay`` seconds) the next step of ``run`` and record its job id.

    The job id is recorded (and committed) first: from then on only that job owns the run.
    ``tag`` tells apart a step that would otherwise get the previous step's id (the apply of a
    confirmed hold).
    """
    ext = current_amazon
    # The queue name keeps ids apart when several apps (or test runs) share one Redis.
    queue_tag = re.sub(r"[^A-Za-z0-9_-]", "-", ext.settings.queue)[:40]
    job_id = f"xsale-amazon-{queue_tag}-{run.id}-{run.poll_count}-{run.retries}"
    if tag:
        job_id += f"-{tag}"
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


# -- cancel ------------------------------------------------------------------------------------
class CancelRefused(Exception):
    """The run cannot be cancelled (it already ended); ``str()`` is operator-readable."""


def cancel_import(run_id: int, *, cancelled_by: str | None = None) -> Any:
    """Cancel an active import run at whatever stage it is.

    Safe at every stage: the run is ended with the same guarded update every ending uses, so
    a step still running loses ownership and stops within a heartbeat (a download or a parse
    stops midway), and an apply transaction that has not committed yet rolls back (its final,
    ownership-guarded update finds the run ended). Amazon's report request is left alone; the
    integration can import again at once.

    :param run_id: the run to cancel.
    :param cancelled_by: the operator's name recorded on the run.
    :returns: the run, now ``cancelled``.
    :raises CancelRefused: the run had already ended (e.g. its apply committed first: it
        stays ``succeeded``).
    :raises LookupError: the run does not exist.

    .. versionadded:: 0.2.0
    """
    session = current_amazon.db.session
    run = session.get(current_amazon.models.ImportRun, run_id)
    if run is None:
        raise LookupError(f"Import run {run_id} does not exist.")
    job_id = run.rq_job_id
    params = {"by": cancelled_by} if cancelled_by else {}
    if not run.is_active or not finish_run(run, Status.CANCELLED, error_code="cancelled",
                                           error_params=params):
        session.refresh(run)
        raise CancelRefused(_("Import run #%(id)s already ended (%(status)s); nothing to cancel.",
                              id=run.id, status=status_label(run.status)))
    _drop_waiting_job(job_id)
    log.info("Import run %s cancelled by %s", run.id, cancelled_by or "?")
    return run


def _drop_waiting_job(job_id: str | None) -> None:
    """Remove the run's queued or scheduled RQ job (a running step stops by itself)."""
    if not job_id:
        return
    try:
        job = Job.fetch(job_id, connection=current_amazon.redis)
        if job.get_status(refresh=True) in ("queued", "scheduled", "deferred"):
            job.cancel()
    except Exception:  # gone, or Redis down: the step finds the run ended and stops
        log.debug("could not cancel job %s", job_id, exc_info=True)


# -- recovery ----------------------------------------------------------------------------------
def recover_stale_runs(integration_id: int | None = None, now: datetime | None = None) -> int:
    """Fail active runs whose worker is gone; returns how many were failed.

    A run is stale when its step is running but its heartbeat is older than
    ``XSALE_AMAZON_HEARTBEAT_TIMEOUT``, or when its next step is overdue by that much and
    the RQ job for it is not waiting in Redis any more. Held runs are not running (they are
    never failed here); those past ``XSALE_AMAZON_HOLD_EXPIRY`` are discarded.
    """
    ext = current_amazon
    m, session = ext.models, ext.db.session
    now = now or utcnow()
    _discard_held_runs(reason="expired", now=now)
    timeout = ext.settings.heartbeat_timeout
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


def _stale_reason(run: Any, now: datetime, timeout: float) -> str | None:
    running = run.status in (Status.REQUESTING, Status.PROCESSING)
    if running:
        beat = run.heartbeat_at or run.started_at or run.created_at
        return "worker_died" if is_stale(beat, now, timeout) else None
    due = as_utc(run.next_poll_at or run.created_at)
    if not is_stale(due, now, timeout):
        return None
    job_state = _job_state(run.rq_job_id)
    if job_state == "started":
        # A step is (or was) running although the run waits: a poll. Its heartbeat thread
        # proves it alive; RQ only notices a SIGKILLed worker's job much later (heartbeat TTL
        # + registry maintenance, ~10 minutes).
        beat = max(as_utc(run.heartbeat_at or run.created_at), due)
        return "worker_died" if is_stale(beat, now, timeout) else None
    if job_state in ("queued", "scheduled", "deferred"):
        # Without any worker (hence no scheduler) a scheduled poll never runs either.
        if job_state in ("queued", "scheduled") and is_stale(due, now, 12 * timeout):
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

# -- held runs ---------------------------------------------------------------------------------
# An import whose apply would soft-remove more than XSALE_AMAZON_REMOVAL_GUARD of the
# integration's live offers stops in status "held" instead of applying:
# * its staged rows stay in the staging table - exactly what a confirmation applies - and the
#   run records how many there are (staged_rows), so a confirmation after a PostgreSQL crash
#   (the staging table is UNLOGGED) fails with "staging_lost" instead of applying a remnant;
# * it gives the integration's active_lock back: a held run is not running, the stale-run
#   recovery never fails it, and it blocks nobody. Starting a new import of the integration
#   discards it (the newer report wins), and so does XSALE_AMAZON_HOLD_EXPIRY;
# * confirm_run takes the lock again - so a confirmation and a new import can never both
#   proceed - and enqueues a step that applies the staged rows without the guard; discard_run
#   ends the run and deletes its staged rows. Neither changes an offer.
# Scheduled imports are held like any other: only an operator confirms.

HELD_CODE = "removal_held"
DISCARDED_CODE = "removal_discarded"
_PREVIEW_COUNTS = ("count_created", "count_updated", "count_unchanged", "count_removed",
                   "count_restored", "count_duplicate", "count_kept")


class HoldNotPending(Exception):
    """The run is not (or no longer) waiting for a confirmation."""


def _english_text(code: str, params: dict[str, Any]) -> str:
    with _english():
        return error_text(code, params)[:4000]


def hold_run(run: Any, job_id: str | None, counts: ApplyCounts, limit: float, staged_rows: int,
             invalid_lines: list[dict[str, Any]]) -> bool:
    """Stop ``run`` before its apply, keeping its staged rows; False if the step lost it."""
    session = current_amazon.db.session
    table = run.__table__
    params = {"removed": counts.removed, "live": counts.live_before,
              "share": round(counts.removed_share * 100, 1), "limit": round(limit * 100, 1)}
    session.flush()
    held = session.execute(
        table.update()
        .where(table.c.id == run.id, table.c.rq_job_id == job_id,
               table.c.active_lock.is_not(None))
        .values(
            status=Status.HELD, stage=Stage.AWAITING_CONFIRMATION, active_lock=None,
            heartbeat_at=utcnow(), staged_rows=staged_rows, invalid_lines=invalid_lines,
            count_created=counts.created, count_updated=counts.updated,
            count_unchanged=counts.unchanged, count_removed=counts.removed,
            count_restored=counts.restored, count_duplicate=counts.duplicate,
            count_kept=counts.kept, error_code=HELD_CODE, error_params=params,
            error_message=_english_text(HELD_CODE, params),
        )
    ).rowcount == 1
    session.commit()
    session.expire(run)
    if held:
        log.warning("Import run %s held: it would remove %s of %s offers", run.id,
                    counts.removed, counts.live_before)
    return held


def _expired(run: Any, now: datetime) -> bool:
    expiry = timedelta(seconds=current_amazon.settings.hold_expiry)
    held_at = as_utc(run.heartbeat_at or run.created_at)
    return held_at is not None and held_at < now - expiry


def confirm_run(run_id: int, user: str | None) -> Any:
    """Apply a held run's staged report: take the import lock again and enqueue the apply.

    Raises :class:`HoldNotPending` when the run is not held (any more),
    :class:`ImportAlreadyRunning` when another import of the
    integration runs, and ``ImportNotPossible("queue_unavailable")`` when Redis is down (the
    run then stays held).
    """
    session = current_amazon.db.session
    run = session.get(current_amazon.models.ImportRun, run_id)
    if run is None or run.status != Status.HELD:
        raise HoldNotPending(run_id)
    if _expired(run, utcnow()):
        discard_run(run_id, None, reason="expired")
        raise HoldNotPending(run_id)
    table = run.__table__
    held_values = {c: getattr(run, c) for c in ("error_code", "error_params", "error_message")}
    try:
        taken = session.execute(
            table.update()
            .where(table.c.id == run.id, table.c.status == Status.HELD,
                   table.c.active_lock.is_(None))
            .values(status=Status.PROCESSING, stage=Stage.SAVING,
                    active_lock=run.integration_id, allow_removal=True, confirmed_by=user,
                    heartbeat_at=utcnow(), error_code=None, error_params=None,
                    error_message=None)
        ).rowcount == 1
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = active_run(run.integration_id)
        if existing is None:
            raise HoldNotPending(run_id) from None
        raise ImportAlreadyRunning(existing) from None
    session.expire(run)
    if not taken:
        raise HoldNotPending(run_id)
    try:
        enqueue_step(run, tag="confirm")
    except Exception as exc:  # Redis down: the run stays held, nothing changed
        session.rollback()
        session.execute(
            table.update().where(table.c.id == run.id, table.c.status == Status.PROCESSING)
            .values(status=Status.HELD, stage=Stage.AWAITING_CONFIRMATION, active_lock=None,
                    allow_removal=False, **held_values)
        )
        session.commit()
        session.expire(run)
        raise ImportNotPossible("queue_unavailable",
                                type(exc).__name__ + ": " + str(exc)) from exc
    log.info("Import run %s confirmed by %s", run.id, user)
    return run


def discard_run(run_id: int, user: str | None, *, reason: str = "operator") -> bool:
    """End a held run without applying it and delete its staged rows; False if not held."""
    ext = current_amazon
    session = ext.db.session
    run = session.get(ext.models.ImportRun, run_id)
    if run is None or run.status != Status.HELD:
        return False
    table = run.__table__
    params = {"removed": run.count_removed, "live": (run.error_params or {}).get("live", "?"),
              "reason": reason, "user": user}
    ended = session.execute(
        table.update()
        .where(table.c.id == run.id, table.c.status == Status.HELD)
        .values(status=Status.DISCARDED, stage=Stage.DONE, finished_at=utcnow(),
                confirmed_by=user, staged_rows=None, error_code=DISCARDED_CODE,
                error_params=params, error_message=_english_text(DISCARDED_CODE, params),
                **dict.fromkeys(_PREVIEW_COUNTS, 0))
    ).rowcount == 1
    if ended:
        staging = ext.models.import_row
        session.execute(staging.delete().where(staging.c.run_id == run.id))
    session.commit()
    session.expire(run)
    if ended:
        log.info("Import run %s discarded (%s)", run.id, reason)
        send_finished(run)
    return ended


def _discard_held_runs(*, integration_id: int | None = None, reason: str,
                      now: datetime | None = None) -> int:
    """Discard the held runs of an integration (``superseded``) or, without one, the held runs
    past ``XSALE_AMAZON_HOLD_EXPIRY`` (``expired``). Returns how many were discarded."""
    run_model = current_amazon.models.ImportRun
    query = sa.select(run_model).where(run_model.status == Status.HELD)
    if integration_id is not None:
        query = query.where(run_model.integration_id == integration_id)
    now = now or utcnow()
    discarded = 0
    for run in current_amazon.db.session.execute(query).scalars().all():
        if integration_id is None and not _expired(run, now):
            continue
        discarded += discard_run(run.id, None, reason=reason)
    return discarded
