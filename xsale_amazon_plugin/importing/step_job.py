"""The RQ job of an import: one call of :func:`import_step` advances one run by one step.

The step machine only; who owns a run and how a run ends is :mod:`.lifecycle`'s business.

Steps: request the report (or reuse a fresh one) → poll its status, re-scheduling itself
through RQ's scheduler with a backing-off delay instead of sleeping in a worker → once Amazon
is DONE: download, parse and stage the rows, then apply them in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy.exc import DBAPIError, OperationalError

from ..amazon.client import AmazonError, AmazonReportsClient, DownloadStopped, LwaCredentials
from ..amazon.report_parser import MissingAsinColumnError, ReportFormatError, ReportReader
from ..liveness import Heartbeat, beat_interval
from ..models import ReportMode, Stage, Status
from ..proxies import current_amazon
from ..timeutil import as_utc, parse_amazon_time, utcnow
from .lifecycle import (
    end_values,
    enqueue_step,
    failed_report_ids,
    finish_run,
    hold_run,
    owned,
    save_if_owned,
    send_finished,
)
from .report_checks import ReportRejected, check_invalid_share
from .writer import OfferWriter, RemovalLimitExceeded, StageCounts, StagingLost

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


def import_step(run_id: int) -> str:
    """RQ entry point. Returns a short word describing what the step did."""
    ext = current_amazon
    session = ext.db.session
    run = session.get(ext.models.ImportRun, run_id)
    if run is None or run.status not in Status.ACTIVE:
        return "stale"
    job = get_current_job()
    if job is not None and run.rq_job_id and job.id != run.rq_job_id:
        return "superseded"
    try:
        return _Step(run).execute()
    except _RunEnded:
        _drop_staging(run_id)
        return run.status
    except (OperationalError, DBAPIError) as exc:
        session.rollback()
        _fail_safely(run_id, "database", str(exc.orig if hasattr(exc, "orig") else exc))
        return "failed"
    except RedisError as exc:  # e.g. scheduling the next poll while Redis is gone
        session.rollback()
        _fail_safely(run_id, "queue_unavailable", f"{type(exc).__name__}: {exc}")
        return "failed"
    except Exception as exc:
        # The driver's own errors reach here from raw cursors (COPY, MySQL staging batches).
        if isinstance(exc, ext.db.engine.dialect.loaded_dbapi.Error):
            session.rollback()
            _fail_safely(run_id, "database", str(exc))
            return "failed"
        log.exception("Import run %s failed unexpectedly", run_id)
        session.rollback()
        _fail_safely(run_id, "internal", f"{type(exc).__name__}: {exc}")
        return "failed"


def _drop_staging(run_id: int) -> None:
    """Rows this step staged after its run was ended elsewhere (e.g. cancelled) are garbage;
    a held run keeps them for the operator's confirmation, an active one belongs to another
    step."""
    m = current_amazon.models
    staging, runs = m.import_row, m.ImportRun.__table__
    try:
        with current_amazon.db.engine.begin() as conn:
            status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None or status == Status.HELD or status in Status.ACTIVE:
                return
            conn.execute(staging.delete().where(staging.c.run_id == run_id))
    except Exception:  # the database may be down; ending the run cleans up next time
        log.debug("could not drop the staged rows of run %s", run_id, exc_info=True)


def _fail_safely(run_id: int, code: str, detail: str, job_id: str | None = None) -> None:
    session = current_amazon.db.session
    try:
        run = session.get(current_amazon.models.ImportRun, run_id)
        if run is not None and run.status in Status.ACTIVE:
            finish_run(run, Status.FAILED, error_code=code, error_params={"detail": detail[:1000]},
                       expect={"rq_job_id": job_id} if job_id else None)
    except Exception:  # the database itself may be down; the stale-run check will catch up
        log.exception("Could not record the failure of import run %s", run_id)
        session.rollback()


def on_job_failure(job: Any, connection: Any, exc_type: Any, value: Any, tb: Any) -> None:
    """RQ failure callback (also for abandoned jobs). Runs outside the job's app context."""
    from rq.exceptions import AbandonedJobError  # noqa: F401  (documented cause)

    app = getattr(job, "_flask_app", None)
    app = app() if app else None
    if app is None:
        return
    run_id = job.args[0] if job.args else None
    if run_id is None:
        return
    with app.app_context():
        # Only if the run still waits for this job: a worker killed just after its step
        # scheduled the next one leaves an abandoned job behind while the run goes on.
        _fail_safely(run_id, "worker_died", f"{getattr(exc_type, '__name__', exc_type)}: {value}",
                     job_id=job.id)


class _Step:
    """One step of one run: request → poll (re-scheduled) → download, parse, stage → apply."""

    def __init__(self, run: Any) -> None:
        self.ext = current_amazon._get_current_object()  # type: ignore[attr-defined]
        self.settings = self.ext.settings
        self.run = run
        self.session = self.ext.db.session
        self.integration = run.integration
        self.marketplace = self.integration.marketplace_info
        self.job_id = run.rq_job_id

    # -- helpers ---------------------------------------------------------------------------
    def _client(self) -> AmazonReportsClient:
        integ, settings = self.integration, self.settings
        creds = LwaCredentials(integ.lwa_client_id, integ.lwa_client_secret or "",
                               integ.refresh_token or "")
        return AmazonReportsClient(
            self.marketplace,
            creds,
            spapi_endpoint=settings.spapi_endpoint,
            lwa_endpoint=settings.lwa_endpoint,
            timeout=settings.http_timeout,
            max_retries=settings.max_retries,
            allowed_download_hosts=settings.download_hosts,
        )

    def _end(self, status: str, code: str | None = None, **params: Any) -> None:
        finish_run(self.run, status, error_code=code, error_params=params or None,
                   expect={"rq_job_id": self.job_id})
        raise _RunEnded

    def _save(self, **fields: Any) -> None:
        """Write ``fields`` to the run if this step still owns it; else stop the step."""
        if not save_if_owned(self.run, self.job_id, **fields):
            log.warning("Import run %s was ended elsewhere; step %s stops", self.run.id,
                        self.job_id)
            raise _RunEnded

    def _time(self, name: str, started: float) -> dict[str, float]:
        durations = dict(self.run.durations or {})
        durations[name] = round(durations.get(name, 0) + time.monotonic() - started, 3)
        return durations

    def _deadline_passed(self) -> bool:
        limit = timedelta(seconds=self.settings.report_deadline)
        return utcnow() - as_utc(self.run.created_at) > limit

    # -- the step --------------------------------------------------------------------------
    def execute(self) -> str:
        run = self.run
        if run.started_at is None:
            self._save(started_at=utcnow())
        client = self._client()
        table = run.__table__
        self._heartbeat = Heartbeat(self.ext.db.engine, table, owned(table, run.id, self.job_id),
                                    beat_interval(self.settings.heartbeat_timeout),
                                    name=f"import run {run.id}")
        try:
            with self._heartbeat:
                return self._advance(client)
        except AmazonError as exc:
            return self._amazon_error(exc)
        finally:
            client.close()

    def _advance(self, client: AmazonReportsClient) -> str:
        run = self.run
        if run.stage == Stage.SAVING and run.staged_rows is not None:
            self._apply_confirmed()
            return "succeeded"
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
            # Amazon's Retry-After (or the client's next back-off) when it was too long to
            # wait in-process: the step waits for it on RQ's scheduler instead.
            delay = max(self._poll_delay(run.retries), exc.retry_after or 0.0)
            delay = min(delay, self.settings.poll_max_interval)
            log.info("Import run %s: transient Amazon error (%s); retry in %.0fs", run.id,
                     exc.kind, delay)
            enqueue_step(run, delay)
            return "retrying"
        params: dict[str, Any] = {"detail": exc.message[:1000]}
        if exc.amazon_text:
            params["amazon"] = exc.amazon_text[:1000]
        self._end(Status.FAILED, _AMAZON_CODES.get(exc.kind, "amazon_unavailable"), **params)
        return "failed"

    def _poll_delay(self, n: int) -> float:
        settings = self.settings
        delay = settings.poll_interval * settings.poll_backoff ** max(n - 1, 0)
        return min(delay, settings.poll_max_interval)

    def _request_report(self, client: AmazonReportsClient) -> None:
        started = time.monotonic()
        report = self._reusable_report(client)
        if report:
            fields = {"report_id": report["reportId"], "report_reused": True,
                      "report_created_at": parse_amazon_time(report.get("createdTime"))}
        else:
            fields = {"report_id": client.create_report(custom=True, locale="en_US"),
                      "report_created_at": utcnow()}
        self._save(**fields, durations=self._time("request", started))

    def _reusable_report(self, client: AmazonReportsClient) -> dict | None:
        """The DONE report this run may use instead of requesting one (see ReportMode)."""
        run = self.run
        if run.report_mode == ReportMode.FRESH:
            return None
        excluded = failed_report_ids(self.integration.id)
        if run.report_mode == ReportMode.REUSE and run.reuse_report_id:
            # The operator chose this report in the Import dialog: use it only if Amazon still
            # has it DONE for this marketplace, else request a fresh one.
            try:
                report = client.get_report(run.reuse_report_id)
            except AmazonError as exc:
                if exc.kind not in ("not_found", "bad_request"):
                    raise
                return None
            usable = (
                report.get("processingStatus") == "DONE"
                and report.get("reportDocumentId")
                and report.get("marketplaceIds") == [self.marketplace.marketplace_id]
                and str(report.get("reportId")) not in excluded
            )
            return report if usable else None
        window = self.settings.report_reuse_window
        if window <= 0:
            return None
        return client.find_recent_report(utcnow() - timedelta(seconds=window), exclude=excluded)

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
            hours = round(self.settings.report_deadline / 3600, 1)
            self._end(Status.FAILED, "report_timeout", hours=hours)
        enqueue_step(run, self._poll_delay(run.poll_count))
        return False

    def _writer(self) -> OfferWriter:
        return OfferWriter(
            self.ext.models,
            self.ext.db.engine,
            run_id=self.run.id,
            integration_id=self.integration.id,
            account_type=self.integration.account_type,
            currency=self.marketplace.currency,
            invalid_lines_kept=self.settings.invalid_lines_kept,
        )

    def _process(self, client: AmazonReportsClient) -> None:
        run = self.run
        fd, path = tempfile.mkstemp(prefix=f"xsale-amazon-{run.id}-", suffix=".tsv")
        os.close(fd)
        writer = self._writer()
        try:
            started = time.monotonic()
            self._save(stage=Stage.DOWNLOADING)
            try:
                doc = client.download_document(run.report_document_id, path,
                                               should_stop=self._heartbeat.lost.is_set)
            except DownloadStopped:
                log.warning("Import run %s was ended elsewhere during the download; step %s "
                            "stops", run.id, self.job_id)
                raise _RunEnded from None
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
                       rows_total=reader.total_lines,
                       declared_charset=(doc.declared_charset or "")[:40] or None)
            writer.clear_staging()
            counts = writer.stage(
                reader.rows(),
                has_channel_column="fulfillment-channel" in reader.columns,
                batch_size=self.settings.batch_size,
                on_batch=self._progress,
            )
            self._save(stage=Stage.SAVING, durations=self._time("parse", started),
                       **self._stage_fields(counts))
            try:
                check_invalid_share(counts, self.settings.max_invalid_share)
            except ReportRejected as exc:
                self._end(Status.FAILED, exc.code, **exc.params)
            guard = None if run.allow_removal else self.settings.removal_guard
            self._apply(writer, list(counts.invalid_lines), counts.read, guard=guard)
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

    def _apply_confirmed(self) -> None:
        """Apply exactly the rows staged before the run was held (an operator confirmed)."""
        run = self.run
        writer = self._writer()
        writer.staged_rows = run.staged_rows
        # The duplicate lines recorded at the hold are found again by this apply.
        invalid_lines = [i for i in run.invalid_lines or []
                         if not str(i.get("reason", "")).startswith("duplicate seller-sku")]
        self._apply(writer, invalid_lines, run.count_read, guard=None)

    def _apply(self, writer: OfferWriter, invalid_lines: list[dict[str, Any]], rows_read: int,
               *, guard: float | None) -> None:
        """Apply the staged rows and end the run as succeeded, in one transaction.

        With ``guard``, a report removing more than that share of the live offers is held for
        confirmation instead (nothing applied, staged rows kept)."""
        run = self.run
        keep = self.settings.invalid_lines_kept
        try:
            self._apply_in_transaction(writer, invalid_lines, rows_read, guard)
        except RemovalLimitExceeded as exc:
            hold_run(run, self.job_id, exc.counts, exc.limit, writer.staged_rows,
                     (invalid_lines + exc.counts.duplicate_lines)[:keep])
            raise _RunEnded from None
        except StagingLost as exc:
            self._end(Status.FAILED, "staging_lost", detail=str(exc))
        self.session.expire(run)
        send_finished(run)

    def _apply_in_transaction(self, writer: OfferWriter, invalid_lines: list[dict[str, Any]],
                              rows_read: int, guard: float | None) -> None:
        run = self.run
        started = time.monotonic()
        run_table = self.ext.models.ImportRun.__table__
        keep = self.settings.invalid_lines_kept
        with writer.engine.begin() as conn:  # its isolation level (see dialects.worker_engine)
            counts = writer.apply(conn, max_removed_share=guard)
            # Ending the run in the apply transaction: applied <=> succeeded. If the run was
            # ended meanwhile (e.g. declared dead), nothing of this transaction is kept.
            ended = conn.execute(
                run_table.update()
                .where(owned(run_table, run.id, self.job_id))
                .values(
                    count_created=counts.created,
                    count_updated=counts.updated,
                    count_unchanged=counts.unchanged,
                    count_removed=counts.removed,
                    count_restored=counts.restored,
                    count_duplicate=counts.duplicate,
                    count_kept=counts.kept,
                    invalid_lines=(invalid_lines + counts.duplicate_lines)[:keep],
                    rows_done=rows_read,
                    rows_total=rows_read,
                    staged_rows=None,
                    durations=self._time("apply", started),
                    **end_values(Status.SUCCEEDED),
                )
            ).rowcount
            if not ended:
                raise _RunEnded  # leaving the block rolls the transaction back
