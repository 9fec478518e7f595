"""The RQ job of an import: one call of :func:`import_step` advances one run by one step.

Steps: request the report (or reuse a fresh one) → poll its status, re-scheduling itself
through RQ's scheduler with a backing-off delay instead of sleeping in a worker → once Amazon
is DONE: download, parse and stage the rows, then apply them in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy.exc import DBAPIError, OperationalError

from .amazon_client import AmazonError, AmazonReportsClient, LwaCredentials
from .extension import _State, get_state
from .importer import OfferImporter, StageCounts
from .imports import enqueue_step, finish_run, send_finished
from .models import Stage, Status, as_utc, utcnow
from .report_parser import MissingAsinColumnError, ReportFormatError, ReportReader

log = logging.getLogger(__name__)

MAX_STEP_RETRIES = 5
_AMAZON_CODES = {
    "auth": "amazon_auth",
    "forbidden": "amazon_forbidden",
    "throttled": "amazon_throttled",
    "server": "amazon_unavailable",
    "network": "amazon_unavailable",
    "bad_request": "amazon_bad_request",
    "not_found": "amazon_bad_request",
    "download": "download_failed",
    "url_not_allowed": "url_not_allowed",
}


class _RunEnded(Exception):
    """The run ended inside a step, or was ended elsewhere (already recorded)."""


class _Heartbeat:
    """Refreshes the run's ``heartbeat_at`` from a thread while a step works.

    The stale-run check fails a run whose heartbeat stops, so a SIGKILLed worker is noticed
    after ``XSALE_AMAZON_HEARTBEAT_TIMEOUT`` whatever the step was doing (even a long apply
    transaction, which this thread does not wait for: it uses its own connection).
    """

    def __init__(self, engine: sa.Engine, table: sa.Table, run_id: int, job_id: str | None,
                 interval: float) -> None:
        self._stop = threading.Event()
        self._args = (engine, table, run_id, job_id, interval)
        self._thread = threading.Thread(target=self._loop, name=f"xsale-amazon-heartbeat-{run_id}",
                                        daemon=True)

    def _loop(self) -> None:
        engine, table, run_id, job_id, interval = self._args
        stmt = table.update().where(table.c.id == run_id, table.c.rq_job_id == job_id,
                                    table.c.active_lock.is_not(None))
        while not self._stop.wait(interval):
            try:
                with engine.begin() as conn:
                    conn.execute(stmt.values(heartbeat_at=utcnow()))
            except Exception:  # e.g. SQLite busy during the apply; the next beat retries
                log.debug("heartbeat of run %s skipped", run_id, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def import_step(run_id: int) -> str:
    """RQ entry point. Returns a short word describing what the step did."""
    state = get_state()
    for engine in state.db.engines.values():
        engine.dispose(close=False)  # never reuse connections inherited across fork
    session = state.db.session
    run = session.get(state.models.ImportRun, run_id)
    if run is None or run.status not in Status.ACTIVE:
        return "stale"
    job = get_current_job()
    if job is not None and run.rq_job_id and job.id != run.rq_job_id:
        return "superseded"
    try:
        return _Step(state, run).execute()
    except _RunEnded:
        return run.status
    except (OperationalError, DBAPIError) as exc:
        session.rollback()
        _fail_safely(state, run_id, "database", str(exc.orig if hasattr(exc, "orig") else exc))
        return "failed"
    except RedisError as exc:  # e.g. scheduling the next poll while Redis is gone
        session.rollback()
        _fail_safely(state, run_id, "queue_unavailable", f"{type(exc).__name__}: {exc}")
        return "failed"
    except Exception as exc:
        log.exception("Import run %s failed unexpectedly", run_id)
        session.rollback()
        _fail_safely(state, run_id, "internal", f"{type(exc).__name__}: {exc}")
        return "failed"


def _fail_safely(state: _State, run_id: int, code: str, detail: str) -> None:
    try:
        run = state.db.session.get(state.models.ImportRun, run_id)
        if run is not None and run.status in Status.ACTIVE:
            finish_run(run, Status.FAILED, error_code=code, error_params={"detail": detail[:1000]})
    except Exception:  # the database itself may be down; the stale-run check will catch up
        log.exception("Could not record the failure of import run %s", run_id)
        state.db.session.rollback()


def on_job_failure(job: Any, connection: Any, exc_type: Any, value: Any, tb: Any) -> None:
    """RQ failure callback (also for abandoned jobs). Runs outside the job's app context."""
    from rq.exceptions import AbandonedJobError  # noqa: F401  (documented cause)

    app = getattr(job, "_flask_app", None)
    app = app() if app else None
    if app is None:
        return
    run_id = job.args[0] if job.args else None
    with app.app_context():
        state = get_state()
        code = "worker_died"
        _fail_safely(state, run_id, code, f"{getattr(exc_type, '__name__', exc_type)}: {value}")


class _Step:
    def __init__(self, state: _State, run: Any) -> None:
        self.state = state
        self.run = run
        self.session = state.db.session
        self.integration = run.integration
        self.marketplace = self.integration.marketplace_info
        self.job_id = run.rq_job_id

    # -- helpers ---------------------------------------------------------------------------
    def _client(self) -> AmazonReportsClient:
        integ, cfg = self.integration, self.state.cfg
        creds = LwaCredentials(integ.lwa_client_id, integ.lwa_client_secret or "",
                               integ.refresh_token or "")
        return AmazonReportsClient(
            self.marketplace,
            creds,
            spapi_endpoint=cfg("SPAPI_ENDPOINT"),
            lwa_endpoint=cfg("LWA_ENDPOINT"),
            timeout=float(cfg("HTTP_TIMEOUT")),
            max_retries=int(cfg("MAX_RETRIES")),
            allowed_download_hosts=tuple(cfg("DOWNLOAD_HOSTS")),
        )

    def _end(self, status: str, code: str | None = None, **params: Any) -> None:
        finish_run(self.run, status, error_code=code, error_params=params or None,
                   expect={"rq_job_id": self.job_id})
        raise _RunEnded

    def _save(self, **fields: Any) -> None:
        """Write ``fields`` to the run if this step still owns it; else stop the step."""
        table = self.run.__table__
        fields["heartbeat_at"] = utcnow()
        self.session.flush()
        owned = self.session.execute(
            table.update()
            .where(table.c.id == self.run.id, table.c.rq_job_id == self.job_id,
                   table.c.active_lock.is_not(None))
            .values(**fields)
        ).rowcount
        self.session.commit()
        self.session.expire(self.run)
        if not owned:
            log.warning("Import run %s was ended elsewhere; step %s stops", self.run.id,
                        self.job_id)
            raise _RunEnded

    def _time(self, name: str, started: float) -> dict[str, float]:
        durations = dict(self.run.durations or {})
        durations[name] = round(durations.get(name, 0) + time.monotonic() - started, 3)
        return durations

    def _deadline_passed(self) -> bool:
        limit = timedelta(seconds=float(self.state.cfg("REPORT_DEADLINE")))
        return utcnow() - as_utc(self.run.created_at) > limit

    # -- the step --------------------------------------------------------------------------
    def execute(self) -> str:
        run = self.run
        if run.started_at is None:
            self._save(started_at=utcnow())
        interval = max(0.5, float(self.state.cfg("HEARTBEAT_TIMEOUT")) / 5)
        client = self._client()
        heartbeat = _Heartbeat(self.state.db.engine, run.__table__, run.id, self.job_id, interval)
        try:
            with heartbeat:
                return self._advance(client)
        except AmazonError as exc:
            return self._amazon_error(exc)
        finally:
            client.close()

    def _advance(self, client: AmazonReportsClient) -> str:
        run = self.run
        if not run.report_id:
            self._save(status=Status.REQUESTING, stage=Stage.REQUESTING)
            self._request_report(client)
        if run.status != Status.PROCESSING:
            self._save(status=Status.WAITING, stage=Stage.WAITING)
            if not self._poll(client):
                return "waiting"
        self._process(client)
        return "succeeded"

    def _amazon_error(self, exc: AmazonError) -> str:
        run = self.run
        if exc.retryable and run.retries < MAX_STEP_RETRIES and not self._deadline_passed():
            fields: dict[str, Any] = {"retries": run.retries + 1}
            if run.status == Status.PROCESSING:
                fields.update(status=Status.WAITING, stage=Stage.WAITING)
            self._save(**fields)
            delay = self._poll_delay(run.retries)
            log.info("Import run %s: transient Amazon error (%s); retry in %.0fs", run.id,
                     exc.kind, delay)
            enqueue_step(run, delay)
            return "retrying"
        self._end(Status.FAILED, _AMAZON_CODES.get(exc.kind, "amazon_unavailable"),
                  detail=exc.message[:1000])
        return "failed"

    def _poll_delay(self, n: int) -> float:
        cfg = self.state.cfg
        delay = float(cfg("POLL_INTERVAL")) * float(cfg("POLL_BACKOFF")) ** max(n - 1, 0)
        return min(delay, float(cfg("POLL_MAX_INTERVAL")))

    def _request_report(self, client: AmazonReportsClient) -> None:
        started = time.monotonic()
        window = float(self.state.cfg("REPORT_REUSE_WINDOW"))
        report = None
        if window > 0:
            report = client.find_recent_report(utcnow() - timedelta(seconds=window))
        if report:
            fields = {"report_id": report["reportId"], "report_reused": True,
                      "report_created_at": _parse_ts(report.get("createdTime"))}
        else:
            fields = {"report_id": client.create_report(custom=True, locale="en_US"),
                      "report_created_at": utcnow()}
        self._save(**fields, durations=self._time("request", started))

    def _poll(self, client: AmazonReportsClient) -> bool:
        """True when the report is DONE; otherwise the run was re-scheduled or ended."""
        run = self.run
        report = client.get_report(run.report_id)
        status = report.get("processingStatus")
        self._save(poll_count=run.poll_count + 1)
        if status == "DONE":
            self._save(report_document_id=report.get("reportDocumentId"),
                       status=Status.PROCESSING, stage=Stage.DOWNLOADING)
            return True
        if status == "CANCELLED":
            self._end(Status.NO_DATA, "report_cancelled")
        if status == "FATAL":
            detail = ""
            doc_id = report.get("reportDocumentId")
            if doc_id:
                try:
                    detail = client.read_fatal_document(doc_id)
                except AmazonError as exc:
                    detail = exc.message
            self._end(Status.FAILED, "report_fatal", detail=detail[:2000])
        if self._deadline_passed():
            hours = round(float(self.state.cfg("REPORT_DEADLINE")) / 3600, 1)
            self._end(Status.FAILED, "report_timeout", hours=hours)
        enqueue_step(run, self._poll_delay(run.poll_count))
        return False

    def _process(self, client: AmazonReportsClient) -> None:
        run, state = self.run, self.state
        fd, path = tempfile.mkstemp(prefix=f"xsale-amazon-{run.id}-", suffix=".tsv")
        os.close(fd)
        importer = OfferImporter(
            state.models,
            state.db.engine,
            run_id=run.id,
            integration_id=self.integration.id,
            account_type=self.integration.account_type,
            currency=self.marketplace.currency,
            invalid_lines_kept=int(state.cfg("INVALID_LINES_KEPT")),
        )
        try:
            started = time.monotonic()
            self._save(stage=Stage.DOWNLOADING)
            doc = client.download_document(run.report_document_id, path)
            self._save(download_bytes=doc.size, stage=Stage.PARSING,
                       durations=self._time("download", started))

            started = time.monotonic()
            try:
                reader = ReportReader(path, declared_charset=doc.declared_charset,
                                      default_encoding=self.marketplace.default_encoding)
            except MissingAsinColumnError as exc:
                self._end(Status.FAILED, "missing_asin_column", header=exc.header or "")
            except ReportFormatError as exc:
                self._end(Status.FAILED, exc.code, detail=exc.message[:1500])
            self._save(encoding=reader.encoding, header_family=reader.header_family,
                       rows_total=reader.total_lines)
            importer.clear_staging()
            counts = importer.stage(
                reader.rows(),
                has_channel_column="fulfillment-channel" in reader.columns,
                batch_size=int(state.cfg("BATCH_SIZE")),
                on_batch=self._progress,
            )
            self._save(stage=Stage.SAVING, durations=self._time("parse", started),
                       **self._stage_fields(counts))
            self._apply(importer, counts)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _progress(self, counts: StageCounts, line: int) -> None:
        self._save(rows_done=counts.read, **self._stage_fields(counts))

    @staticmethod
    def _stage_fields(counts: StageCounts) -> dict[str, Any]:
        return {
            "count_read": counts.read,
            "count_skipped_channel": counts.skipped_channel,
            "count_invalid": counts.invalid,
            "count_without_asin": counts.without_asin,
            "invalid_lines": list(counts.invalid_lines),
        }

    def _apply(self, importer: OfferImporter, stage_counts: StageCounts) -> None:
        run, state = self.run, self.state
        started = time.monotonic()
        run_table = state.models.ImportRun.__table__
        keep = int(state.cfg("INVALID_LINES_KEPT"))
        with state.db.engine.begin() as conn:
            counts = importer.apply(conn)
            # Ending the run in the apply transaction: applied <=> succeeded. If the run was
            # ended meanwhile (e.g. declared dead), nothing of this transaction is kept.
            owned = conn.execute(
                run_table.update()
                .where(run_table.c.id == run.id, run_table.c.rq_job_id == self.job_id,
                       run_table.c.active_lock.is_not(None))
                .values(
                    count_created=counts.created,
                    count_updated=counts.updated,
                    count_unchanged=counts.unchanged,
                    count_removed=counts.removed,
                    count_restored=counts.restored,
                    count_duplicate=counts.duplicate,
                    invalid_lines=(list(stage_counts.invalid_lines)
                                   + counts.duplicate_lines)[:keep],
                    rows_done=stage_counts.read,
                    rows_total=stage_counts.read,
                    status=Status.SUCCEEDED,
                    stage=Stage.DONE,
                    active_lock=None,
                    finished_at=utcnow(),
                    durations=self._time("apply", started),
                )
            ).rowcount
            if not owned:
                raise _RunEnded  # leaving the block rolls the transaction back
        self.session.expire(run)
        send_finished(run)


def _parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
