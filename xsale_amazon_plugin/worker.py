"""The plugin's RQ worker: RQ's worker plus the periodic maintenance the plugin needs.

:func:`make_worker` is the one place that builds it (``flask xsale-amazon worker`` and the
tests use it). On top of RQ's own worker it

* fails runs whose worker died (:func:`.importing.lifecycle.recover_stale_runs`) at the
  :func:`.liveness.maintenance_interval`, so a step that was running when its worker was
  killed ends within about 1.25 × ``HEARTBEAT_TIMEOUT``;
* takes over RQ's scheduler lock within seconds when the worker that held it died, so
  imports waiting for Amazon (polls scheduled on RQ's scheduler) go on;
* runs the periodic tasks other parts of the plugin register with :func:`register_periodic`.

Why RQ alone takes minutes to take the scheduler over (rq 2.12 and 3.0, ``rq/worker/base.py``
and ``rq/scheduler.py``): the scheduler lock ``rq:scheduler-lock:<queue>`` is set with a TTL
of ``interval + 60`` = 61 s and refreshed every second by the scheduler process of the worker
that holds it. A worker only tries to take the lock in ``run_maintenance_tasks``, which its
work loop calls between two blocking dequeues, once ``maintenance_interval`` (10 min by
default) has passed; and an idle worker blocks in ``BLPOP`` for ``dequeue_timeout`` =
``worker_ttl - 15`` = 405 s. So after a SIGKILL the dead scheduler's lock lives for up to
61 s more, and the replacement looks again only when a new job wakes its ``BLPOP`` or 405 s
later: 4 min 4 s measured. Meanwhile no scheduled job (no poll) is enqueued. Here an idle
worker blocks at most :data:`MAINTENANCE_TICK` seconds, checks the lock on every tick, and
breaks a lock whose holder has been silent for :data:`SCHEDULER_SILENT_AFTER` seconds
(compare-and-delete, so a live holder that just refreshed keeps it).

Periodic work runs in the worker's main process (never in a work horse), inside the Flask
app's context, while the worker is idle and also while a step runs (from RQ's work-horse
monitoring loop, every ``job_monitoring_interval`` = 30 s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from rq import SimpleWorker, Worker
from rq.exceptions import SchedulerNotFound
from rq.scheduler import RQScheduler
from rq.scripts import release_lock
from rq.worker import BaseWorker

from .importing.lifecycle import recover_stale_runs
from .liveness import maintenance_interval
from .proxies import current_amazon
from .timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

#: Longest an idle worker blocks waiting for a job before it looks at its maintenance.
MAINTENANCE_TICK = 5
#: A scheduler lock whose holder neither refreshed it nor sent a heartbeat for this many
#: seconds belongs to a dead scheduler (a live one does both every second).
SCHEDULER_SILENT_AFTER = 15.0
#: RQ's lock TTL: ``RQScheduler.interval`` (1 s in a worker) + 60, see ``acquire_locks``.
_RQ_SCHEDULER_LOCK_TTL = 61
#: How often RQ's own registry cleaning runs (it also fails jobs of dead workers).
RQ_MAINTENANCE_INTERVAL = 60


@dataclass(frozen=True)
class _PeriodicTask:
    """``func()`` runs inside the app context every ``every_seconds`` in each worker."""

    name: str
    func: Callable[[], object]
    every_seconds: float


_registered: dict[str, _PeriodicTask] = {}


def register_periodic(name: str, func: Callable[[], object], every_seconds: float) -> None:
    """Run ``func()`` every ``every_seconds`` in every plugin worker, inside the app context.

    Registering a name again replaces the earlier task. Tasks run in the worker's main
    process between jobs (and every 30 s while a job runs), so keep them short; an
    exception is logged and the task runs again at its next turn. Workers built after the
    call pick it up.

    :param name: the task's name (unique; logged with its failures).
    :param func: called with no arguments.
    :param every_seconds: the period, greater than 0.
    :raises ValueError: ``every_seconds`` is not greater than 0.

    .. versionadded:: 0.2.0
    """
    if every_seconds <= 0:
        raise ValueError("every_seconds must be positive")
    _registered[name] = _PeriodicTask(name, func, float(every_seconds))


def registered_tasks() -> list[_PeriodicTask]:
    return list(_registered.values())


class _PluginMaintenance:
    """Mixed into RQ's worker classes (before them in the MRO); see the module docstring."""

    # Set by make_worker(); class attributes so RQ's __init__ (which reads
    # dequeue_timeout) works before they are.
    flask_app: Flask | None = None
    periodic: tuple[_PeriodicTask, ...] = ()
    tick: int = MAINTENANCE_TICK
    _next_run: dict[str, float]

    # -- hooks into RQ's worker loop ---------------------------------------------------------
    @property
    def dequeue_timeout(self) -> int:
        return min(super().dequeue_timeout, self.tick)  # type: ignore[misc]

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return bool(super().should_run_maintenance_tasks  # type: ignore[misc]
                    or self._plugin_maintenance_due())

    def run_maintenance_tasks(self) -> None:
        if super().should_run_maintenance_tasks:  # type: ignore[misc]
            super().run_maintenance_tasks()  # type: ignore[misc]
        self._plugin_maintenance()

    def maintain_heartbeats(self, *args: Any) -> None:
        # Called by the work-horse monitoring loop (rq 2: (job), rq 3: (job, execution)).
        super().maintain_heartbeats(*args)  # type: ignore[misc]
        if self._plugin_maintenance_due():
            self._plugin_maintenance()

    # -- the plugin's maintenance ------------------------------------------------------------
    def _plugin_maintenance_due(self) -> bool:
        next_run = getattr(self, "_next_run", None)
        if next_run is None:
            return True
        now = time.monotonic()
        return now >= next_run.get("scheduler", 0.0) or any(
            now >= next_run.get(task.name, 0.0) for task in self.periodic)

    def _plugin_maintenance(self) -> None:
        if getattr(self, "_next_run", None) is None:
            self._next_run = {}
        now = time.monotonic()
        if now >= self._next_run.get("scheduler", 0.0):
            self._next_run["scheduler"] = now + self.tick
            try:
                self._take_over_scheduler()
            except Exception:  # Redis hiccup: RQ's loop reconnects; try again next tick
                log.warning("Scheduler takeover check failed", exc_info=True)
        for task in self.periodic:
            if now < self._next_run.get(task.name, 0.0):
                continue
            self._next_run[task.name] = now + task.every_seconds
            self._run_task(task)

    def _run_task(self, task: _PeriodicTask) -> None:
        app = self.flask_app
        if app is None:
            return
        try:
            with app.app_context():
                task.func()
        except Exception:
            log.exception("Periodic task %s failed; it runs again in %.0f s", task.name,
                           task.every_seconds)

    def _take_over_scheduler(self) -> None:
        worker: Any = self
        scheduler: RQScheduler | None = worker.scheduler
        if scheduler is None:  # not started with_scheduler
            return
        process = scheduler._process
        if process is not None and process.is_alive():
            return
        connection = worker.connection
        for name in worker.queue_names():
            _break_lock_of_silent_scheduler(connection, name, scheduler.name)
        # RQ's own call: takes free locks (or refreshes ours) and forks the scheduler.
        scheduler.acquire_locks(auto_start=True)


def _break_lock_of_silent_scheduler(connection: Any, queue_name: str, own_name: str) -> bool:
    """Delete the queue's scheduler lock if its holder is dead; True if it was deleted.

    Dead = the lock was not refreshed for SCHEDULER_SILENT_AFTER seconds (its TTL, set to
    61 s on every refresh, says when it last was) *and* the holder's own heartbeat hash is
    gone or as old. The first condition alone protects a holder that took the lock a moment
    ago and has not written its hash yet; RQ's compare-and-delete script keeps a lock that
    changed hands meanwhile.
    """
    key = RQScheduler.get_locking_key(queue_name)
    holder_raw = connection.get(key)
    if holder_raw is None:
        return False
    holder = holder_raw.decode() if isinstance(holder_raw, bytes) else str(holder_raw)
    if holder == own_name:
        return False
    ttl = connection.ttl(key)
    if ttl is None or ttl < 0 or ttl > _RQ_SCHEDULER_LOCK_TTL - SCHEDULER_SILENT_AFTER:
        return False  # refreshed recently, or a lock without TTL that RQ did not set
    try:
        last_beat = RQScheduler.fetch(holder, connection).last_heartbeat
    except SchedulerNotFound:
        last_beat = None
    if last_beat is not None:
        silent_for = (utcnow() - as_utc(last_beat)).total_seconds()
        if silent_for < SCHEDULER_SILENT_AFTER:
            return False
    if release_lock(connection, key, holder):
        log.warning("Scheduler %s of queue %s stopped refreshing its lock %d s ago; taking "
                    "the scheduler over", holder, queue_name, _RQ_SCHEDULER_LOCK_TTL - ttl)
        return True
    return False


class PluginWorker(_PluginMaintenance, Worker):
    """RQ's forking :class:`rq.Worker` with the plugin's maintenance."""


class PluginSimpleWorker(_PluginMaintenance, SimpleWorker):
    """RQ's :class:`rq.SimpleWorker` (jobs run in the worker process) with the maintenance."""


def make_worker(app: Flask, *, simple: bool = False) -> BaseWorker:
    """The RQ worker for the app's import queue, bound to ``app``, with the maintenance.

    Start it with ``worker.work(with_scheduler=True)``: the scheduler enqueues the
    scheduled polls of imports waiting for Amazon.

    :param app: the host app the plugin was initialised on; every job runs in its context.
    :param simple: an RQ ``SimpleWorker`` (jobs run in the worker's own process, no work
        horse) instead of a forking ``Worker``.
    :returns: the worker, not started.

    .. versionadded:: 0.2.0
    """
    with app.app_context():
        queue = current_amazon.queue
        heartbeat_timeout = current_amazon.settings.heartbeat_timeout
    tasks = (
        _PeriodicTask("xsale_amazon.recover_stale_runs", _recover_stale_runs,
                     maintenance_interval(heartbeat_timeout)),
        *registered_tasks(),
    )
    worker_class = PluginSimpleWorker if simple else PluginWorker
    worker = worker_class([queue], connection=queue.connection, job_class=queue.job_class,
                          maintenance_interval=RQ_MAINTENANCE_INTERVAL)
    worker.flask_app = app
    worker.periodic = tasks
    worker.tick = max(1, min(MAINTENANCE_TICK, int(min(t.every_seconds for t in tasks))))
    return worker


def _recover_stale_runs() -> None:
    recover_stale_runs()
