"""Time helpers shared by every stage: UTC "now", naive-to-aware, Amazon's ISO timestamps.

A leaf module (it imports nothing from the package), so the Amazon client and the report
parser can use it and still depend on nothing else of the plugin.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, overload


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime; a naive one is taken as UTC (SQLite hands
    timestamps back naive)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def parse_amazon_time(value: Any) -> datetime | None:
    """An SP-API ISO 8601 timestamp (``2024-05-01T10:00:00Z``) as aware UTC, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None
