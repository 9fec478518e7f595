"""How fresh each integration's offers are, and which integrations need an operator.

An integration is *stale* when its last successful import (or, before the first one, its
creation) is older than twice its schedule's interval, or XSALE_AMAZON_STALE_AFTER without a
schedule. It *alerts* (menu badge, banner) when its latest import failed, its schedule was
paused or it went stale — each only if that happened after an operator last looked at it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..models import ScheduleKind, Status
from ..proxies import current_amazon
from ..signals import integration_stale
from ..timeutil import as_utc, utcnow
from .service import spec_of, stale_threshold

log = logging.getLogger(__name__)

#: Statuses that count as a successful import for freshness (no_data: Amazon had no listings).
SUCCESS = (Status.SUCCEEDED, Status.NO_DATA)


@dataclass(frozen=True)
class Freshness:
    integration_id: int
    last_success_at: datetime | None
    stale_after: timedelta
    stale_since: datetime
    is_stale: bool
    scheduled: bool


@dataclass(frozen=True)
class Alert:
    integration_id: int
    name: str
    failed_run_id: int | None
    paused: bool
    stale: Freshness | None
    since: datetime


def last_successes(integration_ids: list[int] | None = None) -> dict[int, datetime]:
    run = current_amazon.models.ImportRun
    query = (sa.select(run.integration_id, sa.func.max(run.finished_at))
             .where(run.status.in_(SUCCESS)).group_by(run.integration_id))
    if integration_ids is not None:
        query = query.where(run.integration_id.in_(integration_ids))
    result: dict[int, datetime] = {}
    for integration_id, finished_at in current_amazon.db.session.execute(query).all():
        moment = as_utc(finished_at)
        if moment is not None:
            result[integration_id] = moment
    return result


def freshness_of(integrations: list[Any], now: datetime | None = None) -> dict[int, Freshness]:
    """Freshness of active integrations (inactive ones are never stale)."""
    m, session = current_amazon.models, current_amazon.db.session
    now = now or utcnow()
    ids = [i.id for i in integrations]
    if not ids:
        return {}
    successes = last_successes(ids)
    schedules = {s.integration_id: s for s in session.execute(
        sa.select(m.SyncSchedule).where(m.SyncSchedule.integration_id.in_(ids))).scalars()}
    result = {}
    for integ in integrations:
        schedule = schedules.get(integ.id)
        spec = spec_of(schedule)
        threshold = stale_threshold(spec)
        last = successes.get(integ.id)
        since = (last or as_utc(integ.created_at) or now) + threshold
        result[integ.id] = Freshness(
            integration_id=integ.id,
            last_success_at=last,
            stale_after=threshold,
            stale_since=since,
            is_stale=bool(integ.active) and since <= now,
            scheduled=spec.kind != ScheduleKind.OFF,
        )
    return result


def _integrations(active_only: bool = True) -> list[Any]:
    integ = current_amazon.models.AmazonIntegration
    query = sa.select(integ).order_by(integ.name, integ.id)
    if active_only:
        query = query.where(integ.active.is_(True))
    return list(current_amazon.db.session.execute(query).scalars())


def _latest_ended_runs(ids: list[int]) -> dict[int, Any]:
    run = current_amazon.models.ImportRun
    latest = (sa.select(sa.func.max(run.id))
              .where(run.active_lock.is_(None), run.status.not_in(Status.ACTIVE),
                     run.integration_id.in_(ids))
              .group_by(run.integration_id).scalar_subquery())
    rows = current_amazon.db.session.execute(sa.select(run).where(run.id.in_(latest))).scalars()
    return {r.integration_id: r for r in rows}


def current_alerts(now: datetime | None = None) -> list[Alert]:
    """Integrations needing an operator that nobody looked at since, by name."""
    m, session = current_amazon.models, current_amazon.db.session
    now = now or utcnow()
    integrations = _integrations()
    if not integrations:
        return []
    ids = [i.id for i in integrations]
    fresh = freshness_of(integrations, now)
    runs = _latest_ended_runs(ids)
    schedules = {s.integration_id: s for s in session.execute(
        sa.select(m.SyncSchedule).where(m.SyncSchedule.integration_id.in_(ids))).scalars()}
    alerts = []
    for integ in integrations:
        schedule = schedules.get(integ.id)
        seen = as_utc(schedule.alert_seen_at) if schedule is not None else None

        def unseen(moment: datetime | None, seen: datetime | None = seen) -> bool:
            return moment is not None and (seen is None or moment > seen)

        run = runs.get(integ.id)
        failed_at = as_utc(run.finished_at or run.created_at) if run is not None else None
        failed = run is not None and run.status == Status.FAILED and unseen(failed_at)
        paused_at = as_utc(schedule.paused_at) if schedule is not None else None
        paused = unseen(paused_at)
        freshness = fresh.get(integ.id)
        stale = freshness is not None and freshness.is_stale and unseen(freshness.stale_since)
        if not (failed or paused or stale):
            continue
        moments = [t for t, on in ((failed_at, failed), (paused_at, paused),
                                   (freshness.stale_since if freshness else None, stale))
                   if on and t is not None]
        alerts.append(Alert(
            integration_id=integ.id,
            name=integ.name,
            failed_run_id=run.id if failed and run is not None else None,
            paused=paused,
            stale=freshness if stale else None,
            since=min(moments),
        ))
    return alerts


def mark_alerts_seen(integration_id: int | None = None, now: datetime | None = None) -> int:
    """An operator looked at one integration's alerts (or at all of them)."""
    m, session = current_amazon.models, current_amazon.db.session
    now = now or utcnow()
    ids = [integration_id] if integration_id is not None else [i.id for i in _integrations()]
    for integ_id in ids:
        row = session.get(m.SyncSchedule, integ_id)
        if row is None:
            session.add(m.SyncSchedule(integration_id=integ_id, kind=ScheduleKind.OFF,
                                       alert_seen_at=now))
        else:
            row.alert_seen_at = now
    try:
        session.commit()
    except IntegrityError:  # a schedule row was created concurrently: update it instead
        session.rollback()
        table = m.SyncSchedule.__table__
        session.execute(table.update().where(table.c.integration_id.in_(ids))
                        .values(alert_seen_at=now, updated_at=table.c.updated_at))
        session.commit()
    return len(ids)


def notify_stale(now: datetime | None = None) -> int:
    """Send integration_stale once per stale period; returns how many were sent.

    The compare-and-set on ``stale_notified_at`` lets only one worker send it.
    """
    m, session = current_amazon.models, current_amazon.db.session
    now = now or utcnow()
    integrations = _integrations()
    fresh = freshness_of(integrations, now)
    table = m.SyncSchedule.__table__
    sent = 0
    for integ in integrations:
        freshness = fresh[integ.id]
        if not freshness.is_stale:
            continue
        if session.get(m.SyncSchedule, integ.id) is None:
            session.add(m.SyncSchedule(integration_id=integ.id, kind=ScheduleKind.OFF))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
        claimed = session.execute(
            table.update()
            .where(table.c.integration_id == integ.id,
                   sa.or_(table.c.stale_notified_at.is_(None),
                          table.c.stale_notified_at < freshness.stale_since))
            .values(stale_notified_at=now, updated_at=table.c.updated_at)
        ).rowcount == 1
        session.commit()
        if claimed:
            sent += 1
            log.warning("Integration %s is stale: no successful import since %s", integ.id,
                        freshness.last_success_at or "ever")
            integration_stale.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                                   integration=integ,
                                   last_success_at=freshness.last_success_at,
                                   stale_since=freshness.stale_since)
    return sent
