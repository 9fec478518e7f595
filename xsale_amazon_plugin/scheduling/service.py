"""Scheduled imports: setting a schedule, starting the due slots, pausing after failures.

Workers call :func:`run_due_schedules` periodically. The database decides who runs a slot:
a worker owns a slot only if its compare-and-set UPDATE moves the schedule's
``last_slot_at`` forward to that slot, and ``xsale_amazon_schedule_slot`` is unique per
(integration, slot). So however many workers tick at the same moment, a slot starts at most
one run; and since only the *latest* due slot is considered, slots missed while every worker
was down collapse into one catch-up run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..importing.lifecycle import ImportAlreadyRunning, ImportNotPossible, start_import
from ..models import ScheduleKind, SlotOutcome, Status, int_in_range
from ..proxies import current_amazon
from ..signals import import_failed, schedule_paused
from ..timeutil import as_utc, utcnow
from .slots import (
    InvalidSchedule,
    ScheduleSpec,
    check_every_minutes,
    floor_minute,
    load_timezone,
    parse_daily_at,
)

log = logging.getLogger(__name__)

TRIGGER = "schedule"
PAUSED_FAILURES = "failures"


def plugin_timezone() -> tzinfo:
    """XSALE_AMAZON_TIMEZONE, else the host's BABEL_DEFAULT_TIMEZONE, else UTC."""
    name = current_amazon.settings.timezone or current_app.config.get("BABEL_DEFAULT_TIMEZONE")
    return load_timezone(name)


def _timezone_name(tz: tzinfo) -> str:
    return str(getattr(tz, "key", None) or "UTC")


def spec_of(schedule: Any) -> ScheduleSpec:
    if schedule is None:
        return ScheduleSpec()
    daily = parse_daily_at(schedule.daily_at) if schedule.daily_at else None
    return ScheduleSpec(schedule.kind, schedule.every_minutes, daily, as_utc(schedule.anchor_at))


def get_schedule(integration_id: int) -> Any:
    return current_amazon.db.session.get(current_amazon.models.SyncSchedule, integration_id)


def _schedule_row(integration_id: int) -> Any:
    """The integration's schedule row, created (off) when missing."""
    m, session = current_amazon.models, current_amazon.db.session
    if int_in_range(integration_id) is None or session.get(m.AmazonIntegration,
                                                            integration_id) is None:
        raise LookupError(f"Amazon integration {integration_id} does not exist.")
    row = session.get(m.SyncSchedule, integration_id)
    if row is not None:
        return row
    session.add(m.SyncSchedule(integration_id=integration_id, kind=ScheduleKind.OFF))
    try:
        session.commit()
    except IntegrityError:  # created concurrently: use that one
        session.rollback()
    return session.get(m.SyncSchedule, integration_id)


def set_schedule(integration_id: int, kind: str, *, every_minutes: int | None = None,
                 daily_at: str | None = None, user: str | None = None,
                 now: datetime | None = None) -> Any:
    """Set (or turn off) the schedule of an integration; also clears a pause.

    The first run is the first slot after now: setting a schedule never starts a run at once.
    Raises :class:`InvalidSchedule` for values that cannot be a schedule.
    """
    if kind not in ScheduleKind.ALL:
        raise InvalidSchedule(f"Unknown schedule kind {kind!r}.")
    minutes = check_every_minutes(every_minutes or 0) if kind == ScheduleKind.EVERY else None
    at = parse_daily_at(daily_at or "").strftime("%H:%M") if kind == ScheduleKind.DAILY else None
    now = now or utcnow()
    row = _schedule_row(integration_id)
    row.kind = kind
    row.every_minutes = minutes
    row.daily_at = at
    row.anchor_at = floor_minute(now) if kind == ScheduleKind.EVERY else None
    row.last_slot_at = now
    row.paused_at = None
    row.paused_reason = None
    row.failures_since = now
    row.updated_by = user
    current_amazon.db.session.commit()
    return row


def resume_schedule(integration_id: int, *, user: str | None = None,
                    now: datetime | None = None) -> Any:
    """Clear a pause; earlier failures no longer count and missed slots are not caught up."""
    now = now or utcnow()
    row = _schedule_row(integration_id)
    row.paused_at = None
    row.paused_reason = None
    row.failures_since = now
    row.last_slot_at = max(as_utc(row.last_slot_at) or now, now)
    row.updated_by = user
    current_amazon.db.session.commit()
    return row


@dataclass(frozen=True)
class ScheduleStatus:
    """What the integration page and ``schedule --list`` show about a schedule."""

    kind: str
    every_minutes: int | None
    daily_at: str | None
    timezone: str
    next_run_at: datetime | None
    #: A slot is due and no worker took it yet (no worker running, or one is about to).
    overdue: bool
    paused_at: datetime | None
    paused_reason: str | None

    @property
    def is_on(self) -> bool:
        return self.kind != ScheduleKind.OFF

    @property
    def describe(self) -> str:
        """English one-liner for the CLI and logs (the UI translates its own)."""
        if self.kind == ScheduleKind.EVERY:
            text = f"every {self.every_minutes} min"
        elif self.kind == ScheduleKind.DAILY:
            text = f"daily {self.daily_at} {self.timezone}"
        else:
            return "off"
        return text + (" (paused)" if self.paused_at else "")


def schedule_status(schedule: Any, *, active: bool = True, now: datetime | None = None,
                    tz: tzinfo | None = None) -> ScheduleStatus:
    now = now or utcnow()
    tz = tz or plugin_timezone()
    spec = spec_of(schedule)
    paused_at = as_utc(schedule.paused_at) if schedule is not None else None
    next_run = overdue = None
    if spec.is_on and active and paused_at is None:
        overdue = spec.due_slot(now, tz, as_utc(schedule.last_slot_at))
        next_run = overdue or spec.next_slot(now, tz)
    return ScheduleStatus(
        kind=spec.kind,
        every_minutes=spec.every_minutes,
        daily_at=schedule.daily_at if schedule is not None else None,
        timezone=_timezone_name(tz),
        next_run_at=next_run,
        overdue=overdue is not None,
        paused_at=paused_at,
        paused_reason=schedule.paused_reason if schedule is not None else None,
    )


@dataclass(frozen=True)
class SlotResult:
    integration_id: int
    slot_at: datetime
    outcome: str
    run_id: int | None


def run_due_schedules(now: datetime | None = None, *, limit: int = 1000) -> list[SlotResult]:
    """Start one import for every schedule with a due slot that no worker took yet."""
    m, session = current_amazon.models, current_amazon.db.session
    now = now or utcnow()
    tz = plugin_timezone()
    schedule, integration = m.SyncSchedule, m.AmazonIntegration
    rows = session.execute(
        sa.select(schedule).join(integration, integration.id == schedule.integration_id)
        .where(schedule.kind != ScheduleKind.OFF, schedule.paused_at.is_(None),
               integration.active.is_(True))
        .order_by(schedule.integration_id).limit(limit)
    ).scalars().all()
    results = []
    for row in rows:
        try:
            spec = spec_of(row)
        except InvalidSchedule:
            log.warning("Schedule of integration %s is invalid; skipped", row.integration_id)
            continue
        slot = spec.due_slot(now, tz, as_utc(row.last_slot_at))
        if slot is not None:
            result = _take_slot(row, slot)
            if result is not None:
                results.append(result)
    return results


def _take_slot(row: Any, slot: datetime) -> SlotResult | None:
    m, session = current_amazon.models, current_amazon.db.session
    integration_id = row.integration_id
    table = m.SyncSchedule.__table__
    claimed = session.execute(
        table.update()
        .where(table.c.integration_id == integration_id, table.c.kind == row.kind,
               table.c.paused_at.is_(None),
               sa.or_(table.c.last_slot_at.is_(None), table.c.last_slot_at < slot))
        .values(last_slot_at=slot, updated_at=table.c.updated_at)
    ).rowcount == 1
    if not claimed:  # another worker took it (or the schedule changed meanwhile)
        session.rollback()
        return None
    record = m.ScheduleSlot(integration_id=integration_id, slot_at=slot,
                            outcome=SlotOutcome.CLAIMED)
    session.add(record)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    try:
        run = start_import(integration_id, trigger=TRIGGER, requested_by=TRIGGER)
    except ImportAlreadyRunning as exc:
        record.outcome, record.run_id = SlotOutcome.SKIPPED, exc.run.id
        log.info("Scheduled import of integration %s at %s skipped: run %s is active",
                 integration_id, slot, exc.run.id)
    except (ImportNotPossible, LookupError) as exc:
        record.outcome = SlotOutcome.NOT_STARTED
        record.error_code = getattr(exc, "code", "missing")
        record.detail = str(exc)[:2000]
        log.warning("Scheduled import of integration %s at %s not started: %s",
                    integration_id, slot, exc)
    else:
        record.outcome, record.run_id = SlotOutcome.STARTED, run.id
    session.commit()
    result = SlotResult(integration_id, slot, record.outcome, record.run_id)
    if record.outcome == SlotOutcome.NOT_STARTED:
        _check_failure_streak(integration_id)
    return result


def failure_streak(integration_id: int) -> int:
    """Scheduled slots in a row (newest first) whose run failed or could not start.

    Slots skipped because an import was running, and runs still going, are passed over; a
    scheduled run that succeeded ends the streak. Slots before ``failures_since`` (the last
    time the schedule was set or resumed) do not count.
    """
    m, session = current_amazon.models, current_amazon.db.session
    limit = current_amazon.settings.schedule_max_failures
    row = session.get(m.SyncSchedule, integration_id)
    slot, run = m.ScheduleSlot, m.ImportRun
    query = (
        sa.select(slot.outcome, run.status).outerjoin(run, run.id == slot.run_id)
        .where(slot.integration_id == integration_id,
               slot.outcome.in_((SlotOutcome.STARTED, SlotOutcome.NOT_STARTED)))
        .order_by(slot.slot_at.desc()).limit(limit * 5 + 5)
    )
    if row is not None and row.failures_since is not None:
        query = query.where(slot.created_at >= row.failures_since)
    streak = 0
    for outcome, status in session.execute(query).all():
        if outcome == SlotOutcome.NOT_STARTED or status == Status.FAILED:
            streak += 1
        elif status is None or status in (*Status.ACTIVE, Status.HELD, Status.DISCARDED):
            # Run deleted, still going, or held for (or dropped without) an operator's
            # confirmation of a mass removal: neither a failure nor a success.
            continue
        else:
            break
    return streak


def _check_failure_streak(integration_id: int, now: datetime | None = None) -> bool:
    """Pause the schedule after SCHEDULE_MAX_FAILURES failures in a row; True if paused now."""
    m, session = current_amazon.models, current_amazon.db.session
    if failure_streak(integration_id) < current_amazon.settings.schedule_max_failures:
        return False
    table = m.SyncSchedule.__table__
    paused = session.execute(
        table.update()
        .where(table.c.integration_id == integration_id, table.c.paused_at.is_(None),
               table.c.kind != ScheduleKind.OFF)
        .values(paused_at=now or utcnow(), paused_reason=PAUSED_FAILURES,
                updated_at=table.c.updated_at)
    ).rowcount == 1
    session.commit()
    if paused:
        integration = session.get(m.AmazonIntegration, integration_id)
        log.warning("Schedule of integration %s paused after %s failed scheduled imports",
                    integration_id, current_amazon.settings.schedule_max_failures)
        schedule_paused.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                             integration=integration,
                             reason=PAUSED_FAILURES)
    return paused


def recent_slots(integration_id: int, limit: int = 8) -> list[Any]:
    slot = current_amazon.models.ScheduleSlot
    return list(current_amazon.db.session.execute(
        sa.select(slot).where(slot.integration_id == integration_id)
        .order_by(slot.slot_at.desc()).limit(limit)
    ).scalars())


def on_import_finished(app: Any, run: Any, integration: Any, counts: Any = None,
                       **_: Any) -> None:
    """Receiver of import_finished: send import_failed, count scheduled failures."""
    if "xsale_amazon" not in getattr(app, "extensions", {}):
        return
    try:
        if run.status != Status.FAILED:
            return
        import_failed.send(app, run=run, integration=integration,
                           error=run.error_message or run.error_code or "")
        if run.trigger == TRIGGER:
            _check_failure_streak(run.integration_id)
    except Exception:  # a host receiver or the database: never break the import's ending
        log.exception("Handling the end of import run %s failed", getattr(run, "id", "?"))


def stale_threshold(spec: ScheduleSpec) -> timedelta:
    interval = spec.interval
    if interval is not None:
        return 2 * interval
    return timedelta(seconds=current_amazon.settings.stale_after)
