"""The one liveness rule of background work: a heartbeat proves a step alive, and silence
longer than ``XSALE_AMAZON_HEARTBEAT_TIMEOUT`` means its worker died.

Every time the plugin derives from that timeout (``t``) is defined here:

* :func:`beat_interval` — a step beats every ``t / 5`` s, between 0.5 and 5 s: one skipped beat
  (SQLite busy during an apply) never makes a live step look dead, and a cancel reaches a
  running step within seconds (the beat is how the step learns it);
* :func:`is_stale` — a beat older than ``t`` is a dead step's;
* :func:`maintenance_interval` — every worker looks for dead steps every ``t / 4`` s, between 1
  and 30 s, so a death is noticed between ``t`` and ``1.25 t`` after the last beat.

Import runs and background auto-link runs follow the same rule through :class:`Heartbeat`.
A heartbeat is a conditional UPDATE: when it matches no row, the step no longer owns its
record (an operator cancelled it, or the stale check failed it), and :attr:`Heartbeat.lost`
tells the step's long loops (a download, a parse) to stop within one beat, instead of running
on to their next write.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

#: Seconds; bounds how long a cancelled step runs on (a beat costs one single-row UPDATE).
MAX_BEAT_INTERVAL = 5.0


def beat_interval(heartbeat_timeout: float) -> float:
    """Seconds between two beats of a running step."""
    return min(MAX_BEAT_INTERVAL, max(0.5, heartbeat_timeout / 5))


def maintenance_interval(heartbeat_timeout: float) -> float:
    """Seconds between two checks, by each worker, for steps whose worker died."""
    return min(30.0, max(1.0, heartbeat_timeout / 4))


def is_stale(beat: datetime | None, now: datetime, heartbeat_timeout: float) -> bool:
    """Whether a step whose last beat was at ``beat`` is dead at ``now`` (no beat: dead)."""
    beat = as_utc(beat)
    return beat is None or beat < as_utc(now) - timedelta(seconds=heartbeat_timeout)


class Heartbeat:
    """Refreshes ``heartbeat_at`` of one row from a thread while a step works.

    The row is updated only while ``condition`` holds (the step still owns it). It uses its
    own connection, so it beats through a long apply transaction too. When the UPDATE matches
    no row, :attr:`lost` is set and the thread stops beating.
    """

    def __init__(self, engine: sa.Engine, table: sa.Table, condition: sa.ColumnElement[bool],
                 interval: float, *, name: str) -> None:
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._engine = engine
        self._statement = table.update().where(condition)
        self._interval = interval
        self._name = name
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"xsale-amazon-heartbeat-{name}")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._engine.begin() as conn:
                    beat = conn.execute(self._statement.values(heartbeat_at=utcnow()))
            except Exception:  # e.g. SQLite busy during the apply; the next beat retries
                log.debug("heartbeat of %s skipped", self._name, exc_info=True)
                continue
            if beat.rowcount == 0:
                log.info("%s is no longer this step's (cancelled or failed elsewhere)",
                         self._name)
                self.lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
