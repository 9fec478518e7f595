"""The periodic task workers run: start due scheduled imports, report stale integrations."""

from __future__ import annotations

import logging
import os
import random
import threading
from datetime import datetime
from typing import Any

from .freshness import notify_stale
from .models import utcnow
from .scheduling import SlotResult, run_due_schedules

log = logging.getLogger(__name__)


def sync_tick(now: datetime | None = None) -> list[SlotResult]:
    """One check of every schedule and of every integration's freshness (app context)."""
    now = now or utcnow()
    results = run_due_schedules(now)
    for result in results:
        log.info("Schedule slot %s of integration %s: %s (run %s)", result.slot_at.isoformat(),
                 result.integration_id, result.outcome, result.run_id)
    notify_stale(now)
    return results


class SyncTickThread(threading.Thread):
    """Runs :func:`sync_tick` every ``interval`` seconds inside a worker process.

    Every worker runs one; the database makes sure a slot starts one run however many tick.
    The first tick comes within a second, so a worker coming back catches up at once.
    """

    def __init__(self, app: Any, interval: float) -> None:
        super().__init__(name="xsale-amazon-sync-tick", daemon=True)
        self.app = app
        self.interval = max(float(interval), 0.2)
        self.stopped = threading.Event()
        _dispose_pools_in_forked_children(app)

    def run(self) -> None:
        delay = min(1.0, self.interval)
        while not self.stopped.wait(delay):
            self.tick_once()
            # A little jitter keeps many workers from ticking in lockstep.
            delay = self.interval * random.uniform(0.8, 1.2)

    def tick_once(self) -> None:
        with self.app.app_context():
            db = self.app.extensions["xsale_amazon"].db
            try:
                sync_tick()
            except Exception:
                log.exception("xsale_amazon scheduled-import tick failed")
            finally:
                db.session.remove()

    def stop(self) -> None:
        self.stopped.set()


_forked_apps: set[int] = set()


def _dispose_pools_in_forked_children(app: Any) -> None:
    """RQ forks a work horse per job; pooled connections this thread opened in the parent
    must not be shared with it (SQLAlchemy: "Using Connection Pools with Multiprocessing")."""
    if id(app) in _forked_apps or not hasattr(os, "register_at_fork"):
        return
    _forked_apps.add(id(app))
    db = app.extensions["xsale_amazon"].db

    def forget_parent_connections() -> None:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose(close=False)

    os.register_at_fork(after_in_child=forget_parent_connections)
