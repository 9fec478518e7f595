"""The periodic task every worker runs: start due scheduled imports, report stale integrations.

``init_app`` registers :func:`sync_tick` with :func:`xsale_amazon_plugin.worker.register_periodic`
every ``XSALE_AMAZON_SCHEDULE_TICK`` seconds, so every ``flask xsale-amazon worker`` checks the
schedules (no extra daemon); the database lets one of them start each due slot.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..timeutil import utcnow
from .freshness import notify_stale
from .service import SlotResult, run_due_schedules

log = logging.getLogger(__name__)

#: Name of the task in the worker's periodic maintenance.
TASK_NAME = "xsale_amazon.sync_tick"


def sync_tick(now: datetime | None = None) -> list[SlotResult]:
    """One check of every schedule and of every integration's freshness (app context)."""
    now = now or utcnow()
    results = run_due_schedules(now)
    for result in results:
        log.info("Schedule slot %s of integration %s: %s (run %s)", result.slot_at.isoformat(),
                 result.integration_id, result.outcome, result.run_id)
    notify_stale(now)
    return results
