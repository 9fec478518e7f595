"""Pieces the plugin's admin views share: filter options, column formatters, starting an import.

Views use these (and the services in :mod:`..importing.lifecycle` and :mod:`..linking.links`),
never each other's methods.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, has_app_context, request, url_for
from markupsafe import Markup, escape

from ..babel import gettext as _
from ..importing.lifecycle import (
    CancelRefused,
    ImportAlreadyRunning,
    ImportRefused,
    cancel_import,
    start_import,
)
from ..importing.messages import status_badge_class, status_label
from ..models import ReportMode, int_in_range
from ..proxies import current_amazon


def integration_options() -> list[tuple[str, str]]:
    """(id, label) of every integration, for filters; empty outside an app context because
    Flask-Admin builds filters at start-up (the views refresh them per request)."""
    if not has_app_context():
        return []
    integ = current_amazon.models.AmazonIntegration
    rows = current_amazon.db.session.execute(sa.select(integ).order_by(integ.name)).scalars()
    return [(str(i.id), str(i)) for i in rows]


def requested_integration(*, default_first: bool = False) -> int | None:
    """The integration the request's ``integration`` argument (query string or form) names,
    if it exists; otherwise None ("all integrations"), or with ``default_first`` the first
    integration of :func:`integration_options` (None when there is none)."""
    options = integration_options()
    value = int_in_range(request.values.get("integration") or "")
    if value is not None and any(key == str(value) for key, _label in options):
        return value
    return int(options[0][0]) if default_first and options else None


def status_badge(status: str, href: str | None = None) -> Markup:
    """A run status as a coloured badge (a link when ``href`` is given)."""
    if href:
        return Markup('<a href="{}" class="badge badge-{}">{}</a>').format(
            href, status_badge_class(status), status_label(status))
    return Markup('<span class="badge badge-{}">{}</span>').format(
        status_badge_class(status), status_label(status))


def parse_report_choice(value: str | None) -> tuple[str, str | None]:
    """The Import dialog's choice: ``fresh``, ``reuse:<report id>`` or nothing (``auto``)."""
    value = (value or "").strip()
    if value == ReportMode.FRESH:
        return ReportMode.FRESH, None
    if value.startswith("reuse:"):
        report_id = value[len("reuse:"):].strip()
        if report_id.isdigit() and len(report_id) <= 40:
            return ReportMode.REUSE, report_id
    return ReportMode.AUTO, None


def start_import_from_view(integration_id: int, trigger: str = "ui", *,
                           report_mode: str = ReportMode.AUTO,
                           reuse_report_id: str | None = None) -> tuple[Any, Any]:
    """Start an import for an admin action; flash why not. Returns ``(run, error)``."""
    if int_in_range(integration_id) is None:  # beyond the id column: the database raises
        exc = LookupError(f"Amazon integration {integration_id} does not exist.")
        flash(escape(str(exc)), "error")
        return None, exc
    try:
        run = start_import(integration_id, trigger=trigger,
                           requested_by=current_amazon.current_user_name(),
                           report_mode=report_mode, reuse_report_id=reuse_report_id)
        return run, None
    except ImportAlreadyRunning as exc:
        flash(Markup('{} <a href="{}">{}</a>').format(
            _("An import of this integration is already running."),
            url_for("xsale_amazon_run.details_view", id=exc.run.id),
            _("Show it"),
        ), "warning")
        return None, exc
    except (ImportRefused, LookupError) as exc:
        flash(escape(str(exc)), "error")
        return None, exc


def cancel_from_view(run_id: int) -> bool:
    """Cancel an import run for an admin action; flash the outcome. True if cancelled."""
    try:
        cancel_import(run_id, cancelled_by=current_amazon.current_user_name())
    except (CancelRefused, LookupError) as exc:
        flash(escape(str(exc)), "warning")
        return False
    flash(_("Import cancelled. Nothing from it was applied; you can start a new import at "
            "once."), "success")
    return True
