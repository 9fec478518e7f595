"""Operator-facing names and locale-aware formatting of offer data (list, filters, details).

Numbers, prices and dates go through Flask-Babel, so they follow the request's locale
(``370,72 €`` in Polish, ``€370.72`` in English) and the host's ``BABEL_DEFAULT_TIMEZONE``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app, has_request_context

from .amazon.marketplaces import MARKETPLACES
from .babel import gettext as _
from .timeutil import as_utc


def _babel_ready() -> bool:
    return has_request_context() and "babel" in current_app.extensions


def offer_status_label(status: str | None) -> str:
    """Amazon's listing status (always English in the report) in the operator's language."""
    labels = {"Active": _("Active"), "Inactive": _("Inactive"), "Incomplete": _("Incomplete")}
    return labels.get(status or "", status or "")


def offer_status_options() -> list[tuple[str, str]]:
    return [(status, offer_status_label(status)) for status in ("Active", "Inactive",
                                                                 "Incomplete")]


def _marketplace_name(code: str) -> str:
    """The marketplace's country in the operator's language (Babel's territory names)."""
    mp = MARKETPLACES.get(code)
    fallback = mp.name if mp else code
    if not _babel_ready():
        return fallback
    from flask_babel import get_locale

    locale = get_locale()
    return locale.territories.get(code, fallback) if locale is not None else fallback


def marketplace_label(code: str) -> str:
    """``DE — Niemcy (amazon.de)``: code, translated country name and Amazon domain."""
    mp = MARKETPLACES.get(code)
    if mp is None:
        return code
    return f"{code} — {_marketplace_name(code)} ({mp.domain})"


def format_money(amount: Decimal | float | None, currency: str | None) -> str:
    if amount is None:
        return "—"
    if not _babel_ready():
        return f"{amount} {currency or ''}".strip()
    from flask_babel import format_currency, format_decimal

    if currency:
        return str(format_currency(amount, currency))
    return str(format_decimal(amount, format="#,##0.00"))


def format_number(value: int | float | None) -> str:
    if value is None:
        return "—"
    if not _babel_ready():
        return f"{value:,}"
    from flask_babel import format_decimal

    return str(format_decimal(value))


def format_timestamp(value: datetime | None) -> str:
    """Date and time to the minute, in the host's Babel time zone, with the zone named."""
    if value is None:
        return "—"
    value = as_utc(value)
    if not _babel_ready():
        return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"
    from flask_babel import format_datetime

    return str(format_datetime(value, "medium")) + " " + str(
        format_datetime(value, "zzz")
    )


def format_date(value: datetime | None) -> str:
    if value is None:
        return "—"
    if not _babel_ready():
        return value.strftime("%Y-%m-%d")
    from flask_babel import format_date as babel_format_date

    return str(babel_format_date(as_utc(value), "medium"))


def format_count(value: Any) -> str:
    """A count with the locale's digit grouping; a capped count (``at_least``) as "10 000+"."""
    at_least = getattr(value, "at_least", None)
    if at_least is not None:
        return format_number(at_least) + "+"
    return format_number(value) if isinstance(value, int) else str(value)


def format_time(value: datetime | None) -> str:
    """Time of day (``22:15 UTC`` / ``10:15 PM UTC``) in the operator's locale and zone."""
    if value is None:
        return "—"
    value = as_utc(value)
    if not _babel_ready():
        return value.strftime("%H:%M UTC")
    from flask_babel import format_datetime
    from flask_babel import format_time as babel_format_time

    return f"{babel_format_time(value, 'short')} {format_datetime(value, 'zzz')}"
