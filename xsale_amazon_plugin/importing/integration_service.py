"""Services on one integration: what deleting it removes, deleting it, testing its connection.

Deletion removes the integration's rows explicitly, children first, in one transaction, so
no database leaves orphans whatever its foreign-key enforcement (SQLite has none by default,
MariaDB's depends on the engine) and PostgreSQL's ``ON DELETE CASCADE`` never removes more
than the confirmation named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from ..amazon.client import AmazonError, AmazonReportsClient, LwaCredentials
from ..proxies import current_amazon
from ..timeutil import utcnow
from .lifecycle import failed_report_ids

#: Seconds the interactive Amazon calls (Test connection, the Import dialog) wait at most.
INTERACTIVE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Footprint:
    """What deleting an integration removes."""

    offers: int
    links: int
    runs: int
    active_run_id: int | None


class IntegrationBusy(Exception):
    """An import of the integration is running; cancel it before deleting."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"An import of this integration is running (run #{run_id}).")


def footprint(integration_id: int) -> Footprint:
    m, session = current_amazon.models, current_amazon.db.session
    offer, link, run = m.AmazonOffer, m.OfferProductLink, m.ImportRun
    offers = session.execute(
        sa.select(sa.func.count()).select_from(offer).where(offer.integration_id == integration_id)
    ).scalar_one()
    links = session.execute(
        sa.select(sa.func.count()).select_from(link).join(offer, offer.id == link.offer_id)
        .where(offer.integration_id == integration_id)
    ).scalar_one()
    runs = session.execute(
        sa.select(sa.func.count()).select_from(run).where(run.integration_id == integration_id)
    ).scalar_one()
    active = session.execute(
        sa.select(run.id).where(run.active_lock == integration_id)
    ).scalar_one_or_none()
    return Footprint(offers, links, runs, active)


def delete_integration(integration_id: int) -> Footprint:
    """Delete the integration with its offers, their links and its import runs.

    Raises :class:`IntegrationBusy` while an import runs and :class:`LookupError` for an
    unknown id. Returns what was removed.
    """
    m, session = current_amazon.models, current_amazon.db.session
    integration = session.get(m.AmazonIntegration, integration_id)
    if integration is None:
        raise LookupError(f"Amazon integration {integration_id} does not exist.")
    removed = footprint(integration_id)
    if removed.active_run_id is not None:
        raise IntegrationBusy(removed.active_run_id)
    offer_ids = sa.select(m.AmazonOffer.id).where(m.AmazonOffer.integration_id == integration_id)
    run_ids = sa.select(m.ImportRun.id).where(m.ImportRun.integration_id == integration_id)
    link_table = m.OfferProductLink.__table__
    staging = m.import_row
    try:
        session.execute(link_table.delete().where(link_table.c.offer_id.in_(offer_ids)))
        session.execute(staging.delete().where(staging.c.run_id.in_(run_ids)))
        session.execute(m.AmazonOffer.__table__.delete().where(
            m.AmazonOffer.__table__.c.integration_id == integration_id))
        session.execute(m.ImportRun.__table__.delete().where(
            m.ImportRun.__table__.c.integration_id == integration_id))
        session.delete(integration)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return removed


def _interactive_client(integration: Any) -> AmazonReportsClient:
    """A client for a call the operator waits for: short timeout, no retries."""
    settings = current_amazon.settings
    credentials = LwaCredentials(integration.lwa_client_id, integration.lwa_client_secret or "",
                                 integration.refresh_token or "")
    return AmazonReportsClient(
        integration.marketplace_info, credentials,
        spapi_endpoint=settings.spapi_endpoint, lwa_endpoint=settings.lwa_endpoint,
        timeout=min(settings.http_timeout, INTERACTIVE_TIMEOUT), max_retries=0,
        allowed_download_hosts=settings.download_hosts,
    )


def check_connection(integration: Any) -> str | None:
    """LWA token exchange plus one cheap Reports API call with the stored credentials.

    Returns None when both worked, else the failure kind (``missing``, ``auth``,
    ``forbidden``, ``throttled``, ``server``/``network``/...).
    """
    if not integration.has_credentials:
        return "missing"
    try:
        with _interactive_client(integration) as client:
            client.test_connection()
    except AmazonError as exc:
        return exc.kind
    return None


def reusable_report(integration: Any) -> dict[str, Any] | None:
    """The DONE report Amazon holds that an import of ``integration`` may reuse (younger than
    ``XSALE_AMAZON_REPORT_REUSE_WINDOW``, never one a failed run used), or None."""
    window = current_amazon.settings.report_reuse_window
    if window <= 0 or not integration.has_credentials:
        return None
    try:
        with _interactive_client(integration) as client:
            return client.find_recent_report(utcnow() - timedelta(seconds=window),
                                              exclude=failed_report_ids(integration.id))
    except AmazonError:
        return None
