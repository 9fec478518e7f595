"""Keeping the mapping assistant's stored suggestions fresh without an operator's click.

Two triggers start :func:`xsale_amazon_plugin.suggest.jobs.enqueue` (which reuses a job still
running for the integration, so nothing piles up):

* **After an import** (:func:`after_import`, a receiver of ``import_finished``): a run that
  succeeded and created, updated or restored offers starts the suggestion job of its
  integration, unless ``XSALE_AMAZON_SUGGEST_AFTER_IMPORT`` is False. The job computes only
  what is missing or stale. A failure to enqueue (Redis down) is logged and never fails or
  changes the import: the Suggestions view computes what is missing when it is opened.
* **When the product catalogue changed behind the plugin's back** (plain SQL, another
  process): :func:`periodic_check` is a periodic task of every worker
  (:func:`xsale_amazon_plugin.worker.register_periodic`). Every
  ``XSALE_AMAZON_SUGGEST_REFRESH_INTERVAL`` seconds one worker of the queue (a Redis lock
  decides which) enqueues :func:`check_catalog`, unless the previous check is still queued or
  running. That job runs the index's staleness check (:func:`.service.refresh_index`: one
  lookup in the change log, and the fingerprint aggregate, which catches what the triggers
  miss, such as MariaDB's TRUNCATE or PostgreSQL writes with triggers disabled, and on SQLite
  and MySQL/MariaDB keeps the log trusted for ``SUGGEST_FINGERPRINT_MAX_AGE``) and, when the
  catalogue version differs from the one the previous check saw, starts the suggestion job of
  every active integration with unlinked live offers.

Why the check is a job and not the periodic task itself: periodic tasks run in the worker's
main process, also while a work horse runs an import step. After a catalogue reload the
staleness check re-indexes the changed products, which can take minutes for a million
products; meanwhile the main process would not refresh the running job's heartbeat (RQ lets
it lapse after 90 s) and other workers would declare that step abandoned. As a job it runs
in a work horse like any other step, and when nothing changed it costs one small job per
interval for the whole queue.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from ..proxies import EXTENSION_KEY, current_amazon
from .catalogue_check import CHECK_FUNC, active_check, enqueue_check
from .jobs import enqueue
from .service import refresh_index

log = logging.getLogger(__name__)

#: Name of the periodic task in the worker's maintenance.
TASK_NAME = "xsale_amazon.suggest_refresh"
__all__ = ["CHECK_FUNC", "TASK_NAME", "after_import", "check_catalog", "periodic_check"]
#: Offer counts of a run that make its integration's suggestions stale.
_CHANGING_COUNTS = ("created", "updated", "restored")
#: How long the catalogue version a check saw is remembered (a later check compares with it).
_VERSION_TTL = 30 * 24 * 3600


def _keys(queue_name: str) -> dict[str, str]:
    prefix = f"xsale_amazon:suggest_refresh:{queue_name}"
    return {"tick": prefix + ":tick", "version": prefix + ":version"}


def after_import(app: Any, run: Any = None, integration: Any = None, counts: Any = None,
                 **_: Any) -> str | None:
    """Receiver of ``import_finished``: start the suggestion job after an applied import.

    Returns the job id (None when nothing was started). Never raises."""
    state = getattr(app, "extensions", {}).get(EXTENSION_KEY)
    if state is None or run is None:
        return None
    try:
        if not state.settings.suggest_after_import or run.status != "succeeded":
            return None
        counts = counts or {}
        if not any(counts.get(key) for key in _CHANGING_COUNTS):
            return None
        integration_id = getattr(integration, "id", None) or run.integration_id
        job_id = enqueue(int(integration_id))
        log.info("Import run %s changed offers: suggestion job %s for integration %s",
                 run.id, job_id, integration_id)
        return job_id
    except Exception:  # Redis down, a broken run object: the import must not notice
        log.warning("Could not start the suggestion job after import run %s",
                    getattr(run, "id", "?"), exc_info=True)
        return None


def _integrations_with_unlinked_offers() -> list[int]:
    """Ids of active integrations that have at least one unlinked live offer."""
    m = current_amazon.models
    offer = m.AmazonOffer.__table__
    link = m.OfferProductLink.__table__
    integ = m.AmazonIntegration.__table__
    unlinked = sa.exists().where(
        offer.c.integration_id == integ.c.id, offer.c.removed_at.is_(None),
        ~sa.exists().where(link.c.offer_id == offer.c.id))
    query = sa.select(integ.c.id).where(integ.c.active == sa.true(), unlinked).order_by(integ.c.id)
    return [int(i) for i in current_amazon.db.session.execute(query).scalars()]


def check_catalog() -> dict[str, Any]:
    """The RQ job of the periodic check: refresh the index; when the catalogue version changed
    since the previous check, start the suggestion job of every integration that needs it.

    The first check of a queue only records the version (there is nothing to compare with).
    Progress of the refresh (products checked / in the table) goes to the job's ``meta``."""
    from rq import get_current_job

    state = current_amazon
    job = get_current_job()

    def progress(done: int, total: int) -> None:
        if job is not None:
            job.meta.update({"done": done, "total": total})
            job.save_meta()

    # Verifies the fingerprint too: what the triggers missed is noticed within an interval,
    # and requests (SQLite, MySQL/MariaDB) rarely find the log's trust expired and pay for
    # the aggregate themselves.
    fresh = refresh_index(verify=True, progress=progress)
    connection = state.queue.connection
    key = _keys(state.queue.name)["version"]
    previous_raw: Any = connection.getset(key, str(fresh.version))
    connection.expire(key, _VERSION_TTL)
    previous = int(previous_raw) if previous_raw is not None else None
    enqueued: dict[int, str] = {}
    if previous is not None and previous != fresh.version:
        for integration_id in _integrations_with_unlinked_offers():
            enqueued[integration_id] = enqueue(integration_id)
        log.info("Product catalogue changed (version %s -> %s): suggestion jobs %s",
                 previous, fresh.version, enqueued)
    return {"version": fresh.version, "previous": previous,
            "enqueued": {str(k): v for k, v in enqueued.items()}}


def periodic_check() -> str | None:
    """The workers' periodic task: enqueue :func:`check_catalog` once per interval per queue.

    Returns the id of the job it enqueued, None when it was not its turn, the previous check
    is still queued or running, or the check is disabled."""
    state = current_amazon
    interval = state.settings.suggest_refresh_interval
    if interval <= 0:
        return None
    if active_check() is not None:  # the previous check (or a rebuild) is queued or running
        return None
    queue = state.queue
    # One worker per interval (workers on several machines all run this task).
    if not queue.connection.set(_keys(queue.name)["tick"], "1", nx=True,
                                ex=max(1, int(interval * 0.9))):
        return None
    return enqueue_check()

