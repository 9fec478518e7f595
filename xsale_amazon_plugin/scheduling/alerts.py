"""The alerts of the current request: computed once per request, never breaking the page.

The admin's menu badge, banner and integration page read them here; what an alert is (and when
it was seen) is :mod:`xsale_amazon_plugin.scheduling.freshness`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import g, has_request_context

from ..proxies import current_amazon
from .freshness import current_alerts, mark_alerts_seen

log = logging.getLogger(__name__)


def request_alerts() -> list[Any]:
    """The alerts the current user may see, cached for the request ([] outside a request or
    when computing them fails: the badge must not take the host's admin down with it)."""
    if not has_request_context():
        return []
    cached = g.get("_xsale_amazon_alerts")
    if cached is not None:
        return list(cached)
    alerts: list[Any] = []
    try:
        if current_amazon.is_allowed():
            alerts = current_alerts()
    except Exception:  # the badge must not take the host's admin down with it
        log.exception("xsale_amazon: computing alerts failed")
        with contextlib.suppress(Exception):
            current_amazon.db.session.rollback()
    g._xsale_amazon_alerts = alerts
    return list(alerts)


def forget_request_alerts() -> None:
    if has_request_context():
        g.pop("_xsale_amazon_alerts", None)


def integration_viewed(integration_id: int) -> None:
    """An operator looked at the integration: its alerts were seen (writes only when it has
    one, so viewing writes nothing otherwise)."""
    if not any(a.integration_id == integration_id for a in request_alerts()):
        return
    try:
        mark_alerts_seen(integration_id)
    except Exception:
        log.exception("xsale_amazon: marking alerts seen failed")
        current_amazon.db.session.rollback()
    forget_request_alerts()
