"""When a schedule is due: slot arithmetic of "every N minutes" and "daily at HH:MM".

Pure functions of the schedule and the clock (no database), so the rules are testable alone.
A *slot* is a moment at which a run is due. "Every N minutes" slots are
``anchor + k × N`` (the anchor is the minute the schedule was set); "daily at HH:MM" slots are
that wall-clock time of every day in the schedule's time zone (a time skipped by a DST change
runs an hour later that day, a repeated one runs at its first occurrence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models import ScheduleKind

#: Longest "every" interval accepted: one week.
MAX_EVERY_MINUTES = 7 * 24 * 60
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class InvalidSchedule(ValueError):
    """A schedule that cannot be set; ``str()`` says what to enter instead."""


def parse_daily_at(value: str) -> time:
    match = _HHMM.match((value or "").strip())
    if not match:
        raise InvalidSchedule(f"{value!r} is not a time of day; use HH:MM, e.g. 03:30.")
    return time(int(match.group(1)), int(match.group(2)))


def check_every_minutes(value: int) -> int:
    if not 1 <= int(value) <= MAX_EVERY_MINUTES:
        raise InvalidSchedule(
            f"The interval must be between 1 and {MAX_EVERY_MINUTES} minutes (one week)."
        )
    return int(value)


def load_timezone(name: str | None) -> tzinfo:
    if not name or name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Warsaw'."
        ) from None


@dataclass(frozen=True)
class ScheduleSpec:
    kind: str = ScheduleKind.OFF
    every_minutes: int | None = None
    daily_at: time | None = None
    anchor_at: datetime | None = None

    @property
    def is_on(self) -> bool:
        return self.kind in (ScheduleKind.EVERY, ScheduleKind.DAILY)

    @property
    def interval(self) -> timedelta | None:
        """Nominal time between two slots (None when off)."""
        if self.kind == ScheduleKind.EVERY and self.every_minutes:
            return timedelta(minutes=self.every_minutes)
        if self.kind == ScheduleKind.DAILY:
            return timedelta(days=1)
        return None

    def latest_slot(self, now: datetime, tz: tzinfo) -> datetime | None:
        """The most recent slot at or before ``now`` (UTC), or None when there is none yet."""
        if self.kind == ScheduleKind.EVERY and self.every_minutes and self.anchor_at:
            step = timedelta(minutes=self.every_minutes)
            if now < self.anchor_at + step:
                return None
            return self.anchor_at + step * ((now - self.anchor_at) // step)
        if self.kind == ScheduleKind.DAILY and self.daily_at is not None:
            today = now.astimezone(tz).date()
            for day in (today, today - timedelta(days=1), today - timedelta(days=2)):
                slot = _at(day, self.daily_at, tz)
                if slot <= now:
                    return slot
        return None

    def next_slot(self, now: datetime, tz: tzinfo) -> datetime | None:
        """The first slot strictly after ``now`` (UTC), or None when off."""
        if self.kind == ScheduleKind.EVERY and self.every_minutes and self.anchor_at:
            step = timedelta(minutes=self.every_minutes)
            if now < self.anchor_at:
                return self.anchor_at + step
            return self.anchor_at + step * ((now - self.anchor_at) // step + 1)
        if self.kind == ScheduleKind.DAILY and self.daily_at is not None:
            today = now.astimezone(tz).date()
            for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
                slot = _at(day, self.daily_at, tz)
                if slot > now:
                    return slot
        return None

    def due_slot(self, now: datetime, tz: tzinfo, last_slot_at: datetime | None) -> datetime | None:
        """The slot to run now: the latest one, if no run took it yet.

        Slots missed while no worker ran collapse into this one (one catch-up run).
        """
        slot = self.latest_slot(now, tz)
        if slot is None or (last_slot_at is not None and slot <= last_slot_at):
            return None
        return slot


def _at(day: date, at: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(timezone.utc)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
