"""The RQ job computing the mapping assistant's suggestions for an integration, with progress.

The job's only argument is the integration id; progress (offers done / to do) is kept in the
job's ``meta`` so the Suggestions view can show a progress bar. Everything it computes is
committed per batch, so a killed worker loses at most one batch and the next run continues
with what is still missing or stale.
"""

from __future__ import annotations

import uuid
from typing import Any

from rq import get_current_job
from rq.job import Job

from .proxies import current_amazon
from .suggestions import compute_for_integration

JOB_FUNC = "xsale_amazon_plugin.suggest_job.compute_suggestions"


def compute_suggestions(integration_id: int) -> dict[str, int]:
    job = get_current_job()

    def progress(done: int, total: int) -> None:
        if job is not None:
            job.meta.update({"done": done, "total": total})
            job.save_meta()

    result = compute_for_integration(int(integration_id), progress=progress)
    return {"offers": result.offers, "computed": result.computed}


def enqueue(integration_id: int) -> str:
    """Start computing; returns the job id (one running job per integration is reused)."""
    queue = current_amazon.queue
    marker = f"xsale_amazon:suggest_job:{queue.name}:{integration_id}"
    running: Any = queue.connection.get(marker)
    if running:
        state = job_state(running.decode())
        if state and state["active"]:
            return str(running.decode())
    job_id = f"xa-suggest-{integration_id}-{uuid.uuid4().hex[:12]}"
    queue.enqueue(JOB_FUNC, int(integration_id), job_id=job_id,
                  job_timeout=current_amazon.settings.job_timeout, result_ttl=3600,
                  failure_ttl=86400, meta={"done": 0, "total": None,
                                           "integration_id": int(integration_id)})
    queue.connection.set(marker, job_id, ex=current_amazon.settings.job_timeout)
    return job_id


def job_state(job_id: str) -> dict[str, Any] | None:
    """Progress of a suggestion job, or None when Redis no longer knows it."""
    queue = current_amazon.queue
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except Exception:  # rq raises NoSuchJobError, or a deserialisation error for foreign ids
        return None
    if job.func_name != JOB_FUNC:
        return None
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
