"""The progress document of an import run, as the run page's script and the CLI show it."""

from __future__ import annotations

from typing import Any

from ..models import Status
from ..timeutil import as_utc, utcnow
from .messages import ended_stage_label, error_text, status_label


def run_progress(run: Any) -> dict[str, Any]:
    """The progress document of a run, as the run page's script consumes it."""
    now = utcnow()
    started = as_utc(run.started_at or run.created_at)
    end = as_utc(run.finished_at) or now
    elapsed = max((end - started).total_seconds(), 0.0)
    eta = None
    if run.is_active and run.rows_total and run.rows_done and run.stage == "parsing":
        rate = run.rows_done / max(elapsed, 0.001)
        eta = round((run.rows_total - run.rows_done) / rate) if rate else None
    percent = None
    if run.rows_total:
        percent = min(100, round(100 * (run.rows_done or 0) / run.rows_total))
    if run.status == Status.SUCCEEDED:
        percent = 100
    return {
        "id": run.id,
        "integration_id": run.integration_id,
        "status": run.status,
        "status_label": status_label(run.status),
        "stage": run.stage,
        "stage_label": ended_stage_label(run),
        "active": run.is_active,
        "rows_done": run.rows_done,
        "rows_total": run.rows_total,
        "percent": percent,
        "elapsed_seconds": round(elapsed),
        "eta_seconds": eta,
        "next_poll_in": (
            max(round((as_utc(run.next_poll_at) - now).total_seconds()), 0)
            if run.is_active and run.next_poll_at and run.status == Status.WAITING
            else None
        ),
        "polls": run.poll_count,
        "counts": run.counts,
        "error": error_text(run.error_code, run.error_params) if run.error_code else None,
        "error_code": run.error_code,
    }
