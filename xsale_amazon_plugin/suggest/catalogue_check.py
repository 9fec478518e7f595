"""The catalogue check job: refreshes the mapping assistant's index in a worker.

One job function, :data:`CHECK_FUNC`
(:func:`xsale_amazon_plugin.suggest.auto_refresh.check_catalog`), is started two ways and at
most once at a time per queue (a Redis key names the job queued or running; it is reused
while active):

* by the workers' periodic task, every ``XSALE_AMAZON_SUGGEST_REFRESH_INTERVAL`` seconds;
* by a web request that finds the index stale and the refresh larger than
  ``XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT`` products (:func:`start_rebuild`): a refresh of a
  million products takes minutes, longer than an HTTP server lets a request run, and a killed
  request rolls the whole refresh back. The request shows "being rebuilt" instead.

The job records its progress (products checked / products in the table) in its ``meta``;
:func:`rebuild_state` reads it. The job takes no arguments.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from .._job_class import current_name
from ..proxies import current_amazon

CHECK_FUNC = "xsale_amazon_plugin.suggest.auto_refresh.check_catalog"
_ACTIVE = ("queued", "started", "deferred", "scheduled")
#: Tries of :func:`start_rebuild` while another request starts the job (50 ms apart).
_START_ATTEMPTS = 100


def _job_marker(queue_name: str) -> str:
    """Redis key naming the check job queued or running for the queue."""
    return f"xsale_amazon:suggest_refresh:{queue_name}:job"


def rebuild_state(job_id: str) -> dict[str, Any] | None:
    """Status and progress of a check job, or None when Redis no longer knows it (or it is
    not a check job): ``status``, ``active`` (queued or running), ``failed``, ``done`` and
    ``total`` (products checked / in the table; total None until known)."""
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=current_amazon.queue.connection)
    except Exception:  # gone, or not a job of ours
        return None
    if current_name(job.func_name) != CHECK_FUNC:
        return None
    status = job.get_status(refresh=True)
    name = getattr(status, "value", str(status))
    meta = job.get_meta(refresh=True) if hasattr(job, "get_meta") else job.meta
    return {"status": name, "active": name in _ACTIVE,
            "failed": name in ("failed", "stopped", "canceled"),
            "done": int(meta.get("done") or 0), "total": meta.get("total")}


def active_check() -> tuple[str, dict[str, Any]] | None:
    """The check job queued or running for the queue (id, state), if any."""
    queue = current_amazon.queue
    running: Any = queue.connection.get(_job_marker(queue.name))
    if running is None:
        return None
    job_id = running.decode()
    state = rebuild_state(job_id)
    return (job_id, state) if state is not None and state["active"] else None


def enqueue_check(products: int | None = None, *, at_front: bool = False) -> str:
    """Enqueue the check job; ``products`` (the expected size, shown until the job knows
    better) goes to its ``meta``. ``at_front`` puts it before the jobs already waiting (an
    operator waits for it). Does not look for an active one: see :func:`start_rebuild`."""
    state = current_amazon
    queue = state.queue
    job_id = f"xa-suggest-check-{uuid.uuid4().hex[:12]}"
    queue.enqueue(CHECK_FUNC, job_id=job_id, job_timeout=state.settings.job_timeout,
                  result_ttl=max(60, int(state.settings.suggest_refresh_interval)),
                  failure_ttl=86400, meta={"done": 0, "total": products}, at_front=at_front)
    queue.connection.set(_job_marker(queue.name), job_id, ex=state.settings.job_timeout)
    return job_id


def start_rebuild(products: int) -> tuple[str, dict[str, Any]]:
    """The check job that will refresh the index (the active one, else a new one) and its
    state. Concurrent requests start one job between them (a short Redis lock). Raises when
    the queue is unreachable (no Redis)."""
    connection = current_amazon.queue.connection
    lock = _job_marker(current_amazon.queue.name) + ":starting"
    for _attempt in range(_START_ATTEMPTS):
        active = active_check()
        if active is not None:
            return active
        if connection.set(lock, "1", nx=True, ex=30):
            try:
                active = active_check()
                if active is not None:
                    return active
                # An operator is looking at "being rebuilt": ahead of import steps waiting.
                job_id = enqueue_check(products, at_front=True)
                return job_id, rebuild_state(job_id) or {
                    "status": "queued", "active": True, "failed": False, "done": 0,
                    "total": products}
            finally:
                connection.delete(lock)
        time.sleep(0.05)
    raise RuntimeError("Another request holds the lock that starts the index rebuild.")
