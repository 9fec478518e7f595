"""The RQ job computing the mapping assistant's suggestions for an integration, with progress.

The job's only argument is the integration id; progress (offers done / to do) is kept in the
job's ``meta`` so the Suggestions view can show a progress bar. Everything it computes is
committed per batch, so a killed worker loses at most one batch and the next run continues
with what is still missing or stale.

**Time slices.** Imports and suggestions share the queue and its workers. A job computing
100,000 offers takes minutes; run in one piece it would hold a worker that long, and with one
worker the next import step (or an operator's import) would wait behind it. So a job works for
at most :data:`SLICE_SECONDS`, then enqueues its continuation at the back of the queue (import
steps enqueued meanwhile run first) and records its id in its ``meta["continued_as"]``;
:func:`job_state` follows that chain, so the first job id reports the progress of the whole
computation until the last slice ends.
"""

from __future__ import annotations

import uuid
from typing import Any

from rq import get_current_job
from rq.job import Job

from .._job_class import current_name
from ..proxies import current_amazon
from .service import compute_for_integration

JOB_FUNC = "xsale_amazon_plugin.suggest.jobs.compute_suggestions"
#: A job computes for at most this long (plus one batch), then continues in a new job; it
#: stops sooner, after any batch, when another job (an import step) waits in the queue.
SLICE_SECONDS = 20.0
#: Longest chain of continuations :func:`job_state` follows (bounded; far beyond any run).
MAX_CHAIN = 10_000


def compute_suggestions(integration_id: int, done_before: int = 0,
                        total_before: int | None = None) -> dict[str, int]:
    """Compute for one slice; ``done_before`` / ``total_before`` carry the progress of the
    slices before this one."""
    job = get_current_job()
    totals: dict[str, int | None] = {"total": total_before}

    def progress(done: int, total: int) -> None:
        if totals["total"] is None:
            totals["total"] = done_before + total
        if job is not None:
            job.meta.update({"done": min(done_before + done, totals["total"] or 0),
                             "total": totals["total"]})
            job.save_meta()

    queue = current_amazon.queue
    result = compute_for_integration(int(integration_id), progress=progress,
                                     max_seconds=SLICE_SECONDS,
                                     yield_to=lambda: queue.count > 0)
    if result.remaining and job is not None:
        next_id = _enqueue_job(int(integration_id), done_before + result.computed,
                               totals["total"])
        job.meta["continued_as"] = next_id
        job.save_meta()
    return {"offers": result.offers, "computed": result.computed,
            "remaining": result.remaining}


def _marker(queue_name: str, integration_id: int) -> str:
    return f"xsale_amazon:suggest_job:{queue_name}:{integration_id}"


def _enqueue_job(integration_id: int, done_before: int = 0,
                 total_before: int | None = None) -> str:
    queue = current_amazon.queue
    job_id = f"xa-suggest-{integration_id}-{uuid.uuid4().hex[:12]}"
    queue.enqueue(JOB_FUNC, int(integration_id), done_before, total_before, job_id=job_id,
                  job_timeout=current_amazon.settings.job_timeout, result_ttl=3600,
                  failure_ttl=86400, meta={"done": done_before, "total": total_before,
                                           "integration_id": int(integration_id)})
    queue.connection.set(_marker(queue.name, integration_id), job_id,
                         ex=current_amazon.settings.job_timeout)
    return job_id


def enqueue(integration_id: int) -> str:
    """Start computing; returns the job id (one running job per integration is reused)."""
    queue = current_amazon.queue
    running: Any = queue.connection.get(_marker(queue.name, integration_id))
    if running:
        state = job_state(running.decode())
        if state and state["active"]:
            return str(running.decode())
    return _enqueue_job(int(integration_id))


def _fetch(job_id: str) -> Any:
    try:
        job = Job.fetch(job_id, connection=current_amazon.queue.connection)
    except Exception:  # rq raises NoSuchJobError, or a deserialisation error for foreign ids
        return None
    return job if current_name(job.func_name) == JOB_FUNC else None


def job_state(job_id: str) -> dict[str, Any] | None:
    """Progress of a suggestion job and its continuations, or None when Redis no longer
    knows it."""
    job = _fetch(job_id)
    if job is None:
        return None
    for _hop in range(MAX_CHAIN):
        meta = job.get_meta(refresh=True) if hasattr(job, "get_meta") else job.meta
        following = _fetch(str(meta["continued_as"])) if meta.get("continued_as") else None
        if following is None:
            break
        job = following
    status = job.get_status(refresh=True)
    status_name = getattr(status, "value", str(status))
    meta = job.get_meta(refresh=True) if hasattr(job, "get_meta") else job.meta
    return {
        "status": status_name,
        "active": status_name in ("queued", "started", "deferred", "scheduled"),
        "failed": status_name in ("failed", "stopped", "canceled"),
        "done": int(meta.get("done") or 0),
        "total": meta.get("total"),
        "integration_id": meta.get("integration_id"),
    }
